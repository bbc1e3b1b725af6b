//! Modem and ISDN-TA profiles (`hardware/*.yaml`).
//!
//! A profile says how to talk to one kind of device: serial settings, reset and init strings,
//! caller-ID enablement, answer policy, dial template, hang-up method and timeouts. Unknown
//! keys are errors (`deny_unknown_fields`), so a typo in a profile fails loudly at load time
//! instead of silently using a default. [`Profile::control_config`] turns a profile into the
//! [`ControlConfig`] the modem-control core runs on.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::control::{AnswerMode, ControlConfig, HangupMethod};

/// What kind of line a profile drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LineType {
    /// An analog modem (async HDLC framing).
    #[default]
    Analog,
    /// An ISDN terminal adapter (synchronous framing reported to PPTP, 64 kbit/s per B channel).
    Isdn,
    /// No modem: null-modem cable or pty pair; the call starts on the first LCP frame.
    Direct,
}

/// Timeouts, all optional (defaults in brackets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Wait for OK to a command, ms [3000].
    pub command_ms: Option<u64>,
    /// Wait for CONNECT after ATA, s [60].
    pub answer_s: Option<u64>,
    /// Wait for a dial result, s [90].
    pub dial_s: Option<u64>,
    /// RING gap that ends an unanswered call, s [10].
    pub ring_gap_s: Option<u64>,
    /// Escape guard time, ms [1100].
    pub guard_ms: Option<u64>,
    /// DTR low time for hang-up, ms [500].
    pub dtr_drop_ms: Option<u64>,
    /// First and longest init retry delay, s [1, 60].
    pub backoff_min_s: Option<u64>,
    /// Longest init retry delay, s [60].
    pub backoff_max_s: Option<u64>,
}

/// ISDN-specific settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Isdn {
    /// The MSN (Euro-ISDN) or EAZ (1TR6) this TA answers; substituted for `{msn}` in init.
    pub msn: Option<String>,
    /// B channels the device offers: each one is a separate line (a BRI has two).
    #[serde(default = "two")]
    pub b_channels: u8,
}

fn two() -> u8 {
    2
}

/// A device profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Human name.
    pub name: String,
    /// Line type.
    #[serde(default, rename = "type")]
    pub line_type: LineType,
    /// DTE speed, bit/s.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// RTS/CTS hardware flow control.
    #[serde(default = "yes")]
    pub rtscts: bool,
    /// Reset command.
    #[serde(default = "default_reset")]
    pub reset: String,
    /// Init commands, in order; each must answer OK.
    #[serde(default)]
    pub init: Vec<String>,
    /// Caller-ID enable command (ERROR tolerated).
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Answer policy: `auto`, `external` or `{on-ring: N}`.
    #[serde(default = "default_answer")]
    pub answer: AnswerSpec,
    /// Dial command template with `{number}`.
    #[serde(default = "default_dial")]
    pub dial: String,
    /// `dtr` or `escape`.
    #[serde(default = "default_hangup")]
    pub hangup: HangupMethod,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// ISDN settings (type `isdn`).
    #[serde(default)]
    pub isdn: Option<Isdn>,
    /// Free-form notes for operators.
    #[serde(default)]
    pub notes: String,
}

fn default_baud() -> u32 {
    115_200
}
fn yes() -> bool {
    true
}
fn default_reset() -> String {
    "ATZ".into()
}
fn default_answer() -> AnswerSpec {
    AnswerSpec::OnRing { on_ring: 1 }
}

/// How a profile spells [`AnswerMode`]: `auto`, `external`, or `{on-ring: N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum AnswerSpec {
    /// `{on-ring: N}`.
    OnRing {
        /// The RING to answer on (1 = first).
        #[serde(rename = "on-ring")]
        on_ring: u8,
    },
    /// `auto` or `external`.
    Word(AnswerWord),
}

/// The one-word answer policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerWord {
    /// The modem answers by itself (S0 in init).
    Auto,
    /// The PAC answers.
    External,
}

impl From<AnswerSpec> for AnswerMode {
    fn from(a: AnswerSpec) -> AnswerMode {
        match a {
            AnswerSpec::OnRing { on_ring } => AnswerMode::OnRing(on_ring),
            AnswerSpec::Word(AnswerWord::Auto) => AnswerMode::Auto,
            AnswerSpec::Word(AnswerWord::External) => AnswerMode::External,
        }
    }
}
fn default_dial() -> String {
    "ATDT{number}".into()
}
fn default_hangup() -> HangupMethod {
    HangupMethod::Dtr
}

/// A profile that failed to load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Not valid YAML for the schema (with line and column).
    #[error("profile: {0}")]
    Yaml(#[from] yaml_serde::Error),
    /// Valid YAML, but the values do not make sense.
    #[error("profile {name}: {what}")]
    Invalid {
        /// The profile's name.
        name: String,
        /// What is wrong.
        what: String,
    },
}

impl Profile {
    /// Parses and checks a YAML profile.
    pub fn from_yaml(text: &str) -> Result<Profile, ProfileError> {
        let p: Profile = yaml_serde::from_str(text)?;
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), ProfileError> {
        let bad = |what: &str| {
            Err(ProfileError::Invalid {
                name: self.name.clone(),
                what: what.into(),
            })
        };
        if self.line_type != LineType::Direct {
            if !self.dial.contains("{number}") {
                return bad("dial template must contain {number}");
            }
            let at = |s: &str| s.trim().to_ascii_uppercase().starts_with("AT");
            if !at(&self.reset) || !self.init.iter().all(|s| at(s)) {
                return bad("reset and init commands must start with AT");
            }
        }
        if self.answer == (AnswerSpec::OnRing { on_ring: 0 }) {
            return bad("on-ring counts from 1");
        }
        if self.baud == 0 {
            return bad("baud must be positive");
        }
        if let Some(isdn) = &self.isdn {
            if !(1..=30).contains(&isdn.b_channels) {
                return bad("b_channels must be 1..=30");
            }
        }
        Ok(())
    }

    /// The modem-control configuration for this profile.
    pub fn control_config(&self) -> ControlConfig {
        let d = ControlConfig::default();
        let t = &self.timeouts;
        let ms = |v: Option<u64>, def: Duration| v.map(Duration::from_millis).unwrap_or(def);
        let s = |v: Option<u64>, def: Duration| v.map(Duration::from_secs).unwrap_or(def);
        let msn = self
            .isdn
            .as_ref()
            .and_then(|i| i.msn.clone())
            .unwrap_or_default();
        ControlConfig {
            reset: self.reset.clone(),
            init: self.init.iter().map(|c| c.replace("{msn}", &msn)).collect(),
            caller_id: self.caller_id.clone(),
            answer: self.answer.into(),
            dial: self.dial.clone(),
            hangup: self.hangup,
            isdn: self.line_type == LineType::Isdn,
            command_timeout: ms(t.command_ms, d.command_timeout),
            answer_timeout: s(t.answer_s, d.answer_timeout),
            dial_timeout: s(t.dial_s, d.dial_timeout),
            ring_gap: s(t.ring_gap_s, d.ring_gap),
            guard: ms(t.guard_ms, d.guard),
            dtr_drop: ms(t.dtr_drop_ms, d.dtr_drop),
            backoff_min: s(t.backoff_min_s, d.backoff_min),
            backoff_max: s(t.backoff_max_s, d.backoff_max),
            out_of_service_after: d.out_of_service_after,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const MINIMAL: &str = "name: test\ninit: [\"AT&F\"]\n";

    #[test]
    fn defaults() {
        let p = Profile::from_yaml(MINIMAL).unwrap();
        assert_eq!(p.line_type, LineType::Analog);
        assert_eq!(p.baud, 115_200);
        let c = p.control_config();
        assert_eq!(c.reset, "ATZ");
        assert_eq!(c.answer, AnswerMode::OnRing(1));
        assert_eq!(c.hangup, HangupMethod::Dtr);
        assert!(!c.isdn);
    }

    #[test]
    fn answer_modes_and_isdn() {
        let p = Profile::from_yaml(
            "name: ta\ntype: isdn\nanswer: {on-ring: 2}\ninit: [\"AT&E{msn}\"]\n\
             isdn: {msn: \"4711\"}\nhangup: escape\ntimeouts: {guard_ms: 1500}\n",
        )
        .unwrap();
        let c = p.control_config();
        assert_eq!(c.answer, AnswerMode::OnRing(2));
        assert_eq!(c.init, vec!["AT&E4711".to_string()]);
        assert!(c.isdn);
        assert_eq!(c.guard, Duration::from_millis(1500));
        assert_eq!(p.isdn.unwrap().b_channels, 2);
        let auto = Profile::from_yaml("name: a\nanswer: auto\n").unwrap();
        assert_eq!(auto.control_config().answer, AnswerMode::Auto);
        let ext = Profile::from_yaml("name: a\nanswer: external\n").unwrap();
        assert_eq!(ext.control_config().answer, AnswerMode::External);
        assert!(Profile::from_yaml("name: a\nanswer: sometimes\n").is_err());
    }

    #[test]
    fn rejects_typos_and_nonsense() {
        assert!(matches!(
            Profile::from_yaml("name: x\ninti: [\"ATZ\"]\n"),
            Err(ProfileError::Yaml(_))
        ));
        assert!(matches!(
            Profile::from_yaml("name: x\ntimeouts: {comand_ms: 5}\n"),
            Err(ProfileError::Yaml(_))
        ));
        assert!(matches!(
            Profile::from_yaml("name: x\ndial: \"ATDT\"\n"),
            Err(ProfileError::Invalid { .. })
        ));
        assert!(matches!(
            Profile::from_yaml("name: x\nanswer: {on-ring: 0}\n"),
            Err(ProfileError::Invalid { .. })
        ));
        assert!(matches!(
            Profile::from_yaml("name: x\ninit: [\"&F\"]\n"),
            Err(ProfileError::Invalid { .. })
        ));
    }

    /// Every shipped profile in hardware/ loads.
    #[test]
    fn shipped_profiles_load() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let p = Profile::from_yaml(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                assert!(!p.notes.is_empty(), "{path:?} has notes");
                n += 1;
            }
        }
        assert!(n >= 6, "{n} profiles");
    }
}
