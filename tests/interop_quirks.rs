//! Scenario e of issue 9: behaviour the real PPTP peers show that RFC 2637 does not, and how
//! pptp-nas copes with each.
//!
//! - Replays (no root, no packages): byte streams of real pptp-linux 1.10 and pptpd 1.4.0 from
//!   `/work/shared/captures/pptp-linux-to-pptpd.pcapng` (frames named per constant) fed into
//!   our sans-IO control core and GRE window.
//! - Live (root, packages): our control core in the PAC's outgoing-call compat role (as
//!   `pac::pns` runs it) against real `pptpctrl` over loopback TCP and raw GRE: pptpd's first
//!   GRE sequence number 0, Set-Link-Info with real ACCMs ignored, Echo answered, and
//!   Call-Clear-Request answered by closing TCP without Call-Disconnect-Notify; pptpctrl's own
//!   log (from /dev/log) shows each.
//!
//! Covered elsewhere: pptp-linux closing TCP without Stop-Control-Connection-Request against
//! our real PNS (`tests/interop_pns.rs`), pptp-linux's first sequence number 1 into our PNS
//! (same), pptpd closing without CDN under pptp-linux (`tests/interop_pptp.rs`).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pptp_nas::io::gre_transport::{GreTransport, RawGreSocket, RecvBatch};
use pptp_nas::pptp::control::{
    CallEnd, CallState, CloseReason, Config, Connection, CtrlState, DialResult, Event, Open,
    OutgoingCall, Role,
};
use pptp_nas::pptp::gre::{GreRepr, SeqNumber};
use pptp_nas::pptp::message::{BearerType, ControlMessageType, FramingType, TextField};
use pptp_nas::pptp::window::{Rx, Window, WindowConfig};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// pptp-linux-to-pptpd.pcapng, pptp-linux 1.10 (127.0.0.4) calling pptpd 1.4.0 (127.0.0.1).
/// Frame 200: pptp-linux's SCCRQ (framing 3, bearer 3, max channels 0xffff, "local", "cananian").
const LINUX_SCCRQ: &str = "009c00011a2b3c4d00010000010000000000000300000003ffff00016c6f63616c000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000063616e616e69616e0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
/// Frame 202: pptpd's SCCRP.
const PPTPD_SCCRP: &str = "009c00011a2b3c4d00020000010001000000000000000000000100016c6f63616c00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000006c696e75780000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
/// Frame 204: pptp-linux's OCRQ (Call ID 0x6d2f, 2400..10000000 bit/s, window 3, no number).
const LINUX_OCRQ: &str = "00a800011a2b3c4d000700006d2f00000000096000989680000000030000000300030000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
/// Frame 205: pptpd's OCRP (its Call ID 0x0780 = 15 x 128, peer 0x6d2f, Connected).
const PPTPD_OCRP: &str = "002000011a2b3c4d0008000007806d2f01000000009896800003000000000000";
/// Frame 212: pptp-linux's Call-Clear-Request (its Call ID 0x6d2f). Its last control
/// message: no Stop-Control-Connection-Request follows; pptpd closed TCP without a CDN.
const LINUX_CCRQ: &str = "001000011a2b3c4d000c00006d2f0000";
/// Frame 207: pptp-linux's first GRE packet: sequence number 1 (LCP Configure-Request).
const LINUX_GRE_FIRST: &str = "3001880b0012078000000001ff03c0210101000e010405780506a1b2c3d4";
/// Frame 208: pptpd's first GRE packet: sequence number 0.
const PPTPD_GRE_FIRST: &str = "3001880b00126d2f00000000ff03c0210101000e010405780506a1b2c3d4";
/// Frame 209: pptpd's second GRE packet: sequence 1, acknowledging pptp-linux's 1.
const PPTPD_GRE_SECOND: &str =
    "3081880b00126d2f0000000100000001ff03c0210201000e010405780506a1b2c3d4";
/// Frame 211: pptpd's acknowledgment-only packet (12-octet header, ack 2).
const PPTPD_GRE_ACK: &str = "2081880b00006d2f00000002";

fn drain_events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn drain_types(c: &mut Connection) -> Vec<ControlMessageType> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| c.poll_transmit(&mut buf)).collect()
}

/// pptp-linux's real byte stream into our PNS-side core: SCCRQ, OCRQ, CCRQ, then TCP closes
/// without Stop-Control-Connection-Request. The core answers each message, frees the call on
/// the CCRQ (with a CDN), and ends cleanly on the bare TCP close.
#[test]
fn pptp_linux_stream_into_our_pns_core_ends_without_stopccrq() {
    let t0 = Instant::now();
    let mut c = Connection::new(Config::new(Role::Pns), Open::Passive, t0);
    c.handle_bytes(t0, &hex(LINUX_SCCRQ));
    assert!(matches!(drain_events(&mut c)[..], [Event::Established(_)]));
    assert_eq!(
        drain_types(&mut c),
        [ControlMessageType::StartControlConnectionReply]
    );
    c.handle_bytes(t0, &hex(LINUX_OCRQ));
    let call_id = match drain_events(&mut c)[..] {
        [Event::OutgoingCallRequested { call_id, request }] => {
            assert_eq!(request.call_id, 0x6d2f);
            assert_eq!(request.packet_recv_window_size, 3);
            call_id
        }
        ref other => panic!("{other:?}"),
    };
    c.dial_result(t0, call_id, DialResult::connected(10_000_000))
        .unwrap();
    assert!(matches!(drain_events(&mut c)[..], [Event::CallUp(_)]));
    assert_eq!(drain_types(&mut c), [ControlMessageType::OutgoingCallReply]);
    c.handle_bytes(t0, &hex(LINUX_CCRQ));
    assert_eq!(
        drain_events(&mut c),
        [Event::CallDown {
            call_id,
            end: CallEnd::ClearedByPeer
        }]
    );
    assert_eq!(
        drain_types(&mut c),
        [ControlMessageType::CallDisconnectNotify]
    );
    assert_eq!(c.state(), CtrlState::Established);
    // pptp-linux now closes TCP; no StopCCRQ ever comes. Nothing is left waiting.
    c.handle_tcp_closed(t0 + Duration::from_millis(5));
    assert_eq!(
        drain_events(&mut c),
        [Event::Closed(CloseReason::TcpClosed)]
    );
    assert_eq!(c.state(), CtrlState::Closed);
    assert_eq!(c.call_count(), 0);
    assert_eq!(c.poll_timeout(), None);
    let st = c.stats();
    assert_eq!((st.invalid, st.illegal, st.unknown_type), (0, 0, 0));
}

/// pptpd's real SCCRP and OCRP into our core in the PAC's outgoing-call compat role (what
/// `pac::pns` runs towards pptpd); our Call-Clear-Request is answered by a bare TCP close.
/// The call ends at once as ConnectionClosed, without waiting for the CDN time-out.
#[test]
fn pptpd_stream_into_our_compat_core_close_instead_of_cdn() {
    let t0 = Instant::now();
    let mut cfg = Config::new(Role::Pac);
    // pptpd's OCRP in the capture answers Call ID 0x6d2f: be that caller.
    cfg.first_call_id = 0x6d2f;
    let mut c = Connection::new(cfg, Open::Active, t0);
    assert_eq!(
        drain_types(&mut c),
        [ControlMessageType::StartControlConnectionRequest]
    );
    c.handle_bytes(t0, &hex(PPTPD_SCCRP));
    assert!(matches!(drain_events(&mut c)[..], [Event::Established(_)]));
    let call_id = c
        .outgoing_call(
            t0,
            OutgoingCall {
                minimum_bps: 2400,
                maximum_bps: 10_000_000,
                bearer: BearerType::Any,
                framing: FramingType::Either,
                phone_number: TextField::default(),
                subaddress: TextField::default(),
            },
        )
        .unwrap();
    assert_eq!(call_id, 0x6d2f);
    assert_eq!(
        drain_types(&mut c),
        [ControlMessageType::OutgoingCallRequest]
    );
    c.handle_bytes(t0, &hex(PPTPD_OCRP));
    match drain_events(&mut c)[..] {
        [Event::CallUp(info)] => {
            // pptpd's Call IDs are multiples of 128.
            assert_eq!(info.peer_call_id, 0x0780);
            assert_eq!(info.peer_call_id % 128, 0);
        }
        ref other => panic!("{other:?}"),
    }
    let t1 = t0 + Duration::from_secs(2);
    c.hang_up(
        t1,
        call_id,
        pptp_nas::pptp::message::CauseCode::NormalClearing,
    )
    .unwrap();
    assert_eq!(drain_types(&mut c), [ControlMessageType::CallClearRequest]);
    assert_eq!(c.call_state(call_id), Some(CallState::WaitCdn));
    // pptpd: "Received CALL CLR request (closing call)", then it exits: TCP closes, no CDN.
    c.handle_tcp_closed(t1 + Duration::from_millis(3));
    let ev = drain_events(&mut c);
    assert!(
        ev.contains(&Event::CallDown {
            call_id,
            end: CallEnd::ConnectionClosed
        }),
        "{ev:?}"
    );
    assert_eq!(ev.last(), Some(&Event::Closed(CloseReason::TcpClosed)));
    assert_eq!(c.call_count(), 0);
    assert_eq!(
        c.poll_timeout(),
        None,
        "nothing waits for the CDN that never comes"
    );
}

/// pptpd starts its GRE sequence numbers at 0, pptp-linux at 1; our receive window takes the
/// first packet as the start of the sequence space either way and delivers both streams.
#[test]
fn first_gre_sequence_number_zero_and_one_both_delivered() {
    let t0 = Instant::now();
    // pptpd's stream, seen by the caller (Call ID 0x6d2f).
    let mut w = Window::new(WindowConfig::new(0x0780));
    let (g, p) = GreRepr::parse_bytes(&hex(PPTPD_GRE_FIRST))
        .map(|(g, p)| (g, p.to_vec()))
        .unwrap();
    assert_eq!(
        (g.call_id, g.seq, g.ack),
        (0x6d2f, Some(SeqNumber(0)), None)
    );
    assert_eq!(w.handle_packet(t0, &g, &p), Rx::Deliver);
    let (g, p) = GreRepr::parse_bytes(&hex(PPTPD_GRE_SECOND))
        .map(|(g, p)| (g, p.to_vec()))
        .unwrap();
    assert_eq!((g.seq, g.ack), (Some(SeqNumber(1)), Some(SeqNumber(1))));
    assert_eq!(w.handle_packet(t0, &g, &p), Rx::Deliver);
    let (g, p) = GreRepr::parse_bytes(&hex(PPTPD_GRE_ACK))
        .map(|(g, p)| (g, p.to_vec()))
        .unwrap();
    assert_eq!(w.handle_packet(t0, &g, &p), Rx::AckOnly);
    let st = w.stats();
    assert_eq!((st.delivered, st.duplicate, st.late), (2, 0, 0), "{st:?}");

    // pptp-linux's stream, seen by pptpd (Call ID 0x0780): starts at 1.
    let mut w = Window::new(WindowConfig::new(0x6d2f));
    let (g, p) = GreRepr::parse_bytes(&hex(LINUX_GRE_FIRST))
        .map(|(g, p)| (g, p.to_vec()))
        .unwrap();
    assert_eq!((g.call_id, g.seq), (0x0780, Some(SeqNumber(1))));
    assert_eq!(w.handle_packet(t0, &g, &p), Rx::Deliver);
    let next = GreRepr::data(0x0780, 4, SeqNumber(2), None);
    assert_eq!(
        w.handle_packet(t0, &next, &[0xff, 0x03, 0xc0, 0x21]),
        Rx::Deliver
    );
    let st = w.stats();
    assert_eq!((st.delivered, st.duplicate, st.late), (2, 0, 0), "{st:?}");
}

/// pptpd fills the Echo-Request Identifier in host byte order (01 00 00 00 for its first
/// echo on x86). The identifier is opaque: our reply carries the same four octets.
#[test]
fn host_order_echo_identifier_is_echoed_byte_for_byte() {
    let t0 = Instant::now();
    let mut cfg = Config::new(Role::Pac);
    cfg.first_call_id = 0x6d2f;
    let mut c = Connection::new(cfg, Open::Active, t0);
    let _ = drain_types(&mut c);
    c.handle_bytes(t0, &hex(PPTPD_SCCRP));
    let _ = drain_events(&mut c);
    for id in [
        [0x01, 0, 0, 0],
        [0x2a, 0x00, 0x00, 0x00],
        [0x01, 0x02, 0x03, 0x04],
    ] {
        let mut req = hex("001000011a2b3c4d00050000");
        req.extend_from_slice(&id);
        c.handle_bytes(t0, &req);
        let mut out = Vec::new();
        assert_eq!(
            c.poll_transmit(&mut out),
            Some(ControlMessageType::EchoReply)
        );
        // Echo-Reply: length 20, type 6, identifier at octets 12..16, result 1 (OK).
        assert_eq!(out.len(), 20);
        assert_eq!(out[9], 6);
        assert_eq!(out[12..16], id, "identifier echoed unchanged");
        assert_eq!(out[16], 1);
    }
    assert_eq!(c.state(), CtrlState::Established);
}

// ---------------------------------------------------------------------------------------
// Live: our compat-role core against real pptpctrl.

/// Loopback addresses unique to this run: 127.92.x.y pptpctrl, 127.93.x.y us.
fn addrs() -> (String, String) {
    common::addr_pair(92, 93)
}

/// Our control core (PAC role, outgoing-call compat mode, as `pac::pns` runs it) against real
/// pptpctrl (socat recipe) whose PPP program is `pptp-nas ppp` in the server role:
/// - pptpd's first GRE packet to us has sequence number 0, and our window delivers it;
/// - Set-Link-Info with real ACCMs is ignored by pptpd ("intentional non-compliance"), the
///   call stays up;
/// - our Echo-Request is answered;
/// - our Call-Clear-Request is answered by closing TCP, no CDN: the call ends at once as
///   ConnectionClosed.
#[test]
fn our_compat_core_against_real_pptpctrl() {
    let _l = common::serial();
    common::require_tools();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(compat_core_against_pptpctrl());
}

async fn compat_core_against_pptpctrl() {
    let (s, c) = addrs();
    let (sip, cip): (Ipv4Addr, Ipv4Addr) = (s.parse().unwrap(), c.parse().unwrap());
    let mut g = common::Guard::new("equirks");
    let dir = g.dir.clone();
    g.listen_syslog();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_pptp-nas"));
    let prog = dir.join("pptp-nas-ppp");
    std::os::unix::fs::symlink(&bin, &prog).unwrap();
    let opts = dir.join("options");
    std::fs::write(&opts, "").unwrap();
    let conf = dir.join("server.conf");
    std::fs::write(
        &conf,
        format!(
            "role server\nuser alice:secret\nconnect-timeout 30\nlog-file {}\n",
            dir.join("server.log").display()
        ),
    )
    .unwrap();
    let ctrl_cmd = format!(
        "/usr/sbin/pptpctrl 1 0 1 {} 0 1 192.168.77.1 1 192.168.77.10 4096 {} 0",
        opts.display(),
        prog.display()
    );
    g.groups.push(common::spawn_group(
        Command::new("socat")
            .arg(format!("TCP-LISTEN:1723,bind={s},reuseaddr,fork"))
            .arg(format!("EXEC:{ctrl_cmd},nofork"))
            .env("PPTP_NAS_PPP_CONFIG", &conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    ));
    common::wait_listening(&s, 1723);

    // The raw GRE socket is open before the OCRQ: pptpd sends GRE at once, and an ICMP
    // protocol-unreachable from our side would make pptpctrl tear the call down.
    let gre = RawGreSocket::bind(cip, false)
        .unwrap_or_else(|e| panic!("raw GRE socket: {e}: needs root (run as .ci/run does)"));
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((cip, 0))).unwrap();
    let mut tcp = sock
        .connect(SocketAddr::from((sip, 1723)))
        .await
        .expect("connect to pptpctrl");

    let t0 = Instant::now();
    let mut cfg = Config::new(Role::Pac);
    cfg.first_call_id = 0x3000 + (std::process::id() % 0x1000) as u16;
    // Idle 1 s before an Echo-Request, so that one goes out within the test.
    cfg.timeouts.echo_interval = Duration::from_secs(1);
    let mut ctrl = Connection::new(cfg, Open::Active, t0);
    let mut drv = Driver {
        tcp: &mut tcp,
        gre: &gre,
        batch: RecvBatch::new(16),
        rbuf: vec![0u8; 4096],
        eof: false,
        gre_in: Vec::new(),
    };

    // Established, then the OCRQ.
    let ev = drv
        .run_until(&mut ctrl, 10, |e| matches!(e, Event::Established(_)))
        .await;
    assert!(ev.is_some(), "no SCCRP: {}", g.syslog_text());
    let call_id = ctrl
        .outgoing_call(
            Instant::now(),
            OutgoingCall {
                minimum_bps: 2400,
                maximum_bps: 10_000_000,
                bearer: BearerType::Any,
                framing: FramingType::Either,
                phone_number: TextField::new(b"5551234").unwrap(),
                subaddress: TextField::default(),
            },
        )
        .unwrap();
    let up = drv
        .run_until(&mut ctrl, 10, |e| matches!(e, Event::CallUp(_)))
        .await;
    let Some(Event::CallUp(info)) = up else {
        panic!("call not up: {up:?}\n{}", g.syslog_text())
    };
    assert_eq!(info.call_id, call_id);

    // pptpd's GRE: our `pptp-nas ppp` behind it speaks first; the first packet is seq 0.
    let t = Instant::now();
    while !drv.gre_in.iter().any(|(src, pkt)| {
        *src == sip && GreRepr::parse_bytes(pkt).is_ok_and(|(h, _)| h.call_id == call_id)
    }) {
        assert!(t.elapsed() < Duration::from_secs(10), "no GRE from pptpd");
        drv.step(&mut ctrl, Duration::from_millis(100)).await;
    }
    let first = drv
        .gre_in
        .iter()
        .find_map(|(src, pkt)| {
            let (h, p) = GreRepr::parse_bytes(pkt).ok()?;
            (*src == sip && h.call_id == call_id).then(|| (h, p.to_vec()))
        })
        .unwrap();
    assert_eq!(
        first.0.seq,
        Some(SeqNumber(0)),
        "pptpd's first sequence number"
    );
    let mut w = Window::new(WindowConfig::new(info.peer_call_id));
    assert_eq!(
        w.handle_packet(Instant::now(), &first.0, &first.1),
        Rx::Deliver
    );

    // Set-Link-Info with real ACCMs: pptpd ignores it on purpose.
    ctrl.set_link_info(Instant::now(), call_id, 0x000a_0000, 0xffff_ffff)
        .unwrap();
    assert!(
        {
            let t = Instant::now();
            loop {
                drv.step(&mut ctrl, Duration::from_millis(100)).await;
                if g.syslog_text()
                    .contains("Ignored a SET LINK INFO packet with real ACCMs")
                    || t.elapsed() > Duration::from_secs(5)
                {
                    break g.syslog_text().contains("Ignored a SET LINK INFO");
                }
            }
        },
        "{}",
        g.syslog_text()
    );
    // An idle second later our Echo-Request goes out; pptpd answers it.
    let t = Instant::now();
    while ctrl.stats().echo_sent == 0 || !g.syslog_text().contains("Made a ECHO RPLY packet") {
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "no echo: {}",
            g.syslog_text()
        );
        drv.step(&mut ctrl, Duration::from_millis(100)).await;
    }
    drv.step(&mut ctrl, Duration::from_millis(300)).await;
    assert_eq!(ctrl.state(), CtrlState::Established);
    assert_eq!(
        ctrl.call_state(call_id),
        Some(CallState::UpPns),
        "call still up after SLI"
    );

    // Call-Clear-Request: pptpd closes TCP instead of sending CDN.
    let t1 = Instant::now();
    ctrl.hang_up(
        t1,
        call_id,
        pptp_nas::pptp::message::CauseCode::NormalClearing,
    )
    .unwrap();
    let mut downs = Vec::new();
    let closed = drv
        .run_until_collect(&mut ctrl, 10, &mut downs, |e| matches!(e, Event::Closed(_)))
        .await;
    let all = format!("{downs:?}\n{}", g.syslog_text());
    assert_eq!(closed, Some(Event::Closed(CloseReason::TcpClosed)), "{all}");
    assert!(drv.eof, "{all}");
    assert!(
        downs.contains(&Event::CallDown {
            call_id,
            end: CallEnd::ConnectionClosed
        }),
        "call ended by the TCP close, not by a CDN: {all}"
    );
    assert!(t1.elapsed() < Duration::from_secs(5), "{all}");
    assert_eq!(ctrl.call_count(), 0);
    let sys = g.syslog_text();
    assert!(
        sys.contains("Received CALL CLR request (closing call)"),
        "{all}"
    );
}

/// Moves bytes between the core and the sockets for the live test.
struct Driver<'a> {
    tcp: &'a mut tokio::net::TcpStream,
    gre: &'a RawGreSocket,
    batch: RecvBatch,
    rbuf: Vec<u8>,
    eof: bool,
    gre_in: Vec<(Ipv4Addr, Vec<u8>)>,
}

impl Driver<'_> {
    /// One round: flush our messages, wait up to `wait` for TCP, GRE or a timer.
    async fn step(&mut self, ctrl: &mut Connection, wait: Duration) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut out = Vec::new();
        while ctrl.poll_transmit(&mut out).is_some() {}
        if !out.is_empty() && !self.eof {
            self.tcp.write_all(&out).await.unwrap();
        }
        let now = Instant::now();
        let wake = ctrl
            .poll_timeout()
            .map_or(now + wait, |t| t.min(now + wait))
            .max(now);
        tokio::select! {
            r = self.tcp.read(&mut self.rbuf), if !self.eof => {
                match r {
                    Ok(0) | Err(_) => {
                        self.eof = true;
                        ctrl.handle_tcp_closed(Instant::now());
                    }
                    Ok(n) => ctrl.handle_bytes(Instant::now(), &self.rbuf[..n]),
                }
            }
            r = self.gre.recv_batch(&mut self.batch) => {
                r.unwrap();
                for (src, pkt) in self.batch.iter() {
                    self.gre_in.push((src, pkt.to_vec()));
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                ctrl.handle_timeout(Instant::now());
            }
        }
    }

    /// Steps until an event matches (returned) or `secs` pass (None).
    async fn run_until(
        &mut self,
        ctrl: &mut Connection,
        secs: u64,
        want: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        let mut seen = Vec::new();
        self.run_until_collect(ctrl, secs, &mut seen, want).await
    }

    async fn run_until_collect(
        &mut self,
        ctrl: &mut Connection,
        secs: u64,
        seen: &mut Vec<Event>,
        want: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            while let Some(e) = ctrl.poll_event() {
                if want(&e) {
                    return Some(e);
                }
                seen.push(e);
            }
            self.step(ctrl, Duration::from_millis(100)).await;
        }
        None
    }
}
