'use strict'

// Encryption at rest as the stored bytes show it: what a plain Redis client
// (or a dump) and the embedded engine's file hold, and values tampered with
// in place. The calls over every backend are in conformance/encryption.js.
const test = require('ava')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { randomBytes } = require('node:crypto')
const { RedisSessionStore } = require('..')
const { storeSuite, session } = require('./helpers/suite')
const { storeKeys } = require('./helpers/pressure')

const { raw, makeStore } = storeSuite(test, 'enc')
const SECRET = 'oauth-token-5f0c8e'
const keys = [{ id: '2026-12', key: randomBytes(32) }]

const stored = (store, sid) => raw.callBinary('GET', store.prefix + sid)

test('Redis holds no session text: a versioned envelope with the key id, different at every save', async (t) => {
  const store = makeStore({ encryption: { keys } })
  const sess = session(60_000, { userId: 'ada', token: SECRET })
  await store.set('s', sess)
  const first = await stored(store, 's')
  t.false(first.includes(SECRET))
  t.false(first.includes('ada'))
  t.false(first.includes('cookie'))
  // 0x00, version 1, the id's length and the id.
  t.deepEqual([...first.subarray(0, 3)], [0, 1, 7])
  t.is(first.subarray(3, 10).toString(), '2026-12')
  await store.set('s', sess)
  const second = await stored(store, 's')
  t.is(second.length, first.length)
  t.false(second.equals(first), 'a fresh nonce per save')
  t.is((await store.get('s')).token, SECRET)
  // The meta and index entries hold no session text either.
  const all = (await raw.call('KEYS', `*${store.prefix.slice(0, -1)}*`)).map(String)
  t.true(all.length >= 2, 'the session and its shard')
  for (const k of all) {
    const type = await raw.call('TYPE', k)
    const dump = type === 'hash' ? await raw.call('HGETALL', k) : type === 'zset' ? await raw.call('ZRANGE', k, 0, -1) : []
    t.false(dump.map(String).join().includes(SECRET), k)
  }
})

// Each tampered value is refused with ERR_SESSION_CORRUPT naming the key,
// and stays as it was: the read neither deletes nor rewrites it.
const TAMPERED = {
  'a value moved from another session': async (store, good) => good('other'),
  'a flipped byte in the ciphertext': async (store, good) => {
    const v = await good('s')
    v[v.length - 20] ^= 1
    return v
  },
  'a flipped byte in the tag': async (store, good) => {
    const v = await good('s')
    v[v.length - 1] ^= 0x80
    return v
  },
  'a truncated value': async (store, good) => (await good('s')).subarray(0, 20),
  'a value cut before its tag': async (store, good) => {
    const v = await good('s')
    return v.subarray(0, v.length - 16)
  },
  'an unknown envelope version': async (store, good) => {
    const v = await good('s')
    v[1] = 9
    return v
  },
  'plaintext written by an attacker': async () => Buffer.from(JSON.stringify(session(60_000, { userId: 'admin' }))),
}

for (const [what, make] of Object.entries(TAMPERED)) {
  test(`refused, and left as it is: ${what}`, async (t) => {
    const store = makeStore({ encryption: { keys } })
    const good = async (sid) => {
      await store.set(sid, session(60_000, { userId: 'ada', token: SECRET }))
      return Buffer.from(await stored(store, sid))
    }
    const bad = await make(store, good)
    await raw.call('SET', store.prefix + 's', bad, 'PX', 60_000)
    const err = await t.throwsAsync(store.get('s'))
    t.is(err.code, 'ERR_SESSION_CORRUPT')
    t.true(err.message.includes(store.handleOf('s')), err.message)
    t.false(err.message.includes(`${store.prefix}s`), err.message)
    t.false(err.message.includes(SECRET))
    t.true((await stored(store, 's')).equals(bad), 'the stored value is unchanged')
    t.is(await raw.call('EXISTS', store.prefix + 's'), 1)
  })
}

// Someone who can write to Redis keeps a copy of a sealed value and puts
// it back after the logout. With idle/absolute limits a read already has
// the session's meta, whose logout marker refuses the copy; without them a
// read is GET alone and serves it (docs/guide.md says so).
test('a replayed value of a destroyed session: refused under the logout marker with timeouts, served without', async (t) => {
  for (const [options, served] of [[{ idleTimeout: 600 }, false], [{ absoluteTimeout: 3600 }, false], [{}, true]]) {
    const store = makeStore({ encryption: { keys }, ...options })
    await store.set('replayed', session(60_000, { userId: 'ada', token: SECRET }))
    const copy = Buffer.from(await stored(store, 'replayed'))
    await store.destroy('replayed')
    await raw.call('SET', store.prefix + 'replayed', copy, 'PX', 60_000)
    const got = await store.get('replayed')
    t.is(got?.token, served ? SECRET : undefined, JSON.stringify(options))
  }
})

// A touch from a request that loaded the session before the logout lands
// after it: its meta, a plain HSET, turns the logout marker back into a
// live meta. The store that touched saw the session gone and puts the
// marker back from the logout's tombstone at its next tick (about a
// second), so a copy written back after that is refused again.
test('a replayed value after a touch that landed after the logout: refused once the marker is back', async (t) => {
  const store = makeStore({ encryption: { keys }, idleTimeout: 600 })
  const key = store.prefix + 'late'
  await store.set('late', session(60_000, { userId: 'ada', token: SECRET }))
  const copy = Buffer.from(await stored(store, 'late'))
  // The first touch tells this instance the creation time; the next one
  // writes the meta beside the expiry. Another instance logs out.
  await store.touch('late', session(60_000, { userId: 'ada', token: SECRET }))
  await makeStore({ prefix: store.prefix, encryption: { keys }, idleTimeout: 600 }).destroy('late')
  await store.touch('late', session(60_000, { userId: 'ada', token: SECRET }))
  const shard = storeKeys(store.prefix).shard('late')
  let meta = String(await raw.call('HGET', shard, 'late'))
  t.regex(meta, /^[0-9a-z]+,[0-9a-z]+,[0-9a-z]+,,ada$/, 'the late touch revived the meta')
  for (let i = 0; i < 40 && !meta.startsWith(',,,'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    meta = String(await raw.call('HGET', shard, 'late'))
  }
  t.regex(meta, /^,,,[0-9a-z]+,ada$/, 'the logout marker is back')
  await raw.call('SET', key, copy, 'PX', 60_000)
  t.is(await store.get('late'), null)
})

test("the embedded engine's file holds no session text", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-enc-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const url = `file://${path.join(dir, 'sessions.db')}`
  const store = new RedisSessionStore({ url, encryption: { keys } })
  for (let i = 0; i < 50; i++) await store.set(`s${i}`, session(60_000, { userId: 'ada', token: SECRET }))
  t.is((await store.get('s7')).token, SECRET)
  await store.close()
  const bytes = fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f)))
  t.true(bytes.some((b) => b.includes('2026-12')), 'the file has the sessions (their key id)')
  t.false(bytes.some((b) => b.includes(SECRET)))
  const reopened = new RedisSessionStore({ url, encryption: { keys } })
  t.is((await reopened.get('s7')).token, SECRET)
  await reopened.close()
  // Without the key the file's sessions do not open.
  const keyless = new RedisSessionStore({ url })
  t.is((await t.throwsAsync(keyless.get('s7'))).code, 'ERR_SESSION_CORRUPT')
  await keyless.close()
})
