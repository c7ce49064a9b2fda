//! Per-API-key rate limit: at most N requests per key in each 60-second window (N from
//! `--rate-limit-per-minute`, 0 turns it off), as ApiPay documents "60 requests per minute",
//! held across every process on the database.
//!
//! Windows are fixed and aligned to the epoch (every process agrees on them without talking),
//! as Laravel's throttle, which ApiPay runs, counts. The quota of a key's window is in one
//! database row (`rate_limit_leases`, `Store::lease_rate_quota`): a process leases a chunk of
//! it with one conditional upsert, then admits that many requests from memory. Leases never
//! grant more than N in all, so the sum over processes never passes the limit, and the
//! database sees one write per chunk, not per request. A process's chunks double through the
//! window (1, 2, 4…) up to N/16, so a key used lightly or through several processes wastes
//! little of its quota in chunks left unspent on one process (at most N/16 − 1 each), and a
//! busy one writes about 20 times a window. Refused requests are not counted.
//!
//! [`enforce`] is the middleware (after [`super::auth::authenticate`]): every answer of an
//! authenticated route gets `X-RateLimit-Limit` and `X-RateLimit-Remaining` (exact on one
//! process; with several, what is left of the window's quota as of this process's last lease,
//! plus its unspent chunk); over the limit it answers 429 in the surface's format with
//! `Retry-After`, the seconds to the window's end. Time is a parameter of
//! [`RateLimiter::check_at`], so tests step it without sleeping.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{AuthState, Caller};
use super::error::ApiError;
use crate::store::Store;

/// `X-RateLimit-Limit`: the N of the window.
pub const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: how many more requests the window allows now.
pub const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// Sweep keys of past windows out of the map every this many checks.
const SWEEP_EVERY: u32 = 1024;
/// A chunk is at most this part of the limit.
const CHUNK_DIVISOR: u32 = 16;

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The limiter is off (N = 0): no headers, no limit.
    Off,
    /// The database could not be asked (logged): admitted uncounted, without headers, since
    /// a limiter must not turn a database hiccup into refusals.
    Unchecked,
    /// Admitted and counted; `remaining` more fit in the window now.
    Allowed { limit: u32, remaining: u32 },
    /// Refused (not counted); the window ends in `retry_after_secs` whole seconds (≥ 1).
    Limited { limit: u32, retry_after_secs: u64 },
}

/// Per-key limiter over the database's quota leases. Share one (in an `Arc`) between the
/// surfaces, so a key has one budget however it is presented.
#[derive(Debug)]
pub struct RateLimiter {
    store: Store,
    limit: u32,
    /// The window's length in milliseconds (at least 1).
    window_ms: i64,
    keys: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<KeyQuota>>>>,
    checks_since_sweep: AtomicU32,
}

/// One key's quota in this process, for one window.
#[derive(Debug, Default)]
struct KeyQuota {
    /// Start of the window (unix ms) the rest is about.
    window_start: i64,
    /// Requests leased to this process and not yet admitted.
    unspent: u32,
    /// Leases taken in the window: the next chunk is 2^leases (capped).
    leases: u32,
    /// The window's quota leased by all processes as of this process's last lease.
    leased_total: u32,
    /// The window's quota is all leased: refuse until the window ends.
    exhausted: bool,
}

impl RateLimiter {
    /// `limit` requests per minute per key; 0 turns the limiter off.
    pub fn per_minute(store: Store, limit: u32) -> RateLimiter {
        RateLimiter::new(store, limit, Duration::from_secs(60))
    }

    /// `limit` requests per `window` per key; 0 turns the limiter off.
    pub fn new(store: Store, limit: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            store,
            limit,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1),
            keys: Mutex::new(HashMap::new()),
            checks_since_sweep: AtomicU32::new(0),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn is_enabled(&self) -> bool {
        self.limit > 0
    }

    /// Checks (and if admitted, counts) a request of `key_id` now.
    pub async fn check(&self, key_id: i64) -> Decision {
        let now_ms = self.store.now_ms();
        self.check_at(key_id, now_ms).await
    }

    /// Checks (and if admitted, counts) a request of `key_id` at `now_ms` (unix ms).
    pub async fn check_at(&self, key_id: i64, now_ms: i64) -> Decision {
        if self.limit == 0 {
            return Decision::Off;
        }
        let window_start = now_ms - now_ms.rem_euclid(self.window_ms);
        let quota = self.quota_of(key_id, window_start);
        // One lease at a time per key and process: requests of the key that find the chunk
        // spent wait for the lease in flight instead of taking one each.
        let mut quota = quota.lock().await;
        if quota.window_start != window_start {
            *quota = KeyQuota {
                window_start,
                ..KeyQuota::default()
            };
        }
        if quota.unspent == 0 && !quota.exhausted {
            let chunk = (1u32 << quota.leases.min(31)).min(self.max_chunk());
            match self
                .store
                .orgs()
                .lease_rate_quota(key_id, window_start, chunk, self.limit)
                .await
            {
                Ok(Some(lease)) => {
                    quota.leases += 1;
                    quota.unspent += lease.granted;
                    quota.leased_total = lease.leased_total;
                    quota.exhausted = lease.granted == 0;
                }
                Ok(None) => {
                    quota.leased_total = self.limit;
                    quota.exhausted = true;
                }
                Err(err) => {
                    tracing::warn!(key_id, error = %err, "rate limit: cannot lease quota; request admitted uncounted");
                    return Decision::Unchecked;
                }
            }
        }
        if quota.unspent > 0 {
            quota.unspent -= 1;
            let left = self.limit.saturating_sub(quota.leased_total);
            Decision::Allowed {
                limit: self.limit,
                remaining: left.saturating_add(quota.unspent).min(self.limit),
            }
        } else {
            let left_ms = (window_start + self.window_ms - now_ms).max(0);
            let secs = u64::try_from((left_ms + 999) / 1000).unwrap_or(1);
            Decision::Limited {
                limit: self.limit,
                retry_after_secs: secs.max(1),
            }
        }
    }

    fn max_chunk(&self) -> u32 {
        (self.limit / CHUNK_DIVISOR).max(1)
    }

    /// The key's quota, made if missing; now and then keys of past windows are swept out.
    fn quota_of(&self, key_id: i64, window_start: i64) -> Arc<tokio::sync::Mutex<KeyQuota>> {
        let mut keys = self.lock();
        if self.checks_since_sweep.fetch_add(1, Ordering::Relaxed) + 1 >= SWEEP_EVERY {
            self.checks_since_sweep.store(0, Ordering::Relaxed);
            // A quota in use (locked) stays; the next sweep sees it.
            keys.retain(|_, quota| {
                quota
                    .try_lock()
                    .map_or(true, |q| q.window_start >= window_start)
            });
        }
        keys.entry(key_id)
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(KeyQuota {
                    window_start,
                    ..KeyQuota::default()
                }))
            })
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Arc<tokio::sync::Mutex<KeyQuota>>>> {
        // Every change of the map is one insert or retain: a poisoned lock is consistent.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Middleware: counts the request against its [`Caller`]'s budget; see the module docs.
/// Requests without a `Caller` (not behind authentication) pass untouched.
pub async fn enforce(State(auth): State<AuthState>, req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>().copied() else {
        return next.run(req).await;
    };
    match auth.limiter().check(caller.key_id).await {
        Decision::Off | Decision::Unchecked => next.run(req).await,
        Decision::Allowed { limit, remaining } => {
            let mut response = next.run(req).await;
            set_headers(&mut response, limit, remaining);
            response
        }
        Decision::Limited {
            limit,
            retry_after_secs,
        } => {
            let mut response =
                ApiError::too_many_requests(auth.format(), retry_after_secs).into_response();
            set_headers(&mut response, limit, 0);
            response
        }
    }
}

fn set_headers(response: &mut Response, limit: u32, remaining: u32) {
    let headers = response.headers_mut();
    headers.insert(LIMIT_HEADER, HeaderValue::from(limit));
    headers.insert(REMAINING_HEADER, HeaderValue::from(remaining));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn allowed(limit: u32, remaining: u32) -> Decision {
        Decision::Allowed { limit, remaining }
    }

    fn limited(limit: u32, retry_after_secs: u64) -> Decision {
        Decision::Limited {
            limit,
            retry_after_secs,
        }
    }

    /// A store on `db` with `n` API keys (the leases refer to them); their ids.
    async fn keys(db: &Db, n: usize) -> (Store, Vec<i64>) {
        let store = Store::new(db.clone());
        let org = store.orgs().create_org("shop", "Shop").await.expect("org");
        let mut ids = Vec::new();
        for i in 0..n {
            let key = store
                .orgs()
                .create_api_key(org.id, "k", &format!("p{i}"), &format!("hash-{i}"))
                .await
                .expect("key");
            ids.push(key.id);
        }
        (store, ids)
    }

    /// A whole minute (unix ms), so the tests know where windows start.
    const T0: i64 = 1_800_000_000_000;

    crate::both_databases!(
        counts_down_then_refuses_until_the_window_ends,
        |db: Db| async move {
            let (store, ids) = keys(&db, 1).await;
            let limiter = RateLimiter::per_minute(store, 3);
            let key = ids[0];
            assert_eq!(limiter.check_at(key, T0).await, allowed(3, 2));
            assert_eq!(limiter.check_at(key, T0 + 10_000).await, allowed(3, 1));
            assert_eq!(limiter.check_at(key, T0 + 20_000).await, allowed(3, 0));
            // The window ends at T0 + 60 s: at 30 s that is 30 s away.
            assert_eq!(limiter.check_at(key, T0 + 30_000).await, limited(3, 30));
            // Partial seconds round up: at 59.001 s, 0.999 s remain → 1.
            assert_eq!(limiter.check_at(key, T0 + 59_001).await, limited(3, 1));
            // A new window, a new budget.
            assert_eq!(limiter.check_at(key, T0 + 60_000).await, allowed(3, 2));
            assert_eq!(limiter.check_at(key, T0 + 200_000).await, allowed(3, 2));
        }
    );

    crate::both_databases!(
        limiters_on_one_database_share_the_limit,
        |db: Db| async move {
            let (store, ids) = keys(&db, 2).await;
            // Two processes' limiters, with chunks of up to 64 / 16 = 4.
            let a = RateLimiter::per_minute(store.clone(), 64);
            let b = RateLimiter::per_minute(store, 64);
            let key = ids[0];
            let mut admitted = 0;
            for i in 0..200 {
                let limiter = if i % 3 == 0 { &b } else { &a };
                if let Decision::Allowed { .. } = limiter.check_at(key, T0 + i).await {
                    admitted += 1;
                }
            }
            // Exactly the limit: both kept being asked, so neither kept a chunk unspent.
            assert_eq!(admitted, 64);
            // Alone, one process spends exactly the limit, and says what remains.
            let other = ids[1];
            for remaining in (0..64).rev() {
                assert_eq!(a.check_at(other, T0).await, allowed(64, remaining));
            }
            assert_eq!(a.check_at(other, T0).await, limited(64, 60));
            assert_eq!(b.check_at(other, T0).await, limited(64, 60));
            // The next window is shared afresh.
            assert_eq!(b.check_at(other, T0 + 60_000).await, allowed(64, 63));
        }
    );

    crate::both_databases!(keys_have_separate_budgets, |db: Db| async move {
        let (store, ids) = keys(&db, 3).await;
        let limiter = RateLimiter::per_minute(store, 1);
        assert_eq!(limiter.check_at(ids[0], T0).await, allowed(1, 0));
        assert_eq!(limiter.check_at(ids[1], T0).await, allowed(1, 0));
        assert_eq!(limiter.check_at(ids[0], T0).await, limited(1, 60));
        assert_eq!(limiter.check_at(ids[2], T0).await, allowed(1, 0));
    });

    crate::both_databases!(zero_turns_it_off, |db: Db| async move {
        let limiter = RateLimiter::per_minute(Store::new(db), 0);
        assert!(!limiter.is_enabled());
        for _ in 0..1000 {
            // No key rows: the database is never asked.
            assert_eq!(limiter.check(1).await, Decision::Off);
        }
    });

    crate::both_databases!(retry_after_is_at_least_one_second, |db: Db| async move {
        let (store, ids) = keys(&db, 1).await;
        let limiter = RateLimiter::new(store, 1, Duration::from_millis(300));
        let t0 = T0; // also a multiple of 300 ms
        assert_eq!(limiter.check_at(ids[0], t0).await, allowed(1, 0));
        assert_eq!(limiter.check_at(ids[0], t0 + 299).await, limited(1, 1));
        assert_eq!(limiter.check_at(ids[0], t0 + 300).await, allowed(1, 0));
    });

    crate::both_databases!(keys_of_past_windows_are_swept, |db: Db| async move {
        let (store, ids) = keys(&db, 3).await;
        let limiter = RateLimiter::per_minute(store, 5);
        limiter.check_at(ids[0], T0).await;
        limiter.check_at(ids[1], T0).await;
        let later = T0 + 61_000;
        for _ in 0..SWEEP_EVERY {
            limiter.check_at(ids[2], later).await;
        }
        assert_eq!(limiter.lock().len(), 1, "only the active key is left");
    });
}
