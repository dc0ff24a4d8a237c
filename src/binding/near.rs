//! The napi surface of the near path (see `crate::near`): `lib/near.js`
//! owns the socket; these encode what it writes and read what it receives,
//! on the JS thread.

use napi::bindgen_prelude::*;
use napi::JsString;
use napi_derive::napi;

use super::shared::Shared;
use super::wire::encode;
use super::NativeStore;
use crate::near::{Answered, Sent};

/// Where a near socket connects.
#[napi(object)]
pub struct NearServer {
    pub host: String,
    pub port: u32,
}

/// A batch's values come back in strings of about this many bytes at most
/// (a longer value alone in one): V8 makes a bigger string in its large
/// object space, at a cost per string above the copy's.
const CHUNK: usize = 32 << 10;

/// What bytes read from the near socket (or its timeout) did. The numbers
/// go into a Float64Array JS and Rust share (see `Shared`): whether
/// the socket must close (its other batches went to the writer), how many
/// batches were answered, then per batch its id and number of operations
/// n, and n triples (value length in UTF-16 units or -1 for none,
/// expiresAt, ownerSessions). The strings come back as
/// - null when no batch was answered;
/// - the usual read, one batch without errors: its values' text alone;
/// - else an array: that Float64Array when it was replaced by a bigger one
///   (else null), then per batch its values' text and its errors (null, or
///   [codes, messages] when one failed; see `wire::BatchReply`).
///
/// A value's text is a string, or an array of strings (see `text`).
/// Through napi each array and each element set costs more than numbers
/// written to memory, and one string per batch less than one per value.
fn answer<'env>(
    env: &'env Env,
    numbers: &mut Shared,
    broken: bool,
    answered: Answered,
) -> Result<Option<Unknown<'env>>> {
    let need = 2 + answered.iter().map(|(_, o)| 2 + 3 * o.len()).sum::<usize>();
    let fresh = numbers.fit(env, need)?;
    let nums = numbers.slice();
    nums[0] = f64::from(u8::from(broken));
    nums[1] = answered.len() as f64;
    let mut at = 2;
    let mut replies = Vec::with_capacity(answered.len());
    for (id, outcomes) in answered {
        let r = encode(outcomes);
        let n = r.values.len();
        nums[at] = f64::from(id);
        nums[at + 1] = n as f64;
        at += 2;
        for (i, (&expires_at, &owner_sessions)) in
            r.expires_at.iter().zip(&r.owner_sessions).enumerate()
        {
            nums[at + 3 * i + 1] = expires_at;
            nums[at + 3 * i + 2] = f64::from(owner_sessions);
        }
        let text = text(env, &r.values, |i, units| nums[at + 3 * i] = units)?;
        at += 3 * n;
        let errors = r.error_codes.zip(r.error_messages);
        replies.push((text, errors));
    }
    if fresh.is_none() {
        match replies.as_slice() {
            [] => return Ok(None),
            [(Text::One(one), None)] => return Ok(Some(one.to_unknown())),
            _ => {}
        }
    }
    let mut out = env.create_array((1 + 2 * replies.len()) as u32)?;
    match fresh {
        Some(fresh) => out.set(0, fresh)?,
        None => out.set(0, Null)?,
    }
    for (b, (text, errors)) in replies.into_iter().enumerate() {
        let slot = (1 + 2 * b) as u32;
        match text {
            Text::One(one) => out.set(slot, one)?,
            Text::Chunks(chunks) => out.set(slot, chunks)?,
        }
        match errors {
            Some((codes, messages)) => {
                let mut errors = env.create_array(2)?;
                errors.set(0, codes)?;
                errors.set(1, messages)?;
                out.set(slot + 1, errors)?;
            }
            None => out.set(slot + 1, Null)?,
        }
    }
    Ok(Some(out.to_unknown()))
}

enum Text<'env> {
    One(JsString<'env>),
    Chunks(Array<'env>),
}

/// A batch's values in order, as one string or an array of strings each
/// holding whole values (see `CHUNK`); `len` gets each value's length in
/// UTF-16 units (-1 for none). Each value is scanned once: a text is ASCII,
/// and made as latin1 (a copy, where UTF-8 is decoded), when its length in
/// UTF-16 units is its length in bytes.
fn text<'env>(
    env: &'env Env,
    values: &[Option<String>],
    mut len: impl FnMut(usize, f64),
) -> Result<Text<'env>> {
    // One value (a read one at a time) is its own text.
    if let [Some(value)] = values {
        let units = utf16_len(value);
        len(0, units as f64);
        return Ok(Text::One(js_string(env, value, units)?));
    }
    let mut chunks = Vec::new();
    // Sized once, a chunk at most, and reused for each chunk: grown by
    // pushes, a batch's text was copied again at each doubling.
    let total: usize = values.iter().flatten().map(String::len).sum();
    let mut text = String::with_capacity(total.min(CHUNK));
    let mut units = 0;
    for (i, value) in values.iter().enumerate() {
        let Some(v) = value else {
            len(i, -1.0);
            continue;
        };
        let n = utf16_len(v);
        len(i, n as f64);
        if !text.is_empty() && text.len() + v.len() > CHUNK {
            chunks.push(js_string(env, &text, units)?);
            text.clear();
            units = 0;
        }
        text.push_str(v);
        units += n;
    }
    let last = js_string(env, &text, units)?;
    if chunks.is_empty() {
        return Ok(Text::One(last));
    }
    chunks.push(last);
    let mut array = env.create_array(chunks.len() as u32)?;
    for (i, chunk) in chunks.into_iter().enumerate() {
        array.set(i as u32, chunk)?;
    }
    Ok(Text::Chunks(array))
}

/// `text`, `units` UTF-16 units long.
fn js_string<'env>(env: &'env Env, text: &str, units: usize) -> Result<JsString<'env>> {
    if units == text.len() {
        env.create_string_latin1(text.as_bytes())
    } else {
        env.create_string(text)
    }
}

/// How long `text` is in JS (UTF-16 code units).
fn utf16_len(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().map(char::len_utf16).sum()
    }
}

#[napi]
impl NativeStore {
    /// Where a near socket connects, or null when this store's server is
    /// not one plain server (TLS, Sentinel, a cluster, the engine), its
    /// values are sealed (sealing stays off the JS thread), or it keeps to
    /// one connection (`singleConnection`).
    #[napi]
    pub fn near_server(&self) -> Option<NearServer> {
        let link = self.inner.link();
        if link.options.single_connection || self.inner.context().seal.is_some() {
            return None;
        }
        link.plain().map(|p| NearServer {
            host: p.host,
            port: u32::from(p.port),
        })
    }

    /// A near socket connected: the bytes it sends first.
    #[napi]
    pub fn near_open(&self) -> Buffer {
        self.near.open().into()
    }

    /// The near socket closed: its batches go to the writer.
    #[napi]
    pub fn near_lost(&self, env: Env) -> Result<()> {
        let sent = self.near.lost();
        self.resend(&env, sent)
    }

    /// A near batch outlived the command timeout: the socket's batches fail.
    #[napi]
    pub fn near_timed_out<'env>(&self, env: &'env Env) -> Result<Option<Unknown<'env>>> {
        let answered = self.near.timed_out();
        answer(env, &mut self.near_numbers.lock().unwrap(), false, answered)
    }
}

impl NativeStore {
    /// Bytes the near socket read (through `slots::near_read`): the
    /// batches they complete.
    pub(super) fn near_read<'env>(
        &self,
        env: &'env Env,
        data: &[u8],
    ) -> Result<Option<Unknown<'env>>> {
        let fed = self.near.feed(data);
        let broken = fed.broken.is_some();
        if let Some(sent) = fed.broken {
            self.resend(env, sent)?;
        }
        answer(
            env,
            &mut self.near_numbers.lock().unwrap(),
            broken,
            fed.answered,
        )
    }

    /// Hands near batches to the writer, in order; each counts as answered
    /// (see `order::Gate`) once the writer has its outcomes.
    fn resend(&self, env: &Env, sent: Vec<Sent>) -> Result<()> {
        for s in sent {
            let gate = self.inner.gate().clone();
            let reply = self.reply_to(env, s.id, s.ops.len(), move || gate.answer())?;
            self.inner.resend(s.ops, reply, s.deadline);
        }
        Ok(())
    }
}
