'use strict'

// The issue's targets, each with the figure measured in this run and met or
// not. A target whose figures this run did not measure (a part left out by
// --only, a size or concurrency not in --sizes/--concurrency) is listed as
// not measured rather than left out. The store options' lines
// (featureTargets) are listed apart: they are not items of the issue.
const { sizeLabel } = require('./sessions')

const f = (v, digits = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a')

// A list of target lines and the two ways to add to it.
function targetList() {
  const out = []
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null)
  // item: the issue's numbering; value: the measured ratio; op: 'min' (at
  // least bound) or 'max' (at most); figures: what the ratio is made of.
  const add = (item, name, value, op, bound, figures) =>
    out.push({
      item,
      name,
      value: num(value),
      target: `${op === 'min' ? '≥' : '≤'} ${bound}×`,
      met: num(value) == null ? null : op === 'min' ? value >= bound : value <= bound,
      figures,
    })
  // A figure reported with no bound to meet.
  const note = (item, name, value, figures) => out.push({ item, name, value: num(value), target: '—', met: null, figures })
  return { out, add, note }
}

function targets(results) {
  const { out, add } = targetList()
  const store = results.store
  const cfg = (size, concurrency) => store && store.configs.find((c) => c.size === size && c.concurrency === concurrency)
  const pair = (c, kind, field, digits, unit) => (c ? `${f(c.ours.median[field], digits)} vs ${f(c[kind].median[field], digits)} ${unit}` : 'not measured')

  const small = cfg(200, 64)
  add(2, '200 B, 64 concurrent: ops/s ours ÷ connect-redis', small && small['connect-redis'].oursRatio.opsPerSec, 'min', 4, pair(small, 'connect-redis', 'opsPerSec', 0, 'ops/s'))
  add(2, '200 B, 64 concurrent: ops/s ours ÷ ioredis', small && small.ioredis.oursRatio.opsPerSec, 'min', 2, pair(small, 'ioredis', 'opsPerSec', 0, 'ops/s'))
  add(2, '200 B, 64 concurrent: CPU/op ours ÷ connect-redis', small && small['connect-redis'].oursRatio.cpuUsPerOp, 'max', 0.25, pair(small, 'connect-redis', 'cpuUsPerOp', 1, 'µs'))
  add(2, '200 B, 64 concurrent: CPU/op ours ÷ ioredis', small && small.ioredis.oursRatio.cpuUsPerOp, 'max', 0.5, pair(small, 'ioredis', 'cpuUsPerOp', 1, 'µs'))

  // Overhead = a store's CPU per op minus the JSON-only baseline's.
  for (const size of [200, 2000, 20000]) {
    const c = cfg(size, 64)
    const label = sizeLabel(size)
    add(
      3,
      `${label}, 64 concurrent: CPU/op above JSON, ours ÷ connect-redis`,
      c && c['connect-redis'].oursRatio.overheadUsPerOp,
      'max',
      0.25,
      c ? `${f(c.ours.overheadUsPerOp, 1)} vs ${f(c['connect-redis'].overheadUsPerOp, 1)} µs (JSON only: ${f(c.json.median.cpuUsPerOp, 1)} µs)` : 'not measured',
    )
  }
  const mid = cfg(2000, 64)
  add(3, '2 KB, 64 concurrent: ops/s ours ÷ ioredis', mid && mid.ioredis.oursRatio.opsPerSec, 'min', 1.5, pair(mid, 'ioredis', 'opsPerSec', 0, 'ops/s'))

  for (const size of [200, 2000, 20000]) {
    const c = cfg(size, 1)
    const label = sizeLabel(size)
    add(4, `${label}, one at a time: p50 ours ÷ connect-redis`, c && c['connect-redis'].oursRatio.p50Ms, 'max', 1, pair(c, 'connect-redis', 'p50Ms', 3, 'ms'))
    add(4, `${label}, one at a time: CPU/op ours ÷ connect-redis`, c && c['connect-redis'].oursRatio.cpuUsPerOp, 'max', 1, pair(c, 'connect-redis', 'cpuUsPerOp', 1, 'µs'))
  }

  const memory = results.memory
  for (const perUser of [10, 1]) {
    const row = memory && memory.rows.find((r) => r.perUser === perUser)
    const s = row && row.stores
    add(
      5,
      `Redis memory per session, ${perUser} per user: ours ÷ connect-redis`,
      s && s['connect-redis'].oursRatio,
      'max',
      1.3,
      s ? `${f(s.ours.bytesPerSession, 0)} vs ${f(s['connect-redis'].bytesPerSession, 0)} B` : 'not measured',
    )
  }
  for (const c of store ? store.configs : [null]) {
    add(
      5,
      `${c ? `${c.sizeLabel}, ${c.concurrency === 1 ? 'one at a time' : `${c.concurrency} concurrent`}` : 'Store'}: Redis CPU/op ours ÷ connect-redis`,
      c && c['connect-redis'].oursRatio.redisCpuUsPerOp,
      'max',
      1,
      pair(c, 'connect-redis', 'redisCpuUsPerOp', 1, 'µs'),
    )
  }

  const scale = results.scale
  const sides = scale ? `${f(scale.big.fill.written, 0)} ÷ with ${f(scale.small.fill.written, 0)}` : 'many ÷ with few'
  add(6, `Scale: ops/s with ${sides} live sessions`, scale && scale.ratio.opsPerSec, 'min', 0.9, scale ? `${f(scale.big.median.opsPerSec, 0)} vs ${f(scale.small.median.opsPerSec, 0)} ops/s; connect-redis on the same servers: ${f(scale.ratio.peerOpsPerSec, 2)}×` : 'not measured')
  // "What they cost at 10k", within the same 10% as the ops/s.
  for (const name of ['length', 'stats', 'listUserSessions']) {
    add(
      6,
      `Scale: ${name}() time with ${sides} live sessions`,
      scale && scale.ratio.calls[name],
      'max',
      1.1,
      scale ? `${f(scale.big.calls[name].medianMs, 2)} vs ${f(scale.small.calls[name].medianMs, 2)} ms` : 'not measured',
    )
  }

  const http = results.http
  const ours = http && http.stores.find((s) => s.kind === 'ours')
  const mem = http && http.stores.find((s) => s.kind === 'memory')
  add(7, 'HTTP: req/s ours ÷ MemoryStore', ours && ours.ratioToMemory.reqPerSec, 'min', 1, ours ? `${f(ours.median.reqPerSec, 0)} vs ${f(mem.median.reqPerSec, 0)} req/s` : 'not measured')
  return out
}

// Store options off and on (features.js), 64 concurrent. Encryption runs in
// Rust, so the JS thread's work per op (event-loop busy time ÷ ops) should
// not grow with it; merge's cost is reported, with no target.
function featureTargets(results) {
  const { out, add, note } = targetList()
  const features = results.features
  const feature = (name, size) => {
    const g = features && features.groups.find((x) => x.feature === name)
    const c = g && g.configs.find((x) => x.size === size)
    return { c: c && c.on.runs.length ? c : null }
  }
  for (const size of [200, 2000, 20000]) {
    const { c } = feature('encryption', size)
    add(
      'encryption',
      `${sizeLabel(size)}, 64 concurrent: encryption on, JS-thread work not above off (JS busy µs/op on ÷ off)`,
      c && c.ratio.eluUsPerOp,
      'max',
      1,
      c
        ? `JS busy ${onOff(c, 'eluUsPerOp', 2, 'µs/op')} (on vs off); ELU ${pctPair(c)}; JS-thread CPU ${onOff(c, 'jsCpuUsPerOp', 2, 'µs/op')} (${f(c.ratio.jsCpuUsPerOp, 2)}×); ` +
          `process CPU ${onOff(c, 'cpuUsPerOp', 1, 'µs/op')}`
        : 'not measured',
    )
  }
  for (const size of [200, 2000]) {
    const { c } = feature('merge', size)
    note(
      'merge',
      `${sizeLabel(size)}, 64 concurrent: merge on ÷ off, CPU/op (one key changed per set)`,
      c && c.ratio.cpuUsPerOp,
      c
        ? `ops/s ${onOff(c, 'opsPerSec', 0, '')} (${f(c.ratio.opsPerSec, 2)}×); JS busy ${onOff(c, 'eluUsPerOp', 2, 'µs/op')} (${f(c.ratio.eluUsPerOp, 2)}×); ` +
            `JS-thread CPU ${onOff(c, 'jsCpuUsPerOp', 2, 'µs/op')} (${f(c.ratio.jsCpuUsPerOp, 2)}×); process CPU ${onOff(c, 'cpuUsPerOp', 1, 'µs/op')}; Redis CPU ${onOff(c, 'redisCpuUsPerOp', 1, 'µs/op')} (${f(c.ratio.redisCpuUsPerOp, 2)}×)`
        : 'not measured',
    )
  }
  return out
}

// "on vs off unit" of one median.
function onOff(c, field, digits, unit) {
  return `${f(c.on.median[field], digits)} vs ${f(c.off.median[field], digits)}${unit ? ` ${unit}` : ''}`
}

function pctPair(c) {
  const p = (v) => (typeof v === 'number' ? `${(v * 100).toFixed(0)}%` : 'n/a')
  return `${p(c.on.median.elu)} vs ${p(c.off.median.elu)}`
}

module.exports = { targets, featureTargets }
