//! Invoices by phone: create, cancel, one status check, and the sandbox payer.
//!
//! Create stores the invoice `pending` first, then asks Kaspi, then records the operation id.
//! When Kaspi's answer is lost the request is not repeated: the invoice is looked for in
//! Kaspi's history (at once, then by the reconcile job) and is failed only when history shows
//! Kaspi never received it.

use std::sync::Arc;

use kaspi::wire::RemoteInvoice;
use kaspi::{Amount, Outcome, Phone, Status};

use crate::domain::{KaspiOperationId, Money};

use super::terminals::{Cashiers, Loaded};
use super::{ms, Gateway, GatewayError};
use crate::store::{
    kaspi_comment, kaspi_ref_of, new_kaspi_ref, Cart, CreateState, IdemLink, Invoice, InvoiceItem,
    InvoiceKind, InvoiceSent, InvoiceStatus, JobKind, NewInvoice, StoreError,
};

/// What a surface asks for when it invoices a customer by phone.
#[derive(Debug, Clone)]
pub struct NewRemoteInvoice {
    pub phone: Phone,
    pub amount: Money,
    pub description: Option<String>,
    pub external_order_id: Option<String>,
    /// A JSON object, as text (xPayment's `metadata`).
    pub metadata: Option<String>,
    /// The idempotent request asking, if any: it will name the invoice.
    pub idempotency: Option<IdemLink>,
    /// The cart (or discount) that made `amount`, stored with the invoice.
    pub cart: Option<Cart>,
}

/// The most characters of a cart's lines that go into the Kaspi comment (Kaspi's limit is not
/// public; the lines are kept in full in Kassa).
const COMMENT_LINES_MAX: usize = 200;

/// What Kaspi is told an invoice is for: the description, and for a cart its lines
/// (`Coffee Latte ×2, Cookie ×3`), cut to [`COMMENT_LINES_MAX`] characters.
fn kaspi_description(description: Option<&str>, items: &[InvoiceItem]) -> Option<String> {
    if items.is_empty() {
        return description.map(str::to_owned);
    }
    let lines = items
        .iter()
        .map(|i| format!("{} ×{}", i.item.name, i.item.count))
        .collect::<Vec<_>>()
        .join(", ");
    let lines = if lines.chars().count() > COMMENT_LINES_MAX {
        let mut cut: String = lines.chars().take(COMMENT_LINES_MAX - 1).collect();
        cut.push('…');
        cut
    } else {
        lines
    };
    Some(match description.map(str::trim).filter(|d| !d.is_empty()) {
        Some(text) => format!("{text} — {lines}"),
        None => lines,
    })
}

/// What a status check found.
#[derive(Debug)]
pub(crate) enum Checked {
    /// A final status was recorded: the invoice as it is now.
    Changed(Box<Invoice>),
    /// Kaspi has nothing new, or the invoice has no Kaspi operation yet.
    Unchanged,
    /// Not asked: the cashier's calls are spaced out (only for [`Gateway::poll_status`]).
    Busy,
}

/// What [`Gateway::send_stored`] does with an invoice Kaspi did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Remove it: the request that made it is answered with the error.
    Delete,
    /// Keep it: a refusal fails it (its subscription sees a failed payment); anything else
    /// leaves it to its reconciliation, which sends it again.
    Fail,
}

/// What the sandbox payer can do to an open operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxAction {
    Pay,
    Decline,
    Expire,
}

/// How many of the newest remote invoices a reconciliation reads.
const HISTORY_WINDOW: u32 = 100;

/// Our status for a Kaspi status, when it is final.
pub(super) fn status_of(kaspi: &Status) -> Option<InvoiceStatus> {
    match kaspi.outcome() {
        Outcome::Open => None,
        Outcome::Paid => Some(InvoiceStatus::Paid),
        Outcome::Expired => Some(InvoiceStatus::Expired),
        Outcome::Failed if *kaspi == Status::RemotePaymentCanceled => {
            Some(InvoiceStatus::Cancelled)
        }
        Outcome::Failed => Some(InvoiceStatus::Failed),
    }
}

fn operation_id(invoice: &Invoice) -> Option<i64> {
    invoice.kaspi_operation_id.map(KaspiOperationId::get)
}

impl Gateway {
    /// Stores a pending invoice, sends it to Kaspi and records the operation. A definite
    /// refusal (or no usable cashier) removes the unsent invoice and is the answer; a lost
    /// answer leaves the invoice pending while it is reconciled.
    pub async fn create_invoice(
        &self,
        org_id: i64,
        new: NewRemoteInvoice,
    ) -> Result<Invoice, GatewayError> {
        if let Some(id) = new
            .idempotency
            .as_ref()
            .and_then(IdemLink::recovered_invoice)
        {
            // An earlier run of this request made it, then its process died: that invoice is
            // the answer (its reconciliation finishes the create at Kaspi).
            if let Some(made) = self.store().invoices().invoice(org_id, id).await? {
                return Ok(made);
            }
        }
        // No usable cashier: answer before anything is stored.
        let cashiers = self.terminals().load(org_id).await?;
        let is_sandbox = self.is_sandbox(org_id).await?;
        let store = self.store();
        let now = self.now_ms();
        let kaspi_ref = new_kaspi_ref();
        // Stored with its reconciliation already scheduled and its marker: if this process
        // dies while Kaspi is asked, a later one finds the operation by the marker.
        let invoice = store
            .invoices()
            .insert_invoice_with_cart(
                NewInvoice {
                    payment_id: uuid::Uuid::new_v4().to_string(),
                    org_id,
                    kind: InvoiceKind::Remote,
                    amount: new.amount,
                    phone: Some(new.phone.clone()),
                    description: new.description.clone(),
                    external_order_id: new.external_order_id.clone(),
                    is_sandbox,
                    created_at: now,
                    expires_at: Some(now.saturating_add(ms(self.settings().invoice_ttl))),
                    metadata: new.metadata.clone(),
                    kaspi_ref: Some(kaspi_ref),
                    reconcile_at: Some(now.saturating_add(ms(self.settings().create_grace))),
                    idempotency: new.idempotency.clone(),
                },
                new.cart.clone(),
            )
            .await?;
        super::traced_invoice(invoice.id);
        self.send_stored(invoice, cashiers, Refused::Delete).await
    }

    /// Sends a stored `sending` invoice by phone to Kaspi and records the operation. When
    /// Kaspi's answer is lost the request is not repeated: the invoice is looked for in
    /// Kaspi's history and else reconciled. Another error is handled as `refused` says.
    pub(crate) async fn send_stored(
        &self,
        invoice: Invoice,
        cashiers: Arc<Cashiers>,
        refused: Refused,
    ) -> Result<Invoice, GatewayError> {
        let store = self.store();
        let Some(phone) = invoice.phone.clone() else {
            return Err(GatewayError::Internal(format!(
                "invoice {} has no phone to send to",
                invoice.id
            )));
        };
        let marker = invoice.kaspi_ref.clone().unwrap_or_else(new_kaspi_ref);
        let items = if invoice.subtotal.is_some() {
            store.invoices().items(invoice.org_id, invoice.id).await?
        } else {
            Vec::new()
        };
        let description = kaspi_description(invoice.description.as_deref(), &items);
        let comment = kaspi_comment(description.as_deref(), &marker);
        let comment = comment.as_str();
        let (phone, amount) = (&phone, invoice.amount);
        let sent = self
            .terminals()
            .call_with(&cashiers, "create_invoice", |k| async move {
                let made = k
                    .client
                    .create_invoice(&k.session, phone, Amount::from(amount), comment)
                    .await;
                made.map(|remote| (remote, k.terminal_id))
            })
            .await;
        match sent {
            Ok((remote, by)) => self.record_sent_by(&invoice, &remote, Some(by)).await,
            Err(GatewayError::OutcomeUnknown(cause)) => {
                tracing::warn!(invoice = invoice.id, %cause, "Kaspi's answer to a create was lost; reconciling");
                match self.find_in_history(&invoice).await {
                    Ok(Some(found)) => return self.record_sent(&invoice, &found).await,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(invoice = invoice.id, error = %e, "Kaspi history unavailable; reconciling later")
                    }
                }
                let first = self
                    .settings()
                    .reconcile_schedule
                    .first()
                    .copied()
                    .unwrap_or_default();
                let marked = store
                    .invoices()
                    .mark_invoice_create_unknown(
                        invoice.id,
                        &cause,
                        self.now_ms(),
                        self.now_ms().saturating_add(ms(first)),
                    )
                    .await;
                match marked {
                    Ok(unknown) => Ok(unknown),
                    // The history sync found the operation by its marker meanwhile: the
                    // invoice as it is now.
                    Err(StoreError::NotFound) => store
                        .invoices()
                        .invoice_by_id(invoice.id)
                        .await?
                        .ok_or(GatewayError::NotFound),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => match refused {
                Refused::Delete => {
                    store.invoices().delete_unsent_invoice(invoice.id).await?;
                    Err(e)
                }
                Refused::Fail
                    if matches!(
                        e,
                        GatewayError::KaspiRefused(_) | GatewayError::KaspiClientNotFound
                    ) =>
                {
                    tracing::warn!(invoice = invoice.id, error = %e, "Kaspi refused a recurring invoice");
                    let failed = store
                        .invoices()
                        .mark_invoice_create_failed(invoice.id, &e.to_string(), self.now_ms())
                        .await?;
                    Ok(failed)
                }
                Refused::Fail => {
                    // Not sent, for now: its reconciliation (already scheduled) looks for it in
                    // Kaspi's history and sends it again when it is not there.
                    tracing::warn!(invoice = invoice.id, error = %e, "a recurring invoice is not sent yet; reconciling");
                    Ok(invoice)
                }
            },
        }
    }

    pub(crate) async fn record_sent(
        &self,
        invoice: &Invoice,
        remote: &RemoteInvoice,
    ) -> Result<Invoice, GatewayError> {
        self.record_sent_by(invoice, remote, None).await
    }

    /// [`Gateway::record_sent`] noting cashier `by` (a terminal id) as the one that made the
    /// operation, when known.
    async fn record_sent_by(
        &self,
        invoice: &Invoice,
        remote: &RemoteInvoice,
        by: Option<i64>,
    ) -> Result<Invoice, GatewayError> {
        let op = remote.operation_id().ok_or_else(|| {
            GatewayError::Internal("Kaspi answered a create without an id".into())
        })?;
        let now = self.now_ms();
        let first_poll = self
            .settings()
            .poll_schedule
            .first()
            .copied()
            .unwrap_or_default();
        let marked = self
            .store()
            .invoices()
            .mark_invoice_sent_by(
                invoice.id,
                InvoiceSent {
                    kaspi_operation_id: KaspiOperationId::new(op),
                    kaspi_status: remote.status.as_ref().map(|s| s.as_str().to_owned()),
                    client_name: remote.client_name.clone(),
                    at_ms: now,
                    poll_at_ms: now.saturating_add(ms(first_poll)),
                    qr_token: None,
                    ext_tran_id: None,
                    expires_at: None,
                },
                by,
            )
            .await;
        let sent = match marked {
            Ok(sent) => sent,
            Err(StoreError::NotFound) => {
                // Someone else recorded it first (the history sync or a reconciliation found
                // the operation by its marker): the invoice as it is, if it is this operation.
                let current = self
                    .store()
                    .invoices()
                    .invoice_by_id(invoice.id)
                    .await?
                    .ok_or(GatewayError::NotFound)?;
                if current.kaspi_operation_id != Some(KaspiOperationId::new(op)) {
                    return Err(GatewayError::Internal(format!(
                        "invoice {} was settled with another Kaspi operation than {op}",
                        invoice.id
                    )));
                }
                return Ok(current);
            }
            Err(e) => return Err(e.into()),
        };
        self.history_soon(invoice.org_id, now).await?;
        Ok(sent)
    }

    /// Brings the organization's history sync forward to within `history_every`: an invoice
    /// is open now.
    pub(crate) async fn history_soon(&self, org_id: i64, now: i64) -> Result<(), GatewayError> {
        let every = self.settings().history_every;
        if !self.inner.history_pulls.due(org_id, every, self.now_ms()) {
            // Pulled forward within the last `history_every`: it is due soon already.
            return Ok(());
        }
        let at = now.saturating_add(ms(every));
        self.store()
            .jobs()
            .pull_job_forward(JobKind::SyncHistory, org_id, at, now)
            .await?;
        Ok(())
    }

    /// Looks for `invoice` among Kaspi's newest remote invoices: the one whose comment carries
    /// the invoice's marker; where Kaspi's answer has no comments (or the invoice predates
    /// markers), the same phone and amount and an operation no other invoice of the
    /// organization holds. `Ok(None)` when it is not there; an error when history could not
    /// be read.
    pub(crate) async fn find_in_history(
        &self,
        invoice: &Invoice,
    ) -> Result<Option<RemoteInvoice>, GatewayError> {
        let history = self
            .terminals()
            .call(invoice.org_id, "invoice_history", |k| async move {
                k.client.invoice_history(&k.session, HISTORY_WINDOW).await
            })
            .await?;
        let has_comments = history.iter().any(|remote| remote.comment.is_some());
        if let (Some(marker), true) = (invoice.kaspi_ref.as_deref(), has_comments) {
            return Ok(history.into_iter().find(|remote| {
                remote.comment.as_deref().and_then(kaspi_ref_of) == Some(marker)
                    && remote.operation_id().is_some()
            }));
        }
        let Some(phone) = &invoice.phone else {
            return Ok(None);
        };
        for remote in history {
            let same_phone = remote
                .client_mobile
                .as_deref()
                .and_then(|m| kaspi::phone::normalize(m).ok())
                .is_some_and(|p| &p == phone);
            let same_amount = remote.amount.map(Money::from) == Some(invoice.amount);
            let Some(op) = remote.operation_id() else {
                continue;
            };
            if same_phone
                && same_amount
                && self
                    .store()
                    .invoices()
                    .invoice_by_operation_id(invoice.org_id, KaspiOperationId::new(op))
                    .await?
                    .is_none()
            {
                return Ok(Some(remote));
            }
        }
        Ok(None)
    }

    /// Cancels a pending invoice at Kaspi, then here. A payment that beat the cancel wins: the
    /// invoice is checked and its real status returned as the error.
    pub async fn cancel_invoice(&self, org_id: i64, id: i64) -> Result<Invoice, GatewayError> {
        self.cancel_invoice_with_reason(org_id, id, None).await
    }

    /// [`Gateway::cancel_invoice`] noting the merchant's reason. A QR payment has nothing to
    /// cancel at Kaspi (its token simply expires unpaid); it is cancelled here, and a payment
    /// that still arrives wins.
    pub async fn cancel_invoice_with_reason(
        &self,
        org_id: i64,
        id: i64,
        reason: Option<String>,
    ) -> Result<Invoice, GatewayError> {
        let invoice = self
            .store()
            .invoices()
            .invoice(org_id, id)
            .await?
            .ok_or(GatewayError::NotFound)?;
        if invoice.status != InvoiceStatus::Pending {
            return Err(GatewayError::NotCancellable {
                status: invoice.status,
            });
        }
        let op = match invoice.create_state {
            CreateState::Sent => operation_id(&invoice).ok_or_else(|| {
                GatewayError::Internal(format!("invoice {id} has an unreadable operation id"))
            })?,
            CreateState::Sending | CreateState::Unknown => return Err(GatewayError::NotAtKaspiYet),
            CreateState::Failed => {
                return Err(GatewayError::NotCancellable {
                    status: invoice.status,
                })
            }
        };
        let cancelled = match invoice.kind {
            InvoiceKind::Remote => {
                let cashiers = self.terminals().load(org_id).await?;
                self.terminals()
                    .call_on_invoice(&cashiers, org_id, id, "cancel_invoice", |k| async move {
                        k.client.cancel_invoice(&k.session, op).await
                    })
                    .await
            }
            InvoiceKind::Qr => self.terminals().load(org_id).await.map(|_| ()),
        };
        match cancelled {
            Ok(()) => {
                let now = self.now_ms();
                let changed = self
                    .store()
                    .invoices()
                    .cancel_invoice(id, reason.as_deref(), now)
                    .await?;
                self.schedule_late_check(id, now).await?;
                match changed {
                    Some(invoice) => Ok(invoice),
                    None => Err(self.not_cancellable_now(org_id, id).await),
                }
            }
            Err(GatewayError::KaspiRefused(message)) => {
                // Kaspi would not cancel: most likely the payer was faster. Look.
                let _ = self.check_status(&invoice).await;
                let current = self.store().invoices().invoice(org_id, id).await?;
                match current {
                    Some(c) if c.status != InvoiceStatus::Pending => {
                        Err(GatewayError::NotCancellable { status: c.status })
                    }
                    _ => Err(GatewayError::KaspiRefused(message)),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn not_cancellable_now(&self, org_id: i64, id: i64) -> GatewayError {
        match self.store().invoices().invoice(org_id, id).await {
            Ok(Some(c)) => GatewayError::NotCancellable { status: c.status },
            Ok(None) => GatewayError::NotFound,
            Err(e) => e.into(),
        }
    }

    /// One more status check after a cancel or an expiry, so a payment that crossed it is
    /// still recorded.
    pub(crate) async fn schedule_late_check(
        &self,
        invoice_id: i64,
        now: i64,
    ) -> Result<(), GatewayError> {
        let at = now.saturating_add(ms(self.settings().late_check));
        self.store()
            .jobs()
            .schedule_job(JobKind::PollInvoice, invoice_id, at, now)
            .await?;
        Ok(())
    }

    /// Asks Kaspi for the invoice's status and records a change; the changed invoice, or
    /// `None` when nothing changed.
    pub async fn check_status(&self, invoice: &Invoice) -> Result<Option<Invoice>, GatewayError> {
        match self.check_status_in(invoice, false).await? {
            Checked::Changed(changed) => Ok(Some(*changed)),
            Checked::Unchanged | Checked::Busy => Ok(None),
        }
    }

    /// [`Gateway::check_status`] for the poller: only on a Kaspi call slot that creates and
    /// history pages do not need now, else [`Checked::Busy`] and no call.
    pub(crate) async fn poll_status(&self, invoice: &Invoice) -> Result<Checked, GatewayError> {
        self.check_status_in(invoice, true).await
    }

    async fn check_status_in(
        &self,
        invoice: &Invoice,
        spare_only: bool,
    ) -> Result<Checked, GatewayError> {
        let Some(op) = operation_id(invoice) else {
            return Ok(Checked::Unchanged);
        };
        let org_id = invoice.org_id;
        let answer = match invoice.kind {
            InvoiceKind::Remote => {
                self.ask(
                    org_id,
                    spare_only,
                    "invoice_details",
                    |k: Arc<Loaded>| async move {
                        let details = k.client.invoice_details(&k.session, op).await?;
                        Ok((details.status, details.client_name))
                    },
                )
                .await?
            }
            InvoiceKind::Qr => {
                self.ask(
                    org_id,
                    spare_only,
                    "qr_status",
                    |k: Arc<Loaded>| async move {
                        Ok((k.client.qr_status(&k.session, op).await?.status, None))
                    },
                )
                .await?
            }
        };
        let Some((kaspi_status, client_name)) = answer else {
            return Ok(Checked::Busy);
        };
        let Some(kaspi_status) = kaspi_status.as_ref() else {
            return Ok(Checked::Unchanged);
        };
        let Some(to) = status_of(kaspi_status) else {
            return Ok(Checked::Unchanged);
        };
        let now = self.now_ms();
        let changed = self
            .store()
            .invoices()
            .apply_status(
                invoice.id,
                to,
                Some(kaspi_status.as_str()),
                now,
                client_name.as_deref(),
            )
            .await?;
        if let Some(changed) = &changed {
            // The store logs the change itself ("invoice status changed"), in this span.
            tracing::debug!(
                invoice = changed.id,
                status = changed.status.as_str(),
                "Kaspi reports a new status"
            );
            if changed.status == InvoiceStatus::Expired {
                self.schedule_late_check(changed.id, now).await?;
            }
        }
        Ok(changed.map_or(Checked::Unchanged, |c| Checked::Changed(Box::new(c))))
    }

    /// Makes a Kaspi call for `org_id`: on the next slot, or with `spare_only` only on a slot
    /// nobody else needs now (`None` then, and no call). `what` names the call in the metrics.
    async fn ask<T, F, Fut>(
        &self,
        org_id: i64,
        spare_only: bool,
        what: &'static str,
        call: F,
    ) -> Result<Option<T>, GatewayError>
    where
        F: Fn(Arc<Loaded>) -> Fut,
        Fut: std::future::Future<Output = Result<T, kaspi::Error>>,
    {
        if spare_only {
            self.terminals().call_spare(org_id, what, call).await
        } else {
            self.terminals().call(org_id, what, call).await.map(Some)
        }
    }

    /// Sandbox only (a test organization, or any in a sandbox deployment): the payer pays,
    /// declines, or lets the invoice expire, and the gateway checks the invoice at once.
    pub async fn sandbox_act(
        &self,
        org_id: i64,
        id: i64,
        action: SandboxAction,
    ) -> Result<Invoice, GatewayError> {
        let sim = self.sandbox_for(org_id).await?.ok_or_else(|| {
            GatewayError::Sandbox(
                "the sandbox payer acts only on test invoices: use a test key \
                 (`kassa api-key create --mode test`); this live key reaches the real Kaspi"
                    .into(),
            )
        })?;
        let invoice = self
            .store()
            .invoices()
            .invoice(org_id, id)
            .await?
            .ok_or(GatewayError::NotFound)?;
        let op = operation_id(&invoice).ok_or(GatewayError::NotAtKaspiYet)?;
        let op = u64::try_from(op)
            .map_err(|_| GatewayError::Internal(format!("negative operation id {op}")))?;
        let done = match action {
            SandboxAction::Pay => sim.pay(op),
            SandboxAction::Decline => sim.decline(op),
            SandboxAction::Expire => sim.expire(op),
        };
        done.map_err(|e| GatewayError::Sandbox(format!("the sandbox payer cannot do that: {e}")))?;
        self.check_status(&invoice).await?;
        self.store()
            .invoices()
            .invoice(org_id, id)
            .await?
            .ok_or(GatewayError::NotFound)
    }
}
