'use strict'

// Benchmark: redis-session-store vs connect-redis 9 (+ node-redis 6), connect-redis 7
// (+ ioredis 5, auto-pipelining), MemoryStore and a JSON-only baseline.
//
//   node bench/run.js                 # default run, about 20 minutes on 2 cores
//   node bench/run.js --quick         # smoke run, about half a minute, numbers meaningless
//   node bench/run.js --only store    # store (+ RSS) only; also: features, http, nest, rss, memory, scale, admin, cluster, embedded, or a list
//   REDIS_URL=redis://host:6379 node bench/run.js
//
// Every measured thing runs in a child process (fork): one per store and
// round for the store benchmark, one per HTTP server, one for autocannon,
// one per store for the admin calls (bench/admin.js). The memory and scale
// parts start redis-servers of their own (they flush and fill them).
// Prints the tables and, last, each target of the issue with its measured
// value and whether it is met (targets.js).
// Writes bench/results/latest.json and bench/results/chart.svg (with
// --quick: into a temporary directory, so a smoke test never overwrites them).
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnChild, killAll } = require('./ipc')
const { startRedis, redisVersion } = require('./redis')
const { median, medians, ratio, fmt } = require('./stats')
const { sizeLabel } = require('./sessions')
const { STORES } = require('./stores')
const { markdown } = require('./report')
const { benchChart } = require('./chart')
const { adminBench } = require('./admin')
const { clusterBench } = require('./cluster')
const { embeddedBench } = require('./embedded')
const { nestBench } = require('./nest')
const { featuresBench } = require('./features')
const { memoryBench } = require('./memory')
const { scaleBench } = require('./scale')
const { targets, featureTargets } = require('./targets')

const HELP = `usage: node bench/run.js [options]
  --quick                 about half a minute in all; checks that everything runs
  --only LIST             store, features, http, nest, rss, memory, scale, admin, cluster, embedded
                          (comma-separated; "store" includes rss; default all of them)
  --rounds N              store rounds, each store in a fresh process (default 3)
  --http-rounds N         HTTP rounds (default 5)
  --duration S            measured seconds per store run (default 2)
  --warmup S              warm-up seconds per store run (default 0.5)
  --sizes LIST            session sizes in bytes (default 300,2000,20000)
  --concurrency LIST      concurrent requests (default 64,1)
  --pool N                sessions per size (default 1000)
  --http-duration S       measured seconds per HTTP run (default 4)
  --http-warmup S         warm-up seconds per HTTP run (default 1)
  --connections N         autocannon connections = logged-in sessions (default 64)
  --rss-ops N             operations for the RSS check (default 1000000)
  --rss-size B            session size for the RSS check (default 2000)
  --memory-sessions N     sessions written through each Redis store for Redis's
                          memory per session (default 100000)
  --memory-size B         their size in bytes, owner included (default 200)
  --memory-per-user LIST  sessions per user, one measurement each (default 10,1)
  --memory-limit S        seconds of writing per store before it is cut short (default 300)
  --scale-small N         live sessions in Redis, few (default 10000)
  --scale-big N           live sessions in Redis, many (default 1000000)
  --scale-per-user N      sessions per user in both (default 10)
  --scale-limit S         seconds of filling per Redis before it is cut short (default 300)
  --scale-call-rounds N   timed rounds per call (length, stats, listUserSessions) (default 5)
  --scale-call-budget S   no more rounds of a call once it has taken this long (default 30)
  --admin-keys N          unrelated keys in Redis for the admin calls (default 1000000)
  --admin-sessions N      sessions written through each store (default 10000)
  --admin-rounds N        timed rounds per admin call, connect-redis (default 3)
  --admin-ours-rounds N   timed rounds per admin call, this store (default 10)
  --features-rounds N     rounds of the features part (store options off and on, 64
                          concurrent), each side in a fresh process (default 5)
  --features-duration S   measured seconds per features run (default 1.5)
  --encryption-sizes LIST session sizes for encryption off/on (default 200,2000,20000)
  --merge-sizes LIST      session sizes for merge off/on (default 200,2000)
  --cluster-size B        session size for the cluster run (default 200)
  --cluster-concurrency N concurrent requests for the cluster run (default 64)
  --embedded-sizes LIST   session sizes for memory:// and file:// beside MemoryStore
                          (default 200,2000)
  --churn-sessions N      short sessions written once through each in-process store
                          (default 1000000)
  --churn-size B          their size in bytes (default 200)
  --churn-ages MIN,MAX    their cookie maxAge in ms, uniform (default 100,500)
  --churn-limit S         seconds of writing per store before it is cut short (default 180)
  --churn-settle S        wait after the last expiry before measuring (default 2)
  --out DIR               where latest.json and chart.svg go (default bench/results)
REDIS_URL=...             use this Redis instead of starting redis-server`

function parseArgs(argv) {
  const a = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`)
    const eq = arg.indexOf('=')
    const key = eq > 0 ? arg.slice(2, eq) : arg.slice(2)
    if (key === 'quick' || key === 'help') {
      a[key] = true
      continue
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
    if (value === undefined) throw new Error(`${arg} needs a value`)
    a[key] = value
  }
  return a
}

function config(argv) {
  try {
    return parseConfig(argv)
  } catch (err) {
    err.usage = true
    throw err
  }
}

function parseConfig(argv) {
  const a = parseArgs(argv)
  if (a.help) {
    console.log(HELP)
    process.exit(0)
  }
  const quick = !!a.quick
  const num = (k, d) => {
    if (a[k] === undefined) return d
    const v = Number(a[k])
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${k} must be a number`)
    return v
  }
  const list = (k, d) => (a[k] === undefined ? d : String(a[k]).split(',').map(Number))
  const only = a.only ? String(a.only).split(',') : ['store', 'features', 'http', 'nest', 'memory', 'scale', 'admin', 'cluster', 'embedded']
  for (const o of only) {
    if (!['store', 'features', 'http', 'nest', 'rss', 'memory', 'scale', 'admin', 'cluster', 'embedded'].includes(o)) {
      throw new Error(`--only takes store, features, http, nest, rss, memory, scale, admin, cluster or embedded, not ${o}`)
    }
  }
  const ages = list('churn-ages', [100, 500])
  const c = {
    quick,
    parts: {
      store: only.includes('store'),
      rss: only.includes('store') || only.includes('rss'),
      features: only.includes('features'),
      http: only.includes('http'),
      nest: only.includes('nest'),
      memory: only.includes('memory'),
      scale: only.includes('scale'),
      admin: only.includes('admin'),
      cluster: only.includes('cluster'),
      embedded: only.includes('embedded'),
    },
    rounds: Math.max(1, Math.round(num('rounds', quick ? 1 : 3))),
    httpRounds: Math.max(1, Math.round(num('http-rounds', quick ? 1 : 5))),
    durationMs: num('duration', quick ? 0.15 : 2) * 1000,
    warmupMs: num('warmup', quick ? 0.05 : 0.5) * 1000,
    sizes: list('sizes', [300, 2000, 20000]),
    concurrency: list('concurrency', [64, 1]),
    pool: Math.max(1, Math.round(num('pool', quick ? 100 : 1000))),
    httpSeconds: num('http-duration', quick ? 0.5 : 4),
    httpWarmupSeconds: num('http-warmup', quick ? 0 : 1),
    connections: Math.max(1, Math.round(num('connections', quick ? 16 : 64))),
    rssOps: Math.max(2, Math.round(num('rss-ops', quick ? 10000 : 1e6))),
    rssSize: Math.round(num('rss-size', 2000)),
    rssConcurrency: 64,
    memorySessions: Math.max(1, Math.round(num('memory-sessions', quick ? 2000 : 100_000))),
    memorySize: Math.round(num('memory-size', 200)),
    memoryPerUser: list('memory-per-user', [10, 1]),
    memoryLimitMs: num('memory-limit', quick ? 20 : 300) * 1000,
    scaleSmall: Math.max(1, Math.round(num('scale-small', quick ? 200 : 10_000))),
    scaleBig: Math.max(1, Math.round(num('scale-big', quick ? 2000 : 1e6))),
    scalePerUser: Math.max(1, Math.round(num('scale-per-user', 10))),
    scaleSize: 200,
    scaleConcurrency: 64,
    scaleFillLimitMs: num('scale-limit', quick ? 20 : 300) * 1000,
    scaleCallRounds: Math.max(1, Math.round(num('scale-call-rounds', quick ? 1 : 5))),
    scaleCallBudgetMs: num('scale-call-budget', quick ? 5 : 30) * 1000,
    adminKeys: Math.round(num('admin-keys', quick ? 20_000 : 1e6)),
    adminSessions: Math.max(1, Math.round(num('admin-sessions', quick ? 500 : 10_000))),
    adminPerUser: 10,
    adminRounds: Math.max(1, Math.round(num('admin-rounds', quick ? 1 : 3))),
    adminOursRounds: Math.max(1, Math.round(num('admin-ours-rounds', quick ? 3 : 10))),
    featuresRounds: Math.max(1, Math.round(num('features-rounds', quick ? 1 : 5))),
    featuresDurationMs: num('features-duration', quick ? 0.15 : 1.5) * 1000,
    featuresConcurrency: 64,
    encryptionSizes: list('encryption-sizes', [200, 2000, 20000]),
    mergeSizes: list('merge-sizes', [200, 2000]),
    clusterSize: Math.round(num('cluster-size', 200)),
    clusterConcurrency: Math.max(1, Math.round(num('cluster-concurrency', quick ? 16 : 64))),
    embeddedSizes: list('embedded-sizes', [200, 2000]),
    churnSessions: Math.max(1, Math.round(num('churn-sessions', quick ? 10_000 : 1e6))),
    churnSize: Math.round(num('churn-size', 200)),
    churnConcurrency: 64,
    churnMinAgeMs: ages[0],
    churnMaxAgeMs: ages[1],
    churnLimitMs: num('churn-limit', quick ? 20 : 180) * 1000,
    churnSettleMs: num('churn-settle', quick ? 0.5 : 2) * 1000,
    out: a.out ? path.resolve(a.out) : quick ? path.join(os.tmpdir(), 'redis-session-store-bench') : path.join(__dirname, 'results'),
  }
  for (const s of c.sizes) if (!(s > 0)) throw new Error('--sizes must be positive numbers')
  for (const s of c.embeddedSizes) if (!(s > 0)) throw new Error('--embedded-sizes must be positive numbers')
  for (const s of [...c.encryptionSizes, ...c.mergeSizes]) if (!(s > 0)) throw new Error('--encryption-sizes and --merge-sizes must be positive numbers')
  if (!(ages.length === 2 && ages[0] >= 1 && ages[1] >= ages[0])) throw new Error('--churn-ages must be MIN,MAX in ms, 1 ≤ MIN ≤ MAX')
  for (const n of c.concurrency) if (!(n >= 1)) throw new Error('--concurrency must be numbers ≥ 1')
  for (const n of c.memoryPerUser) if (!(n >= 1)) throw new Error('--memory-per-user must be numbers ≥ 1')
  return c
}

const log = (...args) => console.error('[bench]', ...args)
const STORE_FIELDS = ['opsPerSec', 'cpuUsPerOp', 'cpuUserUsPerOp', 'cpuSystemUsPerOp', 'elu', 'p50Ms', 'p99Ms', 'redisCpuUsPerOp', 'redisSysUsPerOp', 'redisCallsPerOp']
// The Redis stores (ours as configured by default, without owners, and
// with owners and an idle timeout; see stores.js), then the in-process
// ones: MemoryStore (the limit of keeping sessions in the process) and
// the JSON-only baseline (json-store.js).
const KINDS = ['ours', 'ours-plain', 'ours-owned', 'connect-redis', 'ioredis', 'memory', 'json']
const IN_PROCESS = new Set(['memory', 'json'])

async function openWorker(kind, url) {
  const w = spawnChild('store-worker.js', [kind, IN_PROCESS.has(kind) ? 'none' : url], { execArgv: ['--expose-gc'] })
  await w.call('open', {}, 15_000)
  return w
}

async function storeBench(c, url, problems) {
  const configs = []
  for (const size of c.sizes) {
    for (const concurrency of c.concurrency) {
      const cfg = { size, sizeLabel: sizeLabel(size), concurrency }
      for (const kind of KINDS) cfg[kind] = { label: STORES[kind], runs: [] }
      configs.push(cfg)
    }
  }
  const runTimeout = c.warmupMs + c.durationMs + 60_000
  for (let round = 1; round <= c.rounds; round++) {
    // A fresh process per store and round; while one runs, the others idle.
    const workers = {}
    try {
      const opened = await Promise.all(KINDS.map((k) => openWorker(k, url)))
      KINDS.forEach((k, i) => (workers[k] = opened[i]))
      for (const cfg of configs) {
        for (const kind of KINDS) {
          const r = await workers[kind].call(
            'run',
            { size: cfg.size, pool: c.pool, concurrency: cfg.concurrency, warmupMs: c.warmupMs, durationMs: c.durationMs },
            runTimeout,
          )
          cfg.sessionBytes = r.sessionBytes
          cfg[kind].runs.push(r)
          if (r.errors) problems.push(`store ${kind}, ${cfg.sizeLabel}, conc. ${cfg.concurrency}, round ${round}: ${r.errors} errors (first: ${r.firstError})`)
          if (!r.ops) problems.push(`store ${kind}, ${cfg.sizeLabel}, conc. ${cfg.concurrency}, round ${round}: no request completed in the measured ${c.durationMs} ms`)
          log(`round ${round}/${c.rounds} ${cfg.sizeLabel} conc ${cfg.concurrency} ${kind.padEnd(13)} ${Math.round(r.opsPerSec).toString().padStart(7)} ops/s  ${fmt(r.cpuUsPerOp, 1).padStart(6)} µs CPU/op  ELU ${(r.elu * 100).toFixed(0)}%  p50 ${fmt(r.p50Ms, 2)} ms`)
        }
      }
    } finally {
      await Promise.all(Object.values(workers).map((w) => w.stop()))
    }
  }
  for (const cfg of configs) {
    for (const kind of KINDS) cfg[kind].median = medians(cfg[kind].runs, STORE_FIELDS)
    // What each store costs above the JSON its users pay anyway.
    for (const kind of KINDS) cfg[kind].overheadUsPerOp = diff(cfg[kind].median.cpuUsPerOp, cfg.json.median.cpuUsPerOp)
    const ours = { ...cfg.ours.median, overheadUsPerOp: cfg.ours.overheadUsPerOp }
    for (const kind of KINDS) {
      const it = { ...cfg[kind].median, overheadUsPerOp: cfg[kind].overheadUsPerOp }
      cfg[kind].oursRatio = {}
      for (const f of [...STORE_FIELDS, 'overheadUsPerOp']) cfg[kind].oursRatio[f] = ratio(ours[f], it[f])
    }
    // Ours ÷ connect-redis 9, as before the other peers (chart.js).
    cfg.ratio = cfg['connect-redis'].oursRatio
  }
  return { rounds: c.rounds, durationMs: c.durationMs, warmupMs: c.warmupMs, pool: c.pool, kinds: KINDS, configs }
}

function diff(a, b) {
  return typeof a === 'number' && typeof b === 'number' ? a - b : null
}

async function rssCheck(c, url, problems) {
  const w = await openWorker('ours', url)
  try {
    const warmupOps = Math.min(Math.max(2, Math.round(c.rssOps / 20)), 100_000)
    const maxMs = Math.max(20_000, c.rssOps / 5) // at least 5k ops/s, else cut short
    log(`RSS check: ${c.rssOps.toLocaleString('en-US')} ops of ${sizeLabel(c.rssSize)} sessions (warm-up ${warmupOps.toLocaleString('en-US')})`)
    const r = await w.call(
      'rss',
      { size: c.rssSize, pool: c.pool, concurrency: c.rssConcurrency, warmupOps, totalOps: c.rssOps, maxMs },
      maxMs + 60_000,
    )
    if (r.errors) problems.push(`RSS check: ${r.errors} errors (first: ${r.firstError})`)
    if (r.cutShort) problems.push(`RSS check cut short after ${r.totalOps} ops by its ${maxMs} ms limit`)
    log(`RSS after warm-up ${r.afterWarmup.rssMB.toFixed(1)} MB, after ${r.totalOps.toLocaleString('en-US')} ops ${r.afterRun.rssMB.toFixed(1)} MB`)
    return { ...r, size: c.rssSize, sizeLabel: sizeLabel(c.rssSize), concurrency: c.rssConcurrency, requestedOps: c.rssOps }
  } finally {
    await w.stop()
  }
}

const HTTP_KINDS = ['memory', 'ours', 'connect-redis', 'ioredis']
const HTTP_FIELDS = ['reqPerSec', 'p50Ms', 'p99Ms', 'cpuUsPerReq', 'cpuUserUsPerReq', 'cpuSystemUsPerReq', 'elu']

async function httpBench(c, url, problems) {
  const stores = HTTP_KINDS.map((kind) => ({ kind, label: STORES[kind], runs: [] }))
  const loader = spawnChild('http-load.js')
  const loadTimeout = (s) => s * 1000 + 30_000
  try {
    for (let round = 1; round <= c.httpRounds; round++) {
      for (const s of stores) {
        const server = spawnChild('http-server.js', [s.kind, url])
        try {
          const { port } = await server.call('open', {}, 15_000)
          await loader.call('login', { port, sessions: c.connections }, 30_000)
          if (c.httpWarmupSeconds > 0) {
            await loader.call('load', { port, connections: c.connections, seconds: c.httpWarmupSeconds }, loadTimeout(c.httpWarmupSeconds))
          }
          await server.call('mark', {}, 5_000)
          const load = await loader.call('load', { port, connections: c.connections, seconds: c.httpSeconds }, loadTimeout(c.httpSeconds))
          const srv = await server.call('report', {}, 5_000)
          const r = { ...load, cpuUsPerReq: srv.cpuUsPerReq, cpuUserUsPerReq: srv.cpuUserUsPerReq, cpuSystemUsPerReq: srv.cpuSystemUsPerReq, elu: srv.elu, serverRequests: srv.requests, serverRssMB: srv.rssMB }
          s.runs.push(r)
          if (r.non2xx || r.errors) problems.push(`HTTP ${s.kind}, round ${round}: ${r.non2xx} non-2xx responses, ${r.errors} errors`)
          log(`http round ${round}/${c.httpRounds} ${s.kind.padEnd(13)} ${Math.round(r.reqPerSec).toString().padStart(6)} req/s  ${Math.round(r.cpuUsPerReq).toString().padStart(5)} µs server CPU/req  ELU ${(r.elu * 100).toFixed(0)}%`)
        } finally {
          await server.stop()
        }
      }
    }
  } finally {
    await loader.stop()
  }
  for (const s of stores) s.median = medians(s.runs, HTTP_FIELDS)
  const mem = stores[0].median
  for (const s of stores) {
    s.ratioToMemory = { reqPerSec: ratio(s.median.reqPerSec, mem.reqPerSec), cpuUsPerReq: ratio(s.median.cpuUsPerReq, mem.cpuUsPerReq) }
  }
  const ours = stores.find((s) => s.kind === 'ours').median
  const cr = stores.find((s) => s.kind === 'connect-redis').median
  const io = stores.find((s) => s.kind === 'ioredis').median
  return {
    rounds: c.httpRounds,
    seconds: c.httpSeconds,
    warmupSeconds: c.httpWarmupSeconds,
    connections: c.connections,
    stores,
    oursVsConnectRedis: { reqPerSec: ratio(ours.reqPerSec, cr.reqPerSec), cpuUsPerReq: ratio(ours.cpuUsPerReq, cr.cpuUsPerReq) },
    oursVsIoredis: { reqPerSec: ratio(ours.reqPerSec, io.reqPerSec), cpuUsPerReq: ratio(ours.cpuUsPerReq, io.cpuUsPerReq) },
  }
}

async function main() {
  const c = config(process.argv.slice(2))
  const started = Date.now()
  let redis = null
  const cleanupNow = () => {
    killAll()
    if (redis) redis.killNow()
  }
  process.on('exit', cleanupNow)
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      cleanupNow()
      process.exit(130)
    })
  }
  // Last line of defence against a hang: a generous bound on the whole run.
  const budgetMs =
    60_000 +
    3 * ((c.parts.store ? c.rounds * c.sizes.length * c.concurrency.length * KINDS.length * (c.warmupMs + c.durationMs + 3000) : 0) +
      (c.parts.rss ? Math.max(20_000, c.rssOps / 5) : 0) +
      // Two sides per size; two processes per feature and round.
      (c.parts.features
        ? c.featuresRounds * (2 * (c.encryptionSizes.length + c.mergeSizes.length) * (c.warmupMs + c.featuresDurationMs + 3000) + 4 * 5000)
        : 0) +
      (c.parts.http ? c.httpRounds * HTTP_KINDS.length * ((c.httpSeconds + c.httpWarmupSeconds) * 1000 + 5000) : 0) +
      (c.parts.nest ? c.httpRounds * 2 * ((c.httpSeconds + c.httpWarmupSeconds) * 1000 + 10_000) : 0) +
      // 3 Redis stores per distribution, each write bounded by --memory-limit.
      (c.parts.memory ? c.memoryPerUser.length * 3 * (Math.min(c.memoryLimitMs, c.memorySessions) + 10_000) : 0) +
      // Two fills, the workload rounds, then 3 calls × 2 sides within their budget (+ one call).
      (c.parts.scale
        ? 2 * (Math.min(c.scaleFillLimitMs, c.scaleBig) + 10_000) + c.rounds * 2 * (c.warmupMs + c.durationMs + 5000) + 6 * (c.scaleCallBudgetMs + 30_000)
        : 0) +
      (c.parts.cluster ? 30_000 + c.rounds * 3 * (c.warmupMs + c.durationMs + 8000) : 0) +
      // 4 stores in the workload, then 3 churns bounded by --churn-limit.
      (c.parts.embedded
        ? c.rounds * c.embeddedSizes.length * c.concurrency.length * 4 * (c.warmupMs + c.durationMs + 3000) +
          3 * (c.churnLimitMs + c.churnMaxAgeMs + c.churnSettleMs + 20_000)
        : 0) +
      // Filling, then connect-redis's SCANs of the whole keyspace (1.3-3 s
      // per call per million keys on 2 cores; 10 s allowed), 3 calls a round.
      (c.parts.admin ? 30_000 + (c.adminKeys / 1e6) * (60_000 + c.adminRounds * 3 * 10_000) + c.adminSessions * 2 : 0))
  const watchdog = setTimeout(() => {
    console.error(`[bench] gave up after ${Math.round(budgetMs / 1000)} s`)
    cleanupNow()
    process.exit(2)
  }, budgetMs)
  watchdog.unref()

  const problems = []
  const results = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: os.cpus().length,
      cpuModel: (os.cpus()[0] || {}).model || '?',
      loadavgStart: os.loadavg(),
      redisVersion: null,
      redisUrl: process.env.REDIS_URL ? 'REDIS_URL' : 'spawned redis-server on loopback',
      versions: {
        'connect-redis': readVersion('connect-redis'),
        redis: readVersion('redis'),
        'connect-redis7': readVersion('connect-redis7'),
        ioredis: readVersion('ioredis'),
        express: readVersion('express'),
        'express-session': readVersion('express-session'),
        autocannon: readVersion('autocannon'),
      },
      config: { ...c, out: undefined },
    },
    store: null,
    rss: null,
    features: null,
    http: null,
    memory: null,
    scale: null,
    admin: null,
    cluster: null,
    embedded: null,
    targets: null,
    featureTargets: null,
    problems,
  }

  let failed = null
  try {
    redis = await startRedis()
    results.meta.redisVersion = await redisVersion(redis.url)
    log(`Redis ${results.meta.redisVersion} at ${redis.external ? 'REDIS_URL' : redis.url}; load average ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`)
    if (c.parts.store) results.store = await storeBench(c, redis.url, problems)
    if (c.parts.rss) results.rss = await rssCheck(c, redis.url, problems)
    if (c.parts.features) results.features = await featuresBench(c, redis.url, problems)
    if (c.parts.http) results.http = await httpBench(c, redis.url, problems)
    if (c.parts.nest) {
      results.nest = await nestBench(c, redis.url, problems, log)
      const { reqPerSec, cpuUsPerReq } = results.nest.moduleVsHand
      log(`nest: SessionModule ÷ wired by hand: ${reqPerSec.toFixed(2)}× req/s, ${cpuUsPerReq.toFixed(2)}× server CPU/req`)
    }
    if (c.parts.memory) results.memory = await memoryBench(c, problems)
    if (c.parts.scale) results.scale = await scaleBench(c, problems)
    if (c.parts.cluster) results.cluster = await clusterBench(c, redis.url, problems)
    if (c.parts.embedded) results.embedded = await embeddedBench(c, redis.url, problems)
    // Last: it fills Redis with unrelated keys (and deletes them after).
    if (c.parts.admin) results.admin = await adminBench(c, redis.url, problems)
  } catch (err) {
    failed = err
    problems.push(`aborted: ${err.message}`)
  } finally {
    killAll()
    if (redis) {
      try {
        await redis.stop()
      } catch (err) {
        problems.push(`stopping redis-server: ${err.message}`)
        redis.killNow()
      }
    }
    clearTimeout(watchdog)
  }
  results.meta.loadavgEnd = os.loadavg()
  results.meta.seconds = (Date.now() - started) / 1000
  results.targets = targets(results)
  // Apart from the issue's items (targets.js); printed in the same table.
  results.featureTargets = featureTargets(results)

  console.log(markdown(results))
  fs.mkdirSync(c.out, { recursive: true })
  const jsonPath = path.join(c.out, 'latest.json')
  fs.writeFileSync(jsonPath, JSON.stringify(results, null, 2) + '\n')
  let chartPath = null
  if (results.store || results.http) {
    chartPath = path.join(c.out, 'chart.svg')
    fs.writeFileSync(chartPath, benchChart(results))
  }
  log(`wrote ${path.relative(process.cwd(), jsonPath) || jsonPath}${chartPath ? ` and ${path.relative(process.cwd(), chartPath)}` : ''} in ${results.meta.seconds.toFixed(1)} s`)
  if (failed) {
    console.error(failed)
    process.exitCode = 1
  } else if (problems.length) {
    process.exitCode = 1
  }
}

function readVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return null
  }
}

main().catch((err) => {
  if (err && err.usage) {
    console.error(`bench: ${err.message}\n\n${HELP}`)
    process.exit(2)
  }
  console.error(err)
  killAll()
  process.exit(1)
})
