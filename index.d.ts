import { Store, SessionData } from 'express-session'

export interface Serializer {
  stringify(value: any): string
  parse(text: string): any
}

/** A user id: a string, a number, or an id object with its own `toString` (a MongoDB ObjectId). */
export type UserId = string | number | { toString(): string }

/** A limit decided per session, at each write: `undefined` (or null) for no limit for that session. */
export type SessionPolicy<T> = (sess: SessionData) => T | undefined | null

export interface RedisSessionStoreOptions {
  /** redis:// or rediss:// URL, with optional user:password@ and /db. Default 'redis://127.0.0.1:6379'. */
  url?: string
  /** Key prefix; keys are `prefix + sid`, as connect-redis writes them. Default 'sess:'. */
  prefix?: string
  /** Seconds, or a function of the session returning seconds. Used when the cookie has no expiry, or always when a function. Default 86400. */
  ttl?: number | ((sess: SessionData) => number)
  /** Store sessions without a TTL. Default false. */
  disableTTL?: boolean
  /** Make touch() a no-op. Default false. */
  disableTouch?: boolean
  /** How sessions become strings in Redis. Default JSON. */
  serializer?: Serializer
  /** Sessions per command group for all/ids/length/clear/stats and the per-user calls (16 groups per round trip); nothing SCANs. Default 100. */
  scanCount?: number
  /** Upper bound in ms for any one call, from the moment it is made. Default 2000. */
  commandTimeout?: number
  /** Upper bound in ms for opening a connection. Default 1000. */
  connectTimeout?: number
  /** Largest serialized session accepted by set/touch, in bytes. Default 1 MiB. */
  maxSessionBytes?: number
  /**
   * Seconds since the session was created (first stored) after which it is gone, even if in use; or a
   * function of the session (remember me), evaluated at each write, `undefined` for no limit. Default: none.
   */
  absoluteTimeout?: number | SessionPolicy<number>
  /**
   * Seconds since the last set or touch after which the session is gone; or a function of the session,
   * evaluated at each write, `undefined` for no limit. Default: none.
   */
  idleTimeout?: number | SessionPolicy<number>
  /**
   * The owner of a session, for listUserSessions/destroyUserSessions/maxSessionsPerUser/stats.
   * Default: `sess.userId ?? sess.passport?.user ?? sess.user?.id` (passport's user may be an object
   * with an `id`; `''` counts as not set, so it is no owner). Strings, numbers and id objects with their
   * own `toString` (a MongoDB ObjectId, indexed by its text) are owners; any other value fails the save.
   * A function of your own must return `undefined`/`null` for no owner: `''` fails the save.
   */
  userId?: (sess: SessionData) => UserId | undefined | null
  /**
   * When a user has more sessions than this, the least recently used are destroyed; or a function of the
   * session being saved with its owner (exclusive login for some users), `undefined` for no cap. Default: no limit.
   */
  maxSessionsPerUser?: number | SessionPolicy<number>
  /**
   * When the master has replicas, destroy and destroyUserSessions answer only once a replica has
   * the logout (Redis WAIT), so a failover cannot undo it; otherwise they fail with ERR_REDIS_TIMEOUT
   * at commandTimeout. Default true.
   */
  waitForReplicas?: boolean
  /**
   * Encrypt sessions at rest (AES-256-GCM, in the native core). The first key encrypts, all of them
   * decrypt: put a new key first to rotate, then run `reencrypt()` before removing the old one.
   * Encrypted values are not readable by connect-redis.
   */
  encryption?: {
    /** Keys with unique ids (1-255 bytes); each key 32 bytes: a Buffer, or hex/base64/base64url text. */
    keys: Array<{ id: string; key: Buffer | Uint8Array | string }>
    /** Read values stored before encryption was on (and encrypt them at their next save). Default false. */
    allowPlaintext?: boolean
  }
  /**
   * Overlapping requests of one session keep each other's changes: a save writes only the top-level keys its
   * request added, changed or deleted since it loaded the session, over what is stored now (the later save wins
   * a key both changed). Needs the default JSON serializer. Default false (last save wins, as connect-redis).
   */
  merge?: boolean
  /**
   * Keep to one connection to Redis. By default a store with one plain `redis://` server also talks
   * to it on a socket of the JS thread while nothing else is in flight (no thread hop per call; one
   * request at a time is about 1.3x faster); set this where connections are counted or limited.
   * Default false.
   */
  singleConnection?: boolean
  /**
   * Make `get` also read the key's expiry (`PEXPIRETIME`, one more command a read), so that
   * `cookie.expires` shows the last `touch`, as MemoryStore's does. Without it `get` returns the
   * session as stored, as connect-redis does; express-session itself resets `cookie.expires` on
   * every request. With `idleTimeout`/`absoluteTimeout` it is always read (from the meta).
   * Default false.
   */
  readExpiry?: boolean
  /**
   * OpenTelemetry metrics beyond the defaults (see docs/observability.md). `liveEvery`: report the
   * gauge `redis_session_store.sessions.live`, counting the sessions with `length()` (O(sessions))
   * at most every that many seconds. Without it there is no gauge.
   */
  metrics?: { liveEvery?: number }
  /** Find the master through Redis Sentinel instead of `url`, and follow its failovers. */
  sentinel?: {
    /**
     * The sentinels, as redis:// URLs, or rediss:// for sentinels that speak TLS (not mixed).
     * A sentinel's login goes in its URL, the same in every URL.
     */
    nodes: string[]
    /** The master's name, as the sentinels know it. */
    name: string
    /** The master's ACL user and password (a sentinel's own go in its URL), and database index. */
    username?: string
    password?: string
    db?: number
    /** The master and its replicas speak TLS, verified with the `tls` option's CA. Default false. */
    tls?: boolean
  }
  /**
   * Use a Redis Cluster instead of `url`: a few seed nodes (the rest are found
   * through CLUSTER SLOTS); a login goes in the URLs. Every call works across
   * slots, following MOVED/ASK while slots migrate.
   */
  cluster?: {
    /** Seed nodes, as redis:// or rediss:// URLs (database 0 only). */
    nodes: string[]
  }
  /**
   * TLS beyond what a rediss:// URL says (needs a rediss:// URL, or with `sentinel`: `sentinel.tls`
   * or rediss:// sentinels, applying to every TLS connection). PEM as strings or Buffers.
   */
  tls?: {
    /** CA certificate(s) to verify the server with, instead of the system's roots. */
    ca?: string | Buffer
    /** Client certificate, for servers that require one (with `key`). */
    cert?: string | Buffer
    key?: string | Buffer
    /** false: do not verify the server's certificate (like the URL's `#insecure`). Default true. */
    rejectUnauthorized?: boolean
    /** The name the server's certificate must carry (and the SNI name), when it is not the URL's host. With `url` only. */
    servername?: string
  }
}

/** What `captureDevice()` records beside a logged-in session. */
export interface DeviceInfo {
  /** The user agent at login (at most 256 characters). */
  userAgent: string | null
  /** The client IP at login (`req.ip`), as the `ip` option keeps it. */
  ip: string | null
  /** The client IP of the latest request. */
  lastIp: string | null
}

export interface UserSession {
  /** The session id. */
  id: string
  /** An opaque, stable name of the session for pages and URLs; the id cannot be recovered from it. */
  handle: string
  /** What `captureDevice()` recorded, or null (nothing recorded, e.g. a session written by connect-redis). */
  device: DeviceInfo | null
  /** The session, or null when its value does not open or parse (then `unreadable` is true): still listed, and ended by `destroyUserSessions`. */
  session: SessionData | null
  unreadable?: true
  /** When the session was first stored. */
  createdAt: Date
  /** The last set or touch. */
  lastAccess: Date
  /** When Redis will drop the session, or null if never. */
  expiresAt: Date | null
}

export interface SessionStats {
  /** Live sessions. */
  sessions: number
  /** Distinct owners among live sessions. */
  users: number
  /** Live sessions set or touched within `activeWithin` seconds. */
  active: number
  /** Mean time since creation over live sessions, in ms; 0 when there are none. */
  averageAge: number
  /** The creation time of the oldest live session, or null when there are none. */
  oldestCreatedAt: Date | null
  /** With `endedWithin`: the sessions that ended within it, across every instance sharing the store. */
  ended?: EndedStats
}

export interface StatsOptions {
  /** Seconds; `active` counts the sessions set or touched within them. Default 300. */
  activeWithin?: number
  /** Seconds, 0 to 86400: adds `ended`, over the whole minutes this window overlaps (the current one included). */
  endedWithin?: number
}

export interface EndedStats {
  /** Sessions that ended. */
  sessions: number
  /** Their mean duration (end minus creation), in ms; 0 when there are none. */
  averageDuration: number
  /** How many ended for each reason that occurred (reasons with none are absent). */
  byReason: Partial<Record<SessionEndReason, number>>
}

export interface ReencryptResult {
  /** Rewritten under the first key. */
  reencrypted: number
  /** Already under the first key. */
  current: number
  /** Left as they are: they do not decrypt (tampered, or a key id not configured). */
  unreadable: number
  /** Saved again under an older key each time they were read (an instance not rotated yet). */
  raced: number
}

export type ErrorCode =
  | 'ERR_REDIS_TIMEOUT'
  | 'ERR_REDIS_UNAVAILABLE'
  | 'ERR_REDIS_REPLY'
  | 'ERR_REDIS_FULL'
  | 'ERR_STORE_CLOSED'
  | 'ERR_SESSION_CORRUPT'
  | 'ERR_SESSION_KEY_UNKNOWN'
  | 'ERR_SERIALIZE'
  | 'ERR_SESSION_TOO_LARGE'
  | 'ERR_SESSION_FILE_CORRUPT'
  | 'ERR_INVALID_ARG'
  | 'ERR_INTERNAL'
  | 'ERR_NATIVE'

/** Why a session ended (see docs/events.md). */
export type SessionEndReason = 'logout' | 'revoked' | 'everywhere' | 'limit' | 'idle' | 'absolute' | 'expired' | 'binding'

/** `'sessionCreated'`: a session was first stored. Never a session id: `handle` is `store.handleOf(sid)`. */
export interface SessionCreatedEvent {
  handle: string
  userId: string | null
  createdAt: Date
}

/** `'sessionEnded'`: told once across every instance sharing the store. */
export interface SessionEndedEvent {
  handle: string
  userId: string | null
  /** null for a session this store never recorded (written by connect-redis). */
  createdAt: Date | null
  lastAccess: Date | null
  endedAt: Date
  /** ms from creation to the end; null when the creation is unknown. */
  duration: number | null
  reason: SessionEndReason
}

export class RedisSessionStoreError extends Error {
  readonly code: ErrorCode
}

type Callback<T> = (err: any, value?: T) => void

export class RedisSessionStore extends Store {
  constructor(options?: RedisSessionStoreOptions)
  readonly prefix: string
  readonly ttl: number | ((sess: SessionData) => number)
  readonly disableTTL: boolean
  readonly disableTouch: boolean
  readonly serializer: Serializer
  readonly scanCount: number
  readonly commandTimeout: number
  readonly maxSessionBytes: number
  readonly absoluteTimeout: number | SessionPolicy<number> | undefined
  readonly idleTimeout: number | SessionPolicy<number> | undefined
  readonly maxSessionsPerUser: number | SessionPolicy<number> | undefined
  readonly waitForReplicas: boolean
  /** The ids of `encryption.keys`, in order (never the keys); undefined without encryption. */
  readonly encryptionKeyIds: string[] | undefined
  readonly merge: boolean
  readonly singleConnection: boolean
  readonly readExpiry: boolean

  /** What the store learned of its server that you should know, e.g. `WARN_REDIS_EVICTION` for an allkeys-* policy, or `WARN_SESSION_BINDING` from `captureDevice({ bind })`. */
  on(event: 'warning', listener: (warning: Error & { code: string }) => void): this
  on(event: 'sessionCreated', listener: (event: SessionCreatedEvent) => void): this
  on(event: 'sessionEnded', listener: (event: SessionEndedEvent) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this

  get(sid: string, callback: (err: any, session?: SessionData | null) => void): void
  get(sid: string): Promise<SessionData | null>
  set(sid: string, session: SessionData, callback: (err?: any) => void): void
  set(sid: string, session: SessionData): Promise<void>
  touch(sid: string, session: SessionData, callback: (err?: any) => void): void
  touch(sid: string, session: SessionData): Promise<void>
  destroy(sid: string, callback: (err?: any) => void): void
  destroy(sid: string): Promise<void>
  /** Every session, each with its `id` (connect-redis's shape). */
  all(callback: (err: any, sessions?: Array<SessionData & { id: string }>) => void): void
  all(): Promise<Array<SessionData & { id: string }>>
  ids(callback: Callback<string[]>): void
  ids(): Promise<string[]>
  length(callback: (err: any, length?: number) => void): void
  length(): Promise<number>
  clear(callback: (err?: any) => void): void
  clear(): Promise<void>
  /** Records sessions this store did not write (connect-redis's, an older version's) in its indexes; SCANs once. */
  reindex(): Promise<{ indexed: number; skipped: number }>
  /**
   * Rewrites every session not under the first encryption key under it, keeping expiry, owner and
   * times; bounded per step, safe while serving. `unreadable`: values that do not decrypt, left as they are;
   * `raced`: saved again under an older key while it ran (an instance not rotated yet): run it again.
   */
  reencrypt(): Promise<ReencryptResult>
  reencrypt(callback: Callback<ReencryptResult>): void
  /** A user's live sessions, most recently used first. */
  listUserSessions(userId: UserId): Promise<UserSession[]>
  listUserSessions(userId: UserId, callback: Callback<UserSession[]>): void
  /** The handle of a session id (as `listUserSessions` lists it), e.g. to mark the current device. */
  handleOf(sid: string): string
  /** Destroys the session `handle` names if it is `userId`'s (a logout, as destroy()); resolves to whether it was. */
  revokeUserSession(userId: UserId, handle: string): Promise<boolean>
  revokeUserSession(userId: UserId, handle: string, callback: Callback<boolean>): void
  /** Records device data beside session `sid` if it exists (what `captureDevice()` does); resolves to whether it did. */
  recordDevice(sid: string, device: Partial<DeviceInfo>): Promise<boolean>
  recordDevice(sid: string, device: Partial<DeviceInfo>, callback: Callback<boolean>): void
  /** Destroys a user's sessions but those in `except`; resolves to how many were destroyed. */
  destroyUserSessions(userId: UserId, options?: { except?: string | string[] }): Promise<number>
  destroyUserSessions(userId: UserId, callback: Callback<number>): void
  destroyUserSessions(userId: UserId, options: { except?: string | string[] }, callback: Callback<number>): void
  /** Counts over the live sessions (`activeWithin` in seconds, default 300); with `endedWithin`, the fleet's ended sessions too. */
  stats(options?: StatsOptions): Promise<SessionStats>
  stats(callback: Callback<SessionStats>): void
  stats(options: StatsOptions, callback: Callback<SessionStats>): void
  /** Sends queued calls, waits for every pending one, and releases the connection. */
  close(callback: (err?: any) => void): void
  close(): Promise<void>
}

export interface CaptureDeviceOptions {
  /** How much of the client IP to keep: 'full' (default), 'truncated' (/24 IPv4, /48 IPv6) or false (none). */
  ip?: 'full' | 'truncated' | false
  /** 'userAgent': a session used with another user agent than at login is ended; the request goes on with a new session. */
  bind?: 'userAgent'
  /** Sessions whose device this process remembers (so an unchanged one costs nothing). Default 10000. */
  maxEntries?: number
}

/** Middleware after `session()`: records a logged-in session's user agent and IP beside it (see docs/guide.md, "My devices"). */
export function captureDevice(options?: CaptureDeviceOptions): (req: any, res: any, next: (err?: any) => void) => void

/** connect-redis 9's export name, for a one-line migration. */
export { RedisSessionStore as RedisStore }
