//! Deterministic simulation of a PAC core and a PNS core (STYLE habit 8): bytes move between
//! two `pptp::control::Connection`s in memory, time is virtual and jumps to the earliest
//! `poll_timeout()`; there are no sleeps and no sockets.

use pptp_nas::pptp::control::{
    CallEnd, CallState, CloseReason, CommandError, Config, Connection, CtrlState, DialResult,
    Event, IncomingCall, Open, OutgoingCall, Role,
};
use pptp_nas::pptp::message::{
    BearerType, CallDisconnectResult, CauseCode, ControlMessageType, EchoRequest, ErrorCode,
    FramingType, IncomingCallConnected, IncomingCallReply, IncomingCallResult, Message,
    OutgoingCallResult, StartControlConnectionRequest, StopControlConnectionRequest, StopReason,
    TextField, WanErrorNotify,
};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// One side of the simulation.
struct Side {
    conn: Connection,
    events: Vec<(Duration, Event)>,
    sent: Vec<ControlMessageType>,
    /// Drop everything this side sends (a black hole towards the peer).
    mute: bool,
}

struct Pair {
    t0: Instant,
    now: Instant,
    pac: Side,
    pns: Side,
}

fn side(conn: Connection) -> Side {
    Side {
        conn,
        events: Vec::new(),
        sent: Vec::new(),
        mute: false,
    }
}

fn text(s: &str) -> TextField {
    TextField::new(s.as_bytes()).unwrap()
}

impl Pair {
    fn with(pac_cfg: Config, pns_cfg: Config, pac_opens: bool) -> Pair {
        let t0 = Instant::now();
        let (pac_open, pns_open) = if pac_opens {
            (Open::Active, Open::Passive)
        } else {
            (Open::Passive, Open::Active)
        };
        Pair {
            t0,
            now: t0,
            pac: side(Connection::new(pac_cfg, pac_open, t0)),
            pns: side(Connection::new(pns_cfg, pns_open, t0)),
        }
    }

    fn new() -> Pair {
        Pair::with(Config::new(Role::Pac), Config::new(Role::Pns), true)
    }

    fn established() -> Pair {
        let mut p = Pair::new();
        p.settle();
        assert_eq!(p.pac.conn.state(), CtrlState::Established);
        assert_eq!(p.pns.conn.state(), CtrlState::Established);
        p
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Moves queued messages both ways and collects events until nothing moves.
    fn settle(&mut self) {
        loop {
            let a = Self::transfer(self.now, &mut self.pac, &mut self.pns);
            let b = Self::transfer(self.now, &mut self.pns, &mut self.pac);
            let at = self.elapsed();
            for s in [&mut self.pac, &mut self.pns] {
                while let Some(e) = s.conn.poll_event() {
                    s.events.push((at, e));
                }
            }
            if !a && !b {
                break;
            }
        }
    }

    fn transfer(now: Instant, from: &mut Side, to: &mut Side) -> bool {
        let mut moved = false;
        let mut buf = Vec::new();
        while let Some(t) = from.conn.poll_transmit(&mut buf) {
            from.sent.push(t);
            moved = true;
        }
        if !buf.is_empty() && !from.mute {
            // Deliver in two pieces to exercise stream reassembly.
            let (a, b) = buf.split_at(buf.len() / 2);
            to.conn.handle_bytes(now, a);
            to.conn.handle_bytes(now, b);
        }
        moved
    }

    /// Jumps virtual time to the earliest deadline of either side and handles it. Returns false
    /// when neither side has a deadline before `limit`.
    fn step(&mut self, limit: Duration) -> bool {
        let next = [self.pac.conn.poll_timeout(), self.pns.conn.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= self.t0 + limit => {
                self.now = self.now.max(t);
                self.pac.conn.handle_timeout(self.now);
                self.pns.conn.handle_timeout(self.now);
                self.settle();
                true
            }
            _ => false,
        }
    }

    /// Runs timers until `limit` (virtual, since t0), then sets the clock to `limit`.
    fn run_until(&mut self, limit: Duration) {
        while self.step(limit) {}
        self.now = self.now.max(self.t0 + limit);
    }

    fn inject_to_pac(&mut self, m: Message) {
        self.pac.conn.handle_bytes(self.now, &m.to_vec());
        self.settle();
    }

    fn inject_to_pns(&mut self, m: Message) {
        self.pns.conn.handle_bytes(self.now, &m.to_vec());
        self.settle();
    }

    /// PAC reports a ringing line; PNS accepts; PAC answers. Returns (pac id, pns id).
    fn incoming_call_up(&mut self) -> (u16, u16) {
        let pac_id = self.pac.conn.incoming_call(self.now, ring()).unwrap();
        self.settle();
        let pns_id = last_incoming_request(&self.pns).expect("PNS saw the ICRQ");
        self.pns.conn.accept_call(self.now, pns_id).unwrap();
        self.settle();
        assert!(has(
            &self.pac,
            |e| matches!(e, Event::AnswerCall { call_id } if *call_id == pac_id)
        ));
        self.pac
            .conn
            .answer_connected(self.now, pac_id, 33_600, FramingType::Async)
            .unwrap();
        self.settle();
        assert_eq!(self.pac.conn.call_state(pac_id), Some(CallState::UpPac));
        assert_eq!(self.pns.conn.call_state(pns_id), Some(CallState::UpPns));
        (pac_id, pns_id)
    }
}

fn ring() -> IncomingCall {
    IncomingCall {
        bearer: BearerType::Analog,
        physical_channel_id: 7,
        dialed: text("5551234"),
        dialing: text("5550000"),
        subaddress: TextField::empty(),
    }
}

fn dial() -> OutgoingCall {
    OutgoingCall {
        minimum_bps: 2400,
        maximum_bps: 56_000,
        bearer: BearerType::Any,
        framing: FramingType::Async,
        phone_number: text("5559999"),
        subaddress: TextField::empty(),
    }
}

fn has(s: &Side, f: impl Fn(&Event) -> bool) -> bool {
    s.events.iter().any(|(_, e)| f(e))
}

fn count(s: &Side, f: impl Fn(&Event) -> bool) -> usize {
    s.events.iter().filter(|(_, e)| f(e)).count()
}

fn last_incoming_request(s: &Side) -> Option<u16> {
    s.events.iter().rev().find_map(|(_, e)| match e {
        Event::IncomingCallRequested { call_id, .. } => Some(*call_id),
        _ => None,
    })
}

fn last_outgoing_request(s: &Side) -> Option<u16> {
    s.events.iter().rev().find_map(|(_, e)| match e {
        Event::OutgoingCallRequested { call_id, .. } => Some(*call_id),
        _ => None,
    })
}

fn call_down(s: &Side, id: u16) -> Option<(Duration, CallEnd)> {
    s.events.iter().find_map(|(t, e)| match e {
        Event::CallDown { call_id, end } if *call_id == id => Some((*t, *end)),
        _ => None,
    })
}

fn closed(s: &Side) -> Option<(Duration, CloseReason)> {
    s.events.iter().find_map(|(t, e)| match e {
        Event::Closed(r) => Some((*t, *r)),
        _ => None,
    })
}

// ----- control connection -----

#[test]
fn pac_initiates_and_both_learn_each_other() {
    let mut pac = Config::new(Role::Pac);
    pac.maximum_channels = 30;
    pac.host_name = text("pac.example");
    let mut p = Pair::with(pac, Config::new(Role::Pns), true);
    p.settle();
    assert_eq!(
        p.pac.sent.first(),
        Some(&ControlMessageType::StartControlConnectionRequest)
    );
    assert_eq!(
        p.pns.sent.first(),
        Some(&ControlMessageType::StartControlConnectionReply)
    );
    let peer_of_pns = p.pns.conn.peer().unwrap();
    assert_eq!(peer_of_pns.maximum_channels, 30);
    assert_eq!(peer_of_pns.host_name, text("pac.example"));
    assert_eq!(
        p.pac.conn.peer().unwrap().maximum_channels,
        0,
        "a PNS sends 0"
    );
    assert!(has(&p.pac, |e| matches!(e, Event::Established(_))));
    assert!(has(&p.pns, |e| matches!(e, Event::Established(_))));
}

#[test]
fn pns_initiates() {
    let mut p = Pair::with(Config::new(Role::Pac), Config::new(Role::Pns), false);
    p.settle();
    assert_eq!(
        p.pns.sent.first(),
        Some(&ControlMessageType::StartControlConnectionRequest)
    );
    assert_eq!(p.pac.conn.state(), CtrlState::Established);
    assert_eq!(p.pns.conn.state(), CtrlState::Established);
    // Calls work the same whichever end opened.
    p.incoming_call_up();
}

#[test]
fn start_timeout_closes_a_silent_connection() {
    let mut p = Pair::new();
    p.pac.mute = true;
    p.settle();
    p.run_until(Duration::from_secs(600));
    let (t, r) = closed(&p.pns).unwrap();
    assert_eq!(r, CloseReason::StartTimeout);
    assert_eq!(t, Duration::from_secs(60));
    let (t, r) = closed(&p.pac).unwrap();
    assert_eq!(r, CloseReason::StartTimeout);
    assert_eq!(t, Duration::from_secs(60));
}

#[test]
fn unsupported_version_is_refused() {
    let t0 = Instant::now();
    let mut pns = Connection::new(Config::new(Role::Pns), Open::Passive, t0);
    let m = Message::from(StartControlConnectionRequest {
        protocol_version: 0x0200,
        framing_capabilities: Default::default(),
        bearer_capabilities: Default::default(),
        maximum_channels: 1,
        firmware_revision: 0,
        host_name: TextField::empty(),
        vendor: TextField::empty(),
    });
    pns.handle_bytes(t0, &m.to_vec());
    match pns.poll_message() {
        Some(Message::StartControlConnectionReply(r)) => {
            assert_eq!(u8::from(r.result), 5, "Version-Not-Supported");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pns.state(), CtrlState::Closed);
}

#[test]
fn collision_of_two_sccrq_leaves_one_connection() {
    let t0 = Instant::now();
    let pac_ip = Ipv4Addr::new(127, 0, 0, 1);
    let pns_ip = Ipv4Addr::new(127, 0, 0, 2);
    // Connection A: the PAC dialled the PNS. Connection B: the PNS dialled the PAC.
    let mut pac_a = Connection::new(Config::new(Role::Pac), Open::Active, t0);
    let mut pns_a = Connection::new(Config::new(Role::Pns), Open::Passive, t0);
    let mut pns_b = Connection::new(Config::new(Role::Pns), Open::Active, t0);
    let mut pac_b = Connection::new(Config::new(Role::Pac), Open::Passive, t0);
    // Each shell accepted a connection while its own outbound one waits for an SCCRP.
    pns_a.note_outbound_pending(pns_ip, pac_ip);
    pac_b.note_outbound_pending(pac_ip, pns_ip);
    let mut buf = Vec::new();
    let _ = pac_a.poll_transmit(&mut buf);
    pns_a.handle_bytes(t0, &buf);
    buf.clear();
    let _ = pns_b.poll_transmit(&mut buf);
    pac_b.handle_bytes(t0, &buf);

    // 127.0.0.2 wins. The winner sends nothing on the loser's connection (A).
    assert_eq!(pns_a.poll_event(), Some(Event::Collision { won: true }));
    assert_eq!(
        pns_a.poll_event(),
        Some(Event::Closed(CloseReason::CollisionWon))
    );
    assert!(
        pns_a.poll_message().is_none(),
        "winner MUST NOT send on the loser's connection"
    );
    // The loser answers the winner's SCCRQ on B and abandons A silently.
    assert_eq!(pac_b.poll_event(), Some(Event::Collision { won: false }));
    pac_a.abandon(t0);
    assert!(pac_a.poll_message().is_none());
    assert_eq!(pac_a.state(), CtrlState::Closed);
    buf.clear();
    while pac_b.poll_transmit(&mut buf).is_some() {}
    pns_b.handle_bytes(t0, &buf);
    assert_eq!(pac_b.state(), CtrlState::Established);
    assert_eq!(pns_b.state(), CtrlState::Established);
}

#[test]
fn echo_keepalive_keeps_a_healthy_connection() {
    let mut p = Pair::established();
    p.run_until(Duration::from_secs(3600));
    assert_eq!(p.pac.conn.state(), CtrlState::Established);
    assert_eq!(p.pns.conn.state(), CtrlState::Established);
    assert!(
        p.pac.conn.stats().echo_sent >= 30,
        "{:?}",
        p.pac.conn.stats()
    );
}

#[test]
fn echo_reply_never_comes_tears_down_within_the_timeout() {
    let mut p = Pair::established();
    p.pns.mute = true; // the PNS host vanished
    p.run_until(Duration::from_secs(1000));
    let (t, r) = closed(&p.pac).unwrap();
    assert_eq!(r, CloseReason::EchoTimeout);
    // Echo-Request after 60 s idle, teardown 60 s later.
    assert_eq!(t, Duration::from_secs(120));
    assert_eq!(
        p.pac
            .sent
            .iter()
            .filter(|t| **t == ControlMessageType::EchoRequest)
            .count(),
        1
    );
}

#[test]
fn echo_timeouts_are_configurable() {
    let mut pac = Config::new(Role::Pac);
    pac.timeouts.echo_interval = Duration::from_secs(10);
    pac.timeouts.echo_reply = Duration::from_secs(5);
    let mut p = Pair::with(pac, Config::new(Role::Pns), true);
    p.settle();
    p.pns.mute = true;
    p.run_until(Duration::from_secs(100));
    assert_eq!(
        closed(&p.pac).unwrap(),
        (Duration::from_secs(15), CloseReason::EchoTimeout)
    );
}

#[test]
fn stop_with_calls_up_clears_all_calls() {
    let mut p = Pair::established();
    let (a_pac, a_pns) = p.incoming_call_up();
    let (b_pac, b_pns) = p.incoming_call_up();
    p.pac.conn.stop(p.now, StopReason::LocalShutdown);
    p.settle();
    for (pac_id, pns_id) in [(a_pac, a_pns), (b_pac, b_pns)] {
        assert_eq!(call_down(&p.pac, pac_id).unwrap().1, CallEnd::Local);
        assert!(matches!(
            call_down(&p.pns, pns_id).unwrap().1,
            CallEnd::Disconnected {
                result: CallDisconnectResult::AdminShutdown,
                ..
            }
        ));
    }
    assert_eq!(closed(&p.pac).unwrap().1, CloseReason::Stopped);
    assert_eq!(
        closed(&p.pns).unwrap().1,
        CloseReason::PeerStopped(StopReason::LocalShutdown)
    );
    assert_eq!(p.pac.conn.call_count(), 0);
    assert_eq!(p.pns.conn.call_count(), 0);
}

#[test]
fn pns_stop_with_calls_up_clears_calls_with_ccrq() {
    let mut p = Pair::established();
    let (pac_id, pns_id) = p.incoming_call_up();
    p.pns.conn.stop(p.now, StopReason::LocalShutdown);
    p.settle();
    assert_eq!(call_down(&p.pac, pac_id).unwrap().1, CallEnd::ClearedByPeer);
    assert_eq!(call_down(&p.pns, pns_id).unwrap().1, CallEnd::Local);
    assert_eq!(closed(&p.pns).unwrap().1, CloseReason::Stopped);
    assert!(matches!(
        closed(&p.pac).unwrap().1,
        CloseReason::PeerStopped(_)
    ));
}

#[test]
fn peer_stop_without_clearing_calls_still_clears_them() {
    let mut p = Pair::established();
    let (pac_id, _) = p.incoming_call_up();
    p.inject_to_pac(
        StopControlConnectionRequest {
            reason: StopReason::None,
        }
        .into(),
    );
    assert_eq!(
        call_down(&p.pac, pac_id).unwrap().1,
        CallEnd::ConnectionClosed
    );
    assert_eq!(
        p.pac.sent.last(),
        Some(&ControlMessageType::StopControlConnectionReply)
    );
}

#[test]
fn stop_reply_never_comes() {
    let mut p = Pair::established();
    p.pns.mute = true;
    p.pac.conn.stop(p.now, StopReason::None);
    p.settle();
    p.run_until(Duration::from_secs(100));
    assert_eq!(
        closed(&p.pac).unwrap(),
        (Duration::from_secs(10), CloseReason::StopTimeout)
    );
}

#[test]
fn tcp_loss_drops_every_call() {
    let mut p = Pair::established();
    let (pac_id, _) = p.incoming_call_up();
    p.pac.conn.handle_tcp_closed(p.now);
    p.settle();
    assert_eq!(
        call_down(&p.pac, pac_id).unwrap().1,
        CallEnd::ConnectionClosed
    );
    assert_eq!(closed(&p.pac).unwrap().1, CloseReason::TcpClosed);
}

#[test]
fn garbage_on_the_stream_closes_the_connection() {
    let mut p = Pair::established();
    p.pac
        .conn
        .handle_bytes(p.now, &[0, 20, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
    p.settle();
    assert_eq!(closed(&p.pac).unwrap().1, CloseReason::StreamError);
}

// ----- illegal messages, per the table -----

#[test]
fn connection_scoped_illegal_message_closes_the_connection() {
    let mut p = Pair::established();
    let (pac_id, _) = p.incoming_call_up();
    // A second SCCRQ on an established connection: fatal to the connection.
    p.inject_to_pns(
        StartControlConnectionRequest {
            protocol_version: 0x0100,
            framing_capabilities: Default::default(),
            bearer_capabilities: Default::default(),
            maximum_channels: 0,
            firmware_revision: 0,
            host_name: TextField::empty(),
            vendor: TextField::empty(),
        }
        .into(),
    );
    assert_eq!(
        closed(&p.pns).unwrap().1,
        CloseReason::ProtocolError {
            message: ControlMessageType::StartControlConnectionRequest,
            state: CtrlState::Established
        }
    );
    assert_eq!(p.pns.conn.call_count(), 0);
    let _ = pac_id;
}

#[test]
fn echo_before_start_is_fatal() {
    let t0 = Instant::now();
    let mut pns = Connection::new(Config::new(Role::Pns), Open::Passive, t0);
    pns.handle_bytes(t0, &Message::from(EchoRequest { identifier: 1 }).to_vec());
    assert!(matches!(
        pns.poll_event(),
        Some(Event::Closed(CloseReason::ProtocolError {
            state: CtrlState::Idle,
            ..
        }))
    ));
}

#[test]
fn call_scoped_illegal_message_kills_only_that_call() {
    let mut p = Pair::established();
    let (a_pac, a_pns) = p.incoming_call_up();
    let (b_pac, _) = p.incoming_call_up();
    // An ICRP for a call that is already up: illegal in UpPac, fatal to the call only.
    p.inject_to_pac(
        IncomingCallReply {
            call_id: a_pns,
            peer_call_id: a_pac,
            result: IncomingCallResult::Connect,
            error: ErrorCode::None,
            packet_recv_window_size: 8,
            packet_transmit_delay: 0,
        }
        .into(),
    );
    assert_eq!(
        call_down(&p.pac, a_pac).unwrap().1,
        CallEnd::ProtocolError(ControlMessageType::IncomingCallReply)
    );
    // The PAC told the PNS with a CDN (General Error).
    assert!(matches!(
        call_down(&p.pns, a_pns).unwrap().1,
        CallEnd::Disconnected {
            result: CallDisconnectResult::GeneralError,
            ..
        }
    ));
    assert_eq!(p.pac.conn.call_state(b_pac), Some(CallState::UpPac));
    assert_eq!(p.pac.conn.state(), CtrlState::Established);
    assert_eq!(p.pac.conn.stats().illegal, 1);
}

#[test]
fn message_for_an_unknown_call_is_dropped_and_counted() {
    let mut p = Pair::established();
    p.inject_to_pns(
        IncomingCallConnected {
            peer_call_id: 999,
            connect_speed: 1,
            packet_recv_window_size: 1,
            packet_transmit_delay: 0,
            framing_type: FramingType::Async,
        }
        .into(),
    );
    assert_eq!(p.pns.conn.stats().unknown_call, 1);
    assert_eq!(p.pns.conn.state(), CtrlState::Established);
}

#[test]
fn illegal_iccn_on_the_pns_side_clears_with_ccrq() {
    let mut p = Pair::established();
    let (pac_id, pns_id) = p.incoming_call_up();
    // ICCN for a call already up at the PNS: the PNS side clears with CCRQ, PAC answers CDN.
    p.inject_to_pns(
        IncomingCallConnected {
            peer_call_id: pns_id,
            connect_speed: 1,
            packet_recv_window_size: 1,
            packet_transmit_delay: 0,
            framing_type: FramingType::Async,
        }
        .into(),
    );
    assert_eq!(
        call_down(&p.pns, pns_id).unwrap().1,
        CallEnd::ProtocolError(ControlMessageType::IncomingCallConnected)
    );
    assert_eq!(
        count(&p.pns, |e| matches!(e, Event::CallDown { .. })),
        1,
        "reported once"
    );
    assert_eq!(call_down(&p.pac, pac_id).unwrap().1, CallEnd::ClearedByPeer);
    assert_eq!(p.pns.conn.call_count(), 0);
}

// ----- incoming calls -----

#[test]
fn incoming_call_three_way_handshake() {
    let mut p = Pair::established();
    let (pac_id, pns_id) = p.incoming_call_up();
    let up_pac = p.pac.events.iter().find_map(|(_, e)| match e {
        Event::CallUp(i) => Some(*i),
        _ => None,
    });
    let up_pns = p.pns.events.iter().find_map(|(_, e)| match e {
        Event::CallUp(i) => Some(*i),
        _ => None,
    });
    let (up_pac, up_pns) = (up_pac.unwrap(), up_pns.unwrap());
    assert_eq!((up_pac.call_id, up_pac.peer_call_id), (pac_id, pns_id));
    assert_eq!((up_pns.call_id, up_pns.peer_call_id), (pns_id, pac_id));
    assert_eq!(up_pns.connect_speed, 33_600);
    assert_eq!(up_pns.framing, FramingType::Async);
    assert_eq!(up_pac.peer_window, 64);
    assert_eq!(up_pns.peer_window, 64);
    assert!(up_pac.pac_side && !up_pns.pac_side);
    // The PNS saw DNIS/CLID.
    let req = p.pns.events.iter().find_map(|(_, e)| match e {
        Event::IncomingCallRequested { request, .. } => Some(*request),
        _ => None,
    });
    let req = req.unwrap();
    assert_eq!(req.dialed_number, text("5551234"));
    assert_eq!(req.dialing_number, text("5550000"));
    assert!(req.number_lengths_match());
}

#[test]
fn pns_rejects_a_call() {
    let mut p = Pair::established();
    let pac_id = p.pac.conn.incoming_call(p.now, ring()).unwrap();
    p.settle();
    let pns_id = last_incoming_request(&p.pns).unwrap();
    p.pns
        .conn
        .reject_call(
            p.now,
            pns_id,
            IncomingCallResult::DoNotAccept,
            ErrorCode::None,
        )
        .unwrap();
    p.settle();
    assert_eq!(
        call_down(&p.pac, pac_id).unwrap().1,
        CallEnd::IncomingRejected {
            result: IncomingCallResult::DoNotAccept,
            error: ErrorCode::None
        }
    );
    assert_eq!(p.pac.conn.call_count(), 0);
    assert_eq!(p.pns.conn.call_count(), 0);
}

#[test]
fn pac_refuses_icrq_when_not_configured_to_accept() {
    // Two PACs: ICRQ towards a peer that does not accept them (pptpd, RRAS, MikroTik).
    let mut p = Pair::with(Config::new(Role::Pac), Config::new(Role::Pac), true);
    p.settle();
    let id = p.pac.conn.incoming_call(p.now, ring()).unwrap();
    p.settle();
    assert!(matches!(
        call_down(&p.pac, id).unwrap().1,
        CallEnd::IncomingRejected {
            result: IncomingCallResult::DoNotAccept,
            ..
        }
    ));
}

#[test]
fn icrp_never_comes() {
    let mut p = Pair::established();
    p.pns.mute = true;
    let start = p.elapsed();
    let pac_id = p.pac.conn.incoming_call(p.now, ring()).unwrap();
    p.settle();
    p.run_until(Duration::from_secs(45));
    let (t, end) = call_down(&p.pac, pac_id).unwrap();
    assert_eq!(end, CallEnd::Timeout(CallState::WaitIcrp));
    assert_eq!(t - start, Duration::from_secs(30));
    assert_eq!(
        p.pac.sent.last(),
        Some(&ControlMessageType::CallDisconnectNotify)
    );
    // The PNS (which heard the ICRQ but whose replies were lost) got the CDN.
    assert_eq!(p.pns.conn.call_count(), 0);
}

#[test]
fn pns_that_never_decides_refuses_after_the_decision_timeout() {
    let mut p = Pair::established();
    let pac_id = p.pac.conn.incoming_call(p.now, ring()).unwrap();
    p.settle();
    p.run_until(Duration::from_secs(25));
    assert!(matches!(
        call_down(&p.pac, pac_id).unwrap(),
        (t, CallEnd::IncomingRejected { result: IncomingCallResult::GeneralError, error: ErrorCode::NoResource })
            if t == Duration::from_secs(20)
    ));
}

#[test]
fn iccn_never_comes() {
    let mut pac = Config::new(Role::Pac);
    pac.timeouts.answer = Duration::from_secs(120);
    let mut p = Pair::with(pac, Config::new(Role::Pns), true);
    p.settle();
    let pac_id = p.pac.conn.incoming_call(p.now, ring()).unwrap();
    p.settle();
    let pns_id = last_incoming_request(&p.pns).unwrap();
    p.pns.conn.accept_call(p.now, pns_id).unwrap();
    p.settle();
    // The line never answers and the PAC's messages are lost; the PAC's answer time-out
    // (120 s here) is longer than the PNS's ICCN time-out (60 s), so the PNS acts first.
    p.pac.mute = true;
    p.run_until(Duration::from_secs(200));
    let (_, end) = call_down(&p.pns, pns_id).unwrap();
    assert_eq!(end, CallEnd::Timeout(CallState::WaitIccn));
    assert!(p.pns.sent.contains(&ControlMessageType::CallClearRequest));
    // The PAC got the CCRQ and cleared its side.
    assert_eq!(call_down(&p.pac, pac_id).unwrap().1, CallEnd::ClearedByPeer);
}

#[test]
fn answer_timeout_at_the_pac() {
    let mut pns = Config::new(Role::Pns);
    pns.timeouts.iccn = Duration::from_secs(600);
    let mut p = Pair::with(Config::new(Role::Pac), pns, true);
    p.settle();
    let pac_id = p.pac.conn.incoming_call(p.now, ring()).unwrap();
    p.settle();
    let pns_id = last_incoming_request(&p.pns).unwrap();
    p.pns.conn.accept_call(p.now, pns_id).unwrap();
    p.settle();
    p.run_until(Duration::from_secs(100));
    assert_eq!(
        call_down(&p.pac, pac_id).unwrap().1,
        CallEnd::Timeout(CallState::WaitAnswer)
    );
    assert!(matches!(
        call_down(&p.pns, pns_id).unwrap().1,
        CallEnd::Disconnected {
            result: CallDisconnectResult::AdminShutdown,
            ..
        }
    ));
}

// ----- outgoing calls -----

#[test]
fn outgoing_call_on_request_every_result_code() {
    let results = [
        OutgoingCallResult::Connected,
        OutgoingCallResult::GeneralError,
        OutgoingCallResult::NoCarrier,
        OutgoingCallResult::Busy,
        OutgoingCallResult::NoDialTone,
        OutgoingCallResult::TimeOut,
        OutgoingCallResult::DoNotAccept,
    ];
    let mut p = Pair::established();
    for result in results {
        let pns_id = p.pns.conn.outgoing_call(p.now, dial()).unwrap();
        p.settle();
        let pac_id = last_outgoing_request(&p.pac).unwrap();
        assert_eq!(p.pac.conn.call_state(pac_id), Some(CallState::Dialing));
        let mut r = DialResult::failed(result);
        r.cause = CauseCode::UserBusy;
        r.connect_speed = if result == OutgoingCallResult::Connected {
            28_800
        } else {
            0
        };
        p.pac.conn.dial_result(p.now, pac_id, r).unwrap();
        p.settle();
        if result == OutgoingCallResult::Connected {
            assert_eq!(p.pns.conn.call_state(pns_id), Some(CallState::UpPns));
            assert_eq!(p.pac.conn.call_state(pac_id), Some(CallState::UpPac));
            assert_eq!(p.pns.conn.peer_call_id(pns_id), Some(pac_id));
            assert_eq!(p.pac.conn.peer_call_id(pac_id), Some(pns_id));
        } else {
            assert_eq!(
                call_down(&p.pns, pns_id).unwrap().1,
                CallEnd::OutgoingFailed {
                    result,
                    error: ErrorCode::None,
                    cause: CauseCode::UserBusy
                }
            );
            assert_eq!(call_down(&p.pac, pac_id).unwrap().1, CallEnd::Local);
        }
    }
}

#[test]
fn ocrp_never_comes_and_dial_timeout() {
    let mut p = Pair::established();
    let pns_id = p.pns.conn.outgoing_call(p.now, dial()).unwrap();
    p.settle();
    let pac_id = last_outgoing_request(&p.pac).unwrap();
    // The modem never reports: the PAC answers OCRP Time-out after its dial time-out (110 s),
    // before the PNS's OCRP time-out (120 s).
    p.run_until(Duration::from_secs(300));
    assert_eq!(
        call_down(&p.pac, pac_id).unwrap().1,
        CallEnd::Timeout(CallState::Dialing)
    );
    assert!(matches!(
        call_down(&p.pns, pns_id).unwrap().1,
        CallEnd::OutgoingFailed {
            result: OutgoingCallResult::TimeOut,
            ..
        }
    ));
}

#[test]
fn ocrp_lost_pns_clears_with_ccrq() {
    let mut pns = Config::new(Role::Pns);
    // Below the echo teardown (120 s), which would otherwise close the connection first.
    pns.timeouts.ocrp = Duration::from_secs(45);
    let mut p = Pair::with(Config::new(Role::Pac), pns, true);
    p.settle();
    let pns_id = p.pns.conn.outgoing_call(p.now, dial()).unwrap();
    p.settle();
    p.pac.mute = true;
    p.run_until(Duration::from_secs(100));
    let (t, end) = call_down(&p.pns, pns_id).unwrap();
    assert_eq!(end, CallEnd::Timeout(CallState::WaitOcrp));
    assert_eq!(t, Duration::from_secs(45));
    assert!(p.pns.sent.contains(&ControlMessageType::CallClearRequest));
    assert_eq!(count(&p.pns, |e| matches!(e, Event::CallDown { .. })), 1);
    assert_eq!(p.pns.conn.call_count(), 0, "the CDN wait also timed out");
}

#[test]
fn pac_compat_mode_places_ocrq_per_caller() {
    // The PAC places the OCRQ itself (what pptp-linux does) towards a server that accepts
    // nothing else; the PNS core plays the server (PAC side of that call).
    let mut p = Pair::established();
    let pac_id = p.pac.conn.outgoing_call(p.now, dial()).unwrap();
    p.settle();
    let pns_id = last_outgoing_request(&p.pns).unwrap();
    p.pns
        .conn
        .dial_result(p.now, pns_id, DialResult::connected(10_000_000))
        .unwrap();
    p.settle();
    assert_eq!(p.pac.conn.call_state(pac_id), Some(CallState::UpPns));
    assert_eq!(p.pns.conn.call_state(pns_id), Some(CallState::UpPac));
    // The caller hangs up: the PAC is on the PNS side of this call, so it sends CCRQ.
    p.pac
        .conn
        .hang_up(p.now, pac_id, CauseCode::NormalClearing)
        .unwrap();
    p.settle();
    assert_eq!(call_down(&p.pns, pns_id).unwrap().1, CallEnd::ClearedByPeer);
    assert!(matches!(
        call_down(&p.pac, pac_id).unwrap().1,
        CallEnd::Disconnected {
            result: CallDisconnectResult::Request,
            ..
        }
    ));
}

#[test]
fn ocrq_refused_when_not_accepted() {
    let mut pac = Config::new(Role::Pac);
    pac.accept_outgoing = false;
    let mut p = Pair::with(pac, Config::new(Role::Pns), true);
    p.settle();
    let id = p.pns.conn.outgoing_call(p.now, dial()).unwrap();
    p.settle();
    assert!(matches!(
        call_down(&p.pns, id).unwrap().1,
        CallEnd::OutgoingFailed {
            result: OutgoingCallResult::DoNotAccept,
            ..
        }
    ));
}

#[test]
fn ccrq_while_dialing_is_answered() {
    let mut p = Pair::established();
    let pns_id = p.pns.conn.outgoing_call(p.now, dial()).unwrap();
    p.settle();
    let pac_id = last_outgoing_request(&p.pac).unwrap();
    p.pns.conn.hang_up(p.now, pns_id, CauseCode::None).unwrap();
    p.settle();
    assert_eq!(call_down(&p.pac, pac_id).unwrap().1, CallEnd::ClearedByPeer);
    assert!(call_down(&p.pns, pns_id).is_some());
    assert_eq!(p.pns.conn.call_count(), 0);
}

// ----- clearing, WEN, SLI -----

#[test]
fn clear_both_ways() {
    let mut p = Pair::established();
    // PNS clears: CCRQ -> CDN (Request).
    let (pac_id, pns_id) = p.incoming_call_up();
    p.pns.conn.hang_up(p.now, pns_id, CauseCode::None).unwrap();
    p.settle();
    assert_eq!(call_down(&p.pac, pac_id).unwrap().1, CallEnd::ClearedByPeer);
    assert!(matches!(
        call_down(&p.pns, pns_id).unwrap().1,
        CallEnd::Disconnected {
            result: CallDisconnectResult::Request,
            ..
        }
    ));
    // PAC clears (caller hung up): CDN (Lost Carrier) with the cause and statistics.
    let (pac_id, pns_id) = p.incoming_call_up();
    p.pac.conn.set_call_statistics(
        pac_id,
        pptp_nas::pptp::message::CallStatistics::new(b"rx 10 tx 20").unwrap(),
    );
    p.pac
        .conn
        .hang_up(p.now, pac_id, CauseCode::from(42))
        .unwrap();
    p.settle();
    assert_eq!(call_down(&p.pac, pac_id).unwrap().1, CallEnd::Local);
    assert_eq!(
        call_down(&p.pns, pns_id).unwrap().1,
        CallEnd::Disconnected {
            result: CallDisconnectResult::LostCarrier,
            error: ErrorCode::None,
            cause: CauseCode::from(42)
        }
    );
}

#[test]
fn wan_error_notify_is_rate_limited_per_call() {
    let mut p = Pair::established();
    let (pac_id, pns_id) = p.incoming_call_up();
    let base = p.now;
    let wen = |crc| WanErrorNotify {
        crc_errors: crc,
        ..Default::default()
    };
    p.pac.conn.wan_error(base, pac_id, wen(1)).unwrap();
    p.settle();
    p.pac
        .conn
        .wan_error(base + Duration::from_secs(1), pac_id, wen(2))
        .unwrap();
    p.pac
        .conn
        .wan_error(base + Duration::from_secs(2), pac_id, wen(3))
        .unwrap();
    p.settle();
    let got: Vec<(Duration, u32, u16)> = p
        .pns
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::WanError { call_id, counters } => {
                assert_eq!(*call_id, pns_id);
                Some((*t, counters.crc_errors, counters.peer_call_id))
            }
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1, "only the first goes out at once");
    p.run_until(p.elapsed() + Duration::from_secs(120));
    let got: Vec<(Duration, u32)> = p
        .pns
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::WanError { counters, .. } => Some((*t, counters.crc_errors)),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1, 3, "the latest counters");
    assert_eq!(got[1].0 - got[0].0, Duration::from_secs(60));
    assert_eq!(p.pac.conn.stats().wen_coalesced, 1);
}

#[test]
fn set_link_info_is_surfaced_at_the_pac() {
    let mut p = Pair::established();
    let (pac_id, pns_id) = p.incoming_call_up();
    p.pns
        .conn
        .set_link_info(p.now, pns_id, 0, 0x000a_0000)
        .unwrap();
    p.settle();
    assert!(has(&p.pac, |e| *e
        == Event::LinkInfo {
            call_id: pac_id,
            send_accm: 0,
            receive_accm: 0x000a_0000
        }));
}

// ----- call IDs, channels, serial numbers -----

#[test]
fn call_id_exhaustion_at_maximum_channels() {
    let mut pac = Config::new(Role::Pac);
    pac.maximum_channels = 2;
    let mut p = Pair::with(pac, Config::new(Role::Pns), true);
    p.settle();
    p.incoming_call_up();
    p.incoming_call_up();
    assert_eq!(
        p.pac.conn.incoming_call(p.now, ring()),
        Err(CommandError::NoChannel(2))
    );
    // The PNS honours the PAC's announced Maximum Channels for its own OCRQs.
    assert_eq!(
        p.pns.conn.outgoing_call(p.now, dial()),
        Err(CommandError::NoChannel(2))
    );
}

#[test]
fn pns_at_its_limit_refuses_icrq_with_no_resource() {
    let mut pns = Config::new(Role::Pns);
    pns.maximum_channels = 1;
    let mut p = Pair::with(Config::new(Role::Pac), pns, true);
    p.settle();
    p.incoming_call_up();
    let id = p.pac.conn.incoming_call(p.now, ring()).unwrap();
    p.settle();
    assert_eq!(
        call_down(&p.pac, id).unwrap().1,
        CallEnd::IncomingRejected {
            result: IncomingCallResult::GeneralError,
            error: ErrorCode::NoResource
        }
    );
}

#[test]
fn call_ids_unique_quarantined_and_serials_monotonic() {
    let mut pac = Config::new(Role::Pac);
    pac.first_call_id = 100;
    pac.first_serial = 7;
    let mut p = Pair::with(pac, Config::new(Role::Pns), true);
    p.settle();
    let (a, _) = p.incoming_call_up();
    p.pac.conn.hang_up(p.now, a, CauseCode::None).unwrap();
    p.settle();
    assert!(p.pac.conn.is_quarantined(a, p.now));
    assert!(!p
        .pac
        .conn
        .is_quarantined(a, p.now + Duration::from_secs(60)));
    let (b, _) = p.incoming_call_up();
    assert_ne!(a, b);
    let serials: Vec<u16> = p
        .pns
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::IncomingCallRequested { request, .. } => Some(request.call_serial_number),
            _ => None,
        })
        .collect();
    assert_eq!(serials, vec![7, 8]);
}

#[test]
fn commands_in_the_wrong_state_are_refused() {
    let mut p = Pair::new();
    assert!(matches!(
        p.pac.conn.incoming_call(p.now, ring()),
        Err(CommandError::NotEstablished(CtrlState::WaitCtlReply))
    ));
    p.settle();
    assert_eq!(
        p.pns.conn.incoming_call(p.now, ring()),
        Err(CommandError::WrongRole(Role::Pns))
    );
    assert_eq!(
        p.pac.conn.answer_connected(p.now, 5, 1, FramingType::Async),
        Err(CommandError::UnknownCall(5))
    );
    let (pac_id, _) = p.incoming_call_up();
    assert!(matches!(
        p.pac
            .conn
            .answer_connected(p.now, pac_id, 1, FramingType::Async),
        Err(CommandError::WrongState {
            state: CallState::UpPac,
            ..
        })
    ));
}
