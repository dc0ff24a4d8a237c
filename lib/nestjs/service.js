'use strict'

const { Inject, Injectable, UnauthorizedException } = require('@nestjs/common')
const { SESSION_STORE, SESSION_MODULE_OPTIONS } = require('./tokens')
const { ownerOf } = require('./owner')

// express-session's session methods take callbacks; the service's are promises.
const call = (fn) => new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())))

/**
 * Logins, logouts and a user's devices, as promises over express-session
 * and the store. Devices are named by their handle, never their session id.
 */
class SessionsService {
  constructor(store, options) {
    this.store = store
    this.cookieName = options.session?.name ?? 'connect.sid'
  }

  /**
   * Signs `userId` in: a new session id (no fixation), then `session.userId`
   * and `data` set and saved. With a `userId` option of your own, put the
   * fields it reads in `data`.
   */
  async login(req, userId, data = {}) {
    await call((cb) => req.session.regenerate(cb))
    req.session.userId = userId
    Object.assign(req.session, data)
    await call((cb) => req.session.save(cb))
    return req.session
  }

  /** Ends this session and clears its cookie. */
  async logout(req) {
    if (!req.session) return
    const path = req.session.cookie?.path ?? '/'
    await call((cb) => req.session.destroy(cb))
    if (req.res) req.res.clearCookie(this.cookieName, { path })
  }

  /** The signed-in user's sessions, most recently used first, the current one marked. */
  async devices(req) {
    const user = this.userOf(req)
    const current = this.store.handleOf(req.sessionID)
    const sessions = await this.store.listUserSessions(user)
    return sessions.map((s) => ({
      handle: s.handle,
      device: s.device,
      createdAt: s.createdAt,
      lastAccess: s.lastAccess,
      expiresAt: s.expiresAt,
      current: s.handle === current,
    }))
  }

  /** Ends one of the signed-in user's sessions by its handle; false if it is not theirs. */
  revoke(req, handle) {
    return this.store.revokeUserSession(this.userOf(req), handle)
  }

  /** Ends every session of the signed-in user but this one; resolves to how many. */
  revokeOthers(req) {
    return this.store.destroyUserSessions(this.userOf(req), { except: req.sessionID })
  }

  /** Ends every session of `userId` (log out everywhere); resolves to how many. */
  revokeAll(userId) {
    return this.store.destroyUserSessions(userId)
  }

  /** The store's numbers (see `store.stats`). */
  stats(options) {
    return this.store.stats(options)
  }

  userOf(req) {
    const user = ownerOf(req, this.store)
    if (user === undefined) throw new UnauthorizedException('Sign in first: this needs a signed-in session.')
    return user
  }
}
Injectable()(SessionsService)
Inject(SESSION_STORE)(SessionsService, undefined, 0)
Inject(SESSION_MODULE_OPTIONS)(SessionsService, undefined, 1)

module.exports = { SessionsService }
