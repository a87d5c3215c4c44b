//! The status document: what `haagent status --json` prints. Its shape is documented in
//! `docs/status.md` and versioned by [`STATUS_VERSION`]; fields are only ever added.

use serde::{Deserialize, Serialize};

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
}
