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
function fromNative(err, target) {
  if (err && typeof err.code === 'string' && err.code.startsWith('ERR_')) {
    return new RedisSessionStoreError(err.code, atTarget(err.code, err.message, target))
  }
  return new RedisSessionStoreError('ERR_NATIVE', String((err && err.message) || err), err)
}

// Where the store connects, as errors name it: host:port, never a login.
function targetOf(o) {
  const hostPort = (url) => {
    const m = /^rediss?:\/\/(?:[^@/]*@)?([^/?#]+)/.exec(url)
    return m ? m[1] : undefined
  }
  if (o.sentinel) return `the master "${o.sentinel.name}" of the sentinels at ${o.sentinel.nodes.map(hostPort).join(', ')}`
  if (o.cluster) return `the cluster at ${o.cluster.nodes.map(hostPort).join(', ')}`
  const at = hostPort(o.url)
  if (!at) return undefined
  return o.url.startsWith('rediss://') ? `${at}, over TLS` : at
}

// Errors of reaching Redis say where: the same message from two servers
// is otherwise a puzzle in a log.
const CONNECTION = new Set(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT'])
function atTarget(code, message, target) {
  if (target === undefined || !CONNECTION.has(code)) return message
  const tls = code === 'ERR_REDIS_TIMEOUT' && target.endsWith('over TLS') ? '; if the server does not speak TLS, use redis://' : ''
  return `${message} (redis at ${target}${tls})`
}

function invalidArg(message) {
  return new RedisSessionStoreError('ERR_INVALID_ARG', message)
}

module.exports = { RedisSessionStoreError, fromNative, invalidArg, targetOf, atTarget }
