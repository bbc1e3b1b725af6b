//! Process-level test of `pptp-nas pns`: a minimal PAC built in the test from the sans-IO
//! control core (PAC role) and a PPP client [`Session`] calls the daemon over loopback TCP and
//! raw GRE (PAC on 127.0.0.2, PNS on 127.0.0.1), authenticates with MS-CHAPv2, negotiates
//! MPPE-128 + MPPC, sends pings and gets them answered by the PNS responder; then SIGTERM
//! stops the daemon with exit 0. Needs root or CAP_NET_RAW (raw GRE); without it the test fails
//! with a message saying so (CI runs as root).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pptp_nas::io::gre_transport::{GreTransport, RawGreSocket, RecvBatch};
use pptp_nas::pns::session::Session;
use pptp_nas::ppp::auth::ClientCredentials;
use pptp_nas::ppp::ccp::{MppeMode, Stateless};
use pptp_nas::ppp::engine::{Event as PppEvent, Policy};
use pptp_nas::ppp::lcp::AuthMethod;
use pptp_nas::pptp::control::{Config, Connection, Event, IncomingCall, Open, Role};
use pptp_nas::pptp::gre::{GreRepr, SeqNumber};
use pptp_nas::pptp::message::{BearerType, FramingType, TextField};
use pptp_nas::responder::Pinger;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const PAC: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client_policy(password: &str) -> Policy {
    let mut p = Policy::client(ClientCredentials::new("alice", password));
    p.lcp.accept_auth = vec![AuthMethod::MsChapV2];
    p.ccp.mppe = MppeMode::Required;
    p.ccp.allow_40 = false;
    p.ccp.allow_56 = false;
    p.ccp.allow_128 = true;
    p.ccp.stateless = Stateless::Allowed;
    p.ccp.mppc = true;
    p
}

struct Outcome {
    authenticated: bool,
    ccp_up: bool,
    ip: Option<Ipv4Addr>,
    replies: u32,
}

/// Runs one call against the daemon on `port`; sends `pings` pings once IPCP is up.
async fn one_call(port: u16, password: &str, pings: u32, gre: &RawGreSocket) -> Outcome {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((PAC, 0))).unwrap();
    let mut tcp = sock
        .connect(SocketAddr::from((PNS, port)))
        .await
        .expect("connect to pns");
    let mut cfg = Config::new(Role::Pac);
    // Call IDs unlikely to be the daemon's own (0x4000..), so our raw socket's view of the
    // PNS's packets is not confused with ours.
    cfg.first_call_id = 0x2000 + (std::process::id() % 0x1000) as u16;
    let t0 = Instant::now();
    let mut ctrl = Connection::new(cfg, Open::Active, t0);
    let mut out = Vec::new();
    let mut rbuf = vec![0u8; 4096];
    let mut batch = RecvBatch::new(32);
    let mut session: Option<(Session, u16, u16)> = None;
    let mut seq = 0u32;
    let mut pinger: Option<Pinger> = None;
    let mut sent = 0u32;
    let mut res = Outcome {
        authenticated: false,
        ccp_up: false,
        ip: None,
        replies: 0,
    };
    let mut requested = false;
    let deadline = t0 + Duration::from_secs(20);
    let mut next_ping = t0;
    loop {
        let now = Instant::now();
        assert!(now < deadline, "call did not finish in time");
        if ctrl.state() == pptp_nas::pptp::control::CtrlState::Established && !requested {
            requested = true;
            ctrl.incoming_call(
                now,
                IncomingCall {
                    bearer: BearerType::Analog,
                    physical_channel_id: 0,
                    dialed: TextField::new(b"100").unwrap(),
                    dialing: TextField::new(b"5550001").unwrap(),
                    subaddress: TextField::default(),
                },
            )
            .unwrap();
        }
        while let Some(ev) = ctrl.poll_event() {
            match ev {
                Event::AnswerCall { call_id } => {
                    ctrl.answer_connected(now, call_id, 33_600, FramingType::Async)
                        .unwrap();
                }
                Event::CallUp(info) => {
                    let mut s = Session::new(Arc::new(client_policy(password)), None, [9; 32]);
                    s.open(now);
                    session = Some((s, info.call_id, info.peer_call_id));
                }
                Event::CallDown { .. } | Event::Closed(_) => return res,
                _ => {}
            }
        }
        while ctrl.poll_transmit(&mut out).is_some() {}
        if !out.is_empty() {
            tcp.write_all(&out).await.unwrap();
            out.clear();
        }
        if let Some((s, _, peer_id)) = session.as_mut() {
            while let Some(ev) = s.poll_event() {
                match ev {
                    PppEvent::Authenticated { .. } => res.authenticated = true,
                    PppEvent::CcpUp(_) => res.ccp_up = true,
                    PppEvent::IpUp(r) => {
                        res.ip = Some(r.local);
                        pinger = Some(Pinger::new(r.local, r.peer, 0x77, 56));
                    }
                    PppEvent::LinkDown(_) => return res,
                    _ => {}
                }
            }
            if let Some(p) = pinger.as_mut() {
                if s.ready() && sent < pings && now >= next_ping {
                    sent += 1;
                    next_ping = now + Duration::from_millis(100);
                    s.send_ip(&p.next_request(now)).unwrap();
                }
                if res.replies >= pings {
                    return res;
                }
            }
            while let Some(frame) = s.poll_transmit() {
                let g = GreRepr::data(*peer_id, frame.len() as u16, SeqNumber(seq), None);
                seq += 1;
                let mut pkt = Vec::new();
                g.emit_with_payload(&frame, &mut pkt);
                gre.send_to(PNS, &pkt).await.unwrap();
            }
        }
        let mut wake = Instant::now() + Duration::from_millis(20);
        if let Some(t) = session.as_ref().and_then(|(s, _, _)| s.poll_timeout()) {
            wake = wake.min(t);
        }
        tokio::select! {
            r = tcp.read(&mut rbuf) => {
                let n = r.unwrap();
                if n == 0 { ctrl.handle_tcp_closed(Instant::now()); return res; }
                ctrl.handle_bytes(Instant::now(), &rbuf[..n]);
            }
            r = gre.recv_batch(&mut batch) => {
                r.unwrap();
                let now = Instant::now();
                for (src, pkt) in batch.iter() {
                    let Ok((g, payload)) = GreRepr::parse_bytes(pkt) else { continue };
                    let Some((s, my_id, _)) = session.as_mut() else { continue };
                    if src != PNS || g.call_id != *my_id || payload.is_empty() { continue; }
                    if let Some(ip) = s.handle_frame(now, payload) {
                        if pinger.as_mut().and_then(|p| p.handle_packet(now, &ip)).is_some() {
                            res.replies += 1;
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                ctrl.handle_timeout(now);
                if let Some((s, _, _)) = session.as_mut() {
                    if s.poll_timeout().is_some_and(|t| t <= now) { s.handle_timeout(now); }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pac_calls_pns_over_loopback_and_pings_are_answered() {
    let gre = match RawGreSocket::bind(PAC, false) {
        Ok(g) => g,
        Err(e) => panic!("raw socket: {e}: needs root or CAP_NET_RAW for raw GRE sockets; run the tests as root, as .ci/run does"),
    };
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_pptp-nas"))
        .args([
            "pns",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--user",
            "alice:secret",
            "--auth",
            "mschapv2",
            "--mppe",
            "128",
            "--mppc",
            "on",
            "--pool",
            "192.168.77.10-192.168.77.50",
            "--responder",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    // Wait for the listener.
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "pns did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let ok = one_call(port, "secret", 5, &gre).await;
    assert!(ok.authenticated, "MS-CHAPv2 with the right password");
    assert!(ok.ccp_up, "MPPE/MPPC negotiated");
    assert_eq!(
        ok.ip,
        Some(Ipv4Addr::new(192, 168, 77, 10)),
        "first pool address"
    );
    assert_eq!(ok.replies, 5, "every ping answered by the responder");

    let bad = one_call(port, "wrong", 1, &gre).await;
    assert!(!bad.authenticated, "wrong password refused");
    assert_eq!(bad.replies, 0);

    // SIGTERM: clean stop, exit 0.
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "pns did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}
