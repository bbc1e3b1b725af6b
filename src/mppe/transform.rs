//! The MPPE packet transform (RFC 3078): header codec, coherency count, per-direction state.
//!
//! An MPPE packet is the information field of a PPP frame with protocol 0x00FD:
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |A|B|C|D|    Coherency Count    |  then the encrypted PPP protocol field and data
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! A = flushed (RC4 re-keyed / MPPC history reset), B = MPPC "at front", C = MPPC compressed,
//! D = encrypted (RFC 3078 section 3, RFC 2118 section 3.1); the flags are
//! [`PacketFlags`], shared with MPPC.
//!
//! [`Sender`] and [`Receiver`] keep one direction's state. Both work with or without a cipher,
//! so the same coherency-count and resynchronisation logic serves MPPE, MPPC+MPPE and MPPC
//! alone (the pipeline in `super::pipeline` adds the compressor).
//!
//! # Resynchronisation, stateful mode (RFC 3078 sections 7.1 and 8)
//! - The sender changes its key before each "flag" packet (count low octet 0xFF) and sets A on
//!   it. On a CCP Reset-Request it sets A on its next packet and re-keys RC4 with the *current*
//!   session key (no key change). This is what FreeBSD's ng_mppc and OpenBSD's npppd do; Linux
//!   ppp_mppe instead changes the key on every A packet, so Linux peers in stateful mode
//!   desynchronise after a reset (see docs/MPPE.md).
//! - The receiver, on a gap in the count, drops packets until one carries A and asks for one
//!   CCP Reset-Request per loss episode ([`super::Event::SendResetRequest`]). On an A packet it
//!   changes the key once per flag packet it missed, re-keys RC4 with the current session key,
//!   and changes the key again if the packet itself is a flag packet.
//!
//! # Stateless ("history-less", H bit)
//! Every packet carries A and a new key. The receiver changes the key once per count it
//! advances over, capped by [`ReceiverConfig::max_rekey`] so a forged count cannot make it spend
//! seconds of CPU in SHA-1 and RC4 key schedules.
//!
//! # Duplicates and reordering
//! Counts are compared in 12-bit serial arithmetic: a packet whose count lies in the half of the
//! space behind the expected count is stale (a duplicate or late packet) and is dropped without
//! touching any state. MPPE has no integrity check, so this rule (with the "drop until A" rule)
//! is what keeps a receiver from ever decrypting with the wrong RC4 state.

use super::keys::{initial_session_key, next_session_key, KeyStrength, SessionKey, StartKey};
use super::rc4::Rc4;
use super::{Event, MppeError};
use crate::mppc::PacketFlags;

/// Octets of the MPPE/MPPC header (flags + 12-bit coherency count).
pub const HEADER_LEN: usize = 2;

/// Counts at or beyond this forward distance from the expected count are "behind" (stale).
const STALE_DISTANCE: u16 = 2048;

/// Sanity score added per bogus packet (after Linux ppp_mppe's "bogon factor").
const SANITY_STEP: u32 = 100;

/// Field offsets of the header.
mod field {
    /// The two header octets.
    pub(super) const HEADER: core::ops::Range<usize> = 0..2;
    /// Everything after the header: the (encrypted and/or compressed) payload.
    pub(super) const PAYLOAD: core::ops::RangeFrom<usize> = 2..;
}

/// The 12-bit coherency count, wrapping modulo 4096.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CoherencyCount(u16);

impl CoherencyCount {
    /// Number of distinct counts.
    pub const MODULUS: u16 = 0x1000;

    /// A count from the low 12 bits of `value`.
    pub const fn new(value: u16) -> Self {
        CoherencyCount(value & (Self::MODULUS - 1))
    }

    /// The count as a number in 0..4096.
    pub const fn value(self) -> u16 {
        self.0
    }

    /// The following count.
    #[must_use]
    pub const fn next(self) -> Self {
        Self::new(self.0.wrapping_add(1))
    }

    /// How many steps forward `later` lies from `self`, in 0..4096.
    pub const fn distance_to(self, later: Self) -> u16 {
        later.0.wrapping_sub(self.0) & (Self::MODULUS - 1)
    }

    /// Whether this is a "flag" packet's count (low octet 0xFF): the stateful key changes
    /// there (RFC 3078 section 7.1).
    pub const fn is_flag(self) -> bool {
        self.0 & 0xFF == 0xFF
    }
}

/// The parsed MPPE/MPPC header (the `Repr` view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bits A-D.
    pub flags: PacketFlags,
    /// The coherency count.
    pub count: CoherencyCount,
}

impl Header {
    /// Reads the header from the first two octets of `packet`.
    pub fn parse(packet: &[u8]) -> Result<Header, MppeError> {
        let p = Packet::new_checked(packet)?;
        Ok(Header {
            flags: p.flags(),
            count: p.coherency_count(),
        })
    }

    /// Octets [`Header::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// The two header octets.
    pub const fn to_bytes(&self) -> [u8; 2] {
        let c = self.count.value();
        [(self.flags.0 & 0xF0) | ((c >> 8) as u8), (c & 0xFF) as u8]
    }

    /// Writes the header into the first two octets of `buf` (which must hold them).
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), MppeError> {
        let dst = buf
            .get_mut(field::HEADER)
            .ok_or(MppeError::BufferTooSmall { needed: HEADER_LEN })?;
        dst.copy_from_slice(&self.to_bytes());
        Ok(())
    }
}

/// A zero-copy view of an MPPE/MPPC packet (header + payload).
///
/// Once [`Packet::new_checked`] succeeds no accessor can panic.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking it holds at least a header.
    pub fn new_checked(buffer: T) -> Result<Self, MppeError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(MppeError::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// Bits A-D.
    pub fn flags(&self) -> PacketFlags {
        PacketFlags::from_header_octet(self.buffer.as_ref().first().copied().unwrap_or(0))
    }

    /// The coherency count.
    pub fn coherency_count(&self) -> CoherencyCount {
        let b = self.buffer.as_ref();
        let hi = u16::from(b.first().copied().unwrap_or(0) & 0x0F);
        let lo = u16::from(b.get(1).copied().unwrap_or(0));
        CoherencyCount::new((hi << 8) | lo)
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD).unwrap_or_default()
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// The payload after the header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD)
            .unwrap_or_default()
    }

    /// Overwrites the header.
    pub fn set_header(&mut self, header: &Header) {
        if let Some(dst) = self.buffer.as_mut().get_mut(field::HEADER) {
            dst.copy_from_slice(&header.to_bytes());
        }
    }
}

/// Whether the keys (and MPPC history) carry over from packet to packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Key change every 256 packets; loss needs a CCP Reset-Request to recover.
    Stateful,
    /// "History-less" (H bit): new key and flushed history on every packet.
    Stateless,
}

/// One direction's keys and RC4 state.
struct Cipher {
    strength: KeyStrength,
    start: StartKey,
    session: SessionKey,
    rc4: Rc4,
    key_changes: u64,
}

impl core::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cipher")
            .field("strength", &self.strength)
            .field("keys", &"<redacted>")
            .field("key_changes", &self.key_changes)
            .finish()
    }
}

impl Cipher {
    fn new(start: StartKey, strength: KeyStrength) -> Cipher {
        let session = initial_session_key(&start, strength);
        let rc4 = Rc4::new(session.as_bytes());
        Cipher {
            strength,
            start,
            session,
            rc4,
            key_changes: 0,
        }
    }

    /// Re-keys RC4 with the current session key (the "flushed" re-initialisation).
    fn reinit(&mut self) {
        self.rc4 = Rc4::new(self.session.as_bytes());
    }

    /// A key change without keying RC4 (for catching up over several counts).
    fn change_key_only(&mut self) {
        self.session = next_session_key(&self.start, &self.session, self.strength);
        self.key_changes += 1;
    }

    /// A key change, then RC4 keyed with the new key.
    fn change_key(&mut self) {
        self.change_key_only();
        self.reinit();
    }
}

/// The sending half: assigns counts, changes keys, encrypts.
#[derive(Debug)]
pub struct Sender {
    cipher: Option<Cipher>,
    mode: Mode,
    next: CoherencyCount,
    flush_pending: bool,
}

impl Sender {
    /// A sender that encrypts with keys derived from `start` (MPPE, with or without MPPC).
    pub fn new(start: StartKey, strength: KeyStrength, mode: Mode) -> Sender {
        Sender {
            cipher: Some(Cipher::new(start, strength)),
            mode,
            next: CoherencyCount::new(0),
            flush_pending: false,
        }
    }

    /// A sender that only frames (MPPC without MPPE): counts and A bits, no cipher.
    pub fn unencrypted(mode: Mode) -> Sender {
        Sender {
            cipher: None,
            mode,
            next: CoherencyCount::new(0),
            flush_pending: false,
        }
    }

    /// Whether packets are encrypted.
    pub fn is_encrypting(&self) -> bool {
        self.cipher.is_some()
    }

    /// The count the next packet gets.
    pub fn next_count(&self) -> CoherencyCount {
        self.next
    }

    /// How many key changes this direction has made.
    pub fn key_changes(&self) -> u64 {
        self.cipher.as_ref().map_or(0, |c| c.key_changes)
    }

    /// Whether the next packet will carry A (FLUSHED): always in stateless mode, after a
    /// Reset-Request, and on encrypted flag packets. An MPPC compressor must reset its
    /// history before compressing that packet, since the receiver resets its history on A.
    pub fn next_is_flushed(&self) -> bool {
        self.mode == Mode::Stateless
            || self.flush_pending
            || (self.cipher.is_some() && self.next.is_flag())
    }

    /// A CCP Reset-Request arrived: the next packet carries A and RC4 restarts from the
    /// current session key ("re-initialize ... using the current session key"; the key does
    /// not change, so several Reset-Requests for one loss are harmless).
    pub fn reset(&mut self) {
        self.flush_pending = true;
    }

    /// Finishes one packet in place: decides A, changes the key or re-keys RC4 as due,
    /// encrypts `payload` (if encrypting) and returns the header to put in front of it.
    ///
    /// `flags` are the MPPC flags of the payload (A, B, C), or empty without MPPC.
    pub fn seal(&mut self, flags: PacketFlags, payload: &mut [u8]) -> Header {
        let count = self.next;
        let mut flags = PacketFlags(flags.0 & 0xE0);
        if self.next_is_flushed() {
            flags |= PacketFlags::FLUSHED;
        }
        if let Some(cipher) = self.cipher.as_mut() {
            if self.mode == Mode::Stateless || count.is_flag() {
                // RFC 3078 section 7.1: stateless, "the session key MUST be changed before
                // encrypting each packet"; stateful, before each flag packet.
                cipher.change_key();
            } else if flags.contains(PacketFlags::FLUSHED) {
                cipher.reinit();
            }
            cipher.rc4.apply(payload);
            flags |= PacketFlags::ENCRYPTED;
        }
        self.flush_pending = false;
        self.next = count.next();
        Header { flags, count }
    }

    /// MPPE without MPPC: writes header + encrypted `plaintext` (PPP protocol field and data)
    /// into `out` and returns the octets written (`plaintext.len() + 2`).
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, MppeError> {
        let total = plaintext.len() + HEADER_LEN;
        let dst = out
            .get_mut(..total)
            .ok_or(MppeError::BufferTooSmall { needed: total })?;
        let (head, body) = dst.split_at_mut(HEADER_LEN);
        body.copy_from_slice(plaintext);
        let header = self.seal(PacketFlags::empty(), body);
        head.copy_from_slice(&header.to_bytes());
        Ok(total)
    }
}

/// Limits of the receiving half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Stateless MPPE: most counts one packet may jump ahead (each costs a key change);
    /// further jumps are dropped as bogus (FreeBSD ng_mppc's `max_rekey`). At most 2047.
    pub max_rekey: u16,
    /// Sanity score at which [`Event::TooManyErrors`] asks to drop the link. Each bogus packet
    /// adds 100, each good packet halves the score (after Linux ppp_mppe's `SANITY_MAX`).
    pub sanity_threshold: u32,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            max_rekey: 1024,
            sanity_threshold: 1600,
        }
    }
}

/// What happened to received packets so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiverStats {
    /// Packets accepted and decrypted.
    pub accepted: u64,
    /// Counts skipped over (lost packets, as far as the counts tell).
    pub lost: u64,
    /// Duplicates and late packets dropped.
    pub stale: u64,
    /// Packets dropped while waiting for an A packet (stateful).
    pub discarded: u64,
    /// Bogus packets (sanity errors).
    pub bogus: u64,
    /// CCP Reset-Requests asked for.
    pub reset_requests: u64,
}

/// The receiving half: checks counts, follows key changes, decrypts, resynchronises.
#[derive(Debug)]
pub struct Receiver {
    cipher: Option<Cipher>,
    mode: Mode,
    config: ReceiverConfig,
    expected: CoherencyCount,
    discarding: bool,
    reset_outstanding: bool,
    reset_event: bool,
    fatal_event: bool,
    fatal_reported: bool,
    sanity: u32,
    stats: ReceiverStats,
}

impl Receiver {
    /// A receiver that decrypts with keys derived from `start`.
    pub fn new(
        start: StartKey,
        strength: KeyStrength,
        mode: Mode,
        config: ReceiverConfig,
    ) -> Receiver {
        Receiver::build(Some(Cipher::new(start, strength)), mode, config)
    }

    /// A receiver for MPPC without MPPE: counts and A bits only.
    pub fn unencrypted(mode: Mode, config: ReceiverConfig) -> Receiver {
        Receiver::build(None, mode, config)
    }

    fn build(cipher: Option<Cipher>, mode: Mode, mut config: ReceiverConfig) -> Receiver {
        config.max_rekey = config.max_rekey.min(STALE_DISTANCE - 1);
        Receiver {
            cipher,
            mode,
            config,
            expected: CoherencyCount::new(0),
            discarding: false,
            reset_outstanding: false,
            reset_event: false,
            fatal_event: false,
            fatal_reported: false,
            sanity: 0,
            stats: ReceiverStats::default(),
        }
    }

    /// Whether packets are decrypted.
    pub fn is_encrypting(&self) -> bool {
        self.cipher.is_some()
    }

    /// Counters.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// Whether packets are being dropped until one carries A.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// How many key changes this direction has made.
    pub fn key_changes(&self) -> u64 {
        self.cipher.as_ref().map_or(0, |c| c.key_changes)
    }

    /// The count the next in-order packet should carry.
    pub fn expected_count(&self) -> CoherencyCount {
        self.expected
    }

    /// The peer answered our Reset-Request (CCP Reset-Ack). If we are still waiting for an A
    /// packet (the one the peer flagged was lost too), the next dropped packet asks again.
    pub fn handle_reset_ack(&mut self) {
        self.reset_outstanding = false;
    }

    /// The next output event, if any (`SendResetRequest`, `TooManyErrors`).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.fatal_event {
            self.fatal_event = false;
            return Some(Event::TooManyErrors);
        }
        if self.reset_event {
            self.reset_event = false;
            return Some(Event::SendResetRequest);
        }
        None
    }

    /// The layer above could not use an accepted packet (MPPC decompression failed): in
    /// stateful mode drop packets until A and ask for a Reset-Request; always count it as
    /// bogus.
    pub fn report_bad_payload(&mut self) {
        self.bogus();
        if self.mode == Mode::Stateful {
            self.start_discarding();
        }
    }

    /// Opens one received packet (header + payload) in place: checks the header, follows the
    /// coherency count, changes keys as due and decrypts. Returns the header and the plaintext
    /// (a sub-slice of `packet`).
    pub fn open<'a>(&mut self, packet: &'a mut [u8]) -> Result<(Header, &'a mut [u8]), MppeError> {
        let header = match Header::parse(packet) {
            Ok(h) => h,
            Err(e) => {
                self.bogus();
                return Err(e);
            }
        };
        let payload = packet.get_mut(field::PAYLOAD).unwrap_or_default();
        if let Err(e) = self.check(header, payload.is_empty()) {
            return Err(self.reject(e));
        }
        let flushed = header.flags.contains(PacketFlags::FLUSHED);
        let gap = self.expected.distance_to(header.count);
        if gap >= STALE_DISTANCE {
            // A duplicate or a late packet: its count is behind us. Touch nothing.
            self.stats.stale += 1;
            if self.discarding {
                self.request_reset();
            }
            return Err(MppeError::Stale {
                count: header.count.value(),
            });
        }
        match self.mode {
            Mode::Stateless => {
                // Only key changes cost anything; without MPPE any forward jump is fine.
                if self.cipher.is_some() && gap > self.config.max_rekey {
                    self.bogus();
                    return Err(MppeError::TooManyRekeys {
                        needed: gap,
                        max: self.config.max_rekey,
                    });
                }
                if let Some(c) = self.cipher.as_mut() {
                    // One key change per count advanced over, plus this packet's own.
                    for _ in 0..gap {
                        c.change_key_only();
                    }
                    c.change_key();
                }
            }
            Mode::Stateful if flushed => {
                if let Some(c) = self.cipher.as_mut() {
                    // "Change the key once for every flag packet missed" then re-key RC4 with
                    // the current session key.
                    let mut at = self.expected;
                    for _ in 0..gap {
                        if at.is_flag() {
                            c.change_key_only();
                        }
                        at = at.next();
                    }
                    if header.count.is_flag() {
                        c.change_key();
                    } else {
                        c.reinit();
                    }
                }
                self.discarding = false;
                self.reset_outstanding = false;
            }
            Mode::Stateful => {
                if self.discarding {
                    self.stats.discarded += 1;
                    self.request_reset();
                    return Err(MppeError::Discarding);
                }
                if gap != 0 {
                    // RFC 3078 section 8: packets lost; the RC4 state is out of step until the
                    // peer re-initialises it (an A packet). Ask for that once.
                    self.stats.discarded += 1;
                    self.start_discarding();
                    return Err(MppeError::PacketLoss { missing: gap });
                }
                if header.count.is_flag() {
                    // A flag packet without A: still a key change (counts say so).
                    if let Some(c) = self.cipher.as_mut() {
                        c.change_key();
                    }
                }
            }
        }
        self.stats.lost += u64::from(gap);
        if let Some(c) = self.cipher.as_mut() {
            c.rc4.apply(payload);
        }
        self.expected = header.count.next();
        self.stats.accepted += 1;
        self.sanity >>= 1;
        Ok((header, payload))
    }

    /// Header checks that make a packet bogus whatever the count says.
    fn check(&self, header: Header, empty: bool) -> Result<(), MppeError> {
        let encrypted = header.flags.contains(PacketFlags::ENCRYPTED);
        if self.cipher.is_some() && !encrypted {
            // An unencrypted packet on an encrypted link must never be delivered.
            return Err(MppeError::NotEncrypted);
        }
        if self.cipher.is_none() && encrypted {
            return Err(MppeError::UnexpectedEncryption);
        }
        if self.mode == Mode::Stateless && !header.flags.contains(PacketFlags::FLUSHED) {
            // Stateless: every packet is sent with a new key and bit A.
            return Err(MppeError::NotFlushed);
        }
        if empty {
            // Every packet holds at least a PPP protocol field.
            return Err(MppeError::Truncated);
        }
        Ok(())
    }

    fn reject(&mut self, e: MppeError) -> MppeError {
        self.bogus();
        e
    }

    fn bogus(&mut self) {
        self.stats.bogus += 1;
        self.sanity = self.sanity.saturating_add(SANITY_STEP);
        if self.sanity >= self.config.sanity_threshold && !self.fatal_reported {
            self.fatal_reported = true;
            self.fatal_event = true;
        }
    }

    fn start_discarding(&mut self) {
        self.discarding = true;
        self.request_reset();
    }

    fn request_reset(&mut self) {
        if !self.reset_outstanding {
            self.reset_outstanding = true;
            self.reset_event = true;
            self.stats.reset_requests += 1;
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::mppe::keys::{get_asymmetric_start_key, Direction, MasterKey, Role};

    fn start(strength: KeyStrength) -> StartKey {
        let master = MasterKey::from_slice(&[
            0xFD, 0xEC, 0xE3, 0x71, 0x7A, 0x8C, 0x83, 0x8C, 0xB3, 0x88, 0xE5, 0x27, 0xAE, 0x3C,
            0xDD, 0x31,
        ]);
        get_asymmetric_start_key(&master, strength, Direction::Send, Role::Server)
    }

    fn pair(strength: KeyStrength, mode: Mode) -> (Sender, Receiver) {
        (
            Sender::new(start(strength), strength, mode),
            Receiver::new(start(strength), strength, mode, ReceiverConfig::default()),
        )
    }

    fn send(tx: &mut Sender, msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; msg.len() + 2];
        let n = tx.encrypt(msg, &mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    fn msg(i: usize) -> Vec<u8> {
        let mut m = vec![0x00, 0x21];
        m.extend((0..(i % 50 + 1)).map(|k| (k * 7 + i) as u8));
        m
    }

    #[test]
    fn header_parse_emit() {
        static BYTES: [u8; 4] = [0x9A, 0xBC, 0xDE, 0xF0];
        let h = Header::parse(&BYTES).unwrap();
        assert_eq!(h.flags, PacketFlags::FLUSHED | PacketFlags::ENCRYPTED);
        assert_eq!(h.count.value(), 0xABC);
        let mut buf = [0u8; 2];
        h.emit(&mut buf).unwrap();
        assert_eq!(buf, [0x9A, 0xBC]);
        assert_eq!(h.buffer_len(), 2);
        let p = Packet::new_checked(&BYTES[..]).unwrap();
        assert_eq!(p.payload(), &[0xDE, 0xF0]);
        assert_eq!(Header::parse(&[0x90]), Err(MppeError::Truncated));
        assert!(h.emit(&mut [0u8; 1]).is_err());
    }

    #[test]
    fn counts_wrap_in_12_bits() {
        let c = CoherencyCount::new(0xFFF);
        assert_eq!(c.next().value(), 0);
        assert!(c.is_flag());
        assert!(CoherencyCount::new(0x0FF).is_flag());
        assert!(!CoherencyCount::new(0x100).is_flag());
        assert_eq!(c.distance_to(CoherencyCount::new(2)), 3);
        assert_eq!(CoherencyCount::new(2).distance_to(c), 4093);
    }

    #[test]
    fn first_packet_uses_the_initial_session_key() {
        // RFC 3079 section 3.5.3: RC4 under the initial 128-bit session key turns "test message"
        // into 81 84 83 17 ...; in stateful mode the first packet uses exactly that key stream.
        let (mut tx, _) = pair(KeyStrength::Bits128, Mode::Stateful);
        let out = send(&mut tx, b"test message");
        assert_eq!(out[0], 0x10); // D, count 0, no A on the first packet
        assert_eq!(out[1], 0x00);
        assert_eq!(
            out[2..],
            [0x81, 0x84, 0x83, 0x17, 0xDF, 0x68, 0x84, 0x62, 0x72, 0xFB, 0x5A, 0xBE]
        );
    }

    #[test]
    fn in_order_roundtrip_all_modes_across_key_changes() {
        for strength in [
            KeyStrength::Bits40,
            KeyStrength::Bits56,
            KeyStrength::Bits128,
        ] {
            for mode in [Mode::Stateful, Mode::Stateless] {
                let (mut tx, mut rx) = pair(strength, mode);
                for i in 0..700 {
                    let m = msg(i);
                    let mut wire = send(&mut tx, &m);
                    assert_ne!(wire[2..], m[..], "not encrypted");
                    let (h, plain) = rx.open(&mut wire).unwrap();
                    assert_eq!(plain, &m[..]);
                    assert_eq!(h.count.value() as usize, i);
                    assert_eq!(
                        h.flags.contains(PacketFlags::FLUSHED),
                        mode == Mode::Stateless || h.count.is_flag()
                    );
                }
                assert_eq!(tx.key_changes(), rx.key_changes());
                let expect = if mode == Mode::Stateless { 700 } else { 2 };
                assert_eq!(tx.key_changes(), expect);
            }
        }
    }

    #[test]
    fn stateful_loss_discards_until_flushed_and_asks_once() {
        let (mut tx, mut rx) = pair(KeyStrength::Bits128, Mode::Stateful);
        let mut w0 = send(&mut tx, &msg(0));
        rx.open(&mut w0).unwrap();
        let _lost = send(&mut tx, &msg(1));
        let mut w2 = send(&mut tx, &msg(2));
        assert_eq!(rx.open(&mut w2), Err(MppeError::PacketLoss { missing: 1 }));
        assert_eq!(rx.poll_event(), Some(Event::SendResetRequest));
        assert_eq!(rx.poll_event(), None);
        let mut w3 = send(&mut tx, &msg(3));
        assert_eq!(rx.open(&mut w3), Err(MppeError::Discarding));
        assert_eq!(rx.poll_event(), None, "one request per loss episode");
        // The Reset-Request reaches the sender: the next packet carries A.
        tx.reset();
        let m4 = msg(4);
        let mut w4 = send(&mut tx, &m4);
        assert_eq!(w4[0] & 0x80, 0x80);
        let (_, plain) = rx.open(&mut w4).unwrap();
        assert_eq!(plain, &m4[..]);
        assert!(!rx.is_discarding());
        let m5 = msg(5);
        let mut w5 = send(&mut tx, &m5);
        assert_eq!(rx.open(&mut w5).unwrap().1, &m5[..]);
    }

    #[test]
    fn stateful_resync_across_missed_flag_packets() {
        let (mut tx, mut rx) = pair(KeyStrength::Bits40, Mode::Stateful);
        let mut w = send(&mut tx, &msg(0));
        rx.open(&mut w).unwrap();
        // Lose 600 packets: two flag packets (0x0FF, 0x1FF) among them.
        for i in 1..=600 {
            let _ = send(&mut tx, &msg(i));
        }
        let mut w = send(&mut tx, &msg(601));
        assert!(matches!(rx.open(&mut w), Err(MppeError::PacketLoss { .. })));
        assert_eq!(rx.poll_event(), Some(Event::SendResetRequest));
        tx.reset();
        let m = msg(602);
        let mut w = send(&mut tx, &m);
        assert_eq!(rx.open(&mut w).unwrap().1, &m[..]);
        assert_eq!(rx.key_changes(), tx.key_changes());
    }

    #[test]
    fn lost_flushed_packet_is_asked_for_again_after_reset_ack() {
        let (mut tx, mut rx) = pair(KeyStrength::Bits128, Mode::Stateful);
        let mut w = send(&mut tx, &msg(0));
        rx.open(&mut w).unwrap();
        let _ = send(&mut tx, &msg(1));
        let mut w = send(&mut tx, &msg(2));
        assert!(rx.open(&mut w).is_err());
        assert_eq!(rx.poll_event(), Some(Event::SendResetRequest));
        tx.reset();
        let _lost_flushed = send(&mut tx, &msg(3));
        rx.handle_reset_ack();
        let mut w = send(&mut tx, &msg(4));
        assert_eq!(rx.open(&mut w), Err(MppeError::Discarding));
        assert_eq!(rx.poll_event(), Some(Event::SendResetRequest));
        tx.reset();
        let m = msg(5);
        let mut w = send(&mut tx, &m);
        assert_eq!(rx.open(&mut w).unwrap().1, &m[..]);
    }

    #[test]
    fn duplicates_and_late_packets_are_stale() {
        for mode in [Mode::Stateful, Mode::Stateless] {
            let (mut tx, mut rx) = pair(KeyStrength::Bits128, mode);
            let w0 = send(&mut tx, &msg(0));
            let w1 = send(&mut tx, &msg(1));
            rx.open(&mut w0.clone()).unwrap();
            rx.open(&mut w1.clone()).unwrap();
            assert_eq!(rx.open(&mut w0.clone()), Err(MppeError::Stale { count: 0 }));
            assert_eq!(rx.open(&mut w1.clone()), Err(MppeError::Stale { count: 1 }));
            assert_eq!(rx.poll_event(), None);
            let m = msg(2);
            let mut w2 = send(&mut tx, &m);
            assert_eq!(rx.open(&mut w2).unwrap().1, &m[..]);
        }
    }

    #[test]
    fn stateless_catches_up_over_gaps_up_to_the_cap() {
        let (mut tx, mut rx) = pair(KeyStrength::Bits56, Mode::Stateless);
        for _ in 0..1000 {
            let _ = send(&mut tx, &msg(0));
        }
        let m = msg(7);
        let mut w = send(&mut tx, &m);
        assert_eq!(rx.open(&mut w).unwrap().1, &m[..]);
        assert_eq!(rx.stats().lost, 1000);

        let cfg = ReceiverConfig {
            max_rekey: 10,
            ..ReceiverConfig::default()
        };
        let mut tx = Sender::new(
            start(KeyStrength::Bits56),
            KeyStrength::Bits56,
            Mode::Stateless,
        );
        let mut rx = Receiver::new(
            start(KeyStrength::Bits56),
            KeyStrength::Bits56,
            Mode::Stateless,
            cfg,
        );
        for _ in 0..11 {
            let _ = send(&mut tx, &msg(0));
        }
        let mut w = send(&mut tx, &msg(1));
        assert_eq!(
            rx.open(&mut w),
            Err(MppeError::TooManyRekeys {
                needed: 11,
                max: 10
            })
        );
        assert_eq!(rx.key_changes(), 0, "no work done for a rejected jump");

        // Without MPPE (MPPC alone) a jump costs nothing and is not capped.
        let mut tx = Sender::unencrypted(Mode::Stateless);
        let mut rx = Receiver::unencrypted(Mode::Stateless, cfg);
        for _ in 0..100 {
            let _ = send(&mut tx, &msg(0));
        }
        let m = msg(3);
        let mut w = send(&mut tx, &m);
        assert_eq!(w[0] & 0xF0, 0x80, "A, no D");
        assert_eq!(rx.open(&mut w).unwrap().1, &m[..]);
    }

    #[test]
    fn bogus_packets_raise_too_many_errors_once() {
        let (mut tx, mut rx) = pair(KeyStrength::Bits128, Mode::Stateless);
        let mut plain = vec![0x00u8, 0x00, 0x00, 0x21];
        for _ in 0..15 {
            assert_eq!(rx.open(&mut plain.clone()), Err(MppeError::NotEncrypted));
            assert_eq!(rx.poll_event(), None);
        }
        assert_eq!(rx.open(&mut plain), Err(MppeError::NotEncrypted));
        assert_eq!(rx.poll_event(), Some(Event::TooManyErrors));
        assert_eq!(rx.open(&mut [0x10, 0x00, 0x00]), Err(MppeError::NotFlushed));
        assert_eq!(rx.poll_event(), None, "reported once");
        // Good packets still decrypt; the engine decides what to do with the event.
        let m = msg(1);
        let mut w = send(&mut tx, &m);
        assert_eq!(rx.open(&mut w).unwrap().1, &m[..]);
    }

    #[test]
    fn header_sanity_rules() {
        let (_, mut rx) = pair(KeyStrength::Bits128, Mode::Stateless);
        // Stateless packet without A.
        assert_eq!(rx.open(&mut [0x10, 0x00, 0x00]), Err(MppeError::NotFlushed));
        // Empty payload.
        assert_eq!(rx.open(&mut [0x90, 0x00]), Err(MppeError::Truncated));
        let mut plain_rx = Receiver::unencrypted(Mode::Stateful, ReceiverConfig::default());
        assert_eq!(
            plain_rx.open(&mut [0x10, 0x00, 0x00]),
            Err(MppeError::UnexpectedEncryption)
        );
        assert_eq!(rx.stats().bogus, 2);
    }

    #[test]
    fn reset_request_reinitialises_without_a_key_change() {
        let (mut tx, mut rx) = pair(KeyStrength::Bits128, Mode::Stateful);
        for i in 0..3 {
            let mut w = send(&mut tx, &msg(i));
            rx.open(&mut w).unwrap();
        }
        tx.reset();
        tx.reset(); // a retransmitted Reset-Request changes nothing more
        let m = msg(3);
        let mut w = send(&mut tx, &m);
        assert_eq!(w[0] & 0x80, 0x80);
        assert_eq!(tx.key_changes(), 0);
        assert_eq!(rx.open(&mut w).unwrap().1, &m[..]);
        let m = msg(4);
        let mut w = send(&mut tx, &m);
        assert_eq!(w[0] & 0x80, 0);
        assert_eq!(rx.open(&mut w).unwrap().1, &m[..]);
    }

    #[test]
    fn encrypt_needs_room() {
        let (mut tx, _) = pair(KeyStrength::Bits40, Mode::Stateful);
        assert_eq!(
            tx.encrypt(&[1, 2, 3], &mut [0u8; 4]),
            Err(MppeError::BufferTooSmall { needed: 5 })
        );
        assert_eq!(tx.next_count().value(), 0, "nothing consumed");
    }

    #[test]
    fn debug_output_hides_keys() {
        let (tx, rx) = pair(KeyStrength::Bits128, Mode::Stateful);
        let s = format!("{tx:?} {rx:?}");
        assert!(s.contains("<redacted>"));
        assert!(!s.contains("bytes"), "{s}");
    }
}
