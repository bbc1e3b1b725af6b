//! In-memory pairs of PPP engines (client <-> server) on virtual time: every auth method and
//! CCP policy combination that should succeed opens the link, the ones that must fail fail
//! with a clear reason; negotiation converges under 20% seeded loss and fails after
//! Max-Configure under 100% loss; misbehaving peers are survived.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pptp_nas::ppp::auth::{
    mschap, AuthFailure, ClientCredentials, CredentialStore, Secret, StaticCredentials,
};
use pptp_nas::ppp::ccp::{CcpFailure, MppeMode, Stateless};
use pptp_nas::ppp::engine::{DownReason, Engine, Event, Phase, Policy, SendError};
use pptp_nas::ppp::ipcp::IpcpConfig;
use pptp_nas::ppp::lcp::AuthMethod;
use pptp_nas::ppp::packet::{FrameRepr, Protocol};

/// A tiny deterministic PRNG for loss injection (xorshift64*).
struct Loss {
    state: u64,
    percent: u64,
}

impl Loss {
    fn drop(&mut self) -> bool {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (r >> 33) % 100 < self.percent
    }
}

struct Pair {
    client: Engine,
    server: Engine,
    now: Instant,
    start: Instant,
    loss: Loss,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    frames: usize,
    /// Checked on every step: no network packet may pass before the gate opens.
    gate_violations: usize,
    /// Every frame sent, in order, with its sender and the poll batch it left in.
    wire: Vec<Sent>,
    batch: usize,
}

/// One frame on the wire.
#[derive(Debug, Clone)]
struct Sent {
    from: Side,
    batch: usize,
    frame: Vec<u8>,
}

impl Sent {
    /// (protocol, code) of the frame.
    fn kind(&self) -> Option<(Protocol, u8)> {
        let f = FrameRepr::parse(&self.frame).ok()?;
        Some((f.protocol, *f.payload.first()?))
    }

    fn payload(&self) -> Vec<u8> {
        FrameRepr::parse(&self.frame)
            .map(|f| f.payload.to_vec())
            .unwrap_or_default()
    }
}

fn server_ipcp() -> IpcpConfig {
    IpcpConfig {
        local: Some(Ipv4Addr::new(10, 8, 0, 1)),
        assign_peer: Some(Ipv4Addr::new(10, 8, 0, 2)),
        dns: [
            Some(Ipv4Addr::new(10, 8, 0, 53)),
            Some(Ipv4Addr::new(10, 8, 0, 54)),
        ],
        request_dns: false,
    }
}

fn store() -> Arc<StaticCredentials> {
    Arc::new(StaticCredentials::new().with_password("alice", "s3cret"))
}

impl Pair {
    fn new(client: Policy, server: Policy, seed: u8, loss_percent: u64) -> Pair {
        Pair::with_store(client, server, store(), seed, loss_percent)
    }

    fn with_store(
        client: Policy,
        server: Policy,
        store: Arc<dyn CredentialStore + Send + Sync>,
        seed: u8,
        loss_percent: u64,
    ) -> Pair {
        let now = Instant::now();
        let mut c = Engine::new(Arc::new(client), None, [seed; 32]);
        let mut s = Engine::new(Arc::new(server), Some(store), [seed.wrapping_add(100); 32]);
        c.open(now);
        s.open(now);
        Pair {
            client: c,
            server: s,
            now,
            start: now,
            loss: Loss {
                state: 0x9e37_79b9_7f4a_7c15 ^ u64::from(seed),
                percent: loss_percent,
            },
            client_events: Vec::new(),
            server_events: Vec::new(),
            frames: 0,
            gate_violations: 0,
            wire: Vec::new(),
            batch: 0,
        }
    }

    fn collect(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    fn check_gate(&mut self) {
        for e in [&mut self.client, &mut self.server] {
            let open = e.network_open();
            let attempt = e.send_network(Protocol::Ipv4, &[0x45, 0, 0, 20]);
            let mppe = e.ccp_result().is_some_and(|r| r.tx_encrypted());
            let ok = attempt.is_ok();
            if ok && !open {
                self.gate_violations += 1;
            }
            if !open && attempt != Err(SendError::NotOpen) {
                self.gate_violations += 1;
            }
            if open && mppe && attempt != Err(SendError::MustEncrypt) {
                self.gate_violations += 1;
            }
        }
    }

    /// Delivers frames (with loss) or jumps to the next deadline; false when nothing is left.
    fn step(&mut self) -> bool {
        let mut moved = false;
        self.batch += 1;
        while let Some(f) = self.client.poll_transmit() {
            moved = true;
            self.frames += 1;
            self.wire.push(Sent {
                from: Side::Client,
                batch: self.batch,
                frame: f.clone(),
            });
            if !self.loss.drop() {
                let _ = self.server.handle_frame(self.now, &f);
            }
        }
        self.batch += 1;
        while let Some(f) = self.server.poll_transmit() {
            moved = true;
            self.frames += 1;
            self.wire.push(Sent {
                from: Side::Server,
                batch: self.batch,
                frame: f.clone(),
            });
            if !self.loss.drop() {
                let _ = self.client.handle_frame(self.now, &f);
            }
        }
        self.collect();
        self.check_gate();
        if moved {
            return true;
        }
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) => {
                self.now = self.now.max(t);
                self.client.handle_timeout(self.now);
                self.server.handle_timeout(self.now);
                self.collect();
                true
            }
            None => false,
        }
    }

    /// Runs until both network layers are open, or a link went down, or virtual time ran out.
    fn run(&mut self) -> Outcome {
        for _ in 0..100_000 {
            if self.client.network_open() && self.server.network_open() {
                // Let CCP finish if it is still going (Preferred MPPE).
                for _ in 0..50 {
                    if !self.step() {
                        break;
                    }
                    if self.settled() {
                        break;
                    }
                }
                return Outcome::Open;
            }
            if let Some(r) = self.down() {
                return Outcome::Down(r);
            }
            if self.now - self.start > Duration::from_secs(600) || !self.step() {
                break;
            }
        }
        match self.down() {
            Some(r) => Outcome::Down(r),
            None => Outcome::Stuck,
        }
    }

    fn settled(&self) -> bool {
        let ccp_done = |e: &Engine| {
            e.ccp_state().map_or(true, |s| {
                matches!(
                    s,
                    pptp_nas::ppp::fsm::State::Opened | pptp_nas::ppp::fsm::State::Stopped
                )
            })
        };
        ccp_done(&self.client) && ccp_done(&self.server)
    }

    fn down(&self) -> Option<(Side, DownReason)> {
        let find = |ev: &[Event]| {
            ev.iter().find_map(|e| match e {
                Event::LinkDown(r) => Some(r.clone()),
                _ => None,
            })
        };
        // The side that decided reports the reason; the other often sees PeerTerminated.
        match (find(&self.server_events), find(&self.client_events)) {
            (Some(r), _) if r != DownReason::PeerTerminated => Some((Side::Server, r)),
            (_, Some(r)) if r != DownReason::PeerTerminated => Some((Side::Client, r)),
            (Some(r), _) => Some((Side::Server, r)),
            (None, Some(r)) => Some((Side::Client, r)),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Open,
    Down((Side, DownReason)),
    Stuck,
}

fn client(accept: &[AuthMethod], password: &str) -> Policy {
    let mut p = Policy::client(ClientCredentials::new("alice", password));
    p.lcp.accept_auth = accept.to_vec();
    p
}

fn server(methods: &[AuthMethod]) -> Policy {
    Policy::server(methods.to_vec(), server_ipcp())
}

const ALL: &[AuthMethod] = &[
    AuthMethod::MsChapV2,
    AuthMethod::MsChapV1,
    AuthMethod::ChapMd5,
    AuthMethod::Pap,
];

/// What a case expects.
enum Expect {
    /// Link opens; key length of MPPE (None: no MPPE); whether stateless.
    Open(Option<u16>, bool),
    /// Link fails; the predicate checks the reason.
    Fail(fn(&DownReason) -> bool),
}

struct Case {
    name: &'static str,
    /// Both directions must agree (false where one side only permits MPPE).
    symmetric: bool,
    client: Policy,
    server: Policy,
    expect: Expect,
}

fn keys(p: &mut Policy, k40: bool, k56: bool, k128: bool) {
    p.ccp.allow_40 = k40;
    p.ccp.allow_56 = k56;
    p.ccp.allow_128 = k128;
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // Every auth method, no MPPE required.
    for m in ALL {
        let mut s = server(&[*m]);
        s.ccp.mppe = MppeMode::Permitted;
        let mppe = if matches!(m, AuthMethod::MsChapV1 | AuthMethod::MsChapV2) {
            Some(128)
        } else {
            None
        };
        v.push(Case {
            symmetric: false,
            name: "each method, server permits MPPE, client prefers it",
            client: client(ALL, "s3cret"),
            server: s,
            expect: Expect::Open(mppe, false),
        });
        let mut s = server(&[*m]);
        s.ccp.mppe = MppeMode::Disabled;
        let mut c = client(ALL, "s3cret");
        c.ccp.mppe = MppeMode::Disabled;
        v.push(Case {
            symmetric: true,
            name: "each method, no CCP at all",
            client: c,
            server: s,
            expect: Expect::Open(None, false),
        });
        let c = client(&[*m], "s3cret");
        let s = server(ALL);
        v.push(Case {
            symmetric: true,
            name: "server offers all, client does only one (Nak walks down)",
            client: c,
            server: s,
            expect: Expect::Open(mppe, false),
        });
        // Wrong password fails for every method.
        v.push(Case {
            symmetric: true,
            name: "wrong password",
            client: client(ALL, "wrong"),
            server: server(&[*m]),
            expect: Expect::Fail(|r| matches!(r, DownReason::AuthFailed(_))),
        });
    }
    // MPPE key-length and stateless combinations (MS-CHAPv2).
    type Keys = (bool, bool, bool);
    let combos: &[(Keys, Keys, Option<u16>)] = &[
        ((true, true, true), (true, true, true), Some(128)),
        ((false, false, true), (true, true, true), Some(128)),
        ((true, true, true), (true, false, false), Some(40)),
        ((true, true, false), (true, true, true), Some(56)),
        ((true, false, true), (true, true, false), Some(40)),
        ((false, false, true), (true, false, false), None), // must fail
        ((true, false, false), (false, true, false), None), // must fail
    ];
    for (sk, ck, bits) in combos {
        for method in [AuthMethod::MsChapV2, AuthMethod::MsChapV1] {
            let mut s = server(&[method]);
            s.ccp.mppe = MppeMode::Required;
            keys(&mut s, sk.0, sk.1, sk.2);
            let mut c = client(ALL, "s3cret");
            keys(&mut c, ck.0, ck.1, ck.2);
            v.push(Case {
                symmetric: true,
                name: "MPPE required by server, key lengths",
                client: c,
                server: s,
                expect: match bits {
                    Some(b) => Expect::Open(Some(*b), false),
                    None => Expect::Fail(|r| {
                        matches!(r, DownReason::Ccp(CcpFailure::NoCommonKeyLength { .. }))
                    }),
                },
            });
        }
    }
    for (ss, cs, ok) in [
        (Stateless::Required, Stateless::Allowed, true),
        (Stateless::Allowed, Stateless::Required, true),
        (Stateless::Allowed, Stateless::Allowed, false),
        (Stateless::Required, Stateless::Off, false),
    ] {
        let mut s = server(&[AuthMethod::MsChapV2]);
        s.ccp.mppe = MppeMode::Required;
        s.ccp.stateless = ss;
        let mut c = client(ALL, "s3cret");
        c.ccp.stateless = cs;
        let expect = if ss == Stateless::Required && cs == Stateless::Off {
            Expect::Fail(|r| matches!(r, DownReason::Ccp(_)))
        } else {
            Expect::Open(Some(128), ok)
        };
        v.push(Case {
            symmetric: true,
            name: "stateless policies",
            client: c,
            server: s,
            expect,
        });
    }
    // Must-fail policy combinations.
    let mut s = server(&[AuthMethod::ChapMd5]);
    s.ccp.mppe = MppeMode::Required;
    v.push(Case {
        symmetric: true,
        name: "MPPE required but CHAP-MD5 gives no keys",
        client: client(ALL, "s3cret"),
        server: s,
        expect: Expect::Fail(|r| *r == DownReason::Ccp(CcpFailure::NoKeys)),
    });
    let mut s = server(&[AuthMethod::MsChapV2]);
    s.ccp.mppe = MppeMode::Required;
    let mut c = client(ALL, "s3cret");
    c.ccp.mppe = MppeMode::Disabled;
    v.push(Case {
        symmetric: true,
        name: "MPPE required, client has MPPE disabled",
        client: c,
        server: s,
        expect: Expect::Fail(|r| matches!(r, DownReason::Ccp(_) | DownReason::CcpTimeout)),
    });
    let mut c = client(ALL, "s3cret");
    c.ccp.mppe = MppeMode::Required;
    let mut s = server(&[AuthMethod::MsChapV2]);
    s.ccp.mppe = MppeMode::Disabled;
    v.push(Case {
        symmetric: true,
        name: "client requires MPPE, server has none",
        client: c,
        server: s,
        expect: Expect::Fail(|r| matches!(r, DownReason::Ccp(_) | DownReason::CcpTimeout)),
    });
    v.push(Case {
        symmetric: true,
        name: "no common auth method",
        client: client(&[AuthMethod::Pap], "s3cret"),
        server: server(&[AuthMethod::MsChapV2, AuthMethod::MsChapV1]),
        expect: Expect::Fail(|r| *r == DownReason::AuthRefused),
    });
    v
}

#[test]
fn table_of_policy_combinations() {
    let mut failures = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        let mut pair = Pair::new(case.client, case.server, i as u8, 0);
        let outcome = pair.run();
        let ok = match (&case.expect, &outcome) {
            (Expect::Open(bits, stateless), Outcome::Open) => {
                let r = pair.server.ccp_result();
                // Client-to-server direction; symmetric cases also check the other one.
                let got_bits = r.and_then(|r| r.rx_key_bits());
                let symmetric =
                    r.is_none_or(|r| r.tx_encrypted() == r.rx_encrypted()) || !case.symmetric;
                let got_h = r.is_some_and(|r| r.tx.contains(0x0100_0000));
                let addr = pair.client.ipcp_result().local == Ipv4Addr::new(10, 8, 0, 2);
                got_bits == *bits && got_h == *stateless && addr && symmetric
            }
            (Expect::Fail(pred), Outcome::Down((_, r))) => pred(r),
            _ => false,
        };
        assert_eq!(pair.gate_violations, 0, "case {i} {}", case.name);
        if !ok {
            failures.push(format!(
                "case {i} ({}): {:?}, server ccp {:?}",
                case.name,
                outcome,
                pair.server.ccp_result()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mschapv2_link_exposes_matching_material_and_addresses() {
    let mut s = server(&[AuthMethod::MsChapV2]);
    s.ccp.mppe = MppeMode::Required;
    let mut pair = Pair::new(client(ALL, "s3cret"), s, 1, 0);
    assert_eq!(pair.run(), Outcome::Open);
    assert_eq!(pair.client.auth_material(), pair.server.auth_material());
    assert!(!matches!(
        pair.server.auth_material(),
        pptp_nas::ppp::auth::AuthMaterial::None
    ));
    assert_eq!(pair.server.user(), Some(&b"alice"[..]));
    let c = pair.client.ipcp_result();
    assert_eq!(c.local, Ipv4Addr::new(10, 8, 0, 2));
    assert_eq!(c.peer, Ipv4Addr::new(10, 8, 0, 1));
    assert_eq!(
        c.dns,
        [
            Some(Ipv4Addr::new(10, 8, 0, 53)),
            Some(Ipv4Addr::new(10, 8, 0, 54))
        ]
    );
    // The shell-facing events came in order.
    assert!(matches!(pair.client_events.first(), Some(Event::LinkUp(_))));
    assert!(pair
        .server_events
        .iter()
        .any(|e| matches!(e, Event::CcpUp(_))));
    assert!(pair
        .server_events
        .iter()
        .any(|e| matches!(e, Event::IpUp(_))));
    assert_eq!(pair.server.phase(), Phase::Network);
    // Encrypted traffic passes; plain IPv4 is refused in both directions.
    let frame = pair
        .client
        .send_network(Protocol::CompressedDatagram, &[0x90, 0x00, 1, 2, 3])
        .unwrap();
    let got = pair.server.handle_frame(pair.now, &frame).unwrap();
    assert_eq!(got.payload, &[0x90, 0x00, 1, 2, 3]);
    // The MPPE data path built from the negotiation: client encrypts, server decrypts.
    let (mut ctx, _crx) = pair.client.mppe_data_path().unwrap();
    let (_stx, mut srx) = pair.server.mppe_data_path().unwrap();
    use pptp_nas::mppe::pipeline::{CcpReceive, CcpTransmit};
    let ip = [0x00, 0x21, 0x45, 0, 0, 24, 1, 2, 3, 4, 5, 6, 7, 8];
    let mut info = Vec::new();
    ctx.encode(&ip, &mut info).unwrap();
    assert_ne!(&info[2..], &ip[..]);
    let frame = pair
        .client
        .send_network(Protocol::CompressedDatagram, &info)
        .unwrap();
    let mut got = pair
        .server
        .handle_frame(pair.now, &frame)
        .unwrap()
        .payload
        .to_vec();
    assert_eq!(srx.decode(&mut got).unwrap(), &ip[..]);
    let plain = [0x21, 0x45, 0, 0, 20];
    assert!(pair.server.handle_frame(pair.now, &plain).is_none());
    assert!(pair.server.stats().gated >= 1);
}

#[test]
fn converges_under_20_percent_loss() {
    let mut opened = 0;
    let mut worst = Duration::ZERO;
    for seed in 0..30u8 {
        let mut s = server(&[AuthMethod::MsChapV2]);
        s.ccp.mppe = MppeMode::Required;
        let mut pair = Pair::new(client(ALL, "s3cret"), s, seed, 20);
        let outcome = pair.run();
        assert_eq!(outcome, Outcome::Open, "seed {seed}: {outcome:?}");
        assert_eq!(pair.gate_violations, 0);
        opened += 1;
        worst = worst.max(pair.now - pair.start);
    }
    assert_eq!(opened, 30);
    // Within the retry budget: 10 restarts of 3 s per layer at most.
    assert!(worst < Duration::from_secs(90), "worst {worst:?}");
}

#[test]
fn total_loss_fails_after_max_configure() {
    let mut pair = Pair::new(client(ALL, "s3cret"), server(ALL), 7, 100);
    let outcome = pair.run();
    assert!(
        matches!(outcome, Outcome::Down((_, DownReason::LcpTimeout))),
        "{outcome:?}"
    );
    // Both sides sent exactly Max-Configure (10) Configure-Requests, 3 s apart.
    assert_eq!(pair.frames, 20);
    assert_eq!(pair.now - pair.start, Duration::from_secs(30));
    assert_eq!(pair.client.phase(), Phase::Dead);
}

#[test]
fn echo_keepalive_detects_a_dead_peer() {
    let mut pair = Pair::new(client(ALL, "s3cret"), server(ALL), 3, 0);
    assert_eq!(pair.run(), Outcome::Open);
    // The server disappears: the client echoes 3 times, then declares the link dead.
    let mut now = pair.now;
    for _ in 0..20 {
        let Some(t) = pair.client.poll_timeout() else {
            break;
        };
        now = t;
        pair.client.handle_timeout(now);
        while pair.client.poll_transmit().is_some() {}
        pair.collect();
        if pair.client.phase() == Phase::Dead {
            break;
        }
    }
    assert!(pair
        .client_events
        .contains(&Event::LinkDown(DownReason::EchoTimeout)));
    assert!(now - pair.now >= Duration::from_secs(30));
}

#[test]
fn garbage_and_misbehaviour_in_every_phase() {
    // Frames a broken or hostile peer might send.
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff],
        vec![0xff, 0x03],
        vec![0xff, 0x03, 0xc0, 0x21],
        vec![0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 200, 1, 4, 5], // length lies (too long)
        vec![0xff, 0x03, 0xc0, 0x21, 1, 2, 0, 2],            // length below header
        vec![0xff, 0x03, 0xc0, 0x21, 1, 3, 0, 6, 1, 0],      // option length 0
        vec![0xff, 0x03, 0xc0, 0x21, 1, 4, 0, 6, 1, 1],      // option length 1
        vec![0xff, 0x03, 0xc0, 0x21, 2, 99, 0, 8, 5, 6, 0, 0], // Ack that matches nothing
        vec![0xff, 0x03, 0xc0, 0x21, 0x42, 1, 0, 4],         // unknown code
        vec![0xff, 0x03, 0xc2, 0x23, 2, 1, 0, 5, 0],         // CHAP Value-Size 0
        vec![0xff, 0x03, 0xc2, 0x23, 3, 1, 0, 6, b'S', b'='], // unsolicited Success
        vec![0xff, 0x03, 0x80, 0xfd, 1, 1, 0, 10, 18, 1, 0, 0, 0, 0], // CCP option length 1
        vec![0xff, 0x03, 0x80, 0x21, 1, 1, 0, 12, 3, 6, 0, 0], // IPCP length lies
        vec![0xff, 0x03, 0x80, 0xfd, 2, 0xee, 0, 10, 18, 6, 0, 0, 0, 0x40], // stray CCP Ack
        vec![0xff, 0x03, 0x80, 0x57, 1, 1, 0, 4],            // IPv6CP
        vec![0x21, 0x45, 0, 0, 20],                          // IPv4 before IPCP
        vec![0x00, 0x21, 0x45],                              // PFC-less short
    ];
    for seed in 0..4u8 {
        let mut s = server(&[AuthMethod::MsChapV2]);
        s.ccp.mppe = MppeMode::Required;
        let mut pair = Pair::new(client(ALL, "s3cret"), s, seed, 0);
        let mut steps = 0;
        loop {
            // Throw every junk frame at both engines between real exchanges.
            for j in &junk {
                let now = pair.now;
                // Only the IPv4 frame may pass, and only through an open gate.
                let (so, co) = (pair.server.network_open(), pair.client.network_open());
                assert!(pair.server.handle_frame(now, j).is_none() || so);
                assert!(pair.client.handle_frame(now, j).is_none() || co);
            }
            if pair.client.network_open() && pair.server.network_open() {
                break;
            }
            assert!(pair.down().is_none(), "seed {seed}: {:?}", pair.down());
            assert!(pair.step());
            steps += 1;
            assert!(steps < 2000);
        }
        assert_eq!(pair.gate_violations, 0);
    }
}

#[test]
fn mppe_gate_holds_until_ccp_opens() {
    let mut s = server(&[AuthMethod::MsChapV2]);
    s.ccp.mppe = MppeMode::Required;
    let mut c = client(ALL, "s3cret");
    c.ccp.mppe = MppeMode::Required;
    let mut pair = Pair::new(c, s, 9, 0);
    let mut saw_ipcp_before_ccp = false;
    for _ in 0..500 {
        if pair.client.network_open() && pair.server.network_open() {
            break;
        }
        for e in [&pair.client, &pair.server] {
            if e.ipcp_state() == pptp_nas::ppp::fsm::State::Opened && e.ccp_result().is_none() {
                saw_ipcp_before_ccp = true;
                assert!(!e.network_open());
            }
        }
        assert!(pair.step());
    }
    assert!(pair.client.network_open() && pair.server.network_open());
    assert_eq!(pair.gate_violations, 0);
    // Whether IPCP or CCP opened first depends on packet order; the gate is checked anyway.
    let _ = saw_ipcp_before_ccp;
}

impl Pair {
    /// Steps until both engines are Dead (or nothing moves, or 10 virtual minutes pass).
    fn run_until_dead(&mut self) {
        for _ in 0..10_000 {
            if self.client.phase() == Phase::Dead && self.server.phase() == Phase::Dead {
                return;
            }
            if self.now - self.start > Duration::from_secs(600) || !self.step() {
                return;
            }
        }
    }

    fn link_down(events: &[Event]) -> Option<DownReason> {
        events.iter().find_map(|e| match e {
            Event::LinkDown(r) => Some(r.clone()),
            _ => None,
        })
    }

    fn sent_by(&self, side: Side) -> Vec<&Sent> {
        self.wire.iter().filter(|s| s.from == side).collect()
    }
}

/// The auth protocol and the code of its negative verdict for a method.
fn refusal_of(m: AuthMethod) -> (Protocol, u8) {
    match m {
        AuthMethod::Pap => (Protocol::Pap, 3),
        _ => (Protocol::Chap, 4),
    }
}

/// Issue 3 bug: a server that refuses credentials sent LCP Terminate-Request without the
/// CHAP Failure (or PAP Authenticate-Nak) first, so the client never learned why. Now the
/// verdict goes out first, in the same poll_transmit batch, and the client's DownReason
/// carries the authenticator's words (E=691 ... M=...).
#[test]
fn refused_credentials_are_explained_before_terminate_request() {
    for (i, m) in ALL.iter().enumerate() {
        let mut pair = Pair::new(client(ALL, "wrong"), server(&[*m]), 40 + i as u8, 0);
        pair.run_until_dead();
        assert_eq!(pair.client.phase(), Phase::Dead, "{m:?}");
        assert_eq!(pair.server.phase(), Phase::Dead, "{m:?}");
        let srv = pair.sent_by(Side::Server);
        let fail = srv
            .iter()
            .position(|s| s.kind() == Some(refusal_of(*m)))
            .unwrap_or_else(|| panic!("{m:?}: no Failure/Nak sent: {:?}", pair.wire));
        let term = srv
            .iter()
            .position(|s| s.kind() == Some((Protocol::Lcp, 5)))
            .unwrap_or_else(|| panic!("{m:?}: no Terminate-Request sent"));
        assert!(fail < term, "{m:?}: Terminate-Request before the verdict");
        assert_eq!(
            srv[fail].batch, srv[term].batch,
            "{m:?}: not the same batch"
        );
        // Only one negative verdict, and no Success.
        assert_eq!(
            srv.iter()
                .filter(|s| s.kind() == Some(refusal_of(*m)))
                .count(),
            1
        );
        let p = srv[fail].payload();
        let message = match m {
            AuthMethod::Pap => p[5..].to_vec(), // Msg-Length octet, then the message
            _ => p[4..].to_vec(),
        };
        let text = String::from_utf8_lossy(&message).into_owned();
        match m {
            AuthMethod::MsChapV2 => {
                // RFC 2759 section 6: "E=eeeeeeeeee R=r C=cccc...(32) V=vvvvvvvvvv M=<msg>".
                let f = mschap::Failure::parse(&message).unwrap();
                assert_eq!(
                    (f.error, f.retry, f.version),
                    (691, false, Some(3)),
                    "{text}"
                );
                assert_eq!(f.challenge.as_ref().map(Vec::len), Some(16), "{text}");
                assert!(text.starts_with("E=691 R=0 C="), "{text}");
                let c = &text["E=691 R=0 C=".len()..];
                assert!(c[..32].bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
                assert!(c[32..].starts_with(" V=3 M="), "{text}");
            }
            AuthMethod::MsChapV1 => {
                let f = mschap::Failure::parse(&message).unwrap();
                assert_eq!((f.error, f.retry), (691, false), "{text}");
                assert!(text.starts_with("E=691 R=0"), "{text}");
            }
            AuthMethod::ChapMd5 => assert_eq!(text, "Authentication failure"),
            AuthMethod::Pap => assert_eq!(text, "Login incorrect"),
        }
        // The server knows what happened; the client now says it in its own reason.
        assert_eq!(
            Pair::link_down(&pair.server_events),
            Some(DownReason::AuthFailed(AuthFailure::BadCredentials(
                "alice".into()
            ))),
            "{m:?}"
        );
        let reason = Pair::link_down(&pair.client_events).unwrap();
        let DownReason::AuthFailed(AuthFailure::Rejected(why)) = &reason else {
            panic!("{m:?}: client reason {reason:?}");
        };
        match m {
            AuthMethod::MsChapV2 | AuthMethod::MsChapV1 => {
                assert_eq!(why, "E=691 R=0 Authentication failure", "{m:?}")
            }
            AuthMethod::ChapMd5 => assert_eq!(why, "Authentication failure"),
            AuthMethod::Pap => assert_eq!(why, "Login incorrect"),
        }
        assert!(
            reason
                .to_string()
                .starts_with("authentication failed: rejected by the authenticator: "),
            "{reason}"
        );
        // The client terminated too (it learned the verdict before the server's request).
        assert!(pair
            .sent_by(Side::Client)
            .iter()
            .any(|s| s.kind() == Some((Protocol::Lcp, 5)) || s.kind() == Some((Protocol::Lcp, 6))));
    }
}

/// A credential store whose first `flaky` lookups answer with a wrong secret: a back end
/// (RADIUS) with a transient fault, for the MS-CHAP R=1 retry.
struct Flaky {
    flaky: std::sync::atomic::AtomicUsize,
}

impl CredentialStore for Flaky {
    fn lookup(&self, user: &[u8]) -> Option<Secret> {
        if user != b"alice" {
            return None;
        }
        let left = self.flaky.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.flaky
                .store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Some(Secret::Password(b"not-yet".to_vec()));
        }
        Some(Secret::Password(b"s3cret".to_vec()))
    }
}

fn retry_pair(method: AuthMethod, server_retries: u8, client_retries: u8, flaky: usize) -> Pair {
    let mut s = server(&[method]);
    s.auth.retries = server_retries;
    let mut creds = ClientCredentials::new("alice", "s3cret");
    creds.retries = client_retries;
    let mut c = Policy::client(creds);
    c.lcp.accept_auth = ALL.to_vec();
    let store = Arc::new(Flaky {
        flaky: std::sync::atomic::AtomicUsize::new(flaky),
    });
    Pair::with_store(c, s, store, 60, 0)
}

fn failures(pair: &Pair) -> Vec<mschap::Failure> {
    pair.sent_by(Side::Server)
        .iter()
        .filter(|s| s.kind() == Some((Protocol::Chap, 4)))
        .map(|s| mschap::Failure::parse(&s.payload()[4..]).unwrap())
        .collect()
}

fn responses(pair: &Pair) -> Vec<Vec<u8>> {
    pair.sent_by(Side::Client)
        .iter()
        .filter(|s| s.kind() == Some((Protocol::Chap, 2)))
        .map(|s| s.payload())
        .collect()
}

#[test]
fn mschap_retry_r1_recovers_from_a_transient_refusal() {
    for method in [AuthMethod::MsChapV2, AuthMethod::MsChapV1] {
        // Both sides allow one retry; the store refuses once, then knows the password.
        let mut pair = retry_pair(method, 1, 1, 1);
        assert_eq!(pair.run(), Outcome::Open, "{method:?}");
        let f = failures(&pair);
        assert_eq!(f.len(), 1, "{method:?}");
        assert!(f[0].retry && f[0].error == 691, "{method:?} {:?}", f[0]);
        let r = responses(&pair);
        assert_eq!(r.len(), 2, "{method:?}");
        // RFC 2759 section 6: the retry Response has an Identifier one greater.
        assert_eq!(r[1][1], r[0][1].wrapping_add(1), "{method:?}");
        assert_eq!(pair.server.user(), Some(&b"alice"[..]));
    }
}

#[test]
fn mschap_retry_r1_then_r0_ends_with_the_reason() {
    // The store refuses twice: R=1, the client retries, then R=0 and a clear reason.
    let mut pair = retry_pair(AuthMethod::MsChapV2, 1, 3, 5);
    pair.run_until_dead();
    let f = failures(&pair);
    assert_eq!(
        f.iter().map(|f| (f.error, f.retry)).collect::<Vec<_>>(),
        [(691, true), (691, false)]
    );
    assert_eq!(responses(&pair).len(), 2);
    assert_eq!(
        Pair::link_down(&pair.client_events),
        Some(DownReason::AuthFailed(AuthFailure::Rejected(
            "E=691 R=0 Authentication failure".into()
        )))
    );
    // A client that allows no retry stops at the first Failure and says R=1 was offered.
    let mut pair = retry_pair(AuthMethod::MsChapV2, 1, 0, 5);
    pair.run_until_dead();
    assert_eq!(responses(&pair).len(), 1);
    assert_eq!(
        Pair::link_down(&pair.client_events),
        Some(DownReason::AuthFailed(AuthFailure::Rejected(
            "E=691 R=1 Authentication failure, retry".into()
        )))
    );
}

/// The client requires MPPE, the server has CCP disabled: the client fails with a CCP reason
/// and the server can tell its operator why (it refused the peer's CCP, and the peer's
/// Terminate-Request text), not only that the link went down.
#[test]
fn server_explains_a_ccp_refusal_it_caused() {
    let mut c = client(ALL, "s3cret");
    c.ccp.mppe = MppeMode::Required;
    let mut s = server(&[AuthMethod::MsChapV2]);
    s.ccp.mppe = MppeMode::Disabled;
    s.ccp.mppc = false;
    let mut pair = Pair::new(c, s, 77, 0);
    let outcome = pair.run();
    assert!(
        matches!(
            outcome,
            Outcome::Down((_, DownReason::Ccp(_) | DownReason::CcpTimeout))
        ),
        "{outcome:?}"
    );
    pair.run_until_dead();
    let detail = pair.server.down_detail().unwrap_or_default();
    assert!(detail.contains("CCP"), "{detail}");
    assert!(detail.contains("Terminate-Request"), "{detail}");
    assert_eq!(pair.client.down_detail(), None);
}
