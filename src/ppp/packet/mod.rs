//! PPP frames and control packets (RFC 1661, RFC 1662, RFC 1332, RFC 1334, RFC 1994, RFC 1962).
//!
//! Every format has two views (STYLE habit 1):
//!
//! - a zero-copy accessor over a byte buffer ([`Frame`], [`ControlPacket`]), built with
//!   `new_checked` for untrusted input, with offsets in `mod field`;
//! - a validated `Repr` ([`FrameRepr`], [`ControlRepr`], [`LcpRepr`], [`PapRepr`],
//!   [`ChapRepr`]) with `parse`, `emit` and `buffer_len`, borrowing its variable-length parts
//!   from the input.
//!
//! Safety contract (after smoltcp): once `new_checked` has succeeded, no accessor panics.
//! Nothing in this module panics on any input; emitting into a buffer that is too small returns
//! [`PppError::BufferTooSmall`] instead of panicking.
//!
//! Code points (protocol numbers, codes, option types) are `enum_with_unknown!` enums, so a value
//! this crate does not know survives parse/emit unchanged and can be echoed back in a
//! Protocol-Reject, Code-Reject or Configure-Reject.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod auth;
mod control;
mod options;

pub use auth::{
    ChapAlgorithm, ChapMessage, ChapRepr, MsChapV1Response, MsChapV2Response, PapMessage, PapRepr,
};
pub use control::{
    CcpCode, ChapCode, ControlCode, ControlPacket, ControlRepr, LcpCode, LcpMessage, LcpRepr,
    NcpCode, PapCode, HEADER_LEN as CONTROL_HEADER_LEN,
};
pub use options::{
    CcpOption, CcpOptionType, ConfigureBuilder, EmitOption, IpcpOption, IpcpOptionType, LcpOption,
    LcpOptionType, MppeBits, OptionIter, Options, RawOption,
};

use crate::wire::{Reader, WireError};

/// Errors from parsing or emitting PPP frames and packets.
///
/// All parse errors mean "malformed": the packet is dropped and counted. Whether a well-formed
/// packet is acceptable now (Code-Reject, Configure-Nak, ...) is the engine's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PppError {
    /// A read ran past the end of the input, or octets were left over.
    #[error("malformed: {0}")]
    Wire(#[from] WireError),
    /// A control packet's Length field is below the header size or beyond the octets received.
    #[error("length field {length} invalid for {available} octet(s)")]
    BadLength {
        /// The value of the Length field.
        length: u16,
        /// Octets actually available.
        available: usize,
    },
    /// A Configuration Option's Length is below 2 or runs past the end of the packet.
    #[error("option type {kind}: length {length} invalid")]
    BadOptionLength {
        /// The option type.
        kind: u8,
        /// The value of the option's Length field.
        length: u8,
    },
    /// A known option's value has the wrong size for its type (e.g. MRU not 2 octets).
    ///
    /// RFC 1661 section 6 says such an option "SHOULD" be answered with a Configure-Nak, so this
    /// is reported per option, not for the whole packet.
    #[error("option type {kind}: value of {len} octet(s) invalid")]
    BadOptionValue {
        /// The option type.
        kind: u8,
        /// The size of the value (option length minus 2).
        len: usize,
    },
    /// A packet's code has no typed body in this protocol (e.g. PAP code 9).
    #[error("unknown code {code}")]
    UnknownCode {
        /// The code as received.
        code: u8,
    },
    /// A field inside a packet body is malformed (e.g. CHAP Value-Size 0).
    #[error("malformed {what}")]
    BadField {
        /// Which field.
        what: &'static str,
    },
    /// The output buffer cannot hold the emitted bytes.
    #[error("buffer too small: {needed} octet(s) needed, {available} available")]
    BufferTooSmall {
        /// Octets the emitter needs.
        needed: usize,
        /// Octets the buffer has.
        available: usize,
    },
    /// A value is longer than its length field can express.
    #[error("{what} of {len} octet(s) exceeds the maximum of {max}")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The largest size the format allows.
        max: usize,
    },
}

/// A bounds-checked output cursor used by every emitter in this module.
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    /// Starts writing at the beginning of `buf`, which must hold `needed` octets.
    pub(crate) fn new(buf: &'b mut [u8], needed: usize) -> Result<Self, PppError> {
        if buf.len() < needed {
            return Err(PppError::BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        Ok(Writer { buf, pos: 0 })
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> Result<(), PppError> {
        let end = self.pos.saturating_add(bytes.len());
        let available = self.buf.len();
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(PppError::BufferTooSmall {
                needed: end,
                available,
            })?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), PppError> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), PppError> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), PppError> {
        self.bytes(&v.to_be_bytes())
    }

    /// Octets written so far.
    pub(crate) fn written(&self) -> usize {
        self.pos
    }
}

/// Converts a length to the `u8` of an 8-bit length field, or reports it too long.
pub(crate) fn len_u8(what: &'static str, len: usize) -> Result<u8, PppError> {
    u8::try_from(len).map_err(|_| PppError::TooLong {
        what,
        len,
        max: usize::from(u8::MAX),
    })
}

enum_with_unknown! {
    /// PPP protocol numbers (the Protocol field; IANA "PPP DLL Protocol Numbers").
    pub enum Protocol(u16) {
        /// Padding Protocol.
        Padding = 0x0001,
        /// Internet Protocol version 4.
        Ipv4 = 0x0021,
        /// Van Jacobson compressed TCP/IP (RFC 1144).
        VjCompressed = 0x002d,
        /// Van Jacobson uncompressed TCP/IP (RFC 1144).
        VjUncompressed = 0x002f,
        /// PPP Multilink (RFC 1990).
        Multilink = 0x003d,
        /// Encrypted datagram (ECP, RFC 1968).
        EncryptedDatagram = 0x0053,
        /// Internet Protocol version 6.
        Ipv6 = 0x0057,
        /// Individual-link compressed datagram (RFC 1962).
        IndividualLinkCompressed = 0x00fb,
        /// Compressed datagram (CCP, RFC 1962): MPPC/MPPE payloads (RFC 2118, RFC 3078).
        CompressedDatagram = 0x00fd,
        /// IP Control Protocol (RFC 1332).
        Ipcp = 0x8021,
        /// Encryption Control Protocol (RFC 1968).
        Ecp = 0x8053,
        /// IPv6 Control Protocol (RFC 5072).
        Ipv6cp = 0x8057,
        /// Individual-link Compression Control Protocol (RFC 1962).
        IndividualLinkCcp = 0x80fb,
        /// Compression Control Protocol (RFC 1962).
        Ccp = 0x80fd,
        /// Link Control Protocol (RFC 1661).
        Lcp = 0xc021,
        /// Password Authentication Protocol (RFC 1334).
        Pap = 0xc023,
        /// Link Quality Report (RFC 1989).
        Lqr = 0xc025,
        /// Microsoft callback control protocol (CBCP).
        Cbcp = 0xc029,
        /// Bandwidth Allocation Control Protocol (RFC 2125).
        Bacp = 0xc02b,
        /// Bandwidth Allocation Protocol (RFC 2125).
        Bap = 0xc02d,
        /// Challenge Handshake Authentication Protocol (RFC 1994).
        Chap = 0xc223,
        /// Extensible Authentication Protocol (RFC 3748).
        Eap = 0xc227,
    }
}

impl Protocol {
    /// Whether `number` follows the RFC 1661 section 2 rules for protocol numbers.
    ///
    /// RFC 1661 section 2: "All Protocols MUST be odd; the least significant bit of the least
    /// significant octet MUST equal "1". Also, all Protocols MUST be assigned such that the
    /// least significant bit of the most significant octet equals "0". Frames received which
    /// don't comply with these rules MUST be treated as having an unrecognized Protocol."
    pub fn is_valid_number(number: u16) -> bool {
        let [msb, lsb] = number.to_be_bytes();
        lsb & 1 == 1 && msb & 1 == 0
    }

    /// Whether this protocol number follows the RFC 1661 section 2 rules.
    pub fn is_valid(self) -> bool {
        Self::is_valid_number(u16::from(self))
    }

    /// Whether the Protocol field of this protocol may be sent as one octet under PFC.
    ///
    /// Only valid numbers below 0x0100 fit; everything else goes out in two octets. 0x00ff is
    /// excluded too: RFC 1662 section 3.2 reserves it because, compressed to `ff` and followed
    /// by an Information field starting with `03`, it would read back as the Address and
    /// Control fields.
    pub fn is_compressible(self) -> bool {
        let n = u16::from(self);
        n < 0x00ff && Self::is_valid_number(n)
    }
}

/// Which header fields to compress when emitting a frame (negotiated ACFC and PFC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compression {
    /// Omit the FF 03 Address and Control fields (ACFC, RFC 1661 section 6.6).
    pub address_control: bool,
    /// Send one-octet Protocol fields where possible (PFC, RFC 1661 section 6.5).
    pub protocol: bool,
}

impl Compression {
    /// No compression: FF 03 and two-octet protocol fields (what LCP always uses).
    pub const NONE: Compression = Compression {
        address_control: false,
        protocol: false,
    };
    /// Both ACFC and PFC.
    pub const ALL: Compression = Compression {
        address_control: true,
        protocol: true,
    };
}

/// The All-Stations address (RFC 1662 section 3.1).
pub const ALL_STATIONS: u8 = 0xff;
/// The Unnumbered Information control value (RFC 1662 section 3.1).
pub const UI: u8 = 0x03;

/// Field offsets of a PPP frame (after HDLC deframing, before the FCS).
pub mod field {
    use core::ops::Range;
    /// The Address field, when present.
    pub const ADDRESS: usize = 0;
    /// The Control field, when present.
    pub const CONTROL: usize = 1;
    /// Address and Control together.
    pub const ADDRESS_CONTROL: Range<usize> = 0..2;
}

/// A read-only or read-write view of a PPP frame: `[FF 03] protocol(1|2) information`.
///
/// On receive both forms of the header are accepted whatever was negotiated, as RFC 1661 asks
/// of robust implementations; see [`Frame::has_address_control`] and [`Frame::protocol_len`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; accessors then use defaults for missing octets.
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Frame<T>, PppError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds a whole Protocol field.
    pub fn check_len(&self) -> Result<(), PppError> {
        let len = self.buffer.as_ref().len();
        let need = self.header_len();
        if len < need {
            return Err(PppError::Wire(WireError::Truncated { needed: need - len }));
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Whether the frame starts with the Address and Control fields (FF 03).
    ///
    /// RFC 1662 section 3.2 decides this on reception by the first two octets alone: FF 03 are
    /// the Address and Control fields, anything else means they were compressed away. The
    /// first octet of a two-octet Protocol field is even, so it is never FF.
    pub fn has_address_control(&self) -> bool {
        self.buffer.as_ref().get(field::ADDRESS_CONTROL) == Some(&[ALL_STATIONS, UI][..])
    }

    /// Offset of the Protocol field.
    pub fn protocol_offset(&self) -> usize {
        if self.has_address_control() {
            2
        } else {
            0
        }
    }

    /// Length of the Protocol field: 1 if its first octet is odd (PFC), else 2.
    ///
    /// RFC 1661 section 6.5: "the Least Significant Bit (LSB) of each octet is used to
    /// indicate extension of the Protocol field. A binary "0" as the LSB indicates that the
    /// Protocol field continues with the following octet. The presence of a binary "1" as the
    /// LSB marks the last octet of the Protocol field." PPP protocol numbers are at most two
    /// octets, so a second even octet does not extend the field further: the number is then
    /// invalid (see [`Frame::protocol_is_valid`]).
    pub fn protocol_len(&self) -> usize {
        match self.buffer.as_ref().get(self.protocol_offset()) {
            Some(b) if b & 1 == 1 => 1,
            _ => 2,
        }
    }

    /// Length of the Address, Control and Protocol fields together.
    pub fn header_len(&self) -> usize {
        self.protocol_offset() + self.protocol_len()
    }

    /// The protocol number, widened to 16 bits if it was compressed.
    pub fn protocol_number(&self) -> u16 {
        let buf = self.buffer.as_ref();
        let off = self.protocol_offset();
        match self.protocol_len() {
            1 => buf.get(off).copied().map_or(0, u16::from),
            _ => {
                let hi = buf.get(off).copied().unwrap_or(0);
                let lo = buf.get(off + 1).copied().unwrap_or(0);
                u16::from_be_bytes([hi, lo])
            }
        }
    }

    /// The protocol. A number that breaks the RFC 1661 rules is always `Unknown`.
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.protocol_number())
    }

    /// Whether the protocol number follows RFC 1661 section 2; a frame for which this is false
    /// "MUST be treated as having an unrecognized Protocol" (answered with Protocol-Reject).
    pub fn protocol_is_valid(&self) -> bool {
        Protocol::is_valid_number(self.protocol_number())
    }

    /// The Information field (everything after the Protocol field; any padding included).
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.header_len()..)
            .unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// The Information field, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or_default()
    }
}

/// A parsed PPP frame: the protocol and the Information field, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRepr<'a> {
    /// The protocol of the Information field.
    pub protocol: Protocol,
    /// The Information field.
    pub payload: &'a [u8],
}

impl<'a> FrameRepr<'a> {
    /// Parses a frame from untrusted bytes, accepting compressed and uncompressed headers.
    pub fn parse(buf: &'a [u8]) -> Result<FrameRepr<'a>, PppError> {
        let frame = Frame::new_checked(buf)?;
        let mut r = Reader::new(buf);
        r.take(frame.header_len())?;
        Ok(FrameRepr {
            protocol: frame.protocol(),
            payload: r.rest(),
        })
    }

    /// Whether the Address and Control fields are sent under `compression`.
    ///
    /// RFC 1661 section 6.6: "The Address and Control fields MUST NOT be compressed when
    /// sending any LCP packet. This rule guarantees unambiguous recognition of LCP packets."
    pub fn sends_address_control(&self, compression: Compression) -> bool {
        !compression.address_control || self.protocol == Protocol::Lcp
    }

    /// Whether the Protocol field is sent as one octet under `compression`.
    ///
    /// RFC 1661 section 6.5: "The Protocol field is never compressed when sending any LCP
    /// packet. This rule guarantees unambiguous recognition of LCP packets." LCP's number
    /// (c021) does not fit one octet anyway; numbers that are not valid (section 2) and 0x00ff
    /// are never compressed either (see [`Protocol::is_compressible`]).
    pub fn sends_short_protocol(&self, compression: Compression) -> bool {
        compression.protocol && self.protocol.is_compressible()
    }

    /// Length of the header (Address, Control, Protocol) under `compression`.
    pub fn header_len(&self, compression: Compression) -> usize {
        let ac = if self.sends_address_control(compression) {
            2
        } else {
            0
        };
        let pf = if self.sends_short_protocol(compression) {
            1
        } else {
            2
        };
        ac + pf
    }

    /// Length of the emitted frame under `compression`.
    pub fn buffer_len(&self, compression: Compression) -> usize {
        self.header_len(compression) + self.payload.len()
    }

    /// Writes the frame to the start of `buf`; returns the number of octets written.
    pub fn emit(&self, buf: &mut [u8], compression: Compression) -> Result<usize, PppError> {
        let mut w = Writer::new(buf, self.buffer_len(compression))?;
        if self.sends_address_control(compression) {
            w.u8(ALL_STATIONS)?;
            w.u8(UI)?;
        }
        let number = u16::from(self.protocol);
        if self.sends_short_protocol(compression) {
            let [_, low] = number.to_be_bytes();
            w.u8(low)?;
        } else {
            w.u16(number)?;
        }
        w.bytes(self.payload)?;
        Ok(w.written())
    }

    /// Emits the frame into a new vector.
    pub fn to_vec(&self, compression: Compression) -> Vec<u8> {
        let mut out = vec![0u8; self.buffer_len(compression)];
        // The buffer is sized by buffer_len, so emit cannot fail.
        let n = self.emit(&mut out, compression).unwrap_or(0);
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    /// LCP Configure-Request (MRU 1400, magic a1b2c3d4) from pptpd's test peer, taken from
    /// GRE frame 13 of /work/shared/captures/pptp-linux-to-pptpd.pcapng.
    static LCP_FRAME: [u8; 18] = [
        0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x0e, 0x01, 0x04, 0x05, 0x78, 0x05, 0x06, 0xa1,
        0xb2, 0xc3, 0xd4,
    ];

    /// An IPv4 datagram start with ACFC and PFC: protocol 0x21 in one octet.
    static IP_FRAME_COMPRESSED: [u8; 5] = [0x21, 0x45, 0x00, 0x00, 0x14];

    #[test]
    fn test_deconstruct() {
        let f = Frame::new_checked(&LCP_FRAME[..]).unwrap();
        assert!(f.has_address_control());
        assert_eq!(f.protocol_len(), 2);
        assert_eq!(f.protocol(), Protocol::Lcp);
        assert!(f.protocol_is_valid());
        assert_eq!(f.payload(), &LCP_FRAME[4..]);

        let f = Frame::new_checked(&IP_FRAME_COMPRESSED[..]).unwrap();
        assert!(!f.has_address_control());
        assert_eq!(f.protocol_len(), 1);
        assert_eq!(f.protocol(), Protocol::Ipv4);
        assert_eq!(f.payload(), &[0x45, 0x00, 0x00, 0x14]);
    }

    #[test]
    fn test_construct() {
        let mut buf = LCP_FRAME;
        let mut f = Frame::new_checked(&mut buf[..]).unwrap();
        f.payload_mut()[1] = 0x09;
        assert_eq!(Frame::new_unchecked(&buf[..]).payload()[1], 0x09);
    }

    #[test]
    fn test_parse() {
        let repr = FrameRepr::parse(&LCP_FRAME).unwrap();
        assert_eq!(repr.protocol, Protocol::Lcp);
        assert_eq!(repr.payload, &LCP_FRAME[4..]);
        let repr = FrameRepr::parse(&IP_FRAME_COMPRESSED).unwrap();
        assert_eq!(repr.protocol, Protocol::Ipv4);
        // ACFC on, PFC off.
        let repr = FrameRepr::parse(&[0x00, 0x21, 0x45]).unwrap();
        assert_eq!(repr.protocol, Protocol::Ipv4);
        assert_eq!(repr.payload, &[0x45]);
        // ACFC off, PFC on.
        let repr = FrameRepr::parse(&[0xff, 0x03, 0xfd, 0x90, 0x01]).unwrap();
        assert_eq!(repr.protocol, Protocol::CompressedDatagram);
        assert_eq!(repr.payload, &[0x90, 0x01]);
        // Empty Information field is allowed.
        let repr = FrameRepr::parse(&[0xc0, 0x21]).unwrap();
        assert_eq!(repr.payload, &[] as &[u8]);
    }

    #[test]
    fn test_emit() {
        let repr = FrameRepr {
            protocol: Protocol::Lcp,
            payload: &LCP_FRAME[4..],
        };
        // LCP ignores ACFC and PFC.
        assert_eq!(repr.to_vec(Compression::ALL), LCP_FRAME);
        assert_eq!(repr.to_vec(Compression::NONE), LCP_FRAME);
        let ip = FrameRepr {
            protocol: Protocol::Ipv4,
            payload: &IP_FRAME_COMPRESSED[1..],
        };
        assert_eq!(ip.to_vec(Compression::ALL), IP_FRAME_COMPRESSED);
        assert_eq!(
            ip.to_vec(Compression::NONE),
            [0xff, 0x03, 0x00, 0x21, 0x45, 0x00, 0x00, 0x14]
        );
        // IPCP (8021) cannot be protocol-compressed.
        let ipcp = FrameRepr {
            protocol: Protocol::Ipcp,
            payload: &[],
        };
        assert_eq!(ipcp.to_vec(Compression::ALL), [0x80, 0x21]);
        let mut small = [0u8; 3];
        assert_eq!(
            ip.emit(&mut small, Compression::ALL),
            Err(PppError::BufferTooSmall {
                needed: 5,
                available: 3
            })
        );
    }

    #[test]
    fn truncated_and_invalid_protocols() {
        assert!(FrameRepr::parse(&[]).is_err());
        assert!(FrameRepr::parse(&[0xff, 0x03]).is_err());
        assert!(FrameRepr::parse(&[0xff, 0x03, 0xc0]).is_err());
        assert!(FrameRepr::parse(&[0x80]).is_err());
        // c020: even low octet; 0121: odd high octet cannot even be told apart from PFC.
        let f = Frame::new_checked(&[0xc0u8, 0x20, 1][..]).unwrap();
        assert!(!f.protocol_is_valid());
        assert_eq!(f.protocol(), Protocol::Unknown(0xc020));
        // FF not followed by 03 is a compressed protocol field 0x00ff (RFC 1662 section 3.2: the
        // first octet of a two-octet Protocol field is never 0xff).
        let f = Frame::new_checked(&[0xffu8, 0x05][..]).unwrap();
        assert!(!f.has_address_control());
        assert_eq!(f.protocol_number(), 0x00ff);
    }

    #[test]
    fn known_protocols_are_valid() {
        for n in 0..=u16::MAX {
            let p = Protocol::from(n);
            if !matches!(p, Protocol::Unknown(_)) {
                assert!(p.is_valid(), "{p:?}");
            }
            assert_eq!(u16::from(p), n);
        }
    }

    pub(crate) fn valid_protocol() -> impl Strategy<Value = Protocol> {
        any::<u16>().prop_map(|n| Protocol::from((n & 0xfeff) | 0x0001))
    }

    proptest! {
        #[test]
        fn frame_roundtrip(
            protocol in valid_protocol(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            acfc in any::<bool>(),
            pfc in any::<bool>(),
        ) {
            let c = Compression { address_control: acfc, protocol: pfc };
            let repr = FrameRepr { protocol, payload: &payload };
            let bytes = repr.to_vec(c);
            prop_assert_eq!(bytes.len(), repr.buffer_len(c));
            prop_assert_eq!(FrameRepr::parse(&bytes).unwrap(), repr);
        }

        #[test]
        fn frame_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Ok(f) = Frame::new_checked(&bytes[..]) {
                let _ = (f.protocol(), f.payload());
            }
            let _ = FrameRepr::parse(&bytes);
        }
    }

    #[test]
    fn frame_roundtrip_seeded() {
        // Seeded reproducer for the property: 0x00fd with both compressions.
        let repr = FrameRepr {
            protocol: Protocol::CompressedDatagram,
            payload: &[0xff, 0x03],
        };
        let bytes = repr.to_vec(Compression::ALL);
        assert_eq!(bytes, [0xfd, 0xff, 0x03]);
        assert_eq!(FrameRepr::parse(&bytes).unwrap(), repr);
    }
}
