//! Faults by kind (link, health check, checks pending, VIP install) and maintenance mode:
//! one rule for entering and one for leaving Fault.

use super::*;

impl Election {
    pub(super) fn on_fault(
        &mut self,
        now: Instant,
        cause: FaultCause,
        reason: String,
        out: &mut Vec<Action>,
    ) {
        if cause == FaultCause::VipInstall {
            self.timers
                .set(Timer::VipRetry, after(now, VIP_INSTALL_RETRY));
        }
        self.faults.insert(cause, reason.clone());
        self.enter_fault(now, Cause::Fault(cause), reason, out);
    }

    pub(super) fn enter_fault(
        &mut self,
        now: Instant,
        cause: Cause,
        reason: String,
        out: &mut Vec<Action>,
    ) {
        let was = self.state;
        if was == State::Fault {
            return;
        }
        self.probing = false;
        self.transition(now, State::Fault, cause, reason, out);
        if was == State::Master {
            out.push(Action::ReleaseVips);
            // Our fault advert (sent below, after the release) names the best live backup:
            // it takes over at once instead of after its skew. Not a handover for good: we
            // may preempt again once the fault clears.
            if let Some(to) = self.best_live_backup(now).map(str::to_string) {
                self.handing_over = Some((to, after(now, self.master_down_interval())));
            }
        }
        if self.started_at.is_some() {
            self.send(now, out);
        }
    }

    pub(super) fn on_fault_cleared(
        &mut self,
        now: Instant,
        cause: FaultCause,
        out: &mut Vec<Action>,
    ) {
        if self.faults.remove(&cause).is_none() {
            return;
        }
        if cause == FaultCause::VipInstall {
            self.timers.stop(Timer::VipRetry);
        }
        self.leave_fault_if_clear(now, Cause::FaultCleared, "fault cleared".into(), out);
    }

    /// Why we must stay in Fault, if we must: a fault kind that holds, isolation or
    /// maintenance. The one rule for leaving Fault.
    pub(super) fn held_in_fault(&self) -> bool {
        !self.faults.is_empty() || self.isolated || self.maintenance
    }

    /// Leaves Fault for Backup (fresh master-down timer) if nothing holds us there any more;
    /// `why` starts the transition's reason.
    pub(super) fn leave_fault_if_clear(
        &mut self,
        now: Instant,
        cause: Cause,
        why: String,
        out: &mut Vec<Action>,
    ) {
        if self.state != State::Fault || self.held_in_fault() {
            return;
        }
        if self.started_at.is_some() {
            let reason = format!(
                "{why}: backup, master-down {}",
                ms(self.master_down_interval())
            );
            self.enter_backup(now, cause, reason, out);
            self.send(now, out);
        } else {
            let reason = format!("{why} before start");
            self.transition(now, State::Init, cause, reason, out);
        }
    }

    pub(super) fn on_maintenance(&mut self, now: Instant, on: bool, out: &mut Vec<Action>) {
        let pending = self.timers.get(Timer::MaintenanceBy).is_some();
        if on {
            if self.maintenance || pending {
                return;
            }
            // A master with a live backup hands the VIPs over first, make-before-break, as
            // a graceful stop does; maintenance begins once the successor has them.
            let successor = (self.state == State::Master)
                .then(|| self.best_live_backup(now).map(str::to_string))
                .flatten();
            if let Some(to) = successor {
                let wait = self
                    .master_down_interval()
                    .saturating_mul(STOP_HANDOVER_MASTER_DOWNS);
                self.timers.set(Timer::MaintenanceBy, after(now, wait));
                self.start_handover(now, to, out);
                return;
            }
            self.maintenance = true;
            let reason = "maintenance mode on: giving up the VIPs".into();
            self.enter_fault(now, Cause::MaintenanceOn, reason, out);
        } else {
            if pending {
                // Off before it began: the handover under way completes, and then the node
                // is an ordinary backup again (it may preempt: it did not hand over for
                // good, as an operator's `handover` does).
                self.timers.stop(Timer::MaintenanceBy);
                self.yielded = false;
                return;
            }
            if !self.maintenance {
                return;
            }
            self.maintenance = false;
            let why = "maintenance mode off".to_string();
            self.leave_fault_if_clear(now, Cause::MaintenanceOff, why, out);
        }
    }

    /// Begins maintenance once the handover it started is done (we are no longer master),
    /// or at its deadline (then the VIPs are given up anyway, with a notice).
    pub(super) fn finish_maintenance(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(deadline) = self.timers.get(Timer::MaintenanceBy) else {
            return;
        };
        if self.state == State::Master && now < deadline {
            return;
        }
        self.timers.stop(Timer::MaintenanceBy);
        let reason = if self.state == State::Master {
            out.push(Action::Notice {
                cause: NoticeCause::HandoverTimedOut,
                reason: "the successor did not take over in time: giving up the VIPs for \
                         maintenance anyway"
                    .into(),
            });
            "maintenance mode on: giving up the VIPs".to_string()
        } else {
            "maintenance mode on, the VIPs handed over".to_string()
        };
        self.maintenance = true;
        // The handover was the way into maintenance, not an operator's: once maintenance is
        // off, the node rejoins like any other (it may preempt again).
        self.yielded = false;
        self.enter_fault(now, Cause::MaintenanceOn, reason, out);
    }

    /// Whether maintenance mode is on.
    pub fn maintenance(&self) -> bool {
        self.maintenance
    }
}
