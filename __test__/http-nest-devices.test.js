'use strict'

// An "active devices" page in a NestJS app (express adapter) on the per-user
// API of issue #5: list a user's sessions, log out one device or all the
// others, and exclusive login with maxSessionsPerUser: 1.
// Plain JS, so decorators are applied as function calls.
require('reflect-metadata')
const test = require('ava')
const request = require('supertest')
const session = require('express-session')
const { randomUUID } = require('node:crypto')
const { Controller, Get, Post, Delete, Req, Param, HttpCode, NotFoundException, UnauthorizedException } = require('@nestjs/common')
const { Test } = require('@nestjs/testing')
const { RedisSessionStore } = require('..')
const { redisForTests } = require('./helpers/redis')
const { RawRedis } = require('./helpers/raw')

const call = (fn) => new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// The controller reaches the store of its app through the request.
const storeOf = (req) => req.app.locals.sessionStore

function loggedIn(req) {
  if (req.session.userId === undefined) throw new UnauthorizedException()
  return req.session.userId
}

class DevicesController {
  async login(req) {
    await call((cb) => req.session.regenerate(cb))
    req.session.userId = req.query.user
    req.session.device = req.query.device
    return { id: req.sessionID }
  }

  me(req) {
    return { id: req.sessionID, user: req.session.userId ?? null }
  }

  async list(req) {
    const sessions = await storeOf(req).listUserSessions(loggedIn(req))
    return sessions.map((s) => ({
      id: s.id,
      device: s.session.device,
      current: s.id === req.sessionID,
      createdAt: s.createdAt.toISOString(),
      lastAccess: s.lastAccess.toISOString(),
    }))
  }

  async revokeOthers(req) {
    return { destroyed: await storeOf(req).destroyUserSessions(loggedIn(req), { except: req.sessionID }) }
  }

  async revoke(req, id) {
    const store = storeOf(req)
    const mine = await store.listUserSessions(loggedIn(req))
    if (!mine.some((s) => s.id === id)) throw new NotFoundException()
    await store.destroy(id)
    return { ok: true }
  }
}

function route(method, path, name, params = [Req()]) {
  const proto = DevicesController.prototype
  params.forEach((decorate, i) => decorate(proto, name, i))
  if (method !== Get) HttpCode(200)(proto, name, Object.getOwnPropertyDescriptor(proto, name))
  method(path)(proto, name, Object.getOwnPropertyDescriptor(proto, name))
}
route(Post, 'login', 'login')
route(Get, 'me', 'me')
route(Get, 'devices', 'list')
route(Delete, 'devices/others', 'revokeOthers')
route(Delete, 'devices/:id', 'revoke', [Req(), Param('id')])
Controller()(DevicesController)

let redis
let raw
const apps = []
const stores = []

test.before(async () => {
  redis = await redisForTests()
  raw = await RawRedis.connect(redis.url)
})

test.after.always(async () => {
  await Promise.all(apps.map((a) => a.close()))
  await Promise.all(stores.map((s) => s.close()))
  if (raw) raw.close()
  if (redis) await redis.dispose()
})

async function makeApp(options = {}) {
  const store = new RedisSessionStore({ url: redis.url, prefix: `nestdev:${randomUUID()}:`, ...options })
  stores.push(store)
  const moduleRef = await Test.createTestingModule({ controllers: [DevicesController] }).compile()
  const app = moduleRef.createNestApplication({ logger: false })
  app.getHttpAdapter().getInstance().locals.sessionStore = store
  app.use(session({ store, secret: 'nest devices secret', resave: false, saveUninitialized: false, cookie: { maxAge: 60_000 } }))
  await app.init()
  apps.push(app)
  return { app, store, server: app.getHttpServer() }
}

async function login(server, user, device) {
  const agent = request.agent(server)
  const { id } = (await agent.post(`/login?user=${user}&device=${device}`).expect(200)).body
  await sleep(5) // distinct last-access times
  return { agent, id, user }
}

test('nest devices: a user sees every device, most recently used first, with the current one marked', async (t) => {
  const { store, server } = await makeApp()
  const ada = `ada-${randomUUID()}`
  const laptop = await login(server, ada, 'laptop')
  const phone = await login(server, ada, 'phone')
  const tablet = await login(server, ada, 'tablet')
  const bob = await login(server, `bob-${randomUUID()}`, 'desktop')

  // The phone is used again: express-session touches it.
  await phone.agent.get('/me').expect(200, { id: phone.id, user: ada })
  await sleep(5)

  const list = (await laptop.agent.get('/devices').expect(200)).body
  t.deepEqual(list.map((d) => d.device), ['phone', 'tablet', 'laptop'])
  t.deepEqual(list.map((d) => d.id), [phone.id, tablet.id, laptop.id])
  t.deepEqual(list.map((d) => d.current), [false, false, true])
  for (const d of list) t.true(Date.parse(d.lastAccess) >= Date.parse(d.createdAt))
  t.false(list.some((d) => d.id === bob.id))

  // Listing from the laptop was itself a use: the laptop comes first now.
  const again = (await tablet.agent.get('/devices').expect(200)).body
  t.is(again[0].id, laptop.id)
  t.is(again.find((d) => d.current).id, tablet.id)

  const anonymous = request.agent(server)
  await anonymous.get('/devices').expect(401)
  t.is(await store.length(), 4)
})

test('nest devices: "log out everywhere else" ends the other devices and keeps this one', async (t) => {
  const { store, server } = await makeApp()
  const ada = `ada-${randomUUID()}`
  const laptop = await login(server, ada, 'laptop')
  const phone = await login(server, ada, 'phone')
  const tablet = await login(server, ada, 'tablet')
  const bob = await login(server, `bob-${randomUUID()}`, 'desktop')

  await laptop.agent.delete('/devices/others').expect(200, { destroyed: 2 })
  await laptop.agent.get('/me').expect(200, { id: laptop.id, user: ada })
  for (const other of [phone, tablet]) {
    const me = (await other.agent.get('/me').expect(200)).body
    t.is(me.user, null)
    t.not(me.id, other.id)
    t.is(await raw.call('EXISTS', `${store.prefix}${other.id}`), 0)
  }
  t.deepEqual((await laptop.agent.get('/devices').expect(200)).body.map((d) => d.id), [laptop.id])
  await bob.agent.get('/me').expect(200, { id: bob.id, user: bob.user })
  t.is(await store.length(), 2)
})

test('nest devices: a user can log out one of their devices, but not another user\'s', async (t) => {
  const { server } = await makeApp()
  const ada = `ada-${randomUUID()}`
  const laptop = await login(server, ada, 'laptop')
  const phone = await login(server, ada, 'phone')
  const bob = await login(server, `bob-${randomUUID()}`, 'desktop')

  await bob.agent.delete(`/devices/${encodeURIComponent(phone.id)}`).expect(404)
  await phone.agent.get('/me').expect(200, { id: phone.id, user: ada })

  await laptop.agent.delete(`/devices/${encodeURIComponent(phone.id)}`).expect(200, { ok: true })
  t.is((await phone.agent.get('/me').expect(200)).body.user, null)
  t.deepEqual((await laptop.agent.get('/devices').expect(200)).body.map((d) => d.device), ['laptop'])
  await bob.agent.get('/me').expect(200, { id: bob.id, user: bob.user })
})

test('nest devices: with maxSessionsPerUser: 1 the newest login wins', async (t) => {
  const { store, server } = await makeApp({ maxSessionsPerUser: 1 })
  const ada = `ada-${randomUUID()}`
  const laptop = await login(server, ada, 'laptop')
  await laptop.agent.get('/me').expect(200, { id: laptop.id, user: ada })
  const phone = await login(server, ada, 'phone')

  t.is((await laptop.agent.get('/me').expect(200)).body.user, null)
  await phone.agent.get('/me').expect(200, { id: phone.id, user: ada })
  t.deepEqual((await phone.agent.get('/devices').expect(200)).body.map((d) => d.device), ['phone'])
  t.is(await raw.call('EXISTS', `${store.prefix}${laptop.id}`), 0)

  // Logging back in on the laptop pushes the phone out in turn.
  const laptop2 = await login(server, ada, 'laptop')
  t.is((await phone.agent.get('/me').expect(200)).body.user, null)
  t.deepEqual((await laptop2.agent.get('/devices').expect(200)).body.map((d) => d.id), [laptop2.id])
  const { sessions, users, active } = await store.stats()
  t.deepEqual({ sessions, users, active }, { sessions: 1, users: 1, active: 1 })
})
