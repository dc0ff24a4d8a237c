'use strict'

// The store contract as express-session uses it, against a real redis-server.
const test = require('ava')
const { randomUUID } = require('node:crypto')
const { storeSuite, session, sleep } = require('./helpers/suite')

const { redis, raw, makeStore } = storeSuite(test, 't')

test('set then get returns the same session; missing gives null', async (t) => {
  const store = makeStore()
  const sess = session(60_000, { user: 'ada', n: 1 })
  await store.set('a', sess)
  t.deepEqual(await store.get('a'), sess)
  t.is(await store.get('nope'), null)
})

// Calls `invoke(cb)` and resolves to the arguments the callback got,
// checking that the call returned undefined before the callback ran (never
// synchronously) and that the callback ran exactly once: a second call would
// come with the same reply or later, so it is counted again after the store
// has answered a later call and the loop has turned.
async function viaCallback(t, store, what, invoke) {
  let returned = false
  let calls = 0
  let args
  let called
  const first = new Promise((resolve) => (called = resolve))
  const ret = invoke((...a) => {
    calls++
    if (calls > 1) return
    t.true(returned, `${what}: the callback ran before the call returned`)
    args = a
    called()
  })
  returned = true
  t.is(ret, undefined, `${what}: a call with a callback returns undefined`)
  let timer
  const late = new Promise((resolve) => (timer = setTimeout(resolve, 5000, 'late')))
  t.not(await Promise.race([first, late]), 'late', `${what}: the callback never ran`)
  clearTimeout(timer)
  if (store) await store.length()
  await new Promise((resolve) => setImmediate(resolve))
  await sleep(10)
  t.is(calls, 1, `${what}: the callback ran ${calls} times`)
  return args
}

test('callbacks are called once, asynchronously, on success and on error, for every method', async (t) => {
  const store = makeStore()
  const untouchable = makeStore({ disableTouch: true })
  const cb = (what, invoke, s = store) => viaCallback(t, s, what, invoke)

  t.deepEqual(await cb('set', (done) => store.set('cb', session(60_000, { userId: 'cb-user' }), done)), [null])
  const [err, sess] = await cb('get', (done) => store.get('cb', done))
  t.is(err, null)
  t.is(sess.userId, 'cb-user')
  t.deepEqual(await cb('get of a missing session', (done) => store.get('nope', done)), [null, null])
  t.deepEqual(await cb('touch', (done) => store.touch('cb', session(60_000, { userId: 'cb-user' }), done)), [null])
  t.deepEqual(await cb('touch with disableTouch', (done) => untouchable.touch('cb', session(), done), untouchable), [null])
  const [, all] = await cb('all', (done) => store.all(done))
  t.deepEqual(all.map((s) => s.id), ['cb'])
  t.deepEqual(await cb('ids', (done) => store.ids(done)), [null, ['cb']])
  t.deepEqual(await cb('length', (done) => store.length(done)), [null, 1])
  t.deepEqual(await cb('stats', (done) => store.stats(done)), [null, { sessions: 1, users: 1, active: 1 }])
  const [, listed] = await cb('listUserSessions', (done) => store.listUserSessions('cb-user', done))
  t.deepEqual(listed.map((s) => s.id), ['cb'])
  t.deepEqual(await cb('reindex', (done) => store.reindex(done)), [null, { indexed: 1, skipped: 0 }])
  t.deepEqual(await cb('destroyUserSessions', (done) => store.destroyUserSessions('cb-user', { except: 'cb' }, done)), [null, 0])
  t.deepEqual(await cb('destroy', (done) => store.destroy('cb', done)), [null])
  t.deepEqual(await cb('clear', (done) => store.clear(done)), [null, undefined])

  // Bad input fails on the same terms: through the callback, later.
  const invalid = {
    get: (done) => store.get(42, done),
    set: (done) => store.set('', session(), done),
    'set of a non-object': (done) => store.set('x', 'not a session', done),
    touch: (done) => store.touch('bad\nsid', session(), done),
    destroy: (done) => store.destroy(undefined, done),
    'stats with a bad activeWithin': (done) => store.stats({ activeWithin: -1 }, done),
    'listUserSessions without a user': (done) => store.listUserSessions('', done),
    'destroyUserSessions with a bad except': (done) => store.destroyUserSessions('u', { except: [''] }, done),
  }
  for (const [what, invoke] of Object.entries(invalid)) {
    const [e] = await cb(`${what} with bad input`, invoke)
    t.is(e && e.code, 'ERR_INVALID_ARG', what)
  }

  const closing = makeStore()
  t.deepEqual(await cb('close', (done) => closing.close(done), null), [null])
  const [closed] = await cb('get on a closed store', (done) => closing.get('x', done), null)
  t.is(closed.code, 'ERR_STORE_CLOSED')
})

test('the key is prefix + sid and the value is the plain JSON, with a millisecond TTL', async (t) => {
  const store = makeStore()
  const sess = session(30_000, { cart: [1, 2] })
  await store.set('k1', sess)
  t.is(await raw.call('GET', `${store.prefix}k1`), JSON.stringify(sess))
  const pexpiretime = await raw.call('PEXPIRETIME', `${store.prefix}k1`)
  t.is(pexpiretime, Date.parse(sess.cookie.expires))
})

test('a session expiring in 5 ms is gone 20 ms later', async (t) => {
  const store = makeStore()
  await store.set('short', session(5))
  await sleep(20)
  t.is(await store.get('short'), null)
  t.is(await raw.call('EXISTS', `${store.prefix}short`), 0)
})

test('a session whose expiry is past is deleted, not written', async (t) => {
  const store = makeStore()
  await store.set('past', session(60_000))
  await store.set('past', session(-1000))
  t.is(await raw.call('EXISTS', `${store.prefix}past`), 0)
})

test('without cookie.expires the ttl option applies; a ttl function wins', async (t) => {
  const plain = makeStore({ ttl: 100 })
  await plain.set('s', { cookie: { originalMaxAge: null, expires: null }, a: 1 })
  const pttl = await raw.call('PTTL', `${plain.prefix}s`)
  t.true(pttl > 99_000 && pttl <= 100_000, String(pttl))

  const fn = makeStore({ ttl: (sess) => sess.ttlSeconds })
  await fn.set('f', { ...session(60_000), ttlSeconds: 7 })
  const pttl2 = await raw.call('PTTL', `${fn.prefix}f`)
  t.true(pttl2 > 6_000 && pttl2 <= 7_000, String(pttl2))
  await fn.set('f', { ...session(60_000), ttlSeconds: 0 })
  t.is(await raw.call('EXISTS', `${fn.prefix}f`), 0)
})

test('disableTTL stores without expiry', async (t) => {
  const store = makeStore({ disableTTL: true })
  await store.set('n', session(1000))
  t.is(await raw.call('PTTL', `${store.prefix}n`), -1)
})

test('touch moves the expiry in Redis and get returns the new cookie.expires', async (t) => {
  const store = makeStore()
  const sess = session(10_000, { user: 'u' })
  await store.set('t', sess)
  const before = await raw.call('GET', `${store.prefix}t`)
  const touched = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 50_000).toISOString() } }
  await store.touch('t', touched)
  t.is(await raw.call('PEXPIRETIME', `${store.prefix}t`), Date.parse(touched.cookie.expires))
  // The value was not rewritten: only the key's expiry moved.
  t.is(await raw.call('GET', `${store.prefix}t`), before)
  const got = await store.get('t')
  t.is(got.cookie.expires, touched.cookie.expires)
  t.is(got.user, 'u')
  // all() returns sessions as stored, as connect-redis's does (one MGET per
  // chunk keeps it fast): the value's own cookie.expires.
  const [listed] = await store.all()
  t.is(listed.cookie.expires, sess.cookie.expires)
})

test('touch with a ttl function rewrites the value, and never recreates a destroyed session', async (t) => {
  const store = makeStore({ ttl: () => 60 })
  const sess = session(10_000)
  await store.set('r', sess)
  const touched = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 40_000).toISOString() } }
  await store.touch('r', touched)
  t.is((await store.get('r')).cookie.expires, touched.cookie.expires)
  await store.destroy('r')
  await store.touch('r', touched)
  t.is(await store.get('r'), null)
})

test('touch after destroy does not bring the session back', async (t) => {
  const store = makeStore()
  await store.set('d', session())
  await store.destroy('d')
  await store.touch('d', session())
  t.is(await raw.call('EXISTS', `${store.prefix}d`), 0)
})

test('disableTouch makes touch a no-op', async (t) => {
  const store = makeStore({ disableTouch: true })
  const sess = session(10_000)
  await store.set('x', sess)
  await store.touch('x', session(90_000))
  t.is(await raw.call('PEXPIRETIME', `${store.prefix}x`), Date.parse(sess.cookie.expires))
})

test('destroy removes the session, with or without a callback', async (t) => {
  const store = makeStore()
  await store.set('d1', session())
  await store.set('d2', session())
  await new Promise((resolve, reject) => store.destroy('d1', (err) => (err ? reject(err) : resolve())))
  store.destroy('d2')
  await sleep(50)
  t.is(await store.get('d1'), null)
  t.is(await store.get('d2'), null)
})

test('all, ids, length and clear see only this prefix', async (t) => {
  const store = makeStore({ prefix: `glob[${randomUUID()}]*:` })
  const other = makeStore()
  await other.set('o', session())
  await Promise.all(['a', 'b', 'c'].map((id) => store.set(id, session(60_000, { who: id }))))
  const all = await store.all()
  t.deepEqual(all.map((s) => s.id).sort(), ['a', 'b', 'c'])
  t.deepEqual(all.map((s) => s.who).sort(), ['a', 'b', 'c'])
  t.deepEqual((await store.ids()).sort(), ['a', 'b', 'c'])
  t.is(await store.length(), 3)
  await store.clear()
  t.is(await store.length(), 0)
  t.truthy(await other.get('o'))
})

test('operations issued together keep their order per session', async (t) => {
  const store = makeStore()
  const results = await Promise.all([
    store.set('o', session(60_000, { v: 1 })),
    store.get('o'),
    store.set('o', session(60_000, { v: 2 })),
    store.get('o'),
    store.destroy('o'),
    store.get('o'),
  ])
  t.is(results[1].v, 1)
  t.is(results[3].v, 2)
  t.is(results[5], null)
})

test('many concurrent operations all settle correctly', async (t) => {
  const store = makeStore()
  const ids = Array.from({ length: 2000 }, (_, i) => `m${i}`)
  await Promise.all(ids.map((id, i) => store.set(id, session(60_000, { i }))))
  const got = await Promise.all(ids.map((id) => store.get(id)))
  t.deepEqual(got.map((s) => s.i), ids.map((_, i) => i))
  t.is(await store.length(), 2000)
})

test('sessions carry Date objects through toJSON, as express-session does', async (t) => {
  const store = makeStore()
  const expires = new Date(Date.now() + 60_000)
  await store.set('date', { cookie: { originalMaxAge: 60_000, expires }, at: new Date(0) })
  const got = await store.get('date')
  t.is(got.cookie.expires, expires.toISOString())
  t.is(got.at, new Date(0).toISOString())
})

test('a custom serializer is used both ways', async (t) => {
  const serializer = {
    stringify: (s) => 'X' + JSON.stringify(s),
    parse: (s) => JSON.parse(s.slice(1)),
  }
  const store = makeStore({ serializer })
  t.is(store.serializer, serializer)
  await store.set('s', session(60_000, { a: 1 }))
  t.true((await raw.call('GET', `${store.prefix}s`)).startsWith('X{'))
  t.is((await store.get('s')).a, 1)
})

test('options are readable as instance properties with connect-redis defaults', (t) => {
  const store = makeStore({ prefix: 'p:' })
  t.is(store.prefix, 'p:')
  t.is(store.ttl, 86400)
  t.is(store.serializer, JSON)
  t.false(store.disableTTL)
  t.false(store.disableTouch)
  t.is(typeof store.on, 'function')
  t.is(typeof store.regenerate, 'function')
  t.is(typeof store.createSession, 'function')
})

test('logout sticks: a write after destroy does not bring the session back', async (t) => {
  const store = makeStore()
  await store.set('late', session(60_000, { user: 'ada' }))
  await store.destroy('late')
  // A slower request of the same session ends after the logout.
  await store.set('late', session(60_000, { user: 'ada', cart: [1] }))
  await store.touch('late', session(60_000))
  t.is(await store.get('late'), null)
  t.is(await raw.call('EXISTS', `${store.prefix}late`), 0)
  // The marker is the session's meta, in the session key's cluster slot,
  // kept for an hour without a TTL (volatile-* eviction cannot take it).
  const meta = `{${store.prefix}late}:meta`
  t.is(await raw.call('PTTL', meta), -1)
  const until = Number(await raw.call('HGET', meta, 'x'))
  t.true(until > Date.now() + 59 * 60_000 && until <= Date.now() + 60 * 60_000, String(until))
})
