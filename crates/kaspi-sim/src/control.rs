//! The control API (`/_control`): what tests and the sandbox use to move the simulated
//! world — payers, SMS codes, app confirmation, cashiers, sessions, faults, the clock.
//!
//! Every route mirrors a [`Simulator`] method. Errors are JSON `{"error":"…","code":"…"}`
//! with 400 (malformed), 404 (unknown operation/phone/login) or 409 (not open). Faults
//! never apply here.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kaspi::Amount;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::fmt_millis;
use crate::{Challenge, ControlError, Faults, Simulator};

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/sms/{phone}", get(sms))
        .route("/app-confirm/{phone}", post(app_confirm))
        .route("/cashiers", post(set_cashier))
        .route("/cashiers/{phone}", get(cashier))
        .route("/sessions/expire", post(expire_sessions))
        .route("/sessions/revoke", post(revoke_sessions))
        .route("/sessions/evict", post(evict_sessions))
        .route("/sessions/{phone}", get(sessions))
        .route("/app-build", get(app_build).post(set_app_build))
        .route("/cashiers/{phone}/block", post(block_account))
        .route("/cashiers/{phone}/refuse-login", post(refuse_login))
        .route("/faults", get(faults).post(set_faults).delete(clear_faults))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance_clock))
        .route("/operations", get(operations))
        .route("/operations/{id}", get(operation))
        .route("/operations/{id}/{action}", post(operation_action))
        .route("/static-qr-payments", post(static_payment))
        .route("/stats", get(stats))
        .fallback(|| async { ControlError::NotFound("no such control route".into()) })
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ControlError::NotFound(m) => (StatusCode::NOT_FOUND, "NotFound", m),
            ControlError::Conflict(m) => (StatusCode::CONFLICT, "Conflict", m),
            ControlError::BadRequest(m) => (StatusCode::BAD_REQUEST, "BadRequest", m),
        };
        (status, Json(json!({ "error": message, "code": code }))).into_response()
    }
}

type Answer = Result<Json<Value>, ControlError>;

/// A JSON body; an empty body reads as `{}`.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ControlError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(text).map_err(|e| ControlError::BadRequest(format!("JSON body: {e}")))
}

fn op_id(raw: &str) -> Result<u64, ControlError> {
    raw.parse()
        .map_err(|_| ControlError::NotFound(format!("operation {raw}")))
}

async fn sms(State(sim): State<Simulator>, Path(phone): Path<String>) -> Answer {
    kaspi::phone::normalize(&phone).map_err(|e| ControlError::BadRequest(e.to_string()))?;
    let code = sim
        .last_sms(&phone)
        .ok_or_else(|| ControlError::NotFound(format!("no SMS was sent to {phone}")))?;
    Ok(Json(json!({ "code": code })))
}

async fn app_confirm(State(sim): State<Simulator>, Path(phone): Path<String>) -> Answer {
    sim.confirm_in_app(&phone)?;
    Ok(Json(json!({ "confirmed": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CashierRequest {
    phone: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    challenge: Challenge,
    /// Add the cashier to the organization of this cashier phone (Kaspi lets an
    /// organization add cashiers); absent: its own organization, or the one it was added to.
    #[serde(default)]
    organization_of: Option<String>,
}

async fn set_cashier(State(sim): State<Simulator>, raw: Bytes) -> Answer {
    let req: CashierRequest = body(&raw)?;
    let mut profile = sim.set_cashier(&req.phone, req.challenge, req.password)?;
    if let Some(owner) = &req.organization_of {
        profile = sim.add_cashier_to(&req.phone, owner)?;
    }
    Ok(Json(json!(profile)))
}

async fn cashier(State(sim): State<Simulator>, Path(phone): Path<String>) -> Answer {
    Ok(Json(json!(sim.cashier_profile(&phone)?)))
}

async fn expire_sessions(State(sim): State<Simulator>) -> Answer {
    Ok(Json(json!({ "sessions": sim.expire_sessions() })))
}

async fn revoke_sessions(State(sim): State<Simulator>) -> Answer {
    Ok(Json(json!({ "sessions": sim.revoke_sessions() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Evict {
    phone: String,
}

async fn evict_sessions(State(sim): State<Simulator>, raw: Bytes) -> Answer {
    let req: Evict = body(&raw)?;
    Ok(Json(json!({ "sessions": sim.evict_sessions(&req.phone)? })))
}

async fn sessions(State(sim): State<Simulator>, Path(phone): Path<String>) -> Answer {
    Ok(Json(json!({ "sessions": sim.sessions(&phone)? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MinBuild {
    min_build: Option<u64>,
}

async fn app_build(State(sim): State<Simulator>) -> Answer {
    Ok(Json(json!({ "min_build": sim.min_app_build() })))
}

async fn set_app_build(State(sim): State<Simulator>, raw: Bytes) -> Answer {
    let req: MinBuild = body(&raw)?;
    sim.set_min_app_build(req.min_build);
    Ok(Json(json!({ "min_build": sim.min_app_build() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    minutes: u64,
}

async fn block_account(
    State(sim): State<Simulator>,
    Path(phone): Path<String>,
    raw: Bytes,
) -> Answer {
    let req: Block = body(&raw)?;
    sim.block_account(&phone, req.minutes)?;
    Ok(Json(json!({ "blocked_minutes": req.minutes })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefuseLogin {
    code: String,
}

async fn refuse_login(
    State(sim): State<Simulator>,
    Path(phone): Path<String>,
    raw: Bytes,
) -> Answer {
    let req: RefuseLogin = body(&raw)?;
    sim.refuse_next_login(&phone, &req.code)?;
    Ok(Json(json!({ "code": req.code })))
}

async fn faults(State(sim): State<Simulator>) -> Answer {
    Ok(Json(json!(sim.faults())))
}

async fn set_faults(State(sim): State<Simulator>, raw: Bytes) -> Answer {
    let faults: Faults = body(&raw)?;
    sim.set_faults(faults)?;
    Ok(Json(json!(sim.faults())))
}

async fn clear_faults(State(sim): State<Simulator>) -> Answer {
    sim.clear_faults();
    Ok(Json(json!(sim.faults())))
}

fn now_json(sim: &Simulator) -> Value {
    let ms = i64::try_from(sim.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    json!({ "now": fmt_millis(ms), "unix_ms": ms })
}

async fn clock(State(sim): State<Simulator>) -> Answer {
    Ok(Json(now_json(&sim)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: f64,
}

async fn advance_clock(State(sim): State<Simulator>, raw: Bytes) -> Answer {
    let req: Advance = body(&raw)?;
    if !req.seconds.is_finite() || req.seconds < 0.0 || req.seconds > 1e10 {
        return Err(ControlError::BadRequest(
            "seconds must be a non-negative number".into(),
        ));
    }
    sim.advance_clock(Duration::from_secs_f64(req.seconds));
    Ok(Json(now_json(&sim)))
}

/// Every operation, oldest first: how a payer outside the process finds an invoice (by its
/// comment, its client phone) without knowing its id.
async fn operations(State(sim): State<Simulator>) -> Answer {
    Ok(Json(json!({ "operations": sim.operations() })))
}

async fn operation(State(sim): State<Simulator>, Path(id): Path<String>) -> Answer {
    let id = op_id(&id)?;
    let info = sim
        .operation(id)
        .ok_or_else(|| ControlError::NotFound(format!("operation {id}")))?;
    Ok(Json(json!(info)))
}

async fn operation_action(
    State(sim): State<Simulator>,
    Path((id, action)): Path<(String, String)>,
) -> Answer {
    let id = op_id(&id)?;
    match action.as_str() {
        "pay" => sim.pay(id)?,
        "decline" => sim.decline(id)?,
        "expire" => sim.expire(id)?,
        "scan" => sim.scan(id)?,
        other => {
            return Err(ControlError::NotFound(format!(
                "no action {other}: use pay, decline, expire or scan"
            )))
        }
    }
    let info = sim
        .operation(id)
        .ok_or_else(|| ControlError::NotFound(format!("operation {id}")))?;
    Ok(Json(json!(info)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaticPayment {
    amount: Amount,
    #[serde(default)]
    comment: String,
    /// A cashier phone of the merchant; default: the cashier who logged in last.
    #[serde(default)]
    phone: Option<String>,
}

async fn static_payment(State(sim): State<Simulator>, raw: Bytes) -> Answer {
    let req: StaticPayment = body(&raw)?;
    let id = match req.phone {
        Some(phone) => sim.add_static_qr_payment_for(&phone, req.amount, &req.comment)?,
        None => sim.add_static_qr_payment(req.amount, &req.comment)?,
    };
    Ok(Json(json!({ "id": id })))
}

async fn stats(State(sim): State<Simulator>) -> Answer {
    Ok(Json(
        json!({ "calls": sim.call_count(), "held": sim.held_answers() }),
    ))
}
