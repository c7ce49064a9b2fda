//! API key authentication: [`authenticate`] turns the request's key into a [`Caller`]
//! (API key id, organization id and the key's scopes) in the request's extensions, or answers
//! 401. What the scopes allow is checked next, by `api::scopes`.
//!
//! The key is read from `X-API-Key` (ApiPay) or `Authorization: Bearer <key>` (xPayment);
//! both surfaces accept both headers, `X-API-Key` first, so a client of either API works
//! unchanged. The raw key is hashed at once with the master key
//! ([`MasterKey::api_key_hash`]) and looked up by that hash; it is never logged or kept.
//!
//! Two in-memory shortcuts keep the database off the hot path:
//! - a successful lookup (scopes included) is cached by hash, and trusted only while the revocation generation
//!   (a counter every revocation raises, in the database: `Store::revoke_api_key`) is the one
//!   seen when the lookup was made. The generation is read again in the background once the
//!   last read is [`REVOCATION_REFRESH_AFTER`] old, and a request that finds it older than
//!   [`REVOCATION_MAX_AGE`] (an idle process) reads it before trusting the cache. So **a key
//!   revoked by any process is refused everywhere within [`REVOCATION_MAX_AGE`]** (plus one
//!   read), at the cost of a one-row read every 100 ms per busy process, not one per request;
//!   a revocation through this process's own store is refused at once. Failed lookups are not
//!   cached, so a new key works at once.
//! - `last_used_at` is written at most once per [`TOUCH_INTERVAL`] per key and process, in
//!   the background, never on every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::ms;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorFormat};
use super::ratelimit::RateLimiter;
use crate::domain::Scopes;
use crate::secrets::MasterKey;
use crate::store::{ApiKeyOwner, Store, StoreError};

/// How long a successful key lookup is kept at most (revocations end it sooner).
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(60);
/// The cache is trusted only while the revocation generation was read at most this long ago:
/// the longest a key revoked by another process keeps working here.
pub const REVOCATION_MAX_AGE: Duration = Duration::from_millis(500);
/// A request that finds the generation read longer ago than this has it read again in the
/// background, so that under load no request waits for it.
pub const REVOCATION_REFRESH_AFTER: Duration = Duration::from_millis(100);
/// `last_used_at` of a key is written at most this often (per process).
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// The ApiPay key header.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Prune expired cache entries when the cache grows past this many.
const CACHE_PRUNE_AT: usize = 4096;

/// Who is calling: the authenticated API key, its organization and what it may do. Put into
/// the request's extensions by [`authenticate`]; handlers take it as an extractor
/// (`caller: Caller`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    pub key_id: i64,
    pub org_id: i64,
    pub scopes: Scopes,
}

impl From<ApiKeyOwner> for Caller {
    fn from(owner: ApiKeyOwner) -> Caller {
        Caller {
            key_id: owner.key_id,
            org_id: owner.org_id,
            scopes: owner.scopes,
        }
    }
}

/// A handler behind [`authenticate`] always finds a `Caller`; its absence is a wiring bug
/// and answers 500.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(*caller),
            None => {
                let format = parts
                    .extensions
                    .get::<ErrorFormat>()
                    .copied()
                    .unwrap_or(ErrorFormat::ApiPay);
                Err(ApiError::internal(
                    format,
                    anyhow::anyhow!("route {} is not behind authentication", parts.uri.path()),
                ))
            }
        }
    }
}

/// What the authentication, rate-limit and idempotency middleware share: one per surface
/// (its error format); the key cache and the rate limiter are shared by all of them (see
/// [`AuthState::for_surface`]). Cheap to clone.
#[derive(Clone)]
pub struct AuthState {
    format: ErrorFormat,
    keys: Arc<KeyBook>,
    limiter: Arc<RateLimiter>,
}

/// Key lookups with their caches.
struct KeyBook {
    store: Store,
    master_key: MasterKey,
    /// Successful lookups by key hash.
    cache: Mutex<HashMap<String, CachedKey>>,
    /// The revocation generation as last read.
    revocations: Mutex<Revocations>,
    /// A background read of the generation is under way.
    refreshing: AtomicBool,
    /// When each key's `last_used_at` was last written by this process.
    /// (Unix ms on the store's clock, as every moment here.)
    touched: Mutex<HashMap<i64, i64>>,
}

/// A successful lookup and what it can be trusted under.
#[derive(Debug, Clone, Copy)]
struct CachedKey {
    caller: Caller,
    at: i64,
    /// What the generations were before the lookup was made: a revocation that the lookup
    /// may have missed has changed one of them since.
    stamp: Stamp,
}

/// The revocation generation of the database and the count of this process's own
/// revocations (`Store::revocations_here`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    generation: i64,
    here: u64,
}

#[derive(Debug, Default)]
struct Revocations {
    generation: i64,
    /// When the read that gave `generation` started; `None` before the first read.
    read_at: Option<i64>,
}

impl AuthState {
    /// The state for one surface. Build one, then [`AuthState::for_surface`] for the other.
    pub fn new(
        store: Store,
        master_key: MasterKey,
        limiter: Arc<RateLimiter>,
        format: ErrorFormat,
    ) -> AuthState {
        AuthState {
            format,
            keys: Arc::new(KeyBook {
                store,
                master_key,
                cache: Mutex::new(HashMap::new()),
                revocations: Mutex::new(Revocations::default()),
                refreshing: AtomicBool::new(false),
                touched: Mutex::new(HashMap::new()),
            }),
            limiter,
        }
    }

    /// The same keys, caches and rate limiter, answering in `format`.
    pub fn for_surface(&self, format: ErrorFormat) -> AuthState {
        AuthState {
            format,
            ..self.clone()
        }
    }

    /// The surface's error format.
    pub fn format(&self) -> ErrorFormat {
        self.format
    }

    pub fn store(&self) -> &Store {
        &self.keys.store
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Who `api_key` authenticates (`None`: unknown or revoked), through the cache.
    pub async fn caller_for_key(&self, api_key: &str) -> Result<Option<Caller>, StoreError> {
        let hash = self.keys.master_key.api_key_hash(api_key);
        let stamp = self.current_stamp().await?;
        let now = self.keys.store.now_ms();
        if let Some(caller) = self.keys.cached(&hash, stamp, now) {
            return Ok(Some(caller));
        }
        let Some(owner) = self.keys.store.orgs().api_key_by_hash(&hash).await? else {
            return Ok(None);
        };
        let caller = Caller::from(owner);
        self.keys.remember(hash, caller, stamp, now);
        Ok(Some(caller))
    }

    /// The generations a cached lookup must carry to be trusted now: the last read one while
    /// it is fresh (read again in the background when it ages), else one read now.
    async fn current_stamp(&self) -> Result<Stamp, StoreError> {
        // This process's own revocations count first: one made after this read is seen by
        // the lookup that follows, or changes the count again.
        let here = self.keys.store.orgs().revocations_here();
        let now = self.keys.store.now_ms();
        let (generation, read_at) = {
            let revocations = lock(&self.keys.revocations);
            (revocations.generation, revocations.read_at)
        };
        let age = read_at.map(|at| now.saturating_sub(at));
        let generation = match age {
            Some(age) if age < ms(REVOCATION_MAX_AGE) => {
                if age >= ms(REVOCATION_REFRESH_AFTER)
                    && !self.keys.refreshing.swap(true, Ordering::AcqRel)
                {
                    let keys = self.keys.clone();
                    tokio::spawn(async move {
                        if let Err(err) = keys.read_generation().await {
                            tracing::warn!(error = %err, "could not read the API key revocation generation");
                        }
                        keys.refreshing.store(false, Ordering::Release);
                    });
                }
                generation
            }
            _ => self.keys.read_generation().await?,
        };
        Ok(Stamp { generation, here })
    }

    /// Writes the key's `last_used_at` in the background unless this process did so within
    /// [`TOUCH_INTERVAL`].
    fn touch(&self, key_id: i64) {
        let now = self.keys.store.now_ms();
        let due = {
            let mut touched = lock(&self.keys.touched);
            match touched.get(&key_id) {
                Some(last) if now.saturating_sub(*last) < ms(TOUCH_INTERVAL) => false,
                _ => {
                    touched.insert(key_id, now);
                    true
                }
            }
        };
        if due {
            let store = self.keys.store.clone();
            tokio::spawn(async move {
                if let Err(err) = store.orgs().touch_api_key(key_id, store.now_ms()).await {
                    tracing::warn!(key_id, error = %err, "could not record API key use");
                }
            });
        }
    }
}

impl KeyBook {
    fn cached(&self, hash: &str, stamp: Stamp, now: i64) -> Option<Caller> {
        let cache = lock(&self.cache);
        let hit = cache.get(hash)?;
        (hit.stamp == stamp && now.saturating_sub(hit.at) < ms(AUTH_CACHE_TTL))
            .then_some(hit.caller)
    }

    fn remember(&self, hash: String, caller: Caller, stamp: Stamp, now: i64) {
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_PRUNE_AT {
            cache.retain(|_, hit| {
                hit.stamp == stamp && now.saturating_sub(hit.at) < ms(AUTH_CACHE_TTL)
            });
        }
        cache.insert(
            hash,
            CachedKey {
                caller,
                at: now,
                stamp,
            },
        );
    }

    /// Reads the revocation generation and keeps it, unless a read started later was kept
    /// meanwhile; the generation this read found.
    async fn read_generation(&self) -> Result<i64, StoreError> {
        let started = self.store.now_ms();
        let generation = self.store.orgs().api_key_revocation_generation().await?;
        let mut revocations = lock(&self.revocations);
        if revocations.read_at.is_none_or(|at| at <= started) {
            revocations.generation = generation;
            revocations.read_at = Some(started);
        }
        Ok(generation)
    }
}

/// Every change under these locks is one insert or retain, so a poisoned lock is consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The API key of a request: `X-API-Key`, else `Authorization: Bearer <key>` (scheme
/// case-insensitive). Surrounding spaces are ignored; an empty key counts as none.
pub fn api_key_from_headers(headers: &HeaderMap) -> Option<&str> {
    let from_header = headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    from_header.or_else(|| {
        let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
        let (scheme, key) = value.split_once(' ')?;
        let key = key.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
    })
}

/// Middleware: authenticates the request (see the module docs), puts [`Caller`] and the
/// surface's [`ErrorFormat`] into its extensions and runs the rest of it with the key as the
/// audit log's actor ([`crate::audit::acting`]), or answers 401 in the surface's format.
pub async fn authenticate(State(auth): State<AuthState>, mut req: Request, next: Next) -> Response {
    let format = auth.format();
    let Some(api_key) = api_key_from_headers(req.headers()) else {
        return unauthorized(format, false).into_response();
    };
    let caller = match auth.caller_for_key(api_key).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return unauthorized(format, true).into_response(),
        Err(err) => return ApiError::internal(format, err).into_response(),
    };
    auth.touch(caller.key_id);
    let actor = crate::audit::Actor::api_key(
        caller.key_id,
        crate::secrets::api_key_prefix(api_key),
        crate::audit::client_ip(req.extensions()),
    );
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(format);
    crate::audit::acting(actor, next.run(req)).await
}

/// ApiPay documents one answer for a missing, invalid or revoked key; xPayment's says which.
fn unauthorized(format: ErrorFormat, key_given: bool) -> ApiError {
    let message = match (format, key_given) {
        (ErrorFormat::ApiPay, _) => "Invalid API key",
        (ErrorFormat::XPayment, false) => "missing API key",
        (ErrorFormat::XPayment, true) => "invalid API key",
    };
    ApiError::unauthorized(format, message)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn keys_come_from_either_header() {
        assert_eq!(
            api_key_from_headers(&headers(&[("x-api-key", " kassa_abc ")])),
            Some("kassa_abc")
        );
        assert_eq!(
            api_key_from_headers(&headers(&[("authorization", "Bearer kassa_abc")])),
            Some("kassa_abc")
        );
        assert_eq!(
            api_key_from_headers(&headers(&[("authorization", "bearer  kassa_abc")])),
            Some("kassa_abc")
        );
        assert_eq!(
            api_key_from_headers(&headers(&[
                ("x-api-key", "first"),
                ("authorization", "Bearer second")
            ])),
            Some("first")
        );
        assert_eq!(
            api_key_from_headers(&headers(&[
                ("x-api-key", ""),
                ("authorization", "Bearer b")
            ])),
            Some("b")
        );
        assert_eq!(
            api_key_from_headers(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(
            api_key_from_headers(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert_eq!(api_key_from_headers(&HeaderMap::new()), None);
    }
}
