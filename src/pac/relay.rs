//! The per-call data plane of a PAC line: line bytes -> HDLC decoder -> PPP frame -> GRE, and
//! GRE -> PPP frame -> HDLC encoder with the current send ACCM -> line.
//!
//! The relay is built for throughput: one decoder and one encoder per line with buffers reused
//! for the whole call, GRE packets carved out of a large `BytesMut` (a reference count per
//! packet, an allocation per 256 KiB), received GRE packets drained in batches and written to
//! the line with one `write` per batch.
//!
//! Sequence numbers and acknowledgments follow RFC 2637 §4: every data packet carries a
//! sequence number and piggybacks the last received one; an acknowledgment owed for
//! [`ACK_DELAY`] without data to carry it goes out as an ack-only packet. Received packets are
//! delivered in order of arrival; a packet older than the last delivered is dropped and counted
//! (no reorder buffer: the `pptp::window` core will bring one).

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::gre::GreDatagram;
use super::line::LineStats;
use crate::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig, WanErrorCounters};
use crate::pptp::control::CallInfo;
use crate::pptp::{GreRepr, SeqNumber};

/// How long an acknowledgment may wait for a data packet to ride on.
pub const ACK_DELAY: Duration = Duration::from_millis(100);
/// Received GRE packets handled per line write.
pub(crate) const RX_BATCH: usize = 32;
/// Size of the buffer GRE packets are carved from.
const POOL: usize = 256 * 1024;

/// The per-call data plane.
pub(crate) struct Relay {
    pns_addr: Ipv4Addr,
    peer_call_id: u16,
    gre_tx: mpsc::Sender<GreDatagram>,
    /// Handed to the line loop once (it polls it next to the line).
    pub(crate) gre_rx: Option<mpsc::Receiver<Bytes>>,
    decoder: Decoder,
    encoder: Encoder,
    pool: BytesMut,
    pub(crate) out: Vec<u8>,
    next_seq: SeqNumber,
    last_rx: Option<SeqNumber>,
    ack_sent: Option<SeqNumber>,
    pub(crate) ack_due: Option<Instant>,
    /// Set-Link-Info seen: it overrides snooping.
    sli: bool,
    pub(crate) last_activity: Instant,
    wan_reported: WanErrorCounters,
}

impl Relay {
    pub(crate) fn new(
        pns_addr: Ipv4Addr,
        info: &CallInfo,
        gre_tx: mpsc::Sender<GreDatagram>,
        gre_rx: mpsc::Receiver<Bytes>,
    ) -> Self {
        Relay {
            pns_addr,
            peer_call_id: info.peer_call_id,
            gre_tx,
            gre_rx: Some(gre_rx),
            decoder: Decoder::new(DecoderConfig::default()),
            encoder: Encoder::new(EncoderConfig::default()),
            pool: BytesMut::with_capacity(POOL),
            out: Vec::with_capacity(16 * 1024),
            next_seq: SeqNumber(0),
            last_rx: None,
            ack_sent: None,
            ack_due: None,
            sli: false,
            last_activity: Instant::now(),
            wan_reported: WanErrorCounters::default(),
        }
    }

    /// Line bytes in: decode every complete frame and send it in GRE.
    pub(crate) fn line_in(&mut self, mut data: &[u8], stats: &LineStats) {
        let mut frames = 0u64;
        let mut bytes = 0u64;
        while let Some(r) = self.decoder.decode(&mut data) {
            let Ok(frame) = r else {
                stats.hdlc_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            // The caller acking the PNS's ACCM tells what the caller may now send unescaped.
            let snooped = if self.sli {
                None
            } else {
                snoop_ack_accm(frame)
            };
            let Ok(len) = u16::try_from(frame.len()) else {
                continue;
            };
            let ack = self.last_rx.filter(|a| Some(*a) != self.ack_sent);
            let repr = GreRepr::data(self.peer_call_id, len, self.next_seq, ack.or(self.last_rx));
            self.next_seq = self.next_seq.next();
            if self.pool.capacity() - self.pool.len() < repr.buffer_len() {
                self.pool = BytesMut::with_capacity(POOL);
            }
            repr.emit(&mut self.pool);
            self.pool.put_slice(frame);
            let packet = self.pool.split().freeze();
            if let Some(accm) = snooped {
                self.decoder.set_accm(accm);
            }
            frames += 1;
            bytes += u64::from(len);
            if self.last_rx.is_some() {
                self.ack_sent = self.last_rx;
                self.ack_due = None;
            }
            let d = GreDatagram {
                peer: self.pns_addr,
                local: Ipv4Addr::UNSPECIFIED,
                packet,
            };
            if self.gre_tx.try_send(d).is_err() {
                stats.gre_tx_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if frames > 0 {
            self.last_activity = Instant::now();
            stats.to_gre_packets.fetch_add(frames, Ordering::Relaxed);
            stats.to_gre_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// One GRE packet in: sequence check, then HDLC-encode the payload into `self.out`.
    pub(crate) fn gre_in(&mut self, packet: &[u8], stats: &LineStats) -> bool {
        let Ok((repr, payload)) = GreRepr::parse_bytes(packet) else {
            return false;
        };
        let Some(seq) = repr.seq else {
            return false; // ack only
        };
        if let Some(last) = self.last_rx {
            if !seq.is_after(last) {
                stats.gre_late.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            let gap = seq.distance(last).saturating_sub(1);
            if gap > 0 {
                stats
                    .gre_lost
                    .fetch_add(u64::try_from(gap).unwrap_or(0), Ordering::Relaxed);
            }
        }
        self.last_rx = Some(seq);
        if self.ack_due.is_none() {
            self.ack_due = Some(Instant::now() + ACK_DELAY);
        }
        if self.encoder.encode(payload, &mut self.out).is_err() {
            return false;
        }
        stats.to_line_packets.fetch_add(1, Ordering::Relaxed);
        stats
            .to_line_bytes
            .fetch_add(u64::try_from(payload.len()).unwrap_or(0), Ordering::Relaxed);
        if !self.sli {
            if let Some(accm) = snoop_ack_accm(payload) {
                // The PNS acked the caller's ACCM: frames after this one may use it.
                self.encoder.set_accm(accm);
            }
        }
        true
    }

    pub(crate) fn send_ack(&mut self) {
        self.ack_due = None;
        let Some(ack) = self.last_rx else { return };
        if self.ack_sent == Some(ack) {
            return;
        }
        self.ack_sent = Some(ack);
        let repr = GreRepr::ack_only(self.peer_call_id, ack);
        if self.pool.capacity() - self.pool.len() < repr.buffer_len() {
            self.pool = BytesMut::with_capacity(POOL);
        }
        repr.emit(&mut self.pool);
        let _ = self.gre_tx.try_send(GreDatagram {
            peer: self.pns_addr,
            local: Ipv4Addr::UNSPECIFIED,
            packet: self.pool.split().freeze(),
        });
    }

    pub(crate) fn link_info(&mut self, send_accm: u32, receive_accm: u32) {
        self.sli = true;
        self.encoder.set_accm(send_accm);
        self.decoder.set_accm(receive_accm);
    }

    /// Counters changed since the last report.
    pub(crate) fn wan_update(&mut self) -> Option<WanErrorCounters> {
        let now = *self.decoder.counters();
        (now != self.wan_reported).then(|| {
            self.wan_reported = now;
            now
        })
    }
}

/// The ACCM of an LCP Configure-Ack in `frame` (Address/Control optional), or the default
/// 0xFFFFFFFF when the Ack has no ACCM option; `None` for any other frame.
pub(crate) fn snoop_ack_accm(frame: &[u8]) -> Option<u32> {
    let f = match frame {
        [0xFF, 0x03, rest @ ..] => rest,
        other => other,
    };
    let [0xC0, 0x21, 2, _id, lh, ll, rest @ ..] = f else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*lh, *ll]));
    let mut opts = rest.get(..len.checked_sub(4)?)?;
    let mut accm = crate::hdlc::DEFAULT_ACCM;
    while let [t, l, ..] = opts {
        let l = usize::from(*l);
        if l < 2 {
            return None;
        }
        let body = opts.get(2..l)?;
        if *t == 2 {
            if let [a, b, c, d] = body {
                accm = u32::from_be_bytes([*a, *b, *c, *d]);
            }
        }
        opts = opts.get(l..)?;
    }
    Some(accm)
}

pub(crate) async fn recv_batch(
    rx: &mut Option<mpsc::Receiver<Bytes>>,
    batch: &mut Vec<Bytes>,
) -> usize {
    let Some(r) = rx.as_mut() else {
        return std::future::pending().await;
    };
    match r.recv().await {
        Some(p) => batch.push(p),
        None => return std::future::pending().await,
    }
    while batch.len() < RX_BATCH {
        match r.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
    batch.len()
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn snoop_configure_ack() {
        // FF 03 C0 21 | Configure-Ack id 1 len 14 | ACCM 00 0A 00 00 | MRU 1500
        let ack = [
            0xFF, 0x03, 0xC0, 0x21, 0x02, 0x01, 0x00, 0x0E, 0x02, 0x06, 0x00, 0x0A, 0x00, 0x00,
            0x01, 0x04, 0x05, 0xDC,
        ];
        assert_eq!(snoop_ack_accm(&ack), Some(0x000A_0000));
        // Without Address/Control.
        assert_eq!(snoop_ack_accm(&ack[2..]), Some(0x000A_0000));
        // An Ack without ACCM option: the default.
        let no_accm = [0xC0, 0x21, 0x02, 0x01, 0x00, 0x08, 0x01, 0x04, 0x05, 0xDC];
        assert_eq!(snoop_ack_accm(&no_accm), Some(0xFFFF_FFFF));
        // A Configure-Request is not an Ack.
        let mut req = ack;
        req[4] = 1;
        assert_eq!(snoop_ack_accm(&req), None);
        // IPCP, truncated, bad option length.
        assert_eq!(snoop_ack_accm(&[0x80, 0x21, 2, 1, 0, 4]), None);
        assert_eq!(snoop_ack_accm(&ack[..10]), None);
        let bad = [0xC0, 0x21, 0x02, 0x01, 0x00, 0x06, 0x02, 0x00];
        assert_eq!(snoop_ack_accm(&bad), None);
    }
}
