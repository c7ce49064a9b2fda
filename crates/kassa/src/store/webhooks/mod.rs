//! Webhooks: endpoints, deliveries and their attempts (tables of `0004_webhooks.sql`).
//!
//! - The outbox: `invoice_events` rows are written with every change (invoices.rs,
//!   refunds.rs); [`Store::dispatch_events`] turns a batch of them into their deliveries in
//!   ONE transaction that first marks the events dispatched with a conditional UPDATE
//!   (`dispatched_at IS NULL`, SKIP LOCKED on PostgreSQL). Only the transaction that flips an
//!   event's mark inserts its deliveries, and `(endpoint_id, event_id)` is unique, so an event
//!   makes each endpoint's delivery exactly once however many processes dispatch. What the
//!   bodies are made from is read for the whole batch at once ([`Store::webhook_event_rows`]);
//!   the caller renders them, one per format in use, before the transaction, which only
//!   splices each delivery's UUID in (plain data: the store knows no body's shape).
//! - Deliveries are leased like jobs ([`Store::lease_webhook_deliveries`]: `UPDATE …
//!   RETURNING`, SKIP LOCKED on PostgreSQL), or leased to the dispatching worker as they are
//!   made (as many as it has room for); the outcome of an attempt, its log row and the
//!   endpoint's health change are one transaction ([`crate::store::WebhookRepo::record_webhook_attempts`] writes
//!   several attempts' records in one, each checking its own lease).
//!
//! Lists of ids are bound in chunks padded to a few sizes, so the statements' texts repeat
//! and stay prepared. Every read by the API takes the organization: another organization's
//! endpoint is simply not found.
//!
//! Here: the column lists, the row decoders and the batching helpers the others share.
//! `endpoints.rs` (endpoints), `dispatch.rs` (outbox → deliveries), `deliveries.rs` (lease,
//! give up, list, redeliver), `attempts.rs` (records and the attempt log), `types.rs` (the
//! plain types).
//!
//! [`Store::dispatch_events`]: crate::store::Store::dispatch_events
//! [`Store::webhook_event_rows`]: crate::store::Store::webhook_event_rows
//! [`Store::lease_webhook_deliveries`]: crate::store::Store::lease_webhook_deliveries
//! [`crate::store::WebhookRepo::record_webhook_attempts`]: crate::store::Store::record_webhook_attempts

use std::collections::HashSet;

use crate::db::{DbError, Row, Tx, Value};

mod attempts;
mod deliveries;
mod dispatch;
mod endpoints;
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

fn format_from_row(row: &Row) -> Result<WebhookFormat, DbError> {
    let format = row.text("format")?;
    WebhookFormat::parse(&format)
        .ok_or_else(|| DbError::decode("format", format!("unknown format `{format}`")))
}

fn endpoint_from_row(row: &Row) -> Result<WebhookEndpoint, DbError> {
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
        format: format_from_row(row)?,
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
