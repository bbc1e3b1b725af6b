//! The dial script of `pptp-nas dial` (sans-IO): initialise the modem, dial, wait for CONNECT,
//! and later hang up. A thin client-side layer over [`ModemControl`], which already knows the
//! Hayes dialogue (reset, init, `ATD`, result codes, `+++`/`ATH0`, DTR); this layer turns the
//! PAC-oriented machine (re-initialise and wait for the next call forever) into a one-shot
//! script with a definite end and a failure for each way a call can go wrong.
//!
//! ```text
//!  start ─> Init ──Ready──> Dialing ──CONNECT──> Online ──hangup()──> HangingUp ──> Done
//!            │ no OK          │ BUSY / NO CARRIER / NO ANSWER /        │ carrier_lost()
//!            v                v NO DIALTONE / ERROR / timeout          v
//!          Done (Failed)    Done (Failed)                            Done (HungUp)
//! ```
//!
//! Method order as everywhere (STYLE habit 3): inputs `handle_input` / `handle_line` /
//! `handle_timeout` and the commands; then `poll_transmit` until `None`, `poll_event` until
//! `None`, and re-arm the one timer to `poll_timeout`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::modem::control::{
    Action, ControlConfig, Event as CtlEvent, Failure, HangupCause, HangupMethod, ModemControl,
    State as CtlState,
};
use crate::modem::result::{ConnectInfo, LineSplitter, Response};

/// Settings of one dial script.
#[derive(Debug, Clone)]
pub struct DialConfig {
    /// Commands sent first, each must answer OK; the first is the reset (`ATZ`).
    pub init: Vec<String>,
    /// Dial command with `{number}`, e.g. `ATDT{number}`.
    pub dial: String,
    /// The number to dial.
    pub number: String,
    /// Longest wait for OK to a command.
    pub command_timeout: Duration,
    /// Longest wait for the dial result (CONNECT, BUSY, ...).
    pub dial_timeout: Duration,
    /// Escape guard time (a little more than the modem's S12 of 1 s).
    pub guard: Duration,
    /// Hang up by dropping DTR (falls back to the escape on lines without DTR, like ptys).
    pub hangup_dtr: bool,
}

impl Default for DialConfig {
    fn default() -> Self {
        DialConfig {
            init: default_init(),
            dial: "ATDT{number}".into(),
            number: String::new(),
            command_timeout: Duration::from_secs(3),
            dial_timeout: Duration::from_secs(60),
            guard: Duration::from_millis(1100),
            hangup_dtr: true,
        }
    }
}

/// The default init sequence: reset, then factory profile with verbose result codes, extended
/// result codes (BUSY, NO DIALTONE), DCD following carrier and DTR hang-up.
pub fn default_init() -> Vec<String> {
    vec!["ATZ".into(), "AT&FE0V1Q0X4&C1&D2".into()]
}

/// Why a call could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialFailure {
    /// `NO CARRIER` while dialling (no modem answered, or the handshake failed).
    #[error("no carrier (NO CARRIER)")]
    NoCarrier,
    /// `BUSY`.
    #[error("the number is busy (BUSY)")]
    Busy,
    /// `NO DIALTONE`.
    #[error("no dial tone (NO DIALTONE)")]
    NoDialtone,
    /// `NO ANSWER`.
    #[error("no answer (NO ANSWER)")]
    NoAnswer,
    /// `ERROR` to the dial command.
    #[error("the modem refused the dial command (ERROR)")]
    Error,
    /// No dial result within the dial timeout.
    #[error("no dial result in time (timeout)")]
    Timeout,
    /// The modem did not answer the init commands with OK.
    #[error("the modem does not answer the init commands (no OK)")]
    ModemNotResponding,
    /// The number has no digit.
    #[error("nothing to dial: the number has no digit")]
    BadNumber,
}

impl DialFailure {
    /// Whether the modem said nothing in time (a timeout rather than an answer from the line).
    pub fn is_timeout(self) -> bool {
        matches!(self, DialFailure::Timeout | DialFailure::ModemNotResponding)
    }
}

/// What the script reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialEvent {
    /// The call is up: the line is in data mode.
    Connected(ConnectInfo),
    /// The call could not be made; the script is done.
    Failed(DialFailure),
    /// The call is over; the script is done.
    HungUp {
        /// The carrier went away on its own (the far end hung up, or the line dropped).
        carrier_lost: bool,
    },
}

/// Where the script is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started.
    Idle,
    /// Reset and init commands.
    Init,
    /// The dial command is out.
    Dialing,
    /// Data mode.
    Online,
    /// Hanging up (DTR or `+++` / `ATH0`).
    HangingUp,
    /// Finished (see the last event).
    Done,
}

/// The dial script (see the module documentation).
#[derive(Debug, Clone)]
pub struct Dialer {
    ctl: ModemControl,
    number: String,
    phase: Phase,
    splitter: LineSplitter,
    events: VecDeque<DialEvent>,
}

impl Dialer {
    /// A script for one call; call [`Dialer::start`] to begin.
    pub fn new(cfg: DialConfig) -> Self {
        let mut init = cfg.init.into_iter();
        let reset = init.next().unwrap_or_else(|| "AT".to_string());
        let ctl = ModemControl::new(ControlConfig {
            reset,
            init: init.collect(),
            caller_id: None,
            dial: cfg.dial,
            hangup: if cfg.hangup_dtr {
                HangupMethod::Dtr
            } else {
                HangupMethod::Escape
            },
            command_timeout: cfg.command_timeout,
            dial_timeout: cfg.dial_timeout,
            guard: cfg.guard,
            // One failed init is final for a one-shot script.
            out_of_service_after: 1,
            ..ControlConfig::default()
        });
        Dialer {
            ctl,
            number: cfg.number,
            phase: Phase::Idle,
            splitter: LineSplitter::default(),
            events: VecDeque::new(),
        }
    }

    /// Where the script is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    // ---- inputs and commands -----------------------------------------------------------

    /// Raises DTR and sends the init commands.
    pub fn start(&mut self, now: Instant) {
        self.phase = Phase::Init;
        self.ctl.start(now);
        self.pump(now);
    }

    /// Command-mode octets from the modem. When they complete the `CONNECT` line, returns the
    /// octets that followed it in `chunk` (the first data-mode bytes: PPP); the shell must not
    /// feed later octets here while [`Phase::Online`].
    pub fn handle_input(&mut self, now: Instant, chunk: &[u8]) -> Option<Vec<u8>> {
        for (i, &b) in chunk.iter().enumerate() {
            let Some(line) = self.splitter.push(b) else {
                continue;
            };
            self.handle_line(now, &line);
            if self.phase == Phase::Online {
                // "CONNECT 33600\r\n": the LF after the CR belongs to the result code.
                let mut rest = chunk.get(i + 1..).unwrap_or_default();
                if b == b'\r' && rest.first() == Some(&b'\n') {
                    rest = rest.get(1..).unwrap_or_default();
                }
                self.splitter.clear();
                return Some(rest.to_vec());
            }
        }
        None
    }

    /// One response line (without CR/LF).
    pub fn handle_line(&mut self, now: Instant, line: &[u8]) {
        match self.phase {
            Phase::Init | Phase::Dialing => self.ctl.handle_line(now, line),
            Phase::HangingUp => {
                if Response::parse(line) == Response::NoCarrier {
                    // The far end hung up first: the modem is back in command mode already.
                    self.finish_hangup(true);
                    return;
                }
                self.ctl.handle_line(now, line);
            }
            Phase::Idle | Phase::Online | Phase::Done => {}
        }
        self.pump(now);
    }

    /// Runs the timers due at `now` (an early call is a no-op).
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Idle | Phase::Done) {
            return;
        }
        self.ctl.handle_timeout(now);
        self.pump(now);
    }

    /// The line cannot change DTR (a pty): hang up with the escape sequence instead.
    pub fn dtr_unsupported(&mut self, now: Instant) {
        self.ctl.dtr_unsupported(now);
        self.pump(now);
    }

    /// Ends the call (or abandons the dial).
    pub fn hangup(&mut self, now: Instant) {
        match self.phase {
            Phase::Online => {
                self.phase = Phase::HangingUp;
                self.ctl.hangup(now);
            }
            Phase::Init | Phase::Dialing => {
                self.ctl.hangup(now);
                self.phase = Phase::Done;
            }
            _ => {}
        }
        self.pump(now);
    }

    /// The carrier went away during the call (NO CARRIER in the data, DCD low, EOF).
    pub fn carrier_lost(&mut self, now: Instant) {
        match self.phase {
            Phase::Online => {
                self.ctl.carrier_lost(now);
                self.pump(now);
            }
            Phase::HangingUp => self.finish_hangup(true),
            _ => {}
        }
    }

    // ---- outputs -------------------------------------------------------------------------

    /// The next thing the shell must do (write AT bytes, set DTR).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Action> {
        if self.phase == Phase::Done {
            return None;
        }
        self.ctl.poll_transmit()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<DialEvent> {
        self.events.pop_front()
    }

    /// When [`Dialer::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle | Phase::Done | Phase::Online => None,
            _ => self.ctl.poll_timeout(),
        }
    }

    // ---- internals -----------------------------------------------------------------------

    fn fail(&mut self, f: DialFailure) {
        tracing::debug!(failure = %f, "dial: failed");
        self.phase = Phase::Done;
        self.events.push_back(DialEvent::Failed(f));
    }

    fn finish_hangup(&mut self, carrier_lost: bool) {
        if self.phase != Phase::Done {
            self.phase = Phase::Done;
            self.events.push_back(DialEvent::HungUp { carrier_lost });
        }
    }

    fn pump(&mut self, now: Instant) {
        while let Some(ev) = self.ctl.poll_event() {
            match (self.phase, ev) {
                (Phase::Init, CtlEvent::Ready) => match self.ctl.dial(now, &self.number) {
                    Ok(()) => self.phase = Phase::Dialing,
                    Err(_) => self.fail(DialFailure::BadNumber),
                },
                (Phase::Init, CtlEvent::OutOfService) => self.fail(DialFailure::ModemNotResponding),
                (Phase::Dialing, CtlEvent::Connected { info, .. }) => {
                    self.phase = Phase::Online;
                    self.events.push_back(DialEvent::Connected(info));
                }
                (Phase::Dialing, CtlEvent::CallFailed(f)) => self.fail(match f {
                    Failure::Busy => DialFailure::Busy,
                    Failure::NoCarrier => DialFailure::NoCarrier,
                    Failure::NoDialtone => DialFailure::NoDialtone,
                    Failure::NoAnswer => DialFailure::NoAnswer,
                    Failure::Timeout => DialFailure::Timeout,
                    _ => DialFailure::Error,
                }),
                (Phase::Online, CtlEvent::HungUp(HangupCause::CarrierLost)) => {
                    self.finish_hangup(true)
                }
                _ => {}
            }
        }
        // A hang-up is over once the machine starts re-initialising the modem.
        if self.phase == Phase::HangingUp
            && !matches!(
                self.ctl.state(),
                CtlState::HangupDtr | CtlState::HangupEscape | CtlState::Online
            )
        {
            self.finish_hangup(false);
        }
    }
}

/// Finds the modem's `NO CARRIER` text in a data-mode byte stream, across chunk boundaries.
///
/// The text cannot occur inside async-HDLC PPP unless the peer sends it as data: CR and LF are
/// below 0x20 and escaped by the default ACCM, so a line-framed `\r\nNO CARRIER\r\n` is the
/// modem's, not the peer's.
#[derive(Debug, Clone, Default)]
pub struct NoCarrierScanner {
    matched: usize,
}

const NO_CARRIER: &[u8] = b"\r\nNO CARRIER\r\n";

impl NoCarrierScanner {
    /// Scans `chunk`; returns how many of its octets are data when the text ends in it (the
    /// carrier is gone), `None` when it does not.
    pub fn scan(&mut self, chunk: &[u8]) -> Option<usize> {
        for (i, &b) in chunk.iter().enumerate() {
            if NO_CARRIER.get(self.matched) == Some(&b) {
                self.matched += 1;
            } else {
                self.matched = usize::from(NO_CARRIER.first() == Some(&b));
            }
            if self.matched == NO_CARRIER.len() {
                self.matched = 0;
                return Some((i + 1).saturating_sub(NO_CARRIER.len()));
            }
        }
        None
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// Drives a [`Dialer`] on virtual time and records what it writes.
    struct H {
        d: Dialer,
        now: Instant,
        written: Vec<String>,
        dtr: Vec<bool>,
        events: Vec<DialEvent>,
        pty: bool,
    }

    impl H {
        fn new(cfg: DialConfig, pty: bool) -> H {
            let mut h = H {
                d: Dialer::new(cfg),
                now: Instant::now(),
                written: Vec::new(),
                dtr: Vec::new(),
                events: Vec::new(),
                pty,
            };
            let now = h.now;
            h.d.start(now);
            h.drain();
            h
        }
        fn drain(&mut self) {
            while let Some(a) = self.d.poll_transmit() {
                match a {
                    Action::Write(b) => self.written.push(String::from_utf8(b).unwrap()),
                    Action::SetDtr(on) => {
                        if self.pty {
                            let now = self.now;
                            self.d.dtr_unsupported(now);
                        } else {
                            self.dtr.push(on);
                        }
                    }
                }
            }
            while let Some(e) = self.d.poll_event() {
                self.events.push(e);
            }
        }
        fn line(&mut self, l: &str) {
            let now = self.now;
            self.d.handle_line(now, l.as_bytes());
            self.drain();
        }
        /// Jumps to the next deadline.
        fn step(&mut self) -> Duration {
            let at = self.d.poll_timeout().expect("a deadline");
            let dt = at.saturating_duration_since(self.now);
            self.now = self.now.max(at);
            let now = self.now;
            self.d.handle_timeout(now);
            self.drain();
            dt
        }
        fn take(&mut self) -> Vec<String> {
            std::mem::take(&mut self.written)
        }
    }

    fn cfg(number: &str) -> DialConfig {
        DialConfig {
            number: number.into(),
            ..DialConfig::default()
        }
    }

    fn dialing(pty: bool) -> H {
        let mut h = H::new(cfg("555-1234"), pty);
        assert_eq!(h.take(), ["ATZ\r"]);
        h.line("OK");
        assert_eq!(h.take(), ["AT&FE0V1Q0X4&C1&D2\r"]);
        assert_eq!(h.d.phase(), Phase::Init);
        h.line("OK");
        assert_eq!(h.take(), ["ATDT5551234\r"], "dashes dropped");
        assert_eq!(h.d.phase(), Phase::Dialing);
        h
    }

    #[test]
    fn init_dial_connect() {
        let mut h = dialing(false);
        assert_eq!(h.dtr, [true], "DTR raised at start");
        h.line("CONNECT 33600/ARQ/V34/LAPM/V42BIS");
        assert_eq!(h.d.phase(), Phase::Online);
        let [DialEvent::Connected(info)] = h.events.as_slice() else {
            panic!("{:?}", h.events)
        };
        assert_eq!(info.speed, Some(33_600));
        assert_eq!(h.d.poll_timeout(), None, "no modem timer while online");
    }

    #[test]
    fn each_dial_failure_is_reported() {
        for (line, want) in [
            ("NO CARRIER", DialFailure::NoCarrier),
            ("BUSY", DialFailure::Busy),
            ("NO DIALTONE", DialFailure::NoDialtone),
            ("NO DIAL TONE", DialFailure::NoDialtone),
            ("NO ANSWER", DialFailure::NoAnswer),
            ("ERROR", DialFailure::Error),
            ("7", DialFailure::Busy),
            ("8", DialFailure::NoAnswer),
        ] {
            let mut h = dialing(false);
            h.line("ATDT5551234"); // command echo is ignored
            h.line(line);
            assert_eq!(h.events, [DialEvent::Failed(want)], "{line}");
            assert_eq!(h.d.phase(), Phase::Done);
            assert_eq!(h.d.poll_timeout(), None);
            assert_eq!(
                h.d.poll_transmit(),
                None,
                "nothing more is written when done"
            );
        }
    }

    #[test]
    fn dial_timeout_aborts_the_call() {
        let mut h = H::new(
            DialConfig {
                dial_timeout: Duration::from_secs(7),
                ..cfg("1")
            },
            false,
        );
        h.line("OK");
        h.line("OK");
        h.take();
        let waited = h.step();
        assert_eq!(waited, Duration::from_secs(7));
        assert_eq!(h.events, [DialEvent::Failed(DialFailure::Timeout)]);
        assert!(DialFailure::Timeout.is_timeout());
    }

    #[test]
    fn silent_modem_is_a_timeout() {
        let mut h = H::new(cfg("1"), false);
        assert_eq!(h.take(), ["ATZ\r"]);
        assert_eq!(h.step(), Duration::from_secs(3));
        assert_eq!(
            h.events,
            [DialEvent::Failed(DialFailure::ModemNotResponding)]
        );
        assert!(DialFailure::ModemNotResponding.is_timeout());
    }

    #[test]
    fn error_to_init_fails() {
        let mut h = H::new(cfg("1"), false);
        h.line("OK");
        h.line("ERROR");
        assert_eq!(
            h.events,
            [DialEvent::Failed(DialFailure::ModemNotResponding)]
        );
    }

    #[test]
    fn number_without_digits() {
        let mut h = H::new(cfg("abc"), false);
        h.line("OK");
        h.line("OK");
        assert_eq!(h.events, [DialEvent::Failed(DialFailure::BadNumber)]);
    }

    #[test]
    fn custom_init_sequence() {
        let mut h = H::new(
            DialConfig {
                init: vec!["AT".into(), "ATS7=3".into(), "ATX4".into()],
                dial: "ATDP{number}".into(),
                ..cfg("42")
            },
            false,
        );
        h.line("OK");
        h.line("OK");
        h.line("OK");
        assert_eq!(h.take(), ["AT\r", "ATS7=3\r", "ATX4\r", "ATDP42\r"]);
    }

    #[test]
    fn hangup_by_dtr_on_a_real_tty() {
        let mut h = dialing(false);
        h.line("CONNECT 28800");
        h.events.clear();
        let now = h.now;
        h.d.hangup(now);
        h.drain();
        assert_eq!(h.dtr, [true, false], "DTR dropped");
        assert_eq!(h.d.phase(), Phase::HangingUp);
        h.step(); // DTR low for a while, then up again
        assert_eq!(h.dtr, [true, false, true]);
        h.step();
        assert_eq!(
            h.events,
            [DialEvent::HungUp {
                carrier_lost: false
            }]
        );
        assert_eq!(h.d.phase(), Phase::Done);
    }

    #[test]
    fn hangup_by_escape_on_a_pty() {
        let mut h = dialing(true);
        h.line("CONNECT 33600");
        h.events.clear();
        h.take();
        let now = h.now;
        h.d.hangup(now);
        h.drain();
        assert!(h.take().is_empty(), "nothing during the guard time");
        assert_eq!(h.step(), Duration::from_millis(1100), "guard time");
        assert_eq!(h.take(), ["+++"]);
        h.line("OK");
        assert_eq!(h.take(), ["ATH0\r"]);
        assert!(h.events.is_empty());
        h.line("OK");
        assert_eq!(
            h.events,
            [DialEvent::HungUp {
                carrier_lost: false
            }]
        );
    }

    #[test]
    fn escape_without_ok_still_sends_ath() {
        let mut h = dialing(true);
        h.line("CONNECT 33600");
        h.take();
        let now = h.now;
        h.d.hangup(now);
        h.step();
        assert_eq!(h.take(), ["+++"]);
        h.step(); // no OK to +++
        assert_eq!(h.take(), ["ATH0\r"]);
        h.step(); // no OK to ATH0 either: give up, done
        assert_eq!(h.d.phase(), Phase::Done);
    }

    #[test]
    fn far_end_hangs_up_during_our_hangup() {
        let mut h = dialing(true);
        h.line("CONNECT 33600");
        h.events.clear();
        let now = h.now;
        h.d.hangup(now);
        h.line("NO CARRIER");
        assert_eq!(h.events, [DialEvent::HungUp { carrier_lost: true }]);
        assert_eq!(h.d.poll_transmit(), None);
    }

    #[test]
    fn carrier_lost_online() {
        let mut h = dialing(true);
        h.line("CONNECT 33600");
        h.events.clear();
        let now = h.now;
        h.d.carrier_lost(now);
        h.drain();
        assert_eq!(h.events, [DialEvent::HungUp { carrier_lost: true }]);
        assert_eq!(h.d.phase(), Phase::Done);
    }

    #[test]
    fn connect_switch_is_octet_exact() {
        let mut h = dialing(true);
        let now = h.now;
        assert_eq!(h.d.handle_input(now, b"\r\nCONN"), None);
        let rest =
            h.d.handle_input(now, b"ECT 33600\r\n\x7e\xff\x7d\x23")
                .unwrap();
        assert_eq!(rest, b"\x7e\xff\x7d\x23");
        h.drain();
        assert!(matches!(h.events.as_slice(), [DialEvent::Connected(_)]));
        // CR only, data right after.
        let mut h = dialing(true);
        let rest = h.d.handle_input(now, b"CONNECT\r\x7e").unwrap();
        assert_eq!(rest, b"\x7e");
    }

    #[test]
    fn no_carrier_scanner() {
        let mut s = NoCarrierScanner::default();
        assert_eq!(s.scan(b"\x7e\xff\x03\x7e"), None);
        assert_eq!(s.scan(b"\x7eab\r\nNO CAR"), None);
        assert_eq!(s.scan(b"RIER\r\n"), Some(0));
        let mut s = NoCarrierScanner::default();
        assert_eq!(s.scan(b"xy\r\nNO CARRIER\r\n"), Some(2));
        // The text without its line framing is data.
        let mut s = NoCarrierScanner::default();
        assert_eq!(s.scan(b"NO CARRIER"), None);
        // A restart inside a partial match.
        let mut s = NoCarrierScanner::default();
        assert_eq!(s.scan(b"\r\r\nNO CARRIER\r\n"), Some(1));
    }
}
