//! The database access layer: one [`Db`] handle over an embedded SQLite file (the default) or
//! PostgreSQL (for several gateway processes), so every query of the store is written once.
//!
//! Work is a synchronous closure over [`Tx`] that runs in one transaction:
//!
//! ```no_run
//! # async fn demo(db: kassa::db::Db) -> Result<(), kassa::db::DbError> {
//! let value = db
//!     .write(|tx| {
//!         tx.execute(
//!             "INSERT INTO kv_meta (key, value) VALUES ($1, $2) \
//!              ON CONFLICT (key) DO UPDATE SET value = excluded.value",
//!             &["greeting".into(), "hello".into()],
//!         )?;
//!         tx.query_one("SELECT value FROM kv_meta WHERE key = $1", &["greeting".into()])?
//!             .text("value")
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Portable SQL: `$1, $2…` placeholders (rewritten for SQLite), `RETURNING`, `ON CONFLICT`;
//! integers, booleans (0/1) and timestamps (unix ms) are all BIGINT columns; text and bytes.
//! Give computed columns a lowercase alias (`COUNT(*) AS n`: the databases name them
//! differently, and PostgreSQL lowercases unquoted names), and cast aggregates that PostgreSQL
//! widens to NUMERIC back (`CAST(SUM(amount) AS BIGINT)`). What differs between the databases
//! lives in [`Dialect`] and in the two migration folders.
//!
//! - SQLite (`sqlite.rs`): one writer thread does group commit (queued writes share one
//!   transaction and one fsync, each in its own savepoint), plus a pool of reader connections.
//! - PostgreSQL (`pg.rs`): a pool of `tokio-postgres` connections, each driven on the blocking
//!   thread that runs the closure, statements pipelined ([`Tx::defer`]); writes are retried on
//!   serialization failures and deadlocks.
//! - `migrate.rs` applies the embedded migrations; `testing.rs` gives tests a fresh database.

mod error;
mod migrate;
mod pg;
mod pool;
mod sql;
mod sqlite;
pub mod testing;
mod value;

use std::sync::Arc;
use std::time::Duration;

pub use error::DbError;
pub use migrate::{migrations, Migration};
pub use value::{Row, Value};

/// Which database a [`Db`] talks to, with the few SQL differences the store needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server (15 or later).
    Postgres,
}

impl Dialect {
    /// A short lowercase name: `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// Appended to a `SELECT` that claims rows for work. SQLite has one writer, so rows read in
    /// a write transaction are already exclusive there.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// Appended to a `SELECT` of a row the transaction is about to change from what it read:
    /// PostgreSQL locks it until the commit; SQLite's one writer is exclusive already.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// One transaction, as seen by a closure passed to [`Db::write`] or [`Db::read`].
///
/// A statement that fails fails the whole transaction, on both databases (PostgreSQL aborts it;
/// SQLite is made to behave the same): if the closure catches the error and returns `Ok`
/// anyway, the call still returns that first error and nothing is committed. To tolerate a
/// duplicate, write `ON CONFLICT … DO NOTHING` instead of catching [`DbError::UniqueViolation`].
/// Closures must not run `BEGIN`, `COMMIT` or `ROLLBACK` themselves, and should do nothing but
/// database work: on SQLite every other write waits for them.
pub trait Tx {
    /// Runs `sql` with `params` (`$1` is `params[0]`) and returns all result rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;

    /// Runs a statement and returns the number of rows it changed (or returned).
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;

    /// Runs a statement whose answer the caller does not need (an upsert of a count, a job
    /// scheduled, a row deleted): PostgreSQL sends it with the transaction's next statement or
    /// its `COMMIT`, in the same round trip; SQLite runs it at once. Its error still fails the
    /// transaction, possibly only at that next statement or the commit. Not for a statement
    /// whose failure the caller must tell apart (a unique violation it reports).
    fn defer(&mut self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        self.execute(sql, params).map(drop)
    }

    /// Runs one or more `;`-separated statements without parameters (migrations, test setup).
    fn batch_execute(&mut self, sql: &str) -> Result<(), DbError>;

    /// The database underneath.
    fn dialect(&self) -> Dialect;

    /// Like [`Tx::query`] for at most one row; more than one is an error.
    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        let mut rows = self.query(sql, params)?;
        match rows.len() {
            0 | 1 => Ok(rows.pop()),
            n => Err(DbError::query(
                sql,
                format!("expected at most one row, got {n}"),
            )),
        }
    }

    /// Like [`Tx::query`] for exactly one row.
    fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, DbError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| DbError::query(sql, "expected one row, got none"))
    }
}

/// Tuning for [`Db::open`]. The defaults suit the 2-core machines the gateway runs on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DbOptions {
    /// SQLite: reader connections (default 4).
    pub sqlite_readers: usize,
    /// SQLite: at most this many queued writes share one transaction (default 512).
    pub sqlite_max_batch: usize,
    /// SQLite: how long a statement waits for a lock held by another process (default 5 s).
    pub sqlite_busy_timeout: Duration,
    /// PostgreSQL: pool size (default 8, where PostgreSQL on 2 cores saturates).
    pub postgres_connections: usize,
    /// PostgreSQL: connect timeout unless the URL sets one (default 5 s).
    pub postgres_connect_timeout: Duration,
    /// PostgreSQL: how often a write is re-run after a serialization failure or deadlock
    /// (default 3).
    pub postgres_retries: u32,
}

impl Default for DbOptions {
    fn default() -> DbOptions {
        DbOptions {
            sqlite_readers: 4,
            sqlite_max_batch: 512,
            sqlite_busy_timeout: Duration::from_secs(5),
            postgres_connections: 8,
            postgres_connect_timeout: Duration::from_secs(5),
            postgres_retries: 3,
        }
    }
}

/// A handle to the database; cheap to clone, shared by the whole gateway.
///
/// A write or read that was started runs to the end even if its future is dropped.
#[derive(Clone)]
pub struct Db {
    backend: Arc<Backend>,
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(pg::Postgres),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dialect", &self.dialect())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens `sqlite://PATH` (the file is created if missing; `sqlite:///abs/path` for an
    /// absolute path) or `postgres://USER@HOST:PORT/DB` (also `postgresql://`).
    pub async fn open(url: &str, options: DbOptions) -> Result<Db, DbError> {
        let backend = if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(DbError::Connection("the SQLite URL has no path".into()));
            }
            Backend::Sqlite(sqlite::Sqlite::open(path.into(), options).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(pg::Postgres::open(url, options).await?)
        } else {
            return Err(DbError::Connection(
                "the database URL must start with sqlite:// or postgres://".into(),
            ));
        };
        Ok(Db {
            backend: Arc::new(backend),
        })
    }

    /// The database underneath.
    pub fn dialect(&self) -> Dialect {
        match *self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `f` in one transaction, committed before this resolves. If `f` returns `Err` (or a
    /// statement in it failed) its changes are rolled back and the error returned. A panic in
    /// `f` rolls it back and is resumed here.
    ///
    /// `f` is `Fn` because PostgreSQL may run it again after a serialization failure or a
    /// deadlock; it must not have effects outside the transaction.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match &*self.backend {
            Backend::Sqlite(db) => db.write(f).await,
            Backend::Postgres(db) => db.write(f).await,
        }
    }

    /// Runs one read-only statement on its own, outside any transaction: a single statement
    /// sees one committed snapshot anyway, and on PostgreSQL this saves the `BEGIN` and the
    /// `COMMIT` (one round trip instead of two). For the hot point reads (an API key's
    /// revocation generation, a terminal, an invoice by id); anything reading twice uses
    /// [`Db::read`].
    pub async fn query(&self, sql: String, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        match &*self.backend {
            Backend::Sqlite(db) => db.query(sql, params).await,
            Backend::Postgres(db) => db.query(sql, params).await,
        }
    }

    /// [`Db::query`] for at most one row.
    pub async fn query_opt(&self, sql: String, params: Vec<Value>) -> Result<Option<Row>, DbError> {
        let mut rows = self.query(sql.clone(), params).await?;
        match rows.len() {
            0 | 1 => Ok(rows.pop()),
            n => Err(DbError::query(
                &sql,
                format!("expected at most one row, got {n}"),
            )),
        }
    }

    /// Runs `f` in a read-only transaction: every query sees the same committed snapshot.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match &*self.backend {
            Backend::Sqlite(db) => db.read(f).await,
            Backend::Postgres(db) => db.read(f).await,
        }
    }
}
