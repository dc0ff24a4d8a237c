'use strict'

// A copy of the package laid out as an application installs it, beside
// express-session but without @opentelemetry/api: <dir>/node_modules/
// redis-session-store is a copy (a symlink would resolve its requires from
// this checkout, where the api is installed), express-session a symlink.
// The native binary is linked: it requires nothing.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const ROOT = path.join(__dirname, '..', '..')

function packageWithoutOtel() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-no-otel-'))
  const modules = path.join(dir, 'node_modules')
  const pkg = path.join(modules, 'redis-session-store')
  fs.mkdirSync(pkg, { recursive: true })
  for (const file of ['index.js', 'index.mjs', 'package.json']) fs.copyFileSync(path.join(ROOT, file), path.join(pkg, file))
  fs.cpSync(path.join(ROOT, 'lib'), path.join(pkg, 'lib'), { recursive: true })
  for (const file of fs.readdirSync(ROOT).filter((f) => f.endsWith('.node'))) fs.symlinkSync(path.join(ROOT, file), path.join(pkg, file))
  fs.symlinkSync(path.join(ROOT, 'node_modules', 'express-session'), path.join(modules, 'express-session'), 'dir')
  return { dir, dispose: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

module.exports = { packageWithoutOtel }
