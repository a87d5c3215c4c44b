//! Turning a stream of single probe results into a stable up/down verdict.
//!
//! One lost echo on a busy LAN must not make a master give up its VIP, and one
//! lucky answer must not make an isolated node take it. [`Hysteresis`] flips to
//! unreachable only after `fall` consecutive failures and back to reachable only
//! after `rise` consecutive successes (keepalived's `fall`/`rise`). It is pure: no
//! clock, no I/O, so it is tested on its own.

/// A reachable/unreachable state that changes only after `fall` consecutive
/// failures or `rise` consecutive successes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hysteresis {
    fall: u32,
    rise: u32,
    reachable: bool,
    ok: u32,
    fail: u32,
}

impl Hysteresis {
    /// A new state machine starting at `initially_reachable`.
    ///
    /// `fall` and `rise` of 0 behave like 1 (a single result decides).
    pub fn new(fall: u32, rise: u32, initially_reachable: bool) -> Self {
        Self {
            fall: fall.max(1),
            rise: rise.max(1),
            reachable: initially_reachable,
            ok: 0,
            fail: 0,
        }
    }

    /// Records one probe result. Returns `Some(new_state)` when the state flips:
    /// to `false` on the `fall`-th consecutive failure while reachable, to `true`
    /// on the `rise`-th consecutive success while unreachable; `None` otherwise.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        if success {
            self.ok = self.ok.saturating_add(1);
            self.fail = 0;
            if !self.reachable && self.ok >= self.rise {
                self.reachable = true;
                return Some(true);
            }
        } else {
            self.fail = self.fail.saturating_add(1);
            self.ok = 0;
            if self.reachable && self.fail >= self.fall {
                self.reachable = false;
                return Some(false);
            }
        }
        None
    }

    /// The current state.
    pub fn reachable(&self) -> bool {
        self.reachable
    }

    /// The current runs: `(consecutive successes, consecutive failures)`; at
    /// most one of them is non-zero.
    pub fn consecutive(&self) -> (u32, u32) {
        (self.ok, self.fail)
    }

    /// Whether the current run is long enough to be a verdict of its own: `rise`
    /// successes or `fall` failures in a row. Used for the witness's first report,
    /// which must not wait for a flip.
    pub(crate) fn settled(&self) -> bool {
        self.ok >= self.rise || self.fail >= self.fall
    }

    /// The configured `fall` (at least 1).
    pub(crate) fn fall(&self) -> u32 {
        self.fall
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_only_after_fall_consecutive_failures() {
        let mut h = Hysteresis::new(3, 2, true);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert!(h.reachable());
        assert_eq!(h.consecutive(), (0, 2));
        assert_eq!(h.record(false), Some(false));
        assert!(!h.reachable());
        // Further failures do not flip again.
        assert_eq!(h.record(false), None);
        assert_eq!(h.consecutive(), (0, 4));
    }

    #[test]
    fn a_success_resets_the_failure_run() {
        let mut h = Hysteresis::new(3, 2, true);
        for _ in 0..10 {
            assert_eq!(h.record(false), None);
            assert_eq!(h.record(false), None);
            assert_eq!(h.record(true), None);
        }
        assert!(h.reachable());
        assert_eq!(h.consecutive(), (1, 0));
    }

    #[test]
    fn rises_only_after_rise_consecutive_successes() {
        let mut h = Hysteresis::new(3, 2, false);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None);
        assert!(!h.reachable());
        assert_eq!(h.record(true), Some(true));
        assert!(h.reachable());
        assert_eq!(h.record(true), None);
        assert_eq!(h.consecutive(), (3, 0));
    }

    #[test]
    fn full_cycle_flips_twice() {
        let mut h = Hysteresis::new(2, 3, true);
        let flips: Vec<_> = [false, false, false, true, true, true, true]
            .into_iter()
            .filter_map(|r| h.record(r))
            .collect();
        assert_eq!(flips, vec![false, true]);
    }

    #[test]
    fn zero_thresholds_behave_like_one() {
        let mut h = Hysteresis::new(0, 0, true);
        assert_eq!(h.record(false), Some(false));
        assert_eq!(h.record(true), Some(true));
    }

    #[test]
    fn settled_marks_the_first_verdict() {
        let mut h = Hysteresis::new(3, 2, false);
        assert!(!h.settled());
        h.record(false);
        h.record(false);
        assert!(!h.settled());
        h.record(false);
        assert!(h.settled());
        h.record(true);
        assert!(!h.settled());
        h.record(true);
        assert!(h.settled());
    }
}
