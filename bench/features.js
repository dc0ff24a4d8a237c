'use strict'

// Options of this store, off and on side by side (stores.js's FEATURES), on
// the store workload of store-worker.js at one concurrency:
// - encryption: sessions encrypted at rest (AES-256-GCM, in Rust);
// - merge: a set of an object get returned writes only the top-level keys
//   changed since that get. Its runs change exactly one key per set
//   (oneKeyWrites), off as well, so both sides do the same requests.
// Each round opens a fresh process per side; at each size the two run one
// after the other, in an order that alternates by round so that neither
// always runs second.
const { spawnChild } = require('./ipc')
const { command } = require('./redis')
const { medians, ratio, fmt } = require('./stats')
const { sizeLabel } = require('./sessions')

const log = (...args) => console.error('[bench]', ...args)
const FIELDS = ['opsPerSec', 'elu', 'eluUsPerOp', 'jsCpuUsPerOp', 'cpuUsPerOp', 'redisCpuUsPerOp', 'p50Ms', 'p99Ms']
const SIDES = ['off', 'on']

function plan(c) {
  const groups = [
    { feature: 'encryption', sizes: c.encryptionSizes, oneKeyWrites: false },
    { feature: 'merge', sizes: c.mergeSizes, oneKeyWrites: true },
  ]
  return groups
    .filter((g) => g.sizes.length)
    .map((g) => ({ ...g, configs: g.sizes.map((size) => ({ size, sizeLabel: sizeLabel(size), off: { runs: [] }, on: { runs: [] } })) }))
}

// `feature` undefined: the store as it is by default.
async function openWorker(url, feature) {
  const w = spawnChild('store-worker.js', ['ours', url], { execArgv: ['--expose-gc'] })
  try {
    const { prefix } = await w.call('open', { feature }, 15_000)
    return { w, prefix }
  } catch (err) {
    await w.stop()
    throw err
  }
}

// Whether Redis holds the session as plain JSON: true, false, or null when
// the key is not a plain string (or gone).
async function plainAtRest(url, key) {
  const value = await command(url, ['GET', key])
  return value == null ? null : value.includes('"cookie"')
}

async function featureRound(c, url, g, round, problems) {
  const workers = {}
  try {
    workers.off = await openWorker(url)
    workers.on = await openWorker(url, g.feature)
    const order = round % 2 ? SIDES : [...SIDES].reverse()
    const runTimeout = c.warmupMs + c.featuresDurationMs + 60_000
    for (const cfg of g.configs) {
      for (const side of order) {
        const args = { size: cfg.size, pool: c.pool, concurrency: c.featuresConcurrency, warmupMs: c.warmupMs, durationMs: c.featuresDurationMs, oneKeyWrites: g.oneKeyWrites }
        const r = await workers[side].w.call('run', args, runTimeout)
        r.plainAtRest = await plainAtRest(url, workers[side].prefix + r.sampleSid)
        cfg.sessionBytes = r.sessionBytes
        cfg[side].runs.push(r)
        const where = `features ${g.feature} ${side}, ${cfg.sizeLabel}, round ${round}`
        if (r.errors) problems.push(`${where}: ${r.errors} errors (first: ${r.firstError})`)
        if (g.feature === 'encryption' && side === 'on' && r.plainAtRest) problems.push(`${where}: Redis holds the session as plain JSON`)
        log(
          `features round ${round}/${c.featuresRounds} ${g.feature.padEnd(10)} ${side.padEnd(3)} ${cfg.sizeLabel.padStart(6)} ${Math.round(r.opsPerSec).toString().padStart(7)} ops/s  ` +
            `${fmt(r.eluUsPerOp, 2).padStart(6)} µs JS busy/op  ${fmt(r.cpuUsPerOp, 1).padStart(6)} µs CPU/op  ELU ${(r.elu * 100).toFixed(0)}%`,
        )
      }
    }
  } finally {
    await Promise.all(Object.values(workers).map((x) => x.w.stop()))
  }
}

// c: { encryptionSizes, mergeSizes, featuresRounds, featuresDurationMs,
//      featuresConcurrency, warmupMs, pool }
async function featuresBench(c, url, problems) {
  const groups = plan(c)
  for (let round = 1; round <= c.featuresRounds; round++) {
    for (const g of groups) await featureRound(c, url, g, round, problems)
  }
  for (const g of groups) {
    for (const cfg of g.configs) {
      for (const side of SIDES) cfg[side].median = medians(cfg[side].runs, FIELDS)
      // On ÷ off, each a ratio of the medians, as elsewhere.
      cfg.ratio = {}
      for (const f of FIELDS) cfg.ratio[f] = ratio(cfg.on.median[f], cfg.off.median[f])
    }
  }
  return {
    rounds: c.featuresRounds,
    durationMs: c.featuresDurationMs,
    warmupMs: c.warmupMs,
    pool: c.pool,
    concurrency: c.featuresConcurrency,
    groups,
  }
}

module.exports = { featuresBench }
