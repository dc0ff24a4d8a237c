//! The store's five Lua scripts (`crate::scripts`), run natively: each step
//! of the Lua, in order, through the same commands (so a wrong type or a
//! bad argument fails where it fails in Redis, with Redis's error text and
//! the script's line), Lua's number coercions and Lua's number printing
//! (`%.17g`) for every number passed to a command. Each native version is
//! pinned to the SHA of the Lua it follows: a changed script is refused
//! until this file follows it again.

use redis::Value;

use super::commands;
use super::keyspace::Keyspace;
use super::lua::{self, Val};
use super::{parse, reply};
use crate::scripts;

type Native = fn(&mut Call, &[&[u8]], &[&[u8]]) -> Result<Value, Value>;

/// (SHA of the Lua followed, the Lua, its native version).
static SCRIPTS: [(&str, &std::sync::LazyLock<scripts::Lua>, Native); 5] = [
    (
        "dcc5f7703213ff715cc5348c5044e8c0c168971c",
        &scripts::WRITE,
        write,
    ),
    (
        "2182a32b6bb20583a8cf1a9b905b4cf87005653b",
        &scripts::DESTROY,
        destroy,
    ),
    (
        "c2e7f728a018e581a8f7c44603c7d7c65f33e057",
        &scripts::INDEX,
        index,
    ),
    (
        "24a9380f1a786edf1b98fe0c54abf1581ab10544",
        &scripts::RECLAIM,
        reclaim,
    ),
    (
        "5722349925938dc0796c9666ca77bd48191eb180",
        &scripts::UNINDEX,
        unindex,
    ),
];

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// SCRIPT LOAD of one of the store's scripts answers its SHA; any other
/// script is refused (the engine has no Lua).
pub fn script(args: &[&[u8]]) -> Value {
    let Some(sub) = args.get(1) else {
        return reply::arity("script");
    };
    if !sub.eq_ignore_ascii_case(b"load") {
        let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]);
        return reply::error(&format!(
            "ERR unknown subcommand '{sub}'. The embedded engine has only SCRIPT LOAD."
        ));
    }
    if args.len() != 3 {
        return reply::arity("script|load");
    }
    let sha =
        std::str::from_utf8(args[2]).map(|code| redis::Script::new(code).get_hash().to_owned());
    match sha {
        Ok(sha) if SCRIPTS.iter().any(|(pinned, _, _)| *pinned == sha) => {
            reply::bulk(sha.as_bytes())
        }
        _ => reply::error(
            "ERR the embedded engine runs only redis-session-store's own scripts, natively: \
             this one is not one of them",
        ),
    }
}

/// EVALSHA sha numkeys key... arg..., checked in Redis's order.
pub fn evalsha(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    if args.len() < 3 {
        return reply::arity("evalsha");
    }
    if args[1].len() != 40 {
        return reply::error(NOSCRIPT);
    }
    let Some(numkeys) = parse::int(args[2]) else {
        return reply::error(reply::NOT_INTEGER);
    };
    let given = args.len() - 3;
    let numkeys = match usize::try_from(numkeys) {
        Err(_) => return reply::error("ERR Number of keys can't be negative"),
        Ok(n) if n > given => {
            return reply::error("ERR Number of keys can't be greater than number of args")
        }
        Ok(n) => n,
    };
    let Some((sha, _, native)) = SCRIPTS
        .iter()
        .find(|(sha, _, _)| args[1].eq_ignore_ascii_case(sha.as_bytes()))
    else {
        return reply::error(NOSCRIPT);
    };
    let (keys, argv) = args[3..].split_at(numkeys);
    let mut call = Call { ks, now, sha };
    match native(&mut call, keys, argv) {
        Ok(v) | Err(v) => v,
    }
}

/// An argument to `redis.call`: Lua passes numbers as `%.17g` text and
/// refuses nil.
enum Arg<'a> {
    S(&'a [u8]),
    N(f64),
    Nil,
}
use Arg::{N, S};

fn opt(s: Option<&[u8]>) -> Arg<'_> {
    s.map_or(Arg::Nil, S)
}

fn num(n: Option<f64>) -> Arg<'static> {
    n.map_or(Arg::Nil, N)
}

/// One script run: the time is frozen at its start, as in Redis.
struct Call<'a> {
    ks: &'a mut Keyspace,
    now: i64,
    sha: &'a str,
}

impl Call<'_> {
    /// `redis.pcall`: the command's reply, errors included.
    fn pcall(&mut self, args: &[Arg]) -> Result<Value, String> {
        let numbers: Vec<String> = args
            .iter()
            .filter_map(|a| match a {
                N(n) => Some(parse::g17(*n)),
                _ => None,
            })
            .collect();
        let mut numbers = numbers.iter();
        let mut argv: Vec<&[u8]> = Vec::with_capacity(args.len());
        for a in args {
            argv.push(match a {
                S(s) => s,
                N(_) => numbers.next().map_or(&[][..], |n| n.as_bytes()),
                Arg::Nil => {
                    return Err(
                        "ERR Lua redis lib command arguments must be strings or integers"
                            .to_owned(),
                    )
                }
            });
        }
        Ok(commands::run(self.ks, &argv, self.now))
    }

    /// `redis.call` at `line`: an error reply ends the script with it.
    fn call(&mut self, line: u32, args: &[Arg]) -> Result<Value, Value> {
        let sha = self.sha;
        let failed =
            |text: &str| reply::error(&format!("{text} script: {sha}, on @user_script:{line}."));
        match self.pcall(args) {
            Err(text) => Err(failed(&text)),
            Ok(Value::ServerError(e)) => {
                let text = format!("{} {}", e.code(), e.details().unwrap_or_default());
                Err(failed(text.trim_end()))
            }
            Ok(v) => Ok(v),
        }
    }

    /// A Lua runtime error at `line` ends the script.
    fn lua<T>(&self, line: u32, step: Result<T, String>) -> Result<T, Value> {
        step.map_err(|msg| {
            reply::error(&format!(
                "ERR user_script:{line}: {msg} script: {}, on @user_script:{line}.",
                self.sha
            ))
        })
    }
}

/// `tonumber` of a reply: a bulk string read as a number, else nil.
fn number(reply: &Value) -> Option<f64> {
    match reply {
        Value::BulkString(b) => parse::lua_number(b),
        _ => None,
    }
}

/// Lua's `v == 'text'`: false for nil.
fn is(v: Option<&[u8]>, text: &str) -> bool {
    v == Some(text.as_bytes())
}

fn nth<'a>(items: &[&'a [u8]], i: usize) -> Option<&'a [u8]> {
    items.get(i - 1).copied()
}

const ONE: Value = Value::Int(1);
const ZERO: Value = Value::Int(0);

/// A Lua table of a number, a string and a number, as a reply.
fn triple(a: i64, b: &[u8], c: f64) -> Value {
    Value::Array(vec![
        Value::Int(a),
        reply::bulk(b),
        Value::Int(parse::lua_integer(c)),
    ])
}

/// `scripts::WRITE`, line by line (the numbers are the Lua's lines).
fn write(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let (key, arg) = (|i| nth(keys, i), |i| nth(argv, i));
    let mode = arg(1);
    let now = arg(4).and_then(parse::lua_number);
    let exists = r.call(3, &[S(b"EXISTS"), opt(key(1))])? == ONE;
    if is(mode, "set") {
        if r.call(5, &[S(b"EXISTS"), opt(key(3))])? == ONE {
            return Ok(ZERO);
        }
        if !exists && r.call(6, &[S(b"HEXISTS"), opt(key(2)), S(b"c")])? == ONE {
            match r.call(7, &[S(b"HGET"), opt(key(2)), S(b"x")])? {
                // `tonumber(keep) > now`, which Lua runs as `now < tonumber(keep)`.
                Value::BulkString(keep) if !keep.is_empty() => {
                    if r.lua(8, lua::lt(now, parse::lua_number(&keep)))? {
                        return Ok(ZERO);
                    }
                }
                Value::BulkString(_) => {}
                _ => return Ok(ZERO),
            }
        }
    } else if !exists {
        return Ok(ZERO);
    }
    let created = if exists {
        number(&r.call(11, &[S(b"HGET"), opt(key(2)), S(b"c")])?).or(now)
    } else {
        now
    };
    let mut at = arg(3).and_then(parse::lua_number);
    let idle = || {
        lua::add(
            (Val::num(now), "local 'now'"),
            (Val::text(arg(5)), "field '?'"),
        )
    };
    if !is(arg(5), "") {
        let earlier = match at {
            None => true,
            Some(at) => r.lua(13, idle())? < at,
        };
        if earlier {
            at = Some(r.lua(13, idle())?);
        }
    }
    let absolute = || {
        lua::add(
            (Val::num(created), "local 'created'"),
            (Val::text(arg(6)), "field '?'"),
        )
    };
    if !is(arg(6), "") {
        let earlier = match at {
            None => true,
            Some(at) => r.lua(14, absolute())? < at,
        };
        if earlier {
            at = Some(r.lua(14, absolute())?);
        }
    }
    if let Some(deadline) = at {
        if r.lua(15, lua::le(Some(deadline), now))? {
            r.call(16, &[S(b"DEL"), opt(key(1)), opt(key(2))])?;
            return Ok(ZERO);
        }
    }
    if is(mode, "touch") {
        match at {
            Some(at) => r.call(20, &[S(b"PEXPIREAT"), opt(key(1)), N(at)])?,
            None => r.call(20, &[S(b"PERSIST"), opt(key(1))])?,
        };
    }
    let keep = match at {
        Some(at) => N(r.lua(
            23,
            lua::add(
                (Val::Num(at), "local 'at'"),
                (Val::text(arg(8)), "field '?'"),
            ),
        )?),
        None => S(b""),
    };
    #[rustfmt::skip]
    r.call(24, &[
        S(b"HSET"), opt(key(2)), S(b"c"), num(created), S(b"a"), num(now),
        S(b"e"), opt(arg(3)), S(b"u"), opt(arg(7)), S(b"x"), keep,
    ])?;
    r.call(25, &[S(b"PERSIST"), opt(key(2))])?;
    if !is(mode, "touch") {
        match at {
            Some(at) => r.call(
                27,
                &[S(b"SET"), opt(key(1)), opt(arg(2)), S(b"PXAT"), N(at)],
            )?,
            None => r.call(28, &[S(b"SET"), opt(key(1)), opt(arg(2))])?,
        };
    }
    Ok(ONE)
}

/// `scripts::DESTROY`.
fn destroy(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let (key, arg) = (|i| nth(keys, i), |i| nth(argv, i));
    let marker = r.lua(
        2,
        lua::add(
            (Val::text(arg(1)), "field '?'"),
            (Val::text(arg(2)), "field '?'"),
        ),
    )?;
    if r.call(3, &[S(b"EXISTS"), opt(key(1))])? == ONE {
        r.call(4, &[S(b"DEL"), opt(key(1))])?;
        r.call(5, &[S(b"HSET"), opt(key(2)), S(b"x"), N(marker)])?;
    } else {
        let marked = r.pcall(&[S(b"HSET"), opt(key(2)), S(b"x"), N(marker)]);
        // `type(r) == 'table' and r.err`: the marker could not be written.
        if !matches!(marked, Ok(ref v) if !matches!(v, Value::ServerError(_))) {
            return Ok(ZERO);
        }
    }
    r.call(10, &[S(b"HSETNX"), opt(key(2)), S(b"c"), opt(arg(1))])?;
    r.call(11, &[S(b"PERSIST"), opt(key(2))])?;
    Ok(ONE)
}

/// `scripts::INDEX`.
fn index(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let (key, arg) = (|i| nth(keys, i), |i| nth(argv, i));
    let added = r.call(
        2,
        &[S(b"ZADD"), opt(key(1)), S(b"GT"), opt(arg(2)), opt(arg(1))],
    )?;
    r.call(
        3,
        &[S(b"ZREMRANGEBYSCORE"), opt(key(1)), S(b"-inf"), opt(arg(3))],
    )?;
    r.call(4, &[S(b"PERSIST"), opt(key(1))])?;
    if added == ONE {
        return r.call(5, &[S(b"ZCARD"), opt(key(1))]);
    }
    Ok(ZERO)
}

/// A PTTL reply as a Lua number.
fn ttl(reply: Value) -> f64 {
    match reply {
        Value::Int(n) => n as f64,
        _ => 0.0,
    }
}

/// `scripts::RECLAIM`.
fn reclaim(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let (key, arg) = (|i| nth(keys, i), |i| nth(argv, i));
    let now = arg(1).and_then(parse::lua_number);
    let until = |ttl: f64| {
        lua::add(
            (Val::num(now), "local 'now'"),
            (Val::Num(ttl), "local 'ttl'"),
        )
    };
    if r.call(3, &[S(b"EXISTS"), opt(key(1))])? == ONE {
        let ttl = ttl(r.call(4, &[S(b"PTTL"), opt(key(1))])?);
        if ttl < 0.0 {
            return Ok(triple(1, b"", -1.0));
        }
        return Ok(triple(1, b"", r.lua(6, until(ttl))?));
    }
    let meta = r.call(8, &[S(b"HMGET"), opt(key(2)), S(b"x"), S(b"u")])?;
    let (x, owner) = match &meta {
        Value::Array(m) => (m.first(), m.get(1)),
        _ => (None, None),
    };
    let mut keep = x.and_then(number);
    // `not keep and not m[1]`: no `x` field at all (a meta an older
    // version wrote, with a TTL).
    if keep.is_none() && !matches!(x, Some(Value::BulkString(_))) {
        let ttl = ttl(r.call(11, &[S(b"PTTL"), opt(key(2))])?);
        if ttl > 0.0 {
            keep = Some(r.lua(12, until(ttl))?);
        }
    }
    if let Some(k) = keep {
        // `keep > now`, run as `now < keep`.
        if r.lua(14, lua::lt(now, Some(k)))? {
            return Ok(triple(2, b"", k));
        }
    }
    r.call(15, &[S(b"DEL"), opt(key(2))])?;
    let owner = match owner {
        Some(Value::BulkString(o)) => o.as_slice(),
        _ => b"",
    };
    Ok(triple(0, owner, 0.0))
}

/// `scripts::UNINDEX`.
fn unindex(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let (key, arg) = (|i| nth(keys, i), |i| nth(argv, i));
    let now = arg(1).and_then(parse::lua_number);
    let mut gone = Vec::new();
    // `for i = 2, #ARGV - 1, 2`
    let mut i = 2;
    while i < argv.len() {
        let (sid, score) = (arg(i), arg(i + 1));
        if is(score, "") {
            let s = number(&r.call(6, &[S(b"ZSCORE"), opt(key(1)), opt(sid)])?);
            if let Some(s) = s {
                if r.lua(7, lua::le(Some(s), now))? {
                    r.call(8, &[S(b"ZREM"), opt(key(1)), opt(sid)])?;
                    gone.push(reply::bulk(sid.unwrap_or_default()));
                }
            }
        } else {
            r.call(
                12,
                &[S(b"ZADD"), opt(key(1)), S(b"GT"), opt(score), opt(sid)],
            )?;
        }
        i += 2;
    }
    Ok(Value::Array(gone))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure here means a script in `crate::scripts` changed: make the
    /// native version here follow the new Lua, then pin the new SHA.
    #[test]
    fn each_native_version_follows_the_current_lua() {
        for (pinned, lua, _) in &SCRIPTS {
            assert_eq!(&lua.hash, pinned, "script changed:\n{}", lua.code);
        }
    }

    #[test]
    fn only_the_stores_scripts_load() {
        for (sha, lua, _) in &SCRIPTS {
            let reply = script(&[b"SCRIPT", b"load", lua.code.as_bytes()]);
            assert_eq!(reply, reply::bulk(sha.as_bytes()));
        }
        assert!(matches!(
            script(&[b"SCRIPT", b"LOAD", b"return 1"]),
            Value::ServerError(_)
        ));
    }
}
