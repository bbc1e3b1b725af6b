//! Broken PAC configurations: each must give one clear one-line error naming file, line,
//! column and field path, and none may panic. Plus: the shipped example validates.

use pptp_nas::pac::config::{PacConfig, ValidateOptions};

const NO_DEV: ValidateOptions = ValidateOptions {
    check_devices: false,
    load_profiles: true,
};

/// A valid base; each case edits it by text replacement or replaces it entirely.
const BASE: &str = "\
pac:
  host_name: nas1
  hardware_dir: hardware
pns:
  - name: corp-a
    address: 192.0.2.1
    mode: incoming-call
  - name: corp-b
    address: 192.0.2.2
    mode: outgoing-call
lines:
  - id: sm0
    device: /dev/null
    type: modem
    profile: softmodem
    group: lab
  - id: sm1
    device: /dev/zero
    type: modem
    profile: softmodem
rules:
  - match: {groups: [lab]}
    pns: [corp-a, corp-b]
default: {pns: [corp-b]}
";

struct Case {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    /// Expected `line:column` in the error.
    at: (usize, usize),
    /// Expected field path.
    path: &'static str,
    /// A fragment of the message.
    says: &'static str,
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    Case { name: "yaml syntax", from: "  host_name: nas1", to: "  host_name: nas1: x", at: (2, 18), path: ".", says: "mapping values are not allowed" },
    Case { name: "unknown top-level key", from: "default:", to: "defaults:", at: (24, 1), path: ".", says: "unknown field `defaults`" },
    Case { name: "unknown line field (typo)", from: "    group: lab", to: "    gruop: lab", at: (16, 5), path: "lines[0]", says: "unknown field `gruop`" },
    Case { name: "wrong type", from: "    type: modem\n    profile: softmodem\n    group", to: "    type: modem\n    profile: softmodem\n    baud: fast\n    group", at: (16, 11), path: "lines[0].baud", says: "invalid type" },
    Case { name: "bad enum value", from: "mode: outgoing-call", to: "mode: outgoing", at: (10, 11), path: "pns[1].mode", says: "unknown variant `outgoing`" },
    Case { name: "bad IPv4 address", from: "192.0.2.2", to: "192.0.2.256", at: (9, 14), path: "pns[1].address", says: "invalid IP" },
    Case { name: "missing required field", from: "    device: /dev/zero\n", to: "", at: (17, 5), path: "lines[1]", says: "missing field `device`" },
    Case { name: "duplicate line id", from: "id: sm1", to: "id: sm0", at: (17, 5), path: "lines[1].id", says: "duplicate line id \"sm0\"" },
    Case { name: "duplicate device", from: "/dev/zero", to: "/dev/null", at: (18, 5), path: "lines[1].device", says: "already used by lines[0]" },
    Case { name: "unknown profile", from: "    profile: softmodem\n    group", to: "    profile: sportster\n    group", at: (15, 5), path: "lines[0].profile", says: "unknown profile \"sportster\"" },
    Case { name: "profile does not fit line type", from: "    type: modem\n    profile: softmodem\n    group", to: "    type: isdn\n    profile: softmodem\n    group", at: (15, 5), path: "lines[0].profile", says: "is for Analog lines" },
    Case { name: "rule names unknown PNS", from: "pns: [corp-a, corp-b]", to: "pns: [corp-a, corp-x]", at: (23, 5), path: "rules[0].pns[1]", says: "unknown PNS \"corp-x\"" },
    Case { name: "rule names unknown group", from: "groups: [lab]", to: "groups: [labs]", at: (22, 5), path: "rules[0].match.groups[0]", says: "no line is in group \"labs\"" },
    Case { name: "rule after catch-all never matches", from: "rules:\n", to: "rules:\n  - pns: [corp-a]\n", at: (23, 3), path: "rules[1]", says: "can never match: rules[0]" },
    Case { name: "shadowed duplicate rule", from: "default:", to: "  - match: {groups: [lab]}\n    pns: [corp-b]\ndefault:", at: (24, 5), path: "rules[1].match", says: "same conditions as rules[0]" },
    Case { name: "lines and groups disjoint", from: "groups: [lab]", to: "groups: [lab], lines: [sm1]", at: (22, 5), path: "rules[0].match", says: "none of its lines is in any of its groups" },
    Case { name: "bad CLID pattern", from: "groups: [lab]", to: "clid: [\"03x*\"]", at: (22, 5), path: "rules[0].match.clid[0]", says: "cannot occur in a phone number" },
    Case { name: "rule with two actions", from: "    pns: [corp-a, corp-b]", to: "    pns: [corp-a, corp-b]\n    refuse: true", at: (22, 3), path: "rules[0]", says: "exactly one of" },
    Case { name: "terminate without section", from: "default: {pns: [corp-b]}", to: "default: {terminate: true}", at: (24, 1), path: "default.terminate", says: "needs a top-level `terminate:` section" },
    Case { name: "duplicate PNS name", from: "name: corp-b", to: "name: corp-a", at: (8, 5), path: "pns[1].name", says: "duplicate PNS name" },
    Case { name: "zero echo interval", from: "    mode: incoming-call\n", to: "    mode: incoming-call\n    echo_interval_s: 0\n", at: (8, 5), path: "pns[0].echo_interval_s", says: "at least 1 second" },
    Case { name: "gre window zero", from: "    mode: outgoing-call\n", to: "    mode: outgoing-call\n    gre: {window: 0}\n", at: (11, 5), path: "pns[1].gre.window", says: "at least 1 packet" },
    Case { name: "host name too long", from: "host_name: nas1", to: "host_name: nas1-this-host-name-is-far-too-long-for-the-sixty-four-octet-pptp-field", at: (2, 3), path: "pac.host_name", says: "1 to 64 octets" },
    Case { name: "no lines", from: "lines:\n  - id: sm0\n    device: /dev/null\n    type: modem\n    profile: softmodem\n    group: lab\n  - id: sm1\n    device: /dev/zero\n    type: modem\n    profile: softmodem\n", to: "lines: []\n", at: (11, 1), path: "lines", says: "at least one line" },
    Case { name: "reconnect min above max", from: "    mode: incoming-call\n", to: "    mode: incoming-call\n    reconnect_min_s: 90\n    reconnect_max_s: 30\n", at: (9, 5), path: "pns[0].reconnect_max_s", says: "below reconnect_min_s" },
    Case { name: "negative number", from: "    mode: incoming-call\n", to: "    mode: incoming-call\n    port: -1\n", at: (8, 11), path: "pns[0].port", says: "expected u16" },
    Case { name: "terminate with tun", from: "default: {pns: [corp-b]}", to: "default: {terminate: true}\nterminate: {users: configs/users.yaml, pool_start: 10.0.0.10, pool_size: 4, local_ip: 10.0.0.1, tun: ppp0}", at: (25, 1), path: "terminate.tun", says: "TUN delivery is not available" },
    Case { name: "terminate local_ip in pool", from: "default: {pns: [corp-b]}", to: "default: {terminate: true}\nterminate: {users: configs/users.yaml, pool_start: 10.0.0.10, pool_size: 4, local_ip: 10.0.0.12}", at: (25, 1), path: "terminate.local_ip", says: "10.0.0.12 is inside the pool" },
    Case { name: "terminate users file missing", from: "default: {pns: [corp-b]}", to: "default: {terminate: true}\nterminate: {users: configs/nobody.yaml, pool_start: 10.0.0.10, pool_size: 4, local_ip: 10.0.0.1}", at: (25, 1), path: "terminate.users", says: "nobody.yaml: cannot read" },
    Case { name: "terminate bad mppe", from: "default: {pns: [corp-b]}", to: "default: {terminate: true}\nterminate: {users: configs/users.yaml, pool_start: 10.0.0.10, pool_size: 4, local_ip: 10.0.0.1, mppe: 64}", at: (25, 1), path: "terminate.mppe", says: "expected none, 40, 56 or 128" },
    Case { name: "not a mapping", from: BASE, to: "- just\n- a list\n", at: (1, 1), path: ".", says: "invalid type: sequence" },
];

#[test]
fn broken_configs_give_one_clear_line() {
    assert!(CASES.len() >= 15);
    let file = "hardware/../pac-test.yaml";
    let mut failures = Vec::new();
    for c in CASES {
        if !BASE.contains(c.from) {
            failures.push(format!("{}: base lacks {:?}", c.name, c.from));
            continue;
        }
        let text = BASE.replacen(c.from, c.to, 1);
        let r = std::panic::catch_unwind(|| PacConfig::load_str(file, &text, NO_DEV));
        let Ok(r) = r else {
            failures.push(format!("{}: PANICKED", c.name));
            continue;
        };
        let Err(errs) = r else {
            failures.push(format!("{}: accepted", c.name));
            continue;
        };
        let e = &errs.0[0];
        let line = e.to_string();
        let want_prefix = format!("{file}:{}:{}: {}: ", c.at.0, c.at.1, c.path);
        let all_placed = errs
            .0
            .iter()
            .all(|e| e.line > 0 && e.column > 0 && !e.to_string().contains('\n'));
        if !all_placed
            || line.contains('\n')
            || !line.starts_with(&want_prefix)
            || !line.contains(c.says)
        {
            failures.push(format!(
                "{}: want {want_prefix}...{:?}..., got ({} error(s)):\n{errs}",
                c.name,
                c.says,
                errs.0.len()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn base_is_valid() {
    let c = PacConfig::load_str("hardware/../pac-test.yaml", BASE, NO_DEV).unwrap();
    assert_eq!(c.config.lines.len(), 2);
    assert!(c.profiles.contains_key("softmodem"));
}

#[test]
fn missing_device_is_reported_when_checked() {
    let text = BASE.replace("/dev/zero", "/nonexistent/tty-pac-test");
    let errs = PacConfig::load_str("x.yaml", &text, ValidateOptions::default()).unwrap_err();
    let s = errs.to_string();
    assert!(
        s.starts_with("x.yaml:18:5: lines[1].device: /nonexistent/tty-pac-test does not exist"),
        "{s}"
    );
}

#[test]
fn shipped_example_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/pac.yaml");
    let c = PacConfig::load(&path, NO_DEV).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.config.pns.len(), 2);
    assert_eq!(c.config.lines.len(), 2);
}
