//! A fresh PostgreSQL database per measured server: `kassa_bench_<random>` on the server at
//! `KASSA_BENCH_POSTGRES_URL` (default [`DEFAULT_POSTGRES_URL`]), dropped when the
//! [`PgDatabase`] is dropped, on the error path too. The work is Kassa's own
//! [`kassa::db::testing::ScratchDatabase`].

use kassa::db::testing::ScratchDatabase;

pub use kassa::db::testing::{check_server as check, redact, DEFAULT_POSTGRES_URL};

/// The administration URL from the environment or the default.
pub fn admin_url_from_env() -> String {
    std::env::var("KASSA_BENCH_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A database made for one measurement.
pub struct PgDatabase(ScratchDatabase);

impl PgDatabase {
    pub fn create(admin_url: &str) -> Result<PgDatabase, String> {
        ScratchDatabase::create(admin_url, "kassa_bench").map(PgDatabase)
    }

    /// The URL of the new database.
    pub fn url(&self) -> &str {
        self.0.url()
    }
}
