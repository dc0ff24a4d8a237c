'use strict'

// What most ava files share: one redis-server for the file (REDIS_URL may
// name another), a raw client to look at keys, and stores that each get a
// unique prefix and are closed after the file.
const { randomUUID } = require('node:crypto')
const { RedisSessionStore } = require('../..')
const { redisForTests } = require('./redis')
const { RawRedis } = require('./raw')

function storeSuite(test, tag) {
  let server
  let client
  const stores = []
  // ava runs a file's before hooks at once: a hook of the file's own that
  // makes stores awaits `ready` first.
  let started
  const ready = new Promise((resolve, reject) => (started = { resolve, reject }))
  ready.catch(() => {})
  test.before(async () => {
    try {
      server = await redisForTests()
      client = await RawRedis.connect(server.url)
      started.resolve()
    } catch (err) {
      started.reject(err)
      throw err
    }
  })
  test.after.always(async () => {
    await Promise.all(stores.map((s) => s.close()))
    if (client) client.close()
    if (server) await server.dispose()
  })
  return {
    ready,
    // Stable handles, usable once the before hook has run.
    redis: {
      get url() {
        return server.url
      },
    },
    raw: { call: (...args) => client.call(...args), callBinary: (...args) => client.callBinary(...args), clients: () => client.clients() },
    makeStore(options = {}) {
      const store = new RedisSessionStore({ url: server.url, prefix: `${tag}:${randomUUID()}:`, ...options })
      stores.push(store)
      return store
    },
  }
}

// A session as express-session hands it to the store (cookie through toJSON).
function session(maxAgeMs = 60_000, extra = {}) {
  return {
    cookie: { originalMaxAge: maxAgeMs, expires: new Date(Date.now() + maxAgeMs).toISOString(), httpOnly: true, path: '/' },
    ...extra,
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// After a failure that a failover heals: calls `attempt` until it succeeds,
// checking that each failed call settled within `boundMs`. Resolves to how
// long recovery took (null if never, within `limitMs`) and the error codes seen.
async function untilRecovered(t, attempt, boundMs, limitMs = 20_000) {
  const started = Date.now()
  const failures = new Set()
  while (Date.now() - started < limitMs) {
    const call = Date.now()
    try {
      await attempt(call)
      return { recovered: Date.now() - started, failures: [...failures] }
    } catch (err) {
      failures.add(err.code)
      t.true(Date.now() - call < boundMs, `a call took ${Date.now() - call} ms`)
      await sleep(50)
    }
  }
  return { recovered: null, failures: [...failures] }
}

module.exports = { storeSuite, session, sleep, untilRecovered }
