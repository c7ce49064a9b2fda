//! Deliveries: a simulated one made in flight, the lease of due ones (with their endpoints),
//! giving one up, the delivery log read by the API, and redelivery.

use crate::store::WebhookRepo;
use std::collections::HashMap;

use crate::db::{DbError, Tx, Value};

use super::{delivery_from_row, endpoint_from_row, id_chunks};
use super::{DeliveryStatus, WebhookDelivery, WebhookEndpoint};
use super::{DELIVERY_COLUMNS, ENDPOINT_COLUMNS};
use crate::store::StoreError;

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

impl WebhookRepo {
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

    /// The backlog at `now` (for metrics): deliveries not yet delivered nor given up that are
    /// due (in flight included), and those waiting for a later attempt. One read.
    pub async fn webhook_backlog(&self, now: i64) -> Result<(i64, i64), StoreError> {
        self.db
            .read(move |tx| {
                let row = tx.query_one(
                    "SELECT COUNT(CASE WHEN next_attempt_at <= $1 THEN 1 END) AS due, \
                     COUNT(CASE WHEN next_attempt_at > $1 THEN 1 END) AS waiting \
                     FROM webhook_deliveries WHERE status = 'pending'",
                    &[now.into()],
                )?;
                Ok((row.i64("due")?, row.i64("waiting")?))
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

    /// Like [`crate::store::WebhookRepo::claim_webhook_deliveries`], each delivery with its endpoint (`None` when
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
                        crate::store::placeholders(1, chunk.len())
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

    /// Deliveries of the events of invoice `invoice_id` of `org_id`, to every endpoint, oldest
    /// first (at most 200).
    pub async fn invoice_deliveries(
        &self,
        org_id: i64,
        invoice_id: i64,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE org_id = $1 AND event_id IN \
             (SELECT id FROM invoice_events WHERE org_id = $1 AND invoice_id = $2) \
             ORDER BY id LIMIT 200"
        );
        self.db
            .read(move |tx| {
                Ok(crate::store::all_rows(
                    tx,
                    &sql,
                    &[org_id.into(), invoice_id.into()],
                    delivery_from_row,
                )?)
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
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let row = tx.query_opt(
                    &sql,
                    &[org_id.into(), endpoint_id.into(), id.into(), now.into()],
                )?;
                let delivery = row.as_ref().map(delivery_from_row).transpose()?;
                if let Some(delivery) = &delivery {
                    let change = crate::store::Change::new(
                        org_id,
                        "webhook_delivery.redelivered",
                        format_args!("webhook_delivery:{}", delivery.delivery_id),
                    )
                    .with(serde_json::json!({ "event_type": delivery.event_type }));
                    crate::store::audit::note(tx, actor.as_ref(), now, &change)?;
                }
                Ok(delivery)
            })
            .await
    }
}
