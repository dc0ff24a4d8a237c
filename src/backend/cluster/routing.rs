//! Which node each command goes to: its key's slot (a script's first key),
//! an MGET over several slots split into one MGET per slot, and the replies
//! put back in the caller's order.

use std::collections::HashMap;
use std::sync::Arc;

use redis::{Arg, Cmd, Pipeline, Value};

use crate::backend::contract::Reply;
use crate::keys::slot;

/// One command to send: a command of the caller's pipeline, or one slot's
/// share of a multi-slot MGET.
pub struct Part {
    /// Which of the caller's commands this answers.
    pub of: usize,
    /// For an MGET share: the positions of its keys in the caller's MGET.
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

/// Splits the caller's commands into parts, an MGET over several slots into
/// one MGET per slot.
pub fn split(cmds: &[&Cmd]) -> Vec<Part> {
    let mut parts = Vec::with_capacity(cmds.len());
    for (of, cmd) in cmds.iter().enumerate() {
        let mut a = args(cmd);
        let is_mget = a.next().is_some_and(|n| n.eq_ignore_ascii_case(b"MGET"));
        if is_mget {
            let keys: Vec<&[u8]> = a.collect();
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
                    let mut mget = redis::cmd("MGET");
                    for &i in &positions {
                        mget.arg(keys[i]);
                    }
                    parts.push(Part {
                        of,
                        positions: Some(positions),
                        own: Some(mget),
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
    for (part, reply) in parts.iter().zip(replies) {
        match &part.positions {
            None => out[part.of] = reply,
            Some(positions) => {
                let width = cmds[part.of].args_iter().len() - 1;
                let values = mgets
                    .entry(part.of)
                    .or_insert_with(|| vec![Value::Nil; width]);
                match reply {
                    Ok(Value::Array(items)) => {
                        for (&i, item) in positions.iter().zip(items) {
                            values[i] = item;
                        }
                    }
                    // One share failed: the whole MGET reports it.
                    failed => out[part.of] = failed,
                }
            }
        }
    }
    for (of, values) in mgets {
        if matches!(out[of], Ok(Value::Nil)) {
            out[of] = Ok(Value::Array(values));
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
}
