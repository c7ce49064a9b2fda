//! What Kassa is about, free of HTTP, SQL and Kaspi's wire: money, phones and ids, statuses
//! and their moves, the kinds of background work. The store's rows carry these types; both API
//! surfaces and the webhooks render them.
//!
//! - `invoice.rs`: [`InvoiceKind`], [`InvoiceStatus`], [`CreateState`].
//! - `refund.rs`: [`RefundStatus`].
//! - `cart.rs`: units of measure, a cart's sum and discount.
//! - `cashier.rs`: [`TerminalState`].
//! - `event.rs`: [`EventKind`], what an outbox event records.
//! - `job.rs`: [`JobKind`].
//! - `mode.rs`: [`Mode`], live or test.
//! - `user.rs`: [`Role`], what a dashboard user may do.
//! - `scope.rs`: [`Scope`], [`Scopes`], what an API key may do.
//! - `subscription.rs`: [`BillingPeriod`], [`SubscriptionStatus`], the [`Calendar`] of billing
//!   dates (Asia/Almaty).
//! - `money.rs`: [`Money`], amounts in tiyn, read and written as each surface does.
//! - `ids.rs`: [`KaspiOperationId`].
//! - [`Phone`]: a Kazakhstan mobile number normalized as Kaspi takes it (the Kaspi crate's).

mod cart;
mod cashier;
mod event;
mod ids;
mod invoice;
mod job;
mod mode;
mod money;
mod refund;
mod scope;
mod subscription;
mod user;

pub use cart::{cart_totals, unit, CartError, CartTotals, Unit, UNITS};
pub use cashier::{mask_phone, TerminalState};
pub use event::EventKind;
pub use ids::KaspiOperationId;
pub(crate) use invoice::spelled;
pub use invoice::{CreateState, InvoiceKind, InvoiceStatus};
pub use job::JobKind;
pub use kaspi::phone::{normalize as parse_phone, Phone, PhoneError};
pub use mode::{Mode, ModeError};
pub use money::{Money, MoneyError};
pub use refund::RefundStatus;
pub use scope::{Action, Resource, Scope, ScopeError, Scopes};
pub use subscription::{
    almaty_date, almaty_rfc3339, billing_moment, date_label, date_text, parse_date, BillingPeriod,
    Calendar, SubscriptionAction, SubscriptionStatus, ALMATY, BILLING_HOUR,
};
pub use user::{normalize_email, Permission, Role, MIN_PASSWORD_CHARS};
