//! The administration commands as a user runs them: the real `kassa` binary on a SQLite data
//! dir in a tempdir, checked against the same database through the store. The cashier login
//! goes to a Kaspi simulator running in this test process, the SMS code typed on the child's
//! standard input.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use kassa::config::{Config, ServeArgs, StorageArgs};
use kassa::db::{Db, DbOptions};
use kassa::secrets::MasterKey;
use kassa::store::{Organization, Store, TerminalState};
use tokio::io::AsyncWriteExt as _;

/// How long one run of the binary may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// How long the CLI may take to get to the SMS question.
const SMS_LIMIT: Duration = Duration::from_secs(20);
const CASHIER: &str = "7001112233";

/// `kassa --data-dir <dir> <args>`, with no `KASSA_*` settings of the caller's environment.
fn kassa(dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KASSA_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("RUST_LOG", "warn")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `kassa <args>` to its end.
async fn run(dir: &Path, args: &[&str]) -> Output {
    tokio::time::timeout(RUN_LIMIT, kassa(dir, args).output())
        .await
        .unwrap_or_else(|_| panic!("kassa {args:?} did not finish in {RUN_LIMIT:?}"))
        .expect("kassa runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `kassa <args>` and asserts it succeeded; answers its stdout.
async fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args).await;
    assert!(
        out.status.success(),
        "kassa {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs `kassa <args>` and asserts it failed with exit code 1 and `error: …`; answers stderr.
async fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "kassa {args:?} should fail: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("error: "), "{err}");
    err
}

/// Organization `slug`, which must be stored (`what` says why, if not).
async fn org_named(store: &Store, slug: &str, what: &str) -> Organization {
    store
        .orgs()
        .org_by_slug(slug)
        .await
        .expect("read")
        .expect(what)
}

/// The store and master key of the data dir, opened as the binary opens them.
async fn open_store(dir: &Path) -> (Store, MasterKey) {
    let storage = StorageArgs {
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    let config = Config::resolve(&storage, &ServeArgs::default()).expect("config");
    let db = Db::open(&config.database_url, DbOptions::default())
        .await
        .expect("database opens");
    db.migrate().await.expect("migrated");
    let key = MasterKey::load_or_create(dir).expect("master key");
    (Store::new(db), key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_and_api_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    // Administration commands need the database `kassa serve` or `kassa migrate` made.
    ok(dir, &["migrate"]).await;
    let out = ok(dir, &["org", "create", "shop", "--name", "A Shop"]).await;
    assert!(out.contains("shop"), "{out}");
    let err = fails(dir, &["org", "create", "shop", "--name", "Again"]).await;
    assert!(err.contains("already exists"), "{err}");
    let out = run(dir, &["org", "create", "Not_A_Slug", "--name", "x"]).await;
    assert!(!out.status.success() && stderr(&out).contains("slug"));
    let list = ok(dir, &["org", "list"]).await;
    assert!(list.contains("shop") && list.contains("A Shop"), "{list}");
    assert!(!list.contains("Again"), "{list}");

    // The key is printed alone, so `KEY=$(kassa api-key create …)` works.
    let out = run(
        dir,
        &["api-key", "create", "--org", "shop", "--name", "web"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "{printed:?}");
    let raw = lines[0];
    assert!(raw.starts_with("kassa_") && raw.len() > 20, "{raw}");
    assert!(stderr(&out).contains("only"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(raw));

    let (store, master_key) = open_store(dir).await;
    let org = org_named(&store, "shop", "org stored").await;
    let hash = master_key.api_key_hash(raw);
    let owner = store
        .orgs()
        .api_key_by_hash(&hash)
        .await
        .expect("read")
        .expect("the key's hash is stored");
    assert_eq!(owner.org_id, org.id);
    assert!(owner.scopes.is_all(), "no --scope: every scope");

    // Scopes: repeatable, a write including its read; a bad one is named with the valid ones.
    let scoped = ok(
        dir,
        &[
            "api-key",
            "create",
            "--org",
            "shop",
            "--name",
            "books",
            "--scope",
            "invoices:read",
            "--scope",
            "refunds:write",
        ],
    )
    .await;
    let scoped_owner = store
        .orgs()
        .api_key_by_hash(&master_key.api_key_hash(scoped.trim()))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        scoped_owner.scopes.to_string(),
        "invoices:read refunds:write"
    );
    // A usage error, as clap answers them (exit code 2).
    let out = run(
        dir,
        &[
            "api-key",
            "create",
            "--org",
            "shop",
            "--scope",
            "invoices:delete",
        ],
    )
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("invoices:delete") && err.contains("catalog:write"),
        "{err}"
    );

    let prefix = &raw[..kassa::secrets::API_KEY_PREFIX_LEN];
    let list = ok(dir, &["api-key", "list", "--org", "shop"]).await;
    assert!(list.contains(prefix) && list.contains("web"), "{list}");
    assert!(list.contains("SCOPES") && list.contains("all"), "{list}");
    assert!(list.contains("invoices:read,refunds:write"), "{list}");
    assert!(!list.contains(raw) && !list.contains(&hash), "{list}");

    ok(dir, &["api-key", "revoke", "--org", "shop", prefix]).await;
    assert!(store
        .orgs()
        .api_key_by_hash(&hash)
        .await
        .expect("read")
        .is_none());
    let err = fails(dir, &["api-key", "revoke", "--org", "shop", prefix]).await;
    assert!(err.contains(prefix), "{err}");
    fails(dir, &["api-key", "revoke", "--org", "shop", "999"]).await;
    let err = fails(dir, &["api-key", "create", "--org", "nobody"]).await;
    assert!(err.contains("nobody"), "{err}");
}

/// A simulator in this process and the flags that point `terminal connect` at it.
async fn simulator() -> (kaspi_sim::Simulator, Vec<String>) {
    let sim = kaspi_sim::Simulator::new(kaspi_sim::SimConfig::default());
    let base = kaspi_sim::spawn(sim.clone()).await.expect("simulator");
    let flags = vec![
        "--kaspi".to_owned(),
        "live".to_owned(),
        "--kaspi-entrance-url".to_owned(),
        format!("{base}/entrance-pay"),
        "--kaspi-mtoken-url".to_owned(),
        format!("{base}/mtoken"),
        "--kaspi-qrpay-url".to_owned(),
        format!("{base}/qrpay"),
    ];
    (sim, flags)
}

/// Runs `terminal connect` for `shop`, typing the answers `answer` makes from the SMS code the
/// simulator sent, once the CLI got to the SMS question.
async fn connect(
    dir: &Path,
    sim: &kaspi_sim::Simulator,
    flags: &[String],
    answer: impl Fn(&str) -> String,
) -> Output {
    let mut args = vec!["terminal", "connect", "--org", "shop", "--phone", CASHIER];
    args.extend(flags.iter().map(String::as_str));
    let mut child = kassa(dir, &args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("kassa starts");
    let code = tokio::time::timeout(SMS_LIMIT, async {
        loop {
            if let Some(code) = sim.last_sms(CASHIER) {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the simulator sent an SMS code");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(answer(&code).as_bytes())
        .await
        .expect("answers written");
    drop(stdin);
    tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .expect("terminal connect finished in time")
        .expect("kassa ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_connect_logs_the_cashier_in_and_status_shows_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (sim, flags) = simulator().await;
    ok(dir, &["migrate"]).await;
    ok(dir, &["org", "create", "shop", "--name", "Shop"]).await;
    let status = ok(dir, &["terminal", "status"]).await;
    assert!(status.contains("not_connected"), "{status}");

    let out = connect(dir, &sim, &flags, |code| format!("{code}\n")).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out),
        "connected: organization shop, cashier 700***2233\n"
    );
    assert!(stderr(&out).contains("SMS code"), "{}", stderr(&out));

    let (store, _) = open_store(dir).await;
    let org = org_named(&store, "shop", "org").await;
    let terminal = store
        .orgs()
        .terminal_for_org(org.id)
        .await
        .expect("read")
        .expect("terminal stored");
    assert_eq!(terminal.state, TerminalState::Active);
    assert_eq!(terminal.phone, CASHIER);
    let sealed = terminal.session_sealed.expect("a session is stored");
    assert!(
        serde_json::from_slice::<serde_json::Value>(&sealed).is_err(),
        "the session is sealed, not plain JSON"
    );

    for args in [
        &["terminal", "status"][..],
        &["terminal", "status", "--org", "shop"][..],
    ] {
        let status = ok(dir, args).await;
        assert!(
            status.contains("shop") && status.contains("active"),
            "{status}"
        );
        assert!(status.contains("700***2233"), "{status}");
        assert!(!status.contains(CASHIER), "{status}");
    }

    // `list` shows the organization's cashiers; `remove` takes one away, once.
    let list = ok(dir, &["terminal", "list", "--org", "shop"]).await;
    assert!(
        list.contains("700***2233") && list.contains("active"),
        "{list}"
    );
    let refused = fails(
        dir,
        &[
            "terminal",
            "remove",
            "--org",
            "shop",
            "--phone",
            "87009998877",
        ],
    )
    .await;
    assert!(refused.contains("no cashier"), "{refused}");
    let removed = ok(
        dir,
        &["terminal", "remove", "--org", "shop", "--phone", CASHIER],
    )
    .await;
    assert!(removed.contains("removed"), "{removed}");
    let list = ok(dir, &["terminal", "list", "--org", "shop"]).await;
    assert!(list.contains("not_connected"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_wrong_sms_codes_fail_the_login() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (sim, flags) = simulator().await;
    ok(dir, &["migrate"]).await;
    ok(dir, &["org", "create", "shop", "--name", "Shop"]).await;

    let out = connect(dir, &sim, &flags, |code| {
        let wrong: String = code
            .chars()
            .map(|c| {
                c.to_digit(10)
                    .and_then(|d| char::from_digit((d + 1) % 10, 10))
                    .unwrap_or('0')
            })
            .collect();
        format!("{wrong}\n{wrong}\n{wrong}\n")
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("error: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not accept"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("connected"));

    let (store, _) = open_store(dir).await;
    let org = org_named(&store, "shop", "org").await;
    assert!(store
        .orgs()
        .terminal_for_org(org.id)
        .await
        .expect("read")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_connect_without_a_running_server_says_to_start_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    ok(dir, &["migrate"]).await;
    ok(dir, &["org", "create", "shop", "--name", "Shop"]).await;
    // A port nobody listens on any more.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let listen = free.to_string();
    let args = [
        "terminal", "connect", "--org", "shop", "--phone", CASHIER, "--listen", &listen,
    ];
    let err = fails(dir, &args).await;
    assert!(err.contains("kassa serve"), "{err}");
    assert!(
        err.contains(&format!("{listen}/sandbox/kaspi/_control/sms/")),
        "{err}"
    );
}

/// `kassa kaspi-sim --state FILE` running; its base URL.
async fn sim_process(dir: &Path, state: &Path) -> (tokio::process::Child, String) {
    let state = state.to_str().expect("utf-8 path");
    let mut child = kassa(
        dir,
        &["kaspi-sim", "--listen", "127.0.0.1:0", "--state", state],
    )
    .spawn()
    .expect("kassa kaspi-sim starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    let base = tokio::time::timeout(RUN_LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("Kaspi simulator on ") {
                return rest.split(' ').next().expect("address").to_owned();
            }
        }
        panic!("kassa kaspi-sim exited before listening");
    })
    .await
    .expect("listens in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

/// A static QR payment made through the control API; its operation id.
async fn static_payment(http: &reqwest::Client, base: &str, amount: &str) -> u64 {
    let r = http
        .post(format!("{base}/_control/static-qr-payments"))
        .json(&serde_json::json!({"amount": amount, "comment": "kept", "phone": CASHIER}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    body["id"].as_u64().expect("id")
}

async fn operation(http: &reqwest::Client, base: &str, id: u64) -> serde_json::Value {
    let r = http
        .get(format!("{base}/_control/operations/{id}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200, "operation {id} is known");
    r.json().await.expect("json")
}

#[tokio::test]
async fn kaspi_sim_with_a_state_file_keeps_its_operations_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("sim.json");
    // No idle keep-alive connection left open: a graceful stop waits for open connections,
    // and one caught mid-request by the signal kept the stop waiting past the limit (seen
    // once in CI).
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");

    // Stopped as Ctrl-C or a service manager stops it.
    let (child, base) = sim_process(dir.path(), &state).await;
    let first = static_payment(&http, &base, "150.25").await;
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let out = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .expect("stops in time")
        .expect("waited");
    assert!(out.status.success(), "{:?}", out.status);

    // Killed outright once the change is written (shortly after it is made).
    let (mut child, base) = sim_process(dir.path(), &state).await;
    assert_eq!(operation(&http, &base, first).await["amount"], 150.25);
    let second = static_payment(&http, &base, "7").await;
    let saved = |id: u64| {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        text.contains(&format!("\"id\":{id}"))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !saved(second) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saved(second), "saved without a shutdown");
    child.kill().await.expect("killed");

    let (_child, base) = sim_process(dir.path(), &state).await;
    assert_eq!(operation(&http, &base, first).await["amount"], 150.25);
    assert_eq!(operation(&http, &base, second).await["status"], "Processed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&state)
            .expect("state")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// `kassa <args>` in folder `cwd`, with no `--data-dir` and none of the caller's `KASSA_*`
/// settings but `env`, run to its end.
async fn run_in(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KASSA_") {
            cmd.env_remove(name);
        }
    }
    let run = cmd
        .current_dir(cwd)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("kassa {args:?} did not finish in {RUN_LIMIT:?}"))
        .expect("kassa runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_without_a_database_says_where_it_looked_and_creates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let folder = tmp.path();

    // Run in a folder where `kassa serve` never ran: the default data dir.
    let out = run_in(folder, &[], &["org", "list"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: no database at kassa-data/kassa.db"),
        "{err}"
    );
    assert!(err.contains("default data dir ./kassa-data"), "{err}");
    assert!(err.contains(&folder.display().to_string()), "{err}");
    assert!(
        err.contains("run `kassa serve` once in this folder"),
        "{err}"
    );
    assert!(err.contains("--data-dir"), "{err}");
    assert!(!folder.join("kassa-data").exists(), "nothing was created");

    // A data dir given (flag or variable), and a database URL given.
    let elsewhere = folder.join("elsewhere");
    let given = elsewhere.to_str().expect("utf-8");
    let err = fails(&elsewhere, &["api-key", "list", "--org", "demo"]).await;
    assert!(
        err.contains(&format!("no database at {given}/kassa.db")),
        "{err}"
    );
    assert!(err.contains("--data-dir says so"), "{err}");
    let out = run_in(
        folder,
        &[("KASSA_DATA_DIR", given)],
        &["user", "list", "--org", "x"],
    )
    .await;
    assert!(
        stderr(&out).contains("KASSA_DATA_DIR says so"),
        "{}",
        stderr(&out)
    );
    let url = format!("sqlite://{given}/other.db");
    let out = run_in(
        folder,
        &[("KASSA_DATABASE_URL", &url)],
        &["webhook", "list", "--org", "x"],
    )
    .await;
    let err = stderr(&out);
    assert!(
        err.contains(&format!("no database at {given}/other.db")),
        "{err}"
    );
    assert!(err.contains("KASSA_DATABASE_URL says so"), "{err}");
    for args in [
        &["terminal", "status"][..],
        &["kaspi", "app-build", "show"][..],
        &["terminal", "connect", "--org", "x", "--phone", CASHIER][..],
    ] {
        let err = fails(&elsewhere, args).await;
        assert!(err.contains("no database at"), "{args:?}: {err}");
    }
    assert!(!elsewhere.exists(), "nothing was created");

    // `kassa migrate` (like `kassa serve`) creates it; then the commands work.
    ok(&elsewhere, &["migrate"]).await;
    assert!(elsewhere.join("kassa.db").exists());
    let out = run(&elsewhere, &["org", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no organizations yet"),
        "{}",
        stderr(&out)
    );
}

/// `kassa <args> --help`; its stdout.
async fn help(args: &[&str]) -> String {
    let mut args = args.to_vec();
    args.push("--help");
    let out = run_in(Path::new("."), &[], &args).await;
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_shows_the_defaults_and_only_the_options_a_command_uses() {
    let serve = help(&["serve"]).await;
    for shown in [
        "[default: 127.0.0.1:8080]",
        "[default: sandbox]",
        "[default: 60]",
        "[default: 15]",
        "[default: 5s,1m,5m,30m,2h,5h,10h,14h,20h,24h]",
        "[default: 5d]",
        "[default: 1024]",
        "[default: ./kassa-data]",
        "--log-format",
        "[env: KASSA_LOG_FORMAT=]",
        "[default: text]",
    ] {
        assert!(
            serve.contains(shown),
            "serve --help lacks {shown}:\n{serve}"
        );
    }

    // The webhook commands: the two URL checks, wherever the user writes them.
    for args in [&["webhook"][..], &["webhook", "create"][..]] {
        let text = help(args).await;
        assert!(
            text.contains("--webhook-allow-private"),
            "{args:?}:\n{text}"
        );
        assert!(text.contains("--webhook-https-only"), "{args:?}:\n{text}");
        for unused in [
            "--listen",
            "--rate-limit",
            "--http-",
            "--kaspi-",
            "--webhook-timeout",
        ] {
            assert!(!text.contains(unused), "{args:?} shows {unused}:\n{text}");
        }
    }
    let connect = help(&["terminal", "connect"]).await;
    for used in [
        "--listen",
        "--kaspi <MODE>",
        "--kaspi-entrance-url",
        "--data-dir",
    ] {
        assert!(connect.contains(used), "connect lacks {used}:\n{connect}");
    }
    for unused in ["--webhook", "--http-", "--rate-limit"] {
        assert!(
            !connect.contains(unused),
            "connect shows {unused}:\n{connect}"
        );
    }
    for args in [
        &["org", "create"][..],
        &["api-key", "create"][..],
        &["user", "create"][..],
        &["migrate"][..],
    ] {
        let text = help(args).await;
        assert!(text.contains("--data-dir"), "{args:?}:\n{text}");
        for unused in ["--listen", "--webhook", "--http-", "--kaspi-"] {
            assert!(!text.contains(unused), "{args:?} shows {unused}:\n{text}");
        }
    }
    // Commands without a database do not offer one.
    for args in [&["kaspi-sim"][..], &["completions"][..]] {
        let text = help(args).await;
        for unused in ["--data-dir", "--database-url", "--config"] {
            assert!(!text.contains(unused), "{args:?} shows {unused}:\n{text}");
        }
    }
    assert!(help(&["kaspi-sim"])
        .await
        .contains("[default: 127.0.0.1:9000]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_url_checks_are_taken_where_users_write_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    ok(dir, &["migrate"]).await;
    ok(dir, &["org", "create", "shop", "--name", "Shop"]).await;
    let url = "http://127.0.0.1:9/hook";
    let err = fails(dir, &["webhook", "create", "--org", "shop", "--url", url]).await;
    assert!(err.contains("url"), "{err}");
    for args in [
        &[
            "webhook",
            "create",
            "--org",
            "shop",
            "--url",
            url,
            "--webhook-allow-private",
        ][..],
        &[
            "webhook",
            "--webhook-allow-private",
            "create",
            "--org",
            "shop",
            "--url",
            url,
        ][..],
        &[
            "webhook",
            "create",
            "--webhook-allow-private=true",
            "--org",
            "shop",
            "--url",
            url,
        ][..],
    ] {
        let secret = ok(dir, args).await;
        assert!(secret.starts_with("whsec_"), "{args:?}: {secret}");
    }
    let list = ok(dir, &["webhook", "list", "--org", "shop"]).await;
    assert_eq!(list.matches(url).count(), 3, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_shell_completions() {
    let out = run_in(Path::new("."), &[], &["--version"]).await;
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("kassa {}", env!("CARGO_PKG_VERSION"))
    );
    for (shell, mark) in [
        ("bash", "complete -F _kassa"),
        ("zsh", "#compdef kassa"),
        ("fish", "complete -c kassa"),
    ] {
        let out = run_in(Path::new("."), &[], &["completions", shell]).await;
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(mark), "{shell}:\n{script}");
        for command in ["serve", "webhook", "api-key", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let out = run_in(Path::new("."), &[], &["completions", "tcsh"]).await;
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_errors_name_the_address_and_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // A port someone else listens on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let err = fails(dir, &["serve", "--listen", &addr]).await;
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("already in use"), "{err}");
    assert!(err.contains("--listen"), "{err}");
    let err = fails(dir, &["kaspi-sim", "--listen", &addr]).await;
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    drop(taken);

    // A settings file that is not valid, found in the data dir or given.
    let file = dir.join("kassa.toml");
    std::fs::write(&file, "listen = 8080\n").expect("written");
    let err = fails(dir, &["migrate"]).await;
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("not valid"), "{err}");
    std::fs::remove_file(&file).expect("removed");
    let missing = dir.join("nowhere.toml");
    let err = fails(
        dir,
        &["serve", "--config", missing.to_str().expect("utf-8")],
    )
    .await;
    assert!(err.contains(&missing.display().to_string()), "{err}");
}
