//! What `pptp-nas status --socket PATH` shows for a PNS: control connections, calls (peer,
//! call IDs, user, authentication, MPPE/MPPC, address, duration, octets) and the throttle table
//! (user or source, failures, delay and lockout left). No password is ever kept here.
//!
//! Served on a unix socket with the PAC's protocol (see `crate::pac::status`): the client
//! connects, sends one line (`text` or `json`) and reads the answer until EOF, so the same
//! `pptp-nas status` subcommand queries either daemon.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::throttle::{ThrottleEntry, ThrottleHandle};

/// One call as the status page shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallStatus {
    /// The PAC's or PPTP client's address.
    pub peer: String,
    /// Our call ID.
    pub call_id: u16,
    /// The peer's call ID.
    pub peer_call_id: u16,
    /// Authenticated user, once authenticated.
    pub user: Option<String>,
    /// Authentication protocol (`MsChapV2`, ...), once LCP is up.
    pub auth: Option<String>,
    /// MPPE key length (0: none).
    pub mppe_bits: u16,
    /// Stateless MPPE.
    pub stateless: bool,
    /// MPPC compression.
    pub mppc: bool,
    /// Address given to the caller.
    pub ip: Option<Ipv4Addr>,
    /// Seconds since the call came up.
    pub duration_s: u64,
    /// PPP frame octets received from the peer (GRE payload).
    pub rx_octets: u64,
    /// Octets of IP data sent to the peer after MPPC/MPPE.
    pub tx_octets: u64,
    /// IPv4 packets received.
    pub rx_packets: u64,
    /// IPv4 packets sent.
    pub tx_packets: u64,
}

/// A snapshot of the PNS.
#[derive(Debug, Clone, Serialize)]
pub struct PnsStatus {
    /// Seconds since start.
    pub uptime_s: u64,
    /// Peers with an open control connection (address, calls).
    pub control_connections: Vec<ControlStatus>,
    /// Calls.
    pub calls: Vec<CallStatus>,
    /// Throttle records, most failures first.
    pub throttle: Vec<ThrottleEntry>,
    /// Lockouts started so far.
    pub lockouts: u64,
    /// Authentications refused because of a lockout.
    pub refused_locked: u64,
}

/// One control connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlStatus {
    /// The peer's address and port.
    pub peer: String,
    /// Calls on it.
    pub calls: usize,
}

/// Live tables the daemon updates and the status socket reads.
#[derive(Debug, Default)]
pub struct StatusBoard {
    controls: Mutex<BTreeMap<u64, String>>,
    calls: Mutex<BTreeMap<(u64, u16), (Instant, CallStatus)>>,
}

impl StatusBoard {
    /// A control connection `id` from `peer` is open.
    pub fn control_up(&self, id: u64, peer: String) {
        if let Ok(mut c) = self.controls.lock() {
            c.insert(id, peer);
        }
    }

    /// Control connection `id` ended (its calls with it).
    pub fn control_down(&self, id: u64) {
        if let Ok(mut c) = self.controls.lock() {
            c.remove(&id);
        }
        if let Ok(mut c) = self.calls.lock() {
            c.retain(|k, _| k.0 != id);
        }
    }

    /// Stores the current view of a call of control connection `id` (up since `since`).
    pub fn call(&self, id: u64, since: Instant, row: CallStatus) {
        if let Ok(mut c) = self.calls.lock() {
            c.insert((id, row.call_id), (since, row));
        }
    }

    /// A call ended.
    pub fn call_down(&self, id: u64, call_id: u16) {
        if let Ok(mut c) = self.calls.lock() {
            c.remove(&(id, call_id));
        }
    }

    /// The snapshot as of `now`.
    pub fn collect(&self, now: Instant, started: Instant, throttle: &ThrottleHandle) -> PnsStatus {
        let calls: Vec<CallStatus> = self.calls.lock().map_or_else(
            |_| Vec::new(),
            |c| {
                c.values()
                    .map(|(since, row)| CallStatus {
                        duration_s: now.saturating_duration_since(*since).as_secs(),
                        ..row.clone()
                    })
                    .collect()
            },
        );
        let control_connections = self.controls.lock().map_or_else(
            |_| Vec::new(),
            |c| {
                c.iter()
                    .map(|(id, peer)| ControlStatus {
                        peer: peer.clone(),
                        calls: self
                            .calls
                            .lock()
                            .map_or(0, |k| k.keys().filter(|k| k.0 == *id).count()),
                    })
                    .collect()
            },
        );
        let (lockouts, refused_locked) = throttle.counters();
        PnsStatus {
            uptime_s: now.saturating_duration_since(started).as_secs(),
            control_connections,
            calls,
            throttle: throttle.snapshot(now),
            lockouts,
            refused_locked,
        }
    }
}

impl PnsStatus {
    /// Human-readable tables.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "PNS up {} s", self.uptime_s);
        let _ = writeln!(s, "\nCONTROL CONNECTIONS");
        for c in &self.control_connections {
            let _ = writeln!(s, "{:<22} calls={}", c.peer, c.calls);
        }
        let _ = writeln!(s, "\nCALLS");
        for c in &self.calls {
            let _ = writeln!(
                s,
                "{:<16} id={} peer_id={} user={} auth={} mppe={}{} mppc={} ip={} up={}s rx={} tx={}",
                c.peer,
                c.call_id,
                c.peer_call_id,
                c.user.as_deref().unwrap_or("-"),
                c.auth.as_deref().unwrap_or("-"),
                c.mppe_bits,
                if c.stateless { " stateless" } else { "" },
                if c.mppc { "on" } else { "off" },
                c.ip.map_or("-".to_string(), |a| a.to_string()),
                c.duration_s,
                c.rx_octets,
                c.tx_octets
            );
        }
        let _ = writeln!(
            s,
            "\nAUTH THROTTLE (lockouts={}, refused while locked={})",
            self.lockouts, self.refused_locked
        );
        for e in &self.throttle {
            let _ = writeln!(
                s,
                "{:<6} {:<24} failures={} delay={:.1}s locked={:.0}s",
                e.kind, e.key, e.failures, e.delay_s, e.locked_s
            );
        }
        s
    }

    /// JSON for machines.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Serves the status socket at `path` until `stop` changes.
pub fn serve(
    path: &Path,
    board: Arc<StatusBoard>,
    throttle: ThrottleHandle,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let listener = UnixListener::bind(path)?;
    let path = path.to_path_buf();
    let started = Instant::now();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                a = listener.accept() => {
                    let Ok((stream, _)) = a else { continue };
                    let board = board.clone();
                    let throttle = throttle.clone();
                    tokio::spawn(async move {
                        let (r, mut w) = stream.into_split();
                        let mut req = String::new();
                        let mut r = BufReader::new(r);
                        let _ = tokio::time::timeout(
                            std::time::Duration::from_secs(2),
                            r.read_line(&mut req),
                        )
                        .await;
                        let st = board.collect(Instant::now(), started, &throttle);
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

#[cfg(test)]
mod test {
    use super::*;
    use crate::pns::throttle::ThrottleConfig;
    use std::time::Duration;

    #[test]
    fn board_shows_calls_controls_and_throttle_without_passwords() {
        let t0 = Instant::now();
        let throttle = ThrottleHandle::new(ThrottleConfig::default(), t0);
        for _ in 0..5 {
            let _ = throttle.record(t0, b"mallory", "10.1.1.1", false);
        }
        let board = StatusBoard::default();
        board.control_up(1, "10.0.0.5:4000".into());
        board.call(
            1,
            t0,
            CallStatus {
                peer: "10.0.0.5".into(),
                call_id: 0x4000,
                peer_call_id: 7,
                user: Some("alice".into()),
                auth: Some("MsChapV2".into()),
                mppe_bits: 128,
                mppc: true,
                ip: Some(Ipv4Addr::new(192, 168, 77, 10)),
                tx_octets: 1234,
                ..CallStatus::default()
            },
        );
        let st = board.collect(t0 + Duration::from_secs(9), t0, &throttle);
        assert_eq!(st.calls.len(), 1);
        assert_eq!(st.calls[0].duration_s, 9);
        assert_eq!(st.control_connections[0].calls, 1);
        assert_eq!(st.lockouts, 2);
        let text = st.to_text();
        assert!(
            text.contains("user=alice auth=MsChapV2 mppe=128 mppc=on ip=192.168.77.10 up=9s"),
            "{text}"
        );
        assert!(text.contains("user   mallory"), "{text}");
        assert!(text.contains("failures=5"), "{text}");
        let json = st.to_json();
        assert!(json.contains("\"locked_s\": 291"), "{json}");
        board.control_down(1);
        let st = board.collect(t0, t0, &throttle);
        assert!(st.calls.is_empty() && st.control_connections.is_empty());
    }
}
