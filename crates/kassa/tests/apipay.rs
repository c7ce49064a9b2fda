//! The ApiPay-compatible API over HTTP, on a gateway started as `kassa serve` starts it, with
//! the sandbox Kaspi on its own listener: each endpoint with good and bad input, auth,
//! isolation between organizations, the poller, cancel, stats, sandbox helpers.

mod common;

use common::{Kassa, Options};
use kassa::db::testing::TestDb;
use serde_json::{json, Value};

async fn sandbox(test: &TestDb, dir: &tempfile::TempDir) -> Kassa {
    Kassa::start(Options::new(test.url(), dir.path()).stepped()).await
}

on_both_databases!(
    invoice_is_created_paid_listed_and_counted,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = sandbox(&test, &dir).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;

        let created = kassa
        .post(
            &key,
            "/invoices",
            json!({"amount": 10000, "phone_number": "87001234567", "description": "Order #1", "external_order_id": "order_1"}),
        )
        .await;
        assert_eq!(created.status, 201, "{:?}", created.json);
        let body = &created.json;
        assert_eq!(body["amount"], "10000.00");
        assert_eq!(body["status"], "pending");
        assert_eq!(body["phone_number"], "87001234567");
        assert_eq!(body["description"], "Order #1");
        assert_eq!(body["external_order_id"], "order_1");
        assert_eq!(body["is_sandbox"], true);
        assert!(body["kaspi_invoice_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()));
        assert!(body["created_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z')));
        let id = body["id"].as_i64().expect("integer id");

        let got = kassa.get(&key, &format!("/invoices/{id}")).await;
        assert_eq!(got.status, 200);
        for field in [
            "id",
            "amount",
            "phone_number",
            "description",
            "external_order_id",
            "status",
            "client_name",
            "is_sandbox",
            "total_refunded",
            "is_fully_refunded",
            "kaspi_invoice_id",
            "paid_at",
            "expires_at",
            "created_at",
        ] {
            assert!(
                got.json.get(field).is_some(),
                "GET /invoices/{{id}} has {field}"
            );
        }
        assert_eq!(got.json["total_refunded"], "0.00");
        assert_eq!(got.json["is_fully_refunded"], false);
        assert_eq!(got.json["paid_at"], Value::Null);

        let paid = kassa
            .post(&key, &format!("/sandbox/invoices/{id}/pay"), json!({}))
            .await;
        assert_eq!(paid.status, 200, "{:?}", paid.json);
        assert_eq!(paid.json["status"], "paid");
        assert!(paid.json["paid_at"].as_str().is_some());
        assert!(paid.json["client_name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()));
        // Recorded once, with its time.
        let events = kassa.invoice_events(org, id).await;
        assert_eq!(events.len(), 1, "{events:?}");

        // A second, smaller one, still pending.
        let second = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": "250.50", "phone_number": "87007654321"}),
            )
            .await;
        assert_eq!(second.status, 201);
        assert_eq!(second.json["amount"], "250.50");

        let list = kassa
            .get(&key, "/invoices?per_page=1&sort_by=amount&sort_order=asc")
            .await;
        assert_eq!(list.status, 200);
        assert_eq!(list.json["meta"]["total"], 2);
        assert_eq!(list.json["meta"]["last_page"], 2);
        assert_eq!(list.json["meta"]["per_page"], 1);
        assert_eq!(list.json["meta"]["current_page"], 1);
        assert_eq!(list.json["data"][0]["amount"], "250.50");
        let paid_only = kassa.get(&key, "/invoices?status[]=paid").await;
        assert_eq!(paid_only.json["meta"]["total"], 1);
        assert_eq!(paid_only.json["data"][0]["id"], id);
        let searched = kassa.get(&key, "/invoices?search=order_1").await;
        assert_eq!(searched.json["meta"]["total"], 1);
        let by_phone = kassa.get(&key, "/invoices?search=7654321").await;
        assert_eq!(by_phone.json["meta"]["total"], 1);
        let today = kassa
            .state
            .clock
            .now()
            .to_offset(time::UtcOffset::from_hms(5, 0, 0).expect("offset"))
            .date();
        let day = format!(
            "{:04}-{:02}-{:02}",
            today.year(),
            u8::from(today.month()),
            today.day()
        );
        let dated = kassa
            .get(&key, &format!("/invoices?date_from={day}&date_to={day}"))
            .await;
        assert_eq!(dated.json["meta"]["total"], 2);
        let old = kassa
            .get(&key, "/invoices?date_from=2020-01-01&date_to=2020-01-02")
            .await;
        assert_eq!(old.json["meta"]["total"], 0);

        let stats = kassa.get(&key, "/invoices/stats?period=today").await;
        assert_eq!(stats.status, 200, "{:?}", stats.json);
        assert_eq!(stats.json["total_count"], 2);
        assert_eq!(stats.json["paid_count"], 1);
        assert_eq!(stats.json["paid_amount"], "10000.00");
        assert_eq!(stats.json["total_amount"], "10250.50");
        assert_eq!(stats.json["conversion_rate"], 50.0);
        assert_eq!(stats.json["by_status"]["pending"]["count"], 1);
        assert_eq!(stats.json["period"]["start"], day.as_str());
        let ranged = kassa
            .get(
                &key,
                &format!("/invoices/stats?start_date=2020-01-01&end_date={day}"),
            )
            .await;
        assert_eq!(ranged.json["total_count"], 2);
        kassa.stop().await;
    }
);

on_both_databases!(
    bad_input_is_answered_in_apipay_format_and_nothing_is_stored,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = sandbox(&test, &dir).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;

        let cases: Vec<(Value, &str)> = vec![
            (json!({"amount": 100}), "phone_number"),
            (
                json!({"amount": 100, "phone_number": "+77001234567"}),
                "phone_number",
            ),
            (
                json!({"amount": 100, "phone_number": 87001234567u64}),
                "phone_number",
            ),
            (json!({"phone_number": "87001234567"}), "amount"),
            (
                json!({"amount": 0, "phone_number": "87001234567"}),
                "amount",
            ),
            (
                json!({"amount": 0.001, "phone_number": "87001234567"}),
                "amount",
            ),
            (
                json!({"amount": 100000000, "phone_number": "87001234567"}),
                "amount",
            ),
            (
                json!({"amount": true, "phone_number": "87001234567"}),
                "amount",
            ),
            (
                json!({"amount": "ten", "phone_number": "87001234567"}),
                "amount",
            ),
            (
                json!({"amount": 100, "phone_number": "87001234567", "description": "x".repeat(501)}),
                "description",
            ),
            (
                json!({"amount": 100, "phone_number": "87001234567", "external_order_id": "x".repeat(256)}),
                "external_order_id",
            ),
            (
                json!({"amount": 100, "phone_number": "87001234567", "description": 5}),
                "description",
            ),
            (
                json!({"phone_number": "87001234567", "cart_items": []}),
                "cart_items",
            ),
            (
                json!({"amount": 100, "phone_number": "87005550000"}),
                "phone_number",
            ),
            (json!([1, 2]), "body"),
        ];
        for (body, field) in cases {
            let answer = kassa.post(&key, "/invoices", body.clone()).await;
            assert_eq!(answer.status, 422, "{body}: {:?}", answer.json);
            assert!(answer.json["message"].is_string(), "{:?}", answer.json);
            assert!(
                answer.json["errors"][field]
                    .as_array()
                    .is_some_and(|m| !m.is_empty()),
                "{body} names {field}: {:?}",
                answer.json
            );
        }

        // Malformed JSON, a wrong content type, a body over the limit.
        let raw = |body: &'static str, content_type: &'static str| {
            kassa
                .http
                .post(kassa.url("/invoices"))
                .header("X-API-Key", &key)
                .header("Content-Type", content_type)
                .body(body)
                .send()
        };
        let malformed = common::Answer::read(
            raw("{\"amount\": 1", "application/json")
                .await
                .expect("sent"),
        )
        .await;
        assert_eq!(malformed.status, 422);
        assert!(
            malformed.json["errors"]["body"].is_array(),
            "{:?}",
            malformed.json
        );
        let text = common::Answer::read(raw("amount=1", "text/plain").await.expect("sent")).await;
        assert_eq!(text.status, 422);
        let huge = format!(
            "{{\"amount\": 100, \"phone_number\": \"87001234567\", \"description\": \"{}\"}}",
            "x".repeat(200_000)
        );
        // Its own connection: the server answers before reading the body, then closes it.
        let too_big = reqwest::Client::new()
            .post(kassa.url("/invoices"))
            .header("X-API-Key", &key)
            .header("Content-Type", "application/json")
            .body(huge)
            .send()
            .await
            .expect("sent");
        let too_big = common::Answer::read(too_big).await;
        assert_eq!(too_big.status, 413);
        assert!(too_big.json["message"].is_string());

        // Bad queries and ids.
        let bad_page = kassa.get(&key, "/invoices?per_page=101").await;
        assert_eq!(bad_page.status, 422);
        assert!(bad_page.json["errors"]["per_page"].is_array());
        let bad_status = kassa.get(&key, "/invoices?status[]=lost").await;
        assert!(
            bad_status.json["errors"]["status"].is_array(),
            "{:?}",
            bad_status.json
        );
        let bad_sort = kassa.get(&key, "/invoices?sort_by=phone").await;
        assert!(bad_sort.json["errors"]["sort_by"].is_array());
        let bad_dates = kassa
            .get(&key, "/invoices?date_from=2024-02-02&date_to=2024-02-01")
            .await;
        assert!(bad_dates.json["errors"]["date_to"].is_array());
        let bad_date = kassa.get(&key, "/invoices?date_from=yesterday").await;
        assert!(bad_date.json["errors"]["date_from"].is_array());
        let no_period = kassa.get(&key, "/invoices/stats").await;
        assert_eq!(no_period.status, 422);
        assert!(no_period.json["errors"]["period"].is_array());
        let bad_period = kassa.get(&key, "/invoices/stats?period=decade").await;
        assert!(bad_period.json["errors"]["period"].is_array());
        let half_range = kassa
            .get(&key, "/invoices/stats?start_date=2024-01-01")
            .await;
        assert!(half_range.json["errors"]["end_date"].is_array());
        for path in [
            "/invoices/999999",
            "/invoices/abc",
            "/invoices/-1",
            "/nothing/here",
        ] {
            let missing = kassa.get(&key, path).await;
            assert_eq!(missing.status, 404, "{path}");
            assert!(missing.json["message"].is_string());
        }
        let cancel_missing = kassa.post(&key, "/invoices/999999/cancel", json!({})).await;
        assert_eq!(cancel_missing.status, 404);

        // None of it stored anything.
        let list = kassa.get(&key, "/invoices").await;
        assert_eq!(list.json["meta"]["total"], 0, "{:?}", list.json);
        kassa.stop().await;
    }
);

on_both_databases!(
    api_keys_and_organizations_are_kept_apart,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = sandbox(&test, &dir).await;
        let demo = kassa.demo_org().await;
        let key = kassa.api_key(demo).await;

        for bad in [None, Some("kassa_not_a_key"), Some("")] {
            let mut request = kassa.http.get(kassa.url("/invoices"));
            if let Some(bad) = bad {
                request = request.header("X-API-Key", bad);
            }
            let answer = common::Answer::read(request.send().await.expect("sent")).await;
            assert_eq!(answer.status, 401);
            assert_eq!(answer.json, json!({"message": "Invalid API key"}));
        }

        let created = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 500, "phone_number": "87001234567"}),
            )
            .await;
        let id = created.json["id"].as_i64().expect("id");

        // Another organization, with its own cashier on the sandbox.
        let other = common::connect(&kassa, kassa.sim(), "other", "7000000002").await;
        let other_key = kassa.api_key(other).await;
        for path in [format!("/invoices/{id}")] {
            let answer = kassa.get(&other_key, &path).await;
            assert_eq!(
                answer.status, 404,
                "another organization's invoice is not found"
            );
        }
        let cancel = kassa
            .post(&other_key, &format!("/invoices/{id}/cancel"), json!({}))
            .await;
        assert_eq!(cancel.status, 404);
        let pay = kassa
            .post(
                &other_key,
                &format!("/sandbox/invoices/{id}/pay"),
                json!({}),
            )
            .await;
        assert_eq!(pay.status, 404);
        let list = kassa.get(&other_key, "/invoices").await;
        assert_eq!(list.json["meta"]["total"], 0);
        let stats = kassa.get(&other_key, "/invoices/stats?period=year").await;
        assert_eq!(stats.json["total_count"], 0);
        // The other organization's own invoice goes through its own cashier.
        let own = kassa
            .post(
                &other_key,
                "/invoices",
                json!({"amount": 700, "phone_number": "87001234567"}),
            )
            .await;
        assert_eq!(own.status, 201, "{:?}", own.json);
        let mine = kassa.get(&key, "/invoices").await;
        assert_eq!(mine.json["meta"]["total"], 1);

        // A key revoked through this process's own store is refused on the next request.
        let revoked = kassa
            .store()
            .orgs()
            .revoke_api_key(demo, &key[..kassa::secrets::API_KEY_PREFIX_LEN])
            .await
            .expect("revoke");
        assert_eq!(revoked, 1);
        assert_eq!(
            kassa.get(&key, "/invoices").await.status,
            401,
            "a revoked key is refused"
        );
        kassa.stop().await;
    }
);

on_both_databases!(
    cancel_only_pending_and_the_poller_follows_payers,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = sandbox(&test, &dir).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;

        let created = kassa
            .invoice(&key, json!({"amount": 100, "phone_number": "87001234567"}))
            .await;
        let id = created.id;
        let cancelled = kassa
            .post(&key, &format!("/invoices/{id}/cancel"), json!({}))
            .await;
        assert_eq!(cancelled.status, 200, "{:?}", cancelled.json);
        assert_eq!(cancelled.json["status"], "cancelled");
        let again = kassa
            .post(&key, &format!("/invoices/{id}/cancel"), json!({}))
            .await;
        assert_eq!(again.status, 400);
        assert_eq!(again.json["error"], "invoice_not_cancellable");
        // Kaspi has it cancelled too: the payer can no longer pay it.
        assert!(
            kassa.sim().pay(created.op).is_err(),
            "Kaspi refuses to take payment for a cancelled invoice"
        );

        // 700111NNNN pays by itself after N seconds: the poller sees it without any help.
        let auto = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 300, "phone_number": "87001110001"}),
            )
            .await;
        let auto_id = auto.json["id"].as_i64().expect("id");
        let paid = kassa
            .invoice_reaches(&key, auto_id, "status", "paid")
            .await
            .expect("the poller records the payment");
        assert!(paid["paid_at"].is_string());
        let not_cancellable = kassa
            .post(&key, &format!("/invoices/{auto_id}/cancel"), json!({}))
            .await;
        assert_eq!(not_cancellable.status, 400);
        assert!(not_cancellable.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("paid")));

        // 700222NNNN declines: ApiPay shows it cancelled.
        let declined = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 300, "phone_number": "87002220001"}),
            )
            .await;
        let declined_id = declined.json["id"].as_i64().expect("id");
        let seen = kassa
            .invoice_reaches(&key, declined_id, "status", "cancelled")
            .await;
        assert!(seen.is_some(), "a declined invoice ends");
        let filtered = kassa.get(&key, "/invoices?status[]=cancelled").await;
        assert_eq!(filtered.json["meta"]["total"], 2);

        // Sandbox expire.
        let to_expire = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 300, "phone_number": "87001234567"}),
            )
            .await;
        let expire_id = to_expire.json["id"].as_i64().expect("id");
        let expired = kassa
            .post(
                &key,
                &format!("/sandbox/invoices/{expire_id}/expire"),
                json!({}),
            )
            .await;
        assert_eq!(expired.json["status"], "expired", "{:?}", expired.json);
        let twice = kassa
            .post(
                &key,
                &format!("/sandbox/invoices/{expire_id}/pay"),
                json!({}),
            )
            .await;
        assert_eq!(twice.status, 400, "{:?}", twice.json);
        kassa.stop().await;
    }
);
