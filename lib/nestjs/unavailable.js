'use strict'

const { Catch, Logger } = require('@nestjs/common')
const { RedisSessionStoreError } = require('../errors')

// Store failures a retry can fix: answered 503 with Retry-After instead of a
// generic 500, and logged by code (the store's messages name no session id).
const RETRYABLE = new Set(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT', 'ERR_REDIS_FULL', 'ERR_STORE_CLOSED'])
const RETRY_AFTER_SECONDS = 5

const logger = new Logger('SessionModule')

function unavailable(err, req, res) {
  logger.error(`session store ${err.code} on ${req.method} ${req.originalUrl ?? req.url}: answered 503`)
  if (res.headersSent) return
  res.status(503)
  res.setHeader('Retry-After', String(RETRY_AFTER_SECONDS))
  res.json({ statusCode: 503, error: 'Service Unavailable', code: err.code, message: 'Sessions are unavailable for a moment: retry shortly.' })
}

const retryable = (err) => err instanceof RedisSessionStoreError && RETRYABLE.has(err.code)

// express-session as middleware: its store errors (loading the session, or
// saving it at the end) reach `next(err)`, which Express answers with a 500.
function sessionMiddleware(handler) {
  return (req, res, next) =>
    handler(req, res, (err) => {
      if (err && retryable(err)) return unavailable(err, req, res)
      next(err)
    })
}

// The same for store calls made in handlers (the service, the guard).
class StoreUnavailableFilter {
  catch(err, host) {
    const http = host.switchToHttp()
    const req = http.getRequest()
    const res = http.getResponse()
    if (retryable(err)) return unavailable(err, req, res)
    logger.error(`session store ${err.code} on ${req.method} ${req.originalUrl ?? req.url}`)
    if (!res.headersSent) res.status(500).json({ statusCode: 500, message: 'Internal server error' })
  }
}
Catch(RedisSessionStoreError)(StoreUnavailableFilter)

module.exports = { sessionMiddleware, StoreUnavailableFilter, RETRY_AFTER_SECONDS }
