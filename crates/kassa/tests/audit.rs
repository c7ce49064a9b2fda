//! The audit log on both databases: the entries of a full flow made through the API by a key
//! (invoices, a payment's refund, a cancel, the catalog, a subscription, webhook endpoints and
//! a rotated secret), by the CLI and by a dashboard user, each with who, from where and what;
//! none holding a secret; nothing recorded for a refused request; filters of `kassa audit list`
//! and of the dashboard page (over HTTP and in Chromium); entries forgotten after the retention.

mod common;

use std::time::Duration;

use common::served::{Served, Visitor};
use common::Kassa;
use kassa::db::testing::TestDb;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Every string found under a key naming a secret (`secret`, `signing_secret`, …) in `value`.
fn secrets_in(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k.contains("secret") && s.len() >= 8 => {
                        found.push(s.clone())
                    }
                    other => secrets_in(other, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| secrets_in(v, found)),
        _ => {}
    }
}

/// Every entry of the audit log as the store reads it back, as JSON text (one per entry).
async fn all_entries(kassa: &Kassa) -> Vec<Value> {
    let filter = kassa::store::AuditFilter {
        limit: 1000,
        ..Default::default()
    };
    kassa
        .store()
        .audit()
        .list(&filter)
        .await
        .expect("audit entries")
        .into_iter()
        .map(|e| serde_json::to_value(e).expect("json"))
        .collect()
}

/// The entries with `action`.
fn with_action<'a>(entries: &'a [Value], action: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["action"] == action).collect()
}

/// A key's full flow through the API, stepped: every change recorded once, by the key, from
/// 127.0.0.1, with no secret; refused requests recorded nothing; the retention applied.
async fn flow_by_key(test: TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
    let prefix = kassa::secrets::api_key_prefix(&key).to_owned();
    let mut secrets = vec![key.clone()];

    let paid = kassa
        .invoice(&key, json!({"phone_number": "87001234567", "amount": 1500}))
        .await;
    let pay = kassa
        .post(
            &key,
            &format!("/sandbox/invoices/{}/pay", paid.id),
            json!({}),
        )
        .await;
    assert_eq!(pay.status, 200, "{:?}", pay.json);
    kassa
        .invoice_reaches(&key, paid.id, "status", "paid")
        .await
        .expect("paid");
    let refund = kassa
        .post(
            &key,
            &format!("/invoices/{}/refund", paid.id),
            json!({"amount": 500, "reason": "Broken cup"}),
        )
        .await;
    assert_eq!(refund.status, 201, "{:?}", refund.json);
    let cancelled = kassa
        .invoice(&key, json!({"phone_number": "87001234567", "amount": 700}))
        .await;
    let cancel = kassa
        .post(
            &key,
            &format!("/invoices/{}/cancel", cancelled.id),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, 200, "{:?}", cancel.json);
    let item = kassa
        .post(
            &key,
            "/catalog",
            json!({"items": [{"name": "Coffee", "selling_price": 1200, "unit_id": 1}]}),
        )
        .await;
    assert_eq!(item.status, 201, "{:?}", item.json);
    let sub = kassa
        .post(
            &key,
            "/subscriptions",
            json!({"phone_number": "87001234567", "amount": 5000, "billing_period": "monthly"}),
        )
        .await;
    assert_eq!(sub.status, 201, "{:?}", sub.json);
    let sub_id = sub.json["id"].as_i64().expect("subscription id");
    let paused = kassa
        .post(&key, &format!("/subscriptions/{sub_id}/pause"), json!({}))
        .await;
    assert_eq!(paused.status, 200, "{:?}", paused.json);
    let hook = kassa
        .post(
            &key,
            "/webhooks",
            json!({"url": "http://127.0.0.1:9/hook?token=do-not-log-me", "format": "apipay"}),
        )
        .await;
    assert_eq!(hook.status, 201, "{:?}", hook.json);
    secrets_in(&hook.json, &mut secrets);
    let hook_id = hook.json["id"].as_i64().expect("webhook id");
    let rotated = kassa
        .post(
            &key,
            &format!("/webhooks/{hook_id}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.json);
    secrets_in(&rotated.json, &mut secrets);
    assert!(
        secrets.len() >= 3,
        "the key and two webhook secrets: {secrets:?}"
    );

    let entries = all_entries(&kassa).await;
    for (action, target) in [
        ("invoice.created", format!("invoice:{}", paid.id)),
        ("invoice.created", format!("invoice:{}", cancelled.id)),
        ("invoice.cancelled", format!("invoice:{}", cancelled.id)),
        (
            "catalog_item.created",
            format!("catalog_item:{}", item.json["data"][0]["id"]),
        ),
        ("subscription.created", format!("subscription:{sub_id}")),
        ("subscription.paused", format!("subscription:{sub_id}")),
    ] {
        let found = with_action(&entries, action);
        assert!(
            found.iter().any(|e| e["target"] == target.as_str()),
            "{action} {target} in {entries:#?}"
        );
    }
    let refunds = with_action(&entries, "refund.created");
    assert_eq!(refunds.len(), 1, "{entries:#?}");
    assert_eq!(refunds[0]["details"]["amount"], "500.00");
    assert_eq!(with_action(&entries, "webhook_endpoint.created").len(), 1);
    assert_eq!(
        with_action(&entries, "webhook_endpoint.secret_rotated").len(),
        1
    );
    // Every entry here is the key's, from this machine, in this organization; the payment
    // itself (found at Kaspi by the gateway) is nobody's change and not in the log.
    for e in &entries {
        assert_eq!(e["actor_kind"], "api_key", "{e}");
        assert_eq!(e["actor"], prefix.as_str(), "{e}");
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
        assert_eq!(e["org_id"], org, "{e}");
    }
    assert!(entries
        .iter()
        .all(|e| !e["action"].as_str().unwrap_or("").contains("paid")));
    // No secret value, not even the webhook URL's query.
    let text = serde_json::to_string(&entries).expect("json");
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is in the audit log"
        );
    }
    assert!(!text.contains("do-not-log-me"), "{text}");
    assert!(text.contains("http://127.0.0.1:9/hook"), "{text}");

    // A refused request changes nothing and records nothing.
    let before = entries.len();
    let bad = kassa
        .post(
            &key,
            "/invoices",
            json!({"phone_number": "12", "amount": 1500}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let too_much = kassa
        .post(
            &key,
            &format!("/invoices/{}/refund", paid.id),
            json!({"amount": 5000}),
        )
        .await;
    assert!(too_much.status >= 400, "{:?}", too_much.json);
    assert_eq!(all_entries(&kassa).await.len(), before);

    // Kept for the retention (365 days by default), then forgotten.
    kassa.advance(Duration::from_secs(364 * 24 * 3600)).await;
    assert_eq!(all_entries(&kassa).await.len(), before);
    kassa.advance(Duration::from_secs(2 * 24 * 3600)).await;
    assert_eq!(all_entries(&kassa).await.len(), 0);
    kassa.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_flow_sqlite() {
    flow_by_key(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_flow_postgres() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    flow_by_key(test).await;
}

/// The CLI's and a dashboard user's changes, `kassa audit list` and its filters, the
/// dashboard's page and its filters (over HTTP, then in Chromium).
async fn people(test: TestDb) {
    let served = Served::start(test.url()).await;
    let base = served.url("");
    let key = served.cli(
        &["api-key", "create", "--org", "demo", "--name", "shop"],
        "",
    );
    let key = key.trim();
    served.cli(
        &[
            "user",
            "create",
            "--org",
            "demo",
            "--email",
            "viewer@example.com",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "viewer-password-1\n",
    );

    // The owner signs in and makes a key on the dashboard, then revokes it.
    let mut owner = Visitor::new(&base);
    let path = &served.first_link[served.first_link.find("/dashboard/").expect("path")..];
    assert_eq!(owner.get(path).await.status, StatusCode::SEE_OTHER);
    let page = owner.get("/dashboard/api-keys").await;
    let made = owner
        .post(
            "/dashboard/api-keys",
            &[
                ("name", "from the dashboard"),
                ("scope", "invoices:write"),
                ("csrf_token", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let at = made.body.find("id=\"new-key\"").expect("the new key shown");
    let shown = &made.body[at..];
    let shown_key = &shown[shown.find('>').expect(">") + 1..shown.find("</div>").expect("end")];
    let key_id: i64 = {
        let at = made.body.find("data-key-id=\"").expect("key id") + "data-key-id=\"".len();
        made.body[at..at + made.body[at..].find('"').expect("quote")]
            .parse()
            .expect("numeric")
    };
    let revoked = owner
        .post(
            &format!("/dashboard/api-keys/{key_id}/revoke"),
            &[("csrf_token", &made.csrf())],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);

    // An invoice by the dashboard's form: the API's handler in process, as the user.
    let form = owner.get("/dashboard/invoices/new").await;
    let by_form = owner
        .post(
            "/dashboard/invoices/new",
            &[
                ("phone_number", "87001234567"),
                ("amount", "1234"),
                ("csrf_token", &form.csrf()),
            ],
        )
        .await;
    assert_eq!(by_form.status, StatusCode::SEE_OTHER, "{}", by_form.body);

    // An invoice by the CLI's key over HTTP.
    let created = reqwest::Client::new()
        .post(served.url("/api/v1/invoices"))
        .header("X-API-Key", key)
        .json(&json!({"phone_number": "87001234567", "amount": 990}))
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), 201);

    let list = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["audit", "list", "--org", "demo", "--json"];
        all.extend_from_slice(args);
        served
            .cli(&all, "")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    let entries = list(&[]);
    let by = |action: &str| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    };
    let cli_made = by("api_key.created");
    assert_eq!(cli_made.len(), 2, "{entries:#?}");
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    assert!(cli_made.iter().any(|e| e["actor_kind"] == "cli"
        && e["actor"] == format!("cli:{user}")
        && e["ip"].is_null()
        && e["details"]["name"] == "shop"));
    assert!(cli_made.iter().any(|e| e["actor_kind"] == "user"
        && e["actor"] == "demo@example.com"
        && e["ip"] == "127.0.0.1"
        && e["details"]["name"] == "from the dashboard"
        && e["details"]["scopes"] == "invoices:write"));
    let viewer = by("user.created");
    assert_eq!(viewer.len(), 1);
    assert_eq!(viewer[0]["target"], "user:viewer@example.com");
    assert_eq!(viewer[0]["details"]["role"], "viewer");
    let revoke = by("api_key.revoked");
    assert_eq!(revoke.len(), 1);
    assert_eq!(revoke[0]["actor"], "demo@example.com");
    assert_eq!(revoke[0]["target"], format!("api_key:{key_id}"));
    let invoice = by("invoice.created");
    assert_eq!(invoice.len(), 2);
    assert_eq!(invoice[0]["actor"], kassa::secrets::api_key_prefix(key));
    assert_eq!(invoice[0]["details"]["amount"], "990.00");
    assert_eq!(invoice[1]["actor"], "demo@example.com");
    assert_eq!(invoice[1]["details"]["amount"], "1234.00");
    let text = serde_json::to_string(&entries).expect("json");
    for secret in [key, shown_key, "viewer-password-1"] {
        assert!(!text.contains(secret), "a secret is in the audit log");
    }

    // Filters: who, what, when.
    let mine = list(&["--actor", "DEMO@example"]);
    assert_eq!(mine.len(), 3, "{mine:#?}");
    assert!(mine.iter().all(|e| e["actor"] == "demo@example.com"));
    let keys = list(&["--action", "api_key"]);
    assert_eq!(keys.len(), 3, "{keys:#?}");
    let exact = list(&["--action", "api_key.revoked"]);
    assert_eq!(exact.len(), 1);
    assert!(list(&["--since", "2999-01-01"]).is_empty());
    assert_eq!(list(&["--until", "2999-01-01"]).len(), entries.len());

    // The dashboard's page: the organization's entries, filtered the same way.
    let page = owner.get("/dashboard/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    for action in [
        "api_key.created",
        "api_key.revoked",
        "user.created",
        "invoice.created",
    ] {
        assert!(
            page.body.contains(&format!("data-action=\"{action}\"")),
            "{action}"
        );
    }
    let page = owner
        .get("/dashboard/audit?who=demo%40example.com&what=api_key")
        .await;
    assert_eq!(
        page.body.matches("data-action=").count(),
        2,
        "{}",
        page.body
    );
    let page = owner.get("/dashboard/audit?date_from=2026-02-31").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body.matches("data-action=").count(), 0);
    assert!(page.body.contains("ГГГГ-ММ-ДД"), "the bad date is named");
    // A viewer reads it too; another organization's user sees none of it.
    let mut viewer = Visitor::new(&base);
    viewer
        .sign_in("viewer@example.com", "viewer-password-1")
        .await;
    assert!(viewer
        .get("/dashboard/audit")
        .await
        .body
        .contains("data-action=\"api_key.created\""));
    served.cli(&["org", "create", "other", "--name", "Other"], "");
    served.cli(
        &[
            "user",
            "create",
            "--org",
            "other",
            "--email",
            "o@other.example",
            "--password-stdin",
        ],
        "other-password-1\n",
    );
    let mut other = Visitor::new(&base);
    other.sign_in("o@other.example", "other-password-1").await;
    // Only its own: the organization made and its user, by the CLI.
    let theirs = other.get("/dashboard/audit").await;
    assert_eq!(
        theirs.body.matches("data-action=").count(),
        2,
        "{}",
        theirs.body
    );
    assert!(theirs.body.contains("data-action=\"organization.created\""));
    assert!(theirs.body.contains("user:o@other.example"));
    assert!(!theirs.body.contains("demo@example.com") && !theirs.body.contains("api_key."));

    if let Some(browser) = common::browser::start().await {
        browser.goto(&served.login_link("demo@example.com")).await;
        browser.goto(&served.url("/dashboard/audit")).await;
        browser.wait_text("#audit", "api_key.revoked", WAIT).await;
        browser.fill("#audit-filters input[name=who]", "cli:").await;
        browser.click("#audit-filter").await;
        let shown = common::wait_for(WAIT, || async {
            let shown = browser.try_text("#audit").await?;
            (!shown.contains("api_key.revoked")).then_some(shown)
        })
        .await
        .expect("the filtered page");
        assert!(shown.contains("user.created"), "{shown}");
        assert!(shown.contains(&format!("cli:{user}")), "{shown}");
        browser.close().await;
    }
    let Served {
        child, data_dir, ..
    } = served;
    common::terminate(child).await;
    drop(data_dir);
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sqlite() {
    people(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_postgres() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    people(test).await;
}
