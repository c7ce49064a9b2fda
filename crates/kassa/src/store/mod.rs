//! The gateway's store: all of its SQL, written once for SQLite and PostgreSQL over [`Db`].
//!
//! One [`Store`], handed out as repositories (`store.invoices()`, `refunds()`, `jobs()`,
//! `webhooks()`, `orgs()`, `subscriptions()`), each with a method per question or change, each one transaction. Every status change
//! writes its `invoice_events` row in the same transaction (the outbox), and such transactions
//! ring [`Store::events_committed`] once committed (the webhook dispatcher's wake-up); jobs are rows leased
//! with `UPDATE … RETURNING`. The only dialect difference used is [`Dialect::skip_locked`](crate::db::Dialect::skip_locked)
//! (`crate::db::Dialect`); the tables come from `migrations/*/0002_gateway.sql`.
//!
//! - `orgs.rs`: organizations, API keys; `cashiers.rs`: their Kaspi cashiers (terminals).
//! - `invoices.rs`: invoices, status changes and their events; `invoice_list.rs`: listing and
//!   stats; `invoice_counts.rs`: counts and sums kept per organization, status and day.
//! - `jobs.rs`: scheduling, claiming and finishing jobs.
//! - `idempotency.rs`: `Idempotency-Key` records.
//! - `limits.rs`: the API key revocation generation and rate-limit quota leases.
//! - `history.rs`: operations synced from Kaspi's history (static QR payments).
//! - `refunds.rs`: refunds reserved against their invoice, and their ends.
//! - `bulk.rs`: invoices seeded in bulk (load tests), many rows per statement.
//! - `webhooks/`: webhook endpoints, the dispatch of events into deliveries, attempts.
//! - `settings.rs`: run-time settings (on [`Store`] itself).
//! - `catalog.rs`: catalog items and images.
//! - `users.rs`: dashboard users, sessions, one-time sign-in links.
//! - `audit.rs`: the audit log, written by the changing methods in their own transactions.
//! - `subscriptions/`: subscriptions made and changed (`manage.rs`), each due period billed once
//!   (`billing.rs`), what the end of their invoices means (`outcomes.rs`).

pub mod audit;
mod bulk;
mod cashiers;
mod catalog;
mod history;
mod idempotency;
mod invoice_counts;
mod invoice_list;
mod invoices;
mod jobs;
mod limits;
mod orgs;
mod refunds;
mod settings;
mod subscriptions;
pub mod types;
mod users;
mod values;
mod webhooks;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::db::{Db, DbError, Tx};

pub use audit::{AuditEntry, AuditFilter, Change};
pub use bulk::BulkInvoice;
pub use catalog::{CatalogFilter, CatalogItem, CatalogPatch, NewCatalogItem};
pub use history::{HistoryGap, HistoryMark, KaspiOperation};
pub use idempotency::RUNNING_LEASE_MS;
pub use invoices::OperationEnd;
pub use limits::QuotaLease;
pub use refunds::{NewRefund, RefundCreated, RefundFilter, RefundItem, RefundRefusal};
pub use subscriptions::{
    ActError, Billed, BillingTemplate, CartLine, NewSubscription, Subscription, SubscriptionEvent,
    SubscriptionEventFacts, SubscriptionFilter, SubscriptionInvoice, SubscriptionStats,
    SubscriptionUpdate,
};
pub use types::*;
pub use users::{DashboardSession, DashboardUser, Member, TeamChange, LAST_OWNER, ROLE_CHANGED};
pub(crate) use values::DomainColumns;
pub use webhooks::{
    AttemptOutcome, AttemptRecord, DeliveryStatus, DispatchLease, Dispatched, EndpointHealth,
    EventRows, EventToDispatch, FormatBody, NewWebhookEndpoint, Payload, PendingEvent,
    WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEndpointUpdate, WebhookFormat,
};

/// An error of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (or belongs to another organization).
    #[error("not found")]
    NotFound,
    /// The change collides with existing data, e.g. a duplicate slug.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What every repository holds: the database (and the same for writes that may add outbox
/// events), the clock, this handle's count of key revocations. Repositories deref to it.
#[derive(Debug, Clone)]
pub struct Repo {
    db: Db,
    /// Every "now" the store needs and its callers take.
    clock: Clock,
    /// Revocations of API keys made through this handle (see [`OrgRepo::revocations_here`]).
    revocations_here: Arc<AtomicU64>,
    /// The database, for writes that may add outbox events.
    outbox: Outbox,
}

impl Repo {
    /// Now on the store's clock, in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// The database, for the transactions that may write `invoice_events` rows (the outbox): each
/// one, once committed, rings [`Store::events_committed`], so this process's webhook
/// dispatcher takes the events up at once rather than at its next poll.
#[derive(Debug, Clone)]
struct Outbox {
    db: Db,
    committed: Arc<Notify>,
}

impl Outbox {
    /// [`Db::write`], and the ring once it has committed.
    async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let written = self.db.write(f).await;
        if written.is_ok() {
            self.committed.notify_one();
        }
        written
    }
}

/// Declares repositories: each one a group of the store's methods over the shared [`Repo`].
macro_rules! repositories {
    ($($(#[$meta:meta])* $name:ident => $accessor:ident;)*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone)]
            pub struct $name(Repo);

            impl std::ops::Deref for $name {
                type Target = Repo;

                fn deref(&self) -> &Repo {
                    &self.0
                }
            }
        )*

        /// The gateway's store, handed out as repositories; cheap to clone.
        #[derive(Debug, Clone)]
        pub struct Store {
            repo: Repo,
            $($accessor: $name,)*
        }

        impl Store {
            /// A store over `db` whose "now" is `clock`'s.
            pub fn with_clock(db: Db, clock: Clock) -> Store {
                let repo = Repo {
                    outbox: Outbox {
                        db: db.clone(),
                        committed: Arc::new(Notify::new()),
                    },
                    db,
                    clock,
                    revocations_here: Arc::new(AtomicU64::new(0)),
                };
                Store {
                    $($accessor: $name(repo.clone()),)*
                    repo,
                }
            }

            $(
                $(#[$meta])*
                pub fn $accessor(&self) -> &$name {
                    &self.$accessor
                }
            )*
        }
    };
}

repositories! {
    /// Invoices: made, sent, changed (with their outbox events), listed and counted; the
    /// operations read from Kaspi's history; invoices seeded in bulk.
    InvoiceRepo => invoices;
    /// Refunds: reserved against their invoice, sent, ended.
    RefundRepo => refunds;
    /// Leased jobs: scheduled, claimed, renewed, finished.
    JobRepo => jobs;
    /// Webhook endpoints, the outbox dispatched into deliveries, attempts and their log.
    WebhookRepo => webhooks;
    /// Organizations, API keys (and their revocations, rate-limit quotas, idempotency
    /// records), cashier terminals.
    OrgRepo => orgs;
    /// Subscriptions: made, changed, billed once per period and attempt, their invoices.
    SubscriptionRepo => subscriptions;
    /// The catalog: items and their images.
    CatalogRepo => catalog;
    /// Dashboard users, their sessions and one-time sign-in links.
    UserRepo => users;
    /// The audit log: who changed what, read back and pruned.
    AuditRepo => audit;
}

impl Store {
    /// A store over `db`, which must be migrated.
    pub fn new(db: Db) -> Store {
        Store::with_clock(db, Clock::system())
    }

    /// The clock of this store and of everything built on it.
    pub fn clock(&self) -> &Clock {
        &self.repo.clock
    }

    /// Now on [`Store::clock`], in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.repo.now_ms()
    }

    /// The database underneath.
    pub fn db(&self) -> &Db {
        &self.repo.db
    }

    /// Rung (one wake-up kept until taken, as [`Notify::notify_one`]) each time a transaction
    /// of this store that may have written outbox events has committed: this process's webhook
    /// dispatcher waits on it between its polls. Events committed by other processes sharing
    /// the database do not ring it; the dispatcher's poll finds those.
    pub fn events_committed(&self) -> &Notify {
        &self.repo.outbox.committed
    }
}

/// Turns a unique violation into [`StoreError::Conflict`] with `what`.
fn conflict_on_unique<T>(result: Result<T, StoreError>, what: &str) -> Result<T, StoreError> {
    match result {
        Err(StoreError::Db(DbError::UniqueViolation { .. })) => {
            Err(StoreError::Conflict(what.to_owned()))
        }
        other => other,
    }
}

/// How many rows `count_sql` counts, and the page `page_sql` reads with `limit` and `offset`
/// as its last two parameters after `params`, each row read by `from_row`: one list answer.
pub(crate) fn counted_page<T>(
    tx: &mut dyn crate::db::Tx,
    count_sql: &str,
    page_sql: &str,
    mut params: Vec<crate::db::Value>,
    limit: i64,
    offset: i64,
    from_row: fn(&crate::db::Row) -> Result<T, DbError>,
) -> Result<(Vec<T>, i64), DbError> {
    let total = tx.query_one(count_sql, &params)?.i64("n")?;
    params.push(limit.into());
    params.push(offset.into());
    let rows = tx.query(page_sql, &params)?;
    let items = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Every row `sql` reads with `params`, each read by `from_row`.
pub(crate) fn all_rows<T>(
    tx: &mut dyn crate::db::Tx,
    sql: &str,
    params: &[crate::db::Value],
    from_row: fn(&crate::db::Row) -> Result<T, DbError>,
) -> Result<Vec<T>, DbError> {
    tx.query(sql, params)?.iter().map(from_row).collect()
}

/// `$from, $from+1, …`: `n` placeholders, for `IN (…)` lists.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($from, …), (…), …`: `rows` rows of `width` placeholders each, numbered from `from`, for
/// multi-row `VALUES`.
pub(crate) fn value_rows(from: usize, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(from + row * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}
