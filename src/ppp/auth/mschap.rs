//! MS-CHAP version 1 (RFC 2433) and version 2 (RFC 2759): the crypto as pure functions.
//!
//! The password hashes (NtPasswordHash, HashNtPasswordHash, LmPasswordHash) come from
//! [`crate::mppe::keys`], which MPPE key derivation shares; this module adds the byte-string
//! entry points MS-CHAP needs and the challenge/response functions.

use des::cipher::{BlockEncrypt, KeyInit};
use des::Des;
use sha1::{Digest, Sha1};

use crate::mppe::keys;

/// The password as Unicode (UTF-16LE), as NtPasswordHash hashes it. A password that is not
/// UTF-8 is taken octet by octet as Latin-1.
pub fn unicode_password(password: &[u8]) -> Vec<u8> {
    match core::str::from_utf8(password) {
        Ok(s) => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        Err(_) => password.iter().flat_map(|&b| [b, 0]).collect(),
    }
}

/// The password as text: UTF-8 when it is, otherwise Latin-1 octet by octet (whose UTF-16
/// units are the octets themselves, so [`unicode_password`] and the hash agree).
fn password_text(password: &[u8]) -> String {
    match core::str::from_utf8(password) {
        Ok(s) => s.to_owned(),
        Err(_) => password.iter().map(|&b| char::from(b)).collect(),
    }
}

/// RFC 2433 / RFC 2759 NtPasswordHash: MD4 of the Unicode password.
pub fn nt_password_hash(password: &[u8]) -> [u8; 16] {
    keys::nt_password_hash(&password_text(password))
}

/// RFC 2759 HashNtPasswordHash: MD4 of the NT password hash (the "PasswordHashHash").
pub fn hash_nt_password_hash(hash: &[u8; 16]) -> [u8; 16] {
    keys::hash_nt_password_hash(hash)
}

/// Spreads 7 key octets over 8, leaving the low bit of each for parity (RFC 2433 DesEncrypt).
fn des_key(key7: &[u8; 7]) -> [u8; 8] {
    let k = u64::from_be_bytes([
        0, key7[0], key7[1], key7[2], key7[3], key7[4], key7[5], key7[6],
    ]);
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        // Seven bits per octet, most significant first.
        let bits = (k >> (49 - 7 * i)) & 0x7f;
        let byte = (bits as u8) << 1;
        // Odd parity in the low bit (DES ignores it; set for tidiness).
        *o = byte | u8::from(byte.count_ones() % 2 == 0);
    }
    out
}

/// RFC 2433 DesEncrypt: DES-ECB of one block under a 7-octet key.
pub fn des_encrypt(clear: &[u8; 8], key7: &[u8; 7]) -> [u8; 8] {
    let key = des_key(key7);
    let cipher = Des::new(&key.into());
    let mut block = (*clear).into();
    cipher.encrypt_block(&mut block);
    block.into()
}

/// RFC 2433 ChallengeResponse: the 16-octet hash padded to 21, three DES blocks.
pub fn challenge_response(challenge: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(password_hash);
    let mut out = [0u8; 24];
    for (chunk, key) in out.chunks_exact_mut(8).zip(z.chunks_exact(7)) {
        let mut k = [0u8; 7];
        k.copy_from_slice(key);
        chunk.copy_from_slice(&des_encrypt(challenge, &k));
    }
    out
}

/// RFC 2433 NtChallengeResponse.
pub fn nt_challenge_response(challenge: &[u8; 8], nt_hash: &[u8; 16]) -> [u8; 24] {
    challenge_response(challenge, nt_hash)
}

/// RFC 2433 LmPasswordHash (from [`crate::mppe::keys`]). Weak by design; used only when the
/// policy enables LM responses, and for MS-CHAPv1 40/56-bit MPPE keys.
pub fn lm_password_hash(password: &[u8]) -> [u8; 16] {
    keys::lm_password_hash(&password_text(password))
}

/// RFC 2433 LmChallengeResponse.
pub fn lm_challenge_response(challenge: &[u8; 8], password: &[u8]) -> [u8; 24] {
    challenge_response(challenge, &lm_password_hash(password))
}

/// The user name MS-CHAPv2 hashes: RFC 2759 section 8.2, "the user name (as presented by the
/// peer and excluding any prepended domain name)", i.e. the part after the last backslash.
pub fn strip_domain(user: &[u8]) -> &[u8] {
    match user.iter().rposition(|&b| b == b'\\') {
        Some(i) => user.get(i + 1..).unwrap_or_default(),
        None => user,
    }
}

/// RFC 2759 ChallengeHash: the first 8 octets of SHA-1(PeerChallenge, AuthenticatorChallenge,
/// UserName).
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    user: &[u8],
) -> [u8; 8] {
    let d = Sha1::new()
        .chain_update(peer_challenge)
        .chain_update(auth_challenge)
        .chain_update(strip_domain(user))
        .finalize();
    let mut out = [0u8; 8];
    for (o, b) in out.iter_mut().zip(d.iter()) {
        *o = *b;
    }
    out
}

/// RFC 2759 GenerateNTResponse, from the NT password hash.
pub fn generate_nt_response(
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user: &[u8],
    nt_hash: &[u8; 16],
) -> [u8; 24] {
    let c = challenge_hash(peer_challenge, auth_challenge, user);
    challenge_response(&c, nt_hash)
}

/// RFC 2759 GenerateAuthenticatorResponse: the 20-octet value behind "S=".
pub fn generate_authenticator_response(
    nt_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    user: &[u8],
) -> [u8; 20] {
    const MAGIC1: &[u8; 39] = b"Magic server to client signing constant";
    const MAGIC2: &[u8; 41] = b"Pad to make it do more than one iteration";
    let hash_hash = hash_nt_password_hash(nt_hash);
    let digest = Sha1::new()
        .chain_update(hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC1)
        .finalize();
    let challenge = challenge_hash(peer_challenge, auth_challenge, user);
    Sha1::new()
        .chain_update(digest)
        .chain_update(challenge)
        .chain_update(MAGIC2)
        .finalize()
        .into()
}

/// The authenticator response as sent in the Success message: "S=" and 40 upper-case hex
/// digits.
pub fn authenticator_response_string(response: &[u8; 20]) -> String {
    let mut s = String::with_capacity(42);
    s.push_str("S=");
    push_hex(&mut s, response);
    s
}

/// Appends upper-case hex digits.
pub fn push_hex(s: &mut String, bytes: &[u8]) {
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            let c = char::from_digit(u32::from(nibble), 16).unwrap_or('0');
            s.push(c.to_ascii_uppercase());
        }
    }
}

/// Parses hex digits (either case) into `out`; `None` unless exactly `2 * out.len()` digits.
pub fn parse_hex(text: &[u8], out: &mut [u8]) -> Option<()> {
    if text.len() != 2 * out.len() {
        return None;
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (hi, lo) = (pair.first()?, pair.get(1)?);
        *o = nibble(*hi)? << 4 | nibble(*lo)?;
    }
    Some(())
}

/// Finds the 20-octet authenticator response in an MS-CHAPv2 Success message
/// ("S=<40 hex> M=<text>", where "M=" is optional).
pub fn parse_success_message(message: &[u8]) -> Option<[u8; 20]> {
    let rest = message.strip_prefix(b"S=")?;
    let hex = rest.get(..40)?;
    match rest.get(40) {
        None | Some(b' ') => {}
        Some(_) => return None,
    }
    let mut out = [0u8; 20];
    parse_hex(hex, &mut out)?;
    Some(out)
}

/// An MS-CHAP Failure message: "E=eeeeeeeeee R=r C=cccccccccccccccccccccccccccccccc V=vvvvvvvvvv
/// M=<msg>" (RFC 2759 section 6; RFC 2433 omits C for version 1 and M).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error code (691 authentication failure, 648 password expired, 649 no dial-in
    /// permission, 647 account disabled, 646 restricted logon hours, 709 change password).
    pub error: u32,
    /// Whether a retry is allowed ("R=1").
    pub retry: bool,
    /// The new authenticator challenge for the retry (16 octets for v2; v1 carries 8).
    pub challenge: Option<Vec<u8>>,
    /// The password change protocol version ("V=3" for MS-CHAPv2).
    pub version: Option<u32>,
    /// The human-readable text after "M=".
    pub message: Vec<u8>,
}

/// Error code: authentication failure.
pub const ERROR_AUTHENTICATION_FAILURE: u32 = 691;

impl Failure {
    /// Renders the message as MS-CHAPv2 sends it (`E=691 R=0 C=... V=3 M=...`).
    pub fn to_message(&self) -> Vec<u8> {
        let mut s = format!("E={} R={}", self.error, u8::from(self.retry));
        if let Some(c) = &self.challenge {
            s.push_str(" C=");
            push_hex(&mut s, c);
        }
        if let Some(v) = self.version {
            s.push_str(&format!(" V={v}"));
        }
        let mut out = s.into_bytes();
        if !self.message.is_empty() {
            out.extend_from_slice(b" M=");
            out.extend_from_slice(&self.message);
        }
        out
    }

    /// Parses a Failure message; unknown fields are skipped, the "M=" text runs to the end.
    pub fn parse(message: &[u8]) -> Option<Failure> {
        let mut f = Failure {
            error: 0,
            retry: false,
            challenge: None,
            version: None,
            message: Vec::new(),
        };
        let mut seen_error = false;
        let mut rest = message;
        while !rest.is_empty() {
            if let Some(text) = rest.strip_prefix(b"M=") {
                f.message = text.to_vec();
                break;
            }
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            let (field, tail) = rest.split_at(end);
            rest = tail.strip_prefix(b" ").unwrap_or(tail);
            let (key, value) = (field.get(..2)?, field.get(2..)?);
            match key {
                b"E=" => {
                    f.error = core::str::from_utf8(value).ok()?.parse().ok()?;
                    seen_error = true;
                }
                b"R=" => f.retry = value == b"1",
                b"C=" => {
                    let mut c = vec![0u8; value.len() / 2];
                    parse_hex(value, &mut c)?;
                    f.challenge = Some(c);
                }
                b"V=" => f.version = core::str::from_utf8(value).ok()?.parse().ok(),
                _ => {}
            }
        }
        seen_error.then_some(f)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().unwrap()
    }

    /// RFC 2433 appendix B.2, "Example".
    #[test]
    fn rfc2433_mschapv1_example() {
        let password = b"MyPw";
        assert_eq!(unicode_password(password), hex("4D 00 79 00 50 00 77 00"));
        let challenge: [u8; 8] = arr("10 2D B5 DF 08 5D 30 41");
        let nt_hash = nt_password_hash(password);
        assert_eq!(
            nt_hash,
            arr::<16>("FC 15 6A F7 ED CD 6C 0E DD E3 33 7D 42 7F 4E AC")
        );
        assert_eq!(
            nt_challenge_response(&challenge, &nt_hash),
            arr::<24>("4E 9D 3C 8F 9C FD 38 5D 5B F4 D3 24 67 91 95 6C A4 C3 51 AB 40 9A 3D 61")
        );
    }

    /// The LM hash of the empty password is the well-known AAD3B435B51404EE twice.
    #[test]
    fn lm_hash_of_empty_password() {
        assert_eq!(
            lm_password_hash(b""),
            arr::<16>("AAD3B435B51404EEAAD3B435B51404EE")
        );
        // Case-insensitive by construction.
        assert_eq!(lm_password_hash(b"MyPw"), lm_password_hash(b"mypw"));
    }

    /// RFC 2759 section 9.2, "Hash Example".
    #[test]
    fn rfc2759_section9_vectors() {
        let user = b"User";
        let password = b"clientPass";
        let auth_challenge: [u8; 16] = arr("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28");
        let peer_challenge: [u8; 16] = arr("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E");
        assert_eq!(
            challenge_hash(&peer_challenge, &auth_challenge, user),
            arr::<8>("D0 2E 43 86 BC E9 12 26")
        );
        assert_eq!(
            unicode_password(password),
            hex("63 00 6C 00 69 00 65 00 6E 00 74 00 50 00 61 00 73 00 73 00")
        );
        let nt_hash = nt_password_hash(password);
        assert_eq!(
            nt_hash,
            arr::<16>("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")
        );
        let nt_response = generate_nt_response(&auth_challenge, &peer_challenge, user, &nt_hash);
        assert_eq!(
            nt_response,
            arr::<24>("82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF")
        );
        assert_eq!(
            hash_nt_password_hash(&nt_hash),
            arr::<16>("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")
        );
        let auth = generate_authenticator_response(
            &nt_hash,
            &nt_response,
            &peer_challenge,
            &auth_challenge,
            user,
        );
        assert_eq!(
            authenticator_response_string(&auth),
            "S=407A5589115FD0D6209F510FE9C04566932CDA56"
        );
        assert_eq!(
            parse_success_message(b"S=407A5589115FD0D6209F510FE9C04566932CDA56 M=welcome"),
            Some(auth)
        );
        // A domain prefix does not enter the challenge hash.
        assert_eq!(
            challenge_hash(&peer_challenge, &auth_challenge, b"CORP\\User"),
            challenge_hash(&peer_challenge, &auth_challenge, user)
        );
    }

    #[test]
    fn des_key_spreads_bits_with_odd_parity() {
        assert_eq!(des_key(&[0; 7]), [1; 8]);
        assert_eq!(des_key(&[0xff; 7]), [0xfe; 8]);
        for b in des_key(&[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde]) {
            assert_eq!(b.count_ones() % 2, 1);
        }
    }

    #[test]
    fn failure_message_round_trip() {
        let f = Failure {
            error: 691,
            retry: false,
            challenge: Some((0u8..16).collect()),
            version: Some(3),
            message: b"Authentication failed".to_vec(),
        };
        let m = f.to_message();
        assert_eq!(
            m,
            b"E=691 R=0 C=000102030405060708090A0B0C0D0E0F V=3 M=Authentication failed".to_vec()
        );
        assert_eq!(Failure::parse(&m), Some(f));
        // Windows sends lower-case hex sometimes, and v1 failures without C/V/M.
        let v1 = Failure::parse(b"E=649 R=1").unwrap();
        assert_eq!((v1.error, v1.retry, v1.challenge), (649, true, None));
        assert_eq!(Failure::parse(b"R=1"), None);
        assert_eq!(Failure::parse(b"E=abc"), None);
        assert_eq!(Failure::parse(b"E=691 C=0"), None);
        assert!(parse_success_message(b"S=407A").is_none());
        assert!(parse_success_message(b"S=407A5589115FD0D6209F510FE9C04566932CDA56X").is_none());
    }
}
