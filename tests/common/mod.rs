//! Helpers shared by the interop tests (tests/interop_*.rs): the cross-process lock, a guard
//! that kills what a run started and removes its files, a /dev/log listener that saves and
//! restores whatever was at /dev/log, tshark capture and field extraction, and small waits.
//!
//! Every interop test needs root and the Debian packages `.ci/run` installs (pptpd pptp-linux
//! tshark socat); [`require_tools`] fails the test with a message naming them, it never skips.
//!
//! Machine-wide resources (TCP 1723 on an address, raw GRE, /dev/log) are shared by every
//! checkout of this crate on the machine, so each run holds an flock on
//! `/tmp/pptp-nas-interop.lock` for its whole life and uses loopback addresses derived from
//! its pid.

#![allow(dead_code)]

pub mod procs;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Serialises the tests of one test binary (they share port 1723 on their addresses, raw GRE
/// and /dev/log); the flock serialises them against other processes.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Takes [`SERIAL`], also after a test panicked while holding it.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Two loopback addresses unique to this process (pid-derived), in `127.A.x.y` and
/// `127.B.x.y`, so that a concurrent run elsewhere on the machine can neither take our TCP
/// connection nor our GRE (the real peers connect their raw GRE sockets to the peer address).
pub fn addr_pair(a: u8, b: u8) -> (String, String) {
    let pid = std::process::id();
    let (x, y) = ((pid >> 8) & 0xff, (pid & 0xff).max(1));
    (format!("127.{a}.{x}.{y}"), format!("127.{b}.{x}.{y}"))
}

/// Fails (does not skip) when a tool the interop tests drive is missing, or when we are not
/// root (raw GRE sockets, /dev/log, pptpd).
pub fn require_tools() {
    for t in [
        "/usr/sbin/pptpd",
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
    // SAFETY: geteuid(2) has no preconditions and touches no memory.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the interop tests need root (raw GRE sockets, /dev/log, pptpd): run them as root, as .ci/run does"
    );
}

/// An exclusive flock held for the life of the value.
pub struct CrossProcessLock(#[allow(dead_code)] std::fs::File);

/// Blocks until this process holds the machine-wide interop lock.
pub fn cross_process_lock() -> CrossProcessLock {
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
pub fn pids_naming(dir: &Path) -> Vec<u32> {
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

const DEVLOG: &str = "/dev/log";
/// Where whatever was at /dev/log waits while our listener is bound there.
const DEVLOG_SAVED: &str = "/dev/log.pptp-nas-saved";

/// A run that died while holding /dev/log (SIGKILL) left its socket there and the original
/// in [`DEVLOG_SAVED`]: put the original back. Called with the flock held.
fn repair_devlog() {
    if std::fs::symlink_metadata(DEVLOG_SAVED).is_ok() {
        let _ = std::fs::remove_file(DEVLOG);
        let _ = std::fs::rename(DEVLOG_SAVED, DEVLOG);
    }
}

/// Everything a run started; killed and removed on drop, also when the test fails.
pub struct Guard {
    _lock: CrossProcessLock,
    /// Scratch directory of this run (removed on success, kept when the test fails).
    pub dir: PathBuf,
    /// Process groups (killed as groups).
    pub groups: Vec<Child>,
    /// Single children.
    pub children: Vec<Child>,
    tshark: Option<Child>,
    syslog: Option<Arc<Mutex<Vec<String>>>>,
    devlog_saved: bool,
}

impl Guard {
    /// Takes the lock and makes a fresh scratch directory for the run `name`.
    pub fn new(name: &str) -> Guard {
        let lock = cross_process_lock();
        repair_devlog();
        let dir = std::env::temp_dir().join(format!("pptp-nas-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Guard {
            _lock: lock,
            dir,
            groups: Vec::new(),
            children: Vec::new(),
            tshark: None,
            syslog: None,
            devlog_saved: false,
        }
    }

    /// Binds /dev/log and collects what pptpd, pptpctrl and pptp log (they log only through
    /// syslog(3)). Whatever was at /dev/log is moved aside and put back on drop.
    pub fn listen_syslog(&mut self) -> Arc<Mutex<Vec<String>>> {
        // A socket nobody listens on was left by a run that was killed: not worth keeping.
        let probe = UnixDatagram::unbound().expect("unix datagram socket");
        if probe
            .connect(DEVLOG)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            let _ = std::fs::remove_file(DEVLOG);
        }
        if std::fs::symlink_metadata(DEVLOG).is_ok() {
            std::fs::rename(DEVLOG, DEVLOG_SAVED).expect("move /dev/log aside");
            self.devlog_saved = true;
        }
        let sock = UnixDatagram::bind(DEVLOG).expect("bind /dev/log");
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

    /// What the real peers logged so far, one message per line.
    pub fn syslog_text(&self) -> String {
        self.syslog
            .as_ref()
            .map(|l| l.lock().unwrap().join("\n"))
            .unwrap_or_default()
    }

    /// Waits until the peers' log contains `needle`.
    pub fn wait_syslog(&self, needle: &str, limit: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.syslog_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.syslog_text().contains(needle)
    }

    /// A file in the scratch directory, read (empty when missing).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Starts tshark on lo with capture filter `filter`; returns the pcapng path once it is
    /// capturing.
    pub fn start_tshark(&mut self, filter: &str) -> PathBuf {
        let cap = self.dir.join("cap.pcapng");
        let mut c = spawn_group(
            Command::new("tshark")
                .args(["-i", "lo", "-f", filter])
                .arg("-w")
                .arg(&cap)
                .args(["-a", "duration:55"])
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
        self.tshark = Some(c);
        rx.recv_timeout(Duration::from_secs(15))
            .expect("tshark did not start capturing within 15 s");
        // "Capturing on" can come a moment before dumpcap's filter is live: a run once lost
        // its SCCRQ/SCCRP. Give it a second.
        std::thread::sleep(Duration::from_secs(1));
        cap
    }

    /// SIGINT to tshark: it finishes the file and exits. Packets that arrived in the last
    /// moments before the SIGINT can be lost (libpcap hands dumpcap whole TPACKET_V3 blocks,
    /// and a block still open at the stop is dropped: a run lost two seconds of a quiet
    /// control connection), so it waits 1.5 s first.
    pub fn stop_tshark(&mut self) {
        if let Some(c) = self.tshark.as_mut() {
            std::thread::sleep(Duration::from_millis(1500));
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = wait_child(c, Duration::from_secs(10));
        }
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
        for c in self.groups.iter_mut().chain(self.tshark.as_mut()) {
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
            let _ = std::fs::remove_file(DEVLOG);
            if self.devlog_saved {
                let _ = std::fs::rename(DEVLOG_SAVED, DEVLOG);
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Spawns `cmd` as the leader of a new process group.
pub fn spawn_group(cmd: &mut Command) -> Child {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).spawn().expect("spawn")
}

/// Waits until something listens on TCP `addr:port` (read from /proc/net/tcp, so that no
/// probe connection is made: pptpd would stall on one).
pub fn wait_listening(addr: &str, port: u16) {
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

/// Waits for a child to exit; its exit code (`None`: still running or killed by a signal).
pub fn wait_child(c: &mut Child, limit: Duration) -> Option<i32> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(Some(st)) = c.try_wait() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits for a file that ends in a newline; its content (possibly empty).
pub fn wait_file(p: &Path, limit: Duration) -> String {
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

/// Waits until the file `p` contains `needle` at least `count` times.
pub fn wait_count(p: &Path, needle: &str, count: usize, limit: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        let n = std::fs::read_to_string(p)
            .map(|s| s.matches(needle).count())
            .unwrap_or(0);
        if n >= count {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `sig` (e.g. "-TERM") to one pid.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// `tshark -r cap -Y filter -T fields -e ...`, one line per packet.
pub fn tshark_fields(cap: &Path, fields: &[&str], filter: &str) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(cap).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark -r");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The INTEROP.md gate: every PPTP, GRE or PPP frame that tshark finds malformed or warns
/// about (TCP itself is left out: RSTs are warnings). Empty when the capture passes.
pub fn tshark_gate(cap: &Path) -> String {
    tshark_fields(
        cap,
        &["frame.number", "_ws.col.Info"],
        "(pptp || gre || ppp) && (_ws.malformed || _ws.expert.severity >= \"Warning\")",
    )
}

/// PPTP control message types in capture order.
pub fn pptp_types(cap: &Path) -> Vec<u32> {
    // A TCP segment carrying several messages prints them comma-separated on one line.
    tshark_fields(cap, &["pptp.control_message_type"], "pptp")
        .lines()
        .flat_map(|l| {
            l.split(',')
                .map(|t| t.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .flatten()
        .collect()
}

/// Whether `want` occurs in `have` as a subsequence (in order, gaps allowed).
pub fn is_subsequence<T: PartialEq>(want: &[T], have: &[T]) -> bool {
    let mut it = have.iter();
    want.iter().all(|w| it.any(|h| h == w))
}

/// The first GRE sequence number `src` sent in the capture.
pub fn first_gre_seq(cap: &Path, src: &str) -> Option<u32> {
    tshark_fields(
        cap,
        &["gre.sequence_number"],
        &format!("gre && gre.sequence_number && ip.src == {src}"),
    )
    .lines()
    .find_map(|l| l.trim().parse().ok())
}
