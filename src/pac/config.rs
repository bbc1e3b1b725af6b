//! The PAC configuration (`configs/pac.yaml`, reference in `docs/CONFIG.md`): schema and
//! semantic validation.
//!
//! Loading is two steps. [`PacConfig::load`] parses the YAML with `deny_unknown_fields`
//! everywhere (schema errors carry file, line, column and field path), then
//! [`PacConfig::validate`] checks what the schema cannot: unique ids, references between
//! sections, hardware profiles that exist and fit the line type, rules that can never match,
//! devices that are missing. Validation reads profile files and `stat`s device paths; it never
//! opens a device. `pptp-nas check-config FILE` runs exactly this.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, ConfigErrors, Source};
use crate::modem::profile::{LineType, Profile};

/// The whole PAC configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PacConfig {
    /// Who we are (sent in Start-Control-Connection-Request) and where things live.
    pub pac: Identity,
    /// The PPTP Network Servers tunnels go to.
    #[serde(default)]
    pub pns: Vec<PnsConfig>,
    /// The modem, ISDN and direct lines.
    pub lines: Vec<LineConfig>,
    /// Tunnel selection rules, evaluated in order; the first that matches decides.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What happens to a call no rule matches (default: refused).
    #[serde(default)]
    pub default: Option<Target>,
    /// Local PPP termination (lines or rules with `terminate`).
    #[serde(default)]
    pub terminate: Option<TerminateConfig>,
}

/// PAC identity and daemon settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Host Name in SCCRQ (at most 64 octets).
    pub host_name: String,
    /// Vendor String in SCCRQ (at most 64 octets).
    #[serde(default = "default_vendor")]
    pub vendor: String,
    /// Firmware Revision in SCCRQ.
    #[serde(default = "one_u16")]
    pub firmware_revision: u16,
    /// Where hardware profiles (`NAME.yaml`) are; relative paths are relative to the
    /// configuration file. Default `hardware` next to the file.
    #[serde(default)]
    pub hardware_dir: Option<PathBuf>,
    /// Unix socket for `pptp-nas status`. Default `/run/pptp-nas/pac.sock`.
    #[serde(default)]
    pub status_socket: Option<PathBuf>,
    /// Local IPv4 address used for GRE and as the TCP source (default: chosen by the kernel).
    #[serde(default)]
    pub local_address: Option<Ipv4Addr>,
}

fn default_vendor() -> String {
    "pptp-nas".into()
}
fn one_u16() -> u16 {
    1
}

/// How the PAC opens calls on a PNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallMode {
    /// RFC 2637 incoming call: ICRQ / ICRP / ICCN.
    IncomingCall,
    /// Compatibility: the PAC places an OCRQ per caller (what pptp-linux does), for servers that
    /// accept only outgoing calls (pptpd, Windows RRAS, MikroTik).
    OutgoingCall,
}

/// One PPTP Network Server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PnsConfig {
    /// Name used by rules.
    pub name: String,
    /// IPv4 address of the server.
    pub address: Ipv4Addr,
    /// TCP port (1723).
    #[serde(default = "default_port")]
    pub port: u16,
    /// `incoming-call` or `outgoing-call`.
    pub mode: CallMode,
    /// Idle seconds before an Echo-Request (RFC 2637: 60).
    #[serde(default = "sixty")]
    pub echo_interval_s: u64,
    /// Seconds to wait for the TCP connection and the SCCRP.
    #[serde(default = "ten")]
    pub connect_timeout_s: u64,
    /// Seconds to wait for ICRP or OCRP.
    #[serde(default = "thirty")]
    pub reply_timeout_s: u64,
    /// First reconnect delay, seconds.
    #[serde(default = "one_u64")]
    pub reconnect_min_s: u64,
    /// Longest reconnect delay, seconds.
    #[serde(default = "sixty")]
    pub reconnect_max_s: u64,
    /// Most calls at once on this server (default: no limit beyond the protocol's).
    #[serde(default)]
    pub max_calls: Option<u16>,
    /// GRE data-plane settings.
    #[serde(default)]
    pub gre: GreSettings,
}

fn default_port() -> u16 {
    1723
}
fn sixty() -> u64 {
    60
}
fn ten() -> u64 {
    10
}
fn thirty() -> u64 {
    30
}
fn one_u64() -> u64 {
    1
}

/// GRE window and reordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GreSettings {
    /// Packet Receive Window Size we offer (1..=64 is customary).
    #[serde(default = "default_window")]
    pub window: u16,
    /// How long an out-of-order packet may wait for the gap to fill, ms (0 = deliver in order
    /// of arrival).
    #[serde(default = "default_reorder")]
    pub reorder_timeout_ms: u64,
}

impl Default for GreSettings {
    fn default() -> Self {
        GreSettings {
            window: default_window(),
            reorder_timeout_ms: default_reorder(),
        }
    }
}

fn default_window() -> u16 {
    64
}
fn default_reorder() -> u64 {
    300
}

/// Kind of line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineKind {
    /// Analog modem (async HDLC).
    Modem,
    /// ISDN terminal adapter (sync framing reported to PPTP).
    Isdn,
    /// No modem (null-modem cable, pty pair): the call starts with the first LCP frame.
    Direct,
}

/// Flow control on the serial port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowControl {
    /// RTS/CTS.
    Rtscts,
    /// None.
    None,
}

/// What a line (or rule) does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineMode {
    /// Tunnel to a PNS chosen by the rules.
    #[default]
    Tunnel,
    /// Terminate PPP locally.
    Terminate,
}

/// One line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Unique id (used in rules, logs and status).
    pub id: String,
    /// Device path (`/dev/ttyS0`, a soft-modem symlink).
    pub device: PathBuf,
    /// `modem`, `isdn` or `direct`.
    #[serde(rename = "type")]
    pub kind: LineKind,
    /// Hardware profile: file stem in `hardware_dir`.
    pub profile: String,
    /// DTE speed, overrides the profile.
    #[serde(default)]
    pub baud: Option<u32>,
    /// Flow control, overrides the profile.
    #[serde(default)]
    pub flow_control: Option<FlowControl>,
    /// Group name used by rules.
    #[serde(default)]
    pub group: Option<String>,
    /// `tunnel` (default) or `terminate`.
    #[serde(default)]
    pub mode: LineMode,
    /// Longest call, seconds (0 or absent: no limit).
    #[serde(default)]
    pub max_session_s: Option<u64>,
    /// Hang up after this many seconds without data in either direction.
    #[serde(default)]
    pub idle_timeout_s: Option<u64>,
    /// The number this line answers (DNIS when the modem does not report one).
    #[serde(default)]
    pub number: Option<String>,
    /// The RING on which the call is offered to the tunnel (default: the profile's `on-ring`,
    /// else 1). Analog caller ID arrives between the first and second RING: use 2 when rules
    /// or an outgoing-call PNS need the caller's number.
    #[serde(default)]
    pub offer_on_ring: Option<u8>,
    /// `false` keeps the line configured but out of service.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A tunnel-selection rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Name for logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Conditions; all given ones must hold. Empty: matches every call.
    #[serde(default, rename = "match")]
    pub when: Match,
    /// PNS names: the primary first, then failovers.
    #[serde(default)]
    pub pns: Vec<String>,
    /// Terminate PPP locally.
    #[serde(default)]
    pub terminate: bool,
    /// Refuse the call (the modem is not answered).
    #[serde(default)]
    pub refuse: bool,
}

impl Rule {
    /// The rule's action.
    pub fn target(&self) -> TargetFields {
        TargetFields {
            pns: self.pns.clone(),
            terminate: self.terminate,
            refuse: self.refuse,
        }
    }
}

/// Conditions of a rule. Within one list any entry may match; across lists all must.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Line ids.
    #[serde(default)]
    pub lines: Vec<String>,
    /// Line groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Dialed-number patterns (`*` any digits, `?` one).
    #[serde(default)]
    pub dnis: Vec<String>,
    /// Calling-number patterns (`*` any digits, `?` one).
    #[serde(default)]
    pub clid: Vec<String>,
}

impl Match {
    /// Whether the rule has no condition (matches every call).
    pub fn is_catch_all(&self) -> bool {
        self.lines.is_empty()
            && self.groups.is_empty()
            && self.dnis.is_empty()
            && self.clid.is_empty()
    }
}

/// What a rule or the default does: tunnel to the first reachable PNS of `pns`, terminate, or
/// refuse.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFields {
    /// PNS names: the primary first, then failovers.
    #[serde(default)]
    pub pns: Vec<String>,
    /// Terminate PPP locally.
    #[serde(default)]
    pub terminate: bool,
    /// Refuse the call (the modem is not answered).
    #[serde(default)]
    pub refuse: bool,
}

/// The `default:` target (same fields as a rule's action).
pub type Target = TargetFields;

/// Local PPP termination settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TerminateConfig {
    /// Users file (`configs/users.yaml` format).
    pub users: PathBuf,
    /// First address of the pool handed to callers.
    pub pool_start: Ipv4Addr,
    /// Pool size.
    pub pool_size: u16,
    /// Our address on the PPP links.
    pub local_ip: Ipv4Addr,
    /// DNS servers offered (RFC 1877).
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// Accepted authentication methods (`pap`, `chap-md5`, `mschap-v1`, `mschap-v2`), in
    /// order of preference.
    #[serde(default = "default_auth")]
    pub auth: Vec<String>,
    /// MPPE demanded: `none` (default), `40`, `56` or `128`.
    #[serde(default = "default_mppe")]
    pub mppe: String,
    /// Offer MPPC compression.
    #[serde(default)]
    pub mppc: bool,
    /// TUN device name; absent: the built-in responder answers. (TUN delivery is not
    /// available in this build: validation refuses it.)
    #[serde(default)]
    pub tun: Option<String>,
}

fn default_mppe() -> String {
    "none".into()
}

fn default_auth() -> Vec<String> {
    vec!["mschap-v2".into()]
}

const AUTH_METHODS: &[&str] = &["pap", "chap-md5", "mschap-v1", "mschap-v2"];

/// How strict validation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidateOptions {
    /// Check that every enabled line's device path exists.
    pub check_devices: bool,
    /// Load hardware profiles from disk (off for configurations built in code that set
    /// profiles with [`LoadedConfig::with_profile`]).
    pub load_profiles: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            check_devices: true,
            load_profiles: true,
        }
    }
}

/// A validated configuration with its hardware profiles loaded.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: PacConfig,
    /// Profile per profile name.
    pub profiles: HashMap<String, Profile>,
    /// Where it came from.
    pub source: Option<PathBuf>,
}

impl LoadedConfig {
    /// Adds (or replaces) a hardware profile under `name` (for configurations built in code).
    pub fn with_profile(mut self, name: &str, profile: Profile) -> Self {
        self.profiles.insert(name.into(), profile);
        self
    }

    /// The profile of `line`.
    pub fn profile(&self, line: &LineConfig) -> Option<&Profile> {
        self.profiles.get(&line.profile)
    }

    /// The PNS named `name`.
    pub fn pns(&self, name: &str) -> Option<&PnsConfig> {
        self.config.pns.iter().find(|p| p.name == name)
    }
}

impl PnsConfig {
    /// Echo interval.
    pub fn echo_interval(&self) -> Duration {
        Duration::from_secs(self.echo_interval_s)
    }
}

impl PacConfig {
    /// Parses the file (schema errors) and validates it (semantic errors).
    pub fn load(path: &Path, opts: ValidateOptions) -> Result<LoadedConfig, ConfigErrors> {
        let src = Source::read(path)?;
        Self::load_source(&src, opts)
    }

    /// Parses and validates text; `label` stands for the file name in errors and relative
    /// paths resolve against the current directory.
    pub fn load_str(
        label: &str,
        text: &str,
        opts: ValidateOptions,
    ) -> Result<LoadedConfig, ConfigErrors> {
        Self::load_source(&Source::from_text(label, text), opts)
    }

    fn load_source(src: &Source, opts: ValidateOptions) -> Result<LoadedConfig, ConfigErrors> {
        let config: PacConfig = src.parse()?;
        let profiles = config.validate(src, opts)?;
        Ok(LoadedConfig {
            config,
            profiles,
            source: Some(src.file.clone()),
        })
    }

    /// The hardware directory for a configuration read from `file`.
    pub fn hardware_dir(&self, file: &Path) -> PathBuf {
        let base = file.parent().unwrap_or_else(|| Path::new("."));
        match &self.pac.hardware_dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => base.join(d),
            None => base.join("hardware"),
        }
    }

    /// Semantic validation; returns the loaded profiles. All errors found are reported.
    pub fn validate(
        &self,
        src: &Source,
        opts: ValidateOptions,
    ) -> Result<HashMap<String, Profile>, ConfigErrors> {
        let mut errs: Vec<ConfigError> = Vec::new();
        let mut err = |path: String, msg: String| errs.push(src.error(&path, msg));

        // ---- identity ----
        if self.pac.host_name.is_empty() || self.pac.host_name.len() > 64 {
            err(
                "pac.host_name".into(),
                "must be 1 to 64 octets (SCCRQ Host Name field)".into(),
            );
        }
        if self.pac.vendor.len() > 64 {
            err(
                "pac.vendor".into(),
                "must be at most 64 octets (SCCRQ Vendor String field)".into(),
            );
        }

        // ---- PNS ----
        let mut pns_names: HashMap<&str, usize> = HashMap::new();
        for (i, p) in self.pns.iter().enumerate() {
            let at = |f: &str| format!("pns[{i}].{f}");
            if p.name.is_empty() {
                err(at("name"), "must not be empty".into());
            } else if let Some(first) = pns_names.insert(&p.name, i) {
                err(
                    at("name"),
                    format!("duplicate PNS name {:?} (first at pns[{first}])", p.name),
                );
            }
            if p.address.is_unspecified() || p.address.is_broadcast() || p.address.is_multicast() {
                err(
                    at("address"),
                    format!("{} is not a unicast address", p.address),
                );
            }
            if p.port == 0 {
                err(at("port"), "must be 1..=65535".into());
            }
            if p.echo_interval_s == 0 {
                err(at("echo_interval_s"), "must be at least 1 second".into());
            }
            if p.connect_timeout_s == 0 || p.reply_timeout_s == 0 {
                let f = if p.connect_timeout_s == 0 {
                    "connect_timeout_s"
                } else {
                    "reply_timeout_s"
                };
                err(at(f), "must be at least 1 second".into());
            }
            if p.reconnect_min_s == 0 {
                err(at("reconnect_min_s"), "must be at least 1 second".into());
            } else if p.reconnect_min_s > p.reconnect_max_s {
                err(
                    at("reconnect_max_s"),
                    format!(
                        "{} is below reconnect_min_s {}",
                        p.reconnect_max_s, p.reconnect_min_s
                    ),
                );
            }
            if p.max_calls == Some(0) {
                err(
                    at("max_calls"),
                    "0 would refuse every call; remove the PNS instead".into(),
                );
            }
            if p.gre.window == 0 {
                err(at("gre.window"), "must be at least 1 packet".into());
            }
            if p.gre.reorder_timeout_ms > 5000 {
                err(
                    at("gre.reorder_timeout_ms"),
                    "more than 5000 ms would stall PPP".into(),
                );
            }
        }

        // ---- lines ----
        if self.lines.is_empty() {
            err("lines".into(), "at least one line is needed".into());
        }
        let hw = src_hardware_dir(self, &src.file);
        let mut profiles: HashMap<String, Profile> = HashMap::new();
        let mut bad_profiles: HashSet<String> = HashSet::new();
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut devices: HashMap<&Path, usize> = HashMap::new();
        let mut groups: HashSet<&str> = HashSet::new();
        for (i, l) in self.lines.iter().enumerate() {
            let at = |f: &str| format!("lines[{i}].{f}");
            if l.id.is_empty() {
                err(at("id"), "must not be empty".into());
            } else if let Some(first) = ids.insert(&l.id, i) {
                err(
                    at("id"),
                    format!("duplicate line id {:?} (first at lines[{first}])", l.id),
                );
            }
            if let Some(first) = devices.insert(&l.device, i) {
                err(
                    at("device"),
                    format!(
                        "device {} already used by lines[{first}]",
                        l.device.display()
                    ),
                );
            }
            if let Some(g) = &l.group {
                groups.insert(g);
            }
            if l.offer_on_ring == Some(0) {
                err(at("offer_on_ring"), "RINGs count from 1".into());
            }
            if l.baud == Some(0) {
                err(at("baud"), "must be positive".into());
            }
            if l.max_session_s == Some(0) || l.idle_timeout_s == Some(0) {
                let f = if l.max_session_s == Some(0) {
                    "max_session_s"
                } else {
                    "idle_timeout_s"
                };
                err(at(f), "0 is not a time-out; leave it out for none".into());
            }
            if let Some(n) = &l.number {
                if !is_phone_number(n) {
                    err(
                        at("number"),
                        format!("{n:?} is not a phone number (digits, +, #, *)"),
                    );
                }
            }
            if l.mode == LineMode::Terminate && self.terminate.is_none() {
                err(
                    at("mode"),
                    "terminate needs a top-level `terminate:` section".into(),
                );
            }
            if opts.check_devices && l.enabled && std::fs::symlink_metadata(&l.device).is_err() {
                err(
                    at("device"),
                    format!("{} does not exist", l.device.display()),
                );
            }
            // Profiles.
            if l.profile.is_empty() || l.profile.contains('/') || l.profile.contains("..") {
                err(
                    at("profile"),
                    format!(
                        "{:?} is not a profile name (file stem in hardware_dir)",
                        l.profile
                    ),
                );
                continue;
            }
            if !opts.load_profiles || bad_profiles.contains(&l.profile) {
                continue;
            }
            if !profiles.contains_key(&l.profile) {
                let file = hw.join(format!("{}.yaml", l.profile));
                match std::fs::read_to_string(&file) {
                    Err(_) => {
                        err(
                            at("profile"),
                            format!(
                                "unknown profile {:?}: {} not found",
                                l.profile,
                                file.display()
                            ),
                        );
                        bad_profiles.insert(l.profile.clone());
                        continue;
                    }
                    Ok(text) => match Profile::from_yaml(&text) {
                        Ok(p) => {
                            profiles.insert(l.profile.clone(), p);
                        }
                        Err(e) => {
                            err(
                                at("profile"),
                                format!("profile {} is invalid: {e}", file.display()),
                            );
                            bad_profiles.insert(l.profile.clone());
                            continue;
                        }
                    },
                }
            }
            if let Some(p) = profiles.get(&l.profile) {
                let fits = matches!(
                    (l.kind, p.line_type),
                    (LineKind::Modem, LineType::Analog)
                        | (LineKind::Isdn, LineType::Isdn)
                        | (LineKind::Direct, LineType::Direct)
                );
                if !fits {
                    err(
                        at("profile"),
                        format!(
                            "profile {:?} is for {:?} lines, this line is {:?}",
                            l.profile, p.line_type, l.kind
                        ),
                    );
                }
            }
        }

        // ---- rules ----
        let mut seen: Vec<(usize, &Match)> = Vec::new();
        let mut catch_all: Option<usize> = None;
        for (i, r) in self.rules.iter().enumerate() {
            let at = |f: &str| format!("rules[{i}].{f}");
            let m = &r.when;
            for (j, id) in m.lines.iter().enumerate() {
                if !ids.contains_key(id.as_str()) {
                    err(
                        at(&format!("match.lines[{j}]")),
                        format!("unknown line {id:?}"),
                    );
                }
            }
            for (j, g) in m.groups.iter().enumerate() {
                if !groups.contains(g.as_str()) {
                    err(
                        at(&format!("match.groups[{j}]")),
                        format!("no line is in group {g:?}"),
                    );
                }
            }
            for (list, name) in [(&m.dnis, "dnis"), (&m.clid, "clid")] {
                for (j, p) in list.iter().enumerate() {
                    if let Err(why) = check_pattern(p) {
                        err(at(&format!("match.{name}[{j}]")), why);
                    }
                }
            }
            if !m.lines.is_empty() && !m.groups.is_empty() {
                let any = self.lines.iter().any(|l| {
                    m.lines.contains(&l.id)
                        && l.group.as_ref().is_some_and(|g| m.groups.contains(g))
                });
                if !any {
                    err(
                        at("match"),
                        "can never match: none of its lines is in any of its groups".into(),
                    );
                }
            }
            if let Some(c) = catch_all {
                err(
                    format!("rules[{i}]"),
                    format!("can never match: rules[{c}] before it matches every call"),
                );
            } else if let Some((j, _)) = seen.iter().find(|(_, s)| *s == m) {
                err(
                    format!("rules[{i}].match"),
                    format!("can never match: same conditions as rules[{j}]"),
                );
            }
            if m.is_catch_all() && catch_all.is_none() {
                catch_all = Some(i);
            }
            seen.push((i, m));
            self.check_target(&r.target(), &format!("rules[{i}]"), &mut err);
        }
        if let Some(d) = &self.default {
            if let Some(c) = catch_all {
                err(
                    "default".into(),
                    format!("is never used: rules[{c}] matches every call"),
                );
            }
            self.check_target(d, "default", &mut err);
        }
        let needs_tunnel = self.lines.iter().any(|l| l.mode == LineMode::Tunnel);
        if needs_tunnel && self.rules.is_empty() && self.default.is_none() {
            err(
                "rules".into(),
                "no rules and no default: every tunnelled call would be refused".into(),
            );
        }
        if let Some(t) = &self.terminate {
            let first = u32::from(t.pool_start);
            if t.pool_size == 0 {
                err("terminate.pool_size".into(), "must be at least 1".into());
            } else if first.checked_add(u32::from(t.pool_size) - 1).is_none() {
                err(
                    "terminate.pool_size".into(),
                    "the pool runs past 255.255.255.255".into(),
                );
            }
            let pool = first..first.saturating_add(u32::from(t.pool_size));
            if pool.contains(&u32::from(t.local_ip)) {
                err(
                    "terminate.local_ip".into(),
                    format!("{} is inside the pool", t.local_ip),
                );
            }
            if t.auth.is_empty() {
                err(
                    "terminate.auth".into(),
                    "at least one method is needed (callers must authenticate)".into(),
                );
            }
            if let Err(e) = crate::config::policy::parse_mppe(&t.mppe) {
                err("terminate.mppe".into(), e.replace("--mppe", "mppe"));
            }
            if t.tun.is_some() {
                err(
                    "terminate.tun".into(),
                    "TUN delivery is not available in this build; leave `tun` out to use the built-in responder".into(),
                );
            }
            let users = if t.users.is_absolute() {
                t.users.clone()
            } else {
                src.file
                    .parent()
                    .unwrap_or_else(|| Path::new("."))
                    .join(&t.users)
            };
            if let Err(e) = super::terminate::UsersFile::load(&users) {
                let msg = if e.line == 0 {
                    format!("users file {}: {}", users.display(), e.message)
                } else {
                    format!("users file: {e}")
                };
                err("terminate.users".into(), msg);
            }
            for (j, a) in t.auth.iter().enumerate() {
                if !AUTH_METHODS.contains(&a.as_str()) {
                    err(
                        format!("terminate.auth[{j}]"),
                        format!("unknown method {a:?} (one of {})", AUTH_METHODS.join(", ")),
                    );
                }
            }
        }
        if errs.is_empty() {
            Ok(profiles)
        } else {
            Err(ConfigErrors(errs))
        }
    }

    fn check_target(&self, t: &TargetFields, at: &str, err: &mut impl FnMut(String, String)) {
        let actions =
            usize::from(!t.pns.is_empty()) + usize::from(t.terminate) + usize::from(t.refuse);
        if actions != 1 {
            err(
                at.into(),
                "needs exactly one of `pns: [..]`, `terminate: true`, `refuse: true`".into(),
            );
        }
        let mut dup: HashSet<&str> = HashSet::new();
        for (j, n) in t.pns.iter().enumerate() {
            if !self.pns.iter().any(|p| &p.name == n) {
                err(format!("{at}.pns[{j}]"), format!("unknown PNS {n:?}"));
            } else if !dup.insert(n) {
                err(format!("{at}.pns[{j}]"), format!("PNS {n:?} listed twice"));
            }
        }
        if t.terminate && self.terminate.is_none() {
            err(
                format!("{at}.terminate"),
                "needs a top-level `terminate:` section".into(),
            );
        }
    }
}

fn src_hardware_dir(c: &PacConfig, file: &Path) -> PathBuf {
    c.hardware_dir(file)
}

/// Digits, `+`, `#`, `*`, and separators people write (`-`, space) are phone numbers.
fn is_phone_number(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_digit()
                || matches!(
                    c,
                    '+' | '#' | '*' | '-' | ' ' | ',' | 'w' | 'W' | 'P' | 'p' | 'T' | 't'
                )
        })
}

/// A number pattern: digits, `+`, `#`, and the wildcards `*` (any run) and `?` (one).
fn check_pattern(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("empty pattern (use `*` to match any number)".into());
    }
    if let Some(c) = p
        .chars()
        .find(|c| !(c.is_ascii_digit() || matches!(c, '+' | '#' | '*' | '?')))
    {
        return Err(format!(
            "{p:?}: {c:?} cannot occur in a phone number (digits, +, #, and wildcards * ?)"
        ));
    }
    Ok(())
}
