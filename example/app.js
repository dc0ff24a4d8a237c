'use strict'

// A small web app on this store: sign in (with "remember me"), see and end
// your sessions on other devices, and an admin page with the store's
// numbers. Server-rendered pages (views.js), no front-end build.
//
//   npm run example                      embedded engine, sessions in .tmp/ (kept across restarts)
//   REDIS_URL=redis://127.0.0.1:6379 npm run example
//
// Environment: PORT (3000; 0 picks a free one), HOST (127.0.0.1),
// SESSION_SECRET (required with NODE_ENV=production), TRUST_PROXY (Express's
// "trust proxy", e.g. 1 behind one TLS-terminating proxy: the cookie is then
// Secure and req.ip the client's).
const express = require('express')
const session = require('express-session')
const { csrfSync } = require('csrf-sync')
const { scryptSync, randomBytes, timingSafeEqual } = require('node:crypto')
const { RedisSessionStore, captureDevice } = require('..')
const { exampleUrl } = require('./redis')
const views = require('./views')

const DAY = 86400
// Store failures that a retry can fix (Redis down, slow or full).
const STORE_RETRYABLE = new Set(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT', 'ERR_REDIS_FULL', 'ERR_STORE_CLOSED'])
const ACTIVE_WITHIN = 5 * 60
const ENDED_WITHIN = 60 * 60

// Demo accounts. A real app reads password hashes from its database.
const USERS = new Map(
  [
    { name: 'ada', password: 'lovelace', admin: true },
    { name: 'grace', password: 'hopper', admin: false },
  ].map(({ name, password, admin }) => {
    const salt = randomBytes(16)
    return [name, { name, admin, salt, hash: scryptSync(password, salt, 32) }]
  }),
)

// The same work for a known and an unknown name, so timing tells nothing.
const NOBODY = { salt: randomBytes(16), hash: randomBytes(32) }
function checkPassword(name, password) {
  const user = USERS.get(name)
  const { salt, hash } = user || NOBODY
  const ok = timingSafeEqual(scryptSync(String(password), salt, 32), hash)
  return ok && user ? user : null
}

function secret() {
  if (process.env.SESSION_SECRET) return process.env.SESSION_SECRET
  if (process.env.NODE_ENV === 'production') throw new Error('SESSION_SECRET is not set: set it to a long random string')
  return 'demo secret, set SESSION_SECRET in production'
}

// Where the store's data lives, without any password the URL holds.
function describeBackend(url) {
  const { protocol, host, pathname } = new URL(url)
  if (protocol === 'memory:') return 'embedded engine, in memory'
  if (protocol === 'file:') return `embedded engine, file ${pathname}`
  return `Redis at ${host}`
}

function createApp(store, url) {
  const app = express()
  app.disable('x-powered-by')
  if (process.env.TRUST_PROXY) app.set('trust proxy', /^\d+$/.test(process.env.TRUST_PROXY) ? Number(process.env.TRUST_PROXY) : process.env.TRUST_PROXY)

  app.use((req, res, next) => {
    res.set({
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    })
    next()
  })

  app.use(
    session({
      store,
      secret: secret(),
      name: 'sid', // not connect.sid: says less about the stack
      resave: false,
      saveUninitialized: false,
      rolling: true, // a remembered cookie's 30 days restart at each visit (the store still ends it 30 days after sign-in)
      cookie: {
        httpOnly: true,
        sameSite: 'lax',
        secure: 'auto', // Secure over TLS (with TRUST_PROXY, as the proxy says)
        path: '/',
      },
    }),
  )
  app.use(captureDevice())
  app.use(express.urlencoded({ extended: false, limit: '4kb' }))

  // Synchronizer tokens: one per session, kept in it, sent back by every form.
  const { generateToken, csrfSynchronisedProtection } = csrfSync({
    getTokenFromRequest: (req) => req.body?._csrf,
  })
  app.use(csrfSynchronisedProtection)

  const userOf = (req) => USERS.get(req.session.userId) || null
  const page = (req, res, view, data = {}, status = 200) => {
    const flash = req.session.flash
    delete req.session.flash
    res.status(status).send(views[view]({ user: userOf(req), csrfToken: generateToken(req), flash, now: Date.now(), ...data }).text)
  }
  const signedIn = (req, res, next) => (userOf(req) ? next() : res.redirect(303, '/login'))

  app.get('/login', (req, res) => (userOf(req) ? res.redirect(303, '/') : page(req, res, 'loginPage')))

  app.post('/login', (req, res, next) => {
    const { username = '', password = '', remember } = req.body
    const user = checkPassword(String(username), password)
    if (!user) return page(req, res, 'loginPage', { error: 'Wrong user name or password.', username }, 401)
    // A new session id at sign-in: an id planted before it is worth nothing.
    req.session.regenerate((err) => {
      if (err) return next(err)
      req.session.userId = user.name // the store's default owner field: listUserSessions etc.
      req.session.rememberMe = remember === '1'
      req.session.signedInAt = Date.now()
      // A remembered session outlives the browser; the other one ends with it.
      req.session.cookie.maxAge = req.session.rememberMe ? 30 * DAY * 1000 : null
      res.redirect(303, '/')
    })
  })

  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => {
      if (err) return next(err)
      res.clearCookie('sid', { path: '/' })
      res.redirect(303, '/login')
    })
  })

  app.get('/', signedIn, async (req, res) => {
    const current = store.handleOf(req.sessionID)
    const mine = (await store.listUserSessions(req.session.userId)).find((s) => s.handle === current)
    page(req, res, 'homePage', {
      rememberMe: req.session.rememberMe,
      signedInAt: new Date(req.session.signedInAt),
      expiresAt: mine?.expiresAt ?? null,
    })
  })

  app.get('/devices', signedIn, async (req, res) => {
    const current = store.handleOf(req.sessionID)
    const sessions = await store.listUserSessions(req.session.userId)
    // Handles only: a session id is a bearer secret and never goes into a page.
    const devices = sessions.map(({ handle, device, session: s, createdAt, lastAccess }) => ({
      handle,
      current: handle === current,
      rememberMe: Boolean(s.rememberMe),
      userAgent: device?.userAgent ?? null,
      ip: device?.ip ?? null,
      lastIp: device?.lastIp ?? null,
      createdAt,
      lastAccess,
    }))
    page(req, res, 'devicesPage', { devices })
  })

  app.post('/devices/revoke', signedIn, async (req, res) => {
    const handle = String(req.body.handle || '')
    if (handle === store.handleOf(req.sessionID)) {
      req.session.flash = 'That is this device: use "Sign out" instead.'
    } else {
      const revoked = await store.revokeUserSession(req.session.userId, handle)
      req.session.flash = revoked ? 'That device is signed out.' : 'That device was already signed out.'
    }
    res.redirect(303, '/devices')
  })

  app.post('/devices/revoke-others', signedIn, async (req, res) => {
    const n = await store.destroyUserSessions(req.session.userId, { except: req.sessionID })
    req.session.flash = `Signed out ${n} other ${n === 1 ? 'device' : 'devices'}.`
    res.redirect(303, '/devices')
  })

  app.get('/admin', signedIn, async (req, res) => {
    if (!userOf(req).admin) return page(req, res, 'errorPage', { status: 403, message: 'Admins only.' }, 403)
    const stats = await store.stats({ activeWithin: ACTIVE_WITHIN, endedWithin: ENDED_WITHIN })
    page(req, res, 'adminPage', { stats, backend: describeBackend(url), activeWithin: ACTIVE_WITHIN, endedWithin: ENDED_WITHIN })
  })

  app.use((req, res) => page(req, res, 'errorPage', { status: 404, message: 'No such page.' }, 404))

  // A form without its token (or with a stale one) is refused; a store that
  // cannot answer now is a 503 to retry; errors are logged by code and
  // message only (the store's never carry a session id).
  app.use((err, req, res, next) => {
    if (res.headersSent) return next(err)
    let status = 500
    let message = 'Something went wrong.'
    if (err.code === 'EBADCSRFTOKEN') {
      status = 403
      message = 'This form has expired or did not come from this site. Go back, reload the page and try again.'
    } else if (STORE_RETRYABLE.has(err.code)) {
      status = 503
      message = 'Sessions are unavailable for a moment; try again shortly.'
      res.set('Retry-After', '5')
    }
    if (status !== 403) console.error(`request failed: ${err.code || ''} ${err.message}`)
    res.status(status).send(views.errorPage({ status, message, user: null, csrfToken: '' }).text)
  })
  return app
}

async function main() {
  const url = exampleUrl()
  const store = new RedisSessionStore({
    url,
    // Remember me: 30 days from sign-in however active; otherwise 30 idle
    // minutes and a day at most. The store enforces both, whatever the cookie says.
    idleTimeout: (s) => (s.rememberMe ? undefined : 30 * 60),
    absoluteTimeout: (s) => (s.rememberMe ? 30 * DAY : DAY),
  })
  store.on('warning', (w) => console.warn(`store warning ${w.code}: ${w.message}`))

  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST || '127.0.0.1'
  const server = createApp(store, url).listen(port, host, () => {
    console.log(`demo app on http://${host}:${server.address().port}  (sign in as ada / lovelace)`)
  })

  const shutdown = async () => {
    server.close()
    server.closeAllConnections()
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
