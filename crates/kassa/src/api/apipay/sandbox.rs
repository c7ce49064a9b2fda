//! The sandbox's helpers: the payer pays, declines or lets a sandbox invoice expire as Kaspi
//! would (a test key's invoice, or any in a sandbox deployment; a live key of a live
//! deployment is refused); the sandbox clock is read, and moved forward with the work that
//! comes due (a sandbox deployment only).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::errors::gateway_error;
use super::fields;
use super::views::invoice_json;
use super::F;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::extract::{ApiJson, IdPath};
use crate::api::openapi::{schemas as doc, TAG_SANDBOX};
use crate::api::rfc3339_ms;
use crate::domain::{almaty_date, almaty_rfc3339, date_text, JobKind};
use crate::gateway::{ms, Gateway, GatewayError, SandboxAction};
use crate::jobs::Jobs;

async fn sandbox(
    gateway: &Gateway,
    caller: Caller,
    id: i64,
    action: SandboxAction,
) -> Result<Json<Value>, ApiError> {
    let invoice = gateway
        .sandbox_act(caller.org_id, id, action)
        .await
        .map_err(gateway_error)?;
    Ok(Json(invoice_json(&invoice)))
}

#[utoipa::path(
    post,
    path = "/sandbox/invoices/{id}/pay",
    tag = TAG_SANDBOX,
    summary = "The payer pays a sandbox invoice",
    description = "Test keys (and every key of a sandbox deployment) only: the pending invoice, as in the Kaspi app: it becomes `paid`; webhooks follow as for a \
        real one.",
    params(("id" = i64, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The invoice after it", body = doc::Invoice),
        (status = 400, description = "Not a pending sandbox invoice (`sandbox_action_refused`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn sandbox_pay(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    sandbox(&gateway, caller, id, SandboxAction::Pay).await
}

#[utoipa::path(
    post,
    path = "/sandbox/invoices/{id}/decline",
    tag = TAG_SANDBOX,
    summary = "The payer declines a sandbox invoice",
    description = "Test keys (and every key of a sandbox deployment) only: the pending invoice, it becomes `cancelled`; webhooks follow as for a \
        real one.",
    params(("id" = i64, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The invoice after it", body = doc::Invoice),
        (status = 400, description = "Not a pending sandbox invoice (`sandbox_action_refused`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn sandbox_decline(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    sandbox(&gateway, caller, id, SandboxAction::Decline).await
}

#[utoipa::path(
    post,
    path = "/sandbox/invoices/{id}/expire",
    tag = TAG_SANDBOX,
    summary = "A sandbox invoice expires",
    description = "Test keys (and every key of a sandbox deployment) only: the pending invoice, as if its time ran out: it becomes `expired`; webhooks follow as for a \
        real one.",
    params(("id" = i64, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The invoice after it", body = doc::Invoice),
        (status = 400, description = "Not a pending sandbox invoice (`sandbox_action_refused`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn sandbox_expire(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    sandbox(&gateway, caller, id, SandboxAction::Expire).await
}

/// The most the sandbox clock moves in one request: ten years.
const MAX_ADVANCE_SECS: i64 = 10 * 366 * 24 * 3600;
/// The smallest step of the sandbox clock while it moves from one due piece of work to the
/// next: an invoice still open is looked at (and its payment found) at least this often, and
/// a year passes in a few hundred steps at most.
const MIN_STEP: Duration = Duration::from_secs(3600);

/// The sandbox clock's state: the work it runs as it moves, one move at a time. `None` in a
/// live deployment: Kassa's clock is the live organizations' too, so it does not move.
#[derive(Clone)]
pub(super) struct SandboxClock {
    jobs: Option<Jobs>,
    moving: Arc<tokio::sync::Mutex<()>>,
}

/// Why a live deployment has no sandbox clock.
const NO_CLOCK: &str = "the sandbox clock is Kassa's own clock, which this live deployment's \
     organizations share: it exists only in a sandbox deployment (`kassa serve --kaspi sandbox`)";

impl SandboxClock {
    pub(super) fn new(jobs: Option<Jobs>) -> SandboxClock {
        SandboxClock {
            jobs,
            moving: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The work this clock runs; refused in a live deployment.
    fn jobs(&self) -> Result<&Jobs, GatewayError> {
        self.jobs
            .as_ref()
            .ok_or_else(|| GatewayError::Sandbox(NO_CLOCK.into()))
    }

    fn now(&self) -> Result<Value, GatewayError> {
        let gateway = self.jobs()?.gateway();
        let now = gateway.now_ms();
        Ok(json!({
            "now": rfc3339_ms(now),
            "now_almaty": almaty_rfc3339(now),
            "today": date_text(almaty_date(now)),
            "is_sandbox": true,
        }))
    }

    /// Moves Kassa's clock and the sandbox Kaspi's together by `by`, stopping at every moment
    /// work comes due (at least [`MIN_STEP`] apart) and doing it there, so what a year holds
    /// happens in order. How many pieces of work were done.
    async fn advance(&self, by: Duration) -> Result<usize, GatewayError> {
        let _one_at_a_time = self.moving.lock().await;
        let jobs = self.jobs()?;
        let gateway = jobs.gateway();
        let sim = gateway
            .sandbox()
            .ok_or_else(|| GatewayError::Sandbox(NO_CLOCK.into()))?
            .clone();
        let target = gateway.now_ms().saturating_add(ms(by));
        let mut done = jobs.run_until_idle().await;
        loop {
            let now = gateway.now_ms();
            if now >= target {
                break;
            }
            let next = gateway
                .store()
                .jobs()
                .next_due(JobKind::SyncHistory)
                .await?
                .unwrap_or(target);
            let to = next.max(now.saturating_add(ms(MIN_STEP))).min(target);
            let step = Duration::from_millis(u64::try_from(to - now).unwrap_or(0));
            gateway.clock().advance(step);
            sim.advance_clock(step);
            done += jobs.run_until_idle().await;
        }
        Ok(done)
    }
}

#[utoipa::path(
    get,
    path = "/sandbox/clock",
    tag = TAG_SANDBOX,
    summary = "The sandbox clock",
    description = "A sandbox deployment only (`--kaspi sandbox`): Kassa's time (and the sandbox Kaspi's).",
    responses(
        (status = 200, description = "Now", body = doc::SandboxClock),
        (status = 400, description = "A live deployment (`sandbox_action_refused`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn sandbox_clock(
    State(clock): State<SandboxClock>,
) -> Result<Json<Value>, ApiError> {
    clock.now().map(Json).map_err(gateway_error)
}

#[utoipa::path(
    post,
    path = "/sandbox/clock/advance",
    tag = TAG_SANDBOX,
    summary = "Move the sandbox clock forward",
    description = "A sandbox deployment only (`--kaspi sandbox`): Kassa's clock and the sandbox Kaspi's move together by \
        `days` or `seconds`, stopping at every moment work comes due (at least an hour apart) \
        and doing it there (invoices expire, subscriptions bill and retry, webhooks go out), so \
        a year of subscriptions can be tried in one request.",
    request_body = doc::ClockAdvanceRequest,
    responses(
        (status = 200, description = "The clock after the move", body = doc::ClockAdvanced),
        (status = 400, description = "A live deployment (`sandbox_action_refused`)", body = doc::ApiPayCodedError),
    ),
)]
pub(super) async fn sandbox_clock_advance(
    State(clock): State<SandboxClock>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::new();
    let days = fields::integer(
        body.get("days"),
        "days",
        1,
        MAX_ADVANCE_SECS / 86_400,
        &mut errors,
    );
    let seconds = fields::integer(
        body.get("seconds"),
        "seconds",
        1,
        MAX_ADVANCE_SECS,
        &mut errors,
    );
    let by = match (days, seconds) {
        (Some(days), None) => Some(days * 86_400),
        (None, Some(seconds)) => Some(seconds),
        (Some(_), Some(_)) => {
            errors.add("days", "Give either days or seconds, not both.");
            None
        }
        (None, None) => {
            if errors.is_empty() {
                errors.add(
                    "days",
                    "The days field is required when seconds is not present.",
                );
            }
            None
        }
    };
    errors.into_result(F)?;
    let by = Duration::from_secs(u64::try_from(by.unwrap_or(0)).unwrap_or(0));
    let done = clock.advance(by).await.map_err(gateway_error)?;
    let mut body = clock.now().map_err(gateway_error)?;
    body["advanced_by_seconds"] = json!(by.as_secs());
    body["work_done"] = json!(done);
    Ok(Json(body))
}
