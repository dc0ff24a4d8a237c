'use strict'

// Redis under memory pressure, for the tests and the bench of a full or
// evicting Redis: filling a server to its limit with other data, writing an
// evicting load, and the names of the store's keys to look at them raw.

const { slotOf } = require('./cluster')

const FILLER_BYTES = 64 * 1024

function field(info, name) {
  const m = new RegExp(`^${name}:(.*)$`, 'm').exec(info)
  return m ? m[1].trim() : undefined
}

async function memory(raw) {
  const info = await raw.call('INFO', 'memory')
  return { used: Number(field(info, 'used_memory')), max: Number(field(info, 'maxmemory')), policy: field(info, 'maxmemory_policy') }
}

// Sends many commands in one write (a pipeline), resolving to their replies.
function pipeline(raw, commands) {
  raw.sock.cork()
  const replies = commands.map((args) => raw.call(...args))
  raw.sock.uncork()
  return Promise.all(replies)
}

/**
 * Fills a `noeviction` server with 64 KB strings until it refuses a write
 * with OOM, then sets `maxmemory` `margin` bytes below what is used. Why the
 * margin: at the limit Redis hovers around it (the refused write's buffers
 * are freed and usage dips back under), so the next small write might pass;
 * a server `margin` over its limit stays full while a test frees a few
 * sessions, as one does after a large write went through at the edge.
 * Resolves to { keys, used, max, free } where free() deletes the filler.
 */
async function fillToLimit(raw, { margin = 1024 * 1024, prefix = 'filler:' } = {}) {
  const value = 'f'.repeat(FILLER_BYTES)
  const keys = []
  for (let i = 0; ; i++) {
    const key = `${prefix}${i}`
    const reply = await raw.call('SET', key, value)
    if (reply instanceof Error) {
      if (!/^OOM/.test(reply.message)) throw reply
      break
    }
    keys.push(key)
    if (i > 100_000) throw new Error('the server never filled up: is maxmemory set?')
  }
  const { used } = await memory(raw)
  const max = used - margin
  const set = await raw.call('CONFIG', 'SET', 'maxmemory', String(max))
  if (set instanceof Error) throw set
  // The server is full now: a small write is refused.
  const probe = await raw.call('SET', `${prefix}probe`, 'x')
  if (!(probe instanceof Error)) throw new Error(`a write passed after filling (${used} used, maxmemory ${max})`)
  return {
    keys,
    used,
    max,
    async free() {
      for (let i = 0; i < keys.length; i += 100) {
        const reply = await raw.call('DEL', ...keys.slice(i, i + 100))
        if (reply instanceof Error) throw reply
      }
    },
  }
}

// The all-sessions index's shard for a session: in the session's slot,
// tagged `{prefix\u0001<n in base 36>}` with the least n that lands there.
const shardTags = new Map()
function shardKey(prefix, sid) {
  const slot = slotOf(prefix + sid)
  const known = `${prefix} ${slot}`
  if (!shardTags.has(known)) {
    let n = 0
    while (slotOf(`{${prefix}\u0001${n.toString(36)}}`) !== slot) n++
    shardTags.set(known, `{${prefix}\u0001${n.toString(36)}}all`)
  }
  return shardTags.get(known)
}

// The store's keys for `prefix` (one without braces), as the README and
// issues 12 and 14 name them: a session's meta is its field in its shard.
function storeKeys(prefix) {
  return {
    session: (sid) => `${prefix}${sid}`,
    shard: (sid) => shardKey(prefix, sid),
    user: (id) => `{${prefix}\u0001user:${id}}`,
  }
}

// A meta as stored: `created,last access,cookie deadline,marker,owner`,
// times in epoch ms in base 36.
function parseMeta(text) {
  if (typeof text !== 'string') return null
  const [c, a, e, x, ...owner] = text.split(',')
  const time = (t) => (t === '' ? null : parseInt(t, 36))
  return { c: time(c), a: time(a), e: time(e), x: time(x), u: owner.join(',') }
}

module.exports = { memory, pipeline, fillToLimit, storeKeys, parseMeta, field }
