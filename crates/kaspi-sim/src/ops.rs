//! The rules of payments: creating invoices, QR tokens, static QR payments and refunds,
//! every status change (payer scripts, control API, expiry, cancel), and the lazy clock
//! that applies time-driven changes when anything looks at the state.
//!
//! Money is `kaspi::Amount` (tiyn, `i64`); no floating point anywhere.

use std::sync::Arc;

use kaspi::{Amount, Phone, Status};

use crate::clock::duration_ms;
use crate::envelope::{codes, KaspiError};
use crate::people::{self, Payer};
use crate::state::{Operation, SaleType, Scripted, State};

/// The largest amount Kaspi takes: 99 999 999.99 KZT.
pub(crate) const MAX_AMOUNT: Amount = Amount::from_tiyn(9_999_999_999);

/// A status change of an open operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Pay,
    Decline,
    NoFunds,
    Expire,
    /// By the merchant (`remote/cancel`).
    Cancel,
    /// The payer scanned a QR token and has not confirmed yet (`Wait`).
    Scan,
}

/// Why a change could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChangeError {
    NotFound,
    /// The operation is final (its status given), or the change does not fit its kind.
    NotOpen(Status),
}

fn check_amount(amount: Amount) -> Result<(), KaspiError> {
    if amount <= Amount::ZERO || amount > MAX_AMOUNT {
        return Err(KaspiError::refused(
            codes::INVALID_AMOUNT,
            "Сумма должна быть больше нуля и не больше 99 999 999,99 ₸",
        ));
    }
    Ok(())
}

impl State {
    /// Applies every time-driven change due by now (sim clock), each at its own due time,
    /// in order of due time.
    pub(crate) fn tick(&mut self) {
        let now = self.clock.now_ms();
        while let Some(&(due, id)) = self.agenda.first() {
            if due > now {
                break;
            }
            self.agenda.pop_first();
            let Some(op) = self.ops.get(&id) else {
                continue;
            };
            // Stale entries (the operation changed since) are skipped.
            if op.next_due() != Some(due) {
                continue;
            }
            let change = match op.script {
                Some((at, script)) if at == due => match script {
                    Scripted::Pay => Change::Pay,
                    Scripted::Decline => Change::Decline,
                    Scripted::NoFunds => Change::NoFunds,
                },
                _ => Change::Expire,
            };
            // The operation is open (next_due said so), so this cannot fail.
            let _ = self.change(id, change, due);
        }
    }

    pub(crate) fn schedule(&mut self, id: u64) {
        if let Some(due) = self.ops.get(&id).and_then(|op| op.next_due()) {
            self.agenda.insert((due, id));
        }
    }

    /// Makes one change of an open operation at `at_ms`.
    pub(crate) fn change(
        &mut self,
        id: u64,
        change: Change,
        at_ms: i64,
    ) -> Result<(), ChangeError> {
        let op = self.ops.get(&id).ok_or(ChangeError::NotFound)?;
        if !op.is_open() {
            return Err(ChangeError::NotOpen(op.status.clone()));
        }
        let link = op.sale == SaleType::Link;
        let (status, desc) = match (change, link) {
            (Change::Pay, _) => (Status::Processed, "Оплачено"),
            (Change::Decline, false) => (Status::RemotePaymentRejected, "Клиент отклонил оплату"),
            (Change::Decline, true) => (Status::CancelledByUser, "Отменено клиентом"),
            (Change::NoFunds, false) => (Status::RemotePaymentRejected, "Недостаточно средств"),
            (Change::NoFunds, true) => (Status::InsufficientFunds, "Недостаточно средств"),
            (Change::Expire, _) => (Status::Expired, "Срок оплаты истёк"),
            (Change::Cancel, false) => (Status::RemotePaymentCanceled, "Отменено продавцом"),
            (Change::Cancel, true) => (Status::QrTokenDiscarded, "QR-код аннулирован"),
            (Change::Scan, true) => (Status::Wait, "Ожидает подтверждения клиентом"),
            (Change::Scan, false) => return Err(ChangeError::NotOpen(op.status.clone())),
        };
        let needs_name = change == Change::Pay && op.client_name.is_none();
        let name = needs_name.then(|| people::random_client_name(&mut self.rng));
        let last_tx = self.last_tx;
        let tx = self.stamp(at_ms);
        let Some(op) = self.ops.get_mut(&id).map(Arc::make_mut) else {
            return Err(ChangeError::NotFound);
        };
        if op.status == status {
            // Scanning twice changes nothing.
            self.last_tx = last_tx;
            return Ok(());
        }
        op.status = status;
        op.status_desc = desc.to_owned();
        op.tx_ms = tx;
        if change == Change::Pay {
            op.paid_ms = Some(at_ms);
        }
        if let Some(name) = name {
            op.client_name = Some(name);
        }
        tracing::info!(operation = id, status = %op.status, "operation changed");
        self.touch();
        Ok(())
    }

    fn new_operation(
        &mut self,
        organization_id: u64,
        sale: SaleType,
        amount: Amount,
        now: i64,
    ) -> Operation {
        let id = self.fresh_id();
        let sale_id = self.fresh_id();
        let tx_ms = self.stamp(now);
        Operation {
            id,
            sale_id,
            organization_id,
            sale,
            amount,
            comment: String::new(),
            client_phone: None,
            client_name: None,
            status: Status::Processed,
            status_desc: "Оплачено".to_owned(),
            created_ms: now,
            tx_ms,
            paid_ms: None,
            expires_ms: None,
            script: None,
            returned: Amount::ZERO,
            parent: None,
            qr_token: None,
            cashier: None,
        }
    }

    fn insert(&mut self, op: Operation) -> u64 {
        let id = op.id;
        tracing::info!(operation = id, sale = op.sale.as_str(), status = %op.status, "operation created");
        self.ops.insert(id, Arc::new(op));
        self.schedule(id);
        self.touch();
        id
    }

    /// A remote invoice to `phone` (`remote/create`).
    pub(crate) fn create_remote(
        &mut self,
        organization_id: u64,
        phone: Phone,
        amount: Amount,
        comment: String,
    ) -> Result<u64, KaspiError> {
        check_amount(amount)?;
        let payer = people::payer(&phone);
        if payer == Payer::NotClient {
            return Err(KaspiError::refused(
                codes::CLIENT_NOT_FOUND,
                "Клиент с таким номером не найден в Kaspi",
            ));
        }
        let now = self.clock.now_ms();
        let mut op = self.new_operation(organization_id, SaleType::Remote, amount, now);
        op.status = Status::RemotePaymentCreated;
        op.status_desc = "Ожидает оплаты".to_owned();
        op.comment = comment;
        op.client_name = Some(people::client_name(self.cfg.seed, &phone));
        op.client_phone = Some(phone);
        op.expires_ms = Some(now.saturating_add(duration_ms(self.cfg.invoice_ttl)));
        op.script = match payer {
            Payer::PaysAfter(d) => Some((now.saturating_add(duration_ms(d)), Scripted::Pay)),
            Payer::DeclinesAfter(d) => {
                Some((now.saturating_add(duration_ms(d)), Scripted::Decline))
            }
            Payer::NoFundsAfter(d) => Some((now.saturating_add(duration_ms(d)), Scripted::NoFunds)),
            Payer::NeverPays | Payer::NotClient | Payer::Ordinary => None,
        };
        Ok(self.insert(op))
    }

    /// A QR token (payment link) for `amount` (`qr-token/create`).
    pub(crate) fn create_qr(
        &mut self,
        organization_id: u64,
        amount: Amount,
    ) -> Result<u64, KaspiError> {
        check_amount(amount)?;
        let now = self.clock.now_ms();
        let mut op = self.new_operation(organization_id, SaleType::Link, amount, now);
        op.status = Status::QrTokenCreated;
        op.status_desc = "QR-код создан".to_owned();
        op.expires_ms = Some(now.saturating_add(duration_ms(self.cfg.qr_ttl)));
        op.qr_token = Some(format!("https://qr.kaspi.kz/{}", self.digits(16)));
        Ok(self.insert(op))
    }

    /// A payment to the merchant's static QR, paid at once (it has no invoice).
    pub(crate) fn add_static(
        &mut self,
        organization_id: u64,
        amount: Amount,
        comment: String,
    ) -> Result<u64, KaspiError> {
        check_amount(amount)?;
        let now = self.clock.now_ms();
        let mut op = self.new_operation(organization_id, SaleType::Static, amount, now);
        op.comment = comment;
        op.paid_ms = Some(now);
        op.client_name = Some(people::random_client_name(&mut self.rng));
        Ok(self.insert(op))
    }

    /// Notes that cashier `phone` made operation `id` (the control API shows it).
    pub(crate) fn made_by(&mut self, id: u64, phone: &str) {
        if let Some(op) = self.ops.get_mut(&id).map(Arc::make_mut) {
            op.cashier = Some(phone.to_owned());
        }
    }

    /// An operation of the organization, or `OperationNotFound`.
    pub(crate) fn op_of(&self, organization_id: u64, id: u64) -> Result<&Operation, KaspiError> {
        self.ops
            .get(&id)
            .map(|op| &**op)
            .filter(|op| op.organization_id == organization_id)
            .ok_or_else(|| KaspiError::operation_not_found(id))
    }

    /// Cancels an unpaid invoice or QR token (`remote/cancel`).
    pub(crate) fn cancel(&mut self, organization_id: u64, id: u64) -> Result<(), KaspiError> {
        let op = self.op_of(organization_id, id)?;
        if op.status == Status::Processed {
            return Err(KaspiError::refused(
                codes::OPERATION_ALREADY_PAID,
                "Операция уже оплачена, её нельзя отменить",
            ));
        }
        let now = self.clock.now_ms();
        self.change(id, Change::Cancel, now).map_err(|_| {
            KaspiError::refused(
                codes::OPERATION_NOT_CANCELABLE,
                "Операцию в этом статусе нельзя отменить",
            )
        })
    }

    /// Refunds `amount` of a paid operation (`history-pos-return`); returns the refund's id.
    pub(crate) fn refund(
        &mut self,
        organization_id: u64,
        parent_id: u64,
        amount: Amount,
    ) -> Result<u64, KaspiError> {
        let now = self.clock.now_ms();
        let window = duration_ms(self.cfg.refund_window);
        let parent = self.op_of(organization_id, parent_id)?;
        if parent.sale == SaleType::Return {
            return Err(KaspiError::refused(
                codes::OPERATION_NOT_RETURNABLE,
                "Возврат возврата невозможен",
            ));
        }
        if parent.status != Status::Processed {
            return Err(KaspiError::refused(
                codes::OPERATION_NOT_PAID,
                "Операция не оплачена",
            ));
        }
        if parent
            .paid_ms
            .is_some_and(|paid| now.saturating_sub(paid) > window)
        {
            return Err(KaspiError::refused(
                codes::RETURN_PERIOD_EXPIRED,
                "Срок возврата по операции истёк",
            ));
        }
        if amount <= Amount::ZERO {
            return Err(KaspiError::refused(
                codes::INVALID_AMOUNT,
                "Сумма возврата должна быть больше нуля",
            ));
        }
        if amount > parent.available_return() {
            return Err(KaspiError::refused(
                codes::RETURN_AMOUNT_EXCEEDED,
                "Сумма возврата превышает доступную",
            ));
        }
        let (client_name, client_phone, comment) = (
            parent.client_name.clone(),
            parent.client_phone.clone(),
            parent.comment.clone(),
        );
        let mut op = self.new_operation(organization_id, SaleType::Return, amount, now);
        op.status_desc = "Возврат выполнен".to_owned();
        op.paid_ms = Some(now);
        op.parent = Some(parent_id);
        op.client_name = client_name;
        op.client_phone = client_phone;
        op.comment = comment;
        if let Some(parent) = self.ops.get_mut(&parent_id).map(Arc::make_mut) {
            parent.returned = parent.returned.checked_add(amount).unwrap_or(parent.amount);
        }
        Ok(self.insert(op))
    }
}
