'use strict'

// Fault benchmark: redis-session-store vs connect-redis 9 (+ node-redis 6),
// side by side, under real faults injected in front of a fresh redis-server.
//
//   node bench/faults.js                      # every fault, both stores: about 1 minute
//   node bench/faults.js --faults stall,sigstop
//   node bench/faults.js --calls 20 --out bench/results/faults.json
//
// Faults (each on its own redis-server, and for proxy faults its own FaultProxy):
//   refused      proxy.refuse(): new connections refused, open ones cut; heal: proxy.heal()
//   stall        proxy.stall(): bytes held both ways, sockets stay open; heal: proxy.heal()
//   sigstop      SIGSTOP to redis-server; heal: SIGCONT
//   restart      redis-server killed (SIGKILL); heal: started again on the same port
//   unreachable  nothing listening when the store is created; heal: redis-server started
//
// Both stores use default options: ours is `new RedisSessionStore({ url, prefix })`
// (commandTimeout 2000 ms); connect-redis gets `createClient({ url })` with an
// 'error' listener, connected as its README shows (`await client.connect()`, or
// `client.connect().catch(...)` without awaiting when Redis is not up yet).
//
// For each fault, the two stores run at the same time, each in its own forked
// child process (so a crash or hang in one cannot touch the other), each against
// its own redis-server. A child is SIGKILLed if it overruns its time limit.
// Per fault × store it records: how long `get`s issued together during the
// fault take to settle (capped at 15 s), the errors they give, how long after
// the heal until a `get` succeeds (a new `get` every 20 ms, capped at 15 s),
// whether the session written before the fault is still there, and whether
// the child crashed or had an uncaught exception / unhandled rejection.
// Prints a markdown table and writes bench/results/faults.json.
//
// Bounded: each wait is capped (see the constants below), each child is
// SIGKILLed after CHILD_LIMIT_MS, no fault starts after BUDGET_MS, and a
// watchdog kills everything after WATCHDOG_MS. Every redis-server runs under
// the test helper's shell guard, so it dies with this process too.

const { fork } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { CONNECT_REDIS } = require('./peers')

const FAULTS = {
  refused: 'refused (proxy refuses + cuts connections)',
  stall: 'stalled connection (proxy holds all bytes)',
  sigstop: 'SIGSTOPped redis-server',
  restart: 'redis-server killed, restarted on same port',
  unreachable: 'redis unreachable when store is created',
}
const STORES = {
  ours: 'redis-session-store',
  'connect-redis': CONNECT_REDIS,
}

const SETTLE_CAP_MS = 15_000 // waiting for the gets issued during the fault
const RECOVERY_CAP_MS = 15_000 // waiting for a get to succeed after the heal
const POLL_MS = 20
const DRAIN_MS = 2_000 // after recovery: how the calls still pending from the fault end
const CLOSE_MS = 3_000
const SETUP_MS = 10_000
// Hard limit for one child, from fork to exit; then SIGKILL.
const CHILD_LIMIT_MS = SETUP_MS + SETTLE_CAP_MS + RECOVERY_CAP_MS + DRAIN_MS + CLOSE_MS + 8_000
const UNHANDLED_MARK = '@@faults-unhandled '
// No fault is started once the run has taken BUDGET_MS; one fault (both
// stores at once) takes at most about CHILD_LIMIT_MS plus Redis start/stop.
const BUDGET_MS = 100_000
const WATCHDOG_MS = BUDGET_MS + CHILD_LIMIT_MS + 30_000

// Epoch milliseconds with sub-ms resolution, comparable across processes.
const now = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function errInfo(err) {
  if (err == null) return { ctor: String(err), name: null, code: null, message: '' }
  if (typeof err !== 'object') return { ctor: typeof err, name: null, code: null, message: String(err).slice(0, 300) }
  return {
    ctor: (err.constructor && err.constructor.name) || 'Object',
    name: err.name == null ? null : String(err.name),
    code: err.code == null ? null : String(err.code),
    message: String(err.message ?? '').slice(0, 300),
  }
}

// ───────────────────────────── child: one store ─────────────────────────────

function child() {
  const kind = process.argv[3]
  const fault = process.argv[4]
  const url = process.argv[5]
  const calls = Number(process.argv[6])
  const prefix = `faults:${kind}:${process.pid}:`
  const SESSION = {
    cookie: { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000).toISOString(), httpOnly: true, path: '/' },
    user: 'ada',
    marker: `m-${process.pid}-${Date.now()}`,
  }

  // Observe, without changing Node's default behaviour (an uncaught exception
  // or an unhandled rejection still crashes the process). stderr writes to a
  // pipe are synchronous, so the line reaches the parent before the exit.
  process.on('uncaughtExceptionMonitor', (err, origin) => {
    try {
      process.stderr.write(`${UNHANDLED_MARK}${JSON.stringify({ origin, at: now(), ...errInfo(err) })}\n`)
    } catch {}
  })
  const warnings = []
  process.on('warning', (w) => warnings.push(errInfo(w)))
  process.on('disconnect', () => process.exit(1))

  const events = {} // events emitted by the store (and, for connect-redis, by the client)
  const firstErrors = []
  function watchEmitter(em, label) {
    const emit = em.emit
    em.emit = function (name, ...args) {
      const k = `${label}:${String(name)}`
      events[k] = (events[k] || 0) + 1
      return emit.call(this, name, ...args)
    }
  }

  let store
  let closeStore
  let connectOutcome = null

  async function open() {
    if (kind === 'ours') {
      const { RedisSessionStore } = require('..')
      store = new RedisSessionStore({ url, prefix })
      watchEmitter(store, 'store')
      closeStore = () => store.close()
      return
    }
    const { createClient } = require('redis')
    const { RedisStore } = await import('connect-redis')
    const client = createClient({ url })
    // node-redis emits through an inner object, so count with listeners.
    for (const name of ['connect', 'ready', 'end', 'reconnecting']) {
      client.on(name, () => (events[`client:${name}`] = (events[`client:${name}`] || 0) + 1))
    }
    client.on('error', (err) => {
      events['client:error'] = (events['client:error'] || 0) + 1
      if (firstErrors.length < 5) firstErrors.push({ at: now(), ...errInfo(err) })
    })
    closeStore = async () => {
      try {
        await Promise.race([client.close(), sleep(CLOSE_MS / 2).then(() => Promise.reject(new Error('close timed out')))])
      } catch {
        client.destroy()
      }
    }
    const started = now()
    const connecting = client.connect().then(
      () => (connectOutcome = { ok: true, ms: now() - started }),
      (err) => (connectOutcome = { ok: false, ms: now() - started, error: errInfo(err) }),
    )
    if (fault !== 'unreachable') await connecting
    store = new RedisStore({ client, prefix })
    watchEmitter(store, 'store')
  }

  // One get with a callback, as express-session calls it. Tracks every settle
  // (a callback called twice would show up as settles > 1).
  function get(sid) {
    const call = { issued: now(), settled: null, ok: null, error: null, value: undefined, settles: 0 }
    call.done = new Promise((resolve) => {
      try {
        store.get(sid, (err, value) => {
          call.settles++
          if (call.settles > 1) return
          call.settled = now()
          call.ok = !err
          if (err) call.error = errInfo(err)
          else call.value = value
          resolve(call)
        })
      } catch (err) {
        call.settles++
        call.settled = now()
        call.ok = false
        call.error = { ...errInfo(err), thrownSync: true }
        resolve(call)
      }
    })
    return call
  }

  function cbOp(fn) {
    return new Promise((resolve) => {
      const t0 = now()
      const timer = setTimeout(() => resolve({ ok: false, ms: now() - t0, error: { ctor: 'bench', name: null, code: null, message: 'did not settle within 5 s' } }), 5000)
      fn((err, value) => {
        clearTimeout(timer)
        resolve(err ? { ok: false, ms: now() - t0, error: errInfo(err) } : { ok: true, ms: now() - t0, value })
      })
    })
  }

  const summarizeCall = (c) => ({
    ms: c.settled == null ? null : c.settled - c.issued,
    ok: c.ok,
    error: c.error,
    found: c.ok ? c.value != null : undefined,
    settles: c.settles,
  })

  let burstCalls = []

  const handlers = {
    async setup() {
      await open()
      let wrote = null
      if (fault !== 'unreachable') {
        const set = await cbOp((cb) => store.set('keep', SESSION, cb))
        const back = await cbOp((cb) => store.get('keep', cb))
        wrote = { set, readBack: back.ok && back.value && back.value.marker === SESSION.marker }
        if (!set.ok || !wrote.readBack) throw new Error(`could not write the session before the fault: ${JSON.stringify(wrote)}`)
      }
      return { wrote }
    },

    // `calls` gets issued together (same tick) during the fault.
    async burst() {
      const t0 = now()
      burstCalls = Array.from({ length: calls }, () => get('keep'))
      await Promise.race([Promise.all(burstCalls.map((c) => c.done)), sleep(SETTLE_CAP_MS)])
      return { startedAt: t0, cap: SETTLE_CAP_MS, calls: burstCalls.map(summarizeCall) }
    },

    // After the parent healed the fault at `healedAt`: a new get every 20 ms
    // (not waiting for earlier ones, so one hung call cannot hide a recovery)
    // until one succeeds; then a write+read; then how the burst calls ended.
    async recover({ healedAt }) {
      const polls = []
      let first = null
      const end = now() + RECOVERY_CAP_MS
      await new Promise((resolve) => {
        let timer = null
        const finish = () => {
          clearTimeout(timer)
          resolve()
        }
        const tick = () => {
          if (first) return
          if (now() >= end) return finish()
          const c = get('keep')
          polls.push(c)
          c.done.then((r) => {
            if (r.ok && !first) {
              first = r
              finish()
            }
          })
          timer = setTimeout(tick, POLL_MS)
        }
        tick()
      })
      const failedBefore = polls.filter((c) => c.settled != null && !c.ok && (!first || c.settled <= first.settled))
      const pollErrors = {}
      for (const c of failedBefore) {
        const k = sig(c.error)
        pollErrors[k] = (pollErrors[k] || 0) + 1
      }
      let session = 'n/a'
      if (first) {
        if (fault === 'unreachable') session = 'n/a'
        else if (first.value == null) session = 'missing'
        else session = first.value.marker === SESSION.marker ? 'intact' : 'different'
      }
      // A fresh write and read after the recovery.
      let writeAfter = null
      if (first) {
        const set = await cbOp((cb) => store.set('after', { ...SESSION, marker: 'after' }, cb))
        const got = await cbOp((cb) => store.get('after', cb))
        writeAfter = { set, get: { ...got, value: undefined, matches: got.ok && got.value != null && got.value.marker === 'after' } }
      }
      // The burst calls: how they ended, given a little more time.
      await Promise.race([Promise.all(burstCalls.map((c) => c.done)), sleep(DRAIN_MS)])
      const laterBurst = burstCalls.map((c) => ({
        state: c.settled == null ? 'pending' : c.ok ? 'ok' : 'error',
        afterHeal: c.settled != null && c.settled >= healedAt,
        msAfterHeal: c.settled == null ? null : c.settled - healedAt,
      }))
      return {
        recovered: !!first,
        recoveryMs: first ? first.settled - healedAt : null,
        firstOkIssuedAfterHealMs: first ? first.issued - healedAt : null,
        pollsIssued: polls.length,
        pollsFailedBeforeRecovery: failedBefore.length,
        pollErrors,
        pollsPendingAtRecovery: polls.filter((c) => c.settled == null || (first && c.settled > first.settled)).length,
        session,
        writeAfter,
        burstAfterHeal: laterBurst,
      }
    },

    async finish() {
      const t0 = now()
      let closed
      try {
        await Promise.race([closeStore(), sleep(CLOSE_MS).then(() => Promise.reject(new Error(`close() did not settle within ${CLOSE_MS} ms`)))])
        closed = { ok: true, ms: now() - t0 }
      } catch (err) {
        closed = { ok: false, ms: now() - t0, error: errInfo(err) }
      }
      return { closed, events, clientErrors: firstErrors, connectOutcome, warnings, doubleCallbacks: burstCalls.filter((c) => c.settles > 1).length }
    },
  }

  process.on('message', async (msg) => {
    if (!msg || !msg.cmd) return
    let reply
    try {
      reply = { replyTo: msg.cmd, result: await handlers[msg.cmd](msg.args || {}) }
    } catch (err) {
      reply = { replyTo: msg.cmd, error: { ...errInfo(err), stack: String(err && err.stack).slice(0, 1000) } }
    }
    if (!process.connected) return
    if (msg.cmd === 'finish') process.send(reply, () => process.exit(0))
    else process.send(reply)
  })
  process.send({ replyTo: 'hello', result: { pid: process.pid } })
}

function sig(e) {
  if (!e) return 'none'
  const name = e.name && e.name !== e.ctor ? `${e.ctor}/${e.name}` : e.ctor
  return `${name} code=${e.code ?? '–'} "${e.message.length > 70 ? `${e.message.slice(0, 70)}…` : e.message}"`
}

// ───────────────────────────── parent: orchestration ─────────────────────────────

async function parent() {
  const args = parseArgs(process.argv.slice(2))
  const faults = args.faults ? args.faults.split(',') : Object.keys(FAULTS)
  for (const f of faults) if (!FAULTS[f]) throw new Error(`unknown fault ${f}; one of ${Object.keys(FAULTS).join(', ')}`)
  const calls = Number(args.calls || 20)
  const out = path.resolve(args.out || path.join(__dirname, 'results', 'faults.json'))

  const { RedisServer, freePort: anyFreePort } = require('../__test__/helpers/redis')
  const { FaultProxy } = require('../__test__/helpers/proxy')

  // Everything started here, so every exit path can clean it up.
  const live = { children: new Set(), servers: new Set(), proxies: new Set() }
  const killEverything = () => {
    for (const c of live.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    for (const s of live.servers) {
      for (const pid of [s.pid, s.proc && s.proc.pid]) {
        try {
          if (pid) process.kill(pid, 'SIGKILL')
        } catch {}
      }
      try {
        fs.rmSync(s.dir, { recursive: true, force: true })
      } catch {}
    }
  }
  process.on('exit', killEverything)
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(s, () => {
      killEverything()
      process.exit(130)
    })
  }

  // Ports handed out in this run are never handed out twice (two faults run
  // at once, and "unreachable" keeps a port unbound for a while).
  const usedPorts = new Set()
  async function freePort() {
    for (;;) {
      const port = await anyFreePort()
      if (!usedPorts.has(port)) {
        usedPorts.add(port)
        return port
      }
    }
  }

  async function runOne(fault, kind) {
    const result = { fault, store: kind, ok: false, phases: {}, crash: null, unhandled: [], stderrTail: '', notes: [] }
    const server = new RedisServer(await freePort())
    live.servers.add(server)
    let proxy = null
    let stopped = false
    let ch = null
    try {
      if (fault !== 'unreachable') await server.start()
      let url = server.url
      if (fault === 'refused' || fault === 'stall') {
        proxy = new FaultProxy(server.port, await freePort())
        await proxy.listen()
        live.proxies.add(proxy)
        url = proxy.url
      }

      ch = spawn(kind, fault, url, calls)
      live.children.add(ch.proc)
      await ch.call('hello', {}, SETUP_MS)
      result.phases.setup = await ch.call('setup', {}, SETUP_MS)

      // Inject the fault.
      const faultAt = now()
      if (fault === 'refused') await proxy.refuse()
      else if (fault === 'stall') proxy.stall()
      else if (fault === 'sigstop') {
        server.signal('SIGSTOP')
        stopped = true
      } else if (fault === 'restart') await server.stop()
      result.phases.faultInjectMs = now() - faultAt

      try {
        result.phases.burst = await ch.call('burst', {}, SETTLE_CAP_MS + 3000)
      } finally {
        // Heal, whatever happened to the child.
        const t = now()
        if (fault === 'refused' || fault === 'stall') await proxy.heal()
        else if (fault === 'sigstop') {
          server.signal('SIGCONT')
          stopped = false
        } else await server.start()
        result.phases.healMs = now() - t
        result.phases.healedAt = now()
      }
      result.phases.recover = await ch.call('recover', { healedAt: result.phases.healedAt }, RECOVERY_CAP_MS + DRAIN_MS + 15_000)
      result.phases.finish = await ch.call('finish', {}, CLOSE_MS + 3000)
      result.ok = true
    } catch (err) {
      result.error = errInfo(err)
    } finally {
      if (ch) {
        const exit = await ch.exitWithin(3000)
        result.exit = exit
        if (exit.signal === 'SIGKILL' && ch.killedByUs) result.notes.push(`child SIGKILLed after its ${CHILD_LIMIT_MS} ms limit or at cleanup`)
        if (!result.ok || (exit.code !== 0 && exit.code !== null)) {
          if (!ch.killedByUs) result.crash = exit
        }
        result.unhandled = ch.unhandled
        result.stderrTail = ch.stderr.slice(-1500)
        live.children.delete(ch.proc)
      }
      if (stopped) server.signal('SIGCONT')
      if (proxy) {
        await proxy.close().catch(() => {})
        live.proxies.delete(proxy)
      }
      await server.dispose().catch(() => {})
      live.servers.delete(server)
    }
    return result
  }

  const env = {
    node: process.version,
    redis: await redisVersion(),
    connectRedis: pkgVersion('connect-redis'),
    nodeRedis: pkgVersion('redis'),
    cpus: require('node:os').cpus().length,
    calls,
    settleCapMs: SETTLE_CAP_MS,
    recoveryCapMs: RECOVERY_CAP_MS,
    pollMs: POLL_MS,
  }
  const started = Date.now()
  const results = []
  const skipped = []
  // Last resort: whatever happens, nothing outlives WATCHDOG_MS.
  const watchdog = setTimeout(() => {
    process.stderr.write(`[faults] watchdog: still running after ${WATCHDOG_MS / 1000} s; killing everything\n`)
    killEverything()
    process.exit(2)
  }, WATCHDOG_MS)
  watchdog.unref()
  for (const fault of faults) {
    if (Date.now() - started > BUDGET_MS) {
      skipped.push(fault)
      process.stderr.write(`[faults] ${fault}: skipped, the run already took over ${BUDGET_MS / 1000} s\n`)
      continue
    }
    process.stderr.write(`[faults] ${fault} … `)
    const t = Date.now()
    const pair = await Promise.all(Object.keys(STORES).map((kind) => runOne(fault, kind)))
    results.push(...pair)
    process.stderr.write(`${((Date.now() - t) / 1000).toFixed(1)} s\n`)
  }
  clearTimeout(watchdog)
  const report = { date: new Date().toISOString(), totalMs: Date.now() - started, env, skipped, results: results.map(summarize), raw: results }
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`)
  process.stdout.write(markdown(report))
  process.stdout.write(`\nwrote ${path.relative(process.cwd(), out)} (${(report.totalMs / 1000).toFixed(1)} s)\n`)

  function spawn(kind, fault, url, calls) {
    const proc = fork(__filename, ['--child', kind, fault, url, String(calls)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    const h = { proc, stderr: '', unhandled: [], killedByUs: false }
    const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })))
    const limit = setTimeout(() => {
      h.killedByUs = true
      proc.kill('SIGKILL')
    }, CHILD_LIMIT_MS)
    exited.then(() => clearTimeout(limit))
    proc.on('error', () => {})
    proc.stdout.on('data', (d) => (h.stderr += `[stdout] ${d}`))
    let buf = ''
    proc.stderr.on('data', (d) => {
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        if (line.startsWith(UNHANDLED_MARK)) {
          try {
            h.unhandled.push(JSON.parse(line.slice(UNHANDLED_MARK.length)))
          } catch {}
        } else h.stderr += `${line}\n`
      }
    })
    const waiting = new Map()
    proc.on('message', (m) => {
      const w = m && waiting.get(m.replyTo)
      if (!w) return
      waiting.delete(m.replyTo)
      clearTimeout(w.timer)
      if (m.error) w.reject(Object.assign(new Error(`child ${m.replyTo} failed: ${m.error.message}`), { child: m.error }))
      else w.resolve(m.result)
    })
    exited.then(({ code, signal }) => {
      for (const [cmd, w] of waiting) {
        clearTimeout(w.timer)
        w.reject(new Error(`child exited (code ${code}, signal ${signal}) during "${cmd}"`))
      }
      waiting.clear()
    })
    h.call = (cmd, args, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(cmd)
          reject(new Error(`child did not answer "${cmd}" within ${timeoutMs} ms`))
        }, timeoutMs)
        waiting.set(cmd, { resolve, reject, timer })
        if (cmd !== 'hello') {
          if (!proc.connected) {
            waiting.delete(cmd)
            clearTimeout(timer)
            return reject(new Error(`child is gone before "${cmd}"`))
          }
          proc.send({ cmd, args })
        }
      })
    h.exitWithin = async (ms) => {
      const t = setTimeout(() => {
        if (proc.exitCode === null && proc.signalCode === null) {
          h.killedByUs = true
          proc.kill('SIGKILL')
        }
      }, ms)
      const e = await exited
      clearTimeout(t)
      return e
    }
    return h
  }
}

// ───────────────────────────── reporting ─────────────────────────────

function summarize(r) {
  const s = { fault: r.fault, store: r.store, completed: r.ok }
  if (r.error) s.benchError = r.error
  const b = r.phases.burst
  if (b) {
    const times = b.calls.map((c) => (c.ms == null ? Infinity : c.ms)).sort((x, y) => x - y)
    s.duringFault = {
      calls: b.calls.length,
      medianMs: median(times),
      maxMs: times[times.length - 1],
      minMs: times[0],
      pendingAtCap: b.calls.filter((c) => c.ms == null).length,
      succeeded: b.calls.filter((c) => c.ok).length,
      errors: countBy(b.calls.filter((c) => c.ok === false).map((c) => sig(c.error))),
      errorDetail: uniqueBy(b.calls.filter((c) => c.ok === false).map((c) => c.error), sig),
    }
  }
  if (r.phases.healMs != null) s.healMs = r.phases.healMs
  const rec = r.phases.recover
  if (rec) {
    s.afterHeal = {
      recovered: rec.recovered,
      recoveryMs: rec.recoveryMs,
      pollsFailedBeforeRecovery: rec.pollsFailedBeforeRecovery,
      pollErrors: rec.pollErrors,
      firstOkIssuedAfterHealMs: rec.firstOkIssuedAfterHealMs,
      pollsIssued: rec.pollsIssued,
      session: rec.session,
      writeAfterOk: rec.writeAfter ? rec.writeAfter.set.ok && rec.writeAfter.get.matches : null,
      burstCallsFinally: countBy(rec.burstAfterHeal.map((c) => (c.state === 'pending' ? 'still pending' : `${c.state}${c.afterHeal ? ' (after heal)' : ''}`))),
    }
  }
  const fin = r.phases.finish
  if (fin) {
    s.close = fin.closed
    s.events = fin.events
    s.clientErrorEvents = fin.events['client:error'] || 0
    s.firstClientErrors = fin.clientErrors
    s.connectOutcome = fin.connectOutcome
    s.warnings = fin.warnings
    s.doubleCallbacks = fin.doubleCallbacks
  }
  s.crash = r.crash
  s.unhandled = r.unhandled
  s.exit = r.exit
  s.notes = r.notes
  return s
}

function markdown(report) {
  const L = []
  const e = report.env
  L.push(`## Faults: redis-session-store vs connect-redis ${e.connectRedis} + node-redis ${e.nodeRedis}`)
  L.push('')
  L.push(`Node ${e.node}, Redis ${e.redis}, ${e.cpus} CPUs. Default options for both stores. ${e.calls} \`get\`s issued together during each fault (wait capped at ${e.settleCapMs / 1000} s); after the heal, a new \`get\` every ${e.pollMs} ms until one succeeds (capped at ${e.recoveryCapMs / 1000} s). Both stores run at the same time, each in its own process against its own redis-server.`)
  L.push('')
  L.push('| fault | store | get during fault: median / max | error the caller sees | hung calls | first success after heal | session after | crash / unhandled |')
  L.push('|---|---|---|---|---|---|---|---|')
  for (const s of report.results) {
    const d = s.duringFault
    const a = s.afterHeal
    const settle = d ? `${fmtMs(d.medianMs)} / ${fmtMs(d.maxMs)}` : '–'
    let errs = '–'
    if (d) {
      const parts = Object.entries(d.errors).map(([k, n]) => `${n}× ${k}`)
      if (d.succeeded) parts.push(`${d.succeeded}× succeeded`)
      errs = parts.join('; ') || 'none settled'
    }
    const hung = d ? (d.pendingAtCap ? `**${d.pendingAtCap}/${d.calls}** pending at ${report.env.settleCapMs / 1000} s${a ? `; later: ${fmtCounts(a.burstCallsFinally)}` : ''}` : 'none') : '–'
    let rec = '–'
    if (a) rec = a.recovered ? `${fmtMs(a.recoveryMs)}${a.pollsFailedBeforeRecovery ? ` (${a.pollsFailedBeforeRecovery} failed polls first)` : ''}` : `> ${report.env.recoveryCapMs / 1000} s (no success)`
    let sessAfter = '–'
    if (a) {
      sessAfter = a.session === 'missing' && s.fault === 'restart' ? 'lost (Redis restarted, no persistence)' : a.session
      if (a.writeAfterOk === false) sessAfter += '; new write failed'
    }
    const crash = []
    if (s.crash) crash.push(`**crashed** (exit ${s.crash.code ?? s.crash.signal})`)
    if (s.unhandled && s.unhandled.length) crash.push(`**${s.unhandled.length} unhandled**: ${sig(s.unhandled[0])} (${s.unhandled[0].origin})`)
    if (!crash.length) crash.push('no')
    if (s.clientErrorEvents) crash.push(`(${s.clientErrorEvents} client 'error' events, handled)`)
    if (!s.completed && s.benchError) crash.push(`bench: ${s.benchError.message.slice(0, 80)}`)
    L.push(`| ${FAULTS[s.fault]} | ${STORES[s.store]} | ${settle} | ${cell(errs)} | ${cell(hung)} | ${rec} | ${cell(sessAfter)} | ${cell(crash.join(' '))} |`)
  }
  if (report.skipped && report.skipped.length) L.push(`\nNot run (time budget): ${report.skipped.join(', ')}`)
  L.push('')
  L.push('Details:')
  for (const s of report.results) {
    const bits = []
    if (s.afterHeal && s.afterHeal.recovered) {
      const a = s.afterHeal
      bits.push(`after heal: ${a.pollsIssued} get(s) issued (one per ${report.env.pollMs} ms), ${a.pollsFailedBeforeRecovery} failed; the first to succeed was issued at +${fmtMs(a.firstOkIssuedAfterHealMs)} and settled at +${fmtMs(a.recoveryMs)}; a new set+get afterwards ${a.writeAfterOk ? 'ok' : 'FAILED'}`)
    }
    if (s.afterHeal && Object.keys(s.afterHeal.pollErrors).length) bits.push(`errors while recovering: ${fmtCounts(s.afterHeal.pollErrors)}`)
    if (s.connectOutcome) bits.push(`client.connect(): ${s.connectOutcome.ok ? 'resolved' : `rejected (${sig(s.connectOutcome.error)})`} after ${fmtMs(s.connectOutcome.ms)}`)
    if (s.events) {
      const ev = Object.entries(s.events).filter(([k]) => !k.endsWith(':newListener') && !k.endsWith(':removeListener'))
      if (ev.length) bits.push(`events: ${ev.map(([k, n]) => `${k}×${n}`).join(', ')}`)
      else bits.push('events: none')
    }
    if (s.firstClientErrors && s.firstClientErrors.length) bits.push(`first client 'error': ${sig(s.firstClientErrors[0])}`)
    if (s.healMs != null) bits.push(`heal took ${fmtMs(s.healMs)}${s.fault === 'restart' || s.fault === 'unreachable' ? ' (redis-server start until it answers PING)' : ''}; times after heal count from its end`)
    if (s.close) bits.push(`close(): ${s.close.ok ? `ok in ${fmtMs(s.close.ms)}` : `failed (${s.close.error.message})`}`)
    if (s.doubleCallbacks) bits.push(`**${s.doubleCallbacks} callbacks called twice**`)
    if (s.warnings && s.warnings.length) bits.push(`warnings: ${s.warnings.map((w) => w.name + ': ' + w.message.slice(0, 60)).join('; ')}`)
    for (const n of s.notes || []) bits.push(n)
    L.push(`- ${s.fault} / ${s.store}: ${bits.join('; ')}`)
  }
  return `${L.join('\n')}\n`
}

function cell(s) {
  return String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ')
}
function fmtMs(ms) {
  if (ms == null) return '–'
  if (ms === Infinity) return `> ${SETTLE_CAP_MS / 1000} s (still pending)`
  if (ms < 10) return `${ms.toFixed(1)} ms`
  if (ms < 1000) return `${Math.round(ms)} ms`
  return `${(ms / 1000).toFixed(2)} s`
}
function fmtCounts(o) {
  return Object.entries(o)
    .map(([k, n]) => `${n}× ${k}`)
    .join(', ')
}
function median(sorted) {
  if (!sorted.length) return null
  const m = sorted.length >> 1
  return sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2
}
function countBy(xs) {
  const o = {}
  for (const x of xs) o[x] = (o[x] || 0) + 1
  return o
}
function uniqueBy(xs, key) {
  const seen = new Map()
  for (const x of xs) if (!seen.has(key(x))) seen.set(key(x), x)
  return [...seen.values()]
}
function pkgVersion(name) {
  try {
    const dir = path.dirname(require.resolve(name))
    for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) {
      const p = path.join(d, 'package.json')
      if (fs.existsSync(p)) {
        const j = JSON.parse(fs.readFileSync(p, 'utf8'))
        if (j.name === name) return j.version
      }
    }
  } catch {}
  return 'unknown'
}
function redisVersion() {
  return new Promise((resolve) => {
    require('node:child_process').execFile('redis-server', ['--version'], { timeout: 5000 }, (err, stdout) => {
      const m = !err && /v=(\S+)/.exec(stdout)
      resolve(m ? m[1] : 'unknown')
    })
  })
}
function parseArgs(argv) {
  const a = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--help' || arg === '-h') {
      process.stdout.write('usage: node bench/faults.js [--faults refused,stall,sigstop,restart,unreachable] [--calls N] [--out FILE]\n')
      process.exit(0)
    }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`)
    const eq = arg.indexOf('=')
    const key = eq > 0 ? arg.slice(2, eq) : arg.slice(2)
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
    if (value === undefined) throw new Error(`${arg} needs a value`)
    a[key] = value
  }
  return a
}

if (process.argv[2] === '--child') child()
else
  parent().catch((err) => {
    process.stderr.write(`${(err && err.stack) || err}\n`)
    process.exitCode = 1
  })
