//! HSET, HSETNX, HGET, HMGET, HEXISTS, HDEL, HGETALL, HKEYS, HINCRBY.

use redis::Value;

use crate::engine::data::{Data, Hash, Kind};
use crate::engine::keyspace::Keyspace;
use crate::engine::{parse, reply};

/// The live hash at `key` (None: no key); Err: WRONGTYPE.
fn hash<'a>(ks: &'a Keyspace, key: &[u8], now: i64) -> Result<Option<&'a Hash>, Value> {
    match ks.get(key, now).map(|e| &e.data) {
        None => Ok(None),
        Some(Data::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(reply::error(reply::WRONGTYPE)),
    }
}

fn writable(ks: &Keyspace, key: &[u8], now: i64) -> bool {
    matches!(ks.kind(key, now), None | Some(Kind::Hash))
}

/// HSET key field value [field value ...]: how many fields are new.
pub fn hset(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    if args.len() % 2 == 1 {
        return reply::arity("hset");
    }
    if !writable(ks, args[1], now) {
        return reply::error(reply::WRONGTYPE);
    }
    let added = args[2..]
        .chunks(2)
        .filter(|fv| ks.hash_set(args[1], fv[0], fv[1], now))
        .count();
    reply::int(added)
}

pub fn hsetnx(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match hash(ks, args[1], now) {
        Err(e) => e,
        Ok(Some(h)) if h.get(args[2]).is_some() => Value::Int(0),
        Ok(_) => reply::int(ks.hash_set(args[1], args[2], args[3], now)),
    }
}

pub fn hget(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match hash(ks, args[1], now) {
        Err(e) => e,
        Ok(h) => h
            .and_then(|h| h.get(args[2]))
            .map_or(Value::Nil, reply::bulk),
    }
}

pub fn hmget(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match hash(ks, args[1], now) {
        Err(e) => e,
        Ok(h) => Value::Array(
            args[2..]
                .iter()
                .map(|f| h.and_then(|h| h.get(f)).map_or(Value::Nil, reply::bulk))
                .collect(),
        ),
    }
}

pub fn hexists(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match hash(ks, args[1], now) {
        Err(e) => e,
        Ok(h) => reply::int(h.is_some_and(|h| h.get(args[2]).is_some())),
    }
}

/// HDEL key field [field ...]: how many were there.
pub fn hdel(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match hash(ks, args[1], now) {
        Err(e) => e,
        Ok(None) => Value::Int(0),
        Ok(Some(_)) => reply::int(ks.hash_remove(args[1], args[2..].iter().copied(), now)),
    }
}

/// HINCRBY key field increment: the new value (a missing field counts as
/// 0). Checked in Redis's order: the increment, the key's kind, then the
/// value held.
pub fn hincrby(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    let Some(by) = parse::int(args[3]) else {
        return reply::error(reply::NOT_INTEGER);
    };
    let held = match hash(ks, args[1], now) {
        Err(e) => return e,
        Ok(h) => h.and_then(|h| h.get(args[2])).map(parse::int),
    };
    let old = match held {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => return reply::error("ERR hash value is not an integer"),
    };
    let Some(new) = old.checked_add(by) else {
        return reply::error("ERR increment or decrement would overflow");
    };
    ks.hash_set(args[1], args[2], new.to_string().as_bytes(), now);
    Value::Int(new)
}

/// HGETALL key: fields and values, flat.
pub fn hgetall(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    listing(ks, args[1], now, |f, v| [reply::bulk(f), reply::bulk(v)])
}

/// HKEYS key: the fields.
pub fn hkeys(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    listing(ks, args[1], now, |f, _| [reply::bulk(f)])
}

/// The replies `each` makes of every field and value of the hash, flat.
fn listing<I: IntoIterator<Item = Value>>(
    ks: &Keyspace,
    key: &[u8],
    now: i64,
    each: impl Fn(&[u8], &[u8]) -> I,
) -> Value {
    match hash(ks, key, now) {
        Err(e) => e,
        Ok(h) => Value::Array(
            h.into_iter()
                .flat_map(|h| h.iter())
                .flat_map(|(f, v)| each(f, v))
                .collect(),
        ),
    }
}
