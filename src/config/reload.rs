//! What the daemon needs to compare configurations: the settings every peer must share
//! (config drift between nodes), and the changes a reload cannot apply without touching the
//! election or the VIPs.
//!
//! Both are expressed with the key names of the config file, so a log line or a status entry
//! built from them tells the operator which line to look at.

use std::time::Duration;

use super::validate::{QUORUM_MAJORITY, QUORUM_OFF};
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

impl Config {
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
    /// sentence each in config-file words (`"priority 150 → 120"`), in file order: cluster,
    /// node (name, priority, interface, listen), peers, vips and their lease and probing,
    /// election, witness, tls. Empty when only other settings changed: log, notify, garp,
    /// checks (the health monitor is rebuilt), metrics, control. VIPs and peers are compared
    /// as sets: reordering them is no change.
    pub fn election_changes(&self, new: &Config) -> Vec<String> {
        let mut out = Vec::new();
        let mut diff = |key: &str, old: String, new: String| {
            if old != new {
                out.push(format!("{key} {old} → {new}"));
            }
        };
        diff("cluster", self.cluster.clone(), new.cluster.clone());
        diff("name", self.node.name.clone(), new.node.name.clone());
        diff(
            "priority",
            self.node.priority.to_string(),
            new.node.priority.to_string(),
        );
        diff(
            "interface",
            self.node.interface.clone(),
            new.node.interface.clone(),
        );
        diff(
            "listen",
            self.node.listen.to_string(),
            new.node.listen.to_string(),
        );
        let peer_key = |p: &PeerConfig| (p.address, p.name.clone());
        let mut old_peers: Vec<_> = self.peers.iter().map(peer_key).collect();
        let mut new_peers: Vec<_> = new.peers.iter().map(peer_key).collect();
        old_peers.sort();
        new_peers.sort();
        if old_peers != new_peers {
            diff("peers", peer_list(&self.peers), peer_list(&new.peers));
        }
        if sorted_vips(&self.vips) != sorted_vips(&new.vips) {
            diff("vips", vip_list(&self.vips), vip_list(&new.vips));
        }
        diff("lease_ms", lease_words(self.lease), lease_words(new.lease));
        diff(
            "probe_count",
            self.probe.count.to_string(),
            new.probe.count.to_string(),
        );
        diff(
            "probe_window_ms",
            ms(self.probe.window).to_string(),
            ms(new.probe.window).to_string(),
        );
        let (a, b) = (&self.election, &new.election);
        diff(
            "advert_interval_ms",
            ms(a.advert_interval).to_string(),
            ms(b.advert_interval).to_string(),
        );
        diff(
            "down_multiplier",
            a.down_multiplier.to_string(),
            b.down_multiplier.to_string(),
        );
        diff("preempt", a.preempt.to_string(), b.preempt.to_string());
        diff(
            "preempt_delay_ms",
            ms(a.preempt_delay).to_string(),
            ms(b.preempt_delay).to_string(),
        );
        diff(
            "quorum",
            quorum_word(a.quorum).to_string(),
            quorum_word(b.quorum).to_string(),
        );
        diff(
            "witness",
            witness_words(&self.witness),
            witness_words(&new.witness),
        );
        let path = |p: &std::path::Path| p.display().to_string();
        diff("tls ca", path(&self.tls.ca), path(&new.tls.ca));
        diff("tls cert", path(&self.tls.cert), path(&new.tls.cert));
        diff("tls key", path(&self.tls.key), path(&new.tls.key));
        out
    }
}
