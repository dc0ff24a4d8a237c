'use strict'

// The release workflow's supply-chain rules, checked on its text: actions
// pinned by commit, no dependency install script while the npm token is
// held, a protected environment for publishing, no cache on tag builds.
const test = require('ava')
const fs = require('node:fs')
const path = require('node:path')

const workflow = fs.readFileSync(path.join(__dirname, '..', '.github', 'workflows', 'release.yml'), 'utf8')
const publish = workflow.slice(workflow.indexOf('\n  publish:'))

test('every action is pinned by a full commit hash', (t) => {
  const uses = [...workflow.matchAll(/uses:\s*(\S+)/g)].map((m) => m[1])
  t.true(uses.length > 5)
  for (const use of uses) t.regex(use, /@[0-9a-f]{40}$/, use)
})

test('the publish job runs in a protected environment and runs no install scripts', (t) => {
  t.regex(publish, /\n {4}environment: \S+/)
  const installs = [...publish.matchAll(/run: (npm (?:install|ci)[^\n]*)/g)].map((m) => m[1])
  t.true(installs.length > 0)
  for (const install of installs) t.true(install.includes('--ignore-scripts'), install)
  t.true(publish.includes('secrets.NPM_TOKEN'), 'the token is used only here')
  t.false(workflow.slice(0, workflow.indexOf('\n  publish:')).includes('NPM_TOKEN'))
})

test('no build cache is restored on a tag build', (t) => {
  const caches = workflow.split('\n      - ').filter((step) => step.startsWith('uses: actions/cache@'))
  t.true(caches.length > 0)
  for (const step of caches) t.regex(step, /if: \$\{\{ !startsWith\(github\.ref, 'refs\/tags\/'\) \}\}/)
})
