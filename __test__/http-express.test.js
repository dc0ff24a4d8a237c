'use strict'

// express-session over real HTTP (supertest) with the store, for Express 4
// and Express 5, checking what ends up in Redis after each request. What a
// user sees is in conformance/express.js, which runs the option tests
// (saveUninitialized, resave, rolling) on Express 5 only: their Express 4
// runs are here, with the keys, values and PEXPIRETIME behind them.
const test = require('ava')
const request = require('supertest')
const { storeSuite } = require('./helpers/suite')
const { MAX_AGE, FRAMEWORKS, recordCalls, makeApp, sessionCookie, cookieExpires } = require('./helpers/express-app')

const suite = storeSuite(test, 'http')
const { raw } = suite
const makeStore = (options) => recordCalls(suite.makeStore(options))

const key = (store, sid) => `${store.prefix}${sid}`
const keysOf = async (store) => (await raw.call('KEYS', `${store.prefix}*`)).map(String).sort()
const stored = async (store, sid) => JSON.parse(await raw.call('GET', key(store, sid)))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

for (const [name, express] of FRAMEWORKS) {
  // What a user sees through login, regenerate and logout is in
  // conformance/express.js (Express 4 and 5); here, the keys it leaves.
  test(`${name}: the keys in Redis through a visit, login with regenerate and logout`, async (t) => {
    const store = makeStore()
    const agent = request.agent(makeApp(express, store))

    const firstId = (await agent.get('/visit').expect(200)).body.id
    t.deepEqual(await keysOf(store), [key(store, firstId)])

    const { id } = (await agent.post('/login?user=ada').expect(200)).body
    t.is(await raw.call('EXISTS', key(store, firstId)), 0)
    t.deepEqual(await keysOf(store), [key(store, id)])
    t.is((await stored(store, id)).userId, 'ada')
    await agent.get('/visit').expect(200)
    t.is((await stored(store, id)).visits, 1)

    await agent.post('/logout').expect(200, { ok: true })
    t.is(await raw.call('EXISTS', key(store, id)), 0)
    await agent.get('/me').expect(200)
    // Untouched and saveUninitialized is false: nothing written.
    t.deepEqual(await keysOf(store), [])
  })

  test(`${name}: saveUninitialized false writes no key for an untouched session`, async (t) => {
    const store = makeStore()
    const res = await request(makeApp(express, store, { saveUninitialized: false })).get('/me').expect(200)
    t.is(sessionCookie(res), undefined)
    t.is(typeof res.body.id, 'string')
    t.deepEqual(await keysOf(store), [])
    t.false(store.calls.includes('set'))
  })

  test(`${name}: saveUninitialized true writes the untouched session`, async (t) => {
    const store = makeStore()
    const res = await request(makeApp(express, store, { saveUninitialized: true })).get('/me').expect(200)
    const id = res.body.id
    t.true(sessionCookie(res).startsWith(`connect.sid=s%3A${encodeURIComponent(id)}.`))
    t.deepEqual(await keysOf(store), [key(store, id)])
    const value = await stored(store, id)
    // express-session derives originalMaxAge from expires - now, so a
    // millisecond may tick away under load.
    t.true(value.cookie.originalMaxAge <= MAX_AGE && value.cookie.originalMaxAge > MAX_AGE - 1000, String(value.cookie.originalMaxAge))
    t.is(await raw.call('PEXPIRETIME', key(store, id)), Date.parse(value.cookie.expires))
  })

  test(`${name}: resave false touches an unmodified session; expiry moves and get sees it with readExpiry`, async (t) => {
    const store = makeStore({ readExpiry: true })
    const agent = request.agent(makeApp(express, store, { resave: false }))
    const { id } = (await agent.post('/login?user=ada').expect(200)).body
    const valueBefore = await raw.call('GET', key(store, id))
    const expiryBefore = await raw.call('PEXPIRETIME', key(store, id))
    t.is(expiryBefore, Date.parse(JSON.parse(valueBefore).cookie.expires))

    await sleep(20) // so that now + maxAge is a later millisecond
    store.calls = []
    const me = await agent.get('/me').expect(200)
    t.deepEqual(me.body, { id, user: 'ada', visits: 0 })
    t.deepEqual(store.calls, ['get', 'touch'])
    // rolling is false and nothing changed: no new cookie.
    t.is(sessionCookie(me), undefined)

    const expiryAfter = await raw.call('PEXPIRETIME', key(store, id))
    t.true(expiryAfter > expiryBefore, `${expiryAfter} > ${expiryBefore}`)
    // touch moved the key's expiry only; the value was not rewritten...
    t.is(await raw.call('GET', key(store, id)), valueBefore)
    // ...yet get() reports the new expiry with readExpiry (by default the value as stored).
    t.is((await makeStore({ prefix: store.prefix }).get(id)).cookie.expires, JSON.parse(valueBefore).cookie.expires)
    const got = await store.get(id)
    t.is(got.cookie.expires, new Date(expiryAfter).toISOString())
    t.is(got.userId, 'ada')
  })

  test(`${name}: resave true rewrites an unmodified session instead of touching it`, async (t) => {
    const store = makeStore()
    const agent = request.agent(makeApp(express, store, { resave: true }))
    const { id } = (await agent.post('/login?user=ada').expect(200)).body
    const before = await stored(store, id)

    await sleep(20)
    store.calls = []
    await agent.get('/me').expect(200, { id, user: 'ada', visits: 0 })
    t.deepEqual(store.calls, ['get', 'set'])

    const after = await stored(store, id)
    t.true(Date.parse(after.cookie.expires) > Date.parse(before.cookie.expires))
    t.is(await raw.call('PEXPIRETIME', key(store, id)), Date.parse(after.cookie.expires))
    t.is(after.userId, 'ada')
  })

  test(`${name}: rolling true sends the cookie on every response and moves the TTL`, async (t) => {
    const store = makeStore({ readExpiry: true })
    const agent = request.agent(makeApp(express, store, { rolling: true }))
    const login = await agent.post('/login?user=ada').expect(200)
    const { id } = login.body
    const expiryBefore = await raw.call('PEXPIRETIME', key(store, id))
    t.is(cookieExpires(login), Math.floor(expiryBefore / 1000) * 1000)

    await sleep(20)
    const me = await agent.get('/me').expect(200)
    t.is(me.body.user, 'ada')
    t.true(sessionCookie(me).startsWith(`connect.sid=s%3A${encodeURIComponent(id)}.`))
    const expiryAfter = await raw.call('PEXPIRETIME', key(store, id))
    t.true(expiryAfter > expiryBefore, `${expiryAfter} > ${expiryBefore}`)
    // The browser's cookie and the Redis key expire together.
    t.is(cookieExpires(me), Math.floor(expiryAfter / 1000) * 1000)
    t.is((await store.get(id)).cookie.expires, new Date(expiryAfter).toISOString())
  })

  // conformance/express.js runs this one on Express 5 only.
  if (name === 'express 4') test(`${name}: rolling false sends no cookie for an unmodified session`, async (t) => {
    const store = makeStore()
    const agent = request.agent(makeApp(express, store, { rolling: false }))
    const login = await agent.post('/login?user=ada').expect(200)
    t.truthy(sessionCookie(login))
    const me = await agent.get('/me').expect(200)
    t.is(me.body.user, 'ada')
    t.is(sessionCookie(me), undefined)
  })

  test(`${name}: a request in flight during logout does not bring the session back`, async (t) => {
    const store = makeStore()
    let entered
    const inHandler = new Promise((r) => (entered = r))
    let release
    const gate = new Promise((r) => (release = r))
    // /slow has loaded the session, modifies it after logout, and saves it
    // (a set: the write that could recreate the key, as connect-redis's did).
    const app = makeApp(express, store, { resave: false }, (a, reply) => {
      a.get('/slow', async (req, res) => {
        entered()
        await gate
        req.session.visits = (req.session.visits || 0) + 1
        req.session.cart = ['late']
        reply(req, res)
      })
    })
    const agent = request.agent(app)
    const { id } = (await agent.post('/login?user=ada').expect(200)).body
    t.truthy(await store.get(id))

    store.calls = []
    const slow = agent.get('/slow').then((res) => res) // then() sends it now
    await inHandler
    await agent.post('/logout').expect(200)
    t.is(await raw.call('EXISTS', key(store, id)), 0)
    release()
    const late = await slow
    t.is(late.status, 200)
    t.deepEqual(late.body, { id, user: 'ada', visits: 1 })
    t.deepEqual(store.calls, ['get', 'get', 'destroy', 'set'])
    t.is(await raw.call('EXISTS', key(store, id)), 0)
    t.is(await store.get(id), null)
    // The same cookie comes back to no session: a new anonymous one.
    const after = await agent.get('/me').expect(200)
    t.not(after.body.id, id)
    t.is(after.body.user, null)
  })
}
