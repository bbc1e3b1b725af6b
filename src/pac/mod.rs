//! The PAC (`pptp-nas pac`): modem and ISDN lines on one side, PPTP tunnels on the other.
//!
//! Embedding (what `pptp-nas lab` and the tests do):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pptp_nas::pac::{self, config::{PacConfig, ValidateOptions}};
//! let config = PacConfig::load("pac.yaml".as_ref(), ValidateOptions::default())?;
//! let (pac_gre, pns_gre) = pac::gre::pair(4096); // in-process GRE; pns_gre goes to the PNS
//! let handle = pac::Pac::start(config, pac_gre)?;  // inside a tokio runtime
//! println!("{}", handle.status().to_text());
//! handle.shutdown().await;                         // clears calls, Stop-CC, resets modems
//! # drop(pns_gre); Ok(()) }
//! ```
//!
//! Structure: one task per PNS ([`pns`]: control connection, reconnect with back-off, call
//! events routed to lines), one task per line ([`line`]: modem control, tunnel selection
//! ([`select`]), call setup; the per-call data relay is [`relay`]), and one GRE demultiplexer that hands each received
//! packet to the line whose call it belongs to (by PNS address and our Call ID).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod capture;
pub mod cli;
pub mod config;
pub mod gre;
pub mod line;
pub mod lineio;
mod pns;
pub mod relay;
pub mod select;
pub mod status;
pub mod terminate;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use config::{LoadedConfig, PnsConfig};
use gre::{GreChannel, GreDatagram};
use line::{LineCtx, LineStats, LineView};
use pns::{PnsCmd, PnsShared};
use select::{PnsAvailability, Selector};

/// Why the PAC could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PacError {
    /// A line has no loaded hardware profile.
    #[error("line {line}: profile {profile:?} not loaded")]
    NoProfile {
        /// Line id.
        line: String,
        /// Profile name.
        profile: String,
    },
    /// I/O (status socket, raw socket).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The `terminate:` section could not be set up (users file).
    #[error("terminate: {0}")]
    Terminate(String),
}

/// A call's capture as the GRE tap sees it (gone when the call is).
type WeakCapture = std::sync::Weak<Mutex<capture::CallCapture>>;

/// State shared by the PAC's tasks.
pub(crate) struct Shared {
    pub(crate) selector: Selector,
    pns: HashMap<String, (PnsConfig, mpsc::Sender<PnsCmd>, Arc<PnsShared>)>,
    routes: Mutex<HashMap<(Ipv4Addr, u16), mpsc::Sender<Bytes>>>,
    pub(crate) gre_tx: mpsc::Sender<GreDatagram>,
    pub(crate) gre_unknown: std::sync::atomic::AtomicU64,
    /// Local PPP termination, when configured.
    pub(crate) terminator: Option<Arc<terminate::Terminator>>,
    /// `--pcap DIR`.
    pub(crate) pcap_dir: Option<std::path::PathBuf>,
    /// Our address (for captures; 0.0.0.0 when the kernel chooses).
    pub(crate) local_address: Ipv4Addr,
    /// Captures by (PNS address, the PNS's Call ID): what GRE packets to the PNS carry.
    captures: Mutex<HashMap<(Ipv4Addr, u16), WeakCapture>>,
}

impl Shared {
    pub(crate) fn pns_tx(&self, name: &str) -> Option<mpsc::Sender<PnsCmd>> {
        self.pns.get(name).map(|p| p.1.clone())
    }
    pub(crate) fn pns_cfg(&self, name: &str) -> Option<PnsConfig> {
        self.pns.get(name).map(|p| p.0.clone())
    }
    pub(crate) fn availability(&self, name: &str) -> Option<PnsAvailability> {
        self.pns.get(name).map(|(cfg, _, s)| PnsAvailability {
            backing_off: s.backing_off.load(Ordering::Relaxed),
            calls: s.calls.load(Ordering::Relaxed),
            max_calls: cfg.max_calls,
        })
    }
    pub(crate) fn register_capture(
        &self,
        peer: Ipv4Addr,
        peer_call_id: u16,
        c: &Arc<Mutex<capture::CallCapture>>,
    ) {
        if let Ok(mut m) = self.captures.lock() {
            m.retain(|_, w| w.strong_count() > 0);
            m.insert((peer, peer_call_id), Arc::downgrade(c));
        }
    }

    /// `--pcap`: a GRE packet on its way to a PNS.
    fn capture_out(&self, d: &GreDatagram) {
        let Ok(p) = crate::pptp::GrePacket::new_checked(&d.packet[..]) else {
            return;
        };
        let c = self.captures.lock().ok().and_then(|m| {
            m.get(&(d.peer, p.call_id()))
                .and_then(std::sync::Weak::upgrade)
        });
        if let Some(c) = c {
            if let Ok(mut c) = c.lock() {
                c.gre_out(&d.packet);
            }
        }
    }

    pub(crate) fn route(&self, peer: Ipv4Addr, call_id: u16, tx: mpsc::Sender<Bytes>) {
        if let Ok(mut r) = self.routes.lock() {
            r.insert((peer, call_id), tx);
        }
    }
    pub(crate) fn unroute(&self, peer: Ipv4Addr, call_id: u16) {
        if let Ok(mut r) = self.routes.lock() {
            r.remove(&(peer, call_id));
        }
    }
    fn deliver(&self, d: GreDatagram) {
        let Ok(p) = crate::pptp::GrePacket::new_checked(&d.packet[..]) else {
            self.gre_unknown.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let key = (d.peer, p.call_id());
        let tx = self.routes.lock().ok().and_then(|r| r.get(&key).cloned());
        match tx {
            // A full queue drops the packet, like a full socket buffer would.
            Some(tx) => {
                let _ = tx.try_send(d.packet);
            }
            None => {
                self.gre_unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A line that can dial for a PNS: its type, its status view, its command channel.
type DialLine = (
    config::LineKind,
    Arc<Mutex<LineView>>,
    mpsc::Sender<line::LineCmd>,
);

/// Hands a PNS's Outgoing-Call-Request to an idle line of the bearer asked for (analog:
/// modem lines, digital: ISDN lines, any: either; direct lines never dial), or answers it
/// with OCRP Do Not Accept, cause 34 (no circuit available), when none is free.
async fn dispatch_dialout(shared: &Shared, lines: &[DialLine], mut d: pns::DialOut) {
    use crate::pptp::message::BearerType;
    let bearer = d.request.bearer_type;
    let fits = |k: config::LineKind| match bearer {
        BearerType::Analog => k == config::LineKind::Modem,
        BearerType::Digital => k == config::LineKind::Isdn,
        _ => matches!(k, config::LineKind::Modem | config::LineKind::Isdn),
    };
    for (kind, view, tx) in lines {
        let idle = view.lock().map(|v| v.state == "idle").unwrap_or(false);
        if !idle || !fits(*kind) {
            continue;
        }
        match tx.try_send(line::LineCmd::Dial(Box::new(d))) {
            Ok(()) => return,
            Err(
                mpsc::error::TrySendError::Full(line::LineCmd::Dial(back))
                | mpsc::error::TrySendError::Closed(line::LineCmd::Dial(back)),
            ) => d = *back,
            // Only Dial was sent.
            Err(_) => return,
        }
    }
    tracing::info!(pns = %d.pns, call_id = d.call_id, bearer = ?d.request.bearer_type, "outgoing call refused: no free line of that bearer");
    if let Some(tx) = shared.pns_tx(&d.pns) {
        let mut r = crate::pptp::control::DialResult::failed(
            crate::pptp::message::OutgoingCallResult::DoNotAccept,
        );
        r.cause = crate::pptp::message::CauseCode::NoCircuitAvailable;
        let _ = tx
            .send(PnsCmd::DialResult {
                call_id: d.call_id,
                result: r,
            })
            .await;
    }
}

/// A running PAC.
pub struct Pac;

/// Options of [`Pac::start_with`] beyond the configuration file.
#[derive(Debug, Clone, Default)]
pub struct PacOptions {
    /// Write per-call captures into this directory (see [`capture`]).
    pub pcap: Option<std::path::PathBuf>,
}

/// Handle to a running PAC: status, reload and shutdown.
pub struct PacHandle {
    source: Arc<status::StatusSource>,
    stop: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
    pns_tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    lines: LineSlots,
    dial_lines: Arc<Mutex<Vec<DialLine>>>,
    config: config::PacConfig,
    profiles: HashMap<String, crate::modem::profile::Profile>,
}

/// One configured line as the PAC runs it.
pub(crate) struct LineSlot {
    pub(crate) cfg: config::LineConfig,
    pub(crate) view: Arc<Mutex<LineView>>,
    pub(crate) stats: Arc<LineStats>,
    cmd: Option<mpsc::Sender<line::LineCmd>>,
    task: Option<JoinHandle<()>>,
}

impl LineSlot {
    fn dial_line(&self) -> Option<DialLine> {
        let cmd = self.cmd.clone()?;
        (self.cfg.kind != config::LineKind::Direct).then(|| (self.cfg.kind, self.view.clone(), cmd))
    }
}

/// The running lines, shared with `status` and the reload watchers.
pub(crate) type LineSlots = Arc<Mutex<Vec<LineSlot>>>;

/// What a reload did (SIGHUP).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Lines started.
    pub added: Vec<String>,
    /// Lines stopped (at once when idle, else when their call ends).
    pub removed: Vec<String>,
    /// Lines restarted with their new configuration (at once when idle, else after the call).
    pub changed: Vec<String>,
    /// Sections that changed but need a restart (only `lines` are reloaded).
    pub not_applied: Vec<String>,
}

/// Starts one line task (or none for a disabled line). `reuse` keeps the status entry and
/// counters of the line this one replaces.
fn spawn_line(
    shared: &Arc<Shared>,
    config: &LoadedConfig,
    l: &config::LineConfig,
    reuse: Option<(Arc<Mutex<LineView>>, Arc<LineStats>)>,
    stop: watch::Receiver<bool>,
) -> Result<LineSlot, PacError> {
    let (view, stats) = reuse.unwrap_or_else(|| {
        (
            Arc::new(Mutex::new(LineView {
                id: l.id.clone(),
                ..LineView::default()
            })),
            Arc::new(LineStats::default()),
        )
    });
    if let Ok(mut v) = view.lock() {
        *v = LineView {
            id: l.id.clone(),
            state: if l.enabled { "starting" } else { "disabled" }.into(),
            ..LineView::default()
        };
    }
    if !l.enabled {
        return Ok(LineSlot {
            cfg: l.clone(),
            view,
            stats,
            cmd: None,
            task: None,
        });
    }
    let (cmd_tx, cmd_rx) = mpsc::channel::<line::LineCmd>(4);
    let profile = config.profile(l).ok_or_else(|| PacError::NoProfile {
        line: l.id.clone(),
        profile: l.profile.clone(),
    })?;
    let (control, ring) = line::pac_control(profile.control_config());
    let baud = l.baud.unwrap_or(profile.baud);
    let rtscts = match l.flow_control {
        Some(config::FlowControl::Rtscts) => true,
        Some(config::FlowControl::None) => false,
        None => profile.rtscts,
    };
    let direct = l.kind == config::LineKind::Direct;
    let ctx = LineCtx {
        cfg: l.clone(),
        // A direct line's only "RING" is the peer's first LCP frame.
        offer_on_ring: if direct {
            1
        } else {
            l.offer_on_ring.unwrap_or(ring)
        },
        shared: shared.clone(),
        stats: stats.clone(),
        view: view.clone(),
    };
    let span = tracing::info_span!("line", line = %l.id, device = %l.device.display());
    let device = l.device.clone();
    let task_view = view.clone();
    let task = tokio::spawn(
        async move {
            match crate::io::line::open_serial(&device, baud, rtscts) {
                Ok(io) => {
                    let io = if direct {
                        lineio::LineIo::direct(lineio::DirectLine::new(io, baud))
                    } else {
                        lineio::LineIo::modem(crate::io::line::ModemLine::new(io, control))
                    };
                    line::run(ctx, io, stop, cmd_rx).await
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot open line device: out of service");
                    if let Ok(mut v) = task_view.lock() {
                        v.state = format!("out-of-service: {e}");
                    }
                }
            }
        }
        .instrument(span),
    );
    Ok(LineSlot {
        cfg: l.clone(),
        view,
        stats,
        cmd: Some(cmd_tx),
        task: Some(task),
    })
}

impl std::fmt::Debug for PacHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacHandle")
            .field("lines", &self.lines.lock().map(|v| v.len()).unwrap_or(0))
            .finish()
    }
}

impl Pac {
    /// Starts the PAC: one task per enabled line (opening its device), one per PNS (connecting
    /// at once and keeping the connection up), and the GRE demultiplexer. Must be called inside
    /// a tokio runtime. A line whose device cannot be opened is logged and left out of service;
    /// the others run.
    pub fn start(config: LoadedConfig, gre: GreChannel) -> Result<PacHandle, PacError> {
        Self::start_with(config, gre, PacOptions::default())
    }

    /// [`Pac::start`] with options (`--pcap`).
    pub fn start_with(
        config: LoadedConfig,
        gre: GreChannel,
        opts: PacOptions,
    ) -> Result<PacHandle, PacError> {
        let c = &config.config;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut pns = HashMap::new();
        let mut pns_tasks = Vec::new();
        // Outgoing-Call-Requests from every PNS go to one dispatcher that picks a line.
        let (dialout_tx, mut dialout_rx) = mpsc::unbounded_channel::<pns::DialOut>();
        for p in &c.pns {
            let (tx, rx) = mpsc::channel(256);
            let shared = Arc::new(PnsShared::default());
            pns.insert(p.name.clone(), (p.clone(), tx, shared.clone()));
            pns_tasks.push(tokio::spawn(pns::run(
                c.pac.clone(),
                p.clone(),
                shared,
                rx,
                stop_rx.clone(),
                dialout_tx.clone(),
            )));
        }
        drop(dialout_tx);
        let terminator = match &c.terminate {
            Some(t) => {
                let base = config
                    .source
                    .as_ref()
                    .and_then(|f| f.parent())
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default();
                Some(Arc::new(
                    terminate::Terminator::new(t, &base).map_err(PacError::Terminate)?,
                ))
            }
            None => None,
        };
        // With --pcap, GRE to the PNS passes a tap that captures it per call.
        let (gre_tx, tap) = if opts.pcap.is_some() {
            let (tx, rx) = mpsc::channel::<GreDatagram>(4096);
            (tx, Some((rx, gre.tx)))
        } else {
            (gre.tx, None)
        };
        let shared = Arc::new(Shared {
            terminator,
            pcap_dir: opts.pcap.clone(),
            local_address: c.pac.local_address.unwrap_or(Ipv4Addr::UNSPECIFIED),
            captures: Mutex::new(HashMap::new()),
            selector: Selector::new(c),
            pns,
            routes: Mutex::new(HashMap::new()),
            gre_tx,
            gre_unknown: Default::default(),
        });
        let mut tasks = Vec::new();
        if let Some((mut rx, out)) = tap {
            let tap_shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(d) = rx.recv().await {
                    tap_shared.capture_out(&d);
                    if out.send(d).await.is_err() {
                        return;
                    }
                }
            }));
        }
        let demux_shared = shared.clone();
        let mut gre_rx = gre.rx;
        let mut demux_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    d = gre_rx.recv() => match d {
                        Some(d) => demux_shared.deliver(d),
                        None => return,
                    },
                    _ = demux_stop.changed() => return,
                }
            }
        }));
        let lines: LineSlots = Arc::new(Mutex::new(Vec::new()));
        let dial_lines: Arc<Mutex<Vec<DialLine>>> = Arc::new(Mutex::new(Vec::new()));
        for l in &c.lines {
            let slot = spawn_line(&shared, &config, l, None, stop_rx.clone())?;
            if let Some(d) = slot.dial_line() {
                if let Ok(mut v) = dial_lines.lock() {
                    v.push(d);
                }
            }
            if let Ok(mut v) = lines.lock() {
                v.push(slot);
            }
        }
        let dispatch_shared = shared.clone();
        let dispatch_lines = dial_lines.clone();
        let mut dispatch_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    d = dialout_rx.recv() => match d {
                        Some(d) => {
                            let lines = dispatch_lines.lock().map(|v| v.clone()).unwrap_or_default();
                            dispatch_dialout(&dispatch_shared, &lines, d).await
                        }
                        None => return,
                    },
                    _ = dispatch_stop.changed() => return,
                }
            }
        }));
        Ok(PacHandle {
            source: Arc::new(status::StatusSource {
                shared: shared.clone(),
                lines: lines.clone(),
                started: std::time::Instant::now(),
            }),
            stop_rx,
            stop: stop_tx,
            tasks,
            pns_tasks,
            shared,
            lines,
            dial_lines,
            config: config.config.clone(),
            profiles: config.profiles.clone(),
        })
    }
}

impl PacHandle {
    /// Applies a new configuration to the lines (SIGHUP): new lines start, removed lines stop,
    /// changed lines restart with their new settings. A line with a call keeps its old
    /// configuration until the call ends. PNS, rules and `terminate:` changes are reported in
    /// [`ReloadReport::not_applied`] (they need a restart). Must be called inside the runtime.
    pub fn reload(&mut self, new: LoadedConfig) -> ReloadReport {
        let mut report = ReloadReport::default();
        let new = Arc::new(new);
        let old = self.config.clone();
        let n = &new.config;
        if old.pns != n.pns {
            report.not_applied.push("pns".into());
        }
        if old.rules != n.rules || old.default != n.default {
            report.not_applied.push("rules/default".into());
        }
        if old.terminate != n.terminate {
            report.not_applied.push("terminate".into());
        }
        if old.pac != n.pac {
            report.not_applied.push("pac".into());
        }
        let Ok(mut slots) = self.lines.lock() else {
            return report;
        };
        // Removed and changed lines retire (now if idle, after the call otherwise).
        let mut keep = Vec::new();
        let mut replace = Vec::new();
        for slot in slots.drain(..) {
            match n.lines.iter().find(|l| l.id == slot.cfg.id) {
                Some(l) if *l == slot.cfg && new.profile(l) == self.profile_of(&slot.cfg) => {
                    keep.push(slot)
                }
                Some(l) => {
                    report.changed.push(l.id.clone());
                    replace.push((slot, Some(l.clone())));
                }
                None => {
                    report.removed.push(slot.cfg.id.clone());
                    replace.push((slot, None));
                }
            }
        }
        *slots = keep;
        // Added lines start now.
        for l in &n.lines {
            if old.lines.iter().any(|o| o.id == l.id) {
                continue;
            }
            report.added.push(l.id.clone());
            match spawn_line(&self.shared, &new, l, None, self.stop_rx.clone()) {
                Ok(slot) => slots.push(slot),
                Err(e) => tracing::error!(line = %l.id, error = %e, "reload: cannot start line"),
            }
        }
        drop(slots);
        for (mut old_slot, next) in replace {
            if let Ok(mut v) = old_slot.view.lock() {
                // A line with a call shows the call until it ends.
                if v.call.is_none() {
                    v.state = if next.is_some() {
                        "reloading"
                    } else {
                        "removing"
                    }
                    .into();
                }
            }
            if let Some(cmd) = &old_slot.cmd {
                let _ = cmd.try_send(line::LineCmd::Retire);
            }
            // Keep it in status (and shutdown) until it is gone.
            let task = old_slot.task.take();
            let lines = self.lines.clone();
            let shared = self.shared.clone();
            let new = new.clone();
            let stop = self.stop_rx.clone();
            let placeholder = LineSlot {
                cfg: old_slot.cfg.clone(),
                view: old_slot.view.clone(),
                stats: old_slot.stats.clone(),
                cmd: None,
                task: None,
            };
            if let Ok(mut v) = self.lines.lock() {
                v.push(placeholder);
            }
            let view = old_slot.view.clone();
            let stats = old_slot.stats.clone();
            tokio::spawn(async move {
                if let Some(t) = task {
                    let _ = t.await;
                }
                let next_slot = match &next {
                    Some(l) if !*stop.borrow() => {
                        match spawn_line(&shared, &new, l, Some((view.clone(), stats)), stop) {
                            Ok(s) => Some(s),
                            Err(e) => {
                                tracing::error!(line = %l.id, error = %e, "reload: cannot restart line");
                                None
                            }
                        }
                    }
                    _ => None,
                };
                if let Ok(mut v) = lines.lock() {
                    v.retain(|s| !Arc::ptr_eq(&s.view, &view));
                    if let Some(s) = next_slot {
                        v.push(s);
                    }
                }
            });
        }
        self.refresh_dial_lines();
        self.config = new.config.clone();
        self.profiles = new.profiles.clone();
        report
    }

    fn profile_of(&self, l: &config::LineConfig) -> Option<&crate::modem::profile::Profile> {
        self.profiles.get(&l.profile)
    }

    fn refresh_dial_lines(&self) {
        let lines = self.lines.clone();
        let dial = self.dial_lines.clone();
        // Restarted lines appear when their old task ends: refresh then too.
        tokio::spawn(async move {
            for _ in 0..600 {
                let now: Vec<DialLine> = lines
                    .lock()
                    .map(|v| v.iter().filter_map(LineSlot::dial_line).collect())
                    .unwrap_or_default();
                let done = lines
                    .lock()
                    .map(|v| v.iter().all(|s| s.cmd.is_some() || !s.cfg.enabled))
                    .unwrap_or(true);
                if let Ok(mut d) = dial.lock() {
                    *d = now;
                }
                if done {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
    }

    /// A snapshot of lines, calls and control connections.
    pub fn status(&self) -> status::Status {
        self.source.collect()
    }

    /// Serves `status` requests on a unix socket at `path` until the PAC stops (the socket
    /// file is replaced if it exists).
    pub fn serve_status(&mut self, path: &std::path::Path) -> std::io::Result<()> {
        let t = status::serve(path, self.source.clone(), self.stop.subscribe())?;
        self.tasks.push(t);
        Ok(())
    }

    /// Clean stop: lines stop taking calls and hang up (Call-Disconnect-Notify for each call),
    /// then every control connection sends Stop-Control-Connection-Request. Bounded: tasks
    /// still running after 10 s are aborted.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let line_tasks: Vec<JoinHandle<()>> = self
            .lines
            .lock()
            .map(|mut v| v.iter_mut().filter_map(|s| s.task.take()).collect())
            .unwrap_or_default();
        for t in line_tasks.into_iter().chain(self.tasks) {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
        for t in self.pns_tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
    }
}
