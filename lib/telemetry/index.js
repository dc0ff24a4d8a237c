'use strict'

// Spans, metrics and diagnostics_channel messages for the store's public
// calls. index.js calls attach() from the constructor and instrument() once
// on the prototype; everything else about telemetry lives in this folder.
//
// sessionCreated(store) and sessionEnded(store, reason) feed the counters
// redis_session_store.sessions.created / .ended: the lifecycle events call
// them where a session is first stored or ends (exactly once across
// instances), so the counters agree with the events. Nothing else calls
// them: a set() cannot tell a new session from a rewrite today.
const { loadApi, current } = require('./otel')
const { subscribed } = require('./channel')
const { targetOf } = require('./target')
const { Call } = require('./call')
const live = require('./live')

const TELEMETRY = Symbol('redis-session-store telemetry')

const CALLS = [
  'get',
  'set',
  'touch',
  'destroy',
  'all',
  'ids',
  'length',
  'clear',
  'reindex',
  'reencrypt',
  'listUserSessions',
  'revokeUserSession',
  'destroyUserSessions',
  'stats',
  'recordDevice',
]
// Calls whose first argument is a session id (hidden in channel errors).
const BY_SID = new Set(['get', 'set', 'touch', 'destroy', 'recordDevice'])

const SPAN_KIND_INTERNAL = 0
const SPAN_KIND_CLIENT = 2

// Per store: each operation's span name and attributes, made once so a
// traced call allocates no attribute objects of its own.
function attach(store, o) {
  loadApi()
  const { embedded, attributes } = targetOf(o)
  const kind = embedded ? SPAN_KIND_INTERNAL : SPAN_KIND_CLIENT
  const target = {
    system: attributes['db.system.name'],
    serverAddress: attributes['server.address'],
    serverPort: attributes['server.port'],
  }
  const ops = {}
  for (const name of CALLS) {
    const opAttributes = { ...attributes, 'db.operation.name': name }
    ops[name] = { name, spanName: `session ${name}`, attributes: opAttributes, spanOptions: { kind, attributes: opAttributes }, target }
  }
  store[TELEMETRY] = { attributes, ops, ended: new Map() }
  const liveEvery = o.metrics && o.metrics.liveEvery
  if (liveEvery !== undefined) {
    live.add(store, liveEvery, { ...attributes, 'redis_session_store.prefix': o.prefix }, lengthOf)
    current()
  }
}

// The unwrapped length(): the live gauge's counts are not calls to trace.
let lengthOf = null

// Wraps the prototype's public calls once, and close() to leave the live
// gauge. With nothing listening a call costs two global look-ups and a
// channel check, and allocates nothing.
function instrument(proto) {
  lengthOf = proto.length
  for (const name of CALLS) proto[name] = wrap(name, proto[name])
  const closeStore = proto.close
  proto.close = function close(cb) {
    live.remove(this)
    return closeStore.call(this, cb)
  }
}

function wrap(name, original) {
  const arity = original.length
  if (arity > 3) throw new Error(`telemetry: ${name} takes more than 3 arguments`)
  const bySid = BY_SID.has(name)
  const wrapped = function (a, b, c) {
    const t = this[TELEMETRY]
    if (t === undefined) return original.call(this, a, b, c)
    const on = current()
    const sub = subscribed()
    if (on.tracer === null && on.instruments === null && !sub) return original.call(this, a, b, c)
    const call = new Call(this, t.ops[name], on, sub, bySid ? a : undefined)
    // The callback: the last function among the declared parameters
    // (stats(cb) and destroyUserSessions(userId, cb) skip their options).
    let withCallback = true
    if (arity > 2 && typeof c === 'function') c = call.callback(c)
    else if (arity > 1 && typeof b === 'function') b = call.callback(b)
    else if (arity > 0 && typeof a === 'function') a = call.callback(a)
    else withCallback = false
    let returned
    try {
      returned = call.run(() => original.call(this, a, b, c))
    } catch (err) {
      call.settled(err)
      throw err
    }
    if (!withCallback && returned && typeof returned.then === 'function') call.watch(returned)
    return returned
  }
  Object.defineProperty(wrapped, 'name', { value: name })
  Object.defineProperty(wrapped, 'length', { value: arity })
  return wrapped
}

// Counter feeds for the lifecycle events (see the top of this file).
function sessionCreated(store) {
  const t = store[TELEMETRY]
  const on = current()
  if (t === undefined || on.instruments === null) return
  on.instruments.created.add(1, t.attributes)
}

// `reason`: the event's (logout, revoked, everywhere, limit, idle,
// absolute, expired, binding).
function sessionEnded(store, reason) {
  const t = store[TELEMETRY]
  const on = current()
  if (t === undefined || on.instruments === null) return
  let attributes = t.ended.get(reason)
  if (attributes === undefined) t.ended.set(reason, (attributes = { ...t.attributes, reason }))
  on.instruments.ended.add(1, attributes)
}

module.exports = { attach, instrument, sessionCreated, sessionEnded, TELEMETRY }
