'use strict'

// A hand-written SVG bar chart of the benchmark ratios. Every bar reads
// "higher is better", with a dashed line at 1×.
const { CONNECT_REDIS } = require('./peers')

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

// sections: [{ title, note, rows: [{ label, value, color }] }]
function barChart({ title, subtitle, sections }) {
  const W = 760
  const left = 170
  const right = 70
  const rowH = 22
  const barH = 14
  const plotW = W - left - right
  const values = sections.flatMap((s) => s.rows.map((r) => r.value)).filter((v) => typeof v === 'number' && Number.isFinite(v))
  const max = Math.max(1, ...values) * 1.08
  const x = (v) => left + (Math.max(0, v) / max) * plotW

  const out = []
  let y = 28
  out.push(`<text x="16" y="${y}" font-size="16" font-weight="bold">${esc(title)}</text>`)
  if (subtitle) {
    y += 18
    out.push(`<text x="16" y="${y}" font-size="11" fill="#555">${esc(subtitle)}</text>`)
  }
  y += 14
  for (const s of sections) {
    y += 22
    out.push(`<text x="16" y="${y}" font-size="13" font-weight="bold">${esc(s.title)}</text>`)
    if (s.note) out.push(`<text x="${W - 16}" y="${y}" font-size="11" fill="#555" text-anchor="end">${esc(s.note)}</text>`)
    y += 8
    // Parity line under this section's bars.
    const oneX = x(1).toFixed(1)
    out.push(`<line x1="${oneX}" y1="${y}" x2="${oneX}" y2="${y + s.rows.length * rowH}" stroke="#333" stroke-dasharray="4 3" stroke-width="1"/>`)
    for (const r of s.rows) {
      const top = y + (rowH - barH) / 2
      out.push(`<text x="${left - 8}" y="${y + rowH / 2 + 4}" font-size="12" text-anchor="end">${esc(r.label)}</text>`)
      if (typeof r.value === 'number' && Number.isFinite(r.value)) {
        const w = Math.max(1, x(r.value) - left)
        out.push(`<rect x="${left}" y="${top}" width="${w.toFixed(1)}" height="${barH}" fill="${r.color || '#2f6db5'}" rx="2"/>`)
        // A white halo under the value keeps it readable across the 1× line.
        const at = `x="${(left + w + 6).toFixed(1)}" y="${y + rowH / 2 + 4}" font-size="12"`
        out.push(`<text ${at} fill="#fff" stroke="#fff" stroke-width="3">${r.value.toFixed(2)}×</text>`)
        out.push(`<text ${at}>${r.value.toFixed(2)}×</text>`)
      } else {
        out.push(`<text x="${left + 6}" y="${y + rowH / 2 + 4}" font-size="12" fill="#a00">n/a</text>`)
      }
      y += rowH
    }
  }
  out.push(`<text x="${x(1).toFixed(1)}" y="${y + 16}" font-size="11" text-anchor="middle" fill="#333">1× (dashed) = parity</text>`)
  const H = y + 30
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n')
}

const OURS = '#2f6db5'
const THEIRS = '#9a9a9a'
const HTTP_LABELS = { ours: 'redis-session-store', 'connect-redis': 'connect-redis', ioredis: 'c-r 7 + ioredis' }

function benchChart(results) {
  const sections = []
  const store = results.store
  if (store && store.configs.length) {
    sections.push({
      title: 'Store throughput: ours ÷ connect-redis',
      note: 'ops/s, higher is better',
      rows: store.configs.map((c) => ({ label: `${c.sizeLabel} · ${c.concurrency} conc.`, value: c.ratio.opsPerSec, color: OURS })),
    })
    sections.push({
      title: 'Node CPU per operation: connect-redis ÷ ours',
      note: 'how many times less CPU, higher is better',
      rows: store.configs.map((c) => ({
        label: `${c.sizeLabel} · ${c.concurrency} conc.`,
        value: c.ratio.cpuUsPerOp ? 1 / c.ratio.cpuUsPerOp : null,
        color: OURS,
      })),
    })
  }
  const http = results.http
  if (http && http.stores.length) {
    sections.push({
      title: 'Express + express-session: req/s ÷ MemoryStore',
      note: 'higher is better',
      rows: http.stores
        .filter((s) => s.kind !== 'memory')
        .map((s) => ({ label: HTTP_LABELS[s.kind], value: s.ratioToMemory.reqPerSec, color: s.kind === 'ours' ? OURS : THEIRS })),
    })
  }
  const m = results.meta
  return barChart({
    title: `redis-session-store vs ${CONNECT_REDIS}`,
    subtitle: `medians of ${m.config.rounds} store rounds / ${m.config.httpRounds} HTTP rounds · Node ${m.node} · Redis ${m.redisVersion || '?'} · ${m.cpus}× ${m.cpuModel} · ${m.date.slice(0, 10)}`,
    sections,
  })
}

module.exports = { barChart, benchChart }
