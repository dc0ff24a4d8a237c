'use strict'

// destroy() and touch() are often called without a callback and never
// awaited (express-session's destroy, apps' logout code). When they fail for
// real, a Redis that is gone or a closed store, the process must not see an
// unhandled rejection (Node kills the process on one by default), while
// callers who do await still get the error.
const test = require('ava')
const path = require('node:path')
const { promisify } = require('node:util')
const execFileAsync = promisify(require('node:child_process').execFile)
const { RedisServer } = require('./helpers/redis')

const fixture = path.join(__dirname, 'fixtures/fire-and-forget.js')

for (const [mode, codes] of [
  ['stopped', ['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT']],
  ['closed', ['ERR_STORE_CLOSED']],
]) {
  test(`fire-and-forget destroy and touch on a ${mode === 'stopped' ? 'killed redis-server' : 'closed store'}: no unhandled rejection`, async (t) => {
    const server = await RedisServer.start()
    t.teardown(() => server.dispose())
    const { stdout } = await execFileAsync(process.execPath, [fixture, mode], {
      env: { ...process.env, REDIS_URL: server.url, REDIS_PID: String(server.pid) },
      timeout: 20_000,
    })
    const result = JSON.parse(stdout)
    t.deepEqual(result.unhandled, [])
    // They did fail (the test is not vacuous): 20 destroys and 20 touches,
    // then the two with bad input.
    t.is(result.codes.length, 42)
    for (const code of result.codes.slice(0, 40)) t.true(codes.includes(code), code)
    t.deepEqual(result.codes.slice(40), ['ERR_INVALID_ARG', 'ERR_INVALID_ARG'])
  })
}
