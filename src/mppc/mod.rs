//! Microsoft Point-to-Point Compression, MPPC (RFC 2118).
//!
//! MPPC is an LZ77 variant with an 8192-octet history shared by consecutive packets: a
//! [`Compressor`] on one side and a [`Decompressor`] on the other keep identical histories as
//! long as every packet arrives, in order. Each packet carries the flags of the first header
//! octet ([`PacketFlags`]); the coherency count and MPPE's encryption live in `crate::mppe`,
//! which builds the combined MPPC+MPPE pipeline on this module.
//!
//! # Bitstream (RFC 2118 section 4)
//! Bits are packed most significant first. Each symbol is either
//! - a literal: `0xxxxxxx` for octets below 0x80, `10` + the low 7 bits for octets 0x80..=0xff;
//! - a copy tuple: an offset back into the history, then a length of match:
//!
//! | offset      | bits                        | length      | bits                       |
//! |-------------|-----------------------------|-------------|----------------------------|
//! | 0..63       | `1111` + 6 bits             | 3           | `0`                        |
//! | 64..319     | `1110` + 8 bits of off-64   | 4..7        | `10` + 2 low bits          |
//! | 320..8191   | `110` + 13 bits of off-320  | 8..15       | `110` + 3 low bits         |
//! |             |                             | ...         | ...                        |
//! |             |                             | 4096..8191  | `111111111110` + 12 bits   |
//!
//! The last symbol is followed by zero bits up to the next octet boundary. No symbol is shorter
//! than 8 bits, so fewer than 8 bits left at the end are padding.
//!
//! # History model
//! A packet is decoded at the current history position. Bit B moves that position to the front
//! without erasing the rest, so offsets larger than the position reach back into the previous
//! round (`(pos - offset) mod 8192`, as FreeBSD's sliding history does). Only octets written
//! since the last flush may be referred to ("Initialized history that has not been used for
//! compressing data must not be referred to in the compressed packets", RFC 2118 section 3.1);
//! anything else is an error. The compressor itself never refers back past a restart.
//!
//! # Safety contract
//! The decompressor takes untrusted input. It never panics, never reads or writes outside its
//! buffers, and produces at most [`HISTORY_SIZE`] octets per packet; any malformed stream is an
//! [`MppcError`], after which it drops packets until one carries [`PacketFlags::FLUSHED`].
//! Neither side allocates per packet.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod bits;
mod compress;
mod decompress;

pub use compress::{Compressor, MatchFinder};
pub use decompress::Decompressor;

/// Size of the MPPC history buffer in octets (RFC 2118 section 4: "an 8K history buffer").
pub const HISTORY_SIZE: usize = 8192;

/// Longest match a copy tuple can encode (length code `111111111110` + 12 bits).
pub const MAX_MATCH: usize = 8191;

/// Shortest match a copy tuple can encode (length code `0`).
pub const MIN_MATCH: usize = 3;

/// The MPPC/MPPE packet flags: the high nibble of the first header octet (RFC 2118 section 3.1,
/// RFC 3078 section 3).
///
/// A = 0x80 [`FLUSHED`](Self::FLUSHED), B = 0x40 [`AT_FRONT`](Self::AT_FRONT),
/// C = 0x20 [`COMPRESSED`](Self::COMPRESSED), D = 0x10 [`ENCRYPTED`](Self::ENCRYPTED) (MPPE's bit,
/// defined here so both layers share one type).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct PacketFlags(pub u8);

impl PacketFlags {
    /// Bit A: the history was reinitialized before this packet ("FLUSHED").
    pub const FLUSHED: PacketFlags = PacketFlags(0x80);
    /// Bit B: the packet was placed at the front of the history buffer.
    pub const AT_FRONT: PacketFlags = PacketFlags(0x40);
    /// Bit C: the packet is compressed.
    pub const COMPRESSED: PacketFlags = PacketFlags(0x20);
    /// Bit D: the packet is encrypted (MPPE, RFC 3078).
    pub const ENCRYPTED: PacketFlags = PacketFlags(0x10);

    /// No flag set.
    pub const fn empty() -> Self {
        PacketFlags(0)
    }

    /// The flags of a header's first octet (its high nibble; the low nibble belongs to the
    /// coherency count).
    pub const fn from_header_octet(octet: u8) -> Self {
        PacketFlags(octet & 0xf0)
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: PacketFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: PacketFlags) {
        self.0 |= other.0;
    }

    /// Clears the bits of `other`.
    pub fn remove(&mut self, other: PacketFlags) {
        self.0 &= !other.0;
    }
}

impl core::ops::BitOr for PacketFlags {
    type Output = PacketFlags;
    fn bitor(self, rhs: PacketFlags) -> PacketFlags {
        PacketFlags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for PacketFlags {
    fn bitor_assign(&mut self, rhs: PacketFlags) {
        self.0 |= rhs.0;
    }
}

/// Why a packet could not be decompressed. After any of these the [`Decompressor`] needs a
/// packet with [`PacketFlags::FLUSHED`] (the caller sends a CCP Reset-Request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MppcError {
    /// The bitstream ended inside a symbol.
    #[error("compressed data truncated inside a symbol")]
    Truncated,
    /// A copy tuple points before the start of the valid history (or has offset 0).
    #[error("copy offset {offset} reaches before the {available} octet(s) of valid history")]
    BadOffset {
        /// The decoded offset.
        offset: usize,
        /// How many octets of history could be referred to.
        available: usize,
    },
    /// A length-of-match code with twelve or more leading one bits (no such code exists).
    #[error("invalid length-of-match code")]
    BadLength,
    /// The decompressed packet would run past the end of the history buffer.
    #[error("decompressed data overflows the history buffer")]
    OutputOverflow,
    /// An earlier error left the history out of sync; packets are dropped until one arrives
    /// with the FLUSHED bit.
    #[error("history out of sync: waiting for a FLUSHED packet")]
    NeedFlush,
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn flags_are_the_high_nibble() {
        let f = PacketFlags::from_header_octet(0xa5);
        assert!(f.contains(PacketFlags::FLUSHED));
        assert!(f.contains(PacketFlags::COMPRESSED));
        assert!(!f.contains(PacketFlags::AT_FRONT));
        assert!(!f.contains(PacketFlags::ENCRYPTED));
        assert_eq!(f.0, 0xa0);
        let mut g = PacketFlags::empty();
        g |= PacketFlags::AT_FRONT | PacketFlags::ENCRYPTED;
        assert_eq!(g, PacketFlags(0x50));
        g.remove(PacketFlags::AT_FRONT);
        assert_eq!(g, PacketFlags::ENCRYPTED);
        g.insert(PacketFlags::FLUSHED);
        assert_eq!(g.0, 0x90);
    }

    /// Deterministic xorshift generator for test data.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Compressible data: words from a small vocabulary, with occasional noise.
    pub(crate) fn texty(seed: u64, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "the ",
            "licence ",
            "program ",
            "GNU ",
            "of ",
            "and ",
            "to ",
            "free ",
            "software ",
            "you ",
            "a ",
            "copy ",
            "\n",
            "work ",
            "covered ",
            "this ",
            "\u{e9}t\u{e9} ",
        ];
        let mut rng = Rng::new(seed);
        let mut v = Vec::with_capacity(len + 16);
        while v.len() < len {
            let r = rng.next();
            if r % 31 == 0 {
                v.push((r >> 8) as u8);
            } else {
                v.extend_from_slice(WORDS[(r >> 16) as usize % WORDS.len()].as_bytes());
            }
        }
        v.truncate(len);
        v
    }

    pub(crate) fn random(seed: u64, len: usize) -> Vec<u8> {
        let mut rng = Rng::new(seed);
        (0..len).map(|_| (rng.next() >> 24) as u8).collect()
    }

    /// One step of a round-trip scenario.
    #[derive(Debug, Clone)]
    enum Step {
        /// Send a packet of compressible (`true`) or random data of the given size.
        Packet { texty: bool, len: usize, seed: u64 },
        /// CCP Reset-Request: the compressor resets; the next packet is FLUSHED.
        Reset,
        /// The next packet is lost: the decompressor sees nothing, then a Reset-Request goes back.
        Lose { len: usize, seed: u64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            12 => (any::<bool>(), 0usize..1600, any::<u64>())
                .prop_map(|(texty, len, seed)| Step::Packet { texty, len, seed }),
            2 => (any::<bool>(), 1600usize..=8192 + 64, any::<u64>())
                .prop_map(|(texty, len, seed)| Step::Packet { texty, len, seed }),
            1 => Just(Step::Reset),
            1 => (0usize..1600, any::<u64>()).prop_map(|(len, seed)| Step::Lose { len, seed }),
        ]
    }

    /// Drives one compressor/decompressor pair through `steps`, checking every delivered
    /// packet, and returns the flags seen (so tests can assert coverage).
    fn run(steps: &[Step], finder: MatchFinder) -> Vec<PacketFlags> {
        let mut c = Compressor::with_match_finder(finder);
        let mut d = Decompressor::new();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for s in steps {
            match *s {
                Step::Packet {
                    texty: t,
                    len,
                    seed,
                } => {
                    let input = if t {
                        texty(seed, len)
                    } else {
                        random(seed, len)
                    };
                    out.clear();
                    let flags = c.compress(&input, &mut out);
                    seen.push(flags);
                    let wire: &[u8] = if flags.contains(PacketFlags::COMPRESSED) {
                        assert!(out.len() <= input.len(), "compressed output expands");
                        &out
                    } else {
                        assert!(out.is_empty());
                        &input
                    };
                    let got = d.decompress(flags, wire).expect("in-sync packet decodes");
                    assert_eq!(got, &input[..]);
                }
                Step::Reset => c.reset(),
                Step::Lose { len, seed } => {
                    let input = texty(seed, len);
                    out.clear();
                    let _ = c.compress(&input, &mut out);
                    // The receiver notices the gap (MPPE coherency count), resets and asks
                    // for a flush; the compressor honours the Reset-Request.
                    d.reset();
                    c.reset();
                }
            }
        }
        seen
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn roundtrip_chain(steps in proptest::collection::vec(step(), 1..40)) {
            run(&steps, MatchFinder::default());
        }

        #[test]
        fn roundtrip_single_probe(steps in proptest::collection::vec(step(), 1..40)) {
            run(&steps, MatchFinder::SingleProbe);
        }

        #[test]
        fn roundtrip_lazy(steps in proptest::collection::vec(step(), 1..40)) {
            run(&steps, MatchFinder::Chain { depth: 32, lazy: true });
        }
    }

    /// Seeded reproducer for the round-trip properties: a fixed scenario that walks through
    /// every flag combination (first packet A|B|C, restarts at the front, expansion sent
    /// uncompressed followed by FLUSHED, Reset-Request, loss and resynchronisation).
    #[test]
    fn roundtrip_reproducer() {
        let mut steps = Vec::new();
        let mut rng = Rng::new(0x2118);
        for i in 0..200u64 {
            let r = rng.next();
            steps.push(match i % 17 {
                5 => Step::Reset,
                11 => Step::Lose {
                    len: (r % 1600) as usize,
                    seed: r,
                },
                3 => Step::Packet {
                    texty: false,
                    len: (r % 1600) as usize,
                    seed: r,
                },
                13 => Step::Packet {
                    texty: true,
                    len: 1600 + (r % 6600) as usize,
                    seed: r,
                },
                16 => Step::Packet {
                    texty: true,
                    len: 8192 + (r % 3) as usize,
                    seed: r,
                },
                _ => Step::Packet {
                    texty: true,
                    len: (r % 1600) as usize,
                    seed: r,
                },
            });
        }
        for finder in [
            MatchFinder::SingleProbe,
            MatchFinder::default(),
            MatchFinder::Chain {
                depth: 64,
                lazy: true,
            },
        ] {
            let seen = run(&steps, finder);
            let abc = PacketFlags::FLUSHED | PacketFlags::AT_FRONT | PacketFlags::COMPRESSED;
            assert_eq!(seen[0], abc, "first packet starts a fresh history");
            assert!(seen.contains(&(PacketFlags::AT_FRONT | PacketFlags::COMPRESSED)));
            assert!(seen.contains(&abc));
            assert!(seen.iter().any(|f| !f.contains(PacketFlags::COMPRESSED)));
            assert!(seen.contains(&PacketFlags::COMPRESSED));
        }
    }
}
