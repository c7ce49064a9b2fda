//! `Idempotency-Key` (or xPayment's `X-Idempotency-Key`) on authenticated `POST` routes: the
//! first request with a key runs and its answer is kept for 24 hours; a repeat of the same
//! request gets that answer again (with `Idempotent-Replayed: true`); a different request
//! under the same key, or a repeat while the first still runs, is refused. Keys are per API
//! key ([`Caller::key_id`]); the records are the store's (`Store::idempotency_*`).
//!
//! "The same request" is SHA-256 over method, path with query (as the client sent it, nest
//! prefixes included), and the body: a JSON body as its canonical form (keys sorted, no
//! whitespace), so key order and spacing do not matter; any other body as its bytes.
//!
//! Outcomes of the first run:
//! - status < 500: kept and replayed (a 4xx is an answer too);
//! - status ≥ 500: the record is dropped (abandoned), so a retry runs afresh. **Handlers must
//!   therefore not answer ≥ 500 once an effect may have happened** (e.g. Kaspi's outcome of a
//!   create is unknown): such a request must be answered < 500 or a retry may repeat it.
//!
//! The handler runs in its own task: a client that disconnects does not cancel it, so the
//! effect and its record complete together and the client's retry gets the replay. If the
//! handler panics, a guard abandons the record.
//!
//! A running record is leased to its request, which renews the lease while it runs
//! ([`RUNNING_LEASE_MS`](crate::store::RUNNING_LEASE_MS)). A process that dies mid-request
//! leaves the record running with a lease that runs out: until then a retry answers 409, after
//! it the retry takes the record over. Handlers that make something (an invoice, a refund)
//! name it in the record in the same transaction (the request extension [`IdemLink`], passed
//! down to the store); a retry that takes over such a record gets [`IdemLink::recovered`] and
//! answers from what was made, so a
//! crash at any instant never makes it twice.

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use super::auth::{AuthState, Caller};
use super::error::{ApiError, ErrorFormat};
use super::extract::read_body;
use crate::store::{Begin, IdemLink, Store, RUNNING_LEASE_MS};

/// How long a key's answer is kept for replays.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// The longest accepted key, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// The headers a key is read from, in this order.
pub const KEY_HEADERS: [&str; 2] = ["idempotency-key", "x-idempotency-key"];
/// Set on a replayed answer.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The field validation errors about the key are reported under.
const KEY_FIELD: &str = "idempotency_key";

/// Middleware (after authentication and the rate limit); see the module docs. Requests other
/// than `POST`, without a key, or without a [`Caller`] pass untouched.
pub async fn idempotency(State(auth): State<AuthState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(caller) = req.extensions().get::<Caller>().copied() else {
        return next.run(req).await;
    };
    let format = auth.format();
    let key = match idempotency_key(format, req.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(req).await,
        Err(err) => return err.into_response(),
    };
    let (parts, body) = req.into_parts();
    let body = match read_body(format, &parts.headers, body).await {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
    // The URI as the client sent it: inside a nested router `parts.uri` lacks the prefix,
    // and the same inner path on two surfaces must not share records.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |pq| pq.as_str());
    let hash = request_hash(&parts.method, target, &body);
    let store = auth.store().clone();
    let begin = |hash: String| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            store
                .orgs()
                .idempotency_begin(
                    caller.key_id,
                    &key,
                    &hash,
                    store.now_ms(),
                    IDEMPOTENCY_TTL_MS,
                )
                .await
        }
    };
    let mut begun = begin(hash.clone()).await;
    if matches!(begun, Ok(Begin::Mismatch)) {
        // A record kept before JSON bodies were compared parsed holds the hash of the bytes:
        // the same request still matches it (a mismatch writes nothing, so asking again is
        // safe).
        let bytes_hash = bytes_hash(&parts.method, target, &body);
        if bytes_hash != hash {
            begun = begin(bytes_hash).await;
        }
    }
    match begun {
        Err(err) => ApiError::internal(format, err).into_response(),
        Ok(Begin::Replay { status, body }) => replay(format, status, body),
        Ok(Begin::Mismatch) => ApiError::validation(
            format,
            KEY_FIELD,
            "This Idempotency-Key was already used with a different request.",
        )
        .into_response(),
        Ok(Begin::InFlight) => {
            // The first run usually ends within a second; one whose process died is taken
            // over when its lease runs out (at most RUNNING_LEASE_MS).
            let mut answer = in_flight(format).into_response();
            answer
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            answer
        }
        Ok(begun @ (Begin::New | Begin::Recover(_))) => {
            let recovered = match begun {
                Begin::Recover(resource) => Some(resource),
                _ => None,
            };
            let mut req = Request::from_parts(parts, Body::from(body));
            req.extensions_mut().insert(IdemLink {
                api_key_id: caller.key_id,
                key: key.clone(),
                recovered,
            });
            let guard = AbandonGuard {
                store,
                key_id: caller.key_id,
                key,
                armed: true,
            };
            // Spawned so that a client going away does not cancel the work half-recorded.
            match tokio::spawn(run_and_record(format, next, req, guard)).await {
                Ok(response) => response,
                Err(err) => {
                    ApiError::internal(format, anyhow::anyhow!("request task failed: {err}"))
                        .into_response()
                }
            }
        }
    }
}

/// The request's key: `None` when no key header is given, an error when it is empty, too
/// long or not visible ASCII.
pub fn idempotency_key(
    format: ErrorFormat,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let Some(value) = KEY_HEADERS.iter().find_map(|name| headers.get(*name)) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::validation(
            format,
            KEY_FIELD,
            format!(
                "The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters."
            ),
        )
    };
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_CHARS
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// Hex SHA-256 of method, target (path and query) and body, separated so that no two
/// different requests share an input. A body that parses as JSON is hashed in its canonical
/// form (`canonical_json`); no other body can have those bytes, as they are JSON.
pub fn request_hash(method: &Method, target: &str, body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => {
            let mut canonical = Vec::with_capacity(body.len());
            canonical_json(&value, &mut canonical);
            bytes_hash(method, target, &canonical)
        }
        Err(_) => bytes_hash(method, target, body),
    }
}

/// [`request_hash`] as it was before JSON bodies were compared parsed: over the body's bytes.
fn bytes_hash(method: &Method, target: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(target.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// `value` as compact JSON with every object's keys in sorted order. Numbers are written as
/// serde_json reads them (`1.50` and `1.5` are one number).
fn canonical_json(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(key.clone()).to_string().as_bytes());
                out.push(b':');
                canonical_json(item, out);
            }
            out.push(b'}');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

fn replay(format: ErrorFormat, status: u16, body: Vec<u8>) -> Response {
    let Ok(status) = StatusCode::from_u16(status) else {
        return ApiError::internal(
            format,
            anyhow::anyhow!("stored status {status} is not HTTP"),
        )
        .into_response();
    };
    let mut response = (status, Body::from(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

fn in_flight(format: ErrorFormat) -> ApiError {
    let code = match format {
        ErrorFormat::ApiPay => "idempotency_key_in_use",
        ErrorFormat::XPayment => "IDEMPOTENCY_CONFLICT",
    };
    ApiError::coded(
        format,
        StatusCode::CONFLICT,
        code,
        "A request with this Idempotency-Key is still being processed.",
    )
}

/// Runs the handler, buffers its answer, and keeps it (< 500) or abandons the key (≥ 500).
async fn run_and_record(
    format: ErrorFormat,
    next: Next,
    req: Request,
    mut guard: AbandonGuard,
) -> Response {
    // Renew the record's lease while the handler runs: only a dead process lets it run out.
    let _renewal = AbortOnDrop({
        let (store, key_id, key) = (guard.store.clone(), guard.key_id, guard.key.clone());
        tokio::spawn(async move {
            let every = std::time::Duration::from_millis(
                u64::try_from(RUNNING_LEASE_MS / 3).unwrap_or(1000),
            );
            loop {
                tokio::time::sleep(every).await;
                let until = store.now_ms().saturating_add(RUNNING_LEASE_MS);
                if let Err(err) = store.orgs().idempotency_renew(key_id, &key, until).await {
                    tracing::warn!(key_id, error = %err, "could not renew an idempotency lease");
                }
            }
        })
    });
    let response = next.run(req).await;
    let (parts, body) = response.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(err) => {
            guard.abandon().await;
            return ApiError::internal(
                format,
                anyhow::Error::new(err).context("buffering a response for its idempotency record"),
            )
            .into_response();
        }
    };
    if parts.status.is_server_error() {
        guard.abandon().await;
    } else {
        let recorded = guard
            .store
            .orgs()
            .idempotency_finish(guard.key_id, &guard.key, parts.status.as_u16(), &body)
            .await;
        // Even when recording failed the work is done: the record must not be abandoned (a
        // retry would repeat it), so it stays running until it expires.
        guard.armed = false;
        if let Err(err) = recorded {
            tracing::error!(key_id = guard.key_id, error = %err,
                "could not record an idempotent answer; its key answers 409 until it expires");
        }
    }
    Response::from_parts(parts, Body::from(body))
}

/// Ends a background task when dropped (also when the handler panics).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Abandons the idempotency record when dropped armed (the handler panicked or its task was
/// cancelled), in a spawned task since `Drop` cannot wait.
struct AbandonGuard {
    store: Store,
    key_id: i64,
    key: String,
    armed: bool,
}

impl AbandonGuard {
    async fn abandon(&mut self) {
        self.armed = false;
        if let Err(err) = self
            .store
            .orgs()
            .idempotency_abandon(self.key_id, &self.key)
            .await
        {
            tracing::warn!(key_id = self.key_id, error = %err, "could not abandon an idempotency record");
        }
    }
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, key_id, key) = (
            self.store.clone(),
            self.key_id,
            std::mem::take(&mut self.key),
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(err) = store.orgs().idempotency_abandon(key_id, &key).await {
                        tracing::warn!(key_id, error = %err, "could not abandon an idempotency record");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(
                    key_id,
                    "no runtime to abandon an idempotency record; it stays running"
                );
            }
        }
    }
}
