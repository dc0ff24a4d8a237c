'use strict'

// stats({ endedWithin }) as Redis holds it: a hash per minute that expires
// by itself a day later, holding counts and no session id; what it costs in
// memory; and the windows refused. The counting itself (every backend, two
// instances, no listener) is in conformance/events.js.
const test = require('ava')
const { randomUUID } = require('node:crypto')
const { storeSuite, session } = require('./helpers/suite')

const { raw, makeStore } = storeSuite(test, 'ended')

const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE
// A bucket outlives its minute by a day and this margin (src/session/ended.rs).
const MARGIN = 5 * MINUTE
const REASONS = ['logout', 'revoked', 'everywhere', 'limit', 'idle', 'absolute', 'expired', 'binding']

const text = (v) => (Buffer.isBuffer(v) ? v.toString() : v)
const bucketsOf = async (store) => (await raw.call('KEYS', `{${store.prefix}\u0001ended}:*`)).map(text)

// A store whose sessions ended by logout, revoke, everywhere and limit;
// `sids` are their ids.
async function withEnds(options = {}) {
  const store = makeStore({ maxSessionsPerUser: 1, ...options })
  const owner = `user-${randomUUID()}`
  const sids = ['logout', 'revoked', 'everywhere', 'limit', 'kept'].map((what) => `${what}-${randomUUID()}`)
  const [logout, revoked, everywhere, limit, kept] = sids
  await store.set(logout, session(60_000, { userId: owner }))
  await store.destroy(logout)
  await store.set(limit, session(60_000, { userId: owner }))
  await store.set(revoked, session(60_000, { userId: owner })) // ends `limit`
  await store.revokeUserSession(owner, store.handleOf(revoked))
  await store.set(everywhere, session(60_000, { userId: owner }))
  await store.destroyUserSessions(owner)
  await store.set(kept, session(60_000))
  return { store, sids }
}

test('ended-session buckets expire by themselves a day later, and hold counts, never a session id', async (t) => {
  const { store, sids } = await withEnds()
  // The instance that ended them sends its counts before it reads them.
  const { ended } = await store.stats({ endedWithin: 60 })
  t.deepEqual(ended.byReason, { logout: 1, revoked: 1, everywhere: 1, limit: 1 })
  const buckets = await bucketsOf(store)
  // The ends fall in one minute, or two around a minute's turn.
  t.true(buckets.length >= 1 && buckets.length <= 2, buckets.join(' '))
  for (const key of buckets) {
    const ttl = await raw.call('PTTL', key)
    t.true(ttl > DAY && ttl <= DAY + MARGIN + MINUTE, `PTTL ${ttl} of ${JSON.stringify(key)}`)
    const fields = (await raw.call('HGETALL', key)).map(text)
    for (let i = 0; i < fields.length; i += 2) {
      t.true([...REASONS, 'ms', 'untimed'].includes(fields[i]), `field ${fields[i]}`)
      t.regex(fields[i + 1], /^\d+$/)
    }
    for (const sid of sids) t.false(`${key} ${fields.join(' ')}`.includes(sid), 'a bucket holds a session id')
  }
  for (const sid of sids) t.false(JSON.stringify(ended).includes(sid), 'stats() shows a session id')
})

test('stats() without endedWithin returns what it did before: no `ended`', async (t) => {
  const { store } = await withEnds()
  const stats = await store.stats()
  t.false('ended' in stats)
  t.deepEqual(Object.keys(stats).sort(), ['active', 'averageAge', 'oldestCreatedAt', 'sessions', 'users'])
})

test('endedWithin must be a number of seconds from 0 to 86400', async (t) => {
  const store = makeStore()
  for (const bad of [-1, 86_401, NaN, Infinity, '60', {}, true]) {
    const err = await t.throwsAsync(store.stats({ endedWithin: bad }), undefined, String(bad))
    t.is(err.code, 'ERR_INVALID_ARG', String(bad))
    t.true(err.message.includes('endedWithin'), err.message)
  }
  const err = await new Promise((resolve) => store.stats({ endedWithin: -5 }, resolve))
  t.is(err.code, 'ERR_INVALID_ARG')
  for (const ok of [0, 0.5, 60, 86_400]) {
    t.deepEqual((await store.stats({ endedWithin: ok })).ended, { sessions: 0, averageDuration: 0, byReason: {} })
  }
})

test('a minute with every reason costs about 200 bytes (MEMORY USAGE)', async (t) => {
  // As long a prefix as the default 'sess:' (the key is part of the cost).
  const { store } = await withEnds({ prefix: `${randomUUID().slice(0, 4)}:` })
  await store.stats({ endedWithin: 60 })
  const [key] = await bucketsOf(store)
  // The reasons it lacks, and a busy minute's counts and sum of durations.
  for (const field of [...REASONS, 'untimed']) await raw.call('HINCRBY', key, field, 1_234)
  await raw.call('HINCRBY', key, 'ms', 1_234 * 8 * 3_600_000)
  t.true(['listpack', 'ziplist'].includes(text(await raw.call('OBJECT', 'ENCODING', key))), 'a compact hash')
  const bytes = await raw.call('MEMORY', 'USAGE', key)
  t.log(`one minute's bucket: ${bytes} B; a day of them (1,441): ${Math.round((bytes * 1441) / 1024)} KiB`)
  t.true(bytes > 0 && bytes <= 256, `${bytes} B`)
})
