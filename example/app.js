'use strict'

// A small Express app keeping its sessions through this store.
// Uses REDIS_URL when set; otherwise the embedded engine in a file (no Redis needed).
const express = require('express')
const session = require('express-session')
const { RedisSessionStore } = require('..')
const { exampleUrl } = require('./redis')

async function main() {
  const url = exampleUrl()

  const store = new RedisSessionStore({ url })
  const app = express()
  app.use(
    session({
      store,
      secret: process.env.SESSION_SECRET || 'change-me',
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 30 * 60 * 1000, httpOnly: true, sameSite: 'lax' },
    }),
  )

  app.get('/', (req, res) => {
    if (!req.session.user) return res.send('Not logged in. Visit /login?user=ada\n')
    req.session.views = (req.session.views || 0) + 1
    res.send(`Hello ${req.session.user}, views: ${req.session.views}, expires: ${req.session.cookie.expires.toISOString()}\n`)
  })

  app.get('/login', (req, res, next) => {
    const user = String(req.query.user || 'ada')
    // A new id on login prevents session fixation.
    req.session.regenerate((err) => {
      if (err) return next(err)
      req.session.user = user
      res.send(`Logged in as ${user}. Visit / or /logout\n`)
    })
  })

  app.get('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.send('Logged out\n')))
  })

  app.get('/sessions', async (req, res, next) => {
    try {
      res.json({ count: await store.length() })
    } catch (err) {
      next(err)
    }
  })

  const port = Number(process.env.PORT || 3000)
  const http = app.listen(port, '127.0.0.1', () => {
    console.log(`example app on http://127.0.0.1:${port}  (try: curl -c jar -b jar 'http://127.0.0.1:${port}/login?user=ada')`)
  })

  const shutdown = async () => {
    http.close()
    await store.close()
    process.exit(0)
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
