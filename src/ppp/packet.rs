//! PPP frames and control packets (in progress).
