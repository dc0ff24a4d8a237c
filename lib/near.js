'use strict'

const net = require('node:net')
const { performance } = require('node:perf_hooks')
const binding = require('./native').binding()

// After a socket failed, the next one is tried no sooner than this.
const RETRY_MS = 1000

// The near socket (see src/near/mod.rs): with one plain Redis server, the
// JS thread also talks to it on a socket of its own. Rust encodes each
// batch and reads the replies, here on the JS thread, so a round trip
// crosses no thread. Rust decides per batch: exec returns the bytes to
// write, or null after handing the batch to its writer (nothing else in
// flight there, no exclusive call, nothing that needs a second round trip).
// A socket that closes hands its batches to the writer; one that outlives
// the command timeout fails them, as the writer does.
class Near {
  constructor(native, slot, server, timeoutMs, onBatch) {
    this.native = native
    this.slot = slot
    this.server = server
    this.timeoutMs = timeoutMs
    this.onBatch = onBatch
    // Replies' numbers, written by Rust (see adopt()).
    this.numbers = null
    this.socket = null
    this.connected = false
    // When each batch on the socket was written, oldest first.
    this.sentAt = []
    // One timer at a time checks the oldest batch's deadline (not one per
    // batch: a timer costs more than a small batch's own work).
    this.timer = null
    this.check = this.check.bind(this)
    this.failedAt = -Infinity
    this.closing = null
  }

  // Whether a batch may be offered to the socket now; connects one (for a
  // later batch) when there is none.
  usable() {
    if (this.closing) return false
    if (this.connected) return true
    if (!this.socket && performance.now() - this.failedAt >= RETRY_MS) this.connect()
    return false
  }

  connect() {
    const socket = net.connect({ host: this.server.host, port: this.server.port })
    this.socket = socket
    socket.setNoDelay(true)
    // Idle, it must not keep Node alive; it is referenced while batches are out.
    socket.unref()
    socket.on('connect', () => {
      if (this.socket !== socket) return
      socket.write(this.native.nearOpen())
      this.connected = true
    })
    socket.on('data', (data) => this.read(socket, data))
    // 'close' follows every error.
    socket.on('error', () => {})
    socket.on('close', () => this.lost(socket))
  }

  // Writes a batch Rust encoded for this socket (see Batcher.flush): its
  // bytes as a latin1 string, one char per byte.
  send(bytes) {
    if (this.sentAt.length === 0) this.socket.ref()
    this.sentAt.push(performance.now())
    if (this.timer === null) this.arm(this.timeoutMs)
    this.socket.write(bytes, 'latin1')
  }

  read(socket, data) {
    if (this.socket !== socket) return
    // Numbers in `this.numbers`; `out` is null, one batch's text, or an
    // array (see answer() in src/binding/near.rs).
    const out = binding.nearRead(this.slot, data)
    const numbers = this.adopt(out)
    if (numbers[0]) {
      // Rust handed the batches still out to the writer.
      this.drop()
    } else {
      const answered = numbers[1]
      if (answered > 0) {
        this.sentAt.splice(0, answered)
        if (this.sentAt.length === 0) {
          this.socket.unref()
          this.settleClose()
        }
      }
    }
    this.answer(numbers, out)
  }

  // Rust hands over a bigger array for the numbers when a read needs one.
  adopt(out) {
    if (Array.isArray(out) && out[0] !== null) this.numbers = out[0]
    return this.numbers
  }

  // Per batch answered: numbers from [2] on; its values' text (and its
  // errors) in `out`. Rust writes the numbers only during nearRead and
  // nearTimedOut, which callbacks never call.
  answer(numbers, out) {
    if (typeof out === 'string') return void this.onBatch(numbers, 2, out, null)
    const batches = numbers[1]
    for (let b = 0, at = 2; b < batches; b++) at = this.onBatch(numbers, at, out[1 + 2 * b], out[2 + 2 * b])
  }

  lost(socket) {
    if (this.socket !== socket) return
    this.reset()
    this.failedAt = performance.now()
    this.native.nearLost()
    this.settleClose()
  }

  timedOut() {
    this.drop()
    const out = this.native.nearTimedOut()
    this.answer(this.adopt(out), out)
  }

  // Closes the socket; Rust has dealt with its batches.
  drop() {
    const socket = this.socket
    this.reset()
    this.failedAt = performance.now()
    if (socket) socket.destroy()
    this.settleClose()
  }

  reset() {
    this.socket = null
    this.connected = false
    this.sentAt = []
    clearTimeout(this.timer)
    this.timer = null
  }

  // Unreferenced: the socket keeps Node alive while batches are out.
  arm(ms) {
    this.timer = setTimeout(this.check, ms)
    this.timer.unref()
  }

  check() {
    this.timer = null
    if (this.sentAt.length === 0) return
    const wait = this.sentAt[0] + this.timeoutMs - performance.now()
    if (wait <= 0) this.timedOut()
    else this.arm(wait)
  }

  // No more batches; resolves once those out are answered and the socket is closed.
  close() {
    if (!this.closing) {
      this.closing = {}
      this.closing.done = new Promise((resolve) => {
        this.closing.resolve = resolve
      })
      this.settleClose()
    }
    return this.closing.done
  }

  settleClose() {
    if (!this.closing || this.sentAt.length > 0) return
    const socket = this.socket
    this.reset()
    if (socket) socket.destroy()
    this.closing.resolve()
  }
}

module.exports = { Near }
