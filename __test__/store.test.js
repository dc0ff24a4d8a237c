'use strict'

// The store on a real redis-server, as Redis sees it.
const test = require('ava')
const { storeSuite, session, sleep } = require('./helpers/suite')
const { storeKeys, parseMeta } = require('./helpers/pressure')

const { raw, makeStore } = storeSuite(test, 't')

// What every backend must do (get/set/touch/destroy, callbacks, expiry,
// the TTL options, disableTouch, all/ids/length/clear, serializers) is in
// conformance/session.js, expiry.js and admin.js. What stays here is what
// only Redis shows: the keys, their TTLs and their values.

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

// What conformance/session.js's callback test does not call: a touch that
// disableTouch answers without a round trip, and bad input to touch, stats
// and destroyUserSessions, which must come through the callback too.
test('callbacks are called once, after returning, for a disableTouch touch and for bad input', async (t) => {
  const store = makeStore()
  const untouchable = makeStore({ disableTouch: true })
  const cases = {
    'touch with disableTouch': [untouchable, (done) => untouchable.touch('cb', session(), done), null],
    'set of a non-object': [store, (done) => store.set('x', 'not a session', done), 'ERR_INVALID_ARG'],
    'touch with a bad sid': [store, (done) => store.touch('bad\nsid', session(), done), 'ERR_INVALID_ARG'],
    'stats with a bad activeWithin': [store, (done) => store.stats({ activeWithin: -1 }, done), 'ERR_INVALID_ARG'],
    'destroyUserSessions with a bad except': [store, (done) => store.destroyUserSessions('u', { except: [''] }, done), 'ERR_INVALID_ARG'],
  }
  for (const [what, [s, invoke, code]] of Object.entries(cases)) {
    const [err] = await viaCallback(t, s, what, invoke)
    if (code === null) t.is(err, null, what)
    else t.is(err && err.code, code, what)
  }
})

test('the key is prefix + sid and the value is the plain JSON, with a millisecond TTL', async (t) => {
  const store = makeStore()
  const sess = session(30_000, { cart: [1, 2] })
  await store.set('k1', sess)
  t.is(await raw.call('GET', `${store.prefix}k1`), JSON.stringify(sess))
  const pexpiretime = await raw.call('PEXPIRETIME', `${store.prefix}k1`)
  t.is(pexpiretime, Date.parse(sess.cookie.expires))
})

test('an expired session, one set with a past expiry, and one touched after destroy leave no key', async (t) => {
  const store = makeStore()
  await store.set('short', session(5))
  await store.set('past', session(60_000))
  await store.set('past', session(-1000))
  await store.set('d', session())
  await store.destroy('d')
  await store.touch('d', session())
  await sleep(20)
  for (const sid of ['short', 'past', 'd']) t.is(await raw.call('EXISTS', `${store.prefix}${sid}`), 0, sid)
})

test('the key\'s TTL: the ttl option without cookie.expires, a ttl function, and none with disableTTL', async (t) => {
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

  const forever = makeStore({ disableTTL: true })
  await forever.set('n', session(1000))
  t.is(await raw.call('PTTL', `${forever.prefix}n`), -1)
})

test('touch moves only the key\'s expiry, not the value; get reads it back with readExpiry; all() returns the value as stored', async (t) => {
  const store = makeStore()
  const sess = session(10_000, { user: 'u' })
  await store.set('t', sess)
  const before = await raw.call('GET', `${store.prefix}t`)
  const touched = { ...sess, cookie: { ...sess.cookie, expires: new Date(Date.now() + 50_000).toISOString() } }
  await store.touch('t', touched)
  t.is(await raw.call('PEXPIRETIME', `${store.prefix}t`), Date.parse(touched.cookie.expires))
  // The value was not rewritten: only the key's expiry moved.
  t.is(await raw.call('GET', `${store.prefix}t`), before)
  // By default get returns the value as stored, as connect-redis does...
  t.false(store.readExpiry)
  t.is((await store.get('t')).cookie.expires, sess.cookie.expires)
  // ...and with readExpiry, the expiry the touch set.
  const reading = makeStore({ prefix: store.prefix, readExpiry: true })
  t.true(reading.readExpiry)
  t.is((await reading.get('t')).cookie.expires, touched.cookie.expires)
  // all() returns sessions as stored, as connect-redis's does (one MGET per
  // chunk keeps it fast): the value's own cookie.expires.
  const [listed] = await store.all()
  t.is(listed.cookie.expires, sess.cookie.expires)
})

test('with disableTouch a touch leaves the key\'s expiry where it was', async (t) => {
  const store = makeStore({ disableTouch: true })
  const sess = session(10_000)
  await store.set('x', sess)
  await store.touch('x', session(90_000))
  t.is(await raw.call('PEXPIRETIME', `${store.prefix}x`), Date.parse(sess.cookie.expires))
})

test('a custom serializer\'s text is what Redis holds', async (t) => {
  const serializer = {
    stringify: (s) => 'X' + JSON.stringify(s),
    parse: (s) => JSON.parse(s.slice(1)),
  }
  const store = makeStore({ serializer })
  await store.set('s', session(60_000, { a: 1 }))
  t.true((await raw.call('GET', `${store.prefix}s`)).startsWith('X{'))
  t.is((await store.get('s')).a, 1)
})

test('connect-redis\'s default ttl: 86400 s', (t) => {
  const store = makeStore({ prefix: 'p:' })
  t.is(store.prefix, 'p:')
  t.is(store.ttl, 86400)
})

test('logout sticks: the marker is the meta, in a shard without a TTL, with the time it ends', async (t) => {
  const store = makeStore()
  await store.set('late', session(60_000, { user: 'ada' }))
  await store.destroy('late')
  // A slower request of the same session ends after the logout.
  await store.set('late', session(60_000, { user: 'ada', cart: [1] }))
  await store.touch('late', session(60_000))
  t.is(await store.get('late'), null)
  t.is(await raw.call('EXISTS', `${store.prefix}late`), 0)
  // The marker is the session's meta, its field in its shard (in the
  // session key's cluster slot), kept for an hour without a TTL
  // (volatile-* eviction cannot take it).
  const K = storeKeys(store.prefix)
  t.is(await raw.call('PTTL', K.shard('late')), -1)
  const { x: until, u } = parseMeta(await raw.call('HGET', K.shard('late'), 'late'))
  t.true(until > Date.now() + 59 * 60_000 && until <= Date.now() + 60 * 60_000, String(until))
  t.is(u, '', 'a session without an owner')
})
