import { Store, SessionData } from 'express-session'

export interface Serializer {
  stringify(value: any): string
  parse(text: string): any
}

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
  /** Seconds since the session was created (first stored) after which it is gone, even if in use. Default: none. */
  absoluteTimeout?: number
  /** Seconds since the last set or touch after which the session is gone. Default: none. */
  idleTimeout?: number
  /**
   * The owner of a session, for listUserSessions/destroyUserSessions/maxSessionsPerUser/stats.
   * Default: `sess.userId ?? sess.passport?.user ?? sess.user?.id` (strings and numbers only;
   * passport's user may be an object with an `id`; `''` counts as not set, so it is no owner).
   * A function of your own must return `undefined`/`null` for no owner: `''` fails the save.
   */
  userId?: (sess: SessionData) => string | number | undefined | null
  /** When a user has more sessions than this, the least recently used are destroyed. Default: no limit. */
  maxSessionsPerUser?: number
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

export interface UserSession {
  /** The session id. */
  id: string
  session: SessionData
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
  readonly absoluteTimeout: number | undefined
  readonly idleTimeout: number | undefined
  readonly maxSessionsPerUser: number | undefined
  readonly waitForReplicas: boolean
  /** The ids of `encryption.keys`, in order (never the keys); undefined without encryption. */
  readonly encryptionKeyIds: string[] | undefined
  readonly merge: boolean
  readonly singleConnection: boolean

  /** What the store learned of its server that you should know, e.g. `WARN_REDIS_EVICTION` for an allkeys-* policy. */
  on(event: 'warning', listener: (warning: Error & { code: string }) => void): this
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
  listUserSessions(userId: string | number): Promise<UserSession[]>
  /** Destroys a user's sessions but those in `except`; resolves to how many were destroyed. */
  destroyUserSessions(userId: string | number, options?: { except?: string | string[] }): Promise<number>
  /** Counts over the live sessions; `activeWithin` in seconds, default 300. */
  stats(options?: { activeWithin?: number }): Promise<SessionStats>
  /** Sends queued calls, waits for every pending one, and releases the connection. */
  close(callback: (err?: any) => void): void
  close(): Promise<void>
}

/** connect-redis 9's export name, for a one-line migration. */
export { RedisSessionStore as RedisStore }
