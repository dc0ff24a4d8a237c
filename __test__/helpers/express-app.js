'use strict'

// The Express app the HTTP tests share (conformance/express.js on every
// backend, http-express.test.js with Redis's view): a visit counter, login
// with regenerate (the user as `userId`, the store's default owner),
// logout, log out elsewhere, and errors as JSON with their code.
const session = require('express-session')

const MAX_AGE = 60_000

// Records which store methods express-session called, in order.
function recordCalls(store) {
  store.calls = []
  for (const name of ['get', 'set', 'touch', 'destroy']) {
    const original = store[name]
    store[name] = function (...args) {
      store.calls.push(name)
      return original.apply(this, args)
    }
  }
  return store
}

// `routes(app, reply)` adds a test's own routes before the error handler.
function makeApp(express, store, options = {}, routes = () => {}) {
  const app = express()
  app.use(session({ store, secret: 'test app secret', resave: false, saveUninitialized: false, cookie: { maxAge: MAX_AGE }, ...options }))
  const reply = (req, res) => res.json({ id: req.sessionID, user: req.session.userId ?? null, visits: req.session.visits ?? 0 })
  app.get('/me', reply)
  app.get('/visit', (req, res) => {
    req.session.visits = (req.session.visits || 0) + 1
    reply(req, res)
  })
  // A new id at login, as OWASP asks.
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err)
      req.session.userId = req.query.user
      reply(req, res)
    })
  })
  app.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))))
  app.post('/logout-others', (req, res, next) => {
    store.destroyUserSessions(req.session.userId, { except: req.sessionID }).then((destroyed) => res.json({ destroyed }), next)
  })
  routes(app, reply)
  app.use((err, req, res, next) => res.status(500).json({ code: err.code ?? null, message: err.message }))
  return app
}

const sessionCookie = (res) => (res.headers['set-cookie'] || []).find((c) => c.startsWith('connect.sid='))

// The cookie's Expires attribute, in epoch ms (whole seconds).
function cookieExpires(res) {
  const m = /;\s*Expires=([^;]+)/i.exec(sessionCookie(res))
  return m ? Date.parse(m[1]) : NaN
}

const FRAMEWORKS = [
  ['express 4', require('express4')],
  ['express 5', require('express')],
]

module.exports = { MAX_AGE, FRAMEWORKS, recordCalls, makeApp, sessionCookie, cookieExpires }
