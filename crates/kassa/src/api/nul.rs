//! No text with a NUL character (U+0000) reaches a handler or the database (PostgreSQL cannot
//! store it), and both databases answer alike: a validation error naming the field
//! (`metadata.note`, `cart_items[0].Name`, `search`, `order_number`). JSON bodies are checked
//! by [`super::extract::parse_json`] with [`nul_field`]; query and path parameters by the
//! middleware [`reject_nul`].

use axum::extract::{FromRequestParts, RawPathParams, Request};

use super::error::{ApiError, ErrorFormat};

/// The path of the first string in `value` with a NUL (`metadata.note`, `items[0]`), or of
/// the object whose key has one; `prefix` is the path of `value` (`""` at the root, which is
/// named `body`).
pub(super) fn nul_field(value: &serde_json::Value, prefix: &str) -> Option<String> {
    use serde_json::Value;
    let here = || {
        if prefix.is_empty() {
            "body".to_owned()
        } else {
            prefix.to_owned()
        }
    };
    match value {
        Value::String(text) if text.contains('\0') => Some(here()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_field(item, &format!("{prefix}[{i}]"))),
        Value::Object(map) => {
            if map.keys().any(|key| key.contains('\0')) {
                return Some(here());
            }
            map.iter().find_map(|(key, item)| {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                nul_field(item, &path)
            })
        }
        _ => None,
    }
}

/// The validation error for a NUL character in `field`.
pub(super) fn nul_error(format: ErrorFormat, field: &str) -> ApiError {
    ApiError::validation(
        format,
        field,
        format!("The {field} field must not contain a NUL character (U+0000)."),
    )
}

/// Middleware (`from_fn_with_state(format, reject_nul)`, on matched routes): a query or path
/// parameter holding U+0000 (`%00`) is answered with a validation error naming it; the
/// parameter's name, or `query` when the name itself has the NUL.
pub async fn reject_nul(
    axum::extract::State(format): axum::extract::State<ErrorFormat>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;

    let (mut parts, body) = req.into_parts();
    let query = parts.uri.query().unwrap_or_default();
    if query.contains("%00") || query.contains('\0') {
        let field = form_urlencoded::parse(query.as_bytes())
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
            .map(|(k, _)| {
                let name = k.split('[').next().unwrap_or_default();
                if k.contains('\0') || name.is_empty() {
                    "query".to_owned()
                } else {
                    name.to_owned()
                }
            });
        if let Some(field) = field {
            return nul_error(format, &field).into_response();
        }
    }
    if let Ok(params) = RawPathParams::from_request_parts(&mut parts, &()).await {
        if let Some((name, _)) = params.iter().find(|(_, v)| v.contains('\0')) {
            return nul_error(format, name).into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}
