'use strict'

// rediss:// against a TLS-only redis-server whose certificates the test makes
// with openssl. `#insecure` (redis-rs's URL flag) skips verification; without
// it the server must present a certificate the system trusts.
const test = require('ava')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { RedisSessionStore } = require('..')
const { RedisServer } = require('./helpers/redis')

let server
let dir

test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-tls-'))
  const cert = path.join(dir, 'cert.pem')
  const key = path.join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })
  server = await RedisServer.start({ tls: { cert, key, ca: cert } })
})

test.after.always(async () => {
  if (server) await server.dispose()
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

test('a rediss:// URL talks TLS', async (t) => {
  const store = new RedisSessionStore({ url: `${server.url}/#insecure`, prefix: 'tls:' })
  t.teardown(() => store.close())
  const sess = { cookie: { originalMaxAge: 1000, expires: new Date(Date.now() + 60_000).toISOString() }, user: 'ada' }
  await store.set('a', sess)
  t.deepEqual(await store.get('a'), sess)
})

test('a certificate the system does not trust is refused with a clear error', async (t) => {
  const store = new RedisSessionStore({ url: server.url, prefix: 'tls:', commandTimeout: 1000 })
  t.teardown(() => store.close())
  const err = await t.throwsAsync(store.get('a'))
  t.is(err.code, 'ERR_REDIS_UNAVAILABLE')
  t.regex(err.message, /certificate/i)
})

test('a plain redis:// URL to the TLS port does not hang', async (t) => {
  const store = new RedisSessionStore({ url: `redis://127.0.0.1:${server.port}`, prefix: 'tls:', commandTimeout: 500 })
  t.teardown(() => store.close())
  const err = await t.throwsAsync(store.get('a'))
  t.true(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT'].includes(err.code), err.code)
})
