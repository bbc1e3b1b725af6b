//! The 15 PPTP control messages of RFC 2637 section 2: header, codec and validation.
//!
//! Two views, as elsewhere in the crate:
//! - [`ControlPacket`], a zero-copy view of the 12-octet header over any `AsRef<[u8]>`. Untrusted
//!   input goes through [`ControlPacket::new_checked`]; once that succeeds no accessor panics
//!   (they never panic in any case, they return 0 for octets that are not there).
//! - [`Message`], the validated representation, with [`Message::parse`], [`Message::emit`] and
//!   [`Message::buffer_len`]. Each message type has a fixed length (RFC 2637 gives each) and
//!   `parse` checks it.
//!
//! Errors are layered ([`MessageError`]): a broken header ([`HeaderError`], which also ends a
//! control stream because it cannot be resynchronised), a well-framed but malformed message
//! (wrong length for its type, buffer and length field disagree), an unknown control message type
//! (skippable, reported with its raw type and length), and a non-zero Reserved field (reported
//! only by [`Message::parse_strict`]; see there for why).
//!
//! For TCP byte streams use [`ControlStream`] (sans-IO) or the tokio-util codec in
//! `crate::io::pptp_codec`, which both frame messages by the Length field.

mod body;
mod codes;
mod stream;
mod text;

pub use body::{
    CallClearRequest, CallDisconnectNotify, EchoReply, EchoRequest, IncomingCallConnected,
    IncomingCallReply, IncomingCallRequest, OutgoingCallReply, OutgoingCallRequest, SetLinkInfo,
    StartControlConnectionReply, StartControlConnectionRequest, StopControlConnectionReply,
    StopControlConnectionRequest, WanErrorNotify,
};
pub use codes::{
    BearerCapabilities, BearerType, CallDisconnectResult, CauseCode, ControlMessageType,
    EchoResult, ErrorCode, FramingCapabilities, FramingType, IncomingCallResult,
    OutgoingCallResult, StartControlConnectionResult, StopControlConnectionResult, StopReason,
};
pub use stream::{ControlItem, ControlStream, DEFAULT_MAX_MESSAGE_LEN};
pub use text::{CallStatistics, TextField, TextFieldError};

use body::BodyReader;
use bytes::BufMut;

/// Length of the common control message header, in octets.
pub const HEADER_LEN: usize = 12;
/// The Magic Cookie every control message carries (RFC 2637 §1.4).
pub const MAGIC_COOKIE: u32 = 0x1A2B_3C4D;
/// PPTP Message Type 1: Control Message (the only type RFC 2637 defines).
pub const PPTP_CONTROL_MESSAGE: u16 = 1;
/// Protocol Version of RFC 2637: version 1, revision 0.
pub const PROTOCOL_VERSION: u16 = 0x0100;
/// The TCP port of the control connection.
pub const CONTROL_PORT: u16 = 1723;
/// The largest control message RFC 2637 defines (Incoming-Call-Request).
pub const MAX_KNOWN_MESSAGE_LEN: usize = 220;

/// Octet ranges of the common header.
pub mod field {
    /// A range of octets.
    pub type Field = core::ops::Range<usize>;
    /// Length: total length of the message in octets, header included.
    pub const LENGTH: Field = 0..2;
    /// PPTP Message Type: 1 for a control message.
    pub const PPTP_TYPE: Field = 2..4;
    /// Magic Cookie: 0x1A2B3C4D.
    pub const MAGIC_COOKIE: Field = 4..8;
    /// Control Message Type.
    pub const CONTROL_TYPE: Field = 8..10;
    /// Reserved0: MUST be 0.
    pub const RESERVED0: Field = 10..12;
    /// Start of the message body.
    pub const BODY: usize = 12;
}

/// A broken control message header. On a TCP stream this is fatal: the stream cannot be
/// resynchronised and the control connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The Length field is smaller than the 12-octet header.
    #[error("length field {length} is shorter than the 12-octet header")]
    LengthTooShort {
        /// The Length field.
        length: u16,
    },
    /// The Length field exceeds the limit this receiver accepts.
    #[error("length field {length} exceeds the limit of {max}")]
    LengthTooLong {
        /// The Length field.
        length: u16,
        /// The limit.
        max: u16,
    },
    /// The PPTP Message Type is not 1 (Control Message).
    #[error("PPTP message type {0} is not 1 (control message)")]
    BadMessageType(u16),
    /// The Magic Cookie is not 0x1A2B3C4D.
    #[error("bad magic cookie {0:#010x}")]
    BadCookie(u32),
}

/// Why a buffer is not a valid control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Malformed: the header is broken (fatal on a stream).
    #[error("malformed header: {0}")]
    Header(#[from] HeaderError),
    /// Malformed: the buffer ends before the header or before the Length field says.
    #[error("truncated: {needed} more octet(s) needed")]
    Truncated {
        /// How many more octets the message needs.
        needed: usize,
    },
    /// Malformed: the buffer holds more than the Length field says.
    #[error("{extra} octet(s) after the end of the message")]
    TrailingData {
        /// How many octets are left over.
        extra: usize,
    },
    /// Malformed: a known message type with a length other than the one RFC 2637 gives it.
    #[error("{control_type} must be {expected} octets, length field says {length}")]
    WrongLength {
        /// The message type.
        control_type: ControlMessageType,
        /// The length RFC 2637 gives it.
        expected: u16,
        /// The Length field.
        length: u16,
    },
    /// A control message type this implementation does not know. Not fatal: the message is
    /// well framed and can be skipped.
    #[error("unknown control message type {control_type} ({length} octets)")]
    UnknownType {
        /// The raw Control Message Type.
        control_type: u16,
        /// The Length field.
        length: u16,
    },
    /// A Reserved field is not 0 (reported only by [`Message::parse_strict`]).
    #[error("{control_type}: {field} is {value:#x}, must be 0")]
    ReservedNonZero {
        /// The message type.
        control_type: ControlMessageType,
        /// Name of the field as RFC 2637 calls it (`"Reserved0"`, `"Reserved1"`, …).
        field: &'static str,
        /// The value found.
        value: u32,
    },
}

impl MessageError {
    /// Whether the message is malformed (as opposed to unknown or carrying a non-zero Reserved
    /// field). The RFC answer to a malformed message is General Error 2 (Bad-Format).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Self::Header(_)
                | Self::Truncated { .. }
                | Self::TrailingData { .. }
                | Self::WrongLength { .. }
        )
    }
}

fn be16(buf: &[u8], f: field::Field) -> u16 {
    buf.get(f)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_be_bytes)
}

fn be32(buf: &[u8], f: field::Field) -> u32 {
    buf.get(f)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

/// Inspects the start of a control byte stream and says how long the next message is.
///
/// Returns `Ok(None)` while fewer than `Length` octets are buffered, `Ok(Some(length))` once the
/// whole next message is in `buf`, and `Err` as soon as the octets present show a broken header
/// (checked incrementally, so garbage is caught after 2, 4 or 8 octets, not after `max_len`).
/// `max_len` bounds what a receiver is willing to buffer for one message.
pub fn peek_message_len(buf: &[u8], max_len: u16) -> Result<Option<u16>, HeaderError> {
    if buf.len() < field::LENGTH.end {
        return Ok(None);
    }
    let length = be16(buf, field::LENGTH);
    if usize::from(length) < HEADER_LEN {
        return Err(HeaderError::LengthTooShort { length });
    }
    if length > max_len {
        return Err(HeaderError::LengthTooLong {
            length,
            max: max_len,
        });
    }
    if buf.len() < field::PPTP_TYPE.end {
        return Ok(None);
    }
    // RFC 2637 §1.4: "Two Control Connection message types are indicated by the PPTP Message
    // Type field: 1 - Control Message, 2 - Management Message. Management messages are currently
    // not defined." Anything but 1 is a message we cannot interpret.
    let pptp_type = be16(buf, field::PPTP_TYPE);
    if pptp_type != PPTP_CONTROL_MESSAGE {
        return Err(HeaderError::BadMessageType(pptp_type));
    }
    if buf.len() < field::MAGIC_COOKIE.end {
        return Ok(None);
    }
    // RFC 2637 §1.4: "The Magic Cookie is always sent as the constant 0x1A2B3C4D. Its basic
    // purpose is to allow the receiver to ensure that it is properly synchronized with the TCP
    // data stream. It should not be used as a means for resynchronizing the TCP data stream in
    // the event that a transmitter issues an improperly formatted message. Loss of
    // synchronization must result in immediate closing of the control connection's TCP
    // session."
    let cookie = be32(buf, field::MAGIC_COOKIE);
    if cookie != MAGIC_COOKIE {
        return Err(HeaderError::BadCookie(cookie));
    }
    if buf.len() < usize::from(length) {
        return Ok(None);
    }
    Ok(Some(length))
}

/// A zero-copy view of a control message: the common header plus the body octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ControlPacket<T> {
    /// Wraps a buffer without checking it. Accessors still never panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        ControlPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, MessageError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds a whole header, that the Length field is at least the
    /// header, and that the buffer holds at least `Length` octets.
    pub fn check_len(&self) -> Result<(), MessageError> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(MessageError::Truncated {
                needed: HEADER_LEN - buf.len(),
            });
        }
        let length = self.length();
        if usize::from(length) < HEADER_LEN {
            return Err(HeaderError::LengthTooShort { length }.into());
        }
        if buf.len() < usize::from(length) {
            return Err(MessageError::Truncated {
                needed: usize::from(length) - buf.len(),
            });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The Length field.
    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The PPTP Message Type field (1 = control message).
    pub fn pptp_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PPTP_TYPE)
    }

    /// The Magic Cookie field.
    pub fn magic_cookie(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MAGIC_COOKIE)
    }

    /// The Control Message Type field.
    pub fn control_type(&self) -> ControlMessageType {
        be16(self.buffer.as_ref(), field::CONTROL_TYPE).into()
    }

    /// The Reserved0 field.
    pub fn reserved0(&self) -> u16 {
        be16(self.buffer.as_ref(), field::RESERVED0)
    }

    /// The body: octets 12 up to `Length` (clamped to the buffer).
    pub fn body(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        let end = usize::from(self.length()).min(buf.len());
        buf.get(field::BODY..end).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ControlPacket<T> {
    fn put(&mut self, f: field::Field, bytes: &[u8]) {
        if let Some(dst) = self.buffer.as_mut().get_mut(f) {
            dst.copy_from_slice(bytes);
        }
    }

    /// Sets the Length field.
    pub fn set_length(&mut self, value: u16) {
        self.put(field::LENGTH, &value.to_be_bytes());
    }

    /// Sets the PPTP Message Type field.
    pub fn set_pptp_type(&mut self, value: u16) {
        self.put(field::PPTP_TYPE, &value.to_be_bytes());
    }

    /// Sets the Magic Cookie field.
    pub fn set_magic_cookie(&mut self, value: u32) {
        self.put(field::MAGIC_COOKIE, &value.to_be_bytes());
    }

    /// Sets the Control Message Type field.
    pub fn set_control_type(&mut self, value: ControlMessageType) {
        self.put(field::CONTROL_TYPE, &u16::from(value).to_be_bytes());
    }

    /// Sets the Reserved0 field.
    pub fn set_reserved0(&mut self, value: u16) {
        self.put(field::RESERVED0, &value.to_be_bytes());
    }
}

/// Declares the `Message` enum and its per-type dispatch from one list of type names; each name
/// is at once a body struct, a `Message` variant and a `ControlMessageType` variant.
macro_rules! messages {
    ($($name:ident),+ $(,)?) => {
        /// One PPTP control message (RFC 2637 section 2), validated.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Message {
            $(
                #[doc = concat!("A [`", stringify!($name), "`].")]
                $name($name),
            )+
        }

        impl Message {
            /// The Control Message Type of this message.
            pub const fn control_type(&self) -> ControlMessageType {
                match self {
                    $( Message::$name(_) => ControlMessageType::$name, )+
                }
            }

            fn parse_body(
                control_type: ControlMessageType,
                r: &mut BodyReader<'_>,
            ) -> Option<Result<Message, crate::wire::WireError>> {
                match control_type {
                    $( ControlMessageType::$name => Some($name::parse(r).map(Message::$name)), )+
                    ControlMessageType::Unknown(_) => None,
                }
            }

            fn emit_body<B: BufMut>(&self, buf: &mut B) {
                match self {
                    $( Message::$name(m) => m.emit(buf), )+
                }
            }
        }

        $(
            impl From<$name> for Message {
                fn from(m: $name) -> Message {
                    Message::$name(m)
                }
            }
        )+
    };
}

messages!(
    StartControlConnectionRequest,
    StartControlConnectionReply,
    StopControlConnectionRequest,
    StopControlConnectionReply,
    EchoRequest,
    EchoReply,
    OutgoingCallRequest,
    OutgoingCallReply,
    IncomingCallRequest,
    IncomingCallReply,
    IncomingCallConnected,
    CallClearRequest,
    CallDisconnectNotify,
    WanErrorNotify,
    SetLinkInfo,
);

/// A non-zero Reserved field found while parsing: (field name, value).
type ReservedNote = Option<(&'static str, u32)>;

impl Message {
    /// Parses exactly one control message; `bytes` must end where the Length field says.
    ///
    /// Lenient about Reserved fields (see [`parse_strict`](Self::parse_strict)) and about text
    /// fields (see [`TextField`]); strict about everything that affects framing and layout.
    pub fn parse(bytes: &[u8]) -> Result<Message, MessageError> {
        Self::parse_noting_reserved(bytes).map(|(m, _)| m)
    }

    /// Like [`parse`](Self::parse), but also rejects a non-zero Reserved field with
    /// [`MessageError::ReservedNonZero`].
    ///
    /// RFC 2637 says of every Reserved field only "This field MUST be 0", which binds the
    /// sender; its General Error Code 3 (Bad-Value) covers "One of the field values was out of
    /// range or reserved field was non-zero", so a receiver may refuse such a message. Microsoft's
    /// PPTP specification ([MS-PTPT] §2.2), the other half of the deployed world, says "All
    /// reserved bits MUST be set to 0 when sending messages and MUST be ignored for incoming
    /// messages". [`parse`](Self::parse) therefore ignores Reserved fields (interoperability
    /// first), and this function is for a peer configured to answer them with Bad-Value.
    pub fn parse_strict(bytes: &[u8]) -> Result<Message, MessageError> {
        let (message, reserved) = Self::parse_noting_reserved(bytes)?;
        match reserved {
            None => Ok(message),
            Some((field, value)) => Err(MessageError::ReservedNonZero {
                control_type: message.control_type(),
                field,
                value,
            }),
        }
    }

    fn parse_noting_reserved(bytes: &[u8]) -> Result<(Message, ReservedNote), MessageError> {
        let length = match peek_message_len(bytes, u16::MAX)? {
            Some(length) => usize::from(length),
            None => {
                let want = usize::from(be16(bytes, field::LENGTH)).max(HEADER_LEN);
                return Err(MessageError::Truncated {
                    needed: want.saturating_sub(bytes.len()).max(1),
                });
            }
        };
        if bytes.len() > length {
            return Err(MessageError::TrailingData {
                extra: bytes.len() - length,
            });
        }
        let packet = ControlPacket::new_checked(bytes)?;
        let control_type = packet.control_type();
        let length = packet.length();
        let Some(expected) = control_type.fixed_len() else {
            return Err(MessageError::UnknownType {
                control_type: control_type.into(),
                length,
            });
        };
        if length != expected {
            return Err(MessageError::WrongLength {
                control_type,
                expected,
                length,
            });
        }
        let mut r = BodyReader::new(packet.body());
        let reserved0 = packet.reserved0();
        let message = match Self::parse_body(control_type, &mut r) {
            Some(Ok(m)) => m,
            // Unreachable after the fixed-length check; mapped rather than unwrapped.
            Some(Err(e)) => return Err(wire_to_message_error(e)),
            None => {
                return Err(MessageError::UnknownType {
                    control_type: control_type.into(),
                    length,
                })
            }
        };
        let body_reserved = r.finish().map_err(wire_to_message_error)?;
        // RFC 2637 §2.1 and every other message: "Reserved0  This field MUST be 0."
        let reserved = if reserved0 != 0 {
            Some(("Reserved0", u32::from(reserved0)))
        } else {
            body_reserved
        };
        Ok((message, reserved))
    }

    /// Length of the emitted message in octets (fixed per type).
    pub fn buffer_len(&self) -> usize {
        usize::from(self.wire_len())
    }

    fn wire_len(&self) -> u16 {
        // Every known type has a fixed length; the fallback is never taken.
        self.control_type().fixed_len().unwrap_or(0)
    }

    /// Appends the message, header included, to `buf`.
    ///
    /// `buf` must have room for [`buffer_len`](Self::buffer_len) octets (a `Vec<u8>` or
    /// `BytesMut` grows as needed; a fixed `&mut [u8]` that is too small makes `BufMut` panic).
    pub fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_u16(self.wire_len());
        buf.put_u16(PPTP_CONTROL_MESSAGE);
        buf.put_u32(MAGIC_COOKIE);
        buf.put_u16(self.control_type().into());
        buf.put_u16(0);
        self.emit_body(buf);
    }

    /// The message as a freshly allocated vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.buffer_len());
        self.emit(&mut v);
        v
    }
}

fn wire_to_message_error(e: crate::wire::WireError) -> MessageError {
    match e {
        crate::wire::WireError::Truncated { needed } => MessageError::Truncated { needed },
        crate::wire::WireError::TrailingData { extra } => MessageError::TrailingData { extra },
    }
}

#[cfg(test)]
pub(crate) mod strategy;

#[cfg(test)]
mod test {
    use super::strategy::message;
    use super::*;
    use proptest::prelude::*;

    // Captured control messages (habit 7); see /work/shared/captures/README.md. 127.0.0.1 is
    // pptpd 1.4.0, 127.0.0.4 is pptp-linux 1.10, the other addresses are test peers.

    /// SCCRQ from pptp-linux 1.10 (pptp-linux-to-pptpd.pcapng frame 200).
    static SCCRQ_PPTP_LINUX: [u8; 156] = [
        0x00, 0x9c, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x03, 0xff, 0xff, 0x00, 0x01, 0x6c, 0x6f,
        0x63, 0x61, 0x6c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x63, 0x61, 0x6e, 0x61, 0x6e, 0x69, 0x61, 0x6e, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// SCCRP from pptpd 1.4.0 (pptp-linux-to-pptpd.pcapng frame 202).
    static SCCRP_PPTPD: [u8; 156] = [
        0x00, 0x9c, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x02, 0x00, 0x00, 0x01, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x6c, 0x6f,
        0x63, 0x61, 0x6c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x6c, 0x69, 0x6e, 0x75, 0x78, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// StopCCRQ from the test PNS (ocrq-to-pptpd.pcapng frame 19).
    static STOPCCRQ: [u8; 16] = [
        0x00, 0x10, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x03, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00,
    ];

    /// StopCCRP from pptpd (ocrq-to-pptpd.pcapng frame 21).
    static STOPCCRP_PPTPD: [u8; 16] = [
        0x00, 0x10, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x04, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00,
    ];

    /// Echo-Request from the test PNS (ocrq-to-pptpd.pcapng frame 8).
    static ECHO_REQUEST: [u8; 16] = [
        0x00, 0x10, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x05, 0x00, 0x00, 0x01, 0x02, 0x03,
        0x04,
    ];

    /// Echo-Reply from pptpd (ocrq-to-pptpd.pcapng frame 9).
    static ECHO_REPLY_PPTPD: [u8; 20] = [
        0x00, 0x14, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x06, 0x00, 0x00, 0x01, 0x02, 0x03,
        0x04, 0x01, 0x00, 0x00, 0x00,
    ];

    /// OCRQ from pptp-linux (pptp-linux-to-pptpd.pcapng frame 204).
    static OCRQ_PPTP_LINUX: [u8; 168] = [
        0x00, 0xa8, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x07, 0x00, 0x00, 0x6d, 0x2f, 0x00,
        0x00, 0x00, 0x00, 0x09, 0x60, 0x00, 0x98, 0x96, 0x80, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x00, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ];

    /// OCRQ with a phone number from the test PNS (ocrq-to-pptpd.pcapng frame 10).
    static OCRQ_WITH_NUMBER: [u8; 168] = [
        0x00, 0xa8, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x07, 0x00, 0x00, 0x12, 0x34, 0x00,
        0x01, 0x00, 0x00, 0x01, 0x2c, 0x05, 0xf5, 0xe1, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x35, 0x35, 0x35, 0x31, 0x32,
        0x33, 0x34, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ];

    /// OCRP from pptpd (pptp-linux-to-pptpd.pcapng frame 205).
    static OCRP_PPTPD: [u8; 32] = [
        0x00, 0x20, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x08, 0x00, 0x00, 0x07, 0x80, 0x6d,
        0x2f, 0x01, 0x00, 0x00, 0x00, 0x00, 0x98, 0x96, 0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ];

    /// ICRQ probe sent to pptpd (pptp-linux-to-pptpd.pcapng frame 34).
    static ICRQ: [u8; 220] = [
        0x00, 0xdc, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x09, 0x00, 0x00, 0x12, 0x34, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x04, 0x31, 0x32,
        0x33, 0x34, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x35, 0x36, 0x37, 0x38, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// ICRP probe sent to pptpd (pptp-linux-to-pptpd.pcapng frame 133).
    static ICRP: [u8; 24] = [
        0x00, 0x18, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00,
        0x02, 0x01, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00,
    ];

    /// ICCN probe sent to pptpd (pptp-linux-to-pptpd.pcapng frame 145).
    static ICCN: [u8; 28] = [
        0x00, 0x1c, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x05, 0xf5, 0xe1, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];

    /// CCRQ from pptp-linux (pptp-linux-to-pptpd.pcapng frame 212).
    static CCRQ_PPTP_LINUX: [u8; 16] = [
        0x00, 0x10, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x0c, 0x00, 0x00, 0x6d, 0x2f, 0x00,
        0x00,
    ];

    /// CDN, Admin Shutdown, from the test PAC (pptp-linux-to-pptpd.pcapng frame 234).
    static CDN: [u8; 148] = [
        0x00, 0x94, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x0d, 0x00, 0x00, 0x40, 0x00, 0x03,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// WEN probe sent to pptpd (pptp-linux-to-pptpd.pcapng frame 180).
    static WEN: [u8; 40] = [
        0x00, 0x28, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// SLI from the test PNS (ocrq-to-pptpd.pcapng frame 12).
    static SLI: [u8; 24] = [
        0x00, 0x18, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x0f, 0x00, 0x00, 0x0a, 0x00, 0x00,
        0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];

    fn text(s: &str) -> TextField {
        TextField::try_from(s).unwrap()
    }

    /// Parses a capture, checks it round-trips byte for byte, and returns the message.
    fn parse_captured(bytes: &[u8]) -> Message {
        let m = Message::parse(bytes).unwrap();
        assert_eq!(
            Message::parse_strict(bytes),
            Ok(m),
            "captures have clean reserved fields"
        );
        assert_eq!(m.buffer_len(), bytes.len());
        assert_eq!(
            m.to_vec(),
            bytes,
            "emit(parse(x)) == x for {}",
            m.control_type()
        );
        m
    }

    #[test]
    fn deconstruct_header() {
        let p = ControlPacket::new_checked(&SCCRQ_PPTP_LINUX[..]).unwrap();
        assert_eq!(p.length(), 156);
        assert_eq!(p.pptp_type(), PPTP_CONTROL_MESSAGE);
        assert_eq!(p.magic_cookie(), MAGIC_COOKIE);
        assert_eq!(
            p.control_type(),
            ControlMessageType::StartControlConnectionRequest
        );
        assert_eq!(p.reserved0(), 0);
        assert_eq!(p.body().len(), 144);
    }

    #[test]
    fn construct_header() {
        let mut buf = [0xffu8; 16];
        let mut p = ControlPacket::new_unchecked(&mut buf[..]);
        p.set_length(16);
        p.set_pptp_type(PPTP_CONTROL_MESSAGE);
        p.set_magic_cookie(MAGIC_COOKIE);
        p.set_control_type(ControlMessageType::EchoRequest);
        p.set_reserved0(0);
        assert_eq!(&buf[..12], &ECHO_REQUEST[..12]);
    }

    #[test]
    fn sccrq_from_pptp_linux() {
        let Message::StartControlConnectionRequest(m) = parse_captured(&SCCRQ_PPTP_LINUX) else {
            panic!("not an SCCRQ");
        };
        assert_eq!(m.protocol_version, PROTOCOL_VERSION);
        assert_eq!(
            m.framing_capabilities,
            FramingCapabilities::ASYNC | FramingCapabilities::SYNC
        );
        assert_eq!(
            m.bearer_capabilities,
            BearerCapabilities::ANALOG | BearerCapabilities::DIGITAL
        );
        assert_eq!(m.maximum_channels, 0xffff);
        assert_eq!(m.firmware_revision, 1);
        assert_eq!(m.host_name, text("local"));
        assert_eq!(m.vendor, text("cananian"));
    }

    #[test]
    fn sccrp_from_pptpd() {
        let Message::StartControlConnectionReply(m) = parse_captured(&SCCRP_PPTPD) else {
            panic!("not an SCCRP");
        };
        assert_eq!(m.protocol_version, PROTOCOL_VERSION);
        assert_eq!(m.result, StartControlConnectionResult::Success);
        assert_eq!(m.error, ErrorCode::None);
        assert!(m.framing_capabilities.is_empty(), "pptpd sends 0");
        assert!(m.bearer_capabilities.is_empty(), "pptpd sends 0");
        assert_eq!(m.maximum_channels, 1);
        assert_eq!(m.firmware_revision, 1);
        assert_eq!(m.host_name, text("local"));
        assert_eq!(m.vendor, text("linux"));
    }

    #[test]
    fn stop_request_and_reply() {
        assert_eq!(
            parse_captured(&STOPCCRQ),
            Message::from(StopControlConnectionRequest {
                reason: StopReason::None
            })
        );
        assert_eq!(
            parse_captured(&STOPCCRP_PPTPD),
            Message::from(StopControlConnectionReply {
                result: StopControlConnectionResult::Ok,
                error: ErrorCode::None
            })
        );
    }

    #[test]
    fn echo_request_and_reply() {
        assert_eq!(
            parse_captured(&ECHO_REQUEST),
            Message::from(EchoRequest {
                identifier: 0x0102_0304
            })
        );
        assert_eq!(
            parse_captured(&ECHO_REPLY_PPTPD),
            Message::from(EchoReply {
                identifier: 0x0102_0304,
                result: EchoResult::Ok,
                error: ErrorCode::None
            })
        );
    }

    #[test]
    fn ocrq_from_pptp_linux() {
        let Message::OutgoingCallRequest(m) = parse_captured(&OCRQ_PPTP_LINUX) else {
            panic!("not an OCRQ");
        };
        assert_eq!(m.call_id, 0x6d2f);
        assert_eq!(m.call_serial_number, 0);
        assert_eq!(m.minimum_bps, 2400);
        assert_eq!(m.maximum_bps, 10_000_000);
        assert_eq!(m.bearer_type, BearerType::Any);
        assert_eq!(m.framing_type, FramingType::Either);
        assert_eq!(m.packet_recv_window_size, 3);
        assert_eq!(m.packet_processing_delay, 0);
        assert_eq!(m.phone_number_length, 0);
        assert!(m.phone_number.is_empty());
        assert!(m.subaddress.is_empty());
        assert!(m.phone_number_length_matches());
    }

    #[test]
    fn ocrq_with_phone_number() {
        let Message::OutgoingCallRequest(m) = parse_captured(&OCRQ_WITH_NUMBER) else {
            panic!("not an OCRQ");
        };
        assert_eq!(m.call_id, 0x1234);
        assert_eq!(m.call_serial_number, 1);
        assert_eq!(m.minimum_bps, 300);
        assert_eq!(m.maximum_bps, 100_000_000);
        assert_eq!(m.packet_recv_window_size, 64);
        assert_eq!(m.phone_number_length, 7);
        assert_eq!(m.phone_number, text("5551234"));
        assert!(m.phone_number_length_matches());
    }

    #[test]
    fn ocrp_from_pptpd() {
        assert_eq!(
            parse_captured(&OCRP_PPTPD),
            Message::from(OutgoingCallReply {
                call_id: 0x0780,
                peer_call_id: 0x6d2f,
                result: OutgoingCallResult::Connected,
                error: ErrorCode::None,
                cause_code: CauseCode::None,
                connect_speed: 10_000_000,
                packet_recv_window_size: 3,
                packet_processing_delay: 0,
                physical_channel_id: 0,
            })
        );
    }

    #[test]
    fn icrq_icrp_iccn() {
        assert_eq!(
            parse_captured(&ICRQ),
            Message::from(IncomingCallRequest {
                call_id: 0x1234,
                call_serial_number: 1,
                call_bearer_type: BearerType::Any,
                physical_channel_id: 0,
                dialed_number_length: 4,
                dialing_number_length: 4,
                dialed_number: text("1234"),
                dialing_number: text("5678"),
                subaddress: TextField::empty(),
            })
        );
        assert_eq!(
            parse_captured(&ICRP),
            Message::from(IncomingCallReply {
                call_id: 1,
                peer_call_id: 2,
                result: IncomingCallResult::Connect,
                error: ErrorCode::None,
                packet_recv_window_size: 64,
                packet_transmit_delay: 0,
            })
        );
        assert_eq!(
            parse_captured(&ICCN),
            Message::from(IncomingCallConnected {
                peer_call_id: 1,
                connect_speed: 100_000_000,
                packet_recv_window_size: 64,
                packet_transmit_delay: 0,
                framing_type: FramingType::Async,
            })
        );
    }

    #[test]
    fn ccrq_cdn_wen_sli() {
        assert_eq!(
            parse_captured(&CCRQ_PPTP_LINUX),
            Message::from(CallClearRequest { call_id: 0x6d2f })
        );
        assert_eq!(
            parse_captured(&CDN),
            Message::from(CallDisconnectNotify {
                call_id: 0x4000,
                result: CallDisconnectResult::AdminShutdown,
                error: ErrorCode::None,
                cause_code: CauseCode::None,
                call_statistics: CallStatistics::empty(),
            })
        );
        assert_eq!(
            parse_captured(&WEN),
            Message::from(WanErrorNotify {
                peer_call_id: 1,
                ..WanErrorNotify::default()
            })
        );
        assert_eq!(
            parse_captured(&SLI),
            Message::from(SetLinkInfo {
                peer_call_id: 0x0a00,
                send_accm: 0xffff_ffff,
                receive_accm: 0xffff_ffff,
            })
        );
    }

    #[test]
    fn handmade_cdn_with_statistics_and_general_error() {
        let m = Message::from(CallDisconnectNotify {
            call_id: 9,
            result: CallDisconnectResult::GeneralError,
            error: ErrorCode::NoResource,
            cause_code: CauseCode::NormalClearing,
            call_statistics: CallStatistics::try_from("rx 10 tx 12 crc 0").unwrap(),
        });
        let bytes = m.to_vec();
        assert_eq!(bytes.len(), 148);
        assert_eq!(&bytes[12..20], &[0, 9, 2, 4, 0, 16, 0, 0]);
        assert_eq!(&bytes[20..37], b"rx 10 tx 12 crc 0");
        assert!(bytes[37..].iter().all(|&b| b == 0));
        assert_eq!(Message::parse(&bytes), Ok(m));
    }

    #[test]
    fn bad_cookie_and_message_type() {
        let mut b = ECHO_REQUEST;
        b[4] = 0;
        assert_eq!(
            Message::parse(&b),
            Err(MessageError::Header(HeaderError::BadCookie(0x002B_3C4D)))
        );
        let mut b = ECHO_REQUEST;
        b[3] = 2;
        assert_eq!(
            Message::parse(&b),
            Err(MessageError::Header(HeaderError::BadMessageType(2)))
        );
        assert!(Message::parse(&b).unwrap_err().is_malformed());
    }

    #[test]
    fn length_errors() {
        // Length field below the header.
        let mut b = ECHO_REQUEST;
        b[1] = 8;
        assert_eq!(
            Message::parse(&b),
            Err(HeaderError::LengthTooShort { length: 8 }.into())
        );
        // Buffer shorter than the header, and shorter than Length.
        assert_eq!(
            Message::parse(&ECHO_REQUEST[..5]),
            Err(MessageError::Truncated { needed: 11 })
        );
        assert_eq!(
            Message::parse(&ECHO_REQUEST[..14]),
            Err(MessageError::Truncated { needed: 2 })
        );
        assert_eq!(
            Message::parse(&[]),
            Err(MessageError::Truncated { needed: 12 })
        );
        // Buffer longer than Length.
        let long = [&ECHO_REQUEST[..], &[0]].concat();
        assert_eq!(
            Message::parse(&long),
            Err(MessageError::TrailingData { extra: 1 })
        );
        // Consistent framing, wrong length for the type.
        let mut b = ECHO_REPLY_PPTPD;
        b[1] = 16;
        assert_eq!(
            Message::parse(&b[..16]),
            Err(MessageError::WrongLength {
                control_type: ControlMessageType::EchoReply,
                expected: 20,
                length: 16
            })
        );
    }

    #[test]
    fn unknown_type_is_reported_not_malformed() {
        let mut b = ECHO_REQUEST;
        b[9] = 16;
        let e = Message::parse(&b).unwrap_err();
        assert_eq!(
            e,
            MessageError::UnknownType {
                control_type: 16,
                length: 16
            }
        );
        assert!(!e.is_malformed());
    }

    #[test]
    fn reserved_fields_lenient_by_default_strict_on_request() {
        // Reserved0 of the header.
        let mut b = STOPCCRQ;
        b[11] = 1;
        let lenient = Message::parse(&b).unwrap();
        assert_eq!(
            lenient.to_vec(),
            STOPCCRQ,
            "emit writes reserved fields as 0"
        );
        assert_eq!(
            Message::parse_strict(&b),
            Err(MessageError::ReservedNonZero {
                control_type: ControlMessageType::StopControlConnectionRequest,
                field: "Reserved0",
                value: 1
            })
        );
        // Reserved2 of a StopCCRQ body.
        let mut b = STOPCCRQ;
        b[15] = 7;
        assert!(Message::parse(&b).is_ok());
        assert_eq!(
            Message::parse_strict(&b),
            Err(MessageError::ReservedNonZero {
                control_type: ControlMessageType::StopControlConnectionRequest,
                field: "Reserved2",
                value: 7
            })
        );
        // Reserved1 of an SCCRQ (after Protocol Version).
        let mut b = SCCRQ_PPTP_LINUX;
        b[14] = 0x12;
        assert!(!Message::parse_strict(&b).unwrap_err().is_malformed());
    }

    #[test]
    fn text_padding_garbage_is_normalised() {
        let mut b = SCCRP_PPTPD;
        // Host Name "local" starts at 28; put junk after its NUL.
        b[40] = b'X';
        let m = Message::parse(&b).unwrap();
        let Message::StartControlConnectionReply(r) = m else {
            panic!("not an SCCRP");
        };
        assert_eq!(r.host_name, text("local"));
        assert_eq!(m.to_vec(), SCCRP_PPTPD);
    }

    #[test]
    fn emit_into_bytes_mut() {
        let mut buf = bytes::BytesMut::new();
        let m = Message::parse(&SLI).unwrap();
        m.emit(&mut buf);
        assert_eq!(&buf[..], &SLI[..]);
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(m in message()) {
            let bytes = m.to_vec();
            prop_assert_eq!(bytes.len(), m.buffer_len());
            prop_assert_eq!(Message::parse(&bytes), Ok(m));
            prop_assert_eq!(Message::parse_strict(&bytes), Ok(m));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Message::parse(&bytes);
            let _ = Message::parse_strict(&bytes);
        }
    }

    /// Seeded reproducer of the round-trip property: full-width text with no terminator and
    /// unknown code points everywhere.
    #[test]
    fn round_trip_reproducer() {
        let m = Message::from(StartControlConnectionReply {
            protocol_version: 0xffff,
            result: StartControlConnectionResult::Unknown(0),
            error: ErrorCode::Unknown(0xee),
            framing_capabilities: FramingCapabilities::from_bits_retain(u32::MAX),
            bearer_capabilities: BearerCapabilities::NONE,
            maximum_channels: 0,
            firmware_revision: 0xabcd,
            host_name: TextField::new(&[0xff; 64]).unwrap(),
            vendor: TextField::new(b"v").unwrap(),
        });
        assert_eq!(Message::parse(&m.to_vec()), Ok(m));
    }
}
