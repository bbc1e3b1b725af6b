//! SIGHUP reloads the PAC's lines, with the real binaries: `pptp-nas softmodem` (two lines) and
//! `pptp-nas pac` (terminate lines, so no PNS is needed; the daemon opens a raw GRE socket, so
//! the test needs root like CI). Covered: a line added to the file starts; an invalid file is
//! refused with a logged error and the running configuration stays; a line changed while it has
//! a call keeps its call (and old settings) until the call ends, then runs the new settings.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pptp_nas::io::line::open_serial;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

mod common;
use common::procs::{bin, require_root, status_json, wait_for, Kill};

/// The state of line `id` (None when the line is not shown).
fn line_state(sock: &Path, id: &str) -> Option<String> {
    let st = status_json(sock);
    st["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == id)
        .map(|l| l["state"].as_str().unwrap_or_default().to_string())
}

async fn wait_state(sock: &Path, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = line_state(sock, id);
        if s.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "line {id}: {s:?}, want {want}; status {}",
            status_json(sock)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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

fn config(dir: &Path, lines: &[&str]) -> String {
    let mut s = format!(
        "pac:\n  host_name: reload-test\n  hardware_dir: {hw}\n  status_socket: {sock}\n  local_address: 127.0.0.1\n\
         terminate:\n  users: users.yaml\n  pool_start: 10.78.0.10\n  pool_size: 4\n  local_ip: 10.78.0.1\n\
         lines:\n",
        hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware").display(),
        sock = dir.join("pac.sock").display(),
    );
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn line(dir: &Path, id: &str, n: usize, extra: &str) -> String {
    format!(
        "  - {{id: {id}, device: {}, type: modem, profile: softmodem, mode: terminate{extra}}}",
        dir.join(format!("nas{n}")).display()
    )
}

fn hup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_lines_without_calls() {
    require_root();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("pptp-nas-pacreload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _sm = Kill(
        Command::new(bin())
            .args(["softmodem", "--lines", "2", "--speed", "1000000", "--dir"])
            .arg(&dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&dir.join("nas1"));
    std::fs::write(
        dir.join("users.yaml"),
        "users:\n  - {name: alice, password: wonderland}\n",
    )
    .unwrap();
    let cfg = dir.join("pac.yaml");
    let sock = dir.join("pac.sock");
    std::fs::write(&cfg, config(&dir, &[&line(&dir, "sm0", 0, "")])).unwrap();
    let log = dir.join("pac.log");
    let pac = Kill(
        Command::new(bin())
            .args(["pac", "--config"])
            .arg(&cfg)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = pac.0.id();
    wait_for(&sock);
    wait_state(&sock, "sm0", "idle").await;
    assert_eq!(line_state(&sock, "sm1"), None);

    // 1. A line added to the file starts on SIGHUP.
    std::fs::write(
        &cfg,
        config(
            &dir,
            &[&line(&dir, "sm0", 0, ""), &line(&dir, "sm1", 1, "")],
        ),
    )
    .unwrap();
    hup(pid);
    wait_state(&sock, "sm1", "idle").await;

    // 2. An invalid file is refused with a logged error; both lines keep running.
    std::fs::write(
        &cfg,
        config(
            &dir,
            &[&line(&dir, "sm0", 0, ""), &line(&dir, "sm0", 1, "")],
        ),
    )
    .unwrap();
    hup(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("configuration invalid") {
            assert!(text.contains("duplicate line id"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no error logged:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(line_state(&sock, "sm0").as_deref(), Some("idle"));
    assert_eq!(line_state(&sock, "sm1").as_deref(), Some("idle"));

    // 3. A call on sm0; the new file disables sm0 and removes sm1. sm1 goes at once; sm0 keeps
    //    its call until the caller hangs up, then takes the new setting.
    let mut client = open_serial(&dir.join("client0"), 115_200, false).unwrap();
    client.write_all(b"ATE0\r").await.unwrap();
    expect(&mut client, "OK").await;
    client.write_all(b"ATDT5550100\r").await.unwrap();
    expect(&mut client, "CONNECT").await;
    wait_state(&sock, "sm0", "up").await;
    std::fs::write(
        &cfg,
        config(&dir, &[&line(&dir, "sm0", 0, ", enabled: false")]),
    )
    .unwrap();
    hup(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while line_state(&sock, "sm1").is_some() {
        assert!(
            Instant::now() < deadline,
            "sm1 not removed: {}",
            status_json(&sock)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = status_json(&sock);
    let sm0 = st["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "sm0")
        .unwrap()
        .clone();
    assert_eq!(sm0["state"], "up", "the call goes on: {st}");
    assert!(!sm0["call"].is_null(), "{st}");
    // The caller hangs up (escape, then ATH).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client.write_all(b"+++").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client.write_all(b"ATH\r").await.unwrap();
    wait_state(&sock, "sm0", "disabled").await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("keeps its old settings until the call ends"),
        "{text}"
    );
    drop(pac);
}
