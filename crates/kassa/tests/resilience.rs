//! What happens when things go wrong: Kaspi's answer to a create is lost, the cashier's session
//! dies, the gateway restarts in the middle of polling, two gateway processes share one
//! PostgreSQL.

mod common;

use std::time::Duration;

use common::{connect, wait_for, Kassa, Options};
use kaspi_sim::{Faults, LostMode, SimConfig, Simulator};
use kassa::clock::Clock;
use kassa::db::testing::TestDb;

use kassa::store::{InvoiceStatus, JobKind};
use serde_json::json;

/// Operations the simulator holds for a customer phone (10 digits).
fn operations_for(sim: &Simulator, phone: &str) -> Vec<kaspi_sim::OperationInfo> {
    sim.operations()
        .into_iter()
        .filter(|op| {
            op.client_mobile
                .as_deref()
                .is_some_and(|m| m.ends_with(phone))
        })
        .collect()
}

on_both_databases!(
    a_lost_create_answer_is_reconciled_not_repeated,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let sim = kassa.sim().clone();

        // Kaspi makes the invoice, the answer never arrives.
        sim.set_faults(Faults {
            lost: 1.0,
            lost_mode: LostMode::Drop,
            path_contains: Some("remote/create".into()),
            count: Some(1),
            ..Faults::default()
        })
        .expect("faults");
        let created = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 1500, "phone_number": "87011112233"}),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.json);
        assert_eq!(created.json["status"], "pending");
        let id = created.json["id"].as_i64().expect("id");
        let ops = operations_for(&sim, "7011112233");
        assert_eq!(ops.len(), 1, "sent to Kaspi exactly once: {ops:?}");
        let op_id = ops[0].id.to_string();
        let linked = kassa
            .invoice_reaches(&key, id, "kaspi_invoice_id", &op_id)
            .await;
        assert!(linked.is_some(), "the invoice is found in Kaspi's history");
        // And it is followed like any other.
        let paid = kassa
            .post(&key, &format!("/sandbox/invoices/{id}/pay"), json!({}))
            .await;
        assert_eq!(paid.json["status"], "paid");

        // Kaspi fails before doing anything (HTTP 503): the outcome is unknown to the client too;
        // history shows nothing, so the invoice ends failed (ApiPay: cancelled) and is never resent.
        sim.set_faults(Faults {
            http_5xx: 1.0,
            path_contains: Some("remote/create".into()),
            count: Some(1),
            ..Faults::default()
        })
        .expect("faults");
        let unsent = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 900, "phone_number": "87012223344"}),
            )
            .await;
        assert_eq!(unsent.status, 201, "{:?}", unsent.json);
        let unsent_id = unsent.json["id"].as_i64().expect("id");
        let ended = kassa
            .invoice_reaches(&key, unsent_id, "status", "error")
            .await
            .expect("an invoice Kaspi never received ends");
        assert!(ended.get("kaspi_invoice_id").is_none());
        assert!(ended["error_message"].is_string(), "{ended}");
        assert!(
            operations_for(&sim, "7012223344").is_empty(),
            "never sent twice, never sent blindly"
        );
        let stored = kassa
            .store()
            .invoices()
            .invoice(org, unsent_id)
            .await
            .expect("read")
            .expect("kept, with its reason");
        assert_eq!(stored.status, InvoiceStatus::Failed);
        assert!(stored.last_error.is_some());
        kassa.stop().await;
    }
);

on_both_databases!(
    a_dead_session_is_refreshed_or_reported_and_resumes_after_login,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let sim = kassa.sim().clone();
        let invoice = json!({"amount": 100, "phone_number": "87001234567"});

        // An expired session is refreshed behind the request.
        sim.expire_sessions();
        let after_expiry = kassa.post(&key, "/invoices", invoice.clone()).await;
        assert_eq!(after_expiry.status, 201, "{:?}", after_expiry.json);

        // A revoked one cannot be: 503, /status says so, nothing is stored.
        sim.revoke_sessions();
        let refused = kassa.post(&key, "/invoices", invoice.clone()).await;
        assert_eq!(refused.status, 503, "{:?}", refused.json);
        assert_eq!(refused.json["error"], "kaspi_session_invalid");
        let message = refused.json["message"].as_str().expect("message");
        assert!(message.contains("kassa terminal connect"), "{message}");
        let status = kassa.status().await;
        assert_eq!(status.json["status"], "ok");
        assert_eq!(
            status.json["kaspi"]["sessions"]["needs_login"], 1,
            "{:?}",
            status.json
        );
        let text = status.json.to_string();
        assert!(
            !text.contains("token") && !text.contains("secret"),
            "{text}"
        );
        let list = kassa.get(&key, "/invoices").await;
        assert_eq!(
            list.json["meta"]["total"], 1,
            "the refused invoice was not stored"
        );
        // The cancel of an existing invoice says the same.
        let id = after_expiry.json["id"].as_i64().expect("id");
        let cancel = kassa
            .post(&key, &format!("/invoices/{id}/cancel"), json!({}))
            .await;
        assert_eq!(cancel.status, 503);

        // The cashier logs in again (what `kassa terminal connect` does): work resumes without a
        // restart.
        common::login(&kassa, &sim, org, kassa::gateway::DEMO_CASHIER_PHONE).await;
        let resumed = kassa.post(&key, "/invoices", invoice.clone()).await;
        assert_eq!(resumed.status, 201, "{:?}", resumed.json);
        let cancel = kassa
            .post(&key, &format!("/invoices/{id}/cancel"), json!({}))
            .await;
        assert_eq!(cancel.status, 200, "{:?}", cancel.json);
        let status = kassa.status().await;
        assert_eq!(status.json["kaspi"]["sessions"]["needs_login"], 0);
        kassa.stop().await;
    }
);

on_both_databases!(polling_survives_a_restart, |test: TestDb| async move {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimConfig::default());
    let base = kaspi_sim::spawn(sim.clone()).await.expect("simulator");
    // One clock across the restart: the poll job comes due on it after the restart.
    let clock = Clock::manual_from_now();
    let options = || {
        let mut options = Options::new(test.url(), dir.path());
        options.live_kaspi = Some(base.clone());
        options.clock = Some(clock.clone());
        options
    };
    let kassa = Kassa::start(options()).await;
    let org = connect(&kassa, &sim, "shop", "7000000009").await;
    let key = kassa.api_key(org).await;
    let created = kassa
        .invoice(&key, json!({"amount": 4200, "phone_number": "87001234567"}))
        .await;
    let id = created.id;
    kassa.stop().await;

    // While Kassa is down the customer pays; the poll job waits in the database.
    sim.pay(created.op).expect("pay");
    let job = kassa::store::Store::new(test.db())
        .jobs()
        .job(JobKind::PollInvoice, id)
        .await
        .expect("read");
    assert!(job.is_some(), "the poll job outlives the process");

    let again = Kassa::start(options()).await;
    let paid = again.invoice_reaches(&key, id, "status", "paid").await;
    assert!(paid.is_some(), "the restarted gateway finishes the poll");
    let events = again.invoice_events(org, id).await;
    assert_eq!(events.len(), 1);
    again.stop().await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_share_the_polling() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimConfig::default());
    let base = kaspi_sim::spawn(sim.clone()).await.expect("simulator");
    // Set up the organization, its cashier and a key in-process; the processes then read the
    // same master key, each from its own data dir.
    let mut options = Options::new(test.url(), dir.path()).stepped();
    options.live_kaspi = Some(base.clone());
    let setup = Kassa::start(options).await;
    let org = connect(&setup, &sim, "shop", "7000000010").await;
    let key = setup.api_key(org).await;
    setup.stop().await;

    let (mut a, addr_a) = common::serve_process(dir.path(), test.url(), &base).await;
    let dir_b = common::sibling_data_dir(dir.path());
    let (mut b, addr_b) = common::serve_process(dir_b.path(), test.url(), &base).await;
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..30 {
        let addr = if i % 2 == 0 { &addr_a } else { &addr_b };
        let answer = common::Answer::read(
            http.post(format!("http://{addr}/api/v1/invoices"))
                .header("X-API-Key", &key)
                .json(&json!({"amount": 100 + i, "phone_number": "87001234567"}))
                .send()
                .await
                .expect("sent"),
        )
        .await;
        assert_eq!(answer.status, 201, "{:?}", answer.json);
        let op: u64 = answer.json["kaspi_invoice_id"]
            .as_str()
            .expect("op")
            .parse()
            .expect("numeric");
        ids.push((answer.json["id"].as_i64().expect("id"), op));
    }
    for (_, op) in &ids {
        sim.pay(*op).expect("pay");
    }
    // The processes run their own background loops on the system clock (sharing the polling
    // through leases is what this test is about), so only a bounded wait can see them finish.
    let store = kassa::store::Store::new(test.db());
    let all_paid = wait_for(Duration::from_secs(60), || async {
        for (id, _) in &ids {
            let invoice = store.invoices().invoice(org, *id).await.ok().flatten()?;
            if invoice.status != InvoiceStatus::Paid {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(
        all_paid.is_some(),
        "both processes together record every payment"
    );
    for (id, _) in &ids {
        let events = store
            .invoices()
            .invoice_events(org, *id)
            .await
            .expect("events");
        assert_eq!(
            events.len(),
            1,
            "invoice {id}: one status change, recorded once: {events:?}"
        );
        assert!(store
            .jobs()
            .job(JobKind::PollInvoice, *id)
            .await
            .expect("job")
            .is_none());
    }
    a.kill().await.expect("stop a");
    b.kill().await.expect("stop b");
}

/// The demo cashier's sealed session as the database holds it.
async fn demo_session(kassa: &Kassa, org: i64) -> Option<Vec<u8>> {
    kassa
        .store()
        .orgs()
        .terminal_for_org(org)
        .await
        .expect("read")
        .expect("the demo cashier")
        .session_sealed
}

on_both_databases!(
    a_sandbox_restart_changes_nothing_a_user_sees,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let pending = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 700, "phone_number": "87001234567", "description": "Before"}),
            )
            .await;
        assert_eq!(pending.status, 201, "{:?}", pending.json);
        let pending_id = pending.json["id"].as_i64().expect("id");
        let paid = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 5000, "phone_number": "87001234567"}),
            )
            .await;
        let paid_id = paid.json["id"].as_i64().expect("id");
        let answer = kassa
            .post(&key, &format!("/sandbox/invoices/{paid_id}/pay"), json!({}))
            .await;
        assert_eq!(answer.json["status"], "paid", "{:?}", answer.json);
        let session = demo_session(&kassa, org).await;
        assert!(session.is_some());
        kassa.stop().await;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let file = dir.path().join(kassa::app::SANDBOX_STATE_FILE);
            let mode = std::fs::metadata(&file)
                .expect("state file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "it holds the cashier's session");
        }

        let again = Kassa::start(Options::new(test.url(), dir.path()).stepped()).await;
        assert_eq!(again.demo_org().await, org);
        let status = again.status().await;
        assert_eq!(status.json["kaspi"]["sessions"]["needs_login"], 0);

        // The invoice pending before the restart is still pending once its polls have run,
        // and can be paid.
        again
            .advance_by_steps(Duration::from_secs(1), Duration::from_millis(100))
            .await;
        let got = again.get(&key, &format!("/invoices/{pending_id}")).await;
        assert_eq!(got.json["status"], "pending", "{:?}", got.json);
        let answer = again
            .post(
                &key,
                &format!("/sandbox/invoices/{pending_id}/pay"),
                json!({}),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.json);
        assert_eq!(answer.json["status"], "paid", "{:?}", answer.json);
        let got = again.get(&key, &format!("/invoices/{pending_id}")).await;
        assert_eq!(got.json["status"], "paid", "{:?}", got.json);

        // The invoice paid before the restart can be refunded: Kaspi still knows it.
        let refund = again
            .post(
                &key,
                &format!("/invoices/{paid_id}/refund"),
                json!({"amount": 2000, "reason": "After a restart"}),
            )
            .await;
        assert_eq!(refund.status, 201, "{:?}", refund.json);
        let refund_id = refund.json["refund"]["id"].as_i64().expect("refund id");
        let done = again
            .advance_until(
                Duration::from_secs(15),
                Duration::from_millis(100),
                || async {
                    let list = again
                        .get(&key, &format!("/invoices/{paid_id}/refunds"))
                        .await;
                    list.json["data"]
                        .as_array()?
                        .iter()
                        .find(|r| {
                            r["id"] == refund_id
                                && (r["status"] == "completed" || r["status"] == "failed")
                        })
                        .cloned()
                },
            )
            .await
            .expect("the refund settles");
        assert_eq!(done["status"], "completed", "{done:?}");

        // The cashier's session is the one from before: no new login happened.
        let created = again
            .post(
                &key,
                "/invoices",
                json!({"amount": 100, "phone_number": "87001234567"}),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.json);
        assert_eq!(demo_session(&again, org).await, session);
        assert_eq!(again.sim().last_sms("7000000001"), None, "no SMS login");
        let events = again.invoice_events(org, pending_id).await;
        assert_eq!(events.len(), 1, "only the payment: {events:?}");
        again.stop().await;
    }
);

on_both_databases!(
    a_sandbox_that_lost_its_state_logs_the_cashier_in_again,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let before = kassa
            .post(
                &key,
                "/invoices",
                json!({"amount": 100, "phone_number": "87001234567"}),
            )
            .await;
        let before_id = before.json["id"].as_i64().expect("id");
        kassa.stop().await;

        // The state file is gone (a data dir from before it was kept, or removed by hand).
        std::fs::remove_file(dir.path().join(kassa::app::SANDBOX_STATE_FILE)).expect("removed");
        let again = Kassa::start(Options::new(test.url(), dir.path()).stepped()).await;
        // The server's own startup work (the sandbox bootstrap) ends them, not a job.
        again.state.wait_started().await;
        let got = again.get(&key, &format!("/invoices/{before_id}")).await;
        assert_eq!(
            got.json["status"], "expired",
            "a pending invoice the sandbox no longer knows ends: {:?}",
            got.json
        );
        let after = again
            .post(
                &key,
                "/invoices",
                json!({"amount": 100, "phone_number": "87001234567"}),
            )
            .await;
        assert_eq!(
            after.status, 201,
            "the cashier works again: {:?}",
            after.json
        );
        again.stop().await;
    }
);

on_both_databases!(
    a_create_whose_process_died_is_finished_by_the_next,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        let sim = kassa.sim().clone();
        let now = kassa.store().now_ms();
        // What a process that died in the middle of a create leaves: the invoice stored with
        // its marker and its reconciliation (as the create stores them, in one transaction)...
        let stranded = |amount: i64, marker: &str| kassa::store::NewInvoice {
            payment_id: uuid::Uuid::new_v4().to_string(),
            org_id: org,
            kind: kassa::store::InvoiceKind::Remote,
            amount: kassa::domain::Money::from_tiyn(amount),
            phone: kassa::domain::parse_phone("7011112233").ok(),
            description: Some("Order 7".into()),
            external_order_id: None,
            is_sandbox: true,
            created_at: now,
            expires_at: Some(now + 3_600_000),
            metadata: None,
            kaspi_ref: Some(marker.into()),
            reconcile_at: Some(now),
            idempotency: None,
        };
        let received = kassa
            .store()
            .invoices()
            .insert_invoice(stranded(150_000, "00000000000a"))
            .await
            .expect("stored");
        // ...and Kaspi, which got the request, has the invoice with the marker in its comment.
        let op = sim
            .create_remote_invoice(
                kassa::gateway::DEMO_CASHIER_PHONE,
                "7011112233",
                kaspi::Amount::from_tiyn(150_000),
                "Order 7 [kassa:00000000000a]",
            )
            .expect("made at Kaspi");
        // A second one that Kaspi never received.
        let lost = kassa
            .store()
            .invoices()
            .insert_invoice(stranded(90_000, "00000000000b"))
            .await
            .expect("stored");

        let op_id = op.to_string();
        let linked = kassa
            .invoice_reaches(&key, received.id, "kaspi_invoice_id", &op_id)
            .await;
        assert!(linked.is_some(), "the operation is found by its marker");
        sim.pay(op).expect("the payer pays");
        let paid = kassa
            .invoice_reaches(&key, received.id, "status", "paid")
            .await;
        assert!(paid.is_some(), "the payment is recorded");
        let ended = kassa
            .invoice_reaches(&key, lost.id, "status", "error")
            .await
            .expect("an invoice Kaspi never received ends");
        assert!(ended.get("kaspi_invoice_id").is_none());
        assert!(ended["error_message"].is_string(), "{ended}");
        assert_eq!(
            operations_for(&sim, "7011112233").len(),
            1,
            "nothing was sent again"
        );
        kassa.stop().await;
    }
);
