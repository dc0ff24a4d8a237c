//! Session lifecycle events (`sessionCreated`, `sessionEnded`): found in
//! the replies of the scripts that create and end sessions, so each is
//! told once for the whole fleet, by the instance whose script made the
//! change. They carry the sid only as far as JS, which names the session
//! by its handle; a store nobody listens to tells none (its ends are still
//! counted, see `ended`).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use redis::Value;

use super::expiry::Lifetime;
use super::meta::Meta;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Logout,
    Revoked,
    Everywhere,
    Limit,
    Idle,
    Absolute,
    Expired,
    Binding,
}

impl Reason {
    /// Every reason, in the order of the enum (`reason as usize` indexes it).
    pub const ALL: [Reason; 8] = [
        Reason::Logout,
        Reason::Revoked,
        Reason::Everywhere,
        Reason::Limit,
        Reason::Idle,
        Reason::Absolute,
        Reason::Expired,
        Reason::Binding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Logout => "logout",
            Reason::Revoked => "revoked",
            Reason::Everywhere => "everywhere",
            Reason::Limit => "limit",
            Reason::Idle => "idle",
            Reason::Absolute => "absolute",
            Reason::Expired => "expired",
            Reason::Binding => "binding",
        }
    }

    /// The reason a destroy from JS names; any other text is a logout.
    pub fn of_destroy(text: Option<&str>) -> Reason {
        match text {
            Some("revoked") => Reason::Revoked,
            Some("binding") => Reason::Binding,
            _ => Reason::Logout,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Created {
        sid: String,
        owner: String,
        created: i64,
    },
    Ended {
        sid: String,
        owner: String,
        /// `None` for a session without a meta (written by connect-redis).
        created: Option<i64>,
        last_access: Option<i64>,
        ended: i64,
        reason: Reason,
    },
}

impl Event {
    /// A session ended by a destroy at `now`, from the meta it had.
    pub fn destroyed(sid: &str, meta: Option<Meta>, now: i64, reason: Reason) -> Event {
        Event::Ended {
            sid: sid.to_owned(),
            owner: meta.as_ref().map(|m| m.owner.clone()).unwrap_or_default(),
            created: meta.as_ref().map(|m| m.created),
            last_access: meta.as_ref().map(|m| m.last_access),
            ended: now,
            reason,
        }
    }

    /// A session the cleanup found gone, from its last meta: it ended at
    /// the earliest of its cookie's deadline (`expired`), its last access
    /// plus the idle limit (`idle`) and its creation plus the absolute
    /// limit (`absolute`). With limits per session (`lifetime` None) the
    /// meta does not hold them: a session found gone before its cookie's
    /// deadline ended by one of them, told as `idle` and dated when the
    /// cleanup found it (see docs/events.md).
    pub fn expired(sid: &str, meta: &Meta, lifetime: Option<Lifetime>, found: i64) -> Event {
        let (ended, reason) = match lifetime {
            Some(life) => end_of(meta, life).unwrap_or((found, Reason::Expired)),
            None => match meta.cookie_expiry {
                Some(at) if at <= found => (at, Reason::Expired),
                _ => (found, Reason::Idle),
            },
        };
        Event::Ended {
            sid: sid.to_owned(),
            owner: meta.owner.clone(),
            created: Some(meta.created),
            last_access: Some(meta.last_access),
            ended,
            reason,
        }
    }
}

/// When and why a session with these limits ended, as its meta tells.
fn end_of(meta: &Meta, life: Lifetime) -> Option<(i64, Reason)> {
    [
        meta.cookie_expiry.map(|at| (at, Reason::Expired)),
        life.idle_ms
            .map(|ms| (meta.last_access.saturating_add(ms), Reason::Idle)),
        life.absolute_ms
            .map(|ms| (meta.created.saturating_add(ms), Reason::Absolute)),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|(at, _)| *at)
}

/// The `Created` event a write script's reply tells (`+` and the creation
/// time: the session was not there before).
pub fn created(reply: &Value, sid: &str, owner: Option<&str>) -> Option<Event> {
    let Value::BulkString(b) = reply else {
        return None;
    };
    let born = std::str::from_utf8(b.strip_prefix(b"+")?).ok()?;
    Some(Event::Created {
        sid: sid.to_owned(),
        owner: owner.unwrap_or_default().to_owned(),
        created: crate::session::meta::read_time(born)?,
    })
}

/// The meta a `DESTROY` reply returns when it ended a live session:
/// `Some(None)` for a session without a meta.
pub fn destroyed(reply: &Value) -> Option<Option<Meta>> {
    match reply {
        Value::Array(parts) if parts.len() == 2 => Some(Meta::read(&parts[1])),
        _ => None,
    }
}

type Sink = Arc<dyn Fn(Vec<Event>) + Send + Sync>;

/// Where events go, and whether anyone listens (JS says, as listeners
/// come and go).
#[derive(Clone, Default)]
pub struct Events {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    listening: AtomicBool,
    sink: OnceLock<Sink>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Events {{ listening: {} }}", self.listening())
    }
}

impl Events {
    pub fn listening(&self) -> bool {
        self.inner.listening.load(Ordering::Relaxed)
    }

    pub fn listen(&self, on: bool) {
        self.inner.listening.store(on, Ordering::Relaxed);
    }

    /// Sets where events go (once, when the store opens).
    pub fn connect(&self, sink: Sink) {
        let _ = self.inner.sink.set(sink);
    }

    pub fn emit(&self, events: Vec<Event>) {
        if events.is_empty() || !self.listening() {
            return;
        }
        if let Some(sink) = self.inner.sink.get() {
            sink(events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::meta::time;

    fn meta(created: i64, last: i64, cookie: Option<i64>) -> Meta {
        let cookie = cookie.map(time).unwrap_or_default();
        Meta::parse(&format!("{},{},{cookie},,ada", time(created), time(last))).unwrap()
    }

    #[test]
    fn an_expiry_is_told_by_the_limit_that_came_first() {
        let life = |idle, absolute| {
            Some(Lifetime {
                idle_ms: idle,
                absolute_ms: absolute,
            })
        };
        let ended = |e: Event| match e {
            Event::Ended { ended, reason, .. } => (ended, reason),
            _ => unreachable!(),
        };
        let m = meta(1_000, 5_000, Some(9_000));
        assert_eq!(
            ended(Event::expired("s", &m, life(None, None), 20_000)),
            (9_000, Reason::Expired)
        );
        assert_eq!(
            ended(Event::expired("s", &m, life(Some(1_000), None), 20_000)),
            (6_000, Reason::Idle)
        );
        assert_eq!(
            ended(Event::expired(
                "s",
                &m,
                life(Some(1_000), Some(4_500)),
                20_000
            )),
            (5_500, Reason::Absolute)
        );
        // Limits per session: before the cookie's deadline it was a limit.
        assert_eq!(
            ended(Event::expired("s", &m, None, 7_000)),
            (7_000, Reason::Idle)
        );
        assert_eq!(
            ended(Event::expired("s", &m, None, 9_500)),
            (9_000, Reason::Expired)
        );
    }

    #[test]
    fn replies_tell_creations_and_logouts() {
        let bulk = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        assert_eq!(
            created(&bulk("+2s"), "s", Some("ada")),
            Some(Event::Created {
                sid: "s".into(),
                owner: "ada".into(),
                created: 100
            })
        );
        assert_eq!(created(&bulk("2s"), "s", None), None);
        assert_eq!(created(&Value::Int(0), "s", None), None);
        assert_eq!(destroyed(&Value::Array(vec![Value::Int(1)])), None);
        let m = format!("{},{},,,ada", time(1), time(2));
        let ended = destroyed(&Value::Array(vec![Value::Int(1), bulk(&m)]));
        assert_eq!(ended.flatten().map(|m| m.created), Some(1));
        let bare = destroyed(&Value::Array(vec![Value::Int(1), bulk("")]));
        assert_eq!(bare, Some(None));
    }
}
