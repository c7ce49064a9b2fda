//! The log of one request can be followed into the jobs it starts: the request's span names
//! the invoice it made, and every job's span names the invoice it works on.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Kassa, Options};
use kassa::db::testing::TestDb;
use serde_json::json;

/// Everything logged in this test binary.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_and_the_jobs_it_starts_log_the_same_invoice() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter("kassa=debug,tower_http=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kassa = Kassa::start(Options::new(test.url(), dir.path()).stepped()).await;
    let key = kassa.api_key(kassa.demo_org().await).await;
    let created = kassa
        .http
        .post(kassa.url("/invoices"))
        .header("X-API-Key", &key)
        .header("X-Request-Id", "req-follow-me")
        .json(&json!({"amount": 500, "phone_number": "87001234567"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.expect("json")["id"]
        .as_i64()
        .expect("id");
    // Its first status poll comes due.
    kassa.advance(std::time::Duration::from_secs(1)).await;

    let text = log.text();
    let request = format!("request_id=\"req-follow-me\" invoice={id}");
    assert!(
        text.lines().any(|line| line.contains(&request)),
        "no line of the request names invoice {id}:\n{text}"
    );
    let job = format!("ref_id={id}");
    assert!(
        text.lines().any(|line| line.contains("job{")
            && line.contains("kind=poll_invoice")
            && line.contains(&job)),
        "no job logged for invoice {id}:\n{text}"
    );
    kassa.stop().await;
}
