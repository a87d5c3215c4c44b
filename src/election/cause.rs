//! Why the election decided what it did, as types.
//!
//! Every [`Action::Transition`](super::Action::Transition) carries a [`Cause`] and every
//! [`Action::Notice`](super::Action::Notice) a [`NoticeCause`], next to the sentence an
//! operator reads. Code never recovers a cause from the words: metrics take their label
//! from [`Cause::label`] / [`NoticeCause::label`] (the only source of those label values),
//! logs carry it as the `cause=` field, the simulation counts by it, and tests match on it.
//! Rewording a sentence therefore changes nothing a program sees.
//!
//! The rule behind each variant is described in the module doc of [`super`]; the RFC 9568
//! section it follows, where there is one, is named on the variant.

use serde::{Deserialize, Serialize};

/// Why a health or link problem holds the node in Fault (keepalived's FAULT state).
///
/// Fed to the election with [`Input::Fault`](super::Input::Fault); the daemon decides which
/// one applies when several do (a link fault says more than a failing check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultCause {
    /// The VIP interface lost carrier, went down or was removed (kernel link notification;
    /// keepalived's `track_interface`).
    Link,
    /// A health check with weight `"fault"` failed `fall` times in a row.
    HealthCheck,
    /// A starting node waits for every health check's first result before it is eligible.
    ChecksPending,
    /// Installing the VIPs with netlink failed (e.g. the interface vanished, EPERM).
    VipInstall,
}

impl FaultCause {
    /// Every variant, in declaration order.
    pub const ALL: [FaultCause; 4] = [
        FaultCause::Link,
        FaultCause::HealthCheck,
        FaultCause::ChecksPending,
        FaultCause::VipInstall,
    ];
}

/// Why the state changed: one variant per rule of the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// Init → Backup on start: backup until a master is heard or master-down passes
    /// (RFC 9568 §6.4.1, with haagent always starting as backup).
    Started,
    /// The master we followed (or any master, if we never heard one) was silent for the
    /// master-down interval (RFC 9568 §6.4.2 `Master_Down_Timer` fires).
    MasterDown,
    /// The master we followed left with a priority-0 advert; we took over after our skew
    /// (RFC 9568 §6.4.2, priority 0 → `Skew_Time`).
    PriorityZero,
    /// The master we followed reported a fault; taken like a priority-0 advert.
    PeerFault,
    /// We preempted a lower-ranked master (RFC 9568 §6.4.2 with `Preempt_Mode` true).
    Preempt,
    /// Only non-members answered our probes, for longer than `foreign_holder_timeout_ms`:
    /// we claimed anyway.
    ClaimedOverForeign,
    /// A planned, make-before-break handover (`haagent handover`, or SIGTERM on a master):
    /// the target takes over, and the old master releases on the target's first advert.
    Handover,
    /// Another master advertised a higher epoch: we are the stale side of a healed partition.
    StaleEpoch,
    /// Another master with an equal epoch ranks higher (priority, then name; RFC 9568 §6.4.3).
    Outranked,
    /// A member that is not a live non-master answers for our VIPs on the wire and
    /// outranks us by `(epoch, rank)`: the epoch of its last advert if that said master,
    /// else at least that + 1 and at least ours (see `epoch_of_claimant`).
    Conflict,
    /// The kernel dropped our VIPs because their lease ran out.
    LeaseLost,
    /// A master stopped hearing a majority of the cluster.
    QuorumLost,
    /// No live peer and the gateway witness does not answer.
    Isolated,
    /// Isolation ended (a peer or the gateway is heard again).
    IsolationOver,
    /// A link or health fault (keepalived's FAULT).
    Fault(FaultCause),
    /// The fault cleared: back to backup.
    FaultCleared,
    /// Maintenance mode on: the node gives up the VIPs.
    MaintenanceOn,
    /// Maintenance mode off: back to backup.
    MaintenanceOff,
    /// The agent is stopping (priority-0 advert, RFC 9568 §6.4.3 `Shutdown` event).
    Shutdown,
}

impl Cause {
    /// Every variant, in declaration order (each [`FaultCause`] once).
    pub const ALL: [Cause; 22] = [
        Cause::Started,
        Cause::MasterDown,
        Cause::PriorityZero,
        Cause::PeerFault,
        Cause::Preempt,
        Cause::ClaimedOverForeign,
        Cause::Handover,
        Cause::StaleEpoch,
        Cause::Outranked,
        Cause::Conflict,
        Cause::LeaseLost,
        Cause::QuorumLost,
        Cause::Isolated,
        Cause::IsolationOver,
        Cause::Fault(FaultCause::Link),
        Cause::Fault(FaultCause::HealthCheck),
        Cause::Fault(FaultCause::ChecksPending),
        Cause::Fault(FaultCause::VipInstall),
        Cause::FaultCleared,
        Cause::MaintenanceOn,
        Cause::MaintenanceOff,
        Cause::Shutdown,
    ];

    /// The value of `haagent_transitions_total{reason}` and of the `cause=` log field:
    /// lower-case snake case, stable across releases, distinct per variant.
    pub const fn label(self) -> &'static str {
        match self {
            Cause::Started => "start",
            Cause::MasterDown => "master_down",
            Cause::PriorityZero => "priority_zero",
            Cause::PeerFault => "peer_fault",
            Cause::Preempt => "preempt",
            Cause::ClaimedOverForeign => "claimed_over_foreign",
            Cause::Handover => "handover",
            Cause::StaleEpoch => "stale_epoch",
            Cause::Outranked => "outranked",
            Cause::Conflict => "conflict",
            Cause::LeaseLost => "lease_lost",
            Cause::QuorumLost => "quorum",
            Cause::Isolated => "isolated",
            Cause::IsolationOver => "isolation_over",
            Cause::Fault(FaultCause::Link) => "fault_link",
            Cause::Fault(FaultCause::HealthCheck) => "fault_check",
            Cause::Fault(FaultCause::ChecksPending) => "fault_checks_pending",
            Cause::Fault(FaultCause::VipInstall) => "fault_vip_install",
            Cause::FaultCleared => "fault_cleared",
            Cause::MaintenanceOn => "maintenance_on",
            Cause::MaintenanceOff => "maintenance_off",
            Cause::Shutdown => "shutdown",
        }
    }
}

/// A decision that changes no state, but that an operator must be able to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeCause {
    /// The ARP probe before claiming was answered by a new MAC (RFC 5227 §2.1.1): we do
    /// not claim.
    ClaimBlocked,
    /// The reminder, every [`super::CLAIM_BLOCKED_REMINDER`], that the claim is still
    /// blocked by the same MAC.
    ClaimStillBlocked,
    /// Master-down passed but we hear no majority: we do not take over.
    NoQuorum,
    /// A live peer whose adverts do not say master answers for our VIPs: we wait up to a
    /// master-down for its takeover advert before judging the conflict.
    ConflictPending,
    /// Another host answers for our VIPs and does not outrank us: we re-announce.
    ConflictWon,
    /// A planned handover began (make-before-break).
    HandoverStarted,
    /// A handover was asked of a node that is not master.
    HandoverRefused,
    /// The handover target did not take over within a master-down: we stay master.
    HandoverTimedOut,
    /// Someone else removed our VIPs while the lease still ran (`ip addr del`, a network
    /// manager): still the elected master, we install and announce them again.
    VipsRemoved,
}

impl NoticeCause {
    /// Every variant, in declaration order.
    pub const ALL: [NoticeCause; 9] = [
        NoticeCause::ClaimBlocked,
        NoticeCause::ClaimStillBlocked,
        NoticeCause::NoQuorum,
        NoticeCause::ConflictPending,
        NoticeCause::ConflictWon,
        NoticeCause::HandoverStarted,
        NoticeCause::HandoverRefused,
        NoticeCause::HandoverTimedOut,
        NoticeCause::VipsRemoved,
    ];

    /// The value of `haagent_notices_total{cause}` and of the `cause=` log field.
    pub const fn label(self) -> &'static str {
        match self {
            NoticeCause::ClaimBlocked => "claim_blocked",
            NoticeCause::ClaimStillBlocked => "claim_still_blocked",
            NoticeCause::NoQuorum => "no_quorum",
            NoticeCause::ConflictPending => "conflict_pending",
            NoticeCause::ConflictWon => "conflict_won",
            NoticeCause::HandoverStarted => "handover_started",
            NoticeCause::HandoverRefused => "handover_refused",
            NoticeCause::HandoverTimedOut => "handover_timed_out",
            NoticeCause::VipsRemoved => "vips_removed",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// `label()` is an exhaustive match, so no variant can lack a label; this test's match is
    /// exhaustive too, so a new variant does not compile until it is listed here (next to
    /// `ALL`), and it fails if `ALL` repeats a cause or two causes share a label.
    #[test]
    fn every_cause_is_listed_once_with_its_own_label() {
        fn listed(c: Cause) -> bool {
            match c {
                Cause::Started
                | Cause::MasterDown
                | Cause::PriorityZero
                | Cause::PeerFault
                | Cause::Preempt
                | Cause::ClaimedOverForeign
                | Cause::Handover
                | Cause::StaleEpoch
                | Cause::Outranked
                | Cause::Conflict
                | Cause::LeaseLost
                | Cause::QuorumLost
                | Cause::Isolated
                | Cause::IsolationOver
                | Cause::FaultCleared
                | Cause::MaintenanceOn
                | Cause::MaintenanceOff
                | Cause::Shutdown => Cause::ALL.contains(&c),
                Cause::Fault(f) => match f {
                    FaultCause::Link
                    | FaultCause::HealthCheck
                    | FaultCause::ChecksPending
                    | FaultCause::VipInstall => Cause::ALL.contains(&c),
                },
            }
        }
        assert!(Cause::ALL.iter().all(|c| listed(*c)));
        for f in FaultCause::ALL {
            assert!(Cause::ALL.contains(&Cause::Fault(f)), "{f:?}");
        }
        let labels: HashSet<_> = Cause::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(labels.len(), Cause::ALL.len(), "labels must be distinct");
        let causes: HashSet<_> = Cause::ALL.iter().collect();
        assert_eq!(causes.len(), Cause::ALL.len(), "ALL lists a cause twice");
    }

    #[test]
    fn every_notice_cause_is_listed_once_with_its_own_label() {
        fn listed(c: NoticeCause) -> bool {
            match c {
                NoticeCause::ClaimBlocked
                | NoticeCause::ClaimStillBlocked
                | NoticeCause::NoQuorum
                | NoticeCause::ConflictPending
                | NoticeCause::ConflictWon
                | NoticeCause::HandoverStarted
                | NoticeCause::HandoverRefused
                | NoticeCause::HandoverTimedOut
                | NoticeCause::VipsRemoved => NoticeCause::ALL.contains(&c),
            }
        }
        assert!(NoticeCause::ALL.iter().all(|c| listed(*c)));
        let labels: HashSet<_> = NoticeCause::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(labels.len(), NoticeCause::ALL.len());
    }

    #[test]
    fn labels_are_snake_case_metric_values() {
        let all = Cause::ALL
            .iter()
            .map(|c| c.label())
            .chain(NoticeCause::ALL.iter().map(|c| c.label()));
        for l in all {
            assert!(
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
        }
    }
}
