//! One PPP call with its data path: the [`Engine`] plus the MPPC/MPPE transmitter and receiver
//! it negotiates, turning IPv4 packets into PPP frames and back. Sans-IO; used by the PNS for
//! each call (server role) and by the dial-in client and the lab (client role).
//!
//! The shell calls [`Session::handle_frame`] / [`Session::handle_timeout`] with `now`, then
//! drains [`Session::poll_transmit`] and [`Session::poll_event`] and re-arms one timer to
//! [`Session::poll_timeout`], as for the engine itself.
//!
//! A server session may carry an authentication throttle ([`Session::set_throttle`]): when the
//! peer's credentials have been judged and the throttle says the (user, source) pair must wait
//! (exponential delay after earlier failures), the session holds its answer, and everything
//! after it, frames and events alike, until that deadline. [`Session::poll_timeout`] reports
//! the deadline and the shell's next `handle_timeout`/`handle_frame` at or after it releases
//! the hold; no clock is read here.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::mppe::pipeline::{CcpReceive, CcpTransmit, Receiver, Transmitter};
use crate::mppe::Event as MppeEvent;
use crate::pns::throttle::{ThrottleHandle, Verdict};
use crate::ppp::auth::{AuthFailure, CredentialStore};
use crate::ppp::engine::{DownReason, Engine, Event, Policy};
use crate::ppp::fsm::State;
use crate::ppp::packet::Protocol;

/// PPP protocol number of IPv4, as it goes in front of the packet inside MPPC/MPPE.
const PROTO_IPV4: [u8; 2] = [0x00, 0x21];

/// Why an IPv4 packet could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The network layer is not open (or MPPE is required and not up yet).
    #[error("network layer not open")]
    NotOpen,
    /// The compression/encryption layer refused the packet.
    #[error("MPPC/MPPE: {0}")]
    Ccp(String),
}

/// Data-path counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// IPv4 packets sent.
    pub tx_packets: u64,
    /// PPP payload octets (protocol + IPv4) handed to the transmit path.
    pub tx_plain_octets: u64,
    /// Octets that left the transmit path (MPPC/MPPE header and body, or the plain packet).
    pub tx_wire_octets: u64,
    /// IPv4 packets delivered.
    pub rx_packets: u64,
    /// Packets the receive path dropped (MPPE loss, bad decompression, not IPv4).
    pub rx_dropped: u64,
    /// CCP Reset-Requests we sent.
    pub resets_sent: u64,
}

impl SessionStats {
    /// Plain over wire octets of the transmit path (1.0 without MPPC).
    pub fn compression_ratio(&self) -> f64 {
        if self.tx_wire_octets == 0 {
            1.0
        } else {
            self.tx_plain_octets as f64 / self.tx_wire_octets as f64
        }
    }
}

/// One PPP link and its MPPC/MPPE data path.
#[derive(Debug)]
pub struct Session {
    engine: Engine,
    tx: Option<Transmitter>,
    rx: Option<Receiver>,
    events: VecDeque<Event>,
    pending: VecDeque<Vec<u8>>,
    stats: SessionStats,
    scratch: Vec<u8>,
    /// Throttle and source (peer address) of a server session.
    throttle: Option<(ThrottleHandle, String)>,
    /// Output and events are held until this time (throttle delay of the auth answer).
    hold_until: Option<Instant>,
    /// The peer's credentials have been judged (the throttle has seen the outcome).
    judged: bool,
}

impl Session {
    /// A session in the Dead phase (see [`Engine::new`]).
    pub fn new(
        policy: Arc<Policy>,
        store: Option<Arc<dyn CredentialStore + Send + Sync>>,
        seed: [u8; 32],
    ) -> Self {
        Session {
            engine: Engine::new(policy, store, seed),
            tx: None,
            rx: None,
            events: VecDeque::new(),
            pending: VecDeque::new(),
            stats: SessionStats::default(),
            scratch: Vec::new(),
            throttle: None,
            hold_until: None,
            judged: false,
        }
    }

    /// Makes this (server) session hold its authentication answer while `throttle` delays
    /// attempts of the peer's user or of `source` (see the module docs).
    pub fn set_throttle(&mut self, throttle: ThrottleHandle, source: &str) {
        self.throttle = Some((throttle, source.to_string()));
    }

    /// Until when output and events are held for the throttle, if they are.
    pub fn held_until(&self) -> Option<Instant> {
        self.hold_until
    }

    fn release(&mut self, now: Instant) {
        if self.hold_until.is_some_and(|t| t <= now) {
            self.hold_until = None;
        }
    }

    /// The user name of a failed authentication (empty when there was none).
    fn failed_user(f: &AuthFailure) -> Vec<u8> {
        match f {
            AuthFailure::UnknownUser(u)
            | AuthFailure::BadCredentials(u)
            | AuthFailure::NeedCleartext(u)
            | AuthFailure::LmRefused(u) => u.as_bytes().to_vec(),
            _ => Vec::new(),
        }
    }

    /// The engine, for its getters.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Whether the data path is built (CCP opened with MPPE and/or MPPC).
    pub fn has_data_path(&self) -> bool {
        self.tx.is_some()
    }

    /// Starts LCP (the call is up).
    pub fn open(&mut self, now: Instant) {
        self.engine.open(now);
        self.pump(now);
    }

    /// Closes the link gracefully.
    pub fn close(&mut self, now: Instant, reason: &str) {
        self.engine.close(now, reason);
        self.pump(now);
    }

    /// The call is gone.
    pub fn lower_down(&mut self, now: Instant) {
        self.engine.lower_down(now);
        self.pump(now);
    }

    /// Whether IPv4 may flow and CCP has settled (so the first packet goes the final way).
    pub fn ready(&self) -> bool {
        let ccp_settled = match self.engine.ccp_state() {
            None => true,
            Some(State::Opened) => self.tx.is_some() || self.engine.ccp_result().is_none(),
            Some(s) => !matches!(s, State::ReqSent | State::AckRcvd | State::AckSent),
        };
        self.engine.network_open() && ccp_settled
    }

    /// Why the link went down, once it did.
    pub fn down_reason(&self) -> Option<&DownReason> {
        self.engine.down_reason()
    }

    /// Handles one PPP frame; returns an IPv4 packet when one arrived.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> Option<Vec<u8>> {
        self.release(now);
        if let Some((throttle, _)) = &self.throttle {
            // The guarded credential store judges lockouts by the throttle's clock.
            throttle.set_now(now);
        }
        let packet = self
            .engine
            .handle_frame(now, frame)
            .map(|p| (p.protocol, p.payload.to_vec()));
        let out = match packet {
            Some((Protocol::Ipv4, payload)) => Some(payload),
            Some((Protocol::CompressedDatagram, mut payload)) => self.decode(now, &mut payload),
            Some(_) => None,
            None => None,
        };
        if out.is_some() {
            self.stats.rx_packets += 1;
        }
        self.pump(now);
        out
    }

    fn decode(&mut self, now: Instant, payload: &mut [u8]) -> Option<Vec<u8>> {
        let rx = self.rx.as_mut()?;
        let result = rx.decode(payload).map(<[u8]>::to_vec);
        let mut reset = false;
        let mut fatal = false;
        while let Some(ev) = rx.poll_event() {
            match ev {
                MppeEvent::SendResetRequest => reset = true,
                MppeEvent::TooManyErrors => fatal = true,
            }
        }
        if reset {
            self.stats.resets_sent += 1;
            self.engine.send_ccp_reset(false, None);
        }
        if fatal {
            self.engine.close(now, "MPPE: too many bad packets");
        }
        match result {
            Ok(plain) => match plain.as_slice() {
                // Protocol field, compressed (one odd octet) or not.
                [0x21, rest @ ..] | [0x00, 0x21, rest @ ..] => Some(rest.to_vec()),
                _ => {
                    self.stats.rx_dropped += 1;
                    None
                }
            },
            Err(_) => {
                self.stats.rx_dropped += 1;
                None
            }
        }
    }

    /// Queues an IPv4 packet for the peer.
    pub fn send_ip(&mut self, packet: &[u8]) -> Result<(), SessionError> {
        if !self.engine.network_open() {
            return Err(SessionError::NotOpen);
        }
        let frame = match self.tx.as_mut() {
            Some(tx) => {
                self.scratch.clear();
                self.scratch.extend_from_slice(&PROTO_IPV4);
                self.scratch.extend_from_slice(packet);
                let mut out = Vec::with_capacity(packet.len() + 8);
                tx.encode(&self.scratch, &mut out)
                    .map_err(|e| SessionError::Ccp(e.to_string()))?;
                self.stats.tx_plain_octets += self.scratch.len() as u64;
                self.stats.tx_wire_octets += out.len() as u64;
                self.engine
                    .send_network(Protocol::CompressedDatagram, &out)
                    .map_err(|_| SessionError::NotOpen)?
            }
            None => {
                self.stats.tx_plain_octets += (packet.len() + 2) as u64;
                self.stats.tx_wire_octets += (packet.len() + 2) as u64;
                self.engine
                    .send_network(Protocol::Ipv4, packet)
                    .map_err(|_| SessionError::NotOpen)?
            }
        };
        self.stats.tx_packets += 1;
        self.pending.push_back(frame);
        Ok(())
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.release(now);
        self.engine.handle_timeout(now);
        self.pump(now);
    }

    /// Routes engine events: builds the data path on CcpUp, answers CCP resets.
    /// The throttle's part when the peer's credentials were judged: count the outcome and
    /// hold the answer for the delay earned by earlier failures.
    fn judge(&mut self, now: Instant, user: &[u8], ok: bool) {
        self.judged = true;
        let Some((throttle, source)) = self.throttle.as_ref() else {
            return;
        };
        // Issue 8: "failures per user and per source address are counted, with exponential
        // delay": the answer to this attempt goes out no sooner than the delay earned by the
        // earlier failures. The outcome is counted now, as of the answer time, so attempts in
        // parallel calls lock out as soon as enough have failed, and the next delay runs from
        // when the peer gets this answer.
        let answer_at = match throttle.check_at(now, user, source) {
            Verdict::DelayUntil(t) if t > now => t,
            _ => now,
        };
        let _ = throttle.record(answer_at, user, source, ok);
        if answer_at > now {
            tracing::info!(
                user = %String::from_utf8_lossy(user),
                source = %source,
                delay_ms = answer_at.saturating_duration_since(now).as_millis() as u64,
                "authentication answer held (throttle)"
            );
            self.hold_until = Some(self.hold_until.map_or(answer_at, |h| h.max(answer_at)));
        }
    }

    fn pump(&mut self, now: Instant) {
        if self.throttle.is_some() && !self.judged {
            // A failure shows as the down reason at once (the CHAP Failure is queued ahead
            // of the Terminate-Request); its LinkDown event comes only when LCP has closed.
            if let Some(DownReason::AuthFailed(f)) = self.engine.down_reason() {
                let user = Self::failed_user(f);
                self.judge(now, &user, false);
            }
        }
        while let Some(ev) = self.engine.poll_event() {
            if let Event::Authenticated { user } = &ev {
                if self.throttle.is_some() && !self.judged {
                    let user = user.clone();
                    self.judge(now, &user, true);
                }
            }
            match &ev {
                Event::CcpUp(_) => match self.engine.mppe_data_path() {
                    Ok((tx, rx)) => {
                        self.tx = Some(tx);
                        self.rx = Some(rx);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "CCP opened but the data path could not be built");
                    }
                },
                Event::CcpDown | Event::LinkDown(_) => {
                    self.tx = None;
                    self.rx = None;
                }
                Event::CcpReset { ack: false, id } => {
                    if let Some(tx) = self.tx.as_mut() {
                        tx.handle_reset_request();
                    }
                    self.engine.send_ccp_reset(true, Some(*id));
                }
                Event::CcpReset { ack: true, .. } => {
                    if let Some(rx) = self.rx.as_mut() {
                        rx.handle_reset_ack();
                    }
                }
                _ => {}
            }
            self.events.push_back(ev);
        }
    }

    /// The next PPP frame to send (control first, then data in order); nothing while the
    /// throttle holds the authentication answer.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.hold_until.is_some() {
            return None;
        }
        if let Some(f) = self.engine.poll_transmit() {
            return Some(f);
        }
        self.pending.pop_front()
    }

    /// The earliest deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.engine.poll_timeout(), self.hold_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next engine event (after the session acted on it); nothing while the throttle
    /// holds the authentication answer (the judgement is reported when the answer goes out).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.hold_until.is_some() {
            return None;
        }
        self.events.pop_front()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::ppp::auth::{ClientCredentials, StaticCredentials};
    use crate::ppp::ccp::MppeMode;
    use crate::ppp::ipcp::IpcpConfig;
    use crate::ppp::lcp::AuthMethod;
    use crate::responder::{BulkStream, Pinger, Responder, Verdict};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    /// Client and server sessions joined in memory: MS-CHAPv2, MPPE-128 required, MPPC; a
    /// ping through the responder and a compressed bulk stream.
    #[test]
    fn pair_with_mppe_and_mppc() {
        let mut sp = Policy::server(
            vec![AuthMethod::MsChapV2],
            IpcpConfig {
                local: Some(Ipv4Addr::new(10, 0, 0, 1)),
                assign_peer: Some(Ipv4Addr::new(10, 0, 0, 2)),
                dns: [None, None],
                request_dns: false,
            },
        );
        sp.ccp.mppe = MppeMode::Required;
        sp.ccp.mppc = true;
        let mut cp = Policy::client(ClientCredentials::new("bob", "pw"));
        cp.lcp.accept_auth = vec![AuthMethod::MsChapV2];
        cp.ccp.mppe = MppeMode::Required;
        cp.ccp.mppc = true;
        let store = Arc::new(StaticCredentials::new().with_password("bob", "pw"));
        let mut c = Session::new(Arc::new(cp), None, [1; 32]);
        let mut s = Session::new(Arc::new(sp), Some(store), [2; 32]);
        let mut now = Instant::now();
        c.open(now);
        s.open(now);
        let mut responder = Responder::new();
        let mut pinger = None;
        let mut got_reply = false;
        for _ in 0..200 {
            while let Some(f) = c.poll_transmit() {
                if let Some(ip) = s.handle_frame(now, &f) {
                    if let Ok(Verdict::Reply(r)) = responder.handle_packet(&ip) {
                        s.send_ip(&r).unwrap();
                    }
                }
            }
            while let Some(f) = s.poll_transmit() {
                if let Some(ip) = c.handle_frame(now, &f) {
                    if let Some(p) = pinger.as_mut() {
                        got_reply |= Pinger::handle_packet(p, now, &ip).is_some();
                    }
                }
            }
            while c.poll_event().is_some() {}
            while s.poll_event().is_some() {}
            if c.ready() && s.ready() && pinger.is_none() {
                let mut p = Pinger::new(
                    Ipv4Addr::new(10, 0, 0, 2),
                    Ipv4Addr::new(10, 0, 0, 1),
                    7,
                    32,
                );
                c.send_ip(&p.next_request(now)).unwrap();
                let mut bulk =
                    BulkStream::new(Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1), 1000);
                for _ in 0..20 {
                    c.send_ip(&bulk.next_packet()).unwrap();
                }
                pinger = Some(p);
            }
            now += Duration::from_millis(10);
            c.handle_timeout(now);
            s.handle_timeout(now);
        }
        assert!(c.has_data_path() && s.has_data_path());
        assert_eq!(
            c.engine().ccp_result().and_then(|r| r.key_bits()),
            Some(128)
        );
        assert!(got_reply, "ping answered through MPPE+MPPC");
        assert_eq!(responder.stats().udp_discard, 20);
        assert!(c.stats().compression_ratio() > 1.5, "{:?}", c.stats());
        assert_eq!(s.stats().rx_dropped, 0);
    }

    #[test]
    fn send_before_open_is_refused() {
        let mut c = Session::new(
            Arc::new(Policy::client(ClientCredentials::new("a", "b"))),
            None,
            [3; 32],
        );
        assert_eq!(c.send_ip(&[0x45; 20]), Err(SessionError::NotOpen));
        assert!(!c.ready());
    }
}
