//! The per-call data plane of a PAC line: line bytes -> HDLC decoder -> PPP frame -> GRE, and
//! GRE -> PPP frame -> HDLC encoder with the current send ACCM -> line.
//!
//! The relay is built for throughput: one decoder and one encoder per line with buffers reused
//! for the whole call, GRE packets carved out of a large `BytesMut` (a reference count per
//! packet, an allocation per 64 KiB), received GRE packets drained in batches and written to
//! the line with one `write` per batch.
//!
//! Sequence numbers, acknowledgments, the send window and the reorder buffer are
//! [`crate::pptp::window::Window`] (RFC 2637 §4): every data packet carries a sequence number
//! and piggybacks the highest one received; an acknowledgment owed for [`ACK_DELAY`] (or owed
//! to `ack_every` packets) without data to carry it goes out as an ack-only packet; packets
//! that arrive out of order wait in the reorder buffer up to the PNS's `reorder_timeout_ms`.
//! The status counters for loss, reordering, duplicates and late packets are the window's.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::GreSettings;
use super::gre::GreDatagram;
use super::line::LineStats;
use super::lineio::LineIo;
use crate::hdlc::{Decoder, DecoderConfig, Encoder, EncoderConfig, WanErrorCounters};
use crate::io::line::ModemIo;
use crate::pptp::control::CallInfo;
use crate::pptp::window::{GreStats, Rx, SendError, Window, WindowConfig};
use crate::pptp::GreRepr;

/// How long an acknowledgment may wait for a data packet to ride on.
pub const ACK_DELAY: Duration = Duration::from_millis(100);
/// Least acknowledgment time-out (see [`Relay::new`]).
const MIN_ACK_WAIT: Duration = Duration::from_millis(500);
/// Received GRE packets handled per line write.
pub(crate) const RX_BATCH: usize = 32;
/// Size of the buffer GRE packets are carved from: about 40 full-size frames per refill (two
/// allocations: the buffer and, on the first split, its shared header),
/// and at most this much resident per busy call (the PAC must hold 10,000 calls).
const POOL: usize = 64 * 1024;
/// Room for the largest GRE header (16 octets) in front of a payload.
const GRE_HEADER_MAX: usize = 16;
/// Longest wait for one batched line write before the rest of it is dropped.
const LINE_WRITE_STALL: Duration = Duration::from_millis(250);

/// The per-call data plane.
pub(crate) struct Relay {
    pns_addr: Ipv4Addr,
    gre_tx: mpsc::Sender<GreDatagram>,
    /// Handed to the line loop once (it polls it next to the line).
    pub(crate) gre_rx: Option<mpsc::Receiver<Bytes>>,
    decoder: Decoder,
    encoder: Encoder,
    window: Window,
    /// Window counters already added to the line's.
    reported: GreStats,
    pool: BytesMut,
    /// HDLC-encoded octets waiting for the line.
    out: Vec<u8>,
    /// Set-Link-Info seen: it overrides snooping.
    sli: bool,
    pub(crate) last_activity: Instant,
    wan_reported: WanErrorCounters,
}

impl Relay {
    pub(crate) fn new(
        pns_addr: Ipv4Addr,
        info: &CallInfo,
        gre: GreSettings,
        gre_tx: mpsc::Sender<GreDatagram>,
        gre_rx: mpsc::Receiver<Bytes>,
    ) -> Self {
        let mut wc = WindowConfig::new(info.peer_call_id);
        wc.recv_window = gre.window.max(1);
        wc.peer_window = info.peer_window.max(1);
        wc.reorder_timeout = Duration::from_millis(gre.reorder_timeout_ms);
        wc.ack_delay = ACK_DELAY;
        // The ATO is PPD + RTT + 4 DEV (RFC 2637 §4.4). On a LAN the RTT is well under a
        // millisecond while a peer may hold an acknowledgment back for its ack delay (ours:
        // ACK_DELAY; pptp-linux and pptpd wait for data to piggyback on): without a floor every
        // held-back ack is a time-out that halves the send window, and frames from the line are
        // dropped for want of window. The peer's announced delay is used when larger.
        wc.peer_processing_delay =
            Duration::from_millis(u64::from(info.peer_delay) * 100).max(MIN_ACK_WAIT);
        Relay {
            pns_addr,
            gre_tx,
            gre_rx: Some(gre_rx),
            decoder: Decoder::new(DecoderConfig::default()),
            encoder: Encoder::new(EncoderConfig::default()),
            window: Window::new(wc),
            reported: GreStats::default(),
            pool: BytesMut::with_capacity(POOL),
            // Grows to the largest batch written and stays there for the call.
            out: Vec::new(),
            sli: false,
            last_activity: Instant::now(),
            wan_reported: WanErrorCounters::default(),
        }
    }

    fn send_packet(&mut self, stats: &LineStats) {
        let packet = self.pool.split().freeze();
        let d = GreDatagram {
            peer: self.pns_addr,
            local: Ipv4Addr::UNSPECIFIED,
            packet,
        };
        if self.gre_tx.try_send(d).is_err() {
            stats.gre_tx_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Line bytes in: decode every complete frame and send it in GRE.
    pub(crate) fn line_in(&mut self, mut data: &[u8], stats: &LineStats) {
        let now = Instant::now();
        let now_std = now.into_std();
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
            let len = frame.len();
            pool_room(&mut self.pool, GRE_HEADER_MAX + len);
            match self.window.encode_data(now_std, frame, &mut self.pool) {
                Ok(_) => {
                    frames += 1;
                    bytes += len as u64;
                }
                Err(SendError::WindowFull(_)) | Err(SendError::TooLong(_)) => {
                    // RFC 2637 §4.2: the sender must not exceed the peer's window; PPTP does
                    // not retransmit, so the frame is dropped (PPP recovers as on loss).
                    stats.gre_tx_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(accm) = snooped {
                self.decoder.set_accm(accm);
            }
            if !self.pool.is_empty() {
                self.send_packet(stats);
            }
        }
        if frames > 0 {
            self.last_activity = now;
            stats.to_gre_packets.fetch_add(frames, Ordering::Relaxed);
            stats.to_gre_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// One GRE packet in: the window decides; what it delivers is HDLC-encoded into the line
    /// output buffer. Returns whether anything was queued for the line.
    pub(crate) fn gre_in(&mut self, packet: &[u8], stats: &LineStats) -> bool {
        let Ok((repr, payload)) = GreRepr::parse_bytes(packet) else {
            return false;
        };
        let now = Instant::now().into_std();
        let mut any = false;
        if self.window.handle_packet(now, &repr, payload) == Rx::Deliver {
            any |= self.deliver(payload, stats);
        }
        while let Some(p) = self.window.poll_deliver() {
            any |= self.deliver(&p, stats);
        }
        any
    }

    /// HDLC-encodes one delivered PPP frame into the line output buffer.
    fn deliver(&mut self, payload: &[u8], stats: &LineStats) -> bool {
        if self.encoder.encode(payload, &mut self.out).is_err() {
            return false;
        }
        stats.to_line_packets.fetch_add(1, Ordering::Relaxed);
        stats
            .to_line_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        if !self.sli {
            if let Some(accm) = snoop_ack_accm(payload) {
                // The PNS acked the caller's ACCM: frames after this one may use it.
                self.encoder.set_accm(accm);
            }
        }
        true
    }

    /// After a batch of received packets: an ack-only packet if enough are owed, and the
    /// window's counters into the line's.
    pub(crate) fn after_batch(&mut self, stats: &LineStats) {
        self.poll_ack(Instant::now(), stats);
        self.sync_stats(stats);
    }

    fn poll_ack(&mut self, now: Instant, stats: &LineStats) {
        pool_room(&mut self.pool, GRE_HEADER_MAX);
        if self.window.poll_ack(now.into_std(), &mut self.pool) {
            self.send_packet(stats);
        }
    }

    /// When the relay's timers (acknowledgment delay, reorder wait, acknowledgment time-out)
    /// next need [`on_timer`](Self::on_timer).
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.window.poll_timeout().map(Instant::from_std)
    }

    /// Timers expired: gaps given up release buffered packets to the line buffer, owed
    /// acknowledgments go out. Returns whether the line buffer has data.
    pub(crate) fn on_timer(&mut self, stats: &LineStats) -> bool {
        let now = Instant::now();
        self.window.handle_timeout(now.into_std());
        while let Some(p) = self.window.poll_deliver() {
            self.deliver(&p, stats);
        }
        self.poll_ack(now, stats);
        self.sync_stats(stats);
        !self.out.is_empty()
    }

    /// Adds what the window counted since the last call to the line's counters.
    fn sync_stats(&mut self, stats: &LineStats) {
        let now = self.window.stats();
        let add = |c: &AtomicU64, new: u64, old: u64| {
            if new > old {
                c.fetch_add(new - old, Ordering::Relaxed);
            }
        };
        add(&stats.gre_lost, now.lost, self.reported.lost);
        add(&stats.gre_late, now.late, self.reported.late);
        add(&stats.gre_duplicate, now.duplicate, self.reported.duplicate);
        add(&stats.gre_reordered, now.reordered, self.reported.reordered);
        self.reported = now;
    }

    /// Writes the line output buffer. The write is bounded: while it waits, the line task does
    /// not read the line, and a peer that blocks on writing to us until we read would deadlock
    /// with us (the soft-modem does). After `LINE_WRITE_STALL` the rest is dropped (the caller's
    /// PPP sees FCS errors and resynchronises at the next flag) and reading resumes.
    pub(crate) async fn flush_to_line<S: ModemIo>(
        &mut self,
        line: &mut LineIo<S>,
        stats: &LineStats,
    ) {
        if self.out.is_empty() {
            return;
        }
        self.last_activity = Instant::now();
        let res = tokio::time::timeout(LINE_WRITE_STALL, line.send_data(&self.out)).await;
        self.out.clear();
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "line write failed"),
            Err(_) => {
                stats.line_write_stalls.fetch_add(1, Ordering::Relaxed);
            }
        }
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

/// Makes room for `len` more octets in the packet pool (a new pool when the old one is used
/// up; packets still in flight keep the old one alive).
fn pool_room(pool: &mut BytesMut, len: usize) {
    if pool.capacity() - pool.len() < len {
        *pool = BytesMut::with_capacity(POOL.max(len));
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

    /// Counts heap allocations made on the current thread while enabled (test binary only).
    mod counting {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static COUNT: Cell<Option<u64>> = const { Cell::new(None) };
        }

        pub(super) struct Counting;

        // SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
        // const-initialised thread-local `Cell` (no allocation, no re-entry).
        #[allow(unsafe_code)]
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let _ = COUNT.try_with(|c| c.set(c.get().map(|n| n + 1)));
                // SAFETY: forwarded with the caller's layout.
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                // SAFETY: `ptr` came from `System.alloc` with this layout.
                unsafe { System.dealloc(ptr, layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                let _ = COUNT.try_with(|c| c.set(c.get().map(|n| n + 1)));
                // SAFETY: forwarded unchanged.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }

        /// Runs `f` and returns how many allocations it made on this thread.
        pub(super) fn count<R>(f: impl FnOnce() -> R) -> (R, u64) {
            COUNT.with(|c| c.set(Some(0)));
            let r = f();
            let n = COUNT.with(|c| c.replace(None)).unwrap_or(0);
            (r, n)
        }
    }

    #[global_allocator]
    static ALLOC: counting::Counting = counting::Counting;

    fn call_info() -> CallInfo {
        CallInfo {
            call_id: 7,
            peer_call_id: 9,
            serial: 1,
            connect_speed: 33_600,
            framing: crate::pptp::message::FramingType::Async,
            peer_window: 64,
            peer_delay: 0,
            pac_side: true,
        }
    }

    fn frame(i: u32) -> Vec<u8> {
        let mut f = vec![0xFF, 0x03, 0x00, 0x21];
        let mut x = i.wrapping_mul(2_654_435_761) | 1;
        while f.len() < 1500 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f.push(x as u8);
        }
        f
    }

    /// The relay's hot path (line bytes -> GRE packets, GRE packets -> line bytes) allocates
    /// nothing per frame: packets are carved from the 64 KiB pool (one allocation per ~40
    /// full-size frames), the line buffer is reused, in-order packets are not copied.
    #[test]
    fn relay_hot_path_allocations_per_frame() {
        const FRAMES: u32 = 2000;
        let (gre_tx, mut gre_out) = mpsc::channel(64);
        let (_in_tx, gre_rx) = mpsc::channel(64);
        let stats = LineStats::default();
        let mut r = Relay::new(
            Ipv4Addr::LOCALHOST,
            &call_info(),
            GreSettings::default(),
            gre_tx,
            gre_rx,
        );
        // Line -> GRE: the HDLC stream in 4 KiB reads, 32 frames between drains of the GRE
        // queue (what the GRE sender task does concurrently). The PNS acknowledges.
        let mut enc = Encoder::new(EncoderConfig::default());
        let mut wire = Vec::new();
        for i in 0..FRAMES {
            enc.encode(&frame(i), &mut wire).unwrap();
        }
        let mut allocs = 0;
        let mut sent = 0u32;
        let mut ack = Vec::new();
        for (n, chunk) in wire.chunks(4096).enumerate() {
            let ((), a) = counting::count(|| r.line_in(chunk, &stats));
            if n > 8 {
                allocs += a; // after warm-up (channel blocks, first pool)
            }
            while let Ok(d) = gre_out.try_recv() {
                let (repr, _) = GreRepr::parse_bytes(&d.packet).unwrap();
                if let Some(seq) = repr.seq {
                    sent += 1;
                    ack.clear();
                    GreRepr::ack_only(9, seq).emit(&mut ack);
                    let ((), a) = counting::count(|| {
                        r.gre_in(&ack, &stats);
                    });
                    allocs += a;
                }
            }
        }
        assert_eq!(sent, FRAMES, "every frame went out: {stats:?}");
        let up = allocs as f64 / f64::from(FRAMES);
        // Pool refills only: two allocations (buffer, shared header on the first split) per
        // 64 KiB, that is per ~43 packets of 1.5 KiB.
        assert!(
            up < 0.06,
            "line -> GRE: {allocs} allocations for {FRAMES} frames"
        );

        // GRE -> line: batches of 32 packets, then the line buffer is written (here: cleared).
        let mut packets = Vec::new();
        for i in 0..FRAMES {
            let f = frame(i);
            let mut p = Vec::new();
            GreRepr::data(9, f.len() as u16, crate::pptp::SeqNumber(i), None).emit(&mut p);
            p.extend_from_slice(&f);
            packets.push(p);
        }
        let mut allocs = 0;
        let mut delivered = 0;
        for (n, batch) in packets.chunks(32).enumerate() {
            let ((), a) = counting::count(|| {
                for p in batch {
                    delivered += usize::from(r.gre_in(p, &stats));
                }
                r.after_batch(&stats);
                r.out.clear();
            });
            if n > 0 {
                allocs += a; // the first batch grows the line buffer
            }
            while gre_out.try_recv().is_ok() {}
        }
        assert_eq!(delivered, FRAMES as usize);
        let down = allocs as f64 / f64::from(FRAMES);
        assert!(
            down < 0.02,
            "GRE -> line: {allocs} allocations for {FRAMES} frames"
        );
        eprintln!("relay allocations per frame: line -> GRE {up:.4}, GRE -> line {down:.4}");
    }
}
