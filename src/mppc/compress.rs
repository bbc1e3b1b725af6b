//! The MPPC compressor: hash-chain LZ77 over the shared 8192-octet history.

use super::bits::BitWriter;
use super::{PacketFlags, HISTORY_SIZE, MAX_MATCH, MIN_MATCH};

const HASH_BITS: u32 = 13;
const HASH_SIZE: usize = 1 << HASH_BITS;
const HASH_MASK: usize = HASH_SIZE - 1;
const HIST_MASK: usize = HISTORY_SIZE - 1;
/// The history plus slack, so 4- and 8-octet loads at any history position stay in bounds.
const HIST_ALLOC: usize = HISTORY_SIZE + 8;
/// "No position" in the hash heads and chain links.
const NIL: u16 = u16::MAX;
/// Default stop-searching length.
const NICE: usize = 32;
/// Default length after which the chain search is cut to a quarter.
const GOOD: usize = 8;
/// Default longest match whose inner positions are still hashed.
const INSERT_MAX: usize = 16;

/// How the compressor looks for matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MatchFinder {
    /// One hash-table probe per position: the most recent position with the same 3-octet
    /// hash. Fastest, weakest; kept as the baseline the chain must beat.
    SingleProbe,
    /// Hash chains: follow up to `depth` earlier positions with the same hash and keep the
    /// longest match (the nearest one on ties). With `lazy`, a match is deferred by one octet
    /// when the next position starts a longer one.
    Chain {
        /// Candidates examined per position (at least 1).
        depth: u16,
        /// Lazy matching (one octet of look-ahead).
        lazy: bool,
    },
}

impl Default for MatchFinder {
    /// The measured best trade-off (see docs/PERFORMANCE.md, section MPPC).
    fn default() -> Self {
        MatchFinder::Chain {
            depth: 6,
            lazy: false,
        }
    }
}

/// Send side of one MPPC direction: the 8192-octet history, its hash chains and the flags
/// owed to the next packet.
pub struct Compressor {
    hist: Box<[u8; HIST_ALLOC]>,
    /// Most recent position for each hash of 3 octets, or [`NIL`].
    head: Box<[u16; HASH_SIZE]>,
    /// Previous position with the same hash, for every history position.
    prev: Box<[u16; HISTORY_SIZE]>,
    /// Where the next packet goes in the history.
    pos: usize,
    /// The next packet must carry FLUSHED (start, Reset-Request, or after an expansion).
    flush_pending: bool,
    depth: u16,
    lazy: bool,
    /// Stop searching once a match is this long.
    nice: usize,
    /// Search only a quarter of the chain once a match is this long.
    good: usize,
    /// Record the positions inside a match in the hash chains only for matches up to this
    /// long (longer ones are skipped over: cheaper, and they rarely start better matches).
    insert_max: usize,
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Compressor")
            .field("pos", &self.pos)
            .field("flush_pending", &self.flush_pending)
            .field("depth", &self.depth)
            .field("lazy", &self.lazy)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor with an empty history and the default [`MatchFinder`]; its first packet
    /// carries FLUSHED and AT_FRONT.
    pub fn new() -> Self {
        Self::with_match_finder(MatchFinder::default())
    }

    /// A compressor using the given match finder (for benchmarks and tuning; every finder
    /// produces a valid RFC 2118 stream).
    pub fn with_match_finder(finder: MatchFinder) -> Self {
        let (depth, lazy) = match finder {
            MatchFinder::SingleProbe => (1, false),
            MatchFinder::Chain { depth, lazy } => (depth.max(1), lazy),
        };
        Self::tuned(depth, lazy, NICE, GOOD, INSERT_MAX)
    }

    /// A chain finder with every knob exposed, for tuning runs only.
    #[doc(hidden)]
    pub fn tuned(depth: u16, lazy: bool, nice: usize, good: usize, insert_max: usize) -> Self {
        Compressor {
            hist: Box::new([0; HIST_ALLOC]),
            head: Box::new([NIL; HASH_SIZE]),
            prev: Box::new([NIL; HISTORY_SIZE]),
            pos: 0,
            flush_pending: true,
            depth: depth.max(1),
            lazy,
            nice: nice.clamp(MIN_MATCH, MAX_MATCH),
            good: good.max(MIN_MATCH),
            insert_max,
        }
    }

    /// Compresses one PPP payload (protocol field + data, at most [`HISTORY_SIZE`] octets).
    ///
    /// Appends the compressed bits to `out` (which the caller clears and reuses) and returns
    /// the flags (A/B/C). If the returned flags lack [`PacketFlags::COMPRESSED`], the packet
    /// must be sent uncompressed: `out` is left as it was and the caller sends `input` itself.
    /// The compressor has then already reset its history, so the next packet carries FLUSHED.
    /// Input larger than [`HISTORY_SIZE`] is sent uncompressed the same way.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> PacketFlags {
        let mut flags = PacketFlags::empty();
        if self.flush_pending {
            // Bit A: "the sender has initialized its history buffer before compressing the
            // packet" (RFC 2118 section 3.1).
            flags |= PacketFlags::FLUSHED;
            self.restart();
            flags |= PacketFlags::AT_FRONT;
            self.flush_pending = false;
        }
        if input.len() > HISTORY_SIZE {
            self.expanded();
            return flags;
        }
        if self.pos != 0 && self.pos + input.len() >= HISTORY_SIZE {
            // Bit B: "the packet was moved to the front of the history buffer typically
            // because there was no room at the end of the history buffer". A packet never
            // ends exactly at the end of the buffer: FreeBSD's decoder (sys/net/mppcd.c)
            // rejects a copy that reaches the last octet, so restart one octet early as its
            // compressor does.
            self.restart();
            flags |= PacketFlags::AT_FRONT;
        }
        let start = self.pos;
        let end = start + input.len();
        match self.hist.get_mut(start..end) {
            Some(dst) => dst.copy_from_slice(input),
            None => {
                self.expanded();
                return flags;
            }
        }
        let mark = out.len();
        out.reserve(input.len() + 8);
        let ok = if self.depth <= 1 {
            self.encode::<false>(start, end, out)
        } else if self.lazy {
            self.encode_lazy(start, end, out)
        } else {
            self.encode::<true>(start, end, out)
        };
        if !ok {
            // "If the compressed data expands the packet, send it uncompressed and flush"
            // (RFC 2118 section 3.1, bit A; MS-SIPCOMP 3.2.5.1.1: "the data MUST be sent in
            // uncompressed form").
            out.truncate(mark);
            self.expanded();
            return flags;
        }
        self.pos = end;
        flags | PacketFlags::COMPRESSED
    }

    /// CCP Reset-Request received: resets the history; the next packet carries FLUSHED.
    pub fn reset(&mut self) {
        self.restart();
        self.flush_pending = true;
    }

    /// The packet goes uncompressed: forget the history, flag the next packet.
    fn expanded(&mut self) {
        self.restart();
        self.flush_pending = true;
    }

    /// Start writing at the front of the history; old hash entries become invalid.
    fn restart(&mut self) {
        self.head.fill(NIL);
        self.pos = 0;
    }

    #[inline(always)]
    fn byte(&self, i: usize) -> u8 {
        self.hist.get(i & HIST_MASK).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn hash(&self, i: usize) -> usize {
        let v = self.word(i) & 0x00ff_ffff;
        (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize & HASH_MASK
    }

    /// Records position `i` (which has 3 octets of data after it) in the hash chains.
    #[inline(always)]
    fn insert(&mut self, i: usize, h: usize, chain: bool) {
        let old = self.head.get(h).copied().unwrap_or(NIL);
        if chain {
            if let Some(p) = self.prev.get_mut(i & HIST_MASK) {
                *p = old;
            }
        }
        if let Some(hd) = self.head.get_mut(h) {
            *hd = i as u16;
        }
    }

    /// Length of the common prefix of `hist[a..]` and `hist[b..]`, at most `max` (`a < b`,
    /// `b + max <= HISTORY_SIZE`).
    #[inline(always)]
    fn match_len(&self, a: usize, b: usize, max: usize) -> usize {
        let h = &self.hist[..];
        let mut l = 0;
        while l + 8 <= max {
            let (Some(x), Some(y)) = (read_u64(h, a + l), read_u64(h, b + l)) else {
                break;
            };
            let d = x ^ y;
            if d != 0 {
                return l + (d.trailing_zeros() / 8) as usize;
            }
            l += 8;
        }
        while l < max && h.get(a + l).is_some() && h.get(a + l) == h.get(b + l) {
            l += 1;
        }
        l
    }

    /// Best match for position `i` among the candidates of hash `h`: (length, offset), with
    /// length 0 when nothing of at least [`MIN_MATCH`] octets was found.
    #[inline(always)]
    fn find<const CHAIN: bool>(&self, i: usize, h: usize, max: usize) -> (usize, usize) {
        let mut cand = self.head.get(h).copied().unwrap_or(NIL);
        let mut best_len = MIN_MATCH - 1;
        let mut best_off = 0;
        let mut depth = if CHAIN { self.depth } else { 1 };
        // A match this long is good enough: stop looking.
        let nice = max.min(self.nice);
        let head8 = self.qword(i);
        while cand != NIL && depth > 0 {
            let c = usize::from(cand);
            // Chains are strictly decreasing within a history round; anything else is stale.
            if c >= i {
                break;
            }
            // Most candidates differ within 8 octets: measure those without a
            // data-dependent branch (the comparison result is selected, not branched on).
            let x = self.qword(c) ^ head8;
            let l = if x != 0 {
                (x.trailing_zeros() / 8) as usize
            } else {
                8 + self.match_len(c + 8, i + 8, max.saturating_sub(8))
            };
            let l = l.min(max);
            let better = l > best_len;
            best_off = if better { i - c } else { best_off };
            best_len = if better { l } else { best_len };
            if best_len >= nice {
                break;
            }
            if !CHAIN {
                break;
            }
            if best_len >= self.good {
                depth = depth.min(self.depth / 4 + 1);
            }
            cand = self.prev.get(c).copied().unwrap_or(NIL);
            depth -= 1;
        }
        if best_len >= MIN_MATCH {
            (best_len, best_off)
        } else {
            (0, 0)
        }
    }

    /// The 8 octets at history position `i` (little-endian; the slack keeps it in bounds).
    #[inline(always)]
    fn qword(&self, i: usize) -> u64 {
        read_u64(&self.hist[..], i & HIST_MASK).unwrap_or(0)
    }

    /// The 4 octets at history position `i` (little-endian; the slack keeps it in bounds).
    #[inline(always)]
    fn word(&self, i: usize) -> u32 {
        self.hist
            .get(i & HIST_MASK..)
            .and_then(|s| s.first_chunk::<4>())
            .map_or(0, |c| u32::from_le_bytes(*c))
    }

    /// Greedy parse of `hist[start..end]`; false if the output would be longer than the input.
    fn encode<const CHAIN: bool>(&mut self, start: usize, end: usize, out: &mut Vec<u8>) -> bool {
        let limit = out.len() + (end - start);
        let mut w = BitWriter::new(out);
        let mut i = start;
        while i < end {
            if i + MIN_MATCH <= end {
                let h = self.hash(i);
                let max = (end - i).min(MAX_MATCH);
                let (len, off) = self.find::<CHAIN>(i, h, max);
                self.insert(i, h, CHAIN);
                if len > 0 {
                    put_copy(&mut w, off, len);
                    let stop = if len <= self.insert_max {
                        (i + len).min(end.saturating_sub(MIN_MATCH - 1))
                    } else {
                        0
                    };
                    for j in i + 1..stop {
                        let hj = self.hash(j);
                        self.insert(j, hj, CHAIN);
                    }
                    i += len;
                    if w.len_bytes() > limit {
                        return false;
                    }
                    continue;
                }
            }
            put_literal(&mut w, self.byte(i));
            i += 1;
            if w.len_bytes() > limit {
                return false;
            }
        }
        w.finish();
        true
    }

    /// Lazy parse: before taking a match at `i`, look at `i + 1`; if that one is longer,
    /// emit `hist[i]` as a literal and continue from there.
    fn encode_lazy(&mut self, start: usize, end: usize, out: &mut Vec<u8>) -> bool {
        let limit = out.len() + (end - start);
        let mut w = BitWriter::new(out);
        let mut i = start;
        // A match found at `i` by the previous look-ahead, not yet emitted.
        let mut pending: Option<(usize, usize)> = None;
        while i < end {
            let cur = match pending.take() {
                Some(m) => m,
                None if i + MIN_MATCH <= end => {
                    let h = self.hash(i);
                    let m = self.find::<true>(i, h, (end - i).min(MAX_MATCH));
                    self.insert(i, h, true);
                    m
                }
                None => (0, 0),
            };
            let (len, off) = cur;
            if len == 0 {
                put_literal(&mut w, self.byte(i));
                i += 1;
            } else {
                let j = i + 1;
                if len < 32 && j + MIN_MATCH <= end {
                    let h = self.hash(j);
                    let next = self.find::<true>(j, h, (end - j).min(MAX_MATCH));
                    self.insert(j, h, true);
                    if next.0 > len {
                        put_literal(&mut w, self.byte(i));
                        i = j;
                        pending = Some(next);
                        if w.len_bytes() > limit {
                            return false;
                        }
                        continue;
                    }
                    put_copy(&mut w, off, len);
                    let stop = if len <= self.insert_max {
                        (i + len).min(end.saturating_sub(MIN_MATCH - 1))
                    } else {
                        0
                    };
                    for k in j + 1..stop {
                        let hk = self.hash(k);
                        self.insert(k, hk, true);
                    }
                } else {
                    put_copy(&mut w, off, len);
                    let stop = if len <= self.insert_max {
                        (i + len).min(end.saturating_sub(MIN_MATCH - 1))
                    } else {
                        0
                    };
                    for k in j..stop {
                        let hk = self.hash(k);
                        self.insert(k, hk, true);
                    }
                }
                i += len;
            }
            if w.len_bytes() > limit {
                return false;
            }
        }
        w.finish();
        true
    }
}

#[inline(always)]
fn read_u64(h: &[u8], at: usize) -> Option<u64> {
    h.get(at..)
        .and_then(|s| s.first_chunk::<8>())
        .map(|c| u64::from_le_bytes(*c))
}

/// Literal encoding (RFC 2118 section 4.1): octets below 0x80 as themselves in 8 bits, the
/// others as `10` followed by their low 7 bits.
#[inline(always)]
fn put_literal(w: &mut BitWriter<'_>, b: u8) {
    if b < 0x80 {
        w.put(u32::from(b), 8);
    } else {
        w.put(0x100 | u32::from(b & 0x7f), 9);
    }
}

/// Copy tuple (RFC 2118 section 4.2): offset class, then the length-of-match code.
#[inline(always)]
fn put_copy(w: &mut BitWriter<'_>, off: usize, len: usize) {
    debug_assert!((1..HISTORY_SIZE).contains(&off) && (MIN_MATCH..=MAX_MATCH).contains(&len));
    let off = off as u32;
    if off < 64 {
        w.put(0x3c0 | off, 10); // 1111 + 6 bits
    } else if off < 320 {
        w.put(0xe00 | (off - 64), 12); // 1110 + 8 bits
    } else {
        w.put(0xc000 | ((off - 320) & 0x1fff), 16); // 110 + 13 bits
    }
    let len = len as u32;
    if len == 3 {
        w.put(0, 1);
    } else {
        // len in [2^k, 2^(k+1)): k-1 ones, a zero, then the k low bits of len.
        let k = 31 - len.leading_zeros();
        let prefix = (1u32 << k) - 2;
        w.put((prefix << k) | (len & ((1 << k) - 1)), 2 * k);
    }
}

#[cfg(test)]
mod test {
    use super::super::test::{random, texty};
    use super::super::{Decompressor, MppcError};
    use super::*;

    fn to_bits(v: &[u8]) -> String {
        v.iter().map(|b| format!("{b:08b}")).collect()
    }

    #[test]
    fn encodes_literals_and_copies_as_the_rfc_tables() {
        let mut c = Compressor::new();
        let mut out = Vec::new();
        let f = c.compress(b"aaaa\xc8", &mut out);
        assert_eq!(
            f,
            PacketFlags::FLUSHED | PacketFlags::AT_FRONT | PacketFlags::COMPRESSED
        );
        // 'a' literal, copy offset 1 length 3, 0xC8 literal, padding.
        let want = "01100001".to_string() + "1111000001" + "0" + "101001000";
        let got = to_bits(&out);
        assert_eq!(&got[..want.len()], want);
        assert!(got[want.len()..].chars().all(|c| c == '0'));
        assert_eq!(got.len(), want.len().div_ceil(8) * 8);
    }

    #[test]
    fn length_and_offset_codes() {
        let cases: &[(usize, usize, &str)] = &[
            (1, 3, "1111000001 0"),
            (63, 4, "1111111111 1000"),
            (64, 8, "111000000000 110000"),
            (319, 15, "111011111111 110111"),
            (320, 16, "1100000000000000 11100000"),
            (8191, 4097, "1101111010111111 111111111110000000000001"),
            (1, 8191, "1111000001 111111111110111111111111"),
        ];
        for &(off, len, bits) in cases {
            let mut v = Vec::new();
            let mut w = BitWriter::new(&mut v);
            put_copy(&mut w, off, len);
            w.finish();
            let want: String = bits.chars().filter(|c| !c.is_whitespace()).collect();
            let got = to_bits(&v);
            assert_eq!(&got[..want.len()], want, "offset {off} len {len}");
        }
    }

    #[test]
    fn expansion_goes_uncompressed_and_flushes_next() {
        let mut c = Compressor::new();
        let mut d = Decompressor::new();
        let mut out = vec![0xee];
        let noise = random(7, 1400);
        let f = c.compress(&noise, &mut out);
        assert!(!f.contains(PacketFlags::COMPRESSED));
        assert_eq!(out, [0xee], "out left as it was");
        assert_eq!(d.decompress(f, &noise).unwrap(), &noise[..]);
        out.clear();
        let text = texty(8, 1400);
        let f = c.compress(&text, &mut out);
        assert!(f.contains(PacketFlags::FLUSHED | PacketFlags::COMPRESSED));
        assert_eq!(d.decompress(f, &out).unwrap(), &text[..]);
    }

    #[test]
    fn oversized_input_goes_uncompressed() {
        let mut c = Compressor::new();
        let mut out = Vec::new();
        let big = texty(1, HISTORY_SIZE + 1);
        let f = c.compress(&big, &mut out);
        assert_eq!(f, PacketFlags::FLUSHED | PacketFlags::AT_FRONT);
        assert!(out.is_empty());
        let f = c.compress(b"abcabcabc", &mut out);
        assert!(f.contains(PacketFlags::FLUSHED | PacketFlags::COMPRESSED));
    }

    #[test]
    fn restart_at_front_when_the_history_is_full() {
        let mut c = Compressor::new();
        let mut d = Decompressor::new();
        let mut out = Vec::new();
        let mut fronts = 0;
        for k in 0..30u64 {
            let p = texty(k, 1400);
            out.clear();
            let f = c.compress(&p, &mut out);
            assert!(f.contains(PacketFlags::COMPRESSED));
            if k > 0 && f.contains(PacketFlags::AT_FRONT) {
                fronts += 1;
                assert!(!f.contains(PacketFlags::FLUSHED));
            }
            assert_eq!(d.decompress(f, &out).unwrap(), &p[..]);
        }
        // 30 * 1400 octets through an 8192-octet history: a restart every 5 packets.
        assert_eq!(fronts, 5);
    }

    #[test]
    fn stale_history_is_never_referenced_after_a_restart() {
        // The decompressor rejects offsets before the front; the compressor must never
        // produce them even though the hash tables saw older data.
        let mut c = Compressor::with_match_finder(MatchFinder::Chain {
            depth: 64,
            lazy: true,
        });
        let mut d = Decompressor::new();
        let mut out = Vec::new();
        let same = texty(3, 3000);
        for _ in 0..20 {
            out.clear();
            let f = c.compress(&same, &mut out);
            let r: Result<&[u8], MppcError> = d.decompress(f, &out);
            assert_eq!(r.unwrap(), &same[..]);
        }
    }

    #[test]
    fn chain_beats_single_probe_on_text() {
        let data = texty(11, 1400 * 20);
        let size = |finder| {
            let mut c = Compressor::with_match_finder(finder);
            let mut out = Vec::new();
            let mut total = 0;
            for p in data.chunks(1400) {
                out.clear();
                let f = c.compress(p, &mut out);
                total += if f.contains(PacketFlags::COMPRESSED) {
                    out.len()
                } else {
                    p.len()
                };
            }
            total
        };
        let single = size(MatchFinder::SingleProbe);
        let chain = size(MatchFinder::default());
        assert!(chain < single, "chain {chain} vs single {single}");
    }
}
