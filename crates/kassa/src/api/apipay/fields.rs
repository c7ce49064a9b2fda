//! Fields of ApiPay JSON bodies read with Laravel's rules and messages: the phone number, whole
//! numbers in a range, flags, dates and JSON objects. Each problem is added to the request's
//! [`FieldErrors`] under the field's name.

use serde_json::Value;
use time::Date;

use crate::api::error::FieldErrors;
use crate::domain::{parse_date, Phone};

/// The required `phone_number`: `8` and ten digits, as ApiPay requires, of a Kazakhstan
/// mobile number.
pub(super) fn phone_number(value: Option<&Value>, errors: &mut FieldErrors) -> Option<Phone> {
    match value {
        None | Some(Value::Null) => {
            errors.add("phone_number", "The phone number field is required.");
            None
        }
        Some(Value::String(p)) if is_apipay_phone(p) => match kaspi::phone::normalize(p) {
            Ok(phone) => Some(phone),
            Err(_) => {
                errors.add(
                    "phone_number",
                    "The phone number is not a Kazakhstan mobile number (8 7XX XXX XX XX).",
                );
                None
            }
        },
        Some(Value::String(_)) => {
            errors.add(
                "phone_number",
                "Phone number must be in format 8XXXXXXXXXX.",
            );
            None
        }
        Some(_) => {
            errors.add("phone_number", "The phone number must be a string.");
            None
        }
    }
}

/// `8` and ten digits, as ApiPay requires.
fn is_apipay_phone(text: &str) -> bool {
    text.len() == 11 && text.starts_with('8') && text.bytes().all(|b| b.is_ascii_digit())
}

/// An optional whole number in `min..=max` (a JSON integer, or digits in a string as Laravel's
/// `integer` rule takes them).
pub(super) fn integer(
    value: Option<&Value>,
    field: &str,
    min: i64,
    max: i64,
    errors: &mut FieldErrors,
) -> Option<i64> {
    let number = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        Some(_) => None,
    };
    match number {
        None => {
            errors.add(field, format!("The {field} field must be an integer."));
            None
        }
        Some(n) if n < min || n > max => {
            errors.add(
                field,
                format!("The {field} field must be between {min} and {max}."),
            );
            None
        }
        Some(n) => Some(n),
    }
}

/// An optional flag: `true`/`false`, or `1`/`0` as Laravel's `boolean` rule takes them.
pub(super) fn boolean(
    value: Option<&Value>,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<bool> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Some(true),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Some(false),
        Some(Value::String(s)) if s == "1" || s == "true" => Some(true),
        Some(Value::String(s)) if s == "0" || s == "false" => Some(false),
        Some(_) => {
            errors.add(field, format!("The {field} field must be true or false."));
            None
        }
    }
}

/// An optional `YYYY-MM-DD` date.
pub(super) fn date(value: Option<&Value>, field: &str, errors: &mut FieldErrors) -> Option<Date> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let date = parse_date(s);
            if date.is_none() {
                errors.add(
                    field,
                    format!("The {field} field must be a valid date (YYYY-MM-DD)."),
                );
            }
            date
        }
        Some(_) => {
            errors.add(
                field,
                format!("The {field} field must be a valid date (YYYY-MM-DD)."),
            );
            None
        }
    }
}

/// An optional JSON object, kept as its text; `Some(None)` for an explicit `null`.
pub(super) fn object(
    value: Option<&Value>,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<Option<String>> {
    match value {
        None => None,
        Some(Value::Null) => Some(None),
        Some(object @ Value::Object(_)) => Some(Some(object.to_string())),
        Some(_) => {
            errors.add(field, format!("The {field} field must be an object."));
            None
        }
    }
}

/// A list of 1 to `max` values (the value is present and not `null`); an error on `field`
/// otherwise.
pub(super) fn list<'a>(
    value: &'a Value,
    field: &str,
    max: usize,
    errors: &mut FieldErrors,
) -> Option<&'a [Value]> {
    let label = field.replace('_', " ");
    match value {
        Value::Array(list) if list.is_empty() => {
            errors.add(
                field,
                format!("The {label} field must have at least 1 item."),
            );
            None
        }
        Value::Array(list) if list.len() > max => {
            errors.add(
                field,
                format!("The {label} field must not have more than {max} items."),
            );
            None
        }
        Value::Array(list) => Some(list),
        _ => {
            errors.add(field, format!("The {label} field must be an array."));
            None
        }
    }
}
