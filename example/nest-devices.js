'use strict'

// "Active devices" in a NestJS app (express adapter) keeping its sessions in
// Redis through this store: a user sees every device they are signed in on,
// signs one out, or signs out everywhere (else).
//
//   node example/nest-devices.js      # REDIS_URL, or the embedded engine in a file; PORT (default 3001)
//
//   curl -c a.jar -b a.jar -X POST 'http://127.0.0.1:3001/login?user=ada'   # device A
//   curl -c b.jar -b b.jar -X POST 'http://127.0.0.1:3001/login?user=ada'   # device B
//   curl -b a.jar http://127.0.0.1:3001/devices                             # both, A marked current
//   curl -b a.jar -X DELETE http://127.0.0.1:3001/devices/<id of B>         # B is signed out
//   curl -b a.jar -X POST http://127.0.0.1:3001/logout-everywhere-else      # all but A
//   curl -b a.jar -X POST http://127.0.0.1:3001/logout-everywhere           # all, A included
//
// Plain JS, so the NestJS decorators are applied as function calls (as in
// __test__/http-nest.test.js); in TypeScript they are the usual @Controller(),
// @Get(), @Req(), @Inject(SESSION_STORE) and so on.
require('reflect-metadata')
const { createHash } = require('node:crypto')
const session = require('express-session')
const {
  Module,
  Controller,
  Get,
  Post,
  Delete,
  Req,
  Param,
  HttpCode,
  Inject,
  UnauthorizedException,
  NotFoundException,
} = require('@nestjs/common')
const { NestFactory } = require('@nestjs/core')
const { RedisSessionStore } = require('..')
const { exampleUrl } = require('./redis')

const SESSION_STORE = Symbol('SESSION_STORE')

// Nest awaits what a handler returns; express-session's session methods take callbacks.
const call = (fn) => new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())))

// Devices are named by a hash of their session id, never by the id itself:
// the session id is the bearer secret inside the cookie, and a page (or an
// XSS) reading this list must not be able to take over the other devices.
const deviceId = (sid) => createHash('sha256').update(sid).digest('base64url').slice(0, 22)

function userOf(req) {
  const userId = req.session && req.session.userId
  if (userId == null) throw new UnauthorizedException('log in first: POST /login?user=...')
  return userId
}

class DevicesController {
  constructor(store) {
    this.store = store
  }

  // A fresh session id at login (no session fixation); the store indexes the
  // session under req.session.userId (its default `userId` option).
  async login(req) {
    const user = String(req.query.user || '').trim()
    if (!user) throw new UnauthorizedException('?user= is required')
    await call((cb) => req.session.regenerate(cb))
    req.session.userId = user
    req.session.device = { userAgent: req.get('user-agent') || 'unknown', ip: req.ip, signedInAt: new Date().toISOString() }
    return { user, device: deviceId(req.sessionID) }
  }

  me(req) {
    return { user: userOf(req), device: deviceId(req.sessionID) }
  }

  // The user's live sessions, most recently used first.
  async devices(req) {
    const sessions = await this.store.listUserSessions(userOf(req))
    return sessions.map((s) => ({
      id: deviceId(s.id),
      current: s.id === req.sessionID,
      userAgent: s.session.device ? s.session.device.userAgent : null,
      ip: s.session.device ? s.session.device.ip : null,
      createdAt: s.createdAt,
      lastAccess: s.lastAccess,
      expiresAt: s.expiresAt,
    }))
  }

  // Signs one device out, but only one of this user's own: the id is looked
  // up in the user's list, so another user's device is a 404 like any
  // unknown id.
  async revoke(req, id) {
    const sessions = await this.store.listUserSessions(userOf(req))
    const target = sessions.find((s) => deviceId(s.id) === id)
    if (!target) throw new NotFoundException('no such device')
    if (target.id === req.sessionID) {
      await call((cb) => req.session.destroy(cb)) // this device: also drops req.session
    } else {
      await this.store.destroy(target.id)
    }
    return { revoked: id, current: target.id === req.sessionID }
  }

  // Every session of the user, this one included.
  async logoutEverywhere(req) {
    const destroyed = await this.store.destroyUserSessions(userOf(req))
    // Already gone from Redis; destroying req.session too stops
    // express-session from saving or touching it at the end of this request.
    await call((cb) => req.session.destroy(cb))
    return { destroyed }
  }

  // Every session of the user but this one ("sign out all other devices").
  async logoutEverywhereElse(req) {
    const destroyed = await this.store.destroyUserSessions(userOf(req), { except: req.sessionID })
    return { destroyed }
  }
}

// The decorators, as TypeScript would apply them.
Inject(SESSION_STORE)(DevicesController, undefined, 0)
function route(name, method, path, params = []) {
  const proto = DevicesController.prototype
  Req()(proto, name, 0)
  params.forEach((decorate, i) => decorate(proto, name, i + 1))
  const descriptor = Object.getOwnPropertyDescriptor(proto, name)
  if (method !== Get) HttpCode(200)(proto, name, descriptor)
  method(path)(proto, name, descriptor)
}
route('login', Post, 'login')
route('me', Get, 'me')
route('devices', Get, 'devices')
route('revoke', Delete, 'devices/:id', [Param('id')])
route('logoutEverywhere', Post, 'logout-everywhere')
route('logoutEverywhereElse', Post, 'logout-everywhere-else')
Controller()(DevicesController)

// Builds the app around a store; returns { app, store } (not listening yet).
async function createApp({ url, secret = process.env.SESSION_SECRET || 'change-me', logger = ['error', 'warn'] } = {}) {
  const store = new RedisSessionStore({
    url,
    idleTimeout: 7 * 24 * 3600, // a device unused for a week is signed out
    absoluteTimeout: 30 * 24 * 3600, // and every device signs in again after 30 days
    maxSessionsPerUser: 10, // an 11th sign-in drops the least recently used device
  })
  class AppModule {}
  Module({ controllers: [DevicesController], providers: [{ provide: SESSION_STORE, useValue: store }] })(AppModule)

  const app = await NestFactory.create(AppModule, { logger })
  app.use(
    session({
      store,
      secret,
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 30 * 24 * 3600 * 1000, httpOnly: true, sameSite: 'lax' },
    }),
  )
  return { app, store }
}

async function main() {
  const url = exampleUrl()
  const { app, store } = await createApp({ url })
  const port = Number(process.env.PORT || 3001)
  await app.listen(port, '127.0.0.1')
  console.log(`nest devices example on http://127.0.0.1:${port}  (try: curl -c a.jar -b a.jar -X POST 'http://127.0.0.1:${port}/login?user=ada')`)

  const shutdown = async () => {
    await app.close()
    await store.close()
    process.exit(0)
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

module.exports = { createApp, deviceId }
