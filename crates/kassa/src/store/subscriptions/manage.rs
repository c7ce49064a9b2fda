//! Subscriptions made, read, listed, changed, paused, resumed and cancelled; the invoices each
//! one made and their totals.

use super::billing::open_invoices_tx;
use super::*;
use crate::store::audit::{note, Change};

impl SubscriptionRepo {
    /// Stores a new active subscription with its first billing date and its job (and, with
    /// `idempotency`, the request's record naming it).
    pub async fn create(&self, new: NewSubscription) -> Result<Subscription, StoreError> {
        let now = self.now_ms();
        let calendar = Calendar::new(new.period, new.billing_day, new.started_on);
        let (next_on, next_at) = if new.bill_immediately {
            let at = if new.started_on <= almaty_date(now) {
                now
            } else {
                billing_moment(new.started_on)
            };
            (new.started_on, at)
        } else {
            let on = calendar.next_due(new.started_on, now);
            (on, billing_moment(on))
        };
        let sql = format!(
            "INSERT INTO subscriptions (org_id, amount, phone, billing_period, billing_day, \
             description, subscriber_name, external_subscriber_id, metadata, started_on, \
             max_retry_attempts, retry_interval_hours, grace_period_days, status, \
             next_billing_on, next_billing_at, is_sandbox, created_at, updated_at, cart) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $18, $19) RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let params: Vec<Value> = vec![
                    new.org_id.into(),
                    new.amount.into(),
                    (&new.phone).into(),
                    new.period.as_str().into(),
                    new.billing_day.map(i64::from).into(),
                    new.description.as_ref().into(),
                    new.subscriber_name.as_ref().into(),
                    new.external_subscriber_id.as_ref().into(),
                    new.metadata.as_ref().into(),
                    new.started_on.into(),
                    new.max_retry_attempts.into(),
                    new.retry_interval_hours.into(),
                    new.grace_period_days.into(),
                    SubscriptionStatus::Active.as_str().into(),
                    next_on.into(),
                    next_at.into(),
                    new.is_sandbox.into(),
                    now.into(),
                    cart_text(&new.cart)?.into(),
                ];
                let sub = subscription_from_row(&tx.query_one(&sql, &params)?)?;
                if let Some(due) = sub.due_at() {
                    schedule_job_at(tx, JobKind::BillSubscription, sub.id, due, now, false)?;
                }
                let change = Change::new(
                    sub.org_id,
                    "subscription.created",
                    format!("subscription:{}", sub.id),
                )
                .with(serde_json::json!({
                    "amount": sub.amount.to_decimal_string(),
                    "period": sub.period.as_str(),
                }));
                note(tx, actor.as_ref(), now, &change)?;
                if let Some(link) = &new.idempotency {
                    crate::store::idempotency::link_tx(
                        tx,
                        link,
                        crate::store::Resource::Subscription(sub.id),
                    )?;
                }
                Ok(sub)
            })
            .await
    }

    /// Subscription `id` of `org_id`.
    pub async fn subscription(
        &self,
        org_id: i64,
        id: i64,
    ) -> Result<Option<Subscription>, StoreError> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE org_id = $1 AND id = $2"
        );
        self.db
            .read(move |tx| {
                Ok(tx
                    .query_opt(&sql, &[org_id.into(), id.into()])?
                    .as_ref()
                    .map(subscription_from_row)
                    .transpose()?)
            })
            .await
    }

    /// Subscriptions by id whatever their organization: for background work only.
    pub async fn subscriptions_by_id(
        &self,
        ids: Vec<i64>,
    ) -> Result<Vec<Subscription>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id IN ({})",
            crate::store::placeholders(1, ids.len())
        );
        self.db
            .read(move |tx| {
                let params: Vec<Value> = ids.iter().map(|&id| id.into()).collect();
                Ok(crate::store::all_rows(
                    tx,
                    &sql,
                    &params,
                    subscription_from_row,
                )?)
            })
            .await
    }

    /// One page of `org_id`'s subscriptions matching `filter`, and how many match in all.
    pub async fn list(
        &self,
        org_id: i64,
        filter: SubscriptionFilter,
    ) -> Result<(Vec<Subscription>, i64), StoreError> {
        let mut params: Vec<Value> = vec![org_id.into()];
        let mut parts = vec!["org_id = $1".to_owned()];
        let param = |params: &mut Vec<Value>, value: Value| {
            params.push(value);
            format!("${}", params.len())
        };
        if let Some(status) = filter.status {
            parts.push(format!(
                "status = {}",
                param(&mut params, status.as_str().into())
            ));
        }
        if let Some(phone) = &filter.phone {
            parts.push(format!("phone = {}", param(&mut params, phone.into())));
        }
        if let Some(external) = &filter.external_subscriber_id {
            parts.push(format!(
                "external_subscriber_id = {}",
                param(&mut params, external.into())
            ));
        }
        if let Some(period) = filter.period {
            parts.push(format!(
                "billing_period = {}",
                param(&mut params, period.as_str().into())
            ));
        }
        if let Some(search) = &filter.search {
            let pattern = param(
                &mut params,
                format!("%{}%", crate::store::invoice_list::escape_like(search)).into(),
            );
            parts.push(format!(
                "(subscriber_name LIKE {pattern} ESCAPE '\\' OR phone LIKE {pattern} ESCAPE '\\')"
            ));
        }
        let condition = parts.join(" AND ");
        let direction = if filter.descending { "DESC" } else { "ASC" };
        let column = filter.sort_by.unwrap_or("id");
        let order = match column {
            "subscriber_name" | "next_billing_at" => format!(
                "CASE WHEN {column} IS NULL THEN 1 ELSE 0 END, {column} {direction}, id {direction}"
            ),
            "id" => format!("id {direction}"),
            _ => format!("{column} {direction}, id {direction}"),
        };
        let per_page = filter.per_page.clamp(1, 100);
        let offset = (filter.page.max(1) - 1).saturating_mul(per_page);
        let count_sql = format!("SELECT COUNT(*) AS n FROM subscriptions WHERE {condition}");
        let page_sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE {condition} ORDER BY {order} \
             LIMIT ${} OFFSET ${}",
            params.len() + 1,
            params.len() + 2
        );
        self.db
            .read(move |tx| {
                Ok(crate::store::counted_page(
                    tx,
                    &count_sql,
                    &page_sql,
                    params.clone(),
                    per_page,
                    offset,
                    subscription_from_row,
                )?)
            })
            .await
    }

    /// Changes what `update` names; from the next period on (an invoice made is not changed).
    /// A new billing day moves the next billing date to the first date of the new calendar on
    /// or after the one already due, so the current period is never cut short. `NotFound` for
    /// another organization's or a missing subscription.
    pub async fn update(
        &self,
        org_id: i64,
        id: i64,
        update: SubscriptionUpdate,
    ) -> Result<Subscription, StoreError> {
        let now = self.now_ms();
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let mut sub = read_for_update(tx, id)?
                    .filter(|s| s.org_id == org_id)
                    .ok_or(StoreError::NotFound)?;
                if let Some(amount) = update.amount {
                    sub.amount = amount;
                }
                if let Some(cart) = &update.cart {
                    sub.cart = cart.clone();
                }
                if let Some(day) = update.billing_day {
                    sub.billing_day = Some(day);
                    if let (true, Some(next)) = (sub.period.uses_billing_day(), sub.next_billing_on)
                    {
                        let on = sub.calendar().on_or_after(next);
                        sub.next_billing_on = Some(on);
                        sub.next_billing_at = Some(billing_moment(on));
                    }
                }
                if let Some(v) = &update.description {
                    sub.description = v.clone();
                }
                if let Some(v) = &update.subscriber_name {
                    sub.subscriber_name = v.clone();
                }
                if let Some(v) = &update.external_subscriber_id {
                    sub.external_subscriber_id = v.clone();
                }
                if let Some(v) = &update.metadata {
                    sub.metadata = v.clone();
                }
                if let Some(v) = update.max_retry_attempts {
                    sub.max_retry_attempts = v;
                }
                if let Some(v) = update.retry_interval_hours {
                    sub.retry_interval_hours = v;
                }
                if let Some(v) = update.grace_period_days {
                    sub.grace_period_days = v;
                }
                save_tx(tx, &sub, now)?;
                sub.updated_at = now;
                let change =
                    Change::new(org_id, "subscription.updated", format!("subscription:{id}")).with(
                        serde_json::json!({
                            "fields": update.named_fields(),
                            "amount": sub.amount.to_decimal_string(),
                        }),
                    );
                note(tx, actor.as_ref(), now, &change)?;
                Ok(sub)
            })
            .await
    }

    /// Pauses, resumes or cancels: pausing drops a retry or grace period under way (nothing
    /// is billed while paused); resuming bills next on the first billing date whose moment is
    /// still ahead (no back-billing); cancelling is final. Answers the subscription and its
    /// invoices still open (the caller cancels them at Kaspi on `cancel`).
    pub async fn act(
        &self,
        org_id: i64,
        id: i64,
        action: SubscriptionAction,
    ) -> Result<(Subscription, Vec<Invoice>), ActError> {
        let now = self.now_ms();
        let actor = crate::audit::current();
        self.db
            .write(move |tx| {
                let Some(mut sub) = read_for_update(tx, id)?.filter(|s| s.org_id == org_id) else {
                    return Ok(Err(ActError::NotFound));
                };
                let Some(to) = action.apply(sub.status) else {
                    return Ok(Err(ActError::NotAllowed(sub.status)));
                };
                sub.status = to;
                match action {
                    SubscriptionAction::Pause => {
                        sub.paused_at = Some(now);
                        sub.retry_at = None;
                        sub.grace_until = None;
                        sub.failed_attempts = 0;
                    }
                    SubscriptionAction::Resume => {
                        let after = almaty_date(now).previous_day().unwrap_or(Date::MIN);
                        let on = sub.calendar().next_due(after, now);
                        sub.next_billing_on = Some(on);
                        sub.next_billing_at = Some(billing_moment(on));
                        sub.paused_at = None;
                    }
                    SubscriptionAction::Cancel => {
                        sub.cancelled_at = Some(now);
                        sub.next_billing_on = None;
                        sub.next_billing_at = None;
                        sub.retry_at = None;
                        sub.grace_until = None;
                    }
                }
                save_tx(tx, &sub, now)?;
                sub.updated_at = now;
                let done = match action {
                    SubscriptionAction::Pause => "subscription.paused",
                    SubscriptionAction::Resume => "subscription.resumed",
                    SubscriptionAction::Cancel => "subscription.cancelled",
                };
                let change = Change::new(org_id, done, format!("subscription:{id}"))
                    .with(serde_json::json!({ "status": to.as_str() }));
                note(tx, actor.as_ref(), now, &change)?;
                let open = if action == SubscriptionAction::Cancel {
                    open_invoices_tx(tx, sub.id)?
                } else {
                    Vec::new()
                };
                Ok(Ok((sub, open)))
            })
            .await
            .unwrap_or_else(|e| Err(ActError::Store(e)))
    }

    /// A page of the invoices subscription `id` of `org_id` made, newest first, and their count.
    pub async fn invoices(
        &self,
        org_id: i64,
        id: i64,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<SubscriptionInvoice>, i64), StoreError> {
        let columns = crate::store::invoices::INVOICE_COLUMNS
            .split(", ")
            .map(|c| format!("i.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let per_page = per_page.clamp(1, 100);
        let offset = (page.max(1) - 1).saturating_mul(per_page);
        let sql = format!(
            "SELECT {columns}, s.period_start, s.period_end, s.attempt_number, \
             s.amount AS period_amount, s.failure_reason, s.created_at AS linked_at \
             FROM subscription_invoices s JOIN invoices i ON i.id = s.invoice_id \
             WHERE s.subscription_id = $1 AND s.org_id = $2 ORDER BY s.id DESC LIMIT $3 OFFSET $4"
        );
        self.db
            .read(move |tx| {
                let total = tx
                    .query_one(
                        "SELECT COUNT(*) AS n FROM subscription_invoices \
                         WHERE subscription_id = $1 AND org_id = $2",
                        &[id.into(), org_id.into()],
                    )?
                    .i64("n")?;
                let rows = tx.query(
                    &sql,
                    &[id.into(), org_id.into(), per_page.into(), offset.into()],
                )?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(SubscriptionInvoice {
                        invoice: crate::store::invoices::invoice_from_row(row)?,
                        period_start: row
                            .opt_date("period_start")?
                            .ok_or_else(|| DbError::decode("period_start", "missing"))?,
                        period_end: row
                            .opt_date("period_end")?
                            .ok_or_else(|| DbError::decode("period_end", "missing"))?,
                        attempt_number: row.i64("attempt_number")?,
                        amount: row.money("period_amount")?,
                        failure_reason: row.opt_text("failure_reason")?,
                        created_at: row.i64("linked_at")?,
                    });
                }
                Ok((out, total))
            })
            .await
    }

    /// The totals of subscription `id`'s invoices, and its newest paid one.
    pub async fn stats(&self, id: i64) -> Result<(SubscriptionStats, Option<Invoice>), StoreError> {
        let last_sql = format!(
            "SELECT {} FROM invoices WHERE subscription_id = $1 AND status = 'paid' \
             ORDER BY paid_at DESC, id DESC LIMIT 1",
            crate::store::invoices::INVOICE_COLUMNS
        );
        self.db
            .read(move |tx| {
                let row = tx.query_one(
                    "SELECT COUNT(*) AS n, \
                     CAST(COALESCE(SUM(CASE WHEN status = 'paid' THEN 1 ELSE 0 END), 0) AS BIGINT) AS paid, \
                     CAST(COALESCE(SUM(CASE WHEN status IN ('failed', 'expired', 'cancelled') THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed, \
                     CAST(COALESCE(SUM(CASE WHEN status = 'paid' THEN amount ELSE 0 END), 0) AS BIGINT) AS collected \
                     FROM invoices WHERE subscription_id = $1",
                    &[id.into()],
                )?;
                let stats = SubscriptionStats {
                    total_payments: row.i64("n")?,
                    successful_payments: row.i64("paid")?,
                    failed_payments: row.i64("failed")?,
                    total_collected: row.money("collected")?,
                };
                let last = tx
                    .query_opt(&last_sql, &[id.into()])?
                    .as_ref()
                    .map(crate::store::invoices::invoice_from_row)
                    .transpose()?;
                Ok((stats, last))
            })
            .await
    }
}
