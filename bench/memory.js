'use strict'

// Redis memory per session with every feature on: N sessions of about 200 B
// with an owner written through each Redis store, on a redis-server of its
// own (FLUSHALL before each store, which a shared REDIS_URL must not get),
// for two owner distributions. This store runs with idle and absolute
// timeouts, so each session has its meta and index entries; connect-redis
// (9 + node-redis, 7 + ioredis) keeps one string key per session. The figure
// is INFO memory's used_memory after ÷ N, taken once the store's process
// has closed (its writes, index updates included, answered before that, and
// its connection's buffers are gone).
const { spawnChild } = require('./ipc')
const { info, command } = require('./redis')
const { ratio } = require('./stats')
const { RedisServer } = require('../__test__/helpers/redis.js')

const log = (...args) => console.error('[bench]', ...args)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const KINDS = ['ours', 'connect-redis', 'ioredis']
// The timeouts of "Users, devices and timeouts" in the README.
const OURS_OPTIONS = { idleTimeout: 1800, absoluteTimeout: 43200 }

async function usedMemory(url) {
  const m = await info(url, 'memory')
  if (!m) throw new Error('INFO memory failed')
  return Number(m.used_memory)
}

async function keys(url) {
  const k = await info(url, 'keyspace')
  const db0 = k && /keys=(\d+)/.exec(k.db0 || '')
  return db0 ? Number(db0[1]) : 0
}

// c: { memorySessions, memorySize, memoryPerUser, memoryLimitMs }
async function memoryBench(c, problems) {
  const server = await RedisServer.start()
  const url = server.url
  const n = c.memorySessions
  const rows = []
  try {
    for (const perUser of c.memoryPerUser) {
      const row = { perUser, users: Math.ceil(n / perUser), stores: {} }
      for (const kind of KINDS) {
        if ((await command(url, ['FLUSHALL'])) !== 'OK') throw new Error('FLUSHALL failed')
        const before = await usedMemory(url)
        const w = spawnChild('store-worker.js', [kind, url])
        let fill
        try {
          await w.call('open', { prefix: 'sess:', options: kind === 'ours' ? OURS_OPTIONS : undefined }, 15_000)
          fill = await w.call('fill', { n, perUser, size: c.memorySize, concurrency: 1000, maxMs: c.memoryLimitMs }, c.memoryLimitMs + 60_000)
        } finally {
          await w.stop()
        }
        // Let Redis free the closed connection's buffers.
        await sleep(200)
        const after = await usedMemory(url)
        const stored = fill.written
        const s = {
          written: stored,
          sessionBytes: fill.sessionBytes,
          setsPerSec: fill.setsPerSec,
          usedMemoryBefore: before,
          usedMemoryAfter: after,
          bytesPerSession: stored ? (after - before) / stored : null,
          keysPerSession: stored ? (await keys(url)) / stored : null,
        }
        row.stores[kind] = s
        row.sessionBytes = fill.sessionBytes
        if (fill.errors) problems.push(`memory ${kind}, ${perUser} per user: ${fill.errors} errors (first: ${fill.firstError})`)
        if (fill.cutShort) problems.push(`memory ${kind}, ${perUser} per user: cut short after ${stored} of ${n} sessions by its ${c.memoryLimitMs / 1000} s limit`)
        log(`memory ${perUser} per user ${kind.padEnd(13)} ${stored.toLocaleString('en-US')} sessions of ${fill.sessionBytes} B: ${s.bytesPerSession == null ? 'n/a' : s.bytesPerSession.toFixed(0)} B each in Redis, ${s.keysPerSession == null ? 'n/a' : s.keysPerSession.toFixed(2)} keys each`)
      }
      for (const s of Object.values(row.stores)) s.oursRatio = ratio(row.stores.ours.bytesPerSession, s.bytesPerSession)
      rows.push(row)
    }
  } finally {
    await server.dispose()
  }
  return { sessions: n, size: c.memorySize, oursOptions: OURS_OPTIONS, rows }
}

module.exports = { memoryBench }
