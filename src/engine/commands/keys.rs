//! Commands on keys of any kind: DEL, EXISTS, expiries, SCAN.

use redis::Value;

use super::is;
use crate::engine::keyspace::Keyspace;
use crate::engine::{glob, parse, reply};

pub fn del(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    reply::int(args[1..].iter().filter(|k| ks.delete(k, now)).count())
}

/// Counts a key named twice twice, as Redis does.
pub fn exists(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    reply::int(
        args[1..]
            .iter()
            .filter(|k| ks.get(k, now).is_some())
            .count(),
    )
}

/// PEXPIREAT key ms [NX | XX | GT | LT]. A deadline not in the future
/// deletes the key (and still answers 1).
pub fn pexpireat(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        match () {
            _ if is(opt, "nx") => nx = true,
            _ if is(opt, "xx") => xx = true,
            _ if is(opt, "gt") => gt = true,
            _ if is(opt, "lt") => lt = true,
            _ => {
                return reply::error(&format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                ))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return reply::error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return reply::error("ERR GT and LT options at the same time are not compatible");
    }
    let Some(at) = parse::int(args[2]) else {
        return reply::error(reply::NOT_INTEGER);
    };
    let key = args[1];
    let Some(current) = ks.get(key, now).map(|e| e.expires) else {
        return Value::Int(0);
    };
    // No TTL counts as an infinite one for GT and LT.
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| at <= c))
        || (lt && current.is_some_and(|c| at >= c));
    if refused {
        return Value::Int(0);
    }
    if at <= now {
        ks.delete(key, now);
    } else {
        ks.set_expiry(key, Some(at));
    }
    Value::Int(1)
}

/// The deadline in epoch ms; -1 for none, -2 for no key.
pub fn pexpiretime(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    Value::Int(match ks.get(args[1], now) {
        None => -2,
        Some(e) => e.expires.unwrap_or(-1),
    })
}

pub fn pttl(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    Value::Int(match ks.get(args[1], now) {
        None => -2,
        Some(e) => e.expires.map_or(-1, |at| (at - now).max(0)),
    })
}

pub fn persist(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    let had_ttl = ks.get(args[1], now).is_some_and(|e| e.expires.is_some());
    reply::int(had_ttl && ks.set_expiry(args[1], None))
}

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE name]. COUNT is how many
/// keys are looked at, as in Redis: a call may find fewer, or none, and
/// still not be done.
pub fn scan(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    let Some(cursor) = parse::cursor(args[1]) else {
        return reply::error("ERR invalid cursor");
    };
    let (mut count, mut pattern, mut kind) = (10usize, None, None);
    let mut i = 2;
    while i < args.len() {
        let (opt, value) = (args[i], args.get(i + 1).copied());
        match value {
            Some(n) if is(opt, "count") => match parse::int(n) {
                None => return reply::error(reply::NOT_INTEGER),
                Some(n) if n < 1 => return reply::error(reply::SYNTAX),
                Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
            },
            // A lone "*" matches every key, even an empty one.
            Some(p) if is(opt, "match") => pattern = (p != b"*").then_some(p),
            Some(t) if is(opt, "type") => kind = Some(t),
            _ => return reply::error(reply::SYNTAX),
        }
        i += 2;
    }
    let (next, keys) = ks.scan(cursor, count, now, |key, k| {
        pattern.is_none_or(|p| glob::matches(p, key))
            && kind.is_none_or(|t| t.eq_ignore_ascii_case(k.name().as_bytes()))
    });
    Value::Array(vec![
        reply::bulk(next.to_string().as_bytes()),
        Value::Array(keys.iter().map(|k| reply::bulk(k)).collect()),
    ])
}
