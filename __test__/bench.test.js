'use strict'

// The benchmark is not a test of speed: this only checks that it runs end to
// end, briefly, and reports every part. No timing is asserted.
const test = require('ava')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { promisify } = require('node:util')
const execFileAsync = promisify(require('node:child_process').execFile)

test('npm run bench --quick runs every part and writes its report', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-bench-'))
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }))
  const { stdout } = await execFileAsync(process.execPath, [path.join(__dirname, '../bench/run.js'), '--quick', '--out', out], {
    timeout: 120_000,
    maxBuffer: 16 << 20,
  })
  t.regex(stdout, /connect-redis/)
  const report = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'))
  t.truthy(report.store)
  t.truthy(report.http)
  t.truthy(report.cluster)
  t.truthy(report.memory)
  t.truthy(report.scale)
  // Every item of the issue has its targets listed, whatever the verdicts.
  t.regex(stdout, /### Targets/)
  t.deepEqual([...new Set(report.targets.map((target) => target.item))], [2, 3, 4, 5, 6, 7])
  t.true(fs.readFileSync(path.join(out, 'chart.svg'), 'utf8').startsWith('<svg'))
})
