//! Settings changed at run time, as key/value text rows (`settings`): every process reads
//! them again within a few seconds, so a change takes effect without a restart.

use std::collections::HashMap;

use super::{Store, StoreError};

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
        self.repo
            .db
            .write(move |tx| {
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
        self.repo
            .db
            .write(move |tx| {
                Ok(tx.execute(
                    "DELETE FROM settings WHERE key = $1",
                    &[key.as_str().into()],
                )? > 0)
            })
            .await
    }
}
