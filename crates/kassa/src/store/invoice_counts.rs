//! Kept counts of invoices (`invoice_day_counts`, migration 0015): how many each organization
//! has, with their amounts and refunds in tiyn, per status and per Asia/Almaty day of creation,
//! plus the same over all days (`day = -1`). Written in the transaction of every insert, status
//! change, refund and delete of an invoice by [`add_to_counts_tx`] (one statement), read by
//! [`kept_totals_tx`] for the `total` of a filtered list and for the stats of a period, so
//! neither counts rows day after day.
//!
//! A day is the one ApiPay's `date_from`/`date_to` and stats name: Almaty's (UTC+5, no summer
//! time), numbered from 1970-01-01. A period that does not start or end at an Almaty midnight
//! (the store takes any instants) is answered from the kept whole days inside it and from the
//! rows of its partial first and last day, each less than a day, read through the
//! `(org_id, created_at)` index.

use std::collections::BTreeMap;

use crate::db::{DbError, Row, Tx, Value};

use super::{Invoice, InvoiceStatus, StatusTotals};

/// Shards of each organization, status and day: concurrent creates of one organization spread
/// over this many rows instead of waiting for one row's lock on PostgreSQL.
const SHARDS: i64 = 16;
/// The `day` of the totals over all days.
const ALL_DAYS: i64 = -1;
/// One day in ms.
const DAY_MS: i64 = 86_400_000;
/// Almaty's offset from UTC in ms (the migration's backfill uses the same 18,000,000).
const ALMATY_MS: i64 = crate::domain::ALMATY.whole_seconds() as i64 * 1000;
/// Kept rows written by one statement: 7 parameters each, far under both databases' limits.
const KEYS_PER_STATEMENT: usize = 1_000;

/// The Almaty day (since 1970-01-01) of instant `at_ms`.
fn day_of(at_ms: i64) -> i64 {
    at_ms.saturating_add(ALMATY_MS).div_euclid(DAY_MS)
}

/// The instant Almaty day `day` starts.
fn day_start(day: i64) -> i64 {
    day.saturating_mul(DAY_MS).saturating_sub(ALMATY_MS)
}

/// A change to the kept counts by one invoice: `n` invoices with `amount` and `refunded` (tiyn)
/// added to (or, negative, taken from) its organization, status and day of creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CountDelta {
    org_id: i64,
    /// Picks the shard.
    invoice_id: i64,
    status: InvoiceStatus,
    created_at: i64,
    n: i64,
    amount: i64,
    refunded: i64,
}

/// The columns [`CountDelta::from_row`] reads (an `INSERT`'s or `DELETE`'s `RETURNING`).
pub(super) const COUNTED_COLUMNS: &str = "org_id, id, status, created_at, amount, total_refunded";

impl CountDelta {
    /// `invoice` as it is, added (`sign` 1) or taken away (`sign` -1): for an insert, a delete,
    /// and the two sides of a status change.
    pub(super) fn of(invoice: &Invoice, sign: i64) -> CountDelta {
        CountDelta {
            org_id: invoice.org_id,
            invoice_id: invoice.id,
            status: invoice.status,
            created_at: invoice.created_at,
            n: sign,
            amount: sign * invoice.amount.tiyn(),
            refunded: sign * invoice.total_refunded.tiyn(),
        }
    }

    /// [`CountDelta::of`] from a row of [`COUNTED_COLUMNS`].
    pub(super) fn from_row(row: &Row, sign: i64) -> Result<CountDelta, DbError> {
        Ok(CountDelta {
            org_id: row.i64("org_id")?,
            invoice_id: row.i64("id")?,
            status: row.parsed("status", InvoiceStatus::parse)?,
            created_at: row.i64("created_at")?,
            n: sign,
            amount: sign * row.i64("amount")?,
            refunded: sign * row.i64("total_refunded")?,
        })
    }

    /// `invoice` moving from its status to `to`: taken from the one, added to the other.
    pub(super) fn moved(invoice: &Invoice, to: InvoiceStatus) -> [CountDelta; 2] {
        [
            CountDelta::of(invoice, -1),
            CountDelta {
                status: to,
                ..CountDelta::of(invoice, 1)
            },
        ]
    }

    /// `refunded` more refunded of `invoice`, which stays where it is counted.
    pub(super) fn refunded(invoice: &Invoice, refunded: i64) -> CountDelta {
        CountDelta {
            n: 0,
            amount: 0,
            refunded,
            ..CountDelta::of(invoice, 0)
        }
    }
}

/// Adds `deltas` to the kept counts of their day and of all days, in the caller's transaction,
/// with one upsert statement (one per [`KEYS_PER_STATEMENT`] rows touched). The rows are
/// written in key order, so two transactions never lock the same two rows in opposite orders.
pub(super) fn add_to_counts_tx(tx: &mut dyn Tx, deltas: &[CountDelta]) -> Result<(), DbError> {
    type Key = (i64, &'static str, i64, i64);
    let mut tally: BTreeMap<Key, [i64; 3]> = BTreeMap::new();
    for delta in deltas {
        let shard = delta.invoice_id.rem_euclid(SHARDS);
        for day in [day_of(delta.created_at), ALL_DAYS] {
            let sums = tally
                .entry((delta.org_id, delta.status.as_str(), day, shard))
                .or_default();
            sums[0] += delta.n;
            sums[1] += delta.amount;
            sums[2] += delta.refunded;
        }
    }
    // A change that cancels out (a status left and come back to) touches no row.
    let rows: Vec<(Key, [i64; 3])> = tally
        .into_iter()
        .filter(|(_, sums)| sums.iter().any(|s| *s != 0))
        .collect();
    const WIDTH: usize = 7;
    for chunk in rows.chunks(KEYS_PER_STATEMENT) {
        let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * WIDTH);
        for ((org_id, status, day, shard), [n, amount, refunded]) in chunk {
            params.extend([
                (*org_id).into(),
                (*status).into(),
                (*day).into(),
                (*shard).into(),
                (*n).into(),
                (*amount).into(),
                (*refunded).into(),
            ]);
        }
        // Deferred: it goes out with the COMMIT, so the rows stay locked the shortest time.
        tx.defer(
            &format!(
                "INSERT INTO invoice_day_counts (org_id, status, day, shard, n, amount, refunded) \
                 VALUES {} ON CONFLICT (org_id, status, day, shard) DO UPDATE SET \
                 n = invoice_day_counts.n + excluded.n, \
                 amount = invoice_day_counts.amount + excluded.amount, \
                 refunded = invoice_day_counts.refunded + excluded.refunded",
                super::value_rows(1, chunk.len(), WIDTH)
            ),
            &params,
        )?;
    }
    Ok(())
}

/// Which of an organization's invoices [`kept_totals_tx`] adds up: created in
/// `[created_from, created_to)` (either end open when `None`), in one of `statuses` (any when
/// empty).
#[derive(Debug, Clone, Copy)]
pub(super) struct CountedRange<'a> {
    pub org_id: i64,
    pub statuses: &'a [InvoiceStatus],
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
}

/// Count, amount and refunds per status (every status, zeros included) of the invoices
/// `range` names: the kept whole days (or all days) plus the rows of partial edge days.
pub(super) fn kept_totals_tx(
    tx: &mut dyn Tx,
    range: &CountedRange<'_>,
) -> Result<Vec<StatusTotals>, DbError> {
    let mut totals: Vec<StatusTotals> = InvoiceStatus::ALL
        .iter()
        .map(|&status| StatusTotals {
            status,
            count: 0,
            amount: 0,
            refunded: 0,
        })
        .collect();
    let mut params: Vec<Value> = vec![range.org_id.into()];
    // Any status is every status named: the kept rows are found by (org, status, day) seeks
    // instead of reading all of the organization's days for the few of one day.
    let statuses = match range.statuses {
        [] => InvoiceStatus::ALL,
        named => named,
    };
    let statuses = status_condition(statuses, &mut params);
    if range.created_from.is_none() && range.created_to.is_none() {
        let sql = kept_sql(&format!("day = {ALL_DAYS}"), &statuses);
        add_rows(&mut totals, &tx.query(&sql, &params)?)?;
        return Ok(totals);
    }
    // Whole days: from the first that starts at or after `created_from` to the last that
    // ends at or before `created_to` (days are never negative: no invoice predates 1970).
    let first = range.created_from.map_or(0, |from| {
        let day = day_of(from);
        if day_start(day) == from {
            day
        } else {
            day + 1
        }
    });
    let last = range.created_to.map_or(i64::MAX, |to| day_of(to) - 1);
    let mut edges: Vec<(i64, i64)> = Vec::new();
    if first > last {
        // Less than two days, none of them whole: only rows.
        edges.push((
            range.created_from.unwrap_or(i64::MIN),
            range.created_to.unwrap_or(i64::MAX),
        ));
    } else {
        let days = kept_sql(
            &format!(
                "day BETWEEN ${} AND ${}",
                params.len() + 1,
                params.len() + 2
            ),
            &statuses,
        );
        let mut kept_params = params.clone();
        kept_params.extend([first.into(), last.into()]);
        add_rows(&mut totals, &tx.query(&days, &kept_params)?)?;
        if let Some(from) = range.created_from {
            edges.push((from, day_start(first)));
        }
        if let Some(to) = range.created_to {
            edges.push((day_start(last.saturating_add(1)), to));
        }
    }
    let row_sql = format!(
        "SELECT status, COUNT(*) AS n, CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount, \
         CAST(COALESCE(SUM(total_refunded), 0) AS BIGINT) AS refunded FROM invoices \
         WHERE org_id = $1 AND created_at >= ${} AND created_at < ${}{statuses} GROUP BY status",
        params.len() + 1,
        params.len() + 2,
    );
    for (start, end) in edges.into_iter().filter(|(start, end)| start < end) {
        let mut edge_params = params.clone();
        edge_params.extend([start.into(), end.into()]);
        add_rows(&mut totals, &tx.query(&row_sql, &edge_params)?)?;
    }
    Ok(totals)
}

/// ` AND status IN (…)` for `statuses`, its parameters pushed on `params`.
fn status_condition(statuses: &[InvoiceStatus], params: &mut Vec<Value>) -> String {
    let from = params.len() + 1;
    params.extend(statuses.iter().map(|s| Value::from(s.as_str())));
    format!(
        " AND status IN ({})",
        super::placeholders(from, statuses.len())
    )
}

/// The sums per status of the kept rows of `$1`'s `days` (a condition on `day`).
fn kept_sql(days: &str, statuses: &str) -> String {
    format!(
        "SELECT status, CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n, \
         CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount, \
         CAST(COALESCE(SUM(refunded), 0) AS BIGINT) AS refunded FROM invoice_day_counts \
         WHERE org_id = $1 AND {days}{statuses} GROUP BY status"
    )
}

/// Adds rows of `status, n, amount, refunded` to `totals`.
fn add_rows(totals: &mut [StatusTotals], rows: &[Row]) -> Result<(), DbError> {
    for row in rows {
        let status = row.parsed("status", InvoiceStatus::parse)?;
        if let Some(t) = totals.iter_mut().find(|t| t.status == status) {
            t.count += row.i64("n")?;
            t.amount += row.i64("amount")?;
            t.refunded += row.i64("refunded")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_almaty_days() {
        // 2026-03-01T00:00+05:00 is 2026-02-28T19:00Z.
        let midnight = 1_772_305_200_000;
        assert_eq!(day_start(day_of(midnight)), midnight);
        assert_eq!(day_of(midnight - 1), day_of(midnight) - 1);
        assert_eq!(day_of(midnight + DAY_MS - 1), day_of(midnight));
        assert_eq!(ALMATY_MS, 18_000_000);
    }
}
