//! The PPP engine: one object per call that ties LCP, authentication, CCP and IPCP together
//! through the RFC 1661 phases (Dead, Establish, Authenticate, Network, Terminate), in the
//! client or the server role chosen by a [`Policy`].
//!
//! Sans-IO (STYLE habit 3): frames come in through [`Engine::handle_frame`] with `now`,
//! timers through [`Engine::handle_timeout`]; frames go out through
//! [`Engine::poll_transmit`], events through [`Engine::poll_event`] and the next deadline
//! through [`Engine::poll_timeout`]. The shell calls `handle_*`, then drains
//! `poll_transmit`, `poll_event`, and re-arms one timer to `poll_timeout`.
//!
//! Network-layer packets (IPv4 0x0021, CCP-compressed 0x00fd) pass only when IPCP is Opened
//! and, if the policy requires MPPE, CCP is Opened with encryption: before that they are
//! dropped in both directions ([`Engine::send_network`] refuses, inbound ones are counted).
//!
//! CCP Reset-Request and Reset-Ack are handed to the compression/encryption layer as
//! [`Event::CcpReset`] events, and that layer answers through [`Engine::send_ccp_reset`].

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
use std::sync::Arc;
use std::time::Instant;

use super::auth::chap::{ChapAuthenticator, ChapPeer, ChapVariant};
use super::auth::pap::{PapAuthenticator, PapPeer};
use super::auth::{
    AuthEvent, AuthFailure, AuthMaterial, AuthenticatorPolicy, ChallengeRng, ClientCredentials,
    CredentialStore, Outbox,
};
use super::ccp::{
    CcpConfig, CcpFailure, CcpNegotiator, CcpResult, MppeMode, RESET_ACK, RESET_REQUEST,
};
use super::fsm::{FinishReason, Fsm, FsmConfig, FsmEvent, State};
use super::ipcp::{IpcpConfig, IpcpNegotiator, IpcpResult};
use super::lcp::{AuthMethod, Lcp, LcpConfig, LcpEvent, LinkParams};
use super::packet::{Compression, FrameRepr, Protocol};
use crate::mppe::keys::{self, Direction, KeyStrength, StartKey};
use crate::mppe::pipeline::{CcpError, PipelineConfig, Receiver, Transmitter};
use crate::mppe::MppeOptions;

/// Which end of the link this engine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The dial-in client: authenticates itself, takes an address.
    Client,
    /// The PNS / access server: authenticates the peer, assigns an address.
    Server,
}

/// Everything one side needs to know (shared between calls through an `Arc`).
#[derive(Debug, Clone)]
pub struct Policy {
    /// The role.
    pub role: Role,
    /// LCP options (the authenticator demands methods in `lcp.require_auth`).
    pub lcp: LcpConfig,
    /// Authenticator policy (server role).
    pub auth: AuthenticatorPolicy,
    /// Our credentials (client role).
    pub credentials: Option<ClientCredentials>,
    /// IPCP.
    pub ipcp: IpcpConfig,
    /// CCP / MPPE.
    pub ccp: CcpConfig,
    /// Timers and counters of IPCP and CCP.
    pub ncp_fsm: FsmConfig,
}

impl Policy {
    /// A client policy with credentials and defaults elsewhere.
    pub fn client(credentials: ClientCredentials) -> Self {
        Policy {
            role: Role::Client,
            lcp: LcpConfig::default(),
            auth: AuthenticatorPolicy::default(),
            credentials: Some(credentials),
            ipcp: IpcpConfig {
                request_dns: true,
                ..IpcpConfig::default()
            },
            ccp: CcpConfig::default(),
            ncp_fsm: FsmConfig::default(),
        }
    }

    /// A server policy demanding `methods`, with our and the peer's address.
    pub fn server(methods: Vec<AuthMethod>, ipcp: IpcpConfig) -> Self {
        Policy {
            role: Role::Server,
            lcp: LcpConfig {
                require_auth: methods,
                accept_auth: Vec::new(),
                ..LcpConfig::default()
            },
            auth: AuthenticatorPolicy::default(),
            credentials: None,
            ipcp,
            ccp: CcpConfig::default(),
            ncp_fsm: FsmConfig::default(),
        }
    }
}

/// The RFC 1661 section 3 phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Link Dead.
    Dead,
    /// Link Establishment (LCP negotiating).
    Establish,
    /// Authentication.
    Authenticate,
    /// Network-Layer Protocol (CCP, IPCP).
    Network,
    /// Link Termination.
    Terminate,
}

/// Why the link went down, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DownReason {
    /// We closed it ([`Engine::close`]).
    #[error("closed locally")]
    Closed,
    /// The lower layer (the call) went away.
    #[error("lower layer down")]
    LowerLayerDown,
    /// LCP got no answer within Max-Configure.
    #[error("LCP negotiation timed out (Max-Configure Configure-Requests unanswered)")]
    LcpTimeout,
    /// The peer kept Naking our LCP options and never acked.
    #[error("LCP negotiation did not converge (the peer Naked every request)")]
    LcpNotConverging,
    /// The peer sent Terminate-Request.
    #[error("terminated by the peer")]
    PeerTerminated,
    /// Our Terminate-Request went unanswered (the link is down anyway).
    #[error("terminate not acknowledged")]
    TerminateTimeout,
    /// The peer rejected a code or protocol LCP cannot do without.
    #[error("peer rejected an essential LCP code or protocol")]
    CatastrophicReject,
    /// Echo keepalive failed.
    #[error("peer stopped answering LCP Echo-Requests")]
    EchoTimeout,
    /// Our magic number came back: the line is looped.
    #[error("looped-back line detected (magic number)")]
    Loopback,
    /// The peer would not do any authentication method we demand.
    #[error("peer refused every authentication protocol we require")]
    AuthRefused,
    /// The peer demands authentication and we have no credentials.
    #[error("peer demands authentication but no credentials are configured")]
    NoCredentials,
    /// Authentication failed.
    #[error("authentication failed: {0}")]
    AuthFailed(AuthFailure),
    /// CCP could not meet the MPPE policy.
    #[error("CCP: {0}")]
    Ccp(CcpFailure),
    /// MPPE is required but CCP did not open.
    #[error("MPPE required but CCP negotiation failed (no answer or rejected)")]
    CcpTimeout,
    /// IPCP did not open.
    #[error("IPCP negotiation failed")]
    IpcpFailed,
    /// The peer Protocol-Rejected IPCP.
    #[error("peer rejected IPCP")]
    IpcpRejected,
}

/// An event for the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// LCP is Opened with these parameters (the framer and the PAC use them).
    LinkUp(LinkParams),
    /// Authentication succeeded (server: the peer's user name; client: our own name).
    Authenticated {
        /// The user.
        user: Vec<u8>,
    },
    /// CCP Opened with these bits.
    CcpUp(CcpResult),
    /// CCP went without MPPE (policy allowed it), and why.
    CcpDown,
    /// A CCP Reset-Request (`ack == false`) or Reset-Ack from the peer, for MPPE/MPPC.
    CcpReset {
        /// Reset-Ack rather than Reset-Request.
        ack: bool,
        /// The identifier.
        id: u8,
    },
    /// IPCP Opened: network-layer packets may flow.
    IpUp(IpcpResult),
    /// IPCP went down.
    IpDown,
    /// The link is down, and why.
    LinkDown(DownReason),
}

/// A network-layer packet that passed the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPacket<'a> {
    /// The protocol (0x0021 IPv4, 0x00fd compressed/encrypted).
    pub protocol: Protocol,
    /// The payload.
    pub payload: &'a [u8],
}

/// Why [`Engine::send_network`] refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// IPCP (or, with MPPE required, CCP) is not Opened yet.
    #[error("network layer not open")]
    NotOpen,
    /// Plain IPv4 where our direction is MPPE-encrypted: it must go through the transform.
    #[error("plain packets not allowed on an encrypted link")]
    MustEncrypt,
}

/// Counters for the status page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Frames that did not parse.
    pub malformed: u32,
    /// Network packets dropped at the gate.
    pub gated: u32,
    /// Frames Protocol-Rejected.
    pub protocol_rejected: u32,
}

#[derive(Debug)]
enum Authenticator {
    Pap(PapAuthenticator),
    Chap(ChapAuthenticator),
}

#[derive(Debug)]
enum AuthPeer {
    Pap(PapPeer),
    Chap(ChapPeer),
}

/// One PPP link (one call).
#[derive(Debug)]
pub struct Engine {
    policy: Arc<Policy>,
    store: Option<Arc<dyn CredentialStore + Send + Sync>>,
    rng: ChallengeRng,
    phase: Phase,
    lcp: Lcp,
    authenticator: Option<Authenticator>,
    peer: Option<AuthPeer>,
    /// Authentication outcome per direction: `None` pending, `Some(true)` done.
    auth_peer_ok: bool,
    auth_self_ok: bool,
    material: AuthMaterial,
    user: Option<Vec<u8>>,
    ipcp: Fsm<IpcpNegotiator>,
    ccp: Option<Fsm<CcpNegotiator>>,
    ccp_result: Option<CcpResult>,
    /// We Protocol-Rejected the peer's CCP (our CCP/MPPE/MPPC is disabled).
    ccp_refused: bool,
    /// The text of the peer's last LCP Terminate-Request (sanitised, bounded).
    peer_terminate: Option<String>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    down_reason: Option<DownReason>,
    stats: EngineStats,
}

impl core::fmt::Debug for dyn CredentialStore + Send + Sync {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CredentialStore")
    }
}

impl Engine {
    /// A new engine in the Dead phase. `seed` must come from the OS CSPRNG in production;
    /// the server role needs a `store`.
    pub fn new(
        policy: Arc<Policy>,
        store: Option<Arc<dyn CredentialStore + Send + Sync>>,
        seed: [u8; 32],
    ) -> Self {
        let mut rng = ChallengeRng::from_seed(seed);
        let lcp = Lcp::new(policy.lcp.clone(), ChallengeRng::from_seed(rng.array()));
        let ipcp = Fsm::new(IpcpNegotiator::new(policy.ipcp), policy.ncp_fsm);
        Engine {
            policy,
            store,
            rng,
            phase: Phase::Dead,
            lcp,
            authenticator: None,
            peer: None,
            auth_peer_ok: false,
            auth_self_ok: false,
            material: AuthMaterial::None,
            user: None,
            ipcp,
            ccp: None,
            ccp_result: None,
            ccp_refused: false,
            peer_terminate: None,
            tx: VecDeque::new(),
            events: VecDeque::new(),
            down_reason: None,
            stats: EngineStats::default(),
        }
    }

    // ---- getters ---------------------------------------------------------------------------

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The negotiated LCP parameters.
    pub fn link(&self) -> LinkParams {
        self.lcp.link()
    }

    /// The LCP automaton state.
    pub fn lcp_state(&self) -> State {
        self.lcp.fsm().state()
    }

    /// The IPCP automaton state.
    pub fn ipcp_state(&self) -> State {
        self.ipcp.state()
    }

    /// The CCP automaton state (`None` before the Network phase).
    pub fn ccp_state(&self) -> Option<State> {
        self.ccp.as_ref().map(Fsm::state)
    }

    /// The authenticated user (server role) or our name (client role).
    pub fn user(&self) -> Option<&[u8]> {
        self.user.as_deref()
    }

    /// What MPPE needs, after MS-CHAP succeeded.
    pub fn auth_material(&self) -> &AuthMaterial {
        &self.material
    }

    /// The agreed CCP bits, once CCP is Opened.
    pub fn ccp_result(&self) -> Option<CcpResult> {
        self.ccp_result
    }

    /// The IPCP outcome.
    pub fn ipcp_result(&self) -> IpcpResult {
        self.ipcp.negotiator().result()
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Why the link went down, once it did.
    pub fn down_reason(&self) -> Option<&DownReason> {
        self.down_reason.as_ref()
    }

    /// What else this side knows about why the link went down, for the operator's log: the
    /// negotiation this side refused (the peer's CCP while ours is disabled) and the text of
    /// the peer's Terminate-Request. `None` when there is nothing to add to
    /// [`Engine::down_reason`].
    pub fn down_detail(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.ccp_refused {
            parts.push(
                "peer asked for CCP (MPPE/MPPC), which is disabled here (Protocol-Reject sent)"
                    .to_string(),
            );
        }
        if let Some(t) = &self.peer_terminate {
            parts.push(format!("peer's Terminate-Request: {t:?}"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Whether network-layer packets may pass now.
    pub fn network_open(&self) -> bool {
        self.phase == Phase::Network && self.ipcp.is_opened() && self.mppe_gate_open()
    }

    fn mppe_gate_open(&self) -> bool {
        if self.policy.ccp.mppe != MppeMode::Required {
            return true;
        }
        self.ccp_result.is_some_and(|r| r.encrypted())
    }

    fn tx_encrypted(&self) -> bool {
        self.ccp_result.is_some_and(|r| r.tx_encrypted())
    }

    fn rx_encrypted(&self) -> bool {
        self.ccp_result.is_some_and(|r| r.rx_encrypted())
    }

    /// Builds the MPPC/MPPE data path for the negotiated option 18 bits and the MS-CHAP key
    /// material (RFC 3079): a transmitter for what we send and a receiver for what the peer
    /// sends. The shell owns them (they are the compression state, kept out of the engine)
    /// and routes [`Event::CcpReset`] to them.
    pub fn mppe_data_path(&self) -> Result<(Transmitter, Receiver), CcpError> {
        let result = self.ccp_result.ok_or(CcpError::NothingNegotiated)?;
        let tx_cfg = PipelineConfig::from_options(&MppeOptions::from_bits(result.tx.0))?;
        let rx_cfg = PipelineConfig::from_options(&MppeOptions::from_bits(result.rx.0))?;
        let tx_key = tx_cfg.mppe.and_then(|s| self.start_key(s, Direction::Send));
        let rx_key = rx_cfg
            .mppe
            .and_then(|s| self.start_key(s, Direction::Receive));
        Ok((
            Transmitter::new(&tx_cfg, tx_key)?,
            Receiver::new(&rx_cfg, rx_key)?,
        ))
    }

    fn start_key(&self, strength: KeyStrength, direction: Direction) -> Option<StartKey> {
        let role = match self.policy.role {
            Role::Server => keys::Role::Server,
            Role::Client => keys::Role::Client,
        };
        match &self.material {
            AuthMaterial::None => None,
            AuthMaterial::MsChapV2 {
                password_hash_hash,
                nt_response,
            } => Some(keys::mschapv2_start_key(
                password_hash_hash,
                nt_response,
                strength,
                direction,
                role,
            )),
            AuthMaterial::MsChapV1 {
                password_hash_hash,
                challenge,
                lm_password_hash,
                ..
            } => {
                let lm = match (strength, lm_password_hash) {
                    (KeyStrength::Bits128, _) => [0; 16],
                    (_, Some(lm)) => *lm,
                    // 40/56-bit MS-CHAPv1 keys need the LM hash, unknown with an NT-hash store.
                    (_, None) => return None,
                };
                Some(keys::mschapv1_start_key(
                    strength,
                    &lm,
                    password_hash_hash,
                    challenge,
                ))
            }
        }
    }

    // ---- commands -------------------------------------------------------------------------

    /// The call is up: start LCP (lower layer Up, administrative Open).
    pub fn open(&mut self, now: Instant) {
        self.down_reason = None;
        self.ccp_refused = false;
        self.peer_terminate = None;
        self.phase = Phase::Establish;
        self.lcp.fsm_mut().open(now);
        self.lcp.fsm_mut().up(now);
        self.pump(now);
    }

    /// Takes the link down gracefully (Terminate-Request with `reason` as text).
    pub fn close(&mut self, now: Instant, reason: &str) {
        self.fail(now, DownReason::Closed, reason);
    }

    /// The call is gone: everything stops at once.
    pub fn lower_down(&mut self, now: Instant) {
        self.set_reason(DownReason::LowerLayerDown);
        self.lcp.fsm_mut().down(now);
        self.lcp.fsm_mut().close(now, b"");
        self.pump(now);
        if self.phase != Phase::Dead {
            self.enter_dead();
        }
    }

    /// Sends a CCP Reset-Request (`ack == false`, fresh identifier) or a Reset-Ack answering
    /// `id`, for the MPPE/MPPC layer.
    pub fn send_ccp_reset(&mut self, ack: bool, id: Option<u8>) {
        if let Some(ccp) = self.ccp.as_mut().filter(|c| c.is_opened()) {
            let code = if ack { RESET_ACK } else { RESET_REQUEST };
            let _ = ccp.send_packet(code, id, &[]);
        }
    }

    /// Frames a network-layer packet for sending, if the gate is open.
    pub fn send_network(
        &mut self,
        protocol: Protocol,
        payload: &[u8],
    ) -> Result<Vec<u8>, SendError> {
        if !self.network_open() {
            return Err(SendError::NotOpen);
        }
        if self.tx_encrypted() && protocol != Protocol::CompressedDatagram {
            return Err(SendError::MustEncrypt);
        }
        Ok(FrameRepr { protocol, payload }.to_vec(self.compression()))
    }

    fn compression(&self) -> Compression {
        let l = self.lcp.link();
        Compression {
            address_control: l.tx_acfc,
            protocol: l.tx_pfc,
        }
    }

    // ---- inputs ---------------------------------------------------------------------------

    /// Handles one received PPP frame (address/control optional, protocol 1 or 2 octets).
    /// Returns a network-layer packet when one passed the gate.
    pub fn handle_frame<'a>(&mut self, now: Instant, frame: &'a [u8]) -> Option<NetworkPacket<'a>> {
        let Ok(repr) = FrameRepr::parse(frame) else {
            self.stats.malformed += 1;
            return None;
        };
        let mut out = None;
        match repr.protocol {
            Protocol::Lcp => {
                self.note_terminate_request(repr.payload);
                self.lcp.handle_packet(now, repr.payload)
            }
            // RFC 1661 section 3.2: "Any non-LCP packets received during this phase MUST be
            // silently discarded" (Establish); the same holds in Dead.
            _ if matches!(self.phase, Phase::Dead | Phase::Establish) => {}
            Protocol::Pap | Protocol::Chap => self.handle_auth(now, repr.protocol, repr.payload),
            // Network-layer control protocols only once authentication is done (RFC 1661 3.4).
            _ if self.phase != Phase::Network => {}
            Protocol::Ipcp => {
                let _ = self.ipcp.handle_packet(now, repr.payload);
            }
            Protocol::Ccp => match self.ccp.as_mut() {
                Some(ccp) => {
                    if let Some(extra) = ccp.handle_packet(now, repr.payload) {
                        if matches!(extra.code, RESET_REQUEST | RESET_ACK) && ccp.is_opened() {
                            self.events.push_back(Event::CcpReset {
                                ack: extra.code == RESET_ACK,
                                id: extra.identifier,
                            });
                        }
                    }
                }
                None => {
                    self.ccp_refused = true;
                    self.protocol_reject(repr.protocol, repr.payload)
                }
            },
            Protocol::Ipv4 | Protocol::CompressedDatagram => {
                let plain_on_encrypted = self.rx_encrypted() && repr.protocol == Protocol::Ipv4;
                if self.network_open() && !plain_on_encrypted {
                    out = Some(NetworkPacket {
                        protocol: repr.protocol,
                        payload: repr.payload,
                    });
                } else {
                    self.stats.gated += 1;
                }
            }
            // IPv6CP, ECP, VJ, multilink, anything else: not supported here.
            other => self.protocol_reject(other, repr.payload),
        }
        self.pump(now);
        out
    }

    fn protocol_reject(&mut self, protocol: Protocol, payload: &[u8]) {
        self.stats.protocol_rejected += 1;
        self.lcp.send_protocol_reject(u16::from(protocol), payload);
    }

    fn handle_auth(&mut self, now: Instant, protocol: Protocol, packet: &[u8]) {
        let code = packet.first().copied().unwrap_or(0);
        // PAP: 1 goes to the authenticator, 2/3 to the peer. CHAP: 1/3/4 to the peer,
        // 2 and the MS-CHAP change-password codes to the authenticator.
        let to_authenticator = match protocol {
            Protocol::Pap => code == 1,
            _ => !matches!(code, 1 | 3 | 4),
        };
        let store = self.store.clone();
        match (to_authenticator, &mut self.authenticator, &mut self.peer) {
            (true, Some(Authenticator::Pap(a)), _) if protocol == Protocol::Pap => {
                if let Some(store) = store.as_deref() {
                    a.handle_packet(now, packet, store);
                }
            }
            (true, Some(Authenticator::Chap(a)), _) if protocol == Protocol::Chap => {
                if let Some(store) = store.as_deref() {
                    a.handle_packet(now, packet, store, &mut self.rng);
                }
            }
            (false, _, Some(AuthPeer::Pap(p))) if protocol == Protocol::Pap => {
                p.handle_packet(now, packet)
            }
            (false, _, Some(AuthPeer::Chap(p))) if protocol == Protocol::Chap => {
                p.handle_packet(now, packet, &mut self.rng)
            }
            _ => {}
        }
    }

    /// Fires whatever timers are due. Calling it early is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.lcp.handle_timeout(now);
        match &mut self.authenticator {
            Some(Authenticator::Pap(a)) => a.handle_timeout(now),
            Some(Authenticator::Chap(a)) => a.handle_timeout(now),
            None => {}
        }
        match &mut self.peer {
            Some(AuthPeer::Pap(p)) => p.handle_timeout(now),
            Some(AuthPeer::Chap(p)) => p.handle_timeout(now),
            None => {}
        }
        self.ipcp.handle_timeout(now);
        if let Some(ccp) = self.ccp.as_mut() {
            ccp.handle_timeout(now);
        }
        self.pump(now);
    }

    // ---- outputs --------------------------------------------------------------------------

    /// The next frame to send (address/control and protocol per the negotiated compression).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let f = self.tx.pop_front();
        if self.tx.is_empty() {
            // Idle links hold no queue memory (issue 3: a small object per call).
            self.tx = VecDeque::new();
        }
        f
    }

    /// The earliest deadline of every timer.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let auth_a = match &self.authenticator {
            Some(Authenticator::Pap(a)) => a.deadline(),
            Some(Authenticator::Chap(a)) => a.deadline(),
            None => None,
        };
        let auth_p = match &self.peer {
            Some(AuthPeer::Pap(p)) => p.deadline(),
            Some(AuthPeer::Chap(p)) => p.deadline(),
            None => None,
        };
        [
            self.lcp.poll_timeout(),
            auth_a,
            auth_p,
            self.ipcp.poll_timeout(),
            self.ccp.as_ref().and_then(Fsm::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front();
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
        e
    }

    // ---- the phase machine ----------------------------------------------------------------

    /// Moves packets and events between the parts until nothing changes.
    fn pump(&mut self, now: Instant) {
        for _ in 0..8 {
            let mut changed = false;
            while let Some(ev) = self.lcp.poll_event() {
                changed = true;
                self.on_lcp(now, ev);
            }
            changed |= self.pump_auth(now);
            while let Some(ev) = self.ipcp.poll_event() {
                changed = true;
                self.on_ipcp(now, ev);
            }
            let mut ccp_events = Vec::new();
            if let Some(ccp) = self.ccp.as_mut() {
                while let Some(ev) = ccp.poll_event() {
                    ccp_events.push(ev);
                }
            }
            for ev in ccp_events {
                changed = true;
                self.on_ccp(now, ev);
            }
            if let Some(f) = self.ccp.as_ref().and_then(|c| c.negotiator().failure()) {
                if self.phase == Phase::Network {
                    self.fail(now, DownReason::Ccp(f), "MPPE negotiation failed");
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        self.collect_tx();
    }

    fn collect_tx(&mut self) {
        let compression = self.compression();
        while let Some(p) = self.lcp.poll_transmit() {
            self.tx.push_back(frame(Protocol::Lcp, &p, compression));
        }
        let mut auth_out: Vec<(Protocol, Vec<u8>)> = Vec::new();
        match &mut self.authenticator {
            Some(Authenticator::Pap(a)) => drain(a.outbox(), Protocol::Pap, &mut auth_out),
            Some(Authenticator::Chap(a)) => drain(a.outbox(), Protocol::Chap, &mut auth_out),
            None => {}
        }
        match &mut self.peer {
            Some(AuthPeer::Pap(p)) => drain(p.outbox(), Protocol::Pap, &mut auth_out),
            Some(AuthPeer::Chap(p)) => drain(p.outbox(), Protocol::Chap, &mut auth_out),
            None => {}
        }
        for (proto, p) in auth_out {
            self.tx.push_back(frame(proto, &p, compression));
        }
        while let Some(p) = self.ipcp.poll_transmit() {
            self.tx.push_back(frame(Protocol::Ipcp, &p, compression));
        }
        if let Some(ccp) = self.ccp.as_mut() {
            while let Some(p) = ccp.poll_transmit() {
                self.tx.push_back(frame(Protocol::Ccp, &p, compression));
            }
        }
    }

    fn set_reason(&mut self, r: DownReason) {
        if self.down_reason.is_none() {
            self.down_reason = Some(r);
        }
    }

    fn fail(&mut self, now: Instant, reason: DownReason, text: &str) {
        tracing::debug!(%reason, "closing link");
        self.set_reason(reason);
        if self.phase != Phase::Dead {
            self.phase = Phase::Terminate;
        }
        // Last words first: what the parts already queued goes out ahead of the
        // Terminate-Request, above all the CHAP Failure ("E=691 R=0 ...") or PAP
        // Authenticate-Nak that explains this failure to the peer. Closing LCP runs tld,
        // which drops the authentication state machines and their queues with them.
        self.collect_tx();
        self.lcp.fsm_mut().close(now, text.as_bytes());
        self.pump_lcp_only(now);
    }

    fn pump_lcp_only(&mut self, now: Instant) {
        while let Some(ev) = self.lcp.poll_event() {
            self.on_lcp(now, ev);
        }
        self.collect_tx();
    }

    fn on_lcp(&mut self, now: Instant, ev: LcpEvent) {
        match ev {
            LcpEvent::Layer(FsmEvent::Up) => {
                let link = self.lcp.link();
                self.events.push_back(Event::LinkUp(link));
                self.start_auth(now, link);
            }
            LcpEvent::Layer(FsmEvent::Down) => {
                // tld: authentication and the network layers go down with the link; a new
                // LCP negotiation starts them afresh.
                self.network_down(now);
                self.authenticator = None;
                self.peer = None;
                self.material = AuthMaterial::None;
                self.user = None;
                if self.phase != Phase::Dead {
                    self.phase = if self.down_reason.is_some() {
                        Phase::Terminate
                    } else {
                        Phase::Establish
                    };
                }
            }
            LcpEvent::Layer(FsmEvent::Finished(r)) => {
                let reason = match r {
                    FinishReason::ConfigureTimeout => DownReason::LcpTimeout,
                    FinishReason::NotConverging => DownReason::LcpNotConverging,
                    FinishReason::PeerTerminated => DownReason::PeerTerminated,
                    FinishReason::TerminateTimeout => DownReason::TerminateTimeout,
                    FinishReason::CatastrophicReject => DownReason::CatastrophicReject,
                    FinishReason::Closed | FinishReason::TerminateAcked => DownReason::Closed,
                };
                self.set_reason(reason);
                self.enter_dead();
            }
            LcpEvent::Layer(FsmEvent::Started) => {}
            LcpEvent::ProtocolRejected(p) => {
                if p == u16::from(Protocol::Ipcp) {
                    self.fail(now, DownReason::IpcpRejected, "IPCP rejected");
                } else if p == u16::from(Protocol::Ccp) {
                    if let Some(ccp) = self.ccp.as_mut() {
                        ccp.reject_received(now, true);
                    }
                }
            }
            LcpEvent::EchoTimeout => self.fail(now, DownReason::EchoTimeout, "Echo timeout"),
            LcpEvent::LoopbackDetected => self.fail(now, DownReason::Loopback, "Loopback"),
            LcpEvent::AuthRefused => self.fail(
                now,
                DownReason::AuthRefused,
                "Authentication protocol refused",
            ),
        }
    }

    /// Keeps the text of a received LCP Terminate-Request (RFC 1661 5.5: the Data field is
    /// "zero or more octets ... for use by the sender"; peers such as ours put the reason
    /// there), printable ASCII only and at most 120 characters.
    fn note_terminate_request(&mut self, payload: &[u8]) {
        const TERMINATE_REQUEST: u8 = 5;
        if payload.first() != Some(&TERMINATE_REQUEST) {
            return;
        }
        let len = payload
            .get(2..4)
            .and_then(|l| <[u8; 2]>::try_from(l).ok())
            .map_or(0, |l| usize::from(u16::from_be_bytes(l)));
        let data = payload.get(4..len.min(payload.len())).unwrap_or(&[]);
        if data.is_empty() {
            return;
        }
        let text: String = data
            .iter()
            .take(120)
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    char::from(b)
                } else {
                    '?'
                }
            })
            .collect();
        self.peer_terminate = Some(text);
    }

    fn enter_dead(&mut self) {
        if self.phase == Phase::Dead {
            return;
        }
        self.phase = Phase::Dead;
        self.authenticator = None;
        self.peer = None;
        let reason = self.down_reason.clone().unwrap_or(DownReason::Closed);
        self.events.push_back(Event::LinkDown(reason));
    }

    fn start_auth(&mut self, now: Instant, link: LinkParams) {
        self.auth_peer_ok = link.auth_peer.is_none();
        self.auth_self_ok = link.auth_self.is_none();
        if self.auth_peer_ok && self.auth_self_ok {
            self.enter_network(now);
            return;
        }
        self.phase = Phase::Authenticate;
        if let Some(m) = link.auth_peer {
            self.authenticator = Some(match ChapVariant::from_method(m) {
                None => Authenticator::Pap(PapAuthenticator::new(now, &self.policy.auth)),
                Some(v) => Authenticator::Chap(ChapAuthenticator::new(
                    now,
                    v,
                    &self.policy.auth,
                    &mut self.rng,
                )),
            });
        }
        if let Some(m) = link.auth_self {
            let Some(creds) = self.policy.credentials.clone() else {
                self.fail(now, DownReason::NoCredentials, "No credentials");
                return;
            };
            self.peer = Some(match ChapVariant::from_method(m) {
                None => AuthPeer::Pap(PapPeer::new(now, creds, self.rng.array::<1>()[0])),
                Some(v) => AuthPeer::Chap(ChapPeer::new(now, v, creds)),
            });
        }
    }

    /// Collects authentication outcomes; returns whether anything happened.
    fn pump_auth(&mut self, now: Instant) -> bool {
        let mut outcomes: Vec<(bool, AuthEvent)> = Vec::new();
        match &mut self.authenticator {
            Some(Authenticator::Pap(a)) => {
                outcomes.extend(a.outbox().events.drain(..).map(|e| (true, e)))
            }
            Some(Authenticator::Chap(a)) => {
                outcomes.extend(a.outbox().events.drain(..).map(|e| (true, e)))
            }
            None => {}
        }
        match &mut self.peer {
            Some(AuthPeer::Pap(p)) => {
                outcomes.extend(p.outbox().events.drain(..).map(|e| (false, e)))
            }
            Some(AuthPeer::Chap(p)) => {
                outcomes.extend(p.outbox().events.drain(..).map(|e| (false, e)))
            }
            None => {}
        }
        let any = !outcomes.is_empty();
        for (as_authenticator, ev) in outcomes {
            match ev {
                AuthEvent::Success { user, material } => {
                    if as_authenticator {
                        self.auth_peer_ok = true;
                        self.user = Some(user.clone());
                    } else {
                        self.auth_self_ok = true;
                        if self.user.is_none() {
                            self.user = Some(user.clone());
                        }
                    }
                    if material != AuthMaterial::None {
                        self.material = material;
                    }
                    self.events.push_back(Event::Authenticated { user });
                }
                AuthEvent::Failure(f) => {
                    self.fail(now, DownReason::AuthFailed(f), "Authentication failed");
                }
            }
        }
        if self.phase == Phase::Authenticate && self.auth_peer_ok && self.auth_self_ok {
            self.enter_network(now);
        }
        any
    }

    fn enter_network(&mut self, now: Instant) {
        self.phase = Phase::Network;
        let have_keys = self.material != AuthMaterial::None;
        let c = &self.policy.ccp;
        let ccp_used = c.mppe != MppeMode::Disabled || c.mppc;
        if ccp_used {
            let mut ccp = Fsm::new(CcpNegotiator::new(*c, have_keys), self.policy.ncp_fsm);
            ccp.up(now);
            ccp.open(now);
            self.ccp = Some(ccp);
        }
        self.ipcp.up(now);
        self.ipcp.open(now);
    }

    fn network_down(&mut self, now: Instant) {
        let was_up = self.ipcp.is_opened();
        self.ipcp.down(now);
        while self.ipcp.poll_event().is_some() {}
        if let Some(mut ccp) = self.ccp.take() {
            ccp.down(now);
        }
        self.ccp_result = None;
        if was_up {
            self.events.push_back(Event::IpDown);
        }
        self.ipcp = Fsm::new(IpcpNegotiator::new(self.policy.ipcp), self.policy.ncp_fsm);
    }

    fn on_ipcp(&mut self, now: Instant, ev: FsmEvent) {
        match ev {
            FsmEvent::Up => self
                .events
                .push_back(Event::IpUp(self.ipcp.negotiator().result())),
            FsmEvent::Down => self.events.push_back(Event::IpDown),
            FsmEvent::Finished(_) if self.phase == Phase::Network => {
                self.fail(now, DownReason::IpcpFailed, "IPCP failed")
            }
            _ => {}
        }
    }

    fn on_ccp(&mut self, now: Instant, ev: FsmEvent) {
        match ev {
            FsmEvent::Up => {
                let Some(result) = self.ccp.as_ref().map(|c| c.negotiator().result()) else {
                    return;
                };
                if self.policy.ccp.mppe == MppeMode::Required && !result.encrypted() {
                    self.fail(
                        now,
                        DownReason::Ccp(CcpFailure::PeerRefused),
                        "MPPE required",
                    );
                    return;
                }
                self.ccp_result = Some(result);
                self.events.push_back(Event::CcpUp(result));
            }
            FsmEvent::Down => {
                self.ccp_result = None;
                self.events.push_back(Event::CcpDown);
            }
            FsmEvent::Finished(_) if self.phase == Phase::Network => {
                if self.policy.ccp.mppe == MppeMode::Required {
                    self.fail(now, DownReason::CcpTimeout, "MPPE required");
                } else {
                    self.events.push_back(Event::CcpDown);
                }
            }
            _ => {}
        }
    }
}

fn frame(protocol: Protocol, payload: &[u8], compression: Compression) -> Vec<u8> {
    FrameRepr { protocol, payload }.to_vec(compression)
}

fn drain(out: &mut Outbox, protocol: Protocol, into: &mut Vec<(Protocol, Vec<u8>)>) {
    into.extend(out.tx.drain(..).map(|p| (protocol, p)));
}
