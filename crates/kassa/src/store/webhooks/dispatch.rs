//! The outbox side: events not dispatched yet, what their bodies are made from, and
//! [`Store::dispatch_events`], which turns a batch of events into deliveries in one transaction.

use std::collections::{HashMap, HashSet};

use crate::db::Value;

use super::{delivery_from_row, endpoint_from_row, id_chunks, insert_rows};
use super::{BodyBuilder, DeliveryStatus, PendingEvent, WebhookDelivery, WebhookEndpoint};
use super::{DELIVERY_COLUMNS, ENDPOINT_COLUMNS};
use crate::store::invoices::{invoice_from_row, INVOICE_COLUMNS};
use crate::store::{Invoice, Store, StoreError};

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

impl Store {
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
                        crate::store::placeholders(1, chunk.len())
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
                        crate::store::placeholders(1, chunk.len())
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
                        crate::store::placeholders(2, chunk.len())
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
                        crate::store::placeholders(1, chunk.len())
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
}
