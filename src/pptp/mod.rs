//! PPTP (RFC 2637): control messages, enhanced GRE, and the IPv4 header in front of GRE.
//!
//! Everything here is sans-IO and total on untrusted input: parsers return typed errors and
//! never panic (the lints below deny `unwrap`, `expect`, `panic!` and slice indexing outside
//! tests).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod control;
pub mod gre;
pub mod ipv4;
pub mod message;
pub mod window;

pub use gre::{GreError, GrePacket, GreRepr, SeqNumber};
pub use ipv4::{Ipv4Error, Ipv4Header};
pub use message::{ControlItem, ControlStream, Message, MessageError};
