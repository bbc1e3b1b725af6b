#![no_main]
//! Feeds arbitrary TCP bytes to a PPTP control connection in every state.
//!
//! The first byte picks the role, which end opened, and a scripted prefix that drives the
//! connection into a state (waiting for SCCRQ/SCCRP, established, established with calls in
//! each call state, waiting for StopCCRP). The rest is cut into chunks; the first octet of each
//! chunk advances virtual time (0..=255 seconds in 1 s steps) and runs the timers. Invariants:
//! no panic, and `poll_timeout` never lies in the past after `handle_timeout`.
use libfuzzer_sys::fuzz_target;
use pptp_nas::pptp::control::{
    Config, Connection, DialResult, Event, IncomingCall, Open, OutgoingCall, Role,
};
use pptp_nas::pptp::message::{
    BearerType, FramingType, IncomingCallConnected, IncomingCallReply, IncomingCallRequest,
    IncomingCallResult, ErrorCode, Message, OutgoingCallRequest, StartControlConnectionReply,
    StartControlConnectionRequest, StartControlConnectionResult, StopReason, TextField,
};
use std::time::{Duration, Instant};

fn sccrq() -> Message {
    StartControlConnectionRequest {
        protocol_version: 0x0100,
        framing_capabilities: Default::default(),
        bearer_capabilities: Default::default(),
        maximum_channels: 4,
        firmware_revision: 1,
        host_name: TextField::empty(),
        vendor: TextField::empty(),
    }
    .into()
}

fn sccrp() -> Message {
    StartControlConnectionReply {
        protocol_version: 0x0100,
        result: StartControlConnectionResult::Success,
        error: ErrorCode::None,
        framing_capabilities: Default::default(),
        bearer_capabilities: Default::default(),
        maximum_channels: 4,
        firmware_revision: 1,
        host_name: TextField::empty(),
        vendor: TextField::empty(),
    }
    .into()
}

fn ring() -> IncomingCall {
    IncomingCall {
        bearer: BearerType::Analog,
        physical_channel_id: 0,
        dialed: TextField::empty(),
        dialing: TextField::empty(),
        subaddress: TextField::empty(),
    }
}

fn drain(c: &mut Connection) {
    let mut out = Vec::new();
    while c.poll_transmit(&mut out).is_some() {}
    while let Some(e) = c.poll_event() {
        // Keep the events alive so the optimiser cannot drop their construction.
        if let Event::Closed(_) = e {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let role = if sel & 1 == 0 { Role::Pac } else { Role::Pns };
    let open = if sel & 2 == 0 { Open::Passive } else { Open::Active };
    let mut cfg = Config::new(role);
    cfg.maximum_channels = 4;
    let mut c = Connection::new(cfg, open, t0);
    let feed = |c: &mut Connection, m: Message| c.handle_bytes(t0, &m.to_vec());
    match (sel >> 2) % 8 {
        0 => {} // Idle / WaitCtlReply
        script => {
            feed(&mut c, if open == Open::Active { sccrp() } else { sccrq() });
            match script {
                2 => {
                    // Calls in several states.
                    if role == Role::Pac {
                        let a = c.incoming_call(t0, ring());
                        let b = c.incoming_call(t0, ring());
                        if let (Ok(_), Ok(b)) = (a, b) {
                            feed(&mut c, IncomingCallReply {
                                call_id: 77,
                                peer_call_id: b,
                                result: IncomingCallResult::Connect,
                                error: ErrorCode::None,
                                packet_recv_window_size: 8,
                                packet_transmit_delay: 0,
                            }.into());
                        }
                    } else {
                        feed(&mut c, IncomingCallRequest {
                            call_id: 5,
                            call_serial_number: 1,
                            call_bearer_type: BearerType::Analog,
                            physical_channel_id: 0,
                            dialed_number_length: 0,
                            dialing_number_length: 0,
                            dialed_number: TextField::empty(),
                            dialing_number: TextField::empty(),
                            subaddress: TextField::empty(),
                        }.into());
                        let first = c.call_ids().next();
                        if let Some(id) = first {
                            let _ = c.accept_call(t0, id);
                        }
                    }
                }
                3 => {
                    let id = c.outgoing_call(t0, OutgoingCall {
                        minimum_bps: 0,
                        maximum_bps: 0,
                        bearer: BearerType::Any,
                        framing: FramingType::Either,
                        phone_number: TextField::empty(),
                        subaddress: TextField::empty(),
                    });
                    let _ = id;
                    feed(&mut c, OutgoingCallRequest {
                        call_id: 9,
                        call_serial_number: 2,
                        minimum_bps: 0,
                        maximum_bps: 0,
                        bearer_type: BearerType::Any,
                        framing_type: FramingType::Async,
                        packet_recv_window_size: 4,
                        packet_processing_delay: 0,
                        phone_number_length: 0,
                        phone_number: TextField::empty(),
                        subaddress: TextField::empty(),
                    }.into());
                    let dialing: Vec<u16> = c.call_ids().collect();
                    for id in dialing {
                        let _ = c.dial_result(t0, id, DialResult::connected(1));
                    }
                }
                4 => c.stop(t0, StopReason::None),
                5 => {
                    let _ = c.incoming_call(t0, ring());
                    feed(&mut c, IncomingCallConnected {
                        peer_call_id: 1,
                        connect_speed: 1,
                        packet_recv_window_size: 1,
                        packet_transmit_delay: 0,
                        framing_type: FramingType::Async,
                    }.into());
                }
                _ => {}
            }
        }
    }
    drain(&mut c);
    let mut now = t0;
    for chunk in rest.split(|b| *b == 0x7e) {
        if let Some((&dt, bytes)) = chunk.split_first() {
            now += Duration::from_secs(u64::from(dt));
            c.handle_timeout(now);
            c.handle_bytes(now, bytes);
            // Commands on whatever calls exist, driven by the data.
            let ids: Vec<u16> = c.call_ids().collect();
            for id in ids {
                match dt % 5 {
                    0 => { let _ = c.hang_up(now, id, pptp_nas::pptp::message::CauseCode::None); }
                    1 => { let _ = c.answer_connected(now, id, 9600, FramingType::Async); }
                    2 => { let _ = c.set_link_info(now, id, 0, 0); }
                    3 => { let _ = c.wan_error(now, id, Default::default()); }
                    _ => {}
                }
            }
            drain(&mut c);
            c.handle_timeout(now);
            drain(&mut c);
            if let Some(t) = c.poll_timeout() {
                assert!(t > now, "timer at {t:?} not handled at {now:?}");
            }
        }
    }
});
