//! The PPTP control connection and its calls (RFC 2637 sections 3.1 and 3.2), sans-IO.
//!
//! One [`Connection`] is one TCP control connection, in either role ([`Role::Pac`] or
//! [`Role::Pns`]) and from either end ([`Open::Active`] sent the SCCRQ, [`Open::Passive`]
//! accepted the TCP connection). It owns every call of that connection, keyed by our Call ID.
//!
//! Method classes (STYLE habit 3), called by the shell in this order:
//! - inputs: [`handle_bytes`](Connection::handle_bytes) (TCP data),
//!   [`handle_timeout`](Connection::handle_timeout), [`handle_tcp_closed`](Connection::handle_tcp_closed);
//! - commands: [`incoming_call`](Connection::incoming_call),
//!   [`answer_connected`](Connection::answer_connected), [`outgoing_call`](Connection::outgoing_call),
//!   [`dial_result`](Connection::dial_result), [`accept_call`](Connection::accept_call),
//!   [`reject_call`](Connection::reject_call), [`hang_up`](Connection::hang_up),
//!   [`wan_error`](Connection::wan_error), [`set_link_info`](Connection::set_link_info),
//!   [`stop`](Connection::stop), [`abandon`](Connection::abandon);
//! - outputs: [`poll_transmit`](Connection::poll_transmit), [`poll_timeout`](Connection::poll_timeout),
//!   [`poll_event`](Connection::poll_event).
//!
//! Every received message is checked against the table in [`spec`] (connection state, call
//! state, scope of the damage) before its handler runs. Timers are data: the connection keeps a
//! small [`Timer`] table, every call one deadline for its current state and one for its
//! WAN-Error-Notify rate limit; [`poll_timeout`](Connection::poll_timeout) is their minimum.
//!
//! The state diagrams are those of RFC 2637 §3.1.1 (control connection) and §3.2.3/§3.2.4
//! (incoming and outgoing calls, both sides); [`CallState`] names map onto them.

mod call;
pub mod spec;

pub use spec::{spec, CallKey, CallState, CtrlState, MsgSpec, Scope, TimeoutKind};

use crate::pptp::message::{
    BearerCapabilities, BearerType, CallClearRequest, CallDisconnectNotify, CallDisconnectResult,
    CallStatistics, CauseCode, ControlItem, ControlMessageType, ControlStream, EchoReply,
    EchoRequest, EchoResult, ErrorCode, FramingCapabilities, FramingType, IncomingCallConnected,
    IncomingCallReply, IncomingCallRequest, IncomingCallResult, Message, OutgoingCallReply,
    OutgoingCallRequest, OutgoingCallResult, SetLinkInfo, StartControlConnectionReply,
    StartControlConnectionRequest, StartControlConnectionResult, StopControlConnectionReply,
    StopControlConnectionRequest, StopControlConnectionResult, StopReason, TextField,
    WanErrorNotify, PROTOCOL_VERSION,
};
use call::{Call, CallIds};
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Which end of the PPTP deployment this connection plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// PPTP Access Concentrator: owns the lines, sends ICRQ, answers OCRQ.
    Pac,
    /// PPTP Network Server: accepts ICRQ, places OCRQ.
    Pns,
}

/// Which end opened the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Open {
    /// We connected and send the Start-Control-Connection-Request.
    Active,
    /// We accepted and wait for the peer's Start-Control-Connection-Request.
    Passive,
}

/// Every time-out of the control connection and its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Waiting for SCCRQ (passive) or SCCRP (active). RFC 2637 §3.1.3: 60 s.
    pub start: Duration,
    /// Waiting for StopCCRP.
    pub stop: Duration,
    /// Idle time after which an Echo-Request is sent. RFC 2637 §3.1.3: 60 s.
    pub echo_interval: Duration,
    /// Waiting for the Echo-Reply before the connection is closed. RFC 2637 §3.1.3: 60 s.
    pub echo_reply: Duration,
    /// PAC: waiting for ICRP after ICRQ.
    pub icrp: Duration,
    /// PNS: waiting for ICCN after ICRP.
    pub iccn: Duration,
    /// PNS side: waiting for OCRP after OCRQ (the PAC dials meanwhile).
    pub ocrp: Duration,
    /// PNS side: waiting for CDN after CCRQ.
    pub cdn: Duration,
    /// PAC: answering the line after ICRP (the shell calls `answer_connected`).
    pub answer: Duration,
    /// PAC side: dialling after OCRQ (the shell calls `dial_result`); must be below the peer's
    /// OCRP wait.
    pub dial: Duration,
    /// PNS: deciding on an ICRQ (the shell calls `accept_call` or `reject_call`).
    pub decide: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            start: Duration::from_secs(60),
            stop: Duration::from_secs(10),
            echo_interval: Duration::from_secs(60),
            echo_reply: Duration::from_secs(60),
            icrp: Duration::from_secs(30),
            iccn: Duration::from_secs(60),
            ocrp: Duration::from_secs(120),
            cdn: Duration::from_secs(30),
            answer: Duration::from_secs(60),
            dial: Duration::from_secs(110),
            decide: Duration::from_secs(20),
        }
    }
}

impl Timeouts {
    /// The time-out the table names.
    pub const fn get(&self, kind: TimeoutKind) -> Duration {
        match kind {
            TimeoutKind::Start => self.start,
            TimeoutKind::Stop => self.stop,
            TimeoutKind::Echo => self.echo_reply,
            TimeoutKind::Icrp => self.icrp,
            TimeoutKind::Iccn => self.iccn,
            TimeoutKind::Ocrp => self.ocrp,
            TimeoutKind::Cdn => self.cdn,
        }
    }
}

/// Configuration of one control connection.
#[derive(Debug, Clone)]
pub struct Config {
    /// PAC or PNS.
    pub role: Role,
    /// Host Name sent in SCCRQ/SCCRP.
    pub host_name: TextField,
    /// Vendor String sent in SCCRQ/SCCRP.
    pub vendor: TextField,
    /// Firmware Revision sent in SCCRQ/SCCRP.
    pub firmware_revision: u16,
    /// Framing Capabilities we announce.
    pub framing: FramingCapabilities,
    /// Bearer Capabilities we announce.
    pub bearer: BearerCapabilities,
    /// Maximum number of calls at once on this connection (announced by a PAC; a PNS sends 0
    /// on the wire but enforces it all the same).
    pub maximum_channels: u16,
    /// Accept Incoming-Call-Requests (a PNS does; a PAC refuses them).
    pub accept_incoming: bool,
    /// Accept Outgoing-Call-Requests (a PAC dials out on request; a PNS accepts them from PPTP
    /// clients such as pptp-linux or Windows).
    pub accept_outgoing: bool,
    /// Packet Receive Window Size we offer for each call.
    pub recv_window: u16,
    /// Packet Processing Delay we announce, in 1/10 s.
    pub processing_delay: u16,
    /// Time-outs.
    pub timeouts: Timeouts,
    /// How long a freed Call ID stays unused.
    pub call_id_quarantine: Duration,
    /// Minimum interval between two WAN-Error-Notify messages of one call.
    pub wen_interval: Duration,
    /// First Call ID to try (vary it per connection to make IDs harder to guess).
    pub first_call_id: u16,
    /// First Call Serial Number.
    pub first_serial: u16,
}

impl Config {
    /// Defaults for `role`: 64 channels, window 64, async+sync framing, analog+digital bearer.
    pub fn new(role: Role) -> Self {
        Config {
            role,
            host_name: TextField::new(b"pptp-nas").unwrap_or_default(),
            vendor: TextField::new(b"pptp-nas").unwrap_or_default(),
            firmware_revision: 1,
            framing: FramingCapabilities::ASYNC | FramingCapabilities::SYNC,
            bearer: BearerCapabilities::ANALOG | BearerCapabilities::DIGITAL,
            maximum_channels: 64,
            accept_incoming: role == Role::Pns,
            accept_outgoing: true,
            recv_window: 64,
            processing_delay: 0,
            timeouts: Timeouts::default(),
            call_id_quarantine: Duration::from_secs(60),
            wen_interval: Duration::from_secs(60),
            first_call_id: 1,
            first_serial: 1,
        }
    }
}

/// What the peer said about itself in its SCCRQ or SCCRP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// Protocol Version.
    pub protocol_version: u16,
    /// Framing Capabilities.
    pub framing: FramingCapabilities,
    /// Bearer Capabilities.
    pub bearer: BearerCapabilities,
    /// Maximum Channels (0 from a PNS).
    pub maximum_channels: u16,
    /// Firmware Revision.
    pub firmware_revision: u16,
    /// Host Name.
    pub host_name: TextField,
    /// Vendor String.
    pub vendor: TextField,
}

/// Why the control connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer refused our SCCRQ.
    StartRejected {
        /// Result Code of the SCCRP.
        result: StartControlConnectionResult,
        /// Error Code of the SCCRP.
        error: ErrorCode,
    },
    /// We refused the peer's SCCRQ (unsupported protocol version).
    StartRefused(StartControlConnectionResult),
    /// No SCCRQ/SCCRP within the start time-out.
    StartTimeout,
    /// No Echo-Reply within the echo time-out.
    EchoTimeout,
    /// The peer sent Stop-Control-Connection-Request.
    PeerStopped(StopReason),
    /// Our Stop-Control-Connection-Request was answered.
    Stopped,
    /// Our Stop-Control-Connection-Request was not answered in time.
    StopTimeout,
    /// The peer sent a message that is illegal in the current state and fatal to the
    /// connection (per the table).
    ProtocolError {
        /// The offending message.
        message: ControlMessageType,
        /// The connection state it arrived in.
        state: CtrlState,
    },
    /// The byte stream lost synchronisation (bad header); RFC 2637 §1.4 requires closing.
    StreamError,
    /// TCP closed under us.
    TcpClosed,
    /// Collision (RFC 2637 §3.1.3): we lost, and this is the connection we initiated; it is
    /// closed without another message.
    CollisionLost,
    /// Collision: we won, and this is the connection the loser opened; we must not send on it.
    CollisionWon,
}

/// Why a call ended (or never came up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallEnd {
    /// The peer answered our ICRQ with a refusal.
    IncomingRejected {
        /// Result Code of the ICRP.
        result: IncomingCallResult,
        /// Error Code of the ICRP.
        error: ErrorCode,
    },
    /// The peer's OCRP reported a failure.
    OutgoingFailed {
        /// Result Code of the OCRP.
        result: OutgoingCallResult,
        /// Error Code of the OCRP.
        error: ErrorCode,
        /// Cause Code of the OCRP.
        cause: CauseCode,
    },
    /// We refused or failed the call (reject_call, failed dial_result, hang_up).
    Local,
    /// The peer sent Call-Clear-Request; we answered with Call-Disconnect-Notify.
    ClearedByPeer,
    /// The peer sent Call-Disconnect-Notify.
    Disconnected {
        /// Result Code of the CDN.
        result: CallDisconnectResult,
        /// Error Code of the CDN.
        error: ErrorCode,
        /// Cause Code of the CDN.
        cause: CauseCode,
    },
    /// The reply the current state waits for did not come (or the shell did not act) in time.
    Timeout(CallState),
    /// The peer sent a message illegal in the call's state; the call was torn down.
    ProtocolError(ControlMessageType),
    /// The control connection ended.
    ConnectionClosed,
}

/// Something the shell must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The control connection is established.
    Established(PeerInfo),
    /// The connection is over: close TCP once [`Connection::poll_transmit`] is drained.
    Closed(CloseReason),
    /// Collision detected on a passive connection (see [`Connection::note_outbound_pending`]).
    /// `won == false`: this connection becomes the control connection and the shell must
    /// [`abandon`](Connection::abandon) the one it initiated. `won == true`: this connection is
    /// closed silently and the one we initiated stays.
    Collision {
        /// Whether we won.
        won: bool,
    },
    /// PNS: the peer (PAC) reports an incoming call. Answer with [`Connection::accept_call`] or
    /// [`Connection::reject_call`].
    IncomingCallRequested {
        /// Our Call ID for it.
        call_id: u16,
        /// The request.
        request: IncomingCallRequest,
    },
    /// PAC side: the peer asks us to place a call. Dial, then [`Connection::dial_result`].
    OutgoingCallRequested {
        /// Our Call ID for it.
        call_id: u16,
        /// The request.
        request: OutgoingCallRequest,
    },
    /// PAC: the PNS accepted our ICRQ; answer the line, then [`Connection::answer_connected`].
    AnswerCall {
        /// Our Call ID.
        call_id: u16,
    },
    /// The call is up: GRE may flow.
    CallUp(CallInfo),
    /// The call is gone; its Call ID is quarantined. Hang up the line / stop GRE.
    CallDown {
        /// Our Call ID.
        call_id: u16,
        /// Why.
        end: CallEnd,
    },
    /// PAC side: Set-Link-Info for the line (apply the ACCMs to HDLC framing).
    LinkInfo {
        /// Our Call ID.
        call_id: u16,
        /// Send ACCM.
        send_accm: u32,
        /// Receive ACCM.
        receive_accm: u32,
    },
    /// PNS side: WAN-Error-Notify counters from the PAC.
    WanError {
        /// Our Call ID.
        call_id: u16,
        /// The counters.
        counters: WanErrorNotify,
    },
}

/// A call that came up: what the GRE data plane needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallInfo {
    /// Our Call ID (the Key the peer puts in GRE packets to us).
    pub call_id: u16,
    /// The peer's Call ID (the Key we put in GRE packets to it).
    pub peer_call_id: u16,
    /// Call Serial Number.
    pub serial: u16,
    /// Connect Speed in bit/s.
    pub connect_speed: u32,
    /// Framing Type of the line.
    pub framing: FramingType,
    /// The peer's Packet Receive Window Size (our send window).
    pub peer_window: u16,
    /// The peer's Packet Processing Delay, 1/10 s.
    pub peer_delay: u16,
    /// Whether we are on the PAC side of the call.
    pub pac_side: bool,
}

/// Parameters of an incoming call the PAC reports (ICRQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingCall {
    /// Bearer the call arrived on.
    pub bearer: BearerType,
    /// Physical Channel ID, for logs.
    pub physical_channel_id: u32,
    /// Dialed number (DNIS).
    pub dialed: TextField,
    /// Dialing number (CLID).
    pub dialing: TextField,
    /// Subaddress.
    pub subaddress: TextField,
}

/// Parameters of an outgoing call request (OCRQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingCall {
    /// Minimum acceptable speed, bit/s.
    pub minimum_bps: u32,
    /// Maximum speed, bit/s.
    pub maximum_bps: u32,
    /// Bearer.
    pub bearer: BearerType,
    /// Framing.
    pub framing: FramingType,
    /// Number to dial.
    pub phone_number: TextField,
    /// Subaddress.
    pub subaddress: TextField,
}

/// The result of dialling on behalf of an OCRQ (sent as OCRP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialResult {
    /// Connected, General Error, No Carrier, Busy, No Dial Tone, Time-out or Do Not Accept.
    pub result: OutgoingCallResult,
    /// Error Code (for General Error).
    pub error: ErrorCode,
    /// Cause Code (Q.931).
    pub cause: CauseCode,
    /// Connect speed, bit/s.
    pub connect_speed: u32,
    /// Physical Channel ID.
    pub physical_channel_id: u32,
}

impl DialResult {
    /// A connected call at `speed`.
    pub fn connected(speed: u32) -> Self {
        DialResult {
            result: OutgoingCallResult::Connected,
            error: ErrorCode::None,
            cause: CauseCode::None,
            connect_speed: speed,
            physical_channel_id: 0,
        }
    }

    /// A failed call with `result`.
    pub fn failed(result: OutgoingCallResult) -> Self {
        DialResult {
            result,
            error: ErrorCode::None,
            cause: CauseCode::None,
            connect_speed: 0,
            physical_channel_id: 0,
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The control connection is not established.
    #[error("control connection not established ({0:?})")]
    NotEstablished(CtrlState),
    /// The command does not fit this role.
    #[error("not available to a {0:?}")]
    WrongRole(Role),
    /// All channels are in use (our maximum or the peer's).
    #[error("no free channel (maximum {0})")]
    NoChannel(u16),
    /// No Call ID is free (all in use or quarantined).
    #[error("no free call ID")]
    NoCallId,
    /// No such call.
    #[error("no call {0}")]
    UnknownCall(u16),
    /// The call is not in a state where the command applies.
    #[error("call {call_id} is {state:?}")]
    WrongState {
        /// The call.
        call_id: u16,
        /// Its state.
        state: CallState,
    },
}

/// Counters of what arrived and what was refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControlStats {
    /// Valid messages received.
    pub messages: u64,
    /// Well-framed messages of an unknown type (skipped).
    pub unknown_type: u64,
    /// Well-framed messages that failed validation (skipped).
    pub invalid: u64,
    /// Messages illegal in the current state (handled per the table).
    pub illegal: u64,
    /// Call messages naming no call we know (dropped).
    pub unknown_call: u64,
    /// Echo-Requests sent.
    pub echo_sent: u64,
    /// WAN-Error-Notify messages held back by the rate limit (coalesced).
    pub wen_coalesced: u64,
}

/// Connection-level timers (STYLE habit 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Start (SCCRQ/SCCRP) or Stop (StopCCRP) reply wait.
    Reply,
    /// Idle time before the next Echo-Request.
    EchoIdle,
    /// Waiting for the Echo-Reply.
    EchoReply,
}

const TIMERS: usize = 3;

impl Timer {
    const fn index(self) -> usize {
        match self {
            Timer::Reply => 0,
            Timer::EchoIdle => 1,
            Timer::EchoReply => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct TimerTable([Option<Instant>; TIMERS]);

impl TimerTable {
    fn set(&mut self, t: Timer, at: Instant) {
        if let Some(slot) = self.0.get_mut(t.index()) {
            *slot = Some(at);
        }
    }
    fn stop(&mut self, t: Timer) {
        if let Some(slot) = self.0.get_mut(t.index()) {
            *slot = None;
        }
    }
    fn expired(&self, t: Timer, now: Instant) -> bool {
        self.0
            .get(t.index())
            .copied()
            .flatten()
            .is_some_and(|at| at <= now)
    }
    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
    fn clear(&mut self) {
        self.0 = [None; TIMERS];
    }
}

/// One PPTP control connection with its calls. See the module documentation.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    state: CtrlState,
    stream: ControlStream,
    transmit: VecDeque<Message>,
    events: VecDeque<Event>,
    timers: TimerTable,
    peer: Option<PeerInfo>,
    calls: HashMap<u16, Call>,
    ids: CallIds,
    next_serial: u16,
    echo_id: u32,
    echo_outstanding: Option<u32>,
    collision: Option<(Ipv4Addr, Ipv4Addr)>,
    stats: ControlStats,
}

impl Connection {
    /// A new connection at `now`. [`Open::Active`] queues the SCCRQ at once.
    pub fn new(config: Config, open: Open, now: Instant) -> Self {
        let ids = CallIds::new(config.first_call_id, config.call_id_quarantine);
        let mut c = Connection {
            next_serial: config.first_serial,
            config,
            state: CtrlState::Idle,
            stream: ControlStream::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            timers: TimerTable::default(),
            peer: None,
            calls: HashMap::new(),
            ids,
            echo_id: 0,
            echo_outstanding: None,
            collision: None,
            stats: ControlStats::default(),
        };
        match open {
            Open::Active => {
                let sccrq = StartControlConnectionRequest {
                    protocol_version: PROTOCOL_VERSION,
                    framing_capabilities: c.config.framing,
                    bearer_capabilities: c.config.bearer,
                    maximum_channels: c.announced_channels(),
                    firmware_revision: c.config.firmware_revision,
                    host_name: c.config.host_name,
                    vendor: c.config.vendor,
                };
                c.send_request(now, sccrq.into());
                c.set_state(CtrlState::WaitCtlReply);
            }
            Open::Passive => {
                // RFC 2637 §3.1.3: "a control connection SHOULD be closed after 60 seconds by a
                // peer waiting for a Start-Control-Connection-Request or
                // Start-Control-Connection-Reply message."
                c.timers.set(Timer::Reply, now + c.config.timeouts.start);
            }
        }
        c
    }

    // ----- getters -----

    /// The connection state.
    pub fn state(&self) -> CtrlState {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the peer announced, once established.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> ControlStats {
        self.stats
    }

    /// The state of call `call_id` (our ID).
    pub fn call_state(&self, call_id: u16) -> Option<CallState> {
        self.calls.get(&call_id).map(|c| c.state)
    }

    /// The peer's Call ID of call `call_id`, once known.
    pub fn peer_call_id(&self, call_id: u16) -> Option<u16> {
        self.calls.get(&call_id).and_then(|c| c.peer_call_id)
    }

    /// Number of calls (in any state).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Our Call IDs, in no particular order.
    pub fn call_ids(&self) -> impl Iterator<Item = u16> + '_ {
        self.calls.keys().copied()
    }

    /// Whether Call ID `id` is quarantined at `now`.
    pub fn is_quarantined(&self, id: u16, now: Instant) -> bool {
        self.ids.is_quarantined(id, now)
    }

    // ----- outputs -----

    /// The next message to send, if any.
    #[must_use]
    pub fn poll_message(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    /// Appends the next message to send to `buf`; returns its type, or `None` when nothing is
    /// queued.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<ControlMessageType> {
        let m = self.transmit.pop_front()?;
        m.emit(buf);
        Some(m.control_type())
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == CtrlState::Closed {
            return None;
        }
        let wen = self.config.wen_interval;
        self.calls
            .values()
            .flat_map(|c| [c.deadline, c.wen_due(wen)])
            .flatten()
            .chain(self.timers.next())
            .min()
    }

    /// The next event for the shell.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- inputs -----

    /// Feeds bytes received on the TCP connection.
    pub fn handle_bytes(&mut self, now: Instant, data: &[u8]) {
        if self.state == CtrlState::Closed {
            return;
        }
        self.stream.handle_bytes(data);
        loop {
            match self.stream.poll_item() {
                Ok(None) => break,
                Ok(Some(ControlItem::Message(m))) => self.handle_message(now, m),
                Ok(Some(ControlItem::Unknown { control_type, .. })) => {
                    // Malformed-but-framed and unknown messages are dropped and counted; an
                    // unknown type may be a future or vendor message (RFC 2637 defines only
                    // 15).
                    tracing::debug!(control_type, "unknown control message skipped");
                    self.stats.unknown_type += 1;
                }
                Ok(Some(ControlItem::Invalid(e))) => {
                    tracing::debug!(error = %e, "invalid control message skipped");
                    self.stats.invalid += 1;
                }
                Err(e) => {
                    // RFC 2637 §1.4: "Loss of synchronization must result in immediate
                    // closing of the control connection's TCP session."
                    tracing::debug!(error = %e, "control stream lost synchronisation");
                    self.close(now, CloseReason::StreamError);
                    break;
                }
            }
            if self.state == CtrlState::Closed {
                break;
            }
        }
    }

    /// Handles one parsed message (what [`handle_bytes`](Self::handle_bytes) does per message).
    pub fn handle_message(&mut self, now: Instant, m: Message) {
        if self.state == CtrlState::Closed {
            return;
        }
        let t = m.control_type();
        let _span = tracing::trace_span!("rx", proto = "pptp", msg = t.abbreviation()).entered();
        self.stats.messages += 1;
        self.note_activity(now);
        let s = spec(t);
        if !s.ctrl.contains(self.state) {
            self.stats.illegal += 1;
            return self.illegal(now, t, s.fatal_to, None);
        }
        let call = match s.key {
            CallKey::None | CallKey::New => None,
            CallKey::Local | CallKey::Peer => {
                let Some(id) = self.find_call(&m, s.key) else {
                    // A late message for a call already cleared (peers race with us): drop.
                    tracing::debug!(msg = t.abbreviation(), "no such call, dropped");
                    self.stats.unknown_call += 1;
                    return;
                };
                let state = self.calls.get(&id).map(|c| c.state);
                if !state.is_some_and(|st| s.call.contains(st)) {
                    self.stats.illegal += 1;
                    return self.illegal(now, t, s.fatal_to, Some(id));
                }
                Some(id)
            }
        };
        match (m, call) {
            (Message::StartControlConnectionRequest(r), _) => self.rx_sccrq(now, r),
            (Message::StartControlConnectionReply(r), _) => self.rx_sccrp(now, r),
            (Message::StopControlConnectionRequest(r), _) => self.rx_stopccrq(now, r),
            (Message::StopControlConnectionReply(_), _) => {
                self.close(now, CloseReason::Stopped);
            }
            (Message::EchoRequest(r), _) => {
                self.send(
                    EchoReply {
                        identifier: r.identifier,
                        result: EchoResult::Ok,
                        error: ErrorCode::None,
                    }
                    .into(),
                );
            }
            (Message::EchoReply(r), _) => {
                if self.echo_outstanding == Some(r.identifier) {
                    self.echo_outstanding = None;
                    self.timers.stop(Timer::EchoReply);
                }
            }
            (Message::OutgoingCallRequest(r), _) => self.rx_ocrq(now, r),
            (Message::IncomingCallRequest(r), _) => self.rx_icrq(now, r),
            (Message::OutgoingCallReply(r), Some(id)) => self.rx_ocrp(now, id, r),
            (Message::IncomingCallReply(r), Some(id)) => self.rx_icrp(now, id, r),
            (Message::IncomingCallConnected(r), Some(id)) => self.rx_iccn(id, r),
            (Message::CallClearRequest(_), Some(id)) => self.rx_ccrq(now, id),
            (Message::CallDisconnectNotify(r), Some(id)) => {
                self.free_call(
                    now,
                    id,
                    CallEnd::Disconnected {
                        result: r.result,
                        error: r.error,
                        cause: r.cause_code,
                    },
                );
            }
            (Message::WanErrorNotify(r), Some(id)) => {
                self.events.push_back(Event::WanError {
                    call_id: id,
                    counters: r,
                });
            }
            (Message::SetLinkInfo(r), Some(id)) => {
                self.events.push_back(Event::LinkInfo {
                    call_id: id,
                    send_accm: r.send_accm,
                    receive_accm: r.receive_accm,
                });
            }
            // Call messages always come with a call (checked above).
            (_, None) => {}
        }
    }

    /// Handles expired timers. Early calls are harmless no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == CtrlState::Closed {
            return;
        }
        if self.timers.expired(Timer::Reply, now) {
            self.timers.stop(Timer::Reply);
            match self.state {
                CtrlState::Idle | CtrlState::WaitCtlReply => {
                    return self.close(now, CloseReason::StartTimeout)
                }
                CtrlState::WaitStopReply => return self.close(now, CloseReason::StopTimeout),
                CtrlState::Established | CtrlState::Closed => {}
            }
        }
        if self.timers.expired(Timer::EchoReply, now) {
            // RFC 2637 §3.1.3: "If an Echo-Reply is not received 60 seconds after the
            // Echo-Request message transmission, the control connection SHOULD be closed."
            return self.close(now, CloseReason::EchoTimeout);
        }
        if self.timers.expired(Timer::EchoIdle, now) {
            self.timers.stop(Timer::EchoIdle);
            if self.state == CtrlState::Established && self.echo_outstanding.is_none() {
                // RFC 2637 §3.1.3: "If a peer's control connection is in the established state
                // and has not received a control message for 60 seconds, it SHOULD send a
                // Echo-Request message."
                self.echo_id = self.echo_id.wrapping_add(1);
                self.echo_outstanding = Some(self.echo_id);
                self.stats.echo_sent += 1;
                self.send_request(
                    now,
                    EchoRequest {
                        identifier: self.echo_id,
                    }
                    .into(),
                );
            }
        }
        let wen = self.config.wen_interval;
        let mut due: Vec<(u16, bool)> = self
            .calls
            .iter()
            .filter_map(|(&id, c)| {
                let state_due = c.deadline.is_some_and(|d| d <= now);
                let wen_due = c.wen_due(wen).is_some_and(|d| d <= now);
                (state_due || wen_due).then_some((id, state_due))
            })
            .collect();
        due.sort_unstable();
        for (id, state_due) in due {
            if state_due {
                self.call_timeout(now, id);
            } else {
                self.flush_wen(now, id);
            }
        }
    }

    /// TCP closed (or failed) under us: every call is gone.
    pub fn handle_tcp_closed(&mut self, now: Instant) {
        if self.state != CtrlState::Closed {
            self.close(now, CloseReason::TcpClosed);
        }
    }

    // ----- commands: control connection -----

    /// Tells a passive connection, before its SCCRQ arrives, that we also have an outbound
    /// connection to the same peer waiting for its SCCRP. The SCCRQ is then a collision
    /// (RFC 2637 §3.1.3), resolved by comparing `local` and `peer` as 32-bit numbers.
    pub fn note_outbound_pending(&mut self, local: Ipv4Addr, peer: Ipv4Addr) {
        self.collision = Some((local, peer));
    }

    /// The collision loser closes the connection it initiated "without sending any further
    /// PPTP control messages on it" (RFC 2637 §3.1.3).
    pub fn abandon(&mut self, now: Instant) {
        self.transmit.clear();
        self.close(now, CloseReason::CollisionLost);
    }

    /// Graceful shutdown: clears every call (CDN from the PAC side, CCRQ from the PNS side),
    /// then sends Stop-Control-Connection-Request and waits for the Reply. Before the
    /// connection is established it just closes.
    pub fn stop(&mut self, now: Instant, reason: StopReason) {
        match self.state {
            CtrlState::Established => {
                let mut ids: Vec<u16> = self.calls.keys().copied().collect();
                ids.sort_unstable();
                for id in ids {
                    self.clear_call_for_shutdown(now, id);
                }
                self.send_request(now, StopControlConnectionRequest { reason }.into());
                self.set_state(CtrlState::WaitStopReply);
                self.timers.stop(Timer::EchoIdle);
                self.timers.stop(Timer::EchoReply);
            }
            CtrlState::Idle | CtrlState::WaitCtlReply => {
                self.close(now, CloseReason::Stopped);
            }
            CtrlState::WaitStopReply | CtrlState::Closed => {}
        }
    }

    // ----- commands: calls -----

    /// PAC: a call rings. Sends ICRQ and returns our Call ID. The PNS answers with ICRP; on
    /// accept, [`Event::AnswerCall`] tells the shell to answer the line.
    pub fn incoming_call(&mut self, now: Instant, call: IncomingCall) -> Result<u16, CommandError> {
        if self.config.role != Role::Pac {
            return Err(CommandError::WrongRole(self.config.role));
        }
        let (id, serial) = self.new_call(now, CallState::WaitIcrp)?;
        let icrq = IncomingCallRequest {
            call_id: id,
            call_serial_number: serial,
            call_bearer_type: call.bearer,
            physical_channel_id: call.physical_channel_id,
            dialed_number_length: text_len(&call.dialed),
            dialing_number_length: text_len(&call.dialing),
            dialed_number: call.dialed,
            dialing_number: call.dialing,
            subaddress: call.subaddress,
        };
        self.send_call_request(now, id, icrq.into());
        Ok(id)
    }

    /// PAC: the line answered (`CONNECT speed`): sends ICCN and brings the call up.
    pub fn answer_connected(
        &mut self,
        now: Instant,
        call_id: u16,
        connect_speed: u32,
        framing: FramingType,
    ) -> Result<(), CommandError> {
        let _ = now;
        let call = self.call_in(call_id, &[CallState::WaitAnswer])?;
        let peer_call_id = call.peer_call_id.unwrap_or(0);
        call.connect_speed = connect_speed;
        call.framing = framing;
        let iccn = IncomingCallConnected {
            peer_call_id,
            connect_speed,
            packet_recv_window_size: self.config.recv_window,
            packet_transmit_delay: self.config.processing_delay,
            framing_type: framing,
        };
        self.send(iccn.into());
        self.call_up(call_id, CallState::UpPac);
        Ok(())
    }

    /// PNS, or a PAC in compat mode: places an outgoing call (OCRQ). Returns our Call ID; the
    /// call comes up with [`Event::CallUp`] when the OCRP says Connected.
    pub fn outgoing_call(&mut self, now: Instant, call: OutgoingCall) -> Result<u16, CommandError> {
        let (id, serial) = self.new_call(now, CallState::WaitOcrp)?;
        let ocrq = OutgoingCallRequest {
            call_id: id,
            call_serial_number: serial,
            minimum_bps: call.minimum_bps,
            maximum_bps: call.maximum_bps,
            bearer_type: call.bearer,
            framing_type: call.framing,
            packet_recv_window_size: self.config.recv_window,
            packet_processing_delay: self.config.processing_delay,
            phone_number_length: text_len(&call.phone_number),
            phone_number: call.phone_number,
            subaddress: call.subaddress,
        };
        self.send_call_request(now, id, ocrq.into());
        Ok(id)
    }

    /// PAC side of an OCRQ: the dial finished; sends OCRP with `result`. Connected brings the
    /// call up; anything else frees it.
    pub fn dial_result(
        &mut self,
        now: Instant,
        call_id: u16,
        result: DialResult,
    ) -> Result<(), CommandError> {
        let call = self.call_in(call_id, &[CallState::Dialing])?;
        let peer_call_id = call.peer_call_id.unwrap_or(0);
        call.connect_speed = result.connect_speed;
        let ocrp = OutgoingCallReply {
            call_id,
            peer_call_id,
            result: result.result,
            error: result.error,
            cause_code: result.cause,
            connect_speed: result.connect_speed,
            packet_recv_window_size: self.config.recv_window,
            packet_processing_delay: self.config.processing_delay,
            physical_channel_id: result.physical_channel_id,
        };
        self.send(ocrp.into());
        if result.result == OutgoingCallResult::Connected {
            self.call_up(call_id, CallState::UpPac);
        } else {
            self.free_call(now, call_id, CallEnd::Local);
        }
        Ok(())
    }

    /// PNS: accept an incoming call (ICRP Connect); waits for ICCN.
    pub fn accept_call(&mut self, now: Instant, call_id: u16) -> Result<(), CommandError> {
        let call = self.call_in(call_id, &[CallState::DecideIcrq])?;
        let peer_call_id = call.peer_call_id.unwrap_or(0);
        let icrp = IncomingCallReply {
            call_id,
            peer_call_id,
            result: IncomingCallResult::Connect,
            error: ErrorCode::None,
            packet_recv_window_size: self.config.recv_window,
            packet_transmit_delay: self.config.processing_delay,
        };
        self.send_call_request(now, call_id, icrp.into());
        self.set_call_state(call_id, CallState::WaitIccn);
        Ok(())
    }

    /// PNS: refuse an incoming call (ICRP with `result`, Do Not Accept or General Error).
    pub fn reject_call(
        &mut self,
        now: Instant,
        call_id: u16,
        result: IncomingCallResult,
        error: ErrorCode,
    ) -> Result<(), CommandError> {
        let call = self.call_in(call_id, &[CallState::DecideIcrq])?;
        let peer_call_id = call.peer_call_id.unwrap_or(0);
        self.send(icrp_refusal(call_id, peer_call_id, result, error));
        self.free_call(now, call_id, CallEnd::Local);
        Ok(())
    }

    /// Ends a call from our side: the PAC side sends Call-Disconnect-Notify (Lost Carrier with
    /// `cause`) and frees the call; the PNS side sends Call-Clear-Request and waits for the CDN.
    pub fn hang_up(
        &mut self,
        now: Instant,
        call_id: u16,
        cause: CauseCode,
    ) -> Result<(), CommandError> {
        let state = self
            .calls
            .get(&call_id)
            .map(|c| c.state)
            .ok_or(CommandError::UnknownCall(call_id))?;
        match state {
            CallState::Dialing => {
                let mut r = DialResult::failed(OutgoingCallResult::NoCarrier);
                r.cause = cause;
                self.dial_result(now, call_id, r)?;
            }
            CallState::WaitIcrp | CallState::WaitAnswer | CallState::UpPac => {
                self.send_cdn(
                    call_id,
                    CallDisconnectResult::LostCarrier,
                    ErrorCode::None,
                    cause,
                );
                self.free_call(now, call_id, CallEnd::Local);
            }
            CallState::DecideIcrq => {
                self.reject_call(
                    now,
                    call_id,
                    IncomingCallResult::DoNotAccept,
                    ErrorCode::None,
                )?;
            }
            CallState::WaitIccn | CallState::WaitOcrp | CallState::UpPns => {
                self.send_ccrq(now, call_id);
            }
            CallState::WaitCdn => {}
        }
        Ok(())
    }

    /// Sets the Call Statistics text sent in this call's Call-Disconnect-Notify.
    pub fn set_call_statistics(&mut self, call_id: u16, text: CallStatistics) {
        if let Some(c) = self.calls.get_mut(&call_id) {
            c.statistics = text;
        }
    }

    /// PAC side: reports the line's cumulative HDLC error counters. Sends WAN-Error-Notify at
    /// most once per `wen_interval` per call; counters reported sooner are held back and the
    /// latest are sent when the interval has passed.
    pub fn wan_error(
        &mut self,
        now: Instant,
        call_id: u16,
        mut counters: WanErrorNotify,
    ) -> Result<(), CommandError> {
        let interval = self.config.wen_interval;
        let call = self.call_in(call_id, &[CallState::UpPac])?;
        counters.peer_call_id = call.peer_call_id.unwrap_or(0);
        let allowed = call.wen_last.map_or(true, |t| now >= t + interval);
        if allowed {
            call.wen_last = Some(now);
            call.wen_pending = None;
            self.send(counters.into());
        } else {
            let coalesced = call.wen_pending.replace(counters).is_some();
            if coalesced {
                self.stats.wen_coalesced += 1;
            }
        }
        Ok(())
    }

    /// PNS side: sends Set-Link-Info with the ACCMs PPP negotiated.
    pub fn set_link_info(
        &mut self,
        now: Instant,
        call_id: u16,
        send_accm: u32,
        receive_accm: u32,
    ) -> Result<(), CommandError> {
        let _ = now;
        let call = self.call_in(call_id, &[CallState::UpPns, CallState::UpPac])?;
        let sli = SetLinkInfo {
            peer_call_id: call.peer_call_id.unwrap_or(0),
            send_accm,
            receive_accm,
        };
        self.send(sli.into());
        Ok(())
    }

    // ----- internals -----

    fn set_state(&mut self, s: CtrlState) {
        if self.state != s {
            tracing::debug!("pptp ctrl: state {:?} -> {:?}", self.state, s);
            self.state = s;
        }
    }

    fn set_call_state(&mut self, id: u16, s: CallState) {
        if let Some(c) = self.calls.get_mut(&id) {
            tracing::debug!(call_id = id, "pptp call: state {:?} -> {:?}", c.state, s);
            c.state = s;
        }
    }

    fn announced_channels(&self) -> u16 {
        match self.config.role {
            Role::Pac => self.config.maximum_channels,
            // RFC 2637 §2.1: Maximum Channels "This field MUST be set to 0 by the PNS".
            Role::Pns => 0,
        }
    }

    fn send(&mut self, m: Message) {
        tracing::trace!(msg = m.control_type().abbreviation(), "pptp ctrl: send");
        self.transmit.push_back(m);
    }

    /// Sends a connection-level request and arms the reply timer the table names.
    fn send_request(&mut self, now: Instant, m: Message) {
        match spec(m.control_type()).timeout {
            Some(TimeoutKind::Echo) => {
                self.timers
                    .set(Timer::EchoReply, now + self.config.timeouts.echo_reply);
            }
            Some(kind) => {
                self.timers
                    .set(Timer::Reply, now + self.config.timeouts.get(kind));
            }
            None => {}
        }
        self.send(m);
    }

    /// Sends a call request and arms the call's deadline from the table.
    fn send_call_request(&mut self, now: Instant, id: u16, m: Message) {
        let timeout = spec(m.control_type())
            .timeout
            .map(|k| self.config.timeouts.get(k));
        if let Some(c) = self.calls.get_mut(&id) {
            c.deadline = timeout.map(|d| now + d);
        }
        self.send(m);
    }

    fn note_activity(&mut self, now: Instant) {
        if matches!(self.state, CtrlState::Established) {
            self.timers
                .set(Timer::EchoIdle, now + self.config.timeouts.echo_interval);
        }
    }

    fn establish(&mut self, now: Instant, peer: PeerInfo) {
        self.peer = Some(peer);
        self.timers.stop(Timer::Reply);
        self.set_state(CtrlState::Established);
        self.note_activity(now);
        self.events.push_back(Event::Established(peer));
    }

    fn close(&mut self, now: Instant, reason: CloseReason) {
        if self.state == CtrlState::Closed {
            return;
        }
        let mut ids: Vec<u16> = self.calls.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.free_call(now, id, CallEnd::ConnectionClosed);
        }
        self.timers.clear();
        self.set_state(CtrlState::Closed);
        self.events.push_back(Event::Closed(reason));
    }

    fn illegal(&mut self, now: Instant, t: ControlMessageType, scope: Scope, call: Option<u16>) {
        tracing::debug!(msg = t.abbreviation(), state = ?self.state, ?scope, "illegal message");
        match (scope, call) {
            (Scope::Call, Some(id)) => self.abort_call(now, id, CallEnd::ProtocolError(t)),
            // A call message illegal at the connection level (e.g. ICRQ before the connection
            // is established) has no call to abort: answer so the peer does not wait, if the
            // RFC gives an answer, else drop. Call-scoped damage never kills the connection.
            (Scope::Call, None) => {}
            (Scope::Ctrl, _) => {
                let state = self.state;
                self.close(now, CloseReason::ProtocolError { message: t, state });
            }
        }
    }

    fn find_call(&self, m: &Message, key: CallKey) -> Option<u16> {
        let id = match m {
            Message::OutgoingCallReply(r) => r.peer_call_id,
            Message::IncomingCallReply(r) => r.peer_call_id,
            Message::IncomingCallConnected(r) => r.peer_call_id,
            Message::CallClearRequest(r) => r.call_id,
            Message::CallDisconnectNotify(r) => r.call_id,
            Message::WanErrorNotify(r) => r.peer_call_id,
            Message::SetLinkInfo(r) => r.peer_call_id,
            _ => return None,
        };
        match key {
            CallKey::Local => self.calls.contains_key(&id).then_some(id),
            CallKey::Peer => {
                let mut found: Option<u16> = None;
                for (&ours, c) in &self.calls {
                    if c.peer_call_id == Some(id) && found.map_or(true, |f| ours < f) {
                        found = Some(ours);
                    }
                }
                found
            }
            CallKey::None | CallKey::New => None,
        }
    }

    fn call_in(&mut self, id: u16, states: &[CallState]) -> Result<&mut Call, CommandError> {
        let call = self
            .calls
            .get_mut(&id)
            .ok_or(CommandError::UnknownCall(id))?;
        if !states.contains(&call.state) {
            return Err(CommandError::WrongState {
                call_id: id,
                state: call.state,
            });
        }
        Ok(call)
    }

    /// The channel limit: ours, and the peer's Maximum Channels when it announced one (a PAC).
    fn channel_limit(&self) -> u16 {
        let ours = self.config.maximum_channels;
        match self.peer.map(|p| p.maximum_channels) {
            Some(theirs) if theirs != 0 && self.config.role == Role::Pns => ours.min(theirs),
            _ => ours,
        }
    }

    fn new_call(&mut self, now: Instant, state: CallState) -> Result<(u16, u16), CommandError> {
        if self.state != CtrlState::Established {
            return Err(CommandError::NotEstablished(self.state));
        }
        let limit = self.channel_limit();
        if self.calls.len() >= usize::from(limit) {
            return Err(CommandError::NoChannel(limit));
        }
        let calls = &self.calls;
        let id = self
            .ids
            .allocate(now, |id| calls.contains_key(&id))
            .ok_or(CommandError::NoCallId)?;
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        self.calls.insert(id, Call::new(state, serial));
        tracing::debug!(call_id = id, serial, ?state, "pptp call: new");
        Ok((id, serial))
    }

    fn call_up(&mut self, id: u16, state: CallState) {
        self.set_call_state(id, state);
        let pac_side = state.is_pac_side();
        if let Some(c) = self.calls.get_mut(&id) {
            c.deadline = None;
            let info = CallInfo {
                call_id: id,
                peer_call_id: c.peer_call_id.unwrap_or(0),
                serial: c.serial,
                connect_speed: c.connect_speed,
                framing: c.framing,
                peer_window: c.peer_window,
                peer_delay: c.peer_delay,
                pac_side,
            };
            self.events.push_back(Event::CallUp(info));
        }
    }

    fn free_call(&mut self, now: Instant, id: u16, end: CallEnd) {
        if let Some(call) = self.calls.remove(&id) {
            self.ids.release(id, now);
            tracing::debug!(call_id = id, ?end, "pptp call: down");
            if !call.down_reported {
                self.events.push_back(Event::CallDown { call_id: id, end });
            }
        }
    }

    fn send_cdn(
        &mut self,
        id: u16,
        result: CallDisconnectResult,
        error: ErrorCode,
        cause: CauseCode,
    ) {
        let statistics = self
            .calls
            .get(&id)
            .map_or_else(CallStatistics::empty, |c| c.statistics);
        self.send(
            CallDisconnectNotify {
                call_id: id,
                result,
                error,
                cause_code: cause,
                call_statistics: statistics,
            }
            .into(),
        );
    }

    fn send_ccrq(&mut self, now: Instant, id: u16) {
        self.send_call_request(now, id, CallClearRequest { call_id: id }.into());
        self.set_call_state(id, CallState::WaitCdn);
    }

    /// Tears a call down because of a protocol error or time-out, telling the peer the way the
    /// call's state allows.
    fn abort_call(&mut self, now: Instant, id: u16, end: CallEnd) {
        let Some(state) = self.calls.get(&id).map(|c| c.state) else {
            return;
        };
        let peer = self.peer_call_id(id).unwrap_or(0);
        match state {
            CallState::Dialing => {
                let result = if matches!(end, CallEnd::Timeout(_)) {
                    OutgoingCallResult::TimeOut
                } else {
                    OutgoingCallResult::GeneralError
                };
                self.send(
                    OutgoingCallReply {
                        call_id: id,
                        peer_call_id: peer,
                        result,
                        error: ErrorCode::None,
                        cause_code: CauseCode::None,
                        connect_speed: 0,
                        packet_recv_window_size: 0,
                        packet_processing_delay: 0,
                        physical_channel_id: 0,
                    }
                    .into(),
                );
                self.free_call(now, id, end);
            }
            CallState::WaitIcrp | CallState::WaitAnswer | CallState::UpPac => {
                // RFC 2637 §3.2.3.1: from wait_reply and established, "Abort/Send Call
                // Disconnect Notify".
                let (result, error) = match end {
                    CallEnd::ProtocolError(_) => {
                        (CallDisconnectResult::GeneralError, ErrorCode::BadValue)
                    }
                    _ => (CallDisconnectResult::AdminShutdown, ErrorCode::None),
                };
                self.send_cdn(id, result, error, CauseCode::None);
                self.free_call(now, id, end);
            }
            CallState::DecideIcrq => {
                self.send(icrp_refusal(
                    id,
                    peer,
                    IncomingCallResult::GeneralError,
                    ErrorCode::NoResource,
                ));
                self.free_call(now, id, end);
            }
            CallState::WaitIccn | CallState::WaitOcrp | CallState::UpPns => {
                // RFC 2637 §3.2.3.2: the PNS clears a call with Call-Clear-Request "and then
                // waits for a Call-Disconnect-Notify".
                self.send_ccrq(now, id);
                self.events.push_back(Event::CallDown { call_id: id, end });
                if let Some(c) = self.calls.get_mut(&id) {
                    // Reported now; freeing it on the CDN (or its time-out) stays silent.
                    c.down_reported = true;
                }
            }
            CallState::WaitCdn => self.free_call(now, id, end),
        }
    }

    fn call_timeout(&mut self, now: Instant, id: u16) {
        let Some(state) = self.calls.get(&id).map(|c| c.state) else {
            return;
        };
        tracing::debug!(call_id = id, ?state, "pptp call: time-out");
        if state == CallState::WaitCdn {
            // The peer never confirmed our Call-Clear-Request: forget the call.
            self.free_call(now, id, CallEnd::Timeout(state));
        } else {
            self.abort_call(now, id, CallEnd::Timeout(state));
        }
    }

    fn flush_wen(&mut self, now: Instant, id: u16) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(w) = call.wen_pending.take() {
            call.wen_last = Some(now);
            self.send(w.into());
        }
    }

    fn clear_call_for_shutdown(&mut self, now: Instant, id: u16) {
        let Some(state) = self.calls.get(&id).map(|c| c.state) else {
            return;
        };
        if state.is_pac_side() {
            if state == CallState::Dialing {
                self.abort_call(now, id, CallEnd::Local);
            } else {
                self.send_cdn(
                    id,
                    CallDisconnectResult::AdminShutdown,
                    ErrorCode::None,
                    CauseCode::None,
                );
                self.free_call(now, id, CallEnd::Local);
            }
        } else {
            if state != CallState::WaitCdn && state != CallState::DecideIcrq {
                self.send(CallClearRequest { call_id: id }.into());
            } else if state == CallState::DecideIcrq {
                let peer = self.peer_call_id(id).unwrap_or(0);
                self.send(icrp_refusal(
                    id,
                    peer,
                    IncomingCallResult::GeneralError,
                    ErrorCode::NoResource,
                ));
            }
            self.free_call(now, id, CallEnd::Local);
        }
    }

    // ----- receive handlers (the table has been checked) -----

    fn rx_sccrq(&mut self, now: Instant, r: StartControlConnectionRequest) {
        if let Some((local, peer)) = self.collision.take() {
            // RFC 2637 §3.1.3: "The 'winner' of the initiation race is the peer with the higher
            // IP address (compared as 32 bit unsigned values, network number more
            // significant)." ... "The winner MUST NOT send any messages on the connection the
            // loser initiated."
            let won = u32::from(local) > u32::from(peer);
            self.events.push_back(Event::Collision { won });
            if won {
                return self.close(now, CloseReason::CollisionWon);
            }
            // The loser "will respond to the winner's request with a
            // Start-Control-Connection-Reply message": continue below.
        }
        let peer = PeerInfo {
            protocol_version: r.protocol_version,
            framing: r.framing_capabilities,
            bearer: r.bearer_capabilities,
            maximum_channels: r.maximum_channels,
            firmware_revision: r.firmware_revision,
            host_name: r.host_name,
            vendor: r.vendor,
        };
        // RFC 2637 §2.2 Result Code 5: "The protocol version of the requester is not
        // supported". Version 1 is the only one; its revision is not checked (tolerance).
        let result = if r.protocol_version >> 8 != PROTOCOL_VERSION >> 8 {
            StartControlConnectionResult::VersionNotSupported
        } else {
            StartControlConnectionResult::Success
        };
        let sccrp = StartControlConnectionReply {
            protocol_version: PROTOCOL_VERSION,
            result,
            error: ErrorCode::None,
            framing_capabilities: self.config.framing,
            bearer_capabilities: self.config.bearer,
            maximum_channels: self.announced_channels(),
            firmware_revision: self.config.firmware_revision,
            host_name: self.config.host_name,
            vendor: self.config.vendor,
        };
        self.send(sccrp.into());
        if result == StartControlConnectionResult::Success {
            self.establish(now, peer);
        } else {
            self.close(now, CloseReason::StartRefused(result));
        }
    }

    fn rx_sccrp(&mut self, now: Instant, r: StartControlConnectionReply) {
        if r.result != StartControlConnectionResult::Success {
            return self.close(
                now,
                CloseReason::StartRejected {
                    result: r.result,
                    error: r.error,
                },
            );
        }
        self.establish(
            now,
            PeerInfo {
                protocol_version: r.protocol_version,
                framing: r.framing_capabilities,
                bearer: r.bearer_capabilities,
                maximum_channels: r.maximum_channels,
                firmware_revision: r.firmware_revision,
                host_name: r.host_name,
                vendor: r.vendor,
            },
        );
    }

    fn rx_stopccrq(&mut self, now: Instant, r: StopControlConnectionRequest) {
        // RFC 2637 §2.3: the sender "should clear all active calls" first; if the peer did
        // not, the calls die with the connection (CallDown for each, no messages: the peer is
        // tearing the connection down anyway).
        self.send(
            StopControlConnectionReply {
                result: StopControlConnectionResult::Ok,
                error: ErrorCode::None,
            }
            .into(),
        );
        self.close(now, CloseReason::PeerStopped(r.reason));
    }

    fn rx_icrq(&mut self, now: Instant, r: IncomingCallRequest) {
        if !self.config.accept_incoming {
            return self.send(icrp_refusal(
                0,
                r.call_id,
                IncomingCallResult::DoNotAccept,
                ErrorCode::None,
            ));
        }
        if self.peer_id_in_use(r.call_id) {
            return self.send(icrp_refusal(
                0,
                r.call_id,
                IncomingCallResult::GeneralError,
                ErrorCode::BadCallId,
            ));
        }
        match self.new_call(now, CallState::DecideIcrq) {
            Ok((id, _)) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.peer_call_id = Some(r.call_id);
                    c.deadline = Some(now + self.config.timeouts.decide);
                }
                self.events.push_back(Event::IncomingCallRequested {
                    call_id: id,
                    request: r,
                });
            }
            Err(_) => {
                // RFC 2637 §3.2.3: the PNS may refuse when "No resources are available to
                // handle more sessions".
                self.send(icrp_refusal(
                    0,
                    r.call_id,
                    IncomingCallResult::GeneralError,
                    ErrorCode::NoResource,
                ));
            }
        }
    }

    fn rx_ocrq(&mut self, now: Instant, r: OutgoingCallRequest) {
        let refuse = |result, error| {
            Message::from(OutgoingCallReply {
                call_id: 0,
                peer_call_id: r.call_id,
                result,
                error,
                cause_code: CauseCode::None,
                connect_speed: 0,
                packet_recv_window_size: 0,
                packet_processing_delay: 0,
                physical_channel_id: 0,
            })
        };
        if !self.config.accept_outgoing {
            return self.send(refuse(OutgoingCallResult::DoNotAccept, ErrorCode::None));
        }
        if self.peer_id_in_use(r.call_id) {
            return self.send(refuse(
                OutgoingCallResult::GeneralError,
                ErrorCode::BadCallId,
            ));
        }
        match self.new_call(now, CallState::Dialing) {
            Ok((id, _)) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.peer_call_id = Some(r.call_id);
                    c.peer_window = r.packet_recv_window_size;
                    c.peer_delay = r.packet_processing_delay;
                    c.framing = match r.framing_type {
                        FramingType::Sync => FramingType::Sync,
                        _ => FramingType::Async,
                    };
                    c.deadline = Some(now + self.config.timeouts.dial);
                }
                self.events.push_back(Event::OutgoingCallRequested {
                    call_id: id,
                    request: r,
                });
            }
            Err(_) => {
                self.send(refuse(
                    OutgoingCallResult::GeneralError,
                    ErrorCode::NoResource,
                ));
            }
        }
    }

    fn rx_icrp(&mut self, now: Instant, id: u16, r: IncomingCallReply) {
        if r.result != IncomingCallResult::Connect {
            return self.free_call(
                now,
                id,
                CallEnd::IncomingRejected {
                    result: r.result,
                    error: r.error,
                },
            );
        }
        if let Some(c) = self.calls.get_mut(&id) {
            c.peer_call_id = Some(r.call_id);
            c.peer_window = r.packet_recv_window_size;
            c.peer_delay = r.packet_transmit_delay;
            c.deadline = Some(now + self.config.timeouts.answer);
        }
        self.set_call_state(id, CallState::WaitAnswer);
        self.events.push_back(Event::AnswerCall { call_id: id });
    }

    fn rx_iccn(&mut self, id: u16, r: IncomingCallConnected) {
        if let Some(c) = self.calls.get_mut(&id) {
            c.peer_window = r.packet_recv_window_size;
            c.peer_delay = r.packet_transmit_delay;
            c.connect_speed = r.connect_speed;
            c.framing = r.framing_type;
        }
        self.call_up(id, CallState::UpPns);
    }

    fn rx_ocrp(&mut self, now: Instant, id: u16, r: OutgoingCallReply) {
        if r.result != OutgoingCallResult::Connected {
            return self.free_call(
                now,
                id,
                CallEnd::OutgoingFailed {
                    result: r.result,
                    error: r.error,
                    cause: r.cause_code,
                },
            );
        }
        if let Some(c) = self.calls.get_mut(&id) {
            c.peer_call_id = Some(r.call_id);
            c.peer_window = r.packet_recv_window_size;
            c.peer_delay = r.packet_processing_delay;
            c.connect_speed = r.connect_speed;
        }
        self.call_up(id, CallState::UpPns);
    }

    fn rx_ccrq(&mut self, now: Instant, id: u16) {
        // RFC 2637 §2.13 Result Code 4 (Request): "Call disconnected due to receipt of a
        // Call-Clear-Request".
        if self
            .calls
            .get(&id)
            .is_some_and(|c| c.state == CallState::Dialing)
        {
            // The OCRP is still owed: answer it (the call never came up), then the CDN.
            let peer = self.peer_call_id(id).unwrap_or(0);
            self.send(
                OutgoingCallReply {
                    call_id: id,
                    peer_call_id: peer,
                    result: OutgoingCallResult::GeneralError,
                    error: ErrorCode::None,
                    cause_code: CauseCode::None,
                    connect_speed: 0,
                    packet_recv_window_size: 0,
                    packet_processing_delay: 0,
                    physical_channel_id: 0,
                }
                .into(),
            );
        }
        self.send_cdn(
            id,
            CallDisconnectResult::Request,
            ErrorCode::None,
            CauseCode::None,
        );
        self.free_call(now, id, CallEnd::ClearedByPeer);
    }

    fn peer_id_in_use(&self, peer_id: u16) -> bool {
        self.calls.values().any(|c| c.peer_call_id == Some(peer_id))
    }
}

fn icrp_refusal(call_id: u16, peer: u16, result: IncomingCallResult, error: ErrorCode) -> Message {
    IncomingCallReply {
        call_id,
        peer_call_id: peer,
        result,
        error,
        packet_recv_window_size: 0,
        packet_transmit_delay: 0,
    }
    .into()
}

fn text_len<const N: usize>(t: &TextField<N>) -> u16 {
    u16::try_from(t.len()).unwrap_or(u16::MAX)
}
