//! `Idempotency-Key` records, per API key: the first request with a key runs and stores its
//! response; a repeat with the same request gets that response again; a repeat with a
//! different request, or while the first still runs, is refused by the caller.
//!
//! The record is made with `INSERT … ON CONFLICT DO NOTHING` and then read: a unique
//! violation would fail the whole transaction, so it is never provoked.

use crate::db::{DbError, Tx, Value};
use crate::store::OrgRepo;

use super::{Begin, IdemLink, Resource, StoreError};

const STATE_RUNNING: &str = "running";
const STATE_DONE: &str = "done";

/// How long a running record is leased to its request. The request renews the lease while it
/// runs (every third of this); a record whose lease ran out belongs to a process that died
/// mid-request, and the next retry takes it over.
pub const RUNNING_LEASE_MS: i64 = 10_000;

/// Names `resource` as what the idempotent request `link` made, inside the transaction that
/// makes it: a retry after a crash then answers from it ([`Begin::Recover`]).
pub(crate) fn link_tx(tx: &mut dyn Tx, link: &IdemLink, resource: Resource) -> Result<(), DbError> {
    tx.defer(
        "UPDATE idempotency_keys SET resource_kind = $3, resource_id = $4 \
         WHERE api_key_id = $1 AND key = $2 AND state = $5",
        &[
            link.api_key_id.into(),
            (&link.key).into(),
            resource.kind().into(),
            resource.id().into(),
            STATE_RUNNING.into(),
        ],
    )
}

impl OrgRepo {
    /// Starts a request with idempotency key `key` of API key `api_key_id`. A record past its
    /// `expires_at` counts as absent; a new one lives until `now_ms + ttl_ms` and is leased to
    /// this request for [`RUNNING_LEASE_MS`] (renew it with [`crate::store::OrgRepo::idempotency_renew`]).
    /// A running record whose lease ran out is taken over: [`Begin::Recover`] when its
    /// request had made something, else [`Begin::New`] (nothing was made: run afresh).
    pub async fn idempotency_begin(
        &self,
        api_key_id: i64,
        key: &str,
        request_hash: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Begin, StoreError> {
        let key = key.to_owned();
        let hash = request_hash.to_owned();
        let expires_at = now_ms.saturating_add(ttl_ms);
        let locked_until = now_ms.saturating_add(RUNNING_LEASE_MS);
        self.db
            .write(move |tx| {
                tx.defer(
                    "DELETE FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 \
                     AND expires_at <= $3",
                    &[api_key_id.into(), (&key).into(), now_ms.into()],
                )?;
                let params: [Value; 7] = [
                    api_key_id.into(),
                    (&key).into(),
                    (&hash).into(),
                    STATE_RUNNING.into(),
                    now_ms.into(),
                    expires_at.into(),
                    locked_until.into(),
                ];
                let inserted = tx.execute(
                    "INSERT INTO idempotency_keys \
                     (api_key_id, key, request_hash, state, created_at, expires_at, locked_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (api_key_id, key) DO NOTHING",
                    &params,
                )?;
                if inserted == 1 {
                    return Ok(Begin::New);
                }
                let row = tx.query_one(
                    "SELECT request_hash, state, response_status, response_body, locked_until, \
                     resource_kind, resource_id \
                     FROM idempotency_keys WHERE api_key_id = $1 AND key = $2",
                    &[api_key_id.into(), (&key).into()],
                )?;
                if row.text("request_hash")? != hash {
                    return Ok(Begin::Mismatch);
                }
                if row.text("state")? != STATE_DONE {
                    let lease = row.i64("locked_until")?;
                    if lease > now_ms {
                        return Ok(Begin::InFlight);
                    }
                    // Its process died mid-request: the record is this request's now (a
                    // compare-and-set on the lease, so two retries cannot both take it).
                    let taken = tx.execute(
                        "UPDATE idempotency_keys SET locked_until = $3 \
                         WHERE api_key_id = $1 AND key = $2 AND state = $4 AND locked_until = $5",
                        &[
                            api_key_id.into(),
                            (&key).into(),
                            locked_until.into(),
                            STATE_RUNNING.into(),
                            lease.into(),
                        ],
                    )?;
                    if taken == 0 {
                        return Ok(Begin::InFlight);
                    }
                    let made = match (row.opt_text("resource_kind")?, row.opt_i64("resource_id")?) {
                        (Some(kind), Some(id)) => Resource::decode(&kind, id),
                        _ => None,
                    };
                    return Ok(made.map_or(Begin::New, Begin::Recover));
                }
                let status = row.i64("response_status")?;
                let status = u16::try_from(status).map_err(|_| {
                    crate::db::DbError::decode(
                        "response_status",
                        format!("not an HTTP status: {status}"),
                    )
                })?;
                Ok(Begin::Replay {
                    status,
                    body: row.opt_bytes("response_body")?.unwrap_or_default(),
                })
            })
            .await
    }

    /// Extends the lease of a running record to `locked_until`, while its request runs.
    pub async fn idempotency_renew(
        &self,
        api_key_id: i64,
        key: &str,
        locked_until: i64,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE idempotency_keys SET locked_until = $3 \
                     WHERE api_key_id = $1 AND key = $2 AND state = $4",
                    &[
                        api_key_id.into(),
                        (&key).into(),
                        locked_until.into(),
                        STATE_RUNNING.into(),
                    ],
                )?;
                Ok(())
            })
            .await
    }

    /// Stores the response of the request that began with `key`, for replays.
    pub async fn idempotency_finish(
        &self,
        api_key_id: i64,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        let body = body.to_vec();
        self.db
            .write(move |tx| {
                tx.defer(
                    "UPDATE idempotency_keys SET state = $3, response_status = $4, \
                     response_body = $5 WHERE api_key_id = $1 AND key = $2",
                    &[
                        api_key_id.into(),
                        (&key).into(),
                        STATE_DONE.into(),
                        i64::from(status).into(),
                        body.clone().into(),
                    ],
                )?;
                Ok(())
            })
            .await
    }

    /// Gives up a running record: its request failed. A record that made nothing is forgotten,
    /// so a retry with the same key runs afresh; one that made something keeps it, with its
    /// lease ended, so the next retry answers from it ([`Begin::Recover`]).
    pub async fn idempotency_abandon(&self, api_key_id: i64, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.db
            .write(move |tx| {
                let params: [Value; 3] = [api_key_id.into(), (&key).into(), STATE_RUNNING.into()];
                tx.execute(
                    "DELETE FROM idempotency_keys \
                     WHERE api_key_id = $1 AND key = $2 AND state = $3 AND resource_id IS NULL",
                    &params,
                )?;
                tx.execute(
                    "UPDATE idempotency_keys SET locked_until = 0 \
                     WHERE api_key_id = $1 AND key = $2 AND state = $3",
                    &params,
                )?;
                Ok(())
            })
            .await
    }
}
