//! The code/identifier/length header shared by LCP, the NCPs, CCP, PAP and CHAP, and typed
//! LCP bodies.

use core::fmt::Debug;

use super::options::Options;
use super::{PppError, Protocol, Writer};
use crate::wire::{Reader, WireError};

/// A protocol's set of packet codes.
pub trait ControlCode: Copy + Debug + Eq + From<u8> + Into<u8> {
    /// Whether packets with this code carry a list of Configuration Options
    /// (Configure-Request/Ack/Nak/Reject in the option-negotiating protocols).
    fn carries_options(self) -> bool;
}

enum_with_unknown! {
    /// LCP codes (RFC 1661 section 5, RFC 1570 for 12 and 13).
    pub enum LcpCode(u8) {
        /// Configure-Request.
        ConfigureRequest = 1,
        /// Configure-Ack.
        ConfigureAck = 2,
        /// Configure-Nak.
        ConfigureNak = 3,
        /// Configure-Reject.
        ConfigureReject = 4,
        /// Terminate-Request.
        TerminateRequest = 5,
        /// Terminate-Ack.
        TerminateAck = 6,
        /// Code-Reject.
        CodeReject = 7,
        /// Protocol-Reject.
        ProtocolReject = 8,
        /// Echo-Request.
        EchoRequest = 9,
        /// Echo-Reply.
        EchoReply = 10,
        /// Discard-Request.
        DiscardRequest = 11,
        /// Identification (RFC 1570).
        Identification = 12,
        /// Time-Remaining (RFC 1570).
        TimeRemaining = 13,
    }
}

enum_with_unknown! {
    /// Codes of the Network Control Protocols that use only codes 1 to 7 (IPCP per RFC 1332
    /// section 2, IPV6CP per RFC 5072).
    pub enum NcpCode(u8) {
        /// Configure-Request.
        ConfigureRequest = 1,
        /// Configure-Ack.
        ConfigureAck = 2,
        /// Configure-Nak.
        ConfigureNak = 3,
        /// Configure-Reject.
        ConfigureReject = 4,
        /// Terminate-Request.
        TerminateRequest = 5,
        /// Terminate-Ack.
        TerminateAck = 6,
        /// Code-Reject.
        CodeReject = 7,
    }
}

enum_with_unknown! {
    /// CCP codes (RFC 1962 section 2: codes 1 to 7 plus Reset-Request and Reset-Ack).
    pub enum CcpCode(u8) {
        /// Configure-Request.
        ConfigureRequest = 1,
        /// Configure-Ack.
        ConfigureAck = 2,
        /// Configure-Nak.
        ConfigureNak = 3,
        /// Configure-Reject.
        ConfigureReject = 4,
        /// Terminate-Request.
        TerminateRequest = 5,
        /// Terminate-Ack.
        TerminateAck = 6,
        /// Code-Reject.
        CodeReject = 7,
        /// Reset-Request.
        ResetRequest = 14,
        /// Reset-Ack.
        ResetAck = 15,
    }
}

enum_with_unknown! {
    /// PAP codes (RFC 1334 section 2.2).
    pub enum PapCode(u8) {
        /// Authenticate-Request.
        AuthenticateRequest = 1,
        /// Authenticate-Ack.
        AuthenticateAck = 2,
        /// Authenticate-Nak.
        AuthenticateNak = 3,
    }
}

enum_with_unknown! {
    /// CHAP codes (RFC 1994 section 4).
    pub enum ChapCode(u8) {
        /// Challenge.
        Challenge = 1,
        /// Response.
        Response = 2,
        /// Success.
        Success = 3,
        /// Failure.
        Failure = 4,
    }
}

impl ControlCode for LcpCode {
    fn carries_options(self) -> bool {
        matches!(u8::from(self), 1..=4)
    }
}

impl ControlCode for NcpCode {
    fn carries_options(self) -> bool {
        matches!(u8::from(self), 1..=4)
    }
}

impl ControlCode for CcpCode {
    fn carries_options(self) -> bool {
        matches!(u8::from(self), 1..=4)
    }
}

impl ControlCode for PapCode {
    fn carries_options(self) -> bool {
        false
    }
}

impl ControlCode for ChapCode {
    fn carries_options(self) -> bool {
        false
    }
}

impl ControlCode for u8 {
    /// A bare `u8` code has no protocol, so it never claims options.
    fn carries_options(self) -> bool {
        false
    }
}

/// Field offsets of the control packet header.
mod field {
    use core::ops::{Range, RangeFrom};
    pub(super) const CODE: usize = 0;
    pub(super) const IDENTIFIER: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const DATA: RangeFrom<usize> = 4..;
}

/// Size of the Code, Identifier and Length fields.
pub const HEADER_LEN: usize = 4;

/// A view of a control packet: `code(1) identifier(1) length(2) data(length - 4) [padding]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ControlPacket<T> {
    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Self {
        ControlPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, PppError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the header is present and the Length field fits the buffer.
    ///
    /// RFC 1661 section 5: "Octets outside the range of the Length field are treated as
    /// padding and are ignored on reception. When a packet is received with an invalid Length
    /// field, the packet is silently discarded without affecting the automaton."
    pub fn check_len(&self) -> Result<(), PppError> {
        let available = self.buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(PppError::Wire(WireError::Truncated {
                needed: HEADER_LEN - available,
            }));
        }
        let length = self.length();
        if usize::from(length) < HEADER_LEN || usize::from(length) > available {
            return Err(PppError::BadLength { length, available });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The Code field.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref().get(field::CODE).copied().unwrap_or(0)
    }

    /// The Identifier field.
    pub fn identifier(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::IDENTIFIER)
            .copied()
            .unwrap_or(0)
    }

    /// The Length field.
    pub fn length(&self) -> u16 {
        match self.buffer.as_ref().get(field::LENGTH) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }

    /// The Data field: the octets up to Length, without padding.
    pub fn data(&self) -> &[u8] {
        let end = usize::from(self.length());
        self.buffer
            .as_ref()
            .get(field::DATA.start..end)
            .unwrap_or_default()
    }

    /// The packet as Length says (header and data, without padding).
    pub fn packet(&self) -> &[u8] {
        let end = usize::from(self.length());
        self.buffer.as_ref().get(..end).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ControlPacket<T> {
    /// Sets the Code field.
    pub fn set_code(&mut self, code: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::CODE) {
            *b = code;
        }
    }

    /// Sets the Identifier field.
    pub fn set_identifier(&mut self, id: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::IDENTIFIER) {
            *b = id;
        }
    }

    /// Sets the Length field.
    pub fn set_length(&mut self, length: u16) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::LENGTH) {
            b.copy_from_slice(&length.to_be_bytes());
        }
    }

    /// The Data field, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        self.buffer
            .as_mut()
            .get_mut(field::DATA.start..end)
            .unwrap_or_default()
    }
}

/// A parsed control packet of a protocol whose codes are `C`.
///
/// For codes that carry options the Data field has been checked to be a well-formed option
/// list ("a bad option makes the whole Configure-* packet malformed"); use
/// [`ControlRepr::options`] to walk it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRepr<'a, C> {
    /// The Code field.
    pub code: C,
    /// The Identifier field.
    pub identifier: u8,
    /// The Data field (without padding).
    pub data: &'a [u8],
}

/// Largest Data field a 16-bit Length can describe.
const MAX_DATA: usize = u16::MAX as usize - HEADER_LEN;

impl<'a, C: ControlCode> ControlRepr<'a, C> {
    /// Parses a control packet (the Information field of a PPP frame). Padding after Length
    /// is ignored.
    pub fn parse(buf: &'a [u8]) -> Result<Self, PppError> {
        let packet = ControlPacket::new_checked(buf)?;
        let mut r = Reader::new(buf);
        r.take(HEADER_LEN)?;
        let data = r.take(usize::from(packet.length()) - HEADER_LEN)?;
        let code = C::from(packet.code());
        if code.carries_options() {
            Options::parse(data)?;
        }
        Ok(ControlRepr {
            code,
            identifier: packet.identifier(),
            data,
        })
    }

    /// The option list of a Configure-* packet.
    pub fn options(&self) -> Result<Options<'a>, PppError> {
        Options::parse(self.data)
    }

    /// Length of the emitted packet.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }

    /// Writes the packet to the start of `buf`; returns the number of octets written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, PppError> {
        emit_control(
            buf,
            self.code.into(),
            self.identifier,
            self.data.len(),
            |w| w.bytes(self.data),
        )
    }

    /// Emits the packet into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, PppError> {
        let mut out = vec![0u8; self.buffer_len()];
        let n = self.emit(&mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

/// Writes a header for `data_len` octets of data, then the data through `body`.
pub(crate) fn emit_control(
    buf: &mut [u8],
    code: u8,
    identifier: u8,
    data_len: usize,
    body: impl FnOnce(&mut Writer<'_>) -> Result<(), PppError>,
) -> Result<usize, PppError> {
    if data_len > MAX_DATA {
        return Err(PppError::TooLong {
            what: "control packet data",
            len: data_len,
            max: MAX_DATA,
        });
    }
    let total = HEADER_LEN + data_len;
    let length = u16::try_from(total).map_err(|_| PppError::TooLong {
        what: "control packet data",
        len: data_len,
        max: MAX_DATA,
    })?;
    let mut w = Writer::new(buf, total)?;
    w.u8(code)?;
    w.u8(identifier)?;
    w.u16(length)?;
    body(&mut w)?;
    if w.written() != total {
        return Err(PppError::BadField {
            what: "emitted data length",
        });
    }
    Ok(total)
}

/// The body of an LCP packet, typed by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcpMessage<'a> {
    /// Configure-Request with its options.
    ConfigureRequest(Options<'a>),
    /// Configure-Ack with the acknowledged options.
    ConfigureAck(Options<'a>),
    /// Configure-Nak with the options and the values wanted instead.
    ConfigureNak(Options<'a>),
    /// Configure-Reject with the rejected options, byte-exact.
    ConfigureReject(Options<'a>),
    /// Terminate-Request; the data is uninterpreted.
    TerminateRequest(&'a [u8]),
    /// Terminate-Ack; the data is uninterpreted.
    TerminateAck(&'a [u8]),
    /// Code-Reject, carrying the rejected packet (truncated to fit the MRU by the sender).
    CodeReject(&'a [u8]),
    /// Protocol-Reject.
    ProtocolReject {
        /// The protocol of the rejected frame.
        protocol: Protocol,
        /// The Information field of the rejected frame (possibly truncated).
        information: &'a [u8],
    },
    /// Echo-Request.
    EchoRequest {
        /// The sender's Magic-Number, or 0.
        magic: u32,
        /// Uninterpreted data.
        data: &'a [u8],
    },
    /// Echo-Reply.
    EchoReply {
        /// The sender's Magic-Number, or 0.
        magic: u32,
        /// Uninterpreted data (a copy of the request's).
        data: &'a [u8],
    },
    /// Discard-Request.
    DiscardRequest {
        /// The sender's Magic-Number, or 0.
        magic: u32,
        /// Uninterpreted data.
        data: &'a [u8],
    },
    /// Identification (RFC 1570 section 2.1).
    Identification {
        /// The sender's Magic-Number, or 0.
        magic: u32,
        /// Human-readable text.
        message: &'a [u8],
    },
    /// Time-Remaining (RFC 1570 section 2.2).
    TimeRemaining {
        /// The sender's Magic-Number, or 0.
        magic: u32,
        /// Seconds left in this session.
        seconds: u32,
        /// Human-readable text.
        message: &'a [u8],
    },
    /// A code this crate does not know: answer with Code-Reject.
    Unknown {
        /// The code as received.
        code: u8,
        /// The Data field.
        data: &'a [u8],
    },
}

impl<'a> LcpMessage<'a> {
    /// The code of this message.
    pub fn code(&self) -> LcpCode {
        match self {
            LcpMessage::ConfigureRequest(_) => LcpCode::ConfigureRequest,
            LcpMessage::ConfigureAck(_) => LcpCode::ConfigureAck,
            LcpMessage::ConfigureNak(_) => LcpCode::ConfigureNak,
            LcpMessage::ConfigureReject(_) => LcpCode::ConfigureReject,
            LcpMessage::TerminateRequest(_) => LcpCode::TerminateRequest,
            LcpMessage::TerminateAck(_) => LcpCode::TerminateAck,
            LcpMessage::CodeReject(_) => LcpCode::CodeReject,
            LcpMessage::ProtocolReject { .. } => LcpCode::ProtocolReject,
            LcpMessage::EchoRequest { .. } => LcpCode::EchoRequest,
            LcpMessage::EchoReply { .. } => LcpCode::EchoReply,
            LcpMessage::DiscardRequest { .. } => LcpCode::DiscardRequest,
            LcpMessage::Identification { .. } => LcpCode::Identification,
            LcpMessage::TimeRemaining { .. } => LcpCode::TimeRemaining,
            LcpMessage::Unknown { code, .. } => LcpCode::from(*code),
        }
    }

    /// Decodes the Data field of an LCP packet by its code.
    pub fn parse_data(code: LcpCode, data: &'a [u8]) -> Result<Self, PppError> {
        let mut r = Reader::new(data);
        let msg = match code {
            LcpCode::ConfigureRequest => LcpMessage::ConfigureRequest(Options::parse(data)?),
            LcpCode::ConfigureAck => LcpMessage::ConfigureAck(Options::parse(data)?),
            LcpCode::ConfigureNak => LcpMessage::ConfigureNak(Options::parse(data)?),
            LcpCode::ConfigureReject => LcpMessage::ConfigureReject(Options::parse(data)?),
            LcpCode::TerminateRequest => LcpMessage::TerminateRequest(data),
            LcpCode::TerminateAck => LcpMessage::TerminateAck(data),
            LcpCode::CodeReject => LcpMessage::CodeReject(data),
            LcpCode::ProtocolReject => LcpMessage::ProtocolReject {
                protocol: Protocol::from(r.u16()?),
                information: r.rest(),
            },
            LcpCode::EchoRequest => LcpMessage::EchoRequest {
                magic: r.u32()?,
                data: r.rest(),
            },
            LcpCode::EchoReply => LcpMessage::EchoReply {
                magic: r.u32()?,
                data: r.rest(),
            },
            LcpCode::DiscardRequest => LcpMessage::DiscardRequest {
                magic: r.u32()?,
                data: r.rest(),
            },
            LcpCode::Identification => LcpMessage::Identification {
                magic: r.u32()?,
                message: r.rest(),
            },
            LcpCode::TimeRemaining => LcpMessage::TimeRemaining {
                magic: r.u32()?,
                seconds: r.u32()?,
                message: r.rest(),
            },
            LcpCode::Unknown(code) => LcpMessage::Unknown { code, data },
        };
        Ok(msg)
    }

    /// Length of the Data field this message emits.
    pub fn data_len(&self) -> usize {
        match self {
            LcpMessage::ConfigureRequest(o)
            | LcpMessage::ConfigureAck(o)
            | LcpMessage::ConfigureNak(o)
            | LcpMessage::ConfigureReject(o) => o.as_bytes().len(),
            LcpMessage::TerminateRequest(d)
            | LcpMessage::TerminateAck(d)
            | LcpMessage::CodeReject(d)
            | LcpMessage::Unknown { data: d, .. } => d.len(),
            LcpMessage::ProtocolReject { information, .. } => 2 + information.len(),
            LcpMessage::EchoRequest { data, .. }
            | LcpMessage::EchoReply { data, .. }
            | LcpMessage::DiscardRequest { data, .. } => 4 + data.len(),
            LcpMessage::Identification { message, .. } => 4 + message.len(),
            LcpMessage::TimeRemaining { message, .. } => 8 + message.len(),
        }
    }

    fn emit_data(&self, w: &mut Writer<'_>) -> Result<(), PppError> {
        match self {
            LcpMessage::ConfigureRequest(o)
            | LcpMessage::ConfigureAck(o)
            | LcpMessage::ConfigureNak(o)
            | LcpMessage::ConfigureReject(o) => w.bytes(o.as_bytes()),
            LcpMessage::TerminateRequest(d)
            | LcpMessage::TerminateAck(d)
            | LcpMessage::CodeReject(d)
            | LcpMessage::Unknown { data: d, .. } => w.bytes(d),
            LcpMessage::ProtocolReject {
                protocol,
                information,
            } => {
                w.u16((*protocol).into())?;
                w.bytes(information)
            }
            LcpMessage::EchoRequest { magic, data }
            | LcpMessage::EchoReply { magic, data }
            | LcpMessage::DiscardRequest { magic, data }
            | LcpMessage::Identification {
                magic,
                message: data,
            } => {
                w.u32(*magic)?;
                w.bytes(data)
            }
            LcpMessage::TimeRemaining {
                magic,
                seconds,
                message,
            } => {
                w.u32(*magic)?;
                w.u32(*seconds)?;
                w.bytes(message)
            }
        }
    }
}

/// A parsed LCP packet: identifier and typed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LcpRepr<'a> {
    /// The Identifier field.
    pub identifier: u8,
    /// The typed body.
    pub message: LcpMessage<'a>,
}

impl<'a> LcpRepr<'a> {
    /// Parses an LCP packet (the Information field of a frame with protocol c021).
    pub fn parse(buf: &'a [u8]) -> Result<Self, PppError> {
        let ctrl = ControlRepr::<LcpCode>::parse(buf)?;
        Self::from_control(&ctrl)
    }

    /// Types an already-parsed control packet.
    pub fn from_control(ctrl: &ControlRepr<'a, LcpCode>) -> Result<Self, PppError> {
        Ok(LcpRepr {
            identifier: ctrl.identifier,
            message: LcpMessage::parse_data(ctrl.code, ctrl.data)?,
        })
    }

    /// Length of the emitted packet.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.message.data_len()
    }

    /// Writes the packet to the start of `buf`; returns the number of octets written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, PppError> {
        emit_control(
            buf,
            self.message.code().into(),
            self.identifier,
            self.message.data_len(),
            |w| self.message.emit_data(w),
        )
    }

    /// Emits the packet into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, PppError> {
        let mut out = vec![0u8; self.buffer_len()];
        let n = self.emit(&mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

#[cfg(test)]
mod test {
    use super::super::options::{LcpOption, RawOption};
    use super::*;
    use proptest::prelude::*;

    /// LCP Configure-Request id 1: MRU 1400, Magic-Number a1b2c3d4 (pptp-linux-to-pptpd.pcapng,
    /// frame 13, the payload of the PPP frame in GRE).
    static CONF_REQ: [u8; 14] = [
        0x01, 0x01, 0x00, 0x0e, 0x01, 0x04, 0x05, 0x78, 0x05, 0x06, 0xa1, 0xb2, 0xc3, 0xd4,
    ];
    /// LCP Configure-Ack id 7 of the peer's MRU 1400 / magic 55667788 (same capture, frame 17).
    static CONF_ACK: [u8; 14] = [
        0x02, 0x07, 0x00, 0x0e, 0x01, 0x04, 0x05, 0x78, 0x05, 0x06, 0x55, 0x66, 0x77, 0x88,
    ];
    /// Configure-Nak id 2 asking for MRU 1500 instead.
    static CONF_NAK: [u8; 8] = [0x03, 0x02, 0x00, 0x08, 0x01, 0x04, 0x05, 0xdc];
    /// Configure-Reject id 3 of an unknown option type 0x42 with two data octets and of the
    /// Callback option, byte-exact.
    static CONF_REJ: [u8; 11] = [
        0x04, 0x03, 0x00, 0x0b, 0x42, 0x04, 0xde, 0xad, 0x0d, 0x03, 0x06,
    ];
    /// Echo-Request id 9, magic 0x01020304, data "hi", plus two octets of padding.
    static ECHO_REQ: [u8; 12] = [
        0x09, 0x09, 0x00, 0x0a, 0x01, 0x02, 0x03, 0x04, b'h', b'i', 0x00, 0x00,
    ];
    /// Terminate-Request id 5 with text "bye".
    static TERM_REQ: [u8; 7] = [0x05, 0x05, 0x00, 0x07, b'b', b'y', b'e'];
    /// Code-Reject id 6 of a packet with unknown code 0x20.
    static CODE_REJ: [u8; 8] = [0x07, 0x06, 0x00, 0x08, 0x20, 0x01, 0x00, 0x04];
    /// Protocol-Reject id 8 of an IPv6 frame (0057) with 3 octets of its information.
    static PROTO_REJ: [u8; 9] = [0x08, 0x08, 0x00, 0x09, 0x00, 0x57, 0x60, 0x00, 0x00];

    #[test]
    fn test_deconstruct() {
        let p = ControlPacket::new_checked(&ECHO_REQ[..]).unwrap();
        assert_eq!(p.code(), 9);
        assert_eq!(p.identifier(), 9);
        assert_eq!(p.length(), 10);
        assert_eq!(p.data(), &[1, 2, 3, 4, b'h', b'i']);
        assert_eq!(p.packet(), &ECHO_REQ[..10]);
    }

    #[test]
    fn test_construct() {
        let mut buf = [0u8; 8];
        let mut p = ControlPacket::new_unchecked(&mut buf[..]);
        p.set_code(7);
        p.set_identifier(6);
        p.set_length(8);
        p.data_mut().copy_from_slice(&[0x20, 0x01, 0x00, 0x04]);
        assert_eq!(buf, CODE_REJ);
    }

    #[test]
    fn test_parse() {
        let ctrl = ControlRepr::<LcpCode>::parse(&CONF_REQ).unwrap();
        assert_eq!(ctrl.code, LcpCode::ConfigureRequest);
        assert_eq!(ctrl.identifier, 1);
        let opts: Vec<_> = ctrl
            .options()
            .unwrap()
            .iter()
            .map(|o| LcpOption::parse(o).unwrap())
            .collect();
        assert_eq!(
            opts,
            [LcpOption::Mru(1400), LcpOption::MagicNumber(0xa1b2c3d4)]
        );

        let ack = LcpRepr::parse(&CONF_ACK).unwrap();
        assert_eq!(ack.identifier, 7);
        let LcpMessage::ConfigureAck(o) = ack.message else {
            panic!("{ack:?}")
        };
        assert_eq!(
            o.iter()
                .map(|o| LcpOption::parse(o).unwrap())
                .collect::<Vec<_>>(),
            [LcpOption::Mru(1400), LcpOption::MagicNumber(0x55667788)]
        );

        let nak = LcpRepr::parse(&CONF_NAK).unwrap();
        let LcpMessage::ConfigureNak(o) = nak.message else {
            panic!()
        };
        assert_eq!(
            LcpOption::parse(o.iter().next().unwrap()),
            Ok(LcpOption::Mru(1500))
        );

        let rej = LcpRepr::parse(&CONF_REJ).unwrap();
        let LcpMessage::ConfigureReject(o) = rej.message else {
            panic!()
        };
        let raw: Vec<_> = o.iter().collect();
        assert_eq!(
            raw,
            [
                RawOption {
                    kind: 0x42,
                    data: &[0xde, 0xad]
                },
                RawOption {
                    kind: 13,
                    data: &[6]
                }
            ]
        );
        assert_eq!(
            LcpOption::parse(raw[0]),
            Ok(LcpOption::Unknown {
                kind: 0x42,
                data: &[0xde, 0xad]
            })
        );

        let echo = LcpRepr::parse(&ECHO_REQ).unwrap();
        assert_eq!(
            echo.message,
            LcpMessage::EchoRequest {
                magic: 0x01020304,
                data: b"hi"
            }
        );
        assert_eq!(
            LcpRepr::parse(&TERM_REQ).unwrap().message,
            LcpMessage::TerminateRequest(b"bye")
        );
        assert_eq!(
            LcpRepr::parse(&CODE_REJ).unwrap().message,
            LcpMessage::CodeReject(&[0x20, 0x01, 0x00, 0x04])
        );
        assert_eq!(
            LcpRepr::parse(&PROTO_REJ).unwrap().message,
            LcpMessage::ProtocolReject {
                protocol: Protocol::Ipv6,
                information: &[0x60, 0, 0]
            }
        );
        assert_eq!(
            LcpRepr::parse(&[0x0d, 1, 0, 14, 0, 0, 0, 0, 0, 0, 0x0e, 0x10, b'o', b'k'])
                .unwrap()
                .message,
            LcpMessage::TimeRemaining {
                magic: 0,
                seconds: 3600,
                message: b"ok"
            }
        );
        assert_eq!(
            LcpRepr::parse(&[0x63, 1, 0, 5, 7]).unwrap().message,
            LcpMessage::Unknown {
                code: 0x63,
                data: &[7]
            }
        );
    }

    #[test]
    fn test_emit() {
        for bytes in [
            &CONF_REQ[..],
            &CONF_ACK,
            &CONF_NAK,
            &CONF_REJ,
            &ECHO_REQ[..10],
            &TERM_REQ,
            &CODE_REJ,
            &PROTO_REJ,
        ] {
            let repr = LcpRepr::parse(bytes).unwrap();
            assert_eq!(repr.buffer_len(), bytes.len());
            assert_eq!(repr.to_vec().unwrap(), bytes);
            let ctrl = ControlRepr::<LcpCode>::parse(bytes).unwrap();
            assert_eq!(ctrl.to_vec().unwrap(), bytes);
        }
        let reply = LcpRepr {
            identifier: 9,
            message: LcpMessage::EchoReply {
                magic: 0x55667788,
                data: b"hi",
            },
        };
        assert_eq!(
            reply.to_vec().unwrap(),
            [0x0a, 0x09, 0x00, 0x0a, 0x55, 0x66, 0x77, 0x88, b'h', b'i']
        );
    }

    #[test]
    fn malformed_lengths() {
        // Length below the header.
        assert_eq!(
            ControlRepr::<LcpCode>::parse(&[1, 1, 0, 3]),
            Err(PppError::BadLength {
                length: 3,
                available: 4
            })
        );
        // Length beyond the octets.
        assert_eq!(
            ControlRepr::<LcpCode>::parse(&[9, 1, 0, 9, 0, 0, 0, 0]),
            Err(PppError::BadLength {
                length: 9,
                available: 8
            })
        );
        // Short header.
        assert!(ControlRepr::<u8>::parse(&[9, 1, 0]).is_err());
        // Echo-Request without a magic number.
        assert!(LcpRepr::parse(&[9, 1, 0, 6, 0, 0]).is_err());
        // Configure-Request with an option whose length runs past Length (padding does not
        // count): the option says 4, only 3 octets are inside Length.
        assert_eq!(
            ControlRepr::<LcpCode>::parse(&[1, 1, 0, 7, 1, 4, 5, 0xdc]),
            Err(PppError::BadOptionLength { kind: 1, length: 4 })
        );
        // Option length 1.
        assert!(ControlRepr::<NcpCode>::parse(&[1, 1, 0, 6, 3, 1]).is_err());
        // The same data under a code without options is fine.
        assert!(ControlRepr::<NcpCode>::parse(&[5, 1, 0, 6, 3, 1]).is_ok());
    }

    #[test]
    fn emit_limits() {
        let big = vec![0u8; MAX_DATA + 1];
        let repr = ControlRepr {
            code: LcpCode::TerminateAck,
            identifier: 0,
            data: &big,
        };
        assert!(matches!(repr.to_vec(), Err(PppError::TooLong { .. })));
        let mut small = [0u8; 5];
        assert!(matches!(
            LcpRepr::parse(&TERM_REQ).unwrap().emit(&mut small),
            Err(PppError::BufferTooSmall { .. })
        ));
    }

    fn any_code() -> impl Strategy<Value = LcpCode> {
        any::<u8>().prop_map(LcpCode::from)
    }

    fn options_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..8)),
            0..5,
        )
        .prop_map(|opts| {
            let mut out = Vec::new();
            for (kind, data) in opts {
                out.push(kind);
                out.push(u8::try_from(data.len() + 2).unwrap());
                out.extend_from_slice(&data);
            }
            out
        })
    }

    proptest! {
        #[test]
        fn control_roundtrip(
            code in any_code(),
            identifier in any::<u8>(),
            opts in options_bytes(),
            other in proptest::collection::vec(any::<u8>(), 0..32),
            padding in proptest::collection::vec(any::<u8>(), 0..4),
        ) {
            let data = if code.carries_options() { opts } else { other };
            let repr = ControlRepr { code, identifier, data: &data };
            let mut bytes = repr.to_vec().unwrap();
            prop_assert_eq!(bytes.len(), repr.buffer_len());
            prop_assert_eq!(ControlRepr::<LcpCode>::parse(&bytes).unwrap(), repr);
            bytes.extend_from_slice(&padding);
            prop_assert_eq!(ControlRepr::<LcpCode>::parse(&bytes).unwrap(), repr);
        }

        #[test]
        fn lcp_message_roundtrip(
            code in any_code(),
            identifier in any::<u8>(),
            opts in options_bytes(),
            other in proptest::collection::vec(any::<u8>(), 8..32),
        ) {
            let data = if code.carries_options() { opts } else { other };
            let Ok(message) = LcpMessage::parse_data(code, &data) else {
                return Err(TestCaseError::fail("8+ data octets always parse"));
            };
            let repr = LcpRepr { identifier, message };
            let bytes = repr.to_vec().unwrap();
            prop_assert_eq!(&bytes[4..], &data[..]);
            prop_assert_eq!(LcpRepr::parse(&bytes).unwrap(), repr);
        }

        #[test]
        fn control_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            let _ = LcpRepr::parse(&bytes);
            let _ = ControlRepr::<CcpCode>::parse(&bytes);
        }
    }
}
