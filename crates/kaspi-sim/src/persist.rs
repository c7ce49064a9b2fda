//! The simulator's state in a file, so that a restart changes nothing a client sees: what
//! Kaspi remembers (operations with their statuses, amounts, comments and refunds; sessions
//! with their device keys and secrets; cashiers; the id counter and generator; the last
//! `TransactionDate`; the sim clock's offset; the minimum app build and blocked accounts) is
//! written to one JSON file and read back at start (fields added later read as their defaults
//! from older files). Login processes, SMS codes, rate windows, faults and scripted login
//! refusals are not kept: a restart ends
//! them as it would end a connection. The agenda of time-driven changes is not written
//! either: it is rebuilt from the operations it derives from (their payer scripts and expiry
//! times), so the two cannot disagree.
//!
//! The file holds session secrets: it is written owner-only (0600 on Unix) and atomically (a
//! temporary file in the same directory, flushed, then renamed over the old one), so a crash
//! leaves the old state or the new one, never half of one. Errors name the file and where it
//! is wrong, never a value from it.
//!
//! [`StateSaver`] writes it in the background: a change marks the state ([`State::touch`])
//! and wakes the saver, which waits a short delay so a burst of changes makes one write
//! (longer after a slow write), copies the state under the lock (cheap: operations are shared
//! `Arc`s) and serializes and writes it on a blocking thread, away from request handling.
//! Stopping it writes what is left.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kaspi::Phone;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::state::{CashierSetup, Operation, Session, State};
use crate::{SimConfig, Simulator};

/// The version of the file's format; a file of another version is refused, not guessed at.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// How long the saver lets changes gather before it writes them.
pub const DEFAULT_SAVE_DELAY: Duration = Duration::from_millis(150);

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read the Kaspi simulator state {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a state this build wrote: `detail` says where (never what).
    #[error(
        "the Kaspi simulator state {path} is damaged ({detail}); move it away to start with an \
         empty simulator"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "the Kaspi simulator state {path} has format version {found}; this build reads version \
         {STATE_FORMAT_VERSION}"
    )]
    Version { path: PathBuf, found: u64 },
    #[error("cannot write the Kaspi simulator state {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the file holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    /// The seed names and organizations derive from (`SimConfig::seed` of the first start).
    seed: u64,
    rng: ChaCha12Rng,
    clock: Clock,
    next_id: u64,
    last_tx: i64,
    #[serde(with = "serde_as::opt_phone")]
    last_login: Option<Phone>,
    cashiers: BTreeMap<String, CashierSetup>,
    sessions: Vec<Session>,
    operations: Vec<Arc<Operation>>,
    /// Kaspi's minimum app build (absent in files written before it was kept).
    #[serde(default)]
    min_app_build: Option<u64>,
    /// Blocked cashier accounts: phone → end of the block (sim clock, unix ms).
    #[serde(default)]
    blocked_until: BTreeMap<String, i64>,
}

impl Saved {
    /// A copy of what a restart must keep; marks the state saved.
    fn take(st: &mut State) -> Saved {
        st.changed = false;
        Saved {
            version: STATE_FORMAT_VERSION,
            seed: st.cfg.seed,
            rng: st.rng.clone(),
            clock: st.clock.clone(),
            next_id: st.next_id,
            last_tx: st.last_tx,
            last_login: st.last_login.clone(),
            cashiers: st
                .cashiers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sessions: st.sessions.values().cloned().collect(),
            operations: st.ops.values().cloned().collect(),
            min_app_build: st.min_app_build,
            blocked_until: st
                .blocked_until
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    /// The state it describes, run with `cfg` (except the seed, which is the file's).
    fn into_state(self, mut cfg: SimConfig) -> State {
        cfg.seed = self.seed;
        let mut st = State::new(cfg);
        st.rng = self.rng;
        st.clock = self.clock;
        st.next_id = self.next_id;
        st.last_tx = self.last_tx;
        st.last_login = self.last_login;
        st.cashiers = self.cashiers.into_iter().collect();
        st.min_app_build = self.min_app_build;
        st.blocked_until = self.blocked_until.into_iter().collect();
        st.sessions = self
            .sessions
            .into_iter()
            .map(|s| (s.token_sn.clone(), s))
            .collect();
        st.ops = self.operations.into_iter().map(|op| (op.id, op)).collect();
        let ids: Vec<u64> = st.ops.keys().copied().collect();
        for id in ids {
            st.schedule(id);
        }
        st
    }
}

/// Where a serde error is, without the value it quotes.
fn where_wrong(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {}, column {}",
        e.classify(),
        e.line(),
        e.column()
    )
    .to_lowercase()
}

/// Reads the state file; `None` when there is none.
fn load(path: &Path, cfg: &SimConfig) -> Result<Option<State>, StateFileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let damaged = |e: serde_json::Error| StateFileError::Damaged {
        path: path.to_owned(),
        detail: where_wrong(&e),
    };
    #[derive(Deserialize)]
    struct Header {
        version: u64,
    }
    let header: Header = serde_json::from_slice(&bytes).map_err(damaged)?;
    if header.version != u64::from(STATE_FORMAT_VERSION) {
        return Err(StateFileError::Version {
            path: path.to_owned(),
            found: header.version,
        });
    }
    let saved: Saved = serde_json::from_slice(&bytes).map_err(damaged)?;
    Ok(Some(saved.into_state(cfg.clone())))
}

/// The directory of `path` and the prefix of its temporary files (`.{file name}.`).
fn temp_place(path: &Path) -> (&Path, String) {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy());
    (dir, format!(".{name}."))
}

const TEMP_SUFFIX: &str = ".tmp";

/// Removes temporary files a process killed in the middle of a write left (best effort).
fn remove_stale_temp_files(path: &Path) {
    let (dir, prefix) = temp_place(path);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(TEMP_SUFFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` owner-only, atomically: a temporary file beside it, flushed to
/// disk, renamed over it; then the directory is flushed so the rename itself lasts.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (dir, prefix) = temp_place(path);
    // tempfile makes the file 0600 on Unix, before anything is written to it.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

impl Simulator {
    /// A simulator whose state lives in `path`: the state saved there when the file exists
    /// (with `config`'s settings but the file's seed), else a new one made from `config`.
    /// Either way the file is written at once, owner-only. Keep it up to date with
    /// [`Simulator::keep_saved`].
    pub fn open(config: SimConfig, path: &Path) -> Result<Simulator, StateFileError> {
        let (state, restored) = match load(path, &config)? {
            Some(state) => (state, true),
            None => (State::new(config), false),
        };
        let sim = Simulator::from_state(state, restored);
        remove_stale_temp_files(path);
        sim.save(path)?;
        if restored {
            let (operations, sessions) = sim.with_state(|st| (st.ops.len(), st.sessions.len()));
            tracing::info!(path = %path.display(), operations, sessions, "Kaspi simulator state restored");
        }
        Ok(sim)
    }

    /// Whether [`Simulator::open`] found a saved state (false for a new simulator).
    pub fn restored(&self) -> bool {
        self.inner.restored
    }

    /// Writes the whole state to `path` now (owner-only, atomically). Blocks on disk I/O: in
    /// async code call it from a blocking thread, or let [`Simulator::keep_saved`] do it.
    pub fn save(&self, path: &Path) -> Result<(), StateFileError> {
        self.write_snapshot(path, false).map(|_| ())
    }

    /// Writes the state when something changed since the last snapshot; whether it wrote.
    fn write_snapshot(&self, path: &Path, only_if_changed: bool) -> Result<bool, StateFileError> {
        // One write at a time, so an older snapshot never lands after a newer one.
        let _writing = self
            .inner
            .writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let saved = self.with_state(|st| (st.changed || !only_if_changed).then(|| Saved::take(st)));
        let Some(saved) = saved else {
            return Ok(false);
        };
        let written = serde_json::to_vec(&saved)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomically(path, &bytes));
        if let Err(source) = written {
            // Not saved after all: the next attempt writes it.
            self.with_state(State::touch);
            return Err(StateFileError::Write {
                path: path.to_owned(),
                source,
            });
        }
        Ok(true)
    }

    /// Saves the state to `path` in the background, `delay` after a change (more changes in
    /// that time make one write), until the saver is stopped or dropped; then once more.
    /// Needs a Tokio runtime.
    pub fn keep_saved(&self, path: PathBuf, delay: Duration) -> StateSaver {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let sim = self.clone();
        let task = tokio::spawn(async move {
            let mut pause = delay;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = sim.inner.changed.notified() => {}
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(pause) => {}
                }
                let started = std::time::Instant::now();
                let saved = sim.save_changes(&path).await;
                // A large state takes a while to write (100,000 operations: ~100 ms); under
                // steady changes, writing then takes at most a fifth of the time.
                pause = delay.max(started.elapsed().saturating_mul(4));
                if let Err(e) = saved {
                    tracing::error!(error = %e, "Kaspi simulator state not saved; retrying");
                    // Not every few milliseconds while a disk is full.
                    tokio::select! {
                        _ = &mut stopped => break,
                        () = tokio::time::sleep(delay.max(Duration::from_secs(1))) => {}
                    }
                }
            }
            let saved = sim.save_changes(&path).await;
            if let Err(e) = &saved {
                tracing::error!(error = %e, "Kaspi simulator state not saved at shutdown");
            }
            saved
        });
        StateSaver {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Writes what changed since the last write, on a blocking thread.
    async fn save_changes(&self, path: &Path) -> Result<bool, StateFileError> {
        let sim = self.clone();
        let path_owned = path.to_owned();
        tokio::task::spawn_blocking(move || sim.write_snapshot(&path_owned, true))
            .await
            .unwrap_or_else(|e| {
                Err(StateFileError::Write {
                    path: path.to_owned(),
                    source: std::io::Error::other(e),
                })
            })
    }
}

/// The background task that keeps a simulator's state file up to date. Dropping it stops it
/// too (its last write then finishes on its own).
pub struct StateSaver {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<bool, StateFileError>>>,
}

impl StateSaver {
    /// Stops saving in the background and writes what changed since the last write.
    pub async fn stop(mut self) -> Result<(), StateFileError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_or(Ok(()), |saved| saved.map(|_| ())),
            None => Ok(()),
        }
    }
}

impl Drop for StateSaver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// serde adapters for the types the state holds that have no serde of their own, or whose
/// own form is not the one to keep (amounts are whole tiyn here, not decimal text).
pub(crate) mod serde_as {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub mod tiyn {
        use super::*;
        use kaspi::Amount;

        pub fn serialize<S: Serializer>(amount: &Amount, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_i64(amount.tiyn())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
            i64::deserialize(d).map(Amount::from_tiyn)
        }
    }

    pub mod phone {
        use super::*;
        use kaspi::Phone;

        pub fn serialize<S: Serializer>(phone: &Phone, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(phone.as_str())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Phone, D::Error> {
            let text = String::deserialize(d)?;
            kaspi::phone::normalize(&text).map_err(|_| D::Error::custom("not a phone number"))
        }
    }

    pub mod opt_phone {
        use super::*;
        use kaspi::Phone;

        pub fn serialize<S: Serializer>(phone: &Option<Phone>, s: S) -> Result<S::Ok, S::Error> {
            match phone {
                Some(phone) => s.serialize_some(phone.as_str()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Phone>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| {
                    kaspi::phone::normalize(&text)
                        .map_err(|_| D::Error::custom("not a phone number"))
                })
                .transpose()
        }
    }

    /// Kaspi's name of the status (an unknown name stays unknown, as on the wire).
    pub mod status {
        use super::*;
        use kaspi::Status;

        pub fn serialize<S: Serializer>(status: &Status, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(status.as_str())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
            String::deserialize(d).map(|name| Status::parse(&name))
        }
    }

    /// 32 bytes as 64 hex digits.
    pub mod hex32 {
        use super::*;

        pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&hex::encode(bytes))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
            let text = String::deserialize(d)?;
            let mut out = [0u8; 32];
            hex::decode_to_slice(text, &mut out)
                .map_err(|_| D::Error::custom("not 32 bytes of hex"))?;
            Ok(out)
        }
    }

    /// A P-256 signature-checking key as its uncompressed SEC1 point in hex.
    pub mod verify_key {
        use super::*;
        use kaspi::sign::VerifyKey;

        pub fn serialize<S: Serializer>(key: &VerifyKey, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&hex::encode(key.as_sec1_bytes()))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VerifyKey, D::Error> {
            let text = String::deserialize(d)?;
            hex::decode(text)
                .ok()
                .and_then(|bytes| VerifyKey::from_sec1_bytes(&bytes))
                .ok_or_else(|| D::Error::custom("not a P-256 point in hex"))
        }
    }

    /// A P-256 public key as its uncompressed SEC1 point in hex.
    pub mod public_key {
        use super::*;
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        use p256::PublicKey;

        pub fn serialize<S: Serializer>(key: &PublicKey, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&hex::encode(key.to_encoded_point(false).as_bytes()))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
            let text = String::deserialize(d)?;
            hex::decode(text)
                .ok()
                .and_then(|bytes| PublicKey::from_sec1_bytes(&bytes).ok())
                .ok_or_else(|| D::Error::custom("not a P-256 point in hex"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_or_foreign_file_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, r#"{"version": 1, "seed": "secret-looking-value"}"#).expect("write");
        let e = Simulator::open(SimConfig::default(), &path)
            .err()
            .expect("refused");
        let text = e.to_string();
        assert!(matches!(e, StateFileError::Damaged { .. }), "{text}");
        assert!(text.contains("state.json"), "{text}");
        assert!(!text.contains("secret-looking-value"), "{text}");

        std::fs::write(&path, r#"{"version": 99}"#).expect("write");
        let e = Simulator::open(SimConfig::default(), &path)
            .err()
            .expect("refused");
        assert!(
            matches!(e, StateFileError::Version { found: 99, .. }),
            "{e}"
        );
    }

    #[test]
    fn a_new_simulator_writes_its_file_at_once_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let sim = Simulator::open(SimConfig::default(), &path).expect("opens");
        assert!(!sim.restored());
        assert!(path.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A write cut short by a kill leaves a temporary file: the next start removes it.
        std::fs::write(dir.path().join(".state.json.x1Y2z3.tmp"), "{").expect("write");
        let again = Simulator::open(SimConfig::default(), &path).expect("opens");
        assert!(again.restored());
        // Nothing but the file is left in the directory (no temporary files).
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }
}
