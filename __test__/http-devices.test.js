'use strict'

// "My devices" over real HTTP (supertest, Express 5) with captureDevice():
// what a user's device page shows, revoking by handle, binding to the user
// agent, and what stays in Redis. Session ids never leave the server here:
// the app notes them so the test can check that no handle, warning or
// error holds one.
const test = require('ava')
const request = require('supertest')
const express = require('express')
const session = require('express-session')
const { randomUUID } = require('node:crypto')
const { captureDevice } = require('..')
const { truncateIp } = require('../lib/devices')
const { storeSuite } = require('./helpers/suite')

const suite = storeSuite(test, 'dev')
const { raw } = suite

// A store whose device calls into the addon are counted, and whose
// warnings are kept.
function makeStore(prefix) {
  const store = suite.makeStore(prefix ? { prefix } : {})
  store.deviceCalls = 0
  for (const name of ['writeDevice', 'readDevice']) {
    const original = store._native[name].bind(store._native)
    store._native[name] = (...args) => {
      store.deviceCalls++
      return original(...args)
    }
  }
  store.warnings = []
  store.on('warning', (w) => store.warnings.push(w))
  return store
}

// The app a guide would write: log in, see my devices (the current one
// marked), revoke one. `sids`: every session id the app saw; `texts`: every
// handle and error message it sent.
function makeApp(store, options, app = express()) {
  app.sids = new Set()
  app.texts = []
  app.set('trust proxy', true)
  app.use(session({ store, secret: 'devices test secret', resave: false, saveUninitialized: false, cookie: { maxAge: 60_000 } }))
  app.use(captureDevice(options))
  app.use((req, res, next) => {
    app.sids.add(req.sessionID)
    next()
  })
  app.post('/login/:user', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err)
      req.session.userId = req.params.user
      app.sids.add(req.sessionID)
      res.json({ ok: true })
    })
  })
  app.get('/me', (req, res) => res.json({ user: req.session.userId ?? null }))
  app.get('/devices', async (req, res) => {
    const current = store.handleOf(req.sessionID)
    const list = await store.listUserSessions(req.session.userId)
    const body = list.map(({ handle, device }) => ({ handle, current: handle === current, ...device }))
    app.texts.push(...body.map((d) => d.handle))
    res.json(body)
  })
  app.post('/devices/:handle/revoke', async (req, res) => {
    res.json({ revoked: await store.revokeUserSession(req.session.userId, req.params.handle) })
  })
  app.use((err, req, res, next) => {
    app.texts.push(err.message)
    res.status(500).json({ error: err.message })
  })
  return app
}

// A browser: its own cookie jar, user agent and address.
function browser(app, userAgent, ip) {
  const agent = request.agent(app)
  const headers = { 'User-Agent': userAgent, 'X-Forwarded-For': ip }
  return {
    get: (path, h = {}) => agent.get(path).set({ ...headers, ...h }).expect(200),
    post: (path, h = {}) => agent.post(path).set({ ...headers, ...h }).expect(200),
  }
}

function noSidIn(t, app, store) {
  const texts = [...app.texts, ...store.warnings.map((w) => w.message)]
  t.true(app.sids.size > 0)
  for (const sid of app.sids) for (const text of texts) t.false(String(text).includes(sid), text)
}

// The device data Redis holds for this store, by session id.
async function storedDevices(store) {
  const out = {}
  for (const key of await raw.call('KEYS', '*devices')) {
    if (!String(key).includes(store.prefix)) continue
    const fields = await raw.call('HGETALL', key)
    for (let i = 0; i < fields.length; i += 2) out[String(fields[i])] = JSON.parse(String(fields[i + 1]))
  }
  return out
}

const LAPTOP = 'Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0'
const PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) Mobile/15E148'

test('two devices of one user are listed with user agent and IP, the current one marked; one is revoked by handle, another user\'s handle refused', async (t) => {
  const store = makeStore()
  const app = makeApp(store)
  const laptop = browser(app, LAPTOP, '203.0.113.7')
  const phone = browser(app, PHONE, '198.51.100.4')
  const bob = browser(app, 'curl/8.5.0', '192.0.2.1')
  await laptop.post('/login/ada')
  await phone.post('/login/ada')
  await bob.post('/login/bob')

  let devices = (await laptop.get('/devices')).body
  t.is(devices.length, 2)
  const mine = devices.find((d) => d.current)
  const other = devices.find((d) => !d.current)
  t.deepEqual(mine, { handle: mine.handle, current: true, userAgent: LAPTOP, ip: '203.0.113.7', lastIp: '203.0.113.7' })
  t.deepEqual(other, { handle: other.handle, current: false, userAgent: PHONE, ip: '198.51.100.4', lastIp: '198.51.100.4' })
  // The phone sees the same handles, its own marked.
  const fromPhone = (await phone.get('/devices')).body
  t.deepEqual(fromPhone.find((d) => d.current).handle, other.handle)

  // A steady user costs no call into the addon (nor Redis) for devices...
  const calls = store.deviceCalls
  for (let i = 0; i < 3; i++) await laptop.get('/me')
  t.is(store.deviceCalls, calls)
  // ...a new address one write: the login IP stays, the last one moves.
  await phone.get('/me', { 'X-Forwarded-For': '198.51.100.99' })
  t.is(store.deviceCalls, calls + 1)
  devices = (await laptop.get('/devices')).body
  t.like(devices.find((d) => d.handle === other.handle), { ip: '198.51.100.4', lastIp: '198.51.100.99', userAgent: PHONE })

  // Bob's handle, or a made-up one, revokes nothing.
  const bobs = (await bob.get('/devices')).body[0].handle
  t.deepEqual((await laptop.post(`/devices/${bobs}/revoke`)).body, { revoked: false })
  t.deepEqual((await laptop.post('/devices/not-a-handle/revoke')).body, { revoked: false })
  t.is((await bob.get('/me')).body.user, 'bob')

  // The phone's handle logs the phone out, and its device data goes.
  const before = await storedDevices(store)
  t.is(Object.keys(before).length, 3)
  t.deepEqual((await laptop.post(`/devices/${other.handle}/revoke`)).body, { revoked: true })
  t.is((await phone.get('/me')).body.user, null)
  devices = (await laptop.get('/devices')).body
  t.deepEqual(devices.map((d) => d.handle), [mine.handle])
  const after = await storedDevices(store)
  t.is(Object.keys(after).length, 2)
  t.deepEqual(Object.values(after).map((d) => d.userAgent).sort(), [LAPTOP, 'curl/8.5.0'].sort())

  // Handles hold no session id, and no sid was ever sent.
  app.texts.push(bobs)
  noSidIn(t, app, store)

  // clear() removes device data with the sessions.
  await store.clear()
  t.deepEqual(await storedDevices(store), {})
})

test('bind: \'userAgent\' ends a session used with another user agent (a fresh session goes on, a warning names no session id)', async (t) => {
  const store = makeStore()
  const ended = []
  store.on('sessionEnded', (e) => ended.push(e))
  const app = makeApp(store, { bind: 'userAgent' })
  const laptop = browser(app, LAPTOP, '203.0.113.7')
  await laptop.post('/login/ada')
  t.is((await laptop.get('/me')).body.user, 'ada')
  const [sid] = Object.keys(await storedDevices(store))

  // The same cookie from another browser: the session ends; the request
  // goes on with a new, empty session.
  t.is((await laptop.get('/me', { 'User-Agent': PHONE })).body.user, null)
  t.is(await store.get(sid), null)
  t.deepEqual(await storedDevices(store), {})
  t.is(store.warnings.length, 1)
  t.is(store.warnings[0].code, 'WARN_SESSION_BINDING')
  t.false(store.warnings[0].message.includes(sid))
  // Back in the first browser, the session is still over.
  t.is((await laptop.get('/me')).body.user, null)
  // Its end is told once, with the reason, by handle.
  const byBinding = ended.filter((e) => e.handle === store.handleOf(sid))
  t.deepEqual(byBinding.map((e) => e.reason), ['binding'])
  t.is(byBinding[0].userId, 'ada')
  t.false(JSON.stringify(ended).includes(sid))

  // Another process (a middleware with nothing in memory) reads what was
  // recorded once, then binds as well; a matching agent goes through.
  const elsewhere = makeApp(store, { bind: 'userAgent' })
  const same = request(elsewhere)
  const cookie = await loginCookie(app, 'ada')
  const calls = store.deviceCalls
  t.is((await same.get('/me').set({ Cookie: cookie, 'User-Agent': LAPTOP }).expect(200)).body.user, 'ada')
  t.is(store.deviceCalls, calls + 1)
  t.is((await same.get('/me').set({ Cookie: cookie, 'User-Agent': LAPTOP }).expect(200)).body.user, 'ada')
  t.is(store.deviceCalls, calls + 1)
  t.is((await same.get('/me').set({ Cookie: cookie, 'User-Agent': PHONE }).expect(200)).body.user, null)
  t.is(store.warnings.length, 2)
  noSidIn(t, app, store)
  noSidIn(t, elsewhere, store)
})

// A login's session cookie, for requests made without an agent.
async function loginCookie(app, user) {
  const res = await request(app).post(`/login/${user}`).set({ 'User-Agent': LAPTOP }).expect(200)
  return res.headers['set-cookie'].map((c) => c.split(';')[0]).join('; ')
}

test('ip: \'truncated\' keeps /24 of IPv4 and /48 of IPv6; ip: false keeps none; the user agent is capped', async (t) => {
  const store = makeStore()
  const truncated = makeApp(store, { ip: 'truncated' })
  const none = makeApp(store, { ip: false })
  const long = 'A'.repeat(1000)
  await browser(truncated, LAPTOP, '203.0.113.77').post('/login/v4')
  await browser(truncated, LAPTOP, '2001:db8:abcd:12::1').post('/login/v6')
  await browser(none, long, '203.0.113.77').post('/login/none')
  const device = async (user) => (await store.listUserSessions(user))[0].device
  t.deepEqual(await device('v4'), { userAgent: LAPTOP, ip: '203.0.113.0', lastIp: '203.0.113.0' })
  t.deepEqual(await device('v6'), { userAgent: LAPTOP, ip: '2001:db8:abcd::', lastIp: '2001:db8:abcd::' })
  t.deepEqual(await device('none'), { userAgent: 'A'.repeat(256), ip: null, lastIp: null })

  t.is(truncateIp('::ffff:10.1.2.3'), '::ffff:10.1.2.0')
  t.is(truncateIp('2001:db8::1'), '2001:db8:0::')
  t.is(truncateIp('fe80::1%eth0'), 'fe80:0:0::')
  t.is(truncateIp('64:ff9b:1::10.0.0.1'), '64:ff9b:1::')
  t.is(truncateIp('not an address'), null)
  t.throws(() => captureDevice({ ip: 'partial' }), { instanceOf: TypeError })
  t.throws(() => captureDevice({ bind: 'ip' }), { instanceOf: TypeError })
})

test('the background cleanup removes the device data of a session that ended by expiry, and any left without its session', async (t) => {
  // A prefix with a hash tag has one shard, which the cleanup looks at every second.
  const store = makeStore(`{dev-${randomUUID()}}:`)
  const ended = `ends-${randomUUID()}`
  const lives = `lives-${randomUUID()}`
  const cookie = (ms) => ({ originalMaxAge: ms, expires: new Date(Date.now() + ms).toISOString() })
  await store.set(ended, { cookie: cookie(300), userId: 'ada' })
  await store.set(lives, { cookie: cookie(60_000), userId: 'ada' })
  t.true(await store.recordDevice(ended, { userAgent: LAPTOP }))
  t.true(await store.recordDevice(lives, { userAgent: PHONE }))
  // Device data whose session and meta are gone (as a write past its
  // deadline leaves it).
  const [hash] = (await raw.call('KEYS', '*devices')).map(String).filter((k) => k.includes(store.prefix))
  await raw.call('HSET', hash, 'orphan', '{"userAgent":"x"}')
  t.deepEqual(Object.keys(await storedDevices(store)).sort(), [ended, lives, 'orphan'].sort())

  const until = Date.now() + 15_000
  while (Object.keys(await storedDevices(store)).length > 1 && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.deepEqual(Object.keys(await storedDevices(store)), [lives])
  t.deepEqual((await store.listUserSessions('ada')).map((s) => s.device.userAgent), [PHONE])
})
