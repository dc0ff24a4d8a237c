'use strict'

const { endFor } = require('./events')

// "My devices": a session's opaque handle, and the captureDevice middleware
// that records a logged-in session's user agent and IP beside it (see
// src/ops/devices.rs), writing only when something changed.
const { createHash } = require('node:crypto')
const { isIP } = require('node:net')

// A handle names a session in pages and URLs without being its bearer
// secret: a hash, so the sid cannot be recovered from it; 128 bits, so
// handles do not collide; with the prefix, so two stores' differ.
const HANDLE_LABEL = 'redis-session-store handle\0'
const HANDLE = /^[A-Za-z0-9_-]{22}$/

function handleOf(prefix, sid) {
  return createHash('sha256').update(HANDLE_LABEL + prefix + sid).digest().subarray(0, 16).toString('base64url')
}

function isHandle(value) {
  return typeof value === 'string' && HANDLE.test(value)
}

// Device data is shown to people, not parsed: capped, so a client cannot
// make every listing large.
const MAX_USER_AGENT = 256
const MAX_IP = 64
const FIELDS = { userAgent: MAX_USER_AGENT, ip: MAX_IP, lastIp: MAX_IP }

// The stored JSON of `device`, each field a capped string or null.
function deviceText(device) {
  if (device === null || typeof device !== 'object') throw new TypeError('device must be an object')
  const out = {}
  for (const [field, max] of Object.entries(FIELDS)) {
    const value = device[field]
    if (value !== undefined && value !== null && typeof value !== 'string') {
      throw new TypeError(`device.${field} must be a string or null, got ${typeof value}`)
    }
    out[field] = typeof value === 'string' ? value.slice(0, max) : null
  }
  return JSON.stringify(out)
}

// The device as listed: null for none, or for text that is not one (it is
// shown, never trusted).
function parseDevice(text) {
  if (typeof text !== 'string') return null
  let parsed
  try {
    parsed = JSON.parse(text)
  } catch {
    return null
  }
  if (parsed === null || typeof parsed !== 'object') return null
  const out = {}
  for (const field of Object.keys(FIELDS)) out[field] = typeof parsed[field] === 'string' ? parsed[field] : null
  return out
}

// An IPv4 address (or one mapped into IPv6) to its /24.
const V4 = /^(::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}$/i

// `ip` cut to its network: /24 for IPv4, /48 for IPv6; null when it is not
// an address (nothing more precise than asked is kept).
function truncateIp(ip) {
  const v4 = V4.exec(ip)
  if (v4) return `${v4[1] ?? ''}${v4[2]}.${v4[3]}.${v4[4]}.0`
  const bare = ip.split('%')[0]
  if (isIP(bare) !== 6) return null
  const [head, tail] = bare.split('::')
  const parts = (text) => (text ? text.split(':') : [])
  // An embedded IPv4 address holds two groups.
  const width = (groups) => groups.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0)
  const left = parts(head)
  const right = parts(tail)
  const groups = tail === undefined ? left : [...left, ...Array(8 - width(left) - width(right)).fill('0'), ...right]
  return `${groups.slice(0, 3).map((g) => parseInt(g, 16).toString(16)).join(':')}::`
}

const IP_MODES = ['full', 'truncated', false]
const DEFAULT_ENTRIES = 10_000

// What a request's device looks like under the options.
function observe(req, ipMode) {
  const agent = req.headers && req.headers['user-agent']
  const userAgent = typeof agent === 'string' ? agent.slice(0, MAX_USER_AGENT) : null
  let ip = null
  if (ipMode !== false && typeof req.ip === 'string' && req.ip !== '') {
    ip = ipMode === 'truncated' ? truncateIp(req.ip) : req.ip.slice(0, MAX_IP)
  }
  return { userAgent, ip }
}

// What this process last wrote or read for each session (by handle), the
// least recently used dropped past `max`: a user whose device has not
// changed costs no Redis command and no call into the addon.
class Recent {
  constructor(max) {
    this.max = max
    this.map = new Map()
  }

  get(handle) {
    const device = this.map.get(handle)
    if (device !== undefined) {
      this.map.delete(handle)
      this.map.set(handle, device)
    }
    return device
  }

  set(handle, device) {
    this.map.delete(handle)
    this.map.set(handle, device)
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value)
  }

  delete(handle) {
    this.map.delete(handle)
  }
}

// The session's owner as the store indexes it, '' for none (an owner the
// store refuses is the save's error, not this middleware's).
function ownerOf(store, sess) {
  try {
    return store._owner(sess)
  } catch {
    return ''
  }
}

const BINDING_MESSAGE =
  'a session was used with another user agent than the one it logged in with: it was ended, and the request goes on with a new session'

/**
 * Express/Connect middleware, after `session()`: records a logged-in
 * session's user agent and IP at login, and its last IP when that changes,
 * beside the session (see README "My devices").
 */
function captureDevice(options = {}) {
  if (options === null || typeof options !== 'object') throw new TypeError('captureDevice: options must be an object')
  const ipMode = options.ip === undefined ? 'full' : options.ip
  if (!IP_MODES.includes(ipMode)) throw new TypeError(`captureDevice: option "ip" must be 'full', 'truncated' or false, got ${String(ipMode)}`)
  const bind = options.bind
  if (bind !== undefined && bind !== 'userAgent') throw new TypeError(`captureDevice: option "bind" must be 'userAgent', got ${String(bind)}`)
  const max = options.maxEntries ?? DEFAULT_ENTRIES
  if (!Number.isInteger(max) || max < 1) throw new TypeError('captureDevice: option "maxEntries" must be a positive integer')
  const caches = new WeakMap()
  const cacheOf = (store) => {
    let cache = caches.get(store)
    if (!cache) caches.set(store, (cache = new Recent(max)))
    return cache
  }

  return function captureDeviceMiddleware(req, res, next) {
    const store = req.sessionStore
    if (!req.session || !store || typeof store.handleOf !== 'function') return next()
    const cache = cacheOf(store)
    const sid = req.sessionID
    const owner = ownerOf(store, req.session)
    const seen = observe(req, ipMode)
    // Recorded after the response: express-session has saved the session
    // by then (a login too), and the write costs the request nothing.
    res.once('finish', () => record(store, cache, req, seen, owner !== '' && req.sessionID === sid))
    if (bind === undefined || owner === '') return next()
    const handle = store.handleOf(sid)
    const known = cache.get(handle)
    if (known !== undefined) return checkBinding(store, cache, req, handle, known, seen, next)
    store._readDevice(sid).then(
      (device) => {
        cache.set(handle, device)
        checkBinding(store, cache, req, handle, device, seen, next)
      },
      (err) => next(store._withoutSid(err, sid)),
    )
  }
}

// Ends a session whose user agent is not the one recorded at login.
function checkBinding(store, cache, req, handle, device, seen, next) {
  if (device === null || device.userAgent === null || device.userAgent === seen.userAgent) return next()
  const sid = req.sessionID
  cache.delete(handle)
  store._warn('WARN_SESSION_BINDING', BINDING_MESSAGE)
  // regenerate() destroys the session and gives the request a new one.
  endFor(store, sid, 'binding')
  req.session.regenerate((err) => next(err ? store._withoutSid(err, sid) : undefined))
}

// Writes the session's device data when it differs from what this process
// knows is stored: at login, or a new last IP. `sameOwner`: the session had
// this owner when the request began, so something may be recorded already
// (otherwise this request logged in, and nothing can be).
function record(store, cache, req, seen, sameOwner) {
  const sess = req.session
  if (!sess) return
  const sid = req.sessionID
  if (ownerOf(store, sess) === '') return
  const handle = store.handleOf(sid)
  const known = cache.get(handle)
  const decide = (device) => {
    let next
    if (device === null) next = { userAgent: seen.userAgent, ip: seen.ip, lastIp: seen.ip }
    else if (device.lastIp !== seen.ip) next = { ...device, lastIp: seen.ip }
    else return cache.set(handle, device)
    store._writeDevice(sid, next).then(
      (written) => (written ? cache.set(handle, next) : cache.delete(handle)),
      // Best effort: a failed write is tried again at the next request.
      () => cache.delete(handle),
    )
  }
  if (known !== undefined) return decide(known)
  if (!sameOwner) return decide(null)
  store._readDevice(sid).then(decide, () => {})
}

module.exports = { captureDevice, handleOf, isHandle, deviceText, parseDevice, truncateIp }
