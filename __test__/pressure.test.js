'use strict'

// Issue 12: Redis under memory pressure. Each test starts its own
// redis-server with --maxmemory and --maxmemory-policy, fills it with other
// data or writes an evicting load at it with a raw client, and checks what
// users see: a full Redis (noeviction) keeps logged-in users served and
// logouts working while new writes fail with ERR_REDIS_FULL; an evicting
// Redis (volatile-*) never lets a "log out everywhere" miss a live session;
// allkeys-* (or a policy the store cannot read) is warned about.
const test = require('ava')
const request = require('supertest')
const express = require('express')
const session = require('express-session')
const { randomUUID } = require('node:crypto')
const { RedisSessionStore } = require('..')
const { RedisServer, freePort } = require('./helpers/redis')
const { RawRedis } = require('./helpers/raw')
const { fillToLimit, memory, pipeline, storeKeys, parseMeta } = require('./helpers/pressure')

const DAY = 86_400_000
const PREFIX = 'sess:'
const K = storeKeys(PREFIX)
const servers = []
const raws = []
const stores = []

test.after.always(async () => {
  await Promise.all(stores.map((s) => s.close().catch(() => {})))
  for (const r of raws) r.close()
  await Promise.all(servers.map((s) => s.dispose()))
})

// A redis-server of its own for one test, with a raw client on it.
async function redisWith(policy, maxmemory = '8mb', args = []) {
  // Tracked before it starts, so one that fails to start is stopped too.
  const server = new RedisServer(await freePort(), { args: ['--maxmemory', maxmemory, '--maxmemory-policy', policy, ...args] })
  servers.push(server)
  await server.start()
  const raw = await RawRedis.connect(server.url)
  raws.push(raw)
  return { server, raw }
}

function makeStore(url, options = {}) {
  const store = new RedisSessionStore({ url, ...options })
  stores.push(store)
  return store
}

// A session as express-session hands it to the store.
const sess = (userId, maxAge = 60_000, extra = {}) => ({
  cookie: { originalMaxAge: maxAge, expires: new Date(Date.now() + maxAge).toISOString(), httpOnly: true, path: '/' },
  userId,
  ...extra,
})

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const isFull = (err) => err.code === 'ERR_REDIS_FULL' && /maxmemory|full/i.test(err.message)

// Every key that names `sid`, and its entries in the indexes: none may be
// left by a write Redis refused.
async function tracesOf(raw, sid, userId) {
  return {
    keys: (await raw.call('KEYS', `*${sid}*`)).map(String),
    meta: await raw.call('HGET', K.shard(sid), sid),
    user: await raw.call('ZSCORE', K.user(userId), sid),
  }
}
const NO_TRACES = { keys: [], meta: null, user: null }

// ---------------------------------------------------------------- full Redis

test('full (noeviction): get and touch of existing sessions succeed, and touch still moves the expiry', async (t) => {
  const { server, raw } = await redisWith('noeviction')
  const store = makeStore(server.url, { readExpiry: true })
  const sids = [randomUUID(), randomUUID()]
  for (const sid of sids) await store.set(sid, sess('ada'))
  await fillToLimit(raw)

  for (const sid of sids) {
    const got = await store.get(sid)
    t.is(got?.userId, 'ada')
    // express-session's touch for an unmodified session: the cookie moved on
    // to a later deadline; the key must follow it or the user is logged out
    // at the old one.
    const later = sess('ada', 10 * 60_000)
    await t.notThrowsAsync(store.touch(sid, later), 'touch on a full Redis')
    const pttl = await raw.call('PTTL', K.session(sid))
    t.true(pttl > 60_000, `the session key's TTL follows the touch (PTTL ${pttl} ms)`)
    t.is((await store.get(sid))?.cookie.expires, later.cookie.expires, 'get sees the touched expiry')
  }
})

test('full (noeviction): destroy succeeds, the session is gone, and a late save does not bring it back', async (t) => {
  const { server, raw } = await redisWith('noeviction')
  const store = makeStore(server.url)
  const sid = randomUUID()
  await store.set(sid, sess('ada'))
  t.truthy(await store.get(sid))
  await fillToLimit(raw)

  await t.notThrowsAsync(store.destroy(sid), 'destroy on a full Redis')
  t.is(await raw.call('EXISTS', K.session(sid)), 0)
  t.is(await store.get(sid), null)
  // A request that loaded the session before the logout saves it late:
  // Redis refuses the write, or the store finds the logout; either way the
  // session stays gone.
  await store.set(sid, sess('ada', 60_000, { late: true })).then(
    () => {},
    (err) => t.true(isFull(err), `${err.code}: ${err.message}`),
  )
  t.is(await raw.call('EXISTS', K.session(sid)), 0)
  t.is(await store.get(sid), null)
})

test('full (noeviction): destroyUserSessions succeeds and every session of the user is gone', async (t) => {
  const { server, raw } = await redisWith('noeviction')
  const store = makeStore(server.url)
  const sids = [randomUUID(), randomUUID(), randomUUID()]
  const other = randomUUID()
  for (const sid of sids) await store.set(sid, sess('ada'))
  await store.set(other, sess('grace'))
  await fillToLimit(raw)

  let destroyed
  await t.notThrowsAsync(async () => {
    destroyed = await store.destroyUserSessions('ada')
  }, 'destroyUserSessions on a full Redis')
  t.is(destroyed, 3)
  for (const sid of sids) {
    t.is(await raw.call('EXISTS', K.session(sid)), 0)
    t.is(await store.get(sid), null)
  }
  t.deepEqual(await store.listUserSessions('ada'), [])
  t.is((await store.get(other))?.userId, 'grace', "another user's session is untouched")
})

test('full (noeviction): a new login fails with ERR_REDIS_FULL and leaves no keys for its sid', async (t) => {
  const { server, raw } = await redisWith('noeviction')
  const store = makeStore(server.url)
  // The user already has a session, so their index exists.
  await store.set(randomUUID(), sess('ada'))
  await fillToLimit(raw)

  for (const userId of ['ada', 'newcomer']) {
    const sid = randomUUID()
    const err = await t.throwsAsync(store.set(sid, sess(userId)), undefined, 'a login on a full Redis')
    if (!err) continue
    t.is(err.code, 'ERR_REDIS_FULL', err.message)
    t.regex(err.message, /maxmemory|full/i, 'the message names the cause')
    t.deepEqual(await tracesOf(raw, sid, userId), NO_TRACES)
    t.is(await store.get(sid), null)
  }
})

test('full (noeviction): a save that changes an existing session fails with ERR_REDIS_FULL and leaves it as it was', async (t) => {
  const { server, raw } = await redisWith('noeviction')
  const store = makeStore(server.url)
  const sid = randomUUID()
  await store.set(sid, sess('ada', 60_000, { visits: 1 }))
  const before = await raw.call('GET', K.session(sid))
  await fillToLimit(raw)

  const loaded = await store.get(sid)
  loaded.visits = 2
  const err = await t.throwsAsync(store.set(sid, loaded), undefined, 'a save on a full Redis')
  if (err) {
    t.is(err.code, 'ERR_REDIS_FULL', err.message)
    t.regex(err.message, /maxmemory|full/i)
  }
  t.is(await raw.call('GET', K.session(sid)), before)
  t.is((await store.get(sid))?.visits, 1)
})

test('full (noeviction), then freed: the store catches up on what Redis refused, and a new login works', async (t) => {
  const { server, raw } = await redisWith('noeviction')
  const store = makeStore(server.url)
  const own = randomUUID()
  await store.set(own, sess('ada'))
  const meta = async (sid) => parseMeta(await raw.call('HGET', K.shard(sid), sid))
  const metaBefore = (await meta(own)).a
  // A session as connect-redis wrote it (no meta, no index entry): this
  // store records it at its first touch; on a full Redis it cannot yet.
  const migrated = randomUUID()
  await raw.call('SET', K.session(migrated), JSON.stringify(sess('ada')), 'PX', '60000')
  const filler = await fillToLimit(raw)

  await sleep(5) // so a later touch has a later `a`
  for (const sid of [own, migrated]) {
    await t.notThrowsAsync(store.touch(sid, sess('ada')), `touch of ${sid === own ? 'a session' : 'a connect-redis session'} while full`)
  }

  await filler.free()
  const freedAt = Date.now()
  for (const sid of [own, migrated]) await store.touch(sid, sess('ada'))
  const a = (await meta(own)).a
  t.true(a > metaBefore && a >= freedAt, `the meta records the last access (a = ${a}, freed at ${freedAt})`)
  t.is((await meta(migrated)).u, 'ada', "the connect-redis session's meta is written")
  t.true((await meta(migrated)).a >= freedAt)
  const listed = (await store.listUserSessions('ada')).map((s) => s.id).sort()
  t.deepEqual(listed, [own, migrated].sort(), 'both are in the user index')
  t.true((await store.ids()).includes(migrated), 'and in the all-sessions index')

  const sid = randomUUID()
  await t.notThrowsAsync(store.set(sid, sess('ada')), 'a new login after memory was freed')
  t.is((await store.get(sid))?.userId, 'ada')
})

test('full (noeviction), through Express: logged-in requests get 200, a change and a new login 500 with ERR_REDIS_FULL, logout works', async (t) => {
  const { server, raw } = await redisWith('noeviction')
  const store = makeStore(server.url)
  const generated = []
  const errors = []
  const app = (rolling) => {
    const a = express()
    a.use(
      session({
        store,
        secret: 'pressure test secret',
        resave: false,
        saveUninitialized: false,
        rolling,
        cookie: { maxAge: 60_000 },
        genid: () => {
          const id = randomUUID()
          generated.push(id)
          return id
        },
      }),
    )
    a.get('/me', (req, res) => res.json({ user: req.session.userId ?? null }))
    // Saves explicitly, so a refused save answers 500 (express-session's own
    // save at the end of the response comes after the status is sent).
    const save = (req, res, next) => req.session.save((err) => (err ? next(err) : res.json({ user: req.session.userId ?? null })))
    a.get('/visit', (req, res, next) => {
      req.session.visits = (req.session.visits || 0) + 1
      save(req, res, next)
    })
    a.post('/login', (req, res, next) =>
      req.session.regenerate((err) => {
        if (err) return next(err)
        req.session.userId = req.query.user
        save(req, res, next)
      }),
    )
    a.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))))
    a.use((err, req, res, next) => {
      errors.push(err)
      // As Express's guide says: once headers are out, leave it to Express's
      // own handler. express-session sends the headers before a touch
      // answers, so a failed touch still answers 200 and only shows here.
      if (res.headersSent) return next(err)
      res.status(500).json({ code: err.code, message: err.message })
    })
    return a
  }
  const plain = app(false)
  const rolling = app(true)
  const agents = { plain: request.agent(plain), rolling: request.agent(rolling), leaving: request.agent(plain) }
  for (const [name, agent] of Object.entries(agents)) await agent.post(`/login?user=${name}`).expect(200)
  const sidOf = {}
  for (const [name] of Object.entries(agents)) {
    const list = await store.listUserSessions(name)
    t.is(list.length, 1)
    sidOf[name] = list[0].id
  }
  await fillToLimit(raw)

  for (const [name, agent] of [['plain', agents.plain], ['rolling', agents.rolling]]) {
    for (let i = 0; i < 3; i++) {
      const res = await agent.get('/me').catch((err) => ({ status: `cut (${err.message})`, body: {} }))
      t.is(res.status, 200, `${name}: a logged-in request on a full Redis: ${JSON.stringify(res.body)}`)
      t.is(res.body.user, name)
    }
  }
  // The touches behind them succeeded: nothing reached the error handler.
  t.deepEqual(errors.map((e) => `${e.code}: ${e.message}`), [], 'errors during logged-in requests')
  errors.length = 0

  const visit = await agents.plain.get('/visit')
  t.is(visit.status, 500)
  t.is(visit.body.code, 'ERR_REDIS_FULL', JSON.stringify(visit.body))
  t.is((await agents.plain.get('/me')).status, 200, 'still logged in after the refused save')

  const before = generated.length
  const login = await request(plain).post('/login?user=newcomer')
  t.is(login.status, 500)
  t.is(login.body.code, 'ERR_REDIS_FULL', JSON.stringify(login.body))
  t.regex(String(login.body.message), /maxmemory|full/i)
  // The last id generated is the login's (regenerate replaced the first).
  const loginSid = generated.at(-1)
  t.true(generated.length > before)
  t.deepEqual(await tracesOf(raw, loginSid, 'newcomer'), NO_TRACES)

  const logout = await agents.leaving.post('/logout')
  t.is(logout.status, 200, JSON.stringify(logout.body))
  t.is(await raw.call('EXISTS', K.session(sidOf.leaving)), 0)
  t.is((await agents.leaving.get('/me')).body.user, null, 'logged out')
  t.true(errors.every((e) => e.code === 'ERR_REDIS_FULL'), errors.map((e) => `${e.code}: ${e.message}`).join('; '))
  t.true(errors.length >= 2, 'the error handler saw the refused saves')
})

// ------------------------------------------------------------ evicting Redis

// Rounds of "a user signs in on 5 devices, uses them while other data with
// TTLs and other users' traffic make Redis evict, then logs out everywhere".
// A device's session key may itself be evicted (that is a logout), but one
// that exists must be listed and must be destroyed. The rounds overlap, one
// starting per tick: a user's devices are in use for LIFE ticks, each
// writing `fillerMb` of other data into 8 MB. `tickMs`: under LRU the clock
// has a resolution of one second, so ticks a second apart make the keys
// written at sign-in (the indexes) older than the devices in use, which is
// what LRU evicts first in production too. `fillerTtl(i)`: the i-th filler
// key's TTL in seconds.
const LIFE = 2
async function evictionRounds(t, policy, { rounds = 10, fillerMb, fillerTtl = () => 3600, tickMs = 0 }) {
  t.timeout(50_000)
  const { server, raw } = await redisWith(policy, '8mb')
  const store = makeStore(server.url, { prefix: PREFIX })
  const warnings = []
  store.on('warning', (err) => warnings.push(err))
  const value = 'v'.repeat(1024)
  const failures = []
  const active = []
  let checked = 0
  let evictedDevices = 0
  let others = 0
  const evictions = async () => Number(/evicted_keys:(\d+)/.exec(await raw.call('INFO', 'stats'))[1])
  // Full before the first sign-in, so every round runs while Redis evicts.
  for (let chunk = 0; (await evictions()) === 0; chunk++) {
    await pipeline(raw, Array.from({ length: 1000 }, (_, i) => ['SET', `before:${chunk}:${i}`, value, 'EX', String(fillerTtl(i))]))
  }
  const evictedBefore = await evictions()
  for (let tick = 0; tick < rounds + LIFE; tick++) {
    if (tickMs) await sleep(tickMs)
    if (tick < rounds) {
      const user = { name: `devices-${tick}`, devices: Array.from({ length: 5 }, () => randomUUID()), since: tick }
      for (const sid of user.devices) await store.set(sid, sess(user.name, DAY, { device: sid }))
      active.push(user)
    }
    // The load of one tick, in chunks: other data, other users signing in
    // (shorter sessions than the devices'), the devices in use.
    for (let chunk = 0; chunk < fillerMb; chunk++) {
      const filler = Array.from({ length: 1000 }, (_, i) => ['SET', `other:${tick}:${chunk}:${i}`, value, 'EX', String(fillerTtl(i))])
      const traffic = Array.from({ length: 25 }, () => {
        const sid = randomUUID()
        const owner = `other-${others++ % 200}`
        return store.set(sid, sess(owner, 3_600_000)).then(() => store.touch(sid, sess(owner, 3_600_000)))
      })
      const use = active.flatMap((user) =>
        user.devices.map(async (sid) => {
          const s = await store.get(sid)
          if (s) await store.touch(sid, sess(user.name, DAY, { device: sid }))
        }),
      )
      const [replies] = await Promise.all([pipeline(raw, filler), ...traffic, ...use])
      const refused = replies.find((r) => r instanceof Error)
      if (refused) throw refused
    }
    // Log out everywhere the user who signed in LIFE ticks ago.
    if (active.length && active[0].since === tick - LIFE) {
      const { name, devices } = active.shift()
      const alive = []
      for (const sid of devices) if ((await raw.call('EXISTS', K.session(sid))) === 1) alive.push(sid)
      evictedDevices += devices.length - alive.length
      checked += alive.length
      const listed = (await store.listUserSessions(name)).map((s) => s.id)
      // Any command may evict (Redis evicts before running it), so a device
      // that was alive before the listing may be gone by its end: unlisted
      // is a failure only for one that still exists after it.
      const unlisted = []
      for (const sid of alive) {
        if (!listed.includes(sid) && (await raw.call('EXISTS', K.session(sid))) === 1) unlisted.push(sid)
      }
      const destroyed = await store.destroyUserSessions(name)
      const survivors = []
      for (const sid of devices) {
        if ((await store.get(sid)) !== null || (await raw.call('EXISTS', K.session(sid))) !== 0) survivors.push(sid)
      }
      if (unlisted.length || survivors.length) {
        failures.push(`${name}: ${alive.length} alive, ${listed.length} listed, ${unlisted.length} unlisted and alive, ${destroyed} destroyed, ${survivors.length} still signed in`)
      }
    }
  }
  const { used, max } = await memory(raw)
  const evicted = (await evictions()) - evictedBefore
  t.log(`${policy}: ${evicted} keys evicted; ${evictedDevices} of ${rounds * 5} device sessions evicted, ${checked} alive at their logout; used ${used} of ${max}`)
  t.true(evicted > rounds * 1000, `the load evicted (${evicted} keys)`)
  t.deepEqual(failures, [], `${failures.length} of ${rounds} rounds left a device signed in or unlisted`)
  t.deepEqual(warnings, [], `no warning under ${policy}`)
}

test("volatile-lru under an evicting load: log out everywhere leaves none of the user's sessions", (t) =>
  evictionRounds(t, 'volatile-lru', { fillerMb: 4, tickMs: 1000 }))

test("volatile-random under an evicting load: log out everywhere leaves none of the user's sessions", (t) =>
  evictionRounds(t, 'volatile-random', { fillerMb: 2 }))

// volatile-ttl evicts the nearest expiry first: the other data expires
// from an hour to two days from now, some of it later than the devices'
// sessions (a day), so the store's own keys get evicted too.
test("volatile-ttl under an evicting load: log out everywhere leaves none of the user's sessions", (t) =>
  evictionRounds(t, 'volatile-ttl', { fillerMb: 1, fillerTtl: (i) => 3600 + ((i * 7919) % 1000) * 169 }))

// ------------------------------------------------------------------ warnings

// Resolves to the warnings `emitter` emitted within `ms` (matching `filter`).
function collect(emitter, ms, filter = () => true) {
  const seen = []
  const listener = (w) => {
    if (filter(w)) seen.push(w)
  }
  emitter.on('warning', listener)
  return {
    seen,
    async until(count) {
      const end = Date.now() + ms
      while (seen.length < count && Date.now() < end) await sleep(10)
      return seen
    },
    stop: () => emitter.off('warning', listener),
  }
}

test('allkeys-lru: the store warns once per connection with a listener, naming the policy', async (t) => {
  const { server } = await redisWith('allkeys-lru', '64mb')
  const store = makeStore(server.url)
  const warnings = collect(store, 2000)
  t.is(await store.get('nobody'), null)
  // Bounded wait: the warning follows the first command.
  await warnings.until(1)
  t.is(warnings.seen.length, 1)
  const [w] = warnings.seen
  if (w) {
    t.true(w instanceof Error)
    t.is(w.code, 'WARN_REDIS_EVICTION')
    t.regex(w.message, /allkeys-lru/)
  }
  // More calls on the same connection: no second warning.
  const sid = randomUUID()
  await store.set(sid, sess('ada'))
  await store.get(sid)
  await store.listUserSessions('ada')
  await sleep(300)
  t.is(warnings.seen.length, 1, 'once per connection')
})

test('allkeys-random with no store listener: process.emitWarning with the code', async (t) => {
  const { server } = await redisWith('allkeys-random', '64mb')
  const store = makeStore(server.url)
  t.is(store.listenerCount('warning'), 0)
  // Other tests' stores run in this process too: only this policy's warning counts.
  const warnings = collect(process, 2000, (w) => /allkeys-random/.test(w.message))
  t.teardown(warnings.stop)
  await store.get('nobody')
  await warnings.until(1)
  t.is(warnings.seen.length, 1)
  if (warnings.seen[0]) t.is(warnings.seen[0].code, 'WARN_REDIS_EVICTION')
})

test('a policy the store cannot read (INFO refused) is warned about, and the store still works', async (t) => {
  const { server, raw } = await redisWith('noeviction', '64mb', ['--rename-command', 'INFO', ''])
  t.true((await raw.call('INFO', 'memory')) instanceof Error, 'this server refuses INFO')
  const store = makeStore(server.url)
  const warnings = collect(store, 2000)
  const sid = randomUUID()
  await store.set(sid, sess('ada'))
  t.is((await store.get(sid))?.userId, 'ada')
  await warnings.until(1)
  t.is(warnings.seen.length, 1)
  if (warnings.seen[0]) {
    t.true(warnings.seen[0] instanceof Error)
    t.is(warnings.seen[0].code, 'WARN_REDIS_EVICTION')
  }
})

for (const policy of ['noeviction', 'volatile-lru', 'volatile-ttl']) {
  test(`${policy}: no warning`, async (t) => {
    const { server } = await redisWith(policy, '64mb')
    const store = makeStore(server.url)
    const warnings = collect(store, 1000)
    const sid = randomUUID()
    await store.set(sid, sess('ada'))
    t.truthy(await store.get(sid))
    await warnings.until(1)
    t.deepEqual(warnings.seen.map((w) => w.message), [])
  })
}
