//! Local PPP termination as real processes: `pptp-nas softmodem` + `pptp-nas pac` with a
//! `mode: terminate` line, and a dial-in client: this test dials (`ATDT`) on the soft-modem's
//! client pty and then bridges the line to `pptp-nas ppp --role client` on stdio, which
//! authenticates (MS-CHAPv2 against the PAC's users file), gets an address from the pool and
//! pings the PAC's built-in responder. `pptp-nas pac` opens a raw GRE socket at start, so the
//! test needs root like CI (it fails with a message otherwise).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pptp_nas::io::line::open_serial;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

mod common;
use common::procs::{bin, require_root, status_json, wait_for, Kill};

async fn expect(dev: &mut tokio_serial::SerialStream, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
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

async fn try_expect(dev: &mut tokio_serial::SerialStream, want: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
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

/// Writes the PAC configuration with one terminate line; returns (config, status socket).
fn write_config(dir: &Path, users: &str) -> (PathBuf, PathBuf) {
    std::fs::write(dir.join("users.yaml"), users).unwrap();
    let sock = dir.join("pac.sock");
    let cfg = dir.join("pac.yaml");
    std::fs::write(
        &cfg,
        format!(
            "pac:\n  host_name: term-test\n  hardware_dir: {hw}\n  status_socket: {sock}\n  local_address: 127.0.0.1\n\
             lines:\n  - {{id: isp0, device: {dev}, type: modem, profile: softmodem, mode: terminate, number: \"5550100\"}}\n\
             terminate:\n  users: users.yaml\n  pool_start: 10.77.0.10\n  pool_size: 4\n  local_ip: 10.77.0.1\n  dns: [10.77.0.53]\n  auth: [mschap-v2]\n",
            hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware").display(),
            sock = sock.display(),
            dev = dir.join("nas0").display(),
        ),
    )
    .unwrap();
    (cfg, sock)
}

/// Dials on the client pty, then runs `pptp-nas ppp --role client` over it (bridged through
/// this process); returns the ppp client's exit code and stderr.
async fn dial_and_ppp(client_dev: &Path, user: &str) -> (i32, String) {
    let mut line = open_serial(client_dev, 115_200, false).unwrap();
    // After the previous call the modem may still be hanging up: retry until it answers OK.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        line.write_all(b"ATE0\r").await.unwrap();
        if try_expect(&mut line, "OK", Duration::from_secs(1)).await {
            break;
        }
        assert!(Instant::now() < deadline, "client modem never said OK");
    }
    line.write_all(b"ATDT5550100\r").await.unwrap();
    expect(&mut line, "CONNECT").await;
    let mut child = tokio::process::Command::new(bin())
        .args([
            "ppp",
            "--role",
            "client",
            "--user",
            user,
            "--mppe",
            "none",
            "--mppc",
            "off",
            "--ping",
            "3",
            "--connect-timeout",
            "15",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut cin = child.stdin.take().unwrap();
    let mut cout = child.stdout.take().unwrap();
    let mut cerr = child.stderr.take().unwrap();
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = cerr.read_to_string(&mut s).await;
        s
    });
    let (mut lr, mut lw) = tokio::io::split(line);
    let up = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            match cout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if lw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        lw
    });
    let down = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            match lr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if cin.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let code = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("ppp client finished in time")
        .unwrap()
        .code()
        .unwrap_or(-1);
    down.abort();
    let _ = up.await;
    let err = err_task.await.unwrap_or_default();
    (code, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_line_authenticates_and_answers_pings() {
    require_root();
    let dir = std::env::temp_dir().join(format!("pptp-nas-pacterm-{}", std::process::id()));
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
                "--dir",
            ])
            .arg(&dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&dir.join("nas0"));
    wait_for(&dir.join("client0"));
    let (cfg, sock) = write_config(
        &dir,
        "users:\n  - {name: alice, password: wonderland}\n  - {name: bob, password: builder}\n",
    );
    let check = Command::new(bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "check-config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let pac_log = dir.join("pac.log");
    let _pac = Kill(
        Command::new(bin())
            .args(["pac", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "pptp_nas=debug")
            .stderr(std::fs::File::create(&pac_log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(&sock);
    // The line comes up idle.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = status_json(&sock);
        if st["lines"][0]["state"] == "idle" {
            break;
        }
        assert!(Instant::now() < deadline, "line not idle: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Call 1: alice authenticates, gets a pool address, 3 pings answered.
    let (code, err) = dial_and_ppp(&dir.join("client0"), "alice:wonderland").await;
    let pac = std::fs::read_to_string(&pac_log).unwrap_or_default();
    assert_eq!(code, 0, "ppp client failed:\n{err}\n--- pac log ---\n{pac}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("ok"), "{last}");
    assert!(err.contains("10.77.0.10"), "address from the pool: {err}");
    assert!(pac.contains("terminate: authenticated"), "{pac}");
    assert!(pac.contains("alice"), "{pac}");

    // The client closed PPP: the PAC hangs up and the line returns to idle.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = status_json(&sock);
        if st["lines"][0]["state"] == "idle" && st["lines"][0]["calls"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "line not back to idle: {st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Call 2: a wrong password fails authentication cleanly, and the line is idle again.
    let (code, err) = dial_and_ppp(&dir.join("client0"), "bob:wrong").await;
    assert_ne!(code, 0, "a wrong password must fail: {err}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = status_json(&sock);
        if st["lines"][0]["state"] == "idle" && st["lines"][0]["calls"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "line not back to idle: {st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
