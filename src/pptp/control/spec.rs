//! The message table (STYLE habit 11, after mpd's `gPptpMsgInfo`): for every control message, the
//! connection states and call states in which it is legal, how its call is found, which reply it
//! expects and how long we wait for it, and whether an illegal or broken instance kills the call
//! or the whole control connection.
//!
//! [`Connection`](super::Connection) consults [`spec`] before any handler runs; the handlers can
//! therefore assume the state they are written for. The tests at the bottom check the table
//! against the RFC 2637 state diagrams (section 3.2) cell by cell for the cases the issue names.

use crate::pptp::message::ControlMessageType;

/// States of the control connection (RFC 2637 §3.1, with mpd's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtrlState {
    /// Passive side: TCP is up, waiting for the peer's Start-Control-Connection-Request.
    Idle,
    /// Active side: our Start-Control-Connection-Request is out, waiting for the Reply.
    WaitCtlReply,
    /// Start-Control-Connection Request/Reply exchanged; calls may be set up.
    Established,
    /// Our Stop-Control-Connection-Request is out, waiting for the Reply.
    WaitStopReply,
    /// The control connection is over; the shell closes TCP once the transmit queue is empty.
    Closed,
}

impl CtrlState {
    const fn bit(self) -> u8 {
        match self {
            Self::Idle => 1,
            Self::WaitCtlReply => 2,
            Self::Established => 4,
            Self::WaitStopReply => 8,
            Self::Closed => 16,
        }
    }
}

/// A set of [`CtrlState`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtrlStates(u8);

impl CtrlStates {
    /// No state.
    pub const NONE: Self = Self(0);
    /// The set holding only `s`.
    pub const fn of(s: CtrlState) -> Self {
        Self(s.bit())
    }
    /// The set plus `s`.
    pub const fn with(self, s: CtrlState) -> Self {
        Self(self.0 | s.bit())
    }
    /// Whether `s` is in the set.
    pub const fn contains(self, s: CtrlState) -> bool {
        self.0 & s.bit() != 0
    }
}

/// States of one call. Which side of the call we are on is part of the state: the "PAC side"
/// answers Outgoing-Call-Requests, sends Incoming-Call-Requests and Call-Disconnect-Notify; the
/// "PNS side" sends Outgoing-Call-Requests and Call-Clear-Requests. A PAC in compat mode places
/// Outgoing-Call-Requests and is therefore on the PNS side of those calls; a PNS accepting a
/// PPTP client's Outgoing-Call-Request is on the PAC side of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// PAC side, incoming: ICRQ sent, waiting for ICRP (RFC 2637 §3.2.3.1 `wait_reply`).
    WaitIcrp,
    /// PAC side, incoming: ICRP (accept) received, the line is being answered.
    WaitAnswer,
    /// PAC side, outgoing: OCRQ received, the line is dialling; the OCRP is owed.
    Dialing,
    /// PAC side: the call is up (ICCN sent or OCRP Connected sent).
    UpPac,
    /// PNS side, incoming: ICRQ received, the shell decides whether to accept.
    DecideIcrq,
    /// PNS side, incoming: ICRP (accept) sent, waiting for ICCN (§3.2.3.2 `wait_connect`).
    WaitIccn,
    /// PNS side, outgoing: OCRQ sent, waiting for OCRP (§3.2.4.2 `wait_reply`).
    WaitOcrp,
    /// PNS side: the call is up (ICCN or OCRP Connected received).
    UpPns,
    /// PNS side: CCRQ sent, waiting for CDN (§3.2.3.2 `wait_disconnect`).
    WaitCdn,
}

impl CallState {
    const fn bit(self) -> u16 {
        match self {
            Self::WaitIcrp => 1,
            Self::WaitAnswer => 1 << 1,
            Self::Dialing => 1 << 2,
            Self::UpPac => 1 << 3,
            Self::DecideIcrq => 1 << 4,
            Self::WaitIccn => 1 << 5,
            Self::WaitOcrp => 1 << 6,
            Self::UpPns => 1 << 7,
            Self::WaitCdn => 1 << 8,
        }
    }

    /// Whether we are on the PAC side of this call (we send CDN, the peer sends CCRQ).
    pub const fn is_pac_side(self) -> bool {
        matches!(
            self,
            Self::WaitIcrp | Self::WaitAnswer | Self::Dialing | Self::UpPac
        )
    }

    /// Whether the call carries data (GRE may flow).
    pub const fn is_up(self) -> bool {
        matches!(self, Self::UpPac | Self::UpPns)
    }
}

/// A set of [`CallState`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallStates(u16);

impl CallStates {
    /// No state.
    pub const NONE: Self = Self(0);
    /// The set holding only `s`.
    pub const fn of(s: CallState) -> Self {
        Self(s.bit())
    }
    /// The set plus `s`.
    pub const fn with(self, s: CallState) -> Self {
        Self(self.0 | s.bit())
    }
    /// Whether `s` is in the set.
    pub const fn contains(self, s: CallState) -> bool {
        self.0 & s.bit() != 0
    }
}

/// How a message names its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKey {
    /// Not a call message (control connection management).
    None,
    /// Opens a new call; the message carries the sender's Call ID.
    New,
    /// Carries the receiver's (our) Call ID.
    Local,
    /// Carries the sender's (the peer's) Call ID.
    Peer,
}

/// What an illegal or broken instance of a message destroys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The whole control connection (and with it every call).
    Ctrl,
    /// Only the call the message names.
    Call,
}

/// Which configured time-out bounds the wait for a reply ([`Timeouts`](super::Timeouts)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// Start-Control-Connection-Reply.
    Start,
    /// Stop-Control-Connection-Reply.
    Stop,
    /// Echo-Reply.
    Echo,
    /// Incoming-Call-Reply.
    Icrp,
    /// Incoming-Call-Connected.
    Iccn,
    /// Outgoing-Call-Reply (covers dialling at the PAC).
    Ocrp,
    /// Call-Disconnect-Notify after our Call-Clear-Request.
    Cdn,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsgSpec {
    /// Connection states in which the message may arrive.
    pub ctrl: CtrlStates,
    /// Call states in which the message may arrive (only for [`CallKey::Local`]/[`CallKey::Peer`]).
    pub call: CallStates,
    /// How the message names its call.
    pub key: CallKey,
    /// The reply the sender of this message waits for.
    pub reply: Option<ControlMessageType>,
    /// How long the sender waits for `reply`.
    pub timeout: Option<TimeoutKind>,
    /// What an illegal instance of this message destroys.
    pub fatal_to: Scope,
}

use CallState as C;
use CtrlState as S;

const ESTABLISHED: CtrlStates = CtrlStates::of(S::Established);
/// Call messages are also accepted while our Stop-Control-Connection-Request is out (the peer
/// may have sent them before it saw ours).
const CALLS_OK: CtrlStates = ESTABLISHED.with(S::WaitStopReply);

/// The table. Dispatch calls this before any handler runs.
pub const fn spec(t: ControlMessageType) -> MsgSpec {
    use ControlMessageType as T;
    let none = MsgSpec {
        ctrl: CtrlStates::NONE,
        call: CallStates::NONE,
        key: CallKey::None,
        reply: None,
        timeout: None,
        fatal_to: Scope::Ctrl,
    };
    match t {
        // RFC 2637 §3.1.2: the SCCRQ opens the connection; only a passive side waiting for it
        // may receive one.
        T::StartControlConnectionRequest => MsgSpec {
            ctrl: CtrlStates::of(S::Idle),
            reply: Some(T::StartControlConnectionReply),
            timeout: Some(TimeoutKind::Start),
            ..none
        },
        T::StartControlConnectionReply => MsgSpec {
            ctrl: CtrlStates::of(S::WaitCtlReply),
            ..none
        },
        T::StopControlConnectionRequest => MsgSpec {
            ctrl: CtrlStates::of(S::WaitCtlReply)
                .with(S::Established)
                .with(S::WaitStopReply),
            reply: Some(T::StopControlConnectionReply),
            timeout: Some(TimeoutKind::Stop),
            ..none
        },
        T::StopControlConnectionReply => MsgSpec {
            ctrl: CtrlStates::of(S::WaitStopReply),
            ..none
        },
        T::EchoRequest => MsgSpec {
            ctrl: CALLS_OK,
            reply: Some(T::EchoReply),
            timeout: Some(TimeoutKind::Echo),
            ..none
        },
        T::EchoReply => MsgSpec {
            ctrl: CALLS_OK,
            ..none
        },
        T::OutgoingCallRequest => MsgSpec {
            ctrl: ESTABLISHED,
            key: CallKey::New,
            reply: Some(T::OutgoingCallReply),
            timeout: Some(TimeoutKind::Ocrp),
            fatal_to: Scope::Call,
            ..none
        },
        T::OutgoingCallReply => MsgSpec {
            ctrl: CALLS_OK,
            call: CallStates::of(C::WaitOcrp),
            key: CallKey::Local,
            fatal_to: Scope::Call,
            ..none
        },
        T::IncomingCallRequest => MsgSpec {
            ctrl: ESTABLISHED,
            key: CallKey::New,
            reply: Some(T::IncomingCallReply),
            timeout: Some(TimeoutKind::Icrp),
            fatal_to: Scope::Call,
            ..none
        },
        T::IncomingCallReply => MsgSpec {
            ctrl: CALLS_OK,
            call: CallStates::of(C::WaitIcrp),
            key: CallKey::Local,
            reply: Some(T::IncomingCallConnected),
            timeout: Some(TimeoutKind::Iccn),
            fatal_to: Scope::Call,
        },
        T::IncomingCallConnected => MsgSpec {
            ctrl: CALLS_OK,
            call: CallStates::of(C::WaitIccn),
            key: CallKey::Local,
            fatal_to: Scope::Call,
            ..none
        },
        // RFC 2637 §2.12: the PNS may clear a call "at any time"; the PAC answers with a CDN.
        T::CallClearRequest => MsgSpec {
            ctrl: CALLS_OK,
            call: CallStates::of(C::WaitAnswer)
                .with(C::Dialing)
                .with(C::UpPac),
            key: CallKey::Peer,
            reply: Some(T::CallDisconnectNotify),
            timeout: Some(TimeoutKind::Cdn),
            fatal_to: Scope::Call,
        },
        T::CallDisconnectNotify => MsgSpec {
            ctrl: CALLS_OK,
            call: CallStates::of(C::DecideIcrq)
                .with(C::WaitIccn)
                .with(C::WaitOcrp)
                .with(C::UpPns)
                .with(C::WaitCdn),
            key: CallKey::Peer,
            fatal_to: Scope::Call,
            ..none
        },
        T::WanErrorNotify => MsgSpec {
            ctrl: CALLS_OK,
            call: CallStates::of(C::UpPns),
            key: CallKey::Local,
            fatal_to: Scope::Call,
            ..none
        },
        // RFC 2637 §2.15 says the PNS sends Set-Link-Info to the PAC. Tolerance: pptp-linux
        // (which plays the PNS side of its own OCRQ) and servers that place the OCRQ differ on
        // who sends it, so it is accepted on either side of an established call and surfaced.
        T::SetLinkInfo => MsgSpec {
            ctrl: CALLS_OK,
            call: CallStates::of(C::UpPac).with(C::UpPns),
            key: CallKey::Local,
            fatal_to: Scope::Call,
            ..none
        },
        T::Unknown(_) => none,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use ControlMessageType as T;

    const ALL_CTRL: [CtrlState; 5] = [
        S::Idle,
        S::WaitCtlReply,
        S::Established,
        S::WaitStopReply,
        S::Closed,
    ];

    #[test]
    fn sccrq_only_while_waiting_for_it() {
        let s = spec(T::StartControlConnectionRequest);
        for st in ALL_CTRL {
            assert_eq!(s.ctrl.contains(st), st == S::Idle, "{st:?}");
        }
        assert_eq!(s.fatal_to, Scope::Ctrl);
        assert_eq!(s.reply, Some(T::StartControlConnectionReply));
    }

    #[test]
    fn nothing_is_legal_when_closed_or_unknown() {
        for v in 1..=15u16 {
            assert!(!spec(T::from(v)).ctrl.contains(S::Closed), "{v}");
        }
        assert_eq!(spec(T::Unknown(99)).ctrl, CtrlStates::NONE);
    }

    #[test]
    fn call_messages_are_call_scoped_and_keyed() {
        for v in 7..=15u16 {
            let s = spec(T::from(v));
            assert_eq!(s.fatal_to, Scope::Call, "{v}");
            assert_ne!(s.key, CallKey::None, "{v}");
            assert!(!s.ctrl.contains(S::Idle), "{v}");
        }
        for v in 1..=6u16 {
            assert_eq!(spec(T::from(v)).key, CallKey::None, "{v}");
        }
    }

    #[test]
    fn ccrq_reaches_only_the_pac_side_and_cdn_only_the_pns_side() {
        let all = [
            C::WaitIcrp,
            C::WaitAnswer,
            C::Dialing,
            C::UpPac,
            C::DecideIcrq,
            C::WaitIccn,
            C::WaitOcrp,
            C::UpPns,
            C::WaitCdn,
        ];
        for c in all {
            if spec(T::CallClearRequest).call.contains(c) {
                assert!(c.is_pac_side(), "{c:?}");
            }
            if spec(T::CallDisconnectNotify).call.contains(c) {
                assert!(!c.is_pac_side(), "{c:?}");
            }
        }
        assert!(spec(T::IncomingCallReply).call.contains(C::WaitIcrp));
        assert!(!spec(T::IncomingCallReply).call.contains(C::UpPac));
    }

    #[test]
    fn every_request_has_a_reply_and_a_timeout() {
        for t in [
            T::StartControlConnectionRequest,
            T::StopControlConnectionRequest,
            T::EchoRequest,
            T::OutgoingCallRequest,
            T::IncomingCallRequest,
            T::IncomingCallReply,
            T::CallClearRequest,
        ] {
            assert!(spec(t).reply.is_some(), "{t}");
            assert!(spec(t).timeout.is_some(), "{t}");
        }
    }
}
