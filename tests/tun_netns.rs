//! `--tun` end to end (src/io/tun.rs): everything runs inside a network namespace this test
//! creates and deletes (`pnt-<pid>-<n>`), two `pptp-nas ppp` ends over a socat pty pair.
//!
//! - server `--tun`, client `--responder`: after IPCP the namespace's kernel routes the
//!   client's address into the TUN; a UDP datagram to its echo port comes back through
//!   TUN -> PPP/MPPE -> client responder -> PPP/MPPE -> TUN.
//! - client `--tun`, server's built-in responder: the kernel on the client side reaches the
//!   server's address.
//! - without CAP_NET_ADMIN: exit code 3 and "TUN needs root or CAP_NET_ADMIN".
//!
//! Needs root, `ip`, `socat` and `setpriv`: fails (never skips) without them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn require() {
    for t in ["/usr/sbin/ip", "/usr/bin/socat", "/usr/bin/setpriv"] {
        assert!(
            Path::new(t).exists(),
            "{t} is missing: install iproute2, socat and util-linux (.ci/run does)"
        );
    }
    let id = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        "0",
        "tests/tun_netns.rs needs root (network namespaces, TUN): run it as root, as .ci/run does"
    );
}

/// A namespace, a scratch dir and the processes started in it; all removed on drop.
struct Ns {
    name: String,
    dir: PathBuf,
    kids: Vec<Child>,
}

impl Ns {
    fn new() -> Ns {
        require();
        let name = format!(
            "pnt-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let ok = |c: &mut Command| {
            let o = c.output().expect("ip");
            assert!(o.status.success(), "{c:?}: {o:?}");
        };
        ok(Command::new("ip").args(["netns", "add", &name]));
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let ns = Ns {
            name,
            dir,
            kids: Vec::new(),
        };
        ok(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    fn spawn(&mut self, mut c: Command) {
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.spawn_io(c);
    }

    /// Spawns in its own process group (pptp forks; the whole group is killed on drop).
    fn spawn_io(&mut self, mut c: Command) {
        use std::os::unix::process::CommandExt;
        let child = c.process_group(0).spawn().expect("spawn");
        self.kids.push(child);
    }

    /// A socat pty pair `a` <-> `b` in the scratch dir.
    fn ptys(&mut self) -> (PathBuf, PathBuf) {
        let (a, b) = (self.dir.join("a"), self.dir.join("b"));
        let mut c = self.cmd("socat");
        c.arg(format!("PTY,link={},raw,echo=0", a.display()))
            .arg(format!("PTY,link={},raw,echo=0", b.display()));
        self.spawn(c);
        wait_for(|| a.exists() && b.exists(), "socat ptys");
        (a, b)
    }

    fn ppp(&self, tty: &Path, log: &str, extra: &[&str]) -> Command {
        let mut c = self.cmd(env!("CARGO_BIN_EXE_pptp-nas"));
        c.args(["ppp", "--user", "alice:secret", "--tty"])
            .arg(tty)
            .arg("--log-file")
            .arg(self.dir.join(log))
            .args(extra);
        c
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["server.log", "client.log", "pns.log"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(f)) {
                s.push_str(&format!("--- {f}\n{t}"));
            }
        }
        s
    }

    /// Waits until the interface `dev` exists in the namespace.
    fn wait_link(&self, dev: &str) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            let o = Command::new("ip")
                .args(["-n", &self.name, "-o", "addr", "show", "dev", dev])
                .output()
                .expect("ip addr");
            if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("inet ") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{dev} never came up with an address\n{}", self.logs());
    }

    /// Sends `payload` to UDP `to` port 7 from inside the namespace and returns the answer.
    fn udp_echo(&self, to: &str, payload: &str) -> Output {
        let mut c = Command::new("timeout");
        c.args(["5", "ip", "netns", "exec", &self.name, "socat", "-t3", "-"])
            .arg(format!("UDP:{to}:7"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("socat udp");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(payload.as_bytes())
            .expect("write payload");
        child.wait_with_output().expect("socat output")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        for sig in ["-TERM", "-KILL"] {
            for k in self.kids.iter().rev() {
                let _ = Command::new("kill")
                    .args([sig, "--", &format!("-{}", k.id())])
                    .stderr(Stdio::null())
                    .status();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        for k in self.kids.iter_mut() {
            let _ = k.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn server_tun_reaches_client_responder() {
    let mut ns = Ns::new();
    let (a, b) = ns.ptys();
    let s = ns.ppp(&a, "server.log", &["--role", "server", "--tun", "pnt0"]);
    ns.spawn(s);
    let c = ns.ppp(&b, "client.log", &["--role", "client", "--responder"]);
    ns.spawn(c);
    ns.wait_link("pnt0");
    let route = Command::new("ip")
        .args(["-n", &ns.name, "route", "get", "192.168.77.10"])
        .output()
        .expect("ip route");
    assert!(
        String::from_utf8_lossy(&route.stdout).contains("dev pnt0"),
        "the caller's address is not routed into the TUN: {route:?}"
    );
    let o = ns.udp_echo("192.168.77.10", "hello through the tun");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello through the tun",
        "no UDP echo back through TUN -> PPP/MPPE -> responder: {o:?}\n{}",
        ns.logs()
    );
    let log = std::fs::read_to_string(ns.dir.join("server.log")).unwrap_or_default();
    assert!(log.contains("IP delivered to TUN"), "{log}");
    assert!(
        log.contains("mtu=1496"),
        "MTU is the peer's MRU minus MPPE: {log}"
    );
}

#[test]
fn client_tun_reaches_server_responder() {
    let mut ns = Ns::new();
    let (a, b) = ns.ptys();
    let s = ns.ppp(&a, "server.log", &["--role", "server"]);
    ns.spawn(s);
    let c = ns.ppp(&b, "client.log", &["--role", "client", "--tun", "pntc%d"]);
    ns.spawn(c);
    ns.wait_link("pntc0");
    let o = ns.udp_echo("192.168.77.1", "client side kernel");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "client side kernel",
        "no UDP echo from the server's responder: {o:?}\n{}",
        ns.logs()
    );
}

#[test]
fn tun_without_cap_net_admin_fails_clearly() {
    let mut ns = Ns::new();
    let (a, b) = ns.ptys();
    let c = ns.ppp(&b, "client.log", &["--role", "client", "--responder"]);
    ns.spawn(c);
    let mut s = Command::new("ip");
    s.args([
        "netns",
        "exec",
        &ns.name,
        "setpriv",
        "--bounding-set=-net_admin",
    ])
    .arg(env!("CARGO_BIN_EXE_pptp-nas"))
    .args([
        "ppp",
        "--role",
        "server",
        "--user",
        "alice:secret",
        "--tun",
        "pnt0",
    ])
    .arg("--tty")
    .arg(&a)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let t0 = Instant::now();
    let o = s.output().expect("run server");
    assert!(t0.elapsed() < Duration::from_secs(30));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "exit code: {o:?}");
    assert!(
        err.contains("TUN needs root or CAP_NET_ADMIN"),
        "stderr: {err}"
    );
}

#[test]
fn tun_and_responder_are_exclusive() {
    let o = Command::new(env!("CARGO_BIN_EXE_pptp-nas"))
        .args([
            "ppp", "--role", "client", "--user", "a:b", "--tun", "x0", "--ping", "3",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tun cannot be combined"),
        "{o:?}"
    );
}

/// `pptp-nas pns --tun`: real pptp-linux calls in over TCP and raw GRE (inside the
/// namespace's own loopback), `pptp-nas ppp --role client --responder` is its PPP; after IPCP
/// the namespace's kernel routes the caller's pool address into the call's TUN and a UDP echo
/// comes back through TUN -> PNS -> GRE/PPP/MPPE -> caller's responder.
#[test]
fn pns_tun_reaches_caller() {
    assert!(
        Path::new("/usr/sbin/pptp").exists(),
        "/usr/sbin/pptp is missing: install pptp-linux (.ci/run does)"
    );
    let mut ns = Ns::new();
    // pptp-linux resolves "127.0.0.1" with AI_ADDRCONFIG, which fails when the namespace has
    // no non-loopback address: give it one on a placeholder TUN (no dummy module here).
    for args in [
        &["tuntap", "add", "dev", "pnd0", "mode", "tun"][..],
        &["addr", "add", "10.255.0.1/32", "dev", "pnd0"],
        &["link", "set", "pnd0", "up"],
    ] {
        let o = Command::new("ip")
            .args(["-n", &ns.name])
            .args(args)
            .output()
            .expect("ip");
        assert!(o.status.success(), "ip {args:?}: {o:?}");
    }
    let log = ns.dir.join("pns.log");
    let mut pns = ns.cmd(env!("CARGO_BIN_EXE_pptp-nas"));
    pns.args([
        "pns",
        "--listen",
        "127.0.0.1:1723",
        "--user",
        "alice:secret",
    ])
    .args(["--pool", "192.168.77.10-192.168.77.50", "--tun", "pnc"])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).expect("pns log"));
    ns.spawn_io(pns);
    wait_for(
        || {
            ns.cmd("ss")
                .args(["-ltn"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("127.0.0.1:1723"))
                .unwrap_or(false)
        },
        "pns listening",
    );
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let mut pptp = ns.cmd("/usr/sbin/pptp");
    pptp.args([
        "127.0.0.1",
        "--nolaunchpppd",
        "--nohostroute",
        "--localbind",
        "127.0.0.2",
    ])
    .stdin(Stdio::from(std::os::fd::OwnedFd::from(a)))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    ns.spawn_io(pptp);
    let b2 = b.try_clone().expect("dup");
    let mut client = ns.cmd(env!("CARGO_BIN_EXE_pptp-nas"));
    client
        .args([
            "ppp",
            "--stdio",
            "--role",
            "client",
            "--user",
            "alice:secret",
        ])
        .args(["--responder", "--log-file"])
        .arg(ns.dir.join("client.log"))
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(b)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(b2)))
        .stderr(Stdio::null());
    ns.spawn_io(client);
    ns.wait_link("pnc0");
    let o = ns.udp_echo("192.168.77.10", "pns tun to caller");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "pns tun to caller",
        "no UDP echo back through TUN -> PNS -> caller's responder: {o:?}\n{}",
        ns.logs()
    );
}
