//! Keyset pages: `limit`, and the opaque cursor that names the last row of a page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;

use super::F;
use crate::api::error::ApiError;
use crate::api::extract::{QueryPairs, XPayment};

const PAGE: u32 = 20;

/// The opaque cursor naming the last row of a page.
fn cursor_of(id: i64) -> String {
    B64URL.encode(format!("after:{id}"))
}

/// The row id a cursor names; a validation error on `cursor` when it is not one of ours.
pub(super) fn parse_cursor(query: &QueryPairs<XPayment>) -> Result<Option<i64>, ApiError> {
    let Some(text) = query.get("cursor") else {
        return Ok(None);
    };
    B64URL
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| s.strip_prefix("after:").and_then(|n| n.parse::<i64>().ok()))
        .map(Some)
        .ok_or_else(|| ApiError::validation(F, "cursor", "is not a cursor this API gave"))
}

/// Cuts a keyset page: `rows` were fetched with `limit + 1`; whether there is more, and the
/// cursor naming the page's last row (empty at the end).
pub(super) fn cut_page<T>(
    rows: &mut Vec<T>,
    limit: u32,
    id_of: impl Fn(&T) -> i64,
) -> (bool, String) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if has_more {
        rows.last().map(|r| cursor_of(id_of(r))).unwrap_or_default()
    } else {
        String::new()
    };
    (has_more, next_cursor)
}

pub(super) fn page_size(query: &QueryPairs<XPayment>) -> Result<u32, ApiError> {
    Ok(query
        .int("limit", 1, 100)?
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(PAGE))
}
