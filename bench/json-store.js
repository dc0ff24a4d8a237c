'use strict'

// The baseline of the store workload: the JSON work that express-session's
// users pay with any store, and nothing else. It keeps each session's JSON
// string in a Map in this process: get parses it, set stringifies and keeps
// it, touch only answers. Callbacks come later, as a real store's do, via
// setImmediate like MemoryStore's: with queueMicrotask the workload's
// request loops would chain microtasks forever and its timers never fire.
// A store's CPU per op minus this one's is what the store itself costs.
class JsonOnlyStore {
  constructor() {
    this.json = new Map()
  }

  get(sid, cb) {
    const json = this.json.get(sid)
    const sess = json === undefined ? null : JSON.parse(json)
    setImmediate(cb, null, sess)
  }

  set(sid, sess, cb) {
    this.json.set(sid, JSON.stringify(sess))
    if (cb) setImmediate(cb, null)
  }

  touch(sid, sess, cb) {
    if (cb) setImmediate(cb, null)
  }

  destroy(sid, cb) {
    this.json.delete(sid)
    if (cb) setImmediate(cb, null)
  }
}

module.exports = { JsonOnlyStore }
