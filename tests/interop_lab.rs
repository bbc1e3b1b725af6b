//! Scenario d of issue 9 for the lab: `pptp-nas lab --raw-gre` (soft-modem lines, PAC, PNS
//! and dial-in clients in one process, PAC and PNS on two loopback addresses over raw GRE)
//! captured with tshark on lo; the capture passes the INTEROP.md gate and holds the expected
//! incoming-call sequence and PPP order.
//!
//! The lab picks its addresses from its pid (127.A.B.1 PAC, 127.A.B.2 PNS) and an ephemeral
//! TCP port: the test starts the lab through `sh -c 'read _; exec ...'` so that it knows the
//! pid (and so the capture filter) before the lab sends anything, then checks the address the
//! lab prints. The PPTP dissector is pointed at that port with `-d tcp.port==P,pptp`.
//!
//! Needs root and the packages `.ci/run` installs; fails (does not skip) without them.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{is_subsequence, require_tools, serial, spawn_group, wait_child, Guard};

fn fields(cap: &Path, port: u16, fields: &[&str], filter: &str) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(cap)
        .args(["-d", &format!("tcp.port=={port},pptp")])
        .args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    String::from_utf8_lossy(&cmd.output().expect("tshark -r").stdout).into_owned()
}

#[test]
fn lab_raw_gre_capture_passes_the_gate() {
    let _l = serial();
    require_tools();
    let mut g = Guard::new("dlab");
    // The lab's process: a shell that waits for a line, then becomes the lab (same pid).
    let mut lab = spawn_group(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "read _; exec {} lab --raw-gre --clients 2 --pings 3 --duration 1",
                env!("CARGO_BIN_EXE_pptp-nas")
            ))
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let pid = lab.id();
    let a = 100 + pid % 100;
    let b = (pid / 100) % 250 + 1;
    let (pac, pns) = (format!("127.{a}.{b}.1"), format!("127.{a}.{b}.2"));
    let cap = g.start_tshark(&format!("host {pns} and (tcp or ip proto 47)"));
    let mut stdin = lab.stdin.take().unwrap();
    writeln!(stdin).unwrap();
    drop(stdin);
    let out = lab.stdout.take().unwrap();
    let err = lab.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
    let err_t = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let code = wait_child(&mut lab, Duration::from_secs(50));
    g.groups.push(lab);
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    g.stop_tshark();
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(code, Some(0), "lab --raw-gre failed: {all}");
    // The address we filtered on is the one the lab used.
    let listen = stdout
        .lines()
        .find_map(|l| l.split("PNS: listening on ").nth(1))
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no 'PNS: listening on' line: {all}"))
        .to_string();
    let (addr, port) = listen.split_once(':').unwrap();
    assert_eq!(addr, pns, "the lab's address scheme changed: {all}");
    let port: u16 = port.parse().unwrap();

    // The gate: no malformed frame, no expert warning in PPTP, GRE or PPP.
    let bad = fields(
        &cap,
        port,
        &["frame.number", "_ws.col.Info"],
        "(pptp || gre || ppp) && (_ws.malformed || _ws.expert.severity >= \"Warning\")",
    );
    assert!(bad.trim().is_empty(), "tshark gate: {bad}");
    // Incoming-call mode: SCCRQ, SCCRP, then per client ICRQ, ICRP, ICCN.
    let types: Vec<u32> = fields(&cap, port, &["pptp.control_message_type"], "pptp")
        .lines()
        .flat_map(|l| {
            l.split(',')
                .map(str::trim)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|t| t.parse().ok())
        .collect();
    // The two clients' calls interleave, and two replies can share one TCP segment, of which
    // tshark's PPTP dissector (decode-as on a non-standard port) shows only the first
    // message: check the first call's order only; the lab's exit 0 vouches for both calls.
    assert!(
        is_subsequence(&[1, 2, 9, 10, 11], &types),
        "types {types:?}"
    );
    // Both directions of GRE between the two addresses, PPP inside in the usual order.
    for src in [&pac, &pns] {
        let n = fields(
            &cap,
            port,
            &["frame.number"],
            &format!("gre && ip.src == {src}"),
        )
        .lines()
        .count();
        assert!(n > 10, "only {n} GRE packets from {src}");
    }
    let protos: Vec<String> = fields(&cap, port, &["ppp.protocol"], "ppp")
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
}
