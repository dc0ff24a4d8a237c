'use strict'

// The installed versions of the peers, read from their package.json, so
// every label and report names what actually ran (a peer's new release can
// change every ratio).
const path = require('node:path')

function version(name) {
  try {
    return require(path.join(__dirname, '../node_modules', name, 'package.json')).version
  } catch {
    return '?'
  }
}

const VERSIONS = {
  'connect-redis': version('connect-redis'),
  redis: version('redis'),
  'connect-redis7': version('connect-redis7'),
  ioredis: version('ioredis'),
  'express-session': version('express-session'),
}

const CONNECT_REDIS = `connect-redis ${VERSIONS['connect-redis']} + node-redis ${VERSIONS.redis}`
const IOREDIS = `connect-redis ${VERSIONS['connect-redis7']} + ioredis ${VERSIONS.ioredis} (auto-pipelining)`

// One line for the top of a report.
const versionLine = () => Object.entries(VERSIONS).map(([name, v]) => `${name} ${v}`).join(', ')

module.exports = { VERSIONS, CONNECT_REDIS, IOREDIS, versionLine }
