'use strict'

// What redis-session-store/nestjs adds to a request: the same Nest route
// with sessions from SessionModule and wired by hand (app.use(session())),
// the same store and load, rounds alternating. Part "nest" of run.js.
const { spawnChild } = require('./ipc')
const { medians, ratio } = require('./stats')

const MODES = { hand: 'Nest, express-session wired by hand', module: 'Nest, SessionModule' }
const FIELDS = ['reqPerSec', 'p50Ms', 'cpuUsPerReq', 'elu']

async function nestBench(c, url, problems, log) {
  const modes = Object.keys(MODES).map((mode) => ({ mode, label: MODES[mode], runs: [] }))
  const loader = spawnChild('http-load.js')
  const loadTimeout = (s) => s * 1000 + 30_000
  try {
    for (let round = 1; round <= c.httpRounds; round++) {
      for (const m of modes) {
        const server = spawnChild('nest-server.js', [m.mode, url])
        try {
          const { port } = await server.call('open', {}, 20_000)
          await loader.call('login', { port, sessions: c.connections }, 30_000)
          if (c.httpWarmupSeconds > 0) await loader.call('load', { port, connections: c.connections, seconds: c.httpWarmupSeconds }, loadTimeout(c.httpWarmupSeconds))
          await server.call('mark', {}, 5_000)
          const load = await loader.call('load', { port, connections: c.connections, seconds: c.httpSeconds }, loadTimeout(c.httpSeconds))
          const srv = await server.call('report', {}, 5_000)
          const r = { ...load, cpuUsPerReq: srv.cpuUsPerReq, elu: srv.elu }
          m.runs.push(r)
          if (r.non2xx || r.errors) problems.push(`Nest ${m.mode}, round ${round}: ${r.non2xx} non-2xx responses, ${r.errors} errors`)
          log(`nest round ${round}/${c.httpRounds} ${m.mode.padEnd(7)} ${Math.round(r.reqPerSec).toString().padStart(6)} req/s  ${Math.round(r.cpuUsPerReq).toString().padStart(5)} µs server CPU/req`)
        } finally {
          await server.stop()
        }
      }
    }
  } finally {
    await loader.stop()
  }
  for (const m of modes) m.median = medians(m.runs, FIELDS)
  const [hand, mod] = modes.map((m) => m.median)
  return { modes, moduleVsHand: { reqPerSec: ratio(mod.reqPerSec, hand.reqPerSec), cpuUsPerReq: ratio(mod.cpuUsPerReq, hand.cpuUsPerReq) } }
}

module.exports = { nestBench, MODES }
