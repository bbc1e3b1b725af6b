//! `pptp-nas pns --config pns.yaml`: the PNS settings file and the users file it names.
//!
//! Loaded with the shared [`crate::config`] loader: unknown keys are errors and every error is
//! one line, `FILE:LINE:COLUMN: FIELD.PATH: message`. See `configs/pns.yaml`,
//! `configs/users.yaml` and docs/CONFIG.md.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::policy::parse_auth;
use crate::config::{ConfigError, Source};
use crate::pns::throttle::ThrottleConfig;
use crate::ppp::auth::Secret;
use crate::ppp::ccp::{CcpConfig, MppeMode, Stateless};
use crate::ppp::lcp::AuthMethod;

/// `mppe.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModeFile {
    /// The call fails without MPPE.
    Required,
    /// Asked for; the call goes on without it.
    Preferred,
    /// Accepted when the caller asks.
    Permitted,
    /// Refused.
    Disabled,
}

/// `mppe.stateless`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatelessFile {
    /// Never.
    Never,
    /// When the caller asks.
    Allowed,
    /// Insisted on.
    Required,
}

/// `policy.mppe`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MppeFile {
    /// Whether MPPE is wanted.
    pub mode: ModeFile,
    /// Key lengths allowed, of 40, 56 and 128.
    #[serde(default = "all_key_lengths")]
    pub key_lengths: Vec<u16>,
    /// Stateless mode.
    #[serde(default = "stateless_never")]
    pub stateless: StatelessFile,
}

fn all_key_lengths() -> Vec<u16> {
    vec![40, 56, 128]
}

fn stateless_never() -> StatelessFile {
    StatelessFile::Never
}

/// `policy:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Methods demanded of callers, in order of preference.
    pub auth: Option<Vec<String>>,
    /// MPPE.
    pub mppe: Option<MppeFile>,
    /// MPPC compression.
    pub mppc: Option<bool>,
}

/// `throttle:` (authentication throttling against password guessing).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleFile {
    /// Failures before any delay.
    pub free_failures: Option<u32>,
    /// First delay, milliseconds (doubles with each further failure).
    pub base_delay_ms: Option<u64>,
    /// Longest delay, milliseconds.
    pub max_delay_ms: Option<u64>,
    /// Failures (per user or per source address) that trigger a lockout.
    pub lockout_after: Option<u32>,
    /// Length of a lockout, seconds.
    pub lockout_s: Option<f64>,
    /// A record with no failure for this long is forgotten, seconds.
    pub forget_after_s: Option<f64>,
}

/// The PNS file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PnsFile {
    /// TCP address for control connections (its IPv4 address also binds raw GRE).
    pub listen: Option<String>,
    /// The users file, relative to this file.
    pub users_file: Option<PathBuf>,
    /// PPP policy.
    #[serde(default)]
    pub policy: PolicyFile,
    /// Caller addresses, `FIRST-LAST`.
    pub pool: Option<String>,
    /// DNS servers handed out in IPCP (at most two).
    pub dns: Option<Vec<Ipv4Addr>>,
    /// Where the callers' packets go: `responder` (built-in ICMP/UDP echo and discard),
    /// `tun` (one TUN interface per call, named by `tun`; root or CAP_NET_ADMIN) or `none`
    /// (dropped).
    pub delivery: Option<String>,
    /// TUN name prefix per call with `delivery: tun` (`PREFIX%d`, the kernel numbers it; a
    /// prefix containing `%d` is used as given) [default: `pns`].
    pub tun: Option<String>,
    /// Throttle settings.
    #[serde(default)]
    pub throttle: ThrottleFile,
}

/// One entry of the users file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFile {
    /// User name.
    pub name: String,
    /// Cleartext password (needed for PAP and CHAP-MD5).
    pub password: Option<String>,
    /// NT password hash, 32 hex digits (enough for MS-CHAP v1/v2).
    pub nt_hash: Option<String>,
    /// A fixed address for this user.
    pub ip: Option<Ipv4Addr>,
}

/// The users file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// The users.
    pub users: Vec<UserFile>,
}

/// A validated user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Name.
    pub name: String,
    /// Password or NT hash.
    pub secret: Secret,
    /// Fixed address, if any.
    pub ip: Option<Ipv4Addr>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret's Debug never prints it.
        f.debug_struct("User")
            .field("name", &self.name)
            .field("secret", &self.secret)
            .field("ip", &self.ip)
            .finish()
    }
}

/// The validated file: every value that was given (absent ones stay `None`).
#[derive(Debug, Clone, Default)]
pub struct PnsConfig {
    /// Listen address.
    pub listen: Option<SocketAddr>,
    /// Users from the users file.
    pub users: Vec<User>,
    /// Auth methods.
    pub auth: Option<Vec<AuthMethod>>,
    /// MPPE settings (mode, keys, stateless); MPPC is in `mppc`.
    pub mppe: Option<(MppeMode, [bool; 3], Stateless)>,
    /// MPPC.
    pub mppc: Option<bool>,
    /// Pool.
    pub pool: Option<(Ipv4Addr, Ipv4Addr)>,
    /// DNS.
    pub dns: [Option<Ipv4Addr>; 2],
    /// Responder on.
    pub responder: Option<bool>,
    /// TUN name prefix per call (`delivery: tun`).
    pub tun: Option<String>,
    /// Throttle.
    pub throttle: ThrottleConfig,
}

impl PnsConfig {
    /// Applies the MPPE/MPPC part to `ccp`.
    pub fn apply_ccp(&self, ccp: &mut CcpConfig) {
        if let Some((mode, [k40, k56, k128], st)) = self.mppe {
            ccp.mppe = mode;
            ccp.allow_40 = k40;
            ccp.allow_56 = k56;
            ccp.allow_128 = k128;
            ccp.stateless = st;
        }
        if let Some(m) = self.mppc {
            ccp.mppc = m;
        }
    }
}

/// Parses `FIRST-LAST`.
pub fn parse_pool(s: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("pool {s}: expected FIRST-LAST"))?;
    let a: Ipv4Addr = a.trim().parse().map_err(|e| format!("pool {s}: {e}"))?;
    let b: Ipv4Addr = b.trim().parse().map_err(|e| format!("pool {s}: {e}"))?;
    if u32::from(a) > u32::from(b) || u32::from(a) < 2 {
        return Err(format!("pool {s}: empty range"));
    }
    Ok((a, b))
}

fn parse_hash(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut h = [0u8; 16];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(h)
}

fn secs(src: &Source, path: &str, v: f64) -> Result<Duration, ConfigError> {
    if v.is_finite() && (0.0..=31_536_000.0).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(src.error(
            path,
            format!("{v}: expected seconds between 0 and 31536000"),
        ))
    }
}

/// Validates the users file.
pub fn users_from(src: &Source) -> Result<Vec<User>, ConfigError> {
    let f: UsersFile = src.parse()?;
    let mut out: Vec<User> = Vec::new();
    for (i, u) in f.users.iter().enumerate() {
        let at = |k: &str| format!("users[{i}].{k}");
        if u.name.is_empty() {
            return Err(src.error(&at("name"), "empty user name"));
        }
        if let Some(j) = out.iter().position(|o| o.name == u.name) {
            return Err(src.error(
                &at("name"),
                format!("duplicate user {:?} (first at users[{j}])", u.name),
            ));
        }
        let secret = match (&u.password, &u.nt_hash) {
            (Some(p), None) => Secret::Password(p.as_bytes().to_vec()),
            (None, Some(h)) => Secret::NtHash(parse_hash(h).ok_or_else(|| {
                src.error(
                    &at("nt_hash"),
                    "expected 32 hex digits (MD4 of the UTF-16LE password)",
                )
            })?),
            (Some(_), Some(_)) => {
                return Err(src.error(&at("name"), "give password or nt_hash, not both"))
            }
            (None, None) => return Err(src.error(&at("name"), "user without password or nt_hash")),
        };
        if let Some(ip) = u.ip {
            if let Some(o) = out.iter().find(|o| o.ip == Some(ip)) {
                return Err(src.error(
                    &at("ip"),
                    format!("address {ip} already given to {:?}", o.name),
                ));
            }
        }
        out.push(User {
            name: u.name.clone(),
            secret,
            ip: u.ip,
        });
    }
    if out.is_empty() {
        return Err(src.error("users", "no users"));
    }
    Ok(out)
}

/// Validates a PNS file; `read_users` loads the named users file (relative paths are resolved
/// against the PNS file's directory).
pub fn from_source(
    src: &Source,
    read_users: impl FnOnce(&Path) -> Result<Source, ConfigError>,
) -> Result<PnsConfig, ConfigError> {
    let f: PnsFile = src.parse()?;
    let mut c = PnsConfig::default();
    if let Some(l) = &f.listen {
        c.listen = Some(
            l.parse()
                .map_err(|_| src.error("listen", format!("{l:?}: expected ADDRESS:PORT")))?,
        );
    }
    if let Some(a) = &f.policy.auth {
        if a.is_empty() {
            return Err(src.error("policy.auth", "no authentication method"));
        }
        let mut v = Vec::new();
        for (i, m) in a.iter().enumerate() {
            let m = parse_auth(m).map_err(|e| src.error(&format!("policy.auth[{i}]"), e))?;
            if !v.contains(&m) {
                v.push(m);
            }
        }
        c.auth = Some(v);
    }
    if let Some(m) = &f.policy.mppe {
        let mut keys = [false; 3];
        for (i, k) in m.key_lengths.iter().enumerate() {
            let slot = match k {
                40 => keys.get_mut(0),
                56 => keys.get_mut(1),
                128 => keys.get_mut(2),
                _ => None,
            };
            match slot {
                Some(s) => *s = true,
                None => {
                    return Err(src.error(
                        &format!("policy.mppe.key_lengths[{i}]"),
                        format!("{k}: expected 40, 56 or 128"),
                    ))
                }
            }
        }
        let mode = match m.mode {
            ModeFile::Required => MppeMode::Required,
            ModeFile::Preferred => MppeMode::Preferred,
            ModeFile::Permitted => MppeMode::Permitted,
            ModeFile::Disabled => MppeMode::Disabled,
        };
        if mode != MppeMode::Disabled && keys == [false; 3] {
            return Err(src.error("policy.mppe.key_lengths", "no key length allowed"));
        }
        let st = match m.stateless {
            StatelessFile::Never => Stateless::Off,
            StatelessFile::Allowed => Stateless::Allowed,
            StatelessFile::Required => Stateless::Required,
        };
        if mode == MppeMode::Disabled && st == Stateless::Required {
            return Err(src.error(
                "policy.mppe.stateless",
                "stateless required but MPPE disabled",
            ));
        }
        c.mppe = Some((mode, keys, st));
    }
    c.mppc = f.policy.mppc;
    if let Some(p) = &f.pool {
        c.pool = Some(parse_pool(p).map_err(|e| src.error("pool", e))?);
    }
    if let Some(d) = &f.dns {
        if d.len() > 2 {
            return Err(src.error("dns", "at most two DNS servers"));
        }
        c.dns = [d.first().copied(), d.get(1).copied()];
    }
    c.responder = match f.delivery.as_deref() {
        None => None,
        Some("responder") => Some(true),
        Some("none") => Some(false),
        Some("tun") => {
            c.tun = Some(f.tun.clone().unwrap_or_else(|| "pns".to_string()));
            Some(false)
        }
        Some(o) => {
            return Err(src.error(
                "delivery",
                format!("{o:?}: expected responder, tun or none"),
            ))
        }
    };
    if f.tun.is_some() && c.tun.is_none() {
        return Err(src.error("tun", "set only with `delivery: tun`"));
    }
    let t = &f.throttle;
    let mut th = ThrottleConfig::default();
    if let Some(v) = t.free_failures {
        th.free_failures = v;
    }
    if let Some(v) = t.base_delay_ms {
        th.base_delay = Duration::from_millis(v);
    }
    if let Some(v) = t.max_delay_ms {
        th.max_delay = Duration::from_millis(v);
    }
    if let Some(v) = t.lockout_after {
        if v == 0 {
            return Err(src.error("throttle.lockout_after", "must be at least 1"));
        }
        th.lockout_after = v;
    }
    if let Some(v) = t.lockout_s {
        th.lockout = secs(src, "throttle.lockout_s", v)?;
    }
    if let Some(v) = t.forget_after_s {
        th.forget_after = secs(src, "throttle.forget_after_s", v)?;
    }
    if th.max_delay < th.base_delay {
        return Err(src.error("throttle.max_delay_ms", "smaller than base_delay_ms"));
    }
    c.throttle = th;
    if let Some(u) = &f.users_file {
        let path = match src.file.parent() {
            Some(dir) if u.is_relative() => dir.join(u),
            _ => u.clone(),
        };
        let usrc = read_users(&path).map_err(|mut e| {
            if e.line == 0 {
                // Cannot read it: say where it was named.
                let at = src.error("users_file", e.message.clone());
                e = ConfigError {
                    message: format!("{}: {}", path.display(), e.message),
                    ..at
                };
            }
            e
        })?;
        c.users = users_from(&usrc)?;
    }
    // PAP and CHAP-MD5 need the cleartext password.
    if let Some(auth) = &c.auth {
        let clear = auth
            .iter()
            .any(|m| matches!(m, AuthMethod::Pap | AuthMethod::ChapMd5));
        if let Some(u) = c
            .users
            .iter()
            .find(|u| clear && matches!(u.secret, Secret::NtHash(_)))
        {
            return Err(src.error(
                "policy.auth",
                format!(
                    "pap/chap need cleartext passwords, but user {:?} has only an nt_hash",
                    u.name
                ),
            ));
        }
    }
    Ok(c)
}

/// Loads a PNS file and its users file.
pub fn load(path: &Path) -> Result<PnsConfig, ConfigError> {
    let src = Source::read(path)?;
    from_source(&src, Source::read)
}

#[cfg(test)]
mod test {
    use super::*;

    fn users(text: &'static str) -> impl FnOnce(&Path) -> Result<Source, ConfigError> {
        move |p: &Path| Ok(Source::from_text(p, text))
    }

    const USERS: &str = "users:\n  - name: alice\n    password: secret\n  - name: bob\n    \
                         nt_hash: 8846F7EAEE8FB117AD06BDD830B7586C\n    ip: 192.168.77.20\n";

    #[test]
    fn example_files_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let c = load(&dir.join("pns.yaml")).unwrap();
        assert!(!c.users.is_empty());
        assert!(c.listen.is_some() && c.pool.is_some());
        let (mode, keys, _) = c.mppe.unwrap();
        assert_eq!(mode, MppeMode::Required);
        assert_eq!(keys, [false, false, true]);
    }

    #[test]
    fn delivery_tun_takes_a_prefix_or_the_default() {
        let load = |text: &'static str| {
            let src = Source::from_text("/etc/pns.yaml", text);
            from_source(&src, users(USERS)).unwrap()
        };
        let c = load("users_file: u.yaml\ndelivery: tun\n");
        assert_eq!((c.tun.as_deref(), c.responder), (Some("pns"), Some(false)));
        let c = load("users_file: u.yaml\ndelivery: tun\ntun: call%d\n");
        assert_eq!(c.tun.as_deref(), Some("call%d"));
        let c = load("users_file: u.yaml\ndelivery: responder\n");
        assert_eq!((c.tun.as_deref(), c.responder), (None, Some(true)));
    }

    #[test]
    fn full_file() {
        let src = Source::from_text(
            "/etc/pns.yaml",
            "listen: 127.0.0.1:1723\nusers_file: users.yaml\npolicy:\n  auth: [mschapv2, mschap]\n  \
             mppe: {mode: preferred, key_lengths: [40, 128], stateless: allowed}\n  mppc: false\n\
             pool: 10.0.0.10-10.0.0.20\ndns: [10.0.0.1, 10.0.0.2]\ndelivery: none\n\
             throttle: {lockout_after: 3, lockout_s: 2, base_delay_ms: 0}\n",
        );
        let mut seen = PathBuf::new();
        let c = from_source(&src, |p| {
            seen = p.to_path_buf();
            Ok(Source::from_text(p, USERS))
        })
        .unwrap();
        assert_eq!(seen, PathBuf::from("/etc/users.yaml"));
        assert_eq!(
            c.auth,
            Some(vec![AuthMethod::MsChapV2, AuthMethod::MsChapV1])
        );
        assert_eq!(
            c.mppe,
            Some((MppeMode::Preferred, [true, false, true], Stateless::Allowed))
        );
        assert_eq!(c.mppc, Some(false));
        assert_eq!(
            c.dns,
            [
                Some(Ipv4Addr::new(10, 0, 0, 1)),
                Some(Ipv4Addr::new(10, 0, 0, 2))
            ]
        );
        assert_eq!(c.responder, Some(false));
        assert_eq!(c.throttle.lockout_after, 3);
        assert_eq!(c.throttle.lockout, Duration::from_secs(2));
        assert_eq!(c.users.len(), 2);
        assert_eq!(c.users[1].ip, Some(Ipv4Addr::new(192, 168, 77, 20)));
        // NT hash of "password" (RFC 2759 style test value).
        assert_eq!(
            c.users[1].secret,
            Secret::NtHash([
                0x88, 0x46, 0xF7, 0xEA, 0xEE, 0x8F, 0xB1, 0x17, 0xAD, 0x06, 0xBD, 0xD8, 0x30, 0xB7,
                0x58, 0x6C
            ])
        );
        let mut ccp = CcpConfig::default();
        c.apply_ccp(&mut ccp);
        assert!(ccp.allow_40 && !ccp.allow_56 && ccp.allow_128 && !ccp.mppc);
        assert!(format!("{:?}", c.users).contains("Secret::Password(..)"));
        assert!(!format!("{:?}", c.users).contains("secret\""));
    }

    /// At least ten broken files, each a clear one-line error naming file, line and field.
    #[test]
    fn broken_files_table() {
        let cases: &[(&str, &str, &str)] = &[
            ("lisen: 1.2.3.4:1\n", USERS, "unknown field `lisen`"),
            ("listen: nowhere\n", USERS, "listen: \"nowhere\": expected ADDRESS:PORT"),
            ("policy:\n  auth: [mschapv2, eap]\n", USERS, "policy.auth[1]: --auth eap"),
            ("policy:\n  auth: []\n", USERS, "no authentication method"),
            ("policy:\n  mppe: {mode: always}\n", USERS, "unknown variant `always`"),
            ("policy:\n  mppe: {mode: required, key_lengths: [64]}\n", USERS, "64: expected 40, 56 or 128"),
            ("policy:\n  mppe: {mode: required, key_lengths: []}\n", USERS, "no key length"),
            ("policy:\n  mppe: {mode: disabled, stateless: required}\n", USERS, "MPPE disabled"),
            ("pool: 10.0.0.9-10.0.0.1\n", USERS, "empty range"),
            ("dns: [1.1.1.1, 2.2.2.2, 3.3.3.3]\n", USERS, "at most two"),
            ("dns: [not-an-ip]\n", USERS, "dns"),
            ("delivery: tunnel\n", USERS, "expected responder, tun or none"),
            ("tun: ppp\n", USERS, "set only with `delivery: tun`"),
            ("throttle: {lockout_after: 0}\n", USERS, "at least 1"),
            ("throttle: {lockout_s: -1}\n", USERS, "expected seconds"),
            ("throttle: {base_delay_ms: 10, max_delay_ms: 1}\n", USERS, "smaller than"),
            ("users_file: u.yaml\n", "users:\n  - name: a\n", "without password or nt_hash"),
            ("users_file: u.yaml\n", "users:\n  - name: a\n    password: x\n    nt_hash: 00\n", "not both"),
            ("users_file: u.yaml\n", "users:\n  - name: a\n    nt_hash: 1234\n", "32 hex digits"),
            ("users_file: u.yaml\n", "users:\n  - name: a\n    password: x\n  - name: a\n    password: y\n", "duplicate user \"a\""),
            ("users_file: u.yaml\n", "users:\n  - name: a\n    pasword: x\n", "unknown field `pasword`"),
            ("users_file: u.yaml\n", "users:\n  - {name: a, password: x, ip: 1.2.3.4}\n  - {name: b, password: y, ip: 1.2.3.4}\n", "already given"),
            ("users_file: u.yaml\n", "users: []\n", "no users"),
            ("users_file: u.yaml\npolicy:\n  auth: [pap]\n", USERS, "cleartext passwords"),
            ("policy: [\n", USERS, "pns.yaml:"),
        ];
        assert!(cases.len() >= 10);
        for (pns, users_text, want) in cases {
            let src = Source::from_text("pns.yaml", *pns);
            let e = from_source(&src, users(users_text))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{pns:?} / {users_text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
            assert!(
                e.starts_with("pns.yaml:") || e.starts_with("u.yaml:"),
                "names the file: {e}"
            );
            assert!(!e.contains(":0:0:"), "has a position: {e}");
        }
    }

    #[test]
    fn unreadable_users_file_is_placed_at_users_file() {
        let src = Source::from_text(
            "pns.yaml",
            "listen: 127.0.0.1:1723\nusers_file: /nonexistent/u.yaml\n",
        );
        let e = from_source(&src, Source::read).unwrap_err().to_string();
        assert!(e.starts_with("pns.yaml:2:"), "{e}");
        assert!(e.contains("/nonexistent/u.yaml"), "{e}");
    }
}
