'use strict'

// The Nest tests again on Nest 10: every @nestjs/common, core,
// platform-express and testing import (the module's own too) resolves to
// the copy nest10.setup.js installs.
const path = require('node:path')

const nest10 = path.join(__dirname, '../../.tmp/nest10/node_modules/@nestjs')

module.exports = {
  rootDir: path.join(__dirname, '../..'),
  testMatch: ['<rootDir>/__test__/jest/nest*.test.js'],
  testEnvironment: 'node',
  globalSetup: '<rootDir>/__test__/jest/nest10.setup.js',
  // What nest.test.js checks it runs on.
  globals: { NEST_MAJOR: '10' },
  moduleNameMapper: {
    '^@nestjs/(common|core|platform-express|testing)$': `${nest10}/$1`,
    '^@nestjs/(common|core|platform-express|testing)/(.*)$': `${nest10}/$1/$2`,
  },
}
