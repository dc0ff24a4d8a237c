'use strict'

// How soon expiries are told while many sessions end: two instances listen
// on one Redis, `rate` sessions a second reach their cookie's expiry for
// `seconds`, and each 'sessionEnded' is timed against its session's expiry.
// Prints the delays (p50, p99, max) and whether each end was told once.
//   node bench/events.js [rate=1000] [seconds=5] [redis URL]
const { RedisSessionStore } = require('..')
const { startRedis } = require('./redis')
const { percentile } = require('./stats')

async function main([rate = 1000, seconds = 5, url] = []) {
  rate = Number(rate)
  seconds = Number(seconds)
  const redis = url ? { url, stop: async () => {} } : await startRedis()
  const a = new RedisSessionStore({ url: redis.url, prefix: `ev:${process.pid}:` })
  const b = new RedisSessionStore({ url: redis.url, prefix: a.prefix })
  const expiryOf = new Map()
  const told = new Map()
  for (const store of [a, b]) {
    store.on('sessionEnded', (e) => {
      if (e.reason !== 'expired') return
      const list = told.get(e.handle) || []
      list.push(Date.now())
      told.set(e.handle, list)
    })
  }
  const n = rate * seconds
  const start = Date.now() + 3000
  // Written ahead, each expiring at its own time within the run.
  for (let i = 0; i < n; i += 1000) {
    await Promise.all(
      Array.from({ length: Math.min(1000, n - i) }, (_, k) => {
        const sid = `ev-${i + k}-${process.pid}`.padEnd(32, 'x')
        const at = start + Math.floor(((i + k) * 1000) / rate)
        expiryOf.set(a.handleOf(sid), at)
        return a.set(sid, { cookie: { originalMaxAge: at - Date.now(), expires: new Date(at).toISOString() }, n: i + k })
      }),
    )
  }
  const last = start + seconds * 1000
  while (Date.now() < last + 15_000 && told.size < n) await new Promise((r) => setTimeout(r, 200))
  const delays = [...told.entries()].map(([handle, times]) => times[0] - expiryOf.get(handle)).sort((x, y) => x - y)
  const twice = [...told.values()].filter((times) => times.length > 1).length
  console.log(
    JSON.stringify(
      {
        rate,
        seconds,
        sessions: n,
        told: told.size,
        toldTwice: twice,
        delayMs: { p50: percentile(delays, 50), p99: percentile(delays, 99), max: delays[delays.length - 1] },
      },
      null,
      2,
    ),
  )
  await Promise.all([a.close(), b.close()])
  await redis.stop()
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err)
  process.exit(1)
})
