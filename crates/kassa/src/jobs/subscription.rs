//! `bill_subscription`: a subscription's due period or retry billed, or its grace period
//! ended; then the job is due again when the subscription next has something to do.

use super::retry::{again, wait_for_person};
use crate::gateway::{Gateway, GatewayError};
use crate::store::Job;

pub(super) async fn run(gateway: &Gateway, worker: &str, job: &Job) -> Result<(), GatewayError> {
    match gateway.bill_subscription(job.ref_id).await {
        Ok(()) => {
            gateway
                .store()
                .subscriptions()
                .release_billing_job(job.id, worker, job.ref_id)
                .await?;
            Ok(())
        }
        // No cashier to send with: nothing was stored; billing waits for the login.
        Err(e) if e.waits_for_person() => wait_for_person(gateway, worker, job, &e).await,
        Err(e) => again(gateway, worker, job, job.attempt + 1, Some(&e)).await,
    }
}
