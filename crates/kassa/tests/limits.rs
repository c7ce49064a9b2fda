//! Idempotency keys and the per-key rate limit, over HTTP.

mod common;

use std::time::Duration;

use common::{Answer, Kassa, Options};
use kassa::db::testing::TestDb;
use serde_json::json;

async fn post_with_key(
    kassa: &Kassa,
    api_key: &str,
    header: &str,
    idem: &str,
    body: serde_json::Value,
) -> Answer {
    let r = kassa
        .http
        .post(kassa.url("/invoices"))
        .header("X-API-Key", api_key)
        .header(header, idem)
        .json(&body)
        .send()
        .await
        .expect("sent");
    Answer::read(r).await
}

on_both_databases!(
    idempotency_keys_replay_refuse_and_serialise,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let body = json!({"amount": 1000, "phone_number": "87001234567"});

        let first = post_with_key(&kassa, &key, "Idempotency-Key", "order-1", body.clone()).await;
        assert_eq!(first.status, 201, "{:?}", first.json);
        let replay = post_with_key(&kassa, &key, "Idempotency-Key", "order-1", body.clone()).await;
        assert_eq!(replay.status, 201);
        assert_eq!(replay.json, first.json, "the first answer, again");
        assert_eq!(replay.header("Idempotent-Replayed"), Some("true"));
        // X-Idempotency-Key is the same key space.
        let replay_x =
            post_with_key(&kassa, &key, "X-Idempotency-Key", "order-1", body.clone()).await;
        assert_eq!(replay_x.json["id"], first.json["id"]);

        let other_body = json!({"amount": 2000, "phone_number": "87001234567"});
        let mismatch = post_with_key(&kassa, &key, "Idempotency-Key", "order-1", other_body).await;
        assert_eq!(mismatch.status, 422, "{:?}", mismatch.json);
        assert!(mismatch.json["errors"]["idempotency_key"].is_array());

        // A validation error is an answer too: replayed, not re-run.
        let bad = json!({"amount": -1, "phone_number": "87001234567"});
        let invalid = post_with_key(&kassa, &key, "Idempotency-Key", "bad-1", bad.clone()).await;
        assert_eq!(invalid.status, 422);
        let invalid_again = post_with_key(&kassa, &key, "Idempotency-Key", "bad-1", bad).await;
        assert_eq!(invalid_again.status, 422);

        // Keys are scoped to the API key: another key may use the same one.
        let second_key = kassa.api_key(org).await;
        let separate = post_with_key(
            &kassa,
            &second_key,
            "Idempotency-Key",
            "order-1",
            body.clone(),
        )
        .await;
        assert_eq!(separate.status, 201);
        assert_ne!(separate.json["id"], first.json["id"]);

        // Two at once with one key: one invoice, the other request is refused while the first
        // runs (409) or replays it.
        let a = post_with_key(&kassa, &key, "Idempotency-Key", "race-1", body.clone());
        let b = post_with_key(&kassa, &key, "Idempotency-Key", "race-1", body.clone());
        let (a, b) = tokio::join!(a, b);
        let statuses = [a.status, b.status];
        assert!(statuses.contains(&201), "{statuses:?}");
        for answer in [&a, &b] {
            match answer.status {
                201 => {}
                409 => assert!(answer.json["error"].is_string(), "{:?}", answer.json),
                other => panic!("unexpected {other}: {:?}", answer.json),
            }
        }
        if a.status == 201 && b.status == 201 {
            assert_eq!(a.json["id"], b.json["id"], "a replay, not a second invoice");
        }
        let list = kassa.get(&key, "/invoices").await;
        assert_eq!(
            list.json["meta"]["total"], 3,
            "order-1, order-1 of the second key, race-1"
        );
        kassa.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_counts_per_key_and_says_when_to_retry() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = Options::new(test.url(), dir.path());
    options.rate_limit_per_minute = 5;
    // The limit counts per minute of the clock: the gateway stands at the start of one.
    options.clock = Some(common::clock_at_minute_start());
    let kassa = Kassa::start(options).await;
    let org = kassa.demo_org().await;
    let key = kassa.api_key(org).await;
    let other = kassa.api_key(org).await;

    for expected_remaining in (0..5).rev() {
        let ok = kassa.get(&key, "/invoices").await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("X-RateLimit-Limit"), Some("5"));
        assert_eq!(
            ok.header("X-RateLimit-Remaining"),
            Some(expected_remaining.to_string().as_str())
        );
    }
    let limited = kassa.get(&key, "/invoices").await;
    assert_eq!(limited.status, 429);
    let retry_after: u64 = limited
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after));
    assert_eq!(limited.header("X-RateLimit-Remaining"), Some("0"));
    assert!(limited.json["message"].is_string());
    // Retried when it says: admitted again.
    kassa.advance(Duration::from_secs(retry_after)).await;
    assert_eq!(kassa.get(&key, "/invoices").await.status, 200);
    // Another key has its own budget; /status has none.
    assert_eq!(kassa.get(&other, "/invoices").await.status, 200);
    let status = kassa
        .http
        .get(kassa.url("/status"))
        .send()
        .await
        .expect("sent");
    assert_eq!(status.status(), 200);
    kassa.stop().await;
}
