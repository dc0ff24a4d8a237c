'use strict'

// Runs inside a store's process (store-worker.js): sessions written once
// each with a short cookie maxAge and never read again, as anonymous
// visitors, bots and health checks leave them. express-session's
// MemoryStore drops an expired session only when it is asked for that one
// (get, touch) or for all of them (all, length), so it keeps these; the
// embedded engine sweeps expired keys by itself.
const fs = require('node:fs')
const { performance } = require('node:perf_hooks')
const { makeSession } = require('./sessions')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function mem() {
  const m = process.memoryUsage()
  const mb = (v) => v / 1048576
  return { rssMB: mb(m.rss), heapUsedMB: mb(m.heapUsed), externalMB: mb(m.external) }
}

async function memAfterGc() {
  if (global.gc) {
    global.gc()
    await sleep(50)
    global.gc()
  }
  return mem()
}

// Sessions held, counted without changing anything: MemoryStore's length()
// parses every session and deletes the expired ones on the way, so read its
// table instead. Other stores: null (their length() already says it).
function held(store) {
  return store.sessions && typeof store.sessions === 'object' ? Object.keys(store.sessions).length : null
}

function timedLength(store) {
  const t0 = performance.now()
  return new Promise((resolve) =>
    store.length((err, n) => resolve({ count: err ? null : n, ms: performance.now() - t0, error: err ? String(err.message || err) : null })),
  )
}

// Writes `total` new sessions, `concurrency` at a time; the first `warmup`
// are not measured. Stops by itself after maxMs (cutShort).
function writeAll(store, { total, size, concurrency, warmup, minAgeMs, maxAgeMs, maxMs, onWarm }) {
  // A few bodies reused, each write with its own cookie: the heap then holds
  // what the store keeps, not the benchmark's templates.
  const bodies = Array.from({ length: 50 }, (_, k) => makeSession(size, k))
  return new Promise((resolve) => {
    let issued = 0
    let completed = 0
    let active = concurrency
    let errors = 0
    let firstError = null
    let stopped = false
    let warm = null
    let lastExpiresAt = 0
    const t0 = performance.now()
    const limit = setTimeout(() => (stopped = true), maxMs)
    const snap = () => ({ t: performance.now(), cpu: process.cpuUsage(), elu: performance.eventLoopUtilization(), completed })

    function next() {
      if (stopped || issued >= total) {
        if (--active === 0) finish()
        return
      }
      const i = issued++
      const age = minAgeMs + Math.random() * (maxAgeMs - minAgeMs)
      const expiresAt = Date.now() + age
      if (expiresAt > lastExpiresAt) lastExpiresAt = expiresAt
      const body = bodies[i % bodies.length]
      const sess = { ...body, cookie: { originalMaxAge: Math.round(age), expires: new Date(expiresAt), httpOnly: true, path: '/' } }
      store.set(`churn-${i}-`.padEnd(32, 'x'), sess, (err) => {
        if (err) {
          errors++
          if (!firstError) firstError = String((err && err.message) || err)
        }
        completed++
        if (completed === warmup) {
          warm = snap()
          onWarm()
        }
        next()
      })
    }
    function finish() {
      clearTimeout(limit)
      const end = snap()
      const from = warm || { t: t0, cpu: { user: 0, system: 0 }, elu: undefined, completed: 0 }
      const writes = end.completed - from.completed
      const cpu = end.cpu.user - from.cpu.user + (end.cpu.system - from.cpu.system)
      resolve({
        sessionBytes: JSON.stringify({ ...bodies[0], cookie: { originalMaxAge: maxAgeMs, expires: new Date(), httpOnly: true, path: '/' } }).length,
        written: completed,
        measuredWrites: writes,
        writesPerSec: writes / ((end.t - from.t) / 1000),
        cpuUsPerWrite: writes ? cpu / writes : null,
        elu: from.elu ? performance.eventLoopUtilization(end.elu, from.elu).utilization : null,
        seconds: (end.t - t0) / 1000,
        errors,
        firstError,
        cutShort: issued < total,
        lastExpiresAt,
      })
    }
    for (let i = 0; i < concurrency; i++) next()
  })
}

// Memory after warm-up, at the end of the writes, and once the last
// session has expired plus settleMs, with a forced GC (node --expose-gc).
async function churn(store, url, args) {
  const start = await memAfterGc()
  const t0 = performance.now()
  let afterWarmup = null
  let peakRssMB = 0
  const timeline = []
  const sample = () => {
    const m = mem()
    peakRssMB = Math.max(peakRssMB, m.rssMB)
    return m
  }
  const sampler = setInterval(() => {
    const m = sample()
    timeline.push({ s: (performance.now() - t0) / 1000, rssMB: m.rssMB, heapUsedMB: m.heapUsedMB })
  }, 1000)
  try {
    const w = await writeAll(store, { ...args, onWarm: () => (afterWarmup = sample()) })
    const atEnd = sample()
    const heldAtEnd = held(store)
    // Past the last expiry: the engine has had settleMs to sweep.
    await sleep(Math.max(0, w.lastExpiresAt - Date.now()) + args.settleMs)
    const afterExpiry = await memAfterGc()
    const heldAfterExpiry = held(store)
    const length = await timedLength(store)
    // MemoryStore's length() has now parsed and dropped what had expired.
    const afterLength = await memAfterGc()
    let fileMB = null
    if (url.startsWith('file://')) {
      try {
        fileMB = fs.statSync(new URL(url)).size / 1048576
      } catch {}
    }
    return { ...w, warmup: args.warmup, start, afterWarmup, atEnd, afterExpiry, afterLength, peakRssMB, heldAtEnd, heldAfterExpiry, length, fileMB, timeline }
  } finally {
    clearInterval(sampler)
  }
}

module.exports = { churn }
