//! The `pptp-nas lab` command line: flags, progress output, summary, exit codes
//! ([`EXIT_OK`], [`EXIT_FAILED`], [`EXIT_USAGE`], [`EXIT_SETUP`]).

use std::io::Write as _;
use std::time::Duration;

use clap::Args;

use super::{run, LabOptions, Output, MAX_CLIENTS};
use crate::config::policy::{parse_auth, parse_mppc, parse_mppe};
use crate::ppp::lcp::AuthMethod;

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
    /// Seconds of bulk traffic in the throughput run (0: none).
    #[arg(long, default_value_t = 3.0)]
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
    /// Print exactly one JSON object on stdout instead of the stages and the table (the
    /// stages go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Raw GRE sockets (IP protocol 47) between the PAC and the PNS on two loopback addresses,
    /// instead of the in-process transport (needs root or CAP_NET_RAW).
    #[arg(long)]
    pub raw_gre: bool,
}

/// Exit code: every client did what was asked.
pub const EXIT_OK: i32 = 0;
/// Exit code: the chain ran but some client failed (see the errors).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad flags.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the lab could not be set up (ptys, sockets, raw GRE without root).
pub const EXIT_SETUP: i32 = 3;

/// Turns the flags into [`LabOptions`].
pub fn options(a: &LabArgs) -> Result<LabOptions, String> {
    let auth = parse_auth(&a.auth)?;
    let mppe_bits = parse_mppe(&a.mppe)?;
    let mppc = parse_mppc(&a.mppc)?;
    if !(0.0..=1.0).contains(&a.ber) {
        return Err("--ber must be between 0 and 1".to_string());
    }
    if a.clients == 0 || a.clients > MAX_CLIENTS {
        return Err(format!("--clients must be between 1 and {MAX_CLIENTS}"));
    }
    if mppe_bits.is_some() && !matches!(auth, AuthMethod::MsChapV1 | AuthMethod::MsChapV2) {
        return Err(format!(
            "--mppe {} needs keys from MS-CHAP: use --auth mschap or mschapv2, or --mppe none",
            a.mppe
        ));
    }
    if a.speed < 300 {
        return Err("--speed must be at least 300 bit/s".to_string());
    }
    if !(a.duration.is_finite() && (0.0..=3600.0).contains(&a.duration)) {
        return Err("--duration must be between 0 and 3600 seconds".to_string());
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
        raw_gre: a.raw_gre,
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
    // Stages go to stdout, or to stderr with --json (stdout holds only the JSON object).
    let out = Output {
        line: if json {
            Box::new(|line: &str| eprintln!("{line}"))
        } else {
            Box::new(|line: &str| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            })
        },
        bar: true,
    };
    let report = run(opts, out);
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{}", report.to_json());
    } else {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", report.table());
    }
    if report.setup_error.is_some() {
        EXIT_SETUP
    } else if report.ok {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}
