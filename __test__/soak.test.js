'use strict'

// Soak: SOAK_SECONDS (default 60) of simulated users logging in, reading,
// updating, touching and logging out through one store, in a child process
// (fixtures/soak-worker.js, run with --expose-gc so its RSS can be measured),
// pointed at a FaultProxy in front of a real redis-server, while this process
// injects faults every few seconds: proxy stalls, refused/cut connections,
// short flaps, stalls that end in a cut, and SIGSTOP/SIGCONT of redis-server.
// No restarts: redis-server runs without persistence, so a restart would lose
// acknowledged writes by design, and the ledger checks exactly that.
//
// Checked: every call settles once, within commandTimeout + SLACK, failing
// only with ERR_REDIS_TIMEOUT / ERR_REDIS_UNAVAILABLE; no acknowledged write is
// lost and no acknowledged destroy is undone (during the run, and at the end
// both through the store and directly in Redis); no stray keys under the
// prefix; every user recovers after the faults end; RSS after the warm-up and
// at the end differ by less than RSS_GROWTH_MB.
//
// Replay a run's fault schedule and user choices with SOAK_SEED=<seed>.
const test = require('ava')
const path = require('node:path')
const { fork } = require('node:child_process')
const { prng } = require('./helpers/prng')
const { randomUUID } = require('node:crypto')
const { RedisServer } = require('./helpers/redis')
const { FaultProxy } = require('./helpers/proxy')
const { RawRedis } = require('./helpers/raw')

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS) || 60
const SEED = Number(process.env.SOAK_SEED || Math.floor(Math.random() * 2 ** 31))
const USERS = 32
const TIMEOUT = 300 // the store's commandTimeout, ms
const SLACK = 1500 // bound on settling: TIMEOUT + SLACK (a guarantee, not a speed target)
const WARMUP_MS = Math.min(10_000, (SOAK_SECONDS * 1000) / 2)
const RECOVERY_MS = 3000 // clean traffic after the last fault, before stopping
const RSS_GROWTH_MB = 50
const FAULTS = ['stall', 'refuse', 'sigstop', 'flap', 'stall-then-cut']

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))


function shuffle(list, rand) {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[list[i], list[j]] = [list[j], list[i]]
  }
  return list
}

async function scanKeys(raw, pattern) {
  const keys = []
  let cursor = '0'
  do {
    const [next, batch] = await raw.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = String(next)
    for (const k of batch) keys.push(String(k))
  } while (cursor !== '0')
  return keys
}

function withoutCookie(text) {
  if (text == null) return null
  const { cookie: _c, ...rest } = JSON.parse(text)
  return JSON.stringify(rest)
}

test('soak: users under injected faults lose nothing, nothing hangs, RSS stays flat', async (t) => {
  t.timeout((SOAK_SECONDS + 60) * 1000, 'soak did not finish in SOAK_SECONDS + 60 s')
  t.log(`SOAK_SECONDS=${SOAK_SECONDS} SOAK_SEED=${SEED} users=${USERS} commandTimeout=${TIMEOUT} ms`)
  const rand = prng(SEED)
  const between = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1))

  // ---- rig, torn down even on failure ----
  const server = await RedisServer.start()
  let redisStopped = false
  let proxy = null
  let raw = null
  let worker = null
  let aborted = false
  t.teardown(async () => {
    aborted = true
    if (worker && worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL')
    if (redisStopped) {
      try {
        server.signal('SIGCONT')
      } catch {
        // gone
      }
    }
    if (raw) raw.close()
    if (proxy) await proxy.close().catch(() => {})
    await server.dispose()
  })
  proxy = await FaultProxy.start(server.port)
  raw = await RawRedis.connect(server.url)
  const prefix = `soak:${randomUUID()}:`

  // ---- worker ----
  let output = ''
  const keep = (d) => {
    output = (output + d).slice(-8000)
  }
  worker = fork(path.join(__dirname, 'fixtures/soak-worker.js'), [], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: {
      ...process.env,
      SOAK_URL: proxy.url,
      SOAK_PREFIX: prefix,
      SOAK_USERS: String(USERS),
      SOAK_TIMEOUT: String(TIMEOUT),
      SOAK_SLACK: String(SLACK),
      SOAK_WARMUP_MS: String(WARMUP_MS),
      SOAK_SEED: String(SEED + 1),
    },
  })
  worker.stdout.on('data', keep)
  worker.stderr.on('data', keep)
  const exited = new Promise((resolve) => worker.once('exit', (code, signal) => resolve({ code, signal })))
  const messages = {}
  const waiters = {}
  worker.on('message', (m) => {
    messages[m.type] = m
    if (waiters[m.type]) waiters[m.type](m)
  })
  // Resolves with the message, or rejects if the worker dies first or is late.
  // (The timer is cleared: a pending one would keep this process alive.)
  const expect = (type, ms) => {
    let timer
    return Promise.race([
      messages[type] ? Promise.resolve(messages[type]) : new Promise((resolve) => (waiters[type] = resolve)),
      exited.then(({ code, signal }) => {
        throw new Error(`soak worker exited (code ${code}, signal ${signal}) before '${type}'; output:\n${output}`)
      }),
      new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no '${type}' from the soak worker within ${ms} ms; output:\n${output}`)), ms)
      }),
    ]).finally(() => clearTimeout(timer))
  }
  // A worker that died must not turn a send into an unhandled 'error' event.
  const tell = (type) => worker.connected && worker.send({ type }, () => {})
  await expect('ready', 15_000)

  // ---- faults ----
  const started = Date.now()
  const end = started + SOAK_SECONDS * 1000
  const injected = Object.fromEntries(FAULTS.map((f) => [f, 0]))
  const schedule = []
  const holdUntil = async (ms) => {
    const until = Math.min(Date.now() + ms, end)
    while (!aborted && Date.now() < until) await sleep(Math.min(50, until - Date.now()))
  }
  async function inject(kind) {
    const ms = between(300, 2000)
    schedule.push(`${((Date.now() - started) / 1000).toFixed(1)}s ${kind} ${ms}ms`)
    injected[kind]++
    if (kind === 'stall') {
      proxy.stall()
      await holdUntil(ms)
      await proxy.heal()
    } else if (kind === 'refuse') {
      await proxy.refuse()
      await holdUntil(ms)
      await proxy.heal()
    } else if (kind === 'sigstop') {
      server.signal('SIGSTOP')
      redisStopped = true
      try {
        await holdUntil(ms)
      } finally {
        server.signal('SIGCONT')
        redisStopped = false
      }
    } else if (kind === 'flap') {
      // Connections cut every ~100 ms: reconnects race with new calls.
      const until = Date.now() + ms
      while (!aborted && Date.now() < Math.min(until, end)) {
        await proxy.refuse()
        await sleep(between(10, 60))
        await proxy.heal()
        await sleep(between(30, 150))
      }
    } else if (kind === 'stall-then-cut') {
      // A partition that ends in resets: held bytes are dropped.
      proxy.stall()
      await holdUntil(ms)
      await proxy.refuse()
      await holdUntil(between(50, 300))
      await proxy.heal()
    }
  }
  let order = []
  while (!aborted && Date.now() < end - 500) {
    await holdUntil(between(1000, 2500))
    if (aborted || Date.now() >= end - 300) break
    if (order.length === 0) order = shuffle([...FAULTS], rand)
    await inject(order.shift())
    if (worker.exitCode !== null || worker.signalCode !== null) break
  }
  await proxy.heal()
  tell('healed')
  await sleep(RECOVERY_MS)
  tell('stop')
  const report = await expect('report', 60_000)
  const { code, signal } = await exited
  t.is(code, 0, `soak worker exited with code ${code}, signal ${signal}; output:\n${output}`)

  // ---- what happened ----
  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0)
  const ok = sum(report.stats.ok)
  const failed = sum(report.stats.err)
  t.log(`faults: ${JSON.stringify(injected)}`)
  t.log(`schedule: ${schedule.join(', ')}`)
  t.log(`calls: ${ok} ok ${JSON.stringify(report.stats.ok)}, ${failed} failed ${JSON.stringify(report.stats.err)} ${JSON.stringify(report.stats.codes)}`)
  t.log(`max settle ${report.maxSettleMs.toFixed(0)} ms ${JSON.stringify(report.maxSettleOp)} (bound ${TIMEOUT + SLACK} ms)`)
  t.log(`ledger: ${report.expected.length} sessions may exist (${report.expected.filter((e) => e.state === 'live').length} live), ${report.graveyard.length} destroyed; ${report.stats.graveReads} reads of destroyed sids`)
  const { warm: w, endUnderLoad, endIdle, trace } = report.rss
  const mb = (m) => (m ? `${m.rss.toFixed(1)} (heap ${m.heapUsed.toFixed(1)}) at ${(m.at / 1000).toFixed(1)}s` : 'none')
  t.log(`RSS MB after GC: warm-up ${mb(w)}, end under load ${mb(endUnderLoad)}, end idle ${mb(endIdle)}`)
  t.log(`RSS MB every 2 s: ${trace.map(([, v]) => v).join(' ')}`)
  if (report.violationCount) t.log(`violations (${report.violationCount}):\n${report.violations.map((v) => JSON.stringify(v)).join('\n')}`)

  // ---- the guarantees ----
  t.is(report.violationCount, 0, `violations: ${JSON.stringify(report.violations.slice(0, 10))}`)
  t.deepEqual(report.hung, [], 'calls still pending at the end')
  t.true(report.maxSettleMs < TIMEOUT + SLACK, `a call took ${report.maxSettleMs.toFixed(0)} ms to settle`)
  // Not vacuous: the faults were felt, and work got done.
  t.true(sum(injected) > 0, 'no fault was injected')
  if (SOAK_SECONDS >= 20) t.true(FAULTS.every((f) => injected[f] > 0), `not every fault ran: ${JSON.stringify(injected)}`)
  t.true(failed > 0, 'no call failed: the faults were not felt')
  t.true(ok > failed, `more calls failed (${failed}) than succeeded (${ok})`)
  t.true(report.stats.ok.login > 0 && report.stats.ok.destroy > 0 && report.stats.ok.update > 0)
  // Everyone recovers once the faults are over.
  const stuck = report.userOkAfterHeal.map((n, u) => (n === 0 ? u : -1)).filter((u) => u >= 0)
  t.deepEqual(stuck, [], `users with no successful call in the ${RECOVERY_MS} ms after the last fault`)

  // Directly in Redis: each possible session holds a content the ledger allows,
  // and nothing else is under the prefix (no resurrected or stray sessions).
  const expected = new Map(report.expected.map((e) => [e.sid, e]))
  const gone = new Set(report.graveyard)
  const values = await Promise.all(report.expected.map((e) => raw.call('GET', prefix + e.sid)))
  const wrong = []
  report.expected.forEach((e, i) => {
    const got = withoutCookie(values[i])
    if (!e.allowed.includes(got)) {
      wrong.push({ sid: e.sid, state: e.state, got: got && JSON.parse(got).v, allowed: e.allowed.map((a) => a && JSON.parse(a).v) })
    }
  })
  t.deepEqual(wrong, [], 'sessions in Redis that differ from the last acknowledged write')
  const keys = await scanKeys(raw, `${prefix}*`)
  const resurrected = keys.filter((k) => gone.has(k.slice(prefix.length)))
  const stray = keys.filter((k) => !gone.has(k.slice(prefix.length)) && !expected.has(k.slice(prefix.length)))
  t.deepEqual(resurrected, [], 'destroyed sessions present in Redis')
  t.deepEqual(stray, [], 'keys under the prefix that no user wrote')
  const others = (await scanKeys(raw, '*')).filter((k) => !k.startsWith(prefix))
  t.log(`keys under the prefix: ${keys.length}; other keys in Redis: ${others.length} (e.g. ${others.slice(0, 2).join(', ')})`)

  // RSS: flat between the end of the warm-up and the end of the run.
  t.truthy(w, 'no RSS sample after the warm-up')
  const growth = w ? endUnderLoad.rss - w.rss : Infinity
  t.true(growth < RSS_GROWTH_MB, `RSS grew ${growth.toFixed(1)} MB from the warm-up to the end`)
})
