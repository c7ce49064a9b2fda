//! Kassa, a self-hosted Kaspi Pay gateway.
//!
//! Layers, each using only those below it: [`api`] and [`cli`] on top; [`gateway`], [`jobs`]
//! and [`webhooks`] behind them; [`store`] (all SQL) over [`db`]; [`domain`] and [`clock`] used
//! by all.
//!
//! - [`domain`]: money, phones, Kaspi operation ids, the statuses and the moves they allow, the
//!   kinds of jobs, the calendar of subscription billing dates. No I/O.
//! - [`clock`]: the one source of "now" (system; manual in tests, stepped forward).
//! - [`api`]: the HTTP surfaces. `api::apipay` and `api::xpayment` hold each surface's routes,
//!   handlers by resource, views (JSON from domain values) and errors; `api::webhooks` the
//!   endpoint API; auth, rate limit, idempotency and the JSON error sentences beside them.
//! - [`gateway`]: what a payment does at Kaspi. **Invoice creation**: `gateway/invoices.rs`
//!   (`create_invoice`: stored with its reconcile job and marker, then sent); QR links in
//!   `gateway/qr.rs`; **a refund**: `gateway/refunds.rs` (`request_refund` reserves it,
//!   `advance_refund` sends or confirms it); **a status change found in history**:
//!   `gateway/history.rs` (`sync_history`, settling invoices through the store); cashier
//!   sessions in `gateway/terminals.rs`; the sandbox in `gateway/bootstrap.rs`; **a
//!   subscription's due period**: `gateway/subscriptions.rs` (`bill_subscription`: stored by
//!   `store.subscriptions().bill_due` with the schedule moved on, then sent like any invoice).
//! - [`jobs`]: the background runner: leased rows dispatched on `JobKind` (`jobs/poll.rs`,
//!   `reconcile.rs`, `refund.rs`, `history.rs`, `subscription.rs`; `retry.rs` for schedules)
//!   and the webhook
//!   pipeline, under one cancellation token; `Jobs::run_until_idle` steps it all.
//! - [`webhooks`]: endpoints, the outbox dispatched into signed deliveries (`webhooks/dispatch.rs`,
//!   `delivery.rs`); **a webhook retry** is decided by the attempt (`webhooks/attempt.rs`: the
//!   schedule or `Retry-After`) and recorded under its lease (`store/webhooks/attempts.rs`).
//! - [`store`]: every SQL statement, as repositories: `store.invoices()` (invoices, their events
//!   — the outbox —, Kaspi's history), `refunds()`, `jobs()`, `webhooks()`, `orgs()`
//!   (organizations, API keys, idempotency, quotas, terminals), `subscriptions()` (billed once
//!   per period and attempt; an invoice's end moves its subscription in the same transaction).
//! - [`db`]: one `Db` over SQLite (default) or PostgreSQL, transaction closures, migrations.
//! - [`audit`]: who acts in the request or command in hand, for the audit log the store
//!   writes beside every change a person or key makes.
//! - [`app`]: builds and runs the server; [`server`]: the HTTP listener (limits, timeouts,
//!   drain); [`config`]: one typed configuration; [`datadir`]: the owner-only data dir and its
//!   lock; [`logging`]: the log's format, start line and notes; [`secrets`]: master key,
//!   sealed secrets, API key hashes; [`qr`]: QR images; [`images`]:
//!   catalog images; [`cli`]:
//!   the administration commands.

pub mod api;
pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod datadir;
pub mod db;
pub mod domain;
pub mod gateway;
pub mod images;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod qr;
pub mod secrets;
pub mod server;
pub mod store;
pub mod webhooks;
