//! Configuration Options: the TLV list of Configure-* packets, typed LCP, IPCP and CCP option
//! values, and a builder for Configure-* packets.

use std::net::Ipv4Addr;

use super::control::{emit_control, ControlCode, ControlRepr, HEADER_LEN};
use super::{len_u8, Compression, FrameRepr, PppError, Protocol, Writer};
use crate::wire::Reader;

/// Size of an option's Type and Length fields.
const OPTION_HEADER_LEN: usize = 2;
/// Largest option value an 8-bit Length can describe.
const MAX_VALUE: usize = u8::MAX as usize - OPTION_HEADER_LEN;

/// One option as it appears on the wire: type and value, the value borrowed.
///
/// Emitting a `RawOption` reproduces the received octets exactly, which is what a
/// Configure-Reject needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    /// The Type field.
    pub kind: u8,
    /// The Data field (Length minus 2 octets).
    pub data: &'a [u8],
}

/// A well-formed list of Configuration Options (the Data field of a Configure-* packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    bytes: &'a [u8],
}

impl<'a> Options<'a> {
    /// Checks every option's Type/Length framing.
    ///
    /// RFC 1661 section 6: "Length: The Length field is one octet, and indicates the length of
    /// this Configuration Option including the Type, Length and Data fields." An option with a
    /// Length below 2, or one that runs past the end of the packet, cannot be framed, so the
    /// whole packet is malformed (and, per section 5, "silently discarded").
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PppError> {
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            next_option(&mut r)?;
        }
        Ok(Options { bytes })
    }

    /// The raw octets of the list.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Iterates over the options in order.
    pub fn iter(&self) -> OptionIter<'a> {
        OptionIter {
            reader: Reader::new(self.bytes),
        }
    }
}

impl<'a> IntoIterator for Options<'a> {
    type Item = RawOption<'a>;
    type IntoIter = OptionIter<'a>;
    fn into_iter(self) -> OptionIter<'a> {
        self.iter()
    }
}

fn next_option<'a>(r: &mut Reader<'a>) -> Result<RawOption<'a>, PppError> {
    let kind = r.u8()?;
    let length = r.u8()?;
    let bad = PppError::BadOptionLength { kind, length };
    let value_len = usize::from(length)
        .checked_sub(OPTION_HEADER_LEN)
        .ok_or(bad)?;
    let data = r.take(value_len).map_err(|_| bad)?;
    Ok(RawOption { kind, data })
}

/// Iterator over a validated [`Options`] list.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = RawOption<'a>;
    fn next(&mut self) -> Option<RawOption<'a>> {
        if self.reader.is_empty() {
            return None;
        }
        // The list was validated by `Options::parse`; an error cannot happen, but if it did
        // the iteration simply ends.
        next_option(&mut self.reader).ok()
    }
}

/// An option that can be written into a Configure-* packet.
pub trait EmitOption {
    /// The Type field.
    fn kind_u8(&self) -> u8;
    /// Length of the emitted option (Type, Length and Data).
    fn buffer_len(&self) -> usize;
    /// Writes the option to the start of `buf`; returns the number of octets written.
    fn emit(&self, buf: &mut [u8]) -> Result<usize, PppError>;
    /// Emits the option into a new vector.
    fn to_vec(&self) -> Result<Vec<u8>, PppError> {
        let mut out = vec![0u8; self.buffer_len()];
        let n = self.emit(&mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

/// The value layouts of the typed options, for one shared emitter.
#[derive(Clone, Copy)]
enum Value<'a> {
    Empty,
    U8(u8),
    U16(u16),
    U32(u32),
    Bytes(&'a [u8]),
    U8Bytes(u8, &'a [u8]),
    U16Bytes(u16, &'a [u8]),
    U16U8(u16, u8),
    U8U8(u8, u8),
    U32U32(u32, u32),
}

impl Value<'_> {
    fn len(&self) -> usize {
        match self {
            Value::Empty => 0,
            Value::U8(_) => 1,
            Value::U16(_) | Value::U8U8(..) => 2,
            Value::U16U8(..) => 3,
            Value::U32(_) => 4,
            Value::U32U32(..) => 8,
            Value::Bytes(b) => b.len(),
            Value::U8Bytes(_, b) => 1 + b.len(),
            Value::U16Bytes(_, b) => 2 + b.len(),
        }
    }

    fn emit(&self, kind: u8, buf: &mut [u8]) -> Result<usize, PppError> {
        let len = self.len();
        if len > MAX_VALUE {
            return Err(PppError::TooLong {
                what: "option value",
                len,
                max: MAX_VALUE,
            });
        }
        let total = OPTION_HEADER_LEN + len;
        let mut w = Writer::new(buf, total)?;
        w.u8(kind)?;
        w.u8(len_u8("option", total)?)?;
        match *self {
            Value::Empty => {}
            Value::U8(v) => w.u8(v)?,
            Value::U16(v) => w.u16(v)?,
            Value::U32(v) => w.u32(v)?,
            Value::Bytes(b) => w.bytes(b)?,
            Value::U8Bytes(a, b) => {
                w.u8(a)?;
                w.bytes(b)?;
            }
            Value::U16Bytes(a, b) => {
                w.u16(a)?;
                w.bytes(b)?;
            }
            Value::U16U8(a, b) => {
                w.u16(a)?;
                w.u8(b)?;
            }
            Value::U8U8(a, b) => {
                w.u8(a)?;
                w.u8(b)?;
            }
            Value::U32U32(a, b) => {
                w.u32(a)?;
                w.u32(b)?;
            }
        }
        Ok(w.written())
    }
}

impl EmitOption for RawOption<'_> {
    fn kind_u8(&self) -> u8 {
        self.kind
    }
    fn buffer_len(&self) -> usize {
        OPTION_HEADER_LEN + self.data.len()
    }
    fn emit(&self, buf: &mut [u8]) -> Result<usize, PppError> {
        Value::Bytes(self.data).emit(self.kind, buf)
    }
}

/// A reader over one option's value that maps any size mismatch to `BadOptionValue`.
struct ValueReader<'a> {
    kind: u8,
    data: &'a [u8],
    reader: Reader<'a>,
}

impl<'a> ValueReader<'a> {
    fn new(raw: RawOption<'a>) -> Self {
        ValueReader {
            kind: raw.kind,
            data: raw.data,
            reader: Reader::new(raw.data),
        }
    }
    fn err(&self) -> PppError {
        PppError::BadOptionValue {
            kind: self.kind,
            len: self.data.len(),
        }
    }
    fn u8(&mut self) -> Result<u8, PppError> {
        self.reader.u8().map_err(|_| self.err())
    }
    fn u16(&mut self) -> Result<u16, PppError> {
        self.reader.u16().map_err(|_| self.err())
    }
    fn u32(&mut self) -> Result<u32, PppError> {
        self.reader.u32().map_err(|_| self.err())
    }
    fn ipv4(&mut self) -> Result<Ipv4Addr, PppError> {
        self.u32().map(Ipv4Addr::from)
    }
    fn rest(&mut self) -> &'a [u8] {
        self.reader.rest()
    }
    /// Ends a fixed-size value: trailing octets are a size mismatch.
    fn finish<T>(self, value: T) -> Result<T, PppError> {
        let err = self.err();
        self.reader.finish().map_err(|_| err)?;
        Ok(value)
    }
}

macro_rules! impl_emit_option {
    ($ty:ident) => {
        impl EmitOption for $ty<'_> {
            fn kind_u8(&self) -> u8 {
                self.kind().into()
            }
            fn buffer_len(&self) -> usize {
                OPTION_HEADER_LEN + self.value().len()
            }
            fn emit(&self, buf: &mut [u8]) -> Result<usize, PppError> {
                self.value().emit(self.kind_u8(), buf)
            }
        }
    };
}

enum_with_unknown! {
    /// LCP Configuration Option types (RFC 1661 section 6, RFC 1662, RFC 1570, RFC 1990).
    pub enum LcpOptionType(u8) {
        /// Maximum-Receive-Unit.
        Mru = 1,
        /// Async-Control-Character-Map (RFC 1662 section 7.1).
        Accm = 2,
        /// Authentication-Protocol.
        AuthProtocol = 3,
        /// Quality-Protocol.
        QualityProtocol = 4,
        /// Magic-Number.
        MagicNumber = 5,
        /// Protocol-Field-Compression.
        ProtocolFieldCompression = 7,
        /// Address-and-Control-Field-Compression.
        AddressControlFieldCompression = 8,
        /// FCS-Alternatives (RFC 1570).
        FcsAlternatives = 9,
        /// Self-Describing-Padding (RFC 1570).
        SelfDescribingPadding = 10,
        /// Callback (RFC 1570).
        Callback = 13,
        /// Multilink Maximum-Received-Reconstructed-Unit (RFC 1990).
        Mrru = 17,
        /// Multilink Short-Sequence-Number-Header-Format (RFC 1990).
        ShortSequenceNumber = 18,
        /// Multilink Endpoint-Discriminator (RFC 1990).
        EndpointDiscriminator = 19,
    }
}

/// A typed LCP Configuration Option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcpOption<'a> {
    /// Maximum-Receive-Unit in octets.
    Mru(u16),
    /// Async-Control-Character-Map: bit n set means control character n is escaped.
    Accm(u32),
    /// Authentication-Protocol: the protocol (PAP c023, CHAP c223) and its data (for CHAP,
    /// the algorithm octet; see [`ChapAlgorithm`](super::ChapAlgorithm)).
    AuthProtocol {
        /// The authentication protocol.
        protocol: Protocol,
        /// Protocol-specific data.
        data: &'a [u8],
    },
    /// Quality-Protocol: the protocol (LQR c025) and its data (for LQR the reporting period).
    QualityProtocol {
        /// The quality protocol.
        protocol: Protocol,
        /// Protocol-specific data.
        data: &'a [u8],
    },
    /// Magic-Number.
    MagicNumber(u32),
    /// Protocol-Field-Compression.
    ProtocolFieldCompression,
    /// Address-and-Control-Field-Compression.
    AddressControlFieldCompression,
    /// FCS-Alternatives bit set (1 null FCS, 2 CCITT 16-bit, 4 CCITT 32-bit).
    FcsAlternatives(u8),
    /// Self-Describing-Padding: the maximum pad value.
    SelfDescribingPadding(u8),
    /// Callback: operation and message.
    Callback {
        /// The Operation field (0 location by user authentication ... 6 E.165 number).
        operation: u8,
        /// The Message field.
        message: &'a [u8],
    },
    /// Multilink MRRU.
    Mrru(u16),
    /// Multilink short sequence numbers.
    ShortSequenceNumber,
    /// Multilink Endpoint-Discriminator.
    EndpointDiscriminator {
        /// The Class field.
        class: u8,
        /// The Address field.
        address: &'a [u8],
    },
    /// An option type this crate does not decode, kept byte-exact for Configure-Reject.
    Unknown {
        /// The Type field.
        kind: u8,
        /// The Data field.
        data: &'a [u8],
    },
}

impl<'a> LcpOption<'a> {
    /// Decodes an option. A known type with a value of the wrong size is
    /// [`PppError::BadOptionValue`]; RFC 1661 section 6: "If a negotiable Configuration Option
    /// is received in a Configure-Request, but with an invalid or unrecognized Length, a
    /// Configure-Nak SHOULD be transmitted".
    pub fn parse(raw: RawOption<'a>) -> Result<Self, PppError> {
        let mut v = ValueReader::new(raw);
        let opt = match LcpOptionType::from(raw.kind) {
            LcpOptionType::Mru => {
                let x = v.u16()?;
                v.finish(LcpOption::Mru(x))?
            }
            LcpOptionType::Accm => {
                let x = v.u32()?;
                v.finish(LcpOption::Accm(x))?
            }
            LcpOptionType::AuthProtocol => LcpOption::AuthProtocol {
                protocol: Protocol::from(v.u16()?),
                data: v.rest(),
            },
            LcpOptionType::QualityProtocol => LcpOption::QualityProtocol {
                protocol: Protocol::from(v.u16()?),
                data: v.rest(),
            },
            LcpOptionType::MagicNumber => {
                let x = v.u32()?;
                v.finish(LcpOption::MagicNumber(x))?
            }
            LcpOptionType::ProtocolFieldCompression => {
                v.finish(LcpOption::ProtocolFieldCompression)?
            }
            LcpOptionType::AddressControlFieldCompression => {
                v.finish(LcpOption::AddressControlFieldCompression)?
            }
            LcpOptionType::FcsAlternatives => {
                let x = v.u8()?;
                v.finish(LcpOption::FcsAlternatives(x))?
            }
            LcpOptionType::SelfDescribingPadding => {
                let x = v.u8()?;
                v.finish(LcpOption::SelfDescribingPadding(x))?
            }
            LcpOptionType::Callback => LcpOption::Callback {
                operation: v.u8()?,
                message: v.rest(),
            },
            LcpOptionType::Mrru => {
                let x = v.u16()?;
                v.finish(LcpOption::Mrru(x))?
            }
            LcpOptionType::ShortSequenceNumber => v.finish(LcpOption::ShortSequenceNumber)?,
            LcpOptionType::EndpointDiscriminator => LcpOption::EndpointDiscriminator {
                class: v.u8()?,
                address: v.rest(),
            },
            LcpOptionType::Unknown(kind) => LcpOption::Unknown {
                kind,
                data: raw.data,
            },
        };
        Ok(opt)
    }

    /// The option type.
    pub fn kind(&self) -> LcpOptionType {
        match self {
            LcpOption::Mru(_) => LcpOptionType::Mru,
            LcpOption::Accm(_) => LcpOptionType::Accm,
            LcpOption::AuthProtocol { .. } => LcpOptionType::AuthProtocol,
            LcpOption::QualityProtocol { .. } => LcpOptionType::QualityProtocol,
            LcpOption::MagicNumber(_) => LcpOptionType::MagicNumber,
            LcpOption::ProtocolFieldCompression => LcpOptionType::ProtocolFieldCompression,
            LcpOption::AddressControlFieldCompression => {
                LcpOptionType::AddressControlFieldCompression
            }
            LcpOption::FcsAlternatives(_) => LcpOptionType::FcsAlternatives,
            LcpOption::SelfDescribingPadding(_) => LcpOptionType::SelfDescribingPadding,
            LcpOption::Callback { .. } => LcpOptionType::Callback,
            LcpOption::Mrru(_) => LcpOptionType::Mrru,
            LcpOption::ShortSequenceNumber => LcpOptionType::ShortSequenceNumber,
            LcpOption::EndpointDiscriminator { .. } => LcpOptionType::EndpointDiscriminator,
            LcpOption::Unknown { kind, .. } => LcpOptionType::from(*kind),
        }
    }

    fn value(&self) -> Value<'a> {
        match *self {
            LcpOption::Mru(x) | LcpOption::Mrru(x) => Value::U16(x),
            LcpOption::Accm(x) | LcpOption::MagicNumber(x) => Value::U32(x),
            LcpOption::AuthProtocol { protocol, data }
            | LcpOption::QualityProtocol { protocol, data } => {
                Value::U16Bytes(protocol.into(), data)
            }
            LcpOption::ProtocolFieldCompression
            | LcpOption::AddressControlFieldCompression
            | LcpOption::ShortSequenceNumber => Value::Empty,
            LcpOption::FcsAlternatives(x) | LcpOption::SelfDescribingPadding(x) => Value::U8(x),
            LcpOption::Callback {
                operation: a,
                message: b,
            }
            | LcpOption::EndpointDiscriminator {
                class: a,
                address: b,
            } => Value::U8Bytes(a, b),
            LcpOption::Unknown { data, .. } => Value::Bytes(data),
        }
    }
}

impl_emit_option!(LcpOption);

enum_with_unknown! {
    /// IPCP Configuration Option types (RFC 1332, RFC 1877).
    pub enum IpcpOptionType(u8) {
        /// IP-Addresses (deprecated, RFC 1172).
        IpAddresses = 1,
        /// IP-Compression-Protocol.
        IpCompressionProtocol = 2,
        /// IP-Address.
        IpAddress = 3,
        /// Primary DNS server address (RFC 1877).
        PrimaryDns = 129,
        /// Primary NBNS server address (RFC 1877).
        PrimaryNbns = 130,
        /// Secondary DNS server address (RFC 1877).
        SecondaryDns = 131,
        /// Secondary NBNS server address (RFC 1877).
        SecondaryNbns = 132,
    }
}

/// A typed IPCP Configuration Option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcpOption<'a> {
    /// IP-Addresses (deprecated): source and destination.
    IpAddresses {
        /// The sender's address.
        source: Ipv4Addr,
        /// The peer's address.
        destination: Ipv4Addr,
    },
    /// IP-Compression-Protocol: protocol (Van Jacobson 002d) and its data.
    IpCompressionProtocol {
        /// The compression protocol.
        protocol: Protocol,
        /// Protocol-specific data (for VJ: Max-Slot-Id, Comp-Slot-Id).
        data: &'a [u8],
    },
    /// IP-Address (0.0.0.0 asks the peer to assign one).
    IpAddress(Ipv4Addr),
    /// Primary DNS server.
    PrimaryDns(Ipv4Addr),
    /// Primary NBNS (WINS) server.
    PrimaryNbns(Ipv4Addr),
    /// Secondary DNS server.
    SecondaryDns(Ipv4Addr),
    /// Secondary NBNS (WINS) server.
    SecondaryNbns(Ipv4Addr),
    /// An option type this crate does not decode, kept byte-exact.
    Unknown {
        /// The Type field.
        kind: u8,
        /// The Data field.
        data: &'a [u8],
    },
}

impl<'a> IpcpOption<'a> {
    /// Decodes an option; a known type with a value of the wrong size is
    /// [`PppError::BadOptionValue`].
    pub fn parse(raw: RawOption<'a>) -> Result<Self, PppError> {
        let mut v = ValueReader::new(raw);
        let opt = match IpcpOptionType::from(raw.kind) {
            IpcpOptionType::IpAddresses => {
                let source = v.ipv4()?;
                let destination = v.ipv4()?;
                v.finish(IpcpOption::IpAddresses {
                    source,
                    destination,
                })?
            }
            IpcpOptionType::IpCompressionProtocol => IpcpOption::IpCompressionProtocol {
                protocol: Protocol::from(v.u16()?),
                data: v.rest(),
            },
            IpcpOptionType::IpAddress => {
                let a = v.ipv4()?;
                v.finish(IpcpOption::IpAddress(a))?
            }
            IpcpOptionType::PrimaryDns => {
                let a = v.ipv4()?;
                v.finish(IpcpOption::PrimaryDns(a))?
            }
            IpcpOptionType::PrimaryNbns => {
                let a = v.ipv4()?;
                v.finish(IpcpOption::PrimaryNbns(a))?
            }
            IpcpOptionType::SecondaryDns => {
                let a = v.ipv4()?;
                v.finish(IpcpOption::SecondaryDns(a))?
            }
            IpcpOptionType::SecondaryNbns => {
                let a = v.ipv4()?;
                v.finish(IpcpOption::SecondaryNbns(a))?
            }
            IpcpOptionType::Unknown(kind) => IpcpOption::Unknown {
                kind,
                data: raw.data,
            },
        };
        Ok(opt)
    }

    /// The option type.
    pub fn kind(&self) -> IpcpOptionType {
        match self {
            IpcpOption::IpAddresses { .. } => IpcpOptionType::IpAddresses,
            IpcpOption::IpCompressionProtocol { .. } => IpcpOptionType::IpCompressionProtocol,
            IpcpOption::IpAddress(_) => IpcpOptionType::IpAddress,
            IpcpOption::PrimaryDns(_) => IpcpOptionType::PrimaryDns,
            IpcpOption::PrimaryNbns(_) => IpcpOptionType::PrimaryNbns,
            IpcpOption::SecondaryDns(_) => IpcpOptionType::SecondaryDns,
            IpcpOption::SecondaryNbns(_) => IpcpOptionType::SecondaryNbns,
            IpcpOption::Unknown { kind, .. } => IpcpOptionType::from(*kind),
        }
    }

    fn value(&self) -> Value<'a> {
        match *self {
            IpcpOption::IpAddresses {
                source,
                destination,
            } => Value::U32U32(source.into(), destination.into()),
            IpcpOption::IpCompressionProtocol { protocol, data } => {
                Value::U16Bytes(protocol.into(), data)
            }
            IpcpOption::IpAddress(a)
            | IpcpOption::PrimaryDns(a)
            | IpcpOption::PrimaryNbns(a)
            | IpcpOption::SecondaryDns(a)
            | IpcpOption::SecondaryNbns(a) => Value::U32(a.into()),
            IpcpOption::Unknown { data, .. } => Value::Bytes(data),
        }
    }
}

impl_emit_option!(IpcpOption);

enum_with_unknown! {
    /// CCP Configuration Option types (RFC 1962 section 4 and the algorithm RFCs).
    pub enum CcpOptionType(u8) {
        /// Organization Unique Identifier (vendor specific).
        Oui = 0,
        /// Predictor type 1 (RFC 1978).
        Predictor1 = 1,
        /// Predictor type 2 (RFC 1978).
        Predictor2 = 2,
        /// Puddle Jumper.
        PuddleJumper = 3,
        /// Hewlett-Packard PPC.
        HpPpc = 16,
        /// Stac Electronics LZS (RFC 1974).
        Stac = 17,
        /// Microsoft Point-to-Point Compression / Encryption (RFC 2118, RFC 3078).
        MicrosoftPpc = 18,
        /// Gandalf FZA (RFC 1993).
        Gandalf = 19,
        /// V.42bis.
        V42bis = 20,
        /// BSD LZW Compress (RFC 1977).
        BsdCompress = 21,
        /// LZS-DCP (RFC 1967).
        LzsDcp = 23,
        /// Deflate (RFC 1979).
        Deflate = 26,
    }
}

/// The 32-bit Supported Bits of CCP option 18 (RFC 2118 section 2.1, RFC 3078 section 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MppeBits(pub u32);

impl MppeBits {
    /// C: MPPC compression (RFC 2118).
    pub const MPPC: u32 = 0x0000_0001;
    /// D: obsolete (RFC 3078 says it MUST NOT be set).
    pub const D: u32 = 0x0000_0010;
    /// L: 40-bit MPPE session keys.
    pub const L_40: u32 = 0x0000_0020;
    /// S: 128-bit MPPE session keys.
    pub const S_128: u32 = 0x0000_0040;
    /// M: 56-bit MPPE session keys.
    pub const M_56: u32 = 0x0000_0080;
    /// H: stateless mode (key change on every packet).
    pub const H_STATELESS: u32 = 0x0100_0000;

    /// Whether every bit of `bits` is set.
    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
}

/// A typed CCP Configuration Option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcpOption<'a> {
    /// Predictor type 1.
    Predictor1,
    /// Predictor type 2.
    Predictor2,
    /// Stac LZS: history count and check mode.
    Stac {
        /// History count.
        history_count: u16,
        /// Check mode (0 none, 1 LCB, 2 CRC, 3 sequence, 4 extended).
        check_mode: u8,
    },
    /// Microsoft PPC (MPPC and/or MPPE) with its Supported Bits.
    MicrosoftPpc(MppeBits),
    /// BSD Compress: the Vers/Dict octet as on the wire.
    BsdCompress {
        /// Version in the top 3 bits, dictionary bits in the low 5.
        header: u8,
    },
    /// Deflate: the window/method octet and the check-method octet, as on the wire.
    Deflate {
        /// Window size (top 4 bits, log2 minus 8) and method (low 4 bits, 8 = deflate).
        header: u8,
        /// Check method (0 = sequence).
        check: u8,
    },
    /// An option type this crate does not decode, kept byte-exact.
    Unknown {
        /// The Type field.
        kind: u8,
        /// The Data field.
        data: &'a [u8],
    },
}

impl<'a> CcpOption<'a> {
    /// Decodes an option; a known type with a value of the wrong size is
    /// [`PppError::BadOptionValue`].
    pub fn parse(raw: RawOption<'a>) -> Result<Self, PppError> {
        let mut v = ValueReader::new(raw);
        let opt = match CcpOptionType::from(raw.kind) {
            CcpOptionType::Predictor1 => v.finish(CcpOption::Predictor1)?,
            CcpOptionType::Predictor2 => v.finish(CcpOption::Predictor2)?,
            CcpOptionType::Stac => {
                let history_count = v.u16()?;
                let check_mode = v.u8()?;
                v.finish(CcpOption::Stac {
                    history_count,
                    check_mode,
                })?
            }
            CcpOptionType::MicrosoftPpc => {
                let bits = v.u32()?;
                v.finish(CcpOption::MicrosoftPpc(MppeBits(bits)))?
            }
            CcpOptionType::BsdCompress => {
                let header = v.u8()?;
                v.finish(CcpOption::BsdCompress { header })?
            }
            CcpOptionType::Deflate => {
                let header = v.u8()?;
                let check = v.u8()?;
                v.finish(CcpOption::Deflate { header, check })?
            }
            other => CcpOption::Unknown {
                kind: other.into(),
                data: raw.data,
            },
        };
        Ok(opt)
    }

    /// The option type.
    pub fn kind(&self) -> CcpOptionType {
        match self {
            CcpOption::Predictor1 => CcpOptionType::Predictor1,
            CcpOption::Predictor2 => CcpOptionType::Predictor2,
            CcpOption::Stac { .. } => CcpOptionType::Stac,
            CcpOption::MicrosoftPpc(_) => CcpOptionType::MicrosoftPpc,
            CcpOption::BsdCompress { .. } => CcpOptionType::BsdCompress,
            CcpOption::Deflate { .. } => CcpOptionType::Deflate,
            CcpOption::Unknown { kind, .. } => CcpOptionType::from(*kind),
        }
    }

    fn value(&self) -> Value<'a> {
        match *self {
            CcpOption::Predictor1 | CcpOption::Predictor2 => Value::Empty,
            CcpOption::Stac {
                history_count,
                check_mode,
            } => Value::U16U8(history_count, check_mode),
            CcpOption::MicrosoftPpc(bits) => Value::U32(bits.0),
            CcpOption::BsdCompress { header } => Value::U8(header),
            CcpOption::Deflate { header, check } => Value::U8U8(header, check),
            CcpOption::Unknown { data, .. } => Value::Bytes(data),
        }
    }
}

impl_emit_option!(CcpOption);

/// Builds a Configure-* packet (or any option-carrying packet) option by option.
///
/// ```
/// use pptp_nas::ppp::packet::{ConfigureBuilder, LcpCode, LcpOption};
/// let mut b = ConfigureBuilder::new(LcpCode::ConfigureRequest, 1);
/// b.push(&LcpOption::Mru(1400))?.push(&LcpOption::MagicNumber(0xa1b2c3d4))?;
/// assert_eq!(b.to_packet()?, [1, 1, 0, 14, 1, 4, 5, 0x78, 5, 6, 0xa1, 0xb2, 0xc3, 0xd4]);
/// # Ok::<(), pptp_nas::ppp::packet::PppError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigureBuilder<C> {
    code: C,
    identifier: u8,
    data: Vec<u8>,
}

impl<C: ControlCode> ConfigureBuilder<C> {
    /// Starts an empty packet with this code and identifier.
    pub fn new(code: C, identifier: u8) -> Self {
        ConfigureBuilder {
            code,
            identifier,
            data: Vec::new(),
        }
    }

    /// Appends an option (typed or raw).
    pub fn push(&mut self, option: &impl EmitOption) -> Result<&mut Self, PppError> {
        let start = self.data.len();
        let len = option.buffer_len();
        if start + len > u16::MAX as usize - HEADER_LEN {
            return Err(PppError::TooLong {
                what: "option list",
                len: start + len,
                max: u16::MAX as usize - HEADER_LEN,
            });
        }
        self.data.resize(start + len, 0);
        let tail = self.data.get_mut(start..).unwrap_or_default();
        match option.emit(tail) {
            Ok(n) => {
                self.data.truncate(start + n);
                Ok(self)
            }
            Err(e) => {
                self.data.truncate(start);
                Err(e)
            }
        }
    }

    /// The option list built so far.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The packet as a [`ControlRepr`].
    pub fn repr(&self) -> ControlRepr<'_, C> {
        ControlRepr {
            code: self.code,
            identifier: self.identifier,
            data: &self.data,
        }
    }

    /// The encoded control packet (code, identifier, length, options).
    pub fn to_packet(&self) -> Result<Vec<u8>, PppError> {
        let mut out = vec![0u8; HEADER_LEN + self.data.len()];
        let n = emit_control(
            &mut out,
            self.code.into(),
            self.identifier,
            self.data.len(),
            |w| w.bytes(&self.data),
        )?;
        out.truncate(n);
        Ok(out)
    }

    /// The packet inside a PPP frame of `protocol`.
    pub fn to_frame(
        &self,
        protocol: Protocol,
        compression: Compression,
    ) -> Result<Vec<u8>, PppError> {
        let packet = self.to_packet()?;
        Ok(FrameRepr {
            protocol,
            payload: &packet,
        }
        .to_vec(compression))
    }
}

#[cfg(test)]
mod test {
    use super::super::{CcpCode, LcpCode, NcpCode};
    use super::*;
    use proptest::prelude::*;

    /// IPCP Configure-Request id 1: IP-Address 0.0.0.0, Primary DNS 0.0.0.0, Secondary DNS
    /// 0.0.0.0 (what a Windows client sends first).
    static IPCP_REQ: [u8; 22] = [
        0x01, 0x01, 0x00, 0x16, 0x03, 0x06, 0, 0, 0, 0, 0x81, 0x06, 0, 0, 0, 0, 0x83, 0x06, 0, 0,
        0, 0,
    ];
    /// IPCP Configure-Nak id 1 with the assigned address 10.0.0.2 and DNS 192.0.2.53.
    static IPCP_NAK: [u8; 16] = [
        0x03, 0x01, 0x00, 0x10, 0x03, 0x06, 10, 0, 0, 2, 0x81, 0x06, 192, 0, 2, 53,
    ];
    /// CCP Configure-Request id 4 with option 18: MPPE 128-bit stateless (H and S bits).
    static CCP_REQ: [u8; 10] = [0x01, 0x04, 0x00, 0x0a, 0x12, 0x06, 0x01, 0x00, 0x00, 0x40];
    /// CCP Configure-Request with MPPC + 40/128-bit, Deflate 15-bit window and BSD v1 15.
    static CCP_REQ2: [u8; 17] = [
        0x01, 0x05, 0x00, 0x11, 0x12, 0x06, 0x00, 0x00, 0x00, 0x61, 0x1a, 0x04, 0x78, 0x00, 0x15,
        0x03, 0x2f,
    ];

    #[test]
    fn ipcp_parse_emit() {
        let ctrl = ControlRepr::<NcpCode>::parse(&IPCP_REQ).unwrap();
        assert_eq!(ctrl.code, NcpCode::ConfigureRequest);
        let opts: Vec<_> = ctrl
            .options()
            .unwrap()
            .iter()
            .map(|o| IpcpOption::parse(o).unwrap())
            .collect();
        assert_eq!(
            opts,
            [
                IpcpOption::IpAddress(Ipv4Addr::UNSPECIFIED),
                IpcpOption::PrimaryDns(Ipv4Addr::UNSPECIFIED),
                IpcpOption::SecondaryDns(Ipv4Addr::UNSPECIFIED),
            ]
        );
        let mut b = ConfigureBuilder::new(NcpCode::ConfigureNak, 1);
        b.push(&IpcpOption::IpAddress(Ipv4Addr::new(10, 0, 0, 2)))
            .unwrap()
            .push(&IpcpOption::PrimaryDns(Ipv4Addr::new(192, 0, 2, 53)))
            .unwrap();
        assert_eq!(b.to_packet().unwrap(), IPCP_NAK);
        assert_eq!(ControlRepr::<NcpCode>::parse(&IPCP_NAK).unwrap(), b.repr());
    }

    #[test]
    fn ccp_parse_emit() {
        let ctrl = ControlRepr::<CcpCode>::parse(&CCP_REQ).unwrap();
        let opt = CcpOption::parse(ctrl.options().unwrap().iter().next().unwrap()).unwrap();
        let CcpOption::MicrosoftPpc(bits) = opt else {
            panic!("{opt:?}")
        };
        assert!(bits.contains(MppeBits::H_STATELESS | MppeBits::S_128));
        assert!(!bits.contains(MppeBits::MPPC));
        assert_eq!(opt.to_vec().unwrap(), CCP_REQ[4..]);

        let ctrl = ControlRepr::<CcpCode>::parse(&CCP_REQ2).unwrap();
        let opts: Vec<_> = ctrl
            .options()
            .unwrap()
            .iter()
            .map(|o| CcpOption::parse(o).unwrap())
            .collect();
        assert_eq!(
            opts,
            [
                CcpOption::MicrosoftPpc(MppeBits(
                    MppeBits::MPPC | MppeBits::L_40 | MppeBits::S_128
                )),
                CcpOption::Deflate {
                    header: 0x78,
                    check: 0
                },
                CcpOption::BsdCompress { header: 0x2f },
            ]
        );
        let mut b = ConfigureBuilder::new(CcpCode::ConfigureRequest, 5);
        for o in &opts {
            b.push(o).unwrap();
        }
        assert_eq!(b.to_packet().unwrap(), CCP_REQ2);
    }

    #[test]
    fn lcp_typed_values() {
        let cases: [(&[u8], LcpOption<'_>); 10] = [
            (&[2, 6, 0, 0, 0, 0], LcpOption::Accm(0)),
            (
                &[3, 4, 0xc0, 0x23],
                LcpOption::AuthProtocol {
                    protocol: Protocol::Pap,
                    data: &[],
                },
            ),
            (
                &[3, 5, 0xc2, 0x23, 0x81],
                LcpOption::AuthProtocol {
                    protocol: Protocol::Chap,
                    data: &[0x81],
                },
            ),
            (
                &[4, 8, 0xc0, 0x25, 0, 0, 0x03, 0xe8],
                LcpOption::QualityProtocol {
                    protocol: Protocol::Lqr,
                    data: &[0, 0, 3, 0xe8],
                },
            ),
            (&[7, 2], LcpOption::ProtocolFieldCompression),
            (&[8, 2], LcpOption::AddressControlFieldCompression),
            (&[9, 3, 2], LcpOption::FcsAlternatives(2)),
            (
                &[13, 3, 6],
                LcpOption::Callback {
                    operation: 6,
                    message: &[],
                },
            ),
            (&[17, 4, 0x05, 0xdc], LcpOption::Mrru(1500)),
            (
                &[19, 5, 1, 0xab, 0xcd],
                LcpOption::EndpointDiscriminator {
                    class: 1,
                    address: &[0xab, 0xcd],
                },
            ),
        ];
        for (bytes, want) in cases {
            let raw = Options::parse(bytes).unwrap().iter().next().unwrap();
            assert_eq!(LcpOption::parse(raw), Ok(want));
            assert_eq!(want.to_vec().unwrap(), bytes);
            assert_eq!(want.buffer_len(), bytes.len());
        }
    }

    #[test]
    fn wrong_value_sizes_are_per_option_errors() {
        let opts = Options::parse(&[1, 3, 5, 5, 5, 1, 2, 3]).unwrap();
        let mut it = opts.iter();
        assert_eq!(
            LcpOption::parse(it.next().unwrap()),
            Err(PppError::BadOptionValue { kind: 1, len: 1 })
        );
        assert_eq!(
            LcpOption::parse(it.next().unwrap()),
            Err(PppError::BadOptionValue { kind: 5, len: 3 })
        );
        assert!(it.next().is_none());
        let opts = Options::parse(&[3, 7, 1, 2, 3, 4, 5, 7, 3, 0]).unwrap();
        let mut it = opts.iter();
        assert!(IpcpOption::parse(it.next().unwrap()).is_err());
        assert!(LcpOption::parse(it.next().unwrap()).is_err());
        assert!(CcpOption::parse(RawOption {
            kind: 18,
            data: &[0, 0, 0]
        })
        .is_err());
    }

    #[test]
    fn bad_framing_rejects_the_list() {
        assert_eq!(
            Options::parse(&[1, 0]),
            Err(PppError::BadOptionLength { kind: 1, length: 0 })
        );
        assert_eq!(
            Options::parse(&[1, 1]),
            Err(PppError::BadOptionLength { kind: 1, length: 1 })
        );
        assert_eq!(
            Options::parse(&[1, 4, 5, 0xdc, 5, 6, 0]),
            Err(PppError::BadOptionLength { kind: 5, length: 6 })
        );
        assert!(Options::parse(&[1]).is_err());
        assert!(Options::parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn builder_limits() {
        let big = [0u8; 254];
        let mut b = ConfigureBuilder::new(LcpCode::ConfigureReject, 0);
        assert!(b
            .push(&RawOption {
                kind: 99,
                data: &big
            })
            .is_err());
        assert!(b.data().is_empty());
        b.push(&RawOption {
            kind: 99,
            data: &big[..253],
        })
        .unwrap();
        assert_eq!(b.data().len(), 255);
        assert_eq!(b.data()[1], 255);
        let frame = b.to_frame(Protocol::Lcp, Compression::ALL).unwrap();
        assert_eq!(&frame[..4], &[0xff, 0x03, 0xc0, 0x21]);
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    /// Raw material for one option: variant selector, three scalars, and value bytes.
    type Seed = (usize, u32, u16, u8, Vec<u8>);

    fn seed() -> impl Strategy<Value = Seed> {
        (
            0usize..16,
            any::<u32>(),
            any::<u16>(),
            any::<u8>(),
            bytes(16),
        )
    }

    /// A type octet no typed decoder claims (0xff is unknown to LCP, IPCP and CCP).
    fn unknown_kind(k: u8, unknown: bool) -> u8 {
        if unknown {
            k
        } else {
            0xff
        }
    }

    fn lcp_option((i, a, b, c, d): &Seed) -> LcpOption<'_> {
        let (a, b, c) = (*a, *b, *c);
        match i % 14 {
            0 => LcpOption::Mru(b),
            1 => LcpOption::Accm(a),
            2 => LcpOption::AuthProtocol {
                protocol: b.into(),
                data: d,
            },
            3 => LcpOption::QualityProtocol {
                protocol: b.into(),
                data: d,
            },
            4 => LcpOption::MagicNumber(a),
            5 => LcpOption::ProtocolFieldCompression,
            6 => LcpOption::AddressControlFieldCompression,
            7 => LcpOption::FcsAlternatives(c),
            8 => LcpOption::SelfDescribingPadding(c),
            9 => LcpOption::Callback {
                operation: c,
                message: d,
            },
            10 => LcpOption::Mrru(b),
            11 => LcpOption::ShortSequenceNumber,
            12 => LcpOption::EndpointDiscriminator {
                class: c,
                address: d,
            },
            _ => LcpOption::Unknown {
                kind: unknown_kind(
                    c,
                    matches!(LcpOptionType::from(c), LcpOptionType::Unknown(_)),
                ),
                data: d,
            },
        }
    }

    fn ipcp_option((i, a, b, c, d): &Seed) -> IpcpOption<'_> {
        let (a, b, c) = (*a, *b, *c);
        let addr = Ipv4Addr::from(a);
        match i % 8 {
            0 => IpcpOption::IpAddresses {
                source: addr,
                destination: Ipv4Addr::from(a.rotate_left(u32::from(c))),
            },
            1 => IpcpOption::IpCompressionProtocol {
                protocol: b.into(),
                data: d,
            },
            2 => IpcpOption::IpAddress(addr),
            3 => IpcpOption::PrimaryDns(addr),
            4 => IpcpOption::PrimaryNbns(addr),
            5 => IpcpOption::SecondaryDns(addr),
            6 => IpcpOption::SecondaryNbns(addr),
            _ => IpcpOption::Unknown {
                kind: unknown_kind(
                    c,
                    matches!(IpcpOptionType::from(c), IpcpOptionType::Unknown(_)),
                ),
                data: d,
            },
        }
    }

    fn ccp_option((i, a, b, c, d): &Seed) -> CcpOption<'_> {
        let (a, b, c) = (*a, *b, *c);
        match i % 7 {
            0 => CcpOption::Predictor1,
            1 => CcpOption::Predictor2,
            2 => CcpOption::Stac {
                history_count: b,
                check_mode: c,
            },
            3 => CcpOption::MicrosoftPpc(MppeBits(a)),
            4 => CcpOption::BsdCompress { header: c },
            5 => CcpOption::Deflate {
                header: c,
                check: b.to_be_bytes()[0],
            },
            // Types 0, 3, 16, 19, 20, 23 have names but no typed decoder: they stay Unknown.
            _ => CcpOption::Unknown {
                kind: unknown_kind(c, !matches!(c, 1 | 2 | 17 | 18 | 21 | 26)),
                data: d,
            },
        }
    }

    macro_rules! check_roundtrip {
        ($opt:expr, $ty:ident) => {{
            let opt = $opt;
            let buf = opt.to_vec().unwrap();
            prop_assert_eq!(buf.len(), opt.buffer_len());
            let list = Options::parse(&buf).unwrap();
            let mut it = list.iter();
            let raw = it.next().unwrap();
            prop_assert!(it.next().is_none());
            prop_assert_eq!(raw.kind, opt.kind_u8());
            // Raw options re-emit byte-exact.
            prop_assert_eq!(&raw.to_vec().unwrap(), &buf);
            prop_assert_eq!($ty::parse(raw).unwrap(), opt);
        }};
    }

    proptest! {
        #[test]
        fn lcp_option_roundtrip(seed in seed()) {
            check_roundtrip!(lcp_option(&seed), LcpOption);
        }

        #[test]
        fn ipcp_option_roundtrip(seed in seed()) {
            check_roundtrip!(ipcp_option(&seed), IpcpOption);
        }

        #[test]
        fn ccp_option_roundtrip(seed in seed()) {
            check_roundtrip!(ccp_option(&seed), CcpOption);
        }

        #[test]
        fn builder_roundtrip(kinds in proptest::collection::vec((any::<u8>(), bytes(8)), 0..6)) {
            let mut b = ConfigureBuilder::new(LcpCode::ConfigureReject, 3);
            for (kind, data) in &kinds {
                b.push(&RawOption { kind: *kind, data }).unwrap();
            }
            let packet = b.to_packet().unwrap();
            let ctrl = ControlRepr::<LcpCode>::parse(&packet).unwrap();
            let got: Vec<_> = ctrl.options().unwrap().iter().map(|o| (o.kind, o.data.to_vec())).collect();
            prop_assert_eq!(got, kinds);
        }
    }
}
