//! A sans-IO splitter for the control connection's TCP byte stream.
//!
//! TCP delivers the control messages as a byte stream in arbitrary pieces. [`ControlStream`]
//! takes those pieces ([`ControlStream::handle_bytes`]) and hands back one [`ControlItem`] per
//! message ([`ControlStream::poll_item`]): a parsed [`Message`], an unknown message type (skipped,
//! reported with its raw type and length), or a well-framed message whose body is invalid
//! (skipped, reported with the error). A broken header is fatal ([`HeaderError`]): RFC 2637 says
//! loss of synchronisation must close the connection, so the stream stays failed from then on.

use super::{peek_message_len, HeaderError, Message, MessageError, MAX_KNOWN_MESSAGE_LEN};
use bytes::{Buf, BytesMut};

/// Default limit for the Length field of one message. The largest RFC 2637 message is 220
/// octets; the margin leaves room for unknown (future or vendor) types, which are skipped.
pub const DEFAULT_MAX_MESSAGE_LEN: u16 = 1024;

/// One message taken off a control stream.
// `Message` (up to ~240 octets, the ICRQ with three text fields) is the common case; boxing it
// would allocate once per message to save a copy of a few hundred octets.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlItem {
    /// A valid control message.
    Message(Message),
    /// A well-framed message of a type this implementation does not know; it was skipped.
    Unknown {
        /// The raw Control Message Type.
        control_type: u16,
        /// The Length field (octets skipped).
        length: u16,
    },
    /// A well-framed message of a known type that failed validation (for example a wrong
    /// length for its type); it was skipped. The peer may be told with General Error 2
    /// (Bad-Format).
    Invalid(MessageError),
}

impl ControlItem {
    /// Classifies one framed message (exactly the `Length` octets [`peek_message_len`] found).
    pub fn from_frame(frame: &[u8]) -> ControlItem {
        match Message::parse(frame) {
            Ok(message) => ControlItem::Message(message),
            Err(MessageError::UnknownType {
                control_type,
                length,
            }) => ControlItem::Unknown {
                control_type,
                length,
            },
            Err(e) => ControlItem::Invalid(e),
        }
    }
}

/// Splits a control connection byte stream into messages. Sans-IO: no socket, no clock.
#[derive(Debug, Clone)]
pub struct ControlStream {
    buf: BytesMut,
    max_len: u16,
    failed: Option<HeaderError>,
}

impl Default for ControlStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ControlStream {
    /// A stream accepting messages up to [`DEFAULT_MAX_MESSAGE_LEN`] octets.
    pub fn new() -> Self {
        Self::with_max_len(DEFAULT_MAX_MESSAGE_LEN)
    }

    /// A stream accepting messages up to `max_len` octets (never less than the largest message
    /// RFC 2637 defines, 220 octets).
    pub fn with_max_len(max_len: u16) -> Self {
        let floor = u16::try_from(MAX_KNOWN_MESSAGE_LEN).unwrap_or(u16::MAX);
        ControlStream {
            buf: BytesMut::new(),
            max_len: max_len.max(floor),
            failed: None,
        }
    }

    /// The largest Length this stream accepts.
    pub fn max_len(&self) -> u16 {
        self.max_len
    }

    /// Feeds bytes received from TCP. Ignored once the stream has failed.
    pub fn handle_bytes(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Takes the next message off the stream.
    ///
    /// `Ok(None)`: more bytes are needed. `Ok(Some(item))`: one message was consumed (call again,
    /// more may be buffered). `Err`: the header is broken and the connection must be closed;
    /// every later call returns the same error.
    #[must_use = "items must be processed; an error must close the connection"]
    pub fn poll_item(&mut self) -> Result<Option<ControlItem>, HeaderError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match peek_message_len(&self.buf, self.max_len) {
            Ok(None) => Ok(None),
            Ok(Some(length)) => {
                let len = usize::from(length);
                let item = ControlItem::from_frame(self.buf.get(..len).unwrap_or_default());
                self.buf.advance(len);
                Ok(Some(item))
            }
            Err(e) => {
                self.failed = Some(e);
                self.buf = BytesMut::new();
                Err(e)
            }
        }
    }

    /// Octets buffered but not yet returned as items.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// The fatal error, if the stream has failed.
    pub fn error(&self) -> Option<HeaderError> {
        self.failed
    }
}

#[cfg(test)]
mod test {
    use super::super::strategy::message;
    use super::super::*;
    use super::*;
    use proptest::prelude::*;

    fn echo(identifier: u32) -> Message {
        EchoRequest { identifier }.into()
    }

    fn drain(s: &mut ControlStream) -> Result<Vec<ControlItem>, HeaderError> {
        let mut out = Vec::new();
        while let Some(item) = s.poll_item()? {
            out.push(item);
        }
        Ok(out)
    }

    #[test]
    fn byte_by_byte() {
        let wire = [echo(1).to_vec(), echo(2).to_vec()].concat();
        let mut s = ControlStream::new();
        let mut items = Vec::new();
        for b in &wire {
            s.handle_bytes(&[*b]);
            items.extend(drain(&mut s).unwrap());
        }
        assert_eq!(
            items,
            vec![ControlItem::Message(echo(1)), ControlItem::Message(echo(2))]
        );
        assert_eq!(s.buffered_len(), 0);
    }

    #[test]
    fn unknown_type_is_skipped_and_reported() {
        let mut unknown = echo(7).to_vec();
        unknown[9] = 42; // Control Message Type 42
        unknown.extend_from_slice(&[0xAA; 4]);
        unknown[1] = 20; // Length 20
        let wire = [unknown, echo(8).to_vec()].concat();
        let mut s = ControlStream::new();
        s.handle_bytes(&wire);
        assert_eq!(
            drain(&mut s).unwrap(),
            vec![
                ControlItem::Unknown {
                    control_type: 42,
                    length: 20
                },
                ControlItem::Message(echo(8)),
            ]
        );
    }

    #[test]
    fn wrong_length_for_type_is_skipped() {
        let mut long_echo = echo(7).to_vec();
        long_echo.extend_from_slice(&[0; 4]);
        long_echo[1] = 20;
        let mut s = ControlStream::new();
        s.handle_bytes(&[long_echo, echo(9).to_vec()].concat());
        assert_eq!(
            drain(&mut s).unwrap(),
            vec![
                ControlItem::Invalid(MessageError::WrongLength {
                    control_type: ControlMessageType::EchoRequest,
                    expected: 16,
                    length: 20
                }),
                ControlItem::Message(echo(9)),
            ]
        );
    }

    #[test]
    fn bad_cookie_is_fatal_and_sticky() {
        let mut bad = echo(1).to_vec();
        bad[7] ^= 1;
        let mut s = ControlStream::new();
        s.handle_bytes(&echo(3).to_vec());
        s.handle_bytes(&bad);
        assert_eq!(s.poll_item(), Ok(Some(ControlItem::Message(echo(3)))));
        assert_eq!(s.poll_item(), Err(HeaderError::BadCookie(0x1A2B_3C4C)));
        s.handle_bytes(&echo(4).to_vec());
        assert_eq!(s.poll_item(), Err(HeaderError::BadCookie(0x1A2B_3C4C)));
        assert_eq!(s.error(), Some(HeaderError::BadCookie(0x1A2B_3C4C)));
        assert_eq!(s.buffered_len(), 0);
    }

    #[test]
    fn fatal_errors_are_detected_early() {
        // Length < 12 is known after 2 octets.
        let mut s = ControlStream::new();
        s.handle_bytes(&[0, 11]);
        assert_eq!(
            s.poll_item(),
            Err(HeaderError::LengthTooShort { length: 11 })
        );
        // Length above the limit.
        let mut s = ControlStream::new();
        s.handle_bytes(&[0x04, 0x01]);
        assert_eq!(
            s.poll_item(),
            Err(HeaderError::LengthTooLong {
                length: 1025,
                max: 1024
            })
        );
        // PPTP Message Type 2 (management) after 4 octets.
        let mut s = ControlStream::new();
        s.handle_bytes(&[0, 16, 0, 2]);
        assert_eq!(s.poll_item(), Err(HeaderError::BadMessageType(2)));
        // A valid prefix just waits.
        let mut s = ControlStream::new();
        s.handle_bytes(&echo(1).to_vec()[..15]);
        assert_eq!(s.poll_item(), Ok(None));
        assert_eq!(s.buffered_len(), 15);
    }

    #[test]
    fn max_len_has_a_floor() {
        assert_eq!(ControlStream::with_max_len(16).max_len(), 220);
        assert_eq!(ControlStream::with_max_len(4000).max_len(), 4000);
    }

    /// Cuts `wire` at the given points (taken modulo its length, sorted, deduplicated).
    fn chunks(wire: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        at.push(0);
        at.push(wire.len());
        at.sort_unstable();
        at.dedup();
        at.windows(2).map(|w| wire[w[0]..w[1]].to_vec()).collect()
    }

    fn split_all(pieces: &[Vec<u8>]) -> Vec<ControlItem> {
        let mut s = ControlStream::new();
        let mut items = Vec::new();
        for p in pieces {
            s.handle_bytes(p);
            items.extend(drain(&mut s).unwrap());
        }
        assert_eq!(s.buffered_len(), 0);
        items
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_same_messages(
            msgs in proptest::collection::vec(message(), 0..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let wire: Vec<u8> = msgs.iter().flat_map(|m| m.to_vec()).collect();
            let expected: Vec<ControlItem> =
                msgs.iter().copied().map(ControlItem::Message).collect();
            prop_assert_eq!(split_all(&chunks(&wire, &cuts)), expected);
        }
    }

    /// Seeded reproducer of the chunking property: three messages cut inside the header, the
    /// cookie and a text field.
    #[test]
    fn chunking_reproducer() {
        let msgs = [
            echo(0xdead_beef),
            Message::from(CallClearRequest { call_id: 7 }),
            Message::from(StartControlConnectionRequest {
                protocol_version: PROTOCOL_VERSION,
                framing_capabilities: FramingCapabilities::ASYNC,
                bearer_capabilities: BearerCapabilities::ANALOG,
                maximum_channels: 1,
                firmware_revision: 1,
                host_name: TextField::try_from("pac").unwrap(),
                vendor: TextField::try_from("pptp-nas").unwrap(),
            }),
        ];
        let wire: Vec<u8> = msgs.iter().flat_map(|m| m.to_vec()).collect();
        let items = split_all(&chunks(&wire, &[1, 6, 17, 33, 40, 60, 100]));
        assert_eq!(
            items,
            msgs.iter()
                .copied()
                .map(ControlItem::Message)
                .collect::<Vec<_>>()
        );
    }
}
