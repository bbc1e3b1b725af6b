//! Parses arbitrary modem output: line by line as result codes, and as a stream through the
//! modem-control state machine (lines, timeouts and PAC commands interleaved).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pptp_nas::modem::control::{AnswerMode, ControlConfig, ModemControl};
use pptp_nas::modem::result::{decode_cid_packet, LineSplitter, Response};

fuzz_target!(|data: &[u8]| {
    let _ = Response::parse(data);
    let _ = decode_cid_packet(data);
    let mut m = ModemControl::new(ControlConfig { answer: AnswerMode::OnRing(2), ..Default::default() });
    let mut now = Instant::now();
    m.start(now);
    let mut lines = LineSplitter::default();
    for &b in data {
        match b {
            0x01 => now += Duration::from_secs(7),
            0x02 => {
                if let Some(t) = m.poll_timeout() {
                    now = now.max(t);
                }
                m.handle_timeout(now);
            }
            0x03 => m.hangup(now),
            0x04 => {
                let _ = m.dial(now, "5551234");
            }
            0x05 => {
                let _ = m.answer(now);
            }
            0x06 => m.carrier_lost(now),
            0x07 => m.dtr_unsupported(now),
            _ => {
                if let Some(line) = lines.push(b) {
                    assert!(line.len() <= pptp_nas::modem::result::MAX_RESPONSE_LINE);
                    m.handle_line(now, &line);
                }
            }
        }
        while m.poll_transmit().is_some() {}
        while m.poll_event().is_some() {}
    }
});
