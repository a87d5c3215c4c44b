//! Advert admission: what a datagram from an authenticated connection must pass before it
//! reaches the election. Pure (no I/O, no logging); the daemon logs and counts the errors.
//!
//! The transport has already proved that the sender holds a certificate from the cluster CA
//! naming a configured peer. Admission adds, in this order:
//! 1. the bytes decode as an advert ([`crate::wire::decode`], strict);
//! 2. the advert speaks for the peer whose certificate carried it (its node name for a peer
//!    configured by name; one of the certificate's DNS names in quick mode), so one node
//!    cannot advertise in another's name;
//! 3. it does not carry our own name;
//! 4. it belongs to our cluster (the first word of the settings fingerprint);
//! 5. its epoch is at most [`MAX_EPOCH`]: epochs grow by one per takeover, so a larger one
//!    is a bug or a hostile peer, and admitting it would pin every node's epoch near 2⁶⁴
//!    (takeovers saturate) for good.

use crate::transport::PeerSpec;

/// The largest epoch admitted: 2⁴⁸, a takeover every millisecond for 8,900 years.
pub const MAX_EPOCH: u64 = 1 << 48;
use crate::wire::{self, Advert, WireError};

/// Why an advert was not admitted. The label of its [`kind`](AdmissionError::kind) is the metric label
/// (`haagent_adverts_rejected_total{reason}`) and the log de-duplication key, so neither can
/// grow with what a peer sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The datagram is not a valid advert.
    #[error("malformed advert: {0}")]
    Malformed(#[from] WireError),
    /// The transport reported a peer index outside the configuration (a bug, not an attack).
    #[error("datagram from unknown peer index {0}")]
    UnknownPeer(usize),
    /// The advert names a node its certificate does not vouch for.
    #[error(
        "advert names itself `{name}`, which its certificate {cert_names:?} does not vouch for"
    )]
    NotVouched {
        /// The name in the advert (passed the wire's name rule, so printable).
        name: String,
        /// The DNS names of the sender's certificate.
        cert_names: Vec<String>,
    },
    /// The advert carries our own node name.
    #[error("advert carries our own name `{0}`")]
    OwnName(String),
    /// The sender belongs to another cluster (another cluster name).
    #[error("{peer} belongs to another cluster (its cluster name differs from `{cluster}`): not admitted")]
    OtherCluster {
        /// The sender's node name.
        peer: String,
        /// Our cluster name.
        cluster: String,
    },
    /// The advert's epoch is above [`MAX_EPOCH`].
    #[error("{peer} advertises epoch {epoch}, above the maximum {MAX_EPOCH}: not admitted")]
    EpochOutOfRange {
        /// The sender's node name.
        peer: String,
        /// The epoch it advertised.
        epoch: u64,
    },
}

/// The kind of an [`AdmissionError`], without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AdmissionKind {
    /// [`AdmissionError::Malformed`].
    Malformed,
    /// [`AdmissionError::UnknownPeer`].
    UnknownPeer,
    /// [`AdmissionError::NotVouched`].
    NotVouched,
    /// [`AdmissionError::OwnName`].
    OwnName,
    /// [`AdmissionError::OtherCluster`].
    OtherCluster,
    /// [`AdmissionError::EpochOutOfRange`].
    EpochOutOfRange,
}

impl AdmissionKind {
    /// Every variant, in declaration order.
    pub const ALL: [AdmissionKind; 6] = [
        AdmissionKind::Malformed,
        AdmissionKind::UnknownPeer,
        AdmissionKind::NotVouched,
        AdmissionKind::OwnName,
        AdmissionKind::OtherCluster,
        AdmissionKind::EpochOutOfRange,
    ];

    /// The value of `haagent_adverts_rejected_total{reason}`.
    pub const fn label(self) -> &'static str {
        match self {
            AdmissionKind::Malformed => "malformed",
            AdmissionKind::UnknownPeer => "unknown_peer_index",
            AdmissionKind::NotVouched => "wrong_name",
            AdmissionKind::OwnName => "own_name",
            AdmissionKind::OtherCluster => "other_cluster",
            AdmissionKind::EpochOutOfRange => "epoch_out_of_range",
        }
    }
}

impl AdmissionError {
    /// The kind, for counting and log de-duplication.
    pub fn kind(&self) -> AdmissionKind {
        match self {
            AdmissionError::Malformed(_) => AdmissionKind::Malformed,
            AdmissionError::UnknownPeer(_) => AdmissionKind::UnknownPeer,
            AdmissionError::NotVouched { .. } => AdmissionKind::NotVouched,
            AdmissionError::OwnName(_) => AdmissionKind::OwnName,
            AdmissionError::OtherCluster { .. } => AdmissionKind::OtherCluster,
            AdmissionError::EpochOutOfRange { .. } => AdmissionKind::EpochOutOfRange,
        }
    }
}

/// What admission needs to know about this node.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    /// Our node name.
    pub(crate) name: String,
    /// Our cluster name, for the error message.
    pub(crate) cluster: String,
    /// The first word of our settings fingerprint: the hash of the cluster name.
    pub(crate) cluster_word: u32,
    /// The configured peers, indexed like the transport's peer indices.
    pub(crate) peers: Vec<PeerSpec>,
}

impl Admission {
    /// Admits `payload`, received from peer number `peer` whose certificate carries the DNS
    /// names `cert_names`, or says why not (rules in the module doc, checked in order).
    pub(crate) fn admit(
        &self,
        peer: usize,
        cert_names: &[String],
        payload: &[u8],
    ) -> Result<Advert, AdmissionError> {
        let advert = wire::decode(payload)?;
        let spec = self
            .peers
            .get(peer)
            .ok_or(AdmissionError::UnknownPeer(peer))?;
        let vouched = match &spec.name {
            Some(name) => &advert.name == name,
            None => cert_names.iter().any(|n| n == &advert.name),
        };
        if !vouched {
            return Err(AdmissionError::NotVouched {
                name: advert.name,
                cert_names: cert_names.to_vec(),
            });
        }
        if advert.name == self.name {
            return Err(AdmissionError::OwnName(advert.name));
        }
        if advert.fingerprint[0] != self.cluster_word {
            return Err(AdmissionError::OtherCluster {
                peer: advert.name,
                cluster: self.cluster.clone(),
            });
        }
        if advert.epoch > MAX_EPOCH {
            return Err(AdmissionError::EpochOutOfRange {
                peer: advert.name,
                epoch: advert.epoch,
            });
        }
        Ok(advert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::State;

    fn advert(name: &str, cluster_word: u32) -> Advert {
        Advert {
            name: name.into(),
            state: State::Backup,
            priority: 100,
            epoch: 1,
            advert_interval_ms: 50,
            seq: 1,
            mac: [2, 0, 0, 0, 0, 2],
            fingerprint: [cluster_word, 2, 3, 4],
            handover_to: None,
        }
    }

    fn admission() -> Admission {
        Admission {
            name: "n1".into(),
            cluster: "web".into(),
            cluster_word: 7,
            peers: vec![
                PeerSpec {
                    name: Some("n2".into()),
                    addr: "192.0.2.12:5798".parse().unwrap(),
                },
                PeerSpec {
                    name: None,
                    addr: "192.0.2.13:5798".parse().unwrap(),
                },
            ],
        }
    }

    fn encoded(a: &Advert) -> Vec<u8> {
        wire::encode(a).to_vec()
    }

    #[test]
    fn a_named_peer_is_admitted_under_its_configured_name_only() {
        let adm = admission();
        let ok = adm.admit(0, &["n2".into()], &encoded(&advert("n2", 7)));
        assert_eq!(ok.map(|a| a.name), Ok("n2".to_string()));
        let err = adm
            .admit(0, &["n2".into(), "n3".into()], &encoded(&advert("n3", 7)))
            .unwrap_err();
        assert_eq!(err.kind(), AdmissionKind::NotVouched);
        assert!(err.to_string().contains("`n3`"), "{err}");
    }

    #[test]
    fn a_quick_mode_peer_may_use_any_name_its_certificate_carries() {
        let adm = admission();
        assert!(adm
            .admit(1, &["n3".into()], &encoded(&advert("n3", 7)))
            .is_ok());
        let err = adm
            .admit(1, &["n3".into()], &encoded(&advert("n4", 7)))
            .unwrap_err();
        assert_eq!(err.kind(), AdmissionKind::NotVouched);
    }

    #[test]
    fn garbage_own_name_unknown_index_and_other_cluster_are_refused_by_kind() {
        let adm = admission();
        let cases = [
            (
                0,
                vec!["n2".to_string()],
                b"garbage".to_vec(),
                AdmissionKind::Malformed,
            ),
            (
                9,
                vec!["n2".to_string()],
                encoded(&advert("n2", 7)),
                AdmissionKind::UnknownPeer,
            ),
            (
                1,
                vec!["n1".to_string()],
                encoded(&advert("n1", 7)),
                AdmissionKind::OwnName,
            ),
            (
                0,
                vec!["n2".to_string()],
                encoded(&advert("n2", 8)),
                AdmissionKind::OtherCluster,
            ),
        ];
        for (peer, names, payload, kind) in cases {
            let err = adm.admit(peer, &names, &payload).unwrap_err();
            assert_eq!(err.kind(), kind, "{err}");
        }
    }

    #[test]
    fn an_epoch_near_two_to_the_64_is_refused_and_the_maximum_admitted() {
        let adm = admission();
        let mut a = advert("n2", 7);
        a.epoch = u64::MAX - 1;
        let err = adm.admit(0, &["n2".into()], &encoded(&a)).unwrap_err();
        assert_eq!(err.kind(), AdmissionKind::EpochOutOfRange);
        a.epoch = MAX_EPOCH;
        assert!(adm.admit(0, &["n2".into()], &encoded(&a)).is_ok());
    }

    #[test]
    fn every_kind_has_its_own_label() {
        let labels: std::collections::HashSet<_> =
            AdmissionKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), AdmissionKind::ALL.len());
    }
}
