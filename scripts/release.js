#!/usr/bin/env node
'use strict'

// npm run release -- [--registry <url>] [--artifacts <dir>] [--dry-run]
//
// Builds the platform binaries this machine can build (or takes CI's, with
// --artifacts), makes one npm package per platform with napi's tools, and
// publishes them and then the root package, whose optionalDependencies name
// exactly the platform packages published with it. Without --registry it
// publishes to the registry npm is configured with (npm's default).
//
// Everything happens in a temporary copy of the root package: napi's tools
// write npm/<platform>/, copy binaries and set optionalDependencies there, so
// the checkout is never changed and npm/ is never committed.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { checkRootFiles } = require('./pack-rules')

const REPO = path.join(__dirname, '..')
const NAPI = path.join(REPO, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'))
const { binaryName, targets: ALL_TARGETS } = pkg.napi

// What a Linux x64 machine builds: cargo-zigbuild links the glibc binary
// against glibc 2.17 (the floor napi-rs's own packages use) and the musl one.
const LOCAL = [
  { triple: 'x86_64-unknown-linux-gnu', build: 'x86_64-unknown-linux-gnu.2.17', suffix: 'linux-x64-gnu' },
  { triple: 'x86_64-unknown-linux-musl', build: 'x86_64-unknown-linux-musl', suffix: 'linux-x64-musl' },
]
// napi's platform suffix of each target triple (the package name's tail).
const SUFFIX = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc',
}

function parseArgs(argv) {
  const opts = { registry: null, artifacts: null, dryRun: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--dry-run') opts.dryRun = true
    else if (a === '--registry' || a === '--artifacts') {
      if (!argv[i + 1]) die(`${a} needs a value`)
      opts[a.slice(2)] = argv[++i]
    } else die(`unknown argument ${a}\nusage: npm run release -- [--registry <url>] [--artifacts <dir>] [--dry-run]`)
  }
  return opts
}

// Thrown for what the maintainer must fix; printed without a stack.
class ReleaseError extends Error {}
function die(message) {
  throw new ReleaseError(message)
}

function run(cmd, args, options = {}) {
  console.log(`release: $ ${[path.basename(cmd), ...args].join(' ')}`)
  return execFileSync(cmd, args, { stdio: 'inherit', ...options })
}

function napi(args, cwd, env) {
  run(process.execPath, [NAPI, ...args], { cwd, env })
}

function works(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// Fails with how to install whatever the local build lacks.
function checkTools() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    die(`local builds need Linux x64 (this is ${process.platform} ${process.arch}); other platforms are built by .github/workflows/release.yml`)
  }
  const missing = []
  if (!works('cargo', ['--version'])) missing.push('cargo (Rust): https://rustup.rs')
  let sysroot = ''
  try {
    sysroot = execFileSync('rustc', ['--print', 'sysroot'], { encoding: 'utf8' }).trim()
  } catch {
    // reported with cargo
  }
  if (sysroot && !fs.existsSync(path.join(sysroot, 'lib', 'rustlib', 'x86_64-unknown-linux-musl'))) {
    missing.push('the musl Rust target: rustup target add x86_64-unknown-linux-musl')
  }
  const zig = works('zig', ['version']) || works('python3', ['-m', 'ziglang', 'version'])
  if (!works('cargo-zigbuild', ['--version']) || !zig) {
    missing.push('cargo-zigbuild and zig: python3 -m venv .tmp/zig-venv && .tmp/zig-venv/bin/pip install ziglang cargo-zigbuild (found there by this script), or bash .ci/run')
  }
  if (missing.length) die(`cannot build here; missing:\n  - ${missing.join('\n  - ')}`)
}

function build(outDir) {
  checkTools()
  for (const t of LOCAL) {
    const started = Date.now()
    napi(['build', '--platform', '--release', '-x', '--target', t.build, '--no-js', '--dts', 'native.d.ts', '-o', outDir], REPO)
    console.log(`release: built ${t.suffix} in ${Math.round((Date.now() - started) / 1000)} s`)
  }
  return LOCAL.map((t) => t.triple)
}

// CI hands over every target's binary, each in a folder of its own.
function collected(dir) {
  const found = new Set()
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name))
      else for (const [triple, suffix] of Object.entries(SUFFIX)) if (e.name === `${binaryName}.${suffix}.node`) found.add(triple)
    }
  }
  walk(dir)
  const missing = ALL_TARGETS.filter((t) => !found.has(t))
  if (missing.length) die(`${dir} lacks the binaries of ${missing.join(', ')}`)
  return ALL_TARGETS
}

// The root package as published: the checkout's packed files, with a manifest
// stripped of what only developing it needs.
function stage(dir) {
  const listing = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8' }))
  for (const { path: file } of listing[0].files) {
    if (file === 'package.json') continue
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
    fs.copyFileSync(path.join(REPO, file), path.join(dir, file))
  }
  const manifest = { ...pkg }
  for (const key of ['scripts', 'devDependencies', 'napi', 'ava', 'jest']) delete manifest[key]
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n')
}

function main() {
  const opts = parseArgs(process.argv.slice(2))
  // A toolchain venv that .ci/run (or the hint above) made in the checkout.
  const venv = path.join(REPO, '.tmp', 'zig-venv', 'bin')
  if (fs.existsSync(venv)) process.env.PATH = `${venv}${path.delimiter}${process.env.PATH}`
  const env = { ...process.env }
  if (opts.registry) env.npm_config_registry = opts.registry

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-release-'))
  try {
    const binaries = opts.artifacts ? path.resolve(opts.artifacts) : path.join(work, 'binaries')
    const triples = opts.artifacts ? collected(binaries) : build(binaries)
    const suffixes = triples.map((t) => SUFFIX[t])
    if (!opts.artifacts) fs.rmSync(path.join(binaries, 'native.d.ts'), { force: true })

    const root = path.join(work, 'package')
    fs.mkdirSync(root)
    stage(root)
    // napi's config for this release: only the targets whose binaries are here.
    const config = path.join(work, 'napi.json')
    fs.writeFileSync(config, JSON.stringify({ binaryName, packageName: pkg.name, targets: triples }))
    const c = ['--cwd', root, '-c', config]
    napi(['create-npm-dirs', ...c], root, env)
    napi(['artifacts', ...c, '-o', binaries], root, env)
    napi(['version', ...c], root, env)
    for (const s of suffixes) {
      const dir = path.join(root, 'npm', s)
      const sub = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
      if (sub.version !== pkg.version) die(`${sub.name} is at ${sub.version}, not ${pkg.version}`)
      if (!fs.existsSync(path.join(dir, `${binaryName}.${s}.node`))) die(`${sub.name} has no binary`)
    }

    // Publishes npm/* (or, dry, only sets optionalDependencies), then the root.
    napi(['prepublish', '-t', 'npm', '--no-gh-release', ...c, ...(opts.dryRun ? ['--skip-optional-publish'] : [])], root, env)
    const published = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
    const expected = suffixes.map((s) => `${pkg.name}-${s}`).sort()
    const listed = Object.keys(published.optionalDependencies || {}).sort()
    if (listed.join() !== expected.join()) die(`root optionalDependencies are ${listed.join(', ')}; expected ${expected.join(', ')}`)

    const listing = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', env }))
    const problems = checkRootFiles(listing[0].files.map((f) => f.path))
    if (problems.length) die(`the root package would ship:\n  - ${problems.join('\n  - ')}`)
    if (opts.dryRun) {
      for (const s of suffixes) run('npm', ['publish', '--dry-run'], { cwd: path.join(root, 'npm', s), env })
    }
    run('npm', ['publish', '--ignore-scripts', ...(opts.dryRun ? ['--dry-run'] : [])], { cwd: root, env })
    console.log(`release: ${opts.dryRun ? 'would publish' : 'published'} ${pkg.name}@${pkg.version} with ${expected.join(', ')}${opts.registry ? ` to ${opts.registry}` : ''}`)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

try {
  main()
} catch (err) {
  console.error(`release: ${err instanceof ReleaseError ? err.message : err.stack}`)
  process.exitCode = 1
}
