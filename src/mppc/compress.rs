//! The MPPC compressor: LZ77 over the shared 8192-octet history, with a choice of match finders
//! (single probe, set-associative hash buckets, hash chains).

use super::bits::BitWriter;
use super::{PacketFlags, HISTORY_SIZE, MAX_MATCH, MIN_MATCH};

const HIST_MASK: usize = HISTORY_SIZE - 1;
/// The history plus slack, so 8-octet loads at any history position stay in bounds.
const HIST_ALLOC: usize = HISTORY_SIZE + 8;
/// Output slack past the expansion limit: the bit writer stores 8 octets at a time.
const OUT_SLACK: usize = 16;
/// Default stop-searching length.
const NICE: usize = 32;
/// Default length after which the chain search is cut to a quarter.
const GOOD: usize = 8;
/// Matches at least this long are taken without a lazy look-ahead.
const LAZY_MAX: usize = 32;
/// Incompressible-data check: every this many input octets, see whether the last window
/// compressed at all.
const ABORT_WINDOW: usize = 512;

/// How the compressor looks for matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MatchFinder {
    /// One hash-table probe per position: the most recent position with the same 3-octet
    /// hash. The baseline the other finders must beat.
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
    /// Set-associative hash buckets: each 3-octet hash keeps its `ways` most recent positions
    /// in one machine word (2, 4 or 8 ways; other values are rounded to one of these). All
    /// candidates are loaded and compared independently, with no pointer chasing.
    Bucket {
        /// Positions remembered per hash (2, 4 or 8).
        ways: u8,
        /// Lazy matching (one octet of look-ahead).
        lazy: bool,
    },
}

impl Default for MatchFinder {
    /// The measured best trade-off (see docs/PERFORMANCE.md, section MPPC).
    fn default() -> Self {
        MatchFinder::Bucket {
            ways: 2,
            lazy: false,
        }
    }
}

/// Match-finder tables.
enum Tables {
    /// Single probe: one position per 13-bit hash.
    Rows1(Box<[u16]>),
    /// Two ways per 13-bit hash.
    Rows2(Box<[u32]>),
    /// Four ways per 12-bit hash.
    Rows4(Box<[u64]>),
    /// Eight ways per 11-bit hash.
    Rows8(Box<[u128]>),
    /// Chain heads per 13-bit hash and a link per history position.
    Chain {
        head: Box<[u16]>,
        prev: Box<[u16]>,
        depth: u16,
    },
}

impl Tables {
    fn new(finder: MatchFinder) -> Self {
        fn rows<R: Row>() -> Box<[R]> {
            vec![R::EMPTY; 1 << R::HASH_BITS].into_boxed_slice()
        }
        match finder {
            MatchFinder::SingleProbe => Tables::Rows1(rows()),
            MatchFinder::Bucket { ways, .. } if ways <= 2 => Tables::Rows2(rows()),
            MatchFinder::Bucket { ways, .. } if ways <= 4 => Tables::Rows4(rows()),
            MatchFinder::Bucket { .. } => Tables::Rows8(rows()),
            MatchFinder::Chain { depth, .. } => Tables::Chain {
                head: vec![NIL; 1 << CHAIN_HASH_BITS].into_boxed_slice(),
                prev: vec![NIL; HISTORY_SIZE].into_boxed_slice(),
                depth: depth.max(1),
            },
        }
    }
}

/// Tuning knobs shared by the finders.
#[derive(Clone, Copy)]
struct Params {
    nice: usize,
    good: usize,
    /// Which positions covered by a match go into the tables: `None`, the last two (the
    /// default); `Some(n)`, all of them for matches up to `n` octets, none for longer ones.
    insert: Option<usize>,
}

/// Send side of one MPPC direction: the 8192-octet history, the match finder's tables and the
/// flags owed to the next packet.
pub struct Compressor {
    hist: Box<[u8; HIST_ALLOC]>,
    tables: Tables,
    finder: MatchFinder,
    lazy: bool,
    params: Params,
    /// Where the next packet goes in the history.
    pos: usize,
    /// The next packet must carry FLUSHED (start, Reset-Request, or after an expansion).
    flush_pending: bool,
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
            .field("finder", &self.finder)
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
        Self::tuned(finder, NICE, GOOD, None)
    }

    /// A compressor with every knob exposed, for tuning runs only: `nice` (stop searching at
    /// a match this long), `good` (chains: search a quarter as deep after a match this long),
    /// `insert` (positions covered by a match that are hashed: `None` for the last two,
    /// `Some(n)` for all of them in matches up to `n` octets).
    #[doc(hidden)]
    pub fn tuned(finder: MatchFinder, nice: usize, good: usize, insert: Option<usize>) -> Self {
        let lazy = match finder {
            MatchFinder::SingleProbe => false,
            MatchFinder::Chain { lazy, .. } | MatchFinder::Bucket { lazy, .. } => lazy,
        };
        Compressor {
            hist: Box::new([0; HIST_ALLOC]),
            tables: Tables::new(finder),
            finder,
            lazy,
            params: Params {
                nice: nice.clamp(MIN_MATCH, MAX_MATCH),
                good: good.max(MIN_MATCH),
                insert,
            },
            pos: 0,
            flush_pending: true,
        }
    }

    /// Compresses one PPP payload (protocol field + data, at most [`HISTORY_SIZE`] octets).
    ///
    /// Appends the compressed bits to `out` (which the caller clears and reuses) and returns
    /// the flags (A/B/C). If the returned flags lack [`PacketFlags::COMPRESSED`], the packet
    /// must be sent uncompressed: `out` is left as it was and the caller sends `input` itself.
    /// The compressor has then already reset its history, so the next packet carries FLUSHED.
    /// Input larger than [`HISTORY_SIZE`] is sent uncompressed the same way, and so is input
    /// that turns out to be incompressible (checked every 512 octets, so random data costs
    /// little).
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
        // Room for the worst case (9 bits per octet, all literals), so the encoder checks for
        // expansion only now and then, not after every symbol.
        out.resize(mark + input.len() + input.len() / 8 + OUT_SLACK, 0);
        let hist = &*self.hist;
        let p = self.params;
        let buf = out.get_mut(mark..).unwrap_or_default();
        let written = match (&mut self.tables, self.lazy) {
            (Tables::Rows1(t), _) => {
                encode::<_, false>(hist, &mut RowFinder(t), p, start, end, buf)
            }
            (Tables::Rows2(t), false) => {
                encode::<_, false>(hist, &mut RowFinder(t), p, start, end, buf)
            }
            (Tables::Rows2(t), true) => {
                encode::<_, true>(hist, &mut RowFinder(t), p, start, end, buf)
            }
            (Tables::Rows4(t), false) => {
                encode::<_, false>(hist, &mut RowFinder(t), p, start, end, buf)
            }
            (Tables::Rows4(t), true) => {
                encode::<_, true>(hist, &mut RowFinder(t), p, start, end, buf)
            }
            (Tables::Rows8(t), false) => {
                encode::<_, false>(hist, &mut RowFinder(t), p, start, end, buf)
            }
            (Tables::Rows8(t), true) => {
                encode::<_, true>(hist, &mut RowFinder(t), p, start, end, buf)
            }
            (Tables::Chain { head, prev, depth }, lazy) => {
                let mut f = ChainFinder {
                    head,
                    prev,
                    depth: *depth,
                };
                if lazy {
                    encode::<_, true>(hist, &mut f, p, start, end, buf)
                } else {
                    encode::<_, false>(hist, &mut f, p, start, end, buf)
                }
            }
        };
        match written {
            Some(n) => {
                out.truncate(mark + n);
                self.pos = end;
                flags | PacketFlags::COMPRESSED
            }
            None => {
                // "If the compressed data expands the packet, send it uncompressed and flush"
                // (RFC 2118 section 3.1, bit A; MS-SIPCOMP 3.2.5.1.1: "the data MUST be sent
                // in uncompressed form").
                out.truncate(mark);
                self.expanded();
                flags
            }
        }
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

    /// Start writing at the front of the history.
    ///
    /// The tables are not cleared (clearing them measured no ratio difference): a remembered
    /// position `c` is only used when `c` is below the position being encoded, and every such
    /// octet was written in the current round (a round starts at 0), so a stale entry is at
    /// worst a useless hint, checked against the data like any other. No copy ever reaches
    /// back past the front.
    fn restart(&mut self) {
        self.pos = 0;
    }
}

/// "No position" in the chain heads and links.
const NIL: u16 = u16::MAX;
/// Hash bits of the chain heads.
const CHAIN_HASH_BITS: u32 = 13;

/// Hash of the 3 octets at the bottom of `head8` (multiplicative), `bits` wide.
#[inline(always)]
fn hash(head8: u64, bits: u32) -> usize {
    ((head8 as u32 & 0x00ff_ffff).wrapping_mul(0x9e37_79b1) >> (32 - bits)) as usize
}

/// The 8 octets at history position `i & HIST_MASK` (little-endian; the slack keeps the load in
/// bounds).
#[inline(always)]
fn qword(hist: &[u8; HIST_ALLOC], i: usize) -> u64 {
    hist.get(i & HIST_MASK..)
        .and_then(|s| s.first_chunk::<8>())
        .map_or(0, |c| u64::from_le_bytes(*c))
}

/// Length of the common prefix of `hist[a..]` and `hist[b..]`, at most `max`
/// (`b + max <= HISTORY_SIZE`).
#[inline(always)]
fn match_len(hist: &[u8; HIST_ALLOC], a: usize, b: usize, max: usize) -> usize {
    let mut l = 0;
    while l < max {
        let d = qword(hist, a + l) ^ qword(hist, b + l);
        if d != 0 {
            return (l + (d.trailing_zeros() / 8) as usize).min(max);
        }
        l += 8;
    }
    max
}

/// A match finder over the history.
trait Finder {
    /// Width of the hash that indexes the tables.
    const HASH_BITS: u32;
    /// The table entry of one hash (a bucket, or a chain head).
    type Probe: Copy;
    /// The table entry for hash `h`.
    fn probe(&self, h: usize) -> Self::Probe;
    /// Best match for position `i` (table entry `probe`, first octets `head8`) no longer than
    /// `max`: (length, offset), length 0 if nothing of at least [`MIN_MATCH`] octets was found.
    fn find_in(
        &self,
        hist: &[u8; HIST_ALLOC],
        i: usize,
        probe: Self::Probe,
        head8: u64,
        max: usize,
        p: Params,
    ) -> (usize, usize);
    /// Records position `i` under hash `h`, whose entry is `probe`; returns the new entry.
    fn insert_in(&mut self, i: usize, h: usize, probe: Self::Probe) -> Self::Probe;

    /// [`find_in`](Self::find_in) with the entry of hash `h`.
    #[inline(always)]
    fn find(
        &self,
        hist: &[u8; HIST_ALLOC],
        i: usize,
        h: usize,
        head8: u64,
        max: usize,
        p: Params,
    ) -> (usize, usize) {
        self.find_in(hist, i, self.probe(h), head8, max, p)
    }

    /// Records position `i` under hash `h`.
    #[inline(always)]
    fn insert(&mut self, i: usize, h: usize) {
        let probe = self.probe(h);
        self.insert_in(i, h, probe);
    }
}

/// One hash bucket: `WAYS` 16-bit positions in one integer, the most recent in the low bits.
trait Row: Copy {
    const WAYS: usize;
    const HASH_BITS: u32;
    const EMPTY: Self;
    fn push(self, pos: u16) -> Self;
    fn way(self, k: usize) -> usize;
}

macro_rules! row {
    ($t:ty, $ways:expr, $bits:expr) => {
        impl Row for $t {
            const WAYS: usize = $ways;
            const HASH_BITS: u32 = $bits;
            // 0xffff in every way: a position no current one is above, so never used.
            const EMPTY: Self = <$t>::MAX;
            #[inline(always)]
            fn push(self, pos: u16) -> Self {
                if $ways == 1 {
                    <$t>::from(pos)
                } else {
                    (self << (16 % <$t>::BITS)) | <$t>::from(pos)
                }
            }
            #[inline(always)]
            fn way(self, k: usize) -> usize {
                usize::from((self >> ((16 * k) as u32 % <$t>::BITS)) as u16)
            }
        }
    };
}
row!(u16, 1, 13);
row!(u32, 2, 13);
row!(u64, 4, 12);
row!(u128, 8, 11);

struct RowFinder<'a, R>(&'a mut [R]);

impl<R: Row> Finder for RowFinder<'_, R> {
    const HASH_BITS: u32 = R::HASH_BITS;
    type Probe = R;

    #[inline(always)]
    fn probe(&self, h: usize) -> R {
        self.0.get(h).copied().unwrap_or(R::EMPTY)
    }

    #[inline(always)]
    fn find_in(
        &self,
        hist: &[u8; HIST_ALLOC],
        i: usize,
        row: R,
        head8: u64,
        max: usize,
        p: Params,
    ) -> (usize, usize) {
        // Every way is measured over its first 8 octets without a data-dependent branch: the
        // loads are independent, and each way becomes a key (length << 16 | position) whose
        // maximum, taken as a tree, is the longest match and among equals the nearest one
        // (the cheapest offset). Positions at or past `i` (empty ways, stale entries) count 0.
        let key = |k: usize| -> u32 {
            let c = row.way(k);
            let x = qword(hist, c) ^ head8;
            // trailing_zeros(0) = 64: all 8 octets equal.
            let l = x.trailing_zeros() / 8;
            let l = if c < i { l } else { 0 };
            (l << 16) | c as u32
        };
        let best = match R::WAYS {
            1 => key(0),
            2 => key(0).max(key(1)),
            4 => (key(0).max(key(1))).max(key(2).max(key(3))),
            _ => ((key(0).max(key(1))).max(key(2).max(key(3))))
                .max((key(4).max(key(5))).max(key(6).max(key(7)))),
        };
        let mut best_len = (best >> 16) as usize;
        let mut best_c = (best & 0xffff) as usize;
        if best_len == 8 && max > 8 {
            best_len = 8 + match_len(hist, best_c + 8, i + 8, max - 8);
            if R::WAYS > 1 && best_len < p.nice.min(max) {
                for k in 0..R::WAYS {
                    let c = row.way(k);
                    if c < i && c != best_c && qword(hist, c) == head8 {
                        let l = 8 + match_len(hist, c + 8, i + 8, max - 8);
                        if l > best_len {
                            best_len = l;
                            best_c = c;
                        }
                    }
                }
            }
        }
        let best_len = best_len.min(max);
        if best_len >= MIN_MATCH {
            (best_len, i - best_c)
        } else {
            (0, 0)
        }
    }

    #[inline(always)]
    fn insert_in(&mut self, i: usize, h: usize, row: R) -> R {
        let row = row.push(i as u16);
        if let Some(r) = self.0.get_mut(h) {
            *r = row;
        }
        row
    }
}

struct ChainFinder<'a> {
    head: &'a mut [u16],
    prev: &'a mut [u16],
    depth: u16,
}

impl Finder for ChainFinder<'_> {
    const HASH_BITS: u32 = CHAIN_HASH_BITS;
    type Probe = u16;

    #[inline(always)]
    fn probe(&self, h: usize) -> u16 {
        self.head.get(h).copied().unwrap_or(NIL)
    }

    #[inline(always)]
    fn find_in(
        &self,
        hist: &[u8; HIST_ALLOC],
        i: usize,
        mut cand: u16,
        head8: u64,
        max: usize,
        p: Params,
    ) -> (usize, usize) {
        let mut best_len = MIN_MATCH - 1;
        let mut best_off = 0;
        let mut depth = self.depth;
        let nice = max.min(p.nice);
        let mut last = i;
        while depth > 0 {
            let c = usize::from(cand);
            // Chains decrease; anything else (NIL, a stale link) ends the walk.
            if c >= last {
                break;
            }
            last = c;
            let x = qword(hist, c) ^ head8;
            let l = if x != 0 {
                (x.trailing_zeros() / 8) as usize
            } else {
                8 + match_len(hist, c + 8, i + 8, max.saturating_sub(8))
            };
            let l = l.min(max);
            let better = l > best_len;
            best_off = if better { i - c } else { best_off };
            best_len = if better { l } else { best_len };
            if best_len >= nice {
                break;
            }
            if best_len >= p.good {
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

    #[inline(always)]
    fn insert_in(&mut self, i: usize, h: usize, old: u16) -> u16 {
        if let Some(p) = self.prev.get_mut(i & HIST_MASK) {
            *p = old;
        }
        if let Some(hd) = self.head.get_mut(h) {
            *hd = i as u16;
        }
        i as u16
    }
}

/// Parses `hist[start..end]` into `buf` (which has `(end - start) * 9 / 8 + OUT_SLACK`
/// octets): greedy ([`encode_greedy`]), or with one octet of look-ahead if `LAZY`. Returns the
/// octets written, or `None` if the output would be longer than the input or the data looks
/// incompressible.
fn encode<F: Finder, const LAZY: bool>(
    hist: &[u8; HIST_ALLOC],
    f: &mut F,
    p: Params,
    start: usize,
    end: usize,
    buf: &mut [u8],
) -> Option<usize> {
    if !LAZY {
        return encode_greedy(hist, f, p, start, end, buf);
    }
    let limit = end - start;
    let mut w = BitWriter::new(buf);
    // Positions below this can start a match (3 octets of input left).
    let match_end = end.saturating_sub(MIN_MATCH - 1);
    let mut i = start;
    let mut next_check = start + ABORT_WINDOW;
    let (mut check_in, mut check_bits) = (start, 0);
    while i < end {
        if i < match_end {
            let head8 = qword(hist, i);
            let h = hash(head8, F::HASH_BITS);
            let (mut len, mut off) = f.find(hist, i, h, head8, (end - i).min(MAX_MATCH), p);
            f.insert(i, h);
            if len >= MIN_MATCH {
                let mut ins_from = i + 1;
                if len < LAZY_MAX && i + 1 < match_end {
                    let j = i + 1;
                    let head8 = qword(hist, j);
                    let h = hash(head8, F::HASH_BITS);
                    let (l2, o2) = f.find(hist, j, h, head8, (end - j).min(MAX_MATCH), p);
                    f.insert(j, h);
                    ins_from = j + 1;
                    if l2 > len {
                        put_literal(&mut w, hist.get(i).copied().unwrap_or(0));
                        w.flush();
                        i = j;
                        (len, off) = (l2, o2);
                    }
                }
                put_copy(&mut w, off, len);
                w.flush();
                insert_inside(hist, f, p, ins_from, i, len, match_end);
                i += len;
                if w.len_bytes() > limit {
                    return None;
                }
                continue;
            }
        }
        put_literal(&mut w, hist.get(i).copied().unwrap_or(0));
        w.flush();
        i += 1;
        if w.len_bytes() > limit {
            return None;
        }
        if i >= next_check {
            // Incompressible data (encrypted or already compressed payloads): if the last
            // window did not shrink and the packet would expand at that rate, stop now and
            // send it uncompressed, instead of finding out at the end.
            let bits = w.len_bits();
            let (win_in, win_bits) = (i - check_in, bits - check_bits);
            if win_bits >= 8 * win_in && bits + win_bits * (end - i) / win_in >= 8 * limit {
                return None;
            }
            (check_in, check_bits) = (i, bits);
            next_check = i + ABORT_WINDOW;
        }
    }
    w.finish()
}

/// Inserts the positions `from..i + len` (below `match_end`) covered by a match at `i`, as
/// the insertion policy says.
#[inline(always)]
fn insert_inside<F: Finder>(
    hist: &[u8; HIST_ALLOC],
    f: &mut F,
    p: Params,
    from: usize,
    i: usize,
    len: usize,
    match_end: usize,
) {
    match p.insert {
        None => {
            // Fixed cost, no loop (whose exit would be mispredicted): the last two positions,
            // where the next match most often starts over.
            for k in [i + len - 2, i + len - 1] {
                if k >= from && k < match_end {
                    f.insert(k, hash(qword(hist, k), F::HASH_BITS));
                }
            }
        }
        Some(n) if len <= n => {
            for k in from..(i + len).min(match_end) {
                f.insert(k, hash(qword(hist, k), F::HASH_BITS));
            }
        }
        Some(_) => {}
    }
}

/// Greedy parse, software-pipelined: the hash and table entry of position `i + 1` are
/// fetched before the literal-or-copy branch of position `i`, so after a literal (the branch
/// the CPU mispredicts most) the next lookup is already under way.
fn encode_greedy<F: Finder>(
    hist: &[u8; HIST_ALLOC],
    f: &mut F,
    p: Params,
    start: usize,
    end: usize,
    buf: &mut [u8],
) -> Option<usize> {
    let limit = end - start;
    let mut w = BitWriter::new(buf);
    // Positions below this can start a match (3 octets of input left).
    let match_end = end.saturating_sub(MIN_MATCH - 1);
    let mut i = start;
    let mut next_check = start + ABORT_WINDOW;
    let (mut check_in, mut check_bits) = (start, 0);
    let mut head8 = qword(hist, i);
    let mut h = hash(head8, F::HASH_BITS);
    let mut probe = f.probe(h);
    while i < end {
        if i < match_end {
            let (len, off) = f.find_in(hist, i, probe, head8, (end - i).min(MAX_MATCH), p);
            let octet = head8 as u8;
            let next8 = qword(hist, i + 1);
            let next_h = hash(next8, F::HASH_BITS);
            let next_probe = f.probe(next_h);
            let cur = f.insert_in(i, h, probe);
            let next_probe = if next_h == h { cur } else { next_probe };
            if len >= MIN_MATCH {
                put_copy(&mut w, off, len);
                w.flush();
                insert_inside(hist, f, p, i + 1, i, len, match_end);
                i += len;
                head8 = qword(hist, i);
                h = hash(head8, F::HASH_BITS);
                probe = f.probe(h);
                continue;
            }
            (head8, h, probe) = (next8, next_h, next_probe);
            put_literal(&mut w, octet);
        } else {
            put_literal(&mut w, hist.get(i).copied().unwrap_or(0));
        }
        w.flush();
        i += 1;
        if i >= next_check {
            if w.len_bytes() > limit {
                return None;
            }
            // Incompressible data (encrypted or already compressed payloads): if the last
            // window did not shrink and the packet would expand at that rate, stop now and
            // send it uncompressed, instead of finding out at the end.
            let bits = w.len_bits();
            let (win_in, win_bits) = (i - check_in, bits - check_bits);
            if win_bits >= 8 * win_in && bits + win_bits * (end - i) / win_in >= 8 * limit {
                return None;
            }
            (check_in, check_bits) = (i, bits);
            next_check = i + ABORT_WINDOW;
        }
    }
    w.finish().filter(|&n| n <= limit)
}

/// Literal encoding (RFC 2118 section 4.1): octets below 0x80 as themselves in 8 bits, the
/// others as `10` followed by their low 7 bits (which is the octet plus 0x80, in 9 bits).
#[inline(always)]
fn put_literal(w: &mut BitWriter<'_>, b: u8) {
    let hi = u64::from(b >> 7);
    w.put(u64::from(b) + (hi << 7), 8 + hi as u32);
}

/// Copy tuple (RFC 2118 section 4.2): offset class, then the length-of-match code, as one
/// string of at most 40 bits. Computed with masks rather than branches: the offset class and
/// "length 3 or not" are close to random from one copy to the next.
#[inline(always)]
fn put_copy(w: &mut BitWriter<'_>, off: usize, len: usize) {
    debug_assert!((1..HISTORY_SIZE).contains(&off) && (MIN_MATCH..=MAX_MATCH).contains(&len));
    let off = off as u64;
    let near = u64::from(off < 64); // 1111 + 6 bits
    let mid = u64::from(off < 320); // 1110 + 8 bits of off - 64 (unless near)
    let (m_near, m_mid) = (near.wrapping_neg(), mid.wrapping_neg());
    let ocode = ((0x3c0 | off) & m_near)
        | ((0xe00 | (off.wrapping_sub(64) & 0xff)) & m_mid & !m_near)
        | ((0xc000 | (off.wrapping_sub(320) & 0x1fff)) & !m_mid); // 110 + 13 bits
    let obits = 16 - 4 * mid as u32 - 2 * near as u32;
    let len = len as u64;
    // len in [2^k, 2^(k+1)): k-1 ones, a zero, then the k low bits of len; 3 is a lone 0
    // (the general form would give `01`: masked to 0, one bit shorter).
    let k = 63 - len.leading_zeros();
    let three = u64::from(len == 3);
    let lcode = ((((1u64 << k) - 2) << k) | (len & ((1 << k) - 1))) & !three.wrapping_neg();
    let lbits = 2 * k - three as u32;
    w.put((ocode << lbits) | lcode, obits + lbits);
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
            let mut v = vec![0; 16];
            let mut w = BitWriter::new(&mut v);
            put_copy(&mut w, off, len);
            let n = w.finish().unwrap();
            v.truncate(n);
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

    /// Wire octets for `data` cut into 1400-octet packets through one compressor.
    fn wire_size(mut c: Compressor, data: &[u8]) -> usize {
        let mut d = Decompressor::new();
        let mut out = Vec::new();
        let mut total = 0;
        for p in data.chunks(1400) {
            out.clear();
            let f = c.compress(p, &mut out);
            let wire: &[u8] = if f.contains(PacketFlags::COMPRESSED) {
                &out
            } else {
                p
            };
            assert_eq!(d.decompress(f, wire).unwrap(), p);
            total += wire.len();
        }
        total
    }

    #[test]
    fn more_candidates_beat_a_single_probe_on_text() {
        let data = texty(11, 1400 * 20);
        let single = wire_size(
            Compressor::with_match_finder(MatchFinder::SingleProbe),
            &data,
        );
        let default = wire_size(Compressor::new(), &data);
        let chain = wire_size(
            Compressor::with_match_finder(MatchFinder::Chain {
                depth: 6,
                lazy: false,
            }),
            &data,
        );
        let eight = wire_size(
            Compressor::with_match_finder(MatchFinder::Bucket {
                ways: 8,
                lazy: true,
            }),
            &data,
        );
        assert!(default < single, "default {default} vs single {single}");
        assert!(chain < single, "chain {chain} vs single {single}");
        assert!(
            eight < default,
            "8 ways + lazy {eight} vs default {default}"
        );
    }

    #[test]
    fn every_finder_and_insertion_policy_round_trips() {
        let data = [texty(5, 9000), random(6, 3000), texty(7, 9000)].concat();
        for finder in [
            MatchFinder::SingleProbe,
            MatchFinder::Bucket {
                ways: 2,
                lazy: false,
            },
            MatchFinder::Bucket {
                ways: 4,
                lazy: true,
            },
            MatchFinder::Bucket {
                ways: 8,
                lazy: false,
            },
            MatchFinder::Chain {
                depth: 1,
                lazy: false,
            },
            MatchFinder::Chain {
                depth: 16,
                lazy: true,
            },
        ] {
            for insert in [None, Some(0), Some(16), Some(usize::MAX)] {
                let size = wire_size(Compressor::tuned(finder, NICE, GOOD, insert), &data);
                assert!(size < data.len(), "{finder:?} {insert:?}: {size}");
            }
        }
    }

    #[test]
    fn incompressible_packets_go_uncompressed_but_a_noisy_start_does_not_give_up() {
        let mut c = Compressor::new();
        let mut out = Vec::new();
        // Random data: given up on (after the first window), sent as is.
        let f = c.compress(&random(1, 1400), &mut out);
        assert!(!f.contains(PacketFlags::COMPRESSED));
        assert!(out.is_empty());
        // 200 random octets, then text: the first window still shrinks overall, so the packet
        // is compressed.
        let mut p = random(2, 200);
        p.extend_from_slice(&texty(3, 1200));
        let f = c.compress(&p, &mut out);
        assert!(
            f.contains(PacketFlags::COMPRESSED | PacketFlags::FLUSHED),
            "{f:?}"
        );
        assert!(out.len() < p.len());
        let mut d = Decompressor::new();
        assert_eq!(d.decompress(f, &out).unwrap(), &p[..]);
        // Text followed by 1000 random octets: compressible overall, stays compressed.
        let mut q = texty(4, 1000);
        q.extend_from_slice(&random(5, 1000));
        out.clear();
        let f = c.compress(&q, &mut out);
        assert!(f.contains(PacketFlags::COMPRESSED), "{f:?}");
        assert_eq!(d.decompress(f, &out).unwrap(), &q[..]);
    }
}
