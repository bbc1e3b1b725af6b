//! The GRE data plane of one call (RFC 2637 section 4): sequence numbers, acknowledgments,
//! the send window, a bounded reorder buffer and the adaptive acknowledgment time-out.
//!
//! [`Window`] is sans-IO. The shell encodes outgoing PPP frames with
//! [`Window::encode_data`], feeds received GRE packets to [`Window::handle_packet`] (which
//! returns whether the payload is to be delivered now), takes packets released from the
//! reorder buffer with [`Window::poll_deliver`], sends acknowledgment-only packets with
//! [`Window::poll_ack`], and calls [`Window::handle_timeout`] at [`Window::poll_timeout`].
//!
//! Policies (each configurable in [`WindowConfig`]):
//! - **Sequence numbers** on every data packet, from 0.
//! - **Acknowledgments** carry the highest sequence number received. They ride on the next
//!   data packet; when none goes out, an acknowledgment-only packet is sent at the latest
//!   `ack_delay` (0.5 s) after the first unacknowledged packet arrived, and at once when
//!   `ack_every` packets are owed.
//! - **Send window**: at most `peer_window` packets unacknowledged (the peer's Packet Receive
//!   Window Size). `ignore_peer_window` disables the limit (Windows peers announce a window and
//!   do not acknowledge within it).
//! - **Reorder buffer**: a packet ahead of a gap waits at most `reorder_timeout` (0.3 s, what
//!   pptpd does) for the gap to fill; then the gap is skipped (counted `lost`). Duplicates and
//!   packets behind the delivery point are dropped and counted. `reorder_timeout == 0` delivers
//!   in order of arrival, dropping only duplicates.
//! - **Adaptive acknowledgment time-out** (RFC 2637 §4.4 and its appendix): round-trip samples
//!   from acknowledgments, `ATO = PPD + RTT + 4·DEV` bounded by `max_ack_timeout`; on a time-out
//!   the ATO doubles (back-off), the send window halves (at least 1) and the unacknowledged
//!   packets are written off (PPTP never retransmits); each acknowledgment then opens the
//!   window by one again, up to the peer's size.
//!
//! Counters ([`GreStats`]) are exact: every received data packet is counted as exactly one of
//! delivered, duplicate or late (or is still buffered).

use super::gre::{GreRepr, SeqNumber};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Configuration of one call's data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// The peer's Call ID (the Key we put in GRE packets).
    pub peer_call_id: u16,
    /// The Packet Receive Window Size we announced (bounds the reorder buffer).
    pub recv_window: u16,
    /// The peer's Packet Receive Window Size (our send window).
    pub peer_window: u16,
    /// Send regardless of the peer's window.
    pub ignore_peer_window: bool,
    /// Longest wait for a gap to fill; zero delivers in order of arrival.
    pub reorder_timeout: Duration,
    /// Longest delay of an acknowledgment.
    pub ack_delay: Duration,
    /// Send an acknowledgment-only packet at once when this many packets are owed one.
    pub ack_every: u16,
    /// The peer's Packet Processing Delay (PPD of RFC 2637 §4.4).
    pub peer_processing_delay: Duration,
    /// Initial acknowledgment time-out, before any round-trip sample.
    pub initial_ack_timeout: Duration,
    /// MaxTimeOut of RFC 2637 §4.4: the ATO never exceeds it.
    pub max_ack_timeout: Duration,
}

impl WindowConfig {
    /// Defaults: window 64 both ways, reorder wait 0.3 s, ack within 0.5 s or after 8 owed,
    /// ATO 1 s initially, at most 10 s.
    pub fn new(peer_call_id: u16) -> Self {
        WindowConfig {
            peer_call_id,
            recv_window: 64,
            peer_window: 64,
            ignore_peer_window: false,
            reorder_timeout: Duration::from_millis(300),
            ack_delay: Duration::from_millis(500),
            ack_every: 8,
            peer_processing_delay: Duration::ZERO,
            initial_ack_timeout: Duration::from_secs(1),
            max_ack_timeout: Duration::from_secs(10),
        }
    }
}

/// Exact counters of one call's data plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GreStats {
    /// Data packets sent.
    pub sent: u64,
    /// Data packets refused because the send window was full.
    pub window_full: u64,
    /// Acknowledgments sent on data packets.
    pub acks_piggybacked: u64,
    /// Acknowledgment-only packets sent.
    pub acks_only: u64,
    /// Data packets received (every copy).
    pub received: u64,
    /// Payloads delivered (each sequence number at most once).
    pub delivered: u64,
    /// Copies of a sequence number already delivered or buffered (dropped).
    pub duplicate: u64,
    /// Packets whose sequence number had already been skipped as lost (dropped when the
    /// reorder buffer is on, delivered in arrival mode).
    pub late: u64,
    /// Sequence numbers skipped: the receiver stopped waiting for them.
    pub lost: u64,
    /// Packets that arrived after a later one and were still delivered in order.
    pub reordered: u64,
    /// Packets that went through the reorder buffer.
    pub buffered: u64,
    /// Acknowledgments received that moved the window.
    pub acks_received: u64,
    /// Acknowledgments for nothing we sent (ignored).
    pub bad_acks: u64,
    /// Acknowledgment time-outs (each halves the send window).
    pub ack_timeouts: u64,
}

/// Why a data packet was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer's receive window is full (RFC 2637 §4.2: the sender must not exceed it).
    #[error("send window full ({0} packets unacknowledged)")]
    WindowFull(u32),
    /// The payload does not fit the 16-bit Payload Length.
    #[error("payload of {0} octets is too long for GRE")]
    TooLong(usize),
}

/// What [`Window::handle_packet`] decided about a data packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rx {
    /// Deliver this payload now (then drain [`Window::poll_deliver`]).
    Deliver,
    /// Held in the reorder buffer (a copy was taken).
    Buffered,
    /// A copy of a sequence number already delivered or buffered: dropped.
    Duplicate,
    /// Behind the delivery point (its number was skipped): dropped.
    Late,
    /// An acknowledgment-only packet (nothing to deliver).
    AckOnly,
}

/// Send times kept for round-trip samples, at most.
const MAX_IN_FLIGHT: usize = 4096;

/// History of recently passed sequence numbers: delivered or skipped. 1024 entries.
const HISTORY: u32 = 1024;

#[derive(Debug, Clone)]
struct History([u64; (HISTORY / 64) as usize]);

impl History {
    fn slot(seq: SeqNumber) -> (usize, u64) {
        let i = seq.0 % HISTORY;
        ((i / 64) as usize, 1u64 << (i % 64))
    }
    fn set(&mut self, seq: SeqNumber, delivered: bool) {
        let (w, bit) = Self::slot(seq);
        if let Some(word) = self.0.get_mut(w) {
            if delivered {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }
    fn delivered(&self, seq: SeqNumber) -> bool {
        let (w, bit) = Self::slot(seq);
        self.0.get(w).is_some_and(|word| word & bit != 0)
    }
}

#[derive(Debug, Clone)]
struct Slot {
    seq: SeqNumber,
    arrived: Instant,
    payload: Vec<u8>,
}

/// The data plane of one call. See the module documentation.
#[derive(Debug, Clone)]
pub struct Window {
    config: WindowConfig,
    // ----- send side -----
    next_seq: SeqNumber,
    /// Highest sequence number acknowledged by the peer (`next_seq - 1` initially: nothing
    /// outstanding).
    acked: SeqNumber,
    send_window: u32,
    /// Send times of unacknowledged packets, oldest first.
    in_flight: VecDeque<(SeqNumber, Instant)>,
    rtt: Duration,
    dev: Duration,
    ato: Duration,
    have_sample: bool,
    // ----- receive side -----
    /// Next sequence number to deliver; `None` until the first data packet.
    expected: Option<SeqNumber>,
    history: History,
    /// Out-of-order packets, sorted by sequence number.
    buffer: VecDeque<Slot>,
    ready: VecDeque<Vec<u8>>,
    highest_rx: Option<SeqNumber>,
    last_ack_sent: Option<SeqNumber>,
    owed: u32,
    owed_since: Option<Instant>,
    stats: GreStats,
}

impl Window {
    /// A new data plane for one call.
    pub fn new(config: WindowConfig) -> Self {
        let ato = config.initial_ack_timeout.min(config.max_ack_timeout);
        Window {
            next_seq: SeqNumber(0),
            acked: SeqNumber(u32::MAX),
            send_window: u32::from(config.peer_window.max(1)),
            in_flight: VecDeque::new(),
            rtt: ato / 2,
            dev: ato / 8,
            ato,
            have_sample: false,
            expected: None,
            history: History([0; (HISTORY / 64) as usize]),
            buffer: VecDeque::new(),
            ready: VecDeque::new(),
            highest_rx: None,
            last_ack_sent: None,
            owed: 0,
            owed_since: None,
            stats: GreStats::default(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> GreStats {
        self.stats
    }

    /// The current acknowledgment time-out.
    pub fn ack_timeout(&self) -> Duration {
        self.ato
    }

    /// The smoothed round-trip time.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// The current send window (packets).
    pub fn send_window(&self) -> u32 {
        self.send_window
    }

    /// Packets sent and not yet acknowledged.
    pub fn unacked(&self) -> u32 {
        self.next_seq.0.wrapping_sub(self.acked.0.wrapping_add(1))
    }

    /// Packets waiting in the reorder buffer.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Whether a data packet may be sent now.
    pub fn can_send(&self) -> bool {
        self.config.ignore_peer_window || self.unacked() < self.send_window
    }

    // ----- send -----

    /// Appends a GRE data packet carrying `payload` to `buf`: the next sequence number and, if
    /// one is owed, a piggy-backed acknowledgment.
    pub fn encode_data<B: bytes::BufMut>(
        &mut self,
        now: Instant,
        payload: &[u8],
        buf: &mut B,
    ) -> Result<SeqNumber, SendError> {
        let payload_len =
            u16::try_from(payload.len()).map_err(|_| SendError::TooLong(payload.len()))?;
        // RFC 2637 §4.2: the Packet Receive Window Size "is the maximum number of data packets
        // the sender can transmit without receiving an acknowledgment" (in the peer's words).
        if !self.can_send() {
            self.stats.window_full += 1;
            return Err(SendError::WindowFull(self.unacked()));
        }
        let seq = self.next_seq;
        let ack = self.take_ack();
        if ack.is_some() {
            self.stats.acks_piggybacked += 1;
        }
        let repr = GreRepr::data(self.config.peer_call_id, payload_len, seq, ack);
        repr.emit(buf);
        buf.put_slice(payload);
        self.next_seq = seq.next();
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            // A peer that never acknowledges (ignore mode) must not make this grow forever;
            // the oldest send time is forgotten (no RTT sample from it).
            self.in_flight.pop_front();
        }
        self.in_flight.push_back((seq, now));
        self.stats.sent += 1;
        Ok(seq)
    }

    /// Appends an acknowledgment-only packet to `buf` if one is due at `now` (the oldest owed
    /// acknowledgment is `ack_delay` old, or `ack_every` are owed). Returns whether it did.
    #[must_use]
    pub fn poll_ack<B: bytes::BufMut>(&mut self, now: Instant, buf: &mut B) -> bool {
        if !self.ack_due(now) {
            return false;
        }
        if let Some(ack) = self.take_ack() {
            GreRepr::ack_only(self.config.peer_call_id, ack).emit(buf);
            self.stats.acks_only += 1;
            return true;
        }
        false
    }

    fn ack_due(&self, now: Instant) -> bool {
        match self.owed_since {
            None => false,
            Some(since) => {
                self.owed >= u32::from(self.config.ack_every.max(1))
                    || now >= since + self.config.ack_delay
            }
        }
    }

    fn take_ack(&mut self) -> Option<SeqNumber> {
        let ack = self.highest_rx?;
        // Whatever is owed is covered by the acknowledgment of the highest number; if that one
        // went out already (a lower packet arrived late), nothing new is owed.
        self.owed = 0;
        self.owed_since = None;
        if self.last_ack_sent == Some(ack) {
            return None;
        }
        self.last_ack_sent = Some(ack);
        Some(ack)
    }

    // ----- receive -----

    /// Handles a received GRE packet of this call (header already parsed and the Call ID
    /// checked). For [`Rx::Deliver`] the caller delivers `payload` itself; afterwards (and after
    /// every call) [`poll_deliver`](Self::poll_deliver) may hold packets released from the
    /// reorder buffer.
    pub fn handle_packet(&mut self, now: Instant, repr: &GreRepr, payload: &[u8]) -> Rx {
        if let Some(ack) = repr.ack {
            self.handle_ack(now, ack);
        }
        let Some(seq) = repr.seq else {
            return Rx::AckOnly;
        };
        self.stats.received += 1;
        let Some(expected) = self.expected else {
            // The first packet fixes the start of the sequence space.
            self.note_received(now, seq);
            self.deliver_seq(seq);
            return Rx::Deliver;
        };
        let d = seq.distance(expected);
        if d < 0 {
            // Behind the delivery point: delivered before, or skipped as lost.
            let recent = d > -(HISTORY as i32);
            if recent && self.history.delivered(seq) {
                self.stats.duplicate += 1;
                return Rx::Duplicate;
            }
            self.stats.late += 1;
            if self.config.reorder_timeout.is_zero() && recent {
                // Arrival-order mode delivers what it has not delivered yet.
                self.history.set(seq, true);
                self.stats.delivered += 1;
                self.note_received(now, seq);
                return Rx::Deliver;
            }
            return Rx::Late;
        }
        if d == 0 {
            self.note_received(now, seq);
            if !self.buffer.is_empty() {
                self.stats.reordered += 1;
            }
            self.deliver_seq(seq);
            self.release_in_order();
            return Rx::Deliver;
        }
        // Ahead of a gap.
        if self.buffer.iter().any(|s| s.seq == seq) {
            self.stats.duplicate += 1;
            return Rx::Duplicate;
        }
        self.note_received(now, seq);
        if self.config.reorder_timeout.is_zero() {
            // Arrival-order mode: skip the gap at once.
            self.skip_to(seq);
            self.deliver_seq(seq);
            return Rx::Deliver;
        }
        let capacity = u32::from(self.config.recv_window.max(1));
        if d as u32 >= capacity.max(2) * 2 || d as u32 >= HISTORY / 2 {
            // Far ahead: waiting cannot help; give up on the gap now.
            self.flush_buffer_through(seq);
            self.deliver_seq(seq);
            self.release_in_order();
            return Rx::Deliver;
        }
        let pos = self
            .buffer
            .iter()
            .position(|s| s.seq.is_after(seq))
            .unwrap_or(self.buffer.len());
        self.buffer.insert(
            pos,
            Slot {
                seq,
                arrived: now,
                payload: payload.to_vec(),
            },
        );
        self.stats.buffered += 1;
        if self.buffer.len() > usize::from(self.config.recv_window.max(1)) {
            // Bounded: the oldest gap is given up when the buffer exceeds our window.
            self.skip_first_gap();
        }
        Rx::Buffered
    }

    /// The next payload released from the reorder buffer, in sequence order.
    #[must_use]
    pub fn poll_deliver(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }

    fn note_received(&mut self, now: Instant, seq: SeqNumber) {
        // RFC 2637 §4.1: the Acknowledgment Number "Contains the sequence number of the
        // highest numbered GRE packet received by the sending peer for this user session."
        if self.highest_rx.is_none_or_before(seq) {
            self.highest_rx = Some(seq);
        }
        self.owed += 1;
        if self.owed_since.is_none() {
            self.owed_since = Some(now);
        }
    }

    fn deliver_seq(&mut self, seq: SeqNumber) {
        self.history.set(seq, true);
        self.stats.delivered += 1;
        self.expected = Some(seq.next());
    }

    /// Marks every number from `expected` up to (not including) `to` as skipped. O(1) in the
    /// size of the gap beyond the 1024-entry history (a peer may jump far ahead).
    fn skip_to(&mut self, to: SeqNumber) {
        let Some(e) = self.expected else {
            return;
        };
        let gap = to.distance(e);
        if gap <= 0 {
            return;
        }
        let gap = gap.unsigned_abs();
        self.stats.lost += u64::from(gap);
        for i in 1..=gap.min(HISTORY) {
            self.history.set(to.wrapping_add(i.wrapping_neg()), false);
        }
        self.expected = Some(to);
    }

    /// Moves consecutive buffered packets starting at `expected` to the ready queue.
    fn release_in_order(&mut self) {
        while let (Some(front), Some(e)) = (self.buffer.front(), self.expected) {
            if front.seq != e {
                break;
            }
            if let Some(slot) = self.buffer.pop_front() {
                self.deliver_seq(slot.seq);
                self.ready.push_back(slot.payload);
            }
        }
    }

    fn skip_first_gap(&mut self) {
        if let Some(first) = self.buffer.front().map(|s| s.seq) {
            self.skip_to(first);
            self.release_in_order();
        }
    }

    /// Gives up on every gap before `seq`, releasing buffered packets below it in order.
    fn flush_buffer_through(&mut self, seq: SeqNumber) {
        while self.buffer.front().is_some_and(|s| s.seq.is_before(seq)) {
            self.skip_first_gap();
        }
        self.skip_to(seq);
    }

    // ----- acknowledgments and the adaptive time-out -----

    fn handle_ack(&mut self, now: Instant, ack: SeqNumber) {
        // Only acknowledgments of packets in flight count: (acked, next_seq).
        if !(ack.is_after(self.acked) && ack.is_before(self.next_seq)) {
            if ack != self.acked {
                self.stats.bad_acks += 1;
            }
            return;
        }
        let newly = ack.distance(self.acked).unsigned_abs();
        self.acked = ack;
        self.stats.acks_received += 1;
        let mut sample = None;
        while let Some(&(seq, sent)) = self.in_flight.front() {
            if seq.is_after(ack) {
                break;
            }
            if seq == ack {
                sample = Some(now.saturating_duration_since(sent));
            }
            self.in_flight.pop_front();
        }
        if let Some(sample) = sample {
            self.update_rtt(sample);
        }
        // Reopen the window after a time-out: one packet per acknowledged packet, up to the
        // peer's size.
        let max = u32::from(self.config.peer_window.max(1));
        self.send_window = (self.send_window + newly).min(max);
    }

    /// RFC 2637 Appendix A (adaptive time-out): ALPHA = 1/8, BETA = 1/4, CHI = 4.
    fn update_rtt(&mut self, sample: Duration) {
        if !self.have_sample {
            self.rtt = sample;
            self.dev = sample / 2;
            self.have_sample = true;
        } else {
            let rtt = self.rtt.as_secs_f64();
            let diff = sample.as_secs_f64() - rtt;
            let rtt = rtt + diff / 8.0;
            let dev = self.dev.as_secs_f64();
            let dev = dev + (diff.abs() - dev) / 4.0;
            self.rtt = Duration::from_secs_f64(rtt.max(0.0));
            self.dev = Duration::from_secs_f64(dev.max(0.0));
        }
        let ato = self.config.peer_processing_delay + self.rtt + self.dev * 4;
        self.ato = ato.min(self.config.max_ack_timeout);
    }

    fn ato_deadline(&self) -> Option<Instant> {
        self.in_flight.front().map(|&(_, sent)| sent + self.ato)
    }

    fn reorder_deadline(&self) -> Option<Instant> {
        self.buffer
            .front()
            .map(|s| s.arrived + self.config.reorder_timeout)
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) or
    /// [`poll_ack`](Self::poll_ack) has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ack = self.owed_since.map(|s| {
            if self.owed >= u32::from(self.config.ack_every.max(1)) {
                s
            } else {
                s + self.config.ack_delay
            }
        });
        [ack, self.ato_deadline(), self.reorder_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Handles expired timers: gives up on gaps whose wait ran out and applies acknowledgment
    /// time-outs. Early calls are no-ops. Acknowledgments due are sent by
    /// [`poll_ack`](Self::poll_ack).
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.reorder_deadline().is_some_and(|d| d <= now) {
            self.skip_first_gap();
        }
        if self.ato_deadline().is_some_and(|d| d <= now) {
            // Back-off: "Timer backoff is done every time an acknowledgment time-out occurs",
            // bounded by MaxTimeOut; the send window halves and what is in flight is written
            // off (no retransmission in PPTP).
            self.stats.ack_timeouts += 1;
            self.ato = (self.ato * 2).min(self.config.max_ack_timeout);
            self.send_window = (self.send_window / 2).max(1);
            self.acked = self.next_seq.wrapping_add(u32::MAX);
            self.in_flight.clear();
        }
    }
}

trait BeforeOrNone {
    fn is_none_or_before(&self, seq: SeqNumber) -> bool;
}

impl BeforeOrNone for Option<SeqNumber> {
    fn is_none_or_before(&self, seq: SeqNumber) -> bool {
        self.map_or(true, |h| h.is_before(seq))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn pair(cfg: WindowConfig) -> (Window, Window) {
        (Window::new(cfg), Window::new(cfg))
    }

    fn data(seq: u32) -> GreRepr {
        GreRepr::data(1, 1, SeqNumber(seq), None)
    }

    #[test]
    fn in_order_delivery_and_piggybacked_ack() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(WindowConfig::new(1));
        let mut buf = Vec::new();
        assert_eq!(a.encode_data(t0, b"hi", &mut buf), Ok(SeqNumber(0)));
        let (repr, payload) = GreRepr::parse_bytes(&buf).unwrap();
        assert_eq!(repr.ack, None);
        assert_eq!(b.handle_packet(t0, &repr, payload), Rx::Deliver);
        assert_eq!(payload, b"hi");
        buf.clear();
        b.encode_data(t0, b"yo", &mut buf).unwrap();
        let (repr, _) = GreRepr::parse_bytes(&buf).unwrap();
        assert_eq!(repr.ack, Some(SeqNumber(0)), "ack piggy-backed");
        a.handle_packet(t0 + Duration::from_millis(20), &repr, b"yo");
        assert_eq!(a.unacked(), 0);
        assert_eq!(a.rtt(), Duration::from_millis(20));
        assert!(
            !b.poll_ack(t0 + Duration::from_secs(5), &mut buf),
            "nothing owed"
        );
    }

    #[test]
    fn ack_only_after_delay_or_when_several_owed() {
        let t0 = Instant::now();
        let mut cfg = WindowConfig::new(1);
        cfg.ack_every = 3;
        let mut b = Window::new(cfg);
        let mut buf = Vec::new();
        b.handle_packet(t0, &data(0), b"x");
        assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        assert!(!b.poll_ack(t0 + Duration::from_millis(499), &mut buf));
        assert!(b.poll_ack(t0 + Duration::from_millis(500), &mut buf));
        let (repr, _) = GreRepr::parse_bytes(&buf).unwrap();
        assert_eq!((repr.seq, repr.ack), (None, Some(SeqNumber(0))));
        buf.clear();
        for s in 1..=3 {
            b.handle_packet(t0, &data(s), b"x");
        }
        assert_eq!(b.poll_timeout(), Some(t0), "three owed: due at once");
        assert!(b.poll_ack(t0, &mut buf));
        assert_eq!(
            GreRepr::parse_bytes(&buf).unwrap().0.ack,
            Some(SeqNumber(3))
        );
    }

    #[test]
    fn send_window_limits_and_ignore_mode() {
        let t0 = Instant::now();
        let mut cfg = WindowConfig::new(1);
        cfg.peer_window = 2;
        let mut a = Window::new(cfg);
        let mut buf = Vec::new();
        a.encode_data(t0, b"1", &mut buf).unwrap();
        a.encode_data(t0, b"2", &mut buf).unwrap();
        assert_eq!(
            a.encode_data(t0, b"3", &mut buf),
            Err(SendError::WindowFull(2))
        );
        a.handle_packet(t0, &GreRepr::ack_only(1, SeqNumber(0)), &[]);
        assert!(a.encode_data(t0, b"3", &mut buf).is_ok());
        cfg.ignore_peer_window = true;
        let mut w = Window::new(cfg);
        for _ in 0..100 {
            w.encode_data(t0, b"x", &mut buf).unwrap();
        }
        assert_eq!(w.stats().window_full, 0);
    }

    #[test]
    fn reorder_buffer_waits_then_skips() {
        let t0 = Instant::now();
        let mut b = Window::new(WindowConfig::new(1));
        assert_eq!(b.handle_packet(t0, &data(0), b"0"), Rx::Deliver);
        assert_eq!(b.handle_packet(t0, &data(2), b"2"), Rx::Buffered);
        assert_eq!(b.handle_packet(t0, &data(3), b"3"), Rx::Buffered);
        assert_eq!(b.handle_packet(t0, &data(3), b"3"), Rx::Duplicate);
        // 1 arrives in time: 1 delivered directly, 2 and 3 released in order.
        assert_eq!(b.handle_packet(t0, &data(1), b"1"), Rx::Deliver);
        assert_eq!(b.poll_deliver().as_deref(), Some(&b"2"[..]));
        assert_eq!(b.poll_deliver().as_deref(), Some(&b"3"[..]));
        assert_eq!(b.poll_deliver(), None);
        // 5 arrives, 4 never does: after 0.3 s the gap is skipped.
        assert_eq!(b.handle_packet(t0, &data(5), b"5"), Rx::Buffered);
        b.handle_timeout(t0 + Duration::from_millis(299));
        assert_eq!(b.poll_deliver(), None);
        b.handle_timeout(t0 + Duration::from_millis(300));
        assert_eq!(b.poll_deliver().as_deref(), Some(&b"5"[..]));
        assert_eq!(b.handle_packet(t0, &data(4), b"4"), Rx::Late);
        assert_eq!(b.handle_packet(t0, &data(3), b"3"), Rx::Duplicate);
        let s = b.stats();
        assert_eq!(
            (
                s.received,
                s.delivered,
                s.duplicate,
                s.late,
                s.lost,
                s.reordered,
                s.buffered
            ),
            (8, 5, 2, 1, 1, 1, 3)
        );
    }

    #[test]
    fn arrival_order_mode_delivers_at_once() {
        let t0 = Instant::now();
        let mut cfg = WindowConfig::new(1);
        cfg.reorder_timeout = Duration::ZERO;
        let mut b = Window::new(cfg);
        assert_eq!(b.handle_packet(t0, &data(0), b"0"), Rx::Deliver);
        assert_eq!(b.handle_packet(t0, &data(2), b"2"), Rx::Deliver);
        assert_eq!(b.handle_packet(t0, &data(1), b"1"), Rx::Deliver);
        assert_eq!(b.handle_packet(t0, &data(1), b"1"), Rx::Duplicate);
        assert_eq!(b.stats().delivered, 3);
        assert_eq!((b.stats().lost, b.stats().late), (1, 1));
    }

    #[test]
    fn adaptive_timeout_backs_off_and_halves_the_window() {
        let t0 = Instant::now();
        let mut cfg = WindowConfig::new(1);
        cfg.peer_window = 8;
        let mut a = Window::new(cfg);
        let mut buf = Vec::new();
        for _ in 0..8 {
            a.encode_data(t0, b"x", &mut buf).unwrap();
        }
        assert!(!a.can_send());
        let ato = a.ack_timeout();
        assert_eq!(a.poll_timeout(), Some(t0 + ato));
        a.handle_timeout(t0 + ato);
        assert_eq!(a.stats().ack_timeouts, 1);
        assert_eq!(a.ack_timeout(), ato * 2);
        assert_eq!(a.send_window(), 4);
        assert_eq!(a.unacked(), 0, "written off");
        // Samples pull the ATO back down: ATO = PPD + RTT + 4 DEV.
        let t1 = t0 + Duration::from_secs(5);
        for i in 0..50u32 {
            let t = t1 + Duration::from_millis(u64::from(i) * 100);
            let seq = a.encode_data(t, b"x", &mut buf).unwrap();
            a.handle_packet(
                t + Duration::from_millis(40),
                &GreRepr::ack_only(1, seq),
                &[],
            );
        }
        assert!(
            a.ack_timeout() < Duration::from_millis(100),
            "{:?}",
            a.ack_timeout()
        );
        assert_eq!(a.send_window(), 8, "reopened to the peer's window");
    }

    #[test]
    fn bogus_acks_are_ignored() {
        let t0 = Instant::now();
        let mut a = Window::new(WindowConfig::new(1));
        let mut buf = Vec::new();
        a.encode_data(t0, b"x", &mut buf).unwrap();
        a.handle_packet(t0, &GreRepr::ack_only(1, SeqNumber(5)), &[]);
        assert_eq!(a.stats().bad_acks, 1);
        assert_eq!(a.unacked(), 1);
    }

    #[test]
    fn a_huge_jump_is_cheap_and_counted() {
        let t0 = Instant::now();
        let mut b = Window::new(WindowConfig::new(1));
        b.handle_packet(t0, &data(0), b"a");
        assert_eq!(b.handle_packet(t0, &data(0x7fff_0000), b"b"), Rx::Deliver);
        assert_eq!(b.stats().lost, 0x7fff_0000 - 1);
        assert_eq!(b.handle_packet(t0, &data(0x7fff_0001), b"c"), Rx::Deliver);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut b = Window::new(WindowConfig::new(1));
        b.handle_packet(t0, &data(u32::MAX - 1), b"a");
        b.handle_packet(t0, &data(0), b"c");
        assert_eq!(b.handle_packet(t0, &data(u32::MAX), b"b"), Rx::Deliver);
        assert_eq!(b.poll_deliver().as_deref(), Some(&b"c"[..]));
    }
}
