'use strict'

// Child process: logs in one session per connection, then loads "/" with
// autocannon, each connection sending its own session cookie.
const http = require('node:http')
const autocannon = require('autocannon')
const { serve } = require('./ipc')

function get(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, timeout: 5000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)))
    req.on('error', reject)
  })
}

let cookies = []

// `amount`: that many requests instead of `seconds` of them; `timeout`:
// seconds a request may take.
function cannon({ port, connections, seconds, amount, timeout = 5 }) {
  let k = 0
  return autocannon({
    url: `http://127.0.0.1:${port}/`,
    connections,
    ...(amount ? { amount } : { duration: seconds }),
    timeout,
    setupClient(client) {
      client.setHeaders({ cookie: cookies[k++ % cookies.length] })
    },
  })
}

function summary(r) {
  return {
    seconds: r.duration,
    requests: r.requests.total,
    reqPerSec: r.requests.total / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
  }
}

serve({
  async login({ port, sessions }) {
    cookies = []
    for (let i = 0; i < sessions; i++) {
      const res = await get(port, `/login?u=${i}`)
      const set = [].concat(res.headers['set-cookie'] || [])
      if (res.status !== 200 || set.length === 0) throw new Error(`login ${i}: status ${res.status}, no cookie`)
      cookies.push(set[0].split(';')[0])
    }
    const check = await get(port, '/', { cookie: cookies[0] })
    if (check.status !== 200) throw new Error(`logged-in GET / answered ${check.status}: ${check.body}`)
    return { sessions: cookies.length }
  },

  async load(args) {
    return summary(await cannon(args))
  },

  close() {
    return null
  },
})
