'use strict'

// The default owner through a real Passport login (passport + passport-local
// on express-session, over HTTP with supertest): after logging in, the
// user's sessions are listed under the user's id, whether serializeUser
// stores the id or an object with an id; anonymous visitors whose app writes
// `userId = ''` are served, not answered 500.
const test = require('ava')

// stats() without the numbers that depend on time.
const counts = ({ sessions, users, active }) => ({ sessions, users, active })
const request = require('supertest')
const express = require('express')
const session = require('express-session')
const { Passport } = require('passport')
const { Strategy: LocalStrategy } = require('passport-local')
const { randomUUID } = require('node:crypto')
const { RedisSessionStore } = require('..')
const { redisForTests } = require('./helpers/redis')

let redis
const stores = []
test.before(async () => {
  redis = await redisForTests()
})
test.after.always(async () => {
  await Promise.all(stores.map((s) => s.close()))
  if (redis) await redis.dispose()
})

function makeStore() {
  const store = new RedisSessionStore({ url: redis.url, prefix: `pp:${randomUUID()}:` })
  stores.push(store)
  return store
}

const USERS = [
  { id: 42, username: 'ada', password: 'lovelace' },
  { id: 'u-bob', username: 'bob', password: 'builder' },
]

// `serialize(user)` is what serializeUser stores in req.session.passport.user.
function makeApp(store, serialize, { keepSessionInfo = false } = {}) {
  const passport = new Passport()
  passport.use(
    new LocalStrategy((username, password, done) => {
      const user = USERS.find((u) => u.username === username)
      done(null, user && user.password === password ? user : false)
    }),
  )
  passport.serializeUser((user, done) => done(null, serialize(user)))
  passport.deserializeUser((stored, done) => {
    const id = stored !== null && typeof stored === 'object' ? stored.id : stored
    done(null, USERS.find((u) => u.id === id) || false)
  })

  const app = express()
  app.use(express.urlencoded({ extended: false }))
  app.use(session({ store, secret: 'passport test secret', resave: false, saveUninitialized: false }))
  app.use(passport.session())
  const me = (req, res) => res.json({ id: req.sessionID, user: req.user ? req.user.username : null, visits: req.session.visits || 0 })
  // The app's convention for visitors who are not logged in: userId ''.
  app.get('/visit', (req, res) => {
    if (!req.user) req.session.userId = ''
    req.session.visits = (req.session.visits || 0) + 1
    me(req, res)
  })
  app.get('/me', me)
  app.post('/login', passport.authenticate('local', { failWithError: true, keepSessionInfo }), me)
  app.post('/logout', (req, res, next) => req.logout((err) => (err ? next(err) : me(req, res))))
  app.use((err, req, res, next) => res.status(err.status || 500).json({ code: err.code || null, message: err.message }))
  return app
}

const listed = async (store, userId) => (await store.listUserSessions(userId)).map((s) => s.id)

for (const [what, serialize] of [
  ['the id', (user) => user.id],
  ['an object with the id', (user) => ({ id: user.id, name: user.username })],
]) {
  for (const keepSessionInfo of [false, true]) {
    test(`serializeUser stores ${what}${keepSessionInfo ? ', keepSessionInfo' : ''}: the login is listed under the user's id`, async (t) => {
      const store = makeStore()
      const app = makeApp(store, serialize, { keepSessionInfo })
      const ada = request.agent(app)

      // Anonymous visits save userId '': served, stored with no owner.
      const first = await ada.get('/visit').expect(200)
      t.is((await ada.get('/visit').expect(200)).body.visits, 2)
      t.is((await store.get(first.body.id)).userId, '')
      t.deepEqual(counts(await store.stats()), { sessions: 1, users: 0, active: 1 })

      await ada.post('/login').type('form').send({ username: 'ada', password: 'wrong' }).expect(401)
      const login = await ada.post('/login').type('form').send({ username: 'ada', password: 'lovelace' }).expect(200)
      // Passport renews the id on login.
      const id = login.body.id
      t.not(id, first.body.id)
      t.is(login.body.user, 'ada')
      t.deepEqual((await store.get(id)).passport, { user: serialize(USERS[0]) })
      t.is((await store.get(id)).userId, keepSessionInfo ? '' : undefined)
      t.deepEqual(await listed(store, 42), [id])
      t.deepEqual(await listed(store, '42'), [id])
      const [entry] = await store.listUserSessions(42)
      t.deepEqual(entry.session.passport, { user: serialize(USERS[0]) })

      // Still logged in, the session stays listed (and one more visit keeps userId '' beside passport's user).
      t.is((await ada.get('/visit').expect(200)).body.user, 'ada')
      t.deepEqual(await listed(store, 42), [id])

      // A second device of ada, and bob, each under their own id.
      const phone = request.agent(app)
      const second = (await phone.post('/login').type('form').send({ username: 'ada', password: 'lovelace' }).expect(200)).body.id
      const bob = request.agent(app)
      const bobs = (await bob.post('/login').type('form').send({ username: 'bob', password: 'builder' }).expect(200)).body.id
      t.deepEqual((await listed(store, 42)).sort(), [id, second].sort())
      t.deepEqual(await listed(store, 'u-bob'), [bobs])
      t.deepEqual(counts(await store.stats()), { sessions: 3, users: 2, active: 3 })

      // Log out everywhere else, from the phone: the laptop is signed out.
      t.is(await store.destroyUserSessions(42, { except: second }), 1)
      t.is((await ada.get('/me').expect(200)).body.user, null)
      t.is((await phone.get('/me').expect(200)).body.user, 'ada')

      // Logging out takes the session off the user's list.
      await phone.post('/logout').expect(200)
      t.deepEqual(await listed(store, 42), [])
      t.deepEqual(await listed(store, 'u-bob'), [bobs])
    })
  }
}
