'use strict'

// Real faults: a proxy that stalls or refuses, and a redis-server that is
// killed, stopped and restarted. Every call must settle; none may hang.
const test = require('ava')
const path = require('node:path')
const { promisify } = require('node:util')
const { monitorEventLoopDelay } = require('node:perf_hooks')
const execFileAsync = promisify(require('node:child_process').execFile)
const { randomUUID, randomBytes } = require('node:crypto')
const express = require('express')
const session = require('express-session')
const request = require('supertest')
const { RedisSessionStore } = require('..')
const { RedisServer, freePort } = require('./helpers/redis')
const { FaultProxy } = require('./helpers/proxy')
const { RawRedis } = require('./helpers/raw')

const TIMEOUT = 400

// The README's promise: every call settles within commandTimeout. A call is
// timed here from just before it is made to its promise settling, which also
// counts what the store cannot shorten: the batch is sent at the end of its
// tick, and the outcome crosses back from a runtime thread as a callback
// queued on Node's event loop, so it waits for the loop to be free. Under
// `npm test` several ava workers share two cores and a loop can stall for
// tens of milliseconds. So the slack is the longest event-loop delay seen
// during the test (measured, not guessed) plus 50 ms for the thread hops and
// timer wake-ups (about 1 ms each; 50 ms is far above them and far below a
// second timeout). The bound comes to about 460-520 ms here for a 400 ms
// timeout; the old one (3.5x the timeout) let a store that kept retrying
// for twice its timeout pass.
const HOPS_MS = 50

// Starts measuring event-loop delay; `bound()` is the bound for one call.
function callBound(t, timeout = TIMEOUT) {
  const lag = monitorEventLoopDelay({ resolution: 10 })
  lag.enable()
  t.teardown(() => lag.disable())
  return () => timeout + HOPS_MS + lag.max / 1e6
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const sess = (extra = {}) => ({ cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) }, ...extra })

async function rig(t, options = {}) {
  const server = await RedisServer.start()
  const proxy = await FaultProxy.start(server.port)
  const store = new RedisSessionStore({ url: proxy.url, prefix: `f:${randomUUID()}:`, commandTimeout: TIMEOUT, ...options })
  t.teardown(async () => {
    await store.close()
    await proxy.close()
    await server.dispose()
  })
  return { server, proxy, store }
}

// Issues `n` mixed calls at once and reports how each settled and how long
// it took, from just before it was made.
async function burst(store, n) {
  const calls = []
  for (let i = 0; i < n; i++) {
    const id = `b${i % 20}`
    const started = Date.now()
    const p = i % 3 === 0 ? store.set(id, sess({ i })) : i % 3 === 1 ? store.get(id) : store.touch(id, sess())
    calls.push(p.then(() => ({ ok: true, ms: Date.now() - started }), (err) => ({ ok: false, code: err.code, ms: Date.now() - started })))
  }
  return Promise.all(calls)
}

// Every call settled within `bound` ms of being made.
function allWithin(t, results, bound) {
  const slowest = Math.max(...results.map((r) => r.ms))
  t.log(`slowest ${slowest} ms, bound ${bound.toFixed(0)} ms`)
  t.true(slowest <= bound, `a call settled after ${slowest} ms, bound ${bound.toFixed(0)} ms`)
}

async function until(check, ms, what) {
  const end = Date.now() + ms
  for (;;) {
    try {
      if (await check()) return Date.now()
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`${what} did not happen within ${ms} ms`)
    await sleep(20)
  }
}

test.serial('refused connections: every call fails fast with a clear error, then recovers', async (t) => {
  const { proxy, store } = await rig(t)
  const bound = callBound(t)
  await store.set('keep', sess({ v: 1 }))
  await proxy.refuse()
  const results = await burst(store, 300)
  t.true(results.every((r) => !r.ok && ['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT'].includes(r.code)), JSON.stringify(results.slice(0, 3)))
  allWithin(t, results, bound())
  await proxy.heal()
  const healed = Date.now()
  const back = await until(async () => (await store.get('keep')).v === 1, 5000, 'recovery')
  t.true(back - healed < 1000 + TIMEOUT, `recovered after ${back - healed} ms`)
})

test.serial('a stalled connection (nothing gets through): calls time out within the bound, the session survives', async (t) => {
  const { proxy, store } = await rig(t)
  const bound = callBound(t)
  await store.set('keep', sess({ v: 2 }))
  proxy.stall()
  const results = await burst(store, 300)
  t.true(results.every((r) => !r.ok && r.code === 'ERR_REDIS_TIMEOUT'), JSON.stringify(results.slice(0, 3)))
  allWithin(t, results, bound())
  const err = await t.throwsAsync(store.get('keep'))
  t.regex(err.message, new RegExp(`within ${TIMEOUT} ms`))
  await proxy.heal()
  await until(async () => (await store.get('keep')).v === 2, 5000, 'recovery')
  t.pass()
})

for (const singleConnection of [false, true]) {
  test.serial(`a black-holed connection (dead for good, never reset): after a timed-out call over many sessions the next one opens a new connection (singleConnection: ${singleConnection})`, async (t) => {
    const { proxy, store } = await rig(t, { singleConnection })
    await store.set('keep', sess({ userId: 'ada' }))
    t.is(await store.length(), 1)
    // Only calls over many sessions from here on, as an admin process makes.
    proxy.blackhole()
    const err = await t.throwsAsync(store.length())
    t.is(err.code, 'ERR_REDIS_TIMEOUT')
    t.is(await store.length(), 1)
    t.is((await store.listUserSessions('ada')).length, 1)
  })
}

test.serial('a slow connection (answers arrive, late): a call over many sessions that times out keeps its connection', async (t) => {
  const { server, proxy, store } = await rig(t, { commandTimeout: 900 })
  const raw = await RawRedis.connect(server.url)
  t.teardown(() => raw.close())
  // The reader's connection: the one whose last command is `cmd`. The
  // writer's connection also ends each cleanup tick (once a second) with an
  // EXISTS; the reader's, opened by the first call over many sessions, is
  // the newer of two.
  const reader = async (cmd) => {
    const clients = await raw.clients()
    const mine = clients.filter((c) => c.cmd === cmd).sort((a, b) => b.id - a.id)
    t.true(mine.length >= 1 && (mine.length === 1 || cmd === 'exists'), `connections that ran ${cmd}: ${JSON.stringify(clients)}`)
    return mine[0]?.id
  }
  await store.set('keep', sess({ userId: 'ada' }))
  t.is(await store.length(), 1)
  const before = await reader('exists')
  // 250 ms each way: all() takes two round trips one after the other (the
  // shards, then the session's value), at least 1,000 ms, past the 900 ms
  // bound; the first is answered at about 500 ms, so the connection is alive.
  proxy.delay(250)
  const err = await t.throwsAsync(store.all())
  t.is(err.code, 'ERR_REDIS_TIMEOUT')
  await sleep(600) // what was in flight arrives
  proxy.delay(0)
  t.deepEqual((await store.all()).map((s) => s.id), ['keep'])
  t.is(await reader('mget'), before, 'the reader kept its connection')
})

test.serial('reencrypt() over a slow link goes in steps that each settle within commandTimeout, and finishes', async (t) => {
  t.timeout(60_000)
  const old = { id: 'old', key: randomBytes(32) }
  const { proxy, store } = await rig(t, { encryption: { keys: [old] } })
  await store.set('a', sess({ userId: 'ada', n: 1 }))
  const rotated = new RedisSessionStore({
    url: proxy.url,
    prefix: store.prefix,
    commandTimeout: TIMEOUT,
    encryption: { keys: [{ id: 'new', key: randomBytes(32) }, old] },
  })
  t.teardown(() => rotated.close())
  // 3 ms each way: walking the 16,384 shards 64 at a time is 256 round
  // trips, over 1.5 s, so one step over all of them would time out.
  proxy.delay(3)
  t.deepEqual(await rotated.reencrypt(), { reencrypted: 1, current: 0, unreadable: 0, raced: 0 })
  proxy.delay(0)
  t.is((await rotated.get('a')).n, 1)
})

test.serial('a SIGSTOPped redis-server: calls time out within the bound, then work after SIGCONT', async (t) => {
  const { server, store } = await rig(t)
  const bound = callBound(t)
  await store.set('keep', sess({ v: 3 }))
  server.signal('SIGSTOP')
  try {
    const results = await burst(store, 100)
    t.true(results.every((r) => !r.ok && r.code === 'ERR_REDIS_TIMEOUT'))
    allWithin(t, results, bound())
  } finally {
    server.signal('SIGCONT')
  }
  await until(async () => (await store.get('keep')).v === 3, 5000, 'recovery')
  t.pass()
})

test.serial('redis restarts under load: each call settles within its bound, the store reconnects by itself', async (t) => {
  const { server, store } = await rig(t)
  const bound = callBound(t)
  let stop = false
  let calls = 0
  let failed = 0
  let slowest = 0
  const worker = async (w) => {
    while (!stop) {
      const n = calls++
      const started = Date.now()
      await store.set(`w${n % 50}`, sess({ w })).catch(() => failed++)
      const ms = Date.now() - started
      slowest = Math.max(slowest, ms)
      // Checked per call, while Redis is down and coming back: a call that
      // waited for the reconnection would take the whole outage.
      if (ms > bound()) t.fail(`call ${n} settled after ${ms} ms, bound ${bound().toFixed(0)} ms`)
    }
  }
  const workers = Array.from({ length: 16 }, (_, w) => worker(w))
  await sleep(100)
  await server.stop()
  // Down for longer than the timeout.
  await sleep(TIMEOUT + 300)
  await server.start()
  const restarted = Date.now()
  const back = await until(async () => {
    await store.set('after', sess({ v: 4 }))
    return (await store.get('after')).v === 4
  }, 5000, 'recovery')
  t.true(back - restarted < 1000 + TIMEOUT, `recovered after ${back - restarted} ms`)
  stop = true
  // The calls still running settle too (within their bound, or this fails
  // rather than waiting for ava's timeout).
  const done = await Promise.race([Promise.all(workers).then(() => 'done'), sleep(5 * TIMEOUT).then(() => 'hung')])
  t.is(done, 'done')
  t.true(failed > 0, 'no call failed: Redis was never down')
  t.log(`${calls} calls, ${failed} failed, slowest ${slowest} ms, bound ${bound().toFixed(0)} ms`)
})

test.serial('the store can be created before redis exists, fails fast, then works', async (t) => {
  const port = await freePort()
  const store = new RedisSessionStore({ url: `redis://127.0.0.1:${port}`, prefix: 'early:', commandTimeout: TIMEOUT })
  const server = new RedisServer(port)
  t.teardown(async () => {
    await store.close()
    await server.dispose()
  })
  const err = await t.throwsAsync(store.get('x'))
  t.true(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT'].includes(err.code), err.code)
  await server.start()
  await until(async () => (await store.get('x')) === null, 2000, 'first success')
  t.pass()
})

test.serial('the default bound is 2 s: a stalled call fails within it', async (t) => {
  const server = await RedisServer.start()
  const proxy = await FaultProxy.start(server.port)
  const store = new RedisSessionStore({ url: proxy.url, prefix: 'dflt:' })
  t.teardown(async () => {
    await store.close()
    await proxy.close()
    await server.dispose()
  })
  const bound = callBound(t, 2000)
  await store.set('a', sess())
  proxy.stall()
  const started = Date.now()
  const err = await t.throwsAsync(store.get('a'))
  t.is(err.code, 'ERR_REDIS_TIMEOUT')
  const ms = Date.now() - started
  t.true(ms <= bound(), `settled after ${ms} ms, bound ${bound().toFixed(0)} ms`)
})

test.serial('close() settles every pending call during an outage', async (t) => {
  const { proxy, store } = await rig(t)
  await store.get('warm')
  proxy.stall()
  const pending = burst(store, 50)
  await store.close()
  const results = await pending
  t.is(results.length, 50)
  t.true(results.every((r) => !r.ok))
  t.is((await t.throwsAsync(store.get('x'))).code, 'ERR_STORE_CLOSED')
})

test.serial('an idle process exits by itself, with or without close()', async (t) => {
  const server = await RedisServer.start()
  t.teardown(() => server.dispose())
  for (const mode of ['close', 'no-close']) {
    const { stdout } = await execFileAsync(process.execPath, [path.join(__dirname, 'fixtures/idle-exit.js'), mode], {
      env: { ...process.env, REDIS_URL: server.url },
      timeout: 15_000,
    })
    t.is(stdout, 'done', mode)
  }
})

test.serial('an Express app during an outage: requests fail with a clear 500, the login survives it', async (t) => {
  const { proxy, store } = await rig(t)
  const app = express()
  app.use(session({ store, secret: 's', resave: false, saveUninitialized: false }))
  app.post('/login', (req, res) => {
    req.session.user = 'ada'
    res.end()
  })
  app.get('/me', (req, res) => res.json({ user: req.session.user || null }))
  app.use((err, req, res, next) => res.status(500).json({ code: err.code }))
  const agent = request.agent(app)
  await agent.post('/login').expect(200)
  await agent.get('/me').expect(200, { user: 'ada' })

  proxy.stall()
  await agent.get('/me').expect(500, { code: 'ERR_REDIS_TIMEOUT' })
  await proxy.refuse()
  const res = await agent.get('/me')
  t.is(res.status, 500)
  t.true(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT'].includes(res.body.code))

  await proxy.heal()
  await until(async () => (await agent.get('/me')).body.user === 'ada', 5000, 'the same login after the outage')
  t.pass()
})

test.serial('a connection cut mid-call is retried once on a new connection, and the call succeeds', async (t) => {
  const { proxy, store } = await rig(t)
  await store.set('keep', sess({ v: 5 }))
  proxy.stall()
  const pending = Promise.all([store.get('keep'), store.set('other', sess({ v: 6 }))])
  await sleep(50)
  proxy.cut()
  await proxy.heal()
  const [got] = await pending
  t.is(got.v, 5)
  t.is((await store.get('other')).v, 6)
})

test.serial('memory stays flat while redis stops answering for a long time', async (t) => {
  const server = await RedisServer.start()
  const proxy = await FaultProxy.start(server.port)
  t.teardown(async () => {
    await proxy.close()
    await server.dispose()
  })
  proxy.stall()
  const { stdout } = await execFileAsync(process.execPath, ['--expose-gc', path.join(__dirname, 'fixtures/outage-rss.js')], {
    env: { ...process.env, REDIS_URL: proxy.url, OUTAGE_SECONDS: '12' },
    timeout: 60_000,
  })
  const { warm, end, calls, codes } = JSON.parse(stdout)
  t.log(`RSS ${warm.toFixed(1)} → ${end.toFixed(1)} MB over ${calls} calls`, codes)
  t.is(codes.ok, undefined)
  t.true(codes.ERR_REDIS_TIMEOUT > 0)
  t.true(end - warm < 20, `RSS grew ${(end - warm).toFixed(1)} MB`)
})

test.serial('calls over many sessions settle within the bound as a whole, however many round trips', async (t) => {
  const { proxy, store } = await rig(t)
  for (let i = 0; i < 20; i++) await store.set(`s${i}`, sess({ userId: 'ada' }))
  proxy.stall()
  // Queued first: each call below waits behind it, then does its own reads.
  const before = store.get('s0').catch((err) => err)
  const calls = {
    length: () => store.length(),
    ids: () => store.ids(),
    all: () => store.all(),
    stats: () => store.stats(),
    clear: () => store.clear(),
    listUserSessions: () => store.listUserSessions('ada'),
    destroyUserSessions: () => store.destroyUserSessions('ada'),
  }
  const started = Date.now()
  const settled = await Promise.all(
    Object.entries(calls).map(([name, call]) =>
      call().then(
        () => ({ name, code: 'resolved', ms: Date.now() - started }),
        (err) => ({ name, code: err.code, ms: Date.now() - started }),
      ),
    ),
  )
  for (const { name, code, ms } of settled) {
    t.is(code, 'ERR_REDIS_TIMEOUT', name)
    // One bound for the whole call (a fence plus several round trips took
    // twice the timeout when each round trip had its own); for
    // destroyUserSessions, which goes in steps, for the fence and its first
    // step, which a stalled Redis never lets it pass.
    t.true(ms < TIMEOUT + 350, `${name} settled after ${ms} ms`)
  }
  t.is((await before).code, 'ERR_REDIS_TIMEOUT')
  proxy.heal()
  // One user's sessions: length() walks every shard of the index, about 300 ms
  // through this proxy, close to the timeout on a busy machine.
  await until(async () => (await store.listUserSessions('ada')).length === 20, 3000, 'recovery')
})
