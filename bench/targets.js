'use strict'

// The issue's targets, each with the figure measured in this run and met or
// not. A target whose figures this run did not measure (a part left out by
// --only, a size or concurrency not in --sizes/--concurrency) is listed as
// not measured rather than left out.
const { sizeLabel } = require('./sessions')

const f = (v, digits = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a')

function targets(results) {
  const out = []
  // item: the issue's numbering; value: the measured ratio; op: 'min' (at
  // least bound) or 'max' (at most); figures: what the ratio is made of.
  const add = (item, name, value, op, bound, figures) =>
    out.push({
      item,
      name,
      value: typeof value === 'number' && Number.isFinite(value) ? value : null,
      target: `${op === 'min' ? '≥' : '≤'} ${bound}×`,
      met: typeof value === 'number' && Number.isFinite(value) ? (op === 'min' ? value >= bound : value <= bound) : null,
      figures,
    })

  const store = results.store
  const cfg = (size, concurrency) => store && store.configs.find((c) => c.size === size && c.concurrency === concurrency)
  const pair = (c, kind, field, digits, unit) => (c ? `${f(c.ours.median[field], digits)} vs ${f(c[kind].median[field], digits)} ${unit}` : 'not measured')

  const small = cfg(200, 64)
  add(2, '200 B, 64 concurrent: ops/s ours ÷ connect-redis 9', small && small['connect-redis'].oursRatio.opsPerSec, 'min', 4, pair(small, 'connect-redis', 'opsPerSec', 0, 'ops/s'))
  add(2, '200 B, 64 concurrent: ops/s ours ÷ ioredis', small && small.ioredis.oursRatio.opsPerSec, 'min', 2, pair(small, 'ioredis', 'opsPerSec', 0, 'ops/s'))
  add(2, '200 B, 64 concurrent: CPU/op ours ÷ connect-redis 9', small && small['connect-redis'].oursRatio.cpuUsPerOp, 'max', 0.25, pair(small, 'connect-redis', 'cpuUsPerOp', 1, 'µs'))
  add(2, '200 B, 64 concurrent: CPU/op ours ÷ ioredis', small && small.ioredis.oursRatio.cpuUsPerOp, 'max', 0.5, pair(small, 'ioredis', 'cpuUsPerOp', 1, 'µs'))

  // Overhead = a store's CPU per op minus the JSON-only baseline's.
  for (const size of [200, 2000, 20000]) {
    const c = cfg(size, 64)
    const label = sizeLabel(size)
    add(
      3,
      `${label}, 64 concurrent: CPU/op above JSON, ours ÷ connect-redis 9`,
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
    add(4, `${label}, one at a time: p50 ours ÷ connect-redis 9`, c && c['connect-redis'].oursRatio.p50Ms, 'max', 1, pair(c, 'connect-redis', 'p50Ms', 3, 'ms'))
    add(4, `${label}, one at a time: CPU/op ours ÷ connect-redis 9`, c && c['connect-redis'].oursRatio.cpuUsPerOp, 'max', 1, pair(c, 'connect-redis', 'cpuUsPerOp', 1, 'µs'))
  }

  const memory = results.memory
  for (const perUser of [10, 1]) {
    const row = memory && memory.rows.find((r) => r.perUser === perUser)
    const s = row && row.stores
    add(
      5,
      `Redis memory per session, ${perUser} per user: ours ÷ connect-redis 9`,
      s && s['connect-redis'].oursRatio,
      'max',
      1.3,
      s ? `${f(s.ours.bytesPerSession, 0)} vs ${f(s['connect-redis'].bytesPerSession, 0)} B` : 'not measured',
    )
  }
  for (const c of store ? store.configs : [null]) {
    add(
      5,
      `${c ? `${c.sizeLabel}, ${c.concurrency === 1 ? 'one at a time' : `${c.concurrency} concurrent`}` : 'Store'}: Redis CPU/op ours ÷ connect-redis 9`,
      c && c['connect-redis'].oursRatio.redisCpuUsPerOp,
      'max',
      1,
      pair(c, 'connect-redis', 'redisCpuUsPerOp', 1, 'µs'),
    )
  }

  const scale = results.scale
  const sides = scale ? `${f(scale.big.fill.written, 0)} ÷ with ${f(scale.small.fill.written, 0)}` : 'many ÷ with few'
  add(6, `Scale: ops/s with ${sides} live sessions`, scale && scale.ratio.opsPerSec, 'min', 0.9, scale ? `${f(scale.big.median.opsPerSec, 0)} vs ${f(scale.small.median.opsPerSec, 0)} ops/s` : 'not measured')
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

module.exports = { targets }
