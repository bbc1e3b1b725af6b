//! PPTP control message and enhanced GRE codec benchmarks.
//!
//! `cargo bench --bench pptp`. Fixtures are built with the codec itself (same bytes as the
//! captured pptpd/pptp-linux messages the unit tests check).
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pptp_nas::pptp::gre::{GreRepr, SeqNumber};
use pptp_nas::pptp::ipv4::{parse_raw_gre, Ipv4Header};
use pptp_nas::pptp::message::{
    BearerCapabilities, ControlStream, EchoRequest, FramingCapabilities, Message,
    StartControlConnectionRequest, TextField, PROTOCOL_VERSION,
};
use std::net::Ipv4Addr;

fn sccrq() -> Message {
    Message::from(StartControlConnectionRequest {
        protocol_version: PROTOCOL_VERSION,
        framing_capabilities: FramingCapabilities::ASYNC | FramingCapabilities::SYNC,
        bearer_capabilities: BearerCapabilities::ANALOG | BearerCapabilities::DIGITAL,
        maximum_channels: 0xffff,
        firmware_revision: 1,
        host_name: TextField::try_from("local").unwrap(),
        vendor: TextField::try_from("cananian").unwrap(),
    })
}

fn control(c: &mut Criterion) {
    let m = sccrq();
    let wire = m.to_vec();
    let mut g = c.benchmark_group("pptp_control");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_sccrq", |b| {
        b.iter(|| Message::parse(black_box(&wire)))
    });
    let mut out = Vec::with_capacity(256);
    g.bench_function("emit_sccrq", |b| {
        b.iter(|| {
            out.clear();
            black_box(&m).emit(&mut out);
            black_box(out.len())
        })
    });
    // A stream of 64 Echo-Requests fed in 7-octet pieces.
    let stream: Vec<u8> = (0..64)
        .flat_map(|i| Message::from(EchoRequest { identifier: i }).to_vec())
        .collect();
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("stream_64_echo_in_7_octet_chunks", |b| {
        b.iter(|| {
            let mut s = ControlStream::new();
            let mut n = 0;
            for chunk in stream.chunks(7) {
                s.handle_bytes(chunk);
                while let Ok(Some(_)) = s.poll_item() {
                    n += 1;
                }
            }
            assert_eq!(n, 64);
        })
    });
    g.finish();
}

fn gre(c: &mut Criterion) {
    let payload = vec![0x5a; 1400];
    let repr = GreRepr::data(0x6d2f, 1400, SeqNumber(7), Some(SeqNumber(3)));
    let mut gre = Vec::new();
    repr.emit_with_payload(&payload, &mut gre);
    let ip = Ipv4Header::gre(
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        u16::try_from(gre.len()).unwrap(),
    );
    let mut datagram = Vec::new();
    ip.emit(&mut datagram);
    datagram.extend_from_slice(&gre);

    let mut g = c.benchmark_group("gre");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_gre_1400", |b| {
        b.iter(|| GreRepr::parse_bytes(black_box(&gre)).map(|(r, p)| (r, p.len())))
    });
    g.bench_function("parse_ipv4_gre_1400", |b| {
        b.iter(|| parse_raw_gre(black_box(&datagram)).map(|r| r.payload.len()))
    });
    let mut out = Vec::with_capacity(32);
    g.bench_function("emit_gre_header", |b| {
        b.iter(|| {
            out.clear();
            black_box(&repr).emit(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, control, gre);
criterion_main!(benches);
