'use strict'

// The diagnostics_channel TracingChannel for APMs that subscribe instead of
// using OpenTelemetry. Its context objects carry the operation and where it
// went, then `result` ('hit', 'miss', 'corrupt' for get) or `error` (with
// any session key in its message replaced by the session's handle); never a
// session id, user id, key or value.
const dc = require('node:diagnostics_channel')

const NAME = 'redis-session-store:call'

// tracingChannel came in Node 18.19 / 19.9: on older Nodes there is none.
const channel = typeof dc.tracingChannel === 'function' ? dc.tracingChannel(NAME) : null

// TracingChannel#hasSubscribers is newer than tracingChannel itself; the
// five channels answer on every version.
function subscribed() {
  if (channel === null) return false
  return (
    channel.start.hasSubscribers ||
    channel.end.hasSubscribers ||
    channel.asyncStart.hasSubscribers ||
    channel.asyncEnd.hasSubscribers ||
    channel.error.hasSubscribers
  )
}

module.exports = { channel, subscribed, NAME }
