'use strict'

// Admin calls among many unrelated keys: length/ids/all/clear of this store
// and of connect-redis 9, each with its own sessions in one Redis that also
// holds a large number of keys belonging to neither (the usual case: the
// session store shares its Redis with caches, queues, ...). connect-redis
// answers these by SCANning the whole keyspace; this store should cost in
// proportion to its own sessions. Also times this store's per-user calls
// (listUserSessions, destroyUserSessions) and stats().
//
// Two roles in one file: run.js requires adminBench(), which forks this file
// once per store (`node bench/admin.js <kind> <url>`); the child holds one
// store and serves timed calls over IPC (see ipc.js). Each call is timed in
// the child, from issuing it to its callback, with Redis's command count,
// SCAN count and CPU read from INFO before and after (outside the timing).
const { performance } = require('node:perf_hooks')
const { spawnChild, serve } = require('./ipc')
const { info } = require('./redis')
const { makeSession } = require('./sessions')
const { median, ratio } = require('./stats')

const KINDS = ['ours', 'connect-redis']
const PREFIX = { ours: 'ours:', 'connect-redis': 'cr:' }
const SESSION_BYTES = 200
const log = (...args) => console.error('[bench]', ...args)

// ---------------------------------------------------------------- parent ---

// c: { adminKeys, adminSessions, adminPerUser, adminRounds, adminOursRounds, quick }
async function adminBench(c, url, problems) {
  const n = c.adminSessions
  const perUser = c.adminPerUser
  const users = Math.ceil(n / perUser)
  const fillPrefix = `other:${process.pid}`
  const callTimeout = 600_000 // connect-redis scans a large keyspace per call
  const workers = {}
  const out = {
    unrelatedKeys: c.adminKeys,
    sessionsPerStore: n,
    sessionsPerUser: perUser,
    users,
    sessionBytes: null,
    prefixes: PREFIX,
    rounds: { 'connect-redis': c.adminRounds, ours: c.adminOursRounds },
    fill: null,
    write: {},
    dbsize: null,
    calls: {},
    ratios: {},
    target: { ratio: 50, calls: ['length', 'all'] },
    meetsTarget: {},
  }
  const problem = (msg) => {
    problems.push(`admin: ${msg}`)
    log(`admin: ${msg}`)
  }
  let filled = false
  try {
    const opened = await Promise.all(KINDS.map((k) => openWorker(k, url)))
    KINDS.forEach((k, i) => (workers[k] = opened[i]))

    log(`admin: filling ${c.adminKeys.toLocaleString('en-US')} unrelated keys (${fillPrefix}:N)`)
    filled = true
    out.fill = await workers['connect-redis'].call('fill', { count: c.adminKeys, prefix: fillPrefix }, callTimeout)
    log(`admin: filled with ${out.fill.method} in ${(out.fill.ms / 1000).toFixed(1)} s`)

    for (const kind of KINDS) {
      const w = await workers[kind].call('write', { n, perUser }, callTimeout)
      out.write[kind] = w
      out.sessionBytes = w.sessionBytes
      log(`admin: wrote ${n.toLocaleString('en-US')} sessions through ${kind} in ${(w.ms / 1000).toFixed(1)} s`)
    }
    out.dbsize = (await workers['connect-redis'].call('dbsize', {}, 30_000)).dbsize
    log(`admin: ${out.dbsize.toLocaleString('en-US')} keys in the database`)

    // Timed calls. For each call the two stores alternate, round by round;
    // this store gets more rounds (its calls take milliseconds), and each
    // figure is the median of its rounds.
    const record = (kind, name, r) => {
      const slot = (out.calls[name] ||= {})
      const s = (slot[kind] ||= { runs: [] })
      s.runs.push(r)
      if (r.error && !s.runs.some((p) => p !== r && p.error)) problem(`${kind} ${name}: ${r.error}`)
      log(`admin: ${name.padEnd(22)} ${kind.padEnd(13)} ${r.error ? 'error' : `${r.ms.toFixed(2).padStart(9)} ms  ${String(r.commands).padStart(6)} Redis commands  ${String(r.scans).padStart(6)} SCANs  result ${r.summary}`}`)
    }
    const timeBoth = async (name, op, args, expect, once = false) => {
      const roundsOf = (kind) => (once ? 1 : kind === 'ours' ? c.adminOursRounds : c.adminRounds)
      const rounds = Math.max(...KINDS.map(roundsOf))
      for (let i = 0; i < rounds; i++) {
        for (const kind of KINDS) {
          if (i >= roundsOf(kind)) continue
          const r = await workers[kind].call('time', { op, args }, callTimeout)
          if (!r.error && expect !== undefined && r.count !== expect) problem(`${kind} ${name} gave ${r.count}, expected ${expect}`)
          record(kind, name, r)
        }
      }
    }
    const timeOurs = async (name, op, args, rounds, check) => {
      for (let i = 0; i < rounds; i++) {
        const r = await workers.ours.call('time', { op, args }, callTimeout)
        if (!r.error && check) {
          const msg = check(r)
          if (msg) problem(`ours ${name}: ${msg}`)
        }
        record('ours', name, r)
      }
    }

    await timeBoth('length', 'length', {}, n)
    await timeBoth('ids', 'ids', {}, n)
    await timeBoth('all', 'all', {}, n)
    // A user in the middle of the keyspace, with perUser sessions.
    const listed = `u${Math.floor(users / 2)}`
    await timeOurs('listUserSessions', 'listUserSessions', { userId: listed }, c.adminOursRounds, (r) =>
      r.count !== perUser ? `${r.count} sessions for ${listed}, expected ${perUser}` : r.wrongIds ? `${r.wrongIds} ids not ${listed}'s` : null,
    )
    await timeOurs('stats', 'stats', { activeWithin: 3600 }, c.adminOursRounds, (r) =>
      r.value.sessions !== n || r.value.users !== users || r.value.active !== n
        ? `stats() = ${JSON.stringify(r.value)}, expected sessions ${n}, users ${users}, active ${n}`
        : null,
    )
    // Destructive calls last, once each.
    const revoked = `u${Math.floor(users / 2) + 1 < users ? Math.floor(users / 2) + 1 : 0}`
    await timeOurs('destroyUserSessions', 'destroyUserSessions', { userId: revoked }, 1, (r) =>
      r.count !== perUser ? `destroyed ${r.count} sessions of ${revoked}, expected ${perUser}` : null,
    )
    await timeOurs('length after destroyUserSessions', 'length', {}, 1, (r) => (r.count !== n - perUser ? `length() = ${r.count}, expected ${n - perUser}` : null))
    await timeBoth('clear', 'clear', {}, undefined, true)
    await timeOurs('length after clear', 'length', {}, 1, (r) => (r.count !== 0 ? `length() = ${r.count} after clear()` : null))
  } finally {
    if (filled && workers['connect-redis']) {
      try {
        const r = await workers['connect-redis'].call('unfill', { count: c.adminKeys, prefix: fillPrefix }, callTimeout)
        log(`admin: deleted the unrelated keys in ${(r.ms / 1000).toFixed(1)} s`)
      } catch (err) {
        problem(`deleting the unrelated keys: ${err.message}`)
      }
    }
    await Promise.all(Object.values(workers).map((w) => w.stop()))
  }

  const FIELDS = ['ms', 'commands', 'scans', 'redisCpuMs']
  for (const slot of Object.values(out.calls)) {
    for (const s of Object.values(slot)) {
      s.median = {}
      for (const f of FIELDS) s.median[f] = median(s.runs.filter((r) => !r.error).map((r) => r[f]))
    }
  }
  for (const name of ['length', 'ids', 'all', 'clear']) {
    const slot = out.calls[name]
    if (!slot || !slot.ours || !slot['connect-redis']) continue
    // How many times faster ours is: connect-redis's time ÷ ours.
    out.ratios[name] = ratio(slot['connect-redis'].median.ms, slot.ours.median.ms)
  }
  for (const name of out.target.calls) {
    out.meetsTarget[name] = typeof out.ratios[name] === 'number' ? out.ratios[name] >= out.target.ratio : null
  }
  return out
}

async function openWorker(kind, url) {
  const w = spawnChild('admin.js', [kind, url])
  await w.call('open', {}, 15_000)
  return w
}

// ----------------------------------------------------------------- child ---

function child() {
  const { openStore } = require('./stores')
  const kind = process.argv[2]
  const url = process.argv[3]
  let opened = null
  let raw = null

  const cb = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))))
  const sid = (i) => `admin-${String(i).padStart(7, '0')}-`.padEnd(32, 'x')

  // A plain node-redis client, for filling and counting (not a store).
  async function client() {
    if (!raw) {
      const { createClient } = require('redis')
      raw = createClient({ url })
      raw.on('error', (err) => console.error(`[bench] admin node-redis: ${err.message}`))
      await raw.connect()
    }
    return raw
  }

  // Redis's command count, SCAN count and CPU, from one INFO all.
  async function redisCounters() {
    const i = await info(url, 'all')
    if (!i) return null
    const scan = /calls=(\d+)/.exec(i.cmdstat_scan || '')
    return {
      commands: Number(i.total_commands_processed),
      scans: scan ? Number(scan[1]) : 0,
      cpuMs: (Number(i.used_cpu_sys) + Number(i.used_cpu_user)) * 1000,
    }
  }

  // Each op resolves to { count, summary, value?, wrongIds? }.
  const OPS = {
    async length(store) {
      const count = await cb((done) => store.length(done))
      return { count, summary: String(count) }
    },
    async ids(store) {
      const ids = await cb((done) => store.ids(done))
      return { count: ids.length, summary: `${ids.length} ids` }
    },
    async all(store) {
      const all = await cb((done) => store.all(done))
      const list = Array.isArray(all) ? all : Object.values(all || {})
      return { count: list.length, summary: `${list.length} sessions` }
    },
    async clear(store) {
      await cb((done) => store.clear(done))
      return { count: null, summary: 'done' }
    },
    async listUserSessions(store, { userId }) {
      const list = await store.listUserSessions(userId)
      const u = Number(userId.slice(1))
      const mine = new Set(Array.from({ length: perUserSeen }, (_, k) => sid(u * perUserSeen + k)))
      const wrongIds = list.filter((s) => !mine.has(s.id)).length
      return { count: list.length, wrongIds, summary: `${list.length} sessions` }
    },
    async destroyUserSessions(store, { userId }) {
      const count = await store.destroyUserSessions(userId)
      return { count, summary: `${count} destroyed` }
    },
    async stats(store, args) {
      const value = await store.stats(args)
      return { count: null, value, summary: JSON.stringify(value) }
    },
  }
  let perUserSeen = 1

  serve({
    async open() {
      opened = await openStore(kind, { url, prefix: PREFIX[kind] })
      return { pid: process.pid }
    },

    // count unrelated keys named `${prefix}:0` … : DEBUG POPULATE when the
    // server allows it, else pipelined MSETs of 1000 keys.
    async fill({ count, prefix }) {
      const r = await client()
      const t0 = performance.now()
      let method = 'DEBUG POPULATE'
      try {
        await r.sendCommand(['DEBUG', 'POPULATE', String(count), prefix, '16'])
      } catch {
        method = 'pipelined MSET'
        const CHUNK = 1000
        const WINDOW = 32
        let inFlight = []
        for (let start = 0; start < count; start += CHUNK) {
          const args = ['MSET']
          for (let i = start; i < Math.min(count, start + CHUNK); i++) args.push(`${prefix}:${i}`, `value:${i}`)
          inFlight.push(r.sendCommand(args))
          if (inFlight.length >= WINDOW) {
            await Promise.all(inFlight)
            inFlight = []
          }
        }
        await Promise.all(inFlight)
      }
      return { method, ms: performance.now() - t0, dbsize: await r.dbSize() }
    },

    async unfill({ count, prefix }) {
      const r = await client()
      const t0 = performance.now()
      const CHUNK = 1000
      let inFlight = []
      for (let start = 0; start < count; start += CHUNK) {
        const args = ['UNLINK']
        for (let i = start; i < Math.min(count, start + CHUNK); i++) args.push(`${prefix}:${i}`)
        inFlight.push(r.sendCommand(args))
        if (inFlight.length >= 32) {
          await Promise.all(inFlight)
          inFlight = []
        }
      }
      await Promise.all(inFlight)
      return { ms: performance.now() - t0 }
    },

    async dbsize() {
      return { dbsize: await (await client()).dbSize() }
    },

    // n sessions of about 200 B, owned perUser at a time by users u0, u1, …
    // (as sess.userId, which this store indexes by default; connect-redis
    // stores the same JSON and ignores it).
    async write({ n, perUser }) {
      perUserSeen = perUser
      const templates = Array.from({ length: 50 }, (_, k) => makeSession(SESSION_BYTES, k))
      const sess = (i) => ({ ...templates[i % templates.length], userId: `u${Math.floor(i / perUser)}` })
      const t0 = performance.now()
      for (let i = 0; i < n; i += 200) {
        const batch = []
        for (let k = i; k < Math.min(n, i + 200); k++) batch.push(cb((done) => opened.store.set(sid(k), sess(k), done)))
        await Promise.all(batch)
      }
      return { ms: performance.now() - t0, sessionBytes: JSON.stringify(sess(0)).length }
    },

    // One timed call; errors are results, not failures of the benchmark.
    async time({ op, args }) {
      const fn = OPS[op]
      if (!fn) throw new Error(`unknown op ${op}`)
      if (!opened.store[op]) return { error: `${kind} has no ${op}()` }
      const before = await redisCounters()
      const t0 = performance.now()
      let r
      try {
        r = await fn(opened.store, args)
      } catch (err) {
        return { error: `${(err && err.code) || ''} ${(err && err.message) || err}`.trim() }
      }
      const ms = performance.now() - t0
      const after = await redisCounters()
      // The first INFO itself counts as one command.
      const d = (f) => (before && after ? after[f] - before[f] : null)
      return { ms, ...r, commands: before && after ? d('commands') - 1 : null, scans: d('scans'), redisCpuMs: d('cpuMs') }
    },

    async close() {
      if (raw) await raw.close().catch(() => {})
      raw = null
      if (opened) await opened.close()
      opened = null
      return null
    },
  })
}

if (require.main === module) child()

module.exports = { adminBench }
