//! Pages: the templates (compiled into the binary), the context every page shares, errors as
//! pages, and the dashboard's own CSS and JavaScript.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, ErrorKind, State as TemplateState};
use serde_json::{json, Value};

use super::i18n::{self, Lang};
use super::Dashboard;
use crate::store::DashboardSession;

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("login.html", include_str!("templates/login.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("invoices.html", include_str!("templates/invoices.html")),
    (
        "invoice_new.html",
        include_str!("templates/invoice_new.html"),
    ),
    ("invoice.html", include_str!("templates/invoice.html")),
    (
        "subscriptions.html",
        include_str!("templates/subscriptions.html"),
    ),
    (
        "subscription.html",
        include_str!("templates/subscription.html"),
    ),
    (
        "subscription_new.html",
        include_str!("templates/subscription_new.html"),
    ),
    ("catalog.html", include_str!("templates/catalog.html")),
    (
        "catalog_item.html",
        include_str!("templates/catalog_item.html"),
    ),
    ("webhooks.html", include_str!("templates/webhooks.html")),
    ("webhook.html", include_str!("templates/webhook.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("security.html", include_str!("templates/security.html")),
    (
        "two_factor_login.html",
        include_str!("templates/two_factor_login.html"),
    ),
    ("audit.html", include_str!("templates/audit.html")),
    ("cashier.html", include_str!("templates/cashier.html")),
    ("sandbox.html", include_str!("templates/sandbox.html")),
    ("team.html", include_str!("templates/team.html")),
    ("password.html", include_str!("templates/password.html")),
    ("forbidden.html", include_str!("templates/forbidden.html")),
];

/// The template environment: HTML escaping on (minijinja escapes `.html` templates), `t(key)`
/// for labels in the page's language, filters `money`, `dt` and `date`.
pub(super) fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    env.add_function("t", |state: &TemplateState, key: &str| {
        let lang = page_lang(state);
        i18n::word(lang, key).map(str::to_owned).ok_or_else(|| {
            minijinja::Error::new(ErrorKind::InvalidOperation, format!("no label `{key}`"))
        })
    });
    env.add_filter("money", |state: &TemplateState, value: minijinja::Value| {
        i18n::money(page_lang(state), &value.to_string())
    });
    env.add_filter("dt", |value: minijinja::Value| {
        i18n::local_time(&value.to_string())
    });
    env
}

thread_local! {
    /// The language of the page being rendered on this thread: rendering is synchronous, and
    /// macros imported from `macros.html` do not see the page's variables.
    static RENDERING: std::cell::Cell<Lang> = const { std::cell::Cell::new(Lang::Ru) };
}

fn page_lang(_state: &TemplateState) -> Lang {
    RENDERING.with(std::cell::Cell::get)
}

/// The signed-in user of a request, put there by the session check.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub session: DashboardSession,
    pub lang: Lang,
    /// The path and query asked for (the language switch comes back here).
    pub path: String,
    /// The session token's hash (signing out ends this session).
    pub token_hash: String,
    /// The organization the pages act as: the user's own, or its test mode (`mode.rs`).
    pub acting_org_id: i64,
    pub mode: crate::domain::Mode,
    /// Whether that organization works against the sandbox Kaspi (its sandbox page, the
    /// payer's buttons).
    pub sandbox: bool,
}

impl Signed {
    /// The organization whose data the pages show and change: the user's, or its test mode
    /// when the switch says so.
    pub fn org_id(&self) -> i64 {
        self.acting_org_id
    }

    /// The user's own (live) organization: its users and roles hold in both modes.
    pub fn live_org_id(&self) -> i64 {
        self.session.org_id
    }

    /// Whether the signed-in user's role allows `action`.
    pub fn may(&self, action: crate::domain::Permission) -> bool {
        self.session.role.may(action)
    }
}

/// An error shown as a page.
#[derive(Debug)]
pub(crate) enum DashError {
    NotFound,
    /// The signed-in user may not do this (a route without a permission; a role refused is
    /// shown by [`forbidden`] in the dashboard's own frame).
    Forbidden,
    /// A form without this session's CSRF token.
    BadCsrf,
    Internal(anyhow::Error),
}

impl DashError {
    pub fn internal(e: impl Into<anyhow::Error>) -> DashError {
        DashError::Internal(e.into())
    }
}

impl From<crate::store::StoreError> for DashError {
    fn from(e: crate::store::StoreError) -> DashError {
        match e {
            crate::store::StoreError::NotFound => DashError::NotFound,
            e => DashError::internal(e),
        }
    }
}

impl From<crate::gateway::GatewayError> for DashError {
    fn from(e: crate::gateway::GatewayError) -> DashError {
        DashError::internal(e)
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let (status, key) = match &self {
            DashError::NotFound => (StatusCode::NOT_FOUND, "error.not_found"),
            DashError::Forbidden => (StatusCode::FORBIDDEN, "error.forbidden"),
            DashError::BadCsrf => (StatusCode::FORBIDDEN, "error.csrf"),
            DashError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "dashboard page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "error.internal")
            }
        };
        // Errors are shown in Russian and English at once: the page may fail before the
        // language is known.
        let body = format!(
            "<!doctype html><html lang=\"ru\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Kassa</title><link rel=\"stylesheet\" href=\"/dashboard/assets/style.css\">\
             </head><body class=\"bare\"><main class=\"narrow\"><h1>{}</h1><p>{}</p>\
             <p><a href=\"/dashboard/\">Kassa</a></p></main></body></html>",
            i18n::word(Lang::Ru, key).unwrap_or(key),
            i18n::word(Lang::En, key).unwrap_or(key),
        );
        (status, Html(body)).into_response()
    }
}

impl Dashboard {
    /// Renders `template` for the signed-in user: `data` plus what every page shows (the user,
    /// the language, the CSRF token, the navigation, the cashier banner, the sandbox flag).
    pub(crate) async fn page(
        &self,
        me: &Signed,
        template: &str,
        nav: &str,
        mut data: Value,
    ) -> Result<Response, DashError> {
        let banner = self.cashier_banner(me.org_id()).await;
        let org = self
            .state()
            .store
            .orgs()
            .org_by_id(me.live_org_id())
            .await?
            .ok_or(DashError::NotFound)?;
        let base = json!({
            "lang": me.lang.code(),
            "other_lang": me.lang.other().code(),
            "path": me.path,
            "csrf": me.session.csrf_token,
            "me": {"email": me.session.email, "role": me.session.role.as_str(), "has_password": me.session.has_password},
            "can": super::access::can(me.session.role),
            "nav": nav,
            "org": {"slug": org.slug, "name": org.name},
            "sandbox": me.sandbox,
            "test_mode": me.mode == crate::domain::Mode::Test,
            // The clock moves only in a sandbox deployment (it is Kassa's own).
            "sandbox_clock": self.state().sandbox.is_some(),
            "banner": banner,
            "flash": flash(me),
        });
        if let (Value::Object(data), Value::Object(base)) = (&mut data, base) {
            for (k, v) in base {
                data.entry(k).or_insert(v);
            }
        }
        self.render(template, &data)
    }

    /// Renders `template` with `data` as it is (pages without a session: the sign-in).
    pub(crate) fn render(&self, template: &str, data: &Value) -> Result<Response, DashError> {
        let lang = Lang::from_cookie(data["lang"].as_str());
        RENDERING.with(|l| l.set(lang));
        let html = self
            .inner
            .templates
            .get_template(template)
            .and_then(|t| t.render(data))
            .map_err(|e| DashError::internal(anyhow::anyhow!("template {template}: {e:#}")))?;
        Ok(Html(html).into_response())
    }

    /// Why a cashier of the organization cannot work, when one cannot (every page shows it);
    /// with several cashiers, which one.
    async fn cashier_banner(&self, org_id: i64) -> Value {
        match self.state().gateway.health().await {
            Ok(health) => {
                let several = health.iter().filter(|h| h.org_id == org_id).count() > 1;
                health
                    .into_iter()
                    .find(|h| h.org_id == org_id && !h.healthy)
                    .map_or(Value::Null, |h| {
                        let reason = h.reason.unwrap_or_default();
                        let reason = if several {
                            format!("{}: {reason}", crate::cli::mask_phone(&h.phone))
                        } else {
                            reason
                        };
                        json!({"reason": reason})
                    })
            }
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: cannot read the cashier's health");
                Value::Null
            }
        }
    }
}

/// The message of a finished action, named by the `done` query parameter of the page it led to
/// (`?done=created` → the label `done.created`).
fn flash(me: &Signed) -> Value {
    let query = me.path.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "done")
        .and_then(|(_, key)| i18n::word(me.lang, &format!("done.{key}")))
        .map_or(Value::Null, |w| Value::String(w.to_owned()))
}

/// The answer to a request the user's role does not allow: a 403 page in the dashboard's
/// frame, in the user's language, naming the role and what it may not do. Nothing ran.
pub(super) async fn forbidden(
    dash: &Dashboard,
    me: &Signed,
    action: crate::domain::Permission,
) -> Response {
    let data = json!({"action": action.as_str()});
    match dash.page(me, "forbidden.html", "", data).await {
        Ok(mut page) => {
            *page.status_mut() = StatusCode::FORBIDDEN;
            page
        }
        Err(e) => {
            tracing::warn!(error = ?e, "dashboard: the refusal page failed; answering plainly");
            DashError::Forbidden.into_response()
        }
    }
}

/// `GET /dashboard/assets/style.css`.
pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/style.css"))
}

/// `GET /dashboard/assets/app.js`.
pub(super) async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Any other path under `/dashboard`.
pub(super) async fn not_found(State(_): State<Dashboard>, _request: Request) -> Response {
    DashError::NotFound.into_response()
}
