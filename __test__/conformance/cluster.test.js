'use strict'

// The store contract (contract.js) on a 3-master Redis Cluster, started once for the file.
const test = require('ava')
const { runContract } = require('./contract')
const { cluster } = require('../helpers/backends')

runContract(test, cluster)
