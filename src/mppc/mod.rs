//! MPPC compression (RFC 2118) (in progress).
