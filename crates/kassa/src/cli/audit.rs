//! `kassa audit list`: the audit log, filtered by organization, who, what and when; as a table
//! or JSON lines. The log is written by the store beside every change (see `crate::audit`) and
//! forgotten after `audit_retention_days` (see `Jobs::prune_audit_log`).

use super::{find_org, open, print_out, table, when, Slug};
use crate::audit::parse_moment;
use crate::config::{ServeArgs, StorageArgs};
use crate::store::AuditFilter;
use anyhow::{bail, Context as _};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, newest first.
    List {
        /// Only this organization's (default: every organization's and the deployment's).
        #[arg(long)]
        org: Option<Slug>,
        /// Only entries whose actor contains this: an e-mail, an API key prefix, `cli:`.
        #[arg(long)]
        actor: Option<String>,
        /// Only this action, or this kind of action (`invoice` for `invoice.created`, …).
        #[arg(long)]
        action: Option<String>,
        /// From this moment: `YYYY-MM-DD` (the day's start in Almaty) or RFC 3339.
        #[arg(long, value_parser = parse_moment)]
        since: Option<i64>,
        /// Before this moment, as `--since`.
        #[arg(long, value_parser = parse_moment)]
        until: Option<i64>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `kassa audit …`.
pub async fn run(storage: &StorageArgs, command: AuditCommand) -> anyhow::Result<()> {
    let (_, store) = open(storage, &ServeArgs::default()).await?;
    let AuditCommand::List {
        org,
        actor,
        action,
        since,
        until,
        limit,
        json,
    } = command;
    if !(1..=1000).contains(&limit) {
        bail!("--limit is between 1 and 1000");
    }
    let org_id = match &org {
        Some(slug) => Some(find_org(&store, slug).await?.id),
        None => None,
    };
    let filter = AuditFilter {
        org_id,
        actor,
        action,
        from: since,
        to: until,
        before_id: None,
        limit,
    };
    let entries = store
        .audit()
        .list(&filter)
        .await
        .context("reading the audit log")?;
    if json {
        let mut out = String::new();
        for entry in &entries {
            out.push_str(&serde_json::to_string(entry)?);
            out.push('\n');
        }
        return print_out(&out);
    }
    if entries.is_empty() {
        eprintln!("no audit entries match");
        return Ok(());
    }
    let rows = entries
        .into_iter()
        .map(|e| {
            vec![
                when(e.at),
                e.actor,
                e.ip.unwrap_or_else(|| "-".into()),
                e.action,
                e.target,
                e.details.to_string(),
            ]
        })
        .collect::<Vec<_>>();
    print_out(&table(
        &["AT", "ACTOR", "IP", "ACTION", "TARGET", "DETAILS"],
        &rows,
    ))
}
