'use strict'

const { invalidArg } = require('./errors')
const { isTimeout, MAX_TIMEOUT, MAX_SESSIONS_PER_USER } = require('./options')

// A session's policy: its idle and absolute limits and its owner's session
// cap, from numbers (the same for every session) or functions of the
// session. A function's bad return fails that call before anything is
// written; `undefined` (or null) means no limit for this session.
class Policy {
  constructor(o) {
    this.idle = o.idleTimeout
    this.absolute = o.absoluteTimeout
    this.cap = o.maxSessionsPerUser
    // Numbers go to Rust once; functions make every write carry its limits.
    this.perSession = typeof this.idle === 'function' || typeof this.absolute === 'function'
  }

  // The options Rust takes: numbers only, and what they stand for.
  native(o) {
    return {
      ...o,
      idleTimeout: typeof this.idle === 'number' ? this.idle : undefined,
      absoluteTimeout: typeof this.absolute === 'number' ? this.absolute : undefined,
      sessionLimits: this.perSession,
      countLogins: this.cap !== undefined,
    }
  }

  // [idle ms, absolute ms] of a session for a perSession store (NaN: none).
  limits(sess) {
    return [timeoutMs('idleTimeout', this.idle, sess), timeoutMs('absoluteTimeout', this.absolute, sess)]
  }

  // How many sessions the owner of `sess` may keep (undefined: no cap).
  capOf(sess) {
    if (typeof this.cap !== 'function') return this.cap
    const n = this.cap(sess)
    if (n === undefined || n === null) return undefined
    if (!Number.isInteger(n) || n < 1 || n > MAX_SESSIONS_PER_USER) {
      throw invalidArg(`the maxSessionsPerUser function must return an integer from 1 to ${MAX_SESSIONS_PER_USER} or undefined, got ${describe(n)}`)
    }
    return n
  }
}

function timeoutMs(name, limit, sess) {
  if (limit === undefined) return NaN
  if (typeof limit === 'number') return limit * 1000
  const seconds = limit(sess)
  if (seconds === undefined || seconds === null) return NaN
  if (!isTimeout(seconds)) {
    throw invalidArg(`the ${name} function must return a positive number of seconds (up to ${MAX_TIMEOUT}) or undefined, got ${describe(seconds)}`)
  }
  return seconds * 1000
}

function describe(value) {
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : `a ${typeof value}`
}

module.exports = { Policy }
