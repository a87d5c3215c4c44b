//! What the daemon needs to compare configurations: the settings every peer must share
//! (config drift between nodes), and the changes a reload cannot apply without touching the
//! election or the VIPs.
//!
//! Both are expressed with the key names of the config file, so a log line or a status entry
//! built from them tells the operator which line to look at.

use std::time::Duration;

use super::limits::{QUORUM_MAJORITY, QUORUM_OFF};
use super::{Config, PeerConfig, WitnessSettings};
use crate::net::Ipv4Cidr;

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn quorum_word(q: bool) -> &'static str {
    if q {
        QUORUM_MAJORITY
    } else {
        QUORUM_OFF
    }
}

/// The VIPs in a canonical order (by address, then prefix).
fn sorted_vips(vips: &[Ipv4Cidr]) -> Vec<Ipv4Cidr> {
    let mut v = vips.to_vec();
    v.sort_by_key(|c| (u32::from(c.addr), c.prefix));
    v
}

fn vip_list(vips: &[Ipv4Cidr]) -> String {
    vips.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn peer_list(peers: &[PeerConfig]) -> String {
    if peers.is_empty() {
        return "none".to_string();
    }
    peers
        .iter()
        .map(|p| match &p.name {
            Some(n) => format!("{n} ({})", p.address),
            None => p.address.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn witness_words(w: &Option<WitnessSettings>) -> String {
    match w {
        None => "off".to_string(),
        Some(w) => format!(
            "gateway {} interval_ms {} timeout_ms {} fall {} rise {}",
            w.gateway,
            ms(w.interval),
            ms(w.timeout),
            w.fall,
            w.rise
        ),
    }
}

fn lease_words(l: Option<Duration>) -> String {
    l.map_or_else(|| "0 (off)".to_string(), |d| ms(d).to_string())
}

/// A setting whose change a reload reports (see [`Config::election_changes`]), named by its
/// config-file key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    /// `cluster`.
    Cluster,
    /// `name`.
    Name,
    /// `priority`.
    Priority,
    /// `interface`.
    Interface,
    /// `listen`.
    Listen,
    /// `peers`.
    Peers,
    /// `vips`.
    Vips,
    /// `lease_ms`.
    LeaseMs,
    /// `probe_count`.
    ProbeCount,
    /// `probe_window_ms`.
    ProbeWindowMs,
    /// `foreign_holder_timeout_ms`.
    ForeignHolderTimeoutMs,
    /// `advert_interval_ms`.
    AdvertIntervalMs,
    /// `down_multiplier`.
    DownMultiplier,
    /// `preempt`.
    Preempt,
    /// `preempt_delay_ms`.
    PreemptDelayMs,
    /// `quorum`.
    Quorum,
    /// `witness`.
    Witness,
    /// `tls ca`.
    TlsCa,
    /// `tls cert`.
    TlsCert,
    /// `tls key`.
    TlsKey,
}

impl Setting {
    /// The config-file key, as the operator wrote it (`"priority"`, `"tls cert"`).
    pub const fn key(self) -> &'static str {
        match self {
            Setting::Cluster => "cluster",
            Setting::Name => "name",
            Setting::Priority => "priority",
            Setting::Interface => "interface",
            Setting::Listen => "listen",
            Setting::Peers => "peers",
            Setting::Vips => "vips",
            Setting::LeaseMs => "lease_ms",
            Setting::ProbeCount => "probe_count",
            Setting::ProbeWindowMs => "probe_window_ms",
            Setting::ForeignHolderTimeoutMs => "foreign_holder_timeout_ms",
            Setting::AdvertIntervalMs => "advert_interval_ms",
            Setting::DownMultiplier => "down_multiplier",
            Setting::Preempt => "preempt",
            Setting::PreemptDelayMs => "preempt_delay_ms",
            Setting::Quorum => "quorum",
            Setting::Witness => "witness",
            Setting::TlsCa => "tls ca",
            Setting::TlsCert => "tls cert",
            Setting::TlsKey => "tls key",
        }
    }

    /// Whether a running agent applies this change without a restart (and without a
    /// transition where the VIP holder stays): the priority (in the next advert), the
    /// peers (the transport's peer table), the VIPs (a master installs the new ones and
    /// deletes the dropped ones), the election timers, preemption and quorum (the
    /// election is reconfigured), and the certificate paths (a reload reads the
    /// certificates anyway). The node's identity and place (cluster, name, interface,
    /// listen), the VIP lease, probing and the witness need a restart.
    pub const fn applies_live(self) -> bool {
        matches!(
            self,
            Setting::Priority
                | Setting::Peers
                | Setting::Vips
                | Setting::AdvertIntervalMs
                | Setting::DownMultiplier
                | Setting::Preempt
                | Setting::PreemptDelayMs
                | Setting::Quorum
                | Setting::TlsCa
                | Setting::TlsCert
                | Setting::TlsKey
        )
    }
}

/// One changed setting: its key, the old and the new value in config-file words.
/// Displays as `"priority 150 → 120"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    /// Which setting.
    pub setting: Setting,
    /// The running value.
    pub old: String,
    /// The value in the file just read.
    pub new: String,
}

impl std::fmt::Display for SettingChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} → {}", self.setting.key(), self.old, self.new)
    }
}

/// The cluster fingerprint carried in every advert: one word per setting of
/// [`Config::fingerprint_settings`] (the first 4 bytes of the SHA-256 of its value, big
/// endian), with the setting's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The four words, in the order of [`Config::fingerprint_settings`].
    pub words: [u32; 4],
    /// The setting each word stands for (`"cluster"`, `"vips"`, ...).
    pub names: Vec<&'static str>,
}

impl Fingerprint {
    /// The settings whose words differ from `theirs` (another node's advert), in order;
    /// empty when they agree.
    pub fn differences(&self, theirs: &[u32; 4]) -> Vec<&'static str> {
        self.names
            .iter()
            .zip(self.words.iter().zip(theirs))
            .filter(|(_, (ours, theirs))| ours != theirs)
            .map(|(name, _)| *name)
            .collect()
    }
}

impl Config {
    /// Hashes each setting that must match across the cluster into one word of the
    /// advert's fingerprint (cluster name, VIPs, advert interval, quorum mode).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut words = [0u32; 4];
        let mut names = Vec::new();
        for (word, (name, value)) in words.iter_mut().zip(self.fingerprint_settings()) {
            let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
            let b = digest.as_ref();
            *word = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            names.push(name);
        }
        Fingerprint { words, names }
    }
    /// This configuration as a running agent applies it on reload: every setting that
    /// [`Setting::applies_live`] from `self`, the others from `running` (they wait for a
    /// restart). `running.election_changes(&result)` holds only live settings.
    pub fn applied_over(&self, running: &Config) -> Config {
        let mut out = self.clone();
        out.cluster = running.cluster.clone();
        out.node.name = running.node.name.clone();
        out.node.interface = running.node.interface.clone();
        out.node.listen = running.node.listen;
        out.lease = running.lease;
        out.probe = running.probe.clone();
        out.witness = running.witness.clone();
        out
    }

    /// The settings that must be equal on every node of a cluster, as `(key, value)` pairs in
    /// a fixed order: `cluster` (its name), `vips` (sorted by address, comma-separated, e.g.
    /// `192.0.2.100/24,192.0.2.101/32`), `advert_interval_ms` and `quorum` (`majority` or
    /// `off`). Two nodes whose lists differ are configured inconsistently; the daemon hashes
    /// and compares them.
    pub fn fingerprint_settings(&self) -> Vec<(&'static str, String)> {
        let vips = sorted_vips(&self.vips)
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",");
        vec![
            ("cluster", self.cluster.clone()),
            ("vips", vips),
            (
                "advert_interval_ms",
                ms(self.election.advert_interval).to_string(),
            ),
            ("quorum", quorum_word(self.election.quorum).to_string()),
        ]
    }

    /// Every change from `self` to `new` that affects the election or the VIPs, one
    /// [`SettingChange`] each in config-file words (`"priority 150 → 120"`), in file order: cluster,
    /// node (name, priority, interface, listen), peers, vips and their lease and probing,
    /// election, witness, tls. Empty when only other settings changed: log, notify, garp,
    /// checks (the health monitor is rebuilt), metrics, control. VIPs and peers are compared
    /// as sets: reordering them is no change.
    pub fn election_changes(&self, new: &Config) -> Vec<SettingChange> {
        let mut out = Vec::new();
        let mut diff = |setting: Setting, old: String, new: String| {
            if old != new {
                out.push(SettingChange { setting, old, new });
            }
        };
        diff(Setting::Cluster, self.cluster.clone(), new.cluster.clone());
        diff(Setting::Name, self.node.name.clone(), new.node.name.clone());
        diff(
            Setting::Priority,
            self.node.priority.to_string(),
            new.node.priority.to_string(),
        );
        diff(
            Setting::Interface,
            self.node.interface.clone(),
            new.node.interface.clone(),
        );
        diff(
            Setting::Listen,
            self.node.listen.to_string(),
            new.node.listen.to_string(),
        );
        let peer_key = |p: &PeerConfig| (p.address, p.name.clone());
        let mut old_peers: Vec<_> = self.peers.iter().map(peer_key).collect();
        let mut new_peers: Vec<_> = new.peers.iter().map(peer_key).collect();
        old_peers.sort();
        new_peers.sort();
        if old_peers != new_peers {
            diff(
                Setting::Peers,
                peer_list(&self.peers),
                peer_list(&new.peers),
            );
        }
        if sorted_vips(&self.vips) != sorted_vips(&new.vips) {
            diff(Setting::Vips, vip_list(&self.vips), vip_list(&new.vips));
        }
        diff(
            Setting::LeaseMs,
            lease_words(self.lease),
            lease_words(new.lease),
        );
        diff(
            Setting::ProbeCount,
            self.probe.count.to_string(),
            new.probe.count.to_string(),
        );
        diff(
            Setting::ProbeWindowMs,
            ms(self.probe.window).to_string(),
            ms(new.probe.window).to_string(),
        );
        diff(
            Setting::ForeignHolderTimeoutMs,
            self.probe.foreign_holder_timeout.map_or(0, ms).to_string(),
            new.probe.foreign_holder_timeout.map_or(0, ms).to_string(),
        );
        let (a, b) = (&self.election, &new.election);
        diff(
            Setting::AdvertIntervalMs,
            ms(a.advert_interval).to_string(),
            ms(b.advert_interval).to_string(),
        );
        diff(
            Setting::DownMultiplier,
            a.down_multiplier.to_string(),
            b.down_multiplier.to_string(),
        );
        diff(
            Setting::Preempt,
            a.preempt.to_string(),
            b.preempt.to_string(),
        );
        diff(
            Setting::PreemptDelayMs,
            ms(a.preempt_delay).to_string(),
            ms(b.preempt_delay).to_string(),
        );
        diff(
            Setting::Quorum,
            quorum_word(a.quorum).to_string(),
            quorum_word(b.quorum).to_string(),
        );
        diff(
            Setting::Witness,
            witness_words(&self.witness),
            witness_words(&new.witness),
        );
        let path = |p: &std::path::Path| p.display().to_string();
        diff(Setting::TlsCa, path(&self.tls.ca), path(&new.tls.ca));
        diff(Setting::TlsCert, path(&self.tls.cert), path(&new.tls.cert));
        diff(Setting::TlsKey, path(&self.tls.key), path(&new.tls.key));
        out
    }
}
