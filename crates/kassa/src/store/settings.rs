//! Settings changed at run time, as key/value text rows (`settings`): every process reads
//! them again within a few seconds, so a change takes effect without a restart.

use std::collections::HashMap;

use super::audit::{note, Change};
use super::{Store, StoreError};

/// An audit entry about setting `key` (settings are the deployment's, not an organization's;
/// none of them is a secret).
fn setting_change(key: &str, action: &'static str, value: Option<&str>) -> Change {
    Change {
        org_id: None,
        action,
        target: format!("setting:{key}"),
        details: serde_json::json!({ "value": value }),
    }
}

impl Store {
    /// Every setting, by key (the table holds a handful of rows).
    pub async fn settings(&self) -> Result<HashMap<String, String>, StoreError> {
        self.repo
            .db
            .read(|tx| {
                let rows = tx.query("SELECT key, value FROM settings", &[])?;
                Ok(rows
                    .iter()
                    .map(|row| Ok((row.text("key")?, row.text("value")?)))
                    .collect::<Result<_, crate::db::DbError>>()?)
            })
            .await
    }

    /// Sets `key` to `value`.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        let now = self.now_ms();
        let actor = crate::audit::current();
        self.repo
            .db
            .write(move |tx| {
                let change = setting_change(&key, "setting.changed", Some(&value));
                note(tx, actor.as_ref(), now, &change)?;
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                     updated_at = excluded.updated_at",
                    &[key.as_str().into(), value.as_str().into(), now.into()],
                )?;
                Ok(())
            })
            .await
    }

    /// Removes `key` (back to its default); `true` when it was set.
    pub async fn delete_setting(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let now = self.now_ms();
        let actor = crate::audit::current();
        self.repo
            .db
            .write(move |tx| {
                let deleted = tx.execute(
                    "DELETE FROM settings WHERE key = $1",
                    &[key.as_str().into()],
                )? > 0;
                if deleted {
                    note(
                        tx,
                        actor.as_ref(),
                        now,
                        &setting_change(&key, "setting.removed", None),
                    )?;
                }
                Ok(deleted)
            })
            .await
    }
}
