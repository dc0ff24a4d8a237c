'use strict'

// The demo app (example/app.js) as a child process, on a port and store URL
// the test chooses, so it can be stopped and started again on the same file.
const { spawn } = require('node:child_process')
const path = require('node:path')

const APP = path.join(__dirname, '..', '..', 'example', 'app.js')

class DemoApp {
  // Resolves once the app listens on `port`; rejects with its output if it exits first.
  // `env`: more of the app's environment, e.g. TRUST_PROXY.
  static start({ port, url, env = {} }) {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [APP], {
        env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', REDIS_URL: url, SESSION_SECRET: 'browser test secret', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let output = ''
      const onData = (chunk) => {
        output += chunk
        if (output.includes(`http://127.0.0.1:${port}`)) {
          child.off('exit', onEarlyExit)
          resolve(new DemoApp(child, port, url))
        }
      }
      const onEarlyExit = (code) => reject(new Error(`the demo app exited (code ${code}) before listening:\n${output}`))
      child.stdout.on('data', onData)
      child.stderr.on('data', (chunk) => (output += chunk))
      child.once('exit', onEarlyExit)
    })
  }

  constructor(child, port, url) {
    this.child = child
    this.base = `http://127.0.0.1:${port}`
    this.url = url
  }

  // SIGTERM: the app closes its store (the file is complete) and exits.
  stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve()
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve())
      this.child.kill('SIGTERM')
    })
  }
}

module.exports = { DemoApp }
