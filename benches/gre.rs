//! GRE data plane benchmarks (issue 5):
//! - `gre/encode_window_decode`: one 200-octet PPP frame through `Window::encode_data`,
//!   `GreRepr::parse_bytes` and the receiving `Window::handle_packet`, with an ack-only packet
//!   back every 8 packets (ns per packet).
//! - `gre_raw/loopback_*`: packets per second through two raw IPv4 protocol-47 sockets on
//!   loopback (127.0.0.1 -> 127.0.0.2), with and without batching (sendmmsg + recvmmsg vs one
//!   system call per packet). Needs root; skipped otherwise.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pptp_nas::io::gre_transport::{GreTransport, RawGreSocket, RecvBatch};
use pptp_nas::pptp::gre::GreRepr;
use pptp_nas::pptp::window::{Window, WindowConfig};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn encode_window_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("gre");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_window_decode", |b| {
        let t0 = Instant::now();
        let mut a = Window::new(WindowConfig::new(2));
        let mut rx = Window::new(WindowConfig::new(1));
        let payload = [0x5au8; 200];
        let mut buf = Vec::with_capacity(256);
        let mut ack = Vec::with_capacity(16);
        let mut n = 0u64;
        b.iter(|| {
            buf.clear();
            a.encode_data(t0, black_box(&payload), &mut buf).unwrap();
            let (repr, p) = GreRepr::parse_bytes(&buf).unwrap();
            black_box(rx.handle_packet(t0, &repr, p));
            n += 1;
            if n % 8 == 0 {
                ack.clear();
                if rx.poll_ack(t0, &mut ack) {
                    let (r, p) = GreRepr::parse_bytes(&ack).unwrap();
                    a.handle_packet(t0, &r, p);
                }
            }
        });
    });
    g.finish();
}

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Moves `n` packets A -> B in bursts of 32; returns (received, elapsed).
async fn pump(
    a: &RawGreSocket,
    b: &RawGreSocket,
    n: u64,
    batched: bool,
    pkt: &[u8],
) -> (u64, Duration) {
    let mut batch = RecvBatch::new(32);
    let start = Instant::now();
    let mut got = 0u64;
    let mut sent = 0u64;
    while sent < n {
        let burst = 32.min(n - sent) as usize;
        if batched {
            let list: Vec<(Ipv4Addr, &[u8])> = (0..burst).map(|_| (B, pkt)).collect();
            let mut k = 0;
            while k < burst {
                k += a.send_batch(&list[k..]).await.unwrap();
            }
        } else {
            for _ in 0..burst {
                a.send_to(B, pkt).await.unwrap();
            }
        }
        sent += burst as u64;
        let mut this = 0;
        while this < burst {
            match tokio::time::timeout(Duration::from_millis(200), b.recv_batch(&mut batch)).await {
                Ok(Ok(k)) => this += k,
                _ => break, // lost on loopback (buffer full): counted as not received
            }
        }
        got += this as u64;
    }
    (got, start.elapsed())
}

fn raw_loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("gre_raw");
    g.sample_size(10);
    for batched in [false, true] {
        let sockets = rt.block_on(async {
            Some((
                RawGreSocket::bind(A, batched).ok()?,
                RawGreSocket::bind(B, batched).ok()?,
            ))
        });
        let Some((a, b)) = sockets else {
            eprintln!("gre_raw: skipped (raw sockets need root or CAP_NET_RAW)");
            return;
        };
        let mut pkt = Vec::new();
        Window::new(WindowConfig::new(0xbeef))
            .encode_data(Instant::now(), &[0u8; 200], &mut pkt)
            .unwrap();
        let name = if batched {
            "loopback_batched"
        } else {
            "loopback_unbatched"
        };
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new(name, 200), |bench| {
            bench.iter_custom(|iters| {
                let (got, elapsed) = rt.block_on(pump(&a, &b, iters, batched, &pkt));
                if got < iters {
                    eprintln!("{name}: {} of {iters} lost", iters - got);
                }
                elapsed
            });
        });
    }
    g.finish();
}

criterion_group!(benches, encode_window_decode, raw_loopback);
criterion_main!(benches);
