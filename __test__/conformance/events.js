'use strict'

// Lifecycle events: every session that ends is told once across two
// instances on the same data (the one that ended it, or the one whose
// cleanup claimed its expiry), with its reason and how long it lasted, and
// no payload holds a session id.
const { randomUUID } = require('node:crypto')
const { session, sleep, user, timed } = require('./util')

// How far a reported duration may be from the truth.
const SLACK = 50
// Expiries are told within 5 s; a little more for a loaded machine.
const TOLD_WITHIN = 8_000

// Two instances on the same data, each recording what it is told. Their
// listeners go when the test ends: a listening store's cleanup reads every
// shard each few seconds, a load the file's other tests should not share.
function pair(t, ctx, options = {}) {
  const a = ctx.makeStore(options, { shared: true })
  const b = ctx.sibling(a, options)
  const told = []
  for (const [name, store] of [['a', a], ['b', b]]) {
    store.on('sessionEnded', (e) => told.push({ by: name, type: 'ended', ...e }))
    store.on('sessionCreated', (e) => told.push({ by: name, type: 'created', ...e }))
    t.teardown(() => store.removeAllListeners('sessionEnded').removeAllListeners('sessionCreated'))
  }
  return { a, b, told }
}

// The events about `sid`, once `count` of them came (or the time is up).
async function eventsOf(told, store, sid, type, count = 1) {
  const handle = store.handleOf(sid)
  const mine = () => told.filter((e) => e.handle === handle && e.type === type)
  const until = Date.now() + TOLD_WITHIN
  while (mine().length < count && Date.now() < until) await sleep(50)
  // Anything told twice would come within the same walk: wait one more.
  await sleep(300)
  return mine()
}

// The duration told lies within the window the truth allows, give or take SLACK.
function assertDuration(t, ended, created, end) {
  t.true(ended.duration >= end.from - created.to - SLACK, `duration ${ended.duration}`)
  t.true(ended.duration <= end.to - created.from + SLACK, `duration ${ended.duration}`)
  t.is(ended.endedAt.getTime() - ended.createdAt.getTime(), ended.duration)
}

function assertNoSid(t, events, sids) {
  const text = JSON.stringify(events)
  for (const sid of sids) t.false(text.includes(sid), 'a payload holds a session id')
}

// An instance sends the ends it counted with its cleanup's next tick (each
// second), so another instance's stats() has them within a few seconds.
const COUNTED_WITHIN = 5_000

// stats({ endedWithin: 60 }).ended from each store once they count `total`
// ends, and again after a few more ticks: an end counted twice (by two
// instances, or twice by one) would show by then.
async function endedStats(stores, total) {
  const until = Date.now() + COUNTED_WITHIN
  for (const store of stores) {
    while ((await store.stats({ endedWithin: 60 })).ended.sessions < total && Date.now() < until) await sleep(100)
  }
  await sleep(2_500)
  return Promise.all(stores.map(async (store) => (await store.stats({ endedWithin: 60 })).ended))
}

// The mean of durations each known within [from, to] (ms) lies within the
// mean of the bounds, give or take SLACK.
function assertAverage(t, average, bounds) {
  const mean = (pick) => bounds.reduce((sum, b) => sum + pick(b), 0) / bounds.length
  t.true(average >= mean((b) => b.from) - SLACK, `averageDuration ${average} < ${mean((b) => b.from)}`)
  t.true(average <= mean((b) => b.to) + SLACK, `averageDuration ${average} > ${mean((b) => b.to)}`)
}

// How long a session set in window `created` and ended in window `end` lasted, at least and at most.
const lasted = (created, end) => ({ from: end.from - created.to, to: end.to - created.from })

module.exports = (test, ctx) => {
  test('events: a logout is told once, by the instance that made it, with its duration', async (t) => {
    const { a, b, told } = pair(t, ctx)
    const owner = user()
    const created = await timed(() => a.set('ev-logout', session(60_000, { userId: owner })))
    await sleep(200)
    const end = await timed(() => b.destroy('ev-logout'))
    await b.destroy('ev-logout') // a second logout ends nothing
    const [ended, ...more] = await eventsOf(told, a, 'ev-logout', 'ended')
    t.is(more.length, 0)
    t.is(ended.by, 'b')
    t.is(ended.reason, 'logout')
    t.is(ended.userId, owner)
    assertDuration(t, ended, created, end)
    assertNoSid(t, told, ['ev-logout'])
  })

  test('events: a session first stored is told created once; later saves are not', async (t) => {
    const { a, b, told } = pair(t, ctx)
    const owner = user()
    const created = await timed(() => a.set('ev-new', session(60_000, { userId: owner })))
    await b.set('ev-new', session(60_000, { userId: owner, n: 2 }))
    await a.touch('ev-new', session(60_000, { userId: owner }))
    const events = await eventsOf(told, a, 'ev-new', 'created')
    t.is(events.length, 1)
    t.is(events[0].userId, owner)
    t.true(events[0].createdAt.getTime() >= created.from - SLACK && events[0].createdAt.getTime() <= created.to + SLACK)
    assertNoSid(t, told, ['ev-new'])
  })

  test('events: a touch that lands after a logout does not make the session end twice', async (t) => {
    const { a, b, told } = pair(t, ctx)
    const owner = user()
    const sess = session(1000, { userId: owner })
    await a.set('ev-touch-race', sess)
    // The first touch tells this instance the creation time; the next ones
    // write the meta beside the expiry.
    await a.touch('ev-touch-race', sess)
    await b.destroy('ev-touch-race')
    // A request that loaded the session before the logout ends after it.
    await a.touch('ev-touch-race', sess)
    t.is(await a.get('ev-touch-race'), null)
    const ended = await eventsOf(told, a, 'ev-touch-race', 'ended', 2)
    t.deepEqual(
      ended.map((e) => e.reason),
      ['logout'],
    )
  })

  test('events: a set made in the same microtask as on() is told', async (t) => {
    // From inside a microtask, the set's batch crosses in a microtask too,
    // before any process.nextTick: listening must be on by then.
    const made = await Promise.resolve().then(() => {
      const { a, told } = pair(t, ctx)
      return { a, told, set: a.set('ev-at-once', session(60_000, { userId: user() })) }
    })
    await made.set
    const events = await eventsOf(made.told, made.a, 'ev-at-once', 'created')
    t.is(events.length, 1)
  })

  test('events: revoked, everywhere and limit say how the session ended', async (t) => {
    const { a, b, told } = pair(t, ctx, { maxSessionsPerUser: 2 })
    const owner = user()
    const other = user()
    const sets = {}
    // Apart in time: two logins in one millisecond tie, and the tie goes
    // by sid (ev-r1 would count as the more recent).
    for (const sid of ['ev-r1', 'ev-r2']) {
      sets[sid] = await timed(() => a.set(sid, session(60_000, { userId: owner })))
      await sleep(20)
    }
    await sleep(50)
    // A third login of `owner` ends the least recently used one.
    sets['ev-r3'] = await timed(() => b.set('ev-r3', session(60_000, { userId: owner })))
    const [limited] = await eventsOf(told, a, 'ev-r1', 'ended')
    t.is(limited?.reason, 'limit')
    const revoke = await timed(() => b.revokeUserSession(owner, a.handleOf('ev-r2')))
    t.true(revoke.value)
    for (const sid of ['ev-e1', 'ev-e2']) sets[sid] = await timed(() => a.set(sid, session(60_000, { userId: other })))
    const everywhere = await timed(() => a.destroyUserSessions(other))
    const [revoked, ...more] = await eventsOf(told, a, 'ev-r2', 'ended')
    t.is(more.length, 0)
    t.is(revoked.reason, 'revoked')
    assertDuration(t, revoked, sets['ev-r2'], revoke)
    for (const sid of ['ev-e1', 'ev-e2']) {
      const events = await eventsOf(told, a, sid, 'ended')
      t.is(events.length, 1)
      t.is(events[0].reason, 'everywhere')
      t.is(events[0].userId, other)
      assertDuration(t, events[0], sets[sid], everywhere)
    }
    t.is((await eventsOf(told, a, 'ev-r1', 'ended')).length, 1)
    t.is((await eventsOf(told, a, 'ev-r3', 'ended', 0)).length, 0)
    assertNoSid(t, told, Object.keys(sets))
  })

  test('events: stats({ endedWithin }) counts every end once, by reason, the same from either instance', async (t) => {
    const IDLE = 3_000
    const { a, b, told } = pair(t, ctx, { maxSessionsPerUser: 2, idleTimeout: IDLE / 1000 })
    const [owner, other] = [user(), user()]
    // Each end's duration, at least and at most.
    const bounds = []
    const set = (store, sid, userId) => timed(() => store.set(sid, session(60_000, { userId })))
    // Ends in IDLE ms: its end is its last access + IDLE, exactly.
    await set(a, 'es-idle', user())
    bounds.push({ from: IDLE, to: IDLE })
    const loggedIn = await set(a, 'es-logout', owner)
    bounds.push(lasted(loggedIn, await timed(() => b.destroy('es-logout'))))
    await b.destroy('es-logout') // ends nothing
    // Last accesses a few ms apart: the least recently used is es-l1.
    const first = await set(a, 'es-l1', owner)
    await sleep(20)
    const second = await set(a, 'es-l2', owner)
    await sleep(20)
    // A third login of `owner` ends the least recently used one.
    const third = await set(b, 'es-l3', owner)
    bounds.push(lasted(first, third))
    const revoke = await timed(() => b.revokeUserSession(owner, a.handleOf('es-l2')))
    t.true(revoke.value)
    bounds.push(lasted(second, revoke))
    const elsewhere = await set(b, 'es-e1', other)
    const everywhere = await timed(() => Promise.all([a.destroyUserSessions(owner), b.destroyUserSessions(other)]))
    t.deepEqual(everywhere.value, [1, 1])
    bounds.push(lasted(third, everywhere), lasted(elsewhere, everywhere))
    t.is((await eventsOf(told, a, 'es-idle', 'ended'))[0]?.reason, 'idle')
    const byReason = { logout: 1, limit: 1, revoked: 1, everywhere: 2, idle: 1 }
    for (const ended of await endedStats([a, b], 6)) {
      t.is(ended.sessions, 6)
      t.deepEqual(ended.byReason, byReason)
      assertAverage(t, ended.averageDuration, bounds)
      assertNoSid(t, ended, ['es-idle', 'es-logout', 'es-l1', 'es-l2', 'es-l3', 'es-e1'])
    }
    // The numbers agree with the events told.
    t.is(told.filter((e) => e.type === 'ended').length, 6)
  })

  test('events: ends are counted with no listener attached, on every instance', async (t) => {
    // A prefix with a hash tag has one shard, which the cleanup reads every
    // second even when nobody listens (else an expiry waits about a minute
    // for its shard's turn).
    const options = { prefix: `{conf:${randomUUID()}}:`, maxSessionsPerUser: 1, idleTimeout: 2 }
    const a = ctx.makeStore(options, { shared: true })
    const b = ctx.sibling(a, options)
    t.is(a.listenerCount('sessionEnded') + b.listenerCount('sessionEnded'), 0)
    const [owner, other] = [user(), user()]
    const set = (store, sid, userId) => store.set(sid, session(60_000, { userId }))
    await set(a, 'es-quiet-idle', user())
    await set(a, 'es-quiet-logout', owner)
    await b.destroy('es-quiet-logout')
    await set(a, 'es-quiet-l1', owner)
    await sleep(20)
    await set(b, 'es-quiet-l2', owner) // ends es-quiet-l1 (limit)
    t.true(await a.revokeUserSession(owner, a.handleOf('es-quiet-l2')))
    await set(b, 'es-quiet-e1', other)
    t.is(await a.destroyUserSessions(other), 1)
    const byReason = { logout: 1, limit: 1, revoked: 1, everywhere: 1, idle: 1 }
    for (const ended of await endedStats([b, a], 5)) {
      t.deepEqual(ended.byReason, byReason)
      t.is(ended.sessions, 5)
    }
  })

  // Each expiry: the options, how the session is used, and when it truly
  // ends (ms after its creation, measured from the set's window).
  const EXPIRIES = {
    expired: { options: {}, cookie: 700, lasts: 700 },
    idle: { options: { idleTimeout: 0.7 }, cookie: 60_000, lasts: 700 },
    absolute: { options: { absoluteTimeout: 0.8 }, cookie: 60_000, lasts: 800 },
  }
  for (const [reason, { options, cookie, lasts }] of Object.entries(EXPIRIES)) {
    test(`events: an expiry (${reason}) is told once across both instances, within seconds`, async (t) => {
      const { a, b, told } = pair(t, ctx, options)
      const owner = user()
      const created = await timed(() => a.set(`ev-${reason}`, session(cookie, { userId: owner })))
      const plain = await timed(() => b.set(`ev-${reason}-plain`, session(cookie)))
      const [ended, ...more] = await eventsOf(told, a, `ev-${reason}`, 'ended')
      t.is(more.length, 0)
      t.is(ended?.reason, reason)
      t.is(ended.userId, owner)
      const end = { from: created.from + lasts, to: created.to + lasts }
      assertDuration(t, ended, created, end)
      t.true(Date.now() - ended.endedAt.getTime() < TOLD_WITHIN + 1000)
      const [alone, ...again] = await eventsOf(told, a, `ev-${reason}-plain`, 'ended')
      t.is(again.length, 0)
      t.is(alone?.reason, reason)
      t.is(alone.userId, null)
      assertDuration(t, alone, plain, { from: plain.from + lasts, to: plain.to + lasts })
      assertNoSid(t, told, [`ev-${reason}`, `ev-${reason}-plain`])
    })
  }
}
