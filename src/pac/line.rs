//! One task per line: modem control, tunnel selection, call setup through the PNS task, and the
//! data relay ([`super::relay`]: line bytes -> HDLC decoder -> PPP frame -> GRE, and back with
//! the send ACCM).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::capture::CallCapture;
use super::config::{CallMode, LineConfig, LineKind, LineMode};
use super::lineio::LineIo;
use super::pns::{CallEv, DialOut, PnsCmd};
use super::relay::{recv_batch, Relay, RX_BATCH};
use super::select::{candidates, CallFacts, Decision};
use super::terminate::LocalCall;
use super::Shared;
use crate::io::line::{LineEvent, ModemIo};
use crate::modem::control::{
    AnswerMode, ControlConfig, Event as ModemEvent, Failure, Framing, HangupCause,
};
use crate::pptp::control::{CallEnd, CallInfo, DialResult, IncomingCall, OutgoingCall};
use crate::pptp::message::{
    BearerType, CauseCode, FramingType, OutgoingCallResult, TextField, WanErrorNotify,
};

/// Most line octets kept between the answer and the tunnel coming up.
const MAX_EARLY: usize = 64 * 1024;

/// Counters of one line (cumulative since start) and of its current call.
#[derive(Debug, Default)]
pub(crate) struct LineStats {
    pub(crate) calls: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) to_gre_packets: AtomicU64,
    pub(crate) to_gre_bytes: AtomicU64,
    pub(crate) to_line_packets: AtomicU64,
    pub(crate) to_line_bytes: AtomicU64,
    pub(crate) gre_lost: AtomicU64,
    pub(crate) gre_late: AtomicU64,
    pub(crate) gre_duplicate: AtomicU64,
    pub(crate) gre_reordered: AtomicU64,
    pub(crate) gre_tx_dropped: AtomicU64,
    pub(crate) hdlc_errors: AtomicU64,
    pub(crate) line_write_stalls: AtomicU64,
}

/// State shown by `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LineView {
    /// Line id.
    pub id: String,
    /// `idle`, `offering`, `answering`, `up`, `hanging-up`, `out-of-service`, `disabled`.
    pub state: String,
    /// Modem state (debug form).
    pub modem: String,
    /// CONNECT speed of the current call.
    pub connect_speed: Option<u32>,
    /// Current call, if any.
    pub call: Option<CallView>,
}

/// A call as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallView {
    /// PNS name.
    pub pns: String,
    /// Our Call ID.
    pub call_id: u16,
    /// The PNS's Call ID.
    pub peer_call_id: u16,
    /// Caller number.
    pub caller: String,
    /// Seconds since the call came up.
    pub up_since_s: Option<u64>,
}

pub(crate) struct LineCtx {
    pub(crate) cfg: LineConfig,
    /// The RING on which the call is offered to the PNS.
    pub(crate) offer_on_ring: u8,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stats: Arc<LineStats>,
    pub(crate) view: Arc<Mutex<LineView>>,
}

enum Phase {
    Idle,
    /// A call was refused: RINGs are ignored until it stops ringing.
    Refused,
    /// Waiting for the PNS (ICRP, or OCRP in compat mode).
    Offering,
    /// ATA sent; waiting for CONNECT.
    Answering,
    /// Data flows.
    Up,
    /// We asked the modem to hang up.
    HangingUp,
}

struct Call {
    /// `call{pns, caller, dnis, call_id, peer_call_id}`, child of the line's span.
    span: tracing::Span,
    /// Line data received after the answer and before the tunnel is up.
    early: Vec<u8>,
    /// GRE from the PNS routed to this call before the tunnel is up: the route is set before
    /// ICCN goes out, since the PNS may start PPP (send GRE) as soon as ICCN arrives.
    gre_early: Option<mpsc::Receiver<Bytes>>,
    pns: String,
    pns_addr: Ipv4Addr,
    mode: CallMode,
    call_id: u16,
    /// Handed to the line loop once (it polls it next to the line).
    events: Option<mpsc::UnboundedReceiver<CallEv>>,
    cands: Vec<String>,
    caller: String,
    dnis: String,
    connect: Option<(u32, Framing)>,
    info: Option<CallInfo>,
    relay: Option<Relay>,
    /// Local PPP termination: the session once the line is answered.
    local: Option<LocalCall>,
    /// This call terminates locally (no PNS).
    terminate: bool,
    /// Placed by us for a PNS's Outgoing-Call-Request (OCRP answers it).
    dialout: bool,
    /// `--pcap`: this call's captures.
    capture: Option<Arc<Mutex<CallCapture>>>,
    up_at: Option<Instant>,
}

/// Commands to a line task.
#[derive(Debug)]
pub(crate) enum LineCmd {
    /// Dial out for a PNS's Outgoing-Call-Request.
    Dial(Box<DialOut>),
    /// The configuration changed (SIGHUP): end the task once no call is on the line.
    Retire,
}

/// The `pns` name a locally terminated call shows in `status` and logs.
pub const LOCAL_PNS: &str = "(local)";

impl Call {
    /// A call terminated in the PAC: answered at once, PPP starts on CONNECT.
    fn local(caller: &str, dnis: &str) -> Call {
        Call {
            span: tracing::info_span!(
                "call",
                pns = LOCAL_PNS,
                caller = %caller,
                dnis = %dnis,
                call_id = tracing::field::Empty,
                peer_call_id = tracing::field::Empty,
            ),
            early: Vec::new(),
            gre_early: None,
            pns: LOCAL_PNS.into(),
            pns_addr: Ipv4Addr::UNSPECIFIED,
            mode: CallMode::IncomingCall,
            call_id: 0,
            events: None,
            cands: Vec::new(),
            caller: caller.into(),
            dnis: dnis.into(),
            connect: None,
            info: None,
            relay: None,
            local: None,
            terminate: true,
            dialout: false,
            capture: None,
            up_at: None,
        }
    }
}

fn text(s: &str) -> TextField {
    TextField::new(s.as_bytes()).unwrap_or_default()
}

/// Runs one line until `stop`.
pub(crate) async fn run<S: ModemIo>(
    ctx: LineCtx,
    mut line: LineIo<S>,
    mut stop: watch::Receiver<bool>,
    mut cmds: mpsc::Receiver<LineCmd>,
) {
    let mut phase = Phase::Idle;
    let mut call: Option<Call> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rx_batch: Vec<Bytes> = Vec::with_capacity(RX_BATCH);
    let id = ctx.cfg.id.clone();
    set_state(&ctx, "idle", &line, None);
    let mut ev_rx: Option<mpsc::UnboundedReceiver<CallEv>> = None;
    let mut gre_rx: Option<mpsc::Receiver<Bytes>> = None;
    let mut retire = false;
    loop {
        if retire && call.is_none() && matches!(phase, Phase::Idle | Phase::Refused) {
            tracing::info!(line = %id, "configuration reloaded: line task ends (idle)");
            return;
        }
        // The call's capture (if any) ends with the call.
        if call.as_ref().and_then(|c| c.capture.as_ref()).is_none() {
            line.set_capture(None);
        }
        // The call's receivers live next to the line so the select can poll them all.
        match call.as_mut() {
            None => {
                ev_rx = None;
                gre_rx = None;
            }
            Some(c) => {
                if let Some(r) = c.events.take() {
                    ev_rx = Some(r);
                }
                match c.relay.as_mut() {
                    Some(rl) => {
                        if let Some(g) = rl.gre_rx.take() {
                            gre_rx = Some(g);
                        }
                    }
                    None => gre_rx = None,
                }
            }
        }
        let relay_timer = call
            .as_ref()
            .and_then(|c| c.relay.as_ref())
            .and_then(|r| r.next_timer());
        let have_events = ev_rx.is_some();
        // Everything done for the current call is logged inside its span.
        let span = call
            .as_ref()
            .map_or_else(tracing::Span::none, |c| c.span.clone());
        let local_timer = call
            .as_ref()
            .and_then(|c| c.local.as_ref())
            .and_then(|l| l.poll_timeout())
            .map(Instant::from_std);
        let terminating = call.as_ref().is_some_and(|c| c.local.is_some());
        let relaying = gre_rx.is_some();
        tokio::select! {
            () = sleep_until_opt(local_timer) => {
                if let Some(l) = call.as_mut().and_then(|c| c.local.as_mut()) {
                    l.handle_timeout(std::time::Instant::now());
                }
                local_step(&ctx, &mut line, &mut phase, &mut call).instrument(span).await;
            }
            ev = line.next() => {
                match ev {
                    Err(e) => {
                        tracing::warn!(line = %id, error = %e, "line failed: out of service");
                        if let Some(c) = call.take() {
                            hang_up_pns(&ctx, &c, CauseCode::DestinationOutOfOrder).await;
                        }
                        set_state(&ctx, "out-of-service", &line, None);
                        // The device is gone; wait for stop or a reload (which re-opens it).
                        loop {
                            tokio::select! {
                                _ = stop.changed() => return,
                                c = cmds.recv() => match c {
                                    Some(LineCmd::Retire) | None => return,
                                    Some(LineCmd::Dial(d)) => {
                                        dial_out(&ctx, &mut line, &mut phase, &mut call, *d).await;
                                    }
                                },
                            }
                        }
                    }
                    Ok(LineEvent::Data(data)) => {
                        if let Some(l) = call.as_mut().and_then(|c| c.local.as_mut()) {
                            let packets = l.line_in(std::time::Instant::now(), &data);
                            ctx.stats.to_gre_packets.fetch_add(packets, Ordering::Relaxed);
                            local_step(&ctx, &mut line, &mut phase, &mut call).instrument(span).await;
                        } else if let Some(c) = call.as_mut() {
                            match c.relay.as_mut() {
                                Some(r) => {
                                    if let Some(k) = &c.capture {
                                        if let Ok(mut k) = k.lock() {
                                            k.line_in(&data);
                                        }
                                    }
                                    r.line_in(&data, &ctx.stats)
                                }
                                // Answered, tunnel not up yet (ICCN in flight): keep the
                                // caller's first frames instead of losing them.
                                None if c.early.len() + data.len() <= MAX_EARLY => {
                                    c.early.extend_from_slice(&data);
                                }
                                None => {}
                            }
                        }
                    }
                    Ok(LineEvent::Modem(ev)) => {
                        modem_event(&ctx, &mut line, &mut phase, &mut call, ev).instrument(span).await;
                    }
                }
            }
            ev = recv_call_ev(&mut ev_rx), if have_events => {
                call_event(&ctx, &mut line, &mut phase, &mut call, ev).instrument(span).await;
            }
            _ = recv_batch(&mut gre_rx, &mut rx_batch), if relaying => {
                if let Some(c) = call.as_mut() {
                    if let Some(k) = &c.capture {
                        if let Ok(mut k) = k.lock() {
                            for p in &rx_batch {
                                k.gre_in(p);
                            }
                        }
                    }
                }
                if let Some(r) = call.as_mut().and_then(|c| c.relay.as_mut()) {
                    for p in rx_batch.drain(..) {
                        r.gre_in(&p, &ctx.stats);
                    }
                    r.after_batch(&ctx.stats);
                    r.flush_to_line(&mut line, &ctx.stats).await;
                }
            }
            () = sleep_until_opt(relay_timer) => {
                if let Some(r) = call.as_mut().and_then(|c| c.relay.as_mut()) {
                    if r.on_timer(&ctx.stats) {
                        r.flush_to_line(&mut line, &ctx.stats).await;
                    }
                }
            }
            _ = tick.tick(), if relaying || terminating => {
                housekeeping(&ctx, &mut line, &mut phase, &mut call).instrument(span).await;
            }
            Some(cmd) = cmds.recv() => match cmd {
                LineCmd::Dial(d) => dial_out(&ctx, &mut line, &mut phase, &mut call, *d).await,
                LineCmd::Retire => {
                    if call.is_some() {
                        tracing::info!(line = %id, "configuration reloaded: the line keeps its old settings until the call ends");
                    }
                    retire = true;
                }
            },
            _ = stop.changed() => {
                stop_line(&ctx, &mut line, &phase, call.take()).instrument(span).await;
                return;
            }
        }
    }
}

/// Stop: clear the call (Call-Disconnect-Notify) and hang the line up, bounded.
async fn stop_line<S: ModemIo>(
    ctx: &LineCtx,
    line: &mut LineIo<S>,
    phase: &Phase,
    call: Option<Call>,
) {
    let Some(c) = call else { return };
    hang_up_pns(ctx, &c, CauseCode::NormalClearing).await;
    if c.relay.is_some() || matches!(phase, Phase::Answering) {
        line.hangup();
        // Give the modem a moment to hang up (bounded).
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match line.next().await {
                    Ok(LineEvent::Modem(ModemEvent::HungUp(_) | ModemEvent::Ready)) | Err(_) => {
                        break
                    }
                    _ => {}
                }
            }
        })
        .await;
    }
}

async fn recv_call_ev(rx: &mut Option<mpsc::UnboundedReceiver<CallEv>>) -> Option<CallEv> {
    match rx.as_mut() {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn set_state<S: ModemIo>(ctx: &LineCtx, state: &str, line: &LineIo<S>, call: Option<&Call>) {
    if let Ok(mut v) = ctx.view.lock() {
        v.state = state.into();
        v.modem = line.modem_state();
        v.connect_speed = call.and_then(|c| c.connect.map(|(s, _)| s));
        v.call = call.map(|c| CallView {
            pns: c.pns.clone(),
            call_id: c.call_id,
            peer_call_id: c.info.map_or(0, |i| i.peer_call_id),
            caller: c.caller.clone(),
            up_since_s: c.up_at.map(|t| t.elapsed().as_secs()),
        });
    }
}

async fn hang_up_pns(ctx: &LineCtx, c: &Call, cause: CauseCode) {
    if let Some(tx) = ctx.shared.pns_tx(&c.pns) {
        let _ = tx
            .send(PnsCmd::HangUp {
                call_id: c.call_id,
                cause,
            })
            .await;
    }
    ctx.shared.unroute(c.pns_addr, c.call_id);
}

/// Offers the call to the next candidate PNS; `false` when none is left.
async fn offer(
    ctx: &LineCtx,
    call_cands: &mut Vec<String>,
    caller: &str,
    dnis: &str,
) -> Option<Call> {
    while !call_cands.is_empty() {
        let name = call_cands.remove(0);
        let (Some(tx), Some(pcfg)) = (ctx.shared.pns_tx(&name), ctx.shared.pns_cfg(&name)) else {
            continue;
        };
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let span = tracing::info_span!(
            "call",
            pns = %name,
            caller = %caller,
            dnis = %dnis,
            call_id = tracing::field::Empty,
            peer_call_id = tracing::field::Empty,
        );
        let isdn = ctx.cfg.kind == LineKind::Isdn;
        let cmd = match pcfg.mode {
            CallMode::IncomingCall => PnsCmd::Incoming {
                call: IncomingCall {
                    bearer: if isdn {
                        BearerType::Digital
                    } else {
                        BearerType::Analog
                    },
                    physical_channel_id: 0,
                    dialed: text(dnis),
                    dialing: text(caller),
                    subaddress: TextField::default(),
                },
                events: ev_tx,
                reply: reply_tx,
            },
            CallMode::OutgoingCall => PnsCmd::Outgoing {
                call: OutgoingCall {
                    minimum_bps: 300,
                    maximum_bps: 100_000_000,
                    bearer: if isdn {
                        BearerType::Digital
                    } else {
                        BearerType::Analog
                    },
                    framing: if isdn {
                        FramingType::Sync
                    } else {
                        FramingType::Async
                    },
                    phone_number: text(caller),
                    subaddress: TextField::default(),
                },
                events: ev_tx,
                reply: reply_tx,
            },
        };
        if tx.send(cmd).await.is_err() {
            continue;
        }
        match reply_rx.await {
            Ok(Ok(call_id)) => {
                span.record("call_id", call_id);
                span.in_scope(|| {
                    tracing::info!(line = %ctx.cfg.id, pns = %name, call_id, caller, "call offered to PNS");
                });
                return Some(Call {
                    span,
                    early: Vec::new(),
                    gre_early: None,
                    pns: name,
                    pns_addr: pcfg.address,
                    mode: pcfg.mode,
                    call_id,
                    events: Some(ev_rx),
                    cands: std::mem::take(call_cands),
                    caller: caller.into(),
                    dnis: dnis.into(),
                    connect: None,
                    info: None,
                    relay: None,
                    local: None,
                    terminate: false,
                    dialout: false,
                    capture: None,
                    up_at: None,
                });
            }
            Ok(Err(why)) => {
                tracing::info!(line = %ctx.cfg.id, pns = %name, %why, "PNS cannot take the call, failing over");
            }
            Err(_) => {}
        }
    }
    None
}

async fn modem_event<S: ModemIo>(
    ctx: &LineCtx,
    line: &mut LineIo<S>,
    phase: &mut Phase,
    call: &mut Option<Call>,
    ev: ModemEvent,
) {
    tracing::debug!(line = %ctx.cfg.id, ?ev, "modem event");
    match ev {
        ModemEvent::Ring { count, caller } => {
            if !matches!(phase, Phase::Idle) || count < ctx.offer_on_ring {
                return;
            }
            let clid = caller.number.clone().unwrap_or_default();
            let dnis = caller
                .called
                .clone()
                .or_else(|| ctx.cfg.number.clone())
                .unwrap_or_default();
            let facts = CallFacts {
                line: &ctx.cfg.id,
                group: ctx.cfg.group.as_deref(),
                dnis: (!dnis.is_empty()).then_some(dnis.as_str()),
                clid: (!clid.is_empty()).then_some(clid.as_str()),
            };
            let decision = if ctx.cfg.mode == LineMode::Terminate {
                Decision::Terminate { rule: None }
            } else {
                ctx.shared.selector.select(&facts)
            };
            let list = match decision {
                Decision::Tunnel { rule, pns } => {
                    tracing::info!(line = %ctx.cfg.id, caller = %clid, dnis = %dnis, ?rule, ?pns, "incoming call");
                    pns
                }
                Decision::Terminate { rule } => {
                    if ctx.shared.terminator.is_none() {
                        tracing::warn!(line = %ctx.cfg.id, caller = %clid, ?rule, "call refused: no `terminate:` section");
                        refuse(ctx, line, phase, call);
                        return;
                    }
                    let c = Call::local(&clid, &dnis);
                    c.span.in_scope(|| {
                        tracing::info!(line = %ctx.cfg.id, caller = %clid, dnis = %dnis, ?rule, "incoming call: terminating PPP locally");
                    });
                    if let Err(e) = line.answer() {
                        tracing::info!(line = %ctx.cfg.id, error = %e, "cannot answer (caller gone?)");
                        *phase = Phase::Idle;
                        return;
                    }
                    *call = Some(c);
                    *phase = Phase::Answering;
                    set_state(ctx, "answering", line, call.as_ref());
                    return;
                }
                Decision::Refuse { rule } => {
                    tracing::info!(line = %ctx.cfg.id, caller = %clid, dnis = %dnis, ?rule, "call refused by rule");
                    refuse(ctx, line, phase, call);
                    return;
                }
            };
            let mut cands: Vec<String> = candidates(&list, |n| ctx.shared.availability(n))
                .into_iter()
                .map(String::from)
                .collect();
            if cands.is_empty() {
                tracing::warn!(line = %ctx.cfg.id, caller = %clid, ?list, "call refused: no PNS reachable or all at their call limit");
                refuse(ctx, line, phase, call);
                return;
            }
            match offer(ctx, &mut cands, &clid, &dnis).await {
                Some(c) => {
                    *call = Some(c);
                    *phase = Phase::Offering;
                    set_state(ctx, "offering", line, call.as_ref());
                }
                None => {
                    tracing::warn!(line = %ctx.cfg.id, caller = %clid, "call refused: every PNS refused or is unreachable");
                    refuse(ctx, line, phase, call);
                }
            }
        }
        ModemEvent::RingStopped => {
            if let Some(c) = call.take() {
                tracing::info!(line = %ctx.cfg.id, call_id = c.call_id, "caller gave up before answer");
                hang_up_pns(ctx, &c, CauseCode::NormalClearing).await;
            }
            *phase = Phase::Idle;
            set_state(ctx, "idle", line, None);
        }
        ModemEvent::Connected { info, framing, .. } => {
            let speed = info.speed.unwrap_or(if ctx.cfg.kind == LineKind::Isdn {
                64_000
            } else {
                33_600
            });
            let Some(c) = call.as_mut() else {
                // Nobody asked for this call (auto-answer modem with no offer): hang up.
                tracing::info!(line = %ctx.cfg.id, "unexpected CONNECT without a call: hanging up");
                line.hangup();
                *phase = Phase::HangingUp;
                return;
            };
            c.connect = Some((speed, framing));
            if c.dialout {
                // OCRP Connected with the real connect speed; the call comes up (CallEv::Up).
                c.span.in_scope(|| {
                    tracing::info!(line = %ctx.cfg.id, speed, "dial-out connected: OCRP Connected");
                });
                if let Some(tx) = ctx.shared.pns_tx(&c.pns) {
                    let _ = tx
                        .send(PnsCmd::DialResult {
                            call_id: c.call_id,
                            result: DialResult::connected(speed),
                        })
                        .await;
                }
                set_state(ctx, "connecting", line, call.as_ref());
                return;
            }
            if c.terminate {
                let seed = local_seed(&ctx.cfg.id);
                let started = ctx
                    .shared
                    .terminator
                    .as_ref()
                    .and_then(|t| t.start_call(std::time::Instant::now(), seed));
                match started {
                    Some(mut l) => {
                        let early = std::mem::take(&mut c.early);
                        l.line_in(std::time::Instant::now(), &early);
                        c.span.in_scope(|| {
                            tracing::info!(line = %ctx.cfg.id, speed, peer_ip = %l.peer_ip(), "call up: PPP server started");
                        });
                        c.local = Some(l);
                        c.up_at = Some(Instant::now());
                        ctx.stats.calls.fetch_add(1, Ordering::Relaxed);
                        *phase = Phase::Up;
                        set_state(ctx, "up", line, call.as_ref());
                        flush_local(ctx, line, call).await;
                    }
                    None => {
                        tracing::warn!(line = %ctx.cfg.id, "address pool exhausted: hanging up");
                        *call = None;
                        line.hangup();
                        *phase = Phase::HangingUp;
                        set_state(ctx, "hanging-up", line, None);
                    }
                }
                return;
            }
            let ftype = match framing {
                Framing::Async => FramingType::Async,
                Framing::Sync => FramingType::Sync,
            };
            match c.mode {
                CallMode::IncomingCall => {
                    if let Some(tx) = ctx.shared.pns_tx(&c.pns) {
                        let (gtx, grx) = mpsc::channel(1024);
                        ctx.shared.route(c.pns_addr, c.call_id, gtx);
                        c.gre_early = Some(grx);
                        let _ = tx
                            .send(PnsCmd::Answered {
                                call_id: c.call_id,
                                speed,
                                framing: ftype,
                            })
                            .await;
                    }
                }
                CallMode::OutgoingCall => {
                    // The PPTP call is already up (OCRP Connected): start relaying.
                    if let Some(info) = c.info {
                        start_relay(ctx, line, c, &info);
                        *phase = Phase::Up;
                    }
                }
            }
            set_state(
                ctx,
                if matches!(phase, Phase::Up) {
                    "up"
                } else {
                    "answering"
                },
                line,
                call.as_ref(),
            );
        }
        ModemEvent::CallFailed(f) => {
            if let Some(c) = call.take() {
                if c.dialout {
                    let r = dial_failure(f);
                    c.span.in_scope(|| {
                        tracing::info!(line = %ctx.cfg.id, failure = ?f, result = ?r.result, cause = ?r.cause, "dial-out failed: OCRP");
                    });
                    if let Some(tx) = ctx.shared.pns_tx(&c.pns) {
                        let _ = tx
                            .send(PnsCmd::DialResult {
                                call_id: c.call_id,
                                result: r,
                            })
                            .await;
                    }
                } else {
                    tracing::info!(line = %ctx.cfg.id, failure = ?f, "answer failed");
                    hang_up_pns(ctx, &c, CauseCode::NoAnswer).await;
                }
            }
            *phase = Phase::Idle;
            set_state(ctx, "idle", line, None);
        }
        ModemEvent::HungUp(cause) => {
            if let Some(c) = call.take() {
                let pc = if cause == HangupCause::CarrierLost {
                    CauseCode::NormalClearing
                } else {
                    CauseCode::NormalUnspecified
                };
                tracing::info!(line = %ctx.cfg.id, call_id = c.call_id, ?cause, "line hung up: Call-Disconnect-Notify");
                hang_up_pns(ctx, &c, pc).await;
                ctx.stats.calls.fetch_add(0, Ordering::Relaxed);
            }
            *phase = Phase::Idle;
            set_state(ctx, "idle", line, None);
        }
        ModemEvent::Ready | ModemEvent::Recovered => {
            if matches!(phase, Phase::HangingUp) {
                *phase = Phase::Idle;
            }
            set_state(
                ctx,
                if call.is_some() { "busy" } else { "idle" },
                line,
                call.as_ref(),
            );
        }
        ModemEvent::OutOfService => {
            tracing::warn!(line = %ctx.cfg.id, "modem out of service");
            if let Some(c) = call.take() {
                hang_up_pns(ctx, &c, CauseCode::DestinationOutOfOrder).await;
            }
            *phase = Phase::Idle;
            set_state(ctx, "out-of-service", line, None);
        }
    }
}

fn refuse<S: ModemIo>(
    ctx: &LineCtx,
    line: &mut LineIo<S>,
    phase: &mut Phase,
    call: &mut Option<Call>,
) {
    ctx.stats.refused.fetch_add(1, Ordering::Relaxed);
    *call = None;
    *phase = Phase::Refused;
    line.refuse();
    set_state(ctx, "refused", line, None);
}

fn start_relay<S: ModemIo>(ctx: &LineCtx, line: &mut LineIo<S>, c: &mut Call, info: &CallInfo) {
    if let Some(dir) = &ctx.shared.pcap_dir {
        match CallCapture::create(
            dir,
            &ctx.cfg.id,
            c.call_id,
            ctx.shared.local_address,
            c.pns_addr,
        ) {
            Ok(cap) => {
                let [l, g] = cap.paths();
                tracing::info!(line_pcap = %l.display(), gre_pcap = %g.display(), "capturing the call");
                let cap = Arc::new(Mutex::new(cap));
                ctx.shared
                    .register_capture(c.pns_addr, info.peer_call_id, &cap);
                line.set_capture(Some(cap.clone()));
                c.capture = Some(cap);
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot create the call's captures")
            }
        }
    }
    let rx = match c.gre_early.take() {
        Some(rx) => rx,
        None => {
            let (tx, rx) = mpsc::channel(1024);
            ctx.shared.route(c.pns_addr, c.call_id, tx);
            rx
        }
    };
    c.span.record("peer_call_id", info.peer_call_id);
    let gre = ctx
        .shared
        .pns_cfg(&c.pns)
        .map(|p| p.gre)
        .unwrap_or_default();
    let mut relay = Relay::new(c.pns_addr, info, gre, ctx.shared.gre_tx.clone(), rx);
    let early = std::mem::take(&mut c.early);
    if !early.is_empty() {
        capture(c, |k| k.line_in(&early));
        relay.line_in(&early, &ctx.stats);
    }
    c.relay = Some(relay);
    c.up_at = Some(Instant::now());
    ctx.stats.calls.fetch_add(1, Ordering::Relaxed);
    c.span.in_scope(|| {
        tracing::info!(line = %ctx.cfg.id, pns = %c.pns, call_id = c.call_id, peer_call_id = info.peer_call_id, caller = %c.caller, speed = info.connect_speed, "call up");
    });
}

async fn call_event<S: ModemIo>(
    ctx: &LineCtx,
    line: &mut LineIo<S>,
    phase: &mut Phase,
    call: &mut Option<Call>,
    ev: Option<CallEv>,
) {
    let Some(c) = call.as_mut() else { return };
    let ev = ev.unwrap_or(CallEv::Down(CallEnd::ConnectionClosed));
    match ev {
        CallEv::Answer => {
            // Incoming-call mode: ICRP accepted; answer the line.
            if let Err(e) = line.answer() {
                tracing::info!(line = %ctx.cfg.id, error = %e, "cannot answer (caller gone?)");
                let c = call.take();
                if let Some(c) = c {
                    hang_up_pns(ctx, &c, CauseCode::NoAnswer).await;
                }
                *phase = Phase::Idle;
                return;
            }
            *phase = Phase::Answering;
            set_state(ctx, "answering", line, call.as_ref());
        }
        CallEv::Up(info) => {
            c.info = Some(info);
            if c.dialout {
                start_relay(ctx, line, c, &info);
                *phase = Phase::Up;
                set_state(ctx, "up", line, call.as_ref());
                return;
            }
            match c.mode {
                CallMode::IncomingCall => {
                    start_relay(ctx, line, c, &info);
                    *phase = Phase::Up;
                    set_state(ctx, "up", line, call.as_ref());
                }
                CallMode::OutgoingCall => {
                    // OCRP Connected: now answer the caller.
                    if let Err(e) = line.answer() {
                        tracing::info!(line = %ctx.cfg.id, error = %e, "cannot answer (caller gone?)");
                        if let Some(c) = call.take() {
                            hang_up_pns(ctx, &c, CauseCode::NoAnswer).await;
                        }
                        *phase = Phase::Idle;
                        return;
                    }
                    *phase = Phase::Answering;
                    set_state(ctx, "answering", line, call.as_ref());
                }
            }
        }
        CallEv::LinkInfo {
            send_accm,
            receive_accm,
        } => {
            tracing::debug!(line = %ctx.cfg.id, send_accm = format_args!("{send_accm:#010x}"), receive_accm = format_args!("{receive_accm:#010x}"), "Set-Link-Info");
            if let Some(r) = c.relay.as_mut() {
                r.link_info(send_accm, receive_accm);
            }
        }
        CallEv::Down(end) => {
            let Some(mut c) = call.take() else { return };
            ctx.shared.unroute(c.pns_addr, c.call_id);
            match phase {
                Phase::Offering if is_refusal(&end) && !c.cands.is_empty() => {
                    tracing::info!(line = %ctx.cfg.id, pns = %c.pns, ?end, "PNS refused the call, failing over");
                    let mut cands = std::mem::take(&mut c.cands);
                    if let Some(n) = offer(ctx, &mut cands, &c.caller, &c.dnis).await {
                        *call = Some(n);
                        set_state(ctx, "offering", line, call.as_ref());
                        return;
                    }
                    refuse(ctx, line, phase, call);
                }
                Phase::Offering => {
                    tracing::info!(line = %ctx.cfg.id, pns = %c.pns, ?end, "call refused by PNS: not answering");
                    refuse(ctx, line, phase, call);
                }
                _ => {
                    tracing::info!(line = %ctx.cfg.id, pns = %c.pns, call_id = c.call_id, ?end, "call cleared by PNS side: hanging up");
                    line.hangup();
                    *phase = Phase::HangingUp;
                    set_state(ctx, "hanging-up", line, None);
                }
            }
        }
    }
}

fn is_refusal(end: &CallEnd) -> bool {
    matches!(
        end,
        CallEnd::IncomingRejected { .. }
            | CallEnd::OutgoingFailed { .. }
            | CallEnd::Timeout(_)
            | CallEnd::ConnectionClosed
    )
}

async fn housekeeping<S: ModemIo>(
    ctx: &LineCtx,
    line: &mut LineIo<S>,
    phase: &mut Phase,
    call: &mut Option<Call>,
) {
    let Some(c) = call.as_mut() else { return };
    if let Some(l) = c.local.as_mut() {
        let session = ctx
            .cfg
            .max_session_s
            .zip(c.up_at)
            .is_some_and(|(s, t)| t.elapsed() >= Duration::from_secs(s));
        if session {
            tracing::info!(line = %ctx.cfg.id, "session time limit reached: closing PPP");
            l.close(std::time::Instant::now(), "session time limit");
            local_step(ctx, line, phase, call).await;
        } else if let Ok(mut v) = ctx.view.lock() {
            if let Some(cv) = v.call.as_mut() {
                cv.up_since_s = c.up_at.map(|t| t.elapsed().as_secs());
            }
        }
        return;
    }
    let Some(r) = c.relay.as_mut() else { return };
    if let Some(w) = r.wan_update() {
        if let Some(tx) = ctx.shared.pns_tx(&c.pns) {
            let counters = WanErrorNotify {
                peer_call_id: 0,
                crc_errors: w.crc_errors,
                framing_errors: w.framing_errors,
                hardware_overruns: w.hardware_overruns,
                buffer_overruns: w.buffer_overruns,
                timeout_errors: w.timeout_errors,
                alignment_errors: w.alignment_errors,
            };
            let _ = tx.try_send(PnsCmd::Wan {
                call_id: c.call_id,
                counters,
            });
        }
    }
    let idle = ctx
        .cfg
        .idle_timeout_s
        .is_some_and(|s| r.last_activity.elapsed() >= Duration::from_secs(s));
    let session = ctx
        .cfg
        .max_session_s
        .zip(c.up_at)
        .is_some_and(|(s, t)| t.elapsed() >= Duration::from_secs(s));
    if idle || session {
        tracing::info!(line = %ctx.cfg.id, call_id = c.call_id, idle, session, "time limit reached: hanging up");
        let c = call.take();
        if let Some(c) = c {
            hang_up_pns(ctx, &c, CauseCode::NormalClearing).await;
        }
        line.hangup();
        *phase = Phase::HangingUp;
        set_state(ctx, "hanging-up", line, None);
    } else if let Ok(mut v) = ctx.view.lock() {
        if let Some(cv) = v.call.as_mut() {
            cv.up_since_s = c.up_at.map(|t| t.elapsed().as_secs());
        }
    }
}

fn capture(c: &Call, f: impl FnOnce(&mut CallCapture)) {
    if let Some(k) = &c.capture {
        if let Ok(mut k) = k.lock() {
            f(&mut k);
        }
    }
}

/// The OCRP for a failed dial (RFC 2637 §2.8 Result Codes, Q.850 causes).
fn dial_failure(f: Failure) -> DialResult {
    let (result, cause) = match f {
        Failure::Busy => (OutgoingCallResult::Busy, CauseCode::UserBusy),
        Failure::NoCarrier => (OutgoingCallResult::NoCarrier, CauseCode::NoUserResponding),
        Failure::NoDialtone => (OutgoingCallResult::NoDialTone, CauseCode::NetworkOutOfOrder),
        Failure::NoAnswer => (OutgoingCallResult::TimeOut, CauseCode::NoAnswer),
        Failure::Timeout => (OutgoingCallResult::TimeOut, CauseCode::TimerExpiry),
        _ => (
            OutgoingCallResult::GeneralError,
            CauseCode::NormalUnspecified,
        ),
    };
    let mut r = DialResult::failed(result);
    r.cause = cause;
    r
}

/// A PNS asked for an outgoing call (OCRQ) and the dispatcher picked this line: dial the
/// number, or answer Do Not Accept at once when the line turned busy meanwhile.
async fn dial_out<S: ModemIo>(
    ctx: &LineCtx,
    line: &mut LineIo<S>,
    phase: &mut Phase,
    call: &mut Option<Call>,
    d: DialOut,
) {
    let number = d.request.phone_number.to_string_lossy().into_owned();
    let span = tracing::info_span!(
        "call",
        pns = %d.pns,
        caller = %number,
        dnis = "",
        call_id = d.call_id,
        peer_call_id = d.request.call_id,
    );
    let _g = span.clone().entered();
    let refused = if call.is_some() || !matches!(phase, Phase::Idle) || !line.is_idle() {
        Some("line busy".to_string())
    } else {
        line.dial(&number).err().map(|e| e.to_string())
    };
    if let Some(why) = refused {
        tracing::info!(line = %ctx.cfg.id, %number, %why, "dial-out refused: OCRP Do Not Accept");
        let mut r = DialResult::failed(OutgoingCallResult::DoNotAccept);
        r.cause = CauseCode::NoCircuitAvailable;
        if let Some(tx) = ctx.shared.pns_tx(&d.pns) {
            let _ = tx.try_send(PnsCmd::DialResult {
                call_id: d.call_id,
                result: r,
            });
        }
        return;
    }
    tracing::info!(line = %ctx.cfg.id, %number, "dialling for the PNS (OCRQ)");
    let pns_addr = ctx
        .shared
        .pns_cfg(&d.pns)
        .map_or(Ipv4Addr::UNSPECIFIED, |p| p.address);
    *call = Some(Call {
        span,
        early: Vec::new(),
        gre_early: None,
        pns: d.pns,
        pns_addr,
        mode: CallMode::IncomingCall,
        call_id: d.call_id,
        events: Some(d.events),
        cands: Vec::new(),
        caller: number,
        dnis: String::new(),
        connect: None,
        info: None,
        relay: None,
        local: None,
        terminate: false,
        dialout: true,
        capture: None,
        up_at: None,
    });
    *phase = Phase::Answering;
    set_state(ctx, "dialing", line, call.as_ref());
}

/// Writes what the local PPP session queued to the line.
async fn flush_local<S: ModemIo>(ctx: &LineCtx, line: &mut LineIo<S>, call: &mut Option<Call>) {
    let Some(l) = call.as_mut().and_then(|c| c.local.as_mut()) else {
        return;
    };
    let out = l.take_output();
    if out.is_empty() {
        return;
    }
    match tokio::time::timeout(Duration::from_millis(250), line.send_data(out)).await {
        Ok(Ok(())) => {
            ctx.stats.to_line_packets.fetch_add(1, Ordering::Relaxed);
            ctx.stats
                .to_line_bytes
                .fetch_add(u64::try_from(out.len()).unwrap_or(0), Ordering::Relaxed);
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "line write failed"),
        Err(_) => {
            ctx.stats.line_write_stalls.fetch_add(1, Ordering::Relaxed);
        }
    }
    out.clear();
}

/// After input or a timer on a local call: write its output; hang up once PPP is down.
async fn local_step<S: ModemIo>(
    ctx: &LineCtx,
    line: &mut LineIo<S>,
    phase: &mut Phase,
    call: &mut Option<Call>,
) {
    flush_local(ctx, line, call).await;
    let down = call
        .as_ref()
        .and_then(|c| c.local.as_ref())
        .and_then(|l| l.down_reason().map(|r| r.to_string()));
    if let Some(reason) = down {
        tracing::info!(line = %ctx.cfg.id, %reason, "local PPP ended: hanging up");
        *call = None;
        line.hangup();
        *phase = Phase::HangingUp;
        set_state(ctx, "hanging-up", line, None);
    }
}

/// Per-call randomness for the PPP engine (challenges, magic numbers): `RandomState`'s
/// per-process keys, the line id and the time; different per line and call.
fn local_seed(line: &str) -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(line.as_bytes());
        h.write_usize(i);
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    seed
}

/// The control configuration a PAC line runs: the profile's, with the PAC answering.
pub(crate) fn pac_control(mut c: ControlConfig) -> (ControlConfig, u8) {
    let ring = match c.answer {
        AnswerMode::OnRing(n) => n.max(1),
        AnswerMode::Auto | AnswerMode::External => 1,
    };
    c.answer = AnswerMode::External;
    (c, ring)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn pac_answers_itself() {
        let (c, ring) = pac_control(ControlConfig {
            answer: AnswerMode::OnRing(2),
            ..ControlConfig::default()
        });
        assert_eq!(c.answer, AnswerMode::External);
        assert_eq!(ring, 2);
    }
}
