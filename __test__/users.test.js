'use strict'

// Sessions per user (issue #5): who owns a session, listing and destroying a
// user's sessions, maxSessionsPerUser, stats, and the indexes behind them
// (no SCAN, never stale, consistent under races), against a real redis-server.
const test = require('ava')

// stats() without the numbers that depend on time.
const counts = ({ sessions, users, active }) => ({ sessions, users, active })
const { randomUUID } = require('node:crypto')
const { RedisSessionStore } = require('..')
const { storeSuite, session, sleep } = require('./helpers/suite')
const { RedisServer } = require('./helpers/redis')
const { RawRedis } = require('./helpers/raw')

const { redis, raw, makeStore } = storeSuite(test, 'u')

const user = () => `user-${randomUUID()}`
const listedIds = async (store, userId) => (await store.listUserSessions(userId)).map((s) => s.id)
const exists = (store, sid) => raw.call('EXISTS', `${store.prefix}${sid}`)

// Calls of a Redis command so far, from INFO commandstats (0 if never called).
async function commandCalls(name) {
  const info = await raw.call('INFO', 'commandstats')
  const m = new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(info)
  return m ? Number(m[1]) : 0
}

// The calls every backend shares (listing, owners, destroyUserSessions,
// maxSessionsPerUser, stats, clear, bad user ids, the one-instance races)
// are in conformance/users.js, admin.js, logout.js and errors.js. What stays
// here is what only Redis shows (keys, expiry times, SCAN, the values
// connect-redis reads and writes), the races that need CLIENT PAUSE, and the
// default-owner and option cases the conformance suite does not have yet.

// ---------------------------------------------------------------- owners

// conformance/users.js's default-owner test has the plain cases; these are
// the ones it lacks: Passport's object users, '' as "not set", and values
// that are not finite.
test('the default owner: passport.user.id, and \'\' or a non-finite number is "not set"', async (t) => {
  const store = makeStore()
  const owned = {
    // Passport's serializeUser giving an object: done(null, { id, name }).
    'passport-object': { passport: { user: { id: 'u4', name: 'Ada' } } },
    'passport-object-numeric': { passport: { user: { id: 8, name: 'Bob' } } },
    'passport-object-over-user': { passport: { user: { id: 'r2' } }, user: { id: 'r3' } },
    // An empty string is "not set" (apps write userId = '' for anonymous
    // visitors): no owner, or the next field's, and the save succeeds.
    empty: { userId: '' },
    'empty-then-passport': { userId: '', passport: { user: { id: 'e2' } } },
    'empty-passport-id': { passport: { user: { id: '' } }, user: { id: 'e3' } },
    'empty-everywhere': { userId: '', passport: { user: '' }, user: { id: '' } },
    'not-finite': { userId: NaN, passport: { user: { id: Infinity } }, user: { id: 'e4' } },
    'passport-object-without-id': { passport: { user: { name: 'Ada' } } },
  }
  for (const [sid, extra] of Object.entries(owned)) await store.set(sid, session(60_000, extra))
  t.deepEqual(await listedIds(store, 'u4'), ['passport-object'])
  t.deepEqual(await listedIds(store, 8), ['passport-object-numeric'])
  t.deepEqual(await listedIds(store, 'r2'), ['passport-object-over-user'])
  t.deepEqual(await listedIds(store, 'r3'), [])
  t.deepEqual(await listedIds(store, 'e2'), ['empty-then-passport'])
  t.deepEqual(await listedIds(store, 'e3'), ['empty-passport-id'])
  t.deepEqual(await listedIds(store, 'e4'), ['not-finite'])
  for (const nobody of ['Ada', 'NaN', 'Infinity']) t.deepEqual(await listedIds(store, nobody), [], nobody)
  t.is(await store.length(), 9)
  t.deepEqual(counts(await store.stats()), { sessions: 9, users: 6, active: 9 })
  t.is((await store.get('empty')).userId, '')
})

test('a userId function returning an empty string is an error, not "no owner": it returns undefined for that', async (t) => {
  const store = makeStore({ userId: (sess) => sess.owner })
  const err = await t.throwsAsync(store.set('e', session(60_000, { owner: '' })))
  t.is(err.code, 'ERR_INVALID_ARG')
  t.regex(err.message, /empty string/)
  t.is(await exists(store, 'e'), 0)
  await store.set('none', session(60_000, { owner: undefined }))
  t.deepEqual(counts(await store.stats()), { sessions: 1, users: 0, active: 1 })
})

// ---------------------------------------------------------------- in Redis

test('listUserSessions\' expiresAt is the key\'s PEXPIRETIME', async (t) => {
  const store = makeStore()
  const sess = session(60_000, { userId: 'ada' })
  await store.set('a', sess)
  const [listed] = await store.listUserSessions('ada')
  t.is(listed.expiresAt.getTime(), Date.parse(sess.cookie.expires))
  t.is(listed.expiresAt.getTime(), await raw.call('PEXPIRETIME', `${store.prefix}a`))
})

test('destroyUserSessions and maxSessionsPerUser delete the keys; a throwing userId writes none', async (t) => {
  const store = makeStore({ maxSessionsPerUser: 2 })
  for (const sid of ['a1', 'a2']) {
    await store.set(sid, session(60_000, { userId: 'ada' }))
    await sleep(5)
  }
  await store.set('a3', session(60_000, { userId: 'ada' })) // a1 goes
  t.is(await exists(store, 'a1'), 0)
  t.is(await store.destroyUserSessions('ada', { except: 'a3' }), 1)
  t.is(await exists(store, 'a2'), 0)
  t.is(await exists(store, 'a3'), 1)

  const throwing = makeStore({ userId: (sess) => (sess.boom ? JSON.parse('{') : sess.owner) })
  await t.throwsAsync(throwing.set('bad', session(60_000, { owner: 'ada', boom: true })))
  const err = await new Promise((resolve) => throwing.set('bad2', session(60_000, { boom: true }), resolve))
  t.truthy(err)
  t.is(await exists(throwing, 'bad'), 0)
  t.is(await exists(throwing, 'bad2'), 0)
})

// ---------------------------------------------------------------- maxSessionsPerUser races

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
  t.deepEqual(counts(await stores[0].stats()), { sessions: users.length, users: users.length, active: users.length })
}

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
  t.deepEqual(counts(await store.stats()), { sessions: 30, users: 4, active: 30 })
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

test('ids(), length() and stats() leave out sessions deleted behind the store\'s back, in every chunk and on every page', async (t) => {
  const store = makeStore({ scanCount: 3 }) // EXISTS of 3 keys; 48 sessions per page
  const sids = Array.from({ length: 100 }, (_, i) => `g${i}`)
  await Promise.all(sids.map((sid, i) => store.set(sid, session(60_000, { userId: `u${i % 7}` }))))
  // Their metas stay: only the keys go, as an eviction or a raw DEL does.
  const gone = sids.filter((_, i) => i % 9 === 4 || i === 99)
  await raw.call('DEL', ...gone.map((sid) => store.prefix + sid))
  const live = sids.filter((sid) => !gone.includes(sid))
  t.deepEqual((await store.ids()).sort(), [...live].sort())
  t.is(await store.length(), live.length)
  const users = new Set(live.map((sid) => `u${Number(sid.slice(1)) % 7}`))
  t.deepEqual(counts(await store.stats()), { sessions: live.length, users: users.size, active: live.length })
})

test('all() names a value written raw that is not JSON, on a later page, by its handle', async (t) => {
  const store = makeStore({ scanCount: 10 }) // 160 sessions per page
  await Promise.all(Array.from({ length: 500 }, (_, i) => store.set(`p${i}`, session(60_000, { n: i }))))
  t.is((await store.all()).length, 500)
  await raw.call('SET', `${store.prefix}p321`, 'not json')
  const err = await t.throwsAsync(store.all())
  t.is(err.code, 'ERR_SESSION_CORRUPT')
  t.true(err.message.includes(store.handleOf('p321')), err.message)
  t.false(err.message.includes(`${store.prefix}p321`), err.message)
})

test('a call over many sessions that runs out of time says so, and does not blame Redis', async (t) => {
  const store = makeStore()
  const owner = 'many-sessions-user'
  await Promise.all(Array.from({ length: 3000 }, (_, i) => store.set(`m${i}`, session(60_000, { userId: owner, n: i }))))
  // 1 ms is too little for the call's round trips: it runs out of time.
  const hurried = makeStore({ prefix: store.prefix, commandTimeout: 1 })
  const err = await t.throwsAsync(hurried.listUserSessions(owner))
  t.is(err.code, 'ERR_REDIS_TIMEOUT')
  t.regex(err.message, /did not finish within 1 ms \(commandTimeout\)/)
  t.regex(err.message, /call it again, or raise commandTimeout/)
  t.false(/redis did not answer/.test(err.message), err.message)
  // With time enough, the same call does it all.
  t.is(await store.destroyUserSessions(owner), 3000)
})

test('log out everywhere of a user with more sessions than one commandTimeout allows goes in steps, and leaves none', async (t) => {
  const owner = 'huge-user'
  const store = makeStore()
  const n = 20_000
  for (let i = 0; i < n; i += 2000) {
    await Promise.all(Array.from({ length: 2000 }, (_, j) => store.set(`h${i + j}`, session(60_000, { userId: owner }))))
  }
  // scanCount 10: steps of 160 sessions, each far within 200 ms; the whole
  // call takes several times that.
  const stepped = makeStore({ prefix: store.prefix, scanCount: 10, commandTimeout: 200 })
  const kept = ['h7', 'h19999']
  const from = Date.now()
  t.is(await stepped.destroyUserSessions(owner, { except: kept }), n - kept.length)
  t.log(`${n - kept.length} sessions destroyed in ${Date.now() - from} ms`)
  t.deepEqual((await store.listUserSessions(owner)).map((s) => s.id).sort(), [...kept].sort())
  t.is(await store.length(), kept.length)
})
