//! Scenario a of issue 9: our PAC in outgoing-call compat mode places an Outgoing-Call-Request
//! at real pptpd (`pptpctrl`, socat recipe) whose PPP program is `pptp-nas ppp` in the server
//! role. The caller is `pptp-nas dial` through `pptp-nas softmodem` (ATDT, RING, CONNECT), or,
//! for a second line type, `pptp-nas ppp --tty` on a `direct` line (a socat pty pair).
//! MS-CHAPv2, MPPE and MPPC come up end to end through the PAC's relay and every ping comes
//! back; SIGTERM to the PAC clears the call (pptpd closes TCP instead of sending a CDN) and the
//! PAC exits 0. tshark judges the capture.
//!
//! Needs root and the packages `.ci/run` installs; fails (does not skip) without them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    first_gre_seq, is_subsequence, pptp_types, require_tools, serial, signal, spawn_group,
    tshark_fields, tshark_gate, wait_child, wait_count, wait_listening, Guard,
};

/// Loopback addresses unique to this run: 127.94.x.y pptpd, 127.95.x.y our PAC.
fn addrs() -> (String, String) {
    common::addr_pair(94, 95)
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pptp-nas"))
}

fn wait_path(p: &Path) {
    let t = std::time::Instant::now();
    while !p.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{} missing",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Run {
    g: Guard,
    client_code: Option<i32>,
    pac_code: Option<i32>,
    cap: Option<PathBuf>,
}

impl Run {
    fn logs(&self) -> String {
        format!(
            "--- client.result\n{}--- client.log\n{}\n--- server.result\n{}--- server.log\n{}\n--- pac.log\n{}\n--- syslog\n{}",
            self.g.read("client.result"),
            self.g.read("client.log"),
            self.g.read("server.result"),
            self.g.read("server.log"),
            self.g.read("pac.log"),
            self.g.syslog_text()
        )
    }
}

/// Runs one call: `server` lines for `pptp-nas ppp` behind pptpctrl, `client` flags for the
/// caller on the direct line.
/// Who calls, over which kind of line.
#[derive(Clone, Copy)]
enum Caller {
    /// `pptp-nas dial` on a `pptp-nas softmodem` line (PAC line type modem).
    Dial,
    /// `pptp-nas ppp --tty` on a socat pty pair (PAC line type direct).
    DirectPpp,
}

fn run(name: &str, caller: Caller, server: &str, client: &[&str], capture: bool) -> Run {
    require_tools();
    let (s, c) = addrs();
    let mut g = Guard::new(name);
    let dir = g.dir.clone();
    g.listen_syslog();
    let cap =
        capture.then(|| g.start_tshark(&format!("host {s} and (tcp port 1723 or ip proto 47)")));

    // The line: a soft-modem pair (PAC on nas0, dial on client0) or a null-modem pty pair
    // (PAC on ttyA, caller on ttyB).
    let (pac_dev, caller_dev, line_yaml) = match caller {
        Caller::Dial => {
            let sm = dir.join("sm");
            g.groups.push(spawn_group(
                Command::new(bin())
                    .args([
                        "softmodem",
                        "--lines",
                        "1",
                        "--ring-interval",
                        "500",
                        "--dir",
                    ])
                    .arg(&sm)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            ));
            let (nas, client) = (sm.join("nas0"), sm.join("client0"));
            wait_path(&nas);
            wait_path(&client);
            let yaml = format!(
                "{{id: sm0, device: {}, type: modem, profile: softmodem, number: \"5550100\"}}",
                nas.display()
            );
            (nas, client, yaml)
        }
        Caller::DirectPpp => {
            let (tty_a, tty_b) = (dir.join("ttyA"), dir.join("ttyB"));
            g.groups.push(spawn_group(
                Command::new("socat")
                    .arg(format!("pty,raw,echo=0,link={}", tty_a.display()))
                    .arg(format!("pty,raw,echo=0,link={}", tty_b.display()))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            ));
            wait_path(&tty_a);
            wait_path(&tty_b);
            let yaml = format!(
                "{{id: d0, device: {}, type: direct, profile: direct}}",
                tty_a.display()
            );
            (tty_a, tty_b, yaml)
        }
    };
    let _ = &pac_dev;

    // pptpd's control process with our PPP engine as its pppd.
    let prog = dir.join("pptp-nas-ppp");
    std::os::unix::fs::symlink(bin(), &prog).unwrap();
    let opts = dir.join("options");
    std::fs::write(&opts, "").unwrap();
    let conf = dir.join("server.conf");
    std::fs::write(
        &conf,
        format!(
            "role server\n{server}\nconnect-timeout 30\nresult-file {}\nlog-file {}\n",
            dir.join("server.result").display(),
            dir.join("server.log").display()
        ),
    )
    .unwrap();
    let ctrl = format!(
        "/usr/sbin/pptpctrl 1 0 1 {} 0 1 192.168.77.1 1 192.168.77.10 4096 {} 0",
        opts.display(),
        prog.display()
    );
    g.groups.push(spawn_group(
        Command::new("socat")
            .arg(format!("TCP-LISTEN:1723,bind={s},reuseaddr,fork"))
            .arg(format!("EXEC:{ctrl},nofork"))
            .env("PPTP_NAS_PPP_CONFIG", &conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    ));
    wait_listening(&s, 1723);

    // Our PAC: one direct line, every call to pptpd in outgoing-call compat mode.
    let sock = dir.join("pac.sock");
    let cfg = dir.join("pac.yaml");
    std::fs::write(
        &cfg,
        format!(
            "pac:\n  host_name: pac-interop\n  hardware_dir: {hw}\n  status_socket: {sock}\n  local_address: {c}\n\
             pns:\n  - {{name: pptpd, address: {s}, port: 1723, mode: outgoing-call}}\n\
             lines:\n  - {line_yaml}\n\
             default: {{pns: [pptpd]}}\n",
            hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware").display(),
            sock = sock.display(),
        ),
    )
    .unwrap();
    let check = Command::new(bin())
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let pac_log = dir.join("pac.log");
    g.groups.push(spawn_group(
        Command::new(bin())
            .args(["pac", "--config"])
            .arg(&cfg)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&pac_log).unwrap()),
    ));
    let pac = g.groups.len() - 1;
    assert!(
        wait_count(
            &pac_log,
            "control connection established",
            1,
            Duration::from_secs(10)
        ),
        "PAC did not reach pptpd: {}",
        g.read("pac.log")
    );

    // The caller.
    let mut cmd = Command::new(bin());
    match caller {
        Caller::Dial => {
            cmd.args(["dial", "--device"])
                .arg(&caller_dev)
                .args(["--number", "5550100", "--connect-timeout", "20", "--json"])
                .args(client)
                .stdout(std::fs::File::create(dir.join("client.result")).unwrap())
                .stderr(std::fs::File::create(dir.join("client.log")).unwrap());
        }
        Caller::DirectPpp => {
            cmd.args(["ppp", "--tty"])
                .arg(&caller_dev)
                .args(["--role", "client", "--connect-timeout", "20"])
                .args(client)
                .arg("--result-file")
                .arg(dir.join("client.result"))
                .arg("--log-file")
                .arg(dir.join("client.log"))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
    }
    let mut client = cmd.spawn().unwrap();
    let client_code = wait_child(&mut client, Duration::from_secs(40));
    g.children.push(client);
    // The call is still up on the PAC (a direct line has no carrier to drop): SIGTERM clears
    // it, pptpd closes TCP, the PAC exits.
    std::thread::sleep(Duration::from_millis(300));
    signal(g.groups[pac].id(), "-TERM");
    let pac_code = wait_child(&mut g.groups[pac], Duration::from_secs(15));
    let _ = g.wait_syslog("Received CALL CLR request", Duration::from_secs(3));
    if capture {
        g.stop_tshark();
    }
    Run {
        g,
        client_code,
        pac_code,
        cap,
    }
}

/// What every successful run shows besides the caller's own result.
fn assert_chain(r: &Run, server_prefix: &str, answered: &str) {
    let all = r.logs();
    let server = r.g.read("server.result");
    assert!(
        server.starts_with(server_prefix) && server.contains(answered),
        "{all}"
    );
    assert_eq!(r.pac_code, Some(0), "PAC exit on SIGTERM: {all}");
    let pac = r.g.read("pac.log");
    assert!(pac.contains("call up"), "{all}");
    assert!(
        pac.contains("control connection closed reason=TcpClosed"),
        "{all}"
    );
    assert!(
        r.g.syslog_text()
            .contains("Received CALL CLR request (closing call)"),
        "{all}"
    );
}

/// Scenario a: `pptp-nas dial` -> softmodem -> PAC (compat) -> pptpd: MS-CHAPv2 + MPPE-128 +
/// MPPC, five pings; tshark judges the capture.
#[test]
fn dial_softmodem_pac_compat_to_pptpd_mppe128_mppc() {
    let _l = serial();
    let r = run(
        "a128",
        Caller::Dial,
        "user alice:secret\nmppe 128\nmppc on",
        &[
            "--user",
            "alice:secret",
            "--mppe",
            "128",
            "--mppc",
            "on",
            "--ping",
            "5",
        ],
        true,
    );
    let all = r.logs();
    assert_eq!(r.client_code, Some(0), "{all}");
    let js = r.g.read("client.result");
    for want in [
        "\"ok\": true",
        "\"mppe_bits\": 128",
        "\"stateless\": false",
        "\"mppc\": true",
        "\"local_ip\": \"192.168.77.10\"",
        "\"pings_sent\": 5",
        "\"pings_received\": 5",
    ] {
        assert!(js.contains(want), "dial report lacks {want}: {all}");
    }
    assert_chain(
        &r,
        "pptp-nas ppp: ok user=alice mppe=128 mppc=on stateless=false",
        "answered=5",
    );

    let cap = r.cap.as_ref().unwrap();
    let bad = tshark_gate(cap);
    assert!(bad.trim().is_empty(), "tshark gate: {bad}");
    let types = pptp_types(cap);
    assert!(is_subsequence(&[1, 2, 7, 8, 12], &types), "types {types:?}");
    assert!(
        !types.contains(&13),
        "pptpd sent a CDN after all: {types:?}"
    );
    let ocrq = tshark_fields(
        cap,
        &["pptp.phone_number"],
        "pptp.control_message_type == 7",
    );
    assert_eq!(ocrq.trim(), "", "no dialled number in the OCRQ: {ocrq}");
    let ocrp = tshark_fields(cap, &["pptp.out_result"], "pptp.control_message_type == 8");
    assert_eq!(ocrp.trim(), "1", "OCRP Connected");
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
    // pptpd starts at sequence number 0; so does our PAC's relay.
    let (s, c) = addrs();
    assert_eq!(first_gre_seq(cap, &s), Some(0));
    assert_eq!(first_gre_seq(cap, &c), Some(0));
}

/// Scenario a, stateless MPPE-128 with MPPC.
#[test]
fn dial_softmodem_pac_compat_to_pptpd_stateless_mppe128() {
    let _l = serial();
    let r = run(
        "a128s",
        Caller::Dial,
        "user alice:secret\nmppe 128\nmppc on\nstateless",
        &[
            "--user",
            "alice:secret",
            "--mppe",
            "128",
            "--stateless",
            "--ping",
            "3",
        ],
        false,
    );
    let all = r.logs();
    assert_eq!(r.client_code, Some(0), "{all}");
    let js = r.g.read("client.result");
    for want in [
        "\"ok\": true",
        "\"mppe_bits\": 128",
        "\"stateless\": true",
        "\"pings_received\": 3",
    ] {
        assert!(js.contains(want), "dial report lacks {want}: {all}");
    }
    assert_chain(
        &r,
        "pptp-nas ppp: ok user=alice mppe=128 mppc=on stateless=true",
        "answered=3",
    );
}

/// Scenario a, MPPE-40 with MPPC.
#[test]
fn dial_softmodem_pac_compat_to_pptpd_mppe40() {
    let _l = serial();
    let r = run(
        "a40",
        Caller::Dial,
        "user bob:pw\nmppe 40\nmppc on",
        &["--user", "bob:pw", "--mppe", "40", "--ping", "3"],
        false,
    );
    let all = r.logs();
    assert_eq!(r.client_code, Some(0), "{all}");
    let js = r.g.read("client.result");
    for want in ["\"ok\": true", "\"mppe_bits\": 40", "\"pings_received\": 3"] {
        assert!(js.contains(want), "dial report lacks {want}: {all}");
    }
    assert_chain(
        &r,
        "pptp-nas ppp: ok user=bob mppe=40 mppc=on",
        "answered=3",
    );
}

/// The same chain on a `direct` line with `pptp-nas ppp --tty` as the caller: stateless
/// MPPE-40 without MPPC.
#[test]
fn direct_line_pac_compat_to_pptpd_stateless_mppe40() {
    let _l = serial();
    let r = run(
        "ad40",
        Caller::DirectPpp,
        "user bob:pw\nmppe 40\nmppc off\nstateless",
        &[
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
        false,
    );
    let all = r.logs();
    assert_eq!(r.client_code, Some(0), "{all}");
    assert!(
        r.g.read("client.result")
            .starts_with("pptp-nas ppp: ok user=bob mppe=40 mppc=off stateless=true")
            && r.g.read("client.result").contains("pings=3/3"),
        "{all}"
    );
    assert_chain(
        &r,
        "pptp-nas ppp: ok user=bob mppe=40 mppc=off stateless=true",
        "answered=3",
    );
}
