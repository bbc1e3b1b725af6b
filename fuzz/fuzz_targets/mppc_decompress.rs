#![no_main]
//! MPPC decompressor against arbitrary packets with arbitrary flags, across several packets
//! sharing one history; plus a compress -> decompress round trip of the same bytes.
//!
//! Input layout: one octet choosing the compressor's match finder, then a sequence of records
//! `flags, len_hi, len_lo, len octets...` (the last record takes whatever is left). Each
//! record is one packet.
use libfuzzer_sys::fuzz_target;
use pptp_nas::mppc::{Compressor, Decompressor, MatchFinder, PacketFlags, HISTORY_SIZE};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let lazy = pick & 0x80 != 0;
    let finder = match pick & 7 {
        0 => MatchFinder::SingleProbe,
        1 => MatchFinder::Bucket { ways: 2, lazy },
        2 => MatchFinder::Bucket { ways: 8, lazy },
        3 => MatchFinder::Chain { depth: 1, lazy },
        4 => MatchFinder::Chain { depth: 16, lazy },
        _ => MatchFinder::Bucket { ways: 4, lazy },
    };
    // Insertion policy: default (last two positions), or every position of short matches.
    let insert = match (pick >> 3) & 3 {
        0 => Some(16),
        1 => Some(usize::MAX),
        _ => None,
    };
    let mut d = Decompressor::new();
    let mut c = Compressor::tuned(finder, 32, 8, insert);
    let mut check = Decompressor::new();
    let mut out = Vec::new();
    let mut rest = data;
    while let [flags, hi, lo, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;

        let flags = PacketFlags::from_header_octet(*flags);
        match d.decompress(flags, packet) {
            Ok(plain) => {
                if flags.contains(PacketFlags::COMPRESSED) {
                    assert!(plain.len() <= HISTORY_SIZE);
                } else {
                    assert_eq!(plain, packet);
                }
            }
            Err(_) => assert!(d.needs_flush()),
        }

        // Round trip: whatever the compressor makes of these bytes must come back.
        out.clear();
        let f = c.compress(packet, &mut out);
        let wire: &[u8] = if f.contains(PacketFlags::COMPRESSED) {
            assert!(out.len() <= packet.len());
            &out
        } else {
            assert!(out.is_empty());
            packet
        };
        let got = check.decompress(f, wire).expect("own output decodes");
        assert_eq!(got, packet);
    }
});
