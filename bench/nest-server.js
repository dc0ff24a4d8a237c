'use strict'

// Child process: the HTTP benchmark's two routes (/login, /) in a Nest app
// (Express adapter), with sessions either from redis-session-store/nestjs's
// SessionModule ("module") or wired by hand with app.use(session(...))
// ("hand"), on the same store options. Speaks http-server.js's protocol, so
// the same loader drives it. Plain JS: decorators applied as calls.
require('reflect-metadata')
const http = require('node:http')
const session = require('express-session')
const { Controller, Get, Module, Query, Req, Res } = require('@nestjs/common')
const { NestFactory } = require('@nestjs/core')
const { RedisSessionStore } = require('..')
const { SessionModule } = require('../nestjs')
const { serve } = require('./ipc')
const { meter } = require('./meter')

const mode = process.argv[2]
const url = process.argv[3]
const SESSION = { secret: 'benchmark secret', resave: false, saveUninitialized: false, cookie: { maxAge: 86400e3, httpOnly: true } }
let app = null
let store = null
const requests = meter()

class BenchController {
  login(req, u) {
    requests.served()
    const n = Number(u) || 0
    req.session.user = { id: 1000 + n, name: `user${n}`, email: `user${n}@example.com`, roles: ['member'] }
    return 'ok'
  }

  home(req, res) {
    requests.served()
    const user = req.session.user
    if (!user) return res.status(401).send('not logged in')
    res.send(`hello ${user.name}`)
  }
}
const method = (name) => Object.getOwnPropertyDescriptor(BenchController.prototype, name)
Controller()(BenchController)
Req()(BenchController.prototype, 'login', 0)
Query('u')(BenchController.prototype, 'login', 1)
Get('login')(BenchController.prototype, 'login', method('login'))
Req()(BenchController.prototype, 'home', 0)
Res()(BenchController.prototype, 'home', 1)
Get()(BenchController.prototype, 'home', method('home'))

function appModule(prefix) {
  class BenchModule {}
  const imports = mode === 'module' ? [SessionModule.forRoot({ store: { url, prefix }, session: SESSION, devices: false })] : []
  Module({ imports, controllers: [BenchController] })(BenchModule)
  return BenchModule
}

serve({
  async open() {
    const prefix = `bench:nest:${mode}:${process.pid}:`
    app = await NestFactory.create(appModule(prefix), { logger: false })
    if (mode === 'hand') {
      store = new RedisSessionStore({ url, prefix })
      app.use(session({ ...SESSION, store }))
    }
    await app.listen(0, '127.0.0.1')
    const server = app.getHttpServer()
    if (!(server instanceof http.Server)) throw new Error('expected an HTTP server')
    return { port: server.address().port, pid: process.pid }
  },

  mark: requests.mark,
  report: requests.report,

  async close() {
    if (app) await app.close()
    if (store) await store.close()
    return null
  },
})
