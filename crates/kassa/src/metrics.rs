//! `GET /metrics`: what the gateway is doing, in the Prometheus (OpenMetrics) text format.
//!
//! **Why `prometheus-client`.** It is a plain library: metric types, a registry we build
//! ourselves and a text encoder, with no global recorder, no HTTP listener and no push
//! gateway of its own (the `metrics` facade needs a process-wide recorder installed once, and
//! its exporter brings a listener we would switch off). The scrape is served by our own router,
//! behind the optional bearer token (`--metrics-token`).
//!
//! **What is counted where, and by whom.** Two kinds of series:
//!
//! - *Events* (requests, Kaspi calls, throttle waits, webhook attempts, status changes, job
//!   runs, database pool waits) are counted where they happen, deep in the gateway, the store
//!   and the database pool. Those layers are built by many callers (tests, the CLI, the
//!   benchmark) that know nothing of an HTTP server, so the event families live in one
//!   process-wide [`Events`] value and the code that records them calls the small functions
//!   below (`kaspi_call`, `invoice_status_changed`, …). A process normally runs one gateway;
//!   where tests start several in one process, they share these counters, which only grow, so
//!   tests compare a scrape before and after the work (deltas), never absolute numbers.
//! - *State* (cashier sessions, calls left in each cashier's budget, jobs due and running,
//!   the webhook backlog) is read from the gateway's own store at scrape time, so every
//!   gateway answers with its own.
//!
//! Each scrape builds a fresh [`Registry`] holding the shared event families (clones share
//! their values) and that gateway's state gauges, and encodes it.
//!
//! Series (counters end in `_total`, durations are in seconds):
//!
//! | name | labels | what |
//! | --- | --- | --- |
//! | `kassa_http_requests_total` | `route`, `method`, `status` | requests answered; `route` is the route's pattern (`/api/v1/invoices/{id}`), never the raw path, `unmatched` when none matched |
//! | `kassa_http_request_duration_seconds` | `route`, `method` | time to the answer's head |
//! | `kassa_kaspi_calls_total` | `call`, `outcome` | Kaspi calls: `ok`, or the kind of error (`transport_timeout`, `throttled`, `refused`, `session`, …) |
//! | `kassa_kaspi_call_duration_seconds` | `call` | one call's round trip |
//! | `kassa_kaspi_throttle_wait_seconds` | `call` | time a call waited for its cashier's next slot |
//! | `kassa_kaspi_spare_slot_missed_total` | `call` | polls skipped because the cashier had no spare slot |
//! | `kassa_kaspi_budget_calls_left` | `org` | calls the organization's working cashiers could make at once, now (summed) |
//! | `kassa_cashier_session_healthy` | `org` | 1 while one of the organization's cashiers has a working session, 0 when a login is needed |
//! | `kassa_cashiers_usable` | `org` | the organization's cashiers whose session works |
//! | `kassa_jobs_due`, `kassa_jobs_running`, `kassa_jobs_oldest_due_age_seconds` | `kind` | jobs waiting (due, not leased), leased, and how late the oldest waiting one is |
//! | `kassa_job_runs_total` | `kind`, `outcome` | jobs handled (`ok`, `error`) |
//! | `kassa_job_duration_seconds` | `kind` | one job's run |
//! | `kassa_webhook_deliveries_total` | `outcome` | attempts' outcomes: `delivered`, `retry`, `dead` (given up) |
//! | `kassa_webhook_attempt_duration_seconds` | `outcome` | one attempt's request |
//! | `kassa_webhook_backlog` | `state` | deliveries not yet delivered: `due` now, or `waiting` for a retry |
//! | `kassa_invoice_status_changes_total` | `to` | invoice status changes, counted once committed |
//! | `kassa_refund_status_changes_total` | `to` | refund status changes, counted once committed |
//! | `kassa_db_pool_wait_seconds` | `pool` | time waiting for a pooled database connection (`sqlite_readers`, `postgres`) |

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use sha2::{Digest as _, Sha256};

use crate::app::AppState;
use crate::domain::{InvoiceStatus, JobKind, RefundStatus};

/// The content type of the answer (Prometheus asks for OpenMetrics and reads it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The bearer token `GET /metrics` asks for when set (`--metrics-token`,
/// `KASSA_METRICS_TOKEN`). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// Whether this is the empty token, which leaves `GET /metrics` open (the flag's default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`.
    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
        else {
            return false;
        };
        // Digests compared: the time taken says nothing about how much of the token matched.
        Sha256::digest(given.as_bytes()) == Sha256::digest(self.0.as_bytes())
    }
}

impl FromStr for MetricsToken {
    type Err = String;

    /// Spaces around are dropped; empty is allowed (no token: see [`MetricsToken::is_empty`]).
    fn from_str(text: &str) -> Result<MetricsToken, String> {
        let token = text.trim();
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the metrics token must be visible ASCII characters, no spaces".into());
        }
        Ok(MetricsToken(token.to_owned()))
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(…)")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallOutcomeLabels {
    call: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindOutcomeLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToLabels {
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrgLabels {
    org: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets from 1 ms to about 24 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 12))
}

/// Buckets from 0.1 ms to about 2.4 s: waits that are short unless something is wrong.
fn short_wait() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 12))
}

/// The event families of this process (see the module's doc).
struct Events {
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    kaspi_calls: Family<CallOutcomeLabels, Counter>,
    kaspi_duration: Histograms<CallLabels>,
    kaspi_throttle_wait: Histograms<CallLabels>,
    kaspi_spare_missed: Family<CallLabels, Counter>,
    job_runs: Family<KindOutcomeLabels, Counter>,
    job_duration: Histograms<KindLabels>,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    webhook_duration: Histograms<OutcomeLabels>,
    invoice_changes: Family<ToLabels, Counter>,
    refund_changes: Family<ToLabels, Counter>,
    db_pool_wait: Histograms<PoolLabels>,
}

static EVENTS: LazyLock<Events> = LazyLock::new(|| Events {
    http_requests: Family::default(),
    http_duration: Family::new_with_constructor(latency),
    kaspi_calls: Family::default(),
    kaspi_duration: Family::new_with_constructor(latency),
    kaspi_throttle_wait: Family::new_with_constructor(short_wait),
    kaspi_spare_missed: Family::default(),
    job_runs: Family::default(),
    job_duration: Family::new_with_constructor(latency),
    webhook_deliveries: Family::default(),
    webhook_duration: Family::new_with_constructor(latency),
    invoice_changes: Family::default(),
    refund_changes: Family::default(),
    db_pool_wait: Family::new_with_constructor(short_wait),
});

impl Events {
    /// Registers (clones of) every family in `registry`.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "kassa_http_requests",
            "HTTP requests answered, by route pattern, method and status",
            self.http_requests.clone(),
        );
        registry.register_with_unit(
            "kassa_http_request_duration",
            "Time from a request to its answer's head, by route pattern and method",
            Unit::Seconds,
            self.http_duration.clone(),
        );
        registry.register(
            "kassa_kaspi_calls",
            "Kaspi calls made, by call and outcome (ok or the kind of error)",
            self.kaspi_calls.clone(),
        );
        registry.register_with_unit(
            "kassa_kaspi_call_duration",
            "Round trip of one Kaspi call, by call",
            Unit::Seconds,
            self.kaspi_duration.clone(),
        );
        registry.register_with_unit(
            "kassa_kaspi_throttle_wait",
            "Time a Kaspi call waited for its cashier's next call slot, by call",
            Unit::Seconds,
            self.kaspi_throttle_wait.clone(),
        );
        registry.register(
            "kassa_kaspi_spare_slot_missed",
            "Kaspi calls not made because the cashier had no spare call slot (tried later)",
            self.kaspi_spare_missed.clone(),
        );
        registry.register(
            "kassa_job_runs",
            "Background jobs handled, by kind and outcome",
            self.job_runs.clone(),
        );
        registry.register_with_unit(
            "kassa_job_duration",
            "Time one background job took, by kind",
            Unit::Seconds,
            self.job_duration.clone(),
        );
        registry.register(
            "kassa_webhook_deliveries",
            "Webhook delivery attempts, by outcome: delivered, retry (scheduled again) or dead (given up)",
            self.webhook_deliveries.clone(),
        );
        registry.register_with_unit(
            "kassa_webhook_attempt_duration",
            "Time one webhook attempt's request took, by outcome",
            Unit::Seconds,
            self.webhook_duration.clone(),
        );
        registry.register(
            "kassa_invoice_status_changes",
            "Invoice status changes committed, by new status",
            self.invoice_changes.clone(),
        );
        registry.register(
            "kassa_refund_status_changes",
            "Refund status changes committed, by new status",
            self.refund_changes.clone(),
        );
        registry.register_with_unit(
            "kassa_db_pool_wait",
            "Time waiting for a pooled database connection, by pool",
            Unit::Seconds,
            self.db_pool_wait.clone(),
        );
    }
}

/// The method as a label: the standard ones by name, anything else `other` (a client must not
/// be able to grow the series).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware of the whole router: counts and times every request by its route's pattern
/// (never the path itself: paths carry ids and one-time tokens).
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        // A nested router's fallback matches a private catch-all of axum's.
        .filter(|route| !route.contains("__private__axum"))
        .unwrap_or("unmatched")
        .to_owned();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let events = &*EVENTS;
    events
        .http_requests
        .get_or_create(&HttpLabels {
            route: route.clone(),
            method,
            status: response.status().as_u16(),
        })
        .inc();
    events
        .http_duration
        .get_or_create(&RouteLabels { route, method })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The outcome label of a Kaspi call's answer.
fn kaspi_outcome(error: Option<&kaspi::Error>) -> &'static str {
    use kaspi::Error as K;
    match error {
        None => "ok",
        Some(K::Transport { kind, .. }) => match kind {
            kaspi::TransportKind::Timeout => "transport_timeout",
            kaspi::TransportKind::Refused => "transport_refused",
            kaspi::TransportKind::Reset => "transport_reset",
            kaspi::TransportKind::Other => "transport_other",
        },
        Some(K::OutcomeUnknown { .. }) => "outcome_unknown",
        Some(K::Session { .. } | K::ReauthRequired(_)) => "session",
        Some(K::SessionEvicted { .. }) => "session_evicted",
        Some(K::AppBuildOutdated { .. }) => "app_build_outdated",
        Some(K::Kaspi { .. }) => "refused",
        Some(K::Throttled { .. }) => "throttled",
        Some(K::Http { .. }) => "http_error",
        Some(K::Decode(_)) => "decode_error",
        Some(K::Login(_)) => "login",
    }
}

/// Runs one Kaspi call `call` (named `what`), counting it by outcome and timing it.
pub(crate) async fn kaspi_call<T>(
    what: &'static str,
    call: impl std::future::Future<Output = Result<T, kaspi::Error>>,
) -> Result<T, kaspi::Error> {
    let started = Instant::now();
    let answer = call.await;
    let events = &*EVENTS;
    events
        .kaspi_calls
        .get_or_create(&CallOutcomeLabels {
            call: what,
            outcome: kaspi_outcome(answer.as_ref().err()),
        })
        .inc();
    events
        .kaspi_duration
        .get_or_create(&CallLabels { call: what })
        .observe(started.elapsed().as_secs_f64());
    answer
}

/// A Kaspi call `what` waited `waited` for its cashier's call slot (zero included).
pub(crate) fn kaspi_throttle_wait(what: &'static str, waited: Duration) {
    EVENTS
        .kaspi_throttle_wait
        .get_or_create(&CallLabels { call: what })
        .observe(waited.as_secs_f64());
}

/// A Kaspi call `what` was not made: no spare slot.
pub(crate) fn kaspi_spare_missed(what: &'static str) {
    EVENTS
        .kaspi_spare_missed
        .get_or_create(&CallLabels { call: what })
        .inc();
}

/// A background job of `kind` ran for `took`; `ok` when it did not fail.
pub(crate) fn job_ran(kind: JobKind, ok: bool, took: Duration) {
    let kind = kind.as_str();
    EVENTS
        .job_runs
        .get_or_create(&KindOutcomeLabels {
            kind,
            outcome: if ok { "ok" } else { "error" },
        })
        .inc();
    EVENTS
        .job_duration
        .get_or_create(&KindLabels { kind })
        .observe(took.as_secs_f64());
}

/// A webhook delivery's attempt ended with `outcome` (`delivered`, `retry`, `dead`); its
/// request took `took` (`None`: given up without a request).
pub(crate) fn webhook_attempt(outcome: &'static str, took: Option<Duration>) {
    EVENTS
        .webhook_deliveries
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
    if let Some(took) = took {
        EVENTS
            .webhook_duration
            .get_or_create(&OutcomeLabels { outcome })
            .observe(took.as_secs_f64());
    }
}

/// An invoice moved to `to` (committed).
pub(crate) fn invoice_status_changed(to: InvoiceStatus) {
    EVENTS
        .invoice_changes
        .get_or_create(&ToLabels { to: to.as_str() })
        .inc();
}

/// A refund moved to `to` (committed).
pub(crate) fn refund_status_changed(to: RefundStatus) {
    EVENTS
        .refund_changes
        .get_or_create(&ToLabels { to: to.as_str() })
        .inc();
}

/// The histogram of waits for a connection of pool `pool`, to keep and observe into.
pub(crate) fn db_pool_wait(pool: &'static str) -> Histogram {
    EVENTS
        .db_pool_wait
        .get_or_create_owned(&PoolLabels { pool })
}

/// `GET /metrics`: every series, as the text format says. With a token set, only for
/// `Authorization: Bearer <token>` (401 otherwise).
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.metrics_token {
        if !token.allows(&headers) {
            let mut refused = (
                StatusCode::UNAUTHORIZED,
                "a bearer token is needed: Authorization: Bearer <the metrics token>\n",
            )
                .into_response();
            refused.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kassa metrics\""),
            );
            return refused;
        }
    }
    let text = render(&state).await;
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        text,
    )
        .into_response()
}

/// The text of a scrape of `state`'s gateway: the process's events and this gateway's state,
/// read from its store now. A part that cannot be read is left out (and logged).
pub async fn render(state: &AppState) -> String {
    let mut registry = Registry::default();
    EVENTS.register(&mut registry);

    let healthy: Family<OrgLabels, Gauge> = Family::default();
    let usable: Family<OrgLabels, Gauge> = Family::default();
    let calls_left: Family<OrgLabels, Gauge> = Family::default();
    match state.gateway.health().await {
        Ok(health) => {
            // Per organization: its working cashiers, and their calls left summed.
            let mut orgs: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
            for h in &health {
                let (working, left) = orgs.entry(h.org_id).or_default();
                if h.healthy {
                    *working += 1;
                    *left += i64::from(state.gateway.terminals().calls_left(h.terminal_id));
                }
            }
            for (org_id, (working, left)) in orgs {
                let org = match state.gateway.org_slug(org_id).await {
                    Ok(slug) => slug.to_string(),
                    Err(_) => org_id.to_string(),
                };
                let labels = OrgLabels { org };
                healthy.get_or_create(&labels).set(i64::from(working > 0));
                usable.get_or_create(&labels).set(working);
                calls_left.get_or_create(&labels).set(left);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the cashier sessions"),
    }
    registry.register(
        "kassa_cashier_session_healthy",
        "1 while one of the organization's Kaspi cashiers has a working session, 0 when none has",
        healthy,
    );
    registry.register(
        "kassa_cashiers_usable",
        "The organization's Kaspi cashiers whose session works",
        usable,
    );
    registry.register(
        "kassa_kaspi_budget_calls_left",
        "Kaspi calls the organization's cashiers could make at once now, within Kassa's own budget (summed over its working cashiers)",
        calls_left,
    );

    let now = state.store.now_ms();
    let due: Family<KindLabels, Gauge> = Family::default();
    let running: Family<KindLabels, Gauge> = Family::default();
    let oldest: Family<KindLabels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
    match state.store.jobs().job_gauges(now).await {
        Ok(gauges) => {
            for &kind in JobKind::ALL {
                let labels = KindLabels {
                    kind: kind.as_str(),
                };
                let found = gauges.iter().find(|g| g.kind == kind);
                due.get_or_create(&labels).set(found.map_or(0, |g| g.due));
                running
                    .get_or_create(&labels)
                    .set(found.map_or(0, |g| g.running));
                let age_ms = found
                    .and_then(|g| g.oldest_due_at)
                    .map_or(0, |at| now.saturating_sub(at).max(0));
                oldest.get_or_create(&labels).set(age_ms as f64 / 1000.0);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the jobs"),
    }
    registry.register(
        "kassa_jobs_due",
        "Background jobs due now and not taken by a worker, by kind",
        due,
    );
    registry.register(
        "kassa_jobs_running",
        "Background jobs leased by a worker now, by kind",
        running,
    );
    registry.register_with_unit(
        "kassa_jobs_oldest_due_age",
        "How long the oldest job due and not taken has been due, by kind",
        Unit::Seconds,
        oldest,
    );

    let backlog: Family<StateLabels, Gauge> = Family::default();
    match state.store.webhooks().webhook_backlog(now).await {
        Ok((due, waiting)) => {
            backlog
                .get_or_create(&StateLabels { state: "due" })
                .set(due);
            backlog
                .get_or_create(&StateLabels { state: "waiting" })
                .set(waiting);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the webhook backlog"),
    }
    registry.register(
        "kassa_webhook_backlog",
        "Webhook deliveries not yet delivered: due now, or waiting for their next attempt",
        backlog,
    );

    let mut text = String::new();
    // Writing to a String does not fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_checked_and_never_shown() {
        let token: MetricsToken = " s3cret ".parse().expect("token");
        assert_eq!(format!("{token:?}"), "MetricsToken(…)");
        let mut headers = HeaderMap::new();
        assert!(!token.allows(&headers));
        for (value, allowed) in [
            ("Bearer s3cret", true),
            ("bearer s3cret", true),
            ("Bearer s3cre", false),
            ("Basic s3cret", false),
            ("s3cret", false),
        ] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(token.allows(&headers), allowed, "{value}");
        }
        assert!("".parse::<MetricsToken>().expect("empty").is_empty());
        assert!("two words".parse::<MetricsToken>().is_err());
    }

    #[test]
    fn kaspi_errors_have_outcomes() {
        assert_eq!(kaspi_outcome(None), "ok");
        let throttled = kaspi::Error::Throttled { retry_after: None };
        assert_eq!(kaspi_outcome(Some(&throttled)), "throttled");
    }
}
