'use strict'

// idleTimeout and absoluteTimeout, on top of the cookie's expiry, and
// indexes that never go stale: a session that ends, however it ends,
// leaves every list and count. Lifetimes are a fraction of a second; a
// session is only required to be alive when the store had every chance to
// keep it (each touch landed before the previous deadline), so a busy
// machine cannot fail a correct store.
const { inTime, counts, session, touched, sleep, sleepUntil, timed, within, user, listedIds, sorted, PAST } = require('./util')

// Touches `sid` every `everyMs` until `untilMs`; resolves to whether every
// touch completed before the idle deadline the previous one set at the
// latest (its start + idle), i.e. whether the session must still be alive.
async function keepTouching(store, sid, sess, { everyMs, untilMs, idleMs, since }) {
  let deadline = since + idleMs - 2
  let kept = true
  let last = since
  while (Date.now() < untilMs) {
    await sleep(everyMs)
    const touch = await timed(() => store.touch(sid, touched(sess, 60_000)))
    if (touch.to >= deadline) kept = false
    // The store stamps the touch at some time within [from, to]; a ms of
    // slack for clocks that round the other way.
    deadline = touch.from + idleMs - 2
    last = touch.from
  }
  return { kept, deadline: last + idleMs - 2 }
}

// get(sid), required to find the session when it completed before
// `deadline` (the store had to keep it until then); after, either answer
// is correct. Resolves to the session or null.
async function getBefore(t, store, sid, deadline, what) {
  const got = await timed(() => store.get(sid))
  if (inTime(t, got.to < deadline - 2, what)) t.truthy(got.value, `${what}: gone before its deadline`)
  return got.value
}

module.exports = (test, { makeStore, sibling }) => {
  test('idleTimeout: a session left alone ends idleTimeout after its last set or touch; a late touch does not revive it', async (t) => {
    const store = makeStore({ idleTimeout: 0.8 }, { shared: true })
    t.is(store.idleTimeout, 0.8)
    const ada = user()
    await store.set('i', session(60_000, { userId: ada }))
    const touch = await timed(() => store.touch('i', session(60_000, { userId: ada })))
    const listing = await timed(() => store.listUserSessions(ada))
    const [listed] = listing.value
    // Listed, or gone though the listing finished before the idle deadline (a failure below).
    if (!inTime(t, listed || listing.to < touch.from + 800, 'the listing before the idle deadline')) return
    if (!listed) return t.fail('gone before its idle deadline')
    within(t, listed.expiresAt.getTime(), touch.from + 800, touch.to + 800, 'expiresAt after a touch')
    within(t, listed.lastAccess.getTime(), touch.from, touch.to, 'lastAccess after a touch')
    // get is not access: it does not move the deadline.
    if (await getBefore(t, store, 'i', touch.from + 800, 'get after a touch')) {
      const listing = await timed(() => store.listUserSessions(ada))
      const [again] = listing.value
      if (inTime(t, again || listing.to < touch.from + 800 - 2, 'the listing after get, before the idle deadline')) {
        t.is(again?.expiresAt.getTime(), listed.expiresAt.getTime())
      }
    }

    const anon = await timed(() => store.set('anon', session(60_000)))
    await sleepUntil(Math.max(touch.to, anon.to) + 800 + PAST)
    t.is(await store.get('i'), null)
    t.is(await store.get('anon'), null, 'a session without an owner has the idle deadline too')
    t.deepEqual(await store.listUserSessions(ada), [])
    t.is(await store.length(), 0)
    // Late writes, from the instance that read it and from one that never did.
    for (const writer of [store, sibling(store, { idleTimeout: 0.8 })]) {
      await writer.touch('i', session(60_000, { userId: ada }))
      await writer.set('i', session(60_000, { userId: ada, cart: [1] }))
    }
    t.is(await store.get('i'), null)
    t.deepEqual(await store.listUserSessions(ada), [])
    t.is(await store.length(), 0)
  })

  test('idleTimeout: touches keep an active session alive past it, while an idle one ends', async (t) => {
    const store = makeStore({ idleTimeout: 1 })
    const sess = session(60_000, { userId: 'ada' })
    const busy = await timed(() => store.set('busy', sess))
    const idle = await timed(() => store.set('idle', sess))
    const { kept, deadline } = await keepTouching(store, 'busy', sess, { everyMs: 100, untilMs: idle.to + 2000, idleMs: 1000, since: busy.from })
    const alive = inTime(t, kept, 'every touch before the idle deadline the previous one set')
      ? await getBefore(t, store, 'busy', deadline, 'an active session')
      : await store.get('busy')
    t.is(await store.get('idle'), null)
    t.deepEqual(await listedIds(store, 'ada'), alive ? ['busy'] : [])
  })

  test('absoluteTimeout: a session touched and saved all along still ends at createdAt + absoluteTimeout', async (t) => {
    const store = makeStore({ absoluteTimeout: 1.2 })
    t.is(store.absoluteTimeout, 1.2)
    const ada = user()
    const sess = session(60_000, { userId: ada })
    const set = await timed(() => store.set('a', sess))
    const listing = await timed(() => store.listUserSessions(ada))
    const [first] = listing.value
    // Listed, or gone though the listing finished before the absolute deadline (a failure below).
    if (!inTime(t, first || listing.to < set.from + 1200, 'the listing before the absolute deadline')) return
    if (!first) return t.fail('gone before its absolute deadline')
    within(t, first.createdAt.getTime(), set.from, set.to, 'createdAt')
    within(t, first.expiresAt.getTime(), first.createdAt.getTime() + 1200, first.createdAt.getTime() + 1200, 'expiresAt')
    // A second set (a modified session) and touches keep the creation time.
    await store.set('a', { ...sess, cart: [1] })
    await store.touch('a', touched(sess, 60_000))
    const relisting = await timed(() => store.listUserSessions(ada))
    const [again] = relisting.value
    if (inTime(t, again || relisting.to < set.from + 1200 - 2, 'the listing after a second set, before the absolute deadline')) {
      t.is(again?.createdAt.getTime(), first.createdAt.getTime())
      t.is(again?.expiresAt.getTime(), first.expiresAt.getTime())
    }
    const saved = await getBefore(t, store, 'a', set.from + 1200, 'after a second set')
    if (saved) t.deepEqual(saved.cart, [1])
    const end = first.expiresAt.getTime()
    while (Date.now() < end + PAST) {
      await store.touch('a', touched(sess, 60_000))
      await sleep(40)
    }
    await sleepUntil(set.to + 1200 + PAST)
    t.is(await store.get('a'), null)
    t.deepEqual(await store.listUserSessions(ada), [])
    t.is(await store.length(), 0)
    t.deepEqual(await counts(store), { sessions: 0, users: 0, active: 0 })
  })

  test('absoluteTimeout: a save that arrives after the deadline does not start the session again', async (t) => {
    const store = makeStore({ absoluteTimeout: 0.8 }, { shared: true })
    const owner = user()
    const set = await timed(() => store.set('late', session(60_000, { userId: owner })))
    await getBefore(t, store, 'late', set.from + 800, 'before the deadline')
    await sleepUntil(set.to + 800 + PAST)
    // From the instance that read it, and from one that never did.
    for (const writer of [store, sibling(store, { absoluteTimeout: 0.8 })]) {
      await writer.set('late', session(60_000, { userId: owner, cart: [1] }))
      await writer.touch('late', session(60_000, { userId: owner }))
    }
    t.is(await store.get('late'), null)
    t.deepEqual(await store.listUserSessions(owner), [])
    t.is(await store.length(), 0)
  })

  test('both timeouts: touches carry a session past idleTimeout but not past absoluteTimeout', async (t) => {
    const store = makeStore({ idleTimeout: 0.6, absoluteTimeout: 1.8 })
    const sess = session(60_000, { userId: 'ada' })
    const set = await timed(() => store.set('s', sess))
    const { kept, deadline } = await keepTouching(store, 's', sess, { everyMs: 80, untilMs: set.from + 1300, idleMs: 600, since: set.from })
    const aliveUntil = Math.min(deadline, set.from + 1800)
    if (inTime(t, kept, 'every touch before the idle deadline the previous one set')) await getBefore(t, store, 's', aliveUntil, 'touched past idleTimeout')
    const listing = await timed(() => store.listUserSessions('ada'))
    const [listed] = listing.value
    if (inTime(t, listed || (kept && listing.to < aliveUntil - 2), 'the listing before the deadlines')) {
      t.truthy(listed, 'gone before its deadlines')
      if (listed) t.true(listed.expiresAt.getTime() <= listed.createdAt.getTime() + 1800, 'expiresAt past the absolute deadline')
    }
    await keepTouching(store, 's', sess, { everyMs: 80, untilMs: set.to + 1800 + PAST, idleMs: 600, since: set.from })
    t.is(await store.get('s'), null)
    t.deepEqual(await store.listUserSessions('ada'), [])
  })

  test('with timeouts on, the soonest of cookie, idle and absolute deadlines applies', async (t) => {
    const store = makeStore({ idleTimeout: 10, absoluteTimeout: 20 })
    const short = session(3000, { userId: 'ada' })
    await store.set('short', short)
    t.is((await store.listUserSessions('ada'))[0].expiresAt.getTime(), Date.parse(short.cookie.expires))
    // A touch with a longer cookie: now idle (10 s) is the soonest.
    const touch = await timed(() => store.touch('short', touched(short, 60_000)))
    within(t, (await store.listUserSessions('ada'))[0].expiresAt.getTime(), touch.from + 10_000, touch.to + 10_000, 'idle is the soonest')

    const abs = makeStore({ idleTimeout: 30, absoluteTimeout: 5 })
    const set = await timed(() => abs.set('x', session(60_000, { userId: 'bob' })))
    within(t, (await abs.listUserSessions('bob'))[0].expiresAt.getTime(), set.from + 5_000, set.to + 5_000, 'absolute is the soonest')

    const cookieFirst = makeStore({ idleTimeout: 30, absoluteTimeout: 60 })
    const brief = session(150, { userId: 'cy' })
    await cookieFirst.set('b', brief)
    await sleepUntil(Date.parse(brief.cookie.expires) + PAST)
    t.is(await cookieFirst.get('b'), null)
    t.deepEqual(await cookieFirst.listUserSessions('cy'), [])
    t.is(await cookieFirst.length(), 0)
  })

  // Each way a session can end; the ended one must leave every list and
  // count, while another user's session stays (set through an instance
  // without the timeouts, so that it lives on however slow the checks).
  const ends = {
    'its cookie expires': { options: {}, cookieMs: 200 },
    'idleTimeout passes': { options: { idleTimeout: 0.2 } },
    'absoluteTimeout passes, though it was just touched': { options: { absoluteTimeout: 0.2 }, touch: true },
    'destroy()': { end: (store) => store.destroy('target') },
    'destroyUserSessions()': { end: (store, owner) => store.destroyUserSessions(owner) },
    'it is saved with an expiry in the past': { end: (store, owner) => store.set('target', session(-1000, { userId: owner })) },
    'it is touched with an expiry in the past': { end: (store, owner) => store.touch('target', session(-1000, { userId: owner })) },
    'maxSessionsPerUser evicts it': {
      options: { maxSessionsPerUser: 1 },
      end: async (store, owner) => {
        await sleep(5)
        await store.set('replacement', session(60_000, { userId: owner }))
        await store.destroy('replacement')
      },
    },
  }

  for (const [how, { options = {}, cookieMs = 60_000, touch, end }] of Object.entries(ends)) {
    test(`a session that ends because ${how} leaves every list and count`, async (t) => {
      const store = makeStore(options, { shared: true })
      const plain = sibling(store)
      const owner = user()
      const other = user()
      const target = session(cookieMs, { userId: owner })
      const set = await timed(() => store.set('target', target))
      if (touch) await store.touch('target', session(60_000, { userId: owner }))
      // Listed while it lives (a slow machine may reach a 200 ms deadline first).
      const listed = await timed(() => listedIds(store, owner))
      const early = listed.value.length > 0 || listed.to < Math.min(Date.parse(target.cookie.expires), set.from + 200)
      if (end || inTime(t, early, `${how}: the listing before its deadline`)) t.deepEqual(listed.value, ['target'])
      if (end) {
        await plain.set('control', session(60_000, { userId: other }))
        t.is(await store.length(), 2)
        t.deepEqual(sorted(await store.ids()), ['control', 'target'])
        t.deepEqual(await counts(store), { sessions: 2, users: 2, active: 2 })
        await end(store, owner)
      } else {
        // Until: the target's deadline (200 ms after its set) is past.
        await sleepUntil(set.to + 200 + PAST)
        await plain.set('control', session(60_000, { userId: other }))
      }
      // Every list and count, before anything calls get() on the target.
      t.deepEqual(await store.listUserSessions(owner), [])
      t.is(await store.length(), 1)
      t.deepEqual(await store.ids(), ['control'])
      t.deepEqual((await store.all()).map((s) => s.id), ['control'])
      t.deepEqual(await counts(store), { sessions: 1, users: 1, active: 1 })
      t.deepEqual(await listedIds(store, other), ['control'])
      t.is(await store.destroyUserSessions(owner), 0)
      t.is(await store.get('target'), null)
      t.truthy(await store.get('control'))
      // A late touch does not put it back in any list.
      await store.touch('target', session(60_000, { userId: owner }))
      t.deepEqual(await store.listUserSessions(owner), [])
      t.is(await store.length(), 1)
      t.deepEqual(await counts(store), { sessions: 1, users: 1, active: 1 })
    })
  }

  // The ended session is the most recently used of the user's: were it
  // counted, the live one would be the one destroyed.
  test('sessions that have ended do not count against maxSessionsPerUser', async (t) => {
    const store = makeStore({ maxSessionsPerUser: 2 })
    await store.set('kept', session(60_000, { userId: 'ada' }))
    await sleep(5)
    const gone = session(100, { userId: 'ada' })
    await store.set('gone', gone)
    await sleepUntil(Date.parse(gone.cookie.expires) + PAST)
    await store.set('new', session(60_000, { userId: 'ada' }))
    t.truthy(await store.get('kept'), 'an expired session was counted and a live one destroyed')
    t.truthy(await store.get('new'))
    t.deepEqual(await listedIds(store, 'ada'), ['new', 'kept'])
  })

  test('sessions ended by absoluteTimeout do not count against maxSessionsPerUser', async (t) => {
    // `kept` through an instance without timeouts; `gone` ends at its
    // absolute deadline right after its last touch.
    const limited = makeStore({ maxSessionsPerUser: 2, absoluteTimeout: 0.2 }, { shared: true })
    const plain = sibling(limited, { maxSessionsPerUser: 2 })
    await plain.set('kept', session(60_000, { userId: 'ada' }))
    const set = await timed(() => limited.set('gone', session(60_000, { userId: 'ada' })))
    while (Date.now() < set.from + 150) {
      await limited.touch('gone', session(60_000, { userId: 'ada' }))
      await sleep(20)
    }
    await sleepUntil(set.to + 200 + PAST)
    await plain.set('new', session(60_000, { userId: 'ada' }))
    t.truthy(await plain.get('kept'), 'an ended session was counted and a live one destroyed')
    t.deepEqual(await listedIds(plain, 'ada'), ['new', 'kept'])
  })

  // Races with the deadline: whichever way each one goes, get() and every
  // list and count must agree, and nothing gone comes back.
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
    t.deepEqual(sorted(await store.ids()), sorted(alive))
    t.deepEqual(await counts(store), { sessions: alive.length, users: alive.length, active: alive.length })
    await sleep(100)
    for (const { owner, sid, alive: wasAlive } of runs) {
      if (!wasAlive) await store.touch(sid, session(60_000, { userId: owner }))
      t.is((await store.get(sid)) !== null, wasAlive, sid)
      t.deepEqual(await listedIds(store, owner), wasAlive ? [sid] : [])
    }
    t.is(await store.length(), alive.length)
    t.log(`${alive.length} of 30 touches landed before the expiry`)
  })

  test('race: touches at about the idle deadline leave nothing behind once the sessions are gone', async (t) => {
    const store = makeStore({ idleTimeout: 0.05 })
    const runs = await Promise.all(
      Array.from({ length: 15 }, async (_, i) => {
        const owner = user()
        const sid = `q${i}`
        const set = await timed(() => store.set(sid, session(60_000, { userId: owner })))
        await sleepUntil(set.to + 43 + (i % 15))
        await store.touch(sid, session(60_000, { userId: owner }))
        return { owner, sid, touched: Date.now() }
      }),
    )
    // Every session is idle by now, touched in time or not.
    await sleepUntil(Math.max(...runs.map((r) => r.touched)) + 50 + PAST)
    for (const { owner, sid } of runs) {
      t.deepEqual(await store.listUserSessions(owner), [], sid)
      t.is(await store.get(sid), null, sid)
    }
    t.is(await store.length(), 0)
    t.deepEqual(await store.ids(), [])
    t.deepEqual(await store.all(), [])
    t.deepEqual(await counts(store), { sessions: 0, users: 0, active: 0 })
  })
}
