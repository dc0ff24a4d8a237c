'use strict'

// Redis Sentinel over TLS: a TLS-only master and replica (TLS replication,
// a password) and three sentinels that reach them over TLS, each listening
// on a plain port and a TLS port, with a login of their own. Certificates
// are made by the test with openssl, as in tls.test.js. The store verifies
// the master (and rediss:// sentinels) with the CA, and follows a failover.
const test = require('ava')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { RedisSessionStore } = require('..')
const { RedisServer, freePort, sentinelMonitor } = require('./helpers/redis')
const { untilRecovered } = require('./helpers/suite')

const NAME = 'tls-master'
const PASSWORD = 'm4ster'
const SENTINEL_PASSWORD = 'sent1nel'
const TIMEOUT = 500
let dir
let certs
let master
let replica
const sentinels = [] // { server, tlsPort }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const pem = (name) => fs.readFileSync(path.join(dir, name), 'utf8')
const sess = (n) => ({ cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString() }, n, userId: 'ada' })

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
}

// redis-cli over TLS to a data node, logged in to the master's password.
function cli(node, ...args) {
  return execFileSync('redis-cli', ['--tls', '--cacert', certs.ca, '-p', String(node.port), '-a', PASSWORD, '--no-auth-warning', ...args]).toString().trim()
}

// The sentinels' plain redis:// URLs, or their rediss:// ones.
function sentinelUrls(scheme = 'redis') {
  return sentinels.map((s) => `${scheme}://:${SENTINEL_PASSWORD}@127.0.0.1:${scheme === 'rediss' ? s.tlsPort : s.server.port}`)
}

function sentinelCli(...args) {
  return execFileSync('redis-cli', ['-p', String(sentinels[0].server.port), '-a', SENTINEL_PASSWORD, '--no-auth-warning', ...args]).toString().trim()
}

async function until(check, ms, what) {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

function storeFor(t, options) {
  const store = new RedisSessionStore({ prefix: 'stls:', commandTimeout: TIMEOUT, ...options })
  t.teardown(() => store.close())
  return store
}

const options = (scheme, tls) => ({
  sentinel: { nodes: sentinelUrls(scheme), name: NAME, password: PASSWORD, db: 2, tls: true },
  ...(tls && { tls }),
})

test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-sentinel-tls-'))
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign')
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost')
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n')
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext')
  certs = { cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key'), ca: path.join(dir, 'ca.pem') }

  const data = ['--tls-replication', 'yes', '--requirepass', PASSWORD, '--masterauth', PASSWORD]
  master = await RedisServer.start({ tls: certs, args: data })
  replica = await RedisServer.start({ tls: certs, args: [...data, '--replicaof', '127.0.0.1', String(master.port)] })
  for (let i = 0; i < 3; i++) {
    // A plain port (the helper's) and a TLS port; with tls-replication the
    // sentinels reach the data nodes and each other over TLS.
    const tlsPort = await freePort()
    const conf = [
      `tls-port ${tlsPort}`,
      `tls-cert-file ${certs.cert}`,
      `tls-key-file ${certs.key}`,
      `tls-ca-cert-file ${certs.ca}`,
      'tls-auth-clients no',
      'tls-replication yes',
      `requirepass ${SENTINEL_PASSWORD}`,
      `sentinel sentinel-pass ${SENTINEL_PASSWORD}`,
      ...sentinelMonitor(NAME, master.port, PASSWORD),
      '',
    ].join('\n')
    sentinels.push({ server: await RedisServer.start({ sentinel: conf }), tlsPort })
  }
  // The replica is in sync, and the sentinels know it and each other.
  await until(() => /master_link_status:up/.test(cli(replica, 'info', 'replication')), 10_000, 'the replica to sync')
  await until(() => {
    const master = sentinelCli('sentinel', 'master', NAME)
    return /num-slaves\n1\b/.test(master) && /num-other-sentinels\n2\b/.test(master)
  }, 15_000, 'the sentinels to see the replica and each other')
})

test.after.always(async () => {
  for (const s of [...sentinels.map((s) => s.server), replica, master]) if (s) await s.dispose()
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

// Serial, and the failover last: it kills the master the others use.
test.serial('plain sentinels, a TLS master: verified with the CA, sessions round-trip', async (t) => {
  const store = storeFor(t, options('redis', { ca: pem('ca.pem') }))
  await store.set('plain', sess(1))
  t.is((await store.get('plain')).n, 1)
  t.is(cli(master, '-n', '2', 'exists', 'stls:plain'), '1', 'written to the master, in database 2')
})

test.serial('rediss:// sentinels, a TLS master: both verified with the CA', async (t) => {
  const store = storeFor(t, options('rediss', { ca: fs.readFileSync(certs.ca) }))
  await store.set('secure', sess(2))
  t.is((await store.get('secure')).n, 2)
  t.deepEqual((await store.listUserSessions('ada')).map((s) => s.id).sort(), ['plain', 'secure'])
})

test.serial('rejectUnauthorized: false reaches the TLS master and sentinels without the CA', async (t) => {
  const store = storeFor(t, options('rediss', { rejectUnauthorized: false }))
  t.is((await store.get('secure')).n, 2)
})

test.serial('without the CA, calls fail within the bound with a clear error', async (t) => {
  const untrusted = { codes: ['ERR_REDIS_UNAVAILABLE'], message: /certificate/i }
  // The TLS port drops a plain client; a slower drop would be a timeout.
  const plain = { codes: ['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT'], message: /./ }
  for (const [what, opts, { codes, message }] of [
    ['the master untrusted', options('redis'), untrusted],
    ['the sentinels untrusted', options('rediss'), untrusted],
    ['no sentinel.tls for a TLS master', { sentinel: { ...options('redis').sentinel, tls: false } }, plain],
  ]) {
    const store = storeFor(t, opts)
    const started = Date.now()
    const err = await t.throwsAsync(store.get('plain'))
    t.log(`${what}: ${err.code}: ${err.message}`)
    t.true(codes.includes(err.code), `${what}: ${err.code}: ${err.message}`)
    t.regex(err.message, message, what)
    t.true(Date.now() - started < TIMEOUT + 300, `${what}: took ${Date.now() - started} ms`)
  }
})

test.serial('the store follows a failover of the TLS master, with the data', async (t) => {
  const store = storeFor(t, options('rediss', { ca: pem('ca.pem') }))
  await store.set('before', sess(3))
  await until(() => cli(replica, '-n', '2', 'exists', 'stls:before') === '1', 5_000, 'the replica to have the session')
  await master.stop()

  // Calls fail within the bound until the sentinels promote the replica;
  // then the same store works again, over TLS, with the data.
  const { recovered, failures } = await untilRecovered(t, (call) => store.set(`after-${call}`, sess(4)), TIMEOUT + 300)
  t.not(recovered, null, 'the store never recovered')
  t.log(`recovered ${recovered} ms after the master died; failures seen: ${failures.join(', ') || 'none'}`)
  t.is(sentinelCli('sentinel', 'get-master-addr-by-name', NAME).split('\n')[1], String(replica.port))
  t.is((await store.get('before')).n, 3)
  t.is((await store.get('plain')).n, 1)
})

test('bad sentinel tls options fail at construction', (t) => {
  const sentinel = { nodes: ['redis://127.0.0.1:1'], name: 'm' }
  const ca = pem('ca.pem')
  for (const [opts, pattern] of [
    [{ sentinel, tls: { ca } }, /needs "sentinel.tls: true" .* or rediss:\/\//],
    [{ sentinel: { ...sentinel, tls: 'yes' } }, /"sentinel.tls" must be a boolean/],
    [{ sentinel: { ...sentinel, nodes: ['redis://127.0.0.1:1', 'rediss://127.0.0.1:2'] } }, /mixes redis:\/\/ and rediss:\/\//],
    [{ sentinel: { ...sentinel, nodes: ['redis://:a@127.0.0.1:1', 'redis://:b@127.0.0.1:2'] } }, /same login/],
    [{ sentinel: { ...sentinel, tls: true }, tls: { rejectUnauthorized: false, cert: ca, key: ca } }, /tls.cert.*rejectUnauthorized/],
    [{ sentinel: { ...sentinel, tls: true }, tls: { servername: 'h' } }, /servername/],
  ]) {
    t.throws(() => new RedisSessionStore(opts), { instanceOf: TypeError, message: pattern }, JSON.stringify(opts))
  }
  // TLS to the sentinels alone, or to the master alone, is fine.
  t.notThrows(() => new RedisSessionStore({ sentinel: { ...sentinel, nodes: ['rediss://127.0.0.1:1'] }, tls: { ca } }).close())
  t.notThrows(() => new RedisSessionStore({ sentinel: { ...sentinel, tls: true } }).close())
})
