//! Device data (`captureDevice`: user agent and IP of a session's login,
//! its last IP), kept beside the session in a hash of its shard's slot
//! (`Keys::devices`), never in the session's value: a `get` reads no more.
//! Sealed like session values when the store encrypts, under a name made
//! of the hash and the sid, so a value cannot be moved to another session.
//! Removed with the session: `DESTROY`, `RECLAIM`, `ops::encode::delete`.

use redis::{Pipeline, Value};

use crate::ops::Context;
use crate::session::scripts;

/// What a sealed device value is bound to: its hash and its field.
fn place(ctx: &Context, sid: &str) -> String {
    format!("{}\u{0}{sid}", ctx.keys.devices(sid))
}

/// The `DEVICE` script writing `text` for `sid`: one reply, 1 when written
/// (the session and its meta exist), else 0.
pub fn append_write(pipe: &mut Pipeline, ctx: &Context, sid: &str, text: &str) {
    pipe.cmd("EVALSHA")
        .arg(&scripts::DEVICE.hash)
        .arg(3)
        .arg(ctx.keys.session(sid))
        .arg(ctx.keys.shard(sid))
        .arg(ctx.keys.devices(sid))
        .arg(sid)
        .arg(&*ctx.stored(&place(ctx, sid), text));
}

/// Reads back a device value: `None` when there is none, or when it does
/// not open (tampered, moved, or under a key no longer configured): device
/// data is a courtesy to the user, never a reason to fail a listing, and
/// an error would name the session.
pub fn open(ctx: &Context, sid: &str, reply: Value) -> Option<String> {
    ctx.text(&place(ctx, sid), reply).ok().flatten()
}

/// The `HGET` of a session's device value.
pub fn append_read(pipe: &mut Pipeline, ctx: &Context, sid: &str) {
    pipe.cmd("HGET").arg(ctx.keys.devices(sid)).arg(sid);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::expiry::Lifetime;
    use crate::session::keys::Keys;
    use crate::session::seal::Keyring;
    use std::sync::Arc;

    fn ctx(seal: Option<Arc<Keyring>>) -> Context {
        Context {
            keys: Keys::new("sess:"),
            lifetime: Lifetime::default(),
            count_logins: false,
            session_limits: false,
            wait_for_replicas: false,
            seal,
            merge: false,
            read_expiry: false,
            events: Default::default(),
            ended: Default::default(),
            repairs: Default::default(),
        }
    }

    fn written(ctx: &Context, sid: &str, text: &str) -> Vec<u8> {
        let mut pipe = redis::pipe();
        append_write(&mut pipe, ctx, sid, text);
        let cmd = pipe.cmd_iter().next().unwrap().clone();
        match cmd.args_iter().last() {
            Some(redis::Arg::Simple(b)) => b.to_vec(),
            _ => panic!("no value"),
        }
    }

    #[test]
    fn sealed_device_values_hide_their_text_and_open_only_for_their_session() {
        let ring = Keyring::new(vec![("k".into(), vec![7; 32])], false).unwrap();
        let ctx = ctx(Some(Arc::new(ring)));
        let text = r#"{"userAgent":"Firefox","ip":"10.0.0.1","lastIp":"10.0.0.1"}"#;
        let stored = written(&ctx, "a", text);
        assert!(!String::from_utf8_lossy(&stored).contains("Firefox"));
        let reply = || Value::BulkString(stored.clone());
        assert_eq!(open(&ctx, "a", reply()).as_deref(), Some(text));
        // Moved to another session, it does not open.
        assert_eq!(open(&ctx, "b", reply()), None);
        assert_eq!(open(&ctx, "a", Value::Nil), None);
    }

    #[test]
    fn plain_device_values_are_the_text() {
        let ctx = ctx(None);
        assert_eq!(written(&ctx, "a", "{}"), b"{}");
        let reply = Value::BulkString(b"{}".to_vec());
        assert_eq!(open(&ctx, "a", reply).as_deref(), Some("{}"));
    }
}
