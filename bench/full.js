'use strict'

// A full Redis, side by side: redis-session-store vs connect-redis 9 (+
// node-redis 6), both through express-session in Express, on the same
// redis-server (maxmemory-policy noeviction), filled to its limit by other
// data after each store's users logged in.
//
//   node bench/full.js                # 200 logged-in requests per store
//   node bench/full.js --requests 1000
//
// Per store it reports: logged-in requests (a GET of an unmodified session:
// express-session's get + touch, resave false) that answered 200 out of N,
// their p50 latency (one at a time, over loopback HTTP, so Express's own cost
// is in it) and the store errors that reached the app's error handler during
// them (express-session answers before the touch does, so a failed touch is
// a 200 plus an error there); whether a logout (destroy) answered 200 and removed the session
// key; what a new login (regenerate + save of a new id) answered; what a save
// of an existing, changed session answered. Both stores with default options,
// opened as bench/stores.js opens them; each app saves explicitly so a
// refused save answers 500 with the error's code and message.
//
// Bounded: a watchdog ends the run after WATCHDOG_MS; redis-server runs under
// the test helper's shell guard, so it dies with this process too.

const http = require('node:http')
const { performance } = require('node:perf_hooks')
const express = require('express')
const session = require('express-session')
const request = require('supertest')
const { STORES, openStore } = require('./stores')
const { RedisServer } = require('../__test__/helpers/redis')
const { RawRedis } = require('../__test__/helpers/raw')
const { fillToLimit, memory } = require('../__test__/helpers/pressure')

const WATCHDOG_MS = 120_000
const KINDS = ['ours', 'connect-redis']

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}

function makeApp(store) {
  const app = express()
  app.locals.errors = []
  app.use(
    session({
      store,
      secret: 'bench full secret',
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 600_000 },
    }),
  )
  const reply = (req, res) => res.json({ id: req.sessionID, user: req.session.userId ?? null })
  const save = (req, res, next) => req.session.save((err) => (err ? next(err) : reply(req, res)))
  app.get('/me', reply)
  app.get('/visit', (req, res, next) => {
    req.session.visits = (req.session.visits || 0) + 1
    save(req, res, next)
  })
  app.post('/login', (req, res, next) =>
    req.session.regenerate((err) => {
      if (err) return next(err)
      req.session.userId = req.query.user
      save(req, res, next)
    }),
  )
  app.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))))
  app.use((err, req, res, next) => {
    app.locals.errors.push(err)
    // express-session sends the headers before a touch answers, so a failed
    // touch still answers 200: it only shows here (counted, not logged).
    if (res.headersSent) return
    res.status(500).json({ code: err.code ?? err.name ?? null, message: String(err.message) })
  })
  return app
}

// "200" or "500 CODE: message" for a response.
function outcome(res) {
  if (res.status === 200) return '200'
  if (res.status === 'cut') return `connection cut (${res.body.message})`
  const { code, message } = res.body || {}
  const text = String(message || '').replace(/\s+/g, ' ')
  return `${res.status} ${code ? `${code}: ` : ''}${text.length > 90 ? `${text.slice(0, 87)}...` : text}`
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : NaN
}

async function main() {
  const requests = arg('requests', 200)
  const server = await RedisServer.start({ args: ['--maxmemory', '16mb', '--maxmemory-policy', 'noeviction'] })
  const watchdog = setTimeout(() => {
    console.error(`[bench] watchdog: still running after ${WATCHDOG_MS} ms, giving up`)
    server.signal('SIGKILL')
    process.exit(2)
  }, WATCHDOG_MS)
  watchdog.unref()
  const raw = await RawRedis.connect(server.url)
  const runs = []
  try {
    // Every store's users log in while Redis has room.
    for (const kind of KINDS) {
      const prefix = `full:${kind}:`
      const opened = await openStore(kind, { url: server.url, prefix })
      const app = makeApp(opened.store)
      const listener = http.createServer(app)
      await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve))
      const user = request.agent(listener)
      const leaving = request.agent(listener)
      for (const agent of [user, leaving]) {
        const res = await agent.post(`/login?user=${kind}-user`)
        if (res.status !== 200) throw new Error(`${kind}: login before filling answered ${outcome(res)}`)
      }
      const leavingSid = (await leaving.get('/me')).body.id
      runs.push({ kind, prefix, opened, app, listener, user, leaving, leavingSid })
    }
    const filled = await fillToLimit(raw)
    const mem = await memory(raw)
    console.log(`redis-server ${server.url}: noeviction, filled with ${filled.keys.length} × 64 KB, used ${mem.used} B, maxmemory ${mem.max} B\n`)

    const rows = []
    for (const run of runs) {
      const latencies = []
      const errors = run.app.locals.errors
      errors.length = 0
      let ok = 0
      const failures = new Map()
      for (let i = 0; i < requests; i++) {
        const started = performance.now()
        const res = await run.user.get('/me').catch((err) => ({ status: 'cut', body: { message: err.message } }))
        latencies.push(performance.now() - started)
        if (res.status === 200 && res.body.user === `${run.kind}-user`) ok++
        else failures.set(outcome(res), (failures.get(outcome(res)) || 0) + 1)
      }
      const errorCodes = new Map()
      for (const e of errors) errorCodes.set(e.code ?? e.name, (errorCodes.get(e.code ?? e.name) || 0) + 1)
      const seen = [...errorCodes].map(([code, n]) => `${n} × ${code}`).join(', ') || 'none'
      const visit = outcome(await run.user.get('/visit'))
      const login = outcome(await request(run.listener).post('/login?user=newcomer'))
      const logoutRes = await run.leaving.post('/logout')
      const gone = (await raw.call('EXISTS', `${run.prefix}${run.leavingSid}`)) === 0
      const logout = `${outcome(logoutRes)}, session key ${gone ? 'gone' : 'still there'}`
      rows.push({ store: STORES[run.kind], ok: `${ok} / ${requests}`, p50: median(latencies).toFixed(3), seen, logout, login, visit, failures })
    }

    console.log('| store | logged-in requests 200 | p50 ms | store errors the app saw during them | logout | new login | save of an existing session |')
    console.log('|---|---|---|---|---|---|---|')
    for (const r of rows) console.log(`| ${r.store} | ${r.ok} | ${r.p50} | ${r.seen} | ${r.logout} | ${r.login} | ${r.visit} |`)
    for (const r of rows) {
      for (const [what, n] of r.failures) console.log(`\n${r.store}: ${n} logged-in requests answered ${what}`)
    }
  } finally {
    for (const run of runs) {
      await new Promise((resolve) => run.listener.close(resolve))
      await run.opened.close().catch(() => {})
    }
    raw.close()
    await server.dispose()
    clearTimeout(watchdog)
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
