//! Two-factor sign-in (TOTP, RFC 6238: SHA-1, 6 digits, 30 s steps, as every authenticator
//! app reads an `otpauth://` URI) with recovery codes, and the organization's rule that every
//! user has it.
//!
//! - The security page (`/dashboard/security`): enrol (the secret in base32, its `otpauth://`
//!   URI and a QR code of it; confirmed by a current code), ten recovery codes shown once and
//!   kept as keyed hashes, each usable once; turning it off takes a current code. An owner sets
//!   the organization's "require two-factor".
//! - Sign-in: after the password or a one-time link, a user with two-factor gets no session but
//!   a short-lived waiting sign-in (cookie `kassa_2fa`, kept hashed) and the code form; a code
//!   of the current step or one step either side, or an unused recovery code, starts the
//!   session. A wrong code counts toward the sign-in lockout; a step's code is accepted once
//!   (the last accepted step is kept, and only a later one passes).
//! - Required: while the organization requires it, a signed-in user without it is sent to the
//!   security page and may do nothing else (`auth::require_session` asks [`allowed_unenrolled`]).
//!
//! The secret is sealed with the master key (context `totp:{user id}`); neither it nor a code is
//! ever logged. Time is the store's clock, so tests step it.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use base64::Engine as _;
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{json, Value};
use totp_rs::{Algorithm, TOTP};

use super::auth::{self, cookie, new_token, same, token_hash, LANG_COOKIE, LOGIN_CSRF_COOKIE};
use super::i18n::{self, Lang};
use super::render::{DashError, Signed};
use super::{see_other, Dashboard};

pub(super) const WORDS: &[(&str, &str, &str)] = &[
    ("nav.security", "Безопасность", "Security"),
    ("tfa.title", "Двухфакторный вход", "Two-factor sign-in"),
    ("tfa.intro", "Кроме пароля вход спросит код из приложения-аутентификатора (Google Authenticator, 1Password, Aegis…).", "Besides the password, signing in asks for a code from an authenticator app (Google Authenticator, 1Password, Aegis…)."),
    ("tfa.on", "Включён", "On"),
    ("tfa.off", "Выключен", "Off"),
    ("tfa.codes_left", "Неиспользованных кодов восстановления", "Recovery codes left"),
    ("tfa.start", "Настроить", "Set up"),
    ("tfa.scan", "Отсканируйте QR-код приложением или введите ключ вручную, затем введите код из приложения.", "Scan the QR code with the app or enter the key by hand, then enter the code the app shows."),
    ("tfa.secret", "Ключ", "Key"),
    ("tfa.code", "Код", "Code"),
    ("tfa.confirm", "Включить", "Turn on"),
    ("tfa.disable", "Выключить", "Turn off"),
    ("tfa.disable_hint", "Чтобы выключить, введите текущий код из приложения.", "To turn it off, enter the current code from the app."),
    ("tfa.recovery_title", "Коды восстановления", "Recovery codes"),
    ("tfa.recovery_hint", "Сохраните их сейчас: они показаны один раз. Каждый код годится для одного входа без приложения.", "Keep them now: they are shown this once. Each code signs you in once without the app."),
    ("tfa.wrong_code", "Неверный код.", "Wrong code."),
    ("tfa.required_note", "Организация требует двухфакторный вход: настройте его, чтобы продолжить.", "Your organization requires two-factor sign-in: set it up to go on."),
    ("tfa.org_title", "Для всей организации", "For the whole organization"),
    ("tfa.org_require", "Требовать двухфакторный вход от всех пользователей", "Require two-factor sign-in of every user"),
    ("tfa.org_save", "Сохранить", "Save"),
    ("tfa.login_title", "Код подтверждения", "Verification code"),
    ("tfa.login_hint", "Введите код из приложения-аутентификатора или один из кодов восстановления.", "Enter the code from your authenticator app or one of your recovery codes."),
    ("tfa.login_submit", "Подтвердить", "Verify"),
    ("done.tfa_enabled", "Двухфакторный вход включён.", "Two-factor sign-in is on."),
    ("done.tfa_disabled", "Двухфакторный вход выключен.", "Two-factor sign-in is off."),
    ("done.tfa_required", "Настройка организации сохранена.", "The organization's setting was saved."),
];

/// Seconds per TOTP step.
const STEP_SECS: u64 = 30;
/// Digits of a code.
const DIGITS: usize = 6;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
const SECRET_BYTES: usize = 20;
/// Recovery codes made at enrolment.
const RECOVERY_CODES: usize = 10;
/// How long a sign-in may wait for its second factor.
const PENDING_TTL_MS: i64 = 10 * 60 * 1000;
/// The waiting sign-in's cookie.
const PENDING_COOKIE: &str = "kassa_2fa";
/// Who the codes are from, in the authenticator app.
const ISSUER: &str = "Kassa";

pub(super) fn public_routes() -> Router<Dashboard> {
    Router::new().route("/login/two-factor", get(code_form).post(code_submit))
}

pub(super) fn signed_in_routes() -> Router<Dashboard> {
    Router::new()
        .route("/security", get(security))
        .route("/security/totp/start", post(start))
        .route("/security/totp/confirm", post(confirm))
        .route("/security/totp/disable", post(disable))
        .route("/security/require", post(require))
}

/// Whether a signed-in user who lacks required two-factor may open `path`: the security page
/// and its forms, and signing out.
pub(super) fn allowed_unenrolled(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    path == "/dashboard/security"
        || path.starts_with("/dashboard/security/")
        || path == "/dashboard/logout"
}

/// The TOTP of `secret` for `email`.
fn totp(secret: Vec<u8>, email: &str) -> Result<TOTP, DashError> {
    // The account name may not hold a colon (it separates the issuer in the URI).
    let account = email.replace(':', "");
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECS,
        secret,
        Some(ISSUER.to_owned()),
        account,
    )
    .map_err(|e| DashError::internal(anyhow::anyhow!("TOTP: {e:?}")))
}

fn seal_context(user_id: i64) -> String {
    format!("totp:{user_id}")
}

/// The secret sealed in `sealed` (base64) for `user_id`.
fn open_secret(dash: &Dashboard, user_id: i64, sealed: &str) -> Result<Vec<u8>, DashError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(DashError::internal)?;
    dash.state()
        .master_key
        .open(&bytes, &seal_context(user_id))
        .map_err(DashError::internal)
}

/// The step (of the current one and one either side, at `now_ms`) whose code is `code`.
fn matching_step(totp: &TOTP, code: &str, now_ms: i64) -> Option<i64> {
    let now = u64::try_from(now_ms / 1000).ok()? / STEP_SECS;
    [now.checked_sub(1), Some(now), Some(now + 1)]
        .into_iter()
        .flatten()
        .find(|step| same(&totp.generate(step * STEP_SECS), code))
        .and_then(|step| i64::try_from(step).ok())
}

/// A code as typed: spaces and dashes gone, lower case.
fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_totp_code(code: &str) -> bool {
    code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// A new recovery code: ten base32 letters and digits (50 bits), shown as `xxxxx-xxxxx`.
fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut bytes);
    let letters: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect();
    format!("{}-{}", &letters[..5], &letters[5..])
}

/// After the password or a one-time link: a session at once, or for a user with two-factor a
/// waiting sign-in and the code form.
pub(super) async fn after_first_factor(
    dash: &Dashboard,
    jar: CookieJar,
    headers: &HeaderMap,
    user_id: i64,
    to: &str,
) -> Result<Response, DashError> {
    let store = &dash.state().store;
    if !store.users().two_factor(user_id).await?.enabled() {
        return auth::start_session(dash, jar, headers, user_id, to).await;
    }
    let token = new_token();
    store
        .users()
        .create_pending_signin(
            &token_hash(&token),
            user_id,
            to,
            store.now_ms() + PENDING_TTL_MS,
        )
        .await?;
    tracing::info!(
        user = user_id,
        "dashboard sign-in waits for its second factor"
    );
    let jar = jar.add(cookie(PENDING_COOKIE, token, headers, PENDING_TTL_MS));
    Ok((jar, see_other("/dashboard/login/two-factor")).into_response())
}

/// The code form of a waiting sign-in.
fn show_code_form(
    dash: &Dashboard,
    jar: CookieJar,
    headers: &HeaderMap,
    note: Option<&str>,
    status: StatusCode,
) -> Result<Response, DashError> {
    let lang = Lang::from_cookie(jar.get(LANG_COOKIE).map(Cookie::value));
    let csrf = new_token();
    let page = dash.render(
        "two_factor_login.html",
        &json!({
            "lang": lang.code(),
            "other_lang": lang.other().code(),
            "csrf": csrf,
            "note": note,
        }),
    )?;
    let jar = jar.add(cookie(LOGIN_CSRF_COOKIE, csrf, headers, 3600 * 1000));
    Ok((status, jar, page).into_response())
}

/// `GET /dashboard/login/two-factor`.
async fn code_form(
    State(dash): State<Dashboard>,
    jar: CookieJar,
    headers: HeaderMap,
) -> Result<Response, DashError> {
    if jar.get(PENDING_COOKIE).is_none() {
        return Ok(see_other("/dashboard/login"));
    }
    show_code_form(&dash, jar, &headers, None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf_token: String,
}

/// `POST /dashboard/login/two-factor`: the second factor of a waiting sign-in.
async fn code_submit(
    State(dash): State<Dashboard>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, DashError> {
    let expected = jar.get(LOGIN_CSRF_COOKIE).map(Cookie::value).unwrap_or("");
    if expected.is_empty() || !same(expected, &form.csrf_token) {
        return show_code_form(
            &dash,
            jar,
            &headers,
            Some("login.stale"),
            StatusCode::FORBIDDEN,
        );
    }
    let store = &dash.state().store;
    let Some(token) = jar.get(PENDING_COOKIE).map(|c| token_hash(c.value())) else {
        return Ok(see_other("/dashboard/login?note=expired"));
    };
    let Some(pending) = store.users().pending_signin(&token).await? else {
        return Ok(see_other("/dashboard/login?note=expired"));
    };
    let now = store.now_ms();
    if pending.locked_until.is_some_and(|until| until > now) {
        return show_code_form(
            &dash,
            jar,
            &headers,
            Some("login.locked"),
            StatusCode::UNAUTHORIZED,
        );
    }
    let user_id = pending.user_id;
    if !second_factor_ok(&dash, user_id, &pending.email, &form.code).await? {
        store
            .users()
            .note_failed_login(user_id, auth::MAX_FAILED_LOGINS, auth::LOCKOUT_MS)
            .await?;
        tracing::info!(
            user = user_id,
            "dashboard sign-in refused: wrong second factor"
        );
        return show_code_form(
            &dash,
            jar,
            &headers,
            Some("tfa.wrong_code"),
            StatusCode::UNAUTHORIZED,
        );
    }
    if !store.users().finish_pending_signin(&token).await? {
        return Ok(see_other("/dashboard/login?note=expired"));
    }
    let jar = jar.remove(Cookie::build(PENDING_COOKIE).path(super::PREFIX));
    auth::start_session(&dash, jar, &headers, user_id, &pending.next_path).await
}

/// Whether `code` is a current TOTP code of `user_id` not accepted before (and now accepted),
/// or an unused recovery code (now used).
async fn second_factor_ok(
    dash: &Dashboard,
    user_id: i64,
    email: &str,
    code: &str,
) -> Result<bool, DashError> {
    let store = &dash.state().store;
    let state = store.users().two_factor(user_id).await?;
    let (Some(sealed), true) = (state.sealed_secret, state.enabled_at.is_some()) else {
        return Ok(false);
    };
    let code = normalize(code);
    if is_totp_code(&code) {
        let totp = totp(open_secret(dash, user_id, &sealed)?, email)?;
        return match matching_step(&totp, &code, store.now_ms()) {
            Some(step) => Ok(store.users().accept_totp_step(user_id, step).await?),
            None => Ok(false),
        };
    }
    if code.is_empty() {
        return Ok(false);
    }
    let hash = dash.state().master_key.recovery_code_hash(&code);
    Ok(store.users().use_recovery_code(user_id, &hash).await?)
}

/// The security page; `extra` adds to it (recovery codes shown once, errors).
async fn page(dash: &Dashboard, me: &Signed, extra: Value) -> Result<Response, DashError> {
    let store = &dash.state().store;
    let user_id = me.session.user_id;
    let state = store.users().two_factor(user_id).await?;
    let mut enrolling = Value::Null;
    if let (Some(sealed), false) = (&state.sealed_secret, state.enabled()) {
        let totp = totp(open_secret(dash, user_id, sealed)?, &me.session.email)?;
        let uri = totp.get_url();
        let qr = crate::qr::svg(&uri).map_err(DashError::internal)?;
        enrolling = json!({"secret": totp.get_secret_base32(), "uri": uri, "qr": qr});
    }
    let mut data = json!({
        "enabled": state.enabled(),
        "codes_left": state.recovery_codes_left,
        "enrolling": enrolling,
        "is_owner": me.may(crate::domain::Permission::SetSecurityPolicy),
        "org_requires": me.session.org_requires_two_factor,
        "must_enrol": me.session.org_requires_two_factor && !state.enabled(),
        "errors": {},
    });
    if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
        data.extend(extra);
    }
    dash.page(me, "security.html", "security", data).await
}

/// `GET /dashboard/security`.
async fn security(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    page(&dash, &me, json!({})).await
}

/// `POST /dashboard/security/totp/start`: a new secret, sealed, waiting for its first code.
async fn start(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
) -> Result<Response, DashError> {
    let user_id = me.session.user_id;
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut secret);
    let sealed = dash
        .state()
        .master_key
        .seal(&secret, &seal_context(user_id));
    let sealed = base64::engine::general_purpose::STANDARD.encode(sealed);
    dash.state()
        .store
        .users()
        .begin_totp(user_id, &sealed)
        .await?;
    Ok(see_other("/dashboard/security"))
}

#[derive(Debug, Deserialize)]
struct CodeOnly {
    #[serde(default)]
    code: String,
}

/// For the signed-in user whose two-factor is `enabled` (or, when `false`, being enrolled): the
/// step `code` is a code of (`Some(None)`: none). `None` when two-factor is not in that state.
async fn code_step(
    dash: &Dashboard,
    me: &Signed,
    enabled: bool,
    code: &str,
) -> Result<Option<Option<i64>>, DashError> {
    let user_id = me.session.user_id;
    let state = dash.state().store.users().two_factor(user_id).await?;
    let sealed = match state.sealed_secret {
        Some(sealed) if state.enabled_at.is_some() == enabled => sealed,
        _ => return Ok(None),
    };
    let totp = totp(open_secret(dash, user_id, &sealed)?, &me.session.email)?;
    let code = normalize(code);
    let now = dash.state().store.now_ms();
    Ok(Some(
        is_totp_code(&code)
            .then(|| matching_step(&totp, &code, now))
            .flatten(),
    ))
}

/// The page again with `code`'s error, 422.
async fn wrong_code(dash: &Dashboard, me: &Signed) -> Result<Response, DashError> {
    let message = i18n::word(me.lang, "tfa.wrong_code").unwrap_or_default();
    let mut response = page(dash, me, json!({"errors": {"code": message}})).await?;
    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

/// `POST /dashboard/security/totp/confirm`: a current code of the waiting secret turns
/// two-factor on; the recovery codes are shown this once.
async fn confirm(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<CodeOnly>,
) -> Result<Response, DashError> {
    let store = &dash.state().store;
    let user_id = me.session.user_id;
    let Some(step) = code_step(&dash, &me, false, &form.code).await? else {
        return Ok(see_other("/dashboard/security"));
    };
    let Some(step) = step else {
        return wrong_code(&dash, &me).await;
    };
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let hashes = codes
        .iter()
        .map(|c| dash.state().master_key.recovery_code_hash(&normalize(c)))
        .collect();
    if !store.users().enable_totp(user_id, step, hashes).await? {
        return Ok(see_other("/dashboard/security"));
    }
    tracing::info!(user = user_id, "dashboard: two-factor sign-in enabled");
    let flash = i18n::word(me.lang, "done.tfa_enabled");
    page(&dash, &me, json!({"recovery_codes": codes, "flash": flash})).await
}

/// `POST /dashboard/security/totp/disable`: a current code turns two-factor off.
async fn disable(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<CodeOnly>,
) -> Result<Response, DashError> {
    let store = &dash.state().store;
    let user_id = me.session.user_id;
    let Some(step) = code_step(&dash, &me, true, &form.code).await? else {
        return Ok(see_other("/dashboard/security"));
    };
    let accepted = match step {
        Some(step) => store.users().accept_totp_step(user_id, step).await?,
        None => false,
    };
    if !accepted {
        return wrong_code(&dash, &me).await;
    }
    store.users().disable_totp(user_id).await?;
    tracing::info!(user = user_id, "dashboard: two-factor sign-in disabled");
    Ok(see_other("/dashboard/security?done=tfa_disabled"))
}

#[derive(Debug, Deserialize)]
struct RequireForm {
    #[serde(default)]
    require: Option<String>,
}

/// `POST /dashboard/security/require`: an owner sets whether the organization requires
/// two-factor sign-in.
async fn require(
    State(dash): State<Dashboard>,
    Extension(me): Extension<Signed>,
    Form(form): Form<RequireForm>,
) -> Result<Response, DashError> {
    // Owners only: `Permission::SetSecurityPolicy` in the route table.
    let required = form.require.is_some_and(|v| v == "1" || v == "on");
    dash.state()
        .store
        .users()
        .set_org_requires_two_factor(me.live_org_id(), required)
        .await?;
    tracing::info!(
        org_id = me.live_org_id(),
        user = me.session.user_id,
        required,
        "dashboard: organization two-factor requirement set"
    );
    Ok(see_other("/dashboard/security?done=tfa_required"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238's SHA-1 test vectors (20-byte key `12345678901234567890`), last six digits.
    #[test]
    fn codes_match_the_rfc_vectors() {
        let totp = totp(b"12345678901234567890".to_vec(), "a@example.com").expect("totp");
        for (time, code) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(totp.generate(time), code, "at {time}");
        }
        let at = 1_111_111_109_i64 * 1000;
        assert_eq!(matching_step(&totp, "081804", at), Some(1_111_111_109 / 30));
        // One step either side, no further.
        let next = totp.generate(1_111_111_109 + 30);
        assert_eq!(
            matching_step(&totp, &next, at),
            Some(1_111_111_109 / 30 + 1)
        );
        let far = totp.generate(1_111_111_109 + 90);
        assert_eq!(matching_step(&totp, &far, at), None);
    }

    #[test]
    fn codes_are_normalized_and_recovery_codes_look_alike() {
        assert_eq!(normalize(" 123 456 "), "123456");
        assert!(is_totp_code("123456") && !is_totp_code("12345a"));
        let code = new_recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(normalize(&code.to_uppercase()), code.replace('-', ""));
        assert!(allowed_unenrolled("/dashboard/security?note=x"));
        assert!(allowed_unenrolled("/dashboard/logout"));
        assert!(!allowed_unenrolled("/dashboard/invoices"));
        assert!(!allowed_unenrolled("/dashboard/securityx"));
    }
}
