'use strict'

const { Inject, Injectable, UnauthorizedException, ForbiddenException } = require('@nestjs/common')
const { Reflector } = require('@nestjs/core')
const { SESSION_STORE, IS_PUBLIC, FRESH_SESSION } = require('./tokens')
const { ownerOf } = require('./owner')

// 401 without a signed-in session (but on @Public() routes); 403 on a
// @FreshSession(seconds) route when the login is older than that. The
// login time is the session's creation: a login regenerates the id.
class SessionGuard {
  constructor(reflector, store) {
    this.reflector = reflector
    this.store = store
  }

  async canActivate(context) {
    const targets = [context.getHandler(), context.getClass()]
    if (this.reflector.getAllAndOverride(IS_PUBLIC, targets)) return true
    const req = context.switchToHttp().getRequest()
    const user = ownerOf(req, this.store)
    if (user === undefined) throw new UnauthorizedException('Sign in first: this route needs a signed-in session.')
    const fresh = this.reflector.getAllAndOverride(FRESH_SESSION, targets)
    if (fresh !== undefined && !(await this.loggedInWithin(req, user, fresh))) {
      throw new ForbiddenException(`This action needs a login within the last ${fresh} seconds: sign in again, then retry.`)
    }
    return true
  }

  async loggedInWithin(req, user, seconds) {
    const sessions = await this.store.listUserSessions(user)
    const current = sessions.find((s) => s.id === req.sessionID)
    return current !== undefined && Date.now() - current.createdAt.getTime() <= seconds * 1000
  }
}
Injectable()(SessionGuard)
Inject(Reflector)(SessionGuard, undefined, 0)
Inject(SESSION_STORE)(SessionGuard, undefined, 1)

module.exports = { SessionGuard }
