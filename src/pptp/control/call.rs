//! Per-call bookkeeping: the call record, Call ID allocation with quarantine, serial numbers.

use super::spec::CallState;
use crate::pptp::message::{CallStatistics, FramingType, WanErrorNotify};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One call on a control connection.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) state: CallState,
    pub(crate) peer_call_id: Option<u16>,
    pub(crate) serial: u16,
    /// Deadline of the current state (reply wait, answer, dial, decision).
    pub(crate) deadline: Option<Instant>,
    pub(crate) peer_window: u16,
    pub(crate) peer_delay: u16,
    pub(crate) connect_speed: u32,
    pub(crate) framing: FramingType,
    /// When the last WAN-Error-Notify went out.
    pub(crate) wen_last: Option<Instant>,
    /// Counters waiting for the rate limit to allow the next WAN-Error-Notify.
    pub(crate) wen_pending: Option<WanErrorNotify>,
    pub(crate) statistics: CallStatistics,
    /// `CallDown` was already reported (PNS side, waiting for the CDN after an abort).
    pub(crate) down_reported: bool,
}

impl Call {
    pub(crate) fn new(state: CallState, serial: u16) -> Self {
        Call {
            state,
            peer_call_id: None,
            serial,
            deadline: None,
            peer_window: 0,
            peer_delay: 0,
            connect_speed: 0,
            framing: FramingType::Async,
            wen_last: None,
            wen_pending: None,
            statistics: CallStatistics::empty(),
            down_reported: false,
        }
    }

    /// When the pending WAN-Error-Notify may go out (a pending one always has a previous one:
    /// the first is sent at once).
    pub(crate) fn wen_due(&self, interval: Duration) -> Option<Instant> {
        self.wen_pending?;
        self.wen_last.map(|t| t + interval)
    }
}

/// Call ID allocation, unique per control connection, with quarantine: an ID freed at `t` is not
/// handed out again before `t + quarantine`, so late GRE packets and control messages of the old
/// call cannot reach the new one.
#[derive(Debug, Clone)]
pub(crate) struct CallIds {
    next: u16,
    quarantine: Duration,
    released: HashMap<u16, Instant>,
}

impl CallIds {
    pub(crate) fn new(first: u16, quarantine: Duration) -> Self {
        CallIds {
            next: first.max(1),
            quarantine,
            released: HashMap::new(),
        }
    }

    /// A free ID that is neither in use (`in_use`) nor quarantined, or `None` when all 65535 are
    /// taken. 0 is never handed out (some peers treat it as "no call").
    pub(crate) fn allocate(&mut self, now: Instant, in_use: impl Fn(u16) -> bool) -> Option<u16> {
        let quarantine = self.quarantine;
        self.released.retain(|_, t| now < *t + quarantine);
        for _ in 0..=u16::MAX {
            let id = self.next;
            self.next = self.next.wrapping_add(1).max(1);
            if id != 0 && !in_use(id) && !self.released.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    pub(crate) fn release(&mut self, id: u16, now: Instant) {
        if !self.quarantine.is_zero() {
            self.released.insert(id, now);
        }
    }

    /// Whether `id` is quarantined at `now`.
    pub(crate) fn is_quarantined(&self, id: u16, now: Instant) -> bool {
        self.released
            .get(&id)
            .is_some_and(|t| now < *t + self.quarantine)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn ids_are_unique_and_skip_zero() {
        let t0 = Instant::now();
        let mut ids = CallIds::new(u16::MAX, Duration::from_secs(10));
        let a = ids.allocate(t0, |_| false).unwrap();
        let b = ids.allocate(t0, |id| id == a).unwrap();
        assert_eq!(a, u16::MAX);
        assert_eq!(b, 1, "wraps past 0");
    }

    #[test]
    fn released_ids_are_quarantined() {
        let t0 = Instant::now();
        let mut ids = CallIds::new(5, Duration::from_secs(10));
        let a = ids.allocate(t0, |_| false).unwrap();
        ids.release(a, t0);
        assert!(ids.is_quarantined(a, t0 + Duration::from_secs(9)));
        assert!(!ids.is_quarantined(a, t0 + Duration::from_secs(10)));
        // Force the allocator back to `a`: while quarantined it is skipped.
        ids.next = a;
        let b = ids
            .allocate(t0 + Duration::from_secs(1), |_| false)
            .unwrap();
        assert_ne!(a, b);
        ids.next = a;
        let c = ids
            .allocate(t0 + Duration::from_secs(10), |_| false)
            .unwrap();
        assert_eq!(a, c, "free again after the quarantine");
    }

    #[test]
    fn exhaustion_returns_none() {
        let t0 = Instant::now();
        let mut ids = CallIds::new(1, Duration::ZERO);
        assert_eq!(ids.allocate(t0, |_| true), None);
    }
}
