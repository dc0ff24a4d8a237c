'use strict'

// Sessions per user (issue #5): who owns a session, listing and destroying a
// user's sessions, maxSessionsPerUser, stats, and the indexes behind them
// (no SCAN, never stale, consistent under races), against a real redis-server.
const test = require('ava')
const { randomUUID } = require('node:crypto')
const { RedisSessionStore, RedisSessionStoreError } = require('..')
const { storeSuite, session, sleep } = require('./helpers/suite')
const { RedisServer } = require('./helpers/redis')
const { RawRedis } = require('./helpers/raw')

const { redis, raw, makeStore } = storeSuite(test, 'u')

// A second store instance (its own connection) on the same prefix, as another app server would be.
function sibling(store, options = {}) {
  return makeStore({ prefix: store.prefix, ...options })
}
const user = () => `user-${randomUUID()}`
const listedIds = async (store, userId) => (await store.listUserSessions(userId)).map((s) => s.id)
const exists = (store, sid) => raw.call('EXISTS', `${store.prefix}${sid}`)

// Calls of a Redis command so far, from INFO commandstats (0 if never called).
async function commandCalls(name) {
  const info = await raw.call('INFO', 'commandstats')
  const m = new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(info)
  return m ? Number(m[1]) : 0
}

// `ms` within [from - slack, to + slack]: Redis and Node read the same clock,
// but one may round a millisecond the other way.
function within(t, ms, from, to, what, slack = 2) {
  t.true(ms >= from - slack && ms <= to + slack, `${what}: ${ms} not within [${from}, ${to}]`)
}

// ---------------------------------------------------------------- listing

test('listUserSessions gives the live sessions of one user, with their times, most recently used first', async (t) => {
  const store = makeStore()
  const ada = user()
  const bob = user()
  const a = session(60_000, { userId: ada, device: 'laptop' })
  const b = session(30_000, { userId: ada, device: 'phone' })

  const t0 = Date.now()
  await store.set('a', a)
  const t1 = Date.now()
  await sleep(10)
  await store.set('b', b)
  await store.set('c', session(60_000, { userId: bob }))
  await sleep(10)

  let list = await store.listUserSessions(ada)
  t.deepEqual(list.map((s) => s.id), ['b', 'a'])
  const [lb, la] = list
  for (const k of ['id', 'session', 'createdAt', 'lastAccess', 'expiresAt']) t.true(k in la, k)
  t.deepEqual(la.session, JSON.parse(JSON.stringify(a)))
  t.deepEqual(lb.session, JSON.parse(JSON.stringify(b)))
  for (const s of list) {
    t.true(s.createdAt instanceof Date)
    t.true(s.lastAccess instanceof Date)
    t.true(s.expiresAt instanceof Date)
  }
  within(t, la.createdAt.getTime(), t0, t1, 'createdAt of a')
  within(t, la.lastAccess.getTime(), t0, t1, 'lastAccess of a')
  // Without timeouts the session lives exactly as long as its cookie.
  t.is(la.expiresAt.getTime(), Date.parse(a.cookie.expires))
  t.is(lb.expiresAt.getTime(), Date.parse(b.cookie.expires))
  t.is(la.expiresAt.getTime(), await raw.call('PEXPIRETIME', `${store.prefix}a`))

  // A touch makes `a` the most recently used; its creation time stays.
  const touched = { ...a, cookie: { ...a.cookie, expires: new Date(Date.now() + 90_000).toISOString() } }
  const t2 = Date.now()
  await store.touch('a', touched)
  const t3 = Date.now()
  list = await store.listUserSessions(ada)
  t.deepEqual(list.map((s) => s.id), ['a', 'b'])
  within(t, list[0].lastAccess.getTime(), t2, t3, 'lastAccess of a after touch')
  within(t, list[0].createdAt.getTime(), t0, t1, 'createdAt of a after touch')
  t.is(list[0].expiresAt.getTime(), Date.parse(touched.cookie.expires))

  // Saving `b` again (express-session's set of a modified session) makes it the most recent; createdAt stays.
  await sleep(10)
  const t4 = Date.now()
  await store.set('b', { ...b, cart: [1] })
  const t5 = Date.now()
  list = await store.listUserSessions(ada)
  t.deepEqual(list.map((s) => s.id), ['b', 'a'])
  t.deepEqual(list[0].session.cart, [1])
  within(t, list[0].lastAccess.getTime(), t4, t5, 'lastAccess of b after set')
  t.true(list[0].createdAt.getTime() < t4, 'createdAt of b moved on a second set')

  t.deepEqual(await listedIds(store, bob), ['c'])
  t.deepEqual(await store.listUserSessions(user()), [])
})

test('expiresAt is null for a session stored without expiry', async (t) => {
  const store = makeStore({ disableTTL: true })
  await store.set('forever', session(1000, { userId: 'ada' }))
  const [s] = await store.listUserSessions('ada')
  t.is(s.id, 'forever')
  t.is(s.expiresAt, null)
})

test('the default owner is sess.userId ?? sess.passport.user (or its id) ?? sess.user.id, strings and numbers', async (t) => {
  const store = makeStore()
  await store.set('by-userId', session(60_000, { userId: 'u1' }))
  await store.set('by-passport', session(60_000, { passport: { user: 'u2' } }))
  await store.set('by-user-id', session(60_000, { user: { id: 'u3', name: 'Ada' } }))
  await store.set('numeric', session(60_000, { userId: 42 }))
  await store.set('numeric-passport', session(60_000, { passport: { user: 7 } }))
  // Passport's serializeUser giving an object: done(null, { id, name }).
  await store.set('passport-object', session(60_000, { passport: { user: { id: 'u4', name: 'Ada' } } }))
  await store.set('passport-object-numeric', session(60_000, { passport: { user: { id: 8, name: 'Bob' } } }))
  // userId wins over passport.user, which wins over user.id.
  await store.set('precedence', session(60_000, { userId: 'p1', passport: { user: 'p2' }, user: { id: 'p3' } }))
  await store.set('passport-over-user', session(60_000, { passport: { user: 'q2' }, user: { id: 'q3' } }))
  await store.set('passport-object-over-user', session(60_000, { passport: { user: { id: 'r2' } }, user: { id: 'r3' } }))
  // An empty string is "not set" (apps write userId = '' for anonymous
  // visitors): no owner, or the next field's, and the save succeeds.
  await store.set('empty', session(60_000, { userId: '' }))
  await store.set('empty-then-passport', session(60_000, { userId: '', passport: { user: { id: 'e2' } } }))
  await store.set('empty-passport-id', session(60_000, { passport: { user: { id: '' } }, user: { id: 'e3' } }))
  await store.set('empty-everywhere', session(60_000, { userId: '', passport: { user: '' }, user: { id: '' } }))
  await store.set('not-finite', session(60_000, { userId: NaN, passport: { user: { id: Infinity } }, user: { id: 'e4' } }))
  // No owner: anonymous, a `user` that is a plain string, values that are neither string nor number.
  await store.set('anonymous', session(60_000, { views: 3 }))
  await store.set('user-string', session(60_000, { user: 'ada' }))
  await store.set('user-object-id', session(60_000, { userId: { id: 'obj' } }))
  await store.set('user-bool', session(60_000, { userId: true }))
  await store.set('passport-object-without-id', session(60_000, { passport: { user: { name: 'Ada' } } }))

  t.deepEqual(await listedIds(store, 'u1'), ['by-userId'])
  t.deepEqual(await listedIds(store, 'u2'), ['by-passport'])
  t.deepEqual(await listedIds(store, 'u3'), ['by-user-id'])
  t.deepEqual(await listedIds(store, 'u4'), ['passport-object'])
  t.deepEqual(await listedIds(store, 8), ['passport-object-numeric'])
  t.deepEqual(await listedIds(store, 42), ['numeric'])
  t.deepEqual(await listedIds(store, '42'), ['numeric'], 'a numeric owner is the same user as its decimal string')
  t.deepEqual(await listedIds(store, 7), ['numeric-passport'])
  t.deepEqual(await listedIds(store, 'p1'), ['precedence'])
  t.deepEqual(await listedIds(store, 'p2'), [])
  t.deepEqual(await listedIds(store, 'p3'), [])
  t.deepEqual(await listedIds(store, 'q2'), ['passport-over-user'])
  t.deepEqual(await listedIds(store, 'q3'), [])
  t.deepEqual(await listedIds(store, 'r2'), ['passport-object-over-user'])
  t.deepEqual(await listedIds(store, 'r3'), [])
  t.deepEqual(await listedIds(store, 'e2'), ['empty-then-passport'])
  t.deepEqual(await listedIds(store, 'e3'), ['empty-passport-id'])
  t.deepEqual(await listedIds(store, 'e4'), ['not-finite'])
  for (const nobody of ['ada', 'true', 'obj', '[object Object]', 'Ada']) t.deepEqual(await listedIds(store, nobody), [], nobody)

  // Sessions without an owner are still sessions.
  t.is(await store.length(), 20)
  t.deepEqual(await store.stats(), { sessions: 20, users: 13, active: 20 })
  t.truthy(await store.get('anonymous'))
  t.is((await store.get('empty')).userId, '')
})

test('a userId function returning an empty string is an error, not "no owner": it returns undefined for that', async (t) => {
  const store = makeStore({ userId: (sess) => sess.owner })
  const err = await t.throwsAsync(store.set('e', session(60_000, { owner: '' })))
  t.is(err.code, 'ERR_INVALID_ARG')
  t.regex(err.message, /empty string/)
  t.is(await exists(store, 'e'), 0)
  await store.set('none', session(60_000, { owner: undefined }))
  t.deepEqual(await store.stats(), { sessions: 1, users: 0, active: 1 })
})

test('a userId function chooses the owner', async (t) => {
  const store = makeStore({ userId: (sess) => sess.account?.email })
  await store.set('x', session(60_000, { account: { email: 'ada@example.com' }, userId: 'ignored' }))
  await store.set('y', session(60_000, { userId: 'ignored' }))
  t.deepEqual(await listedIds(store, 'ada@example.com'), ['x'])
  t.deepEqual(await listedIds(store, 'ignored'), [])
  t.deepEqual(await store.stats(), { sessions: 2, users: 1, active: 2 })
})

test('a session whose owner changes moves to the new owner, and the old owner cannot destroy it', async (t) => {
  const store = makeStore()
  await store.set('s', session(60_000, { userId: 'ada' }))
  await store.set('s2', session(60_000, { userId: 'ada' }))
  t.deepEqual((await listedIds(store, 'ada')).sort(), ['s', 's2'])

  await store.set('s', session(60_000, { userId: 'bob' }))
  t.deepEqual(await listedIds(store, 'ada'), ['s2'])
  t.deepEqual(await listedIds(store, 'bob'), ['s'])
  t.is((await store.listUserSessions('bob'))[0].session.userId, 'bob')
  t.deepEqual(await store.stats(), { sessions: 2, users: 2, active: 2 })

  // A stale entry under ada would make this destroy bob's session.
  t.is(await store.destroyUserSessions('ada'), 1)
  t.truthy(await store.get('s'))
  t.deepEqual(await listedIds(store, 'bob'), ['s'])

  // Losing the owner (logout without regenerate) removes it from every user's list.
  await store.set('s', session(60_000, {}))
  t.deepEqual(await listedIds(store, 'bob'), [])
  t.deepEqual(await store.stats(), { sessions: 1, users: 0, active: 1 })
  t.is(await store.destroyUserSessions('bob'), 0)
  t.truthy(await store.get('s'))
})

// ---------------------------------------------------------------- destroying

test('destroyUserSessions destroys the user\'s sessions but those in except, and counts them', async (t) => {
  const store = makeStore()
  const ada = user()
  for (const sid of ['a1', 'a2', 'a3', 'a4']) await store.set(sid, session(60_000, { userId: ada }))
  await store.set('b1', session(60_000, { userId: 'bob' }))
  await store.set('anon', session(60_000))

  t.is(await store.destroyUserSessions(ada, { except: 'a1' }), 3)
  for (const sid of ['a2', 'a3', 'a4']) {
    t.is(await store.get(sid), null)
    t.is(await exists(store, sid), 0)
  }
  t.truthy(await store.get('a1'))
  t.truthy(await store.get('b1'))
  t.truthy(await store.get('anon'))
  t.deepEqual(await listedIds(store, ada), ['a1'])
  t.is(await store.length(), 3)

  for (const sid of ['a5', 'a6', 'a7']) await store.set(sid, session(60_000, { userId: ada }))
  t.is(await store.destroyUserSessions(ada, { except: ['a1', 'a6', 'not-a-session'] }), 2)
  t.deepEqual((await listedIds(store, ada)).sort(), ['a1', 'a6'])

  t.is(await store.destroyUserSessions(ada), 2)
  t.deepEqual(await store.listUserSessions(ada), [])
  t.is(await store.destroyUserSessions(ada), 0)
  t.is(await store.destroyUserSessions(user()), 0)
  t.deepEqual((await store.ids()).sort(), ['anon', 'b1'])
  t.deepEqual(await store.stats(), { sessions: 2, users: 1, active: 2 })
})

test('destroyUserSessions accepts a numeric user id', async (t) => {
  const store = makeStore()
  await store.set('n1', session(60_000, { userId: 1001 }))
  await store.set('n2', session(60_000, { passport: { user: 1001 } }))
  t.is(await store.destroyUserSessions(1001), 2)
  t.is(await store.get('n1'), null)
  t.is(await store.get('n2'), null)
})

test('logout everywhere sticks: a late save of a destroyed session does not bring it back', async (t) => {
  const store = makeStore()
  await store.set('phone', session(60_000, { userId: 'ada' }))
  await store.set('laptop', session(60_000, { userId: 'ada' }))
  t.is(await store.destroyUserSessions('ada', { except: 'laptop' }), 1)
  // A slow request of the phone ends after the logout.
  await store.set('phone', session(60_000, { userId: 'ada', cart: [1] }))
  await store.touch('phone', session(60_000, { userId: 'ada' }))
  t.is(await store.get('phone'), null)
  t.deepEqual(await listedIds(store, 'ada'), ['laptop'])
})

// ---------------------------------------------------------------- maxSessionsPerUser

test('maxSessionsPerUser destroys the least recently used sessions when a new one is set', async (t) => {
  const store = makeStore({ maxSessionsPerUser: 2 })
  t.is(store.maxSessionsPerUser, 2)
  await store.set('a', session(60_000, { userId: 'ada' }))
  await sleep(5)
  await store.set('b', session(60_000, { userId: 'ada' }))
  await sleep(5)
  await store.set('x', session(60_000, { userId: 'bob' }))
  // Saving or touching an existing session is not a new one: nothing goes.
  await store.set('a', session(60_000, { userId: 'ada', n: 1 }))
  await sleep(5)
  await store.touch('b', session(60_000, { userId: 'ada' }))
  await sleep(5)
  await store.touch('a', session(60_000, { userId: 'ada' }))
  await sleep(5)
  t.deepEqual(await listedIds(store, 'ada'), ['a', 'b'])

  // b is now the least recently used (a was touched after it).
  await store.set('c', session(60_000, { userId: 'ada' }))
  t.is(await store.get('b'), null)
  t.is(await exists(store, 'b'), 0)
  t.truthy(await store.get('a'))
  t.truthy(await store.get('c'))
  t.deepEqual(await listedIds(store, 'ada'), ['c', 'a'])
  // Other users and ownerless sessions are not counted against ada.
  t.truthy(await store.get('x'))
  t.is(await store.length(), 3)
  t.deepEqual(await store.stats(), { sessions: 3, users: 2, active: 3 })
})

test('maxSessionsPerUser: 1 is exclusive login: the newest login wins, and the old one stays out', async (t) => {
  const store = makeStore({ maxSessionsPerUser: 1 })
  await store.set('old', session(60_000, { userId: 'ada' }))
  await sleep(5)
  await store.set('new', session(60_000, { userId: 'ada' }))
  t.is(await store.get('old'), null)
  t.truthy(await store.get('new'))
  t.deepEqual(await listedIds(store, 'ada'), ['new'])
  // The old device's request in flight ends now: it must not come back and push the new login out.
  await store.set('old', session(60_000, { userId: 'ada', cart: [1] }))
  await store.touch('old', session(60_000, { userId: 'ada' }))
  t.is(await store.get('old'), null)
  t.truthy(await store.get('new'))
  t.deepEqual(await listedIds(store, 'ada'), ['new'])
})

test('maxSessionsPerUser counts sessions moving in from another owner', async (t) => {
  const store = makeStore({ maxSessionsPerUser: 1 })
  await store.set('a', session(60_000, { userId: 'ada' }))
  await sleep(5)
  // An anonymous session logs in as ada (express-session without regenerate).
  await store.set('b', session(60_000))
  await sleep(5)
  await store.set('b', session(60_000, { userId: 'ada' }))
  t.is(await store.get('a'), null)
  t.truthy(await store.get('b'))
  t.deepEqual(await listedIds(store, 'ada'), ['b'])
})

test('maxSessionsPerUser: destroyed sessions and sessions moved to another user do not count', async (t) => {
  const store = makeStore({ maxSessionsPerUser: 2 })
  await store.set('a', session(60_000, { userId: 'ada' }))
  await sleep(5)
  await store.set('b', session(60_000, { userId: 'ada' }))
  await sleep(5)
  await store.destroy('a')
  await store.set('c', session(60_000, { userId: 'ada' }))
  t.truthy(await store.get('b'), 'a destroyed session was counted and a live one destroyed')
  t.deepEqual(await listedIds(store, 'ada'), ['c', 'b'])

  // b, the least recently used of ada's, now belongs to bob: it must not be destroyed for ada.
  await sleep(5)
  await store.set('b', session(60_000, { userId: 'bob' }))
  await sleep(5)
  await store.set('d', session(60_000, { userId: 'ada' }))
  t.truthy(await store.get('b'), "bob's session was destroyed to make room for ada")
  t.truthy(await store.get('c'))
  t.truthy(await store.get('d'))
  t.deepEqual(await listedIds(store, 'ada'), ['d', 'c'])
  t.deepEqual(await listedIds(store, 'bob'), ['b'])
})

test('race: two logins in the same tick with maxSessionsPerUser: 1 leave exactly one session', async (t) => {
  const store = makeStore({ maxSessionsPerUser: 1 })
  const users = Array.from({ length: 20 }, () => user())
  await Promise.all(
    users.map((u) => Promise.all([store.set(`${u}:a`, session(60_000, { userId: u })), store.set(`${u}:b`, session(60_000, { userId: u }))])),
  )
  for (const u of users) {
    const alive = []
    for (const sid of [`${u}:a`, `${u}:b`]) if ((await store.get(sid)) !== null) alive.push(sid)
    t.is(alive.length, 1, `${u}: ${alive}`)
    t.deepEqual(await listedIds(store, u), alive)
  }
  t.is(await store.length(), users.length)
  t.deepEqual(await store.stats(), { sessions: users.length, users: users.length, active: users.length })
})

// Two app servers (store instances, each with its own connection) on a
// redis-server of the test's own: the races below hold every write on it
// (CLIENT PAUSE WRITE), which must not slow the other tests of this file.
async function twoInstances(t, options) {
  const server = await RedisServer.start()
  const admin = await RawRedis.connect(server.url)
  const prefix = `race:${randomUUID()}:`
  const one = new RedisSessionStore({ url: server.url, prefix, ...options })
  const two = new RedisSessionStore({ url: server.url, prefix, ...options })
  t.teardown(async () => {
    await admin.call('CLIENT', 'UNPAUSE')
    await Promise.all([one.close(), two.close()])
    admin.close()
    await server.dispose()
  })
  // Connected, scripts loaded: nothing but the logins is sent while writes are held.
  await Promise.all([one.set('warm-1', session()), two.set('warm-2', session())])
  await Promise.all([one.destroy('warm-1'), two.destroy('warm-2')])
  return { one, two, admin }
}

// Runs `issue()` while Redis holds every write it receives (reads still run)
// until `clients` connections wait on one, then lets them all go at once. So
// every read each instance sent before its writes ran before any write of the
// other instance: the interleaving that makes a check-then-act (counting the
// user's sessions in one command, writing in another) count too few, every
// time rather than when two pipelines happen to interleave.
async function withWritesHeld(admin, clients, issue) {
  await admin.call('CLIENT', 'PAUSE', 10_000, 'WRITE')
  let issued
  try {
    issued = issue()
    const until = Date.now() + 5000
    for (;;) {
      const info = await admin.call('INFO', 'clients')
      if (Number(/^blocked_clients:(\d+)/m.exec(info)[1]) >= clients) break
      if (Date.now() > until) throw new Error(`fewer than ${clients} connections sent a write`)
      await sleep(5)
    }
  } finally {
    await admin.call('CLIENT', 'UNPAUSE')
  }
  return issued
}

// What is wrong with `u`'s sessions after the race, or null: exactly one of
// `sids` must be alive, the others gone, and both instances list just it.
async function survivorProblem([one, two], u, sids, gone = []) {
  const alive = []
  for (const sid of sids) if ((await one.get(sid)) !== null) alive.push(sid)
  for (const sid of gone) if ((await two.get(sid)) !== null) return `${sid} survived`
  if (alive.length !== 1) return `${alive.length} sessions alive`
  const listed = [await listedIds(one, u), await listedIds(two, u)]
  if (!listed.every((ids) => ids.length === 1 && ids[0] === alive[0])) return `${alive[0]} alive but listed ${JSON.stringify(listed)}`
  return null
}

// Checks every user, then reports how many went wrong and how.
async function everyUserHasOneSession(t, stores, users, sids, gone) {
  const problems = {}
  for (const u of users) {
    const problem = await survivorProblem(stores, u, sids(u), gone(u))
    if (problem) (problems[problem.replace(/user-[\w-]+/g, 'u')] ||= []).push(u)
  }
  const summary = Object.entries(problems).map(([what, who]) => `${who.length} of ${users.length} users: ${what}`)
  t.deepEqual(summary, [])
  for (const store of stores) t.is(await store.length(), users.length)
  t.deepEqual(await stores[0].stats(), { sessions: users.length, users: users.length, active: users.length })
}

test('race: two logins at once on two store instances with maxSessionsPerUser: 1 leave exactly one session', async (t) => {
  const { one, two, admin } = await twoInstances(t, { maxSessionsPerUser: 1 })
  const users = Array.from({ length: 100 }, () => user())
  await withWritesHeld(admin, 2, () =>
    Promise.all(users.map((u) => Promise.all([one.set(`${u}:a`, session(60_000, { userId: u })), two.set(`${u}:b`, session(60_000, { userId: u }))]))),
  )
  await everyUserHasOneSession(t, [one, two], users, (u) => [`${u}:a`, `${u}:b`], () => [])
})

// Each user already has a session, so both logins are over the limit and
// both instances trim the list at about the same time, each from its own
// read of it. They keep the same session only if they order the sessions
// the same way, ties included (the two logins nearly always share a
// millisecond: each instance stamps its whole batch with one time). Ten
// users a round keep the two instances' trims in step (with a hundred, one
// instance often trims a round's lists before the other reads them): 500
// users in all. Ties ordered per call (as a hash map would) left 66 to 90 of
// them with no session in every one of 20 runs.
test('race: a prior session, many users, two logins at once on two instances, maxSessionsPerUser: 1: one new session each', async (t) => {
  const { one, two, admin } = await twoInstances(t, { maxSessionsPerUser: 1 })
  const users = []
  for (let round = 0; round < 50; round++) {
    const batch = Array.from({ length: 10 }, () => user())
    await Promise.all(batch.map((u) => one.set(`${u}:old`, session(60_000, { userId: u }))))
    await sleep(5) // the logins are strictly more recent
    await withWritesHeld(admin, 2, () =>
      Promise.all(batch.map((u) => Promise.all([one.set(`${u}:a`, session(60_000, { userId: u })), two.set(`${u}:b`, session(60_000, { userId: u }))]))),
    )
    users.push(...batch)
  }
  await everyUserHasOneSession(t, [one, two], users, (u) => [`${u}:a`, `${u}:b`], (u) => [`${u}:old`])
})

test('race: destroyUserSessions against a login leaves lists and get() in agreement', async (t) => {
  const one = makeStore()
  const two = sibling(one)
  await Promise.all([one.length(), two.length()])
  const users = Array.from({ length: 50 }, () => user())
  for (const u of users) await one.set(`${u}:old`, session(60_000, { userId: u }))

  const outcomes = await Promise.all(
    users.map(async (u, i) => {
      const login = i % 2 === 0 ? one : two
      const logoutAll = i % 3 === 0 ? one : two
      const sess = session(60_000, { userId: u })
      // Issued without awaiting either in between; the order alternates, and for some
      // the login comes a moment later, while the logout is on its way.
      const logout = () => logoutAll.destroyUserSessions(u)
      const signIn = () => login.set(`${u}:new`, sess)
      const later = (op) => new Promise((resolve) => setImmediate(resolve)).then(op)
      const [destroyed] = await [
        () => Promise.all([signIn(), logout()]).then(([, d]) => [d]),
        () => Promise.all([logout(), signIn()]),
        () => Promise.all([logout(), later(signIn)]),
        () => Promise.all([signIn(), later(logout)]).then(([, d]) => [d]),
      ][i % 4]()
      return { u, destroyed }
    }),
  )

  let aliveTotal = 0
  for (const { u, destroyed } of outcomes) {
    t.is(await one.get(`${u}:old`), null, `${u}: the session from before was not destroyed`)
    const alive = (await one.get(`${u}:new`)) !== null
    t.is((await two.get(`${u}:new`)) !== null, alive)
    const listed = await listedIds(one, u)
    t.deepEqual(listed, alive ? [`${u}:new`] : [], `${u}: list ${listed} but get says ${alive ? 'alive' : 'gone'}`)
    t.deepEqual(await listedIds(two, u), listed)
    // It destroyed the old session, and the new one too exactly when the new one is gone.
    t.is(destroyed, alive ? 1 : 2, `${u}: destroyUserSessions said ${destroyed}`)
    if (alive) aliveTotal++
  }
  t.is(await one.length(), aliveTotal)
  const ids = await one.ids()
  t.is(ids.length, aliveTotal)
  t.deepEqual(await one.stats(), { sessions: aliveTotal, users: aliveTotal, active: aliveTotal })
  t.log(`${aliveTotal} of ${users.length} logins survived the logout everywhere`)
})

// ---------------------------------------------------------------- stats

test('stats counts sessions, distinct users and recently active sessions', async (t) => {
  const store = makeStore()
  t.deepEqual(await store.stats(), { sessions: 0, users: 0, active: 0 })
  await store.set('a1', session(60_000, { userId: 'ada' }))
  await store.set('a2', session(60_000, { userId: 'ada' }))
  await store.set('b1', session(60_000, { userId: 'bob' }))
  await store.set('anon', session(60_000))
  await sleep(1200)
  await store.touch('a2', session(60_000, { userId: 'ada' }))
  await store.set('anon', session(60_000, { views: 2 }))
  t.deepEqual(await store.stats(), { sessions: 4, users: 2, active: 4 })
  t.deepEqual(await store.stats({ activeWithin: 300 }), { sessions: 4, users: 2, active: 4 })
  t.deepEqual(await store.stats({ activeWithin: 0.8 }), { sessions: 4, users: 2, active: 2 })

  await store.destroy('b1')
  t.deepEqual(await store.stats(), { sessions: 3, users: 1, active: 3 })
  await store.destroyUserSessions('ada')
  t.deepEqual(await store.stats(), { sessions: 1, users: 0, active: 1 })
  await store.clear()
  t.deepEqual(await store.stats(), { sessions: 0, users: 0, active: 0 })
  t.deepEqual(await store.listUserSessions('ada'), [])
})

test('clear also empties the per-user lists', async (t) => {
  const store = makeStore()
  await store.set('a', session(60_000, { userId: 'ada' }))
  await store.set('b', session(60_000, { userId: 'bob' }))
  await store.clear()
  t.deepEqual(await store.listUserSessions('ada'), [])
  t.is(await store.destroyUserSessions('bob'), 0)
  t.is(await store.length(), 0)
  t.deepEqual(await store.ids(), [])
  // Sessions set after a clear are indexed again.
  await store.set('c', session(60_000, { userId: 'ada' }))
  t.deepEqual(await listedIds(store, 'ada'), ['c'])
  t.is(await store.length(), 1)
})

// ---------------------------------------------------------------- no SCAN

test('all, ids, length, clear, stats and the per-user calls do not SCAN, and count only sessions', async (t) => {
  const store = makeStore()
  // Unrelated keys in the same database, some under a look-alike prefix.
  const noise = `noise:${randomUUID()}:`
  for (let i = 0; i < 2000; i += 500) {
    const args = []
    for (let k = i; k < i + 500; k++) args.push(`${noise}${k}`, 'x')
    await raw.call('MSET', ...args)
  }
  await raw.call('SET', store.prefix.slice(0, -1), 'not a session')
  await Promise.all(
    Array.from({ length: 30 }, (_, i) => store.set(`s${i}`, session(60_000, i < 20 ? { userId: `user${i % 4}` } : {}))),
  )

  const scans = await commandCalls('scan')
  const keys = await commandCalls('keys')
  t.is(await store.length(), 30)
  t.is((await store.ids()).length, 30)
  const all = await store.all()
  t.is(all.length, 30)
  t.deepEqual(all.map((s) => s.id).sort(), Array.from({ length: 30 }, (_, i) => `s${i}`).sort())
  t.deepEqual(await store.stats(), { sessions: 30, users: 4, active: 30 })
  t.is((await store.listUserSessions('user0')).length, 5)
  t.is(await store.destroyUserSessions('user1'), 5)
  await store.clear()
  t.is(await store.length(), 0)
  t.is(await commandCalls('scan'), scans, 'SCAN was called')
  t.is(await commandCalls('keys'), keys, 'KEYS was called')
  // The unrelated keys are untouched by clear.
  t.is(await raw.call('EXISTS', `${noise}0`, `${noise}1999`, store.prefix.slice(0, -1)), 3)
})

// ---------------------------------------------------------------- compatibility

test('the value at prefix + sid stays exactly JSON.stringify(session)', async (t) => {
  const store = makeStore({ maxSessionsPerUser: 3, idleTimeout: 600, absoluteTimeout: 3600 })
  const sess = session(60_000, { userId: 'ada', passport: { user: 'ada' }, cart: [1, 2] })
  await store.set('v', sess)
  t.is(await raw.call('GET', `${store.prefix}v`), JSON.stringify(sess))
  const touched = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 50_000).toISOString() } }
  await store.touch('v', touched)
  t.true([JSON.stringify(sess), JSON.stringify(touched)].includes(await raw.call('GET', `${store.prefix}v`)))
  const next = { ...sess, cart: [3] }
  await store.set('v', next)
  t.is(await raw.call('GET', `${store.prefix}v`), JSON.stringify(next))
  t.is(await raw.call('TYPE', `${store.prefix}v`), 'string')
})

test('a session written by connect-redis (plain SET, no index) can be read and re-saved', async (t) => {
  const store = makeStore()
  const sess = session(60_000, { userId: 'ada' })
  await raw.call('SET', `${store.prefix}legacy`, JSON.stringify(sess), 'PXAT', Date.parse(sess.cookie.expires))
  t.deepEqual(await store.get('legacy'), JSON.parse(JSON.stringify(sess)))
  // Once saved through this store it is indexed.
  await store.set('legacy', sess)
  t.deepEqual(await listedIds(store, 'ada'), ['legacy'])
  t.is(await raw.call('GET', `${store.prefix}legacy`), JSON.stringify(sess))
  // A touch (express-session's request that did not modify the session) indexes it too.
  await raw.call('SET', `${store.prefix}legacy2`, JSON.stringify(sess), 'PXAT', Date.parse(sess.cookie.expires))
  await store.touch('legacy2', session(60_000, { userId: 'ada' }))
  t.deepEqual((await listedIds(store, 'ada')).sort(), ['legacy', 'legacy2'])
  t.is(await raw.call('GET', `${store.prefix}legacy2`), JSON.stringify(sess))
})

// ---------------------------------------------------------------- bad input

test('listUserSessions and destroyUserSessions reject a missing, empty or non-string/number userId', async (t) => {
  const store = makeStore()
  await store.set('keep', session(60_000, { userId: 'ada' }))
  for (const bad of [undefined, null, '', {}, [], true, ['ada'], () => 'ada']) {
    for (const call of [() => store.listUserSessions(bad), () => store.destroyUserSessions(bad)]) {
      const promise = call()
      t.true(promise instanceof Promise)
      const err = await t.throwsAsync(promise)
      t.true(err instanceof RedisSessionStoreError)
      t.is(err.code, 'ERR_INVALID_ARG')
    }
  }
  t.truthy(await store.get('keep'))
})

test('invalid new options make the constructor throw a TypeError', (t) => {
  for (const options of [
    { absoluteTimeout: -1 },
    { absoluteTimeout: 'x' },
    { idleTimeout: 'x' },
    { idleTimeout: -0.5 },
    { maxSessionsPerUser: 0 },
    { maxSessionsPerUser: 1.5 },
    { maxSessionsPerUser: '2' },
    { userId: 5 },
    { userId: 'userId' },
  ]) {
    t.throws(() => new RedisSessionStore({ url: redis.url, ...options }), { instanceOf: TypeError }, JSON.stringify(options))
  }
})

test('valid new options are accepted and readable; defaults are unset', (t) => {
  const store = makeStore({ absoluteTimeout: 0.3, idleTimeout: 1.5, maxSessionsPerUser: 3, userId: (s) => s.owner })
  t.is(store.absoluteTimeout, 0.3)
  t.is(store.idleTimeout, 1.5)
  t.is(store.maxSessionsPerUser, 3)
  const plain = makeStore()
  t.is(plain.absoluteTimeout, undefined)
  t.is(plain.idleTimeout, undefined)
  t.is(plain.maxSessionsPerUser, undefined)
})

test('a userId function that throws makes set reject, and nothing is written', async (t) => {
  const store = makeStore({
    userId: (sess) => {
      if (sess.boom) throw new Error('boom')
      return sess.owner
    },
  })
  await store.set('fine', session(60_000, { owner: 'ada' }))
  await t.throwsAsync(store.set('bad', session(60_000, { owner: 'ada', boom: true })))
  t.is(await exists(store, 'bad'), 0)
  t.is(await store.get('bad'), null)
  t.deepEqual(await listedIds(store, 'ada'), ['fine'])
  t.is(await store.length(), 1)
  // An existing session is left as it was.
  await t.throwsAsync(store.set('fine', session(60_000, { owner: 'ada', boom: true, changed: 1 })))
  t.is((await store.get('fine')).changed, undefined)
  t.deepEqual(await listedIds(store, 'ada'), ['fine'])
  // With a callback too.
  const err = await new Promise((resolve) => store.set('bad2', session(60_000, { boom: true }), resolve))
  t.truthy(err)
  t.is(await exists(store, 'bad2'), 0)
})

test('calls over many sessions keep call order with the writes around them', async (t) => {
  const store = makeStore()
  for (let i = 0; i < 30; i++) {
    const owner = user()
    await store.set(`old-${i}`, session(60_000, { userId: owner }))
    // Issued before the login, in the same tick: must not see (or destroy) it.
    const destroyed = store.destroyUserSessions(owner)
    const login = store.set(`new-${i}`, session(60_000, { userId: owner }))
    // Issued after it: must see it.
    const listed = store.listUserSessions(owner)
    t.is(await destroyed, 1)
    await login
    t.deepEqual((await listed).map((s) => s.id), [`new-${i}`])
    t.not(await store.get(`new-${i}`), null)
  }
})

test('all() returns every session across pages, and names a corrupt one', async (t) => {
  const store = makeStore({ scanCount: 10 }) // 160 sessions per page
  await Promise.all(Array.from({ length: 500 }, (_, i) => store.set(`p${i}`, session(60_000, { n: i }))))
  const all = await store.all()
  t.is(all.length, 500)
  t.deepEqual(new Set(all.map((s) => s.id)).size, 500)
  t.true(all.every((s) => s.n === Number(s.id.slice(1))))
  await raw.call('SET', `${store.prefix}p321`, 'not json')
  const err = await t.throwsAsync(store.all())
  t.is(err.code, 'ERR_SESSION_CORRUPT')
  t.true(err.message.includes(`${store.prefix}p321`))
})
