//! CHAP (RFC 1994) and its Microsoft variants (RFC 2433, RFC 2759): the MD5 response
//! function and the Challenge/Response/Success/Failure exchange in both roles.
//!
//! MS-CHAP rides on the same packets; what differs is the Value (16-octet MD5 digest, or the
//! 49-octet MS-CHAP responses), the messages (MS-CHAP "E=... R=... C=... V=... M=..." on
//! Failure; "S=<authenticator response> M=..." on MS-CHAPv2 Success, which the peer checks:
//! mutual authentication), and the key material left for MPPE.

use std::time::Instant;

use md5::{Digest, Md5};

use super::mschap::{self, Failure};
use super::{
    ct_eq, user_text, AuthEvent, AuthFailure, AuthMaterial, AuthTiming, AuthenticatorPolicy,
    ChallengeRng, ClientCredentials, CredentialStore, Outbox, Secret,
};
use crate::ppp::lcp::AuthMethod;
use crate::ppp::packet::{ChapMessage, ChapRepr, MsChapV1Response, MsChapV2Response};

/// RFC 1994 section 4.1: "The Response Value is the one-way hash calculated over a stream of
/// octets consisting of the Identifier, followed by (concatenated with) the "secret",
/// followed by (concatenated with) the Challenge Value."
pub fn md5_response(identifier: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    Md5::new()
        .chain_update([identifier])
        .chain_update(secret)
        .chain_update(challenge)
        .finalize()
        .into()
}

/// CHAP codes MS-CHAP uses for password changes (RFC 2433: 5 Change-Password v1, 6 v2;
/// RFC 2759: 7 Change-Password). Not supported: answered with a Failure.
const CHANGE_PASSWORD_CODES: [u8; 3] = [5, 6, 7];
/// MS-CHAP error code for "error changing password".
const ERROR_CHANGING_PASSWORD: u32 = 709;

/// The CHAP-family algorithm of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChapVariant {
    /// CHAP-MD5 (algorithm 5).
    Md5,
    /// MS-CHAPv1 (algorithm 0x80).
    MsChapV1,
    /// MS-CHAPv2 (algorithm 0x81).
    MsChapV2,
}

impl ChapVariant {
    /// The variant for a negotiated method (`None` for PAP).
    pub fn from_method(m: AuthMethod) -> Option<ChapVariant> {
        match m {
            AuthMethod::Pap => None,
            AuthMethod::ChapMd5 => Some(ChapVariant::Md5),
            AuthMethod::MsChapV1 => Some(ChapVariant::MsChapV1),
            AuthMethod::MsChapV2 => Some(ChapVariant::MsChapV2),
        }
    }

    fn challenge_len(self) -> usize {
        match self {
            ChapVariant::MsChapV1 => 8,
            ChapVariant::Md5 | ChapVariant::MsChapV2 => 16,
        }
    }

    fn is_ms(self) -> bool {
        self != ChapVariant::Md5
    }
}

fn chap_packet(identifier: u8, message: ChapMessage<'_>) -> Vec<u8> {
    ChapRepr {
        identifier,
        message,
    }
    .to_vec()
    .unwrap_or_default()
}

/// A raw (code, identifier) look at a packet, for codes the typed parser does not know.
fn code_and_id(packet: &[u8]) -> Option<(u8, u8)> {
    match packet {
        [code, id, ..] => Some((*code, *id)),
        _ => None,
    }
}

/// The authenticator side: sends Challenges, verifies the Response.
#[derive(Debug)]
pub struct ChapAuthenticator {
    variant: ChapVariant,
    name: Vec<u8>,
    allow_lm: bool,
    retries_left: u8,
    timing: AuthTiming,
    out: Outbox,
    id: u8,
    challenge: [u8; 16],
    sent: u8,
    /// Set once the exchange ended: the identifier answered and the answer, for repeats.
    done: Option<(u8, Vec<u8>)>,
    /// Waiting for an MS-CHAP retry Response (no Challenge retransmission then).
    awaiting_retry: bool,
}

impl ChapAuthenticator {
    /// Starts the exchange: sends the first Challenge.
    pub fn new(
        now: Instant,
        variant: ChapVariant,
        policy: &AuthenticatorPolicy,
        rng: &mut ChallengeRng,
    ) -> Self {
        let mut a = ChapAuthenticator {
            variant,
            name: policy.name.clone(),
            allow_lm: policy.allow_lm_response,
            retries_left: policy.retries,
            timing: policy.timing,
            out: Outbox::default(),
            id: rng.array::<1>()[0],
            challenge: [0; 16],
            sent: 0,
            done: None,
            awaiting_retry: false,
        };
        rng.fill(&mut a.challenge);
        a.send_challenge(now);
        a
    }

    /// Starts the exchange with a given first Identifier and Challenge value instead of
    /// random ones: for a challenge that comes from elsewhere (a RADIUS server or a proxy
    /// that already sent it) and for replaying published exchanges in tests. `challenge`
    /// must have the variant's size (16 octets; 8 for MS-CHAPv1), else `None`.
    pub fn with_challenge(
        now: Instant,
        variant: ChapVariant,
        policy: &AuthenticatorPolicy,
        identifier: u8,
        challenge: &[u8],
    ) -> Option<Self> {
        if challenge.len() != variant.challenge_len() {
            return None;
        }
        let mut a = ChapAuthenticator {
            variant,
            name: policy.name.clone(),
            allow_lm: policy.allow_lm_response,
            retries_left: policy.retries,
            timing: policy.timing,
            out: Outbox::default(),
            // send_challenge steps the Identifier before use.
            id: identifier.wrapping_sub(1),
            challenge: [0; 16],
            sent: 0,
            done: None,
            awaiting_retry: false,
        };
        for (d, s) in a.challenge.iter_mut().zip(challenge) {
            *d = *s;
        }
        a.send_challenge(now);
        Some(a)
    }

    fn challenge(&self) -> &[u8] {
        self.challenge
            .get(..self.variant.challenge_len())
            .unwrap_or(&self.challenge)
    }

    fn send_challenge(&mut self, now: Instant) {
        // RFC 1994 4.1: "The Identifier field MUST be changed each time a Challenge is sent."
        self.id = self.id.wrapping_add(1);
        self.sent = self.sent.saturating_add(1);
        let packet = chap_packet(
            self.id,
            ChapMessage::Challenge {
                value: self.challenge(),
                name: &self.name,
            },
        );
        self.out.tx.push_back(packet);
        self.out.deadline = Some(now + self.timing.restart);
    }

    /// Handles one CHAP packet.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        store: &dyn CredentialStore,
        rng: &mut ChallengeRng,
    ) {
        let Some((code, id)) = code_and_id(packet) else {
            self.out.malformed += 1;
            return;
        };
        if let Some((done_id, reply)) = &self.done {
            // RFC 1994 4.2: a repeated Response after our verdict gets the verdict again.
            if code == 2 && id == *done_id {
                let reply = reply.clone();
                self.out.tx.push_back(reply);
            }
            return;
        }
        if self.variant.is_ms() && CHANGE_PASSWORD_CODES.contains(&code) {
            let f = Failure {
                error: ERROR_CHANGING_PASSWORD,
                retry: false,
                challenge: None,
                version: (self.variant == ChapVariant::MsChapV2).then_some(3),
                message: b"Password change is not supported".to_vec(),
            };
            self.finish(
                id,
                false,
                &f.to_message(),
                AuthFailure::ChangePasswordUnsupported,
            );
            return;
        }
        let Ok(repr) = ChapRepr::parse(packet) else {
            self.out.malformed += 1;
            return;
        };
        let ChapMessage::Response { value, name } = repr.message else {
            return;
        };
        // RFC 1994 4.1: the Response "Identifier field MUST be copied from the Identifier
        // field of the Challenge"; anything else is stale.
        if repr.identifier != self.id {
            return;
        }
        let user = name.to_vec();
        match self.verify(value, &user, store) {
            Ok((material, success_msg)) => {
                let reply = chap_packet(
                    id,
                    ChapMessage::Success {
                        message: &success_msg,
                    },
                );
                self.out.tx.push_back(reply.clone());
                self.done = Some((id, reply));
                self.out.deadline = None;
                self.out
                    .events
                    .push_back(AuthEvent::Success { user, material });
            }
            Err(failure) => {
                if self.variant.is_ms()
                    && self.retries_left > 0
                    && matches!(failure, AuthFailure::BadCredentials(_))
                {
                    // MS-CHAP retry: a Failure with R=1 and a new challenge; the peer answers
                    // with a Response whose Identifier is one more than the Failure's.
                    self.retries_left -= 1;
                    rng.fill(&mut self.challenge);
                    let f = Failure {
                        error: mschap::ERROR_AUTHENTICATION_FAILURE,
                        retry: true,
                        challenge: Some(self.challenge().to_vec()),
                        version: (self.variant == ChapVariant::MsChapV2).then_some(3),
                        message: b"Authentication failure, retry".to_vec(),
                    };
                    self.out.tx.push_back(chap_packet(
                        id,
                        ChapMessage::Failure {
                            message: &f.to_message(),
                        },
                    ));
                    self.id = id.wrapping_add(1);
                    self.awaiting_retry = true;
                    self.out.deadline =
                        Some(now + self.timing.restart * u32::from(self.timing.max_transmit));
                    return;
                }
                let message = if self.variant.is_ms() {
                    let mut new_challenge = [0u8; 16];
                    rng.fill(&mut new_challenge);
                    Failure {
                        error: mschap::ERROR_AUTHENTICATION_FAILURE,
                        retry: false,
                        challenge: (self.variant == ChapVariant::MsChapV2)
                            .then(|| new_challenge.to_vec()),
                        version: (self.variant == ChapVariant::MsChapV2).then_some(3),
                        message: b"Authentication failure".to_vec(),
                    }
                    .to_message()
                } else {
                    b"Authentication failure".to_vec()
                };
                self.finish(id, false, &message, failure);
            }
        }
    }

    fn finish(&mut self, id: u8, _success: bool, message: &[u8], failure: AuthFailure) {
        let reply = chap_packet(id, ChapMessage::Failure { message });
        self.out.tx.push_back(reply.clone());
        self.done = Some((id, reply));
        self.out.deadline = None;
        self.out.events.push_back(AuthEvent::Failure(failure));
    }

    /// Checks a Response value; on success returns the key material and Success message.
    fn verify(
        &self,
        value: &[u8],
        user: &[u8],
        store: &dyn CredentialStore,
    ) -> Result<(AuthMaterial, Vec<u8>), AuthFailure> {
        let name = user_text(user);
        let secret = store
            .lookup(user)
            .ok_or_else(|| AuthFailure::UnknownUser(name.clone()))?;
        let bad = || AuthFailure::BadCredentials(name.clone());
        match self.variant {
            ChapVariant::Md5 => {
                let Secret::Password(pw) = &secret else {
                    return Err(AuthFailure::NeedCleartext(name));
                };
                let expected = md5_response(self.id, pw, self.challenge());
                if ct_eq(value, &expected) {
                    Ok((AuthMaterial::None, b"Welcome".to_vec()))
                } else {
                    Err(bad())
                }
            }
            ChapVariant::MsChapV1 => {
                let r = MsChapV1Response::parse(value).map_err(|_| bad())?;
                let mut challenge = [0u8; 8];
                challenge.copy_from_slice(self.challenge.get(..8).unwrap_or(&[0; 8]));
                let nt_hash = secret.nt_hash();
                let ok = if r.use_nt == 1 {
                    let expected = mschap::nt_challenge_response(&challenge, &nt_hash);
                    ct_eq(&r.nt_response, &expected)
                } else if !self.allow_lm {
                    return Err(AuthFailure::LmRefused(name));
                } else {
                    let Secret::Password(pw) = &secret else {
                        return Err(AuthFailure::NeedCleartext(name));
                    };
                    let expected = mschap::lm_challenge_response(&challenge, pw);
                    ct_eq(&r.lm_response, &expected)
                };
                if !ok {
                    return Err(bad());
                }
                Ok((
                    AuthMaterial::MsChapV1 {
                        password_hash_hash: mschap::hash_nt_password_hash(&nt_hash),
                        challenge,
                        nt_response: r.nt_response,
                        lm_password_hash: secret.password().map(mschap::lm_password_hash),
                    },
                    Vec::new(),
                ))
            }
            ChapVariant::MsChapV2 => {
                let r = MsChapV2Response::parse(value).map_err(|_| bad())?;
                let nt_hash = secret.nt_hash();
                let expected = mschap::generate_nt_response(
                    &self.challenge,
                    &r.peer_challenge,
                    user,
                    &nt_hash,
                );
                if !ct_eq(&r.nt_response, &expected) {
                    return Err(bad());
                }
                let auth = mschap::generate_authenticator_response(
                    &nt_hash,
                    &r.nt_response,
                    &r.peer_challenge,
                    &self.challenge,
                    user,
                );
                let mut msg = mschap::authenticator_response_string(&auth).into_bytes();
                msg.extend_from_slice(b" M=Access granted");
                Ok((
                    AuthMaterial::MsChapV2 {
                        password_hash_hash: mschap::hash_nt_password_hash(&nt_hash),
                        nt_response: r.nt_response,
                    },
                    msg,
                ))
            }
        }
    }

    /// The Challenge retransmission timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.out.expired(now) || self.done.is_some() {
            return;
        }
        if self.awaiting_retry || self.sent >= self.timing.max_transmit {
            self.out.deadline = None;
            self.done = Some((self.id.wrapping_sub(1), Vec::new()));
            self.out
                .events
                .push_back(AuthEvent::Failure(AuthFailure::Timeout(self.sent)));
        } else {
            self.send_challenge(now);
        }
    }

    /// Queued packets and events.
    pub fn outbox(&mut self) -> &mut Outbox {
        &mut self.out
    }

    /// When the timer fires next.
    pub fn deadline(&self) -> Option<Instant> {
        self.out.deadline
    }
}

/// Identifier, authenticator challenge, our peer challenge and NT-Response of a Response.
type LastResponse = (u8, [u8; 16], [u8; 16], [u8; 24]);

/// The peer side: answers Challenges, checks the verdict (and, for MS-CHAPv2, the
/// authenticator's "S=" response).
#[derive(Debug)]
pub struct ChapPeer {
    variant: ChapVariant,
    creds: ClientCredentials,
    out: Outbox,
    /// The last Response: identifier, authenticator challenge, our peer challenge,
    /// NT-Response.
    last: Option<LastResponse>,
    /// The last Response packet, retransmitted until a verdict arrives.
    last_packet: Vec<u8>,
    sent: u8,
    done: bool,
    /// MS-CHAP "R=1" retries still allowed.
    retries_left: u8,
}

impl ChapPeer {
    /// Waits for the authenticator's Challenge.
    pub fn new(now: Instant, variant: ChapVariant, creds: ClientCredentials) -> Self {
        let out = Outbox {
            deadline: Some(now + creds.timing.restart * u32::from(creds.timing.max_transmit)),
            ..Outbox::default()
        };
        ChapPeer {
            variant,
            retries_left: creds.retries,
            creds,
            out,
            last: None,
            last_packet: Vec::new(),
            sent: 0,
            done: false,
        }
    }

    /// Handles one CHAP packet.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8], rng: &mut ChallengeRng) {
        if self.done {
            return;
        }
        let Ok(repr) = ChapRepr::parse(packet) else {
            self.out.malformed += 1;
            return;
        };
        let id = repr.identifier;
        match repr.message {
            ChapMessage::Challenge { value, .. } => self.respond(now, id, value, rng),
            ChapMessage::Success { message } => {
                let Some((last_id, auth_challenge, peer_challenge, nt_response)) = self.last else {
                    return;
                };
                if id != last_id {
                    return;
                }
                let nt_hash = self.creds.secret.nt_hash();
                let material = match self.variant {
                    ChapVariant::Md5 => AuthMaterial::None,
                    ChapVariant::MsChapV1 => {
                        let mut challenge = [0u8; 8];
                        challenge.copy_from_slice(auth_challenge.get(..8).unwrap_or(&[0; 8]));
                        AuthMaterial::MsChapV1 {
                            password_hash_hash: mschap::hash_nt_password_hash(&nt_hash),
                            challenge,
                            nt_response,
                            lm_password_hash: self
                                .creds
                                .secret
                                .password()
                                .map(mschap::lm_password_hash),
                        }
                    }
                    ChapVariant::MsChapV2 => {
                        // RFC 2759 section 5: the peer "MUST" verify the authenticator
                        // response and end the connection if it is wrong.
                        let expected = mschap::generate_authenticator_response(
                            &nt_hash,
                            &nt_response,
                            &peer_challenge,
                            &auth_challenge,
                            &self.creds.user,
                        );
                        let got = mschap::parse_success_message(message);
                        if !got.is_some_and(|g| ct_eq(&g, &expected)) {
                            self.end(AuthEvent::Failure(AuthFailure::ServerNotAuthenticated));
                            return;
                        }
                        AuthMaterial::MsChapV2 {
                            password_hash_hash: mschap::hash_nt_password_hash(&nt_hash),
                            nt_response,
                        }
                    }
                };
                self.end(AuthEvent::Success {
                    user: self.creds.user.clone(),
                    material,
                });
            }
            ChapMessage::Failure { message } => {
                if self.last.map(|l| l.0) != Some(id) {
                    return;
                }
                let parsed = mschap::Failure::parse(message).filter(|_| self.variant.is_ms());
                if let Some(f) = &parsed {
                    // RFC 2759 section 6: with "R=1" the peer may retry: "the peer sends a
                    // new Response packet with an Identifier one greater than the Failure
                    // packet" over the new challenge given as "C=".
                    let challenge = f
                        .challenge
                        .as_deref()
                        .filter(|c| c.len() == self.variant.challenge_len());
                    if let (true, true, Some(c)) = (f.retry, self.retries_left > 0, challenge) {
                        self.retries_left -= 1;
                        let c = c.to_vec();
                        self.respond(now, id.wrapping_add(1), &c, rng);
                        return;
                    }
                }
                let text = match parsed {
                    Some(f) => format!(
                        "E={} R={} {}",
                        f.error,
                        u8::from(f.retry),
                        String::from_utf8_lossy(&f.message)
                    ),
                    None => user_text(message),
                };
                self.end(AuthEvent::Failure(AuthFailure::Rejected(text)));
            }
            ChapMessage::Response { .. } => {}
        }
    }

    fn respond(&mut self, now: Instant, id: u8, challenge: &[u8], rng: &mut ChallengeRng) {
        if challenge.len() != self.variant.challenge_len() && self.variant.is_ms() {
            self.out.malformed += 1;
            return;
        }
        let mut auth_challenge = [0u8; 16];
        for (d, s) in auth_challenge.iter_mut().zip(challenge) {
            *d = *s;
        }
        let nt_hash = self.creds.secret.nt_hash();
        let (value, peer_challenge, nt_response): (Vec<u8>, [u8; 16], [u8; 24]) = match self.variant
        {
            ChapVariant::Md5 => {
                let pw = self.creds.secret.password().unwrap_or_default();
                (md5_response(id, pw, challenge).to_vec(), [0; 16], [0; 24])
            }
            ChapVariant::MsChapV1 => {
                let mut c = [0u8; 8];
                c.copy_from_slice(auth_challenge.get(..8).unwrap_or(&[0; 8]));
                let nt = mschap::nt_challenge_response(&c, &nt_hash);
                let r = MsChapV1Response {
                    lm_response: [0; 24],
                    nt_response: nt,
                    use_nt: 1,
                };
                (r.to_bytes().to_vec(), [0; 16], nt)
            }
            ChapVariant::MsChapV2 => {
                let peer_challenge: [u8; 16] = rng.array();
                let nt = mschap::generate_nt_response(
                    &auth_challenge,
                    &peer_challenge,
                    &self.creds.user,
                    &nt_hash,
                );
                let r = MsChapV2Response {
                    peer_challenge,
                    reserved: [0; 8],
                    nt_response: nt,
                    flags: 0,
                };
                (r.to_bytes().to_vec(), peer_challenge, nt)
            }
        };
        let packet = chap_packet(
            id,
            ChapMessage::Response {
                value: &value,
                name: &self.creds.user,
            },
        );
        self.out.tx.push_back(packet.clone());
        self.last_packet = packet;
        self.sent = 1;
        self.last = Some((id, auth_challenge, peer_challenge, nt_response));
        // The Response is repeated on the restart timer until a verdict arrives: a lost
        // Success or Failure is then sent again by the authenticator (RFC 1994 4.2).
        self.out.deadline = Some(now + self.creds.timing.restart);
    }

    fn end(&mut self, ev: AuthEvent) {
        self.done = true;
        self.out.deadline = None;
        self.out.events.push_back(ev);
    }

    /// The wait timer: repeats the Response, or gives up.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.out.expired(now) || self.done {
            return;
        }
        let max = self.creds.timing.max_transmit;
        if self.last.is_some() && self.sent < max {
            self.sent += 1;
            self.out.tx.push_back(self.last_packet.clone());
            self.out.deadline = Some(now + self.creds.timing.restart);
        } else {
            self.end(AuthEvent::Failure(AuthFailure::Timeout(max)));
        }
    }

    /// Queued packets and events.
    pub fn outbox(&mut self) -> &mut Outbox {
        &mut self.out
    }

    /// When the timer fires next.
    pub fn deadline(&self) -> Option<Instant> {
        self.out.deadline
    }
}

#[cfg(test)]
mod test {
    use super::super::StaticCredentials;
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Vectors computed independently (Python hashlib: md5(id || secret || challenge)).
    #[test]
    fn md5_response_vectors() {
        let challenge: Vec<u8> = (0..16).collect();
        assert_eq!(
            md5_response(0x11, b"secret", &challenge).to_vec(),
            hex("cd1b856dfb6d46be6eb05a300602d339")
        );
        assert_eq!(
            md5_response(
                0x01,
                b"Passw0rd!",
                &hex("00112233445566778899aabbccddeeff0102")
            )
            .to_vec(),
            hex("256bc76e77fcf132a008f5e2003f282f")
        );
    }

    /// Runs one exchange; `tamper` may rewrite each packet from the authenticator.
    fn run(
        variant: ChapVariant,
        store_pw: &str,
        client_pw: &str,
        policy: AuthenticatorPolicy,
        tamper: impl Fn(&mut Vec<u8>),
    ) -> (AuthEvent, AuthEvent) {
        let now = Instant::now();
        let store = StaticCredentials::new().with_password("alice", store_pw);
        let mut rng = ChallengeRng::from_seed([1; 32]);
        let mut a = ChapAuthenticator::new(now, variant, &policy, &mut rng);
        let mut p = ChapPeer::new(now, variant, ClientCredentials::new("alice", client_pw));
        for _ in 0..10 {
            while let Some(mut pkt) = a.outbox().tx.pop_front() {
                tamper(&mut pkt);
                p.handle_packet(now, &pkt, &mut rng);
            }
            while let Some(pkt) = p.outbox().tx.pop_front() {
                a.handle_packet(now, &pkt, &store, &mut rng);
            }
        }
        (
            a.outbox().events.pop_front().unwrap(),
            p.outbox().events.pop_front().unwrap(),
        )
    }

    #[test]
    fn every_variant_succeeds_and_fails() {
        for v in [
            ChapVariant::Md5,
            ChapVariant::MsChapV1,
            ChapVariant::MsChapV2,
        ] {
            let (a, p) = run(v, "pw", "pw", AuthenticatorPolicy::default(), |_| {});
            assert!(matches!(a, AuthEvent::Success { .. }), "{v:?} {a:?}");
            assert!(matches!(p, AuthEvent::Success { .. }), "{v:?} {p:?}");
            if let (
                AuthEvent::Success { material: ma, .. },
                AuthEvent::Success { material: mp, .. },
            ) = (&a, &p)
            {
                assert_eq!(ma, mp, "{v:?}: both ends hold the same MPPE material");
            }
            let (a, p) = run(v, "pw", "bad", AuthenticatorPolicy::default(), |_| {});
            assert_eq!(
                a,
                AuthEvent::Failure(AuthFailure::BadCredentials("alice".into()))
            );
            assert!(
                matches!(p, AuthEvent::Failure(AuthFailure::Rejected(_))),
                "{p:?}"
            );
        }
    }

    #[test]
    fn mschapv2_failure_message_format() {
        let now = Instant::now();
        let store = StaticCredentials::new().with_password("alice", "pw");
        let mut rng = ChallengeRng::from_seed([2; 32]);
        let policy = AuthenticatorPolicy::default();
        let mut a = ChapAuthenticator::new(now, ChapVariant::MsChapV2, &policy, &mut rng);
        let mut p = ChapPeer::new(
            now,
            ChapVariant::MsChapV2,
            ClientCredentials::new("alice", "no"),
        );
        let ch = a.outbox().tx.pop_front().unwrap();
        p.handle_packet(now, &ch, &mut rng);
        let resp = p.outbox().tx.pop_front().unwrap();
        a.handle_packet(now, &resp, &store, &mut rng);
        let fail = a.outbox().tx.pop_front().unwrap();
        assert_eq!(fail[0], 4);
        assert_eq!(fail[1], resp[1]);
        let text = &fail[4..];
        assert!(
            text.starts_with(b"E=691 R=0 C="),
            "{}",
            String::from_utf8_lossy(text)
        );
        let f = Failure::parse(text).unwrap();
        assert_eq!(f.challenge.map(|c| c.len()), Some(16));
        assert_eq!(f.version, Some(3));
        // The peer's repeated Response gets the same verdict again.
        a.handle_packet(now, &resp, &store, &mut rng);
        assert_eq!(a.outbox().tx.pop_front(), Some(fail));
    }

    #[test]
    fn mschapv2_retry_with_r1() {
        let now = Instant::now();
        let store = StaticCredentials::new().with_password("alice", "pw");
        let mut rng = ChallengeRng::from_seed([3; 32]);
        let policy = AuthenticatorPolicy {
            retries: 1,
            ..AuthenticatorPolicy::default()
        };
        let mut a = ChapAuthenticator::new(now, ChapVariant::MsChapV2, &policy, &mut rng);
        let mut p = ChapPeer::new(
            now,
            ChapVariant::MsChapV2,
            ClientCredentials::new("alice", "no"),
        );
        let ch = a.outbox().tx.pop_front().unwrap();
        p.handle_packet(now, &ch, &mut rng);
        let resp = p.outbox().tx.pop_front().unwrap();
        a.handle_packet(now, &resp, &store, &mut rng);
        let fail = a.outbox().tx.pop_front().unwrap();
        let f = Failure::parse(&fail[4..]).unwrap();
        assert!(f.retry);
        assert!(a.outbox().events.is_empty());
        // The retry: a Response with Identifier + 1 on the new challenge, right password.
        let mut good = ChapPeer::new(
            now,
            ChapVariant::MsChapV2,
            ClientCredentials::new("alice", "pw"),
        );
        let new_challenge = chap_packet(
            resp[1].wrapping_add(1),
            ChapMessage::Challenge {
                value: f.challenge.as_deref().unwrap(),
                name: b"x",
            },
        );
        good.handle_packet(now, &new_challenge, &mut rng);
        let retry = good.outbox().tx.pop_front().unwrap();
        a.handle_packet(now, &retry, &store, &mut rng);
        assert!(matches!(
            a.outbox().events.pop_front(),
            Some(AuthEvent::Success { .. })
        ));
        let success = a.outbox().tx.pop_front().unwrap();
        good.handle_packet(now, &success, &mut rng);
        assert!(matches!(
            good.outbox().events.pop_front(),
            Some(AuthEvent::Success { .. })
        ));
    }

    #[test]
    fn mschapv2_peer_detects_forged_success() {
        let (a, p) = run(
            ChapVariant::MsChapV2,
            "pw",
            "pw",
            AuthenticatorPolicy::default(),
            |pkt| {
                if pkt[0] == 3 {
                    // Flip one hex digit of "S=...".
                    pkt[6] = if pkt[6] == b'0' { b'1' } else { b'0' };
                }
            },
        );
        assert!(matches!(a, AuthEvent::Success { .. }));
        assert_eq!(p, AuthEvent::Failure(AuthFailure::ServerNotAuthenticated));
    }

    #[test]
    fn change_password_is_refused_cleanly() {
        let now = Instant::now();
        let store = StaticCredentials::new().with_password("alice", "pw");
        let mut rng = ChallengeRng::from_seed([4; 32]);
        let policy = AuthenticatorPolicy::default();
        let mut a = ChapAuthenticator::new(now, ChapVariant::MsChapV2, &policy, &mut rng);
        let ch = a.outbox().tx.pop_front().unwrap();
        // RFC 2759 Change-Password: code 7, 582 octets of encrypted data (zeros here).
        let mut cp = vec![7, ch[1], 0, 0];
        cp.extend(std::iter::repeat(0).take(582));
        let len = cp.len() as u16;
        cp[2..4].copy_from_slice(&len.to_be_bytes());
        a.handle_packet(now, &cp, &store, &mut rng);
        let fail = a.outbox().tx.pop_front().unwrap();
        assert_eq!(fail[0], 4);
        assert!(fail[4..].starts_with(b"E=709 R=0"));
        assert_eq!(
            a.outbox().events.pop_front(),
            Some(AuthEvent::Failure(AuthFailure::ChangePasswordUnsupported))
        );
    }

    #[test]
    fn mschapv1_lm_only_response_follows_policy() {
        let now = Instant::now();
        let store = StaticCredentials::new().with_password("alice", "MyPw");
        for allow in [false, true] {
            let mut rng = ChallengeRng::from_seed([5; 32]);
            let policy = AuthenticatorPolicy {
                allow_lm_response: allow,
                ..AuthenticatorPolicy::default()
            };
            let mut a = ChapAuthenticator::new(now, ChapVariant::MsChapV1, &policy, &mut rng);
            let ch = a.outbox().tx.pop_front().unwrap();
            let ChapMessage::Challenge { value, .. } = ChapRepr::parse(&ch).unwrap().message else {
                panic!()
            };
            let c: [u8; 8] = value.try_into().unwrap();
            // A Windows 95 style response: LM only, use_nt = 0.
            let r = MsChapV1Response {
                lm_response: mschap::lm_challenge_response(&c, b"MyPw"),
                nt_response: [0; 24],
                use_nt: 0,
            };
            let resp = chap_packet(
                ch[1],
                ChapMessage::Response {
                    value: &r.to_bytes(),
                    name: b"alice",
                },
            );
            a.handle_packet(now, &resp, &store, &mut rng);
            let ev = a.outbox().events.pop_front().unwrap();
            if allow {
                assert!(matches!(ev, AuthEvent::Success { .. }), "{ev:?}");
            } else {
                assert_eq!(
                    ev,
                    AuthEvent::Failure(AuthFailure::LmRefused("alice".into()))
                );
            }
        }
    }

    #[test]
    fn challenge_retransmits_with_new_identifier_then_times_out() {
        let mut now = Instant::now();
        let mut rng = ChallengeRng::from_seed([6; 32]);
        let policy = AuthenticatorPolicy::default();
        let mut a = ChapAuthenticator::new(now, ChapVariant::Md5, &policy, &mut rng);
        let mut ids = Vec::new();
        while let Some(d) = a.outbox().deadline {
            ids.extend(a.outbox().tx.drain(..).map(|p| p[1]));
            now = d;
            a.handle_timeout(now);
        }
        assert_eq!(ids.len(), 10);
        ids.dedup();
        assert_eq!(ids.len(), 10);
        assert_eq!(
            a.outbox().events.pop_front(),
            Some(AuthEvent::Failure(AuthFailure::Timeout(10)))
        );
    }

    #[test]
    fn stale_response_identifier_is_ignored() {
        let now = Instant::now();
        let store = StaticCredentials::new().with_password("alice", "pw");
        let mut rng = ChallengeRng::from_seed([7; 32]);
        let policy = AuthenticatorPolicy::default();
        let mut a = ChapAuthenticator::new(now, ChapVariant::Md5, &policy, &mut rng);
        let ch = a.outbox().tx.pop_front().unwrap();
        let value = md5_response(ch[1].wrapping_sub(1), b"pw", &ch[5..21]);
        let resp = chap_packet(
            ch[1].wrapping_sub(1),
            ChapMessage::Response {
                value: &value,
                name: b"alice",
            },
        );
        a.handle_packet(now, &resp, &store, &mut rng);
        assert!(a.outbox().tx.is_empty() && a.outbox().events.is_empty());
    }
}
