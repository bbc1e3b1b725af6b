//! `pptp-nas lab`: the whole chain in one process, built from the real components, in real
//! time.
//!
//! - Lines: one `pptp-nas softmodem` pty pair per client ([`Softmodem`], in a temporary
//!   directory), with the asked line speed, bit-error rate and caller number `555NNNN`.
//! - PAC: the real [`Pac`] with a generated configuration whose lines are the soft-modems'
//!   `nas` ptys (profile `hardware/softmodem.yaml`, compiled in), incoming-call mode, one PNS.
//! - PNS: the real daemon ([`pns::daemon::serve`]) on an ephemeral loopback TCP port, with the
//!   built-in responder; GRE between PAC and PNS goes through [`crate::pac::gre::pair`], or
//!   with `--raw-gre` through raw IPv4 protocol-47 sockets on two loopback addresses (root).
//! - Clients: [`client`], one per line: `ATDT`, `CONNECT`, PPP client, pings, a bulk stream to
//!   the discard port, hang-up.
//!
//! The stages printed come from what the components report: the clients' PPP events, the
//! PNS's event stream and counters ([`PnsMonitor`]), and the PAC's status (line states,
//! polled every 10 ms). Nothing here relays or decides on behalf of the PAC or the PNS.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod cli;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::dial::{self, DialArgs, DialOptions};
use crate::io::gre_transport::RawGreSocket;
use crate::io::softmodem::{Softmodem, SoftmodemOptions};
use crate::modem::profile::Profile;
use crate::modem::sim::SimConfig;
use crate::pac::config::{PacConfig, ValidateOptions};
use crate::pac::{gre as pac_gre, Pac};
use crate::pns;
use crate::pns::daemon::{PnsEvent, PnsGre, PnsMonitor, PnsOptions};
use crate::ppp::lcp::AuthMethod;

/// What the lab runs.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Dial-in clients (one soft-modem line each).
    pub clients: usize,
    /// Line speed, bit/s.
    pub speed: u32,
    /// Bit-error rate on the lines.
    pub ber: f64,
    /// The authentication method the PNS demands.
    pub auth: AuthMethod,
    /// MPPE key length required (`None`: MPPE disabled).
    pub mppe_bits: Option<u16>,
    /// Stateless MPPE.
    pub stateless: bool,
    /// MPPC compression.
    pub mppc: bool,
    /// Length of the throughput run.
    pub duration: Duration,
    /// Pings per client.
    pub pings: u32,
    /// Drop carrier this long after CONNECT (fault injection).
    pub drop_after: Option<Duration>,
    /// The password the clients use (a wrong one exercises the failure path).
    pub client_password: String,
    /// Raw GRE sockets between PAC and PNS (root) instead of the in-process pair.
    pub raw_gre: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            clients: 1,
            speed: 33_600,
            ber: 0.0,
            auth: AuthMethod::MsChapV2,
            mppe_bits: Some(128),
            stateless: false,
            mppc: true,
            duration: Duration::from_secs(3),
            pings: 5,
            drop_after: None,
            client_password: LAB_PASSWORD.to_string(),
            raw_gre: false,
        }
    }
}

const LAB_USER: &str = "alice";
const LAB_PASSWORD: &str = "lab-secret";
const POOL: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(192, 168, 77, 10),
    Ipv4Addr::new(192, 168, 77, 250),
);
/// The number every client dials.
const NUMBER: &str = "5551234";
/// `pptp-nas dial`'s ping interval (for the progress bar's time axis).
const PING_INTERVAL: Duration = Duration::from_millis(200);
/// Most clients one lab runs (the address pool).
pub const MAX_CLIENTS: usize = 200;
const SOFTMODEM_PROFILE: &str = include_str!("../../hardware/softmodem.yaml");

/// The name of an authentication method as the CLI and JSON spell it.
pub fn auth_name(m: AuthMethod) -> &'static str {
    match m {
        AuthMethod::Pap => "pap",
        AuthMethod::ChapMd5 => "chap",
        AuthMethod::MsChapV1 => "mschap",
        AuthMethod::MsChapV2 => "mschapv2",
    }
}

/// One progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The client it concerns (`None`: the whole lab).
    pub client: Option<usize>,
    /// What happened.
    pub text: String,
}

impl Stage {
    /// A stage of client `i`.
    pub fn client(i: usize, text: String) -> Stage {
        Stage {
            client: Some(i),
            text,
        }
    }
    fn lab(text: impl Into<String>) -> Stage {
        Stage {
            client: None,
            text: text.into(),
        }
    }
}

/// Result of one client.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientReport {
    /// Authentication method used (`None` if authentication never completed).
    pub auth: Option<AuthMethod>,
    /// MPPE key length (0: none).
    pub mppe_bits: u16,
    /// Stateless MPPE in use.
    pub stateless: bool,
    /// MPPC in use.
    pub mppc: bool,
    /// Address the client got.
    pub local_ip: Option<Ipv4Addr>,
    /// The PNS's address.
    pub peer_ip: Option<Ipv4Addr>,
    /// Pings sent.
    pub pings_sent: u32,
    /// Pings answered.
    pub pings_received: u32,
    /// Median RTT in ms.
    pub rtt_ms_median: Option<f64>,
    /// Bulk throughput of IP octets, kbit/s.
    pub throughput_kbps: f64,
    /// MPPC ratio on the client's transmit path (plain / wire octets).
    pub compression_ratio: f64,
    /// IP octets the bulk stream sent.
    pub bulk_octets: u64,
    /// Time from dialling to IPCP open.
    pub setup_time: Option<Duration>,
    /// What went wrong.
    pub errors: Vec<String>,
}

/// PAC counters (from its status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacCounters {
    /// Calls that came up on the lines.
    pub calls: u64,
    /// Calls refused.
    pub refused: u64,
    /// PPP frames relayed line -> GRE.
    pub frames_to_gre: u64,
    /// PPP octets relayed line -> GRE.
    pub octets_to_gre: u64,
    /// PPP frames relayed GRE -> line.
    pub frames_to_line: u64,
    /// PPP octets relayed GRE -> line.
    pub octets_to_line: u64,
    /// HDLC frames dropped (bad FCS, aborts, too long).
    pub hdlc_errors: u64,
    /// GRE sequence gaps.
    pub gre_lost: u64,
    /// GRE packets for no known call.
    pub gre_unknown: u64,
    /// Control connections established.
    pub control_connects: u64,
}

/// PNS counters (from its [`PnsMonitor`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PnsCounters {
    /// Control connections accepted.
    pub connections: u64,
    /// Calls accepted (ICRP).
    pub calls_accepted: u64,
    /// Calls up (ICCN).
    pub calls_up: u64,
    /// Calls ended.
    pub calls_ended: u64,
    /// Successful authentications.
    pub auth_ok: u64,
    /// Failed authentications.
    pub auth_failed: u64,
    /// Authentication lockouts started.
    pub auth_lockouts: u64,
    /// Authentications refused because of a lockout.
    pub auth_refused_locked: u64,
    /// ICMP echo requests answered.
    pub icmp_echo: u64,
    /// Discard-service octets taken.
    pub discard_octets: u64,
    /// GRE packets delivered to calls.
    pub gre_delivered: u64,
    /// GRE packets dropped.
    pub gre_dropped: u64,
}

impl PnsCounters {
    fn read(c: &pns::daemon::PnsCounters) -> Self {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        PnsCounters {
            connections: l(&c.connections),
            calls_accepted: l(&c.calls_accepted),
            calls_up: l(&c.calls_up),
            calls_ended: l(&c.calls_ended),
            auth_ok: l(&c.auth_ok),
            auth_failed: l(&c.auth_failed),
            auth_lockouts: l(&c.auth_lockouts),
            auth_refused_locked: l(&c.auth_refused_locked),
            icmp_echo: l(&c.icmp_echo),
            discard_octets: l(&c.discard_octets),
            gre_delivered: l(&c.gre_delivered),
            gre_dropped: l(&c.gre_dropped),
        }
    }
}

/// The outcome of a lab run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabReport {
    /// Every client did what was asked.
    pub ok: bool,
    /// Per client.
    pub clients: Vec<ClientReport>,
    /// PAC counters.
    pub pac: PacCounters,
    /// PNS counters.
    pub pns: PnsCounters,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Why the lab itself could not run (no chain was built), if so.
    pub setup_error: Option<String>,
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_f64(x: f64) -> String {
    if x.is_finite() {
        format!("{:.3}", x)
    } else {
        "null".to_string()
    }
}

fn json_opt_ip(ip: Option<Ipv4Addr>) -> String {
    ip.map_or("null".to_string(), |i| json_str(&i.to_string()))
}

impl LabReport {
    /// The one JSON object `--json` prints.
    pub fn to_json(&self) -> String {
        let mut o = String::new();
        let _ = write!(o, "{{\"ok\": {}, \"clients\": [", self.ok);
        for (i, c) in self.clients.iter().enumerate() {
            if i > 0 {
                o.push_str(", ");
            }
            let errors: Vec<String> = c.errors.iter().map(|e| json_str(e)).collect();
            let _ = write!(
                o,
                "{{\"auth\": {}, \"mppe_bits\": {}, \"stateless\": {}, \"mppc\": {}, \
                 \"local_ip\": {}, \"peer_ip\": {}, \"pings_sent\": {}, \"pings_received\": {}, \
                 \"rtt_ms_median\": {}, \"throughput_kbps\": {}, \"compression_ratio\": {}, \
                 \"errors\": [{}]}}",
                c.auth
                    .map_or("null".to_string(), |a| json_str(auth_name(a))),
                c.mppe_bits,
                c.stateless,
                c.mppc,
                json_opt_ip(c.local_ip),
                json_opt_ip(c.peer_ip),
                c.pings_sent,
                c.pings_received,
                c.rtt_ms_median.map_or("null".to_string(), json_f64),
                json_f64(c.throughput_kbps),
                json_f64(c.compression_ratio),
                errors.join(", ")
            );
        }
        let p = &self.pac;
        let _ = write!(
            o,
            "], \"pac\": {{\"calls\": {}, \"refused\": {}, \"frames_to_gre\": {}, \
             \"octets_to_gre\": {}, \"frames_to_line\": {}, \"octets_to_line\": {}, \
             \"hdlc_errors\": {}, \"gre_lost\": {}, \"gre_unknown\": {}, \"control_connects\": {}}}",
            p.calls,
            p.refused,
            p.frames_to_gre,
            p.octets_to_gre,
            p.frames_to_line,
            p.octets_to_line,
            p.hdlc_errors,
            p.gre_lost,
            p.gre_unknown,
            p.control_connects
        );
        let n = &self.pns;
        let _ = write!(
            o,
            ", \"pns\": {{\"connections\": {}, \"calls_accepted\": {}, \"calls_up\": {}, \
             \"calls_ended\": {}, \"auth_ok\": {}, \"auth_failed\": {}, \"auth_lockouts\": {}, \
             \"auth_refused_locked\": {}, \"icmp_echo\": {}, \"discard_octets\": {}, \
             \"gre_delivered\": {}, \"gre_dropped\": {}}}",
            n.connections,
            n.calls_accepted,
            n.calls_up,
            n.calls_ended,
            n.auth_ok,
            n.auth_failed,
            n.auth_lockouts,
            n.auth_refused_locked,
            n.icmp_echo,
            n.discard_octets,
            n.gre_delivered,
            n.gre_dropped
        );
        if let Some(e) = &self.setup_error {
            let _ = write!(o, ", \"setup_error\": {}", json_str(e));
        }
        o.push('}');
        o
    }

    /// A human-readable summary table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{:<3} {:<9} {:>4} {:<9} {:<4} {:<15} {:>7} {:>8} {:>9} {:>6} {:>7}  errors",
            "#",
            "auth",
            "mppe",
            "mode",
            "mppc",
            "address",
            "pings",
            "rtt ms",
            "kbit/s",
            "ratio",
            "setup s"
        );
        for (i, c) in self.clients.iter().enumerate() {
            let _ = writeln!(
                o,
                "{:<3} {:<9} {:>4} {:<9} {:<4} {:<15} {:>7} {:>8} {:>9.1} {:>6.2} {:>7}  {}",
                i,
                c.auth.map_or("-", auth_name),
                c.mppe_bits,
                if c.stateless { "stateless" } else { "stateful" },
                if c.mppc { "on" } else { "off" },
                c.local_ip.map_or("-".to_string(), |a| a.to_string()),
                format!("{}/{}", c.pings_received, c.pings_sent),
                c.rtt_ms_median
                    .map_or("-".to_string(), |r| format!("{r:.1}")),
                c.throughput_kbps,
                c.compression_ratio,
                c.setup_time
                    .map_or("-".to_string(), |d| format!("{:.2}", d.as_secs_f64())),
                if c.errors.is_empty() {
                    "none".to_string()
                } else {
                    c.errors.join("; ")
                }
            );
        }
        let p = &self.pac;
        let _ = writeln!(
            o,
            "PAC: {} calls, {} refused, {} frames / {} octets to GRE, {} frames / {} octets to lines, {} HDLC errors, {} GRE lost, {} GRE unknown",
            p.calls,
            p.refused,
            p.frames_to_gre,
            p.octets_to_gre,
            p.frames_to_line,
            p.octets_to_line,
            p.hdlc_errors,
            p.gre_lost,
            p.gre_unknown
        );
        let n = &self.pns;
        let _ = writeln!(
            o,
            "PNS: {} calls accepted, {} ended, {} auth ok, {} auth failed ({} lockouts, {} refused while locked), {} echo replies, {} octets discarded, {} GRE delivered, {} dropped",
            n.calls_accepted,
            n.calls_ended,
            n.auth_ok,
            n.auth_failed,
            n.auth_lockouts,
            n.auth_refused_locked,
            n.icmp_echo,
            n.discard_octets,
            n.gre_delivered,
            n.gre_dropped
        );
        if let Some(e) = &self.setup_error {
            let _ = writeln!(o, "lab setup failed: {e}");
        }
        let _ = write!(
            o,
            "result: {} ({:.2} s)",
            if self.ok { "OK" } else { "FAILED" },
            self.elapsed.as_secs_f64()
        );
        o
    }

    fn check(&mut self, opts: &LabOptions) {
        let expected_bits = opts.mppe_bits.unwrap_or(0);
        for r in &mut self.clients {
            if r.auth != Some(opts.auth) {
                r.errors.push(format!(
                    "authentication: wanted {}, got {}",
                    auth_name(opts.auth),
                    r.auth.map_or("none", auth_name)
                ));
            }
            if r.mppe_bits != expected_bits {
                r.errors.push(format!(
                    "MPPE: wanted {expected_bits} bits, got {}",
                    r.mppe_bits
                ));
            }
            if expected_bits != 0 && r.stateless != opts.stateless {
                r.errors
                    .push("MPPE stateless mode differs from the request".to_string());
            }
            if r.mppc != opts.mppc {
                r.errors.push("MPPC differs from the request".to_string());
            }
            if r.pings_sent != opts.pings || r.pings_received != opts.pings {
                r.errors.push(format!(
                    "pings: {}/{} answered, {} asked",
                    r.pings_received, r.pings_sent, opts.pings
                ));
            }
            r.errors.dedup();
        }
        self.ok = self.setup_error.is_none()
            && !self.clients.is_empty()
            && self.clients.iter().all(|c| c.errors.is_empty());
    }
}

/// Where stages and the progress bar go.
pub struct Output {
    /// Called with each stage line (already prefixed with the time and client).
    pub line: Box<dyn FnMut(&str) + Send>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub bar: bool,
}

impl Output {
    /// Nothing printed.
    pub fn quiet() -> Output {
        Output {
            line: Box::new(|_| {}),
            bar: false,
        }
    }
}

/// `pptp-nas dial` settings for client `i` on `device`: the lab's user, the policy asked
/// (the same flags mean the same thing on `dial` and `lab`), pings and a throughput run.
fn dial_options(opts: &LabOptions, device: PathBuf) -> Result<DialOptions, String> {
    let mut init = dial::script::default_init();
    // Short escape guard time (S12 in 1/50 s): a pty has no DTR, dial hangs up with +++ ATH0.
    init.push("ATS12=10".into());
    let args = DialArgs {
        config: None,
        device: Some(device),
        baud: None,
        rtscts: false,
        number: Some(NUMBER.into()),
        init,
        dial_command: None,
        dial_timeout: Some(30.0),
        user: Some(format!("{LAB_USER}:{}", opts.client_password)),
        auth: Some(auth_name(opts.auth).into()),
        mppe: Some(opts.mppe_bits.map_or("none".into(), |b| b.to_string())),
        stateless: opts.stateless,
        mppc: Some(if opts.mppc { "on" } else { "off" }.into()),
        ping: Some(opts.pings),
        throughput: Some(opts.duration.as_secs_f64()),
        connect_timeout: Some(30.0),
        tun: None,
        json: false,
    };
    let mut o = dial::options(&args)?;
    o.script.guard = Duration::from_millis(300);
    Ok(o)
}

/// What a `pptp-nas dial` run reports, as the lab's per-client row.
fn client_report(r: &dial::Report) -> ClientReport {
    let mut c = ClientReport::default();
    if let Some(l) = &r.link {
        c.auth = l.auth;
        c.mppe_bits = l.mppe_bits;
        c.stateless = l.stateless;
        c.mppc = l.mppc;
        c.local_ip = l.addrs.map(|a| a.0);
        c.peer_ip = l.addrs.map(|a| a.1);
        c.pings_sent = l.pings.0;
        c.pings_received = l.pings.1;
        c.rtt_ms_median = l.rtt_median.map(|d| d.as_secs_f64() * 1000.0);
        if let Some((octets, d)) = l.bulk {
            c.bulk_octets = octets;
            c.throughput_kbps = crate::responder::kbps(octets, d);
        }
        c.compression_ratio = l.stats.compression_ratio();
    }
    if let Some(e) = &r.error {
        c.errors.push(format!("dial (exit {}): {e}", r.code));
    }
    c
}

/// The stage lines of a finished `pptp-nas dial` run (it reports at the end of the call).
fn dial_stages(r: &dial::Report) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(c) = &r.connect {
        v.push(format!(
            "client: CONNECT {} was answered",
            c.speed.map_or("-".to_string(), |s| s.to_string())
        ));
    }
    if let Some(l) = &r.link {
        if let Some((a, p)) = l.addrs {
            v.push(format!(
                "client: link was {}, MPPE {}, MPPC {}, {a} -> {p}",
                l.auth.map_or("unauthenticated", auth_name),
                if l.mppe_bits == 0 {
                    "off".to_string()
                } else {
                    format!(
                        "{}-bit {}",
                        l.mppe_bits,
                        if l.stateless { "stateless" } else { "stateful" }
                    )
                },
                if l.mppc { "on" } else { "off" }
            ));
        }
        v.push(format!(
            "client: pings {}/{} answered, median RTT {}",
            l.pings.1,
            l.pings.0,
            l.rtt_median.map_or("-".to_string(), |d| format!(
                "{:.1} ms",
                d.as_secs_f64() * 1000.0
            ))
        ));
        if let Some((octets, d)) = l.bulk {
            v.push(format!(
                "client: throughput {:.1} kbit/s of IP ({octets} octets in {:.2} s), MPPC ratio {:.2}",
                crate::responder::kbps(octets, d),
                d.as_secs_f64(),
                l.stats.compression_ratio()
            ));
        }
    }
    if let Some(h) = &r.hangup {
        v.push(format!("client: hang-up (LCP Terminate, +++ ATH0): {h}"));
    }
    if let Some(e) = &r.error {
        v.push(format!("client: FAILED (exit {}): {e}", r.code));
    }
    v
}

/// Two loopback addresses for raw GRE, unique to this process (PAC, PNS).
fn raw_addresses() -> (Ipv4Addr, Ipv4Addr) {
    let pid = std::process::id();
    let a = 100 + (pid % 100) as u8;
    let b = ((pid / 100) % 250) as u8 + 1;
    (Ipv4Addr::new(127, a, b, 1), Ipv4Addr::new(127, a, b, 2))
}

/// Runs the lab to the end (in its own tokio runtime) and returns the report.
pub fn run(opts: LabOptions, out: Output) -> LabReport {
    let started = Instant::now();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return LabReport {
                setup_error: Some(format!("tokio runtime: {e}")),
                ..LabReport::default()
            }
        }
    };
    let mut report = rt.block_on(run_async(opts.clone(), out));
    rt.shutdown_timeout(Duration::from_secs(2));
    report.elapsed = started.elapsed();
    report.check(&opts);
    report
}

struct Printer {
    out: Output,
    start: Instant,
    clients: usize,
    verbose: usize,
}

impl Printer {
    fn print(&mut self, s: &Stage) {
        if s.client.is_some_and(|c| c >= self.verbose) {
            return;
        }
        let t = self.start.elapsed().as_secs_f64();
        let line = match s.client {
            Some(c) if self.clients > 1 => format!("[{t:7.3}s] #{c} {}", s.text),
            _ => format!("[{t:7.3}s] {}", s.text),
        };
        (self.out.line)(&line);
    }
}

async fn run_async(opts: LabOptions, out: Output) -> LabReport {
    let mut printer = Printer {
        out,
        start: Instant::now(),
        clients: opts.clients,
        verbose: if opts.clients <= 4 { opts.clients } else { 1 },
    };
    let mut report = LabReport::default();
    let dir = std::env::temp_dir().join(format!(
        "pptp-nas-lab-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default()
    ));
    let r = chain(&opts, &dir, &mut printer, &mut report).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = r {
        printer.print(&Stage::lab(format!("lab: {e}")));
        report.setup_error = Some(e);
    }
    report
}

/// Builds the chain, runs the clients, tears everything down.
async fn chain(
    opts: &LabOptions,
    dir: &std::path::Path,
    printer: &mut Printer,
    report: &mut LabReport,
) -> Result<(), String> {
    // Lines: one soft-modem per client, each with its own caller number.
    let mut modems = Vec::new();
    for i in 0..opts.clients {
        let sm = Softmodem::start(&SoftmodemOptions {
            dir: dir.join(format!("line{i}")),
            lines: 1,
            sim: SimConfig {
                speed: opts.speed,
                ber: opts.ber,
                drop_after: opts.drop_after,
                caller_id: Some(format!("555{i:04}")),
                ring_interval: Duration::from_millis(200),
                seed: 0x5eed_0000_0000_0001 ^ (i as u64).wrapping_mul(0x9e37_79b9),
                ..SimConfig::default()
            },
        })
        .map_err(|e| {
            format!(
                "soft-modem line {i}: {e} (each client needs two ptys; see /proc/sys/kernel/pty/max)"
            )
        })?;
        modems.push(Arc::new(sm));
    }
    printer.print(&Stage::lab(format!(
        "soft-modem: {} line(s) at {} bit/s{} in {}",
        opts.clients,
        opts.speed,
        if opts.ber > 0.0 {
            format!(", BER {:e}", opts.ber)
        } else {
            String::new()
        },
        dir.display()
    )));

    // GRE and addresses.
    let (pac_ip, pns_ip) = if opts.raw_gre {
        raw_addresses()
    } else {
        (Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((pns_ip, 0)))
        .await
        .map_err(|e| format!("PNS listen on {pns_ip}: {e}"))?;
    let pns_addr = listener
        .local_addr()
        .map_err(|e| format!("PNS listen address: {e}"))?;
    let (pac_side, pns_side) = if opts.raw_gre {
        let pns_sock = RawGreSocket::bind(pns_ip, false).map_err(|e| {
            format!("--raw-gre: raw GRE socket on {pns_ip}: {e} (needs root or CAP_NET_RAW)")
        })?;
        let pac_chan = pac_gre::raw(Some(pac_ip), vec![pns_ip]).map_err(|e| {
            format!("--raw-gre: raw GRE socket on {pac_ip}: {e} (needs root or CAP_NET_RAW)")
        })?;
        (pac_chan, PnsGre::Raw(pns_sock))
    } else {
        let (a, b) = pac_gre::pair(4096);
        (
            a,
            PnsGre::Channel {
                channel: b,
                local: pns_ip,
                peer: pac_ip,
            },
        )
    };

    // PNS.
    let (ev_tx, mut pns_ev) = mpsc::unbounded_channel();
    let monitor = PnsMonitor {
        counters: Default::default(),
        events: Some(ev_tx),
    };
    let counters = monitor.counters.clone();
    let pns_opts = PnsOptions {
        listen: pns_addr,
        users: vec![(LAB_USER.to_string(), LAB_PASSWORD.to_string())],
        auth: opts.auth,
        mppe_bits: opts.mppe_bits,
        stateless: opts.stateless,
        mppc: opts.mppc,
        pool: POOL,
        responder: true,
        tun: None,
        extra: Default::default(),
        status_socket: None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let pns_task = tokio::spawn(pns::daemon::serve(
        pns_opts, listener, pns_side, monitor, stop_rx,
    ));
    printer.print(&Stage::lab(format!(
        "PNS: listening on {pns_addr}, {} GRE, {} required, MPPE {}, MPPC {}",
        if opts.raw_gre { "raw" } else { "in-process" },
        auth_name(opts.auth),
        opts.mppe_bits.map_or("none".to_string(), |b| format!(
            "{b}-bit {}",
            if opts.stateless {
                "stateless"
            } else {
                "stateful"
            }
        )),
        if opts.mppc { "on" } else { "off" }
    )));

    // PAC.
    let mut yaml = format!(
        "pac: {{host_name: lab-pac{}}}\n\
         pns:\n  - {{name: lab-pns, address: {pns_ip}, port: {}, mode: incoming-call, \
         reconnect_min_s: 1, reconnect_max_s: 2}}\n\
         default: {{pns: [lab-pns]}}\n\
         lines:\n",
        if opts.raw_gre {
            format!(", local_address: {pac_ip}")
        } else {
            String::new()
        },
        pns_addr.port()
    );
    for (i, sm) in modems.iter().enumerate() {
        let nas = sm
            .lines()
            .first()
            .map(|l| l.nas.display().to_string())
            .unwrap_or_default();
        let _ = writeln!(
            yaml,
            "  - {{id: line{i}, device: \"{nas}\", type: modem, profile: softmodem, offer_on_ring: 2}}"
        );
    }
    let profile =
        Profile::from_yaml(SOFTMODEM_PROFILE).map_err(|e| format!("softmodem profile: {e}"))?;
    let config = PacConfig::load_str(
        &dir.join("pac.yaml").display().to_string(),
        &yaml,
        ValidateOptions {
            check_devices: true,
            load_profiles: false,
        },
    )
    .map_err(|e| format!("PAC configuration: {e}"))?
    .with_profile("softmodem", profile);
    let pac = Pac::start(config, pac_side).map_err(|e| format!("PAC: {e}"))?;

    // Wait for the control connection and idle lines.
    let t0 = tokio::time::Instant::now();
    loop {
        let st = pac.status();
        let up = st.pns.iter().all(|p| p.up);
        let idle = st
            .lines
            .iter()
            .all(|l| l.view.state == "idle" && l.view.modem == "Idle");
        if up && idle {
            break;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            pac.shutdown().await;
            let _ = stop_tx.send(true);
            return Err(format!(
                "PAC not ready after 15 s: control connection up: {up}, lines idle: {idle}"
            ));
        }
        while let Ok(ev) = pns_ev.try_recv() {
            if let PnsEvent::ControlUp { peer } = ev {
                printer.print(&Stage::lab(format!(
                    "PAC -> PNS: control connection established (SCCRQ/SCCRP) from {peer}"
                )));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    printer.print(&Stage::lab(format!(
        "PAC: {} line(s) idle, modems initialised",
        opts.clients
    )));

    // Clients: `pptp-nas dial` (its library function) on each line's client pty.
    let (stage_tx, mut stages) = mpsc::unbounded_channel::<(Stage, Instant)>();
    let mut tasks = Vec::new();
    for (i, sm) in modems.iter().enumerate() {
        let device = sm
            .lines()
            .first()
            .map(|l| l.client.clone())
            .unwrap_or_else(PathBuf::new);
        let o = dial_options(opts, device).map_err(|e| format!("dial options: {e}"))?;
        let tx = stage_tx.clone();
        tasks.push(tokio::spawn(async move {
            // Stagger dialling a little, as real callers would.
            tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
            let say = |t: String| {
                let _ = tx.send((Stage::client(i, t), Instant::now()));
            };
            say(format!("client: pptp-nas dial: dialling ATDT{NUMBER}"));
            let r = dial::run(&o).await;
            for t in dial_stages(&r) {
                say(t);
            }
            client_report(&r)
        }));
    }
    drop(stage_tx);

    let budget = Duration::from_secs(60) + opts.duration;
    let deadline = tokio::time::Instant::now() + budget;
    let mut pac_seen: Vec<PacLineSeen> = vec![PacLineSeen::default(); opts.clients];
    let mut pns_calls: std::collections::HashMap<u16, usize> = Default::default();
    // What the PNS said about a client's call that the client cannot know (why it was refused).
    let mut server_errors: Vec<Vec<String>> = vec![Vec::new(); opts.clients];
    // Dialling started / IPCP up (PNS) / report in, per client: setup time and the bar.
    let mut dialled: Vec<Option<Instant>> = vec![None; opts.clients];
    let mut setup: Vec<Option<Duration>> = vec![None; opts.clients];
    let mut done = vec![false; opts.clients];
    let traffic = PING_INTERVAL * opts.pings + opts.duration + Duration::from_millis(500);
    let mut bar = ProgressBar::new(printer.out.bar, traffic);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut stages_open = true;
    loop {
        tokio::select! {
            s = stages.recv(), if stages_open => match s {
                Some((s, at)) => {
                    bar.clear();
                    if let Some(c) = s.client {
                        if let Some(d) = dialled.get_mut(c) {
                            d.get_or_insert(at);
                        }
                        if s.text.starts_with("client: hang-up") || s.text.starts_with("client: FAILED") {
                            if let Some(d) = done.get_mut(c) {
                                *d = true;
                            }
                        }
                    }
                    printer.print(&s)
                }
                None => stages_open = false,
            },
            Some(ev) = pns_ev.recv() => {
                bar.clear();
                if let PnsEvent::PppDown { call_id, reason, auth_failed: true } = &ev {
                    if let Some(e) = pns_calls.get(call_id).and_then(|&c| server_errors.get_mut(c)) {
                        e.push(format!("PNS refused the authentication: {reason}"));
                    }
                }
                if let PnsEvent::IpUp { call_id, .. } = &ev {
                    if let Some(&c) = pns_calls.get(call_id) {
                        if let (Some(Some(t)), Some(s)) = (dialled.get(c), setup.get_mut(c)) {
                            *s = Some(t.elapsed());
                        }
                    }
                }
                pns_stage(&ev, &mut pns_calls, printer);
            }
            _ = tick.tick() => {
                let st = pac.status();
                for (i, l) in st.lines.iter().enumerate() {
                    if let Some(seen) = pac_seen.get_mut(i) {
                        for text in seen.update(&l.view) {
                            bar.clear();
                            printer.print(&Stage::client(i, text));
                        }
                    }
                }
                let relayed: u64 = st.lines.iter().map(|l| l.to_gre_bytes).sum();
                let active = (0..opts.clients)
                    .filter(|&c| {
                        setup.get(c).is_some_and(Option::is_some) && !done.get(c).copied().unwrap_or(true)
                    })
                    .count();
                bar.draw(active, relayed);
            }
        }
        if !stages_open && tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            printer.print(&Stage::lab(format!(
                "lab: clients still running after {} s; giving up",
                budget.as_secs()
            )));
            break;
        }
    }
    bar.finish();
    for ((t, mut server), setup) in tasks.into_iter().zip(server_errors).zip(setup) {
        let abort = t.abort_handle();
        match tokio::time::timeout(Duration::from_millis(100), t).await {
            Ok(Ok(mut r)) => {
                server.append(&mut r.errors);
                r.errors = server;
                r.setup_time = setup;
                report.clients.push(r)
            }
            _ => {
                abort.abort();
                report.clients.push(ClientReport {
                    errors: vec!["client did not finish in time".to_string()],
                    ..ClientReport::default()
                });
            }
        }
    }

    // Let the calls end on both sides (CDN), then stop.
    let t1 = tokio::time::Instant::now();
    loop {
        let st = pac.status();
        for (i, l) in st.lines.iter().enumerate() {
            for text in pac_seen
                .get_mut(i)
                .map(|s| s.update(&l.view))
                .unwrap_or_default()
            {
                printer.print(&Stage::client(i, text));
            }
        }
        while let Ok(ev) = pns_ev.try_recv() {
            pns_stage(&ev, &mut pns_calls, printer);
        }
        let lines_idle = st
            .lines
            .iter()
            .all(|l| matches!(l.view.state.as_str(), "idle" | "out-of-service"));
        let c = PnsCounters::read(&counters);
        if (lines_idle && c.calls_ended >= c.calls_up) || t1.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = pac.status();
    report.pac = PacCounters {
        calls: st.lines.iter().map(|l| l.calls).sum(),
        refused: st.lines.iter().map(|l| l.refused).sum(),
        frames_to_gre: st.lines.iter().map(|l| l.to_gre_packets).sum(),
        octets_to_gre: st.lines.iter().map(|l| l.to_gre_bytes).sum(),
        frames_to_line: st.lines.iter().map(|l| l.to_line_packets).sum(),
        octets_to_line: st.lines.iter().map(|l| l.to_line_bytes).sum(),
        hdlc_errors: st.lines.iter().map(|l| l.hdlc_errors).sum(),
        gre_lost: st.lines.iter().map(|l| l.gre_lost).sum(),
        gre_unknown: st.gre_unknown,
        control_connects: st.pns.iter().map(|p| p.connects).sum(),
    };
    pac.shutdown().await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(6), pns_task).await;
    while let Ok(ev) = pns_ev.try_recv() {
        pns_stage(&ev, &mut pns_calls, printer);
    }
    report.pns = PnsCounters::read(&counters);
    printer.print(&Stage::lab("lab: PAC and PNS stopped, lines removed"));
    drop(modems);
    Ok(())
}

/// Which client a PNS call belongs to: the caller number `555NNNN` the PAC put in the ICRQ.
fn client_of(caller: &str) -> Option<usize> {
    caller.strip_prefix("555")?.parse().ok()
}

fn pns_stage(
    ev: &PnsEvent,
    calls: &mut std::collections::HashMap<u16, usize>,
    printer: &mut Printer,
) {
    let on = |calls: &std::collections::HashMap<u16, usize>, id: u16, text: String| match calls
        .get(&id)
    {
        Some(&c) => Stage::client(c, text),
        None => Stage::lab(text),
    };
    let s = match ev {
        PnsEvent::ControlUp { peer } => Stage::lab(format!(
            "PNS: control connection from {peer} established (SCCRQ/SCCRP)"
        )),
        PnsEvent::IncomingCall { call_id, caller } => {
            if let Some(c) = client_of(caller) {
                calls.insert(*call_id, c);
            }
            on(
                calls,
                *call_id,
                format!("PNS: ICRQ from caller {caller}, accepted (ICRP, call {call_id})"),
            )
        }
        PnsEvent::OutgoingCall { call_id } => on(
            calls,
            *call_id,
            format!("PNS: OCRQ, call {call_id} accepted"),
        ),
        PnsEvent::CallUp { call_id, address } => on(
            calls,
            *call_id,
            format!("PNS: ICCN, call up; PPP server started (LCP), caller gets {address}"),
        ),
        PnsEvent::LcpUp { call_id, auth } => on(
            calls,
            *call_id,
            format!(
                "PNS: LCP opened, authenticating with {}",
                auth.map_or("nothing", auth_name)
            ),
        ),
        PnsEvent::Authenticated { call_id, user } => {
            on(calls, *call_id, format!("PNS: user {user:?} authenticated"))
        }
        PnsEvent::CcpUp {
            call_id,
            mppe_bits,
            stateless,
            mppc,
        } => on(
            calls,
            *call_id,
            format!(
                "PNS: CCP opened: MPPE {}, MPPC {}",
                if *mppe_bits == 0 {
                    "off".to_string()
                } else {
                    format!(
                        "{mppe_bits}-bit {}",
                        if *stateless { "stateless" } else { "stateful" }
                    )
                },
                if *mppc { "on" } else { "off" }
            ),
        ),
        PnsEvent::IpUp {
            call_id,
            local,
            peer,
        } => on(
            calls,
            *call_id,
            format!("PNS: IPCP opened: {local} <-> {peer}"),
        ),
        PnsEvent::PppDown {
            call_id, reason, ..
        } => on(calls, *call_id, format!("PNS: PPP down ({reason})")),
        PnsEvent::CallDown { call_id, end } => {
            let s = on(
                calls,
                *call_id,
                format!("PNS: call {call_id} over, CDN ({end})"),
            );
            calls.remove(call_id);
            s
        }
        PnsEvent::ControlClosed { peer } => {
            Stage::lab(format!("PNS: control connection from {peer} closed"))
        }
    };
    printer.print(&s);
}

/// What the lab has seen of one PAC line, to print each change once.
#[derive(Debug, Clone, Default)]
struct PacLineSeen {
    state: String,
    rang: bool,
    was_up: bool,
}

impl PacLineSeen {
    fn update(&mut self, v: &crate::pac::line::LineView) -> Vec<String> {
        let mut text = Vec::new();
        if v.state == self.state {
            return text;
        }
        let prev = std::mem::replace(&mut self.state, v.state.clone());
        let caller = v.call.as_ref().map_or("", |c| c.caller.as_str());
        // A state the 10 ms poll missed still happened (the PAC only reaches "up" through
        // "offering" and "answering"): its line is printed too.
        if matches!(v.state.as_str(), "offering" | "answering" | "up") && !self.rang {
            self.rang = true;
            text.push(format!("PAC: RING, caller {caller}; ICRQ sent"));
        }
        if v.state == "up" && prev != "answering" && !self.was_up {
            text.push("PAC: ICRP accept, answered (ATA)".to_string());
        }
        match v.state.as_str() {
            "answering" => text.push("PAC: ICRP accept, answering (ATA)".to_string()),
            "up" => {
                self.was_up = true;
                text.push(format!(
                    "PAC: CONNECT {}, ICCN sent; relaying HDLC <-> GRE",
                    v.connect_speed.unwrap_or(0)
                ));
            }
            "hanging-up" => text.push("PAC: hanging up the line".to_string()),
            "idle" if prev.is_empty() => {}
            "idle" => {
                text.push(if self.was_up {
                    "PAC: call over (CDN sent or received), line idle".to_string()
                } else {
                    "PAC: line idle".to_string()
                });
                self.rang = false;
                self.was_up = false;
            }
            "offering" => {}
            other => text.push(format!("PAC: line {other}")),
        }
        text
    }
}

/// The throughput run's progress: a bar on a terminal's stderr, a line a second otherwise.
struct ProgressBar {
    tty: bool,
    duration: Duration,
    started: Option<Instant>,
    last_line: Option<Instant>,
    drawn: bool,
    last_octets: (Instant, u64),
    rate: f64,
}

impl ProgressBar {
    fn new(bar: bool, duration: Duration) -> Self {
        ProgressBar {
            tty: bar && std::io::stderr().is_terminal(),
            duration,
            started: None,
            last_line: None,
            drawn: false,
            last_octets: (Instant::now(), 0),
            rate: 0.0,
        }
    }

    /// `active`: clients with IPCP up and their run not over; `relayed`: octets the PAC has
    /// relayed from the lines to GRE so far (the bar shows their rate: what the lines really
    /// carry, after MPPC and MPPE).
    fn draw(&mut self, active: usize, relayed: u64) {
        if active == 0 || self.duration.is_zero() {
            return;
        }
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        let octets = relayed;
        let dt = now.saturating_duration_since(self.last_octets.0);
        if dt >= Duration::from_millis(250) {
            let kbps = crate::responder::kbps(octets.saturating_sub(self.last_octets.1), dt);
            self.rate = if self.rate == 0.0 {
                kbps
            } else {
                0.7 * self.rate + 0.3 * kbps
            };
            self.last_octets = (now, octets);
        } else if self.tty {
            return;
        }
        let t = now.saturating_duration_since(started).as_secs_f64();
        let total = self.duration.as_secs_f64();
        let frac = (t / total).clamp(0.0, 1.0);
        if self.tty {
            let filled = (frac * 30.0) as usize;
            let mut e = std::io::stderr().lock();
            let _ = write!(
                e,
                "\rpings + throughput [{}{}] {:4.1}/{:.1} s, PAC relaying {:8.1} kbit/s ({} call{} up)\x1b[K",
                "#".repeat(filled),
                "-".repeat(30 - filled.min(30)),
                t.min(total),
                total,
                self.rate,
                active,
                if active == 1 { "" } else { "s" }
            );
            let _ = e.flush();
            self.drawn = true;
        } else if self
            .last_line
            .map_or(true, |l| now.duration_since(l) >= Duration::from_secs(1))
        {
            if self.last_line.is_some() {
                eprintln!(
                    "pings + throughput: {:.1}/{:.1} s, PAC relaying {:.1} kbit/s from the lines ({} calls up)",
                    t.min(total),
                    total,
                    self.rate,
                    active
                );
            }
            self.last_line = Some(now);
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[K");
            let _ = e.flush();
            self.drawn = false;
        }
    }

    fn finish(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn json_has_the_issue_fields() {
        let r = LabReport {
            ok: true,
            clients: vec![ClientReport {
                auth: Some(AuthMethod::MsChapV2),
                mppe_bits: 128,
                errors: vec!["a \"quoted\" thing".to_string()],
                ..ClientReport::default()
            }],
            ..LabReport::default()
        };
        let j = r.to_json();
        for key in [
            "\"ok\": true",
            "\"auth\": \"mschapv2\"",
            "\"mppe_bits\": 128",
            "\"stateless\": false",
            "\"mppc\": false",
            "\"local_ip\": null",
            "\"peer_ip\": null",
            "\"pings_sent\": 0",
            "\"pings_received\": 0",
            "\"rtt_ms_median\": null",
            "\"throughput_kbps\": 0.000",
            "\"compression_ratio\": 0.000",
            "\"errors\": [\"a \\\"quoted\\\" thing\"]",
            "\"pac\": {",
            "\"pns\": {",
        ] {
            assert!(j.contains(key), "{key} missing in {j}");
        }
        assert!(j.starts_with('{') && j.ends_with('}'));
    }

    #[test]
    fn check_flags_every_mismatch() {
        let opts = LabOptions::default();
        let good = ClientReport {
            auth: Some(AuthMethod::MsChapV2),
            mppe_bits: 128,
            mppc: true,
            pings_sent: 5,
            pings_received: 5,
            ..ClientReport::default()
        };
        let mut r = LabReport {
            clients: vec![good.clone()],
            ..LabReport::default()
        };
        r.check(&opts);
        assert!(r.ok);
        for bad in [
            ClientReport {
                auth: Some(AuthMethod::Pap),
                ..good.clone()
            },
            ClientReport {
                mppe_bits: 40,
                ..good.clone()
            },
            ClientReport {
                mppc: false,
                ..good.clone()
            },
            ClientReport {
                stateless: true,
                ..good.clone()
            },
            ClientReport {
                pings_received: 4,
                ..good.clone()
            },
        ] {
            let mut r = LabReport {
                clients: vec![good.clone(), bad],
                ..LabReport::default()
            };
            r.check(&opts);
            assert!(!r.ok, "{:?}", r.clients);
            assert!(r.clients[0].errors.is_empty());
            assert_eq!(r.clients[1].errors.len(), 1, "{:?}", r.clients[1].errors);
        }
    }

    #[test]
    fn caller_numbers_map_to_clients() {
        assert_eq!(client_of("5550000"), Some(0));
        assert_eq!(client_of("5550049"), Some(49));
        assert_eq!(client_of("0301234"), None);
        assert_eq!(client_of(""), None);
    }

    #[test]
    fn pac_line_changes_print_once() {
        use crate::pac::line::{CallView, LineView};
        let mut s = PacLineSeen::default();
        let v = |state: &str| LineView {
            state: state.to_string(),
            call: Some(CallView {
                caller: "5550003".into(),
                ..CallView::default()
            }),
            connect_speed: Some(33_600),
            ..LineView::default()
        };
        assert!(s.update(&v("idle")).is_empty());
        // "offering" was missed by the poll: the RING line still comes first.
        let t = s.update(&v("answering"));
        assert!(t[0].starts_with("PAC: RING, caller 5550003"), "{t:?}");
        assert!(t[1].contains("ATA"), "{t:?}");
        assert!(s.update(&v("answering")).is_empty());
        let t = s.update(&v("up"));
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(t[0].contains("ICCN"));
        assert!(s.update(&v("idle"))[0].contains("CDN"));
        // Straight from idle to up: RING, answer and CONNECT lines, in that order.
        let t = s.update(&v("up"));
        assert_eq!(t.len(), 3, "{t:?}");
        assert!(t[0].contains("RING") && t[1].contains("ATA") && t[2].contains("ICCN"));
    }
}
