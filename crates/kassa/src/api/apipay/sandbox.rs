//! The sandbox payer's helpers: pay, decline or expire a sandbox invoice as Kaspi would.

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::Value;

use super::errors::gateway_error;
use super::views::invoice_json;
use crate::api::auth::Caller;
use crate::api::error::ApiError;
use crate::api::extract::IdPath;
use crate::gateway::{Gateway, SandboxAction};

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

pub(super) async fn sandbox_pay(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    sandbox(&gateway, caller, id, SandboxAction::Pay).await
}

pub(super) async fn sandbox_decline(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    sandbox(&gateway, caller, id, SandboxAction::Decline).await
}

pub(super) async fn sandbox_expire(
    State(gateway): State<Gateway>,
    Extension(caller): Extension<Caller>,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    sandbox(&gateway, caller, id, SandboxAction::Expire).await
}
