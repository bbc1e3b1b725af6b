//! MSB-first bit writer and bounds-checked bit reader for the MPPC bitstream.

/// Packs bit strings most significant bit first into a `Vec<u8>`.
///
/// Bits wait in a 64-bit accumulator and leave it 32 at a time, so a `put` costs a shift, an or
/// and (every few symbols) one 4-octet append.
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    /// Valid bits in the low end of `acc`, always < 32 between calls.
    nbits: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            nbits: 0,
        }
    }

    /// Appends the low `n` bits of `value` (`n` <= 32, upper bits of `value` zero).
    #[inline(always)]
    pub(crate) fn put(&mut self, value: u32, n: u32) {
        debug_assert!(n <= 32 && (n == 32 || value >> n == 0));
        self.acc = (self.acc << n) | u64::from(value);
        self.nbits += n;
        if self.nbits >= 32 {
            self.nbits -= 32;
            // Truncation keeps exactly the 32 oldest pending bits.
            let word = (self.acc >> self.nbits) as u32;
            self.out.extend_from_slice(&word.to_be_bytes());
        }
    }

    /// Octets written so far, counting pending bits as whole octets.
    #[inline(always)]
    pub(crate) fn len_bytes(&self) -> usize {
        self.out.len() + self.nbits.div_ceil(8) as usize
    }

    /// Pads with zero bits to an octet boundary and flushes ("the last octet is padded with
    /// zero bits", RFC 2118 section 4).
    pub(crate) fn finish(self) {
        let mut n = self.nbits;
        let acc = self.acc;
        while n >= 8 {
            n -= 8;
            self.out.push((acc >> n) as u8);
        }
        if n > 0 {
            self.out.push((acc << (8 - n)) as u8);
        }
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
        let mut v = Vec::new();
        let mut w = BitWriter::new(&mut v);
        w.put(0b101, 3);
        w.put(0b1, 1);
        w.put(0xabcd, 16);
        w.put(0b11, 2);
        assert_eq!(w.len_bytes(), 3);
        w.finish();
        // 101 1 1010101111001101 11 + 00 padding
        assert_eq!(v, [0b1011_1010, 0b1011_1100, 0b1101_1100]);
    }

    #[test]
    fn writer_crosses_word_boundaries() {
        let mut v = Vec::new();
        let mut w = BitWriter::new(&mut v);
        for i in 0..40u32 {
            w.put(i & 0x1ff, 9);
        }
        w.finish();
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
