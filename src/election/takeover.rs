//! A backup taking over: master-down expiry, the ARP probe before claiming (RFC 5227
//! §2.1.1) and what its answer means, the better-backup turn, the takeover itself.

use super::*;

impl Election {
    /// The master-down timer ran out while backup: take over, or first make sure nobody
    /// else holds the VIPs, or wait for quorum.
    pub(super) fn master_down_expired(&mut self, now: Instant, out: &mut Vec<Action>) {
        let (ok, heard, needed) = self.quorum(now);
        if !ok {
            if !self.quorum_notice {
                self.quorum_notice = true;
                out.push(Action::Notice {
                    cause: NoticeCause::NoQuorum,
                    reason: format!(
                        "not taking over: hear {heard} of {} nodes, need {needed} (quorum)",
                        self.cfg.cluster_size
                    ),
                });
            }
            self.timers
                .set(Timer::MasterDown, after(now, self.master_down_interval()));
            return;
        }
        // No start-up flap: a live backup that outranks us is about to claim (its own
        // master-down, shorter by the skew, runs out first; RFC 9568 §6.1 orders backups by
        // skew alone, which is less than a probe window apart). We give it its turn once per
        // stay in backup instead of claiming and being preempted by it a second later.
        // While a claim is blocked, the re-probes run every interval and the turn comes when
        // one comes back clear (below, in `on_probe_result`).
        if !self.deferred && self.claim_block.is_none() && self.outranked_by_live_backup(now) {
            self.defer_to_better_backup(now);
            return;
        }
        if self.cfg.probe && !self.handover_is_coordinated(now) {
            if std::mem::take(&mut self.probe_clear) {
                // The probe started ahead of this deadline came back clear and no master
                // has been heard since: nobody holds the VIPs.
                self.take_over(now, out);
                return;
            }
            if !self.probing {
                self.probing = true;
                out.push(Action::Probe);
            }
            // The probe result decides; until then no timer.
            self.timers.stop(Timer::MasterDown);
            return;
        }
        self.take_over(now, out);
    }

    /// Gives the live backups that outrank us their turn to claim, once per stay in backup:
    /// the master-down timer is re-armed for when the last of them should have claimed and
    /// its master advert reached us ([`Election::better_backup_due`]), at least
    /// [`DEFER_TO_BETTER_BACKUP`] advert intervals from now. If one claims, we follow it;
    /// if none does (it cannot: no quorum, a blocked claim), we claim then.
    pub(super) fn defer_to_better_backup(&mut self, now: Instant) {
        self.deferred = true;
        self.probe_clear = false;
        let least = after(now, self.cfg.advert_interval * DEFER_TO_BETTER_BACKUP);
        let until = self
            .better_backup_due(now)
            .map_or(least, |due| due.max(least));
        self.timers.set(Timer::MasterDown, until);
    }

    /// When the ARP probe for the current master-down deadline starts: `probe_window`
    /// before it, so the answer (or its absence) is in when the timer runs out. `None` when
    /// no probe would be needed or one was already decided for this deadline, and while a
    /// claim is blocked (its re-probes run at the deadline, as before).
    pub(super) fn early_probe_at(&self) -> Option<Instant> {
        if self.state != State::Backup
            || !self.cfg.probe
            || self.probing
            || self.probe_clear
            || self.claim_block.is_some()
        {
            return None;
        }
        let deadline = self.timers.get(Timer::MasterDown)?;
        if self.early_probe_for == Some(deadline) {
            return None;
        }
        deadline.checked_sub(self.cfg.probe_window)
    }

    /// Starts the probe ahead of master-down when its time has come and the takeover would
    /// need one (not a coordinated handover, quorum held, no better backup to wait for).
    pub(super) fn maybe_probe_early(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(at) = self.early_probe_at() else {
            return;
        };
        let Some(deadline) = self.timers.get(Timer::MasterDown) else {
            return;
        };
        if now < at || now >= deadline {
            return;
        }
        self.early_probe_for = Some(deadline);
        // A master heard within the last two intervals is one we preempt (its adverts do
        // not reset our timer), not a silent one: that takeover needs no probe. The master
        // that went silent still counts as live until master-down itself.
        let recent = self.cfg.advert_interval.saturating_mul(2);
        let preempting = self
            .live_peers(now)
            .any(|(_, p)| p.state == State::Master && now < after(p.last_heard, recent));
        let defer = !self.deferred && self.outranked_by_live_backup(now);
        if defer || preempting || self.followed_left() || !self.quorum(now).0 {
            return;
        }
        self.probing = true;
        out.push(Action::Probe);
    }

    /// A takeover the old master agreed to by message (it left with priority 0 or reported a
    /// fault) or one we do while hearing it (preemption): no ARP probe needed.
    pub(super) fn handover_is_coordinated(&self, now: Instant) -> bool {
        let hear_a_master = self.live_peers(now).any(|(_, p)| p.state == State::Master);
        self.followed_left() || hear_a_master
    }

    /// The master we follow left with priority 0 or reported a fault.
    fn followed_left(&self) -> bool {
        self.followed.as_ref().is_some_and(|f| {
            self.peers
                .get(&f.name)
                .is_some_and(|p| p.priority == 0 || p.state == State::Fault)
        })
    }

    pub(super) fn on_probe_result(
        &mut self,
        now: Instant,
        answered_by: Option<[u8; 6]>,
        out: &mut Vec<Action>,
    ) {
        if !std::mem::take(&mut self.probing) || self.state != State::Backup {
            return;
        }
        match answered_by.filter(|m| *m != self.cfg.mac) {
            Some(mac) => {
                let member = self.peer_with_mac(mac).map(|(name, _)| name.clone());
                let previous = self
                    .claim_block
                    .as_ref()
                    .map(|(b, said)| (b.clone(), *said));
                let first = previous.as_ref().is_none_or(|(b, _)| b.mac != mac);
                let since = match &previous {
                    Some((b, _)) if !first => b.since,
                    _ => now,
                };
                // When only non-members have answered since: kept across a change of the
                // answering non-member MAC (two proxy-ARP routers, a fabric answering with
                // varying MACs), reset by a member's answer.
                let foreign_since = match (&member, &previous) {
                    (Some(_), _) => None,
                    (None, Some((b, _))) => Some(b.foreign_since.unwrap_or(now)),
                    (None, None) => Some(now),
                };
                let blocked_for = now.saturating_duration_since(since);
                // RFC 5227 2.1.1 says a conflict means "do not use the address". A member's
                // answer is the split-brain layer itself; a non-member's may be a duplicate
                // address, a proxy-ARP router or a cloud fabric answering for everyone, so
                // the operator can bound the wait (docs/election.md).
                let foreign_for = foreign_since.map(|t| now.saturating_duration_since(t));
                let (quorum_ok, _, _) = self.quorum(now);
                if let (Some(limit), Some(waited)) = (self.cfg.foreign_holder_timeout, foreign_for)
                {
                    if waited >= limit && quorum_ok && !self.is_isolated(now) {
                        let reason = format!(
                            "only hosts that are not cluster members (last {}) have answered \
                             for the VIPs, for {}, past foreign_holder_timeout_ms: claiming them anyway",
                            format_mac(&mac),
                            ms(waited)
                        );
                        self.claim_block = None;
                        self.take_over_with(now, Cause::ClaimedOverForeign, reason, out);
                        return;
                    }
                }
                let remind = !first
                    && previous
                        .as_ref()
                        .is_some_and(|(_, said)| now >= after(*said, CLAIM_BLOCKED_REMINDER));
                if first {
                    out.push(Action::Notice {
                        cause: NoticeCause::ClaimBlocked,
                        reason: format!(
                            "not claiming the VIPs: answered by {}; probing again every {}",
                            self.describe_mac(now, mac),
                            ms(self.cfg.advert_interval)
                        ),
                    });
                } else if remind {
                    out.push(Action::Notice {
                        cause: NoticeCause::ClaimStillBlocked,
                        reason: format!(
                            "still not claiming the VIPs: answered by {} for {}",
                            self.describe_mac(now, mac),
                            ms(blocked_for)
                        ),
                    });
                }
                let said = match &previous {
                    Some((_, said)) if !first && !remind => *said,
                    _ => now,
                };
                // Once this block clears, a better live backup gets its turn again (it was
                // blocked too, and its re-probe may come a little after ours).
                self.deferred = false;
                let block = ClaimBlock {
                    mac,
                    member,
                    since,
                    foreign_since,
                };
                self.claim_block = Some((block, said));
                self.timers
                    .set(Timer::MasterDown, after(now, self.cfg.advert_interval));
            }
            None => {
                self.claim_block = None;
                if self.timers.get(Timer::MasterDown).is_some_and(|t| t > now) {
                    // Started ahead of master-down: claim when it runs out (an advert from
                    // a master before then cancels this).
                    self.probe_clear = true;
                    return;
                }
                // The skew orders the backups' master-down expiries by a few milliseconds
                // only (priority 150 vs 100 at 50 ms adverts: 10 ms), less than the probe
                // window that follows each, and after a blocked claim clears each backup
                // finds out at its own next re-probe, up to an advert interval apart. So a
                // probe that comes back clear does not settle it alone: a live backup that
                // outranks us gets one turn to claim first; we follow its adverts, or we
                // probe again and claim.
                if !self.deferred && self.outranked_by_live_backup(now) {
                    self.defer_to_better_backup(now);
                    return;
                }
                let (ok, _, _) = self.quorum(now);
                if ok && !self.is_isolated(now) {
                    self.take_over(now, out);
                } else {
                    self.timers
                        .set(Timer::MasterDown, after(now, self.master_down_interval()));
                }
            }
        }
    }

    pub(super) fn take_over(&mut self, now: Instant, out: &mut Vec<Action>) {
        let epoch = self.max_seen.saturating_add(1);
        let (cause, reason) = self.takeover_reason(now, epoch);
        self.take_over_with(now, cause, reason, out);
    }

    /// Becomes master with the next epoch: install, announce, advertise.
    pub(super) fn take_over_with(
        &mut self,
        now: Instant,
        cause: Cause,
        reason: String,
        out: &mut Vec<Action>,
    ) {
        let epoch = self.max_seen.saturating_add(1);
        let reason = if cause == Cause::ClaimedOverForeign {
            format!("{reason}, epoch {epoch}")
        } else {
            reason
        };
        self.claim_block = None;
        self.master_epoch = epoch;
        self.max_seen = epoch;
        self.followed = None;
        self.yielded = false;
        self.transition(now, State::Master, cause, reason, out);
        out.push(Action::InstallVips);
        out.push(Action::Announce);
        self.send(now, out);
    }

    pub(super) fn takeover_reason(&self, now: Instant, epoch: u64) -> (Cause, String) {
        let md = self.master_down_interval();
        let Some(f) = &self.followed else {
            return (
                Cause::MasterDown,
                format!(
                    "never heard a master within master-down {}: taking over, epoch {epoch}",
                    ms(md)
                ),
            );
        };
        let n = &f.name;
        let silent = now.saturating_duration_since(f.last_master_advert);
        let Some(p) = self.peers.get(n) else {
            return (
                Cause::MasterDown,
                format!(
                    "no advert from {n} for {} (master-down {}): taking over, epoch {epoch}",
                    ms(silent),
                    ms(md)
                ),
            );
        };
        let theirs = Rank {
            priority: p.priority,
            name: n,
        };
        if p.priority == 0 {
            (
                Cause::PriorityZero,
                format!(
                    "{n} is leaving (priority 0): taking over after skew {}, epoch {epoch}",
                    ms(self.skew())
                ),
            )
        } else if p.state == State::Fault {
            (
                Cause::PeerFault,
                format!(
                    "{n} reported a fault: taking over after skew {}, epoch {epoch}",
                    ms(self.skew())
                ),
            )
        } else if p.state == State::Master && silent < md && theirs < self.rank() {
            let reason = if p.priority < self.cfg.priority {
                format!(
                    "preempting lower-priority master {n} (priority {} < {}), epoch {epoch}",
                    p.priority, self.cfg.priority
                )
            } else {
                format!(
                    "preempting lower-ranked master {n} (equal priority {}, {} sorts before {n}), epoch {epoch}",
                    p.priority, self.cfg.name
                )
            };
            let reason = if self.two_way(n) {
                format!("{reason}; contact proven both ways (it hears our adverts)")
            } else {
                reason
            };
            (Cause::Preempt, reason)
        } else if p.state == State::Master {
            (
                Cause::MasterDown,
                format!(
                    "no advert from {n} for {} (master-down {}): taking over, epoch {epoch}",
                    ms(silent),
                    ms(md)
                ),
            )
        } else {
            (
                Cause::MasterDown,
                format!(
                    "{n} stopped advertising as master {} ago (master-down {}): taking over, epoch {epoch}",
                    ms(silent),
                    ms(md)
                ),
            )
        }
    }
}
