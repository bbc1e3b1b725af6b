//! CHAP with MD5 (RFC 1994): the response function.

use md5::{Digest, Md5};

/// RFC 1994 section 4.1: "The Response Value is the one-way hash calculated over a stream of
/// octets consisting of the Identifier, followed by (concatenated with) the "secret",
/// followed by (concatenated with) the Challenge Value."
pub fn md5_response(identifier: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    Md5::new()
        .chain_update([identifier])
        .chain_update(secret)
        .chain_update(challenge)
        .finalize()
        .into()
}

#[cfg(test)]
mod test {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Vectors computed independently (Python hashlib: md5(id || secret || challenge)).
    #[test]
    fn md5_response_vectors() {
        let challenge: Vec<u8> = (0..16).collect();
        assert_eq!(
            md5_response(0x11, b"secret", &challenge).to_vec(),
            hex("cd1b856dfb6d46be6eb05a300602d339")
        );
        assert_eq!(
            md5_response(
                0x01,
                b"Passw0rd!",
                &hex("00112233445566778899aabbccddeeff0102")
            )
            .to_vec(),
            hex("256bc76e77fcf132a008f5e2003f282f")
        );
    }
}
