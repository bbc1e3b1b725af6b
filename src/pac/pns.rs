//! One task per PNS: keeps the control connection up (connect, reconnect with back-off), runs
//! the sans-IO [`Connection`] core, and routes call events to the line tasks.
//!
//! Line tasks talk to it with [`PnsCmd`]s; each call registers an event sender when it is
//! created, and gets [`CallEv`]s back (answer, up, down, Set-Link-Info). All calls of all lines
//! bound to one PNS share its control connection.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::config::{Identity, PnsConfig};
use crate::pptp::control::{
    CallEnd, CallInfo, CommandError, Config, Connection, Event, IncomingCall, Open, OutgoingCall,
    Role, Timeouts,
};
use crate::pptp::message::{
    CauseCode, FramingType, OutgoingCallResult, StopReason, TextField, WanErrorNotify,
};

/// What a call hears from its control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallEv {
    /// Incoming-call mode: the PNS accepted (ICRP); answer the line.
    Answer,
    /// The call is up (ICCN sent, or OCRP Connected in compat mode).
    Up(CallInfo),
    /// The call is over (or never came up).
    Down(CallEnd),
    /// Set-Link-Info.
    LinkInfo {
        /// ACCM for frames sent to the line.
        send_accm: u32,
        /// ACCM for frames received from the line.
        receive_accm: u32,
    },
}

/// Commands from line tasks.
#[derive(Debug)]
pub(crate) enum PnsCmd {
    /// Incoming-call mode: send ICRQ.
    Incoming {
        call: IncomingCall,
        events: mpsc::UnboundedSender<CallEv>,
        reply: oneshot::Sender<Result<u16, String>>,
    },
    /// Compat mode: send OCRQ.
    Outgoing {
        call: OutgoingCall,
        events: mpsc::UnboundedSender<CallEv>,
        reply: oneshot::Sender<Result<u16, String>>,
    },
    /// The line answered (CONNECT): send ICCN.
    Answered {
        call_id: u16,
        speed: u32,
        framing: FramingType,
    },
    /// The line side ended the call: CDN (or CCRQ for a compat call).
    HangUp { call_id: u16, cause: CauseCode },
    /// Line error counters (cumulative).
    Wan {
        call_id: u16,
        counters: WanErrorNotify,
    },
    /// A dial-out asked for by the PNS (OCRQ) finished: send OCRP.
    DialResult {
        call_id: u16,
        result: crate::pptp::control::DialResult,
    },
}

/// An Outgoing-Call-Request from a PNS, handed to the PAC's line dispatcher: pick a free line
/// of the right bearer, dial, answer with [`PnsCmd::DialResult`].
#[derive(Debug)]
pub(crate) struct DialOut {
    /// Name of the PNS that asked.
    pub(crate) pns: String,
    /// Our Call ID for the call.
    pub(crate) call_id: u16,
    /// The request (number, bearer, speeds).
    pub(crate) request: crate::pptp::message::OutgoingCallRequest,
    /// Events of the call (up once the OCRP Connected went out, down on CCRQ).
    pub(crate) events: mpsc::UnboundedReceiver<CallEv>,
}

/// Connection state shown by `status` and used by tunnel selection.
#[derive(Debug, Default)]
pub(crate) struct PnsShared {
    /// Waiting to retry after a failed connection.
    pub(crate) backing_off: AtomicBool,
    /// The control connection is established.
    pub(crate) up: AtomicBool,
    /// Calls on it (any state).
    pub(crate) calls: AtomicUsize,
    /// Connections established since start.
    pub(crate) connects: AtomicU64,
    /// Connection attempts that failed.
    pub(crate) failures: AtomicU64,
    /// Human-readable state and last close reason.
    pub(crate) state: Mutex<String>,
}

impl PnsShared {
    fn set_state(&self, s: impl Into<String>) {
        if let Ok(mut g) = self.state.lock() {
            *g = s.into();
        }
    }
}

fn control_config(ident: &Identity, cfg: &PnsConfig, serial_seed: u16) -> Config {
    let mut c = Config::new(Role::Pac);
    c.host_name = TextField::new(ident.host_name.as_bytes()).unwrap_or_default();
    c.vendor = TextField::new(ident.vendor.as_bytes()).unwrap_or_default();
    c.firmware_revision = ident.firmware_revision;
    c.recv_window = cfg.gre.window;
    c.maximum_channels = cfg.max_calls.unwrap_or(u16::MAX);
    c.first_call_id = serial_seed.max(1);
    c.first_serial = serial_seed;
    c.timeouts = Timeouts {
        start: Duration::from_secs(cfg.connect_timeout_s),
        echo_interval: cfg.echo_interval(),
        icrp: Duration::from_secs(cfg.reply_timeout_s),
        ocrp: Duration::from_secs(cfg.reply_timeout_s),
        ..Timeouts::default()
    };
    c
}

async fn connect(local: Option<Ipv4Addr>, cfg: &PnsConfig) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if let Some(a) = local {
        sock.bind(SocketAddrV4::new(a, 0).into())?;
    }
    let to = SocketAddrV4::new(cfg.address, cfg.port);
    match tokio::time::timeout(
        Duration::from_secs(cfg.connect_timeout_s),
        sock.connect(to.into()),
    )
    .await
    {
        Ok(r) => {
            let s = r?;
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        )),
    }
}

/// Runs the control connection of one PNS until `stop` turns true (then clears its calls,
/// sends Stop-Control-Connection-Request and returns).
pub(crate) async fn run(
    ident: Identity,
    cfg: PnsConfig,
    shared: Arc<PnsShared>,
    mut cmds: mpsc::Receiver<PnsCmd>,
    mut stop: watch::Receiver<bool>,
    dialout: mpsc::UnboundedSender<DialOut>,
) {
    let mut backoff = Duration::from_secs(cfg.reconnect_min_s.max(1));
    let max_backoff = Duration::from_secs(cfg.reconnect_max_s.max(cfg.reconnect_min_s).max(1));
    let mut seed: u16 = 1;
    loop {
        if *stop.borrow() {
            return;
        }
        shared.set_state("connecting");
        let tcp = tokio::select! {
            r = connect(ident.local_address, &cfg) => r,
            _ = stop.changed() => return,
        };
        let ok = match tcp {
            Ok(tcp) => {
                seed = seed.wrapping_add(1000);
                let span = tracing::info_span!("pns", pns = %cfg.name, addr = %cfg.address);
                session(
                    &ident, &cfg, &shared, &mut cmds, &mut stop, tcp, seed, &dialout,
                )
                .instrument(span)
                .await
            }
            Err(e) => {
                tracing::warn!(pns = %cfg.name, addr = %cfg.address, error = %e, "cannot reach PNS");
                shared.set_state(format!("unreachable: {e}"));
                false
            }
        };
        shared.up.store(false, Ordering::Relaxed);
        shared.calls.store(0, Ordering::Relaxed);
        if *stop.borrow() {
            return;
        }
        if ok {
            backoff = Duration::from_secs(cfg.reconnect_min_s.max(1));
        } else {
            shared.failures.fetch_add(1, Ordering::Relaxed);
        }
        // Back off; commands arriving meanwhile are refused at once so callers fail over.
        shared.backing_off.store(true, Ordering::Relaxed);
        let until = Instant::now() + backoff;
        tracing::info!(pns = %cfg.name, retry_in = ?backoff, "control connection down, will retry");
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                _ = stop.changed() => return,
                c = cmds.recv() => match c {
                    None => return,
                    Some(c) => refuse(c, "PNS unreachable (reconnecting)"),
                },
            }
        }
        shared.backing_off.store(false, Ordering::Relaxed);
        if !ok {
            backoff = (backoff * 2).min(max_backoff);
        }
    }
}

fn refuse(c: PnsCmd, why: &str) {
    match c {
        PnsCmd::Incoming { reply, .. } | PnsCmd::Outgoing { reply, .. } => {
            let _ = reply.send(Err(why.into()));
        }
        PnsCmd::Answered { .. }
        | PnsCmd::HangUp { .. }
        | PnsCmd::Wan { .. }
        | PnsCmd::DialResult { .. } => {}
    }
}

/// One TCP control connection; returns whether it got established.
#[allow(clippy::too_many_arguments)]
async fn session(
    ident: &Identity,
    cfg: &PnsConfig,
    shared: &PnsShared,
    cmds: &mut mpsc::Receiver<PnsCmd>,
    stop: &mut watch::Receiver<bool>,
    mut tcp: TcpStream,
    seed: u16,
    dialout: &mpsc::UnboundedSender<DialOut>,
) -> bool {
    let mut conn = Connection::new(
        control_config(ident, cfg, seed),
        Open::Active,
        Instant::now().into_std(),
    );
    let mut routes: HashMap<u16, mpsc::UnboundedSender<CallEv>> = HashMap::new();
    // Calls asked for before the connection is established.
    let mut pending: Vec<PnsCmd> = Vec::new();
    let mut established = false;
    let mut stopping = false;
    let mut rbuf = vec![0u8; 4096];
    let mut wbuf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        // Outputs: transmit, then events.
        wbuf.clear();
        while conn.poll_transmit(&mut wbuf).is_some() {}
        if !wbuf.is_empty() && tcp.write_all(&wbuf).await.is_err() {
            conn.handle_tcp_closed(Instant::now().into_std());
        }
        let mut closed = false;
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Established(peer) => {
                    established = true;
                    shared.up.store(true, Ordering::Relaxed);
                    shared.connects.fetch_add(1, Ordering::Relaxed);
                    shared.set_state(format!(
                        "established ({})",
                        peer.host_name.to_string_lossy()
                    ));
                    tracing::info!(peer_host = %peer.host_name.to_string_lossy(), "control connection established");
                    let now = Instant::now().into_std();
                    for c in std::mem::take(&mut pending) {
                        apply(&mut conn, &mut routes, now, c);
                    }
                }
                Event::Closed(reason) => {
                    tracing::info!(?reason, "control connection closed");
                    shared.set_state(format!("closed: {reason:?}"));
                    closed = true;
                }
                Event::AnswerCall { call_id } => route(&routes, call_id, CallEv::Answer),
                Event::CallUp(info) => route(&routes, info.call_id, CallEv::Up(info)),
                Event::CallDown { call_id, end } => {
                    route(&routes, call_id, CallEv::Down(end));
                    routes.remove(&call_id);
                }
                Event::LinkInfo {
                    call_id,
                    send_accm,
                    receive_accm,
                } => route(
                    &routes,
                    call_id,
                    CallEv::LinkInfo {
                        send_accm,
                        receive_accm,
                    },
                ),
                Event::OutgoingCallRequested { call_id, request } => {
                    // The line dispatcher picks a free line and dials; the line answers with
                    // PnsCmd::DialResult (OCRP).
                    tracing::info!(
                        call_id,
                        number = %request.phone_number.to_string_lossy(),
                        bearer = ?request.bearer_type,
                        "outgoing call requested by the PNS"
                    );
                    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
                    let d = DialOut {
                        pns: cfg.name.clone(),
                        call_id,
                        request,
                        events: ev_rx,
                    };
                    if dialout.send(d).is_ok() {
                        routes.insert(call_id, ev_tx);
                    } else {
                        let mut r = crate::pptp::control::DialResult::failed(
                            OutgoingCallResult::DoNotAccept,
                        );
                        r.cause = CauseCode::NoCircuitAvailable;
                        let _ = conn.dial_result(Instant::now().into_std(), call_id, r);
                    }
                }
                Event::Collision { .. }
                | Event::IncomingCallRequested { .. }
                | Event::WanError { .. } => {}
            }
        }
        shared.calls.store(conn.call_count(), Ordering::Relaxed);
        if closed {
            for c in pending {
                refuse(c, "control connection closed");
            }
            // Flush anything the core queued before closing (StopCCRP, CDNs).
            wbuf.clear();
            while conn.poll_transmit(&mut wbuf).is_some() {}
            if !wbuf.is_empty() {
                let _ = tcp.write_all(&wbuf).await;
            }
            let _ = tcp.shutdown().await;
            return established;
        }
        let deadline = conn.poll_timeout().map(Instant::from_std);
        tokio::select! {
            r = tcp.read(&mut rbuf) => {
                let now = Instant::now().into_std();
                match r {
                    Ok(0) | Err(_) => conn.handle_tcp_closed(now),
                    Ok(n) => conn.handle_bytes(now, rbuf.get(..n).unwrap_or_default()),
                }
            }
            c = cmds.recv(), if !stopping => {
                let now = Instant::now().into_std();
                match c {
                    None => {
                        stopping = true;
                        conn.stop(now, StopReason::LocalShutdown);
                    }
                    Some(c) if !established => pending.push(c),
                    Some(c) => apply(&mut conn, &mut routes, now, c),
                }
            }
            () = sleep_until_opt(deadline) => conn.handle_timeout(Instant::now().into_std()),
            _ = stop.changed(), if !stopping => {
                stopping = true;
                tracing::info!("stopping: clearing calls, Stop-Control-Connection-Request");
                conn.stop(Instant::now().into_std(), StopReason::LocalShutdown);
            }
        }
    }
}

fn route(routes: &HashMap<u16, mpsc::UnboundedSender<CallEv>>, call_id: u16, ev: CallEv) {
    if let Some(tx) = routes.get(&call_id) {
        let _ = tx.send(ev);
    }
}

fn apply(
    conn: &mut Connection,
    routes: &mut HashMap<u16, mpsc::UnboundedSender<CallEv>>,
    now: std::time::Instant,
    c: PnsCmd,
) {
    let err = |e: CommandError| e.to_string();
    match c {
        PnsCmd::Incoming {
            call,
            events,
            reply,
        } => {
            let r = conn.incoming_call(now, call).map_err(err);
            if let Ok(id) = r {
                routes.insert(id, events);
            }
            let _ = reply.send(r);
        }
        PnsCmd::Outgoing {
            call,
            events,
            reply,
        } => {
            let r = conn.outgoing_call(now, call).map_err(err);
            if let Ok(id) = r {
                routes.insert(id, events);
            }
            let _ = reply.send(r);
        }
        PnsCmd::Answered {
            call_id,
            speed,
            framing,
        } => {
            if let Err(e) = conn.answer_connected(now, call_id, speed, framing) {
                tracing::debug!(call_id, error = %e, "answer_connected refused");
                route(routes, call_id, CallEv::Down(CallEnd::Local));
            }
        }
        PnsCmd::HangUp { call_id, cause } => {
            if conn.hang_up(now, call_id, cause).is_err() {
                routes.remove(&call_id);
            }
            // A PAC-side hang-up frees the call at once (CDN); a compat call waits for the
            // PNS's CDN after our CCRQ. Either way the line no longer listens.
            routes.remove(&call_id);
        }
        PnsCmd::Wan { call_id, counters } => {
            let _ = conn.wan_error(now, call_id, counters);
        }
        PnsCmd::DialResult { call_id, result } => {
            if conn.dial_result(now, call_id, result).is_err()
                || result.result != OutgoingCallResult::Connected
            {
                routes.remove(&call_id);
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
