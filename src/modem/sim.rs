//! Two soft-modems joined by a simulated telephone line (sans-IO).
//!
//! [`LinePair`] holds the "client" modem (what a dial-in PC's modem would be) and the "NAS"
//! modem (the one the PAC drives), both [`Hayes`] interpreters, and plays the telephone network
//! between them: a dial from one end rings the other (with caller ID), an answer connects both
//! at the configured speed, a hang-up drops the far end's carrier. While connected it carries
//! the data with line simulation:
//!
//! - **rate limit** at the connect speed, counted as `speed / 8` payload octets per second (the
//!   start/stop bits of the serial side are not carried over the line, as with V.42 error
//!   control), released in 20 ms chunks and never faster than the line: over a long transfer the
//!   payload rate is exactly the connect speed;
//! - **bit errors**: each bit flips with probability `ber` (geometric gaps from a seeded
//!   xorshift generator, so a run is reproducible);
//! - **latency** added to every chunk;
//! - **carrier drop** after a set time, or on [`LinePair::drop_carrier`].
//!
//! The pair takes `now` on every input and reports its next deadline; it never reads a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::at::{Event as HayesEvent, Hayes, HayesConfig, Personality};
use super::result::CallerId;

/// One end of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The dial-in client's modem.
    Client = 0,
    /// The modem the NAS/PAC drives.
    Nas = 1,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Nas,
            Side::Nas => Side::Client,
        }
    }

    /// Both ends.
    pub const BOTH: [Side; 2] = [Side::Client, Side::Nas];
}

/// Line simulation settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Connect speed in bit/s (also the payload rate limit).
    pub speed: u32,
    /// Bit-error rate, 0 for none.
    pub ber: f64,
    /// One-way latency.
    pub latency: Duration,
    /// Drop carrier this long after CONNECT.
    pub drop_after: Option<Duration>,
    /// Calling number shown to the NAS end when the client dials.
    pub caller_id: Option<String>,
    /// Analog modems or ISDN TAs.
    pub personality: Personality,
    /// Time between RINGs.
    pub ring_interval: Duration,
    /// Seed of the bit-error generator.
    pub seed: u64,
    /// Octets a side may have waiting for the line before [`LinePair::can_accept`] says no.
    pub max_queue: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            speed: 33_600,
            ber: 0.0,
            latency: Duration::ZERO,
            drop_after: None,
            caller_id: None,
            personality: Personality::Analog,
            ring_interval: Duration::from_secs(6),
            seed: 0x5eed_1234_abcd_0001,
            max_queue: 4096,
        }
    }
}

/// Counters of one pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Calls connected.
    pub calls: u64,
    /// Payload octets carried, client to NAS and NAS to client.
    pub octets: [u64; 2],
    /// Bits flipped by error injection.
    pub bit_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Idle,
    Ringing { caller: Side },
    Connected,
}

#[derive(Debug, Clone, Default)]
struct Channel {
    queue: VecDeque<u8>,
    free_at: Option<Instant>,
    in_flight: VecDeque<(Instant, Vec<u8>)>,
}

impl Channel {
    fn clear(&mut self) {
        *self = Channel::default();
    }
}

/// The pair (see the module documentation).
#[derive(Debug, Clone)]
pub struct LinePair {
    cfg: SimConfig,
    modems: [Hayes; 2],
    chans: [Channel; 2],
    call: Call,
    drop_at: Option<Instant>,
    rng: u64,
    next_error: u64,
    stats: SimStats,
    stamp: Option<(String, String)>,
}

/// Slack within which a late wake-up still continues the previous chunk back to back.
const SLACK: Duration = Duration::from_millis(100);

impl LinePair {
    /// Two idle modems on a quiet line.
    pub fn new(cfg: SimConfig) -> Self {
        let hayes = || {
            Hayes::new(HayesConfig {
                personality: cfg.personality,
                ring_interval: cfg.ring_interval,
            })
        };
        let modems = [hayes(), hayes()];
        let mut p = LinePair {
            rng: cfg.seed | 1,
            cfg,
            modems,
            chans: Default::default(),
            call: Call::Idle,
            drop_at: None,
            next_error: u64::MAX,
            stats: SimStats::default(),
            stamp: None,
        };
        p.next_error = p.error_gap();
        p
    }

    /// The modem at one end (read-only: settings, mode, S-registers).
    pub fn modem(&self, side: Side) -> &Hayes {
        match side {
            Side::Client => &self.modems[0],
            Side::Nas => &self.modems[1],
        }
    }

    fn modem_mut(&mut self, side: Side) -> &mut Hayes {
        match side {
            Side::Client => &mut self.modems[0],
            Side::Nas => &mut self.modems[1],
        }
    }

    fn chan(&mut self, from: Side) -> &mut Channel {
        match from {
            Side::Client => &mut self.chans[0],
            Side::Nas => &mut self.chans[1],
        }
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Whether a call is connected.
    pub fn is_connected(&self) -> bool {
        self.call == Call::Connected
    }

    /// Sets the date (`MMDD`) and time (`HHMM`) sent with caller ID.
    pub fn set_date_time(&mut self, mmdd: String, hhmm: String) {
        self.stamp = Some((mmdd, hhmm));
    }

    /// Whether `side` may send more DTE bytes now (backpressure: its line queue is not full).
    pub fn can_accept(&self, side: Side) -> bool {
        let i = side as usize;
        self.chans
            .get(i)
            .map_or(true, |c| c.queue.len() < self.cfg.max_queue)
    }

    // ---- inputs ----------------------------------------------------------------------------

    /// Bytes from the DTE at `side`.
    pub fn handle_dte(&mut self, side: Side, now: Instant, data: &[u8]) {
        self.modem_mut(side).handle_dte(now, data);
        self.process(now);
    }

    /// Runs everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for side in Side::BOTH {
            self.modem_mut(side).handle_timeout(now);
        }
        if self.drop_at.is_some_and(|t| t <= now) {
            self.drop_carrier(now);
        }
        self.process(now);
    }

    /// Drops carrier now (both ends see NO CARRIER).
    pub fn drop_carrier(&mut self, now: Instant) {
        if self.call == Call::Connected {
            self.end_call();
            for side in Side::BOTH {
                self.modem_mut(side).line_carrier_lost();
            }
            self.process(now);
        }
    }

    // ---- outputs ---------------------------------------------------------------------------

    /// Bytes for the DTE at `side`.
    #[must_use]
    pub fn poll_dte(&mut self, side: Side) -> Option<Vec<u8>> {
        self.modem_mut(side).poll_dte()
    }

    /// The earliest deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.drop_at;
        let mut take = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        for m in &self.modems {
            take(m.poll_timeout());
        }
        for c in &self.chans {
            if !c.queue.is_empty() {
                take(c.free_at);
            }
            take(c.in_flight.front().map(|(at, _)| *at));
        }
        t
    }

    // ---- internals -------------------------------------------------------------------------

    fn end_call(&mut self) {
        self.call = Call::Idle;
        self.drop_at = None;
        for c in &mut self.chans {
            c.clear();
        }
    }

    fn process(&mut self, now: Instant) {
        // Line actions may cause more (an auto-answer after a ring), so loop until quiet.
        for _ in 0..8 {
            let mut any = false;
            for side in Side::BOTH {
                while let Some(ev) = self.modem_mut(side).poll_event() {
                    any = true;
                    self.line_event(side, now, ev);
                }
            }
            if !any {
                break;
            }
        }
        for side in Side::BOTH {
            if let Some(data) = self.modem_mut(side).poll_line() {
                if self.call == Call::Connected {
                    self.chan(side).queue.extend(data);
                }
            }
        }
        for side in Side::BOTH {
            self.pump(side, now);
        }
    }

    fn line_event(&mut self, side: Side, now: Instant, ev: HayesEvent) {
        match ev {
            HayesEvent::Dial(number) => {
                let far = side.other();
                if self.call != Call::Idle || !self.modem(far).is_idle() {
                    self.modem_mut(side).line_busy();
                    return;
                }
                let mut cid = CallerId::default();
                if side == Side::Client {
                    cid.number = self.cfg.caller_id.clone();
                    if cid.number.is_some() {
                        if let Some((d, t)) = &self.stamp {
                            cid.date = Some(d.clone());
                            cid.time = Some(t.clone());
                        }
                    }
                }
                if !number.is_empty() && self.cfg.personality == Personality::IsdnTa {
                    cid.called = Some(number);
                }
                if self.modem_mut(far).line_ring(now, cid) {
                    self.call = Call::Ringing { caller: side };
                } else {
                    self.modem_mut(side).line_busy();
                }
            }
            HayesEvent::Answer
                if self.call
                    == (Call::Ringing {
                        caller: side.other(),
                    }) =>
            {
                self.call = Call::Connected;
                self.stats.calls += 1;
                self.drop_at = self.cfg.drop_after.map(|d| now + d);
                for c in &mut self.chans {
                    c.clear();
                }
                let speed = self.cfg.speed;
                for s in Side::BOTH {
                    self.modem_mut(s).line_connected(speed);
                }
            }
            HayesEvent::Hangup => match self.call {
                Call::Ringing { caller } if caller == side => {
                    self.call = Call::Idle;
                    self.modem_mut(side.other()).line_ring_stopped();
                }
                Call::Connected => {
                    self.end_call();
                    self.modem_mut(side.other()).line_carrier_lost();
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn chunk_len(&self) -> usize {
        usize::try_from(self.cfg.speed / 8 / 50).unwrap_or(1).max(1)
    }

    fn duration_of(&self, octets: usize) -> Duration {
        let bits = u128::try_from(octets).unwrap_or(0) * 8;
        let nanos = bits * 1_000_000_000 / u128::from(self.cfg.speed.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn pump(&mut self, from: Side, now: Instant) {
        let chunk = self.chunk_len();
        loop {
            let latency = self.cfg.latency;
            let c = self.chan(from);
            if c.queue.is_empty() {
                break;
            }
            let start = match c.free_at {
                Some(f) if f + SLACK >= now => f,
                _ => now,
            };
            if start > now {
                break;
            }
            let n = chunk.min(c.queue.len());
            let mut data: Vec<u8> = c.queue.drain(..n).collect();
            let end = start + self.duration_of(n);
            self.inject_errors(&mut data);
            let c = self.chan(from);
            c.free_at = Some(end);
            c.in_flight.push_back((end + latency, data));
        }
        // Deliver what has arrived.
        let to = from.other();
        while let Some(data) = {
            let c = self.chan(from);
            match c.in_flight.front() {
                Some((at, _)) if *at <= now => c.in_flight.pop_front().map(|(_, d)| d),
                _ => None,
            }
        } {
            if let Some(n) = self.stats.octets.get_mut(from as usize) {
                *n += u64::try_from(data.len()).unwrap_or(0);
            }
            self.modem_mut(to).line_data(&data);
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Bits until the next error: geometric with parameter `ber`.
    fn error_gap(&mut self) -> u64 {
        let p = self.cfg.ber;
        if p.is_nan() || p <= 0.0 {
            return u64::MAX;
        }
        if p >= 1.0 {
            return 0;
        }
        // 53 random bits -> u in (0, 1].
        let u = ((self.next_random() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let gap = (u.ln() / (1.0 - p).ln()).floor();
        if gap.is_finite() && gap < 1e18 {
            gap as u64
        } else {
            u64::MAX
        }
    }

    fn inject_errors(&mut self, data: &mut [u8]) {
        let mut bits = u64::try_from(data.len()).unwrap_or(0) * 8;
        let mut pos: u64 = 0;
        while self.next_error < bits {
            pos += self.next_error;
            if let Some(b) = usize::try_from(pos / 8).ok().and_then(|i| data.get_mut(i)) {
                *b ^= 1 << (pos % 8);
                self.stats.bit_errors += 1;
            }
            bits -= self.next_error + 1;
            pos += 1;
            self.next_error = self.error_gap();
        }
        self.next_error -= bits;
    }
}

#[cfg(test)]
mod test {
    use super::*;

    struct World {
        p: LinePair,
        now: Instant,
        out: [Vec<u8>; 2],
    }

    impl World {
        fn new(cfg: SimConfig) -> Self {
            let mut w = World {
                p: LinePair::new(cfg),
                now: Instant::now(),
                out: [vec![], vec![]],
            };
            w.p.set_date_time("1124".into(), "1030".into());
            w
        }
        fn drain(&mut self) {
            for s in Side::BOTH {
                while let Some(b) = self.p.poll_dte(s) {
                    self.out[s as usize].extend(b);
                }
            }
        }
        fn send(&mut self, s: Side, data: &str) {
            self.p.handle_dte(s, self.now, data.as_bytes());
            self.drain();
        }
        fn take(&mut self, s: Side) -> String {
            String::from_utf8_lossy(&std::mem::take(&mut self.out[s as usize])).into_owned()
        }
        fn run_until(&mut self, t: Instant) {
            while let Some(d) = self.p.poll_timeout() {
                if d > t {
                    break;
                }
                self.now = self.now.max(d);
                self.p.handle_timeout(self.now);
                self.drain();
            }
            self.now = self.now.max(t);
        }
        fn connect(&mut self) {
            self.send(Side::Client, "ATE0\r");
            self.send(Side::Nas, "ATE0\r");
            self.send(Side::Nas, "AT+VCID=1\r");
            self.take(Side::Client);
            self.take(Side::Nas);
            self.send(Side::Client, "ATDT5551234\r");
            self.send(Side::Nas, "ATA\r");
        }
    }

    #[test]
    fn dial_ring_answer_connect_data_hangup() {
        let mut w = World::new(SimConfig {
            caller_id: Some("0301234".into()),
            ..Default::default()
        });
        w.connect();
        let nas = w.take(Side::Nas);
        assert!(nas.starts_with("\r\nRING\r\n"), "{nas:?}");
        assert!(nas.contains("NMBR = 0301234"));
        assert!(nas.contains("DATE = 1124"));
        assert!(nas.ends_with("\r\nCONNECT 33600\r\n"));
        assert_eq!(w.take(Side::Client), "\r\nCONNECT 33600\r\n");
        w.send(Side::Client, "hello");
        w.run_until(w.now + Duration::from_millis(100));
        assert_eq!(w.take(Side::Nas), "hello");
        w.send(Side::Nas, "world");
        w.run_until(w.now + Duration::from_millis(100));
        assert_eq!(w.take(Side::Client), "world");
        // Client escapes and hangs up; NAS sees NO CARRIER.
        w.run_until(w.now + Duration::from_secs(2));
        w.send(Side::Client, "+++");
        w.run_until(w.now + Duration::from_secs(2));
        assert_eq!(w.take(Side::Client), "\r\nOK\r\n");
        w.send(Side::Client, "ATH\r");
        assert_eq!(w.take(Side::Nas), "+++\r\nNO CARRIER\r\n");
        assert!(!w.p.is_connected());
    }

    #[test]
    fn busy_and_no_answer() {
        let mut w = World::new(SimConfig::default());
        w.send(Side::Nas, "ATE0H1\r");
        w.send(Side::Client, "ATE0\r");
        w.send(Side::Client, "ATDT1\r");
        assert!(w.take(Side::Client).ends_with("\r\nOK\r\n\r\nBUSY\r\n"));
        w.send(Side::Nas, "ATH0\r");
        w.send(Side::Client, "ATS7=3DT1\r");
        w.take(Side::Nas);
        w.run_until(w.now + Duration::from_secs(3));
        assert_eq!(w.take(Side::Client), "\r\nNO ANSWER\r\n");
        // The NAS stops ringing when the caller gives up.
        assert!(!w.p.modem(Side::Nas).is_ringing());
    }

    #[test]
    fn auto_answer() {
        let mut w = World::new(SimConfig {
            ring_interval: Duration::from_millis(200),
            ..Default::default()
        });
        w.send(Side::Nas, "ATE0\r");
        w.send(Side::Nas, "ATS0=2\r");
        w.send(Side::Client, "ATE0\r");
        w.send(Side::Client, "ATD1\r");
        w.run_until(w.now + Duration::from_millis(250));
        assert!(w.p.is_connected());
        assert!(w
            .take(Side::Nas)
            .ends_with("\r\nOK\r\n\r\nRING\r\n\r\nRING\r\n\r\nCONNECT 33600\r\n"));
    }

    #[test]
    fn rate_limit_is_the_connect_speed() {
        let mut w = World::new(SimConfig::default());
        w.connect();
        w.take(Side::Nas);
        let start = w.now;
        let total = 42_000usize; // 10 s at 33600 bit/s
        let mut sent = 0;
        while w.out[1].len() < total {
            while sent < total && w.p.can_accept(Side::Client) {
                let n = 1000.min(total - sent);
                w.p.handle_dte(Side::Client, w.now, &vec![b'x'; n]);
                sent += n;
            }
            let d = w.p.poll_timeout().unwrap();
            w.now = d;
            w.p.handle_timeout(d);
            w.drain();
        }
        let secs = (w.now - start).as_secs_f64();
        let bps = (total * 8) as f64 / secs;
        assert!((bps - 33600.0).abs() / 33600.0 < 0.01, "{bps}");
    }

    #[test]
    fn latency_and_ber() {
        let mut w = World::new(SimConfig {
            latency: Duration::from_millis(300),
            ber: 1e-3,
            ..Default::default()
        });
        w.connect();
        w.take(Side::Nas);
        let t = w.now;
        w.send(Side::Client, &"U".repeat(4200));
        w.run_until(t + Duration::from_millis(290));
        assert!(w.out[1].is_empty(), "nothing before the latency");
        w.run_until(t + Duration::from_secs(3));
        let got = std::mem::take(&mut w.out[1]);
        assert_eq!(got.len(), 4200);
        let flipped: u32 = got.iter().map(|b| (b ^ b'U').count_ones()).sum();
        assert_eq!(u64::from(flipped), w.p.stats().bit_errors);
        // 33600 bits at 1e-3: about 34 errors.
        assert!((10..80).contains(&flipped), "{flipped}");
    }

    #[test]
    fn carrier_drop_after() {
        let mut w = World::new(SimConfig {
            drop_after: Some(Duration::from_secs(5)),
            ..Default::default()
        });
        w.connect();
        w.take(Side::Client);
        w.run_until(w.now + Duration::from_secs(6));
        assert_eq!(w.take(Side::Client), "\r\nNO CARRIER\r\n");
        assert!(w.take(Side::Nas).ends_with("\r\nNO CARRIER\r\n"));
        assert!(w.p.modem(Side::Client).is_idle());
    }

    #[test]
    fn idle_pair_has_no_deadline() {
        let mut w = World::new(SimConfig::default());
        w.send(Side::Client, "AT\r");
        assert_eq!(w.p.poll_timeout(), None);
    }
}
