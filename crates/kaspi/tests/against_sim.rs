//! The Rust client against the Kaspi simulator over real HTTP: the whole login (every kind of
//! challenge), every call, signature and MAC rejections, session expiry and refresh, and each
//! kind of fault, including a create whose answer is lost.

// Amounts are written tenge_tiyn (`1500_00` is 1500.00 KZT), which reads better here.
#![allow(clippy::inconsistent_digit_grouping)]
use std::time::{Duration, Instant};

use kaspi::{
    Amount, Client, ClientConfig, DeviceIdentity, Endpoints, Error, LoginError, LoginPrompt,
    Outcome, Phone, Session, TransportKind,
};
use kaspi_sim::{Challenge, Faults, LostMode, SimConfig, Simulator};

const CASHIER: &str = "87071234567";

struct Env {
    sim: Simulator,
    base: String,
}

async fn start(config: SimConfig) -> Env {
    let sim = Simulator::new(config);
    let base = kaspi_sim::spawn(sim.clone())
        .await
        .expect("simulator starts");
    Env { sim, base }
}

fn client_with(base: &str, device: DeviceIdentity, timeout: Duration) -> Client {
    let config = ClientConfig {
        endpoints: Endpoints::under(base),
        request_timeout: timeout,
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    };
    Client::new(config, device).expect("client builds")
}

fn client(env: &Env) -> Client {
    client_with(
        &env.base,
        DeviceIdentity::generate(),
        Duration::from_secs(5),
    )
}

fn phone(text: &str) -> Phone {
    kaspi::phone::normalize(text).expect("valid phone")
}

/// Answers the login questions the way a cashier would, reading the code the simulator "sent".
struct SimPrompt {
    sim: Simulator,
    phone: String,
    password: String,
    /// Type a wrong SMS code first.
    wrong_code_first: bool,
    asked: Vec<&'static str>,
}

impl SimPrompt {
    fn new(env: &Env) -> Self {
        Self {
            sim: env.sim.clone(),
            phone: CASHIER.into(),
            password: kaspi_sim::DEFAULT_PASSWORD.into(),
            wrong_code_first: false,
            asked: Vec::new(),
        }
    }
}

impl LoginPrompt for SimPrompt {
    async fn password(&mut self) -> Result<String, String> {
        self.asked.push("password");
        Ok(self.password.clone())
    }
    async fn sms_code(&mut self, retry: bool) -> Result<String, String> {
        self.asked.push("sms");
        let code = self.sim.last_sms(&self.phone).ok_or("no SMS was sent")?;
        if self.wrong_code_first && !retry {
            // Any code but the right one.
            return Ok(if code == "0000" {
                "1111".into()
            } else {
                "0000".into()
            });
        }
        Ok(code)
    }
    async fn confirm_in_app(&mut self) -> Result<(), String> {
        self.asked.push("app");
        self.sim
            .confirm_in_app(&self.phone)
            .map_err(|e| e.to_string())
    }
}

async fn logged_in(env: &Env) -> (Client, Session) {
    let client = client(env);
    let session = client
        .login(&phone(CASHIER), &mut SimPrompt::new(env))
        .await
        .expect("login");
    (client, session)
}

#[tokio::test]
async fn sms_login_then_every_payment_call() {
    let env = start(SimConfig {
        history_page_size: 2,
        ..SimConfig::default()
    })
    .await;
    let client = client(&env);
    let mut prompt = SimPrompt::new(&env);
    let session = client
        .login(&phone(CASHIER), &mut prompt)
        .await
        .expect("login");
    assert_eq!(prompt.asked, ["sms"]);
    assert!(session.org.profile_id.is_some() && session.org.organization_id.is_some());
    assert!(session.org.organization_name.is_some());
    assert_eq!(session.org.is_cashier, Some(true));
    client
        .check_session(&session)
        .await
        .expect("session is alive");

    // Customer look-up: a client and a phone that is not one.
    let info = client
        .client_info(&session, &phone("87011234567"))
        .await
        .expect("client-info");
    assert!(info.client_name.is_some());
    let stranger = client
        .client_info(&session, &phone("87005550000"))
        .await
        .expect("client-info");
    assert_eq!(stranger.client_status.as_deref(), Some("NotClient"));
    let refused = client
        .create_invoice(
            &session,
            &phone("87005550000"),
            Amount::from_tiyn(100_00),
            "x",
        )
        .await;
    assert!(
        matches!(refused, Err(Error::Kaspi { ref code, .. }) if code.as_deref() == Some("ClientNotFound")),
        "{refused:?}"
    );

    // Create, read, cancel.
    let customer = phone("87011234567");
    let first = client
        .create_invoice(&session, &customer, Amount::from_tiyn(1500_00), "Заказ #1")
        .await
        .expect("create");
    let first_id = first.operation_id().expect("id");
    assert_eq!(first.amount, Some(Amount::from_tiyn(1500_00)));
    let details = client
        .invoice_details(&session, first_id)
        .await
        .expect("details");
    assert_eq!(
        details.status.as_ref().map(|s| s.outcome()),
        Some(Outcome::Open)
    );
    client
        .cancel_invoice(&session, first_id)
        .await
        .expect("cancel");
    let details = client
        .invoice_details(&session, first_id)
        .await
        .expect("details");
    assert_eq!(
        details.status.as_ref().map(|s| s.as_str()),
        Some("RemotePaymentCanceled")
    );
    assert_eq!(
        details.status.as_ref().map(|s| s.outcome()),
        Some(Outcome::Failed)
    );

    // A second invoice is paid by the payer.
    let second = client
        .create_invoice(&session, &customer, Amount::from_tiyn(2000_50), "Заказ #2")
        .await
        .expect("create");
    let second_id = second.operation_id().expect("id");
    env.sim
        .pay(u64::try_from(second_id).expect("positive"))
        .expect("pay");
    let paid = client
        .invoice_details(&session, second_id)
        .await
        .expect("details");
    assert_eq!(
        paid.status.as_ref().map(|s| s.outcome()),
        Some(Outcome::Paid)
    );
    // Cancelling a paid invoice is refused by Kaspi.
    assert!(matches!(
        client.cancel_invoice(&session, second_id).await,
        Err(Error::Kaspi { .. })
    ));

    let recent = client
        .invoice_history(&session, 20)
        .await
        .expect("invoice history");
    let ids: Vec<i64> = recent.iter().filter_map(|i| i.operation_id()).collect();
    assert!(
        ids.contains(&first_id) && ids.contains(&second_id),
        "{ids:?}"
    );

    // QR token: create, status, paid.
    let qr = client
        .create_qr(
            &session,
            Amount::from_tiyn(750_00),
            kaspi::Location::default(),
        )
        .await
        .expect("qr");
    let qr_id = qr.qr_operation_id.expect("qr id");
    assert!(qr
        .qr_token
        .as_deref()
        .is_some_and(|t| t.starts_with("https://qr.kaspi.kz/")));
    assert!(qr
        .payment_url()
        .is_some_and(|u| u.starts_with("https://pay.kaspi.kz/pay/")));
    assert!(qr.expire_date.is_some());
    let status = client.qr_status(&session, qr_id).await.expect("qr status");
    assert_eq!(
        status.status.as_ref().map(|s| s.as_str()),
        Some("QrTokenCreated")
    );
    env.sim
        .pay(u64::try_from(qr_id).expect("positive"))
        .expect("pay qr");
    let status = client.qr_status(&session, qr_id).await.expect("qr status");
    assert_eq!(
        status.status.as_ref().map(|s| s.outcome()),
        Some(Outcome::Paid)
    );

    // Operations history, paged two at a time with the cursor: every operation once.
    let today = time::OffsetDateTime::now_utc().date();
    let mut cursor = String::new();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let page = client
            .operations(&session, today, &cursor)
            .await
            .expect("history page");
        assert!(page.operations.len() <= 2);
        seen.extend(page.operations.iter().filter_map(|o| o.operation_id()));
        match page.next_cursor {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no operation twice: {seen:?}");
    for id in [first_id, second_id, qr_id] {
        assert!(seen.contains(&id), "{id} in history {seen:?}");
    }

    // Operation details, then refunds: partial, too much, the rest, one more.
    let op = client
        .operation_details(&session, second_id)
        .await
        .expect("details");
    assert_eq!(op.amount, Some(Amount::from_tiyn(2000_50)));
    let part = client
        .refund(&session, second_id, Amount::from_tiyn(500_00))
        .await
        .expect("partial refund");
    assert_eq!(part.return_amount, Some(Amount::from_tiyn(500_00)));
    let too_much = client
        .refund(&session, second_id, Amount::from_tiyn(1600_00))
        .await;
    assert!(
        matches!(too_much, Err(Error::Kaspi { ref code, .. }) if code.as_deref() == Some("ReturnAmountExceeded")),
        "{too_much:?}"
    );
    client
        .refund(&session, second_id, Amount::from_tiyn(1500_50))
        .await
        .expect("the rest");
    let op = client
        .operation_details(&session, second_id)
        .await
        .expect("details");
    assert_eq!(op.returned_amount, Some(Amount::from_tiyn(2000_50)));
    assert!(client
        .refund(&session, second_id, Amount::from_tiyn(1))
        .await
        .is_err());
    // A refund of an unpaid operation is refused.
    let unpaid = client
        .refund(&session, first_id, Amount::from_tiyn(1))
        .await;
    assert!(matches!(unpaid, Err(Error::Kaspi { .. })), "{unpaid:?}");
}

#[tokio::test]
async fn password_then_sms_login_retries_a_wrong_code() {
    let env = start(SimConfig::default()).await;
    env.sim
        .set_cashier(CASHIER, Challenge::PasswordSms, Some("s3cret".into()))
        .expect("cashier");
    let client = client(&env);

    let mut wrong = SimPrompt::new(&env);
    wrong.password = "not it".into();
    let refused = client.login(&phone(CASHIER), &mut wrong).await;
    assert!(matches!(refused, Err(Error::Login(_))), "{refused:?}");

    let mut prompt = SimPrompt::new(&env);
    prompt.password = "s3cret".into();
    prompt.wrong_code_first = true;
    let session = client
        .login(&phone(CASHIER), &mut prompt)
        .await
        .expect("login");
    assert_eq!(prompt.asked, ["password", "sms", "sms"]);
    client.check_session(&session).await.expect("alive");
}

#[tokio::test]
async fn app_confirmation_login() {
    let env = start(SimConfig::default()).await;
    env.sim
        .set_cashier(CASHIER, Challenge::App, None)
        .expect("cashier");
    let client = client(&env);

    /// A cashier who never confirms: the login must not finish.
    struct NoConfirm;
    impl LoginPrompt for NoConfirm {
        async fn password(&mut self) -> Result<String, String> {
            Err("unexpected".into())
        }
        async fn sms_code(&mut self, _: bool) -> Result<String, String> {
            Err("unexpected".into())
        }
        async fn confirm_in_app(&mut self) -> Result<(), String> {
            Ok(())
        }
    }
    assert!(client.login(&phone(CASHIER), &mut NoConfirm).await.is_err());

    let mut prompt = SimPrompt::new(&env);
    let session = client
        .login(&phone(CASHIER), &mut prompt)
        .await
        .expect("login");
    assert_eq!(prompt.asked, ["app"]);
    client.check_session(&session).await.expect("alive");
}

#[tokio::test]
async fn three_wrong_codes_close_the_login() {
    let env = start(SimConfig::default()).await;
    struct AlwaysWrong;
    impl LoginPrompt for AlwaysWrong {
        async fn password(&mut self) -> Result<String, String> {
            Err("unexpected".into())
        }
        async fn sms_code(&mut self, _: bool) -> Result<String, String> {
            Ok("99999".into())
        }
        async fn confirm_in_app(&mut self) -> Result<(), String> {
            Err("unexpected".into())
        }
    }
    let err = client(&env)
        .login(&phone(CASHIER), &mut AlwaysWrong)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, Error::Login(LoginError::Closed(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_signature_and_bad_mac_are_refused() {
    let env = start(SimConfig::default()).await;
    let (client, session) = logged_in(&env).await;

    // Another device signing with this session's token: the signature does not verify.
    let stranger = client_with(
        &env.base,
        DeviceIdentity::generate(),
        Duration::from_secs(5),
    );
    let err = stranger.check_session(&session).await.expect_err("refused");
    assert!(
        matches!(err, Error::Kaspi { ref code, .. } if code.as_deref() == Some("InvalidSign")),
        "{err:?}"
    );

    // The right device with a wrong vtoken secret: the MAC does not match.
    let json = session.to_json();
    let mut value: serde_json::Value = serde_json::from_str(&json).expect("json");
    value["vtoken_secret"] = serde_json::json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let forged = Session::from_json(&value.to_string()).expect("session");
    let err = client.check_session(&forged).await.expect_err("refused");
    assert!(
        matches!(err, Error::Session { ref code, .. } if code.as_deref() == Some("InvalidTokenMac")),
        "{err:?}"
    );

    // The genuine session still works.
    client.check_session(&session).await.expect("alive");
}

#[tokio::test]
async fn expired_session_refreshes_and_revoked_one_needs_a_new_login() {
    let env = start(SimConfig::default()).await;
    let (client, session) = logged_in(&env).await;

    assert!(env.sim.expire_sessions() >= 1);
    let err = client.check_session(&session).await.expect_err("expired");
    assert!(err.is_session(), "{err:?}");
    let refreshed = client.refresh(&session).await.expect("refresh");
    client
        .check_session(&refreshed)
        .await
        .expect("alive after refresh");
    assert_eq!(refreshed.org.organization_id, session.org.organization_id);

    assert!(env.sim.revoke_sessions() >= 1);
    let err = client.check_session(&refreshed).await.expect_err("revoked");
    assert!(err.is_session(), "{err:?}");
    let err = client
        .refresh(&refreshed)
        .await
        .expect_err("refresh refused");
    assert!(matches!(err, Error::ReauthRequired(_)), "{err:?}");

    // A new login brings the cashier back.
    let fresh = client
        .login(&phone(CASHIER), &mut SimPrompt::new(&env))
        .await
        .expect("new login");
    client
        .check_session(&fresh)
        .await
        .expect("alive after a new login");
}

#[tokio::test]
async fn each_fault_kind_maps_to_its_error() {
    let env = start(SimConfig::default()).await;
    let client = client_with(
        &env.base,
        DeviceIdentity::generate(),
        Duration::from_millis(800),
    );
    let session = client
        .login(&phone(CASHIER), &mut SimPrompt::new(&env))
        .await
        .expect("login");
    let customer = phone("87011234567");

    // Latency: slower, still answered.
    env.sim
        .set_faults(Faults {
            latency_ms: 300,
            count: Some(1),
            ..Faults::default()
        })
        .expect("faults");
    let started = Instant::now();
    client.check_session(&session).await.expect("slow but fine");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // HTTP 5xx on a read: transient.
    env.sim
        .set_faults(Faults {
            http_5xx: 1.0,
            count: Some(1),
            ..Faults::default()
        })
        .expect("faults");
    let err = client.check_session(&session).await.expect_err("5xx");
    assert!(
        matches!(
            err,
            Error::Http {
                status: 500..=599,
                ..
            }
        ) && err.is_transient(),
        "{err:?}"
    );

    // Non-zero StatusCode: a Kaspi refusal.
    env.sim
        .set_faults(Faults {
            status_error: 1.0,
            count: Some(1),
            ..Faults::default()
        })
        .expect("faults");
    let err = client
        .check_session(&session)
        .await
        .expect_err("StatusCode");
    assert!(matches!(err, Error::Kaspi { .. }), "{err:?}");

    // HTTP 5xx on a create: Kaspi may or may not have it, so the outcome is unknown.
    env.sim
        .set_faults(Faults {
            http_5xx: 1.0,
            count: Some(1),
            path_contains: Some("remote/create".into()),
            ..Faults::default()
        })
        .expect("faults");
    let err = client
        .create_invoice(&session, &customer, Amount::from_tiyn(100_00), "5xx")
        .await
        .expect_err("5xx");
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");

    // Lost answers on create, held back (timeout) and dropped: outcome unknown, and the
    // invoice exists at Kaspi: it is found in the history, not created again.
    for (mode, comment) in [
        (LostMode::Timeout, "lost by timeout"),
        (LostMode::Drop, "lost by drop"),
    ] {
        env.sim
            .set_faults(Faults {
                lost: 1.0,
                lost_mode: mode,
                hang_ms: 5_000,
                count: Some(1),
                path_contains: Some("remote/create".into()),
                ..Faults::default()
            })
            .expect("faults");
        let err = client
            .create_invoice(&session, &customer, Amount::from_tiyn(123_45), comment)
            .await
            .expect_err("lost");
        assert!(
            matches!(err, Error::OutcomeUnknown { .. }),
            "{mode:?}: {err:?}"
        );
        let recent = client.invoice_history(&session, 20).await.expect("history");
        let found = recent
            .iter()
            .filter(|i| i.amount == Some(Amount::from_tiyn(123_45)))
            .count();
        assert!(
            found >= 1,
            "{mode:?}: the lost invoice is in Kaspi's history"
        );
    }
    let recent = client.invoice_history(&session, 50).await.expect("history");
    assert_eq!(
        recent
            .iter()
            .filter(|i| i.amount == Some(Amount::from_tiyn(123_45)))
            .count(),
        2
    );

    // A lost answer on a read is a plain transport error (safe to retry).
    env.sim
        .set_faults(Faults {
            lost: 1.0,
            lost_mode: LostMode::Timeout,
            hang_ms: 5_000,
            count: Some(1),
            ..Faults::default()
        })
        .expect("faults");
    let err = client.check_session(&session).await.expect_err("timeout");
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    env.sim.clear_faults();
    client.check_session(&session).await.expect("fine again");

    // Nobody listening: refused, never "outcome unknown" (nothing was sent).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let nowhere = client_with(&closed, DeviceIdentity::generate(), Duration::from_secs(2));
    let err = nowhere
        .create_invoice(&session, &customer, Amount::from_tiyn(100), "x")
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::Refused,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn magic_payers_settle_on_the_simulator_clock() {
    let env = start(SimConfig::default()).await;
    let (client, session) = logged_in(&env).await;
    let pays = client
        .create_invoice(
            &session,
            &phone("87001110005"),
            Amount::from_tiyn(10_00),
            "pays in 5 s",
        )
        .await
        .expect("create");
    let declines = client
        .create_invoice(
            &session,
            &phone("87002220005"),
            Amount::from_tiyn(10_00),
            "declines",
        )
        .await
        .expect("create");
    let never = client
        .create_invoice(
            &session,
            &phone("87004440000"),
            Amount::from_tiyn(10_00),
            "never pays",
        )
        .await
        .expect("create");
    let outcome = |inv: kaspi::wire::RemoteInvoice| inv.status.map(|s| s.outcome());

    let now = client
        .invoice_details(&session, pays.operation_id().expect("id"))
        .await
        .expect("details");
    assert_eq!(outcome(now), Some(Outcome::Open));
    env.sim.advance_clock(Duration::from_secs(6));
    let paid = client
        .invoice_details(&session, pays.operation_id().expect("id"))
        .await
        .expect("details");
    assert_eq!(outcome(paid), Some(Outcome::Paid));
    let declined = client
        .invoice_details(&session, declines.operation_id().expect("id"))
        .await
        .expect("details");
    assert_eq!(outcome(declined), Some(Outcome::Failed));
    let waiting = client
        .invoice_details(&session, never.operation_id().expect("id"))
        .await
        .expect("details");
    assert_eq!(outcome(waiting), Some(Outcome::Open));
    env.sim.advance_clock(Duration::from_secs(25 * 3600));
    let expired = client
        .invoice_details(&session, never.operation_id().expect("id"))
        .await
        .expect("details");
    assert_eq!(outcome(expired), Some(Outcome::Expired));
}

#[tokio::test]
async fn debug_output_never_shows_session_secrets() {
    let env = start(SimConfig::default()).await;
    let (_client, session) = logged_in(&env).await;
    let value: serde_json::Value = serde_json::from_str(&session.to_json()).expect("json");
    let debug = format!("{session:?}");
    for secret in ["token_sn", "vtoken_secret", "ecdh_private_key"] {
        let text = value[secret].as_str().expect("string");
        assert!(!debug.contains(text), "{secret} leaked into Debug");
    }
}
