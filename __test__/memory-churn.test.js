'use strict'

// memory:// gives back what expired sessions held: after each round of
// short sessions has expired, the engine's own count of held keys and
// bytes (dev build hook engineHeld(), not RSS, which depends on the
// allocator) is back to its bookkeeping within about two of its
// once-a-second sweeps.
// It swept 10,000 keys a second, so sessions ending faster than that piled
// up round after round, held though expired (bench/engine-churn.js shows
// RSS over rounds).
const test = require('ava')
const path = require('node:path')
const { execFile } = require('node:child_process')

test('rounds of 50,000 expiring sessions: the engine holds only its per-minute counts once they have expired', async (t) => {
  t.timeout(60_000)
  const stdout = await new Promise((resolve, reject) =>
    execFile(process.execPath, [path.join(__dirname, 'fixtures/memory-churn.js')], { timeout: 50_000 }, (err, out, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(out),
    ),
  )
  const rounds = stdout.trim().split('\n').map((line) => JSON.parse(line))
  t.is(rounds.length, 3)
  for (const r of rounds) {
    t.log(JSON.stringify(r))
    // The round was held until it expired (else this shows nothing).
    t.true(r.written.keys > 10_000, `round ${r.round}: ${JSON.stringify(r.written)}`)
    // Left: the per-minute counts of ended sessions (stats({ endedWithin })),
    // one small hash for each minute the run has spanned so far.
    t.true(r.held.keys <= 3 && r.held.bytes <= 1000, `round ${r.round}: ${JSON.stringify(r.held)}`)
  }
})
