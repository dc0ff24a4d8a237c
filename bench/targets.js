'use strict'

// The speed issue's targets, each with the figure measured in this run and
// met or not. A target whose figures this run did not measure (a part left out by
// --only, a size or concurrency not in --sizes/--concurrency) is listed as
// not measured rather than left out. The store options' lines
// (featureTargets) are listed apart: they are not items of the issue.
const { sizeLabel } = require('./sessions')
const { ratio } = require('./stats')

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

// The issue's targets against connect-redis on node-redis (latest): item
// numbers are the order of the issue's list.
function targets(results) {
  const { out, add, note } = targetList()
  const store = results.store
  const cfg = (size, concurrency) => store && store.configs.find((c) => c.size === size && c.concurrency === concurrency)
  // The medians, then the ratio of each round (the stores run in turn within a round).
  const pair = (c, kind, field, digits, unit, mine = 'ours') =>
    c ? `${f(c[mine].median[field], digits)} vs ${f(c[kind].median[field], digits)} ${unit}${spread(c[mine].runs, c[kind].runs, field)}` : 'not measured'
  const quotient = (c, mine, kind, field) => (c ? ratio(c[mine].median[field], c[kind].median[field]) : null)
  const CR = 'connect-redis'

  for (const size of [300, 2000]) {
    const c = cfg(size, 64)
    const label = `${sizeLabel(size)}, 64 concurrent`
    add(1, `${label}: ops/s ours ÷ connect-redis`, quotient(c, 'ours', CR, 'opsPerSec'), 'min', 1.2, pair(c, CR, 'opsPerSec', 0, 'ops/s'))
    add(1, `${label}: CPU/op ours ÷ connect-redis`, quotient(c, 'ours', CR, 'cpuUsPerOp'), 'max', 0.9, pair(c, CR, 'cpuUsPerOp', 1, 'µs'))
    const above = (kind) => (c ? c[kind].median.cpuUsPerOp - c.memory.median.cpuUsPerOp : null)
    note(1, `${label}: CPU/op above MemoryStore's, ours ÷ connect-redis`, ratio(above('ours'), above(CR)), c ? `${f(above('ours'), 1)} vs ${f(above(CR), 1)} µs (MemoryStore ${f(c.memory.median.cpuUsPerOp, 1)} µs)` : 'not measured')
  }
  for (const size of [300, 2000]) {
    const c = cfg(size, 1)
    const label = `${sizeLabel(size)}, one at a time`
    add(2, `${label}: p50 ours ÷ connect-redis`, quotient(c, 'ours', CR, 'p50Ms'), 'max', 1, pair(c, CR, 'p50Ms', 3, 'ms'))
    add(2, `${label}: CPU/op ours ÷ connect-redis`, quotient(c, 'ours', CR, 'cpuUsPerOp'), 'max', 1, pair(c, CR, 'cpuUsPerOp', 1, 'µs'))
  }
  for (const c of store ? store.configs : [null]) {
    const label = c ? `${c.sizeLabel}, ${c.concurrency === 1 ? 'one at a time' : `${c.concurrency} concurrent`}` : 'Store'
    const redis = (mine) =>
      c ? `${pair(c, CR, 'redisCpuUsPerOp', 2, 'µs', mine)}; system ${pair(c, CR, 'redisSysUsPerOp', 2, 'µs', mine)}; calls ${pair(c, CR, 'redisCallsPerOp', 2, 'per op', mine)}` : 'not measured'
    add(3, `${label}: Redis CPU/op, ours without owners or timeouts ÷ connect-redis`, quotient(c, 'ours-plain', CR, 'redisCpuUsPerOp'), 'max', 1.1, redis('ours-plain'))
    add(3, `${label}: Redis CPU/op, ours with owners (user.id, the default) ÷ connect-redis`, quotient(c, 'ours', CR, 'redisCpuUsPerOp'), 'max', 1.5, redis('ours'))
    add(3, `${label}: Redis CPU/op, ours with owners + idleTimeout ÷ connect-redis`, quotient(c, 'ours-owned', CR, 'redisCpuUsPerOp'), 'max', 1.5, redis('ours-owned'))
  }

  const http = results.http
  const httpOf = (kind) => http && http.stores.find((s) => s.kind === kind)
  const ours = httpOf('ours')
  for (const [kind, name] of [[CR, 'connect-redis'], ['memory', 'MemoryStore']]) {
    const peer = httpOf(kind)
    const figures = ours && peer ? `${f(ours.median.reqPerSec, 0)} vs ${f(peer.median.reqPerSec, 0)} req/s${spread(ours.runs, peer.runs, 'reqPerSec')}` : 'not measured'
    add(4, `HTTP: req/s ours ÷ ${name}`, ours && peer && ratio(ours.median.reqPerSec, peer.median.reqPerSec), 'min', 1, figures)
  }

  const admin = results.admin
  for (const name of ['all', 'length']) {
    add(5, `${name}() among unrelated keys: connect-redis time ÷ ours`, admin && admin.ratios[name], 'min', 50, admin ? `${f(admin.sessionsPerStore, 0)} sessions among ${f(admin.unrelatedKeys, 0)} other keys; times in the admin table` : 'not measured')
  }
  return out
}

// Round by round, `field` of `mine` ÷ `theirs`: how far one round's ratio
// strays from the medians' (rounds on a shared machine vary).
function spread(mine, theirs, field) {
  const ratios = (mine || []).map((run, i) => theirs && theirs[i] && ratio(run[field], theirs[i][field])).filter((r) => r != null)
  if (ratios.length < 2) return ''
  return `; rounds ${f(Math.min(...ratios), 2)}–${f(Math.max(...ratios), 2)}×`
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
