//! Client of the Kaspi Pay POS private protocol (`shared/kaspi/PROTOCOL.md`).
//!
//! - [`sign`]: the protocol's signatures and MAC, as pure functions.
//! - [`device`]: the virtual device identity (ids and signing key).
//! - [`phone`], [`amount`]: phone numbers and amounts as Kaspi takes them.
//! - [`status`]: Kaspi statuses and their normalized [`status::Outcome`].
//! - [`config`]: app fingerprint, base URLs, timeouts.

pub mod amount;
pub mod config;
pub mod device;
pub mod phone;
pub mod sign;
pub mod status;

pub use amount::Amount;
pub use config::{AppFingerprint, ClientConfig, Endpoints};
pub use device::DeviceIdentity;
pub use phone::Phone;
pub use status::{Outcome, Status};
