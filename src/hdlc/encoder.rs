//! The transmit side: FCS, octet stuffing and flags.

use super::{
    EncodeError, EscapeMap, FcsKind, FrameSink, DEFAULT_ACCM, ESCAPE, ESCAPE_XOR, FLAG,
    MIN_FRAME_LEN,
};

/// Transmit parameters; change them at run time with the `set_*` methods of [`Encoder`] when
/// LCP reaches Opened (or when a PNS sends Set-Link-Info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// The peer's receive ACCM: control characters 0x00..=0x1F to escape. Default
    /// [`DEFAULT_ACCM`] (all of them).
    pub accm: u32,
    /// Further octets to escape on hostile links (for example 0x7F and 0xFF), the "extended
    /// ACCM". Octets whose escaped form would be misread are never escaped, see
    /// [`Encoder::escape_map`].
    pub extended: EscapeMap,
    /// Which FCS to append.
    pub fcs: FcsKind,
    /// Send an opening flag before every frame, not only after idle (costs one octet per frame,
    /// for links where idle cannot be detected).
    pub flag_every_frame: bool,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            accm: DEFAULT_ACCM,
            extended: EscapeMap::EMPTY,
            fcs: FcsKind::Fcs16,
            flag_every_frame: false,
        }
    }
}

/// Octets that are never escaped even when a map asks for them, because their escaped form
/// would not survive: 0x5E escapes to the flag 0x7E (read as an abort), 0x5D escapes to the
/// Control Escape 0x7D (which receivers such as Linux `ppp_async` take as a second escape), and
/// 0x20..=0x3F escape to control characters that a receiver deletes when they are in its
/// receive ACCM (RFC 1662 section 4.2, "it may have been inserted by intervening data
/// communications equipment").
pub const NEVER_ESCAPED: EscapeMap = EscapeMap::from_words([
    0xFFFF_FFFF_0000_0000, // 0x20..=0x3F
    0x6000_0000,           // 0x5D, 0x5E (bits 29, 30 of word 1)
    0,
    0,
]);

/// Frames PPP packets for an asynchronous line.
///
/// Flags: one flag is shared between back-to-back frames (RFC 1662 section 4.4.2, "a Flag
/// Sequence may serve as both a frame end and a frame begin"). An opening flag is sent before
/// the first frame and before the first frame after [`handle_idle`](Self::handle_idle), so
/// that line noise during the idle time is cut off as a separate (discarded) frame.
#[derive(Debug, Clone)]
pub struct Encoder {
    config: EncoderConfig,
    /// `true` for every octet that must be escaped.
    table: [bool; 256],
    /// Only 0x7D and 0x7E need escaping: scan with `memchr2`.
    fast: bool,
    open_flag: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new(EncoderConfig::default())
    }
}

impl Encoder {
    /// An encoder whose next frame starts with an opening flag.
    #[must_use]
    pub fn new(config: EncoderConfig) -> Self {
        let mut e = Encoder {
            config,
            table: [false; 256],
            fast: false,
            open_flag: true,
        };
        e.rebuild();
        e
    }

    /// The current configuration.
    #[must_use]
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Sets the transmit ACCM (the ACCM the peer asked for in its LCP Configure-Request).
    pub fn set_accm(&mut self, accm: u32) {
        self.config.accm = accm;
        self.rebuild();
    }

    /// Sets the extended escape map.
    pub fn set_extended_map(&mut self, map: EscapeMap) {
        self.config.extended = map;
        self.rebuild();
    }

    /// Sets the FCS kind (after RFC 1570 FCS-Alternatives negotiation).
    pub fn set_fcs(&mut self, fcs: FcsKind) {
        self.config.fcs = fcs;
    }

    /// Tells the encoder the line has been idle: the next frame gets an opening flag.
    pub fn handle_idle(&mut self) {
        self.open_flag = true;
    }

    /// The octets actually escaped: 0x7D, 0x7E, the ACCM and the extended map, minus
    /// [`NEVER_ESCAPED`].
    #[must_use]
    pub fn escape_map(&self) -> EscapeMap {
        let mut m = EscapeMap::EMPTY;
        for (octet, &esc) in (0..=u8::MAX).zip(self.table.iter()) {
            if esc {
                m.insert(octet);
            }
        }
        m
    }

    /// The most octets [`encode`](Self::encode) can append for a frame of `frame_len` octets.
    #[must_use]
    pub fn max_encoded_len(&self, frame_len: usize) -> usize {
        2 + 2 * (frame_len + self.config.fcs.octets())
    }

    fn rebuild(&mut self) {
        let mut map = EscapeMap::from_accm(self.config.accm).union(self.config.extended);
        for (octet, never) in (0..=u8::MAX).map(|o| (o, NEVER_ESCAPED.contains(o))) {
            if never {
                map.remove(octet);
            }
        }
        // RFC 1662 section 4.2: "Each Flag Sequence, Control Escape octet, and any octet which
        // is flagged in the sending Async-Control-Character-Map (ACCM), is replaced by a two
        // octet sequence".
        map.insert(FLAG);
        map.insert(ESCAPE);
        self.table = map.table();
        self.fast = map == EscapeMap::from_octets(&[FLAG, ESCAPE]);
    }

    #[inline(always)]
    fn needs_escape(&self, octet: u8) -> bool {
        self.table.get(usize::from(octet)).copied().unwrap_or(true)
    }

    /// Appends `frame` to `out`: opening flag if needed, the frame and its FCS (least
    /// significant octet first) with every octet of the escape map escaped, closing flag.
    ///
    /// `frame` is the PPP frame without FCS (Address/Control, Protocol, Information).
    pub fn encode<S: FrameSink + ?Sized>(
        &mut self,
        frame: &[u8],
        out: &mut S,
    ) -> Result<(), EncodeError> {
        if frame.len() < MIN_FRAME_LEN {
            return Err(EncodeError::TooShort { len: frame.len() });
        }
        let fcs = self.config.fcs.trailer(frame);
        let fcs = fcs.get(..self.config.fcs.octets()).unwrap_or_default();
        out.sink_reserve(self.max_encoded_len(frame.len()));
        if self.open_flag || self.config.flag_every_frame {
            out.sink_extend(&[FLAG]);
        }
        self.escape_into(frame, out);
        self.escape_into(fcs, out);
        out.sink_extend(&[FLAG]);
        self.open_flag = false;
        Ok(())
    }

    /// Escapes `data` into `out`: whole spans that need no escaping are copied at once.
    fn escape_into<S: FrameSink + ?Sized>(&self, data: &[u8], out: &mut S) {
        let mut rest = data;
        loop {
            let next = if self.fast {
                memchr::memchr2(ESCAPE, FLAG, rest)
            } else {
                rest.iter().position(|&b| self.needs_escape(b))
            };
            let Some((span, mut tail)) = next.and_then(|i| rest.split_at_checked(i)) else {
                out.sink_extend(rest);
                return;
            };
            out.sink_extend(span);
            // Escape the whole run of octets that need it before scanning again: the worst
            // case (every octet escaped) stays a tight loop.
            while let Some((&b, more)) = tail.split_first() {
                if !self.needs_escape(b) {
                    break;
                }
                out.sink_extend(&[ESCAPE, b ^ ESCAPE_XOR]);
                tail = more;
            }
            rest = tail;
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// An LCP Configure-Request built by hand (RFC 1661 section 5.1): Address 0xFF, Control
    /// 0x03, Protocol 0xC021, Code 1, Identifier 1, Length 16, ACCM option (2, 6, 00000000),
    /// Magic-Number option (5, 6, 12345678).
    static LCP_CONFREQ: [u8; 20] = [
        0xFF, 0x03, 0xC0, 0x21, 0x01, 0x01, 0x00, 0x10, 0x02, 0x06, 0x00, 0x00, 0x00, 0x00, 0x05,
        0x06, 0x12, 0x34, 0x56, 0x78,
    ];

    /// The same frame on the wire with the default ACCM 0xFFFFFFFF and FCS-16: every octet
    /// below 0x20 becomes 0x7D, octet ^ 0x20. FCS-16 of the 20 octets is 0xF0A4 (complemented),
    /// sent 0xA4, 0xF0; neither needs escaping.
    static LCP_CONFREQ_WIRE: [u8; 38] = [
        0x7E, // opening flag
        0xFF, 0x7D, 0x23, 0xC0, 0x21, // FF, 03 escaped, C0 21
        0x7D, 0x21, 0x7D, 0x21, 0x7D, 0x20, 0x7D, 0x30, // 01 01 00 10
        0x7D, 0x22, 0x7D, 0x26, 0x7D, 0x20, 0x7D, 0x20, 0x7D, 0x20, 0x7D, 0x20, // ACCM option
        0x7D, 0x25, 0x7D, 0x26, 0x7D, 0x32, 0x34, 0x56, 0x78, // Magic-Number option
        0xA4, 0xF0, // FCS, least significant octet first
        0x7E, // closing flag
    ];

    #[test]
    fn lcp_configure_request_default_accm() {
        let mut e = Encoder::default();
        let mut out = Vec::new();
        e.encode(&LCP_CONFREQ, &mut out).unwrap();
        assert_eq!(out, LCP_CONFREQ_WIRE);
        // Back to back: the closing flag is shared, no second opening flag.
        out.clear();
        e.encode(&LCP_CONFREQ, &mut out).unwrap();
        assert_eq!(out, &LCP_CONFREQ_WIRE[1..]);
        // After idle the opening flag comes back.
        e.handle_idle();
        out.clear();
        e.encode(&LCP_CONFREQ, &mut out).unwrap();
        assert_eq!(out, LCP_CONFREQ_WIRE);
    }

    #[test]
    fn fcs_of_lcp_confreq() {
        assert_eq!(!super::super::fcs16(0xFFFF, &LCP_CONFREQ), 0xF0A4);
    }

    #[test]
    fn accm_zero_escapes_only_flag_and_escape() {
        let mut e = Encoder::new(EncoderConfig {
            accm: 0,
            ..Default::default()
        });
        let mut out = Vec::new();
        e.encode(&[0x00, 0x7E, 0x11, 0x7D, 0x20], &mut out).unwrap();
        let fcs = (!super::super::fcs16(0xFFFF, &[0x00, 0x7E, 0x11, 0x7D, 0x20])).to_le_bytes();
        let mut want = vec![0x7E, 0x00, 0x7D, 0x5E, 0x11, 0x7D, 0x5D, 0x20];
        for b in fcs {
            if b == 0x7E || b == 0x7D {
                want.extend_from_slice(&[0x7D, b ^ 0x20]);
            } else {
                want.push(b);
            }
        }
        want.push(0x7E);
        assert_eq!(out, want);
    }

    #[test]
    fn extended_map_escapes_7f_ff_but_never_5e() {
        let mut e = Encoder::new(EncoderConfig {
            accm: 0,
            extended: EscapeMap::from_octets(&[0x7F, 0xFF, 0x5E, 0x5D, 0x31]),
            fcs: FcsKind::Fcs32,
            flag_every_frame: true,
        });
        let m = e.escape_map();
        assert!(m.contains(0x7F) && m.contains(0xFF) && m.contains(0x7E) && m.contains(0x7D));
        assert!(!m.contains(0x5E) && !m.contains(0x5D) && !m.contains(0x31));
        let mut out = Vec::new();
        e.encode(&[0x7F, 0xFF, 0x5E], &mut out).unwrap();
        assert_eq!(&out[..6], &[0x7E, 0x7D, 0x5F, 0x7D, 0xDF, 0x5E]);
        // flag_every_frame: the second frame opens with a flag too.
        let n = out.len();
        e.encode(&[0x41, 0x42], &mut out).unwrap();
        assert_eq!(out[n], 0x7E);
        assert_eq!(out[n + 1], 0x41);
    }

    #[test]
    fn too_short_frames_are_refused() {
        let mut e = Encoder::default();
        let mut out = Vec::new();
        assert_eq!(
            e.encode(&[], &mut out),
            Err(EncodeError::TooShort { len: 0 })
        );
        assert_eq!(
            e.encode(&[0x21], &mut out),
            Err(EncodeError::TooShort { len: 1 })
        );
        assert!(out.is_empty());
    }

    #[test]
    fn runtime_fcs_and_accm_change() {
        let mut e = Encoder::default();
        e.set_fcs(FcsKind::Fcs32);
        e.set_accm(0);
        let mut out = Vec::new();
        e.encode(b"\xC0\x21hello", &mut out).unwrap();
        let fcs = (!super::super::fcs32(0xFFFF_FFFF, b"\xC0\x21hello")).to_le_bytes();
        assert_eq!(&out[1..8], b"\xC0\x21hello");
        assert_eq!(
            out.len(),
            1 + 7 + 4 + 1,
            "no octet of this FCS needs escaping"
        );
        assert_eq!(&out[8..12], &fcs);
        assert_eq!(e.config().accm, 0);
    }
}
