'use strict'

// A call in flight keeps nothing of the caller's session object alive: the
// object can be collected as soon as the caller drops it, even while Redis
// is slow to answer. Held until the reply, every request's session outlived
// V8's young generation under load (copied twice, then left for a full GC).
// The server is stalled with SIGSTOP so the calls stay in flight.
const test = require('ava')
const v8 = require('node:v8')
const vm = require('node:vm')
const { RedisServer } = require('./helpers/redis')
const { RedisSessionStore } = require('..')
const { session, sleep } = require('./helpers/suite')

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

// Registers a fresh session under `name`, hands it to `call`, and drops it.
function issue(registry, name, call) {
  const sess = session(60_000, { user: { id: 'ada' }, name })
  registry.register(sess, name)
  return call(sess)
}

// The callback is made where it cannot see `sess`: a closure that could
// would keep it alive itself.
function viaCallback(store, method, sid, sess) {
  let settle
  const settled = new Promise((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve())
  })
  store[method](sid, sess, settle)
  return settled
}

for (const style of ['promise', 'callback']) {
  test(`set and touch in flight hold no reference to the session object (${style})`, async (t) => {
    const server = await RedisServer.start()
    t.teardown(() => server.dispose())
    const store = new RedisSessionStore({ url: server.url, commandTimeout: 20_000 })
    t.teardown(() => store.close())
    await store.set('a', session())
    await store.get('a')
    const collected = new Set()
    const registry = new FinalizationRegistry((name) => collected.add(name))
    const settled = []
    const call = (method, sid, sess) => (style === 'promise' ? store[method](sid, sess) : viaCallback(store, method, sid, sess))
    server.signal('SIGSTOP')
    try {
      settled.push(issue(registry, 'set', (sess) => call('set', 'b', sess)))
      settled.push(issue(registry, 'touch', (sess) => call('touch', 'a', sess)))
      // Both are written to the stalled server and wait for its replies.
      await sleep(50)
      for (let i = 0; i < 100 && collected.size < 2; i++) {
        gc()
        await sleep(20)
      }
      t.deepEqual([...collected].sort(), ['set', 'touch'])
    } finally {
      server.signal('SIGCONT')
    }
    await Promise.all(settled)
    t.truthy(await store.get('b'))
  })
}
