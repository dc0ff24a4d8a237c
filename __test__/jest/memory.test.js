'use strict'

// The README's jest example: the app's store on the embedded engine, no
// Redis service. It must exit by itself under --detectOpenHandles.
const express = require('express')
const session = require('express-session')
const request = require('supertest')
const { RedisSessionStore } = require('../..')

let store
let app

beforeAll(() => {
  store = new RedisSessionStore({ url: 'memory://' })
  app = express()
  app.use(session({ store, secret: 'jest secret', resave: false, saveUninitialized: false }))
  app.get('/login', (req, res) => {
    req.session.user = req.query.user
    res.send(`Logged in as ${req.session.user}`)
  })
  app.get('/', (req, res) => res.send(req.session.user ? `Hello ${req.session.user}` : 'Not logged in'))
})

afterAll(() => store.close())

test('a login survives the next request', async () => {
  const agent = request.agent(app)
  await agent.get('/login?user=ada').expect(200)
  await agent.get('/').expect(200, 'Hello ada')
  await request(app).get('/').expect(200, 'Not logged in')
  expect(await store.listUserSessions('ada')).toHaveLength(0) // `user` is a string: no owner by default
  expect(await store.length()).toBe(1)
})
