'use strict'

const { Store } = require('express-session')
const { NativeStore, OpKind, WARNING_BATCH, EVENT_BATCH } = require('./lib/native').binding()
const { Batcher } = require('./lib/batcher')
const { isoDate } = require('./lib/iso-date')
const { allSessions, reindex, reencrypt, statsWindows, statsOf } = require('./lib/admin')
const { parseOptions, hasOwnToString, warnings } = require('./lib/options')
const { Policy } = require('./lib/policy')
const { RedisSessionStoreError, fromNative, invalidArg, targetOf } = require('./lib/errors')
const { captureDevice, handleOf, isHandle, deviceText, parseDevice } = require('./lib/devices')
const telemetry = require('./lib/telemetry')
const events = require('./lib/events')

const NO_TTL = Infinity
const NO_LIMITS = [NaN, NaN]
const MAX_SID_LENGTH = 4096
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/
// A lone surrogate becomes U+FFFD in Rust: two such ids would name one key.
// String.prototype.isWellFormed (Node 20) checks without a regex.
const LONE_SURROGATE = /\p{Surrogate}/u
const wellFormed = typeof ''.isWellFormed === 'function' ? (s) => s.isWellFormed() : (s) => !LONE_SURROGATE.test(s)

const MAX_OWNER_LENGTH = 1024

// merge: the text a session object was loaded from (or last saved as), so
// a save can send what its request changed. A symbol: JSON.stringify and
// express-session's own copies (for...in) skip it; createSession carries it
// to express-session's Session.
const LOADED = Symbol('redis-session-store loaded')
// ... and its owner then: a save that did not change the owner keeps the
// stored one when it merges (another request may have logged in).
const LOADED_OWNER = Symbol('redis-session-store loaded owner')

// A user id as the indexes key it: a string, a number, or an id object
// with its own toString (a MongoDB ObjectId) by that text.
function checkOwner(userId) {
  const idObject = userId !== null && typeof userId === 'object' && hasOwnToString(userId)
  if ((typeof userId !== 'string' || userId.length === 0) && !(typeof userId === 'number' && Number.isFinite(userId)) && !idObject) {
    throw invalidArg(
      `user id must be a non-empty string, a number or an id object with its own toString (an ObjectId), got ${describeOwner(userId)}`,
    )
  }
  const owner = String(userId)
  if (owner.length === 0) throw invalidArg('user id must not be empty (its toString gave an empty string)')
  if (owner.length > MAX_OWNER_LENGTH) throw invalidArg(`user id is longer than ${MAX_OWNER_LENGTH} characters`)
  if (!wellFormed(owner)) throw invalidArg('user id is not well-formed UTF-16 (a lone surrogate): pass it as a proper Unicode string')
  return owner
}

function describeOwner(userId) {
  if (userId === '') return 'an empty string'
  if (userId === null) return 'null'
  if (Array.isArray(userId)) return 'an array'
  if (typeof userId === 'object') return `an object (${userId.constructor?.name ?? 'no prototype'}) without its own toString`
  return typeof userId
}

// The session's key on an error, kept out of its message, JSON and logs.
// A batch that failed whole shares one error among its calls: each gets a copy.
function withKey(err, key) {
  const own = Object.hasOwn(err, 'key') ? Object.assign(new RedisSessionStoreError(err.code, err.message), { name: err.name }) : err
  Object.defineProperty(own, 'key', { value: key, enumerable: false, configurable: true })
  return own
}

// A callback that names the session's key on its error (see withKey). Made
// here, not inside touch(): a closure there would keep the session object
// alive until Redis answers (see _written). destroy() shares it.
function keyed(done, prefix, sid) {
  return (err) => done(err ? withKey(err, prefix + sid) : null)
}

function checkSid(sid) {
  if (typeof sid !== 'string' || sid.length === 0) {
    throw invalidArg(`session id must be a non-empty string, got ${sid === '' ? 'an empty string' : typeof sid}`)
  }
  if (sid.length > MAX_SID_LENGTH) throw invalidArg(`session id is longer than ${MAX_SID_LENGTH} characters`)
  if (CONTROL_CHARS.test(sid)) throw invalidArg('session id contains control characters')
  if (!wellFormed(sid)) throw invalidArg('session id is not well-formed UTF-16 (a lone surrogate): use ids made of proper Unicode text')
}

// Runs `start(done)` with a node-style callback, or returns a promise when
// the caller gave none. Errors thrown while starting (bad input) reach the
// callback asynchronously, as every other outcome does.
function callOrPromise(cb, start) {
  if (typeof cb === 'function') {
    try {
      start(cb)
    } catch (err) {
      process.nextTick(cb, err)
    }
    return undefined
  }
  // `settle` is made where it cannot see `start`, which sees the caller's
  // arguments: held until Redis answers, it would keep them alive.
  let settle
  const promise = new Promise((resolve, reject) => {
    settle = (err, value) => (err ? reject(err) : resolve(value))
  })
  try {
    start(settle)
  } catch (err) {
    settle(err)
  }
  return promise
}

// destroy() and touch() are often fired and forgotten; a rejection nobody
// awaits must not crash the process, while callers who await still see it.
function quiet(promise) {
  if (promise) promise.catch(() => {})
  return promise
}

class RedisSessionStore extends Store {
  constructor(options) {
    super()
    const o = parseOptions(options)
    this.prefix = o.prefix
    this.ttl = o.ttl
    this.disableTTL = o.disableTTL
    this.disableTouch = o.disableTouch
    this.serializer = o.serializer
    this.scanCount = o.scanCount
    this.commandTimeout = o.commandTimeout
    this.maxSessionBytes = o.maxSessionBytes
    this.absoluteTimeout = o.absoluteTimeout
    this.idleTimeout = o.idleTimeout
    this._policy = new Policy(o)
    this.userId = o.userId
    this.maxSessionsPerUser = o.maxSessionsPerUser
    this.waitForReplicas = o.waitForReplicas
    this.merge = o.merge
    this.singleConnection = o.singleConnection
    this.readExpiry = o.readExpiry
    // The ids only: key material stays out of the store's properties.
    this.encryptionKeyIds = o.encryption ? o.encryption.keys.map((k) => k.id) : undefined
    try {
      // The options go to Rust as the user wrote them (checked above).
      const onWarning = (code, message) => this._warn(code, message)
      const native = this._policy.native(o)
      this._target = targetOf(o)
      this._batcher = new Batcher((onReply) => new NativeStore(native, onReply), WARNING_BATCH, onWarning, o.commandTimeout, {
        target: this._target,
      })
    } catch (err) {
      // With its code: a damaged file (ERR_SESSION_FILE_CORRUPT) asks for another remedy than a typo.
      const native = fromNative(err)
      throw Object.assign(new TypeError(`RedisSessionStore: ${native.message}`), { code: native.code })
    }
    this._native = this._batcher.native
    // Options that are valid but likely mistakes: on the next tick, so a
    // 'warning' listener attached after construction hears them.
    const doubts = warnings(o)
    if (doubts.length > 0) process.nextTick(() => doubts.forEach(([code, message]) => this._warn(code, message)))
    this._batcher.onEvents = (lines) => events.deliver(this, lines)
    this._batcher.eventsId = EVENT_BATCH
    events.watchListeners(this, this._native)
    // Device writes not answered yet: a listing waits for them, so it sees
    // every write made before it, as for sessions.
    this._deviceWrites = new Set()
    telemetry.attach(this, o)
  }

  // What the store learned of its server that the application should know
  // (an eviction policy that can lose indexes): a 'warning' event, or a
  // process warning when nobody listens, so it is never silent.
  _warn(code, message) {
    const warning = new RedisSessionStoreError(code, message)
    warning.name = 'RedisSessionStoreWarning'
    if (this.listenerCount('warning') > 0) this.emit('warning', warning)
    else process.emitWarning(message, { type: 'RedisSessionStoreWarning', code })
  }

  get(sid, cb) {
    return callOrPromise(cb, (done) => {
      checkSid(sid)
      this._batcher.push(OpKind.Get, sid, null, null, NaN, (err, raw, expiresAt) => {
        if (err) return done(withKey(err, this.prefix + sid))
        if (raw == null) return done(null, null)
        let sess
        try {
          sess = this._parse(sid, raw, expiresAt)
        } catch (e) {
          return done(e)
        }
        if (this.merge) this._loaded(sess, raw)
        done(null, sess)
      })
    })
  }

  // express-session hands `set` its own Session, built from the object
  // `get` returned: what that was loaded from goes with it.
  createSession(req, sess) {
    const session = super.createSession(req, sess)
    if (sess[LOADED] !== undefined) {
      session[LOADED] = sess[LOADED]
      session[LOADED_OWNER] = sess[LOADED_OWNER]
    }
    return session
  }

  set(sid, sess, cb) {
    return callOrPromise(cb, (done) => {
      checkSid(sid)
      const value = this._serialize(sess)
      const owner = this._owner(sess)
      const at = this._expiresAt(sess)
      const [idle, absolute] = this._limits(sess)
      const cap = owner === '' ? undefined : this._policy.capOf(sess)
      const base = this.merge ? sess[LOADED] : undefined
      if (base !== undefined) return this._merge(sid, sess, value, owner, at, done, idle, absolute)
      this._batcher.push(OpKind.Set, sid, value, owner, at, this._written(done, sid, owner, cap), idle, absolute)
    })
  }

  // A set's callback, made outside set(): a closure there would keep the
  // session object alive until Redis answers, long enough for V8 to move
  // it out of the young generation (see docs/benchmarks.md, Speed III).
  _written(done, sid, owner, cap) {
    return (err, _, __, ownerSessions) => {
      if (err) return done(withKey(err, this.prefix + sid))
      // A login past the limit: the least recently used sessions go.
      if (!(ownerSessions > cap)) return done(null)
      this._native.enforceLimit(owner, cap).then(
        () => done(null),
        (e) => done(fromNative(e, this._target)),
      )
    }
  }

  // A perSession store's limits for `sess`, in ms (else the store's own, in Rust).
  _limits(sess) {
    return this._policy.perSession ? this._policy.limits(sess) : NO_LIMITS
  }

  // With cookie-derived TTLs only the key's expiry moves (PEXPIREAT; get()
  // reads it back with readExpiry); otherwise the value is rewritten, but
  // never recreated if it was destroyed meanwhile.
  touch(sid, sess, cb) {
    return quiet(
      callOrPromise(cb, (done) => {
        checkSid(sid)
        if (this.disableTouch) return process.nextTick(done, null)
        const at = this._expiresAt(sess)
        const owner = this._owner(sess)
        const [idle, absolute] = this._limits(sess)
        const base = this.merge ? sess[LOADED] : undefined
        const settled = keyed(done, this.prefix, sid)
        if (this._expiryFollowsCookie()) {
          this._batcher.push(OpKind.Touch, sid, null, owner, at, settled, idle, absolute)
        } else if (base !== undefined) {
          this._merge(sid, sess, this._serialize(sess), owner, at, done, idle, absolute)
        } else {
          this._batcher.push(OpKind.Rewrite, sid, this._serialize(sess), owner, at, settled, idle, absolute)
        }
      }),
    )
  }

  // A save of a loaded session with merge: on: only what this request
  // changed since `base` is written over what is stored (in Rust, as a
  // compare-and-set). The saved text becomes the base of a later save by
  // the same request (save() called by hand, then the end of the request).
  _merge(sid, sess, value, owner, at, done, idle, absolute) {
    const merged = (err) => {
      if (err) return done(withKey(err, this.prefix + sid))
      this._loaded(sess, value, owner)
      done(null)
    }
    this._batcher.push(OpKind.Merge, sid, [sess[LOADED], value], [sess[LOADED_OWNER], owner], at, merged, idle, absolute)
  }

  // Notes what `sess` was loaded from (or saved as), and its owner then. A
  // session whose owner cannot be told (userId throws) is saved whole; its
  // save fails with that error anyway.
  _loaded(sess, text, owner) {
    try {
      sess[LOADED_OWNER] = owner === undefined ? this._owner(sess) : owner
      sess[LOADED] = text
    } catch {
      // not merged
    }
  }

  destroy(sid, cb) {
    return quiet(
      callOrPromise(cb, (done) => {
        checkSid(sid)
        this._batcher.push(OpKind.Destroy, sid, null, events.reasonOf(this, sid), NaN, keyed(done, this.prefix, sid))
      }),
    )
  }

  // The calls over many sessions read the indexes, never SCAN. Queued
  // operations are sent first, and Rust waits for them, so a call sees
  // every write made before it.
  _admin(cb, call, map = (reply) => reply) {
    return callOrPromise(cb, (done) => {
      this._batcher.flush()
      call().then((reply) => {
        let result
        try {
          result = map(reply)
        } catch (e) {
          return done(e)
        }
        done(null, result)
      }, (err) => done(fromNative(err, this._target)))
    })
  }

  all(cb) {
    return callOrPromise(cb, (done) => allSessions(this, done))
  }

  ids(cb) {
    return this._admin(cb, () => this._native.ids())
  }

  length(cb) {
    return this._admin(cb, () => this._native.length())
  }

  clear(cb) {
    return this._admin(cb, () => this._native.clear(), () => undefined)
  }

  /**
   * Records in the indexes the sessions this store did not write (moving
   * from connect-redis or an older version): the one call that SCANs, once.
   * Resolves to `{ indexed, skipped }`; values that are not sessions are
   * left alone.
   */
  reindex(cb) {
    return callOrPromise(cb, (done) => reindex(this, OpKind.Adopt, done))
  }

  /**
   * Rewrites every session not under the first encryption key (an older
   * key's, or plaintext with `allowPlaintext`) under it, a bounded step at
   * a time, keeping each session's expiry, owner and times; safe while
   * serving (a save that lands meanwhile wins). Resolves to
   * `{ reencrypted, current, unreadable, raced }`.
   */
  reencrypt(cb) {
    return callOrPromise(cb, (done) => {
      if (!this.encryptionKeyIds) throw invalidArg('reencrypt() needs the encryption option')
      this._batcher.flush()
      reencrypt(this, done)
    })
  }

  /** A user's live sessions, most recently used first. */
  listUserSessions(userId, cb) {
    return this._admin(cb, () => this._listUser(checkOwner(userId)), (r) =>
      r.ids.map((id, i) => ({
        id,
        handle: handleOf(this.prefix, id),
        // A value that does not open or parse is listed apart, with its
        // handle and times: the user can still see and end that session.
        ...this._readable(id, r.unreadable[i] ? null : r.values[i], r.cookieExpires[i]),
        createdAt: new Date(r.createdAt[i]),
        lastAccess: new Date(r.lastAccess[i]),
        expiresAt: Number.isNaN(r.expiresAt[i]) ? null : new Date(r.expiresAt[i]),
        device: parseDevice(r.devices[i]),
      })),
    )
  }

  _readable(id, text, cookieExpires) {
    if (text === null) return { session: null, unreadable: true }
    try {
      return { session: this._parse(id, text, cookieExpires) }
    } catch {
      return { session: null, unreadable: true }
    }
  }

  _listUser(owner) {
    return this._afterDeviceWrites(() => this._native.listUser(owner))
  }

  _afterDeviceWrites(call) {
    if (this._deviceWrites.size === 0) return call()
    return Promise.allSettled([...this._deviceWrites]).then(call)
  }

  /** A session's handle: opaque, stable for its life, the sid not recoverable from it (see "My devices"). */
  handleOf(sid) {
    checkSid(sid)
    return handleOf(this.prefix, sid)
  }

  /**
   * Destroys the session `handle` names if it is one of `userId`'s (a
   * logout, as destroy()); resolves to whether it was. A handle that is
   * malformed or names no session of this user: false.
   */
  revokeUserSession(userId, handle, cb) {
    return callOrPromise(cb, (done) => {
      const owner = checkOwner(userId)
      if (!isHandle(handle)) return process.nextTick(done, null, false)
      this._batcher.flush()
      this._native.listUser(owner).then((r) => {
        const sid = r.ids.find((id) => handleOf(this.prefix, id) === handle)
        if (sid === undefined) return done(null, false)
        this._batcher.push(OpKind.Destroy, sid, null, 'revoked', NaN, (err) =>
          err ? done(this._withoutSid(err, sid)) : done(null, true),
        )
      }, (err) => done(this._withoutSid(fromNative(err, this._target))))
    })
  }

  /**
   * Records device data (`{ userAgent, ip, lastIp }`, strings or null)
   * beside session `sid`, if it exists; resolves to whether it did. What
   * captureDevice() calls; for frameworks it does not fit.
   */
  recordDevice(sid, device, cb) {
    return callOrPromise(cb, (done) => {
      checkSid(sid)
      let text
      try {
        text = deviceText(device)
      } catch (e) {
        throw invalidArg(e.message)
      }
      this._sendDevice(sid, text).then((written) => done(null, written), done)
    })
  }

  // captureDevice's write of data it built itself.
  _writeDevice(sid, device) {
    return this._sendDevice(sid, deviceText(device))
  }

  _sendDevice(sid, text) {
    this._batcher.flush()
    const write = this._native.writeDevice(sid, text).catch((err) => {
      throw this._withoutSid(fromNative(err, this._target), sid)
    })
    const tracked = write.then(
      () => this._deviceWrites.delete(tracked),
      () => this._deviceWrites.delete(tracked),
    )
    this._deviceWrites.add(tracked)
    return write
  }

  // A session's device data, or null (captureDevice, when it does not know it).
  _readDevice(sid) {
    this._batcher.flush()
    return this._afterDeviceWrites(() => this._native.readDevice(sid)).then(parseDevice, (err) => {
      throw this._withoutSid(fromNative(err, this._target), sid)
    })
  }

  // `err` with session keys (errors name keys, in quotes) replaced by
  // their handles: calls made by handle, or by the middleware, must not put
  // the bearer secret in logs. `sid`: the session the call was about.
  _withoutSid(err, sid) {
    const message = String(err && err.message)
    const handle = (id) => `<session ${handleOf(this.prefix, id)}>`
    let hidden = message
    if (this.prefix !== '') {
      this._keyPattern ??= new RegExp(`"${this.prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([^"]*)"`, 'g')
      hidden = hidden.replace(this._keyPattern, (_, id) => `"${handle(id)}"`)
    }
    if (sid !== undefined) hidden = hidden.split(this.prefix + sid).join(handle(sid))
    if (hidden === message) return err
    const code = err && typeof err.code === 'string' ? err.code : 'ERR_NATIVE'
    return new RedisSessionStoreError(code, hidden)
  }

  /** Destroys a user's sessions but those in `except`; resolves to how many. */
  destroyUserSessions(userId, options, cb) {
    if (typeof options === 'function') [options, cb] = [undefined, options]
    return this._admin(cb, () => {
      const owner = checkOwner(userId)
      const except = options?.except === undefined ? [] : [].concat(options.except)
      for (const sid of except) checkSid(sid)
      return this._native.destroyUser(owner, except)
    })
  }

  /**
   * `{ sessions, users, active, averageAge, oldestCreatedAt }` over the live
   * sessions; `activeWithin` in seconds (default 300), `averageAge` in ms.
   * With `endedWithin` (seconds, up to a day), also `ended`: the fleet's
   * sessions that ended within it, `{ sessions, averageDuration, byReason }`.
   */
  stats(options, cb) {
    if (typeof options === 'function') [options, cb] = [undefined, options]
    return this._admin(cb, () => this._native.stats(...statsWindows(options)), statsOf)
  }

  /** Sends what is queued, waits for every pending call, and releases the connection. */
  close(cb) {
    return callOrPromise(cb, (done) => {
      const near = this._batcher.close()
      Promise.all([near, this._native.close()]).then(() => done(null), (err) => done(fromNative(err, this._target)))
    })
  }

  // The session's owner as the index stores it, '' for none.
  _owner(sess) {
    const id = this.userId(sess)
    if (id === undefined || id === null) return ''
    return checkOwner(id)
  }

  _expiryFollowsCookie() {
    return !this.disableTTL && typeof this.ttl !== 'function'
  }

  // Absolute expiry in epoch ms, as connect-redis decides it: a ttl function
  // wins, then the cookie's expiry, then the ttl option. Infinity: no TTL.
  _expiresAt(sess) {
    if (this.disableTTL) return NO_TTL
    if (typeof this.ttl === 'function') {
      const seconds = this.ttl(sess)
      if (typeof seconds !== 'number' || Number.isNaN(seconds)) {
        throw invalidArg(`the ttl function must return a number of seconds, got ${String(seconds)}`)
      }
      return Date.now() + seconds * 1000
    }
    const expires = sess && sess.cookie && sess.cookie.expires
    if (expires != null) {
      const at = new Date(expires).getTime()
      if (Number.isFinite(at)) return at
    }
    return Date.now() + this.ttl * 1000
  }

  // `expiresAt` is the cookie deadline of the last set or touch (kept beside
  // the session, so touch need not rewrite it): the truth when the TTL
  // follows the cookie. Compared as ISO text: formatting one Date is cheaper
  // than parsing one.
  _refreshExpires(sess, expiresAt) {
    const cookie = sess.cookie
    if (!this._expiryFollowsCookie() || !cookie || cookie.expires == null || Number.isNaN(expiresAt)) return
    const current = cookie.expires
    if (current instanceof Date) {
      if (current.getTime() !== expiresAt) cookie.expires = new Date(expiresAt)
      return
    }
    const iso = isoDate(expiresAt)
    if (current !== iso) cookie.expires = iso
  }

  _serialize(sess) {
    if (sess === null || typeof sess !== 'object') throw invalidArg('session must be an object')
    let value
    try {
      value = this.serializer.stringify(sess)
    } catch (e) {
      throw new RedisSessionStoreError('ERR_SERIALIZE', `session cannot be serialized: ${e.message}`, e)
    }
    if (typeof value !== 'string') {
      throw new RedisSessionStoreError('ERR_SERIALIZE', 'serializer.stringify did not return a string')
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: count bytes only when it could matter.
    if (value.length * 3 > this.maxSessionBytes && Buffer.byteLength(value) > this.maxSessionBytes) {
      throw new RedisSessionStoreError(
        'ERR_SESSION_TOO_LARGE',
        `session is ${Buffer.byteLength(value)} bytes, over maxSessionBytes (${this.maxSessionBytes})`,
      )
    }
    return value
  }

  // Session text from Redis to the session object, with the key's expiry;
  // throws an error naming the session by handle when the text is not a
  // session. The parser's own message is left out: V8 quotes the text.
  _parse(sid, raw, expiresAt) {
    let sess
    try {
      sess = this.serializer.parse(raw)
    } catch {
      throw this._corrupt(sid, 'is not valid JSON')
    }
    if (sess === null || typeof sess !== 'object') throw this._corrupt(sid, 'is not a session object')
    this._refreshExpires(sess, expiresAt)
    return sess
  }

  // Messages end up in logs: they name the session by handle; the key is
  // on a non-enumerable property for code that needs it.
  _corrupt(sid, what) {
    const err = new RedisSessionStoreError(
      'ERR_SESSION_CORRUPT',
      `value of session ${this.handleOf(sid)} ${what}: delete it (destroy) or restore it`,
    )
    return withKey(err, this.prefix + sid)
  }
}

// Spans, metrics and diagnostics_channel messages per public call (lib/telemetry).
telemetry.instrument(RedisSessionStore.prototype)

module.exports = { RedisSessionStore, RedisStore: RedisSessionStore, RedisSessionStoreError, captureDevice }
