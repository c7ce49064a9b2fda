//! Test support: a fresh, migrated database per test, on SQLite and on PostgreSQL.
//!
//! [`TestDb::sqlite`] makes a file in a temporary directory. [`TestDb::postgres`] creates a
//! database `kassa_test_<random>` on the server at `KASSA_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and drops it afterwards. When the server
//! cannot be reached the PostgreSQL half of a test is skipped, except under `CI`, where that is
//! a failure. [`both_databases!`](crate::both_databases) turns one async test body into a
//! test per database.
//!
//! Compiled into the library (it is small) so integration tests and other crates can use it.
//! Set-up failures panic: they are failures of the test that asked for the database.

use std::error::Error as _;
use std::io::Write as _;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use super::{Db, DbOptions};

/// Where the PostgreSQL tests go unless `KASSA_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, migrated database that is removed when this is dropped.
pub struct TestDb {
    /// `None` only while dropping, so the handle closes before the database goes.
    db: Option<Db>,
    url: String,
    /// Dropped after `db` (fields drop in order, after `Drop::drop`).
    _cleanup: Cleanup,
}

enum Cleanup {
    /// The file goes with its directory.
    Sqlite { _dir: tempfile::TempDir },
    /// Dropped with the test.
    Postgres { _scratch: ScratchDatabase },
}

/// A PostgreSQL database made for one test or measurement, `<prefix>_<random>` on the server
/// at an administration URL, dropped (with `FORCE`) when this is dropped, on error paths too.
/// Shared by [`TestDb`] and the benchmark harness.
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<random>`; the error as text (the URL's password never in it).
    pub fn create(admin_url: &str, prefix: &str) -> Result<ScratchDatabase, String> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        off_runtime(|| {
            admin_connect(admin_url)?
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .map_err(|e| e.to_string())
        })?;
        Ok(ScratchDatabase {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    /// The URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // FORCE ends connections still open (a task or a server that did not stop cleanly).
        let dropped = off_runtime(|| {
            admin_connect(&self.admin_url)?
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = dropped {
            eprintln!("could not drop the scratch database {}: {e}", self.name);
        }
    }
}

/// Whether the PostgreSQL server at `admin_url` answers; the error as text when not.
pub fn check_server(admin_url: &str) -> Result<(), String> {
    off_runtime(|| {
        admin_connect(admin_url)?
            .simple_query("SELECT 1")
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

impl TestDb {
    /// A new SQLite file in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create a temporary directory for SQLite");
        let url = format!("sqlite://{}", dir.path().join("kassa.db").display());
        TestDb::open(url, Cleanup::Sqlite { _dir: dir }).await
    }

    /// A new database on the test PostgreSQL server, or `None` (after one line on stderr) when
    /// the server cannot be reached outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("KASSA_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let scratch = match ScratchDatabase::create(&admin_url, "kassa_test") {
            Ok(scratch) => scratch,
            Err(e) => {
                let shown = redact(&admin_url);
                if std::env::var_os("CI").is_some() {
                    panic!("PostgreSQL tests must run in CI: cannot use {shown}: {e}");
                }
                static SAID: Once = Once::new();
                SAID.call_once(|| {
                    // Straight to stderr: libtest would hide `eprintln!` of a passing test.
                    let _ = writeln!(
                        std::io::stderr(),
                        "PostgreSQL not reachable at {shown}: skipping PostgreSQL tests"
                    );
                });
                return None;
            }
        };
        let url = scratch.url().to_owned();
        Some(TestDb::open(url, Cleanup::Postgres { _scratch: scratch }).await)
    }

    async fn open(url: String, cleanup: Cleanup) -> TestDb {
        // Build the value first: if opening panics, dropping `cleanup` still removes the database.
        let mut test = TestDb {
            db: None,
            url,
            _cleanup: cleanup,
        };
        let db = Db::open(&test.url, DbOptions::default())
            .await
            .unwrap_or_else(|e| panic!("open the test database {}: {e}", redact(&test.url)));
        db.migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate the test database: {e}"));
        test.db = Some(db);
        test
    }

    /// The URL of the database, for starting a gateway on it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A handle to the database.
    pub fn db(&self) -> Db {
        self.db
            .clone()
            .expect("the test database is open until dropped")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // The handle closes first; `cleanup` (a scratch database) goes after, as a field.
        drop(self.db.take());
    }
}

/// Runs blocking `postgres` client work on a plain thread: its client panics inside a runtime.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

fn admin_connect(url: &str) -> Result<postgres::Client, String> {
    let mut config = postgres::Config::from_str(url).map_err(|e| e.to_string())?;
    config.connect_timeout(Duration::from_secs(3));
    config
        .connect(postgres::NoTls)
        .map_err(|e| match e.source() {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        })
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = location.split('/').next().unwrap_or(location);
    format!("{scheme}://{authority}/{database}{query}")
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Defines a module `$name` with two tokio tests, `sqlite` and `postgres`, each calling the
/// async closure `$body` with a fresh migrated [`Db`]. The PostgreSQL one passes without doing
/// anything when no server is reachable outside CI (see [`TestDb::postgres`]).
///
/// ```ignore
/// both_databases!(round_trip, |db: Db| async move {
///     db.migrate().await.unwrap();
/// });
/// ```
#[macro_export]
macro_rules! both_databases {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let test = $crate::db::testing::TestDb::sqlite().await;
                ($body)(test.db()).await;
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(test) = $crate::db::testing::TestDb::postgres().await else {
                    return;
                };
                ($body)(test.db()).await;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::{redact, with_database};

    #[test]
    fn urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t3"), "postgres://h/t3");
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
