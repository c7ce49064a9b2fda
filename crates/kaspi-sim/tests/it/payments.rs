//! Payments: magic payers on the sim clock, expiry, control API changes, cancel, refunds.

use std::time::Duration;

use kaspi::Amount;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn invoice_answers_one_number_as_id_and_qr_operation_id() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let r = env
        .qrpay_post(
            &login,
            "/v01/remote/create",
            json!({"PhoneNumber": "87071234567", "Amount": 1500.0, "Comment": "x", "Extra": 1}),
        )
        .await;
    let d = r.ok();
    assert_eq!(d["Id"], d["QrOperationId"]);
    assert_eq!(d["Id"].to_string().len(), 11);
    assert_eq!(d["Status"], "RemotePaymentCreated");
    assert_eq!(d["Amount"].to_string(), "1500.0");
    assert_eq!(d["ClientMobile"], "7071234567");
    assert_eq!(d["OrderNumber"], format!("QR{}", d["Id"]));
    assert!(d["ReceiptUrl"].is_string());
}

#[tokio::test]
async fn magic_payers_act_on_the_sim_clock() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let pays = env.invoice(&login, "7001110005", 100.0).await;
    let declines = env.invoice(&login, "7002220010", 100.0).await;
    let broke = env.invoice(&login, "7003330000", 100.0).await;
    let never = env.invoice(&login, "7004440000", 100.0).await;

    assert_eq!(
        env.details(&login, pays).await["Status"],
        "RemotePaymentCreated"
    );
    assert_eq!(
        env.details(&login, broke).await["StatusDesc"],
        "Недостаточно средств"
    );
    assert_eq!(
        env.details(&login, broke).await["Status"],
        "RemotePaymentRejected"
    );

    env.sim.advance_clock(Duration::from_secs(4));
    assert_eq!(
        env.details(&login, pays).await["Status"],
        "RemotePaymentCreated"
    );
    let r = env
        .control(Method::POST, "/clock/advance", Some(json!({"seconds": 1})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(env.details(&login, pays).await["Status"], "Processed");
    assert_eq!(
        env.details(&login, declines).await["Status"],
        "RemotePaymentCreated"
    );
    env.sim.advance_clock(Duration::from_secs(5));
    assert_eq!(
        env.details(&login, declines).await["Status"],
        "RemotePaymentRejected"
    );

    env.sim.advance_clock(Duration::from_secs(24 * 3600 - 11));
    assert_eq!(
        env.details(&login, never).await["Status"],
        "RemotePaymentCreated"
    );
    env.sim.advance_clock(Duration::from_secs(2));
    assert_eq!(env.details(&login, never).await["Status"], "Expired");
    // A final status does not change again.
    assert_eq!(env.details(&login, pays).await["Status"], "Processed");
}

#[tokio::test]
async fn changes_are_stamped_with_their_own_due_time() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let a = env.invoice(&login, "7001110010", 1.0).await;
    let b = env.invoice(&login, "7001110020", 1.0).await;
    let before = env.sim.now();
    env.sim.advance_clock(Duration::from_secs(3600));
    let info_a = env.sim.operation(a).expect("a");
    let info_b = env.sim.operation(b).expect("b");
    let t = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .expect("date")
    };
    let (ta, tb) = (t(&info_a.transaction_date), t(&info_b.transaction_date));
    assert!(
        ta - before >= time::Duration::seconds(9) && ta - before < time::Duration::seconds(15),
        "{ta} vs {before}"
    );
    assert!(tb - ta >= time::Duration::seconds(9), "{tb} vs {ta}");
}

#[tokio::test]
async fn not_a_client_is_said_so_and_refused() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let info = env
        .qrpay_get(&login, "/v01/remote/client-info?phoneNumber=7005550000")
        .await;
    assert_eq!(info.ok()["ClientStatus"], "NotClient");
    let info = env
        .qrpay_get(&login, "/v01/remote/client-info?phoneNumber=87071234567")
        .await;
    let name = info.ok()["ClientName"].as_str().expect("name").to_owned();
    assert!(name.ends_with('.'), "{name}");
    let r = env
        .qrpay_post(
            &login,
            "/v01/remote/create",
            json!({"PhoneNumber": "7005550000", "Amount": 10.0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.status_code(), 0);
    assert_eq!(r.code(), "ClientNotFound");
}

#[tokio::test]
async fn bad_amounts_and_bodies_are_refused_in_the_envelope() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    for amount in [json!(0), json!(-5.0), json!(1.005), json!(100000000.0)] {
        let r = env
            .qrpay_post(
                &login,
                "/v01/remote/create",
                json!({"PhoneNumber": "7071234567", "Amount": amount}),
            )
            .await;
        assert_ne!(r.status_code(), 0, "{amount}: {:?}", r.body);
        assert!(!r.code().is_empty());
    }
    let r = env
        .qrpay_post(&login, "/v01/remote/create", json!({"Amount": 5.0}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "InvalidRequest")
    );
}

#[tokio::test]
async fn control_api_pays_declines_and_expires_open_operations_only() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let id = env.invoice(&login, "7071234567", 50.0).await;

    let r = env
        .control(Method::POST, "/operations/12345678901/pay", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = env.control(Method::POST, "/operations/abc/pay", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = env
        .control(Method::POST, &format!("/operations/{id}/pay"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "Processed");
    for action in ["pay", "decline", "expire"] {
        let r = env
            .control(Method::POST, &format!("/operations/{id}/{action}"), None)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{action}");
    }
    assert!(env.sim.pay(id).is_err());

    let qr = env
        .qrpay_post(
            &login,
            "/v01/qr-token/create",
            json!({"PaymentAmount": 990.0, "DeviceInterface": "Pos"}),
        )
        .await;
    let qr_id = qr.ok()["QrOperationId"].as_u64().expect("id");
    env.sim.scan(qr_id).expect("scan");
    let s = env
        .qrpay_get(
            &login,
            &format!("/v02/kaspi-qr/status?qrOperationId={qr_id}"),
        )
        .await;
    assert_eq!(s.ok()["Status"], "Wait");
    env.sim.decline(qr_id).expect("decline");
    let s = env
        .qrpay_get(
            &login,
            &format!("/v02/kaspi-qr/status?qrOperationId={qr_id}"),
        )
        .await;
    assert_eq!(s.ok()["Status"], "CancelledByUser");
}

#[tokio::test]
async fn qr_tokens_expire_at_qr_ttl() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let qr = env
        .qrpay_post(&login, "/v01/qr-token/create", json!({"PaymentAmount": 10.0, "DeviceInterface": "Pos", "Latitude": 43.2, "Longitude": 76.9}))
        .await;
    let d = qr.ok().clone();
    let id = d["QrOperationId"].as_u64().expect("id");
    assert!(d["QrToken"]
        .as_str()
        .expect("token")
        .starts_with("https://qr.kaspi.kz/"));
    assert_eq!(d["ExtTranId"], format!("QR{id}"));
    assert!(d["QrPaymentBehaviorOptions"].is_object());
    env.sim.advance_clock(Duration::from_secs(299));
    let s = env
        .qrpay_get(&login, &format!("/v02/kaspi-qr/status?qrOperationId={id}"))
        .await;
    assert_eq!(s.ok()["Status"], "QrTokenCreated");
    assert!(s.ok()["ChequeTitle"].is_string() && s.ok()["OrderRegDate"].is_string());
    env.sim.advance_clock(Duration::from_secs(2));
    let s = env
        .qrpay_get(&login, &format!("/v02/kaspi-qr/status?qrOperationId={id}"))
        .await;
    assert_eq!(s.ok()["Status"], "Expired");
}

#[tokio::test]
async fn cancel_works_on_unpaid_invoices_only() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let id = env.invoice(&login, "7071234567", 50.0).await;
    env.qrpay_post(&login, "/v01/remote/cancel", json!({"qrOperationId": id}))
        .await
        .ok();
    assert_eq!(
        env.details(&login, id).await["Status"],
        "RemotePaymentCanceled"
    );
    let again = env
        .qrpay_post(&login, "/v01/remote/cancel", json!({"qrOperationId": id}))
        .await;
    assert_ne!(again.status_code(), 0);

    let paid = env.invoice(&login, "7071234567", 50.0).await;
    env.sim.pay(paid).expect("pay");
    let r = env
        .qrpay_post(&login, "/v01/remote/cancel", json!({"qrOperationId": paid}))
        .await;
    assert_ne!(r.status_code(), 0);
    assert_eq!(r.code(), "OperationAlreadyPaid");
    assert_eq!(env.details(&login, paid).await["Status"], "Processed");
}

#[tokio::test]
async fn other_organizations_operations_are_not_found() {
    let env = start().await;
    let mine = env.login(CASHIER).await;
    let theirs = env.login("87019998877").await;
    let id = env.invoice(&mine, "7071234567", 50.0).await;
    let r = env
        .qrpay_get(&theirs, &format!("/v02/remote/details?operationId={id}"))
        .await;
    assert_eq!(r.code(), "OperationNotFound");
    let r = env.history(&theirs, "").await;
    assert_eq!(
        r.ok()["ListHistoryPaymentData"]
            .as_array()
            .expect("list")
            .len(),
        0
    );
}

async fn refund(env: &Env, login: &Login, id: u64, amount: f64) -> Reply {
    env.qrpay_post(
        login,
        "/v01/kaspi-qr/history-pos-return",
        json!({"ReturnAmount": amount, "QrOperationId": id, "DeviceInterface": "Pos"}),
    )
    .await
}

#[tokio::test]
async fn refunds_enforce_paid_status_remaining_amount_and_period() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let open = env.invoice(&login, "7071234567", 100.0).await;
    let r = refund(&env, &login, open, 10.0).await;
    assert_eq!(r.code(), "OperationNotPaid");

    let paid = env.invoice(&login, "7071234567", 100.0).await;
    env.sim.pay(paid).expect("pay");
    let r = refund(&env, &login, paid, 30.25).await;
    let d = r.ok();
    assert_eq!(d["Status"], "Processed");
    assert_eq!(d["QrOperationId"], paid);
    assert_eq!(d["ReturnAmount"].to_string(), "30.25");
    let refund_id = d["Id"].as_u64().expect("id");
    let r = refund(&env, &login, paid, 69.76).await;
    assert_eq!(r.code(), "ReturnAmountExceeded");
    assert_eq!(r.body["Message"], "Сумма возврата превышает доступную");
    let details = env
        .qrpay_post(
            &login,
            "/v01/kaspi-qr/operations/details",
            json!({"Id": paid, "OperationMethod": 0}),
        )
        .await;
    assert_eq!(details.ok()["ReturnedAmount"].to_string(), "30.25");
    assert_eq!(details.ok()["AvailableReturnAmount"].to_string(), "69.75");
    refund(&env, &login, paid, 69.75).await.ok();
    assert_eq!(
        refund(&env, &login, paid, 0.01).await.code(),
        "ReturnAmountExceeded"
    );
    assert_eq!(
        refund(&env, &login, refund_id, 1.0).await.code(),
        "OperationNotReturnable"
    );

    let old = env.invoice(&login, "7071234567", 100.0).await;
    env.sim.pay(old).expect("pay");
    env.sim.advance_clock(Duration::from_secs(31 * 24 * 3600));
    assert_eq!(
        refund(&env, &login, old, 1.0).await.code(),
        "ReturnPeriodExpired"
    );
}

#[tokio::test]
async fn static_qr_payments_appear_only_in_the_history() {
    let env = start().await;
    let login = env.login(CASHIER).await;
    let id = env
        .sim
        .add_static_qr_payment(Amount::from_tiyn(1_200), "за кофе")
        .expect("payment");
    let r = env
        .control(
            Method::POST,
            "/static-qr-payments",
            Some(json!({"amount": 5.5, "phone": CASHIER})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let second = r.body["id"].as_u64().expect("id");
    let items = env.history(&login, "").await.ok()["ListHistoryPaymentData"].clone();
    let items = items.as_array().expect("list");
    assert_eq!(items[0]["Id"], second);
    assert_eq!(items[1]["Id"], id);
    assert_eq!(items[1]["SaleType"], "Static");
    assert_eq!(items[1]["Status"], "Processed");
    assert_eq!(items[1]["Amount"].to_string(), "12.0");
    assert_eq!(items[1]["Comment"], "за кофе");
    assert!(items[1]["ClientShortName"].is_string());
    let r = env
        .qrpay_post(&login, "/v01/remote/history", json!({"MaxResult": 20}))
        .await;
    assert_eq!(r.ok()["Items"].as_array().expect("items").len(), 0);
    refund(&env, &login, id, 12.0).await.ok();
}
