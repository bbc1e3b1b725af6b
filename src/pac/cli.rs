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
