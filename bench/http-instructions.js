'use strict'

// Instructions per HTTP request, which unlike req/s do not drift with the
// machine: the Express app of http-server.js (a get and a touch of a
// logged-in session per request) run under valgrind's callgrind twice,
// each after the same logins and warm-up, once serving REQUESTS requests
// and once 3 × REQUESTS; the difference divided by the requests it adds
// leaves out startup, logins and warm-up. Counts the server process's
// user-space instructions, all threads (the kernel's socket work is not
// counted); the load runs outside valgrind.
//   node bench/http-instructions.js [KINDS] [CONNECTIONS] [REQUESTS]
//   node bench/http-instructions.js ours,connect-redis 64 1000
// KINDS are stores.js's (ours, connect-redis, memory, ...). Needs valgrind
// and a redis-server on REDIS_URL (default redis://127.0.0.1:6379).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnChild } = require('./ipc')
const { CALLGRIND, instructions } = require('./callgrind')

const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const WARMUP = 2000
// Under valgrind a request takes about 50 times as long, the first ones
// (not yet compiled) far longer.
const SLOW_MS = 600_000
const REQUEST_TIMEOUT_S = 120

async function count(kind, connections, requests) {
  const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'http-instr-')), 'valgrind.log')
  const server = spawnChild('http-server.js', [kind, url], {
    execPath: 'valgrind',
    execArgv: [...CALLGRIND, `--log-file=${log}`, process.execPath],
  })
  const loader = spawnChild('http-load.js')
  try {
    const { port } = await server.call('open', {}, SLOW_MS)
    await loader.call('login', { port, sessions: connections }, SLOW_MS)
    for (const amount of [WARMUP, requests]) {
      const r = await loader.call('load', { port, connections, amount, timeout: REQUEST_TIMEOUT_S }, SLOW_MS)
      if (r.requests !== amount || r.non2xx || r.errors) {
        throw new Error(`${kind}: ${r.requests} of ${amount} requests, ${r.non2xx} non-2xx, ${r.errors} errors`)
      }
    }
  } finally {
    await loader.stop()
    await server.stop(SLOW_MS)
  }
  const report = fs.readFileSync(log, 'utf8')
  fs.rmSync(path.dirname(log), { recursive: true, force: true })
  return instructions(report, kind)
}

async function main([kinds = 'ours,connect-redis', connections = '64', requests = '1000']) {
  for (const kind of kinds.split(',')) {
    const n = Number(requests)
    const few = await count(kind, Number(connections), n)
    const more = await count(kind, Number(connections), 3 * n)
    console.log(`${kind}, ${connections} connections: ${Math.round((more - few) / (2 * n))} instructions per request`)
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err)
  process.exit(1)
})
