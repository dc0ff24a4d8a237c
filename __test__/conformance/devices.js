'use strict'

// "My devices": device data recorded beside a session, listed with an
// opaque handle, revoked by handle; sealed like sessions when encrypted.
const { randomBytes, randomUUID } = require('node:crypto')
const { session, user, listedIds, sorted, viaCallback } = require('./util')

const sid = () => `sid-${randomUUID()}`
const key = (id) => ({ id, key: randomBytes(32) })
const laptop = { userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0', ip: '203.0.113.7', lastIp: '203.0.113.9' }

module.exports = (test, { makeStore, sibling }) => {
  test('devices: recorded beside a live session only, listed with a stable handle that does not hold the id, gone with destroy', async (t) => {
    const store = makeStore()
    const ada = user()
    const [a, b] = [sid(), sid()]
    await store.set(a, session(60_000, { userId: ada }))
    await store.set(b, session(60_000, { userId: ada }))
    t.true(await store.recordDevice(a, laptop))
    // Nothing is kept for a session that does not exist.
    t.false(await store.recordDevice(sid(), laptop))

    let list = await store.listUserSessions(ada)
    t.deepEqual(sorted(list.map((s) => s.id)), sorted([a, b]))
    const la = list.find((s) => s.id === a)
    const lb = list.find((s) => s.id === b)
    t.deepEqual(la.device, laptop)
    t.is(lb.device, null)
    for (const s of list) {
      t.regex(s.handle, /^[A-Za-z0-9_-]{22}$/)
      t.is(s.handle, store.handleOf(s.id))
      t.false(s.handle.includes(s.id))
      t.false(s.id.includes(s.handle))
    }
    t.not(la.handle, lb.handle)
    // The session's value does not hold the device: a get reads no more.
    t.false('device' in (await store.get(a)) || 'userAgent' in (await store.get(a)))

    // Stable over the session's life: a touch and a save keep the handle;
    // a later write replaces the device data.
    await store.touch(a, session(90_000, { userId: ada }))
    t.true(await store.recordDevice(a, { ...laptop, lastIp: '198.51.100.1' }))
    list = await store.listUserSessions(ada)
    t.is(list.find((s) => s.id === a).handle, la.handle)
    t.is(list.find((s) => s.id === a).device.lastIp, '198.51.100.1')

    // A logout removes it: nothing can be recorded for the session again.
    await store.destroy(a)
    t.false(await store.recordDevice(a, laptop))
    t.deepEqual(await listedIds(store, ada), [b])
    const recorded = await viaCallback(store.recordDevice.bind(store), b, { userAgent: 'x'.repeat(1000) })
    t.deepEqual(recorded.calls, [{ afterReturn: true, args: [null, true] }])
    t.is(recorded.ret, undefined)
    const capped = (await store.listUserSessions(ada))[0].device
    t.deepEqual(capped, { userAgent: 'x'.repeat(256), ip: null, lastIp: null })
    const bad = await t.throwsAsync(store.recordDevice(b, { ip: 7 }))
    t.is(bad.code, 'ERR_INVALID_ARG')
  })

  test('devices: revokeUserSession ends the user\'s own session by handle, as a logout; another user\'s handle or a malformed one: false', async (t) => {
    const store = makeStore()
    const [ada, bob] = [user(), user()]
    const [a, b, c] = [sid(), sid(), sid()]
    await store.set(a, session(60_000, { userId: ada }))
    await store.set(b, session(60_000, { userId: ada }))
    await store.set(c, session(60_000, { userId: bob }))
    await store.recordDevice(a, laptop)

    t.false(await store.revokeUserSession(ada, store.handleOf(c)))
    t.not(await store.get(c), null)
    for (const handle of ['', 'x', c, `${store.handleOf(a)}=`, 42, null]) {
      t.false(await store.revokeUserSession(ada, handle), String(handle))
    }
    t.is((await t.throwsAsync(store.revokeUserSession({ id: ada }, store.handleOf(a)))).code, 'ERR_INVALID_ARG')

    t.true(await store.revokeUserSession(ada, store.handleOf(a)))
    t.is(await store.get(a), null)
    t.deepEqual(await listedIds(store, ada), [b])
    // A logout: a request still running cannot bring the session back.
    await store.set(a, session(60_000, { userId: ada }))
    t.is(await store.get(a), null)
    t.false(await store.recordDevice(a, laptop))
    t.false(await store.revokeUserSession(ada, store.handleOf(a)))

    const revoked = await viaCallback(store.revokeUserSession.bind(store), ada, store.handleOf(b))
    t.deepEqual(revoked.calls, [{ afterReturn: true, args: [null, true] }])
    t.deepEqual(await listedIds(store, ada), [])
    t.deepEqual(await listedIds(store, bob), [c])
  })

  test('devices: revokeUserSession ends a session whose value does not open; nothing blocks a logout', async (t) => {
    const writer = makeStore({ encryption: { keys: [key('k1')] } }, { shared: true })
    const ada = user()
    const s = sid()
    await writer.set(s, session(60_000, { userId: ada }))
    // Another instance without the key cannot read the session, but ends it.
    const reader = sibling(writer, { encryption: { keys: [key('k2')] } })
    const [listed] = await reader.listUserSessions(ada)
    t.is(listed.unreadable, true)
    t.false(JSON.stringify(listed.handle).includes(s))
    t.true(await reader.revokeUserSession(ada, writer.handleOf(s)))
    t.is(await writer.get(s), null)
  })

  test('devices: with encryption the device data is sealed: a store without the key reads none', async (t) => {
    const plain = makeStore({}, { shared: true })
    const sealed = sibling(plain, { encryption: { keys: [key('k1')], allowPlaintext: true } })
    const ada = user()
    const s = sid()
    // A plaintext session both read, with device data written sealed.
    await plain.set(s, session(60_000, { userId: ada }))
    t.true(await sealed.recordDevice(s, laptop))
    t.deepEqual((await sealed.listUserSessions(ada))[0].device, laptop)
    const seen = await plain.listUserSessions(ada)
    t.deepEqual(seen.map((x) => x.id), [s])
    t.is(seen[0].device, null)
    // Under another key it does not open either.
    const other = sibling(plain, { encryption: { keys: [key('k2')], allowPlaintext: true } })
    t.is((await other.listUserSessions(ada))[0].device, null)

    const encrypted = makeStore({ encryption: { keys: [key('k1')] } })
    const e = sid()
    await encrypted.set(e, session(60_000, { userId: ada }))
    t.true(await encrypted.recordDevice(e, laptop))
    t.deepEqual((await encrypted.listUserSessions(ada))[0].device, laptop)
  })
}
