'use strict'

// absoluteTimeout and idleTimeout (issue #5), enforced by the store on top of
// the cookie's expiry, and indexes that never go stale: a session that
// expires or is destroyed disappears from every list and count, without
// keyspace notifications. Against a real redis-server.
const test = require('ava')
const { randomUUID } = require('node:crypto')
const { RedisSessionStore } = require('..')
const { storeSuite, session, sleep } = require('./helpers/suite')
const { inTime, timingVerdict } = require('./conformance/util')

const { redis, raw, makeStore } = storeSuite(test, 'to')
const sleepUntil = (ms) => sleep(Math.max(0, ms - Date.now()))
const user = () => `user-${randomUUID()}`
const listedIds = async (store, userId) => (await store.listUserSessions(userId)).map((s) => s.id)
const expireTime = (store, sid) => raw.call('PEXPIRETIME', `${store.prefix}${sid}`)

// Timing checks skipped on a loaded machine (inTime) fail the run when
// they are most of them, rather than letting it pass unchecked.
test.after.always('timing checks were made', (t) => {
  const why = timingVerdict()
  if (why) t.fail(why)
  else t.pass()
})

// `ms` within [from - slack, to + slack]: Redis and Node read the same clock,
// but one may round a millisecond the other way.
function within(t, ms, from, to, what, slack = 2) {
  t.true(ms >= from - slack && ms <= to + slack, `${what}: ${ms} not within [${from}, ${to}]`)
}

// Runs `op` and gives the Date.now() window it ran in.
async function timed(op) {
  const from = Date.now()
  const value = await op()
  return { from, to: Date.now(), value }
}

// What every backend must do with the timeouts (sessions ending, touches
// keeping them alive, late saves, the soonest deadline, lists that never go
// stale, the races with a deadline) is in conformance/timeouts.js and
// expiry.js. What stays here is what only Redis shows: the key's
// PEXPIRETIME to the millisecond, that an ended session leaves no key, that
// no keyspace notifications are needed, and the value as connect-redis reads it.

test('idleTimeout: the key\'s PEXPIRETIME is idleTimeout after the last set or touch; get does not move it', async (t) => {
  const store = makeStore({ idleTimeout: 0.8 })
  const ada = user()

  const set = await timed(() => store.set('i', session(60_000, { userId: ada })))
  const e1 = await expireTime(store, 'i')
  within(t, e1, set.from + 800, set.to + 800, 'expiry after set')

  await sleep(100)
  t.truthy(await store.get('i'))
  t.is(await expireTime(store, 'i'), e1, 'get moved the expiry')

  const touch = await timed(() => store.touch('i', session(60_000, { userId: ada })))
  const e2 = await expireTime(store, 'i')
  within(t, e2, touch.from + 800, touch.to + 800, 'expiry after touch')
  t.true(e2 > e1)
  const [listed] = await store.listUserSessions(ada)
  t.is(listed.expiresAt.getTime(), e2)

  // A second set (a modified session saved) counts as access too.
  await sleep(100)
  const resave = await timed(() => store.set('i', session(60_000, { userId: ada, n: 1 })))
  const e3 = await expireTime(store, 'i')
  within(t, e3, resave.from + 800, resave.to + 800, 'expiry after a second set')

  // Sessions without an owner get the idle deadline as well.
  const anon = await timed(() => store.set('anon', session(60_000)))
  within(t, await expireTime(store, 'anon'), anon.from + 800, anon.to + 800, 'expiry of an anonymous session')

  await sleepUntil(e3 + 30)
  t.is(await raw.call('EXISTS', `${store.prefix}i`), 0)
})

test('absoluteTimeout: the key\'s PEXPIRETIME stays createdAt + absoluteTimeout; a save after it writes no key', async (t) => {
  const store = makeStore({ absoluteTimeout: 1 })
  const ada = user()

  const set = await timed(() => store.set('a', session(60_000, { userId: ada })))
  const deadline = await expireTime(store, 'a')
  within(t, deadline, set.from + 1000, set.to + 1000, 'expiry after set')

  await sleep(100)
  await store.touch('a', session(60_000, { userId: ada }))
  t.is(await expireTime(store, 'a'), deadline, 'touch moved the absolute deadline')
  await store.set('a', session(60_000, { userId: ada, cart: [1] }))
  t.is(await expireTime(store, 'a'), deadline, 'a second set moved the absolute deadline')
  const [listed] = await store.listUserSessions(ada)
  t.is(listed.expiresAt.getTime(), deadline)

  await sleepUntil(deadline + 30)
  t.is(await raw.call('EXISTS', `${store.prefix}a`), 0)
  // A request that loaded the session just before the deadline saves it now.
  await store.set('a', session(60_000, { userId: ada, cart: [2] }))
  await store.touch('a', session(60_000, { userId: ada }))
  t.is(await raw.call('EXISTS', `${store.prefix}a`), 0)
})

test('the key\'s PEXPIRETIME is the soonest of the cookie\'s, the idle and the absolute deadlines', async (t) => {
  const store = makeStore({ idleTimeout: 10, absoluteTimeout: 20 })
  const short = session(5_000, { userId: 'ada' })
  await store.set('short', short)
  t.is(await expireTime(store, 'short'), Date.parse(short.cookie.expires))
  // A touch with a longer cookie: now idle (10 s) is the soonest.
  const touch = await timed(() => store.touch('short', session(60_000, { userId: 'ada' })))
  within(t, await expireTime(store, 'short'), touch.from + 10_000, touch.to + 10_000, 'idle after touch')

  const longIdle = makeStore({ idleTimeout: 30, absoluteTimeout: 5 })
  const set = await timed(() => longIdle.set('x', session(60_000)))
  within(t, await expireTime(longIdle, 'x'), set.from + 5_000, set.to + 5_000, 'absolute as the soonest')

  // Both timeouts: a touch late enough that idle would outlast the absolute deadline.
  const both = makeStore({ idleTimeout: 0.5, absoluteTimeout: 0.7 })
  await both.set('s', session(60_000, { userId: 'bob' }))
  const created = (await both.listUserSessions('bob'))[0].createdAt.getTime()
  const early = await timed(() => both.touch('s', session(60_000, { userId: 'bob' })))
  if (inTime(t, early.to + 500 < created + 700, 'idle the sooner deadline')) within(t, await expireTime(both, 's'), early.from + 500, early.to + 500, 'idle while it is the sooner')
  await sleepUntil(created + 300)
  await both.touch('s', session(60_000, { userId: 'bob' }))
  const end = await expireTime(both, 's')
  if (inTime(t, Date.now() < created + 700, 'the expiry read before the absolute deadline')) t.is(end, created + 700, 'the absolute deadline once it is the sooner')
})

// express-session's touch contract ("touch should reset session expiration"):
// a later get returns the cookie.expires the touch gave. With a timeout the
// key's expiry is the timeout's, not the cookie's, and a touch does not
// rewrite the value: the touched expiry can only come from the meta.
for (const options of [{ idleTimeout: 600 }, { absoluteTimeout: 3600 }, { idleTimeout: 600, absoluteTimeout: 3600 }]) {
  test(`touch then get returns the touched cookie.expires with ${JSON.stringify(options)}`, async (t) => {
    const store = makeStore(options)
    const ada = user()
    const key = `${store.prefix}m`
    // Cookies longer than either timeout, so the key expires before them.
    const sess = session(2 * 3600_000, { userId: ada, cart: [1] })
    await store.set('m', sess)
    t.true((await expireTime(store, 'm')) < Date.parse(sess.cookie.expires), 'the key expires at the timeout')
    t.is((await store.get('m')).cookie.expires, sess.cookie.expires)

    for (const hours of [3, 2.5]) {
      const touched = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + hours * 3600_000).toISOString() } }
      await store.touch('m', touched)
      // Not rewritten, and the key still expires at the timeout.
      t.is(await raw.call('GET', key), JSON.stringify(sess))
      t.true((await expireTime(store, 'm')) < Date.parse(touched.cookie.expires), 'the key expires at the timeout')
      const got = await store.get('m')
      t.is(got.cookie.expires, touched.cookie.expires, `get after a touch to +${hours} h`)
      t.deepEqual(got.cart, [1])
      // With callbacks too, and in the per-user list.
      const viaCallback = await new Promise((resolve, reject) => store.get('m', (err, s) => (err ? reject(err) : resolve(s))))
      t.is(viaCallback.cookie.expires, touched.cookie.expires)
      const [listed] = await store.listUserSessions(ada)
      t.is(listed.session.cookie.expires, touched.cookie.expires, `listUserSessions after a touch to +${hours} h`)
    }
    // A set after the touches: get returns what it saved.
    const saved = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 3600_000 * 1.5).toISOString() }, cart: [2] }
    await store.set('m', saved)
    t.deepEqual(await store.get('m'), saved)
  })
}

test('timeouts keep the value connect-redis compatible', async (t) => {
  const store = makeStore({ idleTimeout: 0.5, absoluteTimeout: 2 })
  const sess = session(60_000, { userId: 'ada', cart: ['x'] })
  await store.set('v', sess)
  t.is(await raw.call('GET', `${store.prefix}v`), JSON.stringify(sess))
  const touched = session(60_000, { userId: 'ada', cart: ['x'] })
  await store.touch('v', touched)
  t.true([JSON.stringify(sess), JSON.stringify(touched)].includes(await raw.call('GET', `${store.prefix}v`)))
  t.is(await raw.call('TYPE', `${store.prefix}v`), 'string')
})

test('invalid timeouts make the constructor throw a TypeError', (t) => {
  // 0 would end every session at once: refused, as a negative.
  for (const options of [{ absoluteTimeout: -1 }, { idleTimeout: 'x' }, { idleTimeout: -1 }, { idleTimeout: 0 }, { absoluteTimeout: 0 }, { absoluteTimeout: '1h' }]) {
    t.throws(() => new RedisSessionStore({ url: redis.url, ...options }), { instanceOf: TypeError }, JSON.stringify(options))
  }
})

// ---------------------------------------------------------------- no key left, no notifications

// Each way a session can end (conformance/timeouts.js checks that it leaves
// every list and count): no key is left behind, and the server has no
// keyspace notifications, so the lists are kept without them.
const ends = {
  'its cookie expires': { options: {}, cookieMs: 200 },
  'idleTimeout passes': { options: { idleTimeout: 0.2 } },
  'absoluteTimeout passes, though it was just touched': { options: { absoluteTimeout: 0.2 }, touch: true },
  'destroy()': { options: {}, end: (store) => store.destroy('target') },
  'destroyUserSessions()': { options: {}, end: (store, owner) => store.destroyUserSessions(owner) },
  'it is saved with an expiry in the past': { options: {}, end: (store, owner) => store.set('target', session(-1000, { userId: owner })) },
  'it is touched with an expiry in the past': { options: {}, end: (store, owner) => store.touch('target', session(-1000, { userId: owner })) },
}

test('a session that ends leaves no key, and no keyspace notifications are needed', async (t) => {
  t.deepEqual((await raw.call('CONFIG', 'GET', 'notify-keyspace-events')).map(String), ['notify-keyspace-events', ''])
  await Promise.all(
    Object.entries(ends).map(async ([how, { options, cookieMs = 60_000, touch, end }]) => {
      const store = makeStore(options)
      const owner = user()
      const setAt = Date.now()
      await store.set('target', session(cookieMs, { userId: owner }))
      if (touch) await store.touch('target', session(60_000, { userId: owner }))
      if (end) {
        await end(store, owner)
      } else {
        const e = await expireTime(store, 'target')
        // -2: a busy machine reached the 200 ms deadline first; only then
        // may the key be gone already.
        if (inTime(t, e !== -2, `${how}: the expiry read before the deadline`)) t.true(e > 0, `${how}: target has no expiry (${e})`)
        else t.true(Date.now() >= setAt + Math.min(cookieMs, 200), `${how}: target gone before any deadline`)
        await sleepUntil(e + 30)
      }
      t.is(await raw.call('EXISTS', `${store.prefix}target`), 0, how)
      t.deepEqual(await store.listUserSessions(owner), [], how)
      // A late touch does not write it again.
      await store.touch('target', session(60_000, { userId: owner }))
      t.is(await raw.call('EXISTS', `${store.prefix}target`), 0, `${how}, then a late touch`)
    }),
  )
  t.deepEqual((await raw.call('CONFIG', 'GET', 'notify-keyspace-events')).map(String), ['notify-keyspace-events', ''])
})

test('sessions that have expired do not count against maxSessionsPerUser', async (t) => {
  const store = makeStore({ maxSessionsPerUser: 2 })
  const idle = makeStore({ maxSessionsPerUser: 2, idleTimeout: 0.6 })
  for (const s of [store, idle]) {
    await s.set('gone', session(100, { userId: 'ada' }))
    await sleep(5)
    await s.set('kept', session(60_000, { userId: 'ada' }))
  }
  await sleep(150)
  await store.set('new', session(60_000, { userId: 'ada' }))
  t.truthy(await store.get('kept'), 'an expired session was counted and a live one destroyed')
  t.truthy(await store.get('new'))
  t.deepEqual(await listedIds(store, 'ada'), ['new', 'kept'])

  // Under idleTimeout: `kept` is touched in time, `gone` (cookie 100 ms) is not.
  await idle.touch('kept', session(60_000, { userId: 'ada' }))
  await sleep(5)
  await idle.set('new', session(60_000, { userId: 'ada' }))
  t.truthy(await idle.get('kept'))
  t.truthy(await idle.get('new'))
  t.deepEqual(await listedIds(idle, 'ada'), ['new', 'kept'])
})
