//! Interop with real PPTP software (docs/INTEROP.md): pptp-linux (`pptp --nolaunchpppd`) ->
//! pptpd's `pptpctrl` (deterministic socat recipe), with `pptp-nas ppp` at both ends, captured
//! with tshark on lo and judged by it. Needs root and the packages `.ci/run` installs; fails
//! (does not skip) when they are missing.
//!
//! Tests share TCP port 1723, raw GRE and /dev/log, so they run one at a time: a process-wide
//! mutex plus an flock on /tmp/pptp-nas-interop.lock, because other checkouts of this crate may
//! run the same tests on the same machine at the same time.

mod common;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    first_gre_seq, is_subsequence, pptp_types, require_tools, serial, spawn_group, tshark_fields,
    tshark_gate, wait_child, wait_file, wait_listening, Guard,
};

/// Loopback addresses unique to this run: 127.88.x.y server, 127.89.x.y client.
fn addrs() -> (String, String) {
    common::addr_pair(88, 89)
}

struct Scenario<'a> {
    name: &'a str,
    server: &'a str,
    client: &'a [&'a str],
    capture: bool,
}

struct RunResult {
    client_code: Option<i32>,
    client_line: String,
    server_line: String,
    syslog: String,
    cap: Option<PathBuf>,
    guard: Guard,
}

/// pptp (client side, our `ppp` client on its fd 0) -> socat + pptpctrl (our `ppp` server
/// behind it, configured through PPTP_NAS_PPP_CONFIG).
fn run(s: &Scenario) -> RunResult {
    require_tools();
    let (server_addr, client_addr) = addrs();
    let mut g = Guard::new(s.name);
    let dir = g.dir.clone();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_pptp-nas"));
    let prog = dir.join("pptp-nas-ppp");
    std::os::unix::fs::symlink(&bin, &prog).unwrap();
    let opts = dir.join("options");
    std::fs::write(&opts, "").unwrap();
    let conf = dir.join("server.conf");
    let server_result = dir.join("server.result");
    std::fs::write(
        &conf,
        format!(
            "role server\n{}\nresult-file {}\nlog-file {}\n",
            s.server,
            server_result.display(),
            dir.join("server.log").display()
        ),
    )
    .unwrap();
    g.listen_syslog();
    let cap = if s.capture {
        Some(g.start_tshark(&format!(
            "host {server_addr} and (tcp port 1723 or ip proto 47)"
        )))
    } else {
        None
    };
    let ctrl = format!(
        "/usr/sbin/pptpctrl 1 0 1 {} 0 1 192.168.77.1 1 192.168.77.10 4096 {} 0",
        opts.display(),
        prog.display()
    );
    let socat = spawn_group(
        Command::new("socat")
            .arg(format!("TCP-LISTEN:1723,bind={server_addr},reuseaddr,fork"))
            .arg(format!("EXEC:{ctrl},nofork"))
            .env("PPTP_NAS_PPP_CONFIG", &conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    g.groups.push(socat);
    wait_listening(&server_addr, 1723);
    assert!(
        g.groups
            .last_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none()),
        "socat exited: port {server_addr}:1723 taken?"
    );
    let (a, b) = UnixStream::pair().unwrap();
    let pptp = spawn_group(
        Command::new("/usr/sbin/pptp")
            .args([
                server_addr.as_str(),
                "--nolaunchpppd",
                "--nohostroute",
                "--localbind",
                client_addr.as_str(),
                "--loglevel",
                "2",
                "--idle-wait",
                "2",
            ])
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(a)))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let pptp_pid = pptp.id();
    g.groups.push(pptp);
    let client_result = dir.join("client.result");
    let b2 = b.try_clone().unwrap();
    let mut client = Command::new(&bin)
        .args([
            "ppp",
            "--stdio",
            "--role",
            "client",
            "--connect-timeout",
            "20",
        ])
        .args(s.client)
        .arg("--result-file")
        .arg(&client_result)
        .arg("--log-file")
        .arg(dir.join("client.log"))
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(b)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(b2)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client_code = wait_child(&mut client, Duration::from_secs(30));
    g.children.push(client);
    // SIGTERM to pptp: Call-Clear-Request, pptpctrl answers and closes.
    let _ = Command::new("kill")
        .args(["-TERM", &pptp_pid.to_string()])
        .status();
    let server_line = wait_file(&server_result, Duration::from_secs(8));
    std::thread::sleep(Duration::from_millis(300));
    g.stop_tshark();
    RunResult {
        client_code,
        client_line: std::fs::read_to_string(&client_result).unwrap_or_default(),
        server_line,
        syslog: g.syslog_text(),
        cap,
        guard: g,
    }
}

fn logs(r: &RunResult) -> String {
    let rd = |n: &str| std::fs::read_to_string(r.guard.dir.join(n)).unwrap_or_default();
    format!(
        "client: {}\nserver: {}\n--- client.log\n{}\n--- server.log\n{}\n--- syslog\n{}",
        r.client_line,
        r.server_line,
        rd("client.log"),
        rd("server.log"),
        r.syslog
    )
}

/// Scenario c: real pptp-linux -> real pptpd (pptpctrl), our engine at both ends:
/// MS-CHAPv2 + MPPE-128 + MPPC, five pings; tshark judges the capture.
#[test]
fn pptp_linux_to_pptpd_mschapv2_mppe128_mppc() {
    let _l = serial();
    let r = run(&Scenario {
        name: "c128",
        server: "user alice:secret\nmppe 128\nmppc on",
        client: &[
            "--user",
            "alice:secret",
            "--mppe",
            "128",
            "--mppc",
            "on",
            "--ping",
            "5",
        ],
        capture: true,
    });
    let all = logs(&r);
    assert_eq!(r.client_code, Some(0), "{all}");
    assert!(
        r.client_line
            .starts_with("pptp-nas ppp: ok user=alice mppe=128 mppc=on")
            && r.client_line.contains("pings=5/5"),
        "{all}"
    );
    assert!(
        r.server_line
            .starts_with("pptp-nas ppp: ok user=alice mppe=128 mppc=on")
            && r.server_line.contains("answered=5"),
        "{all}"
    );
    // The real peers' own view: pptpd launched our program and pptp saw the call come up.
    assert!(r.syslog.contains("Outgoing call established"), "{all}");
    assert!(r.syslog.contains("Received CALL CLR request"), "{all}");

    let cap = r.cap.as_ref().unwrap();
    // The gate: no malformed frame, no expert warning in PPTP, GRE or PPP.
    let bad = tshark_gate(cap);
    assert!(bad.trim().is_empty(), "tshark gate: {bad}");
    // Control sequence: SCCRQ 1, SCCRP 2, OCRQ 7, OCRP 8, Call-Clear-Request 12; CDN 13 is
    // not sent by pptpd (it closes TCP instead).
    let types = pptp_types(cap);
    assert!(is_subsequence(&[1, 2, 7, 8, 12], &types), "types {types:?}");
    assert!(
        !types.contains(&13),
        "pptpd sent a CDN after all: {types:?}"
    );
    // PPP inside GRE: LCP, CHAP, CCP, IPCP, then compressed/encrypted datagrams.
    let protos: Vec<String> = tshark_fields(cap, &["ppp.protocol"], "ppp")
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let first = |p: &str| protos.iter().position(|x| x == p);
    let seq: Vec<Option<usize>> = ["0xc021", "0xc223", "0x80fd", "0x8021", "0x00fd"]
        .into_iter()
        .map(first)
        .collect();
    assert!(seq.iter().all(Option::is_some), "ppp protocols {protos:?}");
    assert!(
        seq[0] < seq[1] && seq[1] < seq[2] && seq[1] < seq[3] && seq[2] < seq[4],
        "ppp protocols {protos:?}"
    );
    // Behaviour the RFC does not show: pptpd's first GRE sequence number is 0, pptp's is 1.
    let (server_addr, client_addr) = addrs();
    assert_eq!(first_gre_seq(cap, &server_addr), Some(0));
    assert_eq!(first_gre_seq(cap, &client_addr), Some(1));
}

/// Stateless MPPE-40 without MPPC through the same real peers.
#[test]
fn pptp_linux_to_pptpd_stateless_mppe40() {
    let _l = serial();
    let r = run(&Scenario {
        name: "c40",
        server: "user bob:pw\nmppe 40\nmppc off\nstateless",
        client: &[
            "--user",
            "bob:pw",
            "--mppe",
            "40",
            "--mppc",
            "off",
            "--stateless",
            "--ping",
            "3",
        ],
        capture: false,
    });
    let all = logs(&r);
    assert_eq!(r.client_code, Some(0), "{all}");
    assert!(
        r.client_line
            .starts_with("pptp-nas ppp: ok user=bob mppe=40 mppc=off stateless=true")
            && r.client_line.contains("pings=3/3"),
        "{all}"
    );
}

/// Deliberately broken: wrong password. Our client says so clearly, our server names the
/// user, and the real peers' logs show the call torn down.
#[test]
fn pptp_linux_to_pptpd_wrong_password() {
    let _l = serial();
    let r = run(&Scenario {
        name: "cbad",
        server: "user alice:secret",
        client: &["--user", "alice:wrong", "--ping", "1"],
        capture: false,
    });
    let all = logs(&r);
    assert_eq!(r.client_code, Some(1), "{all}");
    // The server's MS-CHAPv2 Failure travels ahead of its Terminate-Request, so the client
    // reports the authenticator's own words.
    assert!(
        r.client_line
            .contains("FAILED (authentication failed: rejected by the authenticator: E=691 R=0"),
        "{all}"
    );
    assert!(
        r.server_line
            .contains("FAILED (authentication failed: wrong password for user \"alice\")"),
        "{all}"
    );
    // The real peers' view: pptpctrl saw its PPP program end and tore the call down by
    // closing TCP (no Call-Disconnect-Notify, a pptpd habit). Both PPP ends now stop as soon
    // as the verdict is known, so either pptp-linux noticed pptpd closing, or its own PPP
    // program ended first and it cleared the call itself.
    assert!(r.syslog.contains("Reaping child PPP"), "{all}");
    let finished = format!("Client {} control connection finished", addrs().1);
    assert!(r.syslog.contains(&finished), "{all}");
    assert!(
        r.syslog.contains("read returned zero, peer has closed")
            || r.syslog
                .contains("Sent control packet type is 12 'Call-Clear-Request'"),
        "{all}"
    );
}

/// Deliberately broken: our client demands MPPE, the server refuses it.
#[test]
fn pptp_linux_to_pptpd_mppe_refused() {
    let _l = serial();
    let r = run(&Scenario {
        name: "cnompe",
        server: "user alice:secret\nmppe none\nmppc off",
        client: &["--user", "alice:secret", "--mppe", "128", "--ping", "1"],
        capture: false,
    });
    let all = logs(&r);
    assert_eq!(r.client_code, Some(1), "{all}");
    assert!(
        r.client_line.contains("FAILED (CCP") || r.client_line.contains("FAILED (MPPE"),
        "{all}"
    );
}
