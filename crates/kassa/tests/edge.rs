//! The HTTP edge, over real sockets: NUL characters refused in every text input on both
//! surfaces and both databases, idempotency that compares the parsed request.

mod common;

use common::{Answer, Kassa, Options};
use kassa::db::testing::TestDb;
use reqwest::Method;
use serde_json::json;

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
        let kassa = Kassa::start(Options::new(test.url(), dir.path())).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
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
    idempotency_compares_the_parsed_body,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = Kassa::start(Options::new(test.url(), dir.path())).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;

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
