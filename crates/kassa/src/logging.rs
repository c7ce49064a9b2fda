//! What `kassa` writes to its log, on stderr: the format (`--log-format text|json`,
//! `KASSA_LOG_FORMAT`), colours only when stderr is a terminal (and `NO_COLOR` is not set),
//! and the lines a server run starts and ends with.
//!
//! The other lines worth watching are written where things happen: one access line per request
//! (`crate::server`), a line for every committed invoice status change and refund outcome
//! (`crate::store`), one for every webhook endpoint disabled. Amounts are written in tenge
//! (`amount_kzt`), phones masked, and nothing secret ever: no API key, webhook secret, Kaspi
//! token or master key, and a database URL loses its password ([`redact_url`]).
//!
//! In JSON format every line on stderr is one JSON object, including the few notes meant for a
//! person (`kassa listening on …`): [`notice`] writes them as plain lines in text format and as
//! JSON objects in JSON format.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, KaspiMode};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `message`, the event's fields, `target`,
    /// and the spans it happened in).
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// `--log-format`, accepted before or after the command's name.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// How log lines are written to stderr: `text`, or `json` (one object per line). Which
    /// lines: `RUST_LOG` (default `info`).
    #[arg(
        long,
        env = "KASSA_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        value_name = "FORMAT",
        global = true
    )]
    pub log_format: LogFormat,
}

/// The format chosen at [`init`], for [`notice`] (the subscriber itself is process-wide too).
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Starts logging to stderr in `format`, the lines chosen by `RUST_LOG` (default `info`).
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colours()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Colours only for a person at a terminal: never into a file or a pipe, never with
/// `NO_COLOR` set (<https://no-color.org>).
fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The format logging was started in (text before [`init`]).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// A note for the person who started the server (not filtered by `RUST_LOG`): the line as it
/// is in text format, a JSON object with it as `message` in JSON format.
pub fn notice(text: &str) {
    write_note("INFO", text);
}

/// The error that ends the process: `error: …` in text format, a JSON object in JSON format.
pub fn fatal(error: &anyhow::Error) {
    match format() {
        LogFormat::Text => eprintln!("error: {error:#}"),
        LogFormat::Json => write_note("ERROR", &format!("error: {error:#}")),
    }
}

fn write_note(level: &str, text: &str) {
    match format() {
        LogFormat::Text => eprintln!("{text}"),
        LogFormat::Json => {
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let line = serde_json::json!({
                "timestamp": now,
                "level": level,
                "message": text,
                "target": "kassa",
            });
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }
}

/// The start line of `kassa serve`: what runs where, and the settings that change what it does.
/// Nothing secret: the database URL and Kaspi URLs lose their passwords.
pub fn log_start(config: &Config, listen: SocketAddr) {
    let endpoints = config.kaspi_client_config(listen).endpoints;
    let (mode, kaspi) = match config.kaspi {
        KaspiMode::Sandbox => {
            let entrance = &endpoints.entrance;
            let base = entrance.strip_suffix("/entrance-pay").unwrap_or(entrance);
            ("sandbox", base.to_owned())
        }
        KaspiMode::Live => (
            "live",
            [&endpoints.entrance, &endpoints.mtoken, &endpoints.qrpay]
                .map(|url| redact_url(url))
                .join(", "),
        ),
    };
    let webhooks = &config.webhooks;
    let http = &config.http;
    let schedule = webhooks
        .retry_schedule
        .iter()
        .map(|d| short(*d))
        .collect::<Vec<_>>()
        .join(",");
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        mode,
        listen = %listen,
        data_dir = %config.data_dir.display(),
        database = %redact_url(&config.database_url),
        kaspi = %kaspi,
        kaspi_app = %format!("{} build {}", config.kaspi_app.version, config.kaspi_app.build),
        kaspi_calls_per_sec = config.kaspi_calls_per_sec,
        rate_limit_per_minute = config.rate_limit_per_minute,
        webhook_allow_private = webhooks.allow_private,
        webhook_https_only = webhooks.https_only,
        webhook_timeout = %short(webhooks.timeout),
        webhook_retry_schedule = %schedule,
        webhook_disable_after = %short(webhooks.disable_after),
        http_max_connections = http.max_connections,
        http_timeouts = %format!(
            "header {}, body {}, idle {}, request {}",
            short(http.header_timeout),
            short(http.body_timeout),
            short(http.idle_timeout),
            short(http.request_timeout)
        ),
        log_format = format().as_str(),
        "kassa started"
    );
}

/// A duration as the settings write it: `250ms`, `15s`, `1m`, `2h`, `5d`.
fn short(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// `url` with the password of its user info and any `password=` query value replaced by
/// `***`: `postgres://kassa:***@db/kassa`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(parts) => parts,
        None => return url.to_owned(),
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    // The user info ends at the last `@` before the path.
    let authority_end = location.find('/').unwrap_or(location.len());
    let (authority, path) = location.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_the_settings_write_them() {
        assert_eq!(short(Duration::from_millis(250)), "250ms");
        assert_eq!(short(Duration::from_secs(15)), "15s");
        assert_eq!(short(Duration::from_secs(90)), "90s");
        assert_eq!(short(Duration::from_secs(300)), "5m");
        assert_eq!(short(Duration::from_secs(5 * 86_400)), "5d");
        assert_eq!(short(Duration::ZERO), "0ms");
    }

    #[test]
    fn passwords_leave_urls() {
        assert_eq!(
            redact_url("postgres://kassa:s3cret@db:5432/kassa"),
            "postgres://kassa:***@db:5432/kassa"
        );
        assert_eq!(
            redact_url("postgresql://u:p@ss@h/db?sslmode=require&password=x"),
            "postgresql://u:***@h/db?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("postgres://kassa@db/kassa"),
            "postgres://kassa@db/kassa"
        );
        assert_eq!(
            redact_url("sqlite://kassa-data/kassa.db"),
            "sqlite://kassa-data/kassa.db"
        );
        assert_eq!(
            redact_url("https://entrance-pay.kaspi.kz"),
            "https://entrance-pay.kaspi.kz"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
