'use strict'

const { fromNative, invalidArg } = require('./errors')

// all(): Rust hands the sessions over a page per round trip while it fetches
// the next, so parsing here overlaps Redis's work. Pages and the final count
// may arrive in either order.
function allSessions(store, done) {
  store._batcher.flush()
  const sessions = []
  let failure = null
  let received = 0
  let expected = -1
  let settled = false
  const finish = (err) => {
    if (settled) return
    settled = true
    done(err, err ? undefined : sessions)
  }
  const onPage = ({ ids, values }) => {
    received++
    if (settled) return
    if (failure === null) {
      try {
        for (let i = 0; i < ids.length; i++) {
          const sess = store._parse(ids[i], values[i], NaN)
          sess.id = ids[i]
          sessions.push(sess)
        }
      } catch (e) {
        failure = e
      }
    }
    if (received === expected) finish(failure)
  }
  store._native.all(onPage).then(
    (pages) => {
      expected = pages
      if (received === expected) finish(failure)
    },
    (err) => finish(fromNative(err, store._target)),
  )
}

// reindex(): SCAN steps; each step's sessions are adopted (recorded in the
// metas and indexes as they are) through the batcher, in order, before the
// next step. Values that are not sessions are counted and left alone.
function reindex(store, adopt, done) {
  let indexed = 0
  let skipped = 0
  const step = (cursor) => {
    store._native.scan(cursor).then((page) => {
      const adopted = []
      for (let i = 0; i < page.ids.length; i++) {
        let owner
        try {
          const sess = store._parse(page.ids[i], page.values[i], NaN)
          if (!sess.cookie) throw new Error('not a session')
          owner = store._owner(sess)
        } catch {
          skipped++
          continue
        }
        adopted.push(new Promise((resolve) => store._batcher.push(adopt, page.ids[i], null, owner, page.expiresAt[i], resolve)))
      }
      Promise.all(adopted).then((errors) => {
        const failed = errors.find(Boolean)
        if (failed) return done(failed)
        indexed += adopted.length
        if (page.cursor === '0') done(null, { indexed, skipped })
        else step(page.cursor)
      })
    }, (err) => done(fromNative(err, store._target)))
  }
  step('0')
}

// reencrypt(): steps over the shards of the all-sessions index, each a
// native call bounded by commandTimeout; the counts add up.
function reencrypt(store, done) {
  const total = { reencrypted: 0, current: 0, unreadable: 0, raced: 0 }
  const step = (from) => {
    store._native.reencrypt(from).then((r) => {
      total.reencrypted += r.reencrypted
      total.current += r.current
      total.unreadable += r.unreadable
      total.raced += r.raced
      if (r.next < 0) done(null, total)
      else step(r.next)
    }, (err) => done(fromNative(err, store._target)))
  }
  step(0)
}

// stats(): the windows asked for, in ms, as the native call takes them;
// `endedWithin` only when given (without it, stats() reads no more).
const DAY_SECONDS = 86_400

function statsWindows(options) {
  const active = options?.activeWithin ?? 300
  if (typeof active !== 'number' || !(active >= 0) || !Number.isFinite(active)) {
    throw invalidArg(`activeWithin must be a non-negative number of seconds, got ${String(active)}`)
  }
  const ended = options?.endedWithin ?? undefined
  if (ended !== undefined && (typeof ended !== 'number' || !(ended >= 0 && ended <= DAY_SECONDS))) {
    throw invalidArg(`endedWithin must be a number of seconds from 0 to ${DAY_SECONDS}, got ${String(ended)}`)
  }
  return [active * 1000, ended === undefined ? undefined : ended * 1000]
}

function statsOf(r) {
  const stats = {
    sessions: r.sessions,
    users: r.users,
    active: r.active,
    averageAge: r.averageAge,
    oldestCreatedAt: Number.isNaN(r.oldestCreatedAt) ? null : new Date(r.oldestCreatedAt),
  }
  // { sessions, averageDuration, byReason } as the native core made it.
  if (r.ended) stats.ended = r.ended
  return stats
}

module.exports = { allSessions, reindex, reencrypt, statsWindows, statsOf }
