'use strict'

// Logout sticks: once a session is destroyed (destroy, destroyUserSessions,
// eviction by maxSessionsPerUser), a request that loaded it before and ends
// after (a set of the modified session, or a touch) cannot bring it back.
const { session, sleep, listedIds } = require('./util')

// The ways a late request can write the session it loaded: through the
// store instance that read it, through another instance (another app
// server) that read it too, one that never read it (its cache of sessions
// read was cleared, or it was restarted), and one counting logins. Their
// writes take different paths (a save of a session just read cannot
// create it; a save of one not read must check the logout marker).
const WRITERS = {
  'the instance that read it': { writer: (ctx, store) => store, reads: true },
  'another instance that read it': { writer: (ctx, store) => ctx.sibling(store), reads: true },
  'an instance that never read it': { writer: (ctx, store) => ctx.sibling(store), reads: false },
  'an instance counting logins': { writer: (ctx, store) => ctx.sibling(store, { maxSessionsPerUser: 5 }), reads: true },
}

async function lateWrites(writer, sid, owner) {
  await writer.set(sid, session(60_000, { userId: owner, cart: [1] }))
  await writer.touch(sid, session(60_000, { userId: owner }))
}

module.exports = (test, ctx) => {
  const { makeStore, sibling } = ctx

  for (const [who, { writer: writerOf, reads }] of Object.entries(WRITERS)) {
    test(`after destroy, a late set or touch from ${who} does not bring the session back`, async (t) => {
      const store = makeStore({}, { shared: true })
      await store.set('late', session(60_000, { userId: 'ada' }))
      const writer = writerOf(ctx, store)
      t.truthy(await store.get('late')) // the request loads it...
      if (reads) t.truthy(await writer.get('late'))
      await store.destroy('late') // ...the user logs out...
      await lateWrites(writer, 'late', 'ada') // ...and the request ends.
      t.is(await store.get('late'), null)
      t.is(await writer.get('late'), null)
      t.deepEqual(await listedIds(store, 'ada'), [])
      t.is(await store.length(), 0)
    })
  }

  test('after destroyUserSessions, late writes of a destroyed session do not bring it back', async (t) => {
    const store = makeStore({}, { shared: true })
    const other = sibling(store)
    await store.set('phone', session(60_000, { userId: 'ada' }))
    await store.set('laptop', session(60_000, { userId: 'ada' }))
    t.truthy(await other.get('phone'))
    t.is(await store.destroyUserSessions('ada', { except: 'laptop' }), 1)
    await lateWrites(store, 'phone', 'ada')
    await lateWrites(other, 'phone', 'ada')
    await lateWrites(sibling(store), 'phone', 'ada') // never read it
    t.is(await store.get('phone'), null)
    t.deepEqual(await listedIds(store, 'ada'), ['laptop'])
    t.is(await store.destroyUserSessions('ada'), 1)
    await lateWrites(other, 'laptop', 'ada')
    t.is(await store.get('laptop'), null)
    t.deepEqual(await listedIds(store, 'ada'), [])
  })

  test('a session evicted by maxSessionsPerUser stays out, and its late writes do not push out the new login', async (t) => {
    const store = makeStore({ maxSessionsPerUser: 1 }, { shared: true })
    const other = sibling(store, { maxSessionsPerUser: 1 })
    await store.set('old', session(60_000, { userId: 'ada' }))
    t.truthy(await other.get('old'))
    await sleep(5)
    await store.set('new', session(60_000, { userId: 'ada' }))
    t.is(await store.get('old'), null)
    await lateWrites(store, 'old', 'ada')
    await lateWrites(other, 'old', 'ada')
    await lateWrites(sibling(store, { maxSessionsPerUser: 1 }), 'old', 'ada') // never read it
    t.is(await store.get('old'), null)
    t.truthy(await store.get('new'))
    t.deepEqual(await listedIds(store, 'ada'), ['new'])
  })

  test('a new session id after a logout works as any other (regenerate)', async (t) => {
    const store = makeStore()
    await store.set('first', session(60_000, { userId: 'ada' }))
    await store.destroy('first')
    await store.set('second', session(60_000, { userId: 'ada' }))
    t.truthy(await store.get('second'))
    t.deepEqual(await listedIds(store, 'ada'), ['second'])
  })

  test('a fire-and-forget destroy or touch that fails causes no unhandled rejection', async (t) => {
    const store = makeStore()
    await store.close()
    const unhandled = []
    const onUnhandled = (reason) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      store.destroy('x')
      store.touch('x', session())
      store.destroy(42)
      store.touch('', session())
      await sleep(100)
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
    t.deepEqual(unhandled.map((e) => e?.code ?? String(e)), [])
    // Awaited, they still report the error.
    t.is((await t.throwsAsync(store.destroy('x'))).code, 'ERR_STORE_CLOSED')
    t.is((await t.throwsAsync(store.touch('x', session()))).code, 'ERR_STORE_CLOSED')
  })
}
