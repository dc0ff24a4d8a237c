'use strict'

// This store with few vs many live sessions in Redis: the store workload
// (store-worker.js) and the calls over many sessions (length, stats,
// listUserSessions of a user with perUser sessions), on two redis-servers of
// the bench's own, one holding `scaleSmall` live sessions and one
// `scaleBig`, all with owners (perUser sessions per user). Both are filled
// through this store first, with one prefix, so the workload's own sessions
// join the same indexes; then the two alternate, round by round, each in a
// fresh process. The store's index reads check every indexed session, so
// length() and stats() cost in proportion to the sessions: they are timed
// with a long commandTimeout (the default 2 s would cut them short), and
// not repeated once a call has used up its time budget.
// As a control, connect-redis 9 runs the same workload on the same two
// servers (its own prefix, its own 1,000 sessions among ours): what many
// keys in Redis cost any store, beside what they cost this one.
const { spawnChild } = require('./ipc')
const { command, info } = require('./redis')
const { median, medians, ratio, fmt } = require('./stats')
const { sizeLabel } = require('./sessions')
const { RedisServer } = require('../__test__/helpers/redis.js')

const log = (...args) => console.error('[bench]', ...args)
const FIELDS = ['opsPerSec', 'cpuUsPerOp', 'elu', 'p50Ms', 'p99Ms', 'redisCpuUsPerOp']
const PREFIX = 'sess:'
const OPTIONS = { commandTimeout: 120_000 }
const SIDES = ['small', 'big']

// Redis's time per call of each command since the last reset (INFO
// commandstats): where the server's extra time with many sessions goes.
async function perCall(url) {
  const stats = await info(url, 'commandstats')
  const out = {}
  for (const [k, v] of Object.entries(stats || {})) {
    const m = /calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/.exec(v)
    if (m && k.startsWith('cmdstat_')) out[k.slice(8)] = { calls: Number(m[1]), usPerCall: Number(m[3]) }
  }
  return out
}

async function openWorker(url, kind = 'ours') {
  const w = spawnChild('store-worker.js', [kind, url], { execArgv: ['--expose-gc'] })
  await w.call('open', kind === 'ours' ? { prefix: PREFIX, options: OPTIONS } : { prefix: 'cr:' }, 15_000)
  return w
}

// c: { scaleSmall, scaleBig, scalePerUser, scaleSize, scaleConcurrency,
//      scaleFillLimitMs, scaleCallRounds, scaleCallBudgetMs, rounds, pool, warmupMs, durationMs }
async function scaleBench(c, problems) {
  const servers = {}
  const side = {}
  for (const s of SIDES) side[s] = { sessions: s === 'small' ? c.scaleSmall : c.scaleBig, runs: [], peerRuns: [], calls: {} }
  try {
    for (const s of SIDES) servers[s] = await RedisServer.start()
    for (const s of SIDES) {
      const n = side[s].sessions
      log(`scale: filling ${n.toLocaleString('en-US')} sessions of ${Math.ceil(n / c.scalePerUser).toLocaleString('en-US')} users`)
      const w = await openWorker(servers[s].url)
      try {
        const fill = await w.call('fill', { n, perUser: c.scalePerUser, size: c.scaleSize, concurrency: 2000, maxMs: c.scaleFillLimitMs }, c.scaleFillLimitMs + 60_000)
        const mem = await info(servers[s].url, 'memory')
        side[s].fill = { ...fill, usedMemoryMB: mem ? Number(mem.used_memory) / 1048576 : null }
        if (fill.errors) problems.push(`scale fill ${s}: ${fill.errors} errors (first: ${fill.firstError})`)
        if (fill.cutShort) problems.push(`scale fill ${s}: cut short after ${fill.written} of ${n} sessions by its ${c.scaleFillLimitMs / 1000} s limit`)
        log(`scale: ${fill.written.toLocaleString('en-US')} sessions in ${(fill.ms / 1000).toFixed(1)} s (${Math.round(fill.setsPerSec)} sets/s)`)
      } finally {
        await w.stop()
      }
    }

    const runTimeout = c.warmupMs + c.durationMs + 60_000
    for (let round = 1; round <= c.rounds; round++) {
      for (const s of SIDES) {
        for (const kind of ['ours', 'connect-redis']) {
          const w = await openWorker(servers[s].url, kind)
          try {
            if (kind === 'ours') await command(servers[s].url, ['CONFIG', 'RESETSTAT'])
            const r = await w.call('run', { size: c.scaleSize, pool: c.pool, concurrency: c.scaleConcurrency, warmupMs: c.warmupMs, durationMs: c.durationMs }, runTimeout)
            side[s][kind === 'ours' ? 'runs' : 'peerRuns'].push(r)
            if (kind === 'ours') side[s].commands = await perCall(servers[s].url)
            if (r.errors) problems.push(`scale ${s} ${kind}, round ${round}: ${r.errors} errors (first: ${r.firstError})`)
            log(`scale round ${round}/${c.rounds} ${kind.padEnd(13)} ${side[s].fill.written.toLocaleString('en-US').padStart(9)} sessions ${Math.round(r.opsPerSec).toString().padStart(7)} ops/s  ${fmt(r.cpuUsPerOp, 1).padStart(6)} µs CPU/op`)
          } finally {
            await w.stop()
          }
        }
      }
    }

    // u0 has perUser sessions on both servers.
    const calls = [
      { name: 'length', op: 'length', args: {}, expect: (s) => side[s].fill.written },
      { name: 'stats', op: 'stats', args: {}, expect: (s) => side[s].fill.written },
      { name: 'listUserSessions', op: 'listUserSessions', args: { userId: 'u0' }, expect: () => c.scalePerUser },
    ]
    const workers = {}
    try {
      for (const s of SIDES) workers[s] = await openWorker(servers[s].url)
      for (const call of calls) {
        for (const s of SIDES) side[s].calls[call.name] = { runs: [], spentMs: 0 }
        for (let i = 0; i < c.scaleCallRounds; i++) {
          for (const s of SIDES) {
            const slot = side[s].calls[call.name]
            if (slot.spentMs > c.scaleCallBudgetMs) continue
            const r = await workers[s].call('time', { op: call.op, args: call.args }, OPTIONS.commandTimeout + 30_000)
            slot.runs.push(r)
            slot.spentMs += r.ms
            if (r.error) problems.push(`scale ${call.name} with ${side[s].fill.written} sessions: ${r.error}`)
            else if (r.count !== call.expect(s)) problems.push(`scale ${call.name} with ${side[s].fill.written} sessions gave ${r.count}, expected ${call.expect(s)}`)
            log(`scale ${call.name.padEnd(16)} ${side[s].fill.written.toLocaleString('en-US').padStart(9)} sessions ${r.error ? 'error' : `${r.ms.toFixed(2).padStart(9)} ms  → ${r.count}`}`)
          }
        }
      }
    } finally {
      await Promise.all(Object.values(workers).map((w) => w.stop()))
    }
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.dispose()))
  }

  for (const s of SIDES) {
    side[s].median = medians(side[s].runs, FIELDS)
    side[s].peer = medians(side[s].peerRuns, FIELDS)
    for (const slot of Object.values(side[s].calls)) slot.medianMs = median(slot.runs.filter((r) => !r.error).map((r) => r.ms))
  }
  const { small, big } = side
  const callRatios = {}
  for (const name of Object.keys(big.calls)) callRatios[name] = ratio(big.calls[name].medianMs, small.calls[name].medianMs)
  return {
    rounds: c.rounds,
    size: c.scaleSize,
    sizeLabel: sizeLabel(c.scaleSize),
    concurrency: c.scaleConcurrency,
    perUser: c.scalePerUser,
    commandTimeout: OPTIONS.commandTimeout,
    small,
    big,
    // Many ÷ few sessions.
    ratio: {
      opsPerSec: ratio(big.median.opsPerSec, small.median.opsPerSec),
      cpuUsPerOp: ratio(big.median.cpuUsPerOp, small.median.cpuUsPerOp),
      peerOpsPerSec: ratio(big.peer.opsPerSec, small.peer.opsPerSec),
      calls: callRatios,
    },
  }
}

module.exports = { scaleBench }
