//! Webhooks: endpoints, deliveries and their attempts (tables of `0004_webhooks.sql`).
//!
//! - The outbox: `invoice_events` rows are written with every change (invoices.rs,
//!   refunds.rs); [`Store::dispatch_events`] turns a batch of them into their deliveries in
//!   ONE transaction that first marks the events dispatched with a conditional UPDATE
//!   (`dispatched_at IS NULL`, SKIP LOCKED on PostgreSQL). Only the transaction that flips an
//!   event's mark inserts its deliveries, and `(endpoint_id, event_id)` is unique, so an event
//!   makes each endpoint's delivery exactly once however many processes dispatch. What the
//!   bodies are made from is read for the whole batch at once ([`Store::webhook_event_rows`]).
//! - Deliveries are leased like jobs ([`Store::lease_webhook_deliveries`]: `UPDATE …
//!   RETURNING`, SKIP LOCKED on PostgreSQL), or leased to the dispatching worker as they are
//!   made (as many as it has room for); the outcome of an attempt, its log row and the
//!   endpoint's health change are one transaction ([`Store::record_webhook_attempts`] writes
//!   several attempts' records in one, each checking its own lease).
//!
//! Lists of ids are bound in chunks padded to a few sizes, so the statements' texts repeat
//! and stay prepared. Every read by the API takes the organization: another organization's
//! endpoint is simply not found. The plain types are in `types.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::db::{DbError, Row, Tx, Value};

use super::invoices::{invoice_from_row, INVOICE_COLUMNS};
use super::{Invoice, Store, StoreError};

mod types;

pub use types::*;

const ENDPOINT_COLUMNS: &str = "id, endpoint_id, org_id, url, events, format, description, \
     secret_sealed, previous_secret_sealed, previous_secret_until, is_active, disabled_reason, \
     failing_since, created_at, updated_at";

const DELIVERY_COLUMNS: &str = "id, delivery_id, org_id, endpoint_id, event_id, event_type, \
     payload, is_test, status, attempts, schedule_step, next_attempt_at, locked_until, \
     locked_by, last_status, last_error, created_at, updated_at, delivered_at";

const ATTEMPT_COLUMNS: &str = "id, delivery_id, endpoint_id, attempt, at, status_code, \
     latency_ms, response_excerpt, error";

/// The stored form of an event list: names joined with `,` (names never contain one).
fn events_text(events: &[String]) -> String {
    events.join(",")
}

/// The most ids bound by one `IN (…)`.
const IDS_PER_STATEMENT: usize = 256;
/// Row counts of one multi-row `INSERT`, largest first: a batch is written with the fewest
/// statements of these sizes (13 parameters a delivery row, 8 an attempt row).
const ROWS_PER_INSERT: [usize; 4] = [64, 16, 4, 1];

/// `ids` (deduplicated) in chunks of at most [`IDS_PER_STATEMENT`], each padded with its last
/// id to a power of two: few distinct statement texts, and a repeated id changes nothing in
/// an `IN (…)`.
fn id_chunks(ids: impl IntoIterator<Item = i64>) -> Vec<Vec<i64>> {
    let mut seen = HashSet::new();
    let unique: Vec<i64> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
    unique
        .chunks(IDS_PER_STATEMENT)
        .map(|chunk| {
            let mut chunk = chunk.to_vec();
            if let Some(&last) = chunk.last() {
                chunk.resize(chunk.len().next_power_of_two(), last);
            }
            chunk
        })
        .collect()
}

/// Splits `n` rows into statements of the sizes of [`ROWS_PER_INSERT`].
fn insert_sizes(mut n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    for size in ROWS_PER_INSERT {
        while n >= size {
            sizes.push(size);
            n -= size;
        }
    }
    sizes
}

/// Inserts `rows` (each `columns.len()` values) into `table` with the fewest multi-row
/// statements, each ending with `tail` (e.g. `ON CONFLICT … DO NOTHING`); how many rows went
/// in, and the rows `returning` (e.g. `RETURNING id`) gave.
fn insert_rows(
    tx: &mut dyn Tx,
    table: &str,
    columns: &[&str],
    tail: &str,
    returning: Option<&str>,
    rows: Vec<Vec<Value>>,
) -> Result<(u64, Vec<Row>), DbError> {
    let width = columns.len();
    let mut rows = rows.into_iter();
    let mut inserted = 0;
    let mut returned = Vec::new();
    for size in insert_sizes(rows.len()) {
        let values = super::value_rows(1, size, width);
        let mut sql = format!(
            "INSERT INTO {table} ({}) VALUES {values}{tail}",
            columns.join(", ")
        );
        let params: Vec<Value> = rows.by_ref().take(size).flatten().collect();
        match returning {
            Some(returning) => {
                sql.push(' ');
                sql.push_str(returning);
                let got = tx.query(&sql, &params)?;
                inserted += u64::try_from(got.len()).unwrap_or(u64::MAX);
                returned.extend(got);
            }
            None => inserted += tx.execute(&sql, &params)?,
        }
    }
    Ok((inserted, returned))
}

/// The columns of a delivery row made by the dispatcher, in the order of its parameters.
const NEW_DELIVERY_COLUMNS: &[&str] = &[
    "delivery_id",
    "org_id",
    "endpoint_id",
    "event_id",
    "event_type",
    "payload",
    "is_test",
    "status",
    "next_attempt_at",
    "created_at",
    "updated_at",
    "locked_until",
    "locked_by",
];

/// The columns of an attempt's log row, in the order of its parameters.
const NEW_ATTEMPT_COLUMNS: &[&str] = &[
    "delivery_id",
    "endpoint_id",
    "attempt",
    "at",
    "status_code",
    "latency_ms",
    "response_excerpt",
    "error",
];

/// Parameters of one attempt's record in [`record_sql`].
const RECORD_WIDTH: usize = 9;

/// Records `rows` attempts in one statement: per row (`$1…$9` of the first) the delivery, the
/// worker that must hold its lease (NULL: none must), its new status, the schedule steps
/// moved, the next attempt, the HTTP status, the error, when, when delivered. Returns the id,
/// endpoint and attempt count of each delivery changed. Both databases name the columns of
/// `VALUES` `column1…`; the casts type them for PostgreSQL.
fn record_sql(rows: usize) -> String {
    const TYPES: [&str; RECORD_WIDTH] = [
        "BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT", "BIGINT",
    ];
    let values = (0..rows)
        .map(|r| {
            let row = TYPES
                .iter()
                .enumerate()
                .map(|(c, ty)| format!("CAST(${} AS {ty})", r * RECORD_WIDTH + c + 1))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({row})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "UPDATE webhook_deliveries AS d SET status = v.column3, attempts = d.attempts + 1, \
         schedule_step = d.schedule_step + v.column4, next_attempt_at = v.column5, \
         last_status = v.column6, last_error = v.column7, updated_at = v.column8, \
         delivered_at = COALESCE(v.column9, d.delivered_at), locked_until = NULL, \
         locked_by = NULL FROM (VALUES {values}) AS v \
         WHERE d.id = v.column1 \
         AND (d.locked_by = v.column2 OR (v.column2 IS NULL AND d.locked_by IS NULL)) \
         RETURNING id, endpoint_id, attempts"
    )
}

fn endpoint_from_row(row: &Row) -> Result<WebhookEndpoint, DbError> {
    let format = row.text("format")?;
    Ok(WebhookEndpoint {
        id: row.i64("id")?,
        endpoint_id: row.text("endpoint_id")?,
        org_id: row.i64("org_id")?,
        url: row.text("url")?,
        events: row
            .text("events")?
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        format: WebhookFormat::parse(&format)
            .ok_or_else(|| DbError::decode("format", format!("unknown format `{format}`")))?,
        description: row.opt_text("description")?,
        secret_sealed: row.bytes("secret_sealed")?,
        previous_secret_sealed: row.opt_bytes("previous_secret_sealed")?,
        previous_secret_until: row.opt_i64("previous_secret_until")?,
        is_active: row.bool("is_active")?,
        disabled_reason: row.opt_text("disabled_reason")?,
        failing_since: row.opt_i64("failing_since")?,
        created_at: row.i64("created_at")?,
        updated_at: row.i64("updated_at")?,
    })
}

fn delivery_from_row(row: &Row) -> Result<WebhookDelivery, DbError> {
    Ok(WebhookDelivery {
        id: row.i64("id")?,
        delivery_id: row.text("delivery_id")?,
        org_id: row.i64("org_id")?,
        endpoint_id: row.i64("endpoint_id")?,
        event_id: row.opt_i64("event_id")?,
        event_type: row.text("event_type")?,
        payload: row.bytes("payload")?,
        is_test: row.bool("is_test")?,
        status: DeliveryStatus::decode(&row.text("status")?)?,
        attempts: row.i64("attempts")?,
        schedule_step: row.i64("schedule_step")?,
        next_attempt_at: row.opt_i64("next_attempt_at")?,
        locked_until: row.opt_i64("locked_until")?,
        locked_by: row.opt_text("locked_by")?,
        last_status: row.opt_i64("last_status")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.i64("created_at")?,
        updated_at: row.i64("updated_at")?,
        delivered_at: row.opt_i64("delivered_at")?,
    })
}

fn attempt_from_row(row: &Row) -> Result<WebhookAttempt, DbError> {
    Ok(WebhookAttempt {
        id: row.i64("id")?,
        delivery_id: row.i64("delivery_id")?,
        endpoint_id: row.i64("endpoint_id")?,
        attempt: row.i64("attempt")?,
        at: row.i64("at")?,
        status_code: row.opt_i64("status_code")?,
        latency_ms: row.i64("latency_ms")?,
        response_excerpt: row.opt_text("response_excerpt")?,
        error: row.opt_text("error")?,
    })
}

fn endpoint_tx(tx: &mut dyn Tx, org_id: i64, id: i64) -> Result<Option<WebhookEndpoint>, DbError> {
    let sql =
        format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND id = $2");
    tx.query_opt(&sql, &[org_id.into(), id.into()])?
        .as_ref()
        .map(endpoint_from_row)
        .transpose()
}

/// A delivery row to insert.
struct NewDelivery<'a> {
    endpoint: &'a WebhookEndpoint,
    /// `None` for a simulated test event.
    event_id: Option<i64>,
    delivery_id: &'a str,
    event_type: &'a str,
    payload: Vec<u8>,
    status: DeliveryStatus,
}

/// Inserts one delivery (a pending one is due at `now`) unless the endpoint has this event
/// already.
fn insert_delivery_tx(
    tx: &mut dyn Tx,
    new: NewDelivery<'_>,
    now: i64,
) -> Result<Option<WebhookDelivery>, DbError> {
    let is_test = new.event_id.is_none();
    let next = (new.status == DeliveryStatus::Pending).then_some(now);
    let sql = format!(
        "INSERT INTO webhook_deliveries (delivery_id, org_id, endpoint_id, event_id, event_type, \
         payload, is_test, status, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
         ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING {DELIVERY_COLUMNS}"
    );
    let params: [Value; 10] = [
        new.delivery_id.into(),
        new.endpoint.org_id.into(),
        new.endpoint.id.into(),
        new.event_id.into(),
        new.event_type.into(),
        new.payload.into(),
        is_test.into(),
        new.status.as_str().into(),
        next.into(),
        now.into(),
    ];
    tx.query_opt(&sql, &params)?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
}

impl Store {
    /// Stores a new endpoint. `Conflict` when its UUID exists.
    pub async fn insert_webhook_endpoint(
        &self,
        new: NewWebhookEndpoint,
    ) -> Result<WebhookEndpoint, StoreError> {
        let sql = format!(
            "INSERT INTO webhook_endpoints (endpoint_id, org_id, url, events, format, description, \
             secret_sealed, is_active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {ENDPOINT_COLUMNS}"
        );
        let inserted = self
            .db
            .write(move |tx| {
                let params: [Value; 9] = [
                    (&new.endpoint_id).into(),
                    new.org_id.into(),
                    (&new.url).into(),
                    events_text(&new.events).into(),
                    new.format.as_str().into(),
                    new.description.as_ref().into(),
                    new.secret_sealed.clone().into(),
                    new.is_active.into(),
                    new.created_at.into(),
                ];
                Ok(endpoint_from_row(&tx.query_one(&sql, &params)?)?)
            })
            .await;
        super::conflict_on_unique(inserted, "a webhook endpoint with this id exists")
    }

    /// Endpoint `id` of `org_id`.
    pub async fn webhook_endpoint(
        &self,
        org_id: i64,
        id: i64,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.db
            .read(move |tx| Ok(endpoint_tx(tx, org_id, id)?))
            .await
    }

    /// Endpoint `id`, whoever owns it (the delivery worker).
    pub async fn webhook_endpoint_by_id(
        &self,
        id: i64,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[id.into()])?;
                Ok(row.as_ref().map(endpoint_from_row).transpose()?)
            })
            .await
    }

    /// Endpoint of `org_id` by its UUID (xPayment's `subscription_id`).
    pub async fn webhook_endpoint_by_uuid(
        &self,
        org_id: i64,
        endpoint_id: &str,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND endpoint_id = $2"
        );
        let endpoint_id = endpoint_id.to_owned();
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[org_id.into(), endpoint_id.into()])?;
                Ok(row.as_ref().map(endpoint_from_row).transpose()?)
            })
            .await
    }

    /// The endpoints of `org_id`, oldest first.
    pub async fn list_webhook_endpoints(
        &self,
        org_id: i64,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 ORDER BY id"
        );
        self.db
            .read(move |tx| {
                let rows = tx.query(&sql, &[org_id.into()])?;
                Ok(rows
                    .iter()
                    .map(endpoint_from_row)
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Applies `update` to endpoint `id` of `org_id`; `None` when there is no such endpoint.
    pub async fn update_webhook_endpoint(
        &self,
        org_id: i64,
        id: i64,
        update: WebhookEndpointUpdate,
        now: i64,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.db
            .write(move |tx| {
                let Some(current) = endpoint_tx(tx, org_id, id)? else {
                    return Ok(None);
                };
                let url = update.url.clone().unwrap_or(current.url);
                let events = update.events.clone().unwrap_or(current.events);
                let format = update.format.unwrap_or(current.format);
                let description = update.description.clone().unwrap_or(current.description);
                let is_active = update.is_active.unwrap_or(current.is_active);
                let turned_on = is_active && !current.is_active;
                let (disabled_reason, failing_since) = if turned_on {
                    (None, None)
                } else {
                    (current.disabled_reason, current.failing_since)
                };
                let sql = format!(
                    "UPDATE webhook_endpoints SET url = $3, events = $4, format = $5, \
                     description = $6, is_active = $7, disabled_reason = $8, failing_since = $9, \
                     updated_at = $10 WHERE org_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
                );
                let params: [Value; 10] = [
                    org_id.into(),
                    id.into(),
                    url.into(),
                    events_text(&events).into(),
                    format.as_str().into(),
                    description.into(),
                    is_active.into(),
                    disabled_reason.into(),
                    failing_since.into(),
                    now.into(),
                ];
                Ok(tx
                    .query_opt(&sql, &params)?
                    .as_ref()
                    .map(endpoint_from_row)
                    .transpose()?)
            })
            .await
    }

    /// Replaces the endpoint's secret; `previous` (sealed) keeps signing until `previous_until`.
    pub async fn set_webhook_secret(
        &self,
        org_id: i64,
        id: i64,
        secret_sealed: Vec<u8>,
        previous: Option<(Vec<u8>, i64)>,
        now: i64,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let sql = format!(
            "UPDATE webhook_endpoints SET secret_sealed = $3, previous_secret_sealed = $4, \
             previous_secret_until = $5, updated_at = $6 WHERE org_id = $1 AND id = $2 \
             RETURNING {ENDPOINT_COLUMNS}"
        );
        self.db
            .write(move |tx| {
                let (prev, until) = match &previous {
                    Some((sealed, until)) => (Some(sealed.clone()), Some(*until)),
                    None => (None, None),
                };
                let params: [Value; 6] = [
                    org_id.into(),
                    id.into(),
                    secret_sealed.clone().into(),
                    prev.into(),
                    until.into(),
                    now.into(),
                ];
                Ok(tx
                    .query_opt(&sql, &params)?
                    .as_ref()
                    .map(endpoint_from_row)
                    .transpose()?)
            })
            .await
    }

    /// Deletes endpoint `id` of `org_id` with its deliveries and their log; `false` when there
    /// was no such endpoint.
    pub async fn delete_webhook_endpoint(&self, org_id: i64, id: i64) -> Result<bool, StoreError> {
        self.db
            .write(move |tx| {
                if endpoint_tx(tx, org_id, id)?.is_none() {
                    return Ok(false);
                }
                tx.execute(
                    "DELETE FROM webhook_attempts WHERE endpoint_id = $1",
                    &[id.into()],
                )?;
                tx.execute(
                    "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
                    &[id.into()],
                )?;
                let deleted = tx.execute(
                    "DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2",
                    &[org_id.into(), id.into()],
                )?;
                Ok(deleted == 1)
            })
            .await
    }

    /// Up to `limit` events not dispatched yet, oldest first.
    pub async fn undispatched_events(&self, limit: u32) -> Result<Vec<PendingEvent>, StoreError> {
        self.db
            .read(move |tx| {
                let rows = tx.query(
                    "SELECT id, org_id, invoice_id, kind, from_status, to_status, at, refund_id \
                     FROM invoice_events WHERE dispatched_at IS NULL ORDER BY id LIMIT $1",
                    &[limit.into()],
                )?;
                let mut events = Vec::with_capacity(rows.len());
                for row in &rows {
                    events.push(PendingEvent {
                        id: row.i64("id")?,
                        org_id: row.i64("org_id")?,
                        invoice_id: row.i64("invoice_id")?,
                        kind: row.text("kind")?,
                        from_status: row.opt_text("from_status")?,
                        to_status: row.text("to_status")?,
                        at: row.i64("at")?,
                        refund_id: row.opt_i64("refund_id")?,
                    });
                }
                Ok(events)
            })
            .await
    }

    /// What the bodies of events are made from, in one read: the invoices `invoice_ids` by id
    /// (one that is gone is absent) and the slugs of the organizations `org_ids` by id.
    pub async fn webhook_event_rows(
        &self,
        invoice_ids: Vec<i64>,
        org_ids: Vec<i64>,
    ) -> Result<(HashMap<i64, Invoice>, HashMap<i64, String>), StoreError> {
        self.db
            .read(move |tx| {
                let mut invoices = HashMap::with_capacity(invoice_ids.len());
                for chunk in id_chunks(invoice_ids) {
                    let sql = format!(
                        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE id IN ({})",
                        super::placeholders(1, chunk.len())
                    );
                    let params: Vec<Value> = chunk.iter().map(|&id| id.into()).collect();
                    for row in &tx.query(&sql, &params)? {
                        let invoice = invoice_from_row(row)?;
                        invoices.insert(invoice.id, invoice);
                    }
                }
                let mut slugs = HashMap::with_capacity(org_ids.len());
                for chunk in id_chunks(org_ids) {
                    let sql = format!(
                        "SELECT id, slug FROM organizations WHERE id IN ({})",
                        super::placeholders(1, chunk.len())
                    );
                    let params: Vec<Value> = chunk.iter().map(|&id| id.into()).collect();
                    for row in &tx.query(&sql, &params)? {
                        slugs.insert(row.i64("id")?, row.text("slug")?);
                    }
                }
                Ok((invoices, slugs))
            })
            .await
    }

    /// Dispatches a batch of events, each `(event_id, org_id, body)`, in ONE transaction:
    /// marks those not dispatched yet as dispatched (a conditional UPDATE; on PostgreSQL an
    /// event another dispatcher is dispatching right now is skipped, not waited for), and for
    /// each event this transaction marked makes one pending delivery per active endpoint of its
    /// organization that `body` has a body for and that wants the event. The endpoints of each
    /// organization are read once.
    ///
    /// With `lease` = `(worker, until, max)` the first `max` deliveries made are leased to
    /// `worker` until `until` as they are inserted (the dispatching process attempts them
    /// without leasing them again) and returned with their endpoints; the others are left for
    /// [`Store::claim_webhook_deliveries`].
    ///
    /// Returns how many events this transaction marked, how many deliveries it made, and the
    /// deliveries leased; an event another dispatcher got first makes nothing here.
    pub async fn dispatch_events(
        &self,
        events: Vec<(i64, i64, BodyBuilder)>,
        now: i64,
        lease: Option<(String, i64, usize)>,
    ) -> Result<(usize, usize, Vec<(WebhookDelivery, WebhookEndpoint)>), StoreError> {
        if events.is_empty() {
            return Ok((0, 0, Vec::new()));
        }
        let skip_locked = self.db.dialect().skip_locked();
        self.db
            .write(move |tx| {
                let mut claimed = HashSet::with_capacity(events.len());
                for chunk in id_chunks(events.iter().map(|(id, _, _)| *id)) {
                    let sql = format!(
                        "UPDATE invoice_events SET dispatched_at = $1 \
                         WHERE dispatched_at IS NULL AND id IN (SELECT id FROM invoice_events \
                         WHERE dispatched_at IS NULL AND id IN ({}) ORDER BY id{skip_locked}) \
                         RETURNING id",
                        super::placeholders(2, chunk.len())
                    );
                    let mut params: Vec<Value> = vec![now.into()];
                    params.extend(chunk.iter().map(|&id| Value::from(id)));
                    for row in &tx.query(&sql, &params)? {
                        claimed.insert(row.i64("id")?);
                    }
                }
                if claimed.is_empty() {
                    return Ok((0, 0, Vec::new()));
                }
                let mut endpoints: HashMap<i64, Vec<WebhookEndpoint>> = HashMap::new();
                let orgs = events
                    .iter()
                    .filter(|(id, _, _)| claimed.contains(id))
                    .map(|(_, org, _)| *org);
                for chunk in id_chunks(orgs) {
                    let sql = format!(
                        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
                         WHERE is_active = 1 AND org_id IN ({}) ORDER BY id",
                        super::placeholders(1, chunk.len())
                    );
                    let params: Vec<Value> = chunk.iter().map(|&id| id.into()).collect();
                    for row in &tx.query(&sql, &params)? {
                        let endpoint = endpoint_from_row(row)?;
                        endpoints.entry(endpoint.org_id).or_default().push(endpoint);
                    }
                }
                let (worker, until, max) = match &lease {
                    Some((worker, until, max)) => (Some(worker.as_str()), Some(*until), *max),
                    None => (None, None, 0),
                };
                let mut leased_rows: Vec<Vec<Value>> = Vec::new();
                let mut rows: Vec<Vec<Value>> = Vec::new();
                let mut dispatched = 0;
                for (event_id, org_id, body) in &events {
                    // An id listed twice is dispatched once.
                    if !claimed.remove(event_id) {
                        continue;
                    }
                    dispatched += 1;
                    for endpoint in endpoints.get(org_id).map_or(&[][..], Vec::as_slice) {
                        let delivery_id = uuid::Uuid::new_v4().to_string();
                        let Some((event_type, payload)) = body(&delivery_id, endpoint) else {
                            continue;
                        };
                        if !endpoint.wants(&event_type) {
                            continue;
                        }
                        let leased = leased_rows.len() < max;
                        let row = vec![
                            delivery_id.into(),
                            endpoint.org_id.into(),
                            endpoint.id.into(),
                            (*event_id).into(),
                            event_type.into(),
                            payload.into(),
                            false.into(),
                            DeliveryStatus::Pending.as_str().into(),
                            now.into(),
                            now.into(),
                            now.into(),
                            until.filter(|_| leased).into(),
                            worker.filter(|_| leased).into(),
                        ];
                        if leased {
                            leased_rows.push(row);
                        } else {
                            rows.push(row);
                        }
                    }
                }
                let conflict = " ON CONFLICT (endpoint_id, event_id) DO NOTHING";
                let returning = format!("RETURNING {DELIVERY_COLUMNS}");
                let (made_leased, returned) = insert_rows(
                    tx,
                    "webhook_deliveries",
                    NEW_DELIVERY_COLUMNS,
                    conflict,
                    Some(&returning),
                    leased_rows,
                )?;
                let (made, _) = insert_rows(
                    tx,
                    "webhook_deliveries",
                    NEW_DELIVERY_COLUMNS,
                    conflict,
                    None,
                    rows,
                )?;
                let mut leased = Vec::with_capacity(returned.len());
                for row in &returned {
                    let delivery = delivery_from_row(row)?;
                    let endpoint = endpoints
                        .values()
                        .flatten()
                        .find(|e| e.id == delivery.endpoint_id)
                        .cloned();
                    if let Some(endpoint) = endpoint {
                        leased.push((delivery, endpoint));
                    }
                }
                leased.sort_by_key(|(d, _)| d.id);
                let made = usize::try_from(made_leased.saturating_add(made)).unwrap_or(usize::MAX);
                Ok((dispatched, made, leased))
            })
            .await
    }

    /// Dispatches event `event_id` of `org_id` alone, as [`Store::dispatch_events`] does a
    /// batch. `None` when another dispatcher got there first (nothing made); else how many
    /// deliveries were made.
    pub async fn dispatch_event(
        &self,
        org_id: i64,
        event_id: i64,
        now: i64,
        body: BodyBuilder,
    ) -> Result<Option<usize>, StoreError> {
        let (events, made, _) = self
            .dispatch_events(vec![(event_id, org_id, body)], now, None)
            .await?;
        Ok((events == 1).then_some(made))
    }

    /// Records a simulated (test) delivery to `endpoint`, in flight (`sending`): the worker
    /// never claims it; its attempt is recorded by the sender.
    pub async fn insert_test_delivery(
        &self,
        endpoint: &WebhookEndpoint,
        delivery_id: &str,
        event_type: &str,
        payload: Vec<u8>,
        now: i64,
    ) -> Result<WebhookDelivery, StoreError> {
        let endpoint = endpoint.clone();
        let delivery_id = delivery_id.to_owned();
        let event_type = event_type.to_owned();
        self.db
            .write(move |tx| {
                let new = NewDelivery {
                    endpoint: &endpoint,
                    event_id: None,
                    delivery_id: &delivery_id,
                    event_type: &event_type,
                    payload: payload.clone(),
                    status: DeliveryStatus::Sending,
                };
                insert_delivery_tx(tx, new, now)?.ok_or_else(|| {
                    StoreError::Db(DbError::query(
                        "webhook_deliveries",
                        "test delivery not made",
                    ))
                })
            })
            .await
    }

    /// Whether any delivery is due at `now` and not leased (a cheap read before claiming).
    pub async fn webhook_deliveries_due(&self, now: i64) -> Result<bool, StoreError> {
        self.db
            .read(move |tx| {
                let row = tx.query_opt(
                    "SELECT id FROM webhook_deliveries WHERE status = 'pending' \
                     AND next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until < $1) \
                     LIMIT 1",
                    &[now.into()],
                )?;
                Ok(row.is_some())
            })
            .await
    }

    /// Leases up to `limit` due deliveries to `worker` until `now + lease_ms`, earliest first.
    /// No delivery is handed to two workers while its lease runs.
    pub async fn claim_webhook_deliveries(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let leased = self
            .lease_webhook_deliveries(worker, now, lease_ms, limit)
            .await?;
        Ok(leased.into_iter().map(|(delivery, _)| delivery).collect())
    }

    /// Like [`Store::claim_webhook_deliveries`], each delivery with its endpoint (`None` when
    /// it is gone) read in the same transaction.
    pub async fn lease_webhook_deliveries(
        &self,
        worker: &str,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<(WebhookDelivery, Option<WebhookEndpoint>)>, StoreError> {
        let worker = worker.to_owned();
        let skip_locked = self.db.dialect().skip_locked();
        let sql = format!(
            "UPDATE webhook_deliveries SET locked_until = $2, locked_by = $3 WHERE id IN (\
             SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (locked_until IS NULL OR locked_until < $1) \
             ORDER BY next_attempt_at, id LIMIT $4{skip_locked}) RETURNING {DELIVERY_COLUMNS}"
        );
        let until = now.saturating_add(lease_ms);
        self.db
            .write(move |tx| {
                let rows = tx.query(
                    &sql,
                    &[now.into(), until.into(), (&worker).into(), limit.into()],
                )?;
                let mut deliveries = rows
                    .iter()
                    .map(delivery_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                deliveries.sort_by_key(|d| (d.next_attempt_at, d.id));
                let mut endpoints = HashMap::new();
                for chunk in id_chunks(deliveries.iter().map(|d| d.endpoint_id)) {
                    let sql = format!(
                        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id IN ({})",
                        super::placeholders(1, chunk.len())
                    );
                    let params: Vec<Value> = chunk.iter().map(|&id| id.into()).collect();
                    for row in &tx.query(&sql, &params)? {
                        let endpoint = endpoint_from_row(row)?;
                        endpoints.insert(endpoint.id, endpoint);
                    }
                }
                Ok(deliveries
                    .into_iter()
                    .map(|delivery| {
                        let endpoint = endpoints.get(&delivery.endpoint_id).cloned();
                        (delivery, endpoint)
                    })
                    .collect())
            })
            .await
    }

    /// Records one attempt, as [`Store::record_webhook_attempts`] does several. `false` when
    /// the delivery is gone or leased to another worker.
    pub async fn record_webhook_attempt(&self, record: AttemptRecord) -> Result<bool, StoreError> {
        let recorded = self.record_webhook_attempts(vec![record]).await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }

    /// Records attempts in one transaction: for each, its log row, the delivery's new state and
    /// the endpoint's health, only while `record.worker` still holds the delivery's lease (a
    /// simulated delivery has none). Whether each was recorded, in order: `false` when the
    /// delivery is gone or leased to another worker (nothing of that attempt is written).
    ///
    /// The health changes are applied per endpoint in the order of the records, endpoints in
    /// id order (two processes' batches lock endpoint rows in the same order).
    pub async fn record_webhook_attempts(
        &self,
        records: Vec<AttemptRecord>,
    ) -> Result<Vec<bool>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.db
            .write(move |tx| {
                // Each chunk is one UPDATE … FROM (VALUES …): the lease check is per row.
                let mut changed: HashMap<i64, (i64, i64)> = HashMap::with_capacity(records.len());
                let mut rest = &records[..];
                for size in insert_sizes(records.len()) {
                    let (chunk, after) = rest.split_at(size);
                    rest = after;
                    let mut params: Vec<Value> = Vec::with_capacity(size * RECORD_WIDTH);
                    for record in chunk {
                        let (status, step, next, delivered_at) = match record.outcome {
                            AttemptOutcome::Delivered => {
                                (DeliveryStatus::Delivered, 0_i64, None, Some(record.at))
                            }
                            AttemptOutcome::RetryAt(at) => {
                                (DeliveryStatus::Pending, 1, Some(at), None)
                            }
                            AttemptOutcome::GiveUp => (DeliveryStatus::Failed, 0, None, None),
                        };
                        params.extend([
                            record.delivery.into(),
                            record.worker.as_ref().into(),
                            status.as_str().into(),
                            step.into(),
                            next.into(),
                            record.status_code.into(),
                            record.error.as_ref().into(),
                            record.at.into(),
                            delivered_at.into(),
                        ]);
                    }
                    for row in &tx.query(&record_sql(size), &params)? {
                        changed.insert(
                            row.i64("id")?,
                            (row.i64("endpoint_id")?, row.i64("attempts")?),
                        );
                    }
                }
                let mut recorded = Vec::with_capacity(records.len());
                let mut logs: Vec<Vec<Value>> = Vec::with_capacity(records.len());
                let mut health: BTreeMap<i64, Vec<(&EndpointHealth, i64)>> = BTreeMap::new();
                for record in &records {
                    let Some(&(endpoint_id, attempts)) = changed.get(&record.delivery) else {
                        recorded.push(false);
                        continue;
                    };
                    logs.push(vec![
                        record.delivery.into(),
                        endpoint_id.into(),
                        attempts.into(),
                        record.at.into(),
                        record.status_code.into(),
                        record.latency_ms.into(),
                        record.response_excerpt.as_ref().into(),
                        record.error.as_ref().into(),
                    ]);
                    health
                        .entry(endpoint_id)
                        .or_default()
                        .push((&record.health, record.at));
                    recorded.push(true);
                }
                insert_rows(tx, "webhook_attempts", NEW_ATTEMPT_COLUMNS, "", None, logs)?;
                for (endpoint_id, changes) in health {
                    let mut last: Option<&EndpointHealth> = None;
                    for (change, at) in changes {
                        // Healthy twice in a row changes nothing the second time.
                        let again = matches!(
                            (last, change),
                            (Some(EndpointHealth::Healthy), EndpointHealth::Healthy)
                        );
                        if !again {
                            apply_health_tx(tx, endpoint_id, change, at)?;
                        }
                        if !matches!(change, EndpointHealth::Untouched) {
                            last = Some(change);
                        }
                    }
                }
                Ok(recorded)
            })
            .await
    }

    /// Gives up delivery `id` without an attempt (its endpoint is disabled or gone), while
    /// `worker` holds the lease.
    pub async fn abandon_webhook_delivery(
        &self,
        id: i64,
        worker: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let worker = worker.to_owned();
        let reason = reason.to_owned();
        self.db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE webhook_deliveries SET status = 'failed', last_error = $3, \
                     updated_at = $4, next_attempt_at = NULL, locked_until = NULL, \
                     locked_by = NULL WHERE id = $1 AND locked_by = $2",
                    &[id.into(), (&worker).into(), (&reason).into(), now.into()],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    /// Deliveries of endpoint `endpoint_id` of `org_id`, newest first, `limit` from `offset`.
    pub async fn list_webhook_deliveries(
        &self,
        org_id: i64,
        endpoint_id: i64,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE org_id = $1 AND endpoint_id = $2 ORDER BY id DESC LIMIT $3 OFFSET $4"
        );
        self.db
            .read(move |tx| {
                let rows = tx.query(
                    &sql,
                    &[
                        org_id.into(),
                        endpoint_id.into(),
                        limit.into(),
                        offset.into(),
                    ],
                )?;
                Ok(rows
                    .iter()
                    .map(delivery_from_row)
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    /// How many deliveries endpoint `endpoint_id` of `org_id` has.
    pub async fn count_webhook_deliveries(
        &self,
        org_id: i64,
        endpoint_id: i64,
    ) -> Result<i64, StoreError> {
        self.db
            .read(move |tx| {
                Ok(tx
                    .query_one(
                        "SELECT COUNT(*) AS n FROM webhook_deliveries \
                         WHERE org_id = $1 AND endpoint_id = $2",
                        &[org_id.into(), endpoint_id.into()],
                    )?
                    .i64("n")?)
            })
            .await
    }

    /// Delivery `id` (the integer id) of endpoint `endpoint_id` of `org_id`.
    pub async fn webhook_delivery(
        &self,
        org_id: i64,
        endpoint_id: i64,
        id: i64,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE org_id = $1 AND endpoint_id = $2 AND id = $3"
        );
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[org_id.into(), endpoint_id.into(), id.into()])?;
                Ok(row.as_ref().map(delivery_from_row).transpose()?)
            })
            .await
    }

    /// The attempts of deliveries `ids`, oldest first.
    pub async fn webhook_attempts(&self, ids: Vec<i64>) -> Result<Vec<WebhookAttempt>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = super::placeholders(1, ids.len());
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id IN ({placeholders}) \
             ORDER BY id"
        );
        self.db
            .read(move |tx| {
                let params: Vec<Value> = ids.iter().map(|&i| i.into()).collect();
                let rows = tx.query(&sql, &params)?;
                Ok(rows
                    .iter()
                    .map(attempt_from_row)
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Queues delivery `id` of endpoint `endpoint_id` of `org_id` again, now, from the start
    /// of the retry schedule (same `delivery_id`, same bytes). `None` when there is no such
    /// delivery or it is a simulated one still in flight.
    pub async fn redeliver_webhook(
        &self,
        org_id: i64,
        endpoint_id: i64,
        id: i64,
        now: i64,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        let sql = format!(
            "UPDATE webhook_deliveries SET status = 'pending', schedule_step = 0, \
             next_attempt_at = $4, updated_at = $4 \
             WHERE org_id = $1 AND endpoint_id = $2 AND id = $3 AND status <> 'sending' \
             RETURNING {DELIVERY_COLUMNS}"
        );
        self.db
            .write(move |tx| {
                let row = tx.query_opt(
                    &sql,
                    &[org_id.into(), endpoint_id.into(), id.into(), now.into()],
                )?;
                Ok(row.as_ref().map(delivery_from_row).transpose()?)
            })
            .await
    }
}

/// Applies an attempt's effect on the endpoint's health.
fn apply_health_tx(
    tx: &mut dyn Tx,
    endpoint_id: i64,
    health: &EndpointHealth,
    now: i64,
) -> Result<(), DbError> {
    match health {
        EndpointHealth::Untouched => {}
        EndpointHealth::Healthy => {
            tx.execute(
                "UPDATE webhook_endpoints SET failing_since = NULL \
                 WHERE id = $1 AND failing_since IS NOT NULL",
                &[endpoint_id.into()],
            )?;
        }
        EndpointHealth::Failing {
            disable_after_ms,
            reason,
        } => {
            let row = tx.query_opt(
                "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) \
                 WHERE id = $1 RETURNING failing_since, is_active",
                &[endpoint_id.into(), now.into()],
            )?;
            if let Some(row) = row {
                let since = row.i64("failing_since")?;
                if row.bool("is_active")? && now.saturating_sub(since) >= *disable_after_ms {
                    disable_tx(tx, endpoint_id, reason, now)?;
                }
            }
        }
        EndpointHealth::Disable(reason) => disable_tx(tx, endpoint_id, reason, now)?,
    }
    Ok(())
}

fn disable_tx(tx: &mut dyn Tx, endpoint_id: i64, reason: &str, now: i64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE webhook_endpoints SET is_active = 0, disabled_reason = $2, updated_at = $3 \
         WHERE id = $1",
        &[endpoint_id.into(), reason.into(), now.into()],
    )?;
    Ok(())
}
