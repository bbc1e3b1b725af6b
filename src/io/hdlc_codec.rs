//! tokio-util codec adapter for the RFC 1662 framer in [`crate::hdlc`].
//!
//! `Framed::new(tty, HdlcCodec::default())` turns an async byte stream (serial port, pty, TCP
//! socket to a terminal server) into a stream of PPP frames and a sink for them. Bad frames are
//! counted in the decoder's [`WanErrorCounters`](crate::hdlc::WanErrorCounters) and skipped,
//! never returned as `Err`; an `Err` from the stream is a real I/O error only.
//!
//! The line driver keeps the inter-octet timer: when it fires with
//! [`Decoder::is_mid_frame`](crate::hdlc::Decoder::is_mid_frame) true, it calls
//! `codec.decoder_mut().handle_idle()` (through `Framed::codec_mut`); when the transmit side
//! has been quiet, `codec.encoder_mut().handle_idle()`.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec;

use crate::hdlc::{Decoder, DecoderConfig, EncodeError, Encoder, EncoderConfig};

/// An HDLC framer for `tokio_util::codec::Framed`: items are unframed PPP frames.
#[derive(Debug, Clone, Default)]
pub struct HdlcCodec {
    decoder: Decoder,
    encoder: Encoder,
}

impl HdlcCodec {
    /// A codec with the given receive and transmit parameters.
    #[must_use]
    pub fn new(rx: DecoderConfig, tx: EncoderConfig) -> Self {
        HdlcCodec {
            decoder: Decoder::new(rx),
            encoder: Encoder::new(tx),
        }
    }

    /// The receive side: counters, statistics, ACCM/FCS changes, driver events.
    #[must_use]
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The receive side, mutable.
    pub fn decoder_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }

    /// The transmit side.
    #[must_use]
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The transmit side, mutable.
    pub fn encoder_mut(&mut self) -> &mut Encoder {
        &mut self.encoder
    }

    fn encode_slice(&mut self, frame: &[u8], dst: &mut BytesMut) -> io::Result<()> {
        self.encoder
            .encode(frame, dst)
            .map_err(|e: EncodeError| io::Error::new(io::ErrorKind::InvalidInput, e))
    }
}

impl codec::Decoder for HdlcCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        loop {
            let mut input: &[u8] = src;
            let before = input.len();
            let result = self.decoder.decode(&mut input);
            let used = before - input.len();
            let frame = match result {
                Some(Ok(frame)) => Some(BytesMut::from(frame)),
                // Counted by the decoder; skip it.
                Some(Err(_)) => None,
                None => {
                    // Everything was taken in; a partial frame stays in the decoder.
                    src.advance(used);
                    return Ok(None);
                }
            };
            src.advance(used);
            if frame.is_some() {
                return Ok(frame);
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        let frame = self.decode(src)?;
        if frame.is_none() {
            // The line closed: a partial frame is dropped without counting a line error.
            self.decoder.reset();
        }
        Ok(frame)
    }
}

impl codec::Encoder<&[u8]> for HdlcCodec {
    type Error = io::Error;

    fn encode(&mut self, frame: &[u8], dst: &mut BytesMut) -> io::Result<()> {
        self.encode_slice(frame, dst)
    }
}

impl codec::Encoder<Bytes> for HdlcCodec {
    type Error = io::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_slice(&frame, dst)
    }
}

impl codec::Encoder<BytesMut> for HdlcCodec {
    type Error = io::Error;

    fn encode(&mut self, frame: BytesMut, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_slice(&frame, dst)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use tokio_util::codec::{Decoder as _, Encoder as _};

    const A: &[u8] = b"\xff\x03\xc0\x21\x09\x01\x00\x08\x00\x00\x00\x00";
    const B: &[u8] = b"\xff\x03\x80\x21\x7e\x7d";

    #[test]
    fn frames_out_of_a_byte_stream() {
        let mut codec = HdlcCodec::default();
        let mut wire = BytesMut::new();
        codec.encode(A, &mut wire).unwrap();
        codec.encode(Bytes::from_static(B), &mut wire).unwrap();
        // A corrupted frame in the middle is skipped and counted, not an Err.
        let mut bad = BytesMut::new();
        HdlcCodec::default().encode(A, &mut bad).unwrap();
        bad[4] ^= 0x01;
        wire.extend_from_slice(&bad);
        codec.encode(BytesMut::from(B), &mut wire).unwrap();

        let mut rx = HdlcCodec::default();
        let mut src = BytesMut::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(7) {
            src.extend_from_slice(chunk);
            while let Some(f) = rx.decode(&mut src).unwrap() {
                got.push(f);
            }
            assert!(src.is_empty(), "the codec takes every octet in");
        }
        assert_eq!(got, vec![A, B, B]);
        assert_eq!(rx.decoder().counters().crc_errors, 1);
        assert_eq!(rx.decoder().stats().frames_ok, 3);
    }

    #[test]
    fn decode_eof_drops_partial_frame() {
        let mut codec = HdlcCodec::default();
        let mut wire = BytesMut::new();
        codec.encode(A, &mut wire).unwrap();
        let mut src = BytesMut::from(&wire[..wire.len() - 3]);
        assert!(codec.decode_eof(&mut src).unwrap().is_none());
        assert!(!codec.decoder().is_mid_frame());
        assert!(codec.decoder().counters().is_zero());
    }

    #[test]
    fn too_short_frame_is_invalid_input() {
        let mut codec = HdlcCodec::default();
        let mut dst = BytesMut::new();
        let err = codec.encode(&b"\x21"[..], &mut dst).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn framed_over_a_duplex_pipe() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut near, mut far) = tokio::io::duplex(64);
        let mut codec = HdlcCodec::default();
        let mut wire = BytesMut::new();
        codec.encode(A, &mut wire).unwrap();
        codec.encode(B, &mut wire).unwrap();
        let writer = tokio::spawn(async move {
            near.write_all(&wire).await.unwrap();
            near.shutdown().await.unwrap();
        });
        let mut rx = HdlcCodec::default();
        let mut src = BytesMut::new();
        let mut got = Vec::new();
        loop {
            while let Some(f) = rx.decode(&mut src).unwrap() {
                got.push(f);
            }
            if far.read_buf(&mut src).await.unwrap() == 0 {
                break;
            }
        }
        writer.await.unwrap();
        assert_eq!(got, vec![A, B]);
    }
}
