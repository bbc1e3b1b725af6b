//! A bounded version of the issue's leak run: soft-modem lines placing calls in a loop through
//! the PAC (in-process, `pac::Pac` on in-process GRE) to a test PNS. After every round all lines
//! must be idle (no stuck call), the file-descriptor count must come back to the same value, and
//! `status` must count every call. Sizes: `PAC_LEAK_LINES` (default 20) lines, `PAC_LEAK_ROUNDS`
//! (default 3) calls per line; the issue's full run is 200 lines for 2 minutes.

use std::sync::Arc;
use std::time::Duration;

use pptp_nas::io::line::open_serial;
use pptp_nas::io::softmodem::{Softmodem, SoftmodemOptions};
use pptp_nas::modem::sim::SimConfig;
use pptp_nas::pac::config::{PacConfig, ValidateOptions};
use pptp_nas::pac::gre::pair;
use pptp_nas::pac::Pac;
use pptp_nas::pptp::control::{Config, Connection, Event, Open, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Accepts every ICRQ; counts nothing itself (the PAC's status does).
async fn pns(listener: TcpListener) {
    let Ok((mut tcp, _)) = listener.accept().await else {
        return;
    };
    let mut config = Config::new(Role::Pns);
    config.maximum_channels = 1000;
    let mut c = Connection::new(config, Open::Passive, Instant::now().into_std());
    let mut buf = vec![0u8; 8192];
    let mut out = Vec::new();
    loop {
        while let Some(e) = c.poll_event() {
            if let Event::IncomingCallRequested { call_id, .. } = e {
                let _ = c.accept_call(Instant::now().into_std(), call_id);
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
            () = tokio::time::sleep(Duration::from_millis(100)) => c.handle_timeout(Instant::now().into_std()),
        }
    }
}

async fn expect(dev: &mut tokio_serial::SerialStream, want: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains(want) {
        match tokio::time::timeout_at(deadline, dev.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_call_in_a_loop_without_leaks() {
    let lines = env("PAC_LEAK_LINES", 20);
    let rounds = env("PAC_LEAK_ROUNDS", 3);
    let dir = std::env::temp_dir().join(format!("pptp-nas-pac-leak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sm = Arc::new(
        Softmodem::start(&SoftmodemOptions {
            dir: dir.clone(),
            lines,
            sim: SimConfig {
                speed: 1_000_000,
                ring_interval: Duration::from_millis(200),
                ..SimConfig::default()
            },
        })
        .unwrap(),
    );
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(pns(listener));
    let mut yaml = format!(
        "pac: {{host_name: leak, hardware_dir: hardware}}\n\
         pns:\n  - {{name: p, address: 127.0.0.1, port: {port}, mode: incoming-call}}\n\
         default: {{pns: [p]}}\nlines:\n"
    );
    for (i, l) in sm.lines().iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{id: l{i}, device: {}, type: modem, profile: softmodem}}\n",
            l.nas.display()
        ));
    }
    let label = format!("{}/pac-leak.yaml", env!("CARGO_MANIFEST_DIR"));
    let cfg = PacConfig::load_str(&label, &yaml, ValidateOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let (pac_gre, _pns_gre) = pair(1024);
    let pac = Pac::start(cfg, pac_gre).unwrap();
    let t0 = std::time::Instant::now();
    let wait_all_idle = |pac: &pptp_nas::pac::PacHandle| {
        let st = pac.status();
        st.lines
            .iter()
            .all(|l| l.view.state == "idle" && l.view.modem == "Idle" && l.view.call.is_none())
    };
    let mut clients = Vec::new();
    for l in sm.lines() {
        let mut c = open_serial(&l.client, 115_200, false).unwrap();
        c.write_all(b"ATE0\r").await.unwrap();
        assert!(expect(&mut c, "OK").await);
        clients.push(c);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wait_all_idle(&pac) {
        assert!(
            Instant::now() < deadline,
            "lines never idle: {}",
            pac.status().to_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut fd_after_round = Vec::new();
    let mut rss_after_round = Vec::new();
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for (i, mut c) in clients.drain(..).enumerate() {
            let sm = sm.clone();
            tasks.push(tokio::spawn(async move {
                c.write_all(b"ATDT5550100\r").await.unwrap();
                let ok = expect(&mut c, "CONNECT").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                sm.drop_carrier(i);
                let gone = expect(&mut c, "NO CARRIER").await;
                (c, ok && gone)
            }));
        }
        for t in tasks {
            let (c, ok) = t.await.unwrap();
            assert!(ok, "round {round}: a call did not connect or end");
            clients.push(c);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while !wait_all_idle(&pac) {
            assert!(
                Instant::now() < deadline,
                "round {round}: stuck lines:\n{}",
                pac.status().to_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fd_after_round.push(fds());
        rss_after_round.push(rss_kib());
    }
    let st = pac.status();
    let calls: u64 = st.lines.iter().map(|l| l.calls).sum();
    assert_eq!(calls, (lines * rounds) as u64, "{}", st.to_text());
    assert!(
        st.lines.iter().all(|l| l.calls == rounds as u64),
        "{}",
        st.to_text()
    );
    assert_eq!(
        st.pns[0].calls,
        0,
        "PNS has no calls left: {}",
        st.to_text()
    );
    assert!(
        fd_after_round.windows(2).all(|w| w[0] == w[1]),
        "fds after each round: {fd_after_round:?}"
    );
    eprintln!(
        "{lines} lines x {rounds} calls in {:.1} s; fds after each round {fd_after_round:?}; RSS KiB after each round {rss_after_round:?}",
        t0.elapsed().as_secs_f64()
    );
    pac.shutdown().await;
}
