//! The PAC as real processes: `pptp-nas softmodem` + `pptp-nas pac` (raw GRE socket on
//! loopback) + a test PNS in this process (the `pptp::control` core on TCP, raw GRE). Needs
//! root (CAP_NET_RAW) like CI; skipped with a message otherwise.
//!
//! Covered: `check-config` on the generated file, a call in incoming-call mode with PPP frames
//! of several protocols both ways over real GRE, `pptp-nas status --json` showing the call,
//! Call-Clear-Request from the PNS (line back to idle), then SIGTERM during a call: the PAC
//! clears the call (CDN), stops the control connection and exits 0.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pptp_nas::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
use pptp_nas::io::line::open_serial;
use pptp_nas::pac::gre::{raw, GreDatagram};
use pptp_nas::pptp::control::{CallEnd, Config, Connection, Event, Open, Role};
use pptp_nas::pptp::message::CauseCode;
use pptp_nas::pptp::{GreRepr, SeqNumber};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::{timeout, Instant};

const PAC: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 71);
const PNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 72);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pptp-nas")
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_json(sock: &Path) -> String {
    let out = Command::new(bin())
        .args(["status", "--json", "--socket"])
        .arg(sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softmodem_pac_and_pns_processes() {
    // SAFETY-free root check: a raw socket either opens or not.
    let gre = match raw(Some(PNS), vec![PAC]) {
        Ok(g) => g,
        Err(e) => panic!("raw GRE socket: {e}: needs root or CAP_NET_RAW for raw GRE sockets; run the tests as root, as .ci/run does"),
    };
    let mut gre = gre;
    let dir: PathBuf = std::env::temp_dir().join(format!("pptp-nas-pacd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _sm = Kill(
        Command::new(bin())
            .args([
                "softmodem",
                "--lines",
                "1",
                "--speed",
                "1000000",
                "--ring-interval",
                "300",
                "--caller-id",
                "0301234",
                "--dir",
            ])
            .arg(&dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&dir.join("nas0"));
    wait_for(&dir.join("client0"));

    let listener = TcpListener::bind((PNS, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sock = dir.join("pac.sock");
    let cfg = dir.join("pac.yaml");
    std::fs::write(
        &cfg,
        format!(
            "pac:\n  host_name: pacd-test\n  hardware_dir: {hw}\n  status_socket: {sock}\n  local_address: {PAC}\n\
             pns:\n  - {{name: corp, address: {PNS}, port: {port}, mode: incoming-call}}\n\
             lines:\n  - {{id: sm0, device: {dev}, type: modem, profile: softmodem, number: \"5550100\", offer_on_ring: 2}}\n\
             default: {{pns: [corp]}}\n",
            hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware").display(),
            sock = sock.display(),
            dev = dir.join("nas0").display(),
        ),
    )
    .unwrap();
    let check = Command::new(bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let mut pac = Kill(
        Command::new(bin())
            .args(["pac", "--log-format", "json", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(dir.join("pac.log")).unwrap())
            .spawn()
            .unwrap(),
    );

    // The PNS: accept the control connection.
    let (mut tcp, _) = timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("PAC connects")
        .unwrap();
    let mut c = Connection::new(
        Config::new(Role::Pns),
        Open::Passive,
        Instant::now().into_std(),
    );
    let mut client = open_serial(&dir.join("client0"), 115_200, false).unwrap();
    let mut rbuf = vec![0u8; 4096];
    let mut wbuf = Vec::new();

    // Drives the PNS core until `pred` says an event is the one we want.
    macro_rules! pns_until {
        ($pred:expr) => {{
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let mut hit = None;
                assert!(Instant::now() < deadline, "PNS: no event in time");
                // Stop at the wanted event: later ones stay queued for the next wait.
                while hit.is_none() {
                    let Some(e) = c.poll_event() else { break };
                    let now = Instant::now().into_std();
                    if let Event::IncomingCallRequested { call_id, .. } = &e {
                        c.accept_call(now, *call_id).unwrap();
                    }
                    if hit.is_none() {
                        hit = ($pred)(e);
                    }
                }
                wbuf.clear();
                while c.poll_transmit(&mut wbuf).is_some() {}
                if !wbuf.is_empty() {
                    tcp.write_all(&wbuf).await.unwrap();
                }
                if let Some(h) = hit {
                    break h;
                }
                match tokio::time::timeout_at(deadline, tcp.read(&mut rbuf)).await {
                    Ok(Ok(n)) if n > 0 => c.handle_bytes(Instant::now().into_std(), &rbuf[..n]),
                    Ok(_) => {
                        c.handle_tcp_closed(Instant::now().into_std());
                    }
                    Err(_) => panic!("PNS: no event in time"),
                }
            }
        }};
    }

    pns_until!(|e| matches!(e, Event::Established(_)).then_some(()));
    client.write_all(b"ATE0\r").await.unwrap();
    expect(&mut client, "OK").await;

    // The PAC's modem must be initialised (caller ID enabled) before the first call.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !status_json(&sock).contains("\"modem\": \"Idle\"") {
        assert!(std::time::Instant::now() < deadline, "PAC line never idle");
        std::thread::sleep(Duration::from_millis(50));
    }

    // ---- call 1 ----
    client.write_all(b"ATDT5550100\r").await.unwrap();
    let info = pns_until!(|e| match e {
        Event::CallUp(i) => Some(i),
        _ => None,
    });
    expect(&mut client, "CONNECT").await;
    let mut enc = Encoder::new(EncoderConfig::default());
    let mut dec = Decoder::new(DecoderConfig::default());
    let frames: [&[u8]; 4] = [
        &[0xFF, 0x03, 0x80, 0x2B, 0x01, 0x01, 0x00, 0x04],
        &[0xFF, 0x03, 0x80, 0x3F, 0x01, 0x02, 0x00, 0x04],
        &[0xFF, 0x03, 0x80, 0x57, 0x01, 0x03, 0x00, 0x04],
        &[0xFF, 0x03, 0x7E, 0x7D, 0x00, 0x11, 0x13, 0xFF],
    ];
    for (seq, f) in (0u32..).zip(frames) {
        // client -> PNS
        let mut w = Vec::new();
        enc.encode(f, &mut w).unwrap();
        client.write_all(&w).await.unwrap();
        let got = loop {
            let d = timeout(Duration::from_secs(5), gre.rx.recv())
                .await
                .expect("GRE from PAC")
                .unwrap();
            assert_eq!(d.peer, PAC);
            let (repr, payload) = GreRepr::parse_bytes(&d.packet).unwrap();
            if repr.seq.is_some() {
                assert_eq!(repr.call_id, info.call_id);
                break payload.to_vec();
            }
        };
        assert_eq!(got, f);
        // PNS -> client
        let repr = GreRepr::data(info.peer_call_id, f.len() as u16, SeqNumber(seq), None);
        let mut pkt = Vec::new();
        repr.emit(&mut pkt);
        pkt.extend_from_slice(f);
        gre.tx
            .send(GreDatagram {
                peer: PAC,
                local: PNS,
                packet: pkt.into(),
            })
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let back = 'outer: loop {
            let n = timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("line data")
                .unwrap();
            let mut input = &buf[..n];
            while let Some(r) = dec.decode(&mut input) {
                if let Ok(fr) = r {
                    break 'outer fr.to_vec();
                }
            }
        };
        assert_eq!(back, f);
    }
    let js = status_json(&sock);
    if !js.contains("\"caller\": \"0301234\"") {
        let log = std::fs::read_to_string(dir.join("pac.log")).unwrap_or_default();
        panic!("{js}\n{log}");
    }
    assert!(js.contains("\"state\": \"up\""), "{js}");
    assert!(
        js.contains(&format!("\"call_id\": {}", info.peer_call_id)),
        "{js}"
    );

    // CCRQ from the PNS: CDN back, the line hangs up and returns to idle.
    c.hang_up(
        Instant::now().into_std(),
        info.call_id,
        CauseCode::NormalClearing,
    )
    .unwrap();
    let end = pns_until!(|e| match e {
        Event::CallDown { end, .. } => Some(end),
        _ => None,
    });
    assert!(matches!(end, CallEnd::Disconnected { .. }), "{end:?}");
    expect(&mut client, "NO CARRIER").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let js = status_json(&sock);
        if js.contains("\"state\": \"idle\"") && js.contains("\"modem\": \"Idle\"") {
            assert!(js.contains("\"calls\": 1"), "{js}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "line not back to idle: {js}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // ---- call 2, then SIGTERM: CDN, Stop-Control-Connection, exit 0 ----
    client.write_all(b"ATDT5550100\r").await.unwrap();
    let info = pns_until!(|e| match e {
        Event::CallUp(i) => Some(i),
        _ => None,
    });
    expect(&mut client, "CONNECT").await;
    let pid = pac.0.id();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let end = pns_until!(|e| match e {
        Event::CallDown { call_id, end } if call_id == info.call_id => Some(end),
        _ => None,
    });
    assert!(matches!(end, CallEnd::Disconnected { .. }), "{end:?}");
    let closed = pns_until!(|e| match e {
        Event::Closed(r) => Some(r),
        _ => None,
    });
    eprintln!("control connection closed: {closed:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = pac.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pac did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.join("pac.log")).unwrap_or_default();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(
        log.contains("\"call up\"") || log.contains("call up"),
        "{log}"
    );
    assert!(
        log.lines()
            .all(|l| l.trim().is_empty() || l.starts_with('{')),
        "JSON log lines: {log}"
    );
    assert!(!sock.exists(), "status socket removed on exit");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn expect(dev: &mut tokio_serial::SerialStream, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(8);
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

/// CPU time (user + system) of a process, in seconds, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state field.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Measurement, not a check: CPU time of the `pptp-nas pac` process per megabyte relayed, both
/// directions, over a soft-modem line at 100 Mbit/s and raw GRE on loopback. Run with
/// `cargo test --release --test pac_daemon -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_pac_cpu_per_megabyte() {
    let Ok(mut gre) = raw(Some(PNS), vec![PAC]) else {
        eprintln!("skipped: needs root");
        return;
    };
    let dir: PathBuf = std::env::temp_dir().join(format!("pptp-nas-pacm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _sm = Kill(
        Command::new(bin())
            .args([
                "softmodem",
                "--lines",
                "1",
                "--speed",
                "100000000",
                "--ring-interval",
                "300",
                "--dir",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&dir.join("nas0"));
    let listener = TcpListener::bind((PNS, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = dir.join("pac.yaml");
    std::fs::write(
        &cfg,
        format!(
            "pac:\n  host_name: m\n  hardware_dir: {hw}\n  status_socket: {sock}\n  local_address: {PAC}\n\
             pns:\n  - {{name: corp, address: {PNS}, port: {port}, mode: incoming-call}}\n\
             lines:\n  - {{id: sm0, device: {dev}, type: modem, profile: softmodem}}\n\
             default: {{pns: [corp]}}\n",
            hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware").display(),
            sock = dir.join("pac.sock").display(),
            dev = dir.join("nas0").display(),
        ),
    )
    .unwrap();
    let pac = Kill(
        Command::new(bin())
            .args(["pac", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (mut tcp, _) = timeout(Duration::from_secs(10), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut c = Connection::new(
        Config::new(Role::Pns),
        Open::Passive,
        Instant::now().into_std(),
    );
    let mut client = open_serial(&dir.join("client0"), 115_200, false).unwrap();
    let mut rbuf = vec![0u8; 4096];
    let mut wbuf = Vec::new();
    client.write_all(b"ATDT1\r").await.unwrap();
    let info = loop {
        let mut up = None;
        while let Some(e) = c.poll_event() {
            match e {
                Event::IncomingCallRequested { call_id, .. } => {
                    c.accept_call(Instant::now().into_std(), call_id).unwrap()
                }
                Event::CallUp(i) => up = Some(i),
                _ => {}
            }
        }
        wbuf.clear();
        while c.poll_transmit(&mut wbuf).is_some() {}
        if !wbuf.is_empty() {
            tcp.write_all(&wbuf).await.unwrap();
        }
        if let Some(i) = up {
            break i;
        }
        let n = timeout(Duration::from_secs(10), tcp.read(&mut rbuf))
            .await
            .unwrap()
            .unwrap();
        c.handle_bytes(Instant::now().into_std(), &rbuf[..n]);
    };
    expect(&mut client, "CONNECT").await;
    const FRAME: usize = 1400;
    const FRAMES: usize = 6000; // 8.4 MB each way
    let mut frame = vec![0xFF, 0x03, 0x00, 0x21];
    frame.extend((0..FRAME as u32 - 4).map(|i| (i * 7) as u8));
    let pid = pac.0.id();
    let cpu0 = cpu_seconds(pid);
    let t0 = std::time::Instant::now();
    // Line -> GRE: the client writes HDLC frames; count GRE payload octets at the PNS.
    let mut wire = Vec::new();
    let mut enc = Encoder::new(EncoderConfig::default());
    for _ in 0..64 {
        enc.encode(&frame, &mut wire).unwrap();
    }
    let writer = tokio::spawn(async move {
        for _ in 0..FRAMES / 64 {
            client.write_all(&wire).await.unwrap();
        }
        client
    });
    let mut got = 0usize;
    while got < FRAMES / 64 * 64 * FRAME * 95 / 100 {
        match timeout(Duration::from_secs(5), gre.rx.recv()).await {
            Ok(Some(d)) => got += d.packet.len().saturating_sub(16),
            _ => break,
        }
    }
    let mut client = writer.await.unwrap();
    let up_s = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_seconds(pid);
    // GRE -> line: the PNS sends; the client reads.
    let t1 = std::time::Instant::now();
    let reader = tokio::spawn(async move {
        let mut n = 0usize;
        let mut buf = vec![0u8; 65536];
        let want = FRAMES * FRAME;
        while n < want * 95 / 100 {
            match timeout(Duration::from_secs(5), client.read(&mut buf)).await {
                Ok(Ok(k)) if k > 0 => n += k,
                _ => break,
            }
        }
        n
    });
    for seq in 0..FRAMES as u32 {
        let repr = GreRepr::data(info.peer_call_id, FRAME as u16, SeqNumber(seq), None);
        let mut pkt = Vec::with_capacity(FRAME + 16);
        repr.emit(&mut pkt);
        pkt.extend_from_slice(&frame);
        gre.tx
            .send(GreDatagram {
                peer: PAC,
                local: PNS,
                packet: pkt.into(),
            })
            .await
            .unwrap();
        if seq % 64 == 63 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let line_octets = reader.await.unwrap();
    let down_s = t1.elapsed().as_secs_f64();
    let cpu2 = cpu_seconds(pid);
    let st = status_json(&dir.join("pac.sock"));
    eprintln!("{st}");
    let up_mb = got as f64 / 1e6;
    let down_mb = line_octets as f64 / 1e6;
    eprintln!(
        "PAC relay: line->GRE {up_mb:.1} MB in {up_s:.1} s, pac CPU {:.2} s = {:.1} ms/MB; GRE->line {down_mb:.1} MB (HDLC octets) in {down_s:.1} s, pac CPU {:.2} s = {:.1} ms/MB",
        cpu1 - cpu0,
        (cpu1 - cpu0) * 1000.0 / up_mb.max(0.001),
        cpu2 - cpu1,
        (cpu2 - cpu1) * 1000.0 / down_mb.max(0.001),
    );
    let _ = std::fs::remove_dir_all(&dir);
}
