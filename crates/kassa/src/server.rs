//! The HTTP/1.1 listener: an accept loop over hyper's connection builder that bounds what a
//! client may hold (the settings of [`HttpLimits`]):
//!
//! - **connections**: at most `max_connections` at once; a connection over the cap is closed
//!   as soon as it is accepted (the client sees the connection closed and may retry), so the
//!   ones in hand keep being served.
//! - **headers**: a new connection, or a kept-alive one once a request's first byte arrives,
//!   has `header_timeout` to send every header; else it is closed.
//! - **idle keep-alive**: a connection with no request for `idle_timeout` is closed.
//! - **body**: a pause longer than `body_timeout` while a request body is read answers 408
//!   (tower-http's [`tower_http::timeout::RequestBodyTimeoutLayer`] on the body; the readers of
//!   [`crate::api::extract`] turn its error into the surface's 408).
//! - **whole request**: a request not answered within `request_timeout` of its headers
//!   answers 408 in the surface's format (work already handed off, such as an idempotent
//!   create, still completes and is recorded). A connection still busy with one request after
//!   `request_timeout + idle_timeout` (a client that never reads its answer) is closed.
//!
//! - **lingering close**: a connection that ends in order keeps reading and discarding its
//!   client's input for up to [`LINGER`], so that an answer given before the request body
//!   was read (a 413, a 401, a 408) is not destroyed by a reset (see `Watched`).
//!
//! A connection is watched by a small state kept beside its socket (`Watch`): idle, reading
//! a head, or busy with a request; a watchdog sleeps until the current stage's deadline.
//!
//! Shutdown stops accepting, asks every connection to finish the request in hand and close
//! (hyper's graceful shutdown), and waits until all have closed; stalled ones are closed by
//! their deadlines, so the drain is bounded.
//!
//! Every request answered writes one **access line** (target `kassa::access`, see
//! `access_line`): method, the route it matched (its pattern, never the path, which may carry
//! a token such as a dashboard sign-in link's, nor the query), status, latency and the
//! request's id (also answered as `x-request-id`). The sandbox Kaspi's routes, which the
//! gateway calls itself, are logged at debug level.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse as _, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

use crate::api::{extract, ErrorFormat};
use crate::config::HttpLimits;

/// Serves `router` on `listener` until `shutdown` resolves, then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // On every route (inside the routing, where the matched route is known).
    let router = router.layer(axum::middleware::from_fn(access_line));
    let permits = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(permits as usize));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Our own watchdog times headers; hyper's timer would also cut idle connections short.
    builder.header_read_timeout(None).keep_alive(true);
    let builder = Arc::new(builder);
    let refused_warned = AtomicU64::new(0);
    let started = Instant::now();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Warn at most every 10 s: a flood must not become a flood of log lines.
            let now = started.elapsed().as_secs();
            let last = refused_warned.load(Ordering::Relaxed);
            if now >= last + 10 || last == 0 {
                refused_warned.store(now.max(1), Ordering::Relaxed);
                tracing::warn!(%peer, max = limits.max_connections,
                    "connection cap reached; closing new connections (http_max_connections)");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let router = router.clone();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let watch = Arc::new(Watch::new());
            let io = TokioIo::new(Watched {
                stream: Some(stream),
                watch: watch.clone(),
                slot: Some(slot),
                shut: false,
            });
            let service = {
                let watch = watch.clone();
                hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    // The client's address, for the audit log (`crate::audit`).
                    req.extensions_mut().insert(ConnectInfo(peer));
                    handle(router.clone(), limits, watch.clone(), req)
                })
            };
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            let mut stopping = *stop_rx.borrow();
            if stopping {
                conn.as_mut().graceful_shutdown();
            }
            loop {
                tokio::select! {
                    served = conn.as_mut() => {
                        if let Err(err) = served {
                            tracing::debug!(%peer, error = %err, "connection ended with an error");
                        }
                        break;
                    }
                    () = watch.expired(&limits) => {
                        tracing::debug!(%peer, stage = ?watch.stage(), "closing a stalled connection");
                        break;
                    }
                    changed = stop_rx.changed(), if !stopping => {
                        stopping = true;
                        if changed.is_ok() {
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends: having them all back means drained.
    let _all = slots
        .acquire_many(permits)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(())
}

/// One request: the body under the body timeout, the answer under the request timeout, the
/// connection marked busy until the answer's body is dropped (written or abandoned).
async fn handle(
    router: Router,
    limits: HttpLimits,
    watch: Arc<Watch>,
    req: hyper::Request<Incoming>,
) -> Result<Response, std::convert::Infallible> {
    watch.enter(Stage::Busy);
    let format = surface_of(req.uri().path());
    let method = req.method().clone();
    let req: Request = req.map(|body| Body::new(TimeoutBody::new(limits.body_timeout, body)));
    let response = match tokio::time::timeout(limits.request_timeout, router.oneshot(req)).await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => {
            // The route's own access line is gone with the request: this one stands for it.
            tracing::info!(
                target: "kassa::access",
                method = %method,
                status = 408,
                latency_ms = u64::try_from(limits.request_timeout.as_millis()).unwrap_or(u64::MAX),
                "request timed out (http_request_timeout)"
            );
            extract::request_timeout(format).into_response()
        }
    };
    Ok(response.map(|body| {
        Body::new(Tracked {
            body,
            _idle: IdleOnDrop(watch),
        })
    }))
}

/// Writes the access line of one request once its answer is ready (see the module docs). It
/// wraps the request id layers, so the id is read from the answer's `x-request-id`.
async fn access_line(request: Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(unrouted)".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get(crate::app::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    if route.starts_with(crate::app::SANDBOX_PREFIX) {
        tracing::debug!(target: "kassa::access", method = %method, route = %route, status,
            latency_ms, request_id = %request_id, "sandbox Kaspi request answered");
    } else {
        tracing::info!(target: "kassa::access", method = %method, route = %route, status,
            latency_ms, request_id = %request_id, "request answered");
    }
    response
}

/// An answer's body that puts its connection back to idle when dropped.
struct Tracked {
    body: Body,
    _idle: IdleOnDrop,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The surface whose error format a path answers in: ApiPay under `/api/`, else xPayment.
fn surface_of(path: &str) -> ErrorFormat {
    if path.starts_with("/api/") {
        ErrorFormat::ApiPay
    } else {
        ErrorFormat::XPayment
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Between requests on a kept-alive connection.
    Idle,
    /// Connected, or a request's first byte arrived: its headers are awaited.
    Head,
    /// A request is being served (its body read, its answer made and written).
    Busy,
}

/// A connection's stage and since when; the watchdog is woken on every change.
struct Watch {
    state: Mutex<(Stage, Instant)>,
    changed: Notify,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            state: Mutex::new((Stage::Head, Instant::now())),
            changed: Notify::new(),
        }
    }

    fn stage(&self) -> Stage {
        self.lock().0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Stage, Instant)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enter(&self, stage: Stage) {
        *self.lock() = (stage, Instant::now());
        self.changed.notify_waiters();
    }

    /// Bytes arrived: an idle connection now reads a head.
    fn on_read(&self) {
        let mut state = self.lock();
        if state.0 == Stage::Idle {
            *state = (Stage::Head, Instant::now());
            drop(state);
            self.changed.notify_waiters();
        }
    }

    /// Resolves once the connection has stayed in one stage past that stage's limit.
    async fn expired(&self, limits: &HttpLimits) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (stage, since) = *self.lock();
            let limit = match stage {
                Stage::Idle => limits.idle_timeout,
                Stage::Head => limits.header_timeout,
                Stage::Busy => limits.request_timeout + limits.idle_timeout,
            };
            let deadline = since + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = &mut changed => {}
            }
        }
    }
}

/// Puts the connection back to idle when the answer's body is dropped.
struct IdleOnDrop(Arc<Watch>);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.0.enter(Stage::Idle);
    }
}

/// How long a closed connection keeps reading (and throwing away) what its client still
/// sends; see `Watched`.
pub const LINGER: Duration = Duration::from_secs(2);

/// A socket that tells its [`Watch`] when bytes arrive, and closes lingering: once hyper has
/// shut its writing side (the answer is out, with a FIN), the socket is kept open for up to
/// [`LINGER`] to read and discard what the client still sends. Closing a socket with unread
/// input resets the connection, and a reset makes the client's system drop the answer it has
/// not read yet: an early 413, or a 408 while the client is still sending its body.
struct Watched {
    stream: Option<TcpStream>,
    watch: Arc<Watch>,
    /// The connection's place under the cap, held until the socket is closed.
    slot: Option<OwnedSemaphorePermit>,
    /// Whether hyper shut the writing side (an orderly end).
    shut: bool,
}

impl Watched {
    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::NotConnected.into())
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let (Some(mut stream), true) = (self.stream.take(), self.shut) else {
            return;
        };
        let slot = self.slot.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _slot = slot;
                let mut sink = [0u8; 8192];
                let _ = tokio::time::timeout(LINGER, async {
                    while let Ok(n) = stream.read(&mut sink).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
            });
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.stream()?.poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream()?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream()?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = self.stream()?.poll_shutdown(cx);
        if matches!(polled, Poll::Ready(Ok(()))) {
            self.shut = true;
        }
        polled
    }
}
