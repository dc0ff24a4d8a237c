'use strict'

const { fromNative, RedisSessionStoreError } = require('./errors')

// A user's callback that throws must not stop the others in its batch, nor
// be called twice: rethrow it on its own tick, as Node does for callbacks.
function settle(cb, err, value, expiresAt, ownerSessions) {
  try {
    cb(err, value, expiresAt, ownerSessions)
  } catch (thrown) {
    process.nextTick(() => {
      throw thrown
    })
  }
}

// Gathers the operations issued in one tick of the event loop and sends
// them to Rust in one call, at the end of the current microtask queue: no
// operation waits for a later tick, and their order is kept. Outcomes come
// back through one long-lived callback, by batch id.
class Batcher {
  // `open(onReply)` creates the native store with the reply callback;
  // replies under `warningId` are warnings about the server, for `onWarning`.
  constructor(open, warningId, onWarning) {
    this.warningId = warningId
    this.onWarning = onWarning
    this.scheduled = false
    this.nextId = 0
    this.inFlight = new Map()
    this.reset()
    this.flush = this.flush.bind(this)
    this.native = open(this.onReply.bind(this))
  }

  reset() {
    this.kinds = []
    this.sids = []
    this.values = []
    this.owners = []
    this.expires = []
    this.callbacks = []
  }

  // `kind` is one of the binding's OpKind; `value` is the session text for
  // Set and Rewrite, null otherwise; `owner` is a string ('' for none) for
  // writes and Adopt, null otherwise.
  push(kind, sid, value, owner, expiresAt, cb) {
    this.kinds.push(kind)
    this.sids.push(sid)
    if (value !== null) this.values.push(value)
    if (owner !== null) this.owners.push(owner)
    this.expires.push(expiresAt)
    this.callbacks.push(cb)
    if (!this.scheduled) {
      this.scheduled = true
      // Idle: send at the end of this tick, for the lowest latency. While a
      // batch is in flight Rust would hold this one until it returns anyway,
      // so gather the rest of this event-loop iteration (other requests'
      // I/O callbacks) into the same crossing.
      if (this.inFlight.size === 0) queueMicrotask(this.flush)
      else setImmediate(this.flush)
    }
  }

  flush() {
    this.scheduled = false
    const { kinds, sids, values, owners, expires, callbacks } = this
    if (kinds.length === 0) return
    this.reset()
    const id = this.nextId
    this.nextId = (id + 1) >>> 0
    try {
      // Few napi conversions per batch: typed arrays, and the sids joined
      // (checkSid keeps newlines out of them). See decode() in src/binding.rs.
      this.native.exec(id, Uint8Array.from(kinds), sids.join('\n'), values, owners, Float64Array.from(expires))
    } catch (err) {
      const error = fromNative(err)
      process.nextTick(() => {
        for (const cb of callbacks) settle(cb, error)
      })
      return
    }
    // Keep Node alive only while something is in flight.
    if (this.inFlight.size === 0) this.native.hold()
    this.inFlight.set(id, callbacks)
  }

  // napi passes the (batchId, reply) tuple as one array.
  onReply([id, reply]) {
    if (id === this.warningId) return this.onWarning(reply.errorCodes[0], reply.errorMessages[0])
    const callbacks = this.inFlight.get(id)
    if (!callbacks) return
    this.inFlight.delete(id)
    if (this.inFlight.size === 0) this.native.release()
    const { values, expiresAt, ownerSessions, errorCodes, errorMessages } = reply
    for (let i = 0; i < callbacks.length; i++) {
      if (errorCodes && errorCodes[i]) {
        settle(callbacks[i], new RedisSessionStoreError(errorCodes[i], errorMessages[i]))
      } else {
        settle(callbacks[i], null, values[i], expiresAt[i], ownerSessions[i])
      }
    }
  }
}

module.exports = { Batcher }
