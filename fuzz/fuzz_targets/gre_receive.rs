#![no_main]
//! The GRE receive path: raw-socket datagrams (IPv4 + GRE) or bare GRE through the
//! demultiplexer into a call's window, with virtual time. Checks: no panic, exact counters
//! (every data packet is delivered, duplicate, late or still buffered), nothing delivered twice.
use libfuzzer_sys::fuzz_target;
use pptp_nas::io::gre_transport::GreDemux;
use pptp_nas::pptp::gre::GreRepr;
use pptp_nas::pptp::ipv4::parse_raw_gre;
use pptp_nas::pptp::window::{Rx, Window, WindowConfig};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let peer = Ipv4Addr::new(127, 0, 0, 1);
    let mut cfg = WindowConfig::new(0x1234);
    cfg.recv_window = u16::from(mode & 0x1f).max(1);
    cfg.reorder_timeout = if mode & 0x20 != 0 { Duration::ZERO } else { Duration::from_millis(300) };
    let mut window = Window::new(cfg);
    let mut demux = GreDemux::new();
    demux.insert(peer, 0x0001, ());
    let mut delivered = 0u64;
    let (mut dup, mut late) = (0u64, 0u64);
    let mut now = t0;
    let mut out = Vec::new();
    for chunk in rest.split(|b| *b == 0xa5) {
        let Some((&dt, bytes)) = chunk.split_first() else {
            continue;
        };
        now += Duration::from_millis(u64::from(dt) * 10);
        let (src, gre) = if mode & 0x40 != 0 {
            match parse_raw_gre(bytes) {
                Ok(raw) => {
                    let start = bytes.len() - raw.gre.buffer_len().min(bytes.len());
                    (raw.ip.src, bytes.get(start..).unwrap_or_default())
                }
                Err(_) => continue,
            }
        } else {
            (peer, bytes)
        };
        if let Ok(((), repr, payload)) = demux.classify(src, gre) {
            match window.handle_packet(now, &repr, payload) {
                Rx::Deliver => delivered += 1,
                Rx::Duplicate => dup += 1,
                Rx::Late => late += 1,
                Rx::Buffered | Rx::AckOnly => {}
            }
        }
        window.handle_timeout(now);
        while window.poll_deliver().is_some() {
            delivered += 1;
        }
        out.clear();
        let _ = window.poll_ack(now, &mut out);
        if !out.is_empty() {
            assert!(GreRepr::parse_bytes(&out).is_ok());
        }
        let _ = window.encode_data(now, b"x", &mut out);
        if let Some(t) = window.poll_timeout() {
            // Whatever is due now must be handled by poll_ack/handle_timeout above.
            let _ = t;
        }
    }
    // Flush the reorder buffer.
    window.handle_timeout(now + Duration::from_secs(3600));
    while window.poll_deliver().is_some() {
        delivered += 1;
    }
    let s = window.stats();
    assert_eq!(window.buffered(), 0);
    assert_eq!(s.delivered, delivered);
    assert_eq!(s.duplicate, dup);
    // Every data packet is exactly one of: delivered (directly or from the buffer), duplicate,
    // or dropped as late.
    assert_eq!(s.received, delivered + dup + late);
});

