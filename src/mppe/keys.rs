//! MPPE key derivation (RFC 3079) and session key changes (RFC 3078 section 7.3).
//!
//! Everything here is a pure function over fixed-size arrays: no I/O, no allocation, no
//! failure paths. The password hashes MS-CHAP needs ([`nt_password_hash`],
//! [`hash_nt_password_hash`], [`lm_password_hash`]) live here too so the authentication code
//! can share them.
//!
//! Key material is wrapped in types whose `Debug` prints `<redacted>`, so a stray
//! `tracing::debug!("{:?}", state)` never leaks a key into a log.
//!
//! # Which start key goes where (RFC 3079 section 3.4, `GetAsymmetricStartKey`)
//! | role   | send key | receive key |
//! |--------|----------|-------------|
//! | client | Magic2   | Magic3      |
//! | server | Magic3   | Magic2      |
//!
//! so the client's send key equals the server's receive key and vice versa.

use des::cipher::{BlockEncrypt, KeyInit};
use md4::Md4;
use rc4::{consts::U16, consts::U8, Rc4, StreamCipher};
use sha1::{Digest, Sha1};

/// `SHSpad1`: 40 zero octets (RFC 3079 section 3.4).
const SHS_PAD1: [u8; 40] = [0x00; 40];
/// `SHSpad2`: 40 octets of 0xF2 (RFC 3079 section 3.4).
const SHS_PAD2: [u8; 40] = [0xF2; 40];

/// `Magic1`, "This is the MPPE Master Key" (RFC 3079 section 3.4).
const MAGIC1: &[u8; 27] = b"This is the MPPE Master Key";
/// `Magic2` (RFC 3079 section 3.4): the client's send key, the server's receive key.
const MAGIC2: &[u8; 84] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
/// `Magic3` (RFC 3079 section 3.4): the client's receive key, the server's send key.
const MAGIC3: &[u8; 84] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";

/// The clear text every LAN Manager hash encrypts, `StdText` (RFC 2433 appendix A).
const LM_STD_TEXT: &[u8; 8] = b"KGS!@#$%";

/// Salt replacing the first three octets of a 40-bit key (RFC 3078 section 7.3, RFC 3079).
const SALT_40: [u8; 3] = [0xD1, 0x26, 0x9E];
/// Salt replacing the first octet of a 56-bit key.
const SALT_56: u8 = 0xD1;

/// The negotiated MPPE key strength (CCP option 18 bits L, M, S).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStrength {
    /// 40-bit keys: 8 octets, the first three replaced by 0xD1 0x26 0x9E (bit L).
    Bits40,
    /// 56-bit keys: 8 octets, the first replaced by 0xD1 (bit M).
    Bits56,
    /// 128-bit keys: 16 octets (bit S).
    Bits128,
}

impl KeyStrength {
    /// Length in octets of start and session keys of this strength.
    pub const fn key_len(self) -> usize {
        match self {
            KeyStrength::Bits40 | KeyStrength::Bits56 => 8,
            KeyStrength::Bits128 => 16,
        }
    }

    /// Reduces the effective length of a freshly derived key in place (RFC 3078 section 7.3:
    /// "the first three octets are set to 0xD1, 0x26 and 0x9E" for 40 bits, the first octet to
    /// 0xD1 for 56 bits; 128-bit keys are left alone).
    fn salt(self, key: &mut [u8; 16]) {
        match self {
            KeyStrength::Bits40 => {
                if let Some(head) = key.first_chunk_mut::<3>() {
                    *head = SALT_40;
                }
            }
            KeyStrength::Bits56 => {
                if let Some(first) = key.first_mut() {
                    *first = SALT_56;
                }
            }
            KeyStrength::Bits128 => {}
        }
    }
}

/// Which way a key protects traffic, seen from the side that uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Packets this side sends.
    Send,
    /// Packets this side receives.
    Receive,
}

/// The side of the MS-CHAP exchange: the authenticator is the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The peer being authenticated (the dial-in client).
    Client,
    /// The authenticator (the PNS / RAS server).
    Server,
}

macro_rules! secret_key {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name {
            bytes: [u8; 16],
            len: u8,
        }

        impl $name {
            /// Wraps raw key octets (at most 16; longer input is cut to 16).
            pub fn from_slice(key: &[u8]) -> Self {
                let mut bytes = [0u8; 16];
                let len = key.len().min(16);
                if let (Some(dst), Some(src)) = (bytes.get_mut(..len), key.get(..len)) {
                    dst.copy_from_slice(src);
                }
                // `len` is at most 16, so the cast cannot truncate.
                $name { bytes, len: len as u8 }
            }

            /// The key octets.
            pub fn as_bytes(&self) -> &[u8] {
                self.bytes.get(..usize::from(self.len)).unwrap_or_default()
            }

            /// Length of the key in octets.
            pub fn len(&self) -> usize {
                usize::from(self.len)
            }

            /// Whether the key is empty (never true for keys derived here).
            pub fn is_empty(&self) -> bool {
                self.len == 0
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_key!(
    /// The 16-octet MS-CHAPv2 master key, `GetMasterKey` output (RFC 3079 section 3.4).
    MasterKey
);
secret_key!(
    /// A per-direction start key ("master session key"): the fixed basis of every session key
    /// of that direction. 8 octets for 40/56-bit, 16 for 128-bit MPPE.
    StartKey
);
secret_key!(
    /// The session key RC4 is currently keyed with. Changes on every key change.
    SessionKey
);

/// `NtPasswordHash`: MD4 of the password in UTF-16LE (RFC 2759 section 8.3).
pub fn nt_password_hash(password: &str) -> [u8; 16] {
    let mut md4 = Md4::new();
    for unit in password.encode_utf16() {
        md4.update(unit.to_le_bytes());
    }
    md4.finalize().into()
}

/// `HashNtPasswordHash`: MD4 of the NT password hash (RFC 2759 section 8.4).
pub fn hash_nt_password_hash(password_hash: &[u8; 16]) -> [u8; 16] {
    Md4::digest(password_hash).into()
}

/// `LmPasswordHash` (RFC 2433 appendix A): the password upper-cased, cut or zero-padded to 14
/// octets, each half used as a DES key to encrypt "KGS!@#$%".
///
/// Only ASCII letters are upper-cased and non-ASCII characters become `?`, which is what an
/// OEM code page would do for characters it cannot represent; MS-CHAPv1 40/56-bit MPPE keys
/// (RFC 3079 section 2.1) are the only users.
pub fn lm_password_hash(password: &str) -> [u8; 16] {
    let mut oem = [0u8; 14];
    for (dst, ch) in oem.iter_mut().zip(password.chars()) {
        *dst = if ch.is_ascii() {
            ch.to_ascii_uppercase() as u8
        } else {
            b'?'
        };
    }
    let mut out = [0u8; 16];
    let (lo, hi) = oem.split_at(7);
    let (out_lo, out_hi) = out.split_at_mut(8);
    des_hash(lo, out_lo);
    des_hash(hi, out_hi);
    out
}

/// `DesHash`: DES-encrypts [`LM_STD_TEXT`] with a 7-octet key (parity bits inserted).
fn des_hash(key7: &[u8], out: &mut [u8]) {
    let mut k = [0u8; 7];
    for (dst, src) in k.iter_mut().zip(key7) {
        *dst = *src;
    }
    let key = des_key_from_56_bits(&k);
    let cipher = des::Des::new(&key.into());
    let mut block = *LM_STD_TEXT;
    cipher.encrypt_block((&mut block).into());
    for (dst, src) in out.iter_mut().zip(block) {
        *dst = src;
    }
}

/// Spreads 56 key bits over 8 octets, 7 bits each, leaving the (ignored) parity bit clear.
fn des_key_from_56_bits(k: &[u8; 7]) -> [u8; 8] {
    let [a, b, c, d, e, f, g] = *k;
    [
        a & 0xFE,
        (a << 7) | (b >> 1),
        (b << 6) | (c >> 2),
        (c << 5) | (d >> 3),
        (d << 4) | (e >> 4),
        (e << 3) | (f >> 5),
        (f << 2) | (g >> 6),
        g << 1,
    ]
}

/// `GetMasterKey` (RFC 3079 section 3.4): SHA-1 over the password hash hash, the 24-octet
/// NT-Response and `Magic1`, cut to 16 octets.
pub fn get_master_key(password_hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> MasterKey {
    let digest = Sha1::new()
        .chain_update(password_hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC1)
        .finalize();
    MasterKey::from_slice(digest.get(..16).unwrap_or_default())
}

/// `GetAsymmetricStartKey` (RFC 3079 section 3.4) for one direction of one side.
///
/// "IsSend" and "IsServer" pick Magic2 or Magic3 (see the module table); the result is the
/// first `strength.key_len()` octets of SHA-1(MasterKey | SHSpad1 | Magic | SHSpad2).
pub fn get_asymmetric_start_key(
    master: &MasterKey,
    strength: KeyStrength,
    direction: Direction,
    role: Role,
) -> StartKey {
    let magic: &[u8] = match (direction, role) {
        (Direction::Send, Role::Client) | (Direction::Receive, Role::Server) => MAGIC2,
        (Direction::Send, Role::Server) | (Direction::Receive, Role::Client) => MAGIC3,
    };
    let digest = Sha1::new()
        .chain_update(master.as_bytes())
        .chain_update(SHS_PAD1)
        .chain_update(magic)
        .chain_update(SHS_PAD2)
        .finalize();
    StartKey::from_slice(digest.get(..strength.key_len()).unwrap_or_default())
}

/// MS-CHAPv2 start key of one direction (RFC 3079 sections 3.1-3.3): master key from the
/// password hash hash and the NT-Response, then [`get_asymmetric_start_key`].
pub fn mschapv2_start_key(
    password_hash_hash: &[u8; 16],
    nt_response: &[u8; 24],
    strength: KeyStrength,
    direction: Direction,
    role: Role,
) -> StartKey {
    let master = get_master_key(password_hash_hash, nt_response);
    get_asymmetric_start_key(&master, strength, direction, role)
}

/// `GetStartKey` (RFC 3079 section 2.4): the MS-CHAPv1 128-bit start key,
/// SHA-1(PasswordHashHash | PasswordHashHash | Challenge) cut to 16 octets.
pub fn get_start_key(challenge: &[u8; 8], password_hash_hash: &[u8; 16]) -> StartKey {
    let digest = Sha1::new()
        .chain_update(password_hash_hash)
        .chain_update(password_hash_hash)
        .chain_update(challenge)
        .finalize();
    StartKey::from_slice(digest.get(..16).unwrap_or_default())
}

/// MS-CHAPv1 start key (RFC 3079 sections 2.1-2.3); MS-CHAPv1 keys are the same in both
/// directions.
///
/// 40 and 56 bits use the first 8 octets of the LAN Manager password hash; 128 bits use
/// [`get_start_key`] over the authenticator's 8-octet challenge and the NT password hash hash.
pub fn mschapv1_start_key(
    strength: KeyStrength,
    lm_password_hash: &[u8; 16],
    password_hash_hash: &[u8; 16],
    challenge: &[u8; 8],
) -> StartKey {
    match strength {
        KeyStrength::Bits40 | KeyStrength::Bits56 => {
            StartKey::from_slice(lm_password_hash.get(..8).unwrap_or_default())
        }
        KeyStrength::Bits128 => get_start_key(challenge, password_hash_hash),
    }
}

/// `GetNewKeyFromSHA` (RFC 3078 section 7.3; `GetKey` in RFC 3079 section 2.4): the first
/// `start.len()` octets of SHA-1(StartKey | SHSpad1 | SessionKey | SHSpad2).
pub fn get_new_key_from_sha(start: &StartKey, session: &[u8]) -> [u8; 16] {
    let len = start.len();
    let digest = Sha1::new()
        .chain_update(start.as_bytes())
        .chain_update(SHS_PAD1)
        .chain_update(session.get(..len).unwrap_or(session))
        .chain_update(SHS_PAD2)
        .finalize();
    let mut out = [0u8; 16];
    for (dst, src) in out.iter_mut().zip(digest.get(..len).unwrap_or_default()) {
        *dst = *src;
    }
    out
}

/// The first session key of a direction (RFC 3079 sections 2.1-2.3 and 3.1-3.3):
/// `GetNewKeyFromSHA(StartKey, StartKey)`, then the 40/56-bit salt. No RC4 step here.
pub fn initial_session_key(start: &StartKey, strength: KeyStrength) -> SessionKey {
    let mut key = get_new_key_from_sha(start, start.as_bytes());
    strength.salt(&mut key);
    SessionKey::from_slice(key.get(..strength.key_len()).unwrap_or_default())
}

/// A key change (RFC 3078 section 7.3): `GetNewKeyFromSHA(StartKey, SessionKey)` gives an
/// interim key; RC4 keyed with the interim key encrypts the interim key into the new session
/// key; 40/56-bit keys are then salted again.
pub fn next_session_key(
    start: &StartKey,
    current: &SessionKey,
    strength: KeyStrength,
) -> SessionKey {
    let mut interim = get_new_key_from_sha(start, current.as_bytes());
    match strength {
        KeyStrength::Bits40 | KeyStrength::Bits56 => {
            if let Some(k) = interim.first_chunk_mut::<8>() {
                let mut rc4 = Rc4::<U8>::new(&(*k).into());
                rc4.apply_keystream(k);
            }
        }
        KeyStrength::Bits128 => {
            let mut rc4 = Rc4::<U16>::new(&interim.into());
            rc4.apply_keystream(&mut interim);
        }
    }
    strength.salt(&mut interim);
    SessionKey::from_slice(interim.get(..strength.key_len()).unwrap_or_default())
}

#[cfg(test)]
mod test {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .map(|c| (c as char).to_digit(16).unwrap() as u8)
            .collect();
        digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().unwrap()
    }

    /// RC4 of "test message" under a fresh RC4 keyed with `key` (the RFC 3079 section 3.5
    /// "Sample Encrypted Message").
    fn encrypt_test_message(key: &SessionKey) -> Vec<u8> {
        let mut msg = b"test message".to_vec();
        match key.len() {
            8 => Rc4::<U8>::new(&<[u8; 8]>::try_from(key.as_bytes()).unwrap().into())
                .apply_keystream(&mut msg),
            16 => Rc4::<U16>::new(&<[u8; 16]>::try_from(key.as_bytes()).unwrap().into())
                .apply_keystream(&mut msg),
            _ => unreachable!(),
        }
        msg
    }

    // RFC 2759 section 9.2 / RFC 3079 section 3.5 initial values.
    const PASSWORD: &str = "clientPass";
    const NT_RESPONSE: &str =
        "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF";
    const PASSWORD_HASH: &str = "44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE";
    const PASSWORD_HASH_HASH: &str = "41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F";
    const MASTER_KEY: &str = "FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31";

    #[test]
    fn rfc2759_password_hashes() {
        // RFC 2759 section 9.2: PasswordHash and PasswordHashHash of "clientPass".
        let h = nt_password_hash(PASSWORD);
        assert_eq!(h.to_vec(), hex(PASSWORD_HASH));
        assert_eq!(hash_nt_password_hash(&h).to_vec(), hex(PASSWORD_HASH_HASH));
    }

    #[test]
    fn rfc2433_hashes_of_mypw() {
        // RFC 2433 appendix B: NT password hash of "MyPw".
        assert_eq!(
            nt_password_hash("MyPw").to_vec(),
            hex("FC156AF7EDCD6C0EDDE3337D427F4EAC")
        );
        // LAN Manager hash of "MyPw" (second half is the hash of an empty half-password).
        assert_eq!(
            lm_password_hash("MyPw").to_vec(),
            hex("75BA30198E6D1975AAD3B435B51404EE")
        );
    }

    #[test]
    fn rfc3079_3_5_master_key() {
        let m = get_master_key(&arr(PASSWORD_HASH_HASH), &arr(NT_RESPONSE));
        assert_eq!(m.as_bytes(), hex(MASTER_KEY));
    }

    /// RFC 3079 section 3.5 computes "SendStartKey" with IsSend = TRUE, IsServer = TRUE
    /// (Magic3); the same octets are the client's receive key.
    fn rfc_start_key(strength: KeyStrength) -> StartKey {
        let master = MasterKey::from_slice(&hex(MASTER_KEY));
        let key = get_asymmetric_start_key(&master, strength, Direction::Send, Role::Server);
        assert_eq!(
            key,
            get_asymmetric_start_key(&master, strength, Direction::Receive, Role::Client)
        );
        key
    }

    #[test]
    fn rfc3079_3_5_1_sample_40_bit() {
        let start = rfc_start_key(KeyStrength::Bits40);
        assert_eq!(start.as_bytes(), hex("8B 7C DC 14 9B 99 3A 1B"));
        // GetNewKeyFromSHA before the salt.
        assert_eq!(
            get_new_key_from_sha(&start, start.as_bytes())[..8],
            hex("96 5C 00 C4 9F A6 2E 3E")[..]
        );
        let session = initial_session_key(&start, KeyStrength::Bits40);
        assert_eq!(session.as_bytes(), hex("D1 26 9E C4 9F A6 2E 3E"));
        assert_eq!(
            encrypt_test_message(&session),
            hex("92 91 37 91 7E 58 03 D6 68 D7 58 98")
        );
    }

    #[test]
    fn rfc3079_3_5_2_sample_56_bit() {
        let start = rfc_start_key(KeyStrength::Bits56);
        assert_eq!(start.as_bytes(), hex("8B 7C DC 14 9B 99 3A 1B"));
        let session = initial_session_key(&start, KeyStrength::Bits56);
        assert_eq!(session.as_bytes(), hex("D1 5C 00 C4 9F A6 2E 3E"));
        // The RFC prints the encrypted message as "3F 10 68 33 FA 44 8D A8 42 BC 57 58". The
        // last octet is a misprint: RC4 keyed with the printed session key (which we match, as
        // we match the 40- and 128-bit messages) gives 0xB8 there, as other implementations
        // note too. The first eleven octets are checked against the RFC text as printed.
        let rfc_printed = hex("3F 10 68 33 FA 44 8D A8 42 BC 57 58");
        let ours = encrypt_test_message(&session);
        assert_eq!(ours[..11], rfc_printed[..11]);
        assert_eq!(ours, hex("3F 10 68 33 FA 44 8D A8 42 BC 57 B8"));
    }

    #[test]
    fn rfc3079_3_5_3_sample_128_bit() {
        let start = rfc_start_key(KeyStrength::Bits128);
        assert_eq!(
            start.as_bytes(),
            hex("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB")
        );
        let session = initial_session_key(&start, KeyStrength::Bits128);
        assert_eq!(
            session.as_bytes(),
            hex("40 5C B2 24 7A 79 56 E6 E2 11 00 7A E2 7B 22 D4")
        );
        assert_eq!(
            encrypt_test_message(&session),
            hex("81 84 83 17 DF 68 84 62 72 FB 5A BE")
        );
    }

    #[test]
    fn mschapv2_directions_pair_up() {
        let hh = arr(PASSWORD_HASH_HASH);
        let resp = arr(NT_RESPONSE);
        for strength in [
            KeyStrength::Bits40,
            KeyStrength::Bits56,
            KeyStrength::Bits128,
        ] {
            let k = |d, r| mschapv2_start_key(&hh, &resp, strength, d, r);
            assert_eq!(
                k(Direction::Send, Role::Client),
                k(Direction::Receive, Role::Server)
            );
            assert_eq!(
                k(Direction::Send, Role::Server),
                k(Direction::Receive, Role::Client)
            );
            assert_ne!(
                k(Direction::Send, Role::Client),
                k(Direction::Send, Role::Server)
            );
            assert_eq!(k(Direction::Send, Role::Client).len(), strength.key_len());
        }
        // The client's send key (Magic2), 128 bits, as the RFC 3079 sample's receive key.
        assert_eq!(
            mschapv2_start_key(
                &hh,
                &resp,
                KeyStrength::Bits128,
                Direction::Send,
                Role::Client
            )
            .as_bytes(),
            hex("D5 F0 E9 52 1E 3E A9 58 96 45 E8 60 51 C8 22 26")
        );
    }

    // RFC 3079 section 2.5: MS-CHAPv1 samples (password "clientPass").
    const LM_HASH: &str = "76 A1 52 93 60 96 D7 83 0E 23 90 22 74 04 AF D2";
    const V1_CHALLENGE: &str = "10 2D B5 DF 08 5D 30 41";

    #[test]
    fn rfc3079_2_5_lm_hash() {
        assert_eq!(lm_password_hash(PASSWORD).to_vec(), hex(LM_HASH));
    }

    #[test]
    fn rfc3079_2_5_1_sample_40_bit() {
        let start = mschapv1_start_key(
            KeyStrength::Bits40,
            &arr(LM_HASH),
            &arr(PASSWORD_HASH_HASH),
            &arr(V1_CHALLENGE),
        );
        assert_eq!(start.as_bytes(), hex("76 A1 52 93 60 96 D7 83"));
        assert_eq!(
            get_new_key_from_sha(&start, start.as_bytes())[..8],
            hex("D8 08 01 53 8C EC 4A 08")[..]
        );
        let session = initial_session_key(&start, KeyStrength::Bits40);
        assert_eq!(session.as_bytes(), hex("D1 26 9E 53 8C EC 4A 08"));
    }

    #[test]
    fn rfc3079_2_5_2_sample_56_bit() {
        let start = mschapv1_start_key(
            KeyStrength::Bits56,
            &arr(LM_HASH),
            &arr(PASSWORD_HASH_HASH),
            &arr(V1_CHALLENGE),
        );
        let session = initial_session_key(&start, KeyStrength::Bits56);
        assert_eq!(session.as_bytes(), hex("D1 08 01 53 8C EC 4A 08"));
    }

    #[test]
    fn rfc3079_2_5_3_sample_128_bit() {
        let start = get_start_key(&arr(V1_CHALLENGE), &arr(PASSWORD_HASH_HASH));
        assert_eq!(
            start.as_bytes(),
            hex("A8 94 78 50 CF C0 AC C1 D1 78 9F B6 2D DC DD B0")
        );
        let session = initial_session_key(&start, KeyStrength::Bits128);
        assert_eq!(
            session.as_bytes(),
            hex("59 D1 59 BC 09 F7 6F 1D A2 A8 6A 28 FF EC 0B 1E")
        );
    }

    #[test]
    fn key_change_follows_rfc3078_7_3() {
        // Recompute the key change by hand from its definition and compare.
        for strength in [
            KeyStrength::Bits40,
            KeyStrength::Bits56,
            KeyStrength::Bits128,
        ] {
            let start = rfc_start_key(strength);
            let s0 = initial_session_key(&start, strength);
            let s1 = next_session_key(&start, &s0, strength);
            let len = strength.key_len();
            let interim = get_new_key_from_sha(&start, s0.as_bytes());
            let mut manual = interim[..len].to_vec();
            match len {
                8 => Rc4::<U8>::new(&<[u8; 8]>::try_from(&interim[..8]).unwrap().into())
                    .apply_keystream(&mut manual),
                _ => Rc4::<U16>::new(&interim.into()).apply_keystream(&mut manual),
            }
            match strength {
                KeyStrength::Bits40 => manual[..3].copy_from_slice(&[0xD1, 0x26, 0x9E]),
                KeyStrength::Bits56 => manual[0] = 0xD1,
                KeyStrength::Bits128 => {}
            }
            assert_eq!(s1.as_bytes(), &manual[..]);
            assert_ne!(s1, s0);
            let s2 = next_session_key(&start, &s1, strength);
            assert_ne!(s2, s1);
        }
    }

    #[test]
    fn keys_are_redacted_in_debug() {
        let start = rfc_start_key(KeyStrength::Bits128);
        let session = initial_session_key(&start, KeyStrength::Bits128);
        let master = MasterKey::from_slice(&hex(MASTER_KEY));
        for s in [
            format!("{start:?}"),
            format!("{session:?}"),
            format!("{master:?}"),
        ] {
            assert!(s.contains("<redacted>"), "{s}");
            assert!(
                !s.contains("8B") && !s.contains("139") && !s.contains("0x"),
                "{s}"
            );
        }
    }
}
