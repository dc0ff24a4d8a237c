'use strict'

// Child process: an Express 5 app with express-session (resave:false,
// saveUninitialized:false) on one store. /login puts a user in the session,
// / reads it (401 without one). Counts requests and CPU between "mark" and
// "report" so run.js can charge server CPU to each request.
const http = require('node:http')
const express = require('express')
const session = require('express-session')
const { serve } = require('./ipc')
const { openStore } = require('./stores')
const { meter } = require('./meter')

const kind = process.argv[2]
const url = process.argv[3]
let opened = null
let server = null
const requests = meter()

serve({
  async open() {
    opened = await openStore(kind, { url, prefix: `bench:http:${kind}:${process.pid}:` })
    const app = express()
    app.use(
      session({
        secret: 'benchmark secret',
        resave: false,
        saveUninitialized: false,
        store: opened.store,
        cookie: { maxAge: 86400e3, httpOnly: true },
      }),
    )
    app.use((req, res, next) => {
      requests.served()
      next()
    })
    app.get('/login', (req, res) => {
      const n = Number(req.query.u) || 0
      req.session.user = { id: 1000 + n, name: `user${n}`, email: `user${n}@example.com`, roles: ['member'] }
      res.send('ok')
    })
    app.get('/', (req, res) => {
      const user = req.session.user
      if (!user) return res.status(401).send('not logged in')
      res.send(`hello ${user.name}`)
    })
    app.use((err, req, res, next) => {
      res.status(500).send(String(err && err.message))
    })
    server = http.createServer(app)
    await new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', resolve)
    })
    return { port: server.address().port, pid: process.pid }
  },

  mark: requests.mark,
  report: requests.report,

  async close() {
    if (server) {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
    if (opened) await opened.close()
    return null
  },
})
