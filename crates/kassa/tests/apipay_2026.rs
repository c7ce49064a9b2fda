//! What ApiPay's current version (2026-04) adds, over HTTP on both databases: the status check
//! of many invoices (read from Kaspi where still open), one refund with its invoice and lines,
//! `webhook.test` sent to one endpoint, and the fields both versions' clients read.

mod common;

use common::receiver::Receiver;
use common::Kassa;
use kassa::db::testing::TestDb;
use serde_json::{json, Value};

on_both_databases!(
    status_check_reads_open_invoices_from_kaspi,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let mut ids = Vec::new();
        for amount in [100, 200, 300] {
            let made = kassa
                .post(
                    &key,
                    "/invoices",
                    json!({"amount": amount, "phone_number": "87001234567"}),
                )
                .await;
            assert_eq!(made.status, 201);
            assert_eq!(made.json["error_message"], Value::Null);
            ids.push(made.json["id"].as_i64().expect("id"));
        }
        // The payer pays the second at Kaspi; Kassa has not looked yet.
        let second = kassa.get(&key, &format!("/invoices/{}", ids[1])).await.json;
        let op: u64 = second["kaspi_invoice_id"]
            .as_str()
            .expect("op")
            .parse()
            .expect("n");
        kassa.sim().pay(op).expect("paid at Kaspi");
        assert_eq!(
            kassa.get(&key, &format!("/invoices/{}", ids[1])).await.json["status"],
            "pending"
        );

        let other_key = kassa.other_org_key("other").await;
        let theirs = kassa
            .post(
                &other_key,
                "/invoices",
                json!({"amount": 100, "phone_number": "87001234567"}),
            )
            .await;
        let checked = kassa
            .post(
                &key,
                "/invoices/status/check",
                json!({"invoice_ids": [ids[0], ids[1], ids[2], ids[1], 999_999, theirs.json["id"]]}),
            )
            .await;
        assert_eq!(checked.status, 200, "{:?}", checked.json);
        let got: Vec<(i64, String)> = checked.json["invoices"]
            .as_array()
            .expect("invoices")
            .iter()
            .map(|i| {
                (
                    i["id"].as_i64().expect("id"),
                    i["status"].as_str().expect("s").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (ids[0], "pending".to_owned()),
                (ids[1], "paid".to_owned()),
                (ids[2], "pending".to_owned())
            ],
            "each of the caller's once; the payment found at Kaspi"
        );
        assert_eq!(checked.json["invoices"][1]["amount"], "200.00");
        assert_eq!(
            kassa.get(&key, &format!("/invoices/{}", ids[1])).await.json["status"],
            "paid"
        );

        for (body, field) in [
            (json!({"invoice_ids": []}), "invoice_ids"),
            (json!({}), "invoice_ids"),
            (
                json!({"invoice_ids": (1..=101).collect::<Vec<i64>>()}),
                "invoice_ids",
            ),
            (json!({"invoice_ids": ["x"]}), "invoice_ids.0"),
        ] {
            let refused = kassa
                .post(&key, "/invoices/status/check", body.clone())
                .await;
            assert_eq!(refused.status, 422, "{body}: {:?}", refused.json);
            assert!(
                refused.json["errors"][field].is_array(),
                "{field}: {:?}",
                refused.json
            );
        }
    }
);

on_both_databases!(
    one_refund_is_shown_with_its_invoice_and_lines,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let made = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 1000, "phone_number": "87001234567", "external_order_id": "o-1"}),
            )
            .await;
        let id = made.json["id"].as_i64().expect("id");
        kassa
            .post(&key, &format!("/sandbox/invoices/{id}/pay"), json!({}))
            .await;
        let refund = kassa
            .post(
                &key,
                &format!("/invoices/{id}/refund"),
                json!({"amount": 250, "reason": "damaged"}),
            )
            .await;
        assert_eq!(refund.status, 201, "{:?}", refund.json);
        let refund_id = refund.json["refund"]["id"].as_i64().expect("id");
        kassa.step().await;
        let one = kassa.get(&key, &format!("/refunds/{refund_id}")).await;
        assert_eq!(one.status, 200, "{:?}", one.json);
        assert_eq!(one.json["status"], "completed");
        assert_eq!(one.json["amount"], "250.00");
        assert_eq!(one.json["initiated_by"], "api");
        assert_eq!(one.json["error_message"], Value::Null);
        assert!(one.json["kaspi_refund_id"].is_string(), "{:?}", one.json);
        assert_eq!(one.json["invoice"]["id"], id);
        assert_eq!(one.json["invoice"]["external_order_id"], "o-1");
        assert_eq!(one.json["invoice"]["status"], "partially_refunded");
        assert_eq!(one.json["items"], json!([]));
        let listed = kassa.get(&key, "/refunds").await.json;
        assert_eq!(listed["data"][0]["invoice"]["amount"], "1000.00");
        assert_eq!(kassa.get(&key, "/refunds/999999").await.status, 404);
        let other_key = kassa.other_org_key("other").await;
        assert_eq!(
            kassa
                .get(&other_key, &format!("/refunds/{refund_id}"))
                .await
                .status,
            404
        );
    }
);

on_both_databases!(
    webhook_test_is_sent_to_one_endpoint_on_request,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let receiver = Receiver::start().await;
        let made = kassa
            .post(&key, "/webhooks", json!({"url": receiver.url("/hook")}))
            .await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        let endpoint = made.json["id"].as_i64().expect("id");
        let other = kassa
            .post(&key, "/webhooks", json!({"url": receiver.url("/other")}))
            .await;
        assert_eq!(other.status, 201);
        let sent = kassa
            .post(&key, &format!("/webhooks/{endpoint}/test"), json!({}))
            .await;
        assert_eq!(sent.status, 200, "{:?}", sent.json);
        assert_eq!(sent.json["success"], true);
        let got = receiver.requests();
        assert_eq!(got.len(), 1, "only the endpoint asked for");
        assert_eq!(got[0].path, "/hook");
        let body = got[0].json();
        assert_eq!(body["event"], "webhook.test");
        assert_eq!(body["source"], "test");
        assert!(got[0].header("x-webhook-signature").starts_with("sha256="));
        let missing = kassa.post(&key, "/webhooks/999999/test", json!({})).await;
        assert_eq!(missing.status, 404);
    }
);

on_both_databases!(
    an_invoice_kaspi_has_not_confirmed_is_processing_to_both_filters,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        // Stored, its create at Kaspi not answered yet (as a create whose answer was lost).
        let now = kassa.store().now_ms();
        let stored = kassa
            .store()
            .invoices()
            .insert_invoice(kassa::store::NewInvoice {
                payment_id: uuid::Uuid::new_v4().to_string(),
                org_id: org,
                kind: kassa::store::InvoiceKind::Remote,
                amount: kassa::domain::Money::from_tiyn(12_300),
                phone: kassa::domain::parse_phone("7001234567").ok(),
                description: None,
                external_order_id: None,
                is_sandbox: true,
                created_at: now,
                expires_at: None,
                metadata: None,
                kaspi_ref: Some(kassa::store::new_kaspi_ref()),
                reconcile_at: None,
                idempotency: None,
            })
            .await
            .expect("stored");
        let got = kassa
            .get(&key, &format!("/invoices/{}", stored.id))
            .await
            .json;
        assert_eq!(got["status"], "processing");
        for filter in ["processing", "pending"] {
            let listed = kassa
                .get(&key, &format!("/invoices?status[]={filter}"))
                .await
                .json;
            assert_eq!(listed["meta"]["total"], 1, "{filter}: {listed}");
        }
        let paid = kassa.get(&key, "/invoices?status[]=paid").await.json;
        assert_eq!(paid["meta"]["total"], 0);
    }
);
