//! The line driver against scripted fake modems on real ptys (the test plays the modem on the
//! pty master), and direct lines over a socat pty pair.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pptp_nas::io::line::{open_serial, wait_for_ppp, DirectStart, LineEvent, ModemLine};
use pptp_nas::io::pty::pty_pair;
use pptp_nas::modem::control::{AnswerMode, ControlConfig, Event, Failure, HangupCause};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_serial::SerialStream;

fn fast_config() -> ControlConfig {
    ControlConfig {
        init: vec!["AT&FE0V1Q0X4&C1&D2S0=0".into()],
        caller_id: None,
        answer: AnswerMode::OnRing(1),
        command_timeout: Duration::from_millis(200),
        answer_timeout: Duration::from_millis(500),
        dial_timeout: Duration::from_millis(500),
        guard: Duration::from_millis(100),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        out_of_service_after: 2,
        ..ControlConfig::default()
    }
}

/// A fake modem on the pty master: reads command lines, answers with `reply(line)`.
fn fake_modem(
    mut master: SerialStream,
    mut reply: impl FnMut(&str) -> Option<Vec<u8>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut line = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = match master.read(&mut buf).await {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            for &b in &buf[..n] {
                if b == b'\r' {
                    let l = String::from_utf8_lossy(&line).into_owned();
                    line.clear();
                    if let Some(out) = reply(&l) {
                        if master.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                } else {
                    line.push(b);
                }
            }
        }
    })
}

async fn next_modem(line: &mut ModemLine<SerialStream>, within: Duration) -> Event {
    match timeout(within, line.next()).await {
        Ok(Ok(LineEvent::Modem(e))) => e,
        other => panic!("expected a modem event: {other:?}"),
    }
}

#[tokio::test]
async fn dead_modem_goes_out_of_service_and_recovers() {
    let pty = pty_pair().unwrap();
    let alive = Arc::new(AtomicBool::new(false));
    let alive2 = alive.clone();
    let _modem = fake_modem(pty.master, move |_| {
        alive2
            .load(Ordering::SeqCst)
            .then(|| b"\r\nOK\r\n".to_vec())
    });
    let dev = open_serial(&pty.path, 115_200, false).unwrap();
    let mut line = ModemLine::new(dev, fast_config());
    // Two failed inits (200 ms timeout + 100 ms, then 200 ms backoff) -> out of service.
    assert_eq!(
        next_modem(&mut line, Duration::from_secs(3)).await,
        Event::OutOfService
    );
    assert!(line.control().is_out_of_service());
    alive.store(true, Ordering::SeqCst);
    assert_eq!(
        next_modem(&mut line, Duration::from_secs(3)).await,
        Event::Recovered
    );
    assert_eq!(
        next_modem(&mut line, Duration::from_secs(1)).await,
        Event::Ready
    );
}

#[tokio::test]
async fn dial_failure_and_timeout_paths() {
    let pty = pty_pair().unwrap();
    let mut dials = 0;
    let _modem = fake_modem(pty.master, move |l| {
        if l.starts_with("ATDT") {
            dials += 1;
            // NO DIALTONE, NO CARRIER, BUSY, NO ANSWER, then silence (a hung modem).
            return match dials {
                1 => Some(b"\r\nNO DIALTONE\r\n".to_vec()),
                2 => Some(b"\r\nNO CARRIER\r\n".to_vec()),
                3 => Some(b"\r\nBUSY\r\n".to_vec()),
                4 => Some(b"\r\nNO ANSWER\r\n".to_vec()),
                _ => None,
            };
        }
        Some(b"\r\nOK\r\n".to_vec())
    });
    let dev = open_serial(&pty.path, 115_200, false).unwrap();
    let mut line = ModemLine::new(dev, fast_config());
    assert_eq!(
        next_modem(&mut line, Duration::from_secs(2)).await,
        Event::Ready
    );
    for want in [
        Failure::NoDialtone,
        Failure::NoCarrier,
        Failure::Busy,
        Failure::NoAnswer,
    ] {
        line.dial("5551234").unwrap();
        assert_eq!(
            next_modem(&mut line, Duration::from_secs(2)).await,
            Event::CallFailed(want)
        );
        assert_eq!(
            next_modem(&mut line, Duration::from_secs(2)).await,
            Event::Ready
        );
    }
    line.dial("5551234").unwrap();
    assert_eq!(
        next_modem(&mut line, Duration::from_secs(2)).await,
        Event::CallFailed(Failure::Timeout)
    );
    assert_eq!(
        next_modem(&mut line, Duration::from_secs(2)).await,
        Event::Ready
    );
}

#[tokio::test]
async fn bytes_after_connect_in_the_same_read_are_data() {
    let pty = pty_pair().unwrap();
    let frame: &[u8] = &[0x7e, 0xff, 0x7d, 0x23, 0xc0, 0x21, 0x7d, 0x21, 0x7e];
    let mut master = pty.master;
    let dev = open_serial(&pty.path, 115_200, false).unwrap();
    let mut line = ModemLine::new(dev, fast_config());
    let frame2 = frame.to_vec();
    let modem = tokio::spawn(async move {
        let mut buf = [0u8; 256];
        let mut seen = String::new();
        loop {
            let n = master.read(&mut buf).await.unwrap();
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.ends_with("ATZ\r") || seen.ends_with("S0=0\r") {
                master.write_all(b"\r\nOK\r\n").await.unwrap();
                if seen.ends_with("S0=0\r") {
                    // RING; then CONNECT and the first PPP frame in one write.
                    master.write_all(b"\r\nRING\r\n").await.unwrap();
                }
            }
            if seen.ends_with("ATA\r") {
                let mut out = b"\r\nCONNECT 33600\r\n".to_vec();
                out.extend_from_slice(&frame2);
                master.write_all(&out).await.unwrap();
                // Later the far end hangs up: the modem says NO CARRIER in the data stream.
                tokio::time::sleep(Duration::from_millis(100)).await;
                master
                    .write_all(b"\x7e\x01\r\nNO CARRIER\r\n")
                    .await
                    .unwrap();
                return master;
            }
        }
    });
    assert_eq!(
        next_modem(&mut line, Duration::from_secs(2)).await,
        Event::Ready
    );
    assert!(matches!(
        next_modem(&mut line, Duration::from_secs(2)).await,
        Event::Ring { count: 1, .. }
    ));
    assert!(matches!(
        next_modem(&mut line, Duration::from_secs(2)).await,
        Event::Connected { .. }
    ));
    match timeout(Duration::from_secs(2), line.next()).await {
        Ok(Ok(LineEvent::Data(d))) => assert_eq!(d, frame, "no byte lost or added"),
        other => panic!("{other:?}"),
    }
    match timeout(Duration::from_secs(2), line.next()).await {
        Ok(Ok(LineEvent::Data(d))) => assert_eq!(d, b"\x7e\x01"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next_modem(&mut line, Duration::from_secs(2)).await,
        Event::HungUp(HangupCause::CarrierLost)
    );
    let _master = modem.await.unwrap();
}

/// An LCP Configure-Request as pppd sends it first (default ACCM: control octets escaped).
const LCP: &[u8] = &[
    0x7e, 0xff, 0x7d, 0x23, 0xc0, 0x21, 0x7d, 0x21, 0x7d, 0x21, 0x7d, 0x20, 0x7d, 0x2e, 0x7d, 0x25,
    0x7d, 0x26, 0x12, 0x34, 0x56, 0x78, 0x7d, 0x27, 0x7d, 0x22, 0x7d, 0x28, 0x7d, 0x22, 0x9b, 0x5c,
    0x7e,
];

async fn direct_line_over(a: &std::path::Path, b: &std::path::Path) {
    let mut pac = open_serial(a, 115_200, false).unwrap();
    let mut peer = open_serial(b, 115_200, false).unwrap();
    // Windows direct-cable handshake first, then some noise, then PPP.
    peer.write_all(b"CLIENT").await.unwrap();
    let waiter = tokio::spawn(async move {
        let r = wait_for_ppp(&mut pac).await;
        (r, pac)
    });
    let mut reply = [0u8; 12];
    timeout(Duration::from_secs(2), peer.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&reply, b"CLIENTSERVER");
    peer.write_all(b"\r\n~~noise").await.unwrap();
    peer.write_all(LCP).await.unwrap();
    let (r, mut pac) = timeout(Duration::from_secs(2), waiter)
        .await
        .unwrap()
        .unwrap();
    match r.unwrap() {
        DirectStart::Ppp(bytes) => assert_eq!(bytes, LCP, "the first frame, intact"),
        other => panic!("{other:?}"),
    }
    // The call is up: the PAC's reply reaches the caller's PPP peer unchanged.
    pac.write_all(LCP).await.unwrap();
    let mut back = vec![0u8; LCP.len()];
    timeout(Duration::from_secs(2), peer.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, LCP);
    // Silence = hang-up.
    let n = pptp_nas::io::line::read_until_silence(&mut pac, Duration::from_millis(200), |_| {})
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn direct_line_over_socat_pty_pair() {
    let dir = std::env::temp_dir().join(format!("pptp-nas-direct-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("ttyPAC"), dir.join("ttyPEER"));
    let socat = std::process::Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut socat = match socat {
        Ok(c) => c,
        Err(e) => {
            // .ci/run installs socat; without it, use our own pty pair joined in-process.
            eprintln!("socat not available ({e}); direct line over an in-process pty pair");
            return direct_line_in_process().await;
        }
    };
    for _ in 0..100 {
        if a.exists() && b.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    direct_line_over(&a, &b).await;
    let _ = socat.kill();
    let _ = socat.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn direct_line_in_process() {
    let x = pty_pair().unwrap();
    let y = pty_pair().unwrap();
    let (mut xm, mut ym) = (x.master, y.master);
    tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut xm, &mut ym).await;
    });
    direct_line_over(&x.path, &y.path).await;
}
