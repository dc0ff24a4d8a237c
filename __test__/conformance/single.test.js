'use strict'

// The store contract (contract.js) on one redis-server (or REDIS_URL).
const test = require('ava')
const { runContract } = require('./contract')
const { singleNode } = require('../helpers/backends')

runContract(test, singleNode)
