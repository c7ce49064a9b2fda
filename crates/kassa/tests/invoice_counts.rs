//! Filtered totals and stats answered from the kept counts (`invoice_day_counts`), over HTTP,
//! on both databases: after creates, payments, cancels, declines, expiries, a failed create, a
//! late payment, a refund, deletes of unsent invoices and bulk inserts, spread over several
//! Almaty days (one invoice at 23:59, one at 00:01) and two organizations, every status and
//! date filter ApiPay's list offers answers the `total` a COUNT(*) of the rows gives, and the
//! stats of every period the sums of the rows. Then the migration's backfill, run again on
//! these rows, makes the same counts.

mod common;

use std::time::Duration;

use common::{Kassa, Options};
use kassa::db::{Db, Value};
use kassa::domain::{InvoiceKind, KaspiOperationId, Money, ALMATY};
use kassa::store::{BulkInvoice, InvoiceStatus, NewInvoice};
use serde_json::json;
use time::Date;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The start of Almaty day `date`, unix ms.
fn day_start(date: Date) -> i64 {
    let at = date.midnight().assume_offset(ALMATY);
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("fits")
}

fn almaty_date(ms: i64) -> Date {
    kassa::clock::at_ms(ms).to_offset(ALMATY).date()
}

fn ymd(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// An ApiPay invoice of `tenge` made over HTTP; its id.
async fn create(kassa: &Kassa, key: &str, tenge: i64) -> i64 {
    kassa
        .invoice(key, json!({"amount": tenge, "phone_number": "87001234567"}))
        .await
        .id
}

/// A sandbox action (`pay`, `decline`, `expire`) or a cancel on invoice `id`, over HTTP.
async fn act(kassa: &Kassa, key: &str, id: i64, action: &str) {
    let path = match action {
        "cancel" => format!("/invoices/{id}/cancel"),
        _ => format!("/sandbox/invoices/{id}/{action}"),
    };
    let done = kassa.post(key, &path, json!({})).await;
    assert_eq!(done.status, 200, "{action} {id}: {:?}", done.json);
}

/// A new invoice as the gateway stores it before asking Kaspi.
fn new_invoice(org_id: i64, n: i64, created_at: i64) -> NewInvoice {
    NewInvoice {
        payment_id: uuid::Uuid::new_v4().to_string(),
        org_id,
        kind: InvoiceKind::Remote,
        amount: Money::from_tiyn(10_000 + 137 * n),
        phone: kassa::domain::parse_phone("7001234567").ok(),
        description: Some(format!("counted #{n}")),
        external_order_id: None,
        is_sandbox: true,
        created_at,
        expires_at: None,
        metadata: None,
        kaspi_ref: None,
        reconcile_at: None,
        idempotency: None,
    }
}

/// Bulk rows of `org_id` around the Almaty midnights of `days`: a millisecond before, at, and
/// in the middle of each, in every status (Kaspi operation ids from `first_op`).
fn bulk_rows(org_id: i64, days: &[Date], first_op: i64) -> Vec<BulkInvoice> {
    let mut rows = Vec::new();
    for date in days {
        let midnight = day_start(*date);
        for at in [midnight - 1, midnight, midnight + 12 * 3_600_000] {
            for status in InvoiceStatus::ALL {
                let n = i64::try_from(rows.len()).expect("few");
                let mut row = BulkInvoice::pending(
                    new_invoice(org_id, n, at),
                    KaspiOperationId::new(first_op + n),
                );
                row.status = *status;
                row.changed_at = Some(at + 1_000);
                rows.push(row);
            }
        }
    }
    rows
}

/// The one number `sql` reads with `params`.
async fn number(db: &Db, sql: &str, params: Vec<Value>) -> i64 {
    let sql = sql.to_owned();
    db.read(move |tx| tx.query_one(&sql, &params)?.i64("n"))
        .await
        .expect("read")
}

/// ` AND created_at >= … AND created_at < …` of an ApiPay date filter, its bounds pushed.
fn created_condition(from: Option<Date>, to: Option<Date>, params: &mut Vec<Value>) -> String {
    let mut sql = String::new();
    if let Some(from) = from {
        params.push(day_start(from).into());
        sql.push_str(&format!(" AND created_at >= ${}", params.len()));
    }
    if let Some(to) = to {
        params.push(day_start(to.next_day().expect("day")).into());
        sql.push_str(&format!(" AND created_at < ${}", params.len()));
    }
    sql
}

/// The Kassa statuses an ApiPay status filter names.
fn kassa_statuses(name: &str) -> &'static [&'static str] {
    match name {
        "pending" | "processing" => &["pending"],
        "paid" => &["paid"],
        "cancelled" | "error" => &["cancelled", "failed"],
        _ => &["expired"],
    }
}

/// Every status and date filter of ApiPay's list over `dates`, for the organization of `key`:
/// the `total` over HTTP is the COUNT(*) of its rows. How many combinations were checked.
async fn check_list_totals(kassa: &Kassa, key: &str, org: i64, dates: &[Date]) -> usize {
    let db = kassa.store().db().clone();
    let status_sets: [&[&str]; 10] = [
        &[],
        &["pending"],
        &["processing"],
        &["paid"],
        &["cancelled"],
        &["error"],
        &["expired"],
        &["pending", "paid"],
        &["cancelled", "expired"],
        &["paid", "error", "expired", "processing"],
    ];
    let mut ranges: Vec<(Option<Date>, Option<Date>)> = vec![(None, None)];
    for (i, from) in dates.iter().enumerate() {
        ranges.push((Some(*from), None));
        ranges.push((None, Some(*from)));
        for to in &dates[i..] {
            ranges.push((Some(*from), Some(*to)));
        }
    }
    let mut checked = 0;
    for statuses in status_sets {
        for (from, to) in &ranges {
            let mut query = String::from("/invoices?per_page=1");
            for s in statuses {
                query.push_str(&format!("&status[]={s}"));
            }
            if let Some(from) = from {
                query.push_str(&format!("&date_from={}", ymd(*from)));
            }
            if let Some(to) = to {
                query.push_str(&format!("&date_to={}", ymd(*to)));
            }
            let listed = kassa.get(key, &query).await;
            assert_eq!(listed.status, 200, "{query}: {:?}", listed.json);

            let mut params: Vec<Value> = vec![org.into()];
            let mut sql = String::from("SELECT COUNT(*) AS n FROM invoices WHERE org_id = $1");
            sql.push_str(&created_condition(*from, *to, &mut params));
            if !statuses.is_empty() {
                let mut names: Vec<&str> = statuses
                    .iter()
                    .flat_map(|s| kassa_statuses(s).iter().copied())
                    .collect();
                names.sort_unstable();
                names.dedup();
                let first = params.len() + 1;
                params.extend(names.iter().map(|s| Value::from(*s)));
                let list: Vec<String> =
                    (first..params.len() + 1).map(|i| format!("${i}")).collect();
                sql.push_str(&format!(" AND status IN ({})", list.join(", ")));
            }
            let counted = number(&db, &sql, params).await;
            assert_eq!(
                listed.json["meta"]["total"], counted,
                "org {org} {query}: total {} but {counted} rows",
                listed.json["meta"]["total"]
            );
            let shown = listed.json["data"].as_array().expect("data").len();
            assert_eq!(shown, usize::from(counted > 0), "{query}");
            checked += 1;
        }
    }
    checked
}

/// The stats of every period over `dates`, for the organization of `key`: counts and sums as
/// the rows say.
async fn check_stats(kassa: &Kassa, key: &str, org: i64, dates: &[Date]) {
    let db = kassa.store().db().clone();
    let tenge = |tiyn: i64| Money::from_tiyn(tiyn).to_decimal_string();
    for (i, start) in dates.iter().enumerate() {
        for end in &dates[i..] {
            let query = format!(
                "/invoices/stats?start_date={}&end_date={}",
                ymd(*start),
                ymd(*end)
            );
            let stats = kassa.get(key, &query).await;
            assert_eq!(stats.status, 200, "{query}: {:?}", stats.json);
            let of = |what: &'static str, status: Option<&'static str>| {
                let db = db.clone();
                async move {
                    let mut params: Vec<Value> = vec![org.into()];
                    let mut sql = format!(
                        "SELECT CAST(COALESCE({what}, 0) AS BIGINT) AS n FROM invoices \
                         WHERE org_id = $1"
                    );
                    sql.push_str(&created_condition(Some(*start), Some(*end), &mut params));
                    if let Some(status) = status {
                        params.push(status.into());
                        sql.push_str(&format!(" AND status = ${}", params.len()));
                    }
                    number(&db, &sql, params).await
                }
            };
            assert_eq!(
                stats.json["total_count"],
                of("COUNT(*)", None).await,
                "{query}"
            );
            assert_eq!(
                stats.json["total_amount"],
                tenge(of("SUM(amount)", None).await),
                "{query}"
            );
            assert_eq!(
                stats.json["total_refunded"],
                tenge(of("SUM(total_refunded)", None).await),
                "{query}"
            );
            assert_eq!(
                stats.json["paid_count"],
                of("COUNT(*)", Some("paid")).await,
                "{query}"
            );
            assert_eq!(
                stats.json["paid_amount"],
                tenge(of("SUM(amount)", Some("paid")).await),
                "{query}"
            );
            let cancelled =
                of("COUNT(*)", Some("cancelled")).await + of("COUNT(*)", Some("failed")).await;
            assert_eq!(
                stats.json["by_status"]["cancelled"]["count"], cancelled,
                "{query}"
            );
            assert_eq!(
                stats.json["by_status"]["expired"]["count"],
                of("COUNT(*)", Some("expired")).await,
                "{query}"
            );
            assert_eq!(
                stats.json["by_status"]["pending"]["count"],
                of("COUNT(*)", Some("pending")).await,
                "{query}"
            );
        }
    }
}

/// The store's stats over periods that do not start or end at an Almaty midnight (the kept
/// whole days plus the rows of the partial ones) against the rows.
async fn check_odd_periods(kassa: &Kassa, org: i64, dates: &[Date]) {
    let db = kassa.store().db().clone();
    let first = day_start(dates[0]);
    let last = day_start(*dates.last().expect("dates"));
    let instants = [
        first - 1,
        first,
        first + 1,
        first + 12 * 3_600_000 + 1,
        last - 30_000,
        last + 90_000,
        last + 24 * 3_600_000,
    ];
    for (i, from) in instants.iter().enumerate() {
        for to in &instants[i..] {
            let stats = kassa
                .store()
                .invoices()
                .invoice_stats(org, *from, *to)
                .await
                .expect("stats");
            for status in InvoiceStatus::ALL {
                let sql = "SELECT COUNT(*) AS n FROM invoices WHERE org_id = $1 \
                           AND created_at >= $2 AND created_at < $3 AND status = $4";
                let params: Vec<Value> = vec![
                    org.into(),
                    (*from).into(),
                    (*to).into(),
                    status.as_str().into(),
                ];
                let counted = number(&db, sql, params.clone()).await;
                let summed = number(
                    &db,
                    &sql.replace("COUNT(*)", "CAST(COALESCE(SUM(amount), 0) AS BIGINT)"),
                    params,
                )
                .await;
                let kept = stats.of(*status);
                assert_eq!(kept.count, counted, "{status:?} in [{from}, {to})");
                assert_eq!(kept.amount, summed, "{status:?} in [{from}, {to})");
            }
        }
    }
}

/// The rows of `invoice_day_counts` that count something, in key order.
async fn kept_rows(db: &Db) -> Vec<Vec<String>> {
    db.read(|tx| {
        let rows = tx.query(
            "SELECT org_id, status, day, shard, n, amount, refunded FROM invoice_day_counts \
             WHERE n <> 0 OR amount <> 0 OR refunded <> 0 ORDER BY org_id, status, day, shard",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(vec![
                    r.i64("org_id")?.to_string(),
                    r.text("status")?,
                    r.i64("day")?.to_string(),
                    r.i64("shard")?.to_string(),
                    r.i64("n")?.to_string(),
                    r.i64("amount")?.to_string(),
                    r.i64("refunded")?.to_string(),
                ])
            })
            .collect::<Result<Vec<_>, kassa::db::DbError>>()
    })
    .await
    .expect("kept rows")
}

on_both_databases!(
    filtered_totals_and_stats_come_from_kept_counts,
    |test: kassa::db::testing::TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = Kassa::start(Options::new(test.url(), dir.path()).stepped()).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
        let other = common::connect(&kassa, kassa.sim(), "other", "7000000002").await;
        let other_key = kassa.api_key(other).await;
        let invoices = kassa.store().invoices();

        // To 23:58:30 in Almaty.
        let now = kassa.state.clock.now_ms();
        let next_midnight = day_start(almaty_date(now).next_day().expect("day"));
        let to = next_midnight - 90_000;
        let wait = if to > now {
            to - now
        } else {
            to + 86_400_000 - now
        };
        kassa
            .advance(Duration::from_millis(u64::try_from(wait).expect("ahead")))
            .await;
        let d0 = almaty_date(kassa.state.clock.now_ms());

        // Day 0, 23:58:30: paid, cancelled, pending; the other shop's paid one.
        let paid = create(&kassa, &key, 1_000).await;
        act(&kassa, &key, paid, "pay").await;
        let cancelled = create(&kassa, &key, 2_000).await;
        act(&kassa, &key, cancelled, "cancel").await;
        let late = create(&kassa, &key, 3_000).await;
        let theirs = create(&kassa, &other_key, 4_000).await;
        act(&kassa, &other_key, theirs, "pay").await;
        // 23:59:30.
        kassa.advance(MINUTE).await;
        let at_2359 = create(&kassa, &key, 5_000).await;
        act(&kassa, &key, at_2359, "pay").await;
        // 00:01 of day 1.
        kassa.advance(Duration::from_secs(90)).await;
        assert_eq!(
            almaty_date(kassa.state.clock.now_ms()),
            d0.next_day().expect("day")
        );
        let at_0001 = create(&kassa, &key, 6_000).await;
        act(&kassa, &key, at_0001, "pay").await;
        let expired = create(&kassa, &key, 7_000).await;
        act(&kassa, &key, expired, "expire").await;
        let declined = create(&kassa, &other_key, 8_000).await;
        act(&kassa, &other_key, declined, "decline").await;

        // A refund of part of the 23:59 payment, completed by the worker.
        let refund = kassa
            .post(
                &key,
                &format!("/invoices/{at_2359}/refund"),
                json!({"amount": 1234.5}),
            )
            .await;
        assert_eq!(refund.status, 201, "{:?}", refund.json);
        let refunded = kassa
            .invoice_reaches(&key, at_2359, "total_refunded", "1234.50")
            .await;
        assert!(refunded.is_some(), "the refund completes");

        // A create Kaspi refused, and two that never reached it (deleted).
        let now = kassa.state.clock.now_ms();
        let failed = invoices
            .insert_invoice(new_invoice(org, 1, now))
            .await
            .expect("insert");
        invoices
            .mark_invoice_create_failed(failed.id, "refused", now)
            .await
            .expect("failed");
        for (owner, n) in [(org, 2), (other, 3)] {
            let unsent = invoices
                .insert_invoice(new_invoice(owner, n, now))
                .await
                .expect("insert");
            assert!(invoices
                .delete_unsent_invoice(unsent.id)
                .await
                .expect("delete"));
        }

        // A day on (the poller ends what Kaspi ended); then the day-0 invoice is paid late.
        kassa.advance_by_steps(DAY, Duration::from_secs(3600)).await;
        let d2 = almaty_date(kassa.state.clock.now_ms());
        let now = kassa.state.clock.now_ms();
        let changed = invoices
            .apply_status(late, InvoiceStatus::Paid, Some("Processed"), now, None)
            .await
            .expect("late payment");
        assert!(changed.is_some(), "the day-0 invoice is paid on day 2");
        let on_d2 = create(&kassa, &key, 9_000).await;
        act(&kassa, &key, on_d2, "pay").await;
        create(&kassa, &key, 9_500).await;

        // Bulk rows around the midnights, in every status, for both shops.
        let dates: Vec<Date> = (0..5)
            .map(|back| d2 - time::Duration::days(back))
            .rev()
            .collect();
        let seeded = invoices
            .bulk_insert_invoices(bulk_rows(org, &dates, 900_000_000_000))
            .await
            .expect("bulk");
        assert_eq!(seeded, 75);
        invoices
            .bulk_insert_invoices(bulk_rows(other, &dates[1..], 900_000_100_000))
            .await
            .expect("bulk");

        let mut around = vec![dates[0] - time::Duration::days(1)];
        around.extend(&dates);
        around.push(d2.next_day().expect("day"));
        assert!(around.contains(&d0));
        let checked = check_list_totals(&kassa, &key, org, &around).await;
        assert_eq!(checked, 10 * (1 + 7 * 2 + 7 * 8 / 2));
        check_list_totals(&kassa, &other_key, other, &around).await;
        check_stats(&kassa, &key, org, &around).await;
        check_stats(&kassa, &other_key, other, &around).await;
        check_odd_periods(&kassa, org, &dates).await;

        // The shops' own numbers differ, so a leak would have shown.
        let mine = kassa.get(&key, "/invoices?per_page=1").await;
        let yours = kassa.get(&other_key, "/invoices?per_page=1").await;
        assert_ne!(mine.json["meta"]["total"], yours.json["meta"]["total"]);

        // The backfill: migration 0015 run again over these rows makes the same counts.
        let db = kassa.store().db().clone();
        let kept = kept_rows(&db).await;
        assert!(kept.len() > 40, "{}", kept.len());
        db.write(|tx| {
            tx.batch_execute("DROP TABLE invoice_day_counts")?;
            tx.execute("DELETE FROM schema_migrations WHERE version = 15", &[])
        })
        .await
        .expect("back to before 0015");
        db.migrate().await.expect("0015 again");
        assert_eq!(kept_rows(&db).await, kept);
        check_list_totals(&kassa, &key, org, &around[..3]).await;
        kassa.stop().await;
    }
);
