//! The payment calls of qrpay: customers, remote invoices, QR tokens, history, refunds.

use reqwest::Method;
use serde_json::json;
use time::Date;

use crate::client::{Client, Effect};
use crate::error::Error;
use crate::session::Session;
use crate::wire::{
    self, ClientInfo, HistoryOperation, HistoryPage, OperationDetails, QrStatus, QrToken, Refund,
    RemoteInvoice,
};
use crate::{Amount, Phone};

/// Coordinates sent with a QR token (the point of sale); Almaty by default.
#[derive(Debug, Clone, Copy)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
}

impl Default for Location {
    fn default() -> Self {
        Self {
            latitude: 43.204_643_483_375_89,
            longitude: 76.891_962_364_115_91,
        }
    }
}

impl Client {
    /// Looks a customer up before invoicing them.
    pub async fn client_info(&self, session: &Session, phone: &Phone) -> Result<ClientInfo, Error> {
        let path = format!("/v01/remote/client-info?phoneNumber={}", phone.as_str());
        self.qrpay(session, Method::GET, &path, None, Effect::Read)
            .await?
            .data("client-info")
    }

    /// Sends a customer an invoice by phone. A lost answer is [`Error::OutcomeUnknown`].
    pub async fn create_invoice(
        &self,
        session: &Session,
        phone: &Phone,
        amount: Amount,
        comment: &str,
    ) -> Result<RemoteInvoice, Error> {
        let body = json!({"PhoneNumber": phone.as_str(), "Amount": amount, "Comment": comment});
        let invoice: RemoteInvoice = self
            .qrpay(
                session,
                Method::POST,
                "/v01/remote/create",
                Some(&body),
                Effect::Create("remote invoice create"),
            )
            .await?
            .data("remote invoice")?;
        require_id(invoice.operation_id(), "remote invoice create")?;
        self.note_status(invoice.status.as_ref());
        Ok(invoice)
    }

    /// Details (and status) of a remote invoice.
    pub async fn invoice_details(
        &self,
        session: &Session,
        operation_id: i64,
    ) -> Result<RemoteInvoice, Error> {
        let path = format!("/v02/remote/details?operationId={operation_id}");
        let invoice: RemoteInvoice = self
            .qrpay(session, Method::GET, &path, None, Effect::Read)
            .await?
            .data("remote invoice details")?;
        self.note_status(invoice.status.as_ref());
        Ok(invoice)
    }

    /// Cancels an unpaid remote invoice.
    pub async fn cancel_invoice(&self, session: &Session, operation_id: i64) -> Result<(), Error> {
        let body = json!({"qrOperationId": operation_id});
        self.qrpay(
            session,
            Method::POST,
            "/v01/remote/cancel",
            Some(&body),
            Effect::Read,
        )
        .await?;
        Ok(())
    }

    /// The latest remote invoices, newest first.
    pub async fn invoice_history(
        &self,
        session: &Session,
        max_results: u32,
    ) -> Result<Vec<RemoteInvoice>, Error> {
        let body = json!({"MaxResult": max_results});
        let envelope = self
            .qrpay(
                session,
                Method::POST,
                "/v01/remote/history",
                Some(&body),
                Effect::Read,
            )
            .await?;
        let invoices: Vec<RemoteInvoice> =
            decode_list(&envelope.data, "Items", "remote invoice history")?;
        for invoice in &invoices {
            self.note_status(invoice.status.as_ref());
        }
        Ok(invoices)
    }

    /// Creates a QR token (payment link). A lost answer is [`Error::OutcomeUnknown`].
    pub async fn create_qr(
        &self,
        session: &Session,
        amount: Amount,
        location: Location,
    ) -> Result<QrToken, Error> {
        let body = json!({
            "PaymentAmount": amount,
            "DeviceInterface": "Pos",
            "Latitude": location.latitude,
            "Longitude": location.longitude,
        });
        let token: QrToken = self
            .qrpay(
                session,
                Method::POST,
                "/v01/qr-token/create",
                Some(&body),
                Effect::Create("QR token create"),
            )
            .await?
            .data("QR token")?;
        require_id(token.qr_operation_id, "QR token create")?;
        self.note_status(token.status.as_ref());
        Ok(token)
    }

    /// Status of a QR operation.
    pub async fn qr_status(
        &self,
        session: &Session,
        qr_operation_id: i64,
    ) -> Result<QrStatus, Error> {
        let path = format!("/v02/kaspi-qr/status?qrOperationId={qr_operation_id}");
        let status: QrStatus = self
            .qrpay(session, Method::GET, &path, None, Effect::Read)
            .await?
            .data("QR status")?;
        self.note_status(status.status.as_ref());
        Ok(status)
    }

    /// One page of the operations history up to `end_date`, newest first. Pass `""` for the
    /// first page, then the previous page's [`HistoryPage::next_cursor`].
    pub async fn operations(
        &self,
        session: &Session,
        end_date: Date,
        cursor: &str,
    ) -> Result<HistoryPage, Error> {
        let body = json!({
            "EndDate": format!("{:04}-{:02}-{:02}", end_date.year(), u8::from(end_date.month()), end_date.day()),
            "LastTransactionDate": cursor,
            "StatementPeriodCode": 0,
        });
        let envelope = self
            .qrpay(
                session,
                Method::POST,
                "/v02/history/operations",
                Some(&body),
                Effect::Read,
            )
            .await?;
        let operations: Vec<HistoryOperation> = decode_list(
            &envelope.data,
            "ListHistoryPaymentData",
            "operations history",
        )?;
        for op in &operations {
            self.note_status(op.status.as_ref());
        }
        let next_cursor = operations.last().and_then(|op| op.transaction_date.clone());
        Ok(HistoryPage {
            operations,
            next_cursor,
        })
    }

    /// Details of one operation.
    pub async fn operation_details(
        &self,
        session: &Session,
        id: i64,
    ) -> Result<OperationDetails, Error> {
        let body = json!({"Id": id, "OperationMethod": 0});
        let details: OperationDetails = self
            .qrpay(
                session,
                Method::POST,
                "/v01/kaspi-qr/operations/details",
                Some(&body),
                Effect::Read,
            )
            .await?
            .data("operation details")?;
        self.note_status(details.status.as_ref());
        Ok(details)
    }

    /// Returns `amount` of a paid operation to the payer (full or partial).
    /// A lost answer is [`Error::OutcomeUnknown`]: check the operation before trying again.
    pub async fn refund(
        &self,
        session: &Session,
        qr_operation_id: i64,
        amount: Amount,
    ) -> Result<Refund, Error> {
        let body = json!({"ReturnAmount": amount, "QrOperationId": qr_operation_id, "DeviceInterface": "Pos"});
        let refund: Refund = self
            .qrpay(
                session,
                Method::POST,
                "/v01/kaspi-qr/history-pos-return",
                Some(&body),
                Effect::Create("refund"),
            )
            .await?
            .data("refund")?;
        self.note_status(refund.status.as_ref());
        Ok(refund)
    }

    /// A cheap check that Kaspi still accepts the session: a history request that answers
    /// `StatusCode` 0.
    pub async fn check_session(&self, session: &Session) -> Result<(), Error> {
        let today = time::OffsetDateTime::now_utc().date();
        let body = json!({
            "EndDate": format!("{:04}-{:02}-{:02}", today.year(), u8::from(today.month()), today.day()),
            "LastTransactionDate": "",
            "StatementPeriodCode": 0,
        });
        self.qrpay(
            session,
            Method::POST,
            "/v02/history/operations",
            Some(&body),
            Effect::Read,
        )
        .await?;
        Ok(())
    }
}

/// A create answered without an id to follow: the thing exists at Kaspi but cannot be
/// followed, so the outcome is unknown rather than failed.
fn require_id(id: Option<i64>, call: &'static str) -> Result<(), Error> {
    match id {
        Some(_) => Ok(()),
        None => Err(Error::OutcomeUnknown {
            call,
            cause: "no operation id in the answer".into(),
        }),
    }
}

/// Types the list inside `Data` (a bare list, or an object holding one under `key`).
fn decode_list<T: serde::de::DeserializeOwned>(
    data: &serde_json::Value,
    key: &str,
    what: &str,
) -> Result<Vec<T>, Error> {
    wire::list_in(data, key)
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Decode(format!("{what}: {e}")))
}
