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
        if on == self.maintenance {
            return;
        }
        self.maintenance = on;
        if on {
            let reason = "maintenance mode on: giving up the VIPs".into();
            self.enter_fault(now, Cause::MaintenanceOn, reason, out);
        } else {
            let why = "maintenance mode off".to_string();
            self.leave_fault_if_clear(now, Cause::MaintenanceOff, why, out);
        }
    }

    /// Whether maintenance mode is on.
    pub fn maintenance(&self) -> bool {
        self.maintenance
    }
}
