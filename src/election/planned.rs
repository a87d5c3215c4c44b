//! Planned moves: graceful stop, shutdown (priority-0 advert), operator handover.

use super::*;

impl Election {
    pub(super) fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        let was = self.state;
        let bye = self.started_at.map(|_| self.advert(was, 0));
        if was != State::Init {
            self.transition(
                now,
                State::Init,
                Cause::Shutdown,
                "shutting down".into(),
                out,
            );
        }
        if was == State::Master {
            out.push(Action::ReleaseVips);
        }
        out.extend(bye.map(Action::Send));
        self.stopped = true;
        self.timers.stop(Timer::Advert);
        self.timers.stop(Timer::MasterDown);
        self.timers.stop(Timer::StopBy);
        self.timers.stop(Timer::MaintenanceBy);
        self.timers.stop(Timer::VipRetry);
        self.conflict_grace = None;
        self.handing_over = None;
    }

    pub(super) fn take_over_planned(&mut self, now: Instant, from: &str, out: &mut Vec<Action>) {
        let epoch = self.max_seen.saturating_add(1);
        self.master_epoch = epoch;
        self.max_seen = epoch;
        self.followed = None;
        self.yielded = false;
        self.probing = false;
        let reason = format!("planned handover from {from}: taking over, epoch {epoch}");
        self.transition(now, State::Master, Cause::Handover, reason, out);
        out.push(Action::InstallVips);
        out.push(Action::Announce);
        self.send(now, out);
    }

    /// The master we follow went to Fault and named us its successor: take over now (its
    /// VIPs were released before that advert left), without probe or skew.
    pub(super) fn take_over_successor(&mut self, now: Instant, from: &str, out: &mut Vec<Action>) {
        let epoch = self.max_seen.saturating_add(1);
        self.master_epoch = epoch;
        self.max_seen = epoch;
        self.followed = None;
        self.yielded = false;
        self.probing = false;
        let reason = format!(
            "{from} reported a fault and named us its successor: taking over, epoch {epoch}"
        );
        self.transition(now, State::Master, Cause::PeerFault, reason, out);
        out.push(Action::InstallVips);
        out.push(Action::Announce);
        self.send(now, out);
    }

    /// A master whose effective priority fell below a live backup's (a failing check's
    /// negative weight, a passing check's positive weight gone) hands the VIPs to the best
    /// live backup at once, make-before-break, as a planned handover: that backup would
    /// preempt us anyway (when `preempt` is on, as it is on every node of a cluster that
    /// uses it), a master-down later and with a gap. Not for good: if our priority comes
    /// back, we may preempt again.
    pub(super) fn hand_over_if_outranked(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state != State::Master
            || !self.cfg.preempt
            || self.handing_over.is_some()
            || self.stopped
        {
            return;
        }
        let ours = self.rank();
        let Some(to) = self.best_live_backup(now) else {
            return;
        };
        let outranks = self.peers.get(to).is_some_and(|p| {
            Rank {
                priority: p.priority,
                name: to,
            } > ours
        });
        if !outranks {
            return;
        }
        let to = to.to_string();
        self.start_handover(now, to, out);
        self.yielded = false;
    }

    pub(super) fn on_handover(&mut self, now: Instant, to: Option<String>, out: &mut Vec<Action>) {
        let refuse = |reason: String, out: &mut Vec<Action>| {
            out.push(Action::Notice {
                cause: NoticeCause::HandoverRefused,
                reason,
            });
        };
        if self.state != State::Master {
            let master = self.master().unwrap_or("none known").to_string();
            return refuse(
                format!(
                    "this node is {}, not master: run handover on the master ({master})",
                    self.state
                ),
                out,
            );
        }
        let live: Vec<&str> = self
            .live_peers(now)
            .filter(|(_, p)| p.state == State::Backup)
            .map(|(name, _)| name.as_str())
            .collect();
        let target = match to {
            Some(name) if live.contains(&name.as_str()) => name,
            Some(name) => {
                let live = if live.is_empty() {
                    "none".to_string()
                } else {
                    live.join(", ")
                };
                return refuse(
                    format!("{name} is not a live backup (live backups: {live})"),
                    out,
                );
            }
            None => match self.best_live_backup(now) {
                Some(best) => best.to_string(),
                None => return refuse("no live backup to hand over to".into(), out),
            },
        };
        self.start_handover(now, target, out);
    }

    pub(super) fn start_handover(&mut self, now: Instant, to: String, out: &mut Vec<Action>) {
        out.push(Action::Notice {
            cause: NoticeCause::HandoverStarted,
            reason: format!("handing over to {to} (planned, make-before-break)"),
        });
        // Give the target a master-down to act; the handover advert goes out every interval.
        self.handing_over = Some((to, after(now, self.master_down_interval())));
        self.yielded = true;
        self.send(now, out);
    }

    pub(super) fn on_stop(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.timers.get(Timer::StopBy).is_some() {
            return;
        }
        let successor = (self.state == State::Master)
            .then(|| self.best_live_backup(now).map(str::to_string))
            .flatten();
        match successor {
            Some(to) => {
                let wait = self
                    .master_down_interval()
                    .saturating_mul(STOP_HANDOVER_MASTER_DOWNS);
                self.timers.set(Timer::StopBy, after(now, wait));
                self.start_handover(now, to, out);
            }
            None => self.on_shutdown(now, out),
        }
    }

    /// Completes a graceful stop once the successor has taken over, or at its deadline.
    pub(super) fn finish_stop(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(deadline) = self.timers.get(Timer::StopBy) else {
            return;
        };
        if self.stopped {
            return;
        }
        if self.state == State::Master && now < deadline {
            return;
        }
        if self.state == State::Master {
            out.push(Action::Notice {
                cause: NoticeCause::HandoverTimedOut,
                reason: "the successor did not take over in time: stopping anyway".into(),
            });
        }
        self.on_shutdown(now, out);
    }
}
