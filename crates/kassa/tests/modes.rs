//! Test and live side by side on one running Kassa, on both databases: a server in LIVE mode
//! whose real Kaspi is a simulator run as its own HTTP server, one organization with a live key
//! and a test key (made by the real `kassa api-key create --mode test`). Each key sees only its
//! own side's invoices, refunds, stats and payments; the test side reaches the sandbox Kaspi
//! inside the server, never the live one; the sandbox payer takes test keys only; objects and
//! webhooks say `is_sandbox` as they should. In a real Chromium, the dashboard's switch shows
//! one side or the other.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::browser;
use common::receiver::Receiver;
use common::{Kassa, Options};
use kaspi_sim::{SimConfig, Simulator};
use kassa::db::testing::TestDb;
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const LIVE_CASHIER: &str = "7000000021";

/// `kassa <args>` on the server's data dir and database, to its end; its stdout.
async fn cli(dir: &Path, database_url: &str, args: &[&str]) -> String {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KASSA_") {
            cmd.env_remove(name);
        }
    }
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        cmd.env("RUST_LOG", "warn")
            .arg("--data-dir")
            .arg(dir)
            .arg("--database-url")
            .arg(database_url)
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the command finishes")
    .expect("kassa runs");
    assert!(
        out.status.success(),
        "kassa {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A live-mode server against `live_sim` (served over HTTP), stepped, with organization
/// `shop` whose cashier is logged in to `live_sim`; its id.
async fn live_server(test: &TestDb, dir: &Path, live_sim: &Simulator) -> (Kassa, i64) {
    let base = kaspi_sim::spawn(live_sim.clone()).await.expect("simulator");
    let mut options = Options::new(test.url(), dir).stepped();
    options.live_kaspi = Some(base);
    let kassa = Kassa::start(options).await;
    kassa.state.wait_started().await;
    assert!(kassa.state.sandbox.is_none(), "a live deployment");
    let org = common::connect(&kassa, live_sim, "shop", LIVE_CASHIER).await;
    (kassa, org)
}

/// Creates an ApiPay invoice with `key`; its JSON.
async fn invoice(kassa: &Kassa, key: &str, amount: &str, description: &str) -> Value {
    let made = kassa
        .post(
            key,
            "/invoices",
            json!({"amount": amount, "phone_number": "87001234567", "description": description}),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    made.json
}

/// The test mode of organization `org`, which must be made.
async fn test_mode_of(kassa: &Kassa, org: i64) -> kassa::store::Organization {
    kassa
        .store()
        .orgs()
        .test_twin(org)
        .await
        .expect("read")
        .expect("the test mode is made")
}

/// The amounts of the operations `sim` holds, as Kaspi writes them.
fn amounts(sim: &Simulator) -> Vec<String> {
    sim.operations()
        .iter()
        .map(|op| op.amount.to_string())
        .collect()
}

on_both_databases!(
    test_and_live_keys_of_one_organization_never_meet,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let live_sim = Simulator::new(SimConfig::default());
        let (kassa, org) = live_server(&test, dir.path(), &live_sim).await;

        // Keys as a person makes them; the first test key makes the test mode.
        let mut keys = Vec::new();
        for mode in [&["--name", "web"][..], &["--mode", "test"][..]] {
            let args = [&["api-key", "create", "--org", "shop"][..], mode].concat();
            let key = cli(dir.path(), test.url(), &args).await;
            keys.push(key.trim().to_owned());
        }
        let (live_key, test_key) = (keys[0].clone(), keys[1].clone());
        assert!(live_key.starts_with("kassa_live_"), "{live_key}");
        assert!(test_key.starts_with("kassa_test_"), "{test_key}");
        let twin = test_mode_of(&kassa, org).await;
        assert_eq!(twin.live_org_id, Some(org));
        // Audited: the test mode made, on the live organization's log; each key with its mode
        // (and its prefix, never the key), by the command.
        let entries = kassa
            .store()
            .audit()
            .list(&kassa::store::AuditFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("audit");
        let made: Vec<_> = entries
            .iter()
            .filter(|e| e.action == "organization.test_mode_created")
            .collect();
        assert_eq!(made.len(), 1, "{entries:?}");
        assert_eq!(made[0].org_id, Some(org));
        assert_eq!(made[0].details["test_org_id"], twin.id);
        for (key, org_id, mode) in [(&live_key, org, "live"), (&test_key, twin.id, "test")] {
            let entry = entries
                .iter()
                .find(|e| e.action == "api_key.created" && e.org_id == Some(org_id))
                .unwrap_or_else(|| panic!("{mode} key created: {entries:?}"));
            assert_eq!(entry.details["mode"], mode);
            assert_eq!(entry.details["prefix"], key[..16]);
            assert!(entry.actor.starts_with("cli:"), "{entry:?}");
            assert!(!format!("{entry:?}").contains(key.as_str()));
        }
        let listed = cli(
            dir.path(),
            test.url(),
            &["api-key", "list", "--org", "shop"],
        )
        .await;
        let line_of = |prefix: &str| {
            listed
                .lines()
                .find(|l| l.contains(prefix))
                .unwrap_or_else(|| panic!("{prefix} in {listed}"))
                .to_owned()
        };
        assert!(line_of(&live_key[..16]).contains(" live "), "{listed}");
        assert!(line_of(&test_key[..16]).contains(" test "), "{listed}");

        // Webhooks of each side, in both formats.
        let receiver = Receiver::start().await;
        for (key, side) in [(&live_key, "live"), (&test_key, "test")] {
            for format in ["apipay", "xpayment"] {
                let made = kassa
                    .post(
                        key,
                        "/webhooks",
                        json!({"url": receiver.url(&format!("/{side}/{format}")), "format": format}),
                    )
                    .await;
                assert_eq!(made.status, 201, "{:?}", made.json);
            }
        }

        let live = invoice(&kassa, &live_key, "1111.00", "live order").await;
        let test_invoice = invoice(&kassa, &test_key, "2222.00", "test order").await;
        assert_eq!(live["is_sandbox"], false, "{live}");
        assert_eq!(test_invoice["is_sandbox"], true, "{test_invoice}");
        let (live_id, test_id) = (
            live["id"].as_i64().expect("id"),
            test_invoice["id"].as_i64().expect("id"),
        );

        // The test invoice went to the sandbox inside the server, the live one to Kaspi.
        let sandbox = &kassa.state.gateway.terminals().sandbox().sim;
        assert!(
            amounts(&live_sim).iter().any(|a| a.starts_with("1111")),
            "{:?}",
            amounts(&live_sim)
        );
        assert!(
            !amounts(&live_sim).iter().any(|a| a.starts_with("2222")),
            "{:?}",
            amounts(&live_sim)
        );
        assert!(
            amounts(sandbox).iter().any(|a| a.starts_with("2222")),
            "{:?}",
            amounts(sandbox)
        );
        assert!(
            !amounts(sandbox).iter().any(|a| a.starts_with("1111")),
            "{:?}",
            amounts(sandbox)
        );

        // Neither key sees the other side's invoice.
        for (key, own, other) in [(&live_key, live_id, test_id), (&test_key, test_id, live_id)] {
            assert_eq!(
                kassa.get(key, &format!("/invoices/{own}")).await.status,
                200
            );
            let hidden = kassa.get(key, &format!("/invoices/{other}")).await;
            assert_eq!(hidden.status, 404, "{:?}", hidden.json);
            let list = kassa.get(key, "/invoices").await;
            assert_eq!(list.json["meta"]["total"], 1, "{:?}", list.json);
            assert_eq!(list.json["data"][0]["id"], own);
            let stats = kassa.get(key, "/invoices/stats?period=today").await;
            assert_eq!(stats.json["total_count"], 1, "{:?}", stats.json);
            let cancel = kassa
                .post(key, &format!("/invoices/{other}/cancel"), json!({}))
                .await;
            assert_eq!(cancel.status, 404, "{:?}", cancel.json);
        }

        // The sandbox payer: the test key pays its invoice; the live key is refused, for its
        // own invoice and for the test one alike.
        for (key, id, status) in [
            (&live_key, live_id, 400),
            (&live_key, test_id, 400),
            (&test_key, test_id, 200),
        ] {
            let acted = kassa
                .post(key, &format!("/sandbox/invoices/{id}/pay"), json!({}))
                .await;
            assert_eq!(acted.status, status, "{:?}", acted.json);
            if status == 400 {
                assert_eq!(acted.json["error"], "sandbox_action_refused");
                let message = acted.json["message"].as_str().unwrap_or_default();
                assert!(message.contains("test key"), "{message}");
            }
        }
        let paid = kassa.get(&test_key, &format!("/invoices/{test_id}")).await;
        assert_eq!(paid.json["status"], "paid");
        assert_eq!(paid.json["is_sandbox"], true);
        // The live invoice is still open at the live Kaspi; the clock is Kassa's own, so it
        // does not move in a live deployment, for either key.
        assert_eq!(
            kassa
                .get(&live_key, &format!("/invoices/{live_id}"))
                .await
                .json["status"],
            "pending"
        );
        for key in [&live_key, &test_key] {
            let clock = kassa
                .post(key, "/sandbox/clock/advance", json!({"days": 1}))
                .await;
            assert_eq!(clock.status, 400, "{:?}", clock.json);
            assert_eq!(clock.json["error"], "sandbox_action_refused");
        }

        // Refunds: the test side's, at the sandbox; the live key cannot reach it.
        for (key, status) in [(&live_key, 404), (&test_key, 201)] {
            let refund = kassa
                .post(
                    key,
                    &format!("/invoices/{test_id}/refund"),
                    json!({"amount": 100}),
                )
                .await;
            assert_eq!(refund.status, status, "{:?}", refund.json);
        }
        kassa.step().await;
        let refunds = kassa.get(&test_key, "/refunds").await;
        assert_eq!(refunds.json["meta"]["total"], 1, "{:?}", refunds.json);
        assert_eq!(
            refunds.json["data"][0]["is_sandbox"], true,
            "{:?}",
            refunds.json
        );
        let refunds = kassa.get(&live_key, "/refunds").await;
        assert_eq!(refunds.json["meta"]["total"], 0, "{:?}", refunds.json);
        assert!(!live_sim
            .operations()
            .iter()
            .any(|op| op.sale_type == "Return"));

        // xPayment: the same walls.
        let test_payment_id = kassa
            .store()
            .invoices()
            .invoice(twin.id, test_id)
            .await
            .expect("read")
            .expect("the test invoice")
            .payment_id;
        for (key, status) in [(&live_key, 404), (&test_key, 200)] {
            let path = format!("/payments/{test_payment_id}");
            let got = kassa.x(Method::GET, key, &path, None).await;
            assert_eq!(got.status, status, "{:?}", got.json);
            if status == 200 {
                assert_eq!(got.json["is_sandbox"], true, "{:?}", got.json);
                let path = format!("/payments/{test_payment_id}/refunds");
                let refunds = kassa.x(Method::GET, key, &path, None).await;
                assert_eq!(
                    refunds.json["data"][0]["is_sandbox"], true,
                    "{:?}",
                    refunds.json
                );
            }
        }
        let x_list = kassa.x(Method::GET, &live_key, "/payments", None).await;
        let listed: Vec<&Value> = x_list.json["data"]
            .as_array()
            .expect("data")
            .iter()
            .collect();
        assert!(
            listed
                .iter()
                .all(|p| p["payment_id"] != test_payment_id.as_str()),
            "{:?}",
            x_list.json
        );
        let x_made = kassa
            .x(
                Method::POST,
                &test_key,
                "/payments",
                Some(json!({"payer_phone": "+77001234567", "amount": 333})),
            )
            .await;
        assert!(
            x_made.status == 200 || x_made.status == 201,
            "{:?}",
            x_made.json
        );
        assert!(
            !amounts(&live_sim).iter().any(|a| a.starts_with("333")),
            "{:?}",
            amounts(&live_sim)
        );

        // The live invoice ends by the live key: its webhooks say is_sandbox false.
        let cancelled = kassa
            .post(&live_key, &format!("/invoices/{live_id}/cancel"), json!({}))
            .await;
        assert_eq!(cancelled.status, 200, "{:?}", cancelled.json);
        assert_eq!(cancelled.json["is_sandbox"], false);
        let listed = kassa.x(Method::GET, &live_key, "/payments", None).await;
        assert_eq!(
            listed.json["data"][0]["is_sandbox"], false,
            "{:?}",
            listed.json
        );
        kassa.step().await;
        let got = receiver.wait_for(6, WAIT).await;
        let body_of = |path: &str, event: &str| -> Value {
            got.iter()
                .map(|r| (r.path.clone(), r.json()))
                .find(|(p, b)| p == path && b["event"] == event)
                .unwrap_or_else(|| {
                    panic!(
                        "{event} at {path}: {:?}",
                        got.iter().map(|r| r.path.clone()).collect::<Vec<_>>()
                    )
                })
                .1
        };
        let test_paid = body_of("/test/apipay", "invoice.status_changed");
        assert_eq!(test_paid["invoice"]["id"], test_id);
        assert_eq!(test_paid["invoice"]["is_sandbox"], true);
        let test_refunded = body_of("/test/apipay", "invoice.refunded");
        assert_eq!(test_refunded["invoice"]["is_sandbox"], true);
        let test_x = body_of("/test/xpayment", "payment.completed");
        assert_eq!(test_x["is_sandbox"], true);
        let live_cancelled = body_of("/live/apipay", "invoice.status_changed");
        assert_eq!(live_cancelled["invoice"]["id"], live_id);
        assert_eq!(live_cancelled["invoice"]["is_sandbox"], false);
        let live_x = body_of("/live/xpayment", "payment.cancelled");
        assert_eq!(live_x["is_sandbox"], false);
        // Each side's endpoints heard only their own side.
        for r in &got {
            let body = r.json();
            let sandbox = body["invoice"]["is_sandbox"]
                .as_bool()
                .or(body["is_sandbox"].as_bool());
            assert_eq!(
                sandbox,
                Some(r.path.starts_with("/test/")),
                "{} {body}",
                r.path
            );
        }
        kassa.stop().await;
    }
);

/// Signs `browser` in as a new owner of `org_id` (a one-time link).
async fn sign_in(kassa: &Kassa, browser: &browser::Browser, org_id: i64) {
    let user = kassa
        .store()
        .users()
        .create_user(
            org_id,
            "owner@example.com",
            None,
            kassa::domain::Role::Owner,
        )
        .await
        .expect("user");
    let link = kassa::dashboard::issue_login_link(kassa.store(), user.id)
        .await
        .expect("link");
    browser.goto(&format!("http://{}{link}", kassa.addr)).await;
}

on_both_databases!(
    the_dashboard_switch_shows_one_side_at_a_time,
    |test: TestDb| async move {
        let Some(browser) = browser::start().await else {
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let live_sim = Simulator::new(SimConfig::default());
        let (kassa, org) = live_server(&test, dir.path(), &live_sim).await;
        let live_key = kassa.api_key(org).await;
        invoice(&kassa, &live_key, "1111.00", "LIVE-ORDER").await;

        sign_in(&kassa, &browser, org).await;
        let invoices = format!("http://{}/dashboard/invoices", kassa.addr);
        browser.goto(&invoices).await;
        browser.wait_text("main", "LIVE-ORDER", WAIT).await;
        assert!(!browser.text("body").await.contains("Тестовый режим:"));
        assert!(
            !browser.text("nav").await.contains("Песочница"),
            "no sandbox page on the live side"
        );

        // To test mode: made on the first switch, with its sandbox cashier; empty at first.
        browser.click("#mode-toggle").await;
        browser
            .wait_text("#test-mode-banner", "Тестовый режим", WAIT)
            .await;
        assert_eq!(browser.current_path().await, "/dashboard/invoices");
        assert!(!browser.text("main").await.contains("LIVE-ORDER"));
        let twin = test_mode_of(&kassa, org).await;
        let test_key = kassa.api_key(twin.id).await;
        let made = invoice(&kassa, &test_key, "2222.00", "TEST-ORDER").await;
        browser.goto(&invoices).await;
        browser.wait_text("main", "TEST-ORDER", WAIT).await;
        assert!(!browser.text("main").await.contains("LIVE-ORDER"));
        // The sandbox page is there in test mode, with the payer's buttons.
        assert!(browser.text("nav").await.contains("Песочница"));
        browser
            .goto(&format!("http://{}/dashboard/sandbox", kassa.addr))
            .await;
        let id = made["id"].as_i64().expect("id");
        browser.wait_text("#pending", &id.to_string(), WAIT).await;
        browser
            .goto(&format!("http://{}/dashboard/invoices/{id}", kassa.addr))
            .await;
        browser.click("#sandbox-pay").await;
        let paid = common::wait_for(WAIT, || async {
            let got = kassa.get(&test_key, &format!("/invoices/{id}")).await;
            (got.json["status"] == "paid").then_some(())
        })
        .await;
        assert!(paid.is_some(), "the payer's button paid the test invoice");

        // People and roles are the live organization's on both sides.
        browser
            .goto(&format!("http://{}/dashboard/team", kassa.addr))
            .await;
        browser.wait_text("main", "owner@example.com", WAIT).await;
        browser
            .wait_text("#test-mode-banner", "Тестовый режим", WAIT)
            .await;

        // Back to live: the live invoice again, no banner.
        browser.goto(&invoices).await;
        browser.click("#mode-toggle").await;
        browser.wait_text("main", "LIVE-ORDER", WAIT).await;
        assert!(!browser.text("main").await.contains("TEST-ORDER"));
        assert!(!browser.text("body").await.contains("Тестовый режим:"));
        browser.close().await;
        kassa.stop().await;
    }
);
