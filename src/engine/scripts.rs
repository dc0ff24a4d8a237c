//! The store's Lua scripts (`crate::session::scripts`), run natively: each step
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
use crate::session::scripts;

type Native = fn(&mut Call, &[&[u8]], &[&[u8]]) -> Result<Value, Value>;

/// (SHA of the Lua followed, the Lua, its native version).
static SCRIPTS: [(&str, &std::sync::LazyLock<scripts::Lua>, Native); 7] = [
    (
        "2c3713c2d051c28e8f59b8848f10d331d709cbf1",
        &scripts::WRITE,
        write,
    ),
    (
        "4edcc470870c6957049571df85b5becba3bc89a9",
        &scripts::DESTROY,
        destroy,
    ),
    (
        "c2e7f728a018e581a8f7c44603c7d7c65f33e057",
        &scripts::INDEX,
        index,
    ),
    (
        "110fb824361c60f88cae9df2184a79f1ba58b060",
        &scripts::RECLAIM,
        reclaim,
    ),
    (
        "bf0d78adfe7a7fc2be5fbec1db655f27bcc6818f",
        &scripts::SWAP,
        swap,
    ),
    (
        "add39ce4aebb0ca6798e5d4b98bc083429ecad1a",
        &scripts::DEVICE,
        device,
    ),
    (
        "4f10130485002f04b968ec2d5e41f5862ec67e5b",
        &scripts::REPAIR,
        repair,
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

/// Lua's `v == 'text'`: false for nil.
fn is(v: Option<&[u8]>, text: &str) -> bool {
    v == Some(text.as_bytes())
}

fn nth<'a>(items: &[&'a [u8]], i: usize) -> Option<&'a [u8]> {
    items.get(i - 1).copied()
}

const ONE: Value = Value::Int(1);
const ZERO: Value = Value::Int(0);

/// `string.match` of a packed meta (see `crate::session::meta`) against the scripts'
/// patterns: four runs of letters and digits (`%w*`), each followed by a
/// comma, then the rest. `None` when it does not match.
fn packed(meta: &Value) -> Option<([&[u8]; 4], &[u8])> {
    let Value::BulkString(m) = meta else {
        return None;
    };
    let mut parts = m.splitn(5, |&b| b == b',');
    let mut digits = || {
        parts
            .next()
            .filter(|p| p.iter().all(u8::is_ascii_alphanumeric))
    };
    let fields = [digits()?, digits()?, digits()?, digits()?];
    Some((fields, parts.next()?))
}

/// `a .. b` for strings that may be nil, with Lua's error: the left
/// operand is blamed when it is not a string, else the right one.
fn concat(a: (Option<&[u8]>, &str), b: (Option<&[u8]>, &str)) -> Result<Vec<u8>, String> {
    match (a.0, b.0) {
        (Some(x), Some(y)) => Ok([x, y].concat()),
        (None, _) => Err(format!("attempt to concatenate {} (a nil value)", a.1)),
        (_, None) => Err(format!("attempt to concatenate {} (a nil value)", b.1)),
    }
}

/// `scripts::WRITE`, line by line (the numbers are the Lua's lines), with
/// the Lua's names.
fn write(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let key = |i| nth(keys, i);
    // `unpack(ARGV, 1, 11)`: nil past the end.
    let [mode, value, cookie, now, idle, absolute, linger, sid, tail, stamp, expected] =
        std::array::from_fn(|i| argv.get(i).copied());
    let now = now.and_then(parse::lua_number);
    let exists = r.call(4, &[S(b"EXISTS"), opt(key(1))])? == ONE;
    let meta = r.call(5, &[S(b"HGET"), opt(key(2)), opt(sid)])?;
    let fields = packed(&meta);
    let (created, last, cookie_at, marker) = match fields {
        Some(([created, last, cookie_at, marker], _)) => (Some(created), last, cookie_at, marker),
        None => (None, &b""[..], &b""[..], &b""[..]),
    };
    if is(mode, "set") {
        if r.call(8, &[S(b"EXISTS"), opt(key(3))])? == ONE {
            return Ok(ZERO);
        }
        if !exists && created.is_some() {
            // `tonumber(marker, 36) > now`, which Lua runs as `now < ...`.
            if !marker.is_empty() && r.lua(10, lua::lt(now, parse::lua_base36(marker)))? {
                return Ok(ZERO);
            }
            if !cookie_at.is_empty() && r.lua(11, lua::lt(now, parse::lua_base36(cookie_at)))? {
                return Ok(ZERO);
            }
            if !last.is_empty() {
                let last = Val::num(parse::lua_base36(last));
                let linger = (Val::text(linger), "local 'linger'");
                let until = r.lua(12, lua::add((last, "?"), linger))?;
                if r.lua(12, lua::lt(now, Some(until)))? {
                    return Ok(ZERO);
                }
            }
        }
    } else if !exists {
        return Ok(ZERO);
    }
    // `redis.sha1hex(current) ~= expected`: the value is not the one expected.
    if !is(expected, "") && exists {
        let current = r.call(16, &[S(b"GET"), opt(key(1))])?;
        let bytes = match &current {
            Value::BulkString(b) => &b[..],
            _ => &[][..],
        };
        if Some(scripts::sha1hex(bytes).as_bytes()) != expected {
            let owner = fields.map_or(&b""[..], |(_, owner)| owner);
            return Ok(Value::Array(vec![current, reply::bulk(owner)]));
        }
    }
    let born = if exists { created.or(stamp) } else { stamp };
    // `tonumber(born, 36)`: with a base, Lua wants a string.
    let Some(text) = born else {
        let nil = "bad argument #1 to 'tonumber' (string expected, got nil)";
        return r.lua(20, Err(nil.to_owned()));
    };
    let start = parse::lua_base36(text).or(now);
    let mut at = cookie.and_then(parse::lua_number);
    let idle_end = || {
        lua::add(
            (Val::num(now), "local 'now'"),
            (Val::text(idle), "local 'idle'"),
        )
    };
    if !is(idle, "") {
        let earlier = match at {
            None => true,
            Some(at) => r.lua(22, idle_end())? < at,
        };
        if earlier {
            at = Some(r.lua(22, idle_end())?);
        }
    }
    let absolute_end = || {
        lua::add(
            (Val::num(start), "local 'start'"),
            (Val::text(absolute), "local 'absolute'"),
        )
    };
    if !is(absolute, "") {
        let earlier = match at {
            None => true,
            Some(at) => r.lua(23, absolute_end())? < at,
        };
        if earlier {
            at = Some(r.lua(23, absolute_end())?);
        }
    }
    if let Some(deadline) = at {
        if r.lua(24, lua::le(Some(deadline), now))? {
            r.call(25, &[S(b"DEL"), opt(key(1))])?;
            r.call(26, &[S(b"HDEL"), opt(key(2)), opt(sid)])?;
            return Ok(ZERO);
        }
    }
    if is(mode, "touch") {
        match at {
            Some(at) => r.call(30, &[S(b"PEXPIREAT"), opt(key(1)), N(at)])?,
            None => r.call(30, &[S(b"PERSIST"), opt(key(1))])?,
        };
    }
    let new_meta = r.lua(32, concat((born, "local 'born'"), (tail, "local 'tail'")))?;
    r.call(32, &[S(b"HSET"), opt(key(2)), opt(sid), S(&new_meta)])?;
    if !is(mode, "touch") {
        match at {
            Some(at) => r.call(34, &[S(b"SET"), opt(key(1)), opt(value), S(b"PXAT"), N(at)])?,
            None => r.call(35, &[S(b"SET"), opt(key(1)), opt(value)])?,
        };
    }
    // `born` is a string here: the concatenation above needed one.
    let born = born.unwrap_or_default();
    if !exists {
        return Ok(reply::bulk(&[b"+", born].concat()));
    }
    Ok(reply::bulk(born))
}

/// `scripts::DESTROY`.
fn destroy(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let (key, arg) = (|i| nth(keys, i), |i| nth(argv, i));
    let stored = r.call(2, &[S(b"HGET"), opt(key(2)), opt(arg(2))])?;
    let owner = packed(&stored).map_or(&b""[..], |(_, u)| u);
    let head = r.lua(4, concat((Some(b",,,"), "?"), (arg(1), "field '?'")))?;
    let marker = [&head[..], b",", owner].concat();
    let mut done = ONE;
    let mut ended = None;
    if r.call(6, &[S(b"EXISTS"), opt(key(1))])? == ONE {
        r.call(7, &[S(b"DEL"), opt(key(1))])?;
        r.call(8, &[S(b"HSET"), opt(key(2)), opt(arg(2)), S(&marker)])?;
        // `m or ''`: a missing meta reads as false in Lua.
        ended = Some(match &stored {
            Value::BulkString(m) => reply::bulk(m),
            _ => reply::bulk(b""),
        });
    } else {
        let marked = r.pcall(&[S(b"HSET"), opt(key(2)), opt(arg(2)), S(&marker)]);
        // `type(r) == 'table' and r.err`: the marker could not be written.
        if !matches!(marked, Ok(ref v) if !matches!(v, Value::ServerError(_))) {
            done = ZERO;
        }
    }
    r.call(14, &[S(b"HDEL"), opt(key(3)), opt(arg(2))])?;
    // `redis.pcall`: a full Redis may refuse the tombstone.
    let _ = r.pcall(&[S(b"HSET"), opt(key(4)), S(b"end"), opt(arg(1))]);
    let _ = r.pcall(&[S(b"PEXPIREAT"), opt(key(4)), opt(arg(3))]);
    Ok(Value::Array(std::iter::once(done).chain(ended).collect()))
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

/// `{state, owner, meta}` as `RECLAIM` returns it (no meta: `{state,
/// owner}`).
fn triple(state: i64, owner: &[u8], meta: Option<&[u8]>) -> Value {
    let head = [Value::Int(state), reply::bulk(owner)];
    Value::Array(head.into_iter().chain(meta.map(reply::bulk)).collect())
}

/// `scripts::RECLAIM`.
fn reclaim(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let (key, arg) = (|i| nth(keys, i), |i| nth(argv, i));
    if r.call(2, &[S(b"EXISTS"), opt(key(1))])? == ONE {
        return Ok(triple(1, b"", None));
    }
    let stored = r.call(3, &[S(b"HGET"), opt(key(2)), opt(arg(2))])?;
    // `string.match(m or '', ...)`: no meta matches as nothing does.
    let (x, owner) = match packed(&stored) {
        Some(([_, _, _, x], u)) => (Some(x), u),
        None => (None, &b""[..]),
    };
    if let Some(x) = x.filter(|x| !x.is_empty()) {
        // `tonumber(x, 36) > tonumber(ARGV[1])`, run as `ARGV[1] < x`.
        let now = arg(1).and_then(parse::lua_number);
        if r.lua(5, lua::lt(now, parse::lua_base36(x)))? {
            return Ok(triple(2, b"", None));
        }
    }
    r.call(6, &[S(b"HDEL"), opt(key(3)), opt(arg(2))])?;
    let meta = match &stored {
        Value::BulkString(m) => Some(&m[..]),
        _ => None,
    };
    let live = x.is_some_and(<[u8]>::is_empty);
    // `x == '' and redis.pcall('HGET', KEYS[4], 'end')`: a live meta
    // under a tombstone gets its logout marker back.
    if live {
        if let Ok(Value::BulkString(t)) = r.pcall(&[S(b"HGET"), opt(key(4)), S(b"end")]) {
            let marker = [&b",,,"[..], &t, b",", owner].concat();
            r.call(9, &[S(b"HSET"), opt(key(2)), opt(arg(2)), S(&marker)])?;
            return Ok(triple(2, b"", None));
        }
    }
    if live && !is(arg(3), "") {
        let head = r.lua(13, concat((Some(b",,,"), "?"), (arg(3), "field '?'")))?;
        let marker = [&head[..], b",", owner].concat();
        r.call(13, &[S(b"HSET"), opt(key(2)), opt(arg(2)), S(&marker)])?;
        return Ok(triple(3, owner, meta));
    }
    if meta.is_some() {
        r.call(16, &[S(b"HDEL"), opt(key(2)), opt(arg(2))])?;
    }
    Ok(triple(0, owner, Some(meta.unwrap_or_default())))
}

/// `scripts::DEVICE`.
fn device(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let (key, arg) = (|i| nth(keys, i), |i| nth(argv, i));
    if r.call(2, &[S(b"EXISTS"), opt(key(1))])? == ZERO {
        return Ok(ZERO);
    }
    if r.call(3, &[S(b"HEXISTS"), opt(key(2)), opt(arg(1))])? == ZERO {
        return Ok(ZERO);
    }
    r.call(4, &[S(b"HSET"), opt(key(3)), opt(arg(1)), opt(arg(2))])?;
    Ok(ONE)
}

/// `scripts::REPAIR`.
fn repair(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let (key, arg) = (|i| nth(keys, i), |i| nth(argv, i));
    if r.call(2, &[S(b"EXISTS"), opt(key(1))])? == ONE {
        return Ok(ZERO);
    }
    let Ok(Value::BulkString(t)) = r.pcall(&[S(b"HGET"), opt(key(4)), S(b"end")]) else {
        return Ok(ZERO);
    };
    let stored = r.call(5, &[S(b"HGET"), opt(key(2)), opt(arg(1))])?;
    // `x ~= ''`: no meta, or a marker already.
    let Some(([_, _, _, b""], owner)) = packed(&stored) else {
        return Ok(ZERO);
    };
    let marker = [&b",,,"[..], &t, b",", owner].concat();
    r.call(8, &[S(b"HSET"), opt(key(2)), opt(arg(1)), S(&marker)])?;
    r.call(9, &[S(b"HDEL"), opt(key(3)), opt(arg(1))])?;
    Ok(ONE)
}

/// `scripts::SWAP`.
fn swap(r: &mut Call, keys: &[&[u8]], argv: &[&[u8]]) -> Result<Value, Value> {
    let (key, arg) = (|i| nth(keys, i), |i| nth(argv, i));
    // `GET ~= ARGV[1]`: a missing key (false) never equals a string.
    match r.call(2, &[S(b"GET"), opt(key(1))])? {
        Value::BulkString(v) if Some(&v[..]) == arg(1) => {}
        _ => return Ok(ZERO),
    }
    r.call(3, &[S(b"SET"), opt(key(1)), opt(arg(2)), S(b"KEEPTTL")])?;
    Ok(ONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure here means a script in `crate::session::scripts` changed: make the
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
