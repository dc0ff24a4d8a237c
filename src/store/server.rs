//! What the store knows of its server (`Server`), from what a server says
//! about itself when the store connects: its eviction policy (under
//! `allkeys-*` Redis may evict an index or a logout marker while the
//! sessions it serves live on, so the store warns), and how many replicas
//! it has (a logout then waits for one, see `replicas`). `INFO` is asked,
//! not `CONFIG GET`: managed services refuse the latter.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use redis::Value;
use tokio::time::Instant;

use crate::backend::Conn;
use crate::ops::Context;

/// What the store learned of its server at the last connection.
pub(super) struct Server {
    /// Replicas a logout waits for (see `replicas`); 0: none to wait for.
    pub(super) replicas: AtomicUsize,
    /// The server may evict the store's own keys (see `Recent::set_evicting`).
    pub(super) evicting: AtomicBool,
    /// When `replicas` was last asked: replicas come and go, so a logout
    /// asks again when this is older than `RELEARN`.
    learned: Mutex<Option<Instant>>,
    /// Dropped at `close()`: nothing is reported after it.
    pub(super) on_warning: Mutex<Option<OnWarning>>,
}

/// How old a replica count may be when a logout relies on it.
const RELEARN: Duration = Duration::from_secs(10);

impl Server {
    /// Nothing learned yet; `on_warning` hears what the application should
    /// know.
    pub(super) fn new(on_warning: OnWarning) -> Server {
        Server {
            replicas: AtomicUsize::new(0),
            evicting: AtomicBool::new(false),
            learned: Mutex::new(None),
            on_warning: Mutex::new(Some(on_warning)),
        }
    }

    /// Asks the server about itself on a new connection (warning once), or
    /// its replica count again when that is stale and a logout needs it.
    pub(super) async fn learn(&self, conn: &Conn, new_connection: bool) {
        if !new_connection && !self.stale() {
            return;
        }
        let sink = self.on_warning.lock().unwrap().clone();
        let warn = sink.as_ref().filter(|_| new_connection);
        let learned = ask_all(conn, warn).await;
        self.replicas.store(learned.replicas, Ordering::Release);
        self.evicting.store(learned.evicting, Ordering::Release);
        *self.learned.lock().unwrap() = Some(Instant::now());
    }

    /// Whether the replica count is too old for a logout to rely on.
    pub(super) fn stale(&self) -> bool {
        self.learned
            .lock()
            .unwrap()
            .is_none_or(|at| at.elapsed() > RELEARN)
    }

    /// Whether a pipeline holding a destroy waits for a replica: never
    /// without replicas, or with `waitForReplicas: false`.
    pub(super) fn waits(&self, ctx: &Context) -> bool {
        ctx.wait_for_replicas && self.replicas.load(Ordering::Acquire) > 0
    }
}

/// What the store tells the application about its server, once per
/// connection (the JS face emits it as a `'warning'` event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}

/// A sink for warnings; called on a runtime thread.
pub type OnWarning = std::sync::Arc<dyn Fn(Warning) + Send + Sync>;

const EVICTION_WARNING: &str = "WARN_REDIS_EVICTION";

/// The eviction policy and replica count of one server, from its
/// `INFO memory` and `INFO replication` text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct ServerInfo {
    policy: Option<String>,
    replicas: usize,
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

impl ServerInfo {
    fn parse(memory: &str, replication: &str) -> ServerInfo {
        ServerInfo {
            policy: field(memory, "maxmemory_policy").map(str::to_owned),
            replicas: field(replication, "connected_slaves")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        }
    }

    /// The warning this server deserves, if any: a policy that may evict
    /// keys without a TTL, or one the store could not read.
    fn warning(&self) -> Option<Warning> {
        let message = match self.policy.as_deref() {
            Some(p) if p.starts_with("allkeys-") => format!(
                "redis runs maxmemory-policy {p}: when it is full it evicts any key, \
                 including the per-user indexes and logout markers, so listUserSessions and \
                 destroyUserSessions may miss live sessions and a logged-out session may be \
                 saved again. Use noeviction or a volatile-* policy (volatile-lru) for sessions."
            ),
            Some(_) => return None,
            None => "could not read maxmemory-policy from redis (INFO memory): if it \
                 evicts with an allkeys-* policy, listUserSessions and destroyUserSessions may \
                 miss live sessions. Use noeviction or a volatile-* policy (volatile-lru)."
                .to_owned(),
        };
        Some(Warning {
            code: EVICTION_WARNING,
            message,
        })
    }
}

fn text(reply: Option<&Value>) -> String {
    match reply {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::VerbatimString { text, .. }) => text.clone(),
        Some(Value::SimpleString(s)) => s.clone(),
        _ => String::new(),
    }
}

/// What a connection's servers said, for the store.
struct Learned {
    /// Replicas a logout can wait for (none on a cluster: see `replicas`).
    replicas: usize,
    /// Some server may evict the store's own keys (it warned about one).
    evicting: bool,
}

/// Asks every server behind a connection (each master of a cluster), and
/// hands `on_warning` (if given) the first warning.
async fn ask_all(conn: &Conn, on_warning: Option<&OnWarning>) -> Learned {
    let servers = conn.clone().servers().await.unwrap_or_default();
    let mut infos = Vec::with_capacity(servers.len());
    for server in servers {
        infos.push(ask(&server).await);
    }
    let warning = infos.iter().find_map(ServerInfo::warning);
    let evicting = warning.is_some();
    if let (Some(warn), Some(w)) = (on_warning, warning) {
        warn(w);
    }
    let replicas = match infos.first() {
        Some(info) if conn.can_wait() => info.replicas,
        _ => 0,
    };
    Learned { replicas, evicting }
}

/// Asks one server; a refused or failed INFO reads as an unknown policy
/// and no replicas.
async fn ask(conn: &Conn) -> ServerInfo {
    let mut pipe = redis::pipe();
    pipe.cmd("INFO")
        .arg("memory")
        .cmd("INFO")
        .arg("replication");
    match conn.send(&pipe, None, &[]).await {
        Ok(replies) => {
            let text = |i: usize| text(replies.get(i).and_then(|r| r.as_ref().ok()));
            ServerInfo::parse(&text(0), &text(1))
        }
        Err(_) => ServerInfo::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_policy_and_the_replicas() {
        let memory = "# Memory\r\nused_memory:1\r\nmaxmemory_policy:volatile-lru\r\n";
        let replication = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n";
        let info = ServerInfo::parse(memory, replication);
        assert_eq!(info.policy.as_deref(), Some("volatile-lru"));
        assert_eq!(info.replicas, 2);
        assert_eq!(info.warning(), None);
    }

    #[test]
    fn allkeys_and_unknown_policies_warn() {
        let allkeys = ServerInfo::parse("maxmemory_policy:allkeys-lru\r\n", "");
        let w = allkeys.warning().unwrap();
        assert_eq!(w.code, EVICTION_WARNING);
        assert!(w.message.contains("allkeys-lru"), "{}", w.message);
        assert!(ServerInfo::parse("", "").warning().is_some());
        assert_eq!(
            ServerInfo::parse("maxmemory_policy:noeviction", "").warning(),
            None
        );
    }
}
