'use strict'

// The docs against the code: every option, error code and warning code is
// documented in docs/api.md (and every option typed in index.d.ts), and the
// README stays short, keeps the two commands .ci/run relies on, and links
// only to files that exist.
const test = require('ava')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const read = (file) => fs.readFileSync(path.join(root, file), 'utf8')
const api = read('docs/api.md')

// Every .js under lib/ and .rs under src/, for the codes they raise.
function sources(dir, ext) {
  return fs.readdirSync(path.join(root, dir), { recursive: true })
    .filter((file) => file.endsWith(ext))
    .map((file) => read(path.join(dir, file)))
}

// The keys of DEFAULTS in lib/options.js: the module does not export it,
// and parsing keeps this test free of the module's load-time needs.
function optionNames() {
  const body = read('lib/options.js').match(/const DEFAULTS = \{\n([\s\S]*?)\n\}/)[1]
  return [...body.matchAll(/^ {2}(\w+):/gm)].map((m) => m[1])
}

function quoted(texts, pattern) {
  const codes = new Set()
  for (const text of texts) for (const m of text.matchAll(pattern)) codes.add(m[1])
  return [...codes]
}

test('every option is typed in index.d.ts and documented in docs/api.md', (t) => {
  const names = optionNames()
  t.true(names.length >= 20, `found only ${names.join(', ')}`)
  const types = read('index.d.ts').match(/export interface RedisSessionStoreOptions \{([\s\S]*?)\n\}/)[1]
  for (const name of names) {
    t.regex(types, new RegExp(`^ {2}${name}\\?:`, 'm'), `option ${name} is not in RedisSessionStoreOptions (index.d.ts)`)
    t.true(api.includes(`| \`${name}\` |`), `option ${name} has no row in docs/api.md's options table`)
  }
})

test('every error code is documented in docs/api.md', (t) => {
  const { NativeStore } = require('../lib/native').loadBinding()
  const native = NativeStore.errorCodes()
  t.true(native.length >= 8)
  // The JS face raises some of its own (serialising, loading the binary).
  const js = quoted([read('index.js'), ...sources('lib', '.js')], /['"`](ERR_[A-Z][A-Z_]*)['"`]/g)
  t.true(js.includes('ERR_NATIVE_BINDING_MISSING'))
  for (const code of new Set([...native, ...js])) {
    t.true(api.includes(`\`${code}\``), `error code ${code} is not in docs/api.md`)
  }
})

test('every warning code is documented in docs/api.md', (t) => {
  const codes = quoted([...sources('lib', '.js'), ...sources('src', '.rs')], /['"](WARN_[A-Z][A-Z_]*)['"]/g)
  t.true(codes.length >= 2, `found only ${codes.join(', ')}`)
  for (const code of codes) t.true(api.includes(`\`${code}\``), `warning code ${code} is not in docs/api.md`)
})

test('the README is at most 1,500 words and keeps the two commands of a fresh clone', (t) => {
  const readme = read('README.md')
  const words = readme.split(/\s+/).filter(Boolean).length
  t.true(words <= 1500, `README.md has ${words} words`)
  t.true(readme.includes('npm install && npm run example'))
  t.true(readme.includes('npm install && npm test'))
})

// GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes.
function anchors(markdown) {
  const slugs = new Set()
  for (const m of markdown.matchAll(/^#+ (.+)$/gm)) {
    slugs.add(m[1].trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'))
  }
  return slugs
}

test("the README's links lead to files (and headings) that exist", (t) => {
  const links = [...read('README.md').matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1])
  const local = links.filter((link) => !/^[a-z]+:/.test(link))
  t.true(local.length >= 5, `found only ${local.join(', ')}`)
  for (const link of local) {
    const [file, anchor] = link.split('#')
    const target = file === '' ? 'README.md' : file
    t.true(fs.existsSync(path.join(root, target)), `README links to ${target}, which does not exist`)
    if (anchor && target.endsWith('.md') && fs.existsSync(path.join(root, target))) {
      t.true(anchors(read(target)).has(anchor), `README links to ${link}: no such heading`)
    }
  }
})
