'use strict'

// get / set / touch / destroy: values, promise and callback forms, order,
// and what another instance of the app sees.
const { Store } = require('express-session')
const { EventEmitter } = require('node:events')
const { namesSession, pickCounts, session, touched, asStored, sleep, viaCallback } = require('./util')

module.exports = (test, { makeStore, sibling }) => {
  test('set then get returns the session as JSON sees it; a missing one is null', async (t) => {
    const store = makeStore()
    const sess = session(60_000, { user: 'ada', n: 1, nested: { list: [1, 'two', null], flag: true }, text: 'é ✓ \u{1F600}' })
    t.is(await store.set('a', sess), undefined)
    t.deepEqual(await store.get('a'), asStored(sess))
    t.is(await store.get('nope'), null)
    // A second set replaces the first.
    const next = session(60_000, { user: 'ada', n: 2 })
    await store.set('a', next)
    t.deepEqual(await store.get('a'), asStored(next))
  })

  test('without a callback every call returns a promise of its result', async (t) => {
    const store = makeStore()
    const sess = session(60_000, { userId: 'ada' })
    const calls = {
      set: () => store.set('p', sess),
      get: () => store.get('p'),
      touch: () => store.touch('p', touched(sess, 60_000)),
      all: () => store.all(),
      ids: () => store.ids(),
      length: () => store.length(),
      listUserSessions: () => store.listUserSessions('ada'),
      stats: () => store.stats(),
      reindex: () => store.reindex(),
      destroyUserSessions: () => store.destroyUserSessions('nobody'),
      destroy: () => store.destroy('p'),
      clear: () => store.clear(),
    }
    const results = {}
    for (const [name, call] of Object.entries(calls)) {
      const p = call()
      t.true(p instanceof Promise, name)
      results[name] = await p
    }
    t.is(results.set, undefined)
    t.is(results.get.userId, 'ada')
    t.is(results.touch, undefined)
    t.deepEqual(results.all.map((s) => s.id), ['p'])
    t.deepEqual(results.ids, ['p'])
    t.is(results.length, 1)
    t.deepEqual(results.listUserSessions.map((s) => s.id), ['p'])
    t.deepEqual(pickCounts(results.stats), { sessions: 1, users: 1, active: 1 })
    t.deepEqual(results.reindex, { indexed: 1, skipped: 0 })
    t.is(results.destroyUserSessions, 0)
    t.is(results.destroy, undefined)
    t.is(results.clear, undefined)
    const closing = store.close()
    t.true(closing instanceof Promise)
    t.is(await closing, undefined)
  })

  test('with a callback every call returns nothing and calls back once, after returning', async (t) => {
    const store = makeStore()
    const sess = session(60_000, { userId: 'ada' })
    const m = (name) => store[name].bind(store)
    const cases = [
      ['set', [m('set'), 'c', sess], undefined],
      ['get', [m('get'), 'c'], asStored(sess)],
      ['get (missing)', [m('get'), 'missing'], null],
      ['touch', [m('touch'), 'c', touched(sess, 60_000)], undefined],
      ['all', [m('all')], null],
      ['ids', [m('ids')], ['c']],
      ['length', [m('length')], 1],
      ['listUserSessions', [m('listUserSessions'), 'ada'], null],
      ['stats', [m('stats')], { sessions: 1, users: 1, active: 1 }],
      ['stats with options', [m('stats'), { activeWithin: 60 }], { sessions: 1, users: 1, active: 1 }],
      ['reindex', [m('reindex')], { indexed: 1, skipped: 0 }],
      ['destroyUserSessions with options', [m('destroyUserSessions'), 'ada', { except: 'c' }], 0],
      ['destroyUserSessions', [m('destroyUserSessions'), 'nobody'], 0],
      ['destroy', [m('destroy'), 'c'], undefined],
      ['clear', [m('clear')], undefined],
      // Bad input is reported through the callback too, never thrown.
      ['get (bad sid)', [m('get'), 42], 'ERR_INVALID_ARG'],
      ['set (bad session)', [m('set'), 'x', null], 'ERR_INVALID_ARG'],
      ['destroy (bad sid)', [m('destroy'), ''], 'ERR_INVALID_ARG'],
      ['listUserSessions (bad id)', [m('listUserSessions'), {}], 'ERR_INVALID_ARG'],
      ['close', [m('close')], undefined],
      ['get (closed)', [m('get'), 'c'], 'ERR_STORE_CLOSED'],
    ]
    for (const [name, args, expected] of cases) {
      const { ret, calls } = await viaCallback(...args)
      t.is(ret, undefined, `${name} returned something`)
      t.is(calls.length, 1, `${name}: callback called ${calls.length} times`)
      if (calls.length !== 1) continue
      t.true(calls[0].afterReturn, `${name}: callback called before the call returned`)
      const [err, value] = calls[0].args
      if (typeof expected === 'string') {
        t.is(err?.code, expected, name)
        continue
      }
      t.falsy(err, `${name}: ${err}`)
      if (name === 'all') t.deepEqual(value.map((s) => s.id), ['c'])
      else if (name === 'listUserSessions') t.deepEqual(value.map((s) => s.id), ['c'])
      else if (name.startsWith('stats')) t.deepEqual(pickCounts(value), expected, name)
      else if (expected !== undefined) t.deepEqual(value, expected, name)
    }
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
      store.set('other', session(60_000, { v: 3 })),
      store.get('other'),
    ])
    t.is(results[1].v, 1)
    t.is(results[3].v, 2)
    t.is(results[5], null)
    t.is(results[7].v, 3)
  })

  test('many concurrent operations all settle with the right values', async (t) => {
    const store = makeStore()
    const ids = Array.from({ length: 1000 }, (_, i) => `m${i}`)
    await Promise.all(ids.map((id, i) => store.set(id, session(60_000, { i }))))
    const got = await Promise.all(ids.map((id) => store.get(id)))
    t.deepEqual(got.map((s) => s.i), ids.map((_, i) => i))
    await Promise.all(ids.filter((_, i) => i % 2).map((id) => store.destroy(id)))
    t.is(await store.length(), 500)
    const again = await Promise.all(ids.map((id) => store.get(id)))
    t.deepEqual(again.map((s) => (s === null ? null : s.i)), ids.map((_, i) => (i % 2 ? null : i)))
  })

  test('destroy removes the session, with a callback, a promise, or neither', async (t) => {
    const store = makeStore()
    for (const sid of ['d1', 'd2', 'd3']) await store.set(sid, session())
    await new Promise((resolve, reject) => store.destroy('d1', (err) => (err ? reject(err) : resolve())))
    await store.destroy('d2')
    store.destroy('d3') // fired and forgotten, as express-session may
    await sleep(50)
    for (const sid of ['d1', 'd2', 'd3']) t.is(await store.get(sid), null, sid)
    t.is(await store.length(), 0)
    // Destroying what is not there is not an error.
    t.is(await store.destroy('never-was'), undefined)
  })

  test('Dates go through toJSON, as express-session hands them over', async (t) => {
    const store = makeStore({ readExpiry: true })
    const expires = new Date(Date.now() + 60_000)
    await store.set('date', { cookie: { originalMaxAge: 60_000, expires }, at: new Date(0) })
    const got = await store.get('date')
    t.is(got.cookie.expires, expires.toISOString())
    t.is(got.at, new Date(0).toISOString())
    // A touch with a Date is read back the same way.
    const later = new Date(Date.now() + 90_000)
    await store.touch('date', { cookie: { originalMaxAge: 90_000, expires: later }, at: new Date(0) })
    t.is((await store.get('date')).cookie.expires, later.toISOString())
  })

  test('a custom serializer is used both ways', async (t) => {
    const serializer = {
      stringify: (s) => 'X' + JSON.stringify(s),
      parse: (text) => JSON.parse(text.slice(1)),
    }
    const store = makeStore({ serializer }, { shared: true })
    t.is(store.serializer, serializer)
    await store.set('sid-serializer', session(60_000, { a: 1 }))
    t.is((await store.get('sid-serializer')).a, 1)
    t.is((await store.all())[0].a, 1)
    // What was stored is the serializer's text: JSON cannot read it.
    const plain = sibling(store)
    const err = await t.throwsAsync(plain.get('sid-serializer'))
    t.is(err.code, 'ERR_SESSION_CORRUPT')
    namesSession(t, err, store, 'sid-serializer')
    t.is(err.key, `${store.prefix}sid-serializer`)
  })

  test('two store instances on the same data see each other\'s writes', async (t) => {
    const one = makeStore({}, { shared: true })
    const two = sibling(one)
    await one.set('x', session(60_000, { from: 'one', userId: 'ada' }))
    t.is((await two.get('x')).from, 'one')
    await two.set('x', session(60_000, { from: 'two', userId: 'ada' }))
    t.is((await one.get('x')).from, 'two')
    t.deepEqual((await one.listUserSessions('ada')).map((s) => s.id), ['x'])
    await two.destroy('x')
    t.is(await one.get('x'), null)
    t.is(await one.length(), 0)
    // A store on another prefix sees none of it.
    const other = makeStore({}, { shared: true })
    await one.set('y', session())
    t.is(await other.get('y'), null)
    t.is(await other.length(), 0)
  })

  test('the store is an express-session Store with connect-redis\'s options readable', (t) => {
    const store = makeStore({ ttl: 300 })
    t.true(store instanceof Store)
    t.true(store instanceof EventEmitter)
    for (const name of ['regenerate', 'load', 'createSession']) t.is(typeof store[name], 'function', name)
    t.is(store.ttl, 300)
    t.is(store.serializer, JSON)
    t.false(store.disableTTL)
    t.false(store.disableTouch)
    t.is(store.scanCount, 100)
    t.true(store.prefix.startsWith('conf:'))
  })

  test('load() gives a Session of the stored data, or nothing', async (t) => {
    const store = makeStore()
    await store.set('l', session(60_000, { views: 3 }))
    const loaded = await new Promise((resolve, reject) => store.load('l', (err, s) => (err ? reject(err) : resolve(s))))
    t.is(loaded.views, 3)
    t.is(typeof loaded.cookie.maxAge, 'number')
    t.is(loaded.id, 'l')
    const missing = await new Promise((resolve, reject) => store.load('none', (err, s) => (err ? reject(err) : resolve(s))))
    t.is(missing, undefined)
  })
}
