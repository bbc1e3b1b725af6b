//! MPPE encryption (RFC 3078/3079) (in progress).
