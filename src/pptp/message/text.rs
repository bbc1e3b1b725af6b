//! Fixed-width, NUL-padded text fields (host name, vendor, phone numbers, subaddress, call
//! statistics).
//!
//! RFC 2637 describes these as fixed-size octet fields holding an ASCII string that is padded
//! with NULs ("A 64 octet field containing the DNS name of the issuing PAC or PNS. If less than 64
//! octets in length, the remainder of this field is filled with octets of value 0").
//!
//! Decisions, so that receiving stays lenient and never panics:
//! - **Parsing stops at the first NUL.** The octets after it are padding. Some stacks leave
//!   garbage there (a `strncpy` into an uninitialised buffer); it is not kept, so
//!   `emit(parse(x))` writes clean NUL padding and may differ from `x` in those octets only.
//! - **A field without any NUL** is a string of exactly `N` octets (no terminator). It is kept,
//!   and emitted again without a terminator.
//! - **Non-ASCII octets are kept verbatim.** The RFC says ASCII, but vendors put local character
//!   sets in the vendor string; [`TextField::is_ascii`] lets policy code decide and
//!   [`TextField::to_string_lossy`] gives something printable for logs.
//! - **Building a field for sending** ([`TextField::new`]) rejects more than `N` octets and
//!   embedded NULs, because both would not survive the round trip.

use bytes::BufMut;
use std::borrow::Cow;

/// A text field `N` octets wide on the wire (64 for names and numbers, 128 for call statistics).
///
/// Holds at most `N` octets, none of them NUL. `Copy`, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextField<const N: usize = 64> {
    buf: [u8; N],
    len: usize,
}

/// The 128-octet Call Statistics field of a Call-Disconnect-Notify (RFC 2637 §2.13).
pub type CallStatistics = TextField<128>;

/// Why a string cannot be put in a [`TextField`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextFieldError {
    /// The string is longer than the field.
    #[error("text of {len} octets does not fit a {max}-octet field")]
    TooLong {
        /// Length of the rejected string.
        len: usize,
        /// Width of the field.
        max: usize,
    },
    /// The string contains a NUL, which would end it early on the wire.
    #[error("text contains a NUL at offset {at}")]
    ContainsNul {
        /// Offset of the first NUL.
        at: usize,
    },
}

impl<const N: usize> TextField<N> {
    /// Width of the field on the wire, in octets.
    pub const WIRE_LEN: usize = N;

    /// The empty field (all NUL on the wire).
    pub const fn empty() -> Self {
        TextField {
            buf: [0; N],
            len: 0,
        }
    }

    /// Builds a field from `text`, which must fit and must not contain a NUL.
    pub fn new(text: &[u8]) -> Result<Self, TextFieldError> {
        if text.len() > N {
            return Err(TextFieldError::TooLong {
                len: text.len(),
                max: N,
            });
        }
        if let Some(at) = memchr::memchr(0, text) {
            return Err(TextFieldError::ContainsNul { at });
        }
        let mut field = Self::empty();
        if let Some(dst) = field.buf.get_mut(..text.len()) {
            dst.copy_from_slice(text);
        }
        field.len = text.len();
        Ok(field)
    }

    /// Reads a field from its `N` wire octets. Never fails: stops at the first NUL (see the
    /// module documentation for what happens to the octets after it).
    pub fn from_wire(wire: &[u8; N]) -> Self {
        let len = memchr::memchr(0, wire).unwrap_or(N);
        let mut field = Self::empty();
        if let (Some(dst), Some(src)) = (field.buf.get_mut(..len), wire.get(..len)) {
            dst.copy_from_slice(src);
        }
        field.len = len;
        field
    }

    /// Writes the field: its octets, then NULs up to `N`.
    pub fn emit<B: BufMut>(&self, buf: &mut B) {
        buf.put_slice(self.as_bytes());
        buf.put_bytes(0, N - self.len);
    }

    /// The text, without padding.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Length of the text in octets (not counting padding).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the field holds no text.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every octet is ASCII, as RFC 2637 asks.
    pub fn is_ascii(&self) -> bool {
        self.as_bytes().is_ascii()
    }

    /// The text as UTF-8, with invalid sequences replaced, for display and logs.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }
}

impl<const N: usize> Default for TextField<N> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<const N: usize> core::fmt::Debug for TextField<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.as_bytes().escape_ascii().to_string())
    }
}

impl<const N: usize> core::fmt::Display for TextField<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl<const N: usize> TryFrom<&str> for TextField<N> {
    type Error = TextFieldError;
    fn try_from(text: &str) -> Result<Self, TextFieldError> {
        Self::new(text.as_bytes())
    }
}

impl<const N: usize> TryFrom<&[u8]> for TextField<N> {
    type Error = TextFieldError;
    fn try_from(text: &[u8]) -> Result<Self, TextFieldError> {
        Self::new(text)
    }
}

#[cfg(test)]
pub(crate) mod strategy {
    use super::TextField;
    use proptest::prelude::*;

    /// Any valid text field: up to `N` non-NUL octets, ASCII or not.
    pub(crate) fn text<const N: usize>() -> impl Strategy<Value = TextField<N>> {
        proptest::collection::vec(1u8..=255, 0..=N)
            .prop_map(|v| TextField::new(&v).expect("strategy yields valid text"))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn wire64(prefix: &[u8]) -> [u8; 64] {
        let mut w = [0u8; 64];
        w[..prefix.len()].copy_from_slice(prefix);
        w
    }

    #[test]
    fn parse_stops_at_first_nul() {
        let f = TextField::from_wire(&wire64(b"local\0garbage"));
        assert_eq!(f.as_bytes(), b"local");
        assert_eq!(f.len(), 5);
        let mut out = Vec::new();
        f.emit(&mut out);
        assert_eq!(out, wire64(b"local"), "padding after the NUL is normalised");
    }

    #[test]
    fn full_width_without_terminator_is_kept() {
        let w = [b'x'; 64];
        let f = TextField::from_wire(&w);
        assert_eq!(f.len(), 64);
        let mut out = Vec::new();
        f.emit(&mut out);
        assert_eq!(out, w);
    }

    #[test]
    fn non_ascii_is_kept_verbatim() {
        let f = TextField::<64>::from_wire(&wire64("Zürich".as_bytes()));
        assert!(!f.is_ascii());
        assert_eq!(f.to_string_lossy(), "Zürich");
        let junk = TextField::<64>::from_wire(&wire64(&[0xff, 0xfe]));
        assert_eq!(junk.as_bytes(), &[0xff, 0xfe]);
        assert_eq!(junk.to_string_lossy(), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn new_validates() {
        assert_eq!(
            TextField::<4>::new(b"12345"),
            Err(TextFieldError::TooLong { len: 5, max: 4 })
        );
        assert_eq!(
            TextField::<64>::new(b"ab\0c"),
            Err(TextFieldError::ContainsNul { at: 2 })
        );
        let f = TextField::<4>::try_from("1234").unwrap();
        assert_eq!(f.as_bytes(), b"1234");
        assert!(TextField::<64>::default().is_empty());
    }

    #[test]
    fn call_statistics_is_128_wide() {
        let mut out = Vec::new();
        CallStatistics::try_from("ok").unwrap().emit(&mut out);
        assert_eq!(out.len(), 128);
        assert_eq!(CallStatistics::WIRE_LEN, 128);
    }

    #[test]
    fn debug_escapes() {
        let f = TextField::<8>::new(b"a\x01").unwrap();
        assert_eq!(format!("{f:?}"), "\"a\\\\x01\"");
    }
}
