'use strict'

// Injection tokens and metadata keys of the NestJS module, in one place so
// the module, the guard and the decorators agree.
const SESSION_STORE = 'REDIS_SESSION_STORE'
const SESSION_MODULE_OPTIONS = 'REDIS_SESSION_MODULE_OPTIONS'
const IS_PUBLIC = 'redis-session-store:public'
const FRESH_SESSION = 'redis-session-store:fresh'

module.exports = { SESSION_STORE, SESSION_MODULE_OPTIONS, IS_PUBLIC, FRESH_SESSION }
