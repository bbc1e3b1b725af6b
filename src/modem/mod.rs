//! The modem and ISDN front end (sans-IO cores).
//!
//! - [`at`]: a Hayes AT command interpreter, the brain of the soft-modem (we *emulate* a modem).
//! - [`result`]: result codes and caller-ID lines, shared by both sides.
//! - [`control`]: the modem-control state machine (we *drive* a real modem or ISDN TA).
//! - [`profile`]: modem / TA profiles loaded from `hardware/*.yaml`.
//! - [`direct`]: direct lines (null-modem, socat): detecting the first LCP frame.
//! - [`sim`]: a pair of soft-modems joined by a simulated telephone line (rate, BER, latency,
//!   carrier drop), driven by `pptp-nas softmodem`.
//!
//! Nothing here reads a clock or touches a file descriptor; the tokio drivers live in
//! [`crate::io`].

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod at;
pub mod control;
pub mod direct;
pub mod profile;
pub mod result;
pub mod sim;
