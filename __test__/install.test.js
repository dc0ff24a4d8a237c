'use strict'

// What a user does, with real parts: `npm run release` publishes the packages
// to a local registry (verdaccio), then a fresh app whose PATH has node and
// npm but no Rust or C compiler installs them from there with a fresh cache
// and keeps Express sessions in a real redis-server. Runs on its own (see
// install.ava.config.mjs): the release builds two binaries.
const test = require('ava')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { promisify } = require('node:util')
const { redisForTests } = require('./helpers/redis')
const { startRegistry } = require('./helpers/registry')
const { checkRootFiles } = require('../scripts/pack-rules')
const { spawnApp } = require('./helpers/app')
const { RedisSessionStore } = require('..')

const REPO = path.join(__dirname, '..')
const { version } = require('../package.json')
const GNU = 'redis-session-store-linux-x64-gnu'
const MUSL = 'redis-session-store-linux-x64-musl'
// Every command has a deadline, so a stuck one fails the test instead of hanging it.
const execFileP = promisify(execFile)
const run = (cmd, args, options = {}) => execFileP(cmd, args, { timeout: 120_000, maxBuffer: 64 << 20, ...options })

let registry
let redis
let tmp
let userEnv // what the user's shell has: node and npm, nothing else

// A command as the user runs it: the clean PATH, a fresh HOME and npm cache.
function user(cmd, args, cwd, extra = {}) {
  return run(path.join(tmp, 'bin', cmd), args, { cwd, env: { ...userEnv, ...extra }, timeout: 300_000 })
}

async function newApp(name, installArgs) {
  const dir = path.join(tmp, name)
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
  await user('npm', ['install', 'redis-session-store', 'express', 'express-session', '--no-audit', '--no-fund', ...installArgs], dir)
  return dir
}

test.before(async (t) => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-install-'))
  redis = await redisForTests()
  registry = await startRegistry()

  const started = Date.now()
  await run('npm', ['run', 'release', '--', '--registry', registry.url], {
    cwd: REPO,
    env: { ...process.env, npm_config_userconfig: registry.npmrc },
    timeout: 900_000,
  })
  t.log(`npm run release: ${Math.round((Date.now() - started) / 1000)} s`)

  const bin = path.join(tmp, 'bin')
  fs.mkdirSync(bin)
  fs.symlinkSync(process.execPath, path.join(bin, 'node'))
  const npm = (await run('/bin/sh', ['-c', 'command -v npm'])).stdout.trim()
  fs.symlinkSync(fs.realpathSync(npm), path.join(bin, 'npm'))
  const home = path.join(tmp, 'home')
  fs.mkdirSync(home)
  const npmrc = path.join(home, '.npmrc')
  fs.writeFileSync(npmrc, `registry=${registry.url}\ncache=${path.join(tmp, 'npm-cache')}\n`)
  userEnv = { PATH: bin, HOME: home, npm_config_userconfig: npmrc, REDIS_URL: redis.url }
})

test.after.always(async () => {
  await registry?.dispose()
  await redis?.dispose()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

test.serial('the user PATH has node and npm, and no cargo, rustc or C compiler', async (t) => {
  const has = (cmd) => run('/bin/sh', ['-c', `command -v ${cmd}`], { env: userEnv }).then(() => true, () => false)
  t.true(await has('node'))
  t.true(await has('npm'))
  for (const cmd of ['cargo', 'rustc', 'rustup', 'cc', 'gcc', 'clang', 'musl-gcc', 'zig', 'cargo-zigbuild']) t.false(await has(cmd), cmd)
})

test.serial('the registry holds the root package, listing exactly the platform packages published with it', async (t) => {
  const view = async (name, field) => JSON.parse((await user('npm', ['view', `${name}@${version}`, field, '--json'], tmp)).stdout)
  t.deepEqual(await view('redis-session-store', 'optionalDependencies'), { [GNU]: version, [MUSL]: version })
  t.deepEqual(await view(GNU, 'libc'), ['glibc'])
  t.deepEqual(await view(MUSL, 'libc'), ['musl'])

  const packed = JSON.parse((await user('npm', ['pack', `redis-session-store@${version}`, '--json'], tmp)).stdout)[0]
  const files = packed.files.map((f) => f.path)
  t.deepEqual(checkRootFiles(files), [])
  t.log(`root tarball: ${packed.size} bytes, ${files.length} files: ${files.join(' ')}`)
})

// Two requests, a restart of the app, a third: the count only survives the
// restart because the session is in Redis, where the store reads it back.
async function countThrice(t, dir, script) {
  const prefix = `install-${path.extname(script).slice(1)}:`
  const env = { ...userEnv, PREFIX: prefix }
  const node = path.join(tmp, 'bin', 'node')
  const counts = []
  let proc = await spawnApp(node, script, dir, env)
  let cookie
  for (let i = 0; i < 3; i++) {
    if (i === 2) {
      await proc.stop()
      proc = await spawnApp(node, script, dir, env)
    }
    const res = await get(proc.port, cookie)
    cookie = cookie || res.cookie
    counts.push(res.body)
  }
  await proc.stop()
  t.deepEqual(counts, [1, 2, 3].map((n) => ({ n, store: 'RedisSessionStore' })))

  const sid = decodeURIComponent(cookie.split(';')[0].split('=')[1]).slice(2).split('.')[0]
  const store = new RedisSessionStore({ url: redis.url, prefix })
  t.like(await store.get(sid), { n: 3 })
  await store.close()
}

function get(port, cookie) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/count', headers: cookie ? { cookie } : {} }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ body: JSON.parse(body), cookie: (res.headers['set-cookie'] || [])[0] }))
    })
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')))
  })
}

let app // the app directory
test.serial('npm install from the registry with no Rust, then an Express app from CommonJS and from ESM', async (t) => {
  app = await newApp('app', [])
  t.true(fs.existsSync(path.join(app, 'node_modules', GNU)))
  t.false(fs.existsSync(path.join(app, 'node_modules', MUSL)))
  for (const f of ['app.cjs', 'app.mjs']) fs.copyFileSync(path.join(__dirname, 'fixtures', 'install', f), path.join(app, f))
  await countThrice(t, app, 'app.cjs')
  await countThrice(t, app, 'app.mjs')
})

test.serial('the shipped types check with tsc, from CommonJS and ESM', async (t) => {
  await user('npm', ['install', '--save-dev', '@types/express-session', '--no-audit', '--no-fund'], app)
  for (const f of ['check.ts', 'check.mts', 'tsconfig.json']) fs.copyFileSync(path.join(__dirname, 'fixtures', 'install', f), path.join(app, f))
  const tsc = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc')
  const { stdout } = await user('node', [tsc, '-p', '.', '--listFilesOnly'], app)
  t.true(stdout.includes('node_modules/redis-session-store/index.d.ts'))
  await t.notThrowsAsync(user('node', [tsc, '-p', '.'], app))
})

test.serial('the glibc binary needs glibc 2.17 at most', async (t) => {
  const so = path.join(app, 'node_modules', GNU, `redis-session-store.linux-x64-gnu.node`)
  const { stdout } = await run('objdump', ['-T', so])
  const versions = [...stdout.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])])
  t.true(versions.length > 0)
  const [major, minor] = versions.reduce((a, b) => (a[0] > b[0] || (a[0] === b[0] && a[1] >= b[1]) ? a : b))
  t.true(major < 2 || (major === 2 && minor <= 17), `needs GLIBC_${major}.${minor}`)
})

test.serial('the musl binary loads with dlopen under musl', async (t) => {
  const dir = path.join(tmp, 'musl')
  fs.mkdirSync(dir)
  const { stdout: packed } = await user('npm', ['pack', `${MUSL}@${version}`, '--json'], dir)
  await run('tar', ['xzf', JSON.parse(packed)[0].filename], { cwd: dir })
  const so = path.join(dir, 'package', 'redis-session-store.linux-x64-musl.node')
  // napi's dyn-symbols: the N-API functions are looked up in the host at run
  // time, so loading needs no node, and any other missing symbol fails here.
  const { stdout: symbols } = await run('objdump', ['-T', so])
  t.false(/\*UND\*.*\bnapi_/.test(symbols))
  await run('musl-gcc', ['-o', path.join(dir, 'dlopen'), path.join(__dirname, 'fixtures', 'install', 'dlopen.c')])
  const result = await run(path.join(dir, 'dlopen'), [so]).catch((err) => err)
  t.is(result.stdout.trim(), 'loaded')
})

test.serial('with --omit=optional, require() names the missing package and how to get it', async (t) => {
  const dir = await newApp('app-omit', ['--omit=optional'])
  t.false(fs.existsSync(path.join(dir, 'node_modules', GNU)))
  const probe = "try { require('redis-session-store') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, causes: e.errors.map((c) => c.code) })) }"
  const { stdout } = await user('node', ['-e', probe], dir)
  const err = JSON.parse(stdout)
  t.is(err.code, 'ERR_NATIVE_BINDING_MISSING')
  t.regex(err.message, /the package redis-session-store-linux-x64-gnu is not installed \(detected linux x64, libc glibc\)/)
  t.regex(err.message, /npm install redis-session-store-linux-x64-gnu/)
  t.regex(err.message, /--omit=optional/)
  t.deepEqual(err.causes, ['MODULE_NOT_FOUND'])
})
