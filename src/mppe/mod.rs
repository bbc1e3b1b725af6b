//! Microsoft Point-to-Point Encryption, MPPE (RFC 3078), its keys (RFC 3079), and the
//! combined MPPC + MPPE data path that CCP option 18 negotiates.
//!
//! - [`keys`]: pure key derivation (MS-CHAPv1/v2 start keys, session keys, key changes) and
//!   the password hashes MS-CHAP shares with it.
//! - [`transform`]: the 2-octet header, the 12-bit coherency count, and the per-direction
//!   [`transform::Sender`] / [`transform::Receiver`] (stateful and stateless, RC4 in place,
//!   resynchronisation, sanity limits).
//! - [`pipeline`]: MPPC and MPPE behind one header as Windows sends them, configured from
//!   [`MppeOptions`], driven by the PPP engine through [`pipeline::CcpTransmit`] /
//!   [`pipeline::CcpReceive`].
//!
//! Sans-IO: nothing here reads a clock, allocates per packet, or logs key material
//! (keys print as `<redacted>`). The receive path takes untrusted input and never panics.
//! Design notes and interoperability caveats: `docs/MPPE.md`.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod keys;
pub mod pipeline;
mod rc4;
pub mod transform;

pub use keys::{Direction, KeyStrength, Role, SessionKey, StartKey};
pub use pipeline::{
    CcpError, CcpReceive, CcpTransmit, PipelineConfig, Receiver as PipelineReceiver,
    Transmitter as PipelineTransmitter,
};
pub use transform::{CoherencyCount, Header, Mode, Packet, ReceiverConfig, ReceiverStats};

use crate::wire::{Reader, WireError};

/// The CCP configuration option type that carries MPPC/MPPE (RFC 3078 section 2).
pub const CCP_OPTION_TYPE: u8 = 18;

/// PPP protocol number of MPPC/MPPE packets ("Compressed Datagram", RFC 1962).
pub const PPP_PROTOCOL_COMPRESSED: u16 = 0x00FD;

/// An output of a receiving (or transmitting) data path the PPP engine must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// Send a CCP Reset-Request: the receiver lost sync (stateful mode) and drops packets
    /// until the peer sends one with bit A. Emitted once per loss episode.
    SendResetRequest,
    /// The peer sent so many bogus packets that the link should be dropped (LCP down) rather
    /// than spend CPU on them.
    TooManyErrors,
}

/// Why MPPE could not process a packet.
///
/// Malformed (`Truncated`), peer misbehaving (`NotEncrypted`, `NotFlushed`,
/// `UnexpectedEncryption`, `TooManyRekeys`) and ordinary network effects (`Stale`,
/// `PacketLoss`, `Discarding`) stay apart; the first two groups count towards
/// [`Event::TooManyErrors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MppeError {
    /// Shorter than the 2-octet header, or no payload after it.
    #[error("packet truncated")]
    Truncated,
    /// The output buffer cannot hold the packet.
    #[error("output buffer too small: {needed} octet(s) needed")]
    BufferTooSmall {
        /// Octets the packet needs.
        needed: usize,
    },
    /// Bit D clear although MPPE is in use: never deliver plaintext from an encrypted link.
    #[error("packet not encrypted on an encrypted link")]
    NotEncrypted,
    /// Bit D set although MPPE was not negotiated.
    #[error("encrypted packet but MPPE not negotiated")]
    UnexpectedEncryption,
    /// Stateless mode and bit A clear.
    #[error("stateless mode packet without the flushed bit")]
    NotFlushed,
    /// The count is behind the expected one: a duplicate or a late packet.
    #[error("stale coherency count {count}")]
    Stale {
        /// The packet's count.
        count: u16,
    },
    /// Stateful mode: counts were skipped; packets are dropped until one carries A.
    #[error("{missing} packet(s) lost, resynchronising")]
    PacketLoss {
        /// How many counts were skipped.
        missing: u16,
    },
    /// Stateful mode: still waiting for a packet with bit A after a loss.
    #[error("discarding until a flushed packet arrives")]
    Discarding,
    /// Stateless mode: catching up would take more key changes than allowed.
    #[error("count jump needs {needed} key changes, limit {max}")]
    TooManyRekeys {
        /// Key changes the jump would need (beyond this packet's own).
        needed: u16,
        /// The configured limit.
        max: u16,
    },
}

/// CCP option 18 "Supported Bits" (RFC 3078 section 2), most significant octet first.
///
/// ```text
///  3                   2                   1
///  1 0 9 8 7 6 5 4 3 2 1 0 9 8 7 6 5 4 3 2 1 0 9 8 7 6 5 4 3 2 1 0
/// |                       |H|                     |M|S|L|D|     |C|
/// ```
/// Bits this crate does not know are kept in `other` so a Configure-Nak/Reject can echo them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MppeOptions {
    /// C (0x01): MPPC compression (RFC 2118).
    pub mppc: bool,
    /// D (0x10): obsolete, meaning unknown.
    pub d: bool,
    /// L (0x20): 40-bit MPPE.
    pub bits40: bool,
    /// S (0x40): 128-bit MPPE.
    pub bits128: bool,
    /// M (0x80): 56-bit MPPE.
    pub bits56: bool,
    /// H (0x01000000): stateless ("history-less") mode.
    pub stateless: bool,
    /// Any other bits, kept verbatim.
    pub other: u32,
}

impl MppeOptions {
    /// Bit C.
    pub const MPPC: u32 = 0x0000_0001;
    /// Bit D.
    pub const D: u32 = 0x0000_0010;
    /// Bit L.
    pub const BITS40: u32 = 0x0000_0020;
    /// Bit S.
    pub const BITS128: u32 = 0x0000_0040;
    /// Bit M.
    pub const BITS56: u32 = 0x0000_0080;
    /// Bit H.
    pub const STATELESS: u32 = 0x0100_0000;
    const KNOWN: u32 =
        Self::MPPC | Self::D | Self::BITS40 | Self::BITS128 | Self::BITS56 | Self::STATELESS;

    /// Octets of the option's data (after type and length).
    pub const DATA_LEN: usize = 4;

    /// Decodes the 32-bit field.
    pub const fn from_bits(bits: u32) -> MppeOptions {
        MppeOptions {
            mppc: bits & Self::MPPC != 0,
            d: bits & Self::D != 0,
            bits40: bits & Self::BITS40 != 0,
            bits128: bits & Self::BITS128 != 0,
            bits56: bits & Self::BITS56 != 0,
            stateless: bits & Self::STATELESS != 0,
            other: bits & !Self::KNOWN,
        }
    }

    /// Encodes the 32-bit field.
    pub const fn bits(&self) -> u32 {
        let mut b = self.other & !Self::KNOWN;
        if self.mppc {
            b |= Self::MPPC;
        }
        if self.d {
            b |= Self::D;
        }
        if self.bits40 {
            b |= Self::BITS40;
        }
        if self.bits128 {
            b |= Self::BITS128;
        }
        if self.bits56 {
            b |= Self::BITS56;
        }
        if self.stateless {
            b |= Self::STATELESS;
        }
        b
    }

    /// Parses the option data (exactly 4 octets, the part after type and length).
    pub fn parse(data: &[u8]) -> Result<MppeOptions, WireError> {
        let mut r = Reader::new(data);
        let bits = r.u32()?;
        r.finish()?;
        Ok(MppeOptions::from_bits(bits))
    }

    /// Octets [`MppeOptions::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        Self::DATA_LEN
    }

    /// Writes the option data (4 octets) into the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let needed = Self::DATA_LEN.saturating_sub(buf.len());
        let dst = buf
            .get_mut(..Self::DATA_LEN)
            .ok_or(WireError::Truncated { needed })?;
        dst.copy_from_slice(&self.bits().to_be_bytes());
        Ok(())
    }

    /// The strongest MPPE key length offered, if any (S, then M, then L).
    pub const fn strongest(&self) -> Option<KeyStrength> {
        if self.bits128 {
            Some(KeyStrength::Bits128)
        } else if self.bits56 {
            Some(KeyStrength::Bits56)
        } else if self.bits40 {
            Some(KeyStrength::Bits40)
        } else {
            None
        }
    }

    /// Stateful or stateless, from bit H.
    pub const fn mode(&self) -> Mode {
        if self.stateless {
            Mode::Stateless
        } else {
            Mode::Stateful
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn option_bits_parse_and_emit() {
        // Windows' usual offer: 128-bit, stateless, MPPC: 01 00 00 41.
        static DATA: [u8; 4] = [0x01, 0x00, 0x00, 0x41];
        let o = MppeOptions::parse(&DATA).unwrap();
        assert!(o.mppc && o.bits128 && o.stateless);
        assert!(!o.bits40 && !o.bits56 && !o.d);
        assert_eq!(o.other, 0);
        assert_eq!(o.strongest(), Some(KeyStrength::Bits128));
        assert_eq!(o.mode(), Mode::Stateless);
        let mut buf = [0u8; 4];
        o.emit(&mut buf).unwrap();
        assert_eq!(buf, DATA);
        assert_eq!(o.buffer_len(), 4);
    }

    #[test]
    fn option_keeps_unknown_bits() {
        let o = MppeOptions::from_bits(0x8000_0000 | MppeOptions::BITS40 | MppeOptions::D);
        assert_eq!(o.other, 0x8000_0000);
        assert_eq!(o.bits(), 0x8000_0030);
        assert_eq!(o.strongest(), Some(KeyStrength::Bits40));
        assert_eq!(o.mode(), Mode::Stateful);
        assert_eq!(
            MppeOptions::from_bits(MppeOptions::BITS56 | MppeOptions::BITS40).strongest(),
            Some(KeyStrength::Bits56)
        );
        assert_eq!(MppeOptions::from_bits(MppeOptions::MPPC).strongest(), None);
    }

    #[test]
    fn option_rejects_wrong_length() {
        assert!(MppeOptions::parse(&[0, 0, 0]).is_err());
        assert!(MppeOptions::parse(&[0, 0, 0, 0, 0]).is_err());
        assert!(MppeOptions::default().emit(&mut [0u8; 3]).is_err());
    }

    #[test]
    fn every_32_bit_value_roundtrips() {
        for bits in [0u32, 1, 0x0100_00F1, 0xFFFF_FFFF, 0x1234_5678] {
            assert_eq!(MppeOptions::from_bits(bits).bits(), bits);
        }
    }
}
