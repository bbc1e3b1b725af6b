//! The PAC daemon (`pptp-nas pac`): lines on one side, PPTP tunnels on the other.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod cli;
pub mod config;
pub mod select;
