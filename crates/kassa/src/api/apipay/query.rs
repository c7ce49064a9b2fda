//! What ApiPay's list and stats queries share: the invoice status names a filter takes, `page`
//! as Laravel reads it, and Asia/Almaty days as unix ms.

use time::Date;

use crate::domain::ALMATY;

use crate::api::error::{ApiError, FieldErrors};
use crate::api::extract::{ApiPay, QueryPairs};
use crate::gateway::Gateway;

/// `page` and `per_page` of a list. `page` as Laravel's paginator reads it: below 1 means the
/// first page; a page past the end is simply empty; only text that is not an integer is an
/// error. `per_page` is 1–100, `default_size` when absent.
pub(super) fn page_and_size(
    query: &QueryPairs<ApiPay>,
    default_size: i64,
    errors: &mut FieldErrors,
) -> Result<(i64, i64), ApiError> {
    let page = page(query, errors)?;
    let per_page = errors
        .take(query.int("per_page", 1, 100))?
        .flatten()
        .unwrap_or(default_size);
    Ok((page, per_page))
}

/// `page` as Laravel's paginator reads it: below 1 is the first page, a number past any end
/// (even past `i64`) is simply a page past the end; only text that is not an integer is an
/// error.
pub(super) fn page(query: &QueryPairs<ApiPay>, errors: &mut FieldErrors) -> Result<i64, ApiError> {
    let digits = query.get("page").map(|t| t.strip_prefix('-').unwrap_or(t));
    let huge = digits.is_some_and(|d| d.len() > 18 && d.bytes().all(|b| b.is_ascii_digit()));
    if huge {
        let negative = query.get("page").is_some_and(|t| t.starts_with('-'));
        return Ok(if negative { 1 } else { i64::from(u32::MAX) });
    }
    let page = errors
        .take(query.int("page", i64::MIN, i64::MAX))?
        .flatten()
        .unwrap_or(1);
    Ok(page.clamp(1, i64::from(u32::MAX)))
}

/// The start of `date` in Almaty, as unix ms.
pub(super) fn almaty_day_start(date: Date) -> i64 {
    let at = date.midnight().assume_offset(ALMATY);
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Today in Almaty, on `gateway`'s clock.
pub(super) fn almaty_today(gateway: &Gateway) -> Date {
    gateway.clock().now().to_offset(ALMATY).date()
}

/// The invoice statuses a client names (Kassa's `failed` is among the `cancelled`; the current
/// version's `processing` is among the `pending`, its `error` among the `cancelled`).
pub(super) const STATUS_FILTERS: &[&str] = &[
    "pending",
    "processing",
    "paid",
    "cancelled",
    "error",
    "expired",
];
