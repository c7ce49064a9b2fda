//! Invoices listed (filtered, sorted, paged, keyset pages) and counted per status (totals
//! from the counts `invoice_counts.rs` keeps wherever they can answer).

use crate::db::Value;
use crate::store::InvoiceRepo;

use super::invoice_counts::{kept_totals_tx, CountedRange};
use super::invoices::{invoice_from_row, INVOICE_COLUMNS};
use super::{Invoice, InvoiceFilter, InvoiceSort, InvoiceStats, StoreError};

/// The most a page holds.
const MAX_PER_PAGE: u32 = 100;

impl InvoiceRepo {
    /// One page of `org_id`'s invoices matching `filter`, and how many match in all: from the
    /// kept counts when the filter is only statuses and creation dates (what ApiPay's list
    /// offers), else counted row by row.
    pub async fn list_invoices(
        &self,
        org_id: i64,
        filter: &InvoiceFilter,
    ) -> Result<(Vec<Invoice>, i64), StoreError> {
        let (condition, params) = list_condition(org_id, filter);
        let per_page = filter.per_page.clamp(1, MAX_PER_PAGE);
        let offset = i64::from(filter.page.max(1) - 1) * i64::from(per_page);
        let page_sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE {condition} ORDER BY {} LIMIT ${} OFFSET ${}",
            order_by(filter),
            params.len() + 1,
            params.len() + 2,
        );
        let kept = filter.search_free().then(|| {
            (
                filter.statuses.clone(),
                filter.created_from,
                filter.created_to,
            )
        });
        let count_sql = format!("SELECT COUNT(*) AS n FROM invoices WHERE {condition}");
        self.db
            .read(move |tx| {
                let total = match &kept {
                    Some((statuses, created_from, created_to)) => {
                        let range = CountedRange {
                            org_id,
                            statuses,
                            created_from: *created_from,
                            created_to: *created_to,
                        };
                        kept_totals_tx(tx, &range)?.iter().map(|t| t.count).sum()
                    }
                    None => tx.query_one(&count_sql, &params)?.i64("n")?,
                };
                let mut params = params.clone();
                params.extend([i64::from(per_page).into(), offset.into()]);
                let rows = tx.query(&page_sql, &params)?;
                let page = rows
                    .iter()
                    .map(invoice_from_row)
                    .collect::<Result<_, _>>()?;
                Ok((page, total))
            })
            .await
    }

    /// Up to `limit` of `org_id`'s invoices matching `filter` with ids below `before_id`,
    /// newest first: keyset pages that stay stable while invoices are added.
    pub async fn list_invoices_before(
        &self,
        org_id: i64,
        filter: &InvoiceFilter,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Invoice>, StoreError> {
        let (mut condition, mut params) = list_condition(org_id, filter);
        if let Some(before) = before_id {
            params.push(before.into());
            condition.push_str(&format!(" AND id < ${}", params.len()));
        }
        params.push(i64::from(limit).into());
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE {condition} ORDER BY id DESC LIMIT ${}",
            params.len()
        );
        self.db
            .read(move |tx| {
                let rows = tx.query(&sql, &params)?;
                Ok(rows
                    .iter()
                    .map(invoice_from_row)
                    .collect::<Result<_, _>>()?)
            })
            .await
    }

    /// Counts and sums (in tiyn) per status of `org_id`'s invoices created in
    /// `[from_ms, to_ms)`, from the kept counts (and the rows of partial edge days).
    pub async fn invoice_stats(
        &self,
        org_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<InvoiceStats, StoreError> {
        self.db
            .read(move |tx| {
                let range = CountedRange {
                    org_id,
                    statuses: &[],
                    created_from: Some(from_ms),
                    created_to: Some(to_ms),
                };
                Ok(InvoiceStats {
                    by_status: kept_totals_tx(tx, &range)?,
                })
            })
            .await
    }
}

impl InvoiceRepo {
    /// Paid sums (tiyn) of `org_id` per day of the clock `offset_ms` from UTC, for invoices
    /// paid in `[from_ms, to_ms)`: `(day number since 1970, sum)`, days without payments left
    /// out.
    pub async fn paid_per_day(
        &self,
        org_id: i64,
        from_ms: i64,
        to_ms: i64,
        offset_ms: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        self.db
            .read(move |tx| {
                let rows = tx.query(
                    "SELECT (paid_at + $4) / 86400000 AS day, \
                     CAST(SUM(amount) AS BIGINT) AS amount FROM invoices \
                     WHERE org_id = $1 AND status = 'paid' AND paid_at >= $2 AND paid_at < $3 \
                     GROUP BY day ORDER BY day",
                    &[
                        org_id.into(),
                        from_ms.into(),
                        to_ms.into(),
                        offset_ms.into(),
                    ],
                )?;
                let mut days = Vec::with_capacity(rows.len());
                for row in &rows {
                    days.push((row.i64("day")?, row.i64("amount")?));
                }
                Ok(days)
            })
            .await
    }
}

/// The WHERE condition of a listing and its parameters (`$1` is the organization).
fn list_condition(org_id: i64, filter: &InvoiceFilter) -> (String, Vec<Value>) {
    let mut params: Vec<Value> = vec![org_id.into()];
    let mut parts = vec!["org_id = $1".to_owned()];
    let param = |params: &mut Vec<Value>, value: Value| {
        params.push(value);
        format!("${}", params.len())
    };
    if let Some(search) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let pattern = param(&mut params, format!("%{}%", escape_like(search)).into());
        let mut alternatives: Vec<String> = ["description", "external_order_id", "phone"]
            .iter()
            .map(|column| format!("{column} LIKE {pattern} ESCAPE '\\'"))
            .collect();
        if let Ok(id) = search.parse::<i64>() {
            alternatives.push(format!("id = {}", param(&mut params, id.into())));
        }
        parts.push(format!("({})", alternatives.join(" OR ")));
    }
    if !filter.statuses.is_empty() {
        let list: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| param(&mut params, s.as_str().into()))
            .collect();
        parts.push(format!("status IN ({})", list.join(", ")));
    }
    if let Some(phone) = &filter.phone {
        parts.push(format!("phone = {}", param(&mut params, phone.into())));
    }
    if let Some(order) = &filter.external_order_id {
        parts.push(format!(
            "external_order_id = {}",
            param(&mut params, order.into())
        ));
    }
    if let Some(from) = filter.created_from {
        parts.push(format!("created_at >= {}", param(&mut params, from.into())));
    }
    if let Some(to) = filter.created_to {
        parts.push(format!("created_at < {}", param(&mut params, to.into())));
    }
    (parts.join(" AND "), params)
}

/// The ORDER BY of a listing: a whitelisted column, NULLs last either way (the databases
/// disagree by default), then the id in the same direction so pages are stable.
fn order_by(filter: &InvoiceFilter) -> String {
    let direction = filter.sort_order.sql();
    let column = filter.sort_by.column();
    match filter.sort_by {
        InvoiceSort::Id => format!("id {direction}"),
        InvoiceSort::ClientName => format!(
            "CASE WHEN {column} IS NULL THEN 1 ELSE 0 END, {column} {direction}, id {direction}"
        ),
        InvoiceSort::Amount | InvoiceSort::Status | InvoiceSort::CreatedAt => {
            format!("{column} {direction}, id {direction}")
        }
    }
}

/// `text` with LIKE's wildcards and the escape character escaped by `\`.
pub(super) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
