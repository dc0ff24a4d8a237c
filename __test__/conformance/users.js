'use strict'

// Sessions per user: the owner, listUserSessions, destroyUserSessions,
// maxSessionsPerUser, including two app instances logging in at once.
const { counts, session, touched, asStored, sleep, timed, within, user, listedIds, sorted } = require('./util')

// Which of `sids` get() still finds.
async function alive(store, sids) {
  const got = await Promise.all(sids.map((sid) => store.get(sid)))
  return sids.filter((_, i) => got[i] !== null)
}

module.exports = (test, { makeStore, sibling }) => {
  // ---------------------------------------------------------------- listing

  test('listUserSessions: the user\'s live sessions, most recently used first, with their times', async (t) => {
    const store = makeStore()
    const ada = user()
    const a = session(60_000, { userId: ada, device: 'laptop' })
    const b = session(30_000, { userId: ada, device: 'phone' })
    const setA = await timed(() => store.set('a', a))
    await sleep(10)
    await store.set('b', b)
    await store.set('c', session(60_000, { userId: user() }))

    let list = await store.listUserSessions(ada)
    t.deepEqual(list.map((s) => s.id), ['b', 'a'])
    const [lb, la] = list
    t.deepEqual(Object.keys(la).sort(), ['createdAt', 'device', 'expiresAt', 'handle', 'id', 'lastAccess', 'session'])
    t.deepEqual(la.session, asStored(a))
    t.deepEqual(lb.session, asStored(b))
    for (const s of list) for (const k of ['createdAt', 'lastAccess', 'expiresAt']) t.true(s[k] instanceof Date, k)
    within(t, la.createdAt.getTime(), setA.from, setA.to, 'createdAt of a')
    within(t, la.lastAccess.getTime(), setA.from, setA.to, 'lastAccess of a')
    // Without timeouts a session lives exactly as long as its cookie.
    t.is(la.expiresAt.getTime(), Date.parse(a.cookie.expires))
    t.is(lb.expiresAt.getTime(), Date.parse(b.cookie.expires))

    // A touch makes `a` the most recently used; its creation time stays.
    await sleep(5)
    const later = touched(a, 90_000)
    const touch = await timed(() => store.touch('a', later))
    list = await store.listUserSessions(ada)
    t.deepEqual(list.map((s) => s.id), ['a', 'b'])
    within(t, list[0].lastAccess.getTime(), touch.from, touch.to, 'lastAccess of a after touch')
    t.is(list[0].createdAt.getTime(), la.createdAt.getTime())
    t.is(list[0].expiresAt.getTime(), Date.parse(later.cookie.expires))
    t.is(list[0].session.cookie.expires, later.cookie.expires)

    // Saving `b` again (a modified session) makes it the most recent.
    await sleep(5)
    const save = await timed(() => store.set('b', { ...b, cart: [1] }))
    list = await store.listUserSessions(ada)
    t.deepEqual(list.map((s) => s.id), ['b', 'a'])
    t.deepEqual(list[0].session.cart, [1])
    within(t, list[0].lastAccess.getTime(), save.from, save.to, 'lastAccess of b after a second set')
    t.is(list[0].createdAt.getTime(), lb.createdAt.getTime())

    t.deepEqual(await store.listUserSessions(user()), [])
  })

  test('the default owner is sess.userId ?? sess.passport.user ?? sess.user.id; 42 and \'42\' are one user', async (t) => {
    const store = makeStore()
    const owned = {
      'by-userId': { userId: 'u1' },
      'by-passport': { passport: { user: 'u2' } },
      'by-user-id': { user: { id: 'u3', name: 'Ada' } },
      numeric: { userId: 42 },
      'numeric-passport': { passport: { user: 7 } },
      precedence: { userId: 'p1', passport: { user: 'p2' }, user: { id: 'p3' } },
      'passport-over-user': { passport: { user: 'q2' }, user: { id: 'q3' } },
      anonymous: { views: 3 },
      'user-string': { user: 'ada' },
    }
    for (const [sid, extra] of Object.entries(owned)) await store.set(sid, session(60_000, extra))
    // An owner of another type is a mistake, never silently no owner.
    for (const extra of [{ userId: true }, { userId: { id: 'obj' } }]) {
      const err = await t.throwsAsync(store.set('bad-owner', session(60_000, extra)))
      t.is(err.code, 'ERR_INVALID_ARG')
    }
    const expected = { u1: ['by-userId'], u2: ['by-passport'], u3: ['by-user-id'], 42: ['numeric'], 7: ['numeric-passport'], p1: ['precedence'], p2: [], p3: [], q2: ['passport-over-user'], q3: [], ada: [], true: [], obj: [], '[object Object]': [] }
    for (const [owner, sids] of Object.entries(expected)) t.deepEqual(await listedIds(store, owner), sids, owner)
    t.deepEqual(await listedIds(store, 42), ['numeric'], 'a number names the same user as its decimal string')
    // Sessions without an owner are sessions all the same.
    t.is(await store.length(), 9)
    t.deepEqual(await counts(store), { sessions: 9, users: 7, active: 9 })
  })

  test('a userId function chooses the owner', async (t) => {
    const store = makeStore({ userId: (sess) => sess.account?.email })
    await store.set('x', session(60_000, { account: { email: 'ada@example.com' }, userId: 'ignored' }))
    await store.set('y', session(60_000, { userId: 'ignored' }))
    t.deepEqual(await listedIds(store, 'ada@example.com'), ['x'])
    t.deepEqual(await listedIds(store, 'ignored'), [])
    t.deepEqual(await counts(store), { sessions: 2, users: 1, active: 2 })
  })

  test('a session whose owner changes moves to the new owner; one that loses its owner leaves every list', async (t) => {
    const store = makeStore()
    await store.set('s', session(60_000, { userId: 'ada' }))
    await store.set('s2', session(60_000, { userId: 'ada' }))
    await store.set('s', session(60_000, { userId: 'bob' }))
    t.deepEqual(await listedIds(store, 'ada'), ['s2'])
    t.deepEqual(await listedIds(store, 'bob'), ['s'])
    t.deepEqual(await counts(store), { sessions: 2, users: 2, active: 2 })
    // A stale entry under ada would make this destroy bob's session.
    t.is(await store.destroyUserSessions('ada'), 1)
    t.truthy(await store.get('s'))
    // A touch moves it too (the owner is read at every set and touch).
    await store.touch('s', session(60_000, { userId: 'cy' }))
    t.deepEqual(await listedIds(store, 'bob'), [])
    t.deepEqual(await listedIds(store, 'cy'), ['s'])
    // Logging out without regenerate: no owner, in no list, still a session.
    await store.set('s', session(60_000, {}))
    t.deepEqual(await listedIds(store, 'cy'), [])
    t.deepEqual(await counts(store), { sessions: 1, users: 0, active: 1 })
    t.is(await store.destroyUserSessions('cy'), 0)
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
    t.deepEqual(await alive(store, ['a1', 'a2', 'a3', 'a4', 'b1', 'anon']), ['a1', 'b1', 'anon'])
    t.deepEqual(await listedIds(store, ada), ['a1'])
    t.is(await store.length(), 3)

    for (const sid of ['a5', 'a6', 'a7']) await store.set(sid, session(60_000, { userId: ada }))
    t.is(await store.destroyUserSessions(ada, { except: ['a1', 'a6', 'not-a-session'] }), 2)
    t.deepEqual(sorted(await listedIds(store, ada)), ['a1', 'a6'])
    // An except that names another user's session changes nothing for it.
    t.is(await store.destroyUserSessions(ada, { except: 'b1' }), 2)
    t.deepEqual(await store.listUserSessions(ada), [])
    t.is(await store.destroyUserSessions(ada), 0)
    t.is(await store.destroyUserSessions(user()), 0)
    t.deepEqual(sorted(await store.ids()), ['anon', 'b1'])
    t.deepEqual(await counts(store), { sessions: 2, users: 1, active: 2 })
  })

  test('destroyUserSessions takes a numeric user id, and a callback with or without options', async (t) => {
    const store = makeStore()
    await store.set('n1', session(60_000, { userId: 1001 }))
    await store.set('n2', session(60_000, { passport: { user: 1001 } }))
    await store.set('n3', session(60_000, { userId: '1001' }))
    const withOptions = await new Promise((resolve, reject) =>
      store.destroyUserSessions(1001, { except: 'n3' }, (err, n) => (err ? reject(err) : resolve(n))),
    )
    t.is(withOptions, 2)
    const without = await new Promise((resolve, reject) => store.destroyUserSessions('1001', (err, n) => (err ? reject(err) : resolve(n))))
    t.is(without, 1)
    t.deepEqual(await alive(store, ['n1', 'n2', 'n3']), [])
  })

  // Twenty walks of every shard at once: on a loaded two-core machine they
  // can take longer than the default commandTimeout; order is what is tested.
  const HEAVY = { commandTimeout: 6000 }

  test('calls over many sessions keep call order with the writes around them', async (t) => {
    const store = makeStore(HEAVY)
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const owner = user()
        await store.set(`old-${i}`, session(60_000, { userId: owner }))
        // Issued before the login, in the same tick: must not see (or destroy) it.
        const destroyed = store.destroyUserSessions(owner)
        const login = store.set(`new-${i}`, session(60_000, { userId: owner }))
        // Issued after it: must see it.
        const listed = store.listUserSessions(owner)
        const count = store.length()
        t.is(await destroyed, 1)
        await login
        t.deepEqual((await listed).map((s) => s.id), [`new-${i}`])
        t.true((await count) >= 1)
        t.not(await store.get(`new-${i}`), null)
      }),
    )
  })

  test('race: destroyUserSessions on one instance against a login on another leaves lists and get() in agreement', async (t) => {
    const one = makeStore(HEAVY, { shared: true })
    const two = sibling(one, HEAVY)
    await Promise.all([one.length(), two.length()])
    const users = Array.from({ length: 40 }, () => user())
    await Promise.all(users.map((u) => one.set(`${u}:old`, session(60_000, { userId: u }))))
    const outcomes = await Promise.all(
      users.map(async (u, i) => {
        const login = i % 2 === 0 ? one : two
        const logoutAll = i % 3 === 0 ? one : two
        const sess = session(60_000, { userId: u })
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
    let survivors = 0
    for (const { u, destroyed } of outcomes) {
      t.is(await one.get(`${u}:old`), null, `${u}: the session from before was not destroyed`)
      const live = (await one.get(`${u}:new`)) !== null
      t.is((await two.get(`${u}:new`)) !== null, live)
      const listed = await listedIds(one, u)
      t.deepEqual(listed, live ? [`${u}:new`] : [], `${u}: list ${listed} but get says ${live ? 'alive' : 'gone'}`)
      t.deepEqual(await listedIds(two, u), listed)
      t.is(destroyed, live ? 1 : 2, `${u}: destroyUserSessions said ${destroyed}`)
      if (live) survivors++
    }
    t.is(await one.length(), survivors)
    t.deepEqual(await counts(two), { sessions: survivors, users: survivors, active: survivors })
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
    await store.set('anon', session(60_000))
    // Saving or touching an existing session is not a new one: nothing goes.
    await store.set('a', session(60_000, { userId: 'ada', n: 1 }))
    await sleep(5)
    await store.touch('b', session(60_000, { userId: 'ada' }))
    await sleep(5)
    await store.touch('a', session(60_000, { userId: 'ada' }))
    await sleep(5)
    t.deepEqual(await listedIds(store, 'ada'), ['a', 'b'])
    // b is now the least recently used.
    await store.set('c', session(60_000, { userId: 'ada' }))
    t.deepEqual(await alive(store, ['a', 'b', 'c', 'x', 'anon']), ['a', 'c', 'x', 'anon'])
    t.deepEqual(await listedIds(store, 'ada'), ['c', 'a'])
    t.deepEqual(await counts(store), { sessions: 4, users: 2, active: 4 })
  })

  test('maxSessionsPerUser: 1 is exclusive login: the newest login wins', async (t) => {
    const store = makeStore({ maxSessionsPerUser: 1 })
    await store.set('old', session(60_000, { userId: 'ada' }))
    await sleep(5)
    await store.set('new', session(60_000, { userId: 'ada' }))
    t.deepEqual(await alive(store, ['old', 'new']), ['new'])
    t.deepEqual(await listedIds(store, 'ada'), ['new'])
  })

  test('maxSessionsPerUser counts a session that moves in from another owner or from none', async (t) => {
    const store = makeStore({ maxSessionsPerUser: 1 })
    await store.set('a', session(60_000, { userId: 'ada' }))
    await sleep(5)
    // An anonymous session logs in as ada (without regenerate).
    await store.set('b', session(60_000))
    await sleep(5)
    await store.set('b', session(60_000, { userId: 'ada' }))
    t.deepEqual(await alive(store, ['a', 'b']), ['b'])
    await sleep(5)
    await store.set('c', session(60_000, { userId: 'bob' }))
    await sleep(5)
    await store.set('c', session(60_000, { userId: 'ada' }))
    t.deepEqual(await alive(store, ['a', 'b', 'c']), ['c'])
    t.deepEqual(await listedIds(store, 'ada'), ['c'])
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
    // b, now the least recently used of ada's, moves to bob: it must not go to make room for ada.
    await sleep(5)
    await store.set('b', session(60_000, { userId: 'bob' }))
    await sleep(5)
    await store.set('d', session(60_000, { userId: 'ada' }))
    t.deepEqual(await alive(store, ['b', 'c', 'd']), ['b', 'c', 'd'])
    t.deepEqual(await listedIds(store, 'ada'), ['d', 'c'])
    t.deepEqual(await listedIds(store, 'bob'), ['b'])
  })

  test('race: two logins in one tick with maxSessionsPerUser: 1 leave exactly one session', async (t) => {
    // 30 logins' caps at once, one after the other on the writer (on a
    // loaded machine with file:// fsyncs, more than the default 2 s).
    const store = makeStore({ maxSessionsPerUser: 1, ...HEAVY })
    const users = Array.from({ length: 30 }, () => user())
    await Promise.all(users.map((u) => Promise.all([store.set(`${u}:a`, session(60_000, { userId: u })), store.set(`${u}:b`, session(60_000, { userId: u }))])))
    for (const u of users) {
      const live = await alive(store, [`${u}:a`, `${u}:b`])
      t.is(live.length, 1, `${u}: ${live}`)
      t.deepEqual(await listedIds(store, u), live)
    }
    t.deepEqual(await counts(store), { sessions: users.length, users: users.length, active: users.length })
  })

  // Two app instances, each user already signed in once, sign in again on
  // both at once: every login orders the same sessions the same way, so the
  // user keeps exactly the `n` most recent, and never none. The two logins
  // of a user tie (same millisecond) only when both instances send theirs
  // within one ms, hence many rounds: most runs meet ties in some of them.
  for (const [n, rounds] of [[1, 12], [2, 2]]) {
    test(`race: two instances logging a user in at once over a prior session, maxSessionsPerUser: ${n}`, async (t) => {
      // Forty capped logins at once, each cap a call in turn on its writer.
      const one = makeStore({ maxSessionsPerUser: n, ...HEAVY }, { shared: true })
      const two = sibling(one, { maxSessionsPerUser: n, ...HEAVY })
      await Promise.all([one.length(), two.length()]) // both connected
      const users = []
      for (let round = 0; round < rounds; round++) {
        const batch = Array.from({ length: 20 }, () => user())
        users.push(...batch)
        await Promise.all(batch.map((u, i) => (i % 2 ? one : two).set(`${u}:prior`, session(60_000, { userId: u }))))
        await sleep(3) // the logins are strictly more recent than the prior sessions
        await Promise.all(
          batch.map((u) => Promise.all([one.set(`${u}:a`, session(60_000, { userId: u })), two.set(`${u}:b`, session(60_000, { userId: u }))])),
        )
      }
      let wrong = 0
      for (const u of users) {
        const live = await alive(one, [`${u}:prior`, `${u}:a`, `${u}:b`])
        const listed = sorted(await listedIds(two, u))
        const ok = live.length === n && !live.includes(`${u}:prior`) && listed.join() === sorted(live).join()
        if (!ok) {
          wrong++
          if (wrong <= 5) t.log(`${u}: alive ${live}, listed ${listed}`)
        }
      }
      t.is(wrong, 0, `${wrong} of ${users.length} users did not keep exactly their ${n} newest sessions`)
      t.deepEqual(await counts(one), { sessions: users.length * n, users: users.length, active: users.length * n })
    })
  }

  test('one unreadable session does not block log out everywhere: it is listed apart and destroyed with the others', async (t) => {
    const store = makeStore({}, { shared: true })
    const owner = user()
    // Another instance with another serializer writes a value this one cannot parse.
    const odd = sibling(store, { serializer: { stringify: (s) => `~${JSON.stringify(s)}`, parse: (s) => JSON.parse(s.slice(1)) } })
    await store.set('fine-1', session(60_000, { userId: owner }))
    await odd.set('tampered', session(60_000, { userId: owner }))
    await store.set('fine-2', session(60_000, { userId: owner }))
    const listed = await store.listUserSessions(owner)
    t.deepEqual(listed.map((s) => s.id).sort(), ['fine-1', 'fine-2', 'tampered'])
    const bad = listed.find((s) => s.id === 'tampered')
    t.is(bad.unreadable, true)
    t.is(bad.session, null)
    t.true(listed.filter((s) => s.id !== 'tampered').every((s) => s.session && !s.unreadable))
    t.is(await store.destroyUserSessions(owner), 3)
    t.deepEqual(await store.listUserSessions(owner), [])
    t.is(await odd.get('tampered'), null)
  })
}
