//! What we know about the peers: rank, liveness, quorum, isolation, who a MAC belongs to.

use super::*;

impl Election {
    /// Every peer heard from, sorted by name.
    pub fn peers(&self) -> Vec<PeerView> {
        self.peers
            .iter()
            .map(|(name, p)| PeerView {
                name: name.clone(),
                state: p.state,
                priority: p.priority,
                epoch: p.epoch,
                seq: p.seq,
                last_heard: p.last_heard,
                advert_interval: p.interval,
                mac: p.mac,
                extra_macs: p.extra_macs.clone(),
                alive_until: after(p.last_heard, self.master_down_for(p.interval)),
            })
            .collect()
    }

    /// Our own name if master; else the peer whose last advert said master (not leaving).
    pub fn master(&self) -> Option<&str> {
        if self.state == State::Master {
            return Some(&self.cfg.name);
        }
        let f = self.followed.as_ref()?;
        let p = self.peers.get(&f.name)?;
        (p.state == State::Master && p.priority != 0).then_some(f.name.as_str())
    }

    pub(super) fn rank(&self) -> Rank<'_> {
        Rank {
            priority: self.cfg.priority,
            name: &self.cfg.name,
        }
    }

    /// Peers heard recently enough to count as alive (and not leaving).
    pub(super) fn live_peers(&self, now: Instant) -> impl Iterator<Item = (&String, &Peer)> {
        self.peers
            .iter()
            .filter(move |(_, p)| self.peer_is_live(now, p))
    }

    pub(super) fn peer_is_live(&self, now: Instant, p: &Peer) -> bool {
        p.priority != 0 && now < after(p.last_heard, self.master_down_for(p.interval))
    }

    pub(super) fn quorum_applies(&self) -> bool {
        self.cfg.quorum && self.cfg.cluster_size >= 2
    }

    /// Whether we hear a majority of the cluster, ourselves included (always true without
    /// quorum). Returns (heard, needed) for the reasons.
    pub(super) fn quorum(&self, now: Instant) -> (bool, usize, usize) {
        let heard = 1 + self.live_peers(now).count();
        let needed = self.cfg.cluster_size / 2 + 1;
        (!self.quorum_applies() || heard >= needed, heard, needed)
    }

    /// No live peer and the gateway does not answer.
    pub(super) fn is_isolated(&self, now: Instant) -> bool {
        matches!(self.gateway, Some((false, _))) && self.live_peers(now).next().is_none()
    }

    /// The live peers (heard within their master-down), for status and quorum display:
    /// (heard including us, needed for quorum, whether quorum applies).
    pub fn quorum_view(&self, now: Instant) -> (usize, usize, bool) {
        let (_, heard, needed) = self.quorum(now);
        (heard, needed, self.quorum_applies())
    }

    pub(super) fn peer_with_mac(&self, mac: [u8; 6]) -> Option<(&String, &Peer)> {
        self.peers
            .iter()
            .find(|(_, p)| p.mac == mac || p.extra_macs.contains(&mac))
    }

    /// `mac` in words: whose it is by the adverts, and whether we hear that peer.
    pub(super) fn describe_mac(&self, now: Instant, mac: [u8; 6]) -> String {
        match self.peer_with_mac(mac) {
            Some((name, p)) if self.peer_is_live(now, p) => format!(
                "{} ({name}, heard, its adverts say {})",
                format_mac(&mac),
                p.state
            ),
            Some((name, _)) => format!("{} ({name}, not heard)", format_mac(&mac)),
            None => format!("{} (not a cluster member)", format_mac(&mac)),
        }
    }

    /// Whether a live peer in state backup ranks higher than us.
    pub(super) fn outranked_by_live_backup(&self, now: Instant) -> bool {
        self.live_peers(now).any(|(name, p)| {
            p.state == State::Backup
                && Rank {
                    priority: p.priority,
                    name,
                } > self.rank()
        })
    }

    /// By when every live backup that outranks us should have claimed, if it can: its own
    /// master-down (our multiplier, its interval, the skew of its priority; RFC 9568 §6.1)
    /// counted from when we first heard it in this contact (it started no later), plus a
    /// probe window for its ARP probe and one of its intervals for its master advert to
    /// reach us. `None` when no live backup outranks us.
    pub(super) fn better_backup_due(&self, now: Instant) -> Option<Instant> {
        let ours = self.rank();
        self.live_peers(now)
            .filter(|(name, p)| {
                p.state == State::Backup
                    && Rank {
                        priority: p.priority,
                        name,
                    } > ours
            })
            .map(|(_, p)| {
                let master_down = p
                    .interval
                    .saturating_mul(self.cfg.down_multiplier)
                    .saturating_add(skew_for(p.priority, p.interval));
                after(
                    p.contact_since,
                    master_down + self.cfg.probe_window + p.interval,
                )
            })
            .max()
    }

    /// The best live backup by [`Rank`], to hand over to.
    pub(super) fn best_live_backup(&self, now: Instant) -> Option<&str> {
        self.live_peers(now)
            .filter(|(_, p)| p.state == State::Backup)
            .max_by_key(|(name, p)| Rank {
                priority: p.priority,
                name,
            })
            .map(|(name, _)| name.as_str())
    }
}
