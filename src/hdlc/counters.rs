//! Line error counters in the exact shape of the PPTP WAN-Error-Notify message (RFC 2637
//! section 2.14), plus plain receive statistics.
//!
//! Which event increments which counter (also in `docs/HDLC.md`):
//!
//! | event | counter |
//! |---|---|
//! | FCS residue wrong ([`FrameError::BadFcs`](super::FrameError::BadFcs)) | `crc_errors` |
//! | abort `7D 7E` ([`FrameError::Aborted`](super::FrameError::Aborted)) | `framing_errors` |
//! | 1..=N octets between flags, too short to be a frame ([`FrameError::TooShort`](super::FrameError::TooShort)) | `framing_errors` |
//! | driver saw a UART framing/parity error ([`Decoder::note_framing_error`](super::Decoder::note_framing_error)) | `framing_errors` |
//! | frame longer than the configured maximum ([`FrameError::Oversize`](super::FrameError::Oversize)) | `buffer_overruns` |
//! | driver lost input for lack of buffer ([`Decoder::note_buffer_overrun`](super::Decoder::note_buffer_overrun)) | `buffer_overruns` |
//! | driver saw a UART/FIFO overrun ([`Decoder::note_hardware_overrun`](super::Decoder::note_hardware_overrun)) | `hardware_overruns` |
//! | line idle with a partial frame held ([`Decoder::handle_idle`](super::Decoder::handle_idle)) | `timeout_errors` |
//! | line idle while a Control Escape waits for its octet: the frame ended inside an escape | `alignment_errors` |
//!
//! Empty frames (back-to-back flags) and octets before the first flag are not errors
//! (RFC 1662 section 3.1); the latter are counted in [`DecoderStats::octets_hunted`].

/// The six error counters of a PPTP WAN-Error-Notify message (RFC 2637 section 2.14).
///
/// Every field is a `u32` like on the wire and wraps on overflow. The counts are cumulative
/// "since the session was established", as the RFC defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WanErrorCounters {
    /// CRC Errors: PPP frames received with CRC (FCS) errors.
    pub crc_errors: u32,
    /// Framing Errors: improperly framed PPP packets received.
    pub framing_errors: u32,
    /// Hardware Overruns: receive buffer over-runs reported by the line hardware.
    pub hardware_overruns: u32,
    /// Buffer Overruns: buffer over-runs detected (oversize frames, dropped input).
    pub buffer_overruns: u32,
    /// Time-out Errors: partial frames abandoned because the line went idle.
    pub timeout_errors: u32,
    /// Alignment Errors: frames that ended inside an escape sequence.
    pub alignment_errors: u32,
}

/// Names one counter of [`WanErrorCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WanCounter {
    /// [`WanErrorCounters::crc_errors`].
    Crc,
    /// [`WanErrorCounters::framing_errors`].
    Framing,
    /// [`WanErrorCounters::hardware_overruns`].
    HardwareOverrun,
    /// [`WanErrorCounters::buffer_overruns`].
    BufferOverrun,
    /// [`WanErrorCounters::timeout_errors`].
    Timeout,
    /// [`WanErrorCounters::alignment_errors`].
    Alignment,
}

impl WanErrorCounters {
    /// Adds one to `counter`, wrapping at `u32::MAX`.
    pub fn bump(&mut self, counter: WanCounter) {
        let field = match counter {
            WanCounter::Crc => &mut self.crc_errors,
            WanCounter::Framing => &mut self.framing_errors,
            WanCounter::HardwareOverrun => &mut self.hardware_overruns,
            WanCounter::BufferOverrun => &mut self.buffer_overruns,
            WanCounter::Timeout => &mut self.timeout_errors,
            WanCounter::Alignment => &mut self.alignment_errors,
        };
        *field = field.wrapping_add(1);
    }

    /// The value of one counter.
    #[must_use]
    pub fn get(&self, counter: WanCounter) -> u32 {
        match counter {
            WanCounter::Crc => self.crc_errors,
            WanCounter::Framing => self.framing_errors,
            WanCounter::HardwareOverrun => self.hardware_overruns,
            WanCounter::BufferOverrun => self.buffer_overruns,
            WanCounter::Timeout => self.timeout_errors,
            WanCounter::Alignment => self.alignment_errors,
        }
    }

    /// Whether no error has been counted (or every counter wrapped to zero).
    #[must_use]
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// The counts accumulated since `earlier` (wrapping subtraction, field by field): what
    /// changed between two WAN-Error-Notify reports.
    #[must_use]
    pub fn since(&self, earlier: &WanErrorCounters) -> WanErrorCounters {
        WanErrorCounters {
            crc_errors: self.crc_errors.wrapping_sub(earlier.crc_errors),
            framing_errors: self.framing_errors.wrapping_sub(earlier.framing_errors),
            hardware_overruns: self
                .hardware_overruns
                .wrapping_sub(earlier.hardware_overruns),
            buffer_overruns: self.buffer_overruns.wrapping_sub(earlier.buffer_overruns),
            timeout_errors: self.timeout_errors.wrapping_sub(earlier.timeout_errors),
            alignment_errors: self.alignment_errors.wrapping_sub(earlier.alignment_errors),
        }
    }
}

/// Plain receive statistics of a [`Decoder`](super::Decoder) (wrapping `u64`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DecoderStats {
    /// Frames delivered with a good FCS.
    pub frames_ok: u64,
    /// Octets fed to the decoder (as received, escapes and flags included).
    pub octets_in: u64,
    /// Octets skipped while hunting for a flag (before the first frame, after a time-out), not
    /// counted as errors.
    pub octets_hunted: u64,
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn bump_wraps_and_maps_fields() {
        let mut c = WanErrorCounters {
            crc_errors: u32::MAX,
            ..Default::default()
        };
        c.bump(WanCounter::Crc);
        assert_eq!(c.crc_errors, 0);
        assert!(c.is_zero());
        for (i, k) in [
            WanCounter::Crc,
            WanCounter::Framing,
            WanCounter::HardwareOverrun,
            WanCounter::BufferOverrun,
            WanCounter::Timeout,
            WanCounter::Alignment,
        ]
        .into_iter()
        .enumerate()
        {
            for _ in 0..=i {
                c.bump(k);
            }
            assert_eq!(c.get(k), u32::try_from(i + 1).unwrap());
        }
        assert_eq!(c.framing_errors, 2);
        assert_eq!(c.alignment_errors, 6);
        let before = c;
        c.bump(WanCounter::Timeout);
        let d = c.since(&before);
        assert_eq!(d.timeout_errors, 1);
        assert_eq!(d.crc_errors + d.framing_errors + d.alignment_errors, 0);
    }

    #[test]
    fn since_wraps() {
        let earlier = WanErrorCounters {
            buffer_overruns: u32::MAX,
            ..Default::default()
        };
        let now = WanErrorCounters {
            buffer_overruns: 1,
            ..Default::default()
        };
        assert_eq!(now.since(&earlier).buffer_overruns, 2);
    }
}
