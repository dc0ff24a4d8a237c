'use strict'

// The opt-in gauge of live sessions (option metrics: { liveEvery }): one
// observable gauge per meter, observing each store that asked for it with
// its length() (O(sessions), so counted at most every liveEvery seconds
// and reused in between). A store leaves the gauge when it is closed.
const { onMeter } = require('./otel')

const stores = new Map()
const meters = new WeakSet()
let listening = false

function add(store, everySeconds, attributes, count) {
  stores.set(store, { every: everySeconds * 1000, attributes, count, value: null, at: -Infinity, pending: null })
  if (listening) return
  listening = true
  onMeter((meter) => {
    if (meter === null || meters.has(meter)) return
    meters.add(meter)
    meter
      .createObservableGauge('redis_session_store.sessions.live', {
        description: 'Live sessions in the store (counted at most every metrics.liveEvery seconds)',
        unit: '{session}',
      })
      .addCallback(observe)
  })
}

function remove(store) {
  stores.delete(store)
}

async function observe(result) {
  const now = Date.now()
  const counts = []
  for (const [store, entry] of stores) {
    if (now - entry.at >= entry.every) entry.pending ??= recount(store, entry)
    counts.push(entry.pending)
  }
  await Promise.all(counts)
  for (const entry of stores.values()) {
    if (entry.value !== null) result.observe(entry.value, entry.attributes)
  }
}

// A failed count leaves the store out of this observation (unknown, not
// zero) and is not retried before liveEvery has passed.
async function recount(store, entry) {
  try {
    entry.value = await entry.count.call(store)
  } catch {
    entry.value = null
  }
  entry.at = Date.now()
  entry.pending = null
}

module.exports = { add, remove }
