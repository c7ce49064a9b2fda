//! What an operator meets: the data dir lock (one `kassa serve` per data dir, admin commands
//! beside it, a kill -9 frees it) and owner-only files, with the real binary as processes;
//! API key revocation and the per-key rate limit across processes on one database.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use kaspi_sim::{SimConfig, Simulator};

/// `kassa <args>` on `dir` and `database_url` against the simulator at `base`, as
/// `common::serve_process` starts it, run to its end.
async fn run_kassa(dir: &Path, database_url: &str, base: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"));
    for (name, _) in std::env::vars() {
        if name.starts_with("KASSA_") {
            command.env_remove(name);
        }
    }
    let run = command
        .args(args)
        .env("KASSA_DATA_DIR", dir)
        .env("KASSA_DATABASE_URL", database_url)
        .env("KASSA_KASPI", "live")
        .env("KASSA_LISTEN", "127.0.0.1:0")
        .env("KASSA_KASPI_ENTRANCE_URL", format!("{base}/entrance-pay"))
        .env("KASSA_KASPI_MTOKEN_URL", format!("{base}/mtoken"))
        .env("KASSA_KASPI_QRPAY_URL", format!("{base}/qrpay"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("kassa ends in time")
        .expect("kassa runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("kassa.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_per_data_dir_with_admin_commands_beside_it_and_kill_9_frees_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let db = sqlite_url(dir);
    let base = kaspi_sim::spawn(Simulator::new(SimConfig::default()))
        .await
        .expect("simulator");
    let (mut first, addr) = common::serve_process(dir, &db, &base).await;
    let pid = first.id().expect("running");

    let second = run_kassa(dir, &db, &base, &["serve"]).await;
    assert_eq!(second.status.code(), Some(1), "the second server refuses");
    let err = text(&second.stderr);
    assert!(err.contains("in use by another `kassa serve`"), "{err}");
    assert!(
        err.contains(&format!("pid {pid}")),
        "names the holder: {err}"
    );
    assert!(err.contains(&format!("listening on {addr}")), "{err}");
    assert!(err.contains("since 20"), "{err}");

    // Administration works beside the running server, and the server still answers.
    let org = run_kassa(
        dir,
        &db,
        &base,
        &["org", "create", "shop", "--name", "Shop"],
    )
    .await;
    assert!(org.status.success(), "{}", text(&org.stderr));
    let key = run_kassa(dir, &db, &base, &["api-key", "create", "--org", "shop"]).await;
    assert!(key.status.success(), "{}", text(&key.stderr));
    let key = text(&key.stdout).trim().to_owned();
    let listed = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/invoices"))
        .header("X-API-Key", &key)
        .send()
        .await
        .expect("sent");
    assert_eq!(listed.status(), 200, "the first server serves the new key");

    // kill -9 leaves the lock file behind, but the OS lock goes with the process.
    first.kill().await.expect("killed");
    assert!(dir.join(datadir_lock_file()).exists());
    let (_again, again_addr) = common::serve_process(dir, &db, &base).await;
    let lock = std::fs::read_to_string(dir.join(datadir_lock_file())).expect("lock file");
    assert!(lock.contains(&format!("listen={again_addr}")), "{lock}");
}

fn datadir_lock_file() -> &'static str {
    kassa::datadir::LOCK_FILE
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The names in `dir`, after asserting that `dir` is 0700 and every file in it 0600.
#[cfg(unix)]
fn assert_owner_only(dir: &Path) -> Vec<String> {
    assert_eq!(mode(dir), 0o700, "the data dir");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        names.push(
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
        );
    }
    names.sort();
    names
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_its_files_are_owner_only_even_when_they_were_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let db = sqlite_url(&dir);
    let base = kaspi_sim::spawn(Simulator::new(SimConfig::default()))
        .await
        .expect("simulator");

    // A first command on a fresh dir makes it 0700 and the database 0600 (administration
    // commands need the database `kassa migrate` or `kassa serve` made).
    let migrated = run_kassa(&dir, &db, &base, &["migrate"]).await;
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let org = run_kassa(
        &dir,
        &db,
        &base,
        &["org", "create", "shop", "--name", "Shop"],
    )
    .await;
    assert!(org.status.success(), "{}", text(&org.stderr));
    assert_eq!(assert_owner_only(&dir), ["kassa.db"]);

    // A server killed with -9 leaves its WAL files, which SQLite made with the database's mode.
    let (mut server, _) = common::serve_process(&dir, &db, &base).await;
    server.kill().await.expect("killed");
    let names = assert_owner_only(&dir);
    for name in ["kassa.db-shm", "kassa.db-wal", "kassa.lock", "master.key"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }

    // As an older Kassa left them: the dir 0755, every file 0644. A start fixes them all.
    set_mode(&dir, 0o755);
    for name in &names {
        set_mode(&dir.join(name), 0o644);
    }
    let (_server, addr) = common::serve_process(&dir, &db, &base).await;
    let status = reqwest::get(format!("http://{addr}/api/v1/status"))
        .await
        .expect("status");
    assert_eq!(status.status(), 200);
    let after = assert_owner_only(&dir);
    assert!(after.len() >= names.len(), "{after:?}");
}

/// The id of the API key `raw` of `kassa`.
async fn key_id(kassa: &common::Kassa, raw: &str) -> i64 {
    let hash = kassa.state.master_key.api_key_hash(raw);
    kassa
        .store()
        .orgs()
        .api_key_by_hash(&hash)
        .await
        .expect("read")
        .expect("key stored")
        .key_id
}

on_both_databases!(
    a_revoked_key_is_refused_at_once_here_and_within_half_a_second_elsewhere,
    |test: kassa::db::testing::TestDb| async move {
        let tmp = tempfile::tempdir().expect("tempdir");
        let kassa =
            common::Kassa::start(common::Options::new(test.url(), tmp.path()).stepped()).await;
        let org = kassa.demo_org().await;
        let (here, elsewhere, kept) = (
            kassa.api_key(org).await,
            kassa.api_key(org).await,
            kassa.api_key(org).await,
        );
        for key in [&here, &elsewhere, &kept] {
            // Twice: the second answer comes from the lookup cache.
            assert_eq!(kassa.get(key, "/invoices").await.status, 200);
            assert_eq!(kassa.get(key, "/invoices").await.status, 200);
        }

        // Revoked through this process's own store: refused on the very next request.
        let id = key_id(&kassa, &here).await;
        let revoked = kassa
            .store()
            .orgs()
            .revoke_api_key(org, &id.to_string())
            .await
            .expect("revoked");
        assert_eq!(revoked, 1);
        assert_eq!(kassa.get(&here, "/invoices").await.status, 401);
        assert_eq!(
            kassa
                .x(reqwest::Method::GET, &here, "/payments", None)
                .await
                .status,
            401
        );

        // Revoked by `kassa api-key revoke`, another process: refused within half a second.
        let id = key_id(&kassa, &elsewhere).await;
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kassa"))
            .env_remove("KASSA_MASTER_KEY")
            .env("RUST_LOG", "warn")
            .arg("--data-dir")
            .arg(tmp.path())
            .args(["--database-url", test.url()])
            .args(["api-key", "revoke", "--org", "demo", &id.to_string()])
            .output()
            .await
            .expect("kassa runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        // Another process revoked it: this one trusts what it read of revocations for at most
        // REVOCATION_MAX_AGE of its clock, so once the clock has moved that far, it refuses.
        kassa.advance(kassa::api::auth::REVOCATION_MAX_AGE).await;
        assert_eq!(kassa.get(&elsewhere, "/invoices").await.status, 401);
        // Once refused, always refused; the other key still works.
        assert_eq!(kassa.get(&elsewhere, "/invoices").await.status, 401);
        assert_eq!(kassa.get(&kept, "/invoices").await.status, 200);
        kassa.stop().await;
    }
);

on_both_databases!(
    two_gateways_on_one_database_share_each_keys_rate_limit,
    |test: kassa::db::testing::TestDb| async move {
        let base = kaspi_sim::spawn(Simulator::new(SimConfig::default()))
            .await
            .expect("simulator");
        // The limit counts per minute of the clock: both gateways stand at the start of one.
        let clock = common::clock_at_minute_start();
        let options = |dir: &Path| {
            let mut options = common::Options::new(test.url(), dir);
            options.live_kaspi = Some(base.clone());
            options.rate_limit_per_minute = 40;
            options.clock = Some(clock.clone());
            options
        };
        let dir_a = tempfile::tempdir().expect("tempdir");
        let a = common::Kassa::start(options(dir_a.path())).await;
        let dir_b = common::sibling_data_dir(dir_a.path());
        let b = common::Kassa::start(options(dir_b.path())).await;
        let org = a
            .store()
            .orgs()
            .create_org("shop", "Shop")
            .await
            .expect("org")
            .id;
        let key = a.api_key(org).await;

        let (mut admitted, mut refused) = (0, 0);
        for i in 0..90 {
            let gateway = if i % 2 == 0 { &a } else { &b };
            let answer = gateway.get(&key, "/invoices").await;
            assert_eq!(answer.header("X-RateLimit-Limit"), Some("40"));
            match answer.status {
                200 => admitted += 1,
                429 => {
                    refused += 1;
                    assert_eq!(answer.header("X-RateLimit-Remaining"), Some("0"));
                    let retry: u64 = answer
                        .header("Retry-After")
                        .expect("Retry-After")
                        .parse()
                        .expect("seconds");
                    assert!((1..=60).contains(&retry), "{retry}");
                }
                other => panic!("unexpected {other}: {:?}", answer.json),
            }
        }
        // Alone each would admit 40 (80 in all); together they admit the key's 40.
        assert_eq!((admitted, refused), (40, 50));
        // The next minute is a new window, on both.
        clock.advance(Duration::from_secs(60));
        assert_eq!(a.get(&key, "/invoices").await.status, 200);
        assert_eq!(b.get(&key, "/invoices").await.status, 200);
        a.stop().await;
        b.stop().await;
    }
);
