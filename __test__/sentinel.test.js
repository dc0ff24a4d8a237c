'use strict'

// Redis Sentinel: a master and a replica with a password, and three
// sentinels, on free loopback ports. The store finds the master through the
// sentinels, logs in, and follows a failover when the master is killed.
const test = require('ava')
const { RedisSessionStore } = require('..')
const { RedisServer, freePort, sentinelMonitor, untilReplicaSynced, untilSentinelsSeeReplica } = require('./helpers/redis')
const { untilRecovered } = require('./helpers/suite')
const { RawRedis } = require('./helpers/raw')

const NAME = 'sessions-master'
const PASSWORD = 's3cret'
const TIMEOUT = 500
let master
let replica
const sentinels = []

const sess = (n) => ({ cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString() }, n, userId: 'ada' })

async function masterPort() {
  const raw = await RawRedis.connect(sentinels[0].url)
  try {
    const [, port] = await raw.call('SENTINEL', 'get-master-addr-by-name', NAME)
    return Number(port)
  } finally {
    raw.close()
  }
}

test.before(async () => {
  const auth = ['--requirepass', PASSWORD, '--masterauth', PASSWORD]
  master = await RedisServer.start({ args: auth })
  replica = await RedisServer.start({ args: [...auth, '--replicaof', '127.0.0.1', String(master.port)] })
  for (let i = 0; i < 3; i++) {
    const conf = [
      ...sentinelMonitor(NAME, master.port, PASSWORD),
      '',
    ].join('\n')
    sentinels.push(await RedisServer.start({ sentinel: conf }))
  }
  // The replica is in sync (the test WAITs for it before killing the
  // master; on a loaded machine its first sync can take seconds), and every
  // sentinel knows it.
  await untilReplicaSynced(replica.url, PASSWORD)
  await untilSentinelsSeeReplica(sentinels.map((s) => s.url), NAME)
})

test.after.always(async () => {
  for (const s of [...sentinels, replica, master]) if (s) await s.dispose()
})

test('the store finds the master through the sentinels and follows a failover', async (t) => {
  const store = new RedisSessionStore({
    sentinel: { nodes: sentinels.map((s) => s.url), name: NAME, password: PASSWORD, db: 3 },
    prefix: 'sent:',
    commandTimeout: TIMEOUT,
  })
  t.teardown(() => store.close())
  await store.set('before', sess(1))
  t.is((await store.get('before')).n, 1)
  t.deepEqual((await store.listUserSessions('ada')).map((s) => s.id), ['before'])
  // Logged in, in database 3. Let the replica catch up, then kill the master.
  const raw = await RawRedis.connect(master.url)
  await raw.call('AUTH', PASSWORD)
  await raw.call('SELECT', '3')
  t.is(await raw.call('EXISTS', 'sent:before'), 1)
  t.is(await raw.call('WAIT', '1', '5000'), 1, 'the replica acknowledged the writes')
  raw.close()
  await master.stop()

  // Calls fail with clear errors, each within the bound, until the sentinels
  // promote the replica; then the same store works, with the data.
  const { recovered, failures } = await untilRecovered(t, (call) => store.set(`after-${call}`, sess(2)), TIMEOUT + 300)
  t.not(recovered, null, 'the store never recovered')
  t.log(`recovered ${recovered} ms after the master died; failures seen: ${failures.join(', ') || 'none'}`)
  t.is(await masterPort(), replica.port)
  t.is((await store.get('before')).n, 1)
  t.true((await store.length()) >= 2)
})

test('bad sentinel options fail at construction', (t) => {
  for (const [options, pattern] of [
    [{ sentinel: { nodes: [], name: 'm' } }, /non-empty array/],
    [{ sentinel: { nodes: ['http://x'], name: 'm' } }, /redis:\/\//],
    [{ sentinel: { nodes: ['redis://127.0.0.1:1'] } }, /name/],
    [{ sentinel: { nodes: ['redis://127.0.0.1:1'], name: 'm', other: 1 } }, /unknown option "sentinel.other"/],
    [{ url: 'redis://127.0.0.1:1', sentinel: { nodes: ['redis://127.0.0.1:1'], name: 'm' } }, /either/],
    [{ sentinel: { nodes: ['redis://127.0.0.1:1'], name: 'm', password: '' } }, /password/],
    [{ sentinel: { nodes: ['redis://127.0.0.1:1'], name: 'm', db: -1 } }, /database/],
  ]) {
    t.throws(() => new RedisSessionStore(options), { instanceOf: TypeError, message: pattern })
  }
})

test('a wrong master password fails calls with a clear error, not a hang', async (t) => {
  const store = new RedisSessionStore({
    sentinel: { nodes: sentinels.map((s) => s.url), name: NAME, password: 'wrong' },
    commandTimeout: TIMEOUT,
  })
  t.teardown(() => store.close())
  const started = Date.now()
  const err = await t.throwsAsync(store.get('x'))
  t.true(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_REPLY', 'ERR_REDIS_TIMEOUT'].includes(err.code), `${err.code}: ${err.message}`)
  t.log(`${err.code}: ${err.message}`)
  t.true(Date.now() - started < TIMEOUT + 300)
})

test('unreachable sentinels fail calls fast with a clear error', async (t) => {
  const port = await freePort()
  const store = new RedisSessionStore({ sentinel: { nodes: [`redis://127.0.0.1:${port}`], name: NAME }, commandTimeout: TIMEOUT })
  t.teardown(() => store.close())
  const started = Date.now()
  const err = await t.throwsAsync(store.get('x'))
  t.true(['ERR_REDIS_UNAVAILABLE', 'ERR_REDIS_TIMEOUT'].includes(err.code), `${err.code}: ${err.message}`)
  t.true(Date.now() - started < TIMEOUT + 300)
})
