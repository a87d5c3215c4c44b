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
//!
//! [`Intake`] wraps these rules with what the daemon keeps about each admitted peer: its
//! advert loss over a sliding window of sequence numbers, the settings it disagrees on
//! (configuration drift), and which refusals and drifts were already reported, so that the
//! daemon logs each (peer, kind) once. A received datagram passes through here once and
//! leaves as a [`Received`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

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

/// How many of a peer's most recent adverts its loss figure covers (12.8 s at 50 ms).
const LOSS_WINDOW: usize = 256;

/// Loss accounting of one peer's advert sequence numbers, over its last [`LOSS_WINDOW`]
/// adverts received. A lifetime average (what this was) kept showing 46–75 % loss long
/// after a gap (an address change, a reconnect) while every advert was arriving again.
#[derive(Debug, Clone, Default)]
struct SeqTrack {
    /// Sequence numbers received, ascending, at most `LOSS_WINDOW`.
    window: VecDeque<u64>,
}

impl SeqTrack {
    fn record(&mut self, seq: u64) {
        if self.window.back().is_some_and(|&last| seq <= last) {
            // The peer restarted (its counter begins again): start counting afresh.
            self.window.clear();
        }
        self.window.push_back(seq);
        if self.window.len() > LOSS_WINDOW {
            self.window.pop_front();
        }
    }

    /// Percent of the adverts between the oldest and newest in the window that did not
    /// arrive.
    fn loss_percent(&self) -> f64 {
        let (Some(&first), Some(&last)) = (self.window.front(), self.window.back()) else {
            return 0.0;
        };
        let expected = last.saturating_sub(first).saturating_add(1);
        100.0 * (1.0 - self.window.len() as f64 / expected as f64).max(0.0)
    }
}

/// What became of one received datagram.
#[derive(Debug)]
pub(crate) enum Received {
    /// Admitted: hand it to the election.
    Advert {
        /// The advert.
        advert: Advert,
        /// How its settings fingerprint compares with ours.
        drift: Drift,
    },
    /// Not admitted: count it.
    Refused {
        /// Why.
        error: AdmissionError,
        /// The first refusal of this kind from this peer: log it (later ones are only
        /// counted, so a misbehaving peer cannot flood the log).
        first: bool,
    },
}

/// How an admitted advert's settings fingerprint compares with ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Drift {
    /// Every fingerprint setting by name, and whether the peer differs on it (the
    /// `haagent_config_drift` gauge).
    pub(crate) settings: Vec<(&'static str, bool)>,
    /// The settings this peer differs on that were not reported before: log them.
    pub(crate) new: Vec<&'static str>,
}

/// Admission plus what the daemon keeps about each peer's adverts (see the module doc).
#[derive(Debug)]
pub(crate) struct Intake {
    rules: Admission,
    /// Our settings fingerprint and the name of each of its words.
    fingerprint: [u32; 4],
    fingerprint_names: Vec<&'static str>,
    /// Sequence loss by peer name.
    seqs: HashMap<String, SeqTrack>,
    /// Settings each peer disagrees on.
    drift: BTreeMap<String, Vec<String>>,
    /// (peer, setting) drift already reported.
    drift_reported: HashSet<(String, &'static str)>,
    /// (peer, kind) refusals already reported: keyed by kind, never by what the datagram
    /// said, so at most peers × kinds entries.
    refusals_reported: HashSet<(usize, AdmissionKind)>,
    /// The name each peer (by index) last advertised under: a peer configured by address
    /// only (quick mode) is known by name from its first admitted advert on. At most one
    /// entry per configured peer.
    names: HashMap<usize, String>,
}

impl Intake {
    /// Admits with `rules` and compares fingerprints with ours (`fingerprint`, whose words
    /// are named `names`).
    pub(crate) fn new(
        rules: Admission,
        fingerprint: [u32; 4],
        fingerprint_names: Vec<&'static str>,
    ) -> Self {
        Self {
            rules,
            fingerprint,
            fingerprint_names,
            seqs: HashMap::new(),
            drift: BTreeMap::new(),
            drift_reported: HashSet::new(),
            refusals_reported: HashSet::new(),
            names: HashMap::new(),
        }
    }

    /// The peers after a reload, indexed like the transport's new peer indices.
    pub(crate) fn set_peers(&mut self, peers: Vec<PeerSpec>) {
        self.rules.peers = peers;
    }

    /// Our settings fingerprint after a reload changed a setting it covers.
    pub(crate) fn set_fingerprint(&mut self, fingerprint: [u32; 4]) {
        self.fingerprint = fingerprint;
    }

    /// One datagram from peer number `peer` whose certificate names `cert_names`.
    pub(crate) fn receive(
        &mut self,
        peer: usize,
        cert_names: &[String],
        payload: &[u8],
    ) -> Received {
        match self.rules.admit(peer, cert_names, payload) {
            Ok(advert) => {
                if self.names.get(&peer) != Some(&advert.name) {
                    self.names.insert(peer, advert.name.clone());
                }
                self.seqs
                    .entry(advert.name.clone())
                    .or_default()
                    .record(advert.seq);
                let drift = self.compare(&advert);
                Received::Advert { advert, drift }
            }
            Err(error) => {
                let first = self.refusals_reported.insert((peer, error.kind()));
                Received::Refused { error, first }
            }
        }
    }

    /// Compares a peer's settings fingerprint with ours (admission has already refused
    /// another cluster).
    fn compare(&mut self, advert: &Advert) -> Drift {
        let settings: Vec<(&'static str, bool)> = self
            .fingerprint_names
            .iter()
            .zip(self.fingerprint.iter().zip(advert.fingerprint.iter()))
            .map(|(name, (ours, theirs))| (*name, ours != theirs))
            .collect();
        let differs: Vec<&'static str> = settings
            .iter()
            .filter(|(_, differs)| *differs)
            .map(|(name, _)| *name)
            .collect();
        let new = differs
            .iter()
            .copied()
            .filter(|setting| self.drift_reported.insert((advert.name.clone(), setting)))
            .collect();
        if differs.is_empty() {
            self.drift.remove(&advert.name);
        } else {
            self.drift.insert(
                advert.name.clone(),
                differs.iter().map(ToString::to_string).collect(),
            );
        }
        Drift { settings, new }
    }

    /// The name peer number `peer` last advertised under, once one of its adverts was
    /// admitted.
    pub(crate) fn name_of(&self, peer: usize) -> Option<&str> {
        self.names.get(&peer).map(String::as_str)
    }

    /// The settings peer `name` disagrees on (empty when none, or not heard).
    pub(crate) fn drift_of(&self, name: &str) -> Vec<String> {
        self.drift.get(name).cloned().unwrap_or_default()
    }

    /// Percent of peer `name`'s recent adverts that did not arrive, once it was heard.
    pub(crate) fn loss_percent(&self, name: &str) -> Option<f64> {
        self.seqs.get(name).map(SeqTrack::loss_percent)
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
            extra_macs: Vec::new(),
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

    fn intake() -> Intake {
        Intake::new(
            admission(),
            [7, 2, 3, 4],
            vec!["cluster", "vips", "advert_interval_ms", "quorum"],
        )
    }

    #[test]
    fn a_refusal_is_reported_once_per_peer_and_kind() {
        let mut intake = intake();
        let first = |r: Received| match r {
            Received::Refused { first, .. } => first,
            Received::Advert { .. } => panic!("admitted garbage"),
        };
        assert!(first(intake.receive(0, &["n2".into()], b"garbage")));
        assert!(!first(intake.receive(0, &["n2".into()], b"junk")));
        assert!(first(intake.receive(1, &["n3".into()], b"garbage")));
        assert!(first(intake.receive(
            0,
            &["n2".into()],
            &encoded(&advert("n2", 8))
        )));
    }

    #[test]
    fn drift_is_reported_once_per_setting_and_forgotten_when_it_ends() {
        let mut intake = intake();
        let mut a = advert("n2", 7);
        a.fingerprint = [7, 2, 99, 4];
        let drift = |r: Received| match r {
            Received::Advert { drift, .. } => drift,
            Received::Refused { error, .. } => panic!("refused: {error}"),
        };
        let d = drift(intake.receive(0, &["n2".into()], &encoded(&a)));
        assert_eq!(d.new, vec!["advert_interval_ms"]);
        assert_eq!(d.settings[2], ("advert_interval_ms", true));
        assert_eq!(
            intake.drift_of("n2"),
            vec!["advert_interval_ms".to_string()]
        );
        a.seq = 2;
        let d = drift(intake.receive(0, &["n2".into()], &encoded(&a)));
        assert!(d.new.is_empty(), "reported twice");
        a.fingerprint = [7, 2, 3, 4];
        a.seq = 3;
        let d = drift(intake.receive(0, &["n2".into()], &encoded(&a)));
        assert!(d.settings.iter().all(|(_, differs)| !differs));
        assert!(intake.drift_of("n2").is_empty());
    }

    #[test]
    fn a_quick_mode_peer_is_known_by_its_advertised_name_once_admitted() {
        // Status matches a peer configured by address to its election view by this name;
        // it used to find none, so quick-mode status showed every peer as not alive.
        let mut intake = intake();
        assert_eq!(intake.name_of(1), None);
        intake.receive(1, &["n4".into()], &encoded(&advert("n4", 7)));
        assert_eq!(intake.name_of(1), Some("n4"));
        // A refused advert teaches nothing.
        intake.receive(1, &["n4".into()], &encoded(&advert("n5", 7)));
        assert_eq!(intake.name_of(1), Some("n4"));
        assert_eq!(intake.name_of(0), None);
    }

    #[test]
    fn loss_is_kept_per_admitted_peer() {
        let mut intake = intake();
        assert_eq!(intake.loss_percent("n2"), None);
        for seq in [1, 2, 4] {
            let mut a = advert("n2", 7);
            a.seq = seq;
            intake.receive(0, &["n2".into()], &encoded(&a));
        }
        let loss = intake.loss_percent("n2").unwrap_or_default();
        assert!((loss - 25.0).abs() < 1e-9, "{loss}");
    }

    #[test]
    fn loss_is_counted_from_sequence_gaps() {
        let mut t = SeqTrack::default();
        for seq in (10..20).filter(|s| *s != 15) {
            t.record(seq);
        }
        assert!((t.loss_percent() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn loss_forgets_an_old_gap_once_every_advert_arrives_again() {
        let mut t = SeqTrack::default();
        (1..=100).for_each(|s| t.record(s));
        // 100 adverts lost (an address change), then all arrive again.
        (201..=500).for_each(|s| t.record(s));
        assert_eq!(t.loss_percent(), 0.0, "was 20 % for good");
        // A restart starts afresh.
        t.record(3);
        assert_eq!(t.loss_percent(), 0.0);
    }

    #[test]
    fn every_kind_has_its_own_label() {
        let labels: std::collections::HashSet<_> =
            AdmissionKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), AdmissionKind::ALL.len());
    }
}
