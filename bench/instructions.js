'use strict'

// Instructions per operation, which unlike time do not drift with the
// machine: a fixed amount of the store workload (store-worker.js's: get,
// then touch 4 of 5 or set 1 of 5) run twice under valgrind's callgrind,
// with ROUNDS and with 3 × ROUNDS rounds of CONC requests; the difference
// divided by the operations it adds leaves out startup and warm-up.
// User-space instructions only (the kernel's socket work is not counted),
// all threads.
//   node bench/instructions.js KIND SIZE CONC [ROUNDS] [--jitless]
//   node bench/instructions.js ours 2000 64 50
// KIND is one of stores.js's (ours, ours-plain, connect-redis, ...). Needs
// valgrind and a redis-server on REDIS_URL (default redis://127.0.0.1:6379).
const { spawnSync } = require('node:child_process')
const { openStore } = require('./stores')
const { makeSession } = require('./sessions')
const { CALLGRIND, instructions } = require('./callgrind')

const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const call = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))))

// Run under valgrind: the fixed work.
async function work(kind, size, conc, rounds) {
  // One prefix for every run: this store's one-time table of hash tags
  // costs a different number of instructions for each prefix. The pid in
  // the ids keeps runs that share a server apart.
  const { store, close } = await openStore(kind, { url, prefix: 'instr:' })
  const session = makeSession(size, 1)
  const sids = Array.from({ length: conc }, (_, i) => `instr-${process.pid}-${i}`.padEnd(32, 'x'))
  await Promise.all(sids.map((sid) => call((cb) => store.set(sid, session, cb))))
  for (let r = 0; r < 20; r++) await Promise.all(sids.map((sid) => call((cb) => store.get(sid, cb))))
  for (let r = 0; r < rounds; r++) {
    await Promise.all(
      sids.map(async (sid, i) => {
        const got = await call((cb) => store.get(sid, cb))
        if ((r + i) % 5 === 0) await call((cb) => store.set(sid, got, cb))
        else await call((cb) => store.touch(sid, got, cb))
      }),
    )
  }
  await Promise.all(sids.map((sid) => call((cb) => store.destroy(sid, cb))))
  await close()
}

function count(args, rounds, jitless) {
  const node = [...(jitless ? ['--jitless'] : []), __filename, '--work', ...args.slice(0, 3), String(rounds)]
  const run = spawnSync('valgrind', [...CALLGRIND, process.execPath, ...node], {
    encoding: 'utf8',
    env: { ...process.env, REDIS_URL: url },
  })
  if (run.status !== 0) throw new Error(`valgrind failed (${run.error ? run.error.message : `exit ${run.status}`}):\n${run.stderr}`)
  return instructions(run.stderr, `${args.join(' ')}, ${rounds} rounds`)
}

const argv = process.argv.slice(2)
if (argv[0] === '--work') {
  const [kind, size, conc, rounds] = argv.slice(1)
  work(kind, Number(size), Number(conc), Number(rounds)).then(
    () => process.exit(0),
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
} else {
  const jitless = argv.includes('--jitless')
  const [kind, size, conc, rounds = '100'] = argv.filter((a) => a !== '--jitless')
  if (!kind || !size || !conc) {
    console.error('usage: node bench/instructions.js KIND SIZE CONC [ROUNDS] [--jitless]')
    process.exit(2)
  }
  const few = count([kind, size, conc], Number(rounds), jitless)
  const more = count([kind, size, conc], 3 * Number(rounds), jitless)
  const ops = 2 * Number(rounds) * Number(conc) * 2
  console.log(`${kind} ${size} B × ${conc}${jitless ? ' (jitless)' : ''}: ${Math.round((more - few) / ops)} instructions per operation`)
}
