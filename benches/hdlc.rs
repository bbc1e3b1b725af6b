//! HDLC framing benchmarks (RFC 1662): encode and decode of 1500-octet frames, FCS-16/32.
//!
//! Throughput is counted in payload octets (the unframed PPP frame), so the worst case, whose
//! wire image is twice as long, is not flattered.
//!
//! Run: `cargo bench --bench hdlc` (wall-clock time, criterion's default).
//!
//! The machine is shared with other jobs, and wall-clock time then counts the time this thread
//! waited for a core. `HDLC_BENCH_CPU=1 cargo bench --bench hdlc` measures the thread's own CPU
//! time instead (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, nanosecond resolution). Group names
//! then start with `cpu/`.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{black_box, Criterion, Throughput};
use pptp_nas::hdlc::{
    fcs16, fcs32, Decoder, DecoderConfig, Encoder, EncoderConfig, FcsKind, FCS16_INIT, FCS32_INIT,
};

const LEN: usize = 1500;
/// Frames per iteration: enough that per-call overhead shows, small enough to stay in L1/L2.
const FRAMES: usize = 16;

/// Deterministic pseudo-random payload (xorshift64).
fn random_payload(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every octet needs escaping even with ACCM 0.
fn worst_payload() -> Vec<u8> {
    (0..LEN)
        .map(|i| if i % 2 == 0 { 0x7E } else { 0x7D })
        .collect()
}

fn frames(payload: fn(u64) -> Vec<u8>) -> Vec<Vec<u8>> {
    (0..FRAMES as u64).map(|i| payload(i + 1)).collect()
}

fn accm0(fcs: FcsKind) -> (EncoderConfig, DecoderConfig) {
    (
        EncoderConfig {
            accm: 0,
            fcs,
            ..Default::default()
        },
        DecoderConfig {
            accm: 0,
            fcs,
            ..Default::default()
        },
    )
}

fn wire(cfg: EncoderConfig, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut e = Encoder::new(cfg);
    let mut out = Vec::new();
    for f in frames {
        e.encode(f, &mut out).unwrap();
    }
    out
}

fn bench_case<M: Measurement>(
    c: &mut Criterion<M>,
    prefix: &str,
    name: &str,
    frames: &[Vec<u8>],
    fcs: FcsKind,
) {
    let (ecfg, dcfg) = accm0(fcs);
    let total = (frames.len() * LEN) as u64;
    let mut g = c.benchmark_group(format!("{prefix}{name}"));
    g.throughput(Throughput::BytesDecimal(total));

    let mut enc = Encoder::new(ecfg);
    let mut out = Vec::with_capacity(2 * total as usize + 64);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            for f in frames {
                enc.encode(black_box(f), &mut out).unwrap();
            }
            black_box(out.len())
        })
    });

    let w = wire(ecfg, frames);
    let mut dec = Decoder::new(dcfg);
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut input = black_box(&w[..]);
            let mut n = 0usize;
            while let Some(r) = dec.decode(&mut input) {
                n += r.map_or(0, <[u8]>::len);
            }
            assert_eq!(n, frames.len() * LEN);
            n
        })
    });
    g.finish();
}

fn bench<M: Measurement>(c: &mut Criterion<M>, prefix: &str) {
    let random = frames(random_payload);
    let worst = frames(|_| worst_payload());
    bench_case(c, prefix, "hdlc_accm0_random_1500", &random, FcsKind::Fcs16);
    bench_case(
        c,
        prefix,
        "hdlc_accm0_random_1500_fcs32",
        &random,
        FcsKind::Fcs32,
    );
    bench_case(
        c,
        prefix,
        "hdlc_worst_all_escaped_1500",
        &worst,
        FcsKind::Fcs16,
    );

    // The default ACCM 0xFFFFFFFF on random data (about one octet in eight escaped), as
    // before LCP negotiates ACCM 0.
    let mut g = c.benchmark_group(format!("{prefix}hdlc_accm_ffffffff_random_1500"));
    g.throughput(Throughput::BytesDecimal((random.len() * LEN) as u64));
    let mut enc = Encoder::default();
    let mut out = Vec::new();
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            for f in &random {
                enc.encode(black_box(f), &mut out).unwrap();
            }
            black_box(out.len())
        })
    });
    let w = wire(EncoderConfig::default(), &random);
    let mut dec = Decoder::default();
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut input = black_box(&w[..]);
            let mut n = 0usize;
            while let Some(r) = dec.decode(&mut input) {
                n += r.map_or(0, <[u8]>::len);
            }
            n
        })
    });
    g.finish();

    let p = random_payload(7);
    let mut g = c.benchmark_group(format!("{prefix}fcs_1500"));
    g.throughput(Throughput::BytesDecimal(LEN as u64));
    g.bench_function("fcs16", |b| b.iter(|| fcs16(FCS16_INIT, black_box(&p))));
    g.bench_function("fcs32", |b| b.iter(|| fcs32(FCS32_INIT, black_box(&p))));
    g.finish();
}

/// CPU time consumed by the calling thread.
struct CpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
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
    fn to_f64(&self, d: &Duration) -> f64 {
        d.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are nanoseconds, exactly like wall time: reuse its formatter.
        WallTime.formatter()
    }
}

fn main() {
    if std::env::var_os("HDLC_BENCH_CPU").is_some() {
        let mut c = Criterion::default()
            .with_measurement(CpuTime)
            .configure_from_args();
        bench(&mut c, "cpu/");
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c, "");
        c.final_summary();
    }
}
