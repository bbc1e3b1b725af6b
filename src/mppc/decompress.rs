//! The MPPC decompressor: untrusted bitstream in, octets out of the history buffer.

use super::bits::BitReader;
use super::{MppcError, PacketFlags, HISTORY_SIZE};

/// Receive side of one MPPC direction: the 8192-octet history and its write position.
///
/// See the module documentation for the history model and the safety contract.
pub struct Decompressor {
    hist: Box<[u8; HIST_ALLOC]>,
    /// Next write position.
    pos: usize,
    /// High-water mark of positions written since the last flush: `hist[..filled]` is history
    /// (after a restart at the front, `hist[pos..filled]` still holds the previous round).
    filled: usize,
    /// Set by an error or [`reset`](Self::reset): drop packets until one is FLUSHED.
    need_flush: bool,
    /// Holds uncompressed packets too large for the history (no copy tuple can refer to them).
    spill: Vec<u8>,
}

impl Default for Decompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decompressor")
            .field("pos", &self.pos)
            .field("need_flush", &self.need_flush)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    /// A decompressor with an empty history, in step with a new [`super::Compressor`].
    pub fn new() -> Self {
        Decompressor {
            hist: Box::new([0; HIST_ALLOC]),
            pos: 0,
            filled: 0,
            need_flush: false,
            spill: Vec::new(),
        }
    }

    /// Decompresses one packet given the header flags.
    ///
    /// Returns the decompressed octets (a slice of the history, no copy). After an error the
    /// state is "needs flush": every packet fails with [`MppcError::NeedFlush`] until one
    /// carries [`PacketFlags::FLUSHED`]; the caller sends a CCP Reset-Request. Uncompressed
    /// packets (no C bit) are copied into the history too and returned.
    pub fn decompress(&mut self, flags: PacketFlags, input: &[u8]) -> Result<&[u8], MppcError> {
        // RFC 2118 section 3.1, bit A: "the receiving peer must initialize its history buffer
        // before decompressing the packet".
        if flags.contains(PacketFlags::FLUSHED) {
            self.pos = 0;
            self.filled = 0;
            self.need_flush = false;
        }
        if self.need_flush {
            return Err(MppcError::NeedFlush);
        }
        // Bit B: "used to tell the decompressor to set its history pointer to the beginning
        // of the history buffer".
        if flags.contains(PacketFlags::AT_FRONT) {
            self.pos = 0;
        }
        let start = self.pos;
        if flags.contains(PacketFlags::COMPRESSED) {
            match decode(&mut self.hist, start, self.filled, input) {
                Ok(end) => {
                    self.pos = end;
                    self.filled = self.filled.max(end);
                    Ok(self.hist.get(start..end).unwrap_or_default())
                }
                Err(e) => {
                    self.need_flush = true;
                    Err(e)
                }
            }
        } else {
            self.store_uncompressed(input)
        }
    }

    /// Puts an uncompressed packet into the history (at the front if it does not fit at the
    /// current position) and returns it.
    fn store_uncompressed(&mut self, input: &[u8]) -> Result<&[u8], MppcError> {
        if input.len() > HISTORY_SIZE {
            // Larger than the history: no later packet can refer to it, and a conforming
            // sender flushes after it anyway (section 3.1: expansion resets the history).
            self.pos = 0;
            self.spill.clear();
            self.spill.extend_from_slice(input);
            return Ok(&self.spill);
        }
        if self.pos + input.len() > HISTORY_SIZE {
            self.pos = 0;
        }
        let start = self.pos;
        let end = start + input.len();
        match self.hist.get_mut(start..end) {
            Some(dst) => dst.copy_from_slice(input),
            None => return Err(MppcError::OutputOverflow),
        }
        self.pos = end;
        self.filled = self.filled.max(end);
        Ok(self.hist.get(start..end).unwrap_or_default())
    }

    /// Forgets the history and drops packets until one carries [`PacketFlags::FLUSHED`].
    ///
    /// Call when the packet stream is known to be broken (a lost packet detected by the MPPE
    /// coherency count), together with sending a CCP Reset-Request.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.filled = 0;
        self.need_flush = true;
    }

    /// Whether packets are being dropped until one carries [`PacketFlags::FLUSHED`].
    pub fn needs_flush(&self) -> bool {
        self.need_flush
    }
}

/// The history plus slack, so an 8-octet load at any masked position stays in bounds.
const HIST_ALLOC: usize = HISTORY_SIZE + 16;
const HIST_MASK: usize = HISTORY_SIZE - 1;

/// The longest symbol: a 16-bit offset and a 24-bit length code.
const MAX_SYMBOL_BITS: u32 = 40;

/// Decodes `input` into `hist` from position `start`; `hist[..filled]` held history before
/// this packet. Returns the end position.
fn decode(
    hist: &mut [u8; HIST_ALLOC],
    start: usize,
    filled: usize,
    input: &[u8],
) -> Result<usize, MppcError> {
    let mut r = BitReader::new(input);
    let mut pos = start;
    loop {
        r.refill();
        let avail = r.available();
        if avail >= MAX_SYMBOL_BITS {
            // With a whole symbol's worth of bits buffered no symbol can be truncated: decode
            // without those checks until the buffer runs low, then refill.
            loop {
                pos = symbol::<false>(hist, &mut r, pos, filled)?;
                if r.available() < MAX_SYMBOL_BITS {
                    break;
                }
            }
        } else {
            // Every symbol is at least 8 bits long; fewer left is the final octet's padding.
            if avail < 8 {
                return Ok(pos);
            }
            pos = symbol::<true>(hist, &mut r, pos, filled)?;
        }
    }
}

/// Decodes one symbol at `pos` and returns the new position. With `CHECKED`, a symbol cut
/// short by the end of the input is an error; without, the caller guarantees
/// [`MAX_SYMBOL_BITS`] buffered bits.
#[inline(always)]
fn symbol<const CHECKED: bool>(
    hist: &mut [u8; HIST_ALLOC],
    r: &mut BitReader<'_>,
    pos: usize,
    filled: usize,
) -> Result<usize, MppcError> {
    let avail = r.available();
    let bits = r.peek();
    if bits >> 62 != 0b11 {
        // Literal, without a branch on its form: `0xxxxxxx` is the octet itself; `10xxxxxxx`
        // is 0x80 | xxxxxxx, i.e. the low 8 of those 9 bits with the top bit set. `t` is 1
        // for the second form.
        let t = (bits >> 63) as u32;
        if CHECKED && avail < 8 + t {
            return Err(MppcError::Truncated);
        }
        put(hist, pos, ((bits >> (56 - t)) as u8) | ((t as u8) << 7))?;
        r.consume(8 + t);
        return Ok(pos + 1);
    }
    let (offset, len, nbits) = copy_tuple::<CHECKED>(bits, avail)?;
    r.consume(nbits);
    let end = pos + len;
    if end > HISTORY_SIZE {
        return Err(MppcError::OutputOverflow);
    }
    if offset != 0 && offset <= pos {
        copy_match(hist, pos - offset, pos, len);
    } else {
        // Reaching back past the front: after a restart at the front (bit B) the buffer still
        // holds the previous round, and peers with a sliding or ring history (FreeBSD/Linux
        // mppc) refer to it. "Initialized history that has not been used for compressing data
        // must not be referred to in the compressed packets" (RFC 2118 section 3.1): only
        // octets written since the last flush are accepted.
        // The 13-bit class encodes offsets up to 320 + 8191 = 8511, but the table stops at
        // 8191: larger ones point outside the history.
        if offset == 0 || offset >= HISTORY_SIZE {
            return Err(MppcError::BadOffset {
                offset,
                available: filled.max(pos),
            });
        }
        let src = pos + HISTORY_SIZE - offset;
        if (src + len).min(HISTORY_SIZE) > filled.max(pos) {
            return Err(MppcError::BadOffset {
                offset,
                available: filled.max(pos),
            });
        }
        copy_wrapped(hist, src, pos, len);
    }
    Ok(end)
}

#[inline(always)]
fn put(hist: &mut [u8; HIST_ALLOC], pos: usize, b: u8) -> Result<(), MppcError> {
    if pos >= HISTORY_SIZE {
        return Err(MppcError::OutputOverflow);
    }
    if let Some(slot) = hist.get_mut(pos) {
        *slot = b;
    }
    Ok(())
}

/// Offset classes by bits 2..4 of a copy tuple: (shift of the offset field in the peeked
/// word, field mask, base, bits in the offset part).
const OFFSET_CLASS: [(u32, usize, usize, u32); 4] = [
    (48, 0x1fff, 320, 16), // 1100 + 12 more bits of the 13-bit field
    (48, 0x1fff, 320, 16), // 1101
    (52, 0xff, 64, 12),    // 1110 + 8 bits
    (54, 0x3f, 0, 10),     // 1111 + 6 bits
];

/// Decodes a copy tuple from the left-aligned `bits` of which `avail` are valid:
/// (offset, length, bits used).
#[inline(always)]
fn copy_tuple<const CHECKED: bool>(
    bits: u64,
    avail: u32,
) -> Result<(usize, usize, u32), MppcError> {
    // Offset class by the top 4 bits (the first two are 11): 110x -> 13 bits + 320,
    // 1110 -> 8 bits + 64, 1111 -> 6 bits. A table lookup instead of two unpredictable branches.
    let (shift, mask, base, obits) = OFFSET_CLASS
        .get((bits >> 60) as usize & 3)
        .copied()
        .unwrap_or((54, 0x3f, 0, 10));
    let offset = base + ((bits >> shift) as usize & mask);
    // Length of match: k leading ones, a zero, then k+1 low bits of the length.
    let rest = bits << obits;
    let ones = rest.leading_ones();
    if ones >= 12 {
        // Bits past the end of the input read as zeros, so 12 ones are really there
        // (or the symbol is cut short): no length code starts like that.
        return if obits + 12 > avail {
            Err(MppcError::Truncated)
        } else {
            Err(MppcError::BadLength)
        };
    }
    // `ones` = 0 is the lone `0` for length 3; otherwise n = ones + 1 low bits follow the
    // zero and the length is 2^n + those bits. Both are computed and one selected.
    let n = ones + 1;
    let low = ((rest << n) >> (64 - n)) as usize;
    let (len, lbits) = if ones == 0 {
        (3, 1)
    } else {
        ((1usize << n) | low, 2 * n)
    };
    if CHECKED && obits + lbits > avail {
        return Err(MppcError::Truncated);
    }
    Ok((offset, len, obits + lbits))
}

#[inline(always)]
fn load<const N: usize>(hist: &[u8; HIST_ALLOC], at: usize) -> [u8; N] {
    hist.get(at & HIST_MASK..)
        .and_then(|s| s.first_chunk::<N>())
        .copied()
        .unwrap_or([0; N])
}

#[inline(always)]
fn store<const N: usize>(hist: &mut [u8; HIST_ALLOC], at: usize, v: [u8; N]) {
    if let Some(d) = hist
        .get_mut(at & HIST_MASK..)
        .and_then(|s| s.first_chunk_mut::<N>())
    {
        *d = v;
    }
}

/// LZ77 copy of `len` octets from `src` to `dst` (`src < dst`, `dst + len <= HISTORY_SIZE`).
/// When the ranges overlap the copy repeats the `dst - src` octets before `dst`, as a
/// byte-by-byte copy would. Nothing past `dst + len` is written: after a restart at the front
/// those octets are still history.
#[inline(always)]
fn copy_match(hist: &mut [u8; HIST_ALLOC], src: usize, dst: usize, len: usize) {
    let off = dst - src;
    if off >= len {
        if len <= 16 {
            // Disjoint and short: one 16-octet load from each side and a blend, so the
            // octets past `dst + len` are written back unchanged (no length-class branches).
            let new = u128::from_le_bytes(load::<16>(hist, src));
            let old = u128::from_le_bytes(load::<16>(hist, dst));
            let keep = u128::MAX.checked_shl(8 * len as u32).unwrap_or(0);
            store(hist, dst, ((new & !keep) | (old & keep)).to_le_bytes());
        } else {
            hist.copy_within(src..src + len, dst);
        }
        return;
    }
    let end = dst + len;
    if off == 1 {
        let b = hist.get(src).copied().unwrap_or(0);
        if let Some(run) = hist.get_mut(dst..end) {
            run.fill(b);
        }
        return;
    }
    if off >= 8 {
        // Overlapping, 8 octets at a time: each chunk reads only octets already final
        // (off >= 8); the last chunk ends exactly at `dst + len`.
        let mut k = 0;
        while k + 8 < len {
            let v = load::<8>(hist, src + k);
            store(hist, dst + k, v);
            k += 8;
        }
        let v = load::<8>(hist, src + len - 8);
        store(hist, dst + len - 8, v);
        return;
    }
    // Short period: `hist[src..dst]` is one period; each copy doubles what can be copied next.
    let mut d = dst;
    while d < end {
        let n = (d - src).min(end - d);
        hist.copy_within(src..src + n, d);
        d += n;
    }
}

/// Ring copy for a source past the write position: octet `j` comes from
/// `(src + j) mod HISTORY_SIZE` (`dst + len <= HISTORY_SIZE`). Rare, so octet by octet.
fn copy_wrapped(hist: &mut [u8; HIST_ALLOC], src: usize, dst: usize, len: usize) {
    for j in 0..len {
        let b = hist.get((src + j) & HIST_MASK).copied().unwrap_or(0);
        if let Some(d) = hist.get_mut(dst + j) {
            *d = b;
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// Builds a packet from bit strings such as "0110 0001" (spaces ignored), padding the last
    /// octet with zero bits. The bit strings are written by hand from the RFC 2118 tables.
    fn bits(parts: &[&str]) -> Vec<u8> {
        let s: String = parts
            .concat()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let mut out = Vec::new();
        for chunk in s.as_bytes().chunks(8) {
            let mut b = 0u8;
            for (i, c) in chunk.iter().enumerate() {
                match c {
                    b'0' => {}
                    b'1' => b |= 0x80 >> i,
                    _ => panic!("bad bit {c}"),
                }
            }
            out.push(b);
        }
        out
    }

    /// One compressed packet of 8192 literal octets (fills the history).
    fn full_history() -> Vec<u8> {
        let parts: Vec<String> = (0..8192u32).map(|i| format!("{:08b}", i % 0x80)).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        bits(&refs)
    }

    fn c() -> PacketFlags {
        PacketFlags::COMPRESSED
    }

    fn decode_fresh(packet: &[u8]) -> Result<Vec<u8>, MppcError> {
        let mut d = Decompressor::new();
        d.decompress(PacketFlags::FLUSHED | c(), packet)
            .map(<[u8]>::to_vec)
    }

    #[test]
    fn literal_below_0x80() {
        // 'a' = 0x61 -> 0110 0001
        assert_eq!(decode_fresh(&bits(&["01100001"])).unwrap(), b"a");
    }

    #[test]
    fn literal_0x80_and_above() {
        // 0xC8 -> 10 + low 7 bits 1001000; 0x80 -> 10 0000000; 0xFF -> 10 1111111
        let p = bits(&["10 1001000", "10 0000000", "10 1111111"]);
        assert_eq!(decode_fresh(&p).unwrap(), [0xc8, 0x80, 0xff]);
    }

    #[test]
    fn copy_offset_1_len_3() {
        // 'a', then copy offset 1 (1111 000001) length 3 (0): "aaaa"
        let p = bits(&["01100001", "1111 000001", "0"]);
        assert_eq!(decode_fresh(&p).unwrap(), b"aaaa");
    }

    #[test]
    fn copy_offset_63_len_4() {
        // 63 literals 0x00..0x3e, then offset 63 (1111 111111), length 4 (10 00).
        let mut parts: Vec<String> = (0..63u8).map(|b| format!("{b:08b}")).collect();
        parts.push("1111 111111".into());
        parts.push("10 00".into());
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let out = decode_fresh(&bits(&refs)).unwrap();
        let mut want: Vec<u8> = (0..63).collect();
        want.extend_from_slice(&[0, 1, 2, 3]);
        assert_eq!(out, want);
    }

    #[test]
    fn copy_offset_64_len_8_and_offset_319_len_15() {
        // 319 literals (values i % 0x80), then offset 64 (1110 00000000) length 8 (110 000),
        // then offset 319 (1110 11111111) length 15 (110 111).
        let lits: Vec<u8> = (0..319u32).map(|i| (i % 0x80) as u8).collect();
        let mut parts: Vec<String> = lits.iter().map(|b| format!("{b:08b}")).collect();
        parts.push("1110 00000000".into());
        parts.push("110 000".into());
        parts.push("1110 11111111".into());
        parts.push("110 111".into());
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let out = decode_fresh(&bits(&refs)).unwrap();
        let mut want = lits.clone();
        for _ in 0..8 {
            want.push(want[want.len() - 64]);
        }
        for _ in 0..15 {
            want.push(want[want.len() - 319]);
        }
        assert_eq!(out, want);
    }

    #[test]
    fn copy_offset_320_len_16_and_long_lengths() {
        // 320 literals, then offset 320 (110 0000000000000) length 16 (1110 0000),
        // then offset 1 (1111 000001) with each longer length class:
        // 32 (11110 00000), 64 (111110 000000), 127 (111110 111111), 128 (1111110 0000000),
        // 256 (11111110 00000000), 512 (111111110 000000000), 1024 (1111111110 0000000000),
        // 2048 (11111111110 00000000000).
        let lits: Vec<u8> = (0..320u32).map(|i| ((i * 7) % 0x80) as u8).collect();
        let mut parts: Vec<String> = lits.iter().map(|b| format!("{b:08b}")).collect();
        parts.push("110 0000000000000".into());
        parts.push("1110 0000".into());
        let long = [
            (32, "11110 00000"),
            (64, "111110 000000"),
            (127, "111110 111111"),
            (128, "1111110 0000000"),
            (256, "11111110 00000000"),
            (512, "111111110 000000000"),
            (1024, "1111111110 0000000000"),
            (2048, "11111111110 00000000000"),
        ];
        for (_, code) in long {
            parts.push("1111 000001".into());
            parts.push(code.into());
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let out = decode_fresh(&bits(&refs)).unwrap();
        let mut want = lits.clone();
        want.extend_from_slice(&lits[..16]);
        let last = *want.last().unwrap();
        for (n, _) in long {
            want.extend(std::iter::repeat(last).take(n));
        }
        assert_eq!(out.len(), want.len());
        assert_eq!(out, want);
    }

    #[test]
    fn copy_offset_4096_len_4096() {
        // 4096 literals, then offset 4096 (110 + 13 bits of 4096 - 320 = 3776 = 0111011000000)
        // with length 4096 (111111111110 000000000000): a full 8192-octet packet.
        let lits: Vec<u8> = (0..4096u32)
            .map(|i| ((i ^ (i >> 7)) % 0x80) as u8)
            .collect();
        let mut parts: Vec<String> = lits.iter().map(|b| format!("{b:08b}")).collect();
        parts.push("110 0111011000000".into());
        parts.push("111111111110 000000000000".into());
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let out = decode_fresh(&bits(&refs)).unwrap();
        assert_eq!(out.len(), 8192);
        assert_eq!(&out[..4096], &lits[..]);
        assert_eq!(&out[4096..], &lits[..]);
    }

    /// Offsets 8189..8191 from position 8189: 8189 reaches position 0 (this round); 8191
    /// reaches back past the front to positions 8190..8192, which were never written since
    /// the flush, so it is refused.
    #[test]
    fn largest_offsets_across_packets() {
        let lits: Vec<u8> = (0..8186u32).map(|i| ((i * 5) % 0x80) as u8).collect();
        let parts: Vec<String> = lits.iter().map(|b| format!("{b:08b}")).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let first = bits(&refs);

        // Packet 2: literals 'x' 'y' 'z' (history now 8189 octets), then offset 8191
        // (110 + 13 bits of 7871 = 1111010111111) length 3.
        let mut d = Decompressor::new();
        assert_eq!(
            d.decompress(PacketFlags::FLUSHED | c(), &first).unwrap(),
            &lits[..]
        );
        let p2 = bits(&["01111000", "01111001", "01111010", "110 1111010111111", "0"]);
        assert_eq!(
            d.decompress(c(), &p2),
            Err(MppcError::BadOffset {
                offset: 8191,
                available: 8189
            })
        );
        assert!(d.needs_flush());
        assert_eq!(
            d.decompress(c(), &bits(&["01100001"])),
            Err(MppcError::NeedFlush)
        );

        // Offset 8189 (110 + 13 bits of 7869 = 1111010111101) length 3 reaches the oldest
        // octets, written by the previous packet.
        let mut d = Decompressor::new();
        d.decompress(PacketFlags::FLUSHED | c(), &first).unwrap();
        let p2 = bits(&["01111000", "01111001", "01111010", "110 1111010111101", "0"]);
        let out = d.decompress(c(), &p2).unwrap();
        assert_eq!(out, [b'x', b'y', b'z', lits[0], lits[1], lits[2]]);
    }

    #[test]
    fn every_length_class_boundary() {
        // For each class the lowest and highest length, written from the RFC table:
        // prefix of (k-1) ones and a zero, then the k low bits of the length.
        let cases: &[(usize, &str)] = &[
            (3, "0"),
            (4, "10 00"),
            (7, "10 11"),
            (8, "110 000"),
            (15, "110 111"),
            (16, "1110 0000"),
            (31, "1110 1111"),
            (32, "11110 00000"),
            (63, "11110 11111"),
            (64, "111110 000000"),
            (127, "111110 111111"),
            (128, "1111110 0000000"),
            (255, "1111110 1111111"),
            (256, "11111110 00000000"),
            (511, "11111110 11111111"),
            (512, "111111110 000000000"),
            (1023, "111111110 111111111"),
            (1024, "1111111110 0000000000"),
            (2047, "1111111110 1111111111"),
            (2048, "11111111110 00000000000"),
            (4095, "11111111110 11111111111"),
            (4096, "111111111110 000000000000"),
            (4097, "111111111110 000000000001"),
            (8190, "111111111110 111111111110"),
            (8191, "111111111110 111111111111"),
        ];
        for &(len, code) in cases {
            // 'a' then an offset-1 copy of `len`: 1 + 8191 fills the history exactly.
            let p = bits(&["01100001", "1111 000001", code]);
            let out = decode_fresh(&p).unwrap_or_else(|e| panic!("len {len}: {e}"));
            assert_eq!(out.len(), 1 + len, "len {len}");
            assert!(out.iter().all(|&b| b == b'a'), "len {len}");
        }
        // One literal more than the history holds.
        let p = bits(&[
            "01100001",
            "1111 000001",
            "111111111110 111111111111",
            "01100001",
        ]);
        assert_eq!(
            decode_fresh(&p).map(|v| v.len()),
            Err(MppcError::OutputOverflow)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // Offset 0.
        let p = bits(&["01100001", "1111 000000", "0"]);
        assert!(matches!(
            decode_fresh(&p),
            Err(MppcError::BadOffset { offset: 0, .. })
        ));
        // Copy with nothing in the history.
        let p = bits(&["1111 000001", "0"]);
        assert_eq!(
            decode_fresh(&p),
            Err(MppcError::BadOffset {
                offset: 1,
                available: 0
            })
        );
        // Offsets 8192 (110 + 13 bits of 7872) and 8511 (110 + 13 ones): the 13-bit class can
        // encode them, the RFC table stops at 8191. Found by the fuzzer (an overflow).
        for (off, code) in [
            (8192usize, "110 1111011000000"),
            (8511, "110 1111111111111"),
        ] {
            let mut d = Decompressor::new();
            d.decompress(PacketFlags::FLUSHED | c(), &full_history())
                .unwrap();
            let p = bits(&["01100001", code, "0"]);
            assert!(
                matches!(
                    d.decompress(PacketFlags::AT_FRONT | c(), &p),
                    Err(MppcError::BadOffset { offset, .. }) if offset == off
                ),
                "offset {off}"
            );
        }
        // Thirteen ones where a length code should be.
        let p = bits(&["01100001", "1111 000001", "1111111111111", "000"]);
        assert_eq!(decode_fresh(&p), Err(MppcError::BadLength));
        // Truncated 9-bit literal: "10" + 6 bits, then the input ends... 8 bits left is
        // "10xxxxxx" which needs 9.
        assert_eq!(decode_fresh(&[0b1010_1010]), Err(MppcError::Truncated));
        // Truncated copy tuple (offset class 110 needs 16 bits).
        assert_eq!(
            decode_fresh(&[0b1100_0000, 0x00]),
            Err(MppcError::Truncated)
        );
        // Fewer than 8 bits of padding: nothing.
        assert_eq!(decode_fresh(&[]).unwrap(), b"");
        // Output overflow: 'a' then 8191 copied = 8192... plus one more.
        let p = bits(&[
            "01100001",
            "1111 000001",
            "111111111110 111111111110",
            "01100001",
            "01100001",
        ]);
        assert_eq!(decode_fresh(&p), Err(MppcError::OutputOverflow));
    }

    #[test]
    fn flushed_packet_resynchronises() {
        let mut d = Decompressor::new();
        d.decompress(c(), &bits(&["01100001"])).unwrap();
        d.reset();
        assert!(d.needs_flush());
        assert_eq!(
            d.decompress(c(), &bits(&["01100010"])),
            Err(MppcError::NeedFlush)
        );
        assert_eq!(
            d.decompress(PacketFlags::empty(), b"raw"),
            Err(MppcError::NeedFlush)
        );
        // A FLUSHED packet starts over: offset 1 with history from before the reset fails.
        let p = bits(&["1111 000001", "0"]);
        assert!(d.decompress(PacketFlags::FLUSHED | c(), &p).is_err());
        let out = d
            .decompress(
                PacketFlags::FLUSHED | c(),
                &bits(&["01100011", "1111 000001", "0"]),
            )
            .unwrap();
        assert_eq!(out, b"cccc");
        assert!(!d.needs_flush());
    }

    #[test]
    fn at_front_restarts_the_history_pointer() {
        let mut d = Decompressor::new();
        d.decompress(PacketFlags::FLUSHED | c(), &bits(&["01100001", "01100010"]))
            .unwrap();
        // B: writes from position 0; offset 2 now reaches before the front, to position 8191
        // of the previous round, which was never written (only 2 octets were).
        let p = bits(&["01111000", "1111 000010", "0"]);
        assert!(matches!(
            d.decompress(PacketFlags::AT_FRONT | c(), &p),
            Err(MppcError::BadOffset {
                offset: 2,
                available: 2
            })
        ));
        // Without B, the same packet refers to 'a' 'b' before it.
        let mut d = Decompressor::new();
        d.decompress(PacketFlags::FLUSHED | c(), &bits(&["01100001", "01100010"]))
            .unwrap();
        assert_eq!(d.decompress(c(), &p).unwrap(), b"xbxb");
    }

    /// After a restart at the front (B without A) the rest of the buffer still holds the
    /// previous round; peers with a sliding history (FreeBSD/Linux mppc) refer back into it
    /// with offsets larger than the write position. Octets never written since the flush
    /// stay off limits.
    #[test]
    fn at_front_keeps_the_previous_round_reachable() {
        let lits: Vec<u8> = (0..8192u32).map(|i| ((i * 11) % 0x80) as u8).collect();
        let parts: Vec<String> = lits.iter().map(|b| format!("{b:08b}")).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let full = bits(&refs);

        // Round 1 fills all 8192 octets. Round 2 (B): 'x' 'y', then offset 4 length 6:
        // source 8190, 8191, then wrapping to 0, 1, 2, 3 (its own output).
        let mut d = Decompressor::new();
        assert_eq!(
            d.decompress(PacketFlags::FLUSHED | c(), &full)
                .unwrap()
                .len(),
            8192
        );
        let p = bits(&["01111000", "01111001", "1111 000100", "10 10"]);
        let out = d.decompress(PacketFlags::AT_FRONT | c(), &p).unwrap();
        let (a, b) = (lits[8190], lits[8191]);
        assert_eq!(out, [b'x', b'y', a, b, b'x', b'y', a, b]);

        // Round 1 fills only 8190 octets: offset 6 length 3 from position 1 reads 8187..8190
        // (written), offset 5 length 3 would read 8188..8191 (8190 never written).
        let mut d = Decompressor::new();
        d.decompress(PacketFlags::FLUSHED | c(), &bits(&refs[..8190]))
            .unwrap();
        let p = bits(&["01111000", "1111 000110", "0"]);
        let out = d.decompress(PacketFlags::AT_FRONT | c(), &p).unwrap();
        assert_eq!(out, [b'x', lits[8187], lits[8188], lits[8189]]);
        let mut d = Decompressor::new();
        d.decompress(PacketFlags::FLUSHED | c(), &bits(&refs[..8190]))
            .unwrap();
        let p = bits(&["01111000", "1111 000101", "0"]);
        assert_eq!(
            d.decompress(PacketFlags::AT_FRONT | c(), &p),
            Err(MppcError::BadOffset {
                offset: 5,
                available: 8190
            })
        );

        // A flush forgets the previous round entirely.
        let mut d = Decompressor::new();
        d.decompress(PacketFlags::FLUSHED | c(), &full).unwrap();
        let p = bits(&["01111000", "1111 000110", "0"]);
        assert!(matches!(
            d.decompress(PacketFlags::FLUSHED | PacketFlags::AT_FRONT | c(), &p),
            Err(MppcError::BadOffset { offset: 6, .. })
        ));
    }

    #[test]
    fn copies_never_write_past_their_end() {
        // After round 1, round 2 (B) copies 8..64 octets; the octets just past each copy are
        // still round 1's and must read back unchanged through a wrapped reference.
        let lits: Vec<u8> = (0..8192u32).map(|i| ((i * 7 + 3) % 0x80) as u8).collect();
        let parts: Vec<String> = lits.iter().map(|b| format!("{b:08b}")).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let full = bits(&refs);
        for (len, code) in [(8usize, "110 000"), (13, "110 101"), (33, "11110 00001")] {
            let mut d = Decompressor::new();
            d.decompress(PacketFlags::FLUSHED | c(), &full).unwrap();
            // 8 literals 'a'..'h', a copy (offset 8) of `len`, then a copy of 3 from offset
            // 8190, which from position `end` reads round 1's octets end+2..end+5.
            let mut p: Vec<String> = (b'a'..=b'h').map(|b| format!("{b:08b}")).collect();
            p.push("1111 001000".into());
            p.push(code.into());
            p.push("110 1111010111110".into()); // offset 8190 = 320 + 7870
            p.push("0".into());
            let pr: Vec<&str> = p.iter().map(String::as_str).collect();
            let out = d
                .decompress(PacketFlags::AT_FRONT | c(), &bits(&pr))
                .unwrap();
            let end = 8 + len;
            assert_eq!(out.len(), end + 3);
            // Octets end+2, end+3, end+4 of round 1 (untouched by the copy before them).
            assert_eq!(&out[end..], &lits[end + 2..end + 5], "len {len}");
        }
    }

    #[test]
    fn uncompressed_packets_join_the_history() {
        let mut d = Decompressor::new();
        assert_eq!(
            d.decompress(PacketFlags::empty(), b"hello").unwrap(),
            b"hello"
        );
        // offset 5 length 5 repeats it.
        let out = d.decompress(c(), &bits(&["1111 000101", "10 01"])).unwrap();
        assert_eq!(out, b"hello");
        // Larger than the history: returned whole, history restarted.
        let big: Vec<u8> = (0..9000u32).map(|i| i as u8).collect();
        assert_eq!(d.decompress(PacketFlags::FLUSHED, &big).unwrap(), &big[..]);
    }
}
