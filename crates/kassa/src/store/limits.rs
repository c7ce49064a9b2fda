//! What the API key checks share between processes (`migrations/*/0009_key_limits.sql`): the
//! revocation generation that invalidates every process's cache of key lookups, and the
//! leases of each key's rate-limit quota.

use crate::store::OrgRepo;
use std::sync::atomic::Ordering;

use super::StoreError;
use crate::db::DbError;

/// A lease of rate-limit quota: how much was granted, and how much of the window's limit the
/// processes have leased in all now (this grant included, at most the limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLease {
    pub granted: u32,
    pub leased_total: u32,
}

impl OrgRepo {
    /// The revocation generation: it grows with every revocation of an API key, by any
    /// process.
    pub async fn api_key_revocation_generation(&self) -> Result<i64, StoreError> {
        let sql = "SELECT generation FROM api_key_revocations WHERE id = 1";
        let row = self.db.query_opt(sql.to_owned(), Vec::new()).await?;
        let row = row.ok_or_else(|| DbError::query(sql, "expected one row, got none"))?;
        Ok(row.i64("generation")?)
    }

    /// How many revocations went through this store handle (and its clones): a process
    /// learns of its own at once, without waiting for the next read of the generation.
    pub fn revocations_here(&self) -> u64 {
        self.revocations_here.load(Ordering::Acquire)
    }

    /// Leases up to `chunk` requests of `key_id`'s `limit` for the window starting at
    /// `window_start` (unix ms); `None` when the window's quota is all leased. A row of an
    /// earlier window starts over. One statement: concurrent leases of any processes never
    /// grant more than `limit` in all.
    pub async fn lease_rate_quota(
        &self,
        key_id: i64,
        window_start: i64,
        chunk: u32,
        limit: u32,
    ) -> Result<Option<QuotaLease>, StoreError> {
        let (chunk, limit) = (i64::from(chunk.max(1)), i64::from(limit));
        // Every lease adds its whole chunk to `leased` (so the value before it is the value
        // after minus the chunk) but only passes while `leased` is under the limit: the grant
        // is the part of the chunk under the limit. A later window replaces an earlier one; a
        // row already in a later window (a process whose clock is ahead) refuses.
        let sql = "INSERT INTO rate_limit_leases (key_id, window_start, leased) \
                   VALUES ($1, $2, $3) \
                   ON CONFLICT (key_id) DO UPDATE SET \
                     leased = CASE WHEN rate_limit_leases.window_start = excluded.window_start \
                                   THEN rate_limit_leases.leased + excluded.leased \
                                   ELSE excluded.leased END, \
                     window_start = excluded.window_start \
                   WHERE rate_limit_leases.window_start < excluded.window_start \
                      OR (rate_limit_leases.window_start = excluded.window_start \
                          AND rate_limit_leases.leased < $4) \
                   RETURNING leased";
        let leased = self
            .db
            .write(move |tx| {
                let row = tx.query_opt(
                    sql,
                    &[
                        key_id.into(),
                        window_start.into(),
                        chunk.into(),
                        limit.into(),
                    ],
                )?;
                Ok::<_, StoreError>(row.map(|row| row.i64("leased")).transpose()?)
            })
            .await?;
        Ok(leased.map(|after| {
            let before = after - chunk;
            let granted = chunk.min(limit - before).max(0);
            QuotaLease {
                granted: u32::try_from(granted).unwrap_or(0),
                leased_total: u32::try_from(after.min(limit)).unwrap_or(u32::MAX),
            }
        }))
    }
}
