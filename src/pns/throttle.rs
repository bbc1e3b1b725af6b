//! Authentication throttling against "demon dialer" password guessing (sans-IO).
//!
//! Failures are counted per user name and per source (the PAC's or PPTP client's address, or a
//! caller ID). After `free_failures` failures each further one doubles a delay, starting at
//! `base_delay` and capped at `max_delay`, before the next attempt is answered; after
//! `lockout_after` failures the key is locked out for `lockout`. A success clears the user's
//! and the source's record. Entries that have been quiet for `forget_after` are dropped, and
//! the table is bounded (`max_entries`, oldest evicted first) so a flood of made-up user names
//! cannot grow it without limit.
//!
//! The throttle never sees a password: the caller reports only "failed" or "succeeded" for a
//! (user, source) pair, and [`Verdict`] is what the log line carries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ppp::auth::{CredentialStore, Secret};

/// Throttle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures before any delay.
    pub free_failures: u32,
    /// Delay after the first counted failure; doubles with each further one.
    pub base_delay: Duration,
    /// Upper bound of the delay.
    pub max_delay: Duration,
    /// Failures that trigger a lockout.
    pub lockout_after: u32,
    /// Length of a lockout.
    pub lockout: Duration,
    /// A record with no failure for this long is forgotten.
    pub forget_after: Duration,
    /// Records kept at most (users and sources together).
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            free_failures: 1,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            lockout_after: 5,
            lockout: Duration::from_secs(300),
            forget_after: Duration::from_secs(3600),
            max_entries: 65_536,
        }
    }
}

/// What is counted: a user name or a source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A user name as sent by the peer.
    User(Vec<u8>),
    /// A source (address or caller ID) as text.
    Source(String),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    not_before: Option<Instant>,
    locked_until: Option<Instant>,
}

/// One row of the throttle table, for the status page (no password is ever kept).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ThrottleEntry {
    /// `user` or `source`.
    pub kind: &'static str,
    /// The user name (lossy UTF-8) or the source.
    pub key: String,
    /// Failures counted.
    pub failures: u32,
    /// Seconds until the next attempt is answered (0: no delay pending).
    pub delay_s: f64,
    /// Seconds of lockout left (0: not locked out).
    pub locked_s: f64,
}

/// The answer for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Answer no sooner than this (exponential delay).
    DelayUntil(Instant),
    /// Refuse without checking the password until this time.
    LockedUntil(Instant),
}

/// Failure counters per user and per source.
#[derive(Debug, Clone)]
pub struct AuthThrottle {
    config: ThrottleConfig,
    records: HashMap<Key, Record>,
    lockouts: u64,
}

impl AuthThrottle {
    /// An empty table.
    pub fn new(config: ThrottleConfig) -> Self {
        AuthThrottle {
            config,
            records: HashMap::new(),
            lockouts: 0,
        }
    }

    /// Lockouts started so far (for the status page).
    pub fn lockouts(&self) -> u64 {
        self.lockouts
    }

    /// The table as of `now`, most failures first.
    pub fn snapshot(&self, now: Instant) -> Vec<ThrottleEntry> {
        let left =
            |t: Option<Instant>| t.map_or(0.0, |t| t.saturating_duration_since(now).as_secs_f64());
        let mut v: Vec<ThrottleEntry> = self
            .records
            .iter()
            .map(|(k, r)| {
                let (kind, key) = match k {
                    Key::User(u) => ("user", String::from_utf8_lossy(u).into_owned()),
                    Key::Source(s) => ("source", s.clone()),
                };
                ThrottleEntry {
                    kind,
                    key,
                    failures: r.failures,
                    delay_s: left(r.not_before),
                    locked_s: left(r.locked_until),
                }
            })
            .collect();
        v.sort_by(|a, b| {
            b.failures
                .cmp(&a.failures)
                .then_with(|| a.kind.cmp(b.kind))
                .then_with(|| a.key.cmp(&b.key))
        });
        v
    }

    /// Current failure count of a key.
    pub fn failures(&self, key: &Key) -> u32 {
        self.records.get(key).map_or(0, |r| r.failures)
    }

    /// May `user` from `source` try now? The strictest of the two records wins.
    pub fn check(&self, now: Instant, user: &[u8], source: &str) -> Verdict {
        let keys = [Key::User(user.to_vec()), Key::Source(source.to_string())];
        let mut verdict = Verdict::Allow;
        for k in &keys {
            let Some(r) = self.records.get(k) else {
                continue;
            };
            if let Some(t) = r.locked_until.filter(|t| *t > now) {
                verdict = match verdict {
                    Verdict::LockedUntil(v) => Verdict::LockedUntil(v.max(t)),
                    _ => Verdict::LockedUntil(t),
                };
            } else if let Some(t) = r.not_before.filter(|t| *t > now) {
                verdict = match verdict {
                    Verdict::Allow => Verdict::DelayUntil(t),
                    Verdict::DelayUntil(v) => Verdict::DelayUntil(v.max(t)),
                    locked => locked,
                };
            }
        }
        verdict
    }

    /// Records a failed attempt; returns the verdict for the next one.
    pub fn record_failure(&mut self, now: Instant, user: &[u8], source: &str) -> Verdict {
        self.expire(now);
        for k in [Key::User(user.to_vec()), Key::Source(source.to_string())] {
            let cfg = self.config;
            let r = self.records.entry(k).or_insert(Record {
                failures: 0,
                last: now,
                not_before: None,
                locked_until: None,
            });
            // A lockout that ran out starts a fresh count.
            if r.locked_until.is_some_and(|t| t <= now) {
                r.failures = 0;
                r.locked_until = None;
            }
            r.failures = r.failures.saturating_add(1);
            r.last = now;
            if r.failures >= cfg.lockout_after && r.locked_until.is_none() {
                r.locked_until = Some(now + cfg.lockout);
                self.lockouts += 1;
            } else if r.failures > cfg.free_failures {
                let exp = (r.failures - cfg.free_failures - 1).min(16);
                let delay = cfg.base_delay.saturating_mul(1 << exp).min(cfg.max_delay);
                r.not_before = Some(now + delay);
            }
        }
        self.evict();
        self.check(now, user, source)
    }

    /// Records a success: both records are cleared.
    pub fn record_success(&mut self, user: &[u8], source: &str) {
        self.records.remove(&Key::User(user.to_vec()));
        self.records.remove(&Key::Source(source.to_string()));
    }

    fn expire(&mut self, now: Instant) {
        let forget = self.config.forget_after;
        self.records.retain(|_, r| {
            r.locked_until.is_some_and(|t| t > now)
                || now.saturating_duration_since(r.last) < forget
        });
    }

    fn evict(&mut self) {
        while self.records.len() > self.config.max_entries {
            let oldest = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.records.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// The state a [`ThrottleHandle`] shares with the stores it hands out.
#[derive(Debug)]
struct Shared {
    throttle: AuthThrottle,
    now: Instant,
    refused: u64,
}

/// A throttle shared by every call of a server, with the shell's notion of "now".
///
/// The PPP engine asks its [`CredentialStore`] for a user's secret during authentication;
/// [`ThrottleHandle::store_for`] wraps the real store so that a user or source under lockout
/// gets no secret at all (the attempt fails as for an unknown user, without the password being
/// checked). The shell reports outcomes with [`ThrottleHandle::record`] and keeps the clock
/// current with [`ThrottleHandle::set_now`] (sans-IO: the store itself never reads a clock).
/// The exponential delay is enforced by the session: a [`crate::pns::session::Session`] given
/// the handle ([`crate::pns::session::Session::set_throttle`]) holds its authentication answer
/// until the deadline [`ThrottleHandle::check_at`] reports.
#[derive(Debug, Clone)]
pub struct ThrottleHandle(Arc<Mutex<Shared>>);

impl ThrottleHandle {
    /// A handle around a fresh throttle.
    pub fn new(config: ThrottleConfig, now: Instant) -> Self {
        ThrottleHandle(Arc::new(Mutex::new(Shared {
            throttle: AuthThrottle::new(config),
            now,
            refused: 0,
        })))
    }

    /// Moves the shared clock forward.
    pub fn set_now(&self, now: Instant) {
        if let Ok(mut s) = self.0.lock() {
            s.now = s.now.max(now);
        }
    }

    /// Records an authentication outcome of `user` from `source` as of `now` (which may be a
    /// held answer's time, ahead of the shared clock; the clock is not moved); returns the
    /// verdict for the next attempt. Logs failures and lockouts (user name and source only,
    /// never a password).
    pub fn record(&self, now: Instant, user: &[u8], source: &str, ok: bool) -> Verdict {
        let Ok(mut s) = self.0.lock() else {
            return Verdict::Allow;
        };
        if ok {
            s.throttle.record_success(user, source);
            return Verdict::Allow;
        }
        let v = s.throttle.record_failure(now, user, source);
        let name = String::from_utf8_lossy(user);
        match v {
            Verdict::LockedUntil(t) => tracing::warn!(
                user = %name, source, lock_s = t.saturating_duration_since(now).as_secs(),
                "authentication failures: locked out"
            ),
            Verdict::DelayUntil(t) => tracing::info!(
                user = %name, source, delay_ms = t.saturating_duration_since(now).as_millis() as u64,
                "authentication failed: delaying the next attempt"
            ),
            Verdict::Allow => tracing::info!(user = %name, source, "authentication failed"),
        }
        v
    }

    /// The verdict for an attempt at `now` (also moves the shared clock forward).
    pub fn check_at(&self, now: Instant, user: &[u8], source: &str) -> Verdict {
        match self.0.lock() {
            Ok(mut s) => {
                s.now = s.now.max(now);
                s.throttle.check(now, user, source)
            }
            Err(_) => Verdict::Allow,
        }
    }

    /// The verdict for an attempt now.
    pub fn check(&self, user: &[u8], source: &str) -> Verdict {
        match self.0.lock() {
            Ok(s) => s.throttle.check(s.now, user, source),
            Err(_) => Verdict::Allow,
        }
    }

    /// The throttle table as of `now` (for the status page).
    pub fn snapshot(&self, now: Instant) -> Vec<ThrottleEntry> {
        self.0
            .lock()
            .map_or_else(|_| Vec::new(), |s| s.throttle.snapshot(now))
    }

    /// Lockouts so far and lookups refused because of one (for the status page).
    pub fn counters(&self) -> (u64, u64) {
        self.0
            .lock()
            .map_or((0, 0), |s| (s.throttle.lockouts(), s.refused))
    }

    /// A credential store for one call from `source` that refuses locked-out users.
    pub fn store_for(
        &self,
        source: &str,
        inner: Arc<dyn CredentialStore + Send + Sync>,
    ) -> Arc<dyn CredentialStore + Send + Sync> {
        Arc::new(GuardedStore {
            shared: self.0.clone(),
            source: source.to_string(),
            inner,
        })
    }
}

struct GuardedStore {
    shared: Arc<Mutex<Shared>>,
    source: String,
    inner: Arc<dyn CredentialStore + Send + Sync>,
}

impl CredentialStore for GuardedStore {
    fn lookup(&self, user: &[u8]) -> Option<Secret> {
        if let Ok(mut s) = self.shared.lock() {
            if let Verdict::LockedUntil(_) = s.throttle.check(s.now, user, &self.source) {
                s.refused += 1;
                tracing::warn!(
                    user = %String::from_utf8_lossy(user),
                    source = %self.source,
                    "authentication refused: locked out"
                );
                return None;
            }
        }
        self.inner.lookup(user)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn five_failures_lock_out_and_expiry_allows_again() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(ThrottleConfig::default());
        assert_eq!(t.check(t0, b"alice", "10.0.0.1"), Verdict::Allow);
        // First failure is free.
        assert_eq!(t.record_failure(t0, b"alice", "10.0.0.1"), Verdict::Allow);
        // Then 1 s, 2 s, 4 s of delay.
        let mut now = t0;
        for d in [1u64, 2, 4] {
            now += Duration::from_secs(60);
            assert_eq!(
                t.record_failure(now, b"alice", "10.0.0.1"),
                Verdict::DelayUntil(now + Duration::from_secs(d))
            );
        }
        now += Duration::from_secs(60);
        let locked = t.record_failure(now, b"alice", "10.0.0.1");
        assert_eq!(locked, Verdict::LockedUntil(now + Duration::from_secs(300)));
        assert_eq!(t.lockouts(), 2, "user and source both locked");
        // Another source is locked too, through the user record.
        assert!(matches!(
            t.check(now, b"alice", "10.0.0.2"),
            Verdict::LockedUntil(_)
        ));
        // Another user from the same source too, through the source record.
        assert!(matches!(
            t.check(now, b"bob", "10.0.0.1"),
            Verdict::LockedUntil(_)
        ));
        // Unrelated user and source are not affected.
        assert_eq!(t.check(now, b"bob", "10.0.0.9"), Verdict::Allow);
        // After the lockout the user may try again, and a success clears the record.
        let later = now + Duration::from_secs(301);
        assert_eq!(t.check(later, b"alice", "10.0.0.1"), Verdict::Allow);
        t.record_success(b"alice", "10.0.0.1");
        assert_eq!(t.failures(&Key::User(b"alice".to_vec())), 0);
    }

    #[test]
    fn delay_is_capped_and_records_are_forgotten() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(ThrottleConfig {
            lockout_after: 1000,
            ..ThrottleConfig::default()
        });
        let mut v = Verdict::Allow;
        for _ in 0..40 {
            v = t.record_failure(t0, b"x", "s");
        }
        assert_eq!(v, Verdict::DelayUntil(t0 + Duration::from_secs(30)));
        let much_later = t0 + Duration::from_secs(7200);
        let _ = t.record_failure(much_later, b"y", "other");
        assert_eq!(t.failures(&Key::User(b"x".to_vec())), 0, "forgotten");
    }

    /// Five wrong MS-CHAPv2 passwords through real PPP sessions lock the user out; the right
    /// password is refused during the lockout and accepted after it.
    #[test]
    fn sessions_wrong_password_five_times_then_lockout_then_success() {
        use crate::pns::session::Session;
        use crate::ppp::auth::{ClientCredentials, StaticCredentials};
        use crate::ppp::engine::{DownReason, Event, Policy};
        use crate::ppp::ipcp::IpcpConfig;
        use crate::ppp::lcp::AuthMethod;
        use std::net::Ipv4Addr;

        let t0 = Instant::now();
        let handle = ThrottleHandle::new(ThrottleConfig::default(), t0);
        let users: Arc<dyn CredentialStore + Send + Sync> =
            Arc::new(StaticCredentials::new().with_password("alice", "right"));
        let server = Arc::new(Policy::server(
            vec![AuthMethod::MsChapV2],
            IpcpConfig {
                local: Some(Ipv4Addr::new(10, 0, 0, 1)),
                assign_peer: Some(Ipv4Addr::new(10, 0, 0, 2)),
                ..IpcpConfig::default()
            },
        ));
        // One call: returns whether authentication succeeded.
        let call = |now: Instant, password: &str, n: u8| -> bool {
            handle.set_now(now);
            let mut cp = Policy::client(ClientCredentials::new("alice", password));
            cp.lcp.accept_auth = vec![AuthMethod::MsChapV2];
            let mut c = Session::new(Arc::new(cp), None, [n; 32]);
            let mut s = Session::new(
                server.clone(),
                Some(handle.store_for("10.9.9.9", users.clone())),
                [n.wrapping_add(50); 32],
            );
            c.open(now);
            s.open(now);
            let mut t = now;
            for _ in 0..300 {
                while let Some(f) = c.poll_transmit() {
                    let _ = s.handle_frame(t, &f);
                }
                while let Some(f) = s.poll_transmit() {
                    let _ = c.handle_frame(t, &f);
                }
                while c.poll_event().is_some() {}
                while let Some(e) = s.poll_event() {
                    match e {
                        Event::Authenticated { user } => {
                            handle.record(t, &user, "10.9.9.9", true);
                            return true;
                        }
                        Event::LinkDown(DownReason::AuthFailed(_)) => {
                            handle.record(t, b"alice", "10.9.9.9", false);
                            return false;
                        }
                        _ => {}
                    }
                }
                t += Duration::from_millis(50);
                c.handle_timeout(t);
                s.handle_timeout(t);
            }
            false
        };
        let mut now = t0;
        for i in 0..5u8 {
            assert!(!call(now, "guess", i), "wrong password {i} refused");
            now += Duration::from_secs(40);
        }
        assert_eq!(handle.counters().0, 2, "user and source locked out");
        assert!(matches!(
            handle.check(b"alice", "10.9.9.9"),
            Verdict::LockedUntil(_)
        ));
        // The right password during the lockout: refused without a password check.
        assert!(!call(now, "right", 10));
        assert!(handle.counters().1 >= 1, "lookup refused while locked");
        // After the lockout (300 s) the right password works and clears the record.
        now += Duration::from_secs(301);
        assert!(call(now, "right", 11));
        assert_eq!(handle.check(b"alice", "10.9.9.9"), Verdict::Allow);
    }

    /// Issue 8, in virtual time: wrong MS-CHAPv2 passwords retried at once are answered later
    /// and later (the session holds the answer for the throttle delay), the fifth locks out,
    /// the right password is refused at once during the lockout and accepted after it.
    #[test]
    fn sessions_hold_the_answer_for_the_delay() {
        use crate::pns::session::Session;
        use crate::ppp::auth::{ClientCredentials, StaticCredentials};
        use crate::ppp::engine::{DownReason, Event, Policy};
        use crate::ppp::ipcp::IpcpConfig;
        use crate::ppp::lcp::AuthMethod;
        use std::net::Ipv4Addr;

        let t0 = Instant::now();
        let handle = ThrottleHandle::new(
            ThrottleConfig {
                lockout: Duration::from_secs(20),
                ..ThrottleConfig::default()
            },
            t0,
        );
        let users: Arc<dyn CredentialStore + Send + Sync> =
            Arc::new(StaticCredentials::new().with_password("alice", "right"));
        let server = Arc::new(Policy::server(
            vec![AuthMethod::MsChapV2],
            IpcpConfig {
                local: Some(Ipv4Addr::new(10, 0, 0, 1)),
                assign_peer: Some(Ipv4Addr::new(10, 0, 0, 2)),
                ..IpcpConfig::default()
            },
        ));
        let src = "10.9.9.8";
        // One call starting at `start`: (authenticated, time from the server's judgement of
        // the response to its first frame out, the time the outcome was reported).
        let call = |start: Instant, password: &str, n: u8| -> (bool, Duration, Instant) {
            let mut cp = Policy::client(ClientCredentials::new("alice", password));
            cp.lcp.accept_auth = vec![AuthMethod::MsChapV2];
            let mut c = Session::new(Arc::new(cp), None, [n; 32]);
            let mut s = Session::new(
                server.clone(),
                Some(handle.store_for(src, users.clone())),
                [n.wrapping_add(50); 32],
            );
            s.set_throttle(handle.clone(), src);
            c.open(start);
            s.open(start);
            let mut t = start;
            let mut judged: Option<Instant> = None;
            let mut answered: Option<Instant> = None;
            for _ in 0..2000 {
                while let Some(f) = c.poll_transmit() {
                    let _ = s.handle_frame(t, &f);
                    if judged.is_none() && s.held_until().is_some() {
                        judged = Some(t);
                    }
                }
                while let Some(f) = s.poll_transmit() {
                    if answered.is_none() && judged.is_some() {
                        answered = Some(t);
                    }
                    let _ = c.handle_frame(t, &f);
                }
                while c.poll_event().is_some() {}
                while let Some(e) = s.poll_event() {
                    let lat = judged.zip(answered).map_or(Duration::ZERO, |(j, a)| a - j);
                    match e {
                        // The session reported the outcome to the throttle itself.
                        Event::Authenticated { .. } => return (true, lat, t),
                        Event::LinkDown(DownReason::AuthFailed(_)) => return (false, lat, t),
                        _ => {}
                    }
                }
                t += Duration::from_millis(10);
                c.handle_timeout(t);
                s.handle_timeout(t);
            }
            panic!("call {n} did not finish");
        };
        let mut now = t0;
        let mut lat = Vec::new();
        for i in 0..5u8 {
            let (ok, l, end) = call(now, "guess", i);
            assert!(!ok, "wrong password {i} refused");
            lat.push(l);
            now = end;
        }
        // 1st and 2nd: no delay; 3rd, 4th, 5th: held about 1 s, 2 s, 4 s.
        assert_eq!(lat[0], Duration::ZERO, "{lat:?}");
        assert_eq!(lat[1], Duration::ZERO, "{lat:?}");
        for (i, want) in [(2usize, 1000u64), (3, 2000), (4, 4000)] {
            let got = lat[i].as_millis() as u64;
            assert!(
                got + 100 >= want && got <= want,
                "attempt {}: held {got} ms, want about {want} ms ({lat:?})",
                i + 1
            );
        }
        assert!(matches!(
            handle.check_at(now, b"alice", src),
            Verdict::LockedUntil(_)
        ));
        // Locked: the right password is refused, and at once (no hold).
        let (ok, l, end) = call(now, "right", 20);
        assert!(!ok, "refused while locked out");
        assert_eq!(l, Duration::ZERO);
        // After the (20 s) lockout the right password works at once.
        let (ok, l, _) = call(end + Duration::from_secs(21), "right", 21);
        assert!(ok, "accepted after the lockout");
        assert_eq!(l, Duration::ZERO);
    }

    #[test]
    fn snapshot_shows_failures_delay_and_lockout() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(ThrottleConfig::default());
        for _ in 0..3 {
            let _ = t.record_failure(t0, b"alice", "10.0.0.1");
        }
        let _ = t.record_failure(t0, b"bob", "10.0.0.2");
        let snap = t.snapshot(t0);
        assert_eq!(snap.len(), 4);
        let alice = &snap[0];
        assert_eq!(alice.failures, 3);
        assert_eq!((alice.delay_s, alice.locked_s), (2.0, 0.0));
        assert!(snap
            .iter()
            .any(|e| e.kind == "source" && e.key == "10.0.0.1"));
        for _ in 0..2 {
            let _ = t.record_failure(t0, b"alice", "10.0.0.1");
        }
        let snap = t.snapshot(t0 + Duration::from_secs(100));
        let a = snap
            .iter()
            .find(|e| e.kind == "user" && e.key == "alice")
            .unwrap();
        assert_eq!((a.failures, a.locked_s), (5, 200.0));
    }

    #[test]
    fn table_is_bounded() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(ThrottleConfig {
            max_entries: 100,
            ..ThrottleConfig::default()
        });
        for i in 0..1000u32 {
            let _ = t.record_failure(
                t0 + Duration::from_millis(u64::from(i)),
                format!("user{i}").as_bytes(),
                "src",
            );
        }
        assert!(t.records.len() <= 100);
        // The busy source record is recent and survives eviction.
        assert!(t.failures(&Key::Source("src".to_string())) > 0);
    }
}
