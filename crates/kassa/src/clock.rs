//! The one source of "now" for the gateway, its jobs, its webhooks and its store.
//!
//! [`Clock::system`] is the wall clock (plus whatever it was [advanced](Clock::advance) by: the
//! sandbox may move time forward). [`Clock::manual`] stands still until a test moves it, so
//! retry schedules, poll backoff, expiry, idempotency windows and leases are stepped through
//! instead of waited for. Every moment is unix milliseconds (`i64`), as the database stores it.
//!
//! Real durations that are not moments (an HTTP timeout, the pause of an idle loop) stay on
//! tokio's timer: they bound waiting on the outside world, not what the gateway decides.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

/// A clock shared by everything in one process; clones see the same time.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: the wall clock. `Some`: a clock that stands still at this moment.
    manual: Option<AtomicI64>,
    /// Added to the wall clock: what [`Clock::advance`] moved a system clock by.
    offset: AtomicI64,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_manual() { "manual" } else { "system" };
        write!(f, "Clock({kind}, {})", self.now_ms())
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Clock {
        Clock {
            inner: Arc::new(Inner {
                manual: None,
                offset: AtomicI64::new(0),
            }),
        }
    }

    /// A clock that stands at `start_ms` (unix milliseconds) until it is advanced.
    pub fn manual(start_ms: i64) -> Clock {
        Clock {
            inner: Arc::new(Inner {
                manual: Some(AtomicI64::new(start_ms)),
                offset: AtomicI64::new(0),
            }),
        }
    }

    /// A manual clock that starts at the real now.
    pub fn manual_from_now() -> Clock {
        Clock::manual(wall_ms())
    }

    /// Whether this clock moves only when advanced.
    pub fn is_manual(&self) -> bool {
        self.inner.manual.is_some()
    }

    /// Now, in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.inner.manual {
            Some(at) => at.load(Ordering::SeqCst),
            None => wall_ms().saturating_add(self.inner.offset.load(Ordering::SeqCst)),
        }
    }

    /// Now, as a date and time (UTC).
    pub fn now(&self) -> OffsetDateTime {
        at_ms(self.now_ms())
    }

    /// Moves the clock forward by `by` (a manual clock jumps; the system clock keeps running
    /// from its new place).
    pub fn advance(&self, by: Duration) {
        let by = ms(by);
        match &self.inner.manual {
            Some(at) => at.fetch_add(by, Ordering::SeqCst),
            None => self.inner.offset.fetch_add(by, Ordering::SeqCst),
        };
    }
}

/// A duration in whole milliseconds, saturated.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The moment `ms` unix milliseconds, in UTC.
pub fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The wall clock, in unix milliseconds: only for what is checked against another party's
/// wall clock (a webhook signature's timestamp); every decision of Kassa uses a [`Clock`].
pub fn wall_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Clock;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = Clock::manual(1_000);
        let shared = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        shared.advance(Duration::from_millis(250));
        assert_eq!(clock.now_ms(), 1_250);
        clock.advance(Duration::from_millis(3_750));
        assert_eq!(shared.now_ms(), 5_000);
        assert_eq!(clock.now().unix_timestamp(), 5);
    }

    #[test]
    fn the_system_clock_runs_and_can_be_moved_ahead() {
        let clock = Clock::system();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(3600));
        let after = clock.now_ms();
        assert!(after - before >= 3_600_000, "{before} → {after}");
        assert!(after - before < 3_660_000, "{before} → {after}");
    }
}
