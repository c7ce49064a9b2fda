//! Jobs are rows: `(kind, ref_id)` is unique, `run_at` says when one is due, and a worker
//! leases due jobs with `UPDATE … RETURNING` (`locked_until`, `locked_by`). On PostgreSQL the
//! rows are picked with `FOR UPDATE SKIP LOCKED`, so concurrent claimers take different jobs
//! instead of waiting for each other; SQLite has one writer, which is exclusive already.
//! A lease that runs out makes the job claimable again: work survives a crashed worker.

use crate::db::{DbError, Row, Tx, Value};
use crate::store::JobRepo;

use super::{Job, JobKind, StoreError};

const JOB_COLUMNS: &str =
    "id, kind, ref_id, run_at, attempt, locked_until, locked_by, last_error, created_at";

fn job_from_row(row: &Row) -> Result<Job, DbError> {
    Ok(Job {
        id: row.i64("id")?,
        kind: row.parsed("kind", JobKind::parse)?,
        ref_id: row.i64("ref_id")?,
        run_at: row.i64("run_at")?,
        attempt: row.i64("attempt")?,
        locked_until: row.opt_i64("locked_until")?,
        locked_by: row.opt_text("locked_by")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.i64("created_at")?,
    })
}

/// Makes job `(kind, ref_id)` at `run_at` (then what `ON CONFLICT` says): `$1..$4` are
/// [`job_row`].
const INSERT_JOB: &str = "INSERT INTO jobs (kind, ref_id, run_at, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (kind, ref_id)";

/// The parameters of [`INSERT_JOB`].
fn job_row(kind: JobKind, ref_id: i64, run_at: i64, now_ms: i64) -> [Value; 4] {
    [
        kind.as_str().into(),
        ref_id.into(),
        run_at.into(),
        now_ms.into(),
    ]
}

/// Schedules job `(kind, ref_id)` at `run_at`, inside the caller's transaction. An existing
/// job of the same key is kept as it is (it is already scheduled or running); `true` when the
/// job was made.
pub(crate) fn schedule_job(
    tx: &mut dyn Tx,
    kind: JobKind,
    ref_id: i64,
    run_at: i64,
    now_ms: i64,
) -> Result<bool, DbError> {
    let sql = format!("{INSERT_JOB} DO NOTHING");
    let made = tx.execute(&sql, &job_row(kind, ref_id, run_at, now_ms))?;
    Ok(made == 1)
}

/// Schedules job `(kind, ref_id)` at `run_at` unless it exists, like [`schedule_job`], when
/// the caller does not need to know which: the statement is deferred ([`Tx::defer`]).
pub(crate) fn schedule_job_later(
    tx: &mut dyn Tx,
    kind: JobKind,
    ref_id: i64,
    run_at: i64,
    now_ms: i64,
) -> Result<(), DbError> {
    let sql = format!("{INSERT_JOB} DO NOTHING");
    tx.defer(&sql, &job_row(kind, ref_id, run_at, now_ms))
}

/// Makes job `(kind, ref_id)` due at `run_at`, inside the caller's transaction: made if
/// missing, moved if it exists and is not leased (a leased one is running and reschedules
/// itself); with `only_earlier`, moved only forward. One deferred statement.
pub(crate) fn schedule_job_at(
    tx: &mut dyn Tx,
    kind: JobKind,
    ref_id: i64,
    run_at: i64,
    now_ms: i64,
    only_earlier: bool,
) -> Result<(), DbError> {
    let earlier = if only_earlier {
        " AND jobs.run_at > excluded.run_at"
    } else {
        ""
    };
    let sql = format!(
        "{INSERT_JOB} DO UPDATE SET run_at = excluded.run_at \
         WHERE jobs.locked_until IS NULL{earlier}"
    );
    tx.defer(&sql, &job_row(kind, ref_id, run_at, now_ms))
}

/// Ends the jobs `(kind, id)` of every id in `ref_ids`, with one statement.
pub(crate) fn delete_jobs(tx: &mut dyn Tx, kind: JobKind, ref_ids: &[i64]) -> Result<(), DbError> {
    if ref_ids.is_empty() {
        return Ok(());
    }
    let mut params: Vec<Value> = Vec::with_capacity(ref_ids.len() + 1);
    params.push(kind.as_str().into());
    params.extend(ref_ids.iter().map(|&id| Value::from(id)));
    tx.defer(
        &format!(
            "DELETE FROM jobs WHERE kind = $1 AND ref_id IN ({})",
            super::placeholders(2, ref_ids.len())
        ),
        &params,
    )
}

/// Removes job `(kind, ref_id)`, if any, inside the caller's transaction.
pub(crate) fn delete_job(tx: &mut dyn Tx, kind: JobKind, ref_id: i64) -> Result<(), DbError> {
    delete_jobs(tx, kind, &[ref_id])
}

/// How the jobs of one kind stand (for metrics, see `crate::metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobGauge {
    pub kind: JobKind,
    /// Due and not leased (or their lease ran out).
    pub due: i64,
    /// Leased by a worker now.
    pub running: i64,
    /// When the earliest of the `due` ones came due.
    pub oldest_due_at: Option<i64>,
}

impl JobRepo {
    /// Per kind (only kinds with jobs): how many are due and waiting at `now_ms`, how many
    /// are leased, and when the oldest waiting one came due. One read.
    pub async fn job_gauges(&self, now_ms: i64) -> Result<Vec<JobGauge>, StoreError> {
        const WAITING: &str = "run_at <= $1 AND (locked_until IS NULL OR locked_until < $1)";
        let sql = format!(
            "SELECT kind, COUNT(CASE WHEN {WAITING} THEN 1 END) AS due, \
             COUNT(CASE WHEN locked_until >= $1 THEN 1 END) AS running, \
             MIN(CASE WHEN {WAITING} THEN run_at END) AS oldest \
             FROM jobs GROUP BY kind"
        );
        self.db
            .read(move |tx| {
                let mut gauges = Vec::new();
                for row in tx.query(&sql, &[now_ms.into()])? {
                    // A kind this version does not know (a newer server's) is left out.
                    let Some(kind) = JobKind::parse(&row.text("kind")?) else {
                        continue;
                    };
                    gauges.push(JobGauge {
                        kind,
                        due: row.i64("due")?,
                        running: row.i64("running")?,
                        oldest_due_at: row.opt_i64("oldest")?,
                    });
                }
                Ok(gauges)
            })
            .await
    }

    /// When the earliest job not of kind `except` is due, if any.
    pub async fn next_due(&self, except: JobKind) -> Result<Option<i64>, StoreError> {
        self.db
            .read(move |tx| {
                Ok(tx
                    .query_one(
                        "SELECT MIN(run_at) AS at FROM jobs WHERE kind <> $1",
                        &[except.as_str().into()],
                    )?
                    .opt_i64("at")?)
            })
            .await
    }

    /// Schedules job `(kind, ref_id)` at `run_at` unless it exists; `true` when it was made.
    pub async fn schedule_job(
        &self,
        kind: JobKind,
        ref_id: i64,
        run_at: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.db
            .write(move |tx| Ok(schedule_job(tx, kind, ref_id, run_at, now_ms)?))
            .await
    }

    /// Makes job `(kind, ref_id)` due by `run_at` at the latest: an unleased job due later is
    /// moved forward, a missing one is made.
    pub async fn pull_job_forward(
        &self,
        kind: JobKind,
        ref_id: i64,
        run_at: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| Ok(schedule_job_at(tx, kind, ref_id, run_at, now_ms, true)?))
            .await
    }

    /// The job `(kind, ref_id)`, if scheduled.
    pub async fn job(&self, kind: JobKind, ref_id: i64) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 AND ref_id = $2");
        self.db
            .read(move |tx| {
                let row = tx.query_opt(&sql, &[kind.as_str().into(), ref_id.into()])?;
                Ok(row.as_ref().map(job_from_row).transpose()?)
            })
            .await
    }

    /// Leases up to `limit` jobs of `kind` that are due at `now_ms` and not leased, to
    /// `worker_id` until `now_ms + lease_ms`; earliest first. No job is handed to two
    /// claimers while its lease runs.
    pub async fn claim_jobs(
        &self,
        kind: JobKind,
        worker_id: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let worker = worker_id.to_owned();
        let locked_until = now_ms.saturating_add(lease_ms);
        let skip_locked = self.db.dialect().skip_locked();
        let sql = format!(
            "UPDATE jobs SET locked_until = $3, locked_by = $4 WHERE id IN (\
             SELECT id FROM jobs WHERE kind = $1 AND run_at <= $2 \
             AND (locked_until IS NULL OR locked_until < $2) \
             ORDER BY run_at, id LIMIT $5{skip_locked}) \
             RETURNING {JOB_COLUMNS}"
        );
        self.db
            .write(move |tx| {
                let rows = tx.query(
                    &sql,
                    &[
                        kind.as_str().into(),
                        now_ms.into(),
                        locked_until.into(),
                        (&worker).into(),
                        limit.into(),
                    ],
                )?;
                let mut jobs = rows
                    .iter()
                    .map(job_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                jobs.sort_by_key(|job| (job.run_at, job.id));
                Ok(jobs)
            })
            .await
    }

    /// Releases job `id` to run again at `run_at` as attempt `attempt`, noting `last_error`;
    /// only while `worker_id` still holds the lease. `false` when it no longer does.
    pub async fn reschedule_job(
        &self,
        id: i64,
        worker_id: &str,
        run_at: i64,
        attempt: i64,
        last_error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let worker = worker_id.to_owned();
        let error = last_error.map(str::to_owned);
        self.db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE jobs SET run_at = $3, attempt = $4, last_error = $5, \
                     locked_until = NULL, locked_by = NULL \
                     WHERE id = $1 AND locked_by = $2",
                    &[
                        id.into(),
                        (&worker).into(),
                        run_at.into(),
                        attempt.into(),
                        error.as_ref().into(),
                    ],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    /// Extends the leases `worker_id` holds on the jobs `ids` to `locked_until`: a worker
    /// renews its jobs while they run, so leases can be short and a job whose process died is
    /// claimed again within one lease. How many leases were renewed.
    pub async fn renew_job_leases(
        &self,
        worker_id: &str,
        ids: &[i64],
        locked_until: i64,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut params: Vec<Value> = Vec::with_capacity(ids.len() + 2);
        params.push(worker_id.into());
        params.push(locked_until.into());
        params.extend(ids.iter().map(|&id| Value::from(id)));
        let sql = format!(
            "UPDATE jobs SET locked_until = $2 WHERE locked_by = $1 AND locked_until IS NOT NULL \
             AND id IN ({})",
            super::placeholders(3, ids.len())
        );
        self.db
            .write(move |tx| Ok(tx.execute(&sql, &params)?))
            .await
    }

    /// Ends every lease (jobs and webhook deliveries) held by a worker whose id starts with
    /// `prefix`: their process is known to be gone. How many were released.
    pub async fn release_leases_of(&self, prefix: &str) -> Result<u64, StoreError> {
        let pattern = format!("{prefix}%");
        self.db
            .write(move |tx| {
                let mut released = 0;
                for table in ["jobs", "webhook_deliveries"] {
                    released += tx.execute(
                        &format!(
                            "UPDATE {table} SET locked_until = NULL, locked_by = NULL \
                             WHERE locked_by LIKE $1 AND locked_until IS NOT NULL"
                        ),
                        &[(&pattern).into()],
                    )?;
                }
                Ok(released)
            })
            .await
    }

    /// Removes job `id`: its work is done. `false` when it was already gone.
    pub async fn finish_job(&self, id: i64) -> Result<bool, StoreError> {
        self.db
            .write(move |tx| Ok(tx.execute("DELETE FROM jobs WHERE id = $1", &[id.into()])? == 1))
            .await
    }
}
