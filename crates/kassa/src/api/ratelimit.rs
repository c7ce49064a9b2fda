//! Per-API-key rate limit: at most N requests in any 60-second window (N from
//! `--rate-limit-per-minute`, 0 turns it off), as ApiPay documents "60 requests per minute".
//!
//! A sliding log: each key keeps the instants of its admitted requests of the last window, so
//! the count is exact (no fixed-window double bursts at a minute boundary) and a refused
//! request is told exactly when the oldest one leaves the window. Refused requests are not
//! counted. Memory is at most N instants per active key; idle keys are swept out.
//!
//! The state is in this process's memory: with several Kassa processes behind a balancer,
//! each gives every key its own budget of N.
//!
//! [`enforce`] is the middleware (after [`super::auth::authenticate`]): every answer of an
//! authenticated route gets `X-RateLimit-Limit` and `X-RateLimit-Remaining`; over the limit
//! it answers 429 in the surface's format with `Retry-After`. Time is a parameter of
//! [`RateLimiter::check_at`], so tests step it without sleeping.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{AuthState, Caller};
use super::error::ApiError;

/// `X-RateLimit-Limit`: the N of the window.
pub const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: how many more requests the window allows now.
pub const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// Sweep idle keys out of the map every this many checks.
const SWEEP_EVERY: u32 = 1024;

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The limiter is off (N = 0): no headers, no limit.
    Off,
    /// Admitted and counted; `remaining` more fit in the window now.
    Allowed { limit: u32, remaining: u32 },
    /// Refused (not counted); a request fits again in `retry_after_secs` whole seconds (≥ 1).
    Limited { limit: u32, retry_after_secs: u64 },
}

/// Per-key sliding-log limiter. Share one (in an `Arc`) between the surfaces, so a key has
/// one budget however it is presented.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    state: Mutex<LimiterState>,
}

#[derive(Debug, Default)]
struct LimiterState {
    /// Admitted request instants per API key id, oldest first.
    logs: HashMap<i64, VecDeque<Instant>>,
    checks_since_sweep: u32,
}

impl RateLimiter {
    /// `limit` requests per minute per key; 0 turns the limiter off.
    pub fn per_minute(limit: u32) -> RateLimiter {
        RateLimiter::new(limit, Duration::from_secs(60))
    }

    /// `limit` requests per `window` per key; 0 turns the limiter off.
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            limit,
            window,
            state: Mutex::new(LimiterState::default()),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn is_enabled(&self) -> bool {
        self.limit > 0
    }

    /// Checks (and if admitted, counts) a request of `key_id` now.
    pub fn check(&self, key_id: i64) -> Decision {
        self.check_at(key_id, Instant::now())
    }

    /// Checks (and if admitted, counts) a request of `key_id` at `now`.
    pub fn check_at(&self, key_id: i64, now: Instant) -> Decision {
        if self.limit == 0 {
            return Decision::Off;
        }
        let window = self.window;
        let mut state = self.lock();
        state.checks_since_sweep += 1;
        if state.checks_since_sweep >= SWEEP_EVERY {
            state.checks_since_sweep = 0;
            state.logs.retain(|_, log| {
                log.back()
                    .is_some_and(|last| now.saturating_duration_since(*last) < window)
            });
        }
        let log = state.logs.entry(key_id).or_default();
        while log
            .front()
            .is_some_and(|first| now.saturating_duration_since(*first) >= window)
        {
            log.pop_front();
        }
        let used = u32::try_from(log.len()).unwrap_or(u32::MAX);
        if used < self.limit {
            // Two threads may read the clock in one order and lock in the other; keep the
            // log ordered so the front stays the oldest.
            let at = log.back().map_or(now, |last| (*last).max(now));
            log.push_back(at);
            Decision::Allowed {
                limit: self.limit,
                remaining: self.limit - used - 1,
            }
        } else {
            let oldest = log.front().copied().unwrap_or(now);
            let wait = (oldest + window).saturating_duration_since(now);
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Decision::Limited {
                limit: self.limit,
                retry_after_secs: secs.max(1),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, LimiterState> {
        // The state stays consistent even if a holder panicked (every change is one push or
        // pop), so a poisoned lock is used as it is.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Middleware: counts the request against its [`Caller`]'s budget; see the module docs.
/// Requests without a `Caller` (not behind authentication) pass untouched.
pub async fn enforce(State(auth): State<AuthState>, req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>().copied() else {
        return next.run(req).await;
    };
    match auth.limiter().check(caller.key_id) {
        Decision::Off => next.run(req).await,
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

    fn allowed(limit: u32, remaining: u32) -> Decision {
        Decision::Allowed { limit, remaining }
    }

    fn limited(limit: u32, retry_after_secs: u64) -> Decision {
        Decision::Limited {
            limit,
            retry_after_secs,
        }
    }

    #[test]
    fn counts_down_then_refuses_until_the_oldest_leaves_the_window() {
        let limiter = RateLimiter::per_minute(3);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(limiter.check_at(1, at(0)), allowed(3, 2));
        assert_eq!(limiter.check_at(1, at(10_000)), allowed(3, 1));
        assert_eq!(limiter.check_at(1, at(20_000)), allowed(3, 0));
        // The oldest (t=0) leaves at t=60 s: at t=30 s that is 30 s away.
        assert_eq!(limiter.check_at(1, at(30_000)), limited(3, 30));
        // Partial seconds round up: at 59.001 s, 0.999 s remain → 1.
        assert_eq!(limiter.check_at(1, at(59_001)), limited(3, 1));
        // Refusals were not counted: at exactly 60 s one slot is free again.
        assert_eq!(limiter.check_at(1, at(60_000)), allowed(3, 0));
        // Next free slot is when t=10 s leaves, at 70 s.
        assert_eq!(limiter.check_at(1, at(60_500)), limited(3, 10));
        assert_eq!(limiter.check_at(1, at(70_000)), allowed(3, 0));
        // Long idle: the whole budget is back.
        assert_eq!(limiter.check_at(1, at(200_000)), allowed(3, 2));
    }

    #[test]
    fn keys_have_separate_budgets() {
        let limiter = RateLimiter::per_minute(1);
        let t0 = Instant::now();
        assert_eq!(limiter.check_at(1, t0), allowed(1, 0));
        assert_eq!(limiter.check_at(2, t0), allowed(1, 0));
        assert_eq!(limiter.check_at(1, t0), limited(1, 60));
        assert_eq!(limiter.check_at(3, t0), allowed(1, 0));
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = RateLimiter::per_minute(0);
        assert!(!limiter.is_enabled());
        for _ in 0..1000 {
            assert_eq!(limiter.check(1), Decision::Off);
        }
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let limiter = RateLimiter::new(1, Duration::from_millis(300));
        let t0 = Instant::now();
        assert_eq!(limiter.check_at(7, t0), allowed(1, 0));
        assert_eq!(
            limiter.check_at(7, t0 + Duration::from_millis(299)),
            limited(1, 1)
        );
        assert_eq!(
            limiter.check_at(7, t0 + Duration::from_millis(300)),
            allowed(1, 0)
        );
    }

    #[test]
    fn out_of_order_clock_reads_keep_the_log_ordered() {
        let limiter = RateLimiter::per_minute(2);
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(limiter.check_at(1, t1), allowed(2, 1));
        // A request that read the clock earlier but locked later counts as of t1.
        assert_eq!(limiter.check_at(1, t0), allowed(2, 0));
        assert_eq!(limiter.check_at(1, t1), limited(2, 60));
        assert_eq!(
            limiter.check_at(1, t1 + Duration::from_secs(60)),
            allowed(2, 1)
        );
    }

    #[test]
    fn idle_keys_are_swept() {
        let limiter = RateLimiter::per_minute(5);
        let t0 = Instant::now();
        for key in 0..100 {
            limiter.check_at(key, t0);
        }
        let later = t0 + Duration::from_secs(61);
        for _ in 0..SWEEP_EVERY {
            limiter.check_at(1000, later);
        }
        let state = limiter.lock();
        assert_eq!(state.logs.len(), 1, "only the active key is left");
    }
}
