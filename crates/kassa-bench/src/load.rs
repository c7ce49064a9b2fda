//! The load generator: a closed loop over N keep-alive HTTP/1.1 connections (hyper's
//! low-level client, one task per connection, no pool), each sending its next request as soon
//! as the previous answer is read whole.
//!
//! A run has a warm-up (requests sent, nothing recorded) and a measured window: a request
//! counts if it *started* inside the window, and the window ends when the last such request is
//! answered. Latency is from just before sending to the last byte of the body, recorded in
//! microseconds in an HDR histogram (three significant digits). A closed loop sends less when
//! the server is slow, so its percentiles understate what an open stream of users would see
//! during stalls; it is the right tool for "how much can it take", which is what is asked.
//!
//! Everything stays bounded: connections stop sending at the end of the window and every
//! request has a timeout. Answers other than the expected status and transport failures are
//! counted and kept as samples, never dropped silently.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::cpu;

/// The longest one request may take before it counts as failed and its connection is
/// replaced.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest latency the histogram holds, in microseconds (longer ones are clamped).
const HISTOGRAM_MAX_US: u64 = 60_000_000;

/// Makes the request numbered `seq` (unique within a load, counting from a random start).
pub type MakeRequest = dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync;

/// One kind of request to send.
#[derive(Clone)]
pub struct Load {
    /// Names the figures, e.g. `by_id` gives `by_id.rate`.
    pub label: &'static str,
    /// What is sent, for progress lines, e.g. `GET /api/v1/status`.
    pub what: String,
    pub addr: SocketAddr,
    pub connections: usize,
    /// The status every answer should have.
    pub expect: StatusCode,
    pub make: Arc<MakeRequest>,
    /// Whose CPU is Kassa's.
    pub cpu_scope: cpu::Scope,
    /// Something counted on the side over the measured window (e.g. calls Kassa made to
    /// Kaspi), reported per answered request.
    pub counter: Option<Counter>,
}

/// A named, ever-increasing count read at the start and end of the measured window.
#[derive(Clone)]
pub struct Counter {
    /// Names the figure: `<label>.<name>_per_request`.
    pub name: &'static str,
    pub read: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// How long to warm up and measure.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

/// What one or more runs of a load measured.
pub struct Summary {
    /// Answered requests that started in the window (any status).
    pub requests: u64,
    /// Answers with another status than expected, by status.
    pub unexpected: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection error, timeout).
    pub failed: u64,
    /// A sample of what went wrong: the first unexpected body or transport error.
    pub first_problem: Option<String>,
    /// Sum of the measured windows.
    pub elapsed: Duration,
    /// Latencies of all answered requests, in microseconds.
    pub latency_us: Histogram<u64>,
    pub cpu: cpu::Spent,
    /// The load's [`Counter`] and how much it grew over the measured windows.
    pub counted: Option<(&'static str, u64)>,
}

impl Summary {
    pub fn new() -> Summary {
        Summary {
            requests: 0,
            unexpected: BTreeMap::new(),
            failed: 0,
            first_problem: None,
            elapsed: Duration::ZERO,
            latency_us: new_histogram(),
            cpu: cpu::Spent::default(),
            counted: None,
        }
    }

    /// Folds another run of the same load in (interleaved rounds).
    pub fn merge(&mut self, other: Summary) {
        self.requests += other.requests;
        for (status, n) in other.unexpected {
            *self.unexpected.entry(status).or_default() += n;
        }
        self.failed += other.failed;
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
        self.elapsed += other.elapsed;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        self.cpu.add(&other.cpu);
        self.counted = match (self.counted, other.counted) {
            (Some((name, a)), Some((_, b))) => Some((name, a + b)),
            (mine, theirs) => mine.or(theirs),
        };
    }

    /// Answered requests per second of measured time.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.requests as f64 / seconds
        } else {
            0.0
        }
    }

    /// The latency at `quantile` (0.5, 0.99, 0.999), in milliseconds.
    pub fn percentile_ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Unexpected answers plus failed requests.
    pub fn errors(&self) -> u64 {
        self.unexpected.values().sum::<u64>() + self.failed
    }

    /// "502 ×12, no answer ×3 (first: …)", or `None` when all went well.
    pub fn problems(&self) -> Option<String> {
        if self.errors() == 0 {
            return None;
        }
        let mut parts: Vec<String> = self
            .unexpected
            .iter()
            .map(|(status, n)| format!("{status} ×{n}"))
            .collect();
        if self.failed > 0 {
            parts.push(format!("no answer ×{}", self.failed));
        }
        let mut text = parts.join(", ");
        if let Some(first) = &self.first_problem {
            text.push_str(&format!(" (first: {first})"));
        }
        Some(text)
    }
}

impl Default for Summary {
    fn default() -> Summary {
        Summary::new()
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3)
        .expect("constant bounds are valid: low 1, high ≥ 2, 3 significant digits")
}

/// Runs `loads` one after another, `rounds` times (A B A B …), so that figures meant to be
/// compared see the same conditions; one summary per load, in order.
pub async fn interleave(loads: &[Load], rounds: u32, window: Window) -> Vec<Summary> {
    let mut summaries: Vec<Summary> = loads.iter().map(|_| Summary::new()).collect();
    for round in 0..rounds.max(1) {
        for (load, summary) in loads.iter().zip(summaries.iter_mut()) {
            eprintln!(
                "    {} ({} connections), round {}/{}: {:.1} s + {:.1} s warm-up",
                load.what,
                load.connections,
                round + 1,
                rounds.max(1),
                window.measure.as_secs_f64(),
                window.warmup.as_secs_f64(),
            );
            summary.merge(run(load, window).await);
        }
    }
    summaries
}

/// State shared by the connections of one run.
struct Shared {
    load: Load,
    seq: AtomicU64,
    host: http::HeaderValue,
    measure_from: Instant,
    end: Instant,
}

/// One run of `load`: warm-up, then the measured window.
pub async fn run(load: &Load, window: Window) -> Summary {
    let start = Instant::now();
    let measure_from = start + window.warmup;
    let shared = Arc::new(Shared {
        load: load.clone(),
        seq: AtomicU64::new(u64::from(uuid::Uuid::new_v4().as_fields().0) << 24),
        host: http::HeaderValue::from_str(&load.addr.to_string())
            .expect("a socket address is a valid header value"),
        measure_from,
        end: measure_from + window.measure,
    });
    // A JoinSet: if this run is dropped (Ctrl-C), its connections end with it.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..load.connections.max(1) {
        tasks.spawn(connection(shared.clone()));
    }
    tokio::time::sleep_until(measure_from).await;
    let cpu_from = cpu::Sample::take(load.cpu_scope);
    let counted_from = load.counter.as_ref().map(|c| (c.read)());
    let mut summary = Summary::new();
    let mut last_answer = measure_from;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(done) => {
                last_answer = last_answer.max(done.last_answer);
                summary.merge(done.summary);
            }
            Err(e) => {
                summary.failed += 1;
                summary
                    .first_problem
                    .get_or_insert_with(|| format!("a connection task failed: {e}"));
            }
        }
    }
    if let (Some(from), Some(to)) = (cpu_from, cpu::Sample::take(load.cpu_scope)) {
        summary.cpu = from.until(&to);
    }
    if let (Some(from), Some(counter)) = (counted_from, &load.counter) {
        summary.counted = Some((counter.name, (counter.read)().saturating_sub(from)));
    }
    summary.elapsed = last_answer.saturating_duration_since(measure_from);
    summary
}

/// What one connection measured.
struct ConnectionDone {
    summary: Summary,
    last_answer: Instant,
}

/// One closed-loop connection: connect (again after a failure), send, read, record.
async fn connection(shared: Arc<Shared>) -> ConnectionDone {
    let mut summary = Summary::new();
    let mut last_answer = shared.measure_from;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        if Instant::now() >= shared.end {
            break;
        }
        let mut live = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match connect(shared.load.addr).await {
                Ok(s) => s,
                Err(e) => {
                    if Instant::now() >= shared.measure_from {
                        summary.failed += 1;
                        summary
                            .first_problem
                            .get_or_insert_with(|| format!("connect: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if live.ready().await.is_err() {
            continue; // the server closed the idle connection: make another, nothing was sent
        }
        let seq = shared.seq.fetch_add(1, Ordering::Relaxed);
        let mut request = (shared.load.make)(seq);
        request
            .headers_mut()
            .insert(http::header::HOST, shared.host.clone());
        let sent_at = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let response = live.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await;
        let done_at = Instant::now();
        let measured = sent_at >= shared.measure_from && sent_at < shared.end;
        match answer {
            Ok(Ok((status, body))) => {
                sender = Some(live);
                if !measured {
                    continue;
                }
                summary.requests += 1;
                last_answer = done_at;
                let us = done_at.saturating_duration_since(sent_at).as_micros();
                summary
                    .latency_us
                    .saturating_record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
                if status != shared.load.expect {
                    *summary.unexpected.entry(status.as_u16()).or_default() += 1;
                    summary.first_problem.get_or_insert_with(|| {
                        let text = String::from_utf8_lossy(&body);
                        let text: String = text.chars().take(300).collect();
                        format!("{status}: {text}")
                    });
                }
            }
            Ok(Err(e)) => {
                if measured {
                    summary.failed += 1;
                    last_answer = done_at;
                    summary.first_problem.get_or_insert_with(|| e.to_string());
                }
            }
            Err(_) => {
                if measured {
                    summary.failed += 1;
                    last_answer = done_at;
                    summary.first_problem.get_or_insert_with(|| {
                        format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
                    });
                }
            }
        }
    }
    ConnectionDone {
        summary,
        last_answer,
    }
}

/// One `GET path` on a new connection, with `X-API-Key` when given: its status and body.
pub async fn get_once(
    addr: SocketAddr,
    path: &str,
    api_key: Option<&str>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = path.parse()?;
    if let Some(key) = api_key {
        request
            .headers_mut()
            .insert("x-api-key", http::HeaderValue::from_str(key)?);
    }
    send_once(addr, request).await
}

/// Sends `request` (any method, headers and body; `Host` is added) on a new connection:
/// the answer's status and body, within [`REQUEST_TIMEOUT`].
pub async fn send_once(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    send_once_within(addr, request, REQUEST_TIMEOUT).await
}

/// [`send_once`] waiting at most `timeout` for the answer (a request that queues behind a
/// budget on purpose).
pub async fn send_once_within(
    addr: SocketAddr,
    mut request: Request<Full<Bytes>>,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut sender = connect(addr).await?;
    request.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_str(&addr.to_string())?,
    );
    tokio::time::timeout(timeout, async move {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    })
    .await?
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr)).await??;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes the connection.
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary_of(latencies_us: impl IntoIterator<Item = u64>, seconds: u64) -> Summary {
        let mut s = Summary::new();
        for us in latencies_us {
            s.requests += 1;
            s.latency_us.record(us).expect("in bounds");
        }
        s.elapsed = Duration::from_secs(seconds);
        s
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        // 1..=10_000 µs, once each: the p-quantile is p × 10 ms, within the histogram's
        // three significant digits.
        let s = summary_of(1..=10_000, 2);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(s.percentile_ms(0.5), 5.0), "{}", s.percentile_ms(0.5));
        assert!(
            close(s.percentile_ms(0.99), 9.9),
            "{}",
            s.percentile_ms(0.99)
        );
        assert!(
            close(s.percentile_ms(0.999), 9.99),
            "{}",
            s.percentile_ms(0.999)
        );
        assert!((s.rate() - 5_000.0).abs() < 1e-9);
    }

    #[test]
    fn a_rare_slow_request_shows_in_the_tail_only() {
        let s = summary_of(std::iter::repeat_n(1_000, 999).chain([250_000]), 1);
        assert!((s.percentile_ms(0.5) - 1.0).abs() < 0.01);
        assert!((s.percentile_ms(0.99) - 1.0).abs() < 0.01);
        assert!(s.percentile_ms(1.0) > 249.0);
    }

    #[test]
    fn merged_rounds_add_up_and_problems_are_said() {
        let mut a = summary_of([1_000, 2_000], 1);
        let mut b = summary_of([3_000, 4_000], 1);
        b.unexpected.insert(502, 2);
        b.failed = 1;
        b.first_problem = Some("502: {\"error\":\"kaspi_unavailable\"}".into());
        a.merge(b);
        assert_eq!(a.requests, 4);
        assert_eq!(a.elapsed, Duration::from_secs(2));
        assert!((a.rate() - 2.0).abs() < 1e-9);
        assert_eq!(a.latency_us.len(), 4);
        assert_eq!(a.errors(), 3);
        let said = a.problems().expect("problems");
        assert!(
            said.contains("502 ×2") && said.contains("no answer ×1"),
            "{said}"
        );
        assert_eq!(Summary::new().problems(), None);
        assert_eq!(Summary::new().rate(), 0.0);
    }
}
