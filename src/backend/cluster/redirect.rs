//! What a node's answer asks of the next round: a reply that stands, a
//! redirect (MOVED: the slot lives elsewhere now; ASK: this key, once,
//! elsewhere), a pause (TRYAGAIN and friends while a slot migrates or the
//! cluster elects), or, for a node that failed, a retry or its error.

use std::sync::Arc;

use redis::Value;

use super::routing::Part;
use super::slot_map::SlotMap;
use crate::backend::contract::Reply;
use crate::error::{ErrorKind, StoreError};

/// Times a command is sent to a node that failed before its error stands.
pub const MAX_NODE_FAILURES: u32 = 2;

/// Why a node's share got no replies.
pub enum Failure {
    /// No answer in time: the connection is dropped, the commands not retried.
    Stalled,
    Failed(String),
}

impl Failure {
    /// The error each of the node's commands gets.
    pub fn error(&self, addr: &str) -> StoreError {
        match self {
            Failure::Stalled => StoreError::new(
                ErrorKind::Timeout,
                format!("cluster node {addr} did not answer in time"),
            ),
            Failure::Failed(why) => StoreError::new(
                ErrorKind::Unavailable,
                format!("cluster node {addr}: {why}"),
            ),
        }
    }

    /// Whether the command may go again (to the node the slot map names next).
    pub fn retries(&self, failures: u32) -> bool {
        !matches!(self, Failure::Stalled) && failures < MAX_NODE_FAILURES
    }
}

/// What a reply asks of the router.
pub enum Next {
    Done,
    Moved(u16, Arc<str>),
    Ask(Arc<str>),
    Wait,
}

pub fn next(reply: &Value) -> Next {
    let Value::ServerError(e) = reply else {
        return Next::Done;
    };
    // "MOVED <slot> <host:port>" / "ASK <slot> <host:port>"
    let target = || {
        let mut words = e.details()?.split_whitespace();
        let slot = words.next()?.parse::<u16>().ok()?;
        Some((slot, Arc::<str>::from(words.next()?)))
    };
    match e.code() {
        "MOVED" => target().map_or(Next::Done, |(s, a)| Next::Moved(s, a)),
        "ASK" => target().map_or(Next::Done, |(_, a)| Next::Ask(a)),
        "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" | "MASTERDOWN" => Next::Wait,
        _ => Next::Done,
    }
}

/// What one node's answers mean for the next round.
#[derive(Debug, PartialEq)]
pub struct Absorbed {
    /// Wait a little before the next round (TRYAGAIN, a failed node).
    pub wait: bool,
    /// The node failed: forget it (`true`: it stalled, so drop its
    /// connection too) and read the slot map again.
    pub failed: Option<bool>,
}

/// Takes one node's answers to the parts in `members`: final replies stay
/// in `replies`, redirects and retries go to `again` (MOVED also fixes the
/// slot map at once).
pub fn absorb(
    map: &mut SlotMap,
    addr: &str,
    (members, result): (Vec<usize>, Result<Vec<Value>, Failure>),
    (parts, replies): (&mut [Part], &mut [Reply]),
    again: &mut Vec<usize>,
) -> Absorbed {
    let values = match result {
        Ok(values) => values,
        Err(failure) => {
            for i in members {
                parts[i].failures += 1;
                parts[i].ask = None;
                replies[i] = Err(failure.error(addr));
                if failure.retries(parts[i].failures) {
                    again.push(i);
                }
            }
            // The node may be gone, or no longer a master.
            return Absorbed {
                wait: true,
                failed: Some(matches!(failure, Failure::Stalled)),
            };
        }
    };
    let mut wait = false;
    let mut values = values.into_iter();
    for i in members {
        let asked = parts[i].ask.take();
        if asked.is_some() {
            values.next(); // ASKING's OK
        }
        let value = values.next().unwrap_or(Value::Nil);
        match next(&value) {
            Next::Done => {}
            Next::Moved(s, to) => {
                map.moved(s, to);
                again.push(i);
            }
            Next::Ask(to) => {
                parts[i].ask = Some(to);
                again.push(i);
            }
            // The slot's keys are moving (a command over several of them
            // waits until they have all moved), or the cluster is electing:
            // ask the same node again shortly.
            Next::Wait => {
                parts[i].ask = asked;
                wait = true;
                again.push(i);
            }
        }
        replies[i] = Ok(value);
    }
    Absorbed { wait, failed: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::backend::cluster::routing::{node_pipeline, split};
    use crate::session::keys::slot;
    use redis::Cmd;

    /// Three commands on three slots, all served by node "a:1".
    fn setup() -> (redis::Pipeline, SlotMap) {
        let mut pipe = redis::pipe();
        pipe.cmd("GET")
            .arg("{x}k")
            .cmd("GET")
            .arg("{y}k")
            .cmd("GET")
            .arg("{z}k");
        let mut map = SlotMap::new();
        map.replace(vec![(0, 16383, Arc::from("a:1"))]);
        (pipe, map)
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn moved_ask_and_tryagain_each_send_only_their_command_again() {
        let (pipe, mut map) = setup();
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        let mut parts = split(&cmds);
        let mut replies: Vec<Reply> = vec![Ok(Value::Nil); 3];
        let mut again = Vec::new();
        let y = slot(b"{y}k");
        let answers = vec![
            error_reply("MOVED", &format!("{y} b:2")),
            error_reply("ASK", &format!("{} c:3", slot(b"{x}k"))),
            error_reply("TRYAGAIN", "Multiple keys request during rehashing of slot"),
        ];
        // The GET of {y} first: MOVED. Then {x}: ASK. Then {z}: TRYAGAIN.
        let out = absorb(
            &mut map,
            "a:1",
            (vec![1, 0, 2], Ok(answers)),
            (&mut parts, &mut replies),
            &mut again,
        );
        assert_eq!(
            out,
            Absorbed {
                wait: true,
                failed: None
            }
        );
        assert_eq!(again, vec![1, 0, 2]);
        // MOVED fixed the map for that slot only, and asks for a refresh.
        assert_eq!(map.owner(Some(y)).as_deref(), Some("b:2"));
        assert_eq!(map.owner(Some(slot(b"{x}k"))).as_deref(), Some("a:1"));
        assert!(map.is_stale());
        // ASK goes to its node once, after ASKING; the others are not redirected.
        assert_eq!(parts[0].ask.as_deref(), Some("c:3"));
        assert_eq!(parts[1].ask, None);
        let asked = node_pipeline(&cmds, &parts, &[0]);
        let wire = String::from_utf8_lossy(&asked.get_packed_pipeline()).replace("\r\n", " ");
        assert!(wire.starts_with("*1 $6 ASKING *2 $3 GET $4 {x}k"), "{wire}");

        // The next round: the ASKed node answers after ASKING's OK.
        let mut again = Vec::new();
        let out = absorb(
            &mut map,
            "c:3",
            (vec![0], Ok(vec![Value::Okay, bulk("X")])),
            (&mut parts, &mut replies),
            &mut again,
        );
        assert_eq!(
            out,
            Absorbed {
                wait: false,
                failed: None
            }
        );
        assert!(again.is_empty());
        assert_eq!(replies[0], Ok(bulk("X")));
        assert_eq!(parts[0].ask, None);
    }

    #[test]
    fn a_failed_node_retries_elsewhere_but_a_stalled_one_does_not() {
        let (pipe, mut map) = setup();
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        let mut parts = split(&cmds);
        let mut replies: Vec<Reply> = vec![Ok(Value::Nil); 3];
        let mut again = Vec::new();
        let refused = Failure::Failed("Connection refused".into());
        let out = absorb(
            &mut map,
            "a:1",
            (vec![0, 1], Err(refused)),
            (&mut parts, &mut replies),
            &mut again,
        );
        assert_eq!(
            out,
            Absorbed {
                wait: true,
                failed: Some(false)
            }
        );
        assert_eq!(again, vec![0, 1]);
        assert_eq!(
            replies[0].as_ref().unwrap_err().kind,
            ErrorKind::Unavailable
        );
        // A second failure stands.
        let mut again = Vec::new();
        absorb(
            &mut map,
            "a:1",
            (vec![0], Err(Failure::Failed("refused".into()))),
            (&mut parts, &mut replies),
            &mut again,
        );
        assert!(again.is_empty());
        // A stall is final at once: the deadline is what it took.
        let mut again = Vec::new();
        let out = absorb(
            &mut map,
            "a:1",
            (vec![2], Err(Failure::Stalled)),
            (&mut parts, &mut replies),
            &mut again,
        );
        assert_eq!(out.failed, Some(true));
        assert!(again.is_empty());
        assert_eq!(replies[2].as_ref().unwrap_err().kind, ErrorKind::Timeout);
        // The replies of the other commands stand.
        assert_eq!(
            replies[1].as_ref().unwrap_err().kind,
            ErrorKind::Unavailable
        );
    }

    fn error_reply(code: &str, message: &str) -> Value {
        redis::parse_redis_value(format!("-{code} {message}\r\n").as_bytes()).unwrap()
    }

    #[test]
    fn redirects_and_retries_are_read_from_error_replies() {
        let moved = error_reply("MOVED", "3999 127.0.0.1:7001");
        assert!(matches!(next(&moved), Next::Moved(3999, a) if &*a == "127.0.0.1:7001"));
        let ask = error_reply("ASK", "3999 127.0.0.1:7002");
        assert!(matches!(next(&ask), Next::Ask(a) if &*a == "127.0.0.1:7002"));
        assert!(matches!(next(&error_reply("TRYAGAIN", "x")), Next::Wait));
        assert!(matches!(next(&error_reply("WRONGTYPE", "x")), Next::Done));
        assert!(matches!(next(&Value::Okay), Next::Done));
    }

    #[test]
    fn a_failed_node_fails_its_commands_with_the_cause() {
        assert_eq!(Failure::Stalled.error("n:1").kind, ErrorKind::Timeout);
        let refused = Failure::Failed("refused".into());
        assert_eq!(refused.error("n:1").kind, ErrorKind::Unavailable);
        assert!(refused.error("n:1").message.contains("n:1"));
        assert!(refused.retries(1) && !refused.retries(MAX_NODE_FAILURES));
        assert!(!Failure::Stalled.retries(0));
    }
}
