//! tokio drivers: the only place where sockets, ttys and timers live.

pub mod control;
pub mod gre_transport;
pub mod hdlc_codec;
pub mod line;
pub mod pptp_codec;
pub mod pty;
pub mod softmodem;
pub mod tun;
