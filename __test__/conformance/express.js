'use strict'

// express-session over real HTTP (supertest) with the store: what a user
// sees across requests, checked through the store's public API only.
const request = require('supertest')
const { sleep, sleepUntil, PAST } = require('./util')
const { MAX_AGE, FRAMEWORKS, recordCalls, makeApp, sessionCookie, cookieExpires } = require('../helpers/express-app')

const express5 = FRAMEWORKS[1][1]

// A promise and the function that resolves it.
function gate() {
  let open
  const opened = new Promise((r) => (open = r))
  return { opened, open }
}

module.exports = (test, { makeStore }) => {
  for (const [name, express] of FRAMEWORKS) {
    test(`${name}: a visit counter across requests, login with regenerate, logout`, async (t) => {
      const store = recordCalls(makeStore())
      const agent = request.agent(makeApp(express, store))

      const first = await agent.get('/visit').expect(200)
      t.is(first.body.visits, 1)
      const anonId = first.body.id
      t.truthy(sessionCookie(first))
      t.is((await store.get(anonId)).visits, 1)
      t.deepEqual((await agent.get('/visit').expect(200)).body, { id: anonId, user: null, visits: 2 })
      t.is((await store.get(anonId)).visits, 2)

      const login = await agent.post('/login?user=ada').expect(200)
      const id = login.body.id
      t.not(id, anonId)
      // regenerate dropped the old session: its data did not follow the new id.
      t.deepEqual(login.body, { id, user: 'ada', visits: 0 })
      t.is(await store.get(anonId), null)
      t.is((await store.get(id)).userId, 'ada')
      t.deepEqual(await store.ids(), [id])
      t.deepEqual((await store.listUserSessions('ada')).map((s) => s.id), [id])

      t.deepEqual((await agent.get('/visit').expect(200)).body, { id, user: 'ada', visits: 1 })
      t.deepEqual((await agent.get('/me').expect(200)).body, { id, user: 'ada', visits: 1 })

      await agent.post('/logout').expect(200, { ok: true })
      t.is(await store.get(id), null)
      t.deepEqual(await store.listUserSessions('ada'), [])
      const after = await agent.get('/me').expect(200)
      t.is(after.body.user, null)
      t.not(after.body.id, id)
      // An untouched new session with saveUninitialized false is not stored.
      t.is(await store.length(), 0)
    })
  }

  test('saveUninitialized: false stores nothing for an untouched session; true stores it', async (t) => {
    const lazy = recordCalls(makeStore())
    const res = await request(makeApp(express5, lazy)).get('/me').expect(200)
    t.is(sessionCookie(res), undefined)
    t.false(lazy.calls.includes('set'))
    t.is(await lazy.length(), 0)

    const eager = makeStore()
    const stored = await request(makeApp(express5, eager, { saveUninitialized: true })).get('/me').expect(200)
    const id = stored.body.id
    t.true(sessionCookie(stored).startsWith(`connect.sid=s%3A${encodeURIComponent(id)}.`))
    const sess = await eager.get(id)
    t.true(sess.cookie.originalMaxAge <= MAX_AGE && sess.cookie.originalMaxAge > MAX_AGE - 5000, String(sess.cookie.originalMaxAge))
    t.is(cookieExpires(stored), Math.floor(Date.parse(sess.cookie.expires) / 1000) * 1000)
  })

  // With an idle timeout shorter than the cookie, the session's key expires
  // before its cookie, and the cookie's expiry is kept beside it. By
  // default get returns the value as stored (as connect-redis); the listing
  // always has the touched expiry.
  const MODES = [[' (readExpiry)', { readExpiry: true }, true], [' (idleTimeout shorter than the cookie)', { idleTimeout: 30 }, true], [' (by default: get as stored)', {}, false]]
  for (const [mode, options, reads] of MODES) {
    test(`resave: false touches an unmodified session, and the store then has the new expiry${mode}`, async (t) => {
      const store = recordCalls(makeStore(options))
      const agent = request.agent(makeApp(express5, store))
      const { id } = (await agent.post('/login?user=ada').expect(200)).body
      const before = Date.parse((await store.get(id)).cookie.expires)
      await sleep(20) // so that now + maxAge is a later millisecond
      store.calls = []
      const me = await agent.get('/me').expect(200)
      t.deepEqual(me.body, { id, user: 'ada', visits: 0 })
      t.deepEqual(store.calls, ['get', 'touch'])
      t.is(sessionCookie(me), undefined) // rolling is false and nothing changed
      const [listed] = await store.listUserSessions('ada')
      const after = Date.parse(listed.session.cookie.expires)
      t.true(after >= before + 20, `${new Date(after).toISOString()} is not later than ${new Date(before).toISOString()}`)
      if (options.idleTimeout) t.true(listed.expiresAt.getTime() < after, 'the idle deadline is the sooner')
      else t.is(listed.expiresAt.getTime(), after)
      t.is(Date.parse((await store.get(id)).cookie.expires), reads ? after : before)
    })
  }

  test('resave: true saves an unmodified session instead of touching it', async (t) => {
    const store = recordCalls(makeStore())
    const agent = request.agent(makeApp(express5, store, { resave: true }))
    const { id } = (await agent.post('/login?user=ada').expect(200)).body
    const before = Date.parse((await store.get(id)).cookie.expires)
    await sleep(20)
    store.calls = []
    await agent.get('/me').expect(200, { id, user: 'ada', visits: 0 })
    t.deepEqual(store.calls, ['get', 'set'])
    t.true(Date.parse((await store.get(id)).cookie.expires) >= before + 20)
  })

  test('rolling: true sends the cookie on every response, and cookie and store expire together', async (t) => {
    const store = makeStore()
    const agent = request.agent(makeApp(express5, store, { rolling: true }))
    const login = await agent.post('/login?user=ada').expect(200)
    const { id } = login.body
    const before = Date.parse((await store.get(id)).cookie.expires)
    t.is(cookieExpires(login), Math.floor(before / 1000) * 1000)
    await sleep(20)
    const me = await agent.get('/me').expect(200)
    t.is(me.body.user, 'ada')
    t.true(sessionCookie(me).startsWith(`connect.sid=s%3A${encodeURIComponent(id)}.`))
    const after = (await store.listUserSessions('ada'))[0].expiresAt.getTime()
    t.true(after >= before + 20)
    t.is(cookieExpires(me), Math.floor(after / 1000) * 1000)
  })

  test('rolling: false sends no cookie for an unmodified session', async (t) => {
    const agent = request.agent(makeApp(express5, makeStore(), { rolling: false }))
    t.truthy(sessionCookie(await agent.post('/login?user=ada').expect(200)))
    const me = await agent.get('/me').expect(200)
    t.is(me.body.user, 'ada')
    t.is(sessionCookie(me), undefined)
  })

  test('a session whose cookie expires in a few ms is gone at the next request', async (t) => {
    const store = makeStore()
    const agent = request.agent(makeApp(express5, store, { cookie: { maxAge: 30 } }))
    const login = await agent.post('/login?user=ada').expect(200)
    const stored = await store.get(login.body.id)
    if (stored) await sleepUntil(Date.parse(stored.cookie.expires) + PAST)
    const me = await agent.get('/me').expect(200)
    t.is(me.body.user, null)
    t.not(me.body.id, login.body.id)
    t.is(await store.get(login.body.id), null)
  })

  // The promise is about a request that modifies the session (a set) and
  // ends after the logout, and about one that only touches it.
  for (const [how, writer, mutate] of [
    ['modifies and saves the session', 'set', (req) => (req.session.cart = [1])],
    ['only touches the session', 'touch', () => {}],
  ]) {
    test(`a request in flight during logout that ${how} does not bring the session back`, async (t) => {
      const store = recordCalls(makeStore())
      const entered = gate()
      const release = gate()
      const app = makeApp(express5, store, {}, (a, reply) => {
        a.get('/slow', async (req, res) => {
          entered.open()
          await release.opened
          mutate(req)
          reply(req, res)
        })
      })
      const agent = request.agent(app)
      const { id } = (await agent.post('/login?user=ada').expect(200)).body
      store.calls = []
      const slow = agent.get('/slow').then((res) => res) // then() sends it now
      await entered.opened
      await agent.post('/logout').expect(200)
      t.is(await store.get(id), null)
      release.open()
      t.is((await slow).body.user, 'ada')
      // express-session wrote the session (set or touch) before it ended the response.
      t.true(store.calls.slice(store.calls.indexOf('destroy')).includes(writer), `calls: ${store.calls}`)
      t.is(await store.get(id), null)
      t.deepEqual(await store.listUserSessions('ada'), [])
      t.is(await store.length(), 0)
    })
  }

  test('log out everywhere else: the other device is signed out, this one stays', async (t) => {
    const store = makeStore()
    const app = makeApp(express5, store)
    const laptop = request.agent(app)
    const phone = request.agent(app)
    const l = (await laptop.post('/login?user=ada').expect(200)).body.id
    const p = (await phone.post('/login?user=ada').expect(200)).body.id
    t.deepEqual((await store.listUserSessions('ada')).map((s) => s.id).sort(), [l, p].sort())
    t.deepEqual((await laptop.post('/logout-others').expect(200)).body, { destroyed: 1 })
    t.is((await phone.get('/me').expect(200)).body.user, null)
    t.deepEqual((await laptop.get('/me').expect(200)).body, { id: l, user: 'ada', visits: 0 })
    t.deepEqual((await store.listUserSessions('ada')).map((s) => s.id), [l])
  })

  test('maxSessionsPerUser: 1 through express-session: a second login signs the first device out', async (t) => {
    const store = makeStore({ maxSessionsPerUser: 1 })
    const app = makeApp(express5, store)
    const laptop = request.agent(app)
    const phone = request.agent(app)
    await laptop.post('/login?user=ada').expect(200)
    await sleep(5)
    const p = (await phone.post('/login?user=ada').expect(200)).body.id
    t.is((await laptop.get('/me').expect(200)).body.user, null)
    t.is((await phone.get('/me').expect(200)).body.user, 'ada')
    // The signed-out laptop's request saved nothing that pushes the phone out.
    await laptop.get('/visit').expect(200)
    t.deepEqual((await store.listUserSessions('ada')).map((s) => s.id), [p])
  })

  test('idleTimeout through express-session: a user idle for longer is signed out', async (t) => {
    const store = makeStore({ idleTimeout: 0.2 })
    const agent = request.agent(makeApp(express5, store))
    const from = Date.now()
    const { id } = (await agent.post('/login?user=ada').expect(200)).body
    await sleepUntil(Date.now() + 200 + PAST)
    const me = await agent.get('/me').expect(200)
    t.true(Date.now() - from > 200)
    t.is(me.body.user, null)
    t.is(await store.get(id), null)
  })
}
