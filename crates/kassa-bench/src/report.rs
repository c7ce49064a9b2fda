//! What a run found: figures (the JSON output, one `{"scenario","database","metric","value",
//! "unit"}` object each), goals from issue 6 with whether this run met them, and notes
//! (skipped parts, failed requests). Printed as one table at the end of a run.

use std::fmt::Write as _;

use serde::Serialize;

/// The `database` of a figure that does not depend on one (the binary's size).
pub const NO_DATABASE: &str = "none";

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub scenario: String,
    /// `sqlite`, `postgres` or [`NO_DATABASE`].
    pub database: String,
    /// `<what>.<measure>`, e.g. `by_id.p99`.
    pub metric: String,
    pub value: f64,
    /// `req/s`, `ms`, `%`, `MiB`, `cores`, `requests`.
    pub unit: String,
}

/// A goal of the issue and this run's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub scenario: String,
    pub database: String,
    /// What is compared, e.g. `create rate ≥ 3000 req/s`.
    pub goal: String,
    /// The measured value, as shown.
    pub measured: String,
    pub met: bool,
}

/// Everything a run found, in the order found.
#[derive(Debug, Default)]
pub struct Report {
    pub figures: Vec<Figure>,
    pub goals: Vec<Goal>,
    /// Lines for the reader: what was skipped, what failed.
    pub notes: Vec<String>,
}

impl Report {
    pub fn figure(&mut self, scenario: &str, database: &str, metric: &str, value: f64, unit: &str) {
        self.figures.push(Figure {
            scenario: scenario.to_owned(),
            database: database.to_owned(),
            metric: metric.to_owned(),
            value,
            unit: unit.to_owned(),
        });
    }

    pub fn goal(
        &mut self,
        scenario: &str,
        database: &str,
        goal: String,
        measured: String,
        met: bool,
    ) {
        self.goals.push(Goal {
            scenario: scenario.to_owned(),
            database: database.to_owned(),
            goal,
            measured,
            met,
        });
    }

    /// Adds a note and shows it at once on stderr, so a long run tells as it goes.
    pub fn note(&mut self, line: String) {
        eprintln!("  note: {line}");
        self.notes.push(line);
    }

    /// The value of one figure, if measured.
    pub fn value(&self, scenario: &str, database: &str, metric: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.scenario == scenario && f.database == database && f.metric == metric)
            .map(|f| f.value)
    }

    /// The figures as the JSON document written by `--json`: a list of objects, values
    /// rounded to three decimals.
    pub fn to_json(&self) -> serde_json::Value {
        let rounded: Vec<Figure> = self
            .figures
            .iter()
            .map(|f| Figure {
                value: (f.value * 1000.0).round() / 1000.0,
                ..f.clone()
            })
            .collect();
        serde_json::json!(rounded)
    }

    /// The table printed at the end: figures, then goals, then notes.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let headers = ["scenario", "database", "metric", "value", "unit"];
        let rows: Vec<[String; 5]> = self
            .figures
            .iter()
            .map(|f| {
                [
                    f.scenario.clone(),
                    f.database.clone(),
                    f.metric.clone(),
                    format_value(f.value, &f.unit),
                    f.unit.clone(),
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |out: &mut String, cells: [&str; 5]| {
            let _ = writeln!(
                out,
                "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
            );
        };
        line(&mut out, headers);
        let mut previous: Option<(&str, &str)> = None;
        for (row, figure) in rows.iter().zip(&self.figures) {
            let group = (figure.scenario.as_str(), figure.database.as_str());
            if previous.is_some_and(|p| p != group) {
                out.push('\n');
            }
            previous = Some(group);
            line(&mut out, [&row[0], &row[1], &row[2], &row[3], &row[4]]);
        }
        if !self.goals.is_empty() {
            out.push_str("\nGoals (issue 6)\n");
            let width = self
                .goals
                .iter()
                .map(|g| g.goal.chars().count())
                .max()
                .unwrap_or(0);
            for g in &self.goals {
                let _ = writeln!(
                    out,
                    "  {:<9} {:<9} {:<width$}  measured {:<18} {}",
                    g.scenario,
                    g.database,
                    g.goal,
                    g.measured,
                    if g.met { "met" } else { "NOT MET" },
                );
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes\n");
            for n in &self.notes {
                let _ = writeln!(out, "  - {n}");
            }
        }
        out
    }
}

/// A value as the table shows it: rates and counts whole with thousands separated, times
/// with two decimals, shares of a core with two.
pub fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "req/s" | "requests" | "invoices" | "invoices/s" | "deliveries" | "deliveries/s"
        | "changes/s" | "events/s" => group_thousands(value.round()),
        "%" => format!("{value:.0}"),
        "MiB" => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

fn group_thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_a_list_of_five_keyed_objects() {
        let mut report = Report::default();
        report.figure("floor", "sqlite", "status.rate", 12345.67891, "req/s");
        report.figure("footprint", NO_DATABASE, "binary_size", 21.5, "MiB");
        let json = report.to_json();
        let list = json.as_array().expect("a list");
        assert_eq!(list.len(), 2);
        for item in list {
            let object = item.as_object().expect("an object");
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["database", "metric", "scenario", "unit", "value"]);
        }
        assert_eq!(list[0]["scenario"], "floor");
        assert_eq!(list[0]["database"], "sqlite");
        assert_eq!(list[0]["metric"], "status.rate");
        assert_eq!(list[0]["value"], 12345.679);
        assert_eq!(list[0]["unit"], "req/s");
        assert_eq!(list[1]["database"], "none");
    }

    #[test]
    fn table_shows_figures_goals_and_notes() {
        let mut report = Report::default();
        report.figure("create", "sqlite", "create.rate", 2512.4, "req/s");
        report.figure("create", "sqlite", "create.p99", 41.234, "ms");
        report.goal(
            "create",
            "sqlite",
            "rate ≥ 3,000 req/s".into(),
            "2,512 req/s".into(),
            false,
        );
        report.notes.push("PostgreSQL skipped".into());
        let table = report.table();
        assert!(table.contains("2,512"), "{table}");
        assert!(table.contains("41.23"), "{table}");
        assert!(table.contains("NOT MET"), "{table}");
        assert!(table.contains("PostgreSQL skipped"), "{table}");
    }

    #[test]
    fn values_are_formatted_by_unit() {
        assert_eq!(format_value(1234567.4, "req/s"), "1,234,567");
        assert_eq!(format_value(999.0, "req/s"), "999");
        assert_eq!(format_value(0.0, "requests"), "0");
        assert_eq!(format_value(1.2345, "ms"), "1.23");
        assert_eq!(format_value(41.4, "%"), "41");
    }
}
