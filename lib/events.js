'use strict'

const telemetry = require('./telemetry')

// Lifecycle events ('sessionCreated', 'sessionEnded'): Rust tells them
// from the replies of the scripts that create and end sessions (once for a
// fleet, see docs/events.md) and hands them over with the sid; here each
// session is named by its handle instead, so no payload holds a sid.

const EVENTS = ['sessionCreated', 'sessionEnded']

// Rust makes events only while someone listens: listeners added or
// removed switch it. 'newListener' comes before the listener is counted,
// so it switches on at once: a call made right after on() (whose batch may
// cross in a microtask, before any nextTick) must already be told.
function watchListeners(store, native) {
  const update = () => native.listen(EVENTS.some((name) => store.listenerCount(name) > 0))
  store.on('newListener', (name) => {
    if (EVENTS.includes(name)) native.listen(true)
  })
  store.on('removeListener', (name) => {
    if (EVENTS.includes(name)) update()
  })
}

const date = (ms) => (ms === null || ms === undefined ? null : new Date(ms))

// `lines` are the JSON texts of src/binding/wire.rs `events`.
function deliver(store, lines) {
  for (const line of lines) {
    const e = JSON.parse(line)
    const handle = store.handleOf(e.sid)
    const userId = e.owner === '' ? null : e.owner
    if (e.reason === undefined) {
      telemetry.sessionCreated(store)
      store.emit('sessionCreated', { handle, userId, createdAt: date(e.created) })
      continue
    }
    telemetry.sessionEnded(store, e.reason)
    store.emit('sessionEnded', {
      handle,
      userId,
      createdAt: date(e.created),
      lastAccess: date(e.lastAccess),
      endedAt: new Date(e.ended),
      duration: e.created === null ? null : Math.max(0, e.ended - e.created),
      reason: e.reason,
    })
  }
}

// captureDevice's binding ends a session through regenerate(), which calls
// destroy(sid): the reason it gives is noted here for that call.
const pending = new WeakMap()

function endFor(store, sid, reason) {
  let reasons = pending.get(store)
  if (!reasons) pending.set(store, (reasons = new Map()))
  reasons.set(sid, reason)
}

function reasonOf(store, sid) {
  const reasons = pending.get(store)
  const reason = reasons && reasons.get(sid)
  if (reason === undefined) return 'logout'
  reasons.delete(sid)
  return reason
}

module.exports = { watchListeners, deliver, endFor, reasonOf }
