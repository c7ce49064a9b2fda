//! The listener's limits and webhook delivery: their settings with defaults, resolved from
//! flags, variables and the file, and the durations and schedules they are written in
//! (`250ms`, `5s,1m,2h`).

use std::time::Duration;

use super::{ConfigError, FileConfig, ServeArgs};

/// How long the HTTP listener waits for clients, and how many it serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// From connecting, or from the first byte of a later request, to its last header.
    pub header_timeout: Duration,
    /// The longest pause between two parts of a request body.
    pub body_timeout: Duration,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// From a request's headers to its answer.
    pub request_timeout: Duration,
    /// Connections served at once; more are closed as they come.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// How webhooks are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Allow targets on loopback, private and other internal addresses.
    pub allow_private: bool,
    /// Refuse `http://` targets.
    pub https_only: bool,
    /// The longest one attempt may take.
    pub timeout: Duration,
    /// Delays between attempts; after the last a delivery is given up.
    pub retry_schedule: Vec<Duration>,
    /// An endpoint failing for this long without a success is disabled.
    pub disable_after: Duration,
}

/// The retry schedule of the webhooks issue: about 3 days in all.
pub const DEFAULT_WEBHOOK_RETRY_SCHEDULE: &str = "5s,1m,5m,30m,2h,5h,10h,14h,20h,24h";

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            allow_private: false,
            https_only: false,
            timeout: Duration::from_secs(15),
            retry_schedule: parse_schedule(DEFAULT_WEBHOOK_RETRY_SCHEDULE).unwrap_or_default(),
            disable_after: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

/// A duration such as `250ms`, `5s`, `1m`, `2h`, `5d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// A comma-separated list of durations, at least one.
pub fn parse_schedule(text: &str) -> Option<Vec<Duration>> {
    let list = text
        .split(',')
        .map(parse_duration)
        .collect::<Option<Vec<_>>>()?;
    (!list.is_empty()).then_some(list)
}

pub(super) fn resolve_webhooks(
    serve: &ServeArgs,
    file: &FileConfig,
) -> Result<WebhookConfig, ConfigError> {
    let defaults = WebhookConfig::default();
    let timeout_secs = serve.webhook_timeout_secs.or(file.webhook_timeout_secs);
    if timeout_secs == Some(0) {
        return Err(ConfigError(
            "--webhook-timeout-secs must be at least 1".into(),
        ));
    }
    let retry_schedule = match serve
        .webhook_retry_schedule
        .as_ref()
        .or(file.webhook_retry_schedule.as_ref())
    {
        Some(text) => parse_schedule(text).ok_or_else(|| {
            ConfigError(format!(
                "--webhook-retry-schedule {text:?} must be durations such as 5s,1m,2h separated by commas"
            ))
        })?,
        None => defaults.retry_schedule,
    };
    let disable_after = match serve
        .webhook_disable_after
        .as_ref()
        .or(file.webhook_disable_after.as_ref())
    {
        Some(text) => parse_duration(text).ok_or_else(|| {
            ConfigError(format!(
                "--webhook-disable-after {text:?} must be a duration such as 5d or 120h"
            ))
        })?,
        None => defaults.disable_after,
    };
    Ok(WebhookConfig {
        allow_private: serve
            .webhook_allow_private
            .or(file.webhook_allow_private)
            .unwrap_or(defaults.allow_private),
        https_only: serve
            .webhook_https_only
            .or(file.webhook_https_only)
            .unwrap_or(defaults.https_only),
        timeout: timeout_secs.map_or(defaults.timeout, Duration::from_secs),
        retry_schedule,
        disable_after,
    })
}

pub(super) fn resolve_http(
    serve: &ServeArgs,
    file: &FileConfig,
) -> Result<HttpLimits, ConfigError> {
    let defaults = HttpLimits::default();
    let timeout =
        |flag: &Option<String>, from_file: &Option<String>, name: &str, default| match flag
            .as_ref()
            .or(from_file.as_ref())
        {
            None => Ok(default),
            Some(text) => parse_duration(text)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--{name} {text:?} must be a duration above zero such as 500ms, 10s or 1m"
                    ))
                }),
        };
    let max_connections = serve
        .http_max_connections
        .or(file.http_max_connections)
        .unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        return Err(ConfigError(
            "--http-max-connections must be at least 1".into(),
        ));
    }
    Ok(HttpLimits {
        header_timeout: timeout(
            &serve.http_header_timeout,
            &file.http_header_timeout,
            "http-header-timeout",
            defaults.header_timeout,
        )?,
        body_timeout: timeout(
            &serve.http_body_timeout,
            &file.http_body_timeout,
            "http-body-timeout",
            defaults.body_timeout,
        )?,
        idle_timeout: timeout(
            &serve.http_idle_timeout,
            &file.http_idle_timeout,
            "http-idle-timeout",
            defaults.idle_timeout,
        )?,
        request_timeout: timeout(
            &serve.http_request_timeout,
            &file.http_request_timeout,
            "http-request-timeout",
            defaults.request_timeout,
        )?,
        max_connections,
    })
}
