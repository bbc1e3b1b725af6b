//! RFC 1662 asynchronous HDLC-like framing (in progress).
