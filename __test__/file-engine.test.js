'use strict'

// The file:// engine's file: created readable by its owner only, never
// opened through a symbolic link, and a damaged one refused with one clear
// error naming it, without a Rust backtrace on stderr.
const test = require('ava')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFile } = require('node:child_process')
const { RedisSessionStore } = require('..')

const session = (extra) => ({ cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString() }, ...extra })

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'file-engine-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

const openInChild = (...args) =>
  new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(__dirname, 'fixtures/open-file.js'), ...args], { timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(err) : resolve({ result: JSON.parse(stdout), stderr }),
    )
  })

test('the file is created readable and writable by its owner only (0600)', async (t) => {
  const file = path.join(tempDir(t), 'sessions.db')
  const store = new RedisSessionStore({ url: `file://${file}` })
  await store.set('a', session())
  await store.close()
  t.is(fs.statSync(file).mode & 0o777, 0o600)
})

test('a symbolic link at the path, dangling or not, is refused and not followed', (t) => {
  const dir = tempDir(t)
  const target = path.join(dir, 'elsewhere.db')
  const dangling = path.join(dir, 'dangling.db')
  fs.symlinkSync(target, dangling)
  const err = t.throws(() => new RedisSessionStore({ url: `file://${dangling}` }))
  t.regex(err.message, /dangling\.db is a symbolic link.*give the path of the file itself/s)
  t.false(fs.existsSync(target), 'the link was followed: its target was created')

  fs.writeFileSync(path.join(dir, 'real.db'), '')
  fs.symlinkSync(path.join(dir, 'real.db'), path.join(dir, 'link.db'))
  t.throws(() => new RedisSessionStore({ url: `file://${path.join(dir, 'link.db')}` }), { message: /symbolic link/ })
})

test('a file with pages overwritten fails with ERR_SESSION_FILE_CORRUPT naming it, and no panic on stderr', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'sessions.db')
  t.deepEqual((await openInChild(file, 'fill')).result, { opened: true })
  t.deepEqual((await openInChild(file)).result, { opened: true })

  // Past the header (redb's pages: a read of them panics inside redb), and the header itself.
  for (const offset of [16_384, 0]) {
    const damaged = path.join(dir, `damaged-${offset}.db`)
    fs.copyFileSync(file, damaged)
    const fd = fs.openSync(damaged, 'r+')
    fs.writeSync(fd, Buffer.alloc(4096, 0xff), 0, 4096, offset)
    fs.closeSync(fd)
    const { result, stderr } = await openInChild(damaged)
    t.is(result.code, 'ERR_SESSION_FILE_CORRUPT', `offset ${offset}: ${JSON.stringify(result)}`)
    t.true(result.message.includes(damaged), result.message)
    t.regex(result.message, /restore it from a backup/)
    t.false(stderr.includes('panicked'), stderr)
    t.is(stderr, '')
  }
})
