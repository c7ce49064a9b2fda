//! The control API's own errors and bookkeeping.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let env = start().await;
    let cases = [
        (Method::GET, "/nothing-here", None, StatusCode::NOT_FOUND),
        (Method::GET, "/sms/87011234567", None, StatusCode::NOT_FOUND),
        (Method::GET, "/sms/12345", None, StatusCode::BAD_REQUEST),
        (
            Method::POST,
            "/app-confirm/87011234567",
            None,
            StatusCode::NOT_FOUND,
        ),
        (Method::GET, "/operations/1", None, StatusCode::NOT_FOUND),
        (
            Method::POST,
            "/operations/1/refund",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/faults",
            Some(json!({"http_5xx": 2.0})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/faults",
            Some(json!({"typo": 1})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/clock/advance",
            Some(json!({"seconds": -1})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/cashiers",
            Some(json!({"phone": "7011234567", "challenge": "face"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/static-qr-payments",
            Some(json!({"amount": 10.0})),
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            "/static-qr-payments",
            Some(json!({"amount": 0, "phone": CASHIER})),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, body, status) in cases {
        let r = env.control(method.clone(), path, body).await;
        assert_eq!(r.status, status, "{method} {path}: {:?}", r.body);
        assert!(
            r.body["error"].is_string() && r.body["code"].is_string(),
            "{path}: {:?}",
            r.body
        );
    }
}

#[tokio::test]
async fn clock_cashiers_and_call_count() {
    let env = start().await;
    let before = env.sim.now();
    let r = env
        .control(
            Method::POST,
            "/clock/advance",
            Some(json!({"seconds": 3600})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["now"].as_str().expect("now").ends_with("+05:00"));
    assert!(env.sim.now() - before >= time::Duration::hours(1));

    let r = env
        .control(
            Method::POST,
            "/cashiers",
            Some(json!({"phone": "+7 701 555 44 33", "challenge": "app"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for key in [
        "profile_id",
        "organization_id",
        "organization_name",
        "organization_idn",
        "organization_kbe",
        "emp_id",
    ] {
        assert!(!r.body[key].is_null(), "{key}");
    }
    assert_eq!(r.body["is_cashier"], true);
    let again = env
        .control(Method::GET, "/cashiers/87015554433", None)
        .await;
    assert_eq!(again.body, r.body);

    assert_eq!(env.sim.call_count(), 0);
    let login = env.login(CASHIER).await;
    let after_login = env.sim.call_count();
    assert_eq!(after_login, 5, "start, phone, otp, finish, org context");
    env.history(&login, "").await.ok();
    let r = env.control(Method::GET, "/stats", None).await;
    assert_eq!(r.body["calls"], after_login + 1);
}

#[tokio::test]
async fn sms_codes_are_seeded_and_have_the_configured_length() {
    let run = |seed| async move {
        let env = start_with(SimConfig {
            seed,
            sms_code_len: 6,
            ..SimConfig::default()
        })
        .await;
        let device = kaspi::DeviceIdentity::generate();
        env.start_login(&device, CASHIER).await;
        let r = env.control(Method::GET, "/sms/+77011234567", None).await;
        r.body["code"].as_str().expect("code").to_owned()
    };
    let (a, b) = (run(7).await, run(7).await);
    assert_eq!(a, b);
    assert_eq!(a.len(), 6);
}

#[tokio::test]
async fn operations_are_listed_with_their_comments() {
    let env = start().await;
    let empty = env.control(Method::GET, "/operations", None).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.body["operations"], json!([]));

    let login = env.login(CASHIER).await;
    let first = env.invoice(&login, "87011112233", 150.0).await;
    let second = env.invoice(&login, "87012223344", 250.0).await;
    env.control(Method::POST, &format!("/operations/{second}/pay"), None)
        .await;
    let r = env.control(Method::GET, "/operations", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let ops = r.body["operations"].as_array().expect("a list");
    let ids: Vec<u64> = ops.iter().filter_map(|op| op["id"].as_u64()).collect();
    assert_eq!(ids, [first, second], "oldest first");
    assert_eq!(ops[0]["comment"], "test");
    assert_eq!(ops[0]["client_mobile"], "7011112233");
    assert_eq!(ops[1]["status"], "Processed");
    let one = env
        .control(Method::GET, &format!("/operations/{first}"), None)
        .await;
    assert_eq!(
        one.body, ops[0],
        "the list shows what the single route shows"
    );

    let stats = env.control(Method::GET, "/stats", None).await;
    assert_eq!(stats.body["held"], 0, "{:?}", stats.body);
}
