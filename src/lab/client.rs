//! The lab's dial-in client: dials on a soft-modem pty (`ATDT`, waits for `CONNECT`), runs the
//! PPP client [`Session`] in async HDLC over the line, sends pings and a bulk stream to the
//! PNS's responder, and hangs up (LCP Terminate, then the lab drops the line: a pty has no DTR).
//!
//! It reports what it sees as [`Stage`]s (the lab prints them) and returns a [`ClientReport`].
//! `pptp-nas dial` (branch `dial`) had not landed when this was written; this driver uses the
//! same sans-IO pieces (modem result lines, [`crate::hdlc`], [`Session`], [`Pinger`],
//! [`BulkStream`]) and should give way to its library function once that exists.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{auth_name, ClientReport, Stage};
use crate::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
use crate::pns::session::Session;
use crate::ppp::engine::{DownReason, Event, Phase, Policy};
use crate::ppp::packet::MppeBits;
use crate::responder::{kbps, BulkStream, Pinger};

/// The number every lab client dials.
pub const NUMBER: &str = "5551234";
const PING_INTERVAL: Duration = Duration::from_millis(200);
const PING_WAIT: Duration = Duration::from_secs(3);
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
const LINK_TIMEOUT: Duration = Duration::from_secs(30);
/// Octets the client may have queued for the line before the bulk stream waits.
const BULK_QUEUE: usize = 1024;
const BULK_PAYLOAD: usize = 1000;

/// What one client does.
#[derive(Debug, Clone)]
pub struct ClientPlan {
    /// Client number (stages and the summary use it).
    pub index: usize,
    /// The soft-modem's client-side device.
    pub device: std::path::PathBuf,
    /// PPP client policy (credentials, accepted methods, CCP).
    pub policy: Arc<Policy>,
    /// Pings to send.
    pub pings: u32,
    /// Length of the bulk run (zero: none).
    pub duration: Duration,
    /// Engine seed.
    pub seed: [u8; 32],
}

/// Live figures of the throughput run, shared by every client (for the progress bar).
#[derive(Debug, Default)]
pub struct BulkMeter {
    /// IP octets handed to the line by every client so far.
    pub octets: AtomicU64,
    /// Clients in their bulk run now.
    pub active: AtomicUsize,
    /// Clients that started a bulk run.
    pub started: AtomicUsize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Negotiating,
    Pinging,
    Bulk,
    Fence,
    HangingUp,
}

/// Dials and runs one call. `stage` carries the progress lines; `hang_up` is called after LCP
/// terminates (the lab drops the line, as DTR would).
pub async fn run(
    plan: ClientPlan,
    stage: mpsc::UnboundedSender<Stage>,
    meter: Arc<BulkMeter>,
    hang_up: impl FnOnce(),
) -> ClientReport {
    let mut report = ClientReport::default();
    let say = |text: String| {
        let _ = stage.send(Stage::client(plan.index, text));
    };
    let port = match crate::io::line::open_serial(&plan.device, 115_200, false) {
        Ok(p) => p,
        Err(e) => {
            report
                .errors
                .push(format!("cannot open {}: {e}", plan.device.display()));
            return report;
        }
    };
    let (mut reader, mut writer) = tokio::io::split(port);
    // The writer runs on its own so that a slow line never stops the reader; `queued` counts
    // octets handed over and not yet written, `written` all octets handed over (the bulk
    // stream paces itself on both).
    let queued = Arc::new(AtomicUsize::new(0));
    let written = AtomicU64::new(0);
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
    let wq = queued.clone();
    let writer_task = tokio::spawn(async move {
        while let Some(b) = wrx.recv().await {
            if writer.write_all(&b).await.is_err() {
                break;
            }
            wq.fetch_sub(b.len(), Ordering::Relaxed);
        }
    });
    let send = |b: Vec<u8>| {
        queued.fetch_add(b.len(), Ordering::Relaxed);
        written.fetch_add(u64::try_from(b.len()).unwrap_or(0), Ordering::Relaxed);
        let _ = wtx.send(b);
    };

    // ---- dialling ----
    let dial_at = Instant::now();
    send(format!("ATDT{NUMBER}\r").into_bytes());
    say(format!("client: dialling ATDT{NUMBER}"));
    let mut rbuf = vec![0u8; 16 * 1024];
    let mut text: Vec<u8> = Vec::new();
    let (leftover, connect_speed) = loop {
        let r = tokio::time::timeout_at(
            tokio::time::Instant::from_std(dial_at + DIAL_TIMEOUT),
            reader.read(&mut rbuf),
        )
        .await;
        let n = match r {
            Ok(Ok(n)) if n > 0 => n,
            Ok(Ok(_)) | Ok(Err(_)) => {
                report.errors.push("dial: line closed".into());
                return finish(report, writer_task, hang_up);
            }
            Err(_) => {
                report.errors.push("dial: no CONNECT within 30 s".into());
                return finish(report, writer_task, hang_up);
            }
        };
        text.extend_from_slice(rbuf.get(..n).unwrap_or_default());
        let mut connected = None;
        while let Some(pos) = text.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = text.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw).trim().to_string();
            if line.starts_with("CONNECT") {
                connected = Some(line);
                break;
            }
            if matches!(
                line.as_str(),
                "NO CARRIER" | "BUSY" | "NO DIALTONE" | "NO ANSWER" | "ERROR"
            ) {
                report.errors.push(format!("dial failed: {line}"));
                return finish(report, writer_task, hang_up);
            }
        }
        if let Some(line) = connected {
            say(format!("client: {line}, starting PPP (LCP)"));
            let speed = line
                .trim_start_matches("CONNECT")
                .split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            break (std::mem::take(&mut text), speed);
        }
    };

    // ---- PPP ----
    let mut session = Session::new(plan.policy.clone(), None, plan.seed);
    // We ask for ACCM 0 and take unescaped control characters from the start: the PAC frames
    // with our ACCM as soon as it sees the PNS ack our request, which can be before our own
    // LCP is Opened (when the PNS's first Configure-Request was lost). A receiver deleting
    // them until Opened would drop every later Configure-Request and never open.
    let rx_accm = plan.policy.lcp.accm.unwrap_or(crate::hdlc::DEFAULT_ACCM);
    let mut dec = Decoder::new(DecoderConfig {
        accm: rx_accm,
        ..DecoderConfig::default()
    });
    let mut enc = Encoder::new(EncoderConfig::default());
    let mut step = Step::Negotiating;
    let mut pinger: Option<Pinger> = None;
    let mut bulk: Option<BulkStream> = None;
    let mut bulk_start = Instant::now();
    let mut bulk_written_at_start = 0u64;
    let mut fence: Option<Pinger> = None;
    let mut deadline_step = Instant::now() + LINK_TIMEOUT;
    let mut next_ping = Instant::now();
    let mut tail: Vec<u8> = Vec::new();
    let mut auth_cut = false;
    let mut carrier_lost = false;
    session.open(Instant::now());
    let mut pending_input = leftover;
    loop {
        let now = Instant::now();
        // Input.
        if !pending_input.is_empty() {
            // A pty has no DCD: the modem reports carrier loss as text between frames.
            tail.extend_from_slice(&pending_input);
            if memchr::memmem::find(&tail, b"NO CARRIER").is_some() {
                carrier_lost = true;
            }
            let keep = tail.len().saturating_sub(16);
            tail.drain(..keep);
            let mut input: &[u8] = &pending_input;
            let mut frames = Vec::new();
            while let Some(r) = dec.decode(&mut input) {
                if let Ok(f) = r {
                    frames.push(f.to_vec());
                }
            }
            pending_input.clear();
            for f in frames {
                let before = session.engine().phase();
                let ip = session.handle_frame(now, &f);
                let after = session.engine().phase();
                if before == Phase::Authenticate
                    && !matches!(after, Phase::Authenticate | Phase::Network)
                {
                    auth_cut = true;
                }
                let Some(ip) = ip else { continue };
                if let Some(p) = pinger.as_mut() {
                    if p.handle_packet(now, &ip).is_some() {
                        continue;
                    }
                }
                if let Some(f) = fence.as_mut() {
                    if f.handle_packet(now, &ip).is_some() {
                        continue;
                    }
                }
            }
        }
        if carrier_lost {
            session.lower_down(now);
            if step != Step::HangingUp {
                report.errors.push("carrier lost (NO CARRIER)".into());
            }
            say("client: NO CARRIER, call over".into());
            break;
        }
        // Events.
        let mut down = false;
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::LinkUp(l) => {
                    // The negotiated ACCMs take effect now (RFC 1662 section 7.1); the PAC
                    // already frames with ours.
                    enc.set_accm(l.tx_accm);
                    dec.set_accm(l.rx_accm);
                    say(format!(
                        "client: LCP opened, server asks for {}",
                        l.auth_self.map_or("no authentication", auth_name)
                    ));
                }
                Event::Authenticated { .. } => {
                    report.auth = session.engine().link().auth_self;
                    say(format!(
                        "client: authenticated ({})",
                        report.auth.map_or("none", auth_name)
                    ));
                }
                Event::CcpUp(r) => {
                    report.mppe_bits = r.key_bits().unwrap_or(0);
                    report.stateless = r.tx.contains(MppeBits::H_STATELESS);
                    report.mppc = r.tx.contains(MppeBits::MPPC) || r.rx.contains(MppeBits::MPPC);
                    say(format!(
                        "client: CCP opened: MPPE {} {}, MPPC {}",
                        if report.mppe_bits == 0 {
                            "off".to_string()
                        } else {
                            format!("{}-bit", report.mppe_bits)
                        },
                        if report.stateless {
                            "stateless"
                        } else {
                            "stateful"
                        },
                        if report.mppc { "on" } else { "off" }
                    ));
                }
                Event::IpUp(r) => {
                    report.local_ip = Some(r.local);
                    report.peer_ip = Some(r.peer);
                    report.setup_time = Some(now.saturating_duration_since(dial_at));
                    say(format!(
                        "client: IPCP opened: {} -> {} ({:.2} s after dialling)",
                        r.local,
                        r.peer,
                        now.saturating_duration_since(dial_at).as_secs_f64()
                    ));
                }
                Event::LinkDown(reason) if step == Step::HangingUp => {
                    say(format!("client: LCP down ({reason})"));
                    // A moment for the Terminate-Ack and for the server to see it.
                    deadline_step = deadline_step.min(now + Duration::from_millis(300));
                }
                Event::LinkDown(reason) => {
                    let expected = step == Step::HangingUp
                        || (step != Step::Negotiating
                            && matches!(reason, DownReason::PeerTerminated));
                    if !expected {
                        let e = if auth_cut && matches!(reason, DownReason::PeerTerminated) {
                            "authentication failed: the server terminated the link".to_string()
                        } else {
                            format!("link down: {reason}")
                        };
                        say(format!("client: {e}"));
                        report.errors.push(e);
                    } else {
                        say(format!("client: LCP down ({reason})"));
                    }
                    down = true;
                }
                _ => {}
            }
        }
        // Plan.
        match step {
            Step::Negotiating if session.ready() => {
                if let Some((l, p)) = report.local_ip.zip(report.peer_ip) {
                    pinger = Some(Pinger::new(l, p, 0x1a00 | (plan.index as u16 & 0xff), 56));
                    fence = Some(Pinger::new(l, p, 0x2a00 | (plan.index as u16 & 0xff), 8));
                    bulk = Some(BulkStream::new(l, p, BULK_PAYLOAD));
                    step = Step::Pinging;
                    next_ping = now;
                    deadline_step = now + PING_INTERVAL * plan.pings + PING_WAIT;
                }
            }
            Step::Negotiating if now >= deadline_step => {
                report.errors.push(format!(
                    "link not up after {} s (phase {:?})",
                    LINK_TIMEOUT.as_secs(),
                    session.engine().phase()
                ));
                session.close(now, "timeout");
                step = Step::HangingUp;
                deadline_step = now + Duration::from_secs(3);
            }
            Step::Pinging => {
                let st = pinger
                    .as_ref()
                    .map(|p| p.stats().clone())
                    .unwrap_or_default();
                if st.sent < plan.pings && now >= next_ping {
                    if let Some(p) = pinger.as_mut() {
                        let req = p.next_request(now);
                        if session.send_ip(&req).is_ok() {
                            report.pings_sent += 1;
                        }
                    }
                    next_ping = now + PING_INTERVAL;
                }
                let all_back = st.received >= plan.pings;
                if all_back || now >= deadline_step {
                    report.pings_received = st.received;
                    report.rtt_ms_median = st.median().map(|d| d.as_secs_f64() * 1000.0);
                    say(format!(
                        "client: pings {}/{} answered, median RTT {}",
                        st.received,
                        report.pings_sent,
                        report
                            .rtt_ms_median
                            .map_or("-".to_string(), |r| format!("{r:.1} ms"))
                    ));
                    if plan.duration.is_zero() {
                        step = Step::HangingUp;
                        session.close(now, "user hang-up");
                        say("client: hanging up (LCP Terminate-Request)".into());
                        deadline_step = now + Duration::from_secs(3);
                    } else {
                        step = Step::Bulk;
                        bulk_start = now;
                        bulk_written_at_start = written.load(Ordering::Relaxed);
                        deadline_step = now + plan.duration;
                        meter.started.fetch_add(1, Ordering::Relaxed);
                        meter.active.fetch_add(1, Ordering::Relaxed);
                        say(format!(
                            "client: throughput run, {:.1} s of UDP to the discard port",
                            plan.duration.as_secs_f64()
                        ));
                    }
                }
            }
            Step::Bulk => {
                if now >= deadline_step {
                    step = Step::Fence;
                    meter.active.fetch_sub(1, Ordering::Relaxed);
                    // Everything sent before this ping has reached the server when its reply
                    // comes back: the run ends then.
                    if let Some(f) = fence.as_mut() {
                        let _ = session.send_ip(&f.next_request(now));
                    }
                    deadline_step = now + PING_WAIT;
                } else if let Some(b) = bulk.as_mut() {
                    // A pty has no RTS/CTS and buffers tens of kilobytes: pace the stream at
                    // the CONNECT speed (plus a little) so that it does not queue far ahead of
                    // the line, as a modem's flow control would.
                    let allowance = connect_speed.max(1200) / 8
                        * u64::try_from(now.saturating_duration_since(bulk_start).as_millis())
                            .unwrap_or(u64::MAX)
                        / 1000
                        + 2 * BULK_QUEUE as u64;
                    while queued.load(Ordering::Relaxed) < BULK_QUEUE
                        && written
                            .load(Ordering::Relaxed)
                            .saturating_sub(bulk_written_at_start)
                            < allowance
                    {
                        let pkt = b.next_packet();
                        let _ = session.send_ip(&pkt);
                        meter
                            .octets
                            .fetch_add(u64::try_from(pkt.len()).unwrap_or(0), Ordering::Relaxed);
                        if !flush(&mut session, &mut enc, &send) {
                            break;
                        }
                    }
                }
            }
            Step::Fence => {
                let back = fence.as_ref().is_some_and(|f| f.stats().received > 0);
                if back || now >= deadline_step {
                    let octets = bulk.as_ref().map_or(0, BulkStream::sent_octets);
                    report.bulk_octets = octets;
                    report.throughput_kbps =
                        kbps(octets, now.saturating_duration_since(bulk_start));
                    report.compression_ratio = session.stats().compression_ratio();
                    say(format!(
                        "client: throughput {:.1} kbit/s of IP ({} octets in {:.2} s), MPPC ratio {:.2}{}",
                        report.throughput_kbps,
                        octets,
                        now.saturating_duration_since(bulk_start).as_secs_f64(),
                        report.compression_ratio,
                        if back { "" } else { " (end marker lost)" }
                    ));
                    step = Step::HangingUp;
                    session.close(now, "user hang-up");
                    say("client: hanging up (LCP Terminate-Request)".into());
                    deadline_step = now + Duration::from_secs(3);
                }
            }
            Step::HangingUp if now >= deadline_step => {
                down = true;
            }
            _ => {}
        }
        if report.compression_ratio == 0.0 {
            report.compression_ratio = session.stats().compression_ratio();
        }
        // Output.
        flush(&mut session, &mut enc, &send);
        if down {
            break;
        }
        // Wait.
        let mut wake = session
            .poll_timeout()
            .unwrap_or(now + Duration::from_secs(1))
            .min(deadline_step)
            .min(now + Duration::from_secs(1));
        if step == Step::Pinging {
            wake = wake.min(next_ping.max(now));
        }
        if step == Step::Bulk {
            wake = wake.min(now + Duration::from_millis(5));
        }
        tokio::select! {
            r = reader.read(&mut rbuf) => match r {
                Ok(n) if n > 0 => pending_input.extend_from_slice(rbuf.get(..n).unwrap_or_default()),
                _ => {
                    carrier_lost = true;
                }
            },
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                session.handle_timeout(Instant::now());
            }
        }
    }
    if step == Step::Bulk {
        meter.active.fetch_sub(1, Ordering::Relaxed);
    }
    if report.pings_sent == 0 {
        if let Some(p) = pinger.as_ref() {
            report.pings_received = p.stats().received;
        }
    }
    report.compression_ratio = session.stats().compression_ratio();
    // Last words (Terminate-Ack) go out before the line drops.
    flush(&mut session, &mut enc, &send);
    tokio::time::sleep(Duration::from_millis(50)).await;
    say("client: on hook (line dropped)".into());
    finish(report, writer_task, hang_up)
}

/// Encodes and queues whatever the session has to send; false when nothing was sent.
fn flush(session: &mut Session, enc: &mut Encoder, send: &impl Fn(Vec<u8>)) -> bool {
    let mut out = Vec::new();
    while let Some(f) = session.poll_transmit() {
        if let Err(e) = enc.encode(&f, &mut out) {
            tracing::warn!(error = %e, "frame not encodable");
        }
    }
    if out.is_empty() {
        return false;
    }
    send(out);
    true
}

fn finish(
    report: ClientReport,
    writer: tokio::task::JoinHandle<()>,
    hang_up: impl FnOnce(),
) -> ClientReport {
    hang_up();
    writer.abort();
    report
}
