//! Each cashier's budget of Kaspi calls, so that Kassa stays under Kaspi's throttle (which
//! counts per cashier): a generic cell rate per cashier (terminal id), `per_sec` calls a second
//! on average and `burst` at once, and the choice of the cashier of an organization whose
//! next call may go soonest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The budgets of every cashier of this process.
pub(super) struct Budget {
    interval: Duration,
    burst_window: Duration,
    /// Per cashier (terminal id): when its next call would be due at the steady rate.
    next: Mutex<HashMap<i64, Instant>>,
}

impl Budget {
    pub(super) fn new(per_sec: u32, burst: u32) -> Budget {
        let interval = Duration::from_secs(1) / per_sec.max(1);
        Budget {
            interval,
            burst_window: interval * burst.max(1).saturating_sub(1),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// When a call of the cashier whose steady-rate slot is `tat` may go at `now`.
    fn due(&self, tat: Instant, now: Instant) -> Instant {
        tat.max(now)
            .checked_sub(self.burst_window)
            .map_or(now, |t| t.max(now))
    }

    /// Reserves the next call of one of `cashiers` (terminal ids, not empty): the one whose
    /// call may go soonest, and among those that may go at once the least used, so a burst is
    /// spread over all of them. Its index in `cashiers` and when the call may go.
    pub(super) fn reserve_soonest(&self, cashiers: &[i64], now: Instant) -> (usize, Instant) {
        let Ok(mut next) = self.next.lock() else {
            return (0, now);
        };
        let mut best: Option<(usize, Instant, Instant)> = None;
        for (i, id) in cashiers.iter().enumerate() {
            let tat = next.get(id).copied().unwrap_or(now).max(now);
            let due = self.due(tat, now);
            if best.is_none_or(|(_, d, t)| (due, tat) < (d, t)) {
                best = Some((i, due, tat));
            }
        }
        let Some((i, due, tat)) = best else {
            return (0, now);
        };
        next.insert(cashiers[i], tat + self.interval);
        (i, due)
    }

    /// Reserves a call of one of `cashiers` only if one may go now at the steady rate, without
    /// using the burst: what can wait (polling one invoice) takes only slots nobody else needs,
    /// and never pushes a create or a history page back. The index of that cashier.
    pub(super) fn try_reserve_any(&self, cashiers: &[i64], now: Instant) -> Option<usize> {
        let Ok(mut next) = self.next.lock() else {
            return None;
        };
        let (i, tat) = cashiers
            .iter()
            .enumerate()
            .map(|(i, id)| (i, next.get(id).copied().unwrap_or(now)))
            .min_by_key(|(_, tat)| *tat)?;
        if tat > now {
            return None;
        }
        next.insert(cashiers[i], now + self.interval);
        Some(i)
    }

    /// How many calls cashier `terminal_id` could make at once at `now` without waiting (for
    /// metrics).
    pub(super) fn left(&self, terminal_id: i64, now: Instant) -> u32 {
        let Ok(next) = self.next.lock() else {
            return 0;
        };
        let ahead = next
            .get(&terminal_id)
            .map_or(Duration::ZERO, |tat| tat.saturating_duration_since(now));
        let Some(slack) = self.burst_window.checked_sub(ahead) else {
            return 0;
        };
        let calls = slack.as_nanos() / self.interval.as_nanos().max(1) + 1;
        u32::try_from(calls).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_spread_over_the_cashiers_and_each_keeps_its_rate() {
        // 10 a second, 5 at once, per cashier.
        let budget = Budget::new(10, 5);
        let now = Instant::now();
        let cashiers = [7, 8, 9];
        let mut per_cashier = [0; 3];
        let mut at_once = 0;
        for _ in 0..30 {
            let (i, due) = budget.reserve_soonest(&cashiers, now);
            per_cashier[i] += 1;
            if due == now {
                at_once += 1;
            }
        }
        // Round robin while all are free: each takes its share.
        assert_eq!(per_cashier, [10, 10, 10]);
        // Each cashier's burst of 5 goes at once; the rest waits for its own steady rate.
        assert_eq!(at_once, 15);
        assert_eq!(budget.left(7, now), 0);
        // A cashier nobody used has its whole burst.
        assert_eq!(budget.left(1, now), 5);
        // One second later each has had 10 more slots: the 30th call of a cashier (its 10th)
        // was due 0.5 s after its burst.
        let later = now + Duration::from_secs(2);
        assert_eq!(budget.left(7, later), 5);
    }

    #[test]
    fn spare_slots_come_from_any_idle_cashier_and_never_from_the_burst() {
        let budget = Budget::new(10, 5);
        let now = Instant::now();
        assert_eq!(budget.try_reserve_any(&[1, 2], now), Some(0));
        assert_eq!(budget.try_reserve_any(&[1, 2], now), Some(1));
        assert_eq!(budget.try_reserve_any(&[1, 2], now), None);
        let later = now + Duration::from_millis(100);
        assert!(budget.try_reserve_any(&[1, 2], later).is_some());
    }
}
