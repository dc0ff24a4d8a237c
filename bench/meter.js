'use strict'

// What an HTTP server child (http-server.js, nest-server.js) reports to
// run.js: requests served and the process's CPU between "mark" and
// "report", so CPU can be charged to each request.
const { performance } = require('node:perf_hooks')

function meter() {
  let served = 0
  let mark = null
  return {
    served() {
      served++
    },
    mark() {
      mark = { served, cpu: process.cpuUsage(), elu: performance.eventLoopUtilization() }
      return null
    },
    report() {
      const cpu = process.cpuUsage(mark.cpu)
      const requests = served - mark.served
      return {
        requests,
        cpuUsPerReq: (cpu.user + cpu.system) / requests,
        cpuUserUsPerReq: cpu.user / requests,
        cpuSystemUsPerReq: cpu.system / requests,
        elu: performance.eventLoopUtilization(mark.elu).utilization,
        rssMB: process.memoryUsage().rss / 1048576,
      }
    },
  }
}

module.exports = { meter }
