'use strict'

// What telemetry costs on the hot path: set then get of a ~300 B session,
// 64 concurrent, on one real redis-server, each mode in a fresh process:
//   off      the package installed without @opentelemetry/api
//   api      the api installed, no SDK registered, no channel subscriber
//   channel  a diagnostics_channel subscriber to redis-session-store:call
//   sdk      the OpenTelemetry SDK: always-on sampler, spans to a no-op
//            exporter, metrics to a reader (collected once at the end)
// Prints Node CPU µs per operation (user + system, this process only) and
// its ratio to `off`, the median of ROUNDS runs per mode, run in turn.
//   node bench/telemetry.js [ops per run, default 200000]
const { execFileSync } = require('node:child_process')
const path = require('node:path')

const MODES = ['off', 'api', 'channel', 'sdk']
const ROUNDS = 3
const CONCURRENCY = 64

async function worker(mode, url, ops) {
  const dc = require('node:diagnostics_channel')
  const pkg = process.env.RSS_PACKAGE || path.join(__dirname, '..')
  if (mode === 'sdk') {
    const { trace, metrics } = require('@opentelemetry/api')
    const { BasicTracerProvider, SimpleSpanProcessor, AlwaysOnSampler } = require('@opentelemetry/sdk-trace-base')
    const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics')
    const noop = { export: (spans, done) => done({ code: 0 }), shutdown: async () => {} }
    trace.setGlobalTracerProvider(new BasicTracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [new SimpleSpanProcessor(noop)] }))
    class Reader extends MetricReader {
      async onForceFlush() {}
      async onShutdown() {}
    }
    globalThis.reader = new Reader()
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [globalThis.reader] }))
  }
  if (mode === 'channel') {
    const nothing = () => {}
    dc.tracingChannel('redis-session-store:call').subscribe({ start: nothing, end: nothing, asyncStart: nothing, asyncEnd: nothing, error: nothing })
  }
  const { RedisSessionStore } = require(pkg)
  const store = new RedisSessionStore({ url, prefix: `bench-${mode}:` })
  const sess = { cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' } }
  sess.data = 'x'.repeat(300 - JSON.stringify(sess).length - 10)
  const run = async (count) => {
    let left = count
    const one = async (w) => {
      const sid = `w${w}`
      while (left > 0) {
        left -= 2
        await store.set(sid, sess)
        await store.get(sid)
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => one(w)))
  }
  await run(Math.min(ops, 20000)) // warm-up
  const cpu = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  await run(ops)
  const used = process.cpuUsage(cpu)
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  if (globalThis.reader) await globalThis.reader.collect()
  await store.close()
  process.stdout.write(JSON.stringify({ cpuUs: (used.user + used.system) / ops, opsPerSec: ops / seconds }))
}

async function main() {
  const ops = Number(process.argv[2] || 200000)
  const { startRedis } = require('./redis')
  const { packageWithoutOtel } = require('../__test__/helpers/without-otel')
  const redis = await startRedis()
  const bare = packageWithoutOtel()
  const results = Object.fromEntries(MODES.map((m) => [m, []]))
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of MODES) {
        const env = { ...process.env }
        if (mode === 'off') env.RSS_PACKAGE = path.join(bare.dir, 'node_modules', 'redis-session-store')
        const out = execFileSync(process.execPath, [__filename, 'worker', mode, redis.url, String(ops)], { env, encoding: 'utf8' })
        results[mode].push(JSON.parse(out))
      }
    }
  } finally {
    bare.dispose()
    await redis.stop()
  }
  const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const base = median(results.off.map((r) => r.cpuUs))
  console.log(`set+get, ${CONCURRENCY} concurrent, ${ops} ops per run, median of ${ROUNDS}`)
  console.log('mode      CPU µs/op   ratio   ops/s')
  for (const mode of MODES) {
    const cpu = median(results[mode].map((r) => r.cpuUs))
    const rate = median(results[mode].map((r) => r.opsPerSec))
    console.log(`${mode.padEnd(9)} ${cpu.toFixed(2).padStart(9)}   ${(cpu / base).toFixed(3)}   ${Math.round(rate)}`)
  }
  console.log(`runs (CPU µs/op): ${MODES.map((m) => `${m} ${results[m].map((r) => r.cpuUs.toFixed(2)).join('/')}`).join(', ')}`)
}

if (process.argv[2] === 'worker') {
  worker(process.argv[3], process.argv[4], Number(process.argv[5])).catch((err) => {
    console.error(err)
    process.exit(1)
  })
} else {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
