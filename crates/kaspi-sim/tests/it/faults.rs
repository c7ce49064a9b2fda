//! Faults on demand: 5xx, non-zero StatusCode, latency, lost answers (timeout, drop),
//! path filters and counts; never on the control API.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

async fn history_len(env: &Env, login: &Login) -> usize {
    env.history(login, "").await.ok()["ListHistoryPaymentData"]
        .as_array()
        .expect("list")
        .len()
}

fn create_body() -> serde_json::Value {
    json!({"PhoneNumber": "7071234567", "Amount": 100.0})
}

#[tokio::test]
async fn http_5xx_and_status_errors_perform_nothing_and_count_down() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let r = env
        .control(
            Method::POST,
            "/faults",
            Some(json!({"http_5xx": 1.0, "path_contains": "/remote/create", "count": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Not matching the path: untouched, and the count is not used up.
    assert_eq!(history_len(&env, &login).await, 0);
    let r = env
        .qrpay_post(&login, "/v01/remote/create", create_body())
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_ne!(r.status_code(), 0);
    assert_eq!(history_len(&env, &login).await, 0);
    env.qrpay_post(&login, "/v01/remote/create", create_body())
        .await
        .ok();
    assert_eq!(env.sim.faults().count, Some(0));

    env.sim
        .set_faults(kaspi_sim::Faults {
            status_error: 1.0,
            count: Some(1),
            ..Default::default()
        })
        .expect("faults");
    let r = env
        .qrpay_post(&login, "/v01/remote/create", create_body())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.status_code(), 0);
    assert!(!r.code().is_empty() && r.body["Message"].is_string());
    assert_eq!(history_len(&env, &login).await, 1);
}

#[tokio::test]
async fn lost_answer_timeout_performs_the_operation_and_ends_the_hold_when_the_client_leaves() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    env.sim
        .set_faults(kaspi_sim::Faults {
            lost: 1.0,
            lost_mode: kaspi_sim::LostMode::Timeout,
            hang_ms: 30_000,
            path_contains: Some("/remote/create".into()),
            count: Some(1),
            ..Default::default()
        })
        .expect("faults");
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let started = Instant::now();
    let err = env
        .try_qrpay_post(&impatient, &login, "/v01/remote/create", create_body())
        .await
        .expect_err("the answer is held back");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The invoice was made all the same.
    let items = env.history(&login, "").await.ok()["ListHistoryPaymentData"].clone();
    assert_eq!(items.as_array().expect("list").len(), 1);
    assert_eq!(items[0]["Status"], "RemotePaymentCreated");
    // The client went away, so the hold ended.
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.sim.held_answers() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.sim.held_answers(), 0);
}

#[tokio::test]
async fn lost_answer_drop_closes_the_connection_after_performing() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let r = env
        .control(
            Method::POST,
            "/faults",
            Some(json!({"lost": 1.0, "lost_mode": "drop", "count": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let fresh = reqwest::Client::new();
    let result = env
        .try_qrpay_post(&fresh, &login, "/v01/remote/create", create_body())
        .await;
    assert!(result.is_err(), "no complete answer: {result:?}");
    assert_eq!(history_len(&env, &login).await, 1);
}

#[tokio::test]
async fn latency_is_added_and_the_control_api_is_never_affected() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    env.sim
        .set_faults(kaspi_sim::Faults {
            latency_ms: 300,
            ..Default::default()
        })
        .expect("faults");
    let started = Instant::now();
    env.history(&login, "").await.ok();
    assert!(started.elapsed() >= Duration::from_millis(300));

    env.sim
        .set_faults(kaspi_sim::Faults {
            http_5xx: 1.0,
            ..Default::default()
        })
        .expect("faults");
    for path in ["/clock", "/faults", "/stats"] {
        let r = env.control(Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    assert_eq!(
        env.history(&login, "").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let r = env.control(Method::DELETE, "/faults", None).await;
    assert_eq!(r.status, StatusCode::OK);
    env.history(&login, "").await.ok();
    // `{}` clears too.
    env.sim
        .set_faults(kaspi_sim::Faults {
            http_5xx: 1.0,
            ..Default::default()
        })
        .expect("faults");
    env.control(Method::POST, "/faults", Some(json!({}))).await;
    env.history(&login, "").await.ok();
}
