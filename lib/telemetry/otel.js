'use strict'

// The OpenTelemetry side, through @opentelemetry/api only (an optional peer
// dependency): tracer and instruments from the global providers, resolved
// again whenever those change (an SDK started after the store was made).
// Without the api, or with no SDK registered, current() says so at the cost
// of a few property reads, and nothing is allocated per call.
const { version } = require('../../package.json')

const SCOPE = 'redis-session-store'
// The semantic conventions' buckets for db.client.operation.duration.
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]

let api // undefined: not looked for yet; null: not installed
let noopTracerProvider = null
let noopMeter = null

function loadApi() {
  if (api !== undefined) return api
  try {
    api = require('@opentelemetry/api')
    // The api's own no-op objects, to tell "no SDK" apart without
    // creating a span: an unset ProxyTracerProvider hands out its no-op
    // provider, and every no-op meter is the one createNoopMeter returns.
    if (typeof api.ProxyTracerProvider === 'function') noopTracerProvider = new api.ProxyTracerProvider().getDelegate()
    if (typeof api.createNoopMeter === 'function') noopMeter = api.createNoopMeter()
  } catch {
    api = null
  }
  return api
}

// What is live now: { tracer, instruments } (each null when off).
const state = { tracer: null, instruments: null }
let tracerProvider = null
let meterProvider = null
const meterListeners = new Set()

function current() {
  if (api === null) return state
  const tp = api.trace.getTracerProvider()
  // The global is a ProxyTracerProvider: its delegate is the SDK's.
  const delegate = typeof tp.getDelegate === 'function' ? tp.getDelegate() : tp
  if (delegate !== tracerProvider) {
    tracerProvider = delegate
    state.tracer = delegate === noopTracerProvider ? null : delegate.getTracer(SCOPE, version)
  }
  const mp = api.metrics.getMeterProvider()
  if (mp !== meterProvider) {
    meterProvider = mp
    const meter = mp.getMeter(SCOPE, version)
    state.instruments = meter === noopMeter ? null : instrumentsOf(meter)
    for (const listener of meterListeners) listener(meter === noopMeter ? null : meter)
  }
  return state
}

function instrumentsOf(meter) {
  return {
    duration: meter.createHistogram('db.client.operation.duration', {
      description: 'Duration of session store calls',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    created: meter.createCounter('redis_session_store.sessions.created', {
      description: 'Sessions stored for the first time',
      unit: '{session}',
    }),
    ended: meter.createCounter('redis_session_store.sessions.ended', {
      description: 'Sessions that ended, by reason',
      unit: '{session}',
    }),
  }
}

// `listener(meter | null)` whenever the meter provider changes (the live
// gauge registers its callback on each new meter).
function onMeter(listener) {
  meterListeners.add(listener)
  if (api === null || meterProvider === null) return
  const meter = meterProvider.getMeter(SCOPE, version)
  listener(meter === noopMeter ? null : meter)
}

module.exports = { loadApi, current, onMeter, DURATION_BUCKETS }
