//! End to end with the project's own processes only: `pptp-nas softmodem` + `pptp-nas pac`
//! (incoming-call mode) + `pptp-nas pns --responder` on loopback (raw GRE, so root like CI),
//! and `pptp-nas dial` on the soft-modem's client pty (`ATDT`, then PPP in async HDLC). The
//! client authenticates at the PNS (MS-CHAPv2, MPPE-128 and MPPC end to end through the PAC)
//! and pings the PNS's responder; then it hangs up, the call ends and the PAC's line returns
//! to idle.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

mod common;
use common::procs::{bin, require_root, status_json, wait_for, Kill};

/// Loopback addresses unique to this test process (PAC, PNS).
fn addrs() -> (String, String) {
    let pid = std::process::id();
    let b = (pid >> 8) % 250 + 1;
    let c = pid % 250 + 1;
    (format!("127.79.{b}.{c}"), format!("127.80.{b}.{c}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_in_through_pac_to_own_pns_authenticates_and_pings() {
    require_root();
    let (pac_ip, pns_ip) = addrs();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("pptp-nas-pac-e2e-{}", std::process::id()));
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
    let pns_log = dir.join("pns.log");
    let _pns = Kill(
        Command::new(bin())
            .args([
                "pns",
                "--listen",
                &format!("{pns_ip}:1723"),
                "--user",
                "alice:wonderland",
                "--responder",
            ])
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&pns_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let sock = dir.join("pac.sock");
    let cfg = dir.join("pac.yaml");
    std::fs::write(
        &cfg,
        format!(
            "pac:\n  host_name: e2e-pac\n  hardware_dir: {hw}\n  status_socket: {sock}\n  local_address: {pac_ip}\n\
             pns:\n  - {{name: own, address: {pns_ip}, mode: incoming-call, reconnect_min_s: 1, reconnect_max_s: 2}}\n\
             lines:\n  - {{id: sm0, device: {dev}, type: modem, profile: softmodem, number: \"5550100\", offer_on_ring: 2}}\n\
             default: {{pns: [own]}}\n",
            hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware").display(),
            sock = sock.display(),
            dev = dir.join("nas0").display(),
        ),
    )
    .unwrap();
    let pac_log = dir.join("pac.log");
    let _pac = Kill(
        Command::new(bin())
            .args(["pac", "--config"])
            .arg(&cfg)
            .stderr(std::fs::File::create(&pac_log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(&sock);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = status_json(&sock);
        if st["lines"][0]["state"] == "idle"
            && st["lines"][0]["modem"] == "Idle"
            && st["pns"][0]["up"] == true
        {
            break;
        }
        assert!(Instant::now() < deadline, "PAC not ready: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The dial-in client: `pptp-nas dial` on the client pty (ATDT, then PPP in async HDLC),
    // MPPE-128 and MPPC required, 3 pings to the PNS's responder, then it hangs up.
    let out = tokio::process::Command::new(bin())
        .args(["dial", "--device"])
        .arg(dir.join("client0"))
        .args([
            "--number",
            "5550100",
            "--user",
            "alice:wonderland",
            "--mppe",
            "128",
            "--mppc",
            "on",
            "--ping",
            "3",
            "--json",
        ])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("dial finished in time")
        .unwrap();
    let pac = std::fs::read_to_string(&pac_log).unwrap_or_default();
    let pns = std::fs::read_to_string(&pns_log).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pptp-nas dial: {:?}\n{stdout}\n{}\n--- pac ---\n{pac}\n--- pns ---\n{pns}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("dial --json: {e}: {stdout}");
    });
    let text = report.to_string();
    assert!(text.contains("\"pings_received\":3"), "{text}");
    assert!(text.contains("\"mppe_bits\":128"), "{text}");
    assert!(
        text.contains("192.168.77.10"),
        "the PNS's pool address: {text}"
    );
    assert!(pns.contains("authenticated"), "{pns}");
    // The client closed PPP: the PNS clears the call, the PAC hangs up, the line is idle again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = status_json(&sock);
        if st["lines"][0]["state"] == "idle" && st["lines"][0]["calls"] == 1 {
            assert!(
                st["lines"][0]["to_gre_packets"].as_u64().unwrap() > 5,
                "{st}"
            );
            assert!(
                st["lines"][0]["to_line_packets"].as_u64().unwrap() > 5,
                "{st}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "line not back to idle: {st}\n--- pac ---\n{}",
            std::fs::read_to_string(&pac_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
