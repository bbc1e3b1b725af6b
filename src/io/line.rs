//! The line driver: a serial device or pty, in command mode (AT lines) or data mode (PPP bytes).
//!
//! [`ModemLine`] is the thin tokio shell around [`ModemControl`]: it writes the machine's AT
//! strings, feeds it response lines, sets DTR, runs its one timer, and once the machine is
//! online hands the PAC the data bytes. The switch is octet-exact: the splitter stops right
//! after the `CONNECT ...` line, and whatever followed it in the same read is the first data.
//!
//! Carrier loss in data mode is seen three ways: DCD dropping (polled every 200 ms, only on
//! devices where DCD was seen high during the call), the modem's `NO CARRIER` text in the data
//! stream, and EOF/EIO on the device. A pty has no modem-control lines: `TIOCMGET`/`TIOCMBIS`
//! fail (ENOTTY/EINVAL), and the line switches to *local* mode where DTR hang-up falls back to
//! the escape method and EOF is the carrier loss.
//!
//! [`wait_for_ppp`] is the driver for `direct` lines (no modem at all).

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_serial::{SerialPort, SerialPortBuilderExt, SerialStream};

use crate::modem::control::{Action, ControlConfig, ControlError, Event, ModemControl};
use crate::modem::direct::{Detect, LcpDetector};
use crate::modem::result::LineSplitter;

/// A byte stream with (maybe) modem-control lines.
pub trait ModemIo: AsyncRead + AsyncWrite + Unpin + Send {
    /// Sets DTR; an error means the device has no such line (a pty).
    fn set_dtr(&mut self, on: bool) -> io::Result<()>;
    /// Reads DCD; an error means the device has no such line.
    fn carrier_detect(&mut self) -> io::Result<bool>;
}

impl ModemIo for SerialStream {
    fn set_dtr(&mut self, on: bool) -> io::Result<()> {
        self.write_data_terminal_ready(on).map_err(io::Error::from)
    }
    fn carrier_detect(&mut self) -> io::Result<bool> {
        self.read_carrier_detect().map_err(io::Error::from)
    }
}

/// Opens a serial device (or pty slave) 8N1 at `baud`, exclusive, with RTS/CTS flow control
/// when `rtscts` (ptys ignore it).
pub fn open_serial(path: &Path, baud: u32, rtscts: bool) -> io::Result<SerialStream> {
    let flow = if rtscts {
        tokio_serial::FlowControl::Hardware
    } else {
        tokio_serial::FlowControl::None
    };
    let mut s = tokio_serial::new(path.to_string_lossy(), baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(flow)
        .open_native_async()
        .map_err(io::Error::from)?;
    s.set_exclusive(true).map_err(io::Error::from)?;
    Ok(s)
}

/// What [`ModemLine::next`] reports.
// Modem events are rare (a few per call) and data chunks are the hot path; boxing the event
// would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// A modem-control event (RING, CONNECT, hang-up, out of service, ...).
    Modem(Event),
    /// Data-mode bytes from the line (PPP in async HDLC).
    Data(Vec<u8>),
}

const NO_CARRIER: &[u8] = b"\r\nNO CARRIER\r\n";
const DCD_POLL: Duration = Duration::from_millis(200);
/// Size of one line read.
const READ_BUF: usize = 16 * 1024;

/// A modem on a line, driven by [`ModemControl`] (see the module documentation).
#[derive(Debug)]
pub struct ModemLine<S> {
    io: S,
    fsm: ModemControl,
    splitter: LineSplitter,
    pending: Vec<u8>,
    local: bool,
    dcd_seen: bool,
    nc_match: usize,
    skip_lf: bool,
    buf: Box<[u8]>,
}

impl<S: ModemIo> ModemLine<S> {
    /// Wraps an open device and starts the modem (reset + init).
    pub fn new(io: S, cfg: ControlConfig) -> Self {
        let mut fsm = ModemControl::new(cfg);
        fsm.start(Instant::now().into_std());
        ModemLine {
            io,
            fsm,
            splitter: LineSplitter::default(),
            pending: Vec::new(),
            local: false,
            dcd_seen: false,
            nc_match: 0,
            skip_lf: false,
            // Large reads: at line rates a read returns whatever the tty holds, and every read
            // costs a wake-up, a select and a copy; 16 KiB takes several full frames at once.
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
        }
    }

    /// The control machine (state, config).
    pub fn control(&self) -> &ModemControl {
        &self.fsm
    }

    /// Whether the device turned out to have no modem-control lines (a pty).
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Answers the ringing call.
    pub fn answer(&mut self) -> Result<(), ControlError> {
        self.fsm.answer(Instant::now().into_std())
    }

    /// Dials a number.
    pub fn dial(&mut self, number: &str) -> Result<(), ControlError> {
        self.fsm.dial(Instant::now().into_std(), number)
    }

    /// Hangs up (DTR drop or escape, per profile) and re-initialises.
    pub fn hangup(&mut self) {
        self.fsm.hangup(Instant::now().into_std());
    }

    /// Writes data-mode bytes (only while online; otherwise they are dropped).
    pub async fn send_data(&mut self, data: &[u8]) -> io::Result<()> {
        if self.fsm.is_online() {
            self.io.write_all(data).await?;
        }
        Ok(())
    }

    /// Drives the line until there is something to report.
    ///
    /// Cancel safety: reads and timers are cancel-safe, but an AT command being written when
    /// the future is dropped may be cut short; drop `next()` only between calls, or accept that
    /// the command times out and the modem is re-initialised.
    pub async fn next(&mut self) -> io::Result<LineEvent> {
        loop {
            self.run_actions().await?;
            if let Some(ev) = self.fsm.poll_event() {
                if matches!(ev, Event::Connected { .. }) {
                    self.dcd_seen = false;
                    self.nc_match = 0;
                }
                return Ok(LineEvent::Modem(ev));
            }
            if !self.pending.is_empty() {
                let data = std::mem::take(&mut self.pending);
                if let Some(data) = self.data_in(data) {
                    return Ok(LineEvent::Data(data));
                }
                continue;
            }
            let deadline = self.fsm.poll_timeout().map(Instant::from_std);
            let online = self.fsm.is_online();
            let poll_dcd = online && !self.local;
            tokio::select! {
                r = self.io.read(&mut self.buf) => {
                    let n = match r {
                        Ok(n) => n,
                        // A pty whose other side went away reads EIO.
                        Err(e) if e.raw_os_error() == Some(5) => 0,
                        Err(e) => return Err(e),
                    };
                    let now = Instant::now().into_std();
                    if n == 0 {
                        if online {
                            self.fsm.carrier_lost(now);
                            continue;
                        }
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "line closed"));
                    }
                    let chunk = self.buf.get(..n).unwrap_or_default().to_vec();
                    if online {
                        if let Some(data) = self.data_in(chunk) {
                            return Ok(LineEvent::Data(data));
                        }
                    } else {
                        self.command_in(now, &chunk);
                    }
                }
                () = sleep_until_opt(deadline) => {
                    self.fsm.handle_timeout(Instant::now().into_std());
                }
                () = tokio::time::sleep(DCD_POLL), if poll_dcd => {
                    match self.io.carrier_detect() {
                        Ok(true) => self.dcd_seen = true,
                        Ok(false) if self.dcd_seen => {
                            self.fsm.carrier_lost(Instant::now().into_std());
                        }
                        Ok(false) => {}
                        Err(_) => self.local = true,
                    }
                }
            }
        }
    }

    /// Feeds command-mode bytes line by line; stops exactly where data mode begins.
    fn command_in(&mut self, now: std::time::Instant, chunk: &[u8]) {
        for (i, &b) in chunk.iter().enumerate() {
            if let Some(line) = self.splitter.push(b) {
                self.fsm.handle_line(now, &line);
                if self.fsm.is_online() {
                    // "CONNECT 33600\r\n": the LF after the CR belongs to the result code.
                    let mut rest = chunk.get(i + 1..).unwrap_or_default();
                    if b == b'\r' {
                        match rest.first() {
                            Some(b'\n') => rest = rest.get(1..).unwrap_or_default(),
                            Some(_) => {}
                            None => self.skip_lf = true,
                        }
                    }
                    self.pending.extend_from_slice(rest);
                    self.splitter.clear();
                    return;
                }
            }
        }
    }

    /// Data-mode bytes: scans for the modem's NO CARRIER text; returns the data to deliver.
    fn data_in(&mut self, mut chunk: Vec<u8>) -> Option<Vec<u8>> {
        if std::mem::take(&mut self.skip_lf) && chunk.first() == Some(&b'\n') {
            chunk.remove(0);
        }
        for (i, &b) in chunk.iter().enumerate() {
            if NO_CARRIER.get(self.nc_match) == Some(&b) {
                self.nc_match += 1;
            } else {
                self.nc_match = usize::from(NO_CARRIER.first() == Some(&b));
            }
            if self.nc_match == NO_CARRIER.len() {
                self.nc_match = 0;
                let keep = (i + 1).saturating_sub(NO_CARRIER.len());
                self.fsm.carrier_lost(Instant::now().into_std());
                let data = chunk.get(..keep).unwrap_or_default().to_vec();
                return (!data.is_empty()).then_some(data);
            }
        }
        (!chunk.is_empty()).then_some(chunk)
    }

    async fn run_actions(&mut self) -> io::Result<()> {
        while let Some(a) = self.fsm.poll_transmit() {
            match a {
                Action::Write(bytes) => {
                    tracing::trace!(cmd = %String::from_utf8_lossy(&bytes).trim_end(), "modem <-");
                    self.io.write_all(&bytes).await?;
                    self.io.flush().await?;
                }
                Action::SetDtr(on) => {
                    if self.local {
                        self.fsm.dtr_unsupported(Instant::now().into_std());
                    } else if let Err(e) = self.io.set_dtr(on) {
                        tracing::debug!(error = %e, "line has no DTR: local mode");
                        self.local = true;
                        self.fsm.dtr_unsupported(Instant::now().into_std());
                    }
                }
            }
        }
        Ok(())
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// How a direct line's wait for PPP ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectStart {
    /// PPP arrived: these octets (from the first LCP frame's flag on) start the call.
    Ppp(Vec<u8>),
    /// The line closed (EOF) before PPP arrived.
    Closed,
}

/// Waits on a `direct` line for the peer's first LCP frame, answering the Windows
/// `CLIENT`/`CLIENTSERVER` handshake on the way. No AT commands are sent.
pub async fn wait_for_ppp<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
) -> io::Result<DirectStart> {
    let mut det = LcpDetector::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = match io.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(5) => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(DirectStart::Closed);
        }
        match det.feed(buf.get(..n).unwrap_or_default()) {
            Detect::Ppp(bytes) => return Ok(DirectStart::Ppp(bytes)),
            Detect::ReplyClientServer => io.write_all(b"CLIENTSERVER").await?,
            _ => {}
        }
    }
}

/// Reads a direct line's data until EOF or `silence` without a byte (= hang-up), passing each
/// chunk to `sink`. Returns the number of octets read.
pub async fn read_until_silence<S: AsyncRead + Unpin>(
    io: &mut S,
    silence: Duration,
    mut sink: impl FnMut(&[u8]),
) -> io::Result<u64> {
    let mut buf = [0u8; 2048];
    let mut total = 0u64;
    loop {
        match tokio::time::timeout(silence, io.read(&mut buf)).await {
            Err(_) => return Ok(total),
            Ok(Ok(0)) => return Ok(total),
            Ok(Err(e)) if e.raw_os_error() == Some(5) => return Ok(total),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(n)) => {
                total += u64::try_from(n).unwrap_or(0);
                sink(buf.get(..n).unwrap_or_default());
            }
        }
    }
}
