//! Authentication of qrpay and mtoken requests, as Kaspi would do it.
//!
//! 1. the session is looked up by `X-Kb-TokenSn` (unknown: 401 `SessionNotFound`);
//! 2. `X-SH` must name `url`, `X-Kb-TokenSn` and `X-Kb-TokenSnMac`, and `X-Sign` must verify
//!    with the device key registered at login over the canonical string of those headers and
//!    the URL as the client sent it (`{proto}://{Host}{original URI}`), plus the body for
//!    qrpay; mtoken requests may sign the body or not (both kinds of clients exist) — else
//!    400 `InvalidSign`;
//! 3. `X-Kb-TokenSnMac` must match the session's vtoken secret at the real time step, one
//!    step of slack either side — else 401 `InvalidTokenMac`.
//!
//! The caller then decides what the session's state (live, expired, revoked) allows.

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::{HeaderMap, Uri};
use kaspi::sign;

use crate::clock::real_unix_ms;
use crate::envelope::{codes, KaspiError, STATUS_INVALID_PROFILE};
use crate::state::{Session, SessionState, State};

/// Largest request body read (Kaspi requests are small JSON documents).
const BODY_LIMIT: usize = 256 * 1024;

/// A request to one of the Kaspi hosts, with what its signature needs.
#[derive(Debug, Clone)]
pub(crate) struct KaspiRequest {
    /// The URL as the client sent it: `http://{Host}{path and query, with any prefix}`.
    pub url: String,
    /// The original URI (with any prefix the simulator is nested under).
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl KaspiRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter of the request (no percent-decoding needed for Kaspi's ids).
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.uri.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// The body as JSON, leniently (unknown fields are fine).
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, KaspiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| KaspiError::invalid_request(format!("Некорректный запрос: {e}")))
    }

    /// The scheme, host and prefix the client reached us at (for absolute links).
    pub(crate) fn base_of(&self, host_prefix: &str) -> String {
        match self.url.find(host_prefix) {
            Some(i) => self.url[..i].to_owned(),
            None => self.url.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for KaspiRequest {
    type Rejection = KaspiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let original = req
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| req.uri().clone(), |u| u.0.clone());
        let headers = req.headers().clone();
        let url = full_url(&original, &headers);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| KaspiError::invalid_request(format!("Тело запроса не прочитано: {e}")))?;
        if body.len() > BODY_LIMIT {
            return Err(KaspiError::invalid_request("Тело запроса слишком велико"));
        }
        Ok(Self {
            url,
            uri: original,
            headers,
            body,
        })
    }
}

/// `{proto}://{Host}{path and query}` as the client addressed the request.
pub(crate) fn full_url(original: &Uri, headers: &HeaderMap) -> String {
    if original.scheme().is_some() && original.authority().is_some() {
        return original.to_string();
    }
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map_or("http", str::trim);
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| original.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let path = original
        .path_and_query()
        .map_or_else(|| original.path().to_owned(), |pq| pq.as_str().to_owned());
    format!("{proto}://{host}{path}")
}

/// Which host a request went to: qrpay signs the body, mtoken does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Host {
    Mtoken,
    Qrpay,
}

/// Checks the headers named in `X-SH` are signed by `key` over `url` (and `body`).
pub(crate) fn verify_signature(
    key: &sign::VerifyKey,
    req: &KaspiRequest,
    body: Option<&[u8]>,
    required: &[&str],
) -> Result<(), KaspiError> {
    let xsh = req
        .header("x-sh")
        .ok_or_else(|| KaspiError::invalid_sign("Нет заголовка X-SH"))?;
    let listed: Vec<&str> = xsh.split(',').collect();
    for name in required {
        if !listed.iter().any(|l| l.eq_ignore_ascii_case(name)) {
            return Err(KaspiError::invalid_sign(format!("X-SH не содержит {name}")));
        }
    }
    let x_sign = req
        .header("x-sign")
        .ok_or_else(|| KaspiError::invalid_sign("Нет заголовка X-Sign"))?;
    let canonical = sign::canonical_string(&req.url, xsh, |name| req.header(name), body);
    if !sign::verify_x_sign(key, &canonical, x_sign) {
        return Err(KaspiError::invalid_sign(BAD_SIGN));
    }
    Ok(())
}

/// Checks `X-Sign` over the URL and headers alone, or over them and the body: pykaspi signs
/// mtoken and `finish` requests without the body, some newer clients with it.
pub(crate) fn verify_with_or_without_body(
    key: &sign::VerifyKey,
    req: &KaspiRequest,
    body: Option<&[u8]>,
    required: &[&str],
) -> Result<(), KaspiError> {
    match verify_signature(key, req, None, required) {
        Err(e) if body.is_some() && e.message == BAD_SIGN => {
            verify_signature(key, req, body, required).map_err(|_| {
                KaspiError::invalid_sign(
                    "Подпись запроса неверна (проверена по URL и заголовкам X-SH, с телом и без)",
                )
            })
        }
        other => other,
    }
}

/// The message of an `X-Sign` that does not verify.
const BAD_SIGN: &str = "Подпись запроса неверна";

/// Refuses a request whose app build (`X-App-Bld`) is below the minimum, as Kaspi does.
pub(crate) fn check_app_build(state: &State, req: &KaspiRequest) -> Result<(), KaspiError> {
    match state.min_app_build {
        Some(min) if build_number(req.header("x-app-bld")) < min => Err(KaspiError::old_version()),
        _ => Ok(()),
    }
}

/// An app build as a number; anything unreadable counts as 0 (below every minimum).
pub(crate) fn build_number(build: Option<&str>) -> u64 {
    build.and_then(|b| b.trim().parse().ok()).unwrap_or(0)
}

/// Authenticates a qrpay or mtoken request; returns the session's `token_sn`.
pub(crate) fn authenticate(
    state: &State,
    req: &KaspiRequest,
    host: Host,
) -> Result<String, KaspiError> {
    let token = req
        .header("x-kb-tokensn")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| KaspiError::session(codes::SESSION_NOT_FOUND, "Сессия не найдена"))?;
    let session = state
        .sessions
        .get(token)
        .ok_or_else(|| KaspiError::session(codes::SESSION_NOT_FOUND, "Сессия не найдена"))?;
    let body = (!req.body.is_empty()).then_some(&req.body[..]);
    let required = &["url", "X-Kb-TokenSn", "X-Kb-TokenSnMac"];
    match host {
        Host::Qrpay => verify_signature(&session.device_key, req, body, required)?,
        Host::Mtoken => verify_with_or_without_body(&session.device_key, req, body, required)?,
    }
    let mac = req.header("x-kb-tokensnmac").unwrap_or("");
    if !mac_matches(session, mac, real_unix_ms()) {
        return Err(KaspiError::session(
            codes::INVALID_TOKEN_MAC,
            "Код X-Kb-TokenSnMac неверен",
        ));
    }
    Ok(session.token_sn.clone())
}

/// Refuses an expired or revoked session (HTTP 401).
pub(crate) fn require_live(session: &Session) -> Result<(), KaspiError> {
    match session.state {
        SessionState::Live => Ok(()),
        SessionState::Expired => Err(KaspiError::session(
            codes::SESSION_EXPIRED,
            "Сессия истекла, обновите её",
        )),
        SessionState::Revoked => Err(KaspiError::session(
            codes::SESSION_REVOKED,
            "Сессия отозвана, войдите заново",
        )),
        SessionState::Evicted => Err(KaspiError::evicted()),
    }
}

/// Checks `X-PI`, when `required` or present, is the session's profile id.
pub(crate) fn check_profile(
    session: &Session,
    req: &KaspiRequest,
    required: bool,
) -> Result<(), KaspiError> {
    let sent = req.header("x-pi").filter(|v| !v.is_empty());
    if sent.is_none() && !required {
        return Ok(());
    }
    if sent != Some(session.profile.profile_id.to_string().as_str()) {
        return Err(KaspiError::new(
            http::StatusCode::FORBIDDEN,
            STATUS_INVALID_PROFILE,
            codes::INVALID_PROFILE,
            "X-PI не совпадает с профилем сессии",
        ));
    }
    Ok(())
}

/// The MAC at the real time step, or one step before or after.
fn mac_matches(session: &Session, mac: &str, now_ms: i64) -> bool {
    let step = sign::time_step(now_ms);
    [step.saturating_sub(1), step, step.saturating_add(1)]
        .into_iter()
        .any(|s| sign::token_sn_mac_at_step(&session.token_sn, &session.vtoken_secret, s) == mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url_uses_host_original_uri_and_forwarded_proto() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "127.0.0.1:9000".parse().expect("value"));
        let uri: Uri = "/sandbox/kaspi/qrpay/v02/remote/details?operationId=1"
            .parse()
            .expect("uri");
        assert_eq!(
            full_url(&uri, &headers),
            "http://127.0.0.1:9000/sandbox/kaspi/qrpay/v02/remote/details?operationId=1"
        );
        headers.insert("x-forwarded-proto", "https".parse().expect("value"));
        assert!(full_url(&uri, &headers).starts_with("https://127.0.0.1:9000/"));
    }
}
