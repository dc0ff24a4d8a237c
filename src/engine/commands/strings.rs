//! GET, MGET and SET.

use redis::Value;

use super::is;
use crate::engine::data::Data;
use crate::engine::keyspace::Keyspace;
use crate::engine::{parse, reply};

pub fn get(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match ks.get(args[1], now).map(|e| &e.data) {
        None => Value::Nil,
        Some(Data::Str(v)) => reply::bulk(v),
        Some(_) => reply::error(reply::WRONGTYPE),
    }
}

/// A key of another kind reads as nil here, not as an error.
pub fn mget(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    Value::Array(
        args[1..]
            .iter()
            .map(|key| match ks.get(key, now).map(|e| &e.data) {
                Some(Data::Str(v)) => reply::bulk(v),
                _ => Value::Nil,
            })
            .collect(),
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

const UNITS: [(&str, Unit); 4] = [
    ("ex", Unit::Ex),
    ("px", Unit::Px),
    ("exat", Unit::ExAt),
    ("pxat", Unit::PxAt),
];

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL].
/// Without KEEPTTL or an expiry it clears the key's TTL; it replaces a key
/// of any kind.
pub fn set(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    let (key, value) = (args[1], args[2]);
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    let mut expire: Option<(Unit, &[u8])> = None;
    let mut j = 3;
    while j < args.len() {
        let opt = args[j];
        let unit = UNITS.iter().find(|(w, _)| is(opt, w)).map(|(_, u)| *u);
        // As Redis: an option may repeat, a conflicting one is a syntax error.
        let expiry_fits = !keep_ttl && expire.is_none_or(|(u, _)| Some(u) == unit);
        match (unit, args.get(j + 1)) {
            _ if is(opt, "nx") && !xx => nx = true,
            _ if is(opt, "xx") && !nx => xx = true,
            _ if is(opt, "get") => get = true,
            _ if is(opt, "keepttl") && expire.is_none() => keep_ttl = true,
            (Some(unit), Some(n)) if expiry_fits => {
                expire = Some((unit, n));
                j += 1;
            }
            _ => return reply::error(reply::SYNTAX),
        }
        j += 1;
    }
    let at = match expire {
        None => None,
        Some((unit, text)) => match deadline(unit, text, now) {
            Ok(at) => Some(at),
            Err(e) => return e,
        },
    };
    let old = ks.get(key, now).map(|e| (&e.data, e.expires));
    let previous = match old {
        _ if !get => None,
        None => Some(Value::Nil),
        Some((Data::Str(v), _)) => Some(reply::bulk(v)),
        Some(_) => return reply::error(reply::WRONGTYPE),
    };
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return previous.unwrap_or(Value::Nil);
    }
    let expires = if keep_ttl {
        old.and_then(|(_, e)| e)
    } else {
        at
    };
    ks.set_string(key, value, expires, now);
    previous.unwrap_or(Value::Okay)
}

/// The absolute deadline an expiry option names, checked as Redis does.
fn deadline(unit: Unit, text: &[u8], now: i64) -> Result<i64, Value> {
    let bad = || reply::error("ERR invalid expire time in 'set' command");
    let n = parse::int(text).ok_or_else(|| reply::error(reply::NOT_INTEGER))?;
    let seconds = matches!(unit, Unit::Ex | Unit::ExAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(bad());
    }
    let ms = if seconds { n * 1000 } else { n };
    let at = match unit {
        Unit::Ex | Unit::Px => ms.checked_add(now).ok_or_else(bad)?,
        Unit::ExAt | Unit::PxAt => ms,
    };
    if at <= 0 {
        return Err(bad());
    }
    Ok(at)
}
