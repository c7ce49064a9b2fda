//! The audit log (`audit_log`, migration 0017): entries written by the store's changing methods
//! inside their own transactions ([`note`]), read back filtered ([`AuditRepo::list`]), and
//! forgotten once older than the configured retention ([`AuditRepo::prune`]). Who acts comes
//! from [`crate::audit::current`], read by the method before its transaction starts.

use serde_json::Value as Json;

use crate::audit::{Actor, ActorKind};
use crate::db::{DbError, Row, Tx, Value};
use crate::store::AuditRepo;

use super::{all_rows, StoreError};

/// One change, as the method making it describes it.
#[derive(Debug, Clone)]
pub struct Change {
    /// `None`: a change of the whole deployment (settings).
    pub org_id: Option<i64>,
    /// `invoice.created`, `api_key.revoked`, … (`thing.past_tense`).
    pub action: &'static str,
    /// `invoice:KP-…`, `api_key:12`, …
    pub target: String,
    /// What changed; never a secret value.
    pub details: Json,
}

impl Change {
    /// A change of `org_id`'s `target` (`kind:id`).
    pub fn new(org_id: i64, action: &'static str, target: impl std::fmt::Display) -> Change {
        Change {
            org_id: Some(org_id),
            action,
            target: target.to_string(),
            details: Json::Object(Default::default()),
        }
    }

    /// With `details` (a JSON object) as what changed.
    pub fn with(mut self, details: Json) -> Change {
        self.details = details;
        self
    }
}

/// Records `change` by `actor` at `at` inside the caller's transaction; nothing when no person
/// or key acts (the gateway's own work). Sent with the transaction's next statement on
/// PostgreSQL (it answers nothing), so it costs no round trip of its own.
pub(crate) fn note(
    tx: &mut dyn Tx,
    actor: Option<&Actor>,
    at: i64,
    change: &Change,
) -> Result<(), DbError> {
    let Some(actor) = actor else {
        return Ok(());
    };
    tx.defer(
        "INSERT INTO audit_log (org_id, at, actor_kind, actor_id, actor, ip, action, target, \
         details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            change.org_id.into(),
            at.into(),
            actor.kind.as_str().into(),
            actor.id.into(),
            (&actor.name).into(),
            actor.ip.as_ref().into(),
            change.action.into(),
            (&change.target).into(),
            change.details.to_string().into(),
        ],
    )
}

/// The names whose flag is set: the fields a change sets, for its details.
pub(crate) fn fields_set(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields
        .iter()
        .filter_map(|&(name, set)| set.then_some(name))
        .collect()
}

/// One entry as read back.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub org_id: Option<i64>,
    pub at: i64,
    pub actor_kind: ActorKind,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub ip: Option<String>,
    pub action: String,
    pub target: String,
    pub details: Json,
}

/// Which entries to read; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// `None`: every organization's and the deployment's.
    pub org_id: Option<i64>,
    /// The actor's name contains this (case-insensitive), e.g. an e-mail or a key prefix.
    pub actor: Option<String>,
    /// The action is this, or starts with it followed by `.` (`invoice` matches
    /// `invoice.created` and `invoice.cancelled`).
    pub action: Option<String>,
    /// At or after (unix ms).
    pub from: Option<i64>,
    /// Before (unix ms).
    pub to: Option<i64>,
    /// Entries older than this id only (the next page after an entry).
    pub before_id: Option<i64>,
    /// At most this many, newest first.
    pub limit: i64,
}

const COLUMNS: &str = "id, org_id, at, actor_kind, actor_id, actor, ip, action, target, details";

fn entry_from_row(row: &Row) -> Result<AuditEntry, DbError> {
    let details = row.text("details")?;
    Ok(AuditEntry {
        id: row.i64("id")?,
        org_id: row.opt_i64("org_id")?,
        at: row.i64("at")?,
        actor_kind: row.parsed("actor_kind", ActorKind::parse)?,
        actor_id: row.opt_i64("actor_id")?,
        actor: row.text("actor")?,
        ip: row.opt_text("ip")?,
        action: row.text("action")?,
        target: row.text("target")?,
        // Written by `note` as JSON; a row someone edited by hand is shown as its text.
        details: serde_json::from_str(&details).unwrap_or(Json::String(details)),
    })
}

impl AuditRepo {
    /// The entries `filter` matches, newest first.
    pub async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let mut clauses = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        // The placeholder of `value`, added to the parameters.
        let mut arg = |value: Value| {
            params.push(value);
            format!("${}", params.len())
        };
        if let Some(org_id) = filter.org_id {
            clauses.push(format!("org_id = {}", arg(org_id.into())));
        }
        if let Some(actor) = filter.actor.as_deref().filter(|a| !a.is_empty()) {
            let pattern = format!("%{}%", escape_like(&actor.to_lowercase()));
            clauses.push(format!(
                "LOWER(actor) LIKE {} ESCAPE '\\'",
                arg(pattern.into())
            ));
        }
        if let Some(action) = filter.action.as_deref().filter(|a| !a.is_empty()) {
            let pattern = format!("{}.%", escape_like(action));
            let (exact, under) = (arg(action.into()), arg(pattern.into()));
            clauses.push(format!(
                "(action = {exact} OR action LIKE {under} ESCAPE '\\')"
            ));
        }
        if let Some(from) = filter.from {
            clauses.push(format!("at >= {}", arg(from.into())));
        }
        if let Some(to) = filter.to {
            clauses.push(format!("at < {}", arg(to.into())));
        }
        if let Some(before) = filter.before_id {
            clauses.push(format!("id < {}", arg(before.into())));
        }
        let limit = arg(filter.limit.clamp(1, 1000).into());
        let wheres = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql =
            format!("SELECT {COLUMNS} FROM audit_log {wheres} ORDER BY id DESC LIMIT {limit}");
        self.db
            .read(move |tx| Ok(all_rows(tx, &sql, &params, entry_from_row)?))
            .await
    }

    /// Forgets the entries older than `before` (unix ms); how many.
    pub async fn prune(&self, before: i64) -> Result<u64, StoreError> {
        self.db
            .write(move |tx| {
                Ok(tx.execute("DELETE FROM audit_log WHERE at < $1", &[before.into()])?)
            })
            .await
    }
}

/// `text` with LIKE's wildcards taken literally (escape character `\`).
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
