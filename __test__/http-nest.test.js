'use strict'

// A NestJS app (express adapter) using express-session with the store.
// Plain JS, so decorators are applied as function calls.
require('reflect-metadata')
const test = require('ava')
const request = require('supertest')
const session = require('express-session')
const { Controller, Get, Post, Req, HttpCode } = require('@nestjs/common')
const { Test } = require('@nestjs/testing')
const { storeSuite } = require('./helpers/suite')

// Promisified, since Nest awaits what a handler returns.
const call = (fn) => new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())))

class AuthController {
  async login(req) {
    await call((cb) => req.session.regenerate(cb))
    req.session.user = req.query.user
    return { id: req.sessionID, user: req.session.user }
  }

  me(req) {
    return { id: req.sessionID, user: req.session.user ?? null }
  }

  async logout(req) {
    await call((cb) => req.session.destroy(cb))
    return { ok: true }
  }
}

function route(method, path, name) {
  const proto = AuthController.prototype
  Req()(proto, name, 0)
  if (method === Post) HttpCode(200)(proto, name, Object.getOwnPropertyDescriptor(proto, name))
  method(path)(proto, name, Object.getOwnPropertyDescriptor(proto, name))
}
route(Post, 'login', 'login')
route(Get, 'me', 'me')
route(Post, 'logout', 'logout')
Controller('auth')(AuthController)

const suite = storeSuite(test, 'nest')
const { raw } = suite
let store
let app

test.before(async () => {
  await suite.ready
  store = suite.makeStore()
  const moduleRef = await Test.createTestingModule({ controllers: [AuthController] }).compile()
  app = moduleRef.createNestApplication({ logger: false })
  app.use(session({ store, secret: 'nest test secret', resave: false, saveUninitialized: false, cookie: { maxAge: 60_000 } }))
  await app.init()
})

test.after.always(async () => {
  if (app) await app.close()
})

const key = (sid) => `${store.prefix}${sid}`

test('nest: login, persist, logout', async (t) => {
  const agent = request.agent(app.getHttpServer())

  const anon = await agent.get('/auth/me').expect(200)
  t.is(anon.body.user, null)
  t.is(await raw.call('EXISTS', key(anon.body.id)), 0)

  const login = await agent.post('/auth/login?user=grace').expect(200)
  const { id } = login.body
  t.is(login.body.user, 'grace')
  t.not(id, anon.body.id)
  t.is(JSON.parse(await raw.call('GET', key(id))).user, 'grace')

  await agent.get('/auth/me').expect(200, { id, user: 'grace' })
  await agent.get('/auth/me').expect(200, { id, user: 'grace' })

  await agent.post('/auth/logout').expect(200, { ok: true })
  t.is(await raw.call('EXISTS', key(id)), 0)

  const after = await agent.get('/auth/me').expect(200)
  t.is(after.body.user, null)
  t.not(after.body.id, id)
  // An untouched session is not saved (saveUninitialized: false).
  t.is(await raw.call('EXISTS', key(after.body.id)), 0)
})

test('nest: sessions of two clients stay apart', async (t) => {
  const a = request.agent(app.getHttpServer())
  const b = request.agent(app.getHttpServer())
  const idA = (await a.post('/auth/login?user=a').expect(200)).body.id
  const idB = (await b.post('/auth/login?user=b').expect(200)).body.id
  t.not(idA, idB)
  await a.get('/auth/me').expect(200, { id: idA, user: 'a' })
  await b.get('/auth/me').expect(200, { id: idB, user: 'b' })
  await a.post('/auth/logout').expect(200)
  await b.get('/auth/me').expect(200, { id: idB, user: 'b' })
  t.is(await raw.call('EXISTS', key(idA)), 0)
  t.is(await raw.call('EXISTS', key(idB)), 1)
})
