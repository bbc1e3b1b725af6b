//! PPP (RFC 1661) wire formats and, later, the protocol engine.

pub mod packet;
