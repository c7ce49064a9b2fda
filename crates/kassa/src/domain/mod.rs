//! What Kassa is about, free of HTTP, SQL and Kaspi's wire: the kinds of background work.
//! The store's rows carry these types; both API surfaces and the webhooks render them.

mod job;

pub use job::JobKind;
