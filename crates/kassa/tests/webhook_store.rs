//! The store's side of the webhook pipeline, without HTTP: batches of events dispatched in one
//! transaction, dispatchers racing over the same events, attempts recorded together under
//! their leases, on SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;

use kassa::db::testing::TestDb;
use kassa::db::{Db, DbOptions};
use kassa::store::{
    AttemptOutcome, AttemptRecord, BulkInvoice, DeliveryStatus, DispatchLease, Dispatched,
    EndpointHealth, EventToDispatch, FormatBody, InvoiceKind, InvoiceStatus, NewInvoice,
    NewWebhookEndpoint, Payload, PendingEvent, Store, WebhookFormat,
};

/// The events not yet dispatched (up to 100).
async fn undispatched(store: &Store) -> Vec<PendingEvent> {
    store
        .webhooks()
        .undispatched_events(100)
        .await
        .expect("events")
}

/// A store on `test` with one organization and `count` paid invoices (one event each); the
/// store, the organization and the invoice ids.
async fn store_with_events(test: &TestDb, count: usize) -> (Store, i64, Vec<i64>) {
    let store = Store::new(test.db());
    let org = store
        .orgs()
        .create_org("shop", "Shop")
        .await
        .expect("org")
        .id;
    let now = kassa_now_ms();
    let rows = (0..count)
        .map(|n| {
            BulkInvoice::pending(
                NewInvoice {
                    payment_id: uuid::Uuid::new_v4().to_string(),
                    org_id: org,
                    kind: InvoiceKind::Remote,
                    amount: kassa::domain::Money::from_tiyn(
                        10_000 + i64::try_from(n).expect("small"),
                    ),
                    phone: kassa::domain::parse_phone("7001234567").ok(),
                    description: None,
                    external_order_id: Some(format!("order-{n}")),
                    is_sandbox: true,
                    created_at: now,
                    expires_at: Some(now + 3_600_000),
                    metadata: None,
                    kaspi_ref: None,
                    reconcile_at: None,
                    idempotency: None,
                },
                kassa::domain::KaspiOperationId::new(
                    900_000_000 + i64::try_from(n).expect("small"),
                ),
            )
        })
        .collect();
    store
        .invoices()
        .bulk_insert_invoices(rows)
        .await
        .expect("seed");
    let ids: Vec<i64> = test
        .db()
        .read(move |tx| {
            tx.query(
                "SELECT id FROM invoices WHERE org_id = $1 ORDER BY id",
                &[org.into()],
            )?
            .iter()
            .map(|r| r.i64("id"))
            .collect::<Result<Vec<_>, _>>()
        })
        .await
        .expect("ids");
    for id in &ids {
        store
            .invoices()
            .apply_status(*id, InvoiceStatus::Paid, Some("Processed"), now, None)
            .await
            .expect("paid")
            .expect("changed");
    }
    (store, org, ids)
}

fn kassa_now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

async fn add_endpoint(
    store: &Store,
    org: i64,
    format: WebhookFormat,
    events: &[&str],
    is_active: bool,
) -> i64 {
    store
        .webhooks()
        .insert_webhook_endpoint(NewWebhookEndpoint {
            endpoint_id: uuid::Uuid::new_v4().to_string(),
            org_id: org,
            url: "https://example.com/hook".into(),
            events: events.iter().map(|&e| e.to_owned()).collect(),
            format,
            description: None,
            secret_sealed: vec![0; 40],
            is_active,
            created_at: kassa_now_ms(),
        })
        .await
        .expect("endpoint")
        .id
}

/// Event `event_id` of `org_id` with a body for every format, unless it is `nothing_for` (as
/// for an event whose invoice is gone): `payment.completed` for xpayment,
/// `invoice.status_changed` for apipay, each holding the delivery's id.
fn test_event(event_id: i64, org_id: i64, nothing_for: Option<i64>) -> EventToDispatch {
    let body = |name: &str| {
        if Some(event_id) == nothing_for {
            return FormatBody::Nothing;
        }
        let bytes = format!("{{\"event\":{event_id},\"delivery\":\"ID\"}}").into_bytes();
        FormatBody::Rendered(Payload::around(name, bytes, "ID"))
    };
    EventToDispatch {
        event_id,
        org_id,
        apipay: body("invoice.status_changed"),
        xpayment: body("payment.completed"),
    }
}

/// The first `max` deliveries made leased to `worker` until `until`.
fn lease(worker: &str, until: i64, max: usize) -> Option<DispatchLease> {
    Some(DispatchLease {
        worker: worker.to_owned(),
        until,
        max,
    })
}

on_both_databases!(
    a_batch_is_dispatched_in_one_transaction_each_event_once,
    |test: TestDb| async move {
        let (store, org, _) = store_with_events(&test, 3).await;
        let all = add_endpoint(&store, org, WebhookFormat::ApiPay, &["*"], true).await;
        let refunds = add_endpoint(
            &store,
            org,
            WebhookFormat::ApiPay,
            &["invoice.refunded"],
            true,
        )
        .await;
        let x = add_endpoint(
            &store,
            org,
            WebhookFormat::XPayment,
            &["payment.completed"],
            true,
        )
        .await;
        let off = add_endpoint(&store, org, WebhookFormat::ApiPay, &["*"], false).await;
        let events = undispatched(&store).await;
        assert_eq!(events.len(), 3);
        let gone = events[1].id;
        // The first event twice: still dispatched once.
        let mut batch: Vec<EventToDispatch> = events
            .iter()
            .map(|e| test_event(e.id, e.org_id, Some(gone)))
            .collect();
        batch.push(test_event(events[0].id, org, Some(gone)));
        let now = kassa_now_ms();
        // Three of the deliveries are leased to the dispatching worker as they are made.
        let Dispatched {
            events: dispatched,
            made,
            leased,
            left,
        } = store
            .webhooks()
            .dispatch_events(batch.clone(), now, lease("w1", now + 60_000, 3))
            .await
            .expect("dispatch");
        assert_eq!(
            dispatched, 3,
            "every event marked, the one with no body too"
        );
        assert_eq!(
            made, 4,
            "two events × (all, x); none for refunds, off, or the gone one"
        );
        assert_eq!(leased.len(), 3);
        assert_eq!(left, 0);
        for (delivery, endpoint) in &leased {
            assert_eq!(delivery.locked_by.as_deref(), Some("w1"));
            assert_eq!(delivery.locked_until, Some(now + 60_000));
            assert_eq!(delivery.endpoint_id, endpoint.id);
        }
        assert!(undispatched(&store).await.is_empty());
        // The one left is there for any worker to lease; the leased ones are not.
        let rest = store
            .webhooks()
            .claim_webhook_deliveries("w2", now, 60_000, 10)
            .await
            .expect("lease");
        assert_eq!(rest.len(), 1);
        assert!(leased.iter().all(|(d, _)| d.id != rest[0].id));
        // Once only: the same batch again makes nothing.
        let again = store
            .webhooks()
            .dispatch_events(batch, kassa_now_ms(), lease("w1", now + 60_000, 3))
            .await
            .expect("dispatch again");
        assert_eq!(again, Dispatched::default());
        for (endpoint, expected) in [(all, 2), (refunds, 0), (x, 2), (off, 0)] {
            let made = store
                .webhooks()
                .list_webhook_deliveries(org, endpoint, 100, 0)
                .await
                .expect("deliveries");
            assert_eq!(made.len(), expected, "endpoint {endpoint}");
            assert!(made.iter().all(|d| d.event_id != Some(gone)));
            assert!(made.iter().all(|d| d.status == DeliveryStatus::Pending));
            for d in &made {
                let body = String::from_utf8(d.payload.clone()).expect("utf-8");
                assert!(
                    body.contains(&d.delivery_id),
                    "the body made for this delivery"
                );
            }
        }
    }
);

on_both_databases!(
    an_event_not_rendered_for_an_endpoints_format_is_left_to_render_again,
    |test: TestDb| async move {
        let (store, org, _) = store_with_events(&test, 3).await;
        let apipay = add_endpoint(&store, org, WebhookFormat::ApiPay, &["*"], true).await;
        let events = undispatched(&store).await;
        let rows = store
            .webhooks()
            .webhook_event_rows(events.iter().map(|e| e.invoice_id).collect(), vec![org])
            .await
            .expect("rows");
        assert_eq!(rows.invoices.len(), 3);
        assert_eq!(
            rows.formats.get(&org),
            Some(&HashSet::from([WebhookFormat::ApiPay]))
        );
        // Rendered for the formats in use: apipay only.
        let apipay_only = |e: &PendingEvent| EventToDispatch {
            xpayment: FormatBody::NotRendered,
            ..test_event(e.id, e.org_id, None)
        };
        let done = store
            .webhooks()
            .dispatch_events(vec![apipay_only(&events[0])], kassa_now_ms(), None)
            .await
            .expect("dispatch");
        assert_eq!((done.events, done.made, done.left), (1, 1, 0));
        // An xpayment endpoint comes before the others are dispatched: they are left.
        let x = add_endpoint(&store, org, WebhookFormat::XPayment, &["*"], true).await;
        let batch = events[1..].iter().map(apipay_only).collect();
        let done = store
            .webhooks()
            .dispatch_events(batch, kassa_now_ms(), None)
            .await
            .expect("dispatch");
        assert_eq!(
            done,
            Dispatched {
                left: 2,
                ..Dispatched::default()
            }
        );
        assert_eq!(
            store
                .webhooks()
                .undispatched_events(100)
                .await
                .expect("left")
                .len(),
            2
        );
        // Rendered again for both formats: each endpoint gets them.
        let batch = events[1..]
            .iter()
            .map(|e| test_event(e.id, e.org_id, None))
            .collect();
        let done = store
            .webhooks()
            .dispatch_events(batch, kassa_now_ms(), None)
            .await
            .expect("dispatch");
        assert_eq!((done.events, done.made, done.left), (2, 4, 0));
        for (endpoint, expected) in [(apipay, 3), (x, 2)] {
            let made = store
                .webhooks()
                .list_webhook_deliveries(org, endpoint, 100, 0)
                .await
                .expect("deliveries");
            assert_eq!(made.len(), expected, "endpoint {endpoint}");
        }
    }
);

on_both_databases!(
    racing_dispatchers_make_each_delivery_once,
    |test: TestDb| async move {
        const EVENTS: usize = 300;
        let (store, org, _) = store_with_events(&test, EVENTS).await;
        add_endpoint(&store, org, WebhookFormat::ApiPay, &["*"], true).await;
        add_endpoint(&store, org, WebhookFormat::XPayment, &["*"], true).await;
        // Two "processes" (two handles on the database), two dispatchers each.
        let other = Store::new(
            Db::open(test.url(), DbOptions::default())
                .await
                .expect("second handle"),
        );
        let mut racers = tokio::task::JoinSet::new();
        for (n, store) in [store.clone(), store.clone(), other.clone(), other]
            .into_iter()
            .enumerate()
        {
            racers.spawn(async move {
                let worker = format!("w{n}");
                let mut done = (0, 0, Vec::new());
                loop {
                    let events = store
                        .webhooks()
                        .undispatched_events(64)
                        .await
                        .expect("events");
                    if events.is_empty() {
                        return done;
                    }
                    let batch = events
                        .iter()
                        .map(|e| test_event(e.id, e.org_id, None))
                        .collect();
                    let now = kassa_now_ms();
                    let Dispatched {
                        events,
                        made,
                        leased,
                        ..
                    } = store
                        .webhooks()
                        .dispatch_events(batch, now, lease(&worker, now + 60_000, 10))
                        .await
                        .expect("dispatch");
                    assert!(leased.len() <= 10);
                    assert!(leased
                        .iter()
                        .all(|(d, _)| d.locked_by.as_deref() == Some(worker.as_str())));
                    done.0 += events;
                    done.1 += made;
                    done.2.extend(leased.into_iter().map(|(d, _)| d.id));
                }
            });
        }
        let mut total = (0, 0);
        let mut leased = HashSet::new();
        while let Some(done) = racers.join_next().await {
            let done = done.expect("racer");
            total.0 += done.0;
            total.1 += done.1;
            for id in done.2 {
                assert!(leased.insert(id), "delivery {id} leased to two dispatchers");
            }
        }
        assert_eq!(
            total,
            (EVENTS, 2 * EVENTS),
            "each event dispatched by one racer"
        );
        let db = test.db();
        assert_eq!(
            common::count(&db, "SELECT COUNT(*) AS n FROM webhook_deliveries").await,
            i64::try_from(2 * EVENTS).expect("small")
        );
        assert_eq!(
            common::count(
                &db,
                "SELECT COUNT(*) AS n FROM invoice_events WHERE dispatched_at IS NULL"
            )
            .await,
            0
        );
    }
);

on_both_databases!(
    attempts_are_recorded_together_each_under_its_lease,
    |test: TestDb| async move {
        let (store, org, _) = store_with_events(&test, 21).await;
        let endpoint = add_endpoint(&store, org, WebhookFormat::ApiPay, &["*"], true).await;
        let events = undispatched(&store).await;
        let batch = events
            .iter()
            .map(|e| test_event(e.id, e.org_id, None))
            .collect();
        store
            .webhooks()
            .dispatch_events(batch, kassa_now_ms(), None)
            .await
            .expect("dispatch");
        let now = kassa_now_ms();
        let mine = store
            .webhooks()
            .claim_webhook_deliveries("w1", now, 60_000, 20)
            .await
            .expect("lease");
        let theirs = store
            .webhooks()
            .claim_webhook_deliveries("w2", now, 60_000, 2)
            .await
            .expect("lease");
        assert_eq!((mine.len(), theirs.len()), (20, 1));
        let record = |delivery: i64, outcome, health| AttemptRecord {
            delivery,
            worker: Some("w1".into()),
            at: now,
            status_code: Some(500),
            latency_ms: 3,
            response_excerpt: Some("no".into()),
            error: Some("answered 500".into()),
            outcome,
            health,
        };
        let failing = EndpointHealth::Failing {
            disable_after_ms: 3_600_000,
            reason: "failing".into(),
        };
        let mut records = vec![
            record(
                mine[0].id,
                AttemptOutcome::RetryAt(now + 1000),
                failing.clone(),
            ),
            // Leased to w2: refused, nothing of it written.
            record(theirs[0].id, AttemptOutcome::GiveUp, failing.clone()),
        ];
        records.extend(
            mine[1..]
                .iter()
                .map(|d| record(d.id, AttemptOutcome::Delivered, EndpointHealth::Healthy)),
        );
        let recorded = store
            .webhooks()
            .record_webhook_attempts(records)
            .await
            .expect("record");
        let mut expected = vec![true, false];
        expected.extend([true; 19]);
        assert_eq!(recorded, expected);
        let mut ids: Vec<i64> = mine.iter().map(|d| d.id).collect();
        ids.push(theirs[0].id);
        let attempts = store
            .webhooks()
            .webhook_attempts(ids)
            .await
            .expect("attempts");
        assert_eq!(attempts.len(), 20, "{attempts:#?}");
        assert!(attempts.iter().all(|a| a.delivery_id != theirs[0].id));
        assert!(attempts
            .iter()
            .all(|a| a.attempt == 1 && a.endpoint_id == endpoint));
        let log = store
            .webhooks()
            .list_webhook_deliveries(org, endpoint, 100, 0)
            .await
            .expect("deliveries");
        let by_id = |id: i64| log.iter().find(|d| d.id == id).expect("delivery");
        let retried = by_id(mine[0].id);
        assert_eq!(
            (
                retried.status,
                retried.attempts,
                retried.schedule_step,
                retried.next_attempt_at
            ),
            (DeliveryStatus::Pending, 1, 1, Some(now + 1000))
        );
        assert_eq!(retried.locked_by, None);
        let delivered = by_id(mine[1].id);
        assert_eq!(
            (delivered.status, delivered.delivered_at),
            (DeliveryStatus::Delivered, Some(now))
        );
        let untouched = by_id(theirs[0].id);
        assert_eq!(
            (
                untouched.status,
                untouched.attempts,
                untouched.locked_by.as_deref()
            ),
            (DeliveryStatus::Pending, 0, Some("w2"))
        );
        // Failing, then healthy, in the order of the records: healthy again.
        let endpoint = store
            .webhooks()
            .webhook_endpoint(org, endpoint)
            .await
            .expect("read")
            .expect("endpoint");
        assert_eq!(endpoint.failing_since, None);
        assert!(endpoint.is_active);
    }
);
