'use strict'

// Policy per session: idleTimeout, absoluteTimeout and maxSessionsPerUser
// as functions of the session (remember me, exclusive login for some
// users), id-object owners, and the numbers stats() gives. A session is
// only required to be alive when it is far from any deadline, so a busy
// machine cannot fail a correct store.
const { ObjectId } = require('bson')
const { session, touched, sleep, sleepUntil, timed, user, listedIds, PAST } = require('./util')

const rememberMe = (sess) => (sess.rememberMe ? undefined : 0.8)

async function rejects(t, promise, what) {
  const err = await t.throwsAsync(promise, undefined, what)
  t.is(err.code, 'ERR_INVALID_ARG', what)
  return err
}

module.exports = (test, { makeStore, sibling }) => {
  test('policy: a remember-me session outlives the idle limit that ends a normal one, on every instance', async (t) => {
    const store = makeStore({ idleTimeout: rememberMe }, { shared: true })
    const other = sibling(store, { idleTimeout: rememberMe })
    const ada = user()
    const normal = await timed(() => store.set('normal', session(60_000, { userId: ada })))
    await store.set('kept', session(60_000, { userId: ada, rememberMe: true }))
    // A touch from another instance applies the same policy.
    await other.touch('kept', touched(session(60_000, { userId: ada, rememberMe: true }), 60_000))
    await sleepUntil(normal.to + 800 + PAST)
    t.is(await store.get('normal'), null, 'the normal session ended at its idle limit')
    t.truthy(await store.get('kept'), 'the remember-me session has no idle limit')
    t.deepEqual(await listedIds(store, ada), ['kept'])
    t.is(await store.length(), 1)
  })

  test('policy: a per-session absolute limit ends that session however often it is touched', async (t) => {
    const store = makeStore({ absoluteTimeout: (sess) => (sess.admin ? 0.8 : 3600) })
    const admin = await timed(() => store.set('admin', session(60_000, { userId: 'root', admin: true })))
    await store.set('plain', session(60_000, { userId: 'ada' }))
    while (Date.now() < admin.to + 800 + PAST) {
      await store.touch('admin', touched(session(60_000, { userId: 'root', admin: true }), 60_000))
      await store.touch('plain', touched(session(60_000, { userId: 'ada' }), 60_000))
      await sleep(100)
    }
    t.is(await store.get('admin'), null)
    t.truthy(await store.get('plain'))
    const [listed] = await store.listUserSessions('ada')
    t.true(listed.expiresAt.getTime() > Date.now() + 30_000, 'the long limit still lets the cookie decide')
  })

  test('policy: idle and absolute functions together; undefined means no limit for that session', async (t) => {
    const store = makeStore({ idleTimeout: (s) => s.idle, absoluteTimeout: (s) => s.absolute })
    const set = await timed(() => store.set('both', session(60_000, { userId: 'u', idle: 30, absolute: 0.8 })))
    await store.set('none', session(60_000, { userId: 'u' }))
    const [both] = (await store.listUserSessions('u')).filter((s) => s.id === 'both')
    t.true(both.expiresAt.getTime() <= set.to + 800 + 2, 'the absolute limit is the earliest deadline')
    await sleepUntil(set.to + 800 + PAST)
    t.is(await store.get('both'), null)
    t.truthy(await store.get('none'))
  })

  test('policy: maxSessionsPerUser per session: one for one user, three for another', async (t) => {
    const cap = (sess) => (sess.userId === 'solo' ? 1 : 3)
    const store = makeStore({ maxSessionsPerUser: cap })
    // A few ms apart: the least recently used sessions go first.
    for (let i = 0; i < 3; i++) await store.set(`solo-${i}`, session(60_000, { userId: 'solo' })).then(() => sleep(3))
    for (let i = 0; i < 5; i++) await store.set(`team-${i}`, session(60_000, { userId: 'team' })).then(() => sleep(3))
    t.deepEqual(await listedIds(store, 'solo'), ['solo-2'], 'the newest login stays')
    t.deepEqual((await listedIds(store, 'team')).sort(), ['team-2', 'team-3', 'team-4'])
    t.is(await store.get('solo-0'), null)
    // undefined: no cap for this session's owner.
    const open = makeStore({ maxSessionsPerUser: () => undefined })
    for (let i = 0; i < 4; i++) await open.set(`o-${i}`, session(60_000, { userId: 'o' }))
    t.is((await listedIds(open, 'o')).length, 4)
  })

  test('policy: a function that returns a bad value fails that call with ERR_INVALID_ARG, nothing written', async (t) => {
    for (const bad of [-1, 0, NaN, Infinity, '30', 11 * 365 * 86400, {}]) {
      for (const name of ['idleTimeout', 'absoluteTimeout']) {
        const store = makeStore({ [name]: () => bad })
        const err = await rejects(t, store.set('s', session(60_000, { userId: 'ada' })), `${name} => ${String(bad)}`)
        t.regex(err.message, new RegExp(`${name} function`))
        await rejects(t, store.touch('s', session(60_000)), `touch with ${name} => ${String(bad)}`)
        t.is(await store.get('s'), null)
        t.deepEqual(await store.listUserSessions('ada'), [])
      }
    }
    for (const bad of [0, 1.5, -2, '2', 2e6]) {
      const store = makeStore({ maxSessionsPerUser: () => bad })
      await rejects(t, store.set('s', session(60_000, { userId: 'ada' })), `maxSessionsPerUser => ${String(bad)}`)
      t.is(await store.get('s'), null)
    }
    // The callback form gets the same error.
    const store = makeStore({ idleTimeout: () => -5 })
    const err = await new Promise((resolve) => store.set('s', session(), resolve))
    t.is(err.code, 'ERR_INVALID_ARG')
  })

  test('owners: an ObjectId owner is indexed by its text: listed, counted, and logged out everywhere', async (t) => {
    const store = makeStore()
    const id = new ObjectId()
    await store.set('a', session(60_000, { userId: id }))
    await store.set('b', session(60_000, { passport: { user: new ObjectId(id.toHexString()) } }))
    await store.set('c', session(60_000, { user: { id, name: 'Ada' } }))
    t.deepEqual((await listedIds(store, id)).sort(), ['a', 'b', 'c'])
    t.deepEqual((await listedIds(store, id.toHexString())).sort(), ['a', 'b', 'c'])
    t.is((await store.stats()).users, 1)
    t.is(await store.destroyUserSessions(id), 3)
    t.is(await store.get('a'), null)
    t.deepEqual(await listedIds(store, id), [])
  })

  test('owners: an owner that is neither a string, a number nor an id object fails the save, naming its type', async (t) => {
    const store = makeStore()
    for (const [owner, type] of [[{ name: 'ada' }, 'Object'], [true, 'boolean'], [['a'], 'array'], [new Date(), 'Date']]) {
      const err = await rejects(t, store.set('s', session(60_000, { userId: owner })), `owner ${type}`)
      t.true(err.message.includes(type), err.message)
      t.is(await store.get('s'), null)
    }
    t.is(await store.length(), 0)
  })

  test('stats: averageAge and oldestCreatedAt over the live sessions', async (t) => {
    const store = makeStore()
    const empty = await store.stats()
    t.is(empty.averageAge, 0)
    t.is(empty.oldestCreatedAt, null)
    const first = await timed(() => store.set('old', session(60_000, { userId: 'ada' })))
    await sleep(300)
    const second = await timed(() => store.set('new', session(60_000)))
    // A touch is not a creation.
    await store.touch('old', touched(session(60_000, { userId: 'ada' }), 60_000))
    const read = await timed(() => store.stats())
    const stats = read.value
    t.is(stats.sessions, 2)
    t.true(stats.oldestCreatedAt >= new Date(first.from) && stats.oldestCreatedAt <= new Date(first.to))
    // The mean of (now - created) at the moment stats() looked.
    const low = (read.from - first.to + (read.from - second.to)) / 2
    const high = (read.to - first.from + (read.to - second.from)) / 2
    t.true(stats.averageAge >= low - 2 && stats.averageAge <= high + 2, `${stats.averageAge} in [${low}, ${high}]`)
    await store.destroy('old')
    const after = await store.stats()
    t.true(after.oldestCreatedAt >= new Date(second.from), 'a destroyed session no longer counts')
  })
}
