'use strict'

// The package's entry points as users import them (self-referenced by name
// through package.json "exports"): CommonJS, ESM, and the connect-redis alias.
const test = require('ava')
const { Store } = require('express-session')

test('require and import give the same class, which is an express-session Store', async (t) => {
  const cjs = require('redis-session-store')
  const esm = await import('redis-session-store')
  t.is(esm.RedisSessionStore, cjs.RedisSessionStore)
  t.is(cjs.RedisStore, cjs.RedisSessionStore)
  t.is(typeof esm.RedisSessionStoreError, 'function')
  t.true(cjs.RedisSessionStore.prototype instanceof Store)
})
