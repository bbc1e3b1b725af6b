//! Fuzzes the MPPC+MPPE receive path in every configuration.
//!
//! The first octet picks the configuration (key length or none, stateful/stateless, MPPC on or
//! off, a small or large rekey cap). The rest is a script of operations: deliver an arbitrary
//! packet, deliver a genuine packet from a matching transmitter (optionally with a flipped
//! bit), lose a genuine packet, or pass a Reset-Request/Reset-Ack across. Nothing may panic,
//! and events are drained as the engine would.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pptp_nas::mppe::keys::{KeyStrength, StartKey};
use pptp_nas::mppe::pipeline::{
    CcpReceive, CcpTransmit, PipelineConfig, Receiver, Transmitter,
};
use pptp_nas::mppe::{Mode, ReceiverConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let mppe = match sel & 3 {
        0 => Some(KeyStrength::Bits40),
        1 => Some(KeyStrength::Bits56),
        2 => Some(KeyStrength::Bits128),
        _ => None,
    };
    let mode = if sel & 4 != 0 { Mode::Stateless } else { Mode::Stateful };
    let mppc = mppe.is_none() || sel & 8 != 0;
    let cfg = PipelineConfig {
        mppc,
        mppe,
        mode,
        receiver: ReceiverConfig {
            max_rekey: if sel & 16 != 0 { 8 } else { 2047 },
            sanity_threshold: 1600,
        },
    };
    let key = mppe.map(|s| StartKey::from_slice(&[0x5A; 16][..s.key_len()]));
    let (Ok(mut tx), Ok(mut rx)) = (Transmitter::new(&cfg, key.clone()), Receiver::new(&cfg, key))
    else {
        return;
    };
    let mut wire = Vec::new();
    while let Some((&op, tail)) = rest.split_first() {
        let len = usize::from(op >> 3).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        match op & 7 {
            0 | 1 => {
                let mut pkt = chunk.to_vec();
                let _ = rx.decode(&mut pkt);
            }
            2 | 3 => {
                wire.clear();
                if tx.encode(chunk, &mut wire).is_ok() {
                    if op & 1 == 1 {
                        let at = usize::from(op) % wire.len().max(1);
                        if let Some(b) = wire.get_mut(at) {
                            *b ^= 1 << (op % 8);
                        }
                    }
                    let _ = rx.decode(&mut wire);
                }
            }
            4 => {
                wire.clear();
                let _ = tx.encode(chunk, &mut wire);
            }
            5 => tx.handle_reset_request(),
            6 => rx.handle_reset_ack(),
            _ => {
                let mut pkt = chunk.to_vec();
                let _ = rx.decode(&mut pkt);
                let _ = rx.decode(&mut pkt);
            }
        }
        while let Some(ev) = rx.poll_event() {
            if matches!(ev, pptp_nas::mppe::Event::SendResetRequest) {
                tx.handle_reset_request();
            }
        }
    }
});
