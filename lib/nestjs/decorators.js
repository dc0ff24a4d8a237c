'use strict'

const { SetMetadata, UseGuards, applyDecorators, createParamDecorator } = require('@nestjs/common')
const { IS_PUBLIC, FRESH_SESSION } = require('./tokens')
const { SessionGuard } = require('./guard')

/** A route (or controller) open without a signed-in session, under a global SessionGuard. */
const Public = () => SetMetadata(IS_PUBLIC, true)

/**
 * A route that needs a login at most `seconds` old (password changes and
 * other sensitive actions): 401 without a session, 403 with an older one.
 * Brings SessionGuard with it, so it works without a global guard.
 */
function FreshSession(seconds) {
  if (!(typeof seconds === 'number' && seconds > 0 && Number.isFinite(seconds))) {
    throw new TypeError(`FreshSession(seconds) needs a positive number of seconds, got ${String(seconds)}`)
  }
  return applyDecorators(SetMetadata(FRESH_SESSION, seconds), UseGuards(SessionGuard))
}

/** The session's owner (the store's `userId(session)`), or the session field named. */
const CurrentUser = createParamDecorator((field, ctx) => {
  const req = ctx.switchToHttp().getRequest()
  if (!req.session) return undefined
  if (field !== undefined) return req.session[field]
  const id = req.sessionStore ? req.sessionStore.userId(req.session) : undefined
  return id === '' || id === null ? undefined : id
})

module.exports = { Public, FreshSession, CurrentUser }
