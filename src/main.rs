//! The `pptp-nas` command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pptp_nas::io::softmodem::{self, SoftmodemOptions};
use pptp_nas::modem::at::Personality;
use pptp_nas::modem::sim::SimConfig;

/// PPTP Access Concentrator with a modem/ISDN front end.
#[derive(Debug, Parser)]
#[command(name = "pptp-nas", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each daemon or tool adds one variant.
#[derive(Debug, Subcommand)]
enum Command {
    /// Linked pty pairs that behave like two Hayes modems on a phone line (the lab's dial-up
    /// network): DIR/client0 is the dial-in side, DIR/nas0 the side the PAC drives.
    Softmodem(SoftmodemArgs),
    /// Validate a PAC configuration file (schema, references, profiles, devices) without
    /// opening any device. Exit 0 when valid; errors are printed one per line.
    CheckConfig(pptp_nas::pac::cli::CheckConfigArgs),
    /// The PAC daemon: modem/ISDN lines relayed into PPTP tunnels.
    Pac(pptp_nas::pac::cli::PacArgs),
    /// Ask a running PAC for its lines, calls and control connections.
    Status(pptp_nas::pac::cli::StatusArgs),
    /// The whole chain in one process with no configuration: soft-modem lines, PAC, PNS and
    /// dial-in clients (MS-CHAPv2, MPPE-128, MPPC by default). Exit 0 only when every client
    /// authenticated, negotiated what was asked and got every ping back.
    Lab(pptp_nas::lab::cli::LabArgs),
    /// The PPP engine over stdin/stdout or a tty (async HDLC): a pppd stand-in behind pptpd
    /// (`ppp` option; invoke through a `pptp-nas-ppp` symlink) or `pptp --nolaunchpppd`.
    Ppp(pptp_nas::stdio_ppp::PppArgs),
    /// The PPTP Network Server: accepts control connections (ICRQ from PACs, OCRQ from PPTP
    /// clients such as pptp-linux) on TCP and GRE on a raw socket (needs root or CAP_NET_RAW),
    /// runs a PPP server with MPPC/MPPE per call and, with --responder, answers pings.
    /// Stops cleanly on SIGTERM or SIGINT. Exit 0 after a clean stop, 2 on bad flags, 1 on
    /// errors.
    Pns(pptp_nas::pns::daemon::PnsArgs),
    /// The dial-in client: opens a modem (serial device or softmodem pty), dials, runs PPP
    /// (client role) and built-in traffic (--ping, --throughput), reports the negotiated link
    /// and hangs up. Exit codes: 0 ok, 1 other, 2 usage/config, 3 device, 4 no carrier/busy/
    /// no answer, 5 auth failed, 6 negotiation failed, 7 timeout, 8 pings lost, 9 carrier lost.
    Dial(pptp_nas::dial::DialArgs),
}

#[derive(Debug, Args)]
struct SoftmodemArgs {
    /// Directory for the clientN / nasN symlinks.
    #[arg(long)]
    dir: PathBuf,
    /// Number of lines (pairs).
    #[arg(long, default_value_t = 1)]
    lines: usize,
    /// Connect speed and payload rate limit, bit/s.
    #[arg(long, default_value_t = 33_600)]
    speed: u32,
    /// Bit-error rate, e.g. 1e-4.
    #[arg(long, default_value_t = 0.0)]
    ber: f64,
    /// Calling number shown (as caller ID) on the NAS end when the client dials.
    #[arg(long)]
    caller_id: Option<String>,
    /// One-way latency in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency: u64,
    /// Drop carrier this many seconds after CONNECT.
    #[arg(long)]
    drop_after: Option<f64>,
    /// Milliseconds between RINGs.
    #[arg(long, default_value_t = 6000)]
    ring_interval: u64,
    /// Play ISDN terminal adapters (64000 bit/s, isdn4linux dialect) instead of analog modems.
    #[arg(long)]
    isdn: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_from(pptp_nas::stdio_ppp::rewrite_argv(
        std::env::args_os().collect(),
    ));
    if let Command::Ppp(a) = cli.command {
        std::process::exit(pptp_nas::stdio_ppp::main(a));
    }
    if let Command::Pac(a) = &cli.command {
        pptp_nas::pac::cli::init_logging(a.log_format);
    }
    // The lab prints its own stages; its components log warnings only (RUST_LOG overrides).
    let default_filter = if matches!(cli.command, Command::Lab(_)) {
        "warn"
    } else {
        "info"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match cli.command {
        Command::Dial(a) => std::process::exit(pptp_nas::dial::main(&a)),
        Command::Lab(a) => std::process::exit(pptp_nas::lab::cli::main(&a)),
        Command::Ppp(_) => Ok(()),
        Command::Pns(a) => {
            let opts = match pptp_nas::pns::daemon::options(&a) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("pptp-nas pns: {e}");
                    std::process::exit(pptp_nas::pns::daemon::EXIT_USAGE);
                }
            };
            tokio::runtime::Runtime::new()?.block_on(async move {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    let mut term = tokio::signal::unix::signal(
                        tokio::signal::unix::SignalKind::terminate(),
                    )
                    .ok();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => None } } => {}
                    }
                    let _ = stop_tx.send(true);
                });
                pptp_nas::pns::daemon::run(opts, stop_rx).await
            })
        }
        Command::CheckConfig(a) => std::process::exit(pptp_nas::pac::cli::check_config(&a)),
        Command::Pac(a) => {
            tokio::runtime::Runtime::new()?.block_on(pptp_nas::pac::cli::run_daemon(a))
        }
        Command::Status(a) => std::process::exit(
            tokio::runtime::Runtime::new()?.block_on(pptp_nas::pac::cli::status(&a)),
        ),
        Command::Softmodem(a) => {
            if !(0.0..=1.0).contains(&a.ber) {
                anyhow::bail!("--ber must be between 0 and 1");
            }
            if a.speed == 0 {
                anyhow::bail!("--speed must be positive");
            }
            let opts = SoftmodemOptions {
                dir: a.dir,
                lines: a.lines,
                sim: SimConfig {
                    speed: if a.isdn && a.speed == 33_600 {
                        64_000
                    } else {
                        a.speed
                    },
                    ber: a.ber,
                    latency: Duration::from_millis(a.latency),
                    drop_after: a
                        .drop_after
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64),
                    caller_id: a.caller_id,
                    personality: if a.isdn {
                        Personality::IsdnTa
                    } else {
                        Personality::Analog
                    },
                    ring_interval: Duration::from_millis(a.ring_interval.max(1)),
                    ..SimConfig::default()
                },
            };
            tokio::runtime::Runtime::new()?.block_on(softmodem::run(opts))
        }
    }
}
