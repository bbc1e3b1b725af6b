//! Known packets from outside this project, fed to the engine's parts (facts, not code).

use std::net::Ipv4Addr;
use std::time::Instant;

use pptp_nas::ppp::fsm::{Fsm, FsmConfig};
use pptp_nas::ppp::ipcp::{IpcpConfig, IpcpNegotiator};

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
