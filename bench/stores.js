'use strict'

const crypto = require('node:crypto')
const { CONNECT_REDIS, IOREDIS } = require('./peers')

// The stores under test, each opened the way its users would open it.
const STORES = {
  ours: 'redis-session-store',
  'ours-plain': 'redis-session-store, no owners',
  'ours-owned': 'redis-session-store, owners + idleTimeout',
  'ours-cluster': 'redis-session-store on a cluster',
  'connect-redis-cluster': `${CONNECT_REDIS} cluster client`,
  'connect-redis': CONNECT_REDIS,
  ioredis: IOREDIS,
  memory: 'express-session MemoryStore',
  json: 'JSON only (no store)',
}

// Options of ours that the features part (features.js) turns on, by name.
// Built here, in the store's process: a key Buffer would not cross the IPC
// channel (JSON) intact.
const FEATURES = {
  encryption: () => ({ encryption: { keys: [{ id: 'k1', key: crypto.randomBytes(32) }] } }),
  merge: () => ({ merge: true }),
}

// The bench's sessions carry `user.id`, which ours takes as the owner by
// default (per-user index on). Variants: no owners at all, and owners
// (`userId`, store-worker.js) with an idle timeout too.
const OWNED = new Set(['ours-owned'])
const VARIANTS = { 'ours-plain': { userId: () => undefined }, 'ours-owned': { idleTimeout: 1800 } }

// `options`: more options for this store (ours only), e.g. its timeouts;
// `feature`: a name in FEATURES to turn on (ours only).
async function openStore(kind, { url, prefix, options = {}, feature }) {
  if (kind === 'ours' || VARIANTS[kind]) {
    const { RedisStore } = require('..')
    const store = new RedisStore({ url, prefix, ...VARIANTS[kind], ...options, ...(feature ? FEATURES[feature]() : {}) })
    return { store, close: () => store.close() }
  }
  // `url` is a comma-separated list of the cluster's nodes.
  if (kind === 'ours-cluster') {
    const { RedisStore } = require('..')
    const store = new RedisStore({ cluster: { nodes: url.split(',') }, prefix })
    return { store, close: () => store.close() }
  }
  if (kind === 'connect-redis-cluster') {
    const { createCluster } = require('redis')
    const { RedisStore } = await import('connect-redis')
    const client = createCluster({ rootNodes: url.split(',').map((u) => ({ url: u })) })
    client.on('error', (err) => console.error(`[bench] node-redis cluster: ${err.message}`))
    await client.connect()
    const store = new RedisStore({ client, prefix })
    return { store, close: () => client.close() }
  }
  if (kind === 'connect-redis') {
    const { createClient } = require('redis')
    const { RedisStore } = await import('connect-redis')
    const client = createClient({ url })
    client.on('error', (err) => console.error(`[bench] node-redis: ${err.message}`))
    await client.connect()
    const store = new RedisStore({ client, prefix })
    return { store, close: () => client.close() }
  }
  // The strongest JS setup: connect-redis 9 and later take only node-redis, so the
  // ioredis pairing is connect-redis 7's; auto-pipelining sends what one
  // tick issues as one write, as node-redis does by itself.
  if (kind === 'ioredis') {
    const Redis = require('ioredis')
    const RedisStore = require('connect-redis7').default
    const client = new Redis(url, { enableAutoPipelining: true, lazyConnect: true })
    client.on('error', (err) => console.error(`[bench] ioredis: ${err.message}`))
    await client.connect()
    const store = new RedisStore({ client, prefix })
    return { store, close: () => client.quit() }
  }
  if (kind === 'memory') {
    const { MemoryStore } = require('express-session')
    return { store: new MemoryStore(), close: async () => {} }
  }
  if (kind === 'json') {
    const { JsonOnlyStore } = require('./json-store')
    return { store: new JsonOnlyStore(), close: async () => {} }
  }
  throw new Error(`unknown store ${kind}`)
}

module.exports = { STORES, FEATURES, OWNED, openStore }
