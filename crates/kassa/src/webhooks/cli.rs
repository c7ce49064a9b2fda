//! `kassa webhook …`: the webhook endpoints of an organization from the command line, through
//! the same [`Webhooks`] functions as `/api/v1/webhooks`. Data goes to stdout (a new secret
//! alone on its line, once), notes to stderr. The URL checks of `kassa serve`
//! (`--webhook-allow-private`, `--webhook-https-only`, their `KASSA_WEBHOOK_*` variables and the
//! settings file) apply here the same way; the flags are taken anywhere after `webhook`.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use clap::Subcommand;

use super::{EndpointInput, WebhookError, Webhooks};
use crate::cli::{find_org, load_master_key, open, print_out, table, when, Slug};
use crate::config::{StorageArgs, WebhookUrlArgs};
use crate::store::{WebhookEndpoint, WebhookFormat};

/// `kassa webhook [settings] <command>`.
#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// The URL checks of `kassa serve`.
    #[command(flatten, next_help_heading = "URL checks (as for `kassa serve`)")]
    pub urls: WebhookUrlArgs,
    #[command(subcommand)]
    pub command: WebhookCommand,
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create an endpoint; prints its secret alone on stdout. It is shown only this once.
    Create {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// Where events are POSTed.
        #[arg(long)]
        url: String,
        /// Event names separated by commas, or `*` for all.
        #[arg(long, default_value = "*", value_delimiter = ',')]
        events: Vec<String>,
        /// `apipay` or `xpayment`: the body and signature format.
        #[arg(long, default_value = "apipay", value_parser = parse_format)]
        format: WebhookFormat,
        /// A description, for people.
        #[arg(long)]
        description: Option<String>,
    },
    /// List an organization's endpoints.
    List {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
    },
    /// Show one endpoint.
    Get {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// The endpoint's id, as `list` shows it.
        id: i64,
    },
    /// Change an endpoint; only the options given change. `--active true` re-enables it.
    Update {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// The endpoint's id, as `list` shows it.
        id: i64,
        /// A new URL.
        #[arg(long)]
        url: Option<String>,
        /// New event names separated by commas, or `*` for all.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        /// A new body and signature format: `apipay` or `xpayment`.
        #[arg(long, value_parser = parse_format)]
        format: Option<WebhookFormat>,
        /// A description, for people.
        #[arg(long)]
        description: Option<String>,
        /// `true` re-enables a disabled endpoint, `false` disables it.
        #[arg(long)]
        active: Option<bool>,
    },
    /// Delete an endpoint and its delivery log.
    Delete {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// The endpoint's id, as `list` shows it.
        id: i64,
    },
    /// Give an endpoint a new secret (printed alone on stdout, once); the old one keeps
    /// signing the `webhook-signature` header for the grace period.
    RotateSecret {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// The endpoint's id, as `list` shows it.
        id: i64,
        /// Seconds the old secret keeps signing (0: stops at once).
        #[arg(long, default_value_t = 86_400)]
        grace_secs: u64,
    },
    /// The endpoint's deliveries, newest first, one line per attempt.
    Attempts {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// The endpoint's id, as `list` shows it.
        id: i64,
        /// The page to show, from 1.
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Deliveries a page.
        #[arg(long, default_value_t = 20)]
        per_page: u32,
    },
    /// Queue a delivery again now (same webhook-id, same bytes).
    Redeliver {
        /// The organization's slug.
        #[arg(long)]
        org: Slug,
        /// The endpoint's id, as `list` shows it.
        id: i64,
        /// The delivery's id, as `attempts` shows it.
        delivery: i64,
    },
}

fn parse_format(text: &str) -> Result<WebhookFormat, String> {
    WebhookFormat::parse(text).ok_or_else(|| "the format is apipay or xpayment".to_owned())
}

fn explain(e: WebhookError) -> anyhow::Error {
    match e {
        WebhookError::Invalid { field, message } => anyhow!("{field}: {message}"),
        WebhookError::NotFound => anyhow!(
            "no such webhook endpoint or delivery in this organization (see `kassa webhook list`)"
        ),
        other => anyhow::Error::new(other),
    }
}

fn describe(e: &WebhookEndpoint) -> String {
    let mut lines = vec![
        format!("id: {}", e.id),
        format!("subscription_id: {}", e.endpoint_id),
        format!("url: {}", e.url),
        format!("format: {}", e.format.as_str()),
        format!("events: {}", e.events.join(",")),
        format!("active: {}", e.is_active),
    ];
    if let Some(d) = &e.description {
        lines.push(format!("description: {d}"));
    }
    if let Some(r) = &e.disabled_reason {
        lines.push(format!("disabled_reason: {r}"));
    }
    if let Some(since) = e.failing_since {
        lines.push(format!("failing_since: {}", when(since)));
    }
    lines.push(format!("created_at: {}", when(e.created_at)));
    lines.join("\n") + "\n"
}

/// Runs one `kassa webhook` command.
pub async fn run(storage: &StorageArgs, args: WebhookArgs) -> anyhow::Result<()> {
    let (config, store) = open(storage, &args.urls.serve_args()).await?;
    let master_key = load_master_key(&config)?;
    let webhooks = Webhooks::new(store.clone(), master_key, config.webhooks.clone())
        .context("preparing the webhook client")?;
    match args.command {
        WebhookCommand::Create {
            org,
            url,
            events,
            format,
            description,
        } => {
            let org = find_org(&store, &org).await?;
            let (endpoint, secret) = webhooks
                .create(
                    org.id,
                    EndpointInput {
                        url: Some(url),
                        events: Some(events),
                        format: Some(format),
                        description: Some(description),
                        is_active: None,
                    },
                )
                .await
                .map_err(explain)?;
            print_out(&format!("{secret}\n"))?;
            eprintln!(
                "webhook endpoint {} (subscription {}) of organization {}: its secret is shown \
                 only this once, keep it now",
                endpoint.id, endpoint.endpoint_id, org.slug
            );
        }
        WebhookCommand::List { org } => {
            let org = find_org(&store, &org).await?;
            let endpoints = webhooks.list(org.id).await.map_err(explain)?;
            if endpoints.is_empty() {
                eprintln!("organization {} has no webhook endpoints", org.slug);
                return Ok(());
            }
            let rows = endpoints
                .iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        e.format.as_str().to_owned(),
                        if e.is_active { "yes" } else { "no" }.to_owned(),
                        e.events.join(","),
                        e.url.clone(),
                    ]
                })
                .collect::<Vec<_>>();
            print_out(&table(&["ID", "FORMAT", "ACTIVE", "EVENTS", "URL"], &rows))?;
        }
        WebhookCommand::Get { org, id } => {
            let org = find_org(&store, &org).await?;
            let endpoint = webhooks.get(org.id, id).await.map_err(explain)?;
            print_out(&describe(&endpoint))?;
        }
        WebhookCommand::Update {
            org,
            id,
            url,
            events,
            format,
            description,
            active,
        } => {
            let org = find_org(&store, &org).await?;
            let endpoint = webhooks
                .update(
                    org.id,
                    id,
                    EndpointInput {
                        url,
                        events,
                        format,
                        description: description.map(Some),
                        is_active: active,
                    },
                )
                .await
                .map_err(explain)?;
            print_out(&describe(&endpoint))?;
        }
        WebhookCommand::Delete { org, id } => {
            let org = find_org(&store, &org).await?;
            webhooks.delete(org.id, id).await.map_err(explain)?;
            eprintln!("deleted webhook endpoint {id} of organization {}", org.slug);
        }
        WebhookCommand::RotateSecret {
            org,
            id,
            grace_secs,
        } => {
            let org = find_org(&store, &org).await?;
            let (_, secret) = webhooks
                .rotate_secret(org.id, id, Duration::from_secs(grace_secs))
                .await
                .map_err(explain)?;
            print_out(&format!("{secret}\n"))?;
            eprintln!(
                "new secret of webhook endpoint {id}, shown only this once; the old one signs \
                 for {grace_secs} more seconds"
            );
        }
        WebhookCommand::Attempts {
            org,
            id,
            page,
            per_page,
        } => {
            let org = find_org(&store, &org).await?;
            let (logs, total) = webhooks
                .deliveries(org.id, id, page, per_page)
                .await
                .map_err(explain)?;
            let mut rows = Vec::new();
            for log in &logs {
                let d = &log.delivery;
                if log.attempts.is_empty() {
                    rows.push(vec![
                        d.id.to_string(),
                        d.event_type.clone(),
                        d.status.as_str().to_owned(),
                        "-".into(),
                        when(d.created_at),
                        "-".into(),
                        "-".into(),
                        d.last_error.clone().unwrap_or_else(|| "-".into()),
                    ]);
                }
                for a in &log.attempts {
                    rows.push(vec![
                        d.id.to_string(),
                        d.event_type.clone(),
                        d.status.as_str().to_owned(),
                        a.attempt.to_string(),
                        when(a.at),
                        a.status_code.map_or_else(|| "-".into(), |s| s.to_string()),
                        format!("{} ms", a.latency_ms),
                        a.error.clone().unwrap_or_else(|| "-".into()),
                    ]);
                }
            }
            print_out(&table(
                &[
                    "DELIVERY", "EVENT", "STATUS", "ATTEMPT", "AT", "HTTP", "LATENCY", "ERROR",
                ],
                &rows,
            ))?;
            eprintln!("{total} deliveries in all (page {page})");
        }
        WebhookCommand::Redeliver { org, id, delivery } => {
            let org = find_org(&store, &org).await?;
            webhooks
                .redeliver(org.id, id, delivery)
                .await
                .map_err(explain)?;
            eprintln!("delivery {delivery} queued again; `kassa serve` sends it within a second");
        }
    }
    Ok(())
}
