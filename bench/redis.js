'use strict'

// The Redis the benchmark talks to: REDIS_URL when set, else a fresh
// redis-server on a free loopback port (the test helper's RedisServer).
// Also a tiny one-shot INFO reader, to charge Redis's own CPU to each run.
const net = require('node:net')
const { RedisServer } = require('../__test__/helpers/redis.js')

async function startRedis() {
  if (process.env.REDIS_URL) {
    return { url: process.env.REDIS_URL, external: true, pid: null, stop: async () => {}, killNow() {} }
  }
  const server = await RedisServer.start()
  return {
    url: server.url,
    external: false,
    pid: server.pid || (server.proc && server.proc.pid),
    stop: () => server.dispose(),
    // Synchronous last resort for signal and 'exit' handlers: kill
    // redis-server itself (the helper may run it under a shell guard, whose
    // pid is server.pid's parent), then the helper's child, then the data dir.
    killNow() {
      const proc = server.proc
      if (!proc) return
      for (const pid of [server.pid, proc.pid]) {
        try {
          if (pid) process.kill(pid, 'SIGKILL')
        } catch {}
      }
      try {
        require('node:fs').rmSync(server.dir, { recursive: true, force: true })
      } catch {}
    },
  }
}

function encode(args) {
  let out = `*${args.length}\r\n`
  for (const a of args) out += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`
  return out
}

// Sends one command on a fresh connection (AUTH/SELECT from the URL) and
// resolves to the raw reply text, or null on error or after timeoutMs.
function command(url, args, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const u = new URL(url)
    const pre = []
    if (u.password) pre.push(u.username ? ['AUTH', decodeURIComponent(u.username), decodeURIComponent(u.password)] : ['AUTH', decodeURIComponent(u.password)])
    const db = u.pathname && u.pathname.length > 1 ? u.pathname.slice(1) : ''
    if (db) pre.push(['SELECT', db])
    const expectReplies = pre.length + 1
    const tls = u.protocol === 'rediss:'
    const opts = { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) }
    const sock = tls ? require('node:tls').connect({ ...opts, servername: opts.host }) : net.connect(opts)
    let buf = ''
    let done = false
    const timer = setTimeout(() => finish(null), timeoutMs)
    function finish(v) {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      resolve(v)
    }
    sock.on('error', () => finish(null))
    sock.on(tls ? 'secureConnect' : 'connect', () => sock.write([...pre, args].map(encode).join('')))
    sock.on('data', (d) => {
      buf += d.toString('utf8')
      // Skip the AUTH/SELECT replies (simple strings), then read one bulk string.
      let at = 0
      for (let i = 0; i < expectReplies - 1; i++) {
        if (buf[at] === '-') return finish(null)
        const end = buf.indexOf('\r\n', at)
        if (end < 0) return
        at = end + 2
      }
      if (at >= buf.length) return
      if (buf[at] !== '$') return finish(buf[at] === '+' ? buf.slice(at + 1, buf.indexOf('\r\n', at)) : null)
      const end = buf.indexOf('\r\n', at)
      if (end < 0) return
      const len = Number(buf.slice(at + 1, end))
      if (Buffer.byteLength(buf.slice(end + 2)) < len) return
      finish(buf.slice(end + 2, end + 2 + len))
    })
  })
}

async function info(url, section) {
  const text = await command(url, ['INFO', section])
  if (text == null) return null
  const out = {}
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':')
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

// Redis's own CPU time (user + system, all threads) in microseconds, or null.
// `url` may list a cluster's nodes, comma-separated: their CPU adds up.
async function redisCpuMicros(url) {
  let total = 0
  for (const one of url.split(',')) {
    const cpu = await info(one, 'cpu')
    if (!cpu || cpu.used_cpu_sys == null) return null
    total += (Number(cpu.used_cpu_sys) + Number(cpu.used_cpu_user)) * 1e6
  }
  return total
}

// Redis's CPU (user + system) and system time in microseconds and its
// command calls (INFO commandstats: commands inside scripts count one by
// one), summed over a cluster's nodes; null when a node does not answer.
async function redisUsage(url) {
  const total = { cpuUs: 0, sysUs: 0, calls: 0 }
  for (const one of url.split(',')) {
    const cpu = await info(one, 'cpu')
    const stats = await info(one, 'commandstats')
    if (!cpu || cpu.used_cpu_sys == null || !stats) return null
    total.cpuUs += (Number(cpu.used_cpu_sys) + Number(cpu.used_cpu_user)) * 1e6
    total.sysUs += Number(cpu.used_cpu_sys) * 1e6
    for (const line of Object.values(stats)) total.calls += Number(/calls=(\d+)/.exec(line)?.[1] ?? 0)
  }
  return total
}

async function redisVersion(url) {
  const server = await info(url, 'server')
  return server ? server.redis_version : null
}

module.exports = { startRedis, command, info, redisCpuMicros, redisUsage, redisVersion }
