//! Advert admission: what a datagram from an authenticated connection must pass before it
//! reaches the elections (one per VIP group). Pure (no I/O, no logging); the daemon logs and
//! counts the errors.
//!
//! The transport has already proved that the sender holds a certificate from the cluster CA
//! naming a configured peer. Admission adds, in this order:
//! 1. the bytes decode as an advert of either wire version ([`crate::wire::decode_any`],
//!    strict);
//! 2. the advert speaks for the peer whose certificate carried it (its node name for a peer
//!    configured by name; one of the certificate's DNS names in quick mode), so one node
//!    cannot advertise in another's name;
//! 3. it does not carry our own name;
//! 4. it belongs to our cluster (the first word of the settings fingerprint);
//! 5. its epoch (in v2: every group's) is at most [`MAX_EPOCH`]: epochs grow by one per
//!    takeover, so a larger one is a bug or a hostile peer, and admitting it would pin every
//!    node's epoch near 2⁶⁴ (takeovers saturate) for good.
//!
//! An admitted datagram becomes one [`Advert`] per local group it speaks for (the group's
//! index in [`Intake::set_groups`]): a v2 entry goes to the local group with its id
//! ([`NodeAdvert::advert`]); a v1 advert goes to group 0 only, the first group of the config
//! (the rule of a rolling upgrade, docs/wire-format.md). What does not match is
//! [`GroupDrift`]: a group of ours the peer lacks (or, speaking v1, cannot take part in), a
//! group id of the peer's we lack, a group whose VIPs differ.
//!
//! [`Intake`] wraps these rules with what the daemon keeps about each admitted peer: its
//! advert loss over a sliding window of sequence numbers, the settings it disagrees on
//! (configuration drift, node-wide and per group), and which refusals and drifts were already
//! reported, so that the daemon logs each (peer, kind) and each (peer, group, kind) once. A received datagram passes through here once and
//! leaves as a [`Received`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;

use crate::config::GroupConfig;
use crate::net::IpCidr;
use crate::transport::PeerSpec;
use crate::wire::{self, Advert, Decoded, NodeAdvert, WireError};

/// The largest epoch admitted: 2⁴⁸, a takeover every millisecond for 8,900 years.
pub const MAX_EPOCH: u64 = 1 << 48;

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
    ) -> Result<Decoded, AdmissionError> {
        let decoded = wire::decode_any(payload)?;
        let (name, fingerprint, top_epoch) = match &decoded {
            Decoded::V1(a) => (&a.name, a.fingerprint, a.epoch),
            Decoded::V2(n) => (
                &n.name,
                n.fingerprint,
                n.groups.iter().map(|g| g.epoch).max().unwrap_or(0),
            ),
        };
        let spec = self
            .peers
            .get(peer)
            .ok_or(AdmissionError::UnknownPeer(peer))?;
        let vouched = match &spec.name {
            Some(configured) => name == configured,
            None => cert_names.iter().any(|n| n == name),
        };
        if !vouched {
            return Err(AdmissionError::NotVouched {
                name: name.clone(),
                cert_names: cert_names.to_vec(),
            });
        }
        if *name == self.name {
            return Err(AdmissionError::OwnName(name.clone()));
        }
        if fingerprint[0] != self.cluster_word {
            return Err(AdmissionError::OtherCluster {
                peer: name.clone(),
                cluster: self.cluster.clone(),
            });
        }
        if top_epoch > MAX_EPOCH {
            return Err(AdmissionError::EpochOutOfRange {
                peer: name.clone(),
                epoch: top_epoch,
            });
        }
        Ok(decoded)
    }
}

/// One local VIP group, as admission matches peers' group entries to it. The daemon passes
/// them in config order ([`Intake::set_groups`]): the index in that list is the group index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupKey {
    /// The group's wire id (`GroupConfig::id`, 1..=65535).
    pub(crate) id: u16,
    /// The group's name, for the drift words.
    pub(crate) name: String,
    /// The hash of the group's VIPs ([`vips_fingerprint`]), what the peers' entries carry.
    pub(crate) vips_fingerprint: u32,
}

impl GroupKey {
    /// The key of a configured group: its id, its name and [`vips_fingerprint`] of its
    /// VIPs. The daemon puts the same hash into its own v2 entries.
    pub(crate) fn of(group: &GroupConfig) -> GroupKey {
        GroupKey {
            id: group.id,
            name: group.name.clone(),
            vips_fingerprint: vips_fingerprint(&group.cidrs()),
        }
    }
}

/// The hash of a group's VIPs carried in its v2 entry: the first 4 bytes (big endian) of
/// the SHA-256 of the addresses sorted by address then prefix, written `a.b.c.d/p` and
/// joined by `,` — the same text as the `vips` word of the cluster fingerprint
/// (`Config::fingerprint_settings`), so a one-group config's group hash equals that word.
/// Only the addresses count: interfaces, labels and scopes may differ between nodes.
pub(crate) fn vips_fingerprint(cidrs: &[IpCidr]) -> u32 {
    let mut sorted = cidrs.to_vec();
    sorted.sort_by_key(IpCidr::sort_key);
    let text = sorted
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let b = digest.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// How a peer's groups differ from ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum GroupDriftKind {
    /// The peer (speaking v2) has no entry for one of our groups.
    Missing,
    /// The peer speaks wire v1, so it only takes part in our first group, not in this one.
    WireV1,
    /// The peer advertises a group id we have no group for.
    Unknown,
    /// The peer's VIPs in this group differ from ours.
    Vips,
}

impl GroupDriftKind {
    /// A short word for logs and status (`"missing"`, `"wire_v1"`, `"unknown"`, `"vips"`).
    pub(crate) const fn label(self) -> &'static str {
        match self {
            GroupDriftKind::Missing => "missing",
            GroupDriftKind::WireV1 => "wire_v1",
            GroupDriftKind::Unknown => "unknown",
            GroupDriftKind::Vips => "vips",
        }
    }
}

/// One per-group difference between a peer and this node (see [`GroupDriftKind`]); its
/// `Display` is the warning, naming the peer and the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupDrift {
    /// The peer's node name.
    pub(crate) peer: String,
    /// What differs.
    pub(crate) kind: GroupDriftKind,
    /// The group's wire id.
    pub(crate) id: u16,
    /// Our name of the group; `None` for [`GroupDriftKind::Unknown`].
    pub(crate) group: Option<String>,
    /// For [`GroupDriftKind::WireV1`]: our first group, the one a v1 peer takes part in.
    pub(crate) first: Option<String>,
}

impl GroupDrift {
    /// The group in a few words: `web-b` (id 52), or `id 77` when we lack it.
    pub(crate) fn group_words(&self) -> String {
        match &self.group {
            Some(name) => format!("{name} (id {})", self.id),
            None => format!("id {}", self.id),
        }
    }

    /// The short form for status (`config_drift`): `group web-b: missing`.
    pub(crate) fn short(&self) -> String {
        match &self.group {
            Some(name) => format!("group {name}: {}", self.kind.label()),
            None => format!("group id {}: {}", self.id, self.kind.label()),
        }
    }
}

impl fmt::Display for GroupDrift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (peer, group) = (&self.peer, self.group_words());
        match self.kind {
            GroupDriftKind::Missing => write!(
                f,
                "{peer} has no group {group}: it takes no part in that group's election; every node must configure the same groups"
            ),
            GroupDriftKind::WireV1 => write!(
                f,
                "{peer} speaks wire v1: it only takes part in group {}, not in group {group}; upgrade it",
                self.first.as_deref().unwrap_or("?")
            ),
            GroupDriftKind::Unknown => write!(
                f,
                "{peer} advertises group {group}, which this node has no group for: ignored; every node must configure the same groups"
            ),
            GroupDriftKind::Vips => write!(
                f,
                "{peer} has other VIPs in group {group} than this node; every node must configure the same VIPs in a group"
            ),
        }
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
    /// Admitted: hand each advert to its group's election.
    Adverts {
        /// The sender's node name.
        node: String,
        /// The advert interval the sender announces, in ms (for the drift words).
        advert_interval_ms: u16,
        /// One advert per local group the datagram speaks for, as (group index in
        /// [`Intake::set_groups`], advert), in group order. A v1 datagram: group 0 only.
        /// Empty when the peer shares no group with us.
        adverts: Vec<(usize, Advert)>,
        /// How its node-wide settings fingerprint compares with ours.
        drift: Drift,
        /// Per-group differences not reported before for this peer: log them. Each
        /// (peer, group, kind) comes once, and again only after it went away.
        group_drift: Vec<GroupDrift>,
        /// The datagram's seq (what our `heard` extension to this peer reports back).
        seq: u64,
        /// Its `heard` extension: the seq of our latest datagram it received (v2 only).
        heard: Option<u64>,
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
    /// What our v2 node header carries instead, compared with v2 peers' headers (the same
    /// words as `fingerprint` until [`Intake::set_fingerprint_v2`]).
    fingerprint_v2: Option<[u32; 4]>,
    fingerprint_names: Vec<&'static str>,
    /// The word names of `fingerprint_v2` (`groups` where v1 has `vips`).
    fingerprint_names_v2: Option<Vec<&'static str>>,
    /// Our groups in config order (the index is the group index).
    groups: Vec<GroupKey>,
    /// Per peer name: the group drift of its last admitted datagram (at most our groups +
    /// [`wire::MAX_GROUPS`] entries each), so each is reported once while it lasts.
    group_drift: HashMap<String, Vec<GroupDrift>>,
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
            fingerprint_v2: None,
            fingerprint_names,
            fingerprint_names_v2: None,
            groups: Vec::new(),
            group_drift: HashMap::new(),
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

    /// Our settings fingerprint after a reload changed a setting it covers: what v1 peers'
    /// adverts are compared with (and v2 peers' headers until [`Intake::set_fingerprint_v2`]).
    pub(crate) fn set_fingerprint(&mut self, fingerprint: [u32; 4]) {
        self.fingerprint = fingerprint;
    }

    /// The fingerprint our v2 node header carries ([`crate::config::Config::fingerprint_v2`],
    /// with its word names), what v2 peers' headers are compared with.
    pub(crate) fn set_fingerprint_v2(&mut self, fingerprint: crate::config::Fingerprint) {
        self.fingerprint_v2 = Some(fingerprint.words);
        self.fingerprint_names_v2 = Some(fingerprint.names);
    }

    /// Our groups, in config order: index `i` of this list is group index `i` in
    /// [`Received::Adverts`]. Forgets the group drift reported so far (it is judged again
    /// against the new groups). Before the first call there is no group: a v1 advert still
    /// goes to index 0, every v2 entry is unknown.
    pub(crate) fn set_groups(&mut self, groups: Vec<GroupKey>) {
        self.groups = groups;
        self.group_drift.clear();
    }

    /// One datagram from peer number `peer` whose certificate names `cert_names`.
    pub(crate) fn receive(
        &mut self,
        peer: usize,
        cert_names: &[String],
        payload: &[u8],
    ) -> Received {
        match self.rules.admit(peer, cert_names, payload) {
            Ok(decoded) => {
                let (node, seq, interval, fingerprint) = match &decoded {
                    Decoded::V1(a) => (&a.name, a.seq, a.advert_interval_ms, a.fingerprint),
                    Decoded::V2(n) => (&n.name, n.seq, n.advert_interval_ms, n.fingerprint),
                };
                let node = node.clone();
                if self.names.get(&peer) != Some(&node) {
                    self.names.insert(peer, node.clone());
                }
                self.seqs.entry(node.clone()).or_default().record(seq);
                let (ours, v2) = match &decoded {
                    Decoded::V1(_) => (self.fingerprint, false),
                    Decoded::V2(_) => (self.fingerprint_v2.unwrap_or(self.fingerprint), true),
                };
                let drift = self.compare(&node, ours, &fingerprint, v2);
                let heard = match &decoded {
                    Decoded::V1(_) => None,
                    Decoded::V2(n) => n.heard,
                };
                let (adverts, now) = match decoded {
                    Decoded::V1(a) => (vec![(0, a)], self.v1_drift(&node)),
                    Decoded::V2(n) => self.per_group(&n),
                };
                let group_drift = self.report_group_drift(&node, now);
                Received::Adverts {
                    node,
                    advert_interval_ms: interval,
                    adverts,
                    drift,
                    group_drift,
                    seq,
                    heard,
                }
            }
            Err(error) => {
                let first = self.refusals_reported.insert((peer, error.kind()));
                Received::Refused { error, first }
            }
        }
    }

    /// A v1 peer takes part in our first group only: every other group is drift.
    fn v1_drift(&self, node: &str) -> Vec<GroupDrift> {
        let first = self.groups.first().map(|g| g.name.clone());
        self.groups
            .iter()
            .skip(1)
            .map(|g| GroupDrift {
                peer: node.to_string(),
                kind: GroupDriftKind::WireV1,
                id: g.id,
                group: Some(g.name.clone()),
                first: first.clone(),
            })
            .collect()
    }

    /// A v2 datagram's entries matched to our groups by id, and what does not match.
    fn per_group(&self, n: &NodeAdvert) -> (Vec<(usize, Advert)>, Vec<GroupDrift>) {
        let drift = |kind, id, group: Option<&GroupKey>| GroupDrift {
            peer: n.name.clone(),
            kind,
            id,
            group: group.map(|g| g.name.clone()),
            first: None,
        };
        let mut adverts = Vec::new();
        let mut drifts = Vec::new();
        for (index, ours) in self.groups.iter().enumerate() {
            match n.groups.iter().find(|e| e.id == ours.id) {
                Some(entry) => {
                    if entry.vips_fingerprint != ours.vips_fingerprint {
                        drifts.push(drift(GroupDriftKind::Vips, ours.id, Some(ours)));
                    }
                    adverts.push((index, n.advert(entry)));
                }
                None => drifts.push(drift(GroupDriftKind::Missing, ours.id, Some(ours))),
            }
        }
        for entry in &n.groups {
            if !self.groups.iter().any(|g| g.id == entry.id) {
                drifts.push(drift(GroupDriftKind::Unknown, entry.id, None));
            }
        }
        (adverts, drifts)
    }

    /// Keeps `now` as peer `node`'s group drift; returns the part it did not have before.
    fn report_group_drift(&mut self, node: &str, now: Vec<GroupDrift>) -> Vec<GroupDrift> {
        let before = self
            .group_drift
            .get(node)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let new = now
            .iter()
            .filter(|d| !before.iter().any(|b| (b.kind, b.id) == (d.kind, d.id)))
            .cloned()
            .collect();
        if now.is_empty() {
            self.group_drift.remove(node);
        } else {
            self.group_drift.insert(node.to_string(), now);
        }
        new
    }

    /// Compares a peer's settings fingerprint `theirs` with `ours` (admission has already
    /// refused another cluster).
    fn compare(&mut self, node: &str, ours: [u32; 4], theirs: &[u32; 4], v2: bool) -> Drift {
        let names = match (&self.fingerprint_names_v2, v2) {
            (Some(names), true) => names,
            _ => &self.fingerprint_names,
        };
        let settings: Vec<(&'static str, bool)> = names
            .iter()
            .zip(ours.iter().zip(theirs.iter()))
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
            .filter(|setting| self.drift_reported.insert((node.to_string(), setting)))
            .collect();
        if differs.is_empty() {
            self.drift.remove(node);
        } else {
            self.drift.insert(
                node.to_string(),
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

    /// The settings peer `name` disagrees on (empty when none, or not heard), then its
    /// group drift in short form (`group web-b: missing`, [`GroupDrift::short`]).
    pub(crate) fn drift_of(&self, name: &str) -> Vec<String> {
        let mut out = self.drift.get(name).cloned().unwrap_or_default();
        if let Some(groups) = self.group_drift.get(name) {
            out.extend(groups.iter().map(GroupDrift::short));
        }
        out
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
            heard_us_at: None,
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
        assert!(matches!(ok, Ok(Decoded::V1(a)) if a.name == "n2"));
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
            Received::Adverts { .. } => panic!("admitted garbage"),
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
            Received::Adverts { drift, .. } => drift,
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

    fn group(id: u16, name: &str, vips_fingerprint: u32) -> GroupKey {
        GroupKey {
            id,
            name: name.into(),
            vips_fingerprint,
        }
    }

    /// An intake with our groups web-a (51), web-b (52), web-c (53).
    fn grouped() -> Intake {
        let mut intake = intake();
        intake.set_groups(vec![
            group(51, "web-a", 0xa),
            group(52, "web-b", 0xb),
            group(53, "web-c", 0xc),
        ]);
        intake
    }

    fn entry(id: u16, vips_fingerprint: u32) -> wire::GroupEntry {
        wire::GroupEntry {
            id,
            state: State::Backup,
            priority: 100,
            epoch: 1,
            vips_fingerprint,
            handover_to: None,
        }
    }

    fn node(name: &str, groups: Vec<wire::GroupEntry>) -> NodeAdvert {
        NodeAdvert {
            name: name.into(),
            advert_interval_ms: 50,
            seq: 1,
            fingerprint: [7, 2, 3, 4],
            macs: vec![[2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 1, 2]],
            groups,
            heard: None,
        }
    }

    type Adverts = (Vec<(usize, Advert)>, Vec<GroupDrift>, Drift);

    fn adverts(r: Received) -> Adverts {
        match r {
            Received::Adverts {
                adverts,
                group_drift,
                drift,
                ..
            } => (adverts, group_drift, drift),
            Received::Refused { error, .. } => panic!("refused: {error}"),
        }
    }

    #[test]
    fn a_v2_datagram_becomes_one_advert_per_shared_group_in_our_order() {
        let mut intake = grouped();
        let mut n = node("n2", vec![entry(53, 0xc), entry(51, 0xa), entry(52, 0xb)]);
        n.groups[0].state = State::Master;
        n.groups[0].handover_to = Some("n1".into());
        n.seq = 41;
        let (got, group_drift, drift) =
            adverts(intake.receive(0, &["n2".into()], &wire::encode_v2(&n)));
        assert!(group_drift.is_empty(), "{group_drift:?}");
        assert!(drift.new.is_empty());
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
        let (_, c) = &got[2];
        assert_eq!(
            (c.name.as_str(), c.seq, c.advert_interval_ms),
            ("n2", 41, 50)
        );
        assert_eq!(
            (c.state, c.handover_to.as_deref()),
            (State::Master, Some("n1"))
        );
        assert_eq!(c.mac, [2, 0, 0, 0, 0, 2]);
        assert_eq!(c.extra_macs, vec![[2, 0, 0, 0, 1, 2]]);
        assert_eq!(c.fingerprint, [7, 2, 3, 4]);
        assert_eq!(got[0].1.state, State::Backup);
        assert_eq!(intake.name_of(0), Some("n2"));
    }

    #[test]
    fn a_v1_advert_takes_part_in_the_first_group_only_and_says_so_once() {
        let mut intake = grouped();
        let (got, drift, _) =
            adverts(intake.receive(0, &["n2".into()], &encoded(&advert("n2", 7))));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 0);
        assert_eq!(got[0].1.name, "n2");
        let words: Vec<String> = drift.iter().map(ToString::to_string).collect();
        assert_eq!(words.len(), 2, "{words:?}");
        assert!(
            words[0].starts_with("n2 speaks wire v1: it only takes part in group web-a"),
            "{}",
            words[0]
        );
        assert!(words[0].contains("web-b (id 52)"), "{}", words[0]);
        assert!(words[1].contains("web-c (id 53)"), "{}", words[1]);
        let mut again = advert("n2", 7);
        again.seq = 2;
        let (_, drift, _) = adverts(intake.receive(0, &["n2".into()], &encoded(&again)));
        assert!(drift.is_empty(), "reported twice: {drift:?}");
        assert_eq!(
            intake.drift_of("n2"),
            ["group web-b: wire_v1", "group web-c: wire_v1"]
        );
        // A one-group node: a v1 peer is no drift at all.
        let mut single = self::intake();
        single.set_groups(vec![group(51, "default", 0xa)]);
        let (got, drift, _) =
            adverts(single.receive(0, &["n2".into()], &encoded(&advert("n2", 7))));
        assert_eq!((got.len(), drift.len()), (1, 0));
    }

    #[test]
    fn group_drift_names_peer_and_group_comes_once_and_again_after_it_ended() {
        let mut intake = grouped();
        // n2 lacks web-c, has other VIPs in web-b, and a group 99 we do not have.
        let mut n = node("n2", vec![entry(51, 0xa), entry(52, 0xbad), entry(99, 0)]);
        let send = |to: &mut Intake, n: &mut NodeAdvert| {
            n.seq += 1;
            adverts(to.receive(0, &["n2".into()], &wire::encode_v2(n)))
        };
        let (got, drift, _) = send(&mut intake, &mut n);
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1]);
        let kinds: Vec<_> = drift.iter().map(|d| (d.kind, d.id)).collect();
        assert_eq!(
            kinds,
            [
                (GroupDriftKind::Vips, 52),
                (GroupDriftKind::Missing, 53),
                (GroupDriftKind::Unknown, 99)
            ]
        );
        let words: Vec<String> = drift.iter().map(ToString::to_string).collect();
        assert!(
            words[0].starts_with("n2 has other VIPs in group web-b (id 52)"),
            "{}",
            words[0]
        );
        assert!(
            words[1].starts_with("n2 has no group web-c (id 53)"),
            "{}",
            words[1]
        );
        assert!(
            words[2].starts_with("n2 advertises group id 99, which this node has no group for"),
            "{}",
            words[2]
        );
        assert_eq!(
            intake.drift_of("n2"),
            [
                "group web-b: vips",
                "group web-c: missing",
                "group id 99: unknown"
            ]
        );
        // The same datagram again: nothing new.
        let (_, drift, _) = send(&mut intake, &mut n);
        assert!(drift.is_empty(), "{drift:?}");
        // The VIPs agree now; web-c is still missing, 99 still unknown.
        n.groups[1].vips_fingerprint = 0xb;
        let (_, drift, _) = send(&mut intake, &mut n);
        assert!(drift.is_empty(), "{drift:?}");
        assert_eq!(
            intake.drift_of("n2"),
            ["group web-c: missing", "group id 99: unknown"]
        );
        // The VIPs differ again: reported again, once.
        n.groups[1].vips_fingerprint = 0xbad;
        let (_, drift, _) = send(&mut intake, &mut n);
        assert_eq!(
            drift.iter().map(|d| d.kind).collect::<Vec<_>>(),
            [GroupDriftKind::Vips]
        );
        // Another peer has its own record.
        let mut n3 = node("n3", vec![entry(51, 0xa), entry(52, 0xb), entry(53, 0xc)]);
        n3.name = "n3".into();
        let (_, drift, _) = adverts(intake.receive(1, &["n3".into()], &wire::encode_v2(&n3)));
        assert!(drift.is_empty());
        assert!(intake.drift_of("n3").is_empty());
    }

    #[test]
    fn v2_datagrams_pass_the_same_admission_rules() {
        let adm = admission();
        let ok =
            |n: &NodeAdvert, peer, cert: &str| adm.admit(peer, &[cert.into()], &wire::encode_v2(n));
        assert!(matches!(
            ok(&node("n2", vec![entry(51, 0)]), 0, "n2"),
            Ok(Decoded::V2(_))
        ));
        let kind = |r: Result<Decoded, AdmissionError>| r.map(|_| ()).unwrap_err().kind();
        assert_eq!(
            kind(ok(&node("n3", vec![entry(51, 0)]), 0, "n2")),
            AdmissionKind::NotVouched
        );
        assert_eq!(
            kind(ok(&node("n1", vec![entry(51, 0)]), 1, "n1")),
            AdmissionKind::OwnName
        );
        let mut other = node("n2", vec![entry(51, 0)]);
        other.fingerprint[0] = 8;
        assert_eq!(kind(ok(&other, 0, "n2")), AdmissionKind::OtherCluster);
        let mut epoch = node("n2", vec![entry(51, 0), entry(52, 0)]);
        epoch.groups[1].epoch = MAX_EPOCH + 1;
        let err = ok(&epoch, 0, "n2").map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), AdmissionKind::EpochOutOfRange);
        assert!(
            err.to_string()
                .contains("n2 advertises epoch 281474976710657"),
            "{err}"
        );
        let mut bad = wire::encode_v2(&node("n2", vec![entry(51, 0)]));
        bad.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            kind(adm.admit(0, &["n2".into()], &bad)),
            AdmissionKind::Malformed
        );
    }

    #[test]
    fn v2_headers_are_compared_with_the_v2_fingerprint() {
        let mut intake = grouped();
        intake.set_fingerprint_v2(crate::config::Fingerprint {
            words: [7, 20, 3, 4],
            names: vec!["cluster", "groups", "advert_interval_ms", "quorum"],
        });
        let n = node("n2", vec![entry(51, 0xa)]);
        let (_, _, drift) = adverts(intake.receive(0, &["n2".into()], &wire::encode_v2(&n)));
        // Named by the v2 words: the group set differs, not the v1 `vips`.
        assert_eq!(drift.new, vec!["groups"]);
        // v1 adverts are still compared with the v1 fingerprint.
        let (_, _, drift) = adverts(intake.receive(1, &["n3".into()], &encoded(&advert("n3", 7))));
        assert!(drift.settings.iter().all(|(_, differs)| !differs));
    }

    #[test]
    fn a_group_key_hashes_its_vips_like_the_fingerprint_word() {
        let text = include_str!("../../configs/two-node.toml").replace(
            r#"addresses = ["192.0.2.100/24"]"#,
            r#"addresses = ["192.0.2.101/24", "192.0.2.100/24"]"#,
        );
        let config =
            crate::config::from_toml(&text, "two-node.toml", &crate::config::Overrides::default())
                .unwrap_or_else(|e| panic!("{e}"));
        let key = GroupKey::of(&config.groups[0]);
        assert_eq!(key.id, config.groups[0].id);
        assert_eq!(key.vips_fingerprint, config.fingerprint().words[1]);
        let a: Vec<IpCidr> = config.groups[0].cidrs();
        let mut b = a.clone();
        b.reverse();
        assert_eq!(vips_fingerprint(&a), vips_fingerprint(&b));
        assert_ne!(vips_fingerprint(&a), vips_fingerprint(&a[..1]));
    }

    #[test]
    fn every_kind_has_its_own_label() {
        let labels: std::collections::HashSet<_> =
            AdmissionKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), AdmissionKind::ALL.len());
    }
}
