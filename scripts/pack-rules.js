'use strict'

// What the root package may ship: the JS face, the loader, the types and the
// docs. Binaries live in the platform packages; tests, benches and the Rust
// sources stay in the repository. Used by the release and by its test.
const REQUIRED = ['package.json', 'index.js', 'index.mjs', 'index.d.ts', 'lib/native.js', 'README.md', 'LICENSE', 'CHANGELOG.md']
const FORBIDDEN = [
  [/\.node$/, 'a native binary'],
  [/(^|\/)(__test__|tests?)\//, 'tests'],
  [/\.rs$|^src\/|(^|\/)Cargo\.(toml|lock)$/, 'Rust sources'],
  [/^bench\//, 'benchmarks'],
  [/^(example|scripts|npm|\.github|\.ci)\//, 'repository tooling'],
]

// Returns what is wrong with a list of packed paths (empty when nothing is).
function checkRootFiles(files) {
  const problems = REQUIRED.filter((f) => !files.includes(f)).map((f) => `missing ${f}`)
  for (const f of files) {
    for (const [re, what] of FORBIDDEN) if (re.test(f)) problems.push(`${f} (${what})`)
  }
  return problems
}

module.exports = { checkRootFiles, REQUIRED }
