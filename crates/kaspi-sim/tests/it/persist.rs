//! The state file: a simulator opened from what another one saved serves the same world to
//! the same client session, over HTTP.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

async fn refund(env: &Env, login: &Login, id: u64, amount: f64) -> Reply {
    env.qrpay_post(
        login,
        "/v01/kaspi-qr/history-pos-return",
        json!({"ReturnAmount": amount, "QrOperationId": id, "DeviceInterface": "Pos"}),
    )
    .await
}

async fn returned(env: &Env, login: &Login, id: u64) -> String {
    let details = env
        .qrpay_post(
            login,
            "/v01/kaspi-qr/operations/details",
            json!({"Id": id, "OperationMethod": 0}),
        )
        .await;
    details.ok()["ReturnedAmount"].to_string()
}

#[tokio::test]
async fn a_saved_state_loads_into_the_same_world_for_the_same_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sandbox-kaspi.json");
    let config = SimConfig {
        seed: 7,
        ..SimConfig::default()
    };
    let first = serve(Simulator::open(config.clone(), &path).expect("opens")).await;
    let login = first.login(CASHIER).await;
    let paid = first.invoice(&login, "7071234567", 100.0).await;
    first.sim.pay(paid).expect("pay");
    refund(&first, &login, paid, 30.25).await.ok();
    // Pays 60 s (sim clock) after it was made; 10 s pass before the restart.
    let scripted = first.invoice(&login, "7001110060", 5.0).await;
    let open = first.invoice(&login, "7071234567", 12.5).await;
    first.sim.advance_clock(Duration::from_secs(10));
    let before = first.sim.operations();
    first.sim.save(&path).expect("saved");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds session secrets");
    }

    // Another simulator, another port, the same file; a different seed is ignored for the
    // file's own.
    let second =
        serve(Simulator::open(SimConfig { seed: 8, ..config }, &path).expect("reopens")).await;
    assert!(second.sim.restored());
    assert_eq!(second.sim.config().seed, 7);
    assert_eq!(second.sim.operations(), before, "every operation as it was");
    let ahead = second.sim.now() - time::OffsetDateTime::now_utc();
    assert!(
        ahead >= time::Duration::seconds(9),
        "the sim clock keeps its offset: {ahead}"
    );

    // The session made before the restart signs and authenticates as before.
    let details = second.details(&login, open).await;
    assert_eq!(details["Status"], "RemotePaymentCreated");
    assert_eq!(details["Amount"].to_string(), "12.5");
    assert_eq!(returned(&second, &login, paid).await, "30.25");
    let d = refund(&second, &login, paid, 69.75).await;
    assert_eq!(d.ok()["Status"], "Processed");
    assert_eq!(
        refund(&second, &login, paid, 0.01).await.code(),
        "ReturnAmountExceeded"
    );
    second
        .sim
        .pay(open)
        .expect("an open invoice can still be paid");
    assert_eq!(second.details(&login, open).await["Status"], "Processed");

    // The agenda comes back: the scripted payer pays 50 s later on the sim clock.
    second.sim.advance_clock(Duration::from_secs(49));
    assert_eq!(
        second.details(&login, scripted).await["Status"],
        "RemotePaymentCreated"
    );
    second.sim.advance_clock(Duration::from_secs(2));
    assert_eq!(
        second.details(&login, scripted).await["Status"],
        "Processed"
    );

    // New ids go on from the saved counter: no id of the last run is handed out again.
    let newer = second.invoice(&login, "7071234567", 1.0).await;
    assert!(before.iter().all(|op| op.id < newer), "{newer} {before:?}");

    // A refreshed session is saved too.
    let (_, refreshed) = second.refresh(&login).await;
    let refreshed = refreshed.expect("sign-in-lite works on the restored session");
    second.sim.save(&path).expect("saved");
    let third = serve(Simulator::open(SimConfig::default(), &path).expect("reopens")).await;
    assert_eq!(
        third.details(&refreshed, newer).await["Status"],
        "RemotePaymentCreated"
    );
    let old = third
        .qrpay_get(&login, &format!("/v02/remote/details?operationId={newer}"))
        .await;
    assert_eq!(
        old.code(),
        "SessionExpired",
        "the replaced session stays replaced"
    );
}

#[tokio::test]
async fn the_saver_writes_changes_soon_and_on_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.json");
    let sim = Simulator::open(SimConfig::default(), &path).expect("opens");
    let saver = sim.keep_saved(path.clone(), kaspi_sim::DEFAULT_SAVE_DELAY);
    let env = serve(sim.clone()).await;
    let login = env.login(CASHIER).await;
    let id = env.invoice(&login, "7071234567", 100.0).await;

    let on_disk = |id: u64| {
        let path = path.clone();
        move || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            text.contains(&format!("\"id\":{id}"))
        }
    };
    let mut written = false;
    for _ in 0..100 {
        if on_disk(id)() {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(written, "a change reaches the file without a stop");

    // Made and stopped at once: the stop writes it.
    let last = env.invoice(&login, "7071234567", 2.0).await;
    saver.stop().await.expect("the last write works");
    assert!(on_disk(last)());
    let reopened = Simulator::open(SimConfig::default(), &path).expect("reopens");
    assert_eq!(reopened.operations(), sim.operations());
}
