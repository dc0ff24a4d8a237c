'use strict'

// express-session over real HTTP (supertest) with the store, for Express 4
// and Express 5, checking what ends up in Redis after each request. What a
// user sees is in conformance/express.js, which runs the option tests
// (saveUninitialized, resave, rolling) on Express 5 only: their Express 4
// runs are here, with the keys, values and PEXPIRETIME behind them.
const test = require('ava')
const request = require('supertest')
const session = require('express-session')
const { randomUUID } = require('node:crypto')
const { RedisSessionStore } = require('..')
const { redisForTests } = require('./helpers/redis')
const { RawRedis } = require('./helpers/raw')

const MAX_AGE = 60_000

let redis
let raw
const stores = []

test.before(async () => {
  redis = await redisForTests()
  raw = await RawRedis.connect(redis.url)
})

test.after.always(async () => {
  await Promise.all(stores.map((s) => s.close()))
  if (raw) raw.close()
  if (redis) await redis.dispose()
})

// Lets a test see which store methods express-session called, and in what order.
function makeStore() {
  const store = new RedisSessionStore({ url: redis.url, prefix: `http:${randomUUID()}:` })
  store.calls = []
  for (const name of ['get', 'set', 'touch', 'destroy']) {
    const original = store[name]
    store[name] = function (...args) {
      store.calls.push(name)
      return original.apply(this, args)
    }
  }
  stores.push(store)
  return store
}

function makeApp(express, store, options = {}, routes = () => {}) {
  const app = express()
  app.use(
    session({
      store,
      secret: 'http test secret',
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: MAX_AGE },
      ...options,
    }),
  )
  const reply = (req, res) => res.json({ id: req.sessionID, user: req.session.user ?? null, visits: req.session.visits ?? 0 })

  app.get('/me', reply)
  app.get('/visit', (req, res) => {
    req.session.visits = (req.session.visits || 0) + 1
    reply(req, res)
  })
  // Renews the id on login, as OWASP asks.
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err)
      req.session.user = req.query.user
      reply(req, res)
    })
  })
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.json({ ok: true })))
  })
  routes(app, reply)
  return app
}

const key = (store, sid) => `${store.prefix}${sid}`
const keysOf = async (store) => (await raw.call('KEYS', `${store.prefix}*`)).map(String).sort()
const stored = async (store, sid) => JSON.parse(await raw.call('GET', key(store, sid)))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function sessionCookie(res) {
  return (res.headers['set-cookie'] || []).find((c) => c.startsWith('connect.sid='))
}

// The Expires attribute of the Set-Cookie header, in epoch ms (second precision).
function cookieExpires(res) {
  const m = /;\s*Expires=([^;]+)/i.exec(sessionCookie(res))
  return m ? Date.parse(m[1]) : NaN
}

const frameworks = [
  ['express 4', require('express4')],
  ['express 5', require('express')],
]

for (const [name, express] of frameworks) {
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
    t.is((await stored(store, id)).user, 'ada')
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

  test(`${name}: resave false touches an unmodified session; expiry moves and get sees it`, async (t) => {
    const store = makeStore()
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
    // ...yet get() reports the new expiry, as express-session expects of touch.
    const got = await store.get(id)
    t.is(got.cookie.expires, new Date(expiryAfter).toISOString())
    t.is(got.user, 'ada')
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
    t.is(after.user, 'ada')
  })

  test(`${name}: rolling true sends the cookie on every response and moves the TTL`, async (t) => {
    const store = makeStore()
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
