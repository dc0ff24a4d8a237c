'use strict'

// The examples' Redis: REDIS_URL when set, otherwise a throwaway
// redis-server from PATH (stopped by `server.dispose()`).
const { RedisServer } = require('../__test__/helpers/redis')

async function exampleRedis() {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, server: null }
  const server = await RedisServer.start()
  console.log(`started redis-server at ${server.url}`)
  return { url: server.url, server }
}

module.exports = { exampleRedis }
