'use strict'

// A TCP proxy in front of redis-server that injects network faults:
// 'pass' forwards; 'stall' holds every byte in both directions, as a
// partition does while TCP keeps retransmitting (sockets stay open, nothing
// arrives), and delivers it on heal; 'refuse' closes the listener so new
// connections are refused and cuts the open ones. blackhole() loses the open
// connections for good without closing them (a peer or NAT entry that died
// silently) while new ones go through; delay(ms) delivers every byte ms
// later in each direction (a slow link: answers arrive, late).
const net = require('node:net')
const { freePort } = require('./redis')

class FaultProxy {
  static async start(targetPort) {
    const proxy = new FaultProxy(targetPort, await freePort())
    await proxy.listen()
    return proxy
  }

  constructor(targetPort, port) {
    this.targetPort = targetPort
    this.port = port
    this.url = `redis://127.0.0.1:${port}`
    this.mode = 'pass'
    this.latency = 0
    this.pairs = new Set()
    this.server = null
  }

  listen() {
    this.server = net.createServer((client) => this.accept(client))
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.port, '127.0.0.1', resolve)
    })
  }

  accept(client) {
    const upstream = net.connect({ port: this.targetPort, host: '127.0.0.1' })
    const pair = { client, upstream }
    this.pairs.add(pair)
    pair.held = []
    const forward = (from, to) =>
      from.on('data', (chunk) => {
        if (pair.lost) return
        if (this.mode !== 'pass') pair.held.push([to, chunk])
        // Equal delays fire in order, so the stream stays whole.
        else if (this.latency > 0) setTimeout(() => to.destroyed || to.write(chunk), this.latency)
        else to.write(chunk)
      })
    forward(client, upstream)
    forward(upstream, client)
    const close = () => {
      this.pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', close).on('close', close)
    upstream.on('error', close).on('close', close)
  }

  /** Nothing gets through and nothing is closed, until heal(). */
  stall() {
    this.mode = 'stall'
  }

  /** Every byte arrives `ms` later; 0 ends it (only once nothing is in flight, or bytes would overtake). */
  delay(ms) {
    this.latency = ms
  }

  /** The open connections drop every byte from now on and stay open; new ones pass. */
  blackhole() {
    for (const pair of this.pairs) pair.lost = true
  }

  /** New connections are refused and open ones are cut. */
  async refuse() {
    this.mode = 'refuse'
    // server.close() waits for open connections, so cut them first.
    const closed = new Promise((resolve) => this.server.close(() => resolve()))
    this.cut()
    await closed
  }

  cut() {
    for (const { client, upstream } of this.pairs) {
      client.destroy()
      upstream.destroy()
    }
    this.pairs.clear()
  }

  async heal() {
    if (this.mode === 'refuse') await this.listen()
    this.mode = 'pass'
    for (const pair of this.pairs) {
      for (const [to, chunk] of pair.held) if (!to.destroyed) to.write(chunk)
      pair.held = []
    }
  }

  async close() {
    if (this.mode === 'refuse') return
    await this.refuse()
  }
}

module.exports = { FaultProxy }
