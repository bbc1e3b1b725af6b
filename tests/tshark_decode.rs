//! Wireshark as the judge of our wire formats: writes pcaps with the crate's emitters and the
//! pcap writer, runs `tshark` on them, and checks that it decodes the fields we set and reports
//! nothing malformed and no expert warnings.
//!
//! - `tshark_decodes_ppp_with_dir`: LCP (Configure-Request/Ack/Nak/Reject, Echo, Code-Reject,
//!   Protocol-Reject, Terminate), PAP, CHAP (MD5-size challenge, MS-CHAPv2 response), CCP with
//!   option 18 and IPCP address/DNS frames as LINKTYPE_PPP_WITH_DIR (204) and LINKTYPE_PPP (9).
//! - `tshark_decodes_pptp_control_and_gre`: a raw-IP (101) capture of a TCP control connection
//!   (handshake, all 15 PPTP control messages in both directions with consistent sequence
//!   numbers, orderly close) and the call's PPP frames in enhanced GRE with and without
//!   acknowledgments, plus an acknowledgment-only packet.
//! - `tshark_flags_malformed_ppp`: the problem filter does match a malformed packet, so an
//!   empty result means something.
//!
//! tshark is required: the test fails (it does not skip) when it is missing. `.ci/run` installs
//! it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pptp_nas::pcap::{gre_in_ipv4, Direction, Endpoint, LinkType, PcapWriter, TcpFlow, PPTP_PORT};
use pptp_nas::ppp::packet::{
    CcpCode, CcpOption, ChapMessage, ChapRepr, Compression, ConfigureBuilder, ControlRepr,
    FrameRepr, IpcpOption, LcpCode, LcpMessage, LcpOption, LcpRepr, MppeBits, MsChapV2Response,
    NcpCode, Options, PapMessage, PapRepr, Protocol, RawOption,
};
use pptp_nas::pptp::gre::{GreRepr, SeqNumber};
use pptp_nas::pptp::message::{
    BearerCapabilities, BearerType, CallClearRequest, CallDisconnectNotify, CallDisconnectResult,
    CallStatistics, CauseCode, EchoReply, EchoRequest, EchoResult, ErrorCode, FramingCapabilities,
    FramingType, IncomingCallConnected, IncomingCallReply, IncomingCallRequest, IncomingCallResult,
    Message, OutgoingCallReply, OutgoingCallRequest, OutgoingCallResult, SetLinkInfo,
    StartControlConnectionReply, StartControlConnectionRequest, StartControlConnectionResult,
    StopControlConnectionReply, StopControlConnectionRequest, StopControlConnectionResult,
    StopReason, TextField, WanErrorNotify,
};

/// Checks that tshark runs, or fails the test with instructions.
fn require_tshark() {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "tshark is not installed or does not run; run `.ci/run` (it installs tshark and socat) \
         or `apt-get install tshark`"
    );
}

/// A scratch directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "pptp-nas-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs tshark with `-T fields` for `fields`; returns one map per frame.
fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<BTreeMap<String, String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(file).args(["-T", "fields"]);
    cmd.args([
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            fields
                .iter()
                .zip(line.split('\t'))
                .filter(|(_, v)| !v.is_empty())
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The display filter that must match nothing in our captures.
const PROBLEMS: &str = "(pptp || gre || ppp || lcp || chap || pap || ccp || ipcp) \
                        && (_ws.malformed || _ws.expert.severity >= \"Warning\")";

/// Runs tshark with a display filter; returns the summary lines it prints.
fn tshark_filter(file: &Path, filter: &str, verbose: bool) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(file).args(["-Y", filter]);
    if verbose {
        cmd.arg("-V");
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that tshark finds nothing malformed and no expert info of Warning or worse in the
/// protocols under test.
fn assert_clean(file: &Path) {
    let summary = tshark_filter(file, PROBLEMS, false);
    if !summary.trim().is_empty() {
        let detail = tshark_filter(file, PROBLEMS, true);
        panic!("tshark flags problems:\n{summary}\n{detail}");
    }
}

/// Checks `want` (frame number from 1, field, value) against tshark's output.
fn assert_fields(frames: &[BTreeMap<String, String>], want: &[(usize, &str, &str)]) {
    for &(n, field, value) in want {
        let frame = frames
            .get(n - 1)
            .unwrap_or_else(|| panic!("frame {n} missing; tshark saw {}", frames.len()));
        assert_eq!(
            frame.get(field).map(String::as_str),
            Some(value),
            "frame {n} field {field}; frame fields: {frame:?}"
        );
    }
}

/// Builds the PPP frames of a plausible call: LCP (every code), PAP, CHAP (MD5 and
/// MS-CHAPv2), CCP with MPPE, IPCP with address and DNS. Returns (direction, frame) pairs.
fn ppp_frames() -> Vec<(Direction, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut push = |dir: Direction, protocol: Protocol, packet: Vec<u8>, c: Compression| {
        let frame = FrameRepr {
            protocol,
            payload: &packet,
        }
        .to_vec(c);
        frames.push((dir, frame));
    };
    let lcp = |r: LcpRepr<'_>| r.to_vec().unwrap();
    let none = Compression::NONE;

    // 1: LCP Configure-Request from the caller.
    let mut req = ConfigureBuilder::new(LcpCode::ConfigureRequest, 1);
    req.push(&LcpOption::Mru(1400))
        .unwrap()
        .push(&LcpOption::Accm(0))
        .unwrap()
        .push(&LcpOption::MagicNumber(0xa1b2_c3d4))
        .unwrap()
        .push(&LcpOption::ProtocolFieldCompression)
        .unwrap()
        .push(&LcpOption::AddressControlFieldCompression)
        .unwrap()
        .push(&LcpOption::Callback {
            operation: 6,
            message: &[],
        })
        .unwrap();
    push(
        Direction::Received,
        Protocol::Lcp,
        req.to_packet().unwrap(),
        none,
    );
    // 2: Configure-Reject of the Callback option, byte-exact.
    let mut rej = ConfigureBuilder::new(LcpCode::ConfigureReject, 1);
    rej.push(&RawOption {
        kind: 13,
        data: &[6],
    })
    .unwrap();
    push(
        Direction::Sent,
        Protocol::Lcp,
        rej.to_packet().unwrap(),
        none,
    );
    // 3: Configure-Nak asking for MRU 1500.
    let mut nak = ConfigureBuilder::new(LcpCode::ConfigureNak, 2);
    nak.push(&LcpOption::Mru(1500)).unwrap();
    push(
        Direction::Sent,
        Protocol::Lcp,
        nak.to_packet().unwrap(),
        none,
    );
    // 4: our Configure-Request with MS-CHAPv2.
    let mut ours = ConfigureBuilder::new(LcpCode::ConfigureRequest, 0x20);
    ours.push(&LcpOption::AuthProtocol {
        protocol: Protocol::Chap,
        data: &[0x81],
    })
    .unwrap()
    .push(&LcpOption::MagicNumber(0x5566_7788))
    .unwrap();
    push(
        Direction::Sent,
        Protocol::Lcp,
        ours.to_packet().unwrap(),
        none,
    );
    // 5: the caller's Configure-Ack of it.
    let ack = LcpRepr {
        identifier: 0x20,
        message: LcpMessage::ConfigureAck(Options::parse(ours.data()).unwrap()),
    };
    push(Direction::Received, Protocol::Lcp, lcp(ack), none);
    // 6, 7: Echo-Request / Echo-Reply.
    push(
        Direction::Sent,
        Protocol::Lcp,
        lcp(LcpRepr {
            identifier: 3,
            message: LcpMessage::EchoRequest {
                magic: 0x5566_7788,
                data: b"",
            },
        }),
        none,
    );
    push(
        Direction::Received,
        Protocol::Lcp,
        lcp(LcpRepr {
            identifier: 3,
            message: LcpMessage::EchoReply {
                magic: 0xa1b2_c3d4,
                data: b"",
            },
        }),
        none,
    );
    // 8: Code-Reject of a packet with unknown code 0x20.
    push(
        Direction::Sent,
        Protocol::Lcp,
        lcp(LcpRepr {
            identifier: 4,
            message: LcpMessage::CodeReject(&[0x20, 0x01, 0x00, 0x04]),
        }),
        none,
    );
    // 9: Protocol-Reject of an IPX frame (002b).
    push(
        Direction::Sent,
        Protocol::Lcp,
        lcp(LcpRepr {
            identifier: 5,
            message: LcpMessage::ProtocolReject {
                protocol: Protocol::Unknown(0x002b),
                information: &[0xff, 0xff, 0x00, 0x1e],
            },
        }),
        none,
    );
    // 10, 11: PAP Authenticate-Request / Ack.
    push(
        Direction::Received,
        Protocol::Pap,
        PapRepr {
            identifier: 1,
            message: PapMessage::AuthenticateRequest {
                peer_id: b"alice",
                password: b"secret",
            },
        }
        .to_vec()
        .unwrap(),
        none,
    );
    push(
        Direction::Sent,
        Protocol::Pap,
        PapRepr {
            identifier: 1,
            message: PapMessage::AuthenticateAck {
                message: b"Login ok",
            },
        }
        .to_vec()
        .unwrap(),
        none,
    );
    // 12..14: CHAP Challenge (16 octets), MS-CHAPv2 Response (49 octets), Success.
    let challenge: Vec<u8> = (0u8..16).collect();
    push(
        Direction::Sent,
        Protocol::Chap,
        ChapRepr {
            identifier: 7,
            message: ChapMessage::Challenge {
                value: &challenge,
                name: b"pns",
            },
        }
        .to_vec()
        .unwrap(),
        none,
    );
    let value = MsChapV2Response {
        peer_challenge: [0x21; 16],
        reserved: [0; 8],
        nt_response: [0x82; 24],
        flags: 0,
    }
    .to_bytes();
    push(
        Direction::Received,
        Protocol::Chap,
        ChapRepr {
            identifier: 7,
            message: ChapMessage::Response {
                value: &value,
                name: b"alice",
            },
        }
        .to_vec()
        .unwrap(),
        none,
    );
    push(
        Direction::Sent,
        Protocol::Chap,
        ChapRepr {
            identifier: 7,
            message: ChapMessage::Success {
                message: b"S=0123456789ABCDEF0123456789ABCDEF01234567 M=Access granted",
            },
        }
        .to_vec()
        .unwrap(),
        none,
    );
    // 15: CCP Configure-Request: MPPE 128-bit stateless; ACFC on (LCP negotiated it).
    let mut ccp = ConfigureBuilder::new(CcpCode::ConfigureRequest, 1);
    ccp.push(&CcpOption::MicrosoftPpc(MppeBits(
        MppeBits::H_STATELESS | MppeBits::S_128,
    )))
    .unwrap();
    let acfc = Compression {
        address_control: true,
        protocol: true,
    };
    push(
        Direction::Sent,
        Protocol::Ccp,
        ccp.to_packet().unwrap(),
        acfc,
    );
    // 16: IPCP Configure-Request from the caller: address and DNS 0.0.0.0.
    let mut ipcp = ConfigureBuilder::new(NcpCode::ConfigureRequest, 1);
    ipcp.push(&IpcpOption::IpAddress(Ipv4Addr::UNSPECIFIED))
        .unwrap()
        .push(&IpcpOption::PrimaryDns(Ipv4Addr::UNSPECIFIED))
        .unwrap()
        .push(&IpcpOption::SecondaryDns(Ipv4Addr::UNSPECIFIED))
        .unwrap();
    push(
        Direction::Received,
        Protocol::Ipcp,
        ipcp.to_packet().unwrap(),
        acfc,
    );
    // 17: IPCP Configure-Nak with the assigned values.
    let mut ipcp_nak = ConfigureBuilder::new(NcpCode::ConfigureNak, 1);
    ipcp_nak
        .push(&IpcpOption::IpAddress(Ipv4Addr::new(10, 0, 0, 2)))
        .unwrap()
        .push(&IpcpOption::PrimaryDns(Ipv4Addr::new(192, 0, 2, 53)))
        .unwrap()
        .push(&IpcpOption::SecondaryDns(Ipv4Addr::new(192, 0, 2, 54)))
        .unwrap();
    push(
        Direction::Sent,
        Protocol::Ipcp,
        ipcp_nak.to_packet().unwrap(),
        acfc,
    );
    // 18, 19: Terminate-Request / Terminate-Ack.
    push(
        Direction::Received,
        Protocol::Lcp,
        lcp(LcpRepr {
            identifier: 9,
            message: LcpMessage::TerminateRequest(b"User request"),
        }),
        acfc,
    );
    push(
        Direction::Sent,
        Protocol::Lcp,
        lcp(LcpRepr {
            identifier: 9,
            message: LcpMessage::TerminateAck(b""),
        }),
        acfc,
    );
    // 20: a compressed datagram (MPPE payload) with ACFC and PFC.
    push(
        Direction::Sent,
        Protocol::CompressedDatagram,
        vec![0x90, 0x00, 0x12, 0x34, 0x56],
        acfc,
    );
    // Sanity: every emitted control packet parses back with our own parser.
    for (_, f) in &frames {
        let repr = FrameRepr::parse(f).unwrap();
        if repr.protocol == Protocol::Lcp {
            LcpRepr::parse(repr.payload).unwrap();
        } else if repr.protocol == Protocol::Ipcp {
            ControlRepr::<NcpCode>::parse(repr.payload).unwrap();
        }
    }
    frames
}

#[test]
fn tshark_decodes_ppp_with_dir() {
    require_tshark();
    let dir = TempDir::new("ppp");
    let file = dir.path("ppp.pcap");
    let mut w =
        PcapWriter::new(std::fs::File::create(&file).unwrap(), LinkType::PppWithDir).unwrap();
    let base = Duration::from_secs(1_700_000_000);
    for (i, (d, frame)) in ppp_frames().iter().enumerate() {
        let ts = base + Duration::from_millis(10 * u64::try_from(i).unwrap());
        w.write_ppp(ts, *d, frame).unwrap();
    }
    w.flush().unwrap();
    drop(w);

    let fields = [
        "ppp.direction",
        "ppp.protocol",
        "ppp.code",
        "ppp.identifier",
        "lcp.opt.mru",
        "lcp.opt.asyncmap",
        "lcp.opt.magic_number",
        "lcp.opt.type",
        "lcp.opt.auth_protocol",
        "lcp.opt.algorithm",
        "lcp.opt.operation",
        "lcp.magic_number",
        "lcp.rej_proto",
        "lcp.data",
        "pap.code",
        "pap.peer_id",
        "pap.password",
        "pap.message",
        "chap.code",
        "chap.identifier",
        "chap.value_size",
        "chap.name",
        "chap.message",
        "ccp.opt.type",
        "ccp.opt.supported_bits",
        "ccp.opt.supported_bits.h",
        "ccp.opt.supported_bits.s",
        "ipcp.opt.type",
        "ipcp.opt.ip_address",
        "ipcp.opt.pri_dns_address",
        "ipcp.opt.sec_dns_address",
    ];
    let frames = tshark_fields(&file, &fields);
    assert_eq!(frames.len(), 20, "{frames:#?}");
    // ppp.direction is Wireshark's p2p_dir: 1 = received (our octet 0), 0 = sent (octet 1).
    let (rx, tx) = ("1", "0");
    #[rustfmt::skip]
    assert_fields(&frames, &[
        (1, "ppp.direction", rx),
        (1, "ppp.protocol", "0xc021"),
        (1, "ppp.code", "1"),
        (1, "ppp.identifier", "1"),
        (1, "lcp.opt.type", "1,2,5,7,8,13"),
        (1, "lcp.opt.mru", "1400"),
        (1, "lcp.opt.asyncmap", "0x00000000"),
        (1, "lcp.opt.magic_number", "0xa1b2c3d4"),
        (1, "lcp.opt.operation", "6"),
        (2, "ppp.direction", tx),
        (2, "ppp.code", "4"),
        (2, "lcp.opt.type", "13"),
        (2, "lcp.opt.operation", "6"),
        (3, "ppp.code", "3"),
        (3, "ppp.identifier", "2"),
        (3, "lcp.opt.mru", "1500"),
        (4, "ppp.code", "1"),
        (4, "ppp.identifier", "32"),
        (4, "lcp.opt.auth_protocol", "0xc223"),
        (4, "lcp.opt.algorithm", "129"),
        (4, "lcp.opt.magic_number", "0x55667788"),
        (5, "ppp.direction", rx),
        (5, "ppp.code", "2"),
        (5, "ppp.identifier", "32"),
        (5, "lcp.opt.auth_protocol", "0xc223"),
        (6, "ppp.code", "9"),
        (6, "lcp.magic_number", "0x55667788"),
        (7, "ppp.code", "10"),
        (7, "lcp.magic_number", "0xa1b2c3d4"),
        (8, "ppp.code", "7"),
        (8, "ppp.identifier", "4"),
        (9, "ppp.code", "8"),
        (9, "lcp.rej_proto", "0x002b"),
        (10, "ppp.protocol", "0xc023"),
        (10, "pap.code", "1"),
        (10, "pap.peer_id", "alice"),
        (10, "pap.password", "secret"),
        (11, "pap.code", "2"),
        (11, "pap.message", "Login ok"),
        (12, "ppp.protocol", "0xc223"),
        (12, "chap.code", "1"),
        (12, "chap.identifier", "7"),
        (12, "chap.value_size", "16"),
        (12, "chap.name", "pns"),
        (13, "chap.code", "2"),
        (13, "chap.value_size", "49"),
        (13, "chap.name", "alice"),
        (14, "chap.code", "3"),
        (14, "chap.message", "S=0123456789ABCDEF0123456789ABCDEF01234567 M=Access granted"),
        (15, "ppp.protocol", "0x80fd"),
        (15, "ppp.code", "1"),
        (15, "ccp.opt.type", "18"),
        (15, "ccp.opt.supported_bits", "0x01000040"),
        (15, "ccp.opt.supported_bits.h", "1"),
        (15, "ccp.opt.supported_bits.s", "1"),
        (16, "ppp.protocol", "0x8021"),
        (16, "ipcp.opt.type", "3,129,131"),
        (16, "ipcp.opt.ip_address", "0.0.0.0"),
        (17, "ppp.code", "3"),
        (17, "ipcp.opt.ip_address", "10.0.0.2"),
        (17, "ipcp.opt.pri_dns_address", "192.0.2.53"),
        (17, "ipcp.opt.sec_dns_address", "192.0.2.54"),
        (18, "ppp.code", "5"),
        (18, "ppp.identifier", "9"),
        (19, "ppp.code", "6"),
        (20, "ppp.protocol", "0x00fd"),
    ]);
    assert_clean(&file);

    // The same frames as LINKTYPE_PPP (9), without the direction octet.
    let plain = dir.path("ppp9.pcap");
    let mut w = PcapWriter::new(std::fs::File::create(&plain).unwrap(), LinkType::Ppp).unwrap();
    let built = ppp_frames();
    for (i, (_, frame)) in built.iter().enumerate() {
        let ts = base + Duration::from_millis(10 * u64::try_from(i).unwrap());
        w.write_packet(ts, frame).unwrap();
    }
    drop(w);
    let got = tshark_fields(&plain, &["ppp.protocol", "ppp.code"]);
    assert_eq!(got.len(), built.len());
    for ((n, g), (_, f)) in got.iter().enumerate().zip(&built) {
        let want = format!("0x{:04x}", u16::from(FrameRepr::parse(f).unwrap().protocol));
        assert_eq!(g.get("ppp.protocol"), Some(&want), "frame {}", n + 1);
    }
    assert_eq!(got[0].get("ppp.code").map(String::as_str), Some("1"));
    assert_clean(&plain);
}

/// The judge must be able to say no: a frame whose LCP Length runs past the end, written the
/// same way, is flagged by the same filter.
#[test]
fn tshark_flags_malformed_ppp() {
    require_tshark();
    let dir = TempDir::new("ppp-bad");
    let file = dir.path("bad.pcap");
    let mut w =
        PcapWriter::new(std::fs::File::create(&file).unwrap(), LinkType::PppWithDir).unwrap();
    // LCP Configure-Request claiming 32 octets, carrying 8.
    let bad = [
        0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x20, 0x01, 0x04, 0x05, 0x78,
    ];
    assert!(FrameRepr::parse(&bad)
        .and_then(|f| LcpRepr::parse(f.payload))
        .is_err());
    w.write_ppp(Duration::from_secs(1), Direction::Received, &bad)
        .unwrap();
    drop(w);
    assert!(!tshark_filter(&file, PROBLEMS, false).trim().is_empty());
}

/// The PAC's Call ID for the session (peer of the PNS's).
const PAC_CALL: u16 = 0x1234;
/// The PNS's Call ID for the session.
const PNS_CALL: u16 = 0x4000;

/// The 15 PPTP control messages of a plausible session, each with the side that sends it
/// (Client = the PAC, which opened the TCP connection; Server = the PNS on port 1723).
fn pptp_messages() -> Vec<(Endpoint, Message)> {
    let text = |s: &[u8]| TextField::new(s).unwrap();
    let (pac_call, pns_call) = (PAC_CALL, PNS_CALL);
    vec![
        (
            Endpoint::Client,
            Message::StartControlConnectionRequest(StartControlConnectionRequest {
                protocol_version: 0x0100,
                framing_capabilities: FramingCapabilities::ASYNC | FramingCapabilities::SYNC,
                bearer_capabilities: BearerCapabilities::ANALOG | BearerCapabilities::DIGITAL,
                maximum_channels: 4,
                firmware_revision: 0x0001,
                host_name: text(b"pac.example"),
                vendor: text(b"pptp-nas"),
            }),
        ),
        (
            Endpoint::Server,
            Message::StartControlConnectionReply(StartControlConnectionReply {
                protocol_version: 0x0100,
                result: StartControlConnectionResult::Success,
                error: ErrorCode::None,
                framing_capabilities: FramingCapabilities::ASYNC,
                bearer_capabilities: BearerCapabilities::ANALOG,
                maximum_channels: 0,
                firmware_revision: 0x0002,
                host_name: text(b"pns.example"),
                vendor: text(b"pptp-nas"),
            }),
        ),
        (
            Endpoint::Server,
            Message::EchoRequest(EchoRequest {
                identifier: 0xdead_beef,
            }),
        ),
        (
            Endpoint::Client,
            Message::EchoReply(EchoReply {
                identifier: 0xdead_beef,
                result: EchoResult::Ok,
                error: ErrorCode::None,
            }),
        ),
        (
            Endpoint::Client,
            Message::IncomingCallRequest(IncomingCallRequest {
                call_id: pac_call,
                call_serial_number: 1,
                call_bearer_type: BearerType::Analog,
                physical_channel_id: 0,
                dialed_number_length: 4,
                dialing_number_length: 8,
                dialed_number: text(b"5551"),
                dialing_number: text(b"55501234"),
                subaddress: text(b""),
            }),
        ),
        (
            Endpoint::Server,
            Message::IncomingCallReply(IncomingCallReply {
                call_id: pns_call,
                peer_call_id: pac_call,
                result: IncomingCallResult::Connect,
                error: ErrorCode::None,
                packet_recv_window_size: 64,
                packet_transmit_delay: 0,
            }),
        ),
        (
            Endpoint::Client,
            Message::IncomingCallConnected(IncomingCallConnected {
                peer_call_id: pns_call,
                connect_speed: 52000,
                packet_recv_window_size: 16,
                packet_transmit_delay: 0,
                framing_type: FramingType::Async,
            }),
        ),
        (
            Endpoint::Server,
            Message::SetLinkInfo(SetLinkInfo {
                peer_call_id: pac_call,
                send_accm: 0xffff_ffff,
                receive_accm: 0,
            }),
        ),
        (
            Endpoint::Server,
            Message::OutgoingCallRequest(OutgoingCallRequest {
                call_id: pns_call + 1,
                call_serial_number: 2,
                minimum_bps: 2400,
                maximum_bps: 56000,
                bearer_type: BearerType::Any,
                framing_type: FramingType::Either,
                packet_recv_window_size: 64,
                packet_processing_delay: 0,
                phone_number_length: 7,
                phone_number: text(b"5559876"),
                subaddress: text(b""),
            }),
        ),
        (
            Endpoint::Client,
            Message::OutgoingCallReply(OutgoingCallReply {
                call_id: pac_call + 1,
                peer_call_id: pns_call + 1,
                result: OutgoingCallResult::Busy,
                error: ErrorCode::None,
                cause_code: CauseCode::UserBusy,
                connect_speed: 0,
                packet_recv_window_size: 16,
                packet_processing_delay: 0,
                physical_channel_id: 1,
            }),
        ),
        (
            Endpoint::Client,
            Message::WanErrorNotify(WanErrorNotify {
                peer_call_id: pns_call,
                crc_errors: 3,
                framing_errors: 1,
                hardware_overruns: 0,
                buffer_overruns: 0,
                timeout_errors: 2,
                alignment_errors: 0,
            }),
        ),
        (
            Endpoint::Server,
            Message::CallClearRequest(CallClearRequest { call_id: pns_call }),
        ),
        (
            Endpoint::Client,
            Message::CallDisconnectNotify(CallDisconnectNotify {
                call_id: pac_call,
                result: CallDisconnectResult::Request,
                error: ErrorCode::None,
                cause_code: CauseCode::None,
                call_statistics: CallStatistics::new(b"rx 10 tx 12").unwrap(),
            }),
        ),
        (
            Endpoint::Client,
            Message::StopControlConnectionRequest(StopControlConnectionRequest {
                reason: StopReason::None,
            }),
        ),
        (
            Endpoint::Server,
            Message::StopControlConnectionReply(StopControlConnectionReply {
                result: StopControlConnectionResult::Ok,
                error: ErrorCode::None,
            }),
        ),
    ]
}

/// What tshark must show for one record: (field, value), `None` meaning "absent".
type Expect = Vec<(&'static str, Option<String>)>;

fn some(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn tshark_decodes_pptp_control_and_gre() {
    require_tshark();
    let dir = TempDir::new("pptp");
    let file = dir.path("pptp.pcap");
    let pac = Ipv4Addr::new(192, 0, 2, 1);
    let pns = Ipv4Addr::new(192, 0, 2, 2);
    let (client_isn, server_isn) = (0x1000_0000u32, 0xffff_ff00u32); // the server's wraps
    let mut flow = TcpFlow::new(
        SocketAddrV4::new(pac, 40001),
        SocketAddrV4::new(pns, PPTP_PORT),
        client_isn,
        server_isn,
    );
    let mut records: Vec<(Vec<u8>, Expect)> = Vec::new();
    for p in flow.handshake().unwrap() {
        records.push((p, vec![("pptp.type", None)]));
    }

    // The control connection: each message in its own segment, in both directions, with
    // relative TCP sequence numbers tshark must agree with.
    let messages = pptp_messages();
    let mut types = Vec::new();
    for (from, msg) in &messages {
        let bytes = msg.to_vec();
        assert_eq!(Message::parse(&bytes).unwrap(), *msg);
        let (own_isn, peer_isn, src) = match from {
            Endpoint::Client => (client_isn, server_isn, pac),
            Endpoint::Server => (server_isn, client_isn, pns),
        };
        let other = match from {
            Endpoint::Client => Endpoint::Server,
            Endpoint::Server => Endpoint::Client,
        };
        let rel_seq = flow.next_seq(*from).wrapping_sub(own_isn);
        let rel_ack = flow.next_seq(other).wrapping_sub(peer_isn);
        let control_type = u16::from(msg.control_type());
        types.push(control_type);
        let mut want: Expect = vec![
            ("ip.src", some(src)),
            (
                "tcp.srcport",
                some(if src == pac { 40001 } else { PPTP_PORT }),
            ),
            ("tcp.seq", some(rel_seq)),
            ("tcp.ack", some(rel_ack)),
            ("tcp.len", some(bytes.len())),
            ("pptp.length", some(bytes.len())),
            ("pptp.type", some(1)),
            ("pptp.magic_cookie", some("0x1a2b3c4d")),
            ("pptp.control_message_type", some(control_type)),
        ];
        match msg {
            Message::StartControlConnectionRequest(m) => {
                want.push(("pptp.host_name", some(m.host_name.to_string_lossy())));
                want.push(("pptp.vendor_name", some(m.vendor.to_string_lossy())));
                want.push(("pptp.maximum_channels", some(m.maximum_channels)));
            }
            Message::StartControlConnectionReply(m) => {
                want.push(("pptp.host_name", some(m.host_name.to_string_lossy())));
                want.push(("pptp.control_result", some(u8::from(m.result))));
            }
            Message::EchoRequest(m) => want.push(("pptp.identifier", some(m.identifier))),
            Message::EchoReply(m) => {
                want.push(("pptp.identifier", some(m.identifier)));
                want.push(("pptp.echo_result", some(u8::from(m.result))));
            }
            Message::IncomingCallRequest(m) => {
                want.push(("pptp.call_id", some(m.call_id)));
                want.push(("pptp.call_serial_number", some(m.call_serial_number)));
                want.push((
                    "pptp.dialing_number",
                    some(m.dialing_number.to_string_lossy()),
                ));
            }
            Message::IncomingCallReply(m) => {
                want.push(("pptp.call_id", some(m.call_id)));
                want.push(("pptp.peer_call_id", some(m.peer_call_id)));
                want.push(("pptp.in_result", some(u8::from(m.result))));
            }
            Message::IncomingCallConnected(m) => {
                want.push(("pptp.peer_call_id", some(m.peer_call_id)));
                want.push(("pptp.connect_speed", some(m.connect_speed)));
            }
            Message::OutgoingCallRequest(m) => {
                want.push(("pptp.call_id", some(m.call_id)));
                want.push(("pptp.phone_number", some(m.phone_number.to_string_lossy())));
            }
            Message::OutgoingCallReply(m) => {
                want.push(("pptp.call_id", some(m.call_id)));
                want.push(("pptp.peer_call_id", some(m.peer_call_id)));
                want.push(("pptp.out_result", some(u8::from(m.result))));
            }
            Message::SetLinkInfo(m) => {
                want.push(("pptp.peer_call_id", some(m.peer_call_id)));
                want.push(("pptp.send_accm", some(format!("0x{:08x}", m.send_accm))));
            }
            Message::WanErrorNotify(m) => {
                want.push(("pptp.peer_call_id", some(m.peer_call_id)));
                want.push(("pptp.crc_errors", some(m.crc_errors)));
            }
            Message::CallClearRequest(m) => want.push(("pptp.call_id", some(m.call_id))),
            Message::CallDisconnectNotify(m) => {
                want.push(("pptp.call_id", some(m.call_id)));
                want.push(("pptp.disc_result", some(u8::from(m.result))));
            }
            Message::StopControlConnectionRequest(m) => {
                want.push(("pptp.reason", some(u8::from(m.reason))));
            }
            Message::StopControlConnectionReply(m) => {
                want.push(("pptp.stop_result", some(u8::from(m.result))));
            }
        }
        records.push((flow.segment(*from, &bytes).unwrap(), want));
    }
    types.sort_unstable();
    assert_eq!(
        types,
        (1..=15).collect::<Vec<u16>>(),
        "all 15 message types"
    );

    // The call's PPP frames in enhanced GRE: caller frames PAC -> PNS (key = the PNS's Call
    // ID), the others PNS -> PAC; every third packet without an acknowledgment.
    let mut next_seq = [0u32; 2];
    let mut last_rx: [Option<u32>; 2] = [None, None];
    let mut ip_id = 0u16;
    for (i, (d, frame)) in ppp_frames().iter().enumerate() {
        let side = usize::from(*d == Direction::Sent);
        let (src, dst, call) = if side == 0 {
            (pac, pns, PNS_CALL)
        } else {
            (pns, pac, PAC_CALL)
        };
        let seq = next_seq[side];
        next_seq[side] += 1;
        let ack = if i % 3 == 0 { None } else { last_rx[side] };
        last_rx[1 - side] = Some(seq);
        let len = u16::try_from(frame.len()).unwrap();
        let gre = GreRepr::data(call, len, SeqNumber(seq), ack.map(SeqNumber));
        let mut bytes = Vec::new();
        gre.emit_with_payload(frame, &mut bytes);
        assert_eq!(GreRepr::parse_bytes(&bytes).unwrap(), (gre, &frame[..]));
        ip_id += 1;
        let protocol = FrameRepr::parse(frame).unwrap().protocol;
        let want: Expect = vec![
            ("ip.src", some(src)),
            ("gre.proto", some("0x880b")),
            ("gre.flags.version", some(1)),
            ("gre.key.call_id", some(call)),
            ("gre.key.payload_length", some(len)),
            ("gre.sequence_number", some(seq)),
            ("gre.ack_number", ack.map(|a| a.to_string())),
            (
                "ppp.protocol",
                some(format!("0x{:04x}", u16::from(protocol))),
            ),
        ];
        records.push((gre_in_ipv4(src, dst, ip_id, &bytes).unwrap(), want));
    }
    // An acknowledgment-only packet.
    let last = next_seq[1] - 1;
    let mut bytes = Vec::new();
    GreRepr::ack_only(PNS_CALL, SeqNumber(last)).emit(&mut bytes);
    let want: Expect = vec![
        ("gre.key.call_id", some(PNS_CALL)),
        ("gre.key.payload_length", some(0)),
        ("gre.sequence_number", None),
        ("gre.ack_number", some(last)),
        ("ppp.protocol", None),
    ];
    records.push((gre_in_ipv4(pac, pns, ip_id + 1, &bytes).unwrap(), want));
    // Orderly close.
    records.push((
        flow.fin(Endpoint::Client).unwrap(),
        vec![("tcp.flags.fin", some(1))],
    ));
    records.push((
        flow.fin(Endpoint::Server).unwrap(),
        vec![("tcp.flags.fin", some(1))],
    ));
    records.push((
        flow.ack(Endpoint::Client).unwrap(),
        vec![("tcp.len", some(0))],
    ));

    let mut w = PcapWriter::new(std::fs::File::create(&file).unwrap(), LinkType::Raw).unwrap();
    let base = Duration::from_secs(1_700_000_000);
    for (i, (r, _)) in records.iter().enumerate() {
        let ts = base + Duration::from_millis(5 * u64::try_from(i).unwrap());
        w.write_packet(ts, r).unwrap();
    }
    drop(w);

    let mut fields: Vec<&str> = records
        .iter()
        .flat_map(|(_, want)| want.iter().map(|(f, _)| *f))
        .collect();
    fields.sort_unstable();
    fields.dedup();
    let frames = tshark_fields(&file, &fields);
    assert_eq!(frames.len(), records.len());
    for (n, ((_, want), got)) in records.iter().zip(&frames).enumerate() {
        for (field, value) in want {
            assert_eq!(
                got.get(*field),
                value.as_ref(),
                "frame {} field {field}; tshark: {got:?}",
                n + 1
            );
        }
    }
    assert_clean(&file);
}
