'use strict'

// A real Redis Cluster for a test file: N masters (no replicas) on free
// loopback ports, each a redis-server child guarded like helpers/redis.js's
// (it dies with the test process), joined with `redis-cli --cluster create`.
// Also: the manual resharding protocol, to move one slot while a store is in
// use, and faults (SIGKILL / SIGSTOP of one master).
const { execFile } = require('node:child_process')
const path = require('node:path')
const { RedisServer, freePort } = require('./redis')
const { RawRedis } = require('./raw')

const SLOTS = 16384
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// CRC16/XMODEM (poly 0x1021, init 0), as Redis Cluster's keyHashSlot uses.
const CRC_TABLE = (() => {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[i] = crc
  }
  return table
})()

// `crc`: the CRC of what comes before `buf`, to hash many keys that share a
// prefix without hashing the prefix again.
function crc16(buf, crc = 0) {
  for (let i = 0; i < buf.length; i++) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ buf[i]) & 0xff]
  return crc
}

// The slot of a key: the CRC16 of its hash tag (the first `{...}` with
// something inside) or of the whole key, modulo 16384.
function slotOf(key) {
  let buf = Buffer.isBuffer(key) ? key : Buffer.from(String(key))
  const open = buf.indexOf('{')
  if (open >= 0) {
    const close = buf.indexOf('}', open + 1)
    if (close > open + 1) buf = buf.subarray(open + 1, close)
  }
  return crc16(buf) % SLOTS
}

/**
 * `n` session ids whose keys `prefix + sid` (no hash tag in either) fall in
 * `slot`, found by trying `${stem}0`, `${stem}1`, … (about 16384 tries each).
 */
function sidsInSlot(prefix, slot, n, stem = 'sid-') {
  if (/[{}]/.test(prefix + stem)) throw new Error('sidsInSlot: no braces, please')
  const base = crc16(Buffer.from(prefix + stem))
  const sids = []
  for (let i = 0; sids.length < n; i++) {
    const tail = String(i)
    if (crc16(Buffer.from(tail), base) % SLOTS === slot) sids.push(stem + tail)
  }
  return sids
}

function run(cmd, args, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`))
      else resolve(stdout)
    })
  })
}

// A RawRedis reply that is an error becomes a thrown one.
function ok(reply, what) {
  if (reply instanceof Error) throw new Error(`${what}: ${reply.message}`)
  return reply
}

// Free ports, all distinct. Each node gets its cluster bus port as a free port
// of its own: the default, port + 10000, may be taken, and redis-server refuses
// any port above 55535 for it (half the ephemeral range).
async function freePorts(n) {
  const ports = new Set()
  while (ports.size < n) ports.add(await freePort())
  return [...ports]
}

class RedisCluster {
  // `masters`: how many (≥ 3, as redis-cli insists). `nodeTimeout`: the
  // cluster-node-timeout in ms. `fullCoverage`: cluster-require-full-coverage;
  // off by default so that a dead master only takes its own slots down.
  // `replicas`: replicas per master (their ports follow the masters' in `ports`).
  static async start({ masters = 3, replicas = 0, nodeTimeout = 15_000, fullCoverage = false } = {}) {
    const cluster = new RedisCluster()
    try {
      await cluster._start({ masters, replicas, nodeTimeout, fullCoverage })
    } catch (err) {
      await cluster.stop()
      throw err
    }
    return cluster
  }

  constructor() {
    this.servers = new Map() // port → RedisServer
    this.clients = new Map() // port → RawRedis
    this.ids = new Map() // port → node id
    this.ports = []
    this.nodes = []
  }

  async _start({ masters, replicas, nodeTimeout, fullCoverage }) {
    const count = masters * (1 + replicas)
    const ports = await freePorts(count * 2)
    const started = []
    for (let i = 0; i < count; i++) {
      const [port, bus] = [ports[2 * i], ports[2 * i + 1]]
      const args = [
        '--cluster-enabled', 'yes',
        '--cluster-port', String(bus),
        '--cluster-node-timeout', String(nodeTimeout),
        '--cluster-require-full-coverage', fullCoverage ? 'yes' : 'no',
      ]
      const server = new RedisServer(port, { args })
      // In the server's own temp dir. The log goes to a file: on stdout it
      // could reach RedisServer's pid reader before the pid does.
      args.push('--cluster-config-file', path.join(server.dir, 'nodes.conf'), '--logfile', path.join(server.dir, 'redis.log'))
      this.servers.set(port, server)
      started.push(server.start())
    }
    await Promise.all(started)
    for (const [port, s] of this.servers) if (!Number.isInteger(s.pid)) throw new Error(`no pid for the redis-server on port ${port}`)
    this.ports = [...this.servers.keys()]
    this.nodes = this.ports.map((p) => `redis://127.0.0.1:${p}`)
    for (const port of this.ports) this.ids.set(port, ok(await this.call(port, 'CLUSTER', 'MYID'), 'CLUSTER MYID'))
    await run('redis-cli', ['--cluster', 'create', ...this.ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'])
    await this.waitUntilAgreed()
  }

  // A raw client on one node (one per node, opened on first use).
  async client(port) {
    let c = this.clients.get(port)
    if (!c) {
      c = await RawRedis.connect(`redis://127.0.0.1:${port}`)
      c.sock.on('error', () => {}) // a killed node: the client is dropped in kill()
      this.clients.set(port, c)
    }
    return c
  }

  /** Sends one command to the node on `port`; an error reply resolves to an Error. */
  async call(port, ...args) {
    return (await this.client(port)).call(...args)
  }

  /** Slot → port, as the node on `port` sees it (from CLUSTER SLOTS). */
  async slotMap(port = this.livePorts()[0]) {
    const ranges = ok(await this.call(port, 'CLUSTER', 'SLOTS'), 'CLUSTER SLOTS')
    const map = new Array(SLOTS).fill(null)
    for (const [from, to, master] of ranges) for (let s = from; s <= to; s++) map[s] = Number(master[1])
    return map
  }

  /** The master that serves `slot`, as the first live node sees it. */
  async portOfSlot(slot) {
    return (await this.slotMap())[slot]
  }

  async portOfKey(key) {
    return this.portOfSlot(slotOf(key))
  }

  /**
   * Sends a command about `key` to the node serving its slot, following one
   * MOVED or ASK (with ASKING) the way a cluster client would.
   */
  async callKey(key, ...args) {
    let port = await this.portOfKey(key)
    for (let hop = 0; hop < 3; hop++) {
      const reply = await this.call(port, ...args)
      const m = reply instanceof Error && /^(MOVED|ASK) \d+ [^:]+:(\d+)/.exec(reply.message)
      if (!m) return reply
      port = Number(m[2])
      if (m[1] === 'ASK') {
        ok(await this.call(port, 'ASKING'), 'ASKING')
        return this.call(port, ...args)
      }
    }
    throw new Error(`too many redirections for ${key}`)
  }

  /** Every key on one node matching `pattern` (SCAN, so only that node's). */
  async keysOn(port, pattern = '*') {
    const keys = []
    let cursor = '0'
    do {
      const [next, batch] = ok(await this.call(port, 'SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000'), 'SCAN')
      cursor = String(next)
      for (const k of batch) keys.push(String(k))
    } while (cursor !== '0')
    return keys
  }

  livePorts() {
    return this.ports.filter((p) => this.servers.get(p).proc && !this.servers.get(p).paused)
  }

  /** Every live node says cluster_state:ok, and all give the same CLUSTER SLOTS, covering every slot. */
  async waitUntilAgreed(timeoutMs = 20_000) {
    const until = Date.now() + timeoutMs
    let last = ''
    for (;;) {
      try {
        const ports = this.livePorts()
        const infos = await Promise.all(ports.map((p) => this.call(p, 'CLUSTER', 'INFO')))
        const maps = await Promise.all(ports.map((p) => this.slotMap(p)))
        const states = infos.map((i) => (i instanceof Error ? i.message : /cluster_state:(\w+)/.exec(i)[1]))
        const same = maps.every((m) => m.join() === maps[0].join())
        const covered = maps[0].every((p) => p !== null)
        if (states.every((s) => s === 'ok') && same && covered) return
        last = `states ${states.join(',')}, slot maps ${same ? 'agree' : 'differ'}, ${covered ? 'all' : 'not all'} slots covered`
      } catch (err) {
        last = err.message
      }
      if (Date.now() > until) throw new Error(`the cluster did not settle: ${last}`)
      await sleep(50)
    }
  }

  /**
   * Moves `slot` from the master on `fromPort` to the one on `toPort` with the
   * manual resharding protocol: IMPORTING on the target, MIGRATING on the
   * source, then MIGRATE of the slot's keys `batch` at a time with `pauseMs`
   * between batches (so clients meanwhile meet ASK and TRYAGAIN), then
   * SETSLOT NODE on the target, the source and every other master.
   * Resolves to the number of keys moved.
   */
  async migrateSlot(slot, fromPort, toPort, { pauseMs = 20, batch = 2, timeoutMs = 5000, onState } = {}) {
    const srcId = this.ids.get(fromPort)
    const dstId = this.ids.get(toPort)
    ok(await this.call(toPort, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', srcId), 'SETSLOT IMPORTING')
    ok(await this.call(fromPort, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', dstId), 'SETSLOT MIGRATING')
    if (onState) await onState('migrating')
    let moved = 0
    for (;;) {
      const keys = ok(await this.call(fromPort, 'CLUSTER', 'GETKEYSINSLOT', slot, batch), 'GETKEYSINSLOT').map(String)
      if (keys.length === 0) break
      const reply = await this.call(fromPort, 'MIGRATE', '127.0.0.1', toPort, '', 0, timeoutMs, 'KEYS', ...keys)
      // NOKEY: every key of the batch expired or was deleted meanwhile.
      if (reply instanceof Error && !/^NOKEY/.test(reply.message)) throw new Error(`MIGRATE ${keys.join(' ')}: ${reply.message}`)
      moved += keys.length
      await sleep(pauseMs)
    }
    if (onState) await onState('moved')
    // The target first, so that it owns the slot before the source redirects to it.
    ok(await this.call(toPort, 'CLUSTER', 'SETSLOT', slot, 'NODE', dstId), 'SETSLOT NODE (target)')
    ok(await this.call(fromPort, 'CLUSTER', 'SETSLOT', slot, 'NODE', dstId), 'SETSLOT NODE (source)')
    for (const p of this.livePorts()) {
      if (p !== toPort && p !== fromPort) ok(await this.call(p, 'CLUSTER', 'SETSLOT', slot, 'NODE', dstId), `SETSLOT NODE (${p})`)
    }
    await this.waitUntilAgreed()
    return moved
  }

  /** How many times the node on `port` ran `command` since start (INFO commandstats). */
  async commandCalls(port, command) {
    const info = ok(await this.call(port, 'INFO', 'commandstats'), 'INFO commandstats')
    const m = new RegExp(`^cmdstat_${command.toLowerCase()}:calls=(\\d+)`, 'm').exec(info)
    return m ? Number(m[1]) : 0
  }

  /** Error replies the node on `port` sent since start, by prefix ({ ASK: n, TRYAGAIN: n, … }; INFO errorstats). */
  async errorReplies(port) {
    const info = ok(await this.call(port, 'INFO', 'errorstats'), 'INFO errorstats')
    const counts = {}
    for (const [, name, n] of info.matchAll(/^errorstat_([^:]+):count=(\d+)/gm)) counts[name] = Number(n)
    return counts
  }

  _dropClient(port) {
    const c = this.clients.get(port)
    if (c) c.close()
    this.clients.delete(port)
  }

  /** SIGKILLs the master on `port` (and waits until its port is closed). */
  async kill(port) {
    this._dropClient(port)
    await this.servers.get(port).stop()
  }

  /** SIGSTOPs the master on `port`: it keeps its connections but answers nothing. */
  stopNode(port) {
    const server = this.servers.get(port)
    server.signal('SIGSTOP')
    server.paused = true
  }

  /** SIGCONTs a master stopped with stopNode(). */
  resumeNode(port) {
    const server = this.servers.get(port)
    server.signal('SIGCONT')
    server.paused = false
  }

  async stop() {
    for (const port of [...this.clients.keys()]) this._dropClient(port)
    // SIGKILL ends stopped processes too.
    await Promise.all([...this.servers.values()].map((s) => s.dispose()))
    this.servers.clear()
  }
}

module.exports = { RedisCluster, slotOf, sidsInSlot, crc16, SLOTS }
