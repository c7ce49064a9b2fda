//! A fresh PostgreSQL database per measured server: `kassa_bench_<random>` on the server at
//! `KASSA_BENCH_POSTGRES_URL` (default [`DEFAULT_POSTGRES_URL`]), dropped when the
//! [`PgDatabase`] is dropped, on the error path too.
//!
//! The synchronous `postgres` client panics when used inside a tokio runtime, so its work runs
//! on a plain thread.

use std::error::Error as _;
use std::str::FromStr as _;
use std::time::Duration;

/// Where the PostgreSQL figures are measured unless `KASSA_BENCH_POSTGRES_URL` says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The administration URL from the environment or the default.
pub fn admin_url_from_env() -> String {
    std::env::var("KASSA_BENCH_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// Whether the server answers; the error as text when not.
pub fn check(admin_url: &str) -> Result<(), String> {
    off_runtime(|| {
        admin_connect(admin_url)?
            .simple_query("SELECT 1")
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

/// A database made for one measurement.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    pub fn create(admin_url: &str) -> Result<PgDatabase, String> {
        let name = format!("kassa_bench_{}", uuid::Uuid::new_v4().simple());
        off_runtime(|| {
            admin_connect(admin_url)?
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .map_err(|e| e.to_string())
        })?;
        Ok(PgDatabase {
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

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // FORCE ends connections still open (a server that did not stop cleanly).
        let dropped = off_runtime(|| {
            admin_connect(&self.admin_url)?
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = dropped {
            eprintln!("could not drop the benchmark database {}: {e}", self.name);
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b1"),
            "postgres://postgres@127.0.0.1:5432/b1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "b2"),
            "postgres://u:p@h/b2?sslmode=disable"
        );
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
