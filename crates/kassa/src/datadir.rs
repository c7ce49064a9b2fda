//! The data dir (`--data-dir`): made owner-only, and locked by the one `kassa serve` that uses
//! it.
//!
//! - [`prepare`] (every command that opens the database): creates the dir with mode 0700,
//!   takes group and other access away from it and from every file in it that has some (files
//!   of an older Kassa were 0644), and creates a missing SQLite file with mode 0600 before
//!   SQLite opens it, so its `-wal` and `-shm` files, which SQLite makes with the database
//!   file's mode, are 0600 as well. A SQLite file outside the data dir gets the same care (its
//!   directory is left alone). On other systems than Unix there are no modes to change.
//! - [`DataDirLock`] (`kassa serve` alone): an OS lock on `kassa.lock` in the dir, held for the
//!   whole life of the server. A second server on the same dir would treat the first one's
//!   sandbox invoices and cashier session as its own; it refuses to start instead, naming the
//!   holder (pid, listen address, since when), which the holder writes into the file. The OS
//!   drops the lock when the process ends, however it ends (kill -9 included), so a stale file
//!   never blocks a start. Administration commands take no lock: they work beside a server.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;

/// The lock file's name in the data dir.
pub const LOCK_FILE: &str = "kassa.lock";
/// The data dir's own id, made once: the prefix of the worker ids of every `kassa serve` that
/// runs on it, so that a server holding the lock knows which leases its dead predecessors held.
pub const NODE_FILE: &str = "node-id";

/// Why the data dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process holds the lock.
    #[error(
        "the data dir {} is in use by another `kassa serve` ({holder}); stop that one first, \
         or give this one its own --data-dir (processes sharing one PostgreSQL each need their \
         own data dir with the same master key)",
        dir.display()
    )]
    Locked { dir: PathBuf, holder: Holder },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError {
    let path = path.to_owned();
    move |source| DataDirError::Io { what, path, source }
}

/// Who holds the lock, as the holder wrote it into the lock file (each part may be missing:
/// the holder writes its address once it has bound it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub listen: Option<String>,
    /// When the holder took the lock, as `2026-11-29T09:00:00Z`.
    pub since: Option<String>,
}

impl Holder {
    fn parse(text: &str) -> Holder {
        let mut holder = Holder::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => holder.pid = v.trim().parse().ok(),
                Some(("listen", v)) => holder.listen = Some(v.trim().to_owned()),
                Some(("since", v)) => holder.since = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        holder
    }

    fn render(&self) -> String {
        let mut text = String::new();
        if let Some(pid) = self.pid {
            text.push_str(&format!("pid={pid}\n"));
        }
        if let Some(listen) = &self.listen {
            text.push_str(&format!("listen={listen}\n"));
        }
        if let Some(since) = &self.since {
            text.push_str(&format!("since={since}\n"));
        }
        text
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid}")?,
            None => write!(f, "pid unknown")?,
        }
        match &self.listen {
            Some(listen) => write!(f, ", listening on {listen}")?,
            None => write!(f, ", not listening yet")?,
        }
        if let Some(since) = &self.since {
            write!(f, ", since {since}")?;
        }
        Ok(())
    }
}

/// The lock on a data dir, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    holder: Holder,
}

impl DataDirLock {
    /// Takes the lock of `dir` (which must exist) and writes this process into it, or says
    /// who holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, DataDirError> {
        let path = dir.join(LOCK_FILE);
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options
            .open(&path)
            .map_err(io_error("cannot open the lock file", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder may be rewriting it this instant: whatever was read is shown.
                let _ = file.read_to_string(&mut text);
                return Err(DataDirError::Locked {
                    dir: dir.to_owned(),
                    holder: Holder::parse(&text),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_error("cannot lock", &path)(e));
            }
        }
        let mut lock = DataDirLock {
            file,
            holder: Holder {
                pid: Some(std::process::id()),
                listen: None,
                since: Some(crate::api::rfc3339_ms(unix_ms_now())),
            },
        };
        lock.write()
            .map_err(io_error("cannot write the lock file", &path))?;
        Ok(lock)
    }

    /// Adds the address this server listens on to the lock file.
    pub fn record_listen(&mut self, addr: SocketAddr) -> std::io::Result<()> {
        self.holder.listen = Some(addr.to_string());
        self.write()
    }

    /// What this process wrote into the lock file.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    fn write(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(self.holder.render().as_bytes())
    }
}

/// Creates the data dir and makes it, its files and the SQLite database owner-only (see the
/// module docs).
pub fn prepare(config: &Config) -> Result<(), DataDirError> {
    let dir = &config.data_dir;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io_error("cannot create the data dir", dir))?;
    owner_only(dir)?;
    let entries = std::fs::read_dir(dir).map_err(io_error("cannot read the data dir", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_error("cannot read the data dir", dir))?;
        owner_only(&entry.path())?;
    }
    if let Some(database) = sqlite_path(&config.database_url) {
        if !database.exists() {
            create_owner_only(&database)?;
        }
        // Outside the data dir these were not covered above.
        for companion in ["", "-wal", "-shm", "-journal"] {
            let mut name = database.clone().into_os_string();
            name.push(companion);
            owner_only(Path::new(&name))?;
        }
    }
    Ok(())
}

/// The file of a `sqlite://PATH` URL.
fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    database_url
        .strip_prefix("sqlite://")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// The id of the data dir `dir` (12 hex digits in [`NODE_FILE`]), made on first use.
pub fn node_id(dir: &Path) -> Result<String, DataDirError> {
    let path = dir.join(NODE_FILE);
    let valid = |text: &str| {
        let id = text.trim();
        (id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
    };
    if let Some(id) = std::fs::read_to_string(&path)
        .ok()
        .as_deref()
        .and_then(valid)
    {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .map_err(io_error("cannot write the data dir's id", &path))?;
    std::io::Write::write_all(&mut file, id.as_bytes())
        .map_err(io_error("cannot write the data dir's id", &path))?;
    Ok(id)
}

/// Creates an empty file with mode 0600 (SQLite takes an empty file as a new database); one
/// that appeared meanwhile is left as it is.
fn create_owner_only(path: &Path) -> Result<(), DataDirError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A missing parent directory is for SQLite to report, as it did before.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("cannot create the database file", path)(e)),
    }
}

/// Takes group and other access away from the file or directory at `path`, if it has some;
/// the owner's bits stay. Symbolic links and missing paths are left alone.
#[cfg(unix)]
fn owner_only(path: &Path) -> Result<(), DataDirError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("cannot read the mode of", path)(e)),
    };
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let tightened = mode & 0o700;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(tightened))
        .map_err(io_error("cannot make owner-only", path))?;
    tracing::info!(
        path = %path.display(),
        was = format!("{mode:04o}"),
        now = format!("{tightened:04o}"),
        "made owner-only"
    );
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_path: &Path) -> Result<(), DataDirError> {
    Ok(())
}

fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = DataDirLock::acquire(dir.path()).expect("first lock");
        first
            .record_listen("127.0.0.1:8080".parse().expect("addr"))
            .expect("recorded");
        let Err(DataDirError::Locked { holder, .. }) = DataDirLock::acquire(dir.path()) else {
            panic!("a second lock on the same dir is refused");
        };
        assert_eq!(&holder, first.holder());
        assert_eq!(holder.pid, Some(std::process::id()));
        assert_eq!(holder.listen.as_deref(), Some("127.0.0.1:8080"));
        let shown = holder.to_string();
        assert!(shown.contains("listening on 127.0.0.1:8080"), "{shown}");
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once dropped");
    }

    #[test]
    fn holders_round_trip_and_tolerate_partial_files() {
        let full = Holder {
            pid: Some(42),
            listen: Some("[::1]:80".into()),
            since: Some("2026-11-29T09:00:00Z".into()),
        };
        assert_eq!(Holder::parse(&full.render()), full);
        assert_eq!(Holder::parse(""), Holder::default());
        assert_eq!(Holder::parse("pid=x\ngarbage"), Holder::default());
        assert_eq!(
            Holder::default().to_string(),
            "pid unknown, not listening yet"
        );
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///tmp/k.db"),
            Some(PathBuf::from("/tmp/k.db"))
        );
        assert_eq!(sqlite_path("sqlite://"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }
}
