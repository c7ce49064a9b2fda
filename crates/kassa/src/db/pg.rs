//! The PostgreSQL backend: a pool of `tokio-postgres` connections, each driven by a small
//! runtime of its own on the blocking thread that runs a transaction's closure, with the
//! statements of a transaction pipelined.
//!
//! Pipelining: the `BEGIN` goes out with the transaction's first statement, and statements
//! whose answer the closure does not need ([`Tx::defer`]) wait and go out with the next
//! statement or with the `COMMIT`: all of them in one write and one round trip, answered in
//! order. A create that used to wait for 28 round trips waits for 9. Each
//! connection keeps its prepared statements, so a statement costs no round trip of its own
//! after its first use. Writes run in `BEGIN … COMMIT` (READ COMMITTED) and are re-run, up to
//! `postgres_retries` times, after a serialization failure (40001) or a deadlock (40P01). Reads
//! run in a `REPEATABLE READ, READ ONLY` transaction: one snapshot for the whole closure.
//!
//! Why a runtime per connection and not the gateway's own: the store's closures are
//! synchronous (one per transaction, see [`Tx`]), so they run on a blocking thread, and a
//! connection driven on that same thread answers without a hand-off between threads per round
//! trip (which, on two cores, cost more than the round trip).
//!
//! Values: BIGINT/INTEGER/SMALLINT and BOOLEAN read as `Value::Int` (booleans 0/1), TEXT and
//! VARCHAR as `Value::Text`, BYTEA as `Value::Bytes`; other types are a decode error (cast a
//! `SUM(bigint)`, which is NUMERIC, back with `CAST(… AS BIGINT)`). An `Int` binds to any integer
//! column (range-checked) or to a BOOLEAN (0/1 only). Connections are plain TCP (no TLS).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Statement};

use super::error::sql_head;
use super::pool::{Manage, Pool};
use super::{DbError, DbOptions, Dialect, Row, Tx, Value};

/// The PostgreSQL side of a `Db`.
pub struct Postgres {
    pool: Arc<Pool<Connector>>,
    retries: u32,
}

/// A connection with its prepared statements, and the runtime that drives it.
pub struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// A current-thread runtime: `block_on` runs the connection's task beside the request.
    runtime: tokio::runtime::Runtime,
}

impl PgConn {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

struct Connector {
    config: Config,
}

impl Manage for Connector {
    type Conn = PgConn;

    fn connect(&self) -> Result<PgConn, DbError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DbError::Connection(format!("PostgreSQL: a runtime: {e}")))?;
        let (client, mut connection) = runtime
            .block_on(self.config.connect(NoTls))
            .map_err(|e| DbError::Connection(format!("PostgreSQL: {e}")))?;
        runtime.spawn(async move {
            // Drives the socket; `CREATE TABLE IF NOT EXISTS` and friends send notices, which
            // are not worth more than a debug line.
            while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notice(notice)) => {
                        tracing::debug!(message = notice.message(), "PostgreSQL notice");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "PostgreSQL connection ended");
                        break;
                    }
                }
            }
        });
        Ok(PgConn {
            client,
            statements: HashMap::new(),
            runtime,
        })
    }

    fn is_healthy(&self, conn: &mut PgConn) -> bool {
        !conn.client.is_closed()
    }
}

impl Postgres {
    pub async fn open(url: &str, options: DbOptions) -> Result<Postgres, DbError> {
        let mut config: Config = url
            .parse()
            .map_err(|e| DbError::Connection(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.postgres_connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("kassa");
        }
        let pool = Arc::new(Pool::new(
            Connector { config },
            options.postgres_connections,
        ));
        // Connect once now so a wrong URL or a server that is down shows at start.
        pool.run(|_| ()).await?;
        Ok(Postgres {
            pool,
            retries: options.postgres_retries,
        })
    }

    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let retries = self.retries;
        let pool = Arc::clone(&self.pool);
        self.pool
            .run(move |conn| {
                let mut attempt = 0;
                loop {
                    let (out, retryable) = transaction(conn, pool.manager(), "BEGIN", &f);
                    if !retryable || attempt >= retries {
                        return out;
                    }
                    attempt += 1;
                    tracing::debug!(attempt, "PostgreSQL: write conflicted, running it again");
                    // A little jitter so two deadlocked writers do not meet again at once.
                    let jitter = rand::random::<u64>() % (1 << (attempt + 1));
                    std::thread::sleep(Duration::from_millis(1 + jitter));
                }
            })
            .await
            .map_err(E::from)?
    }

    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = Arc::clone(&self.pool);
        self.pool
            .run(move |conn| {
                let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
                transaction(conn, pool.manager(), begin, f).0
            })
            .await
            .map_err(E::from)?
    }
}

impl Postgres {
    /// One read-only statement on its own: no `BEGIN`, no `COMMIT`, one round trip.
    pub async fn query(&self, sql: String, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        let pool = Arc::clone(&self.pool);
        self.pool
            .run(move |conn| {
                let mut lone = PgTx::new(conn, pool.manager(), None);
                lone.query(&sql, &params)
            })
            .await?
    }
}

/// Runs `f` in one transaction; the flag says whether running it again may succeed.
fn transaction<T, E, F>(
    conn: &mut PgConn,
    connector: &Connector,
    begin: &'static str,
    f: F,
) -> (Result<T, E>, bool)
where
    F: FnOnce(&mut dyn Tx) -> Result<T, E>,
    E: From<DbError>,
{
    let mut tx = PgTx::new(conn, connector, Some(begin));
    let out = f(&mut tx);
    let out = match (out, tx.first_error.take()) {
        (Ok(value), None) if !tx.begun && tx.deferred.is_empty() => return (Ok(value), false),
        (Ok(value), None) => {
            // The deferred statements and the COMMIT, in one round trip.
            return match tx.send(Some(Step::Commit)) {
                Ok(_) => (Ok(value), false),
                // A failed COMMIT (or a deferred statement) has ended the transaction already.
                Err(e) => (Err(e.into()), tx.retryable),
            };
        }
        (Ok(_), Some(e)) => Err(E::from(e)),
        (Err(e), _) => Err(e),
    };
    let retryable = tx.retryable;
    let (conn, begun) = (tx.conn, tx.begun);
    if begun && !conn.client.is_closed() {
        if let Err(e) = conn.block_on(conn.client.batch_execute("ROLLBACK")) {
            tracing::warn!(error = %e, "PostgreSQL: ROLLBACK failed");
        }
    }
    (out, retryable)
}

fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The server ended the connection (it is closed, or the server says it is going: SQLSTATE
/// classes 08, connection exception, and 57P, operator intervention).
fn is_connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || e.code().is_some_and(|code| {
            let code = code.code();
            code.starts_with("08") || code.starts_with("57P")
        })
}

fn map_error(sql: &str, e: &tokio_postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(db) if *db.code() == SqlState::UNIQUE_VIOLATION => DbError::UniqueViolation {
            sql: sql_head(sql),
            message: db.message().to_owned(),
        },
        Some(db) => DbError::query(sql, format!("{} ({})", db.message(), db.code().code())),
        None if e.is_closed() => DbError::Connection(format!("PostgreSQL: {e}")),
        None => DbError::query(sql, e.to_string()),
    }
}

/// What one pipelined round trip ends with, after the `BEGIN` and the deferred statements.
enum Step<'s> {
    /// A statement whose rows the closure waits for.
    Query(&'s str, &'s [Value]),
    /// A statement whose count of changed rows the closure waits for.
    Execute(&'s str, &'s [Value]),
    Commit,
}

/// What a pipelined request answered.
enum Answer {
    Done,
    Count(u64),
    Rows(Vec<tokio_postgres::Row>),
}

type Request<'a> = Pin<Box<dyn Future<Output = Result<Answer, tokio_postgres::Error>> + 'a>>;

/// The `Tx` of a PostgreSQL transaction.
struct PgTx<'c> {
    conn: &'c mut PgConn,
    connector: &'c Connector,
    /// What starts the transaction; `None` for a lone statement ([`Postgres::query`]).
    begin: Option<&'static str>,
    /// Something has been sent (the `BEGIN` with it).
    begun: bool,
    /// Statements that go out with the next round trip.
    deferred: Vec<(String, Vec<Value>)>,
    /// The first statement that failed: PostgreSQL has aborted the transaction.
    first_error: Option<DbError>,
    /// A statement failed with a serialization failure or a deadlock.
    retryable: bool,
    /// Connections replaced so far (see [`PgTx::reconnect`]).
    connections: u32,
}

impl<'c> PgTx<'c> {
    /// Past this many distinct statements a connection forgets them all (see `sql.rs`).
    const MAX_STATEMENTS: usize = 512;

    fn new(conn: &'c mut PgConn, connector: &'c Connector, begin: Option<&'static str>) -> Self {
        PgTx {
            conn,
            connector,
            begin,
            begun: false,
            deferred: Vec::new(),
            first_error: None,
            retryable: false,
            connections: 0,
        }
    }

    /// Replaces the connection, which the server closed since its last use.
    fn reconnect(&mut self) -> Result<(), DbError> {
        tracing::info!("PostgreSQL: the connection was closed by the server, reconnecting");
        *self.conn = self.connector.connect()?;
        self.connections += 1;
        Ok(())
    }

    fn failed(&mut self, sql: &str, e: &tokio_postgres::Error) -> DbError {
        self.retryable |= is_retryable(e);
        let e = map_error(sql, e);
        if self.first_error.is_none() {
            self.first_error = Some(e.clone());
        }
        e
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(stmt) = self.conn.statements.get(sql) {
            return Ok(stmt.clone());
        }
        let mut prepared = self.conn.block_on(self.conn.client.prepare(sql));
        if matches!(&prepared, Err(e) if !self.begun && is_connection_lost(e)) {
            // Nothing of this transaction was sent: a connection the server closed since its
            // last use is replaced, as at the `BEGIN` (see `send`).
            self.reconnect()?;
            prepared = self.conn.block_on(self.conn.client.prepare(sql));
        }
        let stmt = match prepared {
            Ok(stmt) => stmt,
            Err(e) => return Err(self.failed(sql, &e)),
        };
        if self.conn.statements.len() >= Self::MAX_STATEMENTS {
            self.conn.statements.clear();
        }
        self.conn.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    /// Sends, in one round trip, the `BEGIN` if not sent yet, the deferred statements and
    /// `last`, and returns what `last` answered. The first error of any of them is the error
    /// (PostgreSQL has then aborted the transaction, and answers the rest with errors).
    ///
    /// When the `BEGIN` is in it and fails, the connection was closed by the server since its
    /// last use (a restart, an administrator, an idle timeout; the error may arrive as the
    /// answer to the `BEGIN` itself), and nothing of this transaction has reached the server:
    /// it is replaced once and the round trip sent again.
    fn send(&mut self, last: Option<Step<'_>>) -> Result<Answer, DbError> {
        let with_begin = !self.begun;
        let deferred = std::mem::take(&mut self.deferred);
        let mut answers = self.prepare_and_send(with_begin, &deferred, &last)?;
        // A healthy connection does not fail a `BEGIN`.
        let lost = match answers.first() {
            Some(Err(e)) => self.begin.is_some() || is_connection_lost(e),
            _ => false,
        };
        if with_begin && lost {
            self.reconnect()?;
            answers = self.prepare_and_send(true, &deferred, &last)?;
        }
        self.answered(answers, with_begin, &deferred, &last)
    }

    /// Prepares what is not yet (on this connection), then [`PgTx::round_trip`].
    fn prepare_and_send(
        &mut self,
        with_begin: bool,
        deferred: &[(String, Vec<Value>)],
        last: &Option<Step<'_>>,
    ) -> Result<Vec<Result<Answer, tokio_postgres::Error>>, DbError> {
        loop {
            let connection = self.connections;
            let statements = deferred
                .iter()
                .map(|(sql, _)| self.statement(sql))
                .collect::<Result<Vec<_>, _>>()?;
            let last_stmt = match last {
                Some(Step::Query(sql, _) | Step::Execute(sql, _)) => Some(self.statement(sql)?),
                _ => None,
            };
            // Statements prepared on a connection replaced meanwhile are prepared again.
            if connection == self.connections {
                return Ok(self.round_trip(
                    with_begin,
                    &statements,
                    deferred,
                    last,
                    last_stmt.as_ref(),
                ));
            }
        }
    }

    /// One pipelined round trip: every request is sent before any answer is read.
    fn round_trip<'a>(
        &'a self,
        with_begin: bool,
        statements: &'a [Statement],
        deferred: &'a [(String, Vec<Value>)],
        last: &'a Option<Step<'_>>,
        last_stmt: Option<&'a Statement>,
    ) -> Vec<Result<Answer, tokio_postgres::Error>> {
        let client = &self.conn.client;
        let mut requests: Vec<Request<'a>> = Vec::with_capacity(deferred.len() + 2);
        if let (true, Some(begin)) = (with_begin, self.begin) {
            requests.push(Box::pin(async move {
                client.batch_execute(begin).await.map(|()| Answer::Done)
            }));
        }
        let execute = |stmt: &'a Statement, params: &'a [Value]| -> Request<'a> {
            Box::pin(async move {
                client
                    .execute(stmt, &as_params(params))
                    .await
                    .map(Answer::Count)
            })
        };
        for (stmt, (_, params)) in statements.iter().zip(deferred) {
            requests.push(execute(stmt, params));
        }
        match (last, last_stmt) {
            (Some(Step::Query(_, params)), Some(stmt)) => {
                requests.push(Box::pin(async move {
                    client
                        .query(stmt, &as_params(params))
                        .await
                        .map(Answer::Rows)
                }));
            }
            (Some(Step::Execute(_, params)), Some(stmt)) => requests.push(execute(stmt, params)),
            (Some(Step::Commit), _) => {
                requests.push(Box::pin(async move {
                    client.batch_execute("COMMIT").await.map(|()| Answer::Done)
                }));
            }
            _ => {}
        }
        self.conn.block_on(in_order(requests))
    }

    /// The answer of the round trip's last request, or its first error.
    fn answered(
        &mut self,
        answers: Vec<Result<Answer, tokio_postgres::Error>>,
        with_begin: bool,
        deferred: &[(String, Vec<Value>)],
        last: &Option<Step<'_>>,
    ) -> Result<Answer, DbError> {
        self.begun = true;
        let sqls = self
            .begin
            .filter(|_| with_begin)
            .into_iter()
            .chain(deferred.iter().map(|(sql, _)| sql.as_str()))
            .chain(last.iter().map(|step| match step {
                Step::Query(sql, _) | Step::Execute(sql, _) => *sql,
                Step::Commit => "COMMIT",
            }));
        let mut outcome = Ok(Answer::Done);
        for (sql, answer) in sqls.zip(answers) {
            match answer {
                Ok(answer) => outcome = outcome.map(|_| answer),
                Err(e) => {
                    let e = self.failed(sql, &e);
                    if outcome.is_ok() {
                        outcome = Err(e);
                    }
                }
            }
        }
        if let Some(e) = &self.first_error {
            if outcome.is_ok() {
                // The transaction failed earlier (a caught error): so does everything after.
                outcome = Err(e.clone());
            }
        }
        outcome
    }
}

/// Polls `requests` in their order until all have answered: each is sent at its first poll,
/// so they leave in this order, and the connection writes them out together.
async fn in_order(mut requests: Vec<Request<'_>>) -> Vec<Result<Answer, tokio_postgres::Error>> {
    let mut answers: Vec<Option<Result<Answer, tokio_postgres::Error>>> =
        requests.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut waiting = false;
        for (request, answer) in requests.iter_mut().zip(answers.iter_mut()) {
            if answer.is_none() {
                match request.as_mut().poll(cx) {
                    Poll::Ready(out) => *answer = Some(out),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    answers.into_iter().flatten().collect()
}

fn as_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn decode_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<Row>, DbError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    rows.iter()
        .map(|row| {
            let values = (0..columns.len())
                .map(|i| {
                    row.try_get::<_, Value>(i).map_err(|e| {
                        let cause = e.source().map(|s| format!(": {s}")).unwrap_or_default();
                        DbError::decode(&columns[i], format!("{e}{cause}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Row::new(Arc::clone(&columns), values))
        })
        .collect()
}

impl Tx for PgTx<'_> {
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match self.send(Some(Step::Query(sql, params)))? {
            Answer::Rows(rows) => decode_rows(&rows),
            _ => Ok(Vec::new()),
        }
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match self.send(Some(Step::Execute(sql, params)))? {
            Answer::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    fn defer(&mut self, sql: &str, params: &[Value]) -> Result<(), DbError> {
        if let Some(e) = &self.first_error {
            return Err(e.clone());
        }
        self.deferred.push((sql.to_owned(), params.to_vec()));
        Ok(())
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), DbError> {
        // Simple-query text, sent after whatever is waiting.
        self.send(None)?;
        let done = self.conn.block_on(self.conn.client.batch_execute(sql));
        match done {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(sql, &e)),
        }
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::BOOL if *v == 0 || *v == 1 => (*v == 1).to_sql(ty, out),
                _ => Err(mismatch(self, ty)),
            },
            Value::Text(v) if <String as ToSql>::accepts(ty) => v.to_sql(ty, out),
            Value::Bytes(v) if <Vec<u8> as ToSql>::accepts(ty) => v.to_sql(ty, out),
            Value::Text(_) | Value::Bytes(_) => Err(mismatch(self, ty)),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL)
            || <String as ToSql>::accepts(ty)
            || <Vec<u8> as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

fn mismatch(value: &Value, ty: &Type) -> BoxError {
    format!("cannot bind {} to a parameter of type {ty}", value.kind()).into()
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Bytes(Vec::<u8>::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL | Type::BYTEA
        ) || <String as FromSql>::accepts(ty)
    }
}
