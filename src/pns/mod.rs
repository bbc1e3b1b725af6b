//! The PPTP Network Server side: per-call PPP sessions with their MPPC/MPPE data path.
//!
//! [`session::Session`] (a PPP call and its MPPC/MPPE data path), [`throttle`] (failure counting
//! per user and source with exponential delay and lockout), [`daemon`] (`pptp-nas pns`: TCP
//! control connections, raw or in-process GRE, one PPP server per call) and [`config`]
//! (`pns.yaml` and the users file for `--config`).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod config;
pub mod daemon;
pub mod session;
pub mod throttle;
