//! tokio drivers: the only place where sockets, ttys and timers live.
