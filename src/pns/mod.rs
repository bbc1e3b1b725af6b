//! The PPTP Network Server side: the `pptp-nas pns` daemon and its per-call PPP sessions.
//!
//! - [`daemon`]: `pptp-nas pns` (TCP 1723, users from YAML or `--user`, IP pool, built-in
//!   responder): accepts PACs (Incoming-Call-Request) and PPTP clients
//!   (Outgoing-Call-Request) and runs the PPP engine in server role per call.
//! - [`session`]: a PPP call and its MPPC/MPPE data path (sans-IO; also used by the dial-in
//!   client and the lab), which holds its authentication answer while the throttle delays it.
//! - [`throttle`]: failure counting per user and per source with exponential delay and
//!   lockout, shared by all calls of a server; never sees a password.
//! - [`config`]: `pns.yaml` and the users file for `--config`.

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
pub mod status;
pub mod throttle;
