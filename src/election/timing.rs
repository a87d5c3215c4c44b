//! Election timing (RFC 9568 §6.1): skew, master-down, preemption clocks, and the one
//! table of deadlines [`Election::next_deadline`] reads.

use super::*;

/// One of the election's own deadlines (quinn-proto's `TimerTable` is the model: one slot
/// per kind, [`TimerTable::next`] the earliest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// The next advert (every state, every advert interval).
    Advert = 0,
    /// Backup: the master-down timer (RFC 9568 §6.4.2 `Master_Down_Timer`); also re-probing
    /// a blocked claim and the better-backup turn.
    MasterDown = 1,
    /// A VIP-install fault clears by itself ([`VIP_INSTALL_RETRY`]).
    VipRetry = 2,
    /// A graceful stop is under way: shut down once not master, or at this deadline.
    StopBy = 3,
    /// Maintenance was turned on while master: the VIPs are being handed over
    /// make-before-break; enter maintenance once not master, or at this deadline.
    MaintenanceBy = 4,
}

impl Timer {
    const COUNT: usize = 5;
}

/// The armed deadlines, one slot per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(super) struct TimerTable([Option<Instant>; Timer::COUNT]);

impl TimerTable {
    /// Arms `timer` for `at` (replacing an earlier setting).
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer as usize] = Some(at);
    }

    /// When `timer` fires, if armed.
    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer as usize]
    }

    /// Disarms `timer`.
    pub(super) fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }

    /// The earliest armed deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

/// `now + d`, or `now` in the (unreachable with clamped config) case of overflow.
pub(super) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

/// `(256 − priority) × interval / 256`, exact to the nanosecond.
pub(super) fn skew_for(priority: u8, interval: Duration) -> Duration {
    let nanos = interval.as_nanos() * (256 - u128::from(priority)) / 256;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// An advert's interval, never below the wire minimum.
pub(super) fn interval_of(a: &Advert) -> Duration {
    Duration::from_millis(u64::from(a.advert_interval_ms.max(MIN_ADVERT_INTERVAL_MS)))
}

/// A duration in milliseconds for reasons: "180 ms", "78.1 ms".
pub(super) fn ms(d: Duration) -> String {
    let us = d.as_micros();
    if us % 1000 == 0 {
        format!("{} ms", us / 1000)
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

impl Election {
    /// Master-down interval for the master we follow: multiplier × its interval + our skew.
    pub fn master_down_interval(&self) -> Duration {
        self.master_down_for(self.master_interval())
    }

    /// Our skew for the master we follow: `(256 − our priority) × its interval / 256`.
    pub fn skew(&self) -> Duration {
        skew_for(self.cfg.priority, self.master_interval())
    }

    pub(super) fn master_interval(&self) -> Duration {
        self.followed
            .as_ref()
            .map_or(self.cfg.advert_interval, |f| f.interval)
    }

    pub(super) fn master_down_for(&self, interval: Duration) -> Duration {
        interval
            .saturating_mul(self.cfg.down_multiplier)
            .saturating_add(skew_for(self.cfg.priority, interval))
    }

    /// When to call `handle(now, Input::Timeout)` next: the next advert, or the master-down
    /// timer when backup. `None` before start and after shutdown.
    pub fn next_deadline(&self) -> Option<Instant> {
        // A live peer expiring can isolate us or cost us quorum: wake up when it does.
        let expiry = if self.stopped || (self.gateway.is_none() && !self.quorum_applies()) {
            None
        } else {
            self.peers
                .values()
                .filter(|p| p.priority != 0)
                .map(|p| after(p.last_heard, self.master_down_for(p.interval)))
                .filter(|t| Some(*t) > self.last_recheck)
                .min()
        };
        let handover = self.handing_over.as_ref().map(|(_, until)| *until);
        let grace = self.conflict_grace.map(|(_, until)| until);
        let recheck = self
            .contested
            .filter(|c| !c.rechecked)
            .map(|c| after(c.since, self.cfg.advert_interval));
        // The deadlines that carry data (whom we hand over to, whose conflict we wait
        // for, which contest to recheck) live with that data.
        let early_probe = self.early_probe_at();
        [
            self.timers.next(),
            expiry,
            handover,
            grace,
            recheck,
            early_probe,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether contact with `name` is proven in both directions, so that preempting it
    /// cannot leave it holding the VIPs unheard by us or deaf to our takeover:
    /// - wire v2: its latest advert says it heard a datagram we sent during this contact
    ///   (at most one advert interval before we first heard it again, which covers our
    ///   first advert after a restart; a report from before a gap is older than that by a
    ///   master-down interval at least), or
    /// - any peer (v1 has no `heard`): we have heard it without a gap for
    ///   [`PREEMPT_SETTLE`].
    pub(super) fn contact_proven(&self, now: Instant, name: &str) -> bool {
        self.two_way(name)
            || self
                .peers
                .get(name)
                .is_some_and(|p| now >= after(p.contact_since, PREEMPT_SETTLE))
    }

    /// The wire-v2 half of [`Election::contact_proven`]: `name`'s latest advert says it
    /// heard a datagram we sent during this contact.
    pub(super) fn two_way(&self, name: &str) -> bool {
        self.peers.get(name).is_some_and(|p| {
            p.heard_us_at
                .is_some_and(|t| after(t, self.cfg.advert_interval) >= p.contact_since)
        })
    }

    pub(super) fn may_preempt(&self, now: Instant) -> bool {
        let since = self
            .started_at
            .max(self.last_stepdown)
            .max(self.last_fault_exit);
        self.cfg.preempt
            && !self.yielded
            && since.is_some_and(|s| now >= after(s, self.cfg.preempt_delay))
    }
}
