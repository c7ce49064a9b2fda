//! Payments are detected from Kaspi's operations history in bulk, not by polling each invoice.

mod common;

use std::time::Duration;

use common::{fast_settings, Kassa, Options};
use kassa::db::testing::TestDb;
use serde_json::json;

/// Kassa whose individual look-ups come so late that only the history sync can settle
/// anything, and an API key of its demo organization.
async fn start_history_only(test: &TestDb, dir: &std::path::Path) -> (Kassa, String) {
    let mut options = Options::new(test.url(), dir).stepped();
    options.settings.poll_schedule = vec![Duration::from_secs(3600)];
    // The cashier's calls are spaced on the wall clock (15 a second): these tests count the
    // calls, not their pace, which would make 40 creates take seconds of real time.
    options.settings.kaspi_calls_per_sec = 1_000;
    let kassa = Kassa::start(options).await;
    let org = kassa.demo_org().await;
    let key = kassa.api_key(org).await;
    (kassa, key)
}

/// Creates `n` invoices through the API, then lets the history sync (due `history_every`
/// after a create) read them open, as the background sync would meanwhile: that run leaves
/// the mark later runs read down to. Their Kaspi operation ids.
async fn open_invoices(kassa: &Kassa, key: &str, n: i64) -> Vec<u64> {
    let mut made = Vec::new();
    for i in 0..n {
        let body = json!({"amount": 100 + i, "phone_number": "87001234567"});
        made.push(kassa.invoice(key, body).await.op);
    }
    kassa.advance(fast_settings().history_every).await;
    made
}

/// Steps the history syncs, moving the clock, until no invoice is pending (at most `limit` of
/// clock time); whether that happened.
async fn none_pending(kassa: &Kassa, key: &str, limit: Duration) -> bool {
    kassa
        .advance_until(limit, Duration::from_millis(200), || async {
            let pending = kassa.get(key, "/invoices?status[]=pending").await;
            (pending.json["meta"]["total"] == 0).then_some(())
        })
        .await
        .is_some()
}

on_both_databases!(
    history_settles_many_invoices_with_few_calls,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, key) = start_history_only(&test, dir.path()).await;
        let ops = open_invoices(&kassa, &key, 40).await;
        let calls_before = kassa.sim().call_count();
        // Payers pay at the simulator; declines end up there too.
        for (i, op) in ops.iter().enumerate() {
            if i % 10 == 9 {
                kassa.sim().decline(*op).expect("decline");
            } else {
                kassa.sim().pay(*op).expect("pay");
            }
        }
        assert!(
            none_pending(&kassa, &key, Duration::from_secs(20)).await,
            "every invoice settled from history"
        );
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
        for op in &ops {
            kassa.sim().pay(*op).expect("pay");
        }
        assert!(
            none_pending(&kassa, &key, Duration::from_secs(30)).await,
            "every payment found, the oldest too"
        );
        let paid = kassa.get(&key, "/invoices?status[]=paid").await;
        assert_eq!(paid.json["meta"]["total"], 30);
        kassa.stop().await;
    }
);
