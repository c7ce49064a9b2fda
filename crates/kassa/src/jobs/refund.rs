//! `refund`: sends a queued refund to Kaspi, or finds out what became of one whose answer was
//! lost, on the reconcile schedule; a refund waits (it is not failed) while a person must act.

use super::retry::{again_after, delay_at, same_attempt_on, wait_for_person};
use crate::gateway::{Gateway, GatewayError, RefundStep};
use crate::store::Job;

pub(super) async fn run(gateway: &Gateway, worker: &str, job: &Job) -> Result<(), GatewayError> {
    let schedule = &gateway.settings().reconcile_schedule;
    match gateway.advance_refund(job.ref_id, job.attempt).await {
        Ok(RefundStep::Ended) => {
            // Its end removed the job, unless it had ended before.
            gateway.store().jobs().finish_job(job.id).await?;
            Ok(())
        }
        Ok(RefundStep::NotSent) => same_attempt_on(gateway, worker, job, schedule, None).await,
        Ok(RefundStep::Unconfirmed) => {
            let delay = delay_at(schedule, job.attempt + 1);
            again_after(gateway, worker, job, job.attempt + 1, delay, None).await
        }
        Err(e) if e.waits_for_person() => wait_for_person(gateway, worker, job, &e).await,
        Err(e) => same_attempt_on(gateway, worker, job, schedule, Some(&e)).await,
    }
}
