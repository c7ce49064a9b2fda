//! The HTTP edge, over real sockets: NUL characters refused in every text input on both
//! surfaces and both databases, idempotency that compares the parsed request, and raw TCP
//! clients that stall (headers, bodies, idle keep-alive, slow requests), crowd the connection
//! cap or send a body too large.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{wait_for, Answer, Kassa, Options};
use kassa::config::ServeArgs;
use kassa::db::testing::TestDb;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The ApiPay answer must be 422 naming exactly `field`.
fn assert_apipay_nul(answer: &Answer, field: &str) {
    assert_eq!(answer.status, 422, "{field}: {:?}", answer.json);
    assert_eq!(answer.json["message"], "Validation failed");
    assert_eq!(
        answer.json["errors"],
        json!({field: [format!("The {field} field must not contain a NUL character (U+0000).")]}),
        "{field}"
    );
}

/// The xPayment answer must be 400 VALIDATION_ERROR naming `field`.
fn assert_xpayment_nul(answer: &Answer, field: &str) {
    assert_eq!(answer.status, 400, "{field}: {:?}", answer.json);
    assert_eq!(
        answer.json,
        json!({"error": "VALIDATION_ERROR",
               "message": format!("The {field} field must not contain a NUL character (U+0000).")}),
        "{field}"
    );
}

/// A raw GET with `X-API-Key`, the path sent exactly as written (`%00` and all).
async fn get_raw(kassa: &Kassa, key: &str, path_and_query: &str) -> Answer {
    let r = kassa
        .http
        .get(format!("http://{}{path_and_query}", kassa.addr))
        .header("X-API-Key", key)
        .bearer_auth(key)
        .send()
        .await
        .expect("sent");
    Answer::read(r).await
}

on_both_databases!(
    nul_characters_are_refused_everywhere,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let nul = "a\u{0}b";

        // ApiPay bodies: top-level fields and a nested one.
        let base = json!({"amount": 1000, "phone_number": "87001234567"});
        for (field, body) in [
            ("description", json!({"description": nul})),
            ("external_order_id", json!({"external_order_id": nul})),
            (
                "cart_items[0].Name",
                json!({"cart_items": [{"Name": nul, "Price": 1000, "Count": 1}]}),
            ),
        ] {
            let mut full = base.clone();
            full.as_object_mut()
                .expect("object")
                .extend(body.as_object().expect("object").clone());
            assert_apipay_nul(&kassa.post(&key, "/invoices", full).await, field);
        }
        // A query parameter, plain and as a list item.
        assert_apipay_nul(
            &get_raw(&kassa, &key, "/api/v1/invoices?search=a%00b").await,
            "search",
        );
        assert_apipay_nul(
            &get_raw(&kassa, &key, "/api/v1/invoices?status[]=paid%00").await,
            "status",
        );
        // Nothing was stored by any of them.
        let listed = kassa.get(&key, "/invoices").await;
        assert_eq!(listed.json["meta"]["total"], 0, "{:?}", listed.json);

        // A refund's reason, on a paid invoice: refused, nothing refunded.
        let made = kassa.post(&key, "/invoices", base.clone()).await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        let id = made.json["id"].as_i64().expect("id");
        let paid = kassa
            .post(&key, &format!("/sandbox/invoices/{id}/pay"), json!({}))
            .await;
        assert_eq!(paid.status, 200, "{:?}", paid.json);
        let refund = kassa
            .post(
                &key,
                &format!("/invoices/{id}/refund"),
                json!({"amount": 100, "reason": nul}),
            )
            .await;
        assert_apipay_nul(&refund, "reason");
        let refunds = kassa.get(&key, &format!("/invoices/{id}/refunds")).await;
        assert_eq!(refunds.status, 200, "{:?}", refunds.json);
        assert_eq!(refunds.json["data"], json!([]), "{:?}", refunds.json);

        // Webhook endpoint fields.
        let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["invoice.paid"]});
        for (field, extra) in [
            ("url", json!({"url": "http://127.0.0.1:9/ho\u{0}ok"})),
            ("description", json!({"description": nul})),
            ("events[0]", json!({"events": [nul]})),
        ] {
            let mut full = hook.clone();
            full.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            assert_apipay_nul(&kassa.post(&key, "/webhooks", full).await, field);
        }
        let hooks = kassa.get(&key, "/webhooks").await;
        assert_eq!(hooks.json["data"], json!([]), "{:?}", hooks.json);

        // xPayment bodies: comment, merchant_order_id, metadata values at any depth and keys.
        let pay = json!({"payer_phone": "87001234567", "amount": 15});
        for (field, extra) in [
            ("comment", json!({"comment": nul})),
            ("merchant_order_id", json!({"merchant_order_id": nul})),
            ("metadata.note", json!({"metadata": {"note": nul}})),
            (
                "metadata.cart[1].sku",
                json!({"metadata": {"cart": [{"sku": "ok"}, {"sku": nul}]}}),
            ),
            ("metadata", json!({"metadata": {"k\u{0}ey": "v"}})),
        ] {
            let mut full = pay.clone();
            full.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            let answer = kassa.x(Method::POST, &key, "/payments", Some(full)).await;
            assert_xpayment_nul(&answer, field);
        }
        let link = kassa
            .x(
                Method::POST,
                &key,
                "/payments/link",
                Some(json!({"amount": 15, "comment": nul})),
            )
            .await;
        assert_xpayment_nul(&link, "comment");
        // Path and query parameters, at `/v1` and at the root.
        for path in ["/v1/static-qr-payments/or%00der", "/static-qr-payments/%00"] {
            assert_xpayment_nul(&get_raw(&kassa, &key, path).await, "order_number");
        }
        assert_xpayment_nul(
            &get_raw(&kassa, &key, "/v1/payments/x%00y").await,
            "payment_id",
        );
        assert_xpayment_nul(
            &get_raw(&kassa, &key, "/v1/payments?status=pend%00ing").await,
            "status",
        );
        // Only the one invoice made above exists.
        let listed = kassa.get(&key, "/invoices").await;
        assert_eq!(listed.json["meta"]["total"], 1, "{:?}", listed.json);
        // Text without a NUL still works, `\\u0000` spelled out included.
        let fine = kassa
            .x(
                Method::POST,
                &key,
                "/payments",
                Some(json!({"payer_phone": "87001234567", "amount": 15,
                        "comment": "\\u0000 is fine", "metadata": {"note": "ok"}})),
            )
            .await;
        assert_eq!(fine.status, 201, "{:?}", fine.json);
        assert_eq!(fine.json["metadata"], json!({"note": "ok"}));
    }
);

/// POSTs `body` as raw text to `/api/v1/invoices` with an idempotency key.
async fn post_text(kassa: &Kassa, key: &str, idem: &str, body: &str) -> Answer {
    let r = kassa
        .http
        .post(kassa.url("/invoices"))
        .header("X-API-Key", key)
        .header("Idempotency-Key", idem)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("sent");
    Answer::read(r).await
}

on_both_databases!(
    a_request_running_elsewhere_answers_409_with_retry_after,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let key_id = kassa.key_id(&key).await;
        // The same request, begun by another process that still holds its lease.
        let body = r#"{"amount":1000,"phone_number":"87001234567"}"#;
        let hash = kassa::api::idempotency::request_hash(
            &axum::http::Method::POST,
            "/api/v1/invoices",
            body.as_bytes(),
        );
        let now = kassa.store().now_ms();
        let begun = kassa
            .store()
            .orgs()
            .idempotency_begin(key_id, "busy-1", &hash, now, 3_600_000)
            .await
            .expect("begin");
        assert_eq!(begun, kassa::store::Begin::New);
        let answer = post_text(&kassa, &key, "busy-1", body).await;
        assert_eq!(answer.status, 409, "{:?}", answer.json);
        assert_eq!(answer.json["error"], "idempotency_key_in_use");
        assert_eq!(answer.header("retry-after"), Some("1"));
        kassa.stop().await;
    }
);

on_both_databases!(
    a_record_kept_before_parsed_comparison_still_replays,
    |test: TestDb| async move {
        use sha2::{Digest as _, Sha256};
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let key_id = kassa.key_id(&key).await;
        // A record an older Kassa kept: the hash of the body's bytes, not of its parsed form.
        let body = r#"{"phone_number":"87001234567","amount":1000}"#;
        let mut hasher = Sha256::new();
        hasher.update(format!("POST\n/api/v1/invoices\n{body}").as_bytes());
        let old_hash = hex::encode(hasher.finalize());
        let store = kassa.store();
        let now = kassa.store().now_ms();
        let begun = store
            .orgs()
            .idempotency_begin(key_id, "old-1", &old_hash, now, 3_600_000)
            .await
            .expect("begin");
        assert_eq!(begun, kassa::store::Begin::New);
        store
            .orgs()
            .idempotency_finish(key_id, "old-1", 201, br#"{"id":424242}"#)
            .await
            .expect("finish");
        // The same bytes again replay it; another body is still another request.
        let again = post_text(&kassa, &key, "old-1", body).await;
        assert_eq!(again.status, 201, "{:?}", again.json);
        assert_eq!(again.json["id"], 424242);
        assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
        let other = post_text(
            &kassa,
            &key,
            "old-1",
            r#"{"phone_number":"87001234567","amount":1001}"#,
        )
        .await;
        assert_eq!(other.status, 422, "{:?}", other.json);
        kassa.stop().await;
    }
);

on_both_databases!(
    idempotency_compares_the_parsed_body,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;

        let first = post_text(
        &kassa,
        &key,
        "order-1",
        r#"{"amount":1000,"phone_number":"87001234567","description":"Tea","external_order_id":"o-1"}"#,
    )
    .await;
        assert_eq!(first.status, 201, "{:?}", first.json);
        assert!(first.header("Idempotent-Replayed").is_none());
        // Keys in another order and other whitespace: the same request.
        let reordered = post_text(
        &kassa,
        &key,
        "order-1",
        "{\n  \"external_order_id\" : \"o-1\",\n  \"phone_number\": \"87001234567\",\t\"amount\": 1000, \"description\":\"Tea\"\n}",
    )
    .await;
        assert_eq!(reordered.status, 201, "{:?}", reordered.json);
        assert_eq!(reordered.json["id"], first.json["id"]);
        assert_eq!(reordered.header("Idempotent-Replayed"), Some("true"));
        // Another value is another request, and so is one more field.
        for other in [
            r#"{"amount":1001,"phone_number":"87001234567","description":"Tea","external_order_id":"o-1"}"#,
            r#"{"amount":1000,"phone_number":"87001234567","description":"Tea","external_order_id":"o-1","x":1}"#,
        ] {
            let answer = post_text(&kassa, &key, "order-1", other).await;
            assert_eq!(answer.status, 422, "{other}: {:?}", answer.json);
            assert!(answer.json["errors"]["idempotency_key"].is_array());
        }
        // Nested keys too (xPayment's metadata).
        let mut ids = Vec::new();
        for body in [
            r#"{"payer_phone":"87001234567","amount":15,"metadata":{"a":1,"b":{"c":[1,{"d":2,"e":3}]}}}"#,
            r#"{"metadata":{"b":{"c":[1,{"e":3,"d":2}]},"a":1},"amount":15,"payer_phone":"87001234567"}"#,
        ] {
            let r = kassa
                .http
                .post(format!("http://{}/v1/payments", kassa.addr))
                .bearer_auth(&key)
                .header("X-Idempotency-Key", "pay-1")
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .expect("sent");
            let answer = Answer::read(r).await;
            assert_eq!(answer.status, 201, "{:?}", answer.json);
            ids.push(answer.json["payment_id"].clone());
        }
        assert_eq!(ids[0], ids[1]);
        let listed = kassa.get(&key, "/invoices").await;
        assert_eq!(listed.json["meta"]["total"], 2, "{:?}", listed.json);

        // A body that is not JSON is compared by its bytes.
        let broken = post_text(&kassa, &key, "broken", r#"{"amount": 1000,"#).await;
        assert_eq!(broken.status, 422, "{:?}", broken.json);
        let again = post_text(&kassa, &key, "broken", r#"{"amount": 1000,"#).await;
        assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
        let spaced = post_text(&kassa, &key, "broken", r#"{"amount":  1000,"#).await;
        assert_eq!(spaced.status, 422);
        assert!(spaced.header("Idempotent-Replayed").is_none());
        assert!(spaced.json["errors"]["idempotency_key"].is_array());
    }
);

/// Short limits, so that stalls end within a test.
fn short_limits(serve: &mut ServeArgs) {
    serve.http_header_timeout = Some("300ms".into());
    serve.http_body_timeout = Some("300ms".into());
    serve.http_idle_timeout = Some("3s".into());
    serve.http_request_timeout = Some("2s".into());
    serve.http_max_connections = Some(3);
}

/// A gateway on SQLite with [`short_limits`], in live mode against no Kaspi at all, so that
/// nothing but the test's own clients uses its listener; an API key of a new organization.
async fn edge_kassa(test: &TestDb, dir: &std::path::Path) -> (Kassa, String) {
    let mut options = Options::new(test.url(), dir).stepped();
    options.live_kaspi = Some("http://127.0.0.1:9".into());
    options.more_serve_args = Some(short_limits);
    let kassa = Kassa::start(options).await;
    let org = kassa
        .store()
        .orgs()
        .create_org("edge", "Edge")
        .await
        .expect("org");
    let key = kassa.api_key(org.id).await;
    (kassa, key)
}

/// An answer read off a raw socket.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    head: String,
    json: Value,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    }
}

/// Reads one answer with a `Content-Length` body (within 10 s).
async fn read_answer(stream: &mut TcpStream) -> RawAnswer {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "closed before an answer: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status = head[9..12].parse().expect("status");
        let mut answer = RawAnswer {
            status,
            head,
            json: Value::Null,
        };
        let length: usize = answer
            .header("content-length")
            .expect("content-length")
            .parse()
            .expect("length");
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "closed mid-answer");
            buf.extend_from_slice(&chunk[..n]);
        }
        answer.json = serde_json::from_slice(&buf[head_end..head_end + length]).expect("JSON");
        answer
    })
    .await
    .expect("an answer within 10 s")
}

/// Waits (at most 10 s) until the server closes `stream`; how long that took. Whatever else
/// arrives first is returned too.
async fn closed_after(stream: &mut TcpStream) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection within 10 s");
    (start.elapsed(), got)
}

fn status_request() -> &'static [u8] {
    b"GET /api/v1/status HTTP/1.1\r\nHost: kassa\r\n\r\n"
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, key) = edge_kassa(&test, dir.path()).await;

    // Keep-alive reuse: three requests on one connection, then it is idle until the idle
    // timeout (3 s) closes it, not the header timeout (300 ms).
    let mut kept = connect(kassa.addr).await;
    for _ in 0..3 {
        kept.write_all(status_request()).await.expect("write");
        let answer = read_answer(&mut kept).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.json["status"], "ok");
    }
    let (idle, _) = closed_after(&mut kept).await;
    assert!(idle >= Duration::from_millis(2800), "closed after {idle:?}");

    // A connection that sends nothing, and one that sends half its headers: closed after the
    // header timeout, well before the idle timeout.
    let mut silent = connect(kassa.addr).await;
    let mut half = connect(kassa.addr).await;
    half.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: kassa\r\n")
        .await
        .expect("write");
    for stream in [&mut silent, &mut half] {
        let (after, got) = closed_after(stream).await;
        assert!(
            after < Duration::from_millis(2500),
            "closed after {after:?}"
        );
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
            "{got:?}"
        );
    }
    // So is a later request whose headers stall on a kept-alive connection.
    let mut later = connect(kassa.addr).await;
    later.write_all(status_request()).await.expect("write");
    assert_eq!(read_answer(&mut later).await.status, 200);
    later.write_all(b"GET /api/v1/st").await.expect("write");
    let (after, _) = closed_after(&mut later).await;
    assert!(
        after < Duration::from_millis(2500),
        "closed after {after:?}"
    );

    // A body shorter than its Content-Length: 408 once it pauses past the body timeout, and
    // the connection is closed.
    let mut short = connect(kassa.addr).await;
    let head = format!(
        "POST /api/v1/invoices HTTP/1.1\r\nHost: kassa\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"amount\": 10"
    );
    short.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let answer = read_answer(&mut short).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.json["error"], "request_timeout");
    assert_eq!(answer.header("connection").as_deref(), Some("close"));
    assert!(started.elapsed() < Duration::from_millis(1800));
    closed_after(&mut short).await;

    // A body that trickles in, each pause shorter than the body timeout: the whole request is
    // cut at the request timeout (2 s) with xPayment's 408.
    let mut slow = connect(kassa.addr).await;
    let head = format!(
        "POST /v1/payments HTTP/1.1\r\nHost: kassa\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..400 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Read until the server closes: the answer comes first.
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut elapsed = None;
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(n) = reader.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            elapsed.get_or_insert_with(|| started.elapsed());
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("answered and closed within 10 s");
    let elapsed = elapsed.expect("an answer");
    trickle.abort();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("content-length: "), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains("\"error\":\"REQUEST_TIMEOUT\""), "{text}");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(6),
        "answered after {elapsed:?}"
    );
    kassa.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, _key) = edge_kassa(&test, dir.path()).await;

    // Three connections (the cap), each served.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(kassa.addr).await;
        stream.write_all(status_request()).await.expect("write");
        assert_eq!(read_answer(&mut stream).await.status, 200);
        held.push(stream);
    }
    // A fourth is closed at once, without an answer.
    let mut over = connect(kassa.addr).await;
    let (after, got) = closed_after(&mut over).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(after < Duration::from_secs(1), "closed after {after:?}");
    // The three still work.
    for stream in &mut held {
        stream.write_all(status_request()).await.expect("write");
        assert_eq!(read_answer(stream).await.status, 200);
    }
    // Once one goes, a new connection is served. When the server sees the socket close is up
    // to the operating system and its connection task, so a bounded wait (real sockets).
    drop(held.pop());
    let served = wait_for(Duration::from_secs(5), || async {
        let mut stream = connect(kassa.addr).await;
        stream.write_all(status_request()).await.ok()?;
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).await.ok()?;
        Some(first)
    })
    .await;
    assert_eq!(served.as_ref().map(|f| &f[..]), Some(&b"HTTP/1.1 200"[..]));
    kassa.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_a_large_body_reads_the_413() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, key) = edge_kassa(&test, dir.path()).await;
    // Larger than the socket buffers, so that writing it needs the server to read it.
    let size = 16 * 1024 * 1024;
    let body = format!("{{\"description\":\"{}\"}}", "x".repeat(size));

    for (head, error) in [
        (
            format!("POST /api/v1/invoices HTTP/1.1\r\nHost: kassa\r\nX-API-Key: {key}\r\n"),
            "payload_too_large",
        ),
        (
            format!("POST /v1/payments HTTP/1.1\r\nHost: kassa\r\nAuthorization: Bearer {key}\r\nIdempotency-Key: big-1\r\n"),
            "VALIDATION_ERROR",
        ),
    ] {
        let mut stream = connect(kassa.addr).await;
        let request = format!(
            "{head}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        // The whole body is written before anything is read, as simple clients do.
        tokio::time::timeout(Duration::from_secs(10), stream.write_all(request.as_bytes()))
            .await
            .expect("the body is taken in time")
            .expect("the body is taken, not refused by a reset");
        let answer = read_answer(&mut stream).await;
        assert_eq!(answer.status, 413, "{answer:?}");
        assert_eq!(answer.json["error"], error);
        assert_eq!(
            answer.json["message"],
            "The request body must not be larger than 65536 bytes."
        );
        assert_eq!(answer.header("connection").as_deref(), Some("close"));
        let (_, rest) = closed_after(&mut stream).await;
        assert!(rest.is_empty());
    }
    // Any answer given before the body is read, such as a 401, can be read the same way.
    let mut stream = connect(kassa.addr).await;
    let request = format!(
        "POST /api/v1/invoices HTTP/1.1\r\nHost: kassa\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.write_all(request.as_bytes()),
    )
    .await
    .expect("the body is taken in time")
    .expect("the body is taken, not refused by a reset");
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(answer.json, json!({"message": "Invalid API key"}));
    kassa.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_request_in_flight() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, key) = edge_kassa(&test, dir.path()).await;
    let addr = kassa.addr;

    let body = r#"{"amount": -1, "phone_number": "87001234567"}"#;
    let (first, rest) = body.split_at(10);
    let mut stream = connect(addr).await;
    let head = format!(
        "POST /api/v1/invoices HTTP/1.1\r\nHost: kassa\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // An idle connection beside it is closed by the shutdown.
    let mut idle = connect(addr).await;
    idle.write_all(status_request()).await.expect("write");
    assert_eq!(read_answer(&mut idle).await.status, 200);

    let stopping = tokio::spawn(kassa.stop());
    // The listener goes away: new connections are refused (a bounded wait: the shutdown runs
    // in the server's own task, on real sockets).
    let refused = wait_for(Duration::from_secs(5), || async {
        TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    assert!(refused.is_some(), "the listener still accepts");
    let (_, got) = closed_after(&mut idle).await;
    assert!(got.is_empty(), "{got:?}");
    // The request in flight is still read and answered, then its connection closes.
    stream.write_all(rest.as_bytes()).await.expect("write");
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 422, "{answer:?}");
    assert!(answer.json["errors"]["amount"].is_array(), "{answer:?}");
    closed_after(&mut stream).await;
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stopped in time")
        .expect("joined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
    let ask = |path: &'static str, id: Option<String>| {
        let (http, url, key) = (
            kassa.http.clone(),
            format!("http://{}{path}", kassa.addr),
            key.clone(),
        );
        async move {
            let mut request = http
                .get(url)
                .header("X-API-Key", &key)
                .header("Authorization", format!("Bearer {key}"));
            if let Some(id) = id {
                request = request.header("X-Request-Id", id);
            }
            let answer = request.send().await.expect("sent");
            let id = answer
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().expect("ascii").to_owned());
            (answer.status().as_u16(), id)
        }
    };
    for path in ["/api/v1/invoices", "/v1/payments", "/api/v1/nowhere"] {
        // None sent: a new one, a UUID.
        let (status, id) = ask(path, None).await;
        assert_ne!(status, 500, "{path}");
        let id = id.unwrap_or_else(|| panic!("{path}: no request id"));
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id}");
        // The client's own: kept.
        let (_, same) = ask(path, Some("order-42.try-1".into())).await;
        assert_eq!(same.as_deref(), Some("order-42.try-1"), "{path}");
        // Unusable (too long for a log line): replaced.
        let long = "x".repeat(65);
        let (_, replaced) = ask(path, Some(long.clone())).await;
        let replaced = replaced.unwrap_or_else(|| panic!("{path}: no request id"));
        assert_ne!(replaced, long);
        assert!(
            uuid::Uuid::parse_str(&replaced).is_ok(),
            "{path}: {replaced}"
        );
    }
    kassa.stop().await;
}
