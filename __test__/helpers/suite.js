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
  test.before(async () => {
    server = await redisForTests()
    client = await RawRedis.connect(server.url)
  })
  test.after.always(async () => {
    await Promise.all(stores.map((s) => s.close()))
    if (client) client.close()
    if (server) await server.dispose()
  })
  return {
    // Stable handles, usable once the before hook has run.
    redis: {
      get url() {
        return server.url
      },
    },
    raw: { call: (...args) => client.call(...args) },
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

module.exports = { storeSuite, session, sleep }
