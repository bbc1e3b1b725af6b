//! The whole chain as separate processes over real ptys and loopback, raw GRE:
//! `pptp-nas softmodem` + `pptp-nas pac` (incoming-call mode) + `pptp-nas pns` + `pptp-nas dial`.
//!
//! One softmodem+PAC+PNS set per PNS policy, many dial calls through it one after the other:
//! - the matrix: every auth method x MPPE {none, 40, 56, 128} x {stateful, stateless} x MPPC
//!   {on, off} that the policies allow (MPPE only with MS-CHAP v1/v2), the PNS permitting
//!   everything (pns.yaml) and the dial side requiring the combination; every ping answered
//!   and dial's JSON report shows exactly what was asked;
//! - the PNS requiring (flags) and the dial side merely permitting;
//! - mismatched policies: exit 6 and a clear message on both sides;
//! - BER 1e-5 and a carrier drop mid-call end cleanly, the next call works, nothing panics;
//! - wrong password 5 times: the PNS locks the user out (its log), a right password is refused
//!   until the lockout (2 s) expires, then succeeds.
//!
//! Needs root or CAP_NET_RAW for raw GRE (CI runs as root): without it the tests fail saying so.
//! Every chain uses its own loopback addresses (from the pid and a per-test index), so
//! concurrent runs in other checkouts do not meet.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pptp-nas")
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// One chain at a time: the machine is small and the lockout test is timing-sensitive.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A softmodem + PAC + PNS set.
struct Chain {
    dir: PathBuf,
    pns: Kill,
    pac: Kill,
    _sm: Kill,
    // Last: released after the processes are gone.
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// How the PNS is configured: a pns.yaml text (with `users.yaml` for the users file) or flags.
enum PnsSetup<'a> {
    Yaml(&'a str),
    Flags(&'a [&'a str]),
}

const USERS: &str = "users:\n  - name: alice\n    password: secret\n";
/// bob's NT hash is that of "password".
const USERS_NT: &str = "users:\n  - name: alice\n    password: secret\n  - name: bob\n    \
                        nt_hash: 8846F7EAEE8FB117AD06BDD830B7586C\n";

impl Chain {
    fn start(index: u8, softmodem: &[&str], pns: PnsSetup<'_>) -> Chain {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = socket_raw_check() {
            panic!(
                "raw GRE needs root or CAP_NET_RAW ({e}); run the tests as root, as .ci/run does"
            );
        }
        let pid = std::process::id();
        let (x, y) = ((pid >> 8) & 0xff, (pid & 0xff).max(1));
        let pns_ip = format!("127.{}.{x}.{y}", 100 + u32::from(index) * 2);
        let pac_ip = format!("127.{}.{x}.{y}", 101 + u32::from(index) * 2);
        let dir = std::env::temp_dir().join(format!("pptp-nas-e2e-{pid}-{index}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sm = Kill(
            Command::new(bin())
                .args([
                    "softmodem",
                    "--lines",
                    "1",
                    "--ring-interval",
                    "300",
                    "--dir",
                ])
                .arg(&dir)
                .args(softmodem)
                .stderr(std::fs::File::create(dir.join("softmodem.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        wait_until("softmodem ptys", Duration::from_secs(10), || {
            dir.join("client0").exists() && dir.join("nas0").exists()
        });
        let mut cmd = Command::new(bin());
        cmd.arg("pns")
            .args(["--listen", &format!("{pns_ip}:1723")])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(std::fs::File::create(dir.join("pns.log")).unwrap());
        match pns {
            PnsSetup::Yaml(text) => {
                std::fs::write(dir.join("users.yaml"), USERS).unwrap();
                std::fs::write(dir.join("users-nt.yaml"), USERS_NT).unwrap();
                std::fs::write(dir.join("pns.yaml"), text).unwrap();
                cmd.arg("--config").arg(dir.join("pns.yaml"));
            }
            PnsSetup::Flags(f) => {
                cmd.args(f);
            }
        }
        let pns = Kill(cmd.spawn().unwrap());
        wait_until("pns listening", Duration::from_secs(15), || {
            read(&dir.join("pns.log")).contains("pns listening")
        });
        let sock = dir.join("pac.sock");
        std::fs::write(
            dir.join("pac.yaml"),
            format!(
                "pac:\n  host_name: e2e\n  hardware_dir: {hw}\n  status_socket: {sock}\n  \
                 local_address: {pac_ip}\n\
                 pns:\n  - {{name: corp, address: {pns_ip}, port: 1723, mode: incoming-call}}\n\
                 lines:\n  - {{id: sm0, device: {dev}, type: modem, profile: softmodem, number: \"5550100\"}}\n\
                 default: {{pns: [corp]}}\n",
                hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware").display(),
                sock = sock.display(),
                dev = dir.join("nas0").display(),
            ),
        )
        .unwrap();
        let pac = Kill(
            Command::new(bin())
                .args(["pac", "--config"])
                .arg(dir.join("pac.yaml"))
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stderr(std::fs::File::create(dir.join("pac.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        let c = Chain {
            dir,
            pns,
            pac,
            _sm: sm,
            _serial: serial,
        };
        wait_until("PAC control connection", Duration::from_secs(15), || {
            c.pns_log().contains("control connection established")
        });
        c.wait_line_idle();
        c
    }

    fn pns_log(&self) -> String {
        read(&self.dir.join("pns.log"))
    }

    fn wait_line_idle(&self) {
        let sock = self.dir.join("pac.sock");
        wait_until("PAC line idle", Duration::from_secs(20), || {
            Command::new(bin())
                .args(["status", "--json", "--socket"])
                .arg(&sock)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("\"modem\": \"Idle\""))
                .unwrap_or(false)
        });
    }

    /// One call; returns (exit code, the JSON report, stderr).
    fn dial(&self, extra: &[&str]) -> (i32, String, String) {
        self.wait_line_idle();
        let out = Command::new(bin())
            .arg("dial")
            .arg("--device")
            .arg(self.dir.join("client0"))
            .args(["--number", "5550100", "--connect-timeout", "15", "--json"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let json = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.code().unwrap_or(-1), json, err)
    }

    /// No process died and no log shows a panic.
    fn assert_healthy(&mut self) {
        assert!(
            self.pns.0.try_wait().unwrap().is_none(),
            "pns died:\n{}",
            self.pns_log()
        );
        assert!(
            self.pac.0.try_wait().unwrap().is_none(),
            "pac died:\n{}",
            read(&self.dir.join("pac.log"))
        );
        for f in ["pns.log", "pac.log", "softmodem.log"] {
            let t = read(&self.dir.join(f));
            assert!(!t.contains("panicked"), "{f}:\n{t}");
        }
    }
}

fn socket_raw_check() -> std::io::Result<()> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(47)),
    )?;
    drop(s);
    Ok(())
}

fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let k = format!("\"{key}\": ");
    let Some(i) = json.find(&k) else {
        return "";
    };
    let rest = &json[i + k.len()..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim_matches('"')
}

/// The dial-side flags and what its report must show.
struct Case {
    auth: &'static str,
    user: &'static str,
    mppe: Option<u16>,
    stateless: bool,
    mppc: bool,
}

impl Case {
    fn args(&self) -> Vec<String> {
        let mut v = vec![
            "--user".to_string(),
            self.user.to_string(),
            "--auth".into(),
            self.auth.into(),
            "--mppc".into(),
            if self.mppc { "on" } else { "off" }.into(),
            "--mppe".into(),
            self.mppe.map_or("none".to_string(), |b| b.to_string()),
            "--ping".into(),
            "3".into(),
        ];
        if self.stateless {
            v.push("--stateless".into());
        }
        v
    }

    fn check(&self, chain: &Chain) {
        let args = self.args();
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, json, err) = chain.dial(&a);
        let what = format!("{} {:?}: exit {code}\n{json}\n{err}", self.auth, a);
        assert_eq!(
            code,
            0,
            "{what}\n--- pns log tail:\n{}",
            tail(&chain.pns_log())
        );
        assert_eq!(field(&json, "ok"), "true", "{what}");
        assert_eq!(field(&json, "auth"), self.auth, "{what}");
        assert_eq!(
            field(&json, "mppe_bits"),
            self.mppe.unwrap_or(0).to_string(),
            "{what}"
        );
        assert_eq!(
            field(&json, "stateless"),
            self.stateless.to_string(),
            "{what}"
        );
        assert_eq!(field(&json, "mppc"), self.mppc.to_string(), "{what}");
        assert_eq!(field(&json, "pings_sent"), "3", "{what}");
        assert_eq!(field(&json, "pings_received"), "3", "{what}");
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A pns.yaml demanding `auth` and permitting every MPPE key length and MPPC (stateless as
/// given). The PNS demands one method per chain: see the note on `matrix`.
fn permissive(auth: &str, stateless: &str) -> String {
    format!(
        "policy:\n  auth: [{auth}]\n  \
         mppe: {{mode: preferred, key_lengths: [40, 56, 128], stateless: {stateless}}}\n  \
         mppc: true\nusers_file: users.yaml\npool: 192.168.78.10-192.168.78.60\n\
         dns: [192.168.78.1]\ndelivery: responder\n"
    )
}

/// One chain per auth method (the PNS demands it), the dial side requiring each MPPE/MPPC
/// combination in turn. A PNS demanding several methods is covered by
/// `pns_demands_several_methods_client_accepts_a_later_one`.
fn matrix(index: u8, auth: &'static str, stateless: bool) {
    let pns = permissive(auth, if stateless { "required" } else { "allowed" });
    let mut chain = Chain::start(index, &["--speed", "115200"], PnsSetup::Yaml(&pns));
    let ms = auth.starts_with("mschap");
    let mppes: &[Option<u16>] = match (ms, stateless) {
        (false, _) => &[None],
        (true, false) => &[None, Some(40), Some(56), Some(128)],
        (true, true) => &[Some(40), Some(56), Some(128)],
    };
    for &mppe in mppes {
        for mppc in [true, false] {
            Case {
                auth,
                user: "alice:secret",
                mppe,
                stateless,
                mppc,
            }
            .check(&chain);
        }
    }
    chain.assert_healthy();
}

#[test]
fn matrix_pap() {
    matrix(0, "pap", false);
}

#[test]
fn matrix_chap() {
    matrix(10, "chap", false);
}

#[test]
fn matrix_mschap_stateful() {
    matrix(11, "mschap", false);
}

#[test]
fn matrix_mschapv2_stateful() {
    matrix(1, "mschapv2", false);
}

#[test]
fn matrix_mschap_stateless() {
    matrix(2, "mschap", true);
}

#[test]
fn matrix_mschapv2_stateless() {
    matrix(12, "mschapv2", true);
}

#[test]
fn nt_hash_user_and_dns_from_pns_yaml() {
    let mut chain = Chain::start(
        3,
        &["--speed", "115200"],
        PnsSetup::Yaml(
            "users_file: users-nt.yaml\npolicy:\n  auth: [mschapv2, mschap]\n  \
             mppe: {mode: preferred, key_lengths: [40, 128]}\n  mppc: true\n\
             pool: 192.168.78.10-192.168.78.60\ndns: [192.168.78.1]\ndelivery: responder\n",
        ),
    );
    let (code, json, err) = chain.dial(&["--user", "bob:password", "--ping", "2"]);
    assert_eq!(code, 0, "{json}\n{err}");
    // Dial without --mppe accepts what the server prefers: MS-CHAPv2, MPPE-128, MPPC.
    assert_eq!(field(&json, "auth"), "mschapv2", "{json}");
    assert_eq!(field(&json, "mppe_bits"), "128", "{json}");
    assert!(json.contains("\"dns\": [\"192.168.78.1\"]"), "{json}");
    assert!(
        field(&json, "local_ip").starts_with("192.168.78."),
        "{json}"
    );
    // A throughput run reports kbit/s and the MPPC ratio (text compresses).
    let (code, json, err) = chain.dial(&["--user", "alice:secret", "--throughput", "1"]);
    assert_eq!(code, 0, "{json}\n{err}");
    let kbps: f64 = field(&json, "throughput_kbps").parse().unwrap();
    let ratio: f64 = field(&json, "compression_ratio").parse().unwrap();
    assert!(kbps > 10.0, "{json}");
    assert!(ratio > 1.2, "{json}");
    chain.assert_healthy();
}

#[test]
fn pns_requires_dial_permits() {
    let mut chain = Chain::start(
        4,
        &["--speed", "115200"],
        PnsSetup::Flags(&[
            "--user",
            "alice:secret",
            "--auth",
            "mschap",
            "--mppe",
            "56",
            "--stateless",
            "--mppc",
            "off",
            "--responder",
        ]),
    );
    let (code, json, err) = chain.dial(&["--user", "alice:secret", "--ping", "3"]);
    assert_eq!(code, 0, "{json}\n{err}");
    assert_eq!(field(&json, "auth"), "mschap", "{json}");
    assert_eq!(field(&json, "mppe_bits"), "56", "{json}");
    assert_eq!(field(&json, "stateless"), "true", "{json}");
    assert_eq!(field(&json, "mppc"), "false", "{json}");
    assert_eq!(field(&json, "pings_received"), "3", "{json}");
    chain.assert_healthy();
}

#[test]
fn mismatched_policies_fail_with_exit_6_on_both_sides() {
    let mut chain = Chain::start(
        5,
        &["--speed", "115200"],
        PnsSetup::Flags(&["--user", "alice:secret", "--mppe", "128", "--responder"]),
    );
    // Server requires MPPE-128, the client allows only 40.
    let (code, json, err) = chain.dial(&["--user", "alice:secret", "--mppe", "40", "--ping", "1"]);
    assert_eq!(code, 6, "{json}\n{err}");
    let line = err
        .lines()
        .rfind(|l| l.starts_with("pptp-nas dial: error:"))
        .unwrap_or("");
    assert!(line.contains("CCP") || line.contains("MPPE"), "{line}");
    wait_until("PNS logs the CCP failure", Duration::from_secs(5), || {
        chain.pns_log().contains("PPP down") && chain.pns_log().contains("CCP")
    });
    chain.assert_healthy();
    // The client wants MPPE, the server (below) disables it.
    drop(chain);
    let mut chain = Chain::start(
        6,
        &["--speed", "115200"],
        PnsSetup::Flags(&["--user", "alice:secret", "--mppe", "none", "--responder"]),
    );
    let (code, json, err) = chain.dial(&["--user", "alice:secret", "--mppe", "128", "--ping", "1"]);
    assert_eq!(code, 6, "{json}\n{err}");
    // The client gives up on CCP and hangs up: the PNS sees the call end and logs why on
    // the call's span (the client's Terminate-Request text).
    wait_until("PNS sees the call end", Duration::from_secs(10), || {
        chain.pns_log().contains("call down")
    });
    let log = chain.pns_log();
    assert!(
        log.contains("PPP down with the call") && log.contains("MPPE negotiation failed"),
        "{}",
        tail(&log)
    );
    // The next call with a matching policy works on the same line.
    let (code, json, err) =
        chain.dial(&["--user", "alice:secret", "--mppe", "none", "--ping", "2"]);
    assert_eq!(code, 0, "{json}\n{err}");
    chain.assert_healthy();
}

#[test]
fn bit_errors_end_cleanly_and_the_next_call_works() {
    let mut chain = Chain::start(
        7,
        &["--speed", "115200", "--ber", "1e-5"],
        PnsSetup::Flags(&["--user", "alice:secret", "--responder"]),
    );
    for _ in 0..2 {
        let (code, json, err) = chain.dial(&["--user", "alice:secret", "--ping", "10"]);
        // A lost ping (exit 8) is what bit errors may cost; anything else is a failure.
        assert!(code == 0 || code == 8, "exit {code}\n{json}\n{err}");
        assert!(
            field(&json, "pings_received").parse::<u32>().unwrap() >= 7,
            "{json}"
        );
    }
    chain.assert_healthy();
}

#[test]
fn carrier_drop_mid_call_then_next_call_works() {
    let mut chain = Chain::start(
        8,
        &["--speed", "115200", "--drop-after", "2.5"],
        PnsSetup::Flags(&["--user", "alice:secret", "--responder"]),
    );
    // 30 pings take 6 s: the carrier drops after 2.5 s.
    let (code, json, err) = chain.dial(&["--user", "alice:secret", "--ping", "30"]);
    assert_eq!(code, 9, "{json}\n{err}");
    assert!(err.contains("carrier lost"), "{err}");
    wait_until("PNS sees the call end", Duration::from_secs(10), || {
        chain.pns_log().contains("call down")
    });
    // A short call fits before the next drop.
    let (code, json, err) = chain.dial(&["--user", "alice:secret", "--ping", "2"]);
    assert_eq!(code, 0, "{json}\n{err}");
    chain.assert_healthy();
}

#[test]
fn wrong_password_five_times_locks_out_until_expiry() {
    let mut chain = Chain::start(
        9,
        &["--speed", "115200"],
        PnsSetup::Yaml(
            "policy:\n  auth: [mschapv2]\nusers_file: users.yaml\ndelivery: responder\n\
             throttle: {free_failures: 10, lockout_after: 5, lockout_s: 3}\n",
        ),
    );
    for i in 0..5 {
        let (code, json, err) = chain.dial(&["--user", "alice:guess-1234", "--ping", "1"]);
        assert_eq!(code, 5, "attempt {i}: {json}\n{err}");
        assert!(err.contains("authentication failed"), "{err}");
    }
    wait_until("PNS logs the lockout", Duration::from_secs(5), || {
        chain.pns_log().contains("locked out")
    });
    let log = chain.pns_log();
    assert!(
        !log.contains("guess-1234"),
        "the log must not show passwords"
    );
    // Locked out: even the right password is refused now.
    let t = Instant::now();
    let (code, json, err) = chain.dial(&["--user", "alice:secret", "--ping", "1"]);
    assert_eq!(code, 5, "locked out: {json}\n{err}");
    assert!(chain
        .pns_log()
        .contains("authentication refused: locked out"));
    // After the lockout (3 s) the right password works.
    std::thread::sleep(
        Duration::from_secs(3).saturating_sub(t.elapsed()) + Duration::from_millis(500),
    );
    let (code, json, err) = chain.dial(&["--user", "alice:secret", "--ping", "2"]);
    assert_eq!(code, 0, "after the lockout: {json}\n{err}");
    chain.assert_healthy();
}

/// The PNS demands several methods, the client accepts only later ones: the LCP
/// Configure-Nak walk-down (RFC 1661 6.3) must converge over the real chain.
#[test]
fn pns_demands_several_methods_client_accepts_a_later_one() {
    let pns = permissive("mschapv2, mschap, chap, pap", "allowed");
    let mut chain = Chain::start(13, &["--speed", "115200"], PnsSetup::Yaml(&pns));
    for (auth, mppe) in [
        ("chap", None),
        ("chap", Some("none")),
        ("mschap", None),
        ("mschap", Some("128")),
        ("pap", None),
        ("pap, chap", None),
    ] {
        let mut args = vec!["--user", "alice:secret", "--auth", auth, "--ping", "1"];
        if let Some(m) = mppe {
            args.extend(["--mppe", m]);
        }
        let (code, json, err) = chain.dial(&args);
        assert_eq!(code, 0, "{auth}: {json}\n{err}");
        let want = auth.split(',').next().unwrap_or("").trim();
        assert_eq!(field(&json, "auth"), want, "{json}");
    }
    chain.assert_healthy();
    drop(chain);
    // The same list on the PNS command line (`--auth` takes a list as dial's does).
    let mut chain = Chain::start(
        14,
        &["--speed", "115200"],
        PnsSetup::Flags(&[
            "--user",
            "alice:secret",
            "--auth",
            "mschapv2,chap",
            "--mppe",
            "none",
            "--responder",
        ]),
    );
    for auth in ["chap", "mschapv2"] {
        let (code, json, err) =
            chain.dial(&["--user", "alice:secret", "--auth", auth, "--ping", "1"]);
        assert_eq!(code, 0, "{auth}: {json}\n{err}");
        assert_eq!(field(&json, "auth"), auth, "{json}");
    }
    chain.assert_healthy();
}
