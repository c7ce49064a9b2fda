//! Several Kaspi cashiers per organization, met by the running gateway over HTTP with the
//! simulator on both databases: creates spread over the cashiers (the simulator says which
//! cashier made each operation), a cashier whose session died skipped while the others go on,
//! the usual session error when none is left, a cashier of another Kaspi organization refused,
//! a cancel through the cashier that made the invoice, and a terminal row from before several
//! cashiers (sealed per organization) still working.

mod common;

use std::collections::BTreeMap;

use common::Kassa;
use kaspi_sim::Simulator;
use kassa::db::testing::TestDb;
use kassa::gateway::{GatewayError, SandboxPrompt, DEMO_CASHIER_PHONE};
use kassa::store::{Terminal, TerminalState};
use serde_json::json;

const SECOND: &str = "7000000002";
const THIRD: &str = "7000000003";

/// Adds `phone` as a cashier of the demo cashier's Kaspi organization (at the simulator, as
/// the organization does in Kaspi Pay), then logs it in for `org` (as `kassa terminal
/// connect` does).
async fn add_cashier(kassa: &Kassa, org: i64, phone: &str) {
    kassa
        .sim()
        .add_cashier_to(phone, DEMO_CASHIER_PHONE)
        .expect("added at Kaspi");
    common::login(kassa, kassa.sim(), org, phone).await;
}

/// The cashier of `org` that `is`.
async fn cashier(kassa: &Kassa, org: i64, is: impl Fn(&Terminal) -> bool) -> Terminal {
    kassa
        .store()
        .orgs()
        .terminals_for_org(org)
        .await
        .expect("read")
        .into_iter()
        .find(is)
        .expect("a cashier of the organization")
}

/// How many of the simulator's remote invoices each cashier made.
fn made_by(sim: &Simulator) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for op in sim.operations() {
        if op.sale_type == "Remote" {
            *counts
                .entry(op.cashier_phone.unwrap_or_default())
                .or_default() += 1;
        }
    }
    counts
}

async fn create(kassa: &Kassa, key: &str, n: u32) -> common::Answer {
    kassa
        .post(
            key,
            "/invoices",
            json!({"amount": 100 + n, "phone_number": format!("8701{:07}", n)}),
        )
        .await
}

on_both_databases!(
    creates_spread_over_the_cashiers_and_skip_a_dead_one,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        add_cashier(&kassa, org, SECOND).await;
        add_cashier(&kassa, org, THIRD).await;
        let cashiers = kassa.store().orgs().terminals_for_org(org).await.unwrap();
        assert_eq!(cashiers.len(), 3);

        // Nine creates at once: each cashier makes some (their budgets are taken in turn).
        let answers = futures::future::join_all((0..9).map(|n| create(&kassa, &key, n))).await;
        for a in &answers {
            assert_eq!(a.status, 201, "{:?}", a.json);
        }
        let counts = made_by(kassa.sim());
        assert_eq!(counts.values().sum::<usize>(), 9, "{counts:?}");
        for phone in [DEMO_CASHIER_PHONE, SECOND, THIRD] {
            assert!(
                counts.get(phone).copied().unwrap_or(0) >= 2,
                "cashier {phone} made too few: {counts:?}"
            );
        }
        let status = kassa.status().await.json;
        assert_eq!(status["kaspi"]["state"], "ok", "{status}");
        assert_eq!(status["kaspi"]["sessions"]["healthy"], 3, "{status}");

        // The second cashier's phone logs in on another device: its session is dead. Creates
        // still all succeed, through the other two; the second is marked for a new login.
        assert_eq!(kassa.sim().evict_sessions(SECOND).expect("evict"), 1);
        let before = made_by(kassa.sim());
        for n in 10..16 {
            let a = create(&kassa, &key, n).await;
            assert_eq!(a.status, 201, "{:?}", a.json);
        }
        let after = made_by(kassa.sim());
        assert_eq!(after.get(SECOND), before.get(SECOND), "{after:?}");
        assert_eq!(after.values().sum::<usize>(), 15, "{after:?}");
        let dead = cashier(&kassa, org, |t| t.phone == SECOND).await;
        assert_eq!(dead.state, TerminalState::NeedsLogin);
        // The organization still reaches Kaspi: one session needs a login, the state is ok.
        let status = kassa.status().await.json;
        assert_eq!(status["kaspi"]["state"], "ok", "{status}");
        assert_eq!(status["kaspi"]["sessions"]["healthy"], 2, "{status}");
        assert_eq!(status["kaspi"]["sessions"]["needs_login"], 1, "{status}");

        // Every cashier dead: the usual session error, and the organization needs a login.
        kassa
            .sim()
            .evict_sessions(DEMO_CASHIER_PHONE)
            .expect("evict");
        kassa.sim().evict_sessions(THIRD).expect("evict");
        let mut refused = create(&kassa, &key, 20).await;
        if refused.status == 201 {
            // A cashier not yet known dead took it before; the next one finds both dead.
            refused = create(&kassa, &key, 21).await;
        }
        assert_eq!(refused.status, 503, "{:?}", refused.json);
        assert_eq!(refused.json["error"], "kaspi_session_invalid");
        let status = kassa.status().await.json;
        assert_eq!(status["kaspi"]["state"], "needs_login", "{status}");
        assert_eq!(status["kaspi"]["sessions"]["healthy"], 0, "{status}");

        // One cashier logs in again: creates go on, through it alone.
        common::login(&kassa, kassa.sim(), org, THIRD).await;
        let before = made_by(kassa.sim());
        let again = create(&kassa, &key, 22).await;
        assert_eq!(again.status, 201, "{:?}", again.json);
        let after = made_by(kassa.sim());
        assert_eq!(after.get(THIRD), before.get(THIRD).map(|n| n + 1).as_ref());
        kassa.stop().await;
    }
);

on_both_databases!(
    a_cashier_of_another_kaspi_organization_is_refused,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, _key) = Kassa::stepped_demo(&test, dir.path()).await;
        // Not added to the demo cashier's organization at Kaspi: it has its own.
        let phone = kaspi::phone::normalize("7000000009").expect("phone");
        let mut prompt = SandboxPrompt {
            sim: kassa.sim().clone(),
            phone: phone.as_str().into(),
        };
        let refused = kassa::gateway::connect_terminal(
            kassa.store(),
            &kassa.state.master_key,
            kassa.state.gateway.terminals().client_config().clone(),
            org,
            &phone,
            &mut prompt,
        )
        .await;
        match refused {
            Err(GatewayError::LoginFailed(why)) => {
                assert!(why.contains("another Kaspi organization"), "{why}");
                assert!(!why.contains("7000000009"), "phones are masked: {why}");
            }
            other => panic!("not refused: {other:?}"),
        }
        assert_eq!(
            kassa
                .store()
                .orgs()
                .terminals_for_org(org)
                .await
                .unwrap()
                .len(),
            1
        );
        kassa.stop().await;
    }
);

on_both_databases!(
    a_cancel_goes_through_the_cashier_that_made_the_invoice,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        add_cashier(&kassa, org, SECOND).await;
        let made = create(&kassa, &key, 1).await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        let id = made.json["id"].as_i64().expect("id");
        let creator = kassa
            .store()
            .orgs()
            .invoice_terminal(org, id)
            .await
            .unwrap()
            .expect("the creating cashier is recorded");
        let creator = cashier(&kassa, org, |t| t.id == creator).await;
        let op = kassa
            .sim()
            .operations()
            .into_iter()
            .find(|op| op.sale_type == "Remote")
            .expect("operation");
        assert_eq!(op.cashier_phone.as_deref(), Some(creator.phone.as_str()));
        // The creating cashier's session dies: the cancel still goes, through the other one
        // (an organization's cashiers act on its operations).
        kassa.sim().evict_sessions(&creator.phone).expect("evict");
        let cancelled = kassa
            .post(&key, &format!("/invoices/{id}/cancel"), json!({}))
            .await;
        assert_eq!(cancelled.status, 200, "{:?}", cancelled.json);
        assert_eq!(
            cancelled.json["status"], "cancelled",
            "{:?}",
            cancelled.json
        );
        kassa.stop().await;
    }
);

on_both_databases!(
    a_cashier_sealed_per_organization_keeps_working,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = Kassa::stepped_demo(&test, dir.path()).await;
        // The demo cashier's row as a gateway from before several cashiers wrote it: device
        // and session sealed by the organization alone.
        let t = cashier(&kassa, org, |t| t.phone == DEMO_CASHIER_PHONE).await;
        let mk = &kassa.state.master_key;
        let reseal = |blob: &[u8], kind: &str| {
            let plain = mk
                .open(blob, &format!("terminal-{kind}:{org}:{}", t.phone))
                .expect("sealed per cashier");
            mk.seal(&plain, &format!("terminal-{kind}:{org}"))
        };
        let device = reseal(&t.device_sealed, "device");
        let session = reseal(t.session_sealed.as_deref().expect("session"), "session");
        let id = t.id;
        kassa
            .store()
            .db()
            .write(move |tx| {
                tx.execute(
                    "UPDATE terminals SET device_sealed = $2, session_sealed = $3, \
                     sealed_per_cashier = 0, version = version + 1 WHERE id = $1",
                    &[id.into(), device.clone().into(), session.clone().into()],
                )
            })
            .await
            .expect("rewritten");
        let made = create(&kassa, &key, 1).await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        // A refresh keeps the row's sealing: the session expires, is refreshed and stored,
        // and the next calls use it.
        assert!(kassa.sim().expire_sessions() >= 1);
        let made = create(&kassa, &key, 2).await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        let t = cashier(&kassa, org, |t| t.phone == DEMO_CASHIER_PHONE).await;
        assert!(!t.sealed_per_cashier);
        assert_eq!(t.state, TerminalState::Active);
        let made = create(&kassa, &key, 3).await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        // A new login of the same phone reuses the device (sealed per organization) and
        // moves the row to per-cashier sealing.
        common::login(&kassa, kassa.sim(), org, DEMO_CASHIER_PHONE).await;
        let t = cashier(&kassa, org, |t| t.phone == DEMO_CASHIER_PHONE).await;
        assert!(t.sealed_per_cashier);
        let sessions = kassa.sim().sessions(DEMO_CASHIER_PHONE).expect("sessions");
        assert!(
            sessions.iter().all(|s| s.state != "evicted"),
            "one device: {sessions:?}"
        );
        let made = create(&kassa, &key, 4).await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        kassa.stop().await;
    }
);
