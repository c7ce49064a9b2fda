//! The simulator's debug line for each refused request (alone in its binary: the test's
//! subscriber is the thread's default, and callsites first seen by other tests' threads would
//! race with it).

#[allow(dead_code)]
#[path = "it/common.rs"]
mod common;

use kaspi::DeviceIdentity;
use reqwest::StatusCode;

use crate::common::*;

/// Log lines written by the test's subscriber.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: the simulator's tasks log to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn refused_requests_are_logged_at_debug_with_their_reason_and_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let env = start().await;
    let login = env.login(CASHIER).await;

    // A qrpay request signed by another device's key.
    let url = env.url("/qrpay/v02/history/operations");
    let body = br#"{"EndDate":"2026-01-01","LastTransactionDate":"","StatementPeriodCode":0}"#;
    let forged = Login {
        device: DeviceIdentity::generate(),
        ..login.clone()
    };
    let r = env
        .http
        .post(&url)
        .headers(env.qrpay_headers(&forged, &url, Some(body)))
        .body(&body[..])
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A request with no X-SH at all, and one of an unknown session.
    let r = env
        .http
        .post(&url)
        .header("X-Kb-TokenSn", login.token_sn.clone())
        .body(&body[..])
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let text = String::from_utf8_lossy(
        &captured
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned();
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("kaspi-sim refused a request"))
        .collect();
    assert_eq!(refused.len(), 2, "{text}");
    assert!(refused.iter().all(|l| l.contains("DEBUG")), "{text}");
    assert!(
        refused
            .iter()
            .all(|l| l.contains("/v02/history/operations")),
        "the request is named: {text}"
    );
    assert!(refused[0].contains("Подпись запроса неверна"), "{text}");
    assert!(refused[1].contains("X-SH"), "which header: {text}");
    assert!(
        !text.contains(&login.token_sn),
        "the session token is never logged"
    );
}
