'use strict'

// The NestJS example app (example/nest, compiled by `npm test` before jest
// runs) end to end with supertest, on memory:// and on a real redis-server:
// the module, the guard, the decorators and the service as a Nest app uses
// them. It must exit by itself under --detectOpenHandles: app.close() closes
// the store.
process.env.FRESH_LOGIN_SECONDS = '1'
require('reflect-metadata')
const request = require('supertest')
const { Test } = require('@nestjs/testing')
const { SESSION_STORE } = require('../../nestjs')
const { RedisServer } = require('../helpers/redis')
const { AppModule } = require('../../.tmp/example-nest/app.module')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0'
const PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile/15E148'

async function startApp(url) {
  process.env.SESSION_STORE_URL = url
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile()
  const app = moduleRef.createNestApplication({ logger: false })
  await app.init()
  return app
}

// A browser: its own cookie jar and user agent.
function browser(app, userAgent) {
  const agent = request.agent(app.getHttpServer())
  const send = (method, path) => agent[method](path).set('User-Agent', userAgent)
  return {
    get: (path) => send('get', path),
    post: (path) => send('post', path),
    delete: (path) => send('delete', path),
    login: (user, remember = false) => send('post', '/login').send({ user, remember }).expect(200),
  }
}

const sidOf = (res) => /connect\.sid=([^;]+)/.exec(res.headers['set-cookie']?.join(';') ?? '')?.[1]

describe.each([
  ['memory://', async () => ({ url: 'memory://nest-e2e', server: null })],
  ['a real redis-server', async () => ({ server: await RedisServer.start() })],
])('the Nest example on %s', (_, start) => {
  let server
  let app

  beforeAll(async () => {
    const backend = await start()
    server = backend.server
    app = await startApp(server ? server.url : backend.url)
  })

  afterAll(async () => {
    await app?.close()
    await server?.dispose()
  })

  test('login gives a new session id; me; 401 without a session and after logout; @Public routes', async () => {
    const ada = browser(app, FIREFOX)
    await ada.get('/health').expect(200, { ok: true })
    await ada.get('/me').expect(401)
    const first = await ada.login('ada')
    const again = await ada.login('ada')
    expect(sidOf(again)).toBeDefined()
    expect(sidOf(again)).not.toBe(sidOf(first))
    await ada.get('/me').expect(200, { user: 'ada', rememberMe: false })
    await ada.post('/logout').expect(204)
    await ada.get('/me').expect(401)
  })

  test('devices: two agents listed with the current one marked; revoke by handle, another user refused', async () => {
    const laptop = browser(app, FIREFOX)
    const phone = browser(app, PHONE)
    const eve = browser(app, FIREFOX)
    await laptop.login('grace')
    await phone.login('grace')
    await eve.login('eve')
    const { body: devices } = await laptop.get('/devices').expect(200)
    expect(devices).toHaveLength(2)
    expect(devices.filter((d) => d.current)).toHaveLength(1)
    const current = devices.find((d) => d.current)
    const other = devices.find((d) => !d.current)
    expect(current.device.userAgent).toBe(FIREFOX)
    expect(other.device.userAgent).toBe(PHONE)
    expect(other.device.ip).toBeTruthy()
    // No session id in what the page gets.
    expect(JSON.stringify(devices)).not.toMatch(/"id"/)
    // Eve cannot revoke Grace's phone with its handle.
    await eve.delete(`/devices/${other.handle}`).expect(404)
    await phone.get('/me').expect(200)
    await laptop.delete(`/devices/${other.handle}`).expect(204)
    await phone.get('/me').expect(401)
    await laptop.get('/me').expect(200)
  })

  test('revoke others keeps this session; log out everywhere from a second agent ends all', async () => {
    const a = browser(app, FIREFOX)
    const b = browser(app, PHONE)
    const c = browser(app, PHONE)
    for (const agent of [a, b, c]) await agent.login('hopper')
    await a.post('/devices/revoke-others').expect(200, { revoked: 2 })
    await b.get('/me').expect(401)
    await a.get('/me').expect(200)
    await b.login('hopper')
    await b.post('/logout-everywhere').expect(200, { revoked: 2 })
    await a.get('/me').expect(401)
    await b.get('/me').expect(401)
  })

  test('@FreshSession: 403 once the login is older than allowed, 200 after a new login', async () => {
    const a = browser(app, FIREFOX)
    await a.login('lin')
    await sleep(1200)
    const refused = await a.post('/password').expect(403)
    expect(refused.body.message).toMatch(/sign in again/)
    await a.login('lin')
    await a.post('/password').expect(200, { changed: true })
  })

  test('remember me and the admin numbers', async () => {
    const a = browser(app, FIREFOX)
    await a.login('kay', true)
    await a.get('/me').expect(200, { user: 'kay', rememberMe: true })
    const { body } = await a.get('/admin/stats').expect(200)
    expect(body.sessions).toBeGreaterThanOrEqual(1)
    expect(typeof body.averageAge).toBe('number')
  })

  test('the store is the one provided under SESSION_STORE', async () => {
    const store = app.get(SESSION_STORE)
    const a = browser(app, FIREFOX)
    await a.login('zed')
    expect((await store.listUserSessions('zed')).length).toBe(1)
  })
})

test('runs on the Nest major this configuration asks for', () => {
  const { version } = require('@nestjs/core/package.json')
  expect(version.split('.')[0]).toBe(globalThis.NEST_MAJOR ?? '11')
})

test('app.close() closes the store', async () => {
  const app = await startApp('memory://')
  const store = app.get(SESSION_STORE)
  await store.set('s', { cookie: { maxAge: 60_000 } })
  await app.close()
  await expect(store.get('s')).rejects.toMatchObject({ code: 'ERR_STORE_CLOSED' })
})

describe('the Nest example when Redis stops mid-test', () => {
  let server
  let app

  beforeAll(async () => {
    server = await RedisServer.start()
    app = await startApp(server.url)
  })

  afterAll(async () => {
    await app?.close()
    await server?.dispose()
  })

  test('503 with Retry-After while Redis is down, 200 again once it is back', async () => {
    const a = browser(app, FIREFOX)
    await a.login('ada')
    await a.get('/me').expect(200)
    await server.stop()
    const down = await a.get('/me').expect(503)
    expect(down.headers['retry-after']).toBe('5')
    expect(down.body.code).toMatch(/^ERR_REDIS_/)
    await server.start()
    // The store reconnects by itself; the session was lost with the data.
    let back
    for (let i = 0; i < 50; i++) {
      back = await a.get('/health')
      if (back.status === 200) break
      await sleep(100)
    }
    expect(back.status).toBe(200)
    await a.login('ada')
    await a.get('/me').expect(200)
  })
})
