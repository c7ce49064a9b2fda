//! Subscriptions over HTTP on both databases, with time moved by the sandbox clock
//! (`POST /api/v1/sandbox/clock/advance`, which moves Kassa's clock and the sandbox Kaspi's and
//! does the work that comes due): the billing dates of a year of every period kind; retries,
//! grace and expiry with their webhooks in order; a payment during grace; pause, resume and
//! `PUT`; cancel with an invoice open at Kaspi; validation and isolation. Then exactly once:
//! two `kassa serve` processes on one PostgreSQL billing 1,000 subscriptions due at the same
//! moment, and a gateway that dies between storing an invoice and sending it.
//!
//! The payers are the sandbox's magic phones: `8700111NNNN` pays NNNN seconds after the
//! invoice is made, `8700222NNNN` declines after NNNN seconds, `87004440000` never pays (the
//! invoice expires after 24 h), any other number waits.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::receiver::Receiver;
use common::{Answer, Kassa, Options};
use kassa::db::testing::TestDb;
use serde_json::{json, Value};
use time::macros::date;
use time::Date;

const PAYS: &str = "87001110005";
const DECLINES: &str = "87002220005";
const NEVER_PAYS: &str = "87004440000";
const WAITS: &str = "87001234567";

/// A stepped sandbox gateway whose Kaspi calls are not spaced out (a year of billing makes
/// hundreds), with its demo organization and a key.
async fn start(test: &TestDb, dir: &Path) -> (Kassa, i64, String) {
    let mut options = Options::new(test.url(), dir).stepped();
    options.settings.kaspi_calls_per_sec = 1_000;
    let kassa = Kassa::start(options).await;
    let org = kassa.demo_org().await;
    let key = kassa.api_key(org).await;
    (kassa, org, key)
}

async fn create(kassa: &Kassa, key: &str, body: Value) -> Value {
    let made = kassa.post(key, "/subscriptions", body).await;
    assert_eq!(made.status, 201, "{:?}", made.json);
    made.json
}

/// Moves the sandbox clock by `body` (`{"days": N}` or `{"seconds": N}`).
async fn advance(kassa: &Kassa, key: &str, body: Value) -> Value {
    let moved = kassa.post(key, "/sandbox/clock/advance", body).await;
    assert_eq!(moved.status, 200, "{:?}", moved.json);
    moved.json
}

/// Moves the sandbox clock to 00:00 Almaty of `day`.
async fn advance_to(kassa: &Kassa, key: &str, day: Date) {
    let now = kassa.state.clock.now_ms();
    let target = day.midnight().assume_offset(kassa::domain::ALMATY);
    let target = i64::try_from(target.unix_timestamp_nanos() / 1_000_000).expect("ms");
    assert!(target > now, "{day} is ahead");
    advance(kassa, key, json!({"seconds": (target - now) / 1000 + 1})).await;
}

/// Every invoice subscription `id` made, oldest first.
async fn invoices_of(kassa: &Kassa, key: &str, id: i64) -> Vec<Value> {
    let mut all = Vec::new();
    for page in 1.. {
        let got = kassa
            .get(
                key,
                &format!("/subscriptions/{id}/invoices?per_page=100&page={page}"),
            )
            .await;
        assert_eq!(got.status, 200, "{:?}", got.json);
        let data = got.json["data"].as_array().expect("data").clone();
        if data.is_empty() {
            break;
        }
        all.extend(data);
    }
    all.reverse();
    all
}

/// How many rows of `table` belong to subscription `id` and meet `and` (SQL, or empty).
async fn rows_of(db: &kassa::db::Db, table: &str, id: i64, and: &str) -> i64 {
    common::count(
        db,
        &format!("SELECT COUNT(*) AS n FROM {table} WHERE subscription_id = {id} {and}"),
    )
    .await
}

/// Waits (at most `limit` of real time) until `done` holds: for work of other tasks or real
/// processes, which no clock of the test moves. Panics saying `what` when it never holds.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most `limit`, real time) until subscription `id` has an invoice meeting `and`.
async fn wait_for_invoice(db: &kassa::db::Db, id: i64, and: &str, limit: Duration) {
    let what = format!("subscription {id} has an invoice {and}");
    eventually(limit, &what, || async {
        rows_of(db, "invoices", id, and).await > 0
    })
    .await;
}

/// Whether the one create the simulator's fault was set for has reached it (the fault's
/// count is spent when a matching request arrives).
fn fault_spent(sim: &kaspi_sim::Simulator) -> bool {
    sim.faults().count == Some(0)
}

/// The Almaty date of an RFC 3339 time.
fn almaty_day(rfc3339: &Value) -> String {
    let at = time::OffsetDateTime::parse(
        rfc3339.as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    let day = at.to_offset(kassa::domain::ALMATY).date();
    kassa::domain::date_text(day)
}

/// The billing periods of `invoices` (first attempts), and that each was billed on its date.
fn billed_dates(invoices: &[Value]) -> Vec<String> {
    invoices
        .iter()
        .map(|i| {
            let start = i["billing_period_start"]
                .as_str()
                .expect("start")
                .to_owned();
            assert_eq!(i["attempt_number"], 1, "{i}");
            assert_eq!(
                almaty_day(&i["created_at"]),
                start,
                "billed on its date: {i}"
            );
            assert_eq!(i["is_recurring"], true);
            start
        })
        .collect()
}

fn days(from: Date, step: i64, until: Date) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = from;
    while at < until {
        out.push(kassa::domain::date_text(at));
        at += time::Duration::days(step);
    }
    out
}

on_both_databases!(
    a_year_of_day_counted_periods_bills_every_date_once,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = start(&test, dir.path()).await;
        let daily = create(
            &kassa,
            &key,
            json!({"amount": 100, "phone_number": PAYS, "billing_period": "daily", "started_at": "2027-12-31"}),
        )
        .await;
        let weekly = create(
            &kassa,
            &key,
            json!({"amount": 1000, "phone_number": PAYS, "billing_period": "weekly", "started_at": "2028-01-03", "bill_immediately": true}),
        )
        .await;
        let biweekly = create(
            &kassa,
            &key,
            json!({"amount": 2000, "phone_number": PAYS, "billing_period": "biweekly", "started_at": "2028-02-15"}),
        )
        .await;
        assert_eq!(daily["next_billing_date"], "2028-01-01");
        assert_eq!(daily["next_billing_at"], "2028-01-01T10:00:00+05:00");
        assert_eq!(daily["subscription"]["next_billing_date"], "2028-01-01");
        assert_eq!(weekly["next_billing_date"], "2028-01-03");
        assert_eq!(biweekly["next_billing_date"], "2028-02-29");

        let end = date!(2029 - 01 - 01);
        advance_to(&kassa, &key, end).await;

        let id = |v: &Value| v["id"].as_i64().expect("id");
        let got = billed_dates(&invoices_of(&kassa, &key, id(&daily)).await);
        let mut total = got.len();
        assert_eq!(got, days(date!(2028 - 01 - 01), 1, end));
        assert_eq!(got.len(), 366, "2028 is a leap year");
        assert!(got.contains(&"2028-02-29".to_owned()));
        let got = billed_dates(&invoices_of(&kassa, &key, id(&weekly)).await);
        total += got.len();
        assert_eq!(got, days(date!(2028 - 01 - 03), 7, end));
        let got = billed_dates(&invoices_of(&kassa, &key, id(&biweekly)).await);
        total += got.len();
        assert_eq!(got, days(date!(2028 - 02 - 29), 14, end));

        let daily = kassa
            .get(&key, &format!("/subscriptions/{}", id(&daily)))
            .await
            .json;
        assert_eq!(daily["stats"]["total_payments"], 366);
        assert_eq!(daily["stats"]["successful_payments"], 366);
        assert_eq!(daily["stats"]["total_collected"], "36600.00");
        assert_eq!(daily["stats"]["total_amount"], "36600.00");
        assert_eq!(daily["last_payment"]["status"], "paid");
        assert_eq!(daily["next_billing_date"], "2029-01-01");
        let db = test.db();
        assert_eq!(
            common::count(
                &db,
                "SELECT COUNT(*) AS n FROM invoices WHERE subscription_id IS NOT NULL"
            )
            .await,
            i64::try_from(total).expect("small"),
            "no invoice beyond one per date"
        );
    }
);

on_both_databases!(
    month_counted_periods_fall_on_their_day_across_month_ends_and_a_leap_year,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = start(&test, dir.path()).await;
        let day_28 = create(
            &kassa,
            &key,
            json!({"amount": 5000, "phone_number": PAYS, "billing_period": "monthly", "billing_day": 28, "started_at": "2027-11-30"}),
        )
        .await;
        let from_31st = create(
            &kassa,
            &key,
            json!({"amount": 5000, "phone_number": PAYS, "billing_period": "monthly", "started_at": "2028-01-31"}),
        )
        .await;
        let quarterly = create(
            &kassa,
            &key,
            json!({"amount": 15000, "phone_number": PAYS, "billing_period": "quarterly", "billing_day": 1, "started_at": "2027-12-15"}),
        )
        .await;
        let yearly = create(
            &kassa,
            &key,
            json!({"amount": 50000, "phone_number": PAYS, "billing_period": "yearly", "started_at": "2028-02-29"}),
        )
        .await;
        assert_eq!(from_31st["billing_day"], 28, "the start's day, at most 28");
        assert_eq!(yearly["billing_day"], 28);

        advance_to(&kassa, &key, date!(2029 - 03 - 02)).await;

        let id = |v: &Value| v["id"].as_i64().expect("id");
        let monthly_28 = |from: (i32, u8), n: usize| {
            (0..n)
                .map(|k| {
                    let m = usize::from(from.1) - 1 + k;
                    format!(
                        "{:04}-{:02}-28",
                        from.0 + i32::try_from(m / 12).expect("small"),
                        m % 12 + 1
                    )
                })
                .collect::<Vec<_>>()
        };
        let got = billed_dates(&invoices_of(&kassa, &key, id(&day_28)).await);
        assert_eq!(got, monthly_28((2027, 12), 15));
        assert!(got.contains(&"2028-02-28".to_owned()) && got.contains(&"2029-02-28".to_owned()));
        let got = billed_dates(&invoices_of(&kassa, &key, id(&from_31st)).await);
        assert_eq!(got, monthly_28((2028, 2), 13));
        let got = billed_dates(&invoices_of(&kassa, &key, id(&quarterly)).await);
        assert_eq!(
            got,
            [
                "2028-03-01",
                "2028-06-01",
                "2028-09-01",
                "2028-12-01",
                "2029-03-01"
            ]
        );
        let got = billed_dates(&invoices_of(&kassa, &key, id(&yearly)).await);
        assert_eq!(got, ["2029-02-28"]);
        let got = kassa
            .get(&key, &format!("/subscriptions/{}", id(&yearly)))
            .await
            .json;
        assert_eq!(got["next_billing_date"], "2030-02-28");
        // A new billing day applies from the next period: the next date moves to the first
        // 15th on or after the one already due.
        let put = kassa
            .http
            .put(kassa.url(&format!("/subscriptions/{}", id(&day_28))))
            .header("X-API-Key", &key)
            .json(&json!({"billing_day": 15}))
            .send()
            .await
            .expect("sent");
        let put = Answer::read(put).await;
        assert_eq!(put.status, 200, "{:?}", put.json);
        assert_eq!(put.json["billing_day"], 15);
        assert_eq!(put.json["next_billing_date"], "2029-04-15");
        // Each period's end is the day before the next one's start.
        let items = invoices_of(&kassa, &key, id(&day_28)).await;
        assert_eq!(items[2]["billing_period_end"], "2028-03-27");
        assert_eq!(items[2]["billing_period_label"], "28.02.2028 — 27.03.2028");
    }
);

/// The subscription events a receiver got, as `(event, attempt_number)`, in the order they
/// arrived (deliveries to one endpoint are made side by side, so not the events' order).
fn subscription_events(receiver: &Receiver) -> Vec<(String, Option<i64>)> {
    receiver
        .requests()
        .iter()
        .map(|r| r.json())
        .filter(|b| {
            b["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("subscription."))
        })
        .map(|b| {
            (
                b["event"].as_str().expect("event").to_owned(),
                b["attempt_number"].as_i64(),
            )
        })
        .collect()
}

/// Subscription `id`'s events in the outbox, in the order they happened.
async fn outbox_events(db: &kassa::db::Db, id: i64) -> Vec<(String, Option<i64>)> {
    db.read(move |tx| {
        let rows = tx.query(
            "SELECT kind, data FROM invoice_events WHERE subscription_id = $1 ORDER BY id",
            &[id.into()],
        )?;
        let mut out = Vec::new();
        for row in &rows {
            let data: Value = serde_json::from_str(&row.text("data")?).expect("JSON facts");
            out.push((row.text("kind")?, data["attempt_number"].as_i64()));
        }
        Ok::<_, kassa::db::DbError>(out)
    })
    .await
    .expect("events")
}

on_both_databases!(
    failed_payments_retry_then_grace_then_expire_with_their_events_in_order,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = start(&test, dir.path()).await;
        let receiver = Receiver::start().await;
        let made = kassa
            .post(&key, "/webhooks", json!({"url": receiver.url("/hook")}))
            .await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        let sub = create(
            &kassa,
            &key,
            json!({"amount": 5000, "phone_number": DECLINES, "billing_period": "monthly", "bill_immediately": true,
                   "max_retry_attempts": 2, "retry_interval_hours": 6, "grace_period_days": 2,
                   "external_subscriber_id": "CLIENT-001", "subscriber_name": "Иван"}),
        )
        .await;
        let id = sub["id"].as_i64().expect("id");
        advance(&kassa, &key, json!({"days": 1})).await;
        let got = kassa.get(&key, &format!("/subscriptions/{id}")).await.json;
        assert_eq!(got["status"], "active");
        assert_eq!(got["in_grace_period"], true, "{got}");
        advance(&kassa, &key, json!({"days": 3})).await;

        let got = kassa.get(&key, &format!("/subscriptions/{id}")).await.json;
        assert_eq!(got["status"], "expired");
        assert_eq!(got["subscription"]["status"], "expired");
        assert_eq!(got["in_grace_period"], false);
        assert_eq!(got["next_billing_date"], Value::Null);
        assert_eq!(got["stats"]["failed_payments"], 4);
        assert_eq!(got["stats"]["successful_payments"], 0);
        assert_eq!(got["last_payment"], Value::Null);

        let happened = outbox_events(&test.db(), id).await;
        let mut arrived = subscription_events(&receiver);
        let mut sorted = happened.clone();
        arrived.sort();
        sorted.sort();
        assert_eq!(arrived, sorted, "each event delivered once");
        assert_eq!(
            happened,
            [
                ("subscription.payment_failed".to_owned(), Some(1)),
                ("subscription.payment_failed".to_owned(), Some(2)),
                ("subscription.payment_failed".to_owned(), Some(3)),
                ("subscription.grace_period_started".to_owned(), None),
                ("subscription.payment_failed".to_owned(), Some(4)),
                ("subscription.expired".to_owned(), None),
            ]
        );
        let bodies: Vec<Value> = receiver.requests().iter().map(|r| r.json()).collect();
        for body in bodies.iter().filter(|b| {
            b["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("subscription."))
        }) {
            // Both doc versions read it: the current flat fields and the seed's `data`.
            assert_eq!(body["subscription"]["id"], id, "{body}");
            assert_eq!(body["data"]["subscription"]["id"], id, "{body}");
            assert_eq!(body["subscription"]["external_subscriber_id"], "CLIENT-001");
            assert_eq!(body["subscription"]["is_sandbox"], true);
            assert_eq!(body["source"], "subscription");
        }
        let failed = &bodies
            .iter()
            .find(|b| b["event"] == "subscription.payment_failed")
            .expect("failed");
        assert_eq!(failed["reason"], "Payment declined");
        assert_eq!(failed["data"]["reason"], "Payment declined");
        assert_eq!(failed["amount"], "5000.00");
        assert_eq!(failed["subscription"]["failed_attempts"], 1);
        assert_eq!(
            failed["data"]["invoice"]["status"], "cancelled",
            "ApiPay's name of a declined invoice"
        );
        let grace = bodies
            .iter()
            .find(|b| b["event"] == "subscription.grace_period_started")
            .expect("grace");
        assert_eq!(grace["grace_period_days"], 2);
        assert_eq!(grace["subscription"]["in_grace_period"], true);
        assert_eq!(grace["data"]["subscription"]["grace_period_days"], 2);
        assert!(grace["expires_at"]
            .as_str()
            .is_some_and(|s| s.ends_with("+05:00")));
        let expired = bodies
            .iter()
            .find(|b| b["event"] == "subscription.expired")
            .expect("expired");
        assert_eq!(expired["subscription"]["status"], "expired");
        assert_eq!(expired["subscription"]["next_billing_at"], Value::Null);
        // Every invoice's own status change went out too, marked recurring.
        let invoice_events: Vec<&Value> = bodies
            .iter()
            .filter(|b| b["event"] == "invoice.status_changed")
            .collect();
        assert_eq!(invoice_events.len(), 4);
        assert!(
            invoice_events
                .iter()
                .all(|b| b["invoice"]["is_recurring"] == true
                    && b["invoice"]["subscription_id"] == id)
        );

        // Four invoices for the one period: the first, two retries six hours or more after each
        // failure, and the grace period's last one.
        let items = invoices_of(&kassa, &key, id).await;
        let attempts: Vec<i64> = items
            .iter()
            .map(|i| i["attempt_number"].as_i64().expect("n"))
            .collect();
        assert_eq!(attempts, [1, 2, 3, 4]);
        assert!(items
            .iter()
            .all(|i| i["billing_period_start"] == items[0]["billing_period_start"]));
        assert!(items
            .iter()
            .all(|i| i["failure_reason"] == "Payment declined" && i["status"] == "cancelled"));
        let at = |i: &Value| {
            time::OffsetDateTime::parse(
                i["created_at"].as_str().expect("t"),
                &time::format_description::well_known::Rfc3339,
            )
            .expect("time")
        };
        assert!(at(&items[1]) - at(&items[0]) >= time::Duration::hours(6));
        assert!(at(&items[2]) - at(&items[1]) >= time::Duration::hours(6));

        // Nothing more is billed once expired; ended means ended.
        advance(&kassa, &key, json!({"days": 40})).await;
        assert_eq!(invoices_of(&kassa, &key, id).await.len(), 4);
        let again = kassa
            .post(&key, &format!("/subscriptions/{id}/pause"), json!({}))
            .await;
        assert_eq!(again.status, 400, "{:?}", again.json);
        assert!(again.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")));
    }
);

on_both_databases!(
    a_payment_during_grace_keeps_the_subscription_on_its_own_dates,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = start(&test, dir.path()).await;
        let sub = create(
            &kassa,
            &key,
            json!({"amount": 3000, "phone_number": NEVER_PAYS, "billing_period": "monthly", "bill_immediately": true,
                   "max_retry_attempts": 1, "retry_interval_hours": 1, "grace_period_days": 5}),
        )
        .await;
        let id = sub["id"].as_i64().expect("id");
        kassa.step().await;
        let next = kassa.get(&key, &format!("/subscriptions/{id}")).await.json["next_billing_date"]
            .clone();
        assert_ne!(next, sub["next_billing_date"], "the first period is billed");
        // 24 h until the first invoice expires, an hour to the retry, 24 h more: grace, with
        // its invoice (which itself expires 24 h later).
        advance(&kassa, &key, json!({"seconds": 54 * 3600})).await;
        let got = kassa.get(&key, &format!("/subscriptions/{id}")).await.json;
        assert_eq!(got["in_grace_period"], true, "{got}");
        assert_eq!(got["failed_attempts"], 2);
        let items = invoices_of(&kassa, &key, id).await;
        assert_eq!(
            items.len(),
            3,
            "the first, one retry, the grace period's invoice"
        );
        let open = &items[2];
        assert_eq!(open["status"], "pending");
        let open_id = open["id"].as_i64().expect("id");

        let paid = kassa
            .post(&key, &format!("/sandbox/invoices/{open_id}/pay"), json!({}))
            .await;
        assert_eq!(paid.status, 200, "{:?}", paid.json);
        kassa.step().await;
        let got = kassa.get(&key, &format!("/subscriptions/{id}")).await.json;
        assert_eq!(got["status"], "active");
        assert_eq!(got["in_grace_period"], false);
        assert_eq!(got["failed_attempts"], 0);
        assert_eq!(
            got["next_billing_date"], next,
            "a late payment does not move the schedule"
        );
        assert_eq!(got["last_payment"]["id"], open_id);
        assert_eq!(got["stats"]["successful_payments"], 1);
        assert_eq!(got["stats"]["failed_payments"], 2);
        let events = kassa.store().db().clone();
        assert_eq!(
            rows_of(
                &events,
                "invoice_events",
                id,
                "AND kind = 'subscription.payment_succeeded'"
            )
            .await,
            1
        );
        // Past the end of the grace period it stays active.
        advance(&kassa, &key, json!({"days": 6})).await;
        let got = kassa.get(&key, &format!("/subscriptions/{id}")).await.json;
        assert_eq!(got["status"], "active");
        let _ = org;
    }
);

on_both_databases!(
    pause_resume_and_put_change_only_what_comes_next,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = start(&test, dir.path()).await;
        let sub = create(
            &kassa,
            &key,
            json!({"amount": 5000, "phone_number": PAYS, "billing_period": "weekly", "bill_immediately": true, "metadata": {"plan": "gold"}}),
        )
        .await;
        let id = sub["id"].as_i64().expect("id");
        assert_eq!(sub["metadata"]["plan"], "gold");
        advance(&kassa, &key, json!({"days": 1})).await;
        assert_eq!(invoices_of(&kassa, &key, id).await.len(), 1);

        // PUT: from the next period on.
        let put = kassa
            .http
            .put(kassa.url(&format!("/subscriptions/{id}")))
            .header("X-API-Key", &key)
            .json(&json!({"amount": 7500, "description": "Premium"}))
            .send()
            .await
            .expect("sent");
        let put = Answer::read(put).await;
        assert_eq!(put.status, 200, "{:?}", put.json);
        assert_eq!(put.json["amount"], "7500.00");
        assert_eq!(put.json["subscription"]["amount"], "7500.00");
        assert_eq!(put.json["message"], "Subscription updated");
        let items = invoices_of(&kassa, &key, id).await;
        assert_eq!(
            items[0]["amount"], "5000.00",
            "an invoice made keeps its amount"
        );

        let paused = kassa
            .post(&key, &format!("/subscriptions/{id}/pause"), json!({}))
            .await;
        assert_eq!(paused.status, 200, "{:?}", paused.json);
        assert_eq!(paused.json["status"], "paused");
        let twice = kassa
            .post(&key, &format!("/subscriptions/{id}/pause"), json!({}))
            .await;
        assert_eq!(twice.status, 400);
        advance(&kassa, &key, json!({"days": 20})).await;
        assert_eq!(
            invoices_of(&kassa, &key, id).await.len(),
            1,
            "nothing billed while paused"
        );

        let resumed = kassa
            .post(&key, &format!("/subscriptions/{id}/resume"), json!({}))
            .await;
        assert_eq!(resumed.status, 200, "{:?}", resumed.json);
        assert_eq!(resumed.json["status"], "active");
        let next = resumed.json["next_billing_date"]
            .as_str()
            .expect("date")
            .to_owned();
        let today = kassa.get(&key, "/sandbox/clock").await.json["today"]
            .as_str()
            .expect("today")
            .to_owned();
        assert!(next >= today, "no back-billing: {next} from {today}");
        let next_day = kassa::domain::parse_date(&next)
            .expect("date")
            .next_day()
            .expect("day");
        advance_to(&kassa, &key, next_day).await;
        let items = invoices_of(&kassa, &key, id).await;
        assert_eq!(
            items.len(),
            2,
            "one more period after resuming, none for the paused weeks"
        );
        assert_eq!(items[1]["billing_period_start"], next.as_str());
        assert_eq!(items[1]["amount"], "7500.00");
        assert_eq!(items[1]["description"], "Premium");

        let cancelled = kassa
            .post(&key, &format!("/subscriptions/{id}/cancel"), json!({}))
            .await;
        assert_eq!(cancelled.status, 200);
        assert_eq!(cancelled.json["status"], "cancelled");
        for action in ["resume", "pause", "cancel"] {
            let refused = kassa
                .post(&key, &format!("/subscriptions/{id}/{action}"), json!({}))
                .await;
            assert_eq!(refused.status, 400, "{action}: {:?}", refused.json);
            assert!(refused.json["message"]
                .as_str()
                .is_some_and(|m| m.contains("cancelled")));
        }
        let list = kassa.get(&key, "/subscriptions?status=cancelled").await;
        assert_eq!(list.json["meta"]["total"], 1);
        assert_eq!(list.json["data"][0]["id"], id);
        let list = kassa.get(&key, "/subscriptions?status=active").await;
        assert_eq!(list.json["meta"]["total"], 0);
    }
);

on_both_databases!(
    cancel_cancels_the_open_invoice_at_kaspi,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = start(&test, dir.path()).await;
        let sub = create(
            &kassa,
            &key,
            json!({"amount": 2500, "phone_number": WAITS, "billing_period": "daily", "bill_immediately": true}),
        )
        .await;
        let id = sub["id"].as_i64().expect("id");
        kassa.step().await;
        let items = invoices_of(&kassa, &key, id).await;
        assert_eq!(items.len(), 1);
        let invoice_id = items[0]["id"].as_i64().expect("id");
        let op: u64 = items[0]["kaspi_invoice_id"]
            .as_str()
            .expect("sent")
            .parse()
            .expect("numeric");
        let open_at_kaspi = kassa.sim().operation(op).expect("at Kaspi").status;
        // An ordinary invoice on both surfaces, marked recurring.
        let listed = kassa.get(&key, "/invoices").await.json;
        assert_eq!(listed["data"][0]["id"], invoice_id);
        assert_eq!(listed["data"][0]["is_recurring"], true);
        let x = kassa.x(reqwest::Method::GET, &key, "/payments", None).await;
        assert_eq!(x.status, 200, "{:?}", x.json);
        assert_eq!(x.json["data"][0]["is_recurring"], true, "{:?}", x.json);
        assert_eq!(x.json["data"][0]["subscription_id"], id);
        assert_eq!(x.json["data"][0]["amount"], 2500);

        let cancelled = kassa
            .post(&key, &format!("/subscriptions/{id}/cancel"), json!({}))
            .await;
        assert_eq!(cancelled.status, 200, "{:?}", cancelled.json);
        let invoice = kassa
            .get(&key, &format!("/invoices/{invoice_id}"))
            .await
            .json;
        assert_eq!(invoice["status"], "cancelled");
        assert_ne!(
            kassa.sim().operation(op).expect("at Kaspi").status,
            open_at_kaspi
        );
        advance(&kassa, &key, json!({"days": 3})).await;
        assert_eq!(
            invoices_of(&kassa, &key, id).await.len(),
            1,
            "a cancelled subscription bills no more"
        );
        // A cancel is not a failed payment.
        let db = test.db();
        assert_eq!(rows_of(&db, "invoice_events", id, "").await, 0);
    }
);

on_both_databases!(
    bad_input_is_refused_naming_the_field_and_nothing_is_stored,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = start(&test, dir.path()).await;
        let base = json!({"amount": 5000, "phone_number": PAYS, "billing_period": "monthly"});
        let cases = [
            ("amount", json!(99.99)),
            ("amount", json!(1_000_000.01)),
            ("amount", json!("abc")),
            ("phone_number", json!("7001234567")),
            ("billing_period", json!("hourly")),
            ("billing_day", json!(29)),
            ("billing_day", json!(0)),
            ("started_at", json!("2020-01-01")),
            ("started_at", json!("2030-02-30")),
            ("max_retry_attempts", json!(11)),
            ("retry_interval_hours", json!(169)),
            ("grace_period_days", json!(31)),
            ("metadata", json!("text")),
            ("bill_immediately", json!("maybe")),
            ("description", json!("x".repeat(256))),
            ("cart_items", json!([])),
        ];
        for (field, value) in cases {
            let mut body = base.clone();
            body[field] = value.clone();
            let refused = kassa.post(&key, "/subscriptions", body).await;
            assert_eq!(refused.status, 422, "{field}={value}: {:?}", refused.json);
            assert!(
                refused.json["errors"][field].is_array(),
                "{field}={value}: {:?}",
                refused.json
            );
        }
        for field in ["amount", "phone_number", "billing_period"] {
            let mut body = base.clone();
            body.as_object_mut().expect("object").remove(field);
            let refused = kassa.post(&key, "/subscriptions", body).await;
            assert_eq!(refused.status, 422);
            assert!(
                refused.json["errors"][field].is_array(),
                "{field} is required"
            );
        }
        let list = kassa.get(&key, "/subscriptions").await;
        assert_eq!(list.json["meta"]["total"], 0, "nothing half-stored");
        assert_eq!(list.json["meta"]["per_page"], 20);

        // Another organization's subscription does not exist for this key.
        let sub = create(&kassa, &key, base.clone()).await;
        let id = sub["id"].as_i64().expect("id");
        let other_key = kassa.other_org_key("other").await;
        for path in [
            format!("/subscriptions/{id}"),
            format!("/subscriptions/{id}/invoices"),
        ] {
            let got = kassa.get(&other_key, &path).await;
            assert_eq!(got.status, 404, "{path}");
            assert_eq!(got.json["message"], "Subscription not found.");
        }
        let refused = kassa
            .post(
                &other_key,
                &format!("/subscriptions/{id}/cancel"),
                json!({}),
            )
            .await;
        assert_eq!(refused.status, 404);
        assert_eq!(
            kassa.get(&other_key, "/subscriptions").await.json["meta"]["total"],
            0
        );
        assert_eq!(
            kassa.get(&key, &format!("/subscriptions/{id}")).await.json["status"],
            "active"
        );
        // A subscription keeps its phone, period and start.
        let put = kassa
            .http
            .put(kassa.url(&format!("/subscriptions/{id}")))
            .header("X-API-Key", &key)
            .json(&json!({"billing_period": "daily", "billing_day": 40}))
            .send()
            .await
            .expect("sent");
        let put = Answer::read(put).await;
        assert_eq!(put.status, 422);
        assert!(
            put.json["errors"]["billing_period"].is_array()
                && put.json["errors"]["billing_day"].is_array()
        );
        let clock = kassa
            .post(&key, "/sandbox/clock/advance", json!({"days": 0}))
            .await;
        assert_eq!(clock.status, 422);
        assert!(clock.json["errors"]["days"].is_array());
    }
);

// Two `kassa serve` processes on one PostgreSQL, their own background loops on the real
// clock, both billing the same 1,000 subscriptions that came due at one moment: each bills once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_bill_a_thousand_subscriptions_once_each() {
    let Some(test) = TestDb::postgres().await else {
        return;
    };
    const N: usize = 1_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = kaspi_sim::Simulator::new(kaspi_sim::SimConfig::default());
    let base = kaspi_sim::spawn(sim.clone()).await.expect("simulator");
    let mut options = Options::new(test.url(), dir.path()).stepped();
    options.live_kaspi = Some(base.clone());
    let setup = Kassa::start(options).await;
    let org = common::connect(&setup, &sim, "club", "7000000021").await;
    let key = setup.api_key(org).await;
    for i in 0..N {
        create(
            &setup,
            &key,
            json!({"amount": 100 + i, "phone_number": WAITS, "billing_period": "monthly", "bill_immediately": true}),
        )
        .await;
    }
    setup.stop().await;

    let env = [("KASSA_KASPI_CALLS_PER_SEC", "200")];
    let started = std::time::Instant::now();
    let (a, _) = common::serve_process_with(dir.path(), test.url(), &base, &env).await;
    let dir_b = common::sibling_data_dir(dir.path());
    let (b, _) = common::serve_process_with(dir_b.path(), test.url(), &base, &env).await;
    let db = test.db();
    eventually(Duration::from_secs(120), "every subscription billed and sent", || async {
        common::count(
            &db,
            "SELECT COUNT(*) AS n FROM invoices WHERE subscription_id IS NOT NULL AND create_state = 'sent'",
        )
        .await
            >= i64::try_from(N).expect("small")
    })
    .await;
    eprintln!(
        "two processes billed and sent {N} subscriptions due at one moment in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    common::terminate(a).await;
    common::terminate(b).await;
    let n = i64::try_from(N).expect("small");
    assert_eq!(
        common::count(
            &db,
            "SELECT COUNT(*) AS n FROM invoices WHERE subscription_id IS NOT NULL"
        )
        .await,
        n
    );
    assert_eq!(
        common::count(
            &db,
            "SELECT COUNT(DISTINCT subscription_id) AS n FROM subscription_invoices"
        )
        .await,
        n
    );
    let ops = sim.operations();
    assert_eq!(ops.len(), N, "one Kaspi invoice per subscription");
    let amounts: HashSet<String> = ops.iter().map(|o| format!("{:?}", o.amount)).collect();
    assert_eq!(amounts.len(), N, "each subscription's own amount");
}

on_both_databases!(
    a_gateway_dying_between_storing_and_sending_still_bills_once,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = kaspi_sim::Simulator::new(kaspi_sim::SimConfig::default());
        let base = kaspi_sim::spawn(sim.clone()).await.expect("simulator");
        let clock = kassa::clock::Clock::manual_from_now();
        let options = || {
            let mut options = Options::new(test.url(), dir.path());
            options.clock = Some(clock.clone());
            options.live_kaspi = Some(base.clone());
            options
        };
        let first = Kassa::start(options()).await;
        let org = common::connect(&first, &sim, "gym", "7000000022").await;
        let key = first.api_key(org).await;
        // Live mode has no sandbox clock (Kassa's clock is every organization's): refused,
        // saying so.
        for (path, answer) in [
            ("/sandbox/clock", first.get(&key, "/sandbox/clock").await),
            (
                "/sandbox/clock/advance",
                first
                    .post(&key, "/sandbox/clock/advance", json!({"days": 1}))
                    .await,
            ),
        ] {
            assert_eq!(answer.status, 400, "{path}: {:?}", answer.json);
            assert_eq!(answer.json["error"], "sandbox_action_refused", "{path}");
        }
        // (a) the create never reaches Kaspi; (b) Kaspi makes it and the answer is lost.
        let cases = [
            (
                "never sent",
                kaspi_sim::Faults {
                    latency_ms: 60_000,
                    path_contains: Some("/remote/create".into()),
                    count: Some(1),
                    ..kaspi_sim::Faults::default()
                },
            ),
            (
                "answer lost",
                kaspi_sim::Faults {
                    lost: 1.0,
                    hang_ms: 60_000,
                    path_contains: Some("/remote/create".into()),
                    count: Some(1),
                    ..kaspi_sim::Faults::default()
                },
            ),
        ];
        let mut kassa = first;
        for (i, (case, faults)) in cases.into_iter().enumerate() {
            let sub = create(
                &kassa,
                &key,
                json!({"amount": 1000 + i, "phone_number": WAITS, "billing_period": "monthly", "bill_immediately": true}),
            )
            .await;
            let id = sub["id"].as_i64().expect("id");
            let ops_before = sim.operations().len();
            sim.set_faults(faults).expect("faults");
            let jobs = kassa.jobs.clone();
            let stepping = tokio::spawn(async move { jobs.run_until_idle().await });
            wait_for_invoice(&test.db(), id, "", Duration::from_secs(20)).await;
            // The create has reached Kaspi, which holds it (never made) or made it and holds
            // the answer.
            eventually(
                Duration::from_secs(20),
                "the create reaches Kaspi",
                || async { fault_spent(&sim) },
            )
            .await;
            if case == "answer lost" {
                eventually(Duration::from_secs(20), "Kaspi makes it", || async {
                    sim.operations().len() > ops_before
                })
                .await;
            } else {
                assert_eq!(
                    sim.operations().len(),
                    ops_before,
                    "{case}: Kaspi has not made it"
                );
            }
            // The process dies: its work stops mid-request and its connection to Kaspi closes.
            stepping.abort();
            let _ = stepping.await;
            kassa.stop().await;
            sim.clear_faults();

            kassa = Kassa::start(options()).await;
            // Past the lease of the dead process and the create's grace; then the reconciliation.
            clock.advance(Duration::from_secs(60));
            for _ in 0..10 {
                clock.advance(Duration::from_secs(1));
                kassa.step().await;
            }
            let items = invoices_of(&kassa, &key, id).await;
            assert_eq!(items.len(), 1, "{case}: one invoice");
            assert!(
                items[0]["kaspi_invoice_id"].is_string(),
                "{case}: sent: {}",
                items[0]
            );
            assert_eq!(
                sim.operations().len(),
                ops_before + 1,
                "{case}: one Kaspi invoice"
            );
        }
        kassa.stop().await;
    }
);

// The same, with a real `kassa serve` killed (SIGKILL) while its create waits at Kaspi, and a
// new process started on the same data: its own background loops on the real clock find the
// stored invoice, see in Kaspi's history that Kaspi never got it (after the whole
// reconciliation schedule, about two and a half minutes), and send it, once.
on_both_databases!(
    a_killed_kassa_serve_still_bills_once_after_restart,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = kaspi_sim::Simulator::new(kaspi_sim::SimConfig::default());
        let base = kaspi_sim::spawn(sim.clone()).await.expect("simulator");
        let mut options = Options::new(test.url(), dir.path()).stepped();
        options.live_kaspi = Some(base.clone());
        let setup = Kassa::start(options).await;
        let org = common::connect(&setup, &sim, "school", "7000000023").await;
        let key = setup.api_key(org).await;
        let sub = create(
            &setup,
            &key,
            json!({"amount": 4200, "phone_number": WAITS, "billing_period": "monthly", "bill_immediately": true}),
        )
        .await;
        let id = sub["id"].as_i64().expect("id");
        setup.stop().await;

        sim.set_faults(kaspi_sim::Faults {
            latency_ms: 600_000,
            path_contains: Some("/remote/create".into()),
            count: Some(1),
            ..kaspi_sim::Faults::default()
        })
        .expect("faults");
        let (mut first, _) = common::serve_process(dir.path(), test.url(), &base).await;
        let db = test.db();
        wait_for_invoice(&db, id, "", Duration::from_secs(30)).await;
        eventually(
            Duration::from_secs(30),
            "the create reaches Kaspi",
            || async { fault_spent(&sim) },
        )
        .await;
        assert!(sim.operations().is_empty(), "the create waits at Kaspi");
        first.kill().await.expect("SIGKILL");
        sim.clear_faults();

        let (second, _) = common::serve_process(dir.path(), test.url(), &base).await;
        wait_for_invoice(
            &db,
            id,
            "AND create_state = 'sent'",
            Duration::from_secs(240),
        )
        .await;
        common::terminate(second).await;
        assert_eq!(rows_of(&db, "invoices", id, "").await, 1, "one invoice");
        let ops = sim.operations();
        assert_eq!(ops.len(), 1, "one Kaspi invoice: {ops:?}");
        assert_eq!(rows_of(&db, "subscription_invoices", id, "").await, 1);
    }
);

on_both_databases!(
    a_create_repeated_with_its_idempotency_key_makes_one_subscription,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, org, key) = start(&test, dir.path()).await;
        let post = |idem: &'static str, body: &'static str| {
            let request = kassa
                .http
                .post(kassa.url("/subscriptions"))
                .header("X-API-Key", &key)
                .header("Idempotency-Key", idem)
                .header("Content-Type", "application/json")
                .body(body);
            async move { Answer::read(request.send().await.expect("sent")).await }
        };
        let body = r#"{"amount":5000,"phone_number":"87001234567","billing_period":"monthly"}"#;
        let first = post("sub-1", body).await;
        assert_eq!(first.status, 201, "{:?}", first.json);
        let again = post("sub-1", body).await;
        assert_eq!(again.status, 201);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.json["id"], first.json["id"]);

        // A run that made its subscription and died before answering: the retry, once the
        // run's lease is over, answers with that subscription.
        let key_id = kassa.key_id(&key).await;
        let hash = kassa::api::idempotency::request_hash(
            &axum::http::Method::POST,
            "/api/v1/subscriptions",
            body.as_bytes(),
        );
        let now = kassa.store().now_ms();
        kassa
            .store()
            .orgs()
            .idempotency_begin(key_id, "sub-2", &hash, now, 3_600_000)
            .await
            .expect("begin");
        let made = kassa
            .store()
            .subscriptions()
            .create(kassa::store::NewSubscription {
                org_id: org,
                amount: kassa::domain::Money::from_tiyn(500_000),
                phone: kassa::domain::parse_phone("87001234567").expect("phone"),
                period: kassa::domain::BillingPeriod::Monthly,
                billing_day: None,
                description: None,
                subscriber_name: None,
                external_subscriber_id: None,
                metadata: None,
                started_on: kassa::domain::almaty_date(now),
                max_retry_attempts: 3,
                retry_interval_hours: 24,
                grace_period_days: 3,
                bill_immediately: false,
                is_sandbox: true,
                idempotency: Some(kassa::store::IdemLink {
                    api_key_id: key_id,
                    key: "sub-2".into(),
                    recovered: None,
                }),
                cart: Vec::new(),
            })
            .await
            .expect("made");
        kassa.state.clock.advance(Duration::from_millis(
            u64::try_from(kassa::store::RUNNING_LEASE_MS).expect("positive") + 1,
        ));
        let retried = post("sub-2", body).await;
        assert_eq!(retried.status, 201, "{:?}", retried.json);
        assert_eq!(retried.json["id"], made.id);
        assert_eq!(
            kassa.get(&key, "/subscriptions").await.json["meta"]["total"],
            2,
            "the first request's and the one that died: none more"
        );
    }
);

on_both_databases!(
    an_invoice_kaspi_refuses_is_a_failed_payment_and_retried,
    |test: TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (kassa, _, key) = start(&test, dir.path()).await;
        // 700555…: not a Kaspi client, so Kaspi refuses every invoice to it.
        let sub = create(
            &kassa,
            &key,
            json!({"amount": 700, "phone_number": "87005550000", "billing_period": "monthly",
                   "bill_immediately": true, "max_retry_attempts": 1, "retry_interval_hours": 2}),
        )
        .await;
        let id = sub["id"].as_i64().expect("id");
        kassa.step().await;
        let items = invoices_of(&kassa, &key, id).await;
        assert_eq!(items.len(), 1);
        // ApiPay's current `error`, with Kaspi's reason.
        assert_eq!(items[0]["status"], "error", "{}", items[0]);
        assert!(items[0]["error_message"].is_string(), "{}", items[0]);
        let reason = items[0]["failure_reason"].as_str().expect("a reason");
        assert!(reason.starts_with("Kaspi refused the invoice"), "{reason}");
        let got = kassa.get(&key, &format!("/subscriptions/{id}")).await.json;
        assert_eq!(got["failed_attempts"], 1);
        assert_eq!(
            outbox_events(&test.db(), id).await,
            [("subscription.payment_failed".to_owned(), Some(1))]
        );
        // Two hours later the retry, refused too: the retries are spent, grace begins.
        advance(&kassa, &key, json!({"seconds": 2 * 3600 + 1})).await;
        let got = kassa.get(&key, &format!("/subscriptions/{id}")).await.json;
        assert_eq!(got["in_grace_period"], true, "{got}");
        assert_eq!(
            invoices_of(&kassa, &key, id).await.len(),
            3,
            "the first, one retry, grace's"
        );
    }
);
