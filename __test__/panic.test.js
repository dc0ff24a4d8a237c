'use strict'

// A Rust panic fails only the calls it was running, with ERR_INTERNAL, and
// the store goes on (README, "No crash"). The panics are real ones, made by
// the native core's test hook `panicOnce(place)`: "writer" (while sending the
// next batch), "admin" (in the next call over many sessions), "exec" (while
// taking the next batch from JS).
const test = require('ava')
const { storeSuite, session } = require('./helpers/suite')

const { makeStore } = storeSuite(test, 'panic')

// The dev build (`npm run build`, cargo feature test-hooks) has the hook;
// the release builds do not.
const { NativeStore } = require('../lib/native').loadBinding()
test('the dev build has the panic hook these tests need', (t) => {
  t.is(typeof NativeStore.prototype.panicOnce, 'function', 'build with `npm run build` (feature test-hooks)')
})
const hookTest = test

const outcome = (promise) => promise.then((value) => ({ value }), (err) => ({ code: err.code, message: err.message }))

// The store still answers: a write and a read of it, and what was stored before.
async function stillWorks(t, store, what) {
  await store.set(`after-${what}`, session(60_000, { userId: 'ada', what }))
  t.is((await store.get(`after-${what}`)).what, what, `${what}: the store works after the panic`)
  t.is((await store.get('before')).userId, 'ada', `${what}: the session stored before is intact`)
}

hookTest('a panic in the writer fails the calls of that batch with ERR_INTERNAL; the store goes on', async (t) => {
  const store = makeStore()
  await store.set('before', session(60_000, { userId: 'ada' }))
  store._native.panicOnce('writer')
  const batch = await Promise.all([outcome(store.set('x', session())), outcome(store.get('before')), outcome(store.destroy('y'))])
  for (const o of batch) t.is(o.code, 'ERR_INTERNAL', JSON.stringify(o))
  // With callbacks too: the same error, once.
  store._native.panicOnce('writer')
  const viaCallback = await new Promise((resolve) => store.get('before', (err) => resolve(err)))
  t.is(viaCallback.code, 'ERR_INTERNAL')
  await stillWorks(t, store, 'writer')
  t.is(await store.get('x'), null)
})

hookTest('a panic in a call over many sessions fails that call with ERR_INTERNAL; the writer is not held', async (t) => {
  const store = makeStore()
  await store.set('before', session(60_000, { userId: 'ada' }))
  await store.set('other', session(60_000, { userId: 'ada' }))
  // destroyUserSessions holds the writer while it runs: the set after it
  // must still go through once it has panicked.
  store._native.panicOnce('admin')
  const [destroyed, later] = await Promise.all([outcome(store.destroyUserSessions('ada', { except: 'before' })), outcome(store.set('later', session()))])
  t.is(destroyed.code, 'ERR_INTERNAL', JSON.stringify(destroyed))
  t.deepEqual(later, { value: undefined })
  store._native.panicOnce('admin')
  t.is((await outcome(store.listUserSessions('ada'))).code, 'ERR_INTERNAL')
  await stillWorks(t, store, 'admin')
  t.is(await store.destroyUserSessions('ada', { except: ['before', 'after-admin'] }), 1)
})

hookTest('a panic while taking a batch from JS fails its calls with ERR_INTERNAL; the store goes on', async (t) => {
  const store = makeStore()
  await store.set('before', session(60_000, { userId: 'ada' }))
  store._native.panicOnce('exec')
  const batch = await Promise.all([outcome(store.set('x', session())), outcome(store.get('before'))])
  for (const o of batch) t.is(o.code, 'ERR_INTERNAL', JSON.stringify(o))
  await stillWorks(t, store, 'exec')
})
