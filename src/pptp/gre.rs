//! Enhanced GRE (in progress).
