//! What Kaspi answers, as typed values. Decoding is lenient the way Kaspi needs: unknown fields
//! are ignored, ids come as numbers or strings, amounts are read from their decimal text.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::{Amount, Status};

/// Reads an id Kaspi may write as a number or a string.
pub(crate) fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// Reads a text Kaspi may write as a string or a number.
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    })
}

/// Reads an amount, ignoring a value that is not one rather than failing the whole answer.
/// Some answers carry display strings (`" 100 ₸"`, `"1 500,50 ₸"`): read those too.
pub(crate) fn lenient_amount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Amount>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => Amount::parse(&n.to_string()).ok(),
        Some(Value::String(s)) => Amount::parse(&s).ok().or_else(|| display_amount(&s)),
        _ => None,
    })
}

/// An amount written for people: spaces (also no-break) between thousands, the tenge sign,
/// a decimal comma.
fn display_amount(text: &str) -> Option<Amount> {
    let plain: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '₸')
        .map(|c| if c == ',' { '.' } else { c })
        .collect();
    Amount::parse(&plain).ok()
}

fn lenient_status<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Status>, D::Error> {
    Ok(lenient_string(d)?.map(|s| Status::parse(&s)))
}

/// Kaspi's answer to a customer look-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClientInfo {
    #[serde(default, deserialize_with = "lenient_string")]
    pub client_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub client_status: Option<String>,
}

/// A remote invoice (payment by phone) as create and details answer it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoteInvoice {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub qr_operation_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_status")]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub status_desc: Option<String>,
    #[serde(default, deserialize_with = "lenient_amount")]
    pub amount: Option<Amount>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub client_mobile: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub client_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub receipt_url: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub order_number: Option<String>,
    /// The comment the invoice was made with, where the answer carries it.
    #[serde(default, deserialize_with = "lenient_string")]
    pub comment: Option<String>,
}

impl RemoteInvoice {
    /// The id to follow the invoice by: `QrOperationId`, or `Id` where that is all there is.
    pub fn operation_id(&self) -> Option<i64> {
        self.qr_operation_id.or(self.id)
    }
}

/// A QR token (payment link) as Kaspi creates it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QrToken {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub qr_operation_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub ext_tran_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_status")]
    pub status: Option<Status>,
    /// As Kaspi answers it: `https://qr.kaspi.kz/<digits>`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub qr_token: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub expire_date: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub receipt_url: Option<String>,
    #[serde(default, deserialize_with = "lenient_amount")]
    pub amount: Option<Amount>,
    #[serde(default)]
    pub qr_payment_behavior_options: Option<Value>,
}

impl QrToken {
    /// The link shown to payers: `https://pay.kaspi.kz/pay/<digits>`.
    pub fn payment_url(&self) -> Option<String> {
        self.qr_token
            .as_deref()
            .map(|t| t.replace("https://qr.kaspi.kz/", "https://pay.kaspi.kz/pay/"))
    }
}

/// The status of a QR operation.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QrStatus {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_status")]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub status_desc: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub order_reg_date: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub cheque_title: Option<String>,
}

/// Details of one operation.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperationDetails {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_status")]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "lenient_amount")]
    pub amount: Option<Amount>,
    #[serde(default, deserialize_with = "lenient_amount")]
    pub returned_amount: Option<Amount>,
    #[serde(default, deserialize_with = "lenient_amount")]
    pub available_return_amount: Option<Amount>,
}

/// Kaspi's answer to a refund.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Refund {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_status")]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "lenient_amount")]
    pub return_amount: Option<Amount>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub qr_operation_id: Option<i64>,
}

/// One operation of the operations history. The fields are not documented by Kaspi; these are
/// the ones a gateway keeps (see `handler.staticQrPaymentObject` in the xPayment seed).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryOperation {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub kaspi_operation_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_status")]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "lenient_amount")]
    pub amount: Option<Amount>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub transaction_date: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub order_reg_date: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub order_number: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub sale_id: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub sale_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub source_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub operation_method: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub operation_type: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub features: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub client_short_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub client_mobile: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub comment: Option<String>,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub parent_operation_id: Option<i64>,
}

impl HistoryOperation {
    /// The operation's id: `KaspiOperationId`, or `Id`.
    pub fn operation_id(&self) -> Option<i64> {
        self.kaspi_operation_id.or(self.id)
    }
}

/// One page of the operations history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub operations: Vec<HistoryOperation>,
    /// What to send as `LastTransactionDate` for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// Finds the list inside a `Data` that is a list, or an object holding one.
pub(crate) fn list_in(data: &Value, preferred: &str) -> Vec<Value> {
    match data {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map
            .get(preferred)
            .and_then(Value::as_array)
            .or_else(|| map.values().find_map(Value::as_array))
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_amounts_are_read() {
        let op: HistoryOperation =
            serde_json::from_value(serde_json::json!({"Amount": " 100 ₸"})).expect("decodes");
        assert_eq!(op.amount, Some(Amount::from_tiyn(10_000)));
        for (text, tiyn) in [
            ("1 500,50 ₸", 150_050),
            ("1\u{a0}500 ₸", 150_000),
            ("25.5", 2_550),
        ] {
            let op: HistoryOperation =
                serde_json::from_value(serde_json::json!({"Amount": text})).expect("decodes");
            assert_eq!(op.amount, Some(Amount::from_tiyn(tiyn)), "{text}");
        }
        let op: HistoryOperation =
            serde_json::from_value(serde_json::json!({"Amount": "сто"})).expect("decodes");
        assert_eq!(op.amount, None);
    }
}
