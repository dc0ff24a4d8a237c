'use strict'

// Bad input: a clear error through the callback or promise, nothing written.
const test = require('ava')
const { randomUUID } = require('node:crypto')
const { RedisSessionStore } = require('..')
const { redisForTests } = require('./helpers/redis')
const { RawRedis } = require('./helpers/raw')
const path = require('node:path')
const { promisify } = require('node:util')
const execFileAsync = promisify(require('node:child_process').execFile)

let redis
let raw
let store

test.before(async () => {
  redis = await redisForTests()
  raw = await RawRedis.connect(redis.url)
  store = new RedisSessionStore({ url: redis.url, prefix: `e:${randomUUID()}:` })
})

test.after.always(async () => {
  if (store) await store.close()
  if (raw) raw.close()
  if (redis) await redis.dispose()
})

const good = () => ({ cookie: { originalMaxAge: 1000, expires: new Date(Date.now() + 60_000) } })

async function keyCount() {
  return (await raw.call('KEYS', `${store.prefix}*`)).length
}

// Which input is rejected, with which code, on every call, is in
// conformance/errors.js. What stays here is what only Redis shows: that
// nothing rejected leaves a key, and values and types written raw.

test.serial('rejected input writes no key: bad sids, unserializable sessions, a ttl function returning no number', async (t) => {
  for (const sid of [1, undefined, '', {}, 'x'.repeat(5000), 'a\r\nb']) {
    await t.throwsAsync(store.set(sid, good()), { code: 'ERR_INVALID_ARG' })
    await t.throwsAsync(store.touch(sid, good()), { code: 'ERR_INVALID_ARG' })
  }
  const circular = good()
  circular.self = circular
  const err = await t.throwsAsync(store.set('circ', circular), { code: 'ERR_SERIALIZE' })
  t.regex(err.message, /circular/i)
  await t.throwsAsync(store.set('big', { ...good(), n: 10n }), { code: 'ERR_SERIALIZE' })
  const s = new RedisSessionStore({ url: redis.url, prefix: store.prefix, ttl: () => 'soon' })
  await t.throwsAsync(s.set('ttl', good()), { code: 'ERR_INVALID_ARG' })
  await s.close()
  t.is(await keyCount(), 0)
})

// An error names a session by handle: never its id (a bearer secret), its
// key or what is stored. The key is on err.key, which JSON and logs skip.
function namesSession(t, err, sid) {
  t.true(err.message.includes(store.handleOf(sid)), err.message)
  t.false(err.message.includes(sid), err.message)
  t.is(err.key, store.prefix + sid)
  t.false(JSON.stringify(err).includes(sid))
}

test.serial('corrupt JSON in Redis gives an error naming the session by handle, quoting nothing of it', async (t) => {
  await raw.call('SET', `${store.prefix}bad-sid-7f3a`, '{not json, secret-content')
  const err = await t.throwsAsync(store.get('bad-sid-7f3a'))
  t.is(err.code, 'ERR_SESSION_CORRUPT')
  namesSession(t, err, 'bad-sid-7f3a')
  t.false(err.message.includes('secret-content'), err.message)
  t.is(err.cause, undefined)
  await raw.call('DEL', `${store.prefix}bad-sid-7f3a`)
})

test.serial('binary data and wrong Redis types give errors naming the session by handle', async (t) => {
  await raw.call('SET', `${store.prefix}bin-sid-91c2`, Buffer.from([0xff, 0xfe, 0x00]))
  let err = await t.throwsAsync(store.get('bin-sid-91c2'))
  t.is(err.code, 'ERR_SESSION_CORRUPT')
  namesSession(t, err, 'bin-sid-91c2')
  await raw.call('HSET', `${store.prefix}hash-sid-5d0e`, 'f', 'v')
  err = await t.throwsAsync(store.get('hash-sid-5d0e'))
  t.is(err.code, 'ERR_REDIS_REPLY')
  namesSession(t, err, 'hash-sid-5d0e')
  await raw.call('DEL', `${store.prefix}bin-sid-91c2`, `${store.prefix}hash-sid-5d0e`)
})

test.serial('one bad operation does not fail the others issued in the same tick', async (t) => {
  await raw.call('HSET', `${store.prefix}wrong`, 'f', 'v')
  const [a, b, c] = await Promise.allSettled([store.set('ok1', good()), store.get('wrong'), store.get('ok1')])
  t.is(a.status, 'fulfilled')
  t.is(b.status, 'rejected')
  t.is(c.status, 'fulfilled')
  t.truthy(c.value.cookie)
  await raw.call('DEL', `${store.prefix}wrong`, `${store.prefix}ok1`)
})

test.serial('a callback that throws does not break the other callbacks of its batch', async (t) => {
  const { stdout } = await execFileAsync(process.execPath, [path.join(__dirname, 'fixtures/throwing-callback.js')], {
    env: { ...process.env, REDIS_URL: redis.url },
    timeout: 20_000,
  })
  t.deepEqual(JSON.parse(stdout), ['first', 'second', 'uncaught:boom'])
})

test.serial('invalid options make the constructor throw a TypeError', (t) => {
  for (const options of [
    { url: 'http://localhost' },
    { url: 42 },
    { prefix: 1 },
    { ttl: -1 },
    { ttl: 'long' },
    { disableTTL: 'yes' },
    { serializer: {} },
    { scanCount: 0 },
    { commandTimeout: 0 },
    { client: {} },
    { unknownOption: 1 },
    'redis://x',
  ]) {
    const err = t.throws(() => new RedisSessionStore(options), { instanceOf: TypeError })
    t.regex(err.message, /RedisSessionStore/)
  }
})
