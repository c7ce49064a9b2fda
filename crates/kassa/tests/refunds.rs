//! Refunds over both surfaces: partial and full, never beyond what was paid (also when
//! requests race), Kaspi's refusals, a lost answer that is confirmed and not resent.

mod common;

use std::time::Duration;

use common::Kassa;
use kaspi_sim::{Faults, LostMode};
use kassa::db::testing::TestDb;
use reqwest::Method;
use serde_json::json;

/// A paid invoice of `amount` tenge: its ApiPay id, xPayment id and Kaspi operation.
async fn paid_invoice(kassa: &Kassa, key: &str, amount: i64) -> (i64, String, u64) {
    let created = kassa
        .post(
            key,
            "/invoices",
            json!({"amount": amount, "phone_number": "87001234567"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    let id = created.json["id"].as_i64().expect("id");
    let paid = kassa
        .post(key, &format!("/sandbox/invoices/{id}/pay"), json!({}))
        .await;
    assert_eq!(paid.json["status"], "paid");
    let invoice = kassa
        .store()
        .invoices()
        .invoice(kassa.demo_org().await, id)
        .await
        .expect("read")
        .expect("there");
    let op = invoice.kaspi_operation_id.expect("op").get();
    let op = u64::try_from(op).expect("positive");
    (id, invoice.payment_id, op)
}

/// Steps the work (moving the clock while retries are due later) until ApiPay shows refund `refund_id` of invoice `id` in `status`.
async fn refund_reaches(
    kassa: &Kassa,
    key: &str,
    id: i64,
    refund_id: i64,
    status: &str,
) -> serde_json::Value {
    let step = Duration::from_millis(100);
    kassa
        .advance_until(Duration::from_secs(15), step, || async {
            let list = kassa.get(key, &format!("/invoices/{id}/refunds")).await;
            list.json["data"]
                .as_array()?
                .iter()
                .find(|r| r["id"] == refund_id && r["status"] == status)
                .cloned()
        })
        .await
        .unwrap_or_else(|| panic!("refund {refund_id} reaches {status}"))
}

on_both_databases!(
    partial_then_full_refunds_on_both_surfaces,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let (id, payment_id, op) = paid_invoice(&kassa, &key, 10_000).await;

        let first = kassa
            .post(
                &key,
                &format!("/invoices/{id}/refund"),
                json!({"amount": 3000.5, "reason": "Partial return"}),
            )
            .await;
        assert_eq!(first.status, 201, "{:?}", first.json);
        assert_eq!(first.json["refund"]["amount"], "3000.50");
        assert_eq!(first.json["refund"]["status"], "pending");
        assert_eq!(first.json["refund"]["initiated_by"], "api");
        assert_eq!(first.json["invoice"]["available_for_refund"], "6999.50");
        let first_id = first.json["refund"]["id"].as_i64().expect("id");
        let done = refund_reaches(&kassa, &key, id, first_id, "completed").await;
        assert!(done["completed_at"].is_string());
        let invoice = kassa.get(&key, &format!("/invoices/{id}")).await;
        assert_eq!(invoice.json["status"], "partially_refunded");
        assert_eq!(invoice.json["total_refunded"], "3000.50");
        assert_eq!(invoice.json["is_fully_refunded"], false);

        // More than what is left: refused, nothing recorded.
        let too_much = kassa
            .post(
                &key,
                &format!("/invoices/{id}/refund"),
                json!({"amount": 7000}),
            )
            .await;
        assert_eq!(too_much.status, 400, "{:?}", too_much.json);
        assert_eq!(too_much.json["error"], "invoice_not_refundable");
        assert!(too_much.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("6999.50")));

        // The rest through xPayment, without an amount: a full refund of what is left.
        let rest = kassa
            .x(
                Method::POST,
                &key,
                &format!("/payments/{payment_id}/refund"),
                Some(json!({"reason": "all of it"})),
            )
            .await;
        assert_eq!(rest.status, 202, "{:?}", rest.json);
        assert_eq!(rest.json["amount"], 6999.5);
        assert_eq!(rest.json["payment_id"], payment_id.as_str());
        let refund_uuid = rest.json["refund_id"].as_str().expect("uuid").to_owned();
        let completed = kassa
            .advance_until(
                Duration::from_secs(15),
                Duration::from_millis(100),
                || async {
                    let r = kassa
                        .x(Method::GET, &key, &format!("/refunds/{refund_uuid}"), None)
                        .await;
                    (r.json["status"] == "completed").then_some(r.json)
                },
            )
            .await
            .expect("completed");
        assert_eq!(completed["reason"], "all of it");
        let invoice = kassa.get(&key, &format!("/invoices/{id}")).await;
        assert_eq!(invoice.json["status"], "refunded");
        assert_eq!(invoice.json["is_fully_refunded"], true);
        // Kaspi returned exactly what was paid.
        let at_kaspi = kassa.sim().operation(op).expect("operation");
        assert_eq!(
            at_kaspi.returned_amount,
            kaspi::Amount::from_tiyn(1_000_000)
        );
        // The xPayment face still says completed; its refunds list both.
        let payment = kassa
            .x(Method::GET, &key, &format!("/payments/{payment_id}"), None)
            .await;
        assert_eq!(payment.json["status"], "completed");
        let listed = kassa
            .x(
                Method::GET,
                &key,
                &format!("/payments/{payment_id}/refunds"),
                None,
            )
            .await;
        assert_eq!(listed.json["data"].as_array().map(Vec::len), Some(2));

        // Nothing left.
        let none_left = kassa
            .x(
                Method::POST,
                &key,
                &format!("/payments/{payment_id}/refund"),
                Some(json!({})),
            )
            .await;
        assert_eq!(none_left.status, 409, "{:?}", none_left.json);
        assert_eq!(none_left.json["error"], "PAYMENT_NOT_REFUNDABLE");

        // Lists and filters.
        let all = kassa.get(&key, "/refunds?status[]=completed").await;
        assert_eq!(all.json["meta"]["total"], 2);
        let by_invoice = kassa
            .get(&key, &format!("/refunds?invoice_id={id}&per_page=1"))
            .await;
        assert_eq!(by_invoice.json["meta"]["last_page"], 2);
        let failed = kassa.get(&key, "/refunds?status[]=failed").await;
        assert_eq!(failed.json["meta"]["total"], 0);
        let bad = kassa.get(&key, "/refunds?status[]=lost").await;
        assert_eq!(bad.status, 422);
        let x_list = kassa
            .x(
                Method::GET,
                &key,
                &format!("/refunds?payment_id={payment_id}"),
                None,
            )
            .await;
        assert_eq!(x_list.json["data"].as_array().map(Vec::len), Some(2));

        // A pending invoice cannot be refunded; an unknown one is not found.
        let pending = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 100, "phone_number": "87001234567"}),
            )
            .await;
        let pending_id = pending.json["id"].as_i64().expect("id");
        let not_paid = kassa
            .post(&key, &format!("/invoices/{pending_id}/refund"), json!({}))
            .await;
        assert_eq!(not_paid.status, 400);
        let unknown = kassa.post(&key, "/invoices/999999/refund", json!({})).await;
        assert_eq!(unknown.status, 404);
        let bad_amount = kassa
            .post(
                &key,
                &format!("/invoices/{id}/refund"),
                json!({"amount": "x"}),
            )
            .await;
        assert_eq!(bad_amount.status, 422);
        kassa.stop().await;
    }
);

on_both_databases!(
    racing_refunds_never_exceed_what_was_paid,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let (id, _, op) = paid_invoice(&kassa, &key, 10_000).await;

        let path = format!("/invoices/{id}/refund");
        let requests = (0..8).map(|_| kassa.post(&key, &path, json!({"amount": 3000})));
        let answers = futures::future::join_all(requests).await;
        let accepted: Vec<i64> = answers
            .iter()
            .filter(|a| a.status == 201)
            .map(|a| a.json["refund"]["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(accepted.len(), 3, "three of 3000 fit into 10000");
        for a in answers.iter().filter(|a| a.status != 201) {
            assert_eq!(a.status, 400, "{:?}", a.json);
        }
        for refund in &accepted {
            refund_reaches(&kassa, &key, id, *refund, "completed").await;
        }
        let invoice = kassa.get(&key, &format!("/invoices/{id}")).await;
        assert_eq!(invoice.json["total_refunded"], "9000.00");
        let at_kaspi = kassa.sim().operation(op).expect("operation");
        assert_eq!(at_kaspi.returned_amount, kaspi::Amount::from_tiyn(900_000));
        kassa.stop().await;
    }
);

on_both_databases!(
    kaspi_refusals_fail_the_refund_and_lost_answers_are_not_resent,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;

        // The answer to a refund is lost: Kassa checks the operation instead of sending again.
        let (id, _, op) = paid_invoice(&kassa, &key, 5_000).await;
        kassa
            .sim()
            .set_faults(Faults {
                lost: 1.0,
                lost_mode: LostMode::Drop,
                path_contains: Some("history-pos-return".into()),
                count: Some(1),
                ..Faults::default()
            })
            .expect("faults");
        let lost = kassa
            .post(
                &key,
                &format!("/invoices/{id}/refund"),
                json!({"amount": 2000}),
            )
            .await;
        assert_eq!(lost.status, 201);
        let refund_id = lost.json["refund"]["id"].as_i64().expect("id");
        refund_reaches(&kassa, &key, id, refund_id, "completed").await;
        let at_kaspi = kassa.sim().operation(op).expect("operation");
        assert_eq!(
            at_kaspi.returned_amount,
            kaspi::Amount::from_tiyn(200_000),
            "refunded once"
        );

        // Past Kaspi's refund window: Kaspi refuses; the refund fails with the reason and the
        // money is refundable again (as far as Kassa knows).
        let (late_id, _, _) = paid_invoice(&kassa, &key, 1_000).await;
        kassa.advance(Duration::from_secs(31 * 24 * 3600)).await;
        let refused = kassa
            .post(&key, &format!("/invoices/{late_id}/refund"), json!({}))
            .await;
        assert_eq!(refused.status, 201);
        let refused_id = refused.json["refund"]["id"].as_i64().expect("id");
        let failed = refund_reaches(&kassa, &key, late_id, refused_id, "failed").await;
        assert!(
            failed["fail_reason"]
                .as_str()
                .is_some_and(|r| r.contains("Kaspi")),
            "{failed:?}"
        );
        let invoice = kassa.get(&key, &format!("/invoices/{late_id}")).await;
        assert_eq!(invoice.json["status"], "paid");
        assert_eq!(invoice.json["total_refunded"], "0.00");
        let events = kassa.invoice_events(org, late_id).await;
        assert_eq!(events.len(), 2, "paid, then refund failed: {events:?}");
        kassa.stop().await;
    }
);
