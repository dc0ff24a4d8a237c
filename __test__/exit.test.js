'use strict'

// A process that exits without closing its memory:// (and file://) stores
// prints nothing: a Rust panic while the runtime shut down showed on stderr
// in about 1 run of 8 ("A Tokio 1.x context was found, but it is being
// shutdown").
const test = require('ava')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFile } = require('node:child_process')

const RUNS = 100
const AT_ONCE = 10
const fixture = path.join(__dirname, 'fixtures/memory-exit.js')

const run = (dir) =>
  new Promise((resolve) => {
    execFile(process.execPath, [fixture, dir], { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }))
  })

test('100 processes that create memory:// and file:// stores and exit without close() print no panic', async (t) => {
  t.timeout(120_000)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exit-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const runs = []
  for (let i = 0; i < RUNS; i += AT_ONCE) runs.push(...(await Promise.all(Array.from({ length: AT_ONCE }, () => run(dir)))))
  const panicked = runs.filter((r) => r.stderr.includes('panicked'))
  t.is(panicked.length, 0, `${panicked.length} of ${RUNS} runs panicked; the first:\n${panicked[0]?.stderr}`)
  t.true(runs.every((r) => r.code === 0 && r.stdout === 'done'), JSON.stringify(runs.find((r) => r.code !== 0 || r.stdout !== 'done')))
  t.true(runs.every((r) => r.stderr === ''), runs.find((r) => r.stderr !== '')?.stderr)
})
