//! When a job runs again: the backoff schedules and the rescheduling of a leased job.

use std::time::Duration;

use crate::gateway::{ms, Gateway, GatewayError};
use crate::store::Job;

/// How long to wait before trying again while the cashier cannot work (a login, a newer app
/// build): the slow pace of work that waits for a person.
pub(super) const NO_SESSION_RETRY: Duration = Duration::from_secs(30);

/// Reschedules a poll by the poll backoff schedule for `attempt`.
pub(super) async fn again(
    gateway: &Gateway,
    worker: &str,
    job: &Job,
    attempt: i64,
    error: Option<&GatewayError>,
) -> Result<(), GatewayError> {
    let delay = delay_at(&gateway.settings().poll_schedule, attempt);
    again_after(gateway, worker, job, attempt, delay, error).await
}

/// Releases `job` to run again `delay` from now as `attempt`, noting `error`.
pub(super) async fn again_after(
    gateway: &Gateway,
    worker: &str,
    job: &Job,
    attempt: i64,
    delay: Duration,
    error: Option<&GatewayError>,
) -> Result<(), GatewayError> {
    let error = error.map(ToString::to_string);
    gateway
        .store()
        .jobs()
        .reschedule_job(
            job.id,
            worker,
            gateway.now_ms().saturating_add(ms(delay)),
            attempt,
            error.as_deref(),
        )
        .await?;
    Ok(())
}

/// Releases `job` to run again at the slow pace of work that waits for a person (a cashier
/// login, a newer app build), as the same attempt.
pub(super) async fn wait_for_person(
    gateway: &Gateway,
    worker: &str,
    job: &Job,
    error: &GatewayError,
) -> Result<(), GatewayError> {
    again_after(
        gateway,
        worker,
        job,
        job.attempt,
        NO_SESSION_RETRY,
        Some(error),
    )
    .await
}

/// Releases `job` to run again as the same attempt, after that attempt's delay in `schedule`.
pub(super) async fn same_attempt_on(
    gateway: &Gateway,
    worker: &str,
    job: &Job,
    schedule: &[Duration],
    error: Option<&GatewayError>,
) -> Result<(), GatewayError> {
    let delay = delay_at(schedule, job.attempt);
    again_after(gateway, worker, job, job.attempt, delay, error).await
}

/// The delay before the history sync tries again after its `attempt`-th failure in a row that
/// a person need not fix: `every` doubled per failure, at most [`NO_SESSION_RETRY`].
pub(super) fn history_retry(every: Duration, attempt: i64) -> Duration {
    let doublings = u32::try_from(attempt.clamp(0, 16)).unwrap_or(16);
    every
        .saturating_mul(1 << doublings)
        .min(NO_SESSION_RETRY)
        .max(every)
}

/// The delay of `attempt` in `schedule`; the last one repeats.
pub(super) fn delay_at(schedule: &[Duration], attempt: i64) -> Duration {
    let index = usize::try_from(attempt).unwrap_or(0);
    schedule
        .get(index)
        .or_else(|| schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{delay_at, history_retry, NO_SESSION_RETRY};

    #[test]
    fn a_failing_history_sync_backs_off_from_its_pace_to_the_slow_one() {
        let every = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8)
            .map(|attempt| history_retry(every, attempt).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(history_retry(every, -3), every);
        assert_eq!(history_retry(every, i64::MAX), NO_SESSION_RETRY);
        // A pace slower than the cap is kept.
        let slow = Duration::from_secs(45);
        assert_eq!(history_retry(slow, 0), slow);
    }

    #[test]
    fn a_schedule_repeats_its_last_delay() {
        let s = Duration::from_secs;
        let schedule = [s(1), s(5)];
        assert_eq!(delay_at(&schedule, 0), s(1));
        assert_eq!(delay_at(&schedule, 1), s(5));
        assert_eq!(delay_at(&schedule, 9), s(5));
        assert_eq!(delay_at(&schedule, -1), s(1));
        assert_eq!(delay_at(&[], 0), s(5));
    }
}
