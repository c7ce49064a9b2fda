//! One typed configuration: defaults, then a TOML file, then `KASSA_*` environment variables
//! and command-line flags (clap reads both; a flag wins over its variable). Validated at start.
//! Secrets (the master key) come only from the environment or the data dir, and `Debug`
//! never prints them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod limits;

pub use limits::{
    parse_duration, parse_schedule, HttpLimits, WebhookConfig, DEFAULT_WEBHOOK_RETRY_SCHEDULE,
};
use limits::{resolve_http, resolve_webhooks};

/// Which Kaspi the gateway talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KaspiMode {
    /// The built-in simulator, mounted at `/sandbox/kaspi` on the same listener.
    Sandbox,
    /// The real Kaspi hosts (or the base URLs given).
    Live,
}

/// Settings shared by every command that opens the database; accepted before or after the
/// command's name.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StorageArgs {
    /// Where Kassa keeps its data (SQLite database, master key) [default: ./kassa-data]
    #[arg(long, env = "KASSA_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…` [default: sqlite://<data dir>/kassa.db]
    #[arg(long, env = "KASSA_DATABASE_URL", global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// A TOML file with any of the `kassa serve` settings [default: <data dir>/kassa.toml, if
    /// present]
    #[arg(long, env = "KASSA_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

// The defaults below are written into the help by hand: a clap default would hide whether the
// flag was given, and a setting of the file must win over a default. The test
// `shown_defaults_are_the_defaults` checks each one against the resolved configuration.

/// Settings of `kassa serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "KASSA_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// `sandbox` (the built-in Kaspi simulator) or `live` [default: sandbox]
    #[arg(long, env = "KASSA_KASPI", value_enum, value_name = "MODE")]
    pub kaspi: Option<KaspiMode>,
    /// Base URL of Kaspi's entrance host (live mode) [default: https://entrance-pay.kaspi.kz]
    #[arg(long, env = "KASSA_KASPI_ENTRANCE_URL", value_name = "URL")]
    pub kaspi_entrance_url: Option<String>,
    /// Base URL of Kaspi's mtoken host (live mode) [default: https://mtoken.kaspi.kz]
    #[arg(long, env = "KASSA_KASPI_MTOKEN_URL", value_name = "URL")]
    pub kaspi_mtoken_url: Option<String>,
    /// Base URL of Kaspi's qrpay host (live mode) [default: https://qrpay.kaspi.kz]
    #[arg(long, env = "KASSA_KASPI_QRPAY_URL", value_name = "URL")]
    pub kaspi_qrpay_url: Option<String>,
    /// Requests a minute per API key; 0 turns the limit off [default: 60]
    #[arg(long, env = "KASSA_RATE_LIMIT_PER_MINUTE", value_name = "N")]
    pub rate_limit_per_minute: Option<u32>,
    /// The most Kaspi calls a second Kassa makes for one cashier (Kaspi throttles at about 20).
    /// Creates and history pages wait for a slot; polls take only spare ones [default: 15]
    #[arg(long, env = "KASSA_KASPI_CALLS_PER_SEC", value_name = "N")]
    pub kaspi_calls_per_sec: Option<u32>,
    /// Allow webhook URLs that resolve to loopback, private, link-local or other internal
    /// addresses (local development and tests only) [default: false]
    #[arg(long, env = "KASSA_WEBHOOK_ALLOW_PRIVATE", num_args = 0..=1, value_name = "BOOL",
          default_missing_value = "true", require_equals = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_allow_private: Option<bool>,
    /// Refuse webhook URLs that are not https [default: false]
    #[arg(long, env = "KASSA_WEBHOOK_HTTPS_ONLY", num_args = 0..=1, value_name = "BOOL",
          default_missing_value = "true", require_equals = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_https_only: Option<bool>,
    /// Seconds one webhook attempt may take [default: 15]
    #[arg(long, env = "KASSA_WEBHOOK_TIMEOUT_SECS", value_name = "SECS")]
    pub webhook_timeout_secs: Option<u64>,
    /// Delays between webhook attempts (units ms, s, m, h, d); after the last one a delivery
    /// is given up [default: 5s,1m,5m,30m,2h,5h,10h,14h,20h,24h]
    #[arg(long, env = "KASSA_WEBHOOK_RETRY_SCHEDULE", value_name = "DELAYS")]
    pub webhook_retry_schedule: Option<String>,
    /// An endpoint whose attempts all failed for this long is disabled [default: 5d]
    #[arg(long, env = "KASSA_WEBHOOK_DISABLE_AFTER", value_name = "DURATION")]
    pub webhook_disable_after: Option<String>,
    /// The longest a client may take to send a request's headers, from its first byte (or
    /// from connecting); then the connection is closed [default: 10s]
    #[arg(long, env = "KASSA_HTTP_HEADER_TIMEOUT", value_name = "DURATION")]
    pub http_header_timeout: Option<String>,
    /// The longest pause while a request body is sent; then 408 [default: 10s]
    #[arg(long, env = "KASSA_HTTP_BODY_TIMEOUT", value_name = "DURATION")]
    pub http_body_timeout: Option<String>,
    /// How long a kept-alive connection may wait for its next request [default: 60s]
    #[arg(long, env = "KASSA_HTTP_IDLE_TIMEOUT", value_name = "DURATION")]
    pub http_idle_timeout: Option<String>,
    /// The longest one request may take, from its headers to its answer; then 408 (work
    /// already started, such as a create, still finishes) [default: 60s]
    #[arg(long, env = "KASSA_HTTP_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub http_request_timeout: Option<String>,
    /// The most client connections served at once; more are closed at once [default: 1024]
    #[arg(long, env = "KASSA_HTTP_MAX_CONNECTIONS", value_name = "N")]
    pub http_max_connections: Option<usize>,
    /// The bearer token `GET /metrics` asks for (`Authorization: Bearer <token>`); empty
    /// leaves it open to whoever reaches the listener [default: ]
    #[arg(
        long,
        env = "KASSA_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<crate::metrics::MetricsToken>,
    /// How long audit log entries are kept (units h, d) [default: 365d]
    #[arg(long, env = "KASSA_AUDIT_RETENTION", value_name = "DURATION")]
    pub audit_retention: Option<String>,
}

/// The Kaspi settings of `kassa terminal connect`: the same flags and variables as for
/// `kassa serve`, and only those the login uses.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KaspiArgs {
    /// The address `kassa serve` listens on: in sandbox mode the login goes to the simulator
    /// inside it [default: 127.0.0.1:8080]
    #[arg(long, env = "KASSA_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// `sandbox` (the simulator inside `kassa serve`) or `live` [default: sandbox]
    #[arg(long, env = "KASSA_KASPI", value_enum, value_name = "MODE")]
    pub kaspi: Option<KaspiMode>,
    /// Base URL of Kaspi's entrance host (live mode) [default: https://entrance-pay.kaspi.kz]
    #[arg(long, env = "KASSA_KASPI_ENTRANCE_URL", value_name = "URL")]
    pub kaspi_entrance_url: Option<String>,
    /// Base URL of Kaspi's mtoken host (live mode) [default: https://mtoken.kaspi.kz]
    #[arg(long, env = "KASSA_KASPI_MTOKEN_URL", value_name = "URL")]
    pub kaspi_mtoken_url: Option<String>,
    /// Base URL of Kaspi's qrpay host (live mode) [default: https://qrpay.kaspi.kz]
    #[arg(long, env = "KASSA_KASPI_QRPAY_URL", value_name = "URL")]
    pub kaspi_qrpay_url: Option<String>,
}

impl KaspiArgs {
    /// As `kassa serve` settings (the others from the file or their defaults).
    pub fn serve_args(&self) -> ServeArgs {
        ServeArgs {
            listen: self.listen,
            kaspi: self.kaspi,
            kaspi_entrance_url: self.kaspi_entrance_url.clone(),
            kaspi_mtoken_url: self.kaspi_mtoken_url.clone(),
            kaspi_qrpay_url: self.kaspi_qrpay_url.clone(),
            ..ServeArgs::default()
        }
    }
}

/// The webhook URL checks of `kassa webhook …`: the same flags and variables as for `kassa
/// serve`, accepted anywhere after `webhook`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WebhookUrlArgs {
    /// Allow webhook URLs that resolve to loopback, private, link-local or other internal
    /// addresses (local development and tests only) [default: false]
    #[arg(long, env = "KASSA_WEBHOOK_ALLOW_PRIVATE", num_args = 0..=1, value_name = "BOOL",
          default_missing_value = "true", require_equals = true, global = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_allow_private: Option<bool>,
    /// Refuse webhook URLs that are not https [default: false]
    #[arg(long, env = "KASSA_WEBHOOK_HTTPS_ONLY", num_args = 0..=1, value_name = "BOOL",
          default_missing_value = "true", require_equals = true, global = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_https_only: Option<bool>,
}

impl WebhookUrlArgs {
    /// As `kassa serve` settings (the others from the file or their defaults).
    pub fn serve_args(&self) -> ServeArgs {
        ServeArgs {
            webhook_allow_private: self.webhook_allow_private,
            webhook_https_only: self.webhook_https_only,
            ..ServeArgs::default()
        }
    }
}

/// The file form: every setting optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database_url: Option<String>,
    kaspi: Option<KaspiMode>,
    kaspi_entrance_url: Option<String>,
    kaspi_mtoken_url: Option<String>,
    kaspi_qrpay_url: Option<String>,
    rate_limit_per_minute: Option<u32>,
    kaspi_calls_per_sec: Option<u32>,
    kaspi_app_version: Option<String>,
    kaspi_app_build: Option<String>,
    webhook_allow_private: Option<bool>,
    webhook_https_only: Option<bool>,
    webhook_timeout_secs: Option<u64>,
    webhook_retry_schedule: Option<String>,
    webhook_disable_after: Option<String>,
    http_header_timeout: Option<String>,
    http_body_timeout: Option<String>,
    http_idle_timeout: Option<String>,
    http_request_timeout: Option<String>,
    http_max_connections: Option<usize>,
    audit_retention: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub kaspi: KaspiMode,
    /// Base URLs for live mode (ignored in sandbox mode, where the simulator's are used).
    pub kaspi_endpoints: kaspi::Endpoints,
    /// The app fingerprint presented to Kaspi; version and build settable without a release.
    pub kaspi_app: kaspi::AppFingerprint,
    pub rate_limit_per_minute: u32,
    /// The most Kaspi calls a second for one cashier (at least 1).
    pub kaspi_calls_per_sec: u32,
    /// Webhook delivery.
    pub webhooks: WebhookConfig,
    /// Timeouts and the connection cap of the HTTP listener.
    pub http: HttpLimits,
    /// The bearer token `GET /metrics` asks for; `None`: open (`Debug` never shows it).
    pub metrics_token: Option<crate::metrics::MetricsToken>,
    /// How long audit log entries are kept.
    pub audit_retention: Duration,
}

/// Kaspi calls a second per cashier unless configured: under Kaspi's throttle of about 20.
pub const DEFAULT_KASPI_CALLS_PER_SEC: u32 = 15;
/// How long audit log entries are kept unless `audit_retention` says otherwise.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Resolves flags and environment (already parsed by clap) over the file over defaults.
    pub fn resolve(storage: &StorageArgs, serve: &ServeArgs) -> Result<Config, ConfigError> {
        let data_dir = storage
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("kassa-data"));
        let file = read_file(storage.config.as_deref(), &data_dir)?;
        let webhooks = resolve_webhooks(serve, &file)?;
        let http = resolve_http(serve, &file)?;
        let database_url = storage
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("kassa.db").display()));
        if !(database_url.starts_with("sqlite://")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError(
                "--database-url must start with sqlite:// or postgres://".into(),
            ));
        }
        let defaults = kaspi::Endpoints::default();
        let kaspi_endpoints = kaspi::Endpoints {
            entrance: pick(
                &serve.kaspi_entrance_url,
                file.kaspi_entrance_url,
                defaults.entrance,
            ),
            mtoken: pick(
                &serve.kaspi_mtoken_url,
                file.kaspi_mtoken_url,
                defaults.mtoken,
            ),
            qrpay: pick(&serve.kaspi_qrpay_url, file.kaspi_qrpay_url, defaults.qrpay),
        };
        for url in [
            &kaspi_endpoints.entrance,
            &kaspi_endpoints.mtoken,
            &kaspi_endpoints.qrpay,
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "Kaspi base URL {url:?} must be http(s)"
                )));
            }
        }
        let kaspi_calls_per_sec = serve
            .kaspi_calls_per_sec
            .or(file.kaspi_calls_per_sec)
            .unwrap_or(DEFAULT_KASPI_CALLS_PER_SEC);
        if kaspi_calls_per_sec == 0 {
            return Err(ConfigError(
                "kaspi_calls_per_sec must be at least 1 (Kaspi throttles at about 20)".into(),
            ));
        }
        let mut kaspi_app = kaspi::AppFingerprint::default();
        let version = std::env::var("KASSA_KASPI_APP_VERSION")
            .ok()
            .or(file.kaspi_app_version);
        let build = std::env::var("KASSA_KASPI_APP_BUILD")
            .ok()
            .or(file.kaspi_app_build);
        if let Some(v) = version {
            kaspi_app.version = v;
        }
        if let Some(b) = build {
            kaspi_app.build = b;
        }
        let audit_retention = match serve
            .audit_retention
            .as_ref()
            .or(file.audit_retention.as_ref())
        {
            None => DEFAULT_AUDIT_RETENTION,
            Some(text) => parse_duration(text)
                .filter(|d| *d >= Duration::from_secs(3600))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--audit-retention {text:?} must be a duration of at least 1h such as 90d"
                    ))
                })?,
        };
        Ok(Config {
            webhooks,
            http,
            audit_retention,
            listen: serve
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir,
            database_url,
            kaspi: serve.kaspi.or(file.kaspi).unwrap_or(KaspiMode::Sandbox),
            kaspi_endpoints: kaspi::Endpoints {
                entrance: kaspi_endpoints.entrance.trim_end_matches('/').to_owned(),
                mtoken: kaspi_endpoints.mtoken.trim_end_matches('/').to_owned(),
                qrpay: kaspi_endpoints.qrpay.trim_end_matches('/').to_owned(),
            },
            kaspi_app,
            rate_limit_per_minute: serve
                .rate_limit_per_minute
                .or(file.rate_limit_per_minute)
                .unwrap_or(60),
            kaspi_calls_per_sec,
            metrics_token: serve.metrics_token.clone().filter(|t| !t.is_empty()),
        })
    }
}

impl Config {
    /// How the Kaspi client reaches Kaspi: the configured base URLs in live mode; in sandbox
    /// mode the simulator mounted on the gateway's own listener at `listen` (an unspecified
    /// address such as `0.0.0.0` is reached on loopback).
    pub fn kaspi_client_config(&self, listen: SocketAddr) -> kaspi::ClientConfig {
        let sandbox = self.sandbox_client_config(listen);
        match self.kaspi {
            KaspiMode::Live => kaspi::ClientConfig {
                endpoints: self.kaspi_endpoints.clone(),
                ..sandbox
            },
            KaspiMode::Sandbox => sandbox,
        }
    }

    /// How the sandbox Kaspi inside the server listening on `listen` is reached: every
    /// organization in sandbox mode, test organizations in both modes.
    pub fn sandbox_client_config(&self, listen: SocketAddr) -> kaspi::ClientConfig {
        let mut addr = listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        kaspi::ClientConfig {
            endpoints: kaspi::Endpoints::under(&format!(
                "http://{addr}{}",
                crate::app::SANDBOX_PREFIX
            )),
            app: self.kaspi_app.clone().into(),
            ..kaspi::ClientConfig::default()
        }
    }
}

fn pick(flag: &Option<String>, file: Option<String>, default: String) -> String {
    flag.clone().or(file).unwrap_or(default)
}

fn read_file(explicit: Option<&Path>, data_dir: &Path) -> Result<FileConfig, ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = data_dir.join("kassa.toml");
            if !p.exists() {
                return Ok(FileConfig::default());
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let given = if explicit.is_some() {
            " (given with --config or KASSA_CONFIG)"
        } else {
            ""
        };
        ConfigError(format!(
            "cannot read the settings file {}{given}: {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        ConfigError(format!(
            "the settings file {} is not valid: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_file_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = StorageArgs {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let c = Config::resolve(&storage, &ServeArgs::default()).expect("defaults");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.kaspi, KaspiMode::Sandbox);
        assert_eq!(c.rate_limit_per_minute, 60);
        assert_eq!(c.kaspi_calls_per_sec, 15);
        assert!(c.database_url.starts_with("sqlite://") && c.database_url.ends_with("kassa.db"));

        std::fs::write(
            dir.path().join("kassa.toml"),
            "listen = \"127.0.0.1:9090\"\nrate_limit_per_minute = 5\n",
        )
        .expect("write");
        let c = Config::resolve(&storage, &ServeArgs::default()).expect("file");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.rate_limit_per_minute, 5);

        let flags = ServeArgs {
            rate_limit_per_minute: Some(0),
            kaspi_calls_per_sec: Some(8),
            ..Default::default()
        };
        let c = Config::resolve(&storage, &flags).expect("flags");
        assert_eq!(c.rate_limit_per_minute, 0);
        assert_eq!(c.kaspi_calls_per_sec, 8);
        let none = ServeArgs {
            kaspi_calls_per_sec: Some(0),
            ..Default::default()
        };
        let err = Config::resolve(&storage, &none).expect_err("refused");
        assert!(err.to_string().contains("kaspi_calls_per_sec"), "{err}");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9090");
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = StorageArgs {
            data_dir: Some(dir.path().to_path_buf()),
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        let err = Config::resolve(&storage, &ServeArgs::default()).expect_err("refused");
        assert!(err.to_string().contains("--database-url"));

        std::fs::write(dir.path().join("kassa.toml"), "no_such_setting = 1\n").expect("write");
        let storage = StorageArgs {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let err = Config::resolve(&storage, &ServeArgs::default()).expect_err("refused");
        assert!(err.to_string().contains("no_such_setting"), "{err}");
        let file = dir.path().join("kassa.toml");
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );

        let storage = StorageArgs {
            data_dir: Some(dir.path().to_path_buf()),
            config: Some(dir.path().join("missing.toml")),
            ..Default::default()
        };
        let err = Config::resolve(&storage, &ServeArgs::default()).expect_err("refused");
        assert!(err.to_string().contains("missing.toml"), "{err}");
        assert!(err.to_string().contains("--config"), "{err}");
    }

    /// Every `[default: …]` the help shows, given as the flag, resolves to the configuration
    /// that no flag gives: the defaults written into the help are the real ones.
    #[test]
    fn shown_defaults_are_the_defaults() {
        fn check<A: clap::Args + clap::FromArgMatches>(
            to_serve: impl Fn(&A) -> ServeArgs,
        ) -> usize {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = StorageArgs {
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            };
            let defaults = Config::resolve(&storage, &ServeArgs::default()).expect("defaults");
            let defaults = format!("{defaults:?}");
            // The caller's KASSA_* variables must not count.
            let command = A::augment_args(clap::Command::new("kassa"))
                .mut_args(|arg| arg.env(None::<&'static str>));
            let mut checked = 0;
            for arg in command.get_arguments() {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                let shown = help
                    .split("[default: ")
                    .nth(1)
                    .and_then(|rest| rest.split(']').next())
                    .unwrap_or_else(|| panic!("--{} shows no default: {help}", arg.get_id()));
                let flag = format!("--{}={shown}", arg.get_long().expect("a long flag"));
                let matches = command
                    .clone()
                    .try_get_matches_from(["kassa", flag.as_str()])
                    .unwrap_or_else(|e| panic!("{flag}: {e}"));
                let args = A::from_arg_matches(&matches).expect("parsed");
                let config = Config::resolve(&storage, &to_serve(&args))
                    .unwrap_or_else(|e| panic!("{flag}: {e}"));
                assert_eq!(format!("{config:?}"), defaults, "{flag} is not the default");
                checked += 1;
            }
            checked
        }
        // Every flag shows a default (`check` panics on one that does not).
        assert!(check(|a: &ServeArgs| a.clone()) >= 17);
        assert_eq!(check(KaspiArgs::serve_args), 5);
        assert_eq!(check(WebhookUrlArgs::serve_args), 2);
    }

    #[test]
    fn webhook_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = StorageArgs {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let c = Config::resolve(&storage, &ServeArgs::default()).expect("defaults");
        assert_eq!(c.webhooks, WebhookConfig::default());
        assert_eq!(c.webhooks.retry_schedule.len(), 10);
        assert_eq!(c.webhooks.timeout, Duration::from_secs(15));
        std::fs::write(
            dir.path().join("kassa.toml"),
            "webhook_allow_private = true\nwebhook_retry_schedule = \"100ms,2s\"\n",
        )
        .expect("write");
        let flags = ServeArgs {
            webhook_timeout_secs: Some(2),
            webhook_disable_after: Some("3h".into()),
            ..Default::default()
        };
        let c = Config::resolve(&storage, &flags).expect("file and flags");
        assert!(c.webhooks.allow_private);
        assert_eq!(
            c.webhooks.retry_schedule,
            vec![Duration::from_millis(100), Duration::from_secs(2)]
        );
        assert_eq!(c.webhooks.timeout, Duration::from_secs(2));
        assert_eq!(c.webhooks.disable_after, Duration::from_secs(3 * 3600));
        let bad = ServeArgs {
            webhook_retry_schedule: Some("5 parsecs".into()),
            ..Default::default()
        };
        let err = Config::resolve(&storage, &bad).expect_err("refused");
        assert!(
            err.to_string().contains("--webhook-retry-schedule"),
            "{err}"
        );
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(432_000)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5"), None);
    }

    #[test]
    fn http_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = StorageArgs {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let c = Config::resolve(&storage, &ServeArgs::default()).expect("defaults");
        assert_eq!(c.http, HttpLimits::default());
        assert_eq!(c.http.header_timeout, Duration::from_secs(10));
        assert_eq!(c.http.max_connections, 1024);
        std::fs::write(
            dir.path().join("kassa.toml"),
            "http_idle_timeout = \"5s\"\nhttp_max_connections = 10\nhttp_header_timeout = \"3s\"\n",
        )
        .expect("write");
        let flags = ServeArgs {
            http_header_timeout: Some("250ms".into()),
            http_request_timeout: Some("2m".into()),
            ..Default::default()
        };
        let c = Config::resolve(&storage, &flags).expect("file and flags");
        assert_eq!(
            c.http,
            HttpLimits {
                header_timeout: Duration::from_millis(250),
                body_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(120),
                max_connections: 10,
            }
        );
        for bad in [
            ServeArgs {
                http_body_timeout: Some("0s".into()),
                ..Default::default()
            },
            ServeArgs {
                http_idle_timeout: Some("soon".into()),
                ..Default::default()
            },
        ] {
            let err = Config::resolve(&storage, &bad).expect_err("refused");
            assert!(err.to_string().contains("timeout"), "{err}");
        }
        let none = ServeArgs {
            http_max_connections: Some(0),
            ..Default::default()
        };
        let err = Config::resolve(&storage, &none).expect_err("refused");
        assert!(err.to_string().contains("--http-max-connections"), "{err}");
    }
}
