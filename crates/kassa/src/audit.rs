//! The audit log's actors: who is making the changes of the request or command in hand.
//!
//! Every change made by a person or an API key is recorded in `audit_log` **in the same
//! transaction as the change** (see `store/audit.rs`). The store's methods that change things
//! learn who acts from [`current`]: the API's authentication sets it for the request
//! ([`acting`] around the rest of the request: the key's id, its visible prefix, the client's
//! address), the dashboard's sign-in check does the same for the signed-in user, and the CLI
//! for its command (`cli:<os user>`). Work of the gateway itself (a status found at Kaspi, a
//! subscription billed, a webhook retried) has no actor and is not in the audit log: it is in
//! the invoice's own events.
//!
//! The actor is a task-local of the request's future rather than an argument of every store
//! method: the handlers, the gateway and the in-process API calls of the dashboard all run
//! inside that future, and none of them has to carry it. A task spawned from it does not see
//! it (background work is not a person's change).
//!
//! What an entry holds is written by the store method that makes the change, and never holds a
//! secret value: an API key shows only its visible prefix, a webhook secret only that it was
//! rotated, a password or a TOTP secret never appears.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::Extensions;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

use crate::domain::ALMATY;

/// Who acts: kind, id, the name people read, the client's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub kind: ActorKind,
    /// The user's or key's id; `None` for the CLI.
    pub id: Option<i64>,
    /// The user's e-mail, the key's visible prefix, `cli:<os user>`.
    pub name: String,
    /// The client's address; `None` for the CLI.
    pub ip: Option<String>,
}

/// The kinds of actors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A dashboard user.
    User,
    /// An API key.
    ApiKey,
    /// The `kassa` command on the host.
    Cli,
}

crate::domain::spelled!(ActorKind {
    User = "user",
    ApiKey = "api_key",
    Cli = "cli",
});

impl Actor {
    /// A dashboard user, by id and e-mail.
    pub fn user(id: i64, email: &str, ip: Option<String>) -> Actor {
        Actor {
            kind: ActorKind::User,
            id: Some(id),
            name: email.to_owned(),
            ip,
        }
    }

    /// An API key, by id and visible prefix.
    pub fn api_key(id: i64, prefix: &str, ip: Option<String>) -> Actor {
        Actor {
            kind: ActorKind::ApiKey,
            id: Some(id),
            name: prefix.to_owned(),
            ip,
        }
    }

    /// The `kassa` command, run by the host's user (`$USER`, else `unknown`).
    pub fn cli() -> Actor {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        Actor {
            kind: ActorKind::Cli,
            id: None,
            name: format!("cli:{user}"),
            ip: None,
        }
    }
}

tokio::task_local! {
    static ACTOR: Actor;
}

/// Runs `work` with `actor` as the one making its changes.
pub async fn acting<F: Future>(actor: Actor, work: F) -> F::Output {
    ACTOR.scope(actor, work).await
}

/// The client's address of a request, as the listener saw it (`crate::server` puts it in).
/// Behind a reverse proxy this is the proxy's address.
pub fn client_ip(extensions: &Extensions) -> Option<String> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// Who makes the changes of the request or command in hand; `None` for the gateway's own work.
pub fn current() -> Option<Actor> {
    ACTOR.try_with(Actor::clone).ok()
}

/// `YYYY-MM-DD` (the start of that day in Almaty) or an RFC 3339 moment, as unix ms.
pub fn parse_moment(text: &str) -> Result<i64, String> {
    let at = if let Ok(day) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        PrimitiveDateTime::new(day, Time::MIDNIGHT).assume_offset(ALMATY)
    } else {
        OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| format!("`{text}` is neither YYYY-MM-DD nor an RFC 3339 moment"))?
    };
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| "out of range".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_days_in_almaty_or_rfc3339() {
        // 2026-11-30 00:00 in Almaty is 2026-11-29 19:00 UTC.
        assert_eq!(parse_moment("2026-11-30"), Ok(1_795_978_800_000));
        assert_eq!(parse_moment("2026-11-29T19:00:00Z"), Ok(1_795_978_800_000));
        assert!(parse_moment("yesterday").is_err());
        assert!(parse_moment("2026-13-01").is_err());
    }

    #[tokio::test]
    async fn the_actor_is_known_inside_its_scope_only() {
        assert_eq!(current(), None);
        let key = Actor::api_key(7, "kassa_abcdef", Some("127.0.0.1".into()));
        let seen = acting(key.clone(), async { current() }).await;
        assert_eq!(seen, Some(key.clone()));
        let spawned = acting(key, async { tokio::spawn(async { current() }).await.ok() }).await;
        assert_eq!(
            spawned,
            Some(None),
            "a spawned task is the gateway's own work"
        );
        assert_eq!(current(), None);
    }
}
