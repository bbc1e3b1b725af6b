//! The two kinds of line a PAC line task drives, behind one interface: a modem or ISDN TA
//! ([`ModemLine`], AT commands) and a `direct` line ([`DirectLine`]: null-modem cable, socat or
//! pty pair; no modem at all).
//!
//! A direct line has no RING, no CONNECT and no carrier, so [`DirectLine`] makes the modem
//! events the line task expects out of what it sees on the wire:
//! - the peer's first LCP frame (found by [`LcpDetector`], any escaping, the Windows
//!   `CLIENT`/`CLIENTSERVER` handshake answered on the way) is a [`ModemEvent::Ring`]; the octets
//!   from that frame's opening flag on are kept and delivered as the call's first data;
//! - [`LineIo::answer`] is an immediate [`ModemEvent::Connected`] at the line's DTE speed, async
//!   framing;
//! - EOF (or EIO: the other side of a pty closed) during a call is carrier loss
//!   ([`ModemEvent::HungUp`]); while idle it is waited out (the peer may reopen the device),
//!   never "out of service";
//! - [`LineIo::hangup`] drops the call and returns to waiting for LCP ([`ModemEvent::Ready`]);
//! - [`LineIo::refuse`] (the tunnel refused the call) reports [`ModemEvent::RingStopped`] and
//!   ignores the line for [`REFUSE_HOLD_OFF`], so a peer retransmitting Configure-Requests is not
//!   offered again three times a second.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::capture::CallCapture;
use crate::io::line::{LineEvent, ModemIo, ModemLine};
use crate::modem::control::{ControlError, Direction, Event as ModemEvent, Framing, HangupCause};
use crate::modem::direct::{Detect, LcpDetector};
use crate::modem::result::{CallerId, ConnectInfo};

/// How long a direct line ignores the peer after a refused call.
pub const REFUSE_HOLD_OFF: Duration = Duration::from_secs(5);
/// How long an idle direct line waits before reading again after EOF.
const EOF_RETRY: Duration = Duration::from_millis(500);
/// Most octets kept between the LCP frame that starts a call and the answer.
const MAX_EARLY: usize = 64 * 1024;

/// A line as the PAC line task sees it: the device, and the current call's capture (octets
/// written to the line are captured here; octets read are captured by the line task).
#[derive(Debug)]
pub struct LineIo<S> {
    dev: Dev<S>,
    capture: Option<Arc<Mutex<CallCapture>>>,
}

#[derive(Debug)]
enum Dev<S> {
    /// A modem or ISDN TA driven with AT commands (boxed: much larger than a direct line).
    Modem(Box<ModemLine<S>>),
    /// A direct line.
    Direct(DirectLine<S>),
}

impl<S: ModemIo> LineIo<S> {
    /// A modem or ISDN TA line.
    pub fn modem(m: ModemLine<S>) -> Self {
        LineIo {
            dev: Dev::Modem(Box::new(m)),
            capture: None,
        }
    }

    /// A direct line.
    pub fn direct(d: DirectLine<S>) -> Self {
        LineIo {
            dev: Dev::Direct(d),
            capture: None,
        }
    }

    /// Sets (or clears) the capture octets written to the line go to.
    pub fn set_capture(&mut self, c: Option<Arc<Mutex<CallCapture>>>) {
        self.capture = c;
    }

    /// The next line event (see [`ModemLine::next`]).
    pub async fn next(&mut self) -> io::Result<LineEvent> {
        match &mut self.dev {
            Dev::Modem(m) => m.next().await,
            Dev::Direct(d) => d.next().await,
        }
    }

    /// Answers the ringing call.
    pub fn answer(&mut self) -> Result<(), ControlError> {
        match &mut self.dev {
            Dev::Modem(m) => m.answer(),
            Dev::Direct(d) => d.answer(),
        }
    }

    /// Dials `number` (modems only: a direct line cannot dial).
    pub fn dial(&mut self, number: &str) -> Result<(), ControlError> {
        match &mut self.dev {
            Dev::Modem(m) => m.dial(number),
            Dev::Direct(_) => Err(ControlError::NotIdle),
        }
    }

    /// Hangs up the current call.
    pub fn hangup(&mut self) {
        match &mut self.dev {
            Dev::Modem(m) => m.hangup(),
            Dev::Direct(d) => d.hangup(),
        }
    }

    /// The call offered by the last RING was refused (the modem just stops ringing).
    pub fn refuse(&mut self) {
        if let Dev::Direct(d) = &mut self.dev {
            d.refuse();
        }
    }

    /// Writes data-mode bytes (dropped unless a call is up).
    pub async fn send_data(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(c) = &self.capture {
            if let Ok(mut c) = c.lock() {
                c.line_out(data);
            }
        }
        match &mut self.dev {
            Dev::Modem(m) => m.send_data(data).await,
            Dev::Direct(d) => d.send_data(data).await,
        }
    }

    /// Modem state for `status`.
    pub fn modem_state(&self) -> String {
        match &self.dev {
            Dev::Modem(m) => format!("{:?}", m.control().state()),
            Dev::Direct(d) => d.state().into(),
        }
    }

    /// Whether the line is idle (no call ringing or up) and could take or place a call.
    pub fn is_idle(&self) -> bool {
        match &self.dev {
            Dev::Modem(m) => {
                matches!(m.control().state(), crate::modem::control::State::Idle)
            }
            Dev::Direct(d) => matches!(d.phase, DirectPhase::Idle),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirectPhase {
    /// Waiting for the peer's first LCP frame.
    Idle,
    /// LCP seen and reported as a RING; waiting for answer or refusal.
    Ringing,
    /// Call up: bytes are data.
    Online,
    /// Refused: input is discarded until the instant.
    HoldOff(Instant),
}

/// A `direct` line (see the module documentation).
#[derive(Debug)]
pub struct DirectLine<S> {
    io: S,
    baud: u32,
    phase: DirectPhase,
    detector: LcpDetector,
    /// Octets that arrived with or after the first LCP frame, before the answer.
    early: Vec<u8>,
    events: VecDeque<ModemEvent>,
    buf: Box<[u8]>,
}

impl<S: ModemIo> DirectLine<S> {
    /// Wraps an open device; `baud` is reported as the connect speed.
    pub fn new(io: S, baud: u32) -> Self {
        let mut events = VecDeque::new();
        events.push_back(ModemEvent::Ready);
        DirectLine {
            io,
            baud,
            phase: DirectPhase::Idle,
            detector: LcpDetector::new(),
            early: Vec::new(),
            events,
            buf: vec![0u8; 4096].into_boxed_slice(),
        }
    }

    fn state(&self) -> &'static str {
        match self.phase {
            DirectPhase::Idle => "WaitingForLcp",
            DirectPhase::Ringing => "LcpSeen",
            DirectPhase::Online => "Online",
            DirectPhase::HoldOff(_) => "HoldOff",
        }
    }

    fn answer(&mut self) -> Result<(), ControlError> {
        if self.phase != DirectPhase::Ringing {
            return Err(ControlError::NotRinging);
        }
        self.phase = DirectPhase::Online;
        self.events.push_back(ModemEvent::Connected {
            info: ConnectInfo {
                speed: Some(self.baud),
                ..ConnectInfo::default()
            },
            caller: CallerId::default(),
            framing: Framing::Async,
            direction: Direction::Incoming,
        });
        Ok(())
    }

    fn hangup(&mut self) {
        if self.phase == DirectPhase::Online {
            self.events
                .push_back(ModemEvent::HungUp(HangupCause::Local));
        }
        self.reset(DirectPhase::Idle);
        self.events.push_back(ModemEvent::Ready);
    }

    fn refuse(&mut self) {
        if self.phase == DirectPhase::Ringing {
            self.reset(DirectPhase::HoldOff(Instant::now() + REFUSE_HOLD_OFF));
            self.events.push_back(ModemEvent::RingStopped);
        }
    }

    fn reset(&mut self, phase: DirectPhase) {
        self.phase = phase;
        self.detector = LcpDetector::new();
        self.early = Vec::new();
    }

    async fn send_data(&mut self, data: &[u8]) -> io::Result<()> {
        if self.phase == DirectPhase::Online {
            self.io.write_all(data).await?;
        }
        Ok(())
    }

    async fn next(&mut self) -> io::Result<LineEvent> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(LineEvent::Modem(ev));
            }
            if self.phase == DirectPhase::Online && !self.early.is_empty() {
                return Ok(LineEvent::Data(std::mem::take(&mut self.early)));
            }
            let n = match self.io.read(&mut self.buf).await {
                Ok(n) => n,
                // A pty whose other side went away reads EIO.
                Err(e) if e.raw_os_error() == Some(5) => 0,
                Err(e) => return Err(e),
            };
            let chunk = self.buf.get(..n).unwrap_or_default();
            if n == 0 {
                match self.phase {
                    DirectPhase::Online => {
                        self.reset(DirectPhase::Idle);
                        return Ok(LineEvent::Modem(ModemEvent::HungUp(
                            HangupCause::CarrierLost,
                        )));
                    }
                    DirectPhase::Ringing => {
                        self.reset(DirectPhase::Idle);
                        return Ok(LineEvent::Modem(ModemEvent::RingStopped));
                    }
                    DirectPhase::Idle | DirectPhase::HoldOff(_) => {
                        // Nobody on the other side: wait for someone to open it.
                        tokio::time::sleep(EOF_RETRY).await;
                        continue;
                    }
                }
            }
            match self.phase {
                DirectPhase::Online => return Ok(LineEvent::Data(chunk.to_vec())),
                DirectPhase::Ringing => {
                    if self.early.len() + chunk.len() <= MAX_EARLY {
                        self.early.extend_from_slice(chunk);
                    }
                }
                DirectPhase::HoldOff(until) => {
                    if Instant::now() >= until {
                        self.reset(DirectPhase::Idle);
                    }
                }
                DirectPhase::Idle => match self.detector.feed(chunk) {
                    Detect::Ppp(bytes) => {
                        tracing::debug!(octets = bytes.len(), "direct line: LCP seen");
                        self.early = bytes;
                        self.phase = DirectPhase::Ringing;
                        return Ok(LineEvent::Modem(ModemEvent::Ring {
                            count: 1,
                            caller: CallerId::default(),
                        }));
                    }
                    Detect::ReplyClientServer => {
                        self.io.write_all(b"CLIENTSERVER").await?;
                    }
                    _ => {}
                },
            }
        }
    }
}
