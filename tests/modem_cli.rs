//! `pptp-nas softmodem` as a process: symlinks, a call between two lines' ends, carrier drop
//! after --drop-after, and SIGTERM cleanup.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pptp_nas::io::line::open_serial;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialStream;

async fn expect(dev: &mut SerialStream, want: &str, within: Duration) -> String {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains(want) {
        match tokio::time::timeout_at(deadline, dev.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!(
                "{want:?}: {other:?} after {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn softmodem_process_call_drop_and_cleanup() {
    let dir: PathBuf = std::env::temp_dir().join(format!("pptp-nas-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_pptp-nas"))
        .args(["softmodem", "--dir"])
        .arg(&dir)
        .args([
            "--lines",
            "2",
            "--caller-id",
            "5551234",
            "--drop-after",
            "1",
        ])
        .args(["--ring-interval", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        lines.push(l.trim().to_string());
    }
    assert_eq!(
        lines,
        vec![
            format!(
                "{} {}",
                dir.join("client0").display(),
                dir.join("nas0").display()
            ),
            format!(
                "{} {}",
                dir.join("client1").display(),
                dir.join("nas1").display()
            ),
        ]
    );
    for name in ["client0", "nas0", "client1", "nas1"] {
        let target = std::fs::read_link(dir.join(name)).unwrap();
        assert!(target.starts_with("/dev/pts"), "{target:?}");
    }

    let mut client = open_serial(&dir.join("client1"), 115_200, false).unwrap();
    let mut nas = open_serial(&dir.join("nas1"), 115_200, false).unwrap();
    nas.write_all(b"ATE0+VCID=1\r").await.unwrap();
    expect(&mut nas, "OK", Duration::from_secs(2)).await;
    client.write_all(b"ATE0DT123\r").await.unwrap();
    let ring = expect(&mut nas, "NMBR = 5551234", Duration::from_secs(2)).await;
    assert!(ring.contains("RING"));
    nas.write_all(b"ATA\r").await.unwrap();
    expect(&mut nas, "CONNECT 33600", Duration::from_secs(2)).await;
    expect(&mut client, "CONNECT 33600", Duration::from_secs(2)).await;
    let t = Instant::now();
    client.write_all(b"ping").await.unwrap();
    expect(&mut nas, "ping", Duration::from_secs(2)).await;
    // --drop-after 1: both ends lose carrier about a second after CONNECT.
    expect(&mut client, "NO CARRIER", Duration::from_secs(3)).await;
    expect(&mut nas, "NO CARRIER", Duration::from_secs(1)).await;
    let waited = t.elapsed();
    assert!(
        waited > Duration::from_millis(700) && waited < Duration::from_millis(2000),
        "{waited:?}"
    );

    // SIGTERM removes the symlinks.
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "softmodem did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for name in ["client0", "nas0", "client1", "nas1"] {
        assert!(
            std::fs::symlink_metadata(dir.join(name)).is_err(),
            "{name} left behind"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
