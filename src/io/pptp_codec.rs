//! tokio-util codec adapter for the PPTP control stream (in progress).
