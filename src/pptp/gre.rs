//! Enhanced GRE (RFC 2637 section 4.1), the data channel of a PPTP call.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    Key (HW) Payload Length    |       Key (LW) Call ID        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Sequence Number (Optional)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Acknowledgment Number (Optional)                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Two views: [`GrePacket`], zero-copy over any buffer (accessors never panic; after
//! [`GrePacket::new_checked`] the whole header is present), and [`GreRepr`], the validated header,
//! which only [`GreRepr::parse`] produces from untrusted input. [`SeqNumber`] carries the wrapping
//! 32-bit sequence and acknowledgment numbers.
//!
//! Receive policy: version 1, K set and protocol 0x880B are required (that is what makes this
//! PPTP); C, R and s are rejected because they change the header layout (checksum, routing) and
//! RFC 2784 §2.3 says "A receiver MUST discard a packet where any of bits 1-5 are non-zero,
//! unless that receiver implements RFC 1701"; Recur and Flags are ignored on receipt (RFC 2784
//! §2.3: bits 6-12 "MUST be sent as zero and MUST be ignored on receipt") and always emitted as 0.

use bytes::BufMut;

/// IP protocol number of GRE.
pub const IP_PROTOCOL_GRE: u8 = 47;
/// GRE Protocol Type of PPP, the only one PPTP uses.
pub const PROTOCOL_PPP: u16 = 0x880B;
/// GRE version number of enhanced GRE.
pub const VERSION_ENHANCED: u8 = 1;
/// Length of the header without sequence and acknowledgment numbers.
pub const HEADER_LEN_MIN: usize = 8;
/// Length of the header with both sequence and acknowledgment numbers.
pub const HEADER_LEN_MAX: usize = 16;

/// Octet ranges of the fixed part of the header, and flag bits of its first 16-bit word.
pub mod field {
    /// A range of octets.
    pub type Field = core::ops::Range<usize>;
    /// Flags and version word.
    pub const FLAGS: Field = 0..2;
    /// Protocol Type.
    pub const PROTOCOL: Field = 2..4;
    /// Key (HW): Payload Length.
    pub const PAYLOAD_LEN: Field = 4..6;
    /// Key (LW): Call ID (the receiver's, i.e. the peer's Call ID from the sender's view).
    pub const CALL_ID: Field = 6..8;
    /// Start of the optional numbers (Sequence Number first, then Acknowledgment Number).
    pub const OPTIONAL: usize = 8;

    /// C: Checksum Present (bit 0).
    pub const FLAG_C: u16 = 0x8000;
    /// R: Routing Present (bit 1).
    pub const FLAG_R: u16 = 0x4000;
    /// K: Key Present (bit 2).
    pub const FLAG_K: u16 = 0x2000;
    /// S: Sequence Number Present (bit 3).
    pub const FLAG_S: u16 = 0x1000;
    /// s: Strict source route present (bit 4).
    pub const FLAG_STRICT: u16 = 0x0800;
    /// Recur: recursion control (bits 5-7).
    pub const RECUR_MASK: u16 = 0x0700;
    /// A: Acknowledgment sequence number present (bit 8).
    pub const FLAG_A: u16 = 0x0080;
    /// Flags (bits 9-12).
    pub const FLAGS_MASK: u16 = 0x0078;
    /// Ver (bits 13-15).
    pub const VERSION_MASK: u16 = 0x0007;
}

/// A 32-bit GRE sequence or acknowledgment number, compared with wrap-around (RFC 1982 style:
/// `a` is after `b` when `a - b`, taken modulo 2^32, is in 1..2^31).
///
/// Deliberately not `Ord`: wrapping comparison is not transitive over the whole space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The signed distance from `earlier` to `self` (positive if `self` is after `earlier`).
    pub const fn distance(self, earlier: SeqNumber) -> i32 {
        // Reinterpreting the wrapped difference as two's complement is the point here.
        self.0.wrapping_sub(earlier.0) as i32
    }

    /// Whether `self` comes after `other` (modulo 2^32).
    pub const fn is_after(self, other: SeqNumber) -> bool {
        self.distance(other) > 0
    }

    /// Whether `self` comes before `other` (modulo 2^32).
    pub const fn is_before(self, other: SeqNumber) -> bool {
        self.distance(other) < 0
    }

    /// `self + n`, wrapping.
    pub const fn wrapping_add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }

    /// The next number (`self + 1`, wrapping).
    pub const fn next(self) -> SeqNumber {
        self.wrapping_add(1)
    }
}

impl core::fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a buffer is not an enhanced GRE packet PPTP can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GreError {
    /// The buffer ends inside the header.
    #[error("truncated GRE header: {needed} more octet(s) needed")]
    Truncated {
        /// How many more octets the header needs.
        needed: usize,
    },
    /// Ver is not 1 (enhanced GRE); 0 is plain GRE, not PPTP.
    #[error("GRE version {0}, PPTP needs 1 (enhanced GRE)")]
    Version(u8),
    /// K (Key Present) is clear.
    #[error("GRE key bit clear; enhanced GRE must carry a key")]
    NoKey,
    /// Protocol Type is not 0x880B (PPP).
    #[error("GRE protocol type {0:#06x}, PPTP needs 0x880b")]
    Protocol(u16),
    /// C, R or s is set: checksum or routing fields this implementation does not parse.
    #[error("GRE flags {0:#06x} ask for checksum or routing, not used by PPTP")]
    UnsupportedFlags(u16),
    /// S is clear (acknowledgment only) but Payload Length is not 0.
    #[error("payload of {0} octets without a sequence number")]
    PayloadWithoutSequence(u16),
    /// Payload Length says more than the buffer holds after the header.
    #[error("payload length {payload_len} but only {available} octet(s) present")]
    PayloadTruncated {
        /// Payload Length field.
        payload_len: u16,
        /// Octets present after the header.
        available: usize,
    },
}

fn be16(buf: &[u8], f: field::Field) -> u16 {
    buf.get(f)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_be_bytes)
}

fn be32_at(buf: &[u8], at: usize) -> u32 {
    buf.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

/// A zero-copy view of an enhanced GRE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// Wraps a buffer without checking it. Accessors still never panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        GrePacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, GreError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the whole header the flags announce. The payload is checked
    /// by [`GreRepr::parse`], after the version and protocol checks.
    pub fn check_len(&self) -> Result<(), GreError> {
        let len = self.buffer.as_ref().len();
        let need = if len < HEADER_LEN_MIN {
            HEADER_LEN_MIN
        } else {
            self.header_len()
        };
        if len < need {
            return Err(GreError::Truncated { needed: need - len });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags and version word.
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS)
    }

    /// C: Checksum Present.
    pub fn checksum_present(&self) -> bool {
        self.flags() & field::FLAG_C != 0
    }

    /// R: Routing Present.
    pub fn routing_present(&self) -> bool {
        self.flags() & field::FLAG_R != 0
    }

    /// K: Key Present.
    pub fn key_present(&self) -> bool {
        self.flags() & field::FLAG_K != 0
    }

    /// S: Sequence Number Present.
    pub fn seq_present(&self) -> bool {
        self.flags() & field::FLAG_S != 0
    }

    /// s: Strict source route present.
    pub fn strict_source_route(&self) -> bool {
        self.flags() & field::FLAG_STRICT != 0
    }

    /// Recur: recursion control (3 bits).
    pub fn recursion_control(&self) -> u8 {
        ((self.flags() & field::RECUR_MASK) >> 8) as u8
    }

    /// A: Acknowledgment Number Present.
    pub fn ack_present(&self) -> bool {
        self.flags() & field::FLAG_A != 0
    }

    /// Flags (bits 9-12).
    pub fn reserved_flags(&self) -> u8 {
        ((self.flags() & field::FLAGS_MASK) >> 3) as u8
    }

    /// Ver (3 bits).
    pub fn version(&self) -> u8 {
        (self.flags() & field::VERSION_MASK) as u8
    }

    /// Protocol Type.
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Key (HW): Payload Length.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Key (LW): Call ID.
    pub fn call_id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CALL_ID)
    }

    /// Sequence Number, if S is set.
    pub fn seq_number(&self) -> Option<SeqNumber> {
        self.seq_present()
            .then(|| SeqNumber(be32_at(self.buffer.as_ref(), field::OPTIONAL)))
    }

    fn ack_offset(&self) -> usize {
        field::OPTIONAL + if self.seq_present() { 4 } else { 0 }
    }

    /// Acknowledgment Number, if A is set.
    pub fn ack_number(&self) -> Option<SeqNumber> {
        self.ack_present()
            .then(|| SeqNumber(be32_at(self.buffer.as_ref(), self.ack_offset())))
    }

    /// Length of the header the flags announce (8, 12 or 16 octets).
    pub fn header_len(&self) -> usize {
        HEADER_LEN_MIN
            + if self.seq_present() { 4 } else { 0 }
            + if self.ack_present() { 4 } else { 0 }
    }

    /// The payload: `payload_len()` octets after the header, clamped to the buffer. Octets
    /// after the payload (padding of the delivery layer) are not part of it.
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.payload_range())
            .unwrap_or_default()
    }

    /// Where [`payload`](Self::payload) lies in the buffer.
    fn payload_range(&self) -> core::ops::Range<usize> {
        let len = self.buffer.as_ref().len();
        let start = self.header_len().min(len);
        let end = (start + usize::from(self.payload_len())).min(len);
        start..end
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.buffer.as_mut().get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    /// Sets the flags and version word (this moves the optional fields: set it first).
    pub fn set_flags(&mut self, value: u16) {
        self.put(field::FLAGS.start, &value.to_be_bytes());
    }

    /// Sets Protocol Type.
    pub fn set_protocol(&mut self, value: u16) {
        self.put(field::PROTOCOL.start, &value.to_be_bytes());
    }

    /// Sets Key (HW): Payload Length.
    pub fn set_payload_len(&mut self, value: u16) {
        self.put(field::PAYLOAD_LEN.start, &value.to_be_bytes());
    }

    /// Sets Key (LW): Call ID.
    pub fn set_call_id(&mut self, value: u16) {
        self.put(field::CALL_ID.start, &value.to_be_bytes());
    }

    /// Sets the Sequence Number (only meaningful when S is set).
    pub fn set_seq_number(&mut self, value: SeqNumber) {
        self.put(field::OPTIONAL, &value.0.to_be_bytes());
    }

    /// Sets the Acknowledgment Number (only meaningful when A is set).
    pub fn set_ack_number(&mut self, value: SeqNumber) {
        let at = self.ack_offset();
        self.put(at, &value.0.to_be_bytes());
    }

    /// The payload, mutably (same bounds as [`payload`](GrePacket::payload)).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let len = usize::from(self.payload_len());
        let buf = self.buffer.as_mut();
        let start = start.min(buf.len());
        let end = (start + len).min(buf.len());
        buf.get_mut(start..end).unwrap_or_default()
    }
}

/// A validated enhanced GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GreRepr {
    /// Call ID from the key: the receiver's Call ID for this session.
    pub call_id: u16,
    /// Payload Length from the key.
    pub payload_len: u16,
    /// Sequence Number, present on data packets.
    pub seq: Option<SeqNumber>,
    /// Acknowledgment Number, present when the packet acknowledges received data.
    pub ack: Option<SeqNumber>,
}

impl GreRepr {
    /// Validates a packet (see the module documentation for the receive policy) and returns its
    /// header. The payload is `packet.payload()`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &GrePacket<&T>) -> Result<GreRepr, GreError> {
        packet.check_len()?;
        // RFC 2637 §4.1: "Ver (Bits 13-15) Must contain 1 (enhanced GRE)."
        if packet.version() != VERSION_ENHANCED {
            return Err(GreError::Version(packet.version()));
        }
        // RFC 2637 §4.1: "K (Bit 2) Key Present. Set to one (1)." The key carries the payload
        // length and Call ID; without it there is no session to deliver to.
        if !packet.key_present() {
            return Err(GreError::NoKey);
        }
        // RFC 2637 §4.1: "Protocol Type Set to hex 880B".
        if packet.protocol() != PROTOCOL_PPP {
            return Err(GreError::Protocol(packet.protocol()));
        }
        // RFC 2637 §4.1: C, R and s "Set to zero (0)"; RFC 2784 §2.3: "A receiver MUST discard
        // a packet where any of bits 1-5 are non-zero, unless that receiver implements RFC
        // 1701." We do not parse checksum or routing fields, so we discard.
        let layout = packet.flags() & (field::FLAG_C | field::FLAG_R | field::FLAG_STRICT);
        if layout != 0 {
            return Err(GreError::UnsupportedFlags(packet.flags()));
        }
        let payload_len = packet.payload_len();
        // RFC 2637 §4.1: "S (Bit 3) Sequence Number Present. Set to one (1) if a payload (data)
        // packet is present. Set to zero (0) if payload is not present (GRE packet is an
        // Acknowledgment only)."
        if !packet.seq_present() && payload_len != 0 {
            return Err(GreError::PayloadWithoutSequence(payload_len));
        }
        let available = packet
            .buffer
            .as_ref()
            .len()
            .saturating_sub(packet.header_len());
        if usize::from(payload_len) > available {
            return Err(GreError::PayloadTruncated {
                payload_len,
                available,
            });
        }
        Ok(GreRepr {
            call_id: packet.call_id(),
            payload_len,
            seq: packet.seq_number(),
            ack: packet.ack_number(),
        })
    }

    /// Parses a GRE packet from bytes: the header and exactly `payload_len` payload octets
    /// (octets after the payload are ignored, as padding of the delivery layer).
    pub fn parse_bytes(bytes: &[u8]) -> Result<(GreRepr, &[u8]), GreError> {
        let packet = GrePacket::new_checked(bytes)?;
        let repr = GreRepr::parse(&packet)?;
        Ok((repr, bytes.get(packet.payload_range()).unwrap_or_default()))
    }

    /// A data packet: sequence number, optional piggy-backed acknowledgment.
    pub fn data(call_id: u16, payload_len: u16, seq: SeqNumber, ack: Option<SeqNumber>) -> Self {
        GreRepr {
            call_id,
            payload_len,
            seq: Some(seq),
            ack,
        }
    }

    /// An acknowledgment-only packet (no payload, no sequence number).
    pub fn ack_only(call_id: u16, ack: SeqNumber) -> Self {
        GreRepr {
            call_id,
            payload_len: 0,
            seq: None,
            ack: Some(ack),
        }
    }

    /// The flags and version word this header is emitted with.
    pub fn flags(&self) -> u16 {
        let mut flags = field::FLAG_K | u16::from(VERSION_ENHANCED);
        if self.seq.is_some() {
            flags |= field::FLAG_S;
        }
        if self.ack.is_some() {
            flags |= field::FLAG_A;
        }
        flags
    }

    /// Header length in octets (8, 12 or 16).
    pub fn header_len(&self) -> usize {
        HEADER_LEN_MIN + 4 * usize::from(self.seq.is_some()) + 4 * usize::from(self.ack.is_some())
    }

    /// Header plus payload length in octets.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + usize::from(self.payload_len)
    }

    /// Appends the header to `buf` (the caller appends the `payload_len` payload octets).
    pub fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.flags());
        buf.put_u16(PROTOCOL_PPP);
        buf.put_u16(self.payload_len);
        buf.put_u16(self.call_id);
        if let Some(seq) = self.seq {
            buf.put_u32(seq.0);
        }
        if let Some(ack) = self.ack {
            buf.put_u32(ack.0);
        }
    }

    /// Writes the header into a packet buffer of at least [`header_len`](Self::header_len)
    /// octets (the payload, if any, goes to `packet.payload_mut()`).
    pub fn emit_packet<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut GrePacket<T>) {
        packet.set_flags(self.flags());
        packet.set_protocol(PROTOCOL_PPP);
        packet.set_payload_len(self.payload_len);
        packet.set_call_id(self.call_id);
        if let Some(seq) = self.seq {
            packet.set_seq_number(seq);
        }
        if let Some(ack) = self.ack {
            packet.set_ack_number(ack);
        }
    }

    /// Appends header and payload to `buf`. `payload.len()` must equal `payload_len`.
    pub fn emit_with_payload<B: BufMut>(&self, payload: &[u8], buf: &mut B) {
        debug_assert_eq!(payload.len(), usize::from(self.payload_len));
        self.emit(buf);
        buf.put_slice(payload);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // GRE packets captured between pptpd 1.4.0 (127.0.0.1) and pptp-linux 1.10 (127.0.0.4),
    // IP header stripped (pptp-linux-to-pptpd.pcapng). The payload is an LCP Configure-Request
    // or -Ack from the test pppd stand-in.

    /// Frame 208, pptpd to pptp-linux: first data packet, sequence 0, no ack.
    static GRE_SEQ_ONLY: [u8; 30] = [
        0x30, 0x01, 0x88, 0x0b, 0x00, 0x12, 0x6d, 0x2f, 0x00, 0x00, 0x00, 0x00, 0xff, 0x03, 0xc0,
        0x21, 0x01, 0x01, 0x00, 0x0e, 0x01, 0x04, 0x05, 0x78, 0x05, 0x06, 0xa1, 0xb2, 0xc3, 0xd4,
    ];

    /// Frame 210, pptp-linux to pptpd: sequence 2 with a piggy-backed ack of 1.
    static GRE_SEQ_ACK: [u8; 34] = [
        0x30, 0x81, 0x88, 0x0b, 0x00, 0x12, 0x07, 0x80, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x01, 0xff, 0x03, 0xc0, 0x21, 0x02, 0x01, 0x00, 0x0e, 0x01, 0x04, 0x05, 0x78, 0x05, 0x06,
        0xa1, 0xb2, 0xc3, 0xd4,
    ];

    /// Frame 211, pptpd to pptp-linux: acknowledgment only (ack 2, no sequence, no payload).
    static GRE_ACK_ONLY: [u8; 12] = [
        0x20, 0x81, 0x88, 0x0b, 0x00, 0x00, 0x6d, 0x2f, 0x00, 0x00, 0x00, 0x02,
    ];

    fn round_trip(bytes: &[u8]) -> (GreRepr, Vec<u8>) {
        let (repr, payload) = GreRepr::parse_bytes(bytes).unwrap();
        let mut out = Vec::new();
        repr.emit_with_payload(payload, &mut out);
        assert_eq!(out, bytes, "emit(parse(x)) == x");
        assert_eq!(repr.buffer_len(), bytes.len());
        (repr, payload.to_vec())
    }

    #[test]
    fn deconstruct_seq_only() {
        let p = GrePacket::new_checked(&GRE_SEQ_ONLY[..]).unwrap();
        assert!(!p.checksum_present());
        assert!(!p.routing_present());
        assert!(p.key_present());
        assert!(p.seq_present());
        assert!(!p.strict_source_route());
        assert_eq!(p.recursion_control(), 0);
        assert!(!p.ack_present());
        assert_eq!(p.reserved_flags(), 0);
        assert_eq!(p.version(), 1);
        assert_eq!(p.protocol(), PROTOCOL_PPP);
        assert_eq!(p.payload_len(), 18);
        assert_eq!(p.call_id(), 0x6d2f);
        assert_eq!(p.seq_number(), Some(SeqNumber(0)));
        assert_eq!(p.ack_number(), None);
        assert_eq!(p.header_len(), 12);
        assert_eq!(&p.payload()[..4], &[0xff, 0x03, 0xc0, 0x21]);
    }

    #[test]
    fn parse_captured_packets() {
        let (r, payload) = round_trip(&GRE_SEQ_ONLY);
        assert_eq!(r, GreRepr::data(0x6d2f, 18, SeqNumber(0), None));
        assert_eq!(payload.len(), 18);

        let (r, payload) = round_trip(&GRE_SEQ_ACK);
        assert_eq!(
            r,
            GreRepr::data(0x0780, 18, SeqNumber(2), Some(SeqNumber(1)))
        );
        assert_eq!(payload[4], 0x02, "LCP Configure-Ack");

        let (r, payload) = round_trip(&GRE_ACK_ONLY);
        assert_eq!(r, GreRepr::ack_only(0x6d2f, SeqNumber(2)));
        assert!(payload.is_empty());
    }

    #[test]
    fn construct_into_packet_buffer() {
        let repr = GreRepr::data(0x0780, 18, SeqNumber(2), Some(SeqNumber(1)));
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut p = GrePacket::new_unchecked(&mut buf[..]);
        repr.emit_packet(&mut p);
        p.payload_mut().copy_from_slice(&GRE_SEQ_ACK[16..]);
        assert_eq!(buf, GRE_SEQ_ACK);
    }

    #[test]
    fn rejects_non_pptp_gre() {
        // Version 0 (plain GRE).
        let mut b = GRE_SEQ_ONLY;
        b[1] = 0x00;
        assert_eq!(GreRepr::parse_bytes(&b), Err(GreError::Version(0)));
        // K clear.
        let mut b = GRE_SEQ_ONLY;
        b[0] = 0x10;
        assert_eq!(GreRepr::parse_bytes(&b), Err(GreError::NoKey));
        // Protocol 0x0800 (IPv4 over GRE).
        let mut b = GRE_SEQ_ONLY;
        b[2] = 0x08;
        b[3] = 0x00;
        assert_eq!(GreRepr::parse_bytes(&b), Err(GreError::Protocol(0x0800)));
        // C, R, s set.
        for bit in [0x80u8, 0x40, 0x08] {
            let mut b = GRE_SEQ_ONLY;
            b[0] |= bit;
            assert!(
                matches!(GreRepr::parse_bytes(&b), Err(GreError::UnsupportedFlags(_))),
                "{bit:#x}"
            );
        }
    }

    #[test]
    fn recur_and_flags_are_ignored_on_receipt() {
        let mut b = GRE_SEQ_ONLY;
        b[0] |= 0x07; // Recur = 7
        b[1] |= 0x78; // Flags = 0xf
        let (repr, _) = GreRepr::parse_bytes(&b).unwrap();
        assert_eq!(repr, GreRepr::data(0x6d2f, 18, SeqNumber(0), None));
        let mut out = Vec::new();
        repr.emit(&mut out);
        assert_eq!(&out[..2], &GRE_SEQ_ONLY[..2], "emitted as 0");
    }

    #[test]
    fn length_checks() {
        assert_eq!(
            GreRepr::parse_bytes(&GRE_SEQ_ACK[..5]),
            Err(GreError::Truncated { needed: 3 })
        );
        // Header announces seq and ack (16 octets) but only 14 are present.
        assert_eq!(
            GreRepr::parse_bytes(&GRE_SEQ_ACK[..14]),
            Err(GreError::Truncated { needed: 2 })
        );
        // Payload length 18 but only 17 octets present.
        assert_eq!(
            GreRepr::parse_bytes(&GRE_SEQ_ACK[..33]),
            Err(GreError::PayloadTruncated {
                payload_len: 18,
                available: 17
            })
        );
        // Extra octets after the payload are not part of it.
        let padded = [&GRE_SEQ_ONLY[..], &[0, 0]].concat();
        let (_, payload) = GreRepr::parse_bytes(&padded).unwrap();
        assert_eq!(payload, &GRE_SEQ_ONLY[12..]);
        // Ack-only packet that claims a payload.
        let mut b = GRE_ACK_ONLY;
        b[5] = 1;
        let b = [&b[..], &[0]].concat();
        assert_eq!(
            GreRepr::parse_bytes(&b),
            Err(GreError::PayloadWithoutSequence(1))
        );
    }

    #[test]
    fn unchecked_accessors_never_panic() {
        let p = GrePacket::new_unchecked(&[0x30u8, 0x81][..]);
        assert_eq!(p.protocol(), 0);
        assert_eq!(p.seq_number(), Some(SeqNumber(0)));
        assert_eq!(p.ack_number(), Some(SeqNumber(0)));
        assert!(p.payload().is_empty());
        let mut short = [0x30u8, 0x81, 0, 0];
        let mut p = GrePacket::new_unchecked(&mut short[..]);
        p.set_ack_number(SeqNumber(5));
        p.set_payload_len(100);
        assert!(p.payload_mut().is_empty());
    }

    #[test]
    fn seq_numbers_wrap() {
        let a = SeqNumber(u32::MAX);
        let b = a.next();
        assert_eq!(b, SeqNumber(0));
        assert!(b.is_after(a));
        assert!(a.is_before(b));
        assert_eq!(b.distance(a), 1);
        assert_eq!(a.distance(b), -1);
        assert!(!a.is_after(a));
        assert_eq!(SeqNumber(5).wrapping_add(10), SeqNumber(15));
        assert_eq!(SeqNumber(10).distance(SeqNumber(0xffff_fff0)), 26);
        // Half the space away: neither side is "after" by a positive distance below 2^31.
        assert_eq!(SeqNumber(0x8000_0000).distance(SeqNumber(0)), i32::MIN);
        assert!(!SeqNumber(0x8000_0000).is_after(SeqNumber(0)));
    }

    fn repr_strategy() -> impl Strategy<Value = GreRepr> {
        (
            any::<u16>(),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
            0u16..600,
        )
            .prop_map(|(call_id, seq, ack, len)| GreRepr {
                call_id,
                payload_len: if seq.is_some() { len } else { 0 },
                seq: seq.map(SeqNumber),
                ack: ack.map(SeqNumber),
            })
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(repr in repr_strategy(), fill in any::<u8>()) {
            let payload = vec![fill; usize::from(repr.payload_len)];
            let mut buf = Vec::new();
            repr.emit_with_payload(&payload, &mut buf);
            prop_assert_eq!(buf.len(), repr.buffer_len());
            let (parsed, p) = GreRepr::parse_bytes(&buf).unwrap();
            prop_assert_eq!(parsed, repr);
            prop_assert_eq!(p, &payload[..]);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = GreRepr::parse_bytes(&bytes);
        }

        #[test]
        fn distance_is_antisymmetric(a in any::<u32>(), d in 1u32..0x8000_0000) {
            let (a, b) = (SeqNumber(a), SeqNumber(a).wrapping_add(d));
            prop_assert!(b.is_after(a));
            prop_assert!(a.is_before(b));
            prop_assert_eq!(i64::from(b.distance(a)), i64::from(d));
        }
    }

    /// Seeded reproducer of the round-trip property: ack only, call ID 0, ack at the wrap.
    #[test]
    fn round_trip_reproducer() {
        let repr = GreRepr::ack_only(0, SeqNumber(u32::MAX));
        let mut buf = Vec::new();
        repr.emit(&mut buf);
        assert_eq!(GreRepr::parse_bytes(&buf), Ok((repr, &[][..])));
    }
}
