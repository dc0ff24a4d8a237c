#!/usr/bin/env node
'use strict'

// The one release command, run by a maintainer and by CI alike:
//
//   npm run release -- [--registry <url>] [--dry-run]
//       builds what a Linux x64 machine can (linux-x64-gnu, linux-x64-musl)
//       and publishes those platform packages, then the root package.
//   npm run release -- --build <target triple> --out <dir>
//       builds one target, as CI's build jobs do on each platform's runner.
//   npm run release -- --artifacts <dir> [--registry <url>] [--dry-run]
//       publishes every target's binary from <dir>, as CI's publish job does.
//
// The root's optionalDependencies name exactly the platform packages
// published with it: npm fails an install on an optional dependency that
// the registry does not have. Without --registry it publishes to the
// registry npm is configured with (npm's default).
//
// Packages are assembled in a temporary copy of the root package: napi's
// tools write npm/<platform>/, copy binaries and set optionalDependencies
// there, so the checkout is never changed and npm/ is never committed.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { checkRootFiles } = require('./pack-rules')

const REPO = path.join(__dirname, '..')
const NAPI = path.join(REPO, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'))
const { binaryName, targets: ALL_TARGETS } = pkg.napi

// How each target is built. Linux builds link with cargo-zigbuild (-x), the
// glibc ones against glibc 2.17 (the floor napi-rs's own packages use);
// macOS and Windows use their runner's own toolchain.
const BUILD = {
  'x86_64-unknown-linux-gnu': { suffix: 'linux-x64-gnu', args: ['-x', '--target', 'x86_64-unknown-linux-gnu.2.17'] },
  'x86_64-unknown-linux-musl': { suffix: 'linux-x64-musl', args: ['-x', '--target', 'x86_64-unknown-linux-musl'] },
  'aarch64-unknown-linux-gnu': { suffix: 'linux-arm64-gnu', args: ['-x', '--target', 'aarch64-unknown-linux-gnu.2.17'] },
  'aarch64-unknown-linux-musl': { suffix: 'linux-arm64-musl', args: ['-x', '--target', 'aarch64-unknown-linux-musl'] },
  'x86_64-apple-darwin': { suffix: 'darwin-x64', args: ['--target', 'x86_64-apple-darwin'] },
  'aarch64-apple-darwin': { suffix: 'darwin-arm64', args: ['--target', 'aarch64-apple-darwin'] },
  'x86_64-pc-windows-msvc': { suffix: 'win32-x64-msvc', args: ['--target', 'x86_64-pc-windows-msvc'] },
}
const SUFFIX = Object.fromEntries(Object.entries(BUILD).map(([triple, b]) => [triple, b.suffix]))
const LOCAL = ['x86_64-unknown-linux-gnu', 'x86_64-unknown-linux-musl']
const USAGE = 'usage: npm run release -- [--registry <url>] [--dry-run] | --build <target> --out <dir> | --artifacts <dir> [--registry <url>] [--dry-run]'

// Thrown for what the maintainer must fix; printed without a stack.
class ReleaseError extends Error {}
function die(message) {
  throw new ReleaseError(message)
}

function parseArgs(argv) {
  const opts = { registry: null, artifacts: null, build: null, out: null, dryRun: false }
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].slice(2)
    if (argv[i] === '--dry-run') opts.dryRun = true
    else if (['registry', 'artifacts', 'build', 'out'].includes(name) && argv[i].startsWith('--')) {
      if (!argv[i + 1]) die(`${argv[i]} needs a value\n${USAGE}`)
      opts[name] = argv[++i]
    } else die(`unknown argument ${argv[i]}\n${USAGE}`)
  }
  if (opts.build && !BUILD[opts.build]) die(`--build takes one of ${ALL_TARGETS.join(', ')}`)
  if (Boolean(opts.build) !== Boolean(opts.out)) die(`--build and --out go together\n${USAGE}`)
  return opts
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

// Fails with how to install whatever building these targets lacks.
function checkTools(triples) {
  const missing = []
  if (!works('cargo', ['--version'])) missing.push('cargo (Rust): https://rustup.rs')
  let sysroot = ''
  try {
    sysroot = execFileSync('rustc', ['--print', 'sysroot'], { encoding: 'utf8' }).trim()
  } catch {
    // reported with cargo
  }
  for (const t of triples) {
    if (sysroot && !fs.existsSync(path.join(sysroot, 'lib', 'rustlib', t))) missing.push(`the Rust target ${t}: rustup target add ${t}`)
  }
  const zig = works('zig', ['version']) || works('python3', ['-m', 'ziglang', 'version'])
  if (triples.some((t) => BUILD[t].args.includes('-x')) && !(zig && works('cargo-zigbuild', ['--version']))) {
    missing.push('cargo-zigbuild and zig: python3 -m venv .tmp/zig-venv && .tmp/zig-venv/bin/pip install ziglang cargo-zigbuild (this script finds them there), or bash .ci/run')
  }
  if (missing.length) die(`cannot build here; missing:\n  - ${missing.join('\n  - ')}`)
}

function build(triples, outDir) {
  checkTools(triples)
  for (const t of triples) {
    const started = Date.now()
    // --no-js: lib/native.js is the loader; the generated types go to outDir.
    napi(['build', '--platform', '--release', ...BUILD[t].args, '--no-js', '--dts', 'native.d.ts', '-o', outDir], REPO)
    console.log(`release: built ${BUILD[t].suffix} in ${Math.round((Date.now() - started) / 1000)} s`)
  }
  fs.rmSync(path.join(outDir, 'native.d.ts'), { force: true })
}

// CI hands over every target's binary, each in a folder of its own.
function collected(dir) {
  const found = new Set()
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name))
      for (const t of ALL_TARGETS) if (e.name === `${binaryName}.${SUFFIX[t]}.node`) found.add(t)
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

function publish(triples, binaries, work, opts, env) {
  const suffixes = triples.map((t) => SUFFIX[t])
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

  // Everything is checked before anything is published: napi's prepublish
  // first only sets the root's optionalDependencies, then publishes npm/*.
  const prepublish = ['prepublish', '-t', 'npm', '--no-gh-release', ...c]
  napi([...prepublish, '--skip-optional-publish'], root, env)
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  const expected = suffixes.map((s) => `${pkg.name}-${s}`).sort()
  const listed = Object.keys(manifest.optionalDependencies || {}).sort()
  if (listed.join() !== expected.join()) die(`root optionalDependencies are ${listed.join(', ')}; expected ${expected.join(', ')}`)
  const listing = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', env }))
  const problems = checkRootFiles(listing[0].files.map((f) => f.path))
  if (problems.length) die(`the root package would ship:\n  - ${problems.join('\n  - ')}`)

  if (opts.dryRun) for (const s of suffixes) run('npm', ['publish', '--dry-run'], { cwd: path.join(root, 'npm', s), env })
  else napi(prepublish, root, env)
  run('npm', ['publish', '--ignore-scripts', ...(opts.dryRun ? ['--dry-run'] : [])], { cwd: root, env })
  console.log(`release: ${opts.dryRun ? 'would publish' : 'published'} ${pkg.name}@${pkg.version} with ${expected.join(', ')}${opts.registry ? ` to ${opts.registry}` : ''}`)
}

function main() {
  const opts = parseArgs(process.argv.slice(2))
  // The toolchain venv that .ci/run (or the hint above) makes in the checkout.
  const venv = path.join(REPO, '.tmp', 'zig-venv', process.platform === 'win32' ? 'Scripts' : 'bin')
  if (fs.existsSync(venv)) process.env.PATH = `${venv}${path.delimiter}${process.env.PATH}`
  const env = { ...process.env }
  if (opts.registry) env.npm_config_registry = opts.registry

  if (opts.build) {
    fs.mkdirSync(opts.out, { recursive: true })
    return build([opts.build], path.resolve(opts.out))
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rss-release-'))
  try {
    if (opts.artifacts) return publish(collected(path.resolve(opts.artifacts)), path.resolve(opts.artifacts), work, opts, env)
    if (process.platform !== 'linux' || process.arch !== 'x64') {
      die(`local releases build on Linux x64 (this is ${process.platform} ${process.arch}); .github/workflows/release.yml builds every platform`)
    }
    const binaries = path.join(work, 'binaries')
    build(LOCAL, binaries)
    publish(LOCAL, binaries, work, opts, env)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

if (require.main === module) {
  try {
    main()
  } catch (err) {
    console.error(`release: ${err instanceof ReleaseError ? err.message : err.stack}`)
    process.exitCode = 1
  }
}

module.exports = { SUFFIX }
