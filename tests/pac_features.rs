//! PAC features in one process: the `pac::Pac` library object on in-process GRE, a minimal test
//! PNS built from `pptp::control` on loopback TCP, and lines on real ptys (a bare pty pair for
//! `direct` lines, `pptp-nas softmodem` lines for modems).
//!
//! Covered: `direct` lines take calls (the first LCP frame starts the call, the caller's first
//! frames are not lost, Call-Clear-Request hangs up, the line is ready for the next call, never
//! out of service); per-call tracing spans carry line id, call id, peer call id, PNS and caller;
//! WAN-Error-Notify from the line's HDLC counters; idle time-out and max session time end the
//! call with Call-Disconnect-Notify.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pptp_nas::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
use pptp_nas::io::pty::pty_pair;
use pptp_nas::io::softmodem::{Softmodem, SoftmodemOptions};
use pptp_nas::modem::sim::SimConfig;
use pptp_nas::pac::config::{PacConfig, ValidateOptions};
use pptp_nas::pac::gre::{pair, GreChannel, GreDatagram};
use pptp_nas::pac::{Pac, PacHandle, PacOptions};
use pptp_nas::pptp::control::{
    CallEnd, CallInfo, Config, Connection, DialResult, Event, Open, OutgoingCall, Role,
};
use pptp_nas::pptp::message::{
    BearerType, CallDisconnectResult, CauseCode, FramingType, OutgoingCallResult, TextField,
    WanErrorNotify,
};
use pptp_nas::pptp::{GreRepr, SeqNumber};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

const PNS_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;

// ---------------------------------------------------------------- log capture

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// All tests of this binary log JSON into one buffer (a global subscriber: the PAC's tasks run
/// on the runtime's worker threads).
fn logs() -> &'static LogBuf {
    static LOGS: OnceLock<LogBuf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("pptp_nas=debug"))
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::set_global_default(sub).unwrap();
        buf
    })
}

/// The JSON log records (one per line) whose `fields.message` is `message`.
fn records(message: &str) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

// ---------------------------------------------------------------- test PNS

#[derive(Debug)]
enum PnsEv {
    Up(CallInfo),
    Down(u16, CallEnd),
    Wan(u16, WanErrorNotify),
    Closed,
}

enum PnsCmd {
    Clear(u16),
    /// PNS-initiated outgoing call (OCRQ) to this number on this bearer.
    Ocrq(String, BearerType),
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
                    Event::OutgoingCallRequested { call_id, .. } => c
                        .dial_result(now, call_id, DialResult::connected(64_000))
                        .unwrap(),
                    Event::CallUp(info) => {
                        let _ = ev.send(PnsEv::Up(info));
                    }
                    Event::CallDown { call_id, end } => {
                        let _ = ev.send(PnsEv::Down(call_id, end));
                    }
                    Event::WanError { call_id, counters } => {
                        let _ = ev.send(PnsEv::Wan(call_id, counters));
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
                    Some(PnsCmd::Ocrq(number, bearer)) => {
                        let call = OutgoingCall {
                            minimum_bps: 300,
                            maximum_bps: 64_000_000,
                            bearer,
                            framing: FramingType::Async,
                            phone_number: TextField::new(number.as_bytes()).unwrap(),
                            subaddress: TextField::default(),
                        };
                        c.outgoing_call(Instant::now().into_std(), call).unwrap();
                    }
                    None => return,
                },
                () = tokio::time::sleep(Duration::from_millis(50)) => c.handle_timeout(Instant::now().into_std()),
            }
        }
    }
}

// ---------------------------------------------------------------- rig

struct Rig<L> {
    pac: PacHandle,
    /// The caller's end of the line.
    client: L,
    gre: GreChannel,
    ev: mpsc::UnboundedReceiver<PnsEv>,
    cmd: mpsc::UnboundedSender<PnsCmd>,
    seq: u32,
    dec: Decoder,
    enc: Encoder,
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

/// Starts the test PNS and a PAC with `lines` (YAML list entries) and `extra` top-level YAML.
async fn start_pac(lines: &str, extra: &str) -> (PacHandle, GreChannel, PnsIo) {
    start_pac_with(lines, extra, PacOptions::default()).await
}

async fn start_pac_with(
    lines: &str,
    extra: &str,
    opts: PacOptions,
) -> (PacHandle, GreChannel, PnsIo) {
    logs();
    let listener = TcpListener::bind((PNS_ADDR, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "pac: {{host_name: test-pac, hardware_dir: hardware}}\n\
         pns:\n  - {{name: corp, address: {PNS_ADDR}, port: {port}, mode: incoming-call, reconnect_min_s: 1, reconnect_max_s: 1}}\n\
         lines:\n{lines}\
         default: {{pns: [corp]}}\n{extra}"
    );
    let label = format!("{}/pac-test.yaml", env!("CARGO_MANIFEST_DIR"));
    let cfg = PacConfig::load_str(&label, &yaml, ValidateOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let (ev_tx, ev) = mpsc::unbounded_channel();
    let (cmd, cmd_rx) = mpsc::unbounded_channel();
    tokio::spawn(test_pns(listener, ev_tx, cmd_rx));
    let (pac_gre, gre) = pair(4096);
    let pac = Pac::start_with(cfg, pac_gre, opts).unwrap();
    (pac, gre, PnsIo { ev, cmd })
}

struct PnsIo {
    ev: mpsc::UnboundedReceiver<PnsEv>,
    cmd: mpsc::UnboundedSender<PnsCmd>,
}

impl<L: AsyncRead + AsyncWrite + Unpin> Rig<L> {
    fn new(
        pac: PacHandle,
        gre: GreChannel,
        pns: PnsIo,
        client: L,
        keep: Vec<Box<dyn std::any::Any + Send>>,
    ) -> Self {
        Rig {
            pac,
            client,
            gre,
            ev: pns.ev,
            cmd: pns.cmd,
            seq: 0,
            dec: Decoder::new(DecoderConfig::default()),
            enc: Encoder::new(EncoderConfig::default()),
            _keep: keep,
        }
    }

    async fn next_ev(&mut self) -> PnsEv {
        match timeout(Duration::from_secs(10), self.ev.recv()).await {
            Ok(ev) => ev.expect("PNS alive"),
            Err(_) => {
                let log = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
                panic!(
                    "no PNS event in time; status {:#?}\nlog:\n{log}",
                    self.pac.status()
                )
            }
        }
    }

    async fn wait_state(&mut self, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let st = self.pac.status();
            if st.lines[0].view.state == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "line not {state}: {:?}",
                st.lines[0].view
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The client writes `frame` HDLC-encoded to its end of the line.
    async fn client_writes(&mut self, frame: &[u8]) {
        let mut wire = Vec::new();
        self.enc.encode(frame, &mut wire).unwrap();
        self.client.write_all(&wire).await.unwrap();
    }

    /// The next GRE data packet's payload the PNS receives.
    async fn pns_receives(&mut self) -> Vec<u8> {
        loop {
            let d: GreDatagram = timeout(Duration::from_secs(5), self.gre.rx.recv())
                .await
                .expect("GRE in time")
                .unwrap();
            let (repr, payload) = GreRepr::parse_bytes(&d.packet).unwrap();
            if repr.seq.is_some() {
                return payload.to_vec();
            }
        }
    }

    /// PNS -> GRE -> PAC -> line: the frame the client decodes.
    async fn pns_sends(&mut self, info: &CallInfo, frame: &[u8]) -> Vec<u8> {
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
        let mut buf = [0u8; 2048];
        loop {
            let n = match timeout(Duration::from_secs(5), self.client.read(&mut buf)).await {
                Ok(r) => r.unwrap(),
                Err(_) => panic!("no line data in time; status: {:#?}", self.pac.status()),
            };
            let mut input = &buf[..n];
            while let Some(r) = self.dec.decode(&mut input) {
                if let Ok(f) = r {
                    return f.to_vec();
                }
            }
        }
    }
}

/// LCP Configure-Request (MRU 1500, magic number), as a PPP client's first frame.
const LCP_CONFREQ: [u8; 18] = [
    0xFF, 0x03, 0xC0, 0x21, 0x01, 0x01, 0x00, 0x0E, 0x01, 0x04, 0x05, 0xDC, 0x05, 0x06, 0x12, 0x34,
    0x56, 0x78,
];
/// The PNS's Configure-Ack to [`LCP_CONFREQ`].
const LCP_CONFACK: [u8; 18] = [
    0xFF, 0x03, 0xC0, 0x21, 0x02, 0x01, 0x00, 0x0E, 0x01, 0x04, 0x05, 0xDC, 0x05, 0x06, 0x12, 0x34,
    0x56, 0x78,
];
const IP_FRAME: [u8; 12] = [
    0xFF, 0x03, 0x00, 0x21, 0x45, 0x00, 0x00, 0x14, 0x7E, 0x7D, 0x11, 0x13,
];

async fn direct_rig(name: &str, line_extra: &str) -> Rig<tokio_serial::SerialStream> {
    direct_rig_with(name, line_extra, None).await
}

async fn direct_rig_with(
    name: &str,
    line_extra: &str,
    pcap: Option<std::path::PathBuf>,
) -> Rig<tokio_serial::SerialStream> {
    let p = pty_pair().unwrap();
    let lines = format!(
        "  - {{id: {name}, device: {}, type: direct, profile: direct{line_extra}}}\n",
        p.path.display()
    );
    let (pac, gre, pns) = start_pac_with(&lines, "", PacOptions { pcap }).await;
    let mut r = Rig::new(pac, gre, pns, p.master, vec![Box::new(p.slave)]);
    r.wait_state("idle").await;
    r
}

// ---------------------------------------------------------------- tests

/// Direct lines used to go out of service (the PAC ran the AT modem driver on them and the
/// init timed out). Now the first LCP frame is the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_line_takes_calls_and_stays_in_service() {
    let mut r = direct_rig("direct0", "").await;
    // Nothing happens on an idle direct line (no AT init that could fail): still idle later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let st = r.pac.status();
    assert_eq!(st.lines[0].view.state, "idle", "{:?}", st.lines[0].view);

    for round in 0..2 {
        // Line noise before PPP is ignored; the first LCP frame starts the call (a new PPP
        // session: its encoder opens the first frame with a flag).
        r.client.write_all(b"\r\nnoise\r\n").await.unwrap();
        r.enc = Encoder::new(EncoderConfig::default());
        r.client_writes(&LCP_CONFREQ).await;
        let info = match r.next_ev().await {
            PnsEv::Up(i) => i,
            other => panic!("round {round}: expected the call up, got {other:?}"),
        };
        assert_eq!(info.connect_speed, 115_200, "the line's DTE speed");
        // The frame that started the call reaches the PNS (kept, not lost).
        assert_eq!(r.pns_receives().await, LCP_CONFREQ, "round {round}");
        r.client_writes(&IP_FRAME).await;
        assert_eq!(r.pns_receives().await, IP_FRAME);
        assert_eq!(r.pns_sends(&info, &IP_FRAME).await, IP_FRAME);
        r.wait_state("up").await;
        // Call-Clear-Request from the PNS: CDN, the line returns to waiting for LCP.
        r.cmd.send(PnsCmd::Clear(info.call_id)).unwrap();
        match r.next_ev().await {
            PnsEv::Down(id, CallEnd::Disconnected { .. }) => assert_eq!(id, info.call_id),
            other => panic!("expected CDN after CCRQ: {other:?}"),
        }
        r.wait_state("idle").await;
    }
    let st = r.pac.status();
    assert_eq!(st.lines[0].calls, 2, "{st:?}");
    r.pac.shutdown().await;
}

/// Every call event is logged inside `line{line=..}:call{pns, caller, call_id, peer_call_id}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_events_carry_the_call_span_fields() {
    let mut r = direct_rig("spans0", "").await;
    r.client_writes(&LCP_CONFREQ).await;
    let info = match r.next_ev().await {
        PnsEv::Up(i) => i,
        other => panic!("{other:?}"),
    };
    r.cmd.send(PnsCmd::Clear(info.call_id)).unwrap();
    assert!(matches!(r.next_ev().await, PnsEv::Down(..)));
    r.wait_state("idle").await;
    r.pac.shutdown().await;

    let find = |msg: &str| {
        records(msg)
            .into_iter()
            .find(|v| {
                v["spans"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["line"] == "spans0"))
            })
            .unwrap_or_else(|| panic!("no {msg:?} record for line spans0"))
    };
    for msg in ["call up", "call cleared by PNS side: hanging up"] {
        let rec = find(msg);
        let spans = rec["spans"].as_array().unwrap();
        let line = spans
            .iter()
            .find(|s| s["name"] == "line")
            .expect("line span");
        assert_eq!(line["line"], "spans0", "{rec}");
        let call = spans
            .iter()
            .find(|s| s["name"] == "call")
            .expect("call span");
        assert_eq!(call["pns"], "corp", "{rec}");
        // `info` is the PNS's view: its peer is the PAC.
        assert_eq!(call["call_id"], info.peer_call_id, "{rec}");
        assert_eq!(call["peer_call_id"], info.call_id, "{rec}");
        assert!(call.get("caller").is_some(), "{rec}");
    }
}

/// WAN-Error-Notify carries the line's HDLC error counters to the PNS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wan_error_notify_from_line_counters() {
    let mut r = direct_rig("wan0", "").await;
    r.client_writes(&LCP_CONFREQ).await;
    let info = match r.next_ev().await {
        PnsEv::Up(i) => i,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.pns_receives().await, LCP_CONFREQ);
    // Two frames with a corrupted FCS, in one write.
    let mut wire = Vec::new();
    for _ in 0..2 {
        let start = wire.len();
        r.enc.encode(&IP_FRAME, &mut wire).unwrap();
        // Corrupt a payload octet that is not escaped (the IPv4 version/IHL 0x45).
        let at = start + wire[start..].iter().position(|&b| b == 0x45).unwrap();
        wire[at] ^= 0x01;
    }
    r.client.write_all(&wire).await.unwrap();
    // RFC 2637 limits WAN-Error-Notify to one per 60 s per call: the first report must carry
    // the counters of this burst.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let ev = timeout(deadline - Instant::now(), r.ev.recv())
            .await
            .expect("WAN-Error-Notify in time")
            .unwrap();
        if let PnsEv::Wan(id, w) = ev {
            assert_eq!(id, info.call_id);
            assert!((1..=2).contains(&w.crc_errors), "{w:?}");
            assert_eq!(w.framing_errors, 0, "{w:?}");
            break;
        }
    }
    let st = r.pac.status();
    assert_eq!(st.lines[0].hdlc_errors, 2, "{st:?}");
    r.pac.shutdown().await;
}

async fn expect_cdn_cause(r: &mut Rig<tokio_serial::SerialStream>, info: &CallInfo) {
    match r.next_ev().await {
        PnsEv::Down(id, CallEnd::Disconnected { result, cause, .. }) => {
            assert_eq!(id, info.call_id);
            // The PAC's CDN: Lost Carrier (the line was hung up) with Q.850 16.
            assert_eq!(result, CallDisconnectResult::LostCarrier);
            assert_eq!(cause, CauseCode::NormalClearing);
        }
        other => panic!("expected CDN: {other:?}"),
    }
}

/// `idle_timeout_s`: no data either way ends the call with a CDN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_ends_the_call() {
    let mut r = direct_rig("idle0", ", idle_timeout_s: 2").await;
    r.client_writes(&LCP_CONFREQ).await;
    let info = match r.next_ev().await {
        PnsEv::Up(i) => i,
        other => panic!("{other:?}"),
    };
    let up = Instant::now();
    expect_cdn_cause(&mut r, &info).await;
    let took = up.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    r.wait_state("idle").await;
    r.pac.shutdown().await;
}

/// `max_session_s`: the call ends even while data flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_session_time_ends_a_busy_call() {
    let mut r = direct_rig("maxs0", ", max_session_s: 2, idle_timeout_s: 60").await;
    r.client_writes(&LCP_CONFREQ).await;
    let info = match r.next_ev().await {
        PnsEv::Up(i) => i,
        other => panic!("{other:?}"),
    };
    let up = Instant::now();
    // Keep data flowing every 300 ms until the CDN comes.
    let end = loop {
        r.client_writes(&IP_FRAME).await;
        match timeout(Duration::from_millis(300), r.ev.recv()).await {
            Ok(Some(ev)) => break ev,
            Ok(None) => panic!("PNS gone"),
            Err(_) => assert!(up.elapsed() < Duration::from_secs(6), "no CDN"),
        }
    };
    match end {
        PnsEv::Down(id, CallEnd::Disconnected { cause, .. }) => {
            assert_eq!(id, info.call_id);
            assert_eq!(cause, CauseCode::NormalClearing);
        }
        other => panic!("expected CDN: {other:?}"),
    }
    assert!(up.elapsed() >= Duration::from_millis(1500));
    r.wait_state("idle").await;
    r.pac.shutdown().await;
}

async fn expect_text(dev: &mut tokio_serial::SerialStream, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains(want) {
        match tokio::time::timeout_at(deadline, dev.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!(
                "waiting for {want:?}: {other:?}, got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// OCRQ from the PNS: the PAC picks the free modem line, dials (ATDT), the far soft-modem
/// auto-answers, and the OCRP says Connected with the CONNECT speed; data flows both ways and
/// Call-Clear-Request hangs up. With the only line busy, or for a bearer no line has, the OCRP
/// says Do Not Accept with cause 34 (no circuit available).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pns_initiated_outgoing_call_dials_a_free_line() {
    let dir = std::env::temp_dir().join(format!("pptp-nas-pac-ocrq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sm = Softmodem::start(&SoftmodemOptions {
        dir,
        lines: 1,
        sim: SimConfig {
            speed: 1_000_000,
            ring_interval: Duration::from_millis(300),
            ..SimConfig::default()
        },
    })
    .unwrap();
    let lines = format!(
        "  - {{id: dial0, device: {}, type: modem, profile: softmodem}}\n",
        sm.lines()[0].nas.display()
    );
    let (pac, gre, pns) = start_pac(&lines, "").await;
    let mut client =
        pptp_nas::io::line::open_serial(&sm.lines()[0].client, 115_200, false).unwrap();
    // The called party's modem answers on the first RING.
    client.write_all(b"ATE0S0=1\r").await.unwrap();
    expect_text(&mut client, "OK").await;
    let mut r = Rig::new(pac, gre, pns, client, vec![Box::new(sm)]);
    r.wait_state("idle").await;
    // ... and the modem initialised (a line still sending its init strings cannot dial).
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.pac.status().lines[0].view.modem != "Idle" {
        assert!(Instant::now() < deadline, "modem not initialised");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The PNS can only ask once the control connection is up.
    while !r.pac.status().pns[0].up {
        assert!(Instant::now() < deadline, "control connection not up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    r.cmd
        .send(PnsCmd::Ocrq("5550199".into(), BearerType::Analog))
        .unwrap();
    let info = match r.next_ev().await {
        PnsEv::Up(i) => i,
        other => panic!("expected OCRP Connected: {other:?}"),
    };
    assert_eq!(
        info.connect_speed, 1_000_000,
        "the CONNECT speed goes in the OCRP"
    );
    expect_text(&mut r.client, "CONNECT").await;
    r.wait_state("up").await;
    let st = r.pac.status();
    let call = st.lines[0].view.call.clone().expect("call in status");
    assert_eq!(call.pns, "corp");
    assert_eq!(call.caller, "5550199");
    r.client_writes(&IP_FRAME).await;
    assert_eq!(r.pns_receives().await, IP_FRAME);
    assert_eq!(r.pns_sends(&info, &LCP_CONFREQ).await, LCP_CONFREQ);

    // The only analog line is busy: Do Not Accept, no circuit available.
    r.cmd
        .send(PnsCmd::Ocrq("5550198".into(), BearerType::Analog))
        .unwrap();
    match r.next_ev().await {
        PnsEv::Down(_, CallEnd::OutgoingFailed { result, cause, .. }) => {
            assert_eq!(result, OutgoingCallResult::DoNotAccept);
            assert_eq!(cause, CauseCode::NoCircuitAvailable);
        }
        other => panic!("expected OCRP Do Not Accept: {other:?}"),
    }

    // Call-Clear-Request from the PNS hangs up; the line is free again.
    r.cmd.send(PnsCmd::Clear(info.call_id)).unwrap();
    match r.next_ev().await {
        PnsEv::Down(id, CallEnd::Disconnected { .. }) => assert_eq!(id, info.call_id),
        other => panic!("expected CDN: {other:?}"),
    }
    r.wait_state("idle").await;

    // No ISDN line: a digital OCRQ is refused the same way.
    r.cmd
        .send(PnsCmd::Ocrq("5550197".into(), BearerType::Digital))
        .unwrap();
    match r.next_ev().await {
        PnsEv::Down(_, CallEnd::OutgoingFailed { result, cause, .. }) => {
            assert_eq!(result, OutgoingCallResult::DoNotAccept);
            assert_eq!(cause, CauseCode::NoCircuitAvailable);
        }
        other => panic!("expected OCRP Do Not Accept: {other:?}"),
    }
    r.pac.shutdown().await;
}

/// Runs tshark on `file` with display filter `filter`; returns the number of matching records.
fn tshark_count(file: &std::path::Path, filter: &str) -> usize {
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
        .output()
        .unwrap_or_else(|e| panic!("tshark (installed in CI) could not run: {e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.to_lowercase().contains("error"),
        "tshark -r {}: {}",
        file.display(),
        err
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// `--pcap DIR`: one line-side file (linktype 204, PPP with direction) and one GRE-side file
/// (IPv4/GRE) per call; tshark reads both without errors and sees the call's LCP frames in
/// both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcap_writes_line_and_gre_captures_per_call() {
    let dir = std::env::temp_dir().join(format!("pptp-nas-pac-pcap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = direct_rig_with("pcap0", "", Some(dir.clone())).await;
    r.client_writes(&LCP_CONFREQ).await;
    let info = match r.next_ev().await {
        PnsEv::Up(i) => i,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.pns_receives().await, LCP_CONFREQ);
    assert_eq!(r.pns_sends(&info, &LCP_CONFACK).await, LCP_CONFACK);
    r.client_writes(&IP_FRAME).await;
    assert_eq!(r.pns_receives().await, IP_FRAME);
    r.cmd.send(PnsCmd::Clear(info.call_id)).unwrap();
    assert!(matches!(r.next_ev().await, PnsEv::Down(..)));
    r.wait_state("idle").await;
    r.pac.shutdown().await;

    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let pick = |suffix: &str| {
        let v: Vec<_> = files
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect();
        assert_eq!(v.len(), 1, "one {suffix} file: {files:?}");
        v[0].clone()
    };
    let line = pick("-line.pcap");
    let gre = pick("-gre.pcap");
    assert!(
        line.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pcap0-"),
        "{line:?}"
    );
    // Line side: the caller's Configure-Request (received: Wireshark's p2p_dir 1) and the
    // PNS's Ack to it (sent to the caller: p2p_dir 0), then the caller's IP frame.
    assert_eq!(tshark_count(&line, "lcp"), 2, "{line:?}");
    assert_eq!(
        tshark_count(&line, "lcp && frame.p2p_dir == 1"),
        1,
        "LCP from the caller in {line:?}"
    );
    assert_eq!(
        tshark_count(&line, "lcp && frame.p2p_dir == 0"),
        1,
        "LCP to the caller in {line:?}"
    );
    assert_eq!(
        tshark_count(&line, "ip && frame.p2p_dir == 1"),
        1,
        "{line:?}"
    );
    // GRE side: the same LCP frames inside IPv4/GRE, both ways.
    assert_eq!(tshark_count(&gre, "gre && lcp"), 2, "{gre:?}");
    assert!(tshark_count(&gre, "gre") >= 3, "{gre:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
