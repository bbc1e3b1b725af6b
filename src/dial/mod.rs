//! `pptp-nas dial`: the dial-in client, what a Win95 Dial-Up Networking client does.
//!
//! Opens a serial device or pty (raw, 8N1), runs the [`script::Dialer`] (init commands,
//! `ATDT<number>`, wait for `CONNECT`), then runs the PPP engine in client role over the line
//! with [`crate::stdio_ppp::run_link`] (the same loop as `pptp-nas ppp`), with `--ping N` and
//! `--throughput SECONDS` as built-in traffic. Then hangs up: LCP Terminate (inside `run_link`),
//! then DTR drop, or on lines without DTR (ptys) guard time, `+++`, guard time, `ATH0`.
//!
//! Carrier loss during the call is seen as the modem's `NO CARRIER` text in the data stream or
//! EOF/EIO on the device (DCD is not polled).
//!
//! Settings come from flags and from `--config FILE` (YAML, see `configs/dial.yaml`); flags win.
//! The report goes to stdout (text, or one JSON object with `--json`); a failure is also one line
//! on stderr, and the exit code says what kind (see [`exit_code_table`]).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod config;
pub mod script;

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use crate::config::policy::{apply_ccp, parse_auth_list, parse_mppc, parse_mppe, parse_user};
use crate::io::line::{open_serial, ModemIo};
use crate::modem::control::Action;
use crate::modem::result::ConnectInfo;
use crate::ppp::ccp::{MppeMode, Stateless};
use crate::ppp::lcp::AuthMethod;
use crate::stdio_ppp::{run_link, LinkFailure, Outcome, PppArgs, Settings};
use script::{DialConfig, DialEvent, DialFailure, Dialer, NoCarrierScanner};

/// Exit code: connected, negotiated, every ping answered, hung up.
pub const EXIT_OK: i32 = 0;
/// Exit code: any other failure (internal error).
pub const EXIT_OTHER: i32 = 1;
/// Exit code: bad flags or configuration file.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the device could not be opened or failed (read/write error).
pub const EXIT_DEVICE: i32 = 3;
/// Exit code: the call was not made: NO CARRIER, BUSY, NO ANSWER, NO DIALTONE, ERROR.
pub const EXIT_NO_CARRIER: i32 = 4;
/// Exit code: authentication failed (wrong password, or no common method).
pub const EXIT_AUTH: i32 = 5;
/// Exit code: negotiation failed (LCP, CCP/MPPE policy, IPCP).
pub const EXIT_NEGOTIATION: i32 = 6;
/// Exit code: a timeout (modem silent, no dial result, PPP peer silent, link not up in time).
pub const EXIT_TIMEOUT: i32 = 7;
/// Exit code: the link came up but pings (or the throughput run's trailing ping) were lost.
pub const EXIT_PINGS_LOST: i32 = 8;
/// Exit code: the carrier was lost (or the line closed) before we were done.
pub const EXIT_CARRIER_LOST: i32 = 9;

/// The exit codes, one line each (for `--help` and docs/CONFIG.md).
pub fn exit_code_table() -> &'static str {
    "0 ok; 1 other error; 2 bad usage or config; 3 device error; 4 no carrier/busy/no answer/\
     no dialtone; 5 authentication failed; 6 negotiation failed (e.g. MPPE refused); 7 timeout; \
     8 pings lost; 9 carrier lost during the call"
}

/// Flags of `pptp-nas dial` (all optional so that `--config` can fill them in; flags win).
#[derive(Debug, Clone, Default, Args)]
#[command(
    after_help = "Exit codes: 0 ok; 1 other error; 2 bad usage or config; 3 device \
error; 4 no carrier/busy/no answer/no dialtone; 5 authentication failed; 6 negotiation failed \
(e.g. MPPE required and refused); 7 timeout; 8 pings lost; 9 carrier lost during the call."
)]
pub struct DialArgs {
    /// YAML settings file (configs/dial.yaml); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serial device or pty of the modem, e.g. /dev/ttyS0 or /tmp/lab/client0.
    #[arg(long)]
    pub device: Option<PathBuf>,
    /// Serial speed in bit/s (default 115200; ptys ignore it).
    #[arg(long)]
    pub baud: Option<u32>,
    /// RTS/CTS hardware flow control (real modems; ptys ignore it).
    #[arg(long)]
    pub rtscts: bool,
    /// The number to dial.
    #[arg(long)]
    pub number: Option<String>,
    /// Init command (repeatable; replaces the default `ATZ`, `AT&FE0V1Q0X4&C1&D2`; the first is
    /// the reset). Each must answer OK.
    #[arg(long = "init")]
    pub init: Vec<String>,
    /// Dial command with {number} in it (default `ATDT{number}`).
    #[arg(long)]
    pub dial_command: Option<String>,
    /// Seconds to wait for the dial result (default 60).
    #[arg(long)]
    pub dial_timeout: Option<f64>,
    /// Our credentials, NAME:PASSWORD.
    #[arg(long)]
    pub user: Option<String>,
    /// Authentication methods we accept, comma-separated: pap, chap, mschap, mschapv2
    /// (default: all four; the server picks).
    #[arg(long)]
    pub auth: Option<String>,
    /// MPPE: none, 40, 56 or 128 (required at exactly that key length). Default: accept what
    /// the server asks (any key length, stateless if asked).
    #[arg(long)]
    pub mppe: Option<String>,
    /// Allow stateless MPPE (key change every packet) when the server asks for it.
    #[arg(long)]
    pub stateless: bool,
    /// MPPC compression: on or off (default on).
    #[arg(long)]
    pub mppc: Option<String>,
    /// Send this many pings to the server once the link is up.
    #[arg(long)]
    pub ping: Option<u32>,
    /// Then run a bulk UDP stream to the server's discard port for this many seconds and
    /// report kbit/s and the MPPC compression ratio.
    #[arg(long)]
    pub throughput: Option<f64>,
    /// Seconds from CONNECT until the link must be up (default 30).
    #[arg(long)]
    pub connect_timeout: Option<f64>,
    /// Bring up a TUN interface with this name once IPCP is up (root or CAP_NET_ADMIN) and
    /// route the link's IP through the kernel, instead of the built-in traffic; the call then
    /// lasts until the server hangs up or the process gets SIGINT/SIGTERM. Exclusive with
    /// --ping and --throughput.
    #[arg(long, value_name = "NAME")]
    pub tun: Option<String>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Validated settings of one dial run.
#[derive(Debug, Clone)]
pub struct DialOptions {
    /// The device.
    pub device: PathBuf,
    /// Serial speed.
    pub baud: u32,
    /// Hardware flow control.
    pub rtscts: bool,
    /// The dial script.
    pub script: DialConfig,
    /// The PPP link (client role).
    pub link: Settings,
    /// Print JSON.
    pub json: bool,
}

fn positive_secs(name: &str, v: Option<f64>, default: f64) -> Result<Duration, String> {
    let s = v.unwrap_or(default);
    if (0.0..86_400.0).contains(&s) {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!(
            "--{name} {s}: expected seconds between 0 and 86400"
        ))
    }
}

/// Merges `--config` under the flags and validates everything.
pub fn options(cli: &DialArgs) -> Result<DialOptions, String> {
    let a = match &cli.config {
        Some(path) => config::merge(cli.clone(), path).map_err(|e| e.to_string())?,
        None => cli.clone(),
    };
    let device = a
        .device
        .clone()
        .ok_or("--device is required (or `device:` in the config file)")?;
    let number = a
        .number
        .clone()
        .ok_or("--number is required (or `number:` in the config file)")?;
    if !number.chars().any(|c| c.is_ascii_digit()) {
        return Err(format!("--number {number:?}: no digit to dial"));
    }
    let user = a.user.clone().ok_or(
        "--user NAME:PASSWORD is required (or `user:` and `password:` in the config file)",
    )?;
    parse_user(&user)?;
    let accept: Vec<AuthMethod> = match &a.auth {
        None => vec![
            AuthMethod::MsChapV2,
            AuthMethod::MsChapV1,
            AuthMethod::ChapMd5,
            AuthMethod::Pap,
        ],
        Some(list) => parse_auth_list(list)?,
    };
    if accept.is_empty() {
        return Err("--auth: no method".into());
    }
    let mppe = a.mppe.as_deref().map(parse_mppe).transpose()?;
    let mppc = parse_mppc(a.mppc.as_deref().unwrap_or("on"))?;
    let dial_timeout = positive_secs("dial-timeout", a.dial_timeout, 60.0)?;
    let throughput = positive_secs("throughput", a.throughput, 0.0)?;
    let connect_timeout = positive_secs("connect-timeout", a.connect_timeout, 30.0)?;
    if connect_timeout.is_zero() || dial_timeout.is_zero() {
        return Err("timeouts must be positive".into());
    }
    if a.baud == Some(0) {
        return Err("--baud must be positive".into());
    }
    let dial = a
        .dial_command
        .clone()
        .unwrap_or_else(|| "ATDT{number}".into());
    if !dial.contains("{number}") {
        return Err(format!("--dial-command {dial:?}: must contain {{number}}"));
    }
    if a.init.iter().any(|c| c.contains(['\r', '\n'])) {
        return Err("--init: a command must not contain CR or LF".into());
    }
    // The PPP side: exactly `pptp-nas ppp --role client` settings, then the dial defaults.
    let ppp = PppArgs {
        role: Some("client".into()),
        users: vec![user],
        mppc: Some(if mppc { "on" } else { "off" }.into()),
        ping: a.ping,
        tun: a.tun.clone(),
        connect_timeout: Some(connect_timeout.as_secs_f64()),
        ..PppArgs::default()
    };
    if a.tun.is_some() && !throughput.is_zero() {
        return Err(
            "--tun cannot be combined with --throughput: the link's IP goes either to \
                    the TUN or to the built-in traffic"
                .into(),
        );
    }
    let mut link = crate::stdio_ppp::settings(&ppp)?;
    link.policy.lcp.accept_auth = accept;
    link.policy.ipcp.request_dns = true;
    link.throughput = throughput;
    link.responder = false;
    match mppe {
        Some(bits) => apply_ccp(&mut link.policy.ccp, bits, a.stateless, mppc, false),
        None => {
            // Accept what the server asks, within the flags given.
            let c = &mut link.policy.ccp;
            c.mppe = MppeMode::Preferred;
            c.allow_40 = true;
            c.allow_56 = true;
            c.allow_128 = true;
            c.stateless = Stateless::Allowed;
            c.mppc = mppc;
        }
    }
    Ok(DialOptions {
        device,
        baud: a.baud.unwrap_or(115_200),
        rtscts: a.rtscts,
        script: DialConfig {
            init: if a.init.is_empty() {
                script::default_init()
            } else {
                a.init.clone()
            },
            dial,
            number,
            dial_timeout,
            ..DialConfig::default()
        },
        link,
        json: a.json,
    })
}

/// What one dial run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// What CONNECT said.
    pub connect: Option<ConnectInfo>,
    /// The PPP link (when the call came up).
    pub link: Option<Outcome>,
    /// The exit code.
    pub code: i32,
    /// The failure, one line.
    pub error: Option<String>,
    /// How the call ended.
    pub hangup: Option<String>,
}

fn auth_name(a: AuthMethod) -> &'static str {
    match a {
        AuthMethod::Pap => "pap",
        AuthMethod::ChapMd5 => "chap",
        AuthMethod::MsChapV1 => "mschap",
        AuthMethod::MsChapV2 => "mschapv2",
    }
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

fn json_opt<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map_or_else(|| "null".to_string(), f)
}

fn json_f64(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".into()
    }
}

impl Report {
    /// Throughput of the bulk run, kbit/s.
    pub fn throughput_kbps(&self) -> Option<f64> {
        let (octets, t) = self.link.as_ref()?.bulk?;
        Some(crate::responder::kbps(octets, t))
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        let l = self.link.clone().unwrap_or_default();
        let ip = |i: Option<Ipv4Addr>| json_opt(i, |a| json_str(&a.to_string()));
        let dns: Vec<String> = l
            .dns
            .iter()
            .flatten()
            .map(|d| json_str(&d.to_string()))
            .collect();
        format!(
            "{{\"ok\": {}, \"exit_code\": {}, \"error\": {}, \"connect_speed\": {}, \
             \"auth\": {}, \"mppe_bits\": {}, \"stateless\": {}, \"mppc\": {}, \
             \"local_ip\": {}, \"peer_ip\": {}, \"dns\": [{}], \"pings_sent\": {}, \
             \"pings_received\": {}, \"rtt_ms_median\": {}, \"throughput_kbps\": {}, \
             \"compression_ratio\": {}, \"hangup\": {}}}",
            self.code == EXIT_OK,
            self.code,
            json_opt(self.error.as_deref(), json_str),
            json_opt(self.connect.as_ref().and_then(|c| c.speed), |s| s
                .to_string()),
            json_opt(l.auth, |a| json_str(auth_name(a))),
            l.mppe_bits,
            l.stateless,
            l.mppc,
            ip(l.addrs.map(|a| a.0)),
            ip(l.addrs.map(|a| a.1)),
            dns.join(", "),
            l.pings.0,
            l.pings.1,
            json_opt(l.rtt_median, |d| json_f64(d.as_secs_f64() * 1000.0)),
            json_opt(self.throughput_kbps(), json_f64),
            json_f64(l.stats.compression_ratio()),
            json_opt(self.hangup.as_deref(), json_str),
        )
    }

    /// The report as text, one fact a line.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        if let Some(c) = &self.connect {
            let _ = writeln!(
                o,
                "connect:     {} bit/s",
                c.speed.map_or("?".into(), |s| s.to_string())
            );
        }
        if let Some(l) = &self.link {
            let (local, peer) = l.addrs.map_or(("-".into(), "-".into()), |(a, b)| {
                (a.to_string(), b.to_string())
            });
            let dns: Vec<String> = l.dns.iter().flatten().map(|d| d.to_string()).collect();
            let _ = writeln!(o, "auth:        {}", l.auth.map_or("none", auth_name));
            let _ = writeln!(
                o,
                "mppe:        {}{}",
                if l.mppe_bits == 0 {
                    "none".to_string()
                } else {
                    format!("{}-bit", l.mppe_bits)
                },
                if l.stateless { ", stateless" } else { "" }
            );
            let _ = writeln!(o, "mppc:        {}", if l.mppc { "on" } else { "off" });
            let _ = writeln!(o, "local ip:    {local}");
            let _ = writeln!(o, "peer ip:     {peer}");
            let _ = writeln!(
                o,
                "dns:         {}",
                if dns.is_empty() {
                    "-".into()
                } else {
                    dns.join(" ")
                }
            );
            if l.pings.0 > 0 {
                let _ = writeln!(
                    o,
                    "pings:       {}/{} answered, median rtt {}",
                    l.pings.1,
                    l.pings.0,
                    l.rtt_median.map_or("-".into(), |d| format!(
                        "{:.1} ms",
                        d.as_secs_f64() * 1000.0
                    ))
                );
            }
            if let Some(k) = self.throughput_kbps() {
                let _ = writeln!(
                    o,
                    "throughput:  {k:.1} kbit/s, compression ratio {:.2}",
                    l.stats.compression_ratio()
                );
            }
        }
        if let Some(h) = &self.hangup {
            let _ = writeln!(o, "hangup:      {h}");
        }
        match &self.error {
            None => o.push_str("result:      ok\n"),
            Some(e) => {
                let _ = writeln!(o, "result:      FAILED (exit {}): {e}", self.code);
            }
        }
        o
    }
}

/// Wraps the line in data mode: delivers the octets that came with CONNECT first, and ends the
/// stream (EOF) at the modem's `NO CARRIER` or EIO (a pty whose other side went away).
struct CarrierWatch<R> {
    inner: R,
    first: Vec<u8>,
    scanner: NoCarrierScanner,
    lost: bool,
}

impl<R: AsyncRead + Unpin> AsyncRead for CarrierWatch<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if me.lost {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        if !me.first.is_empty() {
            let n = me.first.len().min(buf.remaining());
            let rest = me.first.split_off(n);
            buf.put_slice(&me.first);
            me.first = rest;
        } else {
            match Pin::new(&mut me.inner).poll_read(cx, buf) {
                Poll::Ready(Err(e)) if e.raw_os_error() == Some(5) => {
                    me.lost = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if buf.filled().len() == before {
                me.lost = true;
                return Poll::Ready(Ok(()));
            }
        }
        let new = buf.filled().get(before..).unwrap_or_default();
        if let Some(keep) = me.scanner.scan(new) {
            tracing::info!("NO CARRIER from the modem: the call dropped");
            buf.set_filled(before + keep);
            me.lost = true;
        }
        Poll::Ready(Ok(()))
    }
}

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut s);
    }
    s
}

/// Drives the script until it has an event (or `limit` passes: `None`).
async fn drive<S: ModemIo>(
    d: &mut Dialer,
    io: &mut S,
    limit: Duration,
) -> std::io::Result<Option<(DialEvent, Vec<u8>)>> {
    let give_up = tokio::time::Instant::now() + limit;
    let mut buf = vec![0u8; 2048];
    let mut data = Vec::new();
    loop {
        while let Some(a) = d.poll_transmit() {
            match a {
                Action::Write(bytes) => {
                    tracing::debug!(cmd = %String::from_utf8_lossy(&bytes).trim_end(), "modem <-");
                    io.write_all(&bytes).await?;
                    io.flush().await?;
                }
                Action::SetDtr(on) => {
                    if let Err(e) = io.set_dtr(on) {
                        tracing::debug!(error = %e, "line has no DTR: hang-up by escape");
                        d.dtr_unsupported(Instant::now());
                    }
                }
            }
        }
        if let Some(ev) = d.poll_event() {
            return Ok(Some((ev, std::mem::take(&mut data))));
        }
        let deadline = d
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(give_up)
            .min(give_up);
        tokio::select! {
            r = io.read(&mut buf) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) if e.raw_os_error() == Some(5) => 0,
                    Err(e) => return Err(e),
                };
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the device closed (EOF)",
                    ));
                }
                let chunk = buf.get(..n).unwrap_or_default();
                tracing::trace!(line = %String::from_utf8_lossy(chunk).trim(), "modem ->");
                if let Some(rest) = d.handle_input(Instant::now(), chunk) {
                    data = rest;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if tokio::time::Instant::now() >= give_up {
                    return Ok(None);
                }
                d.handle_timeout(Instant::now());
            }
        }
    }
}

/// Runs one call: dial, PPP, traffic, hang-up.
pub async fn run(o: &DialOptions) -> Report {
    let mut rep = Report::default();
    let mut io = match open_serial(&o.device, o.baud, o.rtscts) {
        Ok(s) => s,
        Err(e) => {
            rep.code = EXIT_DEVICE;
            rep.error = Some(format!("cannot open {}: {e}", o.device.display()));
            return rep;
        }
    };
    let mut d = Dialer::new(o.script.clone());
    d.start(Instant::now());
    tracing::info!(device = %o.device.display(), number = %o.script.number, "dialling");
    // Init + dial: bounded by the script's own timers; the limit is a backstop.
    let limit = o.script.dial_timeout + o.script.command_timeout * 8 + Duration::from_secs(5);
    let first = match drive(&mut d, &mut io, limit).await {
        Ok(Some((DialEvent::Connected(info), first))) => {
            tracing::info!(speed = ?info.speed, "CONNECT");
            rep.connect = Some(info);
            first
        }
        Ok(Some((DialEvent::Failed(f), _))) => {
            rep.code = if f.is_timeout() {
                EXIT_TIMEOUT
            } else if f == DialFailure::BadNumber {
                EXIT_USAGE
            } else {
                EXIT_NO_CARRIER
            };
            rep.error = Some(format!("call failed: {f}"));
            return rep;
        }
        Ok(Some((ev, _))) => {
            rep.code = EXIT_OTHER;
            rep.error = Some(format!("unexpected modem event {ev:?}"));
            return rep;
        }
        Ok(None) => {
            rep.code = EXIT_TIMEOUT;
            rep.error = Some("call failed: the modem did not finish the dial in time".into());
            return rep;
        }
        Err(e) => {
            rep.code = EXIT_DEVICE;
            rep.error = Some(format!("{}: {e}", o.device.display()));
            return rep;
        }
    };
    // Data mode: the PPP client.
    let (outcome, carrier_lost) = {
        let (r, w) = tokio::io::split(&mut io);
        let mut watch = CarrierWatch {
            inner: r,
            first,
            scanner: NoCarrierScanner::default(),
            lost: false,
        };
        let out = run_link(&o.link, Box::new(&mut watch), Box::new(w), seed()).await;
        (out, watch.lost)
    };
    tracing::info!(result = %outcome.line(), "PPP link ended");
    // Hang up.
    let now = Instant::now();
    if carrier_lost {
        d.carrier_lost(now);
    } else {
        d.hangup(now);
    }
    let hangup = match drive(&mut d, &mut io, Duration::from_secs(10)).await {
        Ok(Some((DialEvent::HungUp { carrier_lost: true }, _))) if carrier_lost => {
            "carrier lost during the call".to_string()
        }
        Ok(Some((DialEvent::HungUp { carrier_lost: true }, _))) => {
            "the far end hung up first".to_string()
        }
        Ok(Some((DialEvent::HungUp { .. }, _))) => "hung up".to_string(),
        Ok(other) => format!("hang-up incomplete ({other:?})"),
        Err(e) => format!("hang-up: {e}"),
    };
    rep.hangup = Some(hangup);
    let (code, error) = match (&outcome.error, outcome.failure) {
        (None, _) => (EXIT_OK, None),
        (Some(e), f) => {
            let code = match f {
                Some(LinkFailure::Auth) => EXIT_AUTH,
                Some(LinkFailure::Negotiation) => EXIT_NEGOTIATION,
                Some(LinkFailure::Timeout) => EXIT_TIMEOUT,
                Some(LinkFailure::PingsLost) => EXIT_PINGS_LOST,
                _ if carrier_lost => EXIT_CARRIER_LOST,
                Some(LinkFailure::LineClosed) => EXIT_CARRIER_LOST,
                _ => EXIT_OTHER,
            };
            let e = if carrier_lost && code == EXIT_CARRIER_LOST {
                format!("carrier lost during the call ({e})")
            } else {
                e.clone()
            };
            (code, Some(e))
        }
    };
    rep.code = code;
    rep.error = error;
    rep.link = Some(outcome);
    rep
}

/// Runs `pptp-nas dial` and returns the process exit code.
pub fn main(args: &DialArgs) -> i32 {
    let o = match options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pptp-nas dial: {e}");
            return EXIT_USAGE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pptp-nas dial: runtime: {e}");
            return EXIT_OTHER;
        }
    };
    let rep = rt.block_on(run(&o));
    if o.json {
        println!("{}", rep.to_json());
    } else {
        print!("{}", rep.to_text());
    }
    if let Some(e) = &rep.error {
        eprintln!("pptp-nas dial: error: {e}");
    }
    rep.code
}

#[cfg(test)]
mod test {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: DialArgs,
    }

    fn parse(args: &[&str]) -> DialArgs {
        T::try_parse_from(std::iter::once("dial").chain(args.iter().copied()))
            .unwrap()
            .a
    }

    const BASE: [&str; 6] = [
        "--device",
        "/dev/null",
        "--number",
        "5551234",
        "--user",
        "alice:secret",
    ];

    fn with(extra: &[&str]) -> Result<DialOptions, String> {
        let mut v: Vec<&str> = BASE.to_vec();
        v.extend_from_slice(extra);
        options(&parse(&v))
    }

    #[test]
    fn tun_is_passed_to_the_link_and_excludes_built_in_traffic() {
        let o = with(&["--tun", "dial0"]).unwrap();
        assert_eq!(o.link.tun.as_deref(), Some("dial0"));
        assert!(!o.link.responder);
        let e = with(&["--tun", "dial0", "--ping", "3"]).unwrap_err();
        assert!(e.contains("--tun cannot be combined"), "{e}");
        let e = with(&["--tun", "dial0", "--throughput", "2"]).unwrap_err();
        assert!(
            e.contains("--tun cannot be combined with --throughput"),
            "{e}"
        );
        let e = with(&["--tun", "bad name/"]).unwrap_err();
        assert!(e.contains("--tun"), "{e}");
    }

    #[test]
    fn defaults_accept_what_the_server_asks() {
        let o = with(&[]).unwrap();
        let c = o.link.policy.ccp;
        assert_eq!(c.mppe, MppeMode::Preferred);
        assert!(c.allow_40 && c.allow_56 && c.allow_128 && c.mppc);
        assert_eq!(c.stateless, Stateless::Allowed);
        assert_eq!(o.link.policy.lcp.accept_auth.len(), 4);
        assert!(o.link.policy.ipcp.request_dns);
        assert_eq!(o.script.init, script::default_init());
        assert_eq!(o.script.dial, "ATDT{number}");
        assert_eq!(o.baud, 115_200);
    }

    #[test]
    fn policy_flags_mean_what_they_mean_elsewhere() {
        let o = with(&[
            "--mppe",
            "40",
            "--stateless",
            "--mppc",
            "off",
            "--auth",
            "mschapv2",
        ])
        .unwrap();
        let c = o.link.policy.ccp;
        assert_eq!(c.mppe, MppeMode::Required);
        assert!(c.allow_40 && !c.allow_56 && !c.allow_128 && !c.mppc);
        assert_eq!(c.stateless, Stateless::Allowed);
        assert_eq!(o.link.policy.lcp.accept_auth, [AuthMethod::MsChapV2]);
        let o = with(&["--mppe", "none", "--auth", "pap, chap"]).unwrap();
        assert_eq!(o.link.policy.ccp.mppe, MppeMode::Disabled);
        assert_eq!(
            o.link.policy.lcp.accept_auth,
            [AuthMethod::Pap, AuthMethod::ChapMd5]
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for (extra, want) in [
            (&["--mppe", "64"][..], "--mppe 64"),
            (&["--auth", "eap"], "--auth eap"),
            (&["--mppc", "yes"], "--mppc yes"),
            (&["--throughput=-1"], "--throughput"),
            (&["--dial-command", "ATD"], "{number}"),
            (&["--init", "AT\rZ"], "CR or LF"),
        ] {
            let e = with(extra).unwrap_err();
            assert!(e.contains(want), "{extra:?}: {e}");
        }
        assert!(options(&parse(&["--number", "1", "--user", "a:b"]))
            .unwrap_err()
            .contains("--device"));
        assert!(options(&parse(&["--device", "/x", "--user", "a:b"]))
            .unwrap_err()
            .contains("--number"));
        assert!(options(&parse(&["--device", "/x", "--number", "1"]))
            .unwrap_err()
            .contains("--user"));
        assert!(options(&parse(&[
            "--device", "/x", "--number", "x", "--user", "a:b"
        ]))
        .unwrap_err()
        .contains("no digit"));
    }

    #[test]
    fn json_report_has_every_field() {
        let rep = Report {
            connect: Some(ConnectInfo {
                speed: Some(33_600),
                ..Default::default()
            }),
            link: Some(Outcome {
                auth: Some(AuthMethod::MsChapV2),
                mppe_bits: 128,
                mppc: true,
                addrs: Some((
                    Ipv4Addr::new(192, 168, 77, 10),
                    Ipv4Addr::new(192, 168, 77, 1),
                )),
                dns: [Some(Ipv4Addr::new(192, 168, 77, 1)), None],
                pings: (5, 5),
                rtt_median: Some(Duration::from_millis(120)),
                bulk: Some((10_000, Duration::from_secs(2))),
                ..Default::default()
            }),
            code: EXIT_OK,
            error: None,
            hangup: Some("hung up".into()),
        };
        let j = rep.to_json();
        for want in [
            "\"ok\": true",
            "\"connect_speed\": 33600",
            "\"auth\": \"mschapv2\"",
            "\"mppe_bits\": 128",
            "\"stateless\": false",
            "\"mppc\": true",
            "\"local_ip\": \"192.168.77.10\"",
            "\"peer_ip\": \"192.168.77.1\"",
            "\"dns\": [\"192.168.77.1\"]",
            "\"pings_sent\": 5",
            "\"pings_received\": 5",
            "\"rtt_ms_median\": 120.000",
            "\"throughput_kbps\": 40.000",
            "\"compression_ratio\": 1.000",
            "\"error\": null",
        ] {
            assert!(j.contains(want), "{want} not in {j}");
        }
        let t = rep.to_text();
        assert!(t.contains("mppe:        128-bit"), "{t}");
        assert!(t.contains("result:      ok"), "{t}");
        let bad = Report {
            code: EXIT_NO_CARRIER,
            error: Some("call failed: no answer (NO ANSWER)".into()),
            ..Default::default()
        };
        assert!(bad.to_json().contains("\"ok\": false, \"exit_code\": 4"));
        assert!(bad.to_text().contains("FAILED (exit 4)"));
    }

    #[tokio::test]
    async fn carrier_watch_ends_at_no_carrier() {
        let data: &[u8] = b"\x7e\x01\x02\x7e\r\nNO CARRIER\r\nOK\r\n";
        let mut w = CarrierWatch {
            inner: data,
            first: b"\x7eAB".to_vec(),
            scanner: NoCarrierScanner::default(),
            lost: false,
        };
        let mut got = Vec::new();
        w.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"\x7eAB\x7e\x01\x02\x7e");
        assert!(w.lost);
    }
}
