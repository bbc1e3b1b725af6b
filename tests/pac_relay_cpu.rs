//! Relay CPU per megabyte, side by side: pptp-linux (`pptp --nolaunchpppd`, its HDLC side on a
//! pty) and our PAC (`pptp-nas pac` as its own process, a soft-modem line on a pty, raw GRE on
//! loopback) relay the same stream of 1500-octet PPP frames, line -> GRE and GRE -> line. The
//! harness plays both the caller (on the pty) and the tunnel peer (PPTP control on TCP plus a
//! raw GRE socket, acknowledging like a real peer), and reads the relaying processes' CPU time
//! (utime + stime from /proc/PID/stat, every process of the relay's process group) before and
//! after each run. CPU time, not wall clock: the machine is shared.
//!
//! The stream is sent in closed-loop batches (16 frames, then wait until the peer or the caller
//! has them) so neither relay drops for lack of buffer or window and both move the same bytes.
//!
//! Needs root (raw GRE sockets) and /usr/sbin/pptp; fails with a clear message otherwise.
//! Ignored by default (it moves tens of megabytes); run it in release mode:
//!
//! ```text
//! cargo test --release --test pac_relay_cpu -- --ignored --nocapture
//! PAC_CPU_MB=32 cargo test --release --test pac_relay_cpu -- --ignored --nocapture
//! PAC_WORKERS=1 ...   # the PAC's tokio runtime with one worker thread (TOKIO_WORKER_THREADS)
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pptp_nas::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
use pptp_nas::io::pty::pty_pair;
use pptp_nas::io::softmodem::{Softmodem, SoftmodemOptions};
use pptp_nas::modem::sim::SimConfig;
use pptp_nas::pac::gre::{raw, GreChannel, GreDatagram};
use pptp_nas::pptp::control::{CallInfo, Config, Connection, DialResult, Event, Open, Role};
use pptp_nas::pptp::window::{Rx, Window, WindowConfig};
use pptp_nas::pptp::GreRepr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

const FRAME: usize = 1500;
const BATCH: usize = 16;

fn mb() -> usize {
    std::env::var("PAC_CPU_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// Per-pid loopback addresses: `.1` the peer of pptp-linux, `.2` pptp-linux, `.3` the PNS of
/// our PAC, `.4` our PAC.
fn addr(host: u8) -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(127, 90 + (pid % 60) as u8, ((pid / 60) % 250) as u8, host)
}

fn require() {
    assert!(
        nix_is_root(),
        "needs root (raw GRE sockets): run as root / in CI"
    );
    assert!(
        Path::new("/usr/sbin/pptp").exists(),
        "/usr/sbin/pptp is missing: install pptp-linux (apt-get install pptp-linux)"
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// CPU seconds of every live thread of `root` and all its descendants, from
/// /proc/PID/task/TID/schedstat (nanoseconds on CPU, user + system; finer than the 10 ms ticks
/// of /proc/PID/stat).
fn tree_cpu(root: u32) -> f64 {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after the ")" of the command name: state ppid ...
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(pp) = ppid {
            parent.insert(pid, pp);
        }
    }
    let in_tree = |mut p: u32| loop {
        if p == root {
            return true;
        }
        match parent.get(&p) {
            Some(&pp) if pp != 0 && pp != p => p = pp,
            _ => return false,
        }
    };
    let mut ns = 0u64;
    for &pid in parent.keys() {
        if !in_tree(pid) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            ns += std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

fn spawn_group(cmd: &mut Command) -> Child {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).spawn().unwrap()
}

/// SIGKILL to the one process when dropped (pptp-linux runs in its own PID namespace under
/// `unshare --kill-child`, so that kills everything it started and nothing else).
struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tunnel peer's control side: accepts the call (ICRQ from our PAC, OCRQ from
/// pptp-linux) and reports it up; `sli` sends a Set-Link-Info with send/receive ACCM.
async fn control_peer(
    listener: TcpListener,
    role: Role,
    up: oneshot::Sender<CallInfo>,
    mut sli: mpsc::UnboundedReceiver<(u32, u32)>,
) {
    let Ok((mut tcp, _)) = listener.accept().await else {
        return;
    };
    let mut c = Connection::new(Config::new(role), Open::Passive, Instant::now().into_std());
    let mut up = Some(up);
    let mut call = None;
    let mut buf = vec![0u8; 8192];
    let mut out = Vec::new();
    loop {
        while let Some(e) = c.poll_event() {
            let now = Instant::now().into_std();
            match e {
                Event::IncomingCallRequested { call_id, .. } => {
                    let _ = c.accept_call(now, call_id);
                }
                Event::OutgoingCallRequested { call_id, .. } => {
                    let _ = c.dial_result(now, call_id, DialResult::connected(10_000_000));
                }
                Event::CallUp(info) => {
                    call = Some(info.call_id);
                    if let Some(u) = up.take() {
                        let _ = u.send(info);
                    }
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
            s = sli.recv() => if let (Some((s, r)), Some(id)) = (s, call) {
                let _ = c.set_link_info(Instant::now().into_std(), id, s, r);
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => c.handle_timeout(Instant::now().into_std()),
        }
    }
}

/// The tunnel peer's GRE side.
struct GrePeer {
    gre: GreChannel,
    other: Ipv4Addr,
    local: Ipv4Addr,
    win: Window,
    buf: Vec<u8>,
}

impl GrePeer {
    fn new(gre: GreChannel, local: Ipv4Addr, other: Ipv4Addr, info: &CallInfo) -> Self {
        let mut wc = WindowConfig::new(info.peer_call_id);
        wc.ignore_peer_window = true;
        wc.reorder_timeout = Duration::ZERO;
        wc.ack_delay = Duration::from_millis(20);
        GrePeer {
            gre,
            other,
            local,
            win: Window::new(wc),
            buf: Vec::new(),
        }
    }

    async fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let packet = std::mem::take(&mut self.buf).into();
        let _ = self
            .gre
            .tx
            .send(GreDatagram {
                peer: self.other,
                local: self.local,
                packet,
            })
            .await;
    }

    /// Handles one received packet; returns the payload length delivered.
    async fn receive(&mut self, d: &GreDatagram) -> usize {
        let Ok((repr, payload)) = GreRepr::parse_bytes(&d.packet) else {
            return 0;
        };
        let now = Instant::now().into_std();
        let n = match self.win.handle_packet(now, &repr, payload) {
            Rx::Deliver => payload.len(),
            _ => 0,
        };
        if self.win.poll_ack(now, &mut self.buf) {
            self.flush().await;
        }
        n
    }

    async fn send(&mut self, frame: &[u8]) {
        self.win
            .encode_data(Instant::now().into_std(), frame, &mut self.buf)
            .unwrap();
        self.flush().await;
    }
}

/// Random-looking PPP frame (IPv4 protocol field, then pseudo-random octets: control
/// characters, flags and escapes appear at their natural rate).
fn frame(seed: u32) -> Vec<u8> {
    let mut f = vec![0xFF, 0x03, 0x00, 0x21];
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    while f.len() < FRAME {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    f
}

#[derive(Debug, Clone, Copy)]
struct Measure {
    mb: f64,
    cpu_s: f64,
    /// Batches that did not arrive whole within 500 ms.
    stalls: u32,
}

impl Measure {
    fn per_mb_ms(&self) -> f64 {
        self.cpu_s * 1000.0 / self.mb
    }
}

/// Line -> GRE: the caller writes batches of HDLC-framed frames, the peer counts payload.
async fn line_to_gre<L: AsyncRead + AsyncWrite + Unpin>(
    line: &mut L,
    peer: &mut GrePeer,
    root: u32,
    accm: u32,
) -> Measure {
    let mut enc = Encoder::new(EncoderConfig::default());
    enc.set_accm(accm);
    let mut wire = Vec::new();
    for i in 0..BATCH {
        enc.encode(&frame(i as u32), &mut wire).unwrap();
    }
    let total = mb() * 1_000_000;
    let mut got = 0usize;
    // Drain anything pending (acks, LCP noise).
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(50), line.read(&mut [0u8; 4096])).await
    {}
    let cpu0 = tree_cpu(root);
    let mut stalls = 0;
    while got < total {
        line.write_all(&wire).await.unwrap();
        let mut frames = 0;
        while frames < BATCH {
            match tokio::time::timeout(Duration::from_millis(500), peer.gre.rx.recv()).await {
                Ok(Some(d)) => {
                    let n = peer.receive(&d).await;
                    if n > 0 {
                        got += n;
                        frames += 1;
                    }
                }
                _ => {
                    stalls += 1;
                    break;
                }
            }
        }
        if stalls >= 20 {
            eprintln!("relay stalled line -> GRE ({got} octets delivered)");
            break;
        }
    }
    let cpu1 = tree_cpu(root);
    eprintln!("peer window stats: {:?}", peer.win.stats());
    Measure {
        mb: got as f64 / 1e6,
        cpu_s: cpu1 - cpu0,
        stalls,
    }
}

/// GRE -> line: the peer sends batches, the caller decodes them from the line.
async fn gre_to_line<L: AsyncRead + AsyncWrite + Unpin>(
    line: &mut L,
    peer: &mut GrePeer,
    root: u32,
) -> Measure {
    let frames: Vec<Vec<u8>> = (0..BATCH as u32).map(frame).collect();
    let mut dec = Decoder::new(DecoderConfig::default());
    let total = mb() * 1_000_000;
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    let cpu0 = tree_cpu(root);
    let mut stalls = 0;
    while got < total {
        for f in &frames {
            peer.send(f).await;
        }
        let mut n_frames = 0;
        while n_frames < BATCH {
            match tokio::time::timeout(Duration::from_millis(500), line.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    let mut input = &buf[..n];
                    while let Some(r) = dec.decode(&mut input) {
                        if let Ok(f) = r {
                            got += f.len();
                            n_frames += 1;
                        }
                    }
                }
                _ => {
                    stalls += 1;
                    break;
                }
            }
        }
        // The relay's acknowledgments.
        while let Ok(d) = peer.gre.rx.try_recv() {
            peer.receive(&d).await;
        }
        if stalls >= 20 {
            eprintln!("relay stalled GRE -> line ({got} octets delivered)");
            break;
        }
    }
    let cpu1 = tree_cpu(root);
    eprintln!("peer window stats: {:?}", peer.win.stats());
    Measure {
        mb: got as f64 / 1e6,
        cpu_s: cpu1 - cpu0,
        stalls,
    }
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pptp-nas-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// (line -> GRE default ACCM, line -> GRE ACCM 0, GRE -> line) for pptp-linux.
async fn run_pptp_linux() -> [Measure; 3] {
    let (peer_a, pptp_a) = (addr(1), addr(2));
    let listener = TcpListener::bind((peer_a, 1723))
        .await
        .unwrap_or_else(|e| panic!("bind {peer_a}:1723: {e}"));
    let (up_tx, up_rx) = oneshot::channel();
    let (_sli_tx, sli_rx) = mpsc::unbounded_channel();
    tokio::spawn(control_peer(listener, Role::Pac, up_tx, sli_rx));
    let gre = raw(Some(peer_a), vec![pptp_a]).expect("raw GRE socket (root?)");
    let pty = pty_pair().unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pty.path)
        .unwrap();
    let slave2 = slave.try_clone().unwrap();
    // pptp-linux is run in a PID namespace of its own: without pppd its call manager signals
    // a process "pppd" with pid 0 when the call ends, and in testing the whole machine's
    // processes were killed at that point; inside the namespace only pptp's own are.
    let child = Kill(spawn_group(
        Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--kill-child",
                "/usr/sbin/pptp",
                &peer_a.to_string(),
                "--nolaunchpppd",
                "--nohostroute",
                "--localbind",
                &pptp_a.to_string(),
                "--loglevel",
                "0",
            ])
            .stdin(Stdio::from(slave))
            .stdout(Stdio::from(slave2))
            .stderr(Stdio::null()),
    ));
    let root = child.0.id();
    eprintln!("pptp-linux started (unshare pid {root})");
    let info = tokio::time::timeout(Duration::from_secs(10), up_rx)
        .await
        .expect("pptp-linux call up in time")
        .unwrap();
    let mut peer = GrePeer::new(gre, peer_a, pptp_a, &info);
    let mut line = pty.master;
    tokio::time::sleep(Duration::from_millis(300)).await;
    eprintln!("pptp-linux call up: {info:?}");
    let a = line_to_gre(&mut line, &mut peer, root, 0xFFFF_FFFF).await;
    eprintln!("pptp-linux line -> GRE: {a:?}");
    let b = line_to_gre(&mut line, &mut peer, root, 0).await;
    let c = gre_to_line(&mut line, &mut peer, root).await;
    eprintln!("pptp-linux done: {b:?} {c:?}");
    drop(child);
    [a, b, c]
}

/// The same for our PAC.
async fn run_pac() -> [Measure; 3] {
    let (pns_a, pac_a) = (addr(3), addr(4));
    let dir = tempdir("pac-cpu");
    let sm = Softmodem::start(&SoftmodemOptions {
        dir: dir.clone(),
        lines: 1,
        sim: SimConfig {
            speed: 2_000_000_000,
            ring_interval: Duration::from_millis(200),
            max_queue: 1 << 20,
            ..SimConfig::default()
        },
    })
    .unwrap();
    let listener = TcpListener::bind((pns_a, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (up_tx, up_rx) = oneshot::channel();
    let (sli_tx, sli_rx) = mpsc::unbounded_channel();
    tokio::spawn(control_peer(listener, Role::Pns, up_tx, sli_rx));
    let gre = raw(Some(pns_a), vec![pac_a]).expect("raw GRE socket (root?)");
    let cfg = dir.join("pac.yaml");
    std::fs::write(
        &cfg,
        format!(
            "pac: {{host_name: cpu, hardware_dir: {}/hardware, local_address: {pac_a}}}\n\
             pns:\n  - {{name: p, address: {pns_a}, port: {port}, mode: incoming-call}}\n\
             default: {{pns: [p]}}\n\
             lines:\n  - {{id: l0, device: {}, type: modem, profile: softmodem, offer_on_ring: 1}}\n",
            env!("CARGO_MANIFEST_DIR"),
            sm.lines()[0].nas.display()
        ),
    )
    .unwrap();
    let child = Kill(spawn_group(
        Command::new(env!("CARGO_BIN_EXE_pptp-nas"))
            .args(["pac", "--config"])
            .arg(&cfg)
            .arg("--status-socket")
            .arg(dir.join("status.sock"))
            .env("RUST_LOG", "warn")
            .envs(
                std::env::var("PAC_WORKERS")
                    .ok()
                    .map(|w| ("TOKIO_WORKER_THREADS", w)),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    ));
    let root = child.0.id();
    let mut line = pptp_nas::io::line::open_serial(&sm.lines()[0].client, 115_200, false).unwrap();
    // Wait for the PAC to initialise the modem, then dial.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    line.write_all(b"ATE0\rATDT5550100\r").await.unwrap();
    let info = tokio::time::timeout(Duration::from_secs(15), up_rx)
        .await
        .expect("PAC call up in time")
        .unwrap();
    let mut seen = Vec::new();
    let mut b = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("CONNECT") {
        let n = tokio::time::timeout(Duration::from_secs(10), line.read(&mut b))
            .await
            .expect("CONNECT")
            .unwrap();
        seen.extend_from_slice(&b[..n]);
    }
    let mut peer = GrePeer::new(gre, pns_a, pac_a, &info);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = line_to_gre(&mut line, &mut peer, root, 0xFFFF_FFFF).await;
    // Set-Link-Info: the caller sends with ACCM 0 (receive ACCM 0 for the PAC's decoder).
    sli_tx.send((0xFFFF_FFFF, 0)).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b = line_to_gre(&mut line, &mut peer, root, 0).await;
    let c = gre_to_line(&mut line, &mut peer, root).await;
    let st = Command::new(env!("CARGO_BIN_EXE_pptp-nas"))
        .args(["status", "--socket"])
        .arg(dir.join("status.sock"))
        .output()
        .unwrap();
    eprintln!(
        "PAC status after the runs:\n{}",
        String::from_utf8_lossy(&st.stdout)
    );
    drop(child);
    drop(sm);
    [a, b, c]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "moves tens of megabytes; run with --release -- --ignored --nocapture"]
async fn relay_cpu_per_megabyte_vs_pptp_linux() {
    require();
    let theirs = run_pptp_linux().await;
    let ours = run_pac().await;
    let names = [
        "line -> GRE, default ACCM",
        "line -> GRE, ACCM 0",
        "GRE -> line, default ACCM",
    ];
    eprintln!("relay CPU per MB (CPU time of the relaying processes, all threads, ms per MB of PPP payload):");
    eprintln!(
        "{:<28} {:>22} {:>22} {:>7}",
        "", "pptp-linux", "pptp-nas pac", "ratio"
    );
    for i in 0..3 {
        eprintln!(
            "{:<28} {:>7.2} ({:>5.1} MB, {} st) {:>7.2} ({:>5.1} MB, {} st) {:>6.2}",
            names[i],
            theirs[i].per_mb_ms(),
            theirs[i].mb,
            theirs[i].stalls,
            ours[i].per_mb_ms(),
            ours[i].mb,
            ours[i].stalls,
            ours[i].per_mb_ms() / theirs[i].per_mb_ms()
        );
    }
    for i in 0..3 {
        assert!(
            ours[i].mb > 0.9 * mb() as f64 && theirs[i].mb > 0.9 * mb() as f64,
            "{}: a relay stalled",
            names[i]
        );
    }
}
