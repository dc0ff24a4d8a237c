'use strict'

// absoluteTimeout and idleTimeout (issue #5), enforced by the store on top of
// the cookie's expiry, and indexes that never go stale: a session that
// expires or is destroyed disappears from every list and count, without
// keyspace notifications. Against a real redis-server.
const test = require('ava')
const { randomUUID } = require('node:crypto')
const { RedisSessionStore } = require('..')
const { storeSuite, session, sleep } = require('./helpers/suite')

const { redis, raw, makeStore } = storeSuite(test, 'to')
const sleepUntil = (ms) => sleep(Math.max(0, ms - Date.now()))
const user = () => `user-${randomUUID()}`
const listedIds = async (store, userId) => (await store.listUserSessions(userId)).map((s) => s.id)
const expireTime = (store, sid) => raw.call('PEXPIRETIME', `${store.prefix}${sid}`)

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

// ---------------------------------------------------------------- idleTimeout

// Lifetimes here are long enough (≥ 0.5 s, margins ≥ 200 ms) that a busy
// machine running every suite at once does not make a live session look dead.

test('idleTimeout: the key expires idleTimeout after the last set or touch; get does not extend it', async (t) => {
  const store = makeStore({ idleTimeout: 0.8 })
  t.is(store.idleTimeout, 0.8)
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
  within(t, listed.lastAccess.getTime(), touch.from, touch.to, 'lastAccess')
  within(t, listed.createdAt.getTime(), set.from, set.to, 'createdAt')

  // A second set (a modified session saved) counts as access too.
  await sleep(100)
  const resave = await timed(() => store.set('i', session(60_000, { userId: ada, n: 1 })))
  const e3 = await expireTime(store, 'i')
  within(t, e3, resave.from + 800, resave.to + 800, 'expiry after a second set')

  // Sessions without an owner get the idle deadline as well.
  const anon = await timed(() => store.set('anon', session(60_000)))
  within(t, await expireTime(store, 'anon'), anon.from + 800, anon.to + 800, 'expiry of an anonymous session')

  // Left alone, it is gone once idle, though its cookie had a minute left.
  await sleepUntil(e3 + 30)
  t.is(await store.get('i'), null)
  t.deepEqual(await store.listUserSessions(ada), [])
  t.is(await raw.call('EXISTS', `${store.prefix}i`), 0)
  // A touch that comes late does not revive it.
  await store.touch('i', session(60_000, { userId: ada }))
  t.is(await store.get('i'), null)
  t.deepEqual(await store.listUserSessions(ada), [])
})

test('idleTimeout accepts fractional seconds and keeps an active session alive past it', async (t) => {
  const store = makeStore({ idleTimeout: 0.5 })
  await store.set('busy', session(60_000, { userId: 'ada' }))
  await store.set('idle', session(60_000, { userId: 'ada' }))
  const start = Date.now()
  while (Date.now() - start < 1200) {
    await sleep(100)
    await store.touch('busy', session(60_000, { userId: 'ada' }))
  }
  t.truthy(await store.get('busy'))
  t.is(await store.get('idle'), null)
  t.deepEqual(await listedIds(store, 'ada'), ['busy'])
  t.is(await store.length(), 1)
})

// ---------------------------------------------------------------- absoluteTimeout

test('absoluteTimeout: the key never outlives createdAt + absoluteTimeout, whatever sets and touches come', async (t) => {
  const store = makeStore({ absoluteTimeout: 1 })
  t.is(store.absoluteTimeout, 1)
  const ada = user()

  const set = await timed(() => store.set('a', session(60_000, { userId: ada })))
  const deadline = await expireTime(store, 'a')
  within(t, deadline, set.from + 1000, set.to + 1000, 'expiry after set')

  await sleep(100)
  await store.touch('a', session(60_000, { userId: ada }))
  t.is(await expireTime(store, 'a'), deadline, 'touch moved the absolute deadline')
  await store.set('a', session(60_000, { userId: ada, cart: [1] }))
  t.is(await expireTime(store, 'a'), deadline, 'a second set moved the absolute deadline')
  t.deepEqual((await store.get('a')).cart, [1])

  const [listed] = await store.listUserSessions(ada)
  t.is(listed.expiresAt.getTime(), deadline)
  within(t, listed.createdAt.getTime(), set.from, set.to, 'createdAt after a second set')
  t.true(listed.lastAccess.getTime() > listed.createdAt.getTime())

  // Active until the end, and gone anyway.
  while (Date.now() < deadline - 100) {
    await store.touch('a', session(60_000, { userId: ada }))
    await sleep(50)
  }
  await sleepUntil(deadline + 30)
  t.is(await store.get('a'), null)
  t.deepEqual(await store.listUserSessions(ada), [])
  t.is(await store.length(), 0)
  t.deepEqual(await store.stats(), { sessions: 0, users: 0, active: 0 })
  await store.touch('a', session(60_000, { userId: ada }))
  t.is(await store.get('a'), null)
  t.is(await raw.call('EXISTS', `${store.prefix}a`), 0)
})

test('absoluteTimeout: a save that arrives after the deadline does not bring the session back', async (t) => {
  // Long enough that a session wrongly started afresh by the late save is still there to see.
  const store = makeStore({ absoluteTimeout: 0.8 })
  const owner = user()
  await store.set('late', session(60_000, { userId: owner }))
  const deadline = await expireTime(store, 'late')
  await sleepUntil(deadline + 30)
  t.is(await store.get('late'), null)
  // A request that loaded the session just before the deadline saves it now (a modified
  // session): the absolute timeout would mean nothing if this started the clock again.
  await store.set('late', session(60_000, { userId: owner, cart: [1] }))
  t.is(await raw.call('EXISTS', `${store.prefix}late`), 0)
  t.is(await store.get('late'), null)
  t.deepEqual(await store.listUserSessions(owner), [])
  t.is(await store.length(), 0)
})

test('with both timeouts, touches carry a session past idleTimeout but not past absoluteTimeout', async (t) => {
  const store = makeStore({ idleTimeout: 0.5, absoluteTimeout: 1.4 })
  const set = await timed(() => store.set('s', session(60_000, { userId: 'ada' })))
  const [{ createdAt }] = await store.listUserSessions('ada')
  within(t, createdAt.getTime(), set.from, set.to, 'createdAt')
  const created = createdAt.getTime()
  const absolute = created + 1400

  // Touch every ~100 ms: the expiry is min(lastAccess + idle, createdAt + absolute).
  let aliveAt = 0
  while (Date.now() < created + 1000) {
    await sleep(100)
    const touch = await timed(() => store.touch('s', session(60_000, { userId: 'ada' })))
    const e = await expireTime(store, 's')
    const what = `expiry after a touch at +${touch.from - created} ms`
    within(t, e, Math.min(touch.from + 500, absolute), Math.min(touch.to + 500, absolute), what)
    if ((await store.get('s')) !== null) aliveAt = Date.now() - created
  }
  t.true(aliveAt > 800, `alive only until +${aliveAt} ms: touches did not extend the idle timeout`)
  // The last touch came after createdAt + 1000 ms, so the absolute deadline is the sooner.
  within(t, await expireTime(store, 's'), absolute, absolute, 'expiry at the end: createdAt + absoluteTimeout')

  await sleepUntil(absolute + 30)
  t.is(await store.get('s'), null)
  t.deepEqual(await store.listUserSessions('ada'), [])
})

test('the cookie\'s expiry still applies when it is the soonest; the soonest of the three wins', async (t) => {
  const store = makeStore({ idleTimeout: 10, absoluteTimeout: 20 })
  const short = session(5_000, { userId: 'ada' })
  await store.set('short', short)
  t.is(await expireTime(store, 'short'), Date.parse(short.cookie.expires))
  const [listed] = await store.listUserSessions('ada')
  t.is(listed.expiresAt.getTime(), Date.parse(short.cookie.expires))

  // A touch with a longer cookie: now idle (10 s) is the soonest.
  const touch = await timed(() => store.touch('short', session(60_000, { userId: 'ada' })))
  within(t, await expireTime(store, 'short'), touch.from + 10_000, touch.to + 10_000, 'idle after touch')

  const longIdle = makeStore({ idleTimeout: 30, absoluteTimeout: 5 })
  const set = await timed(() => longIdle.set('x', session(60_000)))
  within(t, await expireTime(longIdle, 'x'), set.from + 5_000, set.to + 5_000, 'absolute as the soonest')

  const cookieOnly = makeStore({ idleTimeout: 30 })
  const brief = session(300, { userId: 'bob' })
  await cookieOnly.set('b', brief)
  await sleepUntil(Date.parse(brief.cookie.expires) + 30)
  t.is(await cookieOnly.get('b'), null)
  t.deepEqual(await cookieOnly.listUserSessions('bob'), [])
  t.is(await cookieOnly.length(), 0)
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
  for (const options of [{ absoluteTimeout: -1 }, { idleTimeout: 'x' }, { idleTimeout: -1 }, { absoluteTimeout: '1h' }]) {
    t.throws(() => new RedisSessionStore({ url: redis.url, ...options }), { instanceOf: TypeError }, JSON.stringify(options))
  }
})

// ---------------------------------------------------------------- indexes never go stale

// Each way a session can end; the ended one must disappear from every list and
// count, while a second session (another user's, set 400 ms later, so it
// outlives the first under the same timeouts) stays.
const ends = {
  'its cookie expires': { options: {}, cookieMs: 1000 },
  'idleTimeout passes': { options: { idleTimeout: 1 } },
  'absoluteTimeout passes, though it was just touched': { options: { absoluteTimeout: 1 }, touch: true },
  'destroy()': { options: {}, end: (store) => store.destroy('target') },
  'destroyUserSessions()': { options: {}, end: (store, owner) => store.destroyUserSessions(owner) },
  'it is saved with an expiry in the past': { options: {}, end: (store, owner) => store.set('target', session(-1000, { userId: owner })) },
  'it is touched with an expiry in the past': { options: {}, end: (store, owner) => store.touch('target', session(-1000, { userId: owner })) },
}

for (const [how, { options, cookieMs = 60_000, touch, end }] of Object.entries(ends)) {
  test(`a session that ends because ${how} disappears from every list and count`, async (t) => {
    const store = makeStore(options)
    const owner = user()
    const other = user()
    await store.set('target', session(cookieMs, { userId: owner }))
    t.deepEqual(await listedIds(store, owner), ['target'])

    await sleep(400)
    await store.set('control', session(60_000, { userId: other }))
    if (touch) await store.touch('target', session(60_000, { userId: owner }))
    // Both are counted before the end.
    t.is(await store.length(), 2)
    t.deepEqual((await store.ids()).sort(), ['control', 'target'])
    t.deepEqual(await store.stats(), { sessions: 2, users: 2, active: 2 })

    if (end) {
      await end(store, owner)
    } else {
      const e = await expireTime(store, 'target')
      t.true(e > 0, `target has no expiry (${e})`)
      await sleepUntil(e + 30)
    }
    t.is(await raw.call('EXISTS', `${store.prefix}target`), 0)

    // Every list and count, before anything calls get() on it.
    t.deepEqual(await store.listUserSessions(owner), [])
    t.is(await store.length(), 1)
    t.deepEqual(await store.ids(), ['control'])
    t.deepEqual((await store.all()).map((s) => s.id), ['control'])
    t.deepEqual(await store.stats(), { sessions: 1, users: 1, active: 1 })
    t.deepEqual(await listedIds(store, other), ['control'])
    t.is(await store.destroyUserSessions(owner), 0)
    t.is(await store.get('target'), null)
    t.truthy(await store.get('control'))

    // A late touch does not put it back in any list.
    await store.touch('target', session(60_000, { userId: owner }))
    t.deepEqual(await store.listUserSessions(owner), [])
    t.is(await store.length(), 1)
    t.deepEqual(await store.stats(), { sessions: 1, users: 1, active: 1 })

    // ... and all of that without keyspace notifications.
    t.deepEqual((await raw.call('CONFIG', 'GET', 'notify-keyspace-events')).map(String), ['notify-keyspace-events', ''])
  })
}

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

// ---------------------------------------------------------------- races

test('race: a touch at about the moment the cookie expires leaves get() and the lists in agreement', async (t) => {
  const store = makeStore()
  const runs = await Promise.all(
    Array.from({ length: 30 }, async (_, i) => {
      const owner = user()
      const sid = `r${i}`
      const sess = session(50, { userId: owner })
      await store.set(sid, sess)
      // From 8 ms before to 7 ms after the expiry.
      await sleepUntil(Date.parse(sess.cookie.expires) - 8 + (i % 16))
      await store.touch(sid, session(60_000, { userId: owner }))
      const alive = (await store.get(sid)) !== null
      const listed = await listedIds(store, owner)
      t.deepEqual(listed, alive ? [sid] : [], `${sid}: get says ${alive ? 'alive' : 'gone'}, list says ${listed}`)
      return { owner, sid, alive }
    }),
  )
  const alive = runs.filter((r) => r.alive).map((r) => r.sid)
  t.is(await store.length(), alive.length)
  t.deepEqual((await store.ids()).sort(), alive.sort())
  t.deepEqual((await store.stats()).sessions, alive.length)
  t.deepEqual((await store.stats()).users, alive.length)

  // Later, and after another late touch, nothing that was gone comes back.
  await sleep(100)
  for (const { owner, sid, alive: wasAlive } of runs) {
    if (!wasAlive) await store.touch(sid, session(60_000, { userId: owner }))
    t.is((await store.get(sid)) !== null, wasAlive, sid)
    t.deepEqual(await listedIds(store, owner), wasAlive ? [sid] : [])
  }
  t.is(await store.length(), alive.length)
  t.log(`${alive.length} of 30 touches landed before the expiry`)
})

test('race: touches at about the idle deadline leave no stale entry once the sessions are gone', async (t) => {
  const store = makeStore({ idleTimeout: 0.05 })
  const runs = await Promise.all(
    Array.from({ length: 15 }, async (_, i) => {
      const owner = user()
      const sid = `q${i}`
      const set = await timed(() => store.set(sid, session(60_000, { userId: owner })))
      await sleepUntil(set.to + 43 + (i % 15))
      await store.touch(sid, session(60_000, { userId: owner }))
      return { owner, sid }
    }),
  )
  // Every session is idle by now, touched in time or not.
  await sleep(150)
  for (const { owner, sid } of runs) {
    t.deepEqual(await store.listUserSessions(owner), [], sid)
    t.is(await store.get(sid), null, sid)
  }
  t.is(await store.length(), 0)
  t.deepEqual(await store.ids(), [])
  t.deepEqual(await store.all(), [])
  t.deepEqual(await store.stats(), { sessions: 0, users: 0, active: 0 })
})
