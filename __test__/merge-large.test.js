'use strict'

// Merging is linear in a session's top-level keys: a conflicting save of a
// session at the cap (10,000 keys) settles within commandTimeout and some
// slack. Quadratic, it took ~0.9 s on a 2-core machine, where it now takes
// ~30 ms. The embedded engine does not time calls out, so the bound is the
// test's; memory:// keeps disk and network out of it.
const test = require('ava')
const { RedisSessionStore } = require('..')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const many = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, `v${i}`]))
const session = (extra) => ({ cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString() }, ...extra })

test('merge: a conflicting save of a session with 10,000 top-level keys settles within commandTimeout', async (t) => {
  const commandTimeout = 250
  const store = new RedisSessionStore({ url: 'memory://', merge: true, commandTimeout })
  t.teardown(() => store.close())
  await store.set('s', session(many(9_990)))
  const [a, b] = [await store.get('s'), await store.get('s')]
  a.a = 1
  b.b = 2
  await store.set('s', a)
  // Conflicts with a's save: merged on the writer.
  const late = sleep(commandTimeout + 250).then(() => 'not settled within commandTimeout + 250 ms')
  t.is(await Promise.race([store.set('s', b).then(() => 'saved'), late]), 'saved')
  const got = await store.get('s')
  t.is(got.a, 1)
  t.is(got.b, 2)
  t.is(got.k9989, 'v9989')
})
