//! The bulk path the depth and webhooks scenarios seed with (`Store::bulk_insert_invoices`):
//! every row lands, across statement and transaction boundaries, as a sent invoice in its
//! status, with no event and no job. On SQLite, and on PostgreSQL when a server is reachable.

// A failed unwrap here is a failed test.
#![allow(clippy::unwrap_used)]

use kassa::both_databases;
use kassa::db::Db;
use kassa::domain::{parse_phone, KaspiOperationId, Money};
use kassa::store::{
    BulkInvoice, CreateState, InvoiceFilter, InvoiceKind, InvoiceStatus, JobKind, NewInvoice,
    Store, StoreError,
};

const T0: i64 = 1_750_000_000_000;
/// Two full transactions (5,000) and a part, the last statement a part (of 1,000).
const ROWS: usize = 12_345;

fn row(org_id: i64, n: usize) -> BulkInvoice {
    let mut row = BulkInvoice::pending(
        NewInvoice {
            payment_id: uuid::Uuid::new_v4().to_string(),
            org_id,
            kind: InvoiceKind::Remote,
            amount: Money::from_tiyn(100 + n as i64),
            phone: parse_phone("7001234567").ok(),
            description: n.is_multiple_of(2).then(|| format!("Order #{n}")),
            external_order_id: None,
            is_sandbox: true,
            created_at: T0 + n as i64,
            expires_at: Some(T0 + 86_400_000),
            metadata: None,
            kaspi_ref: None,
            reconcile_at: None,
            idempotency: None,
        },
        KaspiOperationId::new(1_000 + n as i64),
    );
    if n.is_multiple_of(3) {
        row.status = InvoiceStatus::Paid;
        row.changed_at = Some(T0 + 1_000_000 + n as i64);
        row.client_name = Some("Bench B.".into());
    }
    row
}

both_databases!(bulk_rows_all_land, |db: Db| async move {
    let store = Store::new(db);
    let org = store.orgs().create_org("bulk", "Bulk").await.unwrap();
    let rows: Vec<BulkInvoice> = (0..ROWS).map(|n| row(org.id, n)).collect();
    let first = rows[0].clone();
    let inserted = store.invoices().bulk_insert_invoices(rows).await.unwrap();
    assert_eq!(inserted, ROWS as u64);

    let count = |statuses: Vec<InvoiceStatus>| {
        let store = store.clone();
        async move {
            let filter = InvoiceFilter {
                statuses,
                per_page: 1,
                ..InvoiceFilter::default()
            };
            store
                .invoices()
                .list_invoices(org.id, &filter)
                .await
                .unwrap()
                .1
        }
    };
    assert_eq!(count(vec![]).await, ROWS as i64);
    assert_eq!(
        count(vec![InvoiceStatus::Paid]).await,
        ROWS.div_ceil(3) as i64
    );

    let paid = store
        .invoices()
        .invoice_by_payment_id(org.id, &first.new.payment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert_eq!(paid.create_state, CreateState::Sent);
    assert_eq!(paid.kaspi_operation_id, Some(KaspiOperationId::new(1_000)));
    assert_eq!(paid.paid_at, Some(T0 + 1_000_000));
    assert_eq!(paid.updated_at, T0 + 1_000_000);
    assert_eq!(paid.description.as_deref(), Some("Order #0"));
    let pending = store
        .invoices()
        .invoice_by_operation_id(org.id, KaspiOperationId::new(1_001))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.status, InvoiceStatus::Pending);
    assert_eq!(pending.updated_at, pending.created_at);
    assert_eq!(pending.paid_at, None);

    // Seeded, not changed: no event, no poll job.
    assert!(store
        .invoices()
        .invoice_events(org.id, paid.id)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .jobs()
        .job(JobKind::PollInvoice, pending.id)
        .await
        .unwrap()
        .is_none());

    // A payment id that exists is a conflict.
    let again = store.invoices().bulk_insert_invoices(vec![first]).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(count(vec![]).await, ROWS as i64);
});
