//! Feeds arbitrary frames to a server engine and a client engine in every phase.
//!
//! The first octet says how many honest exchange steps run first (low 4 bits, so the fuzzer
//! reaches Establish, Authenticate and Network), whether the client's password is wrong
//! (bit 4: the refusal path, Failure then Terminate-Request) and whether both sides allow one
//! MS-CHAP retry (bit 5: the R=1 path); the rest is a list of frames, each introduced by a
//! control octet: bit 7 picks the target engine, bit 6 advances virtual time by one second
//! first, the low 6 bits give the frame length (the frame is cut at the end of the input).
//! Output frames of each engine are delivered to the other between fuzzed frames, so the
//! fuzzed input interleaves with a live negotiation.

#![no_main]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pptp_nas::ppp::auth::{ClientCredentials, StaticCredentials};
use pptp_nas::ppp::ccp::MppeMode;
use pptp_nas::ppp::engine::{Engine, Policy};
use pptp_nas::ppp::ipcp::IpcpConfig;
use pptp_nas::ppp::lcp::AuthMethod;

fn engines(wrong_password: bool, retries: u8) -> (Engine, Engine) {
    let mut sp = Policy::server(
        vec![AuthMethod::MsChapV2, AuthMethod::ChapMd5, AuthMethod::Pap],
        IpcpConfig {
            local: Some(Ipv4Addr::new(10, 0, 0, 1)),
            assign_peer: Some(Ipv4Addr::new(10, 0, 0, 2)),
            dns: [Some(Ipv4Addr::new(10, 0, 0, 53)), None],
            request_dns: false,
        },
    );
    sp.ccp.mppe = MppeMode::Required;
    sp.auth.retries = retries;
    let mut creds = ClientCredentials::new("alice", if wrong_password { "no" } else { "pw" });
    creds.retries = retries;
    let store = Arc::new(StaticCredentials::new().with_password("alice", "pw"));
    let server = Engine::new(Arc::new(sp), Some(store), [7; 32]);
    let client = Engine::new(Arc::new(Policy::client(creds)), None, [8; 32]);
    (client, server)
}

fn exchange(c: &mut Engine, s: &mut Engine, now: Instant) {
    for _ in 0..4 {
        while let Some(f) = c.poll_transmit() {
            let _ = s.handle_frame(now, &f);
        }
        while let Some(f) = s.poll_transmit() {
            let _ = c.handle_frame(now, &f);
        }
        while c.poll_event().is_some() {}
        while s.poll_event().is_some() {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&honest, mut rest)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let (mut c, mut s) = engines(honest & 0x10 != 0, (honest >> 5) & 1);
    c.open(now);
    s.open(now);
    for _ in 0..(honest % 16) {
        exchange(&mut c, &mut s, now);
    }
    while let Some((&ctl, tail)) = rest.split_first() {
        let len = usize::from(ctl & 0x3f).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        if ctl & 0x40 != 0 {
            now += Duration::from_secs(1);
            c.handle_timeout(now);
            s.handle_timeout(now);
        }
        let target = if ctl & 0x80 != 0 { &mut s } else { &mut c };
        let _ = target.handle_frame(now, frame);
        let _ = target.send_network(pptp_nas::ppp::packet::Protocol::Ipv4, frame);
        exchange(&mut c, &mut s, now);
    }
});
