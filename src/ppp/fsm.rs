//! The RFC 1661 option-negotiation automaton, shared by LCP, IPCP and CCP.
//!
//! One generic [`Fsm<N>`] implements the full state table of RFC 1661 section 4.1 (all ten
//! states, all sixteen events, all actions); each protocol supplies a [`Negotiator`] that builds
//! its own Configure-Request, judges the peer's, and digests Ack/Nak/Reject (STYLE habit 12,
//! after ppproto's `OptionFsm` and mpd's `struct fsmtype`).
//!
//! The state table, as the match arms in [`Fsm`] name it (RFC 1661 section 4.1):
//!
//! ```text
//!       | State
//!       |    0         1         2         3         4         5
//! Events| Initial   Starting  Closed    Stopped   Closing   Stopping
//! ------+-----------------------------------------------------------
//!  Up   |    2     irc,scr/6     -         -         -         -
//!  Down |    -         -         0       tls/1       0         1
//!  Open |  tls/1       1     irc,scr/6     3r        5r        5r
//!  Close|    0       tlf/0       2         2         4         4
//!   TO+ |    -         -         -         -       str/4     str/5
//!   TO- |    -         -         -         -       tlf/2     tlf/3
//!  RCR+ |    -         -       sta/2 irc,scr,sca/8   4         5
//!  RCR- |    -         -       sta/2 irc,scr,scn/6   4         5
//!  RCA  |    -         -       sta/2     sta/3       4         5
//!  RCN  |    -         -       sta/2     sta/3       4         5
//!  RTR  |    -         -       sta/2     sta/3     sta/4     sta/5
//!  RTA  |    -         -         2         3       tlf/2     tlf/3
//!  RUC  |    -         -       scj/2     scj/3     scj/4     scj/5
//!  RXJ+ |    -         -         2         3         4         5
//!  RXJ- |    -         -       tlf/2     tlf/3     tlf/2     tlf/3
//!  RXR  |    -         -         2         3         4         5
//!
//!       | State
//!       |    6         7         8           9
//! Events| Req-Sent  Ack-Rcvd  Ack-Sent    Opened
//! ------+-----------------------------------------
//!  Up   |    -         -         -           -
//!  Down |    1         1         1         tld/1
//!  Open |    6         7         8           9r
//!  Close|irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4
//!   TO+ |  scr/6     scr/6     scr/8         -
//!   TO- |  tlf/3p    tlf/3p    tlf/3p        -
//!  RCR+ |  sca/8   sca,tlu/9   sca/8   tld,scr,sca/8
//!  RCR- |  scn/6     scn/7     scn/6   tld,scr,scn/6
//!  RCA  |  irc/7     scr/6x  irc,tlu/9   tld,scr/6x
//!  RCN  |irc,scr/6   scr/6x  irc,scr/8   tld,scr/6x
//!  RTR  |  sta/6     sta/6     sta/6   tld,zrc,sta/5
//!  RTA  |    6         6         8       tld,scr/6
//!  RUC  |  scj/6     scj/7     scj/8       scj/9
//!  RXJ+ |    6         6         8           9
//!  RXJ- |  tlf/3     tlf/3     tlf/3   tld,irc,str/5
//!  RXR  |    6         7         8         ser/9
//! ```
//!
//! Options taken: the "r" (restart) option is off by default and switched on with
//! [`FsmConfig::restart_option`]; the "p" (passive) option is honoured by going to Stopped on
//! TO- (the table's entry); "x" (crossed connection) is handled as the table says. A "-" cell
//! "cannot occur in a properly implemented automaton"; the only way to reach one is a packet
//! arriving while the lower layer is down, which is dropped and counted.
//!
//! Sans-IO: time comes in as `now`, packets go out through [`Fsm::poll_transmit`], layer
//! events through [`Fsm::poll_event`] and the restart deadline through [`Fsm::poll_timeout`].
//! Control packets here are the PPP Information field only (code, identifier, length, data);
//! the caller adds the protocol number.

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

use crate::wire::Reader;

/// Configure-Request.
pub const CONFIGURE_REQUEST: u8 = 1;
/// Configure-Ack.
pub const CONFIGURE_ACK: u8 = 2;
/// Configure-Nak.
pub const CONFIGURE_NAK: u8 = 3;
/// Configure-Reject.
pub const CONFIGURE_REJECT: u8 = 4;
/// Terminate-Request.
pub const TERMINATE_REQUEST: u8 = 5;
/// Terminate-Ack.
pub const TERMINATE_ACK: u8 = 6;
/// Code-Reject.
pub const CODE_REJECT: u8 = 7;

/// Length of the code/identifier/length header.
const HEADER_LEN: usize = 4;

/// The ten states of RFC 1661 section 4.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// 0: lower layer down, no Open.
    Initial,
    /// 1: Open, waiting for the lower layer.
    Starting,
    /// 2: lower layer up, no Open.
    Closed,
    /// 3: negotiation failed or terminated; waiting for the peer or Open.
    Stopped,
    /// 4: Terminate-Request sent after Close.
    Closing,
    /// 5: Terminate-Request sent (or received) without Close.
    Stopping,
    /// 6: Configure-Request sent.
    ReqSent,
    /// 7: Configure-Request sent and acked.
    AckRcvd,
    /// 8: Configure-Request sent, peer's acked.
    AckSent,
    /// 9: both directions configured.
    Opened,
}

impl State {
    /// Whether the restart timer runs in this state (RFC 1661 section 4.6).
    fn timer_runs(self) -> bool {
        matches!(
            self,
            State::Closing | State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent
        )
    }
}

/// Counters and timer of RFC 1661 section 4.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsmConfig {
    /// Restart timer; RFC default 3 seconds.
    pub restart: Duration,
    /// Max-Terminate: Terminate-Requests sent without an Ack; RFC default 2.
    pub max_terminate: u8,
    /// Max-Configure: Configure-Requests sent without a valid reply; RFC default 10.
    pub max_configure: u8,
    /// Max-Failure: Configure-Naks sent without an Ack before Naks turn into Rejects; default 5.
    pub max_failure: u8,
    /// The "r" option of the state table: Open in Stopped, Stopping or Opened restarts the link
    /// (Down then Up).
    pub restart_option: bool,
}

impl Default for FsmConfig {
    fn default() -> Self {
        FsmConfig {
            restart: Duration::from_secs(3),
            max_terminate: 2,
            max_configure: 10,
            max_failure: 5,
            restart_option: false,
        }
    }
}

/// What a [`Negotiator`] decided about the peer's Configure-Request, built option by option.
///
/// The FSM turns it into Configure-Ack (nothing added), Configure-Nak or Configure-Reject.
/// Rejects win over Naks (RFC 1661 section 5.3: a Nak is sent only when every option is
/// recognizable and acceptable in type). Once Max-Failure Naks went out without an Ack, Naks
/// of options the peer sent become Rejects of those options, and Naks that would add an option
/// the peer did not send are dropped (RFC 1661 section 4.6, Max-Failure).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    naks: Vec<u8>,
    rejects: Vec<u8>,
    naks_allowed: bool,
}

impl Reply {
    fn new(naks_allowed: bool) -> Self {
        Reply {
            naks: Vec::new(),
            rejects: Vec::new(),
            naks_allowed,
        }
    }

    /// Whether Naks are still allowed (Max-Failure not yet reached).
    pub fn naks_allowed(&self) -> bool {
        self.naks_allowed
    }

    /// Rejects an option the peer sent; `kind` and `data` are echoed unchanged.
    pub fn reject(&mut self, kind: u8, data: &[u8]) {
        push_option(&mut self.rejects, kind, data);
    }

    /// Naks an option the peer sent, suggesting `suggestion` as its value; after Max-Failure
    /// this becomes a Reject of `kind`/`original`.
    pub fn nak(&mut self, kind: u8, original: &[u8], suggestion: &[u8]) {
        if self.naks_allowed {
            push_option(&mut self.naks, kind, suggestion);
        } else {
            push_option(&mut self.rejects, kind, original);
        }
    }

    /// Naks an option the peer did not send, asking it to include one (RFC 1661 section 5.3:
    /// "Options which have no value fields ... may be included in a Configure-Nak"); dropped
    /// after Max-Failure.
    pub fn nak_missing(&mut self, kind: u8, suggestion: &[u8]) {
        if self.naks_allowed {
            push_option(&mut self.naks, kind, suggestion);
        }
    }

    /// Whether nothing was Naked or Rejected so far.
    pub fn is_ack(&self) -> bool {
        self.naks.is_empty() && self.rejects.is_empty()
    }
}

/// Appends one option (type, length, data); data longer than 253 octets is cut to fit.
fn push_option(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    let data = data.get(..253).unwrap_or(data);
    out.push(kind);
    out.push(u8::try_from(data.len() + 2).unwrap_or(u8::MAX));
    out.extend_from_slice(data);
}

/// A malformed option list or a reply that does not fit the last request: the packet is
/// silently discarded, as RFC 1661 asks of invalid packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed or non-matching options")]
pub struct BadOptions;

/// The per-protocol half of the automaton: what LCP, IPCP and CCP each implement.
pub trait Negotiator {
    /// Protocol name for logs ("LCP", "IPCP", "CCP").
    const NAME: &'static str;

    /// Called on every Initialize-Restart-Count for Configure (irc before an scr), before any
    /// request is built, so per-negotiation state can start afresh; default: nothing.
    fn restart(&mut self) {}

    /// Writes the options of our next Configure-Request into `out` (empty for none).
    fn own_request(&mut self, out: &mut Vec<u8>);

    /// The peer acked our last request; `options` are exactly the ones we sent.
    fn own_acked(&mut self, options: &[u8]);

    /// The peer Naked (`rejected == false`) or Rejected our last request with `options`.
    /// Returns [`BadOptions`] when the list is malformed or (for a Reject) names options we
    /// did not send; the FSM then discards the packet.
    fn own_nacked(&mut self, options: &[u8], rejected: bool) -> Result<(), BadOptions>;

    /// Judges the peer's Configure-Request. Returns [`BadOptions`] when the list is malformed
    /// (the request is discarded); otherwise records the verdicts in `reply`. The values of an
    /// acked request are the peer's negotiated values.
    fn peer_request(&mut self, options: &[u8], reply: &mut Reply) -> Result<(), BadOptions>;

    /// Whether `code` (beyond 1..=7) is one this protocol knows; unknown codes get a
    /// Code-Reject (RUC). Known extra codes are handed back from [`Fsm::handle_packet`].
    fn knows_code(&self, code: u8) -> bool {
        let _ = code;
        false
    }
}

/// A layer event for the protocol above (RFC 1661 section 4.4 actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsmEvent {
    /// This-Layer-Up (tlu): the automaton entered Opened.
    Up,
    /// This-Layer-Down (tld): the automaton left Opened.
    Down,
    /// This-Layer-Started (tls): the lower layer is needed.
    Started,
    /// This-Layer-Finished (tlf): the lower layer is no longer needed, and why.
    Finished(FinishReason),
}

/// Why the automaton finished (the reason carried by tlf).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Close while Starting, or an administrative Close that completed.
    Closed,
    /// The peer acked our Terminate-Request.
    TerminateAcked,
    /// Max-Terminate Terminate-Requests went unanswered.
    TerminateTimeout,
    /// Max-Configure Configure-Requests went unanswered.
    ConfigureTimeout,
    /// The peer sent Terminate-Request.
    PeerTerminated,
    /// The peer rejected a code or protocol we cannot do without (RXJ-).
    CatastrophicReject,
    /// The peer answered Max-Configure requests in a row with Nak/Reject and never acked:
    /// a peer that Naks forever would otherwise hold the link (each valid Nak restarts the
    /// counter). Treated like TO- (tlf/3).
    NotConverging,
}

/// A packet with a code this protocol handles itself (Echo, Discard, Protocol-Reject, Reset…),
/// handed back by [`Fsm::handle_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraPacket<'a> {
    /// The code.
    pub code: u8,
    /// The identifier.
    pub identifier: u8,
    /// The data after the header, bounded by the Length field.
    pub data: &'a [u8],
}

/// Counters of discarded or odd input, for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsmStats {
    /// Packets too short, with a lying Length field, or with malformed options.
    pub malformed: u32,
    /// Acks/Naks/Rejects whose identifier or contents did not match our last request.
    pub unmatched: u32,
    /// Packets that arrived in a state where they cannot occur (lower layer down).
    pub unexpected: u32,
}

/// One RFC 1661 option-negotiation automaton around a protocol's [`Negotiator`].
#[derive(Debug)]
pub struct Fsm<N: Negotiator> {
    state: State,
    config: FsmConfig,
    negotiator: N,
    restart_count: u8,
    failure_count: u8,
    /// Valid Naks/Rejects received since our last Ack or fresh start.
    naks_received: u8,
    deadline: Option<Instant>,
    /// Identifier of the next packet we originate.
    next_id: u8,
    /// Identifier and options of our last Configure-Request.
    req_id: u8,
    req_options: Vec<u8>,
    term_reason: Vec<u8>,
    /// Identifier of the last received packet (a Terminate-Ack answers it).
    rx_id: u8,
    /// The peer's request being answered: identifier, options, verdicts.
    pending_reply: Option<(u8, Vec<u8>, Reply)>,
    /// The packet a Code-Reject will carry.
    rejected_scratch: Vec<u8>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<FsmEvent>,
    finish_reason: Option<FinishReason>,
    stats: FsmStats,
}

/// The sixteen events of RFC 1661 section 4.3 (used in logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Up,
    Down,
    Open,
    Close,
    ToPlus,
    ToMinus,
    RcrPlus,
    RcrMinus,
    Rca,
    Rcn,
    Rtr,
    Rta,
    Ruc,
    RxjPlus,
    RxjMinus,
}

impl<N: Negotiator> Fsm<N> {
    /// A new automaton in the Initial state.
    pub fn new(negotiator: N, config: FsmConfig) -> Self {
        Fsm {
            state: State::Initial,
            config,
            negotiator,
            restart_count: 0,
            failure_count: 0,
            naks_received: 0,
            deadline: None,
            next_id: 1,
            req_id: 0,
            req_options: Vec::new(),
            term_reason: Vec::new(),
            rx_id: 0,
            pending_reply: None,
            rejected_scratch: Vec::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            finish_reason: None,
            stats: FsmStats::default(),
        }
    }

    // ---- getters --------------------------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the automaton is Opened.
    pub fn is_opened(&self) -> bool {
        self.state == State::Opened
    }

    /// The protocol half.
    pub fn negotiator(&self) -> &N {
        &self.negotiator
    }

    /// The protocol half, mutably (for configuration between negotiations).
    pub fn negotiator_mut(&mut self) -> &mut N {
        &mut self.negotiator
    }

    /// The configuration.
    pub fn config(&self) -> &FsmConfig {
        &self.config
    }

    /// The restart counter.
    pub fn restart_count(&self) -> u8 {
        self.restart_count
    }

    /// Configure-Naks sent since the last Ack (compared against Max-Failure).
    pub fn failure_count(&self) -> u8 {
        self.failure_count
    }

    /// Why the automaton last finished (tlf), if it did.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish_reason
    }

    /// Discard counters.
    pub fn stats(&self) -> FsmStats {
        self.stats
    }

    // ---- outputs --------------------------------------------------------------------------

    /// The next control packet to send (code, identifier, length, data), if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let p = self.tx.pop_front();
        if self.tx.is_empty() {
            self.tx = VecDeque::new();
        }
        p
    }

    /// When [`Fsm::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The next layer event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<FsmEvent> {
        let e = self.events.pop_front();
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
        e
    }

    /// Queues a packet built by the protocol itself (Echo-Reply, Protocol-Reject, Reset…),
    /// with a fresh identifier when `identifier` is `None`. Returns the identifier used.
    pub fn send_packet(&mut self, code: u8, identifier: Option<u8>, data: &[u8]) -> u8 {
        let id = identifier.unwrap_or_else(|| self.fresh_id());
        self.queue(code, id, data);
        id
    }

    // ---- administrative events ------------------------------------------------------------

    /// Up: the lower layer is ready to carry packets.
    pub fn up(&mut self, now: Instant) {
        self.dispatch(now, Ev::Up);
    }

    /// Down: the lower layer is no longer available.
    pub fn down(&mut self, now: Instant) {
        self.dispatch(now, Ev::Down);
    }

    /// Open: the link is administratively allowed to come up.
    pub fn open(&mut self, now: Instant) {
        self.dispatch(now, Ev::Open);
    }

    /// Close: the link is to be taken down; `reason` goes into the Terminate-Request data.
    pub fn close(&mut self, now: Instant, reason: &[u8]) {
        self.term_reason.clear();
        self.term_reason.extend_from_slice(reason);
        self.dispatch(now, Ev::Close);
    }

    /// The peer rejected a code or protocol (Code-Reject, or Protocol-Reject via LCP):
    /// `catastrophic` selects RXJ- over RXJ+.
    pub fn reject_received(&mut self, now: Instant, catastrophic: bool) {
        if self.lower_is_down() {
            self.stats.unexpected += 1;
            return;
        }
        self.dispatch(
            now,
            if catastrophic {
                Ev::RxjMinus
            } else {
                Ev::RxjPlus
            },
        );
    }

    /// RXR (Echo-Request, Echo-Reply, Discard-Request) never changes the state; the protocol
    /// answers it (ser) only when this returns true, i.e. in Opened.
    pub fn echo_allowed(&self) -> bool {
        self.state == State::Opened
    }

    /// The restart timer: TO+ while the counter is above zero, TO- once it reached zero.
    /// Calling it early is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(d) if d <= now => {
                self.deadline = None;
                let ev = if self.restart_count > 0 {
                    Ev::ToPlus
                } else {
                    Ev::ToMinus
                };
                self.dispatch(now, ev);
            }
            _ => {}
        }
    }

    // ---- received packets -----------------------------------------------------------------

    /// Handles one received control packet (the PPP Information field). Returns a packet the
    /// protocol must handle itself (a code it [knows](Negotiator::knows_code) beyond 1..=7, or
    /// Code-Reject of such a code); everything else is consumed here.
    pub fn handle_packet<'a>(&mut self, now: Instant, packet: &'a [u8]) -> Option<ExtraPacket<'a>> {
        let Some((code, id, data)) = parse_header(packet) else {
            self.stats.malformed += 1;
            return None;
        };
        let _span = tracing::trace_span!("rx", proto = N::NAME, code, id).entered();
        if self.lower_is_down() {
            // Initial and Starting: every receive event is "-" in the table.
            self.stats.unexpected += 1;
            return None;
        }
        self.rx_id = id;
        match code {
            CONFIGURE_REQUEST => self.rx_configure_request(now, id, data),
            CONFIGURE_ACK => self.rx_configure_ack(now, id, data),
            CONFIGURE_NAK | CONFIGURE_REJECT => {
                self.rx_configure_nak(now, id, data, code == CONFIGURE_REJECT)
            }
            TERMINATE_REQUEST => self.dispatch(now, Ev::Rtr),
            TERMINATE_ACK => self.dispatch(now, Ev::Rta),
            CODE_REJECT => {
                // The rejected packet starts with its code.
                let Some(&rejected) = data.first() else {
                    self.stats.malformed += 1;
                    return None;
                };
                if (CONFIGURE_REQUEST..=CODE_REJECT).contains(&rejected) {
                    // Rejecting a code of the automaton itself leaves nothing to negotiate.
                    self.dispatch(now, Ev::RxjMinus);
                } else {
                    self.dispatch(now, Ev::RxjPlus);
                    return Some(ExtraPacket {
                        code,
                        identifier: id,
                        data,
                    });
                }
            }
            other if self.negotiator.knows_code(other) => {
                // RXR (Echo, Discard) and protocol-specific codes: the protocol decides.
                return Some(ExtraPacket {
                    code,
                    identifier: id,
                    data,
                });
            }
            _ => {
                // RUC: Code-Reject echoes the rejected packet, cut to the Length field.
                let bounded = packet.get(..HEADER_LEN + data.len()).unwrap_or(packet);
                self.rejected_packet_scratch(bounded);
                self.dispatch(now, Ev::Ruc);
            }
        }
        None
    }

    fn rx_configure_request(&mut self, now: Instant, id: u8, options: &[u8]) {
        if matches!(self.state, State::Closing | State::Stopping) {
            // Table: RCR in Closing/Stopping leaves the state unchanged and sends nothing.
            let ev = Ev::RcrPlus;
            self.dispatch(now, ev);
            return;
        }
        if matches!(self.state, State::Closed) {
            // Closed: sta/2 whatever the request says, without judging it.
            self.dispatch(now, Ev::RcrPlus);
            return;
        }
        let mut reply = Reply::new(self.failure_count < self.config.max_failure);
        if self.negotiator.peer_request(options, &mut reply).is_err() {
            self.stats.malformed += 1;
            return;
        }
        self.pending_reply = Some((id, options.to_vec(), reply));
        let ack = self
            .pending_reply
            .as_ref()
            .is_some_and(|(_, _, r)| r.is_ack());
        self.dispatch(now, if ack { Ev::RcrPlus } else { Ev::RcrMinus });
        self.pending_reply = None;
    }

    fn rx_configure_ack(&mut self, now: Instant, id: u8, options: &[u8]) {
        // RFC 1661 5.2: "If the Identifier field does not match, or the Configuration Options
        // are not identical to those of the Configure-Request, the Configure-Ack MUST be
        // silently discarded" — where a request is outstanding.
        if self.awaits_reply() && (id != self.req_id || options != self.req_options.as_slice()) {
            self.stats.unmatched += 1;
            return;
        }
        if self.awaits_reply() {
            self.negotiator.own_acked(options);
            self.naks_received = 0;
        }
        self.dispatch(now, Ev::Rca);
    }

    fn rx_configure_nak(&mut self, now: Instant, id: u8, options: &[u8], rejected: bool) {
        if self.awaits_reply() {
            // RFC 1661 5.3/5.4: a Nak or Reject whose Identifier does not match the last
            // Configure-Request "MUST be silently discarded".
            if id != self.req_id {
                self.stats.unmatched += 1;
                return;
            }
            if self.negotiator.own_nacked(options, rejected).is_err() {
                self.stats.malformed += 1;
                return;
            }
            self.naks_received = self.naks_received.saturating_add(1);
            if self.naks_received > self.config.max_configure
                && matches!(self.state, State::ReqSent | State::AckRcvd | State::AckSent)
            {
                // Not an RFC event: the table's TO- outcome (tlf/3) for a peer that never
                // lets the negotiation converge.
                self.tlf(FinishReason::NotConverging);
                self.set_state(State::Stopped, Ev::ToMinus);
                return;
            }
        }
        self.dispatch(now, Ev::Rcn);
    }

    /// Whether a Configure-Request of ours is outstanding and replies to it are digested.
    fn awaits_reply(&self) -> bool {
        matches!(
            self.state,
            State::ReqSent | State::AckRcvd | State::AckSent | State::Opened
        )
    }

    fn lower_is_down(&self) -> bool {
        matches!(self.state, State::Initial | State::Starting)
    }

    // ---- the state table ------------------------------------------------------------------

    fn dispatch(&mut self, now: Instant, ev: Ev) {
        use State::*;
        let from = self.state;
        let to = match (ev, from) {
            // -- Up
            (Ev::Up, Initial) => Closed, // Up: 2
            (Ev::Up, Starting) => {
                self.irc_configure(); // Up: irc,scr/6
                self.scr(now);
                ReqSent
            }
            (Ev::Up, s) => s, // "-"

            // -- Down
            (Ev::Down, Closed) => Initial, // Down: 0
            (Ev::Down, Stopped) => {
                self.tls(); // Down: tls/1
                Starting
            }
            (Ev::Down, Closing) => Initial, // Down: 0
            (Ev::Down, Stopping | ReqSent | AckRcvd | AckSent) => Starting, // Down: 1
            (Ev::Down, Opened) => {
                self.tld(); // Down: tld/1
                Starting
            }
            (Ev::Down, s @ (Initial | Starting)) => s, // "-"

            // -- Open
            (Ev::Open, Initial) => {
                self.tls(); // Open: tls/1
                Starting
            }
            (Ev::Open, Starting) => Starting, // Open: 1
            (Ev::Open, Closed) => {
                self.irc_configure(); // Open: irc,scr/6
                self.scr(now);
                ReqSent
            }
            (Ev::Open, Stopped | Stopping | Opened) if self.config.restart_option => {
                // Open: 3r/5r/9r with the restart option: Down then Up.
                self.dispatch(now, Ev::Down);
                self.dispatch(now, Ev::Up);
                return;
            }
            (Ev::Open, Stopped) => Stopped,   // Open: 3r
            (Ev::Open, Closing) => Stopping,  // Open: 5r
            (Ev::Open, Stopping) => Stopping, // Open: 5r
            (Ev::Open, s @ (ReqSent | AckRcvd | AckSent | Opened)) => s, // Open: 6/7/8/9r

            // -- Close
            (Ev::Close, Initial) => Initial, // Close: 0
            (Ev::Close, Starting) => {
                self.tlf(FinishReason::Closed); // Close: tlf/0
                Initial
            }
            (Ev::Close, Closed | Stopped) => Closed, // Close: 2
            (Ev::Close, Closing | Stopping) => Closing, // Close: 4
            (Ev::Close, ReqSent | AckRcvd | AckSent) => {
                self.irc_terminate(); // Close: irc,str/4
                self.str(now);
                Closing
            }
            (Ev::Close, Opened) => {
                self.tld(); // Close: tld,irc,str/4
                self.irc_terminate();
                self.str(now);
                Closing
            }

            // -- TO+
            (Ev::ToPlus, s @ (Closing | Stopping)) => {
                self.str(now); // TO+: str/4, str/5
                s
            }
            (Ev::ToPlus, ReqSent | AckRcvd) => {
                self.scr_retransmit(now); // TO+: scr/6
                ReqSent
            }
            (Ev::ToPlus, AckSent) => {
                self.scr_retransmit(now); // TO+: scr/8
                AckSent
            }
            (Ev::ToPlus, s) => s, // "-"

            // -- TO-
            (Ev::ToMinus, Closing) => {
                let reason = self.terminate_finish_reason();
                self.tlf(reason); // TO-: tlf/2
                Closed
            }
            (Ev::ToMinus, Stopping) => {
                let reason = self.terminate_finish_reason();
                self.tlf(reason); // TO-: tlf/3
                Stopped
            }
            (Ev::ToMinus, ReqSent | AckRcvd | AckSent) => {
                self.tlf(FinishReason::ConfigureTimeout); // TO-: tlf/3p
                Stopped
            }
            (Ev::ToMinus, s) => s, // "-"

            // -- RCR+ / RCR-
            (Ev::RcrPlus | Ev::RcrMinus, Closed) => {
                self.sta(); // RCR: sta/2
                Closed
            }
            (Ev::RcrPlus, Stopped) => {
                self.irc_configure(); // RCR+: irc,scr,sca/8
                self.scr(now);
                self.sca();
                AckSent
            }
            (Ev::RcrMinus, Stopped) => {
                self.irc_configure(); // RCR-: irc,scr,scn/6
                self.scr(now);
                self.scn();
                ReqSent
            }
            (Ev::RcrPlus | Ev::RcrMinus, s @ (Closing | Stopping)) => s, // RCR: 4, 5
            (Ev::RcrPlus, ReqSent | AckSent) => {
                self.sca(); // RCR+: sca/8
                AckSent
            }
            (Ev::RcrPlus, AckRcvd) => {
                self.sca(); // RCR+: sca,tlu/9
                self.tlu();
                Opened
            }
            (Ev::RcrPlus, Opened) => {
                self.tld(); // RCR+: tld,scr,sca/8
                self.scr(now);
                self.sca();
                AckSent
            }
            (Ev::RcrMinus, ReqSent | AckSent) => {
                self.scn(); // RCR-: scn/6 (from Req-Sent and Ack-Sent)
                ReqSent
            }
            (Ev::RcrMinus, AckRcvd) => {
                self.scn(); // RCR-: scn/7
                AckRcvd
            }
            (Ev::RcrMinus, Opened) => {
                self.tld(); // RCR-: tld,scr,scn/6
                self.scr(now);
                self.scn();
                ReqSent
            }
            (Ev::RcrPlus | Ev::RcrMinus, s @ (Initial | Starting)) => s, // "-"

            // -- RCA
            (Ev::Rca | Ev::Rcn, Closed | Stopped) => {
                self.sta(); // RCA/RCN: sta/2, sta/3
                from
            }
            (Ev::Rca | Ev::Rcn, s @ (Closing | Stopping)) => s, // RCA/RCN: 4, 5
            (Ev::Rca, ReqSent) => {
                self.irc_keep_failures(); // RCA: irc/7
                AckRcvd
            }
            (Ev::Rca | Ev::Rcn, AckRcvd) => {
                self.scr(now); // RCA/RCN: scr/6x (crossed connection)
                ReqSent
            }
            (Ev::Rca, AckSent) => {
                self.irc_keep_failures(); // RCA: irc,tlu/9
                self.tlu();
                Opened
            }
            (Ev::Rca | Ev::Rcn, Opened) => {
                self.tld(); // RCA/RCN: tld,scr/6x
                self.scr(now);
                ReqSent
            }

            // -- RCN
            (Ev::Rcn, ReqSent) => {
                self.irc_keep_failures(); // RCN: irc,scr/6
                self.scr(now);
                ReqSent
            }
            (Ev::Rcn, AckSent) => {
                self.irc_keep_failures(); // RCN: irc,scr/8
                self.scr(now);
                AckSent
            }
            (Ev::Rca | Ev::Rcn, s @ (Initial | Starting)) => s, // "-"

            // -- RTR
            (Ev::Rtr, s @ (Closed | Stopped | Closing | Stopping)) => {
                self.sta(); // RTR: sta/2, sta/3, sta/4, sta/5
                s
            }
            (Ev::Rtr, ReqSent | AckRcvd | AckSent) => {
                self.sta(); // RTR: sta/6
                ReqSent
            }
            (Ev::Rtr, Opened) => {
                self.tld(); // RTR: tld,zrc,sta/5
                self.zrc(now);
                self.sta();
                self.finish_reason = Some(FinishReason::PeerTerminated);
                Stopping
            }
            (Ev::Rtr, s @ (Initial | Starting)) => s, // "-"

            // -- RTA
            (Ev::Rta, s @ (Closed | Stopped)) => s, // RTA: 2, 3
            (Ev::Rta, Closing) => {
                let reason = self.terminate_finish_reason_acked();
                self.tlf(reason); // RTA: tlf/2
                Closed
            }
            (Ev::Rta, Stopping) => {
                let reason = self.terminate_finish_reason_acked();
                self.tlf(reason); // RTA: tlf/3
                Stopped
            }
            (Ev::Rta, ReqSent | AckRcvd) => ReqSent, // RTA: 6
            (Ev::Rta, AckSent) => AckSent,           // RTA: 8
            (Ev::Rta, Opened) => {
                self.tld(); // RTA: tld,scr/6
                self.scr(now);
                ReqSent
            }
            (Ev::Rta, s @ (Initial | Starting)) => s, // "-"

            // -- RUC
            (Ev::Ruc, s) => {
                if !matches!(s, Initial | Starting) {
                    self.scj(); // RUC: scj/<same state>
                }
                s
            }

            // -- RXJ+
            (Ev::RxjPlus, AckRcvd) => ReqSent, // RXJ+: 6 (as printed in RFC 1661)
            (Ev::RxjPlus, s) => s,             // RXJ+: 2, 3, 4, 5, 6, 8, 9

            // -- RXJ-
            (Ev::RxjMinus, Closed | Closing) => {
                self.tlf(FinishReason::CatastrophicReject); // RXJ-: tlf/2
                Closed
            }
            (Ev::RxjMinus, Stopped | Stopping | ReqSent | AckRcvd | AckSent) => {
                self.tlf(FinishReason::CatastrophicReject); // RXJ-: tlf/3
                Stopped
            }
            (Ev::RxjMinus, Opened) => {
                self.tld(); // RXJ-: tld,irc,str/5
                self.irc_terminate();
                self.finish_reason = Some(FinishReason::CatastrophicReject);
                self.str(now);
                Stopping
            }
            (Ev::RxjMinus, s @ (Initial | Starting)) => s, // "-"
        };
        self.set_state(to, ev);
    }

    fn set_state(&mut self, to: State, ev: Ev) {
        if to != self.state {
            tracing::debug!("{}: {:?} on {:?} -> {:?}", N::NAME, self.state, ev, to);
        }
        self.state = to;
        if !to.timer_runs() {
            self.deadline = None;
        }
    }

    // ---- actions (RFC 1661 section 4.4) ---------------------------------------------------

    fn tlu(&mut self) {
        self.events.push_back(FsmEvent::Up);
    }

    fn tld(&mut self) {
        self.events.push_back(FsmEvent::Down);
    }

    fn tls(&mut self) {
        self.finish_reason = None;
        self.events.push_back(FsmEvent::Started);
    }

    fn tlf(&mut self, reason: FinishReason) {
        self.finish_reason = Some(reason);
        self.events.push_back(FsmEvent::Finished(reason));
    }

    /// irc for Configure-Requests: also starts a fresh negotiation (failure count, negotiator).
    fn irc_configure(&mut self) {
        self.restart_count = self.config.max_configure;
        self.failure_count = 0;
        self.naks_received = 0;
        self.negotiator.restart();
    }

    /// irc after a valid reply: the counter restarts, the negotiation goes on.
    fn irc_keep_failures(&mut self) {
        self.restart_count = self.config.max_configure;
    }

    fn irc_terminate(&mut self) {
        self.restart_count = self.config.max_terminate;
    }

    fn zrc(&mut self, now: Instant) {
        // "zrc ... sets the Restart counter to zero. ... the Restart timer is started, for a
        // single timeout, to allow the Terminate-Ack to be transmitted."
        self.restart_count = 0;
        self.deadline = Some(now + self.config.restart);
    }

    /// scr with new contents: a fresh identifier and freshly built options.
    fn scr(&mut self, now: Instant) {
        self.req_options.clear();
        let mut options = std::mem::take(&mut self.req_options);
        self.negotiator.own_request(&mut options);
        self.req_options = options;
        self.req_id = self.fresh_id();
        self.send_request(now);
    }

    /// scr on TO+: "For retransmissions, the Identifier MAY remain unchanged"; the options
    /// are rebuilt (a Nak may have changed them) and a changed request gets a new identifier.
    fn scr_retransmit(&mut self, now: Instant) {
        let mut options = Vec::new();
        self.negotiator.own_request(&mut options);
        if options != self.req_options {
            self.req_options = options;
            self.req_id = self.fresh_id();
        }
        self.send_request(now);
    }

    fn send_request(&mut self, now: Instant) {
        self.restart_count = self.restart_count.saturating_sub(1);
        let (id, options) = (self.req_id, std::mem::take(&mut self.req_options));
        self.queue(CONFIGURE_REQUEST, id, &options);
        self.req_options = options;
        self.deadline = Some(now + self.config.restart);
    }

    fn sca(&mut self) {
        if let Some((id, options, _)) = self.pending_reply.take() {
            self.queue(CONFIGURE_ACK, id, &options);
            self.failure_count = 0;
        }
    }

    fn scn(&mut self) {
        if let Some((id, _, reply)) = self.pending_reply.take() {
            if reply.rejects.is_empty() {
                self.queue(CONFIGURE_NAK, id, &reply.naks);
                self.failure_count = self.failure_count.saturating_add(1);
            } else {
                self.queue(CONFIGURE_REJECT, id, &reply.rejects);
            }
        }
    }

    fn str(&mut self, now: Instant) {
        self.restart_count = self.restart_count.saturating_sub(1);
        let id = self.fresh_id();
        let reason = std::mem::take(&mut self.term_reason);
        self.queue(TERMINATE_REQUEST, id, &reason);
        self.term_reason = reason;
        self.deadline = Some(now + self.config.restart);
    }

    fn sta(&mut self) {
        let id = self.rx_id;
        self.queue(TERMINATE_ACK, id, &[]);
    }

    fn scj(&mut self) {
        let rejected = std::mem::take(&mut self.rejected_scratch);
        let id = self.fresh_id();
        self.queue(CODE_REJECT, id, &rejected);
    }

    fn rejected_packet_scratch(&mut self, packet: &[u8]) {
        self.rejected_scratch.clear();
        self.rejected_scratch.extend_from_slice(packet);
    }

    fn terminate_finish_reason(&self) -> FinishReason {
        match self.finish_reason {
            Some(r @ (FinishReason::PeerTerminated | FinishReason::CatastrophicReject)) => r,
            _ => FinishReason::TerminateTimeout,
        }
    }

    fn terminate_finish_reason_acked(&self) -> FinishReason {
        match self.finish_reason {
            Some(r @ (FinishReason::PeerTerminated | FinishReason::CatastrophicReject)) => r,
            _ => FinishReason::TerminateAcked,
        }
    }

    fn fresh_id(&mut self) -> u8 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    fn queue(&mut self, code: u8, id: u8, data: &[u8]) {
        tracing::trace!(proto = N::NAME, code, id, len = data.len(), "tx");
        self.tx.push_back(build_packet(code, id, data));
    }
}

/// Builds a control packet: code, identifier, length, data (data cut to fit 65535 octets).
pub fn build_packet(code: u8, id: u8, data: &[u8]) -> Vec<u8> {
    let data = data
        .get(..usize::from(u16::MAX) - HEADER_LEN)
        .unwrap_or(data);
    let len = u16::try_from(data.len() + HEADER_LEN).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(data.len() + HEADER_LEN);
    out.push(code);
    out.push(id);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Splits a control packet into code, identifier and data bounded by the Length field.
///
/// RFC 1661 section 5: "Octets outside the range of the Length field are treated as padding
/// and are ignored on reception"; a Length below 4 or beyond the packet makes it invalid.
pub fn parse_header(packet: &[u8]) -> Option<(u8, u8, &[u8])> {
    let mut r = Reader::new(packet);
    let code = r.u8().ok()?;
    let id = r.u8().ok()?;
    let len = usize::from(r.u16().ok()?);
    let data_len = len.checked_sub(HEADER_LEN)?;
    let data = r.take(data_len).ok()?;
    Some((code, id, data))
}

#[cfg(test)]
mod test {
    use super::*;

    /// A protocol with one option (type 1, one octet of value) plus two test options: type 8 is
    /// always Naked (suggesting 1), type 9 always Rejected. Code 9 is a known extra code.
    #[derive(Debug, Default)]
    struct Fake {
        value: u8,
        acked: Vec<Vec<u8>>,
        restarts: u32,
    }

    impl Negotiator for Fake {
        const NAME: &'static str = "FAKE";
        fn restart(&mut self) {
            self.restarts += 1;
        }
        fn own_request(&mut self, out: &mut Vec<u8>) {
            out.extend_from_slice(&[1, 3, self.value]);
        }
        fn own_acked(&mut self, options: &[u8]) {
            self.acked.push(options.to_vec());
        }
        fn own_nacked(&mut self, options: &[u8], rejected: bool) -> Result<(), BadOptions> {
            match options {
                [1, 3, v] if !rejected => {
                    self.value = *v;
                    Ok(())
                }
                [1, 3, _] => Ok(()),
                _ => Err(BadOptions),
            }
        }
        fn peer_request(&mut self, options: &[u8], reply: &mut Reply) -> Result<(), BadOptions> {
            let mut r = Reader::new(options);
            while !r.is_empty() {
                let kind = r.u8().map_err(|_| BadOptions)?;
                let len = usize::from(r.u8().map_err(|_| BadOptions)?);
                let data = r
                    .take(len.checked_sub(2).ok_or(BadOptions)?)
                    .map_err(|_| BadOptions)?;
                match kind {
                    8 => reply.nak(8, data, &[1]),
                    9 => reply.reject(9, data),
                    _ => {}
                }
            }
            Ok(())
        }
        fn knows_code(&self, code: u8) -> bool {
            code == 9
        }
    }

    fn t0() -> Instant {
        Instant::now()
    }

    fn fsm() -> Fsm<Fake> {
        Fsm::new(Fake::default(), FsmConfig::default())
    }

    fn drain(f: &mut Fsm<Fake>) -> (Vec<Vec<u8>>, Vec<FsmEvent>) {
        let mut tx = Vec::new();
        while let Some(p) = f.poll_transmit() {
            tx.push(p);
        }
        let mut ev = Vec::new();
        while let Some(e) = f.poll_event() {
            ev.push(e);
        }
        (tx, ev)
    }

    const GOOD_RCR: &[u8] = &[1, 0x55, 0, 7, 1, 3, 0x42];
    const BAD_RCR: &[u8] = &[1, 0x56, 0, 7, 8, 3, 0];

    fn ack_of_ours(f: &Fsm<Fake>) -> Vec<u8> {
        build_packet(CONFIGURE_ACK, f.req_id, &f.req_options)
    }

    fn nak_of_ours(f: &Fsm<Fake>) -> Vec<u8> {
        build_packet(CONFIGURE_NAK, f.req_id, &[1, 3, 0x43])
    }

    /// Drives a fresh automaton into `state` and drains what that produced.
    fn in_state(state: State, now: Instant) -> Fsm<Fake> {
        let mut f = fsm();
        match state {
            State::Initial => {}
            State::Starting => f.open(now),
            State::Closed => f.up(now),
            State::ReqSent => {
                f.up(now);
                f.open(now);
            }
            State::Stopped => {
                f = in_state(State::ReqSent, now);
                f.reject_received(now, true);
            }
            State::AckRcvd => {
                f = in_state(State::ReqSent, now);
                let ack = ack_of_ours(&f);
                assert!(f.handle_packet(now, &ack).is_none());
            }
            State::AckSent => {
                f = in_state(State::ReqSent, now);
                assert!(f.handle_packet(now, GOOD_RCR).is_none());
            }
            State::Opened => {
                f = in_state(State::AckRcvd, now);
                assert!(f.handle_packet(now, GOOD_RCR).is_none());
            }
            State::Closing => {
                f = in_state(State::Opened, now);
                f.close(now, b"bye");
            }
            State::Stopping => {
                f = in_state(State::Opened, now);
                assert!(f.handle_packet(now, &[5, 0x66, 0, 4]).is_none());
            }
        }
        assert_eq!(f.state(), state, "setup for {state:?}");
        drain(&mut f);
        f
    }

    fn apply(f: &mut Fsm<Fake>, ev: &str, now: Instant) {
        let later = now + f.config.restart;
        match ev {
            "Up" => f.up(now),
            "Down" => f.down(now),
            "Open" => f.open(now),
            "Close" => f.close(now, b"admin"),
            "TO+" => {
                if f.deadline.is_some() {
                    f.restart_count = f.restart_count.max(1);
                }
                f.handle_timeout(later);
            }
            "TO-" => {
                f.restart_count = 0;
                f.handle_timeout(later);
            }
            "RCR+" => assert!(f.handle_packet(now, GOOD_RCR).is_none()),
            "RCR-" => assert!(f.handle_packet(now, BAD_RCR).is_none()),
            "RCA" => {
                let p = ack_of_ours(f);
                assert!(f.handle_packet(now, &p).is_none());
            }
            "RCN" => {
                let p = nak_of_ours(f);
                assert!(f.handle_packet(now, &p).is_none());
            }
            "RTR" => assert!(f.handle_packet(now, &[5, 0x66, 0, 4]).is_none()),
            "RTA" => assert!(f.handle_packet(now, &[6, 0x67, 0, 4]).is_none()),
            "RUC" => assert!(f.handle_packet(now, &[0x20, 0x68, 0, 4]).is_none()),
            "RXJ+" => f.reject_received(now, false),
            "RXJ-" => f.reject_received(now, true),
            "RXR" => {
                let extra = f.handle_packet(now, &[9, 0x69, 0, 8, 0, 0, 0, 0]);
                if !matches!(f.state(), State::Initial | State::Starting) {
                    assert_eq!(extra.map(|e| e.code), Some(9));
                }
                if f.echo_allowed() {
                    f.send_packet(10, Some(0x69), &[0, 0, 0, 0]); // ser
                }
            }
            other => unreachable!("{other}"),
        }
    }

    /// RFC 1661 section 4.1, transcribed cell by cell (columns: states 0..=9).
    const TABLE: &str = "
Up    2          irc,scr/6  -          -              -        -        -          -          -          -
Down  -          -          0          tls/1          0        1        1          1          1          tld/1
Open  tls/1      1          irc,scr/6  3r             5r       5r       6          7          8          9r
Close 0          tlf/0      2          2              4        4        irc,str/4  irc,str/4  irc,str/4  tld,irc,str/4
TO+   -          -          -          -              str/4    str/5    scr/6      scr/6      scr/8      -
TO-   -          -          -          -              tlf/2    tlf/3    tlf/3p     tlf/3p     tlf/3p     -
RCR+  -          -          sta/2      irc,scr,sca/8  4        5        sca/8      sca,tlu/9  sca/8      tld,scr,sca/8
RCR-  -          -          sta/2      irc,scr,scn/6  4        5        scn/6      scn/7      scn/6      tld,scr,scn/6
RCA   -          -          sta/2      sta/3          4        5        irc/7      scr/6x     irc,tlu/9  tld,scr/6x
RCN   -          -          sta/2      sta/3          4        5        irc,scr/6  scr/6x     irc,scr/8  tld,scr/6x
RTR   -          -          sta/2      sta/3          sta/4    sta/5    sta/6      sta/6      sta/6      tld,zrc,sta/5
RTA   -          -          2          3              tlf/2    tlf/3    6          6          8          tld,scr/6
RUC   -          -          scj/2      scj/3          scj/4    scj/5    scj/6      scj/7      scj/8      scj/9
RXJ+  -          -          2          3              4        5        6          6          8          9
RXJ-  -          -          tlf/2      tlf/3          tlf/2    tlf/3    tlf/3      tlf/3      tlf/3      tld,irc,str/5
RXR   -          -          2          3              4        5        6          7          8          ser/9
";

    const STATES: [State; 10] = [
        State::Initial,
        State::Starting,
        State::Closed,
        State::Stopped,
        State::Closing,
        State::Stopping,
        State::ReqSent,
        State::AckRcvd,
        State::AckSent,
        State::Opened,
    ];

    fn code_name(code: u8) -> &'static str {
        match code {
            CONFIGURE_REQUEST => "scr",
            CONFIGURE_ACK => "sca",
            CONFIGURE_NAK | CONFIGURE_REJECT => "scn",
            TERMINATE_REQUEST => "str",
            TERMINATE_ACK => "sta",
            CODE_REJECT => "scj",
            10 => "ser",
            _ => "?",
        }
    }

    fn event_name(e: FsmEvent) -> &'static str {
        match e {
            FsmEvent::Up => "tlu",
            FsmEvent::Down => "tld",
            FsmEvent::Started => "tls",
            FsmEvent::Finished(_) => "tlf",
        }
    }

    #[test]
    fn every_cell_of_the_rfc1661_state_table() {
        let now = t0();
        let mut cells = 0;
        for line in TABLE.lines().filter(|l| !l.trim().is_empty()) {
            let mut words = line.split_whitespace();
            let ev = words.next().unwrap();
            for (col, cell) in words.enumerate() {
                let from = STATES[col];
                let mut f = in_state(from, now);
                let count_before = f.restart_count;
                apply(&mut f, ev, now);
                let (tx, events) = drain(&mut f);
                let (actions, next) = match cell.split_once('/') {
                    Some((a, n)) => (a.split(',').collect::<Vec<_>>(), n),
                    None => (Vec::new(), cell),
                };
                let next = next.trim_end_matches(['r', 'p', 'x']);
                let expected_state = if next == "-" {
                    from
                } else {
                    STATES[next.parse::<usize>().unwrap()]
                };
                let ctx = format!("{ev} in {from:?} (cell {cell})");
                assert_eq!(f.state(), expected_state, "{ctx}");
                let want_tx: Vec<&str> = actions
                    .iter()
                    .copied()
                    .filter(|a| ["scr", "sca", "scn", "str", "sta", "scj", "ser"].contains(a))
                    .collect();
                let got_tx: Vec<&str> = tx.iter().map(|p| code_name(p[0])).collect();
                assert_eq!(got_tx, want_tx, "{ctx}: packets");
                let want_ev: Vec<&str> = actions
                    .iter()
                    .copied()
                    .filter(|a| a.starts_with("tl"))
                    .collect();
                let got_ev: Vec<&str> = events.iter().map(|e| event_name(*e)).collect();
                assert_eq!(got_ev, want_ev, "{ctx}: layer events");
                // irc/zrc are visible through the restart counter.
                let sends = want_tx
                    .iter()
                    .filter(|a| ["scr", "str"].contains(a))
                    .count() as u8;
                if actions.contains(&"irc") {
                    let max = if want_tx.contains(&"str") {
                        f.config.max_terminate
                    } else {
                        f.config.max_configure
                    };
                    assert_eq!(f.restart_count, max - sends, "{ctx}: irc");
                } else if actions.contains(&"zrc") {
                    assert_eq!(f.restart_count, 0, "{ctx}: zrc");
                } else if ev != "TO+" && ev != "TO-" {
                    assert_eq!(
                        f.restart_count,
                        count_before.saturating_sub(sends),
                        "{ctx}: counter"
                    );
                }
                // The restart timer runs exactly in states 4..=8.
                assert_eq!(
                    f.poll_timeout().is_some(),
                    expected_state.timer_runs(),
                    "{ctx}: timer"
                );
                cells += 1;
            }
        }
        assert_eq!(cells, 160);
    }

    #[test]
    fn restart_option_restarts_from_stopped_and_opened() {
        let now = t0();
        let mut f = in_state(State::Opened, now);
        f.config.restart_option = true;
        f.open(now);
        let (tx, ev) = drain(&mut f);
        // Down (tld/1) then Up (irc,scr/6).
        assert_eq!(ev, vec![FsmEvent::Down]);
        assert_eq!(tx.len(), 1);
        assert_eq!(tx[0][0], CONFIGURE_REQUEST);
        assert_eq!(f.state(), State::ReqSent);
    }

    #[test]
    fn max_configure_requests_then_configure_timeout() {
        let mut now = t0();
        let mut f = fsm();
        f.up(now);
        f.open(now);
        let mut requests = 0;
        loop {
            let (tx, ev) = drain(&mut f);
            requests += tx.iter().filter(|p| p[0] == CONFIGURE_REQUEST).count();
            if let Some(FsmEvent::Finished(r)) = ev.last() {
                assert_eq!(*r, FinishReason::ConfigureTimeout);
                break;
            }
            let Some(d) = f.poll_timeout() else {
                panic!("no timer in {:?}", f.state())
            };
            assert_eq!(d - now, Duration::from_secs(3));
            now = d;
            f.handle_timeout(now);
        }
        assert_eq!(requests, 10);
        assert_eq!(f.state(), State::Stopped);
        assert_eq!(f.finish_reason(), Some(FinishReason::ConfigureTimeout));
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn max_terminate_requests_then_finished() {
        let mut now = t0();
        let mut f = in_state(State::Opened, now);
        f.close(now, b"going away");
        let mut terms = Vec::new();
        loop {
            let (tx, ev) = drain(&mut f);
            terms.extend(tx.into_iter().filter(|p| p[0] == TERMINATE_REQUEST));
            if let Some(FsmEvent::Finished(r)) = ev.last() {
                assert_eq!(*r, FinishReason::TerminateTimeout);
                break;
            }
            now = f.poll_timeout().unwrap();
            f.handle_timeout(now);
        }
        assert_eq!(terms.len(), 2);
        assert_eq!(&terms[0][4..], b"going away");
        assert_eq!(f.state(), State::Closed);
    }

    #[test]
    fn early_timeout_is_a_no_op() {
        let now = t0();
        let mut f = in_state(State::ReqSent, now);
        f.handle_timeout(now + Duration::from_secs(1));
        assert!(drain(&mut f).0.is_empty());
        assert_eq!(f.restart_count(), 9);
    }

    #[test]
    fn naks_turn_into_rejects_after_max_failure() {
        let now = t0();
        let mut f = in_state(State::ReqSent, now);
        for i in 0..5 {
            assert!(f.handle_packet(now, BAD_RCR).is_none());
            let (tx, _) = drain(&mut f);
            assert_eq!(
                tx,
                vec![vec![CONFIGURE_NAK, 0x56, 0, 7, 8, 3, 1]],
                "nak {i}"
            );
        }
        assert_eq!(f.failure_count(), 5);
        assert!(f.handle_packet(now, BAD_RCR).is_none());
        let (tx, _) = drain(&mut f);
        // The original option, unchanged, in a Configure-Reject.
        assert_eq!(tx, vec![vec![CONFIGURE_REJECT, 0x56, 0, 7, 8, 3, 0]]);
        // An Ack resets the count.
        assert!(f.handle_packet(now, GOOD_RCR).is_none());
        assert_eq!(drain(&mut f).0[0][0], CONFIGURE_ACK);
        assert_eq!(f.failure_count(), 0);
    }

    #[test]
    fn a_peer_that_naks_forever_ends_the_negotiation() {
        let now = t0();
        let mut f = in_state(State::ReqSent, now);
        let mut naks = 0;
        while f.state() != State::Stopped {
            let nak = build_packet(CONFIGURE_NAK, f.req_id, &[1, 3, naks]);
            assert!(f.handle_packet(now, &nak).is_none());
            drain(&mut f);
            naks += 1;
            assert!(naks < 20);
        }
        assert_eq!(naks, 11);
        assert_eq!(f.finish_reason(), Some(FinishReason::NotConverging));
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn reject_wins_over_nak_and_echoes_exact_bytes() {
        let now = t0();
        let mut f = in_state(State::ReqSent, now);
        let req = [1, 7, 0, 14, 8, 3, 0, 9, 5, 0xde, 0xad, 0xbe, 1, 2];
        // The trailing "1, 2" is option 1 with no value: accepted by the fake.
        assert!(f.handle_packet(now, &req).is_none());
        let (tx, _) = drain(&mut f);
        assert_eq!(
            tx,
            vec![vec![CONFIGURE_REJECT, 7, 0, 9, 9, 5, 0xde, 0xad, 0xbe]]
        );
    }

    #[test]
    fn ack_must_match_identifier_and_options() {
        let now = t0();
        let mut f = in_state(State::ReqSent, now);
        let good = ack_of_ours(&f);
        let mut wrong_id = good.clone();
        wrong_id[1] ^= 0xff;
        let mut wrong_opts = good.clone();
        *wrong_opts.last_mut().unwrap() ^= 1;
        assert!(f.handle_packet(now, &wrong_id).is_none());
        assert!(f.handle_packet(now, &wrong_opts).is_none());
        assert_eq!(f.state(), State::ReqSent);
        assert_eq!(f.stats().unmatched, 2);
        assert!(f.handle_packet(now, &good).is_none());
        assert_eq!(f.state(), State::AckRcvd);
        assert_eq!(f.negotiator().acked, vec![vec![1, 3, 0]]);
    }

    #[test]
    fn nak_with_wrong_identifier_or_bad_options_is_discarded() {
        let now = t0();
        let mut f = in_state(State::ReqSent, now);
        let id = f.req_id;
        assert!(f
            .handle_packet(
                now,
                &build_packet(CONFIGURE_NAK, id.wrapping_add(1), &[1, 3, 7])
            )
            .is_none());
        assert!(f
            .handle_packet(now, &build_packet(CONFIGURE_REJECT, id, &[2, 2]))
            .is_none());
        assert!(drain(&mut f).0.is_empty());
        assert_eq!(f.stats().unmatched, 1);
        assert_eq!(f.stats().malformed, 1);
        // A good Nak changes the next request, which gets a new identifier.
        assert!(f
            .handle_packet(now, &build_packet(CONFIGURE_NAK, id, &[1, 3, 7]))
            .is_none());
        let (tx, _) = drain(&mut f);
        assert_eq!(tx.len(), 1);
        assert_ne!(tx[0][1], id);
        assert_eq!(&tx[0][4..], &[1, 3, 7]);
    }

    #[test]
    fn lying_lengths_and_padding() {
        let now = t0();
        let mut f = in_state(State::ReqSent, now);
        // Length beyond the packet, Length below the header, empty and 3-octet packets.
        for p in [&[1u8, 1, 0, 9, 1, 3, 0][..], &[1, 1, 0, 3], &[], &[1, 1, 0]] {
            assert!(f.handle_packet(now, p).is_none());
        }
        assert_eq!(f.stats().malformed, 4);
        assert!(drain(&mut f).0.is_empty());
        // Padding after Length is ignored: this is GOOD_RCR plus junk.
        let mut padded = GOOD_RCR.to_vec();
        padded.extend_from_slice(&[0xff; 5]);
        assert!(f.handle_packet(now, &padded).is_none());
        let (tx, _) = drain(&mut f);
        assert_eq!(tx, vec![vec![CONFIGURE_ACK, 0x55, 0, 7, 1, 3, 0x42]]);
        // Options of length 0 or 1 make the request malformed: discarded.
        for opts in [&[1u8, 0][..], &[1, 1], &[1]] {
            assert!(f
                .handle_packet(now, &build_packet(CONFIGURE_REQUEST, 3, opts))
                .is_none());
        }
        assert!(drain(&mut f).0.is_empty());
        assert_eq!(f.stats().malformed, 7);
    }

    #[test]
    fn code_reject_carries_the_bounded_packet() {
        let now = t0();
        let mut f = in_state(State::Opened, now);
        assert!(f
            .handle_packet(now, &[0x33, 9, 0, 6, 0xaa, 0xbb, 0xcc])
            .is_none());
        let (tx, _) = drain(&mut f);
        assert_eq!(tx.len(), 1);
        assert_eq!(tx[0][0], CODE_REJECT);
        assert_eq!(&tx[0][4..], &[0x33, 9, 0, 6, 0xaa, 0xbb]);
    }

    #[test]
    fn code_reject_of_extra_code_is_passed_up_and_of_core_code_is_fatal() {
        let now = t0();
        let mut f = in_state(State::Opened, now);
        let extra = f.handle_packet(now, &[7, 1, 0, 8, 9, 1, 0, 4]);
        assert_eq!(extra.map(|e| e.data), Some(&[9u8, 1, 0, 4][..]));
        assert_eq!(f.state(), State::Opened);
        assert!(f.handle_packet(now, &[7, 2, 0, 8, 1, 1, 0, 4]).is_none());
        assert_eq!(f.state(), State::Stopping);
        let (tx, ev) = drain(&mut f);
        assert_eq!(ev, vec![FsmEvent::Down]);
        assert_eq!(tx[0][0], TERMINATE_REQUEST);
    }

    #[test]
    fn peer_terminate_finishes_after_one_timeout() {
        let now = t0();
        let mut f = in_state(State::Stopping, now);
        assert_eq!(f.restart_count(), 0);
        let d = f.poll_timeout().unwrap();
        f.handle_timeout(d);
        let (tx, ev) = drain(&mut f);
        assert!(tx.is_empty());
        assert_eq!(ev, vec![FsmEvent::Finished(FinishReason::PeerTerminated)]);
        assert_eq!(f.state(), State::Stopped);
    }

    #[test]
    fn terminate_ack_answers_the_request_identifier() {
        let now = t0();
        let mut f = in_state(State::ReqSent, now);
        assert!(f.handle_packet(now, &[5, 0xa5, 0, 6, b'x', b'y']).is_none());
        let (tx, _) = drain(&mut f);
        assert_eq!(tx, vec![vec![TERMINATE_ACK, 0xa5, 0, 4]]);
    }

    #[test]
    fn two_automata_converge() {
        let now = t0();
        let mut a = fsm();
        let mut b = fsm();
        for f in [&mut a, &mut b] {
            f.up(now);
            f.open(now);
        }
        for _ in 0..10 {
            let (ta, _) = drain(&mut a);
            let (tb, _) = drain(&mut b);
            for p in ta {
                let _ = b.handle_packet(now, &p);
            }
            for p in tb {
                let _ = a.handle_packet(now, &p);
            }
        }
        assert!(a.is_opened() && b.is_opened());
    }
}
