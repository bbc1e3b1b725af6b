//! Direct lines: a call starts when PPP arrives (sans-IO).
//!
//! A null-modem cable or a socat pty pair has no modem and no RING. The line is idle until the
//! peer's PPP starts sending LCP, which [`LcpDetector`] recognises in any escaping (mgetty's
//! AutoPPP idea). RFC 1662 §3.2 / RFC 1661 §6.6: LCP packets are always sent with the address
//! and control fields and an uncompressed protocol field, so the first frame starts, after
//! the flag and un-escaping, with `FF 03 C0 21`. With the default ACCM every control character
//! is escaped, so the wire shows e.g. `7E FF 7D 23 C0 21` (0x03 escaped as `7D 23`); a peer
//! may also escape more than it must, and the detector un-escapes before matching.
//!
//! The detector keeps every octet from the flag that opens the LCP frame, so the caller can hand
//! them to the HDLC decoder and nothing is lost. Windows "direct cable connection" first sends
//! `CLIENT` and waits for `CLIENTSERVER`; the detector asks for that reply.

/// Bytes before the LCP frame that the detector keeps looking through.
pub const MAX_PREAMBLE: usize = 4096;

/// What the detector found in the bytes fed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Detect {
    /// Nothing yet.
    Nothing,
    /// The peer sent `CLIENT` (Windows direct cable connection): send back `CLIENTSERVER`.
    ReplyClientServer,
    /// PPP started. The octets from the opening flag on (the first LCP frame and whatever
    /// followed it): feed them to the HDLC decoder.
    Ppp(Vec<u8>),
}

const LCP_HEADER: [u8; 4] = [0xff, 0x03, 0xc0, 0x21];

/// Recognises the first LCP frame (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct LcpDetector {
    /// Octets from the last flag seen (candidate frame start), raw as received.
    frame: Vec<u8>,
    /// Whether a flag was seen (we are inside a candidate frame).
    in_frame: bool,
    /// Un-escaped octets of the candidate frame matched so far.
    matched: usize,
    /// The last octet was the escape `7D`.
    escaped: bool,
    /// Trailing text for the `CLIENT` handshake.
    text: Vec<u8>,
    /// Octets looked at.
    seen: usize,
}

impl LcpDetector {
    /// A fresh detector.
    pub fn new() -> Self {
        LcpDetector::default()
    }

    /// Octets looked at so far.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Feeds received octets. Once it returns [`Detect::Ppp`] the job is done; start over
    /// with a new detector for the next call.
    pub fn feed(&mut self, data: &[u8]) -> Detect {
        let mut reply = false;
        for (i, &b) in data.iter().enumerate() {
            self.seen = self.seen.saturating_add(1);
            if b == 0x7e {
                self.frame.clear();
                self.frame.push(b);
                self.in_frame = true;
                self.matched = 0;
                self.escaped = false;
                continue;
            }
            if self.in_frame {
                self.frame.push(b);
                if b == 0x7d {
                    self.escaped = true;
                    continue;
                }
                let v = if std::mem::take(&mut self.escaped) {
                    b ^ 0x20
                } else {
                    b
                };
                if LCP_HEADER.get(self.matched) == Some(&v) {
                    self.matched += 1;
                    if self.matched == LCP_HEADER.len() {
                        let mut out = std::mem::take(&mut self.frame);
                        out.extend_from_slice(data.get(i + 1..).unwrap_or_default());
                        *self = LcpDetector::new();
                        return Detect::Ppp(out);
                    }
                } else {
                    self.in_frame = false;
                    self.frame.clear();
                }
            }
            if b.is_ascii_alphabetic() {
                if self.text.len() >= 16 {
                    self.text.remove(0);
                }
                self.text.push(b.to_ascii_uppercase());
                if self.text.ends_with(b"CLIENT") {
                    self.text.clear();
                    reply = true;
                }
            } else {
                self.text.clear();
            }
            if self.frame.len() > MAX_PREAMBLE {
                self.frame.clear();
                self.in_frame = false;
            }
        }
        if reply {
            Detect::ReplyClientServer
        } else {
            Detect::Nothing
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// The start of a real LCP Configure-Request as pppd sends it with the default ACCM.
    static PPPD_LCP: [u8; 14] = [
        0x7e, 0xff, 0x7d, 0x23, 0xc0, 0x21, 0x7d, 0x21, 0x7d, 0x21, 0x7d, 0x20, 0x7d, 0x34,
    ];

    #[test]
    fn detects_escaped_lcp_and_keeps_bytes() {
        let mut d = LcpDetector::new();
        let mut input = b"garbage\r\n".to_vec();
        input.extend_from_slice(&PPPD_LCP);
        match d.feed(&input) {
            Detect::Ppp(bytes) => assert_eq!(bytes, PPPD_LCP),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn detects_across_reads_and_unescaped() {
        let mut d = LcpDetector::new();
        for chunk in PPPD_LCP[..3].chunks(1) {
            assert_eq!(d.feed(chunk), Detect::Nothing);
        }
        match d.feed(&PPPD_LCP[3..]) {
            Detect::Ppp(bytes) => assert_eq!(bytes, PPPD_LCP),
            other => panic!("{other:?}"),
        }
        let plain = [0x7e, 0xff, 0x03, 0xc0, 0x21, 0x01];
        assert_eq!(LcpDetector::new().feed(&plain), Detect::Ppp(plain.to_vec()));
        // Over-escaped: every octet escaped.
        let over = [0x7e, 0x7d, 0xdf, 0x7d, 0x23, 0x7d, 0xe0, 0x7d, 0x01];
        assert_eq!(LcpDetector::new().feed(&over), Detect::Ppp(over.to_vec()));
    }

    #[test]
    fn ignores_other_protocols_and_text() {
        let mut d = LcpDetector::new();
        // IPCP (80 21) is not a call start; neither is AT chatter.
        assert_eq!(
            d.feed(&[0x7e, 0xff, 0x03, 0x80, 0x21, 0x7e]),
            Detect::Nothing
        );
        assert_eq!(d.feed(b"ATZ\r\nATDT123\r\n"), Detect::Nothing);
        assert_eq!(d.feed(&[0xff; 10_000]), Detect::Nothing);
        assert!(d.frame.len() <= MAX_PREAMBLE + 1);
    }

    #[test]
    fn windows_direct_cable_handshake() {
        let mut d = LcpDetector::new();
        assert_eq!(d.feed(b"CLIE"), Detect::Nothing);
        assert_eq!(d.feed(b"NT"), Detect::ReplyClientServer);
        assert!(matches!(d.feed(&PPPD_LCP), Detect::Ppp(_)));
    }
}
