'use strict'

// The store contract (contract.js) on the embedded engine in process (memory://, and memory://<name> for two instances).
const test = require('ava')
const { runContract } = require('./contract')
const { memory } = require('../helpers/backends')

runContract(test, memory)
