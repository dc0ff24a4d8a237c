'use strict'

const { fromNative, RedisSessionStoreError, atTarget } = require('./errors')
const { Near } = require('./near')
const binding = require('./native').binding()

// Numbers per operation in the store's input array: kind, expiresAt, idle
// and absolute limits (see wire::decode in src/binding/wire.rs).
const { INPUT_STRIDE } = binding

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

// Replies to fewer operations are not split (see settleBatch).
const SPLIT_MIN = 16
const MIN_CAPACITY = 64
const MAX_KEPT_CAPACITY = 4096

// Gathers the operations issued in one tick of the event loop and sends
// them to Rust in one call, at the end of the current microtask queue: no
// operation waits for a later tick, and their order is kept. Outcomes come
// back through one long-lived callback, by batch id.
class Batcher {
  // `open(onReply)` creates the native store with the reply callback;
  // replies under `warningId` are warnings about the server, for `onWarning`.
  // Batches go over the near socket when the server allows one (see
  // near.js), with `timeoutMs` the command timeout. `target`: where the
  // store connects, for connection errors (see errors.js).
  constructor(open, warningId, onWarning, timeoutMs, { target } = {}) {
    this.target = target
    this.warningId = warningId
    // Replies under `eventsId` are lifecycle events, for `onEvents` (set by
    // the store).
    this.eventsId = null
    this.onEvents = null
    this.onWarning = onWarning
    this.scheduled = false
    this.nextId = 0
    this.inFlight = new Map()
    this.reset()
    this.flush = this.flush.bind(this)
    this.onReply = this.onReply.bind(this)
    this.native = open(this.onReply)
    // Each operation's numbers go to Rust in an array it holds too, written
    // in place: no conversion per batch (Rust copies what it needs in exec).
    this.inputs = this.native.inputs(MIN_CAPACITY * INPUT_STRIDE)
    // exec and nearRead name the store by its slot (see src/binding/slots.rs).
    this.slot = this.native.slot()
    const server = this.native.nearServer()
    this.onBatch = this.onBatch.bind(this)
    this.near = server ? new Near(this.native, this.slot, server, timeoutMs, this.onBatch) : null
  }

  reset() {
    this.sids = []
    this.values = []
    this.owners = []
    this.callbacks = []
  }

  // `kind` is one of the binding's OpKind; `value` is the session text for
  // Set and Rewrite, null otherwise; `owner` is a string ('' for none) for
  // writes and Adopt, the reason ('logout', 'revoked', 'binding') for
  // Destroy, null otherwise; `idleMs` and `absoluteMs` are the
  // session's own limits, for the writes of a store whose limits are
  // functions of the session (ms, NaN for none).
  push(kind, sid, value, owner, expiresAt, cb, idleMs = NaN, absoluteMs = NaN) {
    const at = this.callbacks.length * INPUT_STRIDE
    if (at === this.inputs.length) this.grow()
    const inputs = this.inputs
    inputs[at] = kind
    inputs[at + 1] = expiresAt
    inputs[at + 2] = idleMs
    inputs[at + 3] = absoluteMs
    this.sids.push(sid)
    // A merge carries two values: what was loaded, then what is saved.
    if (Array.isArray(value)) this.values.push(value[0], value[1])
    else if (value !== null) this.values.push(value)
    // ... and two owners: of what was loaded, then of what is saved.
    if (Array.isArray(owner)) this.owners.push(owner[0], owner[1])
    else if (owner !== null) this.owners.push(owner)
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

  grow() {
    const inputs = this.native.inputs(this.inputs.length * 2)
    inputs.set(this.inputs)
    this.inputs = inputs
  }

  flush() {
    this.scheduled = false
    const { sids, values, owners, callbacks } = this
    const n = callbacks.length
    if (n === 0) return
    this.reset()
    const id = this.nextId
    this.nextId = (id + 1) >>> 0
    try {
      // Few napi conversions per batch: the numbers are in `inputs` already,
      // the sids joined (checkSid keeps newlines out of them). See decode()
      // in src/binding/wire.rs.
      // Rust keeps Node alive until the reply (see InFlight in src/binding/mod.rs).
      // With the near socket open, Rust may hand back bytes to write there.
      const near = this.near !== null && this.near.usable()
      const bytes = binding.exec(this.slot, id, n, sids.join('\n'), values, owners, near)
      if (bytes !== null) this.near.send(bytes)
    } catch (err) {
      const error = fromNative(err, this.target)
      process.nextTick(() => {
        for (const cb of callbacks) settle(cb, error)
      })
      return
    } finally {
      // A burst's array is not kept.
      if (this.inputs.length > MAX_KEPT_CAPACITY * INPUT_STRIDE) this.inputs = this.native.inputs(MIN_CAPACITY * INPUT_STRIDE)
    }
    this.inFlight.set(id, callbacks)
  }

  // Sends what is queued; resolves once the near socket's batches are
  // answered and it is closed (the writer's are the native close's).
  close() {
    this.flush()
    return this.near ? this.near.close() : Promise.resolve()
  }

  // The arguments are a BatchReply's fields (see src/binding/wire.rs).
  onReply(id, values, expiresAt, ownerSessions, errorCodes, errorMessages) {
    if (id === this.warningId) return this.onWarning(errorCodes[0], errorMessages[0])
    if (id === this.eventsId) return this.onEvents(values)
    this.settleBatch(id, errorCodes, errorMessages, (cb, i) => settle(cb, null, values[i], expiresAt[i], ownerSessions[i]))
  }

  // The batch at `at` of a near socket's reply numbers (see near.js, and
  // answer() in src/binding/near.rs): id, n, then n triples (value length,
  // -1 for none; expiresAt; ownerSessions). `text` holds its values in
  // order, in one string or an array of strings each holding whole values.
  // Returns where the next batch starts.
  onBatch(numbers, at, text, errors) {
    const base = at + 2
    const chunks = typeof text === 'string' ? null : text
    let chunk = chunks === null ? text : chunks[0]
    let next = 1
    let pos = 0
    this.settleBatch(numbers[at], errors && errors[0], errors && errors[1], (cb, i) => {
      const len = numbers[base + 3 * i]
      let value = null
      if (len >= 0) {
        if (pos + len > chunk.length) {
          chunk = chunks[next++]
          pos = 0
        }
        value = chunk.slice(pos, pos + len)
        pos += len
      }
      settle(cb, null, value, numbers[base + 3 * i + 1], numbers[base + 3 * i + 2])
    })
    return base + 3 * numbers[at + 1]
  }

  // Settles batch `id`'s callbacks: an error where `errorCodes` has one,
  // else through `ok(callback, i)`.
  settleBatch(id, errorCodes, errorMessages, ok) {
    const callbacks = this.inFlight.get(id)
    if (!callbacks) return
    this.inFlight.delete(id)
    const n = callbacks.length
    const half = n >= SPLIT_MIN && this.inFlight.size === 0 ? n >> 1 : -1
    for (let i = 0; i < n; i++) {
      // Under load replies come back a wave at a time. The operations the
      // first half's callbacks issued go out before the second half runs,
      // so Redis works on them meanwhile: two half waves take turns instead
      // of one wave waiting on the event loop, then on Redis. Only while
      // nothing else is in flight: halving every reply would shrink the
      // batches until their own cost dominates.
      if (i === half && this.scheduled) this.flush()
      if (errorCodes && errorCodes[i]) {
        settle(callbacks[i], new RedisSessionStoreError(errorCodes[i], atTarget(errorCodes[i], errorMessages[i], this.target)))
      } else {
        ok(callbacks[i], i)
      }
    }
  }
}

module.exports = { Batcher }
