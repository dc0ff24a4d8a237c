'use strict'

// Bounded random testing of what the JS layer parses from outside: options
// given to the constructor, and values found in Redis. Seeded, so a failure
// names the seed that reproduces it (FUZZ_SEED, FUZZ_RUNS to go longer).
const test = require('ava')
const { randomUUID } = require('node:crypto')
const { isUtf8 } = require('node:buffer')
const { RedisSessionStore } = require('..')
const { redisForTests } = require('./helpers/redis')
const { RawRedis } = require('./helpers/raw')
const { prng } = require('./helpers/prng')

const SEED = Number(process.env.FUZZ_SEED || 20261123)
const RUNS = Number(process.env.FUZZ_RUNS || 400)

function anyValue(r, depth = 0) {
  const pick = Math.floor(r() * 12)
  switch (pick) {
    case 0: return undefined
    case 1: return null
    case 2: return r() < 0.5
    case 3: return Math.floor(r() * 2e6) - 1e6
    case 4: return [NaN, Infinity, -Infinity, -0, 1e308, 0.5][Math.floor(r() * 6)]
    case 5: return 'redis://127.0.0.1:1'
    case 6: return String.fromCharCode(...Array.from({ length: Math.floor(r() * 12) }, () => Math.floor(r() * 0xffff)))
    case 7: return () => (r() < 0.5 ? 60 : 'x')
    case 8: return depth < 2 ? { stringify: anyValue(r, depth + 1), parse: anyValue(r, depth + 1) } : {}
    case 9: return 10n
    case 10: return depth < 2 ? [anyValue(r, depth + 1)] : []
    default: return Symbol('s')
  }
}

const NAMES = ['url', 'prefix', 'ttl', 'disableTTL', 'disableTouch', 'serializer', 'scanCount',
  'commandTimeout', 'connectTimeout', 'maxSessionBytes', 'client', 'bogus', 'encryption', 'merge']

let redis
let raw
test.before(async () => {
  redis = await redisForTests()
  raw = await RawRedis.connect(redis.url)
})
test.after.always(async () => {
  if (raw) raw.close()
  if (redis) await redis.dispose()
})

test('random options either build a store or throw a TypeError, nothing else', async (t) => {
  const r = prng(SEED)
  let built = 0
  for (let i = 0; i < RUNS; i++) {
    const options = {}
    for (const name of NAMES) if (r() < 0.3) options[name] = anyValue(r)
    if (r() < 0.5) options.url = redis.url
    let store
    try {
      store = new RedisSessionStore(options)
    } catch (err) {
      if (!(err instanceof TypeError)) t.fail(`seed ${SEED} run ${i}: ${err && err.stack}`)
      continue
    }
    built++
    await store.close()
  }
  t.true(built > 0, 'some random option sets are valid')
})

test('random bytes in Redis read back as a session or as ERR_SESSION_CORRUPT; reindex and all() agree with get', async (t) => {
  const r = prng(SEED + 1)
  const store = new RedisSessionStore({ url: redis.url, prefix: `fz:${randomUUID()}:` })
  t.teardown(() => store.close())
  const samples = ['{}', '[]', 'null', '1', '"s"', '{"cookie":{"expires":"not a date"}}', '{"cookie":null}',
    '{"cookie":{"expires":"2999-01-01T00:00:00.000Z"},"a":1}', '{"__proto__":{"x":1}}']
  // What each value must come back as: reindex adopts what parses as an
  // object with a cookie and skips the rest; all() then returns the adopted
  // values as stored.
  const sessions = new Map()
  const corrupt = []
  let text = 0
  for (let i = 0; i < RUNS; i++) {
    let value
    if (i < samples.length) value = Buffer.from(samples[i])
    else if (r() < 0.5) value = Buffer.from(Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)))
    else value = Buffer.from(JSON.stringify({ cookie: { expires: anyValue(r) === null ? null : new Date(Date.now() + 60e3) }, v: r().toString(36) }))
    const sid = `s${i}`
    await raw.callBinary('SET', `${store.prefix}${sid}`, value, 'PX', 60_000)
    if (isUtf8(value)) text++
    try {
      const got = await store.get(sid)
      t.true(got !== null && typeof got === 'object', `seed ${SEED} run ${i}`)
      if (got && got.cookie) sessions.set(sid, JSON.parse(value.toString('utf8')))
    } catch (err) {
      if (err.code !== 'ERR_SESSION_CORRUPT') t.fail(`seed ${SEED} run ${i}: ${err.code} ${err.message}`)
      corrupt.push(sid)
    }
  }
  t.true(sessions.size > 0 && corrupt.length > 0, `seed ${SEED}: ${sessions.size} sessions, ${corrupt.length} corrupt`)
  // Written straight to Redis, nothing is indexed yet.
  t.deepEqual(await store.all(), [])
  // Every other text value is skipped (values that are not UTF-8 may be
  // left out of the count).
  const { indexed, skipped } = await store.reindex()
  t.is(indexed, sessions.size)
  t.true(skipped >= text - sessions.size && skipped <= RUNS - sessions.size, `skipped ${skipped}`)
  const all = await store.all()
  t.deepEqual(all.map((s) => s.id).sort(), [...sessions.keys()].sort())
  for (const sess of all) t.deepEqual(sess, { ...sessions.get(sess.id), id: sess.id }, `seed ${SEED}: ${sess.id}`)
  t.is(await store.length(), sessions.size)

  // An indexed session overwritten with bytes that are not a session makes
  // all() fail, naming the session by its handle (never by id or key).
  const [victim] = sessions.keys()
  await raw.callBinary('SET', `${store.prefix}${victim}`, await raw.callBinary('GET', `${store.prefix}${corrupt[0]}`), 'PX', 60_000)
  const err = await t.throwsAsync(store.all())
  t.is(err.code, 'ERR_SESSION_CORRUPT')
  t.true(err.message.includes(store.handleOf(victim)), err.message)
  t.false(err.message.includes(`${store.prefix}${victim}`), err.message)
})

// Envelopes mutated at random (bytes flipped, cut, grown, the header's
// fields changed) and random bytes: an encrypted store refuses each with
// ERR_SESSION_CORRUPT or ERR_SESSION_KEY_UNKNOWN and leaves it as it is,
// and serves only what it sealed itself.
test('random and mutated envelopes read back as refused, never as a session, and stay as they were', async (t) => {
  const r = prng(SEED + 2)
  const keys = [{ id: 'k1', key: Buffer.alloc(32, 7) }, { id: 'k0', key: Buffer.alloc(32, 9) }]
  const store = new RedisSessionStore({ url: redis.url, prefix: `fze:${randomUUID()}:`, encryption: { keys } })
  t.teardown(() => store.close())
  await store.set('good', { cookie: { expires: new Date(Date.now() + 60e3).toISOString() }, secret: 'x' })
  const good = await raw.callBinary('GET', `${store.prefix}good`)
  const refused = { ERR_SESSION_CORRUPT: 0, ERR_SESSION_KEY_UNKNOWN: 0 }
  for (let i = 0; i < RUNS; i++) {
    let value = Buffer.from(good)
    const kind = Math.floor(r() * 5)
    if (kind === 0) value[Math.floor(r() * value.length)] ^= 1 + Math.floor(r() * 255)
    else if (kind === 1) value = value.subarray(0, Math.floor(r() * value.length))
    else if (kind === 2) value = Buffer.concat([value, Buffer.from([Math.floor(r() * 256)])])
    else if (kind === 3) value[1 + Math.floor(r() * 4)] = Math.floor(r() * 256)
    else value = Buffer.from(Array.from({ length: Math.floor(r() * 80) }, () => Math.floor(r() * 256)))
    if (value.equals(good)) continue
    const key = `${store.prefix}s${i}`
    await raw.callBinary('SET', key, value, 'PX', 60_000)
    const err = await t.throwsAsync(store.get(`s${i}`), undefined, `seed ${SEED} run ${i}`)
    if (!(err && err.code in refused)) t.fail(`seed ${SEED} run ${i}: ${err && err.code} ${err && err.message}`)
    else refused[err.code]++
    t.true((await raw.callBinary('GET', key)).equals(value), `seed ${SEED} run ${i}: left as it was`)
  }
  t.true(refused.ERR_SESSION_CORRUPT > 0, JSON.stringify(refused))
  t.is((await store.get('good')).secret, 'x')
})
