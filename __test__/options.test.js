'use strict'

// Options that are wrong fail at construction with a message that says what
// to do; options that are valid but likely mistakes are warned about.
const test = require('ava')
const { once } = require('node:events')
const { RedisSessionStore } = require('..')

const make = (options) => new RedisSessionStore({ url: 'memory://', ...options })

test('an unknown option names the one meant', (t) => {
  t.throws(() => make({ idleTimeot: 60 }), { instanceOf: TypeError, message: /unknown option "idleTimeot": did you mean "idleTimeout"\?/ })
  t.throws(() => make({ maxsessionsperuser: 1 }), { message: /did you mean "maxSessionsPerUser"/ })
  t.throws(() => make({ url: 'rediss://127.0.0.1:1', tls: { rejectUnauthorised: false } }), { message: /did you mean "tls.rejectUnauthorized"/ })
  const far = t.throws(() => make({ somethingElse: 1 }))
  t.false(far.message.includes('did you mean'), far.message)
})

test('a URL in a message never shows its password', (t) => {
  const err = t.throws(() => make({ url: 'redsi://ada:hunter2@cache.internal:6379' }))
  t.false(err.message.includes('hunter2'), err.message)
  t.true(err.message.includes('cache.internal'), err.message)
})

test('timeouts must be positive seconds: 0 and negatives are refused', (t) => {
  for (const name of ['idleTimeout', 'absoluteTimeout']) {
    for (const bad of [0, -1, NaN, '60']) t.throws(() => make({ [name]: bad }), { message: new RegExp(`"${name}"`) }, `${name}: ${String(bad)}`)
  }
})

test('a session id with DEL or another control character is refused', async (t) => {
  const store = make()
  for (const sid of ['a\u007fb', 'a\u0000b', 'a\rb', 'a\nb', 'a\u001bb']) {
    const err = await t.throwsAsync(store.set(sid, { cookie: { maxAge: 60_000 } }))
    t.is(err.code, 'ERR_INVALID_ARG', JSON.stringify(sid))
  }
  t.is(await store.length(), 0)
  await store.close()
})

async function warningsOf(options) {
  const store = make(options)
  const heard = []
  store.on('warning', (w) => heard.push(w))
  await new Promise((resolve) => setImmediate(resolve))
  await store.close()
  return heard
}

test('a timeout that looks like milliseconds is warned about, with the seconds meant', async (t) => {
  const [w] = await warningsOf({ idleTimeout: 30 * 60 * 1000 })
  t.is(w.code, 'WARN_TIMEOUT_LOOKS_LIKE_MS')
  t.regex(w.message, /give 1800/)
  t.deepEqual(await warningsOf({ idleTimeout: 30 * 60, absoluteTimeout: 30 * 86400, ttl: 86400 }), [])
})

test('encryption.allowPlaintext is warned about while it is on', async (t) => {
  const keys = [{ id: 'k', key: Buffer.alloc(32, 7) }]
  const [w] = await warningsOf({ encryption: { keys, allowPlaintext: true } })
  t.is(w.code, 'WARN_PLAINTEXT_ALLOWED')
  t.deepEqual(await warningsOf({ encryption: { keys } }), [])
})

test('TLS without verification is warned about; without a listener it is a process warning', async (t) => {
  const [w] = await warningsOf({ url: 'rediss://127.0.0.1:1#insecure' })
  t.is(w.code, 'WARN_TLS_UNVERIFIED')
  const [v] = await warningsOf({ url: 'rediss://127.0.0.1:1', tls: { rejectUnauthorized: false } })
  t.is(v.code, 'WARN_TLS_UNVERIFIED')
  const store = new RedisSessionStore({ url: 'rediss://127.0.0.1:1#insecure' })
  const [processWarning] = await once(process, 'warning')
  t.is(processWarning.code, 'WARN_TLS_UNVERIFIED')
  await store.close()
})
