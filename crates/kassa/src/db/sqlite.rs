//! The SQLite backend: one writer thread doing group commit, and a pool of readers.
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` (a committed payment must
//! survive a power loss) each commit costs an fsync. So all writes go through one thread that
//! owns the only writing connection. It takes every write queued so far (up to
//! `sqlite_max_batch`), runs them in ONE transaction, each inside its own `SAVEPOINT`, then
//! commits once and answers them all:
//!
//! - a write whose closure returns `Err`, hits a failed statement or panics is rolled back to its
//!   savepoint alone; the others of the batch still commit;
//! - if SQLite drops the whole transaction (disk full, I/O error) every write of it so far gets
//!   the error and the rest of the queue goes on in a new transaction;
//! - if the COMMIT fails, every write of the batch that had succeeded gets that error.
//!
//! No write is delayed to wait for company: a batch is whatever queued up while the previous
//! commit was being synced. Reads run on separate connections (WAL lets them proceed while
//! the writer works) on tokio's blocking threads.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{CachedStatement, Connection, ToSql};
use tokio::sync::{mpsc, oneshot};

use super::error::sql_head;
use super::pool::{Manage, Pool};
use super::sql::PlaceholderCache;
use super::{DbError, DbOptions, Dialect, Row, Tx, Value};

/// The SQLite side of a `Db`.
pub struct Sqlite {
    /// Queue of the writer thread; `None` once dropping.
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<Pool<Readers>>,
}

/// A connection and its placeholder cache.
pub struct Conn {
    conn: Connection,
    placeholders: PlaceholderCache,
}

/// Opens reader connections.
struct Readers {
    path: PathBuf,
    options: DbOptions,
}

impl Manage for Readers {
    type Conn = Conn;

    fn connect(&self) -> Result<Conn, DbError> {
        let conn = connect(&self.path, &self.options)?;
        // Reads must not write: the writer thread is the only writer.
        conn.conn
            .pragma_update(None, "query_only", "ON")
            .map_err(|e| connection_error(&self.path, e))?;
        Ok(conn)
    }

    fn is_healthy(&self, conn: &mut Conn) -> bool {
        conn.conn.is_autocommit()
    }
}

fn connection_error(path: &std::path::Path, e: rusqlite::Error) -> DbError {
    DbError::Connection(format!("SQLite database {}: {e}", path.display()))
}

/// Opens a connection with the settings every connection needs.
fn connect(path: &std::path::Path, options: &DbOptions) -> Result<Conn, DbError> {
    let conn = Connection::open(path).map_err(|e| connection_error(path, e))?;
    conn.busy_timeout(options.sqlite_busy_timeout)
        .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
        .map_err(|e| connection_error(path, e))?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(Conn {
        conn,
        placeholders: PlaceholderCache::default(),
    })
}

/// Opens the writing connection: WAL, and fsync at every commit.
fn connect_writer(path: &std::path::Path, options: &DbOptions) -> Result<Conn, DbError> {
    let conn = connect(path, options)?;
    let mode: String = conn
        .conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| connection_error(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Connection(format!(
            "SQLite database {}: cannot switch to WAL (journal_mode is {mode})",
            path.display()
        )));
    }
    conn.conn
        .pragma_update(None, "synchronous", "FULL")
        .map_err(|e| connection_error(path, e))?;
    Ok(conn)
}

impl Sqlite {
    pub async fn open(path: PathBuf, options: DbOptions) -> Result<Sqlite, DbError> {
        let opened = tokio::task::spawn_blocking(move || {
            let writer = connect_writer(&path, &options)?;
            let manager = Readers {
                path,
                options: options.clone(),
            };
            // Open the readers now so a problem shows at start, not at the first read.
            let idle = (0..options.sqlite_readers)
                .map(|_| manager.connect())
                .collect::<Result<Vec<_>, _>>()?;
            let readers = Pool::new(manager, options.sqlite_readers);
            for conn in idle {
                readers.put(conn);
            }
            Ok::<_, DbError>((writer, readers, options))
        })
        .await
        .map_err(|_| DbError::Closed)??;
        let (writer, readers, options) = opened;
        let max_batch = options.sqlite_max_batch.max(1);
        let (jobs, queue) = mpsc::channel(max_batch.saturating_mul(4));
        let writer = thread::Builder::new()
            .name("kassa-db-writer".into())
            .spawn(move || write_loop(writer, queue, max_batch))
            .map_err(|e| DbError::Connection(format!("cannot start the writer thread: {e}")))?;
        Ok(Sqlite {
            jobs: Some(jobs),
            writer: Some(writer),
            readers: Arc::new(readers),
        })
    }

    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(WriteJob {
            f,
            outcome: None,
            reply,
        });
        let jobs = self.jobs.as_ref().ok_or(DbError::Closed)?;
        jobs.send(job).await.map_err(|_| DbError::Closed)?;
        match answer.await {
            Ok(Ok(out)) => out,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => Err(DbError::Closed.into()),
        }
    }

    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.readers
            .run(move |conn| {
                exec(&conn.conn, "BEGIN")?;
                let mut tx = SqliteTx::new(conn);
                let out = f(&mut tx);
                let first_error = tx.first_error.take();
                // Ends the snapshot; a read-only transaction has nothing to lose here.
                let end = exec(&conn.conn, "COMMIT");
                match (out, first_error) {
                    (Ok(value), None) => end.map(|()| value).map_err(E::from),
                    (Ok(_), Some(e)) => Err(E::from(e)),
                    (Err(e), _) => Err(e),
                }
            })
            .await
            .map_err(E::from)?
    }

    /// One read-only statement on a reader, on its own (autocommit).
    pub async fn query(&self, sql: String, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        self.readers
            .run(move |conn| SqliteTx::new(conn).query(&sql, &params))
            .await?
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and close its connection.
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            if writer.thread().id() != thread::current().id() {
                let _ = writer.join();
            }
        }
    }
}

/// A queued write with its type erased, so writes of any result type share the queue.
trait Job: Send {
    /// Runs the closure in the open transaction; true when its changes are to be kept.
    fn run(&mut self, tx: &mut SqliteTx<'_>) -> bool;
    /// Answers the caller once the transaction ended; `Err` if it did not commit.
    fn finish(self: Box<Self>, end: Result<(), &DbError>);
}

type Outcome<T, E> = thread::Result<Result<T, E>>;

struct WriteJob<F, T, E> {
    f: F,
    /// What the closure returned, until the transaction ends.
    outcome: Option<Outcome<T, E>>,
    reply: oneshot::Sender<Outcome<T, E>>,
}

impl<F, T, E> Job for WriteJob<F, T, E>
where
    F: Fn(&mut dyn Tx) -> Result<T, E> + Send,
    T: Send,
    E: From<DbError> + Send,
{
    fn run(&mut self, tx: &mut SqliteTx<'_>) -> bool {
        tx.first_error = None;
        let f = &self.f;
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut *tx)));
        let (outcome, keep) = match outcome {
            Ok(Ok(value)) => match tx.first_error.take() {
                None => (Ok(Ok(value)), true),
                Some(e) => (Ok(Err(E::from(e))), false),
            },
            other => (other, false),
        };
        self.outcome = Some(outcome);
        keep
    }

    fn finish(self: Box<Self>, end: Result<(), &DbError>) {
        let outcome = match (self.outcome, end) {
            (Some(Ok(Ok(value))), Ok(())) => Ok(Ok(value)),
            (Some(Ok(Ok(_))) | None, Err(e)) => Ok(Err(E::from(e.clone()))),
            // Its own error or panic: it was rolled back whatever happened to the others.
            (Some(outcome), _) => outcome,
            (None, Ok(())) => Ok(Err(E::from(DbError::Closed))),
        };
        // The caller may have stopped waiting; the write happened all the same.
        let _ = self.reply.send(outcome);
    }
}

fn write_loop(mut conn: Conn, mut queue: mpsc::Receiver<Box<dyn Job>>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, &mut batch);
    }
}

/// Runs `batch` in as few transactions as possible (one, unless SQLite drops one) and answers
/// every job.
fn run_batch(conn: &mut Conn, batch: &mut Vec<Box<dyn Job>>) {
    tracing::trace!(writes = batch.len(), "SQLite group commit");
    let mut pending = batch.drain(..);
    // Jobs run in the current transaction, waiting for its end.
    let mut ran: Vec<Box<dyn Job>> = Vec::new();
    while pending.len() > 0 {
        if let Err(e) = exec(&conn.conn, "BEGIN IMMEDIATE") {
            for job in pending.by_ref() {
                job.finish(Err(&e));
            }
            return;
        }
        let mut lost = None;
        for mut job in pending.by_ref() {
            if let Err(e) = exec(&conn.conn, "SAVEPOINT job") {
                ran.push(job);
                lost = Some(e);
                break;
            }
            let keep = job.run(&mut SqliteTx::new(conn));
            ran.push(job);
            let end = if conn.conn.is_autocommit() {
                Err(DbError::query(
                    "COMMIT",
                    "the transaction was ended inside a write (by SQLite after an I/O error, \
                     or by the closure itself)",
                ))
            } else if keep {
                exec(&conn.conn, "RELEASE job")
            } else {
                exec(&conn.conn, "ROLLBACK TO job").and_then(|()| exec(&conn.conn, "RELEASE job"))
            };
            if let Err(e) = end {
                lost = Some(e);
                break;
            }
        }
        let end = match lost {
            Some(e) => Err(e),
            None => exec(&conn.conn, "COMMIT"),
        };
        if end.is_err() && !conn.conn.is_autocommit() {
            if let Err(e) = exec(&conn.conn, "ROLLBACK") {
                tracing::error!(error = %e, "SQLite: cannot roll back a failed batch");
            }
        }
        for job in ran.drain(..) {
            job.finish(end.as_ref().map(|_| ()));
        }
    }
}

/// Runs a parameterless statement through the statement cache.
fn exec(conn: &Connection, sql: &str) -> Result<(), DbError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(|_| ())
        .map_err(|e| map_error(sql, e))
}

fn map_error(sql: &str, e: rusqlite::Error) -> DbError {
    use rusqlite::ffi;
    match &e {
        rusqlite::Error::SqliteFailure(failure, message)
            if failure.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            DbError::UniqueViolation {
                sql: sql_head(sql),
                message: message.clone().unwrap_or_else(|| e.to_string()),
            }
        }
        _ => DbError::query(sql, e.to_string()),
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Bytes(v) => ValueRef::Blob(v),
        }))
    }
}

/// The `Tx` of a SQLite transaction (write or read).
struct SqliteTx<'c> {
    conn: &'c Connection,
    placeholders: &'c mut PlaceholderCache,
    /// The first statement that failed: it fails the transaction, as on PostgreSQL.
    first_error: Option<DbError>,
}

impl<'c> SqliteTx<'c> {
    fn new(conn: &'c mut Conn) -> SqliteTx<'c> {
        SqliteTx {
            conn: &conn.conn,
            placeholders: &mut conn.placeholders,
            first_error: None,
        }
    }

    /// Records a failed statement.
    fn failed(&mut self, e: DbError) -> DbError {
        if self.first_error.is_none() && !matches!(e, DbError::Decode { .. }) {
            self.first_error = Some(e.clone());
        }
        e
    }

    fn prepare(&mut self, sql: &str, params: &[Value]) -> Result<CachedStatement<'c>, DbError> {
        let conn: &'c Connection = self.conn;
        let mut stmt = conn
            .prepare_cached(self.placeholders.sqlite(sql))
            .map_err(|e| map_error(sql, e))?;
        if stmt.parameter_count() != params.len() {
            return Err(DbError::query(
                sql,
                format!(
                    "the statement takes {} parameters, {} given",
                    stmt.parameter_count(),
                    params.len()
                ),
            ));
        }
        for (i, param) in params.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, param)
                .map_err(|e| map_error(sql, e))?;
        }
        Ok(stmt)
    }

    fn query_rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.prepare(sql, params)?;
        let columns: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| map_error(sql, e))? {
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                let value = row.get_ref(i).map_err(|e| map_error(sql, e))?;
                values.push(decode(column, value)?);
            }
            out.push(Row::new(Arc::clone(&columns), values));
        }
        Ok(out)
    }

    fn execute_stmt(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut stmt = self.prepare(sql, params)?;
        if stmt.column_count() == 0 {
            let changed = stmt.raw_execute().map_err(|e| map_error(sql, e))?;
            return Ok(changed as u64);
        }
        // `INSERT … RETURNING` and the like: count the rows, as PostgreSQL does.
        let mut rows = stmt.raw_query();
        let mut count = 0;
        while rows.next().map_err(|e| map_error(sql, e))?.is_some() {
            count += 1;
        }
        Ok(count)
    }
}

fn decode(column: &str, value: ValueRef<'_>) -> Result<Value, DbError> {
    match value {
        ValueRef::Null => Ok(Value::Null),
        ValueRef::Integer(v) => Ok(Value::Int(v)),
        ValueRef::Text(v) => std::str::from_utf8(v)
            .map(|s| Value::Text(s.to_owned()))
            .map_err(|_| DbError::decode(column, "text is not valid UTF-8")),
        ValueRef::Blob(v) => Ok(Value::Bytes(v.to_vec())),
        ValueRef::Real(_) => Err(DbError::decode(
            column,
            "floating-point values are not supported: store integers",
        )),
    }
}

impl Tx for SqliteTx<'_> {
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        self.query_rows(sql, params).map_err(|e| self.failed(e))
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.execute_stmt(sql, params).map_err(|e| self.failed(e))
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn
            .execute_batch(sql)
            .map_err(|e| map_error(sql, e))
            .map_err(|e| self.failed(e))
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}
