//! RFC 1662 asynchronous HDLC-like framing: FCS-16/FCS-32, octet stuffing with a 32-bit ACCM
//! (optionally widened to a 256-bit map), a streaming decoder and an encoder.
//!
//! This is a sans-IO core: no clock, no I/O, no tokio. The line driver feeds received octets in
//! chunks of any size to [`Decoder::decode`], which hands back each good frame as a slice of its
//! own reused buffer; it tells the decoder about line events the octets cannot show (idle
//! time-out, UART overrun and framing errors). [`Encoder::encode`] appends a framed, escaped
//! frame to a caller-provided buffer. The tokio adapter lives in
//! [`crate::io::hdlc_codec`]; `docs/HDLC.md` describes the design.
//!
//! What a "frame" is here: the octets between the flags minus the FCS, unescaped. For PPP that
//! is Address/Control (unless compressed), Protocol and Information: exactly the payload PPTP
//! carries in GRE, which relays frames "with HDLC framing removed" (flags, escapes and FCS).
//!
//! Guarantees:
//! - The decoder never allocates after construction (its buffer is sized once from the
//!   configured maximum) and never panics on any input.
//! - Decoding is chunk-invariant: the same octet stream split anywhere (also between `0x7D`
//!   and the escaped octet) gives the same frames, errors and counters.
//! - A frame followed by more octets in the same chunk is returned and the rest stays in the
//!   caller's slice; nothing is lost.
//! - Bad frames are dropped and counted in [`WanErrorCounters`]; the decoder resynchronises at
//!   the next flag.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod counters;
mod decoder;
mod encoder;
mod fcs;
mod map;

pub use counters::{DecoderStats, WanCounter, WanErrorCounters};
pub use decoder::{Decoder, DecoderConfig, MAX_FRAME_LEN_LIMIT};
pub use encoder::{Encoder, EncoderConfig, NEVER_ESCAPED};
pub use fcs::{fcs16, fcs32, FcsKind, FCS16_GOOD, FCS16_INIT, FCS32_GOOD, FCS32_INIT};
pub use map::EscapeMap;

/// The Flag Sequence that begins and ends every frame (RFC 1662 section 3.1).
pub const FLAG: u8 = 0x7E;
/// The Control Escape octet (RFC 1662 section 4.2).
pub const ESCAPE: u8 = 0x7D;
/// What an escaped octet is exclusive-or'd with (RFC 1662 section 4.2).
pub const ESCAPE_XOR: u8 = 0x20;
/// The default Async-Control-Character-Map: every control character escaped until LCP
/// negotiates otherwise (RFC 1662 section 7.1).
pub const DEFAULT_ACCM: u32 = 0xFFFF_FFFF;
/// The default Maximum-Receive-Unit of PPP (RFC 1661 section 6.1).
pub const DEFAULT_MRU: usize = 1500;
/// Address, Control and a two-octet Protocol field: what a frame adds to the MRU.
pub const FRAME_OVERHEAD: usize = 4;
/// The smallest frame, FCS excluded.
///
/// RFC 1662 section 4.3: "Frames which are too short (less than 4 octets when using the 16-bit
/// FCS) ... are silently discarded". Four octets with the 16-bit FCS leave two before the FCS;
/// the same two-octet minimum is applied with the 32-bit FCS.
pub const MIN_FRAME_LEN: usize = 2;

/// Why a received frame was dropped. Each case has already been counted in
/// [`WanErrorCounters`] when the decoder returns it; see [`FrameError::counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The FCS residue was wrong.
    #[error("bad FCS")]
    BadFcs,
    /// The frame ended with a Control Escape followed by a flag (`7D 7E`, the abort sequence).
    #[error("frame aborted (7D 7E)")]
    Aborted,
    /// Fewer octets between the flags than [`MIN_FRAME_LEN`] plus the FCS.
    #[error("frame too short: {len} octet(s) between flags")]
    TooShort {
        /// Unescaped octets received between the flags.
        len: usize,
    },
    /// The frame outgrew the configured maximum; the rest of it, up to the next flag, is skipped.
    #[error("frame longer than {max} octets")]
    Oversize {
        /// The configured maximum frame length (FCS excluded).
        max: usize,
    },
}

impl FrameError {
    /// The WAN-Error-Notify counter this error is counted in.
    #[must_use]
    pub fn counter(&self) -> WanCounter {
        match self {
            FrameError::BadFcs => WanCounter::Crc,
            FrameError::Aborted | FrameError::TooShort { .. } => WanCounter::Framing,
            FrameError::Oversize { .. } => WanCounter::BufferOverrun,
        }
    }
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The frame is shorter than [`MIN_FRAME_LEN`]; the peer would discard it as too short.
    #[error("frame too short to send: {len} octet(s)")]
    TooShort {
        /// The frame's length.
        len: usize,
    },
}

/// A growable byte buffer the encoder appends to: `Vec<u8>` and `bytes::BytesMut`.
pub trait FrameSink {
    /// Makes room for at least `additional` more octets.
    fn sink_reserve(&mut self, additional: usize);
    /// Appends `data`.
    fn sink_extend(&mut self, data: &[u8]);
}

impl FrameSink for Vec<u8> {
    #[inline]
    fn sink_reserve(&mut self, additional: usize) {
        self.reserve(additional);
    }
    #[inline]
    fn sink_extend(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
}

impl FrameSink for bytes::BytesMut {
    #[inline]
    fn sink_reserve(&mut self, additional: usize) {
        self.reserve(additional);
    }
    #[inline]
    fn sink_extend(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
}

#[cfg(test)]
mod proptests;
