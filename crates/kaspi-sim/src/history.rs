//! The operations history (`POST /qrpay/v02/history/operations`) and the JSON views of one
//! operation that qrpay and the control API answer.
//!
//! Every operation of the cashier's organization is listed — remote invoices, QR tokens,
//! static QR payments, refunds — newest first by `TransactionDate`, the time of its last
//! status change (unique: ties are bumped by 1 ms). Paging: the client sends as
//! `LastTransactionDate` the `TransactionDate` of the last item it got; the next page holds
//! the items strictly older. An empty page is the end. `EndDate` and `StatementPeriodCode`
//! are read but do not filter (the sim clock may run ahead of the client's calendar).

use kaspi::{Amount, Status};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::{fmt_date, fmt_millis, fmt_seconds, parse_cursor};
use crate::envelope::KaspiError;
use crate::state::{Operation, SaleType, State};
use crate::OperationInfo;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct HistoryRequest {
    #[serde(rename = "EndDate")]
    end_date: Option<String>,
    #[serde(rename = "LastTransactionDate")]
    last_transaction_date: Option<String>,
}

/// `OrderNumber` of an operation.
pub(crate) fn order_number(op: &Operation) -> String {
    format!("QR{}", op.id)
}

/// One item of `ListHistoryPaymentData`.
pub(crate) fn item(op: &Operation) -> Value {
    let refund = op.sale == SaleType::Return;
    json!({
        "Id": op.id,
        "KaspiOperationId": op.id,
        "OrderNumber": order_number(op),
        "SaleId": op.sale_id,
        "SaleType": op.sale.as_str(),
        "SourceType": "GOLD",
        "OperationMethod": 0,
        "OperationType": i32::from(refund),
        "Features": 0,
        "ClientShortName": op.client_name,
        "ClientMobile": op.client_phone.as_ref().map(|p| p.as_str()),
        "OrderRegDate": fmt_seconds(op.created_ms),
        "TransactionDate": fmt_millis(op.tx_ms),
        "Amount": op.amount,
        "Comment": op.comment,
        "Status": op.status.as_str(),
        "StatusDesc": op.status_desc,
        "ParentOperationId": op.parent,
        "ReturnedAmount": op.returned,
    })
}

/// What the control API shows of an operation.
pub(crate) fn info(op: &Operation) -> OperationInfo {
    OperationInfo {
        id: op.id,
        sale_type: op.sale.as_str().to_owned(),
        status: op.status.as_str().to_owned(),
        status_desc: op.status_desc.clone(),
        amount: op.amount,
        returned_amount: op.returned,
        comment: op.comment.clone(),
        client_mobile: op.client_phone.as_ref().map(|p| p.as_str().to_owned()),
        client_name: op.client_name.clone(),
        parent_operation_id: op.parent,
        transaction_date: fmt_millis(op.tx_ms),
        cashier_phone: op.cashier.clone(),
    }
}

/// One page of the history of an organization.
pub(crate) fn page(
    st: &State,
    organization_id: u64,
    req: &HistoryRequest,
) -> Result<Value, KaspiError> {
    let cursor = match req.last_transaction_date.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(parse_cursor(text).ok_or_else(|| {
            KaspiError::invalid_request("LastTransactionDate не дата ISO 8601 с поясом")
        })?),
    };
    let mut ops: Vec<&Operation> = st
        .ops
        .values()
        .map(|op| &**op)
        .filter(|op| op.organization_id == organization_id)
        .filter(|op| cursor.is_none_or(|c| op.tx_ms < c))
        .collect();
    ops.sort_by_key(|op| std::cmp::Reverse(op.tx_ms));
    ops.truncate(st.cfg.history_page_size.max(1));

    let end = req
        .end_date
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| fmt_date(st.clock.now_ms()));
    let mut daily: Vec<(String, Amount, u32)> = Vec::new();
    let (mut paid, mut paid_n, mut returned, mut returned_n) =
        (Amount::ZERO, 0u32, Amount::ZERO, 0u32);
    for op in &ops {
        if op.status != Status::Processed {
            continue;
        }
        let signed = if op.sale == SaleType::Return {
            returned = returned.checked_add(op.amount).unwrap_or(returned);
            returned_n += 1;
            Amount::ZERO.checked_sub(op.amount).unwrap_or(Amount::ZERO)
        } else {
            paid = paid.checked_add(op.amount).unwrap_or(paid);
            paid_n += 1;
            op.amount
        };
        let day = fmt_date(op.tx_ms);
        match daily.last_mut() {
            Some((d, sum, n)) if *d == day => {
                *sum = sum.checked_add(signed).unwrap_or(*sum);
                *n += 1;
            }
            _ => daily.push((day, signed, 1)),
        }
    }
    Ok(json!({
        "FormattedPeriod": format!("по {end}"),
        "PeriodWithLineBreak": format!("по\n{end}"),
        "Statistics": {
            "PaymentsAmount": paid,
            "PaymentsCount": paid_n,
            "ReturnsAmount": returned,
            "ReturnsCount": returned_n,
        },
        "DailySets": daily
            .iter()
            .map(|(day, sum, n)| json!({ "Date": day, "Amount": sum, "Count": n }))
            .collect::<Vec<_>>(),
        "Icons": [],
        "ListHistoryPaymentData": ops.iter().map(|op| item(op)).collect::<Vec<_>>(),
    }))
}
