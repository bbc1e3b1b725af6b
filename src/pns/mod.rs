//! The PPTP Network Server side: per-call PPP sessions with their MPPC/MPPE data path.
//!
//! Today this module holds the sans-IO pieces: [`session::Session`] (a PPP call and its
//! MPPC/MPPE data path, which the lab runs per call) and [`throttle::AuthThrottle`] (failure
//! counting per user and source with exponential delay and lockout; tested, not yet wired to a
//! daemon). The `pptp-nas pns` daemon (TCP 1723, users file) is not built yet.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod daemon;
pub mod session;
pub mod throttle;
