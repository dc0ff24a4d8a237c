import { Body, Controller, Delete, Get, HttpCode, NotFoundException, Param, Post, Req, BadRequestException } from '@nestjs/common'
import type { Request } from 'express'
import { CurrentUser, FreshSession, Public, SessionsService } from 'redis-session-store/nestjs'

// How recent a login must be for a password change (seconds).
const FRESH_LOGIN_SECONDS = Number(process.env.FRESH_LOGIN_SECONDS ?? 300)

@Controller()
export class AuthController {
  constructor(private readonly sessions: SessionsService) {}

  @Public()
  @Get('health')
  health(): { ok: true } {
    return { ok: true }
  }

  @Public()
  @Post('login')
  @HttpCode(200)
  async login(@Req() req: Request, @Body() body: { user?: string; remember?: boolean }): Promise<{ user: string }> {
    if (!body.user) throw new BadRequestException('"user" is required')
    await this.sessions.login(req, body.user, { rememberMe: body.remember === true })
    if (body.remember === true) req.session.cookie.maxAge = 30 * 86400 * 1000
    return { user: body.user }
  }

  @Get('me')
  me(@CurrentUser() user: string, @CurrentUser('rememberMe') rememberMe: boolean | undefined): { user: string; rememberMe: boolean } {
    return { user, rememberMe: rememberMe === true }
  }

  @Post('logout')
  @HttpCode(204)
  async logout(@Req() req: Request): Promise<void> {
    await this.sessions.logout(req)
  }

  @Get('devices')
  devices(@Req() req: Request) {
    return this.sessions.devices(req)
  }

  @Delete('devices/:handle')
  @HttpCode(204)
  async revoke(@Req() req: Request, @Param('handle') handle: string): Promise<void> {
    if (!(await this.sessions.revoke(req, handle))) throw new NotFoundException('No such device among yours')
  }

  @Post('devices/revoke-others')
  @HttpCode(200)
  async revokeOthers(@Req() req: Request): Promise<{ revoked: number }> {
    return { revoked: await this.sessions.revokeOthers(req) }
  }

  @Post('logout-everywhere')
  @HttpCode(200)
  async everywhere(@CurrentUser() user: string): Promise<{ revoked: number }> {
    return { revoked: await this.sessions.revokeAll(user) }
  }

  @FreshSession(FRESH_LOGIN_SECONDS)
  @Post('password')
  @HttpCode(200)
  changePassword(): { changed: true } {
    return { changed: true }
  }

  @Get('admin/stats')
  stats() {
    return this.sessions.stats()
  }
}
