'use strict'

// Errors carry a stable `code`. None is ENOENT: express-session treats that
// code as "not found", and a failing Redis must not look like a logged-out user.
class RedisSessionStoreError extends Error {
  constructor(code, message, cause) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'RedisSessionStoreError'
    this.code = code
  }
}

// The native layer's errors carry the store's code (src/error.rs); anything
// else (napi's own) is wrapped as ERR_NATIVE.
function fromNative(err) {
  if (err && typeof err.code === 'string' && err.code.startsWith('ERR_')) {
    return new RedisSessionStoreError(err.code, err.message)
  }
  return new RedisSessionStoreError('ERR_NATIVE', String((err && err.message) || err), err)
}

function invalidArg(message) {
  return new RedisSessionStoreError('ERR_INVALID_ARG', message)
}

module.exports = { RedisSessionStoreError, fromNative, invalidArg }
