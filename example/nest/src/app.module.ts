import './session-data'
import { Module } from '@nestjs/common'
import { APP_GUARD } from '@nestjs/core'
import { ConfigModule, ConfigService } from '@nestjs/config'
import { SessionModule, SessionGuard } from 'redis-session-store/nestjs'
import { AuthController } from './auth.controller'

const DAY = 86400

@Module({
  imports: [
    ConfigModule.forRoot(),
    SessionModule.forRootAsync({
      imports: [ConfigModule],
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        store: {
          // The embedded engine in memory unless SESSION_STORE_URL names a Redis.
          url: config.get<string>('SESSION_STORE_URL', 'memory://'),
          // Remember me: 30 days, else 30 minutes idle within 24 hours.
          idleTimeout: (s) => (s.rememberMe ? undefined : 30 * 60),
          absoluteTimeout: (s) => (s.rememberMe ? 30 * DAY : DAY),
        },
        session: {
          secret: config.get<string>('SESSION_SECRET', 'change me'),
          cookie: { httpOnly: true, sameSite: 'lax', secure: config.get('NODE_ENV') === 'production' },
        },
      }),
    }),
  ],
  controllers: [AuthController],
  // Every route needs a signed-in session but those marked @Public().
  providers: [{ provide: APP_GUARD, useClass: SessionGuard }],
})
export class AppModule {}
