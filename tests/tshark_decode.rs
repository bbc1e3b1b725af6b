//! Wireshark as the judge of our wire formats: writes pcaps with the crate's emitters and the
//! pcap writer, runs `tshark` on them, and checks that it decodes the fields we set and reports
//! nothing malformed and no expert warnings.
//!
//! tshark is required: the test fails (it does not skip) when it is missing. `.ci/run` installs
//! it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pptp_nas::pcap::{Direction, LinkType, PcapWriter};
use pptp_nas::ppp::packet::{
    CcpCode, CcpOption, ChapMessage, ChapRepr, Compression, ConfigureBuilder, ControlRepr,
    FrameRepr, IpcpOption, LcpCode, LcpMessage, LcpOption, LcpRepr, MppeBits, MsChapV2Response,
    NcpCode, Options, PapMessage, PapRepr, Protocol, RawOption,
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
