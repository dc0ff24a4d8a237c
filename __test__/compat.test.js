'use strict'

// Drop-in compatibility with connect-redis (node-redis 6 client), both
// ways, on the same Redis and the same prefix: what one writes, destroys or
// touches, the other sees.
const test = require('ava')
const { randomUUID } = require('node:crypto')
const { createClient } = require('redis')
const { Cookie } = require('express-session')
const { RedisSessionStore } = require('..')
const { redisForTests } = require('./helpers/redis')

let redis
let client
let RedisStore
const stores = []

test.before(async () => {
  // connect-redis 11 is ESM only.
  ;({ RedisStore } = await import('connect-redis'))
  redis = await redisForTests()
  client = createClient({ url: redis.url })
  client.on('error', () => {})
  await client.connect()
})

test.after.always(async () => {
  await Promise.all(stores.map((s) => s.close()))
  if (client) await client.close()
  if (redis) await redis.dispose()
})

// A connect-redis store and one of ours sharing a fresh prefix.
function pair(options = {}, oursOnly = {}) {
  const prefix = options.prefix ?? `compat:${randomUUID()}:`
  const theirs = new RedisStore({ client, prefix, ...options })
  const ours = new RedisSessionStore({ url: redis.url, prefix, ...options, ...oursOnly })
  stores.push(ours)
  return { prefix, theirs, ours }
}

// What express-session hands a store: a Cookie whose toJSON gives
// `expires` as an ISO string. 90.5 s so that connect-redis's
// whole-second TTL (ceil) lands ~500 ms after cookie.expires.
function session(extra = {}, maxAge = 90_500) {
  return {
    cookie: new Cookie({ maxAge, httpOnly: true, path: '/', sameSite: 'lax' }),
    user: { id: 42, name: 'Ada', roles: ['admin', 'dev'] },
    flash: [],
    n: 3.5,
    unicode: 'Grüße 👋',
    ...extra,
  }
}

// A session without cookie expiry (browser-session cookie): no TTL rounding.
function sessionNoExpiry(extra = {}) {
  return { cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, who: 'x', ...extra }
}

// The session as it reads back from JSON.
const json = (sess) => JSON.parse(JSON.stringify(sess))

test('both write the same key and byte-identical value for the same session', async (t) => {
  const { prefix, theirs, ours } = pair()
  const sess = session()
  await theirs.set('by-them', sess)
  await ours.set('by-us', sess)
  const a = await client.get(`${prefix}by-them`)
  const b = await client.get(`${prefix}by-us`)
  t.is(a, JSON.stringify(sess))
  t.is(b, a)
  const expires = Date.parse(sess.cookie.expires.toISOString())
  // Ours: the cookie's expiry to the millisecond. Theirs: rounded up to a second.
  t.is(await client.pExpireTime(`${prefix}by-us`), expires)
  const theirExpiry = await client.pExpireTime(`${prefix}by-them`)
  t.true(theirExpiry >= expires && theirExpiry < expires + 1500, `${theirExpiry - expires} ms`)
})

test('a session written by our store is read by connect-redis with identical content', async (t) => {
  const { theirs, ours } = pair()
  const sess = session()
  await ours.set('s1', sess)
  t.deepEqual(await theirs.get('s1'), json(sess))
  await ours.set('s2', sessionNoExpiry({ cart: [1, 2] }))
  t.deepEqual(await theirs.get('s2'), json(sessionNoExpiry({ cart: [1, 2] })))
  t.is(await theirs.get('missing'), null)
})

test('a session written by connect-redis is read by our store with identical content', async (t) => {
  const { theirs, ours } = pair()
  await theirs.set('s2', sessionNoExpiry({ cart: [1, 2] }))
  t.deepEqual(await ours.get('s2'), json(sessionNoExpiry({ cart: [1, 2] })))

  // With a cookie expiry, everything but cookie.expires is identical;
  // cookie.expires may come back up to connect-redis's rounding (< 1 s) later.
  const sess = session()
  await theirs.set('s1', sess)
  const got = await ours.get('s1')
  const want = json(sess)
  const drift = Date.parse(got.cookie.expires) - Date.parse(want.cookie.expires)
  t.true(drift >= 0 && drift < 1500, `cookie.expires moved by ${drift} ms`)
  t.deepEqual({ ...got, cookie: { ...got.cookie, expires: null } }, { ...want, cookie: { ...want.cookie, expires: null } })
  t.is(await ours.get('missing'), null)
})

test('destroy from either store is seen by the other', async (t) => {
  const { prefix, theirs, ours } = pair()
  await theirs.set('a', session())
  await ours.set('b', session())
  t.truthy(await ours.get('a'))
  t.truthy(await theirs.get('b'))

  await theirs.destroy('a')
  t.is(await ours.get('a'), null)
  await ours.destroy('b')
  t.is(await theirs.get('b'), null)

  // A touch after the other side's destroy does not bring the session back.
  await ours.touch('a', session())
  await theirs.touch('b', session())
  t.is(await client.exists([`${prefix}a`, `${prefix}b`]), 0)
  t.is(await theirs.get('a'), null)
  t.is(await ours.get('b'), null)
})

// A logout leaves a tombstone beside the session (see src/session/scripts.rs,
// DESTROY). With a hash-tagged prefix its key matches `prefix*`: it is a
// hash, which connect-redis's SCAN + MGET reads as nothing and reindex()'s
// SCAN of strings skips, so neither takes it for a session.
// So is the mark an instance listening for session events keeps there.
test('with a hash-tagged prefix, a logout\'s tombstone and the listening mark are no sessions to connect-redis or to reindex()', async (t) => {
  const { prefix, theirs, ours } = pair({ prefix: `{c${randomUUID()}}sess:` })
  ours.on('sessionEnded', () => {})
  await ours.set('a', session({ visits: 1 }))
  await ours.set('b', session({ visits: 2 }))
  await ours.destroy('a')
  // The cleanup's tick (each second) writes the mark.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.is(await client.type(`${prefix}\u0001listening`), 'hash', 'the listening mark')
  t.deepEqual((await theirs.all()).map((s) => s.id), ['b'])
  await ours.reindex()
  t.deepEqual(await ours.ids(), ['b'])
  t.deepEqual((await ours.all()).map((s) => s.id), ['b'])
  t.is(await client.type(`${prefix}a:gone`), 'hash', 'the tombstone')
})

test('our touch of a connect-redis session moves its expiry for both, and keeps its content', async (t) => {
  const { prefix, theirs, ours } = pair({}, { readExpiry: true })
  const sess = session({ visits: 1 }, 10_000)
  await theirs.set('t', sess)
  const before = await client.get(`${prefix}t`)

  const touched = { ...sess, cookie: new Cookie({ maxAge: 120_000, httpOnly: true, path: '/', sameSite: 'lax' }) }
  await ours.touch('t', touched)
  const newExpires = touched.cookie.expires.toISOString()
  t.is(await client.pExpireTime(`${prefix}t`), Date.parse(newExpires))
  t.is(await client.get(`${prefix}t`), before)
  // connect-redis reads the stored value as is, as ours does by default;
  // with readExpiry ours returns the new expiry.
  t.deepEqual(await theirs.get('t'), json(sess))
  const plain = new RedisSessionStore({ url: redis.url, prefix })
  stores.push(plain)
  t.deepEqual(await plain.get('t'), json(sess))
  const got = await ours.get('t')
  t.is(got.cookie.expires, newExpires)
  t.is(got.visits, 1)
})

test('connect-redis touch of our session moves its expiry, and our get sees it with readExpiry', async (t) => {
  const { prefix, theirs, ours } = pair({}, { readExpiry: true })
  const sess = session({ visits: 2 }, 10_000)
  await ours.set('t', sess)
  t.is(await client.pExpireTime(`${prefix}t`), Date.parse(sess.cookie.expires.toISOString()))

  const touched = { ...sess, cookie: new Cookie({ maxAge: 120_000, httpOnly: true, path: '/', sameSite: 'lax' }) }
  await theirs.touch('t', touched)
  const newExpires = Date.parse(touched.cookie.expires.toISOString())
  const keyExpiry = await client.pExpireTime(`${prefix}t`)
  t.true(keyExpiry >= newExpires && keyExpiry < newExpires + 1500, `${keyExpiry - newExpires} ms`)
  const got = await ours.get('t')
  t.is(Date.parse(got.cookie.expires), keyExpiry)
  t.is(got.visits, 2)
  t.is(got.user.name, 'Ada')
  // "My devices" shows the same expiry as get().
  const [listed] = await ours.listUserSessions(42)
  t.is(listed.id, 't')
  t.is(Date.parse(listed.session.cookie.expires), keyExpiry)
})

test('all() from both stores agree once connect-redis sessions have been used through ours', async (t) => {
  const { theirs, ours } = pair()
  const t1 = sessionNoExpiry({ who: 't1' })
  const t2 = sessionNoExpiry({ who: 't2', list: [1, { a: null }] })
  await theirs.set('t1', t1)
  await theirs.set('t2', t2)
  await ours.set('o1', session({ who: 'o1' }))
  await ours.set('o2', sessionNoExpiry({ who: 'o2' }))
  const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  // Ours reads its index, not the keyspace: sessions connect-redis wrote
  // join it at their first touch or save through this store.
  t.deepEqual((await ours.all()).map((s) => s.id).sort(), ['o1', 'o2'])
  await ours.touch('t1', t1)
  await ours.touch('t2', t2)
  const mine = (await ours.all()).sort(byId)
  const theirsAll = (await theirs.all()).sort(byId)
  t.true(Array.isArray(mine))
  t.deepEqual(mine.map((s) => s.id), ['o1', 'o2', 't1', 't2'])
  t.deepEqual(mine.map((s) => s.who), ['o1', 'o2', 't1', 't2'])
  t.deepEqual(mine, theirsAll)
  t.deepEqual((await ours.ids()).sort(), (await theirs.ids()).sort())
  t.is(await ours.length(), 4)
  t.is(await theirs.length(), 4)

  // clear() from one empties it for the other.
  await theirs.clear()
  t.deepEqual(await ours.all(), [])
  t.is(await ours.length(), 0)
})

test('an expired cookie makes both delete rather than write, whoever wrote before', async (t) => {
  const { prefix, theirs, ours } = pair()
  const past = { cookie: { originalMaxAge: 1000, expires: new Date(Date.now() - 5000).toISOString() }, x: 1 }
  await theirs.set('p1', session())
  await ours.set('p1', past)
  await ours.set('p2', session())
  await theirs.set('p2', past)
  t.is(await client.exists([`${prefix}p1`, `${prefix}p2`]), 0)
  t.is(await theirs.get('p1'), null)
  t.is(await ours.get('p2'), null)
})

test('disableTTL on both: no expiry, and the other side reads it unchanged', async (t) => {
  const { prefix, theirs, ours } = pair({ disableTTL: true })
  const sess = session()
  await theirs.set('n1', sess)
  await ours.set('n2', sess)
  t.is(await client.pTTL(`${prefix}n1`), -1)
  t.is(await client.pTTL(`${prefix}n2`), -1)
  t.deepEqual(await ours.get('n1'), json(sess))
  t.deepEqual(await theirs.get('n2'), json(sess))
})

test('reindex() records the sessions connect-redis wrote, once, leaving them as they are', async (t) => {
  const { prefix, theirs, ours } = pair()
  await theirs.set('r1', session({ userId: 'ada' }))
  await theirs.set('r2', sessionNoExpiry({ user: { id: 7 } }))
  await client.set(`${prefix}junk`, 'not json')
  await client.hSet(`${prefix}hash`, 'x', '1')
  const before = await client.get(`${prefix}r1`)
  const expiry = await client.pExpireTime(`${prefix}r1`)
  const expiry2 = await client.pExpireTime(`${prefix}r2`)
  t.is(await ours.length(), 0)

  t.deepEqual(await ours.reindex(), { indexed: 2, skipped: 1 })
  t.deepEqual((await ours.ids()).sort(), ['r1', 'r2'])
  t.deepEqual((await ours.listUserSessions('ada')).map((s) => s.id), ['r1'])
  t.deepEqual((await ours.listUserSessions(7)).map((s) => s.id), ['r2'])
  // Nothing was recorded for them: no device, and a handle all the same.
  const [r1] = await ours.listUserSessions('ada')
  t.is(r1.device, null)
  t.is(r1.handle, ours.handleOf('r1'))
  // The sessions themselves are untouched.
  t.is(await client.get(`${prefix}r1`), before)
  t.is(await client.pExpireTime(`${prefix}r1`), expiry)
  t.is(await client.pExpireTime(`${prefix}r2`), expiry2)
  // Running it again changes nothing; a destroyed session is not brought back.
  await ours.destroy('r2')
  t.deepEqual(await ours.reindex(), { indexed: 1, skipped: 1 })
  t.deepEqual(await ours.ids(), ['r1'])
})
