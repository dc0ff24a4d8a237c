'use strict'

// The backends the conformance suite runs on. Each factory starts its
// servers (once per test file) and resolves to
//   { name, options(), shared(), teardown() }
// where `options()` are the store options that reach the backend, and
// `shared()` those of a store that must see the same data as other stores
// made with `shared()` (two app instances). On Redis both are the same
// server; on the embedded engine `memory://` is private to one store and
// `memory://<name>` is shared by name within the process.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { RedisServer, redisForTests, untilReplicaSynced, untilSentinelsSeeReplica } = require('./redis')
const { RedisCluster } = require('./cluster')

const hostPort = (url) => {
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port) }
}

// Copies the bytes of key `from` over key `to`, keeping `to`'s expiry, with
// a plain client (ioredis) that `connect()` makes for this one call.
async function copyWith(connect, from, to) {
  const client = connect()
  try {
    const value = await client.getBuffer(from)
    if (value === null) throw new Error('copyValue: the source key holds nothing')
    await client.set(to, value, 'KEEPTTL')
  } finally {
    client.disconnect()
  }
}

// `client()`: the options of an ioredis client on the same data as the
// stores ({ url } for one server, { cluster: nodes }, or ioredis options).
function redisBackend(name, options, teardown, client) {
  const Redis = require('ioredis')
  const connect = () => {
    const { url, cluster, ...c } = client()
    if (cluster) return new Redis.Cluster(cluster)
    return url ? new Redis(url, { maxRetriesPerRequest: 1 }) : new Redis({ maxRetriesPerRequest: 1, ...c })
  }
  return { name, options, shared: options, teardown, copyValue: (from, to) => copyWith(connect, from, to) }
}

async function singleNode() {
  const redis = await redisForTests()
  return redisBackend('single', () => ({ url: redis.url }), () => redis.dispose(), () => ({ url: redis.url }))
}

async function cluster() {
  const c = await RedisCluster.start({ masters: 3 })
  return redisBackend('cluster', () => ({ cluster: { nodes: c.nodes } }), () => c.stop(), () => ({ cluster: c.nodes.map(hostPort) }))
}

// A password-protected master, one replica and three sentinels, as
// sentinel.test.js runs them, but slow to declare the master down: nothing
// here fails over, and a master busy for 400 ms on a loaded machine must not
// be replaced in the middle of a test. The replica makes logouts go through
// the WAIT for a replica, as in production.
async function startSentinelGroup({ name = 'conformance', password = 'c0nform', downAfterMs = 10_000 } = {}) {
  const servers = []
  const dispose = async () => {
    for (const s of servers.reverse()) await s.dispose()
  }
  try {
    const auth = ['--requirepass', password, '--masterauth', password]
    const master = await RedisServer.start({ args: auth })
    servers.push(master)
    const replica = await RedisServer.start({ args: [...auth, '--replicaof', '127.0.0.1', String(master.port)] })
    servers.push(replica)
    const conf = [
      `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
      `sentinel auth-pass ${name} ${password}`,
      `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
      '',
    ].join('\n')
    const sentinels = await Promise.all([0, 1, 2].map(() => RedisServer.start({ sentinel: conf })))
    servers.push(...sentinels)
    // The replica is in sync (logouts WAIT for it), and every sentinel
    // answers for the master and has seen the replica.
    await untilReplicaSynced(replica.url, password)
    await untilSentinelsSeeReplica(sentinels.map((s) => s.url), name)
    return { name, password, nodes: sentinels.map((s) => s.url), dispose }
  } catch (err) {
    await dispose()
    throw err
  }
}

async function sentinel() {
  const group = await startSentinelGroup()
  return redisBackend(
    'sentinel',
    () => ({ sentinel: { nodes: group.nodes, name: group.name, password: group.password, db: 1 } }),
    group.dispose,
    () => ({ sentinels: group.nodes.map(hostPort), name: group.name, password: group.password, db: 1 }),
  )
}

// A CA, and a server certificate for 127.0.0.1 it signs (also usable as a
// client certificate), made with openssl in `dir`, as tls.test.js does.
function makeCertificates(dir) {
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign')
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost')
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n')
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext')
  return { cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key'), ca: path.join(dir, 'ca.pem') }
}

// A TLS-only server that requires a client certificate: the store verifies
// the server with the CA and presents its own certificate (mutual TLS).
async function tls() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-conf-tls-'))
  let server
  try {
    const certs = makeCertificates(dir)
    server = await RedisServer.start({ tls: { ...certs, authClients: true } })
    const pem = (file) => fs.readFileSync(file, 'utf8')
    const tlsOptions = { ca: pem(certs.ca), cert: pem(certs.cert), key: pem(certs.key) }
    return redisBackend(
      'tls',
      () => ({ url: server.url, tls: tlsOptions }),
      async () => {
        await server.dispose()
        fs.rmSync(dir, { recursive: true, force: true })
      },
      () => ({ ...hostPort(server.url), tls: tlsOptions }),
    )
  } catch (err) {
    if (server) await server.dispose()
    fs.rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

// What only the dev build's hooks show of the embedded engine: a copy of a
// key's bytes (engineCommand, on the shared engine `url` names), and what
// every engine of the process holds (engineHeld).
function engineBackend(name, options, shared, teardown) {
  const { engineCommand, engineHeld } = require('../../lib/native').loadBinding()
  const copyValue = async (from, to) => {
    const { url } = shared()
    const value = engineCommand(url, [Buffer.from('GET'), Buffer.from(from)])
    if (value === null) throw new Error('copyValue: the source key holds nothing')
    engineCommand(url, [Buffer.from('SET'), Buffer.from(to), value, Buffer.from('KEEPTTL')])
  }
  return { name, options, shared, teardown, copyValue, held: engineHeld }
}

// The embedded engine in this process: nothing to start.
async function memory() {
  const shared = `conformance-${process.pid}`
  return engineBackend('memory', () => ({ url: 'memory://' }), () => ({ url: `memory://${shared}` }), async () => {})
}

// The embedded engine on a file: a fresh temporary file for the test file,
// shared by every store of the process that names the same path.
async function file() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-conf-file-'))
  const url = `file://${path.join(dir, 'sessions.db')}`
  const options = () => ({ url })
  return engineBackend('file', options, options, async () => fs.rmSync(dir, { recursive: true, force: true }))
}

module.exports = { singleNode, cluster, sentinel, tls, memory, file, startSentinelGroup, makeCertificates }
