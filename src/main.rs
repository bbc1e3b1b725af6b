//! The `pptp-nas` command line.

use clap::Parser;

/// PPTP Access Concentrator with a modem/ISDN front end.
#[derive(Debug, Parser)]
#[command(name = "pptp-nas", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
