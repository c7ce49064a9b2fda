//! Faults on demand, and the middleware in front of the Kaspi hosts.
//!
//! The middleware counts every Kaspi call (entrance, mtoken, qrpay) and, for mtoken and
//! qrpay only, rolls the fault dice: added latency, HTTP 5xx, a non-zero `StatusCode`, or a
//! lost answer — the operation IS performed but the client gets nothing: `timeout` holds
//! the answer back for `hang_ms` (the hold ends when the client goes away, because the
//! server then drops the request's future), `drop` closes the connection mid-answer.
//! The control API never passes through here.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::envelope::{codes, KaspiError, STATUS_ERROR};
use crate::state::State as SimState;
use crate::Simulator;

/// What to do with an answer that is lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LostMode {
    /// Hold the answer back for `hang_ms` (the client times out first).
    #[default]
    Timeout,
    /// Close the connection without a complete answer.
    Drop,
}

/// The faults in force (`POST /_control/faults`). `{}` means none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every affected answer, in milliseconds.
    pub latency_ms: u64,
    /// Share (0..1) of affected requests answered with HTTP 503 (nothing performed).
    pub http_5xx: f64,
    /// Share (0..1) answered HTTP 200 with a non-zero `StatusCode` (nothing performed).
    pub status_error: f64,
    /// Share (0..1) whose answer is lost after the operation was performed.
    pub lost: f64,
    pub lost_mode: LostMode,
    /// How long a `timeout` answer is held back.
    pub hang_ms: u64,
    /// Only requests whose path contains this string are affected.
    pub path_contains: Option<String>,
    /// Only the next N matching requests are affected; then the faults switch off.
    pub count: Option<u32>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            http_5xx: 0.0,
            status_error: 0.0,
            lost: 0.0,
            lost_mode: LostMode::Timeout,
            hang_ms: 30_000,
            path_contains: None,
            count: None,
        }
    }
}

impl Faults {
    /// Refuses shares outside 0..1.
    pub fn validate(&self) -> Result<(), String> {
        for (name, share) in [
            ("http_5xx", self.http_5xx),
            ("status_error", self.status_error),
            ("lost", self.lost),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} must be a share between 0 and 1"));
            }
        }
        Ok(())
    }

    fn matches(&self, path: &str) -> bool {
        self.path_contains
            .as_deref()
            .is_none_or(|needle| path.contains(needle))
    }

    fn is_idle(&self) -> bool {
        self.count == Some(0)
            || (self.latency_ms == 0
                && self.http_5xx == 0.0
                && self.status_error == 0.0
                && self.lost == 0.0)
    }
}

/// What the dice decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Pass,
    Http5xx,
    StatusError,
    Lost(LostMode),
}

struct Plan {
    latency: Duration,
    hang: Duration,
    action: Action,
}

fn roll(state: &mut SimState, share: f64) -> bool {
    share > 0.0 && state.rng.gen_bool(share.min(1.0))
}

impl SimState {
    fn fault_plan(&mut self, path: &str) -> Option<Plan> {
        if self.faults.is_idle() || !self.faults.matches(path) {
            return None;
        }
        if let Some(left) = self.faults.count.as_mut() {
            *left = left.saturating_sub(1);
        }
        let f = self.faults.clone();
        let action = if roll(self, f.http_5xx) {
            Action::Http5xx
        } else if roll(self, f.status_error) {
            Action::StatusError
        } else if roll(self, f.lost) {
            Action::Lost(f.lost_mode)
        } else {
            Action::Pass
        };
        Some(Plan {
            latency: Duration::from_millis(f.latency_ms),
            hang: Duration::from_millis(f.hang_ms),
            action,
        })
    }
}

/// Counts a Kaspi call (all three hosts).
pub(crate) async fn count_calls(
    State(sim): State<Simulator>,
    req: Request,
    next: Next,
) -> Response {
    sim.count_call();
    next.run(req).await
}

/// Applies the faults in force to an mtoken or qrpay request.
pub(crate) async fn inject(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |u| u.0.path().to_owned());
    let plan = sim.with_state(|st| st.fault_plan(&path));
    let Some(plan) = plan else {
        return next.run(req).await;
    };
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    match plan.action {
        Action::Pass => next.run(req).await,
        Action::Http5xx => {
            tracing::info!(%path, "fault: HTTP 503");
            KaspiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                STATUS_ERROR,
                codes::SERVICE_UNAVAILABLE,
                "Сервис временно недоступен",
            )
            .into_response()
        }
        Action::StatusError => {
            tracing::info!(%path, "fault: non-zero StatusCode");
            KaspiError::refused(codes::TEMPORARY_ERROR, "Произошла ошибка, попробуйте позже")
                .into_response()
        }
        Action::Lost(LostMode::Timeout) => {
            let answer = next.run(req).await;
            tracing::info!(%path, hang_ms = plan.hang.as_millis(), "fault: answer held back");
            // Dropped with the request's future if the client goes away first.
            let _held = sim.hold();
            tokio::time::sleep(plan.hang).await;
            answer
        }
        Action::Lost(LostMode::Drop) => {
            drop(next.run(req).await);
            tracing::info!(%path, "fault: connection dropped");
            dropped_answer()
        }
    }
}

/// An answer whose body fails at once, so the server closes the connection mid-answer.
fn dropped_answer() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("answer dropped (fault injection)"))
    });
    Response::new(Body::from_stream(failing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_and_defaults() {
        let f: Faults = serde_json::from_str("{}").expect("empty is no faults");
        assert_eq!(f, Faults::default());
        assert!(f.is_idle());
        let f: Faults = serde_json::from_str(
            r#"{"lost":1.0,"lost_mode":"drop","path_contains":"/remote/create","count":1}"#,
        )
        .expect("parses");
        assert_eq!(f.lost_mode, LostMode::Drop);
        assert!(f.matches("/qrpay/v01/remote/create"));
        assert!(!f.matches("/qrpay/v02/remote/details"));
        assert!(serde_json::from_str::<Faults>(r#"{"lots":1}"#).is_err());
        let bad = Faults {
            http_5xx: 1.5,
            ..Faults::default()
        };
        assert!(bad.validate().is_err());
    }
}
