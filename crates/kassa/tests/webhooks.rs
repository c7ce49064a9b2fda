//! Webhooks end to end: a real Kassa, a real receiver on loopback. Signatures are checked with
//! each documented recipe computed here (not with Kassa's signing code); retries, 410,
//! `Retry-After`, timeouts, redirects, SSRF refusals, a restart, two processes on one
//! PostgreSQL, the xPayment simulator. The store's side without HTTP is in `webhook_store.rs`.
//!
//! The gateways are stepped: their clock stands still, and `kassa.step()` dispatches the
//! events and makes every attempt due, awaiting each HTTP request and its record, so what the
//! receiver got is there when it returns. Retry delays, `Retry-After`, disabling and secret
//! rotation are reached by moving the clock. Only an attempt's timeout runs on real time; two
//! `kassa serve` processes on one PostgreSQL run their own background loops, and so does the
//! gateway that shows a commit waking the dispatcher.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::receiver::{Received, Receiver, Reply};
use common::{connect, Answer, Kassa, Options};
use hmac::{Hmac, Mac};
use kaspi_sim::{SimConfig, Simulator};
use kassa::db::testing::TestDb;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

/// How far the clock moves at a time while stepping through retries: less than any delay of
/// the test schedules, so each retry is made close to when it comes due.
const TICK: Duration = Duration::from_millis(50);
/// More than the whole retry schedule of [`Options::new`] (1.2 s, plus 10 % jitter).
const PAST_EVERY_RETRY: Duration = Duration::from_secs(2);

/// A stepped gateway on `test`. Its history syncs run once a minute of its clock: they are
/// not what these tests look at, and each is a Kaspi call paced on real time, which stepping
/// through seconds of retries should not wait for.
fn stepped(test: &TestDb, dir: &Path) -> Options {
    let mut options = Options::new(test.url(), dir).stepped();
    options.settings.history_every = Duration::from_secs(60);
    options.settings.history_idle_every = Duration::from_secs(60);
    options
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// ApiPay's recipe: `'sha256=' + hmac.new(secret.encode(), payload, sha256).hexdigest()`.
fn apipay_signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    )
}

/// xPayment's recipe: hex HMAC-SHA256 of the raw body with the secret.
fn xpayment_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret.as_bytes(), body))
}

/// Standard Webhooks: the key is the base64 after `whsec_`; the signed content is
/// `{webhook-id}.{webhook-timestamp}.{body}`.
fn standard_signature(secret: &str, request: &Received) -> String {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 secret");
    let mut content = format!(
        "{}.{}.",
        request.header("webhook-id"),
        request.header("webhook-timestamp")
    )
    .into_bytes();
    content.extend_from_slice(&request.body);
    format!("v1,{}", B64.encode(hmac_sha256(&key, &content)))
}

/// Creates a webhook endpoint through the API; its JSON (with the secret).
async fn create_endpoint(kassa: &Kassa, key: &str, body: Value) -> Value {
    let made = kassa.post(key, "/webhooks", body).await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    made.json
}

/// Makes an invoice by phone; its id.
async fn invoice(kassa: &Kassa, key: &str, amount: i64) -> i64 {
    let made = kassa
        .post(
            key,
            "/invoices",
            json!({"amount": amount, "phone_number": "87001234567", "external_order_id": format!("order-{amount}")}),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    made.json["id"].as_i64().expect("id")
}

/// Makes an invoice by phone and cancels it; its id.
async fn cancelled_invoice(kassa: &Kassa, key: &str, amount: i64) -> i64 {
    let id = invoice(kassa, key, amount).await;
    let cancelled = kassa
        .post(key, &format!("/invoices/{id}/cancel"), json!({}))
        .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.json);
    id
}

/// The request of `got` that came to `path`.
fn sent_to<'a>(got: &'a [Received], path: &str) -> &'a Received {
    got.iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("a request to {path}: {got:#?}"))
}

async fn pay(kassa: &Kassa, key: &str, id: i64) {
    let paid = kassa
        .post(key, &format!("/sandbox/invoices/{id}/pay"), json!({}))
        .await;
    assert_eq!(paid.status, 200, "{:?}", paid.json);
}

async fn request(
    kassa: &Kassa,
    method: Method,
    key: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut r = kassa
        .http
        .request(method, kassa.url(path))
        .header("X-API-Key", key);
    if let Some(body) = body {
        r = r.json(&body);
    }
    Answer::read(r.send().await.expect("sent")).await
}

/// The delivery log of endpoint `id`.
async fn deliveries(kassa: &Kassa, key: &str, id: i64) -> Vec<Value> {
    let got = kassa.get(key, &format!("/webhooks/{id}/deliveries")).await;
    assert_eq!(got.status, 200, "{:?}", got.json);
    got.json["data"].as_array().expect("data").clone()
}

/// Moves the clock past every retry the schedule of [`Options::new`] could still make,
/// stepping the work as it comes due.
async fn run_out_retries(kassa: &Kassa) {
    kassa.advance_by_steps(PAST_EVERY_RETRY, TICK).await;
}

/// Steps through the retries until endpoint `id`'s first delivery is delivered; the log.
async fn delivered_log(kassa: &Kassa, key: &str, id: i64) -> Vec<Value> {
    kassa
        .advance_until(PAST_EVERY_RETRY, TICK, || async {
            let log = deliveries(kassa, key, id).await;
            let delivered = log.first().is_some_and(|d| d["status"] == "delivered");
            delivered.then_some(log)
        })
        .await
        .unwrap_or_else(|| panic!("endpoint {id}'s delivery is delivered"))
}

on_both_databases!(
    signed_deliveries_in_both_formats,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = Kassa::start(stepped(&test, dir.path())).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
        let receiver = Receiver::start().await;

        let apipay = create_endpoint(
            &kassa,
            &key,
            json!({"url": receiver.url("/apipay"), "events": ["*"], "format": "apipay", "description": "shop"}),
        )
        .await;
        let xpayment = create_endpoint(
            &kassa,
            &key,
            json!({"url": receiver.url("/xpayment"), "events": ["payment.completed", "payment.cancelled"], "format": "xpayment"}),
        )
        .await;
        let apipay_secret = apipay["secret"].as_str().expect("secret").to_owned();
        let xpayment_secret = xpayment["secret"].as_str().expect("secret").to_owned();
        assert!(apipay_secret.starts_with("whsec_"));
        let apipay_id = apipay["id"].as_i64().expect("id");
        // The secret is shown once.
        let shown = kassa.get(&key, &format!("/webhooks/{apipay_id}")).await;
        assert_eq!(shown.status, 200);
        assert!(shown.json.get("secret").is_none(), "{:?}", shown.json);
        assert!(!shown.json.to_string().contains(&apipay_secret));
        let listed = kassa.get(&key, "/webhooks").await;
        assert_eq!(listed.json["data"].as_array().expect("list").len(), 2);

        // Another organization sees none of it.
        let other_key = kassa.other_org_key("other").await;
        let hidden = kassa
            .get(&other_key, &format!("/webhooks/{apipay_id}"))
            .await;
        assert_eq!(hidden.status, 404, "{:?}", hidden.json);
        let none = kassa.get(&other_key, "/webhooks").await;
        assert_eq!(none.json["data"], json!([]));
        let deleted = request(
            &kassa,
            Method::DELETE,
            &other_key,
            &format!("/webhooks/{apipay_id}"),
            None,
        )
        .await;
        assert_eq!(deleted.status, 404);

        let id = invoice(&kassa, &key, 1500).await;
        pay(&kassa, &key, id).await;
        kassa.step().await;
        let got = receiver.requests();
        assert_eq!(got.len(), 2, "one per endpoint: {got:#?}");
        let a = sent_to(&got, "/apipay");
        let x = sent_to(&got, "/xpayment");

        // ApiPay: its recipe, its body.
        assert_eq!(
            a.header("x-webhook-signature"),
            apipay_signature(&apipay_secret, &a.body)
        );
        assert_eq!(
            a.header("webhook-signature"),
            standard_signature(&apipay_secret, a)
        );
        assert_eq!(a.header("content-type"), "application/json");
        let ts: i64 = a.header("webhook-timestamp").parse().expect("unix seconds");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((now - ts).abs() < 60, "{ts} vs {now}");
        let body = a.json();
        assert_eq!(body["event"], "invoice.status_changed");
        assert_eq!(body["source"], "api");
        assert_eq!(body["invoice"]["id"], id);
        assert_eq!(body["invoice"]["status"], "paid");
        assert_eq!(body["invoice"]["amount"], "1500.00");
        assert_eq!(body["invoice"]["external_order_id"], "order-1500");
        assert!(body["timestamp"].as_str().expect("ts").ends_with('Z'));

        // xPayment: its recipe, its body; delivery_id is the webhook-id.
        assert_eq!(
            x.header("x-xpayment-signature"),
            xpayment_signature(&xpayment_secret, &x.body)
        );
        assert_eq!(
            x.header("webhook-signature"),
            standard_signature(&xpayment_secret, x)
        );
        assert!(!x.headers.contains_key("x-webhook-signature"));
        let body = x.json();
        assert_eq!(body["event"], "payment.completed");
        assert_eq!(body["payment"]["status"], "completed");
        assert_eq!(body["payment"]["amount"], 1500);
        assert_eq!(body["payment"]["merchant_order_id"], "order-1500");
        assert_eq!(body["delivery_id"], x.header("webhook-id"));
        assert!(body.get("refund").is_none());

        // The attempt log.
        let log = deliveries(&kassa, &key, apipay_id).await;
        assert_eq!(log.len(), 1);
        assert_eq!(log[0]["status"], "delivered");
        assert_eq!(log[0]["webhook_id"], a.header("webhook-id"));
        assert_eq!(log[0]["attempts"], 1);
        assert_eq!(log[0]["attempt_log"][0]["status"], 200);
        assert_eq!(log[0]["attempt_log"][0]["response"], "status 200");

        // A rotated secret: both sign the Standard Webhooks header during the grace period,
        // the new one signs ApiPay's.
        let rotated = kassa
            .post(
                &key,
                &format!("/webhooks/{apipay_id}/rotate-secret"),
                json!({"grace_period_secs": 3600}),
            )
            .await;
        assert_eq!(rotated.status, 200, "{:?}", rotated.json);
        let new_secret = rotated.json["secret"].as_str().expect("secret").to_owned();
        assert_ne!(new_secret, apipay_secret);
        assert!(rotated.json["previous_secret_expires_at"].is_string());
        cancelled_invoice(&kassa, &key, 2500).await;
        kassa.step().await;
        let got = receiver.requests();
        assert_eq!(got.len(), 4, "{got:#?}");
        let a2 = sent_to(&got[2..], "/apipay");
        assert_eq!(a2.json()["invoice"]["status"], "cancelled");
        assert_eq!(
            a2.header("x-webhook-signature"),
            apipay_signature(&new_secret, &a2.body)
        );
        let sigs: Vec<&str> = a2.header("webhook-signature").split(' ').collect();
        assert_eq!(
            sigs,
            vec![
                standard_signature(&new_secret, a2),
                standard_signature(&apipay_secret, a2)
            ]
        );
        let x2 = sent_to(&got[2..], "/xpayment");
        assert_eq!(x2.json()["event"], "payment.cancelled");
        assert_ne!(x2.header("webhook-id"), x.header("webhook-id"));

        // Once the grace period is over, the new secret alone signs.
        kassa.advance(Duration::from_secs(3600) + TICK).await;
        let shown = kassa.get(&key, &format!("/webhooks/{apipay_id}")).await;
        assert!(
            shown.json["previous_secret_expires_at"].is_null(),
            "{:?}",
            shown.json
        );
        let third = cancelled_invoice(&kassa, &key, 3500).await;
        kassa.step().await;
        let got = receiver.requests();
        assert_eq!(got.len(), 6, "{got:#?}");
        let a3 = sent_to(&got[4..], "/apipay");
        assert_eq!(a3.json()["invoice"]["id"], third);
        assert_eq!(
            a3.header("x-webhook-signature"),
            apipay_signature(&new_secret, &a3.body)
        );
        assert_eq!(
            a3.header("webhook-signature"),
            standard_signature(&new_secret, a3)
        );
        kassa.stop().await;
    }
);

on_both_databases!(
    a_failing_receiver_gets_retries_and_redirects_are_not_followed,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = Kassa::start(stepped(&test, dir.path())).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
        let receiver = Receiver::start().await;
        receiver.script(vec![
            Reply::status(302).header("location", &receiver.url("/elsewhere")),
            Reply::status(500),
            Reply::status(200),
        ]);
        let endpoint = create_endpoint(&kassa, &key, json!({"url": receiver.url("/hook")})).await;
        let endpoint_id = endpoint["id"].as_i64().expect("id");
        let id = invoice(&kassa, &key, 700).await;
        pay(&kassa, &key, id).await;
        // One attempt now; the retries only as the clock reaches them.
        kassa.step().await;
        assert_eq!(receiver.requests().len(), 1);
        let log = delivered_log(&kassa, &key, endpoint_id).await;
        let got = receiver.requests();
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(
            got.iter().all(|r| r.path == "/hook"),
            "the redirect was not followed"
        );
        let ids: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
        assert_eq!(ids.len(), 1, "one event, one webhook-id on every retry");
        assert!(
            got.iter().all(|r| r.body == got[0].body),
            "identical bytes on every retry"
        );
        let attempts = log[0]["attempt_log"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 3, "{attempts:#?}");
        assert_eq!(attempts[0]["status"], 302);
        assert!(attempts[0]["error"]
            .as_str()
            .expect("error")
            .contains("redirect"));
        assert_eq!(attempts[1]["status"], 500);
        assert_eq!(attempts[2]["status"], 200);
        assert!(attempts[2]["error"].is_null());
        // Nothing more arrives, however long the schedule runs: delivered once.
        run_out_retries(&kassa).await;
        let got = receiver.requests();
        assert_eq!(got.len(), 3, "{got:#?}");
        assert_eq!(got.iter().filter(|r| r.answered == 200).count(), 1);

        // Redelivery on request: the same webhook-id, the same bytes, once more.
        let delivery = log[0]["id"].as_i64().expect("delivery id");
        let again = kassa
            .post(
                &key,
                &format!("/webhooks/{endpoint_id}/deliveries/{delivery}/redeliver"),
                json!({}),
            )
            .await;
        assert_eq!(again.status, 202, "{:?}", again.json);
        kassa.step().await;
        let got = receiver.requests();
        assert_eq!(got.len(), 4, "{got:#?}");
        assert_eq!(got[3].header("webhook-id"), got[0].header("webhook-id"));
        assert_eq!(got[3].body, got[0].body);
        let missing = kassa
            .post(
                &key,
                &format!("/webhooks/{endpoint_id}/deliveries/99999/redeliver"),
                json!({}),
            )
            .await;
        assert_eq!(missing.status, 404);
        kassa.stop().await;
    }
);

on_both_databases!(
    gone_disables_retry_after_is_honoured_and_failing_endpoints_are_disabled,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut options = stepped(&test, dir.path());
        options.webhook_disable_after = Some("400ms".into());
        options.webhook_retry_schedule = "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms".into();
        let kassa = Kassa::start(options).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
        let gone = Receiver::start().await;
        gone.set_default(Reply::status(410));
        let limited = Receiver::start().await;
        limited.script(vec![Reply::status(429).header("retry-after", "2")]);
        let broken = Receiver::start().await;
        broken.set_default(Reply::status(500));
        let gone_id = create_endpoint(&kassa, &key, json!({"url": gone.url("/")})).await["id"]
            .as_i64()
            .expect("id");
        create_endpoint(&kassa, &key, json!({"url": limited.url("/")})).await;
        let broken_id = create_endpoint(&kassa, &key, json!({"url": broken.url("/")})).await["id"]
            .as_i64()
            .expect("id");

        let id = invoice(&kassa, &key, 900).await;
        pay(&kassa, &key, id).await;
        kassa.step().await;

        // 410: one attempt, the endpoint is disabled and says why.
        let endpoint = kassa.get(&key, &format!("/webhooks/{gone_id}")).await.json;
        assert_eq!(
            endpoint["is_active"], false,
            "disabled after 410: {endpoint:?}"
        );
        assert!(endpoint["disabled_reason"]
            .as_str()
            .expect("reason")
            .contains("410"));
        assert_eq!(gone.requests().len(), 1);
        // One failure is not yet failing for long.
        let endpoint = kassa
            .get(&key, &format!("/webhooks/{broken_id}"))
            .await
            .json;
        assert_eq!(endpoint["is_active"], true, "{endpoint:?}");
        assert!(endpoint["failing_since"].is_string(), "{endpoint:?}");

        // 429 with Retry-After: 2 → the retry waits 2 s (the schedule says 100 ms): not at
        // 1.9 s, by 2.1 s.
        assert_eq!(limited.requests().len(), 1);
        kassa
            .advance_by_steps(Duration::from_millis(1900), TICK)
            .await;
        assert_eq!(limited.requests().len(), 1, "Retry-After honoured");
        kassa
            .advance_by_steps(Duration::from_millis(200), TICK)
            .await;
        let got = limited.requests();
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(got[1].answered, 200);

        // Failing without a break for longer than the setting: disabled with the reason.
        let endpoint = kassa
            .get(&key, &format!("/webhooks/{broken_id}"))
            .await
            .json;
        assert_eq!(
            endpoint["is_active"], false,
            "disabled after failing too long: {endpoint:?}"
        );
        let reason = endpoint["disabled_reason"].as_str().expect("reason");
        assert!(
            reason.contains("failed") && reason.contains("answered 500"),
            "{reason}"
        );
        let broken_got = broken.requests().len();
        assert!(broken_got >= 2, "retried before it was disabled");

        // Disabled endpoints get no new deliveries, nor retries of old ones.
        cancelled_invoice(&kassa, &key, 901).await;
        run_out_retries(&kassa).await;
        assert_eq!(limited.requests().len(), 3);
        assert_eq!(gone.requests().len(), 1);
        assert_eq!(broken.requests().len(), broken_got);
        // Re-enabling clears the reason.
        let on = request(
            &kassa,
            Method::PATCH,
            &key,
            &format!("/webhooks/{gone_id}"),
            Some(json!({"is_active": true})),
        )
        .await;
        assert_eq!(on.status, 200, "{:?}", on.json);
        assert_eq!(on.json["is_active"], true);
        assert!(on.json["disabled_reason"].is_null());
        kassa.stop().await;
    }
);

on_both_databases!(a_slow_receiver_times_out, |test: TestDb| async move {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = stepped(&test, dir.path());
    // The attempt's timeout is real time (the shortest allowed); the retry is not.
    options.webhook_timeout_secs = 1;
    let kassa = Kassa::start(options).await;
    let org = kassa.demo_org().await;
    let key = kassa.api_key(org).await;
    let receiver = Receiver::start().await;
    receiver.script(vec![Reply::status(200).delay(Duration::from_secs(3))]);
    let endpoint_id = create_endpoint(&kassa, &key, json!({"url": receiver.url("/slow")})).await
        ["id"]
        .as_i64()
        .expect("id");
    let id = invoice(&kassa, &key, 300).await;
    pay(&kassa, &key, id).await;
    kassa.step().await;
    assert_eq!(receiver.requests().len(), 1);
    let log = delivered_log(&kassa, &key, endpoint_id).await;
    let got = receiver.requests();
    assert_eq!(got.len(), 2, "{got:#?}");
    // The first attempt was cut off after the timeout, not the receiver's 3 s; the retry
    // came as soon as the clock was moved.
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_millis(2900),
        "{gap:?}"
    );
    let attempts = log[0]["attempt_log"].as_array().expect("attempts");
    assert!(attempts[0]["status"].is_null());
    assert!(
        attempts[0]["error"]
            .as_str()
            .expect("error")
            .contains("timed out"),
        "{attempts:#?}"
    );
    assert!(attempts[0]["latency_ms"].as_i64().expect("latency") >= 900);
    kassa.stop().await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_targets_are_refused_at_creation_and_at_delivery() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start().await;
    // Made while private targets are allowed (a developer's machine)…
    let kassa = Kassa::start(stepped(&test, dir.path())).await;
    let org = kassa.demo_org().await;
    let key = kassa.api_key(org).await;
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let endpoint_id = create_endpoint(&kassa, &key, json!({"url": url})).await["id"]
        .as_i64()
        .expect("id");
    kassa.stop().await;

    // …then the gateway runs with the guard on.
    let mut options = stepped(&test, dir.path());
    options.webhook_allow_private = false;
    let kassa = Kassa::start(options).await;
    for bad in [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://10.0.0.8/x",
        "http://100.64.1.1/x",
        "http://[fd00::1]/x",
        "http://0.0.0.0/x",
        "ftp://example.com/x",
    ] {
        let refused = kassa.post(&key, "/webhooks", json!({"url": bad})).await;
        assert_eq!(refused.status, 422, "{bad}: {:?}", refused.json);
        assert!(
            refused.json["errors"]["url"].is_array(),
            "{bad}: {:?}",
            refused.json
        );
    }
    let moved = request(
        &kassa,
        Method::PATCH,
        &key,
        &format!("/webhooks/{endpoint_id}"),
        Some(json!({"url": "http://192.168.0.1/"})),
    )
    .await;
    assert_eq!(moved.status, 422, "{:?}", moved.json);

    // The endpoint made earlier resolves to loopback: refused at delivery, after resolution.
    // (The sandbox Kaspi's state, its cashier's session too, was saved when it stopped.)
    let id = invoice(&kassa, &key, 100).await;
    pay(&kassa, &key, id).await;
    kassa.step().await;
    let log = deliveries(&kassa, &key, endpoint_id).await;
    assert_eq!(log[0]["attempts"], 1, "{log:#?}");
    let error = log[0]["attempt_log"][0]["error"].as_str().expect("error");
    assert!(error.contains("internal address"), "{error}");
    // Every retry is refused the same way, until the schedule is spent.
    run_out_retries(&kassa).await;
    let log = deliveries(&kassa, &key, endpoint_id).await;
    assert_eq!(log[0]["status"], "failed", "{log:#?}");
    let attempts = log[0]["attempt_log"].as_array().expect("attempts");
    assert_eq!(
        attempts.len(),
        6,
        "the first and five retries: {attempts:#?}"
    );
    assert!(attempts.iter().all(|a| a["error"]
        .as_str()
        .is_some_and(|e| e.contains("internal address"))));
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the loopback receiver"
    );
    kassa.stop().await;
}

on_both_databases!(
    a_restart_between_payment_and_delivery_still_delivers,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = Kassa::start(stepped(&test, dir.path())).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
        let receiver = Receiver::start().await;
        receiver.set_default(Reply::status(503));
        create_endpoint(
            &kassa,
            &key,
            json!({"url": receiver.url("/hook"), "format": "xpayment"}),
        )
        .await;
        let id = invoice(&kassa, &key, 4200).await;
        pay(&kassa, &key, id).await;
        kassa.step().await;
        assert_eq!(receiver.requests().len(), 1);
        kassa.stop().await;

        // While Kassa is down the receiver comes back; the new process's clock starts at the
        // real now, and the retry comes due as it moves.
        receiver.set_default(Reply::status(200));
        let again = Kassa::start(stepped(&test, dir.path())).await;
        let delivered = again
            .advance_until(PAST_EVERY_RETRY, TICK, || async {
                receiver.requests().into_iter().find(|r| r.answered == 200)
            })
            .await
            .expect("the event arrives after the restart");
        assert_eq!(delivered.json()["event"], "payment.completed");
        let got = receiver.requests();
        assert_eq!(got.len(), 2, "one retry after the restart: {got:#?}");
        let ids: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
        assert_eq!(ids.len(), 1, "one delivery, retried across the restart");
        again.stop().await;
    }
);

on_both_databases!(
    the_simulator_sends_signed_test_events,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = Kassa::start(stepped(&test, dir.path())).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
        let receiver = Receiver::start().await;
        let failing = Receiver::start().await;
        failing.set_default(Reply::status(500));

        // No subscriptions yet: nothing to send.
        let empty = kassa
            .x(
                Method::POST,
                &key,
                "/webhook-simulate",
                Some(json!({"event": "payment.completed"})),
            )
            .await;
        assert_eq!(
            (empty.status, empty.json.clone()),
            (200, json!({"results": []}))
        );

        let x = create_endpoint(&kassa, &key, json!({"url": receiver.url("/x"), "format": "xpayment", "events": ["payment.refunded"]})).await;
        let bad = create_endpoint(
            &kassa,
            &key,
            json!({"url": failing.url("/x"), "format": "xpayment"}),
        )
        .await;
        create_endpoint(
            &kassa,
            &key,
            json!({"url": receiver.url("/apipay"), "format": "apipay"}),
        )
        .await;
        let secret = x["secret"].as_str().expect("secret").to_owned();
        let subscription = x["subscription_id"].as_str().expect("uuid").to_owned();

        let answer = kassa
            .x(
                Method::POST,
                &key,
                "/webhook-simulate",
                Some(json!({"event": "payment.refunded", "merchant_order_id": "order-9"})),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.json);
        let results = answer.json["results"].as_array().expect("results").clone();
        assert_eq!(
            results.len(),
            2,
            "both xpayment endpoints, not the apipay one: {results:?}"
        );
        let ok = results
            .iter()
            .find(|r| r["subscription_id"] == subscription.as_str())
            .expect("ours");
        assert_eq!(ok["success"], true);
        assert_eq!(ok["event"], "payment.refunded");
        assert_eq!(ok["url"], receiver.url("/x"));
        assert!(ok.get("error").is_none());
        let failed = results
            .iter()
            .find(|r| r["subscription_id"] == bad["subscription_id"])
            .expect("failing");
        assert_eq!(failed["success"], false);
        assert!(failed["error"].as_str().expect("error").contains("500"));

        let got = receiver.requests();
        assert_eq!(
            got.len(),
            1,
            "sent synchronously, to xpayment endpoints only"
        );
        let r = &got[0];
        assert_eq!(r.header("webhook-test"), "true");
        assert_eq!(
            r.header("x-xpayment-signature"),
            xpayment_signature(&secret, &r.body)
        );
        assert_eq!(
            r.header("webhook-signature"),
            standard_signature(&secret, r)
        );
        let body = r.json();
        assert_eq!(body["test"], true);
        assert_eq!(body["event"], "payment.refunded");
        assert_eq!(body["payment"]["merchant_order_id"], "order-9");
        assert_eq!(body["refund"]["status"], "completed");
        assert_eq!(body["delivery_id"], r.header("webhook-id"));
        // A test event is sent once, the failed one too: nothing retries it.
        run_out_retries(&kassa).await;
        assert_eq!(receiver.requests().len(), 1);
        assert_eq!(failing.requests().len(), 1);

        // One subscription by id; unknown ones are 404; `*` is not an event.
        let one = kassa
            .x(
                Method::POST,
                &key,
                "/webhook-simulate",
                Some(json!({"event": "payment.failed", "subscription_id": subscription})),
            )
            .await;
        assert_eq!(one.json["results"].as_array().expect("results").len(), 1);
        let unknown = kassa
            .x(
                Method::POST,
                &key,
                "/webhook-simulate",
                Some(json!({"event": "payment.failed", "subscription_id": "nope"})),
            )
            .await;
        assert_eq!(unknown.status, 404);
        assert_eq!(unknown.json["error"], "SUBSCRIPTION_NOT_FOUND");
        let star = kassa
            .x(
                Method::POST,
                &key,
                "/webhook-simulate",
                Some(json!({"event": "*"})),
            )
            .await;
        assert_eq!(star.status, 400);
        assert_eq!(star.json["error"], "VALIDATION_ERROR");

        // The subscriptions, without secrets.
        let subs = kassa
            .x(Method::GET, &key, "/webhook-simulate/subscriptions", None)
            .await;
        assert_eq!(subs.status, 200, "{:?}", subs.json);
        let list = subs.json["subscriptions"].as_array().expect("list");
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|s| s.get("secret").is_none()));
        assert!(!subs.json.to_string().contains("whsec_"));
        assert_eq!(list[0]["organization_id"], "demo");
        kassa.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_validated_updated_and_deleted() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kassa = Kassa::start(stepped(&test, dir.path())).await;
    let org = kassa.demo_org().await;
    let key = kassa.api_key(org).await;
    let receiver = Receiver::start().await;

    let missing = kassa.post(&key, "/webhooks", json!({})).await;
    assert_eq!(missing.status, 422);
    assert!(missing.json["errors"]["url"].is_array());
    let wrong = kassa
        .post(
            &key,
            "/webhooks",
            json!({"url": receiver.url("/"), "format": "apipay", "events": ["payment.completed"]}),
        )
        .await;
    assert_eq!(wrong.status, 422, "{:?}", wrong.json);
    assert!(wrong.json["errors"]["events"].is_array());
    let format = kassa
        .post(
            &key,
            "/webhooks",
            json!({"url": receiver.url("/"), "format": "soap"}),
        )
        .await;
    assert!(format.json["errors"]["format"].is_array());

    let made = create_endpoint(
        &kassa,
        &key,
        json!({"url": receiver.url("/a"), "events": ["invoice.refunded"]}),
    )
    .await;
    let id = made["id"].as_i64().expect("id");
    assert_eq!(made["format"], "apipay");
    assert_eq!(made["is_active"], true);
    // Only refunds were asked for: a payment sends nothing.
    let inv = invoice(&kassa, &key, 100).await;
    pay(&kassa, &key, inv).await;
    kassa.step().await;
    let left = kassa
        .store()
        .webhooks()
        .undispatched_events(10)
        .await
        .expect("read");
    assert!(left.is_empty(), "the payment's event is dispatched");
    assert!(receiver.requests().is_empty(), "to no one");

    let changed = request(
        &kassa,
        Method::PATCH,
        &key,
        &format!("/webhooks/{id}"),
        Some(json!({"url": receiver.url("/b"), "events": "*", "description": "main"})),
    )
    .await;
    assert_eq!(changed.status, 200, "{:?}", changed.json);
    assert_eq!(changed.json["url"], receiver.url("/b"));
    assert_eq!(changed.json["events"], json!(["*"]));
    assert_eq!(changed.json["description"], "main");
    // Switching format checks the events against it.
    let to_x = request(
        &kassa,
        Method::PUT,
        &key,
        &format!("/webhooks/{id}"),
        Some(json!({"format": "xpayment", "events": ["invoice.refunded"]})),
    )
    .await;
    assert_eq!(to_x.status, 422);

    let inv = invoice(&kassa, &key, 200).await;
    pay(&kassa, &key, inv).await;
    kassa.step().await;
    let got = receiver.requests();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].path, "/b");
    assert_eq!(got[0].json()["invoice"]["id"], inv);

    let gone = request(
        &kassa,
        Method::DELETE,
        &key,
        &format!("/webhooks/{id}"),
        None,
    )
    .await;
    assert_eq!(gone.status, 200);
    let after = kassa.get(&key, &format!("/webhooks/{id}")).await;
    assert_eq!(after.status, 404);
    let log = kassa.get(&key, &format!("/webhooks/{id}/deliveries")).await;
    assert_eq!(log.status, 404);
    kassa.stop().await;
}

// The dispatcher is woken by the commit of a status change in its own process, not found by
// its poll: with the poll (which finds other processes' events) an hour away, the payment's
// webhook still arrives, and the receiver is waited for far less than an hour. A gateway
// running its own loops, as in production: stepping would dispatch whether woken or not.
on_both_databases!(
    a_commit_wakes_the_dispatcher_of_its_process,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut options = Options::new(test.url(), dir.path());
        options.settings.webhook_poll = Duration::from_secs(3600);
        let kassa = Kassa::start(options).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
        let receiver = Receiver::start().await;
        create_endpoint(&kassa, &key, json!({"url": receiver.url("/hook")})).await;
        let id = invoice(&kassa, &key, 700).await;
        pay(&kassa, &key, id).await;
        let got = receiver.wait_for(1, Duration::from_secs(60)).await;
        let body = got[0].json();
        assert_eq!(body["event"], "invoice.status_changed", "{body:#}");
        assert_eq!(body["invoice"]["id"], id);
        assert_eq!(body["invoice"]["status"], "paid");
        kassa.stop().await;
        assert_eq!(receiver.requests().len(), 1, "one event, delivered once");
    }
);

// The one test on real time: two `kassa serve` processes and their own background loops (the
// dispatcher handing leased deliveries to the delivery loop, leases contended between
// processes), which stepping does not run. It waits for the requests with a bounded poll, and
// for "nothing more" by stopping both processes as a service manager does: they finish the
// attempts in hand, so a duplicate under way would still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_deliver_each_event_once() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimConfig::default());
    let base = kaspi_sim::spawn(sim.clone()).await.expect("simulator");
    let receiver = Receiver::start().await;
    let mut options = stepped(&test, dir.path());
    options.live_kaspi = Some(base.clone());
    let setup = Kassa::start(options).await;
    let org = connect(&setup, &sim, "shop", "7000000011").await;
    let key = setup.api_key(org).await;
    create_endpoint(&setup, &key, json!({"url": receiver.url("/apipay")})).await;
    create_endpoint(
        &setup,
        &key,
        json!({"url": receiver.url("/xpayment"), "format": "xpayment"}),
    )
    .await;
    setup.stop().await;

    let (a, addr_a) = common::serve_process(dir.path(), test.url(), &base).await;
    let dir_b = common::sibling_data_dir(dir.path());
    let (b, addr_b) = common::serve_process(dir_b.path(), test.url(), &base).await;
    let http = reqwest::Client::new();
    let mut ops = Vec::new();
    for i in 0..20 {
        let addr = if i % 2 == 0 { &addr_a } else { &addr_b };
        let answer = Answer::read(
            http.post(format!("http://{addr}/api/v1/invoices"))
                .header("X-API-Key", &key)
                .json(&json!({"amount": 100 + i, "phone_number": "87001234567"}))
                .send()
                .await
                .expect("sent"),
        )
        .await;
        assert_eq!(answer.status, 201, "{:?}", answer.json);
        let op: u64 = answer.json["kaspi_invoice_id"]
            .as_str()
            .expect("op")
            .parse()
            .expect("numeric");
        ops.push(op);
    }
    for op in &ops {
        sim.pay(*op).expect("pay");
    }
    receiver.wait_for(40, Duration::from_secs(60)).await;
    common::terminate(a).await;
    common::terminate(b).await;
    // Stopped, with every delivery delivered: nothing can arrive any more.
    let db = test.db();
    assert_eq!(
        common::count(&db, "SELECT COUNT(*) AS n FROM webhook_deliveries").await,
        40
    );
    assert_eq!(
        common::count(
            &db,
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'delivered'"
        )
        .await,
        40,
        "no retry left to make"
    );
    let got_all = receiver.requests();
    assert_eq!(
        got_all.len(),
        40,
        "no request beyond one per event and endpoint"
    );
    let ids: HashSet<&str> = got_all.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 40, "40 distinct deliveries");
    let mut invoices: Vec<i64> = got_all
        .iter()
        .filter(|r| r.path == "/apipay")
        .map(|r| r.json()["invoice"]["id"].as_i64().expect("id"))
        .collect();
    invoices.sort_unstable();
    invoices.dedup();
    assert_eq!(invoices.len(), 20, "each invoice's payment, once");
}
