'use strict'

// The calls over many sessions: all / ids / length / clear, stats, reindex.
const { randomUUID } = require('node:crypto')
const { namesSession, counts, session, touched, sleep, sleepUntil, timed, listedIds, sorted } = require('./util')

module.exports = (test, { makeStore, sibling }) => {
  test('all, ids, length and clear see only their own prefix, glob characters included', async (t) => {
    const id = randomUUID()
    const store = makeStore({ prefix: `conf:glob[ab]*:${id}:` }, { shared: true })
    // A prefix whose keys the glob `prefix*` would match, and one that starts like ours.
    const star = makeStore({ prefix: `conf:globa-other:${id}:` }, { shared: true })
    const longer = makeStore({ prefix: `${store.prefix}more:` }, { shared: true })
    await star.set('o', session())
    await longer.set('o', session())
    await Promise.all(['a', 'b', 'c'].map((id) => store.set(id, session(60_000, { who: id }))))
    const all = await store.all()
    t.true(Array.isArray(all))
    t.deepEqual(sorted(all.map((s) => s.id)), ['a', 'b', 'c'])
    for (const s of all) t.is(s.who, s.id)
    t.truthy(all[0].cookie)
    t.deepEqual(sorted(await store.ids()), ['a', 'b', 'c'])
    t.is(await store.length(), 3)
    t.is(await store.clear(), undefined)
    t.is(await store.length(), 0)
    t.deepEqual(await store.ids(), [])
    t.deepEqual(await store.all(), [])
    t.is(await store.get('a'), null)
    t.truthy(await star.get('o'))
    t.truthy(await longer.get('o'))
    t.is(await star.length(), 1)
    t.is(await longer.length(), 1)
  })

  test('clear also empties the per-user lists and stats; sessions set after it are counted again', async (t) => {
    const store = makeStore()
    await store.set('a', session(60_000, { userId: 'ada' }))
    await store.set('b', session(60_000, { userId: 'bob' }))
    await store.clear()
    t.deepEqual(await store.listUserSessions('ada'), [])
    t.is(await store.destroyUserSessions('bob'), 0)
    t.deepEqual(await counts(store), { sessions: 0, users: 0, active: 0 })
    await store.set('c', session(60_000, { userId: 'ada' }))
    t.deepEqual(await listedIds(store, 'ada'), ['c'])
    t.is(await store.length(), 1)
    t.deepEqual(await store.ids(), ['c'])
  })

  test('a cleared session stays cleared for another instance that had read it', async (t) => {
    const store = makeStore({}, { shared: true })
    const other = sibling(store)
    await store.set('k', session(60_000, { userId: 'ada' }))
    t.truthy(await other.get('k'))
    await store.clear()
    t.is(await other.get('k'), null)
    t.is(await other.length(), 0)
  })

  test('all() returns every session across pages', async (t) => {
    const store = makeStore({ scanCount: 10 }) // 160 sessions per page on Redis
    // Some ids and values outside ASCII: a page's ids and values cross
    // joined, and are cut apart by their lengths in UTF-16 units.
    const id = (i) => (i % 50 === 7 ? `ü😀-${i}` : `p${i}`)
    const text = (i) => (i % 3 === 0 ? 'ß 😀 中' : 'plain')
    await Promise.all(Array.from({ length: 500 }, (_, i) => store.set(id(i), session(60_000, { n: i, text: text(i) }))))
    const all = await store.all()
    t.is(all.length, 500)
    t.is(new Set(all.map((s) => s.id)).size, 500)
    t.true(all.every((s) => s.id === id(s.n) && s.text === text(s.n)))
    t.is((await store.ids()).length, 500)
    t.is(await store.length(), 500)
    await store.clear()
    t.is(await store.length(), 0)
  })

  test('all() names a session it cannot parse, by its handle', async (t) => {
    const store = makeStore({}, { shared: true })
    const other = sibling(store, { serializer: { stringify: (s) => `~${JSON.stringify(s)}`, parse: (s) => JSON.parse(s.slice(1)) } })
    await store.set('fine', session())
    await other.set('sid-odd-value', session())
    const err = await t.throwsAsync(store.all())
    t.is(err.code, 'ERR_SESSION_CORRUPT')
    namesSession(t, err, store, 'sid-odd-value')
  })

  test('stats counts sessions, distinct users and the sessions used within activeWithin', async (t) => {
    const store = makeStore()
    t.deepEqual(await counts(store), { sessions: 0, users: 0, active: 0 })
    const early = await timed(async () => {
      await store.set('a1', session(60_000, { userId: 'ada' }))
      await store.set('b1', session(60_000, { userId: 'bob' }))
    })
    await store.set('anon', session(60_000))
    await sleep(700)
    const late = await timed(async () => {
      await store.set('a2', session(60_000, { userId: 'ada' }))
      await store.touch('b1', session(60_000, { userId: 'bob' }))
    })
    t.deepEqual(await counts(store), { sessions: 4, users: 2, active: 4 })
    t.deepEqual(await counts(store, { activeWithin: 300 }), { sessions: 4, users: 2, active: 4 })
    // Used in the last 0.4 s: a2 and b1 (a1 and anon were 0.7 s ago), as long
    // as this machine answers the stats within those 0.4 s.
    const recent = await timed(() => store.stats({ activeWithin: 0.4 }))
    t.is(recent.value.sessions, 4)
    t.is(recent.value.users, 2)
    t.true(recent.from - early.to > 400)
    if (recent.to - late.from < 400) t.is(recent.value.active, 2)
    else t.true(recent.value.active <= 2, String(recent.value.active))

    await store.destroy('b1')
    t.deepEqual(await counts(store), { sessions: 3, users: 1, active: 3 })
    await store.destroyUserSessions('ada')
    t.deepEqual(await counts(store), { sessions: 1, users: 0, active: 1 })
  })

  test('reindex() resolves with { indexed, skipped }, leaves the sessions as they were, and can run again', async (t) => {
    const store = makeStore({}, { shared: true })
    const sessions = Array.from({ length: 30 }, (_, i) => [`r${i}`, session(60_000, i < 10 ? { userId: 'ada', i } : { i })])
    await Promise.all(sessions.map(([sid, sess]) => store.set(sid, sess)))
    await store.destroy('r29')
    const before = await Promise.all(sessions.map(([sid]) => store.get(sid)))

    t.deepEqual(await store.reindex(), { indexed: 29, skipped: 0 })
    t.deepEqual(await store.reindex(), { indexed: 29, skipped: 0 })
    t.deepEqual(await Promise.all(sessions.map(([sid]) => store.get(sid))), before)
    t.deepEqual(sorted(await listedIds(store, 'ada')), sorted(sessions.slice(0, 10).map(([sid]) => sid)))
    t.is(await store.length(), 29)
    t.deepEqual(await counts(store), { sessions: 29, users: 1, active: 29 })

    // A value that is not a session for this store (another serializer
    // wrote it) is skipped and left alone.
    const other = sibling(store, { serializer: { stringify: (s) => `~${JSON.stringify(s)}`, parse: (s) => JSON.parse(s.slice(1)) } })
    await other.set('foreign', session(60_000, { mark: 1 }))
    t.deepEqual(await store.reindex(), { indexed: 29, skipped: 1 })
    t.is((await other.get('foreign')).mark, 1)
    t.deepEqual(await sibling(store).reindex(), { indexed: 29, skipped: 1 })
  })

  // reindex() only records what it finds: a session's cookie, as get()
  // returns it, stays what the app last saved or touched, under every
  // option that keeps the cookie's expiry beside the session.
  for (const [mode, options] of Object.entries({
    'by default': {},
    'with idleTimeout': { idleTimeout: 600 },
    'with absoluteTimeout': { absoluteTimeout: 900 },
  })) {
    test(`reindex() ${mode} leaves get()'s cookie.expires and the session's times as they were`, async (t) => {
      const store = makeStore(options)
      const sess = session(3_600_000, { userId: 'ada' })
      await store.set('s', sess)
      await store.touch('s', touched(sess, 7_200_000))
      const before = { got: await store.get('s'), listed: await store.listUserSessions('ada') }
      await sleep(20) // so that a reindex stamping "now" would show
      await store.reindex()
      t.deepEqual(await store.get('s'), before.got, 'get() changed')
      t.deepEqual(await store.listUserSessions('ada'), before.listed, 'listUserSessions() changed')
    })
  }

  test('reindex() does not count every session as just used', async (t) => {
    const store = makeStore()
    const set = await timed(async () => {
      await store.set('a', session(60_000, { userId: 'ada' }))
      await store.set('b', session(60_000, { userId: 'bob' }))
    })
    await sleepUntil(set.to + 600)
    await store.reindex()
    // Last used 0.6 s ago or more: not within the last 0.3 s.
    t.deepEqual(await counts(store, { activeWithin: 0.3 }), { sessions: 2, users: 2, active: 0 })
  })

  test('reindex() on an empty store, and with a callback', async (t) => {
    const store = makeStore()
    t.deepEqual(await store.reindex(), { indexed: 0, skipped: 0 })
    await store.set('x', session())
    const result = await new Promise((resolve, reject) => store.reindex((err, r) => (err ? reject(err) : resolve(r))))
    t.deepEqual(result, { indexed: 1, skipped: 0 })
  })
}
