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

/// State shared by the PAC's tasks.
pub(crate) struct Shared {
    pub(crate) selector: Selector,
    pns: HashMap<String, (PnsConfig, mpsc::Sender<PnsCmd>, Arc<PnsShared>)>,
    routes: Mutex<HashMap<(Ipv4Addr, u16), mpsc::Sender<Bytes>>>,
    pub(crate) gre_tx: mpsc::Sender<GreDatagram>,
    pub(crate) gre_unknown: std::sync::atomic::AtomicU64,
    /// Local PPP termination, when configured.
    pub(crate) terminator: Option<Arc<terminate::Terminator>>,
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
        match tx.try_send(line::LineCmd::Dial(d)) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(line::LineCmd::Dial(back)))
            | Err(mpsc::error::TrySendError::Closed(line::LineCmd::Dial(back))) => d = back,
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

/// Handle to a running PAC: status and shutdown.
pub struct PacHandle {
    source: Arc<status::StatusSource>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pns_tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for PacHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacHandle")
            .field("lines", &self.source.lines.len())
            .finish()
    }
}

impl Pac {
    /// Starts the PAC: one task per enabled line (opening its device), one per PNS (connecting
    /// at once and keeping the connection up), and the GRE demultiplexer. Must be called inside
    /// a tokio runtime. A line whose device cannot be opened is logged and left out of service;
    /// the others run.
    pub fn start(config: LoadedConfig, gre: GreChannel) -> Result<PacHandle, PacError> {
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
        let shared = Arc::new(Shared {
            terminator,
            selector: Selector::new(c),
            pns,
            routes: Mutex::new(HashMap::new()),
            gre_tx: gre.tx,
            gre_unknown: Default::default(),
        });
        let mut tasks = Vec::new();
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
        let mut lines = Vec::new();
        let mut dial_lines: Vec<DialLine> = Vec::new();
        for l in &c.lines {
            let view = Arc::new(Mutex::new(LineView {
                id: l.id.clone(),
                state: if l.enabled { "starting" } else { "disabled" }.into(),
                ..LineView::default()
            }));
            let stats = Arc::new(LineStats::default());
            lines.push((view.clone(), stats.clone()));
            if !l.enabled {
                continue;
            }
            let (cmd_tx, cmd_rx) = mpsc::channel::<line::LineCmd>(4);
            if l.kind != config::LineKind::Direct {
                dial_lines.push((l.kind, view.clone(), cmd_tx));
            }
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
                stats,
                view: view.clone(),
            };
            let span = tracing::info_span!("line", line = %l.id, device = %l.device.display());
            let device = l.device.clone();
            let stop = stop_rx.clone();
            tasks.push(tokio::spawn(
                async move {
                    match crate::io::line::open_serial(&device, baud, rtscts) {
                        Ok(io) => {
                            let io = if direct {
                                lineio::LineIo::Direct(lineio::DirectLine::new(io, baud))
                            } else {
                                lineio::LineIo::Modem(Box::new(crate::io::line::ModemLine::new(
                                    io, control,
                                )))
                            };
                            line::run(ctx, io, stop, cmd_rx).await
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot open line device: out of service");
                            if let Ok(mut v) = view.lock() {
                                v.state = format!("out-of-service: {e}");
                            }
                        }
                    }
                }
                .instrument(span),
            ));
        }
        let dispatch_shared = shared.clone();
        let mut dispatch_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    d = dialout_rx.recv() => match d {
                        Some(d) => dispatch_dialout(&dispatch_shared, &dial_lines, d).await,
                        None => return,
                    },
                    _ = dispatch_stop.changed() => return,
                }
            }
        }));
        Ok(PacHandle {
            source: Arc::new(status::StatusSource {
                shared,
                lines,
                started: std::time::Instant::now(),
            }),
            stop: stop_tx,
            tasks,
            pns_tasks,
        })
    }
}

impl PacHandle {
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
        for t in self.tasks {
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
