// Compile-only check of nestjs/index.d.ts as a Nest app uses it.
import { Controller, Get, Module, Post, Req } from '@nestjs/common'
import { APP_GUARD } from '@nestjs/core'
import type { Request } from 'express'
import {
  SessionModule,
  SessionsService,
  SessionGuard,
  Public,
  FreshSession,
  CurrentUser,
  SESSION_STORE,
  Device,
} from '../../nestjs'
import { RedisSessionStore } from '../..'

declare module 'express-session' {
  interface SessionData {
    plan: 'free' | 'pro'
  }
}

@Controller()
class AccountController {
  constructor(private readonly sessions: SessionsService) {}

  @Public()
  @Post('login')
  async login(@Req() req: Request): Promise<string> {
    const session = await this.sessions.login(req, 'ada', { plan: 'pro' })
    const plan: 'free' | 'pro' | undefined = session.plan
    return String(plan)
  }

  @Get('devices')
  async devices(@Req() req: Request, @CurrentUser('plan') plan: string): Promise<Device[]> {
    const list = await this.sessions.devices(req)
    const handles: string[] = list.map((d) => d.handle)
    const current: boolean = list.some((d) => d.current)
    void [plan, handles, current]
    return list
  }

  @FreshSession(300)
  @Post('password')
  async password(@Req() req: Request): Promise<number> {
    const revoked: boolean = await this.sessions.revoke(req, 'handle')
    const others: number = await this.sessions.revokeOthers(req)
    void revoked
    return others + (await this.sessions.revokeAll('ada'))
  }
}

@Module({
  imports: [
    SessionModule.forRoot({
      store: { url: 'memory://', idleTimeout: (s) => (s.plan === 'pro' ? undefined : 1800) },
      session: { secret: 's', cookie: { sameSite: 'lax' } },
      devices: { ip: 'truncated' },
      exclude: ['health'],
    }),
  ],
  controllers: [AccountController],
  providers: [{ provide: APP_GUARD, useClass: SessionGuard }],
})
export class AppModule {}

@Module({
  imports: [
    SessionModule.forRootAsync({
      useFactory: async () => ({ store: new RedisSessionStore({ url: 'memory://' }), session: { secret: 's' }, devices: false }),
    }),
  ],
})
export class AsyncModule {}

export const token: string = SESSION_STORE
