'use strict'

// The package's entry points as users import them (self-referenced by name
// through package.json "exports"): CommonJS, ESM, and the connect-redis alias.
const test = require('ava')
const fs = require('node:fs')
const path = require('node:path')
const { Store } = require('express-session')

test('require and import give the same class, which is an express-session Store', async (t) => {
  const cjs = require('redis-session-store')
  const esm = await import('redis-session-store')
  t.is(esm.RedisSessionStore, cjs.RedisSessionStore)
  t.is(cjs.RedisStore, cjs.RedisSessionStore)
  t.is(typeof esm.RedisSessionStoreError, 'function')
  t.true(cjs.RedisSessionStore.prototype instanceof Store)
})

// Error codes are defined once, in Rust; the public types must name each.
test('every error code the native core reports is in the public types', (t) => {
  const { NativeStore } = require('../lib/native').loadBinding()
  const types = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')
  const codes = NativeStore.errorCodes()
  t.true(codes.length >= 8)
  for (const code of codes) t.true(types.includes(`'${code}'`), code)
})
