//! Tunnel selection: which PNS (or local termination) a call goes to. Pure code.
//!
//! Rules are evaluated in order; the first whose conditions all hold decides (within one
//! condition list any entry may match). A rule without conditions matches every call. If no
//! rule matches, the `default` target applies; without one the call is refused.
//!
//! A tunnel target is an ordered list of PNS names: the primary, then failovers.
//! [`candidates`] filters that list by what the PAC currently knows about each server (in
//! reconnect back-off, or at its `max_calls` limit), keeping the order; the call relay then
//! tries the remaining servers in turn, moving on when one cannot be reached or refuses the
//! call.

use super::config::{PacConfig, TargetFields};

/// What is known about a call when the tunnel is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFacts<'a> {
    /// The line id.
    pub line: &'a str,
    /// The line's group.
    pub group: Option<&'a str>,
    /// Dialed number (DNIS), if the line reports one.
    pub dnis: Option<&'a str>,
    /// Calling number (CLID), if the line reports one.
    pub clid: Option<&'a str>,
}

/// The outcome of the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Tunnel to the first usable PNS of this list.
    Tunnel {
        /// The rule that matched (`None`: the default).
        rule: Option<usize>,
        /// Primary first, then failovers.
        pns: Vec<String>,
    },
    /// Terminate PPP locally.
    Terminate {
        /// The rule that matched (`None`: the default).
        rule: Option<usize>,
    },
    /// Refuse the call.
    Refuse {
        /// The rule that matched (`None`: no rule and no default, or the default says so).
        rule: Option<usize>,
    },
}

/// The rules of a configuration, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Selector {
    rules: Vec<(super::config::Match, TargetFields)>,
    default: Option<TargetFields>,
}

fn decide(rule: Option<usize>, t: &TargetFields) -> Decision {
    if t.terminate {
        Decision::Terminate { rule }
    } else if t.refuse || t.pns.is_empty() {
        Decision::Refuse { rule }
    } else {
        Decision::Tunnel {
            rule,
            pns: t.pns.clone(),
        }
    }
}

impl Selector {
    /// Takes the rules and default of `config` (validated).
    pub fn new(config: &PacConfig) -> Self {
        Selector {
            rules: config
                .rules
                .iter()
                .map(|r| (r.when.clone(), r.target()))
                .collect(),
            default: config.default.clone(),
        }
    }

    /// Evaluates the rules for one call.
    pub fn select(&self, call: &CallFacts<'_>) -> Decision {
        for (i, (m, t)) in self.rules.iter().enumerate() {
            let lines = m.lines.is_empty() || m.lines.iter().any(|l| l == call.line);
            let groups =
                m.groups.is_empty() || call.group.is_some_and(|g| m.groups.iter().any(|x| x == g));
            let dnis = m.dnis.is_empty()
                || call
                    .dnis
                    .is_some_and(|n| m.dnis.iter().any(|p| number_matches(p, n)));
            let clid = m.clid.is_empty()
                || call
                    .clid
                    .is_some_and(|n| m.clid.iter().any(|p| number_matches(p, n)));
            if lines && groups && dnis && clid {
                return decide(Some(i), t);
            }
        }
        match &self.default {
            Some(t) => decide(None, t),
            None => Decision::Refuse { rule: None },
        }
    }
}

/// What the PAC knows about one PNS right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PnsAvailability {
    /// The control connection is down and waiting to retry (the last attempt failed).
    pub backing_off: bool,
    /// Calls on it now.
    pub calls: usize,
    /// Its `max_calls`, if any.
    pub max_calls: Option<u16>,
}

/// The PNS of `list` worth trying now, in order: those not backing off and below their call
/// limit. `avail` answers for a name; unknown names are skipped.
pub fn candidates(list: &[String], avail: impl Fn(&str) -> Option<PnsAvailability>) -> Vec<&str> {
    list.iter()
        .map(String::as_str)
        .filter(|name| {
            avail(name).is_some_and(|a| {
                !a.backing_off && a.max_calls.map_or(true, |m| a.calls < usize::from(m))
            })
        })
        .collect()
}

/// Glob match of a number pattern: `*` any run (also empty), `?` exactly one character.
/// Spaces and dashes in the number are ignored.
pub fn number_matches(pattern: &str, number: &str) -> bool {
    let n: Vec<u8> = number
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'-'))
        .collect();
    glob(pattern.as_bytes(), &n)
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard matching with one backtrack point (linear in practice).
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match (p.get(pi), s.get(si)) {
            (Some(b'*'), _) => {
                star = Some((pi, si));
                pi += 1;
            }
            (Some(b'?'), Some(_)) => {
                pi += 1;
                si += 1;
            }
            (Some(a), Some(b)) if a == b => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::pac::config::{PacConfig, ValidateOptions};

    const RULES: &str = r#"
pac: {host_name: nas}
pns:
  - {name: corp-a, address: 192.0.2.1, mode: incoming-call, max_calls: 2}
  - {name: corp-b, address: 192.0.2.2, mode: outgoing-call}
  - {name: corp-c, address: 192.0.2.3, mode: incoming-call}
lines:
  - {id: m0, device: /dev/null, type: modem, profile: softmodem, group: modems}
  - {id: m1, device: /dev/zero, type: modem, profile: softmodem, group: modems}
  - {id: i0, device: /dev/tty, type: isdn, profile: softmodem-isdn, group: isdn}
  - {id: d0, device: /dev/full, type: direct, profile: direct}
terminate: {users: configs/users.yaml, pool_start: 10.0.0.10, pool_size: 10, local_ip: 10.0.0.1}
rules:
  - name: internet callers on the ISP number
    match: {dnis: ["5550100"]}
    terminate: true
  - name: blocked caller
    match: {clid: ["0900*"]}
    refuse: true
  - name: corp-b's own numbers
    match: {dnis: ["55502??"]}
    pns: [corp-b]
  - name: isdn group to corp-c with failover
    match: {groups: [isdn]}
    pns: [corp-c, corp-a]
  - name: VIP callers on modem line m1
    match: {lines: [m1], clid: ["+4930*", "030*"]}
    pns: [corp-b, corp-a]
default: {pns: [corp-a, corp-b]}
"#;

    fn selector() -> Selector {
        let c = PacConfig::load_str(
            "rules.yaml",
            RULES,
            ValidateOptions {
                check_devices: false,
                load_profiles: true,
            },
        )
        .unwrap();
        Selector::new(&c.config)
    }

    fn tunnel(rule: Option<usize>, pns: &[&str]) -> Decision {
        Decision::Tunnel {
            rule,
            pns: pns.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn table() {
        let s = selector();
        let g = |l: &str| match l {
            "m0" | "m1" => Some("modems"),
            "i0" => Some("isdn"),
            _ => None,
        };
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>, Option<&str>, Decision)] = &[
            // line, dnis, clid, expected
            ("m0", Some("5550100"), None,               Decision::Terminate { rule: Some(0) }),
            ("i0", Some("5550100"), Some("0301234"),    Decision::Terminate { rule: Some(0) }),
            ("m0", Some("5550101"), Some("09001234"),   Decision::Refuse { rule: Some(1) }),
            ("m0", None,            Some("0900"),       Decision::Refuse { rule: Some(1) }),
            ("m0", Some("5550200"), None,               tunnel(Some(2), &["corp-b"])),
            ("d0", Some("5550299"), Some("12"),         tunnel(Some(2), &["corp-b"])),
            ("m0", Some("55502"),   None,               tunnel(None, &["corp-a", "corp-b"])),
            ("m0", Some("555020"),  None,               tunnel(None, &["corp-a", "corp-b"])),
            ("m0", Some("5550-201"), None,              tunnel(Some(2), &["corp-b"])),
            ("i0", None,            None,               tunnel(Some(3), &["corp-c", "corp-a"])),
            ("i0", Some("1"),       Some("+49301"),     tunnel(Some(3), &["corp-c", "corp-a"])),
            ("m1", None,            Some("+49301234"),  tunnel(Some(4), &["corp-b", "corp-a"])),
            ("m1", None,            Some("030 1234"),   tunnel(Some(4), &["corp-b", "corp-a"])),
            ("m1", None,            Some("0301"),       tunnel(Some(4), &["corp-b", "corp-a"])),
            ("m1", None,            Some("040"),        tunnel(None, &["corp-a", "corp-b"])),
            ("m1", None,            None,               tunnel(None, &["corp-a", "corp-b"])),
            ("m0", None,            Some("+49301234"),  tunnel(None, &["corp-a", "corp-b"])),
            ("d0", None,            None,               tunnel(None, &["corp-a", "corp-b"])),
        ];
        for (i, (line, dnis, clid, want)) in cases.iter().enumerate() {
            let facts = CallFacts {
                line,
                group: g(line),
                dnis: *dnis,
                clid: *clid,
            };
            assert_eq!(&s.select(&facts), want, "case {i}: {facts:?}");
        }
    }

    #[test]
    fn no_default_refuses() {
        let mut c: PacConfig = yaml_serde::from_str(RULES).unwrap();
        c.default = None;
        let s = Selector::new(&c);
        let facts = CallFacts {
            line: "d0",
            group: None,
            dnis: None,
            clid: None,
        };
        assert_eq!(s.select(&facts), Decision::Refuse { rule: None });
    }

    #[test]
    fn failover_table() {
        let list: Vec<String> = ["corp-a", "corp-b", "corp-c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let up = |calls, max| PnsAvailability {
            backing_off: false,
            calls,
            max_calls: max,
        };
        let down = PnsAvailability {
            backing_off: true,
            calls: 0,
            max_calls: None,
        };
        #[rustfmt::skip]
        let cases: &[([Option<PnsAvailability>; 3], &[&str])] = &[
            ([Some(up(0, None)), Some(up(0, None)), Some(up(0, None))], &["corp-a", "corp-b", "corp-c"]),
            ([Some(down), Some(up(0, None)), Some(up(0, None))],        &["corp-b", "corp-c"]),
            ([Some(up(2, Some(2))), Some(up(0, None)), Some(down)],     &["corp-b"]),
            ([Some(up(1, Some(2))), Some(down), Some(down)],            &["corp-a"]),
            ([Some(down), Some(down), Some(down)],                      &[]),
            ([None, Some(up(5, Some(6))), Some(up(6, Some(6)))],        &["corp-b"]),
        ];
        for (i, (av, want)) in cases.iter().enumerate() {
            let got = candidates(&list, |n| match n {
                "corp-a" => av[0],
                "corp-b" => av[1],
                "corp-c" => av[2],
                _ => None,
            });
            assert_eq!(&got, want, "case {i}");
        }
    }

    #[test]
    fn glob_patterns() {
        #[rustfmt::skip]
        let cases = [
            ("*", "", true), ("*", "123", true), ("?", "", false), ("?", "1", true),
            ("12*", "12", true), ("12*", "1", false), ("*34", "1234", true), ("*34", "1243", false),
            ("1*3*5", "12345", true), ("1*3*5", "1354", false), ("+49*", "+4930", true),
            ("555????", "5551234", true), ("555????", "555123", false), ("**", "x", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(number_matches(p, n), want, "{p} vs {n}");
        }
    }
}
