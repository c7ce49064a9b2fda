//! The session host (`/mtoken`): organization context and session refresh.
//!
//! - `POST /v08/organizations/org-context-otp`: the cashier's profile and organization
//!   (`Data.Current`, `Data.UserId`, `Data.PhoneNumber`, `Data.Organizations`).
//! - `POST /v03/auth/sign-in-lite`: a new session (`Data.TokenSn`, `Data.X509`) whose vtoken
//!   secret is ECDH of a new server key with the client's ORIGINAL `finish` ECDH key. Works
//!   for live and expired sessions (the old token then counts as expired); a revoked session
//!   gets HTTP 200 with a non-zero `StatusCode` and no `Data`.
//!
//! mtoken signatures cover the URL and headers (as pykaspi signs), or those and the body (as
//! some newer clients sign): both are accepted. Below the minimum app build every call
//! answers `OldVersionToUpdate`; an evicted session answers `StatusCode` -101001.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use kaspi::sign;
use p256::SecretKey;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{authenticate, check_app_build, check_profile, require_live, Host, KaspiRequest};
use crate::envelope::{codes, ok, KaspiError, STATUS_SESSION};
use crate::state::{Session, SessionState, State as SimState};
use crate::Simulator;

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/v08/organizations/org-context-otp", post(org_context))
        .route("/v03/auth/sign-in-lite", post(sign_in_lite))
        .fallback(|| async {
            KaspiError::new(
                http::StatusCode::NOT_FOUND,
                crate::envelope::STATUS_ERROR,
                codes::NOT_FOUND,
                "Метод не найден",
            )
        })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OrgRequest {
    #[serde(rename = "OrganizationId")]
    organization_id: Value,
}

/// The session of an authenticated mtoken request.
fn session_of(st: &SimState, req: &KaspiRequest) -> Result<Session, KaspiError> {
    check_app_build(st, req)?;
    let token = authenticate(st, req, Host::Mtoken)?;
    st.sessions
        .get(&token)
        .cloned()
        .ok_or_else(|| KaspiError::session(codes::SESSION_NOT_FOUND, "Сессия не найдена"))
}

async fn org_context(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    sim.with_state(|st| match org_context_data(st, &req) {
        Ok(data) => ok(data),
        Err(e) => e.into_response(),
    })
}

fn org_context_data(st: &SimState, req: &KaspiRequest) -> Result<Value, KaspiError> {
    let session = session_of(st, req)?;
    require_live(&session)?;
    check_profile(&session, req, false)?;
    let body: OrgRequest = if req.body.is_empty() {
        OrgRequest::default()
    } else {
        req.json()?
    };
    let p = &session.profile;
    let asked = match &body.organization_id {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    };
    if asked != 0 && asked != p.organization_id {
        return Err(KaspiError::refused(
            "OrganizationNotFound",
            "Организация не найдена среди доступных кассиру",
        ));
    }
    let current = json!({
        "ProfileId": p.profile_id,
        "OrganizationName": p.organization_name,
        "OrganizationId": p.organization_id,
        "OrganizationIdn": p.organization_idn,
        "OrganizationKbe": p.organization_kbe,
        "EmpId": p.emp_id,
        "AccessLevelType": p.access_level_type,
        "IsCashier": p.is_cashier,
        "PayerType": "Organization",
        "CategoryName": "Розничная торговля",
        "ShowFakeCard": false,
    });
    Ok(json!({
        "Current": current,
        "UserId": p.user_id,
        "PhoneNumber": p.phone,
        "Organizations": [{
            "ProfileId": p.profile_id,
            "OrganizationId": p.organization_id,
            "OrganizationName": p.organization_name,
            "OrganizationIdn": p.organization_idn,
            "IsCashier": p.is_cashier,
        }],
    }))
}

async fn sign_in_lite(State(sim): State<Simulator>, req: KaspiRequest) -> Response {
    sim.with_state(|st| match refresh(st, &req) {
        Ok(data) => ok(data),
        Err(e) => e.into_response(),
    })
}

fn refresh(st: &mut SimState, req: &KaspiRequest) -> Result<Value, KaspiError> {
    let old = session_of(st, req)?;
    if old.state == SessionState::Evicted {
        // Another device holds the cashier now: refresh cannot bring this one back.
        return Err(KaspiError::evicted());
    }
    if old.state == SessionState::Revoked {
        // Kaspi answers HTTP 200 with a non-zero StatusCode and no Data.
        return Err(KaspiError::new(
            http::StatusCode::OK,
            STATUS_SESSION,
            codes::SESSION_REVOKED,
            "Сессия отозвана, войдите заново по SMS",
        ));
    }
    let server = SecretKey::random(&mut st.rng);
    let token_sn = st.hex_token(16);
    let session = Session {
        token_sn: token_sn.clone(),
        vtoken_secret: sign::ecdh_secret(&server, &old.client_ecdh),
        state: SessionState::Live,
        ..old.clone()
    };
    st.sessions.insert(token_sn.clone(), session);
    if let Some(previous) = st.sessions.get_mut(&old.token_sn) {
        previous.state = SessionState::Expired;
    }
    st.touch();
    tracing::info!(cashier = %old.phone, "session refreshed");
    Ok(json!({
        "TokenSn": token_sn,
        "X509": sign::public_x509_b64(&server.public_key()),
    }))
}
