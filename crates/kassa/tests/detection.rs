//! Payments are detected from Kaspi's operations history in bulk, not by polling each invoice.

mod common;

use std::time::Duration;

use common::{wait_for, Kassa, Options};
use kassa::db::testing::TestDb;
use serde_json::json;

/// Kassa whose individual look-ups come so late that only the history sync can settle
/// anything, and an API key of its demo organization.
async fn start_history_only(test: &TestDb, dir: &std::path::Path) -> (Kassa, String) {
    let mut options = Options::new(test.url(), dir);
    options.settings.poll_schedule = vec![Duration::from_secs(3600)];
    let kassa = Kassa::start(options).await;
    let org = kassa.demo_org().await;
    let key = kassa.api_key(org).await;
    (kassa, key)
}

/// Creates `n` invoices through the API; their ids and Kaspi operation ids.
async fn open_invoices(kassa: &Kassa, key: &str, n: i64) -> Vec<(i64, u64)> {
    let mut made = Vec::new();
    for i in 0..n {
        let created = kassa
            .post(
                key,
                "/invoices",
                json!({"amount": 100 + i, "phone_number": "87001234567"}),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.json);
        let op: u64 = created.json["kaspi_invoice_id"]
            .as_str()
            .expect("op")
            .parse()
            .expect("numeric");
        made.push((created.json["id"].as_i64().expect("id"), op));
    }
    made
}

on_both_databases!(
    history_settles_many_invoices_with_few_calls,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, key) = start_history_only(&test, dir.path()).await;
        let ops = open_invoices(&kassa, &key, 40).await;
        let calls_before = kassa.sim().call_count();
        // Payers pay at the simulator; declines end up there too.
        for (i, (_, op)) in ops.iter().enumerate() {
            if i % 10 == 9 {
                kassa.sim().decline(*op).expect("decline");
            } else {
                kassa.sim().pay(*op).expect("pay");
            }
        }
        let settled = wait_for(Duration::from_secs(20), || async {
            let pending = kassa.get(&key, "/invoices?status[]=pending").await;
            (pending.json["meta"]["total"] == 0).then_some(())
        })
        .await;
        assert!(settled.is_some(), "every invoice settled from history");
        let paid = kassa
            .get(&key, "/invoices?status[]=paid&per_page=100")
            .await;
        assert_eq!(paid.json["meta"]["total"], 36);
        for invoice in paid.json["data"].as_array().expect("data") {
            assert!(invoice["client_name"].is_string(), "{invoice}");
        }
        let calls = kassa.sim().call_count() - calls_before;
        assert!(
            calls < 40,
            "40 invoices settled with {calls} Kaspi calls: fewer than one per invoice"
        );
        kassa.stop().await;
    }
);

on_both_databases!(
    a_backlog_deeper_than_one_run_is_read_by_the_next_runs,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, key) = start_history_only(&test, dir.path()).await;
        let ops = open_invoices(&kassa, &key, 30).await;
        // Two operations a page: 30 payments at once are 15 pages, more than one sync run
        // reads from the top (10); the rest is a gap the following runs read.
        kassa.sim().set_history_page_size(2);
        for (_, op) in &ops {
            kassa.sim().pay(*op).expect("pay");
        }
        let settled = wait_for(Duration::from_secs(30), || async {
            let pending = kassa.get(&key, "/invoices?status[]=pending").await;
            (pending.json["meta"]["total"] == 0).then_some(())
        })
        .await;
        assert!(settled.is_some(), "every payment found, the oldest too");
        let paid = kassa.get(&key, "/invoices?status[]=paid").await;
        assert_eq!(paid.json["meta"]["total"], 30);
        kassa.stop().await;
    }
);
