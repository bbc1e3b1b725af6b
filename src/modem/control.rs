//! Modem control: driving a real modem or ISDN terminal adapter (sans-IO).
//!
//! [`ModemControl`] takes the modem's response lines ([`ModemControl::handle_line`]), the time
//! ([`ModemControl::handle_timeout`]) and commands from the PAC ([`ModemControl::answer`],
//! [`ModemControl::dial`], [`ModemControl::hangup`]) and produces [`Action`]s for the line
//! driver (AT strings to write, DTR changes), [`Event`]s for the PAC, and its next deadline.
//! The shell calls, after every input: `poll_transmit` until `None`, `poll_event` until `None`,
//! then re-arms its one timer to `poll_timeout` (STYLE habit 3).
//!
//! Life of a line:
//! ```text
//!  start ─> Init(reset, init..., caller-id) ──OK──> Idle ──RING──> Ringing ──(n-th RING: ATA)──> Answering
//!            │ no answer / ERROR                    │ dial()                                      │ CONNECT
//!            v                                      v                                             v
//!          Backoff ──retry──> Init               Dialing ──CONNECT──────────────────────────────> Online
//!          (OutOfService after N failures,          │ BUSY / NO CARRIER / NO DIALTONE / NO ANSWER    │ hangup() / carrier lost
//!           Recovered when init succeeds)           v                                             v
//!                                                CallFailed ─> Init                HangupDtr | HangupEscape ─> Init
//! ```
//! Every call, failed or not, ends with a full re-initialisation, so a modem left in a strange
//! state by one caller cannot hurt the next.

use std::time::{Duration, Instant};

use super::result::{CallerId, ConnectInfo, Response};

/// How calls are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum AnswerMode {
    /// The modem answers by itself (its init string sets S0); we wait for CONNECT.
    Auto,
    /// We send `ATA` on this RING (1 = the first).
    OnRing(u8),
    /// We wait for [`ModemControl::answer`] (the PAC answers after the PNS accepted the call).
    External,
}

/// How a call is hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HangupMethod {
    /// Drop DTR (the modem must be set to `&D2`); falls back to `Escape` if the line cannot.
    Dtr,
    /// Guard time, `+++`, guard time, `ATH0`.
    Escape,
}

/// The framing the PPTP layer is told about (RFC 2637 Framing Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Async HDLC from an analog modem.
    Async,
    /// Synchronous: an ISDN TA did the async-to-sync conversion (RFC 1618).
    Sync,
}

/// Which way a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Someone called us.
    Incoming,
    /// We dialed.
    Outgoing,
}

/// Everything [`ModemControl`] needs to know about one modem; usually from a profile.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Reset command, e.g. `ATZ`.
    pub reset: String,
    /// Init commands, each must answer OK, e.g. `AT&F E0 V1 Q0 X4 &C1 &D2 S0=0`.
    pub init: Vec<String>,
    /// Caller-ID enable command, e.g. `AT+VCID=1`; ERROR is tolerated (not every modem has it).
    pub caller_id: Option<String>,
    /// Answer policy.
    pub answer: AnswerMode,
    /// Dial command with `{number}` in it, e.g. `ATDT{number}`.
    pub dial: String,
    /// Hang-up method.
    pub hangup: HangupMethod,
    /// ISDN TA (sync framing, 64 kbit/s) rather than analog modem.
    pub isdn: bool,
    /// Longest wait for OK to a command.
    pub command_timeout: Duration,
    /// Longest wait for CONNECT after ATA.
    pub answer_timeout: Duration,
    /// Longest wait for a dial result.
    pub dial_timeout: Duration,
    /// No RING for this long ends an unanswered call ("ring stopped").
    pub ring_gap: Duration,
    /// Escape guard time (a little more than the modem's S12).
    pub guard: Duration,
    /// How long DTR stays low for a hang-up.
    pub dtr_drop: Duration,
    /// First retry delay after a failed initialisation.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Consecutive failed initialisations before the line is reported out of service.
    pub out_of_service_after: u32,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            reset: "ATZ".into(),
            init: vec!["AT&FE0V1Q0X4&C1&D2S0=0".into()],
            caller_id: Some("AT+VCID=1".into()),
            answer: AnswerMode::OnRing(1),
            dial: "ATDT{number}".into(),
            hangup: HangupMethod::Dtr,
            isdn: false,
            command_timeout: Duration::from_secs(3),
            answer_timeout: Duration::from_secs(60),
            dial_timeout: Duration::from_secs(90),
            ring_gap: Duration::from_secs(10),
            guard: Duration::from_millis(1100),
            dtr_drop: Duration::from_millis(500),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            out_of_service_after: 2,
        }
    }
}

/// What the line driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the modem.
    Write(Vec<u8>),
    /// Set DTR; if the line cannot, call [`ModemControl::dtr_unsupported`].
    SetDtr(bool),
}

/// Why a call attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// BUSY.
    Busy,
    /// NO CARRIER.
    NoCarrier,
    /// NO DIALTONE.
    NoDialtone,
    /// NO ANSWER.
    NoAnswer,
    /// ERROR.
    Error,
    /// The modem said nothing in time.
    Timeout,
}

/// Why a connected call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HangupCause {
    /// We hung up ([`ModemControl::hangup`]).
    Local,
    /// Carrier lost: NO CARRIER, DCD dropped, or EOF on a local-mode line.
    CarrierLost,
}

/// What the PAC hears about the line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The modem is initialised and waits for calls.
    Ready,
    /// An incoming call rings; caller ID so far (it usually arrives after the first RING).
    Ring {
        /// 1 for the first RING.
        count: u8,
        /// Caller ID collected so far.
        caller: CallerId,
    },
    /// The caller gave up before the call was answered.
    RingStopped,
    /// The call is up: switch the line to data mode.
    Connected {
        /// What CONNECT said.
        info: ConnectInfo,
        /// Caller ID (incoming calls).
        caller: CallerId,
        /// Async (modem) or sync (ISDN TA).
        framing: Framing,
        /// Incoming or outgoing.
        direction: Direction,
    },
    /// A call attempt failed (answer or dial).
    CallFailed(Failure),
    /// A connected call ended.
    HungUp(HangupCause),
    /// The modem stopped answering; calls cannot be taken until [`Event::Recovered`].
    OutOfService,
    /// The modem answers again after [`Event::OutOfService`].
    Recovered,
}

/// Misuse of the command interface (wrong state); the machine is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The modem is not idle (initialising, in a call, or out of service).
    #[error("modem is not idle")]
    NotIdle,
    /// `answer()` without a ringing call.
    #[error("no call is ringing")]
    NotRinging,
    /// The number has no dialable digit.
    #[error("nothing to dial")]
    BadNumber,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Waiting for a response (command, ATA, ATD).
    Response = 0,
    /// RING gap.
    Ring = 1,
    /// A timed step: guard times, DTR low, settle.
    Step = 2,
    /// Backoff before the next init attempt.
    Retry = 3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EscPhase {
    GuardBefore,
    WaitOk,
    WaitAth,
}

/// The machine's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started.
    Down,
    /// Sending reset/init commands; `step` 0 is the reset.
    Init {
        /// Which command is outstanding.
        step: usize,
    },
    /// Waiting before another init attempt.
    Backoff,
    /// Initialised, no call.
    Idle,
    /// RINGs seen, not answered yet.
    Ringing,
    /// ATA sent (or auto-answer), waiting for CONNECT.
    Answering,
    /// ATD sent, waiting for CONNECT.
    Dialing,
    /// Data mode.
    Online,
    /// DTR is low (or settling) for a hang-up.
    HangupDtr,
    /// Escape hang-up in progress.
    HangupEscape,
    /// A short pause before re-initialising.
    Settle,
}

/// The modem-control machine (see the module documentation).
#[derive(Debug, Clone)]
pub struct ModemControl {
    cfg: ControlConfig,
    state: State,
    esc: EscPhase,
    dtr_low: bool,
    dtr_ok: bool,
    timers: [Option<Instant>; 4],
    rings: u8,
    caller: CallerId,
    failures: u32,
    backoff: Duration,
    out_of_service: bool,
    direction: Direction,
    actions: std::collections::VecDeque<Action>,
    events: std::collections::VecDeque<Event>,
}

impl ModemControl {
    /// A machine for one modem; call [`ModemControl::start`] to begin.
    pub fn new(cfg: ControlConfig) -> Self {
        let backoff = cfg.backoff_min;
        ModemControl {
            cfg,
            state: State::Down,
            esc: EscPhase::GuardBefore,
            dtr_low: false,
            dtr_ok: true,
            timers: [None; 4],
            rings: 0,
            caller: CallerId::default(),
            failures: 0,
            backoff,
            out_of_service: false,
            direction: Direction::Incoming,
            actions: Default::default(),
            events: Default::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the line is in data mode (bytes are PPP, not AT responses).
    pub fn is_online(&self) -> bool {
        self.state == State::Online
    }

    /// Whether the line is currently reported out of service.
    pub fn is_out_of_service(&self) -> bool {
        self.out_of_service
    }

    /// The configuration.
    pub fn config(&self) -> &ControlConfig {
        &self.cfg
    }

    // ---- outputs ---------------------------------------------------------------------------

    /// The next thing the driver must do.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the PAC.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    // ---- commands --------------------------------------------------------------------------

    /// Starts (or restarts) the line: raise DTR, reset, initialise.
    pub fn start(&mut self, now: Instant) {
        self.timers = [None; 4];
        if self.dtr_ok {
            self.actions.push_back(Action::SetDtr(true));
        }
        self.begin_init(now);
    }

    /// Answers the ringing call (for [`AnswerMode::External`], or early in any mode).
    pub fn answer(&mut self, now: Instant) -> Result<(), ControlError> {
        if self.state != State::Ringing {
            return Err(ControlError::NotRinging);
        }
        self.send_answer(now);
        Ok(())
    }

    /// Dials `number` (digits, `*#+,WTP@!`; anything else is dropped).
    pub fn dial(&mut self, now: Instant, number: &str) -> Result<(), ControlError> {
        if self.state != State::Idle {
            return Err(ControlError::NotIdle);
        }
        let clean: String = number
            .chars()
            .filter(|c| c.is_ascii_digit() || "*#+,WTPwtp@!".contains(*c))
            .take(40)
            .collect();
        if !clean.chars().any(|c| c.is_ascii_digit()) {
            return Err(ControlError::BadNumber);
        }
        let cmd = self.cfg.dial.replace("{number}", &clean);
        self.write_cmd(&cmd);
        self.direction = Direction::Outgoing;
        self.caller = CallerId::default();
        self.state = State::Dialing;
        self.set_timer(Timer::Response, Some(now + self.cfg.dial_timeout));
        Ok(())
    }

    /// Hangs up whatever is going on (a call, a ringing call, a dial) and re-initialises.
    pub fn hangup(&mut self, now: Instant) {
        match self.state {
            State::Online => self.begin_hangup(now),
            State::Ringing | State::Answering | State::Dialing => {
                self.abort_attempt(now);
            }
            _ => {}
        }
    }

    /// The line cannot change DTR (a pty: ENOTTY). Hang-ups use the escape method from now on.
    pub fn dtr_unsupported(&mut self, now: Instant) {
        self.dtr_ok = false;
        if self.state == State::HangupDtr {
            self.begin_escape(now);
        }
    }

    /// Carrier is gone (DCD dropped, NO CARRIER seen in data mode, or EOF on a local line).
    pub fn carrier_lost(&mut self, now: Instant) {
        if self.state == State::Online {
            tracing::debug!("modem: carrier lost");
            self.events
                .push_back(Event::HungUp(HangupCause::CarrierLost));
            self.settle(now);
        }
    }

    // ---- inputs ----------------------------------------------------------------------------

    /// One line from the modem (without CR/LF), in command mode.
    pub fn handle_line(&mut self, now: Instant, line: &[u8]) {
        let resp = Response::parse(line);
        if let Response::CallerId(fields) = &resp {
            if matches!(self.state, State::Idle | State::Ringing | State::Answering) {
                fields.iter().for_each(|f| self.caller.apply(f));
            }
            return;
        }
        match self.state {
            State::Init { step } => match resp {
                Response::Ok => self.next_init(now, step + 1),
                Response::Error if self.is_caller_id_step(step) => self.next_init(now, step + 1),
                Response::Error => self.init_failed(now),
                _ => {}
            },
            State::Idle | State::Ringing => match resp {
                Response::Ring { called } => {
                    if let Some(c) = called {
                        self.caller.called = Some(c);
                    }
                    self.rings = self.rings.saturating_add(1);
                    self.state = State::Ringing;
                    self.direction = Direction::Incoming;
                    self.set_timer(Timer::Ring, Some(now + self.cfg.ring_gap));
                    self.events.push_back(Event::Ring {
                        count: self.rings,
                        caller: self.caller.clone(),
                    });
                    match self.cfg.answer {
                        AnswerMode::OnRing(n) if self.rings >= n.max(1) => self.send_answer(now),
                        AnswerMode::Auto => {
                            self.set_timer(Timer::Response, Some(now + self.cfg.answer_timeout))
                        }
                        _ => {}
                    }
                }
                Response::Connect(info) if self.state == State::Ringing => self.connected(info),
                _ => {}
            },
            State::Answering | State::Dialing => match resp {
                Response::Connect(info) => self.connected(info),
                Response::Ring { called: Some(c) } => self.caller.called = Some(c),
                Response::NoCarrier => self.call_failed(now, Failure::NoCarrier),
                Response::Busy => self.call_failed(now, Failure::Busy),
                Response::NoDialtone => self.call_failed(now, Failure::NoDialtone),
                Response::NoAnswer => self.call_failed(now, Failure::NoAnswer),
                Response::Error => self.call_failed(now, Failure::Error),
                _ => {}
            },
            State::HangupEscape => match (self.esc, resp) {
                (EscPhase::WaitOk, Response::Ok) => {
                    self.write_cmd("ATH0");
                    self.esc = EscPhase::WaitAth;
                    self.set_timer(Timer::Response, Some(now + self.cfg.command_timeout));
                }
                (EscPhase::WaitAth, Response::Ok)
                | (EscPhase::WaitOk | EscPhase::WaitAth, Response::NoCarrier) => {
                    self.set_timer(Timer::Response, None);
                    self.begin_init(now);
                }
                _ => {}
            },
            State::Online | State::Down | State::Backoff | State::HangupDtr | State::Settle => {}
        }
    }

    /// Runs the timers due at `now`; an early call is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.due(Timer::Ring, now) && self.state == State::Ringing {
            self.rings = 0;
            self.caller = CallerId::default();
            self.state = State::Idle;
            self.set_timer(Timer::Response, None);
            self.events.push_back(Event::RingStopped);
        }
        if self.due(Timer::Response, now) {
            match self.state {
                State::Init { .. } => self.init_failed(now),
                State::Answering | State::Dialing | State::Ringing => {
                    self.events.push_back(Event::CallFailed(Failure::Timeout));
                    self.abort_attempt(now);
                }
                State::HangupEscape => {
                    if self.esc == EscPhase::WaitOk {
                        // No OK to +++: maybe already in command mode; hang up anyway.
                        self.write_cmd("ATH0");
                        self.esc = EscPhase::WaitAth;
                        self.set_timer(Timer::Response, Some(now + self.cfg.command_timeout));
                    } else {
                        self.begin_init(now);
                    }
                }
                _ => {}
            }
        }
        if self.due(Timer::Step, now) {
            match self.state {
                State::HangupDtr if self.dtr_low => {
                    self.dtr_low = false;
                    self.actions.push_back(Action::SetDtr(true));
                    self.set_timer(Timer::Step, Some(now + self.cfg.dtr_drop));
                }
                State::HangupDtr | State::Settle => self.begin_init(now),
                State::HangupEscape if self.esc == EscPhase::GuardBefore => {
                    self.actions.push_back(Action::Write(b"+++".to_vec()));
                    self.esc = EscPhase::WaitOk;
                    self.set_timer(
                        Timer::Response,
                        Some(now + self.cfg.guard + self.cfg.command_timeout),
                    );
                }
                _ => {}
            }
        }
        if self.due(Timer::Retry, now) && self.state == State::Backoff {
            self.begin_init(now);
        }
    }

    // ---- internals -------------------------------------------------------------------------

    fn is_caller_id_step(&self, step: usize) -> bool {
        self.cfg.caller_id.is_some() && step == self.cfg.init.len() + 1
    }

    fn init_command(&self, step: usize) -> Option<&str> {
        if step == 0 {
            return Some(&self.cfg.reset);
        }
        let i = step - 1;
        match self.cfg.init.get(i) {
            Some(c) => Some(c),
            None if i == self.cfg.init.len() => self.cfg.caller_id.as_deref(),
            None => None,
        }
    }

    fn begin_init(&mut self, now: Instant) {
        self.set_timer(Timer::Step, None);
        self.set_timer(Timer::Retry, None);
        self.set_timer(Timer::Ring, None);
        self.rings = 0;
        self.caller = CallerId::default();
        self.next_init(now, 0);
    }

    fn next_init(&mut self, now: Instant, step: usize) {
        match self.init_command(step).map(str::to_owned) {
            Some(cmd) => {
                self.write_cmd(&cmd);
                self.state = State::Init { step };
                self.set_timer(Timer::Response, Some(now + self.cfg.command_timeout));
            }
            None => {
                self.set_timer(Timer::Response, None);
                self.state = State::Idle;
                self.failures = 0;
                self.backoff = self.cfg.backoff_min;
                if std::mem::take(&mut self.out_of_service) {
                    tracing::info!("modem: recovered");
                    self.events.push_back(Event::Recovered);
                }
                self.events.push_back(Event::Ready);
            }
        }
    }

    fn init_failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.set_timer(Timer::Response, None);
        if self.failures >= self.cfg.out_of_service_after.max(1) && !self.out_of_service {
            tracing::warn!(failures = self.failures, "modem: out of service");
            self.out_of_service = true;
            self.events.push_back(Event::OutOfService);
        }
        self.state = State::Backoff;
        self.set_timer(Timer::Retry, Some(now + self.backoff));
        self.backoff = (self.backoff * 2).min(self.cfg.backoff_max);
    }

    fn send_answer(&mut self, now: Instant) {
        self.write_cmd("ATA");
        self.state = State::Answering;
        self.set_timer(Timer::Ring, None);
        self.set_timer(Timer::Response, Some(now + self.cfg.answer_timeout));
    }

    fn connected(&mut self, mut info: ConnectInfo) {
        self.set_timer(Timer::Response, None);
        self.set_timer(Timer::Ring, None);
        self.state = State::Online;
        let framing = if self.cfg.isdn {
            if info.speed.is_none() {
                info.speed = Some(64_000);
            }
            Framing::Sync
        } else {
            Framing::Async
        };
        tracing::debug!(speed = ?info.speed, "modem: connected");
        self.events.push_back(Event::Connected {
            info,
            caller: std::mem::take(&mut self.caller),
            framing,
            direction: self.direction,
        });
    }

    fn call_failed(&mut self, now: Instant, f: Failure) {
        self.events.push_back(Event::CallFailed(f));
        self.set_timer(Timer::Response, None);
        self.begin_init(now);
    }

    /// Stops a call attempt: any character aborts a dial or answer; then re-initialise.
    fn abort_attempt(&mut self, now: Instant) {
        self.set_timer(Timer::Response, None);
        self.set_timer(Timer::Ring, None);
        if matches!(self.state, State::Answering | State::Dialing) {
            self.actions.push_back(Action::Write(b"\r".to_vec()));
        }
        self.settle(now);
    }

    fn settle(&mut self, now: Instant) {
        self.state = State::Settle;
        self.set_timer(Timer::Step, Some(now + Duration::from_millis(200)));
    }

    fn begin_hangup(&mut self, now: Instant) {
        if self.cfg.hangup == HangupMethod::Dtr && self.dtr_ok {
            self.state = State::HangupDtr;
            self.dtr_low = true;
            self.actions.push_back(Action::SetDtr(false));
            self.set_timer(Timer::Step, Some(now + self.cfg.dtr_drop));
        } else {
            self.begin_escape(now);
        }
        self.events.push_back(Event::HungUp(HangupCause::Local));
    }

    fn begin_escape(&mut self, now: Instant) {
        self.state = State::HangupEscape;
        self.dtr_low = false;
        self.esc = EscPhase::GuardBefore;
        self.set_timer(Timer::Step, Some(now + self.cfg.guard));
    }

    fn write_cmd(&mut self, cmd: &str) {
        let mut bytes = cmd.as_bytes().to_vec();
        bytes.push(b'\r');
        self.actions.push_back(Action::Write(bytes));
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
}

#[cfg(test)]
mod test {
    use super::*;

    /// A virtual-time harness: feeds lines, jumps to deadlines, collects actions and events.
    struct Harness {
        m: ModemControl,
        now: Instant,
        written: Vec<String>,
        dtr: Vec<bool>,
        events: Vec<Event>,
    }

    impl Harness {
        fn new(cfg: ControlConfig) -> Self {
            let mut h = Harness {
                m: ModemControl::new(cfg),
                now: Instant::now(),
                written: vec![],
                dtr: vec![],
                events: vec![],
            };
            h.m.start(h.now);
            h.drain();
            h
        }
        fn drain(&mut self) {
            while let Some(a) = self.m.poll_transmit() {
                match a {
                    Action::Write(b) => self.written.push(String::from_utf8(b).unwrap()),
                    Action::SetDtr(v) => self.dtr.push(v),
                }
            }
            while let Some(e) = self.m.poll_event() {
                self.events.push(e);
            }
        }
        fn line(&mut self, l: &str) {
            self.m.handle_line(self.now, l.as_bytes());
            self.drain();
        }
        /// Jumps virtual time to the next deadline.
        fn step(&mut self) {
            let t = self.m.poll_timeout().expect("a deadline");
            assert!(t >= self.now);
            self.now = t;
            self.m.handle_timeout(t);
            self.drain();
        }
        fn advance(&mut self, d: Duration) {
            self.now += d;
            self.m.handle_timeout(self.now);
            self.drain();
        }
        fn ok_until_ready(&mut self) {
            for _ in 0..10 {
                if self.m.state() == State::Idle {
                    return;
                }
                self.line("OK");
            }
            panic!("not ready: {:?}", self.m.state());
        }
        fn take_events(&mut self) -> Vec<Event> {
            std::mem::take(&mut self.events)
        }
    }

    fn cfg() -> ControlConfig {
        ControlConfig::default()
    }

    #[test]
    fn init_sequence_then_ready() {
        let mut h = Harness::new(cfg());
        assert_eq!(h.written, vec!["ATZ\r"]);
        assert_eq!(h.dtr, vec![true]);
        h.line("ATZ"); // echo is ignored
        h.line("OK");
        h.line("OK");
        assert_eq!(h.written.last().unwrap(), "AT+VCID=1\r");
        h.line("ERROR"); // caller ID unsupported: tolerated
        assert_eq!(h.m.state(), State::Idle);
        assert_eq!(h.take_events(), vec![Event::Ready]);
        assert_eq!(h.m.poll_timeout(), None, "idle: no timers, no CPU");
    }

    #[test]
    fn ring_with_caller_id_answer_on_second_ring() {
        let mut h = Harness::new(ControlConfig {
            answer: AnswerMode::OnRing(2),
            ..cfg()
        });
        h.ok_until_ready();
        h.take_events();
        h.line("RING");
        h.line("DATE = 1124");
        h.line("TIME = 1030");
        h.line("NMBR = 5551234");
        h.line("NAME = LAB");
        assert_eq!(h.m.state(), State::Ringing);
        h.advance(Duration::from_secs(6));
        h.line("RING");
        assert_eq!(h.written.last().unwrap(), "ATA\r");
        h.line("CONNECT 52000/V90/LAPM/V42BIS");
        assert!(h.m.is_online());
        let ev = h.take_events();
        assert!(matches!(&ev[0], Event::Ring { count: 1, caller } if caller.number.is_none()));
        assert!(
            matches!(&ev[1], Event::Ring { count: 2, caller } if caller.number.as_deref() == Some("5551234"))
        );
        match &ev[2] {
            Event::Connected {
                info,
                caller,
                framing,
                direction,
            } => {
                assert_eq!(info.speed, Some(52000));
                assert_eq!(info.compression.as_deref(), Some("V42BIS"));
                assert_eq!(caller.name.as_deref(), Some("LAB"));
                assert_eq!(*framing, Framing::Async);
                assert_eq!(*direction, Direction::Incoming);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ring_stops_when_caller_gives_up() {
        let mut h = Harness::new(ControlConfig {
            answer: AnswerMode::External,
            ..cfg()
        });
        h.ok_until_ready();
        h.take_events();
        h.line("RING");
        h.step();
        assert_eq!(
            h.take_events(),
            vec![
                Event::Ring {
                    count: 1,
                    caller: CallerId::default()
                },
                Event::RingStopped
            ]
        );
        assert_eq!(h.m.state(), State::Idle);
        assert_eq!(h.m.answer(h.now), Err(ControlError::NotRinging));
    }

    #[test]
    fn external_answer_and_auto_answer() {
        let mut h = Harness::new(ControlConfig {
            answer: AnswerMode::External,
            ..cfg()
        });
        h.ok_until_ready();
        h.line("RING");
        assert!(!h.written.iter().any(|w| w == "ATA\r"));
        h.m.answer(h.now).unwrap();
        h.drain();
        assert_eq!(h.written.last().unwrap(), "ATA\r");
        h.line("CONNECT 33600");
        assert!(h.m.is_online());

        let mut h = Harness::new(ControlConfig {
            answer: AnswerMode::Auto,
            ..cfg()
        });
        h.ok_until_ready();
        h.line("RING");
        h.line("RING");
        h.line("CONNECT 31200");
        assert!(h.m.is_online());
        assert!(!h.written.iter().any(|w| w == "ATA\r"));
    }

    #[test]
    fn answer_timeout_and_failures() {
        let mut h = Harness::new(cfg());
        h.ok_until_ready();
        h.take_events();
        h.line("RING");
        assert_eq!(h.m.state(), State::Answering);
        h.advance(Duration::from_secs(60));
        assert_eq!(
            h.written.last().unwrap(),
            "\r",
            "a keypress aborts the answer"
        );
        h.step(); // settle
        assert_eq!(
            h.written.last().unwrap(),
            "ATZ\r",
            "re-init after every call"
        );
        let ev = h.take_events();
        assert!(ev.contains(&Event::CallFailed(Failure::Timeout)));
        h.ok_until_ready();
        h.line("RING");
        h.line("NO CARRIER");
        assert!(h
            .take_events()
            .contains(&Event::CallFailed(Failure::NoCarrier)));
        assert!(matches!(h.m.state(), State::Init { step: 0 }));
    }

    #[test]
    fn dial_results() {
        for (line, want) in [
            ("BUSY", Failure::Busy),
            ("NO CARRIER", Failure::NoCarrier),
            ("NO DIALTONE", Failure::NoDialtone),
            ("NO ANSWER", Failure::NoAnswer),
            ("ERROR", Failure::Error),
            ("7", Failure::Busy),
            ("8", Failure::NoAnswer),
        ] {
            let mut h = Harness::new(cfg());
            h.ok_until_ready();
            h.take_events();
            h.m.dial(h.now, "555-1234").unwrap();
            h.drain();
            assert_eq!(h.written.last().unwrap(), "ATDT5551234\r");
            h.line(line);
            assert_eq!(h.take_events(), vec![Event::CallFailed(want)], "{line}");
            assert_eq!(h.written.last().unwrap(), "ATZ\r");
        }
        let mut h = Harness::new(cfg());
        h.ok_until_ready();
        assert_eq!(h.m.dial(h.now, "abc"), Err(ControlError::BadNumber));
        h.m.dial(h.now, "1").unwrap();
        assert_eq!(h.m.dial(h.now, "1"), Err(ControlError::NotIdle));
        h.take_events();
        h.advance(Duration::from_secs(90));
        assert_eq!(h.take_events(), vec![Event::CallFailed(Failure::Timeout)]);
        h.line("CONNECT 28800");
        assert!(!h.m.is_online(), "a late CONNECT while settling is ignored");
    }

    #[test]
    fn outgoing_connect() {
        let mut h = Harness::new(cfg());
        h.ok_until_ready();
        h.take_events();
        h.m.dial(h.now, "5551234").unwrap();
        h.line("CONNECT 28800");
        assert!(matches!(
            h.take_events().as_slice(),
            [Event::Connected {
                direction: Direction::Outgoing,
                ..
            }]
        ));
    }

    #[test]
    fn hangup_by_dtr() {
        let mut h = Harness::new(cfg());
        h.ok_until_ready();
        h.line("RING");
        h.line("CONNECT 33600");
        h.take_events();
        h.dtr.clear();
        h.m.hangup(h.now);
        h.drain();
        assert_eq!(h.dtr, vec![false]);
        assert_eq!(h.take_events(), vec![Event::HungUp(HangupCause::Local)]);
        h.step();
        assert_eq!(h.dtr, vec![false, true]);
        h.step();
        assert_eq!(h.written.last().unwrap(), "ATZ\r");
        h.ok_until_ready();
        assert_eq!(h.take_events(), vec![Event::Ready]);
    }

    #[test]
    fn hangup_by_escape_when_dtr_unsupported() {
        let mut h = Harness::new(cfg());
        h.ok_until_ready();
        h.line("RING");
        h.line("CONNECT 33600");
        h.m.hangup(h.now);
        h.drain();
        h.m.dtr_unsupported(h.now);
        let t0 = h.now;
        h.step();
        assert_eq!(h.now - t0, Duration::from_millis(1100), "guard before +++");
        assert_eq!(h.written.last().unwrap(), "+++");
        h.line("OK");
        assert_eq!(h.written.last().unwrap(), "ATH0\r");
        h.line("OK");
        assert_eq!(h.written.last().unwrap(), "ATZ\r");
        // Next hang-up goes straight to the escape method.
        h.ok_until_ready();
        h.line("RING");
        h.line("CONNECT 33600");
        h.dtr.clear();
        h.m.hangup(h.now);
        h.drain();
        assert!(h.dtr.is_empty());
        assert_eq!(h.m.state(), State::HangupEscape);
        // No OK to +++: ATH0 anyway, then no OK to that: re-init regardless.
        h.step();
        h.step();
        assert_eq!(h.written.last().unwrap(), "ATH0\r");
        h.step();
        assert_eq!(h.written.last().unwrap(), "ATZ\r");
    }

    #[test]
    fn carrier_loss_reinitialises() {
        let mut h = Harness::new(cfg());
        h.ok_until_ready();
        h.line("RING");
        h.line("CONNECT 33600");
        h.take_events();
        h.m.carrier_lost(h.now);
        h.drain();
        assert_eq!(
            h.take_events(),
            vec![Event::HungUp(HangupCause::CarrierLost)]
        );
        h.step();
        assert_eq!(h.written.last().unwrap(), "ATZ\r");
    }

    #[test]
    fn dead_modem_backoff_out_of_service_and_recovery() {
        let mut h = Harness::new(ControlConfig {
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(4),
            out_of_service_after: 2,
            ..cfg()
        });
        let mut retries = vec![];
        for _ in 0..5 {
            let before = h.now;
            h.step(); // command timeout
            assert_eq!(h.m.state(), State::Backoff);
            let t = h.now;
            h.step(); // retry
            retries.push(h.now - t);
            assert_eq!(h.now - before, Duration::from_secs(3) + (h.now - t));
            assert_eq!(h.written.last().unwrap(), "ATZ\r");
        }
        assert_eq!(
            retries,
            [1, 2, 4, 4, 4].map(Duration::from_secs).to_vec(),
            "exponential backoff, capped"
        );
        assert_eq!(h.take_events(), vec![Event::OutOfService], "reported once");
        assert!(h.m.is_out_of_service());
        h.ok_until_ready();
        assert_eq!(h.take_events(), vec![Event::Recovered, Event::Ready]);
        assert!(!h.m.is_out_of_service());
    }

    #[test]
    fn isdn_framing_and_called_number() {
        let mut h = Harness::new(ControlConfig {
            isdn: true,
            caller_id: None,
            ..cfg()
        });
        h.ok_until_ready();
        h.take_events();
        h.line("RING/4711");
        h.line("CALLER NUMBER: 0301234");
        h.line("CONNECT 64000/X.75");
        let ev = h.take_events();
        match ev.last().unwrap() {
            Event::Connected {
                info,
                caller,
                framing,
                ..
            } => {
                assert_eq!(*framing, Framing::Sync);
                assert_eq!(info.speed, Some(64000));
                assert_eq!(caller.called.as_deref(), Some("4711"));
                assert_eq!(caller.number.as_deref(), Some("0301234"));
            }
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any interleaving of modem lines, PAC commands and time never panics, never leaves a
        /// deadline in the past after `handle_timeout`, and keeps its queues bounded.
        #[test]
        fn arbitrary_sequences_are_safe(
            ops in proptest::collection::vec((0u8..12, 0u64..5000, 0usize..16), 0..120)
        ) {
            const LINES: [&str; 16] = [
                "OK", "ERROR", "RING", "RING/4711", "CONNECT 33600", "CONNECT", "NO CARRIER",
                "BUSY", "NO DIALTONE", "NO ANSWER", "NMBR = 5551234", "2", "ATZ", "", "7",
                "CONNECT 52000/V90/LAPM/V42BIS",
            ];
            let mut m = ModemControl::new(ControlConfig {
                answer: AnswerMode::OnRing(2),
                ..ControlConfig::default()
            });
            let mut now = Instant::now();
            m.start(now);
            for (op, ms, line) in ops {
                now += Duration::from_millis(ms);
                match op {
                    0..=5 => m.handle_line(now, LINES[line].as_bytes()),
                    6 => m.hangup(now),
                    7 => { let _ = m.dial(now, "5551234"); }
                    8 => { let _ = m.answer(now); }
                    9 => m.carrier_lost(now),
                    10 => m.dtr_unsupported(now),
                    _ => {}
                }
                m.handle_timeout(now);
                if let Some(t) = m.poll_timeout() {
                    proptest::prop_assert!(t > now, "deadline {t:?} not after {now:?}");
                }
                let mut n = 0;
                while m.poll_transmit().is_some() { n += 1; }
                while m.poll_event().is_some() { n += 1; }
                proptest::prop_assert!(n < 16);
            }
        }
    }

    #[test]
    fn garbage_lines_change_nothing_when_idle() {
        let mut h = Harness::new(cfg());
        h.ok_until_ready();
        h.take_events();
        for l in ["", "NO CARRIER", "ERROR", "\u{0}\u{ff}", "CONNECT", "BUSY"] {
            h.line(l);
        }
        assert_eq!(h.m.state(), State::Idle);
        assert!(h.take_events().is_empty());
    }
}
