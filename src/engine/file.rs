//! The file engine's storage: a redb database of the rows the store wrote,
//! one per string, per hash field and per sorted-set member (a million-
//! member index costs a row per change, not a rewrite), and one per
//! expiry. Reads are served from memory, loaded at open; each call's
//! changes are one write transaction, committed with fsync (redb's default
//! durability) before the call returns. redb also locks the file, so a
//! second process is refused.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

use redb::backends::FileBackend;
use redb::{Builder, Database, ReadableDatabase, TableDefinition};

use super::data::{Data, Hash, Kind, Zset};
use super::keyspace::{Change, Keyspace};
use crate::error::{ErrorKind, StoreError, StoreResult};

const STRINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("strings");
const FIELDS: TableDefinition<(&[u8], &[u8]), &[u8]> = TableDefinition::new("hash_fields");
const MEMBERS: TableDefinition<(&[u8], &[u8]), f64> = TableDefinition::new("zset_members");
const EXPIRIES: TableDefinition<&[u8], i64> = TableDefinition::new("expiries");

pub struct File {
    db: Database,
    path: PathBuf,
}

thread_local! {
    /// Set while redb runs on this thread: its panics are caught and
    /// reported as a damaged file, so the panic hook must not print them.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs redb's `f`, a panic (what redb does on some damaged pages) caught
/// as `redb::Error::Corrupted`, without the panic hook's message and
/// backtrace on stderr.
fn guarded<T>(f: impl FnOnce() -> Result<T, redb::Error>) -> Result<T, redb::Error> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let loud = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                loud(info)
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let caught = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    caught.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(redb::Error::Corrupted(format!("redb panicked: {why}")))
    })
}

/// Opens or creates the file itself, never what a symbolic link there
/// points to (so a planted link cannot send sessions elsewhere), readable
/// by its owner only when created.
fn open_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

/// Whether a redb error means the file's content is damaged (rather
/// than the disk or the system failing).
fn damaged(e: &redb::Error) -> bool {
    match e {
        redb::Error::Corrupted(_) => true,
        redb::Error::Io(e) => e.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

impl File {
    /// Opens (or creates) the database at `path`, a canonical path.
    pub fn open(path: &Path) -> StoreResult<File> {
        let file = open_file(path).map_err(|e| {
            let why = if path.is_symlink() {
                "it is a symbolic link: give the path of the file itself".to_owned()
            } else {
                e.to_string()
            };
            StoreError::new(
                ErrorKind::Unavailable,
                format!("cannot open {} as a session file: {why}", path.display()),
            )
        })?;
        let db = guarded(|| {
            let backend = FileBackend::new(file)?;
            Ok(Builder::new().create_with_backend(backend)?)
        });
        let db = db.map_err(|e| match e {
            redb::Error::DatabaseAlreadyOpen => StoreError::new(
                ErrorKind::Unavailable,
                format!(
                    "{} is open in another process: only one process may use a file:// store \
                     (several processes need Redis)",
                    path.display()
                ),
            ),
            e if damaged(&e) => corrupt(path, &e),
            e => StoreError::new(
                ErrorKind::Unavailable,
                format!("cannot open {} as a session file: {e}", path.display()),
            ),
        })?;
        let file = File {
            db,
            path: path.to_owned(),
        };
        // Every table exists from the start, so a read never finds one missing.
        file.write(&[]).map_err(|e| file.failed(&e))?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A storage failure as the store reports it.
    pub fn failed(&self, e: &redb::Error) -> StoreError {
        if damaged(e) {
            return corrupt(&self.path, e);
        }
        StoreError::new(
            ErrorKind::Unavailable,
            format!("session file {}: {e}", self.path.display()),
        )
    }

    /// Everything in the file, as a keyspace that logs later changes.
    pub fn load(&self) -> Result<Keyspace, redb::Error> {
        guarded(|| self.read_all())
    }

    fn read_all(&self) -> Result<Keyspace, redb::Error> {
        let txn = self.db.begin_read()?;
        let mut expiries = std::collections::HashMap::new();
        for row in txn.open_table(EXPIRIES)?.range::<&[u8]>(..)? {
            let (key, at) = row?;
            expiries.insert(key.value().to_vec(), at.value());
        }
        let mut ks = Keyspace::new(true);
        for row in txn.open_table(STRINGS)?.range::<&[u8]>(..)? {
            let (key, value) = row?;
            let key = key.value();
            let expires = expiries.get(key).copied();
            ks.restore(key, Data::Str(value.value().to_vec()), expires);
        }
        // Rows come in key order, so each key's fields are consecutive.
        let mut hash: Option<(Vec<u8>, Hash)> = None;
        for row in txn.open_table(FIELDS)?.range::<(&[u8], &[u8])>(..)? {
            let (k, value) = row?;
            let (key, field) = k.value();
            if hash.as_ref().is_none_or(|(k, _)| k.as_slice() != key) {
                if let Some((k, h)) = hash.take() {
                    ks.restore(&k, Data::Hash(h), expiries.get(&k).copied());
                }
                hash = Some((key.to_vec(), Hash::default()));
            }
            if let Some((_, h)) = &mut hash {
                h.set(field, value.value());
            }
        }
        if let Some((k, h)) = hash {
            ks.restore(&k, Data::Hash(h), expiries.get(&k).copied());
        }
        type Members = Vec<(Vec<u8>, f64)>;
        let mut zset: Option<(Vec<u8>, Members)> = None;
        for row in txn.open_table(MEMBERS)?.range::<(&[u8], &[u8])>(..)? {
            let (k, score) = row?;
            let (key, member) = k.value();
            if zset.as_ref().is_none_or(|(k, _)| k.as_slice() != key) {
                if let Some((k, z)) = zset.take() {
                    ks.restore(&k, Data::Zset(Zset::loaded(z)), expiries.get(&k).copied());
                }
                zset = Some((key.to_vec(), Vec::new()));
            }
            if let Some((_, z)) = &mut zset {
                z.push((member.to_vec(), score.value()));
            }
        }
        if let Some((k, z)) = zset {
            ks.restore(&k, Data::Zset(Zset::loaded(z)), expiries.get(&k).copied());
        }
        Ok(ks)
    }

    /// Writes `changes`, in order, as one transaction; durable on return.
    pub fn write(&self, changes: &[Change]) -> Result<(), redb::Error> {
        guarded(|| self.write_all(changes))
    }

    fn write_all(&self, changes: &[Change]) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        {
            let mut strings = txn.open_table(STRINGS)?;
            let mut fields = txn.open_table(FIELDS)?;
            let mut members = txn.open_table(MEMBERS)?;
            let mut expiries = txn.open_table(EXPIRIES)?;
            for change in changes {
                match change {
                    Change::Str(key, value) => {
                        strings.insert(&**key, value.as_slice())?;
                    }
                    Change::Field(key, field, Some(value)) => {
                        fields.insert((&**key, &**field), value.as_slice())?;
                    }
                    Change::Field(key, field, None) => {
                        fields.remove((&**key, &**field))?;
                    }
                    Change::Member(key, member, Some(score)) => {
                        members.insert((&**key, &**member), score)?;
                    }
                    Change::Member(key, member, None) => {
                        members.remove((&**key, &**member))?;
                    }
                    Change::Expiry(key, Some(at)) => {
                        expiries.insert(&**key, at)?;
                    }
                    Change::Expiry(key, None) => {
                        expiries.remove(&**key)?;
                    }
                    Change::Drop(key, kind) => {
                        expiries.remove(&**key)?;
                        // All of a key's rows: from (key, "") up to the next
                        // possible key, key + [0].
                        let mut next = key.to_vec();
                        next.push(0);
                        let rows = (&**key, &[][..])..(next.as_slice(), &[][..]);
                        match kind {
                            Kind::Str => {
                                strings.remove(&**key)?;
                            }
                            Kind::Hash => fields.retain_in(rows, |_, _| false)?,
                            Kind::Zset => members.retain_in(rows, |_, _| false)?,
                        }
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// A damaged file, as one error naming it and what to do.
fn corrupt(path: &Path, e: &redb::Error) -> StoreError {
    StoreError::new(
        ErrorKind::FileCorrupt,
        format!(
            "session file {} is damaged ({e}): restore it from a backup, or move it away \
             to start with no sessions",
            path.display()
        ),
    )
}
