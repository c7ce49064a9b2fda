//! The store against real databases: every test runs on a fresh SQLite file and on a fresh
//! PostgreSQL database (skipped outside CI when no server is reachable).

// A failed unwrap here is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use kassa::both_databases;
use kassa::db::Db;
use kassa::domain::{parse_phone, KaspiOperationId, Money};
use kassa::store::{
    Begin, BulkInvoice, CreateState, IdemLink, Invoice, InvoiceFilter, InvoiceKind, InvoiceSent,
    InvoiceSort, InvoiceStatus, JobKind, KaspiOperation, NewInvoice, OperationEnd, Resource,
    SortOrder, Store, StoreError, TerminalState,
};

const T0: i64 = 1_750_000_000_000;

fn new_invoice(org_id: i64, amount: i64, created_at: i64) -> NewInvoice {
    NewInvoice {
        payment_id: uuid::Uuid::new_v4().to_string(),
        org_id,
        kind: InvoiceKind::Remote,
        amount: Money::from_tiyn(amount),
        phone: parse_phone("7001234567").ok(),
        description: None,
        external_order_id: None,
        is_sandbox: false,
        created_at,
        expires_at: Some(created_at + 300_000),
        metadata: None,
        kaspi_ref: None,
        reconcile_at: None,
        idempotency: None,
    }
}

/// A store with one organization; returns its id.
async fn store_with_org(db: Db, slug: &str) -> (Store, i64) {
    let store = Store::new(db);
    let org = store.orgs().create_org(slug, "Shop").await.unwrap();
    (store, org.id)
}

/// How many outbox events invoice `id` of `org` has.
async fn events(store: &Store, org: i64, id: i64) -> usize {
    store
        .invoices()
        .invoice_events(org, id)
        .await
        .unwrap()
        .len()
}

/// Inserts `new`.
async fn insert(store: &Store, new: NewInvoice) -> Invoice {
    store.invoices().insert_invoice(new).await.unwrap()
}

/// Inserts an invoice and marks it sent with operation `op`.
async fn sent_invoice(store: &Store, org_id: i64, amount: i64, op: i64) -> Invoice {
    let invoice = insert(store, new_invoice(org_id, amount, T0)).await;
    store
        .invoices()
        .mark_invoice_sent(
            invoice.id,
            InvoiceSent {
                kaspi_operation_id: KaspiOperationId::new(op),
                kaspi_status: Some("RemotePaymentCreated".into()),
                client_name: None,
                at_ms: T0 + 1,
                poll_at_ms: T0 + 5_000,
                qr_token: None,
                ext_tran_id: None,
                expires_at: None,
            },
        )
        .await
        .unwrap()
}

both_databases!(orgs_and_keys, |db: Db| async move {
    let store = Store::new(db);
    let a = store.orgs().create_org("acme", "Acme").await.unwrap();
    let b = store.orgs().create_org("beta", "Beta").await.unwrap();
    assert!(matches!(
        store.orgs().create_org("acme", "Again").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.orgs().org_by_slug("acme").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.orgs().org_by_id(b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(store.orgs().org_by_slug("nope").await.unwrap(), None);
    assert_eq!(
        store.orgs().list_orgs().await.unwrap(),
        vec![a.clone(), b.clone()]
    );

    let k1 = store
        .orgs()
        .create_api_key(a.id, "main", "kk_abc", "hash1")
        .await
        .unwrap();
    let k2 = store
        .orgs()
        .create_api_key(a.id, "spare", "kk_def", "hash2")
        .await
        .unwrap();
    assert!(matches!(
        store
            .orgs()
            .create_api_key(b.id, "dup", "kk_x", "hash1")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .orgs()
            .create_api_key(9_999, "x", "kk_y", "hash9")
            .await,
        Err(StoreError::NotFound)
    ));
    let owner = store
        .orgs()
        .api_key_by_hash("hash1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((owner.key_id, owner.org_id), (k1.id, a.id));
    assert_eq!(store.orgs().api_key_by_hash("nope").await.unwrap(), None);

    // Another organization cannot revoke it; its own can, by prefix or id.
    assert_eq!(
        store.orgs().revoke_api_key(b.id, "kk_abc").await.unwrap(),
        0
    );
    assert_eq!(
        store.orgs().revoke_api_key(a.id, "kk_abc").await.unwrap(),
        1
    );
    assert_eq!(
        store.orgs().revoke_api_key(a.id, "kk_abc").await.unwrap(),
        0
    );
    assert_eq!(store.orgs().api_key_by_hash("hash1").await.unwrap(), None);
    assert_eq!(
        store
            .orgs()
            .revoke_api_key(a.id, &k2.id.to_string())
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.orgs().api_key_by_hash("hash2").await.unwrap(), None);
    let keys = store.orgs().list_api_keys(a.id).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.revoked_at.is_some()));
    store.orgs().touch_api_key(k1.id, T0).await.unwrap();
    assert!(store.orgs().list_api_keys(b.id).await.unwrap().is_empty());
});

both_databases!(terminals, |db: Db| async move {
    let (store, org) = store_with_org(db, "acme").await;
    assert_eq!(store.orgs().terminal_for_org(org).await.unwrap(), None);
    let t = store
        .orgs()
        .upsert_terminal(
            org,
            "7001234567",
            b"device",
            None,
            TerminalState::NeedsLogin,
        )
        .await
        .unwrap();
    assert_eq!(t.version, 1);
    assert_eq!(t.session_sealed, None);
    let t = store
        .orgs()
        .upsert_terminal(
            org,
            "7001234567",
            b"device2",
            Some(b"s1"),
            TerminalState::Active,
        )
        .await
        .unwrap();
    assert_eq!(t.version, 2);
    assert_eq!(t.device_sealed, b"device2");
    assert!(store
        .orgs()
        .update_terminal_session(t.id, 2, Some(b"s2"), TerminalState::Active, None)
        .await
        .unwrap());
    // A second process still holding version 2 loses.
    assert!(!store
        .orgs()
        .update_terminal_session(t.id, 2, None, TerminalState::NeedsLogin, Some("expired"))
        .await
        .unwrap());
    let t = store.orgs().terminal_for_org(org).await.unwrap().unwrap();
    assert_eq!(
        (t.version, t.session_sealed.as_deref()),
        (3, Some(&b"s2"[..]))
    );
    assert!(store
        .orgs()
        .update_terminal_session(t.id, 3, None, TerminalState::NeedsLogin, Some("expired"))
        .await
        .unwrap());
    let all = store.orgs().list_terminals().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, TerminalState::NeedsLogin);
    assert_eq!(all[0].state_reason.as_deref(), Some("expired"));
    assert!(all[0].sealed_per_cashier, "a login seals per cashier");

    // A second and third cashier of the organization: rows of their own, each with its own
    // version; the same phone again is the same cashier.
    let second = store
        .orgs()
        .upsert_terminal(org, "7007654321", b"d2", Some(b"x"), TerminalState::Active)
        .await
        .unwrap();
    let third = store
        .orgs()
        .upsert_terminal(org, "7001112233", b"d3", Some(b"y"), TerminalState::Active)
        .await
        .unwrap();
    assert_eq!((second.version, third.version), (1, 1));
    assert_ne!(second.id, t.id);
    let again = store
        .orgs()
        .upsert_terminal(
            org,
            "7007654321",
            b"d2b",
            Some(b"x2"),
            TerminalState::Active,
        )
        .await
        .unwrap();
    assert_eq!((again.id, again.version), (second.id, 2));
    let phones: Vec<String> = store
        .orgs()
        .terminals_for_org(org)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.phone)
        .collect();
    assert_eq!(phones, ["7001234567", "7007654321", "7001112233"]);
    // The first connected is the organization's first cashier.
    let first = store.orgs().terminal_for_org(org).await.unwrap().unwrap();
    assert_eq!(first.id, t.id);
    // Another organization may have a cashier with the same phone.
    let other = store.orgs().create_org("beta", "Beta").await.unwrap().id;
    store
        .orgs()
        .upsert_terminal(other, "7007654321", b"o", None, TerminalState::NeedsLogin)
        .await
        .unwrap();
    assert!(store
        .orgs()
        .delete_terminal(org, "7007654321")
        .await
        .unwrap());
    assert!(!store
        .orgs()
        .delete_terminal(org, "7007654321")
        .await
        .unwrap());
    assert_eq!(store.orgs().terminals_for_org(org).await.unwrap().len(), 2);
    assert_eq!(
        store.orgs().terminals_for_org(other).await.unwrap().len(),
        1
    );
});

both_databases!(isolation, |db: Db| async move {
    let (store, a) = store_with_org(db, "acme").await;
    let b = store.orgs().create_org("beta", "Beta").await.unwrap().id;
    let invoice = insert(&store, new_invoice(a, 100, T0)).await;
    assert_eq!(invoice.status, InvoiceStatus::Pending);
    assert_eq!(invoice.create_state, CreateState::Sending);
    assert_eq!(
        store.invoices().invoice(a, invoice.id).await.unwrap(),
        Some(invoice.clone())
    );
    assert_eq!(
        store
            .invoices()
            .invoice_by_payment_id(a, &invoice.payment_id)
            .await
            .unwrap(),
        Some(invoice.clone())
    );
    assert_eq!(store.invoices().invoice(b, invoice.id).await.unwrap(), None);
    assert_eq!(
        store
            .invoices()
            .invoice_by_payment_id(b, &invoice.payment_id)
            .await
            .unwrap(),
        None
    );
    let (listed, total) = store
        .invoices()
        .list_invoices(b, &InvoiceFilter::default())
        .await
        .unwrap();
    assert!(listed.is_empty());
    assert_eq!(total, 0);
    let mut dup = new_invoice(a, 1, T0);
    dup.payment_id = invoice.payment_id.clone();
    assert!(matches!(
        store.invoices().insert_invoice(dup).await,
        Err(StoreError::Conflict(_))
    ));
});

both_databases!(invoice_lifecycle, |db: Db| async move {
    let (store, org) = store_with_org(db, "acme").await;
    let inserted = insert(&store, new_invoice(org, 250_000, T0)).await;
    // No job before the outcome of the request to Kaspi is known.
    assert_eq!(
        store
            .jobs()
            .job(JobKind::PollInvoice, inserted.id)
            .await
            .unwrap(),
        None
    );
    let sent = sent_invoice_of(&store, inserted.id, 1).await;
    assert_eq!(sent.create_state, CreateState::Sent);
    assert_eq!(sent.kaspi_operation_id, Some(KaspiOperationId::new(1)));
    let job = store
        .jobs()
        .job(JobKind::PollInvoice, sent.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.run_at, T0 + 5_000);

    // The same operation id cannot belong to two invoices of one organization.
    let other = insert(&store, new_invoice(org, 1, T0)).await;
    assert!(matches!(
        store
            .invoices()
            .mark_invoice_sent(
                other.id,
                InvoiceSent {
                    kaspi_operation_id: KaspiOperationId::new(1),
                    kaspi_status: None,
                    client_name: None,
                    at_ms: T0,
                    poll_at_ms: T0,
                    qr_token: None,
                    ext_tran_id: None,
                    expires_at: None,
                },
            )
            .await,
        Err(StoreError::Conflict(_))
    ));

    let paid = store
        .invoices()
        .apply_status(
            sent.id,
            InvoiceStatus::Paid,
            Some("Processed"),
            T0 + 9,
            Some("Aigerim A."),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert_eq!(paid.paid_at, Some(T0 + 9));
    assert_eq!(paid.client_name.as_deref(), Some("Aigerim A."));
    assert_eq!(paid.kaspi_status.as_deref(), Some("Processed"));
    // Applied twice: one event.
    let again = store
        .invoices()
        .apply_status(
            sent.id,
            InvoiceStatus::Paid,
            Some("Processed"),
            T0 + 10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(again, None);
    let events = store.invoices().invoice_events(org, sent.id).await.unwrap();
    assert_eq!(
        events,
        vec![(Some(InvoiceStatus::Pending), InvoiceStatus::Paid, T0 + 9)]
    );
    // The final status ended the poll job.
    assert_eq!(
        store
            .jobs()
            .job(JobKind::PollInvoice, sent.id)
            .await
            .unwrap(),
        None
    );
    // Paid is final.
    for status in [
        InvoiceStatus::Cancelled,
        InvoiceStatus::Pending,
        InvoiceStatus::Expired,
    ] {
        assert_eq!(
            store
                .invoices()
                .apply_status(sent.id, status, None, T0 + 11, None)
                .await
                .unwrap(),
            None
        );
    }
});

async fn sent_invoice_of(store: &Store, id: i64, op: i64) -> Invoice {
    store
        .invoices()
        .mark_invoice_sent(
            id,
            InvoiceSent {
                kaspi_operation_id: KaspiOperationId::new(op),
                kaspi_status: Some("RemotePaymentCreated".into()),
                client_name: None,
                at_ms: T0 + 1,
                poll_at_ms: T0 + 5_000,
                qr_token: None,
                ext_tran_id: None,
                expires_at: None,
            },
        )
        .await
        .unwrap()
}

both_databases!(concurrent_apply_records_one_event, |db: Db| async move {
    let (store, org) = store_with_org(db, "acme").await;
    for round in 0..3 {
        let invoice = sent_invoice(&store, org, 1_000, 100 + round).await;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .invoices()
                    .apply_status(invoice.id, InvoiceStatus::Paid, None, T0 + i, None)
                    .await
                    .unwrap()
            }));
        }
        let mut changed = 0;
        for task in tasks {
            changed += usize::from(task.await.unwrap().is_some());
        }
        assert_eq!(changed, 1);
        assert_eq!(events(&store, org, invoice.id).await, 1);
    }
});

both_databases!(late_payment_wins_and_expired_stays, |db: Db| async move {
    let (store, org) = store_with_org(db, "acme").await;
    let invoice = sent_invoice(&store, org, 500, 300).await;
    let cancelled = store
        .invoices()
        .apply_status(invoice.id, InvoiceStatus::Cancelled, None, T0 + 2, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.cancelled_at, Some(T0 + 2));
    let paid = store
        .invoices()
        .apply_status(invoice.id, InvoiceStatus::Paid, None, T0 + 3, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert_eq!(
        (paid.cancelled_at, paid.paid_at),
        (Some(T0 + 2), Some(T0 + 3))
    );
    let events = store
        .invoices()
        .invoice_events(org, invoice.id)
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![
            (
                Some(InvoiceStatus::Pending),
                InvoiceStatus::Cancelled,
                T0 + 2
            ),
            (Some(InvoiceStatus::Cancelled), InvoiceStatus::Paid, T0 + 3),
        ]
    );

    let expiring = sent_invoice(&store, org, 500, 400).await;
    store
        .invoices()
        .apply_status(expiring.id, InvoiceStatus::Expired, None, T0 + 4, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .invoices()
            .apply_status(expiring.id, InvoiceStatus::Pending, None, T0 + 5, None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .invoices()
            .apply_status(expiring.id, InvoiceStatus::Cancelled, None, T0 + 5, None)
            .await
            .unwrap(),
        None
    );
    let invoice = store
        .invoices()
        .invoice(org, expiring.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(invoice.status, InvoiceStatus::Expired);
});

both_databases!(create_unknown_and_failed, |db: Db| async move {
    let (store, org) = store_with_org(db, "acme").await;
    let invoice = insert(&store, new_invoice(org, 10, T0)).await;
    let unknown = store
        .invoices()
        .mark_invoice_create_unknown(invoice.id, "timeout", T0 + 1, T0 + 60_000)
        .await
        .unwrap();
    assert_eq!(unknown.create_state, CreateState::Unknown);
    assert_eq!(unknown.last_error.as_deref(), Some("timeout"));
    let job = store
        .jobs()
        .job(JobKind::ReconcileInvoice, invoice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.run_at, T0 + 60_000);
    let failed = store
        .invoices()
        .mark_invoice_create_failed(invoice.id, "refused", T0 + 2)
        .await
        .unwrap();
    assert_eq!(failed.status, InvoiceStatus::Failed);
    assert_eq!(failed.create_state, CreateState::Failed);
    assert_eq!(
        store
            .jobs()
            .job(JobKind::ReconcileInvoice, invoice.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(events(&store, org, invoice.id).await, 1);
    assert!(matches!(
        store
            .invoices()
            .mark_invoice_create_failed(invoice.id, "again", T0 + 3)
            .await,
        Err(StoreError::NotFound)
    ));
});

both_databases!(listing, |db: Db| async move {
    let (store, org) = store_with_org(db, "acme").await;
    let other = store.orgs().create_org("beta", "Beta").await.unwrap().id;
    let foreign = insert(&store, new_invoice(other, 1, T0)).await;
    let mut ids = Vec::new();
    for i in 0..25_i64 {
        let mut new = new_invoice(org, 1_000 * (i % 5 + 1), T0 + i / 2 * 1_000);
        new.description = Some(format!("order {i} 50%_off"));
        new.external_order_id = Some(format!("ext-{i}"));
        let invoice = insert(&store, new).await;
        if i % 3 == 0 {
            store
                .invoices()
                .apply_status(invoice.id, InvoiceStatus::Cancelled, None, T0, None)
                .await
                .unwrap()
                .unwrap();
        }
        ids.push(invoice.id);
    }

    // Newest first by default, ties broken by id; pages do not overlap.
    let mut seen = Vec::new();
    for page in 1..=3 {
        let filter = InvoiceFilter {
            page,
            per_page: 10,
            ..InvoiceFilter::default()
        };
        let (invoices, total) = store.invoices().list_invoices(org, &filter).await.unwrap();
        assert_eq!(total, 25);
        assert_eq!(invoices.len(), if page == 3 { 5 } else { 10 });
        seen.extend(invoices.iter().map(|i| i.id));
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let filter = InvoiceFilter {
        statuses: vec![InvoiceStatus::Cancelled],
        per_page: 100,
        ..InvoiceFilter::default()
    };
    let (invoices, total) = store.invoices().list_invoices(org, &filter).await.unwrap();
    assert_eq!(total, 9);
    assert!(invoices
        .iter()
        .all(|i| i.status == InvoiceStatus::Cancelled));

    let filter = InvoiceFilter {
        created_from: Some(T0 + 2_000),
        created_to: Some(T0 + 4_000),
        ..InvoiceFilter::default()
    };
    assert_eq!(
        store
            .invoices()
            .list_invoices(org, &filter)
            .await
            .unwrap()
            .1,
        4
    );

    let search = |text: &str| InvoiceFilter {
        search: Some(text.into()),
        per_page: 100,
        ..InvoiceFilter::default()
    };
    let (found, total) = store
        .invoices()
        .list_invoices(org, &search("ext-17"))
        .await
        .unwrap();
    assert_eq!((total, found[0].id), (1, ids[17]));
    assert_eq!(
        store
            .invoices()
            .list_invoices(org, &search("order 1"))
            .await
            .unwrap()
            .1,
        11
    );
    // LIKE wildcards in the search are literal.
    assert_eq!(
        store
            .invoices()
            .list_invoices(org, &search("50%_off"))
            .await
            .unwrap()
            .1,
        25
    );
    assert_eq!(
        store
            .invoices()
            .list_invoices(org, &search("50%%"))
            .await
            .unwrap()
            .1,
        0
    );
    assert_eq!(
        store
            .invoices()
            .list_invoices(org, &search("7001234"))
            .await
            .unwrap()
            .1,
        25
    );
    let by_id = store
        .invoices()
        .list_invoices(org, &search(&ids[3].to_string()))
        .await
        .unwrap()
        .0;
    assert!(by_id.iter().any(|i| i.id == ids[3]));
    // Another organization's invoice id is not found by search.
    let found = store
        .invoices()
        .list_invoices(org, &search(&foreign.id.to_string()))
        .await
        .unwrap()
        .0;
    assert!(found.iter().all(|i| i.org_id == org));

    let filter = InvoiceFilter {
        sort_by: InvoiceSort::Amount,
        sort_order: SortOrder::Asc,
        per_page: 100,
        ..InvoiceFilter::default()
    };
    let (invoices, _) = store.invoices().list_invoices(org, &filter).await.unwrap();
    let keys: Vec<(i64, i64)> = invoices.iter().map(|i| (i.amount.tiyn(), i.id)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    for sort_by in [
        InvoiceSort::Id,
        InvoiceSort::ClientName,
        InvoiceSort::Status,
    ] {
        let filter = InvoiceFilter {
            sort_by,
            per_page: 100,
            ..InvoiceFilter::default()
        };
        let (invoices, total) = store.invoices().list_invoices(org, &filter).await.unwrap();
        assert_eq!(invoices.len() as i64, total);
        let unique: HashSet<i64> = invoices.iter().map(|i| i.id).collect();
        assert_eq!(unique.len(), 25);
    }
    let filter = InvoiceFilter {
        sort_by: InvoiceSort::Status,
        sort_order: SortOrder::Asc,
        per_page: 100,
        ..InvoiceFilter::default()
    };
    let (invoices, _) = store.invoices().list_invoices(org, &filter).await.unwrap();
    assert_eq!(invoices[0].status, InvoiceStatus::Cancelled);
    assert_eq!(invoices[24].status, InvoiceStatus::Pending);
});

both_databases!(stats_are_exact, |db: Db| async move {
    let (store, org) = store_with_org(db, "acme").await;
    // Amounts in tiyn that would not survive a trip through f32, and one outside the period.
    let amounts = [1_i64, 9_999_999_999, 12_345_678_901, 7];
    for (i, amount) in amounts.iter().enumerate() {
        let invoice = sent_invoice(&store, org, *amount, 500 + i64::try_from(i).unwrap()).await;
        if i % 2 == 0 {
            store
                .invoices()
                .apply_status(invoice.id, InvoiceStatus::Paid, None, T0, None)
                .await
                .unwrap()
                .unwrap();
        }
    }
    insert(&store, new_invoice(org, 5, T0 + 10_000)).await;
    let stats = store
        .invoices()
        .invoice_stats(org, T0, T0 + 1)
        .await
        .unwrap();
    let paid = stats.of(InvoiceStatus::Paid);
    assert_eq!((paid.count, paid.amount), (2, 1 + 12_345_678_901));
    let pending = stats.of(InvoiceStatus::Pending);
    assert_eq!((pending.count, pending.amount), (2, 9_999_999_999 + 7));
    assert_eq!(stats.of(InvoiceStatus::Expired).count, 0);
    assert_eq!(stats.by_status.len(), InvoiceStatus::ALL.len());
    let all = store
        .invoices()
        .invoice_stats(org, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(all.of(InvoiceStatus::Pending).count, 3);
});

both_databases!(jobs_are_claimed_once, |db: Db| async move {
    let store = Store::new(db);
    for ref_id in 0..60 {
        assert!(store
            .jobs()
            .schedule_job(JobKind::Refund, ref_id, T0 + ref_id, T0)
            .await
            .unwrap());
    }
    assert!(!store
        .jobs()
        .schedule_job(JobKind::Refund, 0, T0, T0)
        .await
        .unwrap());
    // Not due yet.
    assert!(store
        .jobs()
        .claim_jobs(JobKind::Refund, "w", T0 - 1, 1_000, 10)
        .await
        .unwrap()
        .is_empty());

    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let jobs = store
                    .jobs()
                    .claim_jobs(JobKind::Refund, &format!("w{worker}"), T0 + 100, 60_000, 3)
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    return claimed;
                }
                claimed.extend(jobs.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 60, "every job claimed");
    assert_eq!(unique.len(), 60, "no job claimed twice");

    // A lease that runs out makes the job claimable again; reschedule needs the lease.
    let job = store.jobs().job(JobKind::Refund, 5).await.unwrap().unwrap();
    let holder = job.locked_by.clone().unwrap();
    assert!(!store
        .jobs()
        .reschedule_job(job.id, "someone-else", T0, 1, None)
        .await
        .unwrap());
    let later = T0 + 100 + 60_001;
    let reclaimed = store
        .jobs()
        .claim_jobs(JobKind::Refund, "late", later, 1_000, 100)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 60);
    assert!(!store
        .jobs()
        .reschedule_job(job.id, &holder, T0, 1, None)
        .await
        .unwrap());
    assert!(store
        .jobs()
        .reschedule_job(job.id, "late", later + 5_000, 1, Some("boom"))
        .await
        .unwrap());
    let job = store.jobs().job(JobKind::Refund, 5).await.unwrap().unwrap();
    assert_eq!((job.attempt, job.run_at), (1, later + 5_000));
    assert_eq!(job.last_error.as_deref(), Some("boom"));
    assert_eq!(job.locked_by, None);
    assert!(store.jobs().finish_job(job.id).await.unwrap());
    assert!(!store.jobs().finish_job(job.id).await.unwrap());
    assert_eq!(store.jobs().job(JobKind::Refund, 5).await.unwrap(), None);
});

both_databases!(idempotency, |db: Db| async move {
    let store = Store::new(db);
    let begin = |key: &'static str, hash: &'static str, now: i64| {
        let store = store.clone();
        async move {
            store
                .orgs()
                .idempotency_begin(1, key, hash, now, 1_000)
                .await
                .unwrap()
        }
    };
    assert_eq!(begin("k", "h", T0).await, Begin::New);
    assert_eq!(begin("k", "h", T0 + 1).await, Begin::InFlight);
    assert_eq!(begin("k", "other", T0 + 1).await, Begin::Mismatch);
    // Keys are per API key.
    assert_eq!(
        store
            .orgs()
            .idempotency_begin(2, "k", "other", T0, 1_000)
            .await
            .unwrap(),
        Begin::New
    );
    store
        .orgs()
        .idempotency_finish(1, "k", 201, b"{\"id\":1}")
        .await
        .unwrap();
    assert_eq!(
        begin("k", "h", T0 + 2).await,
        Begin::Replay {
            status: 201,
            body: b"{\"id\":1}".to_vec()
        }
    );
    assert_eq!(begin("k", "other", T0 + 2).await, Begin::Mismatch);
    // Expired records are replaced.
    assert_eq!(begin("k", "other", T0 + 1_000).await, Begin::New);
    // Abandoning a running record lets the retry run.
    store.orgs().idempotency_abandon(1, "k").await.unwrap();
    assert_eq!(begin("k", "h", T0 + 1_001).await, Begin::New);
    // A record left running by a process that died is taken as abandoned after the lease.
    let lease = kassa::store::RUNNING_LEASE_MS;
    let long = |key: &'static str, now: i64| {
        let store = store.clone();
        async move {
            store
                .orgs()
                .idempotency_begin(4, key, "h", now, 24 * 3600 * 1000)
                .await
                .unwrap()
        }
    };
    assert_eq!(long("orphan", T0).await, Begin::New);
    assert_eq!(long("orphan", T0 + lease - 1).await, Begin::InFlight);
    assert_eq!(long("orphan", T0 + lease).await, Begin::New);

    // Concurrent first requests: exactly one runs.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .orgs()
                .idempotency_begin(3, "race", "h", T0, 1_000)
                .await
                .unwrap()
        }));
    }
    let mut new = 0;
    for task in tasks {
        match task.await.unwrap() {
            Begin::New => new += 1,
            Begin::InFlight => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(new, 1);
});

both_databases!(unfiltered_total_is_the_kept_count, |db: Db| async move {
    let (store, a) = store_with_org(db.clone(), "acme").await;
    let b = store.orgs().create_org("beta", "Beta").await.unwrap().id;
    // The count an unfiltered list answers, and the count of every row: always the same.
    let totals = |org: i64| {
        let store = store.clone();
        let db = db.clone();
        async move {
            let (_, kept) = store
                .invoices()
                .list_invoices(org, &InvoiceFilter::default())
                .await
                .unwrap();
            let counted = db
                .read(move |tx| {
                    tx.query_one(
                        "SELECT COUNT(*) AS n FROM invoices WHERE org_id = $1",
                        &[org.into()],
                    )?
                    .i64("n")
                })
                .await
                .unwrap();
            (kept, counted)
        }
    };
    assert_eq!(totals(a).await, (0, 0));
    for i in 0..20 {
        sent_invoice(&store, a, 100 + i, 600 + i).await;
    }
    let unsent = insert(&store, new_invoice(a, 500, T0)).await;
    assert_eq!(totals(a).await, (21, 21));
    // A create Kaspi refused is removed, and uncounted.
    assert!(store
        .invoices()
        .delete_unsent_invoice(unsent.id)
        .await
        .unwrap());
    assert!(!store
        .invoices()
        .delete_unsent_invoice(unsent.id)
        .await
        .unwrap());
    assert_eq!(totals(a).await, (20, 20));
    // Bulk seeding counts too, per organization.
    let rows = (0..1_500)
        .map(|i| {
            let org = if i % 3 == 0 { b } else { a };
            BulkInvoice::pending(
                new_invoice(org, 100, T0 + i),
                KaspiOperationId::new(10_000 + i),
            )
        })
        .collect();
    assert_eq!(
        store.invoices().bulk_insert_invoices(rows).await.unwrap(),
        1_500
    );
    assert_eq!(totals(a).await, (1_020, 1_020));
    assert_eq!(totals(b).await, (500, 500));
    // A filtered list still counts its rows.
    let pending_a = InvoiceFilter {
        statuses: vec![InvoiceStatus::Pending],
        ..InvoiceFilter::default()
    };
    assert_eq!(
        store
            .invoices()
            .list_invoices(a, &pending_a)
            .await
            .unwrap()
            .1,
        1_020
    );
});

both_databases!(
    history_page_settles_and_saves_in_one_go,
    |db: Db| async move {
        let (store, org) = store_with_org(db, "acme").await;
        let paid = sent_invoice(&store, org, 100, 7001).await;
        let declined = sent_invoice(&store, org, 200, 7002).await;
        let open = sent_invoice(&store, org, 300, 7003).await;
        let end = |op: i64, to: InvoiceStatus| OperationEnd {
            kaspi_operation_id: KaspiOperationId::new(op),
            to,
            kaspi_status: Some("Processed".into()),
            client_name: Some("Айгерим Б.".into()),
        };
        let operation = |id: i64, status: &str| KaspiOperation {
            org_id: org,
            kaspi_operation_id: KaspiOperationId::new(id),
            status: Some(status.into()),
            amount: Some(Money::from_tiyn(100)),
            transaction_date: Some(format!("2026-11-23T10:00:0{}.000+05:00", id % 10)),
            ..KaspiOperation::default()
        };
        let ends = vec![
            end(7001, InvoiceStatus::Paid),
            end(7002, InvoiceStatus::Failed),
            // An operation of no invoice of Kassa's (a static QR payment) settles nothing.
            end(9999, InvoiceStatus::Paid),
        ];
        let ops = vec![
            operation(7001, "Processed"),
            operation(7002, "Declined"),
            operation(7003, "RemotePaymentCreated"),
            operation(9999, "Processed"),
        ];
        let (settled, new) = store
            .invoices()
            .record_history_page(org, ends.clone(), ops.clone(), T0 + 10)
            .await
            .unwrap();
        assert_eq!((settled, new), (2, 4));
        let status = |id: i64| {
            let store = store.clone();
            async move {
                store
                    .invoices()
                    .invoice(org, id)
                    .await
                    .unwrap()
                    .unwrap()
                    .status
            }
        };
        assert_eq!(status(paid.id).await, InvoiceStatus::Paid);
        assert_eq!(status(declined.id).await, InvoiceStatus::Failed);
        assert_eq!(status(open.id).await, InvoiceStatus::Pending);
        assert_eq!(
            store
                .invoices()
                .invoice(org, paid.id)
                .await
                .unwrap()
                .unwrap()
                .client_name
                .as_deref(),
            Some("Айгерим Б.")
        );
        // One event per change, and the settled invoices are no longer polled.
        let events_of = |id| store.invoices().invoice_events(org, id);
        assert_eq!(events_of(paid.id).await.unwrap().len(), 1);
        assert_eq!(events_of(declined.id).await.unwrap().len(), 1);
        assert_eq!(events_of(open.id).await.unwrap().len(), 0);
        assert!(store
            .jobs()
            .job(JobKind::PollInvoice, paid.id)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .jobs()
            .job(JobKind::PollInvoice, declined.id)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .jobs()
            .job(JobKind::PollInvoice, open.id)
            .await
            .unwrap()
            .is_some());
        // The same page again changes nothing and finds nothing new.
        let again = store
            .invoices()
            .record_history_page(org, ends, ops, T0 + 20)
            .await
            .unwrap();
        assert_eq!(again, (0, 0));
        assert_eq!(events(&store, org, paid.id).await, 1);
    }
);

both_databases!(
    a_stranded_create_is_found_by_its_marker,
    |db: Db| async move {
        let (store, org) = store_with_org(db, "acme").await;
        // A create whose process died while Kaspi was asked: stored with its marker and its
        // reconciliation scheduled in the same transaction, never marked sent.
        let stranded = insert(
            &store,
            NewInvoice {
                kaspi_ref: Some("0123456789ab".into()),
                reconcile_at: Some(T0 + 30_000),
                ..new_invoice(org, 500, T0)
            },
        )
        .await;
        let job = store
            .jobs()
            .job(JobKind::ReconcileInvoice, stranded.id)
            .await
            .unwrap();
        assert_eq!(job.map(|j| j.run_at), Some(T0 + 30_000));
        // Another invoice's operation that quotes a marker of nobody's claims nothing.
        let other = insert(
            &store,
            NewInvoice {
                kaspi_ref: Some("ba9876543210".into()),
                ..new_invoice(org, 700, T0)
            },
        )
        .await;
        let op = |id: i64, comment: &str| KaspiOperation {
            org_id: org,
            kaspi_operation_id: KaspiOperationId::new(id),
            status: Some("Processed".into()),
            amount: Some(Money::from_tiyn(500)),
            comment: Some(comment.into()),
            transaction_date: Some(format!("2026-11-23T10:00:0{}.000+05:00", id % 10)),
            ..KaspiOperation::default()
        };
        let ends = vec![OperationEnd {
            kaspi_operation_id: KaspiOperationId::new(8001),
            to: InvoiceStatus::Paid,
            kaspi_status: Some("Processed".into()),
            client_name: None,
        }];
        let ops = vec![
            op(8001, "Order 5 [kassa:0123456789ab]"),
            op(8002, "[kassa:fffffffffff0]"),
        ];
        let (settled, _) = store
            .invoices()
            .record_history_page(org, ends, ops, T0 + 40_000)
            .await
            .unwrap();
        assert_eq!(settled, 1);
        let found = store
            .invoices()
            .invoice(org, stranded.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.kaspi_operation_id, Some(KaspiOperationId::new(8001)));
        assert_eq!(found.create_state, CreateState::Sent);
        assert_eq!(found.status, InvoiceStatus::Paid);
        // Its reconciliation is over; the other invoice is untouched.
        assert_eq!(
            store
                .jobs()
                .job(JobKind::ReconcileInvoice, stranded.id)
                .await
                .unwrap(),
            None
        );
        let untouched = store
            .invoices()
            .invoice(org, other.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(untouched.kaspi_operation_id, None);
        assert_eq!(untouched.create_state, CreateState::Sending);
        // Deleting an unsent invoice (Kaspi refused it) ends its scheduled reconciliation too.
        let refused = insert(
            &store,
            NewInvoice {
                reconcile_at: Some(T0 + 30_000),
                ..new_invoice(org, 900, T0)
            },
        )
        .await;
        assert!(store
            .invoices()
            .delete_unsent_invoice(refused.id)
            .await
            .unwrap());
        assert_eq!(
            store
                .jobs()
                .job(JobKind::ReconcileInvoice, refused.id)
                .await
                .unwrap(),
            None
        );
    }
);

both_databases!(
    an_idempotent_request_after_a_crash_answers_from_what_it_made,
    |db: Db| async move {
        let (store, org) = store_with_org(db, "acme").await;
        let lease = kassa::store::RUNNING_LEASE_MS;
        let day = 24 * 3600 * 1000;
        let begin = |key: &'static str, now: i64| {
            let store = store.clone();
            async move {
                store
                    .orgs()
                    .idempotency_begin(7, key, "h", now, day)
                    .await
                    .unwrap()
            }
        };
        let link = |key: &str| IdemLink {
            api_key_id: 7,
            key: key.into(),
            recovered: None,
        };
        // The first run makes an invoice (the record names it in the same transaction), then
        // its process dies before answering.
        assert_eq!(begin("create", T0).await, Begin::New);
        let made = insert(
            &store,
            NewInvoice {
                idempotency: Some(link("create")),
                ..new_invoice(org, 500, T0)
            },
        )
        .await;
        // While the lease runs the retry waits; after it, it answers from the invoice.
        assert_eq!(begin("create", T0 + lease - 1).await, Begin::InFlight);
        assert_eq!(
            begin("create", T0 + lease).await,
            Begin::Recover(Resource::Invoice(made.id))
        );
        // The retry holds the record now: a third request waits for it.
        assert_eq!(begin("create", T0 + lease + 1).await, Begin::InFlight);

        // A renewed lease keeps the record with its live request.
        assert_eq!(begin("slow", T0).await, Begin::New);
        store
            .orgs()
            .idempotency_renew(7, "slow", T0 + 3 * lease)
            .await
            .unwrap();
        assert_eq!(begin("slow", T0 + 2 * lease).await, Begin::InFlight);

        // A request that failed after making something is not run again: the next retry
        // answers from what it made; one that made nothing runs afresh.
        assert_eq!(begin("failed", T0).await, Begin::New);
        let made = insert(
            &store,
            NewInvoice {
                idempotency: Some(link("failed")),
                ..new_invoice(org, 600, T0)
            },
        )
        .await;
        store.orgs().idempotency_abandon(7, "failed").await.unwrap();
        assert_eq!(
            begin("failed", T0 + 1).await,
            Begin::Recover(Resource::Invoice(made.id))
        );
        assert_eq!(begin("nothing", T0).await, Begin::New);
        store
            .orgs()
            .idempotency_abandon(7, "nothing")
            .await
            .unwrap();
        assert_eq!(begin("nothing", T0 + 1).await, Begin::New);
    }
);

both_databases!(
    job_leases_are_renewed_by_their_holder,
    |db: Db| async move {
        let store = Store::new(db);
        store
            .jobs()
            .schedule_job(JobKind::PollInvoice, 1, T0, T0)
            .await
            .unwrap();
        store
            .jobs()
            .schedule_job(JobKind::PollInvoice, 2, T0, T0)
            .await
            .unwrap();
        let held = store
            .jobs()
            .claim_jobs(JobKind::PollInvoice, "w1", T0, 1_000, 1)
            .await
            .unwrap();
        assert_eq!(held.len(), 1);
        let ids: Vec<i64> = held.iter().map(|j| j.id).collect();
        // Another worker cannot renew it; its holder can.
        assert_eq!(
            store
                .jobs()
                .renew_job_leases("w2", &ids, T0 + 60_000)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .jobs()
                .renew_job_leases("w1", &ids, T0 + 10_000)
                .await
                .unwrap(),
            1
        );
        // Past the first lease, only the job nobody holds is claimed; past the renewed one, the
        // renewed job is claimable again.
        let later = store
            .jobs()
            .claim_jobs(JobKind::PollInvoice, "w2", T0 + 5_000, 1_000, 10)
            .await
            .unwrap();
        assert_eq!(later.len(), 1);
        assert_ne!(later[0].id, ids[0]);
        let much_later = store
            .jobs()
            .claim_jobs(JobKind::PollInvoice, "w2", T0 + 10_001, 1_000, 10)
            .await
            .unwrap();
        assert!(much_later.iter().any(|j| j.id == ids[0]));
    }
);

both_databases!(
    a_dead_predecessors_leases_are_released,
    |db: Db| async move {
        let store = Store::new(db);
        for id in 1..=3 {
            store
                .jobs()
                .schedule_job(JobKind::PollInvoice, id, T0, T0)
                .await
                .unwrap();
        }
        let lease = 60_000;
        let dead = store
            .jobs()
            .claim_jobs(
                JobKind::PollInvoice,
                "kassa-0a0a0a0a0a0a-41-x",
                T0,
                lease,
                2,
            )
            .await
            .unwrap();
        let other = store
            .jobs()
            .claim_jobs(
                JobKind::PollInvoice,
                "kassa-0b0b0b0b0b0b-42-y",
                T0,
                lease,
                1,
            )
            .await
            .unwrap();
        assert_eq!((dead.len(), other.len()), (2, 1));
        // The server that took over the data dir releases what its dead predecessor held, and
        // nothing of another data dir's server.
        assert_eq!(
            store
                .jobs()
                .release_leases_of("kassa-0a0a0a0a0a0a-")
                .await
                .unwrap(),
            2
        );
        let taken = store
            .jobs()
            .claim_jobs(
                JobKind::PollInvoice,
                "kassa-0a0a0a0a0a0a-43-z",
                T0 + 1,
                lease,
                10,
            )
            .await
            .unwrap();
        let mut ids: Vec<i64> = taken.iter().map(|j| j.id).collect();
        ids.sort_unstable();
        let mut expected: Vec<i64> = dead.iter().map(|j| j.id).collect();
        expected.sort_unstable();
        assert_eq!(ids, expected);
    }
);
