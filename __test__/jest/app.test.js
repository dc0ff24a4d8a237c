'use strict'

// A jest test of an Express app, written as users write them. It must exit
// by itself under --detectOpenHandles: close() releases the connection.
const express = require('express')
const session = require('express-session')
const request = require('supertest')
const { RedisSessionStore } = require('../..')
const { redisForTests } = require('../helpers/redis')

let redis
let store
let app

beforeAll(async () => {
  redis = await redisForTests()
  store = new RedisSessionStore({ url: redis.url, prefix: `jest:${process.pid}:` })

  app = express()
  app.use(session({ store, secret: 'jest secret', resave: false, saveUninitialized: false }))
  app.post('/login', (req, res) => {
    req.session.user = req.query.user
    res.json({ user: req.session.user })
  })
  app.get('/me', (req, res) => res.json({ user: req.session.user ?? null }))
  app.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.sendStatus(204))))
})

afterAll(async () => {
  await store?.close()
  await redis?.dispose()
})

test('a user logs in, stays logged in, and logs out', async () => {
  const agent = request.agent(app)

  await agent.post('/login?user=ada').expect(200, { user: 'ada' })
  await agent.get('/me').expect(200, { user: 'ada' })
  expect(await store.length()).toBe(1)

  await agent.post('/logout').expect(204)
  await agent.get('/me').expect(200, { user: null })
  expect(await store.length()).toBe(0)
})

test('the stored session is plain JSON with the user in it', async () => {
  const agent = request.agent(app)
  await agent.post('/login?user=grace').expect(200)
  const sessions = await store.all()
  expect(sessions).toHaveLength(1)
  expect(sessions[0]).toMatchObject({ user: 'grace', cookie: { path: '/', httpOnly: true } })
  await store.clear()
})
