'use strict'

// A real npm registry (verdaccio) on a free loopback port, for the install
// test. Verdaccio is installed from __test__/verdaccio/'s lock file into
// .tmp/, apart from the project's own dependencies, and reused while that
// lock file is unchanged. Packages named redis-session-store* are only ever
// served from what was published here; everything else comes through an
// uplink to the registry npm is configured with.
const { execFileSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { freePort } = require('./redis')

const REPO = path.join(__dirname, '..', '..')
const SPEC = path.join(__dirname, '..', 'verdaccio')
const HOME = path.join(REPO, '.tmp', 'verdaccio')

function installVerdaccio() {
  const lock = fs.readFileSync(path.join(SPEC, 'package-lock.json'), 'utf8')
  const installedLock = path.join(HOME, 'installed-lock.json')
  const bin = path.join(HOME, 'node_modules', 'verdaccio', 'bin', 'verdaccio')
  if (fs.existsSync(bin) && fs.existsSync(installedLock) && fs.readFileSync(installedLock, 'utf8') === lock) return bin
  fs.rmSync(HOME, { recursive: true, force: true })
  fs.mkdirSync(HOME, { recursive: true })
  for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(SPEC, f), path.join(HOME, f))
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: HOME, stdio: 'inherit', timeout: 300_000 })
  fs.writeFileSync(installedLock, lock)
  return bin
}

function ping(url) {
  return new Promise((resolve) => {
    const req = http.get(`${url}-/ping`, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.setTimeout(1000, () => req.destroy())
  })
}

// Returns { url, npmrc, dispose }: npmrc is a user config holding the token
// publishing needs (verdaccio takes any token when publish is open to all).
async function startRegistry() {
  const bin = installVerdaccio()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-registry-'))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  const upstream = execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).trim()
  fs.writeFileSync(path.join(dir, 'config.yaml'), [
    `storage: ${path.join(dir, 'storage')}`,
    'auth: { htpasswd: { file: ./htpasswd, max_users: -1 } }',
    `uplinks: { upstream: { url: '${upstream}', timeout: 60s } }`,
    'packages:',
    "  'redis-session-store*': { access: $all, publish: $all }",
    "  '**': { access: $all, publish: $all, proxy: upstream }",
    'log: { type: stdout, format: pretty, level: error }',
    '',
  ].join('\n'))
  const npmrc = path.join(dir, 'npmrc')
  fs.writeFileSync(npmrc, `registry=${url}\n//127.0.0.1:${port}/:_authToken=install-test\n`)

  // As for redis-server: a shell guard kills verdaccio when our stdin closes,
  // so a test process that dies leaves no registry behind.
  const guard = 'node "$@" & pid=$!; read _; kill -9 $pid 2>/dev/null'
  const args = [bin, '--config', path.join(dir, 'config.yaml'), '--listen', `127.0.0.1:${port}`]
  const proc = spawn('sh', ['-c', guard, 'sh', ...args], { stdio: ['pipe', 'ignore', 'pipe'] })
  // Its stderr (warnings about running as root, errors) is shown only if it fails to start.
  let stderr = ''
  proc.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)))
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  const until = Date.now() + 30_000
  while (!(await ping(url))) {
    if (Date.now() > until || proc.exitCode !== null) {
      proc.stdin.end()
      throw new Error(`verdaccio did not start on ${url}\n${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url,
    npmrc,
    async dispose() {
      proc.stdin.end()
      await exited
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

module.exports = { startRegistry }
