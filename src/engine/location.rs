//! Where an engine's data lives, from its URL.

use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, StoreError, StoreResult};

/// What `Engine::open` shares: a named memory store or a file, by
/// canonical path. A plain `memory://` is shared with no one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Shared {
    Memory(String),
    File(PathBuf),
}

pub enum Location {
    Private,
    Shared(Shared),
}

fn invalid(url: &str, why: &str) -> StoreError {
    StoreError::new(
        ErrorKind::InvalidArgument,
        format!("invalid store URL \"{url}\": {why}"),
    )
}

/// `memory://`, `memory://<name>` or `file:///absolute/path` (with %XX
/// escapes, as in any URL).
pub fn parse(url: &str) -> StoreResult<Location> {
    if let Some(name) = url.strip_prefix("memory://") {
        return Ok(match name {
            "" => Location::Private,
            name => Location::Shared(Shared::Memory(name.to_owned())),
        });
    }
    let Some(path) = url.strip_prefix("file://") else {
        return Err(invalid(
            url,
            "the embedded engine takes memory://, memory://<name> or file:///absolute/path",
        ));
    };
    if !path.starts_with('/') {
        return Err(invalid(
            url,
            "a file URL names an absolute path on this machine: file:///absolute/path",
        ));
    }
    let path = PathBuf::from(decode(path).ok_or_else(|| invalid(url, "bad %-escape"))?);
    canonical(&path)
        .map(|p| Location::Shared(Shared::File(p)))
        .map_err(|why| invalid(url, &why))
}

/// Undoes %XX escapes; None for a malformed one or a result that is not
/// UTF-8.
fn decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file's canonical path (links in its directory resolved), whether
/// or not it exists yet: its directory must. The file itself must not be
/// a symbolic link, dangling or not: the engine does not follow one (see
/// `file::open_file`), and says so here, before anything is opened.
fn canonical(path: &Path) -> Result<PathBuf, String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_symlink() => {
            return Err(format!(
                "{} is a symbolic link, which a file:// store does not follow: \
                 give the path of the file itself",
                path.display()
            ))
        }
        Ok(m) if m.is_dir() => {
            return Err(format!("{} is a directory, not a file", path.display()))
        }
        _ => {}
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("{} names no file", path.display()));
    };
    std::fs::canonicalize(dir)
        .map(|dir| dir.join(name))
        .map_err(|e| format!("directory {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(url: &str) -> Shared {
        match parse(url) {
            Ok(Location::Shared(s)) => s,
            _ => panic!("{url} is not shared"),
        }
    }

    #[test]
    fn urls_name_a_place() {
        assert!(matches!(parse("memory://"), Ok(Location::Private)));
        assert_eq!(shared("memory://app"), Shared::Memory("app".into()));
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let url = format!("file://{}/a%20b.db", dir.display());
        assert_eq!(shared(&url), Shared::File(dir.join("a b.db")));
        for bad in [
            "redis://localhost",
            "file://relative/x.db",
            "file:///no/such/dir/x.db",
            "file:///tmp",
            "file:///tmp/%zz",
        ] {
            let e = parse(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.kind, ErrorKind::InvalidArgument);
            assert!(e.message.contains(bad), "{}", e.message);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_refused_dangling_or_not() {
        let dir = std::env::temp_dir().join(format!("location-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (file, link, dangling) = (dir.join("a.db"), dir.join("l.db"), dir.join("d.db"));
        std::fs::write(&file, b"").unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere.db"), &dangling).unwrap();
        for path in [&link, &dangling] {
            let e = parse(&format!("file://{}", path.display())).err().unwrap();
            assert_eq!(e.kind, ErrorKind::InvalidArgument);
            assert!(e.message.contains("symbolic link"), "{}", e.message);
        }
        assert!(!dir.join("nowhere.db").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
