'use strict'

// The stores under test, each opened the way its users would open it.
const STORES = {
  ours: 'redis-session-store',
  'ours-cluster': 'redis-session-store on a cluster',
  'connect-redis-cluster': 'connect-redis 9 + node-redis 6 cluster client',
  'connect-redis': 'connect-redis 9 + node-redis 6',
  memory: 'express-session MemoryStore',
}

async function openStore(kind, { url, prefix }) {
  if (kind === 'ours') {
    const { RedisStore } = require('..')
    const store = new RedisStore({ url, prefix })
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
    const { RedisStore } = require('connect-redis')
    const client = createCluster({ rootNodes: url.split(',').map((u) => ({ url: u })) })
    client.on('error', (err) => console.error(`[bench] node-redis cluster: ${err.message}`))
    await client.connect()
    const store = new RedisStore({ client, prefix })
    return { store, close: () => client.close() }
  }
  if (kind === 'connect-redis') {
    const { createClient } = require('redis')
    const { RedisStore } = require('connect-redis')
    const client = createClient({ url })
    client.on('error', (err) => console.error(`[bench] node-redis: ${err.message}`))
    await client.connect()
    const store = new RedisStore({ client, prefix })
    return { store, close: () => client.close() }
  }
  if (kind === 'memory') {
    const { MemoryStore } = require('express-session')
    return { store: new MemoryStore(), close: async () => {} }
  }
  throw new Error(`unknown store ${kind}`)
}

module.exports = { STORES, openStore }
