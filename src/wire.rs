//! Bounds-checked cursors shared by every wire codec.
//!
//! Parsers read untrusted bytes only through [`Reader`]: every read is checked, and
//! [`Reader::finish`] rejects trailing data, so a parser built on it cannot index out of
//! bounds or silently ignore junk (STYLE habit 6, after rustls' `msgs::codec::Reader`).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

/// A read past the end of the input, or data left over where none may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended `needed` octets too early.
    #[error("truncated: {needed} more octet(s) needed")]
    Truncated {
        /// How many more octets the read needed.
        needed: usize,
    },
    /// `extra` octets followed the end of a structure that must end the input.
    #[error("{extra} trailing octet(s)")]
    TrailingData {
        /// How many octets were left over.
        extra: usize,
    },
}

/// A forward-only, bounds-checked cursor over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Octets not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Octets read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every octet has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes the next `n` octets.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match rest.get(..n) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(WireError::Truncated {
                needed: n - rest.len(),
            }),
        }
    }

    /// Takes the next `n` octets as a sub-reader.
    pub fn sub(&mut self, n: usize) -> Result<Reader<'a>, WireError> {
        self.take(n).map(Reader::new)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// Reads one octet.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        self.array::<1>().map(|[b]| b)
    }

    /// Reads a big-endian (network order) 16-bit value.
    pub fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_be_bytes)
    }

    /// Reads a big-endian (network order) 32-bit value.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_be_bytes)
    }

    /// Takes everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        s
    }

    /// Looks at the next octet without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Succeeds only if every octet has been read.
    pub fn finish(self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(WireError::TrailingData { extra }),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_in_network_order() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(0x0203));
        assert_eq!(r.u32(), Ok(0x0405_0607));
        assert!(r.is_empty());
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn short_reads_fail_without_consuming() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u32(), Err(WireError::Truncated { needed: 1 }));
        assert_eq!(r.remaining(), 3);
        assert_eq!(r.take(2), Ok(&[1u8, 2][..]));
        assert_eq!(r.take(5), Err(WireError::Truncated { needed: 4 }));
        assert_eq!(r.finish(), Err(WireError::TrailingData { extra: 1 }));
    }

    #[test]
    fn sub_reader_is_bounded() {
        let mut r = Reader::new(&[9, 8, 7, 6]);
        let mut s = r.sub(2).unwrap();
        assert_eq!(s.u16(), Ok(0x0908));
        assert_eq!(s.u8(), Err(WireError::Truncated { needed: 1 }));
        assert_eq!(r.rest(), &[7, 6]);
        assert_eq!(r.peek(), None);
    }
}
