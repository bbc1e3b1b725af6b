//! `pptp-nas ppp`: the PPP engine over stdin/stdout or a tty, in async-HDLC framing: a pppd
//! stand-in behind pptpd (its `ppp` option) or pptp-linux (`pptp --nolaunchpppd`, fd 0).
//!
//! - Server role authenticates `--user NAME:PASS` entries, assigns addresses (from `--local` /
//!   `--remote`, or from pppd's `LOCAL:REMOTE` positional argument that pptpd passes).
//! - Client role authenticates with the first `--user`, and with `--ping N` sends N pings to
//!   the peer, closes the link and exits.
//! - pppd-style positional arguments (`local file X 115200 A:B ipparam ...`) are accepted and
//!   ignored, except `A:B`. Settings also come from the file named in `PPTP_NAS_PPP_CONFIG`
//!   (one `flag value` per line, `#` comments); command-line flags win over the file.
//! - A tty (fd 0, or `--tty`) is put in raw mode by re-opening its device path; we speak
//!   first (LCP Configure-Request goes out at once), which pptpctrl waits for.
//!
//! Exit codes: [`EXIT_OK`], [`EXIT_FAILED`], [`EXIT_USAGE`], [`EXIT_IO`]. The last line on
//! stderr (and in `--result-file`) is one `pptp-nas ppp: ok ...` or `pptp-nas ppp: FAILED ...`.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::io::Read as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::policy::{apply_ccp, parse_auth, parse_mppc, parse_mppe, parse_user};
use crate::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
use crate::io::tun::{mtu_for, recv_opt, Tun};
use crate::pns::session::{Session, SessionStats};
use crate::ppp::auth::{ClientCredentials, StaticCredentials};
#[cfg(test)]
use crate::ppp::ccp::MppeMode;
use crate::ppp::engine::{DownReason, Event, Phase, Policy, Role};
use crate::ppp::ipcp::IpcpConfig;
use crate::ppp::lcp::AuthMethod;
use crate::ppp::packet::MppeBits;
use crate::responder::{BulkStream, Pinger, Responder, Verdict};

/// Exit code: the link came up (and every ping came back).
pub const EXIT_OK: i32 = 0;
/// Exit code: negotiation, authentication or pings failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad flags or configuration.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the line could not be opened or set up.
pub const EXIT_IO: i32 = 3;

/// Environment variable naming a settings file.
pub const CONFIG_ENV: &str = "PPTP_NAS_PPP_CONFIG";

/// Flags of `pptp-nas ppp` (all optional so that the settings file can fill them in).
#[derive(Debug, Clone, Default, Args)]
pub struct PppArgs {
    /// Use stdin/stdout (the default when no --tty is given).
    #[arg(long)]
    pub stdio: bool,
    /// Use this tty (opened read-write and put in raw mode) instead of stdio.
    #[arg(long)]
    pub tty: Option<PathBuf>,
    /// server (authenticate the peer, assign addresses) or client.
    #[arg(long)]
    pub role: Option<String>,
    /// Authentication the server demands: pap, chap, mschap or mschapv2 (default mschapv2).
    #[arg(long)]
    pub auth: Option<String>,
    /// MPPE: none, 40, 56 or 128 (required at that key length; default 128).
    #[arg(long)]
    pub mppe: Option<String>,
    /// Stateless MPPE.
    #[arg(long)]
    pub stateless: bool,
    /// MPPC compression: on or off (default on).
    #[arg(long)]
    pub mppc: Option<String>,
    /// A user NAME:PASS (server: accepted; client: the first one is ours). Repeatable.
    #[arg(long = "user")]
    pub users: Vec<String>,
    /// Answer ICMP echo and UDP echo/discard (server role by default).
    #[arg(long)]
    pub responder: bool,
    /// Client: send this many pings to the peer, then close the link and exit.
    #[arg(long)]
    pub ping: Option<u32>,
    /// Deliver the link's IP to this TUN interface (created once IPCP is up, with the
    /// negotiated addresses; needs root or CAP_NET_ADMIN) instead of the built-in responder.
    #[arg(long)]
    pub tun: Option<String>,
    /// Our IPv4 address (server default 192.168.77.1, or pppd's LOCAL:REMOTE argument).
    #[arg(long)]
    pub local: Option<Ipv4Addr>,
    /// The address assigned to the peer (server role).
    #[arg(long)]
    pub remote: Option<Ipv4Addr>,
    /// Give up when the link is not up after this many seconds (default 20).
    #[arg(long)]
    pub connect_timeout: Option<f64>,
    /// Also write the one-line result to this file.
    #[arg(long)]
    pub result_file: Option<PathBuf>,
    /// Write logs to this file instead of stderr.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// pppd-style arguments (`local file X 115200 A:B ipparam ...`): ignored except `A:B`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub pppd_args: Vec<String>,
}

#[derive(Debug, Parser)]
#[command(name = "ppp-config", no_binary_name = true)]
struct FileArgs {
    #[command(flatten)]
    args: PppArgs,
}

/// Merges the settings file (named by [`CONFIG_ENV`]) under the command-line flags.
pub fn merge_config_file(cli: PppArgs, text: &str) -> Result<PppArgs, String> {
    let mut tokens = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, Some(v.trim())),
            None => (line, None),
        };
        let key = key.trim_start_matches("--");
        if key.is_empty() {
            return Err(format!("line {}: empty key", no + 1));
        }
        tokens.push(format!("--{key}"));
        if let Some(v) = value {
            tokens.push(v.to_string());
        }
    }
    let file = FileArgs::try_parse_from(tokens)
        .map_err(|e| format!("{}", e.render()).trim().to_string())?
        .args;
    if let Some(extra) = file.pppd_args.first() {
        return Err(format!(
            "unexpected {extra:?} (expected `flag value` lines)"
        ));
    }
    let mut users = file.users;
    users.extend(cli.users);
    Ok(PppArgs {
        stdio: cli.stdio || file.stdio,
        tty: cli.tty.or(file.tty),
        role: cli.role.or(file.role),
        auth: cli.auth.or(file.auth),
        mppe: cli.mppe.or(file.mppe),
        stateless: cli.stateless || file.stateless,
        mppc: cli.mppc.or(file.mppc),
        users,
        responder: cli.responder || file.responder,
        ping: cli.ping.or(file.ping),
        tun: cli.tun.or(file.tun),
        local: cli.local.or(file.local),
        remote: cli.remote.or(file.remote),
        connect_timeout: cli.connect_timeout.or(file.connect_timeout),
        result_file: cli.result_file.or(file.result_file),
        log_file: cli.log_file.or(file.log_file),
        pppd_args: cli.pppd_args,
    })
}

/// Settings after defaults and validation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The policy for the engine.
    pub policy: Policy,
    /// Users accepted (server role).
    pub store: Option<Arc<StaticCredentials>>,
    /// Run the responder.
    pub responder: bool,
    /// Pings to send (client).
    pub pings: u32,
    /// Establishment bound.
    pub connect_timeout: Duration,
    /// Client: after the pings, this long a bulk UDP stream to the peer's discard port
    /// (zero: none), timed until a trailing ping comes back (`pptp-nas dial --throughput`).
    pub throughput: Duration,
    /// Deliver IP to this TUN interface (`--tun`) instead of the responder.
    pub tun: Option<String>,
}

/// Turns flags into [`Settings`].
pub fn settings(a: &PppArgs) -> Result<Settings, String> {
    let role = match a.role.as_deref().unwrap_or("server") {
        "server" => Role::Server,
        "client" => Role::Client,
        other => return Err(format!("--role {other}: expected server or client")),
    };
    let auth_s = a.auth.as_deref().unwrap_or("mschapv2");
    let auth = parse_auth(auth_s)?;
    let mppe_bits = parse_mppe(a.mppe.as_deref().unwrap_or("128"))?;
    let mppc = parse_mppc(a.mppc.as_deref().unwrap_or("on"))?;
    let users = a
        .users
        .iter()
        .map(|u| parse_user(u))
        .collect::<Result<Vec<_>, _>>()?;
    // pppd's "LOCAL:REMOTE" argument, as pptpd passes it.
    let pppd_addrs = a.pppd_args.iter().find_map(|s| {
        let (l, r) = s.split_once(':')?;
        Some((l.parse::<Ipv4Addr>().ok()?, r.parse::<Ipv4Addr>().ok()?))
    });
    let connect_timeout = a.connect_timeout.unwrap_or(20.0);
    if let Some(t) = &a.tun {
        crate::io::tun::check_name(t).map_err(|e| format!("--tun: {e}"))?;
        if a.responder || a.ping.is_some() {
            return Err(
                "--tun cannot be combined with --responder or --ping: the link's IP goes either \
                 to the TUN or to the built-in responder/traffic"
                    .to_string(),
            );
        }
    }
    if !(connect_timeout.is_finite() && connect_timeout > 0.0 && connect_timeout < 86_400.0) {
        return Err("--connect-timeout must be positive seconds".to_string());
    }
    let mut policy = match role {
        Role::Server => {
            if users.is_empty() {
                return Err("server role needs at least one --user NAME:PASS".to_string());
            }
            Policy::server(
                vec![auth],
                IpcpConfig {
                    local: Some(
                        a.local
                            .or(pppd_addrs.map(|p| p.0))
                            .unwrap_or(Ipv4Addr::new(192, 168, 77, 1)),
                    ),
                    assign_peer: Some(
                        a.remote
                            .or(pppd_addrs.map(|p| p.1))
                            .unwrap_or(Ipv4Addr::new(192, 168, 77, 10)),
                    ),
                    dns: [None, None],
                    request_dns: false,
                },
            )
        }
        Role::Client => {
            let (n, p) = users
                .first()
                .ok_or_else(|| "client role needs --user NAME:PASS".to_string())?;
            let mut p = Policy::client(ClientCredentials::new(n, p));
            p.lcp.accept_auth = vec![
                AuthMethod::MsChapV2,
                AuthMethod::MsChapV1,
                AuthMethod::ChapMd5,
                AuthMethod::Pap,
            ];
            p.ipcp.request_dns = false;
            p.ipcp.local = a.local;
            p
        }
    };
    apply_ccp(
        &mut policy.ccp,
        mppe_bits,
        a.stateless,
        mppc,
        matches!(role, Role::Server),
    );
    let store = match role {
        Role::Server => {
            let mut s = StaticCredentials::new();
            for (n, p) in &users {
                s = s.with_password(n, p);
            }
            Some(Arc::new(s))
        }
        Role::Client => None,
    };
    Ok(Settings {
        policy,
        store,
        responder: a.tun.is_none() && (a.responder || role == Role::Server),
        pings: a.ping.unwrap_or(0),
        connect_timeout: Duration::from_secs_f64(connect_timeout),
        throughput: Duration::ZERO,
        tun: a.tun.clone(),
    })
}

/// The outcome of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The user that authenticated.
    pub user: Option<String>,
    /// MPPE key bits (0 none).
    pub mppe_bits: u16,
    /// MPPC negotiated.
    pub mppc: bool,
    /// Stateless MPPE.
    pub stateless: bool,
    /// Our and the peer's addresses.
    pub addrs: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Pings sent and answered.
    pub pings: (u32, u32),
    /// Packets the responder answered.
    pub answered: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// What kind of failure `error` is (set with it).
    pub failure: Option<LinkFailure>,
    /// The authentication method used on the link (either direction).
    pub auth: Option<AuthMethod>,
    /// DNS servers IPCP assigned (client) or handed out (server).
    pub dns: [Option<Ipv4Addr>; 2],
    /// Median round-trip time of the pings answered.
    pub rtt_median: Option<Duration>,
    /// Throughput run: IP octets sent and the time until the trailing ping came back.
    pub bulk: Option<(u64, Duration)>,
    /// Data-path counters (compression ratio) at the end.
    pub stats: SessionStats,
}

/// The kind of a failed link, for exit codes (`pptp-nas dial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkFailure {
    /// Authentication failed or was refused.
    Auth,
    /// LCP, CCP (MPPE policy) or IPCP could not agree.
    Negotiation,
    /// The peer did not answer in time (LCP, echo, or the link not up by the deadline).
    Timeout,
    /// The link came up but pings went unanswered.
    PingsLost,
    /// The line went away (EOF, read/write error) before we were done.
    LineClosed,
    /// The TUN interface could not be created (`--tun`; no root or CAP_NET_ADMIN).
    Tun,
}

impl LinkFailure {
    /// The kind of failure a [`DownReason`] means.
    pub fn of(reason: &DownReason) -> LinkFailure {
        match reason {
            DownReason::AuthFailed(_) | DownReason::AuthRefused | DownReason::NoCredentials => {
                LinkFailure::Auth
            }
            DownReason::LcpTimeout | DownReason::EchoTimeout | DownReason::TerminateTimeout => {
                LinkFailure::Timeout
            }
            DownReason::LowerLayerDown => LinkFailure::LineClosed,
            _ => LinkFailure::Negotiation,
        }
    }
}

/// A throughput run in progress (see [`Settings::throughput`]).
#[derive(Debug)]
struct BulkRun {
    stream: BulkStream,
    start: Instant,
    marker: Pinger,
    marker_sent: Option<Instant>,
}

impl Outcome {
    /// The one-line result.
    pub fn line(&self) -> String {
        let addrs = self
            .addrs
            .map(|(l, p)| format!("{l}->{p}"))
            .unwrap_or_else(|| "-".to_string());
        let body = format!(
            "user={} mppe={} mppc={} stateless={} ip={} pings={}/{} answered={}",
            self.user.as_deref().unwrap_or("-"),
            self.mppe_bits,
            if self.mppc { "on" } else { "off" },
            self.stateless,
            addrs,
            self.pings.1,
            self.pings.0,
            self.answered
        );
        match &self.error {
            None => format!("pptp-nas ppp: ok {body}"),
            Some(e) => format!("pptp-nas ppp: FAILED ({e}) {body}"),
        }
    }
}

/// A byte stream both ways.
type Line = (
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
);

/// Opens a tty path in raw mode 8N1 (serialport applies cfmakeraw to the device).
fn open_tty(path: &std::path::Path) -> std::io::Result<Line> {
    use tokio_serial::SerialPortBuilderExt as _;
    let s = tokio_serial::new(path.to_string_lossy(), 115_200)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(std::io::Error::from)?;
    let (r, w) = tokio::io::split(s);
    Ok((Box::new(r), Box::new(w)))
}

/// stdio, or the tty behind fd 0 (re-opened by path so it can be put in raw mode).
fn open_line(a: &PppArgs) -> std::io::Result<Line> {
    if let Some(p) = &a.tty {
        return open_tty(p);
    }
    if let Ok(target) = std::fs::read_link("/proc/self/fd/0") {
        let s = target.to_string_lossy();
        if s.starts_with("/dev/pts/") || s.starts_with("/dev/tty") {
            tracing::info!(tty = %s, "fd 0 is a tty: re-opening it in raw mode");
            return open_tty(&target);
        }
    }
    Ok((Box::new(tokio::io::stdin()), Box::new(tokio::io::stdout())))
}

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut s);
    }
    s
}

/// Runs one PPP link over `line` until it ends; sans-IO session, tokio shell.
pub async fn run_link<'a>(
    st: &Settings,
    mut reader: Box<dyn AsyncRead + Unpin + Send + 'a>,
    mut writer: Box<dyn AsyncWrite + Unpin + Send + 'a>,
    seed: [u8; 32],
) -> Outcome {
    let store = st
        .store
        .clone()
        .map(|s| s as Arc<dyn crate::ppp::auth::CredentialStore + Send + Sync>);
    let mut session = Session::new(Arc::new(st.policy.clone()), store, seed);
    // We take the receive ACCM we ask for (0 by default) from the start, not only once LCP is
    // Opened: a PAC relay frames with our ACCM as soon as it sees the peer ack our request,
    // which is before our own LCP is Opened when the peer's first Configure-Request was lost
    // (pptpd sends GRE at once; a PAC that routes the call a moment later drops its first
    // packet). Deleting raw control characters until Opened would drop every later
    // Configure-Request and LCP would never open (seen in scenario a, tests/interop_pac.rs).
    let mut dec = Decoder::new(DecoderConfig {
        accm: st.policy.lcp.accm.unwrap_or(crate::hdlc::DEFAULT_ACCM),
        ..DecoderConfig::default()
    });
    let mut rbuf = vec![0u8; 16 * 1024];
    let mut accm_applied = false;
    let mut enc = Encoder::new(EncoderConfig::default());
    let mut out = Outcome::default();
    let mut responder = Responder::new();
    let mut pinger: Option<Pinger> = None;
    let mut bulk: Option<BulkRun> = None;
    let traffic = st.pings > 0 || !st.throughput.is_zero();
    let mut next_ping = Instant::now();
    let mut closing_since: Option<Instant> = None;
    let started = Instant::now();
    let mut up = false;
    let mut ccp_open = false;
    let mut wbuf = Vec::new();
    let mut tun: Option<Tun> = None;
    let mut tbuf = vec![0u8; 64 * 1024];
    session.open(Instant::now());
    loop {
        let now = Instant::now();
        // Traffic generator: pings, then the throughput run, then close.
        out.stats = session.stats();
        if up && traffic && closing_since.is_none() {
            if pinger.is_none() {
                if let Some((l, p)) = out.addrs {
                    pinger = Some(Pinger::new(l, p, 0x7070, 56));
                }
            }
            if let Some(pg) = pinger.as_mut() {
                if out.pings.1 >= st.pings {
                    if st.throughput.is_zero() || out.bulk.is_some() {
                        session.close(now, "traffic done");
                        closing_since = Some(now);
                    } else if let Some((l, p)) = out.addrs {
                        let b = bulk.get_or_insert_with(|| BulkRun {
                            stream: BulkStream::new(l, p, 1000),
                            start: now,
                            marker: Pinger::new(l, p, 0x7071, 8),
                            marker_sent: None,
                        });
                        if now < b.start + st.throughput {
                            // A few datagrams per turn: the line write below blocks while the
                            // line is full, which paces the stream at the line's speed.
                            for _ in 0..4 {
                                let pkt = b.stream.next_packet();
                                let _ = session.send_ip(&pkt);
                            }
                        } else if b.marker_sent.is_none() {
                            // The trailing ping comes back only after every datagram ahead
                            // of it crossed the line: the run is timed until then.
                            let req = b.marker.next_request(now);
                            let _ = session.send_ip(&req);
                            b.marker_sent = Some(now);
                        } else if b
                            .marker_sent
                            .is_some_and(|t| now > t + Duration::from_secs(15))
                        {
                            out.error = Some(
                                "throughput run: the trailing ping never came back".to_string(),
                            );
                            out.failure = Some(LinkFailure::PingsLost);
                            session.close(now, "pings lost");
                            closing_since = Some(now);
                        }
                    }
                } else if out.pings.0 < st.pings && now >= next_ping {
                    let req = pg.next_request(now);
                    if session.send_ip(&req).is_ok() {
                        out.pings.0 += 1;
                    }
                    next_ping = now + Duration::from_millis(200);
                } else if out.pings.0 >= st.pings && now >= next_ping + Duration::from_secs(3) {
                    out.error = Some(format!(
                        "{} of {} pings unanswered",
                        st.pings - out.pings.1,
                        st.pings
                    ));
                    out.failure = Some(LinkFailure::PingsLost);
                    session.close(now, "pings lost");
                    closing_since = Some(now);
                }
            }
        }
        // Transmit.
        wbuf.clear();
        while let Some(f) = session.poll_transmit() {
            if let Err(e) = enc.encode(&f, &mut wbuf) {
                tracing::warn!(error = %e, "frame not encodable");
            }
        }
        if !wbuf.is_empty() {
            let w = async {
                writer.write_all(&wbuf).await?;
                writer.flush().await
            };
            if let Err(e) = w.await {
                out.error.get_or_insert(format!("line write: {e}"));
                out.failure.get_or_insert(LinkFailure::LineClosed);
                return out;
            }
        }
        // Events.
        let mut done = false;
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::LinkUp(p) => {
                    tracing::info!(?p, "LCP opened");
                    out.auth = p.auth_self.or(p.auth_peer);
                }
                Event::Authenticated { user } => {
                    let u = String::from_utf8_lossy(&user).into_owned();
                    tracing::info!(user = %u, "authenticated");
                    out.user = Some(u);
                }
                Event::CcpUp(r) => {
                    ccp_open = true;
                    out.mppe_bits = r.key_bits().unwrap_or(0);
                    let (t, x) = (r.tx, r.rx);
                    out.mppc = t.contains(MppeBits::MPPC) || x.contains(MppeBits::MPPC);
                    out.stateless = t.contains(MppeBits::H_STATELESS);
                    tracing::info!(?r, "CCP opened");
                }
                Event::IpUp(r) => {
                    tracing::info!(local = %r.local, peer = %r.peer, "IPCP opened");
                    out.addrs = Some((r.local, r.peer));
                    out.dns = r.dns;
                    if let (Some(name), None) = (st.tun.as_deref(), tun.as_ref()) {
                        let mtu = mtu_for(session.engine().link().tx_mru, out.mppe_bits > 0);
                        match Tun::open(name, r.local, r.peer, mtu) {
                            Ok(t) => {
                                tracing::info!(tun = %t.name(), mtu, "IP delivered to TUN");
                                tun = Some(t);
                            }
                            Err(e) => {
                                tracing::error!("{e}");
                                out.error.get_or_insert(e.to_string());
                                out.failure.get_or_insert(LinkFailure::Tun);
                                session.close(now, "TUN setup failed");
                                closing_since = Some(now);
                            }
                        }
                    }
                }
                Event::LinkDown(reason) => {
                    let graceful = closing_since.is_some()
                        || (up && matches!(reason, DownReason::PeerTerminated));
                    if graceful {
                        tracing::info!(%reason, "link down");
                    } else {
                        tracing::error!(%reason, "link down");
                        out.error.get_or_insert(reason.to_string());
                        out.failure.get_or_insert(LinkFailure::of(&reason));
                    }
                    done = true;
                }
                other => tracing::debug!(?other, "event"),
            }
        }
        if !up && session.ready() {
            up = true;
            tracing::info!("link up: network layer open");
        }
        if done {
            // Last words (Terminate-Request/-Ack, CHAP Failure) go out before we leave.
            wbuf.clear();
            while let Some(f) = session.poll_transmit() {
                let _ = enc.encode(&f, &mut wbuf);
            }
            if !wbuf.is_empty() {
                let _ = writer.write_all(&wbuf).await;
                let _ = writer.flush().await;
            }
            if !up {
                out.error.get_or_insert("link never came up".to_string());
                out.failure.get_or_insert(LinkFailure::Negotiation);
            }
            return out;
        }
        if !up && now.duration_since(started) > st.connect_timeout {
            out.error = Some(format!(
                "link not up after {:.0} s (phase {:?})",
                st.connect_timeout.as_secs_f64(),
                session.engine().phase()
            ));
            out.failure = Some(LinkFailure::Timeout);
            return out;
        }
        if let Some(c) = closing_since {
            if now.duration_since(c) > Duration::from_secs(4) {
                return out;
            }
        }
        // Wait for the next frame or deadline.
        let mut deadline = session
            .poll_timeout()
            .unwrap_or(now + Duration::from_secs(1))
            .min(now + Duration::from_secs(1));
        if up && traffic {
            deadline = deadline.min(next_ping.max(now));
        }
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
        tokio::select! {
            n = reader.read(&mut rbuf) => {
                let now = Instant::now();
                match n {
                    Ok(0) => {
                        // A reason the engine already knows (CHAP Failure, CCP refusal) says
                        // more than the EOF that followed it.
                        if let Some(r) = session.down_reason() {
                            if !matches!(r, DownReason::Closed | DownReason::PeerTerminated) {
                                tracing::error!(reason = %r, "link down");
                                out.error.get_or_insert(r.to_string());
                                out.failure.get_or_insert(LinkFailure::of(r));
                            }
                        }
                        if !up && out.error.is_none() && out.user.is_some() {
                            // Authenticated, then the line went away before CCP/IPCP were
                            // up: a policy mismatch (the peer hangs up when we refuse
                            // what it requires, e.g. MPPE), not a line fault.
                            let e = eof_after_auth(ccp_open, &st.policy);
                            tracing::error!("{e}");
                            out.error = Some(e);
                        }
                        session.lower_down(now);
                        if !up || (closing_since.is_none() && traffic) {
                            out.error.get_or_insert("line closed (EOF)".to_string());
                            out.failure.get_or_insert(LinkFailure::LineClosed);
                        }
                        return out;
                    }
                    Ok(n) => {
                        let mut input = rbuf.get(..n).unwrap_or_default();
                        // One frame at a time: the frame that opens LCP changes how the next
                        // one in the same read is deframed.
                        while let Some(r) = dec.decode(&mut input) {
                            let Ok(f) = r else { continue };
                            let frame = f.to_vec();
                            let ip = session.handle_frame(now, &frame);
                            let after = session.engine().phase();
                            if !accm_applied && !matches!(after, Phase::Dead | Phase::Establish) {
                                // RFC 1662 section 4.2: "If it is flagged in the receiving
                                // ACCM, it is simply removed". Once LCP has opened, only our
                                // acked receive ACCM is flagged: the peer (or a PAC on its
                                // behalf, after Set-Link-Info) now sends the others raw.
                                dec.set_accm(session.engine().link().rx_accm);
                                accm_applied = true;
                            }
                            let Some(ip) = ip else {
                                continue;
                            };
                            if let Some(b) = bulk.as_mut() {
                                if b.marker.handle_packet(now, &ip).is_some() {
                                    let octets = b.stream.sent_octets();
                                    out.bulk = Some((octets, now.saturating_duration_since(b.start)));
                                    continue;
                                }
                            }
                            if let Some(pg) = pinger.as_mut() {
                                if pg.handle_packet(now, &ip).is_some() {
                                    out.pings.1 += 1;
                                    out.rtt_median = pg.stats().median();
                                    continue;
                                }
                            }
                            if let Some(t) = tun.as_ref() {
                                if let Err(e) = t.send(&ip).await {
                                    tracing::debug!(error = %e, "TUN write failed");
                                }
                                continue;
                            }
                            if st.responder {
                                if let Ok(Verdict::Reply(r)) = responder.handle_packet(&ip) {
                                    if session.send_ip(&r).is_ok() {
                                        out.answered += 1;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        out.error.get_or_insert(format!("line read: {e}"));
                        out.failure.get_or_insert(LinkFailure::LineClosed);
                        session.lower_down(now);
                        return out;
                    }
                }
            }
            n = recv_opt(tun.as_ref(), &mut tbuf) => {
                match n {
                    Ok(n) => {
                        // Only IPv4 has a network layer here (IPCP; no IPV6CP): the
                        // kernel's IPv6 neighbour discovery on the TUN stays local.
                        if let Some(pkt) = tbuf.get(..n).filter(|p| p.first().is_some_and(|v| v >> 4 == 4)) {
                            if let Err(e) = session.send_ip(pkt) {
                                tracing::debug!(error = ?e, "TUN packet not sent");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "TUN read failed");
                        out.error.get_or_insert(format!("TUN read: {e}"));
                        out.failure.get_or_insert(LinkFailure::Tun);
                        tun = None;
                        session.close(Instant::now(), "TUN failed");
                        closing_since.get_or_insert(Instant::now());
                    }
                }
            }
            _ = sleep => session.handle_timeout(Instant::now()),
        }
    }
}

/// Why the link failed when the line closed after authentication but before the network
/// layer was up.
fn eof_after_auth(ccp_open: bool, policy: &Policy) -> String {
    let ours = if policy.ccp.mppe == crate::ppp::ccp::MppeMode::Disabled {
        "we refuse MPPE"
    } else {
        "check the MPPE key length and stateless settings on both ends"
    };
    if ccp_open {
        "peer closed the line after CCP, before IPCP came up (address refused?)".to_string()
    } else {
        format!(
            "peer closed the line after authentication, before CCP came up: \
             it probably requires encryption or compression we do not accept ({ours})"
        )
    }
}

/// Runs `pptp-nas ppp` and returns the process exit code.
pub fn main(cli: PppArgs) -> i32 {
    let args = match std::env::var_os(CONFIG_ENV) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => match merge_config_file(cli, &text) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("pptp-nas ppp: {}: {e}", PathBuf::from(path).display());
                    return EXIT_USAGE;
                }
            },
            Err(e) => {
                eprintln!("pptp-nas ppp: {}: {e}", PathBuf::from(path).display());
                return EXIT_USAGE;
            }
        },
        None => cli,
    };
    init_logging(&args);
    let st = match settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pptp-nas ppp: {e}");
            return EXIT_USAGE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pptp-nas ppp: runtime: {e}");
            return EXIT_IO;
        }
    };
    let outcome = rt.block_on(async {
        let (r, w) = open_line(&args)?;
        Ok::<_, std::io::Error>(run_link(&st, r, w, seed()).await)
    });
    let (line, code) = match outcome {
        Ok(o) => {
            let code = if o.error.is_none() {
                EXIT_OK
            } else if o.failure == Some(LinkFailure::Tun) {
                EXIT_IO
            } else {
                EXIT_FAILED
            };
            (o.line(), code)
        }
        Err(e) => (format!("pptp-nas ppp: FAILED (line: {e})"), EXIT_IO),
    };
    eprintln!("{line}");
    if args.log_file.is_some() {
        tracing::info!("{line}");
    }
    if let Some(p) = &args.result_file {
        let _ = std::fs::write(p, format!("{line}\n"));
    }
    // The stdin reader thread may be blocked in read(2): leave without waiting for it.
    rt.shutdown_background();
    code
}

/// Logs to `--log-file` (or stderr); call before any other subscriber is installed.
pub fn init_logging(a: &PppArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if let Some(p) = &a.log_file {
        if let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Rewrites argv so that a binary invoked as `pptp-nas-ppp` (a symlink, for pptpd's `ppp`
/// option, which cannot pass a subcommand) runs `pptp-nas ppp ARGS`.
pub fn rewrite_argv(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let is_ppp = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "pptp-nas-ppp");
    if is_ppp {
        argv.insert(1.min(argv.len()), "ppp".into());
    }
    argv
}

#[cfg(test)]
mod test {
    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: PppArgs,
    }

    fn parse(args: &[&str]) -> PppArgs {
        T::try_parse_from(std::iter::once("ppp").chain(args.iter().copied()))
            .unwrap()
            .a
    }

    #[test]
    fn pppd_positional_args_are_ignored_but_addresses_used() {
        let a = parse(&[
            "--user",
            "alice:secret",
            "local",
            "file",
            "/etc/ppp/opts",
            "115200",
            "192.168.77.1:192.168.77.12",
            "ipparam",
            "127.0.0.2",
            "remotenumber",
            "127.0.0.2",
        ]);
        assert_eq!(a.pppd_args.len(), 9);
        let st = settings(&a).unwrap();
        assert_eq!(st.policy.role, Role::Server);
        assert_eq!(st.policy.ipcp.local, Some(Ipv4Addr::new(192, 168, 77, 1)));
        assert_eq!(
            st.policy.ipcp.assign_peer,
            Some(Ipv4Addr::new(192, 168, 77, 12))
        );
        assert_eq!(st.policy.ccp.mppe, MppeMode::Required);
        assert!(st.policy.ccp.allow_128 && !st.policy.ccp.allow_40);
        assert!(st.policy.ccp.mppc);
    }

    #[test]
    fn config_file_fills_in_and_cli_wins() {
        let cli = parse(&["--mppe", "40", "--user", "bob:pw"]);
        let text = "# settings\nrole client\nmppe 128\n--stateless\nuser carol:x\nmppc off\n";
        let a = merge_config_file(cli, text).unwrap();
        assert_eq!(a.role.as_deref(), Some("client"));
        assert_eq!(a.mppe.as_deref(), Some("40"));
        assert_eq!(a.mppc.as_deref(), Some("off"));
        assert!(a.stateless);
        assert_eq!(a.users, vec!["carol:x".to_string(), "bob:pw".to_string()]);
        let st = settings(&a).unwrap();
        assert_eq!(st.policy.role, Role::Client);
        assert!(st.policy.ccp.allow_40 && !st.policy.ccp.allow_128);
        assert!(merge_config_file(PppArgs::default(), "bogus-flag 1\n").is_err());
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(settings(&parse(&["--role", "x", "--user", "a:b"])).is_err());
        assert!(settings(&parse(&["--mppe", "64", "--user", "a:b"])).is_err());
        assert!(settings(&parse(&["--user", "nocolon"])).is_err());
        assert!(settings(&parse(&[])).is_err(), "server without users");
        assert!(settings(&parse(&["--role", "client"])).is_err());
    }

    #[test]
    fn argv_rewrite_for_symlink() {
        let v = rewrite_argv(vec!["/x/pptp-nas-ppp".into(), "local".into()]);
        assert_eq!(v, vec!["/x/pptp-nas-ppp", "ppp", "local"]);
        let v = rewrite_argv(vec!["/x/pptp-nas".into(), "lab".into()]);
        assert_eq!(v, vec!["/x/pptp-nas", "lab"]);
    }

    async fn pair_run(client: &[&str], server: &[&str]) -> (Outcome, Outcome) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let cs = settings(&parse(client)).unwrap();
        let ss = settings(&parse(server)).unwrap();
        let (ar, aw) = a.into_split();
        let (br, bw) = b.into_split();
        let c = run_link(&cs, Box::new(ar), Box::new(aw), [1; 32]);
        let s = run_link(&ss, Box::new(br), Box::new(bw), [2; 32]);
        tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(c, s) })
            .await
            .unwrap()
    }

    /// Our client <-> our server over a socketpair: MS-CHAPv2 + MPPE-128 + MPPC, pings.
    #[tokio::test]
    async fn client_server_over_socketpair() {
        let (c, s) = pair_run(
            &["--role", "client", "--user", "alice:secret", "--ping", "5"],
            &["--role", "server", "--user", "alice:secret"],
        )
        .await;
        assert_eq!(c.error, None, "{}", c.line());
        assert_eq!(c.pings, (5, 5));
        assert_eq!(c.mppe_bits, 128);
        assert!(c.mppc);
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.answered, 5);
        assert_eq!(s.error, None, "{}", s.line());
    }

    #[tokio::test]
    async fn stateless_40_bit() {
        let (c, s) = pair_run(
            &[
                "--role",
                "client",
                "--user",
                "a:b",
                "--ping",
                "3",
                "--mppe",
                "40",
                "--stateless",
            ],
            &["--user", "a:b", "--mppe", "40", "--stateless"],
        )
        .await;
        assert_eq!(c.error, None, "{} / {}", c.line(), s.line());
        assert_eq!((c.mppe_bits, c.stateless, c.pings.1), (40, true, 3));
    }

    #[tokio::test]
    async fn wrong_password_is_a_clear_failure() {
        let (c, s) = pair_run(
            &["--role", "client", "--user", "alice:wrong", "--ping", "1"],
            &["--user", "alice:secret"],
        )
        .await;
        let ce = c.error.clone().unwrap_or_default();
        let se = s.error.clone().unwrap_or_default();
        assert!(
            ce.contains("authentication failed"),
            "{} / {}",
            c.line(),
            s.line()
        );
        // The server's MS-CHAPv2 Failure reaches the client ahead of its Terminate-Request,
        // so the client reports the authenticator's own words, not a guess.
        assert!(ce.contains("E=691 R=0"), "{ce}");
        assert!(se.contains("authentication failed"), "{se}");
    }

    #[test]
    fn eof_after_auth_names_the_likely_policy_mismatch() {
        let refuse = settings(&parse(&[
            "--role", "client", "--user", "a:b", "--mppe", "none",
        ]))
        .unwrap();
        let e = eof_after_auth(false, &refuse.policy);
        assert!(
            e.contains("before CCP came up") && e.contains("we refuse MPPE"),
            "{e}"
        );
        let want = settings(&parse(&["--role", "client", "--user", "a:b"])).unwrap();
        let e = eof_after_auth(false, &want.policy);
        assert!(e.contains("MPPE key length"), "{e}");
        assert!(eof_after_auth(true, &want.policy).contains("before IPCP"));
    }

    /// A peer that honours ACCM 0 (as the PAC relay does) sends control characters raw once
    /// LCP is up, often in the same read as the Configure-Ack that opened LCP: the client must
    /// apply its negotiated receive ACCM from the next frame on (it used to keep deleting
    /// them, and MS-CHAPv2 never got past the Challenge).
    #[tokio::test]
    async fn raw_control_characters_after_accm_0_are_data() {
        use crate::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client_end, relay_c) = tokio::net::UnixStream::pair().unwrap();
        let (relay_s, server_end) = tokio::net::UnixStream::pair().unwrap();
        let cs = settings(&parse(&[
            "--role",
            "client",
            "--user",
            "alice:secret",
            "--ping",
            "3",
        ]))
        .unwrap();
        let ss = settings(&parse(&["--role", "server", "--user", "alice:secret"])).unwrap();
        let (cr, cw) = client_end.into_split();
        let (sr, sw) = server_end.into_split();
        let (mut rc_r, mut rc_w) = relay_c.into_split();
        let (mut rs_r, mut rs_w) = relay_s.into_split();
        // Client -> server: as is.
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut rc_r, &mut rs_w).await;
            let _ = rs_w.shutdown().await;
        });
        // Server -> client: re-framed, with the client's ACCM once the server acked it; all
        // frames of one read go out in one write.
        let down = tokio::spawn(async move {
            let mut dec = Decoder::new(DecoderConfig::default());
            let mut enc = Encoder::new(EncoderConfig::default());
            let mut buf = vec![0u8; 8192];
            let mut raw_ctl = 0usize;
            let mut switched = false;
            loop {
                let n = match rs_r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut input = &buf[..n];
                let mut out = Vec::new();
                while let Some(r) = dec.decode(&mut input) {
                    let Ok(f) = r else { continue };
                    let f = f.to_vec();
                    let start = out.len();
                    enc.encode(&f, &mut out).unwrap();
                    if switched {
                        raw_ctl += out[start..].iter().filter(|&&b| b < 0x20).count();
                    }
                    if let Some(accm) = crate::pac::relay::snoop_ack_accm(&f) {
                        enc.set_accm(accm);
                        switched = accm == 0;
                    }
                }
                if rc_w.write_all(&out).await.is_err() {
                    break;
                }
            }
            raw_ctl
        });
        let c = run_link(&cs, Box::new(cr), Box::new(cw), [1; 32]);
        let s = run_link(&ss, Box::new(sr), Box::new(sw), [2; 32]);
        let (c, s) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(c, s) })
            .await
            .unwrap();
        up.abort();
        let raw_ctl = tokio::time::timeout(Duration::from_secs(5), down)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.error, None, "{} / {}", c.line(), s.line());
        assert_eq!(c.pings, (3, 3));
        assert!(
            raw_ctl > 0,
            "the relay sent no raw control characters: test is void"
        );
    }
}
