//! Known packets from outside this project, fed to the engine's parts (facts, not code).
//!
//! Every byte string below comes from a public capture, a published packet trace or an RFC;
//! the source is named above each one and listed in `tests/fixtures/ppp/SOURCES.md`. Where
//! the source is a pppd `debug` log (`sent [LCP ConfReq id=0x1 <asyncmap 0x0> ...]`), the
//! bytes are the packet that line describes: pppd prints every option in packet order with
//! its full value, so the packet is fully determined; nothing is left to guess except where
//! the comment says so. Tests check that our parsers decode the bytes to the fields the
//! source shows and that our engine, in the right role, answers them as the RFCs ask (and,
//! where the source also shows pppd's or a router's answer, that ours is byte-identical or
//! the difference is explained).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use pptp_nas::ppp::auth::chap::{md5_response, ChapAuthenticator, ChapVariant};
use pptp_nas::ppp::auth::{
    mschap, AuthEvent, AuthFailure, AuthenticatorPolicy, ClientCredentials, StaticCredentials,
};
use pptp_nas::ppp::ccp::{CcpConfig, CcpFailure, CcpNegotiator, MppeMode, Stateless};
use pptp_nas::ppp::engine::{DownReason, Engine, Event, Phase, Policy};
use pptp_nas::ppp::fsm::{Fsm, FsmConfig};
use pptp_nas::ppp::ipcp::{IpcpConfig, IpcpNegotiator};
use pptp_nas::ppp::lcp::AuthMethod;
use pptp_nas::ppp::packet::{ChapMessage, ChapRepr, FrameRepr, MsChapV2Response, Protocol};

/// Hex with any whitespace in it.
fn h(s: &str) -> Vec<u8> {
    let d: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    d.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}

/// A full frame (address/control, protocol) around a control packet.
fn frame(protocol: u16, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff, 0x03];
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(packet);
    f
}

/// The control packets of `protocol` an engine has queued.
fn sent(e: &mut Engine, protocol: Protocol) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(f) = e.poll_transmit() {
        let r = FrameRepr::parse(&f).unwrap();
        if r.protocol == protocol {
            out.push(r.payload.to_vec());
        }
    }
    out
}

fn events(e: &mut Engine) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn link_down(ev: &[Event]) -> Option<DownReason> {
    ev.iter().find_map(|e| match e {
        Event::LinkDown(r) => Some(r.clone()),
        _ => None,
    })
}

const LCP: u16 = 0xc021;
const CHAP: u16 = 0xc223;

// ---- Source A: linux-kernel mailing list, Alexander Gran, "pppoe broken in 2.6.9-rc2-mm1,
// working in 2.6.7-mm1 and 2.6.7-rc3", 8 Oct 2004: `tcpdump -x` of a PPPoE session between
// Linux pppd (client) and a Juniper ERX access concentrator ("AACX11-erx", Deutsche
// Telekom). Bytes start at the PPP protocol field.

/// pppd's LCP Configure-Request: Magic-Number 0x0024067c, PFC.
const A_PPPD_LCP_REQ: &str = "c021 0101 000c 0506 0024 067c 0702";
/// The ERX's LCP Configure-Request: MRU 1492, Authentication-Protocol PAP, Magic 0x718234ae.
const A_ERX_LCP_REQ: &str = "c021 0160 0012 0104 05d4 0304 c023 0506 7182 34ae";
/// pppd's Configure-Ack of it.
const A_PPPD_LCP_ACK: &str = "c021 0260 0012 0104 05d4 0304 c023 0506 7182 34ae";
/// The ERX's Configure-Ack of pppd's request.
const A_ERX_LCP_ACK: &str = "c021 0201 000c 0506 0024 067c 0702";
/// pppd's Echo-Request (its magic number as data) and the ERX's Echo-Reply.
const A_PPPD_ECHO_REQ: &str = "c021 0900 0008 0024 067c";
const A_ERX_ECHO_REP: &str = "c021 0a00 0008 7182 34ae";
/// pppd's CCP Configure-Request: Deflate (26) window 15, Deflate draft (24), BSD-Compress.
const A_PPPD_CCP_REQ: &str = "80fd 0101 000f 1a04 7800 1804 7800 1503 2f";

/// Strips the protocol field of a source-A frame.
fn a(s: &str) -> Vec<u8> {
    h(s)[2..].to_vec()
}

fn server_policy(methods: &[AuthMethod]) -> Policy {
    Policy::server(
        methods.to_vec(),
        IpcpConfig {
            local: Some(Ipv4Addr::new(10, 0, 0, 1)),
            assign_peer: Some(Ipv4Addr::new(10, 0, 0, 2)),
            dns: [None, None],
            request_dns: false,
        },
    )
}

fn server_engine(methods: &[AuthMethod]) -> Engine {
    let store = Arc::new(StaticCredentials::new().with_password("User", "clientPass"));
    Engine::new(Arc::new(server_policy(methods)), Some(store), [7; 32])
}

fn client_engine(user: &str, password: &str, accept: &[AuthMethod]) -> Engine {
    let mut p = Policy::client(ClientCredentials::new(user, password));
    p.lcp.accept_auth = accept.to_vec();
    Engine::new(Arc::new(p), None, [9; 32])
}

#[test]
fn a_lcp_packets_decode_to_the_fields_tcpdump_showed() {
    use pptp_nas::ppp::packet::{LcpOption, Options};
    let req = a(A_ERX_LCP_REQ);
    let (code, id, len) = (req[0], req[1], u16::from_be_bytes([req[2], req[3]]));
    assert_eq!((code, id, len), (1, 0x60, 18));
    let opts: Vec<LcpOption> = Options::parse(&req[4..])
        .unwrap()
        .iter()
        .map(|o| LcpOption::parse(o).unwrap())
        .collect();
    assert_eq!(
        opts,
        [
            LcpOption::Mru(1492),
            LcpOption::AuthProtocol {
                protocol: Protocol::Pap,
                data: &[]
            },
            LcpOption::MagicNumber(0x7182_34ae),
        ]
    );
    let req = a(A_PPPD_LCP_REQ);
    let opts: Vec<LcpOption> = Options::parse(&req[4..])
        .unwrap()
        .iter()
        .map(|o| LcpOption::parse(o).unwrap())
        .collect();
    assert_eq!(
        opts,
        [
            LcpOption::MagicNumber(0x0024_067c),
            LcpOption::ProtocolFieldCompression
        ]
    );
}

/// Our client in pppd's place: the ERX's request (PAP, MRU 1492) is acked byte for byte as
/// pppd acked it; a client that does not accept PAP Naks it with MS-CHAPv2 instead.
#[test]
fn a_client_acks_the_erx_request_exactly_as_pppd_did() {
    let now = Instant::now();
    let mut c = client_engine("u", "p", &[AuthMethod::MsChapV2, AuthMethod::Pap]);
    c.open(now);
    let _ours = sent(&mut c, Protocol::Lcp);
    let _ = c.handle_frame(now, &frame(LCP, &a(A_ERX_LCP_REQ)));
    assert_eq!(sent(&mut c, Protocol::Lcp), [a(A_PPPD_LCP_ACK)]);

    // RFC 1661 6.3: an unacceptable Authentication-Protocol is Naked with one we prefer.
    let mut c = client_engine("u", "p", &[AuthMethod::MsChapV2]);
    c.open(now);
    let _ours = sent(&mut c, Protocol::Lcp);
    let _ = c.handle_frame(now, &frame(LCP, &a(A_ERX_LCP_REQ)));
    assert_eq!(
        sent(&mut c, Protocol::Lcp),
        [h("03 60 0009 0305 c223 81")],
        "Configure-Nak id 0x60 suggesting CHAP with algorithm 0x81"
    );
}

/// Our server in the ERX's place: pppd's request is acked byte for byte as the ERX acked it;
/// then pppd's Echo-Request is answered with our magic number, and the ERX's Echo-Reply
/// with the right magic is accepted (no loopback, no failure).
#[test]
fn a_server_acks_pppd_exactly_as_the_erx_did_and_answers_its_echo() {
    let now = Instant::now();
    let mut s = server_engine(&[AuthMethod::Pap]);
    s.open(now);
    let ours = sent(&mut s, Protocol::Lcp);
    let _ = s.handle_frame(now, &frame(LCP, &a(A_PPPD_LCP_REQ)));
    assert_eq!(sent(&mut s, Protocol::Lcp), [a(A_ERX_LCP_ACK)]);
    // The peer acks our request (as pppd would): LCP opens, PAP starts.
    let mut ack = ours[0].clone();
    ack[0] = 2;
    let _ = s.handle_frame(now, &frame(LCP, &ack));
    assert_eq!(s.phase(), Phase::Authenticate);
    let _ = sent(&mut s, Protocol::Lcp);
    let _ = s.handle_frame(now, &frame(LCP, &a(A_PPPD_ECHO_REQ)));
    let reply = sent(&mut s, Protocol::Lcp);
    assert_eq!(reply.len(), 1);
    // Echo-Reply, the same Identifier, length 8, our own magic number as data.
    assert_eq!(&reply[0][..4], &h("0a 00 0008")[..]);
    assert_eq!(
        u32::from_be_bytes(reply[0][4..8].try_into().unwrap()),
        s.link().local_magic
    );
    // The ERX's Echo-Reply shape (its magic) fed to our client after LCP opened with the ERX's
    // magic: accepted silently.
    let mut c = client_engine("u", "p", &[AuthMethod::Pap]);
    c.open(now);
    let ours = sent(&mut c, Protocol::Lcp);
    let _ = c.handle_frame(now, &frame(LCP, &a(A_ERX_LCP_REQ)));
    let mut ack = ours[0].clone();
    ack[0] = 2;
    let _ = c.handle_frame(now, &frame(LCP, &ack));
    let _ = sent(&mut c, Protocol::Lcp);
    assert_eq!(c.link().peer_magic, 0x7182_34ae);
    let _ = c.handle_frame(now, &frame(LCP, &a(A_ERX_ECHO_REP)));
    assert!(sent(&mut c, Protocol::Lcp).is_empty());
    assert!(link_down(&events(&mut c)).is_none());
}

/// pppd's CCP request for Deflate/BSD-Compress reaches a PPTP server that does only MPPE:
/// the three options are Configure-Rejected with their exact bytes (as the pppd server in
/// source D did: `sent [CCP ConfRej id=0x1 <deflate 15> <deflate(old#) 15> <bsd v1 15>]`).
#[test]
fn a_pppd_deflate_ccp_request_is_rejected_with_its_exact_bytes() {
    for mode in [MppeMode::Required, MppeMode::Preferred, MppeMode::Permitted] {
        let now = Instant::now();
        let mut ccp = Fsm::new(
            CcpNegotiator::new(
                CcpConfig {
                    mppe: mode,
                    ..CcpConfig::default()
                },
                true,
            ),
            FsmConfig::default(),
        );
        ccp.up(now);
        ccp.open(now);
        let _ours = ccp.poll_transmit();
        assert!(ccp.handle_packet(now, &a(A_PPPD_CCP_REQ)).is_none());
        assert_eq!(
            ccp.poll_transmit().unwrap(),
            h("04 01 000f 1a04 7800 1804 7800 1503 2f"),
            "{mode:?}"
        );
    }
}

// ---- Source B: pppd `debug dump` log of pppd + pptp-linux calling a pptpd/pppd server
// (vpn.ipredator.se), posted to the Excito forum, "VPN PPTP with a server", 24 Jan 2010.
// The log lines, and the packets they describe:
//   rcvd [LCP ConfReq id=0x1 <asyncmap 0x0> <auth chap MS-v2> <magic 0xaa6a6ace> <pcomp> <accomp>]
//   rcvd [CHAP Challenge id=0x8e <50fc0665f2f8fe976f13c1dccd7c6a46>, name = "pptpd"]
//   sent [CHAP Response id=0x8e <fdc0f658...0500>, name = "*****"]   (the poster hid the name)
//   rcvd [CHAP Success id=0x8e "S=9660C795E4A5E87B3CF4484EC9A8E631E4B6F62D"]
//   rcvd [CCP ConfReq id=0x1 <mppe +H -M +S -L -D -C>]
//   sent [LCP ConfReq id=0x1 <asyncmap 0x0> <magic 0x973d7c38> <pcomp> <accomp>]

const B_PPTPD_LCP_REQ: &str = "01 01 0019 0206 00000000 0305 c223 81 0506 aa6a6ace 0702 0802";
const B_PPPD_LCP_REQ: &str = "01 01 0014 0206 00000000 0506 973d7c38 0702 0802";
const B_CHALLENGE: &str = "01 8e 001a 10 50fc0665f2f8fe976f13c1dccd7c6a46 7070747064";
const B_RESPONSE: &str = "02 8e 003b 31
    fdc0f65868b8b2f65d6d1f93c63447d5 0000000000000000
    963eab867b0d739935f1aacedb6f3f2b7d231607f9fb4405 00
    2a2a2a2a2a";
const B_SUCCESS_MSG: &str = "S=9660C795E4A5E87B3CF4484EC9A8E631E4B6F62D";
const B_CCP_REQ: &str = "01 01 000a 1206 01000040";

#[test]
fn b_mschapv2_packets_decode_to_the_fields_pppd_logged() {
    let c = h(B_CHALLENGE);
    let r = ChapRepr::parse(&c).unwrap();
    assert_eq!(r.identifier, 0x8e);
    let ChapMessage::Challenge { value, name } = r.message else {
        panic!("{r:?}")
    };
    assert_eq!(value, &h("50fc0665f2f8fe976f13c1dccd7c6a46")[..]);
    assert_eq!(name, b"pptpd");

    let p = h(B_RESPONSE);
    let r = ChapRepr::parse(&p).unwrap();
    let ChapMessage::Response { value, name } = r.message else {
        panic!("{r:?}")
    };
    assert_eq!(name, b"*****");
    let v = MsChapV2Response::parse(value).unwrap();
    assert_eq!(
        v.peer_challenge.to_vec(),
        h("fdc0f65868b8b2f65d6d1f93c63447d5")
    );
    assert_eq!(v.reserved, [0; 8]);
    assert_eq!(
        v.nt_response.to_vec(),
        h("963eab867b0d739935f1aacedb6f3f2b7d231607f9fb4405")
    );
    assert_eq!(v.flags, 0);

    assert_eq!(
        mschap::parse_success_message(B_SUCCESS_MSG.as_bytes()).map(|s| s.to_vec()),
        Some(h("9660C795E4A5E87B3CF4484EC9A8E631E4B6F62D"))
    );
}

/// Brings a client engine to the Authenticate phase against pptpd's real LCP request.
/// Returns the engine; checks that our Configure-Ack is the request echoed byte for byte
/// (as pppd's `sent [LCP ConfAck id=0x1 <asyncmap 0x0> <auth chap MS-v2> ...]`).
fn client_through_pptpd_lcp(now: Instant, creds: ClientCredentials) -> Engine {
    let mut c = Engine::new(Arc::new(Policy::client(creds)), None, [3; 32]);
    c.open(now);
    let ours = sent(&mut c, Protocol::Lcp);
    assert_eq!(ours.len(), 1);
    let _ = c.handle_frame(now, &frame(LCP, &h(B_PPTPD_LCP_REQ)));
    let mut ack = h(B_PPTPD_LCP_REQ);
    ack[0] = 2;
    assert_eq!(sent(&mut c, Protocol::Lcp), [ack]);
    let mut their_ack = ours[0].clone();
    their_ack[0] = 2;
    let _ = c.handle_frame(now, &frame(LCP, &their_ack));
    assert_eq!(c.phase(), Phase::Authenticate);
    let link = c.link();
    assert_eq!(link.auth_self, Some(AuthMethod::MsChapV2));
    assert_eq!(link.peer_magic, 0xaa6a_6ace);
    assert!(link.tx_pfc && link.tx_acfc);
    assert_eq!(link.tx_accm, 0);
    let _ = events(&mut c);
    c
}

/// Our client answers pptpd's real Challenge: Identifier 0x8e, a 49-octet MS-CHAPv2 value
/// laid out like pppd's (peer challenge, 8 zero octets, NT-Response, flags 0), our name, and
/// an NT-Response that RFC 2759 GenerateNTResponse recomputes over pptpd's challenge.
/// pptpd's real Success then fails mutual authentication (its S= was made for another
/// password and peer challenge), which the client must notice (RFC 2759 section 5).
#[test]
fn b_client_answers_pptpd_challenge_and_checks_its_success() {
    let now = Instant::now();
    let mut c = client_through_pptpd_lcp(now, ClientCredentials::new("alice", "s3cret"));
    let _ = c.handle_frame(now, &frame(CHAP, &h(B_CHALLENGE)));
    let resp = sent(&mut c, Protocol::Chap);
    assert_eq!(resp.len(), 1);
    let r = ChapRepr::parse(&resp[0]).unwrap();
    assert_eq!(r.identifier, 0x8e);
    let ChapMessage::Response { value, name } = r.message else {
        panic!("{r:?}")
    };
    assert_eq!(name, b"alice");
    assert_eq!(value.len(), 49);
    assert_eq!(resp[0].len(), h(B_RESPONSE).len() - 5 + 5); // same layout, 5-octet name
    let v = MsChapV2Response::parse(value).unwrap();
    assert_eq!((v.reserved, v.flags), ([0; 8], 0));
    let auth_challenge: [u8; 16] = h("50fc0665f2f8fe976f13c1dccd7c6a46").try_into().unwrap();
    let expected = mschap::generate_nt_response(
        &auth_challenge,
        &v.peer_challenge,
        b"alice",
        &mschap::nt_password_hash(b"s3cret"),
    );
    assert_eq!(v.nt_response, expected);

    let mut success = vec![3, 0x8e, 0, 46];
    success.extend_from_slice(B_SUCCESS_MSG.as_bytes());
    let _ = c.handle_frame(now, &frame(CHAP, &success));
    assert_eq!(
        link_down(&events(&mut c)).or_else(|| c.down_reason().cloned()),
        Some(DownReason::AuthFailed(AuthFailure::ServerNotAuthenticated))
    );
    assert!(
        sent(&mut c, Protocol::Lcp).iter().any(|p| p[0] == 5),
        "Terminate-Request after a forged/mismatched S="
    );
}

/// Our server with the pppd client's real request: acked byte for byte (pptpd's pppd did the
/// same: `rcvd [LCP ConfAck id=0x1 <asyncmap 0x0> <magic 0x973d7c38> <pcomp> <accomp>]`).
#[test]
fn b_server_acks_the_pppd_client_request_verbatim() {
    let now = Instant::now();
    let mut s = server_engine(&[AuthMethod::MsChapV2]);
    s.open(now);
    let ours = sent(&mut s, Protocol::Lcp);
    // Our own request demands MS-CHAPv2 exactly as pptpd's did: 03 05 c2 23 81.
    assert!(ours[0]
        .windows(5)
        .any(|w| w == h("0305 c223 81").as_slice()));
    let _ = s.handle_frame(now, &frame(LCP, &h(B_PPPD_LCP_REQ)));
    let mut ack = h(B_PPPD_LCP_REQ);
    ack[0] = 2;
    assert_eq!(sent(&mut s, Protocol::Lcp), [ack]);
}

/// CCP: pptpd's request for stateless 128-bit MPPE (0x01000040) against our policies.
#[test]
fn b_pptpd_ccp_request_against_our_policies() {
    let answer = |cfg: CcpConfig| {
        let now = Instant::now();
        let mut ccp = Fsm::new(CcpNegotiator::new(cfg, true), FsmConfig::default());
        ccp.up(now);
        ccp.open(now);
        let ours = ccp.poll_transmit().unwrap();
        let _ = ccp.handle_packet(now, &h(B_CCP_REQ));
        (ours, ccp.poll_transmit().unwrap(), ccp)
    };
    // Defaults (Preferred, every key length, stateless allowed): acked as is, like pppd's
    // `sent [CCP ConfAck id=0x1 <mppe +H -M +S -L -D -C>]`.
    let (_, reply, _) = answer(CcpConfig::default());
    assert_eq!(reply, h("02 01 000a 1206 01000040"));
    // Required, 128 only, stateless required: the same (this is pptpd's own policy).
    let (ours, reply, _) = answer(CcpConfig {
        mppe: MppeMode::Required,
        allow_40: false,
        allow_56: false,
        stateless: Stateless::Required,
        ..CcpConfig::default()
    });
    assert_eq!(reply, h("02 01 000a 1206 01000040"));
    // ...and our own request then is pptpd's request, bit for bit.
    assert_eq!(&ours[4..], &h("1206 01000040")[..]);
    // Stateful only: Nak without H (RFC 3078: the H bit is negotiated like the others).
    let (_, reply, _) = answer(CcpConfig {
        stateless: Stateless::Off,
        ..CcpConfig::default()
    });
    assert_eq!(reply, h("03 01 000a 1206 00000040"));
    // 40-bit only and required: no common key length, the link must fail with that reason.
    let (_, _reply, ccp) = answer(CcpConfig {
        mppe: MppeMode::Required,
        allow_56: false,
        allow_128: false,
        ..CcpConfig::default()
    });
    assert!(
        matches!(
            ccp.negotiator().failure(),
            Some(CcpFailure::NoCommonKeyLength { .. })
        ),
        "{:?}",
        ccp.negotiator().failure()
    );
}

/// Feeds a client engine the server's LCP requests one by one and returns our answer to
/// each; then acks our own request (as every source's server did) so LCP opens.
fn client_lcp_answers(c: &mut Engine, now: Instant, requests: &[Vec<u8>]) -> Vec<Vec<u8>> {
    c.open(now);
    let ours = sent(c, Protocol::Lcp);
    let mut answers = Vec::new();
    for r in requests {
        let _ = c.handle_frame(now, &frame(LCP, r));
        let mut a = sent(c, Protocol::Lcp);
        assert_eq!(a.len(), 1, "one answer per request");
        answers.push(a.remove(0));
    }
    let mut their_ack = ours[0].clone();
    their_ack[0] = 2;
    let _ = c.handle_frame(now, &frame(LCP, &their_ack));
    answers
}

// ---- Source E: pppd 2.4.4b1 debug log of a PPTP call to a Windows RRAS server ("CRRAS2",
// an ISP's PPTP access server), Ubuntu forums, "No internet! Plz help!", 12 Aug 2007:
//   rcvd [LCP ConfReq id=0x0 <mru 1400> <auth eap> <magic 0x3ac51c35> <pcomp> <accomp> <callback CBCP>]
//   sent [LCP ConfRej id=0x0 <callback CBCP>]
//   rcvd [LCP ConfReq id=0x1 <mru 1400> <auth eap> <magic 0x3ac51c35> <pcomp> <accomp>]
//   sent [LCP ConfNak id=0x1 <auth chap MS-v2>]
//   rcvd [LCP ConfReq id=0x2 <mru 1400> <auth chap MS-v2> <magic 0x3ac51c35> <pcomp> <accomp>]
//   sent [LCP ConfAck id=0x2 <mru 1400> <auth chap MS-v2> <magic 0x3ac51c35> <pcomp> <accomp>]
//   rcvd [CHAP Challenge id=0x0 <866f2907df8296184b4ebdc3b4334ac3>, name = "CRRAS2"]
//   rcvd [CCP ConfReq id=0x4 <mppe +H -M -S -L -D +C>]
//   sent [CCP ConfNak id=0x4 <mppe +H -M +S +L -D -C>]
//   rcvd [CCP ConfRej id=0x1 <mppe +H -M +S +L -D -C>]
//   MPPE required but peer refused

const E_RRAS_LCP_REQ_0: &str = "01 00 0019 0104 0578 0304 c227 0506 3ac51c35 0702 0802 0d03 06";
const E_RRAS_LCP_REQ_1: &str = "01 01 0016 0104 0578 0304 c227 0506 3ac51c35 0702 0802";
const E_RRAS_LCP_REQ_2: &str = "01 02 0017 0104 0578 0305 c223 81 0506 3ac51c35 0702 0802";
const E_RRAS_CHALLENGE: &str = "01 00 001b 10 866f2907df8296184b4ebdc3b4334ac3 435252415332";
const E_RRAS_CCP_REQ: &str = "01 04 000a 1206 01000001";

/// Our client in pppd's place against Windows RRAS: the same three answers, byte for byte
/// (Reject of Callback; Nak of EAP suggesting MS-CHAPv2; Ack), then MS-CHAPv2 starts and
/// the RRAS Challenge is answered.
#[test]
fn e_client_negotiates_lcp_with_windows_rras_exactly_like_pppd() {
    let now = Instant::now();
    let mut c = client_engine("user", "pw", &[AuthMethod::MsChapV2, AuthMethod::MsChapV1]);
    let answers = client_lcp_answers(
        &mut c,
        now,
        &[
            h(E_RRAS_LCP_REQ_0),
            h(E_RRAS_LCP_REQ_1),
            h(E_RRAS_LCP_REQ_2),
        ],
    );
    let mut ack = h(E_RRAS_LCP_REQ_2);
    ack[0] = 2;
    assert_eq!(
        answers,
        [h("04 00 0007 0d03 06"), h("03 01 0009 0305 c223 81"), ack]
    );
    assert_eq!(c.phase(), Phase::Authenticate);
    assert_eq!(c.link().tx_mru, 1400);
    let _ = c.handle_frame(now, &frame(CHAP, &h(E_RRAS_CHALLENGE)));
    let r = sent(&mut c, Protocol::Chap);
    let r = ChapRepr::parse(&r[0]).unwrap();
    assert_eq!(r.identifier, 0);
    let ChapMessage::Response { value, name } = r.message else {
        panic!()
    };
    assert_eq!((value.len(), name), (49, &b"user"[..]));
}

fn ccp_answer(cfg: CcpConfig, request: &[u8]) -> (Vec<u8>, Vec<u8>, Fsm<CcpNegotiator>) {
    let now = Instant::now();
    let mut ccp = Fsm::new(CcpNegotiator::new(cfg, true), FsmConfig::default());
    ccp.up(now);
    ccp.open(now);
    let ours = ccp.poll_transmit().unwrap();
    let _ = ccp.handle_packet(now, request);
    let reply = ccp.poll_transmit().unwrap();
    (ours, reply, ccp)
}

/// RRAS offers only MPPC, no encryption (0x01000001). A client that requires MPPE Naks
/// with the encryption it wants (never a Reject of the whole option, which would loop), and
/// when RRAS then rejects our option 18 the link fails with "the peer refused MPPE".
#[test]
fn e_rras_mppc_only_ccp_request_against_required_mppe() {
    let required = CcpConfig {
        mppe: MppeMode::Required,
        ..CcpConfig::default()
    };
    let (ours, reply, mut ccp) = ccp_answer(required, &h(E_RRAS_CCP_REQ));
    // Configure-Nak id 4 with one key length (128), H kept (the peer asked for stateless and
    // we allow it), C dropped (MPPC off here). pppd Naked `<mppe +H -M +S +L -D -C>`, i.e.
    // every length it allows; one length converges in one round if the peer takes it.
    assert_eq!(reply, h("03 04 000a 1206 01000040"));
    // RRAS's answer to our request: Configure-Reject of option 18 (as it did to pppd's).
    let mut rej = ours.clone();
    rej[0] = 4;
    let _ = ccp.handle_packet(Instant::now(), &rej);
    assert_eq!(ccp.negotiator().failure(), Some(CcpFailure::PeerRefused));
    // A client that only prefers MPPE keeps the link: CCP just does not encrypt.
    // MPPE only preferred and MPPC off: nothing RRAS offers can be used, and we do not insist
    // on encryption, so the Nak suggests the empty option (no MPPC, no MPPE, H meaningless
    // then), which we ack when it comes back (never a Reject loop).
    let (_, reply, _) = ccp_answer(CcpConfig::default(), &h(E_RRAS_CCP_REQ));
    assert_eq!(reply, h("03 04 000a 1206 00000000"));
    // With MPPC on at our end as well, MPPC is agreed; the H bit is negotiated here only
    // together with MPPE, so the Nak suggests plain (history-keeping) MPPC, 0x00000001.
    let (_, reply, _) = ccp_answer(
        CcpConfig {
            mppc: true,
            ..CcpConfig::default()
        },
        &h(E_RRAS_CCP_REQ),
    );
    assert_eq!(reply, h("03 04 000a 1206 00000001"));
}

// ---- Source C: pppd debug log of a PPTP call to a Windows Server 2003 RRAS ("SPOCK"),
// Ubuntu forums, "pptp to windows 2003 server", 2 Aug 2006:
//   rcvd [LCP ConfReq id=0x0 <mru 1400> <auth eap> <magic 0x38791e5f> <pcomp> <accomp>
//         <callback CBCP> <mrru 1614> <endpoint [local:03.69.58.2f.95.55.4f.5b.aa.f1.e5.09.2a.c5.11.09.00.00.00.00]> < 17 04 00 29>]
//   sent [LCP ConfRej id=0x0 <callback CBCP> <mrru 1614> < 17 04 00 29>]
//   rcvd [CHAP Challenge id=0x0 <1f8f2a4f2ba6c7451bcba3aa73d43780>, name = "SPOCK"]
//   rcvd [CHAP Failure id=0x0 "E=691 R=1 C=6058043D9A0E697DB9D67AE111B929CB V=3"]

const C_W2K3_LCP_REQ_0: &str = "01 00 0038 0104 0578 0304 c227 0506 38791e5f 0702 0802 0d03 06
    1104 064e 1317 01 0369582f95554f5baaf1e5092ac5110900000000 1704 0029";
const C_W2K3_CHALLENGE: &str = "01 00 001a 10 1f8f2a4f2ba6c7451bcba3aa73d43780 53504f434b";
const C_W2K3_FAILURE: &str = "E=691 R=1 C=6058043D9A0E697DB9D67AE111B929CB V=3";

/// Windows 2003's first request: Callback, MRRU, Endpoint-Discriminator and option 23
/// (Link-Discriminator) are rejected with their exact bytes. pppd kept the Endpoint
/// Discriminator (it logs it); we do not do multilink, so it is rejected too (RFC 1990
/// allows a peer without multilink to reject it). RFC 1661 5.4: a Reject lists only
/// rejected options, and takes precedence over the Nak the EAP option would get.
#[test]
fn c_windows_2003_first_lcp_request_rejects_multilink_and_callback() {
    let now = Instant::now();
    let mut c = client_engine("sumtech", "pw", &[AuthMethod::MsChapV2]);
    let answers = client_lcp_answers(&mut c, now, &[h(C_W2K3_LCP_REQ_0)]);
    assert_eq!(
        answers,
        [h(
            "04 00 0026 0d03 06 1104 064e
            1317 01 0369582f95554f5baaf1e5092ac5110900000000 1704 0029"
        )]
    );
}

/// The Windows Failure "E=691 R=1 C=... V=3" (no M=) after our Response: with no retry
/// allowed, the client stops and says what Windows said; with one retry it answers the new
/// challenge with Identifier + 1 (RFC 2759 section 6), an NT-Response over C=, and stops
/// only at the second Failure.
#[test]
fn c_windows_failure_with_retry_both_client_policies() {
    let now = Instant::now();
    for retries in [0u8, 1] {
        let mut creds = ClientCredentials::new("sumtech", "pw");
        creds.retries = retries;
        let mut c = client_through_pptpd_lcp(now, creds);
        let mut ch = h(C_W2K3_CHALLENGE);
        ch[1] = 0x8e; // the Identifier of the exchange this client is in
        let _ = c.handle_frame(now, &frame(CHAP, &ch));
        let _ = sent(&mut c, Protocol::Chap);
        let mut fail = vec![4, 0x8e, 0, 4 + C_W2K3_FAILURE.len() as u8];
        fail.extend_from_slice(C_W2K3_FAILURE.as_bytes());
        let _ = c.handle_frame(now, &frame(CHAP, &fail));
        let ev = events(&mut c);
        if retries == 0 {
            assert_eq!(
                link_down(&ev).or_else(|| c.down_reason().cloned()),
                Some(DownReason::AuthFailed(AuthFailure::Rejected(
                    "E=691 R=1 ".into()
                )))
            );
            continue;
        }
        assert!(link_down(&ev).is_none() && c.down_reason().is_none());
        let r = sent(&mut c, Protocol::Chap);
        let r = ChapRepr::parse(&r[0]).unwrap();
        assert_eq!(r.identifier, 0x8f);
        let ChapMessage::Response { value, .. } = r.message else {
            panic!()
        };
        let v = MsChapV2Response::parse(value).unwrap();
        let c2: [u8; 16] = h("6058043D9A0E697DB9D67AE111B929CB").try_into().unwrap();
        assert_eq!(
            v.nt_response,
            mschap::generate_nt_response(
                &c2,
                &v.peer_challenge,
                b"sumtech",
                &mschap::nt_password_hash(b"pw")
            )
        );
        fail[1] = 0x8f;
        let _ = c.handle_frame(now, &frame(CHAP, &fail));
        // Retries used up: the second R=1 Failure ends it.
        assert!(matches!(
            c.down_reason(),
            Some(DownReason::AuthFailed(AuthFailure::Rejected(_)))
        ));
    }
}

// ---- Source F: pppd debug log of a PPTP call, Ubuntu forums, "Problem establishing a vpn",
// 19 May 2011 (the server's own request offers every key length):
//   rcvd [LCP ConfReq id=0x94 <accomp> <pcomp> <mru 1500> <magic 0xefddf976> <auth chap MS-v2>]
//   rcvd [CCP ConfReq id=0x6d <mppe +H +M +S +L -D -C>]
//   sent [CCP ConfNak id=0x6d <mppe +H -M +S -L -D -C>]

const F_LCP_REQ: &str = "01 94 0017 0802 0702 0104 05dc 0506 efddf976 0305 c223 81";
const F_CCP_REQ: &str = "01 6d 000a 1206 010000e0";

/// A request listing 40, 56 and 128 bits: the Nak picks exactly one (128) and keeps H,
/// byte for byte what pppd sent (`<mppe +H -M +S -L -D -C>`). The LCP request with the
/// options in an unusual order is acked verbatim.
#[test]
fn f_all_key_lengths_offered_nak_picks_128_like_pppd() {
    let (_, reply, _) = ccp_answer(CcpConfig::default(), &h(F_CCP_REQ));
    assert_eq!(reply, h("03 6d 000a 1206 01000040"));
    let (_, reply, _) = ccp_answer(
        CcpConfig {
            mppe: MppeMode::Required,
            stateless: Stateless::Required,
            ..CcpConfig::default()
        },
        &h(F_CCP_REQ),
    );
    assert_eq!(reply, h("03 6d 000a 1206 01000040"));
    // A server policy of 40-bit only picks L instead.
    let (_, reply, _) = ccp_answer(
        CcpConfig {
            allow_56: false,
            allow_128: false,
            ..CcpConfig::default()
        },
        &h(F_CCP_REQ),
    );
    assert_eq!(reply, h("03 6d 000a 1206 01000020"));

    let now = Instant::now();
    let mut c = client_engine("gil", "pw", &[AuthMethod::MsChapV2]);
    let answers = client_lcp_answers(&mut c, now, &[h(F_LCP_REQ)]);
    let mut ack = h(F_LCP_REQ);
    ack[0] = 2;
    assert_eq!(answers, [ack]);
    assert_eq!(c.link().auth_self, Some(AuthMethod::MsChapV2));
}

// ---- Source G: MS-CHAP and CHAP Failure messages real servers sent, from pppd logs:
//   Windows RRAS ("ACCOUNT"), NetworkManager log, ubuntuforums: "E=691 R=1 C=9CCAA040087BC5FCF3A77E25B0AEC7D6 V=3"
//   a PPTP server whose Failure ends in a NUL: "E=691 R=0 C=6A569792F73FD1F697EA6D1C1DE06B94 V=3 M=Invalid!\000"
//   WatchGuard firewall: "E=649 R=1 Try again"
//   Cisco (CHAP-MD5): "Request Denied"

/// Each real Failure message reaches the DownReason with the error code and text.
#[test]
fn g_real_failure_messages_become_clear_reasons() {
    let now = Instant::now();
    let cases: &[(&[u8], &str)] = &[
        (
            b"E=691 R=1 C=9CCAA040087BC5FCF3A77E25B0AEC7D6 V=3",
            "E=691 R=1 ",
        ),
        (
            b"E=691 R=0 C=6A569792F73FD1F697EA6D1C1DE06B94 V=3 M=Invalid!\x00",
            "E=691 R=0 Invalid!\u{0}",
        ),
        (b"E=649 R=1 Try again", "E=649 R=1 "),
    ];
    for (msg, want) in cases {
        let f = mschap::Failure::parse(msg).unwrap();
        assert!(f.error == 691 || f.error == 649);
        let mut c = client_through_pptpd_lcp(now, ClientCredentials::new("u", "p"));
        let _ = c.handle_frame(now, &frame(CHAP, &h(B_CHALLENGE)));
        let _ = sent(&mut c, Protocol::Chap);
        let mut fail = vec![4, 0x8e, 0, 4 + msg.len() as u8];
        fail.extend_from_slice(msg);
        let _ = c.handle_frame(now, &frame(CHAP, &fail));
        assert_eq!(
            c.down_reason(),
            Some(&DownReason::AuthFailed(AuthFailure::Rejected(
                (*want).into()
            ))),
            "{}",
            String::from_utf8_lossy(msg)
        );
        assert!(sent(&mut c, Protocol::Lcp).iter().any(|p| p[0] == 5));
    }
    // Cisco's CHAP-MD5 Failure text, verbatim.
    let now = Instant::now();
    let mut c = client_engine("jo", "pw", &[AuthMethod::ChapMd5]);
    let _ = client_lcp_answers(
        &mut c,
        now,
        &[h("01 01 0009 0305 c223 05")], // a request demanding CHAP-MD5
    );
    let _ = c.handle_frame(
        now,
        &frame(
            CHAP,
            &h("01 01 001d 10 991cdbe3e1cf359f6ac059e77056f4cd 436973636f313037"),
        ),
    );
    let _ = sent(&mut c, Protocol::Chap);
    let mut fail = h("04 01 0012");
    fail.extend_from_slice(b"Request Denied");
    let _ = c.handle_frame(now, &frame(CHAP, &fail));
    assert_eq!(
        c.down_reason(),
        Some(&DownReason::AuthFailed(AuthFailure::Rejected(
            "Request Denied".into()
        )))
    );
}

// ---- Source H: RFC 2759 section 9 (MS-CHAPv2), RFC 2433 / the PEAR Crypt_CHAP test suite
// (MS-CHAPv1 NT and LM responses), Crypt_CHAP tests/chaptest.php (CHAP-MD5), assembled into
// full CHAP packets: the authenticator's Challenge and the peer's Response with the RFC's
// values, user names and passwords; our authenticator must accept them.

fn authenticate(
    variant: ChapVariant,
    policy: &AuthenticatorPolicy,
    id: u8,
    challenge: &[u8],
    response: &[u8],
    user: &str,
    password: &str,
) -> (Vec<u8>, Vec<u8>, AuthEvent) {
    let now = Instant::now();
    let store = StaticCredentials::new().with_password(user, password);
    let mut rng = pptp_nas::ppp::auth::ChallengeRng::from_seed([5; 32]);
    let mut a = ChapAuthenticator::with_challenge(now, variant, policy, id, challenge).unwrap();
    let ch = a.outbox().tx.pop_front().unwrap();
    a.handle_packet(now, response, &store, &mut rng);
    let verdict = a.outbox().tx.pop_front().unwrap();
    let ev = a.outbox().events.pop_front().unwrap();
    (ch, verdict, ev)
}

#[test]
fn h_rfc2759_section9_exchange_is_verified_and_answered_with_its_s_value() {
    // RFC 2759 section 9.2: UserName "User", Password "clientPass",
    // AuthenticatorChallenge 5B5D7C7D7B3F2F3E3C2C602132262628,
    // PeerChallenge 21402324255E262A28295F2B3A337C7E,
    // NT-Response 82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF,
    // AuthenticatorResponse S=407A5589115FD0D6209F510FE9C04566932CDA56.
    let challenge = h("5B5D7C7D7B3F2F3E3C2C602132262628");
    let response = h("02 01 003a 31
        21402324255E262A28295F2B3A337C7E 0000000000000000
        82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF 00
        55736572");
    let policy = AuthenticatorPolicy::default();
    let (ch, verdict, ev) = authenticate(
        ChapVariant::MsChapV2,
        &policy,
        1,
        &challenge,
        &response,
        "User",
        "clientPass",
    );
    let mut want_ch = h("01 01 001d 10 5B5D7C7D7B3F2F3E3C2C602132262628");
    want_ch.extend_from_slice(b"pptp-nas");
    assert_eq!(ch, want_ch);
    let mut want = h("03 01 003f");
    want.extend_from_slice(b"S=407A5589115FD0D6209F510FE9C04566932CDA56 M=Access granted");
    assert_eq!(verdict, want);
    let AuthEvent::Success { user, .. } = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(user, b"User");
    // One bit off in the NT-Response: E=691 Failure.
    let mut bad = response.clone();
    bad[30] ^= 1;
    let (_, verdict, ev) = authenticate(
        ChapVariant::MsChapV2,
        &policy,
        1,
        &challenge,
        &bad,
        "User",
        "clientPass",
    );
    assert_eq!(verdict[0], 4);
    assert!(verdict[4..].starts_with(b"E=691 R=0 C="));
    assert_eq!(
        ev,
        AuthEvent::Failure(AuthFailure::BadCredentials("User".into()))
    );
}

#[test]
fn h_mschapv1_and_chap_md5_published_vectors_are_verified() {
    // RFC 2433 / Crypt_CHAP: challenge 102DB5DF085D3041, password "MyPw",
    // NT response 4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61,
    // LM response 91881D0152AB0C33C524135EC24A95EE64E23CDC2D33347D.
    let challenge = h("102DB5DF085D3041");
    let nt_value = h("000000000000000000000000000000000000000000000000
        4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61 01");
    let mut response = h("02 07 003c 31");
    response.extend_from_slice(&nt_value);
    response.extend_from_slice(b"MyUser");
    let policy = AuthenticatorPolicy::default();
    let (_, verdict, ev) = authenticate(
        ChapVariant::MsChapV1,
        &policy,
        7,
        &challenge,
        &response,
        "MyUser",
        "MyPw",
    );
    assert_eq!(verdict[0], 3, "{:?}", String::from_utf8_lossy(&verdict));
    assert!(matches!(ev, AuthEvent::Success { .. }));
    // The LAN Manager response alone (use-NT 0, as Windows 95 may send): refused by default,
    // accepted when the policy enables it.
    let lm_value = h("91881D0152AB0C33C524135EC24A95EE64E23CDC2D33347D
        000000000000000000000000000000000000000000000000 00");
    let mut lm = h("02 07 003c 31");
    lm.extend_from_slice(&lm_value);
    lm.extend_from_slice(b"MyUser");
    let (_, verdict, ev) = authenticate(
        ChapVariant::MsChapV1,
        &policy,
        7,
        &challenge,
        &lm,
        "MyUser",
        "MyPw",
    );
    assert_eq!(verdict[0], 4);
    assert_eq!(
        ev,
        AuthEvent::Failure(AuthFailure::LmRefused("MyUser".into()))
    );
    let lm_ok = AuthenticatorPolicy {
        allow_lm_response: true,
        ..AuthenticatorPolicy::default()
    };
    let (_, verdict, ev) = authenticate(
        ChapVariant::MsChapV1,
        &lm_ok,
        7,
        &challenge,
        &lm,
        "MyUser",
        "MyPw",
    );
    assert_eq!(verdict[0], 3);
    assert!(matches!(ev, AuthEvent::Success { .. }));

    // CHAP-MD5 (Crypt_CHAP): Identifier 1, challenge 102DB5DF085D3041; "MyPw" gives
    // 8f028814450d66d94c72331ef455a172 and "sepp" d39bfaf5d6855a948c8c81a85947502c.
    assert_eq!(
        md5_response(1, b"MyPw", &challenge).to_vec(),
        h("8f028814450d66d94c72331ef455a172")
    );
    assert_eq!(
        md5_response(1, b"sepp", &challenge).to_vec(),
        h("d39bfaf5d6855a948c8c81a85947502c")
    );
    // Our CHAP-MD5 challenges are 16 octets; the 8-octet one of the vector is checked through
    // the response function above, and a full exchange over a 16-octet challenge here.
    let c16 = h("102DB5DF085D3041102DB5DF085D3041");
    let mut resp = h("02 01 0019 10");
    resp.extend_from_slice(&md5_response(1, b"sepp", &c16));
    resp.extend_from_slice(b"sepp");
    let (_, verdict, ev) = authenticate(ChapVariant::Md5, &policy, 1, &c16, &resp, "sepp", "sepp");
    assert_eq!(verdict[0], 3);
    assert!(matches!(ev, AuthEvent::Success { .. }));
}

/// An IPCP Configure-Request as it appears in scapy's PPP test suite (test/scapy/layers/
/// ppp.uts): protocol 8021, code 1, id 1, length 16, IP-Address 192.168.1.1 and
/// IP-Compression-Protocol VJ (002d, Max-Slot-Id 15, Comp-Slot-Id 1). A server without VJ
/// rejects exactly the VJ option; once it is gone, it Naks the address to the assigned one.
#[test]
fn ipcp_request_with_vj_from_scapy_suite() {
    let frame: &[u8] = b"\x80!\x01\x01\x00\x10\x03\x06\xc0\xa8\x01\x01\x02\x06\x00-\x0f\x01";
    let now = Instant::now();
    let mut server = Fsm::new(
        IpcpNegotiator::new(IpcpConfig {
            local: Some(Ipv4Addr::new(10, 0, 0, 1)),
            assign_peer: Some(Ipv4Addr::new(10, 0, 0, 2)),
            dns: [None, None],
            request_dns: false,
        }),
        FsmConfig::default(),
    );
    server.up(now);
    server.open(now);
    let _our_request = server.poll_transmit().unwrap();
    assert!(server.handle_packet(now, &frame[2..]).is_none());
    let reply = server.poll_transmit().unwrap();
    assert_eq!(
        reply,
        [0x04, 0x01, 0x00, 0x0a, 0x02, 0x06, 0x00, 0x2d, 0x0f, 0x01]
    );
    // The peer drops VJ and asks again for 192.168.1.1: Nak with the assigned address.
    let again = [0x01, 0x02, 0x00, 0x0a, 0x03, 0x06, 0xc0, 0xa8, 0x01, 0x01];
    assert!(server.handle_packet(now, &again).is_none());
    let nak = server.poll_transmit().unwrap();
    assert_eq!(nak, [0x03, 0x02, 0x00, 0x0a, 0x03, 0x06, 10, 0, 0, 2]);
}
