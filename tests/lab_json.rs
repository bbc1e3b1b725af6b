//! `pptp-nas lab` as a separate process: `--json` prints exactly one JSON object with the
//! fields issue 8 lists, exit codes follow the outcome, bad flags are refused.

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

#[test]
fn default_json_run_succeeds() {
    let (code, stdout, stderr, took) = lab(&["--json", "--duration", "2"]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(took < Duration::from_secs(30));
    let line = stdout.trim();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "exactly one JSON line: {stdout}"
    );
    assert!(line.starts_with("{\"ok\": true, \"clients\": [{"), "{line}");
    for key in [
        "\"auth\": \"mschapv2\"",
        "\"mppe_bits\": 128",
        "\"stateless\": false",
        "\"mppc\": true",
        "\"local_ip\": \"192.168.77.10\"",
        "\"peer_ip\": \"192.168.77.1\"",
        "\"pings_sent\": 5",
        "\"pings_received\": 5",
        "\"rtt_ms_median\": ",
        "\"throughput_kbps\": ",
        "\"compression_ratio\": ",
        "\"errors\": []",
        "\"pac\": {\"rings\": ",
        "\"pns\": {\"calls_accepted\": 1",
    ] {
        assert!(line.contains(key), "{key} missing: {line}");
    }
    assert!(line.ends_with("}}"));
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
        a.extend(["--json", "--duration", "0.5", "--clients", "2"]);
        let (code, stdout, _, _) = lab(&a);
        assert_eq!(code, 0, "{args:?}: {stdout}");
        assert!(stdout.contains("\"ok\": true"), "{args:?}: {stdout}");
    }
}

#[test]
fn impossible_policy_fails_with_exit_1() {
    // MPPE needs MS-CHAP keys: PAP with MPPE-128 required cannot come up.
    let (code, stdout, _, _) = lab(&["--json", "--auth", "pap", "--mppe", "128"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("\"ok\": false"));
    assert!(stdout.contains("CCP"), "the reason is named: {stdout}");
}

#[test]
fn carrier_drop_ends_cleanly() {
    let (code, stdout, stderr, _) = lab(&["--drop-after", "0.5", "--duration", "1"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("NO CARRIER"), "{stdout}");
    assert!(stdout.contains("CDN"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        ["--auth", "kerberos"].as_slice(),
        &["--mppe", "64"],
        &["--mppc", "maybe"],
        &["--ber", "2"],
        &["--raw-gre"],
    ] {
        let (code, _, stderr, _) = lab(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("pptp-nas lab:"), "{stderr}");
    }
}

#[test]
fn fifty_clients() {
    let (code, stdout, stderr, took) = lab(&["--clients", "50", "--json", "--duration", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("{\"ok\": true"));
    assert_eq!(stdout.matches("\"pings_received\": 5").count(), 50);
    assert!(stdout.contains("\"calls_connected\": 50"));
    assert!(took < Duration::from_secs(30), "{took:?}");
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
    assert!(stdout.contains("\"auth_failed\": 8"), "{stdout}");
    assert!(stdout.contains("\"auth_lockouts\": 1"), "{stdout}");
    assert!(stderr.contains("locked out"), "{stderr}");
    assert!(!stderr.contains("guess"), "no password in logs: {stderr}");
}

#[test]
fn bit_errors_do_not_break_the_chain() {
    // 1e-5 on a 33600 bit/s line: a few HDLC frames lost over the run; MPPE resyncs (CCP
    // Reset-Request), pings may be retried by nobody, so the run is either fully OK or ends
    // cleanly with the reason; every call that connected also ended, and nothing panics.
    for seed_clients in ["1", "4"] {
        let (code, stdout, stderr, _) = lab(&[
            "--ber",
            "1e-5",
            "--duration",
            "10",
            "--clients",
            seed_clients,
            "--json",
        ]);
        assert!(code == 0 || code == 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let connected = stdout
            .split("\"calls_connected\": ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("?");
        let ended = stdout
            .split("\"calls_ended\": ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("!");
        assert_eq!(connected, ended, "every call ended: {stdout}");
        assert_eq!(connected, seed_clients);
    }
}
