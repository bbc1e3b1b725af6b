//! A Hayes-compatible AT command interpreter: the soft-modem's brain (sans-IO).
//!
//! [`Hayes`] is one modem as seen from its DTE (the computer on the serial side). It takes the
//! DTE's bytes with [`Hayes::handle_dte`], events from the telephone line (an incoming call, the
//! far end answering, carrier loss) through the `line_*` methods, and time through
//! [`Hayes::handle_timeout`]. It produces bytes for the DTE ([`Hayes::poll_dte`]), payload for
//! the line ([`Hayes::poll_line`]), line actions ([`Hayes::poll_event`]: dial, answer, hang up)
//! and its next deadline ([`Hayes::poll_timeout`]). It never reads a clock.
//!
//! Implemented: `AT`, `ATZ`, `AT&F`, `E0/1`, `V0/1`, `Q0/1`, `X0-4`, `I0-9`, `Sn=v`, `Sn?`, `Sn`
//! (select) + `=v`/`?`, `D`/`DT`/`DP`/`DL` (modifiers `, W @ ! ; P T` ignored), `A`, `H0/1`,
//! `O`, `A/`, `&C`, `&D`, `&K`, `&V`, `+VCID=n`/`#CID=n` (caller-ID presentation), `L`/`M`
//! (speaker, accepted), and for the ISDN TA personality `&E<msn>` (isdn4linux MSN/EAZ).
//! Anything else answers `ERROR`; a command line longer than [`MAX_LINE`] is discarded up to its
//! CR and answers `ERROR`. Memory is bounded: the command buffer never exceeds [`MAX_LINE`].
//!
//! The `+++` escape follows the Hayes guard-time rule: the escape character (S2) three times,
//! with at least the guard time (S12, in 1/50 s) of silence before the first, less than the
//! guard time between them, and the guard time of silence after the third. Only then does the
//! modem go to online-command mode and say `OK`; the `+` characters themselves are sent to the
//! line like any other data.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::result::{CallerId, NumericCode};

/// The longest command line kept (after `AT`); longer lines answer `ERROR`.
pub const MAX_LINE: usize = 255;
/// Information text (`ATI`, `AT&V`, `ATSn?`) one command line may produce before it is refused.
pub const MAX_INFO: usize = 1024;
/// S-registers `S0..S_REGISTERS-1` exist; others answer `ERROR`.
pub const S_REGISTERS: usize = 64;

/// Which kind of device the interpreter plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Personality {
    /// An analog V.34/V.90 data modem.
    #[default]
    Analog,
    /// An ISDN terminal adapter (isdn4linux dialect): `&E<msn>`, `RING/<msn>`,
    /// `CALLER NUMBER:`, `CONNECT 64000/X.75`.
    IsdnTa,
}

/// Fixed properties of one soft-modem (not changed by AT commands).
#[derive(Debug, Clone)]
pub struct HayesConfig {
    /// Analog modem or ISDN TA.
    pub personality: Personality,
    /// Time between two RINGs of an incoming call (a real line: 6 s).
    pub ring_interval: Duration,
}

impl Default for HayesConfig {
    fn default() -> Self {
        HayesConfig {
            personality: Personality::Analog,
            ring_interval: Duration::from_secs(6),
        }
    }
}

/// What the modem asks of the telephone line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `ATD`: go off hook and dial this number (digits, `*`, `#`, `+`; modifiers removed).
    Dial(String),
    /// `ATA` or auto-answer: pick up the ringing call.
    Answer,
    /// The modem went on hook: `ATH`, carrier wait expired, or a dial aborted by a keypress.
    Hangup,
    /// `ATH1`: off hook without a call (the line is busy to callers).
    OffHook,
}

/// Result codes, in the modem's own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResultCode {
    /// OK.
    Ok,
    /// CONNECT with the line speed.
    Connect(u32),
    /// RING.
    Ring,
    /// NO CARRIER.
    NoCarrier,
    /// ERROR.
    Error,
    /// NO DIALTONE.
    NoDialtone,
    /// BUSY.
    Busy,
    /// NO ANSWER.
    NoAnswer,
}

/// The interpreter's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On hook, taking commands.
    Command,
    /// Dialing, waiting for the far end (any DTE byte aborts).
    Dialing,
    /// Answering, waiting for carrier (any DTE byte aborts).
    Answering,
    /// Connected, passing data.
    Online,
    /// Connected, but taking commands after a `+++` escape.
    OnlineCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Guard time after the third escape character.
    Escape = 0,
    /// Next RING of an incoming call.
    Ring = 1,
    /// S7: wait for carrier while dialing or answering.
    Carrier = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    /// Waiting for `A`.
    Idle,
    /// Saw `A`, waiting for `T` or `/`.
    SawA,
    /// Collecting a command line.
    Line,
}

/// One Hayes modem (see the module documentation).
#[derive(Debug, Clone)]
pub struct Hayes {
    cfg: HayesConfig,
    s: [u8; S_REGISTERS],
    echo: bool,
    quiet: bool,
    verbose: bool,
    x: u8,
    amp_c: u8,
    amp_d: u8,
    amp_k: u8,
    vcid: u8,
    msn: String,
    selected: usize,
    mode: Mode,
    off_hook: bool,
    prefix: Prefix,
    line: Vec<u8>,
    overflow: bool,
    last: Vec<u8>,
    esc_count: u8,
    last_dte: Option<Instant>,
    last_plus: Option<Instant>,
    timers: [Option<Instant>; 3],
    ringing: Option<CallerId>,
    speed: u32,
    dte: Vec<u8>,
    to_line: Vec<u8>,
    events: VecDeque<Event>,
}

const S_DEFAULTS: [(usize, u8); 9] = [
    (0, 0),   // rings before auto-answer: 0 = never
    (1, 0),   // ring count
    (2, 43),  // escape character '+'
    (3, 13),  // command terminator CR
    (4, 10),  // response formatting LF
    (5, 8),   // backspace BS
    (7, 50),  // wait for carrier, seconds
    (10, 14), // carrier-loss delay, 1/10 s (accepted, not simulated)
    (12, 50), // escape guard time, 1/50 s
];

impl Default for Hayes {
    fn default() -> Self {
        Hayes::new(HayesConfig::default())
    }
}

impl Hayes {
    /// A modem in its factory state.
    pub fn new(cfg: HayesConfig) -> Self {
        let mut m = Hayes {
            cfg,
            s: [0; S_REGISTERS],
            echo: true,
            quiet: false,
            verbose: true,
            x: 4,
            amp_c: 1,
            amp_d: 2,
            amp_k: 3,
            vcid: 0,
            msn: String::new(),
            selected: 0,
            mode: Mode::Command,
            off_hook: false,
            prefix: Prefix::Idle,
            line: Vec::new(),
            overflow: false,
            last: Vec::new(),
            esc_count: 0,
            last_dte: None,
            last_plus: None,
            timers: [None; 3],
            ringing: None,
            speed: 0,
            dte: Vec::new(),
            to_line: Vec::new(),
            events: VecDeque::new(),
        };
        m.factory();
        m
    }

    fn factory(&mut self) {
        self.s = [0; S_REGISTERS];
        for (i, v) in S_DEFAULTS {
            if let Some(r) = self.s.get_mut(i) {
                *r = v;
            }
        }
        self.echo = true;
        self.quiet = false;
        self.verbose = true;
        self.x = 4;
        self.amp_c = 1;
        self.amp_d = 2;
        self.amp_k = 3;
        self.vcid = 0;
        self.selected = 0;
    }

    // ---- getters ---------------------------------------------------------------------------

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// S-register `n`, if it exists.
    pub fn s_register(&self, n: usize) -> Option<u8> {
        self.s.get(n).copied()
    }

    /// Whether a caller would find this line free (on hook, not in a call).
    pub fn is_idle(&self) -> bool {
        self.mode == Mode::Command && !self.off_hook
    }

    /// Whether an incoming call is ringing.
    pub fn is_ringing(&self) -> bool {
        self.ringing.is_some()
    }

    /// The escape guard time (S12, 1/50 s units).
    pub fn guard_time(&self) -> Duration {
        Duration::from_millis(u64::from(self.reg(12)) * 20)
    }

    /// The MSN set with `AT&E` (ISDN TA), empty if none.
    pub fn msn(&self) -> &str {
        &self.msn
    }

    /// The configured personality.
    pub fn personality(&self) -> Personality {
        self.cfg.personality
    }

    fn reg(&self, n: usize) -> u8 {
        self.s.get(n).copied().unwrap_or(0)
    }

    // ---- outputs ---------------------------------------------------------------------------

    /// Bytes for the DTE (echo, result codes, data from the line), if any.
    #[must_use]
    pub fn poll_dte(&mut self) -> Option<Vec<u8>> {
        (!self.dte.is_empty()).then(|| std::mem::take(&mut self.dte))
    }

    /// Payload for the telephone line (online data), if any.
    #[must_use]
    pub fn poll_line(&mut self) -> Option<Vec<u8>> {
        (!self.to_line.is_empty()).then(|| std::mem::take(&mut self.to_line))
    }

    /// The next line action, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline at which [`Hayes::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    // ---- inputs from the line --------------------------------------------------------------

    /// A caller rings this modem. Returns `false` (the caller hears BUSY) unless the modem is
    /// idle. Shows RING now and every ring interval, then caller ID after the first RING when
    /// enabled (`+VCID`), and answers by itself after S0 rings when S0 > 0.
    pub fn line_ring(&mut self, now: Instant, caller: CallerId) -> bool {
        if !self.is_idle() || self.ringing.is_some() {
            return false;
        }
        self.ringing = Some(caller);
        self.set_reg(1, 0);
        self.ring(now);
        true
    }

    /// The caller gave up before this modem answered.
    pub fn line_ring_stopped(&mut self) {
        self.ringing = None;
        self.set_reg(1, 0);
        self.set_timer(Timer::Ring, None);
    }

    /// The call is established at `speed` bit/s: from dialing or answering to online.
    pub fn line_connected(&mut self, speed: u32) {
        if matches!(self.mode, Mode::Dialing | Mode::Answering) {
            self.mode = Mode::Online;
            self.speed = speed;
            self.set_timer(Timer::Carrier, None);
            self.last_dte = None;
            self.esc_count = 0;
            self.result(ResultCode::Connect(speed));
        }
    }

    /// The far end is busy (only meaningful while dialing).
    pub fn line_busy(&mut self) {
        self.fail_dial(ResultCode::Busy);
    }

    /// There is no dial tone (only meaningful while dialing).
    pub fn line_no_dialtone(&mut self) {
        self.fail_dial(ResultCode::NoDialtone);
    }

    fn fail_dial(&mut self, code: ResultCode) {
        if self.mode == Mode::Dialing {
            self.enter_command_mode();
            self.result(code);
        }
    }

    /// Carrier lost (the far end hung up or the line dropped): back to command mode with
    /// NO CARRIER.
    pub fn line_carrier_lost(&mut self) {
        if self.mode != Mode::Command {
            self.enter_command_mode();
            self.result(ResultCode::NoCarrier);
        }
    }

    /// Data from the far end. Delivered to the DTE only when online.
    pub fn line_data(&mut self, data: &[u8]) {
        if self.mode == Mode::Online {
            self.dte.extend_from_slice(data);
        }
    }

    // ---- inputs from the DTE ---------------------------------------------------------------

    /// Bytes typed or sent by the DTE at `now`.
    pub fn handle_dte(&mut self, now: Instant, data: &[u8]) {
        for &b in data {
            self.dte_byte(now, b);
        }
    }

    /// Runs timers that are due at `now`. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.due(Timer::Escape, now) && self.mode == Mode::Online {
            self.esc_count = 0;
            self.mode = Mode::OnlineCommand;
            self.prefix = Prefix::Idle;
            self.result(ResultCode::Ok);
        }
        if self.due(Timer::Carrier, now) {
            match self.mode {
                Mode::Dialing => {
                    self.enter_command_mode();
                    self.events.push_back(Event::Hangup);
                    let code = if self.x >= 3 {
                        ResultCode::NoAnswer
                    } else {
                        ResultCode::NoCarrier
                    };
                    self.result(code);
                }
                Mode::Answering => {
                    self.enter_command_mode();
                    self.events.push_back(Event::Hangup);
                    self.result(ResultCode::NoCarrier);
                }
                _ => {}
            }
        }
        if self.due(Timer::Ring, now) && self.ringing.is_some() && self.mode == Mode::Command {
            self.ring(now);
        }
    }

    fn due(&mut self, t: Timer, now: Instant) -> bool {
        match self.timers.get(t as usize).copied().flatten() {
            Some(at) if at <= now => {
                self.set_timer(t, None);
                true
            }
            _ => false,
        }
    }

    fn set_timer(&mut self, t: Timer, at: Option<Instant>) {
        if let Some(slot) = self.timers.get_mut(t as usize) {
            *slot = at;
        }
    }

    fn dte_byte(&mut self, now: Instant, b: u8) {
        match self.mode {
            Mode::Online => self.online_byte(now, b),
            Mode::Dialing | Mode::Answering => {
                // A keypress aborts the call attempt (Hayes behaviour).
                self.enter_command_mode();
                self.events.push_back(Event::Hangup);
                self.result(ResultCode::NoCarrier);
            }
            Mode::Command | Mode::OnlineCommand => self.command_byte(now, b),
        }
    }

    fn online_byte(&mut self, now: Instant, b: u8) {
        let guard = self.guard_time();
        let esc = self.reg(2);
        let quiet_before = self
            .last_dte
            .map_or(true, |t| now.saturating_duration_since(t) >= guard);
        self.last_dte = Some(now);
        self.to_line.push(b);
        self.set_timer(Timer::Escape, None);
        if esc > 127 || b != esc {
            self.esc_count = 0;
            return;
        }
        self.esc_count = match self.esc_count {
            0 if quiet_before => 1,
            1 | 2
                if self
                    .last_plus
                    .is_some_and(|t| now.saturating_duration_since(t) < guard) =>
            {
                self.esc_count + 1
            }
            _ => 0,
        };
        self.last_plus = Some(now);
        if self.esc_count == 3 {
            self.set_timer(Timer::Escape, Some(now + guard));
        }
    }

    fn command_byte(&mut self, now: Instant, b: u8) {
        let cr = self.reg(3);
        let bs = self.reg(5);
        if self.echo {
            self.dte.push(b);
            if b == bs && self.prefix == Prefix::Line {
                self.dte.extend_from_slice(b" \x08");
            }
        }
        match self.prefix {
            Prefix::Idle => {
                if b.eq_ignore_ascii_case(&b'A') {
                    self.prefix = Prefix::SawA;
                }
            }
            Prefix::SawA => {
                if b.eq_ignore_ascii_case(&b'T') {
                    self.prefix = Prefix::Line;
                    self.line.clear();
                    self.overflow = false;
                } else if b == b'/' {
                    self.prefix = Prefix::Idle;
                    if self.echo {
                        self.dte.extend_from_slice(b"\r");
                    }
                    let last = std::mem::take(&mut self.last);
                    self.execute(now, &last);
                    if self.last.is_empty() {
                        self.last = last;
                    }
                } else if !b.eq_ignore_ascii_case(&b'A') {
                    self.prefix = Prefix::Idle;
                }
            }
            Prefix::Line => {
                if b == cr {
                    self.prefix = Prefix::Idle;
                    if std::mem::take(&mut self.overflow) {
                        self.line.clear();
                        self.result(ResultCode::Error);
                    } else {
                        let line = std::mem::take(&mut self.line);
                        self.execute(now, &line);
                        self.last = line;
                    }
                } else if b == bs {
                    self.line.pop();
                } else if b < 0x20 || b == 0x7f {
                    // Other control characters are ignored.
                } else if self.line.len() >= MAX_LINE {
                    self.overflow = true;
                } else {
                    self.line.push(b);
                }
            }
        }
    }

    // ---- command execution -----------------------------------------------------------------

    fn execute(&mut self, now: Instant, line: &[u8]) {
        let mut i = 0usize;
        let num = |i: &mut usize| -> Option<u32> {
            let start = *i;
            let mut v: u32 = 0;
            while let Some(d) = line.get(*i).filter(|c| c.is_ascii_digit()) {
                v = v.saturating_mul(10).saturating_add(u32::from(d - b'0'));
                *i += 1;
            }
            (*i > start).then_some(v)
        };
        let mut infos: Vec<String> = Vec::new();
        while let Some(&c) = line.get(i) {
            i += 1;
            let c = c.to_ascii_uppercase();
            // Bounded output per command line: a line of 100 `&V`s is refused, not obeyed.
            if infos.iter().map(String::len).sum::<usize>() > MAX_INFO {
                self.finish(false, infos);
                return;
            }
            let ok = match c {
                b' ' => true,
                b'E' => flag(num(&mut i), &mut self.echo),
                b'V' => flag(num(&mut i), &mut self.verbose),
                b'Q' => {
                    let mut quiet = self.quiet;
                    let ok = flag(num(&mut i), &mut quiet);
                    self.quiet = quiet;
                    ok
                }
                b'X' => set_max(num(&mut i), 4, &mut self.x),
                b'L' => num(&mut i).unwrap_or(0) <= 3,
                b'M' => num(&mut i).unwrap_or(0) <= 3,
                b'Z' => {
                    let _ = num(&mut i);
                    self.factory();
                    true
                }
                b'I' => match self.info(num(&mut i).unwrap_or(0)) {
                    Some(text) => {
                        infos.push(text);
                        true
                    }
                    None => false,
                },
                b'S' => {
                    if let Some(n) = num(&mut i) {
                        match usize::try_from(n).ok().filter(|&n| n < S_REGISTERS) {
                            Some(n) => {
                                self.selected = n;
                                self.s_access(line, &mut i, &mut infos)
                            }
                            None => false,
                        }
                    } else {
                        false
                    }
                }
                b'=' | b'?' => {
                    i -= 1;
                    self.s_access(line, &mut i, &mut infos)
                }
                b'H' => match num(&mut i).unwrap_or(0) {
                    0 => {
                        self.hang_up();
                        true
                    }
                    1 if self.mode == Mode::Command => {
                        self.off_hook = true;
                        self.events.push_back(Event::OffHook);
                        true
                    }
                    _ => false,
                },
                b'O' => {
                    let _ = num(&mut i);
                    if self.mode == Mode::OnlineCommand {
                        self.flush_infos(&mut infos);
                        self.mode = Mode::Online;
                        self.last_dte = Some(now);
                        self.esc_count = 0;
                        self.result(ResultCode::Connect(self.speed));
                    } else {
                        self.flush_infos(&mut infos);
                        self.result(ResultCode::NoCarrier);
                    }
                    return;
                }
                b'A' => {
                    if self.mode != Mode::Command {
                        false
                    } else {
                        self.flush_infos(&mut infos);
                        self.answer(now);
                        return;
                    }
                }
                b'D' => {
                    if self.mode != Mode::Command {
                        false
                    } else {
                        let rest = line.get(i..).unwrap_or_default();
                        self.flush_infos(&mut infos);
                        self.dial(now, rest);
                        return;
                    }
                }
                b'&' => {
                    let Some(&sub) = line.get(i) else {
                        self.finish(false, infos);
                        return;
                    };
                    i += 1;
                    match sub.to_ascii_uppercase() {
                        b'F' => {
                            let _ = num(&mut i);
                            self.factory();
                            true
                        }
                        b'C' => set_max(num(&mut i), 1, &mut self.amp_c),
                        b'D' => set_max(num(&mut i), 3, &mut self.amp_d),
                        b'K' => set_max(num(&mut i), 6, &mut self.amp_k),
                        b'V' => {
                            let _ = num(&mut i);
                            infos.push(self.profile_text());
                            true
                        }
                        b'W' | b'Y' => num(&mut i).unwrap_or(0) <= 1,
                        b'E' if self.cfg.personality == Personality::IsdnTa => {
                            let start = i;
                            while line.get(i).is_some_and(|c| c.is_ascii_digit()) {
                                i += 1;
                            }
                            let msn = line.get(start..i).unwrap_or_default();
                            self.msn = String::from_utf8_lossy(msn).into_owned();
                            true
                        }
                        _ => false,
                    }
                }
                b'+' | b'#' => {
                    // Extended command: up to ';' or the end of the line.
                    let start = i;
                    while line.get(i).is_some_and(|&c| c != b';') {
                        i += 1;
                    }
                    let ext = line.get(start..i).unwrap_or_default().to_ascii_uppercase();
                    if line.get(i) == Some(&b';') {
                        i += 1;
                    }
                    self.extended(c, &ext, &mut infos)
                }
                _ => false,
            };
            if !ok {
                self.finish(false, infos);
                return;
            }
        }
        self.finish(true, infos);
    }

    fn s_access(&mut self, line: &[u8], i: &mut usize, infos: &mut Vec<String>) -> bool {
        match line.get(*i) {
            Some(b'=') => {
                *i += 1;
                let start = *i;
                let mut v: u32 = 0;
                while let Some(d) = line.get(*i).filter(|c| c.is_ascii_digit()) {
                    v = v.saturating_mul(10).saturating_add(u32::from(d - b'0'));
                    *i += 1;
                }
                if *i == start {
                    v = 0; // "ATS0=" sets 0, as most modems do
                }
                match u8::try_from(v) {
                    Ok(v) => {
                        self.set_reg(self.selected, v);
                        true
                    }
                    Err(_) => false,
                }
            }
            Some(b'?') => {
                *i += 1;
                infos.push(format!("{:03}", self.reg(self.selected)));
                true
            }
            _ => true,
        }
    }

    fn extended(&mut self, lead: u8, ext: &[u8], infos: &mut Vec<String>) -> bool {
        let (name, arg) = match ext.iter().position(|&c| c == b'=' || c == b'?') {
            Some(p) => (
                ext.get(..p).unwrap_or_default(),
                ext.get(p..).unwrap_or_default(),
            ),
            None => (ext, &b""[..]),
        };
        match (lead, name) {
            (b'+', b"VCID") | (b'#', b"CID") | (b'+', b"CID") => match arg {
                b"?" => {
                    infos.push(self.vcid.to_string());
                    true
                }
                b"=?" => {
                    infos.push("(0-2)".into());
                    true
                }
                [b'=', rest @ ..] => match rest {
                    b"0" | b"" => {
                        self.vcid = 0;
                        true
                    }
                    b"1" => {
                        self.vcid = 1;
                        true
                    }
                    b"2" => {
                        self.vcid = 2;
                        true
                    }
                    _ => false,
                },
                _ => false,
            },
            (b'+', b"GMI") => {
                infos.push("pptp-nas".into());
                true
            }
            (b'+', b"GMM") => {
                infos.push(self.model().into());
                true
            }
            _ => false,
        }
    }

    fn model(&self) -> &'static str {
        match self.cfg.personality {
            Personality::Analog => "pptp-nas soft-modem V.90",
            Personality::IsdnTa => "pptp-nas soft-modem ISDN TA",
        }
    }

    fn info(&self, n: u32) -> Option<String> {
        Some(match n {
            0 => match self.cfg.personality {
                Personality::Analog => "56000".into(),
                Personality::IsdnTa => "64000".into(),
            },
            1 => "000".into(),
            2 => "OK".into(),
            3 => self.model().into(),
            4 => format!("pptp-nas {}", env!("CARGO_PKG_VERSION")),
            5..=7 => "OK".into(),
            _ => return None,
        })
    }

    fn profile_text(&self) -> String {
        format!(
            "E{} Q{} V{} X{} &C{} &D{} &K{} S00:{:03} S01:{:03} S02:{:03} S03:{:03} S04:{:03} \
             S05:{:03} S07:{:03} S12:{:03}",
            u8::from(self.echo),
            u8::from(self.quiet),
            u8::from(self.verbose),
            self.x,
            self.amp_c,
            self.amp_d,
            self.amp_k,
            self.reg(0),
            self.reg(1),
            self.reg(2),
            self.reg(3),
            self.reg(4),
            self.reg(5),
            self.reg(7),
            self.reg(12),
        )
    }

    fn flush_infos(&mut self, infos: &mut Vec<String>) {
        for text in infos.drain(..) {
            self.info_line(&text);
        }
    }

    fn finish(&mut self, ok: bool, mut infos: Vec<String>) {
        self.flush_infos(&mut infos);
        self.result(if ok {
            ResultCode::Ok
        } else {
            ResultCode::Error
        });
    }

    fn set_reg(&mut self, n: usize, v: u8) {
        if let Some(r) = self.s.get_mut(n) {
            *r = v;
        }
    }

    // ---- call handling ---------------------------------------------------------------------

    fn dial(&mut self, now: Instant, rest: &[u8]) {
        let mut number = String::new();
        let mut redial = false;
        for &c in rest {
            match c.to_ascii_uppercase() {
                d @ (b'0'..=b'9' | b'*' | b'#' | b'+' | b'A'..=b'D') if number.len() < 40 => {
                    number.push(char::from(d))
                }
                b'L' if number.is_empty() => redial = true,
                // T/P (tone/pulse), ',' (pause), 'W' (wait for dial tone), '@' (quiet answer),
                // '!' (flash), ';' (stay in command mode), S (stored number), spaces, '-', '(',
                // ')': accepted and ignored.
                _ => {}
            }
        }
        if redial {
            number = self.last_number();
        }
        self.ringing = None;
        self.set_timer(Timer::Ring, None);
        self.mode = Mode::Dialing;
        self.set_timer(Timer::Carrier, Some(now + self.carrier_wait()));
        self.events.push_back(Event::Dial(number));
    }

    fn last_number(&self) -> String {
        // The last command line, if it was a dial, holds the number.
        let upper = self.last.to_ascii_uppercase();
        match upper.iter().position(|&c| c == b'D') {
            Some(p) => upper
                .get(p + 1..)
                .unwrap_or_default()
                .iter()
                .filter(|c| c.is_ascii_digit() || matches!(c, b'*' | b'#' | b'+'))
                .map(|&c| char::from(c))
                .collect(),
            None => String::new(),
        }
    }

    fn carrier_wait(&self) -> Duration {
        Duration::from_secs(u64::from(self.reg(7).max(1)))
    }

    fn answer(&mut self, now: Instant) {
        self.set_timer(Timer::Ring, None);
        self.mode = Mode::Answering;
        self.off_hook = false;
        self.set_timer(Timer::Carrier, Some(now + self.carrier_wait()));
        self.events.push_back(Event::Answer);
    }

    fn hang_up(&mut self) {
        let had_call = self.mode != Mode::Command || self.off_hook;
        self.enter_command_mode();
        self.off_hook = false;
        if had_call {
            self.events.push_back(Event::Hangup);
        }
    }

    fn enter_command_mode(&mut self) {
        self.mode = Mode::Command;
        self.timers = [None; 3];
        self.ringing = None;
        self.esc_count = 0;
        self.speed = 0;
        self.prefix = Prefix::Idle;
        self.set_reg(1, 0);
    }

    fn ring(&mut self, now: Instant) {
        let count = self.reg(1).saturating_add(1);
        self.set_reg(1, count);
        match self.cfg.personality {
            Personality::IsdnTa if !self.msn.is_empty() && self.verbose && !self.quiet => {
                let line = format!("RING/{}", self.msn);
                self.info_line(&line);
            }
            _ => self.result(ResultCode::Ring),
        }
        if count == 1 {
            self.caller_id();
        }
        self.set_timer(Timer::Ring, Some(now + self.cfg.ring_interval));
        let s0 = self.reg(0);
        if s0 > 0 && count >= s0 {
            self.answer(now);
        }
    }

    fn caller_id(&mut self) {
        let Some(cid) = self.ringing.clone() else {
            return;
        };
        if cid.is_empty() || self.quiet {
            return;
        }
        match (self.cfg.personality, self.vcid) {
            (Personality::IsdnTa, _) => {
                if let Some(n) = &cid.number {
                    let line = format!("CALLER NUMBER: {n}");
                    self.info_line(&line);
                }
            }
            (_, 1) => {
                for line in cid.formatted_lines() {
                    self.info_line(&line);
                }
            }
            (_, 2) => {
                let hex: String = cid.to_mdmf().iter().map(|b| format!("{b:02X}")).collect();
                self.info_line(&hex);
            }
            _ => {}
        }
    }

    // ---- output formatting -----------------------------------------------------------------

    fn info_line(&mut self, text: &str) {
        let (cr, lf) = (self.reg(3), self.reg(4));
        if self.verbose {
            self.dte.extend_from_slice(&[cr, lf]);
        }
        self.dte.extend_from_slice(text.as_bytes());
        self.dte.extend_from_slice(&[cr, lf]);
    }

    fn result(&mut self, code: ResultCode) {
        if self.quiet {
            return;
        }
        // ATX levels: X0 plain CONNECT, no BUSY/NO DIALTONE (NO CARRIER instead); X1 adds the
        // speed; X2 adds NO DIALTONE; X3 adds BUSY; X4 everything.
        let code = match code {
            ResultCode::NoDialtone if self.x < 2 || self.x == 3 => ResultCode::NoCarrier,
            ResultCode::Busy if self.x < 3 => ResultCode::NoCarrier,
            other => other,
        };
        let (cr, lf) = (self.reg(3), self.reg(4));
        if self.verbose {
            let text = match code {
                ResultCode::Ok => "OK".to_string(),
                ResultCode::Connect(speed) if self.x == 0 || speed == 0 => "CONNECT".to_string(),
                ResultCode::Connect(speed) => match self.cfg.personality {
                    Personality::Analog => format!("CONNECT {speed}"),
                    Personality::IsdnTa => format!("CONNECT {speed}/X.75"),
                },
                ResultCode::Ring => "RING".into(),
                ResultCode::NoCarrier => "NO CARRIER".into(),
                ResultCode::Error => "ERROR".into(),
                ResultCode::NoDialtone => "NO DIALTONE".into(),
                ResultCode::Busy => "BUSY".into(),
                ResultCode::NoAnswer => "NO ANSWER".into(),
            };
            self.dte.extend_from_slice(&[cr, lf]);
            self.dte.extend_from_slice(text.as_bytes());
            self.dte.extend_from_slice(&[cr, lf]);
        } else {
            let n: u8 = match code {
                ResultCode::Ok => 0,
                ResultCode::Connect(speed) if self.x == 0 => {
                    let _ = speed;
                    1
                }
                ResultCode::Connect(speed) => NumericCode::for_connect(speed).into(),
                ResultCode::Ring => 2,
                ResultCode::NoCarrier => 3,
                ResultCode::Error => 4,
                ResultCode::NoDialtone => 6,
                ResultCode::Busy => 7,
                ResultCode::NoAnswer => 8,
            };
            self.dte.extend_from_slice(n.to_string().as_bytes());
            self.dte.push(cr);
        }
    }
}

fn flag(v: Option<u32>, slot: &mut bool) -> bool {
    match v.unwrap_or(0) {
        0 => *slot = false,
        1 => *slot = true,
        _ => return false,
    }
    true
}

fn set_max(v: Option<u32>, max: u8, slot: &mut u8) -> bool {
    match u8::try_from(v.unwrap_or(0)) {
        Ok(v) if v <= max => {
            *slot = v;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> Instant {
        Instant::now()
    }

    fn out(m: &mut Hayes) -> String {
        String::from_utf8_lossy(&m.poll_dte().unwrap_or_default()).into_owned()
    }

    fn cmd(m: &mut Hayes, now: Instant, s: &str) -> String {
        m.handle_dte(now, s.as_bytes());
        m.handle_dte(now, b"\r");
        out(m)
    }

    fn quiet_echo() -> Hayes {
        let mut m = Hayes::default();
        let now = t0();
        cmd(&mut m, now, "ATE0");
        m
    }

    #[test]
    fn at_ok_with_echo() {
        let mut m = Hayes::default();
        assert_eq!(cmd(&mut m, t0(), "AT"), "AT\r\r\nOK\r\n");
        assert_eq!(cmd(&mut m, t0(), "ATE0"), "ATE0\r\r\nOK\r\n");
        assert_eq!(cmd(&mut m, t0(), "at"), "\r\nOK\r\n");
    }

    #[test]
    fn unknown_commands_error() {
        let mut m = quiet_echo();
        let now = t0();
        for bad in [
            "ATJ", "ATE7", "ATX5", "AT&Q", "ATS99=1", "ATS0=256", "AT+FOO", "AT&",
        ] {
            assert_eq!(cmd(&mut m, now, bad), "\r\nERROR\r\n", "{bad}");
        }
        // A failing command stops the line: S0 is not set.
        assert_eq!(cmd(&mut m, now, "ATJS0=2"), "\r\nERROR\r\n");
        assert_eq!(m.s_register(0), Some(0));
    }

    #[test]
    fn numeric_and_quiet() {
        let mut m = quiet_echo();
        let now = t0();
        assert_eq!(cmd(&mut m, now, "ATV0"), "0\r");
        assert_eq!(cmd(&mut m, now, "ATJ"), "4\r");
        assert_eq!(cmd(&mut m, now, "ATQ1"), "");
        assert_eq!(cmd(&mut m, now, "ATJ"), "");
        assert_eq!(cmd(&mut m, now, "ATQ0V1"), "\r\nOK\r\n");
        assert_eq!(cmd(&mut m, now, "ATZ"), "\r\nOK\r\n");
        // ATZ restored echo.
        assert_eq!(cmd(&mut m, now, "AT"), "AT\r\r\nOK\r\n");
    }

    #[test]
    fn s_registers() {
        let mut m = quiet_echo();
        let now = t0();
        assert_eq!(cmd(&mut m, now, "ATS0=2S12=10"), "\r\nOK\r\n");
        assert_eq!(m.s_register(0), Some(2));
        assert_eq!(cmd(&mut m, now, "ATS0?"), "\r\n002\r\n\r\nOK\r\n");
        assert_eq!(cmd(&mut m, now, "ATS7 ?"), "\r\n050\r\n\r\nOK\r\n");
        assert_eq!(cmd(&mut m, now, "ATS7=30"), "\r\nOK\r\n");
        assert_eq!(cmd(&mut m, now, "ATS7?"), "\r\n030\r\n\r\nOK\r\n");
        assert_eq!(m.guard_time(), Duration::from_millis(200));
        assert_eq!(cmd(&mut m, now, "AT&F"), "\r\nOK\r\n");
        assert_eq!(m.s_register(0), Some(0));
        assert_eq!(cmd(&mut m, now, "ATS2?"), "ATS2?\r\r\n043\r\n\r\nOK\r\n");
    }

    #[test]
    fn info_and_ampersand() {
        let mut m = quiet_echo();
        let now = t0();
        assert_eq!(cmd(&mut m, now, "ATI0"), "\r\n56000\r\n\r\nOK\r\n");
        assert!(cmd(&mut m, now, "ATI3").contains("soft-modem"));
        assert_eq!(cmd(&mut m, now, "ATI9"), "\r\nERROR\r\n");
        assert_eq!(cmd(&mut m, now, "AT&C1&D2&K3"), "\r\nOK\r\n");
        assert_eq!(cmd(&mut m, now, "AT&D4"), "\r\nERROR\r\n");
        assert!(cmd(&mut m, now, "AT&V").contains("&D2"));
        assert_eq!(cmd(&mut m, now, "AT+VCID=1"), "\r\nOK\r\n");
        assert_eq!(cmd(&mut m, now, "AT#CID=2"), "\r\nOK\r\n");
        assert_eq!(cmd(&mut m, now, "AT+VCID?"), "\r\n2\r\n\r\nOK\r\n");
        assert_eq!(cmd(&mut m, now, "AT+VCID=3"), "\r\nERROR\r\n");
        assert_eq!(cmd(&mut m, now, "ATL2M1"), "\r\nOK\r\n");
    }

    #[test]
    fn info_output_is_bounded() {
        let mut m = quiet_echo();
        let long = format!("AT{}", "&V".repeat(100));
        assert!(cmd(&mut m, t0(), &long).ends_with("\r\nERROR\r\n"));
        assert!(cmd(&mut m, t0(), &long).len() < 2 * MAX_INFO);
    }

    #[test]
    fn backspace_and_repeat() {
        let mut m = quiet_echo();
        let now = t0();
        assert_eq!(cmd(&mut m, now, "ATS0=3\x082"), "\r\nOK\r\n");
        assert_eq!(m.s_register(0), Some(2));
        m.handle_dte(now, b"A/");
        assert_eq!(out(&mut m), "\r\nOK\r\n");
    }

    #[test]
    fn overlong_line_is_bounded_and_errors() {
        let mut m = quiet_echo();
        let now = t0();
        let long = format!("AT{}", "E".repeat(10_000));
        assert_eq!(cmd(&mut m, now, &long), "\r\nERROR\r\n");
        assert!(m.line.capacity() <= 4 * MAX_LINE);
        assert_eq!(cmd(&mut m, now, "AT"), "\r\nOK\r\n");
    }

    #[test]
    fn dial_connect_and_escape() {
        let mut m = quiet_echo();
        let now = t0();
        assert_eq!(cmd(&mut m, now, "ATS12=10"), "\r\nOK\r\n");
        assert_eq!(cmd(&mut m, now, "ATDT 555-1234,,W@!;"), "");
        assert_eq!(m.poll_event(), Some(Event::Dial("5551234".into())));
        assert_eq!(m.mode(), Mode::Dialing);
        m.line_connected(33600);
        assert_eq!(out(&mut m), "\r\nCONNECT 33600\r\n");
        // "+++" inside data with no pause: no escape.
        let t = now + Duration::from_millis(10);
        m.handle_dte(t, b"abc+++def");
        m.handle_timeout(t + Duration::from_secs(5));
        assert_eq!(m.mode(), Mode::Online);
        assert_eq!(m.poll_line().unwrap(), b"abc+++def");
        // "+++" right after data, then silence: still no escape (no guard before).
        let t = t + Duration::from_millis(50);
        m.handle_dte(t, b"+++");
        m.handle_timeout(t + Duration::from_secs(1));
        assert_eq!(m.mode(), Mode::Online);
        // Guard, +++, guard: escape.
        let t = t + Duration::from_secs(2);
        m.handle_dte(t, b"+");
        m.handle_dte(t + Duration::from_millis(50), b"++");
        assert_eq!(m.mode(), Mode::Online);
        let deadline = m.poll_timeout().unwrap();
        assert_eq!(deadline, t + Duration::from_millis(250));
        m.handle_timeout(deadline - Duration::from_millis(1));
        assert_eq!(m.mode(), Mode::Online, "early timeout is a no-op");
        m.handle_timeout(deadline);
        assert_eq!(m.mode(), Mode::OnlineCommand);
        assert_eq!(out(&mut m), "\r\nOK\r\n");
        assert_eq!(m.poll_line().unwrap(), b"++++++");
        // Data from the line is not shown in online-command mode.
        m.line_data(b"xyz");
        assert_eq!(cmd(&mut m, deadline, "ATO"), "\r\nCONNECT 33600\r\n");
        m.line_data(b"xyz");
        assert_eq!(out(&mut m), "xyz");
        // Escape again, then hang up.
        let t = deadline + Duration::from_secs(1);
        m.handle_dte(t, b"+++");
        m.handle_timeout(t + Duration::from_secs(1));
        assert_eq!(out(&mut m), "\r\nOK\r\n");
        assert_eq!(cmd(&mut m, t, "ATH0"), "\r\nOK\r\n");
        assert_eq!(m.poll_event(), Some(Event::Hangup));
        assert!(m.is_idle());
    }

    #[test]
    fn a_fourth_plus_cancels_the_escape() {
        let mut m = quiet_echo();
        let now = t0();
        cmd(&mut m, now, "ATD1");
        m.line_connected(9600);
        let _ = out(&mut m);
        let t = now + Duration::from_secs(3);
        m.handle_dte(t, b"++++");
        m.handle_timeout(t + Duration::from_secs(3));
        assert_eq!(m.mode(), Mode::Online);
    }

    #[test]
    fn dial_failures() {
        let mut m = quiet_echo();
        let now = t0();
        cmd(&mut m, now, "ATD1");
        m.line_busy();
        assert_eq!(out(&mut m), "\r\nBUSY\r\n");
        cmd(&mut m, now, "ATD1");
        m.line_no_dialtone();
        assert_eq!(out(&mut m), "\r\nNO DIALTONE\r\n");
        cmd(&mut m, now, "ATX0D1");
        m.line_busy();
        assert_eq!(out(&mut m), "\r\nNO CARRIER\r\n", "X0 has no BUSY");
        cmd(&mut m, now, "ATX4S7=5D1");
        assert_eq!(m.poll_timeout(), Some(now + Duration::from_secs(5)));
        m.handle_timeout(now + Duration::from_secs(5));
        assert_eq!(out(&mut m), "\r\nNO ANSWER\r\n");
        // A keypress aborts dialing.
        cmd(&mut m, now, "ATD1");
        m.handle_dte(now, b"x");
        assert_eq!(out(&mut m), "\r\nNO CARRIER\r\n");
        assert!(m.is_idle());
        let events: Vec<_> = std::iter::from_fn(|| m.poll_event()).collect();
        assert!(events.contains(&Event::Hangup));
        // ATDL redials the last number.
        cmd(&mut m, now, "ATD 0301234");
        m.line_busy();
        let _ = out(&mut m);
        let _: Vec<_> = std::iter::from_fn(|| m.poll_event()).collect();
        cmd(&mut m, now, "ATDL");
        assert_eq!(m.poll_event(), Some(Event::Dial("0301234".into())));
    }

    #[test]
    fn ring_caller_id_and_auto_answer() {
        let mut m = quiet_echo();
        let now = t0();
        assert_eq!(cmd(&mut m, now, "AT+VCID=1;S0=2"), "\r\nOK\r\n");
        let cid = CallerId {
            number: Some("5551234".into()),
            date: Some("1124".into()),
            time: Some("1030".into()),
            ..Default::default()
        };
        assert!(m.line_ring(now, cid.clone()));
        assert_eq!(
            out(&mut m),
            "\r\nRING\r\n\r\nDATE = 1124\r\n\r\nTIME = 1030\r\n\r\nNMBR = 5551234\r\n"
        );
        assert!(!m.line_ring(now, cid), "second caller gets busy");
        let next = m.poll_timeout().unwrap();
        assert_eq!(next, now + Duration::from_secs(6));
        m.handle_timeout(next);
        assert_eq!(out(&mut m), "\r\nRING\r\n");
        assert_eq!(m.poll_event(), Some(Event::Answer));
        assert_eq!(m.mode(), Mode::Answering);
        m.line_connected(52000);
        assert_eq!(out(&mut m), "\r\nCONNECT 52000\r\n");
    }

    #[test]
    fn manual_answer_and_ring_stop() {
        let mut m = quiet_echo();
        let now = t0();
        assert!(m.line_ring(now, CallerId::default()));
        assert_eq!(out(&mut m), "\r\nRING\r\n");
        m.line_ring_stopped();
        assert_eq!(m.poll_timeout(), None);
        assert!(m.line_ring(now, CallerId::default()));
        let _ = out(&mut m);
        assert_eq!(cmd(&mut m, now, "ATA"), "");
        assert_eq!(m.poll_event(), Some(Event::Answer));
        m.handle_timeout(now + Duration::from_secs(50));
        assert_eq!(out(&mut m), "\r\nNO CARRIER\r\n");
        assert_eq!(m.poll_event(), Some(Event::Hangup));
    }

    #[test]
    fn off_hook_is_busy() {
        let mut m = quiet_echo();
        let now = t0();
        cmd(&mut m, now, "ATH1");
        assert_eq!(m.poll_event(), Some(Event::OffHook));
        assert!(!m.line_ring(now, CallerId::default()));
        cmd(&mut m, now, "ATH0");
        assert!(m.line_ring(now, CallerId::default()));
    }

    #[test]
    fn isdn_personality() {
        let mut m = Hayes::new(HayesConfig {
            personality: Personality::IsdnTa,
            ..Default::default()
        });
        let now = t0();
        cmd(&mut m, now, "ATE0");
        assert_eq!(cmd(&mut m, now, "AT&E4711"), "\r\nOK\r\n");
        assert_eq!(m.msn(), "4711");
        let cid = CallerId {
            number: Some("0301234".into()),
            ..Default::default()
        };
        assert!(m.line_ring(now, cid));
        assert_eq!(
            out(&mut m),
            "\r\nRING/4711\r\n\r\nCALLER NUMBER: 0301234\r\n"
        );
        cmd(&mut m, now, "ATA");
        m.line_connected(64000);
        assert_eq!(out(&mut m), "\r\nCONNECT 64000/X.75\r\n");
        assert_eq!(cmd(&mut m, now, "ATI0"), "", "online: no command parsing");
    }

    #[test]
    fn numeric_connect() {
        let mut m = quiet_echo();
        let now = t0();
        cmd(&mut m, now, "ATV0D1");
        m.line_connected(2400);
        assert_eq!(out(&mut m), "10\r");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes and time steps in any mode never panic, and memory stays bounded.
        #[test]
        fn arbitrary_input_never_panics(
            chunks in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..300), 0u64..3000, 0u8..8), 0..40)
        ) {
            let mut m = Hayes::default();
            let mut now = Instant::now();
            for (bytes, step, line_event) in chunks {
                now += Duration::from_millis(step);
                match line_event {
                    0 => { let _ = m.line_ring(now, CallerId { number: Some("1".into()), ..Default::default() }); }
                    1 => m.line_connected(33600),
                    2 => m.line_carrier_lost(),
                    3 => m.line_data(&bytes),
                    4 => m.line_busy(),
                    _ => {}
                }
                m.handle_dte(now, &bytes);
                m.handle_timeout(now);
                let dte = m.poll_dte().unwrap_or_default();
                // Echo + results + info text + line data: linear in the input.
                prop_assert!(dte.len() <= (bytes.len() + 1) * (MAX_INFO + 512) * 2);
                let _ = m.poll_line();
                while m.poll_event().is_some() {}
                prop_assert!(m.line.len() <= MAX_LINE);
                prop_assert!(m.last.len() <= MAX_LINE);
            }
        }
    }
}
