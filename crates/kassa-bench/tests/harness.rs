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
fn unknown_scenarios_are_refused_and_unimplemented_ones_are_said() {
    let options = Options {
        scenarios: vec!["no-such".into()],
        databases: vec![Database::Sqlite],
        quick: true,
        postgres_admin_url: kassa_bench::postgres_db::DEFAULT_POSTGRES_URL.into(),
    };
    assert!(run(&options).is_err());

    let options = Options {
        scenarios: vec!["webhooks".into()],
        ..options
    };
    let outcome = run(&options).expect("the run completes");
    assert!(outcome.report.figures.is_empty());
    assert!(
        outcome
            .report
            .notes
            .iter()
            .any(|n| n.contains("webhooks") && n.contains("not yet implemented")),
        "{:?}",
        outcome.report.notes
    );
}
