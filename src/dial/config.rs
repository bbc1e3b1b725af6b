//! `configs/dial.yaml`: the settings of `pptp-nas dial` as a YAML file. Every key is optional
//! and has the meaning of the flag of the same name; flags given on the command line win.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DialArgs;
use crate::config::{ConfigError, Source};

/// A value written as a number or a string (`mppe: 128` or `mppe: none`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NumOrStr {
    /// A number.
    Num(u64),
    /// A string.
    Str(String),
}

impl NumOrStr {
    fn text(&self) -> String {
        match self {
            NumOrStr::Num(n) => n.to_string(),
            NumOrStr::Str(s) => s.clone(),
        }
    }
}

/// One or several authentication methods (`auth: mschapv2` or `auth: [mschapv2, mschap]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// A list.
    Many(Vec<String>),
}

/// The file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialFile {
    /// Serial device or pty.
    pub device: Option<PathBuf>,
    /// Serial speed.
    pub baud: Option<u32>,
    /// RTS/CTS flow control.
    pub rtscts: Option<bool>,
    /// Number to dial.
    pub number: Option<NumOrStr>,
    /// Init commands (the first is the reset).
    pub init: Option<Vec<String>>,
    /// Dial command with `{number}`.
    pub dial_command: Option<String>,
    /// Seconds to wait for the dial result.
    pub dial_timeout: Option<f64>,
    /// User name.
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Accepted authentication methods.
    pub auth: Option<OneOrMany>,
    /// MPPE key length (none, 40, 56, 128); absent: accept what the server asks.
    pub mppe: Option<NumOrStr>,
    /// Allow stateless MPPE.
    pub stateless: Option<bool>,
    /// MPPC compression.
    pub mppc: Option<bool>,
    /// Pings to send.
    pub ping: Option<u32>,
    /// Seconds of bulk traffic.
    pub throughput: Option<f64>,
    /// Seconds from CONNECT until the link must be up.
    pub connect_timeout: Option<f64>,
    /// Print JSON.
    pub json: Option<bool>,
}

/// Parses a dial.yaml text.
pub fn parse(src: &Source) -> Result<DialFile, ConfigError> {
    let f: DialFile = src.parse()?;
    if f.password.is_some() && f.user.is_none() {
        return Err(src.error("password", "password without user"));
    }
    if let Some(u) = &f.user {
        if u.is_empty() || u.contains(':') && f.password.is_some() {
            return Err(src.error(
                "user",
                "user must be a non-empty name (with `password:`), or NAME:PASSWORD",
            ));
        }
        if f.password.is_none() && !u.contains(':') {
            return Err(src.error("user", "user without password (add `password:`)"));
        }
    }
    if let Some(NumOrStr::Str(m)) = &f.mppe {
        crate::config::policy::parse_mppe(m).map_err(|e| src.error("mppe", e))?;
    }
    if let Some(NumOrStr::Num(m)) = &f.mppe {
        crate::config::policy::parse_mppe(&m.to_string()).map_err(|e| src.error("mppe", e))?;
    }
    if let Some(a) = &f.auth {
        let list = match a {
            OneOrMany::One(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
            OneOrMany::Many(v) => v.clone(),
        };
        for m in &list {
            crate::config::policy::parse_auth(m).map_err(|e| src.error("auth", e))?;
        }
    }
    Ok(f)
}

/// Reads `path` and fills in what the flags left out.
pub fn merge(cli: DialArgs, path: &Path) -> Result<DialArgs, ConfigError> {
    let src = Source::read(path)?;
    let f = parse(&src)?;
    Ok(merge_file(cli, f))
}

/// Fills in what the flags left out from the file.
pub fn merge_file(cli: DialArgs, f: DialFile) -> DialArgs {
    let user = match (f.user, f.password) {
        (Some(u), Some(p)) => Some(format!("{u}:{p}")),
        (Some(u), None) => Some(u),
        _ => None,
    };
    DialArgs {
        config: cli.config,
        device: cli.device.or(f.device),
        baud: cli.baud.or(f.baud),
        rtscts: cli.rtscts || f.rtscts.unwrap_or(false),
        number: cli.number.or(f.number.map(|n| n.text())),
        init: if cli.init.is_empty() {
            f.init.unwrap_or_default()
        } else {
            cli.init
        },
        dial_command: cli.dial_command.or(f.dial_command),
        dial_timeout: cli.dial_timeout.or(f.dial_timeout),
        user: cli.user.or(user),
        auth: cli.auth.or(f.auth.map(|a| match a {
            OneOrMany::One(s) => s,
            OneOrMany::Many(v) => v.join(","),
        })),
        mppe: cli.mppe.or(f.mppe.map(|m| m.text())),
        stateless: cli.stateless || f.stateless.unwrap_or(false),
        mppc: cli
            .mppc
            .or(f.mppc.map(|b| if b { "on" } else { "off" }.to_string())),
        ping: cli.ping.or(f.ping),
        throughput: cli.throughput.or(f.throughput),
        connect_timeout: cli.connect_timeout.or(f.connect_timeout),
        tun: cli.tun,
        json: cli.json || f.json.unwrap_or(false),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn load(text: &str) -> Result<DialFile, ConfigError> {
        parse(&Source::from_text("dial.yaml", text))
    }

    #[test]
    fn example_file_parses() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/dial.yaml"),
        )
        .unwrap();
        let f = load(&text).unwrap();
        assert!(f.device.is_some() && f.number.is_some() && f.user.is_some());
    }

    #[test]
    fn flags_win_over_the_file() {
        let f = load(
            "device: /dev/ttyS0\nnumber: 5551234\nuser: alice\npassword: 'se:cret'\n\
             mppe: 40\nmppc: false\nauth: [mschapv2, mschap]\nping: 3\ninit: [ATZ, ATX4]\n",
        )
        .unwrap();
        let cli = DialArgs {
            number: Some("999".into()),
            ping: Some(7),
            ..DialArgs::default()
        };
        let a = merge_file(cli, f);
        assert_eq!(a.device, Some(PathBuf::from("/dev/ttyS0")));
        assert_eq!(a.number.as_deref(), Some("999"));
        assert_eq!(a.user.as_deref(), Some("alice:se:cret"));
        assert_eq!(a.mppe.as_deref(), Some("40"));
        assert_eq!(a.mppc.as_deref(), Some("off"));
        assert_eq!(a.auth.as_deref(), Some("mschapv2,mschap"));
        assert_eq!(a.ping, Some(7));
        assert_eq!(a.init, ["ATZ", "ATX4"]);
    }

    #[test]
    fn broken_files_give_one_line_errors() {
        for (text, want) in [
            ("devise: /dev/ttyS0\n", "unknown field `devise`"),
            ("mppe: 64\n", "--mppe 64"),
            ("auth: [mschapv2, eap]\n", "--auth eap"),
            ("password: x\n", "password without user"),
            ("user: alice\n", "user without password"),
            ("ping: lots\n", "ping"),
            ("baud: [1]\n", "baud"),
            ("device: [\n", "dial.yaml:"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.starts_with("dial.yaml:"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
