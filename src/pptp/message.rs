//! PPTP control messages (in progress).
