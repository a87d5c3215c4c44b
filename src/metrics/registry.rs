//! The registry: every metric family, created once in [`Metrics::new`], with the cheap setters
//! the daemon loop calls and [`Metrics::encode`] for a scrape.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::labels::{
    CauseLabels, CertLabels, CheckLabels, DriftLabels, GroupKindLabels, GroupLabels,
    GroupProtocolLabels, GroupStateLabels, InfoLabels, KindLabels, MoverActionLabels,
    MoverRunLabels, PeerLabels, ReasonLabels, RejectReason, StateLabels, TransitionLabels,
};
use crate::election::{Cause, NoticeCause};
use crate::wire::State;

/// A gauge holding seconds as a float.
type SecondsGauge = Gauge<f64, AtomicU64>;

/// Most VIP groups that get `haagent_group_*` and `haagent_route_*` series: the label
/// values stay bounded whatever the configuration holds. Groups beyond it (by index) are
/// logged once at construction and their setters do nothing.
pub const MAX_GROUPS: usize = 64;

/// The series of one VIP group, created once in [`Metrics::with_groups`].
struct GroupSeries {
    /// The group's name (the `group` label of the series made later).
    name: String,
    /// One gauge per entry of [`State::ALL`], same order.
    state: [Gauge; 4],
    priority_base: Gauge,
    priority_effective: Gauge,
    epoch: Gauge<u64, AtomicU64>,
    transitions: Counter,
    routes_installed: Gauge,
    route_failures: Counter,
    /// `[claim, release]` × `[ok, failed]`.
    mover_runs: [[Counter; 2]; 2],
    /// `[claim, release]`.
    mover_duration: [SecondsGauge; 2],
    /// The BGP protocols that have a `haagent_route_exported` series now.
    exported_protocols: std::sync::Mutex<Vec<String>>,
}

/// The `action` label values of the mover families, in [`GroupSeries::mover_runs`] order.
const MOVER_ACTIONS: [crate::mover::MoverAction; 2] = [
    crate::mover::MoverAction::Claim,
    crate::mover::MoverAction::Release,
];
/// The `outcome` label values of `haagent_mover_runs_total`, in order.
const MOVER_OUTCOMES: [&str; 2] = ["ok", "failed"];
/// The `kind` label values of `haagent_arp_ignored_total`, in order.
const ARP_IGNORED_KINDS: [&str; 2] = ["probe_answer", "conflict"];

/// Every metric the agent exports. Create once with [`Metrics::new`], share as `Arc<Metrics>`.
///
/// All setters are cheap (atomics, plus a read lock on a label family) and never fail.
pub struct Metrics {
    registry: Registry,
    /// One gauge per entry of [`State::ALL`], same order.
    state: [Gauge; 4],
    epoch: Gauge<u64, AtomicU64>,
    priority_base: Gauge,
    priority_effective: Gauge,
    transitions: Family<TransitionLabels, Counter>,
    notices: Family<CauseLabels, Counter>,
    adverts_sent: Counter,
    adverts_received: Family<PeerLabels, Counter>,
    adverts_rejected: Family<ReasonLabels, Counter>,
    peer_rtt: Family<PeerLabels, SecondsGauge>,
    peer_last_seen: Family<PeerLabels, SecondsGauge>,
    peer_up: Family<PeerLabels, Gauge>,
    check_up: Family<CheckLabels, Gauge>,
    check_latency: Family<CheckLabels, SecondsGauge>,
    garp_sent: Counter,
    /// The announcer's running total at the last [`Metrics::set_garps_sent`].
    garp_last_total: AtomicU64,
    vip_conflicts: Counter,
    /// By [`ARP_IGNORED_KINDS`].
    arp_ignored: [Counter; 2],
    claim_blocked: SecondsGauge,
    cert_expiry: Family<CertLabels, Gauge>,
    cert_expiry_days: Family<CertLabels, Gauge>,
    /// Every certificate's notAfter (Unix seconds) by label, to recount the days.
    cert_not_after: std::sync::Mutex<std::collections::BTreeMap<String, i64>>,
    config_drift: Family<DriftLabels, Gauge>,
    /// Per VIP group, by the group's index in the configuration (at most [`MAX_GROUPS`]).
    groups: Vec<GroupSeries>,
    /// `haagent_route_exported{group,protocol}`: only groups with a `bird_socket`.
    route_exported: Family<GroupProtocolLabels, Gauge>,
    /// `haagent_route_export_ok{group}`: likewise.
    route_export_ok: Family<GroupLabels, Gauge>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates the registry for node `node`: `haagent_info{node, version} 1`, every state
    /// gauge at 0, and every bounded rejection reason at 0 (so `rate()` works from the start).
    /// No VIP group has series of its own: see [`Metrics::with_groups`].
    pub fn new(node: &str) -> Arc<Metrics> {
        Self::with_groups(node, &[])
    }

    /// Like [`Metrics::new`], plus the series of each VIP group in `groups` (their
    /// configured names, in configuration order; the index in this slice is the `group`
    /// argument of the per-group setters): `haagent_group_state{group,state}` (all 0),
    /// `haagent_group_priority{group,kind}`, `haagent_group_epoch{group}`,
    /// `haagent_group_transitions_total{group}`, `haagent_route_installed{group}` and
    /// `haagent_route_failures_total{group}`, all starting at 0. Only the first
    /// [`MAX_GROUPS`] groups get series (the rest is logged as a warning). The node-level
    /// series (`haagent_state`, `haagent_epoch`, …) are unchanged; the daemon feeds them
    /// from the first group.
    pub fn with_groups(node: &str, groups: &[String]) -> Arc<Metrics> {
        let mut root = Registry::default();

        // `Info` encodes as `haagent_info{..} 1` with `# TYPE haagent info`; Prometheus ingests
        // it as a gauge. It sits in the root registry because the encoder appends `_info` to
        // the name; every other metric lives under the `haagent_` prefix.
        root.register(
            "haagent",
            "Static facts about this agent; always 1",
            Info::new(InfoLabels {
                node: node.to_owned(),
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let registry = root.sub_registry_with_prefix("haagent");

        let state_family = Family::<StateLabels, Gauge>::default();
        let state =
            State::ALL.map(|s| state_family.get_or_create_owned(&StateLabels { state: s.label() }));
        registry.register(
            "state",
            "Current election state: 1 for the current one, 0 for the others",
            state_family,
        );

        let epoch = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "epoch",
            "Election epoch this node currently believes in",
            epoch.clone(),
        );

        let priority = Family::<KindLabels, Gauge>::default();
        let priority_base = priority.get_or_create_owned(&KindLabels { kind: "base" });
        let priority_effective = priority.get_or_create_owned(&KindLabels { kind: "effective" });
        registry.register(
            "priority",
            "VRRP priority: configured base and effective (after health-check penalties)",
            priority,
        );

        let transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "transitions",
            "State transitions by target state and cause",
            transitions.clone(),
        );

        let notices = Family::<CauseLabels, Counter>::default();
        for cause in NoticeCause::ALL {
            notices.get_or_create_owned(&CauseLabels {
                cause: cause.label(),
            });
        }
        registry.register(
            "notices",
            "Election decisions that changed no state (a claim blocked by an ARP probe answer, \
             no quorum to take over, a VIP conflict, a handover started or refused), by cause",
            notices.clone(),
        );

        let adverts_sent = Counter::default();
        registry.register(
            "adverts_sent",
            "Priority adverts sent to peers",
            adverts_sent.clone(),
        );

        let adverts_received = Family::<PeerLabels, Counter>::default();
        registry.register(
            "adverts_received",
            "Valid priority adverts received, by peer",
            adverts_received.clone(),
        );

        let adverts_rejected = Family::<ReasonLabels, Counter>::default();
        for reason in RejectReason::all() {
            let reason = reason.label();
            adverts_rejected.get_or_create_owned(&ReasonLabels { reason });
        }
        registry.register(
            "adverts_rejected",
            "Adverts or peer connections rejected, by bounded reason",
            adverts_rejected.clone(),
        );

        let peer_rtt = Family::<PeerLabels, SecondsGauge>::default();
        registry.register_with_unit(
            "peer_rtt",
            "Last measured round-trip time to the peer",
            Unit::Seconds,
            peer_rtt.clone(),
        );

        let peer_last_seen = Family::<PeerLabels, SecondsGauge>::default();
        registry.register_with_unit(
            "peer_last_seen",
            "Time since the last valid advert from the peer (an age, not a timestamp)",
            Unit::Seconds,
            peer_last_seen.clone(),
        );

        let peer_up = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "peer_up",
            "1 if the peer is reachable and sending adverts, else 0",
            peer_up.clone(),
        );

        let check_up = Family::<CheckLabels, Gauge>::default();
        registry.register(
            "check_up",
            "1 if the health check passes, else 0",
            check_up.clone(),
        );

        let check_latency = Family::<CheckLabels, SecondsGauge>::default();
        registry.register_with_unit(
            "check_latency",
            "Duration of the last run of the health check",
            Unit::Seconds,
            check_latency.clone(),
        );

        let garp_sent = Counter::default();
        registry.register(
            "garp_sent",
            "Gratuitous ARP frames sent for the VIPs",
            garp_sent.clone(),
        );

        let vip_conflicts = Counter::default();
        registry.register(
            "vip_conflicts",
            "Times another host was seen answering for one of our VIPs",
            vip_conflicts.clone(),
        );

        let arp_ignored_family = Family::<KindLabels, Counter>::default();
        let arp_ignored = ARP_IGNORED_KINDS
            .map(|kind| arp_ignored_family.get_or_create_owned(&KindLabels { kind }));
        registry.register(
            "arp_ignored",
            "ARP frames from a MAC in [vip] ignore_arp_from, not taken as evidence of a holder: \
             kind probe_answer (an answer to our probe) or conflict (a frame for our VIP while \
             master)",
            arp_ignored_family,
        );

        let claim_blocked = SecondsGauge::default();
        registry.register_with_unit(
            "claim_blocked",
            "How long ARP probe answers have kept this backup from claiming the VIPs after \
             master-down (0 when not blocked)",
            Unit::Seconds,
            claim_blocked.clone(),
        );

        let cert_expiry = Family::<CertLabels, Gauge>::default();
        registry.register_with_unit(
            "cert_expiry_timestamp",
            "Certificate notAfter as a Unix timestamp",
            Unit::Seconds,
            cert_expiry.clone(),
        );
        let cert_expiry_days = Family::<CertLabels, Gauge>::default();
        registry.register(
            "cert_expiry_days",
            "Whole days until the certificate expires (negative once expired; the agent warns \
             from 30)",
            cert_expiry_days.clone(),
        );

        let config_drift = Family::<DriftLabels, Gauge>::default();
        registry.register(
            "config_drift",
            "1 if the peer reports a different value for the setting, else 0",
            config_drift.clone(),
        );

        if groups.len() > MAX_GROUPS {
            tracing::warn!(
                groups = groups.len(),
                max = MAX_GROUPS,
                "too many VIP groups for per-group metrics: only the first {MAX_GROUPS} get series"
            );
        }
        let groups = group_series(registry, &groups[..groups.len().min(MAX_GROUPS)]);

        let route_exported = Family::<GroupProtocolLabels, Gauge>::default();
        registry.register(
            "route_exported",
            "1 while the node's BIRD exports every VIP of the routed group to the BGP protocol, \
             else 0 (also while BIRD cannot be asked); groups with a bird_socket only",
            route_exported.clone(),
        );
        let route_export_ok = Family::<GroupLabels, Gauge>::default();
        registry.register(
            "route_export_ok",
            "1 while the last birdc check of the routed group's bird_socket succeeded, else 0; \
             groups with a bird_socket only",
            route_export_ok.clone(),
        );

        Arc::new(Metrics {
            registry: root,
            state,
            epoch,
            priority_base,
            priority_effective,
            transitions,
            notices,
            adverts_sent,
            adverts_received,
            adverts_rejected,
            peer_rtt,
            peer_last_seen,
            peer_up,
            check_up,
            check_latency,
            garp_sent,
            garp_last_total: AtomicU64::new(0),
            vip_conflicts,
            arp_ignored,
            claim_blocked,
            cert_expiry,
            cert_expiry_days,
            cert_not_after: std::sync::Mutex::default(),
            config_drift,
            groups,
            route_exported,
            route_export_ok,
        })
    }

    /// How many VIP groups have series (at most [`MAX_GROUPS`]).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Sets `haagent_group_state{group,state}` of group index `group`: 1 for `state`, 0 for
    /// the other three. An index without series (≥ [`Metrics::group_count`]) does nothing,
    /// as in every per-group setter.
    pub fn set_group_state(&self, group: usize, state: State) {
        if let Some(g) = self.groups.get(group) {
            for (s, gauge) in State::ALL.iter().zip(&g.state) {
                gauge.set(i64::from(*s == state));
            }
        }
    }

    /// Sets `haagent_group_priority{group,kind="base"}` (this node's configured priority in
    /// the group, 1..=254) and `{kind="effective"}` (advertised, 0..=255).
    pub fn set_group_priority(&self, group: usize, base: u8, effective: u8) {
        if let Some(g) = self.groups.get(group) {
            g.priority_base.set(i64::from(base));
            g.priority_effective.set(i64::from(effective));
        }
    }

    /// Sets `haagent_group_epoch{group}`.
    pub fn set_group_epoch(&self, group: usize, epoch: u64) {
        if let Some(g) = self.groups.get(group) {
            g.epoch.set(epoch);
        }
    }

    /// Counts a state transition of the group in `haagent_group_transitions_total{group}`
    /// (the node-level `haagent_transitions_total{to,reason}` keeps the causes).
    pub fn group_transition(&self, group: usize) {
        if let Some(g) = self.groups.get(group) {
            g.transitions.inc();
        }
    }

    /// Sets `haagent_route_installed{group}`: 1 while every route of the group is in the
    /// kernel's table, else 0 (also 0 for a group without routes or that is not master).
    pub fn set_routes_installed(&self, group: usize, installed: bool) {
        if let Some(g) = self.groups.get(group) {
            g.routes_installed.set(i64::from(installed));
        }
    }

    /// Counts a route of the group that failed to install
    /// (`haagent_route_failures_total{group}`), one per failed netlink request.
    pub fn route_failure(&self, group: usize) {
        if let Some(g) = self.groups.get(group) {
            g.route_failures.inc();
        }
    }

    /// Sets `haagent_route_exported{group,protocol}` of group index `group` to 1 for each
    /// `(protocol, true)` and 0 for each `(protocol, false)` in `protocols` (BGP protocol
    /// names of the node's BIRD; the caller bounds them, [`crate::bird::MAX_PROTOCOLS`]),
    /// and removes the group's series of protocols not in the list.
    pub fn set_route_exported(&self, group: usize, protocols: &[(&str, bool)]) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let Ok(mut known) = g.exported_protocols.lock() else {
            return;
        };
        let labels = |protocol: &str| GroupProtocolLabels {
            group: g.name.clone(),
            protocol: protocol.to_owned(),
        };
        for gone in known
            .iter()
            .filter(|k| !protocols.iter().any(|(p, _)| p == k))
        {
            self.route_exported.remove(&labels(gone));
        }
        for (protocol, exported) in protocols {
            self.route_exported
                .get_or_create(&labels(protocol))
                .set(i64::from(*exported));
        }
        *known = protocols.iter().map(|(p, _)| (*p).to_owned()).collect();
    }

    /// Sets `haagent_route_export_ok{group}`: 1 when the last check of the group's BIRD
    /// succeeded, 0 when it failed.
    pub fn set_route_export_ok(&self, group: usize, ok: bool) {
        if let Some(g) = self.groups.get(group) {
            let labels = GroupLabels {
                group: g.name.clone(),
            };
            self.route_export_ok
                .get_or_create(&labels)
                .set(i64::from(ok));
        }
    }

    /// Removes the group's `haagent_route_exported` and `haagent_route_export_ok` series
    /// (its BIRD is no longer watched).
    pub fn clear_route_export(&self, group: usize) {
        self.set_route_exported(group, &[]);
        if let Some(g) = self.groups.get(group) {
            self.route_export_ok.remove(&GroupLabels {
                group: g.name.clone(),
            });
        }
    }

    /// Sets `haagent_state{state}`: 1 for `state`, 0 for the other three of
    /// init/backup/master/fault.
    pub fn set_state(&self, state: State) {
        for (s, gauge) in State::ALL.iter().zip(&self.state) {
            gauge.set(i64::from(*s == state));
        }
    }

    /// Sets `haagent_epoch`.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.set(epoch);
    }

    /// Sets `haagent_priority{kind="base"}` and `{kind="effective"}`.
    pub fn set_priority(&self, base: u8, effective: u8) {
        self.priority_base.set(i64::from(base));
        self.priority_effective.set(i64::from(effective));
    }

    /// Counts a transition in `haagent_transitions_total{to, reason}`; `reason` is
    /// [`Cause::label`].
    pub fn transition(&self, to: State, cause: Cause) {
        let labels = TransitionLabels {
            to: to.label(),
            reason: cause.label(),
        };
        self.transitions.get_or_create(&labels).inc();
    }

    /// Counts a decision that changed no state in `haagent_notices_total{cause}`.
    pub fn notice(&self, cause: NoticeCause) {
        let labels = CauseLabels {
            cause: cause.label(),
        };
        self.notices.get_or_create(&labels).inc();
    }

    /// Counts an advert sent (`haagent_adverts_sent_total`).
    pub fn advert_sent(&self) {
        self.adverts_sent.inc();
    }

    /// Counts a valid advert from `peer` (`haagent_adverts_received_total{peer}`).
    pub fn advert_received(&self, peer: &str) {
        self.adverts_received
            .get_or_create(&peer_labels(peer))
            .inc();
    }

    /// Counts a rejected advert or connection (`haagent_adverts_rejected_total{reason}`).
    pub fn advert_rejected(&self, reason: RejectReason) {
        let labels = ReasonLabels {
            reason: reason.label(),
        };
        self.adverts_rejected.get_or_create(&labels).inc();
    }

    /// Updates `haagent_peer_rtt_seconds{peer}`, `haagent_peer_last_seen_seconds{peer}` (the age
    /// of the last advert) and `haagent_peer_up{peer}`. `None` (not measured yet, or never
    /// seen) removes that series instead of exporting a made-up number.
    pub fn peer(
        &self,
        peer: &str,
        rtt: Option<Duration>,
        last_seen_age: Option<Duration>,
        up: bool,
    ) {
        let labels = peer_labels(peer);
        set_or_remove(&self.peer_rtt, &labels, rtt);
        set_or_remove(&self.peer_last_seen, &labels, last_seen_age);
        self.peer_up.get_or_create(&labels).set(i64::from(up));
    }

    /// Updates `haagent_check_up{check}` and `haagent_check_latency_seconds{check}` (`None`
    /// removes the latency series, e.g. for a check that timed out without a measurement).
    pub fn check(&self, check: &str, healthy: bool, latency: Option<Duration>) {
        let labels = CheckLabels {
            check: check.to_owned(),
        };
        self.check_up.get_or_create(&labels).set(i64::from(healthy));
        set_or_remove(&self.check_latency, &labels, latency);
    }

    /// Feeds `haagent_garp_sent_total` from the announcer's running total: the counter grows by
    /// the difference to the previous call. A total smaller than the previous one means the
    /// announcer started counting again from zero; the whole new total is then added.
    pub fn set_garps_sent(&self, total: u64) {
        let previous = self.garp_last_total.swap(total, Ordering::Relaxed);
        let delta = if total >= previous {
            total - previous
        } else {
            total
        };
        if delta > 0 {
            self.garp_sent.inc_by(delta);
        }
    }

    /// Sets `haagent_claim_blocked_seconds`: how long probe answers have blocked our claim,
    /// 0 when they do not.
    pub fn set_claim_blocked(&self, blocked_for: Option<Duration>) {
        self.claim_blocked
            .set(blocked_for.map_or(0.0, |d| d.as_secs_f64()));
    }

    /// Counts `frames` ARP frames from a MAC in `[vip] ignore_arp_from` that was not taken as
    /// evidence of a holder (`haagent_arp_ignored_total{kind}`): `conflict` for a frame
    /// seen while master, else `probe_answer`.
    pub fn arp_ignored(&self, conflict: bool, frames: u64) {
        self.arp_ignored[usize::from(conflict)].inc_by(frames);
    }

    /// Counts a finished mover run of group `group` (`haagent_mover_runs_total{group,
    /// action, outcome}`, outcome `ok` when an attempt succeeded, else `failed`) and sets
    /// `haagent_mover_duration_seconds{group,action}` to how long it took, retries included.
    pub fn mover_run(
        &self,
        group: usize,
        action: crate::mover::MoverAction,
        ok: bool,
        took: Duration,
    ) {
        if let Some(g) = self.groups.get(group) {
            let a = usize::from(action == crate::mover::MoverAction::Release);
            g.mover_runs[a][usize::from(!ok)].inc();
            g.mover_duration[a].set(took.as_secs_f64());
        }
    }

    /// Counts a VIP conflict (`haagent_vip_conflicts_total`).
    pub fn vip_conflict(&self) {
        self.vip_conflicts.inc();
    }

    /// Sets `haagent_cert_expiry_timestamp_seconds{cert=which}` (`"node"`, `"ca"`,
    /// `"peer:NAME"`) to the certificate's notAfter in Unix seconds.
    /// Also sets `haagent_cert_expiry_days{cert=which}`, which
    /// [`Metrics::refresh_cert_days`] keeps counting down.
    pub fn set_cert_expiry(&self, which: &str, not_after_unix: i64) {
        let labels = CertLabels {
            cert: which.to_owned(),
        };
        self.cert_expiry.get_or_create(&labels).set(not_after_unix);
        self.cert_not_after
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(which.to_owned(), not_after_unix);
        self.refresh_cert_days(std::time::SystemTime::now());
    }

    /// Recounts `haagent_cert_expiry_days` for every certificate set so far, at `now`.
    pub fn refresh_cert_days(&self, now: std::time::SystemTime) {
        let known = self
            .cert_not_after
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (which, not_after) in known {
            let at =
                std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(not_after).unwrap_or(0));
            let labels = CertLabels { cert: which };
            self.cert_expiry_days
                .get_or_create(&labels)
                .set(crate::certs::days_left(at, now));
        }
    }

    /// Sets `haagent_config_drift{peer, setting}` to 1 if the peer's value differs, else 0.
    pub fn config_drift(&self, peer: &str, setting: &str, differs: bool) {
        let labels = DriftLabels {
            peer: peer.to_owned(),
            setting: setting.to_owned(),
        };
        self.config_drift
            .get_or_create(&labels)
            .set(i64::from(differs));
    }

    /// Renders every metric as OpenMetrics text, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing into a String cannot fail; a metric's own encoder could. Still end the
            // exposition properly so scrapers see a complete (if partial) answer.
            tracing::warn!(%error, "encoding metrics failed");
            if !out.ends_with("# EOF\n") {
                out.push_str("# EOF\n");
            }
        }
        out
    }
}

/// Registers the per-group families in `registry` and creates the series of `names`.
fn group_series(registry: &mut Registry, names: &[String]) -> Vec<GroupSeries> {
    let state = Family::<GroupStateLabels, Gauge>::default();
    let priority = Family::<GroupKindLabels, Gauge>::default();
    let epoch = Family::<GroupLabels, Gauge<u64, AtomicU64>>::default();
    let transitions = Family::<GroupLabels, Counter>::default();
    let routes_installed = Family::<GroupLabels, Gauge>::default();
    let route_failures = Family::<GroupLabels, Counter>::default();
    let mover_runs = Family::<MoverRunLabels, Counter>::default();
    let mover_duration = Family::<MoverActionLabels, SecondsGauge>::default();
    let series = names
        .iter()
        .map(|name| {
            let group = || GroupLabels {
                group: name.clone(),
            };
            let kind = |kind| GroupKindLabels {
                group: name.clone(),
                kind,
            };
            GroupSeries {
                name: name.clone(),
                exported_protocols: std::sync::Mutex::new(Vec::new()),
                state: State::ALL.map(|s| {
                    state.get_or_create_owned(&GroupStateLabels {
                        group: name.clone(),
                        state: s.label(),
                    })
                }),
                priority_base: priority.get_or_create_owned(&kind("base")),
                priority_effective: priority.get_or_create_owned(&kind("effective")),
                epoch: epoch.get_or_create_owned(&group()),
                transitions: transitions.get_or_create_owned(&group()),
                routes_installed: routes_installed.get_or_create_owned(&group()),
                route_failures: route_failures.get_or_create_owned(&group()),
                mover_runs: MOVER_ACTIONS.map(|a| {
                    MOVER_OUTCOMES.map(|outcome| {
                        mover_runs.get_or_create_owned(&MoverRunLabels {
                            group: name.clone(),
                            action: a.label(),
                            outcome,
                        })
                    })
                }),
                mover_duration: MOVER_ACTIONS.map(|a| {
                    mover_duration.get_or_create_owned(&MoverActionLabels {
                        group: name.clone(),
                        action: a.label(),
                    })
                }),
            }
        })
        .collect();
    registry.register(
        "group_state",
        "Election state of each VIP group: 1 for the current one, 0 for the others",
        state,
    );
    registry.register(
        "group_priority",
        "This node's priority in each VIP group: configured base and effective (after the \
         penalties of the checks the group tracks)",
        priority,
    );
    registry.register("group_epoch", "Election epoch of each VIP group", epoch);
    registry.register(
        "group_transitions",
        "State transitions of each VIP group",
        transitions,
    );
    registry.register(
        "route_installed",
        "1 while every route of the VIP group is in the kernel's table, else 0",
        routes_installed,
    );
    registry.register(
        "route_failures",
        "Routes of the VIP group that failed to install",
        route_failures,
    );
    registry.register(
        "mover_runs",
        "Finished runs of the VIP group's cloud mover ([group.mover]), by action (claim, \
         release) and outcome (ok: an attempt succeeded; failed: every attempt failed)",
        mover_runs,
    );
    registry.register_with_unit(
        "mover_duration",
        "How long the VIP group's latest mover run of each action took, retries included",
        Unit::Seconds,
        mover_duration,
    );
    series
}

fn peer_labels(peer: &str) -> PeerLabels {
    PeerLabels {
        peer: peer.to_owned(),
    }
}

/// Sets the seconds gauge for `labels`, or removes the series when `value` is `None`.
fn set_or_remove<S>(family: &Family<S, SecondsGauge>, labels: &S, value: Option<Duration>)
where
    S: Clone + std::hash::Hash + Eq,
{
    match value {
        Some(d) => {
            family.get_or_create(labels).set(d.as_secs_f64());
        }
        None => {
            family.remove(labels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::AdmissionKind;

    /// Sample lines (no comments) of the exposition.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn metrics_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Metrics>();
    }

    #[test]
    fn fresh_registry_has_info_states_and_ends_with_eof() {
        let m = Metrics::new("n1");
        let text = m.encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        let info = format!(
            "haagent_info{{node=\"n1\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(has_line(&text, &info), "{text}");
        for s in State::ALL {
            assert!(
                has_line(&text, &format!("haagent_state{{state=\"{s}\"}} 0")),
                "{text}"
            );
        }
        // Rejection reasons start at zero so rate() works before the first rejection.
        assert!(has_line(
            &text,
            "haagent_adverts_rejected_total{reason=\"tls_expired\"} 0"
        ));
        // The node name is not repeated on every series.
        assert_eq!(text.matches("node=").count(), 1, "{text}");
        for line in samples(&text) {
            assert!(line.starts_with("haagent_"), "{line}");
        }
    }

    #[test]
    fn state_is_one_hot() {
        let m = Metrics::new("n1");
        m.set_state(State::Master);
        m.set_state(State::Backup);
        let text = m.encode();
        assert!(has_line(&text, "haagent_state{state=\"backup\"} 1"));
        assert!(has_line(&text, "haagent_state{state=\"master\"} 0"));
        for state in State::ALL {
            m.set_state(state);
            let text = m.encode();
            let on: Vec<_> = samples(&text)
                .into_iter()
                .filter(|l| l.starts_with("haagent_state{") && l.ends_with(" 1"))
                .collect();
            assert_eq!(on, vec![format!("haagent_state{{state=\"{state}\"}} 1")]);
        }
    }

    #[test]
    fn counters_use_total_suffix_and_units_use_seconds() {
        let m = Metrics::new("n1");
        m.advert_sent();
        m.advert_sent();
        m.advert_received("n2");
        m.vip_conflict();
        m.transition(State::Master, Cause::MasterDown);
        m.transition(State::Master, Cause::Handover);
        m.transition(State::Backup, Cause::Handover);
        let text = m.encode();
        assert!(
            has_line(&text, "# TYPE haagent_adverts_sent counter"),
            "{text}"
        );
        assert!(has_line(&text, "haagent_adverts_sent_total 2"), "{text}");
        assert!(has_line(
            &text,
            "haagent_adverts_received_total{peer=\"n2\"} 1"
        ));
        assert!(has_line(&text, "haagent_vip_conflicts_total 1"));
        assert!(has_line(
            &text,
            "haagent_transitions_total{to=\"master\",reason=\"master_down\"} 1"
        ));
        assert!(has_line(
            &text,
            "haagent_transitions_total{to=\"master\",reason=\"handover\"} 1"
        ));
        assert!(has_line(
            &text,
            "haagent_transitions_total{to=\"backup\",reason=\"handover\"} 1"
        ));
    }

    /// The label sets are the enums: every cause, notice and rejection reason is exported
    /// under its own label, and nothing becomes `other`.
    #[test]
    fn every_cause_notice_and_rejection_is_exported_under_its_label() {
        let m = Metrics::new("n1");
        let text = m.encode();
        for cause in NoticeCause::ALL {
            let line = format!("haagent_notices_total{{cause=\"{}\"}} 0", cause.label());
            assert!(has_line(&text, &line), "{line} missing:\n{text}");
        }
        for cause in Cause::ALL {
            m.transition(State::Backup, cause);
        }
        for cause in NoticeCause::ALL {
            m.notice(cause);
        }
        for reason in RejectReason::all() {
            m.advert_rejected(reason);
        }
        let text = m.encode();
        for cause in Cause::ALL {
            let line = format!(
                "haagent_transitions_total{{to=\"backup\",reason=\"{}\"}} 1",
                cause.label()
            );
            assert!(has_line(&text, &line), "{line} missing:\n{text}");
        }
        for cause in NoticeCause::ALL {
            let line = format!("haagent_notices_total{{cause=\"{}\"}} 1", cause.label());
            assert!(has_line(&text, &line), "{line} missing:\n{text}");
        }
        for reason in RejectReason::all() {
            let line = format!(
                "haagent_adverts_rejected_total{{reason=\"{}\"}} 1",
                reason.label()
            );
            assert!(has_line(&text, &line), "{line} missing:\n{text}");
        }
        // The transport's catch-all kind is the only "other".
        assert_eq!(text.matches("\"other\"").count(), 1, "{text}");
    }

    #[test]
    fn gauges_carry_their_values() {
        let m = Metrics::new("n1");
        m.set_epoch(42);
        m.set_priority(100, 50);
        m.peer(
            "n2",
            Some(Duration::from_micros(1500)),
            Some(Duration::from_millis(250)),
            true,
        );
        m.check("gw", false, Some(Duration::from_millis(20)));
        m.set_cert_expiry("peer:n2", 1_900_000_000);
        m.config_drift("n2", "advert_interval", true);
        m.config_drift("n2", "vip", false);
        let text = m.encode();
        for line in [
            "haagent_epoch 42",
            "haagent_priority{kind=\"base\"} 100",
            "haagent_priority{kind=\"effective\"} 50",
            "haagent_peer_rtt_seconds{peer=\"n2\"} 0.0015",
            "haagent_peer_last_seen_seconds{peer=\"n2\"} 0.25",
            "haagent_peer_up{peer=\"n2\"} 1",
            "haagent_check_up{check=\"gw\"} 0",
            "haagent_check_latency_seconds{check=\"gw\"} 0.02",
            "haagent_cert_expiry_timestamp_seconds{cert=\"peer:n2\"} 1900000000",
            "haagent_config_drift{peer=\"n2\",setting=\"advert_interval\"} 1",
            "haagent_config_drift{peer=\"n2\",setting=\"vip\"} 0",
        ] {
            assert!(has_line(&text, line), "missing {line:?} in\n{text}");
        }
        // Families with a unit declare it (OpenMetrics `# UNIT`).
        assert!(
            has_line(&text, "# UNIT haagent_peer_rtt_seconds seconds"),
            "{text}"
        );
        assert!(has_line(
            &text,
            "# UNIT haagent_cert_expiry_timestamp_seconds seconds"
        ));
    }

    #[test]
    fn certificate_days_count_down() {
        let m = Metrics::new("n1");
        let now = std::time::SystemTime::now();
        let in_days = |d: u64| {
            i64::try_from(
                (now + Duration::from_secs(d * 86_400 + 3600))
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            )
            .unwrap()
        };
        m.set_cert_expiry("node", in_days(40));
        assert!(has_line(
            &m.encode(),
            "haagent_cert_expiry_days{cert=\"node\"} 40"
        ));
        m.refresh_cert_days(now + Duration::from_secs(15 * 86_400));
        assert!(has_line(
            &m.encode(),
            "haagent_cert_expiry_days{cert=\"node\"} 25"
        ));
    }

    #[test]
    fn unknown_measurements_remove_the_series() {
        let m = Metrics::new("n1");
        m.peer(
            "n2",
            Some(Duration::from_millis(1)),
            Some(Duration::ZERO),
            true,
        );
        m.peer("n2", None, None, false);
        let text = m.encode();
        assert!(!text.contains("haagent_peer_rtt_seconds{"), "{text}");
        assert!(!text.contains("haagent_peer_last_seen_seconds{"), "{text}");
        assert!(has_line(&text, "haagent_peer_up{peer=\"n2\"} 0"));
    }

    #[test]
    fn garp_counter_follows_running_total_and_survives_reset() {
        let m = Metrics::new("n1");
        m.set_garps_sent(3);
        m.set_garps_sent(3);
        m.set_garps_sent(5);
        assert!(has_line(&m.encode(), "haagent_garp_sent_total 5"));
        // The announcer restarted and has sent 2 since: the counter never goes down.
        m.set_garps_sent(2);
        assert!(has_line(&m.encode(), "haagent_garp_sent_total 7"));
    }

    /// docs/metrics.md lists every label value the enums can produce.
    #[test]
    fn the_metrics_doc_lists_every_label() {
        let doc = include_str!("../../docs/metrics.md");
        let labels = Cause::ALL
            .iter()
            .map(|c| c.label())
            .chain(NoticeCause::ALL.iter().map(|c| c.label()))
            .chain(RejectReason::all().map(RejectReason::label));
        for label in labels {
            assert!(doc.contains(&format!("| `{label}` |")), "{label} missing");
        }
    }

    fn two_groups() -> Arc<Metrics> {
        Metrics::with_groups("n1", &["web-a".to_string(), "web-b".to_string()])
    }

    #[test]
    fn every_group_starts_with_its_series_at_zero() {
        let text = two_groups().encode();
        for g in ["web-a", "web-b"] {
            for s in State::ALL {
                let line = format!("haagent_group_state{{group=\"{g}\",state=\"{s}\"}} 0");
                assert!(has_line(&text, &line), "{line} missing:\n{text}");
            }
            for line in [
                format!("haagent_group_priority{{group=\"{g}\",kind=\"base\"}} 0"),
                format!("haagent_group_priority{{group=\"{g}\",kind=\"effective\"}} 0"),
                format!("haagent_group_epoch{{group=\"{g}\"}} 0"),
                format!("haagent_group_transitions_total{{group=\"{g}\"}} 0"),
                format!("haagent_route_installed{{group=\"{g}\"}} 0"),
                format!("haagent_route_failures_total{{group=\"{g}\"}} 0"),
            ] {
                assert!(has_line(&text, &line), "{line} missing:\n{text}");
            }
        }
        for (name, kind) in [
            ("haagent_group_state", "gauge"),
            ("haagent_group_priority", "gauge"),
            ("haagent_group_epoch", "gauge"),
            ("haagent_group_transitions", "counter"),
            ("haagent_route_installed", "gauge"),
            ("haagent_route_failures", "counter"),
        ] {
            assert!(
                has_line(&text, &format!("# TYPE {name} {kind}")),
                "{name} {kind}:\n{text}"
            );
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} "))),
                "{name} has no help:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }

    /// The setters of one group move that group's series only, and the node-level
    /// series stay as they were.
    #[test]
    fn group_setters_touch_their_group_only() {
        let m = two_groups();
        m.set_state(State::Backup);
        m.set_group_state(1, State::Master);
        m.set_group_priority(1, 150, 130);
        m.set_group_epoch(1, 9);
        m.group_transition(1);
        m.group_transition(1);
        m.set_routes_installed(1, true);
        m.route_failure(1);
        let text = m.encode();
        for line in [
            "haagent_group_state{group=\"web-b\",state=\"master\"} 1",
            "haagent_group_state{group=\"web-b\",state=\"backup\"} 0",
            "haagent_group_state{group=\"web-a\",state=\"master\"} 0",
            "haagent_group_priority{group=\"web-b\",kind=\"base\"} 150",
            "haagent_group_priority{group=\"web-b\",kind=\"effective\"} 130",
            "haagent_group_priority{group=\"web-a\",kind=\"base\"} 0",
            "haagent_group_epoch{group=\"web-b\"} 9",
            "haagent_group_epoch{group=\"web-a\"} 0",
            "haagent_group_transitions_total{group=\"web-b\"} 2",
            "haagent_group_transitions_total{group=\"web-a\"} 0",
            "haagent_route_installed{group=\"web-b\"} 1",
            "haagent_route_installed{group=\"web-a\"} 0",
            "haagent_route_failures_total{group=\"web-b\"} 1",
            "haagent_route_failures_total{group=\"web-a\"} 0",
            // Node level: unchanged by the group setters.
            "haagent_state{state=\"backup\"} 1",
            "haagent_state{state=\"master\"} 0",
            "haagent_epoch 0",
        ] {
            assert!(has_line(&text, line), "{line:?} missing:\n{text}");
        }
        // One-hot per group, whatever the sequence.
        for state in State::ALL {
            m.set_group_state(0, state);
            let text = m.encode();
            let on: Vec<_> = samples(&text)
                .into_iter()
                .filter(|l| {
                    l.starts_with("haagent_group_state{group=\"web-a\"") && l.ends_with(" 1")
                })
                .collect();
            assert_eq!(
                on,
                vec![format!(
                    "haagent_group_state{{group=\"web-a\",state=\"{state}\"}} 1"
                )]
            );
        }
        m.set_routes_installed(1, false);
        assert!(has_line(
            &m.encode(),
            "haagent_route_installed{group=\"web-b\"} 0"
        ));
    }

    /// A group's export series follow the protocols its BIRD has; other groups and
    /// unknown indexes are untouched.
    #[test]
    fn route_export_series_follow_the_protocols() {
        let m = two_groups();
        let exported = |text: &str| -> Vec<String> {
            let mut v: Vec<String> = samples(text)
                .into_iter()
                .filter(|l| l.starts_with("haagent_route_export"))
                .map(str::to_string)
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            exported(&m.encode()),
            Vec::<String>::new(),
            "none before a check"
        );
        m.set_route_exported(1, &[("uplink", true), ("backup_router", false)]);
        m.set_route_export_ok(1, true);
        m.set_route_exported(MAX_GROUPS + 1, &[("uplink", true)]);
        assert_eq!(
            exported(&m.encode()),
            [
                "haagent_route_export_ok{group=\"web-b\"} 1",
                "haagent_route_exported{group=\"web-b\",protocol=\"backup_router\"} 0",
                "haagent_route_exported{group=\"web-b\",protocol=\"uplink\"} 1",
            ]
        );
        m.set_route_exported(1, &[("uplink", false)]);
        m.set_route_export_ok(1, false);
        assert_eq!(
            exported(&m.encode()),
            [
                "haagent_route_export_ok{group=\"web-b\"} 0",
                "haagent_route_exported{group=\"web-b\",protocol=\"uplink\"} 0",
            ]
        );
        let text = m.encode();
        let doc = include_str!("../../docs/metrics.md");
        for family in ["haagent_route_exported", "haagent_route_export_ok"] {
            assert!(has_line(&text, &format!("# TYPE {family} gauge")), "{text}");
            // Empty families print no TYPE line, so the doc test above cannot see them.
            assert!(
                doc.contains(&format!("| `{family}` |")),
                "{family} undocumented"
            );
        }
        m.clear_route_export(1);
        assert_eq!(exported(&m.encode()), Vec::<String>::new());
    }

    /// docs/metrics.md has a row for every family, group families included.
    #[test]
    fn the_metrics_doc_lists_every_family() {
        let doc = include_str!("../../docs/metrics.md");
        let text = two_groups().encode();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut words = line.split(' ').skip(2);
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                panic!("bad TYPE line {line:?}");
            };
            let shown = match kind {
                "counter" => format!("| `{name}_total` |"),
                "info" => format!("| `{name}_info` |"),
                _ => format!("| `{name}` |"),
            };
            assert!(doc.contains(&shown), "{shown} missing from docs/metrics.md");
        }
    }

    /// At most MAX_GROUPS groups get series; setters for any other index do nothing.
    #[test]
    fn groups_are_bounded_and_unknown_indexes_are_ignored() {
        let names: Vec<String> = (0..MAX_GROUPS + 6).map(|i| format!("g{i}")).collect();
        let m = Metrics::with_groups("n1", &names);
        assert_eq!(m.group_count(), MAX_GROUPS);
        let before = m.encode();
        for index in [MAX_GROUPS, MAX_GROUPS + 5, usize::MAX] {
            m.set_group_state(index, State::Master);
            m.set_group_epoch(index, 3);
            m.group_transition(index);
            m.route_failure(index);
        }
        assert_eq!(m.encode(), before);
        let epochs = samples(&before)
            .into_iter()
            .filter(|l| l.starts_with("haagent_group_epoch{"))
            .count();
        assert_eq!(epochs, MAX_GROUPS);
        assert!(!before.contains(&format!("group=\"g{MAX_GROUPS}\"")));
        // Without groups there are no group series at all.
        let none = Metrics::new("n1").encode();
        assert!(
            !samples(&none).iter().any(|l| l.contains("group=")),
            "{none}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new("n1");
        m.advert_rejected(RejectReason::Admission(AdmissionKind::Malformed));
        m.check("say \"hi\"", true, None);
        let text = m.encode();
        assert!(has_line(
            &text,
            "haagent_adverts_rejected_total{reason=\"malformed\"} 1"
        ));
        assert!(
            has_line(&text, "haagent_check_up{check=\"say \\\"hi\\\"\"} 1"),
            "{text}"
        );
        let m = Metrics::with_groups("n1", &["a\"b\\c".to_string()]);
        m.set_group_epoch(0, 1);
        let text = m.encode();
        assert!(
            has_line(&text, "haagent_group_epoch{group=\"a\\\"b\\\\c\"} 1"),
            "{text}"
        );
    }
}
