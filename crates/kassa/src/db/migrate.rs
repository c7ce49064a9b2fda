//! Schema migrations, embedded at compile time and applied in order by [`Db::migrate`].
//!
//! Each migration exists twice, `migrations/sqlite/NNNN_name.sql` and
//! `migrations/postgres/NNNN_name.sql`, with the same number and name; adding one means adding
//! both files and one line to the list below (a test checks the lists against the folders).
//! Integer columns are BIGINT on both (booleans 0/1, timestamps unix ms). A migration is never
//! edited once released: a change is a new migration.
//!
//! Applied versions are recorded in `schema_migrations`. Everything runs in one write
//! transaction; on PostgreSQL it first takes an advisory lock, so processes starting at once
//! apply each migration exactly once (the others wait, then find nothing left to do).

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Db, DbError, Dialect, Tx};

/// One embedded migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The `NNNN` of the file name.
    pub version: i64,
    /// The rest of the file name, without `.sql`.
    pub name: &'static str,
    /// The SQL, possibly several statements.
    pub sql: &'static str,
}

/// Defines `SQLITE` and `POSTGRES` from one list of `version "name" "file stem"`.
macro_rules! migrations {
    ($($version:literal $name:literal $file:literal),* $(,)?) => {
        const SQLITE: &[Migration] = &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../migrations/sqlite/", $file, ".sql")),
        }),*];
        const POSTGRES: &[Migration] = &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../migrations/postgres/", $file, ".sql")),
        }),*];
    };
}

migrations! {
    1 "init" "0001_init",
    2 "gateway" "0002_gateway",
    3 "payments" "0003_payments",
    4 "webhooks" "0004_webhooks",
    5 "invoice_keyset" "0005_invoice_keyset",
    6 "history_gap" "0006_history_gap",
    7 "invoice_counts" "0007_invoice_counts",
    8 "crash_safety" "0008_crash_safety",
    9 "key_limits" "0009_key_limits",
    10 "settings" "0010_settings",
    11 "operation_ids" "0011_operation_ids",
    12 "subscriptions" "0012_subscriptions",
    13 "catalog" "0013_catalog",
    14 "dashboard" "0014_dashboard",
    15 "invoice_day_counts" "0015_invoice_day_counts",
    16 "cashiers" "0016_cashiers",
    17 "audit" "0017_audit",
    19 "key_scopes" "0019_key_scopes",
    20 "test_mode" "0020_test_mode",
    21 "totp" "0021_totp",
    22 "refund_sandbox" "0022_refund_sandbox",
}

/// The migrations for `dialect`, in the order they apply.
pub fn migrations(dialect: Dialect) -> &'static [Migration] {
    match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    }
}

/// Key of the PostgreSQL advisory lock that serializes migrations ("kassa" in ASCII).
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(461195539297)";

impl Db {
    /// Applies the migrations this build knows and the database has not seen. Safe to call
    /// again, and from several processes at once.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let applied = self.write(apply).await?;
        if !applied.is_empty() {
            tracing::info!(
                dialect = self.dialect().name(),
                versions = ?applied,
                "database migrations applied"
            );
        }
        Ok(())
    }
}

fn apply(tx: &mut dyn Tx) -> Result<Vec<i64>, DbError> {
    let dialect = tx.dialect();
    if dialect == Dialect::Postgres {
        tx.batch_execute(MIGRATION_LOCK)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )?;
    let done = tx
        .query("SELECT version FROM schema_migrations", &[])?
        .iter()
        .map(|row| row.i64("version"))
        .collect::<Result<HashSet<i64>, _>>()?;
    let known = migrations(dialect);
    if let Some(newer) = done
        .iter()
        .filter(|v| !known.iter().any(|m| m.version == **v))
        .max()
    {
        tracing::warn!(
            version = newer,
            "the database has a migration this build does not know: is a newer kassa running?"
        );
    }
    let mut applied = Vec::new();
    for migration in known.iter().filter(|m| !done.contains(&m.version)) {
        tx.batch_execute(migration.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[
                migration.version.into(),
                migration.name.into(),
                unix_ms().into(),
            ],
        )?;
        applied.push(migration.version);
    }
    Ok(applied)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
