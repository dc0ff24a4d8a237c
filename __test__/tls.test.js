'use strict'

// rediss:// against TLS-only redis-servers whose certificates the test makes
// with openssl: a CA, a server certificate it signs, and a client
// certificate for the server that requires one (mutual TLS).
const test = require('ava')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { RedisSessionStore } = require('..')
const { RedisServer, freePort } = require('./helpers/redis')

let server // verifies nothing of the client
let mutual // requires a client certificate signed by the CA
let cluster = [] // three TLS-only masters of one cluster, TLS between them too
let named // its certificate names only session-redis.test, not 127.0.0.1
let dir
const pem = (name) => fs.readFileSync(path.join(dir, name), 'utf8')

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
}

// A key and a certificate signed by the CA, for `cn`.
function issue(name, cn, ext) {
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`)
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext)
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`)
}

test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-tls-'))
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign')
  issue('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n')
  issue('client', 'session-store', 'extendedKeyUsage=clientAuth\n')
  issue('named', 'session-redis.test', 'subjectAltName=DNS:session-redis.test\nextendedKeyUsage=serverAuth,clientAuth\n')
  const certs = { cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key'), ca: path.join(dir, 'ca.pem') }
  server = await RedisServer.start({ tls: certs })
  // Its readiness check presents the server's own pair, which the CA signed too.
  mutual = await RedisServer.start({ tls: { ...certs, authClients: true } })
  named = await RedisServer.start({ tls: { ...certs, cert: path.join(dir, 'named.pem'), key: path.join(dir, 'named.key') } })
  // Each node's bus on a port of its own: the default, port + 10000, is
  // past 65535 for half the ephemeral range.
  const clusterArgs = async () => ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--tls-cluster', 'yes', '--cluster-port', String(await freePort())]
  cluster = await Promise.all([0, 1, 2].map(async () => RedisServer.start({ tls: certs, args: await clusterArgs() })))
  const cli = ['--tls', '--cacert', certs.ca, '--cert', certs.cert, '--key', certs.key]
  execFileSync('redis-cli', [...cli, '--cluster', 'create', ...cluster.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore', timeout: 30_000 })
  const until = Date.now() + 20_000
  for (const node of cluster) {
    while (!/cluster_state:ok/.test(execFileSync('redis-cli', [...cli, '-p', String(node.port), 'cluster', 'info']).toString())) {
      if (Date.now() > until) throw new Error('the TLS cluster did not come up')
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  cluster.cli = (node, ...args) => execFileSync('redis-cli', [...cli, '-p', String(node.port), ...args]).toString().trim()
})

test.after.always(async () => {
  if (server) await server.dispose()
  if (mutual) await mutual.dispose()
  if (named) await named.dispose()
  await Promise.all(cluster.map((n) => n.dispose()))
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

const sess = () => ({ cookie: { originalMaxAge: 1000, expires: new Date(Date.now() + 60_000).toISOString() }, user: 'ada' })

function storeFor(t, options) {
  const store = new RedisSessionStore({ prefix: 'tls:', commandTimeout: 1000, ...options })
  t.teardown(() => store.close())
  return store
}

let sids = 0
async function roundTrip(t, store) {
  const s = sess()
  const sid = `s${sids++}`
  await store.set(sid, s)
  t.deepEqual(await store.get(sid), s)
}

test('a rediss:// URL talks TLS, verifying the server with the given CA', async (t) => {
  await roundTrip(t, storeFor(t, { url: server.url, tls: { ca: pem('ca.pem') } }))
  await roundTrip(t, storeFor(t, { url: server.url, tls: { ca: fs.readFileSync(path.join(dir, 'ca.pem')) } }))
})

test('a certificate the system does not trust is refused with a clear error', async (t) => {
  const err = await t.throwsAsync(storeFor(t, { url: server.url }).get('a'))
  t.is(err.code, 'ERR_REDIS_UNAVAILABLE')
  t.regex(err.message, /certificate/i)
})

test('rejectUnauthorized: false, or #insecure, skips verifying the server', async (t) => {
  await roundTrip(t, storeFor(t, { url: server.url, tls: { rejectUnauthorized: false } }))
  await roundTrip(t, storeFor(t, { url: `${server.url}/#insecure` }))
})

test('mutual TLS: a client certificate signed by the CA is accepted; none is refused', async (t) => {
  const tls = { ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key') }
  await roundTrip(t, storeFor(t, { url: mutual.url, tls }))
  const err = await t.throwsAsync(storeFor(t, { url: mutual.url, tls: { ca: pem('ca.pem') } }).get('a'))
  t.true(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT'].includes(err.code), `${err.code}: ${err.message}`)
})

test('a TLS cluster: every master is reached over TLS, verified with the given CA', async (t) => {
  const store = storeFor(t, { cluster: { nodes: [cluster[0].url] }, tls: { ca: pem('ca.pem') } })
  const sids = Array.from({ length: 60 }, (_, i) => `tc${i}`)
  const s = sess()
  await Promise.all(sids.map((sid) => store.set(sid, s)))
  t.deepEqual(await Promise.all(sids.map((sid) => store.get(sid))), sids.map(() => s))
  t.is(await store.length(), sids.length)
  // The seed named one node; the sessions live on all three.
  for (const node of cluster) t.true(Number(cluster.cli(node, 'dbsize')) > 0, `node ${node.port} holds sessions`)
  await store.clear()
  t.is(await store.length(), 0)
  // Without the CA, no node is trusted.
  const untrusted = storeFor(t, { cluster: { nodes: [cluster[0].url] }, commandTimeout: 1000 })
  const err = await t.throwsAsync(untrusted.get('tc1'))
  t.true(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT'].includes(err.code), `${err.code}: ${err.message}`)
})

test('tls.servername: the certificate is checked against that name, not the URL\'s address', async (t) => {
  const ca = pem('ca.pem')
  // The certificate does not name 127.0.0.1: refused without the name...
  const err = await t.throwsAsync(storeFor(t, { url: named.url, tls: { ca } }).get('a'))
  t.is(err.code, 'ERR_REDIS_UNAVAILABLE')
  t.regex(err.message, /certificate/i)
  // ...and with the wrong one...
  const wrong = await t.throwsAsync(storeFor(t, { url: named.url, tls: { ca, servername: 'other.test' } }).get('a'))
  t.is(wrong.code, 'ERR_REDIS_UNAVAILABLE')
  // ...accepted with the name it carries, and again after the server restarts.
  const store = storeFor(t, { url: named.url, tls: { ca, servername: 'session-redis.test' } })
  await roundTrip(t, store)
  t.is(await store.length(), 1)
  await named.stop()
  await named.start()
  let back = false
  for (let i = 0; i < 50 && !back; i++) {
    back = await store.get('nothing').then(() => true, () => false)
    if (!back) await new Promise((r) => setTimeout(r, 50))
  }
  t.true(back, 'reconnects after a restart')
  await roundTrip(t, store)
  // A stalled server: each call settles within the bound, then it works again.
  const bounded = storeFor(t, { url: named.url, tls: { ca, servername: 'session-redis.test' }, commandTimeout: 400 })
  await roundTrip(t, bounded)
  named.signal('SIGSTOP')
  try {
    const started = Date.now()
    const stalled = await t.throwsAsync(bounded.get('a'))
    t.is(stalled.code, 'ERR_REDIS_TIMEOUT')
    t.true(Date.now() - started < 400 + 300, `settled in ${Date.now() - started} ms`)
  } finally {
    named.signal('SIGCONT')
  }
  await roundTrip(t, bounded)
})

test('a plain redis:// URL to the TLS port does not hang', async (t) => {
  const store = storeFor(t, { url: `redis://127.0.0.1:${server.port}`, commandTimeout: 500 })
  const err = await t.throwsAsync(store.get('a'))
  t.true(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT'].includes(err.code), err.code)
})

test('bad tls options fail at construction', (t) => {
  for (const [options, pattern] of [
    [{ url: 'redis://127.0.0.1:1', tls: { ca: pem('ca.pem') } }, /rediss:\/\//],
    [{ url: 'rediss://127.0.0.1:1', tls: 'yes' }, /must be an object/],
    [{ url: 'rediss://127.0.0.1:1', tls: { cert: pem('client.pem') } }, /go together/],
    [{ url: 'rediss://127.0.0.1:1', tls: { ca: 42 } }, /PEM/],
    [{ url: 'rediss://127.0.0.1:1', tls: { servername: 'h/x' } }, /servername/],
    [{ cluster: { nodes: ['rediss://127.0.0.1:1'] }, tls: { servername: 'h' } }, /servername/],
    [{ url: 'rediss://127.0.0.1:1', tls: { rejectUnauthorized: 'no' } }, /boolean/],
    [{ url: 'rediss://127.0.0.1:1', tls: { passphrase: 'p' } }, /unknown option "tls.passphrase"/],
    [{ url: 'rediss://127.0.0.1:1', tls: { ca: 'not a certificate' } }, /PEM/],
  ]) {
    t.throws(() => new RedisSessionStore(options), { instanceOf: TypeError, message: pattern }, JSON.stringify(options))
  }
})
