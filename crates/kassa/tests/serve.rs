//! The gateway process as a user starts it: `kassa serve` on its defaults answers `/status`
//! and carries the sandbox Kaspi on the same listener, which the real Kaspi client can log in
//! to and pay through; `kassa kaspi-sim` runs the simulator alone.

use std::time::Duration;

use kaspi::{Amount, Client, ClientConfig, DeviceIdentity, Endpoints, LoginPrompt, Outcome};
use kassa::app::{App, SANDBOX_PREFIX};
use kassa::config::{Config, ServeArgs, StorageArgs};
use kassa::gateway::SandboxPrompt;

#[tokio::test]
async fn serve_answers_status_and_mounts_the_sandbox_kaspi() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = StorageArgs {
        data_dir: Some(dir.path().join("data")),
        ..Default::default()
    };
    let serve = ServeArgs {
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        ..Default::default()
    };
    let config = Config::resolve(&storage, &serve).expect("config");
    let app = App::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let sim = app
        .state()
        .sandbox
        .clone()
        .expect("sandbox mode by default");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let status: serde_json::Value = reqwest::get(format!("http://{addr}/api/v1/status"))
        .await
        .expect("status answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(status["status"], "ok");
    assert_eq!(status["kaspi"]["mode"], "sandbox");
    assert!(status["timestamp"]
        .as_str()
        .is_some_and(|t| t.contains('T')));
    // The SQLite database and the master key were made in the data dir.
    assert!(dir.path().join("data/kassa.db").exists());
    assert!(dir.path().join("data/master.key").exists());

    // The real client, over HTTP, through the mounted simulator: signatures are checked
    // against the URL as sent, prefix included.
    let config = ClientConfig {
        endpoints: Endpoints::under(&format!("http://{addr}{SANDBOX_PREFIX}")),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let client = Client::new(config, DeviceIdentity::generate()).expect("client");
    let cashier = kaspi::phone::normalize("87071234567").expect("phone");
    let mut prompt = SandboxPrompt {
        sim: sim.clone(),
        phone: cashier.as_str().into(),
    };
    let session = client
        .login(&cashier, &mut prompt)
        .await
        .expect("login via the sandbox");
    let customer = kaspi::phone::normalize("87011234567").expect("phone");
    let invoice = client
        .create_invoice(&session, &customer, Amount::from_tiyn(10_000), "sandbox")
        .await
        .expect("invoice");
    let id = invoice.operation_id().expect("id");
    sim.pay(u64::try_from(id).expect("positive")).expect("pay");
    let paid = client.invoice_details(&session, id).await.expect("details");
    assert_eq!(paid.status.map(|s| s.outcome()), Some(Outcome::Paid));

    stop.send(()).expect("server still running");
    server.await.expect("joined").expect("clean shutdown");
}

#[tokio::test]
async fn kassa_kaspi_sim_command_runs_the_simulator_alone() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"))
        .args(["kaspi-sim", "--listen", &format!("127.0.0.1:{port}")])
        .kill_on_drop(true)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kassa starts");
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(format!("{base}/_control/clock"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the simulator answers on {base}");

    // A login over HTTP only: the code comes from the control API.
    struct HttpPrompt(String);
    impl LoginPrompt for HttpPrompt {
        async fn password(&mut self) -> Result<String, String> {
            Err("not asked".into())
        }
        async fn sms_code(&mut self, _: bool) -> Result<String, String> {
            let v: serde_json::Value = reqwest::get(format!("{}/_control/sms/87071234567", self.0))
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            v["code"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| "no code".into())
        }
        async fn confirm_in_app(&mut self) -> Result<(), String> {
            Err("not asked".into())
        }
    }
    let client = Client::new(
        ClientConfig {
            endpoints: Endpoints::under(&base),
            ..ClientConfig::default()
        },
        DeviceIdentity::generate(),
    )
    .expect("client");
    let cashier = kaspi::phone::normalize("87071234567").expect("phone");
    let session = client
        .login(&cashier, &mut HttpPrompt(base.clone()))
        .await
        .expect("login");
    client.check_session(&session).await.expect("session alive");
    child.kill().await.expect("stopped");
}
