//! Endpoints: made, read, listed, changed, given a new secret, deleted (with their
//! deliveries and log). Every read by the API takes the organization.

use crate::db::{DbError, Tx, Value};
use crate::store::WebhookRepo;

use super::{endpoint_from_row, WebhookEndpoint, ENDPOINT_COLUMNS};
use super::{NewWebhookEndpoint, WebhookEndpointUpdate};
use crate::store::audit::{note, Change};
use crate::store::StoreError;

/// The stored form of an event list: names joined with `,` (names never contain one).
fn events_text(events: &[String]) -> String {
    events.join(",")
}

fn endpoint_tx(tx: &mut dyn Tx, org_id: i64, id: i64) -> Result<Option<WebhookEndpoint>, DbError> {
    let sql =
        format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND id = $2");
    tx.query_opt(&sql, &[org_id.into(), id.into()])?
        .as_ref()
        .map(endpoint_from_row)
        .transpose()
}

impl WebhookRepo {
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
        let actor = crate::audit::current();
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
                let endpoint = endpoint_from_row(&tx.query_one(&sql, &params)?)?;
                let change = endpoint_change(&endpoint, "webhook_endpoint.created").with(
                    serde_json::json!({
                        "url": url_shown(&endpoint.url),
                        "events": endpoint.events,
                        "format": endpoint.format.as_str(),
                    }),
                );
                note(tx, actor.as_ref(), new.created_at, &change)?;
                Ok(endpoint)
            })
            .await;
        crate::store::conflict_on_unique(inserted, "a webhook endpoint with this id exists")
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
        let actor = crate::audit::current();
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
                let updated = tx.query_opt(&sql, &params)?;
                let Some(endpoint) = updated.as_ref().map(endpoint_from_row).transpose()? else {
                    return Ok(None);
                };
                let change = endpoint_change(&endpoint, "webhook_endpoint.updated").with(
                    serde_json::json!({
                        "fields": crate::store::audit::fields_set(&[
                            ("url", update.url.is_some()),
                            ("events", update.events.is_some()),
                            ("format", update.format.is_some()),
                            ("description", update.description.is_some()),
                            ("is_active", update.is_active.is_some()),
                        ]),
                        "url": url_shown(&endpoint.url),
                        "is_active": endpoint.is_active,
                    }),
                );
                note(tx, actor.as_ref(), now, &change)?;
                Ok(Some(endpoint))
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
        let actor = crate::audit::current();
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
                let updated = tx.query_opt(&sql, &params)?;
                let endpoint = updated.as_ref().map(endpoint_from_row).transpose()?;
                if let Some(endpoint) = &endpoint {
                    // That the secret changed, and until when the old one still signs; never
                    // either secret.
                    let change = endpoint_change(endpoint, "webhook_endpoint.secret_rotated")
                        .with(serde_json::json!({ "previous_valid_until": until }));
                    note(tx, actor.as_ref(), now, &change)?;
                }
                Ok(endpoint)
            })
            .await
    }

    /// Deletes endpoint `id` of `org_id` with its deliveries and their log; `false` when there
    /// was no such endpoint.
    pub async fn delete_webhook_endpoint(&self, org_id: i64, id: i64) -> Result<bool, StoreError> {
        let actor = crate::audit::current();
        let now = self.now_ms();
        self.db
            .write(move |tx| {
                let Some(endpoint) = endpoint_tx(tx, org_id, id)? else {
                    return Ok(false);
                };
                let change = endpoint_change(&endpoint, "webhook_endpoint.deleted")
                    .with(serde_json::json!({ "url": url_shown(&endpoint.url) }));
                note(tx, actor.as_ref(), now, &change)?;
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
}

/// An audit entry about `endpoint`.
fn endpoint_change(endpoint: &WebhookEndpoint, action: &'static str) -> Change {
    Change::new(
        endpoint.org_id,
        action,
        format_args!("webhook_endpoint:{}", endpoint.endpoint_id),
    )
}

/// The endpoint's URL as the audit log shows it: without its query, fragment or user
/// information, where a receiver may keep a token.
fn url_shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}
