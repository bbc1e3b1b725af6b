//! `pptp-nas dial` against `pptp-nas softmodem` with nothing on the far end: the dial must end
//! with the documented exit code and a one-line error, in bounded time.
//! - NO ANSWER (the modem's S7 carrier wait of 2 s runs out): exit 4;
//! - no dial result within `--dial-timeout 1`: exit 7;
//! - BUSY (the far modem is off-hook): exit 4;
//! - a device that does not exist: exit 3; bad flags: exit 2.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pptp-nas")
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path) {
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{path:?} never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn softmodem(tag: &str) -> (Kill, PathBuf) {
    let dir = std::env::temp_dir().join(format!("pptp-nas-dial-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sm = Kill(
        Command::new(bin())
            .args(["softmodem", "--lines", "1", "--dir"])
            .arg(&dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&dir.join("client0"));
    wait_for(&dir.join("nas0"));
    (sm, dir)
}

fn dial(dir: &Path, extra: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = Command::new(bin())
        .arg("dial")
        .arg("--device")
        .arg(dir.join("client0"))
        .args(["--number", "5551234", "--user", "alice:secret"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (out, t.elapsed())
}

fn stderr_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .rfind(|l| l.starts_with("pptp-nas dial:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn nothing_answers_no_answer_exit_4() {
    let (_sm, dir) = softmodem("noanswer");
    let (out, took) = dial(
        &dir,
        &["--init", "ATZ", "--init", "AT&FE0V1X4S7=2", "--json"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr_line(&out));
    assert!(
        stderr_line(&out).contains("NO ANSWER"),
        "{}",
        stderr_line(&out)
    );
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(json.lines().count(), 1, "one JSON object: {json}");
    assert!(json.contains("\"ok\": false, \"exit_code\": 4"), "{json}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "S7=2 was waited for: {took:?}"
    );
}

#[test]
fn no_result_in_time_exit_7() {
    let (_sm, dir) = softmodem("timeout");
    // The modem's own S7 is 50 s: our 1 s dial timeout comes first.
    let (out, took) = dial(&dir, &["--dial-timeout", "1"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr_line(&out));
    assert!(
        stderr_line(&out).contains("timeout"),
        "{}",
        stderr_line(&out)
    );
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[test]
fn busy_exit_4() {
    let (_sm, dir) = softmodem("busy");
    // Take the far modem off-hook: callers hear BUSY.
    let mut nas = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("nas0"))
        .unwrap();
    use std::io::Write as _;
    nas.write_all(b"ATH1\r").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (out, _) = dial(&dir, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr_line(&out));
    assert!(stderr_line(&out).contains("BUSY"), "{}", stderr_line(&out));
}

#[test]
fn missing_device_and_bad_flags() {
    let dir = std::env::temp_dir().join(format!("pptp-nas-dial-none-{}", std::process::id()));
    let (out, _) = dial(&dir, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_line(&out));
    assert!(stderr_line(&out).contains("cannot open"));
    let (out, _) = dial(&dir, &["--mppe", "64"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_line(&out).contains("--mppe 64"),
        "{}",
        stderr_line(&out)
    );
}
