'use strict'

// What the url option carries besides host and port: ACL user and password,
// and the database index.
const test = require('ava')
const { RedisSessionStore } = require('..')
const { RedisServer } = require('./helpers/redis')
const { RawRedis } = require('./helpers/raw')

let server
let raw

test.before(async () => {
  server = await RedisServer.start()
  raw = await RawRedis.connect(server.url)
  // The key patterns a restricted user needs: sessions and their logout markers.
  await raw.call('ACL', 'SETUSER', 'alice', 'on', '>s3cret', '~sess:*', '~{sess:*', '+@all')
})

test.after.always(async () => {
  if (raw) raw.close()
  if (server) await server.dispose()
})

const sess = { cookie: { originalMaxAge: 1000, expires: new Date(Date.now() + 60_000).toISOString() }, n: 1 }

test('user:password@ and /db are used', async (t) => {
  const store = new RedisSessionStore({ url: `redis://alice:s3cret@127.0.0.1:${server.port}/3` })
  t.teardown(() => store.close())
  await store.set('u', sess)
  t.deepEqual(await store.get('u'), sess)
  await raw.call('SELECT', 3)
  t.is(await raw.call('GET', 'sess:u'), JSON.stringify(sess))
  await raw.call('SELECT', 0)
  t.is(await raw.call('EXISTS', 'sess:u'), 0)
})

test('a wrong password fails every call with a clear error, not a hang', async (t) => {
  const store = new RedisSessionStore({ url: `redis://alice:wrong@127.0.0.1:${server.port}`, commandTimeout: 1000 })
  t.teardown(() => store.close())
  const err = await t.throwsAsync(store.get('u'))
  t.regex(err.code, /^ERR_REDIS_/)
  t.regex(err.message, /WRONGPASS|invalid username-password|auth/i)
})
