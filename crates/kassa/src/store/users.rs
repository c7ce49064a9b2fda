//! Dashboard users of an organization (the team: invitations, roles, removal, keeping an
//! active owner), their browser sessions and one-time sign-in links.
//! Session and link tokens are looked up by their SHA-256 hash; the raw tokens are never kept.

use crate::db::{DbError, Row, Value};
use crate::domain::Role;
use crate::store::UserRepo;

use super::audit::{note, Change};
use super::{conflict_on_unique, StoreError};

/// A person who signs in to the dashboard of one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardUser {
    pub id: i64,
    pub org_id: i64,
    pub email: String,
    /// The argon2 hash (PHC string); `None` until a password is set.
    pub password_hash: Option<String>,
    pub role: Role,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    /// Until when sign-in is refused after too many failures in a row.
    pub locked_until: Option<i64>,
}

/// A live session and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    pub user_id: i64,
    pub org_id: i64,
    pub email: String,
    pub role: Role,
    pub csrf_token: String,
    pub expires_at: i64,
    /// Whether the user has a password (an invited member has none until they set one).
    pub has_password: bool,
}

const USER_COLUMNS: &str =
    "id, org_id, email, password_hash, role, created_at, disabled_at, locked_until";

fn user_from_row(row: &Row) -> Result<DashboardUser, DbError> {
    Ok(DashboardUser {
        id: row.i64("id")?,
        org_id: row.i64("org_id")?,
        email: row.text("email")?,
        password_hash: row.opt_text("password_hash")?,
        role: row.parsed("role", Role::parse)?,
        created_at: row.i64("created_at")?,
        disabled_at: row.opt_i64("disabled_at")?,
        locked_until: row.opt_i64("locked_until")?,
    })
}

impl UserRepo {
    /// Adds a user to `org_id`; [`StoreError::Conflict`] when the e-mail is taken (in any
    /// organization), [`StoreError::NotFound`] when the organization does not exist.
    pub async fn create_user(
        &self,
        org_id: i64,
        email: &str,
        password_hash: Option<&str>,
        role: Role,
    ) -> Result<DashboardUser, StoreError> {
        let (email, hash, now) = (
            email.to_owned(),
            password_hash.map(str::to_owned),
            self.now_ms(),
        );
        let sql = format!(
            "INSERT INTO dashboard_users (org_id, email, password_hash, role, created_at) \
             SELECT id, $2, $3, $4, $5 FROM organizations WHERE id = $1 RETURNING {USER_COLUMNS}"
        );
        let actor = crate::audit::current();
        let created = self
            .db
            .write(move |tx| {
                let params: [Value; 5] = [
                    org_id.into(),
                    (&email).into(),
                    hash.clone().into(),
                    role.as_str().into(),
                    now.into(),
                ];
                let user = match tx.query_opt(&sql, &params)? {
                    Some(row) => user_from_row(&row)?,
                    None => return Err(StoreError::NotFound),
                };
                let change =
                    Change::new(org_id, "user.created", format_args!("user:{}", user.email))
                        .with(serde_json::json!({ "role": role.as_str() }));
                note(tx, actor.as_ref(), now, &change)?;
                Ok(user)
            })
            .await;
        conflict_on_unique(created, "a user with this e-mail exists")
    }

    /// The users of `org_id`, oldest first.
    pub async fn list_users(&self, org_id: i64) -> Result<Vec<DashboardUser>, StoreError> {
        let sql =
            format!("SELECT {USER_COLUMNS} FROM dashboard_users WHERE org_id = $1 ORDER BY id");
        self.db
            .read(move |tx| Ok(super::all_rows(tx, &sql, &[org_id.into()], user_from_row)?))
            .await
    }

    /// The user with `email` (lower-cased by the caller), disabled or not.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<DashboardUser>, StoreError> {
        let email = email.to_owned();
        let sql = format!("SELECT {USER_COLUMNS} FROM dashboard_users WHERE email = $1");
        self.db
            .read(move |tx| {
                Ok(tx
                    .query_opt(&sql, &[email.into()])?
                    .map(|row| user_from_row(&row))
                    .transpose()?)
            })
            .await
    }

    /// Disables the user with `email` and ends its sessions; false when there is none.
    pub async fn disable_user(&self, email: &str) -> Result<bool, StoreError> {
        let (email, now) = (email.to_owned(), self.now_ms());
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let Some(row) = tx.query_opt(
                    "UPDATE dashboard_users SET disabled_at = COALESCE(disabled_at, $2) \
                     WHERE email = $1 RETURNING id, org_id",
                    &[(&email).into(), now.into()],
                )?
                else {
                    return Ok(false);
                };
                let change = Change::new(
                    row.i64("org_id")?,
                    "user.disabled",
                    format_args!("user:{email}"),
                );
                note(tx, actor.as_ref(), now, &change)?;
                tx.execute(
                    "UPDATE dashboard_sessions SET ended_at = $2 \
                     WHERE user_id = $1 AND ended_at IS NULL",
                    &[row.i64("id")?.into(), now.into()],
                )?;
                Ok::<_, StoreError>(true)
            })
            .await
    }

    /// Counts a failed sign-in of `user_id`; the `max`-th in a row refuses sign-in for
    /// `lock_ms` from now.
    pub async fn note_failed_login(
        &self,
        user_id: i64,
        max: i64,
        lock_ms: i64,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE dashboard_users SET failed_logins = failed_logins + 1, \
                     locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END \
                     WHERE id = $1",
                    &[user_id.into(), max.into(), (now + lock_ms).into()],
                )?;
                Ok(())
            })
            .await
    }

    /// A new session of `user_id` (its failed sign-ins forgotten), for the token with
    /// `token_hash`, until `expires_at`.
    pub async fn start_session(
        &self,
        user_id: i64,
        token_hash: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let (hash, csrf, now) = (token_hash.to_owned(), csrf_token.to_owned(), self.now_ms());
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE dashboard_users SET failed_logins = 0, locked_until = NULL WHERE id = $1",
                    &[user_id.into()],
                )?;
                tx.execute(
                    "INSERT INTO dashboard_sessions \
                     (token_hash, user_id, csrf_token, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[(&hash).into(), user_id.into(), (&csrf).into(), now.into(), expires_at.into()],
                )?;
                Ok(())
            })
            .await
    }

    /// The live session with `token_hash`: not ended, not expired, its user not disabled.
    pub async fn session(&self, token_hash: &str) -> Result<Option<DashboardSession>, StoreError> {
        let (hash, now) = (token_hash.to_owned(), self.now_ms());
        self.db
            .read(move |tx| {
                let row = tx.query_opt(
                    "SELECT s.user_id, u.org_id, u.email, u.role, s.csrf_token, s.expires_at, \
                     u.password_hash \
                     FROM dashboard_sessions s JOIN dashboard_users u ON u.id = s.user_id \
                     WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 \
                     AND u.disabled_at IS NULL",
                    &[(&hash).into(), now.into()],
                )?;
                let session = row
                    .map(|row| -> Result<_, DbError> {
                        Ok(DashboardSession {
                            user_id: row.i64("user_id")?,
                            org_id: row.i64("org_id")?,
                            email: row.text("email")?,
                            role: row.parsed("role", Role::parse)?,
                            csrf_token: row.text("csrf_token")?,
                            expires_at: row.i64("expires_at")?,
                            has_password: row.opt_text("password_hash")?.is_some(),
                        })
                    })
                    .transpose()?;
                Ok(session)
            })
            .await
    }

    /// Ends the session with `token_hash` (signing out).
    pub async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let (hash, now) = (token_hash.to_owned(), self.now_ms());
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE dashboard_sessions SET ended_at = $2 \
                     WHERE token_hash = $1 AND ended_at IS NULL",
                    &[(&hash).into(), now.into()],
                )?;
                Ok(())
            })
            .await
    }

    /// Records a one-time sign-in link of `user_id`, usable until `expires_at`.
    pub async fn create_login_token(
        &self,
        user_id: i64,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let (hash, now) = (token_hash.to_owned(), self.now_ms());
        self.db
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO dashboard_login_tokens (token_hash, user_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                    &[(&hash).into(), user_id.into(), now.into(), expires_at.into()],
                )?;
                Ok(())
            })
            .await
    }

    /// Uses up the one-time link with `token_hash`: its user, when the link was unused,
    /// unexpired and its user is not disabled. A link works once, also across processes.
    pub async fn take_login_token(&self, token_hash: &str) -> Result<Option<i64>, StoreError> {
        let (hash, now) = (token_hash.to_owned(), self.now_ms());
        self.db
            .write(move |tx| {
                let row = tx.query_opt(
                    "UPDATE dashboard_login_tokens SET used_at = $2 \
                     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                     AND user_id IN (SELECT id FROM dashboard_users WHERE disabled_at IS NULL) \
                     RETURNING user_id",
                    &[(&hash).into(), now.into()],
                )?;
                Ok(row.map(|row| row.i64("user_id")).transpose()?)
            })
            .await
    }
}

/// A member of the team as the team page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: DashboardUser,
    /// Whether the member ever signed in (an invited member has not yet).
    pub joined: bool,
}

/// A change to a member of the team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamChange {
    /// A new role.
    Role(Role),
    /// Disabled: signing in is refused, sessions end at once.
    Remove,
}

/// The conflict of a change that would leave the organization without an active owner.
pub const LAST_OWNER: &str = "the organization keeps at least one active owner";
/// The conflict of a change made on a member whose role changed meanwhile.
pub const ROLE_CHANGED: &str = "the member's role has changed meanwhile";

impl UserRepo {
    /// The team of `org_id`, oldest first, with whether each member ever signed in.
    pub async fn list_members(&self, org_id: i64) -> Result<Vec<Member>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, (SELECT COUNT(*) FROM dashboard_sessions s \
             WHERE s.user_id = dashboard_users.id) AS sessions \
             FROM dashboard_users WHERE org_id = $1 ORDER BY id"
        );
        self.db
            .read(move |tx| {
                Ok(super::all_rows(tx, &sql, &[org_id.into()], |row| {
                    Ok(Member {
                        user: user_from_row(row)?,
                        joined: row.i64("sessions")? > 0,
                    })
                })?)
            })
            .await
    }

    /// The user `user_id` of `org_id`, disabled or not.
    pub async fn user_in_org(
        &self,
        org_id: i64,
        user_id: i64,
    ) -> Result<Option<DashboardUser>, StoreError> {
        let sql =
            format!("SELECT {USER_COLUMNS} FROM dashboard_users WHERE org_id = $1 AND id = $2");
        self.db
            .read(move |tx| {
                Ok(tx
                    .query_opt(&sql, &[org_id.into(), user_id.into()])?
                    .map(|row| user_from_row(&row))
                    .transpose()?)
            })
            .await
    }

    /// Invites `email` to `org_id` with `role`: a new user without a password, or a member of
    /// the same organization who was removed, back with `role` and without their old password.
    /// [`StoreError::Conflict`] when the e-mail belongs to an active user or another
    /// organization.
    pub async fn invite(
        &self,
        org_id: i64,
        email: &str,
        role: Role,
    ) -> Result<DashboardUser, StoreError> {
        let (email, now) = (email.to_owned(), self.now_ms());
        let sql_back = format!(
            "UPDATE dashboard_users SET role = $3, password_hash = NULL, disabled_at = NULL, \
             failed_logins = 0, locked_until = NULL \
             WHERE org_id = $1 AND email = $2 AND disabled_at IS NOT NULL RETURNING {USER_COLUMNS}"
        );
        let sql_new = format!(
            "INSERT INTO dashboard_users (org_id, email, password_hash, role, created_at) \
             VALUES ($1, $2, NULL, $3, $4) RETURNING {USER_COLUMNS}"
        );
        let actor = crate::audit::current();
        let invited = self
            .db
            .write(move |tx| {
                let params = [org_id.into(), (&email).into(), role.as_str().into()];
                let (user, back) = match tx.query_opt(&sql_back, &params)? {
                    Some(row) => (user_from_row(&row)?, true),
                    None => {
                        let row = tx.query_one(
                            &sql_new,
                            &[
                                org_id.into(),
                                (&email).into(),
                                role.as_str().into(),
                                now.into(),
                            ],
                        )?;
                        (user_from_row(&row)?, false)
                    }
                };
                let change = Change::new(org_id, "user.invited", format_args!("user:{email}"))
                    .with(serde_json::json!({"role": role.as_str(), "returning": back}));
                note(tx, actor.as_ref(), now, &change)?;
                Ok::<_, StoreError>(user)
            })
            .await;
        conflict_on_unique(invited, "a user with this e-mail exists")
    }

    /// Applies `change` to member `user_id` of `org_id` whose role is still `was` (else
    /// [`ROLE_CHANGED`]); refused with [`LAST_OWNER`] when no active owner would remain.
    /// Removing ends the member's sessions in the same transaction. The organization's row is
    /// locked first, so two owners removing each other at once cannot both succeed.
    pub async fn change_member(
        &self,
        org_id: i64,
        user_id: i64,
        was: Role,
        change: TeamChange,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE organizations SET name = name WHERE id = $1",
                    &[org_id.into()],
                )?;
                let (changed, audit) = match change {
                    TeamChange::Role(role) => (
                        tx.query_opt(
                            "UPDATE dashboard_users SET role = $4 \
                             WHERE org_id = $1 AND id = $2 AND role = $3 AND disabled_at IS NULL \
                             RETURNING email",
                            &[
                                org_id.into(),
                                user_id.into(),
                                was.as_str().into(),
                                role.as_str().into(),
                            ],
                        )?,
                        (
                            "user.role_changed",
                            serde_json::json!({"from": was.as_str(), "to": role.as_str()}),
                        ),
                    ),
                    TeamChange::Remove => {
                        let row = tx.query_opt(
                            "UPDATE dashboard_users SET disabled_at = $4 \
                             WHERE org_id = $1 AND id = $2 AND role = $3 AND disabled_at IS NULL \
                             RETURNING email",
                            &[
                                org_id.into(),
                                user_id.into(),
                                was.as_str().into(),
                                now.into(),
                            ],
                        )?;
                        tx.execute(
                            "UPDATE dashboard_sessions SET ended_at = $2 \
                             WHERE user_id = $1 AND ended_at IS NULL",
                            &[user_id.into(), now.into()],
                        )?;
                        (
                            row,
                            ("user.removed", serde_json::json!({"role": was.as_str()})),
                        )
                    }
                };
                let Some(changed) = changed else {
                    return Err(StoreError::Conflict(ROLE_CHANGED.to_owned()));
                };
                let (action, details) = audit;
                let target = format!("user:{}", changed.text("email")?);
                note(
                    tx,
                    actor.as_ref(),
                    now,
                    &Change::new(org_id, action, target).with(details),
                )?;
                let owners = tx.query_one(
                    "SELECT COUNT(*) AS n FROM dashboard_users \
                     WHERE org_id = $1 AND role = 'owner' AND disabled_at IS NULL",
                    &[org_id.into()],
                )?;
                if owners.i64("n")? == 0 {
                    return Err(StoreError::Conflict(LAST_OWNER.to_owned()));
                }
                Ok(())
            })
            .await
    }

    /// Sets the password (an argon2 hash) of `user_id`; its audit entry says that it was set,
    /// never the password or its hash.
    pub async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<(), StoreError> {
        let (hash, now) = (password_hash.to_owned(), self.now_ms());
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let row = tx.query_one(
                    "UPDATE dashboard_users SET password_hash = $2 WHERE id = $1 \
                     RETURNING org_id, email",
                    &[user_id.into(), (&hash).into()],
                )?;
                let target = format!("user:{}", row.text("email")?);
                let change = Change::new(row.i64("org_id")?, "user.password_set", target);
                note(tx, actor.as_ref(), now, &change)?;
                Ok(())
            })
            .await
    }
}
