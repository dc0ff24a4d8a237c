'use strict'

// The near socket (README, "How it works"): with one plain Redis server the
// JS thread talks to it on a socket of its own, and a batch whose socket is
// lost goes through the writer instead. Against a real redis-server; the
// cuts are real socket closes, made at a chosen moment.
const test = require('ava')
const { storeSuite, session, sleep } = require('./helpers/suite')

const { raw, makeStore } = storeSuite(test, 'near')

async function nearOpen(store) {
  const near = store._batcher.near
  for (let i = 0; i < 200 && !near.connected; i++) {
    await store.get('warm-up')
    await sleep(10)
  }
  if (!near.connected) throw new Error('the near socket did not open')
  // Its opening replies: until they are read, batches go to the writer.
  for (let i = 0; i < 100; i++) {
    await store.get('warm-up')
    if (near.sentAt.length === 0 && (await lastCommand(near)) === 'get') return near
    await sleep(10)
  }
  throw new Error('no batch took the near socket')
}

// The last command the server ran for the near socket's connection.
async function lastCommand(near) {
  const mine = (await raw.clients()).find((c) => c.addr === `127.0.0.1:${near.socket.localPort}`)
  return mine && mine.cmd
}

test('one call at a time travels on the near socket, and a second connection beside the writer\'s', async (t) => {
  const store = makeStore()
  await store.set('a', session(60_000, { v: 1 }))
  const near = await nearOpen(store)
  t.is((await store.get('a')).v, 1)
  t.is(await lastCommand(near), 'get', 'a get is one GET, on the near connection')
  await store.touch('a', session(60_000, { v: 1 }))
  t.is(await lastCommand(near), 'pexpireat')
  t.is((await store.get('a')).v, 1)
})

test('a near socket cut with batches on it: they go through the writer, in order, nothing lost', async (t) => {
  const store = makeStore()
  await store.set('x', session(60_000, { v: 0 }))
  const near = await nearOpen(store)
  // Cut right after the next batch is written, before any reply is read: the
  // server may or may not have run it; sent again, it leaves the same state.
  const send = near.send
  near.send = function (...args) {
    send.apply(this, args)
    near.send = send
    near.socket.destroy()
  }
  const calls = [store.set('x', session(60_000, { v: 1 })), store.get('x'), store.set('y', session(60_000, { v: 2 }))]
  // Issued after the cut was seen: behind the batches sent again.
  await sleep(0)
  calls.push(store.get('x'), store.get('y'))
  const [, first, , second, y] = await Promise.all(calls)
  t.is(first.v, 1)
  t.is(second.v, 1)
  t.is(y.v, 2)
  t.is(JSON.parse(String(await raw.call('GET', `${store.prefix}x`))).v, 1)
  t.false(near.connected)
  // A later socket takes batches again.
  t.truthy(await nearOpen(store))
})

test('a read of many sessions at once on the near socket: each value as written, non-ASCII, missing and large ones too', async (t) => {
  const store = makeStore()
  const texts = ['plain', 'café ü', '😀 emoji, two UTF-16 units', '中文 text', '']
  const ids = Array.from({ length: 300 }, (_, i) => `m${i}`)
  // Every seventh id is never saved. The values (0-1 KB each) come back
  // in several strings, each holding whole values; a session of 600 KB
  // is a string of its own.
  const saved = ids.filter((_, i) => i % 7 !== 3)
  const big = 'ß'.repeat(300_000)
  const text = (k) => texts[k % texts.length].repeat(1 + (k % 40))
  for (const [i, id] of saved.entries()) await store.set(id, session(60_000, { i, text: text(i) }))
  await store.set('big1', session(60_000, { big }))
  await store.set('big2', session(60_000, { big, two: true }))
  const near = await nearOpen(store)
  // One batch each (issued in one tick), taken by the near socket: its
  // numbers (2 + 2 + 3 per operation) outgrow the first array.
  const read = await Promise.all(ids.map((id) => store.get(id)))
  t.true(near.numbers.length >= 4 + 3 * ids.length)
  for (const [i, id] of ids.entries()) {
    const k = saved.indexOf(id)
    if (k === -1) t.is(read[i], null, id)
    else t.deepEqual([read[i].i, read[i].text], [k, text(k)], id)
  }
  t.is(await lastCommand(near), 'get')
  const [one, two, none] = await Promise.all([store.get('big1'), store.get('big2'), store.get('nothing')])
  t.is(one.big, big)
  t.true(two.two && two.big === big)
  t.is(none, null)
  t.is(await lastCommand(near), 'get')
})

test('scripts flushed from the server: the save goes through the writer, which loads them again', async (t) => {
  const store = makeStore()
  await nearOpen(store)
  await raw.call('SCRIPT', 'FLUSH')
  await store.set('s', session(60_000, { v: 3 }))
  t.is((await store.get('s')).v, 3)
  t.is(JSON.parse(String(await raw.call('GET', `${store.prefix}s`))).v, 3)
  t.truthy(await nearOpen(store), 'a new near socket once the scripts are back')
})

test('a call over many sessions sees every save made before it on the near socket', async (t) => {
  const store = makeStore()
  const near = await nearOpen(store)
  for (let round = 0; round < 5; round++) {
    // The saves' bytes are held back on the near socket, so they reach the
    // server after the call's own reads would: the call must wait for them.
    near.socket.cork()
    const saves = []
    for (let i = 0; i <= round; i++) saves.push(store.set(`r${round}-${i}`, session()))
    const count = store.length()
    setTimeout(() => near.socket.uncork(), 50)
    await Promise.all(saves)
    t.is(await count, ((round + 1) * (round + 2)) / 2)
  }
})

test('encrypted stores keep sealing off the JS thread: no near socket', (t) => {
  const store = makeStore({ encryption: { keys: [{ id: 'k1', key: Buffer.alloc(32, 7) }] } })
  t.is(store._batcher.near, null)
})

// The connections opened since `after` (CLIENT LIST ids only grow), with the
// last command each ran. Serial tests run before the others, so only the
// store of the test opens any meanwhile.
async function newConnections(after) {
  return (await raw.clients()).filter((c) => c.id > after).map(({ id, cmd }) => ({ id, cmd }))
}

test.serial('calls over many sessions that only read run on a connection of their own; singleConnection: true keeps them on the writer\'s', async (t) => {
  const ids = async () => Math.max(...(await newConnections(0)).map((c) => c.id))
  let before = await ids()
  const store = makeStore()
  await store.set('own', session(60_000, { userId: 'ada' }))
  t.is(await store.length(), 1)
  const opened = await newConnections(before)
  t.true(opened.length >= 2, JSON.stringify(opened))
  t.is(opened.filter((c) => c.cmd === 'exists').length, 1, `one connection counted: ${JSON.stringify(opened)}`)
  t.is((await store.listUserSessions('ada')).length, 1)
  t.is((await newConnections(before)).length, opened.length, 'no more connections')

  before = await ids()
  const single = makeStore({ singleConnection: true })
  await single.set('one', session(60_000, { userId: 'bob' }))
  t.is(await single.length(), 1)
  t.is((await single.listUserSessions('bob')).length, 1)
  t.is((await newConnections(before)).length, 1, JSON.stringify(await newConnections(before)))
})

test('singleConnection: true keeps the store to the writer\'s connection', async (t) => {
  const store = makeStore({ singleConnection: true })
  t.true(store.singleConnection)
  t.is(store._batcher.near, null)
  await store.set('one', session(60_000, { v: 1 }))
  t.is((await store.get('one')).v, 1)
  t.throws(() => makeStore({ singleConnection: 'yes' }), { instanceOf: TypeError, message: /singleConnection/ })
})
