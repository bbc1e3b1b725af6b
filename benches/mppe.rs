//! MPPE benchmarks on 1400-octet packets (docs/PERFORMANCE.md, section "MPPE").
//!
//! Criterion measures wall-clock time. Because the build machine is shared, the bench also
//! prints a CPU-time summary at the end: each case runs for about a second and its throughput
//! is computed from the thread's own CPU time (`/proc/thread-self/schedstat`), which is what
//! one dedicated core would do. Both numbers go into the performance notes.
//!
//! Run: `cargo bench --bench mppe` (add `-- --quick` for a short run).
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use pptp_nas::mppe::keys::{initial_session_key, next_session_key, KeyStrength, StartKey};
use pptp_nas::mppe::pipeline::{CcpReceive, CcpTransmit, PipelineConfig, Receiver, Transmitter};
use pptp_nas::mppe::transform::{self, Mode};
use pptp_nas::mppe::ReceiverConfig;

const PACKET: usize = 1400;

fn start_key(strength: KeyStrength) -> StartKey {
    StartKey::from_slice(&[0x8B; 16][..strength.key_len()])
}

fn payload(text: bool) -> Vec<u8> {
    let mut p = vec![0x00, 0x21];
    let mut x = 0x1234_5678_9abc_def1u64;
    while p.len() < PACKET {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if text {
            p.extend_from_slice(b"GET /index.html HTTP/1.1\r\nHost: example.net\r\n");
            p.push(x as u8);
        } else {
            p.push(x as u8);
        }
    }
    p.truncate(PACKET);
    p
}

/// One benchmark case: a closure processing one 1400-octet packet per call.
struct Case {
    name: &'static str,
    run: Box<dyn FnMut()>,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (name, mode) in [
        ("mppe128_stateful_encrypt", Mode::Stateful),
        ("mppe128_stateless_encrypt", Mode::Stateless),
    ] {
        let mut tx =
            transform::Sender::new(start_key(KeyStrength::Bits128), KeyStrength::Bits128, mode);
        let data = payload(false);
        let mut out = vec![0u8; PACKET + 2];
        v.push(Case {
            name,
            run: Box::new(move || {
                tx.encrypt(black_box(&data), &mut out).unwrap();
                black_box(&out);
            }),
        });
    }
    for (name, mode) in [
        ("mppe128_stateful_roundtrip", Mode::Stateful),
        ("mppe128_stateless_roundtrip", Mode::Stateless),
    ] {
        let mut tx =
            transform::Sender::new(start_key(KeyStrength::Bits128), KeyStrength::Bits128, mode);
        let mut rx = transform::Receiver::new(
            start_key(KeyStrength::Bits128),
            KeyStrength::Bits128,
            mode,
            ReceiverConfig::default(),
        );
        let data = payload(false);
        let mut out = vec![0u8; PACKET + 2];
        v.push(Case {
            name,
            run: Box::new(move || {
                tx.encrypt(black_box(&data), &mut out).unwrap();
                let (_, plain) = rx.open(&mut out).unwrap();
                black_box(plain);
            }),
        });
    }
    {
        let mut tx = transform::Sender::new(
            start_key(KeyStrength::Bits40),
            KeyStrength::Bits40,
            Mode::Stateless,
        );
        let data = payload(false);
        let mut out = vec![0u8; PACKET + 2];
        v.push(Case {
            name: "mppe40_stateless_encrypt",
            run: Box::new(move || {
                tx.encrypt(black_box(&data), &mut out).unwrap();
                black_box(&out);
            }),
        });
    }
    for (name, mode) in [
        ("mppc_mppe128_stateful_text_roundtrip", Mode::Stateful),
        ("mppc_mppe128_stateless_text_roundtrip", Mode::Stateless),
    ] {
        let cfg = PipelineConfig {
            mppc: true,
            mppe: Some(KeyStrength::Bits128),
            mode,
            receiver: ReceiverConfig::default(),
        };
        let mut tx = Transmitter::new(&cfg, Some(start_key(KeyStrength::Bits128))).unwrap();
        let mut rx = Receiver::new(&cfg, Some(start_key(KeyStrength::Bits128))).unwrap();
        let data = payload(true);
        let mut out = Vec::with_capacity(2 * PACKET);
        v.push(Case {
            name,
            run: Box::new(move || {
                out.clear();
                tx.encode(black_box(&data), &mut out).unwrap();
                let plain = rx.decode(&mut out).unwrap();
                black_box(plain);
            }),
        });
    }
    v
}

fn criterion_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("mppe_1400");
    g.throughput(Throughput::Bytes(PACKET as u64));
    for mut case in cases() {
        g.bench_function(case.name, |b| b.iter(&mut case.run));
    }
    g.finish();
    let start = start_key(KeyStrength::Bits128);
    let mut key = initial_session_key(&start, KeyStrength::Bits128);
    c.bench_function("key_change_128", |b| {
        b.iter(|| {
            key = next_session_key(&start, &key, KeyStrength::Bits128);
            black_box(&key);
        })
    });
}

/// This thread's CPU time so far (scheduler statistics, nanoseconds).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn cpu_time_summary() {
    println!("\nCPU-time summary (1400-octet packets, one thread):");
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "case", "MB/s (cpu)", "MB/s (wall)", "cpu %"
    );
    for mut case in cases() {
        for _ in 0..200 {
            (case.run)();
        }
        let (Some(c0), w0) = (thread_cpu(), Instant::now()) else {
            println!("(no /proc/thread-self/schedstat; skipped)");
            return;
        };
        let mut n = 0u64;
        while w0.elapsed() < Duration::from_millis(1500) {
            for _ in 0..100 {
                (case.run)();
            }
            n += 100;
        }
        let wall = w0.elapsed().as_secs_f64();
        let cpu = thread_cpu().map_or(wall, |c1| (c1 - c0).as_secs_f64());
        let bytes = (n * PACKET as u64) as f64;
        println!(
            "{:<40} {:>12.0} {:>12.0} {:>7.0}%",
            case.name,
            bytes / cpu / 1e6,
            bytes / wall / 1e6,
            100.0 * cpu / wall
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        cpu_time_summary();
    }
}
