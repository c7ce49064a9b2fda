//! The live/test switch: every page acts as the organization's live side or as its test
//! mode (the twin organization, `store::orgs`), as the `kassa_mode` cookie says. In test mode
//! the pages read and change the twin's data through the API as the twin ([`Signed::org_id`]),
//! the twin's cashier is the sandbox's, and a banner says so on every page. Users, roles and the
//! session stay the live organization's: the cookie only picks which side is shown, so it
//! grants nothing (a forged cookie shows the user's own test data, nothing more).
//!
//! The first switch to test makes the twin with its sandbox cashier
//! ([`crate::gateway::Gateway::test_mode_of`]).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::Deserialize;

use super::render::{DashError, Signed};
use super::{see_other, Dashboard};
use crate::domain::Mode;

/// The cookie that says which side the pages show (`test`; anything else is live).
pub(super) const MODE_COOKIE: &str = "kassa_mode";

/// A year: the switch stays where it was put.
const MODE_COOKIE_MS: i64 = 365 * 24 * 3600 * 1000;

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("mode.live", "Боевой режим", "Live"),
    ("mode.test", "Тестовый режим", "Test mode"),
    ("mode.to_test", "Перейти в тестовый режим", "Switch to test mode"),
    ("mode.to_live", "Вернуться в боевой режим", "Back to live"),
    (
        "mode.banner",
        "Тестовый режим: здесь только тестовые счета, подписки и ключи; платежи идут в Kaspi-песочницу, деньги не двигаются.",
        "Test mode: only test invoices, subscriptions and keys are here; payments go to the sandbox Kaspi, no money moves.",
    ),
];

pub(super) fn routes() -> Router<Dashboard> {
    Router::new().route("/mode", post(switch))
}

/// Which side a request acts as: the organization whose data the pages show, and whether it
/// is the test mode. The test side is taken only when the cookie asks for it and the twin
/// exists (the switch makes it).
pub(super) async fn acting_org(
    dash: &Dashboard,
    jar: &CookieJar,
    live_org_id: i64,
) -> Result<(i64, Mode), DashError> {
    if jar.get(MODE_COOKIE).map(Cookie::value) != Some(Mode::Test.as_str()) {
        return Ok((live_org_id, Mode::Live));
    }
    let twin = dash.state().store.orgs().test_twin(live_org_id).await?;
    Ok(twin.map_or((live_org_id, Mode::Live), |twin| (twin.id, Mode::Test)))
}

#[derive(Debug, Deserialize)]
pub(super) struct SwitchForm {
    mode: String,
    #[serde(default)]
    back: Option<String>,
}

/// `POST /dashboard/mode`: shows the live side or the test mode from now on (making the test
/// mode on first use); back to the page it came from.
async fn switch(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<SwitchForm>,
) -> Result<Response, DashError> {
    let mode: Mode = form.mode.parse().map_err(|_| DashError::NotFound)?;
    if mode == Mode::Test {
        let (twin, made) = dash
            .state()
            .gateway
            .test_mode_of(me.live_org_id())
            .await
            .map_err(DashError::internal)?;
        if made {
            tracing::info!(
                org_id = me.live_org_id(),
                test_org_id = twin.id,
                user = %me.session.email,
                "dashboard: made the organization's test mode"
            );
        }
    }
    let cookie = super::auth::cookie(
        MODE_COOKIE,
        mode.as_str().to_owned(),
        &headers,
        MODE_COOKIE_MS,
    );
    let back = super::auth::safe_next(form.back.as_deref());
    Ok((jar.add(cookie), see_other(&back)).into_response())
}
