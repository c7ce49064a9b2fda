//! Kassa, a self-hosted Kaspi Pay gateway.
//!
//! - [`db`]: the database access layer: one `Db` over SQLite (default) or PostgreSQL,
//!   synchronous transaction closures, embedded migrations.

pub mod db;
