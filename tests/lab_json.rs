//! `pptp-nas lab` as a separate process: soft-modem ptys, the real PAC, the real PNS daemon and
//! the dial-in clients in one process, real time. The default run prints every stage and exits
//! 0 well under 30 s; `--json` prints exactly one JSON object with the fields issue 8 lists;
//! 50 clients work; raw GRE works (root); bad flags, a wrong password, a carrier drop and bit
//! errors end with the documented exit codes and no panic.

use std::process::Command;
use std::time::{Duration, Instant};

fn lab(args: &[&str]) -> (i32, String, String, Duration) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_pptp-nas"))
        .arg("lab")
        .args(args)
        .output()
        .expect("run pptp-nas lab");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed(),
    )
}

/// The number after `"key": ` in a JSON text.
fn field(json: &str, key: &str) -> Option<u64> {
    json.split(&format!("\"{key}\": "))
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn default_run_prints_every_stage_in_order_and_exits_0() {
    let (code, stdout, stderr, took) = lab(&[]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    // One line per stage. Each component's lines come in the order the call goes through
    // them; lines from different components may interleave (the PAC is polled).
    let in_order = |stages: &[&str]| {
        let mut at = 0;
        for s in stages {
            let pos = stdout[at..]
                .find(s)
                .unwrap_or_else(|| panic!("stage {s:?} missing after byte {at}:\n{stdout}"));
            at += pos;
        }
    };
    // The client is `pptp-nas dial`'s library function: it reports when its call is over.
    in_order(&[
        "client: pptp-nas dial: dialling ATDT5551234",
        "PNS: IPCP opened",
        "client: CONNECT 33600 was answered",
        "client: link was mschapv2, MPPE 128-bit stateful, MPPC on, 192.168.77.10 -> 192.168.77.9",
        "client: pings 5/5 answered",
        "client: throughput ",
        "client: hang-up (LCP Terminate, +++ ATH0): hung up",
    ]);
    in_order(&[
        "PNS: ICRQ from caller 5550000, accepted (ICRP",
        "PNS: ICCN, call up",
        "PNS: LCP opened, authenticating with mschapv2",
        "PNS: user \"alice\" authenticated",
        "PNS: CCP opened: MPPE 128-bit stateful, MPPC on",
        "PNS: IPCP opened",
        "PNS: call 16384 over, CDN",
    ]);
    in_order(&[
        "PAC: RING, caller 5550000; ICRQ sent",
        "PAC: ICRP accept, answer",
        "PAC: CONNECT 33600, ICCN sent",
        "PAC: call over (CDN",
    ]);
    assert!(stdout.contains("result: OK"), "{stdout}");
    assert!(stdout.contains("mschapv2   128 stateful  on   192.168.77.10       5/5"));
    // Not a terminal: the throughput progress comes as plain lines on stderr.
    assert!(stderr.contains("pings + throughput: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn default_json_run_succeeds() {
    let (code, stdout, stderr, took) = lab(&["--json", "--duration", "1"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(took < Duration::from_secs(30));
    assert_eq!(stdout.lines().count(), 1, "exactly one JSON line: {stdout}");
    let line = stdout.trim();
    assert!(line.starts_with("{\"ok\": true, \"clients\": [{"), "{line}");
    for key in [
        "\"auth\": \"mschapv2\"",
        "\"mppe_bits\": 128",
        "\"stateless\": false",
        "\"mppc\": true",
        "\"local_ip\": \"192.168.77.10\"",
        "\"peer_ip\": \"192.168.77.9\"",
        "\"pings_sent\": 5",
        "\"pings_received\": 5",
        "\"rtt_ms_median\": ",
        "\"throughput_kbps\": ",
        "\"compression_ratio\": ",
        "\"errors\": []",
        "\"pac\": {\"calls\": 1",
        "\"pns\": {\"connections\": 1, \"calls_accepted\": 1",
        "\"auth_ok\": 1",
        "\"icmp_echo\": ",
    ] {
        assert!(line.contains(key), "{key} missing: {line}");
    }
    assert!(line.ends_with("}}"));
    // MPPC compresses the text-like bulk stream; the stream got through.
    let ratio: f64 = line
        .split("\"compression_ratio\": ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(ratio > 1.5, "{line}");
    // MPPC carries more IP than the 33600 bit/s line does (about 2.6x); a PNS that does not
    // acknowledge a stream it does not answer stalls the PAC's send window (33 kbit/s).
    let kbps: f64 = line
        .split("\"throughput_kbps\": ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(kbps > 50.0, "{line}");
    assert!(field(line, "discard_octets").unwrap() > 5_000, "{line}");
    // The stages went to stderr.
    assert!(stderr.contains("PNS: IPCP opened"), "{stderr}");
    assert!(stderr.contains("client: link was mschapv2"), "{stderr}");
}

#[test]
fn policy_matrix_in_one_process() {
    for args in [
        ["--auth", "pap", "--mppe", "none", "--mppc", "off"].as_slice(),
        &["--auth", "chap", "--mppe", "none", "--mppc", "on"],
        &["--auth", "mschap", "--mppe", "40", "--stateless"],
        &["--auth", "mschap", "--mppe", "128", "--mppc", "off"],
        &[
            "--auth",
            "mschapv2",
            "--mppe",
            "56",
            "--stateless",
            "--mppc",
            "off",
        ],
        &["--auth", "mschapv2", "--mppe", "40"],
    ] {
        let mut a = args.to_vec();
        a.extend([
            "--json",
            "--duration",
            "0.5",
            "--clients",
            "2",
            "--pings",
            "2",
        ]);
        let (code, stdout, stderr, _) = lab(&a);
        assert_eq!(code, 0, "{args:?}: {stdout}\n{stderr}");
        assert!(stdout.contains("\"ok\": true"), "{args:?}: {stdout}");
        assert_eq!(field(&stdout, "calls_up"), Some(2), "{stdout}");
    }
}

#[test]
fn mppe_without_ms_chap_is_bad_usage() {
    // MPPE keys come from MS-CHAP: PAP or CHAP with MPPE cannot work, and is refused up front.
    for auth in ["pap", "chap"] {
        let (code, stdout, stderr, _) = lab(&["--json", "--auth", auth, "--mppe", "128"]);
        assert_eq!(code, 2, "{stdout}{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains("pptp-nas lab: --mppe 128 needs keys from MS-CHAP"),
            "{stderr}"
        );
    }
}

#[test]
fn wrong_password_fails_with_exit_1_and_the_reason() {
    let (code, stdout, stderr, _) = lab(&["--json", "--password", "guess", "--duration", "0"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("{\"ok\": false"), "{stdout}");
    assert_eq!(field(&stdout, "auth_failed"), Some(1), "{stdout}");
    // Both sides say why: the PNS's reason and dial's authentication-failure exit code (5).
    assert!(
        stdout.contains("dial (exit 5): authentication failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PNS refused the authentication: authentication failed: wrong password for user \\\"alice\\\""),
        "{stdout}"
    );
    assert!(!stderr.contains("guess"), "no password in logs: {stderr}");
}

#[test]
fn wrong_password_throttle_is_visible_in_log_and_json() {
    let (code, stdout, stderr, _) = lab(&[
        "--clients",
        "8",
        "--password",
        "guess",
        "--duration",
        "0",
        "--json",
    ]);
    assert_eq!(code, 1);
    let failed = field(&stdout, "auth_failed").unwrap();
    let locked = field(&stdout, "auth_refused_locked").unwrap();
    assert_eq!(failed, 8, "{stdout}");
    assert!(field(&stdout, "auth_lockouts").unwrap() >= 1, "{stdout}");
    // Five failures lock alice out; the callers after that are refused unchecked.
    assert!(locked >= 1, "{stdout}");
    assert!(stderr.contains("locked out"), "{stderr}");
    assert!(!stderr.contains("guess"), "no password in logs: {stderr}");
}

#[test]
fn carrier_drop_ends_cleanly() {
    let (code, stdout, stderr, _) = lab(&["--drop-after", "0.8", "--duration", "2"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("CDN"), "{stdout}");
    assert!(
        stdout.contains("dial (exit 9): carrier lost during the call"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PNS: 1 calls accepted, 1 ended"),
        "{stdout}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        ["--auth", "kerberos"].as_slice(),
        &["--mppe", "64"],
        &["--mppc", "maybe"],
        &["--ber", "2"],
        &["--clients", "0"],
        &["--clients", "201"],
    ] {
        let (code, _, stderr, _) = lab(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("pptp-nas lab:"), "{stderr}");
    }
}

#[test]
fn fifty_clients() {
    let (code, stdout, stderr, took) = lab(&["--clients", "50", "--json", "--duration", "1"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("{\"ok\": true"));
    assert_eq!(stdout.matches("\"pings_received\": 5").count(), 50);
    assert_eq!(stdout.matches("\"errors\": []").count(), 50);
    assert_eq!(field(&stdout, "calls"), Some(50), "{stdout}");
    assert_eq!(field(&stdout, "calls_ended"), Some(50), "{stdout}");
    assert_eq!(field(&stdout, "auth_ok"), Some(50), "{stdout}");
    for i in 10..60 {
        assert!(
            stdout.contains(&format!("\"local_ip\": \"192.168.77.{i}\"")),
            "{i}: {stdout}"
        );
    }
    assert!(took < Duration::from_secs(60), "{took:?}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn raw_gre_between_two_loopback_addresses() {
    assert!(
        is_root(),
        "this test needs root (raw GRE sockets, CAP_NET_RAW); CI runs it as root"
    );
    let (code, stdout, stderr, _) = lab(&["--raw-gre", "--json", "--duration", "1"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("{\"ok\": true"), "{stdout}");
    assert!(stderr.contains("raw GRE"), "{stderr}");
    assert!(field(&stdout, "gre_delivered").unwrap() > 10, "{stdout}");
    assert_eq!(field(&stdout, "gre_dropped"), Some(0), "{stdout}");
}

#[test]
fn bit_errors_end_cleanly() {
    // 1e-5 on a 33600 bit/s line: a few HDLC frames lost over the run; MPPE resyncs (CCP
    // Reset-Request) and a lost ping is not retried, so the run is either fully OK or fails
    // cleanly with the reason; every call that came up also ended, and nothing panics.
    let (code, stdout, stderr, _) = lab(&[
        "--ber",
        "1e-5",
        "--duration",
        "5",
        "--clients",
        "2",
        "--json",
    ]);
    assert!(code == 0 || code == 1, "{code}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert_eq!(field(&stdout, "calls_up"), Some(2), "{stdout}");
    assert_eq!(field(&stdout, "calls_ended"), Some(2), "{stdout}");
    // Then the next run on fresh lines works.
    let (code, stdout, _, _) = lab(&["--json", "--duration", "0"]);
    assert_eq!(code, 0, "{stdout}");
}

/// `pptp-nas lab ARGS` as user nobody (no capabilities), via util-linux `setpriv`; needs root.
fn lab_as_nobody(args: &[&str]) -> (i32, String, String) {
    assert!(
        is_root(),
        "this test needs root (to drop to user nobody with setpriv); CI runs it as root"
    );
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_pptp-nas"))
        .arg("lab")
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("setpriv (util-linux) is needed for this test");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn runs_without_root_and_raw_gre_without_privileges_exits_3() {
    // The lab needs no root and no file from the checkout (run from the temp directory).
    let (code, stdout, stderr) = lab_as_nobody(&["--json", "--duration", "0.5"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("{\"ok\": true"), "{stdout}");
    // Raw GRE without CAP_NET_RAW: a clear message and the setup exit code.
    let (code, stdout, stderr) = lab_as_nobody(&["--raw-gre", "--json"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("{\"ok\": false"), "{stdout}");
    assert!(
        stdout.contains("\"setup_error\": \"--raw-gre: raw GRE socket on 127."),
        "{stdout}"
    );
    assert!(stderr.contains("needs root or CAP_NET_RAW"), "{stderr}");
}
