//! RC4 keystream for the MPPE data path.
//!
//! The `rc4` crate is the reference (key derivation in [`super::keys`] uses it, and the tests
//! below check this implementation against it and against RFC 6229). The data path uses this
//! one because it is faster: the crate generates the keystream one 1-octet "block" at a time
//! through its generic stream-cipher wrapper, 440-450 MB/s of CPU time on the build machine,
//! while this loop over a `u32` state table does about 690 MB/s (docs/PERFORMANCE.md, MPPE).
//! 32-bit table entries avoid partial-register stalls on x86 (OpenSSL's `RC4_INT` does the
//! same); all indices are `u8`, so no lookup can leave the 256-entry table.

/// RC4 state: the permutation and the two indices.
#[derive(Clone)]
pub(crate) struct Rc4 {
    s: [u32; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    /// The key-scheduling algorithm over `key` (1 to 256 octets; MPPE uses 8 or 16).
    pub(crate) fn new(key: &[u8]) -> Rc4 {
        let mut s = [0u32; 256];
        for (n, v) in (0u32..).zip(s.iter_mut()) {
            *v = n;
        }
        let mut j = 0u8;
        for (n, k) in (0..=255u8).zip(key.iter().cycle()) {
            let sn = s.get(usize::from(n)).copied().unwrap_or(0);
            j = j.wrapping_add(sn as u8).wrapping_add(*k);
            s.swap(usize::from(n), usize::from(j));
        }
        Rc4 { s, i: 0, j: 0 }
    }

    /// XORs the next `data.len()` keystream octets into `data`.
    pub(crate) fn apply(&mut self, data: &mut [u8]) {
        let (mut i, mut j) = (self.i, self.j);
        let s = &mut self.s;
        for b in data.iter_mut() {
            i = i.wrapping_add(1);
            let si = s.get(usize::from(i)).copied().unwrap_or(0);
            j = j.wrapping_add(si as u8);
            let sj = s.get(usize::from(j)).copied().unwrap_or(0);
            if let Some(x) = s.get_mut(usize::from(i)) {
                *x = sj;
            }
            if let Some(x) = s.get_mut(usize::from(j)) {
                *x = si;
            }
            let k = s
                .get(usize::from((si as u8).wrapping_add(sj as u8)))
                .copied()
                .unwrap_or(0);
            *b ^= k as u8;
        }
        self.i = i;
        self.j = j;
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;
    use rc4::{KeyInit, StreamCipher};

    #[test]
    fn rfc6229_40_bit_key() {
        // RFC 6229 section 2, key 0x0102030405: keystream offsets 0 and 240.
        let mut ks = vec![0u8; 256];
        Rc4::new(&[1, 2, 3, 4, 5]).apply(&mut ks);
        assert_eq!(
            ks[..16],
            [
                0xb2, 0x39, 0x63, 0x05, 0xf0, 0x3d, 0xc0, 0x27, 0xcc, 0xc3, 0x52, 0x4a, 0x0a, 0x11,
                0x18, 0xa8
            ]
        );
        assert_eq!(
            ks[240..],
            [
                0x28, 0xcb, 0x11, 0x32, 0xc9, 0x6c, 0xe2, 0x86, 0x42, 0x1d, 0xca, 0xad, 0xb8, 0xb6,
                0x9e, 0xae
            ]
        );
    }

    proptest! {
        #[test]
        fn matches_the_rc4_crate(
            key8 in any::<[u8; 8]>(),
            key16 in any::<[u8; 16]>(),
            chunks in prop::collection::vec(0usize..600, 1..6),
        ) {
            let mut ours8 = Rc4::new(&key8);
            let mut ours16 = Rc4::new(&key16);
            let mut ref8 = rc4::Rc4::<rc4::consts::U8>::new(&key8.into());
            let mut ref16 = rc4::Rc4::<rc4::consts::U16>::new(&key16.into());
            for len in chunks {
                let (mut a, mut b) = (vec![0x5Au8; len], vec![0x5Au8; len]);
                ours8.apply(&mut a);
                ref8.apply_keystream(&mut b);
                prop_assert_eq!(&a, &b);
                ours16.apply(&mut a);
                ref16.apply_keystream(&mut b);
                prop_assert_eq!(&a, &b);
            }
        }
    }
}
