//! tokio drivers for the PPTP control connection: the thin shell around
//! [`pptp::control::Connection`](crate::pptp::control::Connection).
//!
//! - [`drive`] owns one TCP stream and one `Connection`: it feeds bytes and timer expiries in,
//!   writes what the core transmits, forwards events to the shell and applies its commands.
//!   One task owns all calls of the connection.
//! - [`connect_with_backoff`] (PAC side) connects with exponential backoff and jitter.
//! - [`serve`] (PNS side) accepts connections and runs [`drive`] in a task per connection.
//! - Graceful shutdown: [`Command::Stop`] (or dropping the command sender) clears every call,
//!   sends Stop-Control-Connection-Request, waits for the reply (bounded by the core's stop
//!   time-out) and closes TCP.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use crate::pptp::control::{
    CloseReason, CommandError, Config, Connection, DialResult, Event, IncomingCall, Open,
    OutgoingCall,
};
use crate::pptp::message::{
    CallStatistics, CauseCode, ErrorCode, FramingType, IncomingCallResult, StopReason,
    WanErrorNotify,
};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// A command from the shell to the task that owns a control connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// PAC: report a ringing line (ICRQ); the reply carries our Call ID.
    IncomingCall(IncomingCall, oneshot::Sender<Result<u16, CommandError>>),
    /// PAC: the line answered.
    AnswerConnected {
        /// Call ID.
        call_id: u16,
        /// Connect speed, bit/s.
        speed: u32,
        /// Framing of the line.
        framing: FramingType,
    },
    /// Place an outgoing call (OCRQ); the reply carries our Call ID.
    OutgoingCall(OutgoingCall, oneshot::Sender<Result<u16, CommandError>>),
    /// PAC side: the dial on behalf of an OCRQ finished.
    DialResult {
        /// Call ID.
        call_id: u16,
        /// Result.
        result: DialResult,
    },
    /// PNS: accept an incoming call.
    Accept {
        /// Call ID.
        call_id: u16,
    },
    /// PNS: refuse an incoming call.
    Reject {
        /// Call ID.
        call_id: u16,
        /// Result Code of the ICRP.
        result: IncomingCallResult,
        /// Error Code of the ICRP.
        error: ErrorCode,
    },
    /// End a call from our side.
    HangUp {
        /// Call ID.
        call_id: u16,
        /// Cause Code.
        cause: CauseCode,
        /// Call Statistics text for the CDN (PAC side).
        statistics: Option<CallStatistics>,
    },
    /// PAC side: the line's HDLC error counters (rate-limited by the core).
    WanError {
        /// Call ID.
        call_id: u16,
        /// Cumulative counters.
        counters: WanErrorNotify,
    },
    /// PNS side: Set-Link-Info.
    SetLinkInfo {
        /// Call ID.
        call_id: u16,
        /// Send ACCM.
        send_accm: u32,
        /// Receive ACCM.
        receive_accm: u32,
    },
    /// Graceful shutdown.
    Stop(StopReason),
}

/// The shell's side of a driven connection.
#[derive(Debug)]
pub struct Handle {
    /// Commands to the connection task.
    pub commands: mpsc::Sender<Command>,
    /// Events from the connection task; ends after [`Event::Closed`].
    pub events: mpsc::Receiver<Event>,
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

fn apply(conn: &mut Connection, cmd: Command) {
    let t = now();
    let r: Result<(), CommandError> = match cmd {
        Command::IncomingCall(call, reply) => {
            let _ = reply.send(conn.incoming_call(t, call));
            Ok(())
        }
        Command::OutgoingCall(call, reply) => {
            let _ = reply.send(conn.outgoing_call(t, call));
            Ok(())
        }
        Command::AnswerConnected {
            call_id,
            speed,
            framing,
        } => conn.answer_connected(t, call_id, speed, framing),
        Command::DialResult { call_id, result } => conn.dial_result(t, call_id, result),
        Command::Accept { call_id } => conn.accept_call(t, call_id),
        Command::Reject {
            call_id,
            result,
            error,
        } => conn.reject_call(t, call_id, result, error),
        Command::HangUp {
            call_id,
            cause,
            statistics,
        } => {
            if let Some(s) = statistics {
                conn.set_call_statistics(call_id, s);
            }
            conn.hang_up(t, call_id, cause)
        }
        Command::WanError { call_id, counters } => conn.wan_error(t, call_id, counters),
        Command::SetLinkInfo {
            call_id,
            send_accm,
            receive_accm,
        } => conn.set_link_info(t, call_id, send_accm, receive_accm),
        Command::Stop(reason) => {
            conn.stop(t, reason);
            Ok(())
        }
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "pptp ctrl: command refused");
    }
}

/// Drives `conn` over `stream` until the connection closes; returns why. Events go to
/// `events` (a closed receiver is tolerated), commands come from `commands` (when every sender
/// is gone, the connection is stopped gracefully).
pub async fn drive(
    mut conn: Connection,
    mut stream: TcpStream,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
) -> io::Result<CloseReason> {
    let peer = stream.peer_addr().ok();
    let span = tracing::info_span!("pptp_ctrl", ?peer);
    let _enter = span.enter();
    let mut inbuf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(1024);
    let mut commands_open = true;
    loop {
        while conn.poll_transmit(&mut out).is_some() {}
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                conn.handle_tcp_closed(now());
                tracing::debug!(error = %e, "pptp ctrl: write failed");
            }
            out.clear();
        }
        let mut closed = None;
        while let Some(ev) = conn.poll_event() {
            if let Event::Closed(r) = ev {
                closed = Some(r);
            }
            let _ = events.send(ev).await;
        }
        if let Some(reason) = closed {
            let _ = stream.shutdown().await;
            return Ok(reason);
        }
        let deadline = conn.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = stream.read(&mut inbuf) => match r {
                Ok(0) | Err(_) => conn.handle_tcp_closed(now()),
                Ok(n) => conn.handle_bytes(now(), inbuf.get(..n).unwrap_or_default()),
            },
            cmd = commands.recv(), if commands_open => match cmd {
                Some(cmd) => apply(&mut conn, cmd),
                None => {
                    commands_open = false;
                    conn.stop(now(), StopReason::LocalShutdown);
                }
            },
            () = sleep_until(deadline) => conn.handle_timeout(now()),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Starts [`drive`] in a task; returns the shell's [`Handle`] and the task.
pub fn spawn(
    conn: Connection,
    stream: TcpStream,
) -> (Handle, tokio::task::JoinHandle<io::Result<CloseReason>>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::channel(256);
    let task = tokio::spawn(drive(conn, stream, cmd_rx, ev_tx));
    (
        Handle {
            commands: cmd_tx,
            events: ev_rx,
        },
        task,
    )
}

/// Exponential backoff with jitter for reconnecting (sans-IO, seeded): the `n`-th delay is
/// uniform in `[d/2, d]` with `d = min(base · 2^n, max)` ("equal jitter").
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff from `base` up to `max`, jittered by a generator seeded with `seed`.
    pub fn new(base: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
            rng: seed,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        let d = self.base.saturating_mul(factor).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // SplitMix64 step.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let frac = (z >> 11) as f64 / (1u64 << 53) as f64;
        d / 2 + d.mul_f64(frac / 2.0)
    }

    /// Starts over (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// PAC side: connects to `addr`, retrying with `backoff` until it succeeds or `attempts` tries
/// have failed (`None`: forever). Returns the stream and how many attempts failed.
pub async fn connect_with_backoff(
    addr: SocketAddr,
    backoff: &mut Backoff,
    attempts: Option<u32>,
) -> io::Result<(TcpStream, u32)> {
    let mut failed = 0u32;
    loop {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                backoff.reset();
                return Ok((s, failed));
            }
            Err(e) => {
                failed += 1;
                if attempts.is_some_and(|max| failed >= max) {
                    return Err(e);
                }
                let d = backoff.next_delay();
                tracing::debug!(%addr, error = %e, delay = ?d, "pptp ctrl: connect failed");
                tokio::time::sleep(d).await;
            }
        }
    }
}

/// PAC side: connects (with backoff) and starts driving an active connection.
pub async fn connect(
    addr: SocketAddr,
    config: Config,
    backoff: &mut Backoff,
    attempts: Option<u32>,
) -> io::Result<(Handle, tokio::task::JoinHandle<io::Result<CloseReason>>)> {
    let (stream, _) = connect_with_backoff(addr, backoff, attempts).await?;
    Ok(spawn(Connection::new(config, Open::Active, now()), stream))
}

/// PNS side: accepts control connections on `listener` until `shutdown` turns true. Each
/// connection gets a passive [`Connection`] from `config`, its own task, and a [`Handle`]
/// handed to `on_connection` (which typically spawns the shell logic). On shutdown every live
/// connection is stopped gracefully and awaited.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
    mut on_connection: F,
) -> io::Result<()>
where
    F: FnMut(SocketAddr, Handle) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks: Vec<(mpsc::Sender<Command>, tokio::task::JoinHandle<_>)> = Vec::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "pptp ctrl: accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = Connection::new(config.clone(), Open::Passive, now());
                let (handle, task) = spawn(conn, stream);
                tasks.retain(|(_, t)| !t.is_finished());
                tasks.push((handle.commands.clone(), task));
                tokio::spawn(on_connection(peer, handle));
            }
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    for (cmd, _) in &tasks {
        let _ = cmd.send(Command::Stop(StopReason::LocalShutdown)).await;
    }
    for (_, task) in tasks {
        let _ = task.await;
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_in_bounds() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 42);
        let mut prev_cap = Duration::ZERO;
        for n in 0..12u32 {
            let cap = (Duration::from_secs(1) * 2u32.pow(n)).min(Duration::from_secs(60));
            let d = b.next_delay();
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {n}: {d:?} not in [{:?}, {cap:?}]",
                cap / 2
            );
            assert!(cap >= prev_cap);
            prev_cap = cap;
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        // Seeded: two generators with different seeds spread out.
        let mut x = Backoff::new(Duration::from_secs(8), Duration::from_secs(8), 1);
        let mut y = Backoff::new(Duration::from_secs(8), Duration::from_secs(8), 2);
        assert_ne!(x.next_delay(), y.next_delay());
    }
}
