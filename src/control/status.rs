//! The status document: what `haagent status --json` prints. Its shape is documented in
//! `docs/status.md` and versioned by [`STATUS_VERSION`]; fields are only ever added.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::election::FaultCause;
use crate::wire::State;

/// Bumped only for incompatible changes (a field removed or its meaning changed).
pub const STATUS_VERSION: u32 = 1;

/// The whole status of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// [`STATUS_VERSION`].
    pub version: u32,
    /// This node's name.
    pub node: String,
    /// Cluster name.
    pub cluster: String,
    /// Election state.
    pub state: State,
    /// How long it has been in that state, ms.
    pub state_age_ms: u64,
    /// Current epoch.
    pub epoch: u64,
    /// Base and effective priority.
    pub priority: PriorityView,
    /// Maintenance mode on.
    pub maintenance: bool,
    /// The master as this node sees it (itself when master).
    pub master: Option<String>,
    /// The VIPs and who holds them.
    pub vips: Vec<VipStatus>,
    /// Every configured peer.
    pub peers: Vec<PeerStatus>,
    /// Every health check.
    pub checks: Vec<CheckView>,
    /// The gateway witness, if configured.
    pub witness: Option<WitnessView>,
    /// Quorum.
    pub quorum: QuorumView,
    /// While a backup's claim is held back by an ARP probe answer: by whom, for how long.
    #[serde(default)]
    pub claim_blocked: Option<ClaimBlockedView>,
    /// The kinds of fault that hold now (of the first group), with their reasons; empty when
    /// none does. Older agents did not send it.
    #[serde(default)]
    pub faults: Vec<FaultView>,
    /// The latest transitions, oldest first (at most 20).
    pub transitions: Vec<TransitionRecord>,
    /// Event counters since start.
    pub counters: Counters,
    /// This node's certificate expiry (RFC 3339).
    pub cert_not_after: Option<String>,
    /// This node's certificate serial number (lowercase hex).
    #[serde(default)]
    pub cert_serial: Option<String>,
    /// Whole days until this node's certificate expires (negative once expired).
    #[serde(default)]
    pub cert_days_left: Option<i64>,
    /// What the operator should act on, one line each: certificates (this node's or a
    /// peer's) that expire within 30 days.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Changes in the configuration file that the running agent has not applied because
    /// they need a restart (`"interface eth0 → eth1"`), until it restarts or the file is
    /// changed back.
    #[serde(default)]
    pub pending_restart: Vec<String>,
    /// Seconds since the agent started.
    pub uptime_s: u64,
    /// Every VIP group, in configuration order (`[[group]]`; one group `default` for a
    /// config without groups). The top-level `state`, `epoch`, `priority`, `master`,
    /// `vips`, `claim_blocked` and `faults` describe the first of them. Older agents did
    /// not send it (empty).
    #[serde(default)]
    pub groups: Vec<GroupStatus>,
}

/// One VIP group as this node sees it: one element of [`Status::groups`].
///
/// Plain data: the daemon fills it from the group's election, VIP manager and route table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// The group's name (`[[group]] name`, 1..=32 bytes of `[A-Za-z0-9._-]`).
    pub name: String,
    /// The group's id on the wire, 1..=65535.
    pub id: u16,
    /// `"l2"` or `"routed"` (`[[group]] mode`; older agents: `"l2"`). A routed group's
    /// `routes` start with one host route per VIP whose metric is the epoch of the claim.
    #[serde(default = "l2_mode")]
    pub mode: String,
    /// The group's election state.
    pub state: State,
    /// How long the group has been in that state, ms (like [`Status::state_age_ms`]).
    pub state_age_ms: u64,
    /// The priority this node advertises in the group now, 0..=255 (base adjusted by the
    /// checks it tracks).
    pub priority: u8,
    /// This node's configured priority in the group, 1..=254.
    pub base_priority: u8,
    /// Why `priority` differs from `base_priority`, one line per reason.
    #[serde(default)]
    pub priority_reasons: Vec<String>,
    /// The group's epoch.
    pub epoch: u64,
    /// The group's master as this node sees it (itself when master), by node name.
    pub master: Option<String>,
    /// The group's VIPs, in configuration order.
    pub vips: Vec<GroupVipStatus>,
    /// The group's routes (`[[group.route]]`), in configuration order.
    #[serde(default)]
    pub routes: Vec<RouteStatus>,
    /// The kinds of fault that hold the group now, with their reasons.
    #[serde(default)]
    pub faults: Vec<FaultView>,
    /// Maintenance holds this group (node-wide maintenance, or this group's).
    pub maintenance: bool,
    /// While this group's claim is held back by an ARP probe answer: by whom, how long.
    #[serde(default)]
    pub claim_blocked: Option<ClaimBlockedView>,
    /// The node a handover started by this master goes to, while it is under way.
    #[serde(default)]
    pub handover_target: Option<String>,
    /// The group's cloud mover (`[group.mover]` / `[mover]`, docs/cloud.md): its latest
    /// run; `None` without a mover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mover: Option<crate::mover::MoverView>,
    /// A routed group with `bird_socket`: what the node's BIRD exports of its VIPs, as
    /// `birdc` last told ([`crate::bird`]); absent otherwise (and from older agents).
    /// Information only: the election never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportStatus>,
}

/// What the node's BIRD exports of a routed group's VIPs: [`GroupStatus::export`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportStatus {
    /// BIRD's control socket asked (`[[group]] bird_socket`).
    pub socket: String,
    /// When the last successful check was (RFC 3339, UTC, whole seconds); `None` before
    /// the first.
    #[serde(default)]
    pub checked_at: Option<String>,
    /// How long ago that was, ms.
    #[serde(default)]
    pub checked_age_ms: Option<u64>,
    /// Why the latest check failed (`birdc` missing, the socket refused, a timeout, an
    /// answer not understood); `None` when it succeeded. While it is set, `protocols` is
    /// empty: nothing is known.
    #[serde(default)]
    pub error: Option<String>,
    /// The BIRD's BGP protocols at the latest check, in BIRD's order (at most 32).
    #[serde(default)]
    pub protocols: Vec<ExportProtocolStatus>,
    /// BGP protocols not looked at (beyond those 32, or with a name BIRD's CLI cannot
    /// quote).
    #[serde(default)]
    pub protocols_left_out: usize,
}

/// One BGP protocol of the node's BIRD, and the group's VIPs it is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportProtocolStatus {
    /// The protocol's name in BIRD (`uplink`).
    pub name: String,
    /// BIRD's protocol state: `up`, `start`, `stop`, `down` or `flush`.
    pub state: String,
    /// BIRD's info column: the BGP session state and its last error
    /// (`Established`, `Active Socket: Connection refused`).
    pub info: String,
    /// Up and Established.
    pub established: bool,
    /// BIRD exports every VIP of the group of the protocol's address families to it (the
    /// value of `haagent_route_exported{group,protocol}`).
    pub exported: bool,
    /// The group's VIPs of the protocol's address families (its channels), in
    /// configuration order.
    pub vips: Vec<ExportedVip>,
}

/// One VIP and whether BIRD exports its host route to a protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedVip {
    /// `address/32` or `address/128`.
    pub address: String,
    /// In BIRD's `show route export PROTOCOL`.
    pub exported: bool,
}

/// The mode an older agent's group has (it knew no other).
fn l2_mode() -> String {
    "l2".to_string()
}

/// One VIP of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVipStatus {
    /// `address/prefix`.
    pub address: String,
    /// The interface it goes on.
    pub interface: String,
    /// Its address label (`eth0:vip`), if configured.
    #[serde(default)]
    pub label: Option<String>,
    /// On the interface right now (read from the kernel).
    pub installed: bool,
}

/// One route of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// The route in `ip route` words (`0.0.0.0/0 via 198.51.100.1 dev eth1 src
    /// 198.51.100.100`): [`RouteSpec`](crate::net::RouteSpec)'s `Display`.
    pub route: String,
    /// In the kernel's table right now.
    pub installed: bool,
    /// Why the last attempt to install it failed (the netlink error, in words), until an
    /// install succeeds or the group stops being master.
    #[serde(default)]
    pub error: Option<String>,
}

/// One kind of fault that holds a group in the fault state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultView {
    /// The kind, as a stable word: `link`, `health_check`, `checks_pending`, `vip_install`
    /// ([`FaultCause`]'s serde name). A string, not the enum, so that a CLI older than
    /// the agent still reads a kind it does not know.
    pub cause: String,
    /// Why, in words.
    pub reason: String,
}

impl FaultView {
    /// The views of an election's faults ([`Election::faults`](crate::election::Election::faults)),
    /// in the map's order.
    pub fn list(faults: &BTreeMap<FaultCause, String>) -> Vec<FaultView> {
        faults
            .iter()
            .map(|(cause, reason)| FaultView {
                cause: fault_word(*cause),
                reason: reason.clone(),
            })
            .collect()
    }
}

/// [`FaultCause`]'s serde word (`health_check`).
fn fault_word(cause: FaultCause) -> String {
    match serde_json::to_value(cause) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{cause:?}").to_lowercase(),
    }
}

/// A claim held back by an ARP probe answer (issue: it must never be silent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimBlockedView {
    /// The MAC that answers for the VIPs.
    pub mac: String,
    /// The cluster member it belongs to, if any.
    pub member: Option<String>,
    /// How long its answers have blocked the claim, ms.
    pub for_ms: u64,
    /// The rule that keeps the claim blocked, in words (a member's answer always blocks;
    /// a non-member's by `foreign_holder_timeout_ms`). Older agents did not send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// Priorities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityView {
    /// As configured.
    pub base: u8,
    /// As advertised now (base adjusted by checks).
    pub effective: u8,
    /// Why they differ, one line per reason.
    pub reasons: Vec<String>,
}

/// One VIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipStatus {
    /// `address/prefix`.
    pub address: String,
    /// On this node's interface right now (read from the kernel).
    pub held_here: bool,
    /// Who holds it as far as this node knows: itself, or the master it follows.
    pub holder: Option<String>,
}

/// One peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its name (or its address in quick mode before the first advert).
    pub name: String,
    /// Configured address.
    pub address: String,
    /// An authenticated QUIC connection is up.
    pub connected: bool,
    /// Alive: heard within its master-down interval.
    pub alive: bool,
    /// State in its last advert.
    pub state: Option<State>,
    /// Priority in its last advert.
    pub priority: Option<u8>,
    /// Epoch in its last advert.
    pub epoch: Option<u64>,
    /// Age of its last advert, ms.
    pub last_advert_age_ms: Option<f64>,
    /// QUIC round-trip time, ms.
    pub rtt_ms: Option<f64>,
    /// Adverts missing from its sequence numbers, percent.
    pub loss_percent: Option<f64>,
    /// Its certificate's expiry (RFC 3339).
    pub cert_not_after: Option<String>,
    /// Its certificate's serial number (lowercase hex), on the connection used for sending.
    #[serde(default)]
    pub cert_serial: Option<String>,
    /// Whole days until its certificate expires (negative once expired).
    #[serde(default)]
    pub cert_days_left: Option<i64>,
    /// Settings that differ from ours (config drift), by name.
    pub config_drift: Vec<String>,
}

/// One health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckView {
    /// Check name.
    pub name: String,
    /// Kind (`http`, `tcp`, ...).
    pub kind: String,
    /// Healthy now.
    pub healthy: bool,
    /// The last result in words.
    pub last_result: String,
    /// Latency of the last run, ms.
    pub latency_ms: Option<f64>,
    /// `process` checks: exits of the followed process seen on its pidfd (each failed the
    /// check at once); 0 for the other kinds.
    #[serde(default)]
    pub exit_events: u64,
}

/// The gateway witness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WitnessView {
    /// The gateway pinged.
    pub gateway: String,
    /// Its verdict; `None` until the first one.
    pub reachable: Option<bool>,
    /// Last echo round trip, ms.
    pub rtt_ms: Option<f64>,
}

/// Quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumView {
    /// Required (majority mode with 3+ nodes).
    pub enabled: bool,
    /// Nodes heard, this one included.
    pub heard: usize,
    /// Nodes needed.
    pub needed: usize,
    /// Nodes configured.
    pub cluster_size: usize,
}

/// One transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The group that changed state (`[[group]] name`). Agents older than groups did not
    /// send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// From.
    pub from: State,
    /// To.
    pub to: State,
    /// Epoch after.
    pub epoch: u64,
    /// Which rule decided, as a stable word (`master_down`, `handover`, …; the label of
    /// `haagent_transitions_total{reason}`). Older agents did not send it.
    #[serde(default)]
    pub cause: String,
    /// Why, in words.
    pub reason: String,
}

/// Event counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Adverts sent.
    pub adverts_sent: u64,
    /// Adverts accepted.
    pub adverts_received: u64,
    /// Adverts and connections rejected, by reason.
    pub rejected: std::collections::BTreeMap<String, u64>,
    /// Gratuitous ARP frames sent.
    pub garps_sent: u64,
    /// VIP conflicts seen on the wire.
    pub vip_conflicts: u64,
    /// ARP frames from a MAC in `[vip] ignore_arp_from` (probe answers and, while master,
    /// frames for our VIPs), not taken as evidence of a holder. Older agents did not send it.
    #[serde(default)]
    pub arp_ignored: u64,
}

/// The example status of docs/status.md (node n1 of an active-active pair: master of
/// `web-a`, backup of `web-b`), parsed: the fixture of the status and rendering tests.
#[cfg(test)]
pub(crate) fn documented_example() -> Status {
    serde_json::from_str(&documented_block("```json\n")).expect("the docs example parses")
}

/// The first fenced block of docs/status.md that opens with `fence`, without its fences.
#[cfg(test)]
pub(crate) fn documented_block(fence: &str) -> String {
    let doc = include_str!("../../docs/status.md");
    let start = doc.find(fence).expect("fence in docs/status.md") + fence.len();
    let len = doc[start..].find("```").expect("closing fence");
    doc[start..start + len].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_has_every_group_and_round_trips() {
        let s = documented_example();
        let names: Vec<&str> = s.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["web-a", "web-b"]);
        // The top level describes the first group.
        assert_eq!(s.state, s.groups[0].state);
        assert_eq!(s.epoch, s.groups[0].epoch);
        assert_eq!(s.master, s.groups[0].master);
        let web_a = &s.groups[0];
        assert_eq!(web_a.vips[0].interface, "eth0");
        assert!(web_a.vips[0].installed);
        assert!(web_a.routes[0].installed);
        assert_eq!(web_a.routes[0].error, None);
        assert_eq!(s.groups[1].master.as_deref(), Some("n2"));
        assert_eq!(s.transitions[0].group.as_deref(), Some("web-a"));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), s);
    }

    /// A CLI reading an agent older than groups: no `groups`, `faults` or
    /// `transitions[].group`, and a group element without its optional keys.
    #[test]
    fn a_status_without_the_group_fields_still_parses() {
        let mut v = serde_json::to_value(documented_example()).unwrap();
        let top = v.as_object_mut().unwrap();
        top.remove("faults");
        let groups = top.remove("groups").unwrap();
        top["transitions"][0]
            .as_object_mut()
            .unwrap()
            .remove("group");
        let old: Status = serde_json::from_value(v).unwrap();
        assert!(old.groups.is_empty() && old.faults.is_empty());
        assert_eq!(old.transitions[0].group, None);

        let mut g = groups[1].clone();
        let obj = g.as_object_mut().unwrap();
        for key in [
            "priority_reasons",
            "routes",
            "faults",
            "claim_blocked",
            "handover_target",
        ] {
            obj.remove(key);
        }
        let g: GroupStatus = serde_json::from_value(g).unwrap();
        assert!(g.routes.is_empty() && g.faults.is_empty() && g.handover_target.is_none());
    }

    /// docs/status.md names every key of a group element.
    #[test]
    fn every_group_field_is_documented() {
        let doc = include_str!("../../docs/status.md");
        let v = serde_json::to_value(&documented_example().groups[0]).unwrap();
        for key in v.as_object().unwrap().keys() {
            assert!(
                doc.contains(&format!("| `{key}`")) || doc.contains(&format!("| `{key}[]`")),
                "{key} is not documented"
            );
        }
    }

    #[test]
    fn fault_views_use_the_stable_words() {
        let mut faults = BTreeMap::new();
        faults.insert(FaultCause::HealthCheck, "nginx: 502".to_string());
        faults.insert(FaultCause::Link, "eth1 lost carrier".to_string());
        let words: Vec<(String, String)> = FaultView::list(&faults)
            .into_iter()
            .map(|f| (f.cause, f.reason))
            .collect();
        assert_eq!(
            words,
            [
                ("link".to_string(), "eth1 lost carrier".to_string()),
                ("health_check".to_string(), "nginx: 502".to_string())
            ]
        );
        for cause in FaultCause::ALL {
            let word = fault_word(cause);
            assert!(
                include_str!("../../docs/status.md").contains(&format!("`{word}`")),
                "{word} is not documented"
            );
        }
    }
}
