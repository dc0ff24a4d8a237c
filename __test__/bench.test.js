'use strict'

// The benchmark is not a test of speed: this only checks that it runs end to
// end, briefly, and reports every part. No timing is asserted.
const test = require('ava')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { promisify } = require('node:util')
const execFileAsync = promisify(require('node:child_process').execFile)

test('npm run bench --quick runs every part and writes its report', async (t) => {
  // About a minute on a loaded two-core machine: every part, each store.
  t.timeout(240_000)
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-bench-'))
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }))
  const { stdout } = await execFileAsync(process.execPath, [path.join(__dirname, '../bench/run.js'), '--quick', '--out', out], {
    timeout: 230_000,
    maxBuffer: 16 << 20,
  })
  t.regex(stdout, /connect-redis/)
  const report = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'))
  t.truthy(report.store)
  t.truthy(report.http)
  t.truthy(report.cluster)
  t.truthy(report.memory)
  t.truthy(report.scale)
  // Every item of the issue has its targets listed, whatever the verdicts.
  t.regex(stdout, /### Targets/)
  t.deepEqual([...new Set(report.targets.map((target) => target.item))], [1, 2, 3, 4, 5])
  // Redis's side per op, for ours plain and with owners: CPU, system time, calls.
  for (const kind of ['ours', 'ours-plain', 'ours-owned', 'connect-redis']) {
    const m = report.store.configs[0][kind].median
    // A quick run can be too short for Redis's CPU clock to tick: a number, then.
    for (const field of ['redisCpuUsPerOp', 'redisSysUsPerOp']) t.true(m[field] >= 0, `${kind} ${field}: ${m[field]}`)
    t.true(m.redisCallsPerOp > 0, `${kind} redisCallsPerOp: ${m.redisCallsPerOp}`)
  }
  t.true(fs.readFileSync(path.join(out, 'chart.svg'), 'utf8').startsWith('<svg'))
})

test('bench/store-worker.js run by hand does one measured run of the workload and prints it', async (t) => {
  const { RedisServer } = require('./helpers/redis.js')
  const server = await RedisServer.start()
  t.teardown(() => server.dispose())
  const worker = path.join(__dirname, '../bench/store-worker.js')
  const { stdout } = await execFileAsync(process.execPath, [worker, 'ours', server.url, '200', '8', '0.5'], { timeout: 60_000 })
  const result = JSON.parse(stdout)
  t.true(result.requests > 0)
  t.is(result.errors, 0, String(result.firstError))
  t.true(result.sessionBytes > 100)
})

test('a measured window too short for any request to finish lasts until one does', async (t) => {
  const { load } = require('../bench/store-worker')
  // A scripted store whose every call answers after 30 ms: none can finish
  // within the 1 ms window.
  const later = (cb, v) => setTimeout(() => cb(null, v), 30)
  const store = {
    get: (sid, cb) => later(cb, { cookie: { originalMaxAge: 60_000 } }),
    touch: (sid, sess, cb) => later(cb),
    set: (sid, sess, cb) => later(cb),
  }
  const result = await load(store, ['a', 'b'], { concurrency: 2, warmupMs: 0, durationMs: 1, maxMs: 10_000 })
  t.true(result.requests > 0, `requests ${result.requests}`)
  t.true(Number.isFinite(result.cpuUsPerOp))
})

test('the targets give each round’s ratio beside the medians’', (t) => {
  const { targets } = require('../bench/targets')
  const run = (opsPerSec) => ({ opsPerSec, cpuUsPerOp: 1, p50Ms: 1 })
  const store = (...ops) => ({ runs: ops.map(run), median: run(ops[1]) })
  const others = { 'ours-plain': store(1, 1, 1), 'ours-owned': store(1, 1, 1), memory: store(1, 1, 1) }
  const config = { size: 300, concurrency: 64, sizeLabel: '300 B', ours: store(90, 120, 150), 'connect-redis': store(100, 100, 100), ...others }
  const [opsTarget] = targets({ store: { configs: [config] } })
  t.is(opsTarget.value, 1.2)
  t.is(opsTarget.figures, '120 vs 100 ops/s; rounds 0.90–1.50×')
})

test('bench/crossing.js times the calls into Rust around that run', async (t) => {
  const { RedisServer } = require('./helpers/redis.js')
  const server = await RedisServer.start()
  t.teardown(() => server.dispose())
  const crossing = path.join(__dirname, '../bench/crossing.js')
  const { stdout } = await execFileAsync(process.execPath, [crossing, 'ours', server.url, '200', '1', '0.5'], { timeout: 60_000 })
  for (const name of ['exec', 'nearRead']) {
    const [, calls, perCall] = new RegExp(`^${name}: (\\d+) calls, ([\\d.]+) µs per call`, 'm').exec(stdout) || []
    t.true(Number(calls) > 0, `${name} calls in:\n${stdout}`)
    t.true(Number(perCall) > 0, `${name} time per call`)
  }
})
