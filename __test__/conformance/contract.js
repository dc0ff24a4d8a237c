'use strict'

// The store contract, written once and registered against one backend per
// test file (single.test.js, cluster.test.js, ...). The tests use only the
// public API, so the same test runs on Redis and on the embedded engine;
// what only Redis can show (keys, TTLs, slots) stays in the topology files.
const { randomUUID } = require('node:crypto')
const { AsyncLocalStorage } = require('node:async_hooks')
const { RedisSessionStore } = require('../..')
const { timingVerdict } = require('./util')

// Tests of one file that run at once. ava would start all of them
// together: a hundred stores connecting (TLS handshakes, cluster slot maps)
// and their calls queueing behind each other on 2 cores, which makes every
// call slow and the lifetimes of a fraction of a second meaningless. Most
// tests wait on lifetimes and expiries rather than work, so a dozen at once
// keeps the suite's run short without that load.
const CONCURRENT_TESTS = 12

// At most `n` functions running at once; the others wait their turn.
function gate(n) {
  let running = 0
  const waiting = []
  const release = () => {
    running--
    if (waiting.length) waiting.shift()()
  }
  return {
    async run(fn) {
      if (running >= n) await new Promise((resolve) => waiting.push(resolve))
      running++
      try {
        return await fn()
      } finally {
        release()
      }
    },
  }
}

const CONCERNS = ['./session', './expiry', './logout', './timeouts', './users', './admin', './errors', './express', './encryption', './merge', './policy', './devices', './events']

/**
 * Registers every contract test on `test` (ava) for the backend `factory`
 * (see helpers/backends.js) starts. `only`: concern names to register, for
 * a quicker run while working on one (CONFORMANCE_ONLY=users,admin too).
 */
function runContract(test, factory, { only = process.env.CONFORMANCE_ONLY?.split(',') } = {}) {
  const slots = gate(CONCURRENT_TESTS)
  // The stores a test made close when it ends: each runs a cleanup task
  // that reads shards every second, and a file's hundreds of stores left
  // open until its end loaded Redis enough to fail its heaviest tests.
  const made = new AsyncLocalStorage()
  const wrap = (fn) => (t) =>
    slots.run(async () => {
      const mine = []
      try {
        return await made.run(mine, () => fn(t))
      } finally {
        await Promise.allSettled(mine.map((s) => s.close()))
      }
    })
  const register = (title, fn) => test(title, wrap(fn))
  // Alone, before the other tests of the file (ava runs serial tests
  // first): for what only the backend's whole state shows.
  register.serial = (title, fn) => test.serial(title, wrap(fn))
  let backend
  const stores = []
  test.before(async () => {
    backend = await factory()
  })
  test.after.always(async () => {
    await Promise.allSettled(stores.map((s) => s.close()))
    if (backend) await backend.teardown()
  })
  // Timing checks skipped on a loaded machine (util.inTime) fail the run
  // when they are most of them, rather than letting it pass unchecked.
  test.after.always('timing checks were made', (t) => {
    const why = timingVerdict()
    if (why) t.fail(why)
    else t.pass()
  })

  const ctx = {
    /**
     * A store with a prefix of its own. `shared: true` puts it on the data
     * other shared stores see (on Redis every store does; on the engine a
     * named memory:// or the file), for tests with two app instances.
     */
    makeStore(options = {}, { shared = false } = {}) {
      const base = shared ? backend.shared() : backend.options()
      const store = new RedisSessionStore({ ...base, prefix: `conf:${randomUUID()}:`, ...options })
      store.conformanceShared = shared
      stores.push(store)
      made.getStore()?.push(store)
      return store
    },
    /** Another instance (another app server) on the same data and prefix as `store`. */
    sibling(store, options = {}) {
      if (!store.conformanceShared) throw new Error('sibling() needs a store made with { shared: true }')
      return ctx.makeStore({ prefix: store.prefix, ...options }, { shared: true })
    },
    /** Options for a store the test builds itself (constructor checks), without a prefix. */
    options: () => backend.options(),
    /**
     * Copies the stored bytes of `fromSid`'s key over `toSid`'s (keeping
     * its expiry), as a client under the store could: on Redis with a
     * plain client, on the engine through the dev build's hook. Needs a
     * store made with `{ shared: true }` (a private memory:// is reachable
     * by its store only).
     */
    async copyValue(store, fromSid, toSid) {
      if (!store.conformanceShared) throw new Error('copyValue() needs a store made with { shared: true }')
      await backend.copyValue(store.prefix + fromSid, store.prefix + toSid)
    },
    /**
     * What the embedded engines of this process hold, expired keys not
     * dropped yet included ({ keys, bytes }, the dev build's count); null on
     * Redis, which drops expired keys itself.
     */
    held: () => (backend.held ? backend.held() : null),
  }

  for (const concern of CONCERNS) {
    if (only && !only.includes(concern.slice(2))) continue
    require(concern)(register, ctx)
  }
}

module.exports = { runContract }
