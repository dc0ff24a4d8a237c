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
  /** SCAN COUNT hint for all/ids/length/clear. Default 100. */
  scanCount?: number
  /** Upper bound in ms for any one call, from the moment it is made. Default 2000. */
  commandTimeout?: number
  /** Upper bound in ms for opening a connection. Default 1000. */
  connectTimeout?: number
  /** Largest serialized session accepted by set/touch, in bytes. Default 1 MiB. */
  maxSessionBytes?: number
}

export type ErrorCode =
  | 'ERR_REDIS_TIMEOUT'
  | 'ERR_REDIS_UNAVAILABLE'
  | 'ERR_REDIS_REPLY'
  | 'ERR_STORE_CLOSED'
  | 'ERR_SESSION_CORRUPT'
  | 'ERR_SERIALIZE'
  | 'ERR_SESSION_TOO_LARGE'
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
  /** Sends queued calls, waits for every pending one, and releases the connection. */
  close(callback: (err?: any) => void): void
  close(): Promise<void>
}

/** connect-redis 9's export name, for a one-line migration. */
export { RedisSessionStore as RedisStore }
