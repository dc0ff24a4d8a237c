import type { CanActivate, DynamicModule, ExecutionContext, ModuleMetadata, MiddlewareConsumer, Type } from '@nestjs/common'
import type { RouteInfo } from '@nestjs/common/interfaces'
import type { Request } from 'express'
import type { SessionData, SessionOptions } from 'express-session'
import type { RedisSessionStore, RedisSessionStoreOptions, SessionStats, StatsOptions, UserId, CaptureDeviceOptions, DeviceInfo } from '..'

/** The store, for `@Inject(SESSION_STORE) store: RedisSessionStore`. */
export declare const SESSION_STORE: string

export interface SessionModuleOptions {
  /** The store's options, or a store you made (closed with the application either way). */
  store?: RedisSessionStoreOptions | RedisSessionStore
  /** express-session's options but `store`; `secret` is required. Defaults here: `resave: false`, `saveUninitialized: false`. */
  session: Omit<SessionOptions, 'store'>
  /** Routes that get sessions (default every route). */
  forRoutes?: Array<string | Type<any> | RouteInfo>
  /** Routes that do not. */
  exclude?: Array<string | RouteInfo>
  /** captureDevice's options, or false to record no device data. Default `{}`. */
  devices?: CaptureDeviceOptions | false
}

export interface SessionModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  inject?: any[]
  useFactory: (...args: any[]) => SessionModuleOptions | Promise<SessionModuleOptions>
}

export declare class SessionModule {
  static forRoot(options: SessionModuleOptions): DynamicModule
  static forRootAsync(options: SessionModuleAsyncOptions): DynamicModule
  configure(consumer: MiddlewareConsumer): void
}

/** One of the signed-in user's sessions, named by its handle, never its id. */
export interface Device {
  handle: string
  device: DeviceInfo | null
  createdAt: Date
  lastAccess: Date
  expiresAt: Date | null
  /** The session of the request that asked. */
  current: boolean
}

export declare class SessionsService {
  /** A new session id, then `session.userId = userId` and `data` set and saved. */
  login(req: Request, userId: UserId, data?: Partial<SessionData>): Promise<Request['session']>
  /** Destroys this session and clears its cookie. */
  logout(req: Request): Promise<void>
  devices(req: Request): Promise<Device[]>
  /** False when the handle is not one of this user's sessions. */
  revoke(req: Request, handle: string): Promise<boolean>
  revokeOthers(req: Request): Promise<number>
  revokeAll(userId: UserId): Promise<number>
  stats(options?: StatsOptions): Promise<SessionStats>
}

/** 401 without a signed-in session, except on @Public() routes; enforces @FreshSession(). */
export declare class SessionGuard implements CanActivate {
  canActivate(context: ExecutionContext): Promise<boolean>
}

export declare function Public(): MethodDecorator & ClassDecorator
/** 403 when the login is older than `seconds` (401 without one). */
export declare function FreshSession(seconds: number): MethodDecorator & ClassDecorator
/** The session's owner, or the session field named. */
export declare function CurrentUser(field?: keyof SessionData): ParameterDecorator
