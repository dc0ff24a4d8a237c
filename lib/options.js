'use strict'

const DEFAULTS = {
  url: 'redis://127.0.0.1:6379',
  prefix: 'sess:',
  ttl: 86400,
  disableTTL: false,
  disableTouch: false,
  serializer: JSON,
  scanCount: 100,
  commandTimeout: 2000,
  connectTimeout: 1000,
  maxSessionBytes: 1024 * 1024,
  absoluteTimeout: undefined,
  idleTimeout: undefined,
  userId: defaultUserId,
  maxSessionsPerUser: undefined,
  tls: undefined,
  sentinel: undefined,
  cluster: undefined,
  waitForReplicas: true,
  encryption: undefined,
  merge: false,
  singleConnection: false,
  readExpiry: false,
  metrics: undefined,
}

// Who owns a session, as login code usually records it: an explicit
// userId, passport's serialized user (an id, or an object with an id, as
// `done(null, { id, name })` stores it), or a user object with an id. The
// first of them that is set decides; the store then takes a string, a
// number or an object with its own toString (a MongoDB ObjectId) and
// refuses anything else, so a session is never silently ownerless. An empty
// string (or a number that is not finite) counts as not set: apps write
// `userId = ''` for anonymous visitors, and their saves must not fail.
function defaultUserId(sess) {
  const passport = sess.passport?.user
  const passportId = passport !== null && typeof passport === 'object' && !hasOwnToString(passport) ? passport.id : passport
  // Checked in turn without an array: this runs at every save and touch.
  if (isSet(sess.userId)) return sess.userId
  if (isSet(passportId)) return passportId
  const userId = sess.user?.id
  return isSet(userId) ? userId : undefined
}

function isSet(id) {
  return !(id === undefined || id === null || id === '' || (typeof id === 'number' && !Number.isFinite(id)))
}

// An id object such as MongoDB's ObjectId: its class gives it a toString.
function hasOwnToString(value) {
  return (
    typeof value.toString === 'function' &&
    value.toString !== Object.prototype.toString &&
    !Array.isArray(value) &&
    !(value instanceof Date)
  )
}

const KNOWN = new Set(Object.keys(DEFAULTS))

// Ten years, in seconds: longer is a mistake (ms given for seconds).
const MAX_TIMEOUT = 10 * 365 * 86400
const MAX_SESSIONS_PER_USER = 1e6

function isTimeout(v) {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= MAX_TIMEOUT
}

function fail(message) {
  throw new TypeError(`RedisSessionStore: ${message}`)
}

// The known name closest to a mistyped one (edit distance at most 2, or a
// case difference), for "did you mean".
function closest(name, known) {
  let best
  let bestDistance = 3
  for (const candidate of known) {
    const d = candidate.toLowerCase() === name.toLowerCase() ? 0 : distance(name, candidate)
    if (d < bestDistance) [best, bestDistance] = [candidate, d]
  }
  return best
}

function distance(a, b) {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    row = next
  }
  return row[b.length]
}

function unknownOption(name, known) {
  const guess = closest(name, known)
  fail(`unknown option "${name}"${guess ? `: did you mean "${guess}"?` : ''}`)
}

// A URL as messages show it: never its password.
function redactUrl(url) {
  return typeof url === 'string' ? url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*:)[^/@]*@/i, '$1***@') : url
}

// Options that are almost certainly a mistake but valid: said once, as
// warnings (see RedisSessionStore#_warn). Seconds given in milliseconds are
// the common one: 30 * 60 * 1000 as idleTimeout is almost 21 days.
const LOOKS_LIKE_MS = { idleTimeout: 7 * 86400, absoluteTimeout: 400 * 86400, ttl: 400 * 86400 }

function warnings(o) {
  const out = []
  for (const [name, limit] of Object.entries(LOOKS_LIKE_MS)) {
    const v = o[name]
    if (typeof v === 'number' && v > limit) {
      out.push([
        'WARN_TIMEOUT_LOOKS_LIKE_MS',
        `option "${name}" is ${v} seconds (${(v / 86400).toFixed(1)} days): it is in seconds, so if you meant ${v} ms, give ${v / 1000}`,
      ])
    }
  }
  if ((o.tls && o.tls.rejectUnauthorized === false) || /#insecure$/.test(o.url) || (o.cluster && o.cluster.nodes.some((n) => n.endsWith('#insecure')))) {
    out.push(['WARN_TLS_UNVERIFIED', "TLS certificates of the Redis server are not verified (#insecure or tls.rejectUnauthorized: false): anyone on the path can read and change sessions; give tls.ca instead"])
  }
  if (o.encryption && o.encryption.allowPlaintext) {
    out.push(['WARN_PLAINTEXT_ALLOWED', 'encryption.allowPlaintext is on: a plaintext value written into Redis is read as a session; turn it off once reencrypt() has run'])
  }
  return out
}

function positiveInt(name, value, max) {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    fail(`option "${name}" must be an integer from 1 to ${max}, got ${String(value)}`)
  }
}

const TLS_FIELDS = new Set(['ca', 'cert', 'key', 'rejectUnauthorized', 'servername'])

function pem(name, value) {
  if (value === undefined) return undefined
  const text = Buffer.isBuffer(value) ? value.toString('utf8') : value
  if (typeof text !== 'string' || !/-----BEGIN [A-Z0-9 ]+-----/.test(text)) {
    fail(`option "tls.${name}" must be PEM text (a string or a Buffer with -----BEGIN ...-----)`)
  }
  return text
}

// { ca, cert, key } as PEM text for rustls, and whether to verify the
// server; the caller checks that some connection speaks TLS.
function parseTls(tls) {
  if (tls === null || typeof tls !== 'object') fail('option "tls" must be an object')
  for (const name of Object.keys(tls)) {
    if (!TLS_FIELDS.has(name)) unknownOption(`tls.${name}`, [...TLS_FIELDS].map((f) => `tls.${f}`))
  }
  const out = { ca: pem('ca', tls.ca), cert: pem('cert', tls.cert), key: pem('key', tls.key), rejectUnauthorized: true }
  if ((out.cert === undefined) !== (out.key === undefined)) fail('options "tls.cert" and "tls.key" go together')
  if (tls.servername !== undefined) {
    if (typeof tls.servername !== 'string' || !/^[A-Za-z0-9.-]+$/.test(tls.servername)) fail('option "tls.servername" must be a host name')
    out.servername = tls.servername
  }
  if (tls.rejectUnauthorized !== undefined) {
    if (typeof tls.rejectUnauthorized !== 'boolean') fail('option "tls.rejectUnauthorized" must be a boolean')
    out.rejectUnauthorized = tls.rejectUnauthorized
  }
  return out
}

// A list of servers: redis:// or rediss:// URLs, all of one scheme (one
// TLS setting covers them all).
function nodeUrls(name, nodes) {
  if (!Array.isArray(nodes) || nodes.length === 0 || !nodes.every((n) => typeof n === 'string' && /^rediss?:\/\//.test(n))) {
    fail(`option "${name}" must be a non-empty array of redis:// or rediss:// URLs`)
  }
  if (new Set(nodes.map((n) => n.slice(0, n.indexOf(':')))).size > 1) fail(`option "${name}" mixes redis:// and rediss:// URLs`)
}

const SENTINEL_FIELDS = new Set(['nodes', 'name', 'username', 'password', 'db', 'tls'])

// { nodes: ['redis://host:26379', ...], name: 'mymaster', username?,
// password?, db?, tls? }: the sentinels to ask where the master of `name`
// is, the master's login (a sentinel's own goes in its URL), and whether the
// master and replicas speak TLS (a sentinel does when its URL is rediss://).
function parseSentinel(sentinel) {
  if (sentinel === null || typeof sentinel !== 'object') fail('option "sentinel" must be an object')
  for (const name of Object.keys(sentinel)) {
    if (!SENTINEL_FIELDS.has(name)) fail(`unknown option "sentinel.${name}"`)
  }
  const { nodes, name, username, password, db, tls = false } = sentinel
  for (const [field, value] of [['username', username], ['password', password]]) {
    if (value !== undefined && (typeof value !== 'string' || value === '')) fail(`option "sentinel.${field}" must be a non-empty string`)
  }
  if (db !== undefined && !(Number.isInteger(db) && db >= 0 && db < 65536)) fail('option "sentinel.db" must be a database index')
  if (typeof tls !== 'boolean') fail('option "sentinel.tls" must be a boolean (the master\'s certificates go in "tls")')
  nodeUrls('sentinel.nodes', nodes)
  if (typeof name !== 'string' || name === '') fail('option "sentinel.name" must be the master\'s name')
  return { nodes: [...nodes], name, username, password, db, tls }
}

// `tls` applies to whichever connections speak TLS; with none, it is a mistake.
function checkTlsUse(o) {
  // The name is checked on the one server of a URL; a cluster's nodes and
  // a sentinel's master are named by the cluster or the sentinels.
  if (o.tls.servername !== undefined && (o.sentinel !== undefined || o.cluster !== undefined)) {
    fail('option "tls.servername" goes with "url" only, not with "cluster" or "sentinel"')
  }
  if (o.sentinel === undefined) {
    if (!o.url.startsWith('rediss://')) fail('option "tls" needs a rediss:// URL')
    return
  }
  if (!o.sentinel.tls && !o.sentinel.nodes[0].startsWith('rediss://')) {
    fail('option "tls" needs "sentinel.tls: true" (a TLS master) or rediss:// URLs in "sentinel.nodes"')
  }
  // redis-rs sends no client certificate to a master it does not verify.
  if (o.sentinel.tls && !o.tls.rejectUnauthorized && o.tls.cert !== undefined) {
    fail('option "tls.cert" cannot be used with "tls.rejectUnauthorized: false" and "sentinel.tls"')
  }
}

const CONTROL = /[\u0000-\u001f\u007f]/
const ENCRYPTION_FIELDS = new Set(['keys', 'allowPlaintext'])
const KEY_FIELDS = new Set(['id', 'key'])
const KEY_BYTES = 32

// A key as users keep it (an environment variable): 32 bytes as a Buffer,
// or as hex, base64 or base64url text. The message never shows the key.
function keyBytes(i, key) {
  if (Buffer.isBuffer(key) || key instanceof Uint8Array) {
    if (key.length !== KEY_BYTES) fail(`"encryption.keys[${i}].key" must be ${KEY_BYTES} bytes, got ${key.length}`)
    return Buffer.from(key)
  }
  if (typeof key !== 'string') fail(`"encryption.keys[${i}].key" must be a Buffer or a hex, base64 or base64url string of ${KEY_BYTES} bytes`)
  let bytes
  if (/^[0-9a-fA-F]{64}$/.test(key)) bytes = Buffer.from(key, 'hex')
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(key)) bytes = Buffer.from(key, key.includes('-') || key.includes('_') ? 'base64url' : 'base64')
  if (!bytes || bytes.length !== KEY_BYTES) {
    fail(`"encryption.keys[${i}].key" must be ${KEY_BYTES} bytes (a Buffer, or 64 hex digits, or 43-44 base64/base64url characters); the string given is not`)
  }
  return bytes
}

// { keys: [{ id, key }, ...], allowPlaintext }: the first key encrypts,
// all of them decrypt (rotation); ids name a key in each stored value.
function parseEncryption(encryption) {
  if (encryption === null || typeof encryption !== 'object' || Array.isArray(encryption)) fail('option "encryption" must be an object { keys, allowPlaintext }')
  for (const name of Object.keys(encryption)) {
    if (!ENCRYPTION_FIELDS.has(name)) fail(`unknown option "encryption.${name}"`)
  }
  const { keys, allowPlaintext = false } = encryption
  if (!Array.isArray(keys) || keys.length === 0) fail('option "encryption.keys" must be a non-empty array of { id, key }')
  if (typeof allowPlaintext !== 'boolean') fail('option "encryption.allowPlaintext" must be a boolean')
  const ids = new Set()
  const out = keys.map((k, i) => {
    if (k === null || typeof k !== 'object') fail(`"encryption.keys[${i}]" must be an object { id, key }`)
    for (const name of Object.keys(k)) {
      if (!KEY_FIELDS.has(name)) fail(`unknown option "encryption.keys[${i}].${name}"`)
    }
    const { id } = k
    if (typeof id !== 'string' || id === '' || Buffer.byteLength(id) > 255 || CONTROL.test(id)) {
      fail(`"encryption.keys[${i}].id" must be a non-empty string of at most 255 bytes without control characters`)
    }
    if (ids.has(id)) fail(`"encryption.keys" has the id ${JSON.stringify(id)} twice`)
    ids.add(id)
    return { id, key: keyBytes(i, k.key) }
  })
  return { keys: out, allowPlaintext }
}

// { nodes: ['redis://host:7000', ...] }: seed nodes of a Redis Cluster (any
// few masters; the rest are found through CLUSTER SLOTS). A login goes in
// the URLs, as for `url`; every node is reached with the first URL's.
function parseCluster(cluster) {
  if (cluster === null || typeof cluster !== 'object' || Array.isArray(cluster)) fail('option "cluster" must be an object')
  for (const name of Object.keys(cluster)) {
    if (name !== 'nodes') fail(`unknown option "cluster.${name}"`)
  }
  const { nodes } = cluster
  nodeUrls('cluster.nodes', nodes)
  for (const n of nodes) {
    const db = /^rediss?:\/\/[^/]*\/(\d+)/.exec(n)
    if (db && db[1] !== '0') fail('a cluster has only database 0: drop the /db from "cluster.nodes"')
  }
  return { nodes: [...nodes] }
}

// { liveEvery: seconds }: how often the live-sessions gauge may count
// the sessions (length() is O(sessions)); without it there is no gauge.
function parseMetrics(metrics) {
  if (metrics === null || typeof metrics !== 'object' || Array.isArray(metrics)) fail('option "metrics" must be an object { liveEvery }')
  for (const name of Object.keys(metrics)) {
    if (name !== 'liveEvery') fail(`unknown option "metrics.${name}"`)
  }
  const { liveEvery } = metrics
  if (liveEvery !== undefined && !isTimeout(liveEvery)) {
    fail(`option "metrics.liveEvery" must be a positive number of seconds (up to ${MAX_TIMEOUT}), got ${String(liveEvery)}`)
  }
  return { liveEvery }
}

// Validates options up front so a typo fails at startup, not at the first
// request. Names, defaults and meaning follow connect-redis 9.
function parseOptions(options) {
  if (options === undefined) options = {}
  if (options === null || typeof options !== 'object') fail('options must be an object')
  if ('client' in options) {
    fail('the store owns its Redis connection: pass { url } instead of { client }')
  }
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) unknownOption(name, KNOWN)
  }
  const o = { ...DEFAULTS }
  for (const [k, v] of Object.entries(options)) if (v !== undefined) o[k] = v

  if (typeof o.url !== 'string' || !/^(rediss?:\/\/|memory:\/\/|file:\/\/\/)/.test(o.url)) {
    fail(`option "url" must be a redis://, rediss://, memory:// or file:///absolute/path URL, got ${JSON.stringify(redactUrl(o.url))}`)
  }
  const embedded = /^(memory|file):/.test(o.url)
  if (embedded) {
    for (const name of ['tls', 'sentinel', 'cluster']) {
      if (options[name] !== undefined) fail(`option "${name}" goes with Redis, not with the embedded engine (${o.url.split(':')[0]}://)`)
    }
  }
  if (typeof o.prefix !== 'string') fail('option "prefix" must be a string')
  if (typeof o.ttl !== 'function' && !(typeof o.ttl === 'number' && Number.isFinite(o.ttl) && o.ttl > 0)) {
    fail('option "ttl" must be a positive number of seconds or a function (session) => seconds')
  }
  if (typeof o.disableTTL !== 'boolean') fail('option "disableTTL" must be a boolean')
  if (typeof o.disableTouch !== 'boolean') fail('option "disableTouch" must be a boolean')
  const s = o.serializer
  if (!s || typeof s.stringify !== 'function' || typeof s.parse !== 'function') {
    fail('option "serializer" must have stringify and parse functions')
  }
  positiveInt('scanCount', o.scanCount, 1e6)
  positiveInt('commandTimeout', o.commandTimeout, 3600e3)
  positiveInt('connectTimeout', o.connectTimeout, 3600e3)
  positiveInt('maxSessionBytes', o.maxSessionBytes, 512 * 1024 * 1024)
  for (const name of ['absoluteTimeout', 'idleTimeout']) {
    const v = o[name]
    if (v !== undefined && typeof v !== 'function' && !isTimeout(v)) {
      fail(`option "${name}" must be a positive number of seconds (up to ${MAX_TIMEOUT}) or a function (session) => seconds | undefined, got ${String(v)}`)
    }
  }
  // Per-session limits leave no trace a cleanup could read them back from;
  // the cookie's deadline bounds how long an ended session's meta stays.
  if (o.disableTTL && (typeof o.idleTimeout === 'function' || typeof o.absoluteTimeout === 'function')) {
    fail('options "idleTimeout" and "absoluteTimeout" as functions need a TTL: drop "disableTTL", or give numbers')
  }
  if (typeof o.userId !== 'function') fail('option "userId" must be a function (session) => string | number | undefined')
  if (o.maxSessionsPerUser !== undefined && typeof o.maxSessionsPerUser !== 'function') {
    positiveInt('maxSessionsPerUser', o.maxSessionsPerUser, MAX_SESSIONS_PER_USER)
  }
  if (typeof o.waitForReplicas !== 'boolean') fail('option "waitForReplicas" must be a boolean')
  if (o.encryption !== undefined) o.encryption = parseEncryption(o.encryption)
  if (typeof o.merge !== 'boolean') fail('option "merge" must be a boolean')
  if (typeof o.singleConnection !== 'boolean') fail('option "singleConnection" must be a boolean')
  if (typeof o.readExpiry !== 'boolean') fail('option "readExpiry" must be a boolean')
  if (o.metrics !== undefined) o.metrics = parseMetrics(o.metrics)
  // Merging compares sessions key by key as JSON text.
  if (o.merge && o.serializer !== JSON) fail('option "merge" needs the default JSON serializer')
  if (o.cluster !== undefined) {
    if (options.url !== undefined) fail('give either "url" or "cluster", not both')
    if (options.sentinel !== undefined) fail('give either "sentinel" or "cluster", not both')
    o.cluster = parseCluster(o.cluster)
    o.url = o.cluster.nodes[0]
  }
  if (o.sentinel !== undefined) {
    if (options.url !== undefined) fail('give either "url" or "sentinel", not both')
    o.sentinel = parseSentinel(o.sentinel)
  }
  if (o.tls !== undefined) {
    o.tls = parseTls(o.tls)
    checkTlsUse(o)
  }
  return o
}

module.exports = { warnings, redactUrl, parseOptions, isTimeout, hasOwnToString, MAX_TIMEOUT, MAX_SESSIONS_PER_USER }
