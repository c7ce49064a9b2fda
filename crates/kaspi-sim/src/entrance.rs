//! The login host (`/entrance-pay`), as pykaspi's `auth.py` drives it.
//!
//! `POST /api/v1/entrance/step` runs the process: start (answers `meta.pId`), phone (answers
//! `EnterOtp`, `KPEnterLoginPassword` or `KPMobileCall` by the cashier's challenge),
//! password, SMS code. Every answer sets the process's `user_token` cookie, and every later
//! step must send it back with the same `pk`/`pkTag` cookies (pkTag = md5(pk)).
//! `POST /api/v1/kpentrance/finish` checks `X-Sign` (over the URL and headers, with or
//! without the body: clients of both kinds exist) and `signed.sign` with the device key of
//! the `pk` cookie, does ECDH with `guard.x509`, and makes the session; it answers
//! `success: true`, `roles`, `perms` and `data.showSaleScreen` as Kaspi does. A session
//! made from another device (`installId`) evicts the cashier's other sessions.
//! Errors come in an `error` object (`code`, `label`, `desc`); `isClosed: true` after too
//! many wrong answers. Below the minimum app build the start answers the
//! `view.onOpenAlarm` `OldVersionToUpdate`; a blocked account (or a scripted refusal) is
//! answered at the phone step (`AccountTemporaryBlocked`, …).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kaspi::sign::{self, VerifyKey};
use kaspi::Phone;
use p256::SecretKey;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{verify_with_or_without_body, KaspiRequest};
use crate::state::{LoginProcess, LoginStage, Session, SessionState, State as SimState};
use crate::{Challenge, ControlError, Simulator};

pub(crate) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/api/v1/entrance/step", post(step))
        .route("/api/v1/kpentrance/finish", post(finish))
        .fallback(|| async {
            Answer::error(StatusCode::NOT_FOUND, "NotFound", "Страница не найдена", "")
        })
}

/// An entrance answer: a JSON body and the process's `user_token` cookie.
struct Answer {
    http: StatusCode,
    body: Value,
    user_token: Option<String>,
}

impl Answer {
    fn ok(body: Value, user_token: &str) -> Self {
        Self {
            http: StatusCode::OK,
            body,
            user_token: Some(user_token.to_owned()),
        }
    }

    fn error(http: StatusCode, code: &str, label: &str, desc: &str) -> Self {
        Self {
            http,
            body: json!({
                "error": { "code": code, "label": label, "desc": desc },
                "isClosed": false,
                "Message": label,
            }),
            user_token: None,
        }
    }

    /// Keeps the process going: the client may answer the same step again.
    fn with_process(mut self, pid: &str, p: &LoginProcess) -> Self {
        self.body["meta"] = json!({ "pId": pid, "sn": p.step_name });
        self.body["isClosed"] = json!(p.stage == LoginStage::Closed);
        self.user_token = Some(p.user_token.clone());
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        if let Some(error) = self.body.get("error") {
            // Why a login step was refused, for client authors (codes and labels only).
            tracing::debug!(
                http = self.http.as_u16(),
                code = %error["code"],
                reason = %error["desc"],
                "kaspi-sim refused a login step"
            );
        }
        let mut response = (self.http, Json(self.body)).into_response();
        if let Some(token) = self.user_token {
            let cookie = format!("user_token={token}; Path=/; HttpOnly; SameSite=Lax");
            if let Ok(value) = cookie.parse() {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
        }
        response
    }
}

/// The cookies of a request, by name.
fn cookies(req: &KaspiRequest) -> HashMap<String, String> {
    req.headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The device of the `pk`/`pkTag`/`installId` cookies.
struct Device {
    key: VerifyKey,
    pk_tag: String,
    install_id: String,
}

fn device(cookies: &HashMap<String, String>) -> Result<Device, Answer> {
    let bad = |desc: &str| {
        Answer::error(
            StatusCode::BAD_REQUEST,
            "InvalidDevice",
            "Устройство не распознано",
            desc,
        )
    };
    let pk = cookies.get("pk").ok_or_else(|| bad("нет cookie pk"))?;
    let pk_tag = cookies
        .get("pkTag")
        .ok_or_else(|| bad("нет cookie pkTag"))?;
    if sign::md5_hex(pk) != *pk_tag {
        return Err(bad("pkTag не равен md5(pk)"));
    }
    let point = B64.decode(pk).map_err(|_| bad("pk не base64"))?;
    let key = VerifyKey::from_sec1_bytes(&point).ok_or_else(|| bad("pk не точка P-256"))?;
    let install_id = cookies
        .get("installId")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("нет cookie installId"))?;
    Ok(Device {
        key,
        pk_tag: pk_tag.clone(),
        install_id: install_id.clone(),
    })
}

async fn step(State(sim): State<Simulator>, req: KaspiRequest) -> Answer {
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Некорректный запрос",
            "тело не JSON",
        );
    };
    let cookies = cookies(&req);
    let device = match device(&cookies) {
        Ok(d) => d,
        Err(answer) => return answer,
    };
    let pid = body
        .pointer("/meta/pId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let build = body
        .pointer("/Data/appBuild")
        .and_then(Value::as_str)
        .or_else(|| cookies.get("ma_bld").map(String::as_str));
    let build = crate::auth::build_number(build);
    sim.with_state(|st| match pid {
        None if st.min_app_build.is_some_and(|min| build < min) => {
            tracing::debug!(build, "kaspi-sim refused a login: app build below the minimum");
            Answer {
                http: StatusCode::OK,
                body: json!({
                    "view": { "code": "KPUniversalEnterPhoneNumber", "onOpenAlarm": crate::envelope::old_version_alarm() },
                    "data": {},
                    "isClosed": true,
                }),
                user_token: None,
            }
        }
        None => start(st, device),
        Some(pid) => next_step(st, &pid, &device, &cookies, &body),
    })
}

fn start(st: &mut SimState, device: Device) -> Answer {
    let pid = uuid::Builder::from_random_bytes(st.rng.gen())
        .into_uuid()
        .to_string();
    let user_token = st.hex_token(24);
    let process = LoginProcess {
        user_token: user_token.clone(),
        device_key: device.key,
        pk_tag: device.pk_tag,
        install_id: device.install_id,
        phone: None,
        stage: LoginStage::Started,
        wrong_answers: 0,
        step_name: "EnterPhoneNumber",
    };
    st.processes.insert(pid.clone(), process);
    Answer::ok(
        json!({
            "meta": { "pId": pid, "sn": "EnterPhoneNumber" },
            "view": { "code": "KPUniversalEnterPhoneNumber" },
            "data": {},
            "isClosed": false,
        }),
        &user_token,
    )
}

fn unexpected(pid: &str, p: &LoginProcess) -> Answer {
    Answer::error(
        StatusCode::OK,
        "UnexpectedStep",
        "Этот шаг сейчас не ожидается",
        "",
    )
    .with_process(pid, p)
}

fn next_step(
    st: &mut SimState,
    pid: &str,
    device: &Device,
    cookies: &HashMap<String, String>,
    body: &Value,
) -> Answer {
    let Some(p) = st.processes.get(pid) else {
        let mut answer = process_not_found();
        answer.body["isClosed"] = json!(true);
        return answer;
    };
    if cookies.get("user_token") != Some(&p.user_token) {
        return Answer::error(
            StatusCode::UNAUTHORIZED,
            "InvalidUserToken",
            "Сессия входа не найдена",
            "нет или неверный cookie user_token",
        );
    }
    if device.pk_tag != p.pk_tag || device.install_id != p.install_id {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "DeviceMismatch",
            "Вход начат с другого устройства",
            "",
        );
    }
    if p.stage == LoginStage::Closed {
        return Answer::error(
            StatusCode::OK,
            "ProcessClosed",
            "Процесс входа закрыт",
            "начните вход заново",
        )
        .with_process(pid, p);
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let text = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_owned);
    if let Some(phone) = text("phoneNumber") {
        phone_step(st, pid, &phone)
    } else if let Some(password) = text("password") {
        password_step(st, pid, &password)
    } else if let Some(otp) = text("userOtp") {
        otp_step(st, pid, &otp)
    } else {
        unexpected(pid, p)
    }
}

/// Runs `f` on the process (it exists: the caller looked it up).
fn process<R>(st: &mut SimState, pid: &str, f: impl FnOnce(&mut LoginProcess) -> R) -> Option<R> {
    st.processes.get_mut(pid).map(f)
}

fn phone_step(st: &mut SimState, pid: &str, raw_phone: &str) -> Answer {
    let Some(p) = st.processes.get(pid) else {
        return process_not_found();
    };
    if p.stage != LoginStage::Started {
        return unexpected(pid, p);
    }
    let Ok(phone) = kaspi::phone::normalize(raw_phone) else {
        return Answer::error(
            StatusCode::OK,
            "InvalidPhoneNumber",
            "Неверный номер телефона",
            "",
        )
        .with_process(pid, p);
    };
    if let Some(answer) = refusal(st, pid, &phone) {
        return answer;
    }
    let setup = st.setup_of(&phone);
    process(st, pid, |p| p.phone = Some(phone.clone()));
    match setup.challenge {
        Challenge::Sms => send_sms(st, pid, &phone),
        Challenge::PasswordSms => challenge(
            st,
            pid,
            LoginStage::Password,
            "EnterLoginPassword",
            "KPEnterLoginPassword",
            "password",
        ),
        Challenge::App => challenge(
            st,
            pid,
            LoginStage::App { confirmed: false },
            "MobileCall",
            "KPMobileCall",
            "mobileCall",
        ),
    }
}

/// A scripted refusal or a block of the cashier's account, answered at the phone step (the
/// process closes).
fn refusal(st: &mut SimState, pid: &str, phone: &Phone) -> Option<Answer> {
    let now = st.clock.now_ms();
    let (code, label) = if let Some(code) = st.login_refusals.remove(phone.as_str()) {
        let label = login_error_label(&code).to_owned();
        (code, label)
    } else {
        let until = *st.blocked_until.get(phone.as_str())?;
        if until <= now {
            st.blocked_until.remove(phone.as_str());
            return None;
        }
        let minutes = (until - now + 59_999) / 60_000;
        (
            "AccountTemporaryBlocked".to_owned(),
            format!("Аккаунт временно заблокирован. Попробуйте через {minutes} мин."),
        )
    };
    tracing::debug!(%code, "kaspi-sim refused a login at the phone step");
    let p = st.processes.get_mut(pid)?;
    p.stage = LoginStage::Closed;
    Some(Answer::error(StatusCode::OK, &code, &label, "").with_process(pid, p))
}

/// What Kaspi's login shows with each error code.
fn login_error_label(code: &str) -> &'static str {
    match code {
        "AccountTemporaryBlocked" => "Аккаунт временно заблокирован",
        "AccountAlreadyTemporaryBlocked" => "Аккаунт уже временно заблокирован",
        "TemporaryBlocked" => "Вход временно недоступен",
        "OtpAttemptsExceeded" => "Превышено количество отправок SMS",
        "EnterOtpAttemptsExceeded" => "Превышено количество попыток ввода кода",
        "PasswordAttemptsExceeded" => "Превышено количество попыток ввода пароля",
        "PasswordIsEmpty" => "Введите пароль",
        "KaspiPayCheckSecurityFailed" => "Проверка безопасности не пройдена",
        "ContextNotFound" => "Процесс входа не найден",
        "BadIncomingRequest" => "Некорректный запрос",
        _ => "Вход отклонён",
    }
}

fn challenge(
    st: &mut SimState,
    pid: &str,
    stage: LoginStage,
    sn: &'static str,
    view: &str,
    kind: &str,
) -> Answer {
    let token = process(st, pid, |p| {
        p.stage = stage;
        p.step_name = sn;
        p.user_token.clone()
    })
    .unwrap_or_default();
    Answer::ok(
        json!({
            "meta": { "pId": pid, "sn": sn },
            "view": { "code": view },
            "data": { "type": kind },
            "isClosed": false,
        }),
        &token,
    )
}

fn send_sms(st: &mut SimState, pid: &str, phone: &Phone) -> Answer {
    let code = st.digits(st.cfg.sms_code_len.max(1));
    st.sms.insert(phone.as_str().to_owned(), code);
    let token = process(st, pid, |p| {
        p.stage = LoginStage::Otp;
        p.step_name = "ViewEnterOtp";
        p.user_token.clone()
    })
    .unwrap_or_default();
    let digits = phone.as_str();
    Answer::ok(
        json!({
            "meta": { "pId": pid, "sn": "ViewEnterOtp" },
            "view": { "code": "EnterOtp" },
            "data": {
                "type": "otp",
                "desc": format!("Мы отправили SMS с кодом на номер +7 {} *** ** {}", &digits[..3], &digits[8..]),
                "ext": { "operationType": "KPEntrance" },
            },
            "isClosed": false,
        }),
        &token,
    )
}

/// A wrong password or code: the process closes after `max_wrong_answers`.
fn wrong_answer(st: &mut SimState, pid: &str, code: &str, label: &str) -> Answer {
    let max = st.cfg.max_wrong_answers;
    let Some(p) = st.processes.get_mut(pid) else {
        return process_not_found();
    };
    p.wrong_answers += 1;
    let left = max.saturating_sub(p.wrong_answers);
    let desc = if left == 0 {
        p.stage = LoginStage::Closed;
        "Превышено число попыток, начните вход заново".to_owned()
    } else {
        format!("Осталось попыток: {left}")
    };
    Answer::error(StatusCode::OK, code, label, &desc).with_process(pid, p)
}

fn password_step(st: &mut SimState, pid: &str, password: &str) -> Answer {
    let Some(p) = st.processes.get(pid) else {
        return process_not_found();
    };
    let (LoginStage::Password, Some(phone)) = (p.stage, p.phone.clone()) else {
        return unexpected(pid, p);
    };
    if st.setup_of(&phone).password != password {
        return wrong_answer(st, pid, "InvalidPassword", "Неверный пароль");
    }
    send_sms(st, pid, &phone)
}

fn otp_step(st: &mut SimState, pid: &str, otp: &str) -> Answer {
    let Some(p) = st.processes.get(pid) else {
        return process_not_found();
    };
    let (LoginStage::Otp, Some(phone)) = (p.stage, p.phone.clone()) else {
        return unexpected(pid, p);
    };
    if st.sms.get(phone.as_str()).map(String::as_str) != Some(otp.trim()) {
        return wrong_answer(st, pid, "InvalidOtp", "Неверный код из SMS");
    }
    let token = process(st, pid, |p| {
        p.stage = LoginStage::Verified;
        p.step_name = "KPDeviceRegistration";
        p.user_token.clone()
    })
    .unwrap_or_default();
    Answer::ok(
        json!({
            "meta": { "pId": pid, "sn": "KPDeviceRegistration" },
            "view": { "code": "KPDeviceRegistration" },
            "data": { "type": "kpDeviceRegistration" },
            "isClosed": false,
        }),
        &token,
    )
}

/// `POST /_control/app-confirm/{phone}`: confirms that phone's logins waiting for the app.
pub(crate) fn confirm_in_app(st: &mut SimState, phone: &Phone) -> Result<(), ControlError> {
    let mut found = false;
    for p in st.processes.values_mut() {
        if p.phone.as_ref() == Some(phone) && matches!(p.stage, LoginStage::App { .. }) {
            p.stage = LoginStage::App { confirmed: true };
            found = true;
        }
    }
    if found {
        Ok(())
    } else {
        Err(ControlError::NotFound(format!(
            "no login of {phone} waits for app confirmation"
        )))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FinishBody {
    signed: Signed,
    guard: Guard,
    #[serde(rename = "processId")]
    process_id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Signed {
    data: String,
    sign: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Guard {
    x509: String,
}

async fn finish(State(sim): State<Simulator>, req: KaspiRequest) -> Answer {
    let Ok(body) = serde_json::from_slice::<FinishBody>(&req.body) else {
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Некорректный запрос",
            "",
        );
    };
    sim.with_state(|st| finish_process(st, &req, &body))
}

fn finish_process(st: &mut SimState, req: &KaspiRequest, body: &FinishBody) -> Answer {
    let invalid = |code: &str, desc: &str| {
        Answer::error(
            StatusCode::BAD_REQUEST,
            code,
            "Регистрация устройства отклонена",
            desc,
        )
    };
    let Some(p) = st.processes.get(&body.process_id) else {
        return process_not_found();
    };
    match p.stage {
        LoginStage::Verified | LoginStage::App { confirmed: true } => {}
        LoginStage::App { confirmed: false } => {
            return Answer::error(
                StatusCode::OK,
                "ConfirmationPending",
                "Подтвердите вход в приложении Kaspi Pay",
                "вход ещё не подтверждён",
            );
        }
        _ => {
            return Answer::error(
                StatusCode::OK,
                "ProcessNotVerified",
                "Вход не подтверждён",
                "сначала введите код из SMS",
            );
        }
    }
    let body_bytes = (!req.body.is_empty()).then_some(&req.body[..]);
    if let Err(e) = verify_with_or_without_body(&p.device_key, req, body_bytes, &["url"]) {
        tracing::debug!(reason = %e.message, "kaspi-sim refused a finish: X-Sign");
        return invalid("InvalidSign", "X-Sign неверен");
    }
    if req.header("x-pktag").is_some_and(|tag| tag != p.pk_tag) {
        return invalid("InvalidSign", "X-PkTag не совпадает с pkTag");
    }
    if req
        .header("x-su")
        .is_some_and(|su| su != sign::x_su(&req.url))
    {
        return invalid("InvalidSign", "X-SU не совпадает с URL");
    }
    if !sign::verify_bytes(
        &p.device_key,
        body.signed.data.as_bytes(),
        &body.signed.sign,
    ) {
        return invalid("InvalidSignedData", "signed.sign неверна");
    }
    let signed: Value = B64
        .decode(body.signed.data.trim())
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or(Value::Null);
    if signed.get("installId").and_then(Value::as_str) != Some(p.install_id.as_str()) {
        return invalid("InvalidSignedData", "installId не совпадает");
    }
    let Some(client_ecdh) = sign::public_from_x509_b64(&body.guard.x509) else {
        return invalid("InvalidGuard", "guard.x509 не ключ P-256");
    };
    let Some(phone) = p.phone.clone() else {
        return invalid("ProcessNotVerified", "нет телефона");
    };
    let device_key = p.device_key;
    let install_id = p.install_id.clone();
    let server = SecretKey::random(&mut st.rng);
    let token_sn = st.hex_token(16);
    let session = Session {
        token_sn: token_sn.clone(),
        vtoken_secret: sign::ecdh_secret(&server, &client_ecdh),
        device_key,
        client_ecdh,
        profile: st.profile_of(&phone),
        phone: phone.clone(),
        state: SessionState::Live,
        install_id: install_id.clone(),
    };
    // Kaspi binds a cashier to one device: a login from another one ends the others.
    let mut evicted = 0;
    for other in st.sessions.values_mut() {
        if other.phone == phone
            && other.install_id != install_id
            && matches!(other.state, SessionState::Live | SessionState::Expired)
        {
            other.state = SessionState::Evicted;
            evicted += 1;
        }
    }
    if evicted > 0 {
        tracing::info!(cashier = %phone, evicted, "a login on another device evicted sessions");
    }
    st.sessions.insert(token_sn.clone(), session);
    st.last_login = Some(phone.clone());
    st.touch();
    if let Some(p) = st.processes.get_mut(&body.process_id) {
        p.stage = LoginStage::Closed;
    }
    // The phone masked, as Kassa writes phones in logs (`700***0001`).
    let digits = phone.as_str();
    let shown = match digits.len() {
        n if n >= 8 => format!("{}***{}", &digits[..3], &digits[n - 4..]),
        _ => "***".to_owned(),
    };
    tracing::info!(cashier = %shown, "cashier logged in");
    Answer {
        http: StatusCode::OK,
        body: json!({
            "success": true,
            "data": {
                "tokenSN": token_sn,
                "x509": sign::public_x509_b64(&server.public_key()),
                "showSaleScreen": true,
            },
            "roles": ["Cashier"],
            "perms": ["RemotePayment", "QrPayment", "History", "Return"],
            "isClosed": true,
        }),
        user_token: None,
    }
}

/// The answer to a step of a login process this simulator does not know.
fn process_not_found() -> Answer {
    Answer::error(
        StatusCode::OK,
        "ProcessNotFound",
        "Процесс входа не найден",
        "",
    )
}
