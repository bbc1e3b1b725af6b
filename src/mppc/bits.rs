//! MSB-first bit writer and bounds-checked bit reader for the MPPC bitstream.

/// Packs bit strings most significant bit first into a caller-provided octet buffer.
///
/// Bits wait left-aligned in a 64-bit accumulator. After every symbol, [`flush`](Self::flush)
/// stores all 8 accumulator octets unconditionally and advances by the whole octets among them,
/// so the hot path has no data-dependent branch; the buffer therefore needs 8 octets of slack
/// past the last octet that can be written. A store that would not fit is dropped and
/// recorded ([`overflowed`](Self::overflowed)), never a panic.
pub(crate) struct BitWriter<'a> {
    buf: &'a mut [u8],
    /// Octets complete in `buf`.
    pos: usize,
    /// Pending bits, left-aligned; everything below the top `nbits` is zero.
    acc: u64,
    /// Pending bits: < 8 after a flush, at most 63 before one.
    nbits: u32,
    overflow: bool,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        BitWriter {
            buf,
            pos: 0,
            acc: 0,
            nbits: 0,
            overflow: false,
        }
    }

    /// Appends the low `n` bits of `value` (1 <= `n`, pending bits + `n` <= 63, upper bits of
    /// `value` zero). At most 56 bits may be put between two flushes.
    #[inline(always)]
    pub(crate) fn put(&mut self, value: u64, n: u32) {
        debug_assert!((1..=56).contains(&n) && value >> n == 0 && self.nbits + n <= 63);
        self.acc |= value << ((64 - self.nbits - n) & 63);
        self.nbits += n;
    }

    /// Moves the whole pending octets into the buffer.
    #[inline(always)]
    pub(crate) fn flush(&mut self) {
        match self
            .buf
            .get_mut(self.pos..)
            .and_then(|s| s.first_chunk_mut::<8>())
        {
            Some(d) => *d = self.acc.to_be_bytes(),
            None => self.overflow = true,
        }
        let whole = self.nbits >> 3;
        self.pos += whole as usize;
        // whole <= 7 (nbits < 64), so the shift is in range.
        self.acc <<= whole * 8;
        self.nbits &= 7;
    }

    /// Octets written so far, counting pending bits as a whole octet (call after a flush).
    #[inline(always)]
    pub(crate) fn len_bytes(&self) -> usize {
        self.pos + usize::from(self.nbits > 0)
    }

    /// Output bits so far (call after a flush).
    #[inline(always)]
    pub(crate) fn len_bits(&self) -> usize {
        self.pos * 8 + self.nbits as usize
    }

    /// Whether a store fell off the end of the buffer (the output is then incomplete).
    #[cfg(test)]
    pub(crate) fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Pads with zero bits to an octet boundary ("the last octet is padded with zero bits",
    /// RFC 2118 section 4) and returns the number of octets written, or `None` if the buffer
    /// was too small.
    pub(crate) fn finish(mut self) -> Option<usize> {
        self.flush();
        // The flush stored the partial octet too (its low bits are zero).
        let n = self.len_bytes();
        (!self.overflow).then_some(n)
    }
}

/// A bounds-checked MSB-first reader over one packet.
///
/// `buf` holds the next bits left-aligned; `count` says how many of them are real. Bits below
/// `count` are either zero or the real stream bits that a later refill would put there anyway,
/// and once the input is exhausted they are all zero, so peeking past `count` never invents
/// ones that are not in the input. Callers check `count` before consuming.
pub(crate) struct BitReader<'a> {
    input: &'a [u8],
    pos: usize,
    buf: u64,
    count: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        BitReader {
            input,
            pos: 0,
            buf: 0,
            count: 0,
        }
    }

    /// Tops the buffer up to at least 56 bits, or to everything that is left.
    #[inline(always)]
    pub(crate) fn refill(&mut self) {
        if let Some(chunk) = self
            .input
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<8>())
        {
            // Branch-free refill: or in 8 octets, count only the whole octets that fit.
            let word = u64::from_be_bytes(*chunk);
            self.buf |= word >> self.count;
            self.pos += ((63 - self.count) >> 3) as usize;
            self.count |= 56;
        } else {
            while self.count <= 56 {
                let Some(&b) = self.input.get(self.pos) else {
                    break;
                };
                self.buf |= u64::from(b) << (56 - self.count);
                self.count += 8;
                self.pos += 1;
            }
        }
    }

    /// Valid bits in the buffer.
    #[inline(always)]
    pub(crate) fn available(&self) -> u32 {
        self.count
    }

    /// The next bits, left-aligned (only the top `available()` are meaningful).
    #[inline(always)]
    pub(crate) fn peek(&self) -> u64 {
        self.buf
    }

    /// Drops `n` bits; `n` <= `available()` (checked by the caller).
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.count);
        self.buf <<= n;
        self.count -= n;
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn writer_packs_msb_first_and_pads() {
        let mut v = vec![0xff; 16];
        let mut w = BitWriter::new(&mut v);
        w.put(0b101, 3);
        w.put(0b1, 1);
        w.flush();
        w.put(0xabcd, 16);
        w.flush();
        w.put(0b11, 2);
        w.flush();
        assert_eq!(w.len_bytes(), 3);
        assert_eq!(w.len_bits(), 22);
        let n = w.finish().unwrap();
        v.truncate(n);
        // 101 1 1010101111001101 11 + 00 padding
        assert_eq!(v, [0b1011_1010, 0b1011_1100, 0b1101_1100]);
    }

    #[test]
    fn writer_crosses_word_boundaries() {
        let mut v = vec![0; 45 + 8];
        let mut w = BitWriter::new(&mut v);
        for i in 0..40u64 {
            w.put(i & 0x1ff, 9);
            if i % 3 == 0 {
                w.flush();
            }
        }
        let n = w.finish().unwrap();
        assert_eq!(n, 45);
        v.truncate(n);
        let mut r = BitReader::new(&v);
        for i in 0..40u32 {
            r.refill();
            assert!(r.available() >= 9);
            assert_eq!((r.peek() >> 55) as u32, i & 0x1ff);
            r.consume(9);
        }
        r.refill();
        assert_eq!(r.available(), 0, "360 bits = 45 octets exactly");
    }

    #[test]
    fn writer_reports_a_buffer_too_small() {
        let mut v = vec![0; 8];
        let mut w = BitWriter::new(&mut v);
        w.put(0xff, 8);
        w.flush();
        assert!(!w.overflowed());
        w.put(0xff, 8);
        w.flush();
        assert!(w.overflowed(), "the second 8-octet store does not fit");
        assert_eq!(w.finish(), None);
    }

    #[test]
    fn reader_handles_the_final_partial_octets() {
        for len in 0..20usize {
            let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
            let mut r = BitReader::new(&data);
            let mut got = Vec::new();
            loop {
                r.refill();
                if r.available() < 3 {
                    break;
                }
                got.push((r.peek() >> 61) as u8);
                r.consume(3);
            }
            // Rebuild the octets from the 3-bit groups and compare.
            let total = len * 8;
            assert_eq!(got.len(), total / 3);
            assert_eq!(r.available() as usize, total % 3);
            let mut bits = Vec::new();
            for g in &got {
                for k in (0..3).rev() {
                    bits.push((g >> k) & 1);
                }
            }
            for (i, bit) in bits.iter().enumerate() {
                assert_eq!(*bit, (data[i / 8] >> (7 - i % 8)) & 1);
            }
            // Past the end the buffer reads as zeros.
            assert_eq!(r.peek() << r.available(), 0);
        }
    }
}
