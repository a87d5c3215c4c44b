//! Two claimants: another master's advert, and a conflict on the wire (another MAC
//! answering for our VIPs), weighed against the adverts; RFC 5227 §2.4 (b) defence.

use super::*;

impl Election {
    pub(super) fn master_on_master_advert(
        &mut self,
        now: Instant,
        a: &Advert,
        out: &mut Vec<Action>,
    ) {
        let theirs = Rank {
            priority: a.priority,
            name: &a.name,
        };
        let ours = self.rank();
        if (a.epoch, theirs) < (self.master_epoch, ours) {
            self.send(now, out);
            out.push(Action::Announce);
            return;
        }
        let planned = self.handing_over.take().is_some_and(|(to, _)| to == a.name);
        let (cause, reason) = if planned {
            (
                Cause::Handover,
                format!(
                    "handed over to {} (planned), its epoch {}: releasing the VIPs",
                    a.name, a.epoch
                ),
            )
        } else if a.epoch > self.master_epoch {
            (
                Cause::StaleEpoch,
                format!(
                    "{} is master with epoch {} > our {} (stale after partition): stepping down",
                    a.name, a.epoch, self.master_epoch
                ),
            )
        } else if a.priority > self.cfg.priority {
            (
                Cause::Outranked,
                format!(
                    "{} is master with equal epoch {}, higher rank (priority {} > {}): stepping down",
                    a.name, a.epoch, a.priority, self.cfg.priority
                ),
            )
        } else {
            (
                Cause::Outranked,
                format!(
                    "{} is master with equal epoch {}, higher rank (equal priority {}, {} sorts before {}): stepping down",
                    a.name, a.epoch, a.priority, a.name, self.cfg.name
                ),
            )
        };
        self.followed = Some(Followed {
            name: a.name.clone(),
            interval: interval_of(a),
            last_master_advert: now,
        });
        self.step_down(now, cause, reason, out);
    }

    /// Another host answered for one of our VIPs on the wire (an ARP reply or
    /// announcement from a MAC that is not ours). The frame is not authenticated: what the
    /// peers say in their adverts outweighs it.
    /// - A live peer whose adverts say it is not master never makes us release: its
    ///   takeover advert is probably trailing its gratuitous ARP, so we wait up to a
    ///   master-down for that advert, then re-assert ([`Self::on_timeout`]). Anyone on the
    ///   segment can forge a frame carrying a member's MAC.
    /// - A member we cannot hear (it may have taken over on the other side of a partition),
    ///   or one whose adverts say master, is judged by `(epoch, rank)` from its last
    ///   advert: the lower releases. Forging that takes silencing the member too.
    /// - An unknown MAC is answered with a re-announcement; but while some configured peer
    ///   has never been heard since we started, it may be that peer's, and if it keeps
    ///   answering after the re-announcement we release ([`Self::contest_unknown`]).
    ///
    /// Re-assertion is RFC 5227 §2.4 (b) defence, at most once per advert interval, so a
    /// flood of forged claims costs a bounded number of announcements.
    pub(super) fn on_conflict(&mut self, now: Instant, mac: [u8; 6], out: &mut Vec<Action>) {
        if self.state != State::Master || mac == self.cfg.mac {
            return;
        }
        self.conflicts_unreported = self.conflicts_unreported.saturating_add(1);
        let member = self
            .peer_with_mac(mac)
            .map(|(name, p)| (name.clone(), p.clone()));
        match member {
            Some((_, p)) if self.peer_is_live(now, &p) && p.state != State::Master => {
                if self.conflict_grace.is_some_and(|(m, _)| m == mac) {
                    return; // already waiting for this peer's advert
                }
                self.conflict_grace = Some((mac, after(now, self.master_down_interval())));
                let reason = format!(
                    "VIP conflict: {} also answers for the VIPs; waiting for its advert",
                    self.describe_mac(now, mac)
                );
                self.conflict_notice(now, NoticeCause::ConflictPending, reason, out);
                self.send(now, out);
            }
            Some((name, p))
                if (
                    self.epoch_of_claimant(now, mac, &p),
                    Rank {
                        priority: p.priority,
                        name: &name,
                    },
                ) > (self.master_epoch, self.rank()) =>
            {
                let reason = format!(
                    "VIP conflict: {} also answers for the VIPs and outranks us \
                     (epoch {} priority {} vs our epoch {} priority {}): releasing",
                    self.describe_mac(now, mac),
                    self.epoch_of_claimant(now, mac, &p),
                    p.priority,
                    self.master_epoch,
                    self.cfg.priority
                );
                self.step_down(now, Cause::Conflict, reason, out);
                self.send(now, out);
            }
            Some((_, p)) => {
                if !self.peer_is_live(now, &p) {
                    self.note_contest(now, mac);
                }
                self.defend(now, mac, out);
            }
            None if self.never_heard_a_peer() => self.contest_unknown(now, mac, out),
            None => self.defend(now, mac, out),
        }
    }

    /// Whether some configured peer has sent us no advert since we started: then we do not
    /// know all members' MACs, and a MAC we cannot attribute may be that member's.
    fn never_heard_a_peer(&self) -> bool {
        self.peers.len() + 1 < self.cfg.cluster_size
    }

    /// A MAC we cannot attribute answers for our VIPs while some configured peer has never
    /// been heard since we started (we restarted behind blocked adverts, say). It may be
    /// that member, master on its side, which knows us from our last advert (perhaps our
    /// goodbye, priority 0) and so wins in its own view: if both sides kept the VIPs, they
    /// would re-announce against each other until the adverts flow (seen in the
    /// simulation). The side that knows less yields: we re-announce once, and if it still
    /// answers an advert interval later ([`Self::recheck_contest`]), we release. A forger
    /// can so make a node that hears none of some peer release the VIPs (a node that hears
    /// every peer is not affected): the safe side, where the alternative is two holders.
    fn contest_unknown(&mut self, now: Instant, mac: [u8; 6], out: &mut Vec<Action>) {
        let c = self.note_contest(now, mac);
        if c.answered && now >= after(c.since, self.cfg.advert_interval) {
            let heard = self.peers.len();
            let reason = format!(
                "VIP conflict: {} still answers for the VIPs after our re-announcement, \
                 and we have heard only {heard} of our {} peers since starting: it may \
                 be a member we cannot hear; releasing",
                self.describe_mac(now, mac),
                self.cfg.cluster_size.saturating_sub(1)
            );
            self.step_down(now, Cause::Conflict, reason, out);
            self.send(now, out);
            return;
        }
        self.defend(now, mac, out);
    }

    /// `mac` answers for our VIPs while we contest it ([`Contest`]): the first time, the
    /// contest starts now; later, it has answered again. Returns the contest as it is now.
    fn note_contest(&mut self, now: Instant, mac: [u8; 6]) -> Contest {
        match &mut self.contested {
            Some(c) if c.mac == mac => {
                c.answered |= now > c.since;
                *c
            }
            _ => {
                let c = Contest {
                    mac,
                    since: now,
                    answered: false,
                    rechecked: false,
                };
                self.contested = Some(c);
                c
            }
        }
    }

    /// The epoch a member that answers for our VIPs holds them with, as far as we can tell.
    /// A live peer has the epoch it last advertised. A member we cannot hear whose last
    /// advert said master is taken at that epoch (a master's epoch does not change while it
    /// stays master: a frozen master resuming still has it, and loses to our newer one).
    /// One whose last advert said backup must have taken over since, with at least its last
    /// epoch + 1; we count it as at least ours, so that rank breaks the tie, and both
    /// sides, each judging the other this way, reach the same verdict.
    ///
    /// The master case can still be wrong: a member we cannot hear may have stepped down and
    /// taken over again since its last advert, with an epoch above ours; then each side
    /// thinks it won and both keep the VIPs (seen in the simulation with peer traffic
    /// blocked: 3.7 s on one L2). So once we have re-announced against it and it still
    /// answers an advert interval later ([`Self::contested`]), its epoch counts as at least
    /// ours too, and rank decides on both sides.
    pub(super) fn epoch_of_claimant(&self, now: Instant, mac: [u8; 6], p: &Peer) -> u64 {
        if self.peer_is_live(now, p) {
            return p.epoch;
        }
        let still_contested = self
            .contested
            .is_some_and(|c| c.mac == mac && now >= after(c.since, self.cfg.advert_interval));
        if p.state == State::Master && p.priority != 0 && !still_contested {
            p.epoch
        } else {
            p.epoch.saturating_add(1).max(self.master_epoch)
        }
    }

    /// An advert interval after we re-announced against a member we cannot hear
    /// ([`Contest`]): if it answered again since, rank alone decides now; either way, if we
    /// keep the VIPs we re-announce once more, so that a contender that is still holding
    /// them sees it and applies the same rule.
    pub(super) fn recheck_contest(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(c) = self.contested else {
            return;
        };
        if c.rechecked || now < after(c.since, self.cfg.advert_interval) {
            return;
        }
        self.contested = Some(Contest {
            rechecked: true,
            ..c
        });
        if self.state != State::Master {
            return;
        }
        let live = match self.peer_with_mac(c.mac) {
            Some((_, p)) => self.peer_is_live(now, p),
            // An unattributed MAC is contested only while a peer was never heard.
            None => !self.never_heard_a_peer(),
        };
        if live {
            return; // its adverts flow again: the advert rules settle it
        }
        if c.answered {
            // Releases if it outranks us, else re-announces.
            self.on_conflict(now, c.mac, out);
        } else {
            self.last_defence = Some(now);
            out.push(Action::Announce);
        }
    }

    /// Re-announces the VIPs after a conflict with `mac`, at most once per advert interval,
    /// and says so at most once per [`CONFLICT_NOTICE_INTERVAL`].
    pub(super) fn defend(&mut self, now: Instant, mac: [u8; 6], out: &mut Vec<Action>) {
        if self
            .last_defence
            .is_some_and(|t| now < after(t, self.cfg.advert_interval))
        {
            return;
        }
        self.last_defence = Some(now);
        self.last_defended = Some(mac);
        let reason = format!(
            "VIP conflict: {} also answers for the VIPs; we are the elected master: re-announcing",
            self.describe_mac(now, mac)
        );
        self.conflict_notice(now, NoticeCause::ConflictWon, reason, out);
        out.push(Action::Announce);
        self.send(now, out);
    }

    /// A conflict notice, rate-limited: one per [`CONFLICT_NOTICE_INTERVAL`] and kind
    /// (pending, won: the won notice, which runs the `conflict_won` hook, comes a
    /// master-down after the pending one), carrying the number of conflicts since the last
    /// notice.
    pub(super) fn conflict_notice(
        &mut self,
        now: Instant,
        cause: NoticeCause,
        reason: String,
        out: &mut Vec<Action>,
    ) {
        let last = &mut self.last_conflict_notice[usize::from(cause == NoticeCause::ConflictWon)];
        if last.is_some_and(|t| now < after(t, CONFLICT_NOTICE_INTERVAL)) {
            return;
        }
        *last = Some(now);
        let n = std::mem::take(&mut self.conflicts_unreported);
        let reason = if n > 1 {
            format!("{reason} ({n} conflicting frames since the last notice)")
        } else {
            reason
        };
        out.push(Action::Notice { cause, reason });
    }
}
