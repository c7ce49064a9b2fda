//! The client against Kaspi as it behaves in 2026 (the simulator does each case on demand):
//! a session evicted by a login on another device, an app build below Kaspi's minimum (and a
//! newer one set while the client runs), and each named login error as a clear message.

use std::time::Duration;

use kaspi::{
    Amount, Client, ClientConfig, DeviceIdentity, Endpoints, Error, LoginError, LoginPrompt,
    LoginRefusal, Phone,
};
use kaspi_sim::{SimConfig, Simulator};

const CASHIER: &str = "87071234567";

async fn sim() -> (Simulator, String) {
    let sim = Simulator::new(SimConfig::default());
    let base = kaspi_sim::spawn(sim.clone()).await.expect("simulator");
    (sim, base)
}

fn client(base: &str, device: DeviceIdentity) -> Client {
    let config = ClientConfig {
        endpoints: Endpoints::under(base),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    Client::new(config, device).expect("client")
}

fn phone(text: &str) -> Phone {
    kaspi::phone::normalize(text).expect("phone")
}

struct Prompt(Simulator);

impl LoginPrompt for Prompt {
    async fn password(&mut self) -> Result<String, String> {
        Ok(kaspi_sim::DEFAULT_PASSWORD.into())
    }
    async fn sms_code(&mut self, _retry: bool) -> Result<String, String> {
        self.0.last_sms(CASHIER).ok_or_else(|| "no SMS".into())
    }
    async fn confirm_in_app(&mut self) -> Result<(), String> {
        self.0.confirm_in_app(CASHIER).map_err(|e| e.to_string())
    }
}

#[tokio::test]
async fn an_evicted_session_is_its_own_error_and_refresh_does_not_hide_it() {
    let (sim, base) = sim().await;
    let first = client(&base, DeviceIdentity::generate());
    let session = first
        .login(&phone(CASHIER), &mut Prompt(sim.clone()))
        .await
        .expect("login");
    // The same device logs in again: the first session lives on.
    let again = first
        .login(&phone(CASHIER), &mut Prompt(sim.clone()))
        .await
        .expect("re-login");
    first.check_session(&session).await.expect("still live");

    // The cashier's phone logs in on another device.
    let second = client(&base, DeviceIdentity::generate());
    let theirs = second
        .login(&phone(CASHIER), &mut Prompt(sim.clone()))
        .await
        .expect("login on another device");
    let e = first
        .create_invoice(
            &session,
            &phone("87001234567"),
            Amount::from_tiyn(10_000),
            "x",
        )
        .await
        .expect_err("evicted");
    assert!(matches!(e, Error::SessionEvicted { .. }), "{e:?}");
    assert!(!e.is_session(), "no refresh loop: {e:?}");
    assert!(e.to_string().contains("another device"), "{e}");
    let e = first
        .refresh(&again)
        .await
        .expect_err("refresh cannot help");
    assert!(matches!(e, Error::SessionEvicted { .. }), "{e:?}");
    assert!(sim.operations().is_empty(), "nothing was made");
    second
        .check_session(&theirs)
        .await
        .expect("the new device works");
}

#[tokio::test]
async fn an_outdated_build_is_its_own_error_and_a_newer_one_works_without_a_new_client() {
    let (sim, base) = sim().await;
    let kaspi = client(&base, DeviceIdentity::generate());
    let session = kaspi
        .login(&phone(CASHIER), &mut Prompt(sim.clone()))
        .await
        .expect("login");
    sim.set_min_app_build(Some(1120));

    let e = kaspi.check_session(&session).await.expect_err("outdated");
    match &e {
        Error::AppBuildOutdated { build, .. } => assert_eq!(build, "1115"),
        other => panic!("{other:?}"),
    }
    assert!(!e.is_session() && !e.is_transient(), "{e:?}");
    let e = kaspi
        .login(&phone(CASHIER), &mut Prompt(sim.clone()))
        .await
        .expect_err("login refused");
    assert!(matches!(e, Error::AppBuildOutdated { .. }), "{e:?}");
    assert!(e.to_string().contains("1115"), "{e}");

    // A newer build, set on the shared configuration while the client lives.
    assert!(kaspi.config().app.set_release("26.1101", "1120"));
    kaspi.check_session(&session).await.expect("accepted now");
    kaspi
        .login(&phone(CASHIER), &mut Prompt(sim.clone()))
        .await
        .expect("login with the newer build");
}

#[tokio::test]
async fn each_login_error_is_a_clear_message_without_its_raw_code() {
    let (sim, base) = sim().await;
    let kaspi = client(&base, DeviceIdentity::generate());
    for refusal in LoginRefusal::ALL {
        sim.refuse_next_login(CASHIER, refusal.code())
            .expect("scripted");
        let e = kaspi
            .login(&phone(CASHIER), &mut Prompt(sim.clone()))
            .await
            .expect_err("refused");
        match &e {
            Error::Login(LoginError::Refused { refusal: got, .. }) => assert_eq!(*got, refusal),
            other => panic!("{refusal:?}: {other:?}"),
        }
        let text = e.to_string();
        assert!(text.contains(refusal.advice()), "{text}");
        assert!(!text.contains(refusal.code()), "no raw code: {text}");
    }

    // A block for 30 minutes: the message says to wait, and Kaspi's words say how long.
    sim.block_account(CASHIER, 30).expect("blocked");
    let e = kaspi
        .login(&phone(CASHIER), &mut Prompt(sim.clone()))
        .await
        .expect_err("blocked");
    let text = e.to_string();
    assert!(text.contains("wait") && text.contains("30 мин"), "{text}");
    assert!(matches!(
        e,
        Error::Login(LoginError::Refused {
            refusal: LoginRefusal::AccountTemporaryBlocked,
            ..
        })
    ));
    sim.block_account(CASHIER, 0).expect("unblocked");
    kaspi
        .login(&phone(CASHIER), &mut Prompt(sim.clone()))
        .await
        .expect("login after the block");
}
