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

// The native layer reports "CODE: message" (see src/error.rs).
function fromNative(err) {
  const text = String((err && err.message) || err)
  const m = /^(ERR_[A-Z_]+): ([\s\S]*)$/.exec(text)
  return m ? new RedisSessionStoreError(m[1], m[2]) : new RedisSessionStoreError('ERR_NATIVE', text, err)
}

function invalidArg(message) {
  return new RedisSessionStoreError('ERR_INVALID_ARG', message)
}

module.exports = { RedisSessionStoreError, fromNative, invalidArg }
