//! Two-factor sign-in of dashboard users: the sealed TOTP secret (sealing and codes are the
//! dashboard's; the store keeps what it is given), the last step accepted, recovery codes by
//! their hash, sign-ins waiting for their second factor, and an organization's rule that every
//! user has it. Turning it on or off and the rule are audited (`two_factor.enabled`,
//! `two_factor.disabled`, `organization.two_factor_required`), never with a secret or a code.

use crate::db::{DbError, Tx, Value};
use crate::store::audit::{note, Change};
use crate::store::UserRepo;

use super::StoreError;

/// A user's two-factor state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TwoFactor {
    /// The sealed secret (base64), while enrolling or enabled.
    pub sealed_secret: Option<String>,
    /// When it was confirmed; `None` with a secret: enrolment not finished.
    pub enabled_at: Option<i64>,
    /// Recovery codes not used yet.
    pub recovery_codes_left: i64,
}

impl TwoFactor {
    pub fn enabled(&self) -> bool {
        self.enabled_at.is_some()
    }
}

/// A sign-in whose password or link was right, waiting for the second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignin {
    pub user_id: i64,
    pub email: String,
    /// Until when the user's sign-in is refused after too many failures.
    pub locked_until: Option<i64>,
    /// Where to go once signed in.
    pub next_path: String,
}

/// The audit entry of `action` on `user_id`'s two-factor (named by e-mail, as users are).
fn user_change(tx: &mut dyn Tx, user_id: i64, action: &'static str) -> Result<Change, DbError> {
    let row = tx.query_one(
        "SELECT org_id, email FROM dashboard_users WHERE id = $1",
        &[user_id.into()],
    )?;
    Ok(Change::new(
        row.i64("org_id")?,
        action,
        format_args!("user:{}", row.text("email")?),
    ))
}

impl UserRepo {
    /// The two-factor state of `user_id` (all empty for an unknown user).
    pub async fn two_factor(&self, user_id: i64) -> Result<TwoFactor, StoreError> {
        self.db
            .read(move |tx| {
                let Some(row) = tx.query_opt(
                    "SELECT totp_secret, totp_enabled_at, \
                     (SELECT COUNT(*) FROM dashboard_recovery_codes c \
                      WHERE c.user_id = u.id AND c.used_at IS NULL) AS codes_left \
                     FROM dashboard_users u WHERE id = $1",
                    &[user_id.into()],
                )?
                else {
                    return Ok(TwoFactor::default());
                };
                Ok(TwoFactor {
                    sealed_secret: row.opt_text("totp_secret")?,
                    enabled_at: row.opt_i64("totp_enabled_at")?,
                    recovery_codes_left: row.i64("codes_left")?,
                })
            })
            .await
    }

    /// Starts (or restarts) enrolment with a new sealed secret; refused (`false`) while two-factor
    /// is enabled, so a running one is never replaced unconfirmed.
    pub async fn begin_totp(&self, user_id: i64, sealed_secret: &str) -> Result<bool, StoreError> {
        let sealed = sealed_secret.to_owned();
        self.db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE dashboard_users SET totp_secret = $2, totp_last_step = NULL \
                     WHERE id = $1 AND totp_enabled_at IS NULL",
                    &[user_id.into(), (&sealed).into()],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    /// Enables two-factor after a code of step `step` was confirmed: the step counts as used,
    /// and `code_hashes` replace the user's recovery codes. `false` when nothing was enrolling.
    pub async fn enable_totp(
        &self,
        user_id: i64,
        step: i64,
        code_hashes: Vec<String>,
    ) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE dashboard_users SET totp_enabled_at = $2, totp_last_step = $3 \
                     WHERE id = $1 AND totp_enabled_at IS NULL AND totp_secret IS NOT NULL",
                    &[user_id.into(), now.into(), step.into()],
                )?;
                if changed == 0 {
                    return Ok(false);
                }
                tx.execute(
                    "DELETE FROM dashboard_recovery_codes WHERE user_id = $1",
                    &[user_id.into()],
                )?;
                for hash in &code_hashes {
                    tx.execute(
                        "INSERT INTO dashboard_recovery_codes (user_id, code_hash, created_at) \
                         VALUES ($1, $2, $3)",
                        &[user_id.into(), hash.into(), now.into()],
                    )?;
                }
                let change = user_change(tx, user_id, "two_factor.enabled")?
                    .with(serde_json::json!({ "recovery_codes": code_hashes.len() }));
                note(tx, actor.as_ref(), now, &change)?;
                Ok(true)
            })
            .await
    }

    /// Turns two-factor off: the secret, the last step and the recovery codes are gone.
    pub async fn disable_totp(&self, user_id: i64) -> Result<(), StoreError> {
        let (now, actor) = (self.now_ms(), crate::audit::current());
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE dashboard_users SET totp_secret = NULL, totp_enabled_at = NULL, \
                     totp_last_step = NULL WHERE id = $1",
                    &[user_id.into()],
                )?;
                tx.execute(
                    "DELETE FROM dashboard_recovery_codes WHERE user_id = $1",
                    &[user_id.into()],
                )?;
                let change = user_change(tx, user_id, "two_factor.disabled")?;
                note(tx, actor.as_ref(), now, &change)?;
                Ok(())
            })
            .await
    }

    /// Accepts a code of step `step` unless a code of this step or a later one was accepted
    /// already: one conditional update, so two processes cannot both accept the same code.
    pub async fn accept_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        self.db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE dashboard_users SET totp_last_step = $2 WHERE id = $1 \
                     AND totp_enabled_at IS NOT NULL \
                     AND (totp_last_step IS NULL OR totp_last_step < $2)",
                    &[user_id.into(), step.into()],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    /// Uses up the unused recovery code with `code_hash` of `user_id`; whether there was one.
    pub async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: &str,
    ) -> Result<bool, StoreError> {
        let (hash, now) = (code_hash.to_owned(), self.now_ms());
        self.db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE dashboard_recovery_codes SET used_at = $3 \
                     WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
                    &[user_id.into(), (&hash).into(), now.into()],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    /// Records a sign-in waiting for the second factor of `user_id`, until `expires_at`.
    pub async fn create_pending_signin(
        &self,
        token_hash: &str,
        user_id: i64,
        next_path: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let (hash, next, now) = (token_hash.to_owned(), next_path.to_owned(), self.now_ms());
        self.db
            .write(move |tx| {
                let params: [Value; 5] = [
                    (&hash).into(),
                    user_id.into(),
                    (&next).into(),
                    now.into(),
                    expires_at.into(),
                ];
                tx.execute(
                    "INSERT INTO dashboard_pending_signins \
                     (token_hash, user_id, next_path, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &params,
                )?;
                Ok(())
            })
            .await
    }

    /// The waiting sign-in with `token_hash`: unused, unexpired, its user not disabled.
    pub async fn pending_signin(
        &self,
        token_hash: &str,
    ) -> Result<Option<PendingSignin>, StoreError> {
        let (hash, now) = (token_hash.to_owned(), self.now_ms());
        self.db
            .read(move |tx| {
                let row = tx.query_opt(
                    "SELECT p.user_id, p.next_path, u.email, u.locked_until \
                     FROM dashboard_pending_signins p \
                     JOIN dashboard_users u ON u.id = p.user_id \
                     WHERE p.token_hash = $1 AND p.used_at IS NULL AND p.expires_at > $2 \
                     AND u.disabled_at IS NULL",
                    &[(&hash).into(), now.into()],
                )?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(PendingSignin {
                    user_id: row.i64("user_id")?,
                    email: row.text("email")?,
                    locked_until: row.opt_i64("locked_until")?,
                    next_path: row.text("next_path")?,
                }))
            })
            .await
    }

    /// Uses up the waiting sign-in with `token_hash`; whether it was still unused.
    pub async fn finish_pending_signin(&self, token_hash: &str) -> Result<bool, StoreError> {
        let (hash, now) = (token_hash.to_owned(), self.now_ms());
        self.db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE dashboard_pending_signins SET used_at = $2 \
                     WHERE token_hash = $1 AND used_at IS NULL",
                    &[(&hash).into(), now.into()],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    /// Whether organization `org_id` requires two-factor sign-in of every user.
    pub async fn org_requires_two_factor(&self, org_id: i64) -> Result<bool, StoreError> {
        self.db
            .read(move |tx| {
                let row = tx.query_opt(
                    "SELECT require_two_factor FROM organizations WHERE id = $1",
                    &[org_id.into()],
                )?;
                Ok(row
                    .map(|row| row.i64("require_two_factor"))
                    .transpose()?
                    .unwrap_or(0)
                    != 0)
            })
            .await
    }

    /// Sets whether organization `org_id` requires two-factor sign-in of every user.
    pub async fn set_org_requires_two_factor(
        &self,
        org_id: i64,
        required: bool,
    ) -> Result<(), StoreError> {
        let (now, actor) = (self.now_ms(), crate::audit::current());
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE organizations SET require_two_factor = $2 WHERE id = $1",
                    &[org_id.into(), i64::from(required).into()],
                )?;
                let change = Change::new(
                    org_id,
                    "organization.two_factor_required",
                    format_args!("organization:{org_id}"),
                )
                .with(serde_json::json!({ "required": required }));
                note(tx, actor.as_ref(), now, &change)?;
                Ok(())
            })
            .await
    }
}
