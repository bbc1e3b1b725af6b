//! PAP (RFC 1334 section 2): both roles.
//!
//! The peer repeats Authenticate-Request on the restart timer until an Ack or Nak; the
//! authenticator answers each request and repeats its answer to a retransmitted one.

use std::time::Instant;

use super::{
    ct_eq, user_text, AuthEvent, AuthFailure, AuthMaterial, AuthTiming, AuthenticatorPolicy,
    ClientCredentials, CredentialStore, Outbox, Secret,
};
use crate::ppp::packet::{PapMessage, PapRepr};

/// The authenticator side of PAP.
#[derive(Debug)]
pub struct PapAuthenticator {
    timing: AuthTiming,
    out: Outbox,
    /// The answer given, to repeat for a retransmitted request (identifier, packet).
    answered: Option<(u8, Vec<u8>)>,
}

impl PapAuthenticator {
    /// Starts waiting for the peer's Authenticate-Request.
    pub fn new(now: Instant, policy: &AuthenticatorPolicy) -> Self {
        let timing = policy.timing;
        // RFC 1334: the authenticator "SHOULD" bound the wait; we allow the peer as many
        // restart periods as it may transmit.
        let out = Outbox {
            deadline: Some(now + timing.restart * u32::from(timing.max_transmit)),
            ..Outbox::default()
        };
        PapAuthenticator {
            timing,
            out,
            answered: None,
        }
    }

    /// Handles one PAP packet.
    pub fn handle_packet(&mut self, _now: Instant, packet: &[u8], store: &dyn CredentialStore) {
        let Ok(repr) = PapRepr::parse(packet) else {
            self.out.malformed += 1;
            return;
        };
        let PapMessage::AuthenticateRequest { peer_id, password } = repr.message else {
            return;
        };
        if let Some((id, reply)) = &self.answered {
            // A retransmission of the request we answered: answer again.
            if *id == repr.identifier {
                let reply = reply.clone();
                self.out.tx.push_back(reply);
                return;
            }
        }
        let ok = match store.lookup(peer_id) {
            None => Err(AuthFailure::UnknownUser(user_text(peer_id))),
            Some(Secret::NtHash(_)) => Err(AuthFailure::NeedCleartext(user_text(peer_id))),
            Some(Secret::Password(p)) if ct_eq(&p, password) => Ok(()),
            Some(Secret::Password(_)) => Err(AuthFailure::BadCredentials(user_text(peer_id))),
        };
        let (message, event): (&[u8], _) = match ok {
            Ok(()) => (
                b"Login ok",
                AuthEvent::Success {
                    user: peer_id.to_vec(),
                    material: AuthMaterial::None,
                },
            ),
            Err(f) => (b"Login incorrect", AuthEvent::Failure(f)),
        };
        let msg = if matches!(event, AuthEvent::Success { .. }) {
            PapMessage::AuthenticateAck { message }
        } else {
            PapMessage::AuthenticateNak { message }
        };
        let reply = PapRepr {
            identifier: repr.identifier,
            message: msg,
        }
        .to_vec()
        .unwrap_or_default();
        self.out.tx.push_back(reply.clone());
        self.out.deadline = None;
        // A peer whose answer was lost retransmits with a new identifier (RFC 1334 requires a
        // new one); it gets a fresh verdict, but the outcome is reported only once.
        if self.answered.is_none() {
            self.out.events.push_back(event);
        }
        self.answered = Some((repr.identifier, reply));
    }

    /// The overall wait timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.out.expired(now) && self.answered.is_none() {
            self.out.deadline = None;
            self.out
                .events
                .push_back(AuthEvent::Failure(AuthFailure::Timeout(
                    self.timing.max_transmit,
                )));
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

/// The peer side of PAP.
#[derive(Debug)]
pub struct PapPeer {
    creds: ClientCredentials,
    out: Outbox,
    id: u8,
    sent: u8,
    done: bool,
}

impl PapPeer {
    /// Sends the first Authenticate-Request.
    pub fn new(now: Instant, creds: ClientCredentials, first_id: u8) -> Self {
        let mut p = PapPeer {
            creds,
            out: Outbox::default(),
            id: first_id,
            sent: 0,
            done: false,
        };
        p.send(now);
        p
    }

    fn send(&mut self, now: Instant) {
        // RFC 1334 2.2.1: "The Identifier field MUST be changed each time a
        // Authenticate-Request packet is issued."
        self.id = self.id.wrapping_add(1);
        self.sent = self.sent.saturating_add(1);
        let password = self.creds.secret.password().unwrap_or_default();
        let packet = PapRepr {
            identifier: self.id,
            message: PapMessage::AuthenticateRequest {
                peer_id: &self.creds.user,
                password,
            },
        }
        .to_vec()
        .unwrap_or_default();
        self.out.tx.push_back(packet);
        self.out.deadline = Some(now + self.creds.timing.restart);
    }

    /// Handles one PAP packet.
    pub fn handle_packet(&mut self, _now: Instant, packet: &[u8]) {
        let Ok(repr) = PapRepr::parse(packet) else {
            self.out.malformed += 1;
            return;
        };
        // An answer must carry the identifier of our latest request.
        if self.done || repr.identifier != self.id {
            return;
        }
        let event = match repr.message {
            PapMessage::AuthenticateAck { .. } => AuthEvent::Success {
                user: self.creds.user.clone(),
                material: AuthMaterial::None,
            },
            PapMessage::AuthenticateNak { message } => {
                AuthEvent::Failure(AuthFailure::Rejected(user_text(message)))
            }
            PapMessage::AuthenticateRequest { .. } => return,
        };
        self.done = true;
        self.out.deadline = None;
        self.out.events.push_back(event);
    }

    /// The retransmission timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.out.expired(now) || self.done {
            return;
        }
        if self.sent >= self.creds.timing.max_transmit {
            self.done = true;
            self.out.deadline = None;
            self.out
                .events
                .push_back(AuthEvent::Failure(AuthFailure::Timeout(self.sent)));
        } else {
            self.send(now);
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

    #[test]
    fn pap_success_failure_and_retransmission() {
        let now = Instant::now();
        let store = StaticCredentials::new().with_password("alice", "secret");
        let policy = AuthenticatorPolicy::default();
        for (pw, ok) in [("secret", true), ("wrong", false)] {
            let mut a = PapAuthenticator::new(now, &policy);
            let mut p = PapPeer::new(now, ClientCredentials::new("alice", pw), 0);
            let req = p.outbox().tx.pop_front().unwrap();
            // Lost answer: the peer retransmits with a new identifier.
            a.handle_packet(now, &req, &store);
            let lost = a.outbox().tx.pop_front().unwrap();
            let t = p.outbox().deadline.unwrap();
            p.handle_timeout(t);
            let req2 = p.outbox().tx.pop_front().unwrap();
            assert_ne!(req[1], req2[1]);
            // An answer for the old identifier is ignored by the peer.
            p.handle_packet(t, &lost);
            assert!(p.outbox().events.is_empty());
            a.handle_packet(t, &req2, &store);
            let again = a.outbox().tx.pop_front().unwrap();
            assert_eq!(again[1], req2[1]);
            p.handle_packet(t, &again);
            let ev = p.outbox().events.pop_front().unwrap();
            assert_eq!(matches!(ev, AuthEvent::Success { .. }), ok);
            let aev = a.outbox().events.pop_front().unwrap();
            assert_eq!(matches!(aev, AuthEvent::Success { .. }), ok);
            if !ok {
                assert_eq!(
                    aev,
                    AuthEvent::Failure(AuthFailure::BadCredentials("alice".into()))
                );
            }
        }
    }

    #[test]
    fn pap_peer_times_out() {
        let mut now = Instant::now();
        let mut p = PapPeer::new(now, ClientCredentials::new("bob", "x"), 7);
        let mut sent = 0;
        while let Some(d) = p.outbox().deadline {
            sent += p.outbox().tx.drain(..).count();
            now = d;
            p.handle_timeout(now);
        }
        assert_eq!(sent, 10);
        assert_eq!(
            p.outbox().events.pop_front(),
            Some(AuthEvent::Failure(AuthFailure::Timeout(10)))
        );
    }
}
