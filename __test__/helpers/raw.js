'use strict'

// A tiny RESP client for looking at Redis directly in tests, independent of
// the store under test.
const net = require('node:net')

function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const s = Buffer.isBuffer(a) ? a : Buffer.from(String(a))
    parts.push(Buffer.from(`$${s.length}\r\n`), s, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

function parse(buf, i) {
  const type = String.fromCharCode(buf[i])
  const end = buf.indexOf('\r\n', i)
  if (end < 0) return null
  const line = buf.toString('utf8', i + 1, end)
  const next = end + 2
  if (type === '+') return [line, next]
  if (type === '-') return [new Error(line), next]
  if (type === ':') return [Number(line), next]
  if (type === '$') {
    const len = Number(line)
    if (len < 0) return [null, next]
    if (buf.length < next + len + 2) return null
    return [buf.subarray(next, next + len), next + len + 2]
  }
  if (type === '*') {
    const n = Number(line)
    if (n < 0) return [null, next]
    const items = []
    let at = next
    for (let k = 0; k < n; k++) {
      const r = parse(buf, at)
      if (!r) return null
      items.push(r[0])
      at = r[1]
    }
    return [items, at]
  }
  throw new Error(`unexpected RESP type ${type}`)
}

class RawRedis {
  static connect(url) {
    const u = new URL(url)
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: u.hostname, port: Number(u.port || 6379) }, () => resolve(new RawRedis(sock)))
      sock.once('error', reject)
    })
  }

  constructor(sock) {
    this.sock = sock
    this.buf = Buffer.alloc(0)
    this.waiting = []
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d])
      for (;;) {
        if (!this.buf.length || !this.waiting.length) break
        const r = parse(this.buf, 0)
        if (!r) break
        this.buf = this.buf.subarray(r[1])
        this.waiting.shift()(r[0])
      }
    })
  }

  // Resolves to the reply; Buffers become strings unless `binary` is set.
  call(...args) {
    return new Promise((resolve) => {
      this.waiting.push((v) => resolve(v instanceof Buffer ? v.toString('utf8') : v))
      this.sock.write(encode(args))
    })
  }

  callBinary(...args) {
    return new Promise((resolve) => {
      this.waiting.push(resolve)
      this.sock.write(encode(args))
    })
  }

  // The server's connections (CLIENT LIST): id, address and last command.
  async clients() {
    const lines = String(await this.call('CLIENT', 'LIST')).split('\n').filter(Boolean)
    return lines.map((l) => ({ id: Number(/\bid=(\d+)/.exec(l)[1]), addr: /\baddr=(\S+)/.exec(l)[1], cmd: /\bcmd=(\S+)/.exec(l)[1] }))
  }

  close() {
    this.sock.destroy()
  }
}

module.exports = { RawRedis }
