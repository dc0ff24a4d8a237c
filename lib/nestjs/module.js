'use strict'

const session = require('express-session')
const { Module, Global, Inject } = require('@nestjs/common')
const { APP_FILTER } = require('@nestjs/core')
const { RedisSessionStore, captureDevice } = require('../..')
const { SESSION_STORE, SESSION_MODULE_OPTIONS } = require('./tokens')
const { SessionsService } = require('./service')
const { SessionGuard } = require('./guard')
const { sessionMiddleware, StoreUnavailableFilter } = require('./unavailable')

const OPTION_NAMES = new Set(['store', 'session', 'forRoutes', 'exclude', 'devices'])

function checkOptions(options) {
  if (options === null || typeof options !== 'object') throw new TypeError('SessionModule: options must be an object')
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name)) throw new TypeError(`SessionModule: unknown option "${name}" (known: ${[...OPTION_NAMES].join(', ')})`)
  }
  if (options.session?.store !== undefined) throw new TypeError('SessionModule: give the store as "store", not "session.store"')
  if (options.session?.secret === undefined) throw new TypeError('SessionModule: "session.secret" is required (express-session signs the cookie with it)')
  return options
}

const storeProvider = {
  provide: SESSION_STORE,
  useFactory: (options) => (options.store instanceof RedisSessionStore ? options.store : new RedisSessionStore(options.store)),
  inject: [SESSION_MODULE_OPTIONS],
}

const shared = [storeProvider, SessionsService, SessionGuard, { provide: APP_FILTER, useClass: StoreUnavailableFilter }]
const exported = [SESSION_STORE, SessionsService, SessionGuard]

/**
 * express-session with this store for a whole Nest app (Express adapter):
 * the middleware on every route (or `forRoutes` but `exclude`), the store
 * under SESSION_STORE, SessionsService and SessionGuard, store outages
 * answered 503, and the store closed when the application closes.
 */
class SessionModule {
  constructor(options, store) {
    this.options = options
    this.store = store
  }

  static forRoot(options) {
    checkOptions(options)
    return {
      module: SessionModule,
      global: true,
      providers: [{ provide: SESSION_MODULE_OPTIONS, useValue: options }, ...shared],
      exports: exported,
    }
  }

  static forRootAsync({ imports = [], inject = [], useFactory }) {
    if (typeof useFactory !== 'function') throw new TypeError('SessionModule.forRootAsync: "useFactory" must be a function returning the options')
    return {
      module: SessionModule,
      global: true,
      imports,
      providers: [
        { provide: SESSION_MODULE_OPTIONS, useFactory: async (...deps) => checkOptions(await useFactory(...deps)), inject },
        ...shared,
      ],
      exports: exported,
    }
  }

  configure(consumer) {
    const { session: sessionOptions, devices, forRoutes = ['*'], exclude = [] } = this.options
    const middleware = [sessionMiddleware(session({ resave: false, saveUninitialized: false, ...sessionOptions, store: this.store }))]
    if (devices !== false) middleware.push(captureDevice(devices ?? {}))
    const applied = consumer.apply(...middleware)
    if (exclude.length > 0) applied.exclude(...exclude)
    applied.forRoutes(...forRoutes)
  }

  // app.close(), or a signal with enableShutdownHooks().
  async onApplicationShutdown() {
    await this.store.close()
  }
}
Global()(SessionModule)
Module({})(SessionModule)
Inject(SESSION_MODULE_OPTIONS)(SessionModule, undefined, 0)
Inject(SESSION_STORE)(SessionModule, undefined, 1)

module.exports = { SessionModule }
