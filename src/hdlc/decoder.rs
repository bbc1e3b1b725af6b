//! The receive side: a streaming deframer fed arbitrary chunks.

use super::{
    DecoderStats, FcsKind, FrameError, WanCounter, WanErrorCounters, DEFAULT_ACCM, DEFAULT_MRU,
    ESCAPE, ESCAPE_XOR, FLAG, FRAME_OVERHEAD, MIN_FRAME_LEN,
};

/// Receive parameters; change them at run time with the `set_*` methods of [`Decoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Our receive ACCM: control characters 0x00..=0x1F that are deleted when they arrive
    /// unescaped. Default [`DEFAULT_ACCM`].
    pub accm: u32,
    /// Which FCS the peer appends.
    pub fcs: FcsKind,
    /// The longest frame accepted, FCS excluded. Default MRU 1500 + [`FRAME_OVERHEAD`]; values
    /// above [`MAX_FRAME_LEN_LIMIT`] are treated as that limit.
    pub max_frame_len: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            accm: DEFAULT_ACCM,
            fcs: FcsKind::Fcs16,
            max_frame_len: DEFAULT_MRU + FRAME_OVERHEAD,
        }
    }
}

/// The largest `max_frame_len` honoured: the largest MRU LCP can express (a 16-bit field) plus
/// [`FRAME_OVERHEAD`]. Keeps the one-time buffer allocation bounded whatever the configuration.
pub const MAX_FRAME_LEN_LIMIT: usize = u16::MAX as usize + FRAME_OVERHEAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Skipping octets until a flag: before the first frame and after a time-out.
    Hunt,
    /// Between flags, collecting a frame.
    Frame,
    /// Skipping the rest of a frame that was already counted as bad (oversize, overrun).
    Discard,
}

/// What one run of the state machine ended with.
enum Step {
    /// The input is used up; partial state is kept.
    More,
    /// A good frame of this many octets (FCS excluded) is at the start of `buf`.
    Frame(usize),
    /// A bad frame was dropped and counted.
    Error(FrameError),
}

/// Streaming RFC 1662 deframer.
///
/// Feed it what the line delivers, in chunks of any size, through [`decode`](Self::decode).
/// Call it in a loop until it returns `None`: each call consumes octets from the front of the
/// slice up to and including the flag that closes the next frame.
///
/// ```
/// use pptp_nas::hdlc::{Decoder, Encoder};
/// let mut wire = Vec::new();
/// let mut enc = Encoder::default();
/// enc.encode(b"\xff\x03\xc0\x21\x09\x01\x00\x08abcd", &mut wire).unwrap();
/// enc.encode(b"\xff\x03\x80\x21", &mut wire).unwrap();
///
/// let mut dec = Decoder::default();
/// let mut frames = Vec::new();
/// for chunk in wire.chunks(5) {
///     let mut input = chunk;
///     while let Some(result) = dec.decode(&mut input) {
///         if let Ok(frame) = result {
///             frames.push(frame.to_vec());
///         }
///     }
/// }
/// assert_eq!(frames.len(), 2);
/// assert_eq!(frames[1], b"\xff\x03\x80\x21");
/// assert!(dec.counters().is_zero());
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    config: DecoderConfig,
    /// `true` for 0x7D, 0x7E and every control character in the receive ACCM.
    special: [bool; 256],
    /// The receive ACCM is zero: scan for 0x7D/0x7E with `memchr2`.
    fast: bool,
    state: State,
    /// A Control Escape was received and its octet has not arrived yet.
    escaped: bool,
    /// The frame being collected, FCS included; allocated once.
    buf: Vec<u8>,
    /// `buf` holds a frame handed out by the last `decode`; clear it before going on.
    delivered: bool,
    counters: WanErrorCounters,
    stats: DecoderStats,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DecoderConfig::default())
    }
}

impl Decoder {
    /// A decoder hunting for the first flag.
    #[must_use]
    pub fn new(config: DecoderConfig) -> Self {
        let mut d = Decoder {
            config,
            special: [false; 256],
            fast: false,
            state: State::Hunt,
            escaped: false,
            buf: Vec::new(),
            delivered: false,
            counters: WanErrorCounters::default(),
            stats: DecoderStats::default(),
        };
        d.rebuild();
        d
    }

    fn rebuild(&mut self) {
        self.config.max_frame_len = self.config.max_frame_len.min(MAX_FRAME_LEN_LIMIT);
        let mut table = super::EscapeMap::from_accm(self.config.accm).table();
        for o in [FLAG, ESCAPE] {
            if let Some(s) = table.get_mut(usize::from(o)) {
                *s = true;
            }
        }
        self.special = table;
        self.fast = self.config.accm == 0;
        let want = self.limit();
        if self.buf.capacity() < want {
            self.buf.reserve_exact(want - self.buf.len());
        }
    }

    /// The current configuration.
    #[must_use]
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Sets the receive ACCM (the ACCM we asked for in our LCP Configure-Request).
    pub fn set_accm(&mut self, accm: u32) {
        self.config.accm = accm;
        self.rebuild();
    }

    /// Sets the FCS kind (after RFC 1570 FCS-Alternatives negotiation).
    pub fn set_fcs(&mut self, fcs: FcsKind) {
        self.config.fcs = fcs;
        self.rebuild();
    }

    /// Sets the longest frame accepted (FCS excluded), for example after MRU negotiation.
    /// May allocate; decoding never does.
    pub fn set_max_frame_len(&mut self, max_frame_len: usize) {
        self.config.max_frame_len = max_frame_len;
        self.rebuild();
    }

    /// The WAN-Error-Notify counters.
    #[must_use]
    pub fn counters(&self) -> &WanErrorCounters {
        &self.counters
    }

    /// Plain receive statistics.
    #[must_use]
    pub fn stats(&self) -> &DecoderStats {
        &self.stats
    }

    /// Whether a partial frame is held: the driver arms its inter-octet time-out (and calls
    /// [`handle_idle`](Self::handle_idle) when it fires) only while this is `true`.
    #[must_use]
    pub fn is_mid_frame(&self) -> bool {
        self.state == State::Frame && !self.delivered && (self.escaped || !self.buf.is_empty())
    }

    /// Forgets any partial frame and hunts for a flag again (a new call on the line).
    /// Counters and statistics are kept.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.delivered = false;
        self.escaped = false;
        self.state = State::Hunt;
    }

    /// The line has been idle for the inter-octet time-out (the driver's timer; this core reads
    /// no clock). A partial frame stuck mid-line is discarded and counted as a time-out error,
    /// or as an alignment error when it ended inside an escape (a Control Escape whose octet
    /// never came). The decoder then hunts for the next flag. Returns whether anything was
    /// discarded; with no partial frame this is a no-op.
    pub fn handle_idle(&mut self) -> bool {
        self.release();
        match self.state {
            State::Frame if self.escaped => {
                self.counters.bump(WanCounter::Alignment);
                self.reset();
                true
            }
            State::Frame if !self.buf.is_empty() => {
                self.counters.bump(WanCounter::Timeout);
                self.reset();
                true
            }
            State::Discard => {
                self.reset();
                false
            }
            State::Frame | State::Hunt => false,
        }
    }

    /// The driver saw a UART or FIFO overrun: octets were lost. Counted as a hardware overrun;
    /// the frame in progress is skipped up to the next flag.
    pub fn note_hardware_overrun(&mut self) {
        self.counters.bump(WanCounter::HardwareOverrun);
        self.abandon();
    }

    /// The driver dropped received octets for lack of buffer space. Counted as a buffer
    /// overrun; the frame in progress is skipped up to the next flag.
    pub fn note_buffer_overrun(&mut self) {
        self.counters.bump(WanCounter::BufferOverrun);
        self.abandon();
    }

    /// The driver saw a UART framing (stop bit) or parity error. RFC 1662 section 4.3: frames
    /// "in which octet-framing is violated (by transmitting a "0" stop bit where a "1" bit is
    /// expected), are silently discarded". Counted as a framing error; the frame in progress is
    /// skipped up to the next flag.
    pub fn note_framing_error(&mut self) {
        self.counters.bump(WanCounter::Framing);
        self.abandon();
    }

    fn abandon(&mut self) {
        self.release();
        if self.state == State::Frame {
            self.buf.clear();
            self.escaped = false;
            self.state = State::Discard;
        }
    }

    /// Drops the frame handed out by the previous `decode`.
    #[inline]
    fn release(&mut self) {
        if self.delivered {
            self.buf.clear();
            self.delivered = false;
        }
    }

    /// Frame octets collected at most: the maximum frame plus its FCS.
    #[inline]
    fn limit(&self) -> usize {
        self.config
            .max_frame_len
            .saturating_add(self.config.fcs.octets())
    }

    /// Whether an unescaped `octet` is a control character flagged in the receive ACCM.
    #[inline(always)]
    fn deleted(&self, octet: u8) -> bool {
        octet < 0x20
            && self
                .special
                .get(usize::from(octet))
                .copied()
                .unwrap_or(false)
    }

    #[inline(always)]
    fn is_special(&self, octet: u8) -> bool {
        self.special
            .get(usize::from(octet))
            .copied()
            .unwrap_or(true)
    }

    /// Consumes octets from the front of `input` until the next frame ends or the input is
    /// used up.
    ///
    /// - `Some(Ok(frame))`: a frame with a good FCS (FCS removed). It borrows the decoder's
    ///   buffer and is valid until the next call; `input` now starts right after its closing
    ///   flag, so call again with the same slice to get the frames that follow.
    /// - `Some(Err(e))`: a bad frame was dropped and counted; call again.
    /// - `None`: `input` is empty; a partial frame is kept for the next chunk.
    #[must_use = "call decode in a loop until it returns None"]
    pub fn decode<'s>(&'s mut self, input: &mut &[u8]) -> Option<Result<&'s [u8], FrameError>> {
        self.release();
        let before = input.len();
        let step = self.run(input);
        let used = before.saturating_sub(input.len());
        self.stats.octets_in = self.stats.octets_in.wrapping_add(used as u64);
        match step {
            Step::More => None,
            Step::Error(e) => Some(Err(e)),
            Step::Frame(n) => {
                self.delivered = true;
                Some(Ok(self.buf.get(..n).unwrap_or_default()))
            }
        }
    }

    fn run(&mut self, input: &mut &[u8]) -> Step {
        loop {
            match self.state {
                State::Hunt | State::Discard => {
                    let data: &[u8] = input;
                    let Some(i) = memchr::memchr(FLAG, data) else {
                        if self.state == State::Hunt {
                            self.hunted(data.len());
                        }
                        *input = &[];
                        return Step::More;
                    };
                    if self.state == State::Hunt {
                        self.hunted(i);
                    }
                    *input = data.get(i + 1..).unwrap_or_default();
                    self.start_frame();
                }
                State::Frame => return self.in_frame(input),
            }
        }
    }

    fn hunted(&mut self, n: usize) {
        self.stats.octets_hunted = self.stats.octets_hunted.wrapping_add(n as u64);
    }

    fn start_frame(&mut self) {
        self.buf.clear();
        self.escaped = false;
        self.state = State::Frame;
    }

    fn fail(&mut self, e: FrameError) -> Step {
        self.counters.bump(e.counter());
        Step::Error(e)
    }

    fn oversize(&mut self) -> Step {
        self.buf.clear();
        self.escaped = false;
        self.state = State::Discard;
        self.fail(FrameError::Oversize {
            max: self.config.max_frame_len,
        })
    }

    /// Collects frame octets until a frame ends (good or bad) or the input is used up.
    fn in_frame(&mut self, input: &mut &[u8]) -> Step {
        let limit = self.limit();
        loop {
            let data: &[u8] = input;
            if self.escaped {
                let Some((&b, rest)) = data.split_first() else {
                    return Step::More;
                };
                *input = rest;
                // RFC 1662 section 4.2: "Each Control Escape octet is also removed, and the
                // following octet is exclusive-or'd with hexadecimal 0x20, unless it is the
                // Flag Sequence (which aborts a frame)."
                if b == FLAG {
                    self.start_frame();
                    return self.fail(FrameError::Aborted);
                }
                if self.deleted(b) {
                    continue; // inserted by the line between the escape and its octet
                }
                self.escaped = false;
                if self.buf.len() >= limit {
                    return self.oversize();
                }
                self.buf.push(b ^ ESCAPE_XOR);
                continue;
            }

            // Runs of escape pairs (the worst case) without a scan per octet.
            let mut d = data;
            while let [ESCAPE, x, rest @ ..] = d {
                if *x == FLAG || self.deleted(*x) {
                    break;
                }
                if self.buf.len() >= limit {
                    *input = rest;
                    return self.oversize();
                }
                self.buf.push(*x ^ ESCAPE_XOR);
                d = rest;
            }

            let next = if self.fast {
                memchr::memchr2(ESCAPE, FLAG, d)
            } else {
                d.iter().position(|&b| self.is_special(b))
            };
            let (span, rest) = match next.and_then(|i| d.split_at_checked(i)) {
                Some(parts) => parts,
                None => (d, &[][..]),
            };
            if span.len() > limit.saturating_sub(self.buf.len()) {
                *input = rest;
                return self.oversize();
            }
            self.buf.extend_from_slice(span);
            let Some((&b, rest)) = rest.split_first() else {
                *input = rest;
                return Step::More;
            };
            *input = rest;
            match b {
                FLAG => {
                    if let Some(step) = self.end_frame(limit) {
                        return step;
                    }
                }
                ESCAPE => self.escaped = true,
                // RFC 1662 section 4.2: "On reception, prior to FCS computation, each octet
                // with value less than hexadecimal 0x20 is checked. If it is flagged in the
                // receiving ACCM, it is simply removed (it may have been inserted by
                // intervening data communications equipment)."
                _ => {}
            }
        }
    }

    /// A closing flag arrived. `None` for an empty frame (nothing to report).
    fn end_frame(&mut self, limit: usize) -> Option<Step> {
        let n = self.buf.len();
        // RFC 1662 section 3.1: "Two consecutive Flag Sequences constitute an empty frame,
        // which is silently discarded, and not counted as a FCS error."
        if n == 0 {
            return None;
        }
        let fcs_len = self.config.fcs.octets();
        // RFC 1662 section 4.3: "Frames which are too short (less than 4 octets when using the
        // 16-bit FCS) ... are silently discarded, and not counted as a FCS error."
        if n < MIN_FRAME_LEN + fcs_len {
            self.buf.clear();
            return Some(self.fail(FrameError::TooShort { len: n }));
        }
        if n > limit {
            // Only after the maximum was lowered mid-frame.
            self.buf.clear();
            return Some(self.fail(FrameError::Oversize {
                max: self.config.max_frame_len,
            }));
        }
        if !self.config.fcs.check(&self.buf) {
            self.buf.clear();
            return Some(self.fail(FrameError::BadFcs));
        }
        self.stats.frames_ok = self.stats.frames_ok.wrapping_add(1);
        Some(Step::Frame(n - fcs_len))
    }
}

#[cfg(test)]
mod test {
    use super::super::{Encoder, EncoderConfig};
    use super::*;

    /// Decodes `wire` fed in the given chunk sizes (cycled); returns good frames and errors.
    fn run(dec: &mut Decoder, wire: &[u8], chunk: usize) -> (Vec<Vec<u8>>, Vec<FrameError>) {
        let mut frames = Vec::new();
        let mut errors = Vec::new();
        for c in wire.chunks(chunk.max(1)) {
            let mut input = c;
            while let Some(r) = dec.decode(&mut input) {
                match r {
                    Ok(f) => frames.push(f.to_vec()),
                    Err(e) => errors.push(e),
                }
            }
            assert!(input.is_empty());
        }
        (frames, errors)
    }

    fn wire_of(frames: &[&[u8]], cfg: EncoderConfig) -> Vec<u8> {
        let mut e = Encoder::new(cfg);
        let mut out = Vec::new();
        for f in frames {
            e.encode(f, &mut out).unwrap();
        }
        out
    }

    /// An LCP Echo-Request (RFC 1661 section 5.8), hand-built: Code 9, Identifier 7,
    /// Length 8, Magic-Number 0xDEADBEEF.
    const ECHO: &[u8] = &[
        0xFF, 0x03, 0xC0, 0x21, 0x09, 0x07, 0x00, 0x08, 0xDE, 0xAD, 0xBE, 0xEF,
    ];

    /// `payload` framed with the default configuration (ACCM 0xFFFFFFFF, FCS-16).
    fn framed(payload: &[u8]) -> Vec<u8> {
        wire_of(&[payload], EncoderConfig::default())
    }

    #[test]
    fn lcp_confreq_wire_decodes() {
        // The hand-built wire image from the encoder tests, fed one octet at a time.
        let wire: &[u8] = &[
            0x7E, 0xFF, 0x7D, 0x23, 0xC0, 0x21, 0x7D, 0x21, 0x7D, 0x21, 0x7D, 0x20, 0x7D, 0x30,
            0x7D, 0x22, 0x7D, 0x26, 0x7D, 0x20, 0x7D, 0x20, 0x7D, 0x20, 0x7D, 0x20, 0x7D, 0x25,
            0x7D, 0x26, 0x7D, 0x32, 0x34, 0x56, 0x78, 0xA4, 0xF0, 0x7E,
        ];
        let mut d = Decoder::default();
        let (f, e) = run(&mut d, wire, 1);
        assert!(e.is_empty());
        assert_eq!(
            f,
            vec![vec![
                0xFF, 0x03, 0xC0, 0x21, 0x01, 0x01, 0x00, 0x10, 0x02, 0x06, 0x00, 0x00, 0x00, 0x00,
                0x05, 0x06, 0x12, 0x34, 0x56, 0x78
            ]]
        );
        assert_eq!(d.stats().frames_ok, 1);
        assert_eq!(d.stats().octets_in, wire.len() as u64);
    }

    #[test]
    fn frames_in_one_chunk_are_all_returned() {
        let wire = wire_of(&[ECHO, b"\xff\x03\x80\x21", ECHO], EncoderConfig::default());
        let mut d = Decoder::default();
        let mut input = &wire[..];
        let a = d.decode(&mut input).unwrap().unwrap().to_vec();
        assert_eq!(a, ECHO);
        assert!(!input.is_empty(), "the rest stays in the caller's slice");
        let b = d.decode(&mut input).unwrap().unwrap().to_vec();
        assert_eq!(b, b"\xff\x03\x80\x21");
        let c = d.decode(&mut input).unwrap().unwrap().to_vec();
        assert_eq!(c, ECHO);
        assert!(d.decode(&mut input).is_none());
        assert!(input.is_empty());
    }

    #[test]
    fn escape_at_chunk_end() {
        // 0x7E inside the payload is sent as 7D 5E; split exactly between them.
        let payload = [0xFF, 0x03, 0x00, 0x21, 0x7E, 0x7D, 0x45];
        let wire = framed(&payload);
        let pos = wire.iter().position(|&b| b == 0x7D).unwrap();
        let mut d = Decoder::new(DecoderConfig {
            accm: 0,
            ..Default::default()
        });
        let mut first = &wire[..=pos];
        assert!(d.decode(&mut first).is_none());
        assert!(d.is_mid_frame());
        let mut second = &wire[pos + 1..];
        assert_eq!(d.decode(&mut second).unwrap().unwrap(), payload);
        assert!(d.counters().is_zero());
    }

    #[test]
    fn garbage_before_first_flag_and_runs_of_flags() {
        let mut wire = b"CONNECT 52000\r\n".to_vec();
        wire.extend_from_slice(&[0x7E, 0x7E, 0x7E]);
        wire.extend_from_slice(&framed(ECHO));
        wire.extend_from_slice(&[0x7E, 0x7E]);
        for chunk in [1, 2, 3, 7, 1000] {
            let mut d = Decoder::default();
            let (f, e) = run(&mut d, &wire, chunk);
            assert_eq!(f, vec![ECHO.to_vec()]);
            assert!(e.is_empty(), "empty frames are not errors");
            assert!(d.counters().is_zero());
            assert_eq!(d.stats().octets_hunted, 15);
        }
    }

    #[test]
    fn abort_counts_framing_and_next_frame_arrives() {
        let mut wire = vec![0x7E, 0xFF, 0x03, 0xC0, 0x21, 0x01, 0x7D, 0x7E];
        wire.extend_from_slice(&framed(ECHO)[1..]); // shares the abort's flag
        let mut d = Decoder::default();
        let (f, e) = run(&mut d, &wire, 1);
        assert_eq!(e, vec![FrameError::Aborted]);
        assert_eq!(f, vec![ECHO.to_vec()]);
        assert_eq!(d.counters().framing_errors, 1);
        assert_eq!(d.counters().crc_errors, 0);
    }

    #[test]
    fn too_short_frames() {
        // 3 octets between flags with FCS-16, 5 with FCS-32: too short.
        let wire = [0x7E, 0x21, 0x22, 0x23, 0x7E, 0x41, 0x7E];
        let mut d = Decoder::default();
        let (f, e) = run(&mut d, &wire, 1);
        assert!(f.is_empty());
        assert_eq!(
            e,
            vec![
                FrameError::TooShort { len: 3 },
                FrameError::TooShort { len: 1 }
            ]
        );
        assert_eq!(d.counters().framing_errors, 2);

        let mut d = Decoder::new(DecoderConfig {
            fcs: FcsKind::Fcs32,
            ..Default::default()
        });
        let (_, e) = run(&mut d, &[0x7E, 0x41, 0x42, 0x43, 0x44, 0x45, 0x7E], 3);
        assert_eq!(e, vec![FrameError::TooShort { len: 5 }]);
    }

    #[test]
    fn bad_fcs_counts_crc() {
        let mut wire = framed(ECHO);
        wire[3] ^= 0x01;
        wire.extend_from_slice(&framed(ECHO)[1..]);
        let mut d = Decoder::default();
        let (f, e) = run(&mut d, &wire, 4);
        assert_eq!(e, vec![FrameError::BadFcs]);
        assert_eq!(f, vec![ECHO.to_vec()]);
        assert_eq!(d.counters().crc_errors, 1);
    }

    #[test]
    fn oversize_discards_and_resyncs() {
        let big = vec![0x41u8; 40];
        let ok = vec![0x42u8; 30];
        let wire = wire_of(&[&big, &ok, &big, &ok], EncoderConfig::default());
        for chunk in [1, 5, 1000] {
            let mut d = Decoder::new(DecoderConfig {
                max_frame_len: 30,
                ..Default::default()
            });
            let (f, e) = run(&mut d, &wire, chunk);
            assert_eq!(f, vec![ok.clone(), ok.clone()]);
            assert_eq!(e, vec![FrameError::Oversize { max: 30 }; 2]);
            assert_eq!(d.counters().buffer_overruns, 2);
            assert_eq!(d.counters().crc_errors + d.counters().framing_errors, 0);
        }
        // Oversize through escapes (every octet escaped) too.
        let big = vec![0x7Eu8; 40];
        let wire = wire_of(&[&big, &ok], EncoderConfig::default());
        let mut d = Decoder::new(DecoderConfig {
            max_frame_len: 30,
            ..Default::default()
        });
        let (f, e) = run(&mut d, &wire, 1000);
        assert_eq!(f, vec![ok.clone()]);
        assert_eq!(e, vec![FrameError::Oversize { max: 30 }]);
    }

    #[test]
    fn exactly_max_is_accepted() {
        let f30 = vec![0x7Du8; 30];
        let wire = wire_of(&[&f30], EncoderConfig::default());
        let mut d = Decoder::new(DecoderConfig {
            max_frame_len: 30,
            ..Default::default()
        });
        let (f, e) = run(&mut d, &wire, 1);
        assert!(e.is_empty());
        assert_eq!(f, vec![f30]);
    }

    #[test]
    fn unescaped_accm_characters_are_deleted() {
        // XON/XOFF (0x11/0x13) inserted by a modem: anywhere, even between 7D and its octet.
        let clean = wire_of(&[ECHO], EncoderConfig::default());
        let mut dirty = Vec::new();
        for (i, &b) in clean.iter().enumerate() {
            dirty.push(b);
            if i % 3 == 0 {
                dirty.push(0x11);
            }
            if b == 0x7D {
                dirty.push(0x13);
            }
        }
        for chunk in [1, 2, 1000] {
            let mut d = Decoder::default();
            let (f, e) = run(&mut d, &dirty, chunk);
            assert!(e.is_empty(), "{e:?}");
            assert_eq!(f, vec![ECHO.to_vec()]);
        }
        // With ACCM 0 they are data, so the FCS fails.
        let mut d = Decoder::new(DecoderConfig {
            accm: 0,
            ..Default::default()
        });
        let (f, e) = run(&mut d, &dirty, 1000);
        assert!(f.is_empty());
        assert_eq!(e, vec![FrameError::BadFcs]);
    }

    #[test]
    fn control_chars_not_in_accm_are_data() {
        // Receive ACCM 0x000A0000 deletes only XON/XOFF; 0x01 is data.
        let payload = [0xFF, 0x03, 0x01, 0x02];
        let wire = wire_of(
            &[&payload],
            EncoderConfig {
                accm: 0,
                ..Default::default()
            },
        );
        let mut d = Decoder::new(DecoderConfig {
            accm: 0x000A_0000,
            ..Default::default()
        });
        let (f, e) = run(&mut d, &wire, 2);
        assert!(e.is_empty());
        assert_eq!(f, vec![payload.to_vec()]);
    }

    #[test]
    fn idle_timeout_and_alignment() {
        let wire = framed(ECHO);
        let mut d = Decoder::default();
        let mut part = &wire[..6];
        assert!(d.decode(&mut part).is_none());
        assert!(d.is_mid_frame());
        assert!(d.handle_idle());
        assert_eq!(d.counters().timeout_errors, 1);
        assert!(!d.is_mid_frame());
        // The tail of the stuck frame is hunted over, not reported as another error.
        let (f, e) = run(&mut d, &wire[6..], 1000);
        assert!(f.is_empty() && e.is_empty());
        // Idle between frames is a no-op.
        assert!(!d.handle_idle());
        let (f, _) = run(&mut d, &wire, 1000);
        assert_eq!(f.len(), 1);
        assert!(!d.handle_idle());
        assert_eq!(d.counters().timeout_errors, 1);
        // Idle right after a Control Escape: the frame ended inside an escape.
        let mut part: &[u8] = &[0x7E, 0xFF, 0x7D];
        assert!(d.decode(&mut part).is_none());
        assert!(d.handle_idle());
        assert_eq!(d.counters().alignment_errors, 1);
        assert_eq!(d.counters().timeout_errors, 1);
    }

    #[test]
    fn delivered_frame_is_not_a_partial_frame() {
        let wire = framed(ECHO);
        let mut d = Decoder::default();
        let mut input = &wire[..];
        assert!(d.decode(&mut input).unwrap().is_ok());
        assert!(!d.is_mid_frame());
        assert!(!d.handle_idle());
        assert!(d.counters().is_zero());
    }

    #[test]
    fn driver_reported_errors() {
        let wire = framed(ECHO);
        let mut d = Decoder::default();
        let mut part = &wire[..5];
        assert!(d.decode(&mut part).is_none());
        d.note_hardware_overrun();
        // The rest of the damaged frame is skipped, the next frame arrives.
        let mut tail = wire[5..].to_vec();
        tail.extend_from_slice(&wire[1..]);
        let (f, e) = run(&mut d, &tail, 3);
        assert!(e.is_empty());
        assert_eq!(f, vec![ECHO.to_vec()]);
        assert_eq!(d.counters().hardware_overruns, 1);
        d.note_framing_error();
        d.note_buffer_overrun();
        assert_eq!(d.counters().framing_errors, 1);
        assert_eq!(d.counters().buffer_overruns, 1);
        assert_eq!(d.counters().crc_errors, 0);
    }

    #[test]
    fn fcs32_and_runtime_switch() {
        let mut d = Decoder::default();
        let w16 = wire_of(&[ECHO], EncoderConfig::default());
        let w32 = wire_of(
            &[ECHO],
            EncoderConfig {
                fcs: FcsKind::Fcs32,
                ..Default::default()
            },
        );
        let (f, _) = run(&mut d, &w16, 1000);
        assert_eq!(f.len(), 1);
        d.set_fcs(FcsKind::Fcs32);
        let (f, e) = run(&mut d, &w32, 1000);
        assert!(e.is_empty());
        assert_eq!(f, vec![ECHO.to_vec()]);
        // A FCS-16 frame read as FCS-32 fails the check.
        let (f, e) = run(&mut d, &w16, 1000);
        assert!(f.is_empty());
        assert_eq!(e, vec![FrameError::BadFcs]);
    }

    #[test]
    fn huge_maximum_is_clamped() {
        let mut d = Decoder::new(DecoderConfig {
            max_frame_len: usize::MAX,
            ..Default::default()
        });
        assert_eq!(d.config().max_frame_len, MAX_FRAME_LEN_LIMIT);
        assert!(d.buf.capacity() >= MAX_FRAME_LEN_LIMIT + 2);
        d.set_max_frame_len(10);
        let (f, e) = run(&mut d, &framed(ECHO), 1000);
        assert!(f.is_empty());
        assert_eq!(e, vec![FrameError::Oversize { max: 10 }]);
    }

    #[test]
    fn reset_hunts_again() {
        let wire = framed(ECHO);
        let mut d = Decoder::default();
        let mut part = &wire[..4];
        assert!(d.decode(&mut part).is_none());
        d.reset();
        let (f, e) = run(&mut d, &wire[4..], 1000);
        assert!(f.is_empty() && e.is_empty());
        assert!(d.counters().is_zero());
    }

    #[test]
    fn no_reallocation_while_decoding() {
        let wire = wire_of(&[&[0x55u8; 1504][..], ECHO], EncoderConfig::default());
        let mut d = Decoder::default();
        let cap = d.buf.capacity();
        let ptr = d.buf.as_ptr();
        let (f, _) = run(&mut d, &wire, 100);
        assert_eq!(f.len(), 2);
        assert_eq!(d.buf.capacity(), cap);
        assert_eq!(d.buf.as_ptr(), ptr);
    }
}
