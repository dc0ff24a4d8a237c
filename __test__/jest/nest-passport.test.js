'use strict'

// Passport sessions in a Nest app with the module: PassportModule with
// { session: true }, a local strategy and a PassportSerializer. The owner
// is passport's user (the store's default userId), so the guard, devices
// and "log out everywhere" work with no code of the app's. Plain JS, so the
// decorators are applied as function calls.
require('reflect-metadata')
const request = require('supertest')
const { Controller, Get, Post, Req, HttpCode, Injectable, Module, UseGuards, UnauthorizedException } = require('@nestjs/common')
const { APP_GUARD } = require('@nestjs/core')
const { PassportModule, PassportStrategy, PassportSerializer, AuthGuard } = require('@nestjs/passport')
const { Strategy } = require('passport-local')
const { Test } = require('@nestjs/testing')
const { SessionModule, SessionsService, SessionGuard, Public } = require('../../nestjs')

const USERS = { ada: { id: 'u-1', password: 'lovelace' }, alan: { id: 'u-2', password: 'turing' } }

class LocalStrategy extends PassportStrategy(Strategy) {
  validate(username, password) {
    const user = USERS[username]
    if (!user || user.password !== password) throw new UnauthorizedException('wrong username or password')
    return { id: user.id, name: username }
  }
}
Injectable()(LocalStrategy)

// Passport keeps the id in the session (session.passport.user).
class Serializer extends PassportSerializer {
  serializeUser(user, done) {
    done(null, user.id)
  }

  deserializeUser(id, done) {
    done(null, { id })
  }
}
Injectable()(Serializer)

// Signs the user in with passport (req.logIn: a new session id).
class LoginGuard extends AuthGuard('local') {
  async canActivate(context) {
    const ok = await super.canActivate(context)
    await super.logIn(context.switchToHttp().getRequest())
    return ok
  }
}
Injectable()(LoginGuard)

class AccountController {
  constructor(sessions) {
    this.sessions = sessions
  }

  login(req) {
    return { user: req.user.id }
  }

  devices(req) {
    return this.sessions.devices(req)
  }

  everywhere(req) {
    return this.sessions.revokeAll(req.session.passport.user).then((revoked) => ({ revoked }))
  }
}
const describeMethod = (name) => Object.getOwnPropertyDescriptor(AccountController.prototype, name)
Controller()(AccountController)
Injectable()(AccountController)
Reflect.defineMetadata('design:paramtypes', [SessionsService], AccountController)
for (const [name, verb, path] of [['login', Post, 'login'], ['devices', Get, 'devices'], ['everywhere', Post, 'everywhere']]) {
  Req()(AccountController.prototype, name, 0)
  if (verb === Post) HttpCode(200)(AccountController.prototype, name, describeMethod(name))
  verb(path)(AccountController.prototype, name, describeMethod(name))
}
Public()(AccountController.prototype, 'login', describeMethod('login'))
UseGuards(LoginGuard)(AccountController.prototype, 'login', describeMethod('login'))

class AppModule {}
Module({
  imports: [
    PassportModule.register({ session: true }),
    SessionModule.forRoot({ store: { url: 'memory://' }, session: { secret: 'passport test' } }),
  ],
  controllers: [AccountController],
  providers: [LocalStrategy, Serializer, { provide: APP_GUARD, useClass: SessionGuard }],
})(AppModule)

let app

beforeAll(async () => {
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile()
  app = moduleRef.createNestApplication({ logger: false })
  await app.init()
})

afterAll(async () => {
  await app?.close()
})

test('a passport login is the owner: the guard lets it in, devices list it, log out everywhere ends it', async () => {
  const laptop = request.agent(app.getHttpServer())
  const phone = request.agent(app.getHttpServer())
  await laptop.get('/devices').expect(401)
  await laptop.post('/login').send({ username: 'ada', password: 'wrong' }).expect(401)
  await laptop.post('/login').send({ username: 'ada', password: 'lovelace' }).expect(200, { user: 'u-1' })
  await phone.post('/login').send({ username: 'ada', password: 'lovelace' }).set('User-Agent', 'phone').expect(200)
  const { body: devices } = await laptop.get('/devices').expect(200)
  expect(devices).toHaveLength(2)
  expect(devices.filter((d) => d.current)).toHaveLength(1)
  expect(devices.map((d) => d.device.userAgent)).toContain('phone')
  await phone.post('/everywhere').expect(200, { revoked: 2 })
  await laptop.get('/devices').expect(401)
  await phone.get('/devices').expect(401)
})
