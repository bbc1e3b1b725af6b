//! The `pptp-nas pns` daemon: a PPTP Network Server on TCP 1723 and raw GRE.
//!
//! One task accepts TCP connections; each control connection gets its own task running the
//! sans-IO [`Connection`] core in the PNS role (it accepts ICRQ from PACs and OCRQ from PPTP
//! clients such as pptp-linux) and, per call, a [`Session`] (PPP server with its MPPC/MPPE data
//! path) whose credential store is guarded by the shared [`ThrottleHandle`]. One task reads the
//! raw GRE socket and hands each packet to the connection that owns (peer address, Call ID);
//! GRE from any other peer or for any other Call ID is dropped and counted. With `--responder`
//! the caller's ICMP echo and UDP echo/discard packets are answered by [`Responder`].
//!
//! Embedding (what `pptp-nas lab` does): [`serve`] takes an already bound listener (e.g. an
//! ephemeral `127.0.0.1:0` port whose number the caller reads first), a GRE transport
//! ([`PnsGre::Raw`] or [`PnsGre::Channel`], the far end of [`crate::pac::gre::pair`]) and a
//! [`PnsMonitor`] whose counters and event channel show what the daemon does. [`run`] is what
//! `pptp-nas pns` calls: it binds the listen address and a raw GRE socket and serves.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::config::policy::{apply_ccp, parse_auth_list, parse_mppc, parse_mppe, parse_user};
use crate::io::gre_transport::{GreTransport, RawGreSocket, RecvBatch};
use crate::io::tun::{mtu_for, Tun};
use crate::pac::gre::{GreChannel, GreDatagram};
use crate::pns::session::Session;
use crate::pns::status::{CallStatus, StatusBoard};
use crate::pns::throttle::{ThrottleConfig, ThrottleHandle};
use crate::ppp::auth::StaticCredentials;
use crate::ppp::engine::{DownReason, Event as PppEvent, Policy};
use crate::ppp::ipcp::IpcpConfig;
use crate::ppp::lcp::AuthMethod;
use crate::ppp::packet::MppeBits;
use crate::pptp::control::{Config, Connection, DialResult, Event, Open, Role};
use crate::pptp::gre::{GreRepr, SeqNumber};
use crate::pptp::message::{CauseCode, StopReason};
use crate::responder::{Responder, Verdict};

/// Flags of `pptp-nas pns` (each one given overrides the `--config` file).
#[derive(Debug, Clone, Default, Args)]
pub struct PnsArgs {
    /// YAML settings file (configs/pns.yaml, which names a users file); flags override it.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// TCP address to accept control connections on [default: 0.0.0.0:1723].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A user as NAME:PASSWORD (repeatable; added to the users file's).
    #[arg(long = "user")]
    pub users: Vec<String>,
    /// Authentication demanded: pap, chap, mschap or mschapv2, or a comma-separated list in
    /// order of preference (`mschapv2,chap`) [default: mschapv2].
    #[arg(long)]
    pub auth: Option<String>,
    /// MPPE: none, 40, 56 or 128 (required at that key length) [default: 128].
    #[arg(long)]
    pub mppe: Option<String>,
    /// MPPC compression: on or off [default: on].
    #[arg(long)]
    pub mppc: Option<String>,
    /// Require stateless MPPE (key change every packet).
    #[arg(long)]
    pub stateless: bool,
    /// Addresses handed to callers, FIRST-LAST (the server's own address is FIRST - 1)
    /// [default: 192.168.77.10-192.168.77.50].
    #[arg(long)]
    pub pool: Option<String>,
    /// Answer the callers' ICMP echo requests and UDP echo/discard packets.
    #[arg(long)]
    pub responder: bool,
    /// Deliver each call's IP to its own TUN interface named PREFIX%d (the kernel picks the
    /// number; a PREFIX containing %d is used as given), created when the call's IPCP is up
    /// (needs root or CAP_NET_ADMIN). Exclusive with --responder.
    #[arg(long, value_name = "PREFIX")]
    pub tun: Option<String>,
    /// Authentication throttle: failures (per user and per source) that lock out
    /// [default: 5, or the config file's `throttle.lockout_after`].
    #[arg(long)]
    pub lockout_after: Option<u32>,
    /// Authentication throttle: length of a lockout in seconds [default: 300, or the config
    /// file's `throttle.lockout_s`].
    #[arg(long)]
    pub lockout: Option<f64>,
    /// Authentication throttle: delay in seconds after the first counted failure (doubles
    /// with each further failure, up to 30 s; 0 turns the delay off) [default: 1, or the
    /// config file's `throttle.base_delay_ms`].
    #[arg(long)]
    pub auth_delay: Option<f64>,
    /// Serve `pptp-nas status --socket PATH` (control connections, calls, throttle table).
    #[arg(long)]
    pub status_socket: Option<std::path::PathBuf>,
}

impl PnsArgs {
    /// The throttle settings: `base` (the config file's, or the defaults) with every throttle
    /// flag given on the command line overriding it (flags win over the file).
    pub fn throttle(&self, base: ThrottleConfig) -> Result<ThrottleConfig, String> {
        let secs = |name: &str, v: f64| {
            Duration::try_from_secs_f64(v).map_err(|_| format!("--{name} {v}: not a duration"))
        };
        let mut t = base;
        if let Some(n) = self.lockout_after {
            if n == 0 {
                return Err("--lockout-after 0: must be at least 1".to_string());
            }
            t.lockout_after = n;
        }
        if let Some(v) = self.lockout {
            t.lockout = secs("lockout", v)?;
        }
        if let Some(v) = self.auth_delay {
            t.base_delay = secs("auth-delay", v)?;
        }
        if t.max_delay < t.base_delay {
            return Err(format!(
                "--auth-delay {:?}: larger than the maximum delay {:?}",
                t.base_delay, t.max_delay
            ));
        }
        Ok(t)
    }
}

/// Validated settings of the daemon.
#[derive(Debug, Clone)]
pub struct PnsOptions {
    /// TCP listen address.
    pub listen: SocketAddr,
    /// Users and passwords.
    pub users: Vec<(String, String)>,
    /// The authentication protocol demanded.
    pub auth: AuthMethod,
    /// MPPE key length (required), or none.
    pub mppe_bits: Option<u16>,
    /// Require stateless MPPE.
    pub stateless: bool,
    /// Offer MPPC.
    pub mppc: bool,
    /// First and last pool address.
    pub pool: (Ipv4Addr, Ipv4Addr),
    /// Run the echo responder.
    pub responder: bool,
    /// TUN name pattern per call (`--tun`, with `%d`), instead of the responder.
    pub tun: Option<String>,
    /// What only the `--config` file can say (users with NT hashes, several auth methods, the
    /// full MPPE policy, DNS, throttle); `Default` for flags-only setups.
    pub extra: PnsExtra,
    /// Unix socket for `pptp-nas status`.
    pub status_socket: Option<std::path::PathBuf>,
}

/// The settings of [`PnsOptions`] that come from `pns.yaml` / `users.yaml` only.
#[derive(Debug, Clone, Default)]
pub struct PnsExtra {
    /// Users from the users file (password or NT hash), besides `users`.
    pub users: Vec<crate::pns::config::User>,
    /// Methods accepted after `auth`, in order of preference.
    pub more_auth: Vec<AuthMethod>,
    /// The whole CCP policy (file merged with the flags); `None`: from `mppe_bits`,
    /// `stateless` and `mppc`.
    pub ccp: Option<crate::ppp::ccp::CcpConfig>,
    /// DNS servers handed out in IPCP.
    pub dns: [Option<Ipv4Addr>; 2],
    /// Throttle settings; `None`: the defaults.
    pub throttle: Option<ThrottleConfig>,
}

/// Exit code: bad flags or configuration.
pub const EXIT_USAGE: i32 = 2;

/// Turns the flags (over the `--config` file, if any) into [`PnsOptions`].
pub fn options(a: &PnsArgs) -> Result<PnsOptions, String> {
    use crate::pns::config::parse_pool;
    let file = match &a.config {
        Some(p) => Some(crate::pns::config::load(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let f = file.clone().unwrap_or_default();
    let (auth, more_auth) = match (&a.auth, &f.auth) {
        (Some(s), _) => {
            let list = parse_auth_list(s)?;
            match list.split_first() {
                Some((first, rest)) => (*first, rest.to_vec()),
                None => (AuthMethod::MsChapV2, Vec::new()),
            }
        }
        (None, Some(list)) => match list.split_first() {
            Some((first, rest)) => (*first, rest.to_vec()),
            None => (AuthMethod::MsChapV2, Vec::new()),
        },
        (None, None) => (AuthMethod::MsChapV2, Vec::new()),
    };
    let mppe_bits = parse_mppe(a.mppe.as_deref().unwrap_or("128"))?;
    let mppc = parse_mppc(a.mppc.as_deref().unwrap_or("on"))?;
    // With a file: its CCP policy over the defaults, then each flag given over that.
    let ccp = file.as_ref().map(|f| {
        let mut c = crate::ppp::ccp::CcpConfig::default();
        apply_ccp(&mut c, Some(128), false, true, true);
        f.apply_ccp(&mut c);
        if a.mppe.is_some() {
            let mut m = c;
            apply_ccp(&mut m, mppe_bits, false, true, true);
            (c.mppe, c.allow_40, c.allow_56, c.allow_128) =
                (m.mppe, m.allow_40, m.allow_56, m.allow_128);
        }
        if a.stateless {
            c.stateless = crate::ppp::ccp::Stateless::Required;
        }
        if a.mppc.is_some() {
            c.mppc = mppc;
        }
        c
    });
    let users = a
        .users
        .iter()
        .map(|u| parse_user(u))
        .collect::<Result<Vec<_>, _>>()?;
    let file_users: Vec<_> = f
        .users
        .iter()
        .filter(|u| !users.iter().any(|(n, _)| *n == u.name))
        .cloned()
        .collect();
    if users.is_empty() && file_users.is_empty() {
        return Err("at least one --user NAME:PASSWORD (or a users_file) is needed".to_string());
    }
    if file_users.iter().any(|u| u.ip.is_some()) {
        tracing::warn!(
            "users file: fixed addresses (ip:) are not applied yet; callers get pool addresses"
        );
    }
    let pool = match &a.pool {
        Some(p) => parse_pool(p).map_err(|e| format!("--{e}"))?,
        None => f.pool.unwrap_or((
            Ipv4Addr::new(192, 168, 77, 10),
            Ipv4Addr::new(192, 168, 77, 50),
        )),
    };
    // Flags win over the file: --responder turns the file's `delivery: tun` off, --tun sets it.
    let tun_req = match (&a.tun, a.responder) {
        (Some(t), _) => Some(t.clone()),
        (None, true) => None,
        (None, false) => f.tun.clone(),
    };
    let tun = match &tun_req {
        None => None,
        Some(_) if a.responder && a.tun.is_some() => {
            return Err(
                "--tun cannot be combined with --responder: each call's IP goes either \
                        to its TUN or to the built-in responder"
                    .into(),
            )
        }
        Some(t) => {
            let name = if t.contains("%d") {
                t.clone()
            } else {
                format!("{t}%d")
            };
            crate::io::tun::check_name(&name).map_err(|e| format!("--tun: {e}"))?;
            Some(name)
        }
    };
    Ok(PnsOptions {
        listen: a
            .listen
            .or(f.listen)
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 1723))),
        users,
        auth,
        mppe_bits,
        stateless: a.stateless,
        mppc,
        pool,
        responder: tun_req.is_none() && (a.responder || f.responder.unwrap_or(false)),
        tun,
        extra: PnsExtra {
            users: file_users,
            more_auth,
            ccp,
            dns: f.dns,
            throttle: Some(a.throttle(match file {
                Some(f) => f.throttle,
                None => ThrottleConfig::default(),
            })?),
        },
        status_socket: a.status_socket.clone(),
    })
}

/// The PPP server policy for these options (IPCP peer address filled in per call).
pub fn server_policy(o: &PnsOptions) -> Policy {
    let local = Ipv4Addr::from(u32::from(o.pool.0).saturating_sub(1));
    let mut methods = vec![o.auth];
    methods.extend(o.extra.more_auth.iter().filter(|m| **m != o.auth));
    let mut p = Policy::server(
        methods,
        IpcpConfig {
            local: Some(local),
            assign_peer: None,
            dns: o.extra.dns,
            request_dns: false,
        },
    );
    match o.extra.ccp {
        Some(c) => p.ccp = c,
        None => apply_ccp(&mut p.ccp, o.mppe_bits, o.stateless, o.mppc, true),
    }
    p
}

/// Address pool.
#[derive(Debug)]
struct Pool {
    first: u32,
    last: u32,
    used: std::collections::HashSet<u32>,
}

impl Pool {
    fn take(&mut self) -> Option<Ipv4Addr> {
        let a = (self.first..=self.last).find(|a| !self.used.contains(a))?;
        self.used.insert(a);
        Some(Ipv4Addr::from(a))
    }
    fn give_back(&mut self, a: Ipv4Addr) {
        self.used.remove(&u32::from(a));
    }
}

/// A GRE payload for one call of a connection.
#[derive(Debug)]
struct GreIn {
    call_id: u16,
    seq: Option<u32>,
    payload: Vec<u8>,
}

type Routes = Arc<Mutex<HashMap<(Ipv4Addr, u16), mpsc::Sender<GreIn>>>>;

/// Daemon-wide counters.
#[derive(Debug, Default)]
pub struct PnsCounters {
    /// GRE packets dropped (malformed, unknown peer or Call ID, queue full).
    pub gre_dropped: AtomicU64,
    /// GRE packets delivered to calls.
    pub gre_delivered: AtomicU64,
    /// Control connections accepted.
    pub connections: AtomicU64,
    /// Calls accepted (ICRQ answered with ICRP, or OCRQ with OCRP).
    pub calls_accepted: AtomicU64,
    /// Calls that came up (ICCN received or OCRP sent) and got a PPP server.
    pub calls_up: AtomicU64,
    /// Calls ended.
    pub calls_ended: AtomicU64,
    /// Successful authentications.
    pub auth_ok: AtomicU64,
    /// Failed authentications.
    pub auth_failed: AtomicU64,
    /// Lockouts started by the authentication throttle (per user and per source).
    pub auth_lockouts: AtomicU64,
    /// Authentications refused without a password check because of a lockout.
    pub auth_refused_locked: AtomicU64,
    /// ICMP echo requests answered by the responder (counted when the call ends).
    pub icmp_echo: AtomicU64,
    /// UDP echo datagrams answered (counted when the call ends).
    pub udp_echo: AtomicU64,
    /// Octets taken by the discard service (counted when the call ends).
    pub discard_octets: AtomicU64,
    /// IPv4 packets received from callers (counted when the call ends).
    pub ip_rx_packets: AtomicU64,
    /// IPv4 packets sent to callers (counted when the call ends).
    pub ip_tx_packets: AtomicU64,
}

/// Something the daemon did, for an embedding program (the lab prints these as stages).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PnsEvent {
    /// A control connection was established (SCCRQ answered).
    ControlUp {
        /// The PAC's (or client's) address.
        peer: Ipv4Addr,
    },
    /// An Incoming-Call-Request arrived and was accepted (ICRP sent).
    IncomingCall {
        /// Our Call ID.
        call_id: u16,
        /// The caller's number from the ICRQ.
        caller: String,
    },
    /// An Outgoing-Call-Request arrived and was answered (OCRP sent).
    OutgoingCall {
        /// Our Call ID.
        call_id: u16,
    },
    /// The call is up (ICCN received / OCRP sent); the PPP server started.
    CallUp {
        /// Our Call ID.
        call_id: u16,
        /// The address the caller gets.
        address: Ipv4Addr,
    },
    /// LCP opened.
    LcpUp {
        /// Our Call ID.
        call_id: u16,
        /// The authentication protocol the link agreed on.
        auth: Option<AuthMethod>,
    },
    /// The caller authenticated.
    Authenticated {
        /// Our Call ID.
        call_id: u16,
        /// The user name.
        user: String,
    },
    /// CCP opened.
    CcpUp {
        /// Our Call ID.
        call_id: u16,
        /// MPPE key length (0: none).
        mppe_bits: u16,
        /// Stateless MPPE.
        stateless: bool,
        /// MPPC.
        mppc: bool,
    },
    /// IPCP opened.
    IpUp {
        /// Our Call ID.
        call_id: u16,
        /// Our address.
        local: Ipv4Addr,
        /// The caller's address.
        peer: Ipv4Addr,
    },
    /// PPP went down (the call is cleared shortly after).
    PppDown {
        /// Our Call ID.
        call_id: u16,
        /// Why.
        reason: String,
        /// Authentication failed.
        auth_failed: bool,
    },
    /// The call ended (CDN sent or received).
    CallDown {
        /// Our Call ID.
        call_id: u16,
        /// How it ended.
        end: String,
    },
    /// A control connection ended.
    ControlClosed {
        /// The peer.
        peer: Ipv4Addr,
    },
}

/// What an embedding program watches: live counters and, optionally, an event stream.
#[derive(Debug, Clone, Default)]
pub struct PnsMonitor {
    /// Counters, updated as the daemon runs.
    pub counters: Arc<PnsCounters>,
    /// Where events go (none: not reported).
    pub events: Option<mpsc::UnboundedSender<PnsEvent>>,
}

impl PnsMonitor {
    fn emit(&self, ev: PnsEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(ev);
        }
    }
}

/// The GRE transport the daemon uses.
#[derive(Debug)]
pub enum PnsGre {
    /// A raw IPv4 protocol-47 socket (root or CAP_NET_RAW).
    Raw(RawGreSocket),
    /// In process: the far end of [`crate::pac::gre::pair`] whose other end a
    /// [`crate::pac::Pac`] holds. Packets received are taken to come from `peer` (the PAC's
    /// address on the control connection); packets sent carry `local` (the address the PAC
    /// knows this server by).
    Channel {
        /// The channel.
        channel: GreChannel,
        /// Our address as the PAC knows it.
        local: Ipv4Addr,
        /// The PAC's address as the control connection shows it.
        peer: Ipv4Addr,
    },
}

/// The sending half of the GRE transport.
#[derive(Debug)]
enum GreOut {
    Raw(Arc<RawGreSocket>),
    Channel {
        tx: mpsc::Sender<GreDatagram>,
        local: Ipv4Addr,
    },
}

impl GreOut {
    async fn send_to(&self, peer: Ipv4Addr, pkt: &[u8]) -> std::io::Result<()> {
        match self {
            GreOut::Raw(s) => s.send_to(peer, pkt).await,
            // A full queue drops the packet, as a full socket buffer would.
            GreOut::Channel { tx, local } => {
                let _ = tx.try_send(GreDatagram {
                    peer: *local,
                    local: peer,
                    packet: bytes::Bytes::copy_from_slice(pkt),
                });
                Ok(())
            }
        }
    }
}

/// The receiving half of the GRE transport.
enum GreSource {
    Raw(Arc<RawGreSocket>),
    Channel {
        rx: mpsc::Receiver<GreDatagram>,
        peer: Ipv4Addr,
    },
}

struct Shared {
    opts: PnsOptions,
    policy: Policy,
    store: Arc<StaticCredentials>,
    throttle: ThrottleHandle,
    pool: Mutex<Pool>,
    routes: Routes,
    gre: GreOut,
    counters: Arc<PnsCounters>,
    monitor: PnsMonitor,
    board: Arc<StatusBoard>,
}

/// Runs the daemon until `stop` turns true; then every control connection is stopped
/// (Stop-Control-Connection-Request) and the function returns. Binds `opts.listen` and a raw
/// GRE socket on its address.
pub async fn run(opts: PnsOptions, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(opts.listen).await?;
    let local_ip = match opts.listen {
        SocketAddr::V4(a) => *a.ip(),
        SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    let gre = RawGreSocket::bind(local_ip, false).map_err(|e| {
        anyhow::anyhow!("raw GRE socket on {local_ip}: {e} (needs root or CAP_NET_RAW)")
    })?;
    serve(
        opts,
        listener,
        PnsGre::Raw(gre),
        PnsMonitor::default(),
        stop,
    )
    .await
}

/// Serves control connections from `listener` (`opts.listen` is not used) and GRE on `gre`
/// until `stop` turns true, reporting through `monitor`; then every control connection is
/// stopped (Stop-Control-Connection-Request) and the function returns.
pub async fn serve(
    opts: PnsOptions,
    listener: TcpListener,
    gre: PnsGre,
    monitor: PnsMonitor,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (gre_out, gre_in) = match gre {
        PnsGre::Raw(s) => {
            let s = Arc::new(s);
            (GreOut::Raw(s.clone()), GreSource::Raw(s))
        }
        PnsGre::Channel {
            channel,
            local,
            peer,
        } => (
            GreOut::Channel {
                tx: channel.tx,
                local,
            },
            GreSource::Channel {
                rx: channel.rx,
                peer,
            },
        ),
    };
    let mut store = StaticCredentials::new();
    for u in &opts.extra.users {
        store.insert(u.name.as_bytes(), u.secret.clone());
    }
    for (u, p) in &opts.users {
        store = store.with_password(u, p);
    }
    let shared = Arc::new(Shared {
        policy: server_policy(&opts),
        store: Arc::new(store),
        throttle: ThrottleHandle::new(opts.extra.throttle.unwrap_or_default(), Instant::now()),
        pool: Mutex::new(Pool {
            first: u32::from(opts.pool.0),
            last: u32::from(opts.pool.1),
            used: Default::default(),
        }),
        routes: Arc::new(Mutex::new(HashMap::new())),
        gre: gre_out,
        counters: monitor.counters.clone(),
        monitor,
        opts,
        board: Arc::new(StatusBoard::default()),
    });
    tracing::info!(listen = %listener.local_addr()?, "pns listening");
    let gre_task = tokio::spawn(gre_reader(shared.clone(), gre_in));
    let status_task = match &shared.opts.status_socket {
        Some(p) => Some(
            crate::pns::status::serve(
                p,
                shared.board.clone(),
                shared.throttle.clone(),
                stop.clone(),
            )
            .map_err(|e| anyhow::anyhow!("status socket {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let mut conns = tokio::task::JoinSet::new();
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    n += 1;
                    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                    let span = tracing::info_span!("conn", id = n, peer = %peer);
                    conns.spawn(connection(shared.clone(), tcp, peer, n, stop.clone()).instrument(span));
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            _ = stop.changed() => break,
        }
    }
    tracing::info!("pns stopping");
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    gre_task.abort();
    if let Some(t) = status_task {
        t.abort();
        if let Some(p) = &shared.opts.status_socket {
            let _ = std::fs::remove_file(p);
        }
    }
    tracing::info!(
        gre_delivered = shared.counters.gre_delivered.load(Ordering::Relaxed),
        gre_dropped = shared.counters.gre_dropped.load(Ordering::Relaxed),
        "pns stopped"
    );
    Ok(())
}

async fn gre_reader(shared: Arc<Shared>, input: GreSource) {
    match input {
        GreSource::Raw(sock) => {
            let mut batch = RecvBatch::new(64);
            loop {
                if let Err(e) = sock.recv_batch(&mut batch).await {
                    tracing::warn!(error = %e, "GRE receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                for (src, pkt) in batch.iter() {
                    deliver_gre(&shared, src, pkt);
                }
            }
        }
        GreSource::Channel { mut rx, peer } => {
            while let Some(d) = rx.recv().await {
                deliver_gre(&shared, peer, &d.packet);
            }
        }
    }
}

fn deliver_gre(shared: &Shared, src: Ipv4Addr, pkt: &[u8]) {
    let Ok((gre, payload)) = GreRepr::parse_bytes(pkt) else {
        shared.counters.gre_dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let route = shared
        .routes
        .lock()
        .ok()
        .and_then(|r| r.get(&(src, gre.call_id)).cloned());
    // Only GRE from an established peer and one of its call IDs is accepted.
    let delivered = route.is_some_and(|tx| {
        tx.try_send(GreIn {
            call_id: gre.call_id,
            seq: gre.seq.map(|s| s.0),
            payload: payload.to_vec(),
        })
        .is_ok()
    });
    let c = if delivered {
        &shared.counters.gre_delivered
    } else {
        &shared.counters.gre_dropped
    };
    c.fetch_add(1, Ordering::Relaxed);
}

struct Call {
    peer_call_id: u16,
    session: Session,
    responder: Responder,
    seq: u32,
    last_rx_seq: Option<u32>,
    ack_pending: bool,
    ip: Option<Ipv4Addr>,
    span: tracing::Span,
    clear_at: Option<Instant>,
    conn_id: u64,
    since: Instant,
    published: Option<Instant>,
    row: CallStatus,
    rx_octets: u64,
    gre_tx: mpsc::Sender<GreIn>,
    /// The call's TUN (`--tun`) and the task that reads it into `tun_in`.
    tun: Option<(Arc<Tun>, tokio::task::JoinHandle<()>)>,
    /// Where the TUN reader sends the kernel's packets for this call.
    tun_in: mpsc::Sender<(u16, Vec<u8>)>,
}

fn seed(call_id: u16) -> [u8; 32] {
    let mut s = [0u8; 32];
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    for (i, b) in s.iter_mut().enumerate() {
        *b = (t >> ((i % 16) * 8)) as u8 ^ (call_id >> ((i % 2) * 8)) as u8 ^ (i as u8);
    }
    s
}

async fn connection(
    shared: Arc<Shared>,
    mut tcp: TcpStream,
    peer: SocketAddr,
    conn_id: u64,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let peer_ip = match peer {
        SocketAddr::V4(a) => *a.ip(),
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
    };
    tracing::info!("control connection accepted");
    let mut cfg = Config::new(Role::Pns);
    cfg.first_call_id = 0x4000;
    let mut ctrl = Connection::new(cfg, Open::Passive, Instant::now());
    let (gre_tx, mut gre_rx) = mpsc::channel::<GreIn>(1024);
    let (tun_tx, mut tun_rx) = mpsc::channel::<(u16, Vec<u8>)>(1024);
    let mut calls: HashMap<u16, Call> = HashMap::new();
    let mut rbuf = vec![0u8; 8192];
    let mut wbuf = Vec::new();
    let mut stopping = false;
    let mut tcp_open = true;
    loop {
        let now = Instant::now();
        // Control connection output and events.
        while ctrl.poll_transmit(&mut wbuf).is_some() {}
        if !wbuf.is_empty() {
            if tcp.write_all(&wbuf).await.is_err() {
                ctrl.handle_tcp_closed(now);
                tcp_open = false;
            }
            wbuf.clear();
        }
        let mut closed = false;
        while let Some(ev) = ctrl.poll_event() {
            match ev {
                Event::Established(info) => {
                    tracing::info!(?info, "control connection established");
                    shared.board.control_up(conn_id, peer.to_string());
                    shared.monitor.emit(PnsEvent::ControlUp { peer: peer_ip });
                }
                Event::IncomingCallRequested { call_id, request } => {
                    tracing::info!(call_id, peer_call = request.call_id, "ICRQ, accepting");
                    if ctrl.accept_call(now, call_id).is_ok() {
                        shared
                            .counters
                            .calls_accepted
                            .fetch_add(1, Ordering::Relaxed);
                        shared.monitor.emit(PnsEvent::IncomingCall {
                            call_id,
                            caller: request.dialing_number.to_string_lossy().into_owned(),
                        });
                    }
                }
                Event::OutgoingCallRequested { call_id, request } => {
                    tracing::info!(call_id, peer_call = request.call_id, "OCRQ, connecting");
                    if ctrl
                        .dial_result(now, call_id, DialResult::connected(10_000_000))
                        .is_ok()
                    {
                        shared
                            .counters
                            .calls_accepted
                            .fetch_add(1, Ordering::Relaxed);
                        shared.monitor.emit(PnsEvent::OutgoingCall { call_id });
                    }
                }
                Event::CallUp(info) => {
                    let span = tracing::info_span!("call", call_id = info.call_id);
                    let ip = shared.pool.lock().ok().and_then(|mut p| p.take());
                    let Some(ip) = ip else {
                        tracing::warn!(parent: &span, "address pool exhausted, clearing call");
                        let _ = ctrl.hang_up(now, info.call_id, CauseCode::NormalClearing);
                        continue;
                    };
                    let mut policy = shared.policy.clone();
                    policy.ipcp.assign_peer = Some(ip);
                    shared.throttle.set_now(now);
                    let source = peer_ip.to_string();
                    let mut session = Session::new(
                        Arc::new(policy),
                        Some(shared.throttle.store_for(&source, shared.store.clone())),
                        seed(info.call_id),
                    );
                    session.set_throttle(shared.throttle.clone(), &source);
                    session.open(now);
                    if let Ok(mut r) = shared.routes.lock() {
                        r.insert((peer_ip, info.call_id), gre_tx.clone());
                    }
                    tracing::info!(parent: &span, peer_call = info.peer_call_id, %ip, "call up, PPP server started");
                    shared.counters.calls_up.fetch_add(1, Ordering::Relaxed);
                    shared.monitor.emit(PnsEvent::CallUp {
                        call_id: info.call_id,
                        address: ip,
                    });
                    calls.insert(
                        info.call_id,
                        Call {
                            peer_call_id: info.peer_call_id,
                            session,
                            responder: Responder::new(),
                            seq: 0,
                            last_rx_seq: None,
                            ack_pending: false,
                            ip: Some(ip),
                            span,
                            clear_at: None,
                            conn_id,
                            since: now,
                            published: None,
                            row: CallStatus {
                                peer: peer_ip.to_string(),
                                call_id: info.call_id,
                                peer_call_id: info.peer_call_id,
                                ip: Some(ip),
                                ..CallStatus::default()
                            },
                            rx_octets: 0,
                            gre_tx: gre_tx.clone(),
                            tun: None,
                            tun_in: tun_tx.clone(),
                        },
                    );
                }
                Event::CallDown { call_id, end } => {
                    if let Some(mut c) = calls.remove(&call_id) {
                        let link_was_up = c.session.down_reason().is_none();
                        c.session.lower_down(now);
                        // The call ended under a link that had not gone down yet: say what
                        // the PPP side knew (e.g. the peer's CCP refused here), or the
                        // reason is lost with the call.
                        let detail = c.session.engine().down_detail();
                        if let Some(detail) = detail.filter(|_| link_was_up) {
                            tracing::warn!(parent: &c.span, %detail, "PPP down with the call");
                        }
                        end_call(&shared, peer_ip, call_id, &mut c);
                        tracing::info!(parent: &c.span, ?end, "call down");
                        shared.monitor.emit(PnsEvent::CallDown {
                            call_id,
                            end: format!("{end:?}"),
                        });
                    }
                }
                Event::Closed(reason) => {
                    tracing::info!(?reason, "control connection closed");
                    shared
                        .monitor
                        .emit(PnsEvent::ControlClosed { peer: peer_ip });
                    closed = true;
                }
                _ => {}
            }
        }
        // Sessions: frames out as GRE, events.
        for (&call_id, c) in calls.iter_mut() {
            pump_call(&shared, peer_ip, call_id, c, now).await;
            if c.clear_at.is_some_and(|t| t <= now) {
                c.clear_at = None;
                let _ = ctrl.hang_up(now, call_id, CauseCode::NormalClearing);
            }
        }
        while ctrl.poll_transmit(&mut wbuf).is_some() {}
        if !wbuf.is_empty() {
            let _ = tcp.write_all(&wbuf).await;
            wbuf.clear();
        }
        if closed || !tcp_open {
            break;
        }
        let mut deadline = ctrl.poll_timeout();
        for c in calls.values() {
            for t in [c.session.poll_timeout(), c.clear_at] {
                deadline = match (deadline, t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline.unwrap_or_else(|| now + Duration::from_secs(3600)),
        ));
        tokio::select! {
            r = tcp.read(&mut rbuf) => {
                let now = Instant::now();
                match r {
                    Ok(0) | Err(_) => {
                        ctrl.handle_tcp_closed(now);
                        tcp_open = false;
                    }
                    Ok(n) => ctrl.handle_bytes(now, rbuf.get(..n).unwrap_or_default()),
                }
            }
            Some(g) = gre_rx.recv() => {
                let now = Instant::now();
                handle_gre(&shared, &mut calls, g, now);
                while let Ok(g) = gre_rx.try_recv() {
                    handle_gre(&shared, &mut calls, g, now);
                }
            }
            Some((call_id, pkt)) = tun_rx.recv() => {
                if let Some(c) = calls.get_mut(&call_id) {
                    if let Err(e) = c.session.send_ip(&pkt) {
                        tracing::debug!(parent: &c.span, error = ?e, "TUN packet not sent");
                    }
                }
            }
            () = sleep => {
                let now = Instant::now();
                ctrl.handle_timeout(now);
                for c in calls.values_mut() {
                    if c.session.poll_timeout().is_some_and(|t| t <= now) {
                        c.session.handle_timeout(now);
                    }
                }
            }
            r = stop.changed(), if !stopping => {
                stopping = true;
                if r.is_ok() || *stop.borrow() {
                    let now = Instant::now();
                    for c in calls.values_mut() {
                        c.session.close(now, "server shutting down");
                    }
                    ctrl.stop(now, StopReason::LocalShutdown);
                }
            }
        }
    }
    for (call_id, mut c) in calls.drain() {
        c.session.lower_down(Instant::now());
        end_call(&shared, peer_ip, call_id, &mut c);
        shared.monitor.emit(PnsEvent::CallDown {
            call_id,
            end: "control connection ended".to_string(),
        });
    }
    let _ = tcp.shutdown().await;
    shared.board.control_down(conn_id);
    tracing::info!("control connection ended");
}

/// Copies the kernel's IPv4 packets from a call's TUN to the connection loop.
async fn tun_reader(t: Arc<Tun>, call_id: u16, tx: mpsc::Sender<(u16, Vec<u8>)>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match t.recv(&mut buf).await {
            Ok(n) => {
                // Only IPv4 has a network layer (IPCP; no IPV6CP).
                let Some(pkt) = buf
                    .get(..n)
                    .filter(|p| p.first().is_some_and(|v| v >> 4 == 4))
                else {
                    continue;
                };
                if tx.send((call_id, pkt.to_vec())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(call_id, error = %e, "TUN read failed");
                return;
            }
        }
    }
}

fn end_call(shared: &Shared, peer_ip: Ipv4Addr, call_id: u16, c: &mut Call) {
    shared.board.call_down(c.conn_id, call_id);
    if let Some((_, reader)) = c.tun.take() {
        // Dropping the last handle closes the TUN; the kernel removes the interface.
        reader.abort();
    }
    if let Ok(mut r) = shared.routes.lock() {
        // Only our own route: another control connection from the same address may have
        // reused the call ID already (call IDs are per connection).
        if r.get(&(peer_ip, call_id))
            .is_some_and(|tx| tx.same_channel(&c.gre_tx))
        {
            r.remove(&(peer_ip, call_id));
        }
    }
    if let Some(ip) = c.ip.take() {
        if let Ok(mut p) = shared.pool.lock() {
            p.give_back(ip);
        }
    }
    let st = c.session.stats();
    let rs = c.responder.stats();
    let k = &shared.counters;
    k.calls_ended.fetch_add(1, Ordering::Relaxed);
    k.icmp_echo.fetch_add(rs.icmp_echo, Ordering::Relaxed);
    k.udp_echo.fetch_add(rs.udp_echo, Ordering::Relaxed);
    k.discard_octets
        .fetch_add(rs.discard_octets, Ordering::Relaxed);
    k.ip_rx_packets.fetch_add(st.rx_packets, Ordering::Relaxed);
    k.ip_tx_packets.fetch_add(st.tx_packets, Ordering::Relaxed);
    tracing::info!(parent: &c.span, rx = st.rx_packets, tx = st.tx_packets, echo = rs.icmp_echo, "call counters");
}

fn handle_gre(shared: &Shared, calls: &mut HashMap<u16, Call>, g: GreIn, now: Instant) {
    let Some(c) = calls.get_mut(&g.call_id) else {
        return;
    };
    if let Some(s) = g.seq {
        c.last_rx_seq = Some(s);
        c.ack_pending = true;
    }
    c.rx_octets += g.payload.len() as u64;
    if g.payload.is_empty() {
        return;
    }
    if let Some(ip) = c.session.handle_frame(now, &g.payload) {
        if let Some((t, _)) = c.tun.as_ref() {
            // IP is lossy: a full TUN queue drops the packet as a router would.
            if let Err(e) = t.try_send(&ip) {
                tracing::debug!(parent: &c.span, error = %e, "TUN write failed");
            }
            return;
        }
        if shared.opts.responder {
            if let Ok(Verdict::Reply(reply)) = c.responder.handle_packet(&ip) {
                let _ = c.session.send_ip(&reply);
            }
        }
    }
}

async fn pump_call(shared: &Shared, peer_ip: Ipv4Addr, call_id: u16, c: &mut Call, now: Instant) {
    let mut out = Vec::new();
    while let Some(frame) = c.session.poll_transmit() {
        let len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
        let ack = c.last_rx_seq.take().map(SeqNumber);
        c.ack_pending = false;
        let gre = GreRepr::data(c.peer_call_id, len, SeqNumber(c.seq), ack);
        c.seq = c.seq.wrapping_add(1);
        out.clear();
        gre.emit_with_payload(&frame, &mut out);
        if let Err(e) = shared.gre.send_to(peer_ip, &out).await {
            tracing::debug!(parent: &c.span, error = %e, "GRE send failed");
        }
    }
    // Nothing went out that could carry the acknowledgment: send it on its own (RFC 2637
    // section 4.4, acknowledgment-only GRE packets), or the peer's send window closes while
    // it streams to us (a bulk upload to the discard service gets no replies).
    if c.ack_pending {
        c.ack_pending = false;
        if let Some(a) = c.last_rx_seq.take() {
            out.clear();
            GreRepr::ack_only(c.peer_call_id, SeqNumber(a)).emit_with_payload(&[], &mut out);
            if let Err(e) = shared.gre.send_to(peer_ip, &out).await {
                tracing::debug!(parent: &c.span, error = %e, "GRE ack send failed");
            }
        }
    }
    while let Some(ev) = c.session.poll_event() {
        match ev {
            PppEvent::LinkUp(l) => {
                c.row.auth = l.auth_peer.map(|a| format!("{a:?}"));
                c.published = None;
                shared.monitor.emit(PnsEvent::LcpUp {
                    call_id,
                    auth: l.auth_peer,
                });
            }
            PppEvent::Authenticated { user } => {
                c.row.user = Some(String::from_utf8_lossy(&user).into_owned());
                c.published = None;
                // The session reported the outcome to the throttle when it judged it.
                let user = String::from_utf8_lossy(&user).into_owned();
                tracing::info!(parent: &c.span, user = %user, "authenticated");
                shared.counters.auth_ok.fetch_add(1, Ordering::Relaxed);
                shared
                    .monitor
                    .emit(PnsEvent::Authenticated { call_id, user });
            }
            PppEvent::CcpUp(r) => {
                c.row.mppe_bits = r.key_bits().unwrap_or(0);
                c.row.stateless = r.tx.contains(MppeBits::H_STATELESS);
                c.row.mppc = r.tx.contains(MppeBits::MPPC) || r.rx.contains(MppeBits::MPPC);
                c.published = None;
                shared.monitor.emit(PnsEvent::CcpUp {
                    call_id,
                    mppe_bits: r.key_bits().unwrap_or(0),
                    stateless: r.tx.contains(MppeBits::H_STATELESS),
                    mppc: r.tx.contains(MppeBits::MPPC) || r.rx.contains(MppeBits::MPPC),
                });
            }
            PppEvent::IpUp(r) => {
                shared.monitor.emit(PnsEvent::IpUp {
                    call_id,
                    local: r.local,
                    peer: r.peer,
                });
                if let (Some(name), None) = (shared.opts.tun.as_deref(), c.tun.as_ref()) {
                    let mppe = c.session.engine().ccp_result().is_some();
                    let mtu = mtu_for(c.session.engine().link().tx_mru, mppe);
                    match Tun::open(name, r.local, r.peer, mtu) {
                        Ok(t) => {
                            tracing::info!(parent: &c.span, tun = %t.name(), mtu, "IP delivered to TUN");
                            let t = Arc::new(t);
                            let reader =
                                tokio::spawn(tun_reader(t.clone(), call_id, c.tun_in.clone()));
                            c.tun = Some((t, reader));
                        }
                        Err(e) => {
                            tracing::error!(parent: &c.span, "{e}");
                            c.session.close(now, "TUN setup failed");
                        }
                    }
                }
            }
            PppEvent::LinkDown(reason) => {
                let auth_failed = matches!(reason, DownReason::AuthFailed(_));
                if let DownReason::AuthFailed(_) = &reason {
                    // Counted by the session (throttle) when it judged the attempt.
                    let k = &shared.counters;
                    k.auth_failed.fetch_add(1, Ordering::Relaxed);
                    let (lockouts, refused) = shared.throttle.counters();
                    k.auth_lockouts.store(lockouts, Ordering::Relaxed);
                    k.auth_refused_locked.store(refused, Ordering::Relaxed);
                }
                shared.monitor.emit(PnsEvent::PppDown {
                    call_id,
                    reason: reason.to_string(),
                    auth_failed,
                });
                match c.session.engine().down_detail() {
                    Some(detail) => {
                        tracing::warn!(parent: &c.span, %reason, %detail, "PPP down")
                    }
                    None => tracing::info!(parent: &c.span, %reason, "PPP down"),
                }
                // Clear the call a moment later, once the Terminate is through.
                c.clear_at = Some(now + Duration::from_millis(500));
            }
            other => tracing::debug!(parent: &c.span, ?other, "ppp"),
        }
    }
    // The status page: on every change, else at most once a second.
    let due = match c.published {
        None => true,
        Some(t) => now.saturating_duration_since(t) >= Duration::from_secs(1),
    };
    if due {
        c.published = Some(now);
        let st = c.session.stats();
        c.row.rx_octets = c.rx_octets;
        c.row.tx_octets = st.tx_wire_octets;
        c.row.rx_packets = st.rx_packets;
        c.row.tx_packets = st.tx_packets;
        shared.board.call(c.conn_id, c.since, c.row.clone());
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: PnsArgs,
    }

    fn args(argv: &[&str]) -> PnsArgs {
        let mut v = vec!["pns"];
        v.extend_from_slice(argv);
        Wrap::try_parse_from(v).expect("flags parse").args
    }

    #[test]
    fn throttle_flags_override_the_file_and_the_defaults() {
        let file = ThrottleConfig {
            lockout_after: 3,
            lockout: Duration::from_secs(2),
            ..ThrottleConfig::default()
        };
        // No flags: the file's (or the default) settings stand.
        let t = args(&[]).throttle(file).expect("valid");
        assert_eq!((t.lockout_after, t.lockout), (3, Duration::from_secs(2)));
        let t = args(&[])
            .throttle(ThrottleConfig::default())
            .expect("valid");
        assert_eq!(t, ThrottleConfig::default());
        // Each flag given wins over the file; the others keep the file's value.
        let t = args(&["--lockout-after", "7"])
            .throttle(file)
            .expect("valid");
        assert_eq!((t.lockout_after, t.lockout), (7, Duration::from_secs(2)));
        let t = args(&["--lockout", "9", "--auth-delay", "0.5"])
            .throttle(file)
            .expect("valid");
        assert_eq!(t.lockout_after, 3);
        assert_eq!(t.lockout, Duration::from_secs(9));
        assert_eq!(t.base_delay, Duration::from_millis(500));
        // Bad values are clear errors, not panics.
        let e = args(&["--lockout-after", "0"]).throttle(file).unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
        let e = args(&["--lockout=-1"]).throttle(file).unwrap_err();
        assert!(e.contains("not a duration"), "{e}");
        let e = args(&["--auth-delay", "60"]).throttle(file).unwrap_err();
        assert!(e.contains("maximum delay"), "{e}");
    }
}
