'use strict'

// The same errors on every backend: bad input (ERR_INVALID_ARG), sessions
// that cannot be stored (ERR_SERIALIZE, ERR_SESSION_TOO_LARGE), and calls
// after close (ERR_STORE_CLOSED); close() settles what is pending.
const { RedisSessionStore, RedisSessionStoreError } = require('../..')
const { counts, session, sleep, listedIds } = require('./util')

const BAD_SIDS = {
  'a number': 1,
  undefined,
  'an empty string': '',
  'an object': {},
  'over 4096 characters': 'x'.repeat(4097),
  'control characters': 'a\r\nb',
  'a NUL': 'a\u0000b',
  // Not well-formed UTF-16: both would be 'a\uFFFDb' in Rust, one key.
  'a lone high surrogate': 'a\ud800b',
  'a lone low surrogate': 'a\udc00b',
}

async function codeOf(t, promise, what) {
  const err = await t.throwsAsync(promise, undefined, what)
  if (!err) return undefined
  t.true(err instanceof RedisSessionStoreError, `${what}: ${err}`)
  t.not(err.code, 'ENOENT', `${what}: ENOENT would make express-session take a failure for a logout`)
  return err.code
}

module.exports = (test, { makeStore, sibling, options }) => {
  test('a bad sid is ERR_INVALID_ARG for every call that takes one, and nothing is written', async (t) => {
    const store = makeStore()
    for (const [name, sid] of Object.entries(BAD_SIDS)) {
      for (const [call, run] of [
        ['get', () => store.get(sid)],
        ['set', () => store.set(sid, session())],
        ['touch', () => store.touch(sid, session())],
        ['destroy', () => store.destroy(sid)],
        // (except: undefined is no except at all)
        ...(sid === undefined ? [] : [['destroyUserSessions except', () => store.destroyUserSessions('ada', { except: sid })]]),
        ['destroyUserSessions except list', () => store.destroyUserSessions('ada', { except: ['ok', sid] })],
      ]) {
        t.is(await codeOf(t, run(), `${call} with ${name}`), 'ERR_INVALID_ARG', `${call} with ${name}`)
      }
    }
    t.is(await store.length(), 0)
    // A sid of exactly 4096 characters is fine.
    await store.set('y'.repeat(4096), session())
    t.truthy(await store.get('y'.repeat(4096)))
    // A surrogate pair (well-formed) is fine.
    await store.set('a\ud83d\ude00b', session())
    t.truthy(await store.get('a\ud83d\ude00b'))
  })

  test('a session that is not an object is ERR_INVALID_ARG, and nothing is written', async (t) => {
    const store = makeStore()
    for (const bad of [null, undefined, 'str', 5, true]) {
      t.is(await codeOf(t, store.set('x', bad), String(bad)), 'ERR_INVALID_ARG')
    }
    t.is(await store.get('x'), null)
    t.is(await store.length(), 0)
  })

  test('a bad user id is ERR_INVALID_ARG for the per-user calls', async (t) => {
    const store = makeStore()
    await store.set('keep', session(60_000, { userId: 'ada' }))
    for (const bad of [undefined, null, '', {}, [], true, ['ada'], () => 'ada', NaN, Infinity, 'u'.repeat(1025), 'ada\ud800', '\udfffada']) {
      const what = typeof bad === 'string' ? `a string of ${bad.length}` : String(bad)
      t.is(await codeOf(t, store.listUserSessions(bad), `listUserSessions(${what})`), 'ERR_INVALID_ARG')
      t.is(await codeOf(t, store.destroyUserSessions(bad), `destroyUserSessions(${what})`), 'ERR_INVALID_ARG')
    }
    t.truthy(await store.get('keep'))
    t.deepEqual(await listedIds(store, 'ada'), ['keep'])
  })

  test('an owner that is not a valid user id makes set fail with ERR_INVALID_ARG, writing nothing', async (t) => {
    const store = makeStore({ userId: (sess) => sess.owner })
    await store.set('fine', session(60_000, { owner: 'ada' }))
    for (const bad of [{ id: 1 }, true, 'o'.repeat(1025), NaN, 'ada\ud800']) {
      const what = typeof bad === 'string' ? `a string of ${bad.length}` : JSON.stringify(bad)
      t.is(await codeOf(t, store.set('bad', session(60_000, { owner: bad })), what), 'ERR_INVALID_ARG')
      t.is(await codeOf(t, store.set('fine', session(60_000, { owner: bad, changed: 1 })), what), 'ERR_INVALID_ARG')
    }
    t.is(await store.get('bad'), null)
    t.is((await store.get('fine')).changed, undefined)
    t.deepEqual(await listedIds(store, 'ada'), ['fine'])
    t.is(await store.length(), 1)
  })

  test('a userId function that throws makes set fail, writing nothing', async (t) => {
    const store = makeStore({
      userId: (sess) => {
        if (sess.boom) throw new Error('boom')
        return sess.owner
      },
    })
    await store.set('fine', session(60_000, { owner: 'ada' }))
    await t.throwsAsync(store.set('bad', session(60_000, { owner: 'ada', boom: true })), { message: /boom/ })
    await t.throwsAsync(store.set('fine', session(60_000, { owner: 'ada', boom: true, changed: 1 })))
    const err = await new Promise((resolve) => store.set('bad2', session(60_000, { boom: true }), resolve))
    t.truthy(err)
    t.is(await store.get('bad'), null)
    t.is(await store.get('bad2'), null)
    t.is((await store.get('fine')).changed, undefined)
    t.is(await store.length(), 1)
  })

  test('a ttl function that returns no number is ERR_INVALID_ARG, and nothing is written', async (t) => {
    const store = makeStore({ ttl: (sess) => sess.ttl })
    for (const bad of ['soon', undefined, null, NaN]) {
      t.is(await codeOf(t, store.set('x', session(60_000, { ttl: bad })), String(bad)), 'ERR_INVALID_ARG')
    }
    t.is(await store.get('x'), null)
    t.is(await store.length(), 0)
  })

  test('activeWithin that is not a non-negative number is ERR_INVALID_ARG', async (t) => {
    const store = makeStore()
    for (const bad of [-1, NaN, Infinity, '300', {}]) {
      t.is(await codeOf(t, store.stats({ activeWithin: bad }), String(bad)), 'ERR_INVALID_ARG')
    }
    t.deepEqual(await counts(store, { activeWithin: 0 }), { sessions: 0, users: 0, active: 0 })
  })

  test('a session that cannot be serialized is ERR_SERIALIZE, and nothing is written', async (t) => {
    const store = makeStore()
    await store.set('kept', session(60_000, { v: 1 }))
    const circular = session()
    circular.self = circular
    t.is(await codeOf(t, store.set('circ', circular), 'circular'), 'ERR_SERIALIZE')
    t.is(await codeOf(t, store.set('big', session(60_000, { n: 10n })), 'BigInt'), 'ERR_SERIALIZE')
    t.is(await codeOf(t, store.set('kept', session(60_000, { v: 2, n: 10n })), 'BigInt over a session'), 'ERR_SERIALIZE')
    t.is(await store.get('circ'), null)
    t.is(await store.get('big'), null)
    t.is((await store.get('kept')).v, 1)
    t.is(await store.length(), 1)
    // A serializer that returns no string, or throws.
    const odd = makeStore({ serializer: { stringify: (s) => (s.throw ? JSON.parse('{') : s.num ? 42 : JSON.stringify(s)), parse: JSON.parse } })
    t.is(await codeOf(t, odd.set('n', session(60_000, { num: true })), 'stringify returned a number'), 'ERR_SERIALIZE')
    t.is(await codeOf(t, odd.set('n', session(60_000, { throw: true })), 'stringify threw'), 'ERR_SERIALIZE')
    t.is(await odd.length(), 0)
  })

  test('a session over maxSessionBytes is ERR_SESSION_TOO_LARGE, and nothing is written', async (t) => {
    const store = makeStore({ maxSessionBytes: 1000 })
    t.is(store.maxSessionBytes, 1000)
    await store.set('fits', session(60_000, { pad: 'x'.repeat(800) }))
    // 500 é are 1000 bytes of UTF-8: bytes are counted, not characters.
    t.is(await codeOf(t, store.set('big', session(60_000, { pad: 'é'.repeat(500) })), 'new'), 'ERR_SESSION_TOO_LARGE')
    t.is(await codeOf(t, store.set('fits', session(60_000, { pad: 'x'.repeat(2000) })), 'over a session'), 'ERR_SESSION_TOO_LARGE')
    t.is(await store.get('big'), null)
    t.is((await store.get('fits')).pad.length, 800)
    t.is(await store.length(), 1)
    // With a ttl function touch rewrites the value, and is held to the same limit.
    const rewriting = makeStore({ maxSessionBytes: 1000, ttl: () => 600 })
    await rewriting.set('r', session(60_000, { pad: 'x'.repeat(800) }))
    t.is(await codeOf(t, rewriting.touch('r', session(60_000, { pad: 'x'.repeat(2000) })), 'touch'), 'ERR_SESSION_TOO_LARGE')
    t.is((await rewriting.get('r')).pad.length, 800)
  })

  test('one bad call does not fail the others issued in the same tick', async (t) => {
    const store = makeStore()
    const circular = session()
    circular.self = circular
    const results = await Promise.allSettled([
      store.set('ok1', session()),
      store.get(''),
      store.set('circ', circular),
      store.get('ok1'),
      store.set('ok2', session(60_000, { userId: 'ada' })),
      store.listUserSessions(''),
      store.length(),
    ])
    t.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled'])
    t.truthy(results[3].value.cookie)
    t.is(results[6].value, 2)
  })

  test('after close() every call fails with ERR_STORE_CLOSED', async (t) => {
    const store = makeStore()
    await store.set('a', session())
    await store.close()
    for (const [name, run] of Object.entries({
      get: () => store.get('a'),
      set: () => store.set('a', session()),
      touch: () => store.touch('a', session()),
      destroy: () => store.destroy('a'),
      all: () => store.all(),
      ids: () => store.ids(),
      length: () => store.length(),
      clear: () => store.clear(),
      listUserSessions: () => store.listUserSessions('ada'),
      destroyUserSessions: () => store.destroyUserSessions('ada'),
      stats: () => store.stats(),
      reindex: () => store.reindex(),
    })) {
      t.is(await codeOf(t, run(), name), 'ERR_STORE_CLOSED', name)
    }
    const viaCallback = await new Promise((resolve) => store.get('a', resolve))
    t.is(viaCallback?.code, 'ERR_STORE_CLOSED')
    // Closing again is harmless.
    await store.close()
  })

  test('close() settles every call made before it, and what it acknowledged was written', async (t) => {
    const store = makeStore({}, { shared: true })
    const reader = sibling(store)
    await store.set('warm', session())
    const sids = Array.from({ length: 200 }, (_, i) => `c${i}`)
    // The call over many sessions first: it sends what is queued before it,
    // and the sets and gets after it are still queued when close() comes.
    const calls = [
      store.length().then(() => 'ok', (e) => e.code),
      ...sids.map((sid) => store.set(sid, session(60_000, { sid })).then(() => 'ok', (e) => e.code)),
      ...sids.map((sid) => store.get(sid).then(() => 'ok', (e) => e.code)),
    ]
    await store.close()
    const outcomes = await Promise.race([Promise.all(calls), sleep(10_000).then(() => null)])
    t.not(outcomes, null, 'calls were still pending 10 s after close()')
    if (!outcomes) return
    const codes = new Set(outcomes.filter((o) => o !== 'ok'))
    for (const code of codes) t.true(typeof code === 'string' && code.startsWith('ERR_'), String(code))
    // Every set that resolved is there for another instance.
    const acknowledged = sids.filter((_, i) => outcomes[i + 1] === 'ok')
    const got = await Promise.all(acknowledged.map((sid) => reader.get(sid)))
    t.deepEqual(got.map((s) => s?.sid), acknowledged)
    t.log(`${acknowledged.length} of ${sids.length} sets acknowledged before close()`)
  })

  test('invalid options make the constructor throw a TypeError naming the option', (t) => {
    for (const [bad, name] of [
      [{ ttl: -1 }, 'ttl'],
      [{ prefix: 1 }, 'prefix'],
      [{ idleTimeout: -1 }, 'idleTimeout'],
      [{ absoluteTimeout: 'x' }, 'absoluteTimeout'],
      [{ maxSessionsPerUser: 0 }, 'maxSessionsPerUser'],
      [{ userId: 'userId' }, 'userId'],
      [{ serializer: {} }, 'serializer'],
      [{ maxSessionBytes: 0 }, 'maxSessionBytes'],
      [{ unknownOption: 1 }, 'unknownOption'],
    ]) {
      const err = t.throws(() => new RedisSessionStore({ ...options(), ...bad }), { instanceOf: TypeError }, JSON.stringify(bad))
      if (err) t.true(err.message.includes(name), err.message)
    }
  })
}
