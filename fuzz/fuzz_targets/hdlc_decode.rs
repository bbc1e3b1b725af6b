//! Fuzzes the RFC 1662 decoder: arbitrary octets, arbitrary chunking, configuration taken from
//! the first input octets. Checks:
//! - no panic, and every call consumes input or returns `None` with the input used up;
//! - chunk invariance: the same stream fed whole gives the same frames, errors and counters;
//! - round trip: every frame decoded successfully re-encodes (with the same ACCM, any extended
//!   map, the same FCS) and re-decodes to itself;
//! - the data itself, framed by the encoder, decodes back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pptp_nas::hdlc::{
    Decoder, DecoderConfig, Encoder, EncoderConfig, EscapeMap, FcsKind, FrameError, MIN_FRAME_LEN,
};

type Out = (Vec<Vec<u8>>, Vec<FrameError>);

fn feed(dec: &mut Decoder, mut data: &[u8], sizes: &[u8]) -> Out {
    let mut out = (Vec::new(), Vec::new());
    let mut i = 0usize;
    while !data.is_empty() {
        let want = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(1).max(1);
        i += 1;
        let n = usize::from(want).min(data.len());
        let (mut chunk, rest) = data.split_at(n);
        data = rest;
        while let Some(r) = dec.decode(&mut chunk) {
            match r {
                Ok(f) => out.0.push(f.to_vec()),
                Err(e) => out.1.push(e),
            }
        }
        assert!(chunk.is_empty());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (head, body) = data.split_at(8);
    let accm = match head[0] & 3 {
        0 => 0,
        1 => 0xFFFF_FFFF,
        _ => u32::from_le_bytes([head[1], head[2], head[3], head[4]]),
    };
    let fcs = if head[0] & 4 == 0 {
        FcsKind::Fcs16
    } else {
        FcsKind::Fcs32
    };
    let max_frame_len = usize::from(head[5]) * 8;
    let ext = EscapeMap::from_words([
        u64::from(head[6]) << 56,
        u64::from(head[7]) * 0x0101_0101,
        u64::from(head[6]),
        u64::from(head[7]) << 40,
    ]);
    let sizes = &head[1..6];
    let cfg = DecoderConfig {
        accm,
        fcs,
        max_frame_len,
    };

    // Arbitrary chunks versus one chunk.
    let mut chunked = Decoder::new(cfg);
    let a = feed(&mut chunked, body, sizes);
    let mut whole = Decoder::new(cfg);
    let b = feed(&mut whole, body, &[255]);
    let mut bytewise = Decoder::new(cfg);
    let c = feed(&mut bytewise, body, &[1]);
    assert_eq!(a, c);
    assert_eq!(b.0, c.0);
    assert_eq!(chunked.counters(), bytewise.counters());
    assert_eq!(chunked.stats(), bytewise.stats());
    let good = chunked.stats().frames_ok;
    assert_eq!(good, a.0.len() as u64);

    // Round trip of everything that decoded.
    let ecfg = EncoderConfig {
        accm,
        extended: ext,
        fcs,
        flag_every_frame: head[0] & 8 != 0,
    };
    let mut enc = Encoder::new(ecfg);
    let mut wire = Vec::new();
    for f in &a.0 {
        enc.encode(f, &mut wire).expect("decoded frames are long enough");
    }
    // And the raw body as one frame.
    let body_ok = enc.encode(body, &mut wire).is_ok();
    assert_eq!(body_ok, body.len() >= MIN_FRAME_LEN);
    let mut dec = Decoder::new(DecoderConfig {
        max_frame_len: max_frame_len.max(body.len()),
        ..cfg
    });
    let r = feed(&mut dec, &wire, sizes);
    assert!(r.1.is_empty(), "{:?}", r.1);
    let mut want = a.0.clone();
    if body_ok {
        want.push(body.to_vec());
    }
    assert_eq!(r.0, want);
    assert!(dec.counters().is_zero());
});
