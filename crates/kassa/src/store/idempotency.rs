//! `Idempotency-Key` records, per API key: the first request with a key runs and stores its
//! response; a repeat with the same request gets that response again; a repeat with a
//! different request, or while the first still runs, is refused by the caller.
//!
//! The record is made with `INSERT … ON CONFLICT DO NOTHING` and then read: a unique
//! violation would fail the whole transaction, so it is never provoked.

use crate::db::Value;

use super::{Begin, Store, StoreError};

const STATE_RUNNING: &str = "running";
const STATE_DONE: &str = "done";

/// A record still `running` after this long is taken as abandoned (its process died or shut
/// down mid-request): longer than any request takes, Kaspi calls included.
pub const RUNNING_LEASE_MS: i64 = 5 * 60 * 1000;

impl Store {
    /// Starts a request with idempotency key `key` of API key `api_key_id`. A record past its
    /// `expires_at`, or still running after [`RUNNING_LEASE_MS`], counts as absent; a new one
    /// lives until `now_ms + ttl_ms`.
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
        self.db
            .write(move |tx| {
                tx.execute(
                    "DELETE FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 \
                     AND (expires_at <= $3 OR (state = $4 AND created_at <= $5))",
                    &[
                        api_key_id.into(),
                        (&key).into(),
                        now_ms.into(),
                        STATE_RUNNING.into(),
                        now_ms.saturating_sub(RUNNING_LEASE_MS).into(),
                    ],
                )?;
                let params: [Value; 6] = [
                    api_key_id.into(),
                    (&key).into(),
                    (&hash).into(),
                    STATE_RUNNING.into(),
                    now_ms.into(),
                    expires_at.into(),
                ];
                let inserted = tx.execute(
                    "INSERT INTO idempotency_keys \
                     (api_key_id, key, request_hash, state, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (api_key_id, key) DO NOTHING",
                    &params,
                )?;
                if inserted == 1 {
                    return Ok(Begin::New);
                }
                let row = tx.query_one(
                    "SELECT request_hash, state, response_status, response_body \
                     FROM idempotency_keys WHERE api_key_id = $1 AND key = $2",
                    &[api_key_id.into(), (&key).into()],
                )?;
                if row.text("request_hash")? != hash {
                    return Ok(Begin::Mismatch);
                }
                if row.text("state")? != STATE_DONE {
                    return Ok(Begin::InFlight);
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
                tx.execute(
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

    /// Forgets a running record: its request failed before it had any effect, so a retry
    /// with the same key may run afresh.
    pub async fn idempotency_abandon(&self, api_key_id: i64, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.db
            .write(move |tx| {
                tx.execute(
                    "DELETE FROM idempotency_keys \
                     WHERE api_key_id = $1 AND key = $2 AND state = $3",
                    &[api_key_id.into(), (&key).into(), STATE_RUNNING.into()],
                )?;
                Ok(())
            })
            .await
    }
}
