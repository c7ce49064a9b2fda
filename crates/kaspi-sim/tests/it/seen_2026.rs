//! Kaspi as newer clients (2026) see it: sessions evicted by a login on another device, a
//! minimum app build, blocked accounts and named login errors, `finish` and mtoken requests
//! signed with or without their body, and the `finish` answer those clients read.

use kaspi::sign;
use kaspi::DeviceIdentity;
use p256::SecretKey;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::*;

/// Whether the session still works (a history page answers `StatusCode` 0).
async fn works(env: &Env, login: &Login) -> bool {
    env.history(login, "").await.status_code() == 0
}

/// A verified login process of `phone` on `device` (SMS code given): its pId.
async fn verified(env: &Env, device: &DeviceIdentity, phone: &str) -> String {
    let (pid, token, answer) = env.start_login(device, phone).await;
    assert_eq!(answer.body["view"]["code"], "EnterOtp", "{:?}", answer.body);
    let code = env.sim.last_sms(phone).expect("an SMS was sent");
    let r = env.send_otp(device, &pid, &token, &code).await;
    assert_eq!(
        r.body["data"]["type"], "kpDeviceRegistration",
        "{:?}",
        r.body
    );
    pid
}

#[tokio::test]
async fn finish_accepts_x_sign_with_and_without_the_body_and_answers_success() {
    let env = start().await;
    for sign_body in [false, true] {
        let device = DeviceIdentity::generate();
        let pid = verified(&env, &device, CASHIER).await;
        let ecdh = SecretKey::random(&mut rand::thread_rng());
        let done = env
            .finish_signed(&device, device.signing_key(), &pid, &ecdh, sign_body)
            .await;
        assert_eq!(done.status, StatusCode::OK, "{sign_body}: {:?}", done.body);
        assert_eq!(done.body["success"], true, "{:?}", done.body);
        assert!(done.body["roles"].as_array().is_some_and(|r| !r.is_empty()));
        assert!(done.body["perms"].as_array().is_some_and(|p| !p.is_empty()));
        assert_eq!(done.body["data"]["showSaleScreen"], true);
        assert!(done.body["data"]["tokenSN"].is_string());
    }
    // A signature over neither form is still refused.
    let device = DeviceIdentity::generate();
    let pid = verified(&env, &device, CASHIER).await;
    let other = DeviceIdentity::generate();
    let ecdh = SecretKey::random(&mut rand::thread_rng());
    let forged = env
        .finish_signed(&device, other.signing_key(), &pid, &ecdh, true)
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{:?}", forged.body);
    assert_eq!(forged.body["error"]["code"], "InvalidSign");
}

#[tokio::test]
async fn org_context_accepts_a_signature_over_the_body() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let url = env.url("/mtoken/v08/organizations/org-context-otp");
    let body = json!({"OrganizationId": 0}).to_string().into_bytes();
    let sign_with = |body_signed: Option<&[u8]>| {
        let mac = sign::token_sn_mac(&login.token_sn, &login.secret, now_ms());
        signed(
            login.device.signing_key(),
            &url,
            vec![
                ("X-Install-ID", login.device.install_id().to_owned()),
                ("X-Kb-TokenSn", login.token_sn.clone()),
                ("X-Kb-TokenSnMac", mac),
            ],
            body_signed,
        )
    };
    for body_signed in [Some(&body[..]), None] {
        let r = env
            .http
            .post(&url)
            .headers(sign_with(body_signed))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), StatusCode::OK);
        let answer: Value = r.json().await.expect("json");
        assert_eq!(answer["StatusCode"], 0, "{answer}");
        assert!(answer["Data"]["Current"]["ProfileId"].is_number());
    }
}

#[tokio::test]
async fn a_login_on_another_device_evicts_the_session_and_refresh_cannot_help() {
    let env = start().await;
    let first = env.login(CASHIER).await;
    assert!(works(&env, &first).await);

    // The same device logs in again: nothing is evicted.
    let pid = verified(&env, &first.device, CASHIER).await;
    let again = env.finish_login(first.device.clone(), &pid).await;
    assert!(works(&env, &first).await, "a re-login of the same device");
    assert!(works(&env, &again).await);

    // Another device logs in with the same phone: the first device's sessions end.
    let second = env.login(CASHIER).await;
    let r = env.history(&first, "").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.status_code(), -101_001, "{:?}", r.body);
    let (refreshed, none) = env.refresh(&first).await;
    assert_eq!(refreshed.status_code(), -101_001, "{:?}", refreshed.body);
    assert!(none.is_none());
    assert!(works(&env, &second).await);
    // Another cashier is untouched.
    let other = env.login("87019990000").await;
    let sessions = env.sim.sessions(CASHIER).expect("sessions");
    let evicted: Vec<_> = sessions.iter().filter(|s| s.state == "evicted").collect();
    assert!(!evicted.is_empty());
    assert!(evicted
        .iter()
        .all(|s| s.install_id == first.device.install_id()));
    assert!(works(&env, &other).await);

    // The control API evicts as a second device would.
    let r = env
        .control(
            Method::POST,
            "/sessions/evict",
            Some(json!({"phone": CASHIER})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["sessions"], 1);
    assert_eq!(env.history(&second, "").await.status_code(), -101_001);
    assert!(works(&env, &other).await);
    let listed = env
        .control(Method::GET, &format!("/sessions/{CASHIER}"), None)
        .await;
    assert!(listed.body["sessions"]
        .as_array()
        .is_some_and(|s| s.iter().all(|s| s["state"] == "evicted")));
}

#[tokio::test]
async fn below_the_minimum_app_build_login_and_calls_answer_old_version_to_update() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let r = env
        .control(Method::POST, "/app-build", Some(json!({"min_build": 1120})))
        .await;
    assert_eq!(r.body["min_build"], 1120, "{:?}", r.body);

    // qrpay (the test client presents build 1115): a non-zero StatusCode and the alarm.
    let r = env.history(&login, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.status_code(), 0);
    assert_eq!(r.code(), "OldVersionToUpdate");
    assert_eq!(
        r.body["view"]["onOpenAlarm"]["error"]["code"],
        "OldVersionToUpdate"
    );

    // The login's first step shows the alarm.
    let device = DeviceIdentity::generate();
    let start_body = |build: &str| json!({"data": {}, "Data": {"auth": "2", "appBuild": build}, "actType": "Success"});
    let (r, _) = env.entrance(&device, None, start_body("1115")).await;
    assert_eq!(
        r.body["view"]["onOpenAlarm"]["error"]["code"], "OldVersionToUpdate",
        "{:?}",
        r.body
    );
    let (r, _) = env.entrance(&device, None, start_body("1120")).await;
    assert!(r.body["meta"]["pId"].is_string(), "{:?}", r.body);

    // Dropped again: calls work.
    env.sim.set_min_app_build(None);
    assert_eq!(env.history(&login, "").await.status_code(), 0);
}

#[tokio::test]
async fn a_blocked_account_and_scripted_refusals_answer_their_codes_at_the_phone_step() {
    let env = start().await;
    let r = env
        .control(
            Method::POST,
            &format!("/cashiers/{CASHIER}/block"),
            Some(json!({"minutes": 30})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let device = DeviceIdentity::generate();
    let (_, _, answer) = env.start_login(&device, CASHIER).await;
    assert_eq!(answer.body["error"]["code"], "AccountTemporaryBlocked");
    let label = answer.body["error"]["label"].as_str().expect("label");
    assert!(label.contains("30 мин"), "{label}");
    assert_eq!(answer.body["isClosed"], true);

    // The block ends on the sim clock.
    env.sim
        .advance_clock(std::time::Duration::from_secs(31 * 60));
    let (_, _, answer) = env.start_login(&device, CASHIER).await;
    assert_eq!(answer.body["view"]["code"], "EnterOtp", "{:?}", answer.body);

    for code in kaspi_sim::LOGIN_ERROR_CODES {
        let r = env
            .control(
                Method::POST,
                &format!("/cashiers/{CASHIER}/refuse-login"),
                Some(json!({"code": code})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let (_, _, answer) = env.start_login(&device, CASHIER).await;
        assert_eq!(answer.body["error"]["code"], *code, "{:?}", answer.body);
        // Once only.
        let (_, _, answer) = env.start_login(&device, CASHIER).await;
        assert_eq!(answer.body["view"]["code"], "EnterOtp");
    }
    let r = env
        .control(
            Method::POST,
            &format!("/cashiers/{CASHIER}/refuse-login"),
            Some(json!({"code": "Whatever"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn evictions_the_minimum_build_and_blocks_survive_a_restart_of_the_simulator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sandbox-kaspi.json");
    let first = serve(Simulator::open(SimConfig::default(), &path).expect("opens")).await;
    let evicted = first.login(CASHIER).await;
    let live = first.login(CASHIER).await;
    first.sim.set_min_app_build(Some(1107));
    first.sim.block_account("87019990000", 30).expect("blocked");
    first.sim.save(&path).expect("saved");

    let second = serve(Simulator::open(SimConfig::default(), &path).expect("reopens")).await;
    assert_eq!(second.sim.min_app_build(), Some(1107));
    assert_eq!(second.history(&evicted, "").await.status_code(), -101_001);
    assert!(works(&second, &live).await);
    let sessions = second.sim.sessions(CASHIER).expect("sessions");
    assert!(sessions
        .iter()
        .any(|s| s.install_id == live.device.install_id() && s.state == "live"));
    // (The bare test client's login start names no build.)
    second.sim.set_min_app_build(None);
    let (_, _, answer) = second
        .start_login(&DeviceIdentity::generate(), "87019990000")
        .await;
    assert_eq!(answer.body["error"]["code"], "AccountTemporaryBlocked");
}
