//! 256-bit escape maps: the 32-bit Async-Control-Character-Map of RFC 1662 section 7.1 widened
//! to every octet value (the "extended ACCM" used on hostile links that eat 0x7F, 0xFF or 8-bit
//! control characters).

/// A set of octet values, one bit per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EscapeMap([u64; 4]);

impl EscapeMap {
    /// The empty map.
    pub const EMPTY: EscapeMap = EscapeMap([0; 4]);

    /// The octets 0x00..=0x1F flagged in a 32-bit ACCM (bit `n` of the ACCM stands for octet `n`,
    /// RFC 1662 section 7.1).
    #[must_use]
    pub const fn from_accm(accm: u32) -> Self {
        EscapeMap([accm as u64, 0, 0, 0])
    }

    /// A map holding exactly `octets`.
    #[must_use]
    pub fn from_octets(octets: &[u8]) -> Self {
        let mut m = Self::EMPTY;
        for &o in octets {
            m.insert(o);
        }
        m
    }

    /// The map from its four 64-bit words (word 0 holds octets 0..=63, bit `n % 64` stands for
    /// octet `n`).
    #[must_use]
    pub const fn from_words(words: [u64; 4]) -> Self {
        EscapeMap(words)
    }

    /// The four 64-bit words of the map.
    #[must_use]
    pub const fn words(&self) -> [u64; 4] {
        self.0
    }

    /// The low 32 bits: the classic ACCM part of the map.
    #[must_use]
    pub const fn accm(&self) -> u32 {
        self.0[0] as u32
    }

    /// Whether `octet` is in the map.
    #[must_use]
    pub fn contains(&self, octet: u8) -> bool {
        let (w, b) = (usize::from(octet >> 6), octet & 63);
        self.0.get(w).is_some_and(|word| word >> b & 1 != 0)
    }

    /// Adds `octet` to the map.
    pub fn insert(&mut self, octet: u8) {
        let (w, b) = (usize::from(octet >> 6), octet & 63);
        if let Some(word) = self.0.get_mut(w) {
            *word |= 1 << b;
        }
    }

    /// Removes `octet` from the map.
    pub fn remove(&mut self, octet: u8) {
        let (w, b) = (usize::from(octet >> 6), octet & 63);
        if let Some(word) = self.0.get_mut(w) {
            *word &= !(1 << b);
        }
    }

    /// The union of two maps.
    #[must_use]
    pub const fn union(self, other: EscapeMap) -> Self {
        let (a, b) = (self.0, other.0);
        EscapeMap([a[0] | b[0], a[1] | b[1], a[2] | b[2], a[3] | b[3]])
    }

    /// Whether the map is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.0[0] | self.0[1] | self.0[2] | self.0[3] == 0
    }

    /// A 256-entry lookup table with `true` for every octet in the map.
    #[must_use]
    pub(crate) fn table(&self) -> [bool; 256] {
        let mut t = [false; 256];
        for (octet, slot) in (0..=u8::MAX).zip(t.iter_mut()) {
            *slot = self.contains(octet);
        }
        t
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn accm_bits() {
        let m = EscapeMap::from_accm(0x000A_0000);
        assert!(m.contains(0x11) && m.contains(0x13));
        assert!(!m.contains(0x10) && !m.contains(0x51));
        assert_eq!(m.accm(), 0x000A_0000);
        assert!(EscapeMap::from_accm(0).is_empty());
    }

    #[test]
    fn insert_remove_all_octets() {
        let mut m = EscapeMap::EMPTY;
        for o in 0..=255u8 {
            assert!(!m.contains(o));
            m.insert(o);
            assert!(m.contains(o));
        }
        assert_eq!(m.words(), [u64::MAX; 4]);
        m.remove(0xFF);
        assert!(!m.contains(0xFF) && m.contains(0xFE));
        let t = EscapeMap::from_octets(&[0x7F, 0xFF]).table();
        assert_eq!(t.iter().filter(|&&b| b).count(), 2);
        assert!(t[0x7F] && t[0xFF]);
    }
}
