//! What Kassa is about, free of HTTP, SQL and Kaspi's wire: statuses and their moves, the kinds
//! of background work. The store's rows carry these types; both API surfaces and the webhooks
//! render them.
//!
//! - `invoice.rs`: [`InvoiceKind`], [`InvoiceStatus`], [`CreateState`].
//! - `refund.rs`: [`RefundStatus`].
//! - `cashier.rs`: [`TerminalState`].
//! - `job.rs`: [`JobKind`].

mod cashier;
mod invoice;
mod job;
mod refund;

pub use cashier::TerminalState;
pub use invoice::{CreateState, InvoiceKind, InvoiceStatus};
pub use job::JobKind;
pub use refund::RefundStatus;
