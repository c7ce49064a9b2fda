//! The harness itself, end to end: a `--quick` run of the floor against an in-process Kassa on
//! SQLite gives every expected figure, with values that make sense. No timing is asserted:
//! only that things were measured.

use kassa_bench::target::Database;
use kassa_bench::{run, Options};

#[test]
fn quick_floor_on_sqlite_measures_every_figure() {
    let options = Options {
        scenarios: vec!["floor".into()],
        databases: vec![Database::Sqlite],
        quick: true,
        postgres_admin_url: kassa_bench::postgres_db::DEFAULT_POSTGRES_URL.into(),
    };
    let outcome = run(&options).expect("the run completes");
    let report = &outcome.report;
    assert_eq!(outcome.failed, 0, "notes: {:?}", report.notes);

    for label in ["status", "not_found"] {
        for measure in ["rate", "p50", "p99", "p99_9"] {
            let metric = format!("{label}.{measure}");
            let value = report
                .value("floor", "sqlite", &metric)
                .unwrap_or_else(|| panic!("{metric} measured: {}", report.table()));
            assert!(value > 0.0, "{metric} = {value}");
        }
        let errors = report
            .value("floor", "sqlite", &format!("{label}.errors"))
            .expect("errors reported");
        assert_eq!(errors, 0.0, "{}", report.table());
    }
    assert!(report
        .value("floor", "sqlite", "status.of_not_found")
        .is_some());

    let json = report.to_json();
    let list = json.as_array().expect("a list");
    assert_eq!(list.len(), report.figures.len());
    for item in list {
        assert_eq!(item["scenario"], "floor");
        assert_eq!(item["database"], "sqlite");
        assert!(item["metric"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(item["value"].as_f64().is_some());
        assert!(item["unit"].as_str().is_some_and(|u| !u.is_empty()));
    }
    let table = report.table();
    assert!(table.contains("status.rate"), "{table}");
}

#[test]
fn unknown_scenarios_are_refused() {
    let options = Options {
        scenarios: vec!["no-such".into()],
        databases: vec![Database::Sqlite],
        quick: true,
        postgres_admin_url: kassa_bench::postgres_db::DEFAULT_POSTGRES_URL.into(),
    };
    assert!(run(&options).is_err());
}

#[test]
fn quick_depth_and_webhooks_on_sqlite_measure_every_figure() {
    let options = Options {
        scenarios: vec!["depth".into(), "webhooks".into()],
        databases: vec![Database::Sqlite],
        quick: true,
        postgres_admin_url: kassa_bench::postgres_db::DEFAULT_POSTGRES_URL.into(),
    };
    let outcome = run(&options).expect("the run completes");
    let report = &outcome.report;
    assert_eq!(outcome.failed, 0, "notes: {:?}", report.notes);
    let value = |scenario: &str, metric: &str| {
        report
            .value(scenario, "sqlite", metric)
            .unwrap_or_else(|| panic!("{scenario} {metric} measured: {}", report.table()))
    };

    assert_eq!(value("depth", "seed.invoices"), 20_000.0);
    for label in [
        "status",
        "cursor_first",
        "cursor_1k",
        "cursor_100k",
        "cursor_900k",
        "list_pending",
        "list_paid_30d",
        "page_1",
        "page_100",
        "page_10000",
        "page_49000",
    ] {
        assert!(value("depth", &format!("{label}.rate")) > 0.0, "{label}");
        assert!(value("depth", &format!("{label}.p99")) > 0.0, "{label}");
        assert_eq!(value("depth", &format!("{label}.errors")), 0.0, "{label}");
    }
    assert!(value("depth", "list_pending.total") > 0.0);

    // Counts, not timings: every change delivered once.
    let changes = value("webhooks", "changes");
    assert!(changes > 0.0);
    assert_eq!(value("webhooks", "deliveries"), changes);
    assert_eq!(value("webhooks", "duplicates"), 0.0);
    assert_eq!(value("webhooks", "missing"), 0.0);
    assert!(value("webhooks", "delay.p50") > 0.0);
    assert!(value("webhooks", "deliveries.rate") > 0.0);
    let goals: Vec<_> = report.goals.iter().map(|g| g.scenario.as_str()).collect();
    assert!(
        goals.contains(&"depth") && goals.contains(&"webhooks"),
        "{goals:?}"
    );
}
