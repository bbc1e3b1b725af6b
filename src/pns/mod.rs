//! The PPTP Network Server side: per-call PPP sessions with their MPPC/MPPE data path.
//!
//! Today this module holds the sans-IO [`session::Session`] that the lab runs per call; the
//! `pptp-nas pns` daemon (TCP 1723, users file, throttling) is not built yet.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod session;
