'use strict'

// What every span, metric and channel message of a store says about where
// its sessions live: the database semantic conventions' attributes, from the
// parsed options. Host and port only: a URL's login never leaves here.
function targetOf(o) {
  const engine = /^(memory|file):/.exec(o.url)
  if (engine) return { embedded: true, attributes: { 'db.system.name': `redis_session_store.${engine[1]}` } }
  const attributes = { 'db.system.name': 'redis' }
  // A sentinel's master is found at run time; its address is not in the options.
  if (o.sentinel === undefined) {
    // A cluster's first seed node stands for the cluster (o.url is it).
    const u = new URL(o.url)
    attributes['server.address'] = u.hostname.replace(/^\[(.*)\]$/, '$1')
    attributes['server.port'] = u.port === '' ? 6379 : Number(u.port)
    const db = /^\/(\d+)/.exec(u.pathname)
    if (db && db[1] !== '0') attributes['db.namespace'] = db[1]
  }
  return { embedded: false, attributes }
}

module.exports = { targetOf }
