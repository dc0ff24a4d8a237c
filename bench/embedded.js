'use strict'

// The embedded engine (memory://, file://) beside express-session's
// MemoryStore, the store it replaces in tests and on dev servers, with this
// store on Redis for reference:
// - the store workload of store-worker.js, each store in its own process,
//   alternating within each round; ratios ÷ MemoryStore;
// - churn (churn.js): short sessions written once, expiring while the run
//   goes on, through each in-process store, each in a fresh process; the
//   memory each one keeps for them.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnChild } = require('./ipc')
const { medians, ratio, fmt } = require('./stats')
const { sizeLabel } = require('./sessions')

const log = (...args) => console.error('[bench]', ...args)
const FIELDS = ['opsPerSec', 'cpuUsPerOp', 'cpuUserUsPerOp', 'cpuSystemUsPerOp', 'elu', 'p50Ms', 'p99Ms']

// id → what to fork; `url` is filled in per run (file:// gets a fresh file).
const STORES = [
  { id: 'memory', label: 'MemoryStore', kind: 'memory' },
  { id: 'engine-memory', label: 'ours, memory://', kind: 'ours' },
  { id: 'engine-file', label: 'ours, file://', kind: 'ours' },
  { id: 'redis', label: 'ours, Redis', kind: 'ours' },
]
const CHURNED = ['memory', 'engine-memory', 'engine-file']

async function openWorker(s, url) {
  const w = spawnChild('store-worker.js', [s.kind, url], { execArgv: ['--expose-gc'] })
  await w.call('open', {}, 15_000)
  return w
}

// c: run.js's config (rounds, pool, warmupMs, durationMs, embedded*, churn*).
async function embeddedBench(c, redisUrl, problems) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-bench-embedded-'))
  let files = 0
  const urlOf = (id) =>
    id === 'memory' ? 'none' : id === 'engine-memory' ? 'memory://' : id === 'engine-file' ? `file://${path.join(dir, `s${++files}.redb`)}` : redisUrl
  try {
    const store = await workload(c, urlOf, problems)
    const churn = await churnAll(c, urlOf, problems)
    return { store, churn }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function workload(c, urlOf, problems) {
  const configs = []
  for (const size of c.embeddedSizes) {
    for (const concurrency of c.concurrency) {
      const stores = {}
      for (const s of STORES) stores[s.id] = { label: s.label, runs: [] }
      configs.push({ size, sizeLabel: sizeLabel(size), concurrency, stores })
    }
  }
  const runTimeout = c.warmupMs + c.durationMs + 60_000
  for (let round = 1; round <= c.rounds; round++) {
    // A fresh process per store and round; while one runs, the others idle.
    const workers = {}
    try {
      const opened = await Promise.all(STORES.map((s) => openWorker(s, urlOf(s.id))))
      STORES.forEach((s, i) => (workers[s.id] = opened[i]))
      for (const cfg of configs) {
        for (const s of STORES) {
          const r = await workers[s.id].call(
            'run',
            { size: cfg.size, pool: c.pool, concurrency: cfg.concurrency, warmupMs: c.warmupMs, durationMs: c.durationMs },
            runTimeout,
          )
          cfg.sessionBytes = r.sessionBytes
          cfg.stores[s.id].runs.push(r)
          if (r.errors) problems.push(`embedded ${s.label}, ${cfg.sizeLabel}, conc. ${cfg.concurrency}, round ${round}: ${r.errors} errors (first: ${r.firstError})`)
          log(`embedded round ${round}/${c.rounds} ${cfg.sizeLabel} conc ${cfg.concurrency} ${s.label.padEnd(16)} ${Math.round(r.opsPerSec).toString().padStart(7)} ops/s  ${fmt(r.cpuUsPerOp, 1).padStart(6)} µs CPU/op  ELU ${(r.elu * 100).toFixed(0)}%`)
        }
      }
    } finally {
      await Promise.all(Object.values(workers).map((w) => w.stop()))
    }
  }
  for (const cfg of configs) {
    for (const s of Object.values(cfg.stores)) s.median = medians(s.runs, FIELDS)
    const mem = cfg.stores.memory.median
    for (const s of Object.values(cfg.stores)) {
      s.ratioToMemory = { opsPerSec: ratio(s.median.opsPerSec, mem.opsPerSec), cpuUsPerOp: ratio(s.median.cpuUsPerOp, mem.cpuUsPerOp) }
    }
  }
  return { rounds: c.rounds, durationMs: c.durationMs, warmupMs: c.warmupMs, pool: c.pool, configs }
}

async function churnAll(c, urlOf, problems) {
  const args = {
    total: c.churnSessions,
    size: c.churnSize,
    concurrency: c.churnConcurrency,
    warmup: Math.min(Math.max(1, Math.round(c.churnSessions / 20)), 50_000),
    minAgeMs: c.churnMinAgeMs,
    maxAgeMs: c.churnMaxAgeMs,
    maxMs: c.churnLimitMs,
    settleMs: c.churnSettleMs,
  }
  const rows = []
  for (const id of CHURNED) {
    const s = STORES.find((x) => x.id === id)
    const url = urlOf(id)
    const w = await openWorker(s, url)
    try {
      log(`churn ${s.label}: ${args.total.toLocaleString('en-US')} sessions of ${sizeLabel(args.size)}, maxAge ${args.minAgeMs}-${args.maxAgeMs} ms, ${args.concurrency} at a time`)
      const r = await w.call('churn', args, args.maxMs + args.maxAgeMs + args.settleMs + 120_000)
      if (r.errors) problems.push(`churn ${s.label}: ${r.errors} errors (first: ${r.firstError})`)
      if (r.cutShort) problems.push(`churn ${s.label} cut short after ${r.written.toLocaleString('en-US')} of ${args.total.toLocaleString('en-US')} sessions by its ${args.maxMs / 1000} s limit`)
      if (r.length.error) problems.push(`churn ${s.label}: length() failed: ${r.length.error}`)
      log(
        `churn ${s.label}: ${Math.round(r.writesPerSec)} writes/s, RSS after warm-up ${r.afterWarmup ? r.afterWarmup.rssMB.toFixed(1) : 'n/a'} MB, at end ${r.atEnd.rssMB.toFixed(1)} MB, ` +
          `after expiry + GC ${r.afterExpiry.rssMB.toFixed(1)} MB; held ${r.heldAfterExpiry ?? 'n/a'}, length() ${r.length.count}${r.cutShort ? ' (cut short)' : ''}`,
      )
      rows.push({ id, label: s.label, ...r })
    } finally {
      await w.stop()
    }
  }
  // Growth from the empty store's level (after a GC) to after expiry + GC.
  const growth = (r) => r.afterExpiry.rssMB - r.start.rssMB
  const mem = rows.find((r) => r.id === 'memory')
  for (const r of rows) {
    r.rssGrowthMB = growth(r)
    r.ratioToMemory = {
      writesPerSec: ratio(r.writesPerSec, mem.writesPerSec),
      cpuUsPerWrite: ratio(r.cpuUsPerWrite, mem.cpuUsPerWrite),
      rssGrowth: ratio(r.rssGrowthMB, mem.rssGrowthMB),
    }
  }
  return { ...args, sizeLabel: sizeLabel(args.size), rows }
}

module.exports = { embeddedBench }
