//! The PAC end to end in one process: `pptp-nas softmodem` lines (real ptys), the PAC library
//! object (`pac::Pac`) on in-process GRE, and a minimal test PNS built from `pptp::control` on
//! a loopback TCP connection. The test plays the dial-in client on the soft-modem's client pty.
//!
//! Covered: a call comes up in incoming-call mode and in outgoing-call (compat) mode; PPP frames
//! of any protocol pass unchanged both ways; the snooped LCP Configure-Ack ACCM and then
//! Set-Link-Info change the framing of the next frame sent to the line; Call-Clear-Request from
//! the PNS, hang-up by the caller, and the PNS going away each end the call and the line goes
//! back to idle, ready for the next call.

use std::path::PathBuf;
use std::time::Duration;

use pptp_nas::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
use pptp_nas::io::line::open_serial;
use pptp_nas::io::softmodem::{Softmodem, SoftmodemOptions};
use pptp_nas::modem::sim::SimConfig;
use pptp_nas::pac::config::{PacConfig, ValidateOptions};
use pptp_nas::pac::gre::{pair, GreChannel, GreDatagram};
use pptp_nas::pac::{Pac, PacHandle};
use pptp_nas::pptp::control::{
    CallEnd, CallInfo, Config, Connection, DialResult, Event, Open, Role,
};
use pptp_nas::pptp::message::CauseCode;
use pptp_nas::pptp::{GreRepr, SeqNumber};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_serial::SerialStream;

const PNS_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pptp-nas-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What the test PNS reports.
#[derive(Debug)]
enum PnsEv {
    Up(CallInfo),
    Down(u16, CallEnd),
    OcrqNumber(String),
    Closed,
}

enum PnsCmd {
    Clear(u16),
    Sli(u16, u32, u32),
    Die,
}

/// A minimal PNS: accepts every ICRQ, "dials" every OCRQ, reports calls.
async fn test_pns(
    listener: TcpListener,
    ev: mpsc::UnboundedSender<PnsEv>,
    mut cmd: mpsc::UnboundedReceiver<PnsCmd>,
) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let mut c = Connection::new(
            Config::new(Role::Pns),
            Open::Passive,
            Instant::now().into_std(),
        );
        let mut buf = vec![0u8; 4096];
        let mut out = Vec::new();
        loop {
            while let Some(e) = c.poll_event() {
                let now = Instant::now().into_std();
                match e {
                    Event::IncomingCallRequested { call_id, .. } => {
                        c.accept_call(now, call_id).unwrap()
                    }
                    Event::OutgoingCallRequested { call_id, request } => {
                        let _ = ev.send(PnsEv::OcrqNumber(
                            request.phone_number.to_string_lossy().into_owned(),
                        ));
                        c.dial_result(now, call_id, DialResult::connected(64_000))
                            .unwrap();
                    }
                    Event::CallUp(info) => {
                        let _ = ev.send(PnsEv::Up(info));
                    }
                    Event::CallDown { call_id, end } => {
                        let _ = ev.send(PnsEv::Down(call_id, end));
                    }
                    Event::Closed(_) => {
                        let _ = ev.send(PnsEv::Closed);
                    }
                    _ => {}
                }
            }
            out.clear();
            while c.poll_transmit(&mut out).is_some() {}
            if !out.is_empty() && tcp.write_all(&out).await.is_err() {
                break;
            }
            tokio::select! {
                r = tcp.read(&mut buf) => match r {
                    Ok(n) if n > 0 => c.handle_bytes(Instant::now().into_std(), &buf[..n]),
                    _ => { c.handle_tcp_closed(Instant::now().into_std()); }
                },
                k = cmd.recv() => match k {
                    Some(PnsCmd::Clear(id)) => c.hang_up(Instant::now().into_std(), id, CauseCode::NormalClearing).unwrap(),
                    Some(PnsCmd::Sli(id, s, r)) => c.set_link_info(Instant::now().into_std(), id, s, r).unwrap(),
                    Some(PnsCmd::Die) | None => {
                        // The PNS process "dies": TCP goes away without Stop-CC.
                        drop(tcp);
                        let _ = ev.send(PnsEv::Closed);
                        return;
                    }
                },
                () = tokio::time::sleep(Duration::from_millis(50)) => c.handle_timeout(Instant::now().into_std()),
            }
        }
    }
}

struct Rig {
    sm: Softmodem,
    pac: PacHandle,
    client: SerialStream,
    gre: GreChannel,
    ev: mpsc::UnboundedReceiver<PnsEv>,
    cmd: mpsc::UnboundedSender<PnsCmd>,
    seq: u32,
    dec: Decoder,
    enc: Encoder,
    rx: Vec<u8>,
}

async fn rig(name: &str, mode: &str) -> Rig {
    rig_with(name, mode, false).await
}

/// `dead_primary`: the rules name an unreachable PNS first (a closed loopback port).
async fn rig_with(name: &str, mode: &str, dead_primary: bool) -> Rig {
    let sm = Softmodem::start(&SoftmodemOptions {
        dir: tempdir(name),
        lines: 1,
        sim: SimConfig {
            speed: 1_000_000,
            caller_id: Some("0301234".into()),
            ring_interval: Duration::from_millis(300),
            ..SimConfig::default()
        },
    })
    .unwrap();
    let listener = TcpListener::bind((PNS_ADDR, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dead_port = {
        let l = TcpListener::bind((PNS_ADDR, 0)).await.unwrap();
        l.local_addr().unwrap().port()
    };
    let (dead, order) = if dead_primary {
        (
            format!("  - {{name: dead, address: {PNS_ADDR}, port: {dead_port}, mode: {mode}}}\n"),
            "[dead, pns]",
        )
    } else {
        (String::new(), "[pns]")
    };
    let yaml = format!(
        "pac: {{host_name: test-pac, hardware_dir: hardware}}\n\
         pns:\n{dead}  - {{name: pns, address: {PNS_ADDR}, port: {port}, mode: {mode}, reconnect_min_s: 1, reconnect_max_s: 1}}\n\
         lines:\n  - {{id: sm0, device: {}, type: modem, profile: softmodem, number: \"5550100\", offer_on_ring: 2}}\n\
         default: {{pns: {order}}}\n",
        sm.lines()[0].nas.display()
    );
    let label = format!("{}/pac-test.yaml", env!("CARGO_MANIFEST_DIR"));
    let cfg = PacConfig::load_str(&label, &yaml, ValidateOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let (ev_tx, ev) = mpsc::unbounded_channel();
    let (cmd, cmd_rx) = mpsc::unbounded_channel();
    tokio::spawn(test_pns(listener, ev_tx, cmd_rx));
    let (pac_gre, gre) = pair(4096);
    let pac = Pac::start(cfg, pac_gre).unwrap();
    let client = open_serial(&sm.lines()[0].client, 115_200, false).unwrap();
    let mut r = Rig {
        sm,
        pac,
        client,
        gre,
        ev,
        cmd,
        seq: 0,
        dec: Decoder::new(DecoderConfig::default()),
        enc: Encoder::new(EncoderConfig::default()),
        rx: Vec::new(),
    };
    r.wait_idle().await;
    r
}

impl Rig {
    async fn expect_text(&mut self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !String::from_utf8_lossy(&got).contains(want) {
            match tokio::time::timeout_at(deadline, self.client.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                other => panic!(
                    "waiting for {want:?}: {other:?}, got {:?}",
                    String::from_utf8_lossy(&got)
                ),
            }
        }
    }

    async fn next_ev(&mut self) -> PnsEv {
        timeout(Duration::from_secs(10), self.ev.recv())
            .await
            .expect("PNS event in time")
            .expect("PNS alive")
    }

    async fn wait_idle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let st = self.pac.status();
            if st.lines[0].view.state == "idle" && st.lines[0].view.modem == "Idle" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "line not idle: {:?}",
                st.lines[0].view
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Dials, waits for the PNS to see the call up and the client to see CONNECT.
    async fn dial(&mut self) -> CallInfo {
        self.client.write_all(b"ATE0\r").await.unwrap();
        self.expect_text("OK").await;
        self.client.write_all(b"ATDT5550100\r").await.unwrap();
        let info = loop {
            match self.next_ev().await {
                PnsEv::Up(i) => break i,
                PnsEv::OcrqNumber(n) => {
                    assert_eq!(n, "0301234", "OCRQ carries the caller's number")
                }
                other => panic!("unexpected {other:?}"),
            }
        };
        self.expect_text("CONNECT").await;
        self.dec = Decoder::new(DecoderConfig::default());
        self.enc = Encoder::new(EncoderConfig::default());
        self.rx.clear();
        info
    }

    /// Client -> line -> PAC -> GRE: the PNS receives exactly `frame`.
    async fn client_sends(&mut self, frame: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        self.enc.encode(frame, &mut wire).unwrap();
        self.client.write_all(&wire).await.unwrap();
        loop {
            let d: GreDatagram = timeout(Duration::from_secs(5), self.gre.rx.recv())
                .await
                .expect("GRE in time")
                .unwrap();
            assert_eq!(d.peer, PNS_ADDR);
            let (repr, payload) = GreRepr::parse_bytes(&d.packet).unwrap();
            if repr.seq.is_some() {
                return payload.to_vec();
            }
        }
    }

    /// PNS -> GRE -> PAC -> line: returns the frame the client decodes and the raw octets.
    async fn pns_sends(&mut self, info: &CallInfo, frame: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let repr = GreRepr::data(
            info.peer_call_id,
            frame.len() as u16,
            SeqNumber(self.seq),
            None,
        );
        self.seq += 1;
        let mut pkt = Vec::new();
        repr.emit(&mut pkt);
        pkt.extend_from_slice(frame);
        self.gre
            .tx
            .send(GreDatagram {
                peer: PNS_ADDR,
                local: PNS_ADDR,
                packet: pkt.into(),
            })
            .await
            .unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let n = match timeout(Duration::from_secs(5), self.client.read(&mut buf)).await {
                Ok(r) => r.unwrap(),
                Err(_) => panic!("no line data in time; status: {:#?}", self.pac.status()),
            };
            raw.extend_from_slice(&buf[..n]);
            let mut input = &buf[..n];
            while let Some(r) = self.dec.decode(&mut input) {
                if let Ok(f) = r {
                    return (f.to_vec(), raw);
                }
            }
        }
    }
}

/// PPP frames: LCP, IP, IPXCP, NBFCP, IPv6CP, an unknown protocol, and one with every octet
/// value (flags, escapes, control characters) in it.
fn frames() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        vec![0xFF, 0x03, 0xC0, 0x21, 0x01, 0x01, 0x00, 0x04],
        vec![
            0xFF, 0x03, 0x00, 0x21, 0x45, 0x00, 0x00, 0x14, 0x7E, 0x7D, 0x11, 0x13,
        ],
        vec![0xFF, 0x03, 0x80, 0x2B, 0x01, 0x02, 0x00, 0x04],
        vec![0xFF, 0x03, 0x80, 0x3F, 0x01, 0x03, 0x00, 0x04],
        vec![
            0xFF, 0x03, 0x80, 0x57, 0x01, 0x04, 0x00, 0x0E, 0x01, 0x0A, 1, 2, 3, 4, 5, 6, 7, 8,
        ],
        vec![0xFF, 0x03, 0x12, 0x35, 0xDE, 0xAD, 0xBE, 0xEF],
        vec![0x80, 0xFD, 0x01, 0x05, 0x00, 0x04], // CCP, Address/Control compressed
    ];
    let mut all = vec![0xFF, 0x03, 0x00, 0x21];
    all.extend((0..=255u8).chain(0..=255u8));
    v.push(all);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_call_mode_relay_framing_and_teardowns() {
    let mut r = rig("pac-relay-ic", "incoming-call").await;

    // ---- call 1: data both ways, ACCM snooping, Set-Link-Info, CCRQ from the PNS ----
    let info = r.dial().await;
    assert!(info.connect_speed > 0);
    for f in frames() {
        assert_eq!(r.client_sends(&f).await, f, "client -> PNS unchanged");
        let (got, _) = r.pns_sends(&info, &f).await;
        assert_eq!(got, f, "PNS -> client unchanged");
    }
    let ctl = [0xFF, 0x03, 0x00, 0x21, 0x01, 0x02, 0x11, 0x13];
    // Default ACCM: control characters go out escaped.
    let (_, raw) = r.pns_sends(&info, &ctl).await;
    assert!(
        raw.windows(2).any(|w| w == [0x7D, 0x21]),
        "0x01 escaped by default: {raw:02x?}"
    );
    // The PNS acks the caller's LCP request with ACCM 0: the PAC learns it from the Ack.
    let ack = [
        0xFF, 0x03, 0xC0, 0x21, 0x02, 0x07, 0x00, 0x0A, 0x02, 0x06, 0x00, 0x00, 0x00, 0x00,
    ];
    let (got, _) = r.pns_sends(&info, &ack).await;
    assert_eq!(got, ack);
    // The client asked for ACCM 0, so it no longer deletes unescaped control characters.
    r.dec.set_accm(0);
    let (got, raw) = r.pns_sends(&info, &ctl).await;
    assert_eq!(got, ctl);
    assert!(
        raw.contains(&0x01) && !raw.windows(2).any(|w| w == [0x7D, 0x21]),
        "snooped ACCM 0: {raw:02x?}"
    );
    // Set-Link-Info overrides: escape everything again.
    r.cmd
        .send(PnsCmd::Sli(info.call_id, 0xFFFF_FFFF, 0xFFFF_FFFF))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (got, raw) = r.pns_sends(&info, &ctl).await;
    assert_eq!(got, ctl);
    assert!(
        raw.windows(2).any(|w| w == [0x7D, 0x21]),
        "SLI send ACCM applied: {raw:02x?}"
    );
    // Call-Clear-Request from the PNS: the PAC answers CDN and hangs up the line.
    r.cmd.send(PnsCmd::Clear(info.call_id)).unwrap();
    match r.next_ev().await {
        PnsEv::Down(id, CallEnd::Disconnected { .. }) => assert_eq!(id, info.call_id),
        other => panic!("expected CDN after CCRQ: {other:?}"),
    }
    r.expect_text("NO CARRIER").await;
    r.wait_idle().await;

    // ---- call 2: the caller hangs up -> Call-Disconnect-Notify ----
    let info = r.dial().await;
    let f = &frames()[1];
    assert_eq!(&r.client_sends(f).await, f);
    r.sm.drop_carrier(0);
    match r.next_ev().await {
        PnsEv::Down(id, CallEnd::Disconnected { .. }) => assert_eq!(id, info.call_id),
        other => panic!("expected CDN after hang-up: {other:?}"),
    }
    r.wait_idle().await;

    // ---- call 3: the PNS dies -> the call is hung up, the line returns to idle ----
    let info = r.dial().await;
    assert_eq!(&r.client_sends(f).await, f);
    let _ = info;
    r.cmd.send(PnsCmd::Die).unwrap();
    assert!(matches!(r.next_ev().await, PnsEv::Closed));
    r.expect_text("NO CARRIER").await;
    r.wait_idle().await;
    let st = r.pac.status();
    assert_eq!(st.lines[0].calls, 3, "{st:?}");
    assert!(st.lines[0].view.call.is_none());
    r.pac.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_call_compat_mode() {
    let mut r = rig("pac-relay-oc", "outgoing-call").await;
    let info = r.dial().await;
    for f in frames() {
        assert_eq!(r.client_sends(&f).await, f);
        let (got, _) = r.pns_sends(&info, &f).await;
        assert_eq!(got, f);
    }
    // The caller hangs up: in compat mode the PAC clears with CCRQ, the PNS answers CDN.
    r.sm.drop_carrier(0);
    match r.next_ev().await {
        PnsEv::Down(id, CallEnd::ClearedByPeer) => assert_eq!(id, info.call_id),
        other => panic!("expected CCRQ from the PAC: {other:?}"),
    }
    r.wait_idle().await;
    // And the next call works.
    let info2 = r.dial().await;
    assert_ne!(info2.call_id, 0);
    r.pac.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_when_the_primary_pns_is_unreachable() {
    let mut r = rig_with("pac-relay-fo", "incoming-call", true).await;
    let info = r.dial().await;
    let f = &frames()[2];
    assert_eq!(&r.client_sends(f).await, f);
    let st = r.pac.status();
    let call = st.lines[0].view.call.clone().expect("a call");
    assert_eq!(call.pns, "pns", "the call went to the secondary");
    let dead = st.pns.iter().find(|p| p.name == "dead").unwrap();
    assert!(!dead.up && dead.failures >= 1, "{dead:?}");
    let _ = info;
    r.pac.shutdown().await;
}
