'use strict'

// One store call being observed: its span, its start time for the duration
// histogram, and its TracingChannel context. Made only when something is
// listening; what it records never includes a session id, key, user id or
// value (the precomputed attributes hold only the operation and target).
const { performance } = require('node:perf_hooks')
const { channel } = require('./channel')

const STATUS_ERROR = 2 // SpanStatusCode.ERROR

// The store's error code (ERR_REDIS_UNAVAILABLE, ...), never a message:
// messages can name a session's key.
function errorType(err) {
  if (err && typeof err.code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(err.code)) return err.code
  if (err && typeof err.name === 'string' && /^\w+$/.test(err.name)) return err.name
  return '_OTHER'
}

// What get() found: 'hit', 'miss', or 'corrupt' (a value that is not a
// session). An expiry by idle or absolute timeout reads as a miss here.
function getResult(err, value) {
  if (err) return err.code === 'ERR_SESSION_CORRUPT' ? 'corrupt' : undefined
  return value == null ? 'miss' : 'hit'
}

class Call {
  // `op`: the store's precomputed view of one operation (see attach);
  // `on`: the live tracer and instruments; `sub`: whether the channel has
  // subscribers; `sid`: the call's session id, only to hide it in errors.
  constructor(store, op, on, sub, sid) {
    this.store = store
    this.op = op
    this.sid = sid
    this.instruments = on.instruments
    this.t0 = this.instruments === null ? 0 : performance.now()
    this.span = on.tracer === null ? null : on.tracer.startSpan(op.spanName, op.spanOptions)
    this.ctx = sub ? { operation: op.name, ...op.target } : null
  }

  settle(err, value) {
    const op = this.op
    const result = op.name === 'get' ? getResult(err, value) : undefined
    const type = err ? errorType(err) : undefined
    const span = this.span
    if (span !== null) {
      if (result !== undefined) span.setAttribute('redis_session_store.result', result)
      if (err) {
        span.setAttribute('error.type', type)
        span.setStatus({ code: STATUS_ERROR })
      }
      span.end()
    }
    if (this.instruments !== null) {
      const seconds = (performance.now() - this.t0) / 1000
      this.instruments.duration.record(seconds, err ? { ...op.attributes, 'error.type': type } : op.attributes)
    }
    const ctx = this.ctx
    if (ctx !== null) {
      if (result !== undefined) ctx.result = result
      if (err) {
        ctx.error = this.store._withoutSid(err, this.sid)
        channel.error.publish(ctx)
      }
    }
  }

  // The caller's callback, called after the call is recorded (and inside
  // asyncStart's stores, as TracingChannel#traceCallback does).
  callback(cb) {
    const call = this
    return function settled(err, value) {
      call.settle(err, value)
      const ctx = call.ctx
      if (ctx === null) return cb.apply(this, arguments)
      const args = arguments
      return channel.asyncStart.runStores(ctx, () => {
        try {
          return cb.apply(this, args)
        } finally {
          channel.asyncEnd.publish(ctx)
        }
      })
    }
  }

  // A promise the caller awaits: recorded when it settles.
  watch(promise) {
    promise.then(
      (value) => this.settled(null, value),
      (err) => this.settled(err),
    )
  }

  settled(err, value) {
    this.settle(err, value)
    if (this.ctx !== null) {
      channel.asyncStart.publish(this.ctx)
      channel.asyncEnd.publish(this.ctx)
    }
  }

  // Runs the call itself, inside start's stores when the channel is on.
  run(fn) {
    const ctx = this.ctx
    if (ctx === null) return fn()
    return channel.start.runStores(ctx, () => {
      try {
        return fn()
      } finally {
        channel.end.publish(ctx)
      }
    })
  }
}

module.exports = { Call, errorType }
