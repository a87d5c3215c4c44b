//! The election: who holds the VIPs, decided by VRRPv3-style (RFC 9568) priority adverts plus
//! an epoch that settles split brain after a partition heals.
//!
//! This is a pure state machine: no tokio, no sockets, no clock, no logging. The daemon feeds it
//! `(now, Input)` through [`Election::handle`], carries out the returned [`Action`]s **in
//! order**, sleeps until [`Election::next_deadline`] and then feeds [`Input::Timeout`]. Every
//! decision comes back as data, with its reason in words inside [`Action::Transition`]. The
//! same code therefore runs unchanged in the simulation (`sim.rs`), which drives whole clusters
//! through virtual time, loss, partitions, crashes and restarts.
//!
//! # Rules
//!
//! - **Rank.** A node ranks higher than another if its priority is higher; on equal priority,
//!   the node whose name sorts **first** (byte order) ranks higher. Names are unique.
//! - **Timing.** `skew = (256 − priority) × interval / 256` and
//!   `master-down = down_multiplier × interval + skew`, where `interval` is the advert interval
//!   of the master we follow (our own until we have heard one) and `priority` is ours.
//! - **Adverts.** Every started node — master, backup or fault — sends an advert every advert
//!   interval, the first one at once on [`Input::Start`].
//! - **Epoch.** A node remembers the highest epoch it has seen in any advert. Taking over sets
//!   `epoch = highest seen + 1`. A master advertises the epoch of its takeover, the others the
//!   highest epoch they have seen.
//! - **Better backup first.** A backup whose master-down runs out while it hears a live
//!   backup that outranks it gives that one its turn, once per stay in backup: until it
//!   should have claimed (`Election::better_backup_due`: its own master-down from when we
//!   first heard it, a probe window, an interval), at least [`DEFER_TO_BETTER_BACKUP`]
//!   intervals. So nodes started together make one transition to master, the top-ranked
//!   node's, instead of a lower one claiming and being preempted a second later.
//! - **Backup.** A master advert resets the master-down timer if that master ranks higher than
//!   us, or if we may not preempt (`preempt` off, still within `preempt_delay` of start
//!   or of our last forced step-down, or contact with that master is not proven both ways:
//!   its advert's `heard` names a datagram we sent during this contact (wire v2,
//!   [`Advert::heard_us_at`]), or, from a v1 peer, we have heard it for [`PREEMPT_SETTLE`]
//!   without a gap). A v2 proof preempts at once; otherwise a lower-ranked master is
//!   preempted at master-down. When the timer fires we take over.
//!   If the master we follow leaves (priority 0) or reports a fault, the timer is cut to
//!   `now + skew`, so the highest-priority backup (smallest skew) takes over first.
//! - **Master.** An advert from another master is compared by `(epoch, rank)`: if the peer's
//!   is greater we step down (release the VIPs), else we re-send our advert and re-announce the
//!   VIPs at once. Backup adverts never change a master's state.
//! - **Fault** releases the VIPs and never takes over; clearing it returns to backup with a
//!   fresh master-down timer. **Shutdown** sends a priority-0 advert, releases the VIPs and
//!   stops: later inputs are ignored.
//!
//! # Split-brain rules
//!
//! - **Probe before claiming.** When the master-down timer is about to run out because the
//!   master went silent (not because it left with priority 0, reported a fault, or is a
//!   lower-ranked master we still hear and preempt), we ask for an ARP probe of the VIPs
//!   ([`Action::Probe`]) `probe_window` before it does, so that the probe's wait overlaps
//!   the master-down wait: a clear answer claims at master-down itself, and an advert from a
//!   master before then cancels the claim. If some host answers ([`Input::ProbeResult`]
//!   with its MAC) we do not claim: we say who holds the VIPs and probe again every advert
//!   interval. Lost adverts
//!   alone can therefore never move the VIPs away from a live master. Opt-in exception:
//!   with `foreign_holder_timeout` set, answers from non-members only stop blocking after
//!   that long (with quorum, not isolated).
//! - **Isolation.** With a gateway witness, a node that hears no live peer and whose gateway
//!   does not answer goes to Fault (a master releases its VIPs first) and never claims. It
//!   rejoins as backup when the gateway answers again or a peer is heard.
//! - **Quorum.** With `quorum` on, a node holds the VIPs only while it hears a majority of
//!   `cluster_size` nodes, itself included: a master that falls below steps down, a backup
//!   below it does not take over.
//! - **Conflict on the wire.** A master told that another MAC answers for a VIP weighs
//!   that unauthenticated frame against what the peers say in their adverts. A live peer
//!   whose adverts do not say master never makes it release: its takeover advert is
//!   probably trailing its gratuitous ARP, so we wait up to a master-down interval for
//!   it, then re-announce (anyone can forge a frame with a member's MAC). Any other member
//!   is compared by `(epoch, rank)`, with the epoch it last advertised if that advert said
//!   master, else (it must have taken over since, unheard) at least its last epoch + 1
//!   and at least ours: the lower releases, and two claimants judging each other reach
//!   the same verdict. An unknown MAC cannot outrank us. Re-announcing is RFC 5227 §2.4 (b)
//!   defence, at most once per advert interval.
//! - **Lease lost.** A master whose VIPs the kernel removed (their lease ran out while the
//!   agent stalled) steps down rather than adding them back: someone else may hold them.
//! - A forced step-down (any of the above, or a stale epoch) and every return from fault
//!   (link, health, isolation, maintenance) restart the `preempt_delay` clock, so a node
//!   that resumes from a stall or whose link flaps does not move the VIPs straight back.
//!
//! Arithmetic saturates and [`Election::new`] clamps the configuration into range, so no
//! input sequence can make it panic.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::net::format_mac;
pub use crate::wire::State;
use crate::wire::{
    Advert, MAX_ADVERT_INTERVAL_MS, MAX_PRIORITY, MIN_ADVERT_INTERVAL_MS, MIN_PRIORITY,
};

pub use cause::{Cause, FaultCause, NoticeCause};
use timing::{after, interval_of, ms, skew_for, Timer, TimerTable};

mod cause;
mod conflict;
mod fault;
mod peers;
mod planned;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod split_tests;
mod takeover;
#[cfg(test)]
mod tests;
mod timing;

/// Default number of missed advert intervals before a backup takes over.
pub const DEFAULT_DOWN_MULTIPLIER: u32 = 3;

/// How long a backup must have heard a lower-ranked master without a gap before its
/// master-down timer may run out to preempt it, when the adverts cannot prove that the
/// master hears us (a wire-v1 peer, or a `heard` report from before the gap).
///
/// Hearing a peer proves only one direction. After a partition heals, the other direction
/// can stay dead for up to a second: Linux re-resolves a failed neighbour (ARP) once per
/// `retrans_time` (1 s by default). A node that preempted at once would hold the VIPs
/// while the old master, not yet hearing it, kept them too — two holders, and clients
/// pulled back and forth. Waiting this long first costs nothing: the master is serving.
pub const PREEMPT_SETTLE: Duration = Duration::from_millis(1000);

/// How long a graceful stop waits for the successor, in master-down intervals.
pub const STOP_HANDOVER_MASTER_DOWNS: u32 = 2;

/// How long a failed VIP install holds the node in Fault before it may try again (it
/// becomes backup and takes over again if it is still the best candidate).
pub const VIP_INSTALL_RETRY: Duration = Duration::from_secs(5);

/// At most one log notice about VIP conflicts per this interval and kind (pending, won); the
/// next one says how many conflicting frames came in between. A forger on the segment can
/// send thousands of frames a second; each costs a counter increment, not a log line.
pub const CONFLICT_NOTICE_INTERVAL: Duration = Duration::from_secs(1);

/// What the election needs to know about this node (validated by the config module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    /// This node's name, as in its certificate. Must pass [`crate::wire::valid_node_name`]
    /// (the config module checks it), or peers reject our adverts.
    pub name: String,
    /// 1..=254 (clamped into that range).
    pub priority: u8,
    /// How often to advertise; whole milliseconds, 10 ms..=65 535 ms (clamped).
    pub advert_interval: Duration,
    /// Missed intervals before a backup takes over; 1..=255 (clamped), default 3.
    pub down_multiplier: u32,
    /// Whether a higher-ranked backup takes over from a lower-ranked master.
    pub preempt: bool,
    /// After start, how long to follow even a lower-ranked master before preempting it.
    pub preempt_delay: Duration,
    /// Our MAC on the VIP interface, advertised so peers can tell who answers for a VIP.
    pub mac: [u8; 6],
    /// ARP-probe the VIPs before claiming them after losing contact with the master.
    pub probe: bool,
    /// How long one ARP probe of the VIPs takes (the daemon's probe window, 5 ms..=2 s): the
    /// probe starts this long before the master-down timer runs out, so that its answer is
    /// in when it does (RFC 5227 §2.1.1's wait, overlapped with RFC 9568's master-down).
    pub probe_window: Duration,
    /// Nodes in the cluster, this one included.
    pub cluster_size: usize,
    /// Hold the VIPs only while hearing a majority of `cluster_size` (ourselves included).
    pub quorum: bool,
    /// Hashes of the settings that must match across the cluster, carried in every advert.
    pub fingerprint: [u32; 4],
    /// Claim anyway once only non-members have answered our probes for this long; `None`
    /// = never (the default: a duplicate address is not ours to fight over). An answer
    /// from a member always blocks the claim.
    pub foreign_holder_timeout: Option<Duration>,
}

/// The part of [`ElectionConfig`] a reload may change, see [`Input::Reconfigure`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconfig {
    /// [`ElectionConfig::advert_interval`].
    pub advert_interval: Duration,
    /// [`ElectionConfig::down_multiplier`].
    pub down_multiplier: u32,
    /// [`ElectionConfig::preempt`].
    pub preempt: bool,
    /// [`ElectionConfig::preempt_delay`].
    pub preempt_delay: Duration,
    /// [`ElectionConfig::cluster_size`].
    pub cluster_size: usize,
    /// [`ElectionConfig::quorum`].
    pub quorum: bool,
    /// [`ElectionConfig::fingerprint`].
    pub fingerprint: [u32; 4],
}

/// An advert interval into whole milliseconds within the wire's bounds.
fn clamp_interval(d: Duration) -> Duration {
    let ms = d.as_millis().clamp(
        u128::from(MIN_ADVERT_INTERVAL_MS),
        u128::from(MAX_ADVERT_INTERVAL_MS),
    );
    Duration::from_millis(u64::try_from(ms).unwrap_or(10))
}

/// A backup's claim held back by an ARP probe answer (status, metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimBlock {
    /// The MAC that answered.
    pub mac: [u8; 6],
    /// The member it belongs to by the adverts, if any.
    pub member: Option<String>,
    /// Since when answers from this MAC block the claim.
    pub since: Instant,
    /// Since when only non-members have answered (what `foreign_holder_timeout` counts);
    /// `None` while a member answers.
    pub foreign_since: Option<Instant>,
}

/// While a claim stays blocked, a reminder notice at most this often (it must never be
/// silent, and never flood the log).
pub const CLAIM_BLOCKED_REMINDER: Duration = Duration::from_secs(10);

/// When an ARP probe comes back clear while a live backup that outranks us is heard, we
/// wait this many of our advert intervals, once per stay in backup, before probing again
/// and claiming: time for the better backup to finish its own probe (it started at most an
/// advert interval after ours when both re-probed a blocked claim, earlier otherwise) and
/// for its master advert to reach us. Without it the two probes overlap and both claim
/// (the skew alone orders them by `(p₁ − p₂) × interval / 256`, RFC 9568 §6.1).
pub const DEFER_TO_BETTER_BACKUP: u32 = 2;

/// A member we cannot hear answered for our VIPs and we re-announced against it, as the
/// winner by what its last advert said. If it keeps answering after that, each side has
/// judged the other by stale adverts and both think they won (see
/// `Election::epoch_of_claimant`): an advert interval after our re-announcement, rank alone
/// decides, on both sides alike.
#[derive(Debug, Clone, Copy)]
struct Contest {
    mac: [u8; 6],
    /// Our first re-announcement against it.
    since: Instant,
    /// It answered again after that.
    answered: bool,
    /// The recheck an advert interval after `since` has run.
    rechecked: bool,
}

/// Something that happened, for [`Election::handle`]. Serde (externally tagged, snake
/// case: `"timeout"`, `{"advert": {...}}`) is for golden traces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Begin: become backup and start advertising.
    Start,
    /// An advert from a peer; the transport has already authenticated the sender.
    Advert(Advert),
    /// A deadline from [`Election::next_deadline`] has (probably) passed.
    Timeout,
    /// Leave the cluster now: priority-0 advert, release the VIPs; the election stops for
    /// good.
    Shutdown,
    /// Leave the cluster gracefully (SIGTERM): a master with a live backup first hands the
    /// VIPs over make-before-break, and shuts down once the successor has taken them or
    /// [`STOP_HANDOVER_MASTER_DOWNS`] master-down intervals have passed; anyone else shuts
    /// down at once. [`Election::stopped`] says when it is done.
    Stop,
    /// A fault of one kind holds (again): a health check failed, the link is down, the
    /// checks have not all reported yet, a VIP install failed. Several kinds can hold at
    /// once; the node is in Fault while any does. Repeating it changes nothing.
    Fault {
        /// Which kind of fault.
        cause: FaultCause,
        /// What failed, in words (goes into the transition reason).
        reason: String,
    },
    /// That kind of fault no longer holds. The node leaves Fault when no kind holds and it
    /// is neither isolated nor in maintenance.
    FaultCleared {
        /// Which kind cleared.
        cause: FaultCause,
    },
    /// The gateway witness changed its verdict (or gave its first one).
    Witness {
        /// Whether the gateway answers.
        reachable: bool,
        /// The witness's own words, e.g. "3 echoes to 192.0.2.1 unanswered".
        detail: String,
    },
    /// The answer to [`Action::Probe`]: the MAC of a host that answered for a VIP, if any.
    ProbeResult {
        /// Who answered; `None` = nobody holds the VIPs.
        answered_by: Option<[u8; 6]>,
    },
    /// While master: another host answered for one of our VIPs on the wire.
    Conflict {
        /// Its MAC.
        mac: [u8; 6],
    },
    /// While master: our VIPs left the interface although their lease still ran: someone
    /// else removed them. We are still the elected master: install and announce them again
    /// (a failed install is then a VIP-install fault).
    VipsRemoved {
        /// What was found, in words (which VIPs, which interface, the lease left).
        detail: String,
    },
    /// While master: the kernel dropped our VIPs because their lease ran out (we stalled).
    LeaseLost {
        /// What was found, in words.
        detail: String,
    },
    /// The health checks' priority adjustment changed: the advertised (effective) priority
    /// is `base + delta`, clamped to 1..=254 (keepalived's `weight`).
    PriorityDelta {
        /// Sum of the weights that apply: positive ones of passing checks, negative ones of
        /// failing checks, `file` values × weight (keepalived's meaning).
        delta: i32,
    },
    /// The configured (base) priority changed on reload; clamped to 1..=254.
    BasePriority {
        /// The new base priority.
        priority: u8,
    },
    /// The operator turned maintenance mode on or off: while on, the node gives up the VIPs
    /// and does not take them. A master with a live backup hands them over first,
    /// make-before-break (like [`Input::Stop`]), and enters maintenance once the successor
    /// has them or [`STOP_HANDOVER_MASTER_DOWNS`] master-down intervals have passed.
    Maintenance {
        /// On or off.
        on: bool,
    },
    /// The operator asked the master to hand the VIPs to `to`, or to the best live backup
    /// by rank (make-before-break: the target installs and announces them, then we release
    /// on its first advert). Answered with a [`NoticeCause::HandoverStarted`] notice naming
    /// the target, or [`NoticeCause::HandoverRefused`] saying why not.
    Handover {
        /// The node to hand over to; `None` = the best live backup.
        to: Option<String>,
    },
    /// A reload changed settings the election can take while it runs (timers, preemption,
    /// cluster size, quorum, fingerprint). Nothing transitions at once: the next advert
    /// carries the new interval, the next master-down wait uses the new multiplier, and
    /// preemption and quorum are judged with the new settings at the next advert or
    /// deadline. Clamped like
    /// [`ElectionConfig`].
    Reconfigure(Reconfig),
    /// Another group's advert is going out now (the daemon sends one datagram per peer per
    /// interval with every group's advert, docs/wire-format.md): send ours with it, now,
    /// and restart our advert timer from here, so that the groups' timers stay aligned.
    /// Ignored before [`Input::Start`] and once the advert timer is stopped (after
    /// shutdown).
    AdvertDue,
    /// The VIP interface's MAC changed (or the interface was re-created with another one):
    /// adverts carry the new MAC from now on, and it is no longer taken for a stranger's.
    MacChanged {
        /// The interface's MAC now.
        mac: [u8; 6],
    },
}

/// Something the daemon must do, in the order given. Serialisable (like [`Input`]) for
/// golden traces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send this advert to every peer.
    Send(Advert),
    /// Add the VIPs to the interface.
    InstallVips,
    /// Send a gratuitous ARP burst for the VIPs (after installing, and when re-asserting).
    Announce,
    /// Delete the VIPs from the interface.
    ReleaseVips,
    /// ARP-probe every VIP (RFC 5227) and answer with [`Input::ProbeResult`].
    Probe,
    /// A decision that changes no state (not claiming, a conflict resolved in our favour,
    /// no quorum); log it.
    Notice {
        /// Which rule decided.
        cause: NoticeCause,
        /// What and why, in words.
        reason: String,
    },
    /// The state changed; log it with its reason.
    Transition {
        /// State before.
        from: State,
        /// State after.
        to: State,
        /// Our epoch after the change.
        epoch: u64,
        /// Which rule decided.
        cause: Cause,
        /// Why, in words with the numbers that decided it.
        reason: String,
    },
}

/// What we know about one peer, for the status command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// The peer's node name.
    pub name: String,
    /// Its state in its last advert.
    pub state: State,
    /// Its priority in its last advert (0 = it left).
    pub priority: u8,
    /// Its epoch in its last advert.
    pub epoch: u64,
    /// Its advert counter in its last advert.
    pub seq: u64,
    /// When its last advert arrived.
    pub last_heard: Instant,
    /// Its advertised interval.
    pub advert_interval: Duration,
    /// Its MAC on the VIP interface.
    pub mac: [u8; 6],
    /// Its MACs on its other interfaces (wire v2).
    pub extra_macs: Vec<[u8; 6]>,
    /// It counts as alive until then: last heard + master-down for its interval.
    pub alive_until: Instant,
}

impl PeerView {
    /// Whether `mac` is one of its MACs (on any interface).
    pub fn has_mac(&self, mac: [u8; 6]) -> bool {
        self.mac == mac || self.extra_macs.contains(&mac)
    }

    /// Heard within master-down of its own interval, and not leaving.
    pub fn is_alive(&self, now: Instant) -> bool {
        self.priority != 0 && now < self.alive_until
    }
}

/// Orders nodes: higher priority first, then the name that sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rank<'a> {
    priority: u8,
    name: &'a str,
}

impl Ord for Rank<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.name.cmp(self.name))
    }
}

impl PartialOrd for Rank<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The last advert of one peer.
#[derive(Debug, Clone)]
struct Peer {
    state: State,
    priority: u8,
    epoch: u64,
    seq: u64,
    last_heard: Instant,
    /// Since when we have heard it without a gap longer than its master-down interval.
    contact_since: Instant,
    interval: Duration,
    mac: [u8; 6],
    /// Its MACs on its other interfaces (wire v2; empty from a v1 peer).
    extra_macs: Vec<[u8; 6]>,
    /// When we sent the datagram its latest advert says it heard from us (v2 `heard`);
    /// proves the other direction of contact (see `Election::contact_proven`).
    heard_us_at: Option<Instant>,
}

/// The master whose adverts we last heard (kept after it leaves, to explain the takeover).
#[derive(Debug, Clone)]
struct Followed {
    name: String,
    interval: Duration,
    last_master_advert: Instant,
}

/// The election state machine of one node; see the module doc for the rules.
#[derive(Debug, Clone)]
pub struct Election {
    cfg: ElectionConfig,
    state: State,
    state_since: Instant,
    started_at: Option<Instant>,
    stopped: bool,
    master_epoch: u64,
    max_seen: u64,
    seq: u64,
    /// The next advert, master-down, VIP-install retry and graceful-stop deadlines.
    timers: TimerTable,
    followed: Option<Followed>,
    peers: BTreeMap<String, Peer>,
    /// A probe is out; its result counts only while this is set.
    probing: bool,
    /// Who answers our probes in this episode, since when, and when we last said so.
    claim_block: Option<(ClaimBlock, Instant)>,
    /// This stay in backup already gave a live higher-ranked backup its turn to claim
    /// ([`DEFER_TO_BETTER_BACKUP`] advert intervals).
    deferred: bool,
    /// A probe started ahead of master-down came back clear: claim when the timer runs out,
    /// unless a master is heard first.
    probe_clear: bool,
    /// The master-down deadline the early probe was decided for (started or not), so that
    /// it is decided once per deadline.
    early_probe_for: Option<Instant>,
    /// Whether "not taking over: no quorum" was said in this episode.
    quorum_notice: bool,
    /// The gateway witness's verdict and words; `None` = no witness or no verdict yet.
    gateway: Option<(bool, String)>,
    /// In Fault because isolated (no peer, no gateway).
    isolated: bool,
    /// The kinds of fault that hold now, with their reasons.
    faults: BTreeMap<FaultCause, String>,
    /// The configured priority; `cfg.priority` is the effective one (base + check delta).
    base_priority: u8,
    /// The health checks' adjustment.
    priority_delta: i32,
    /// The `now` of the latest isolation and quorum check (`reevaluate`): a peer expiring
    /// after it is a deadline ([`Election::next_deadline`]). Not simply the latest input:
    /// inputs that do not re-check (a probe result, a conflict) must not hide an expiry.
    last_recheck: Option<Instant>,
    /// While handing over: to whom, and until when we wait for it.
    handing_over: Option<(String, Instant)>,
    /// A live peer whose MAC answered for our VIPs while its adverts still said it was not
    /// master, and until when we wait for the advert that explains it (its takeover advert
    /// can trail its gratuitous ARP).
    conflict_grace: Option<([u8; 6], Instant)>,
    /// A member we cannot hear that answered for our VIPs and that we re-announced against
    /// ([`Contest`]).
    contested: Option<Contest>,
    /// When we last re-announced because of a conflict (the defence is rate-limited).
    last_defence: Option<Instant>,
    /// The MAC we last re-announced against ([`Election::conflict_won_against`]).
    last_defended: Option<[u8; 6]>,
    /// When we last said something about a conflict, per kind (`[pending, won]`: the
    /// outcome of a pending conflict is never swallowed by the notice that it was
    /// pending), and how many came since.
    last_conflict_notice: [Option<Instant>; 2],
    conflicts_unreported: u64,
    /// We handed the VIPs over on purpose: do not preempt them back until we are master again.
    yielded: bool,
    /// Maintenance mode is on.
    maintenance: bool,
    /// When we last lost mastership without choosing to (stale epoch, outranked, conflict,
    /// lease lost, quorum lost): `preempt_delay` counts from here too, so a node that
    /// resumes from a stall does not flap the VIP straight back.
    last_stepdown: Option<Instant>,
    /// When we last left Fault: `preempt_delay` counts from here too (flap damping).
    last_fault_exit: Option<Instant>,
}

/// A priority into the range a node may advertise: 1..=254 (RFC 9568 §6.1: 255 is the
/// address owner, which haagent never is; 0 means leaving). The one place priorities are
/// clamped.
pub fn clamp_priority(p: i32) -> u8 {
    u8::try_from(p.clamp(i32::from(MIN_PRIORITY), i32::from(MAX_PRIORITY))).unwrap_or(MIN_PRIORITY)
}

impl Election {
    /// A new election in state [`State::Init`]; nothing happens until [`Input::Start`].
    /// Out-of-range config values are clamped (see [`ElectionConfig`]).
    pub fn new(mut cfg: ElectionConfig, now: Instant) -> Self {
        cfg.priority = clamp_priority(i32::from(cfg.priority));
        cfg.advert_interval = clamp_interval(cfg.advert_interval);
        cfg.down_multiplier = cfg.down_multiplier.clamp(1, 255);
        let base_priority = cfg.priority;
        Election {
            cfg,
            state: State::Init,
            state_since: now,
            started_at: None,
            stopped: false,
            master_epoch: 0,
            max_seen: 0,
            seq: 0,
            followed: None,
            peers: BTreeMap::new(),
            probing: false,
            claim_block: None,
            deferred: false,
            probe_clear: false,
            early_probe_for: None,
            quorum_notice: false,
            gateway: None,
            isolated: false,
            faults: BTreeMap::new(),
            base_priority,
            priority_delta: 0,
            timers: TimerTable::default(),
            last_recheck: None,
            last_stepdown: None,
            last_fault_exit: None,
            handing_over: None,
            conflict_grace: None,
            contested: None,
            last_defence: None,
            last_defended: None,
            last_conflict_notice: [None; 2],
            conflicts_unreported: 0,
            yielded: false,
            maintenance: false,
        }
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        match input {
            Input::Start => self.on_start(now, &mut out),
            Input::Advert(a) => self.on_advert(now, a, &mut out),
            Input::Timeout => self.on_timeout(now, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
            Input::Stop => self.on_stop(now, &mut out),
            Input::Fault { cause, reason } => self.on_fault(now, cause, reason, &mut out),
            Input::FaultCleared { cause } => self.on_fault_cleared(now, cause, &mut out),
            Input::Witness { reachable, detail } => {
                self.gateway = Some((reachable, detail));
                self.reevaluate(now, &mut out);
            }
            Input::ProbeResult { answered_by } => self.on_probe_result(now, answered_by, &mut out),
            Input::Conflict { mac } => self.on_conflict(now, mac, &mut out),
            Input::PriorityDelta { delta } => {
                self.priority_delta = delta;
                self.cfg.priority = clamp_priority(i32::from(self.base_priority) + delta);
                self.hand_over_if_outranked(now, &mut out);
            }
            Input::BasePriority { priority } => {
                self.base_priority = clamp_priority(i32::from(priority));
                self.cfg.priority =
                    clamp_priority(i32::from(self.base_priority) + self.priority_delta);
            }
            Input::Maintenance { on } => self.on_maintenance(now, on, &mut out),
            Input::Handover { to } => self.on_handover(now, to, &mut out),
            Input::MacChanged { mac } => self.cfg.mac = mac,
            Input::AdvertDue => {
                if self.state != State::Init && self.timers.get(Timer::Advert).is_some() {
                    self.send(now, &mut out);
                }
            }
            Input::Reconfigure(r) => self.reconfigure(r),
            Input::VipsRemoved { detail } => {
                if self.state == State::Master {
                    out.push(Action::Notice {
                        cause: NoticeCause::VipsRemoved,
                        reason: format!(
                            "{detail} while we are master: installing and announcing it again"
                        ),
                    });
                    out.push(Action::InstallVips);
                    out.push(Action::Announce);
                }
            }
            Input::LeaseLost { detail } => {
                if self.state == State::Master {
                    let reason = format!("VIP lease lost ({detail}): stepping down");
                    self.step_down(now, Cause::LeaseLost, reason, &mut out);
                }
            }
        }
        self.finish_stop(now, &mut out);
        if !self.stopped {
            self.finish_maintenance(now, &mut out);
        }
        out
    }

    fn reconfigure(&mut self, r: Reconfig) {
        self.cfg.advert_interval = clamp_interval(r.advert_interval);
        self.cfg.down_multiplier = r.down_multiplier.clamp(1, 255);
        self.cfg.preempt = r.preempt;
        self.cfg.preempt_delay = r.preempt_delay;
        self.cfg.cluster_size = r.cluster_size.max(1);
        self.cfg.quorum = r.quorum;
        self.cfg.fingerprint = r.fingerprint;
    }

    /// Our current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Since when we are in the current state.
    pub fn state_since(&self) -> Instant {
        self.state_since
    }

    /// The epoch we advertise: our takeover epoch as master, else the highest seen.
    pub fn epoch(&self) -> u64 {
        if self.state == State::Master {
            self.master_epoch
        } else {
            self.max_seen
        }
    }

    /// The priority we advertise: the configured one, 0 after shutdown.
    pub fn priority(&self) -> u8 {
        if self.stopped {
            0
        } else {
            self.cfg.priority
        }
    }

    /// The configured priority (the advertised one is [`Election::priority`]).
    pub fn base_priority(&self) -> u8 {
        self.base_priority
    }

    /// Whether the election has stopped for good (after [`Input::Shutdown`], or once a
    /// graceful [`Input::Stop`] has finished).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The kinds of fault that hold now, with their reasons (status).
    pub fn faults(&self) -> &BTreeMap<FaultCause, String> {
        &self.faults
    }

    /// The probe answer holding back our claim, if one does (status, metrics).
    pub fn claim_blocked(&self) -> Option<&ClaimBlock> {
        match self.state {
            State::Backup => self.claim_block.as_ref().map(|(b, _)| b),
            _ => None,
        }
    }

    /// The MAC we last won a VIP conflict against (re-announced, [`NoticeCause::ConflictWon`]),
    /// and the member it belongs to by the adverts, if any (the `conflict_won` hook).
    pub fn conflict_won_against(&self) -> Option<([u8; 6], Option<&str>)> {
        let mac = self.last_defended?;
        Some((mac, self.peer_with_mac(mac).map(|(name, _)| name.as_str())))
    }

    /// The node a planned handover is under way to, if one is.
    pub fn handover_target(&self) -> Option<&str> {
        self.handing_over.as_ref().map(|(to, _)| to.as_str())
    }

    /// Our node name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The configuration in force (after clamping).
    pub fn config(&self) -> &ElectionConfig {
        &self.cfg
    }

    /// Leaves master because something forced us to; releases the VIPs.
    fn step_down(&mut self, now: Instant, cause: Cause, reason: String, out: &mut Vec<Action>) {
        self.last_stepdown = Some(now);
        self.conflict_grace = None;
        self.enter_backup(now, cause, reason, out);
        out.push(Action::ReleaseVips);
    }

    fn advert(&mut self, state: State, priority: u8) -> Advert {
        self.seq = self.seq.wrapping_add(1);
        Advert {
            name: self.cfg.name.clone(),
            state,
            priority,
            epoch: self.epoch(),
            advert_interval_ms: u16::try_from(self.cfg.advert_interval.as_millis())
                .unwrap_or(u16::MAX),
            seq: self.seq,
            mac: self.cfg.mac,
            fingerprint: self.cfg.fingerprint,
            handover_to: match (&self.handing_over, state) {
                (Some((to, _)), State::Master | State::Fault) => Some(to.clone()),
                _ => None,
            },
            extra_macs: Vec::new(),
            heard_us_at: None,
        }
    }

    fn send(&mut self, now: Instant, out: &mut Vec<Action>) {
        let a = self.advert(self.state, self.cfg.priority);
        out.push(Action::Send(a));
        self.timers
            .set(Timer::Advert, after(now, self.cfg.advert_interval));
    }

    fn transition(
        &mut self,
        now: Instant,
        to: State,
        cause: Cause,
        reason: String,
        out: &mut Vec<Action>,
    ) {
        let from = self.state;
        self.state = to;
        self.state_since = now;
        if from == State::Fault && to != State::Fault {
            self.last_fault_exit = Some(now);
        }
        // A block and a deferral belong to one stay in backup: a later one starts afresh.
        self.claim_block = None;
        self.deferred = false;
        self.probe_clear = false;
        self.contested = None;
        if to != State::Backup {
            self.timers.stop(Timer::MasterDown);
        }
        out.push(Action::Transition {
            from,
            to,
            epoch: self.epoch(),
            cause,
            reason,
        });
    }

    fn enter_backup(&mut self, now: Instant, cause: Cause, reason: String, out: &mut Vec<Action>) {
        self.transition(now, State::Backup, cause, reason, out);
        self.timers
            .set(Timer::MasterDown, after(now, self.master_down_interval()));
    }

    fn on_start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.started_at.is_some() {
            return;
        }
        self.started_at = Some(now);
        if self.state == State::Init {
            let reason = format!(
                "started: backup until a master is heard or master-down {} passes",
                ms(self.master_down_interval())
            );
            self.enter_backup(now, Cause::Started, reason, out);
        }
        self.send(now, out);
    }

    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.timers.get(Timer::VipRetry).is_some_and(|t| now >= t) {
            self.timers.stop(Timer::VipRetry);
            self.faults.remove(&FaultCause::VipInstall);
            self.leave_fault_if_clear(now, Cause::FaultCleared, "VIP install retry".into(), out);
        }
        if let Some((mac, until)) = self.conflict_grace {
            if now >= until {
                // No advert explained the conflict: the peer still says it is not master.
                self.conflict_grace = None;
                if self.state == State::Master {
                    self.defend(now, mac, out);
                }
            }
        }
        self.recheck_contest(now, out);
        if let Some((to, until)) = self.handing_over.take() {
            if now >= until && self.state != State::Master {
                // A successor named by our fault advert: it took over or the others did.
            } else if now >= until {
                self.yielded = false;
                out.push(Action::Notice {
                    cause: NoticeCause::HandoverTimedOut,
                    reason: format!("handover to {to} did not happen: still master"),
                });
            } else {
                self.handing_over = Some((to, until));
            }
        }
        self.reevaluate(now, out);
        self.maybe_probe_early(now, out);
        if self.state == State::Backup
            && self.timers.get(Timer::MasterDown).is_some_and(|t| t <= now)
        {
            self.master_down_expired(now, out);
        }
        if self.timers.get(Timer::Advert).is_some_and(|t| t <= now) {
            self.send(now, out);
        }
    }

    fn on_advert(&mut self, now: Instant, a: Advert, out: &mut Vec<Action>) {
        if a.name == self.cfg.name {
            return; // our own advert echoed back, or a misconfigured twin: never follow it
        }
        self.max_seen = self.max_seen.max(a.epoch);
        let interval = interval_of(&a);
        // "From the master we follow": the followed peer while it is master (its priority-0
        // advert carries the state it left in) or as it reports a fault, or any master if we
        // follow none yet. A followed peer that already stepped down is not our master any
        // more: its leaving must not cut our timer — also when the advert saying it stepped
        // down never reached us, as after a planned handover right before a shutdown, where
        // the successor's first advert may still be on its way.
        let was_master = self
            .peers
            .get(&a.name)
            .is_some_and(|p| p.state == State::Master && p.priority != 0);
        let from_followed = match &self.followed {
            Some(f) => {
                f.name == a.name
                    && (a.state == State::Master || (was_master && a.state == State::Fault))
            }
            None => a.state == State::Master,
        };
        let contact_since = match self.peers.get(&a.name) {
            Some(p) if self.peer_is_live(now, p) => p.contact_since,
            _ => now,
        };
        let peer = Peer {
            state: a.state,
            priority: a.priority,
            epoch: a.epoch,
            seq: a.seq,
            last_heard: now,
            contact_since,
            interval,
            mac: a.mac,
            extra_macs: a.extra_macs.clone(),
            heard_us_at: a.heard_us_at,
        };
        match self.peers.get_mut(&a.name) {
            Some(p) => *p = peer,
            None => {
                self.peers.insert(a.name.clone(), peer);
            }
        }
        let leaving = a.priority == 0 || a.state == State::Fault;
        let named_us = a.handover_to.as_deref() == Some(self.cfg.name.as_str());
        if self.state == State::Backup && named_us && a.state == State::Master {
            self.take_over_planned(now, &a.name, out);
            return;
        }
        if self.state == State::Backup && named_us && a.state == State::Fault && was_master {
            // The master went to Fault (its VIPs released before this advert left) and
            // names us its successor: take over now, not after our skew.
            self.take_over_successor(now, &a.name, out);
            return;
        }
        if self.state == State::Fault && a.state == State::Master && !leaving {
            // Someone holds the VIPs again: our fault advert names no successor any more.
            self.handing_over = None;
        }
        if a.state == State::Master && !leaving && self.state != State::Master {
            self.followed = Some(Followed {
                name: a.name.clone(),
                interval,
                last_master_advert: now,
            });
        }
        match self.state {
            State::Backup if from_followed && leaving => {
                if a.priority == 0 && self.followed.is_none() {
                    // A leaving master we had not followed yet: remember it for the reason.
                    self.followed = Some(Followed {
                        name: a.name.clone(),
                        interval,
                        last_master_advert: now,
                    });
                }
                let t = after(now, skew_for(self.cfg.priority, interval));
                self.timers.set(
                    Timer::MasterDown,
                    self.timers.get(Timer::MasterDown).map_or(t, |d| d.min(t)),
                );
            }
            State::Backup if a.state == State::Master && !leaving => {
                let theirs = Rank {
                    priority: a.priority,
                    name: &a.name,
                };
                if theirs >= self.rank()
                    || !self.may_preempt(now)
                    || !self.contact_proven(now, &a.name)
                {
                    self.timers
                        .set(Timer::MasterDown, after(now, self.master_down_interval()));
                    // We hear a master again: an outstanding probe no longer matters.
                    self.probing = false;
                    self.probe_clear = false;
                    self.claim_block = None;
                    self.deferred = false;
                    self.quorum_notice = false;
                } else if self.two_way(&a.name) {
                    // Contact is proven both ways by the adverts themselves: preempt now,
                    // not at master-down (the old master hears our takeover advert and
                    // steps down). v1 peers keep RFC 9568's wait for the timer.
                    if let Some(t) = self.timers.get(Timer::MasterDown) {
                        self.timers.set(Timer::MasterDown, t.min(now));
                    }
                }
            }
            State::Master if a.state == State::Master && !leaving => {
                self.master_on_master_advert(now, &a, out)
            }
            _ => {}
        }
        self.reevaluate(now, out);
    }

    /// Re-checks isolation and quorum, which change with time, adverts and the witness.
    fn reevaluate(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.started_at.is_none() {
            return;
        }
        self.last_recheck = Some(now);
        let isolated = self.is_isolated(now);
        if isolated && !self.isolated {
            self.isolated = true;
            let detail = self
                .gateway
                .as_ref()
                .map_or("", |(_, d)| d.as_str())
                .to_string();
            let reason = format!(
                "isolated: no peer heard within master-down and the gateway does not answer ({detail}): \
                 not holding the VIPs"
            );
            self.enter_fault(now, Cause::Isolated, reason, out);
            return;
        }
        if !isolated && self.isolated {
            self.isolated = false;
            let why = if matches!(self.gateway, Some((true, _))) {
                "gateway answers again"
            } else {
                "a peer is heard again"
            };
            let why = format!("no longer isolated ({why})");
            self.leave_fault_if_clear(now, Cause::IsolationOver, why, out);
        }
        if self.state == State::Master {
            let (ok, heard, needed) = self.quorum(now);
            if !ok {
                let reason = format!(
                    "lost quorum: hear {heard} of {} nodes, need {needed}: stepping down",
                    self.cfg.cluster_size
                );
                self.step_down(now, Cause::QuorumLost, reason, out);
                self.send(now, out);
            }
        }
    }
}
