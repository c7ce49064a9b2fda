//! The simulator's own rules over real HTTP: login, request authentication, sessions,
//! payments and the clock, history paging, faults, the control API and the state file. One binary.

mod auth;
mod common;
mod control;
mod faults;
mod history;
mod login;
mod payments;
mod persist;
mod seen_2026;
