'use strict'

// Finds and loads the native addon: the dev build that `napi build --platform`
// leaves in the package root, else the prebuilt package npm installed for this
// platform (an optionalDependency picked by os/cpu/libc). When neither loads it
// throws one Error that says which case it is and how to fix it, instead of
// napi's generic "Cannot find native binding".
const fs = require('node:fs')
const path = require('node:path')

const NAME = 'redis-session-store'
const ROOT = path.join(__dirname, '..')

// The platforms a prebuilt package is published for (package.json napi.targets).
const PUBLISHED = [
  'linux-x64-gnu',
  'linux-x64-musl',
  'linux-arm64-gnu',
  'linux-arm64-musl',
  'darwin-x64',
  'darwin-arm64',
  'win32-x64-msvc',
]

// glibc or musl, the way napi's generated loader tells them apart: ldd says
// which libc it belongs to; without ldd (a slim image may lack it), glibc
// reports its version in the diagnostic report and musl does not.
function detectLibc() {
  try {
    return fs.readFileSync('/usr/bin/ldd', 'latin1').includes('musl') ? 'musl' : 'gnu'
  } catch {
    // no ldd: ask the report
  }
  try {
    return process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'
  } catch {
    return 'gnu'
  }
}

// napi's platform suffix: linux-x64-gnu, darwin-arm64, win32-x64-msvc, ...
function platformSuffix({ platform = process.platform, arch = process.arch, libc } = {}) {
  if (platform === 'linux') return `linux-${arch}-${libc || detectLibc()}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function describe(suffix) {
  const [platform, arch, libc] = suffix.split('-')
  const abi = platform === 'linux' ? `, libc ${libc === 'musl' ? 'musl' : 'glibc'}` : ''
  return `${platform} ${arch}${abi}`
}

function fail(code, lines, errors) {
  const err = new Error(lines.join('\n'), errors.length ? { cause: errors[errors.length - 1] } : undefined)
  err.code = code
  err.errors = errors
  return err
}

// `options` exist for the tests: another platform, root directory, or place
// to resolve the platform package from.
function loadBinding(options = {}) {
  const suffix = platformSuffix(options)
  const root = options.root || ROOT
  const from = options.from || root
  const pkg = `${NAME}-${suffix}`
  const errors = []

  const local = path.join(root, `${NAME}.${suffix}.node`)
  if (fs.existsSync(local)) {
    try {
      return require(local)
    } catch (err) {
      errors.push(err)
    }
  }

  const fromSource = 'or build it from source: install Rust (https://rustup.rs), clone the repository, `npm install && npm run build`, then `npm install /path/to/clone`'
  if (!PUBLISHED.includes(suffix)) {
    throw fail('ERR_UNSUPPORTED_PLATFORM', [
      `redis-session-store has no prebuilt binary for this platform (${describe(suffix)}; detected ${suffix}).`,
      `Prebuilt: ${PUBLISHED.join(', ')}.`,
      `Build it from source: install Rust (https://rustup.rs), clone the repository, \`npm install && npm run build\` (it writes ${NAME}.${suffix}.node), then \`npm install /path/to/clone\`.`,
    ], errors)
  }

  let resolved
  try {
    resolved = require.resolve(pkg, { paths: [from] })
  } catch (err) {
    errors.push(err)
    const others = PUBLISHED.filter((s) => s !== suffix && installed(`${NAME}-${s}`, from))
    throw fail('ERR_NATIVE_BINDING_MISSING', [
      `redis-session-store could not find its native binary: the package ${pkg} is not installed (detected ${describe(suffix)}).`,
      ...(others.length ? [`Installed for another platform instead: ${others.map((s) => `${NAME}-${s}`).join(', ')} (node_modules copied from another machine, or a glibc/musl mix-up).`] : []),
      'npm installs it as an optional dependency. To fix:',
      `  - npm install ${pkg}`,
      '  - or reinstall without --omit=optional / --no-optional (and without optional=false in .npmrc)',
      '  - or, if the lock file was made on another platform (npm/cli#4828): delete node_modules and package-lock.json, then npm install',
      `  - ${fromSource}`,
    ], errors)
  }

  try {
    return require(resolved)
  } catch (err) {
    errors.push(err)
    throw fail('ERR_NATIVE_BINDING_LOAD', [
      `redis-session-store found ${pkg} (${resolved}) but could not load it on ${describe(suffix)}: ${err.message.split('\n')[0]}`,
      suffix.endsWith('-gnu')
        ? `The Linux glibc binaries need glibc 2.17 or later (this one has ${glibcVersion()}); a musl system needs the musl package (a glibc/musl mix-up?).`
        : 'The file may be damaged or built for another platform (node_modules copied from another machine?).',
      `To fix: delete node_modules and package-lock.json and run npm install on this machine, or ${fromSource.replace(/^or /, '')}.`,
    ], errors)
  }
}

function glibcVersion() {
  try {
    return `glibc ${process.report.getReport().header.glibcVersionRuntime}`
  } catch {
    return 'an unknown libc'
  }
}

function installed(pkg, from) {
  try {
    require.resolve(`${pkg}/package.json`, { paths: [from] })
    return true
  } catch {
    return false
  }
}

// The addon as the store's modules use it: found and loaded once, however
// many of them ask.
let loaded = null
function binding() {
  if (loaded === null) loaded = loadBinding()
  return loaded
}

module.exports = { binding, loadBinding, platformSuffix, detectLibc, PUBLISHED }
