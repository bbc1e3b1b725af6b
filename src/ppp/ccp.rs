//! CCP (RFC 1962) negotiation of option 18, Microsoft Point-to-Point Compression and
//! Encryption (RFC 2118 MPPC, RFC 3078 MPPE). ECP is not used.
//!
//! Convergence rules (what Windows and pppd expect):
//! - A Configure-Request may list several key lengths; the answer is a Nak that picks exactly
//!   one (the strongest both allow: S 128 > M 56 > L 40), plus H when stateless is agreed and
//!   C when MPPC is on at both ends. A request with exactly that choice is acked.
//! - Once one direction is agreed, the other is steered to the same bits, because MPPE keys
//!   and modes are symmetric in practice.
//! - An option 18 with no bits set is acked, never rejected (rejecting it is the classic
//!   Configure-Reject loop), unless our policy requires MPPE: then it is Naked with our bits.
//! - The obsolete D bit is never set (RFC 3078: "MUST NOT").
//! - A side whose policy requires MPPE fails fast with a reason ([`CcpFailure`]) as soon as
//!   agreement is impossible, instead of looping to Max-Failure.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use super::fsm::{BadOptions, Negotiator, Reply};
use super::packet::{CcpOption, CcpOptionType, EmitOption, MppeBits, Options};

/// Whether MPPE is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MppeMode {
    /// The link fails unless MPPE is negotiated in both directions.
    Required,
    /// Asked for; the link goes on without it if the peer refuses.
    Preferred,
    /// Not asked for, accepted when the peer asks. CCP is per direction (RFC 1962), so the
    /// result may encrypt only the peer-to-us direction; our own request mirrors the peer's
    /// bits only when the peer's request was agreed before ours went out.
    Permitted,
    /// Refused.
    Disabled,
}

/// Whether stateless mode (H bit, key change every packet) is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stateless {
    /// Never.
    Off,
    /// Accepted when the peer asks for it.
    Allowed,
    /// Asked for and insisted on.
    Required,
}

/// CCP policy for one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcpConfig {
    /// MPPE wanted?
    pub mppe: MppeMode,
    /// Allow 40-bit keys.
    pub allow_40: bool,
    /// Allow 56-bit keys.
    pub allow_56: bool,
    /// Allow 128-bit keys.
    pub allow_128: bool,
    /// Stateless mode.
    pub stateless: Stateless,
    /// MPPC compression.
    pub mppc: bool,
}

impl Default for CcpConfig {
    fn default() -> Self {
        CcpConfig {
            mppe: MppeMode::Preferred,
            allow_40: true,
            allow_56: true,
            allow_128: true,
            stateless: Stateless::Allowed,
            mppc: false,
        }
    }
}

const KEY_BITS: u32 = MppeBits::L_40 | MppeBits::M_56 | MppeBits::S_128;

impl CcpConfig {
    fn allowed_keys(&self) -> u32 {
        if self.mppe == MppeMode::Disabled {
            return 0;
        }
        let mut b = 0;
        if self.allow_40 {
            b |= MppeBits::L_40;
        }
        if self.allow_56 {
            b |= MppeBits::M_56;
        }
        if self.allow_128 {
            b |= MppeBits::S_128;
        }
        b
    }

    fn wants_option(&self) -> bool {
        matches!(self.mppe, MppeMode::Required | MppeMode::Preferred) || self.mppc
    }
}

/// The strongest single key length in `bits`.
fn strongest(bits: u32) -> u32 {
    [MppeBits::S_128, MppeBits::M_56, MppeBits::L_40]
        .into_iter()
        .find(|b| bits & b != 0)
        .unwrap_or(0)
}

/// Why CCP cannot give what the policy requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CcpFailure {
    /// No key length both sides allow.
    #[error("MPPE required but no common key length: peer offers {offered:#010x}, we allow {allowed:#010x}")]
    NoCommonKeyLength {
        /// The peer's option 18 bits.
        offered: u32,
        /// Our allowed key-length bits.
        allowed: u32,
    },
    /// The peer rejected option 18 or offered no encryption.
    #[error("MPPE required but the peer refused MPPE")]
    PeerRefused,
    /// Stateless mode required but the peer will not do it (or the reverse).
    #[error("MPPE stateless mode mismatch: ours {ours:?}, peer offers {offered:#010x}")]
    StatelessMismatch {
        /// Our stateless policy.
        ours: Stateless,
        /// The peer's bits.
        offered: u32,
    },
    /// MPPE required but the authentication produced no MS-CHAP keys.
    #[error("MPPE required but authentication was not MS-CHAP, so there are no keys")]
    NoKeys,
}

/// The agreed option 18 bits per direction, once CCP is Opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CcpResult {
    /// Bits for what we send (the peer acked our request).
    pub tx: MppeBits,
    /// Bits for what the peer sends (we acked its request).
    pub rx: MppeBits,
}

impl CcpResult {
    /// Whether MPPE encrypts both directions.
    pub fn encrypted(&self) -> bool {
        self.tx.0 & KEY_BITS != 0 && self.rx.0 & KEY_BITS != 0
    }

    /// Whether what we send is encrypted (CCP is negotiated per direction, RFC 1962).
    pub fn tx_encrypted(&self) -> bool {
        self.tx.0 & KEY_BITS != 0
    }

    /// Whether what the peer sends is encrypted.
    pub fn rx_encrypted(&self) -> bool {
        self.rx.0 & KEY_BITS != 0
    }

    /// The key length in bits of the peer-to-us direction, if encrypted.
    pub fn rx_key_bits(&self) -> Option<u16> {
        bits_to_len(strongest(self.rx.0 & KEY_BITS))
    }

    /// The key length in bits (the weaker direction), if both are encrypted.
    pub fn key_bits(&self) -> Option<u16> {
        let (t, r) = (
            bits_to_len(strongest(self.tx.0 & KEY_BITS))?,
            bits_to_len(strongest(self.rx.0 & KEY_BITS))?,
        );
        Some(t.min(r))
    }
}

fn bits_to_len(bit: u32) -> Option<u16> {
    match bit {
        MppeBits::S_128 => Some(128),
        MppeBits::M_56 => Some(56),
        MppeBits::L_40 => Some(40),
        _ => None,
    }
}

/// The CCP option half of the automaton.
#[derive(Debug)]
pub struct CcpNegotiator {
    config: CcpConfig,
    /// Our option 18 bits (`None`: not requested).
    want: Option<u32>,
    acked_tx: u32,
    peer_rx: u32,
    failure: Option<CcpFailure>,
    /// MS-CHAP key material exists (otherwise MPPE cannot be offered).
    have_keys: bool,
}

impl CcpNegotiator {
    /// A negotiator for `config`; `have_keys` says whether MS-CHAP produced MPPE material.
    pub fn new(config: CcpConfig, have_keys: bool) -> Self {
        let mut n = CcpNegotiator {
            config,
            want: None,
            acked_tx: 0,
            peer_rx: 0,
            failure: None,
            have_keys,
        };
        n.restart();
        n
    }

    /// The policy.
    pub fn config(&self) -> &CcpConfig {
        &self.config
    }

    /// Set when the policy cannot be met; the engine closes the link with this reason.
    pub fn failure(&self) -> Option<CcpFailure> {
        self.failure
    }

    /// The agreed bits.
    pub fn result(&self) -> CcpResult {
        CcpResult {
            tx: MppeBits(self.acked_tx),
            rx: MppeBits(self.peer_rx),
        }
    }

    fn keys(&self) -> u32 {
        if self.have_keys {
            self.config.allowed_keys()
        } else {
            0
        }
    }

    fn stateless_bit(&self) -> u32 {
        match self.config.stateless {
            Stateless::Required => MppeBits::H_STATELESS,
            _ => 0,
        }
    }

    fn mppc_bit(&self) -> u32 {
        if self.config.mppc {
            MppeBits::MPPC
        } else {
            0
        }
    }

    fn requires_mppe(&self) -> bool {
        self.config.mppe == MppeMode::Required
    }

    /// What we would agree to for an offer `b`: one key length, H and C where both agree.
    /// `None` when no acceptable choice exists.
    fn choose(&self, b: u32) -> Option<u32> {
        let key = strongest(b & self.keys());
        let h = match self.config.stateless {
            Stateless::Off => 0,
            Stateless::Allowed => b & MppeBits::H_STATELESS,
            Stateless::Required => MppeBits::H_STATELESS,
        };
        let c = b & self.mppc_bit();
        if key == 0 {
            // No encryption agreed: only compression may remain.
            return (!self.requires_mppe()).then_some(c);
        }
        Some(key | h | c)
    }
}

fn put(out: &mut Vec<u8>, opt: &impl EmitOption) {
    if let Ok(bytes) = opt.to_vec() {
        out.extend_from_slice(&bytes);
    }
}

const OPTION_18: u8 = 18;

impl Negotiator for CcpNegotiator {
    const NAME: &'static str = "CCP";

    fn restart(&mut self) {
        self.acked_tx = 0;
        self.peer_rx = 0;
        self.failure = None;
        self.want = None;
        if self.requires_mppe() && !self.have_keys {
            self.failure = Some(CcpFailure::NoKeys);
            return;
        }
        if self.config.wants_option() {
            let keys = if matches!(self.config.mppe, MppeMode::Required | MppeMode::Preferred) {
                self.keys()
            } else {
                0
            };
            let h = if keys != 0 { self.stateless_bit() } else { 0 };
            let bits = keys | h | self.mppc_bit();
            self.want = (bits != 0).then_some(bits);
        }
    }

    fn own_request(&mut self, out: &mut Vec<u8>) {
        // Steer our direction to what the peer's direction agreed, when we can.
        if let Some(w) = self.want {
            if self.peer_rx != 0 && self.choose(self.peer_rx) == Some(self.peer_rx) {
                self.want = Some(self.peer_rx);
            } else {
                self.want = Some(w);
            }
        }
        if let Some(bits) = self.want {
            put(out, &CcpOption::MicrosoftPpc(MppeBits(bits)));
        }
    }

    fn own_acked(&mut self, _options: &[u8]) {
        self.acked_tx = self.want.unwrap_or(0);
    }

    fn own_nacked(&mut self, options: &[u8], rejected: bool) -> Result<(), BadOptions> {
        let options = Options::parse(options).map_err(|_| BadOptions)?;
        for raw in options.iter() {
            if raw.kind != OPTION_18 || self.want.is_none() {
                // Rejecting or naking an option we did not send is malformed.
                return Err(BadOptions);
            }
            if rejected {
                self.want = None;
                if self.requires_mppe() {
                    self.failure = Some(CcpFailure::PeerRefused);
                }
                continue;
            }
            let Ok(CcpOption::MicrosoftPpc(MppeBits(n))) = CcpOption::parse(raw) else {
                continue;
            };
            let n = n & !MppeBits::D;
            match self.choose(n) {
                Some(c) if c & KEY_BITS != 0 || !self.requires_mppe() => {
                    if self.config.stateless == Stateless::Required
                        && c & MppeBits::H_STATELESS == 0
                    {
                        self.failure = Some(CcpFailure::StatelessMismatch {
                            ours: self.config.stateless,
                            offered: n,
                        });
                    }
                    // An empty suggestion means "no option 18": stop asking.
                    self.want = (c != 0).then_some(c);
                }
                _ => {
                    self.failure = Some(CcpFailure::NoCommonKeyLength {
                        offered: n,
                        allowed: self.keys(),
                    });
                }
            }
        }
        Ok(())
    }

    fn peer_request(&mut self, options: &[u8], reply: &mut Reply) -> Result<(), BadOptions> {
        let options = Options::parse(options).map_err(|_| BadOptions)?;
        let mut agreed = 0;
        let mut saw_18 = false;
        for raw in options.iter() {
            if raw.kind != OPTION_18 || saw_18 {
                // Deflate, BSD, Stac, Predictor, duplicates: not implemented, rejected.
                reply.reject(raw.kind, raw.data);
                continue;
            }
            saw_18 = true;
            let Ok(CcpOption::MicrosoftPpc(MppeBits(b))) = CcpOption::parse(raw) else {
                reply.reject(raw.kind, raw.data);
                continue;
            };
            if self.config.mppe == MppeMode::Disabled && !self.config.mppc {
                if b == 0 {
                    // Empty option: acked, never rejected (no reject loop).
                    continue;
                }
                reply.reject(raw.kind, raw.data);
                continue;
            }
            // Prefer the bits our own direction already agreed (symmetry).
            let choice = if self.acked_tx != 0 && self.choose(b | self.acked_tx).is_some() {
                Some(self.acked_tx)
            } else {
                self.choose(b & !MppeBits::D)
            };
            match choice {
                Some(c) if c == b => agreed = b,
                Some(c) => {
                    if self.config.stateless == Stateless::Required
                        && b & MppeBits::H_STATELESS == 0
                        && !reply.naks_allowed()
                    {
                        self.failure = Some(CcpFailure::StatelessMismatch {
                            ours: self.config.stateless,
                            offered: b,
                        });
                    }
                    reply.nak(raw.kind, raw.data, &c.to_be_bytes());
                }
                None => {
                    // Required and nothing in common.
                    if b & KEY_BITS == 0 {
                        // The peer offers no encryption: ask for ours once more, then fail
                        // at Max-Failure.
                        if !reply.naks_allowed() {
                            self.failure = Some(CcpFailure::PeerRefused);
                        }
                        // One key length (the strongest we allow) and the peer's H where
                        // stateless is allowed, so a peer that takes the suggestion as is
                        // converges in one round (Windows RRAS offers MPPC-only 0x01000001).
                        let ours = self
                            .choose(b | self.keys())
                            .unwrap_or_else(|| self.want.unwrap_or(self.keys()));
                        reply.nak(raw.kind, raw.data, &ours.to_be_bytes());
                    } else {
                        self.failure = Some(CcpFailure::NoCommonKeyLength {
                            offered: b,
                            allowed: self.keys(),
                        });
                        reply.nak(raw.kind, raw.data, &self.keys().to_be_bytes());
                    }
                }
            }
        }
        if !saw_18 && self.requires_mppe() {
            let ours = self.want.unwrap_or(self.keys());
            if reply.naks_allowed() {
                reply.nak_missing(OPTION_18, &ours.to_be_bytes());
            } else {
                self.failure = Some(CcpFailure::PeerRefused);
            }
        }
        self.peer_rx = agreed;
        Ok(())
    }

    fn knows_code(&self, code: u8) -> bool {
        // Reset-Request and Reset-Ack (RFC 1962 section 2).
        matches!(code, 14 | 15)
    }
}

/// CCP code: Reset-Request.
pub const RESET_REQUEST: u8 = 14;
/// CCP code: Reset-Ack.
pub const RESET_ACK: u8 = 15;

/// The CCP option type number of Microsoft PPC (for logs and tests).
pub fn option_18() -> CcpOptionType {
    CcpOptionType::from(OPTION_18)
}

#[cfg(test)]
mod test {
    use super::super::fsm::{build_packet, Fsm, FsmConfig, State, CONFIGURE_REQUEST};
    use super::*;
    use std::time::Instant;

    fn run(a: CcpConfig, b: CcpConfig) -> (Fsm<CcpNegotiator>, Fsm<CcpNegotiator>, usize) {
        let now = Instant::now();
        let mut x = Fsm::new(CcpNegotiator::new(a, true), FsmConfig::default());
        let mut y = Fsm::new(CcpNegotiator::new(b, true), FsmConfig::default());
        for f in [&mut x, &mut y] {
            f.up(now);
            f.open(now);
        }
        let mut packets = 0;
        for _ in 0..40 {
            while let Some(p) = x.poll_transmit() {
                packets += 1;
                let _ = y.handle_packet(now, &p);
            }
            while let Some(p) = y.poll_transmit() {
                packets += 1;
                let _ = x.handle_packet(now, &p);
            }
            if x.negotiator().failure().is_some() || y.negotiator().failure().is_some() {
                break;
            }
        }
        (x, y, packets)
    }

    fn cfg(mppe: MppeMode, keys: (bool, bool, bool), stateless: Stateless) -> CcpConfig {
        CcpConfig {
            mppe,
            allow_40: keys.0,
            allow_56: keys.1,
            allow_128: keys.2,
            stateless,
            mppc: false,
        }
    }

    #[test]
    fn strongest_common_key_and_symmetry() {
        let all = (true, true, true);
        let (x, y, packets) = run(
            cfg(MppeMode::Required, all, Stateless::Allowed),
            cfg(MppeMode::Preferred, (true, true, false), Stateless::Allowed),
        );
        assert!(x.is_opened() && y.is_opened());
        let (rx, ry) = (x.negotiator().result(), y.negotiator().result());
        assert_eq!(rx.key_bits(), Some(56));
        assert_eq!(rx.tx, rx.rx);
        assert_eq!(rx.tx, ry.rx);
        assert!(packets <= 8, "{packets} packets");
    }

    #[test]
    fn required_128_against_40_only_fails_with_reason() {
        let (x, _y, _) = run(
            cfg(MppeMode::Required, (false, false, true), Stateless::Allowed),
            cfg(MppeMode::Required, (true, false, false), Stateless::Allowed),
        );
        assert!(matches!(
            x.negotiator().failure(),
            Some(CcpFailure::NoCommonKeyLength { .. })
        ));
    }

    #[test]
    fn stateless_agreed_when_one_side_requires_it() {
        let all = (true, true, true);
        let (x, y, _) = run(
            cfg(MppeMode::Required, all, Stateless::Required),
            cfg(MppeMode::Preferred, all, Stateless::Allowed),
        );
        assert!(x.is_opened() && y.is_opened());
        let r = x.negotiator().result();
        assert!(r.tx.contains(MppeBits::H_STATELESS) && r.rx.contains(MppeBits::H_STATELESS));
    }

    #[test]
    fn disabled_side_acks_empty_option_and_opens_without_mppe() {
        let now = Instant::now();
        let mut x = Fsm::new(
            CcpNegotiator::new(
                cfg(MppeMode::Disabled, (true, true, true), Stateless::Off),
                true,
            ),
            FsmConfig::default(),
        );
        x.up(now);
        x.open(now);
        let _ = x.poll_transmit();
        let _ = x.handle_packet(
            now,
            &build_packet(CONFIGURE_REQUEST, 3, &[18, 6, 0, 0, 0, 0]),
        );
        assert_eq!(x.poll_transmit().unwrap()[0], 2, "empty option 18 is acked");
        let _ = x.handle_packet(
            now,
            &build_packet(CONFIGURE_REQUEST, 4, &[18, 6, 0, 0, 0, 0x40]),
        );
        assert_eq!(x.poll_transmit().unwrap()[0], 4, "MPPE bits are rejected");
        assert_eq!(x.state(), State::ReqSent);
    }

    /// A first CCP request offering everything (C, L, S, M and H: 0x010000e1). A server that
    /// allows only 128-bit stateful MPPE without MPPC Naks with exactly 0x00000040.
    #[test]
    fn windows_style_offer_is_naked_to_one_key() {
        let now = Instant::now();
        let mut x = Fsm::new(
            CcpNegotiator::new(
                cfg(MppeMode::Required, (false, false, true), Stateless::Off),
                true,
            ),
            FsmConfig::default(),
        );
        x.up(now);
        x.open(now);
        let _ = x.poll_transmit();
        let _ = x.handle_packet(
            now,
            &build_packet(CONFIGURE_REQUEST, 5, &[18, 6, 0x01, 0x00, 0x00, 0xe1]),
        );
        assert_eq!(
            x.poll_transmit().unwrap(),
            build_packet(3, 5, &[18, 6, 0, 0, 0, 0x40])
        );
    }

    #[test]
    fn required_without_keys_fails_at_once() {
        let n = CcpNegotiator::new(
            cfg(MppeMode::Required, (true, true, true), Stateless::Off),
            false,
        );
        assert_eq!(n.failure(), Some(CcpFailure::NoKeys));
    }
}
