//! The outbox side: events not dispatched yet, what their bodies are made from, and
//! [`Store::dispatch_events`], which turns a batch of events into deliveries in one transaction.

use crate::store::WebhookRepo;
use std::collections::{HashMap, HashSet};

use crate::db::Value;

use super::WebhookEndpoint;
use super::{delivery_from_row, endpoint_from_row, id_chunks, insert_rows};
use super::{format_from_row, DeliveryStatus, DispatchLease, Dispatched, EventRows};
use super::{EventToDispatch, FormatBody, PendingEvent, WebhookFormat};
use super::{DELIVERY_COLUMNS, ENDPOINT_COLUMNS};
use crate::store::invoices::{invoice_from_row, INVOICE_COLUMNS};
use crate::store::EventKind;
use crate::store::StoreError;

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

impl WebhookRepo {
    /// Up to `limit` events not dispatched yet, oldest first.
    pub async fn undispatched_events(&self, limit: u32) -> Result<Vec<PendingEvent>, StoreError> {
        self.db
            .read(move |tx| {
                let rows = tx.query(
                    "SELECT id, org_id, invoice_id, kind, from_status, to_status, at, refund_id, \
                     subscription_id, data \
                     FROM invoice_events WHERE dispatched_at IS NULL ORDER BY id LIMIT $1",
                    &[limit.into()],
                )?;
                let mut events = Vec::with_capacity(rows.len());
                for row in &rows {
                    events.push(PendingEvent {
                        id: row.i64("id")?,
                        org_id: row.i64("org_id")?,
                        invoice_id: row.i64("invoice_id")?,
                        kind: row.parsed("kind", EventKind::parse)?,
                        from_status: row.opt_text("from_status")?,
                        to_status: row.text("to_status")?,
                        at: row.i64("at")?,
                        refund_id: row.opt_i64("refund_id")?,
                        subscription_id: row.opt_i64("subscription_id")?,
                        data: row.opt_text("data")?,
                    });
                }
                Ok(events)
            })
            .await
    }

    /// What the bodies of events are made from, in one read: the invoices `invoice_ids`, and
    /// the slugs and active endpoints' formats of the organizations `org_ids`.
    pub async fn webhook_event_rows(
        &self,
        invoice_ids: Vec<i64>,
        org_ids: Vec<i64>,
    ) -> Result<EventRows, StoreError> {
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
                let mut formats: HashMap<i64, HashSet<WebhookFormat>> = HashMap::new();
                for chunk in id_chunks(org_ids) {
                    let sql = format!(
                        "SELECT id, slug FROM organizations WHERE id IN ({})",
                        crate::store::placeholders(1, chunk.len())
                    );
                    let params: Vec<Value> = chunk.iter().map(|&id| id.into()).collect();
                    for row in &tx.query(&sql, &params)? {
                        slugs.insert(row.i64("id")?, row.text("slug")?);
                    }
                    let sql = format!(
                        "SELECT DISTINCT org_id, format FROM webhook_endpoints \
                         WHERE is_active = 1 AND org_id IN ({})",
                        crate::store::placeholders(1, chunk.len())
                    );
                    for row in &tx.query(&sql, &params)? {
                        let format = format_from_row(row)?;
                        formats
                            .entry(row.i64("org_id")?)
                            .or_default()
                            .insert(format);
                    }
                }
                Ok(EventRows {
                    invoices,
                    slugs,
                    formats,
                    subscriptions: HashMap::new(),
                })
            })
            .await
    }

    /// Dispatches a batch of events, their bodies rendered beforehand, in ONE transaction:
    /// marks those not dispatched yet as dispatched (a conditional UPDATE; on PostgreSQL an
    /// event another dispatcher is dispatching right now is skipped, not waited for), and for
    /// each event this transaction marked makes one pending delivery per active endpoint of its
    /// organization that the event has a body for (in the endpoint's format) and that wants
    /// the event. The endpoints of each organization are read once; each delivery's UUID is
    /// made here and spliced into its body ([`Payload::bytes_for`]). An event not rendered for
    /// the format of one of its organization's active endpoints is not marked (`left`): the
    /// caller reads it again.
    ///
    /// With a `lease`, its first `max` deliveries made are leased to its `worker` until its
    /// `until` as they are inserted (the dispatching process attempts them without leasing
    /// them again) and returned with their endpoints; the others are left for
    /// [`crate::store::WebhookRepo::claim_webhook_deliveries`].
    ///
    /// Returns how many events this transaction marked, how many deliveries it made, the
    /// deliveries leased, and how many events were left; an event another dispatcher got first
    /// makes nothing here.
    ///
    /// [`Payload::bytes_for`]: super::Payload::bytes_for
    pub async fn dispatch_events(
        &self,
        events: Vec<EventToDispatch>,
        now: i64,
        lease: Option<DispatchLease>,
    ) -> Result<Dispatched, StoreError> {
        if events.is_empty() {
            return Ok(Dispatched::default());
        }
        let skip_locked = self.db.dialect().skip_locked();
        self.db
            .write(move |tx| {
                // The endpoints first, to leave the events not rendered for one of them.
                let mut endpoints: HashMap<i64, Vec<WebhookEndpoint>> = HashMap::new();
                for chunk in id_chunks(events.iter().map(|e| e.org_id)) {
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
                let endpoints_of =
                    |org_id: i64| endpoints.get(&org_id).map_or(&[][..], Vec::as_slice);
                let ready: Vec<&EventToDispatch> = events
                    .iter()
                    .filter(|event| {
                        endpoints_of(event.org_id).iter().all(|endpoint| {
                            !matches!(event.body(endpoint.format), FormatBody::NotRendered)
                        })
                    })
                    .collect();
                let ready_ids: HashSet<i64> = ready.iter().map(|e| e.event_id).collect();
                let left = events
                    .iter()
                    .map(|e| e.event_id)
                    .filter(|id| !ready_ids.contains(id))
                    .collect::<HashSet<_>>()
                    .len();
                let mut claimed = HashSet::with_capacity(ready.len());
                for chunk in id_chunks(ready_ids) {
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
                    return Ok(Dispatched {
                        left,
                        ..Dispatched::default()
                    });
                }
                let (worker, until, max) = match &lease {
                    Some(lease) => (Some(lease.worker.as_str()), Some(lease.until), lease.max),
                    None => (None, None, 0),
                };
                let mut leased_rows: Vec<Vec<Value>> = Vec::new();
                let mut rows: Vec<Vec<Value>> = Vec::new();
                let mut dispatched = 0;
                for event in ready {
                    // An id listed twice is dispatched once.
                    if !claimed.remove(&event.event_id) {
                        continue;
                    }
                    dispatched += 1;
                    for endpoint in endpoints_of(event.org_id) {
                        let FormatBody::Rendered(payload) = event.body(endpoint.format) else {
                            continue;
                        };
                        if !endpoint.wants(&payload.event_type) {
                            continue;
                        }
                        let delivery_id = uuid::Uuid::new_v4().to_string();
                        let bytes = payload.bytes_for(&delivery_id);
                        let leased = leased_rows.len() < max;
                        let row = vec![
                            delivery_id.into(),
                            endpoint.org_id.into(),
                            endpoint.id.into(),
                            event.event_id.into(),
                            (&payload.event_type).into(),
                            bytes.into(),
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
                Ok(Dispatched {
                    events: dispatched,
                    made,
                    leased,
                    left,
                })
            })
            .await
    }
}
