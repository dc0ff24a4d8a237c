'use strict'

// Where the examples keep sessions: REDIS_URL when set (redis://…, or
// memory:// / file:///…), otherwise the embedded engine in a file under
// .tmp/, so a fresh clone runs them without a Redis and logins survive a
// restart of the app.
const fs = require('node:fs')
const path = require('node:path')

function exampleUrl() {
  if (process.env.REDIS_URL) return process.env.REDIS_URL
  const dir = path.join(__dirname, '..', '.tmp')
  fs.mkdirSync(dir, { recursive: true })
  const url = `file://${path.join(dir, 'example-sessions.db')}`
  console.log(`no REDIS_URL: sessions in ${url} (set REDIS_URL=redis://… to use Redis)`)
  return url
}

module.exports = { exampleUrl }
