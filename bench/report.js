'use strict'

// Markdown tables of the medians and ratios.
const { STORES } = require('./stores')
const { versionLine } = require('./peers')
const { fmt: f } = require('./stats')
const x = (v) => (typeof v === 'number' && Number.isFinite(v) ? `${v.toFixed(2)}×` : 'n/a')

const pct = (v) => (typeof v === 'number' ? `${(v * 100).toFixed(0)}%` : 'n/a')

function storeTables(store) {
  const lines = []
  lines.push(`### Store: redis-session-store ("ours") beside connect-redis, connect-redis 7 + ioredis, MemoryStore and JSON only`)
  lines.push(`Peers as installed: ${versionLine()}`)
  lines.push('')
  lines.push(
    `Medians of ${store.rounds} alternating rounds; one request = get + touch (4 of 5) or set (1 of 5) = 2 ops. Node CPU is the store's whole process (all threads). ` +
      `"Above JSON" is a store's CPU per op minus the JSON-only baseline's (the same workload on a Map of JSON strings in the process: the JSON any store's users pay). ` +
      `The last columns are ours ÷ that store.`,
  )
  lines.push('')
  lines.push('| session | conc. | store | ops/s | Node CPU µs/op | above JSON µs/op | event loop busy | p50 ms | p99 ms | Redis CPU µs/op | Redis sys µs/op | Redis calls/op | ours ÷: ops/s | CPU/op | above JSON | p50 | Redis CPU |')
  lines.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const c of store.configs) {
    for (const kind of store.kinds) {
      const s = c[kind]
      const m = s.median
      const r = s.oursRatio
      const ratios = kind === 'ours' ? '| — | — | — | — | —' : `| **${x(r.opsPerSec)}** | **${x(r.cpuUsPerOp)}** | ${x(r.overheadUsPerOp)} | ${x(r.p50Ms)} | ${x(r.redisCpuUsPerOp)}`
      lines.push(
        `| ${c.sizeLabel} | ${c.concurrency} | ${s.label} | ${f(m.opsPerSec)} | ${f(m.cpuUsPerOp, 1)} | ${f(s.overheadUsPerOp, 1)} | ${pct(m.elu)} | ${f(m.p50Ms, 3)} | ${f(m.p99Ms, 2)} | ${f(m.redisCpuUsPerOp, 1)} | ${f(m.redisSysUsPerOp, 1)} | ${f(m.redisCallsPerOp, 2)} ${ratios} |`,
      )
    }
  }
  return lines
}

function featuresTable(ft) {
  const lines = []
  lines.push(`### Store options off and on: ${ft.groups.map((g) => g.feature).join(', ')} (ours, ${ft.concurrency} concurrent)`)
  lines.push('')
  lines.push(
    `The store workload (get, then touch 4 of 5 or set 1 of 5 = 2 ops per request), each side in a fresh process; medians of ${ft.rounds} rounds of ${f(ft.durationMs / 1000, 1)} s, ` +
      `the two sides back to back at each size, the first of them alternating by round. For merge, off and on alike, every set changes one top-level key (lastSeen) of the object get returned and nothing else. ` +
      `"JS busy" is the event loop's busy time (ELU's active time) ÷ ops: the JS thread's work per op, whatever the rate, in wall time; "JS CPU" is that thread's own CPU time ÷ ops ` +
      `(Linux; unlike wall time, not inflated when other processes take the core). CPU is the whole process's (all threads). The last columns are on ÷ off.`,
  )
  lines.push('')
  lines.push('| option | session | side | ops/s | event loop busy | JS busy µs/op | JS CPU µs/op | CPU µs/op | Redis CPU µs/op | p50 ms | on ÷ off: ops/s | JS busy/op | JS CPU/op | CPU/op | Redis CPU/op |')
  lines.push('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const g of ft.groups) {
    for (const c of g.configs) {
      for (const side of ['off', 'on']) {
        const m = c[side].median
        const r = c.ratio
        const ratios = side === 'off' ? '| | | | |' : `| ${x(r.opsPerSec)} | **${x(r.eluUsPerOp)}** | ${x(r.jsCpuUsPerOp)} | **${x(r.cpuUsPerOp)}** | ${x(r.redisCpuUsPerOp)}`
        lines.push(
          `| ${g.feature} | ${c.sizeLabel} | ${side} | ${f(m.opsPerSec)} | ${pct(m.elu)} | ${f(m.eluUsPerOp, 2)} | ${f(m.jsCpuUsPerOp, 2)} | ${f(m.cpuUsPerOp, 1)} | ${f(m.redisCpuUsPerOp, 1)} | ${f(m.p50Ms, 3)} ${ratios} |`,
        )
      }
    }
  }
  return lines
}

function memoryTable(mem) {
  const lines = []
  lines.push(`### Redis memory per session: ${f(mem.sessions)} sessions of about ${f(mem.size)} B with an owner, per store`)
  lines.push('')
  lines.push(
    `On a redis-server of its own, FLUSHALL before each store; INFO memory's used_memory after the store's process closed, minus before, ÷ sessions. ` +
      `Ours with idleTimeout ${mem.oursOptions.idleTimeout} s and absoluteTimeout ${mem.oursOptions.absoluteTimeout} s, owner \`userId\`; ids of 32 base64url characters.`,
  )
  lines.push('')
  lines.push('| sessions per user | store | sessions | B per session in Redis | ours ÷ it | keys per session | sets/s |')
  lines.push('|---:|---|---:|---:|---:|---:|---:|')
  for (const row of mem.rows) {
    for (const [kind, s] of Object.entries(row.stores)) {
      lines.push(`| ${row.perUser} | ${STORES[kind]} | ${f(s.written)} | ${f(s.bytesPerSession)} | ${kind === 'ours' ? '—' : `**${x(s.oursRatio)}**`} | ${f(s.keysPerSession, 2)} | ${f(s.setsPerSec)} |`)
    }
  }
  return lines
}

function scaleTable(sc) {
  const lines = []
  const { small, big } = sc
  lines.push(`### Scale: ours with ${f(small.fill.written)} vs ${f(big.fill.written)} live sessions in Redis (${sc.perUser} per user)`)
  lines.push('')
  lines.push(
    `Each on a redis-server of its own, filled through this store first; the store workload (${sc.sizeLabel}, ${sc.concurrency} concurrent) alternating, medians of ${sc.rounds} rounds; ` +
      `each call's time is the median of its rounds (fewer once a call has used up its time budget), with commandTimeout ${f(sc.commandTimeout / 1000)} s.`,
  )
  lines.push('')
  lines.push(`| | ${f(small.fill.written)} sessions | ${f(big.fill.written)} sessions | many ÷ few |`)
  lines.push('|---|---:|---:|---:|')
  lines.push(`| fill: sets/s | ${f(small.fill.setsPerSec)} | ${f(big.fill.setsPerSec)} | |`)
  lines.push(`| Redis used_memory after the fill, MB | ${f(small.fill.usedMemoryMB, 1)} | ${f(big.fill.usedMemoryMB, 1)} | |`)
  lines.push(`| workload ops/s | ${f(small.median.opsPerSec)} | ${f(big.median.opsPerSec)} | **${x(sc.ratio.opsPerSec)}** |`)
  lines.push(`| Node CPU µs/op | ${f(small.median.cpuUsPerOp, 1)} | ${f(big.median.cpuUsPerOp, 1)} | ${x(sc.ratio.cpuUsPerOp)} |`)
  lines.push(`| p50 / p99 ms | ${f(small.median.p50Ms, 2)} / ${f(small.median.p99Ms, 2)} | ${f(big.median.p50Ms, 2)} / ${f(big.median.p99Ms, 2)} | |`)
  lines.push(`| Redis CPU µs/op | ${f(small.median.redisCpuUsPerOp, 1)} | ${f(big.median.redisCpuUsPerOp, 1)} | |`)
  if (small.peer && big.peer) {
    lines.push(`| control: connect-redis, same servers, ops/s | ${f(small.peer.opsPerSec)} | ${f(big.peer.opsPerSec)} | ${x(sc.ratio.peerOpsPerSec)} |`)
    lines.push(`| control: connect-redis, Redis CPU µs/op | ${f(small.peer.redisCpuUsPerOp, 1)} | ${f(big.peer.redisCpuUsPerOp, 1)} | |`)
  }
  // The commands that take most of Redis's time in the last round.
  if (small.commands && big.commands) {
    const busiest = Object.keys(big.commands)
      .filter((c) => small.commands[c])
      .sort((a, b) => big.commands[b].calls * big.commands[b].usPerCall - big.commands[a].calls * big.commands[a].usPerCall)
      .slice(0, 4)
    for (const c of busiest) {
      lines.push(`| Redis µs per ${c.toUpperCase()} (last round) | ${f(small.commands[c].usPerCall, 2)} | ${f(big.commands[c].usPerCall, 2)} | ${x(big.commands[c].usPerCall / small.commands[c].usPerCall)} |`)
    }
  }
  for (const name of Object.keys(big.calls)) {
    const cell = (side) => `${f(side.calls[name].medianMs, 2)} ms (${side.calls[name].runs.length}×)`
    lines.push(`| ${name}() | ${cell(small)} | ${cell(big)} | **${x(sc.ratio.calls[name])}** |`)
  }
  return lines
}

function targetsTable(list) {
  const lines = []
  lines.push('### Targets')
  lines.push('')
  lines.push('| issue item | target | measured | bound | verdict | figures |')
  lines.push('|---:|---|---:|---:|---|---|')
  for (const t of list) {
    const verdict = t.met === true ? 'met' : t.met === false ? '**NOT met**' : t.value != null ? 'no target' : 'not measured'
    lines.push(`| ${t.item} | ${t.name} | ${x(t.value)} | ${t.target} | ${verdict} | ${t.figures} |`)
  }
  return lines
}

function httpTable(http) {
  const lines = []
  lines.push(`### HTTP: Express 5 + express-session, GET / with a logged-in session`)
  lines.push('')
  lines.push(`Medians of ${http.rounds} rounds, autocannon ${http.connections} connections × ${http.seconds} s from its own process; each connection has its own session. Ratios are ÷ MemoryStore.`)
  lines.push('')
  lines.push('| store | req/s | req/s ÷ Memory | p50 ms | p99 ms | server CPU µs/req | CPU ÷ Memory | server event loop busy | failures |')
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const s of http.stores) {
    const m = s.median
    const failures = s.runs.reduce((n, r) => n + (r.non2xx || 0) + (r.errors || 0), 0)
    lines.push(`| ${s.label} | ${f(m.reqPerSec)} | ${x(s.ratioToMemory.reqPerSec)} | ${f(m.p50Ms, 1)} | ${f(m.p99Ms, 1)} | ${f(m.cpuUsPerReq, 0)} | ${x(s.ratioToMemory.cpuUsPerReq)} | ${typeof m.elu === 'number' ? `${(m.elu * 100).toFixed(0)}%` : 'n/a'} | ${failures} |`)
  }
  if (http.oursVsConnectRedis) {
    lines.push('')
    lines.push(`redis-session-store ÷ connect-redis: req/s **${x(http.oursVsConnectRedis.reqPerSec)}**, server CPU per request **${x(http.oursVsConnectRedis.cpuUsPerReq)}**.`)
  }
  if (http.oursVsIoredis) {
    lines.push('')
    lines.push(`redis-session-store ÷ connect-redis 7 + ioredis: req/s **${x(http.oursVsIoredis.reqPerSec)}**, server CPU per request **${x(http.oursVsIoredis.cpuUsPerReq)}**.`)
  }
  return lines
}

function rssTable(rss) {
  const lines = []
  lines.push(`### RSS of redis-session-store's process (${rss.sizeLabel} sessions, ${rss.concurrency} concurrent)`)
  lines.push('')
  lines.push('| point | ops | RSS MB | heap used MB | external MB |')
  lines.push('|---|---:|---:|---:|---:|')
  const row = (name, ops, m) => m && lines.push(`| ${name} | ${f(ops)} | ${f(m.rssMB, 1)} | ${f(m.heapUsedMB, 1)} | ${f(m.externalMB, 1)} |`)
  row('after warm-up', rss.warmupOps, rss.afterWarmup)
  row('after run', rss.totalOps, rss.afterRun)
  row('after run + forced GC', rss.totalOps, rss.afterGc)
  lines.push('')
  lines.push(`Peak RSS ${f(rss.peakRssMB, 1)} MB; RSS growth warm-up → end (after GC) ${f((rss.afterGc || rss.afterRun).rssMB - rss.afterWarmup.rssMB, 1)} MB; ${f(rss.opsPerSec)} ops/s during the run.${rss.cutShort ? ' **Cut short by the time limit.**' : ''}`)
  return lines
}

function adminTable(admin) {
  const lines = []
  const cr = 'connect-redis'
  lines.push(`### Admin calls: ${f(admin.sessionsPerStore)} sessions per store among ${f(admin.unrelatedKeys)} unrelated keys`)
  lines.push('')
  lines.push(
    `Each store has its own ${f(admin.sessionsPerStore)} sessions (${f(admin.sessionBytes)} B; prefixes \`${admin.prefixes.ours}\` and \`${admin.prefixes[cr]}\`, ` +
      `${f(admin.sessionsPerUser)} per user) in one Redis holding ${f(admin.dbsize)} keys. Medians of ${admin.rounds.ours} rounds (ours) and ` +
      `${admin.rounds[cr]} (connect-redis); clear and destroyUserSessions once. Redis commands, SCANs and Redis CPU are per call, from INFO. ` +
      `"× faster" is connect-redis's time ÷ ours.`,
  )
  lines.push('')
  lines.push('| call | ms ours | ms connect-redis | × faster | Redis commands ours / c-r | SCANs ours / c-r | Redis CPU ms ours / c-r |')
  lines.push('|---|---:|---:|---:|---:|---:|---:|')
  const names = ['length', 'ids', 'all', 'clear', 'listUserSessions', 'stats', 'destroyUserSessions']
  const label = {
    listUserSessions: `listUserSessions (${admin.sessionsPerUser} sessions)`,
    destroyUserSessions: `destroyUserSessions (${admin.sessionsPerUser} sessions)`,
  }
  for (const name of names) {
    const slot = admin.calls[name]
    if (!slot) continue
    const a = (slot.ours && slot.ours.median) || {}
    const b = slot[cr] && slot[cr].median
    const pair = (field, digits) => `${f(a[field], digits)}${b ? ` / ${f(b[field], digits)}` : ''}`
    const r = admin.ratios[name]
    lines.push(
      `| ${label[name] || `${name}()`} | ${f(a.ms, 2)} | ${b ? f(b.ms, 1) : '—'} | ${b ? `**${typeof r === 'number' && Number.isFinite(r) ? `${f(r, r < 10 ? 1 : 0)}×` : 'n/a'}**` : '—'} | ${pair('commands')} | ${pair('scans')} | ${pair('redisCpuMs', 1)} |`,
    )
  }
  const t = admin.target
  const verdict = t.calls.map((name) => `${name}() ${admin.meetsTarget[name] === true ? 'met' : admin.meetsTarget[name] === false ? '**not met**' : 'n/a'}`)
  lines.push('')
  const scale = admin.sessionsPerStore === 10_000 && admin.unrelatedKeys === 1_000_000 ? '' : ' (the target is for 10,000 sessions among 1,000,000 keys; the ratios grow with the unrelated keys)'
  lines.push(`Target ≥ ${t.ratio}× faster than connect-redis: ${verdict.join(', ')}${scale}. Filling the unrelated keys (${admin.fill ? admin.fill.method : 'n/a'}) took ${admin.fill ? f(admin.fill.ms / 1000, 2) : 'n/a'} s.`)
  return lines
}

function clusterTable(cl) {
  const lines = []
  lines.push(`### Redis Cluster (${cl.masters} masters on this machine) beside one node`)
  lines.push('')
  lines.push(`Same workload as the store benchmark, ${cl.sizeLabel} sessions, ${cl.concurrency} concurrent; medians of ${cl.rounds} rounds. Every redis-server shares the same cores, so this is the cost of routing across nodes, not the gain of more machines.`)
  lines.push('')
  lines.push('| store | ops/s | Node CPU µs/op | p50 ms | p99 ms | Redis CPU µs/op (all nodes) |')
  lines.push('|---|---:|---:|---:|---:|---:|')
  for (const r of cl.rows) {
    const m = r.median
    lines.push(`| ${r.name} | ${f(m.opsPerSec)} | ${f(m.cpuUsPerOp, 1)} | ${f(m.p50Ms, 2)} | ${f(m.p99Ms, 2)} | ${f(m.redisCpuUsPerOp, 1)} |`)
  }
  lines.push('')
  lines.push(`Ours on the cluster ÷ ours on one node: ops/s **${x(cl.clusterVsSingle.opsPerSec)}**, CPU/op ${x(cl.clusterVsSingle.cpuUsPerOp)}. Ours ÷ connect-redis, both on the cluster: ops/s **${x(cl.oursVsConnectRedis.opsPerSec)}**, CPU/op **${x(cl.oursVsConnectRedis.cpuUsPerOp)}**.`)
  return lines
}

function embeddedTables(e) {
  const lines = []
  const st = e.store
  lines.push(`### Embedded engine (memory://, file://) beside express-session's MemoryStore`)
  lines.push('')
  lines.push(
    `The store workload (get, then touch 4 of 5 or set 1 of 5), each store in its own process; medians of ${st.rounds} rounds of ${f(st.durationMs / 1000, 1)} s. ` +
      `"ours, Redis" is this store on the bench's redis-server, for reference. Ratios are ÷ MemoryStore; CPU is the whole process's (all threads).`,
  )
  lines.push('')
  lines.push('| session | conc. | store | ops/s | ops/s ÷ Memory | CPU µs/op | CPU ÷ Memory | event loop busy | p50 ms | p99 ms |')
  lines.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const c of st.configs) {
    for (const s of Object.values(c.stores)) {
      const m = s.median
      lines.push(`| ${c.sizeLabel} | ${c.concurrency} | ${s.label} | ${f(m.opsPerSec)} | ${x(s.ratioToMemory.opsPerSec)} | ${f(m.cpuUsPerOp, 1)} | ${x(s.ratioToMemory.cpuUsPerOp)} | ${pct(m.elu)} | ${f(m.p50Ms, 3)} | ${f(m.p99Ms, 2)} |`)
    }
  }
  const ch = e.churn
  lines.push('')
  lines.push(`### Churn: ${f(ch.total)} sessions of ${ch.sizeLabel}, each written once with a cookie maxAge of ${f(ch.minAgeMs)}–${f(ch.maxAgeMs)} ms, ${ch.concurrency} at a time`)
  lines.push('')
  lines.push(
    `Each store in a fresh process (node --expose-gc). Writes/s and CPU after the first ${f(ch.warmup)} writes. "After expiry": ${f(ch.settleMs / 1000, 1)} s after the last session expired, then a forced GC. ` +
      `Growth is from the empty store's RSS (after a GC) to after expiry; ratios ÷ MemoryStore. "Held" is what MemoryStore's table still has (its length() parses every session and drops the expired ones as it counts); for ours, length(), which counts live sessions: ` +
      `the engine also keeps each ended session's meta until its reclaim walk reaches the session's shard (every shard about once a minute, faster while sessions end; a longer --churn-settle shows it).`,
  )
  lines.push('')
  lines.push('| store | written | writes/s | ÷ Memory | CPU µs/write | RSS MB empty | after warm-up | end of writes | peak | after expiry | growth MB | growth ÷ Memory | JS heap MB after expiry | held after expiry | length() | length() ms | RSS MB after length() + GC |')
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const r of ch.rows) {
    const heldNow = r.heldAfterExpiry ?? r.length.count
    lines.push(
      `| ${r.label} | ${f(r.written)}${r.cutShort ? ' (cut short)' : ''} | ${f(r.writesPerSec)} | ${x(r.ratioToMemory.writesPerSec)} | ${f(r.cpuUsPerWrite, 1)} | ${f(r.start.rssMB, 1)} | ${f(r.afterWarmup && r.afterWarmup.rssMB, 1)} | ${f(r.atEnd.rssMB, 1)} | ${f(r.peakRssMB, 1)} | ` +
        `**${f(r.afterExpiry.rssMB, 1)}** | ${f(r.rssGrowthMB, 1)} | ${x(r.ratioToMemory.rssGrowth)} | ${f(r.afterExpiry.heapUsedMB, 1)} | ${f(heldNow)} | ${f(r.length.count)} | ${f(r.length.ms, 1)} | ${f(r.afterLength.rssMB, 1)} |`,
    )
  }
  const file = ch.rows.find((r) => r.fileMB != null)
  if (file) lines.push('', `The file of ${file.label} was ${f(file.fileMB, 1)} MB after the run.`)
  return lines
}

function markdown(results) {
  const lines = []
  const m = results.meta
  lines.push(`## Benchmark results (${m.date})`)
  lines.push('')
  lines.push(`Node ${m.node}, Redis ${m.redisVersion || '?'}, ${m.cpus}× ${m.cpuModel}; load average at start ${m.loadavgStart.map((v) => v.toFixed(2)).join(' ')}, at end ${(m.loadavgEnd || []).map((v) => v.toFixed(2)).join(' ')}.${m.config.quick ? ' **--quick: too short to mean anything.**' : ''}`)
  if (results.store) lines.push('', ...storeTables(results.store))
  if (results.rss) lines.push('', ...rssTable(results.rss))
  if (results.features) lines.push('', ...featuresTable(results.features))
  if (results.http) lines.push('', ...httpTable(results.http))
  if (results.memory) lines.push('', ...memoryTable(results.memory))
  if (results.scale) lines.push('', ...scaleTable(results.scale))
  if (results.admin) lines.push('', ...adminTable(results.admin))
  if (results.cluster) lines.push('', ...clusterTable(results.cluster))
  if (results.embedded) lines.push('', ...embeddedTables(results.embedded))
  if (results.problems.length) {
    lines.push('', '### Problems', '')
    for (const p of results.problems) lines.push(`- ${p}`)
  }
  if (results.targets) lines.push('', ...targetsTable([...results.targets, ...(results.featureTargets || [])]))
  lines.push('')
  return lines.join('\n')
}

module.exports = { markdown }
