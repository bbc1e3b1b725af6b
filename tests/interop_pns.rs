//! Scenario b of issue 9: real pptp-linux (`pptp --nolaunchpppd`, with `pptp-nas ppp` in the
//! client role on its fd 0) calls our `pptp-nas pns` over TCP and raw GRE. MS-CHAPv2, MPPE and
//! MPPC come up and pings are answered by the PNS responder; SIGTERM to pptp clears the call
//! on our PNS, which its log shows; pptp-linux never sends Stop-Control-Connection-Request and
//! the PNS cleans up on the TCP close alone (the pool address comes back). Broken variants
//! (wrong password, MPPE refused) show the reason in our logs and the call teardown in
//! pptp-linux's own log, captured from /dev/log.
//!
//! Needs root and the packages `.ci/run` installs; fails (does not skip) without them.

mod common;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    first_gre_seq, is_subsequence, pptp_types, require_tools, serial, signal, spawn_group,
    tshark_fields, tshark_gate, wait_child, wait_count, wait_listening, Guard,
};

/// Loopback addresses unique to this run: 127.90.x.y our PNS, 127.91.x.y pptp-linux.
fn addrs() -> (String, String) {
    common::addr_pair(90, 91)
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pptp-nas"))
}

/// Starts `pptp-nas pns` on `addr`:1723 (log in `pns.log`); returns its index in `g.groups`.
fn start_pns(g: &mut Guard, addr: &str, flags: &[&str]) -> usize {
    let log = std::fs::File::create(g.dir.join("pns.log")).unwrap();
    let c = spawn_group(
        Command::new(bin())
            .args(["pns", "--listen", &format!("{addr}:1723")])
            .args(["--pool", "192.168.77.10-192.168.77.50", "--responder"])
            .args(flags)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log)),
    );
    g.groups.push(c);
    let i = g.groups.len() - 1;
    wait_listening(addr, 1723);
    assert!(
        g.groups[i].try_wait().ok().flatten().is_none(),
        "pns exited at start: {}",
        g.read("pns.log")
    );
    i
}

/// One call: pptp-linux from `client_addr` to `server`, our PPP client (`flags`) on its fd 0
/// through a socketpair. Returns (index of pptp in `g.groups`, index of the client in
/// `g.children`); the client writes `NAME.result` and `NAME.log`.
fn start_call(
    g: &mut Guard,
    server: &str,
    client_addr: &str,
    name: &str,
    flags: &[&str],
) -> (usize, usize) {
    let (a, b) = UnixStream::pair().unwrap();
    let pptp = spawn_group(
        Command::new("/usr/sbin/pptp")
            .args([
                server,
                "--nolaunchpppd",
                "--nohostroute",
                "--localbind",
                client_addr,
                "--loglevel",
                "2",
                "--idle-wait",
                "2",
            ])
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(a)))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    g.groups.push(pptp);
    let b2 = b.try_clone().unwrap();
    let client = Command::new(bin())
        .args([
            "ppp",
            "--stdio",
            "--role",
            "client",
            "--connect-timeout",
            "20",
        ])
        .args(flags)
        .arg("--result-file")
        .arg(g.dir.join(format!("{name}.result")))
        .arg("--log-file")
        .arg(g.dir.join(format!("{name}.log")))
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(b)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(b2)))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    g.children.push(client);
    (g.groups.len() - 1, g.children.len() - 1)
}

/// Everything worth showing when an assertion fails.
fn logs(g: &Guard, names: &[&str]) -> String {
    let mut s = String::new();
    for n in names {
        s += &format!(
            "--- {n}.result\n{}--- {n}.log\n{}\n",
            g.read(&format!("{n}.result")),
            g.read(&format!("{n}.log"))
        );
    }
    format!(
        "{s}--- pns.log\n{}\n--- syslog (pptp-linux)\n{}",
        g.read("pns.log"),
        g.syslog_text()
    )
}

/// SIGTERM to the PNS: it must stop with exit 0 and log its GRE counters.
fn stop_pns(g: &mut Guard, pns: usize) {
    signal(g.groups[pns].id(), "-TERM");
    let code = wait_child(&mut g.groups[pns], Duration::from_secs(10));
    assert_eq!(code, Some(0), "pns on SIGTERM: {}", g.read("pns.log"));
    assert!(
        g.read("pns.log").contains("pns stopped"),
        "{}",
        g.read("pns.log")
    );
}

/// Scenario b: MS-CHAPv2 + MPPE-128 + MPPC, five pings; then a second call that is cleared by
/// SIGTERM to pptp. tshark judges both calls.
#[test]
fn pptp_linux_to_pns_mschapv2_mppe128_mppc_and_sigterm_clears() {
    let _l = serial();
    require_tools();
    let (s, c) = addrs();
    let mut g = Guard::new("b128");
    let pns_log = g.dir.join("pns.log");
    g.listen_syslog();
    let cap = g.start_tshark(&format!("host {s} and (tcp port 1723 or ip proto 47)"));
    let pns = start_pns(
        &mut g,
        &s,
        &["--user", "alice:secret", "--mppe", "128", "--mppc", "on"],
    );
    let ours = ["--user", "alice:secret", "--mppe", "128", "--mppc", "on"];

    // Call 1: five pings, then our client closes the link and exits; pptp-linux sees fd 0
    // close and clears the call (Call-Clear-Request), then closes TCP.
    let mut flags = ours.to_vec();
    flags.extend(["--ping", "5"]);
    let (pptp1, cl1) = start_call(&mut g, &s, &c, "call1", &flags);
    let code = wait_child(&mut g.children[cl1], Duration::from_secs(30));
    let all = logs(&g, &["call1"]);
    assert_eq!(code, Some(0), "{all}");
    let line = g.read("call1.result");
    assert!(
        line.starts_with("pptp-nas ppp: ok user=alice mppe=128 mppc=on stateless=false")
            && line.contains("ip=192.168.77.10->192.168.77.9")
            && line.contains("pings=5/5"),
        "{all}"
    );
    assert!(
        wait_count(
            &pns_log,
            "control connection ended",
            1,
            Duration::from_secs(10)
        ),
        "{all}"
    );
    let _ = wait_child(&mut g.groups[pptp1], Duration::from_secs(5));
    let pns_text = g.read("pns.log");
    let all = logs(&g, &["call1"]);
    assert!(pns_text.contains("OCRQ, connecting"), "{all}");
    assert!(pns_text.contains("authenticated user=alice"), "{all}");
    assert!(
        pns_text.contains("echo=5"),
        "responder counted 5 echoes: {all}"
    );
    assert!(pns_text.contains("call down end=ClearedByPeer"), "{all}");
    // pptp-linux's own view.
    assert!(
        g.syslog_text().contains("Outgoing call established"),
        "{all}"
    );

    // Call 2: the link stays up until SIGTERM to pptp: Call-Clear-Request, our CDN, TCP
    // closed by pptp-linux without Stop-Control-Connection-Request.
    let (pptp2, cl2) = start_call(&mut g, &s, &c, "call2", &ours);
    assert!(
        wait_count(
            &g.dir.join("call2.log"),
            "link up: network layer open",
            1,
            Duration::from_secs(20)
        ),
        "{}",
        logs(&g, &["call2"])
    );
    signal(g.groups[pptp2].id(), "-TERM");
    assert!(
        wait_count(
            &pns_log,
            "call down end=ClearedByPeer",
            2,
            Duration::from_secs(10)
        ),
        "SIGTERM to pptp did not clear the call on the PNS: {}",
        logs(&g, &["call2"])
    );
    assert!(
        wait_count(
            &pns_log,
            "control connection ended",
            2,
            Duration::from_secs(10)
        ),
        "{}",
        logs(&g, &["call2"])
    );
    let code = wait_child(&mut g.children[cl2], Duration::from_secs(10));
    let all = logs(&g, &["call1", "call2"]);
    assert_eq!(code, Some(0), "client after pptp went away: {all}");
    assert_eq!(
        wait_child(&mut g.groups[pptp2], Duration::from_secs(10)),
        Some(0),
        "pptp after SIGTERM: {all}"
    );
    let pns_text = g.read("pns.log");
    // No Stop-Control-Connection from pptp-linux: the TCP close alone ended the connection,
    // and the call's pool address came back (both calls got the first one).
    assert_eq!(
        pns_text
            .matches("control connection closed reason=TcpClosed")
            .count(),
        2,
        "{all}"
    );
    assert_eq!(
        pns_text.matches("ip=192.168.77.10").count(),
        2,
        "pool address returned after each call: {all}"
    );
    assert!(
        g.syslog_text()
            .contains("Call disconnect notification received")
            || g.syslog_text().contains("Closing connection"),
        "{all}"
    );
    stop_pns(&mut g, pns);
    g.stop_tshark();

    // The capture: tshark's gate, then the message sequence of both control connections.
    let bad = tshark_gate(&cap);
    assert!(bad.trim().is_empty(), "tshark gate: {bad}");
    let types = pptp_types(&cap);
    assert!(
        is_subsequence(&[1, 2, 7, 8, 12, 13, 1, 2, 7, 8, 12, 13], &types),
        "types {types:?}"
    );
    assert!(
        !types.contains(&3),
        "pptp-linux sent Stop-Control-Connection-Request after all: {types:?}"
    );
    // Our OCRP connected the call; our CDN answers the Call-Clear-Request.
    let ocrp = tshark_fields(&cap, &["pptp.out_result"], "pptp.control_message_type == 8");
    assert!(
        ocrp.lines().all(|l| l.trim() == "1") && ocrp.lines().count() == 2,
        "OCRP results {ocrp:?}"
    );
    // Our CDNs answer pptp-linux's Call-Clear-Requests: Result Code 4 (Request).
    let cdn = tshark_fields(
        &cap,
        &["ip.src", "pptp.disc_result"],
        "pptp.control_message_type == 13",
    );
    assert!(
        cdn.lines().all(|l| l.trim() == format!("{s}\t4")),
        "CDN senders and results {cdn:?}"
    );
    // PPP inside GRE: LCP, MS-CHAPv2, CCP, IPCP, then compressed/encrypted datagrams.
    let protos: Vec<String> = tshark_fields(&cap, &["ppp.protocol"], "ppp")
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
    // Our GRE starts at sequence number 0; pptp-linux's at 1, which our PNS accepted as its
    // first packet (the pings went through).
    assert_eq!(first_gre_seq(&cap, &s), Some(0));
    assert_eq!(first_gre_seq(&cap, &c), Some(1));
}

/// Variant: stateless MPPE-40 without MPPC.
#[test]
fn pptp_linux_to_pns_stateless_mppe40() {
    let _l = serial();
    require_tools();
    let (s, c) = addrs();
    let mut g = Guard::new("b40");
    let pns = start_pns(
        &mut g,
        &s,
        &[
            "--user",
            "bob:pw",
            "--mppe",
            "40",
            "--stateless",
            "--mppc",
            "off",
        ],
    );
    let (_, cl) = start_call(
        &mut g,
        &s,
        &c,
        "call",
        &[
            "--user",
            "bob:pw",
            "--mppe",
            "40",
            "--stateless",
            "--mppc",
            "off",
            "--ping",
            "3",
        ],
    );
    let code = wait_child(&mut g.children[cl], Duration::from_secs(30));
    let all = logs(&g, &["call"]);
    assert_eq!(code, Some(0), "{all}");
    let line = g.read("call.result");
    assert!(
        line.starts_with("pptp-nas ppp: ok user=bob mppe=40 mppc=off stateless=true")
            && line.contains("pings=3/3"),
        "{all}"
    );
    assert!(
        wait_count(
            &g.dir.join("pns.log"),
            "call down end=ClearedByPeer",
            1,
            Duration::from_secs(10)
        ),
        "{all}"
    );
    assert!(g.read("pns.log").contains("echo=3"), "{all}");
    stop_pns(&mut g, pns);
}

/// Deliberately broken: wrong password. Our client and our PNS say so; pptp-linux's own log
/// (from /dev/log) shows the call disconnected by our side.
#[test]
fn pptp_linux_to_pns_wrong_password_in_both_logs() {
    let _l = serial();
    require_tools();
    let (s, c) = addrs();
    let mut g = Guard::new("bbad");
    g.listen_syslog();
    let pns = start_pns(&mut g, &s, &["--user", "alice:secret"]);
    let (_, cl) = start_call(
        &mut g,
        &s,
        &c,
        "call",
        &["--user", "alice:wrong", "--ping", "1"],
    );
    let code = wait_child(&mut g.children[cl], Duration::from_secs(30));
    // pptp-linux's call manager logs "Closing connection" however the call ended.
    assert!(
        g.wait_syslog("Closing connection", Duration::from_secs(10)),
        "{}",
        logs(&g, &["call"])
    );
    let all = logs(&g, &["call"]);
    assert_eq!(code, Some(1), "{all}");
    // Our client quotes the authenticator's MS-CHAPv2 Failure.
    assert!(
        g.read("call.result")
            .contains("FAILED (authentication failed: rejected by the authenticator: E=691"),
        "{all}"
    );
    let pns_text = g.read("pns.log");
    assert!(
        pns_text.contains("authentication failed user=alice")
            && pns_text.contains(
                "PPP down reason=authentication failed: wrong password for user \"alice\""
            ),
        "{all}"
    );
    // pptp-linux carries PPP without reading it, so its log shows the tunnel side of the
    // refusal: the call was up, then either its PPP program (our client, done after the
    // Failure) closed fd 0 and it cleared the call, or our PNS's Call-Disconnect-Notify
    // (sent 0.5 s after PPP went down) came first. Which one wins is a race.
    let sys = g.syslog_text();
    assert!(sys.contains("Outgoing call established"), "{all}");
    let by_client = sys.contains("short read (0)")
        && sys.contains("Sent control packet type is 12 'Call-Clear-Request'")
        && pns_text.contains("call down end=ClearedByPeer");
    let by_pns = sys.contains("Call disconnect notification received")
        && sys.contains("Result code is 1 'Lost Carrier'")
        && pns_text.contains("call down end=Local");
    assert!(by_client || by_pns, "{all}");
    stop_pns(&mut g, pns);
}

/// Deliberately broken: the PNS requires MPPE-128, our client refuses MPPE.
#[test]
fn pptp_linux_to_pns_mppe_refused_in_both_logs() {
    let _l = serial();
    require_tools();
    let (s, c) = addrs();
    let mut g = Guard::new("bnomppe");
    g.listen_syslog();
    let pns = start_pns(&mut g, &s, &["--user", "alice:secret", "--mppe", "128"]);
    let (_, cl) = start_call(
        &mut g,
        &s,
        &c,
        "call",
        &[
            "--user",
            "alice:secret",
            "--mppe",
            "none",
            "--mppc",
            "off",
            "--ping",
            "1",
        ],
    );
    let code = wait_child(&mut g.children[cl], Duration::from_secs(30));
    assert!(
        g.wait_syslog(
            "Call disconnect notification received",
            Duration::from_secs(10)
        ),
        "{}",
        logs(&g, &["call"])
    );
    let all = logs(&g, &["call"]);
    assert_eq!(code, Some(1), "{all}");
    let pns_text = g.read("pns.log");
    assert!(pns_text.contains("authenticated user=alice"), "{all}");
    assert!(
        pns_text.contains(
            "PPP down reason=MPPE required but CCP negotiation failed (no answer or rejected)"
        ),
        "{all}"
    );
    assert!(pns_text.contains("call down end=Local"), "{all}");
    // Our client: the line closed after authentication, and it says why that likely was.
    assert!(
        g.read("call.result").contains(
            "FAILED (peer closed the line after authentication, before CCP came up: it \
             probably requires encryption or compression we do not accept (we refuse MPPE))"
        ),
        "{all}"
    );
    // pptp-linux: the call was established, then our Call-Disconnect-Notify ended it.
    let sys = g.syslog_text();
    assert!(sys.contains("Outgoing call established"), "{all}");
    assert!(sys.contains("Result code is 1 'Lost Carrier'"), "{all}");
    stop_pns(&mut g, pns);
}
