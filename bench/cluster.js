'use strict'

// Throughput on a Redis Cluster beside a single node: this store on one
// redis-server, this store on a 3-master cluster on the same machine, and
// connect-redis 9 with node-redis 6's cluster client on that cluster. Same
// workload as the store benchmark (store-worker.js), each store in its own
// process, alternating rounds. All of them share the same 2 cores with
// every redis-server, so the cluster cannot be faster here: the figure says
// what routing across nodes costs, not what more machines would give.
const { spawnChild } = require('./ipc')
const { medians, ratio, fmt } = require('./stats')
const { sizeLabel } = require('./sessions')
const { RedisCluster } = require('../__test__/helpers/cluster.js')

const log = (...args) => console.error('[bench]', ...args)
const FIELDS = ['opsPerSec', 'cpuUsPerOp', 'elu', 'p50Ms', 'p99Ms', 'redisCpuUsPerOp']
const RUNS = [
  { name: 'ours, one node', kind: 'ours', on: 'single' },
  { name: 'ours, cluster', kind: 'ours-cluster', on: 'cluster' },
  { name: 'connect-redis, cluster', kind: 'connect-redis-cluster', on: 'cluster' },
]

// c: { rounds, clusterSize, clusterConcurrency, pool, warmupMs, durationMs }
async function clusterBench(c, url, problems) {
  const cluster = await RedisCluster.start({ masters: 3 })
  try {
    const where = { single: url, cluster: cluster.nodes.join(',') }
    const rows = RUNS.map((r) => ({ ...r, runs: [] }))
    const runTimeout = c.warmupMs + c.durationMs + 60_000
    for (let round = 1; round <= c.rounds; round++) {
      for (const row of rows) {
        const w = spawnChild('store-worker.js', [row.kind, where[row.on]], { execArgv: ['--expose-gc'] })
        try {
          await w.call('open', {}, 15_000)
          const r = await w.call(
            'run',
            { size: c.clusterSize, pool: c.pool, concurrency: c.clusterConcurrency, warmupMs: c.warmupMs, durationMs: c.durationMs },
            runTimeout,
          )
          row.runs.push(r)
          if (r.errors) problems.push(`cluster bench ${row.name}, round ${round}: ${r.errors} errors (first: ${r.firstError})`)
          log(`cluster round ${round}/${c.rounds} ${row.name.padEnd(22)} ${Math.round(r.opsPerSec).toString().padStart(7)} ops/s  ${fmt(r.cpuUsPerOp, 1).padStart(6)} µs CPU/op`)
          await w.call('close', {}, 30_000)
        } finally {
          await w.stop()
        }
      }
    }
    for (const row of rows) row.median = medians(row.runs, FIELDS)
    const [single, ours, cr] = rows.map((r) => r.median)
    return {
      rounds: c.rounds,
      masters: cluster.nodes.length,
      size: c.clusterSize,
      sizeLabel: sizeLabel(c.clusterSize),
      concurrency: c.clusterConcurrency,
      rows: rows.map(({ name, median, runs }) => ({ name, median, runs })),
      clusterVsSingle: { opsPerSec: ratio(ours.opsPerSec, single.opsPerSec), cpuUsPerOp: ratio(ours.cpuUsPerOp, single.cpuUsPerOp) },
      oursVsConnectRedis: { opsPerSec: ratio(ours.opsPerSec, cr.opsPerSec), cpuUsPerOp: ratio(ours.cpuUsPerOp, cr.cpuUsPerOp) },
    }
  } finally {
    await cluster.stop()
  }
}

module.exports = { clusterBench }
