//! The client: one HTTP client, the device, the configuration, and the signed request
//! machinery every call goes through (headers, signature, MAC, envelope, error mapping).
//!
//! The payment calls live in `calls.rs`, the login in `login.rs`; both use `Client::qrpay`,
//! `Client::mtoken` and the entrance helpers here.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{
    Error, TransportKind, DEAD_SESSION_CODES, OLD_VERSION_TO_UPDATE, STATUS_SESSION_EVICTED,
};
use crate::session::Session;
use crate::sign;
use crate::{ClientConfig, DeviceIdentity, Status};

/// A Kaspi Pay client for one device.
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) config: ClientConfig,
    pub(crate) device: DeviceIdentity,
    /// Unknown statuses already logged, so each is logged once.
    unknown_statuses: Mutex<HashSet<String>>,
}

/// Whether a call creates something at Kaspi: a lost answer then means "outcome unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Read,
    Create(&'static str),
}

/// Kaspi's answer envelope, kept as JSON until the caller types `Data`.
pub(crate) struct Envelope {
    pub data: Value,
}

impl Client {
    /// A client with its own HTTP client built from the configured timeouts.
    pub fn new(config: ClientConfig, device: DeviceIdentity) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Transport {
                kind: TransportKind::Other,
                detail: e.to_string(),
            })?;
        Ok(Self::with_http_client(config, device, http))
    }

    /// A client that sends through the given HTTP client (its timeouts apply).
    pub fn with_http_client(
        config: ClientConfig,
        device: DeviceIdentity,
        http: reqwest::Client,
    ) -> Self {
        Self {
            http,
            config,
            device,
            unknown_statuses: Mutex::new(HashSet::new()),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn device(&self) -> &DeviceIdentity {
        &self.device
    }

    /// Logs a status this client does not know, once per name. It stays non-final.
    pub(crate) fn note_status(&self, status: Option<&Status>) {
        if let Some(Status::Unknown(name)) = status {
            let mut seen = self
                .unknown_statuses
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen.insert(name.clone()) {
                tracing::warn!(status = %name, "Kaspi answered a status this client does not know; it is treated as still open");
            }
        }
    }

    /// `X-Time`: local time of Kazakhstan (UTC+5) with milliseconds and offset.
    pub(crate) fn x_time() -> String {
        let offset = time::UtcOffset::from_hms(5, 0, 0).expect("+05:00 is a valid offset");
        let now = OffsetDateTime::now_utc().to_offset(offset);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0500",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond()
        )
    }

    fn unix_ms() -> i64 {
        i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    }

    /// Signs and sends a qrpay request; `body` is JSON-serialized compactly and signed as sent.
    pub(crate) async fn qrpay(
        &self,
        session: &Session,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        effect: Effect,
    ) -> Result<Envelope, Error> {
        let url = format!("{}{}", self.config.endpoints.qrpay, path_and_query);
        let app = &self.config.app.get();
        let body_bytes = body.map(|b| serde_json::to_vec(b).expect("JSON values serialize"));
        let mac = sign::token_sn_mac(&session.token_sn, &session.vtoken_secret, Self::unix_ms());
        let mut h: Vec<(&'static str, String)> = vec![
            ("X-Kb-TokenSn", session.token_sn.clone()),
            ("X-Kb-TokenSnMac", mac),
            ("X-PI", session.profile_id().to_owned()),
            ("X-Install-ID", self.device.install_id().to_owned()),
            ("X-Device-ID", self.device.device_id().to_owned()),
            ("X-App-Ver", app.version.clone()),
            ("X-App-Bld", app.build.clone()),
            ("X-Platform-Type", app.platform.clone()),
            ("X-Platform-Ver", app.platform_version.clone()),
            ("X-Locale", app.locale.clone()),
            ("X-Time", Self::x_time()),
            (
                "X-Request-ID",
                uuid::Uuid::new_v4().to_string().to_uppercase(),
            ),
            ("X-Call", "notConnected".into()),
            ("X-SV", "2".into()),
            ("X-SH", sign::QRPAY_SIGNED.into()),
            ("User-Agent", app.native_user_agent()),
            ("Accept", "*/*".into()),
            ("Accept-Language", "ru".into()),
        ];
        let canonical = sign::canonical_string(
            &url,
            sign::QRPAY_SIGNED,
            |n| lookup(&h, n),
            body_bytes.as_deref(),
        );
        h.push((
            "X-Sign",
            sign::x_sign(self.device.signing_key(), &canonical)?,
        ));
        if body_bytes.is_some() {
            h.push(("Content-Type", "application/json".into()));
        }
        let answer = self.send(method, &url, &h, body_bytes, effect).await?;
        self.envelope(answer)
    }

    /// Signs and sends an mtoken request. As the app (and pykaspi) does, the signature covers
    /// the URL and headers but not the body.
    pub(crate) async fn mtoken(
        &self,
        session: &Session,
        path: &str,
        body: &Value,
    ) -> Result<Envelope, Error> {
        let url = format!("{}{}", self.config.endpoints.mtoken, path);
        let app = &self.config.app.get();
        let mac = sign::token_sn_mac(&session.token_sn, &session.vtoken_secret, Self::unix_ms());
        let signed_list = if session.org.profile_id.is_some() {
            sign::MTOKEN_SIGNED_WITH_PROFILE
        } else {
            sign::MTOKEN_SIGNED
        };
        let mut h: Vec<(&'static str, String)> = vec![
            ("Content-Type", "application/json".into()),
            ("Accept", "*/*".into()),
            ("Accept-Language", "ru".into()),
            ("User-Agent", app.native_user_agent()),
            ("X-Kb-TokenSn", session.token_sn.clone()),
            ("X-Kb-TokenSnMac", mac),
            ("X-Install-ID", self.device.install_id().to_owned()),
            ("X-App-Ver", app.version.clone()),
            ("X-App-Bld", app.build.clone()),
            ("X-Locale", app.locale.clone()),
            ("X-Call", "notConnected".into()),
            ("X-Time", Self::x_time()),
            ("X-S", "R:0|E:0|RH:0|N:0".into()),
            ("X-SV", "2".into()),
            ("X-Kb-Client-Ip", self.config.client_ip.clone()),
            ("X-PkTag", self.device.pk_tag()),
            ("X-SU", sign::x_su(&url)),
            (
                "X-Request-ID",
                uuid::Uuid::new_v4().to_string().to_uppercase(),
            ),
            ("X-SH", signed_list.into()),
        ];
        if let Some(profile) = &session.org.profile_id {
            h.push(("X-PI", profile.clone()));
        }
        let canonical = sign::canonical_string(&url, signed_list, |n| lookup(&h, n), None);
        h.push((
            "X-Sign",
            sign::x_sign(self.device.signing_key(), &canonical)?,
        ));
        let bytes = serde_json::to_vec(body).expect("JSON values serialize");
        let answer = self
            .send(Method::POST, &url, &h, Some(bytes), Effect::Read)
            .await?;
        self.envelope(answer)
    }

    /// Sends a request and reads the whole answer, mapping failures to [`Error`].
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&'static str, String)],
        body: Option<Vec<u8>>,
        effect: Effect,
    ) -> Result<Answer, Error> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::Decode(format!("header {name} is not a valid header value")))?;
            // `from_bytes` lower-cases the protocol's mixed-case names.
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Decode(format!("{name} is not a header name")))?;
            map.append(name, value);
        }
        let mut request = self.http.request(method, url).headers(map);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&e, effect))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(&e, effect))?;
        Ok(Answer {
            status,
            retry_after,
            set_cookies,
            bytes: bytes.to_vec(),
            effect,
        })
    }

    /// Reads the qrpay/mtoken envelope and maps HTTP statuses and `StatusCode` to errors.
    pub(crate) fn envelope(&self, answer: Answer) -> Result<Envelope, Error> {
        let json: Option<Value> = serde_json::from_slice(&answer.bytes).ok();
        let field = |name: &str| json.as_ref().and_then(|j| j.get(name)).cloned();
        let message = field("Message")
            .or_else(|| field("message"))
            .and_then(|m| m.as_str().map(str::to_owned))
            .unwrap_or_default();
        let code = field("Code").and_then(|c| match c {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let status = answer.status;
        let status_code = json
            .as_ref()
            .and_then(|j| j.get("StatusCode"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        // Both mean "no call works until a person acts", whatever the HTTP status.
        if status_code == STATUS_SESSION_EVICTED {
            return Err(Error::SessionEvicted { message });
        }
        if status_code != 0
            && (code.as_deref() == Some(OLD_VERSION_TO_UPDATE)
                || json.as_ref().and_then(alarm_code).as_deref() == Some(OLD_VERSION_TO_UPDATE))
        {
            return Err(Error::AppBuildOutdated {
                build: self.config.app.get().build,
                message,
            });
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Session {
                reason: if message.is_empty() {
                    format!("HTTP {}", status.as_u16())
                } else {
                    message
                },
                http_status: Some(status.as_u16()),
                code,
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Error::Throttled {
                retry_after: answer.retry_after,
            });
        }
        if status.is_server_error() {
            if let Effect::Create(call) = answer.effect {
                return Err(Error::OutcomeUnknown {
                    call,
                    cause: format!("HTTP {}", status.as_u16()),
                });
            }
            return Err(Error::Http {
                status: status.as_u16(),
                message,
            });
        }
        if !status.is_success() && status_code == 0 {
            return Err(Error::Http {
                status: status.as_u16(),
                message,
            });
        }
        let Some(Value::Object(mut map)) = json else {
            return match answer.effect {
                // A create whose answer came back unreadable may still have happened.
                Effect::Create(call) => Err(Error::OutcomeUnknown {
                    call,
                    cause: "unreadable answer".into(),
                }),
                Effect::Read => Err(Error::Decode("the answer is not a JSON object".into())),
            };
        };
        if status_code != 0 {
            if code
                .as_deref()
                .is_some_and(|c| DEAD_SESSION_CODES.contains(&c))
            {
                return Err(Error::Session {
                    reason: message,
                    http_status: None,
                    code,
                });
            }
            return Err(Error::Kaspi {
                status_code,
                code,
                message,
            });
        }
        Ok(Envelope {
            data: map.remove("Data").unwrap_or(Value::Null),
        })
    }
}

/// A whole HTTP answer.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub set_cookies: Vec<String>,
    pub bytes: Vec<u8>,
    pub effect: Effect,
}

impl Envelope {
    /// Types `Data`.
    pub(crate) fn data<T: serde::de::DeserializeOwned>(self, what: &str) -> Result<T, Error> {
        serde_json::from_value(self.data).map_err(|e| Error::Decode(format!("{what}: {e}")))
    }
}

/// The code of an alarm Kaspi shows instead of an answer (`view.onOpenAlarm.error.code`, at
/// the top of the answer or inside `Data`).
pub(crate) fn alarm_code(body: &Value) -> Option<String> {
    [
        "/view/onOpenAlarm/error/code",
        "/Data/view/onOpenAlarm/error/code",
        "/onOpenAlarm/error/code",
    ]
    .iter()
    .find_map(|p| body.pointer(p).and_then(Value::as_str))
    .map(str::to_owned)
}

fn lookup<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Maps a reqwest failure. For a create call, anything after the request may have left is
/// "outcome unknown"; only a refused connection proves nothing was sent.
fn transport_error(e: &reqwest::Error, effect: Effect) -> Error {
    let kind = classify(e);
    // Never include the URL or headers: the error's Display is enough without them.
    let detail = e.without_url_string();
    match effect {
        Effect::Create(call) if kind != TransportKind::Refused && !e.is_connect() => {
            Error::OutcomeUnknown {
                call,
                cause: kind.to_string(),
            }
        }
        _ => Error::Transport { kind, detail },
    }
}

fn classify(e: &reqwest::Error) -> TransportKind {
    if e.is_timeout() {
        return TransportKind::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return TransportKind::Refused,
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return TransportKind::Reset
                }
                TimedOut => return TransportKind::Timeout,
                _ => {}
            }
        }
        let text = err.to_string();
        if text.contains("connection closed")
            || text.contains("IncompleteMessage")
            || text.contains("end of file")
        {
            return TransportKind::Reset;
        }
        source = err.source();
    }
    if e.is_connect() {
        TransportKind::Refused
    } else if e.is_body() || e.is_decode() || e.is_request() {
        TransportKind::Reset
    } else {
        TransportKind::Other
    }
}

trait WithoutUrl {
    fn without_url_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_string(&self) -> String {
        let mut text = String::new();
        let mut source: Option<&(dyn std::error::Error + 'static)> =
            std::error::Error::source(self);
        while let Some(err) = source {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&err.to_string());
            source = err.source();
        }
        if text.is_empty() {
            text = "request failed".into();
        }
        text
    }
}
