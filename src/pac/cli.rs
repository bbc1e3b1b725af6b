//! The PAC's subcommands (`check-config`, `pac`, `status`): argument structs and entry points,
//! so `main.rs` only dispatches.

use std::path::PathBuf;

use super::config::{PacConfig, ValidateOptions};

/// `pptp-nas check-config FILE`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckConfigArgs {
    /// The PAC configuration file.
    pub file: PathBuf,
    /// Do not check that device paths exist (e.g. before `softmodem` has created them).
    #[arg(long)]
    pub no_device_check: bool,
}

/// Runs `check-config`; returns the process exit code (0 valid, 1 invalid).
pub fn check_config(args: &CheckConfigArgs) -> i32 {
    let opts = ValidateOptions {
        check_devices: !args.no_device_check,
        load_profiles: true,
    };
    match PacConfig::load(&args.file, opts) {
        Ok(c) => {
            println!(
                "{}: ok ({} line(s), {} PNS, {} rule(s))",
                args.file.display(),
                c.config.lines.len(),
                c.config.pns.len(),
                c.config.rules.len()
            );
            0
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            1
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `pptp-nas pac`.
#[derive(Debug, Clone, clap::Args)]
pub struct PacArgs {
    /// The PAC configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Directory for per-call packet captures: `LINE-CALLID-TIME-line.pcap` (PPP with direction,
    /// linktype 204) and `...-gre.pcap` (IPv4/GRE, linktype 101) for every tunnelled call.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Status socket (overrides `pac.status_socket`).
    #[arg(long)]
    pub status_socket: Option<PathBuf>,
}

/// `pptp-nas status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The daemon's status socket.
    #[arg(long, default_value = DEFAULT_STATUS_SOCKET)]
    pub socket: PathBuf,
    /// Machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the status socket is unless configured.
pub const DEFAULT_STATUS_SOCKET: &str = "/run/pptp-nas/pac.sock";

/// Sets up tracing for the daemon.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

/// Runs the daemon until SIGTERM/SIGINT. SIGHUP re-reads the configuration: when valid, lines
/// are added, removed or restarted with their new settings (a line with a call keeps its
/// settings until the call ends); when invalid, the error is logged and nothing changes.
pub async fn run_daemon(args: PacArgs) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let loaded = PacConfig::load(&args.config, ValidateOptions::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let peers: Vec<std::net::Ipv4Addr> = loaded.config.pns.iter().map(|p| p.address).collect();
    let gre = super::gre::raw(loaded.config.pac.local_address, peers)
        .map_err(|e| anyhow::anyhow!("raw GRE socket (needs CAP_NET_RAW): {e}"))?;
    let socket = args
        .status_socket
        .clone()
        .or_else(|| loaded.config.pac.status_socket.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATUS_SOCKET));
    let opts = super::PacOptions {
        pcap: args.pcap.clone(),
    };
    let mut handle = super::Pac::start_with(loaded, gre, opts)?;
    if let Err(e) = handle.serve_status(&socket) {
        tracing::warn!(socket = %socket.display(), error = %e, "status socket unavailable");
    }
    tracing::info!(config = %args.config.display(), status = %socket.display(), "PAC running");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match PacConfig::load(&args.config, ValidateOptions::default()) {
                    Ok(c) => {
                        let r = handle.reload(c);
                        tracing::info!(added = ?r.added, removed = ?r.removed, changed = ?r.changed, "SIGHUP: lines reloaded (lines with a call keep their settings until it ends)");
                        if !r.not_applied.is_empty() {
                            tracing::warn!(sections = ?r.not_applied, "SIGHUP: these sections changed but only take effect after a restart");
                        }
                    }
                    Err(e) => tracing::error!("SIGHUP: configuration invalid, keeping the running one:\n{e}"),
                }
            }
        }
    }
    tracing::info!("stopping: clearing calls, Stop-Control-Connection-Request, resetting modems");
    handle.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Runs `pptp-nas status`; returns the exit code.
pub async fn status(args: &StatusArgs) -> i32 {
    match super::status::query(&args.socket, args.json).await {
        Ok(s) => {
            print!("{s}");
            0
        }
        Err(e) => {
            eprintln!(
                "{}: {e} (is `pptp-nas pac` running?)",
                args.socket.display()
            );
            1
        }
    }
}
