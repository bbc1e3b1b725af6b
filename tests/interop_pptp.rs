//! Interop with real PPTP software (docs/INTEROP.md): pptp-linux (`pptp --nolaunchpppd`) ->
//! pptpd's `pptpctrl` (deterministic socat recipe), with `pptp-nas ppp` at both ends, captured
//! with tshark on lo and judged by it. Needs root and the packages `.ci/run` installs; fails
//! (does not skip) when they are missing.
//!
//! Tests share TCP port 1723, raw GRE and /dev/log, so they run one at a time: a process-wide
//! mutex plus an flock on /tmp/pptp-nas-interop.lock, because other checkouts of this crate may
//! run the same tests on the same machine at the same time.

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Loopback addresses unique to this run (pid-derived), so that a concurrent run elsewhere on
/// the machine can neither take our TCP connection nor our GRE (both real peers connect their
/// raw GRE sockets to the peer's address).
fn addrs() -> (String, String) {
    let pid = std::process::id();
    let (x, y) = ((pid >> 8) & 0xff, (pid & 0xff).max(1));
    (format!("127.88.{x}.{y}"), format!("127.89.{x}.{y}"))
}

fn require_tools() {
    for t in [
        "/usr/sbin/pptpctrl",
        "/usr/sbin/pptp",
        "/usr/bin/socat",
        "/usr/bin/tshark",
    ] {
        assert!(
            Path::new(t).exists(),
            "{t} is missing: run .ci/run (installs pptpd pptp-linux tshark socat)"
        );
    }
}

/// An exclusive flock held for the life of the value.
struct CrossProcessLock(#[allow(dead_code)] std::fs::File);

fn cross_process_lock() -> CrossProcessLock {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/pptp-nas-interop.lock")
        .unwrap();
    // SAFETY: flock(2) on a descriptor we own for the whole call; no memory is shared.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock /tmp/pptp-nas-interop.lock");
    CrossProcessLock(f)
}

/// Processes whose command line names `dir` (pptpctrl's PPP child leaves socat's process
/// group, so the group kill misses it); only processes this run started can name our dir.
fn pids_naming(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(&needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// Everything a run started; killed and removed on drop, also when the test fails.
struct Guard {
    _lock: CrossProcessLock,
    dir: PathBuf,
    groups: Vec<Child>,
    children: Vec<Child>,
    syslog: Option<Arc<Mutex<Vec<String>>>>,
}

impl Guard {
    fn new(name: &str) -> Guard {
        let lock = cross_process_lock();
        let dir = std::env::temp_dir().join(format!("pptp-nas-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Guard {
            _lock: lock,
            dir,
            groups: Vec::new(),
            children: Vec::new(),
            syslog: None,
        }
    }

    /// Binds /dev/log and collects what pptp/pptpctrl log.
    fn listen_syslog(&mut self) -> Arc<Mutex<Vec<String>>> {
        let _ = std::fs::remove_file("/dev/log");
        let sock = UnixDatagram::bind("/dev/log").expect("bind /dev/log");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let s = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
                l2.lock().unwrap().push(s);
            }
        });
        self.syslog = Some(lines.clone());
        lines
    }

    fn syslog_text(&self) -> String {
        self.syslog
            .as_ref()
            .map(|l| l.lock().unwrap().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.groups {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(Duration::from_millis(200));
        for c in &mut self.groups {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.wait();
        }
        for pid in pids_naming(&self.dir) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        if self.syslog.is_some() {
            let _ = std::fs::remove_file("/dev/log");
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn spawn_group(cmd: &mut Command) -> Child {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).spawn().expect("spawn")
}

fn wait_listening(addr: &str, port: u16) {
    // /proc/net/tcp lists little-endian hex addresses; state 0A is LISTEN.
    let ip: std::net::Ipv4Addr = addr.parse().unwrap();
    let o = ip.octets();
    let want = format!(
        "{:02X}{:02X}{:02X}{:02X}:{:04X} 00000000:0000 0A",
        o[3], o[2], o[1], o[0], port
    );
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if std::fs::read_to_string("/proc/net/tcp").is_ok_and(|s| s.contains(&want)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{addr}:{port} not listening after 10 s");
}

fn wait_child(c: &mut Child, limit: Duration) -> Option<i32> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(Some(st)) = c.try_wait() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn wait_file(p: &Path, limit: Duration) -> String {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(s) = std::fs::read_to_string(p) {
            if s.ends_with('\n') {
                return s;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Starts tshark on lo for our two addresses; returns once it is capturing.
fn start_tshark(g: &mut Guard, server_addr: &str) -> PathBuf {
    let cap = g.dir.join("cap.pcapng");
    let mut c = spawn_group(
        Command::new("tshark")
            .args(["-i", "lo", "-f"])
            .arg(format!(
                "host {server_addr} and (tcp port 1723 or ip proto 47)"
            ))
            .arg("-w")
            .arg(&cap)
            .args(["-a", "duration:40"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let err = c.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("Capturing on") {
                let _ = tx.send(());
            }
        }
    });
    g.groups.push(c);
    rx.recv_timeout(Duration::from_secs(15))
        .expect("tshark did not start capturing within 15 s");
    // "Capturing on" can come a moment before dumpcap's filter is live: a run once lost its
    // SCCRQ/SCCRP. Give it a second.
    std::thread::sleep(Duration::from_secs(1));
    cap
}

fn stop_tshark(g: &mut Guard) {
    // tshark is the first group started; SIGINT makes it finish the file.
    if let Some(c) = g.groups.first_mut() {
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
        let _ = wait_child(c, Duration::from_secs(10));
    }
}

fn tshark_fields(cap: &Path, fields: &[&str], filter: &str) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(cap).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark -r");
    String::from_utf8_lossy(&out.stdout).into_owned()
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
        Some(start_tshark(&mut g, &server_addr))
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
    if s.capture {
        stop_tshark(&mut g);
    }
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
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
    let bad = tshark_fields(
        cap,
        &["frame.number", "_ws.col.Info"],
        "(pptp || gre || ppp) && (_ws.malformed || _ws.expert.severity >= \"Warning\")",
    );
    assert!(bad.trim().is_empty(), "tshark gate: {bad}");
    // Control sequence: SCCRQ 1, SCCRP 2, OCRQ 7, OCRP 8, Call-Clear-Request 12, CDN 13 is
    // not sent by pptpd (it closes TCP instead).
    let types: Vec<u32> = tshark_fields(cap, &["pptp.control_message_type"], "pptp")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let pos = |t: u32| types.iter().position(|&x| x == t);
    let order: Vec<Option<usize>> = [1, 2, 7, 8, 12].into_iter().map(pos).collect();
    assert!(order.iter().all(Option::is_some), "types {types:?}");
    assert!(order.windows(2).all(|w| w[0] < w[1]), "types {types:?}");
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
    let gre = tshark_fields(
        cap,
        &["ip.src", "gre.sequence_number"],
        "gre && gre.sequence_number",
    );
    let first_seq = |src: &str| {
        gre.lines()
            .find(|l| l.starts_with(src))
            .and_then(|l| l.split('\t').nth(1))
            .map(|s| s.trim().to_string())
    };
    let (server_addr, client_addr) = addrs();
    assert_eq!(first_seq(&server_addr).as_deref(), Some("0"), "{gre}");
    assert_eq!(first_seq(&client_addr).as_deref(), Some("1"), "{gre}");
}

/// Stateless MPPE-40 without MPPC through the same real peers.
#[test]
fn pptp_linux_to_pptpd_stateless_mppe40() {
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
    let _l = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
