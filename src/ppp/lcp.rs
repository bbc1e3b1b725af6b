//! LCP (RFC 1661): the link options, magic-number loopback detection, echo keepalive,
//! Code-Reject and Protocol-Reject, Terminate with a reason.
//!
//! [`LcpNegotiator`] is the option half that the generic [`Fsm`] drives; [`Lcp`] wraps the
//! automaton with the LCP-only codes (Protocol-Reject, Echo, Discard) and the keepalive timer.
//! The negotiated values are exposed through [`Lcp::link`] for the framer and the PAC.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::auth::ChallengeRng;
use super::fsm::{BadOptions, Fsm, FsmConfig, FsmEvent, Negotiator, Reply};
use super::packet::{
    ChapAlgorithm, EmitOption, LcpCode, LcpOption, LcpOptionType, Options, Protocol,
};

/// An authentication method as negotiated in the Authentication-Protocol option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// PAP (c023).
    Pap,
    /// CHAP with MD5 (c223, algorithm 5).
    ChapMd5,
    /// MS-CHAP version 1 (c223, algorithm 0x80).
    MsChapV1,
    /// MS-CHAP version 2 (c223, algorithm 0x81).
    MsChapV2,
}

impl AuthMethod {
    /// The option as it goes on the wire.
    fn option(self) -> LcpOption<'static> {
        let (protocol, data): (Protocol, &'static [u8]) = match self {
            AuthMethod::Pap => (Protocol::Pap, &[]),
            AuthMethod::ChapMd5 => (Protocol::Chap, &[5]),
            AuthMethod::MsChapV1 => (Protocol::Chap, &[0x80]),
            AuthMethod::MsChapV2 => (Protocol::Chap, &[0x81]),
        };
        LcpOption::AuthProtocol { protocol, data }
    }

    /// The method an Authentication-Protocol option names, if this crate does it.
    pub fn from_option(protocol: Protocol, data: &[u8]) -> Option<AuthMethod> {
        match (protocol, data) {
            (Protocol::Pap, []) => Some(AuthMethod::Pap),
            (Protocol::Chap, [alg]) => match ChapAlgorithm::from(*alg) {
                ChapAlgorithm::Md5 => Some(AuthMethod::ChapMd5),
                ChapAlgorithm::MsChapV1 => Some(AuthMethod::MsChapV1),
                ChapAlgorithm::MsChapV2 => Some(AuthMethod::MsChapV2),
                ChapAlgorithm::Unknown(_) => None,
            },
            _ => None,
        }
    }
}

/// LCP policy for one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcpConfig {
    /// The MRU we ask for (not sent when 1500, the default).
    pub mru: u16,
    /// The receive ACCM we ask for (`None`: option not sent). PPTP links use 0.
    pub accm: Option<u32>,
    /// Ask for and accept Protocol-Field-Compression.
    pub pfc: bool,
    /// Ask for and accept Address-and-Control-Field-Compression.
    pub acfc: bool,
    /// Authenticator role: the methods we demand of the peer, most preferred first
    /// (empty: we do not authenticate the peer).
    pub require_auth: Vec<AuthMethod>,
    /// Peer role: the methods we agree to authenticate ourselves with (empty: none).
    pub accept_auth: Vec<AuthMethod>,
    /// Echo-Request interval once Opened (`None`: no keepalive).
    pub echo_interval: Option<Duration>,
    /// Unanswered Echo-Requests before the link is declared dead.
    pub echo_failures: u8,
    /// Restart timer and counters.
    pub fsm: FsmConfig,
}

impl Default for LcpConfig {
    fn default() -> Self {
        LcpConfig {
            mru: 1500,
            accm: Some(0),
            pfc: true,
            acfc: true,
            require_auth: Vec::new(),
            accept_auth: vec![
                AuthMethod::MsChapV2,
                AuthMethod::MsChapV1,
                AuthMethod::ChapMd5,
                AuthMethod::Pap,
            ],
            echo_interval: Some(Duration::from_secs(10)),
            echo_failures: 3,
            fsm: FsmConfig::default(),
        }
    }
}

/// What LCP negotiated, for the framer (ACCM, PFC, ACFC), the PAC (Set-Link-Info ACCMs) and
/// the engine (authentication in each direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkParams {
    /// Largest packet we may send (the peer's MRU).
    pub tx_mru: u16,
    /// Largest packet the peer may send us (our acked MRU).
    pub rx_mru: u16,
    /// ACCM to use when sending (the peer's receive ACCM).
    pub tx_accm: u32,
    /// ACCM the peer uses when sending to us (our acked receive ACCM).
    pub rx_accm: u32,
    /// We may compress the Protocol field when sending.
    pub tx_pfc: bool,
    /// We may omit Address and Control when sending.
    pub tx_acfc: bool,
    /// The peer may send compressed Protocol fields.
    pub rx_pfc: bool,
    /// The peer may omit Address and Control.
    pub rx_acfc: bool,
    /// Our Magic-Number (0 when not negotiated).
    pub local_magic: u32,
    /// The peer's Magic-Number (0 when not negotiated).
    pub peer_magic: u32,
    /// Method we authenticate the peer with (authenticator role).
    pub auth_peer: Option<AuthMethod>,
    /// Method the peer authenticates us with (peer role).
    pub auth_self: Option<AuthMethod>,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            tx_mru: 1500,
            rx_mru: 1500,
            tx_accm: 0xffff_ffff,
            rx_accm: 0xffff_ffff,
            tx_pfc: false,
            tx_acfc: false,
            rx_pfc: false,
            rx_acfc: false,
            local_magic: 0,
            peer_magic: 0,
            auth_peer: None,
            auth_self: None,
        }
    }
}

/// Loopback is declared after this many Configure-Requests carrying our own magic number.
const LOOPBACK_THRESHOLD: u8 = 5;
/// Smallest MRU we accept from the peer (RFC 1661 requires 1500 be receivable by default;
/// anything smaller than this is answered with a Nak for 1500).
const MIN_MRU: u16 = 64;

/// The LCP option half of the automaton.
#[derive(Debug)]
pub struct LcpNegotiator {
    config: LcpConfig,
    rng: ChallengeRng,
    // Our request.
    want_mru: Option<u16>,
    want_accm: Option<u32>,
    want_pfc: bool,
    want_acfc: bool,
    want_magic: Option<u32>,
    /// Index into `config.require_auth` of the method we ask for now.
    auth_index: usize,
    /// The peer refused every method we could demand.
    auth_refused: bool,
    // The peer's request (values of the last request we acked or are about to).
    peer: LinkParams,
    /// Requests seen carrying our own magic number in a row.
    loopback_hits: u8,
    loopback: bool,
    /// Our request as acked.
    acked: LinkParams,
}

impl LcpNegotiator {
    /// A negotiator with `config`, drawing magic numbers from `rng`.
    pub fn new(config: LcpConfig, rng: ChallengeRng) -> Self {
        let mut n = LcpNegotiator {
            config,
            rng,
            want_mru: None,
            want_accm: None,
            want_pfc: false,
            want_acfc: false,
            want_magic: None,
            auth_index: 0,
            auth_refused: false,
            peer: LinkParams::default(),
            loopback_hits: 0,
            loopback: false,
            acked: LinkParams::default(),
        };
        n.reset_request();
        n
    }

    fn reset_request(&mut self) {
        self.want_mru = (self.config.mru != 1500).then_some(self.config.mru);
        self.want_accm = self.config.accm;
        self.want_pfc = self.config.pfc;
        self.want_acfc = self.config.acfc;
        self.want_magic = Some(self.fresh_magic());
        self.auth_index = 0;
        self.auth_refused = false;
        self.loopback_hits = 0;
        self.loopback = false;
        self.peer = LinkParams::default();
        self.acked = LinkParams::default();
    }

    fn fresh_magic(&mut self) -> u32 {
        // "zero is reserved": never choose it.
        loop {
            let m = self.rng.u32();
            if m != 0 {
                return m;
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LcpConfig {
        &self.config
    }

    /// The method we currently demand (authenticator role).
    fn wanted_auth(&self) -> Option<AuthMethod> {
        if self.auth_refused {
            return None;
        }
        self.config.require_auth.get(self.auth_index).copied()
    }

    /// Whether the peer refused every authentication method we demand.
    pub fn auth_refused(&self) -> bool {
        self.auth_refused
    }

    /// Whether our own magic number kept coming back: the line is looped back.
    pub fn loopback_detected(&self) -> bool {
        self.loopback
    }

    /// Our current magic number (0 if the peer rejected the option).
    pub fn local_magic(&self) -> u32 {
        self.want_magic.unwrap_or(0)
    }

    /// The negotiated values (meaningful once LCP is Opened).
    pub fn link(&self) -> LinkParams {
        LinkParams {
            tx_mru: self.peer.tx_mru,
            tx_accm: self.peer.tx_accm,
            tx_pfc: self.peer.tx_pfc,
            tx_acfc: self.peer.tx_acfc,
            peer_magic: self.peer.peer_magic,
            auth_self: self.peer.auth_self,
            rx_mru: self.acked.rx_mru,
            rx_accm: self.acked.rx_accm,
            rx_pfc: self.acked.rx_pfc,
            rx_acfc: self.acked.rx_acfc,
            local_magic: self.acked.local_magic,
            auth_peer: self.acked.auth_peer,
        }
    }
}

/// Appends an option's wire form.
fn put(out: &mut Vec<u8>, opt: &impl EmitOption) {
    if let Ok(bytes) = opt.to_vec() {
        out.extend_from_slice(&bytes);
    }
}

impl Negotiator for LcpNegotiator {
    const NAME: &'static str = "LCP";

    fn restart(&mut self) {
        self.reset_request();
    }

    fn own_request(&mut self, out: &mut Vec<u8>) {
        if let Some(mru) = self.want_mru {
            put(out, &LcpOption::Mru(mru));
        }
        if let Some(accm) = self.want_accm {
            put(out, &LcpOption::Accm(accm));
        }
        if let Some(auth) = self.wanted_auth() {
            put(out, &auth.option());
        }
        if let Some(magic) = self.want_magic {
            put(out, &LcpOption::MagicNumber(magic));
        }
        if self.want_pfc {
            put(out, &LcpOption::ProtocolFieldCompression);
        }
        if self.want_acfc {
            put(out, &LcpOption::AddressControlFieldCompression);
        }
    }

    fn own_acked(&mut self, _options: &[u8]) {
        // The FSM checked the Ack is byte-identical to our request: take our wishes as agreed.
        self.acked.rx_mru = self.want_mru.unwrap_or(1500);
        self.acked.rx_accm = self.want_accm.unwrap_or(0xffff_ffff);
        self.acked.rx_pfc = self.want_pfc;
        self.acked.rx_acfc = self.want_acfc;
        self.acked.local_magic = self.want_magic.unwrap_or(0);
        self.acked.auth_peer = self.wanted_auth();
    }

    fn own_nacked(&mut self, options: &[u8], rejected: bool) -> Result<(), BadOptions> {
        let options = Options::parse(options).map_err(|_| BadOptions)?;
        for raw in options.iter() {
            let kind = LcpOptionType::from(raw.kind);
            if rejected {
                // RFC 1661 5.4: "the Configuration Options in a Configure-Reject MUST be a
                // proper subset of those in the last transmitted Configure-Request".
                match kind {
                    LcpOptionType::Mru if self.want_mru.is_some() => self.want_mru = None,
                    LcpOptionType::Accm if self.want_accm.is_some() => self.want_accm = None,
                    LcpOptionType::MagicNumber if self.want_magic.is_some() => {
                        self.want_magic = None
                    }
                    LcpOptionType::ProtocolFieldCompression if self.want_pfc => {
                        self.want_pfc = false
                    }
                    LcpOptionType::AddressControlFieldCompression if self.want_acfc => {
                        self.want_acfc = false
                    }
                    LcpOptionType::AuthProtocol if self.wanted_auth().is_some() => {
                        // The peer will not authenticate at all: nothing else to offer.
                        self.auth_refused = true;
                    }
                    _ => return Err(BadOptions),
                }
                continue;
            }
            // Configure-Nak: adopt what the peer suggests where we can.
            let Ok(opt) = LcpOption::parse(raw) else {
                continue;
            };
            match opt {
                LcpOption::Mru(m) if m >= MIN_MRU => self.want_mru = Some(m),
                LcpOption::Accm(a) => {
                    // Escape what both sides want escaped.
                    self.want_accm = Some(self.want_accm.unwrap_or(0) | a);
                }
                LcpOption::MagicNumber(_) => {
                    // RFC 1661 6.4: on a Nak of the Magic-Number "a different Magic-Number
                    // MUST be chosen".
                    self.want_magic = Some(self.fresh_magic());
                }
                LcpOption::AuthProtocol { protocol, data } => {
                    let suggested = AuthMethod::from_option(protocol, data);
                    let later = self
                        .config
                        .require_auth
                        .iter()
                        .skip(self.auth_index + 1)
                        .position(|m| Some(*m) == suggested);
                    match (suggested, later) {
                        // The peer's suggestion is one we also accept (and rank lower).
                        (Some(_), Some(offset)) => self.auth_index += offset + 1,
                        (Some(m), None) if self.wanted_auth() == Some(m) => {}
                        // Otherwise try our next method; when none is left the peer refused.
                        _ => {
                            self.auth_index += 1;
                            if self.auth_index >= self.config.require_auth.len() {
                                self.auth_refused = true;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn peer_request(&mut self, options: &[u8], reply: &mut Reply) -> Result<(), BadOptions> {
        let options = Options::parse(options).map_err(|_| BadOptions)?;
        let mut peer = LinkParams::default();
        let mut seen: u32 = 0;
        let mut looped = false;
        for raw in options.iter() {
            // A duplicate option is rejected: its meaning would be ambiguous.
            let bit = 1u32 << (raw.kind % 32);
            if seen & bit != 0 && raw.kind < 32 {
                reply.reject(raw.kind, raw.data);
                continue;
            }
            seen |= bit;
            let Ok(opt) = LcpOption::parse(raw) else {
                // A known option with a value of the wrong size: RFC 1661 section 6 asks for a
                // Nak; answering with the default value where there is one.
                match LcpOptionType::from(raw.kind) {
                    LcpOptionType::Mru => reply.nak(raw.kind, raw.data, &1500u16.to_be_bytes()),
                    _ => reply.reject(raw.kind, raw.data),
                }
                continue;
            };
            match opt {
                LcpOption::Mru(m) => {
                    if m >= MIN_MRU {
                        peer.tx_mru = m;
                    } else {
                        reply.nak(raw.kind, raw.data, &1500u16.to_be_bytes());
                    }
                }
                LcpOption::Accm(a) => peer.tx_accm = a,
                LcpOption::AuthProtocol { protocol, data } => {
                    match AuthMethod::from_option(protocol, data) {
                        Some(m) if self.config.accept_auth.contains(&m) => peer.auth_self = Some(m),
                        _ => match self.config.accept_auth.first() {
                            // RFC 1661 6.3: "If an implementation ... does not support the
                            // protocol ... it MUST respond with a Configure-Nak listing a
                            // protocol it prefers".
                            Some(pref) => {
                                let mut suggestion = Vec::new();
                                put(&mut suggestion, &pref.option());
                                reply.nak(raw.kind, raw.data, suggestion.get(2..).unwrap_or(&[]));
                            }
                            None => reply.reject(raw.kind, raw.data),
                        },
                    }
                }
                LcpOption::MagicNumber(m) => {
                    if m != 0 && Some(m) == self.want_magic {
                        // RFC 1661 6.4: the same Magic-Number as ours may mean a looped-back
                        // link; Nak with a different number and choose a new one of our own.
                        looped = true;
                        let new_peer = self.fresh_magic();
                        reply.nak(raw.kind, raw.data, &new_peer.to_be_bytes());
                        self.want_magic = Some(self.fresh_magic());
                    } else if m == 0 {
                        let new_peer = self.fresh_magic();
                        reply.nak(raw.kind, raw.data, &new_peer.to_be_bytes());
                    } else {
                        peer.peer_magic = m;
                    }
                }
                LcpOption::ProtocolFieldCompression if self.config.pfc => peer.tx_pfc = true,
                LcpOption::AddressControlFieldCompression if self.config.acfc => {
                    peer.tx_acfc = true
                }
                // Quality protocols, callback, multilink, FCS alternatives, padding, unknown:
                // not implemented, so rejected with their exact bytes.
                _ => reply.reject(raw.kind, raw.data),
            }
        }
        if looped {
            self.loopback_hits = self.loopback_hits.saturating_add(1);
            if self.loopback_hits >= LOOPBACK_THRESHOLD {
                self.loopback = true;
            }
        } else {
            self.loopback_hits = 0;
        }
        self.peer = peer;
        Ok(())
    }

    fn knows_code(&self, code: u8) -> bool {
        matches!(
            LcpCode::from(code),
            LcpCode::ProtocolReject
                | LcpCode::EchoRequest
                | LcpCode::EchoReply
                | LcpCode::DiscardRequest
                | LcpCode::Identification
                | LcpCode::TimeRemaining
        )
    }
}

/// An event for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcpEvent {
    /// A layer event of the automaton (tlu/tld/tls/tlf).
    Layer(FsmEvent),
    /// The peer Protocol-Rejected this protocol.
    ProtocolRejected(u16),
    /// Echo-Requests went unanswered `echo_failures` times.
    EchoTimeout,
    /// Our magic number kept coming back.
    LoopbackDetected,
    /// The peer would not do any authentication method we demand.
    AuthRefused,
}

/// LCP: the automaton plus Echo keepalive and Protocol-Reject.
#[derive(Debug)]
pub struct Lcp {
    fsm: Fsm<LcpNegotiator>,
    events: VecDeque<LcpEvent>,
    echo_deadline: Option<Instant>,
    echo_outstanding: u8,
    /// The peer Code-Rejected Echo-Request: stop the keepalive.
    echo_rejected: bool,
    echo_replies: u32,
    auth_refused_reported: bool,
}

impl Lcp {
    /// A new LCP in the Initial state.
    pub fn new(config: LcpConfig, rng: ChallengeRng) -> Self {
        let fsm_config = config.fsm;
        Lcp {
            fsm: Fsm::new(LcpNegotiator::new(config, rng), fsm_config),
            events: VecDeque::new(),
            echo_deadline: None,
            echo_outstanding: 0,
            echo_rejected: false,
            echo_replies: 0,
            auth_refused_reported: false,
        }
    }

    /// The automaton (state, counters, statistics).
    pub fn fsm(&self) -> &Fsm<LcpNegotiator> {
        &self.fsm
    }

    /// The automaton, mutably (Up/Down/Open/Close).
    pub fn fsm_mut(&mut self) -> &mut Fsm<LcpNegotiator> {
        &mut self.fsm
    }

    /// The negotiated link parameters.
    pub fn link(&self) -> LinkParams {
        self.fsm.negotiator().link()
    }

    /// Echo-Replies received so far.
    pub fn echo_replies(&self) -> u32 {
        self.echo_replies
    }

    /// Handles one LCP packet (the Information field of a c021 frame).
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        let extra = self.fsm.handle_packet(now, packet);
        if let Some(extra) = extra {
            let (code, id, data) = (extra.code, extra.identifier, extra.data.to_vec());
            self.handle_extra(now, code, id, &data);
        }
        self.after_input(now);
    }

    fn handle_extra(&mut self, now: Instant, code: u8, id: u8, data: &[u8]) {
        match LcpCode::from(code) {
            // A permitted Code-Reject (RXJ+) of Echo-Request stops the keepalive.
            LcpCode::CodeReject if data.first() == Some(&u8::from(LcpCode::EchoRequest)) => {
                self.echo_rejected = true;
                self.echo_deadline = None;
            }
            LcpCode::ProtocolReject => {
                if let [hi, lo, ..] = data {
                    let proto = u16::from_be_bytes([*hi, *lo]);
                    if proto == u16::from(Protocol::Lcp) {
                        // LCP itself rejected: nothing can work (RXJ-).
                        self.fsm.reject_received(now, true);
                    } else {
                        self.fsm.reject_received(now, false);
                        self.events.push_back(LcpEvent::ProtocolRejected(proto));
                    }
                }
            }
            LcpCode::EchoRequest if self.fsm.echo_allowed() => {
                // RXR: ser. The reply carries our magic number and the request's data.
                let (magic, rest) = split_magic(data);
                if magic != 0 && magic == self.fsm.negotiator().local_magic() {
                    self.events.push_back(LcpEvent::LoopbackDetected);
                    return;
                }
                let mut reply = self.fsm.negotiator().local_magic().to_be_bytes().to_vec();
                reply.extend_from_slice(rest);
                self.fsm
                    .send_packet(u8::from(LcpCode::EchoReply), Some(id), &reply);
            }
            LcpCode::EchoReply if self.fsm.echo_allowed() => {
                let (magic, _) = split_magic(data);
                if magic != 0 && magic == self.fsm.negotiator().local_magic() {
                    self.events.push_back(LcpEvent::LoopbackDetected);
                    return;
                }
                self.echo_outstanding = 0;
                self.echo_replies = self.echo_replies.saturating_add(1);
            }
            // Discard-Request, Identification, Time-Remaining, and RXR outside Opened: ignored.
            _ => {}
        }
    }

    /// Sends a Protocol-Reject for a frame of `protocol` with `info` (cut to fit the MRU).
    pub fn send_protocol_reject(&mut self, protocol: u16, info: &[u8]) {
        // RFC 1661 5.7: "Protocol-Reject packets can only be sent in the LCP Opened state."
        if !self.fsm.is_opened() {
            return;
        }
        let room = usize::from(self.link().tx_mru).saturating_sub(6);
        let mut data = protocol.to_be_bytes().to_vec();
        data.extend_from_slice(info.get(..room).unwrap_or(info));
        self.fsm
            .send_packet(u8::from(LcpCode::ProtocolReject), None, &data);
    }

    /// The restart and echo timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.fsm.handle_timeout(now);
        if let Some(d) = self.echo_deadline {
            if d <= now && self.fsm.is_opened() {
                if self.echo_outstanding >= self.fsm.negotiator().config().echo_failures {
                    self.echo_deadline = None;
                    self.events.push_back(LcpEvent::EchoTimeout);
                } else {
                    self.echo_outstanding += 1;
                    let magic = self.fsm.negotiator().local_magic().to_be_bytes();
                    self.fsm
                        .send_packet(u8::from(LcpCode::EchoRequest), None, &magic);
                    self.echo_deadline = self
                        .fsm
                        .negotiator()
                        .config()
                        .echo_interval
                        .map(|i| now + i);
                }
            }
        }
        self.after_input(now);
    }

    fn after_input(&mut self, now: Instant) {
        while let Some(ev) = self.fsm.poll_event() {
            match ev {
                FsmEvent::Up => {
                    self.echo_outstanding = 0;
                    self.echo_deadline = if self.echo_rejected {
                        None
                    } else {
                        self.fsm
                            .negotiator()
                            .config()
                            .echo_interval
                            .map(|i| now + i)
                    };
                }
                FsmEvent::Down | FsmEvent::Finished(_) => self.echo_deadline = None,
                FsmEvent::Started => {}
            }
            self.events.push_back(LcpEvent::Layer(ev));
        }
        if self.fsm.negotiator().loopback_detected() {
            self.events.push_back(LcpEvent::LoopbackDetected);
            self.fsm.negotiator_mut().loopback = false;
        }
        let refused = self.fsm.negotiator().auth_refused();
        if refused && !self.auth_refused_reported {
            self.events.push_back(LcpEvent::AuthRefused);
        }
        // Reported once per negotiation.
        self.auth_refused_reported = refused;
    }

    /// The next LCP packet to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.fsm.poll_transmit()
    }

    /// The earliest deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.fsm.poll_timeout(), self.echo_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<LcpEvent> {
        self.events.pop_front()
    }
}

/// Splits Echo data into the magic number and the rest (0 when too short).
fn split_magic(data: &[u8]) -> (u32, &[u8]) {
    match data {
        [a, b, c, d, rest @ ..] => (u32::from_be_bytes([*a, *b, *c, *d]), rest),
        _ => (0, &[]),
    }
}

#[cfg(test)]
mod test {
    use super::super::fsm::{build_packet, State, CONFIGURE_REJECT, CONFIGURE_REQUEST};
    use super::*;

    fn lcp(config: LcpConfig, seed: u8) -> Lcp {
        Lcp::new(config, ChallengeRng::from_seed([seed; 32]))
    }

    fn start(l: &mut Lcp, now: Instant) {
        l.fsm_mut().up(now);
        l.fsm_mut().open(now);
    }

    /// Moves packets both ways until both sides are quiet.
    fn exchange(a: &mut Lcp, b: &mut Lcp, now: Instant) {
        for _ in 0..50 {
            let mut moved = false;
            while let Some(p) = a.poll_transmit() {
                b.handle_packet(now, &p);
                moved = true;
            }
            while let Some(p) = b.poll_transmit() {
                a.handle_packet(now, &p);
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("no convergence");
    }

    fn events(l: &mut Lcp) -> Vec<LcpEvent> {
        std::iter::from_fn(|| l.poll_event()).collect()
    }

    fn server() -> LcpConfig {
        LcpConfig {
            require_auth: vec![AuthMethod::MsChapV2, AuthMethod::ChapMd5],
            accept_auth: vec![],
            ..LcpConfig::default()
        }
    }

    #[test]
    fn client_and_server_open_with_mschapv2() {
        let now = Instant::now();
        let (mut c, mut s) = (lcp(LcpConfig::default(), 1), lcp(server(), 2));
        start(&mut c, now);
        start(&mut s, now);
        exchange(&mut c, &mut s, now);
        assert_eq!(c.fsm().state(), State::Opened);
        assert_eq!(s.fsm().state(), State::Opened);
        let (cl, sl) = (c.link(), s.link());
        assert_eq!(cl.auth_self, Some(AuthMethod::MsChapV2));
        assert_eq!(sl.auth_peer, Some(AuthMethod::MsChapV2));
        assert_eq!(cl.auth_peer, None);
        assert_eq!((cl.tx_accm, cl.rx_accm), (0, 0));
        assert!(cl.tx_pfc && cl.tx_acfc && cl.rx_pfc && cl.rx_acfc);
        assert_eq!(cl.peer_magic, sl.local_magic);
        assert_ne!(cl.local_magic, sl.local_magic);
        assert!(events(&mut c).contains(&LcpEvent::Layer(FsmEvent::Up)));
    }

    #[test]
    fn auth_nak_walks_down_to_a_common_method() {
        let now = Instant::now();
        let client = LcpConfig {
            accept_auth: vec![AuthMethod::ChapMd5, AuthMethod::Pap],
            ..LcpConfig::default()
        };
        let (mut c, mut s) = (lcp(client, 1), lcp(server(), 2));
        start(&mut c, now);
        start(&mut s, now);
        exchange(&mut c, &mut s, now);
        assert_eq!(s.fsm().state(), State::Opened);
        assert_eq!(s.link().auth_peer, Some(AuthMethod::ChapMd5));
        assert_eq!(c.link().auth_self, Some(AuthMethod::ChapMd5));
    }

    #[test]
    fn auth_refused_when_no_common_method() {
        let now = Instant::now();
        let client = LcpConfig {
            accept_auth: vec![AuthMethod::Pap],
            ..LcpConfig::default()
        };
        let (mut c, mut s) = (lcp(client, 1), lcp(server(), 2));
        start(&mut c, now);
        start(&mut s, now);
        exchange(&mut c, &mut s, now);
        assert!(events(&mut s).contains(&LcpEvent::AuthRefused));
    }

    #[test]
    fn unknown_and_duplicate_options_are_rejected_exactly() {
        let now = Instant::now();
        let mut s = lcp(server(), 2);
        start(&mut s, now);
        let _ = s.poll_transmit();
        // MRU 1400, unknown type 0x42 with 3 data octets, callback (13), MRU again.
        let opts = [
            1, 4, 0x05, 0x78, 0x42, 5, 1, 2, 3, 13, 3, 6, 1, 4, 0x05, 0xdc,
        ];
        s.handle_packet(now, &build_packet(CONFIGURE_REQUEST, 9, &opts));
        let reply = s.poll_transmit().unwrap();
        assert_eq!(reply[0], CONFIGURE_REJECT);
        assert_eq!(reply[1], 9);
        assert_eq!(&reply[4..], &[0x42, 5, 1, 2, 3, 13, 3, 6, 1, 4, 0x05, 0xdc]);
    }

    /// A peer that asks for an MRU of 10 again and again: Max-Failure (5) Naks suggesting
    /// 1500, then the option is rejected (RFC 1661 4.6), byte-exact.
    #[test]
    fn naks_that_never_converge_become_a_reject() {
        let now = Instant::now();
        let mut s = lcp(server(), 2);
        start(&mut s, now);
        let _ = s.poll_transmit();
        let mut codes = Vec::new();
        for id in 0..7u8 {
            s.handle_packet(now, &build_packet(CONFIGURE_REQUEST, id, &[1, 4, 0, 10]));
            let reply = s.poll_transmit().unwrap();
            codes.push(reply[0]);
            if reply[0] == 3 {
                assert_eq!(&reply[4..], &[1, 4, 0x05, 0xdc]);
            } else {
                assert_eq!(&reply[4..], &[1, 4, 0, 10]);
            }
        }
        assert_eq!(codes, vec![3, 3, 3, 3, 3, 4, 4]);
    }

    #[test]
    fn looped_back_line_is_detected() {
        let now = Instant::now();
        let mut l = lcp(server(), 3);
        start(&mut l, now);
        let mut seen = false;
        for _ in 0..40 {
            let Some(p) = l.poll_transmit() else { break };
            l.handle_packet(now, &p);
            if events(&mut l).contains(&LcpEvent::LoopbackDetected) {
                seen = true;
                break;
            }
        }
        assert!(seen);
    }

    #[test]
    fn echo_keepalive_and_timeout_on_virtual_time() {
        let mut now = Instant::now();
        let (mut c, mut s) = (lcp(LcpConfig::default(), 1), lcp(server(), 2));
        start(&mut c, now);
        start(&mut s, now);
        exchange(&mut c, &mut s, now);
        events(&mut c);
        // Answered echoes keep the link.
        for _ in 0..3 {
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
            s.handle_timeout(now);
            exchange(&mut c, &mut s, now);
        }
        assert!(c.echo_replies() >= 3);
        assert!(events(&mut c).is_empty());
        // A silent peer: three unanswered requests, then EchoTimeout.
        let mut sent = 0;
        loop {
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
            sent += std::iter::from_fn(|| c.poll_transmit()).count();
            if events(&mut c).contains(&LcpEvent::EchoTimeout) {
                break;
            }
            assert!(sent < 10);
        }
        assert_eq!(sent, 3);
    }

    #[test]
    fn protocol_reject_is_reported_and_built() {
        let now = Instant::now();
        let (mut c, mut s) = (lcp(LcpConfig::default(), 1), lcp(server(), 2));
        start(&mut c, now);
        start(&mut s, now);
        exchange(&mut c, &mut s, now);
        events(&mut c);
        s.send_protocol_reject(0x80fd, &[1, 1, 0, 4]);
        let p = s.poll_transmit().unwrap();
        assert_eq!(&p[4..], &[0x80, 0xfd, 1, 1, 0, 4]);
        c.handle_packet(now, &p);
        assert_eq!(events(&mut c), vec![LcpEvent::ProtocolRejected(0x80fd)]);
        assert_eq!(c.fsm().state(), State::Opened);
    }

    #[test]
    fn code_reject_for_unknown_code() {
        let now = Instant::now();
        let (mut c, mut s) = (lcp(LcpConfig::default(), 1), lcp(server(), 2));
        start(&mut c, now);
        start(&mut s, now);
        exchange(&mut c, &mut s, now);
        c.handle_packet(now, &[0x55, 1, 0, 4]);
        let p = c.poll_transmit().unwrap();
        assert_eq!(p[0], 7);
        assert_eq!(&p[4..], &[0x55, 1, 0, 4]);
    }

    /// A Configure-Request laid out like a Windows PPTP client's (MRU 1400, magic, PFC, ACFC,
    /// Callback operation 6; built by hand, not captured): the server rejects only the
    /// callback, then acks the request without it.
    #[test]
    fn windows_client_request_with_callback() {
        let now = Instant::now();
        let mut s = lcp(server(), 2);
        start(&mut s, now);
        let _ = s.poll_transmit();
        let req = [
            0x01, 0x00, 0x00, 0x15, 0x01, 0x04, 0x05, 0x78, 0x05, 0x06, 0x2b, 0x5e, 0x71, 0x41,
            0x07, 0x02, 0x08, 0x02, 0x0d, 0x03, 0x06,
        ];
        s.handle_packet(now, &req);
        let reply = s.poll_transmit().unwrap();
        assert_eq!(reply, vec![0x04, 0x00, 0x00, 0x07, 0x0d, 0x03, 0x06]);
        let again = [
            0x01, 0x01, 0x00, 0x12, 0x01, 0x04, 0x05, 0x78, 0x05, 0x06, 0x2b, 0x5e, 0x71, 0x41,
            0x07, 0x02, 0x08, 0x02,
        ];
        s.handle_packet(now, &again);
        let ack = s.poll_transmit().unwrap();
        assert_eq!(ack[0], 2);
        assert_eq!(&ack[4..], &again[4..]);
    }
}
