'use strict'

// Request/response over a forked child's IPC channel, every call bounded.
const { fork } = require('node:child_process')
const path = require('node:path')

const live = new Set()

// Forks bench/<file> and returns a handle with call(cmd, args, timeoutMs).
// `execPath`: what runs it instead of this node (valgrind, with node among
// its execArgv).
function spawnChild(file, args = [], { execArgv = [], env, execPath } = {}) {
  const child = fork(path.join(__dirname, file), args, {
    execArgv,
    execPath,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  live.add(child)
  let nextId = 1
  const pending = new Map()
  const listeners = new Set()
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child)
      for (const { reject, timer } of pending.values()) {
        clearTimeout(timer)
        reject(new Error(`${file} exited (code ${code}, signal ${signal}) before replying`))
      }
      pending.clear()
      resolve({ code, signal })
    })
  })
  child.on('message', (msg) => {
    if (msg && msg.replyTo && pending.has(msg.replyTo)) {
      const p = pending.get(msg.replyTo)
      pending.delete(msg.replyTo)
      clearTimeout(p.timer)
      if (msg.error) p.reject(new Error(`${file}: ${msg.error}`))
      else p.resolve(msg.result)
    } else {
      for (const l of listeners) l(msg)
    }
  })
  child.on('error', () => {})

  return {
    child,
    pid: child.pid,
    exited,
    onMessage(fn) {
      listeners.add(fn)
    },
    // Resolves on the first unsolicited message satisfying pred.
    waitFor(pred, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(l)
          reject(new Error(`${file}: timed out after ${timeoutMs} ms waiting for ${what}`))
        }, timeoutMs)
        const l = (msg) => {
          if (!pred(msg)) return
          clearTimeout(timer)
          listeners.delete(l)
          resolve(msg)
        }
        listeners.add(l)
        exited.then(() => {
          clearTimeout(timer)
          listeners.delete(l)
          reject(new Error(`${file} exited while waiting for ${what}`))
        })
      })
    },
    call(cmd, args, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (!child.connected) return reject(new Error(`${file} is not running`))
        const id = nextId++
        const timer = setTimeout(() => {
          pending.delete(id)
          reject(new Error(`${file}: "${cmd}" timed out after ${timeoutMs} ms`))
        }, timeoutMs)
        pending.set(id, { resolve, reject, timer })
        child.send({ id, cmd, args })
      })
    },
    // Asks the child to close, then kills it if it has not exited in time.
    async stop(timeoutMs = 5000) {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          await this.call('close', {}, timeoutMs)
        } catch {}
        const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
        await exited
        clearTimeout(t)
      }
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    },
  }
}

function killAll() {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}

// In a child: route {id, cmd, args} messages to handlers and reply. The child
// exits when the parent goes away, so nothing outlives the benchmark.
function serve(handlers) {
  process.on('disconnect', () => process.exit(0))
  process.on('message', async (msg) => {
    if (!msg || !msg.id) return
    const h = handlers[msg.cmd]
    try {
      if (!h) throw new Error(`unknown command ${msg.cmd}`)
      const result = await h(msg.args || {})
      const after = msg.cmd === 'close' ? () => process.exit(0) : undefined
      if (process.connected) process.send({ replyTo: msg.id, result }, after)
      else if (after) after()
    } catch (err) {
      if (process.connected) process.send({ replyTo: msg.id, error: (err && err.stack) || String(err) })
    }
  })
}

module.exports = { spawnChild, killAll, serve }
