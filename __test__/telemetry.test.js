'use strict'

// Spans, metrics and the diagnostics_channel TracingChannel, with the real
// OpenTelemetry SDK (in-memory span exporter, a metric reader collected by
// hand) registered globally in this process, against a real redis-server
// and memory://. No attribute may ever contain a session id or user id.
const test = require('ava')
const dc = require('node:diagnostics_channel')
const { execFileSync } = require('node:child_process')
const path = require('node:path')
const fs = require('node:fs')
const { trace, metrics, SpanKind, SpanStatusCode } = require('@opentelemetry/api')
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics')
const { RedisSessionStore } = require('..')
const { sessionCreated, sessionEnded } = require('../lib/telemetry')
const { RedisServer } = require('./helpers/redis')
const { RawRedis } = require('./helpers/raw')
const { packageWithoutOtel } = require('./helpers/without-otel')

class Reader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

const spans = new InMemorySpanExporter()
const reader = new Reader()
// Registered after a store made a call, as in an application that starts
// its SDK late: the store must pick the providers up when they appear.
const early = new RedisSessionStore({ url: 'memory://early' })
early.get('before-the-sdk', () => early.close())
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }))
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))

// Every secret a test used; no span, metric or channel message may hold one.
const secrets = new Set()
let n = 0
function sid() {
  const id = `sid-${process.pid}-${++n}-SECRET-${Math.random().toString(36).slice(2)}`
  secrets.add(id)
  return id
}
function user() {
  const id = `user-${++n}-SECRET-${Math.random().toString(36).slice(2)}`
  secrets.add(id)
  return id
}
function session(userId) {
  return { cookie: { originalMaxAge: 600000, expires: new Date(Date.now() + 600000).toISOString() }, userId, n: 1 }
}

function leaks(text) {
  return [...secrets].filter((s) => text.includes(s))
}

async function collect() {
  const { resourceMetrics, errors } = await reader.collect()
  if (errors.length) throw errors[0]
  const out = {}
  for (const scope of resourceMetrics.scopeMetrics) for (const m of scope.metrics) out[m.descriptor.name] = m
  return out
}

// What a span or data point shows anyone: everything but the ids the SDK made.
function spanText(s) {
  return JSON.stringify({ name: s.name, attributes: s.attributes, status: s.status, events: s.events, links: s.links })
}

let redis
test.before(async () => {
  redis = await RedisServer.start()
})
test.after.always(async () => {
  if (redis) await redis.dispose()
})

// Every public call, with ids and user ids the leak check knows.
async function everyCall(store) {
  const alice = user()
  const [a, b, c] = [sid(), sid(), sid()]
  await store.set(a, session(alice))
  await new Promise((resolve, reject) => store.set(b, session(alice), (err) => (err ? reject(err) : resolve())))
  await store.set(c, session(alice))
  await store.get(a)
  await store.get(sid())
  await store.touch(a, session(alice))
  await store.all()
  await store.ids()
  await store.length()
  await store.stats()
  const listed = await store.listUserSessions(alice)
  await store.revokeUserSession(alice, listed[0].handle)
  await store.recordDevice(b, { userAgent: 'test', ip: '127.0.0.1', lastIp: null })
  await store.destroy(b)
  await store.destroyUserSessions(alice)
  await store.clear()
}

const NAMED = ['session set', 'session get', 'session touch', 'session destroy', 'session all', 'session ids', 'session length',
  'session stats', 'session listUserSessions', 'session revokeUserSession', 'session recordDevice', 'session destroyUserSessions', 'session clear']

test.serial('Redis: a CLIENT span per call, named and with the database attributes; durations by operation; no id anywhere', async (t) => {
  spans.reset()
  const store = new RedisSessionStore({ url: redis.url, prefix: 'otel:' })
  await everyCall(store)
  await store.close()
  const finished = spans.getFinishedSpans()
  t.deepEqual([...new Set(finished.map((s) => s.name))].sort(), [...NAMED].sort())
  for (const s of finished) {
    t.is(s.kind, SpanKind.CLIENT, s.name)
    t.is(s.attributes['db.system.name'], 'redis')
    t.is(s.attributes['db.operation.name'], s.name.slice('session '.length))
    t.is(s.attributes['server.address'], '127.0.0.1')
    t.is(s.attributes['server.port'], redis.port)
    t.is(s.status.code, SpanStatusCode.UNSET, s.name)
  }
  const gets = finished.filter((s) => s.name === 'session get').map((s) => s.attributes['redis_session_store.result'])
  t.deepEqual(gets, ['hit', 'miss'])
  t.deepEqual(leaks(finished.map(spanText).join('\n')), [])

  const m = await collect()
  const duration = m['db.client.operation.duration']
  t.is(duration.descriptor.unit, 's')
  const points = duration.dataPoints.filter((p) => p.attributes['db.system.name'] === 'redis')
  const byOp = Object.fromEntries(points.map((p) => [p.attributes['db.operation.name'], p.value.count]))
  t.is(byOp.set, 3)
  t.is(byOp.get, 2)
  t.is(byOp.destroyUserSessions, 1)
  for (const p of points) t.true(p.value.sum >= 0 && p.value.sum < 60, 'seconds, not ms')
  t.deepEqual(leaks(JSON.stringify(Object.values(m).map((x) => x.dataPoints.map((p) => p.attributes)))), [])
})

test.serial('memory://: INTERNAL spans without a server; the URL login never shows', async (t) => {
  spans.reset()
  const store = new RedisSessionStore({ url: 'memory://otel-test' })
  await everyCall(store)
  await store.close()
  const finished = spans.getFinishedSpans()
  t.deepEqual([...new Set(finished.map((s) => s.name))].sort(), [...NAMED].sort())
  for (const s of finished) {
    t.is(s.kind, SpanKind.INTERNAL)
    t.is(s.attributes['db.system.name'], 'redis_session_store.memory')
    t.false('server.address' in s.attributes)
  }
  t.deepEqual(leaks(finished.map(spanText).join('\n')), [])

  spans.reset()
  const withLogin = new RedisSessionStore({ url: `redis://someone:hunter2-SECRET@127.0.0.1:${redis.port}/3` })
  await withLogin.get(sid()).catch(() => {})
  await withLogin.close()
  const [s] = spans.getFinishedSpans()
  t.is(s.attributes['db.namespace'], '3')
  t.false(/someone|hunter2/.test(spanText(s)))
})

test.serial('a value that is not a session: result corrupt, error.type, status error; the key stays out of the span', async (t) => {
  const raw = await RawRedis.connect(redis.url)
  const id = sid()
  await raw.call('SET', `otel:${id}`, 'not json {')
  raw.close()
  spans.reset()
  const store = new RedisSessionStore({ url: redis.url, prefix: 'otel:' })
  const err = await t.throwsAsync(store.get(id))
  t.is(err.code, 'ERR_SESSION_CORRUPT')
  t.false(err.message.includes(id), 'the error names the session by handle, not by id')
  t.is(err.key, `otel:${id}`)
  await store.close()
  const [s] = spans.getFinishedSpans()
  t.is(s.attributes['redis_session_store.result'], 'corrupt')
  t.is(s.attributes['error.type'], 'ERR_SESSION_CORRUPT')
  t.is(s.status.code, SpanStatusCode.ERROR)
  t.deepEqual(leaks(spanText(s)), [])
})

test.serial('Redis stopped: spans and durations carry error.type ERR_REDIS_*', async (t) => {
  const server = await RedisServer.start()
  const store = new RedisSessionStore({ url: server.url, commandTimeout: 500, connectTimeout: 300 })
  const id = sid()
  await store.set(id, session(user()))
  await server.stop()
  spans.reset()
  const err = await t.throwsAsync(store.get(id))
  t.regex(err.code, /^ERR_REDIS_/)
  await new Promise((resolve) => store.set(id, session(user()), () => resolve()))
  await store.close().catch(() => {})
  await server.dispose()
  const failed = spans.getFinishedSpans()
  t.deepEqual(failed.map((s) => s.name), ['session get', 'session set'])
  for (const s of failed) {
    t.regex(s.attributes['error.type'], /^ERR_REDIS_/)
    t.is(s.status.code, SpanStatusCode.ERROR)
    t.false('redis_session_store.result' in s.attributes)
  }
  const m = await collect()
  const errored = m['db.client.operation.duration'].dataPoints.filter(
    (p) => p.attributes['server.port'] === server.port && p.attributes['error.type'] !== undefined,
  )
  t.deepEqual(errored.map((p) => p.attributes['db.operation.name']).sort(), ['get', 'set'])
  for (const p of errored) t.regex(p.attributes['error.type'], /^ERR_REDIS_/)
  t.deepEqual(leaks(failed.map(spanText).join('\n')), [])
})

test.serial('the live-sessions gauge counts with length(), at most every liveEvery seconds', async (t) => {
  const store = new RedisSessionStore({ url: 'memory://otel-live', metrics: { liveEvery: 3600 } })
  for (let i = 0; i < 3; i++) await store.set(sid(), session())
  const live = (m) => m['redis_session_store.sessions.live']?.dataPoints.find((p) => p.attributes['db.system.name'] === 'redis_session_store.memory')
  const first = live(await collect())
  t.is(first.value, 3)
  t.is(first.attributes['redis_session_store.prefix'], 'sess:')
  spans.reset()
  await store.set(sid(), session())
  // Counted once per hour: a collection now reuses the count.
  t.is(live(await collect()).value, 3)
  t.deepEqual(spans.getFinishedSpans().map((s) => s.name), ['session set'], 'the count is not a traced call')
  await store.close()
})

test('the metrics option is checked', (t) => {
  t.throws(() => new RedisSessionStore({ url: 'memory://x', metrics: { every: 5 } }), { instanceOf: TypeError, message: /"metrics\.every"/ })
  t.throws(() => new RedisSessionStore({ url: 'memory://x', metrics: { liveEvery: 0 } }), { instanceOf: TypeError, message: /"metrics\.liveEvery"/ })
  t.throws(() => new RedisSessionStore({ url: 'memory://x', metrics: 5 }), { instanceOf: TypeError, message: /"metrics"/ })
})

test.serial('the counter feeds for lifecycle events: created, and ended by reason', async (t) => {
  const store = new RedisSessionStore({ url: `redis://127.0.0.1:${redis.port}` })
  sessionCreated(store)
  sessionCreated(store)
  sessionEnded(store, 'logout')
  sessionEnded(store, 'idle')
  sessionEnded(store, 'idle')
  await store.close()
  const m = await collect()
  const mine = (p) => p.attributes['server.port'] === redis.port && p.attributes['db.system.name'] === 'redis'
  t.deepEqual(m['redis_session_store.sessions.created'].dataPoints.filter(mine).map((p) => p.value), [2])
  const ended = Object.fromEntries(m['redis_session_store.sessions.ended'].dataPoints.filter(mine).map((p) => [p.attributes.reason, p.value]))
  t.deepEqual(ended, { logout: 1, idle: 2 })
})

test.serial('TracingChannel redis-session-store:call: start, end, asyncStart, asyncEnd and error, with no session id', async (t) => {
  const channel = dc.tracingChannel('redis-session-store:call')
  const seen = []
  const record = (event) => (ctx) => seen.push({ event, ctx, text: require('node:util').inspect(ctx, { depth: 5 }) })
  const handlers = { start: record('start'), end: record('end'), asyncStart: record('asyncStart'), asyncEnd: record('asyncEnd'), error: record('error') }
  channel.subscribe(handlers)
  const store = new RedisSessionStore({ url: redis.url, prefix: 'otel:' })
  const id = sid()
  await store.set(id, session(user()))
  await new Promise((resolve) => store.get(id, resolve))
  const bad = sid()
  const raw = await RawRedis.connect(redis.url)
  await raw.call('SET', `otel:${bad}`, 'not json {')
  raw.close()
  await store.get(bad).catch(() => {})
  await store.close()
  channel.unsubscribe(handlers)

  const events = seen.map((s) => `${s.ctx.operation}:${s.event}`)
  t.deepEqual(events, [
    'set:start', 'set:end', 'set:asyncStart', 'set:asyncEnd',
    'get:start', 'get:end', 'get:asyncStart', 'get:asyncEnd',
    'get:start', 'get:end', 'get:error', 'get:asyncStart', 'get:asyncEnd',
  ])
  t.is(seen[6].ctx.result, 'hit')
  t.is(seen[0].ctx.system, 'redis')
  t.is(seen[0].ctx.serverPort, redis.port)
  const failed = seen.find((s) => s.event === 'error').ctx
  t.is(failed.error.code, 'ERR_SESSION_CORRUPT')
  t.is(failed.result, 'corrupt')
  t.deepEqual(leaks(seen.map((s) => s.text).join('\n')), [])
})

test('the package loads and works without @opentelemetry/api, from require and import, the channel still on', (t) => {
  const { dir, dispose } = packageWithoutOtel()
  try {
    const script = path.join(dir, 'check.mjs')
    fs.writeFileSync(
      script,
      `
      import { createRequire } from 'node:module'
      import dc from 'node:diagnostics_channel'
      const require = createRequire(import.meta.url)
      let missing = false
      try { require.resolve('@opentelemetry/api') } catch { missing = true }
      const { RedisSessionStore } = await import('redis-session-store')
      const cjs = require('redis-session-store')
      const events = []
      dc.tracingChannel('redis-session-store:call').start.subscribe((ctx) => events.push(ctx.operation))
      const store = new cjs.RedisSessionStore({ url: 'memory://no-otel', metrics: { liveEvery: 1 } })
      await store.set('a', { cookie: { maxAge: 1000 }, n: 7 })
      const got = await store.get('a')
      await store.close()
      console.log(JSON.stringify({ missing, same: RedisSessionStore === cjs.RedisSessionStore, n: got.n, events }))
      `,
    )
    const out = JSON.parse(execFileSync(process.execPath, [script], { cwd: dir, encoding: 'utf8' }))
    t.deepEqual(out, { missing: true, same: true, n: 7, events: ['set', 'get'] })
  } finally {
    dispose()
  }
})

test.serial('TracingChannel stores: the call runs in those bound to start, its callback in those bound to asyncStart', async (t) => {
  const { AsyncLocalStorage } = require('node:async_hooks')
  const channel = dc.tracingChannel('redis-session-store:call')
  const als = new AsyncLocalStorage()
  channel.start.bindStore(als, (ctx) => `in ${ctx.operation}`)
  channel.asyncStart.bindStore(als, (ctx) => `after ${ctx.operation}`)
  const inStart = []
  const onStart = () => inStart.push(als.getStore())
  channel.start.subscribe(onStart)
  const store = new RedisSessionStore({ url: 'memory://otel-stores' })
  try {
    const seen = await new Promise((resolve) => store.get(sid(), () => resolve(als.getStore())))
    t.is(seen, 'after get')
    t.deepEqual(inStart, ['in get'])
  } finally {
    channel.start.unsubscribe(onStart)
    channel.start.unbindStore(als)
    channel.asyncStart.unbindStore(als)
    await store.close()
  }
})
