//! pptp-nas: a PPTP Access Concentrator (RFC 2637) with a modem/ISDN front end.
//!
//! The crate is split into sans-IO protocol cores (pure state machines and codecs that take
//! bytes, events and the current time, and return frames, events and deadlines) and thin tokio
//! drivers in [`io`]. See `docs/ARCHITECTURE.md` for the module map.
//!
//! Cores in this crate never read the clock, never sleep and never touch sockets. Every parser
//! that takes bytes from a line or the network is total: malformed input yields an error value,
//! never a panic.

#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

#[macro_use]
mod macros;

pub mod config;
pub mod dial;
pub mod hdlc;
pub mod io;
pub mod lab;
pub mod modem;
pub mod mppc;
pub mod mppe;
pub mod pac;
pub mod pcap;
pub mod pns;
pub mod ppp;
pub mod pptp;
pub mod responder;
pub mod stdio_ppp;
pub mod wire;
