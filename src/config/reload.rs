//! What the daemon needs to compare configurations: the settings every peer must share
//! (config drift between nodes), and the changes a reload cannot apply without touching the
//! election or the VIPs.
//!
//! Both are expressed with the key names of the config file, so a log line or a status entry
//! built from them tells the operator which line to look at.

use std::time::Duration;

use super::groups::{default_track, implicit_group_of};
use super::limits::{QUORUM_MAJORITY, QUORUM_OFF};
use super::{Config, GroupConfig, NotifySettings, PeerConfig, TrackCheck, WitnessSettings};
use crate::health::Weight;
use crate::net::{IpCidr, RouteSpec, VipScope, VipSpec};

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
fn sorted_vips(vips: &[IpCidr]) -> Vec<IpCidr> {
    let mut v = vips.to_vec();
    v.sort_by_key(IpCidr::sort_key);
    v
}

fn vip_list(vips: &[IpCidr]) -> String {
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

/// The VIPs as the v1 `vips` word hashes them: sorted by address, `ADDR/PREFIX`,
/// comma-separated.
fn vips_word(vips: &[IpCidr]) -> String {
    sorted_vips(vips)
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The first 4 bytes of the SHA-256 of `text`, big endian.
fn word_of(text: &str) -> u32 {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let b = digest.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A group's identity: its wire id and its name.
fn group_key(g: &GroupConfig) -> (u16, &str) {
    (g.id, g.name.as_str())
}

/// The group set as `id:name` sorted by id then name, comma-separated (`51:web-a,52:web-b`).
fn groups_word(groups: &[GroupConfig], sep: &str) -> String {
    let mut keys: Vec<_> = groups.iter().map(group_key).collect();
    keys.sort();
    keys.iter()
        .map(|(id, name)| format!("{id}:{name}"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn sorted_interfaces(g: &GroupConfig) -> Vec<String> {
    let mut v = g.interfaces();
    v.sort();
    v
}

fn vip_spec_words(v: &VipSpec) -> String {
    let mut out = format!("{} dev {}", v.cidr, v.interface);
    if let Some(l) = &v.label {
        out.push_str(&format!(" label {l}"));
    }
    if v.scope != VipScope::Global {
        out.push_str(&format!(" scope {}", v.scope.as_str()));
    }
    out
}

fn sorted_vip_specs(vips: &[VipSpec]) -> Vec<VipSpec> {
    let mut v = vips.to_vec();
    v.sort_by_key(|s| (s.cidr.sort_key(), s.interface.clone()));
    v
}

fn sorted_routes(routes: &[RouteSpec]) -> Vec<String> {
    let mut v: Vec<String> = routes.iter().map(ToString::to_string).collect();
    v.sort();
    v
}

fn list_or_none(items: Vec<String>, sep: &str) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(sep)
    }
}

fn track_words(track: &[TrackCheck]) -> Vec<String> {
    let mut v: Vec<String> = track
        .iter()
        .map(|t| match t.weight {
            Weight::Fault => format!("{} fault", t.check),
            Weight::Adjust(n) => format!("{} {n}", t.check),
        })
        .collect();
    v.sort();
    v
}

fn notify_words(n: &NotifySettings) -> String {
    let hooks = [
        ("command", &n.command),
        ("master", &n.master),
        ("backup", &n.backup),
        ("fault", &n.fault),
        ("stop", &n.stop),
        ("claim_blocked", &n.claim_blocked),
        ("conflict_won", &n.conflict_won),
    ];
    let mut parts: Vec<String> = hooks
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref().map(|h| match h.args {
                super::HookArgs::None => format!("{k} {}", h.argv.join(" ")),
                args => format!("{k} {} (args {})", h.argv.join(" "), args.word()),
            })
        })
        .collect();
    parts.push(format!("timeout_ms {}", ms(n.timeout)));
    parts.join(", ")
}

/// A mover in config-file words, `none` without one.
fn mover_words(m: Option<&super::MoverSettings>) -> String {
    match m {
        None => "none".to_string(),
        Some(m) => format!(
            "command {}, timeout_ms {}, retries {}, retry_delay_ms {}, wait {}",
            m.command.join(" "),
            ms(m.timeout),
            m.retries,
            ms(m.retry_delay),
            m.wait
        ),
    }
}

/// MACs in config-file words, `none` for an empty list.
fn macs_words(macs: &[[u8; 6]]) -> String {
    if macs.is_empty() {
        return "none".to_string();
    }
    macs.iter()
        .map(crate::net::format_mac)
        .collect::<Vec<_>>()
        .join(", ")
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
    /// `group`: the set of `[[group]]`s (each by id and name).
    Groups,
    /// A group's `route` tables.
    Routes,
    /// A group's `mode` (`l2` or `routed`).
    Mode,
    /// A group's `track`.
    Track,
    /// A group's `notify` (its `[group.notify]`, or the node's `[notify]` it inherits).
    Notify,
    /// A group's `mover` (its `[group.mover]`, or the node's `[mover]` it inherits).
    Mover,
    /// `ignore_arp_from` (`[vip]`).
    IgnoreArpFrom,
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
            Setting::Groups => "groups",
            Setting::Routes => "routes",
            Setting::Mode => "mode",
            Setting::Track => "track",
            Setting::Notify => "notify",
            Setting::Mover => "mover",
            Setting::IgnoreArpFrom => "ignore_arp_from",
        }
    }

    /// Whether a running agent applies this change without a restart (and without a
    /// transition where the VIP holder stays): the priority (in the next advert), the
    /// peers (the transport's peer table), the VIPs (a master installs the new ones and
    /// deletes the dropped ones), the election timers, preemption and quorum (the
    /// election is reconfigured), and the certificate paths (a reload reads the
    /// certificates anyway). The node's identity and place (cluster, name, interface,
    /// listen), the VIP lease, probing (with `ignore_arp_from`) and the witness need a
    /// restart.
    ///
    /// Per group (a [`SettingChange`] with `group` set): its priority, preemption, track,
    /// notify and VIPs that stay on the same interfaces apply live; a change of the group
    /// set ([`Setting::Groups`]), of a group's interfaces ([`Setting::Interface`]) or
    /// routes ([`Setting::Routes`]) or mode ([`Setting::Mode`]) needs a restart (each interface has its own carrier
    /// watch, ARP socket and MAC in the adverts; routes are installed with the VIPs).
    /// So does a group's mover ([`Setting::Mover`]): a claim may be waiting for the
    /// running mover (`wait = true`), and swapping the command under it would leave that
    /// claim judged by a mover that never ran.
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
                | Setting::Track
                | Setting::Notify
        )
    }
}

/// One changed setting: its key, the old and the new value in config-file words.
/// Displays as `"priority 150 → 120"`, or `"group web-a priority 150 → 120"` for a
/// setting of one `[[group]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    /// Which setting.
    pub setting: Setting,
    /// The `[[group]]` it belongs to, by name; `None` for a node-wide setting (and for
    /// every change of a config without `[[group]]` tables, as before groups existed).
    pub group: Option<String>,
    /// The running value.
    pub old: String,
    /// The value in the file just read.
    pub new: String,
}

impl std::fmt::Display for SettingChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(g) = &self.group {
            write!(f, "group {g} ")?;
        }
        write!(f, "{} {} → {}", self.setting.key(), self.old, self.new)
    }
}

/// The cluster fingerprint carried in every advert: one word per setting of
/// [`Config::fingerprint_settings`] (v1) or [`Config::fingerprint_v2_settings`] (v2), each
/// the first 4 bytes of the SHA-256 of its value, big endian, with the setting's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The four words, in the order of their settings.
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
    ///
    /// This is the v1 fingerprint (wire version 1, `haagent/1`): a v1 peer compares it, so
    /// for a config without `[[group]]` it never changes. With groups, its `vips` word
    /// covers every group's VIPs ([`Config::vips`]).
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint_of(self.fingerprint_settings())
    }

    /// The v2 fingerprint (wire version 2): `cluster`, `groups`, `advert_interval_ms`,
    /// `quorum` (see [`Config::fingerprint_v2_settings`]). The VIPs are compared per group
    /// instead ([`GroupConfig::vips_fingerprint`] in each group's entry), so that a peer
    /// whose VIPs differ in one group is drift in that group only.
    pub fn fingerprint_v2(&self) -> Fingerprint {
        fingerprint_of(self.fingerprint_v2_settings())
    }

    /// The settings of [`Config::fingerprint_v2`], as `(key, value)` pairs in a fixed
    /// order: `cluster`, `groups` (each group as `ID:NAME`, sorted by id then name,
    /// comma-separated, e.g. `51:web-a,52:web-b`; a config without `[[group]]` has
    /// `N:default`, N = [`super::group_id_from_name`]`("default")`), `advert_interval_ms`
    /// and `quorum` (as in v1).
    pub fn fingerprint_v2_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("cluster", self.cluster.clone()),
            ("groups", groups_word(&self.groups, ",")),
            (
                "advert_interval_ms",
                ms(self.election.advert_interval).to_string(),
            ),
            ("quorum", quorum_word(self.election.quorum).to_string()),
        ]
    }

    /// Whether this config has the one implicit group of a file without `[[group]]`
    /// tables (or of quick mode): a single group named [`super::LEGACY_GROUP`], a name a
    /// `[[group]]` table cannot take. Such a config is compared and printed as before
    /// groups existed.
    pub fn has_implicit_group(&self) -> bool {
        matches!(self.groups.as_slice(), [g] if g.name == super::LEGACY_GROUP)
    }
    /// This configuration as a running agent applies it on reload: every setting that
    /// [`Setting::applies_live`] from `self`, the others from `running` (they wait for a
    /// restart). `running.election_changes(&result)` holds only live settings.
    ///
    /// Groups: a group added or removed waits for a restart (the running set stays); in a
    /// group present in both, its priority, preemption, track and notify come from `self`,
    /// its VIPs too when they use the same interfaces, and its routes stay as running.
    /// [`Config::vips`] follows the resulting groups.
    pub fn applied_over(&self, running: &Config) -> Config {
        let mut out = self.clone();
        out.cluster = running.cluster.clone();
        out.node.name = running.node.name.clone();
        out.node.interface = running.node.interface.clone();
        out.node.listen = running.node.listen;
        out.lease = running.lease;
        out.probe = running.probe.clone();
        out.witness = running.witness.clone();
        match (running.has_implicit_group(), self.has_implicit_group()) {
            (true, true) => {
                out.mover = running.mover.clone();
                out.groups = vec![implicit_group_of(&out)];
                return out;
            }
            (true, false) => {
                // Moving to [[group]] tables is a new group set: the implicit group stays
                // as running, with the new checks and hooks.
                out.node.priority = running.node.priority;
                out.election.preempt = running.election.preempt;
                out.election.preempt_delay = running.election.preempt_delay;
                let mut g = running.groups[0].clone();
                g.track = default_track(&out.checks);
                g.notify = out.notify.clone();
                out.groups = vec![g];
            }
            _ => {
                out.groups = running
                    .groups
                    .iter()
                    .map(|rg| {
                        let Some(ng) = self.groups.iter().find(|g| group_key(g) == group_key(rg))
                        else {
                            return rg.clone();
                        };
                        let same_interfaces = sorted_interfaces(rg) == sorted_interfaces(ng);
                        GroupConfig {
                            vips: if same_interfaces {
                                ng.vips.clone()
                            } else {
                                rg.vips.clone()
                            },
                            routes: rg.routes.clone(),
                            mover: rg.mover.clone(),
                            ..ng.clone()
                        }
                    })
                    .collect();
            }
        }
        out.vips = out.groups.iter().flat_map(GroupConfig::cidrs).collect();
        out
    }

    /// The settings that must be equal on every node of a cluster, as `(key, value)` pairs in
    /// a fixed order: `cluster` (its name), `vips` (the first group's, which is the one a
    /// wire-v1 peer takes part in; sorted by address, comma-separated, e.g.
    /// `192.0.2.100/24,192.0.2.101/32`), `advert_interval_ms` and `quorum` (`majority` or
    /// `off`). Two nodes whose lists differ are configured inconsistently; the daemon hashes
    /// and compares them.
    pub fn fingerprint_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("cluster", self.cluster.clone()),
            // A v1 peer takes part in the first group only (docs/wire-format.md).
            (
                "vips",
                vips_word(&self.groups.first().map(|g| g.cidrs()).unwrap_or_default()),
            ),
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
    ///
    /// When either config has `[[group]]` tables, `priority`, `vips`, `preempt` and
    /// `preempt_delay_ms` are compared per group instead (their node-wide keys are only
    /// defaults), and the group changes follow the node-wide ones: the group set
    /// ([`Setting::Groups`]), then for each group present in both, in the running order:
    /// priority, interface (its VIPs' interfaces, as a set), vips, preempt,
    /// preempt_delay_ms, routes, track, notify, each with `group` set.
    pub fn election_changes(&self, new: &Config) -> Vec<SettingChange> {
        let implicit = self.has_implicit_group() && new.has_implicit_group();
        let mut out = Vec::new();
        let mut diff = |setting: Setting, old: String, new: String| {
            if old != new && (implicit || !per_group(setting)) {
                out.push(SettingChange {
                    setting,
                    group: None,
                    old,
                    new,
                });
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
        diff(
            Setting::IgnoreArpFrom,
            macs_words(&self.probe.ignore_arp_from),
            macs_words(&new.probe.ignore_arp_from),
        );
        diff(
            Setting::Mover,
            mover_words(self.mover.as_ref()),
            mover_words(new.mover.as_ref()),
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
        if !implicit {
            self.group_changes(new, &mut out);
        }
        out
    }

    /// The group part of [`Config::election_changes`].
    fn group_changes(&self, new: &Config, out: &mut Vec<SettingChange>) {
        let old_word = groups_word(&self.groups, ", ");
        let new_word = groups_word(&new.groups, ", ");
        if old_word != new_word {
            out.push(SettingChange {
                setting: Setting::Groups,
                group: None,
                old: old_word,
                new: new_word,
            });
        }
        for og in &self.groups {
            let Some(ng) = new.groups.iter().find(|g| group_key(g) == group_key(og)) else {
                continue;
            };
            let mut diff = |setting: Setting, old: String, new: String| {
                if old != new {
                    out.push(SettingChange {
                        setting,
                        group: Some(og.name.clone()),
                        old,
                        new,
                    });
                }
            };
            diff(
                Setting::Priority,
                og.priority.to_string(),
                ng.priority.to_string(),
            );
            diff(
                Setting::Interface,
                sorted_interfaces(og).join(", "),
                sorted_interfaces(ng).join(", "),
            );
            let (ov, nv) = (sorted_vip_specs(&og.vips), sorted_vip_specs(&ng.vips));
            if ov != nv {
                let words =
                    |v: &[VipSpec]| v.iter().map(vip_spec_words).collect::<Vec<_>>().join(", ");
                diff(Setting::Vips, words(&og.vips), words(&ng.vips));
            }
            diff(
                Setting::Preempt,
                og.preempt.to_string(),
                ng.preempt.to_string(),
            );
            diff(
                Setting::PreemptDelayMs,
                ms(og.preempt_delay).to_string(),
                ms(ng.preempt_delay).to_string(),
            );
            diff(
                Setting::Mode,
                og.mode.as_str().to_string(),
                ng.mode.as_str().to_string(),
            );
            diff(
                Setting::Routes,
                list_or_none(sorted_routes(&og.routes), "; "),
                list_or_none(sorted_routes(&ng.routes), "; "),
            );
            diff(
                Setting::Track,
                list_or_none(track_words(&og.track), ", "),
                list_or_none(track_words(&ng.track), ", "),
            );
            diff(
                Setting::Notify,
                notify_words(&og.notify),
                notify_words(&ng.notify),
            );
            diff(
                Setting::Mover,
                mover_words(og.mover.as_ref()),
                mover_words(ng.mover.as_ref()),
            );
        }
    }
}

/// The node-wide settings that are only group defaults once `[[group]]` tables exist.
fn per_group(setting: Setting) -> bool {
    matches!(
        setting,
        Setting::Priority
            | Setting::Vips
            | Setting::Preempt
            | Setting::PreemptDelayMs
            | Setting::Mover
    )
}

fn fingerprint_of(settings: Vec<(&'static str, String)>) -> Fingerprint {
    let mut words = [0u32; 4];
    let mut names = Vec::new();
    for (word, (name, value)) in words.iter_mut().zip(settings) {
        *word = word_of(&value);
        names.push(name);
    }
    Fingerprint { words, names }
}

impl GroupConfig {
    /// This group's VIPs as one word for the v2 advert's group entry: the first 4 bytes,
    /// big endian, of the SHA-256 of the VIPs sorted by address, `ADDR/PREFIX`,
    /// comma-separated, the text of the v1 `vips` word (so a config without `[[group]]`
    /// has its v1 `vips` word here). Interfaces, labels and scopes are node-local and not
    /// part of it.
    pub fn vips_fingerprint(&self) -> u32 {
        word_of(&vips_word(&self.cidrs()))
    }
}
