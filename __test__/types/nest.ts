// Compile-only check of index.d.ts in a NestJS app (express adapter).
import { Controller, Delete, Get, Inject, Module, Post, Req } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { NestExpressApplication } from '@nestjs/platform-express'
import type { Request } from 'express'
import session from 'express-session'
import { RedisSessionStore, UserSession } from '../..'

declare module 'express-session' {
  interface SessionData {
    userId?: number
  }
}

@Controller('auth')
class AuthController {
  @Post('login')
  login(@Req() req: Request): { id: string } {
    req.session.userId = 1
    return { id: req.sessionID }
  }

  @Get('me')
  me(@Req() req: Request): { userId: number | null } {
    return { userId: req.session.userId ?? null }
  }
}

const STORE = 'SESSION_STORE'

@Controller('devices')
class DevicesController {
  constructor(@Inject(STORE) private readonly store: RedisSessionStore) {}

  @Get()
  async list(@Req() req: Request): Promise<Array<{ id: string; current: boolean; lastAccess: string }>> {
    if (req.session.userId === undefined) return []
    const sessions: UserSession[] = await this.store.listUserSessions(req.session.userId)
    return sessions.map((s) => ({ id: s.id, current: s.id === req.sessionID, lastAccess: s.lastAccess.toISOString() }))
  }

  @Delete('others')
  async revokeOthers(@Req() req: Request): Promise<{ destroyed: number }> {
    if (req.session.userId === undefined) return { destroyed: 0 }
    return { destroyed: await this.store.destroyUserSessions(req.session.userId, { except: req.sessionID }) }
  }
}

const store = new RedisSessionStore({
  url: process.env.REDIS_URL,
  prefix: 'nest:',
  idleTimeout: 1800,
  absoluteTimeout: 12 * 3600,
  maxSessionsPerUser: 5,
  userId: (sess) => sess.userId,
})

@Module({ controllers: [AuthController, DevicesController], providers: [{ provide: STORE, useValue: store }] })
class AppModule {}

export async function bootstrap(): Promise<void> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule)
  app.use(session({ store, secret: 'nest', resave: false, saveUninitialized: false }))
  app.enableShutdownHooks()
  await app.listen(3000)
  // @ts-expect-error commandTimeout is milliseconds as a number
  new RedisSessionStore({ commandTimeout: '2s' })
}
