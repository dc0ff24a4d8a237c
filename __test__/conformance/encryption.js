'use strict'

// Encryption at rest through the public API, on every backend: sessions
// read back as written through every call, a value under a key that is not
// configured or in plaintext is refused and left as it is, rotation over
// three key generations with reencrypt() logs nobody out, and reencrypt()
// racing saves loses none. What only the stored bytes show (no session
// text, tampering) is in encryption.test.js.
const { randomBytes } = require('node:crypto')
const { inspect } = require('node:util')
const { namesSession, session, asStored, listedIds, sorted, user } = require('./util')

const key = (id) => ({ id, key: randomBytes(32) })

module.exports = (test, ctx) => {
  const { makeStore, sibling } = ctx

  test('encryption: get, listUserSessions and all() return sessions as saved; touch keeps them readable', async (t) => {
    const store = makeStore({ encryption: { keys: [key('k1')] }, readExpiry: true })
    const owner = user()
    const a = session(60_000, { userId: owner, cart: ['é', { n: 1 }] })
    await store.set('a', a)
    await store.set('b', session(60_000, { userId: owner }))
    t.deepEqual(await store.get('a'), asStored(a))
    const later = session(120_000, { userId: owner, cart: ['é', { n: 1 }] })
    await store.touch('a', later)
    t.is((await store.get('a')).cookie.expires, later.cookie.expires)
    t.deepEqual(sorted(await listedIds(store, owner)), ['a', 'b'])
    const listed = await store.listUserSessions(owner)
    t.deepEqual(listed.find((s) => s.id === 'a').session.cart, ['é', { n: 1 }])
    const all = await store.all()
    t.deepEqual(sorted(all.map((s) => s.id)), ['a', 'b'])
    t.is(await store.length(), 2)
  })

  test('encryption: a value under a key id that is not configured fails with ERR_SESSION_KEY_UNKNOWN naming it, and stays', async (t) => {
    const old = key('2026-06')
    const writer = makeStore({ encryption: { keys: [old] } }, { shared: true })
    await writer.set('sid-unknown-key', session(60_000, { userId: 'ada', n: 1 }))
    const reader = sibling(writer, { encryption: { keys: [key('2026-12')] } })
    const err = await t.throwsAsync(reader.get('sid-unknown-key'))
    t.is(err.code, 'ERR_SESSION_KEY_UNKNOWN')
    t.regex(err.message, /"2026-06"/)
    namesSession(t, err, writer, 'sid-unknown-key')
    // Listed apart, not failing the list: the user can still see and end it.
    const [listed] = await reader.listUserSessions('ada')
    t.is(listed.unreadable, true)
    t.is(listed.session, null)
    t.is(listed.handle, reader.handleOf('sid-unknown-key'))
    // Left as it was: the writer's key still opens it.
    t.is((await writer.get('sid-unknown-key')).n, 1)
    // Put back in the list, the old key opens it again.
    const rotated = sibling(writer, { encryption: { keys: [key('2026-12'), old] } })
    t.is((await rotated.get('sid-unknown-key')).n, 1)
    // A value that does not open does not block "log out everywhere".
    t.is(await reader.destroyUserSessions('ada'), 1)
    t.is(await writer.get('sid-unknown-key'), null)
  })

  // A sealed value names its key (prefix + sid) in its associated data:
  // copied by a client under the store from one session's key to another's,
  // it is not read as that other session (an attacker with write access to
  // Redis cannot give their session another user's data, or the reverse).
  test('encryption: a value copied from another session\'s key fails with ERR_SESSION_CORRUPT naming neither sid, and stays', async (t) => {
    const store = makeStore({ encryption: { keys: [key('k1')] } }, { shared: true })
    const [from, to] = ['sid-moved-from-3f9a1c', 'sid-moved-to-77b2e0']
    const victim = user()
    await store.set(from, session(60_000, { userId: victim, role: 'admin' }))
    await store.set(to, session(60_000, { userId: user(), role: 'guest' }))
    await ctx.copyValue(store, from, to)
    const err = await t.throwsAsync(store.get(to))
    t.is(err.code, 'ERR_SESSION_CORRUPT')
    namesSession(t, err, store, to)
    t.false(err.message.includes(from) || JSON.stringify(err).includes(from), `the message shows the other session's id: ${err.message}`)
    t.false(err.message.includes(store.handleOf(from)), 'the message names the session the value came from')
    // Left as it is, and the session it came from still reads as its own.
    t.is((await t.throwsAsync(store.get(to))).code, 'ERR_SESSION_CORRUPT')
    t.is((await store.get(from)).role, 'admin')
    t.deepEqual(await listedIds(store, victim), [from])
  })

  test('encryption: plaintext is refused without allowPlaintext and read with it; reencrypt() encrypts it', async (t) => {
    const plain = makeStore({}, { shared: true })
    const owner = user()
    await plain.set('p', session(60_000, { userId: owner, n: 7 }))
    const strict = sibling(plain, { encryption: { keys: [key('k')] } })
    const err = await t.throwsAsync(strict.get('p'))
    t.is(err.code, 'ERR_SESSION_CORRUPT')
    t.regex(err.message, /allowPlaintext/)
    t.is((await plain.get('p')).n, 7, 'left as it was')
    const k = key('k')
    const migrating = sibling(plain, { encryption: { keys: [k], allowPlaintext: true } })
    t.is((await migrating.get('p')).n, 7)
    t.deepEqual(await migrating.reencrypt(), { reencrypted: 1, current: 0, unreadable: 0, raced: 0 })
    // Encrypted now: the store without encryption cannot read it, the strict one can.
    t.is((await t.throwsAsync(plain.get('p'))).code, 'ERR_SESSION_CORRUPT')
    const after = sibling(plain, { encryption: { keys: [k] } })
    t.is((await after.get('p')).n, 7)
    t.deepEqual(await migrating.reencrypt(), { reencrypted: 0, current: 1, unreadable: 0, raced: 0 })
  })

  test('encryption: rotation over three key generations with reencrypt(), then the oldest keys removed, nobody logged out', async (t) => {
    const [k1, k2, k3] = [key('g1'), key('g2'), key('g3')]
    const first = makeStore({ encryption: { keys: [k1] } }, { shared: true })
    const owner = user()
    const sids = Array.from({ length: 30 }, (_, i) => `r${i}`)
    for (const sid of sids) await first.set(sid, session(60_000 + sids.indexOf(sid), { userId: owner, sid }))
    const before = new Map((await first.listUserSessions(owner)).map((s) => [s.id, s]))
    // Generation 2: some sessions are saved under it, the rest by reencrypt().
    const second = sibling(first, { encryption: { keys: [k2, k1] } })
    for (const sid of sids.slice(0, 10)) await second.set(sid, session(60_000 + sids.indexOf(sid), { userId: owner, sid }))
    t.deepEqual(await second.reencrypt(), { reencrypted: 20, current: 10, unreadable: 0, raced: 0 })
    // Generation 3, with the first key still listed: nothing of it is left.
    const third = sibling(first, { encryption: { keys: [k3, k2, k1] } })
    t.deepEqual(await third.reencrypt(), { reencrypted: 30, current: 0, unreadable: 0, raced: 0 })
    const only = sibling(first, { encryption: { keys: [k3] } })
    for (const sid of sids) t.is((await only.get(sid))?.sid, sid, `${sid} readable with the newest key alone`)
    // Expiry, owner and times as they were for the sessions only reencrypt() wrote.
    const after = new Map((await only.listUserSessions(owner)).map((s) => [s.id, s]))
    t.is(after.size, 30)
    for (const sid of sids.slice(10)) {
      const [b, a] = [before.get(sid), after.get(sid)]
      t.is(a.createdAt.getTime(), b.createdAt.getTime(), `${sid} created`)
      t.is(a.lastAccess.getTime(), b.lastAccess.getTime(), `${sid} last access`)
      t.is(a.expiresAt?.getTime(), b.expiresAt?.getTime(), `${sid} expiry`)
    }
  })

  test('encryption: reencrypt() racing saves loses no write', async (t) => {
    const [k1, k2] = [key('old'), key('new')]
    const first = makeStore({ encryption: { keys: [k1] } }, { shared: true })
    const sids = Array.from({ length: 300 }, (_, i) => `c${i}`)
    await Promise.all(sids.map((sid) => first.set(sid, session(60_000, { v: 0 }))))
    // Small steps: reencrypt() runs for many round trips.
    const rotated = sibling(first, { encryption: { keys: [k2, k1] }, scanCount: 4 })
    // An instance not rotated yet keeps saving under the old key while
    // reencrypt() runs: each session's last acknowledged save must be
    // what it holds after both. Each session's saves stop after a number
    // of its own, so some last saves land while reencrypt() is at them.
    const saver = sibling(first, { encryption: { keys: [k1] } })
    const acked = new Map(sids.map((sid) => [sid, 0]))
    let saving = true
    const loops = sids.map(async (sid, i) => {
      for (let v = 1; saving && v <= 1 + ((i * 7919) % 80); v++) {
        await saver.set(sid, session(60_000, { v }))
        acked.set(sid, v)
      }
    })
    const counts = await rotated.reencrypt()
    saving = false
    await Promise.all(loops)
    t.log(counts)
    t.is(counts.unreadable, 0)
    t.is(counts.reencrypted + counts.current + counts.raced, sids.length, JSON.stringify(counts))
    for (const sid of sids) t.is((await rotated.get(sid))?.v, acked.get(sid), sid)
  })

  test('encryption: bad key options throw a TypeError that shows no key', (t) => {
    const secret = randomBytes(32)
    const bad = [
      {},
      { keys: [] },
      { keys: [{ id: 'a', key: randomBytes(31) }] },
      { keys: [{ id: '', key: secret }] },
      { keys: [{ key: secret }] },
      { keys: [{ id: 'a', key: secret }, { id: 'a', key: randomBytes(32) }] },
      { keys: [{ id: 'a', key: secret.toString('hex').slice(2) }] },
      { keys: [{ id: 'a', key: 'not a key' }] },
      { keys: [{ id: 'a', key: secret }], allowPlaintext: 'yes' },
      { keys: [{ id: 'a', key: secret, extra: 1 }] },
      { keys: [{ id: 'a\n', key: secret }] },
    ]
    for (const encryption of bad) {
      const err = t.throws(() => makeStore({ encryption }), { instanceOf: TypeError }, JSON.stringify(Object.keys(encryption)))
      t.false(err.message.includes(secret.toString('hex')) || err.message.includes(secret.toString('base64')))
    }
    // The forms a key is kept in: hex, base64, base64url, Buffer.
    for (const form of [secret.toString('hex'), secret.toString('base64'), secret.toString('base64url'), secret]) {
      const store = makeStore({ encryption: { keys: [{ id: 'ok', key: form }] } })
      t.deepEqual(store.encryptionKeyIds, ['ok'])
      const shown = inspect(store, { depth: 6, showHidden: true })
      t.false(shown.includes(inspect(secret).slice(8, 40)), 'the key bytes are not in the store')
    }
  })
}
