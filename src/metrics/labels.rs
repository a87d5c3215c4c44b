//! The label sets of the metric families. Label values come only from the `label()` of
//! enums or from names bounded by the configuration, never from the network.

use prometheus_client::encoding::EncodeLabelSet;

use crate::daemon::AdmissionKind;
use crate::transport::RejectKind;

/// Why an advert or a peer connection was rejected: the label set of
/// `haagent_adverts_rejected_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// A datagram on an authenticated connection failed advert admission.
    Admission(AdmissionKind),
    /// The transport refused a connection (TLS or peer identity).
    Connection(RejectKind),
}

impl RejectReason {
    /// Every reason: each admission kind, then each connection kind.
    pub fn all() -> impl Iterator<Item = RejectReason> {
        AdmissionKind::ALL
            .into_iter()
            .map(RejectReason::Admission)
            .chain(RejectKind::ALL.into_iter().map(RejectReason::Connection))
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::Admission(k) => k.label(),
            RejectReason::Connection(k) => k.label(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StateLabels {
    pub(super) state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindLabels {
    pub(super) kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TransitionLabels {
    pub(super) to: &'static str,
    pub(super) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CauseLabels {
    pub(super) cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PeerLabels {
    pub(super) peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabels {
    pub(super) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CheckLabels {
    pub(super) check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CertLabels {
    pub(super) cert: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DriftLabels {
    pub(super) peer: String,
    pub(super) setting: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct InfoLabels {
    pub(super) node: String,
    pub(super) version: &'static str,
}

/// A VIP group, by its configured name (bounded: at most
/// [`MAX_GROUPS`](super::registry::MAX_GROUPS) groups get series).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct GroupLabels {
    pub(super) group: String,
}

/// `haagent_route_exported`: the group and a BGP protocol of the node's BIRD (a name from
/// the local BIRD's `show protocols`, at most [`crate::bird::MAX_PROTOCOLS`] per group).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct GroupProtocolLabels {
    pub(super) group: String,
    pub(super) protocol: String,
}

/// `haagent_mover_runs_total`: the group, `claim`/`release`, `ok`/`failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct MoverRunLabels {
    pub(super) group: String,
    pub(super) action: &'static str,
    pub(super) outcome: &'static str,
}

/// `haagent_mover_duration_seconds`: the group and `claim`/`release`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct MoverActionLabels {
    pub(super) group: String,
    pub(super) action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct GroupStateLabels {
    pub(super) group: String,
    pub(super) state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct GroupKindLabels {
    pub(super) group: String,
    pub(super) kind: &'static str,
}
