//! PPTP (RFC 2637): control messages and enhanced GRE.

pub mod gre;
pub mod message;
