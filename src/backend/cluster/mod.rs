//! Redis Cluster: a slot map and one reconnecting connection per master.
//! A pipeline is split by node (commands keep their order on each node), the
//! parts go out at once, and the replies come back in command order. MOVED,
//! ASK and TRYAGAIN are followed per command, not per pipeline: during a
//! slot migration some keys of a slot have moved and some have not, and
//! replaying the whole pipeline at one node would send the rest to the wrong
//! one. Every command the store sends is idempotent (absolute deadlines and
//! values), so a command that a failed node may have run is safe to retry.
//! A node that fails fails only its own commands; the other nodes' answers
//! stand, so one dead master fails only its own sessions.
//! `routing` says where each command goes, `slot_map` who serves each slot,
//! `redirect` what a node's answer asks of the next round.

mod redirect;
mod routing;
mod slot_map;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{join_all, BoxFuture};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisResult, Value};
use tokio::time::Instant;

use super::contract::{Backend, Conn, Reply, SendError};
use super::options::{self, ConnectionOptions};
use super::single::Single;
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::session::keys::slot;
use redirect::Failure;
use routing::{assemble, node_pipeline, split, Groups, Part};
use slot_map::{parse_slots, SlotMap};

/// A master, with whether it has run the connection's setup (script loads).
#[derive(Clone)]
struct Node {
    conn: ConnectionManager,
    ready: Arc<AtomicBool>,
}

struct Topology {
    map: SlotMap,
    nodes: HashMap<Arc<str>, Node>,
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

impl Cluster {
    pub fn new(options: &ConnectionOptions, setup: Pipeline) -> StoreResult<Cluster> {
        // Parsed now, so a typo fails at construction.
        let seeds = options
            .cluster
            .iter()
            .map(|seed| options::info_at(options, seed, None).map(|i| options::address(&i).into()))
            .collect::<StoreResult<Vec<Arc<str>>>>()?;
        Ok(Cluster {
            options: options.clone(),
            seeds,
            setup,
            topology: Mutex::new(Topology {
                map: SlotMap::new(),
                nodes: HashMap::new(),
            }),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// The slot map may be out of date (a dropped node, a failover).
    fn mark_stale(&self) {
        self.topology.lock().unwrap().map.mark_stale();
    }

    /// Every node runs the setup again before its next command.
    fn reset_setup(&self) {
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
        let info = options::info_at(&self.options, seed, Some(addr))?;
        let node = Node {
            conn: options::manage_info(info, &self.options)?,
            ready: Arc::new(AtomicBool::new(false)),
        };
        topology.nodes.insert(addr.clone(), node.clone());
        Ok(node)
    }

    /// The masters, in a stable order (for SCAN over every one, which
    /// needs no scripts).
    pub async fn masters(&self) -> StoreResult<Vec<ConnectionManager>> {
        self.ensure_slots().await?;
        let addrs = self.topology.lock().unwrap().map.masters();
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
        let due = self.topology.lock().unwrap().map.due();
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
            if !topology.map.is_stale() {
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
        self.topology.lock().unwrap().map.replace(ranges);
        Ok(())
    }

    fn owner(&self, part: &Part) -> Option<Arc<str>> {
        if let Some(addr) = &part.ask {
            return Some(addr.clone());
        }
        self.topology.lock().unwrap().map.owner(part.slot)
    }

    /// Sends a pipeline across the cluster; one reply per command, in order.
    /// A node that cannot be reached fails its own commands (with the
    /// cause) instead of failing the others. Each node's share is given
    /// until `deadline` (or the command timeout). The commands on the slots
    /// in `last` go once the others have been answered: on one node a
    /// pipeline runs in order, across nodes only this keeps an index from
    /// listing a session before it is written (a reader would take it for
    /// gone and drop it).
    async fn route(&self, pipe: &Pipeline, deadline: Option<Instant>, last: &[u16]) -> Vec<Reply> {
        let deadline = deadline
            .unwrap_or_else(|| Instant::now() + self.options.command_timeout)
            // Leave time to report, before the caller's own bound fires.
            .checked_sub(Duration::from_millis(5))
            .unwrap_or_else(Instant::now);
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        let mut parts = split(&cmds);
        let unsent = StoreError::new(ErrorKind::Timeout, "not sent before the deadline");
        let mut replies: Vec<Reply> = vec![Err(unsent); parts.len()];
        let mut pending: Vec<usize> = (0..parts.len()).collect();
        for round in 1u32.. {
            if let Err(e) = self.ensure_slots().await {
                let failed = StoreError::new(ErrorKind::Unavailable, e.message);
                for &i in &pending {
                    replies[i] = Err(failed.clone());
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
                let absorbed = {
                    let map = &mut self.topology.lock().unwrap().map;
                    redirect::absorb(map, &addr, (members, result), replied, &mut again)
                };
                if let Some(stalled) = absorbed.failed {
                    self.forget(&addr, stalled);
                }
                wait |= absorbed.wait;
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
    /// this round: the parts on the slots in `last` while others are
    /// pending. A part no node serves fails as unavailable.
    fn group(
        &self,
        parts: &[Part],
        pending: &[usize],
        last: &[u16],
        replies: &mut [Reply],
    ) -> (Groups, Vec<usize>) {
        let later = |i: usize| parts[i].slot.is_some_and(|s| last.contains(&s));
        let hold = pending.iter().any(|&i| !later(i));
        let mut waiting = Vec::new();
        let mut groups: Groups = Vec::new();
        for &i in pending {
            if hold && later(i) {
                waiting.push(i);
                continue;
            }
            let Some(addr) = self.owner(&parts[i]) else {
                let slot = parts[i].slot.map_or_else(String::new, |s| format!(" {s}"));
                replies[i] = Err(StoreError::new(
                    ErrorKind::Unavailable,
                    format!("no cluster node serves slot{slot} (CLUSTERDOWN)"),
                ));
                continue;
            };
            match groups.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, members)) => members.push(i),
                None => groups.push((addr, vec![i])),
            }
        }
        (groups, waiting)
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
        topology.map.mark_stale();
        if stalled {
            topology.nodes.remove(addr);
        }
    }
}

impl Backend for Cluster {
    fn send<'a>(
        &'a self,
        pipe: &'a Pipeline,
        deadline: Option<Instant>,
        last: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Reply>, SendError>> {
        let last: Vec<u16> = last.iter().map(|key| slot(key.as_bytes())).collect();
        Box::pin(async move { Ok(self.route(pipe, deadline, &last).await) })
    }

    /// Every node loads them before its next command.
    fn load_scripts(&self) -> BoxFuture<'_, RedisResult<()>> {
        self.reset_setup();
        Box::pin(async { Ok(()) })
    }

    fn servers(self: Arc<Self>) -> BoxFuture<'static, StoreResult<Vec<Conn>>> {
        Box::pin(async move {
            Ok(self
                .masters()
                .await?
                .into_iter()
                .map(|m| Arc::new(Single::fixed(m, &self.options)) as Conn)
                .collect())
        })
    }

    fn another(&self) -> StoreResult<Option<Conn>> {
        let mut seeds = self.seeds.clone();
        seeds.extend(self.topology.lock().unwrap().nodes.keys().cloned());
        seeds.sort();
        seeds.dedup();
        Ok(Some(Arc::new(Cluster {
            seeds,
            ..Cluster::new(&self.options, self.setup.clone())?
        })))
    }

    /// Starts over: a fresh slot map and fresh connections.
    fn reopen(&self) {
        let mut topology = self.topology.lock().unwrap();
        topology.nodes.clear();
        topology.map.mark_stale();
    }

    fn lost(&self) {
        self.mark_stale();
    }

    /// Each master has its own replicas; not done here (see README).
    fn can_wait(&self) -> bool {
        false
    }
}
