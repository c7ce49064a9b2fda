//! Interop with pykaspi 0.1.2 (PyPI), a client nobody here wrote: the simulator is spawned
//! on 127.0.0.1:0 and `tests/interop/pykaspi_interop.py` drives it with the real pykaspi.
//!
//! The Python is the one named by `KASSA_PYKASPI_PYTHON` (a virtualenv's python with
//! `pykaspi==0.1.2` installed). Unset: the test fails under CI (`CI` set) and is skipped,
//! with a clear line, elsewhere.

use std::time::Duration;

use kaspi_sim::{SimConfig, Simulator};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/interop/pykaspi_interop.py"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pykaspi_drives_the_simulator() {
    let Some(python) = std::env::var_os("KASSA_PYKASPI_PYTHON").filter(|p| !p.is_empty()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "pykaspi interop must run in CI: set KASSA_PYKASPI_PYTHON to a python with pykaspi==0.1.2"
        );
        println!(
            "skipped: set KASSA_PYKASPI_PYTHON to a virtualenv python with pykaspi==0.1.2 \
             (python3 -m venv .venv && .venv/bin/pip install pykaspi==0.1.2)"
        );
        return;
    };
    let base = kaspi_sim::spawn(Simulator::new(SimConfig::default()))
        .await
        .expect("simulator starts");
    let run = tokio::process::Command::new(&python)
        .arg(SCRIPT)
        .arg(&base)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the interop script finishes within 3 minutes")
        .unwrap_or_else(|e| panic!("cannot run {python:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "pykaspi interop failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("pykaspi interop: all "), "{stdout}");
}
