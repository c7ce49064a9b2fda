//! Login of the cashier (entrance-pay), refresh (sign-in-lite) and organization context.
//!
//! The caller answers Kaspi's questions (password, SMS code, confirmation in the app) through
//! a [`LoginPrompt`]: a terminal prompt in the CLI, the simulator's control API in tests.
//!
//! Step names vary between app builds (`EnterPhoneNumber` / `KPUniversalEnterPhoneNumber`,
//! `KPEnterLoginPassword` / `ViewEnterLoginPassword`, `EnterOtp` / `ViewEnterOtp`,
//! `KPDeviceRegistration` / `MobileDeviceRegistration`): every known name is accepted. Errors
//! Kaspi names with a known code become [`LoginError::Refused`] (a clear message, no retry);
//! `OldVersionToUpdate` becomes [`Error::AppBuildOutdated`]. The `finish` answer is read for
//! the token and key only: `success`, `roles` and `perms` are not needed.

use std::future::Future;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::SecretKey;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{Client, Effect};
use crate::device::{secret_key_from_pkcs8_b64, secret_key_to_pkcs8_b64};
use crate::error::{Error, LoginError, LoginRefusal};
use crate::session::{OrgContext, Session};
use crate::{sign, Phone};

/// How many times a wrong password or SMS code may be typed again.
const ATTEMPTS: usize = 3;

/// Answers to Kaspi's login questions. Return an error to abandon the login.
pub trait LoginPrompt: Send {
    /// The cashier's Kaspi Pay password.
    fn password(&mut self) -> impl Future<Output = Result<String, String>> + Send;
    /// The code Kaspi sent by SMS; `retry` is true after a wrong code.
    fn sms_code(&mut self, retry: bool) -> impl Future<Output = Result<String, String>> + Send;
    /// Kaspi asked to confirm the login in the app: resolve once it is confirmed.
    fn confirm_in_app(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// What the phone or password step asked for next.
enum Challenge {
    Otp,
    Password,
    AppConfirmation,
    /// Nothing more to prove: the device may be registered (`finish`).
    Registered,
}

/// Names of the phone step.
const PHONE_STEPS: &[&str] = &["EnterPhoneNumber", "KPUniversalEnterPhoneNumber"];
/// Names of the device registration step, which `finish` completes.
const REGISTRATION_STEPS: &[&str] = &["KPDeviceRegistration", "MobileDeviceRegistration"];

/// State of one entrance process.
struct Entrance {
    process_id: String,
    user_token: Option<String>,
    /// The `meta` of the last answer, sent back with the next step.
    meta: Value,
}

impl Client {
    /// Logs the cashier with this phone in, from start to organization context.
    pub async fn login(
        &self,
        phone: &Phone,
        prompt: &mut impl LoginPrompt,
    ) -> Result<Session, Error> {
        let mut entrance = self.entrance_start().await?;
        // The step name the start answer gave, where it is one of the phone step's names.
        let phone_sn = entrance
            .meta
            .get("sn")
            .and_then(Value::as_str)
            .filter(|sn| PHONE_STEPS.contains(sn))
            .unwrap_or(PHONE_STEPS[0])
            .to_owned();
        let phone_step = json!({"meta": {"pId": entrance.process_id, "sn": phone_sn}, "data": {"phoneNumber": phone.as_str()}, "actType": "Success"});
        let answer = self.entrance_step(&mut entrance, phone_step).await?;
        let mut challenge = challenge_of(&answer)?;

        if matches!(challenge, Challenge::Password) {
            let mut attempt = 0;
            loop {
                let password = prompt.password().await.map_err(LoginError::Abandoned)?;
                let mut meta = entrance.meta.clone();
                meta["pId"] = json!(entrance.process_id);
                let body =
                    json!({"meta": meta, "data": {"password": password}, "actType": "Success"});
                match self.entrance_step(&mut entrance, body).await {
                    Ok(answer) => {
                        challenge = challenge_of(&answer)?;
                        break;
                    }
                    Err(Error::Login(LoginError::Rejected(why))) if attempt + 1 < ATTEMPTS => {
                        tracing::warn!(reason = %why, "Kaspi refused the password; asking again");
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }

        match challenge {
            Challenge::Otp => {
                let mut retry = false;
                let mut attempt = 0;
                loop {
                    let code = prompt
                        .sms_code(retry)
                        .await
                        .map_err(LoginError::Abandoned)?;
                    let code = code.trim().to_owned();
                    let mut meta = entrance.meta.clone();
                    meta["pId"] = json!(entrance.process_id);
                    if meta.get("sn").and_then(Value::as_str).is_none() {
                        meta["sn"] = json!("ViewEnterOtp");
                    }
                    let body = json!({"meta": meta, "data": {"userOtp": code, "inputType": "Manual"}, "actType": "Success"});
                    match self.entrance_step(&mut entrance, body).await {
                        Ok(answer) => {
                            let registered = is_registration(&answer);
                            let app = view_code(&answer) == Some("KPMobileCall");
                            if app {
                                prompt
                                    .confirm_in_app()
                                    .await
                                    .map_err(LoginError::Abandoned)?;
                            } else if !registered {
                                return Err(LoginError::Unsupported(format!(
                                    "after the SMS code Kaspi showed {}",
                                    view_code(&answer).unwrap_or("nothing")
                                ))
                                .into());
                            }
                            break;
                        }
                        Err(Error::Login(LoginError::Rejected(why))) if attempt + 1 < ATTEMPTS => {
                            tracing::warn!(reason = %why, "Kaspi refused the SMS code; asking again");
                            attempt += 1;
                            retry = true;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Challenge::AppConfirmation => {
                prompt
                    .confirm_in_app()
                    .await
                    .map_err(LoginError::Abandoned)?;
            }
            Challenge::Registered => {}
            Challenge::Password => {
                return Err(LoginError::Unsupported("a second password step".into()).into());
            }
        }

        let mut session = self.finish(&entrance).await?;
        self.load_org_context(&mut session, None).await?;
        Ok(session)
    }

    /// Refreshes a session through sign-in-lite. [`Error::ReauthRequired`] when Kaspi refuses:
    /// the cashier must log in again.
    pub async fn refresh(&self, session: &Session) -> Result<Session, Error> {
        let body = json!({
            "OrganizationId": org_id_value(session),
            "DeviceInformation": self.device_information(),
        });
        // sign-in-lite is signed without the profile id, as the app does.
        let mut bare = session.clone();
        bare.org.profile_id = None;
        let envelope = match self.mtoken(&bare, "/v03/auth/sign-in-lite", &body).await {
            Ok(e) => e,
            Err(Error::Kaspi { message, .. }) => return Err(Error::ReauthRequired(message)),
            Err(Error::Session { reason, .. }) => return Err(Error::ReauthRequired(reason)),
            Err(e) => return Err(e),
        };
        let data = envelope.data;
        if !data.is_object() {
            return Err(Error::ReauthRequired(
                "sign-in-lite answered without data".into(),
            ));
        }
        let token_sn =
            str_field(&data, &["TokenSn", "tokenSN"]).unwrap_or_else(|| session.token_sn.clone());
        let mut secret = session.vtoken_secret.clone();
        if let Some(server_x509) = str_field(&data, &["X509", "x509"]) {
            let ours = secret_key_from_pkcs8_b64(&session.ecdh_private_key)
                .map_err(|_| Error::ReauthRequired("the stored ECDH key is unreadable".into()))?;
            let theirs = sign::public_from_x509_b64(&server_x509)
                .ok_or_else(|| Error::Decode("sign-in-lite X509 is not a P-256 key".into()))?;
            secret = sign::ecdh_secret(&ours, &theirs).to_vec();
        }
        let mut refreshed = Session::from_parts(
            token_sn,
            secret,
            session.ecdh_private_key.clone(),
            session.org.clone(),
        );
        refreshed.org.profile_id = None;
        self.load_org_context(&mut refreshed, session.org.organization_id.clone())
            .await?;
        Ok(refreshed)
    }

    /// Loads the organization context into the session (profile id, organization, …).
    pub async fn load_org_context(
        &self,
        session: &mut Session,
        organization_id: Option<String>,
    ) -> Result<(), Error> {
        let org_id = organization_id
            .as_deref()
            .and_then(|id| id.parse::<i64>().ok())
            .map_or(json!(0), |id| json!(id));
        let body =
            json!({"DeviceInformation": self.device_information(), "OrganizationId": org_id});
        let data = match self
            .mtoken(session, "/v08/organizations/org-context-otp", &body)
            .await
        {
            Ok(e) => e.data,
            Err(Error::Kaspi { message, .. }) => return Err(Error::ReauthRequired(message)),
            Err(e) => return Err(e),
        };
        let current = data.get("Current").cloned().unwrap_or(Value::Null);
        let text = |v: &Value, k: &str| match v.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let org = OrgContext {
            profile_id: text(&current, "ProfileId"),
            organization_id: text(&current, "OrganizationId"),
            organization_name: text(&current, "OrganizationName"),
            organization_idn: text(&current, "OrganizationIdn"),
            organization_kbe: text(&current, "OrganizationKbe"),
            emp_id: text(&current, "EmpId"),
            is_cashier: current.get("IsCashier").and_then(Value::as_bool),
            user_id: text(&data, "UserId"),
            phone: text(&data, "PhoneNumber"),
        };
        if org.profile_id.is_none() || org.organization_id.is_none() {
            return Err(Error::Decode(
                "organization context without profile or organization".into(),
            ));
        }
        session.org = org;
        Ok(())
    }

    /// `DeviceInformation` sent to mtoken.
    fn device_information(&self) -> Value {
        let app = &self.config.app.get();
        json!({
            "SdkVersion": "AOTP service",
            "DeviceId": self.device.device_id(),
            "ApplicationId": "kz.kaspi.business",
            "ScreenWidth": app.screen_width,
            "Model": app.model,
            "ScreenHeight": app.screen_height,
            "DeviceName": app.device_name,
            "VersionName": app.version,
            "BuildRelease": format!("{} {}", app.platform, app.platform_version),
            "Brand": app.brand,
            "Board": app.platform_version,
            "Platform": app.platform,
            "Product": "Kaspi Pay",
            "frontCameraAvailable": true,
            "VersionCode": app.build,
            "InstallId": self.device.install_id(),
        })
    }

    fn entrance_cookie(&self, user_token: Option<&str>) -> String {
        let app = &self.config.app.get();
        let mut cookie = format!(
            "deviceId={}; installId={}; is_mobile_app=true; locale={}; ma_bld={}; ma_platform_type={}; ma_platform_ver={}; ma_ver={}; pk={}; pkTag={}; xs=R:0|E:0|RH:0|N:0",
            self.device.device_id(),
            self.device.install_id(),
            app.locale,
            app.build,
            app.platform,
            app.platform_version,
            app.version,
            self.device.pk(),
            self.device.pk_tag(),
        );
        if let Some(token) = user_token {
            cookie.push_str("; user_token=");
            cookie.push_str(token);
        }
        cookie
    }

    fn entrance_headers(&self, user_token: Option<&str>) -> Vec<(&'static str, String)> {
        vec![
            ("Accept", "application/json, text/plain, */*".into()),
            ("Content-Type", "application/json".into()),
            ("Accept-Language", "ru".into()),
            ("Origin", self.config.endpoints.entrance.clone()),
            ("User-Agent", self.config.app.get().browser_user_agent()),
            ("Cookie", self.entrance_cookie(user_token)),
        ]
    }

    async fn entrance_start(&self) -> Result<Entrance, Error> {
        let app = &self.config.app.get();
        let body = json!({
            "data": {},
            "Data": {
                "auth": "2",
                "appBuild": app.build,
                "appVersion": app.version,
                "platformVersion": app.platform_version,
                "platformType": "IOS",
                "deviceBrand": app.brand,
                "deviceModel": app.model,
                "deviceId": self.device.device_id(),
                "installId": self.device.install_id(),
                "frontCameraAvailable": "true",
                "sf": "registration",
                "pc": "KPEntrance",
                "noPass": "0",
            },
            "actType": "Success",
        });
        let mut entrance = Entrance {
            process_id: String::new(),
            user_token: None,
            meta: Value::Null,
        };
        let answer = self.entrance_step(&mut entrance, body).await?;
        entrance.process_id = answer
            .pointer("/meta/pId")
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_i64().map(|n| n.to_string()))
            })
            .ok_or(LoginError::Missing("meta.pId"))?;
        Ok(entrance)
    }

    /// Sends one entrance step, keeps its cookie and meta, and maps its errors.
    async fn entrance_step(&self, entrance: &mut Entrance, body: Value) -> Result<Value, Error> {
        let url = format!("{}/api/v1/entrance/step", self.config.endpoints.entrance);
        let headers = self.entrance_headers(entrance.user_token.as_deref());
        let bytes = serde_json::to_vec(&body).expect("JSON values serialize");
        let answer = self
            .send(Method::POST, &url, &headers, Some(bytes), Effect::Read)
            .await?;
        if let Some(token) = answer
            .set_cookies
            .iter()
            .find_map(|c| cookie_value(c, "user_token"))
        {
            entrance.user_token = Some(token);
        }
        let json: Value = serde_json::from_slice(&answer.bytes).map_err(|_| {
            Error::Decode(format!(
                "entrance step answered HTTP {} without JSON",
                answer.status.as_u16()
            ))
        })?;
        check_entrance_error(&json, false, &self.config.app.get().build)?;
        if !answer.status.is_success() {
            return Err(Error::Http {
                status: answer.status.as_u16(),
                message: "entrance step".into(),
            });
        }
        if let Some(meta) = json.get("meta") {
            entrance.meta = meta.clone();
        }
        Ok(json)
    }

    /// The finish step: a new ECDH key, the signed registration, and the vtoken secret.
    async fn finish(&self, entrance: &Entrance) -> Result<Session, Error> {
        let url = format!(
            "{}/api/v1/kpentrance/finish",
            self.config.endpoints.entrance
        );
        let ecdh = SecretKey::random(&mut rand::thread_rng());
        let signed = json!({
            "installId": self.device.install_id(),
            "time": Self::x_time(),
            "auth": [{"value": "", "type": "pincode"}],
            "userIdHash": "",
        });
        let signed_b64 = B64.encode(serde_json::to_vec(&signed).expect("JSON values serialize"));
        let key = self.device.signing_key();
        let body = json!({
            "signed": {"sign": sign::sign_bytes(key, signed_b64.as_bytes())?, "data": signed_b64},
            "guard": {"pinHash": self.device.pin_hash(), "x509": sign::public_x509_b64(&ecdh.public_key())},
            "processId": entrance.process_id,
        });
        let app = &self.config.app.get();
        let mut h: Vec<(&'static str, String)> = vec![
            ("Content-Type", "application/json".into()),
            ("Accept", "*/*".into()),
            ("Accept-Language", "ru".into()),
            ("User-Agent", app.native_user_agent()),
            ("X-Time", Self::x_time()),
            ("X-Call", "notConnected".into()),
            ("X-Platform-Type", app.platform.clone()),
            ("X-PkTag", self.device.pk_tag()),
            ("X-SU", sign::x_su(&url)),
            ("X-Net-Type", "WIFI/ETHERNET".into()),
            ("X-Emulator", "0".into()),
            ("X-Locale", app.locale.clone()),
            ("X-SV", "2".into()),
            (
                "X-Request-ID",
                uuid::Uuid::new_v4().to_string().to_uppercase(),
            ),
            ("X-Time-Zone", "GMT+05:00".into()),
            ("X-SH", sign::FINISH_SIGNED.into()),
        ];
        let canonical = sign::canonical_string(
            &url,
            sign::FINISH_SIGNED,
            |n| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.as_str())
            },
            None,
        );
        h.push(("X-Sign", sign::x_sign(key, &canonical)?));
        let bytes = serde_json::to_vec(&body).expect("JSON values serialize");
        let answer = self
            .send(Method::POST, &url, &h, Some(bytes), Effect::Read)
            .await?;
        let json: Value = serde_json::from_slice(&answer.bytes).map_err(|_| {
            Error::Decode(format!(
                "finish answered HTTP {} without JSON",
                answer.status.as_u16()
            ))
        })?;
        // A finished process is closed: that is success here, as the app reads it.
        check_entrance_error(&json, true, &self.config.app.get().build)?;
        let data = json
            .get("data")
            .or_else(|| json.get("Data"))
            .cloned()
            .unwrap_or(Value::Null);
        let token_sn =
            str_field(&data, &["tokenSN", "TokenSn"]).ok_or(LoginError::Missing("tokenSN"))?;
        let server_x509 = str_field(&data, &["x509", "X509"]).ok_or(LoginError::Missing("x509"))?;
        let theirs = sign::public_from_x509_b64(&server_x509)
            .ok_or_else(|| Error::Decode("finish x509 is not a P-256 key".into()))?;
        let secret = sign::ecdh_secret(&ecdh, &theirs);
        Ok(Session::from_parts(
            token_sn,
            secret.to_vec(),
            secret_key_to_pkcs8_b64(&ecdh),
            OrgContext::default(),
        ))
    }
}

fn org_id_value(session: &Session) -> Value {
    session
        .org
        .organization_id
        .as_deref()
        .and_then(|id| id.parse::<i64>().ok())
        .map_or(json!(0), |id| json!(id))
}

fn view_code(answer: &Value) -> Option<&str> {
    answer.pointer("/view/code").and_then(Value::as_str)
}

/// Whether an answer says the device may now be registered.
fn is_registration(answer: &Value) -> bool {
    answer.pointer("/data/type").and_then(Value::as_str) == Some("kpDeviceRegistration")
        || view_code(answer).is_some_and(|c| REGISTRATION_STEPS.contains(&c))
        || answer
            .pointer("/meta/sn")
            .and_then(Value::as_str)
            .is_some_and(|sn| REGISTRATION_STEPS.contains(&sn))
}

fn challenge_of(answer: &Value) -> Result<Challenge, Error> {
    match view_code(answer) {
        Some("EnterOtp" | "ViewEnterOtp") => Ok(Challenge::Otp),
        Some("KPEnterLoginPassword" | "ViewEnterLoginPassword" | "EnterLoginPassword") => {
            Ok(Challenge::Password)
        }
        Some("KPMobileCall") => Ok(Challenge::AppConfirmation),
        _ if is_registration(answer) => Ok(Challenge::Registered),
        other => Err(LoginError::Unsupported(other.unwrap_or("no view").to_owned()).into()),
    }
}

/// Errors come in `error`, `data.error` or `view.onOpenAlarm.error`; `isClosed` ends the
/// process, which is an error on every step but the finish. `build` is the app build
/// presented, named when Kaspi says it is too old.
fn check_entrance_error(body: &Value, finished_ok: bool, build: &str) -> Result<(), Error> {
    let error = ["/error", "/data/error", "/view/onOpenAlarm/error"]
        .iter()
        .find_map(|p| {
            body.pointer(p)
                .filter(|e| e.is_object() && e.as_object().is_some_and(|m| !m.is_empty()))
        });
    let closed = body.get("isClosed").and_then(Value::as_bool) == Some(true);
    if let Some(error) = error {
        let label = ["label", "desc"]
            .iter()
            .find_map(|k| error.get(*k).and_then(Value::as_str))
            .unwrap_or("Kaspi rejected the login");
        let code = error.get("code").and_then(|c| {
            c.as_str()
                .map(str::to_owned)
                .or_else(|| c.as_i64().map(|n| n.to_string()))
        });
        let said = [error.get("label"), error.get("desc")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(". ");
        if code.as_deref() == Some(crate::error::OLD_VERSION_TO_UPDATE) {
            return Err(Error::AppBuildOutdated {
                build: build.to_owned(),
                message: said,
            });
        }
        if let Some(refusal) = code.as_deref().and_then(LoginRefusal::from_code) {
            return Err(LoginError::Refused { refusal, said }.into());
        }
        let message = match code {
            Some(code) => format!("{code}: {label}"),
            None => label.to_owned(),
        };
        return Err(if closed {
            LoginError::Closed(message)
        } else {
            LoginError::Rejected(message)
        }
        .into());
    }
    if closed && !finished_ok {
        return Err(LoginError::Closed("the process was closed".into()).into());
    }
    Ok(())
}

fn str_field(data: &Value, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| data.get(*n).and_then(Value::as_str))
        .map(str::to_owned)
}

/// The value of one cookie in a `Set-Cookie` header.
fn cookie_value(set_cookie: &str, name: &str) -> Option<String> {
    let first = set_cookie.split(';').next()?;
    let (k, v) = first.split_once('=')?;
    (k.trim() == name).then(|| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_step_name_is_accepted() {
        let view = |code: &str| json!({"view": {"code": code}});
        for code in ["EnterOtp", "ViewEnterOtp"] {
            assert!(
                matches!(challenge_of(&view(code)), Ok(Challenge::Otp)),
                "{code}"
            );
        }
        for code in ["KPEnterLoginPassword", "ViewEnterLoginPassword"] {
            assert!(
                matches!(challenge_of(&view(code)), Ok(Challenge::Password)),
                "{code}"
            );
        }
        for code in ["KPDeviceRegistration", "MobileDeviceRegistration"] {
            assert!(
                matches!(challenge_of(&view(code)), Ok(Challenge::Registered)),
                "{code}"
            );
        }
        let by_step = json!({"meta": {"sn": "MobileDeviceRegistration"}, "view": {}});
        assert!(is_registration(&by_step));
        assert!(is_registration(
            &json!({"data": {"type": "kpDeviceRegistration"}})
        ));
        assert!(matches!(
            challenge_of(&view("FaceCheck")),
            Err(Error::Login(LoginError::Unsupported(_)))
        ));
    }

    #[test]
    fn named_login_errors_and_the_outdated_build_alarm_are_typed() {
        let alarm = json!({"view": {"onOpenAlarm": {"error": {"code": "OldVersionToUpdate", "label": "Обновите приложение"}}}});
        match check_entrance_error(&alarm, false, "1107") {
            Err(Error::AppBuildOutdated { build, message }) => {
                assert_eq!(build, "1107");
                assert_eq!(message, "Обновите приложение");
            }
            other => panic!("{other:?}"),
        }
        let blocked = json!({"error": {"code": "PasswordAttemptsExceeded", "label": "Превышено", "desc": "через 15 мин"}, "isClosed": true});
        match check_entrance_error(&blocked, false, "1115") {
            Err(Error::Login(LoginError::Refused { refusal, said })) => {
                assert_eq!(refusal, LoginRefusal::PasswordAttemptsExceeded);
                assert_eq!(said, "Превышено. через 15 мин");
            }
            other => panic!("{other:?}"),
        }
        let unknown = json!({"error": {"code": "InvalidOtp", "label": "Неверный код"}});
        assert!(matches!(
            check_entrance_error(&unknown, false, "1115"),
            Err(Error::Login(LoginError::Rejected(_)))
        ));
        // `success`, `roles`, `perms` are not needed for a finish to count.
        let finish = json!({"data": {"tokenSN": "T"}, "isClosed": true});
        assert!(check_entrance_error(&finish, true, "1115").is_ok());
    }
}
