//! Seeded simulation of two GRE windows over a link that loses, duplicates and reorders
//! packets (STYLE habit 8). Virtual time, no sleeps. Checks: every payload delivered at most
//! once, in order when the reorder buffer is on, counters exact against the link's own log,
//! and acknowledgments never later than the ack delay.

use pptp_nas::pptp::gre::{GreRepr, SeqNumber};
use pptp_nas::pptp::window::{Rx, Window, WindowConfig};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// SplitMix64: small, seeded, good enough for a fault injector.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One direction of the link: a faulty queue ordered by delivery time.
struct Link {
    rng: Rng,
    loss: f64,
    dup: f64,
    queue: BTreeMap<(Duration, u64), Vec<u8>>,
    serial: u64,
}

impl Link {
    fn new(seed: u64, loss: f64, dup: f64) -> Link {
        Link {
            rng: Rng(seed),
            loss,
            dup,
            queue: BTreeMap::new(),
            serial: 0,
        }
    }

    fn send(&mut self, at: Duration, packet: Vec<u8>) {
        let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            if self.rng.chance(self.loss) {
                continue;
            }
            // 20..80 ms one-way delay: packets 10 ms apart overtake each other.
            let delay = Duration::from_millis(20 + self.rng.below(60));
            self.serial += 1;
            self.queue.insert((at + delay, self.serial), packet.clone());
        }
    }

    fn next_at(&self) -> Option<Duration> {
        self.queue.keys().next().map(|k| k.0)
    }

    fn pop_due(&mut self, now: Duration) -> Option<Vec<u8>> {
        let key = *self.queue.keys().next()?;
        if key.0 > now {
            return None;
        }
        self.queue.remove(&key)
    }
}

struct Outcome {
    delivered: Vec<u32>,
    arrivals: HashMap<u32, u64>,
    sender: Window,
    receiver: Window,
}

fn simulate(seed: u64, reorder: Duration, packets: u32) -> Outcome {
    let t0 = Instant::now();
    let mut cfg = WindowConfig::new(7);
    cfg.reorder_timeout = reorder;
    cfg.peer_window = 32;
    cfg.recv_window = 32;
    let ack_delay = cfg.ack_delay;
    let mut a = Window::new(cfg);
    let mut b = Window::new(cfg);
    let mut ab = Link::new(seed, 0.05, 0.03);
    let mut ba = Link::new(seed ^ 0xabcd, 0.05, 0.03);

    let tick = Duration::from_millis(10);
    let mut next_tick = Duration::ZERO;
    let mut sent = 0u32;
    let mut now = Duration::ZERO;
    let mut delivered: Vec<u32> = Vec::new();
    let mut arrivals: HashMap<u32, u64> = HashMap::new();
    // (arrival time, seq) of packets that made an ack owed at B; B's acks (time, ack).
    let mut owed: Vec<(Duration, SeqNumber)> = Vec::new();
    let mut b_acks: Vec<(Duration, SeqNumber)> = Vec::new();
    let mut buf = Vec::new();
    let mut b_ticks = 0u32;
    let mut iterations = 0u64;

    loop {
        iterations += 1;
        assert!(
            iterations < 2_000_000,
            "seed {seed}: no progress at {now:?}"
        );
        // A sends one packet per tick while it may; B sends some data back (piggy-backs).
        if now >= next_tick && sent < packets {
            next_tick = now + tick;
            if a.can_send() {
                buf.clear();
                let seq = a
                    .encode_data(t0 + now, &sent.to_be_bytes(), &mut buf)
                    .unwrap();
                assert_eq!(seq, SeqNumber(sent));
                ab.send(now, buf.clone());
                sent += 1;
            }
            b_ticks += 1;
            if b_ticks % 7 == 0 && b.can_send() {
                buf.clear();
                b.encode_data(t0 + now, b"back", &mut buf).unwrap();
                if let Some(ack) = GreRepr::parse_bytes(&buf).unwrap().0.ack {
                    b_acks.push((now, ack));
                }
                ba.send(now, buf.clone());
            }
        }
        while let Some(p) = ab.pop_due(now) {
            let (repr, payload) = GreRepr::parse_bytes(&p).unwrap();
            let Some(seq) = repr.seq else {
                assert_eq!(b.handle_packet(t0 + now, &repr, payload), Rx::AckOnly);
                continue;
            };
            *arrivals.entry(seq.0).or_default() += 1;
            match b.handle_packet(t0 + now, &repr, payload) {
                Rx::Deliver => {
                    delivered.push(u32::from_be_bytes(payload.try_into().unwrap()));
                    owed.push((now, seq));
                }
                Rx::Buffered => owed.push((now, seq)),
                Rx::Duplicate | Rx::Late | Rx::AckOnly => {}
            }
            while let Some(d) = b.poll_deliver() {
                delivered.push(u32::from_be_bytes(d.as_slice().try_into().unwrap()));
            }
        }
        while let Some(p) = ba.pop_due(now) {
            let (repr, payload) = GreRepr::parse_bytes(&p).unwrap();
            let _ = a.handle_packet(t0 + now, &repr, payload);
            while a.poll_deliver().is_some() {}
        }
        for (w, link, log) in [
            (&mut a, &mut ab, None),
            (&mut b, &mut ba, Some(&mut b_acks)),
        ] {
            w.handle_timeout(t0 + now);
            buf.clear();
            if w.poll_ack(t0 + now, &mut buf) {
                if let Some(log) = log {
                    log.push((now, GreRepr::parse_bytes(&buf).unwrap().0.ack.unwrap()));
                }
                link.send(now, buf.clone());
            }
        }
        while a.poll_deliver().is_some() {}
        // Drain packets the reorder buffer released on its timer.
        while let Some(d) = b.poll_deliver() {
            delivered.push(u32::from_be_bytes(d.as_slice().try_into().unwrap()));
        }
        let next = [
            (sent < packets).then_some(next_tick),
            ab.next_at(),
            ba.next_at(),
            a.poll_timeout().map(|t| t - t0),
            b.poll_timeout().map(|t| t - t0),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) => now = now.max(t),
            None => break,
        }
        assert!(now < Duration::from_secs(3600), "simulation does not end");
    }

    // Acks never lag: every packet that made an ack owed is covered by an ack B sent no
    // later than `ack_delay` after it arrived (an earlier ack of a higher number covers a
    // packet that arrived late).
    for &(t, seq) in &owed {
        let covered = b_acks
            .iter()
            .find(|(_, ack)| !ack.is_before(seq))
            .unwrap_or_else(|| panic!("seed {seed}: packet {seq} at {t:?} never acked"));
        assert!(
            covered.0 <= t + ack_delay,
            "seed {seed}: packet {seq} arrived {t:?}, acked {:?}",
            covered.0
        );
    }
    Outcome {
        delivered,
        arrivals,
        sender: a,
        receiver: b,
    }
}

#[test]
fn reorder_buffer_on_in_order_at_most_once_exact_counters() {
    for seed in 1..=6u64 {
        let o = simulate(seed, Duration::from_millis(300), 3000);
        // At most once, in order.
        assert!(
            o.delivered.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: out of order or duplicated"
        );
        let s = o.receiver.stats();
        let delivered: std::collections::HashSet<u32> = o.delivered.iter().copied().collect();
        assert_eq!(s.delivered as usize, o.delivered.len(), "seed {seed}");
        assert_eq!(o.receiver.buffered(), 0);
        // Every arriving copy is exactly one of delivered, duplicate, late.
        let total: u64 = o.arrivals.values().sum();
        assert_eq!(s.received, total, "seed {seed}");
        assert_eq!(
            s.received,
            s.delivered + s.duplicate + s.late,
            "seed {seed}"
        );
        let dup: u64 = o
            .arrivals
            .iter()
            .filter(|(seq, _)| delivered.contains(seq))
            .map(|(_, k)| k - 1)
            .sum();
        let late: u64 = o
            .arrivals
            .iter()
            .filter(|(seq, _)| !delivered.contains(seq))
            .map(|(_, k)| *k)
            .sum();
        assert_eq!((s.duplicate, s.late), (dup, late), "seed {seed}");
        // Lost: the numbers skipped between the first and the last delivered one.
        let (first, last) = (o.delivered[0], *o.delivered.last().unwrap());
        assert_eq!(
            s.lost,
            u64::from(last - first + 1) - s.delivered,
            "seed {seed}"
        );
        assert!(
            s.lost > 0 && s.duplicate > 0 && s.reordered > 0,
            "seed {seed}: {s:?}"
        );
        assert!(s.buffered >= s.reordered);
        let tx = o.sender.stats();
        assert!(tx.acks_received > 0);
        assert!(o.sender.unacked() <= o.sender.send_window());
    }
}

#[test]
fn arrival_order_mode_delivers_each_packet_at_most_once() {
    for seed in 10..=13u64 {
        let o = simulate(seed, Duration::ZERO, 2000);
        let mut seen = std::collections::HashSet::new();
        for id in &o.delivered {
            assert!(seen.insert(*id), "seed {seed}: {id} delivered twice");
        }
        let s = o.receiver.stats();
        assert_eq!(s.delivered as usize, o.delivered.len());
        assert_eq!(
            s.received,
            s.delivered + s.duplicate,
            "nothing dropped as late"
        );
        assert_eq!(s.buffered, 0);
        // Reordering shows: some packet was delivered after a higher one.
        assert!(o.delivered.windows(2).any(|w| w[0] > w[1]), "seed {seed}");
        let distinct = o.arrivals.len() as u64;
        assert_eq!(s.delivered, distinct, "every distinct arrival delivered");
    }
}
