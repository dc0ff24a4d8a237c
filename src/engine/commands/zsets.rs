//! Sorted-set commands.

use redis::Value;

use super::is;
use crate::engine::data::{Data, Zset};
use crate::engine::keyspace::Keyspace;
use crate::engine::{parse, reply};

/// The live sorted set at `key` (None: no key); Err: WRONGTYPE.
fn zset<'a>(ks: &'a Keyspace, key: &[u8], now: i64) -> Result<Option<&'a Zset>, Value> {
    match ks.get(key, now).map(|e| &e.data) {
        None => Ok(None),
        Some(Data::Zset(z)) => Ok(Some(z)),
        Some(_) => Err(reply::error(reply::WRONGTYPE)),
    }
}

fn score_text(score: f64) -> Value {
    reply::bulk(parse::g17(score).as_bytes())
}

/// ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]:
/// how many members were added (or also changed, with CH); with INCR the
/// new score, or nil when a condition held it back.
pub fn zadd(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    let key = args[1];
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while let Some(opt) = args.get(i) {
        match () {
            _ if is(opt, "nx") => nx = true,
            _ if is(opt, "xx") => xx = true,
            _ if is(opt, "gt") => gt = true,
            _ if is(opt, "lt") => lt = true,
            _ if is(opt, "ch") => ch = true,
            _ if is(opt, "incr") => incr = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || pairs.len() % 2 == 1 {
        return reply::error(reply::SYNTAX);
    }
    if nx && xx {
        return reply::error("ERR XX and NX options at the same time are not compatible");
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return reply::error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr && pairs.len() > 2 {
        return reply::error("ERR INCR option supports a single increment-element pair");
    }
    // Every score is read before anything is written: all or nothing.
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks(2) {
        match parse::score(pair[0]) {
            Some(s) => scores.push(s),
            None => return reply::error(reply::NOT_FLOAT),
        }
    }
    match zset(ks, key, now) {
        Err(e) => return e,
        Ok(None) if xx => return if incr { Value::Nil } else { Value::Int(0) },
        Ok(_) => {}
    }
    let (mut added, mut updated, mut processed, mut last) = (0, 0, 0, 0.0);
    for (pair, mut score) in pairs.chunks(2).zip(scores) {
        let member = pair[1];
        let current = zset(ks, key, now)
            .ok()
            .flatten()
            .and_then(|z| z.score(member));
        match current {
            Some(_) if nx => continue,
            Some(cur) => {
                if incr {
                    score += cur;
                    if score.is_nan() {
                        return reply::error("ERR resulting score is not a number (NaN)");
                    }
                }
                if (lt && score >= cur) || (gt && score <= cur) {
                    continue;
                }
                if score != cur {
                    ks.zset_insert(key, member, score, now);
                    updated += 1;
                }
            }
            None if xx => continue,
            None => {
                ks.zset_insert(key, member, score, now);
                added += 1;
            }
        }
        processed += 1;
        last = score;
    }
    match (incr, processed) {
        (true, 0) => Value::Nil,
        (true, _) => score_text(last),
        (false, _) => reply::int(if ch { added + updated } else { added }),
    }
}

pub fn zrem(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match zset(ks, args[1], now) {
        Err(e) => e,
        Ok(None) => Value::Int(0),
        Ok(Some(_)) => reply::int(ks.zset_remove(args[1], args[2..].iter().copied(), now)),
    }
}

/// A score range, each end inclusive or not.
#[derive(Clone, Copy)]
struct Range {
    min: f64,
    min_ex: bool,
    max: f64,
    max_ex: bool,
}

impl Range {
    fn parse(min: &[u8], max: &[u8]) -> Option<Range> {
        let (min, min_ex) = parse::bound(min)?;
        let (max, max_ex) = parse::bound(max)?;
        Some(Range {
            min,
            min_ex,
            max,
            max_ex,
        })
    }

    /// The members in range, in order.
    fn of(self, z: &Zset) -> impl Iterator<Item = (f64, &[u8])> {
        z.starting_at(self.min)
            .skip_while(move |(s, _)| self.min_ex && *s <= self.min)
            .take_while(move |(s, _)| {
                if self.max_ex {
                    *s < self.max
                } else {
                    *s <= self.max
                }
            })
    }
}

pub fn zremrangebyscore(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    let Some(range) = Range::parse(args[2], args[3]) else {
        return reply::error(reply::BAD_RANGE);
    };
    let doomed: Vec<Vec<u8>> = match zset(ks, args[1], now) {
        Err(e) => return e,
        Ok(None) => return Value::Int(0),
        Ok(Some(z)) => range.of(z).map(|(_, m)| m.to_vec()).collect(),
    };
    reply::int(ks.zset_remove(args[1], doomed.iter().map(Vec::as_slice), now))
}

/// What a range read asks for, from the options after `key min max`.
struct Read {
    by_score: bool,
    with_scores: bool,
    /// LIMIT offset count (a negative count: no limit).
    limit: Option<(i64, i64)>,
}

/// Parses the options as Redis does; `zrange`: the ZRANGE form, which also
/// takes BYSCORE (and REV and BYLEX, which this engine does not have).
fn options(opts: &[&[u8]], zrange: bool) -> Result<Read, Value> {
    let mut read = Read {
        by_score: !zrange,
        with_scores: false,
        limit: None,
    };
    let mut j = 0;
    while let Some(opt) = opts.get(j) {
        let left = opts.len() - j - 1;
        if is(opt, "withscores") {
            read.with_scores = true;
        } else if is(opt, "limit") && left >= 2 {
            let (Some(offset), Some(count)) = (parse::int(opts[j + 1]), parse::int(opts[j + 2]))
            else {
                return Err(reply::error(reply::NOT_INTEGER));
            };
            read.limit = Some((offset, count));
            j += 2;
        } else if zrange && is(opt, "byscore") {
            read.by_score = true;
        } else if zrange && (is(opt, "rev") || is(opt, "bylex")) {
            return Err(reply::error(&format!(
                "ERR the embedded engine does not support ZRANGE {}",
                String::from_utf8_lossy(opt).to_uppercase()
            )));
        } else {
            return Err(reply::error(reply::SYNTAX));
        }
        j += 1;
    }
    if read.limit.is_some() && !read.by_score {
        return Err(reply::error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    Ok(read)
}

fn listed<'a>(items: impl Iterator<Item = (f64, &'a [u8])>, with_scores: bool) -> Value {
    let mut out = Vec::new();
    for (score, member) in items {
        out.push(reply::bulk(member));
        if with_scores {
            out.push(score_text(score));
        }
    }
    Value::Array(out)
}

/// ZRANGE key start stop [BYSCORE] [LIMIT offset count] [WITHSCORES].
pub fn zrange(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    let read = match options(&args[4..], true) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if read.by_score {
        return by_score(ks, args, now, &read);
    }
    let (Some(start), Some(stop)) = (parse::int(args[2]), parse::int(args[3])) else {
        return reply::error(reply::NOT_INTEGER);
    };
    let z = match zset(ks, args[1], now) {
        Err(e) => return e,
        Ok(None) => return Value::Array(Vec::new()),
        Ok(Some(z)) => z,
    };
    let len = z.len() as i64;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        stop + len
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        return Value::Array(Vec::new());
    }
    let items = z
        .starting_at(f64::NEG_INFINITY)
        .skip(start as usize)
        .take((stop - start + 1) as usize);
    listed(items, read.with_scores)
}

/// ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count].
pub fn zrangebyscore(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match options(&args[4..], false) {
        Ok(read) => by_score(ks, args, now, &read),
        Err(e) => e,
    }
}

fn by_score(ks: &Keyspace, args: &[&[u8]], now: i64, read: &Read) -> Value {
    let Some(range) = Range::parse(args[2], args[3]) else {
        return reply::error(reply::BAD_RANGE);
    };
    let z = match zset(ks, args[1], now) {
        Err(e) => return e,
        Ok(None) => return Value::Array(Vec::new()),
        Ok(Some(z)) => z,
    };
    let (offset, count) = read.limit.unwrap_or((0, -1));
    // A negative offset skips everything, a negative count takes the rest.
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(count).unwrap_or(usize::MAX);
    listed(range.of(z).skip(skip).take(take), read.with_scores)
}

pub fn zscore(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match zset(ks, args[1], now) {
        Err(e) => e,
        Ok(z) => z
            .and_then(|z| z.score(args[2]))
            .map_or(Value::Nil, score_text),
    }
}

pub fn zcard(ks: &mut Keyspace, args: &[&[u8]], now: i64) -> Value {
    match zset(ks, args[1], now) {
        Err(e) => e,
        Ok(z) => reply::int(z.map_or(0, Zset::len)),
    }
}
