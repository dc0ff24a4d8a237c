'use strict'

// redis-session-store/nestjs: a NestJS module over express-session and this
// store. Needs @nestjs/common and @nestjs/core (10 or later).
const { SessionModule } = require('../lib/nestjs/module')
const { SessionsService } = require('../lib/nestjs/service')
const { SessionGuard } = require('../lib/nestjs/guard')
const { Public, FreshSession, CurrentUser } = require('../lib/nestjs/decorators')
const { SESSION_STORE } = require('../lib/nestjs/tokens')

module.exports = { SessionModule, SessionsService, SessionGuard, Public, FreshSession, CurrentUser, SESSION_STORE }
