'use strict'

// The store contract (contract.js) on a master, a replica and three sentinels, started once for the file.
const test = require('ava')
const { runContract } = require('./contract')
const { sentinel } = require('../helpers/backends')

runContract(test, sentinel)
