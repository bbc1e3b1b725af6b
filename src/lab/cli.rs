//! The `pptp-nas lab` command line: flags, progress output, summary, exit code.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;

use super::{run, LabOptions};
use crate::config::policy::{parse_auth, parse_mppc, parse_mppe};

/// Flags of `pptp-nas lab`.
#[derive(Debug, Clone, Args)]
pub struct LabArgs {
    /// Dial-in clients, one soft-modem line each.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Line speed in bit/s.
    #[arg(long, default_value_t = 33_600)]
    pub speed: u32,
    /// Bit-error rate on the lines, e.g. 1e-5.
    #[arg(long, default_value_t = 0.0)]
    pub ber: f64,
    /// Authentication the PNS demands: pap, chap, mschap or mschapv2.
    #[arg(long, default_value = "mschapv2")]
    pub auth: String,
    /// MPPE: none, 40, 56 or 128 (required at that key length).
    #[arg(long, default_value = "128")]
    pub mppe: String,
    /// Stateless MPPE (key change every packet).
    #[arg(long)]
    pub stateless: bool,
    /// MPPC compression: on or off.
    #[arg(long, default_value = "on")]
    pub mppc: String,
    /// Seconds of bulk traffic in the throughput run (simulated time).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Pings per client.
    #[arg(long, default_value_t = 5)]
    pub pings: u32,
    /// Drop carrier this many seconds after CONNECT (fault injection).
    #[arg(long)]
    pub drop_after: Option<f64>,
    /// The password the clients dial in with (the PNS knows user alice with the lab's own
    /// password): a wrong one shows authentication failures and, from the fifth, the lockout.
    #[arg(long)]
    pub password: Option<String>,
    /// Print exactly one JSON object on stdout instead of the stages and the table.
    #[arg(long)]
    pub json: bool,
    /// Use raw GRE sockets between PAC and PNS (needs root; not available yet).
    #[arg(long)]
    pub raw_gre: bool,
}

/// Exit code: every client did what was asked.
pub const EXIT_OK: i32 = 0;
/// Exit code: the chain ran but some client failed (see the errors).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad flags.
pub const EXIT_USAGE: i32 = 2;

/// Turns the flags into [`LabOptions`].
pub fn options(a: &LabArgs) -> Result<LabOptions, String> {
    let auth = parse_auth(&a.auth)?;
    let mppe_bits = parse_mppe(&a.mppe)?;
    let mppc = parse_mppc(&a.mppc)?;
    if !(0.0..=1.0).contains(&a.ber) {
        return Err("--ber must be between 0 and 1".to_string());
    }
    if a.clients == 0 || a.clients > 1000 {
        return Err("--clients must be between 1 and 1000".to_string());
    }
    if a.speed < 300 {
        return Err("--speed must be at least 300 bit/s".to_string());
    }
    if !(a.duration.is_finite() && (0.0..=3600.0).contains(&a.duration)) {
        return Err("--duration must be between 0 and 3600 seconds".to_string());
    }
    if a.raw_gre {
        return Err(
            "--raw-gre is not implemented yet: the lab uses its in-process GRE transport"
                .to_string(),
        );
    }
    Ok(LabOptions {
        clients: a.clients,
        speed: a.speed,
        ber: a.ber,
        auth,
        mppe_bits,
        stateless: a.stateless,
        mppc,
        duration: Duration::from_secs_f64(a.duration),
        pings: a.pings,
        drop_after: a
            .drop_after
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64),
        client_password: a
            .password
            .clone()
            .unwrap_or_else(|| LabOptions::default().client_password),
    })
}

/// Runs `pptp-nas lab` and returns the process exit code.
pub fn main(a: &LabArgs) -> i32 {
    let opts = match options(a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pptp-nas lab: {e}");
            return EXIT_USAGE;
        }
    };
    let json = a.json;
    let progress: Box<dyn FnMut(&str)> = if json {
        Box::new(|_| {})
    } else {
        Box::new(|line| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        })
    };
    let wall = std::time::Instant::now();
    let report = run(opts, progress);
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{}", report.to_json());
    } else {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", report.table());
        let _ = writeln!(
            out,
            "(wall clock {:.2} s; times, RTTs and kbit/s are on the simulated line's clock)",
            wall.elapsed().as_secs_f64()
        );
    }
    if report.ok {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}
