//! The fall/rise hysteresis of one check, as a pure struct: no clock, no I/O, so the exact
//! rules (first result decides, then `fall` failures / `rise` successes in a row; a certain
//! failure, a followed process's exit, fails at once) are unit tested here and the monitor
//! only feeds it results.

/// What the monitor currently believes about one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// No result yet.
    Unknown,
    /// Passing (a positive weight applies).
    Healthy,
    /// Failing (a negative or fault weight applies).
    Failing,
}

/// Consecutive-result counters and the health they imply.
#[derive(Debug, Clone)]
pub(crate) struct Hysteresis {
    health: Health,
    fall: u32,
    rise: u32,
    consecutive_ok: u32,
    consecutive_fail: u32,
}

impl Hysteresis {
    /// A check that has not run yet. `fall` and `rise` of 0 are treated as 1.
    pub(crate) fn new(fall: u32, rise: u32) -> Self {
        Hysteresis {
            health: Health::Unknown,
            fall: fall.max(1),
            rise: rise.max(1),
            consecutive_ok: 0,
            consecutive_fail: 0,
        }
    }

    /// Records one result and returns the new health if it changed.
    ///
    /// The first result decides at once (a fresh agent does not wait for `rise` before it
    /// serves); after that a healthy check turns failing after `fall` failures in a row and a
    /// failing one turns healthy after `rise` successes in a row.
    pub(crate) fn record(&mut self, ok: bool) -> Option<Health> {
        if ok {
            self.consecutive_ok = self.consecutive_ok.saturating_add(1);
            self.consecutive_fail = 0;
        } else {
            self.consecutive_fail = self.consecutive_fail.saturating_add(1);
            self.consecutive_ok = 0;
        }
        let next = match self.health {
            Health::Unknown if ok => Health::Healthy,
            Health::Unknown => Health::Failing,
            Health::Healthy if !ok && self.consecutive_fail >= self.fall => Health::Failing,
            Health::Failing if ok && self.consecutive_ok >= self.rise => Health::Healthy,
            same => same,
        };
        if next == self.health {
            None
        } else {
            self.health = next;
            Some(next)
        }
    }

    /// Records a failure that is certain, not a flaky answer (the followed process exited):
    /// failing at once, whatever `fall`. Returns the new health if it changed. Recovery
    /// still takes `rise` successes.
    pub(crate) fn fail_now(&mut self) -> Option<Health> {
        self.consecutive_fail = self.consecutive_fail.saturating_add(1);
        self.consecutive_ok = 0;
        if self.health == Health::Failing {
            None
        } else {
            self.health = Health::Failing;
            Some(Health::Failing)
        }
    }

    /// The current health.
    pub(crate) fn health(&self) -> Health {
        self.health
    }

    /// Successes in a row (0 after a failure).
    pub(crate) fn consecutive_ok(&self) -> u32 {
        self.consecutive_ok
    }

    /// Failures in a row (0 after a success).
    pub(crate) fn consecutive_fail(&self) -> u32 {
        self.consecutive_fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(h: &mut Hysteresis, results: &[bool]) -> Vec<Option<Health>> {
        results.iter().map(|&ok| h.record(ok)).collect()
    }

    #[test]
    fn first_success_is_healthy_at_once() {
        let mut h = Hysteresis::new(3, 5);
        assert_eq!(h.health(), Health::Unknown);
        assert_eq!(h.record(true), Some(Health::Healthy));
        assert_eq!(h.health(), Health::Healthy);
    }

    #[test]
    fn first_failure_is_failing_at_once() {
        let mut h = Hysteresis::new(3, 5);
        assert_eq!(h.record(false), Some(Health::Failing));
        assert_eq!(h.consecutive_fail(), 1);
    }

    #[test]
    fn fall_failures_in_a_row_make_it_fail() {
        let mut h = Hysteresis::new(2, 2);
        h.record(true);
        assert_eq!(feed(&mut h, &[false]), [None]);
        assert_eq!(h.health(), Health::Healthy);
        assert_eq!(h.record(false), Some(Health::Failing));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut h = Hysteresis::new(3, 1);
        h.record(true);
        assert_eq!(feed(&mut h, &[false, false, true, false, false]), [None; 5]);
        assert_eq!(h.health(), Health::Healthy);
        assert_eq!(h.record(false), Some(Health::Failing));
    }

    #[test]
    fn rise_successes_in_a_row_make_it_healthy() {
        let mut h = Hysteresis::new(1, 3);
        h.record(false);
        assert_eq!(feed(&mut h, &[true, true, false, true, true]), [None; 5]);
        assert_eq!(h.health(), Health::Failing);
        assert_eq!(h.consecutive_ok(), 2);
        assert_eq!(h.record(true), Some(Health::Healthy));
    }

    #[test]
    fn zero_fall_and_rise_act_as_one() {
        let mut h = Hysteresis::new(0, 0);
        h.record(true);
        assert_eq!(h.record(false), Some(Health::Failing));
        assert_eq!(h.record(true), Some(Health::Healthy));
    }

    #[test]
    fn a_certain_failure_skips_fall_but_not_rise() {
        let mut h = Hysteresis::new(3, 2);
        h.record(true);
        assert_eq!(h.fail_now(), Some(Health::Failing));
        assert_eq!(h.consecutive_fail(), 1);
        assert_eq!(h.fail_now(), None);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), Some(Health::Healthy));
        let mut fresh = Hysteresis::new(3, 2);
        assert_eq!(fresh.fail_now(), Some(Health::Failing));
    }

    #[test]
    fn counters_saturate() {
        let mut h = Hysteresis::new(1, 1);
        h.consecutive_fail = u32::MAX;
        h.health = Health::Failing;
        assert_eq!(h.record(false), None);
        assert_eq!(h.consecutive_fail(), u32::MAX);
    }
}
