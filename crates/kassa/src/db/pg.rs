//! The PostgreSQL backend: a pool of synchronous `postgres` connections used on tokio's
//! blocking threads.
//!
//! Each connection keeps its prepared statements, so a statement costs one round trip after its
//! first use. Writes run in `BEGIN … COMMIT` (READ COMMITTED) and are re-run, up to
//! `postgres_retries` times, after a serialization failure (40001) or a deadlock (40P01). Reads
//! run in a `REPEATABLE READ, READ ONLY` transaction: one snapshot for the whole closure.
//!
//! Values: BIGINT/INTEGER/SMALLINT and BOOLEAN read as `Value::Int` (booleans 0/1), TEXT and
//! VARCHAR as `Value::Text`, BYTEA as `Value::Bytes`; other types are a decode error (cast a
//! `SUM(bigint)`, which is NUMERIC, back with `CAST(… AS BIGINT)`). An `Int` binds to any integer
//! column (range-checked) or to a BOOLEAN (0/1 only). Connections are plain TCP (no TLS).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{FromSql, IsNull, ToSql, Type};
use postgres::{Client, Config, NoTls, Statement};

use super::error::sql_head;
use super::pool::{Manage, Pool};
use super::{DbError, DbOptions, Dialect, Row, Tx, Value};

/// The PostgreSQL side of a `Db`.
pub struct Postgres {
    pool: Arc<Pool<Connector>>,
    retries: u32,
}

/// A connection with its prepared statements.
pub struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

struct Connector {
    config: Config,
}

impl Manage for Connector {
    type Conn = PgConn;

    fn connect(&self) -> Result<PgConn, DbError> {
        let client = self
            .config
            .connect(NoTls)
            .map_err(|e| DbError::Connection(format!("PostgreSQL: {e}")))?;
        Ok(PgConn {
            client,
            statements: HashMap::new(),
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
        // `CREATE TABLE IF NOT EXISTS` and friends send notices; they are not worth a log line.
        config.notice_callback(|notice| {
            tracing::debug!(message = notice.message(), "PostgreSQL notice");
        });
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

/// Runs `f` in one transaction; the flag says whether running it again may succeed.
fn transaction<T, E, F>(
    conn: &mut PgConn,
    connector: &Connector,
    begin: &str,
    f: F,
) -> (Result<T, E>, bool)
where
    F: FnOnce(&mut dyn Tx) -> Result<T, E>,
    E: From<DbError>,
{
    if let Err(e) = start(conn, connector, begin) {
        return (Err(e.into()), false);
    }
    let mut tx = PgTx {
        conn,
        first_error: None,
        retryable: false,
    };
    let out = f(&mut tx);
    let PgTx {
        conn,
        first_error,
        retryable,
    } = tx;
    let out = match (out, first_error) {
        (Ok(value), None) => {
            return match conn.client.batch_execute("COMMIT") {
                Ok(()) => (Ok(value), false),
                // A failed COMMIT has ended the transaction already.
                Err(e) => (Err(map_error("COMMIT", &e).into()), is_retryable(&e)),
            };
        }
        (Ok(_), Some(e)) => Err(E::from(e)),
        (Err(e), _) => Err(e),
    };
    if !conn.client.is_closed() {
        if let Err(e) = conn.client.batch_execute("ROLLBACK") {
            tracing::warn!(error = %e, "PostgreSQL: ROLLBACK failed");
        }
    }
    (out, retryable)
}

/// Runs `begin`. If that fails, the pooled connection is replaced once: nothing of this
/// transaction was sent on it, and a healthy connection does not fail a `BEGIN`, so the failure
/// is a connection the server closed since its last use (a restart, an administrator, an idle
/// timeout), whose error may arrive as the answer to the `BEGIN` itself.
fn start(conn: &mut PgConn, connector: &Connector, begin: &str) -> Result<(), DbError> {
    if let Err(e) = conn.client.batch_execute(begin) {
        tracing::info!(error = %e, "PostgreSQL: BEGIN failed, reconnecting");
        *conn = connector.connect()?;
        conn.client
            .batch_execute(begin)
            .map_err(|e| map_error(begin, &e))?;
    }
    Ok(())
}

fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

fn map_error(sql: &str, e: &postgres::Error) -> DbError {
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

/// The `Tx` of a PostgreSQL transaction.
struct PgTx<'c> {
    conn: &'c mut PgConn,
    /// The first statement that failed: PostgreSQL has aborted the transaction.
    first_error: Option<DbError>,
    /// A statement failed with a serialization failure or a deadlock.
    retryable: bool,
}

impl PgTx<'_> {
    /// Past this many distinct statements a connection forgets them all (see `sql.rs`).
    const MAX_STATEMENTS: usize = 512;

    fn failed(&mut self, sql: &str, e: &postgres::Error) -> DbError {
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
        let stmt = match self.conn.client.prepare(sql) {
            Ok(stmt) => stmt,
            Err(e) => return Err(self.failed(sql, &e)),
        };
        if self.conn.statements.len() >= Self::MAX_STATEMENTS {
            self.conn.statements.clear();
        }
        self.conn.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

fn as_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Tx for PgTx<'_> {
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let stmt = self.statement(sql)?;
        let rows = match self.conn.client.query(&stmt, &as_params(params)) {
            Ok(rows) => rows,
            Err(e) => return Err(self.failed(sql, &e)),
        };
        let columns: Arc<[String]> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
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

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let stmt = self.statement(sql)?;
        match self.conn.client.execute(&stmt, &as_params(params)) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.failed(sql, &e)),
        }
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), DbError> {
        match self.conn.client.batch_execute(sql) {
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

    postgres::types::to_sql_checked!();
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
