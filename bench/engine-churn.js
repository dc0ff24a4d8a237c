'use strict'

// memory:// under churn: ROUNDS rounds of SESSIONS sessions of ~1 KB that
// live MAX_AGE_MS, each round followed by a pause until they have all
// expired plus PAUSE_MS. Prints, per round, RSS, length() and what the
// engine still holds (keys, and bytes of keys and values, from the dev
// build's engineHeld() hook). Memory must level off: expired sessions are
// dropped and their memory reused.
//   node --expose-gc bench/engine-churn.js
//   (ROUNDS=10 SESSIONS=100000 MAX_AGE_MS=2000 PAUSE_MS=5000; OWNERS=1: each
//   session with a user; STORE_OPTIONS='{"idleTimeout":1800}': more options)
const { RedisSessionStore } = require('..')
const native = require('../lib/native').loadBinding()

const ROUNDS = Number(process.env.ROUNDS || 10)
const SESSIONS = Number(process.env.SESSIONS || 100_000)
const MAX_AGE_MS = Number(process.env.MAX_AGE_MS || 2000)
const PAUSE_MS = Number(process.env.PAUSE_MS || 5000)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function main() {
  const store = new RedisSessionStore({ url: 'memory://', ...JSON.parse(process.env.STORE_OPTIONS || '{}') })
  const pad = 'x'.repeat(900)
  for (let round = 1; round <= ROUNDS; round++) {
    const writes = []
    for (let i = 0; i < SESSIONS; i++) {
      const sess = { cookie: { originalMaxAge: MAX_AGE_MS, expires: new Date(Date.now() + MAX_AGE_MS).toISOString() }, pad }
      if (process.env.OWNERS) sess.userId = `u${round}-${i}`
      writes.push(store.set(`r${round}-${i}`, sess))
      if (writes.length === 1000) await Promise.all(writes.splice(0))
    }
    await Promise.all(writes)
    await sleep(MAX_AGE_MS + PAUSE_MS)
    if (global.gc) global.gc()
    const held = native.engineHeld ? native.engineHeld() : null
    const rssMB = Math.round(process.memoryUsage().rss / 1048576)
    console.log(JSON.stringify({ round, rssMB, length: await store.length(), held }))
  }
  await store.close()
}

main()
