//! Encryption at rest (the `encryption` option): every session value is
//! sealed with AES-256-GCM before it leaves for the backend and opened
//! when it comes back, on the writer's thread, never on the JS thread.
//!
//! The envelope (version 1), all binary:
//!
//! ```text
//! 0x00 | 0x01 | n | key id (n bytes) | nonce (12) | ciphertext | tag (16)
//! ```
//!
//! The leading 0x00 is never the first byte of a serializer's text, so a
//! value is told from plaintext without trying to decrypt it. The nonce is
//! random per write (2^32 writes per key keep the collision odds below
//! 2^-32, NIST's bound). The associated data is the header (version and
//! key id) followed by the value's Redis key (prefix + sid): a value copied
//! to another session's key, or relabelled with another key id, does not
//! open.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{ErrorKind, StoreError, StoreResult};

const MARK: u8 = 0x00;
const VERSION: u8 = 0x01;
const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;
/// Key ids are stored in one length byte.
pub const MAX_ID_LEN: usize = 255;

struct Key {
    id: String,
    key: LessSafeKey,
}

/// The configured keys: the first seals, each opens what carries its id.
pub struct Keyring {
    keys: Vec<Key>,
    allow_plaintext: bool,
    random: SystemRandom,
}

/// How a stored value is sealed, for `reencrypt()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// Under the first key: nothing to do.
    Current,
    /// Under another key, or plaintext: to rewrite under the first key;
    /// the text, opened.
    Stale(String),
}

/// Key material never reaches a message: only ids are shown.
impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring")
            .field("ids", &ids)
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

fn invalid(message: String) -> StoreError {
    StoreError::new(ErrorKind::InvalidArgument, message)
}

impl Keyring {
    /// `keys`: (id, 32 key bytes), the first sealing. The JS face checks
    /// them first with the option's names; this is the last line.
    pub fn new(keys: Vec<(String, Vec<u8>)>, allow_plaintext: bool) -> StoreResult<Keyring> {
        if keys.is_empty() {
            return Err(invalid("encryption.keys is empty".into()));
        }
        let mut ring = Vec::with_capacity(keys.len());
        for (id, bytes) in keys {
            if id.is_empty() || id.len() > MAX_ID_LEN {
                return Err(invalid(format!(
                    "an encryption key id must be 1 to {MAX_ID_LEN} bytes"
                )));
            }
            if ring.iter().any(|k: &Key| k.id == id) {
                return Err(invalid(format!(
                    "encryption key id \"{id}\" is given twice"
                )));
            }
            if bytes.len() != KEY_LEN {
                return Err(invalid(format!(
                    "encryption key \"{id}\" must be {KEY_LEN} bytes, got {}",
                    bytes.len()
                )));
            }
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| invalid(format!("encryption key \"{id}\" is refused")))?;
            ring.push(Key {
                id,
                key: LessSafeKey::new(unbound),
            });
        }
        Ok(Keyring {
            keys: ring,
            allow_plaintext,
            random: SystemRandom::new(),
        })
    }

    /// The envelope of `text` under the first key, for the value at `place`.
    pub fn seal(&self, place: &str, text: &[u8]) -> Vec<u8> {
        let key = &self.keys[0];
        let header = 3 + key.id.len();
        let mut out = Vec::with_capacity(header + NONCE_LEN + text.len() + TAG_LEN);
        out.extend_from_slice(&[MARK, VERSION, key.id.len() as u8]);
        out.extend_from_slice(key.id.as_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        // The system's CSPRNG does not fail on the platforms we build for;
        // if it ever did, no value could be sealed safely at all.
        self.random
            .fill(&mut nonce)
            .expect("the system random number generator failed");
        out.extend_from_slice(&nonce);
        out.extend_from_slice(text);
        let aad = associated(&out[..header], place);
        let tag = key
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[header + NONCE_LEN..],
            )
            .expect("AES-GCM seals any length a session can have");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// The text of the value stored at `place`. Nothing is changed on
    /// failure: the error names the key (and the key id, when that is
    /// what is missing).
    pub fn open(&self, place: &str, mut stored: Vec<u8>) -> StoreResult<String> {
        let corrupt = |what: &str| {
            StoreError::new(
                ErrorKind::Corrupt,
                format!("value of {} {what}", crate::session::keys::named(place)),
            )
        };
        if stored.first() != Some(&MARK) {
            if !self.allow_plaintext {
                return Err(corrupt(
                    "is not encrypted, and plaintext is refused (encryption.allowPlaintext is off)",
                ));
            }
            return String::from_utf8(stored).map_err(|_| corrupt("is not UTF-8 text"));
        }
        let (key, header) = self.envelope(&stored).map_err(|e| match e {
            Envelope::Version(v) => corrupt(&format!("has an unknown envelope version ({v})")),
            Envelope::Truncated => corrupt("is a truncated encrypted value"),
            Envelope::Unknown(id) => StoreError::new(
                ErrorKind::UnknownKey,
                format!(
                    "value of {} is encrypted under key id \"{id}\", which is not in encryption.keys: add that key back (or reencrypt() before removing a key)",
                    crate::session::keys::named(place)
                ),
            ),
        })?;
        let nonce = Nonce::try_assume_unique_for_key(&stored[header..header + NONCE_LEN])
            .map_err(|_| corrupt("is a truncated encrypted value"))?;
        let aad = associated(&stored[..header], place);
        let len = key
            .key
            .open_in_place(nonce, Aad::from(aad), &mut stored[header + NONCE_LEN..])
            .map_err(|_| {
                corrupt("fails authentication: it was changed, cut, or moved from another session")
            })?
            .len();
        stored.truncate(header + NONCE_LEN + len);
        stored.drain(..header + NONCE_LEN);
        String::from_utf8(stored).map_err(|_| corrupt("is not UTF-8 text once decrypted"))
    }

    /// Whether a stored value is under the first key, with its text when
    /// it is not; an envelope that cannot be opened is an error, as for
    /// `open`.
    pub fn sealed(&self, place: &str, stored: &[u8]) -> StoreResult<Sealed> {
        if stored.first() == Some(&MARK) {
            if let Ok((key, _)) = self.envelope(stored) {
                if std::ptr::eq(key, &self.keys[0]) {
                    return Ok(Sealed::Current);
                }
            }
        }
        // Anything else must open to be rewritten.
        self.open(place, stored.to_vec()).map(Sealed::Stale)
    }

    /// The key an envelope names and the header's length.
    fn envelope(&self, stored: &[u8]) -> Result<(&Key, usize), Envelope> {
        let version = stored.get(1).copied().ok_or(Envelope::Truncated)?;
        if version != VERSION {
            return Err(Envelope::Version(version));
        }
        let n = *stored.get(2).ok_or(Envelope::Truncated)? as usize;
        let header = 3 + n;
        if stored.len() < header + NONCE_LEN + TAG_LEN {
            return Err(Envelope::Truncated);
        }
        let id = &stored[3..header];
        match self.keys.iter().find(|k| k.id.as_bytes() == id) {
            Some(key) => Ok((key, header)),
            None => Err(Envelope::Unknown(String::from_utf8_lossy(id).into_owned())),
        }
    }
}

enum Envelope {
    Version(u8),
    Truncated,
    Unknown(String),
}

fn associated(header: &[u8], place: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + place.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(place.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[&str], plain: bool) -> Keyring {
        let keys = ids
            .iter()
            .map(|id| (id.to_string(), vec![id.as_bytes()[0]; KEY_LEN]))
            .collect();
        Keyring::new(keys, plain).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_at_its_place_only() {
        let r = ring(&["a", "b"], false);
        let sealed = r.seal("sess:1", b"{\"n\":1}");
        assert_eq!(&sealed[..4], &[0, 1, 1, b'a']);
        assert!(!sealed.windows(5).any(|w| w == b"\"n\":1"));
        assert_eq!(r.open("sess:1", sealed.clone()).unwrap(), "{\"n\":1}");
        let moved = r.open("sess:2", sealed).unwrap_err();
        assert_eq!(moved.kind, ErrorKind::Corrupt);
        assert!(
            moved
                .message
                .contains(&crate::session::keys::handle("sess:2"))
                && !moved.message.contains("sess:2"),
            "{}",
            moved.message
        );
    }

    #[test]
    fn two_seals_of_one_text_differ() {
        let r = ring(&["a"], false);
        assert_ne!(r.seal("k", b"same"), r.seal("k", b"same"));
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let r = ring(&["a"], false);
        let sealed = r.seal("k", b"{\"user\":\"ada\"}");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(r.open("k", bad).is_err(), "byte {i}");
        }
        for len in 0..sealed.len() {
            assert!(r.open("k", sealed[..len].to_vec()).is_err(), "length {len}");
        }
    }

    #[test]
    fn older_keys_open_and_unknown_ids_are_named() {
        let old = ring(&["old"], false);
        let sealed = old.seal("k", b"{}");
        let rotated = ring(&["new", "old"], false);
        assert_eq!(rotated.open("k", sealed.clone()).unwrap(), "{}");
        assert_eq!(
            rotated.sealed("k", &sealed).unwrap(),
            Sealed::Stale("{}".into())
        );
        assert_eq!(
            rotated.sealed("k", &rotated.seal("k", b"{}")).unwrap(),
            Sealed::Current
        );
        let err = ring(&["new"], false).open("k", sealed).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UnknownKey);
        assert!(err.message.contains("\"old\""), "{}", err.message);
    }

    #[test]
    fn a_relabelled_key_id_does_not_open() {
        // Same key bytes under two ids: the id is bound too.
        let keys = vec![
            ("x".to_string(), vec![7; KEY_LEN]),
            ("y".to_string(), vec![7; KEY_LEN]),
        ];
        let r = Keyring::new(keys, false).unwrap();
        let mut sealed = r.seal("k", b"{}");
        sealed[3] = b'y';
        assert_eq!(r.open("k", sealed).unwrap_err().kind, ErrorKind::Corrupt);
    }

    #[test]
    fn plaintext_only_when_allowed() {
        let refused = ring(&["a"], false).open("k", b"{}".to_vec()).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Corrupt);
        assert!(refused.message.contains("allowPlaintext"));
        let allowed = ring(&["a"], true);
        assert_eq!(allowed.open("k", b"{}".to_vec()).unwrap(), "{}");
        assert_eq!(
            allowed.sealed("k", b"{}").unwrap(),
            Sealed::Stale("{}".into())
        );
    }

    #[test]
    fn bad_keys_are_refused_without_showing_them() {
        for keys in [
            vec![],
            vec![("a".to_string(), vec![1; 31])],
            vec![(String::new(), vec![1; 32])],
            vec![
                ("a".to_string(), vec![1; 32]),
                ("a".to_string(), vec![2; 32]),
            ],
        ] {
            let err = Keyring::new(keys, false).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument);
            assert!(!err.message.contains("\u{1}"));
        }
        let debug = format!("{:?}", ring(&["a"], false));
        assert!(debug.contains("\"a\"") && !debug.contains("97"), "{debug}");
    }
}
