'use strict'

// The store contract (contract.js) on the embedded engine on a fresh temporary file (file://).
const test = require('ava')
const { runContract } = require('./contract')
const { file } = require('../helpers/backends')

runContract(test, file)
