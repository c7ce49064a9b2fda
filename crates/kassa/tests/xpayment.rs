//! The xPayment-compatible surface over HTTP: Bearer keys, payments by phone in any usual
//! form, one payment with two faces, cursor pages, cancel, QR links and their images, static QR
//! payments from the synced history, errors with xPayment's codes.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Kassa;
use kassa::db::testing::TestDb;
use reqwest::Method;
use serde_json::json;

on_both_databases!(
    payments_by_phone_with_two_faces,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;

        let created = kassa
        .x(
            Method::POST,
            &key,
            "/payments",
            Some(json!({"payer_phone": "+7 700 123 45 67", "amount": 1500.5, "comment": "Order #42",
                        "merchant_order_id": "order-42", "metadata": {"cart": [1, 2]}})),
        )
        .await;
        assert_eq!(created.status, 201, "{:?}", created.json);
        let p = &created.json;
        assert_eq!(p["currency"], "KZT");
        assert_eq!(p["status"], "pending");
        assert_eq!(p["amount"], 1500.5);
        assert_eq!(p["payer_phone"], "+77001234567");
        assert_eq!(p["metadata"], json!({"cart": [1, 2]}));
        assert_eq!(p["merchant_order_id"], "order-42");
        assert_eq!(p["user_id"], "demo");
        let payment_id = p["payment_id"].as_str().expect("uuid").to_owned();

        // The same payment through ApiPay, and back.
        let apipay = kassa.get(&key, "/invoices?search=order-42").await;
        assert_eq!(apipay.json["meta"]["total"], 1);
        let id = apipay.json["data"][0]["id"].as_i64().expect("id");
        assert_eq!(apipay.json["data"][0]["amount"], "1500.50");
        kassa
            .post(&key, &format!("/sandbox/invoices/{id}/pay"), json!({}))
            .await;
        let paid = kassa
            .x(Method::GET, &key, &format!("/payments/{payment_id}"), None)
            .await;
        assert_eq!(paid.json["status"], "completed");
        assert!(paid.json["completed_at"].is_string());
        // Root paths answer too.
        let root = kassa
            .http
            .get(format!("http://{}/payments/{payment_id}", kassa.addr))
            .bearer_auth(&key)
            .send()
            .await
            .expect("sent");
        assert_eq!(root.status(), 200);

        // Other phone spellings; ApiPay's key header works too.
        for phone in ["87001234567", "7001234567", "+77001234567"] {
            let r = kassa
                .x(
                    Method::POST,
                    &key,
                    "/payments",
                    Some(json!({"payer_phone": phone, "amount": 100})),
                )
                .await;
            assert_eq!(r.status, 201, "{phone}: {:?}", r.json);
        }

        // Errors in xPayment's format.
        let unauthorized = kassa.x(Method::GET, "kassa_wrong", "/payments", None).await;
        assert_eq!(unauthorized.status, 401);
        assert!(unauthorized.json["error"].is_string());
        for (body, field) in [
            (json!({"amount": 100}), "payer_phone"),
            (
                json!({"payer_phone": "12345", "amount": 100}),
                "payer_phone",
            ),
            (json!({"payer_phone": "+77001234567"}), "amount"),
            (
                json!({"payer_phone": "+77001234567", "amount": -5}),
                "amount",
            ),
            (
                json!({"payer_phone": "+77001234567", "amount": 100, "metadata": [1]}),
                "metadata",
            ),
        ] {
            let r = kassa
                .x(Method::POST, &key, "/payments", Some(body.clone()))
                .await;
            assert_eq!(r.status, 400, "{body}: {:?}", r.json);
            assert_eq!(r.json["error"], "VALIDATION_ERROR");
            assert!(
                r.json["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(field)),
                "{body}: {:?}",
                r.json
            );
        }
        let not_client = kassa
            .x(
                Method::POST,
                &key,
                "/payments",
                Some(json!({"payer_phone": "+77005550000", "amount": 100})),
            )
            .await;
        assert_eq!(not_client.status, 422);
        assert_eq!(not_client.json["error"], "KASPI_CLIENT_NOT_FOUND");
        let missing = kassa
            .x(
                Method::GET,
                &key,
                "/payments/00000000-0000-0000-0000-000000000000",
                None,
            )
            .await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.json["error"], "PAYMENT_NOT_FOUND");

        // Cancel: with a reason; twice is a conflict.
        let pending = kassa
            .x(
                Method::POST,
                &key,
                "/payments",
                Some(json!({"payer_phone": "+77001234567", "amount": 300})),
            )
            .await;
        let pending_id = pending.json["payment_id"]
            .as_str()
            .expect("uuid")
            .to_owned();
        let cancelled = kassa
            .x(
                Method::POST,
                &key,
                &format!("/payments/{pending_id}/cancel"),
                Some(json!({"reason": "changed mind"})),
            )
            .await;
        assert_eq!(cancelled.status, 200, "{:?}", cancelled.json);
        assert_eq!(cancelled.json["status"], "cancelled");
        assert_eq!(cancelled.json["cancel_reason"], "changed mind");
        let again = kassa
            .x(
                Method::POST,
                &key,
                &format!("/payments/{pending_id}/cancel"),
                None,
            )
            .await;
        assert_eq!(again.status, 409);
        assert_eq!(again.json["error"], "PAYMENT_NOT_CANCELABLE");
        kassa.stop().await;
    }
);

on_both_databases!(
    cursor_pages_stay_stable_while_payments_are_added,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let create = |amount: i64| {
            kassa.x(Method::POST, &key, "/payments", Some(json!({"payer_phone": "+77001234567", "amount": amount, "merchant_order_id": format!("o-{amount}")})))
        };
        let mut made = Vec::new();
        for amount in 1..=7 {
            made.push(
                create(amount).await.json["payment_id"]
                    .as_str()
                    .expect("id")
                    .to_owned(),
            );
        }
        let mut seen = Vec::new();
        let mut cursor = String::new();
        let mut pages = 0;
        loop {
            let path = if cursor.is_empty() {
                "/payments?limit=3".to_owned()
            } else {
                format!("/payments?limit=3&cursor={cursor}")
            };
            let page = kassa.x(Method::GET, &key, &path, None).await;
            assert_eq!(page.status, 200, "{:?}", page.json);
            for p in page.json["data"].as_array().expect("data") {
                seen.push(p["payment_id"].as_str().expect("id").to_owned());
            }
            pages += 1;
            // A payment made between pages appears at the top, not in later pages.
            if pages == 1 {
                create(100).await;
            }
            if page.json["has_more"] == false {
                assert_eq!(page.json["next_cursor"], "");
                break;
            }
            cursor = page.json["next_cursor"]
                .as_str()
                .expect("cursor")
                .to_owned();
        }
        assert_eq!(pages, 3);
        made.reverse();
        assert_eq!(seen, made, "every payment once, newest first");
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), 7);

        let filtered = kassa
            .x(Method::GET, &key, "/payments?merchant_order_id=o-3", None)
            .await;
        assert_eq!(filtered.json["data"].as_array().map(Vec::len), Some(1));
        let by_phone = kassa
            .x(
                Method::GET,
                &key,
                "/payments?payer_phone=87001234567&status=pending",
                None,
            )
            .await;
        assert_eq!(by_phone.json["data"].as_array().map(Vec::len), Some(8));
        let none = kassa
            .x(Method::GET, &key, "/payments?status=completed", None)
            .await;
        assert_eq!(none.json["data"].as_array().map(Vec::len), Some(0));
        let bad_cursor = kassa
            .x(Method::GET, &key, "/payments?cursor=nonsense", None)
            .await;
        assert_eq!(bad_cursor.status, 400);
        assert_eq!(bad_cursor.json["error"], "VALIDATION_ERROR");
        // `status` is free text in the spec: one no payment has matches nothing.
        let no_such_status = kassa
            .x(Method::GET, &key, "/payments?status=paid", None)
            .await;
        assert_eq!(no_such_status.status, 200);
        assert_eq!(
            no_such_status.json["data"].as_array().map(Vec::len),
            Some(0)
        );
        kassa.stop().await;
    }
);

on_both_databases!(qr_links_and_static_qr_payments, |test: TestDb| async move {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;

    let link = kassa
        .x(
            Method::POST,
            &key,
            "/payments/link",
            Some(json!({"amount": 2500, "merchant_order_id": "qr-1"})),
        )
        .await;
    assert_eq!(link.status, 200, "{:?}", link.json);
    let token = link.json["qr_token"].as_str().expect("qr_token").to_owned();
    assert!(token.starts_with("https://"), "{token}");
    let op = link.json["qr_operation_id"]
        .as_u64()
        .expect("qr_operation_id");
    assert!(link.json["ext_tran_id"].is_string());
    assert!(link.json["expire_date"].is_string());
    assert_eq!(link.json["status"], "QrTokenCreated");
    let payment_id = link.json["payment_id"]
        .as_str()
        .expect("payment_id")
        .to_owned();

    let svg = kassa
        .http
        .get(format!(
            "http://{}/v1/payments/{payment_id}/qr.svg",
            kassa.addr
        ))
        .bearer_auth(&key)
        .send()
        .await
        .expect("sent");
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.expect("body").starts_with("<svg"));
    let png = kassa
        .http
        .get(format!(
            "http://{}/v1/payments/{payment_id}/qr.png",
            kassa.addr
        ))
        .bearer_auth(&key)
        .send()
        .await
        .expect("sent");
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(&png.bytes().await.expect("body")[..4], b"\x89PNG");

    // The payer scans and pays: the poller follows the QR token to its end.
    kassa.sim().pay(op).expect("pay");
    let step = Duration::from_millis(100);
    let completed = kassa
        .advance_until(Duration::from_secs(15), step, || async {
            let p = kassa
                .x(Method::GET, &key, &format!("/payments/{payment_id}"), None)
                .await;
            (p.json["status"] == "completed").then_some(())
        })
        .await;
    assert!(completed.is_some(), "the QR payment is seen paid");

    // A payment to the merchant's static QR, with no invoice: found in the synced history.
    let static_op = kassa
        .sim()
        .add_static_qr_payment_for(
            kassa::gateway::DEMO_CASHIER_PHONE,
            kaspi::Amount::from_tiyn(1_200),
            "Order #45",
        )
        .expect("static payment");
    let order_number = format!("QR{static_op}");
    let found = kassa
        .advance_until(Duration::from_secs(15), step, || async {
            let r = kassa
                .x(
                    Method::GET,
                    &key,
                    &format!("/static-qr-payments/{order_number}"),
                    None,
                )
                .await;
            (r.status == 200).then_some(r.json)
        })
        .await
        .expect("the history sync finds it");
    assert_eq!(found["amount"], 12);
    assert_eq!(found["kaspi_operation_id"], static_op);
    assert_eq!(found["order_number"], order_number.as_str());
    assert!(found["synced_at"].is_string());
    // Kassa's own QR payment is not a static QR payment.
    let own = kassa
        .x(
            Method::GET,
            &key,
            &format!("/static-qr-payments/QR{op}"),
            None,
        )
        .await;
    assert_eq!(own.status, 404);
    let unknown = kassa
        .x(Method::GET, &key, "/static-qr-payments/QR1", None)
        .await;
    assert_eq!(unknown.status, 404);
    kassa.stop().await;
});
