'use strict'

// The native loader's choices and errors, with real directories and files in
// place of an installed package (the registry install is install.test.js),
// and the release tooling's own checks.
const test = require('ava')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { promisify } = require('node:util')
const { loadBinding, platformSuffix, detectLibc, PUBLISHED } = require('../lib/native')
const { checkRootFiles, REQUIRED } = require('../scripts/pack-rules')
const { SUFFIX } = require('../scripts/release')

const REPO = path.join(__dirname, '..')
const pkg = require('../package.json')
const HERE = platformSuffix()
const BUILD = path.join(REPO, `redis-session-store.${HERE}.node`)

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-loader-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

// A package in dir/node_modules, as npm would leave it.
function fakePackage(dir, suffix, contents) {
  const pkgDir = path.join(dir, 'node_modules', `redis-session-store-${suffix}`)
  fs.mkdirSync(pkgDir, { recursive: true })
  const main = `redis-session-store.${suffix}.node`
  fs.writeFileSync(path.join(pkgDir, 'package.json'), JSON.stringify({ name: `redis-session-store-${suffix}`, main }))
  fs.writeFileSync(path.join(pkgDir, main), contents)
  return path.join(pkgDir, main)
}

test('platform suffixes follow napi naming', (t) => {
  t.is(platformSuffix({ platform: 'linux', arch: 'x64', libc: 'gnu' }), 'linux-x64-gnu')
  t.is(platformSuffix({ platform: 'linux', arch: 'arm64', libc: 'musl' }), 'linux-arm64-musl')
  t.is(platformSuffix({ platform: 'darwin', arch: 'arm64' }), 'darwin-arm64')
  t.is(platformSuffix({ platform: 'win32', arch: 'x64' }), 'win32-x64-msvc')
  t.is(detectLibc(), process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl')
})

test('the loader, the release script and package.json name the same platforms', (t) => {
  t.deepEqual(pkg.napi.targets.map((triple) => SUFFIX[triple]), PUBLISHED)
  const workflow = fs.readFileSync(path.join(REPO, '.github', 'workflows', 'release.yml'), 'utf8')
  for (const triple of pkg.napi.targets) t.true(workflow.includes(`target: ${triple}`), triple)
})

test('a dev build in the package root is loaded before any package', (t) => {
  const root = tempDir(t)
  fs.symlinkSync(BUILD, path.join(root, path.basename(BUILD)))
  t.is(loadBinding({ root }), require(BUILD))
})

test('no platform package: ERR_NATIVE_BINDING_MISSING names it and the fixes', (t) => {
  const root = tempDir(t)
  const err = t.throws(() => loadBinding({ root, platform: 'linux', arch: 'x64', libc: 'gnu' }))
  t.is(err.code, 'ERR_NATIVE_BINDING_MISSING')
  t.regex(err.message, /the package redis-session-store-linux-x64-gnu is not installed \(detected linux x64, libc glibc\)/)
  t.regex(err.message, /npm install redis-session-store-linux-x64-gnu\n/)
  t.regex(err.message, /--omit=optional/)
  t.regex(err.message, /npm\/cli#4828/)
  t.regex(err.message, /build it from source/)
  t.deepEqual(err.errors.map((e) => e.code), ['MODULE_NOT_FOUND'])
  t.is(err.cause, err.errors[0])
})

test('a package for the other libc installed instead: the message says so', (t) => {
  const root = tempDir(t)
  fakePackage(root, 'linux-x64-musl', 'not a binary')
  const err = t.throws(() => loadBinding({ root, platform: 'linux', arch: 'x64', libc: 'gnu' }))
  t.is(err.code, 'ERR_NATIVE_BINDING_MISSING')
  t.regex(err.message, /Installed for another platform instead: redis-session-store-linux-x64-musl .*glibc\/musl mix-up/)
})

test('a platform package that fails to load: ERR_NATIVE_BINDING_LOAD with the loader error attached', (t) => {
  const root = tempDir(t)
  const file = fakePackage(root, 'linux-x64-gnu', 'not a shared object')
  const err = t.throws(() => loadBinding({ root, platform: 'linux', arch: 'x64', libc: 'gnu' }))
  t.is(err.code, 'ERR_NATIVE_BINDING_LOAD')
  t.true(err.message.includes(`found redis-session-store-linux-x64-gnu (${file}) but could not load it on linux x64, libc glibc`))
  t.regex(err.message, /glibc 2\.17 or later \(this one has glibc \d+\.\d+\)/)
  t.regex(err.message, /delete node_modules and package-lock.json/)
  t.is(err.errors.length, 1)
  t.regex(err.errors[0].message, /invalid ELF header|file too short/)
})

test('a dev build that fails to load is reported beside the missing package', (t) => {
  const root = tempDir(t)
  fs.writeFileSync(path.join(root, 'redis-session-store.linux-x64-gnu.node'), 'broken')
  const err = t.throws(() => loadBinding({ root, platform: 'linux', arch: 'x64', libc: 'gnu' }))
  t.is(err.code, 'ERR_NATIVE_BINDING_MISSING')
  t.is(err.errors.length, 2)
  t.regex(err.errors[0].message, /invalid ELF header|file too short/)
})

test('an unsupported platform: ERR_UNSUPPORTED_PLATFORM says how to build from source', (t) => {
  const err = t.throws(() => loadBinding({ root: tempDir(t), platform: 'freebsd', arch: 'x64' }))
  t.is(err.code, 'ERR_UNSUPPORTED_PLATFORM')
  t.regex(err.message, /no prebuilt binary for this platform \(freebsd x64; detected freebsd-x64\)/)
  t.regex(err.message, /npm install && npm run build.*redis-session-store\.freebsd-x64\.node/)
  t.deepEqual(err.errors, [])
})

test('the root package file rules catch binaries, tests, Rust sources and benches', (t) => {
  t.deepEqual(checkRootFiles(REQUIRED), [])
  const bad = checkRootFiles([...REQUIRED.filter((f) => f !== 'LICENSE'), 'redis-session-store.linux-x64-gnu.node', '__test__/store.test.js', 'src/lib.rs', 'Cargo.toml', 'bench/run.js'])
  t.is(bad.length, 6)
  t.true(bad.includes('missing LICENSE'))
})

test('the release names what to install when the build tools are missing', async (t) => {
  // A copy of the release script in a checkout without the .tmp/ toolchain,
  // run with a PATH holding node alone.
  const copy = tempDir(t)
  fs.cpSync(path.join(REPO, 'scripts'), path.join(copy, 'scripts'), { recursive: true })
  fs.copyFileSync(path.join(REPO, 'package.json'), path.join(copy, 'package.json'))
  const bin = path.join(copy, 'bin')
  fs.mkdirSync(bin)
  fs.symlinkSync(process.execPath, path.join(bin, 'node'))
  const err = await t.throwsAsync(promisify(execFile)(path.join(bin, 'node'), ['scripts/release.js', '--dry-run'], { cwd: copy, env: { PATH: bin } }))
  t.is(err.code, 1)
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    // CI's other runners: a local release is for Linux x64 only.
    t.regex(err.stderr, /local releases build on Linux x64/)
    return
  }
  t.regex(err.stderr, /cargo \(Rust\): https:\/\/rustup\.rs/)
  t.regex(err.stderr, /pip install ziglang cargo-zigbuild/)
})
