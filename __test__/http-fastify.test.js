'use strict'

// fastify 5 + @fastify/session with the store; @fastify/session calls
// get/set/destroy with callbacks and stores its own Session objects.
const test = require('ava')
const Fastify = require('fastify')
const { storeSuite } = require('./helpers/suite')

const MAX_AGE = 60_000
const SECRET = 'a fastify test secret of at least 32 characters'

const suite = storeSuite(test, 'fastify')
const { raw } = suite
let store
let app

test.before(async () => {
  await suite.ready
  store = suite.makeStore()

  app = Fastify()
  app.register(require('@fastify/cookie'))
  app.register(require('@fastify/session'), {
    store,
    secret: SECRET,
    // inject() speaks plain HTTP, so the cookie must not be Secure.
    cookie: { secure: false, maxAge: MAX_AGE },
    saveUninitialized: false,
  })
  const reply = (request) => ({ id: request.session.sessionId, user: request.session.user ?? null })
  app.get('/me', async (request) => reply(request))
  app.post('/login', async (request) => {
    await request.session.regenerate()
    request.session.user = request.query.user
    return reply(request)
  })
  app.post('/logout', async (request) => {
    await request.session.destroy()
    return { ok: true }
  })
  await app.ready()
})

test.after.always(async () => {
  if (app) await app.close()
})

const key = (sid) => `${store.prefix}${sid}`

// A minimal cookie jar over app.inject.
function client() {
  let cookie
  return async (method, url) => {
    const res = await app.inject({ method, url, cookies: cookie ? { sessionId: cookie } : {} })
    const set = res.cookies.find((c) => c.name === 'sessionId')
    if (set) cookie = set.value
    return { status: res.statusCode, body: res.json(), setCookie: set }
  }
}

test('fastify: login, persist, logout', async (t) => {
  const http = client()

  const anon = await http('GET', '/me')
  t.is(anon.status, 200)
  t.is(anon.body.user, null)
  t.is(anon.setCookie, undefined)
  t.is(await raw.call('EXISTS', key(anon.body.id)), 0)

  const login = await http('POST', '/login?user=linus')
  t.is(login.status, 200)
  const { id } = login.body
  t.is(login.body.user, 'linus')
  t.not(id, anon.body.id)
  t.truthy(login.setCookie)
  const value = JSON.parse(await raw.call('GET', key(id)))
  t.is(value.user, 'linus')
  // The cookie derives originalMaxAge from expires - now, so a
  // millisecond may tick away under load.
  t.true(value.cookie.originalMaxAge <= MAX_AGE && value.cookie.originalMaxAge > MAX_AGE - 1000, String(value.cookie.originalMaxAge))
  t.is(await raw.call('PEXPIRETIME', key(id)), Date.parse(value.cookie.expires))

  for (let i = 0; i < 2; i++) {
    const me = await http('GET', '/me')
    t.is(me.status, 200)
    t.deepEqual(me.body, { id, user: 'linus' })
  }

  const logout = await http('POST', '/logout')
  t.is(logout.status, 200)
  t.deepEqual(logout.body, { ok: true })
  t.is(await raw.call('EXISTS', key(id)), 0)

  const after = await http('GET', '/me')
  t.is(after.status, 200)
  t.is(after.body.user, null)
  t.not(after.body.id, id)
  t.is(await raw.call('EXISTS', key(after.body.id)), 0)
})

test('fastify: the session read back through the store keeps its data and expiry', async (t) => {
  const http = client()
  const { id } = (await http('POST', '/login?user=ada')).body
  const got = await new Promise((resolve, reject) => store.get(id, (err, s) => (err ? reject(err) : resolve(s))))
  t.is(got.user, 'ada')
  t.is(Date.parse(got.cookie.expires), await raw.call('PEXPIRETIME', key(id)))
  // rolling (the default) saves again on each request, moving the expiry.
  const before = await raw.call('PEXPIRETIME', key(id))
  await new Promise((r) => setTimeout(r, 20))
  const me = await http('GET', '/me')
  t.deepEqual(me.body, { id, user: 'ada' })
  t.truthy(me.setCookie)
  t.true((await raw.call('PEXPIRETIME', key(id))) > before)
})

test('fastify: a forged or unknown session cookie gets a fresh anonymous session', async (t) => {
  const forged = await app.inject({ method: 'GET', url: '/me', cookies: { sessionId: 'not-a-signed-id' } })
  t.is(forged.statusCode, 200)
  t.is(forged.json().user, null)

  // Validly signed, but the store has no such session: get() must answer null.
  const signed = new (require('@fastify/cookie').Signer)(SECRET).sign('unknown-id')
  const unknown = await app.inject({ method: 'GET', url: '/me', cookies: { sessionId: signed } })
  t.is(unknown.statusCode, 200)
  t.is(unknown.json().user, null)
  t.not(unknown.json().id, 'unknown-id')
})
