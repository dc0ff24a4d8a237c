'use strict'

// Child process: one store, driven like express-session with resave:false.
// Each "request" is a get, then a touch (4 of 5) or a set (1 of 5) of the
// session it read. Commands arrive from run.js over IPC (see ipc.js).
// With oneKeyWrites (the features part's merge runs), a set changes exactly
// one top-level key of what get returned, lastSeen, and leaves the cookie as
// read, so a merging store has one key to write.
const fs = require('node:fs')
const { performance } = require('node:perf_hooks')
const { serve } = require('./ipc')
const { openStore, OWNED } = require('./stores')
const { makeSession } = require('./sessions')
const { percentile } = require('./stats')
const { redisUsage } = require('./redis')
const { churn } = require('./churn')
const { fillOwned, timeCall } = require('./owned')

const kind = process.argv[2]
const url = process.argv[3]
// memory:// and file:// (the embedded engine), MemoryStore and the JSON
// baseline have no Redis to ask for CPU.
const measuresRedis = /^rediss?:/.test(url)
let opened = null
const written = new Set()

function cbToPromise(fn) {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))))
}

// A few distinct session bodies per size, reused across the pool: enough
// variety without a big long-lived heap that would slow every GC.
const TEMPLATES = 50
const templates = new Map()
// The owned kind's sessions have an owner: 20 sessions a user in a pool
// of 1,000 (the per-user index on every write).
function template(size, i) {
  if (!templates.has(size)) {
    const owned = (k) => (OWNED.has(kind) ? { userId: `u${k}` } : {})
    templates.set(size, Array.from({ length: TEMPLATES }, (_, k) => ({ ...makeSession(size, k), ...owned(k) })))
  }
  return templates.get(size)[i % TEMPLATES]
}

async function prefill(store, size, pool) {
  const sids = []
  // The pid keeps processes sharing a prefix (the scale part) apart: this
  // store keeps a destroyed id's logout marker, so a later set of it writes nothing.
  for (let i = 0; i < pool; i++) sids.push(`s${size}-${i}-${process.pid}-`.padEnd(32, 'x'))
  for (let i = 0; i < sids.length; i += 100) {
    await Promise.all(sids.slice(i, i + 100).map((sid, k) => cbToPromise((cb) => store.set(sid, template(size, i + k), cb))))
  }
  for (const sid of sids) written.add(sid)
  const bytes = JSON.stringify(template(size, 0)).length
  return { sids, bytes }
}

// The JS thread's own CPU time in ns (Linux's scheduler count for the
// calling thread), or null elsewhere: process.cpuUsage() counts every
// thread, the store's Rust ones too, and the event loop's busy time is wall
// time, which grows when other processes take the core.
function jsThreadCpuNs() {
  try {
    return Number(fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0])
  } catch {
    return null
  }
}

function snapshot() {
  return { t: performance.now(), cpu: process.cpuUsage(), elu: performance.eventLoopUtilization(), js: jsThreadCpuNs() }
}

// Runs `concurrency` request loops. Phases end after a time (ms) or a number
// of completed requests (ops); maxMs bounds the whole run regardless.
function load(store, sids, { concurrency, warmupMs, durationMs, warmupReqs, measureReqs, maxMs, onWarm, oneKeyWrites = false }) {
  return new Promise((resolve) => {
    let phase = 'warmup'
    let active = concurrency
    let completed = 0
    let errors = 0
    let firstError = null
    let writes = 0
    let issued = 0
    const lat = []
    let start = null
    let end = null
    let startReqs = 0
    let endReqs = 0
    let measureT0 = Infinity
    let stopAtNext = false
    const timers = []
    const t0 = performance.now()

    function begin() {
      if (phase !== 'warmup') return
      if (onWarm) onWarm()
      phase = 'measure'
      start = snapshot()
      measureT0 = start.t
      startReqs = completed
      if (durationMs != null) timers.push(setTimeout(timeUp, durationMs))
    }
    // A window in which no request completed measures nothing (a short run
    // of large sessions on a loaded machine): it ends at the next one.
    function timeUp() {
      if (phase === 'measure' && completed === startReqs) stopAtNext = true
      else stop()
    }
    function stop() {
      if (phase === 'stop') return
      if (phase === 'warmup') begin()
      end = snapshot()
      endReqs = completed
      phase = 'stop'
    }
    if (warmupMs != null) timers.push(setTimeout(begin, warmupMs))
    timers.push(setTimeout(stop, maxMs))

    function fail(err) {
      errors++
      if (!firstError) firstError = String((err && err.message) || err)
    }
    function request() {
      const sid = sids[(Math.random() * sids.length) | 0]
      const began = performance.now()
      store.get(sid, (err, sess) => {
        if (err || !sess) {
          fail(err || new Error(`session ${sid} not found`))
          return next(began)
        }
        const write = ++issued % 5 === 0
        // What express-session hands over: cookie.expires moved to now + maxAge.
        if (!(write && oneKeyWrites)) sess.cookie.expires = new Date(Date.now() + sess.cookie.originalMaxAge)
        const done = (e) => {
          if (e) fail(e)
          next(began)
        }
        if (write) {
          writes++
          sess.lastSeen = Date.now()
          store.set(sid, sess, done)
        } else {
          store.touch(sid, sess, done)
        }
      })
    }
    function next(began) {
      completed++
      if (phase === 'measure' && began >= measureT0) lat.push(performance.now() - began)
      if (phase === 'warmup' && warmupReqs != null && completed >= warmupReqs) begin()
      if (phase === 'measure' && (stopAtNext || (measureReqs != null && completed - startReqs >= measureReqs))) stop()
      if (phase === 'stop') {
        if (--active === 0) finish()
        return
      }
      request()
    }
    function finish() {
      for (const t of timers) clearTimeout(t)
      const reqs = endReqs - startReqs
      const ops = reqs * 2
      const secs = (end.t - start.t) / 1000
      const cpuMicros = end.cpu.user - start.cpu.user + (end.cpu.system - start.cpu.system)
      const loop = performance.eventLoopUtilization(end.elu, start.elu)
      lat.sort((a, b) => a - b)
      resolve({
        seconds: secs,
        requests: reqs,
        ops,
        opsPerSec: ops / secs,
        cpuUsPerOp: cpuMicros / ops,
        cpuUserUsPerOp: (end.cpu.user - start.cpu.user) / ops,
        cpuSystemUsPerOp: (end.cpu.system - start.cpu.system) / ops,
        cpuUserUs: end.cpu.user - start.cpu.user,
        cpuSystemUs: end.cpu.system - start.cpu.system,
        elu: loop.utilization,
        // The JS thread's busy time per op: its work, whatever the rate.
        eluUsPerOp: (loop.active * 1000) / ops,
        jsCpuUsPerOp: start.js != null && end.js != null ? (end.js - start.js) / 1000 / ops : null,
        p50Ms: percentile(lat, 50),
        p99Ms: percentile(lat, 99),
        latencySamples: lat.length,
        errors,
        firstError,
        writes,
        wallSeconds: (performance.now() - t0) / 1000,
        cutShort: end.t - t0 >= maxMs - 1,
      })
    }
    for (let i = 0; i < concurrency; i++) request()
  })
}

function mem() {
  const m = process.memoryUsage()
  return { rssMB: m.rss / 1048576, heapUsedMB: m.heapUsed / 1048576, externalMB: m.external / 1048576 }
}

const handlers = {
  // `prefix`: to share sessions and indexes with an earlier process (the
  // scale part); `options`: more store options (ours only); `feature`: one
  // of stores.js's FEATURES to turn on (ours only).
  async open({ prefix = `bench:${kind}:${process.pid}:`, options, feature } = {}) {
    opened = await openStore(kind, { url, prefix, options, feature })
    return { pid: process.pid, prefix }
  },

  // One measured run: { size, pool, concurrency, warmupMs, durationMs, oneKeyWrites }.
  async run({ size, pool, concurrency, warmupMs, durationMs, oneKeyWrites }) {
    const { sids, bytes } = await prefill(opened.store, size, pool)
    let redisStart = null
    const pendingRedis = []
    const result = await load(opened.store, sids, {
      concurrency,
      warmupMs,
      durationMs,
      maxMs: warmupMs + durationMs + 10_000,
      oneKeyWrites,
      onWarm: () => measuresRedis && pendingRedis.push(redisUsage(url).then((v) => (redisStart = v))),
    })
    await Promise.all(pendingRedis)
    const redisEnd = measuresRedis ? await redisUsage(url) : null
    const perOp = (field) => (redisStart && redisEnd ? (redisEnd[field] - redisStart[field]) / result.ops : null)
    result.redisCpuUsPerOp = perOp('cpuUs')
    result.redisSysUsPerOp = perOp('sysUs')
    // Less the two INFO calls of the end reading.
    result.redisCallsPerOp = redisStart && redisEnd ? (redisEnd.calls - redisStart.calls - 2) / result.ops : null
    result.sessionBytes = bytes
    // For a look at what Redis holds (features.js: encrypted or not).
    result.sampleSid = sids[0]
    return result
  },

  // RSS after warm-up and after totalOps operations (2 per request).
  async rss({ size, pool, concurrency, warmupOps, totalOps, maxMs }) {
    const { sids, bytes } = await prefill(opened.store, size, pool)
    let afterWarmup = null
    let peakRssMB = 0
    const sampler = setInterval(() => (peakRssMB = Math.max(peakRssMB, process.memoryUsage().rss / 1048576)), 100)
    const result = await load(opened.store, sids, {
      concurrency,
      warmupReqs: Math.ceil(warmupOps / 2),
      measureReqs: Math.ceil((totalOps - warmupOps) / 2),
      maxMs,
      onWarm: () => {
        afterWarmup = mem()
      },
    })
    clearInterval(sampler)
    const afterRun = mem()
    let afterGc = null
    if (global.gc) {
      global.gc()
      await new Promise((r) => setTimeout(r, 50))
      global.gc()
      afterGc = mem()
    }
    peakRssMB = Math.max(peakRssMB, afterRun.rssMB)
    return {
      sessionBytes: bytes,
      totalOps: warmupOps + result.ops,
      warmupOps,
      opsPerSec: result.opsPerSec,
      errors: result.errors,
      firstError: result.firstError,
      cutShort: result.cutShort,
      afterWarmup,
      afterRun,
      afterGc,
      peakRssMB,
    }
  },

  // Sessions written once, expiring while the run goes on (see churn.js).
  async churn(args) {
    return churn(opened.store, url, args)
  },

  // Sessions with owners (see owned.js); they stay when this process closes.
  async fill(args) {
    return fillOwned(opened.store, args)
  },

  // One timed call over many sessions (see owned.js).
  async time(args) {
    return timeCall(opened.store, args)
  },

  // Deletes what this process wrote (matters with a shared REDIS_URL), closes.
  async close() {
    if (!opened) return null
    const sids = [...written]
    for (let i = 0; i < sids.length; i += 200) {
      await Promise.all(sids.slice(i, i + 200).map((sid) => cbToPromise((cb) => opened.store.destroy(sid, cb)).catch(() => {})))
    }
    await opened.close()
    opened = null
    return null
  },
}

// Forked by run.js, it serves its commands. Run by hand (no IPC channel, e.g.
// under a profiler), it does one measured run of the store workload and
// prints the result:
//   node bench/store-worker.js ours redis://127.0.0.1:6379 [size B] [concurrency] [seconds]
async function standalone([size = 200, concurrency = 64, seconds = 5]) {
  await handlers.open()
  const result = await handlers.run({ size: Number(size), pool: 1000, concurrency: Number(concurrency), warmupMs: 500, durationMs: Number(seconds) * 1000 })
  console.log(JSON.stringify(result, null, 2))
  await handlers.close()
  process.exit(0)
}

function main() {
  if (process.send) {
    serve(handlers)
  } else {
    standalone(process.argv.slice(4)).catch((err) => {
      console.error(err)
      process.exit(1)
    })
  }
}

if (require.main === module) main()

module.exports = { main, load }
