//! The operations history: item shape, order, the cursor, the end.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn pages_follow_the_cursor_to_an_empty_end() {
    let env = start_with(SimConfig {
        history_page_size: 3,
        ..SimConfig::default()
    })
    .await;
    let login = env.login(CASHIER).await;
    let mut made = HashSet::new();
    for i in 0..5 {
        made.insert(env.invoice(&login, "7071234567", 10.0 + f64::from(i)).await);
    }
    // Changes in the same millisecond still get distinct TransactionDates.
    let paid: Vec<u64> = made.iter().copied().take(3).collect();
    for id in &paid {
        env.sim.pay(*id).expect("pay");
    }
    let refund = env
        .qrpay_post(
            &login,
            "/v01/kaspi-qr/history-pos-return",
            json!({"ReturnAmount": 1.0, "QrOperationId": paid[0], "DeviceInterface": "Pos"}),
        )
        .await;
    made.insert(refund.ok()["Id"].as_u64().expect("id"));

    let mut seen = Vec::new();
    let mut dates: Vec<String> = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let page = env.history(&login, &cursor).await;
        let data = page.ok();
        for key in ["FormattedPeriod", "Statistics", "DailySets"] {
            assert!(!data[key].is_null(), "{key}");
        }
        let items = data["ListHistoryPaymentData"]
            .as_array()
            .expect("list")
            .clone();
        if items.is_empty() {
            break;
        }
        assert!(items.len() <= 3);
        for item in &items {
            seen.push(item["Id"].as_u64().expect("id"));
            dates.push(item["TransactionDate"].as_str().expect("date").to_owned());
        }
        cursor = dates.last().expect("last").clone();
    }
    assert_eq!(seen.len(), made.len(), "every operation once: {seen:?}");
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), made);
    let parsed: Vec<i128> = dates
        .iter()
        .map(|d| {
            assert!(
                d.ends_with("+05:00") && d.len() == "2026-04-15T13:57:25.123+05:00".len(),
                "{d}"
            );
            time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339)
                .expect("rfc3339")
                .unix_timestamp_nanos()
        })
        .collect();
    assert!(
        parsed.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first: {dates:?}"
    );
}

#[tokio::test]
async fn items_carry_the_documented_fields() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let id = env.invoice(&login, "7071234567", 1500.0).await;
    env.sim.pay(id).expect("pay");
    env.qrpay_post(
        &login,
        "/v01/kaspi-qr/history-pos-return",
        json!({"ReturnAmount": 500.0, "QrOperationId": id}),
    )
    .await
    .ok();
    let data = env.history(&login, "").await.ok().clone();
    let items = data["ListHistoryPaymentData"].as_array().expect("list");
    let (refund, sale) = (&items[0], &items[1]);
    for key in [
        "Id",
        "KaspiOperationId",
        "OrderNumber",
        "SaleId",
        "SaleType",
        "SourceType",
        "OperationMethod",
        "OperationType",
        "Features",
        "ClientShortName",
        "ClientMobile",
        "OrderRegDate",
        "Amount",
        "Comment",
        "Status",
        "TransactionDate",
    ] {
        assert!(!sale[key].is_null(), "{key} in {sale}");
    }
    assert_eq!(sale["Id"], id);
    assert_eq!(sale["OrderNumber"], format!("QR{id}"));
    assert_eq!(
        (sale["SaleType"].as_str(), sale["OperationType"].as_i64()),
        (Some("Remote"), Some(0))
    );
    assert_eq!(sale["SourceType"], "GOLD");
    assert_eq!(
        sale["OrderRegDate"].as_str().expect("date").len(),
        "2026-04-15T13:57:25+05:00".len()
    );
    assert_eq!(
        (
            refund["SaleType"].as_str(),
            refund["OperationType"].as_i64()
        ),
        (Some("Return"), Some(1))
    );
    assert_eq!(refund["ParentOperationId"], id);
    assert_eq!(refund["Amount"].to_string(), "500.0");
}

#[tokio::test]
async fn a_cursor_that_is_not_a_date_is_refused() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let r = env.history(&login, "yesterday").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "InvalidRequest")
    );
}
