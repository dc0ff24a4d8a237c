'use strict'

// A store that cannot reach Redis says where it tried (host:port, never the
// login) and the usual cause, so the log line alone tells what to fix.
const test = require('ava')
const http = require('node:http')
const { RedisSessionStore } = require('..')
const { RedisServer, freePort } = require('./helpers/redis')

async function failure(url) {
  const store = new RedisSessionStore({ url, commandTimeout: 1500, connectTimeout: 500 })
  try {
    return await store.get('some-session-id').then(() => null, (err) => err)
  } finally {
    await store.close()
  }
}

test('a refused connection names host:port and asks whether redis-server runs', async (t) => {
  const port = await freePort()
  const err = await failure(`redis://127.0.0.1:${port}`)
  t.is(err.code, 'ERR_REDIS_UNAVAILABLE')
  t.true(err.message.includes(`127.0.0.1:${port}`), err.message)
  t.regex(err.message, /is redis-server running/)
})

test('an HTTP server on the port: no protocol dump, a hint that it is not Redis', async (t) => {
  const server = http.createServer((req, res) => res.end('<html>secret page</html>')).listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  try {
    const err = await failure(`redis://127.0.0.1:${server.address().port}`)
    t.is(err.code, 'ERR_REDIS_UNAVAILABLE')
    t.regex(err.message, /not HTTP or another service/)
    t.false(/Unexpected|secret page/.test(err.message), err.message)
  } finally {
    server.close()
  }
})

test('a wrong password keeps Redis\'s reason, hints at the login and never shows it', async (t) => {
  const redis = await RedisServer.start({ args: ['--requirepass', 'right-password'] })
  try {
    const err = await failure(`redis://:wrong-password@127.0.0.1:${redis.port}`)
    t.is(err.code, 'ERR_REDIS_UNAVAILABLE')
    t.regex(err.message, /check the username and password/)
    t.true(err.message.includes(`127.0.0.1:${redis.port}`), err.message)
    t.false(err.message.includes('wrong-password'), err.message)
  } finally {
    await redis.dispose()
  }
})

test('rediss:// against a plain server says that TLS may be the cause', async (t) => {
  const redis = await RedisServer.start()
  try {
    const err = await failure(`rediss://127.0.0.1:${redis.port}`)
    t.true(['ERR_REDIS_TIMEOUT', 'ERR_REDIS_UNAVAILABLE'].includes(err.code), err.code)
    t.regex(err.message, /TLS/)
  } finally {
    await redis.dispose()
  }
})
