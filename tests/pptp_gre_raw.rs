//! Raw IPv4 protocol-47 round trip on loopback between 127.0.0.1 and 127.0.0.2 (needs root or
//! CAP_NET_RAW; CI runs as root). Without the privilege the test says so and passes vacuously.
//!
//! Call IDs are derived from the process ID (and differ per test) so that two runs at once on one
//! host do not see each other's packets as their own (the demultiplexer drops them as unknown calls).

use pptp_nas::io::gre_transport::{GreDemux, GreTransport, RawGreSocket, RecvBatch};
use pptp_nas::pptp::window::{Rx, Window, WindowConfig};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const C: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

fn sockets(batch_a: bool, batch_b: bool) -> Option<(RawGreSocket, RawGreSocket)> {
    match (
        RawGreSocket::bind(A, batch_a),
        RawGreSocket::bind(B, batch_b),
    ) {
        (Ok(a), Ok(b)) => Some((a, b)),
        (Err(e), _) | (_, Err(e)) => panic!("raw socket: {e}: needs root or CAP_NET_RAW for raw GRE sockets; run the tests as root, as .ci/run does"),
    }
}

fn ids(salt: u16) -> (u16, u16) {
    let base = (std::process::id() % 15_000) as u16 * 4 + 1000 + salt * 2;
    (base, base + 1)
}

async fn round_trip(batch_a: bool, batch_b: bool) {
    let Some((a, b)) = sockets(batch_a, batch_b) else {
        return;
    };
    let (id_a, id_b) = ids(u16::from(batch_a));
    let t0 = Instant::now();
    let mut win_a = Window::new(WindowConfig {
        ignore_peer_window: true,
        ..WindowConfig::new(id_b)
    });
    let mut win_b = Window::new(WindowConfig::new(id_a));
    let mut demux_a = GreDemux::new();
    demux_a.insert(B, id_a, ());
    let mut demux_b = GreDemux::new();
    demux_b.insert(A, id_b, ());

    // A -> B: 300 data packets, the first 64 through sendmmsg.
    const N: u32 = 300;
    let mut packets = Vec::new();
    for i in 0..N {
        let mut buf = Vec::new();
        win_a.encode_data(t0, &i.to_be_bytes(), &mut buf).unwrap();
        packets.push(buf);
    }
    let first: Vec<(Ipv4Addr, &[u8])> = packets[..64].iter().map(|p| (B, &p[..])).collect();
    let mut sent = 0;
    while sent < first.len() {
        sent += a.send_batch(&first[sent..]).await.unwrap();
    }
    for p in &packets[64..] {
        a.send_to(B, p).await.unwrap();
    }
    // Noise: an unknown call from a known peer, and a packet from an unknown peer.
    let mut stray = Vec::new();
    Window::new(WindowConfig::new(id_b.wrapping_add(7)))
        .encode_data(t0, b"stray", &mut stray)
        .unwrap();
    a.send_to(B, &stray).await.unwrap();
    if let Ok(c) = RawGreSocket::bind(C, false) {
        let mut other = Vec::new();
        Window::new(WindowConfig::new(id_b))
            .encode_data(t0, b"spoof", &mut other)
            .unwrap();
        c.send_to(B, &other).await.unwrap();
    }

    // B receives until every packet is delivered (loopback does not lose at this rate).
    let mut batch = RecvBatch::new(32);
    let mut got = Vec::new();
    let mut batches = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < N as usize || demux_b.stats().unknown_call == 0 {
        let n = tokio::time::timeout_at(deadline, b.recv_batch(&mut batch))
            .await
            .expect("B received everything within 10 s")
            .unwrap();
        assert!(n >= 1);
        batches += 1;
        for (src, gre) in batch.iter() {
            let Ok(((), repr, payload)) = demux_b.classify(src, gre) else {
                continue;
            };
            if win_b.handle_packet(t0, &repr, payload) == Rx::Deliver {
                got.push(u32::from_be_bytes(payload.try_into().unwrap()));
            }
            while let Some(p) = win_b.poll_deliver() {
                got.push(u32::from_be_bytes(p.as_slice().try_into().unwrap()));
            }
        }
    }
    assert_eq!(
        got,
        (0..N).collect::<Vec<_>>(),
        "each exactly once, in order"
    );
    let s = demux_b.stats();
    assert_eq!(s.delivered, u64::from(N));
    assert!(s.unknown_call >= 1, "{s:?}");
    if batch_b {
        assert!(batches < N as usize, "recvmmsg took several per call");
    }

    // B -> A: data with the acknowledgment piggy-backed; A's window empties.
    let mut reply = Vec::new();
    win_b.encode_data(t0, b"reply", &mut reply).unwrap();
    b.send_to(A, &reply).await.unwrap();
    let mut batch = RecvBatch::new(8);
    loop {
        tokio::time::timeout(Duration::from_secs(5), a.recv_batch(&mut batch))
            .await
            .expect("A got the reply")
            .unwrap();
        let mut done = false;
        for (src, gre) in batch.iter() {
            if let Ok(((), repr, payload)) = demux_a.classify(src, gre) {
                assert_eq!(win_a.handle_packet(t0, &repr, payload), Rx::Deliver);
                assert_eq!(payload, b"reply");
                done = true;
            }
        }
        if done {
            break;
        }
    }
    assert_eq!(win_a.unacked(), 0, "acknowledged through the raw socket");
}

#[tokio::test]
async fn raw_gre_round_trip_on_loopback_batched() {
    round_trip(true, true).await;
}

#[tokio::test]
async fn raw_gre_round_trip_on_loopback_unbatched() {
    round_trip(false, false).await;
}
