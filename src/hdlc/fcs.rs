//! Frame Check Sequences: the 16-bit FCS of RFC 1662 (CRC-16/X.25, reflected polynomial
//! 0x8408) and the 32-bit FCS of RFC 1662 appendix C / RFC 1570 (CRC-32, reflected polynomial
//! 0xEDB88320).
//!
//! Both are computed "slicing-by-16": sixteen 256-entry tables, generated at compile time by
//! `const fn`, let the loop fold 16 input octets per step with independent table loads instead
//! of one dependent load per octet. The functions are pure update steps in the style of the RFC's
//! `pppfcs16(fcs, cp, len)`: they neither pre-set nor complement, so they can be chained over
//! spans. A frame's FCS is `!fcs16(FCS16_INIT, frame)`, transmitted least significant octet first;
//! a received frame including its FCS is good when `fcs16(FCS16_INIT, frame) == FCS16_GOOD`.

/// Initial FCS-16 value (RFC 1662 appendix C.2, `PPPINITFCS16`).
pub const FCS16_INIT: u16 = 0xFFFF;
/// FCS-16 residue of a frame with a correct FCS (RFC 1662 appendix C.2, `PPPGOODFCS16`).
pub const FCS16_GOOD: u16 = 0xF0B8;
/// Initial FCS-32 value (RFC 1662 appendix C.3, `PPPINITFCS32`).
pub const FCS32_INIT: u32 = 0xFFFF_FFFF;
/// FCS-32 residue of a frame with a correct FCS (RFC 1662 appendix C.3, `PPPGOODFCS32`).
pub const FCS32_GOOD: u32 = 0xDEBB_20E3;

/// Reflected CRC-16/X.25 polynomial x^16 + x^12 + x^5 + 1.
const POLY16: u16 = 0x8408;
/// Reflected CRC-32 polynomial (IEEE 802.3).
const POLY32: u32 = 0xEDB8_8320;

// Table generation runs at compile time: an index out of bounds here is a compile error, not a
// runtime panic, so the indexing lint does not apply in spirit.
#[allow(clippy::indexing_slicing)]
const fn make_table16() -> [[u16; 256]; 16] {
    let mut t = [[0u16; 256]; 16];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ POLY16
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    // t[s][x]: the CRC contribution of octet x followed by s zero octets.
    let mut s = 1;
    while s < 16 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

#[allow(clippy::indexing_slicing)]
const fn make_table32() -> [[u32; 256]; 16] {
    let mut t = [[0u32; 256]; 16];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ POLY32
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 16 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

static T16: [[u16; 256]; 16] = make_table16();
static T32: [[u32; 256]; 16] = make_table32();

/// Looks up a 256-entry table by octet; the `u8` index can never be out of bounds, and the
/// optimiser removes the `None` arm.
#[inline(always)]
fn lut<T: Copy + Default>(table: &[T; 256], octet: u8) -> T {
    match table.get(usize::from(octet)) {
        Some(v) => *v,
        None => T::default(),
    }
}

/// Updates a 16-bit FCS with `data` (RFC 1662 `pppfcs16`): no pre-set, no final complement.
///
/// `!fcs16(FCS16_INIT, b"123456789") == 0x906E` (the CRC-16/X.25 check value).
#[must_use]
pub fn fcs16(fcs: u16, data: &[u8]) -> u16 {
    let mut crc = fcs;
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let Ok(arr) = <[u8; 16]>::try_from(block) else {
            continue; // chunks_exact(16) yields 16-octet blocks only
        };
        let w = u128::from_le_bytes(arr) ^ u128::from(crc);
        let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15] =
            w.to_le_bytes();
        crc = lut(&T16[15], b0)
            ^ lut(&T16[14], b1)
            ^ lut(&T16[13], b2)
            ^ lut(&T16[12], b3)
            ^ lut(&T16[11], b4)
            ^ lut(&T16[10], b5)
            ^ lut(&T16[9], b6)
            ^ lut(&T16[8], b7)
            ^ lut(&T16[7], b8)
            ^ lut(&T16[6], b9)
            ^ lut(&T16[5], b10)
            ^ lut(&T16[4], b11)
            ^ lut(&T16[3], b12)
            ^ lut(&T16[2], b13)
            ^ lut(&T16[1], b14)
            ^ lut(&T16[0], b15);
    }
    for &b in blocks.remainder() {
        crc = (crc >> 8) ^ lut(&T16[0], (crc as u8) ^ b);
    }
    crc
}

/// Updates a 32-bit FCS with `data` (RFC 1662 `pppfcs32`): no pre-set, no final complement.
///
/// `!fcs32(FCS32_INIT, b"123456789") == 0xCBF43926` (the CRC-32 check value).
#[must_use]
pub fn fcs32(fcs: u32, data: &[u8]) -> u32 {
    let mut crc = fcs;
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let Ok(arr) = <[u8; 16]>::try_from(block) else {
            continue; // chunks_exact(16) yields 16-octet blocks only
        };
        let w = u128::from_le_bytes(arr) ^ u128::from(crc);
        let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15] =
            w.to_le_bytes();
        crc = lut(&T32[15], b0)
            ^ lut(&T32[14], b1)
            ^ lut(&T32[13], b2)
            ^ lut(&T32[12], b3)
            ^ lut(&T32[11], b4)
            ^ lut(&T32[10], b5)
            ^ lut(&T32[9], b6)
            ^ lut(&T32[8], b7)
            ^ lut(&T32[7], b8)
            ^ lut(&T32[6], b9)
            ^ lut(&T32[5], b10)
            ^ lut(&T32[4], b11)
            ^ lut(&T32[3], b12)
            ^ lut(&T32[2], b13)
            ^ lut(&T32[1], b14)
            ^ lut(&T32[0], b15);
    }
    for &b in blocks.remainder() {
        crc = (crc >> 8) ^ lut(&T32[0], (crc as u8) ^ b);
    }
    crc
}

/// Which Frame Check Sequence a link uses (RFC 1570 FCS-Alternatives; RFC 1662 default 16-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FcsKind {
    /// The 16-bit FCS, the default on every PPP link until LCP says otherwise.
    #[default]
    Fcs16,
    /// The 32-bit FCS (RFC 1570 FCS-Alternatives bit 4, RFC 1662 appendix C.3).
    Fcs32,
}

impl FcsKind {
    /// Octets the FCS occupies on the wire (before escaping).
    #[must_use]
    pub const fn octets(self) -> usize {
        match self {
            FcsKind::Fcs16 => 2,
            FcsKind::Fcs32 => 4,
        }
    }

    /// Computes the FCS to transmit after `frame`, least significant octet first, in the first
    /// [`octets`](Self::octets) octets of the returned array.
    #[must_use]
    pub fn trailer(self, frame: &[u8]) -> [u8; 4] {
        match self {
            FcsKind::Fcs16 => {
                let [a, b] = (!fcs16(FCS16_INIT, frame)).to_le_bytes();
                [a, b, 0, 0]
            }
            FcsKind::Fcs32 => (!fcs32(FCS32_INIT, frame)).to_le_bytes(),
        }
    }

    /// Whether `frame_with_fcs` (the received octets between the flags, unescaped, FCS
    /// included) leaves the good residue.
    #[must_use]
    pub fn check(self, frame_with_fcs: &[u8]) -> bool {
        match self {
            FcsKind::Fcs16 => fcs16(FCS16_INIT, frame_with_fcs) == FCS16_GOOD,
            FcsKind::Fcs32 => fcs32(FCS32_INIT, frame_with_fcs) == FCS32_GOOD,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// Bit-at-a-time reference, straight from the polynomial definition.
    fn fcs16_bitwise(mut fcs: u16, data: &[u8]) -> u16 {
        for &b in data {
            fcs ^= u16::from(b);
            for _ in 0..8 {
                fcs = if fcs & 1 != 0 {
                    (fcs >> 1) ^ 0x8408
                } else {
                    fcs >> 1
                };
            }
        }
        fcs
    }

    fn fcs32_bitwise(mut fcs: u32, data: &[u8]) -> u32 {
        for &b in data {
            fcs ^= u32::from(b);
            for _ in 0..8 {
                fcs = if fcs & 1 != 0 {
                    (fcs >> 1) ^ 0xEDB8_8320
                } else {
                    fcs >> 1
                };
            }
        }
        fcs
    }

    #[test]
    fn check_values() {
        assert_eq!(!fcs16(FCS16_INIT, b"123456789"), 0x906E);
        assert_eq!(!fcs32(FCS32_INIT, b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn table_zero_matches_rfc1662_fcstab() {
        // First entries of RFC 1662 appendix C.2 fcstab[] and C.3 fcstab_32[].
        assert_eq!(
            &T16[0][..8],
            &[0x0000, 0x1189, 0x2312, 0x329b, 0x4624, 0x57ad, 0x6536, 0x74bf]
        );
        assert_eq!(
            &T32[0][..4],
            &[0x0000_0000, 0x7707_3096, 0xee0e_612c, 0x9909_51ba]
        );
        assert_eq!(T16[0][255], 0x0f78);
        assert_eq!(T32[0][255], 0x2d02_ef8d);
    }

    #[test]
    fn good_residues() {
        for data in [&b""[..], b"123456789", &[0xFF, 0x03, 0xC0, 0x21, 0x01]] {
            let mut f = data.to_vec();
            f.extend_from_slice(&(!fcs16(FCS16_INIT, data)).to_le_bytes());
            assert_eq!(fcs16(FCS16_INIT, &f), FCS16_GOOD);
            assert!(FcsKind::Fcs16.check(&f));

            let mut g = data.to_vec();
            g.extend_from_slice(&(!fcs32(FCS32_INIT, data)).to_le_bytes());
            assert_eq!(fcs32(FCS32_INIT, &g), FCS32_GOOD);
            assert!(FcsKind::Fcs32.check(&g));
            // A flipped bit is caught.
            if let Some(x) = g.first_mut() {
                *x ^= 0x10;
            }
            assert!(!FcsKind::Fcs32.check(&g));
        }
    }

    #[test]
    fn sliced_equals_bitwise_all_lengths_and_splits() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            let d = &data[..len];
            assert_eq!(fcs16(FCS16_INIT, d), fcs16_bitwise(0xFFFF, d), "len {len}");
            assert_eq!(
                fcs32(FCS32_INIT, d),
                fcs32_bitwise(0xFFFF_FFFF, d),
                "len {len}"
            );
        }
        // Chaining over spans equals one pass.
        for split in [0, 1, 7, 16, 17, 150, 299, 300] {
            let (a, b) = data.split_at(split);
            assert_eq!(fcs16(fcs16(FCS16_INIT, a), b), fcs16(FCS16_INIT, &data));
            assert_eq!(fcs32(fcs32(FCS32_INIT, a), b), fcs32(FCS32_INIT, &data));
        }
    }

    #[test]
    fn trailer_is_lsb_first() {
        let t = FcsKind::Fcs16.trailer(b"123456789");
        assert_eq!(t, [0x6E, 0x90, 0, 0]);
        let t = FcsKind::Fcs32.trailer(b"123456789");
        assert_eq!(t, [0x26, 0x39, 0xF4, 0xCB]);
    }
}
