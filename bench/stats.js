'use strict'

function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

// Nearest-rank percentile of an already sorted numeric array.
function percentile(sorted, p) {
  if (sorted.length === 0) return null
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

function ratio(a, b) {
  return typeof a === 'number' && typeof b === 'number' && b !== 0 ? a / b : null
}

// `v` with `digits` decimals, or 'n/a' when it is not a number (a per-op
// figure of a run that completed no operation arrives as null over IPC).
function fmt(v, digits = 0) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a'
}

// Median of every numeric field over a list of run results.
function medians(runs, fields) {
  const out = {}
  for (const f of fields) out[f] = median(runs.map((r) => r[f]))
  return out
}

module.exports = { median, percentile, ratio, medians, fmt }
