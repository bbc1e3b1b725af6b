//! PPP (RFC 1661) wire formats and, later, the protocol engine.
//!
//! [`packet`] holds the codecs: the PPP frame (address/control and protocol fields, with or
//! without ACFC/PFC), the code/identifier/length header shared by LCP, IPCP, CCP, PAP and
//! CHAP, Configuration Option lists with typed option values, and typed PAP/CHAP bodies.
//! Everything here is sans-IO and total on untrusted input.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod auth;
pub mod ccp;
pub mod engine;
pub mod fsm;
pub mod ipcp;
pub mod lcp;
pub mod packet;
