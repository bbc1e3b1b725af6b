//! What `pptp-nas status` shows: lines, calls, control connections; served on a unix socket.
//!
//! Protocol: the client connects, sends one line (`text` or `json`), and reads the answer
//! until EOF.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::line::{LineStats, LineView};
use super::Shared;

/// Everything status reads from.
pub(crate) struct StatusSource {
    pub(crate) shared: Arc<Shared>,
    pub(crate) lines: super::LineSlots,
    pub(crate) started: std::time::Instant,
}

/// A snapshot of the PAC.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Seconds since start.
    pub uptime_s: u64,
    /// Lines.
    pub lines: Vec<LineStatus>,
    /// Control connections.
    pub pns: Vec<PnsStatus>,
    /// GRE packets received for no known call (dropped).
    pub gre_unknown: u64,
}

/// One line.
#[derive(Debug, Clone, Serialize)]
pub struct LineStatus {
    /// State and current call.
    #[serde(flatten)]
    pub view: LineView,
    /// Calls that came up on this line.
    pub calls: u64,
    /// Calls refused (rules, no PNS).
    pub refused: u64,
    /// PPP frames line -> GRE.
    pub to_gre_packets: u64,
    /// Octets line -> GRE (PPP frames without HDLC framing).
    pub to_gre_bytes: u64,
    /// PPP frames GRE -> line.
    pub to_line_packets: u64,
    /// Octets GRE -> line.
    pub to_line_bytes: u64,
    /// GRE sequence gaps (packets lost on the way from the PNS).
    pub gre_lost: u64,
    /// GRE packets that arrived after their sequence number was given up as lost.
    pub gre_late: u64,
    /// GRE packets received twice (dropped).
    pub gre_duplicate: u64,
    /// GRE packets that arrived out of order and were delivered in order.
    pub gre_reordered: u64,
    /// GRE packets not sent because the transport was full.
    pub gre_tx_dropped: u64,
    /// HDLC frames dropped (bad FCS, aborted, too short, too long).
    pub hdlc_errors: u64,
    /// Line writes abandoned after blocking too long (data to the caller dropped).
    pub line_write_stalls: u64,
}

/// One PNS control connection.
#[derive(Debug, Clone, Serialize)]
pub struct PnsStatus {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Mode.
    pub mode: super::config::CallMode,
    /// Established now.
    pub up: bool,
    /// State text.
    pub state: String,
    /// Calls on it.
    pub calls: usize,
    /// Times established.
    pub connects: u64,
    /// Failed attempts.
    pub failures: u64,
}

impl StatusSource {
    pub(crate) fn collect(&self) -> Status {
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let slots: Vec<(Arc<Mutex<LineView>>, Arc<LineStats>)> = self
            .lines
            .lock()
            .map(|v| {
                v.iter()
                    .map(|s| (s.view.clone(), s.stats.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let lines = slots
            .iter()
            .map(|(v, s)| LineStatus {
                view: v.lock().map(|g| g.clone()).unwrap_or_default(),
                calls: ld(&s.calls),
                refused: ld(&s.refused),
                to_gre_packets: ld(&s.to_gre_packets),
                to_gre_bytes: ld(&s.to_gre_bytes),
                to_line_packets: ld(&s.to_line_packets),
                to_line_bytes: ld(&s.to_line_bytes),
                gre_lost: ld(&s.gre_lost),
                gre_late: ld(&s.gre_late),
                gre_duplicate: ld(&s.gre_duplicate),
                gre_reordered: ld(&s.gre_reordered),
                gre_tx_dropped: ld(&s.gre_tx_dropped),
                hdlc_errors: ld(&s.hdlc_errors),
                line_write_stalls: ld(&s.line_write_stalls),
            })
            .collect();
        let mut pns: Vec<PnsStatus> = self
            .shared
            .pns
            .values()
            .map(|(cfg, _, s)| PnsStatus {
                name: cfg.name.clone(),
                address: format!("{}:{}", cfg.address, cfg.port),
                mode: cfg.mode,
                up: s.up.load(Ordering::Relaxed),
                state: s.state.lock().map(|g| g.clone()).unwrap_or_default(),
                calls: s.calls.load(Ordering::Relaxed),
                connects: s.connects.load(Ordering::Relaxed),
                failures: s.failures.load(Ordering::Relaxed),
            })
            .collect();
        pns.sort_by(|a, b| a.name.cmp(&b.name));
        Status {
            uptime_s: self.started.elapsed().as_secs(),
            lines,
            pns,
            gre_unknown: ld(&self.shared.gre_unknown),
        }
    }
}

impl Status {
    /// The human-readable table `pptp-nas status` prints.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "uptime {} s, {} GRE packet(s) for unknown calls",
            self.uptime_s, self.gre_unknown
        );
        let _ = writeln!(s, "\nLINES");
        let _ = writeln!(
            s,
            "{:<10} {:<16} {:<14} {:>7} {:>6} {:>5} {:>6} {:>10} {:>10} {:>8} {:>8} {:>6} {:>6}",
            "id",
            "state",
            "modem",
            "speed",
            "calls",
            "refus",
            "pns",
            "to-gre B",
            "to-line B",
            "to-gre",
            "to-line",
            "lost",
            "hdlc"
        );
        for l in &self.lines {
            let v = &l.view;
            let _ = writeln!(
                s,
                "{:<10} {:<16} {:<14} {:>7} {:>6} {:>5} {:>6} {:>10} {:>10} {:>8} {:>8} {:>6} {:>6}",
                v.id,
                v.state,
                v.modem.chars().take(14).collect::<String>(),
                v.connect_speed.map_or("-".into(), |x| x.to_string()),
                l.calls,
                l.refused,
                v.call.as_ref().map_or("-", |c| c.pns.as_str()),
                l.to_gre_bytes,
                l.to_line_bytes,
                l.to_gre_packets,
                l.to_line_packets,
                l.gre_lost,
                l.hdlc_errors
            );
        }
        let _ = writeln!(s, "\nCALLS");
        for l in &self.lines {
            if let Some(c) = &l.view.call {
                let _ = writeln!(
                    s,
                    "line {} pns {} call {} peer {} caller {:?} up {} s",
                    l.view.id,
                    c.pns,
                    c.call_id,
                    c.peer_call_id,
                    c.caller,
                    c.up_since_s.map_or("-".into(), |x| x.to_string())
                );
            }
        }
        let _ = writeln!(s, "\nCONTROL CONNECTIONS");
        for p in &self.pns {
            let _ = writeln!(
                s,
                "{:<10} {:<22} {:?} up={} calls={} connects={} failures={} {}",
                p.name, p.address, p.mode, p.up, p.calls, p.connects, p.failures, p.state
            );
        }
        s
    }

    /// JSON for machines.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

pub(crate) fn serve(
    path: &Path,
    source: Arc<StatusSource>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let listener = UnixListener::bind(path)?;
    let path = path.to_path_buf();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                a = listener.accept() => {
                    let Ok((stream, _)) = a else { continue };
                    let source = source.clone();
                    tokio::spawn(async move {
                        let (r, mut w) = stream.into_split();
                        let mut req = String::new();
                        let mut r = BufReader::new(r);
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), r.read_line(&mut req)).await;
                        let st = source.collect();
                        let body = if req.trim() == "json" { st.to_json() } else { st.to_text() };
                        let _ = w.write_all(body.as_bytes()).await;
                        let _ = w.shutdown().await;
                    });
                }
                _ = stop.changed() => {
                    let _ = std::fs::remove_file(&path);
                    return;
                }
            }
        }
    }))
}

/// Client side of `pptp-nas status`: asks the daemon at `path`.
pub async fn query(path: &Path, json: bool) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut s = tokio::net::UnixStream::connect(path).await?;
    s.write_all(if json { b"json\n" } else { b"text\n" })
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}
