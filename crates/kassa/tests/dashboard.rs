//! The merchant dashboard, against a real `kassa serve` in sandbox mode on both databases:
//! over HTTP (sign-in, sessions, CSRF, roles, organizations, escaping) and through a real
//! headless Chromium (every page a shop owner uses, end to end). Screenshots of each page, at
//! desktop and phone size, go to `target/screenshots/` (the SQLite run writes them).

mod common;

use std::time::Duration;

use common::browser::{self, Browser};
use common::served::{Served, Visitor};
use kassa::db::testing::TestDb;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

async fn invoices_in(db: &kassa::db::Db) -> i64 {
    common::count(db, "SELECT COUNT(*) AS n FROM invoices").await
}

/// Sign-in, sessions, CSRF, roles, organizations and escaping, over plain HTTP.
async fn over_http(served: &Served, test: &TestDb) {
    let db = test.db();
    let base = served.url("");
    served.cli(
        &[
            "user",
            "create",
            "--org",
            "demo",
            "--email",
            "Viewer@Example.com",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "viewer-password-1\n",
    );
    served.cli(&["org", "create", "other", "--name", "Other shop"], "");
    served.cli(
        &[
            "user",
            "create",
            "--org",
            "other",
            "--email",
            "owner@other.example",
            "--password-stdin",
        ],
        "other-password-1\n",
    );

    // Pages need a session.
    let mut stranger = Visitor::new(&base);
    let page = stranger.get("/dashboard/invoices").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location.as_deref(),
        Some("/dashboard/login?next=%2Fdashboard%2Finvoices")
    );

    // The owner signs in with the first start's one-time link, which works once.
    let mut owner = Visitor::new(&base);
    let path = &served.first_link[served.first_link.find("/dashboard/").expect("path")..];
    let page = owner.get(path).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/dashboard/"));
    let session = owner
        .cookies
        .iter()
        .find(|(k, _)| k == "kassa_session")
        .expect("session cookie")
        .1
        .clone();
    let again = Visitor::new(&base).get(path).await;
    assert_eq!(
        again.location.as_deref(),
        Some("/dashboard/login?note=link_used")
    );
    let r = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
        .get(served.url(path))
        .send()
        .await
        .expect("GET");
    assert!(r.headers().get(SET_COOKIE).is_none());

    let overview = owner.get("/dashboard/").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("demo@example.com"));
    let page = owner.get("/dashboard/invoices/new").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = {
        let r = owner
            .http
            .get(served.url("/dashboard/invoices/new"))
            .header(COOKIE, owner.cookie_header())
            .send()
            .await
            .expect("GET");
        r.headers()
            .get("content-security-policy")
            .expect("CSP")
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    for name in ["phone_number", "amount", "description"] {
        assert!(page.body.contains(&format!("name=\"{name}\"")), "{name}");
    }
    let csrf = page.csrf();

    // A form without its CSRF token (or with another) is refused, and nothing is stored.
    let before = invoices_in(&db).await;
    let fields = [
        ("phone_number", "87001234567"),
        ("amount", "1500"),
        ("description", "<script>alert(1)</script>"),
    ];
    let refused = owner.post("/dashboard/invoices/new", &fields).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let mut forged = fields.to_vec();
    forged.push(("csrf_token", "not-the-token"));
    assert_eq!(
        owner.post("/dashboard/invoices/new", &forged).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(invoices_in(&db).await, before);

    // A bad field is the API's error, beside the field, nothing stored.
    let bad = owner
        .post(
            "/dashboard/invoices/new",
            &[
                ("phone_number", "12"),
                ("amount", "1500"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body.contains("data-field=\"phone_number\""),
        "{}",
        bad.body
    );
    assert_eq!(invoices_in(&db).await, before);

    // With the token, the invoice is made; its description shows as text.
    let mut good = fields.to_vec();
    good.push(("csrf_token", &csrf));
    let made = owner.post("/dashboard/invoices/new", &good).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let at = made.location.expect("to the invoice");
    assert!(at.starts_with("/dashboard/invoices/"), "{at}");
    assert_eq!(invoices_in(&db).await, before + 1);
    let id: i64 = at["/dashboard/invoices/".len()..]
        .split('?')
        .next()
        .expect("id")
        .parse()
        .expect("numeric id");
    let shown = owner.get(&format!("/dashboard/invoices/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(
        shown.body.contains("&lt;script&gt;alert(1)"),
        "{}",
        shown.body
    );
    assert!(!shown.body.contains("<script>alert(1)"));

    // A viewer sees everything and changes nothing: the server refuses, not only the buttons.
    let mut viewer = Visitor::new(&base);
    let signed = viewer
        .sign_in("viewer@example.com", "viewer-password-1")
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location.as_deref(), Some("/dashboard/invoices"));
    let list = viewer.get("/dashboard/invoices").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains(&format!("/dashboard/invoices/{id}")));
    assert!(!list.body.contains("/dashboard/invoices/new\""));
    let page = viewer.get(&format!("/dashboard/invoices/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("/cancel\""));
    // The cashier page lists the organization's cashiers (one here), phones masked.
    let cashier = viewer.get("/dashboard/cashier").await;
    assert_eq!(cashier.status, StatusCode::OK);
    assert!(cashier.body.contains("700***0001"), "{}", cashier.body);
    assert!(!cashier.body.contains("7000000001"));
    assert_eq!(cashier.body.matches("class=\"cashier\"").count(), 1);
    assert!(cashier
        .body
        .contains("id=\"cashier-state\" data-healthy=\"true\""));
    let viewer_csrf = page.csrf(); // the sign-out form's
    for (path, form) in [
        ("/dashboard/invoices/new", fields.to_vec()),
        (&format!("/dashboard/invoices/{id}/cancel")[..], vec![]),
        ("/dashboard/api-keys", vec![("name", "by a viewer")]),
        ("/dashboard/webhooks", vec![("url", "http://127.0.0.1:9/x")]),
        (
            "/dashboard/cashier/connect",
            vec![("phone_number", "87000000001")],
        ),
    ] {
        let mut form = form;
        form.push(("csrf_token", &viewer_csrf));
        let refused = viewer.post(path, &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(invoices_in(&db).await, before + 1);
    let status = served.store_status(&db, id).await;
    assert!(
        status == "pending" || status == "processing" || status == "paid",
        "{status}"
    );
    assert_eq!(
        common::count(&db, "SELECT COUNT(*) AS n FROM api_keys").await,
        0
    );

    // Another organization's invoice is not found, as an unknown one.
    let mut other = Visitor::new(&base);
    let signed = other
        .sign_in("owner@other.example", "other-password-1")
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        other.get(&format!("/dashboard/invoices/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        other
            .get(&format!("/dashboard/invoices/{id}/status"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let theirs = other.get("/dashboard/invoices").await;
    assert!(!theirs.body.contains(&format!("/dashboard/invoices/{id}\"")));

    // A subscription's page lists its events: its first invoice paid.
    let key = served.cli(&["api-key", "create", "--org", "demo"], "");
    let api = reqwest::Client::new();
    let made: serde_json::Value = api
        .post(served.url("/api/v1/subscriptions"))
        .header("X-API-Key", key.trim())
        .json(&serde_json::json!({
            "phone_number": "87001234570", "amount": 700, "billing_period": "monthly",
            "bill_immediately": true, "description": "Клуб"
        }))
        .send()
        .await
        .expect("subscription")
        .json()
        .await
        .expect("json");
    let sub = made["id"].as_i64().unwrap_or_else(|| panic!("{made}"));
    let invoice = common::wait_for(WAIT, || async {
        let list: serde_json::Value = api
            .get(served.url(&format!("/api/v1/subscriptions/{sub}/invoices")))
            .header("X-API-Key", key.trim())
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let first = &list["data"][0];
        (first["status"] == "pending").then(|| first["invoice_id"].as_i64())?
    })
    .await
    .expect("the first invoice is sent");
    let paid = api
        .post(served.url(&format!("/api/v1/sandbox/invoices/{invoice}/pay")))
        .header("X-API-Key", key.trim())
        .send()
        .await
        .expect("pay");
    assert!(paid.status().is_success());
    let mut listed = false;
    for _ in 0..150 {
        let page = owner.get(&format!("/dashboard/subscriptions/{sub}")).await;
        assert_eq!(page.status, StatusCode::OK);
        if page
            .body
            .contains("data-event=\"subscription.payment_succeeded\"")
        {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(listed, "the payment is not among the subscription's events");

    // Wrong passwords lock the user out for a while, the right one included.
    let mut guesser = Visitor::new(&base);
    for _ in 0..5 {
        let refused = guesser
            .sign_in("viewer@example.com", "wrong-password")
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert!(!guesser.cookies.iter().any(|(k, _)| k == "kassa_session"));
    }
    let locked = guesser
        .sign_in("viewer@example.com", "viewer-password-1")
        .await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED);
    assert!(locked.body.contains("15"), "{}", locked.body);

    // Signing out ends the session on the server: the old cookie no longer works.
    let page = owner.get("/dashboard/").await;
    let out = owner
        .post("/dashboard/logout", &[("csrf_token", &page.csrf())])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let mut replay = Visitor::new(&base);
    replay.cookies.push(("kassa_session".into(), session));
    assert_eq!(
        replay.get("/dashboard/").await.status,
        StatusCode::SEE_OTHER
    );

    // A disabled user's sessions end at once.
    assert_eq!(other.get("/dashboard/").await.status, StatusCode::OK);
    served.cli(&["user", "disable", "--email", "owner@other.example"], "");
    assert_eq!(other.get("/dashboard/").await.status, StatusCode::SEE_OTHER);
}

impl Served {
    async fn store_status(&self, db: &kassa::db::Db, id: i64) -> String {
        db.read(move |tx| {
            let row = tx.query_one("SELECT status FROM invoices WHERE id = $1", &[id.into()])?;
            row.text("status")
        })
        .await
        .expect("status")
    }
}

const WAIT: Duration = Duration::from_secs(30);

/// Every page a shop owner uses, in a real browser.
async fn in_browser(served: &Served, browser: &Browser, screenshots: bool) {
    let shot = |name: &'static str| async move {
        if screenshots {
            browser.screenshots(name).await;
        }
    };
    // Sign in with a new one-time link (the first one is used up).
    browser.goto(&served.login_link("demo@example.com")).await;
    assert_eq!(browser.current_path().await, "/dashboard/");
    browser.wait_text("#figures", "30", WAIT).await;

    // English is one click away, and back.
    browser.click("a.lang").await;
    browser.wait_text("h1", "Overview", WAIT).await;
    browser.click("a.lang").await;
    browser.wait_text("h1", "Обзор", WAIT).await;

    // A new invoice by form.
    browser.goto(&served.url("/dashboard/invoices/new")).await;
    shot("invoice-new").await;
    browser
        .fill("input[name=phone_number]", "87001234567")
        .await;
    browser.fill("input[name=amount]", "2500").await;
    browser
        .fill("input[name=description]", "<script>alert(1)</script>")
        .await;
    browser.click("#send-invoice").await;
    browser.wait_text("#invoice-amount", "2", WAIT).await;
    let path = browser.current_path().await;
    let id: i64 = path["/dashboard/invoices/".len()..].parse().expect("id");
    assert_eq!(
        browser.text("#invoice-description").await,
        "<script>alert(1)</script>"
    );
    browser.wait_text("#invoice-status", "ожидает", WAIT).await;

    // An API key, made on its page and shown once.
    browser.goto(&served.url("/dashboard/api-keys")).await;
    browser
        .fill("#key-form input[name=name]", "browser test")
        .await;
    browser.click("#create-key").await;
    browser.wait_text("#new-key", "kassa_", WAIT).await;
    let key_id = browser
        .client
        .find(fantoccini::Locator::Css("#new-key"))
        .await
        .expect("the new key")
        .attr("data-key-id")
        .await
        .expect("attr")
        .expect("its id");
    let key = browser.text("#new-key").await;
    let key = key
        .split_whitespace()
        .find(|w| w.starts_with("kassa_"))
        .expect("the key")
        .to_owned();
    shot("api-keys").await;

    // The payer pays in the sandbox while the invoice's page is open: it turns paid without
    // a reload (a marker set on the page survives).
    browser
        .goto(&served.url(&format!("/dashboard/invoices/{id}")))
        .await;
    browser
        .client
        .execute("window.kassaMarker = 42; return true;", vec![])
        .await
        .expect("marker set");
    let api = reqwest::Client::new();
    let paid = api
        .post(served.url(&format!("/api/v1/sandbox/invoices/{id}/pay")))
        .header("X-API-Key", &key)
        .send()
        .await
        .expect("pay");
    assert!(
        paid.status().is_success(),
        "{}",
        paid.text().await.unwrap_or_default()
    );
    browser.wait_text("#invoice-status", "оплачен", WAIT).await;
    let marker = browser
        .client
        .execute("return window.kassaMarker;", vec![])
        .await
        .expect("marker read");
    assert_eq!(marker, serde_json::json!(42), "the page was reloaded");
    shot("invoice").await;

    // Part of it refunded, after a confirmation.
    browser
        .fill("#refund-form input[name=amount]", "1000")
        .await;
    browser.click("#refund").await;
    browser.accept_confirm().await;
    browser.wait_text("#refunds", "1", WAIT).await;
    browser.wait_text("#invoice-refunded", "1", WAIT).await;
    browser.wait_text("#invoice-status", "частично", WAIT).await;

    // The invoice list, with a status filter.
    browser
        .goto(&served.url("/dashboard/invoices?status=paid"))
        .await;
    browser.wait_text("#invoices", &id.to_string(), WAIT).await;
    shot("invoices").await;
    browser.goto(&served.url("/dashboard/")).await;
    // 2,500 paid here and 700 of a subscription paid over HTTP.
    browser
        .wait_text("#figures-today", "3\u{202f}200", WAIT)
        .await;
    shot("overview").await;

    // The key revoked: the API refuses it.
    browser.goto(&served.url("/dashboard/api-keys")).await;
    browser.click(&format!("#revoke-{key_id}")).await;
    browser.accept_confirm().await;
    browser.wait_text("#keys", "", WAIT).await;
    let refused = common::wait_for(WAIT, || async {
        let r = api
            .get(served.url("/api/v1/invoices"))
            .header("X-API-Key", &key)
            .send()
            .await
            .expect("GET");
        (r.status() == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the revoked key still works");

    // A webhook endpoint, its secret shown once, a test event and its delivery.
    let receiver = common::receiver::Receiver::start().await;
    browser.goto(&served.url("/dashboard/webhooks")).await;
    browser
        .fill("#webhook-form input[name=url]", &receiver.url("/hook"))
        .await;
    browser.click("#add-webhook").await;
    browser.wait_text("#webhook-secret", "whsec_", WAIT).await;
    shot("webhooks").await;
    browser.click("#send-test").await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("webhook-test"), "true");
    let seen = common::wait_for(WAIT, || async {
        browser.client.refresh().await.expect("reloaded");
        browser
            .text("#deliveries")
            .await
            .contains("webhook.test")
            .then_some(())
    })
    .await;
    assert!(seen.is_some(), "the test delivery is not in the log");
    shot("webhook").await;

    // A subscription made by form, then paused.
    browser
        .goto(&served.url("/dashboard/subscriptions/new"))
        .await;
    shot("subscription-new").await;
    browser
        .fill("input[name=phone_number]", "87001234568")
        .await;
    browser.fill("input[name=amount]", "5000").await;
    browser.fill("input[name=description]", "Абонемент").await;
    browser
        .client
        .find(fantoccini::Locator::Css("select[name=billing_period]"))
        .await
        .expect("the period")
        .select_by_value("monthly")
        .await
        .expect("monthly chosen");
    browser.click("#create-subscription").await;
    browser
        .wait_text("#subscription-status", "актив", WAIT)
        .await;
    browser.click("#pause-subscription").await;
    browser
        .wait_text("#subscription-status", "приостановлена", WAIT)
        .await;
    shot("subscription").await;
    browser.goto(&served.url("/dashboard/subscriptions")).await;
    shot("subscriptions").await;

    browser.goto(&served.url("/dashboard/catalog")).await;
    shot("catalog").await;
    browser.goto(&served.url("/dashboard/sandbox")).await;
    shot("sandbox").await;

    // The cashier's session dies: every page says so and links to the cashier page, where the
    // cashier signs in again with the sandbox's SMS code.
    let revoked = api
        .post(served.url("/sandbox/kaspi/_control/sessions/revoke"))
        .send()
        .await
        .expect("revoke");
    assert!(revoked.status().is_success());
    // The next Kaspi call finds out: an invoice sent now.
    browser.goto(&served.url("/dashboard/invoices/new")).await;
    browser
        .fill("input[name=phone_number]", "87001234569")
        .await;
    browser.fill("input[name=amount]", "100").await;
    browser.click("#send-invoice").await;
    let banner = common::wait_for(WAIT, || async {
        browser.goto(&served.url("/dashboard/invoices")).await;
        browser
            .client
            .find(fantoccini::Locator::Css("#cashier-banner"))
            .await
            .ok()
    })
    .await;
    assert!(
        banner.is_some(),
        "no banner after the cashier's session died"
    );
    browser.click("#cashier-banner a").await;
    assert_eq!(browser.current_path().await, "/dashboard/cashier");
    browser
        .fill("#connect-form input[name=phone_number]", "87000000001")
        .await;
    browser.click("#start-connect").await;
    // The form's answer is a new page: wait for it, not for the old one.
    browser.wait_text(".flash", "Вход начат", WAIT).await;
    for _ in 0..5 {
        let step = browser
            .client
            .find(fantoccini::Locator::Css("#cashier-step"))
            .await
            .expect("a step")
            .attr("data-step")
            .await
            .expect("attr")
            .unwrap_or_default();
        match step.as_str() {
            "sms" | "sms_retry" => {
                let code = browser.text("#sandbox-sms").await;
                assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");
                browser.fill("#answer-form input[name=answer]", &code).await;
                shot("cashier").await;
                browser.click("#send-answer").await;
                browser.wait_text(".flash", "Ответ отправлен", WAIT).await;
            }
            "password" => {
                browser
                    .fill("#answer-form input[name=answer]", "sandbox")
                    .await;
                browser.click("#send-answer").await;
            }
            "app" => browser.click("#sandbox-confirm").await,
            "done" => break,
            "starting" => tokio::time::sleep(Duration::from_millis(300)).await,
            other => panic!(
                "the sign-in stopped at {other}: {}",
                browser.text("#cashier-flow").await
            ),
        }
    }
    browser.wait_text("#cashier-step", "подключён", WAIT).await;
    // The cashier connected is the signed-in user's change in the audit log, phone masked.
    let connected = served.cli(
        &[
            "audit",
            "list",
            "--org",
            "demo",
            "--action",
            "cashier.connected",
            "--json",
        ],
        "",
    );
    let by_user: Vec<serde_json::Value> = connected
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .filter(|e: &serde_json::Value| e["actor"] == "demo@example.com")
        .collect();
    assert_eq!(by_user.len(), 1, "{connected}");
    assert!(by_user[0]["target"]
        .as_str()
        .expect("target")
        .contains("***"));
    browser.goto(&served.url("/dashboard/cashier")).await;
    assert_eq!(
        browser
            .client
            .find(fantoccini::Locator::Css("#cashier-state"))
            .await
            .expect("state")
            .attr("data-healthy")
            .await
            .expect("attr")
            .as_deref(),
        Some("true")
    );
    assert!(browser
        .client
        .find(fantoccini::Locator::Css("#cashier-banner"))
        .await
        .is_err());

    // Signing out.
    browser.click("#logout").await;
    browser.wait_text("#login-note", "Вы вышли", WAIT).await;
    shot("login").await;
    browser.goto(&served.url("/dashboard/invoices")).await;
    assert_eq!(browser.current_path().await, "/dashboard/login");
}

async fn dashboard(test: TestDb, screenshots: bool) {
    let served = Served::start(test.url()).await;
    over_http(&served, &test).await;
    if let Some(browser) = browser::start().await {
        in_browser(&served, &browser, screenshots).await;
        browser.close().await;
    }
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    dashboard(TestDb::sqlite().await, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    dashboard(test, false).await;
}
