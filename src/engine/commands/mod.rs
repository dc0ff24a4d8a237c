//! The plain commands (all but scripts), answered as Redis 7.0 answers
//! them: the same checks in the same order, the same replies and errors.

mod hashes;
mod keys;
mod server;
mod strings;
mod zsets;

use redis::Value;

use super::keyspace::Keyspace;
use super::reply;

type Handler = fn(&mut Keyspace, &[&[u8]], i64) -> Value;

/// Name as Redis spells it in errors, arity as Redis counts it (n: exactly
/// n arguments with the name, -n: at least n), handler.
const COMMANDS: &[(&str, i32, Handler)] = &[
    ("get", 2, strings::get),
    ("mget", -2, strings::mget),
    ("set", -3, strings::set),
    ("del", -2, keys::del),
    ("exists", -2, keys::exists),
    ("pexpireat", -3, keys::pexpireat),
    ("pexpiretime", 2, keys::pexpiretime),
    ("pttl", 2, keys::pttl),
    ("persist", 2, keys::persist),
    ("scan", -2, keys::scan),
    ("hset", -4, hashes::hset),
    ("hsetnx", 4, hashes::hsetnx),
    ("hget", 3, hashes::hget),
    ("hmget", -3, hashes::hmget),
    ("hexists", 3, hashes::hexists),
    ("hdel", -3, hashes::hdel),
    ("hgetall", 2, hashes::hgetall),
    ("hkeys", 2, hashes::hkeys),
    ("hincrby", 4, hashes::hincrby),
    ("zadd", -4, zsets::zadd),
    ("zrem", -3, zsets::zrem),
    ("zremrangebyscore", 4, zsets::zremrangebyscore),
    ("zrange", -4, zsets::zrange),
    ("zrangebyscore", -4, zsets::zrangebyscore),
    ("zscore", 3, zsets::zscore),
    ("zcard", 2, zsets::zcard),
    ("info", -1, server::info),
    ("wait", 3, server::wait),
];

/// Runs one command (`args[0]` is its name) at time `now` (epoch ms).
pub fn run(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    let Some(name) = args.first() else {
        return reply::error("ERR empty command");
    };
    let Some((canonical, arity, handler)) = COMMANDS
        .iter()
        .find(|(n, _, _)| name.eq_ignore_ascii_case(n.as_bytes()))
    else {
        return reply::unknown_command(args);
    };
    let fits = match usize::try_from(*arity) {
        Ok(exact) => args.len() == exact,
        Err(_) => args.len() >= arity.unsigned_abs() as usize,
    };
    if !fits {
        return reply::arity(canonical);
    }
    handler(ks, args, now)
}

/// True when `arg` is the option `word`, in any case.
fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}
