'use strict'

// Replies to many calls at once are handed out in two halves: what the
// first half's callbacks ask for is sent before the second half runs
// (lib/batcher.js), so Redis works while the event loop does. Against a
// real redis-server.
const test = require('ava')
const { storeSuite, session } = require('./helpers/suite')

const { makeStore } = storeSuite(test, 'waves')

function getAll(store, sids, onEach) {
  return Promise.all(sids.map((sid, i) => new Promise((resolve, reject) => {
    store.get(sid, (err, sess) => {
      if (err) return reject(err)
      onEach(i)
      resolve(sess)
    })
  })))
}

test('the first half of a wave of replies sends its follow-up calls before the second half runs', async (t) => {
  const store = makeStore()
  const sids = Array.from({ length: 32 }, (_, i) => `w${i}`)
  await Promise.all(sids.map((sid) => store.set(sid, session(60_000, { sid }))))
  const batcher = store._batcher
  const sentWhenRun = []
  const followUps = []
  await getAll(store, sids, (i) => {
    // Batches on their way when this callback runs (its own is answered).
    sentWhenRun[i] = batcher.inFlight.size
    followUps.push(store.get(sids[i]))
  })
  const again = await Promise.all(followUps)
  t.deepEqual(again.map((s) => s.sid), sids)
  t.true(sentWhenRun.slice(0, 16).every((n) => n === 0), JSON.stringify(sentWhenRun))
  t.true(sentWhenRun.slice(16).every((n) => n === 1), JSON.stringify(sentWhenRun))
})

test('a few replies are not split', async (t) => {
  const store = makeStore()
  const sids = Array.from({ length: 8 }, (_, i) => `f${i}`)
  await Promise.all(sids.map((sid) => store.set(sid, session())))
  const sentWhenRun = []
  await getAll(store, sids, (i) => {
    sentWhenRun[i] = store._batcher.inFlight.size
    store.get(sids[i])
  })
  t.deepEqual(sentWhenRun, new Array(8).fill(0))
})
