//! The PPP policy flags shared by `pns`, `ppp` and `lab` (`--auth`, `--mppe`, `--stateless`,
//! `--mppc`, `--user`): one parser and one mapping onto [`CcpConfig`], so a flag means the same
//! thing on every subcommand.

use crate::ppp::ccp::{CcpConfig, MppeMode, Stateless};
use crate::ppp::lcp::AuthMethod;

/// Parses `--auth pap|chap|mschap|mschapv2`.
pub fn parse_auth(s: &str) -> Result<AuthMethod, String> {
    match s {
        "pap" => Ok(AuthMethod::Pap),
        "chap" => Ok(AuthMethod::ChapMd5),
        "mschap" | "mschapv1" => Ok(AuthMethod::MsChapV1),
        "mschapv2" => Ok(AuthMethod::MsChapV2),
        other => Err(format!(
            "--auth {other}: expected pap, chap, mschap or mschapv2"
        )),
    }
}

/// Parses a comma-separated `--auth` list (`mschapv2,chap`), most preferred first, the same
/// way on every subcommand: the PNS demands these methods in order (walking down its list on
/// the client's Configure-Nak, RFC 1661 6.3), a client accepts them. Duplicates are dropped;
/// an empty list is an error.
pub fn parse_auth_list(s: &str) -> Result<Vec<AuthMethod>, String> {
    let mut v: Vec<AuthMethod> = Vec::new();
    for part in s.split(',') {
        let m = parse_auth(part.trim())?;
        if !v.contains(&m) {
            v.push(m);
        }
    }
    if v.is_empty() {
        return Err("--auth: no method".to_string());
    }
    Ok(v)
}

/// Parses `--mppe none|40|56|128` into the key length (`None` = no MPPE).
pub fn parse_mppe(s: &str) -> Result<Option<u16>, String> {
    match s {
        "none" | "off" => Ok(None),
        "40" => Ok(Some(40)),
        "56" => Ok(Some(56)),
        "128" => Ok(Some(128)),
        other => Err(format!("--mppe {other}: expected none, 40, 56 or 128")),
    }
}

/// Parses `--mppc on|off`.
pub fn parse_mppc(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("--mppc {other}: expected on or off")),
    }
}

/// Parses one `--user NAME:PASSWORD` (the name must not be empty; the password may contain `:`).
pub fn parse_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((n, p)) if !n.is_empty() => Ok((n.to_string(), p.to_string())),
        _ => Err("--user: expected NAME:PASSWORD with a non-empty name".to_string()),
    }
}

/// Applies the MPPE/MPPC flags to one side's CCP policy. `--mppe BITS` requires exactly that
/// key length; `--stateless` makes the server require stateless mode and the client allow it.
pub fn apply_ccp(
    ccp: &mut CcpConfig,
    mppe_bits: Option<u16>,
    stateless: bool,
    mppc: bool,
    server: bool,
) {
    match mppe_bits {
        Some(bits) => {
            ccp.mppe = MppeMode::Required;
            ccp.allow_40 = bits == 40;
            ccp.allow_56 = bits == 56;
            ccp.allow_128 = bits == 128;
        }
        None => ccp.mppe = MppeMode::Disabled,
    }
    ccp.stateless = match (stateless, server) {
        (true, true) => Stateless::Required,
        (true, false) => Stateless::Allowed,
        (false, _) => Stateless::Off,
    };
    ccp.mppc = mppc;
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn flags_parse_and_reject() {
        assert_eq!(parse_auth("mschap"), Ok(AuthMethod::MsChapV1));
        assert!(parse_auth("eap").unwrap_err().contains("--auth eap"));
        assert_eq!(
            parse_auth_list("mschapv2, chap,mschapv2"),
            Ok(vec![AuthMethod::MsChapV2, AuthMethod::ChapMd5])
        );
        assert_eq!(parse_auth_list("pap"), Ok(vec![AuthMethod::Pap]));
        assert!(parse_auth_list("chap,eap")
            .unwrap_err()
            .contains("--auth eap"));
        assert!(parse_auth_list("").is_err());
        assert_eq!(parse_mppe("56"), Ok(Some(56)));
        assert_eq!(parse_mppe("none"), Ok(None));
        assert!(parse_mppe("64").is_err());
        assert_eq!(parse_mppc("off"), Ok(false));
        assert!(parse_mppc("yes").is_err());
        assert_eq!(parse_user("a:b:c"), Ok(("a".into(), "b:c".into())));
        assert!(parse_user(":x").is_err());
        assert!(parse_user("nocolon").is_err());
    }

    #[test]
    fn stateless_is_required_by_servers_and_allowed_by_clients() {
        let mut s = CcpConfig::default();
        let mut c = CcpConfig::default();
        apply_ccp(&mut s, Some(40), true, false, true);
        apply_ccp(&mut c, Some(40), true, false, false);
        assert_eq!(s.stateless, Stateless::Required);
        assert_eq!(c.stateless, Stateless::Allowed);
        assert!(s.allow_40 && !s.allow_56 && !s.allow_128);
        assert_eq!(s.mppe, MppeMode::Required);
        apply_ccp(&mut s, None, false, true, true);
        assert_eq!(s.mppe, MppeMode::Disabled);
        assert!(s.mppc);
    }
}
