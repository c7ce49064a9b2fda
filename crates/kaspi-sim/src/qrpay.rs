//! The payments host (`/qrpay`): remote invoices, QR tokens, operation details, refunds and
//! the operations history, per PROTOCOL.md's table.
//!
//! Every call is authenticated by `auth` (body signed), must be made by a live session with
//! the session's `X-PI`, and is rate limited per cashier when configured. Bodies and
//! queries are read leniently; a refusal is an envelope with a non-zero `StatusCode`.
//! Invoices and QR tokens use ONE number as `Id` and `QrOperationId`.
//!
//! Operations belong to the organization, as at Kaspi: every cashier of an organization sees
//! (details, history) and acts on (cancel, refund) the organization's operations, whichever
//! cashier made them; the simulator notes which one did, for the control API.

use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kaspi::{Amount, Status};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{authenticate, check_app_build, check_profile, require_live, Host, KaspiRequest};
use crate::clock::fmt_seconds;
use crate::envelope::{codes, ok, KaspiError, STATUS_ERROR};
use crate::history::{self, order_number, HistoryRequest};
use crate::people::{self, CashierProfile, Payer};
use crate::state::{Operation, SaleType, State as SimState};
use crate::Simulator;

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/v01/remote/client-info", get(client_info))
        .route("/v01/remote/create", post(remote_create))
        .route("/v02/remote/details", get(remote_details))
        .route("/v01/remote/cancel", post(remote_cancel))
        .route("/v01/remote/history", post(remote_history))
        .route("/v01/qr-token/create", post(qr_create))
        .route("/v02/kaspi-qr/status", get(qr_status))
        .route("/v02/history/operations", post(operations))
        .route("/v01/kaspi-qr/operations/details", post(operation_details))
        .route("/v01/kaspi-qr/history-pos-return", post(refund))
        .fallback(|| async {
            KaspiError::new(
                StatusCode::NOT_FOUND,
                STATUS_ERROR,
                codes::NOT_FOUND,
                "Метод не найден",
            )
        })
}

/// Who is calling, once authenticated.
struct Ctx {
    profile: CashierProfile,
    /// Scheme, host and any prefix the client reached us at.
    base: String,
}

impl Ctx {
    fn org(&self) -> u64 {
        self.profile.organization_id
    }

    fn receipt_url(&self, id: u64) -> String {
        format!("{}/qrpay/receipt/{id}", self.base)
    }
}

/// Authenticates, checks the session and the rate, then runs `f` on the state.
fn call(
    sim: &Simulator,
    req: &KaspiRequest,
    f: impl FnOnce(&mut SimState, &Ctx) -> Result<Value, KaspiError>,
) -> Response {
    sim.with_state(|st| {
        let result = admit(st, req).and_then(|ctx| f(st, &ctx));
        match result {
            Ok(data) => ok(data),
            Err(e) => e.into_response(),
        }
    })
}

fn admit(st: &mut SimState, req: &KaspiRequest) -> Result<Ctx, KaspiError> {
    check_app_build(st, req)?;
    let token = authenticate(st, req, Host::Qrpay)?;
    let session = st
        .sessions
        .get(&token)
        .ok_or_else(|| KaspiError::session(codes::SESSION_NOT_FOUND, "Сессия не найдена"))?;
    require_live(session)?;
    check_profile(session, req, true)?;
    let profile = session.profile.clone();
    if let Some(limit) = st.cfg.cashier_rate_limit_per_sec {
        let window = st.rate.entry(profile.phone.clone()).or_default();
        let now = Instant::now();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(KaspiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                STATUS_ERROR,
                codes::TOO_MANY_REQUESTS,
                "Слишком много запросов, повторите позже",
            ));
        }
        window.push_back(now);
    }
    Ok(Ctx {
        profile,
        base: req.base_of("/qrpay/"),
    })
}

/// A numeric id from a query parameter or JSON value.
fn id_from(value: Option<&str>, name: &str) -> Result<u64, KaspiError> {
    value
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| KaspiError::invalid_request(format!("{name} должен быть числом")))
}

fn json_id(value: &Value, name: &str) -> Result<u64, KaspiError> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| KaspiError::invalid_request(format!("{name} должен быть числом")))
}

fn remote_view(op: &Operation, ctx: &Ctx) -> Value {
    json!({
        "Id": op.id,
        "QrOperationId": op.id,
        "Status": op.status.as_str(),
        "StatusDesc": op.status_desc,
        "Amount": op.amount,
        "ClientMobile": op.client_phone.as_ref().map(|p| p.as_str()),
        "ClientName": op.client_name,
        "Comment": op.comment,
        "ReceiptUrl": ctx.receipt_url(op.id),
        "OrderNumber": order_number(op),
        "OrderRegDate": fmt_seconds(op.created_ms),
        "ExpireDate": op.expires_ms.map(fmt_seconds),
    })
}

async fn client_info(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    call(&sim, &req, |st, _ctx| {
        let phone = kaspi::phone::normalize(req.query("phoneNumber").unwrap_or(""))
            .map_err(|_| KaspiError::invalid_request("Неверный номер телефона"))?;
        Ok(match people::payer(&phone) {
            Payer::NotClient => json!({ "ClientName": null, "ClientStatus": "NotClient" }),
            _ => json!({
                "ClientName": people::client_name(st.cfg.seed, &phone),
                "ClientStatus": "Client",
            }),
        })
    })
}

#[derive(Deserialize)]
struct CreateRemote {
    #[serde(rename = "PhoneNumber")]
    phone_number: String,
    #[serde(rename = "Amount")]
    amount: Amount,
    #[serde(rename = "Comment", default)]
    comment: Option<String>,
}

async fn remote_create(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    call(&sim, &req, |st, ctx| {
        let body: CreateRemote = req.json()?;
        let phone = kaspi::phone::normalize(&body.phone_number)
            .map_err(|_| KaspiError::invalid_request("Неверный номер телефона"))?;
        let id = st.create_remote(
            ctx.org(),
            phone,
            body.amount,
            body.comment.unwrap_or_default(),
        )?;
        st.made_by(id, &ctx.profile.phone);
        let op = st.op_of(ctx.org(), id)?;
        Ok(remote_view(op, ctx))
    })
}

async fn remote_details(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    call(&sim, &req, |st, ctx| {
        let id = id_from(req.query("operationId"), "operationId")?;
        let op = st.op_of(ctx.org(), id)?;
        if op.sale == SaleType::Return {
            return Err(KaspiError::operation_not_found(id));
        }
        Ok(remote_view(op, ctx))
    })
}

async fn remote_cancel(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    call(&sim, &req, |st, ctx| {
        let body: Value = req.json()?;
        let raw = body
            .get("qrOperationId")
            .or_else(|| body.get("QrOperationId"))
            .unwrap_or(&Value::Null);
        let id = json_id(raw, "qrOperationId")?;
        st.cancel(ctx.org(), id)?;
        let op = st.op_of(ctx.org(), id)?;
        Ok(json!({ "Id": op.id, "Status": op.status.as_str() }))
    })
}

async fn remote_history(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    call(&sim, &req, |st, ctx| {
        let body: Value = if req.body.is_empty() {
            json!({})
        } else {
            req.json()?
        };
        let max = body
            .get("MaxResult")
            .and_then(Value::as_u64)
            .unwrap_or(20)
            .clamp(1, 500);
        let mut ops: Vec<&Operation> = st
            .ops
            .values()
            .map(|op| &**op)
            .filter(|op| op.organization_id == ctx.org() && op.sale == SaleType::Remote)
            .collect();
        ops.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
        let items: Vec<Value> = ops
            .iter()
            .take(usize::try_from(max).unwrap_or(20))
            .map(|op| remote_view(op, ctx))
            .collect();
        Ok(json!({ "TotalCount": items.len(), "Items": items }))
    })
}

#[derive(Deserialize)]
struct CreateQr {
    #[serde(rename = "PaymentAmount")]
    amount: Amount,
}

async fn qr_create(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    call(&sim, &req, |st, ctx| {
        let body: CreateQr = req.json()?;
        let id = st.create_qr(ctx.org(), body.amount)?;
        st.made_by(id, &ctx.profile.phone);
        let op = st.op_of(ctx.org(), id)?;
        Ok(json!({
            "QrOperationId": op.id,
            "ExtTranId": order_number(op),
            "Status": op.status.as_str(),
            "QrToken": op.qr_token,
            "ExpireDate": op.expires_ms.map(fmt_seconds),
            "QrPaymentBehaviorOptions": {
                "paymentConfirmationTimeout": "60",
                "paymentStatusCountdown": "10",
                "qrCodeScanEventPollingInterval": "3",
                "qrCodeScanWaitTimeout": st.cfg.qr_ttl.as_secs().to_string(),
                "qrCodeEmbedKaspiLogo": true,
            },
            "ReceiptUrl": ctx.receipt_url(op.id),
            "Amount": op.amount,
        }))
    })
}

async fn qr_status(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    call(&sim, &req, |st, ctx| {
        let id = id_from(req.query("qrOperationId"), "qrOperationId")?;
        let op = st.op_of(ctx.org(), id)?;
        Ok(json!({
            "Id": op.id,
            "Status": op.status.as_str(),
            "StatusDesc": op.status_desc,
            "OrderRegDate": fmt_seconds(op.created_ms),
            "ChequeTitle": ctx.profile.organization_name,
            "Amount": op.amount,
        }))
    })
}

async fn operations(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    call(&sim, &req, |st, ctx| {
        let body: HistoryRequest = if req.body.is_empty() {
            HistoryRequest::default()
        } else {
            req.json()?
        };
        history::page(st, ctx.org(), &body)
    })
}

async fn operation_details(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    call(&sim, &req, |st, ctx| {
        let body: Value = req.json()?;
        let id = json_id(body.get("Id").unwrap_or(&Value::Null), "Id")?;
        let op = st.op_of(ctx.org(), id)?;
        let mut view = history::item(op);
        view["AvailableReturnAmount"] = json!(op.available_return());
        view["ReceiptUrl"] = json!(ctx.receipt_url(op.id));
        Ok(view)
    })
}

#[derive(Deserialize)]
struct Refund {
    #[serde(rename = "ReturnAmount")]
    amount: Amount,
    #[serde(rename = "QrOperationId")]
    operation: Value,
}

async fn refund(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    call(&sim, &req, |st, ctx| {
        let body: Refund = req.json()?;
        let parent = json_id(&body.operation, "QrOperationId")?;
        let id = st.refund(ctx.org(), parent, body.amount)?;
        st.made_by(id, &ctx.profile.phone);
        let op = st.op_of(ctx.org(), id)?;
        Ok(json!({
            "Id": op.id,
            "Status": op.status.as_str(),
            "ReturnAmount": op.amount,
            "QrOperationId": parent,
        }))
    })
}

/// A plain-text receipt (no authentication, as a public receipt link; not a Kaspi call,
/// so neither counted nor faulted: `lib.rs` routes it outside the qrpay layers).
pub(crate) async fn receipt(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let text = sim.with_state(|st| {
        let op = st.ops.get(&id.parse::<u64>().ok()?)?;
        let paid = op.status == Status::Processed;
        Some(format!(
            "Kaspi Pay (simulator)\nОперация {}\n{} ₸\n{}\n{}\n",
            op.id,
            op.amount,
            op.status_desc,
            if paid {
                "Чек"
            } else {
                "Не оплачено"
            }
        ))
    });
    match text {
        Some(text) => text.into_response(),
        None => (StatusCode::NOT_FOUND, "receipt not found\n").into_response(),
    }
}
