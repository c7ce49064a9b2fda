//! A bare test client: just enough of the protocol, built from `kaspi::sign`, to make
//! signed requests and check the simulator's own rules. (The real client is tested
//! against the simulator in crates/kaspi/tests.)

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kaspi::sign::{self, SigningKeyPair};
use kaspi::DeviceIdentity;
use p256::SecretKey;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub use kaspi_sim::{SimConfig, Simulator};

/// A simulator served on 127.0.0.1:0 and a client of it.
pub struct Env {
    pub sim: Simulator,
    /// Base of the three hosts (`{base}/qrpay` …), with any prefix.
    pub base: String,
    pub http: reqwest::Client,
}

pub async fn start() -> Env {
    start_with(SimConfig::default()).await
}

pub async fn start_with(config: SimConfig) -> Env {
    serve(Simulator::new(config)).await
}

/// Serves `sim` on 127.0.0.1:0.
pub async fn serve(sim: Simulator) -> Env {
    let base = kaspi_sim::spawn(sim.clone())
        .await
        .expect("simulator starts");
    Env {
        sim,
        base,
        http: reqwest::Client::new(),
    }
}

/// A logged-in cashier: the device and the session secrets.
#[derive(Clone)]
pub struct Login {
    pub device: DeviceIdentity,
    pub token_sn: String,
    pub secret: [u8; 32],
    pub ecdh: SecretKey,
    pub profile_id: String,
}

/// The reply of a request: HTTP status and JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["Code"].as_str().unwrap_or("")
    }
    pub fn status_code(&self) -> i64 {
        self.body["StatusCode"].as_i64().unwrap_or(i64::MIN)
    }
    pub fn data(&self) -> &Value {
        &self.body["Data"]
    }
    /// Asserts a success envelope and gives its Data.
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        assert_eq!(self.status_code(), 0, "{:?}", self.body);
        &self.body["Data"]
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    }
}

fn header_map(pairs: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    map
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// Signs `pairs` (all of them, after `url`) and adds `X-SH` and `X-Sign`.
pub fn signed(
    key: &SigningKeyPair,
    url: &str,
    mut pairs: Vec<(&str, String)>,
    body: Option<&[u8]>,
) -> HeaderMap {
    let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
    let xsh = format!("url,{}", names.join(","));
    let canonical = {
        let lookup = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        sign::canonical_string(url, &xsh, lookup, body)
    };
    let x_sign = sign::x_sign(key, &canonical).expect("signed");
    pairs.push(("X-SH", xsh));
    pairs.push(("X-Sign", x_sign));
    header_map(&pairs)
}

impl Env {
    pub fn url(&self, host_path: &str) -> String {
        format!("{}{host_path}", self.base)
    }

    fn cookie(device: &DeviceIdentity, user_token: Option<&str>) -> String {
        let mut c = format!(
            "deviceId={}; installId={}; is_mobile_app=true; locale=ru-RU; pk={}; pkTag={}; xs=R:0|E:0|RH:0|N:0",
            device.device_id(),
            device.install_id(),
            device.pk(),
            device.pk_tag()
        );
        if let Some(t) = user_token {
            c.push_str(&format!("; user_token={t}"));
        }
        c
    }

    /// One entrance step; returns the reply and the user_token it set.
    pub async fn entrance(
        &self,
        device: &DeviceIdentity,
        token: Option<&str>,
        body: Value,
    ) -> (Reply, Option<String>) {
        let r = self
            .http
            .post(self.url("/entrance-pay/api/v1/entrance/step"))
            .header("Cookie", Self::cookie(device, token))
            .json(&body)
            .send()
            .await
            .expect("entrance step");
        let reply = reply(r).await;
        let set = reply
            .headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("user_token="))
            .map(|v| v.split(';').next().unwrap_or("").to_owned());
        (reply, set)
    }

    /// Starts a login and sends the phone; returns (pId, user_token, phone answer).
    pub async fn start_login(
        &self,
        device: &DeviceIdentity,
        phone: &str,
    ) -> (String, String, Reply) {
        let (start, token) = self
            .entrance(
                device,
                None,
                json!({"data": {}, "Data": {"auth": "2"}, "actType": "Success"}),
            )
            .await;
        let pid = start.body["meta"]["pId"].as_str().expect("pId").to_owned();
        let token = token.expect("user_token cookie");
        let (answer, _) = self
            .entrance(
                device,
                Some(&token),
                json!({"meta": {"pId": pid, "sn": "EnterPhoneNumber"}, "data": {"phoneNumber": phone}, "actType": "Success"}),
            )
            .await;
        (pid, token, answer)
    }

    pub async fn send_otp(
        &self,
        device: &DeviceIdentity,
        pid: &str,
        token: &str,
        otp: &str,
    ) -> Reply {
        self.entrance(
            device,
            Some(token),
            json!({"meta": {"pId": pid, "sn": "ViewEnterOtp"}, "data": {"userOtp": otp, "inputType": "Manual"}, "actType": "Success"}),
        )
        .await
        .0
    }

    /// The finish request; `key` signs it (normally the device's).
    pub async fn finish(
        &self,
        device: &DeviceIdentity,
        key: &SigningKeyPair,
        pid: &str,
        ecdh: &SecretKey,
    ) -> Reply {
        self.finish_signed(device, key, pid, ecdh, false).await
    }

    /// The finish request, its `X-Sign` over the body too when `sign_body` (as some newer
    /// clients sign it).
    pub async fn finish_signed(
        &self,
        device: &DeviceIdentity,
        key: &SigningKeyPair,
        pid: &str,
        ecdh: &SecretKey,
        sign_body: bool,
    ) -> Reply {
        let url = self.url("/entrance-pay/api/v1/kpentrance/finish");
        let data = B64.encode(
            json!({"installId": device.install_id(), "time": "2026-01-01T05:00:00.000+0500", "auth": [{"value": "", "type": "pincode"}], "userIdHash": ""})
                .to_string(),
        );
        let body = json!({
            "signed": {"data": data, "sign": sign::sign_bytes(key, data.as_bytes()).expect("signed")},
            "guard": {"pinHash": device.pin_hash(), "x509": sign::public_x509_b64(&ecdh.public_key())},
            "processId": pid,
        });
        let bytes = body.to_string().into_bytes();
        let headers = signed(
            key,
            &url,
            vec![
                ("X-Time-Zone", "GMT+05:00".into()),
                (
                    "X-Request-ID",
                    "6B1E0B9E-0000-4000-8000-000000000001".into(),
                ),
                ("X-Call", "notConnected".into()),
                ("X-Time", "2026-01-01T05:00:00.000+0500".into()),
                ("X-SV", "2".into()),
            ],
            sign_body.then_some(&bytes[..]),
        );
        let r = self
            .http
            .post(&url)
            .headers(headers)
            .header("X-PkTag", device.pk_tag())
            .header("X-SU", sign::x_su(&url))
            .header("Content-Type", "application/json")
            .body(bytes)
            .send()
            .await
            .expect("finish");
        reply(r).await
    }

    /// A full SMS login and the org context.
    pub async fn login(&self, phone: &str) -> Login {
        let device = DeviceIdentity::generate();
        let (pid, token, answer) = self.start_login(&device, phone).await;
        assert_eq!(answer.body["view"]["code"], "EnterOtp", "{:?}", answer.body);
        let code = self.sim.last_sms(phone).expect("an SMS was sent");
        let verified = self.send_otp(&device, &pid, &token, &code).await;
        assert_eq!(
            verified.body["data"]["type"], "kpDeviceRegistration",
            "{:?}",
            verified.body
        );
        self.finish_login(device, &pid).await
    }

    /// `finish` then org context, for a verified process.
    pub async fn finish_login(&self, device: DeviceIdentity, pid: &str) -> Login {
        let ecdh = SecretKey::random(&mut rand::thread_rng());
        let done = self.finish(&device, device.signing_key(), pid, &ecdh).await;
        let data = &done.body["data"];
        let token_sn = data["tokenSN"].as_str().expect("tokenSN").to_owned();
        let server = sign::public_from_x509_b64(data["x509"].as_str().expect("x509")).expect("key");
        let mut login = Login {
            secret: sign::ecdh_secret(&ecdh, &server),
            device,
            token_sn,
            ecdh,
            profile_id: String::new(),
        };
        let org = self
            .mtoken(
                &login,
                "/v08/organizations/org-context-otp",
                json!({"OrganizationId": 0}),
            )
            .await;
        login.profile_id = org.ok()["Current"]["ProfileId"].to_string();
        login
    }

    /// Headers of a qrpay request.
    pub fn qrpay_headers(&self, login: &Login, url: &str, body: Option<&[u8]>) -> HeaderMap {
        let mac = sign::token_sn_mac(&login.token_sn, &login.secret, now_ms());
        signed(
            login.device.signing_key(),
            url,
            vec![
                ("X-Install-ID", login.device.install_id().to_owned()),
                ("X-PI", login.profile_id.clone()),
                ("X-App-Bld", "1115".into()),
                ("X-Device-ID", login.device.device_id().to_owned()),
                ("X-SV", "2".into()),
                ("X-Kb-TokenSnMac", mac),
                ("X-Kb-TokenSn", login.token_sn.clone()),
            ],
            body,
        )
    }

    pub async fn qrpay_get(&self, login: &Login, path_and_query: &str) -> Reply {
        let url = self.url(&format!("/qrpay{path_and_query}"));
        let r = self
            .http
            .get(&url)
            .headers(self.qrpay_headers(login, &url, None))
            .send()
            .await
            .expect("qrpay get");
        reply(r).await
    }

    pub async fn qrpay_post(&self, login: &Login, path: &str, body: Value) -> Reply {
        self.try_qrpay_post(&self.http, login, path, body)
            .await
            .expect("qrpay post")
    }

    /// A qrpay POST through `http`, giving the transport error if there is one.
    pub async fn try_qrpay_post(
        &self,
        http: &reqwest::Client,
        login: &Login,
        path: &str,
        body: Value,
    ) -> Result<Reply, reqwest::Error> {
        let url = self.url(&format!("/qrpay{path}"));
        let bytes = body.to_string().into_bytes();
        let r = http
            .post(&url)
            .headers(self.qrpay_headers(login, &url, Some(&bytes)))
            .header("Content-Type", "application/json")
            .body(bytes)
            .send()
            .await?;
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await?;
        Ok(Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        })
    }

    /// An mtoken POST (body not signed).
    pub async fn mtoken(&self, login: &Login, path: &str, body: Value) -> Reply {
        let url = self.url(&format!("/mtoken{path}"));
        let mac = sign::token_sn_mac(&login.token_sn, &login.secret, now_ms());
        let headers = signed(
            login.device.signing_key(),
            &url,
            vec![
                ("X-Kb-Client-Ip", "192.168.1.96".into()),
                ("X-Install-ID", login.device.install_id().to_owned()),
                ("X-Kb-TokenSn", login.token_sn.clone()),
                ("X-S", "R:0|E:0|RH:0|N:0".into()),
                ("X-Kb-TokenSnMac", mac),
            ],
            None,
        );
        let r = self
            .http
            .post(&url)
            .headers(headers)
            .json(&body)
            .send()
            .await
            .expect("mtoken");
        reply(r).await
    }

    /// sign-in-lite; on success the login with the new token and secret.
    pub async fn refresh(&self, login: &Login) -> (Reply, Option<Login>) {
        let r = self
            .mtoken(
                login,
                "/v03/auth/sign-in-lite",
                json!({"OrganizationId": 0}),
            )
            .await;
        let data = r.data();
        let refreshed = data["TokenSn"].as_str().map(|token| {
            let server =
                sign::public_from_x509_b64(data["X509"].as_str().expect("X509")).expect("key");
            Login {
                token_sn: token.to_owned(),
                secret: sign::ecdh_secret(&login.ecdh, &server),
                ..login.clone()
            }
        });
        (r, refreshed)
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .http
            .request(method, self.url(&format!("/_control{path}")));
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req.send().await.expect("control")).await
    }

    /// Creates a remote invoice and gives its id.
    pub async fn invoice(&self, login: &Login, phone: &str, amount: f64) -> u64 {
        let r = self
            .qrpay_post(
                login,
                "/v01/remote/create",
                json!({"PhoneNumber": phone, "Amount": amount, "Comment": "test"}),
            )
            .await;
        r.ok()["Id"].as_u64().expect("Id")
    }

    pub async fn details(&self, login: &Login, id: u64) -> Value {
        self.qrpay_get(login, &format!("/v02/remote/details?operationId={id}"))
            .await
            .ok()
            .clone()
    }

    pub async fn history(&self, login: &Login, cursor: &str) -> Reply {
        self.qrpay_post(
            login,
            "/v02/history/operations",
            json!({"EndDate": "2026-01-01", "LastTransactionDate": cursor, "StatementPeriodCode": 0}),
        )
        .await
    }
}

pub const CASHIER: &str = "87011234567";
