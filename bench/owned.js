'use strict'

// Runs inside a store's process (store-worker.js): many sessions with an
// owner, written fast, for the Redis memory part (memory.js) and the scale
// part (scale.js); and one timed call of the calls over many sessions.
const crypto = require('node:crypto')
const { performance } = require('node:perf_hooks')
const { makeSession } = require('./sessions')

// express-session's default id: 24 random bytes, base64url (32 chars).
const newSid = () => crypto.randomBytes(24).toString('base64url')

// n sessions of about `size` bytes with new ids, owned `perUser` at a time
// by users u0, u1, … as `userId` (this store's default owner; connect-redis
// stores the same JSON and ignores it). `concurrency` sets in flight at a
// time; stops by itself after maxMs (cutShort).
function fillOwned(store, { n, perUser, size, concurrency, maxMs }) {
  // The owner field counts in the size.
  const bodies = Array.from({ length: 50 }, (_, k) => makeSession(Math.max(1, size - ',"userId":"u0"'.length), k))
  const sessionOf = (i) => ({ ...bodies[i % bodies.length], userId: `u${Math.floor(i / perUser)}` })
  return new Promise((resolve) => {
    const t0 = performance.now()
    let issued = 0
    let written = 0
    let errors = 0
    let firstError = null
    let active = Math.min(concurrency, n)
    let stopped = false
    const limit = setTimeout(() => (stopped = true), maxMs)
    function next() {
      if (stopped || issued >= n) {
        if (--active === 0) {
          clearTimeout(limit)
          const ms = performance.now() - t0
          resolve({ written, ms, setsPerSec: written / (ms / 1000), errors, firstError, cutShort: stopped, sessionBytes: JSON.stringify(sessionOf(0)).length })
        }
        return
      }
      const i = issued++
      store.set(newSid(), sessionOf(i), (err) => {
        if (err) {
          errors++
          if (!firstError) firstError = String(err.message || err)
        } else written++
        next()
      })
    }
    if (active === 0) return resolve({ written: 0, ms: 0, setsPerSec: null, errors: 0, firstError: null, cutShort: false, sessionBytes: null })
    for (let k = active; k > 0; k--) next()
  })
}

// The calls over many sessions, each resolving to a count.
const CALLS = {
  length: (store) => store.length(),
  stats: async (store) => (await store.stats()).sessions,
  listUserSessions: async (store, { userId }) => (await store.listUserSessions(userId)).length,
}

// One call, timed from issuing it to its answer; an error is a result.
async function timeCall(store, { op, args = {} }) {
  const t0 = performance.now()
  try {
    const count = await CALLS[op](store, args)
    return { ms: performance.now() - t0, count }
  } catch (err) {
    return { ms: performance.now() - t0, error: `${(err && err.code) || ''} ${(err && err.message) || err}`.trim() }
  }
}

module.exports = { fillOwned, timeCall }
