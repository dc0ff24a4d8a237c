'use strict'

// At most 200,000 operations wait for Redis at once (README, "When Redis is
// down"): beyond them calls fail at once with ERR_REDIS_UNAVAILABLE, so an
// outage under load cannot grow memory without bound. Against a real
// redis-server stalled with SIGSTOP, in a child process (memory of its own).
const test = require('ava')
const path = require('node:path')
const { promisify } = require('node:util')
const execFileAsync = promisify(require('node:child_process').execFile)
const { RedisServer } = require('./helpers/redis')

test('with 200,000 calls waiting for a stalled Redis, the extra calls fail at once with ERR_REDIS_UNAVAILABLE and hold no memory', async (t) => {
  const server = await RedisServer.start()
  t.teardown(async () => {
    try {
      server.signal('SIGCONT')
    } catch {
      // already gone
    }
    await server.dispose()
  })
  const { stdout } = await execFileAsync(process.execPath, ['--expose-gc', path.join(__dirname, 'fixtures/queue-cap.js')], {
    env: { ...process.env, REDIS_URL: server.url, REDIS_PID: String(server.pid), EXTRA: '100000' },
    timeout: 50_000,
    maxBuffer: 1 << 20,
  })
  const { waiting, extra, base, after, works } = JSON.parse(stdout)
  t.log(`with 200,000 calls waiting: RSS ${base.rss.toFixed(1)} MB, heap ${base.heap.toFixed(1)} MB; after 100,000 more: RSS ${after.rss.toFixed(1)} MB, heap ${after.heap.toFixed(1)} MB`)
  // Every one beyond the 200,000 (the 200,001st alone, then 10,000 a tick)
  // failed with the cap's error, and before any waiting call settled: no
  // waiting call can settle until Redis gets SIGCONT, after they all failed.
  t.deepEqual(extra.codes, { ERR_REDIS_UNAVAILABLE: 100_000 })
  t.is(extra.beforeAnyWaiting, 100_000)
  t.regex(extra.messages[0], /more than 200000 calls are waiting for redis/)
  // Exactly 200,000 were accepted: they waited, and Redis answered them.
  t.deepEqual(waiting, { settled: 200_000, codes: { resolved: 200_000 } })
  // Refused calls are not kept: queued, 100,000 more hold over 20 MB of JS
  // heap (their callbacks) besides their share in Rust. RSS is only logged:
  // the allocator keeps pages after a burst, so it moves by tens of MB
  // either way.
  t.true(after.heap - base.heap < 4, `the heap grew ${(after.heap - base.heap).toFixed(1)} MB`)
  t.true(works, 'the store works after SIGCONT')
})
