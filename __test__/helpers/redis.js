'use strict'

// Starts a real redis-server on a free loopback port for a test file, or
// uses REDIS_URL when it is set. Stops what it started.
const { spawn } = require('node:child_process')
const net = require('node:net')
const tls = require('node:tls')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { RawRedis } = require('./raw')

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

// `certs`: the server's { cert, key } files for a TLS server (presented as
// the client certificate too, for servers that ask for one), or null.
function ping(port, timeoutMs = 200, certs = null) {
  return new Promise((resolve) => {
    const sock = certs
      ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, cert: fs.readFileSync(certs.cert), key: fs.readFileSync(certs.key) })
      : net.connect({ port, host: '127.0.0.1' })
    const timer = setTimeout(() => finish(false), timeoutMs)
    function finish(ok) {
      clearTimeout(timer)
      sock.destroy()
      resolve(ok)
    }
    sock.on('error', () => finish(false))
    sock.on(certs ? 'secureConnect' : 'connect', () => sock.write('PING\r\n'))
    // A server with a password answers NOAUTH: it is up.
    sock.on('data', (d) => finish(/^(\+PONG|-NOAUTH)/.test(d.toString())))
  })
}

async function waitFor(check, timeoutMs, what) {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
}

// Resolves once the replica at `url` has synced with its master (its first
// sync can take seconds on a loaded machine).
function untilReplicaSynced(url, password, timeoutMs = 15_000) {
  return waitFor(
    async () => {
      const raw = await RawRedis.connect(url)
      await raw.call('AUTH', password)
      const info = String(await raw.call('INFO', 'replication'))
      raw.close()
      return /master_link_status:up/.test(info)
    },
    timeoutMs,
    'the replica to sync',
  )
}

// Resolves once every sentinel at `urls` lists the one replica of `name`.
function untilSentinelsSeeReplica(urls, name, timeoutMs = 15_000) {
  return waitFor(
    async () => {
      for (const url of urls) {
        const raw = await RawRedis.connect(url)
        const replicas = await raw.call('SENTINEL', 'replicas', name)
        raw.close()
        if (!Array.isArray(replicas) || replicas.length !== 1) return false
      }
      return true
    },
    timeoutMs,
    'the sentinels to see the replica',
  )
}

// A redis-server child process on its own port; restartable on the same port.
class RedisServer {
  // `tls`: { cert, key, ca } file paths for a TLS-only server, and
  // `authClients: true` to require client certificates signed by `ca`.
  // `args`: more redis-server arguments (e.g. --replicaof). `sentinel`: the
  // text of a sentinel configuration, to run a sentinel instead.
  constructor(port, { tls: certs, args = [], sentinel } = {}) {
    this.port = port
    this.certs = certs || null
    this.extra = args
    this.sentinel = sentinel
    this.url = `${certs ? 'rediss' : 'redis'}://127.0.0.1:${port}`
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-redis-'))
    this.proc = null
  }

  static async start(options) {
    const server = new RedisServer(await freePort(), options)
    await server.start()
    return server
  }

  async start() {
    const c = this.certs
    const ports = c
      ? ['--port', '0', '--tls-port', String(this.port), '--tls-cert-file', c.cert, '--tls-key-file', c.key,
          '--tls-ca-cert-file', c.ca, '--tls-auth-clients', c.authClients ? 'yes' : 'no']
      : ['--port', String(this.port)]
    const common = ['--bind', '127.0.0.1', '--dir', this.dir, '--daemonize', 'no', '--loglevel', 'warning']
    let args = [...ports, ...common, '--save', '', '--appendonly', 'no', ...this.extra]
    if (this.sentinel !== undefined) {
      // Sentinels rewrite their configuration file, so each gets its own.
      const conf = path.join(this.dir, 'sentinel.conf')
      if (!fs.existsSync(conf)) fs.writeFileSync(conf, this.sentinel)
      args = [conf, '--sentinel', ...ports, ...common]
    }
    // A shell guard holds redis-server's pid and kills it when our stdin
    // closes, so a test process that dies never leaves a server behind.
    const guard = 'redis-server "$@" & pid=$!; echo $pid; read _; kill -9 $pid 2>/dev/null'
    const proc = spawn('sh', ['-c', guard, 'sh', ...args], { stdio: ['pipe', 'pipe', 'ignore'] })
    this.proc = proc
    this.exited = new Promise((resolve) => proc.once('exit', resolve))
    // The guard's first line is the pid; redis-server's own log lines may
    // follow in the same chunk, and are drained so the pipe never fills.
    this.pid = await new Promise((resolve, reject) => {
      proc.stdout.once('data', (d) => resolve(Number(String(d).split('\n')[0].trim())))
      proc.once('error', reject)
    })
    proc.stdout.resume()
    await waitFor(() => ping(this.port, 200, this.certs), 10_000, `redis-server on port ${this.port}`)
  }

  /** Sends a signal to redis-server itself (SIGSTOP/SIGCONT to stall it). */
  signal(sig) {
    process.kill(this.pid, sig)
  }

  async stop() {
    if (!this.proc) return
    const proc = this.proc
    this.proc = null
    try {
      process.kill(this.pid, 'SIGKILL')
    } catch {
      // already gone
    }
    proc.stdin.end()
    await this.exited
    await waitFor(async () => !(await ping(this.port, 200, this.certs)), 5_000, `redis-server on port ${this.port} to stop`)
  }

  async dispose() {
    await this.stop()
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

// For a test file: { url, server } where server is null when REDIS_URL is used.
async function redisForTests() {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, server: null, dispose: async () => {} }
  const server = await RedisServer.start()
  return { url: server.url, server, dispose: () => server.dispose() }
}

// The lines of a sentinel configuration that watch the master `name` on
// `port` (password-protected), quick to fail over as the tests need.
function sentinelMonitor(name, port, password) {
  return [
    `sentinel monitor ${name} 127.0.0.1 ${port} 2`,
    `sentinel auth-pass ${name} ${password}`,
    `sentinel down-after-milliseconds ${name} 400`,
    `sentinel failover-timeout ${name} 2000`,
    `sentinel parallel-syncs ${name} 1`,
  ]
}

module.exports = { RedisServer, redisForTests, freePort, sentinelMonitor, untilReplicaSynced, untilSentinelsSeeReplica }
