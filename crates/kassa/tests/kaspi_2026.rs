//! Kaspi as it behaves in 2026, met by the running gateway (the simulator does each case on
//! demand): a cashier session evicted by a login on another device during a create and
//! during a history sync, an app build Kaspi no longer accepts (the gateway's own
//! `app_build_outdated` state, a newer build set at run time with `kassa kaspi app-build
//! set`), each named login error at the `kassa terminal connect` prompt, and one device
//! identity per cashier.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{connect, wait_for, Kassa, Options};
use kaspi_sim::{SimConfig, Simulator};
use kassa::db::testing::TestDb;
use kassa::gateway::{DEMO_CASHIER_PHONE, SIGNED_IN_ELSEWHERE};
use kassa::store::TerminalState;
use serde_json::json;

/// Operations the simulator holds for a customer phone (10 digits).
fn operations_for(sim: &Simulator, phone: &str) -> usize {
    sim.operations()
        .into_iter()
        .filter(|op| {
            op.client_mobile
                .as_deref()
                .is_some_and(|m| m.ends_with(phone))
        })
        .count()
}

/// `kassa terminal connect` as the cashier at the prompt would do it, for the demo cashier.
async fn login_again(kassa: &Kassa, org: i64) {
    common::login(kassa, kassa.sim(), org, DEMO_CASHIER_PHONE).await;
}

on_both_databases!(
    an_eviction_during_a_create_loses_nothing_and_work_resumes_after_login,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let sim = kassa.sim().clone();
        let first = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 100, "phone_number": "87001234567"}),
            )
            .await;
        assert_eq!(first.status, 201, "{:?}", first.json);

        // The cashier's phone logs in on another device.
        assert_eq!(sim.evict_sessions(DEMO_CASHIER_PHONE).expect("evict"), 1);
        let refused = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 250, "phone_number": "87017654321"}),
            )
            .await;
        assert_eq!(refused.status, 503, "not a refusal: {:?}", refused.json);
        assert_eq!(refused.json["error"], "kaspi_session_invalid");
        let message = refused.json["message"].as_str().expect("message");
        assert!(message.contains("signed in on another device"), "{message}");
        assert!(message.contains("kassa terminal connect"), "{message}");
        let x = kassa
            .x(
                reqwest::Method::POST,
                &key,
                "/payments",
                Some(json!({"payer_phone": "87017654321", "amount": 250})),
            )
            .await;
        assert_eq!(x.status, 503, "{:?}", x.json);
        assert_eq!(x.json["error"], "KASPI_SESSION_INVALID", "{:?}", x.json);
        assert!(
            x.json["message"]
                .as_str()
                .is_some_and(|m| m.contains("signed in on another device")),
            "{:?}",
            x.json
        );

        let now = kassa.status().await.json;
        assert_eq!(now["kaspi"]["state"], "needs_login", "{now}");
        assert_eq!(now["kaspi"]["sessions"]["needs_login"], 1);
        assert!(
            now["kaspi"]["sessions"]["reasons"][0]
                .as_str()
                .is_some_and(|r| r.starts_with("signed in on another device")),
            "{now}"
        );
        let terminal = kassa
            .store()
            .orgs()
            .terminal_for_org(org)
            .await
            .expect("read")
            .expect("terminal");
        assert_eq!(terminal.state, TerminalState::NeedsLogin);
        assert_eq!(terminal.state_reason.as_deref(), Some(SIGNED_IN_ELSEWHERE));
        // Not stored as failed, not sent: the create can simply be made again.
        let list = kassa.get(&key, "/invoices").await;
        assert_eq!(list.json["meta"]["total"], 1, "{:?}", list.json);
        assert_eq!(operations_for(&sim, "7017654321"), 0);

        login_again(&kassa, org).await;
        let now = kassa.status().await.json;
        assert_eq!(now["kaspi"]["state"], "ok", "{now}");
        let again = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 250, "phone_number": "87017654321"}),
            )
            .await;
        assert_eq!(again.status, 201, "{:?}", again.json);
        assert_eq!(operations_for(&sim, "7017654321"), 1);
        // The first invoice is followed as before.
        let id = first.json["id"].as_i64().expect("id");
        let paid = kassa
            .post(&key, &format!("/sandbox/invoices/{id}/pay"), json!({}))
            .await;
        assert_eq!(paid.json["status"], "paid", "{:?}", paid.json);
        // The demo cashier logged in twice with one device: no session of it was evicted by
        // its own login.
        let sessions = sim.sessions(DEMO_CASHIER_PHONE).expect("sessions");
        assert!(sessions.len() >= 2, "{sessions:?}");
        assert!(sessions
            .iter()
            .all(|s| s.install_id == sessions[0].install_id));
        kassa.stop().await;
    }
);

on_both_databases!(
    an_eviction_during_a_history_sync_keeps_the_invoice_and_finds_it_paid_after_login,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let sim = kassa.sim().clone();
        let created = kassa
            .invoice(&key, json!({"amount": 700, "phone_number": "87001234567"}))
            .await;
        let id = created.id;

        // Evicted, then paid while the gateway cannot look.
        sim.evict_sessions(DEMO_CASHIER_PHONE).expect("evict");
        sim.pay(created.op).expect("pay");
        let needs_login = kassa
            .advance_until(
                Duration::from_secs(10),
                Duration::from_millis(100),
                || async {
                    let t = kassa.store().orgs().terminal_for_org(org).await.ok()??;
                    (t.state == TerminalState::NeedsLogin).then_some(t)
                },
            )
            .await
            .expect("the background sync finds the session evicted");
        assert_eq!(
            needs_login.state_reason.as_deref(),
            Some(SIGNED_IN_ELSEWHERE)
        );
        let invoice = kassa.get(&key, &format!("/invoices/{id}")).await;
        assert_eq!(
            invoice.json["status"], "pending",
            "not failed: {:?}",
            invoice.json
        );

        login_again(&kassa, org).await;
        assert!(
            kassa
                .invoice_reaches(&key, id, "status", "paid")
                .await
                .is_some(),
            "found paid after the login"
        );
        let events = kassa.invoice_events(org, id).await;
        assert_eq!(events.len(), 1);
        kassa.stop().await;
    }
);

/// `kassa --data-dir <dir> <args>` on `database_url`, with no other `KASSA_*` settings.
fn kassa_cli(dir: &Path, database_url: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KASSA_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("RUST_LOG", "warn")
        .env("KASSA_DATABASE_URL", database_url)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn run_cli(dir: &Path, database_url: &str, args: &[&str]) -> Output {
    tokio::time::timeout(
        Duration::from_secs(60),
        kassa_cli(dir, database_url, args).output(),
    )
    .await
    .expect("kassa finishes")
    .expect("kassa runs")
}

on_both_databases!(
    an_outdated_app_build_is_a_state_and_a_newer_one_set_at_run_time_resumes_work,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut options = Options::new(test.url(), dir.path()).stepped();
        // The settings are read again at most this often, on the wall clock (not the
        // gateway's): zero reads them at every step, so a step sees what was set before it.
        options.settings.settings_every = Duration::ZERO;
        let kassa = Kassa::start(options).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
        let sim = kassa.sim().clone();
        let created = kassa
            .invoice(&key, json!({"amount": 300, "phone_number": "87001234567"}))
            .await;
        let id = created.id;

        // Kaspi raises its minimum above the build Kassa presents (1115), then the payer pays.
        sim.set_min_app_build(Some(1120));
        sim.pay(created.op).expect("pay");
        let refused = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 400, "phone_number": "87017654321"}),
            )
            .await;
        assert_eq!(refused.status, 503, "{:?}", refused.json);
        assert_eq!(refused.json["error"], "kaspi_app_build_outdated");
        let message = refused.json["message"].as_str().expect("message");
        assert!(
            message.contains("1115") && message.contains("kassa kaspi app-build set"),
            "{message}"
        );
        let now = kassa.status().await.json;
        assert_eq!(now["kaspi"]["state"], "app_build_outdated", "{now}");
        assert_eq!(now["kaspi"]["app"]["build"], "1115");
        assert!(
            now["kaspi"]["action"]
                .as_str()
                .is_some_and(|a| a.contains("kassa kaspi app-build set")),
            "{now}"
        );
        let list = kassa.get(&key, "/invoices").await;
        assert_eq!(
            list.json["meta"]["total"], 1,
            "the refused create is not stored"
        );
        let invoice = kassa.get(&key, &format!("/invoices/{id}")).await;
        assert_eq!(invoice.json["status"], "pending");
        // An outdated build is not a dead session: the cashier need not log in.
        let terminal = kassa
            .store()
            .orgs()
            .terminal_for_org(org)
            .await
            .expect("read")
            .expect("terminal");
        assert_eq!(terminal.state, TerminalState::Active);

        // An operator sets a newer build in another process: no restart.
        let out = run_cli(
            dir.path(),
            test.url(),
            &["kaspi", "app-build", "set", "1120", "--version", "26.1101"],
        )
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("version 26.1101 build 1120"), "{stdout}");

        // The background sync takes it up and finds the payment, with no API call to wake it.
        assert!(
            kassa
                .invoice_reaches(&key, id, "status", "paid")
                .await
                .is_some(),
            "work resumes"
        );
        let again = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 400, "phone_number": "87017654321"}),
            )
            .await;
        assert_eq!(again.status, 201, "{:?}", again.json);
        let now = kassa.status().await.json;
        assert_eq!(now["kaspi"]["state"], "ok", "{now}");
        assert_eq!(now["kaspi"]["app"]["build"], "1120");
        assert_eq!(now["kaspi"]["app"]["source"], "settings");

        // A build that is not a number is refused with a clear message.
        let out = run_cli(
            dir.path(),
            test.url(),
            &["kaspi", "app-build", "set", "11x0"],
        )
        .await;
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("an app build is a number"), "{err}");
        kassa.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_login_error_reaches_the_connect_prompt_as_a_clear_message() {
    let test = TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimConfig::default());
    let base = kaspi_sim::spawn(sim.clone()).await.expect("simulator");
    let out = run_cli(
        dir.path(),
        test.url(),
        &["org", "create", "shop", "--name", "Shop"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entrance = format!("{base}/entrance-pay");
    let mtoken = format!("{base}/mtoken");
    let qrpay = format!("{base}/qrpay");
    let connect_args = [
        "terminal",
        "connect",
        "--org",
        "shop",
        "--phone",
        "87071112233",
        "--kaspi",
        "live",
        "--kaspi-entrance-url",
        &entrance,
        "--kaspi-mtoken-url",
        &mtoken,
        "--kaspi-qrpay-url",
        &qrpay,
    ];
    for code in kaspi_sim::LOGIN_ERROR_CODES {
        sim.refuse_next_login("87071112233", code)
            .expect("scripted");
        let out = run_cli(dir.path(), test.url(), &connect_args).await;
        assert_eq!(out.status.code(), Some(1), "{code}");
        let err = String::from_utf8_lossy(&out.stderr);
        let refusal = kaspi::LoginRefusal::from_code(code).expect("known");
        assert!(err.contains(refusal.advice()), "{code}: {err}");
        assert!(!err.contains(code), "no raw code: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Blocked for 45 minutes: the prompt says to wait, and how long.
    sim.block_account("87071112233", 45).expect("blocked");
    let out = run_cli(dir.path(), test.url(), &connect_args).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wait") && err.contains("45 мин"), "{err}");
    sim.block_account("87071112233", 0).expect("unblocked");
    // An outdated build at the first login step names the setting to raise.
    sim.set_min_app_build(Some(1120));
    let out = run_cli(dir.path(), test.url(), &connect_args).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kassa kaspi app-build set"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // The newer build stored in the database is what `terminal connect` presents too.
    let out = run_cli(
        dir.path(),
        test.url(),
        &["kaspi", "app-build", "set", "1120"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = kassa_cli(dir.path(), test.url(), &connect_args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("kassa starts");
    // `kassa terminal connect` is another process: only a bounded wait sees it get there.
    let code = wait_for(Duration::from_secs(20), || async {
        sim.last_sms("87071112233")
    })
    .await
    .expect("the login got to the SMS code");
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, format!("{code}\n").as_bytes())
        .await
        .expect("typed");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("finishes")
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

on_both_databases!(
    each_cashier_keeps_its_own_device_identity,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = Simulator::new(SimConfig::default());
        let base = kaspi_sim::spawn(sim.clone()).await.expect("simulator");
        let mut options = Options::new(test.url(), dir.path()).stepped();
        options.live_kaspi = Some(base);
        let kassa = Kassa::start(options).await;
        let org = connect(&kassa, &sim, "shop", "7000000011").await;
        // The same cashier again: the same device, so its earlier session is not evicted.
        common::login(&kassa, &sim, org, "7000000011").await;
        let first = sim.sessions("7000000011").expect("sessions");
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(first.iter().all(|s| s.install_id == first[0].install_id));
        assert!(first.iter().all(|s| s.state == "live"), "{first:?}");

        // Another cashier, of another organization: its own device, nothing evicted.
        connect(&kassa, &sim, "other", "7000000012").await;
        let second = sim.sessions("7000000012").expect("sessions");
        assert_ne!(second[0].install_id, first[0].install_id);
        // Another cashier of the same organization (added to its Kaspi organization, a
        // second cashier of it in Kassa): its own device too.
        sim.add_cashier_to("7000000013", "7000000011")
            .expect("added at Kaspi");
        common::login(&kassa, &sim, org, "7000000013").await;
        let third = sim.sessions("7000000013").expect("sessions");
        assert_ne!(third[0].install_id, first[0].install_id);
        assert_ne!(third[0].install_id, second[0].install_id);
        let first_after = sim.sessions("7000000011").expect("sessions");
        assert!(
            first_after.iter().all(|s| s.state != "evicted"),
            "{first_after:?}"
        );
        kassa.stop().await;
    }
);
