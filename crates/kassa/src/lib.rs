//! Kassa, a self-hosted Kaspi Pay gateway.
//!
//! - [`app`]: builds and runs the server (`App::build(config)`, `run_until_stopped`).
//! - [`cli`]: the binary's administration commands: organizations, API keys, cashier login,
//!   the Kaspi app build (a run-time setting).
//! - [`config`]: one typed configuration (defaults, file, environment, flags).
//! - [`datadir`]: the data dir made owner-only, and the lock `kassa serve` holds on it.
//! - [`gateway`]: what happens behind the API: invoices sent to Kaspi and followed, cashier
//!   sessions, background workers, the sandbox payer.
//! - [`qr`]: payment links rendered as QR codes (SVG or PNG) for a shop's screen.
//! - [`secrets`]: master key, sealed secrets, API key hashes.
//! - [`server`]: the HTTP listener: connection cap, header/body/idle/request timeouts, drain.
//! - [`store`]: all gateway SQL (orgs, API keys, terminals, invoices and their status events,
//!   leased jobs, idempotency keys), written once over [`db`].
//! - [`webhooks`]: webhook endpoints, the outbox dispatched into signed, retried, logged
//!   deliveries (a leased worker), SSRF guard, the xPayment simulator; API and CLI call it.
//! - [`db`]: the database access layer: one `Db` over SQLite (default) or PostgreSQL,
//!   synchronous transaction closures, embedded migrations.

pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod datadir;
pub mod db;
pub mod domain;
pub mod gateway;
pub mod jobs;
pub mod qr;
pub mod secrets;
pub mod server;
pub mod store;
pub mod webhooks;
