//! Which node each command goes to: its key's slot (a script's first key),
//! an MGET or EXISTS over several slots split into one per slot, and the
//! replies put back as one per caller's command (MGET's values in order,
//! EXISTS's counts added up).

use std::collections::HashMap;
use std::sync::Arc;

use redis::{Arg, Cmd, Pipeline, Value};

use crate::backend::contract::Reply;
use crate::session::keys::slot;

/// One command to send: a command of the caller's pipeline, or one slot's
/// share of a multi-slot MGET or EXISTS.
pub struct Part {
    /// Which of the caller's commands this answers.
    pub of: usize,
    /// For a share: the positions of its keys in the caller's command.
    pub positions: Option<Vec<usize>>,
    /// The command, when it is not the caller's own.
    pub own: Option<Cmd>,
    /// Its key's slot; keyless commands go to any master.
    pub slot: Option<u16>,
    /// The node an ASK named: the next try goes there, after ASKING.
    pub ask: Option<Arc<str>>,
    pub failures: u32,
}

fn args(cmd: &Cmd) -> impl Iterator<Item = &[u8]> {
    cmd.args_iter().map(|a| match a {
        Arg::Simple(bytes) => bytes,
        _ => &b""[..],
    })
}

/// The key that decides a command's slot, if it has one.
pub fn key_of(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = args(cmd);
    let name = args.next()?;
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    if is("EVALSHA") || is("EVAL") {
        let _script = args.next()?;
        return match args.next()? {
            b"0" => None,
            _ => args.next(),
        };
    }
    if is("SCRIPT") || is("SCAN") || is("PING") || is("CLUSTER") || is("INFO") {
        return None;
    }
    args.next()
}

/// Whether a command's arguments are all keys, so that it can be split by
/// slot: MGET (values) and EXISTS (a count).
fn splittable(cmd: &Cmd) -> Option<&'static str> {
    let name = args(cmd).next()?;
    ["MGET", "EXISTS"]
        .into_iter()
        .find(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// Splits the caller's commands into parts, an MGET or EXISTS over several
/// slots into one per slot.
pub fn split(cmds: &[&Cmd]) -> Vec<Part> {
    let mut parts = Vec::with_capacity(cmds.len());
    for (of, cmd) in cmds.iter().enumerate() {
        if let Some(name) = splittable(cmd) {
            let keys: Vec<&[u8]> = args(cmd).skip(1).collect();
            let mut by_slot: Vec<(u16, Vec<usize>)> = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let s = slot(key);
                match by_slot.iter_mut().find(|(t, _)| *t == s) {
                    Some((_, positions)) => positions.push(i),
                    None => by_slot.push((s, vec![i])),
                }
            }
            if by_slot.len() > 1 {
                for (s, positions) in by_slot {
                    let mut share = redis::cmd(name);
                    for &i in &positions {
                        share.arg(keys[i]);
                    }
                    parts.push(Part {
                        of,
                        positions: Some(positions),
                        own: Some(share),
                        slot: Some(s),
                        ask: None,
                        failures: 0,
                    });
                }
                continue;
            }
        }
        parts.push(Part {
            of,
            positions: None,
            own: None,
            slot: key_of(cmd).map(slot),
            ask: None,
            failures: 0,
        });
    }
    parts
}

/// A round's parts by node ("host:port"), in command order.
pub type Groups = Vec<(Arc<str>, Vec<usize>)>;

/// One node's pipeline: its parts in order, ASKING before each one an ASK
/// sent there.
pub fn node_pipeline(cmds: &[&Cmd], parts: &[Part], members: &[usize]) -> Pipeline {
    let mut pipe = redis::pipe();
    for &i in members {
        let part = &parts[i];
        if part.ask.is_some() {
            pipe.cmd("ASKING");
        }
        pipe.add_command(part.own.clone().unwrap_or_else(|| cmds[part.of].clone()));
    }
    pipe
}

/// Puts the parts' replies back as one reply per caller's command.
pub fn assemble(cmds: &[&Cmd], parts: &[Part], replies: Vec<Reply>) -> Vec<Reply> {
    let mut out: Vec<Reply> = vec![Ok(Value::Nil); cmds.len()];
    let mut mgets: HashMap<usize, Vec<Value>> = HashMap::new();
    let mut counts: HashMap<usize, i64> = HashMap::new();
    for (part, reply) in parts.iter().zip(replies) {
        match (&part.positions, reply) {
            (None, reply) => out[part.of] = reply,
            (Some(positions), Ok(Value::Array(items))) => {
                let width = cmds[part.of].args_iter().len() - 1;
                let values = mgets
                    .entry(part.of)
                    .or_insert_with(|| vec![Value::Nil; width]);
                for (&i, item) in positions.iter().zip(items) {
                    values[i] = item;
                }
            }
            (Some(_), Ok(Value::Int(n))) => *counts.entry(part.of).or_default() += n,
            // One share failed (or answered nonsense): the whole command
            // reports it.
            (Some(_), failed) => out[part.of] = failed,
        }
    }
    for (of, values) in mgets {
        if matches!(out[of], Ok(Value::Nil)) {
            out[of] = Ok(Value::Array(values));
        }
    }
    for (of, n) in counts {
        if matches!(out[of], Ok(Value::Nil)) {
            out[of] = Ok(Value::Int(n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_routed_by_their_first_key() {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc").arg(2).arg("{s}k").arg("x");
        assert_eq!(key_of(&eval), Some(&b"{s}k"[..]));
        let mut keyless = redis::cmd("EVALSHA");
        keyless.arg("abc").arg(0);
        assert_eq!(key_of(&keyless), None);
        assert_eq!(key_of(redis::cmd("SCRIPT").arg("LOAD").arg("x")), None);
        assert_eq!(key_of(redis::cmd("GET").arg("k")), Some(&b"k"[..]));
    }

    #[test]
    fn an_mget_over_several_slots_is_split_and_put_back_in_order() {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg("a");
        pipe.cmd("MGET").arg("{x}1").arg("{y}1").arg("{x}2");
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        let parts = split(&cmds);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].positions, Some(vec![0, 2]));
        assert_eq!(parts[2].positions, Some(vec![1]));
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let out = assemble(
            &cmds,
            &parts,
            vec![
                Ok(bulk("A")),
                Ok(Value::Array(vec![bulk("x1"), Value::Nil])),
                Ok(Value::Array(vec![bulk("y1")])),
            ],
        );
        assert_eq!(
            out,
            vec![
                Ok(bulk("A")),
                Ok(Value::Array(vec![bulk("x1"), bulk("y1"), Value::Nil]))
            ]
        );
    }

    #[test]
    fn an_exists_over_several_slots_is_split_and_its_counts_added() {
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS").arg("{x}1").arg("{y}1").arg("{x}2");
        pipe.cmd("exists").arg("{x}1").arg("{y}1");
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        let parts = split(&cmds);
        assert_eq!(parts.len(), 4);
        let wire = |p: &Part| String::from_utf8(p.own.as_ref().unwrap().get_packed_command());
        assert_eq!(
            wire(&parts[0]).unwrap(),
            "*3\r\n$6\r\nEXISTS\r\n$4\r\n{x}1\r\n$4\r\n{x}2\r\n"
        );
        let failed = redis::RedisError::from((redis::ErrorKind::Io, "gone"));
        let out = assemble(
            &cmds,
            &parts,
            vec![
                Ok(Value::Int(2)),
                Ok(Value::Int(1)),
                Ok(Value::Int(1)),
                Err(crate::error::StoreError::from_redis(&failed)),
            ],
        );
        assert_eq!(out[0], Ok(Value::Int(3)));
        assert!(out[1].is_err(), "{:?}", out[1]);
    }
}
