//! Signing in and out: passwords hashed with argon2, sign-in throttled per user, sessions as
//! random tokens in an `HttpOnly` cookie (kept in the database only as their SHA-256 hash,
//! so several processes share them), one-time sign-in links, and the CSRF token every form
//! carries. A user with two-factor sign-in passes `two_factor` between the first factor and
//! the session.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, OriginalUri, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::i18n::Lang;
use super::render::{DashError, Signed};
use super::{see_other, Dashboard};
use crate::store::Store;

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("login.title", "Вход в Кассу", "Sign in to Kassa"),
    ("login.email", "Эл. почта", "E-mail"),
    ("login.password", "Пароль", "Password"),
    ("login.submit", "Войти", "Sign in"),
    ("login.failed", "Неверная почта или пароль.", "Wrong e-mail or password."),
    ("login.locked", "Слишком много неудачных попыток. Попробуйте через 15 минут.", "Too many failed attempts. Try again in 15 minutes."),
    ("login.link_used", "Ссылка для входа уже использована или устарела. Создайте новую: kassa user login-link --email …", "This sign-in link was used or has expired. Make a new one: kassa user login-link --email …"),
    ("login.signed_out", "Вы вышли.", "You are signed out."),
    ("login.expired", "Сессия истекла — войдите снова.", "Your session has ended: please sign in again."),
    ("login.stale", "Форма устарела — попробуйте ещё раз.", "The form was stale: please try again."),
];

/// The session cookie.
const SESSION_COOKIE: &str = "kassa_session";
/// The language cookie (`ru`, `en`).
pub(super) const LANG_COOKIE: &str = "kassa_lang";
/// The sign-in form's CSRF cookie (double submit: there is no session yet).
pub(super) const LOGIN_CSRF_COOKIE: &str = "kassa_login_csrf";
/// The form field of the CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf_token";

/// How long a session lasts from sign-in.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// How long a one-time sign-in link works.
pub const LOGIN_LINK_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Failed sign-ins in a row before the user is locked out for [`LOCKOUT_MS`].
pub(super) const MAX_FAILED_LOGINS: i64 = 5;
pub(super) const LOCKOUT_MS: i64 = 15 * 60 * 1000;
/// The largest form the CSRF check reads (forms with files carry the token in the query).
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// An argon2id hash of `password` (a PHC string, salted).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches `hash`; a malformed hash matches nothing.
pub(super) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A new random token, URL-safe.
pub(super) fn new_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Equal strings, compared in time that does not depend on where they differ.
pub(super) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Makes a one-time sign-in link for `user_id`: the path (`/dashboard/login/<token>`) to put
/// after the server's address. It works once, for [`LOGIN_LINK_TTL_MS`].
pub async fn issue_login_link(store: &Store, user_id: i64) -> anyhow::Result<String> {
    let token = new_token();
    store
        .users()
        .create_login_token(
            user_id,
            &token_hash(&token),
            store.now_ms() + LOGIN_LINK_TTL_MS,
        )
        .await?;
    Ok(format!("{}/login/{token}", super::PREFIX))
}

pub(super) fn public_routes() -> Router<Dashboard> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/login/{token}", get(login_with_link))
        .route("/lang/{code}", get(switch_language))
}

pub(super) fn signed_in_routes() -> Router<Dashboard> {
    Router::new().route("/logout", post(logout))
}

/// Whether the request came over TLS (a reverse proxy in front says so).
pub(super) fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

pub(super) fn cookie(
    name: &'static str,
    value: String,
    headers: &HeaderMap,
    max_age_ms: i64,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(super::PREFIX)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(over_tls(headers))
        .max_age(time::Duration::milliseconds(max_age_ms))
        .build()
}

/// Where to go after signing in: a dashboard path, never another site.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/dashboard/") && !n.contains("//") && !n.contains('\\') => {
            n.to_owned()
        }
        _ => "/dashboard/".to_owned(),
    }
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct LoginQuery {
    next: Option<String>,
    note: Option<String>,
}

async fn login_form(
    State(dash): State<Dashboard>,
    jar: CookieJar,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Result<Response, DashError> {
    let lang = Lang::from_cookie(jar.get(LANG_COOKIE).map(Cookie::value));
    let note = query
        .note
        .as_deref()
        .filter(|n| ["signed_out", "expired", "link_used", "stale"].contains(n))
        .map(|n| format!("login.{n}"));
    show_login(
        &dash,
        jar,
        &headers,
        lang,
        query.next.as_deref(),
        note.as_deref(),
        "",
        StatusCode::OK,
    )
}

#[allow(clippy::too_many_arguments)]
fn show_login(
    dash: &Dashboard,
    jar: CookieJar,
    headers: &HeaderMap,
    lang: Lang,
    next: Option<&str>,
    note: Option<&str>,
    email: &str,
    status: StatusCode,
) -> Result<Response, DashError> {
    let csrf = new_token();
    let page = dash.render(
        "login.html",
        &json!({
            "lang": lang.code(),
            "other_lang": lang.other().code(),
            "path": "/dashboard/login",
            "csrf": csrf,
            "next": safe_next(next),
            "note": note,
            "email": email,
        }),
    )?;
    let jar = jar.add(cookie(LOGIN_CSRF_COOKIE, csrf, headers, 3600 * 1000));
    Ok((status, jar, page).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(
    State(dash): State<Dashboard>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, DashError> {
    let lang = Lang::from_cookie(jar.get(LANG_COOKIE).map(Cookie::value));
    let expected = jar.get(LOGIN_CSRF_COOKIE).map(Cookie::value).unwrap_or("");
    if expected.is_empty() || !same(expected, &form.csrf_token) {
        return show_login(
            &dash,
            jar,
            &headers,
            lang,
            form.next.as_deref(),
            Some("login.stale"),
            &form.email,
            StatusCode::FORBIDDEN,
        );
    }
    let store = &dash.state().store;
    let email = form.email.trim().to_lowercase();
    let user = store.users().user_by_email(&email).await?;
    let now = store.now_ms();
    let refuse = |note: &'static str| {
        show_login(
            &dash,
            jar.clone(),
            &headers,
            lang,
            form.next.as_deref(),
            Some(note),
            &email,
            StatusCode::UNAUTHORIZED,
        )
    };
    let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
        // As slow as a real check, so the answer's time does not tell which e-mails exist.
        let password = form.password.clone();
        let _ = tokio::task::spawn_blocking(move || {
            verify_password(&password, "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2yTnKwOvLrLOrYgN+6zi1xJvzuIwRD6HxM55WDpcvMQ")
        })
        .await;
        return refuse("login.failed");
    };
    if user.locked_until.is_some_and(|until| until > now) {
        return refuse("login.locked");
    }
    let password = form.password.clone();
    let hash = user.password_hash.clone();
    let matches = tokio::task::spawn_blocking(move || {
        hash.is_some_and(|hash| verify_password(&password, &hash))
    })
    .await
    .map_err(DashError::internal)?;
    if !matches {
        store
            .users()
            .note_failed_login(user.id, MAX_FAILED_LOGINS, LOCKOUT_MS)
            .await?;
        tracing::info!(user = user.id, "dashboard sign-in refused: wrong password");
        return refuse("login.failed");
    }
    // A user with two-factor gets the code form first (`two_factor`).
    super::two_factor::after_first_factor(
        &dash,
        jar,
        &headers,
        user.id,
        &safe_next(form.next.as_deref()),
    )
    .await
}

/// Signs `user_id` in: a new session, its cookie, and on to `to`.
pub(super) async fn start_session(
    dash: &Dashboard,
    jar: CookieJar,
    headers: &HeaderMap,
    user_id: i64,
    to: &str,
) -> Result<Response, DashError> {
    let store = &dash.state().store;
    let token = new_token();
    store
        .users()
        .start_session(
            user_id,
            &token_hash(&token),
            &new_token(),
            store.now_ms() + SESSION_TTL_MS,
        )
        .await?;
    tracing::info!(user = user_id, "dashboard sign-in");
    let jar = jar
        .add(cookie(SESSION_COOKIE, token, headers, SESSION_TTL_MS))
        .remove(Cookie::build(LOGIN_CSRF_COOKIE).path(super::PREFIX));
    Ok((jar, see_other(to)).into_response())
}

/// `GET /dashboard/login/{token}`: a one-time link signs its user in.
async fn login_with_link(
    State(dash): State<Dashboard>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, DashError> {
    match dash
        .state()
        .store
        .users()
        .take_login_token(&token_hash(&token))
        .await?
    {
        Some(user_id) => {
            super::two_factor::after_first_factor(&dash, jar, &headers, user_id, "/dashboard/")
                .await
        }
        None => Ok(see_other("/dashboard/login?note=link_used")),
    }
}

/// `POST /dashboard/logout`: ends this session.
async fn logout(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    jar: CookieJar,
) -> Result<Response, DashError> {
    dash.state()
        .store
        .users()
        .end_session(&me.token_hash)
        .await?;
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path(super::PREFIX));
    Ok((jar, see_other("/dashboard/login?note=signed_out")).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct Back {
    back: Option<String>,
}

/// `GET /dashboard/lang/{ru|en}?back=…`: the language, kept in a cookie.
async fn switch_language(
    Path(code): Path<String>,
    Query(back): Query<Back>,
    jar: CookieJar,
    headers: HeaderMap,
) -> Response {
    let lang = if code == "en" { "en" } else { "ru" };
    let mut c = cookie(
        LANG_COOKIE,
        lang.to_owned(),
        &headers,
        365 * 24 * 3600 * 1000,
    );
    c.set_http_only(false);
    let to = match back.back.as_deref() {
        Some("/dashboard/login") => "/dashboard/login".to_owned(),
        other => safe_next(other),
    };
    (jar.add(c), see_other(&to)).into_response()
}

/// Lets a request through with its [`Signed`] user, or sends it to the sign-in page. A `POST`
/// must carry the session's CSRF token (form field `csrf_token`; a form with files has it in
/// the query), and the user's role must allow the route's action (see `access.rs`).
pub(super) async fn require_session(
    State(dash): State<Dashboard>,
    jar: CookieJar,
    OriginalUri(original): OriginalUri,
    request: Request,
    next: Next,
) -> Response {
    let path = original
        .path_and_query()
        .map_or_else(|| "/dashboard/".to_owned(), |p| p.as_str().to_owned());
    let token = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned());
    let session = match token.as_deref() {
        Some(token) => match dash.state().store.users().session(&token_hash(token)).await {
            Ok(session) => session,
            Err(e) => return DashError::from(e).into_response(),
        },
        None => None,
    };
    let Some(session) = session else {
        let note = if token.is_some() { "&note=expired" } else { "" };
        if request.method() == Method::GET {
            let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
            return see_other(&format!("/dashboard/login?next={next}{note}"));
        }
        return see_other("/dashboard/login?note=expired");
    };
    let (acting_org_id, mode) = match super::mode::acting_org(&dash, &jar, session.org_id).await {
        Ok(acting) => acting,
        Err(e) => return e.into_response(),
    };
    let sandbox = match dash.state().gateway.is_sandbox(acting_org_id).await {
        Ok(sandbox) => sandbox,
        Err(e) => return DashError::from(e).into_response(),
    };
    let signed = Signed {
        lang: Lang::from_cookie(jar.get(LANG_COOKIE).map(Cookie::value)),
        path,
        token_hash: token.as_deref().map(token_hash).unwrap_or_default(),
        session,
        acting_org_id,
        mode,
        sandbox,
    };
    // An organization that requires two-factor: a user without it may only set it up.
    let unenrolled = signed.session.org_requires_two_factor && !signed.session.two_factor;
    if unenrolled && !super::two_factor::allowed_unenrolled(original.path()) {
        if request.method() == Method::GET {
            return see_other("/dashboard/security");
        }
        return DashError::Forbidden.into_response();
    }
    // The route's permission, before anything else reads the request: a route the table
    // does not list is refused to everyone.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    let Some(action) = super::access::required(request.method(), route) else {
        tracing::error!(route, method = %request.method(), "dashboard route without a permission: refused");
        return DashError::Forbidden.into_response();
    };
    if !signed.may(action) {
        tracing::info!(user = signed.session.user_id, role = %signed.session.role, %action, path = %original.path(), "dashboard action refused: role");
        return super::render::forbidden(&dash, &signed, action).await;
    }
    let mut request = request;
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let (parts, body) = request.into_parts();
        let is_multipart = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/"));
        let (sent, body) = if is_multipart {
            let sent = parts.uri.query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == CSRF_FIELD)
                    .map(|(_, v)| v.into_owned())
            });
            (sent, body)
        } else {
            let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
            };
            let sent = form_urlencoded::parse(&bytes)
                .find(|(k, _)| k == CSRF_FIELD)
                .map(|(_, v)| v.into_owned());
            (sent, Body::from(bytes))
        };
        if !sent.is_some_and(|sent| same(&sent, &signed.session.csrf_token)) {
            tracing::info!(path = %parts.uri.path(), "dashboard form refused: no valid CSRF token");
            return DashError::BadCsrf.into_response();
        }
        request = Request::from_parts(parts, body);
    }
    // Every change this request makes is the signed-in user's in the audit log.
    let actor = crate::audit::Actor::user(
        signed.session.user_id,
        &signed.session.email,
        crate::audit::client_ip(request.extensions()),
    );
    request.extensions_mut().insert(signed);
    crate::audit::acting(actor, next.run(request)).await
}
