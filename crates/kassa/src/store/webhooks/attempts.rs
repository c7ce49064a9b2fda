//! Attempts: their records written in batches, each under its lease (log row, delivery
//! state, endpoint health), and the attempt log read by the API.

use crate::store::WebhookRepo;
use std::collections::{BTreeMap, HashMap};

use crate::db::{DbError, Row, Tx, Value};

use super::ATTEMPT_COLUMNS;
use super::{insert_rows, insert_sizes};
use super::{AttemptOutcome, AttemptRecord, DeliveryStatus, EndpointHealth, WebhookAttempt};
use crate::store::StoreError;

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

impl WebhookRepo {
    /// Records one attempt, as [`crate::store::WebhookRepo::record_webhook_attempts`] does several. `false` when
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

    /// The attempts of deliveries `ids`, oldest first.
    pub async fn webhook_attempts(&self, ids: Vec<i64>) -> Result<Vec<WebhookAttempt>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = crate::store::placeholders(1, ids.len());
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
    // Written as the change is made (on the database's writer, outside any span): a write
    // re-run after a PostgreSQL conflict may log it twice.
    tracing::warn!(endpoint = endpoint_id, reason, "webhook endpoint disabled");
    Ok(())
}
