//! Authentication of qrpay and mtoken requests, sessions, nesting under a prefix.

use kaspi::sign;
use kaspi::DeviceIdentity;
use reqwest::{Method, StatusCode};

use crate::common::*;

#[tokio::test]
async fn unsigned_or_unknown_token_is_session_not_found() {
    let env = start().await;
    let r = env
        .http
        .get(env.url("/qrpay/v02/remote/details?operationId=1"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["Code"], "SessionNotFound");
    assert_eq!(body["StatusCode"], -10);
    assert!(
        body["Message"].is_string()
            && body["ErrorDisplayType"].is_string()
            && body["CodeSubsystem"].is_string()
    );
}

#[tokio::test]
async fn a_signature_by_another_key_or_over_another_body_is_invalid_sign() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let url = env.url("/qrpay/v01/remote/create");

    // Signed by a key that was never registered.
    let stranger = Login {
        device: DeviceIdentity::generate(),
        ..login.clone()
    };
    let body = br#"{"PhoneNumber":"7071234567","Amount":100.0}"#;
    let r = env
        .http
        .post(&url)
        .headers(env.qrpay_headers(&stranger, &url, Some(body)))
        .body(body.to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        (b["StatusCode"].as_i64(), b["Code"].as_str()),
        (Some(-2), Some("InvalidSign"))
    );

    // The right key, but the body sent is not the body signed.
    let r = env
        .http
        .post(&url)
        .headers(env.qrpay_headers(&login, &url, Some(body)))
        .body(r#"{"PhoneNumber":"7071234567","Amount":999999.0}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Signed for another URL (query changed).
    let signed_for = env.url("/qrpay/v02/remote/details?operationId=1");
    let r = env
        .http
        .get(env.url("/qrpay/v02/remote/details?operationId=2"))
        .headers(env.qrpay_headers(&login, &signed_for, None))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn x_sh_must_name_url_token_and_mac() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let url = env.url("/qrpay/v02/remote/details?operationId=1");
    // Signed correctly, but the MAC header is left out of the signed list.
    let headers = signed(
        login.device.signing_key(),
        &url,
        vec![
            ("X-Kb-TokenSn", login.token_sn.clone()),
            ("X-PI", login.profile_id.clone()),
        ],
        None,
    );
    let mac = sign::token_sn_mac(&login.token_sn, &login.secret, now());
    let r = env
        .http
        .get(&url)
        .headers(headers)
        .header("X-Kb-TokenSnMac", mac)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: serde_json::Value = r.json().await.expect("json");
    assert_eq!(b["Code"], "InvalidSign");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as i64
}

#[tokio::test]
async fn a_wrong_or_stale_mac_is_invalid_token_mac() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    for stale in [Login {
        secret: [7; 32],
        ..login.clone()
    }] {
        let r = env
            .qrpay_get(&stale, "/v02/remote/details?operationId=1")
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
        assert_eq!(r.code(), "InvalidTokenMac");
    }
    // Two time steps away is refused, one step away is accepted. Keep clear of a step
    // boundary so client and server agree on the current step. MACs are checked against the
    // wall clock (as Kaspi does, not the sim clock), so this is real time.
    if now() % 30_000 > 28_000 {
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    }
    let url = env.url("/qrpay/v02/remote/details?operationId=1");
    for (offset, accepted) in [
        (-60_000, false),
        (-30_000, true),
        (30_000, true),
        (60_000, false),
    ] {
        let mac = sign::token_sn_mac(&login.token_sn, &login.secret, now() + offset);
        let headers = signed(
            login.device.signing_key(),
            &url,
            vec![
                ("X-PI", login.profile_id.clone()),
                ("X-Kb-TokenSnMac", mac),
                ("X-Kb-TokenSn", login.token_sn.clone()),
            ],
            None,
        );
        let r = env
            .http
            .get(&url)
            .headers(headers)
            .send()
            .await
            .expect("send");
        // Accepted requests reach the handler: operation 1 does not exist (HTTP 200, refused).
        assert_eq!(r.status() == StatusCode::OK, accepted, "offset {offset}");
    }
}

#[tokio::test]
async fn qrpay_needs_the_session_profile_id() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let wrong = Login {
        profile_id: "1".into(),
        ..login.clone()
    };
    let r = env
        .qrpay_get(&wrong, "/v02/remote/details?operationId=1")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "InvalidProfile");
}

#[tokio::test]
async fn expired_sessions_refresh_and_revoked_ones_do_not() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let r = env.control(Method::POST, "/sessions/expire", None).await;
    assert_eq!(r.body["sessions"], 1);
    let r = env.history(&login, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!((r.status_code(), r.code()), (-10, "SessionExpired"));

    let (r, fresh) = env.refresh(&login).await;
    r.ok();
    let fresh = fresh.expect("new session");
    assert_ne!(fresh.token_sn, login.token_sn);
    assert_ne!(fresh.secret, login.secret);
    env.history(&fresh, "").await.ok();
    // The replaced token stays expired.
    assert_eq!(env.history(&login, "").await.code(), "SessionExpired");

    env.sim.revoke_sessions();
    let r = env.history(&fresh, "").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "SessionRevoked")
    );
    let (r, again) = env.refresh(&fresh).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.status_code(), 0);
    assert_eq!(r.code(), "SessionRevoked");
    assert!(r.data().is_null() && again.is_none());
    // A new SMS login works.
    let relogin = env.login(CASHIER).await;
    env.history(&relogin, "").await.ok();
}

#[tokio::test]
async fn works_nested_under_a_prefix_and_behind_a_tls_proxy() {
    let sim = Simulator::new(SimConfig::default());
    let app = axum::Router::new().nest("/sandbox/kaspi", sim.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let env = Env {
        sim,
        base: format!("http://{addr}/sandbox/kaspi"),
        http: reqwest::Client::new(),
    };
    let login = env.login(CASHIER).await;
    let id = env.invoice(&login, "7071234567", 10.0).await;
    let details = env.details(&login, id).await;
    assert!(details["ReceiptUrl"]
        .as_str()
        .expect("url")
        .starts_with(&format!("http://{addr}/sandbox/kaspi/qrpay/receipt/")));

    let receipt = env
        .http
        .get(details["ReceiptUrl"].as_str().expect("url"))
        .send()
        .await
        .expect("receipt");
    assert_eq!(receipt.status(), StatusCode::OK);

    // Behind a proxy the client signed an https URL.
    let path = format!("/sandbox/kaspi/qrpay/v02/remote/details?operationId={id}");
    let signed_url = format!("https://{addr}{path}");
    let r = env
        .http
        .get(format!("http://{addr}{path}"))
        .headers(env.qrpay_headers(&login, &signed_url, None))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn rate_limit_answers_429_with_an_envelope() {
    let env = start_with(SimConfig {
        cashier_rate_limit_per_sec: Some(2),
        ..SimConfig::default()
    })
    .await;
    let login = env.login(CASHIER).await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let r = env.history(&login, "").await;
        codes.push((r.status.as_u16(), r.code().to_owned()));
    }
    assert_eq!(codes[0].0, 200);
    assert!(
        codes.contains(&(429, "TooManyRequests".to_owned())),
        "{codes:?}"
    );
}

#[tokio::test]
async fn the_throttle_can_be_switched_on_at_run_time() {
    let env = start_with(SimConfig::default()).await;
    let login = env.login(CASHIER).await;
    for _ in 0..5 {
        assert_eq!(env.history(&login, "").await.status.as_u16(), 200);
    }
    env.sim.set_cashier_rate_limit(Some(2));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(env.history(&login, "").await.status.as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // Switched off, it admits at once: no waiting for the second to pass.
    env.sim.set_cashier_rate_limit(None);
    assert_eq!(env.history(&login, "").await.status.as_u16(), 200);
}

#[tokio::test]
async fn remote_invoices_can_be_made_from_the_control_side() {
    let env = start_with(SimConfig::default()).await;
    let op = env
        .sim
        .create_remote_invoice(
            CASHIER,
            "87001234567",
            kaspi::Amount::from_tiyn(150_000),
            "bulk",
        )
        .expect("made");
    let info = env.sim.operation(op).expect("there");
    assert_eq!(info.sale_type, "Remote");
    assert_eq!(info.status, "RemotePaymentCreated");
    assert_eq!(info.comment, "bulk");
    env.sim.pay(op).expect("payable like any other");
    assert!(
        env.sim
            .create_remote_invoice(CASHIER, "87005550000", kaspi::Amount::from_tiyn(100), "x")
            .is_err(),
        "not a Kaspi client"
    );
}
