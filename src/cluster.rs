//! Redis Cluster: a slot map and one reconnecting connection per master.
//! A pipeline is split by node (commands keep their order on each node), the
//! parts go out at once, and the replies come back in command order. MOVED,
//! ASK and TRYAGAIN are followed per command, not per pipeline: during a
//! slot migration some keys of a slot have moved and some have not, and
//! replaying the whole pipeline at one node would send the rest to the wrong
//! one. Every command the store sends is idempotent (absolute deadlines and
//! values), so a command that a failed node may have run is safe to retry.
//! A node that fails answers its own commands with error replies; the other
//! nodes' answers stand, so one dead master fails only its own sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Arg, Cmd, Pipeline, Value};
use tokio::time::Instant;

use crate::connection::{self, ConnectionOptions};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::keys::{slot, SLOTS};

/// Least time between two reads of the slot map.
const REFRESH_EVERY: Duration = Duration::from_millis(50);

/// Times a command is sent to a node that failed before its error stands.
const MAX_NODE_FAILURES: u32 = 2;

/// A master, with whether it has run the connection's setup (script loads).
#[derive(Clone)]
struct Node {
    conn: ConnectionManager,
    ready: Arc<AtomicBool>,
}

struct Topology {
    /// The master serving each slot, as "host:port".
    slots: Vec<Option<Arc<str>>>,
    nodes: HashMap<Arc<str>, Node>,
    /// Ask the cluster for its slots before the next send.
    stale: bool,
    /// When the slot map was last read.
    refreshed: Option<Instant>,
}

pub struct Cluster {
    options: ConnectionOptions,
    /// The seed nodes as "host:port", asked for the slot map with the rest.
    seeds: Vec<Arc<str>>,
    /// Run on every node before its first command (loads the scripts).
    setup: Pipeline,
    topology: Mutex<Topology>,
    /// One slot-map refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
}

/// One command to send: a command of the caller's pipeline, or one slot's
/// share of a multi-slot MGET.
struct Part {
    /// Which of the caller's commands this answers.
    of: usize,
    /// For an MGET share: the positions of its keys in the caller's MGET.
    positions: Option<Vec<usize>>,
    /// The command, when it is not the caller's own.
    own: Option<Cmd>,
    /// Its key's slot; keyless commands go to any master.
    slot: Option<u16>,
    /// The node an ASK named: the next try goes there, after ASKING.
    ask: Option<Arc<str>>,
    failures: u32,
}

fn args(cmd: &Cmd) -> impl Iterator<Item = &[u8]> {
    cmd.args_iter().map(|a| match a {
        Arg::Simple(bytes) => bytes,
        _ => &b""[..],
    })
}

/// The key that decides a command's slot, if it has one.
fn key_of(cmd: &Cmd) -> Option<&[u8]> {
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

/// An error reply, so that a node's failure answers only its own commands.
fn error_reply(code: &str, message: &str) -> Value {
    let line = message.replace(['\r', '\n'], " ");
    redis::parse_redis_value(format!("-{code} {line}\r\n").as_bytes()).unwrap_or(Value::Nil)
}

/// Error reply codes for a node that failed (see `node_failure`).
const UNREACHABLE: &str = "UNREACHABLE";
const NO_ANSWER: &str = "NOANSWER";

/// The store error that a failed node's reply stands for, if it is one.
pub fn node_failure(e: &redis::ServerError) -> Option<StoreError> {
    let kind = match e.code() {
        UNREACHABLE => ErrorKind::Unavailable,
        NO_ANSWER => ErrorKind::Timeout,
        _ => return None,
    };
    Some(StoreError::new(kind, e.details().unwrap_or_default()))
}

/// Why a node's share got no replies.
enum Failure {
    /// No answer in time: the connection is dropped, the commands not retried.
    Stalled,
    Failed(String),
}

impl Failure {
    fn reply(&self, addr: &str) -> Value {
        match self {
            Failure::Stalled => error_reply(
                NO_ANSWER,
                &format!("cluster node {addr} did not answer in time"),
            ),
            Failure::Failed(why) => {
                error_reply(UNREACHABLE, &format!("cluster node {addr}: {why}"))
            }
        }
    }
}

/// What a reply asks of the router.
enum Next {
    Done,
    Moved(u16, Arc<str>),
    Ask(Arc<str>),
    Wait,
}

fn next(reply: &Value) -> Next {
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

/// Splits the caller's commands into parts, an MGET over several slots into
/// one MGET per slot.
fn split(cmds: &[&Cmd]) -> Vec<Part> {
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
type Groups = Vec<(Arc<str>, Vec<usize>)>;

/// One node's pipeline: its parts in order, ASKING before each one an ASK
/// sent there.
fn node_pipeline(cmds: &[&Cmd], parts: &[Part], members: &[usize]) -> Pipeline {
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
fn assemble(cmds: &[&Cmd], parts: &[Part], mut replies: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = vec![Value::Nil; cmds.len()];
    let mut mgets: HashMap<usize, Vec<Value>> = HashMap::new();
    for (part, reply) in parts.iter().zip(replies.iter_mut()) {
        let reply = std::mem::replace(reply, Value::Nil);
        match &part.positions {
            None => out[part.of] = reply,
            Some(positions) => {
                let width = cmds[part.of].args_iter().len() - 1;
                let values = mgets
                    .entry(part.of)
                    .or_insert_with(|| vec![Value::Nil; width]);
                match reply {
                    Value::Array(items) => {
                        for (&i, item) in positions.iter().zip(items) {
                            values[i] = item;
                        }
                    }
                    // One share failed: the whole MGET reports it.
                    err => out[part.of] = err,
                }
            }
        }
    }
    for (of, values) in mgets {
        if !matches!(out[of], Value::ServerError(_)) {
            out[of] = Value::Array(values);
        }
    }
    out
}

impl Cluster {
    pub fn new(options: &ConnectionOptions, setup: Pipeline) -> StoreResult<Cluster> {
        // Parsed now, so a typo fails at construction.
        let seeds = options
            .cluster
            .iter()
            .map(|seed| {
                connection::info_at(options, seed, None).map(|i| connection::address(&i).into())
            })
            .collect::<StoreResult<Vec<Arc<str>>>>()?;
        Ok(Cluster {
            options: options.clone(),
            seeds,
            setup,
            topology: Mutex::new(Topology {
                slots: vec![None; SLOTS],
                nodes: HashMap::new(),
                stale: true,
                refreshed: None,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// The slot map may be out of date (a dropped node, a failover).
    pub fn mark_stale(&self) {
        self.topology.lock().unwrap().stale = true;
    }

    /// Every node runs the setup again before its next command.
    pub fn reset_setup(&self) {
        for node in self.topology.lock().unwrap().nodes.values() {
            node.ready.store(false, Ordering::Release);
        }
    }

    fn node(&self, addr: &Arc<str>) -> StoreResult<Node> {
        let mut topology = self.topology.lock().unwrap();
        if let Some(node) = topology.nodes.get(addr) {
            return Ok(node.clone());
        }
        let seed = self.options.cluster.first().map_or("", String::as_str);
        let info = connection::info_at(&self.options, seed, Some(addr))?;
        let node = Node {
            conn: connection::manage_info(info, &self.options)?,
            ready: Arc::new(AtomicBool::new(false)),
        };
        topology.nodes.insert(addr.clone(), node.clone());
        Ok(node)
    }

    /// The masters, in a stable order (for SCAN over every one, which
    /// needs no scripts).
    pub async fn masters(&self) -> StoreResult<Vec<ConnectionManager>> {
        self.ensure_slots().await?;
        let mut addrs: Vec<Arc<str>> = {
            let topology = self.topology.lock().unwrap();
            topology.slots.iter().flatten().cloned().collect()
        };
        addrs.sort();
        addrs.dedup();
        addrs.iter().map(|addr| Ok(self.node(addr)?.conn)).collect()
    }

    /// A node's connection, after its setup has run.
    async fn ready(&self, addr: &Arc<str>) -> StoreResult<ConnectionManager> {
        let node = self.node(addr)?;
        let mut conn = node.conn.clone();
        if !node.ready.load(Ordering::Acquire) && !self.setup.is_empty() {
            conn.req_packed_commands(&self.setup, 0, self.setup.len())
                .await
                .map_err(|e| StoreError::from_redis(&e))?;
            node.ready.store(true, Ordering::Release);
        }
        Ok(conn)
    }

    async fn ensure_slots(&self) -> StoreResult<()> {
        // While a node is down every pipeline marks the map stale; asking
        // again at most every REFRESH_EVERY spares the live nodes a
        // CLUSTER SLOTS per pipeline (a MOVED has already fixed its slot).
        let due = {
            let topology = self.topology.lock().unwrap();
            topology.stale
                && topology
                    .refreshed
                    .is_none_or(|at| at.elapsed() >= REFRESH_EVERY)
        };
        if due {
            self.refresh().await?;
        }
        Ok(())
    }

    /// Asks the known nodes and the seeds, all at once, for the slot map;
    /// the first to answer wins (a stopped node must not hold it up).
    async fn refresh(&self) -> StoreResult<()> {
        let _one = self.refreshing.lock().await;
        let mut candidates: Vec<Arc<str>> = {
            let topology = self.topology.lock().unwrap();
            if !topology.stale {
                return Ok(());
            }
            topology.nodes.keys().cloned().collect()
        };
        candidates.extend(self.seeds.iter().cloned());
        candidates.sort();
        candidates.dedup();
        let asks = candidates.into_iter().map(|addr| {
            Box::pin(async move {
                let mut conn = self.node(&addr)?.conn;
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("SLOTS");
                let reply = tokio::time::timeout(
                    self.options.connect_timeout,
                    conn.req_packed_command(&cmd),
                )
                .await
                .map_err(|_| StoreError::timed_out(self.options.connect_timeout))?
                .map_err(|e| StoreError::from_redis(&e))?;
                parse_slots(&reply, &addr)
                    .filter(|ranges| !ranges.is_empty())
                    .ok_or_else(|| {
                        StoreError::new(
                            ErrorKind::Reply,
                            format!("cluster node {addr} sent no slot map: {reply:?}"),
                        )
                    })
            })
        });
        let (ranges, _) = futures_util::future::select_ok(asks)
            .await
            .map_err(|last| {
                StoreError::new(
                    last.kind,
                    format!("no slot map from the cluster: {}", last.message),
                )
            })?;
        let mut topology = self.topology.lock().unwrap();
        topology.slots = vec![None; SLOTS];
        for (start, end, node) in ranges {
            for s in start..=end.min(SLOTS as u16 - 1) {
                topology.slots[s as usize] = Some(node.clone());
            }
        }
        topology.stale = false;
        topology.refreshed = Some(Instant::now());
        Ok(())
    }

    fn owner(&self, part: &Part) -> Option<Arc<str>> {
        if let Some(addr) = &part.ask {
            return Some(addr.clone());
        }
        let topology = self.topology.lock().unwrap();
        match part.slot {
            Some(s) => topology.slots[s as usize].clone(),
            None => topology.slots.iter().flatten().next().cloned(),
        }
    }

    /// Sends a pipeline across the cluster; one reply per command, in order.
    /// A node that cannot be reached answers its commands with error
    /// replies instead of failing the others. Each node's share is given
    /// until `deadline` (or the command timeout). The commands on slot
    /// `last` go once the others have been answered: on one node a
    /// pipeline runs in order, across nodes only this keeps an index from
    /// listing a session before it is written (a reader would take it for
    /// gone and drop it).
    pub async fn send(
        &self,
        pipe: &Pipeline,
        deadline: Option<Instant>,
        last: Option<u16>,
    ) -> Vec<Value> {
        let deadline = deadline
            .unwrap_or_else(|| Instant::now() + self.options.command_timeout)
            // Leave time to report, before the caller's own bound fires.
            .checked_sub(Duration::from_millis(5))
            .unwrap_or_else(Instant::now);
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        let mut parts = split(&cmds);
        let unsent = error_reply(NO_ANSWER, "not sent before the deadline");
        let mut replies: Vec<Value> = vec![unsent; parts.len()];
        let mut pending: Vec<usize> = (0..parts.len()).collect();
        for round in 1u32.. {
            if let Err(e) = self.ensure_slots().await {
                let failed = error_reply(UNREACHABLE, &e.message);
                for &i in &pending {
                    replies[i] = failed.clone();
                }
                break;
            }
            let (groups, mut again) = self.group(&parts, &pending, last, &mut replies);
            let sends = groups.iter().map(|(addr, members)| {
                self.send_to(addr, node_pipeline(&cmds, &parts, members), deadline)
            });
            let results = join_all(sends).await;
            let mut wait = false;
            for ((addr, members), result) in groups.into_iter().zip(results) {
                let replied = (&mut parts[..], &mut replies[..]);
                wait |= self.absorb(&addr, members, result, replied, &mut again);
            }
            again.sort_unstable();
            pending = again;
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            // Redirects that keep coming (a slot map still settling) back
            // off too: the deadline, not a count, ends the retries.
            if wait || round > 3 {
                let pause = Duration::from_millis(5 * u64::from(round.min(10)));
                tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
            }
        }
        assemble(&cmds, &parts, replies)
    }

    /// The pending parts by node, in command order, and those held back
    /// this round: the parts on slot `last` while others are pending. A
    /// part no node serves is answered CLUSTERDOWN.
    fn group(
        &self,
        parts: &[Part],
        pending: &[usize],
        last: Option<u16>,
        replies: &mut [Value],
    ) -> (Groups, Vec<usize>) {
        let held = last.filter(|l| pending.iter().any(|&i| parts[i].slot != Some(*l)));
        let mut waiting = Vec::new();
        let mut groups: Groups = Vec::new();
        for &i in pending {
            if held.is_some() && parts[i].slot == held {
                waiting.push(i);
                continue;
            }
            let Some(addr) = self.owner(&parts[i]) else {
                replies[i] = error_reply("CLUSTERDOWN", "no node serves this slot");
                continue;
            };
            match groups.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, members)) => members.push(i),
                None => groups.push((addr, vec![i])),
            }
        }
        (groups, waiting)
    }

    /// Takes one node's answers: final replies stay, redirects and retries
    /// go to `again`. Returns whether the next round should wait a little.
    fn absorb(
        &self,
        addr: &Arc<str>,
        members: Vec<usize>,
        result: Result<Vec<Value>, Failure>,
        (parts, replies): (&mut [Part], &mut [Value]),
        again: &mut Vec<usize>,
    ) -> bool {
        let values = match result {
            Ok(values) => values,
            Err(failure) => {
                // The node may be gone, or no longer a master.
                let stalled = matches!(failure, Failure::Stalled);
                self.forget(addr, stalled);
                for i in members {
                    parts[i].failures += 1;
                    parts[i].ask = None;
                    replies[i] = failure.reply(addr);
                    if !stalled && parts[i].failures < MAX_NODE_FAILURES {
                        again.push(i);
                    }
                }
                return true;
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
                    let mut topology = self.topology.lock().unwrap();
                    topology.slots[s as usize] = Some(to);
                    topology.stale = true;
                    again.push(i);
                }
                Next::Ask(to) => {
                    parts[i].ask = Some(to);
                    again.push(i);
                }
                // The slot's keys are moving (a command over several of
                // them waits until they have all moved), or the cluster is
                // electing: ask the same node again shortly.
                Next::Wait => {
                    parts[i].ask = asked;
                    wait = true;
                    again.push(i);
                }
            }
            replies[i] = value;
        }
        wait
    }

    /// One node's share, within the deadline.
    async fn send_to(
        &self,
        addr: &Arc<str>,
        pipe: Pipeline,
        deadline: Instant,
    ) -> Result<Vec<Value>, Failure> {
        let sent = async {
            let mut conn = self.ready(addr).await.map_err(|e| {
                if e.kind == ErrorKind::Timeout {
                    Failure::Stalled
                } else {
                    Failure::Failed(e.message)
                }
            })?;
            conn.req_packed_commands(&pipe, 0, pipe.len())
                .await
                .map_err(|e| match e.is_timeout() {
                    true => Failure::Stalled,
                    false => Failure::Failed(e.to_string()),
                })
        };
        tokio::time::timeout_at(deadline, sent)
            .await
            .unwrap_or(Err(Failure::Stalled))
    }

    /// After a node failed: refresh the slot map; a node that stalled is
    /// dropped so the next command opens a fresh connection.
    fn forget(&self, addr: &Arc<str>, stalled: bool) {
        let mut topology = self.topology.lock().unwrap();
        topology.stale = true;
        if stalled {
            topology.nodes.remove(addr);
        }
    }
}

/// `CLUSTER SLOTS` as (first, last, master "host:port"); an empty host
/// means the node that answered.
fn parse_slots(reply: &Value, asked: &str) -> Option<Vec<(u16, u16, Arc<str>)>> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let asked_host = asked.rsplit_once(':').map_or(asked, |(h, _)| h);
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(fields) = range else {
            return None;
        };
        let int = |v: &Value| match v {
            Value::Int(n) => u16::try_from(*n).ok(),
            _ => None,
        };
        let (start, end) = (int(fields.first()?)?, int(fields.get(1)?)?);
        let Value::Array(master) = fields.get(2)? else {
            return None;
        };
        let host = match master.first()? {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_owned()
        } else {
            host
        };
        let port = match master.get(1)? {
            Value::Int(p) => *p,
            _ => return None,
        };
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        out.push((start, end, addr.into()));
    }
    Some(out)
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
                bulk("A"),
                Value::Array(vec![bulk("x1"), Value::Nil]),
                Value::Array(vec![bulk("y1")]),
            ],
        );
        assert_eq!(
            out,
            vec![
                bulk("A"),
                Value::Array(vec![bulk("x1"), bulk("y1"), Value::Nil])
            ]
        );
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
    fn slot_maps_name_the_answering_host_when_a_master_has_none() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            Value::Array(vec![
                Value::BulkString(Vec::new()),
                Value::Int(7000),
                Value::BulkString(b"id".to_vec()),
            ]),
        ])]);
        let ranges = parse_slots(&reply, "localhost:7000").unwrap();
        assert_eq!(ranges, vec![(0, 5460, Arc::from("localhost:7000"))]);
    }
}
