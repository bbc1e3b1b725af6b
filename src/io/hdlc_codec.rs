//! tokio-util codec adapter for the HDLC framer (in progress).
