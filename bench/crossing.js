'use strict'

// Time spent inside each call into Rust on the hot path (exec, which
// encodes a batch, and nearRead, which reads its replies), per call and per
// operation, around store-worker.js's standalone run (same arguments):
//   node bench/crossing.js ours redis://127.0.0.1:6379 [size B] [concurrency] [seconds]
// Wall time on the JS thread, which is blocked meanwhile: at one request at
// a time each call starts with caches the event loop's wait left cold.
const binding = require('../lib/native').binding()

const timed = {}
// Operations sent: exec's third argument.
let ops = 0
for (const name of ['exec', 'nearRead']) {
  const original = binding[name]
  const t = (timed[name] = { calls: 0, ns: 0n })
  binding[name] = (...args) => {
    if (name === 'exec') ops += args[2]
    const start = process.hrtime.bigint()
    try {
      return original(...args)
    } finally {
      t.ns += process.hrtime.bigint() - start
      t.calls++
    }
  }
}

process.on('exit', () => {
  for (const [name, t] of Object.entries(timed)) {
    const us = Number(t.ns) / 1000
    console.log(`${name}: ${t.calls} calls, ${(us / t.calls).toFixed(2)} µs per call, ${(us / ops).toFixed(2)} µs per operation`)
  }
})

require('./store-worker').main()
