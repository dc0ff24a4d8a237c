'use strict'

// What the contract tests share: sessions as express-session hands them
// over, clocks, and the bounds a correct store must keep.
const { randomUUID } = require('node:crypto')

// A session as express-session gives it to the store (cookie through toJSON).
function session(maxAgeMs = 60_000, extra = {}) {
  return {
    cookie: { originalMaxAge: maxAgeMs, expires: new Date(Date.now() + maxAgeMs).toISOString(), httpOnly: true, path: '/' },
    ...extra,
  }
}

// The same session with its cookie moved to expire `maxAgeMs` from now, as
// express-session's touch of an unmodified session hands it over.
function touched(sess, maxAgeMs) {
  return { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + maxAgeMs).toISOString() } }
}

// What a stored session reads back as: JSON's view of it.
const asStored = (sess) => JSON.parse(JSON.stringify(sess))

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const sleepUntil = (ms) => sleep(Math.max(0, ms - Date.now()))
const user = () => `user-${randomUUID()}`
const listedIds = async (store, userId) => (await store.listUserSessions(userId)).map((s) => s.id)
const sorted = (ids) => [...ids].sort()

// Runs `op` and gives the Date.now() window it ran in: whatever time the
// store took for it lies in [from, to].
async function timed(op) {
  const from = Date.now()
  const value = await op()
  return { from, to: Date.now(), value }
}

// Slack for the end of a lifetime: a store and Date.now() may round a
// millisecond apart, and a timer may fire a little early.
const PAST = 25

// `ms` within [from - slack, to + slack] (clocks rounding a ms either way).
function within(t, ms, from, to, what, slack = 2) {
  t.true(ms >= from - slack && ms <= to + slack, `${what}: ${ms} not within [${from}, ${to}]`)
}

// Checks that hold only when a call beat a deadline (the store had to keep
// the session until then) are skipped when this machine was too slow for
// that: each such guard goes through inTime(), which counts the checks made
// and skipped in this test process, so that a run which skipped most of
// them fails (timingVerdict) rather than passing without checking.
const timing = { made: 0, skipped: 0 }

// `ok`: the precondition of a timing check held (or its outcome is known
// anyway); returns it. A skip is logged with `what`.
function inTime(t, ok, what) {
  if (ok) timing.made++
  else {
    timing.skipped++
    t.log(`${what}: this busy machine reached the deadline first; not checked`)
  }
  return Boolean(ok)
}

// Why the run must fail, or null: more than 3 timing checks skipped, and
// more than a quarter of them.
function timingVerdict() {
  const { made, skipped } = timing
  const all = made + skipped
  if (skipped <= 3 || skipped <= all / 4) return null
  return `${skipped} of ${all} timing checks were skipped: the machine was too loaded to check the timing (calls finished after the deadlines they had to beat); run the tests again on a less loaded machine`
}

// Calls `method(...args, cb)` and reports how the callback was called: it
// must be called once, after the method returned, so a caller's code after
// the call always runs first. Waits a little after the first call to see
// a second one; gives up (no calls) after 5 s rather than hang.
function viaCallback(method, ...args) {
  return new Promise((resolve) => {
    let returned = false
    let ret
    const calls = []
    const giveUp = setTimeout(() => resolve({ ret, calls }), 5000)
    ret = method(...args, (...cbArgs) => {
      calls.push({ afterReturn: returned, args: cbArgs })
      if (calls.length === 1) {
        clearTimeout(giveUp)
        setTimeout(() => resolve({ ret, calls }), 30)
      }
    })
    returned = true
  })
}

// stats() without the numbers that depend on time (averageAge, oldestCreatedAt).
const pickCounts = ({ sessions, users, active }) => ({ sessions, users, active })
const counts = async (store, options) => pickCounts(await store.stats(options))

// An error about session `sid` names it by handle, never by id or key;
// the key is on a property that JSON and logs do not show.
function namesSession(t, err, store, sid) {
  if (sid.length < 8) throw new Error('namesSession needs a distinctive sid to search for')
  t.true(err.message.includes(store.handleOf(sid)), err.message)
  t.false(err.message.includes(sid), `the message shows the session id: ${err.message}`)
  t.false(JSON.stringify(err).includes(sid), 'the error serializes the session id')
}

module.exports = { inTime, timingVerdict, namesSession, counts, pickCounts, session, touched, asStored, sleep, sleepUntil, user, listedIds, sorted, timed, within, viaCallback, PAST }
