//! Client of the Kaspi Pay POS private protocol (`shared/kaspi/PROTOCOL.md`).
//!
//! - [`sign`]: the protocol's signatures and MAC, as pure functions.
//! - [`device`]: the virtual device identity (ids and signing key).
//! - [`phone`], [`amount`]: phone numbers and amounts as Kaspi takes them.
//! - [`status`]: Kaspi statuses and their normalized [`status::Outcome`].
//! - [`config`]: app fingerprint, base URLs, timeouts.
//! - [`Client`] (`client.rs`): signed requests, the envelope and error mapping; the login,
//!   refresh and organization context (`login.rs`); the payment calls (`calls.rs`).
//! - [`session`], [`wire`], [`error`]: what a login yields, what Kaspi answers, what fails.
//!
//! No database and no server here: the gateway stores sessions, the simulator serves Kaspi.

pub mod amount;
mod calls;
mod client;
pub mod config;
pub mod device;
pub mod error;
mod login;
pub mod phone;
pub mod session;
pub mod sign;
pub mod status;
pub mod wire;

pub use amount::Amount;
pub use calls::Location;
pub use client::Client;
pub use config::{AppFingerprint, ClientConfig, Endpoints, SharedApp};
pub use device::DeviceIdentity;
pub use error::{Error, LoginError, LoginRefusal, TransportKind};
pub use login::LoginPrompt;
pub use phone::Phone;
pub use session::{OrgContext, Session};
pub use status::{Outcome, Status};
