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
//! `MPPC_FREEBSD_DIR=<dir>` switches to the FreeBSD comparison's corpora (`<dir>/text.bin`,
//! `source.bin`, `random.bin`) and cross-checks streams with FreeBSD's MPPC: see
//! `freebsd_cross_check` and docs/PERFORMANCE.md (the C harness around FreeBSD's
//! sys/net/mppcc.c and mppcd.c is not part of this repository).
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
use std::io::Write;
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
    if let Some(dir) = std::env::var_os("MPPC_FREEBSD_DIR") {
        let dir = Path::new(&dir);
        return ["text", "source", "random"]
            .into_iter()
            .map(|name| {
                let path = dir.join(format!("{name}.bin"));
                let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                (name, data)
            })
            .collect();
    }
    vec![
        ("text", text_corpus()),
        ("source", source_corpus()),
        ("random", random_corpus()),
    ]
}

/// Builds one compressor configuration.
type MakeCompressor = fn() -> Compressor;

/// The match finders compared, by name. `*16` are the insertion policy of the previous
/// release (every position of matches up to 16 octets hashed); the others hash the last two
/// positions of each match (the current default).
fn finders() -> Vec<(&'static str, MakeCompressor)> {
    fn chain(depth: u16, lazy: bool) -> MatchFinder {
        MatchFinder::Chain { depth, lazy }
    }
    fn bucket(ways: u8, lazy: bool) -> MatchFinder {
        MatchFinder::Bucket { ways, lazy }
    }
    vec![
        ("single", || {
            Compressor::with_match_finder(MatchFinder::SingleProbe)
        }),
        ("single16", || {
            Compressor::tuned(MatchFinder::SingleProbe, 32, 8, Some(16))
        }),
        ("bucket2", Compressor::new),
        ("bucket4", || {
            Compressor::with_match_finder(bucket(4, false))
        }),
        ("bucket8", || {
            Compressor::with_match_finder(bucket(8, false))
        }),
        ("bucket4lazy", || {
            Compressor::with_match_finder(bucket(4, true))
        }),
        ("chain6", || Compressor::with_match_finder(chain(6, false))),
        ("chain6_16", || {
            Compressor::tuned(chain(6, false), 32, 8, Some(16))
        }),
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
        for (fname, make) in finders() {
            let mut c = make();
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

/// With `MPPC_FREEBSD_DIR` set: the FreeBSD comparison's files. Writes our default
/// compressor's stream of each corpus to `ours_<corpus>.stream` (records of flags, length as
/// two octets big-endian, payload: the format the FreeBSD harness reads), and decodes the
/// harness's `fbsd_<corpus>.stream` with our decompressor, which must give the corpus back.
fn freebsd_cross_check(corpora: &[(&str, Vec<u8>)]) {
    let Some(dir) = std::env::var_os("MPPC_FREEBSD_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    for (name, data) in corpora {
        let pkts = compress_stream(&mut Compressor::new(), data);
        let path = dir.join(format!("ours_{name}.stream"));
        let mut f = std::fs::File::create(&path).expect("create stream file");
        for (flags, wire) in &pkts {
            let len = u16::try_from(wire.len()).expect("packet fits in 16 bits");
            f.write_all(&[flags.0, (len >> 8) as u8, len as u8])
                .expect("write");
            f.write_all(wire).expect("write");
        }
        eprintln!("wrote {path:?}: {} packets", pkts.len());

        let path = dir.join(format!("fbsd_{name}.stream"));
        let Ok(stream) = std::fs::read(&path) else {
            eprintln!("{path:?} missing: run the FreeBSD harness first");
            continue;
        };
        let mut d = Decompressor::new();
        let mut back = Vec::new();
        let mut rest = &stream[..];
        let (mut n, mut fronts) = (0, 0);
        while let [flags, hi, lo, tail @ ..] = rest {
            let len = usize::from(*hi) << 8 | usize::from(*lo);
            let (pkt, next) = tail.split_at(len);
            let flags = PacketFlags::from_header_octet(*flags);
            fronts += usize::from(flags.contains(PacketFlags::AT_FRONT));
            let out = d
                .decompress(flags, pkt)
                .unwrap_or_else(|e| panic!("{path:?} packet {n}: {e}"));
            back.extend_from_slice(out);
            rest = next;
            n += 1;
        }
        assert!(back == *data, "{path:?} decodes to something else");
        eprintln!("decoded {path:?}: {n} packets ({fronts} with B), identical to {name}.bin");
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
    freebsd_cross_check(&corpora);

    let mut g = c.benchmark_group("mppc/compress");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for (name, data) in &corpora {
        g.throughput(Throughput::Bytes(data.len() as u64));
        for (fname, make) in finders() {
            let mut comp = make();
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
