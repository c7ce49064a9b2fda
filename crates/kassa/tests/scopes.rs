//! Scoped API keys against a running sandbox gateway, on both databases:
//!
//! - every operation of the OpenAPI document (which `tests/openapi.rs` keeps equal to the
//!   routes served) names its scope, refuses a key without it with 403 in its surface's format
//!   naming the scope, and lets a key holding only that scope past the check;
//! - each scope on both surfaces: a key with only it does its work, and gets 403 for every
//!   other kind; a refused request stores nothing;
//! - `write` includes `read` of the same resource, never of another;
//! - the dashboard's key page (real Chromium): a key made with some scopes ticked is listed
//!   with them, and the key it shows is held to them over HTTP.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{browser, count, Answer, Kassa};
use kassa::db::testing::TestDb;
use kassa::domain::{Resource, Scope, Scopes};
use kassa::secrets::new_api_key;
use reqwest::Method;
use serde_json::{json, Value};

/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// A new key of `org` holding `scopes` (texts, e.g. `invoices:read`).
async fn scoped_key(kassa: &Kassa, org: i64, scopes: &[&str]) -> String {
    let scopes = Scopes::from_list(scopes).expect("valid scopes");
    let (raw, prefix) = new_api_key();
    let hash = kassa.state.master_key.api_key_hash(&raw);
    kassa
        .store()
        .orgs()
        .create_scoped_api_key(org, "scoped", &prefix, &hash, scopes)
        .await
        .expect("key stored");
    raw
}

/// `method path` on the server root with `key` and a JSON body.
async fn call(kassa: &Kassa, method: &Method, path: &str, key: &str, body: &Value) -> Answer {
    let r = kassa
        .http
        .request(method.clone(), format!("http://{}{path}", kassa.addr))
        .header("X-API-Key", key)
        .json(body)
        .send()
        .await
        .expect("request sent");
    Answer::read(r).await
}

/// Asserts `answer` is the surface's 403 naming `scope`.
fn refused(answer: &Answer, xpayment: bool, scope: &str, what: &str) {
    let message = format!("This API key lacks the scope {scope}.");
    let code = if xpayment { "FORBIDDEN" } else { "forbidden" };
    assert_eq!(
        (answer.status, &answer.json),
        (403, &json!({"error": code, "message": message})),
        "{what}"
    );
}

/// The key that holds everything but `scope`: every other resource in full, and for a write
/// the read of the same resource.
fn all_but(scope: Scope) -> Vec<String> {
    let mut held: Vec<String> = Resource::ALL
        .into_iter()
        .filter(|r| *r != scope.resource)
        .map(|r| Scope::write(r).to_string())
        .collect();
    if scope == Scope::write(scope.resource) {
        held.push(Scope::read(scope.resource).to_string());
    }
    held
}

async fn every_operation_has_a_scope(test: TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, org, _) = Kassa::stepped_demo(&test, dir.path()).await;
    let doc: Value = kassa
        .http
        .get(format!("http://{}/openapi.json", kassa.addr))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("JSON");
    let mut keys: HashMap<Vec<String>, String> = HashMap::new();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let security = op["security"].as_array().expect("security listed");
            if security.is_empty() {
                continue; // The public ones: status, this document, its page.
            }
            let scopes: Vec<&str> = security[0]["ApiKeyAuth"]
                .as_array()
                .map(|s| s.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert_eq!(
                scopes.len(),
                1,
                "{method} {path} names no scope: {security:?}"
            );
            assert_eq!(security[1]["BearerAuth"][0], scopes[0], "{method} {path}");
            assert!(op["responses"]["403"].is_object(), "{method} {path}: 403");
            let scope = Scope::parse(scopes[0]).expect("a scope");
            let xpayment = !path.starts_with("/api/v1/");
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { "1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");

            let lacking = all_but(scope);
            if !keys.contains_key(&lacking) {
                let names: Vec<&str> = lacking.iter().map(String::as_str).collect();
                keys.insert(lacking.clone(), scoped_key(&kassa, org, &names).await);
            }
            let answer = call(&kassa, &m, &concrete, &keys[&lacking], &json!({})).await;
            refused(
                &answer,
                xpayment,
                &scope.to_string(),
                &format!("{m} {path}"),
            );

            let only = vec![scope.to_string()];
            if !keys.contains_key(&only) {
                keys.insert(only.clone(), scoped_key(&kassa, org, &[&only[0]]).await);
            }
            let answer = call(&kassa, &m, &concrete, &keys[&only], &json!({})).await;
            assert!(
                ![401, 403, 500].contains(&answer.status),
                "{m} {path} with {scope}: {} {:?}",
                answer.status,
                answer.json
            );
            checked += 1;
        }
    }
    // ApiPay's 40 and xPayment's 14 twice (under `/v1` and at the root).
    assert_eq!(checked, 40 + 14 * 2);
}

on_both_databases!(every_documented_operation, every_operation_has_a_scope);

/// A key with only `scope` gets 403 naming each of `others` on ApiPay (`GET`/`POST` path).
async fn refused_elsewhere(kassa: &Kassa, key: &str, others: &[(Method, &str, &str)]) {
    for (m, path, scope) in others {
        let body = json!({});
        let answer = call(kassa, m, &format!("/api/v1{path}"), key, &body).await;
        refused(&answer, false, scope, &format!("{m} {path}"));
    }
}

async fn each_scope_on_both_surfaces(test: TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, org, full) = Kassa::stepped_demo(&test, dir.path()).await;
    let db = kassa.state.db.clone();
    let invoice = json!({"amount": 1000, "phone_number": "87001234567"});
    let payment = json!({"payer_phone": "+77001234567", "amount": 1500});
    let get = Method::GET;
    let post = Method::POST;

    // invoices:read reads on both surfaces; creating is refused and stores nothing.
    let made = kassa.invoice(&full, invoice.clone()).await;
    let reader = scoped_key(&kassa, org, &["invoices:read"]).await;
    assert_eq!(kassa.get(&reader, "/invoices").await.status, 200);
    assert_eq!(
        kassa
            .get(&reader, "/invoices/stats?period=today")
            .await
            .status,
        200
    );
    let one = kassa.get(&reader, &format!("/invoices/{}", made.id)).await;
    assert_eq!(one.status, 200);
    let checked = kassa
        .post(
            &reader,
            "/invoices/status/check",
            json!({"invoice_ids": [made.id]}),
        )
        .await;
    assert_eq!(
        checked.status, 200,
        "a status check is a read: {:?}",
        checked.json
    );
    let x = kassa.x(get.clone(), &reader, "/payments", None).await;
    assert_eq!(x.status, 200);
    let before = count(&db, "SELECT COUNT(*) AS n FROM invoices").await;
    let answer = kassa.post(&reader, "/invoices", invoice.clone()).await;
    refused(
        &answer,
        false,
        "invoices:write",
        "create with invoices:read",
    );
    let answer = kassa
        .x(post.clone(), &reader, "/payments", Some(payment.clone()))
        .await;
    refused(
        &answer,
        true,
        "invoices:write",
        "xPayment create with invoices:read",
    );
    let answer = kassa
        .post(&reader, &format!("/invoices/{}/cancel", made.id), json!({}))
        .await;
    refused(
        &answer,
        false,
        "invoices:write",
        "cancel with invoices:read",
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) AS n FROM invoices").await,
        before
    );
    refused_elsewhere(
        &kassa,
        &reader,
        &[
            (get.clone(), "/refunds", "refunds:read"),
            (post.clone(), "/subscriptions", "subscriptions:write"),
            (get.clone(), "/subscriptions", "subscriptions:read"),
            (get.clone(), "/catalog", "catalog:read"),
            (get.clone(), "/webhooks", "webhooks:read"),
        ],
    )
    .await;

    // invoices:write creates on both surfaces (and reads what it made), refunds nothing.
    let writer = scoped_key(&kassa, org, &["invoices:write"]).await;
    let created = kassa.invoice(&writer, invoice.clone()).await;
    assert_eq!(
        kassa
            .get(&writer, &format!("/invoices/{}", created.id))
            .await
            .status,
        200
    );
    let x = kassa
        .x(post.clone(), &writer, "/payments", Some(payment.clone()))
        .await;
    assert_eq!(x.status, 201, "{:?}", x.json);
    let paid = kassa
        .post(
            &writer,
            &format!("/sandbox/invoices/{}/pay", created.id),
            json!({}),
        )
        .await;
    assert_eq!(paid.json["status"], "paid", "{:?}", paid.json);
    let refunds_before = count(&db, "SELECT COUNT(*) AS n FROM refunds").await;
    let answer = kassa
        .post(
            &writer,
            &format!("/invoices/{}/refund", created.id),
            json!({"amount": 100}),
        )
        .await;
    refused(
        &answer,
        false,
        "refunds:write",
        "refund with invoices:write",
    );
    let payment_id = created.json["payment_id"].as_str().map(str::to_owned);
    let x_refund = format!(
        "/payments/{}/refund",
        payment_id.unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into())
    );
    let answer = kassa
        .x(post.clone(), &writer, &x_refund, Some(json!({})))
        .await;
    refused(
        &answer,
        true,
        "refunds:write",
        "xPayment refund with invoices:write",
    );
    let answer = kassa.x(get.clone(), &writer, "/refunds", None).await;
    refused(
        &answer,
        true,
        "refunds:read",
        "xPayment refunds with invoices:write",
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) AS n FROM refunds").await,
        refunds_before
    );
    refused_elsewhere(
        &kassa,
        &writer,
        &[
            (get.clone(), "/refunds", "refunds:read"),
            (post.clone(), "/catalog", "catalog:write"),
            (post.clone(), "/webhooks", "webhooks:write"),
        ],
    )
    .await;

    // refunds:write refunds on both surfaces and reads refunds; invoices are not its own.
    let refunder = scoped_key(&kassa, org, &["refunds:write"]).await;
    let refund = kassa
        .post(
            &refunder,
            &format!("/invoices/{}/refund", created.id),
            json!({"amount": 100}),
        )
        .await;
    assert_eq!(refund.status, 201, "{:?}", refund.json);
    assert_eq!(kassa.get(&refunder, "/refunds").await.status, 200);
    let x = kassa.x(get.clone(), &refunder, "/refunds", None).await;
    assert_eq!(x.status, 200);
    let answer = kassa.get(&refunder, "/invoices").await;
    refused(
        &answer,
        false,
        "invoices:read",
        "invoices with refunds:write",
    );
    let answer = kassa.x(get.clone(), &refunder, "/payments", None).await;
    refused(
        &answer,
        true,
        "invoices:read",
        "xPayment payments with refunds:write",
    );
    let refund_reader = scoped_key(&kassa, org, &["refunds:read"]).await;
    assert_eq!(kassa.get(&refund_reader, "/refunds").await.status, 200);
    let answer = kassa
        .post(
            &refund_reader,
            &format!("/invoices/{}/refund", created.id),
            json!({"amount": 100}),
        )
        .await;
    refused(&answer, false, "refunds:write", "refund with refunds:read");

    // subscriptions:write makes a subscription; the catalog is refused and stays empty.
    let subs = scoped_key(&kassa, org, &["subscriptions:write"]).await;
    let sub = kassa
        .post(
            &subs,
            "/subscriptions",
            json!({"amount": 100, "phone_number": "87001110005", "billing_period": "monthly"}),
        )
        .await;
    assert_eq!(sub.status, 201, "{:?}", sub.json);
    assert_eq!(
        kassa.get(&subs, "/subscriptions").await.json["meta"]["total"],
        1
    );
    let item = json!({"items": [{"name": "Латте", "selling_price": 1500, "unit_id": 1}]});
    let answer = kassa.post(&subs, "/catalog", item.clone()).await;
    refused(
        &answer,
        false,
        "catalog:write",
        "catalog with subscriptions:write",
    );
    refused_elsewhere(
        &kassa,
        &subs,
        &[(get.clone(), "/invoices", "invoices:read")],
    )
    .await;
    assert_eq!(kassa.get(&full, "/catalog").await.json["meta"]["total"], 0);
    let sub_reader = scoped_key(&kassa, org, &["subscriptions:read"]).await;
    let answer = kassa
        .post(
            &sub_reader,
            "/subscriptions",
            json!({"amount": 100, "phone_number": "87001110005", "billing_period": "monthly"}),
        )
        .await;
    refused(
        &answer,
        false,
        "subscriptions:write",
        "subscribe with subscriptions:read",
    );
    assert_eq!(
        kassa.get(&sub_reader, "/subscriptions").await.json["meta"]["total"],
        1
    );

    // catalog:write stores items; webhooks are not its own.
    let catalog = scoped_key(&kassa, org, &["catalog:write"]).await;
    let stored = kassa.post(&catalog, "/catalog", item.clone()).await;
    assert!(stored.status < 300, "{} {:?}", stored.status, stored.json);
    assert_eq!(
        kassa.get(&catalog, "/catalog").await.json["meta"]["total"],
        1
    );
    assert_eq!(kassa.get(&catalog, "/catalog/units").await.status, 200);
    refused_elsewhere(
        &kassa,
        &catalog,
        &[
            (post.clone(), "/webhooks", "webhooks:write"),
            (post.clone(), "/subscriptions", "subscriptions:write"),
        ],
    )
    .await;

    // webhooks:write makes an endpoint; a key without it stores none.
    let hooks = scoped_key(&kassa, org, &["webhooks:write"]).await;
    let endpoint = json!({"url": "http://127.0.0.1:9/hook"});
    let reader_hooks = scoped_key(&kassa, org, &["webhooks:read"]).await;
    let answer = kassa
        .post(&reader_hooks, "/webhooks", endpoint.clone())
        .await;
    refused(
        &answer,
        false,
        "webhooks:write",
        "endpoint with webhooks:read",
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) AS n FROM webhook_endpoints").await,
        0
    );
    let made = kassa.post(&hooks, "/webhooks", endpoint).await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    assert_eq!(kassa.get(&reader_hooks, "/webhooks").await.status, 200);
    let answer = kassa
        .x(
            post.clone(),
            &reader_hooks,
            "/webhook-simulate",
            Some(json!({})),
        )
        .await;
    refused(
        &answer,
        true,
        "webhooks:write",
        "simulate with webhooks:read",
    );
    refused_elsewhere(&kassa, &hooks, &[(get.clone(), "/catalog", "catalog:read")]).await;

    // A key made without a choice (the default) may do everything.
    assert_eq!(kassa.get(&full, "/webhooks").await.status, 200);
    assert_eq!(kassa.get(&full, "/refunds").await.status, 200);
}

on_both_databases!(each_scope, each_scope_on_both_surfaces);

/// The key page in Chromium: tick two scopes, make the key, see them listed, and the shown key
/// is held to them.
async fn key_page_in_browser(test: TestDb) {
    let Some(browser) = browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, org, _) = Kassa::stepped_demo(&test, dir.path()).await;
    let user = kassa
        .store()
        .users()
        .create_user(org, "keys@example.com", None, kassa::domain::Role::Owner)
        .await
        .expect("user");
    let link = kassa::dashboard::issue_login_link(kassa.store(), user.id)
        .await
        .expect("link");
    let root = format!("http://{}", kassa.addr);
    browser.goto(&format!("{root}{link}")).await;
    assert_eq!(browser.current_path().await, "/dashboard/");
    browser.goto(&format!("{root}/dashboard/api-keys")).await;

    // Nothing ticked: the form says so and makes no key.
    let keys_before = count(&kassa.state.db, "SELECT COUNT(*) AS n FROM api_keys").await;
    for scope in Scope::all() {
        let css = format!(
            "#scope-{}-{}",
            scope.resource.as_str(),
            scope.action.as_str()
        );
        browser.click(&css).await;
    }
    browser.click("#create-key").await;
    browser
        .wait_text("small[data-field=scopes]", "Отметьте", WAIT)
        .await;
    assert_eq!(
        count(&kassa.state.db, "SELECT COUNT(*) AS n FROM api_keys").await,
        keys_before
    );

    // Invoices to read, refunds to write.
    browser.fill("input[name=name]", "бухгалтерия").await;
    browser.click("#scope-invoices-read").await;
    browser.click("#scope-refunds-write").await;
    browser.click("#create-key").await;
    browser.wait_text("#new-key-card", "kassa_", WAIT).await;
    let raw = browser.text("#new-key").await;
    let key_id = browser
        .client
        .find(fantoccini::Locator::Css("#new-key"))
        .await
        .expect("the key")
        .attr("data-key-id")
        .await
        .expect("attr")
        .expect("an id");
    let row = format!("#keys tr[data-id='{key_id}'] td.scopes");
    let listed = browser
        .client
        .find(fantoccini::Locator::Css(&row))
        .await
        .expect("the row")
        .attr("data-scopes")
        .await
        .expect("attr");
    assert_eq!(listed.as_deref(), Some("invoices:read refunds:write"));
    assert!(browser.text(&row).await.contains("refunds:write"));

    // The shown key over HTTP: reads invoices and refunds, creates no invoice.
    assert_eq!(kassa.get(raw.trim(), "/invoices").await.status, 200);
    assert_eq!(kassa.get(raw.trim(), "/refunds").await.status, 200);
    let answer = kassa
        .post(
            raw.trim(),
            "/invoices",
            json!({"amount": 1000, "phone_number": "87001234567"}),
        )
        .await;
    refused(&answer, false, "invoices:write", "the dashboard's key");
    browser.close().await;
}

on_both_databases!(key_page, key_page_in_browser);
