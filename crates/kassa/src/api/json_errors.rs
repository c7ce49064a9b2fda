//! What a JSON body that does not fit says: the field by its path (`amount`,
//! `cart_items[0].Price`) and a sentence a client can act on, in the surface's format; used by
//! [`super::extract::parse_json`].

use super::error::{ApiError, ErrorFormat};

/// The validation error for a serde_json error at `path` (`.` is the root).
pub(super) fn json_error(format: ErrorFormat, path: &str, err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;

    let message = message_without_location(err);
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::validation(
            format,
            "body",
            format!(
                "The request body is not valid JSON ({message} at line {}, column {}).",
                err.line(),
                err.column()
            ),
        ),
        Category::Data => {
            let (field, sentence) = describe_data_error(path, &message);
            ApiError::validation(format, field, sentence)
        }
    }
}

/// serde_json appends " at line L column C"; the field path says more to a client.
fn message_without_location(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// The field and the sentence for a data error (right JSON, wrong shape) at `path`.
fn describe_data_error(path: &str, message: &str) -> (String, String) {
    let field_at = |name: &str| -> String {
        if path == "." || path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let here = if path == "." || path.is_empty() {
        "body".to_owned()
    } else {
        path.to_owned()
    };

    if let Some(name) = between_backticks(message, "missing field `") {
        let field = field_at(name);
        let sentence = format!("The {field} field is required.");
        return (field, sentence);
    }
    if let Some(name) = between_backticks(message, "unknown field `") {
        let field = field_at(name);
        let sentence = format!("The {field} field is not allowed.");
        return (field, sentence);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (got, expected) = rest.split_once("`, expected ").unwrap_or((rest, ""));
        // serde writes "`A`", "`A` or `B`", or "one of `A`, `B`, `C`".
        let expected = expected.replace("` or `", "`, `").replace('`', "");
        let expected = expected.strip_prefix("one of ").unwrap_or(&expected);
        let sentence = if expected.is_empty() {
            format!("The selected {here} is invalid.")
        } else {
            format!("The selected {here} ({got}) is invalid; expected one of: {expected}.")
        };
        return (here, sentence);
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        let sentence = match kind_of(expected) {
            Some(kind) => format!("The {here} field must be {kind}."),
            None => format!("The {here} field must be {expected}."),
        };
        return (here, sentence);
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let (got, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let kind = kind_of(expected).unwrap_or(expected);
        let sentence = format!(
            "The {here} field must be {kind} (got {}).",
            got.replace('`', "")
        );
        return (here, sentence);
    }
    if let Some(rest) = message.strip_prefix("invalid length ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        let sentence = format!("The {here} field must have {expected}.");
        return (here, sentence);
    }
    // A custom message from a Deserialize impl: a sentence of its own is kept as it is.
    let starts_upper = message.chars().next().is_some_and(char::is_uppercase);
    let sentence = if starts_upper && message.ends_with('.') {
        message.to_owned()
    } else {
        format!("The {here} field is invalid: {message}.")
    };
    (here, sentence)
}

/// The text between `prefix` and the next backtick, if `message` starts with `prefix`.
fn between_backticks<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// A readable kind for serde's "expected …" text (`f64`, `u32`, `a sequence`, `struct X`).
fn kind_of(expected: &str) -> Option<&'static str> {
    let kind = match expected {
        "f64" | "f32" | "a number" | "a JSON number" => "a number",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "an integer" => "an integer",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "a string" | "a borrowed string" | "a character" | "char" => "a string",
        "a boolean" => "true or false",
        "a sequence" | "an array" => "an array",
        "a map" | "an object" => "an object",
        e if e.starts_with("struct ") || e.starts_with("a map") => "an object",
        e if e.starts_with("a tuple") || e.starts_with("tuple") => "an array",
        _ => return None,
    };
    Some(kind)
}
