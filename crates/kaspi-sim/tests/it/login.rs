//! Login (entrance): challenges, wrong answers, app confirmation, device checks.

use kaspi::DeviceIdentity;
use p256::SecretKey;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn sms_login_gives_a_session_and_the_org_context() {
    let env = start().await;
    let login = env.login("+7 701 123 45 67").await;
    let org = env
        .mtoken(
            &login,
            "/v08/organizations/org-context-otp",
            json!({"OrganizationId": 0}),
        )
        .await;
    let data = org.ok();
    let profile = env.sim.cashier_profile(CASHIER).expect("profile");
    assert_eq!(data["Current"]["ProfileId"], profile.profile_id);
    assert_eq!(data["Current"]["OrganizationId"], profile.organization_id);
    assert_eq!(data["Current"]["IsCashier"], true);
    assert_eq!(data["PhoneNumber"], "7011234567");
    assert_eq!(
        data["Organizations"][0]["OrganizationId"],
        profile.organization_id
    );
    assert_eq!(login.profile_id, profile.profile_id.to_string());
}

#[tokio::test]
async fn password_challenge_checks_the_password_then_sends_an_sms() {
    let env = start().await;
    let r = env
        .control(
            Method::POST,
            "/cashiers",
            Some(
                json!({"phone": "87017770000", "password": "s3cret", "challenge": "password_sms"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let device = DeviceIdentity::generate();
    let (pid, token, asked) = env.start_login(&device, "7017770000").await;
    assert_eq!(asked.body["view"]["code"], "KPEnterLoginPassword");
    let meta = asked.body["meta"].clone();
    assert!(meta["sn"].is_string(), "pykaspi needs meta.sn: {meta}");

    let wrong = json!({"meta": meta, "data": {"password": "nope"}, "actType": "Success"});
    let (r, _) = env.entrance(&device, Some(&token), wrong).await;
    assert_eq!(r.body["error"]["code"], "InvalidPassword", "{:?}", r.body);
    assert!(r.body["error"]["label"].is_string() && r.body["error"]["desc"].is_string());
    assert_eq!(r.body["isClosed"], false);

    let right = json!({"meta": {"pId": pid, "sn": "EnterLoginPassword"}, "data": {"password": "s3cret"}, "actType": "Success"});
    let (r, _) = env.entrance(&device, Some(&token), right).await;
    assert_eq!(r.body["view"]["code"], "EnterOtp", "{:?}", r.body);
    assert!(env.sim.last_sms("+77017770000").is_some());
}

#[tokio::test]
async fn unknown_cashiers_of_a_password_challenge_use_the_documented_password() {
    let env = start_with(SimConfig {
        login_challenge: kaspi_sim::Challenge::PasswordSms,
        ..SimConfig::default()
    })
    .await;
    let device = DeviceIdentity::generate();
    let (pid, token, asked) = env.start_login(&device, CASHIER).await;
    assert_eq!(asked.body["view"]["code"], "KPEnterLoginPassword");
    let body = json!({"meta": {"pId": pid, "sn": "EnterLoginPassword"}, "data": {"password": kaspi_sim::DEFAULT_PASSWORD}, "actType": "Success"});
    let (r, _) = env.entrance(&device, Some(&token), body).await;
    assert_eq!(r.body["view"]["code"], "EnterOtp", "{:?}", r.body);
}

#[tokio::test]
async fn three_wrong_codes_close_the_process() {
    let env = start().await;
    let device = DeviceIdentity::generate();
    let (pid, token, _) = env.start_login(&device, CASHIER).await;
    let code = env.sim.last_sms(CASHIER).expect("sms");
    let wrong = if code == "0000" { "1111" } else { "0000" };
    for attempt in 1..=3 {
        let r = env.send_otp(&device, &pid, &token, wrong).await;
        assert_eq!(r.body["error"]["code"], "InvalidOtp", "{:?}", r.body);
        assert_eq!(
            r.body["isClosed"],
            attempt == 3,
            "attempt {attempt}: {:?}",
            r.body
        );
    }
    // Closed: even the right code is refused now.
    let r = env.send_otp(&device, &pid, &token, &code).await;
    assert_eq!(r.body["isClosed"], true);
    assert!(r.body["error"]["code"].is_string());
}

#[tokio::test]
async fn app_confirmation_is_needed_before_finish() {
    let env = start().await;
    env.sim
        .set_cashier("7019990000", kaspi_sim::Challenge::App, None)
        .expect("cashier");
    let device = DeviceIdentity::generate();
    let (pid, _token, asked) = env.start_login(&device, "87019990000").await;
    assert_eq!(asked.body["view"]["code"], "KPMobileCall");
    let ecdh = SecretKey::random(&mut rand::thread_rng());
    let early = env.finish(&device, device.signing_key(), &pid, &ecdh).await;
    assert!(early.body["data"]["tokenSN"].is_null());
    assert_eq!(
        early.body["error"]["code"], "ConfirmationPending",
        "{:?}",
        early.body
    );

    let r = env
        .control(Method::POST, "/app-confirm/+77019990000", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let login = env.finish_login(device, &pid).await;
    assert!(!login.token_sn.is_empty());
}

#[tokio::test]
async fn finish_refuses_a_signature_of_another_key_and_needs_a_verified_process() {
    let env = start().await;
    let device = DeviceIdentity::generate();
    let (pid, token, _) = env.start_login(&device, CASHIER).await;
    let ecdh = SecretKey::random(&mut rand::thread_rng());
    let r = env.finish(&device, device.signing_key(), &pid, &ecdh).await;
    assert_eq!(
        r.body["error"]["code"], "ProcessNotVerified",
        "{:?}",
        r.body
    );

    let code = env.sim.last_sms(CASHIER).expect("sms");
    env.send_otp(&device, &pid, &token, &code).await;
    let other = DeviceIdentity::generate();
    let r = env.finish(&device, other.signing_key(), &pid, &ecdh).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["data"]["tokenSN"].is_null(), "{:?}", r.body);
    // The right key still works afterwards.
    env.finish_login(device, &pid).await;
}

#[tokio::test]
async fn steps_need_the_user_token_and_a_consistent_pk_tag() {
    let env = start().await;
    let device = DeviceIdentity::generate();
    let (pid, _token, _) = env.start_login(&device, CASHIER).await;
    let otp = json!({"meta": {"pId": pid}, "data": {"userOtp": "1234"}, "actType": "Success"});
    let (r, _) = env.entrance(&device, Some("forged"), otp).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["code"], "InvalidUserToken");

    let r = env
        .http
        .post(env.url("/entrance-pay/api/v1/entrance/step"))
        .header(
            "Cookie",
            format!(
                "installId=X; pk={}; pkTag=00000000000000000000000000000000",
                device.pk()
            ),
        )
        .json(&json!({"data": {}, "actType": "Success"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidDevice");
}
