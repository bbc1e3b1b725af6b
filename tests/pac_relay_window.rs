//! The PAC relay's GRE data plane (`pptp::window` inside `pac::relay`) with loss, reordering
//! and duplicates injected on the in-process GRE channel: one `pptp-nas softmodem` line (real
//! pty), `pac::Pac` on in-process GRE, a minimal test PNS from `pptp::control` on loopback TCP.
//!
//! Checked: packets that arrive out of order reach the caller in sequence order; a gap is given
//! up after the reorder time-out and counted lost; late and duplicate packets are dropped and
//! counted; the PAC acknowledges received packets with an ack-only packet when it has no data
//! to carry the acknowledgment; the PAC never has more unacknowledged packets out than the
//! PNS's Packet Receive Window Size, and sends again once acknowledged.

use std::path::PathBuf;
use std::time::Duration;

use pptp_nas::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
use pptp_nas::io::line::open_serial;
use pptp_nas::io::softmodem::{Softmodem, SoftmodemOptions};
use pptp_nas::modem::sim::SimConfig;
use pptp_nas::pac::config::{PacConfig, ValidateOptions};
use pptp_nas::pac::gre::{pair, GreChannel, GreDatagram};
use pptp_nas::pac::status::LineStatus;
use pptp_nas::pac::{Pac, PacHandle};
use pptp_nas::pptp::control::{CallInfo, Config, Connection, Event, Open, Role};
use pptp_nas::pptp::{GreRepr, SeqNumber};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_serial::SerialStream;

const PNS_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;
/// The PNS's Packet Receive Window Size in this test.
const PNS_WINDOW: u16 = 8;
/// The PAC's reorder wait (configured below).
const REORDER_MS: u64 = 300;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pptp-nas-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Accepts every ICRQ with a receive window of [`PNS_WINDOW`]; reports calls that come up.
async fn test_pns(listener: TcpListener, up: mpsc::UnboundedSender<CallInfo>) {
    let Ok((mut tcp, _)) = listener.accept().await else {
        return;
    };
    let mut config = Config::new(Role::Pns);
    config.recv_window = PNS_WINDOW;
    let mut c = Connection::new(config, Open::Passive, Instant::now().into_std());
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    loop {
        while let Some(e) = c.poll_event() {
            match e {
                Event::IncomingCallRequested { call_id, .. } => {
                    c.accept_call(Instant::now().into_std(), call_id).unwrap()
                }
                Event::CallUp(info) => {
                    let _ = up.send(info);
                }
                _ => {}
            }
        }
        out.clear();
        while c.poll_transmit(&mut out).is_some() {}
        if !out.is_empty() && tcp.write_all(&out).await.is_err() {
            return;
        }
        tokio::select! {
            r = tcp.read(&mut buf) => match r {
                Ok(n) if n > 0 => c.handle_bytes(Instant::now().into_std(), &buf[..n]),
                _ => return,
            },
            () = tokio::time::sleep(Duration::from_millis(50)) => c.handle_timeout(Instant::now().into_std()),
        }
    }
}

struct Rig {
    _sm: Softmodem,
    pac: PacHandle,
    client: SerialStream,
    gre: GreChannel,
    up: mpsc::UnboundedReceiver<CallInfo>,
    dec: Decoder,
    enc: Encoder,
}

async fn rig(name: &str) -> Rig {
    let sm = Softmodem::start(&SoftmodemOptions {
        dir: tempdir(name),
        lines: 1,
        sim: SimConfig {
            speed: 1_000_000,
            ring_interval: Duration::from_millis(300),
            ..SimConfig::default()
        },
    })
    .unwrap();
    let listener = TcpListener::bind((PNS_ADDR, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "pac: {{host_name: test-pac, hardware_dir: hardware}}\n\
         pns:\n  - {{name: pns, address: {PNS_ADDR}, port: {port}, mode: incoming-call, gre: {{window: 16, reorder_timeout_ms: {REORDER_MS}}}}}\n\
         lines:\n  - {{id: sm0, device: {}, type: modem, profile: softmodem, offer_on_ring: 1}}\n\
         default: {{pns: [pns]}}\n",
        sm.lines()[0].nas.display()
    );
    let label = format!("{}/pac-window-test.yaml", env!("CARGO_MANIFEST_DIR"));
    let cfg = PacConfig::load_str(&label, &yaml, ValidateOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let (up_tx, up) = mpsc::unbounded_channel();
    tokio::spawn(test_pns(listener, up_tx));
    let (pac_gre, gre) = pair(4096);
    let pac = Pac::start(cfg, pac_gre).unwrap();
    let client = open_serial(&sm.lines()[0].client, 115_200, false).unwrap();
    let r = Rig {
        _sm: sm,
        pac,
        client,
        gre,
        up,
        dec: Decoder::new(DecoderConfig::default()),
        enc: Encoder::new(EncoderConfig::default()),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.pac.status().lines[0].view.state != "idle" {
        assert!(Instant::now() < deadline, "line never idle");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
                other => panic!("waiting for {want:?}: {other:?}"),
            }
        }
    }

    async fn dial(&mut self) -> CallInfo {
        self.client.write_all(b"ATE0\r").await.unwrap();
        self.expect_text("OK").await;
        self.client.write_all(b"ATDT5550100\r").await.unwrap();
        let info = timeout(Duration::from_secs(10), self.up.recv())
            .await
            .expect("call up in time")
            .unwrap();
        self.expect_text("CONNECT").await;
        info
    }

    /// The PNS sends data packet `seq` carrying a frame whose last octet is `tag`.
    async fn pns_data(&mut self, info: &CallInfo, seq: u32, tag: u8) {
        self.pns_packet(info, Some(seq), None, tag).await
    }

    async fn pns_packet(&mut self, info: &CallInfo, seq: Option<u32>, ack: Option<u32>, tag: u8) {
        let frame = frame(tag);
        let repr = match seq {
            Some(s) => GreRepr::data(
                info.peer_call_id,
                frame.len() as u16,
                SeqNumber(s),
                ack.map(SeqNumber),
            ),
            None => GreRepr::ack_only(info.peer_call_id, SeqNumber(ack.unwrap())),
        };
        let mut pkt = Vec::new();
        repr.emit(&mut pkt);
        if seq.is_some() {
            pkt.extend_from_slice(&frame);
        }
        self.gre
            .tx
            .send(GreDatagram {
                peer: PNS_ADDR,
                local: PNS_ADDR,
                packet: pkt.into(),
            })
            .await
            .unwrap();
    }

    /// Tags of the frames the client decodes within `wait`.
    async fn client_tags(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        let mut tags = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, self.client.read(&mut buf)).await {
            let mut input = &buf[..n];
            while let Some(r) = self.dec.decode(&mut input) {
                let f = r.expect("clean frame");
                tags.push(*f.last().unwrap());
            }
        }
        tags
    }

    /// GRE packets the PAC sent within `wait`: (seq, ack).
    async fn pns_receives(&mut self, wait: Duration) -> Vec<(Option<u32>, Option<u32>)> {
        let deadline = Instant::now() + wait;
        let mut v = Vec::new();
        while let Ok(Some(d)) = tokio::time::timeout_at(deadline, self.gre.rx.recv()).await {
            let (repr, _) = GreRepr::parse_bytes(&d.packet).unwrap();
            v.push((repr.seq.map(|s| s.0), repr.ack.map(|s| s.0)));
        }
        v
    }

    fn line(&self) -> LineStatus {
        self.pac.status().lines[0].clone()
    }
}

fn frame(tag: u8) -> Vec<u8> {
    vec![0xFF, 0x03, 0x00, 0x21, 0x45, 0x00, 0x00, 0x14, tag]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorder_loss_duplicates_acks_and_send_window() {
    let mut r = rig("pac-relay-window").await;
    let info = r.dial().await;

    // ---- PNS -> client: reordering is undone ----
    r.pns_data(&info, 0, 0).await;
    r.pns_data(&info, 2, 2).await;
    r.pns_data(&info, 1, 1).await;
    r.pns_data(&info, 3, 3).await;
    assert_eq!(
        r.client_tags(Duration::from_millis(200)).await,
        [0, 1, 2, 3]
    );
    let l = r.line();
    assert_eq!(
        (l.gre_reordered, l.gre_lost, l.gre_late),
        (1, 0, 0),
        "{l:?}"
    );

    // The client sent nothing, so the acknowledgment goes out alone (within ACK_DELAY).
    let got = r.pns_receives(Duration::from_millis(400)).await;
    assert_eq!(got, [(None, Some(3))], "one ack-only packet for seq 3");

    // ---- a gap: 5 waits for 4 up to the reorder time-out, then 4 is lost ----
    let t0 = Instant::now();
    r.pns_data(&info, 5, 5).await;
    r.pns_data(&info, 6, 6).await;
    assert_eq!(
        r.client_tags(Duration::from_millis(REORDER_MS / 2)).await,
        Vec::<u8>::new()
    );
    assert_eq!(
        r.client_tags(Duration::from_millis(REORDER_MS * 2)).await,
        [5, 6]
    );
    assert!(t0.elapsed() >= Duration::from_millis(REORDER_MS - 20));
    // 4 shows up after all: late, dropped. 6 again: duplicate, dropped.
    r.pns_data(&info, 4, 4).await;
    r.pns_data(&info, 6, 6).await;
    r.pns_data(&info, 7, 7).await;
    assert_eq!(r.client_tags(Duration::from_millis(200)).await, [7]);
    let l = r.line();
    assert_eq!(
        (l.gre_lost, l.gre_late, l.gre_duplicate, l.to_line_packets),
        (1, 1, 1, 7),
        "{l:?}"
    );
    let _ = r.pns_receives(Duration::from_millis(300)).await; // ack-only for 7

    // ---- client -> PNS: at most PNS_WINDOW packets unacknowledged ----
    let n = usize::from(PNS_WINDOW) + 4;
    let mut wire = Vec::new();
    for i in 0..n {
        r.enc.encode(&frame(i as u8), &mut wire).unwrap();
    }
    r.client.write_all(&wire).await.unwrap();
    let got = r.pns_receives(Duration::from_millis(500)).await;
    let seqs: Vec<u32> = got.iter().filter_map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (0..u32::from(PNS_WINDOW)).collect::<Vec<_>>(),
        "the window stops the sender"
    );
    // The first data packet piggybacks the acknowledgment owed... none is owed: 7 was acked.
    assert!(got.iter().all(|(_, a)| a.is_none()), "{got:?}");
    let l = r.line();
    assert_eq!(
        l.gre_tx_dropped, 4,
        "frames beyond the window dropped: {l:?}"
    );
    // The PNS acknowledges everything: the PAC may send again.
    r.pns_packet(&info, None, Some(u32::from(PNS_WINDOW) - 1), 0)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut wire = Vec::new();
    r.enc.encode(&frame(0xAA), &mut wire).unwrap();
    r.client.write_all(&wire).await.unwrap();
    let got = r.pns_receives(Duration::from_millis(300)).await;
    assert_eq!(got, [(Some(u32::from(PNS_WINDOW)), None)]);
    r.pac.shutdown().await;
}
