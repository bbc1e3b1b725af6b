//! Local PPP termination (`mode: terminate` on a line, or `terminate: true` in a rule): the PAC
//! is an ordinary ISP access server for the call. The caller's PPP runs against the PPP engine
//! in server role ([`Session`]: LCP, authentication against the `terminate.users` file, CCP if
//! configured, IPCP with an address from the pool and the configured DNS servers), and the
//! caller's IPv4 packets go to the built-in [`Responder`] (ICMP echo, UDP echo/discard), which
//! is what lets a caller check the link before opening its own PPTP tunnel across the ISP.
//!
//! Sans-IO per call ([`LocalCall`]): the line task feeds it line bytes and `now`, writes what
//! [`LocalCall::take_output`] returns to the line, and re-arms its timer to
//! [`LocalCall::poll_timeout`]. Async HDLC: received frames are decoded with the receive ACCM
//! LCP negotiated once LCP opens; sent frames always escape every control character (allowed
//! by RFC 1662 §7.1, and robust against peers that ignore their own ACCM).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Deserialize;

use super::config::TerminateConfig;
use crate::config::policy::{apply_ccp, parse_mppe};
use crate::config::{ConfigError, Source};
use crate::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig};
use crate::pns::session::Session;
use crate::ppp::auth::{CredentialStore, StaticCredentials};
use crate::ppp::engine::{DownReason, Event, Policy};
use crate::ppp::ipcp::IpcpConfig;
use crate::ppp::lcp::AuthMethod;
use crate::responder::{Responder, Verdict};

/// The users file (`terminate.users`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// Who may log in.
    pub users: Vec<UserEntry>,
}

/// One user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Login name (PAP Peer-ID, CHAP Name).
    pub name: String,
    /// Password (clear text: MS-CHAP needs it or its NT hash).
    pub password: String,
}

impl UsersFile {
    /// Reads and checks a users file: errors name file, line and column.
    pub fn load(path: &Path) -> Result<UsersFile, ConfigError> {
        let src = Source::read(path)?;
        let f: UsersFile = src.parse()?;
        let mut seen = HashSet::new();
        for (i, u) in f.users.iter().enumerate() {
            if u.name.is_empty() {
                return Err(src.error(&format!("users[{i}].name"), "must not be empty"));
            }
            if !seen.insert(u.name.as_str()) {
                return Err(src.error(
                    &format!("users[{i}].name"),
                    format!("duplicate user {:?}", u.name),
                ));
            }
        }
        if f.users.is_empty() {
            return Err(src.error("users", "at least one user is needed"));
        }
        Ok(f)
    }
}

/// Maps a `terminate.auth` name (see `docs/CONFIG.md`) to the LCP method.
pub fn auth_method(name: &str) -> Option<AuthMethod> {
    match name {
        "pap" => Some(AuthMethod::Pap),
        "chap-md5" => Some(AuthMethod::ChapMd5),
        "mschap-v1" => Some(AuthMethod::MsChapV1),
        "mschap-v2" => Some(AuthMethod::MsChapV2),
        _ => None,
    }
}

/// Address pool of the terminating calls.
#[derive(Debug)]
struct Pool {
    first: u32,
    size: u32,
    used: HashSet<u32>,
}

impl Pool {
    fn take(&mut self) -> Option<Ipv4Addr> {
        let last = self.first.checked_add(self.size.checked_sub(1)?)?;
        let a = (self.first..=last).find(|a| !self.used.contains(a))?;
        self.used.insert(a);
        Some(Ipv4Addr::from(a))
    }
    fn give_back(&mut self, a: Ipv4Addr) {
        self.used.remove(&u32::from(a));
    }
}

/// What all terminating calls of one PAC share: policy, users, pool.
#[derive(Debug)]
pub struct Terminator {
    policy: Policy,
    store: Arc<StaticCredentials>,
    pool: Mutex<Pool>,
}

impl Terminator {
    /// Builds the shared state from the validated section and its users file (relative paths
    /// resolve against `base`, the configuration file's directory).
    pub fn new(cfg: &TerminateConfig, base: &Path) -> Result<Terminator, String> {
        let users_path = if cfg.users.is_absolute() {
            cfg.users.clone()
        } else {
            base.join(&cfg.users)
        };
        let users = UsersFile::load(&users_path).map_err(|e| e.to_string())?;
        let mut store = StaticCredentials::new();
        for u in &users.users {
            store = store.with_password(&u.name, &u.password);
        }
        let methods = cfg
            .auth
            .iter()
            .map(|a| auth_method(a).ok_or_else(|| format!("terminate.auth: unknown method {a:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut dns = cfg.dns.iter().copied();
        let mut policy = Policy::server(
            methods,
            IpcpConfig {
                local: Some(cfg.local_ip),
                assign_peer: None,
                dns: [dns.next(), dns.next()],
                request_dns: false,
            },
        );
        let bits = parse_mppe(&cfg.mppe).map_err(|e| format!("terminate.mppe: {e}"))?;
        apply_ccp(&mut policy.ccp, bits, false, cfg.mppc, true);
        Ok(Terminator {
            policy,
            store: Arc::new(store),
            pool: Mutex::new(Pool {
                first: u32::from(cfg.pool_start),
                size: u32::from(cfg.pool_size),
                used: HashSet::new(),
            }),
        })
    }

    /// A new call: takes a pool address and starts LCP. `None` when the pool is exhausted.
    pub fn start_call(self: &Arc<Self>, now: Instant, seed: [u8; 32]) -> Option<LocalCall> {
        let ip = self.pool.lock().ok()?.take()?;
        let mut policy = self.policy.clone();
        policy.ipcp.assign_peer = Some(ip);
        let store: Arc<dyn CredentialStore + Send + Sync> = self.store.clone();
        let mut session = Session::new(Arc::new(policy), Some(store), seed);
        session.open(now);
        let mut c = LocalCall {
            term: self.clone(),
            session,
            responder: Responder::new(),
            decoder: Decoder::new(DecoderConfig::default()),
            encoder: Encoder::new(EncoderConfig::default()),
            ip,
            out: Vec::with_capacity(4096),
            user: None,
            down: None,
            up: false,
        };
        c.pump();
        Some(c)
    }
}

/// One locally terminated call (see the module documentation). Gives its address back to the
/// pool when dropped.
#[derive(Debug)]
pub struct LocalCall {
    term: Arc<Terminator>,
    session: Session,
    responder: Responder,
    decoder: Decoder,
    encoder: Encoder,
    ip: Ipv4Addr,
    out: Vec<u8>,
    user: Option<String>,
    down: Option<DownReason>,
    up: bool,
}

impl Drop for LocalCall {
    fn drop(&mut self) {
        if let Ok(mut p) = self.term.pool.lock() {
            p.give_back(self.ip);
        }
    }
}

impl LocalCall {
    /// The caller's address.
    pub fn peer_ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The authenticated user, once known.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether IPCP is open.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Why PPP ended, once it did (the line should then hang up).
    pub fn down_reason(&self) -> Option<&DownReason> {
        self.down.as_ref()
    }

    /// HDLC error counters of the line.
    pub fn hdlc_errors(&self) -> u64 {
        let c = self.decoder.counters();
        u64::from(c.crc_errors) + u64::from(c.framing_errors) + u64::from(c.buffer_overruns)
    }

    /// Responder counters: ICMP echo requests answered.
    pub fn echoes(&self) -> u64 {
        self.responder.stats().icmp_echo
    }

    /// Line bytes in. Returns the number of IPv4 packets received.
    pub fn line_in(&mut self, now: Instant, mut data: &[u8]) -> u64 {
        let mut packets = 0;
        while let Some(r) = self.decoder.decode(&mut data) {
            let Ok(frame) = r else { continue };
            if let Some(ip) = self.session.handle_frame(now, frame) {
                packets += 1;
                if let Ok(Verdict::Reply(reply)) = self.responder.handle_packet(&ip) {
                    let _ = self.session.send_ip(&reply);
                }
            }
        }
        self.pump();
        packets
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
            self.pump();
        }
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    /// Closes PPP gracefully (LCP Terminate-Request), e.g. on a time limit.
    pub fn close(&mut self, now: Instant, reason: &str) {
        self.session.close(now, reason);
        self.pump();
    }

    /// Octets to write to the line (HDLC-encoded); the caller clears the buffer after writing.
    pub fn take_output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Encodes queued frames and handles engine events.
    fn pump(&mut self) {
        while let Some(f) = self.session.poll_transmit() {
            if let Err(e) = self.encoder.encode(&f, &mut self.out) {
                tracing::debug!(error = %e, "frame not encodable");
            }
            // LCP opened in the meantime: the next frames use the negotiated ACCMs.
            self.events();
        }
        self.events();
    }

    fn events(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                Event::LinkUp(p) => {
                    tracing::debug!(tx_accm = p.tx_accm, rx_accm = p.rx_accm, "LCP opened");
                    // The peer may now send the control characters we acked unescaped. We
                    // keep escaping all of ours: RFC 1662 §7.1 lets a sender escape more than
                    // the ACCM asks, and a client that applies its negotiated ACCM late (or
                    // never) would discard unescaped control characters.
                    self.decoder.set_accm(p.rx_accm);
                }
                Event::Authenticated { user } => {
                    let u = String::from_utf8_lossy(&user).into_owned();
                    tracing::info!(user = %u, "terminate: authenticated");
                    self.user = Some(u);
                }
                Event::IpUp(r) => {
                    tracing::info!(local = %r.local, peer = %r.peer, "terminate: IPCP opened");
                    self.up = true;
                }
                Event::IpDown => self.up = false,
                Event::LinkDown(reason) => {
                    tracing::info!(%reason, "terminate: PPP down");
                    self.up = false;
                    self.down = Some(reason);
                }
                other => tracing::debug!(?other, "terminate: PPP event"),
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::ppp::auth::ClientCredentials;
    use crate::ppp::ccp::MppeMode;
    use crate::responder::Pinger;
    use std::time::Duration;

    fn terminator(dir: &Path) -> Arc<Terminator> {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("users.yaml"),
            "users:\n  - {name: alice, password: wonderland}\n",
        )
        .unwrap();
        let cfg = TerminateConfig {
            users: "users.yaml".into(),
            pool_start: Ipv4Addr::new(10, 77, 0, 10),
            pool_size: 1,
            local_ip: Ipv4Addr::new(10, 77, 0, 1),
            dns: vec![Ipv4Addr::new(10, 77, 0, 53)],
            auth: vec!["mschap-v2".into()],
            mppe: "none".into(),
            mppc: false,
            tun: None,
        };
        Arc::new(Terminator::new(&cfg, dir).unwrap())
    }

    /// A client PPP session over HDLC against a LocalCall: authenticates, gets the pool
    /// address, and a ping comes back from the responder. The pool has one address: a second
    /// call gets none until the first is dropped.
    #[test]
    fn client_authenticates_gets_address_and_ping_answered() {
        let dir = std::env::temp_dir().join(format!("pptp-nas-term-unit-{}", std::process::id()));
        let term = terminator(&dir);
        let mut now = Instant::now();
        let mut server = term.start_call(now, [7; 32]).unwrap();
        assert!(term.start_call(now, [8; 32]).is_none(), "pool of one");
        let mut cp = Policy::client(ClientCredentials::new("alice", "wonderland"));
        cp.lcp.accept_auth = vec![AuthMethod::MsChapV2];
        cp.ccp.mppe = MppeMode::Disabled;
        cp.ccp.mppc = false;
        cp.ipcp.request_dns = true;
        let mut client = Session::new(Arc::new(cp), None, [1; 32]);
        let mut cenc = Encoder::new(EncoderConfig::default());
        let mut cdec = Decoder::new(DecoderConfig::default());
        client.open(now);
        let mut pinger: Option<Pinger> = None;
        let mut answered = false;
        for _ in 0..400 {
            // client -> server
            let mut wire = Vec::new();
            while let Some(f) = client.poll_transmit() {
                cenc.encode(&f, &mut wire).unwrap();
            }
            server.line_in(now, &wire);
            // server -> client
            let out = std::mem::take(server.take_output());
            let mut input = &out[..];
            while let Some(r) = cdec.decode(&mut input) {
                let frame = r.unwrap().to_vec();
                if let Some(ip) = client.handle_frame(now, &frame) {
                    if let Some(p) = pinger.as_mut() {
                        answered |= p.handle_packet(now, &ip).is_some();
                    }
                }
            }
            while let Some(ev) = client.poll_event() {
                if let Event::IpUp(r) = ev {
                    assert_eq!(r.local, Ipv4Addr::new(10, 77, 0, 10));
                    let mut p = Pinger::new(r.local, r.peer, 1, 32);
                    client.send_ip(&p.next_request(now)).unwrap();
                    pinger = Some(p);
                }
            }
            if answered {
                break;
            }
            now += Duration::from_millis(50);
            client.handle_timeout(now);
            server.handle_timeout(now);
        }
        assert!(
            answered,
            "ping answered; server up={} down={:?}",
            server.is_up(),
            server.down_reason()
        );
        assert_eq!(server.user(), Some("alice"));
        assert_eq!(server.echoes(), 1);
        drop(server);
        assert!(
            term.start_call(now, [9; 32]).is_some(),
            "address given back"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
