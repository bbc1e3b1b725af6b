//! Helpers for tests that run `pptp-nas` daemons as child processes (pac_e2e_pns, pac_terminate,
//! pac_reload): the binary path, a kill-on-drop child, waiting for a socket or pty to appear, the
//! root check for raw GRE, and `pptp-nas status --json`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pptp-nas")
}

pub struct Kill(pub std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_for(path: &Path) {
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

pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        uid, "0",
        "`pptp-nas pac` and `pptp-nas pns` need root (raw GRE sockets); run the tests as root, as .ci/run does"
    );
}

pub fn status_json(sock: &Path) -> serde_json::Value {
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
    serde_json::from_slice(&out.stdout).unwrap()
}
