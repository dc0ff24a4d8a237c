//! INFO and WAIT: what the store asks a server about itself.

use redis::Value;

use super::is;
use crate::engine::keyspace::Keyspace;
use crate::engine::{parse, reply};

/// Nothing is ever evicted (the engine has no memory limit).
const MEMORY: &str = "# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n";
/// A single server: no replica to wait for.
const REPLICATION: &str = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n";

/// INFO [section ...], in Redis's text format, for the sections the
/// engine has.
pub fn info(_: &mut Keyspace, args: &[&[u8]], _: i64) -> Value {
    let asked = &args[1..];
    let every = asked.is_empty()
        || asked
            .iter()
            .any(|a| is(a, "default") || is(a, "all") || is(a, "everything"));
    let mut text = String::new();
    for (name, body) in [("memory", MEMORY), ("replication", REPLICATION)] {
        if every || asked.iter().any(|a| is(a, name)) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            text.push_str(body);
        }
    }
    reply::bulk(text.as_bytes())
}

/// WAIT numreplicas timeout: no replica ever acknowledges, at once.
pub fn wait(_: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    if parse::int(args[1]).is_none() {
        return reply::error(reply::NOT_INTEGER);
    }
    match parse::int(args[2]) {
        None => reply::error("ERR timeout is not an integer or out of range"),
        Some(t) if t < 0 => reply::error("ERR timeout is negative"),
        Some(t) if t > i64::MAX - now => reply::error("ERR timeout is out of range"),
        Some(_) => Value::Int(0),
    }
}
