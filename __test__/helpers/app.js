'use strict'

// Runs a test app (a node script that prints its HTTP port on its first line)
// and stops it: SIGTERM for a clean close, SIGKILL if it has not exited 5 s later.
const { spawn } = require('node:child_process')

function spawnApp(node, script, cwd, env) {
  const proc = spawn(node, [script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  const stop = async () => {
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000)
    await exited
    clearTimeout(timer)
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${script} printed no port in 20 s`)), 20_000)
    function fail(err) {
      clearTimeout(timer)
      proc.kill('SIGKILL')
      err.message += stderr ? `\n${stderr}` : ''
      reject(err)
    }
    proc.stdout.once('data', (d) => {
      clearTimeout(timer)
      resolve({ port: Number(String(d).split('\n')[0]), stop })
    })
    exited.then((code) => fail(new Error(`${script} exited with ${code}`)))
  })
}

module.exports = { spawnApp }
