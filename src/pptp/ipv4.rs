//! The IPv4 header a raw `IPPROTO_GRE` socket delivers in front of each GRE packet (Linux hands
//! raw sockets the whole datagram, header included, with Total Length in network order).
//!
//! [`Ipv4Packet`] is the zero-copy view, [`Ipv4Header`] the validated header; [`parse_raw_gre`]
//! does IPv4 and enhanced GRE in one call for the raw-socket driver. Options are skipped, not
//! kept: [`Ipv4Header::emit`] always writes a 20-octet header (it exists for tests and pcap
//! files; the kernel builds the header on a real send).

use super::gre::{GreError, GreRepr, IP_PROTOCOL_GRE};
use bytes::BufMut;
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

/// Octet offsets and ranges of the IPv4 header (RFC 791 §3.1).
pub mod field {
    /// A range of octets.
    pub type Field = core::ops::Range<usize>;
    /// Version (high nibble) and IHL (low nibble, in 32-bit words).
    pub const VER_IHL: usize = 0;
    /// Type of Service (DSCP and ECN).
    pub const TOS: usize = 1;
    /// Total Length, header included.
    pub const TOTAL_LEN: Field = 2..4;
    /// Identification.
    pub const IDENT: Field = 4..6;
    /// Flags (3 bits) and Fragment Offset (13 bits).
    pub const FLAGS_FRAG: Field = 6..8;
    /// Time to Live.
    pub const TTL: usize = 8;
    /// Protocol.
    pub const PROTOCOL: usize = 9;
    /// Header Checksum.
    pub const CHECKSUM: Field = 10..12;
    /// Source Address.
    pub const SRC: Field = 12..16;
    /// Destination Address.
    pub const DST: Field = 16..20;

    /// DF: don't fragment.
    pub const FLAG_DF: u16 = 0x4000;
    /// MF: more fragments.
    pub const FLAG_MF: u16 = 0x2000;
    /// Fragment Offset mask.
    pub const FRAG_OFFSET_MASK: u16 = 0x1fff;
}

/// Why a buffer is not an IPv4 datagram this crate accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ipv4Error {
    /// The buffer ends inside the header.
    #[error("truncated IPv4 header: {needed} more octet(s) needed")]
    Truncated {
        /// How many more octets the header needs.
        needed: usize,
    },
    /// Version is not 4.
    #[error("IP version {0}, expected 4")]
    Version(u8),
    /// IHL is below 5 (20 octets).
    #[error("IHL {0} is below the minimum of 5")]
    HeaderLen(u8),
    /// Total Length is smaller than the header.
    #[error("total length {total_len} is smaller than the {header_len}-octet header")]
    TotalLenTooShort {
        /// Total Length field.
        total_len: u16,
        /// Header length from IHL.
        header_len: usize,
    },
    /// Total Length exceeds the buffer.
    #[error("total length {total_len} but only {available} octet(s) present")]
    TotalLenExceedsBuffer {
        /// Total Length field.
        total_len: u16,
        /// Octets present.
        available: usize,
    },
    /// The header checksum does not verify.
    #[error("bad IPv4 header checksum")]
    Checksum,
    /// The datagram is a fragment (raw sockets get reassembled datagrams, so this is junk).
    #[error("IPv4 fragment (offset {offset}, more fragments: {more})")]
    Fragment {
        /// Fragment offset in 8-octet units.
        offset: u16,
        /// MF flag.
        more: bool,
    },
    /// Protocol is not 47 (GRE).
    #[error("IP protocol {0}, expected 47 (GRE)")]
    NotGre(u8),
}

/// The Internet checksum (RFC 1071) of `data`: one's complement of the one's complement sum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let Ok(pair) = <[u8; 2]>::try_from(c) {
            sum += u32::from(u16::from_be_bytes(pair));
        }
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A zero-copy view of an IPv4 datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(buf: &[u8], f: field::Field) -> u16 {
    buf.get(f)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_be_bytes)
}

fn addr(buf: &[u8], f: field::Field) -> Ipv4Addr {
    buf.get(f)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from)
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it. Accessors still never panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, Ipv4Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks version, IHL, and Total Length against the header and the buffer.
    pub fn check_len(&self) -> Result<(), Ipv4Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Ipv4Error::Truncated {
                needed: HEADER_LEN - len,
            });
        }
        if self.version() != 4 {
            return Err(Ipv4Error::Version(self.version()));
        }
        if self.ihl() < 5 {
            return Err(Ipv4Error::HeaderLen(self.ihl()));
        }
        let header_len = self.header_len();
        if len < header_len {
            return Err(Ipv4Error::Truncated {
                needed: header_len - len,
            });
        }
        let total_len = self.total_len();
        if usize::from(total_len) < header_len {
            return Err(Ipv4Error::TotalLenTooShort {
                total_len,
                header_len,
            });
        }
        if usize::from(total_len) > len {
            return Err(Ipv4Error::TotalLenExceedsBuffer {
                total_len,
                available: len,
            });
        }
        Ok(())
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    /// Version (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.byte(field::VER_IHL) >> 4
    }

    /// IHL: header length in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.byte(field::VER_IHL) & 0x0f
    }

    /// Header length in octets (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// Type of Service octet.
    pub fn tos(&self) -> u8 {
        self.byte(field::TOS)
    }

    /// Total Length.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// DF flag.
    pub fn dont_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG) & field::FLAG_DF != 0
    }

    /// MF flag.
    pub fn more_fragments(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG) & field::FLAG_MF != 0
    }

    /// Fragment Offset, in 8-octet units.
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG) & field::FRAG_OFFSET_MASK
    }

    /// Time to Live.
    pub fn ttl(&self) -> u8 {
        self.byte(field::TTL)
    }

    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.byte(field::PROTOCOL)
    }

    /// Header Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source Address.
    pub fn src_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::SRC)
    }

    /// Destination Address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        addr(self.buffer.as_ref(), field::DST)
    }

    /// Whether the header checksum verifies (options included).
    pub fn verify_checksum(&self) -> bool {
        let buf = self.buffer.as_ref();
        buf.get(..self.header_len())
            .is_some_and(|header| checksum(header) == 0)
    }

    /// The options octets (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..self.header_len())
            .unwrap_or_default()
    }

    /// The payload: from the end of the header to Total Length (octets after Total Length, such
    /// as link-layer padding, are not part of it).
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.payload_range())
            .unwrap_or_default()
    }

    /// Where [`payload`](Self::payload) lies in the buffer.
    fn payload_range(&self) -> core::ops::Range<usize> {
        let len = self.buffer.as_ref().len();
        let end = usize::from(self.total_len()).min(len);
        self.header_len().min(end)..end
    }
}

/// A validated IPv4 header (options are skipped and not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Header {
    /// Type of Service (DSCP and ECN).
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// DF flag.
    pub dont_fragment: bool,
    /// Time to Live.
    pub ttl: u8,
    /// Protocol (47 for GRE).
    pub protocol: u8,
    /// Source Address.
    pub src: Ipv4Addr,
    /// Destination Address.
    pub dst: Ipv4Addr,
    /// Payload length (Total Length minus the header).
    pub payload_len: u16,
}

impl Ipv4Header {
    /// Parses a datagram carrying GRE (protocol 47) and returns the header and its payload.
    pub fn parse(bytes: &[u8]) -> Result<(Ipv4Header, &[u8]), Ipv4Error> {
        let (header, payload) = Self::parse_any(bytes)?;
        if header.protocol != IP_PROTOCOL_GRE {
            return Err(Ipv4Error::NotGre(header.protocol));
        }
        Ok((header, payload))
    }

    /// Parses a datagram of any protocol.
    ///
    /// Checks version 4, IHL ≥ 5, the header and Total Length against the buffer, the header
    /// checksum (skipped when fuzzing) and rejects fragments. Octets after Total Length are
    /// ignored.
    pub fn parse_any(bytes: &[u8]) -> Result<(Ipv4Header, &[u8]), Ipv4Error> {
        let packet = Ipv4Packet::new_checked(bytes)?;
        if !cfg!(fuzzing) && !packet.verify_checksum() {
            return Err(Ipv4Error::Checksum);
        }
        if packet.more_fragments() || packet.frag_offset() != 0 {
            return Err(Ipv4Error::Fragment {
                offset: packet.frag_offset(),
                more: packet.more_fragments(),
            });
        }
        let payload = bytes.get(packet.payload_range()).unwrap_or_default();
        let header = Ipv4Header {
            tos: packet.tos(),
            ident: packet.ident(),
            dont_fragment: packet.dont_fragment(),
            ttl: packet.ttl(),
            protocol: packet.protocol(),
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            payload_len: u16::try_from(payload.len()).unwrap_or(u16::MAX),
        };
        Ok((header, payload))
    }

    /// A header for a GRE payload of `payload_len` octets: TTL 64, DF set, ident 0.
    pub fn gre(src: Ipv4Addr, dst: Ipv4Addr, payload_len: u16) -> Ipv4Header {
        Ipv4Header {
            tos: 0,
            ident: 0,
            dont_fragment: true,
            ttl: 64,
            protocol: IP_PROTOCOL_GRE,
            src,
            dst,
            payload_len,
        }
    }

    /// Length of the emitted header (always 20: no options).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len)
    }

    /// Appends the 20-octet header, checksum filled in, to `buf`. `payload_len` must be at most
    /// 65515 so that Total Length fits (larger values are clamped).
    pub fn emit<B: BufMut>(&self, buf: &mut B) {
        let mut h = [0u8; HEADER_LEN];
        let total = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        let flags = if self.dont_fragment {
            field::FLAG_DF
        } else {
            0
        };
        let fields: [(usize, &[u8]); 8] = [
            (field::VER_IHL, &[0x45]),
            (field::TOS, &[self.tos]),
            (field::TOTAL_LEN.start, &total.to_be_bytes()),
            (field::IDENT.start, &self.ident.to_be_bytes()),
            (field::FLAGS_FRAG.start, &flags.to_be_bytes()),
            (field::TTL, &[self.ttl, self.protocol]),
            (field::SRC.start, &self.src.octets()),
            (field::DST.start, &self.dst.octets()),
        ];
        for (at, bytes) in fields {
            if let Some(dst) = h.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
        let sum = checksum(&h).to_be_bytes();
        if let Some(dst) = h.get_mut(field::CHECKSUM) {
            dst.copy_from_slice(&sum);
        }
        buf.put_slice(&h);
    }
}

/// Why a raw-socket datagram is not a PPTP GRE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RawGreError {
    /// The IPv4 layer is bad.
    #[error("IPv4: {0}")]
    Ip(#[from] Ipv4Error),
    /// The GRE layer is bad.
    #[error("GRE: {0}")]
    Gre(#[from] GreError),
}

/// One datagram from a raw GRE socket, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawGre<'a> {
    /// The IPv4 header.
    pub ip: Ipv4Header,
    /// The GRE header.
    pub gre: GreRepr,
    /// The GRE payload (a PPP frame), exactly `gre.payload_len` octets.
    pub payload: &'a [u8],
}

/// Parses an IPv4 datagram carrying enhanced GRE, as read from a raw `IPPROTO_GRE` socket.
pub fn parse_raw_gre(bytes: &[u8]) -> Result<RawGre<'_>, RawGreError> {
    let (ip, gre_bytes) = Ipv4Header::parse(bytes)?;
    let (gre, payload) = GreRepr::parse_bytes(gre_bytes)?;
    Ok(RawGre { ip, gre, payload })
}

#[cfg(test)]
mod test {
    use super::super::gre::SeqNumber;
    use super::*;
    use proptest::prelude::*;

    /// pptpd (127.0.0.1) to pptp-linux (127.0.0.4), seq 1 ack 1: the whole IPv4 datagram as a
    /// raw socket delivers it (pptp-linux-to-pptpd.pcapng frame 209).
    static DATAGRAM_SEQ_ACK: [u8; 54] = [
        0x45, 0x00, 0x00, 0x36, 0xfe, 0xa8, 0x40, 0x00, 0x40, 0x2f, 0x3d, 0xeb, 0x7f, 0x00, 0x00,
        0x01, 0x7f, 0x00, 0x00, 0x04, 0x30, 0x81, 0x88, 0x0b, 0x00, 0x12, 0x6d, 0x2f, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0xff, 0x03, 0xc0, 0x21, 0x02, 0x01, 0x00, 0x0e, 0x01,
        0x04, 0x05, 0x78, 0x05, 0x06, 0xa1, 0xb2, 0xc3, 0xd4,
    ];

    /// pptp-linux to pptpd, ack only (frame 18 of ocrq-to-pptpd.pcapng, 127.0.0.2 to .1).
    static DATAGRAM_ACK_ONLY: [u8; 32] = [
        0x45, 0x00, 0x00, 0x20, 0x1d, 0x96, 0x40, 0x00, 0x40, 0x2f, 0x1f, 0x16, 0x7f, 0x00, 0x00,
        0x02, 0x7f, 0x00, 0x00, 0x01, 0x20, 0x81, 0x88, 0x0b, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00,
        0x00, 0x01,
    ];

    #[test]
    fn parse_captured_datagram() {
        let (h, payload) = Ipv4Header::parse(&DATAGRAM_SEQ_ACK).unwrap();
        assert_eq!(h.src, Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(h.dst, Ipv4Addr::new(127, 0, 0, 4));
        assert_eq!(h.protocol, IP_PROTOCOL_GRE);
        assert_eq!(h.ttl, 64);
        assert!(h.dont_fragment);
        assert_eq!(h.ident, 0xfea8);
        assert_eq!(h.payload_len, 34);
        assert_eq!(payload, &DATAGRAM_SEQ_ACK[20..]);

        let mut out = Vec::new();
        h.emit(&mut out);
        out.extend_from_slice(payload);
        assert_eq!(
            out, DATAGRAM_SEQ_ACK,
            "emit(parse(x)) == x, checksum included"
        );
    }

    #[test]
    fn parse_raw_gre_both_layers() {
        let raw = parse_raw_gre(&DATAGRAM_SEQ_ACK).unwrap();
        assert_eq!(
            raw.gre,
            GreRepr::data(0x6d2f, 18, SeqNumber(1), Some(SeqNumber(1)))
        );
        assert_eq!(raw.payload.len(), 18);
        let raw = parse_raw_gre(&DATAGRAM_ACK_ONLY).unwrap();
        assert_eq!(raw.ip.src, Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(raw.gre, GreRepr::ack_only(0x0a00, SeqNumber(1)));
        assert!(raw.payload.is_empty());
    }

    #[test]
    fn bad_version_and_ihl() {
        let mut b = DATAGRAM_SEQ_ACK;
        b[0] = 0x65;
        assert_eq!(Ipv4Header::parse(&b), Err(Ipv4Error::Version(6)));
        let mut b = DATAGRAM_SEQ_ACK;
        b[0] = 0x44;
        assert_eq!(Ipv4Header::parse(&b), Err(Ipv4Error::HeaderLen(4)));
        // IHL 15 (60 octets) in a 54-octet buffer.
        let mut b = DATAGRAM_SEQ_ACK;
        b[0] = 0x4f;
        assert_eq!(
            Ipv4Header::parse(&b),
            Err(Ipv4Error::Truncated { needed: 6 })
        );
        assert_eq!(
            Ipv4Header::parse(&DATAGRAM_SEQ_ACK[..10]),
            Err(Ipv4Error::Truncated { needed: 10 })
        );
    }

    #[test]
    fn total_length_checks() {
        // Total Length beyond the buffer.
        assert_eq!(
            Ipv4Header::parse(&DATAGRAM_SEQ_ACK[..50]),
            Err(Ipv4Error::TotalLenExceedsBuffer {
                total_len: 54,
                available: 50
            })
        );
        // Total Length smaller than the header (checksum is checked after length).
        let mut b = DATAGRAM_SEQ_ACK;
        b[3] = 16;
        assert_eq!(
            Ipv4Header::parse(&b),
            Err(Ipv4Error::TotalLenTooShort {
                total_len: 16,
                header_len: 20
            })
        );
        // Octets after Total Length (link padding) are ignored.
        let padded = [&DATAGRAM_ACK_ONLY[..], &[0; 14]].concat();
        let (h, payload) = Ipv4Header::parse(&padded).unwrap();
        assert_eq!(h.payload_len, 12);
        assert_eq!(payload, &DATAGRAM_ACK_ONLY[20..]);
    }

    #[test]
    fn checksum_protocol_and_fragments() {
        let mut b = DATAGRAM_SEQ_ACK;
        b[11] ^= 0xff;
        assert_eq!(Ipv4Header::parse(&b), Err(Ipv4Error::Checksum));

        let h = Ipv4Header {
            protocol: 6,
            ..Ipv4Header::gre(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 0)
        };
        let mut b = Vec::new();
        h.emit(&mut b);
        assert_eq!(Ipv4Header::parse(&b), Err(Ipv4Error::NotGre(6)));
        assert_eq!(Ipv4Header::parse_any(&b).map(|(h, _)| h.protocol), Ok(6));

        // A first fragment (MF set).
        let mut b = DATAGRAM_SEQ_ACK;
        b[6] = 0x20;
        let sum = {
            b[10] = 0;
            b[11] = 0;
            checksum(&b[..20])
        };
        b[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            Ipv4Header::parse(&b),
            Err(Ipv4Error::Fragment {
                offset: 0,
                more: true
            })
        );
    }

    #[test]
    fn options_are_skipped() {
        // IHL 6: one 4-octet option (NOP NOP NOP EOL), then the GRE ack-only packet.
        let mut b = vec![
            0x46, 0, 0, 36, 0, 0, 0x40, 0, 64, 47, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        b.extend_from_slice(&[1, 1, 1, 0]);
        b.extend_from_slice(&DATAGRAM_ACK_ONLY[20..]);
        let sum = checksum(&b[..24]);
        b[10..12].copy_from_slice(&sum.to_be_bytes());
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert!(p.verify_checksum());
        let (h, payload) = Ipv4Header::parse(&b).unwrap();
        assert_eq!(h.payload_len, 12);
        assert_eq!(payload, &DATAGRAM_ACK_ONLY[20..]);
        let raw = parse_raw_gre(&b).unwrap();
        assert_eq!(raw.gre, GreRepr::ack_only(0x0a00, SeqNumber(1)));
    }

    #[test]
    fn raw_gre_errors_are_layered() {
        let mut b = DATAGRAM_ACK_ONLY;
        b[21] = 0x80; // GRE version 0
        assert_eq!(
            parse_raw_gre(&b),
            Err(RawGreError::Gre(GreError::Version(0)))
        );
        assert_eq!(
            parse_raw_gre(&DATAGRAM_ACK_ONLY[..19]),
            Err(RawGreError::Ip(Ipv4Error::Truncated { needed: 1 }))
        );
    }

    #[test]
    fn checksum_of_odd_length() {
        assert_eq!(checksum(&[0xff]), !0xff00);
        assert_eq!(checksum(&[]), 0xffff);
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(
            tos in any::<u8>(), ident in any::<u16>(), df in any::<bool>(), ttl in any::<u8>(),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), len in 0u16..200,
        ) {
            let h = Ipv4Header {
                tos, ident, dont_fragment: df, ttl, protocol: IP_PROTOCOL_GRE,
                src: src.into(), dst: dst.into(), payload_len: len,
            };
            let mut buf = Vec::new();
            h.emit(&mut buf);
            buf.resize(h.buffer_len(), 0xa5);
            let (parsed, payload) = Ipv4Header::parse(&buf).unwrap();
            prop_assert_eq!(parsed, h);
            prop_assert_eq!(payload.len(), usize::from(len));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = parse_raw_gre(&bytes);
        }
    }
}
