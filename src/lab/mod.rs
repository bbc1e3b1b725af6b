//! `pptp-nas lab`: the whole chain in one process, on virtual time.
//!
//! For each client a soft-modem pair ([`LinePair`]) joins a dial-in client (AT dialling, async
//! HDLC, PPP client [`Session`] with pinger and bulk stream) to the PAC (RING, ICRQ, ATA on
//! ICRP, CONNECT, ICCN, HDLC deframing, GRE relay); PAC and PNS share one PPTP control
//! connection (two [`Connection`]s joined by an in-memory byte pipe standing in for TCP) and an
//! in-memory GRE transport; the PNS runs a server [`Session`] per call with the built-in
//! [`Responder`].
//!
//! Every component is a sans-IO core, so the lab drives them all from one loop on a virtual
//! clock: it delivers whatever is ready, then jumps to the earliest deadline. Line speed, bit
//! errors and carrier drops come from the soft-modem simulation; RTTs and kbit/s are measured
//! on that virtual clock (they are what the simulated line allows, not host timings). A run of
//! many simulated seconds takes a fraction of a second of CPU.
//!
//! The PAC here is a minimal relay written for the lab (the embeddable `pac::Pac` had not
//! landed when it was written): one control connection, incoming-call mode only, no GRE
//! window/acks (the in-memory transport neither loses nor reorders).

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

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::policy::apply_ccp;
use crate::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
use crate::modem::sim::{LinePair, Side, SimConfig};
use crate::pns::session::Session;
use crate::pns::throttle::{ThrottleConfig, ThrottleHandle};
use crate::ppp::auth::{AuthFailure, ClientCredentials, StaticCredentials};
use crate::ppp::engine::{DownReason, Event as PppEvent, Policy};
use crate::ppp::ipcp::IpcpConfig;
use crate::ppp::lcp::AuthMethod;
use crate::ppp::packet::MppeBits;
use crate::pptp::control::{
    CallEnd, Config as CtrlConfig, Connection, Event as CtrlEvent, IncomingCall, Open, Role,
};
use crate::pptp::gre::{GreRepr, SeqNumber};
use crate::pptp::message::{BearerType, CauseCode, FramingType, TextField};
use crate::responder::{BulkStream, Pinger, Responder, Verdict};

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
            duration: Duration::from_secs(5),
            pings: 5,
            drop_after: None,
            client_password: LAB_PASSWORD.to_string(),
        }
    }
}

const LAB_USER: &str = "alice";
const LAB_PASSWORD: &str = "lab-secret";
const PNS_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 53);
const POOL_FIRST: [u8; 4] = [192, 168, 77, 10];
/// Virtual-time budget for the whole run beyond the throughput run itself.
const BUDGET: Duration = Duration::from_secs(120);
const PING_INTERVAL: Duration = Duration::from_millis(250);
const PING_WAIT: Duration = Duration::from_secs(3);
const DRAIN: Duration = Duration::from_secs(2);

/// The name of an authentication method as the CLI and JSON spell it.
pub fn auth_name(m: AuthMethod) -> &'static str {
    match m {
        AuthMethod::Pap => "pap",
        AuthMethod::ChapMd5 => "chap",
        AuthMethod::MsChapV1 => "mschap",
        AuthMethod::MsChapV2 => "mschapv2",
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
    /// DNS server handed out.
    pub dns: Option<Ipv4Addr>,
    /// Pings sent.
    pub pings_sent: u32,
    /// Pings answered.
    pub pings_received: u32,
    /// Median RTT in ms (virtual time).
    pub rtt_ms_median: Option<f64>,
    /// Bulk throughput of IP octets, kbit/s (virtual time).
    pub throughput_kbps: f64,
    /// MPPC ratio on the client's transmit path (plain / wire octets).
    pub compression_ratio: f64,
    /// Time from dialling to IPCP open.
    pub setup_time: Option<Duration>,
    /// What went wrong.
    pub errors: Vec<String>,
}

/// PAC counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacCounters {
    /// RINGs seen.
    pub rings: u64,
    /// ICRQs sent.
    pub icrq_sent: u64,
    /// Calls connected (ICCN sent).
    pub calls_connected: u64,
    /// Calls ended (CDN).
    pub calls_ended: u64,
    /// PPP frames relayed line -> GRE.
    pub frames_to_gre: u64,
    /// PPP frames relayed GRE -> line.
    pub frames_to_line: u64,
    /// HDLC frames dropped (bad FCS, aborts, too long).
    pub hdlc_errors: u64,
    /// GRE packets dropped (unknown call, malformed).
    pub gre_dropped: u64,
}

/// PNS counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PnsCounters {
    /// ICRQs accepted.
    pub calls_accepted: u64,
    /// Calls ended.
    pub calls_ended: u64,
    /// Successful authentications.
    pub auth_ok: u64,
    /// Failed authentications.
    pub auth_failed: u64,
    /// GRE packets dropped (unknown call ID, malformed).
    pub gre_dropped: u64,
    /// ICMP echo requests answered.
    pub icmp_echo: u64,
    /// Discard-service octets taken.
    pub discard_octets: u64,
    /// Packets the responder refused as malformed.
    pub responder_malformed: u64,
    /// Authentication lockouts started (per user and per source).
    pub auth_lockouts: u64,
    /// Authentications refused without a password check because of a lockout.
    pub auth_refused_locked: u64,
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
    /// Virtual time the run took.
    pub virtual_time: Duration,
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
            "], \"pac\": {{\"rings\": {}, \"icrq_sent\": {}, \"calls_connected\": {}, \
             \"calls_ended\": {}, \"frames_to_gre\": {}, \"frames_to_line\": {}, \
             \"hdlc_errors\": {}, \"gre_dropped\": {}}}",
            p.rings,
            p.icrq_sent,
            p.calls_connected,
            p.calls_ended,
            p.frames_to_gre,
            p.frames_to_line,
            p.hdlc_errors,
            p.gre_dropped
        );
        let n = &self.pns;
        let _ = write!(
            o,
            ", \"pns\": {{\"calls_accepted\": {}, \"calls_ended\": {}, \"auth_ok\": {}, \
             \"auth_failed\": {}, \"gre_dropped\": {}, \"icmp_echo\": {}, \"discard_octets\": {}, \
             \"responder_malformed\": {}, \"auth_lockouts\": {}, \"auth_refused_locked\": {}}}}}",
            n.calls_accepted,
            n.calls_ended,
            n.auth_ok,
            n.auth_failed,
            n.gre_dropped,
            n.icmp_echo,
            n.discard_octets,
            n.responder_malformed,
            n.auth_lockouts,
            n.auth_refused_locked
        );
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
        let _ = writeln!(
            o,
            "PAC: {} rings, {} ICRQ, {} calls connected, {} ended, {} frames to GRE, {} to line, {} HDLC errors",
            self.pac.rings,
            self.pac.icrq_sent,
            self.pac.calls_connected,
            self.pac.calls_ended,
            self.pac.frames_to_gre,
            self.pac.frames_to_line,
            self.pac.hdlc_errors
        );
        let _ = writeln!(
            o,
            "PNS: {} calls, {} auth ok, {} auth failed ({} lockouts, {} refused while locked), {} echo replies, {} octets discarded, {} GRE dropped",
            self.pns.calls_accepted,
            self.pns.auth_ok,
            self.pns.auth_failed,
            self.pns.auth_lockouts,
            self.pns.auth_refused_locked,
            self.pns.icmp_echo,
            self.pns.discard_octets,
            self.pns.gre_dropped
        );
        let _ = write!(
            o,
            "result: {} ({:.1} s simulated)",
            if self.ok { "OK" } else { "FAILED" },
            self.virtual_time.as_secs_f64()
        );
        o
    }
}

// ---- the dial-in client ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    /// Waiting to dial.
    Idle,
    /// ATDT sent, waiting for CONNECT.
    Dialing,
    /// PPP negotiating.
    Negotiating,
    /// Sending pings.
    Pinging,
    /// Bulk stream running until the deadline.
    Bulk,
    /// Waiting for the last bulk packets to arrive.
    Draining,
    /// LCP Terminate sent; carrier drops next.
    HangingUp,
    /// Finished (well or not).
    Done,
}

struct Client {
    index: usize,
    state: ClientState,
    text: Vec<u8>,
    enc: Encoder,
    dec: Decoder,
    session: Session,
    pinger: Option<Pinger>,
    bulk: Option<BulkStream>,
    next_action: Option<Instant>,
    dial_at: Instant,
    bulk_start: Option<Instant>,
    ping_deadline: Option<Instant>,
    report: ClientReport,
    reported_link: bool,
}

// ---- the PAC relay --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PacLine {
    Idle,
    /// ICRQ sent for this call ID.
    Requested(u16),
    /// ATA sent.
    Answering(u16),
    /// Data phase.
    Up {
        call_id: u16,
        peer_call_id: u16,
    },
}

struct PacPort {
    state: PacLine,
    text: Vec<u8>,
    enc: Encoder,
    dec: Decoder,
    gre_seq: u32,
}

// ---- the PNS --------------------------------------------------------------------------------

struct PnsCall {
    peer_call_id: u16,
    session: Option<Session>,
    responder: Responder,
    gre_seq: u32,
    client_ip: Ipv4Addr,
    first_bulk: Option<Instant>,
    last_bulk: Option<Instant>,
    bulk_octets: u64,
}

/// The running lab.
struct Lab {
    opts: LabOptions,
    now: Instant,
    start: Instant,
    lines: Vec<LinePair>,
    clients: Vec<Client>,
    ports: Vec<PacPort>,
    pac_ctrl: Connection,
    pns_ctrl: Connection,
    /// PAC call ID -> line index.
    pac_calls: HashMap<u16, usize>,
    /// PNS call ID -> call.
    pns_calls: HashMap<u16, PnsCall>,
    /// PNS call ID -> line index (the lab knows which client is behind which call, for the
    /// throughput figure; a real PNS does not).
    pns_line: HashMap<u16, usize>,
    /// PNS calls whose PPP is over, cleared (CCRQ) at the given time so that the final
    /// Terminate reaches the client first.
    pending_clear: Vec<(u16, Instant)>,
    to_pns: VecDeque<Vec<u8>>,
    to_pac: VecDeque<Vec<u8>>,
    pac: PacCounters,
    pns: PnsCounters,
    server_policy: Arc<Policy>,
    client_policy: Arc<Policy>,
    store: Arc<StaticCredentials>,
    throttle: ThrottleHandle,
    /// PNS call ID -> source (the caller's number from the ICRQ), for the throttle.
    pns_source: HashMap<u16, String>,
    next_ip: u32,
    seed: u8,
    progress: Box<dyn FnMut(&str)>,
    verbose_clients: usize,
    buf: Vec<u8>,
}

fn policies(opts: &LabOptions) -> (Policy, Policy) {
    let mut server = Policy::server(
        vec![opts.auth],
        IpcpConfig {
            local: Some(PNS_ADDR),
            assign_peer: None,
            dns: [Some(DNS_ADDR), None],
            request_dns: false,
        },
    );
    let mut client = Policy::client(ClientCredentials::new(LAB_USER, &opts.client_password));
    client.lcp.accept_auth = vec![
        AuthMethod::MsChapV2,
        AuthMethod::MsChapV1,
        AuthMethod::ChapMd5,
        AuthMethod::Pap,
    ];
    for (p, server_side) in [(&mut server, true), (&mut client, false)] {
        apply_ccp(
            &mut p.ccp,
            opts.mppe_bits,
            opts.stateless,
            opts.mppc,
            server_side,
        );
    }
    (server, client)
}

impl Lab {
    fn new(opts: LabOptions, progress: Box<dyn FnMut(&str)>) -> Lab {
        let now = Instant::now();
        let (server, client) = policies(&opts);
        let store = Arc::new(StaticCredentials::new().with_password(LAB_USER, LAB_PASSWORD));
        let client_policy = Arc::new(client);
        let mut lines = Vec::new();
        let mut clients = Vec::new();
        let mut ports = Vec::new();
        for i in 0..opts.clients {
            lines.push(LinePair::new(SimConfig {
                speed: opts.speed,
                ber: opts.ber,
                drop_after: opts.drop_after,
                caller_id: Some(format!("555{i:04}")),
                seed: 0x5eed_0000_0000_0001 ^ (i as u64).wrapping_mul(0x9e37_79b9),
                ..SimConfig::default()
            }));
            clients.push(Client {
                index: i,
                state: ClientState::Idle,
                text: Vec::new(),
                enc: Encoder::new(EncoderConfig::default()),
                dec: Decoder::new(DecoderConfig::default()),
                session: Session::new(client_policy.clone(), None, seed_for(i as u32, 1)),
                pinger: None,
                bulk: None,
                // Stagger dialling a little, as real callers would.
                next_action: Some(now + Duration::from_millis(20 * i as u64)),
                dial_at: now,
                bulk_start: None,
                ping_deadline: None,
                report: ClientReport::default(),
                reported_link: false,
            });
            ports.push(PacPort {
                state: PacLine::Idle,
                text: Vec::new(),
                enc: Encoder::new(EncoderConfig::default()),
                dec: Decoder::new(DecoderConfig::default()),
                gre_seq: 0,
            });
        }
        let mut pac_cfg = CtrlConfig::new(Role::Pac);
        pac_cfg.maximum_channels = u16::try_from(opts.clients.max(1)).unwrap_or(u16::MAX);
        let mut pns_cfg = CtrlConfig::new(Role::Pns);
        pns_cfg.maximum_channels = pac_cfg.maximum_channels;
        pns_cfg.first_call_id = 0x4000;
        let verbose_clients = if opts.clients <= 4 { opts.clients } else { 1 };
        Lab {
            now,
            start: now,
            lines,
            clients,
            ports,
            pac_ctrl: Connection::new(pac_cfg, Open::Active, now),
            pns_ctrl: Connection::new(pns_cfg, Open::Passive, now),
            pac_calls: HashMap::new(),
            pns_calls: HashMap::new(),
            pns_line: HashMap::new(),
            pending_clear: Vec::new(),
            to_pns: VecDeque::new(),
            to_pac: VecDeque::new(),
            pac: PacCounters::default(),
            pns: PnsCounters::default(),
            server_policy: Arc::new(server),
            client_policy,
            store,
            throttle: ThrottleHandle::new(ThrottleConfig::default(), now),
            pns_source: HashMap::new(),
            next_ip: 0,
            seed: 7,
            progress,
            verbose_clients,
            opts,
            buf: Vec::new(),
        }
    }

    fn stage(&mut self, client: usize, what: &str) {
        if client < self.verbose_clients {
            let t = self.now.saturating_duration_since(self.start).as_secs_f64();
            let line = if self.opts.clients > 1 {
                format!("[{t:7.3}s] client {client}: {what}")
            } else {
                format!("[{t:7.3}s] {what}")
            };
            (self.progress)(&line);
        }
    }

    fn note(&mut self, what: &str) {
        let t = self.now.saturating_duration_since(self.start).as_secs_f64();
        (self.progress)(&format!("[{t:7.3}s] {what}"));
    }

    fn all_done(&self) -> bool {
        self.clients.iter().all(|c| c.state == ClientState::Done)
            && self.pns_calls.is_empty()
            && self.pac_calls.is_empty()
    }

    /// Runs to the end and builds the report.
    fn run(mut self) -> LabReport {
        let limit = self.start + BUDGET + self.opts.duration;
        let mut spins = 0u32;
        loop {
            let moved = self.step();
            if self.all_done() {
                break;
            }
            if moved {
                spins += 1;
                if spins < 100_000 {
                    continue;
                }
            }
            spins = 0;
            let next = self.next_deadline();
            match next {
                Some(t) if t <= limit => {
                    self.now = self.now.max(t);
                    self.handle_timeout();
                }
                _ => {
                    self.note("lab: out of (virtual) time; giving up");
                    for c in &mut self.clients {
                        if c.state != ClientState::Done {
                            c.report
                                .errors
                                .push(format!("stuck in state {:?}", c.state));
                            c.state = ClientState::Done;
                        }
                    }
                    break;
                }
            }
        }
        self.finish()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut all: Vec<Option<Instant>> =
            vec![self.pac_ctrl.poll_timeout(), self.pns_ctrl.poll_timeout()];
        all.extend(self.lines.iter().map(LinePair::poll_timeout));
        for c in &self.clients {
            all.push(c.next_action);
            if !matches!(c.state, ClientState::Idle | ClientState::Done) {
                all.push(c.session.poll_timeout());
            }
        }
        for call in self.pns_calls.values() {
            all.push(call.session.as_ref().and_then(Session::poll_timeout));
        }
        all.extend(self.pending_clear.iter().map(|(_, t)| Some(*t)));
        all.into_iter().flatten().min()
    }

    fn handle_timeout(&mut self) {
        let now = self.now;
        self.throttle.set_now(now);
        self.pac_ctrl.handle_timeout(now);
        self.pns_ctrl.handle_timeout(now);
        for l in &mut self.lines {
            if l.poll_timeout().is_some_and(|t| t <= now) {
                l.handle_timeout(now);
            }
        }
        for c in &mut self.clients {
            if c.session.poll_timeout().is_some_and(|t| t <= now) {
                c.session.handle_timeout(now);
            }
        }
        for call in self.pns_calls.values_mut() {
            if let Some(s) = call.session.as_mut() {
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
        }
        let due: Vec<u16> = self
            .pending_clear
            .iter()
            .filter(|(_, t)| *t <= now)
            .map(|(id, _)| *id)
            .collect();
        self.pending_clear.retain(|(_, t)| *t > now);
        for call_id in due {
            let _ = self.pns_ctrl.hang_up(now, call_id, CauseCode::None);
        }
        for i in 0..self.clients.len() {
            if self
                .clients
                .get(i)
                .and_then(|c| c.next_action)
                .is_some_and(|t| t <= now)
            {
                if let Some(c) = self.clients.get_mut(i) {
                    c.next_action = None;
                }
                self.client_action(i);
            }
        }
    }

    /// Moves everything that is ready; true if anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        moved |= self.step_control();
        for i in 0..self.lines.len() {
            moved |= self.step_client(i);
            moved |= self.step_pac_line(i);
        }
        moved |= self.step_gre();
        moved |= self.step_pns_sessions();
        moved
    }

    // ---- control connection ------------------------------------------------------------

    fn step_control(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        self.buf.clear();
        while self.pac_ctrl.poll_transmit(&mut self.buf).is_some() {
            moved = true;
        }
        if !self.buf.is_empty() {
            self.pns_ctrl.handle_bytes(now, &self.buf);
        }
        self.buf.clear();
        while self.pns_ctrl.poll_transmit(&mut self.buf).is_some() {
            moved = true;
        }
        if !self.buf.is_empty() {
            self.pac_ctrl.handle_bytes(now, &self.buf);
        }
        while let Some(ev) = self.pac_ctrl.poll_event() {
            moved = true;
            self.on_pac_event(ev);
        }
        while let Some(ev) = self.pns_ctrl.poll_event() {
            moved = true;
            self.on_pns_event(ev);
        }
        moved
    }

    fn on_pac_event(&mut self, ev: CtrlEvent) {
        let now = self.now;
        match ev {
            CtrlEvent::Established(_) => {
                self.note("PAC: control connection established (SCCRQ/SCCRP)")
            }
            CtrlEvent::AnswerCall { call_id } => {
                if let Some(&line) = self.pac_calls.get(&call_id) {
                    self.stage(line, "PAC: ICRP accept received, answering (ATA)");
                    if let Some(p) = self.ports.get_mut(line) {
                        p.state = PacLine::Answering(call_id);
                    }
                    if let Some(l) = self.lines.get_mut(line) {
                        l.handle_dte(Side::Nas, now, b"ATA\r");
                    }
                }
            }
            CtrlEvent::CallUp(info) => {
                if let Some(&line) = self.pac_calls.get(&info.call_id) {
                    if let Some(p) = self.ports.get_mut(line) {
                        p.state = PacLine::Up {
                            call_id: info.call_id,
                            peer_call_id: info.peer_call_id,
                        };
                    }
                    self.pac.calls_connected += 1;
                    self.stage(
                        line,
                        &format!(
                            "PAC: ICCN sent (connect speed {}), relaying HDLC <-> GRE",
                            info.connect_speed
                        ),
                    );
                }
            }
            CtrlEvent::CallDown { call_id, end } => {
                if let Some(line) = self.pac_calls.remove(&call_id) {
                    self.pac.calls_ended += 1;
                    self.stage(
                        line,
                        &format!("PAC: call {call_id} down ({})", end_text(&end)),
                    );
                    if let Some(p) = self.ports.get_mut(line) {
                        p.state = PacLine::Idle;
                    }
                    if let Some(l) = self.lines.get_mut(line) {
                        if l.is_connected() {
                            l.drop_carrier(now);
                        }
                    }
                }
            }
            CtrlEvent::LinkInfo {
                call_id,
                send_accm,
                receive_accm,
            } => {
                if let Some(p) = self
                    .pac_calls
                    .get(&call_id)
                    .and_then(|&l| self.ports.get_mut(l))
                {
                    p.enc.set_accm(send_accm);
                    p.dec.set_accm(receive_accm);
                }
            }
            CtrlEvent::Closed(r) => self.note(&format!("PAC: control connection closed: {r:?}")),
            _ => {}
        }
    }

    fn on_pns_event(&mut self, ev: CtrlEvent) {
        let now = self.now;
        match ev {
            CtrlEvent::IncomingCallRequested { call_id, request } => {
                let line = self
                    .pac_calls
                    .iter()
                    .find(|(pac_id, _)| **pac_id == request.call_id)
                    .map(|(_, l)| *l);
                let source =
                    String::from_utf8_lossy(request.dialing_number.as_bytes()).into_owned();
                self.pns_source.insert(call_id, format!("clid:{source}"));
                if let Some(line) = line {
                    self.pns_line.insert(call_id, line);
                    self.stage(
                        line,
                        &format!("PNS: ICRQ for call {call_id}, accepting (ICRP)"),
                    );
                }
                if self.pns_ctrl.accept_call(now, call_id).is_ok() {
                    self.pns.calls_accepted += 1;
                }
            }
            CtrlEvent::CallUp(info) => {
                let ip = Ipv4Addr::from(u32::from(Ipv4Addr::from(POOL_FIRST)) + self.next_ip);
                self.next_ip += 1;
                let mut policy = (*self.server_policy).clone();
                policy.ipcp.assign_peer = Some(ip);
                self.seed = self.seed.wrapping_add(1);
                let source = self
                    .pns_source
                    .get(&info.call_id)
                    .cloned()
                    .unwrap_or_default();
                self.throttle.set_now(now);
                let mut session = Session::new(
                    Arc::new(policy),
                    Some(self.throttle.store_for(&source, self.store.clone())),
                    seed_for(u32::from(info.call_id), self.seed),
                );
                session.open(now);
                if let Some(&line) = self.pns_line.get(&info.call_id) {
                    self.stage(line, &format!("PNS: ICCN received, PPP server up for {ip}"));
                }
                self.pns_calls.insert(
                    info.call_id,
                    PnsCall {
                        peer_call_id: info.peer_call_id,
                        session: Some(session),
                        responder: Responder::new(),
                        gre_seq: 0,
                        client_ip: ip,
                        first_bulk: None,
                        last_bulk: None,
                        bulk_octets: 0,
                    },
                );
            }
            CtrlEvent::CallDown { call_id, end } => {
                if let Some(mut call) = self.pns_calls.remove(&call_id) {
                    self.pns.calls_ended += 1;
                    if let Some(s) = call.session.as_mut() {
                        s.lower_down(now);
                    }
                    self.absorb_call(call_id, &call);
                    if let Some(&line) = self.pns_line.get(&call_id) {
                        self.stage(
                            line,
                            &format!("PNS: CDN, call {call_id} closed ({})", end_text(&end)),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Folds a finished PNS call's counters into the totals and its client's report.
    fn absorb_call(&mut self, call_id: u16, call: &PnsCall) {
        let st = call.responder.stats();
        self.pns.icmp_echo += st.icmp_echo;
        self.pns.discard_octets += st.discard_octets;
        self.pns.responder_malformed += st.malformed;
        if let (Some(&line), Some(first), Some(last)) =
            (self.pns_line.get(&call_id), call.first_bulk, call.last_bulk)
        {
            let start = self
                .clients
                .get(line)
                .and_then(|c| c.bulk_start)
                .unwrap_or(first);
            let kbps =
                crate::responder::kbps(call.bulk_octets, last.saturating_duration_since(start));
            if let Some(c) = self.clients.get_mut(line) {
                c.report.throughput_kbps = kbps;
            }
        }
        let _ = call.client_ip;
    }

    // ---- client ------------------------------------------------------------------------

    fn client_action(&mut self, i: usize) {
        let now = self.now;
        let Some(c) = self.clients.get_mut(i) else {
            return;
        };
        match c.state {
            ClientState::Idle => {
                c.state = ClientState::Dialing;
                c.dial_at = now;
                if let Some(l) = self.lines.get_mut(i) {
                    l.handle_dte(Side::Client, now, b"ATDT5551234\r");
                }
                self.stage(i, "client: dialling ATDT5551234");
            }
            ClientState::Pinging => {
                let pings = self.opts.pings;
                let Some(p) = c.pinger.as_mut() else { return };
                if p.stats().sent < pings {
                    let req = p.next_request(now);
                    let _ = c.session.send_ip(&req);
                    if p.stats().sent < pings {
                        c.next_action = Some(now + PING_INTERVAL);
                    } else {
                        c.ping_deadline = Some(now + PING_WAIT);
                        c.next_action = c.ping_deadline;
                    }
                }
            }
            ClientState::Bulk => {
                c.state = ClientState::Draining;
                c.next_action = Some(now + DRAIN);
            }
            ClientState::Draining => {
                c.report.compression_ratio = c.session.stats().compression_ratio();
                c.state = ClientState::HangingUp;
                c.session.close(now, "user hang-up");
                c.next_action = Some(now + Duration::from_secs(3));
                self.stage(i, "client: hanging up (LCP Terminate)");
            }
            ClientState::HangingUp => {
                // Terminate done or timed out: drop DTR, the modem hangs up.
                if let Some(l) = self.lines.get_mut(i) {
                    l.drop_carrier(now);
                }
                c.state = ClientState::Done;
                self.stage(i, "client: modem on hook");
            }
            ClientState::Dialing | ClientState::Negotiating | ClientState::Done => {}
        }
    }

    fn step_client(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        let (Some(c), Some(line)) = (self.clients.get_mut(i), self.lines.get_mut(i)) else {
            return false;
        };
        let mut stages: Vec<String> = Vec::new();
        // Line -> client.
        while let Some(bytes) = line.poll_dte(Side::Client) {
            moved = true;
            let mut data: &[u8] = &bytes;
            if c.state == ClientState::Dialing {
                c.text.extend_from_slice(&bytes);
                data = &[];
                while let Some(pos) = c.text.iter().position(|&b| b == b'\n') {
                    let raw: Vec<u8> = c.text.drain(..=pos).collect();
                    let text = String::from_utf8_lossy(&raw).trim().to_string();
                    if let Some(speed) = text.strip_prefix("CONNECT") {
                        stages.push(format!("client: CONNECT{speed}, starting PPP (LCP)"));
                        c.state = ClientState::Negotiating;
                        c.session.open(now);
                        break;
                    }
                    if matches!(
                        text.as_str(),
                        "NO CARRIER" | "BUSY" | "NO DIALTONE" | "NO ANSWER" | "ERROR"
                    ) {
                        c.report.errors.push(format!("dial failed: {text}"));
                        c.state = ClientState::Done;
                    }
                }
                if c.state == ClientState::Negotiating {
                    let rest = std::mem::take(&mut c.text);
                    feed_session(c, now, &rest);
                }
            }
            if !data.is_empty() && c.state != ClientState::Done {
                feed_session(c, now, data);
            }
        }
        // Carrier lost while the call was up.
        if matches!(
            c.state,
            ClientState::Negotiating
                | ClientState::Pinging
                | ClientState::Bulk
                | ClientState::Draining
                | ClientState::HangingUp
        ) && !line.is_connected()
        {
            if c.state != ClientState::HangingUp {
                c.report.errors.push("carrier lost".to_string());
            }
            c.session.lower_down(now);
            c.state = ClientState::Done;
            c.next_action = None;
            stages.push("client: NO CARRIER, call over".to_string());
            moved = true;
        }
        // Session events.
        while let Some(ev) = c.session.poll_event() {
            moved = true;
            match ev {
                PppEvent::LinkUp(l) => {
                    stages.push(format!(
                        "client: LCP opened, server asks for {}",
                        l.auth_self.map_or("no authentication", auth_name)
                    ));
                }
                PppEvent::Authenticated { .. } => {
                    c.report.auth = c.session.engine().link().auth_self;
                    stages.push(format!(
                        "client: authenticated ({})",
                        c.report.auth.map_or("none", auth_name)
                    ));
                }
                PppEvent::CcpUp(r) => {
                    let bits = r.key_bits().unwrap_or(0);
                    let stateless = r.tx.0 & MppeBits::H_STATELESS != 0;
                    let mppc = r.tx.0 & MppeBits::MPPC != 0;
                    c.report.mppe_bits = bits;
                    c.report.stateless = stateless;
                    c.report.mppc = mppc;
                    stages.push(format!(
                        "client: CCP opened: MPPE {} {}, MPPC {}",
                        if bits == 0 {
                            "off".to_string()
                        } else {
                            format!("{bits}-bit")
                        },
                        if stateless { "stateless" } else { "stateful" },
                        if mppc { "on" } else { "off" }
                    ));
                }
                PppEvent::IpUp(r) => {
                    c.report.local_ip = Some(r.local);
                    c.report.peer_ip = Some(r.peer);
                    c.report.dns = r.dns[0];
                    c.report.setup_time = Some(now.saturating_duration_since(c.dial_at));
                    stages.push(format!(
                        "client: IPCP opened: {} -> {}, DNS {}",
                        r.local,
                        r.peer,
                        r.dns[0].map_or("-".to_string(), |d| d.to_string())
                    ));
                }
                PppEvent::LinkDown(reason) => {
                    if c.state == ClientState::Done {
                        // Already over (carrier lost): nothing more to do.
                    } else if c.state == ClientState::HangingUp {
                        // Terminate-Ack received: the modem can hang up now.
                        c.next_action = Some(now);
                    } else if reason != DownReason::Closed {
                        c.report.errors.push(format!("link down: {reason}"));
                        stages.push(format!("client: link down: {reason}"));
                        c.state = ClientState::HangingUp;
                        c.next_action = Some(now);
                    }
                }
                _ => {}
            }
        }
        // Ready for traffic?
        if c.state == ClientState::Negotiating && c.session.ready() && !c.reported_link {
            c.reported_link = true;
            if let (Some(local), Some(peer)) = (c.report.local_ip, c.report.peer_ip) {
                c.pinger = Some(Pinger::new(local, peer, 0x1000 + c.index as u16, 56));
                c.bulk = Some(BulkStream::new(local, peer, 1000));
                c.state = ClientState::Pinging;
                c.next_action = Some(now);
                stages.push(format!("client: pinging {peer}"));
            }
        }
        // End of the ping phase: every ping sent, and all answered or the wait is over.
        if c.state == ClientState::Pinging {
            if let Some(p) = c.pinger.as_ref() {
                let all_sent = p.stats().sent >= self.opts.pings;
                let waited = c.ping_deadline.is_some_and(|d| now >= d);
                if all_sent && (p.outstanding() == 0 || waited) {
                    let s = p.stats().clone();
                    c.report.pings_sent = s.sent;
                    c.report.pings_received = s.received;
                    c.report.rtt_ms_median = s.median().map(|d| d.as_secs_f64() * 1000.0);
                    stages.push(format!(
                        "client: pings {}/{} answered, median rtt {}",
                        s.received,
                        s.sent,
                        s.median().map_or("-".to_string(), |d| format!(
                            "{:.1} ms",
                            d.as_secs_f64() * 1000.0
                        ))
                    ));
                    moved = true;
                    if self.opts.duration.is_zero() {
                        c.state = ClientState::Draining;
                        c.next_action = Some(now);
                    } else {
                        stages.push(format!(
                            "client: throughput run, {:.0} s of bulk UDP to the discard port",
                            self.opts.duration.as_secs_f64()
                        ));
                        c.state = ClientState::Bulk;
                        c.bulk_start = Some(now);
                        c.next_action = Some(now + self.opts.duration);
                    }
                }
            }
        }
        // Bulk traffic while the line takes it.
        if c.state == ClientState::Bulk {
            let mut n = 0;
            while line.can_accept(Side::Client) && n < 4 {
                let Some(b) = c.bulk.as_mut() else { break };
                let pkt = b.next_packet();
                if c.session.send_ip(&pkt).is_err() {
                    break;
                }
                n += 1;
                if !drain_client(c, line, now) {
                    break;
                }
            }
            moved |= n > 0;
        }
        moved |= drain_client(c, line, now);
        for s in stages {
            self.stage(i, &s);
        }
        moved
    }

    // ---- PAC line side -----------------------------------------------------------------

    fn step_pac_line(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        let mut ring = false;
        let mut connect: Option<u32> = None;
        {
            let (Some(p), Some(line)) = (self.ports.get_mut(i), self.lines.get_mut(i)) else {
                return false;
            };
            while let Some(bytes) = line.poll_dte(Side::Nas) {
                moved = true;
                match p.state {
                    PacLine::Up { peer_call_id, .. } => {
                        let mut input: &[u8] = &bytes;
                        while let Some(r) = p.dec.decode(&mut input) {
                            match r {
                                Ok(frame) => {
                                    let len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
                                    let gre = GreRepr::data(
                                        peer_call_id,
                                        len,
                                        SeqNumber(p.gre_seq),
                                        None,
                                    );
                                    p.gre_seq = p.gre_seq.wrapping_add(1);
                                    let mut out = Vec::with_capacity(frame.len() + 16);
                                    gre.emit_with_payload(frame, &mut out);
                                    self.to_pns.push_back(out);
                                    self.pac.frames_to_gre += 1;
                                }
                                Err(_) => self.pac.hdlc_errors += 1,
                            }
                        }
                    }
                    _ => {
                        p.text.extend_from_slice(&bytes);
                        while let Some(pos) = p.text.iter().position(|&b| b == b'\n') {
                            let raw: Vec<u8> = p.text.drain(..=pos).collect();
                            let text = String::from_utf8_lossy(&raw).trim().to_string();
                            if text == "RING" {
                                ring = true;
                            } else if let Some(s) = text.strip_prefix("CONNECT") {
                                connect = Some(
                                    s.trim()
                                        .split('/')
                                        .next()
                                        .and_then(|v| v.parse().ok())
                                        .unwrap_or(self.opts.speed),
                                );
                                // Anything after CONNECT in this chunk is line data.
                                p.text.clear();
                                break;
                            }
                        }
                    }
                }
            }
        }
        if ring {
            self.pac.rings += 1;
            let idle = self.ports.get(i).is_some_and(|p| p.state == PacLine::Idle);
            if idle {
                let dialing = TextField::new(format!("555{i:04}").as_bytes()).unwrap_or_default();
                let call = IncomingCall {
                    bearer: BearerType::Analog,
                    physical_channel_id: u32::try_from(i).unwrap_or(0),
                    dialed: TextField::new(b"5551234").unwrap_or_default(),
                    dialing,
                    subaddress: TextField::default(),
                };
                match self.pac_ctrl.incoming_call(now, call) {
                    Ok(id) => {
                        self.pac.icrq_sent += 1;
                        self.pac_calls.insert(id, i);
                        if let Some(p) = self.ports.get_mut(i) {
                            p.state = PacLine::Requested(id);
                        }
                        self.stage(i, &format!("PAC: RING on line {i}, ICRQ sent (call {id})"));
                    }
                    Err(e) => self.stage(i, &format!("PAC: RING but ICRQ refused: {e}")),
                }
            }
        }
        if let Some(speed) = connect {
            if let Some(PacLine::Answering(id)) = self.ports.get(i).map(|p| p.state) {
                self.stage(i, &format!("PAC: CONNECT {speed} on line {i}"));
                let _ = self
                    .pac_ctrl
                    .answer_connected(now, id, speed, FramingType::Async);
            }
        }
        // Carrier gone under an established call: hang up, CDN.
        if let Some(PacLine::Up { call_id, .. }) = self.ports.get(i).map(|p| p.state) {
            if self.lines.get(i).is_some_and(|l| !l.is_connected()) {
                let _ = self.pac_ctrl.hang_up(now, call_id, CauseCode::None);
                if let Some(p) = self.ports.get_mut(i) {
                    p.state = PacLine::Idle;
                    p.dec.reset();
                }
                self.stage(i, "PAC: carrier dropped, hanging up (CDN)");
                moved = true;
            }
        }
        moved
    }

    // ---- GRE ---------------------------------------------------------------------------

    fn step_gre(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        while let Some(pkt) = self.to_pns.pop_front() {
            moved = true;
            let Ok((gre, payload)) = GreRepr::parse_bytes(&pkt) else {
                self.pns.gre_dropped += 1;
                continue;
            };
            // Only GRE for an established call ID is accepted.
            match self.pns_calls.get_mut(&gre.call_id) {
                Some(call) => {
                    if let Some(s) = call.session.as_mut() {
                        if let Some(ip) = s.handle_frame(now, payload) {
                            match call.responder.handle_packet(&ip) {
                                Ok(Verdict::Reply(reply)) => {
                                    let _ = s.send_ip(&reply);
                                }
                                Ok(Verdict::Discarded) => {
                                    call.first_bulk.get_or_insert(now);
                                    call.last_bulk = Some(now);
                                    call.bulk_octets += ip.len() as u64;
                                }
                                _ => {}
                            }
                        }
                    }
                }
                None => self.pns.gre_dropped += 1,
            }
        }
        while let Some(pkt) = self.to_pac.pop_front() {
            moved = true;
            let Ok((gre, payload)) = GreRepr::parse_bytes(&pkt) else {
                self.pac.gre_dropped += 1;
                continue;
            };
            let Some(&line) = self.pac_calls.get(&gre.call_id) else {
                self.pac.gre_dropped += 1;
                continue;
            };
            let (Some(p), Some(l)) = (self.ports.get_mut(line), self.lines.get_mut(line)) else {
                continue;
            };
            if !matches!(p.state, PacLine::Up { .. }) {
                self.pac.gre_dropped += 1;
                continue;
            }
            let mut out = Vec::with_capacity(payload.len() * 2 + 8);
            if p.enc.encode(payload, &mut out).is_ok() {
                self.pac.frames_to_line += 1;
                l.handle_dte(Side::Nas, now, &out);
            }
        }
        moved
    }

    fn step_pns_sessions(&mut self) -> bool {
        let mut moved = false;
        let mut ended: Vec<(u16, String)> = Vec::new();
        let mut stages: Vec<(u16, String)> = Vec::new();
        for (&call_id, call) in self.pns_calls.iter_mut() {
            let Some(s) = call.session.as_mut() else {
                continue;
            };
            while let Some(frame) = s.poll_transmit() {
                moved = true;
                let len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
                let gre = GreRepr::data(call.peer_call_id, len, SeqNumber(call.gre_seq), None);
                call.gre_seq = call.gre_seq.wrapping_add(1);
                let mut out = Vec::with_capacity(frame.len() + 16);
                gre.emit_with_payload(&frame, &mut out);
                self.to_pac.push_back(out);
            }
            while let Some(ev) = s.poll_event() {
                moved = true;
                match ev {
                    PppEvent::Authenticated { user } => {
                        self.pns.auth_ok += 1;
                        let src = self.pns_source.get(&call_id).map_or("", String::as_str);
                        self.throttle.record(self.now, &user, src, true);
                        stages.push((
                            call_id,
                            format!("PNS: user {} authenticated", String::from_utf8_lossy(&user)),
                        ));
                    }
                    PppEvent::LinkDown(reason) => {
                        if let DownReason::AuthFailed(f) = &reason {
                            self.pns.auth_failed += 1;
                            let src = self.pns_source.get(&call_id).map_or("", String::as_str);
                            let user = failure_user(f).unwrap_or_default();
                            self.throttle.record(self.now, user.as_bytes(), src, false);
                        }
                        stages.push((call_id, format!("PNS: PPP down: {reason}")));
                        ended.push((call_id, reason.to_string()));
                    }
                    _ => {}
                }
            }
        }
        for (call_id, s) in stages {
            if let Some(&line) = self.pns_line.get(&call_id) {
                self.stage(line, &s);
            }
        }
        for (call_id, reason) in ended {
            // PPP is over: clear the call (CCRQ) a moment later, once the Terminate is through;
            // the PAC answers with CDN.
            self.pending_clear
                .push((call_id, self.now + Duration::from_secs(1)));
            if reason != DownReason::PeerTerminated.to_string() {
                if let Some(c) = self
                    .pns_line
                    .get(&call_id)
                    .and_then(|&l| self.clients.get_mut(l))
                {
                    c.report.errors.push(format!("PNS: {reason}"));
                }
            }
        }
        moved
    }

    fn finish(mut self) -> LabReport {
        let ids: Vec<u16> = self.pns_calls.keys().copied().collect();
        for id in ids {
            if let Some(call) = self.pns_calls.remove(&id) {
                self.absorb_call(id, &call);
            }
        }
        let opts = self.opts.clone();
        let mut clients = Vec::new();
        for c in &mut self.clients {
            let mut r = std::mem::take(&mut c.report);
            if let Some(p) = c.pinger.as_ref() {
                // Also when the ping phase never finished (carrier lost, link down).
                let s = p.stats();
                r.pings_sent = s.sent;
                r.pings_received = s.received;
                r.rtt_ms_median = s.median().map(|d| d.as_secs_f64() * 1000.0);
            }
            let expected_bits = opts.mppe_bits.unwrap_or(0);
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
            clients.push(r);
        }
        let (lockouts, refused) = self.throttle.counters();
        self.pns.auth_lockouts = lockouts;
        self.pns.auth_refused_locked = refused;
        let ok = !clients.is_empty() && clients.iter().all(|c| c.errors.is_empty());
        let _ = &self.client_policy;
        LabReport {
            ok,
            clients,
            pac: self.pac,
            pns: self.pns,
            virtual_time: self.now.saturating_duration_since(self.start),
        }
    }
}

/// The user name an authentication failure names, if any.
fn failure_user(f: &AuthFailure) -> Option<String> {
    match f {
        AuthFailure::UnknownUser(u)
        | AuthFailure::BadCredentials(u)
        | AuthFailure::NeedCleartext(u)
        | AuthFailure::LmRefused(u) => Some(u.clone()),
        _ => None,
    }
}

fn end_text(end: &CallEnd) -> String {
    match end {
        CallEnd::Local => "hung up locally".to_string(),
        CallEnd::ClearedByPeer => "cleared by peer (CCRQ)".to_string(),
        CallEnd::Disconnected { result, .. } => format!("CDN {result:?}"),
        other => format!("{other:?}"),
    }
}

/// Feeds line octets through the client's HDLC decoder into its session.
fn feed_session(c: &mut Client, now: Instant, mut data: &[u8]) {
    while let Some(r) = c.dec.decode(&mut data) {
        if let Ok(frame) = r {
            let frame = frame.to_vec();
            if let Some(ip) = c.session.handle_frame(now, &frame) {
                if let Some(p) = c.pinger.as_mut() {
                    let _ = p.handle_packet(now, &ip);
                }
            }
        }
    }
}

/// Frames the client's outgoing PPP frames onto its line; false when the line is full.
fn drain_client(c: &mut Client, line: &mut LinePair, now: Instant) -> bool {
    let mut moved = false;
    while let Some(f) = c.session.poll_transmit() {
        moved = true;
        let mut out = Vec::with_capacity(f.len() * 2 + 8);
        if c.enc.encode(&f, &mut out).is_ok() {
            line.handle_dte(Side::Client, now, &out);
        }
    }
    moved && line.can_accept(Side::Client)
}

fn seed_for(n: u32, salt: u8) -> [u8; 32] {
    // The lab is a deterministic simulation; real daemons seed from the OS.
    let mut s = [salt; 32];
    if let Some(d) = s.get_mut(..4) {
        d.copy_from_slice(&n.to_be_bytes());
    }
    s
}

/// Runs the lab; `progress` gets one line per stage.
pub fn run(opts: LabOptions, progress: Box<dyn FnMut(&str)>) -> LabReport {
    Lab::new(opts, progress).run()
}

#[cfg(test)]
mod test {
    use super::*;

    fn quiet(opts: LabOptions) -> LabReport {
        run(opts, Box::new(|_| {}))
    }

    #[test]
    fn default_chain_succeeds() {
        let r = quiet(LabOptions {
            duration: Duration::from_secs(2),
            ..LabOptions::default()
        });
        assert!(r.ok, "{}", r.table());
        let c = &r.clients[0];
        assert_eq!(c.auth, Some(AuthMethod::MsChapV2));
        assert_eq!(c.mppe_bits, 128);
        assert!(c.mppc && !c.stateless);
        assert_eq!((c.pings_sent, c.pings_received), (5, 5));
        assert!(c.throughput_kbps > 0.0);
        assert!(
            c.compression_ratio > 1.0,
            "text compresses: {}",
            c.compression_ratio
        );
        assert_eq!(r.pac.calls_connected, 1);
        assert_eq!(r.pns.auth_ok, 1);
        assert_eq!(r.pns.icmp_echo, 5);
    }

    #[test]
    fn wrong_password_fails_cleanly() {
        let r = quiet(LabOptions {
            client_password: "wrong".to_string(),
            duration: Duration::ZERO,
            ..LabOptions::default()
        });
        assert!(!r.ok);
        assert_eq!(r.pns.auth_failed, 1);
        assert!(
            r.clients[0]
                .errors
                .iter()
                .any(|e| e.contains("authentication")),
            "{:?}",
            r.clients[0].errors
        );
    }

    #[test]
    fn wrong_password_from_six_callers_locks_the_user_out() {
        let r = quiet(LabOptions {
            clients: 8,
            client_password: "guess".to_string(),
            duration: Duration::ZERO,
            ..LabOptions::default()
        });
        assert!(!r.ok);
        // Five failures of "alice" lock her out (one lockout, for the user; each caller has
        // its own number, so no source reaches five); later attempts are refused unchecked.
        assert_eq!(r.pns.auth_lockouts, 1, "{}", r.table());
        assert!(r.pns.auth_refused_locked >= 1, "{}", r.table());
    }

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
}
