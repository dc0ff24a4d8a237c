'use strict'

// merge: true — overlapping requests of one session keep each other's
// changes, through the store and through express-session over real HTTP;
// the same scenarios with merge off show today's last-save-wins.
const request = require('supertest')
const express = require('express')
const expressSession = require('express-session')
const { session, sleep } = require('./util')

// A request held after it loaded the session until the test lets it go:
// overlapping requests in a fixed order, whatever the machine's load.
const holds = new Map()
let holdIds = 0

// Runs the request `slow(holdId)` makes, lets `fast()` run whole while it
// is held (after its load, before its save), then lets it finish.
async function overlap(slow, fast) {
  const id = String(++holdIds)
  let release
  const loaded = new Promise((resolve) => holds.set(id, { loaded: resolve, released: new Promise((r) => (release = r)) }))
  // supertest sends a request once something waits for it.
  const slowDone = Promise.resolve(slow(id))
  await loaded
  const fastDone = await fast()
  release()
  return [await slowDone, fastDone]
}

function app(store, options = {}) {
  const a = express()
  a.use(expressSession({ store, secret: 'merge secret', resave: false, saveUninitialized: false, cookie: { maxAge: 60_000 }, ...options }))
  // Sets (or with ?delete, deletes) req.session[k] after `ms` (or once
  // let go, with ?hold), then saves.
  a.post('/put', async (req, res) => {
    const hold = holds.get(req.query.hold)
    if (hold) {
      hold.loaded()
      await hold.released
    }
    await sleep(Number(req.query.ms || 0))
    if (req.query.delete) delete req.session[req.query.k]
    else req.session[req.query.k] = req.query.v ?? true
    res.json({ id: req.sessionID })
  })
  a.post('/start', (req, res) => {
    req.session.since = new Date('2026-12-04T10:00:00.000Z')
    req.session.nested = { a: [1, { b: 2 }] }
    res.json({ id: req.sessionID })
  })
  a.get('/me', (req, res) => res.json({ session: req.session, expires: req.session.cookie.expires }))
  // reload() mid-request (what another request saved meanwhile), then a change.
  a.post('/reload-put', (req, res, next) => {
    setTimeout(() => {
      req.session.reload((err) => {
        if (err) return next(err)
        setTimeout(() => {
          req.session[req.query.k] = true
          res.json({ ok: true })
        }, 40)
      })
    }, 30)
  })
  a.post('/logout', (req, res) => req.session.destroy(() => res.json({ ok: true })))
  a.post('/login', (req, res, next) => req.session.regenerate((err) => (err ? next(err) : ((req.session.user = 'ada'), res.json({ id: req.sessionID })))))
  // save() by hand in the middle of a request, then the end of request's save.
  a.post('/twice', (req, res, next) => {
    req.session.first = 1
    req.session.save((err) => {
      if (err) return next(err)
      setTimeout(() => {
        req.session.second = 2
        res.json({ ok: true })
      }, 20)
    })
  })
  a.use((err, req, res, next) => res.status(500).json({ code: err.code ?? null, message: err.message }))
  return a
}

async function started(store, options) {
  const agent = request.agent(app(store, options))
  await agent.post('/start').expect(200)
  return agent
}

const put = (agent, k, ms = 0, extra = '') => agent.post(`/put?k=${k}&ms=${ms}${extra}`).expect(200)
const held = (agent, k, extra = '') => (id) => put(agent, k, 0, `&hold=${id}${extra}`)
const stored = async (agent) => (await agent.get('/me').expect(200)).body.session

module.exports = (test, ctx) => {
  const { makeStore } = ctx

  test('merge: two loads, two saves of different keys keep both; off, the later save erases the other', async (t) => {
    for (const merge of [true, false]) {
      const store = makeStore({ merge })
      await store.set('s', session(60_000, { n: 0 }))
      const [a, b] = [await store.get('s'), await store.get('s')]
      a.a = 1
      b.b = 2
      await store.set('s', a)
      await store.set('s', b)
      const got = await store.get('s')
      t.is(got.b, 2)
      t.is(got.a, merge ? 1 : undefined, `merge ${merge}`)
    }
  })

  const many = (n, tag) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, `${tag}${i}`]))
  test('merge: a session over 10,000 top-level keys is refused with ERR_SESSION_TOO_LARGE and nothing is written', async (t) => {
    const store = makeStore({ merge: true })
    await store.set('s', session(60_000, { n: 0 }))
    const loaded = await store.get('s')
    Object.assign(loaded, many(10_001, 'v'))
    const err = await t.throwsAsync(store.set('s', loaded))
    t.is(err.code, 'ERR_SESSION_TOO_LARGE')
    t.regex(err.message, /10003 top-level keys.*turn merge off/s)
    t.is((await store.get('s')).k0, undefined)
    // Another request's save is not held up by it.
    const other = await store.get('s')
    other.n = 1
    await Promise.all([t.throwsAsync(store.set('s', loaded)), store.set('s', other)])
    t.is((await store.get('s')).n, 1)
  })

  test('merge: a delete is kept while another save lands; the same key: the later save wins, no error', async (t) => {
    const store = makeStore({ merge: true })
    await store.set('s', session(60_000, { gone: 1, k: 'start' }))
    const [a, b, c] = [await store.get('s'), await store.get('s'), await store.get('s')]
    delete a.gone
    b.k = 'b'
    c.k = 'c'
    await Promise.all([store.set('s', a), store.set('s', b)])
    await store.set('s', c)
    const got = await store.get('s')
    t.false('gone' in got)
    t.is(got.k, 'c')
  })

  test('merge: a get issued right after a save that had to merge again sees the merged session', async (t) => {
    const store = makeStore({ merge: true })
    await store.set('s', session(60_000, { n: 0 }))
    const [a, b] = [await store.get('s'), await store.get('s')]
    a.a = 1
    await store.set('s', a)
    b.b = 2
    // The same tick: one batch, whose save finds a's change and merges again.
    const [, got] = await Promise.all([store.set('s', b), store.get('s')])
    t.is(got.a, 1)
    t.is(got.b, 2)
  })

  test('merge: a session destroyed meanwhile stays destroyed', async (t) => {
    const store = makeStore({ merge: true, userId: (s) => s.user })
    await store.set('s', session(60_000, { user: 'ada' }))
    const late = await store.get('s')
    await store.destroy('s')
    late.cart = [1]
    await store.set('s', late)
    t.is(await store.get('s'), null)
    t.deepEqual(await store.listUserSessions('ada'), [])
  })

  test('merge: a login by another request (no regenerate) while this one saves keeps the session the user\'s', async (t) => {
    const store = makeStore({ merge: true })
    const ada = `ada-${Math.random()}`
    await store.set('s', session(60_000, { n: 0 }))
    const [slow, login] = [await store.get('s'), await store.get('s')]
    login.userId = ada
    await store.set('s', login)
    slow.cart = [1]
    await store.set('s', slow)
    const got = await store.get('s')
    t.is(got.userId, ada)
    t.deepEqual(got.cart, [1])
    t.deepEqual((await store.listUserSessions(ada)).map((s) => s.id), ['s'], 'listed as the user\'s')
    t.is(await store.destroyUserSessions(ada), 1, 'log out everywhere finds it')
    t.is(await store.get('s'), null)
    // And a logout by another request (the owner field deleted) wins too.
    await store.set('t', session(60_000, { userId: ada }))
    const [stay, logout] = [await store.get('t'), await store.get('t')]
    delete logout.userId
    await store.set('t', logout)
    stay.cart = [2]
    await store.set('t', stay)
    t.is((await store.get('t')).userId, undefined)
    t.deepEqual(await store.listUserSessions(ada), [])
  })

  test('merge: objects not from get() save whole, as without merge', async (t) => {
    const store = makeStore({ merge: true })
    await store.set('s', session(60_000, { a: 1 }))
    await store.set('s', session(60_000, { b: 1 }))
    const got = await store.get('s')
    t.is(got.a, undefined)
    t.is(got.b, 1)
  })

  for (const merge of [true, false]) {
    test(`express, merge ${merge ? 'on' : 'off'}: overlapping requests setting different keys ${merge ? 'both keep theirs' : 'lose the faster one\'s change'}`, async (t) => {
      const agent = await started(makeStore({ merge }))
      let lost = 0
      for (let round = 0; round < 5; round++) {
        // The slow request loads first and saves last.
        await overlap(held(agent, `slow${round}`), () => put(agent, `fast${round}`))
        const s = await stored(agent)
        t.true(s[`slow${round}`], `round ${round}: the slower request's key`)
        if (!s[`fast${round}`]) lost++
      }
      t.is(lost, merge ? 0 : 5, 'rounds where the faster request\'s change was lost')
    })
  }

  test("express, merge on: a delete is kept while a slower request saves; Dates, nested values and the cookie survive many merges", async (t) => {
    const agent = await started(makeStore({ merge: true }))
    await put(agent, 'doomed')
    await overlap(held(agent, 'other'), () => put(agent, 'doomed', 0, '&delete=1'))
    let s = await stored(agent)
    t.false('doomed' in s)
    t.true(s.other)
    for (let i = 0; i < 10; i++) await Promise.all([put(agent, `x${i}`, 20), put(agent, `y${i}`)])
    const me = await agent.get('/me').expect(200)
    s = me.body.session
    t.is(s.since, '2026-12-04T10:00:00.000Z')
    t.deepEqual(s.nested, { a: [1, { b: 2 }] })
    t.true(Date.parse(me.body.expires) > Date.now(), 'the cookie is still valid')
    for (let i = 0; i < 10; i++) t.true(s[`x${i}`] && s[`y${i}`], `round ${i}`)
  })

  for (const merge of [true, false]) {
    test(`express, merge ${merge ? 'on' : 'off'}: a key deleted by a faster request ${merge ? 'stays deleted' : 'comes back with the slower save'}`, async (t) => {
      const agent = await started(makeStore({ merge }))
      await put(agent, 'doomed')
      await overlap(held(agent, 'other'), () => put(agent, 'doomed', 0, '&delete=1'))
      const s = await stored(agent)
      t.true(s.other)
      t.is('doomed' in s, !merge)
    })
  }

  test('express, merge on: two requests setting the same key: the later save wins, no error', async (t) => {
    const agent = await started(makeStore({ merge: true }))
    const [slow, fast] = await overlap(held(agent, 'k', '&v=slow'), () => put(agent, 'k', 0, '&v=fast'))
    t.is(slow.status, 200)
    t.is(fast.status, 200)
    t.is((await stored(agent)).k, 'slow')
  })

  test('express, merge on: rolling: true and reload() keep overlapping changes', async (t) => {
    const agent = await started(makeStore({ merge: true }), { rolling: true })
    await Promise.all([agent.post('/reload-put?k=reloaded').expect(200), sleep(5).then(() => put(agent, 'early'))])
    await overlap(held(agent, 'a'), () => put(agent, 'b'))
    const me = await agent.get('/me').expect(200)
    const s = me.body.session
    t.true(s.reloaded && s.early && s.a && s.b, JSON.stringify(s))
    t.true(Date.parse(me.body.expires) > Date.now() + 50_000, 'rolling moved the cookie')
  })

  test('express, merge on: a logout during a slower request stays a logout', async (t) => {
    const store = makeStore({ merge: true })
    const agent = await started(store)
    const sid = (await agent.post('/start')).body.id
    t.truthy(await store.get(sid))
    await overlap(held(agent, 'late'), () => agent.post('/logout').expect(200))
    t.is(await store.get(sid), null, 'the slower request did not bring the session back')
  })

  test('express, merge on: resave: true keeps both overlapping changes', async (t) => {
    const agent = await started(makeStore({ merge: true }), { resave: true })
    await overlap(held(agent, 'a'), () => put(agent, 'b'))
    // A request that changes nothing resaves the session it loaded.
    await Promise.all([agent.get('/me'), put(agent, 'c', 30)])
    const s = await stored(agent)
    t.true(s.a && s.b && s.c)
  })

  test('express, merge on: save() by hand, then the end of the request, with another request between', async (t) => {
    const agent = await started(makeStore({ merge: true }))
    await Promise.all([agent.post('/twice').expect(200), sleep(5).then(() => put(agent, 'between'))])
    const s = await stored(agent)
    t.is(s.first, 1)
    t.is(s.second, 2)
    t.true(s.between)
  })

  test('express, merge on: a session regenerated while another request is in flight: the old one stays gone', async (t) => {
    const store = makeStore({ merge: true })
    const agent = await started(store)
    const old = (await agent.post('/start')).body.id
    const [, login] = await overlap(held(agent, 'late'), () => agent.post('/login').expect(200))
    t.not(login.body.id, old)
    t.is(await store.get(old), null, 'the late save did not bring the old session back')
    const s = await store.get(login.body.id)
    t.is(s.user, 'ada')
  })
}
