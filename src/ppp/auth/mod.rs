//! PPP authentication: PAP (RFC 1334), CHAP-MD5 (RFC 1994), MS-CHAPv1 (RFC 2433) and
//! MS-CHAPv2 (RFC 2759), in both roles.
//!
//! The crypto is pure functions ([`chap`], [`mschap`]); the protocol state machines
//! (authenticator and peer) live next to them and take packets plus `now`, returning packets,
//! events and deadlines like every other core here. The authenticator asks a
//! [`CredentialStore`] for a user's secret, so a RADIUS client can plug in later.
//!
//! Secrets never reach a log line; responses are compared in constant time ([`ct_eq`]).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod chap;
pub mod mschap;
pub mod pap;

use std::time::Duration;

use sha1::{Digest, Sha1};

/// Retransmission policy shared by both roles and every method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthTiming {
    /// Time between retransmissions of a Challenge or Authenticate-Request.
    pub restart: Duration,
    /// Transmissions before giving up (the authenticator then fails the peer; the peer
    /// reports a timeout).
    pub max_transmit: u8,
}

impl Default for AuthTiming {
    fn default() -> Self {
        AuthTiming {
            restart: Duration::from_secs(3),
            max_transmit: 10,
        }
    }
}

/// Authenticator policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorPolicy {
    /// Our name in CHAP Challenges.
    pub name: Vec<u8>,
    /// Verify the MS-CHAPv1 LAN Manager response (Windows 95 may send only that). Off by
    /// default: the LM hash is weak.
    pub allow_lm_response: bool,
    /// MS-CHAP failures with "R=1" (a retry with a new challenge) before "R=0".
    pub retries: u8,
    /// Timers.
    pub timing: AuthTiming,
}

impl Default for AuthenticatorPolicy {
    fn default() -> Self {
        AuthenticatorPolicy {
            name: b"pptp-nas".to_vec(),
            allow_lm_response: false,
            retries: 0,
            timing: AuthTiming::default(),
        }
    }
}

/// What the peer role authenticates with.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The user name (PAP Peer-ID, CHAP Name).
    pub user: Vec<u8>,
    /// The secret.
    pub secret: Secret,
    /// Timers.
    pub timing: AuthTiming,
    /// MS-CHAP Failures with "R=1" answered with a new Response (same credentials, the new
    /// challenge) before giving up. A retry helps when the refusal was transient (a RADIUS
    /// back end that timed out); 0 ends at the first Failure.
    pub retries: u8,
}

impl core::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("user", &String::from_utf8_lossy(&self.user))
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Credentials with a cleartext password and default timers.
    pub fn new(user: &str, password: &str) -> Self {
        ClientCredentials {
            user: user.as_bytes().to_vec(),
            secret: Secret::Password(password.as_bytes().to_vec()),
            timing: AuthTiming::default(),
            retries: 0,
        }
    }
}

/// What MPPE needs after a successful MS-CHAP exchange (RFC 3079).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum AuthMaterial {
    /// No key material (PAP, CHAP-MD5).
    #[default]
    None,
    /// MS-CHAPv1: PasswordHashHash and the authenticator's 8-octet challenge (RFC 3079 3.1).
    MsChapV1 {
        /// HashNtPasswordHash.
        password_hash_hash: [u8; 16],
        /// The Challenge the authenticator sent.
        challenge: [u8; 8],
        /// The NT-Response.
        nt_response: [u8; 24],
        /// LmPasswordHash, needed for 40/56-bit MS-CHAPv1 MPPE keys (RFC 3079 2.1); `None`
        /// when only the NT hash is known.
        lm_password_hash: Option<[u8; 16]>,
    },
    /// MS-CHAPv2: PasswordHashHash and NT-Response (RFC 3079 3.3, GetMasterKey).
    MsChapV2 {
        /// HashNtPasswordHash.
        password_hash_hash: [u8; 16],
        /// The NT-Response.
        nt_response: [u8; 24],
    },
}

impl core::fmt::Debug for AuthMaterial {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Key material stays out of logs.
        f.write_str(match self {
            AuthMaterial::None => "AuthMaterial::None",
            AuthMaterial::MsChapV1 { .. } => "AuthMaterial::MsChapV1(..)",
            AuthMaterial::MsChapV2 { .. } => "AuthMaterial::MsChapV2(..)",
        })
    }
}

/// Why authentication failed, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The user is not in the credential store.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The password (response) was wrong.
    #[error("wrong password for user {0:?}")]
    BadCredentials(String),
    /// The store holds only an NT hash but the method needs the cleartext password.
    #[error("user {0:?}: method needs the cleartext password, store has only the NT hash")]
    NeedCleartext(String),
    /// MS-CHAPv1 peer sent only the LAN Manager response, which the policy refuses.
    #[error("user {0:?}: LAN Manager response refused by policy (enable allow_lm_response)")]
    LmRefused(String),
    /// The peer tried MS-CHAP change-password, which is not supported.
    #[error("peer attempted MS-CHAP change-password, which is not supported")]
    ChangePasswordUnsupported,
    /// The authenticator rejected us; the text is its message (for MS-CHAP "E=... M=...").
    #[error("rejected by the authenticator: {0}")]
    Rejected(String),
    /// MS-CHAPv2: the authenticator's "S=" response was missing or wrong.
    #[error("the authenticator failed MS-CHAPv2 mutual authentication (bad S= response)")]
    ServerNotAuthenticated,
    /// No answer within the retransmission budget.
    #[error("no answer after {0} transmissions")]
    Timeout(u8),
}

/// The outcome of one authentication, for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthEvent {
    /// Authentication succeeded for `user` (for the peer role: our own name).
    Success {
        /// The authenticated user.
        user: Vec<u8>,
        /// Key material for MPPE.
        material: AuthMaterial,
    },
    /// Authentication failed.
    Failure(AuthFailure),
}

/// Packets, events and the deadline of one authentication role.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Packets to send (the Information field; protocol c023 or c223).
    pub tx: std::collections::VecDeque<Vec<u8>>,
    /// Outcomes.
    pub events: std::collections::VecDeque<AuthEvent>,
    /// When the timer fires next.
    pub deadline: Option<std::time::Instant>,
    /// Packets dropped as malformed.
    pub malformed: u32,
}

impl Outbox {
    fn expired(&self, now: std::time::Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }
}

/// Lossy user name for messages.
fn user_text(user: &[u8]) -> String {
    String::from_utf8_lossy(user).into_owned()
}

/// A user's secret as a [`CredentialStore`] knows it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The cleartext password (needed for PAP and CHAP-MD5; MS-CHAP derives the NT hash).
    Password(Vec<u8>),
    /// Only the NT password hash (MD4 of the UTF-16LE password): enough for MS-CHAP v1/v2.
    NtHash([u8; 16]),
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secret itself.
        match self {
            Secret::Password(_) => f.write_str("Secret::Password(..)"),
            Secret::NtHash(_) => f.write_str("Secret::NtHash(..)"),
        }
    }
}

impl Secret {
    /// The NT password hash of this secret.
    pub fn nt_hash(&self) -> [u8; 16] {
        match self {
            Secret::Password(p) => mschap::nt_password_hash(p),
            Secret::NtHash(h) => *h,
        }
    }

    /// The cleartext password, if known.
    pub fn password(&self) -> Option<&[u8]> {
        match self {
            Secret::Password(p) => Some(p),
            Secret::NtHash(_) => None,
        }
    }
}

/// Where the authenticator looks up secrets (a users file today, RADIUS later).
pub trait CredentialStore {
    /// The secret of `user`, or `None` for an unknown user.
    fn lookup(&self, user: &[u8]) -> Option<Secret>;
}

/// A fixed list of users and passwords (tests, the lab and small configs).
#[derive(Debug, Clone, Default)]
pub struct StaticCredentials {
    users: Vec<(Vec<u8>, Secret)>,
}

impl StaticCredentials {
    /// An empty store.
    pub fn new() -> Self {
        StaticCredentials::default()
    }

    /// Adds (or replaces) a user.
    pub fn insert(&mut self, user: &[u8], secret: Secret) -> &mut Self {
        self.users.retain(|(u, _)| u != user);
        self.users.push((user.to_vec(), secret));
        self
    }

    /// Adds a user with a cleartext password.
    pub fn with_password(mut self, user: &str, password: &str) -> Self {
        self.insert(
            user.as_bytes(),
            Secret::Password(password.as_bytes().to_vec()),
        );
        self
    }
}

impl CredentialStore for StaticCredentials {
    fn lookup(&self, user: &[u8]) -> Option<Secret> {
        self.users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, s)| s.clone())
    }
}

/// Compares two byte strings in time that depends only on their lengths (STYLE habit 14).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the compiler from turning the fold into an early exit.
    core::hint::black_box(diff) == 0
}

/// A hash-based deterministic random bit generator for challenges and magic numbers.
///
/// The core cannot read the OS: the shell seeds it with 32 octets from the OS CSPRNG
/// (`/dev/urandom` or `getrandom`), and tests seed it with a fixed value for reproducible
/// runs. Output block `i` is SHA-1(key || i); after each request the key is replaced by
/// SHA-1(key || "rekey" || i) padded, so earlier outputs cannot be recomputed from a later
/// state (backtracking resistance). With a 256-bit OS seed this is a sound CSPRNG for
/// challenge values; it is not meant for long-term keys.
#[derive(Clone)]
pub struct ChallengeRng {
    key: [u8; 32],
    counter: u64,
}

impl core::fmt::Debug for ChallengeRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChallengeRng(..)")
    }
}

impl ChallengeRng {
    /// Seeds the generator (32 octets from the OS CSPRNG in production).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        ChallengeRng {
            key: seed,
            counter: 0,
        }
    }

    /// Fills `out` with random octets.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(20) {
            self.counter = self.counter.wrapping_add(1);
            let block = Sha1::new()
                .chain_update(self.key)
                .chain_update(self.counter.to_be_bytes())
                .finalize();
            for (o, b) in chunk.iter_mut().zip(block.iter()) {
                *o = *b;
            }
        }
        let a = Sha1::new()
            .chain_update(self.key)
            .chain_update(b"rekey-a")
            .chain_update(self.counter.to_be_bytes())
            .finalize();
        let b = Sha1::new()
            .chain_update(self.key)
            .chain_update(b"rekey-b")
            .chain_update(self.counter.to_be_bytes())
            .finalize();
        for (k, v) in self.key.iter_mut().zip(a.iter().chain(b.iter())) {
            *k = *v;
        }
    }

    /// A random array.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }

    /// A random 32-bit value.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn rng_is_deterministic_per_seed_and_moves_on() {
        let mut a = ChallengeRng::from_seed([7; 32]);
        let mut b = ChallengeRng::from_seed([7; 32]);
        let mut c = ChallengeRng::from_seed([8; 32]);
        let x: [u8; 16] = a.array();
        assert_eq!(x, b.array::<16>());
        assert_ne!(x, c.array::<16>());
        let y: [u8; 16] = a.array();
        assert_ne!(x, y);
        // Long fills cover every octet (no zero tail).
        let long: [u8; 64] = a.array();
        assert!(long[40..].iter().any(|&v| v != 0));
    }

    #[test]
    fn secret_debug_hides_the_secret() {
        let s = Secret::Password(b"hunter2".to_vec());
        assert!(!format!("{s:?}").contains("hunter2"));
        let store = StaticCredentials::new().with_password("alice", "pw");
        assert_eq!(
            store
                .lookup(b"alice")
                .and_then(|s| s.password().map(<[u8]>::to_vec)),
            Some(b"pw".to_vec())
        );
        assert!(store.lookup(b"bob").is_none());
    }
}
