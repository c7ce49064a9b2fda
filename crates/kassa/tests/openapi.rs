//! Kassa's own OpenAPI document (`GET /openapi.json`) and its page (`GET /docs`), from a
//! running sandbox gateway:
//!
//! - the document is OpenAPI 3.1, and its operations are exactly the routes the gateway serves
//!   (listed here by hand from `crate::app` and each surface's `routes`): each answers 401
//!   without a key in its surface's error body (so the route and method exist), the public
//!   ones 200;
//! - real answers of every kind fit the document's schemas key for key: a key the server
//!   answers that the schema does not name fails, as does a required key it leaves out (the
//!   views are built with `json!`, so this is what keeps the hand-written shapes true);
//! - the page and everything it loads come from Kassa itself, nothing from another host.

mod common;

use common::Kassa;
use kassa::db::testing::TestDb;
use reqwest::Method;
use serde_json::{json, Value};

/// The routes of the ApiPay surface and Kassa's additions, relative to `/api/v1`.
const APIPAY_ROUTES: &[(&str, &str)] = &[
    ("post", "/invoices"),
    ("get", "/invoices"),
    ("get", "/invoices/stats"),
    ("post", "/invoices/status/check"),
    ("get", "/invoices/{id}"),
    ("post", "/invoices/{id}/cancel"),
    ("post", "/invoices/{id}/refund"),
    ("get", "/invoices/{id}/refunds"),
    ("get", "/refunds"),
    ("get", "/refunds/{id}"),
    ("post", "/subscriptions"),
    ("get", "/subscriptions"),
    ("get", "/subscriptions/{id}"),
    ("put", "/subscriptions/{id}"),
    ("post", "/subscriptions/{id}/pause"),
    ("post", "/subscriptions/{id}/resume"),
    ("post", "/subscriptions/{id}/cancel"),
    ("get", "/subscriptions/{id}/invoices"),
    ("get", "/catalog"),
    ("post", "/catalog"),
    ("get", "/catalog/units"),
    ("post", "/catalog/upload-image"),
    ("get", "/catalog/images/{file}"),
    ("patch", "/catalog/{id}"),
    ("delete", "/catalog/{id}"),
    ("post", "/sandbox/invoices/{id}/pay"),
    ("post", "/sandbox/invoices/{id}/decline"),
    ("post", "/sandbox/invoices/{id}/expire"),
    ("get", "/sandbox/clock"),
    ("post", "/sandbox/clock/advance"),
    ("post", "/webhooks"),
    ("get", "/webhooks"),
    ("get", "/webhooks/{id}"),
    ("patch", "/webhooks/{id}"),
    ("put", "/webhooks/{id}"),
    ("delete", "/webhooks/{id}"),
    ("post", "/webhooks/{id}/rotate-secret"),
    ("post", "/webhooks/{id}/test"),
    ("get", "/webhooks/{id}/deliveries"),
    ("post", "/webhooks/{id}/deliveries/{delivery}/redeliver"),
];

/// The routes of the xPayment surface (with its webhook simulator), served under `/v1` and at
/// the root.
const XPAYMENT_ROUTES: &[(&str, &str)] = &[
    ("post", "/payments"),
    ("get", "/payments"),
    ("post", "/payments/link"),
    ("get", "/payments/{payment_id}"),
    ("post", "/payments/{payment_id}/cancel"),
    ("post", "/payments/{payment_id}/refund"),
    ("get", "/payments/{payment_id}/refunds"),
    ("get", "/payments/{payment_id}/qr.svg"),
    ("get", "/payments/{payment_id}/qr.png"),
    ("get", "/refunds"),
    ("get", "/refunds/{refund_id}"),
    ("get", "/static-qr-payments/{order_number}"),
    ("post", "/webhook-simulate"),
    ("get", "/webhook-simulate/subscriptions"),
];

/// The routes that need no API key.
const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/status"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
];

/// Every (method, path) the gateway serves, as the document should name them.
fn served_routes() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = PUBLIC_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    for (method, path) in APIPAY_ROUTES {
        all.push(((*method).to_owned(), format!("/api/v1{path}")));
    }
    for (method, path) in XPAYMENT_ROUTES {
        all.push(((*method).to_owned(), format!("/v1{path}")));
        all.push(((*method).to_owned(), (*path).to_owned()));
    }
    all.sort();
    all
}

/// Every (method, path) of the document.
fn documented_routes(doc: &Value) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                all.push((method.clone(), path.clone()));
            }
        }
    }
    all.sort();
    all
}

async fn fetch_document(kassa: &Kassa) -> Value {
    let answer = kassa
        .http
        .get(format!("http://{}/openapi.json", kassa.addr))
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"].to_str().expect("ascii"),
        "application/json"
    );
    answer.json().await.expect("the document is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_names_exactly_the_routes_served() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, _, _key) = Kassa::stepped_demo(&test, dir.path()).await;
    let doc = fetch_document(&kassa).await;
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["title"], "Kassa");
    assert_eq!(documented_routes(&doc), served_routes());

    // Each documented operation is served: without a key a protected route answers 401
    // (an unknown path 404, a known path with another method 405), in the error body its
    // surface's document names; a public one answers 200.
    for (method, path) in documented_routes(&doc) {
        let url = format!(
            "http://{}{}",
            kassa.addr,
            path.replace("{file}", "1.png")
                .replace("{id}", "1")
                .replace("{delivery}", "1")
                .replace("{payment_id}", "1")
                .replace("{refund_id}", "1")
                .replace("{order_number}", "1")
        );
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let answer = kassa
            .http
            .request(method.clone(), &url)
            .send()
            .await
            .expect("sent");
        let status = answer.status().as_u16();
        if PUBLIC_ROUTES.contains(&(method.as_str().to_lowercase().as_str(), path.as_str())) {
            assert_eq!(status, 200, "{method} {path}");
            continue;
        }
        assert_eq!(status, 401, "{method} {path}: not served as documented");
        let body: Value = answer.json().await.expect("JSON");
        let problems = fits(&doc, &method, &path, 401, &body);
        assert!(problems.is_empty(), "{method} {path}: {problems:?}");
    }
    let unknown = kassa
        .http
        .get(format!("http://{}/api/v1/nowhere", kassa.addr))
        .send()
        .await
        .expect("sent");
    assert_eq!(unknown.status(), 404);
}

on_both_databases!(
    real_answers_fit_the_documented_shapes,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let doc = fetch_document(&kassa).await;
        let api = Api {
            kassa: &kassa,
            key: &key,
            doc: &doc,
        };
        use Method as M;

        // ApiPay: the catalog, an invoice from a cart with a discount, paid, refunded.
        let made = api
            .call(M::POST, "/api/v1/catalog", "/api/v1/catalog", 201,
                  Some(json!({"items": [{"name": "Coffee", "selling_price": 1200, "unit_id": 1, "barcode": "4870001"}]})))
            .await;
        let item = made["data"][0]["id"].as_i64().expect("item id");
        api.call(M::GET, "/api/v1/catalog", "/api/v1/catalog", 200, None)
            .await;
        api.call(
            M::GET,
            "/api/v1/catalog/units",
            "/api/v1/catalog/units",
            200,
            None,
        )
        .await;
        api.call(
            M::PATCH,
            &format!("/api/v1/catalog/{item}"),
            "/api/v1/catalog/{id}",
            200,
            Some(json!({"name": "Coffee, large"})),
        )
        .await;
        let invoice = api
            .call(M::POST, "/api/v1/invoices", "/api/v1/invoices", 201,
                  Some(json!({"phone_number": "87001234567", "cart_items": [{"catalog_item_id": item, "count": 2}],
                              "discount_percentage": 10, "description": "Order 1", "external_order_id": "order-1"})))
            .await;
        assert!(invoice["items"][0]["id"].is_i64(), "{invoice}");
        let id = invoice["id"].as_i64().expect("invoice id");
        let native = api
            .call(M::POST, "/api/v1/invoices", "/api/v1/invoices", 201,
                  Some(json!({"phone_number": "87001234567", "cart_items": [{"Name": "Bag", "Price": 50, "Count": 1,
                              "NomenclatureId": 7, "Type": "FAST_SALE", "UnitId": 1}]})))
            .await;
        assert_eq!(native["items"][0]["Type"], "FAST_SALE");
        api.call(
            M::POST,
            &format!("/api/v1/sandbox/invoices/{id}/pay"),
            "/api/v1/sandbox/invoices/{id}/pay",
            200,
            None,
        )
        .await;
        api.call(
            M::GET,
            &format!("/api/v1/invoices/{id}"),
            "/api/v1/invoices/{id}",
            200,
            None,
        )
        .await;
        api.call(
            M::GET,
            "/api/v1/invoices?status[]=paid",
            "/api/v1/invoices",
            200,
            None,
        )
        .await;
        api.call(
            M::GET,
            "/api/v1/invoices/stats?period=month",
            "/api/v1/invoices/stats",
            200,
            None,
        )
        .await;
        api.call(
            M::POST,
            "/api/v1/invoices/status/check",
            "/api/v1/invoices/status/check",
            200,
            Some(json!({"invoice_ids": [id]})),
        )
        .await;
        let refunded = api
            .call(
                M::POST,
                &format!("/api/v1/invoices/{id}/refund"),
                "/api/v1/invoices/{id}/refund",
                201,
                Some(json!({"amount": 100, "reason": "Broken cup"})),
            )
            .await;
        let refund = refunded["refund"]["id"].as_i64().expect("refund id");
        api.call(
            M::GET,
            &format!("/api/v1/invoices/{id}/refunds"),
            "/api/v1/invoices/{id}/refunds",
            200,
            None,
        )
        .await;
        api.call(M::GET, "/api/v1/refunds", "/api/v1/refunds", 200, None)
            .await;
        api.call(
            M::GET,
            &format!("/api/v1/refunds/{refund}"),
            "/api/v1/refunds/{id}",
            200,
            None,
        )
        .await;
        let flat = api
            .call(
                M::POST,
                "/api/v1/invoices",
                "/api/v1/invoices",
                201,
                Some(json!({"phone_number": "87001234567", "amount": 700})),
            )
            .await;
        let flat = flat["id"].as_i64().expect("id");
        api.call(
            M::POST,
            &format!("/api/v1/invoices/{flat}/cancel"),
            "/api/v1/invoices/{id}/cancel",
            200,
            None,
        )
        .await;

        // Subscriptions: made, read, changed, paused, resumed, cancelled, their invoices.
        let sub = api
            .call(M::POST, "/api/v1/subscriptions", "/api/v1/subscriptions", 201,
                  Some(json!({"phone_number": "87001234567", "amount": 5000, "billing_period": "monthly",
                              "bill_immediately": true, "metadata": {"plan": "pro"}, "subscriber_name": "Aigerim"})))
            .await;
        let sub = sub["id"].as_i64().expect("subscription id");
        let path = |tail: &str| format!("/api/v1/subscriptions/{sub}{tail}");
        api.call(M::GET, &path(""), "/api/v1/subscriptions/{id}", 200, None)
            .await;
        api.call(
            M::GET,
            "/api/v1/subscriptions",
            "/api/v1/subscriptions",
            200,
            None,
        )
        .await;
        api.call(
            M::GET,
            &path("/invoices"),
            "/api/v1/subscriptions/{id}/invoices",
            200,
            None,
        )
        .await;
        api.call(
            M::PUT,
            &path(""),
            "/api/v1/subscriptions/{id}",
            200,
            Some(json!({"amount": 6000})),
        )
        .await;
        api.call(
            M::POST,
            &path("/pause"),
            "/api/v1/subscriptions/{id}/pause",
            200,
            None,
        )
        .await;
        api.call(
            M::POST,
            &path("/resume"),
            "/api/v1/subscriptions/{id}/resume",
            200,
            None,
        )
        .await;
        api.call(
            M::POST,
            &path("/cancel"),
            "/api/v1/subscriptions/{id}/cancel",
            200,
            None,
        )
        .await;
        api.call(M::GET, &path(""), "/api/v1/subscriptions/{id}", 200, None)
            .await;

        // Webhook endpoints (never called here: the gateway is stepped).
        let hook = api
            .call(M::POST, "/api/v1/webhooks", "/api/v1/webhooks", 201,
                  Some(json!({"url": "http://127.0.0.1:9/hook", "format": "xpayment", "description": "Shop"})))
            .await;
        let hook = hook["id"].as_i64().expect("webhook id");
        let path = |tail: &str| format!("/api/v1/webhooks/{hook}{tail}");
        api.call(M::GET, "/api/v1/webhooks", "/api/v1/webhooks", 200, None)
            .await;
        api.call(M::GET, &path(""), "/api/v1/webhooks/{id}", 200, None)
            .await;
        api.call(
            M::PATCH,
            &path(""),
            "/api/v1/webhooks/{id}",
            200,
            Some(json!({"description": null})),
        )
        .await;
        api.call(
            M::PUT,
            &path(""),
            "/api/v1/webhooks/{id}",
            200,
            Some(json!({"events": ["payment.completed"]})),
        )
        .await;
        api.call(
            M::POST,
            &path("/rotate-secret"),
            "/api/v1/webhooks/{id}/rotate-secret",
            200,
            None,
        )
        .await;
        // Sent now, and refused (nothing listens there): logged with the attempt's error.
        let sent = api
            .call(
                M::POST,
                &path("/test"),
                "/api/v1/webhooks/{id}/test",
                200,
                None,
            )
            .await;
        assert_eq!(sent["success"], false, "{sent}");
        let simulated = api
            .call(
                M::POST,
                "/v1/webhook-simulate",
                "/v1/webhook-simulate",
                200,
                Some(json!({"event": "payment.completed", "merchant_order_id": "order-2"})),
            )
            .await;
        assert_eq!(simulated["results"][0]["success"], false, "{simulated}");
        api.call(
            M::POST,
            "/webhook-simulate",
            "/webhook-simulate",
            404,
            Some(json!({"event": "payment.expired", "subscription_id": "nope"})),
        )
        .await;
        let log = api
            .call(
                M::GET,
                &path("/deliveries"),
                "/api/v1/webhooks/{id}/deliveries",
                200,
                None,
            )
            .await;
        assert!(
            log["data"][0]["attempt_log"][0]["error"].is_string(),
            "{log}"
        );
        let delivery = log["data"][0]["id"].as_i64().expect("delivery id");
        api.call(
            M::POST,
            &path(&format!("/deliveries/{delivery}/redeliver")),
            "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
            202,
            None,
        )
        .await;
        api.call(
            M::GET,
            "/v1/webhook-simulate/subscriptions",
            "/v1/webhook-simulate/subscriptions",
            200,
            None,
        )
        .await;
        api.call(
            M::GET,
            "/webhook-simulate/subscriptions",
            "/webhook-simulate/subscriptions",
            200,
            None,
        )
        .await;

        // xPayment: a payment by phone, a link, the paid invoice seen as a payment and refunded.
        let payment = api
            .call(
                M::POST,
                "/v1/payments",
                "/v1/payments",
                201,
                Some(
                    json!({"payer_phone": "+77001234567", "amount": 1500.5, "comment": "Order 2",
                              "merchant_order_id": "order-2", "metadata": {"cart": [1]}}),
                ),
            )
            .await;
        let payment = payment["payment_id"]
            .as_str()
            .expect("payment id")
            .to_owned();
        api.call(
            M::GET,
            &format!("/v1/payments/{payment}"),
            "/v1/payments/{payment_id}",
            200,
            None,
        )
        .await;
        api.call(
            M::POST,
            &format!("/payments/{payment}/cancel"),
            "/payments/{payment_id}/cancel",
            200,
            Some(json!({"reason": "Changed mind"})),
        )
        .await;
        api.call(M::GET, "/v1/payments?limit=1", "/v1/payments", 200, None)
            .await;
        api.call(
            M::POST,
            "/v1/payments/link",
            "/v1/payments/link",
            200,
            Some(json!({"amount": 500, "merchant_order_id": "order-3"})),
        )
        .await;
        let paid = api
            .call(
                M::GET,
                "/v1/payments?merchant_order_id=order-1",
                "/v1/payments",
                200,
                None,
            )
            .await;
        let paid = paid["data"][0]["payment_id"]
            .as_str()
            .expect("paid payment")
            .to_owned();
        let xrefund = api
            .call(
                M::POST,
                &format!("/v1/payments/{paid}/refund"),
                "/v1/payments/{payment_id}/refund",
                202,
                Some(json!({"amount": 50})),
            )
            .await;
        let xrefund = xrefund["refund_id"].as_str().expect("refund id").to_owned();
        api.call(
            M::GET,
            &format!("/v1/payments/{paid}/refunds"),
            "/v1/payments/{payment_id}/refunds",
            200,
            None,
        )
        .await;
        api.call(M::GET, "/v1/refunds", "/v1/refunds", 200, None)
            .await;
        api.call(
            M::GET,
            &format!("/refunds/{xrefund}"),
            "/refunds/{refund_id}",
            200,
            None,
        )
        .await;

        // The gateway's status and the sandbox clock.
        api.call(M::GET, "/api/v1/status", "/api/v1/status", 200, None)
            .await;
        api.call(
            M::GET,
            "/api/v1/sandbox/clock",
            "/api/v1/sandbox/clock",
            200,
            None,
        )
        .await;

        // Errors, in each surface's body.
        api.call(
            M::POST,
            "/api/v1/invoices",
            "/api/v1/invoices",
            422,
            Some(json!({})),
        )
        .await;
        api.call(
            M::GET,
            "/api/v1/invoices/999999",
            "/api/v1/invoices/{id}",
            404,
            None,
        )
        .await;
        api.call(
            M::POST,
            &format!("/api/v1/invoices/{flat}/cancel"),
            "/api/v1/invoices/{id}/cancel",
            400,
            None,
        )
        .await;
        api.call(
            M::POST,
            "/v1/payments",
            "/v1/payments",
            400,
            Some(json!({"amount": "x"})),
        )
        .await;
        api.call(
            M::GET,
            "/v1/payments/nope",
            "/v1/payments/{payment_id}",
            404,
            None,
        )
        .await;
        api.call(
            M::POST,
            &format!("/v1/payments/{payment}/cancel"),
            "/v1/payments/{payment_id}/cancel",
            409,
            None,
        )
        .await;
        api.call(
            M::DELETE,
            &format!("/api/v1/catalog/{item}"),
            "/api/v1/catalog/{id}",
            200,
            None,
        )
        .await;
    }
);

/// Requests with the demo organization's key, each answer checked against the document.
struct Api<'a> {
    kassa: &'a Kassa,
    key: &'a str,
    doc: &'a Value,
}

impl Api<'_> {
    /// `method url` (with `body`), expecting `status`; the answer must fit what the document
    /// says `method documented` answers with `status`. The answer's JSON.
    async fn call(
        &self,
        method: Method,
        url: &str,
        documented: &str,
        status: u16,
        body: Option<Value>,
    ) -> Value {
        let mut request = self
            .kassa
            .http
            .request(method.clone(), format!("http://{}{url}", self.kassa.addr))
            .header("X-API-Key", self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("sent");
        let got = answer.status().as_u16();
        let json: Value = answer.json().await.expect("a JSON answer");
        assert_eq!(got, status, "{method} {url}: {json}");
        let problems = fits(self.doc, &method, documented, status, &json);
        assert!(
            problems.is_empty(),
            "{method} {url} ({status}): {problems:#?}\n{json:#}"
        );
        json
    }
}

/// What does not fit between `body` and the JSON schema the document gives `method path` for
/// `status` (empty when it fits).
fn fits(doc: &Value, method: &Method, path: &str, status: u16, body: &Value) -> Vec<String> {
    let op = &doc["paths"][path][method.as_str().to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = resolve(doc, &op["responses"][status.to_string()]);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents no JSON {status}"
    );
    let mut problems = Vec::new();
    check(doc, schema, body, "$", &mut problems);
    problems
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let target = reference.strip_prefix('#').expect("a local reference");
            resolve(doc, doc.pointer(target).expect("the reference resolves"))
        }
        None => value,
    }
}

/// The subset of JSON Schema the document uses: `$ref`, `allOf`, `oneOf`, `type` (a name or
/// a list with `null`), `enum`, `properties`, `required`, `items`. An object's keys must all
/// be named by its schema (it lists `properties`).
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(choices) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let fitting = choices.iter().any(|choice| {
            let mut inner = Vec::new();
            check(doc, choice, value, at, &mut inner);
            inner.is_empty()
        });
        if !fitting {
            problems.push(format!("{at}: fits none of the choices"));
        }
        return;
    }
    // `allOf` (a flattened struct): the parts' properties and requirements together.
    let mut properties = serde_json::Map::new();
    let mut required: Vec<String> = Vec::new();
    let mut types: Vec<String> = Vec::new();
    let mut parts = vec![schema];
    while let Some(part) = parts.pop() {
        let part = resolve(doc, part);
        if let Some(all) = part["allOf"].as_array() {
            parts.extend(all.iter());
        }
        if let Some(props) = part["properties"].as_object() {
            properties.extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(req) = part["required"].as_array() {
            required.extend(req.iter().filter_map(|r| r.as_str().map(str::to_owned)));
        }
        match &part["type"] {
            Value::String(t) => types.push(t.clone()),
            Value::Array(ts) => {
                types.extend(ts.iter().filter_map(|t| t.as_str().map(str::to_owned)))
            }
            _ => {}
        }
    }
    if !types.is_empty() && !types.iter().any(|t| is_type(t, value)) {
        problems.push(format!("{at}: {value} is not of type {types:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            problems.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    match value {
        Value::Object(object) if !properties.is_empty() => {
            for name in &required {
                if !object.contains_key(name) {
                    problems.push(format!("{at}: required `{name}` is missing"));
                }
            }
            for (name, inner) in object {
                match properties.get(name) {
                    Some(property) => {
                        check(doc, property, inner, &format!("{at}.{name}"), problems)
                    }
                    None => problems.push(format!("{at}: `{name}` is not documented")),
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, item) in items.iter().enumerate() {
                check(doc, &schema["items"], item, &format!("{at}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

fn is_type(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_loads_only_from_kassa() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, _, _) = Kassa::stepped_demo(&test, dir.path()).await;
    let base = format!("http://{}", kassa.addr);
    let page = kassa
        .http
        .get(format!("{base}/docs"))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("http"), "{csp}");
    let html = page.text().await.expect("text");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
        "{html}"
    );

    // Every file the page names is Kassa's, under /docs/, and served.
    let mut assets = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in html.split(attribute).skip(1) {
            assets.push(piece.split('"').next().unwrap_or_default().to_owned());
        }
    }
    assert!(assets.len() >= 4, "{assets:?}");
    for asset in &assets {
        assert!(asset.starts_with("/docs/"), "{asset} is not Kassa's");
        let answer = kassa
            .http
            .get(format!("{base}{asset}"))
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), 200, "{asset}");
    }
    // The page reads this server's document, and asks no validator elsewhere.
    let init = kassa
        .http
        .get(format!("{base}/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(init.contains("\"url\": \"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    assert!(
        !init.contains("http://") && !init.contains("https://"),
        "{init}"
    );
    // `/docs/` works as well, and an unknown file is 404.
    let slash = kassa
        .http
        .get(format!("{base}/docs/"))
        .send()
        .await
        .expect("sent");
    assert_eq!(slash.status(), 200);
    let missing = kassa
        .http
        .get(format!("{base}/docs/nothing.js"))
        .send()
        .await
        .expect("sent");
    assert_eq!(missing.status(), 404);
}
