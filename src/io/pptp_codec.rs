//! tokio-util codec adapter for the PPTP control connection (TCP port 1723).
//!
//! [`PptpControlCodec`] frames by the Length field and checks the header the same way
//! [`ControlStream`](crate::pptp::message::ControlStream) does (both use
//! [`peek_message_len`]). A skippable problem (unknown message type, wrong length for a known
//! type) comes back as an item ([`ControlItem::Unknown`] / [`ControlItem::Invalid`]), as the
//! tokio-util `Decoder` documentation advises; a broken header comes back as `Err`, after which
//! the connection must be closed (RFC 2637: "Loss of synchronization must result in immediate
//! closing of the control connection's TCP session").

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use crate::pptp::message::{
    peek_message_len, ControlItem, HeaderError, Message, DEFAULT_MAX_MESSAGE_LEN,
    MAX_KNOWN_MESSAGE_LEN,
};
use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// Errors of the control connection codec. Both are fatal to the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PptpCodecError {
    /// The underlying socket failed.
    #[error("control connection I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent a broken header; the stream cannot be resynchronised.
    #[error("control connection lost synchronisation: {0}")]
    Framing(#[from] HeaderError),
}

/// Decodes [`ControlItem`]s from and encodes [`Message`]s to a PPTP control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PptpControlCodec {
    max_len: u16,
}

impl Default for PptpControlCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl PptpControlCodec {
    /// A codec accepting messages up to [`DEFAULT_MAX_MESSAGE_LEN`] octets.
    pub fn new() -> Self {
        Self::with_max_len(DEFAULT_MAX_MESSAGE_LEN)
    }

    /// A codec accepting messages up to `max_len` octets (never less than 220, the largest
    /// RFC 2637 message).
    pub fn with_max_len(max_len: u16) -> Self {
        let floor = u16::try_from(MAX_KNOWN_MESSAGE_LEN).unwrap_or(u16::MAX);
        PptpControlCodec {
            max_len: max_len.max(floor),
        }
    }

    /// The largest Length this codec accepts.
    pub fn max_len(&self) -> u16 {
        self.max_len
    }
}

impl Decoder for PptpControlCodec {
    type Item = ControlItem;
    type Error = PptpCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ControlItem>, PptpCodecError> {
        match peek_message_len(src, self.max_len)? {
            Some(length) => {
                let frame = src.split_to(usize::from(length));
                Ok(Some(ControlItem::from_frame(&frame)))
            }
            None => {
                // Reserve room for the rest of the message so the next read can complete it.
                if src.len() >= 2 {
                    let want = usize::from(u16::from_be_bytes([
                        src.first().copied().unwrap_or(0),
                        src.get(1).copied().unwrap_or(0),
                    ]));
                    src.reserve(want.saturating_sub(src.len()));
                }
                Ok(None)
            }
        }
    }
}

impl Encoder<&Message> for PptpControlCodec {
    type Error = PptpCodecError;

    fn encode(&mut self, item: &Message, dst: &mut BytesMut) -> Result<(), PptpCodecError> {
        dst.reserve(item.buffer_len());
        item.emit(dst);
        Ok(())
    }
}

impl Encoder<Message> for PptpControlCodec {
    type Error = PptpCodecError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), PptpCodecError> {
        self.encode(&item, dst)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::pptp::message::{
        CallClearRequest, ControlMessageType, EchoReply, EchoRequest, EchoResult, ErrorCode,
        MessageError,
    };

    fn echo(identifier: u32) -> Message {
        EchoRequest { identifier }.into()
    }

    #[test]
    fn decode_in_pieces() {
        let mut codec = PptpControlCodec::new();
        let wire = [echo(1).to_vec(), echo(2).to_vec()].concat();
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for chunk in wire.chunks(5) {
            buf.extend_from_slice(chunk);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                items.push(item);
            }
        }
        assert_eq!(
            items,
            vec![ControlItem::Message(echo(1)), ControlItem::Message(echo(2))]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn encode_then_decode() {
        let mut codec = PptpControlCodec::new();
        let mut buf = BytesMut::new();
        let reply = Message::from(EchoReply {
            identifier: 9,
            result: EchoResult::Ok,
            error: ErrorCode::None,
        });
        codec.encode(&reply, &mut buf).unwrap();
        codec
            .encode(Message::from(CallClearRequest { call_id: 3 }), &mut buf)
            .unwrap();
        assert_eq!(buf.len(), 20 + 16);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(ControlItem::Message(reply))
        );
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(ControlItem::Message(CallClearRequest { call_id: 3 }.into()))
        );
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn skippable_items_and_fatal_errors() {
        let mut codec = PptpControlCodec::new();
        let mut unknown = echo(1).to_vec();
        unknown[9] = 99;
        let mut short_reply = echo(1).to_vec();
        short_reply[9] = 6; // Echo-Reply needs 20 octets
        let mut buf = BytesMut::from(&[unknown, short_reply][..].concat()[..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(ControlItem::Unknown {
                control_type: 99,
                length: 16
            })
        );
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(ControlItem::Invalid(MessageError::WrongLength {
                control_type: ControlMessageType::EchoReply,
                expected: 20,
                length: 16
            }))
        );
        let mut bad = BytesMut::from(&[0x00, 0x10, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef][..]);
        assert!(matches!(
            codec.decode(&mut bad),
            Err(PptpCodecError::Framing(HeaderError::BadCookie(0xdead_beef)))
        ));
    }

    #[test]
    fn max_len_floor() {
        assert_eq!(PptpControlCodec::with_max_len(0).max_len(), 220);
        let mut codec = PptpControlCodec::with_max_len(300);
        let mut buf = BytesMut::from(&[0x01, 0x2d][..]); // 301
        assert!(matches!(
            codec.decode(&mut buf),
            Err(PptpCodecError::Framing(HeaderError::LengthTooLong {
                length: 301,
                max: 300
            }))
        ));
    }

    #[test]
    fn eof_inside_a_message_is_an_error() {
        let mut codec = PptpControlCodec::new();
        let mut buf = BytesMut::from(&echo(1).to_vec()[..10]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(PptpCodecError::Io(_))
        ));
        let mut empty = BytesMut::new();
        assert!(codec.decode_eof(&mut empty).unwrap().is_none());
    }
}
