//! `GET /metrics`: scraped over HTTP before and after real work (an invoice made, paid in the
//! sandbox, its webhook delivered), the series that should move do; the optional bearer
//! token (`--metrics-token`, `KASSA_METRICS_TOKEN`) guards it.
//!
//! The event counters are shared by every gateway of a process (see `kassa::metrics`), and
//! the tests of this file run side by side: they compare scrapes (deltas), never absolute
//! numbers.

mod common;

use std::time::Duration;

use clap::Parser as _;
use common::receiver::Receiver;
use common::{Kassa, Options};
use kaspi_sim::{SimConfig, Simulator};
use kassa::config::{Config, ServeArgs, StorageArgs};
use serde_json::json;

/// One series: its name and labels.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    labels: Vec<(String, String)>,
}

/// A scrape, read: every sample with its value.
#[derive(Debug, Clone)]
struct Scrape {
    samples: Vec<(Series, f64)>,
}

impl Scrape {
    /// Reads the text format: `name{key="value",…} number` lines; `#` lines are skipped.
    fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (
                    name,
                    parse_labels(rest.strip_suffix('}').expect("labels end with }")),
                ),
                None => (series, Vec::new()),
            };
            samples.push((
                Series {
                    name: name.to_owned(),
                    labels,
                },
                value,
            ));
        }
        Scrape { samples }
    }

    /// The sum of the samples named `name` that carry every label of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|(_, v)| v).sum()
    }

    /// Whether some sample named `name` carries every label of `labels`.
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a Series, f64)> + 'a {
        self.samples
            .iter()
            .filter(move |(s, _)| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|(s, v)| (s, *v))
    }

    /// Every value of label `key` on the samples named `name`.
    fn label_values(&self, name: &str, key: &str) -> Vec<String> {
        self.samples
            .iter()
            .filter(|(s, _)| s.name == name)
            .filter_map(|(s, _)| s.labels.iter().find(|(k, _)| k == key))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// `key="value",…` (values may hold `{`, `}`, `,` and escapes).
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("key=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("a closing quote") {
                (_, '\\') => match chars.next().expect("an escaped character").1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim_start_matches(',').to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

/// `GET /metrics` on `addr`, with `token` as a bearer token if given: status and body.
async fn get_metrics(addr: &str, token: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.expect("scrape sent");
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    (status, headers, answer.text().await.expect("body"))
}

/// A scrape of `kassa` without a token, checked to be a whole OpenMetrics answer.
async fn scrape(kassa: &Kassa) -> Scrape {
    let (status, headers, text) = get_metrics(&kassa.addr.to_string(), None).await;
    assert_eq!(status, 200, "{text}");
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    Scrape::parse(&text)
}

/// Scrapes until `done(now)` holds, for at most `limit` (through `common::wait_for`); that
/// scrape.
async fn scrape_until(kassa: &Kassa, limit: Duration, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let found = common::wait_for(limit, || async {
        let now = scrape(kassa).await;
        done(&now).then_some(now)
    })
    .await;
    match found {
        Some(now) => now,
        None => panic!(
            "the metrics did not move in {limit:?}: {:#?}",
            scrape(kassa).await
        ),
    }
}

const PAID: &[(&str, &str)] = &[("to", "paid")];
const DELIVERED: &[(&str, &str)] = &[("outcome", "delivered")];

on_both_databases!(
    work_moves_the_series,
    |test: kassa::db::testing::TestDb| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let kassa = Kassa::start(Options::new(test.url(), dir.path())).await;
        let org = kassa.demo_org().await;
        let key = kassa.api_key(org).await;
        let receiver = Receiver::start().await;
        let endpoint = kassa
            .post(
                &key,
                "/webhooks",
                json!({"url": receiver.url("/hook"), "events": ["*"], "format": "apipay"}),
            )
            .await;
        assert_eq!(endpoint.status, 201, "{:?}", endpoint.json);

        let before = scrape(&kassa).await;
        // The state read at scrape time: the demo cashier works, its budget is there, every job
        // kind and the webhook backlog are shown.
        assert_eq!(
            before.sum("kassa_cashier_session_healthy", &[("org", "demo")]),
            1.0
        );
        assert!(before.sum("kassa_kaspi_budget_calls_left", &[("org", "demo")]) >= 1.0);
        for kind in [
            "poll_invoice",
            "reconcile_invoice",
            "refund",
            "sync_history",
            "bill_subscription",
        ] {
            for name in [
                "kassa_jobs_due",
                "kassa_jobs_running",
                "kassa_jobs_oldest_due_age_seconds",
            ] {
                assert!(before.has(name, &[("kind", kind)]), "{name} {kind}");
            }
        }
        assert!(before.has("kassa_webhook_backlog", &[("state", "due")]));
        assert!(before.has("kassa_webhook_backlog", &[("state", "waiting")]));

        let made = kassa
        .invoice(
            &key,
            json!({"amount": 1500, "phone_number": "87001234567", "external_order_id": "metrics-1"}),
        )
        .await;
        let paid = kassa
            .post(
                &key,
                &format!("/sandbox/invoices/{}/pay", made.id),
                json!({}),
            )
            .await;
        assert_eq!(paid.status, 200, "{:?}", paid.json);
        let missing = kassa.get(&key, "/no-such-thing").await;
        assert_eq!(missing.status, 404);
        receiver.wait_for(1, Duration::from_secs(20)).await;

        let after = scrape_until(&kassa, Duration::from_secs(20), |now| {
            now.sum("kassa_invoice_status_changes_total", PAID)
                > before.sum("kassa_invoice_status_changes_total", PAID)
                && now.sum("kassa_webhook_deliveries_total", DELIVERED)
                    > before.sum("kassa_webhook_deliveries_total", DELIVERED)
        })
        .await;
        let moved = |name: &str, labels: &[(&str, &str)]| {
            let delta = after.sum(name, labels) - before.sum(name, labels);
            assert!(delta >= 1.0, "{name} {labels:?} moved by {delta}");
        };
        // HTTP, by the route's pattern: never the raw path with the invoice's id in it.
        let created = [
            ("route", "/api/v1/invoices"),
            ("method", "POST"),
            ("status", "201"),
        ];
        moved("kassa_http_requests_total", &created);
        moved(
            "kassa_http_requests_total",
            &[
                ("route", "/api/v1/sandbox/invoices/{id}/pay"),
                ("status", "200"),
            ],
        );
        moved(
            "kassa_http_request_duration_seconds_count",
            &[("route", "/api/v1/invoices"), ("method", "POST")],
        );
        moved(
            "kassa_http_requests_total",
            &[("route", "unmatched"), ("status", "404")],
        );
        let routes = after.label_values("kassa_http_requests_total", "route");
        let raw = format!("/{}/", made.id);
        assert!(
            routes.iter().all(|r| !r.contains(&raw)),
            "a raw path among the routes: {routes:?}"
        );
        // Kaspi: the create, timed, after its wait for the cashier's slot.
        moved(
            "kassa_kaspi_calls_total",
            &[("call", "create_invoice"), ("outcome", "ok")],
        );
        moved(
            "kassa_kaspi_call_duration_seconds_count",
            &[("call", "create_invoice")],
        );
        moved(
            "kassa_kaspi_throttle_wait_seconds_count",
            &[("call", "create_invoice")],
        );
        // The status change, the webhook's attempt, the database pool.
        moved("kassa_invoice_status_changes_total", PAID);
        moved("kassa_webhook_deliveries_total", DELIVERED);
        moved("kassa_webhook_attempt_duration_seconds_count", DELIVERED);
        let pool = if test.url().starts_with("sqlite") {
            "sqlite_readers"
        } else {
            "postgres"
        };
        moved("kassa_db_pool_wait_seconds_count", &[("pool", pool)]);
        kassa.stop().await;
    }
);

/// A gateway in this process whose `/metrics` asks for `s3cret`.
fn with_token(serve: &mut ServeArgs) {
    serve.metrics_token = Some("s3cret".parse().expect("token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_the_scrape() {
    let test = kassa::db::testing::TestDb::sqlite().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = Options::new(test.url(), dir.path());
    options.more_serve_args = Some(with_token);
    let kassa = Kassa::start(options).await;
    let addr = kassa.addr.to_string();
    for token in [None, Some("wrong"), Some("S3CRET")] {
        let (status, headers, _) = get_metrics(&addr, token).await;
        assert_eq!(status, 401, "{token:?}");
        assert!(headers.contains_key("www-authenticate"));
    }
    let (status, _, text) = get_metrics(&addr, Some("s3cret")).await;
    assert_eq!(status, 200);
    assert!(text.contains("kassa_http_requests_total"), "{text}");
    // The refusals were counted too, under the route's pattern.
    let counted = Scrape::parse(&text);
    assert!(
        counted.sum(
            "kassa_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ) >= 3.0
    );
    // The rest of the gateway does not ask for the metrics token.
    assert_eq!(kassa.status().await.status, 200);
    kassa.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_process_takes_the_token_from_its_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("kassa.db").display());
    let base = kaspi_sim::spawn(Simulator::new(SimConfig::default()))
        .await
        .expect("simulator");
    let (server, addr) = common::serve_process_with(
        dir.path(),
        &db,
        &base,
        &[("KASSA_METRICS_TOKEN", "from-the-env")],
    )
    .await;
    let (status, _, _) = get_metrics(&addr, None).await;
    assert_eq!(status, 401);
    let status_of = reqwest::get(format!("http://{addr}/api/v1/status"))
        .await
        .expect("status");
    assert_eq!(status_of.status(), 200);
    let (status, _, text) = get_metrics(&addr, Some("from-the-env")).await;
    assert_eq!(status, 200, "{text}");
    let scrape = Scrape::parse(&text);
    // A process of its own: its counters are its own.
    assert_eq!(
        scrape.sum(
            "kassa_http_requests_total",
            &[
                ("route", "/api/v1/status"),
                ("method", "GET"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert_eq!(
        scrape.sum(
            "kassa_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ),
        1.0
    );
    common::terminate(server).await;
}

/// `--metrics-token` as `kassa serve` reads it.
#[derive(clap::Parser)]
struct Serve {
    #[command(flatten)]
    serve: ServeArgs,
}

#[test]
fn the_flag_sets_the_token_and_debug_never_shows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = StorageArgs {
        data_dir: Some(dir.path().to_path_buf()),
        ..StorageArgs::default()
    };
    let resolve = |args: &[&str]| {
        let parsed = Serve::try_parse_from(args).expect("parsed");
        Config::resolve(&storage, &parsed.serve).expect("resolved")
    };
    let config = resolve(&["kassa", "--metrics-token", "s3cret"]);
    assert_eq!(config.metrics_token, Some("s3cret".parse().expect("token")));
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    // Empty (the default) leaves the scrape open.
    assert_eq!(resolve(&["kassa", "--metrics-token="]).metrics_token, None);
    assert_eq!(resolve(&["kassa"]).metrics_token, None);
    assert!(Serve::try_parse_from(["kassa", "--metrics-token", "two words"]).is_err());
}
