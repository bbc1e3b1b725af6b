//! Feeds arbitrary DTE bytes, line events and time steps to the soft-modem's Hayes interpreter.
//! The first byte of each 16-byte chunk picks a line event and a time step; the rest is typed.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pptp_nas::modem::at::{Hayes, HayesConfig, Personality};
use pptp_nas::modem::result::CallerId;

fuzz_target!(|data: &[u8]| {
    let personality = if data.first().is_some_and(|b| b & 1 == 1) {
        Personality::IsdnTa
    } else {
        Personality::Analog
    };
    let mut m = Hayes::new(HayesConfig {
        personality,
        ring_interval: Duration::from_millis(500),
    });
    let mut now = Instant::now();
    for chunk in data.chunks(16) {
        let Some((&ctl, bytes)) = chunk.split_first() else { continue };
        now += Duration::from_millis(u64::from(ctl >> 3) * 40);
        match ctl & 7 {
            0 => {
                let _ = m.line_ring(now, CallerId { number: Some("5551234".into()), ..Default::default() });
            }
            1 => m.line_connected(33600),
            2 => m.line_carrier_lost(),
            3 => m.line_data(bytes),
            4 => m.line_busy(),
            5 => m.line_ring_stopped(),
            _ => {}
        }
        m.handle_dte(now, bytes);
        if let Some(t) = m.poll_timeout() {
            if t <= now {
                m.handle_timeout(now);
            }
        }
        let out = m.poll_dte().unwrap_or_default();
        // Output is linear in the input: at most one bounded command line's worth per DTE byte.
        assert!(out.len() <= (bytes.len() + 1) * 2 * (pptp_nas::modem::at::MAX_INFO + 512));
        let _ = m.poll_line();
        while m.poll_event().is_some() {}
    }
});
