// Compile-only check of index.d.ts in a NestJS app (express adapter).
import { Controller, Get, Module, Post, Req } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { NestExpressApplication } from '@nestjs/platform-express'
import type { Request } from 'express'
import session from 'express-session'
import { RedisSessionStore } from '../..'

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

@Module({ controllers: [AuthController] })
class AppModule {}

export async function bootstrap(): Promise<void> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule)
  const store = new RedisSessionStore({ url: process.env.REDIS_URL, prefix: 'nest:' })
  app.use(session({ store, secret: 'nest', resave: false, saveUninitialized: false }))
  app.enableShutdownHooks()
  await app.listen(3000)
  // @ts-expect-error commandTimeout is milliseconds as a number
  new RedisSessionStore({ commandTimeout: '2s' })
}
