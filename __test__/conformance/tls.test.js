'use strict'

// The store contract (contract.js) on a TLS-only redis-server that requires a client certificate (mutual TLS).
const test = require('ava')
const { runContract } = require('./contract')
const { tls } = require('../helpers/backends')

runContract(test, tls)
