'use strict'

// Expiry in milliseconds, connect-redis's TTL options, and the touch
// contract: after touch(sid, sess), get(sid) returns sess.cookie.expires
// with readExpiry or timeouts (express-session's test "touch should reset
// session expiration"), the value as stored otherwise (as connect-redis).
const { randomUUID } = require('node:crypto')
const { inTime, counts, session, touched, asStored, sleep, sleepUntil, timed, PAST } = require('./util')

// Every way the store keeps a session's cookie expiry. With timeouts
// shorter than the cookie the key's own expiry is the timeout's, so the
// cookie's must be read from beside the session.
const TOUCH_MODES = {
  'with readExpiry': { readExpiry: true },
  'with idleTimeout': { idleTimeout: 30 },
  'with absoluteTimeout': { absoluteTimeout: 30 },
  'with idleTimeout and absoluteTimeout': { idleTimeout: 20, absoluteTimeout: 40 },
  'with maxSessionsPerUser and readExpiry': { maxSessionsPerUser: 3, readExpiry: true },
  'with a ttl function (the value is rewritten)': { ttl: () => 30 },
}
const HOUR = 3_600_000

module.exports = (test, { makeStore, held }) => {
  test('sessions of a few ms are gone once their cookie expires; longer ones stay', async (t) => {
    const store = makeStore()
    const short = Array.from({ length: 20 }, (_, i) => [`short${i}`, session(5 + (i % 5), { userId: 'ada' })])
    const long = Array.from({ length: 5 }, (_, i) => [`long${i}`, session(60_000, { userId: 'ada' })])
    await Promise.all([...short, ...long].map(([sid, sess]) => store.set(sid, sess)))
    await sleepUntil(Math.max(...short.map(([, s]) => Date.parse(s.cookie.expires))) + PAST)
    for (const [sid] of short) t.is(await store.get(sid), null, sid)
    for (const [sid] of long) t.truthy(await store.get(sid), sid)
    t.is(await store.length(), long.length)
    t.is((await store.listUserSessions('ada')).length, long.length)
  })

  // Redis expires a key once the clock is past its deadline: a call that
  // ran within the very millisecond of the expiry still finds the session,
  // one that started after it does not. Sessions expiring a millisecond
  // apart give a get at each millisecond its own session to find. Alone
  // (serial): other tests' work on this thread makes a get take longer than
  // the millisecond.
  test.serial('a session is there through the millisecond its cookie expires, and gone from the next one', async (t) => {
    const store = makeStore()
    const first = Date.now() + 200
    const sids = Array.from({ length: 80 }, (_, i) => `ms${i}`)
    const expiringAt = (ms) => {
      const sess = session(60_000)
      sess.cookie.expires = new Date(ms).toISOString()
      return sess
    }
    const set = await timed(() => Promise.all(sids.map((sid, i) => store.set(sid, expiringAt(first + i)))))
    // Only sessions written before their expiry count (the others were not written).
    const from = Math.max(first, set.to + 1)
    await sleepUntil(from)
    let within = 0
    for (let now = Date.now(); now < first + sids.length; now = Date.now()) {
      if (now < from) {
        await sleep(0)
        continue
      }
      const i = now - first
      const got = await timed(() => store.get(sids[i]))
      if (got.to === first + i) {
        within++
        t.truthy(got.value, 'a get within the millisecond of the expiry found nothing')
      }
      if (now - 1 >= from) t.is(await store.get(sids[i - 1]), null, 'a get after the expiry found the session')
    }
    inTime(t, within > 0, 'a get within the millisecond of an expiry')
    await sleepUntil(first + sids.length + PAST)
    t.is(await store.length(), 0)
    t.deepEqual(await store.ids(), [])
  })

  // What the engine's sweep is for: a session that expired and is never
  // read again is let go, not only hidden, or a store with steady logins
  // grows without bound. Alone (serial), so that what the engines hold is
  // this test's; the prefix's hash tag keeps every meta in one key. Redis
  // drops expired keys itself: there the lists and counts are checked.
  test.serial('expired sessions stop being counted and kept, and what they held is let go', async (t) => {
    const store = makeStore({ prefix: `conf:{${randomUUID()}}:` })
    await store.set('kept', session(60_000, { userId: 'ada' }))
    // Earlier tests' short sessions may still be let go meanwhile (the
    // engine sweeps once a second; a file's engine is shared by the whole
    // file): count from once what is held holds still over a sweep.
    let before = held()
    for (let i = 0; i < 10 && before; i++) {
      await sleep(1100)
      const again = held()
      if (again.keys === before.keys) break
      before = again
    }
    const n = 200
    const sessions = Array.from({ length: n }, () => session(500, { pad: 'x'.repeat(1000) }))
    const expiries = sessions.map((sess) => Date.parse(sess.cookie.expires))
    const brief = await timed(() => Promise.all(sessions.map((sess, i) => store.set(`brief${i}`, sess))))
    // Held while they live (else the end shows nothing).
    const written = held()
    if (written && inTime(t, brief.to < Math.min(...expiries), 'the sessions written before their expiry')) {
      t.true(written.keys >= before.keys + n, `${JSON.stringify(written)} after ${n} sessions, from ${JSON.stringify(before)}`)
    }
    await sleepUntil(Math.max(...expiries) + PAST)
    t.is(await store.length(), 1)
    t.deepEqual(await store.ids(), ['kept'])
    t.deepEqual((await store.all()).map((s) => s.id), ['kept'])
    t.deepEqual(await counts(store), { sessions: 1, users: 1, active: 1 })
    if (held()) {
      // The engine sweeps once a second; 10 s is a bound, not a speed.
      let now = held()
      for (const until = Date.now() + 10_000; now.keys > before.keys && Date.now() < until; now = held()) await sleep(50)
      t.true(now.keys < before.keys + n / 2, `expired sessions still held: ${JSON.stringify(now)}, from ${JSON.stringify(before)} before them`)
      t.true(now.bytes < before.bytes + (n * 1000) / 2, `expired sessions still held: ${JSON.stringify(now)}, from ${JSON.stringify(before)} before them`)
    }
    // A session saved again under an expired id starts afresh.
    await store.set('brief0', session(60_000, { n: 2 }))
    t.is((await store.get('brief0')).n, 2)
    t.is(await store.get('brief1'), null)
    t.is(await store.length(), 2)
    t.deepEqual(await counts(store), { sessions: 2, users: 1, active: 2 })
  })

  test('a session whose expiry is already past is deleted, not written', async (t) => {
    const store = makeStore()
    await store.set('new', session(-1000))
    t.is(await store.get('new'), null)
    await store.set('old', session(60_000))
    await store.set('old', session(-1000))
    t.is(await store.get('old'), null)
    t.is(await store.length(), 0)
  })

  test('without cookie.expires the ttl option applies (in ms); a ttl function always wins', async (t) => {
    const noExpires = (extra) => ({ cookie: { originalMaxAge: null, expires: null }, ...extra })
    const brief = makeStore({ ttl: 0.05 })
    const long = makeStore({ ttl: 600 })
    await brief.set('s', noExpires({ a: 1 }))
    await long.set('s', noExpires({ a: 1 }))
    const fn = makeStore({ ttl: (sess) => sess.ttlSeconds })
    t.is(typeof fn.ttl, 'function')
    const set = await timed(() => fn.set('f', session(60_000, { ttlSeconds: 0.05 })))
    await fn.set('kept', session(50, { ttlSeconds: 600 }))
    await sleepUntil(set.to + 50 + PAST * 2)
    t.is(await brief.get('s'), null, 'the ttl option did not apply')
    t.is((await long.get('s')).a, 1)
    t.is(await fn.get('f'), null, 'the cookie won over the ttl function')
    t.truthy(await fn.get('kept'), 'the cookie won over the ttl function')
    // A ttl function returning 0 deletes the session.
    await fn.set('kept', session(60_000, { ttlSeconds: 0 }))
    t.is(await fn.get('kept'), null)
    t.is(await fn.length(), 0)
  })

  test('disableTTL stores sessions without expiry', async (t) => {
    const store = makeStore({ disableTTL: true })
    t.true(store.disableTTL)
    await store.set('n', session(5, { userId: 'ada' }))
    await sleep(5 + PAST * 2)
    t.truthy(await store.get('n'))
    const [listed] = await store.listUserSessions('ada')
    t.is(listed.expiresAt, null)
    t.is(await store.length(), 1)
  })

  test('touch by default: get returns the value as stored (as connect-redis), listUserSessions the new cookie.expires', async (t) => {
    const store = makeStore()
    const sess = session(HOUR, { userId: 'ada', cart: [1] })
    await store.set('t', sess)
    const later = touched(sess, 2 * HOUR)
    await store.touch('t', later)
    t.deepEqual(await store.get('t'), asStored(sess))
    const [listed] = await store.listUserSessions('ada')
    t.is(listed.session.cookie.expires, later.cookie.expires)
    t.is(listed.expiresAt.getTime(), Date.parse(later.cookie.expires))
  })

  for (const [mode, options] of Object.entries(TOUCH_MODES)) {
    test(`touch ${mode}: get and listUserSessions return the new cookie.expires`, async (t) => {
      const store = makeStore(options)
      const sess = session(HOUR, { userId: 'ada', cart: [1] })
      await store.set('t', sess)
      const later = touched(sess, 2 * HOUR)
      t.is(await store.touch('t', later), undefined)
      const got = await store.get('t')
      t.is(got.cookie.expires, later.cookie.expires)
      t.deepEqual(got, asStored(later))
      const [listed] = await store.listUserSessions('ada')
      t.is(listed.session.cookie.expires, later.cookie.expires, 'listUserSessions disagrees with get() after a touch')
      // An earlier expiry is taken too: the cookie says what it says.
      const sooner = touched(sess, 1.5 * HOUR)
      await store.touch('t', sooner)
      t.is((await store.get('t')).cookie.expires, sooner.cookie.expires)
      t.is((await store.listUserSessions('ada'))[0].session.cookie.expires, sooner.cookie.expires)
    })
  }

  test('a touch with a later cookie keeps the session past its first expiry', async (t) => {
    await Promise.all(
      Object.values(TOUCH_MODES).map(async (options) => {
        const store = makeStore(options)
        const sess = session(1000, { userId: 'ada' })
        await store.set('k', sess)
        const touch = await timed(() => store.touch('k', touched(sess, 60_000)))
        await sleepUntil(Date.parse(sess.cookie.expires) + PAST)
        // Required only if the touch landed before the first expiry.
        if (inTime(t, touch.to < Date.parse(sess.cookie.expires), `${JSON.stringify(options)}: the touch before the first expiry`)) {
          t.truthy(await store.get('k'), JSON.stringify(options))
          t.deepEqual(await store.ids(), ['k'])
        } else {
          t.pass()
        }
      }),
    )
  })

  test('a touch with an expiry in the past ends the session', async (t) => {
    const store = makeStore()
    await store.set('p', session(60_000, { userId: 'ada' }))
    await store.touch('p', session(-1000, { userId: 'ada' }))
    t.is(await store.get('p'), null)
    t.deepEqual(await store.listUserSessions('ada'), [])
    t.is(await store.length(), 0)
  })

  test('touch never creates a session that was not there', async (t) => {
    for (const options of Object.values(TOUCH_MODES)) {
      const store = makeStore(options)
      await store.touch('ghost', session(60_000, { userId: 'ada' }))
      t.is(await store.get('ghost'), null, JSON.stringify(options))
      t.is(await store.length(), 0)
      t.deepEqual(await store.listUserSessions('ada'), [])
    }
  })

  test('disableTouch makes touch a no-op: the old expiry stays and still ends the session', async (t) => {
    const store = makeStore({ disableTouch: true })
    t.true(store.disableTouch)
    const sess = session(1000, { userId: 'ada' })
    await store.set('x', sess)
    await store.touch('x', touched(sess, 60_000))
    const got = await timed(() => store.get('x'))
    if (inTime(t, got.to < Date.parse(sess.cookie.expires), 'the get before the first expiry')) t.is(got.value?.cookie.expires, sess.cookie.expires)
    await sleepUntil(Date.parse(sess.cookie.expires) + PAST)
    t.is(await store.get('x'), null)
    t.is(await store.length(), 0)
  })
}
