//! MPPC (RFC 2118) compress and decompress throughput, stateful: a corpus is cut into
//! 1400-octet packets that go through one compressor (and one decompressor) in order, sharing
//! the history, as on a PPP link. Throughput counts uncompressed octets.
//!
//! Corpora are read at bench time, never copied into the repository:
//! - text: /usr/share/common-licenses/GPL-3 (falls back to the first readable English file
//!   listed in `TEXT_FALLBACKS`, and says so);
//! - source: this crate's own src/**/*.rs concatenated;
//! - random: 64 KiB from a seeded xorshift generator.
//!
//! Before measuring, the compression ratio of every match finder on every corpus is printed.
//!
//! Time is the benchmark thread's own on-CPU time (first field of
//! /proc/thread-self/schedstat, read right after a `sched_yield` so it is current), not wall
//! time: the bench machine is shared with other jobs (a load of 10+ on 2 cores gives a thread
//! as little as a tenth of a core of wall time), and on-CPU time is what "one core" means. `MPPC_BENCH_WALL=1` switches to criterion's
//! wall clock.
//!
//! Run: `cargo bench --bench mppc` (add a filter such as `-- compress/text` to narrow it).
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pptp_nas::mppc::{Compressor, Decompressor, MatchFinder, PacketFlags};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const PACKET: usize = 1400;
const TEXT: &str = "/usr/share/common-licenses/GPL-3";
const TEXT_FALLBACKS: &[&str] = &[
    "/usr/share/common-licenses/GPL-2",
    "/usr/share/common-licenses/Apache-2.0",
];

fn text_corpus() -> Vec<u8> {
    for path in std::iter::once(&TEXT).chain(TEXT_FALLBACKS) {
        if let Ok(v) = std::fs::read(path) {
            if *path != TEXT {
                eprintln!("mppc bench: {TEXT} missing, English text from {path}");
            }
            return v;
        }
    }
    panic!("no English text corpus found");
}

fn source_corpus() -> Vec<u8> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, files);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

fn random_corpus() -> Vec<u8> {
    let mut s: u64 = 0x2118_2118_2118_2118;
    (0..65536)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn corpora() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("text", text_corpus()),
        ("source", source_corpus()),
        ("random", random_corpus()),
    ]
}

fn finders() -> Vec<(&'static str, MatchFinder)> {
    vec![
        ("single", MatchFinder::SingleProbe),
        (
            "chain4",
            MatchFinder::Chain {
                depth: 4,
                lazy: false,
            },
        ),
        ("chain6", MatchFinder::default()),
        (
            "chain8",
            MatchFinder::Chain {
                depth: 8,
                lazy: false,
            },
        ),
        (
            "chain16",
            MatchFinder::Chain {
                depth: 16,
                lazy: false,
            },
        ),
        (
            "chain4lazy",
            MatchFinder::Chain {
                depth: 4,
                lazy: true,
            },
        ),
        (
            "chain8lazy",
            MatchFinder::Chain {
                depth: 8,
                lazy: true,
            },
        ),
    ]
}

/// Compresses the corpus as one stream of packets; returns (flags, wire octets) per packet.
fn compress_stream(c: &mut Compressor, data: &[u8]) -> Vec<(PacketFlags, Vec<u8>)> {
    c.reset();
    let mut out = Vec::new();
    data.chunks(PACKET)
        .map(|p| {
            out.clear();
            let f = c.compress(p, &mut out);
            let wire = if f.contains(PacketFlags::COMPRESSED) {
                out.clone()
            } else {
                p.to_vec()
            };
            (f, wire)
        })
        .collect()
}

fn report_ratios(corpora: &[(&str, Vec<u8>)]) {
    eprintln!("mppc compression ratio (wire octets / input octets, {PACKET}-octet packets):");
    for (name, data) in corpora {
        let mut line = format!("  {name:7} {:7} octets:", data.len());
        for (fname, finder) in finders() {
            let mut c = Compressor::with_match_finder(finder);
            let pkts = compress_stream(&mut c, data);
            let wire: usize = pkts.iter().map(|(_, w)| w.len()).sum();
            // Check the stream decodes before trusting the number.
            let mut d = Decompressor::new();
            let mut back = Vec::new();
            for (f, w) in &pkts {
                back.extend_from_slice(d.decompress(*f, w).expect("round trip"));
            }
            assert_eq!(&back, data);
            line += &format!(" {fname}={:.3}", wire as f64 / data.len() as f64);
        }
        eprintln!("{line}");
    }
}

/// On-CPU time of the calling thread, from the scheduler's accounting.
struct CpuTime(WallTime);

fn thread_cpu_ns() -> u64 {
    // The kernel folds the running slice into the total only at scheduler events; a yield is
    // one, so the value read next is current (without it short samples read as zero).
    std::thread::yield_now();
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat (set MPPC_BENCH_WALL=1 to use wall time)")
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = Duration;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns().saturating_sub(start))
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

fn bench_cpu(c: &mut Criterion<CpuTime>) {
    if std::env::var_os("MPPC_BENCH_WALL").is_none() {
        bench(c);
    }
}

fn bench_wall(c: &mut Criterion) {
    if std::env::var_os("MPPC_BENCH_WALL").is_some() {
        bench(c);
    }
}

fn bench<M: Measurement>(c: &mut Criterion<M>) {
    let corpora = corpora();
    report_ratios(&corpora);

    let mut g = c.benchmark_group("mppc/compress");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for (name, data) in &corpora {
        g.throughput(Throughput::Bytes(data.len() as u64));
        for (fname, finder) in finders() {
            let mut comp = Compressor::with_match_finder(finder);
            let mut out = Vec::with_capacity(2 * PACKET);
            g.bench_with_input(BenchmarkId::new(fname, name), data, |b, data| {
                b.iter(|| {
                    comp.reset();
                    let mut total = 0;
                    for p in data.chunks(PACKET) {
                        out.clear();
                        let f = comp.compress(black_box(p), &mut out);
                        total += out.len() + usize::from(f.0);
                    }
                    total
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("mppc/decompress");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for (name, data) in &corpora {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let pkts = compress_stream(&mut Compressor::new(), data);
        let mut d = Decompressor::new();
        g.bench_with_input(BenchmarkId::new("default", name), &pkts, |b, pkts| {
            b.iter(|| {
                let mut total = 0;
                for (f, w) in pkts {
                    total += d.decompress(*f, black_box(w)).map(<[u8]>::len).unwrap_or(0);
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(CpuTime(WallTime));
    targets = bench_cpu
}
criterion_group!(wall, bench_wall);
criterion_main!(cpu, wall);
