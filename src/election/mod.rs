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
//! - **Backup.** A master advert resets the master-down timer if that master ranks higher than
//!   us, or if we may not preempt (`preempt` off, still within `preempt_delay` of start
//!   or of our last forced step-down, or we have heard that master for less than
//!   [`PREEMPT_SETTLE`] without a gap).
//!   So a lower-ranked master is preempted at master-down. When the timer fires we take over.
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
//! - **Probe before claiming.** When the master-down timer runs out because the master went
//!   silent (not because it left with priority 0, reported a fault, or is a lower-ranked
//!   master we still hear and preempt), we first ask for an ARP probe of the VIPs
//!   ([`Action::Probe`]). If some host answers ([`Input::ProbeResult`] with its MAC) we do not
//!   claim: we say who holds the VIPs and probe again every advert interval. Lost adverts
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

mod cause;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod tests;

/// Default number of missed advert intervals before a backup takes over.
pub const DEFAULT_DOWN_MULTIPLIER: u32 = 3;

/// How long a backup must have heard a lower-ranked master without a gap before its
/// master-down timer may run out to preempt it.
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

/// At most one log notice about VIP conflicts per this interval; the next one says how many
/// conflicting frames came in between. A forger on the segment can send thousands of frames a
/// second; each costs a counter increment, not a log line.
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
    /// While master: the kernel dropped our VIPs because their lease ran out (we stalled).
    LeaseLost {
        /// What was found, in words.
        detail: String,
    },
    /// The health checks' priority adjustment changed: the advertised (effective) priority
    /// is `base + delta`, clamped to 1..=254 (keepalived's `weight`).
    PriorityDelta {
        /// Sum of the weights of the failing checks (negative lowers the priority).
        delta: i32,
    },
    /// The configured (base) priority changed on reload; clamped to 1..=254.
    BasePriority {
        /// The new base priority.
        priority: u8,
    },
    /// The operator turned maintenance mode on or off: while on, the node gives up the VIPs
    /// and does not take them.
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
    /// It counts as alive until then: last heard + master-down for its interval.
    pub alive_until: Instant,
}

impl PeerView {
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
    next_send: Option<Instant>,
    master_down_at: Option<Instant>,
    followed: Option<Followed>,
    peers: BTreeMap<String, Peer>,
    /// A probe is out; its result counts only while this is set.
    probing: bool,
    /// Who answers our probes in this episode, since when, and when we last said so.
    claim_block: Option<(ClaimBlock, Instant)>,
    /// This stay in backup already gave a live higher-ranked backup its turn to claim
    /// ([`DEFER_TO_BETTER_BACKUP`] advert intervals).
    deferred: bool,
    /// Whether "not taking over: no quorum" was said in this episode.
    quorum_notice: bool,
    /// The gateway witness's verdict and words; `None` = no witness or no verdict yet.
    gateway: Option<(bool, String)>,
    /// In Fault because isolated (no peer, no gateway).
    isolated: bool,
    /// The kinds of fault that hold now, with their reasons.
    faults: BTreeMap<FaultCause, String>,
    /// While a VIP install fault holds: when it clears by itself ([`VIP_INSTALL_RETRY`]).
    vip_retry_at: Option<Instant>,
    /// The configured priority; `cfg.priority` is the effective one (base + check delta).
    base_priority: u8,
    /// The health checks' adjustment.
    priority_delta: i32,
    /// A graceful stop is under way: shut down once not master, or at this deadline.
    stop_by: Option<Instant>,
    /// The `now` of the latest input.
    last_input: Option<Instant>,
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
    /// When we last said something about a conflict, and how many came since.
    last_conflict_notice: Option<Instant>,
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

/// `now + d`, or `now` in the (unreachable with clamped config) case of overflow.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

/// `(256 − priority) × interval / 256`, exact to the nanosecond.
fn skew_for(priority: u8, interval: Duration) -> Duration {
    let nanos = interval.as_nanos() * (256 - u128::from(priority)) / 256;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// An advert's interval, never below the wire minimum.
fn interval_of(a: &Advert) -> Duration {
    Duration::from_millis(u64::from(a.advert_interval_ms.max(MIN_ADVERT_INTERVAL_MS)))
}

/// A duration in milliseconds for reasons: "180 ms", "78.1 ms".
fn ms(d: Duration) -> String {
    let us = d.as_micros();
    if us % 1000 == 0 {
        format!("{} ms", us / 1000)
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

impl Election {
    /// A new election in state [`State::Init`]; nothing happens until [`Input::Start`].
    /// Out-of-range config values are clamped (see [`ElectionConfig`]).
    pub fn new(mut cfg: ElectionConfig, now: Instant) -> Self {
        cfg.priority = clamp_priority(i32::from(cfg.priority));
        let interval_ms = cfg.advert_interval.as_millis().clamp(
            u128::from(MIN_ADVERT_INTERVAL_MS),
            u128::from(MAX_ADVERT_INTERVAL_MS),
        );
        cfg.advert_interval = Duration::from_millis(u64::try_from(interval_ms).unwrap_or(10));
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
            next_send: None,
            master_down_at: None,
            followed: None,
            peers: BTreeMap::new(),
            probing: false,
            claim_block: None,
            deferred: false,
            quorum_notice: false,
            gateway: None,
            isolated: false,
            faults: BTreeMap::new(),
            vip_retry_at: None,
            base_priority,
            priority_delta: 0,
            stop_by: None,
            last_input: None,
            last_stepdown: None,
            last_fault_exit: None,
            handing_over: None,
            conflict_grace: None,
            contested: None,
            last_defence: None,
            last_conflict_notice: None,
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
        self.last_input = Some(now);
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
            }
            Input::BasePriority { priority } => {
                self.base_priority = clamp_priority(i32::from(priority));
                self.cfg.priority =
                    clamp_priority(i32::from(self.base_priority) + self.priority_delta);
            }
            Input::Maintenance { on } => self.on_maintenance(now, on, &mut out),
            Input::Handover { to } => self.on_handover(now, to, &mut out),
            Input::MacChanged { mac } => self.cfg.mac = mac,
            Input::LeaseLost { detail } => {
                if self.state == State::Master {
                    let reason = format!("VIP lease lost ({detail}): stepping down");
                    self.step_down(now, Cause::LeaseLost, reason, &mut out);
                }
            }
        }
        self.finish_stop(now, &mut out);
        out
    }

    /// When to call `handle(now, Input::Timeout)` next: the next advert, or the master-down
    /// timer when backup. `None` before start and after shutdown.
    pub fn next_deadline(&self) -> Option<Instant> {
        // A live peer expiring can isolate us or cost us quorum: wake up when it does.
        let expiry = if self.stopped || (self.gateway.is_none() && !self.quorum_applies()) {
            None
        } else {
            self.peers
                .values()
                .filter(|p| p.priority != 0)
                .map(|p| after(p.last_heard, self.master_down_for(p.interval)))
                .filter(|t| Some(*t) > self.last_input)
                .min()
        };
        let handover = self.handing_over.as_ref().map(|(_, until)| *until);
        let grace = self.conflict_grace.map(|(_, until)| until);
        let recheck = self
            .contested
            .filter(|c| !c.rechecked)
            .map(|c| after(c.since, self.cfg.advert_interval));
        [
            self.next_send,
            self.master_down_at,
            expiry,
            handover,
            grace,
            recheck,
            self.vip_retry_at,
            self.stop_by,
        ]
        .into_iter()
        .flatten()
        .min()
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

    /// Master-down interval for the master we follow: multiplier × its interval + our skew.
    pub fn master_down_interval(&self) -> Duration {
        self.master_down_for(self.master_interval())
    }

    /// Our skew for the master we follow: `(256 − our priority) × its interval / 256`.
    pub fn skew(&self) -> Duration {
        skew_for(self.cfg.priority, self.master_interval())
    }

    /// Every peer heard from, sorted by name.
    pub fn peers(&self) -> Vec<PeerView> {
        self.peers
            .iter()
            .map(|(name, p)| PeerView {
                name: name.clone(),
                state: p.state,
                priority: p.priority,
                epoch: p.epoch,
                seq: p.seq,
                last_heard: p.last_heard,
                advert_interval: p.interval,
                mac: p.mac,
                alive_until: after(p.last_heard, self.master_down_for(p.interval)),
            })
            .collect()
    }

    /// Our own name if master; else the peer whose last advert said master (not leaving).
    pub fn master(&self) -> Option<&str> {
        if self.state == State::Master {
            return Some(&self.cfg.name);
        }
        let f = self.followed.as_ref()?;
        let p = self.peers.get(&f.name)?;
        (p.state == State::Master && p.priority != 0).then_some(f.name.as_str())
    }

    fn master_interval(&self) -> Duration {
        self.followed
            .as_ref()
            .map_or(self.cfg.advert_interval, |f| f.interval)
    }

    fn master_down_for(&self, interval: Duration) -> Duration {
        interval
            .saturating_mul(self.cfg.down_multiplier)
            .saturating_add(skew_for(self.cfg.priority, interval))
    }

    fn rank(&self) -> Rank<'_> {
        Rank {
            priority: self.cfg.priority,
            name: &self.cfg.name,
        }
    }

    /// Whether we have heard `name` without a gap for [`PREEMPT_SETTLE`].
    fn settled_with(&self, now: Instant, name: &str) -> bool {
        self.peers
            .get(name)
            .is_some_and(|p| now >= after(p.contact_since, PREEMPT_SETTLE))
    }

    fn may_preempt(&self, now: Instant) -> bool {
        let since = self
            .started_at
            .max(self.last_stepdown)
            .max(self.last_fault_exit);
        self.cfg.preempt
            && !self.yielded
            && since.is_some_and(|s| now >= after(s, self.cfg.preempt_delay))
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
                (Some((to, _)), State::Master) => Some(to.clone()),
                _ => None,
            },
        }
    }

    fn send(&mut self, now: Instant, out: &mut Vec<Action>) {
        let a = self.advert(self.state, self.cfg.priority);
        out.push(Action::Send(a));
        self.next_send = Some(after(now, self.cfg.advert_interval));
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
        self.contested = None;
        if to != State::Backup {
            self.master_down_at = None;
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
        self.master_down_at = Some(after(now, self.master_down_interval()));
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
        if self.vip_retry_at.is_some_and(|t| now >= t) {
            self.vip_retry_at = None;
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
            if now >= until {
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
        if self.state == State::Backup && self.master_down_at.is_some_and(|t| t <= now) {
            self.master_down_expired(now, out);
        }
        if self.next_send.is_some_and(|t| t <= now) {
            self.send(now, out);
        }
    }

    fn take_over(&mut self, now: Instant, out: &mut Vec<Action>) {
        let epoch = self.max_seen.saturating_add(1);
        let (cause, reason) = self.takeover_reason(now, epoch);
        self.take_over_with(now, cause, reason, out);
    }

    /// Becomes master with the next epoch: install, announce, advertise.
    fn take_over_with(
        &mut self,
        now: Instant,
        cause: Cause,
        reason: String,
        out: &mut Vec<Action>,
    ) {
        let epoch = self.max_seen.saturating_add(1);
        let reason = if cause == Cause::ClaimedOverForeign {
            format!("{reason}, epoch {epoch}")
        } else {
            reason
        };
        self.claim_block = None;
        self.master_epoch = epoch;
        self.max_seen = epoch;
        self.followed = None;
        self.yielded = false;
        self.transition(now, State::Master, cause, reason, out);
        out.push(Action::InstallVips);
        out.push(Action::Announce);
        self.send(now, out);
    }

    fn takeover_reason(&self, now: Instant, epoch: u64) -> (Cause, String) {
        let md = self.master_down_interval();
        let Some(f) = &self.followed else {
            return (
                Cause::MasterDown,
                format!(
                    "never heard a master within master-down {}: taking over, epoch {epoch}",
                    ms(md)
                ),
            );
        };
        let n = &f.name;
        let silent = now.saturating_duration_since(f.last_master_advert);
        let Some(p) = self.peers.get(n) else {
            return (
                Cause::MasterDown,
                format!(
                    "no advert from {n} for {} (master-down {}): taking over, epoch {epoch}",
                    ms(silent),
                    ms(md)
                ),
            );
        };
        let theirs = Rank {
            priority: p.priority,
            name: n,
        };
        if p.priority == 0 {
            (
                Cause::PriorityZero,
                format!(
                    "{n} is leaving (priority 0): taking over after skew {}, epoch {epoch}",
                    ms(self.skew())
                ),
            )
        } else if p.state == State::Fault {
            (
                Cause::PeerFault,
                format!(
                    "{n} reported a fault: taking over after skew {}, epoch {epoch}",
                    ms(self.skew())
                ),
            )
        } else if p.state == State::Master && silent < md && theirs < self.rank() {
            let reason = if p.priority < self.cfg.priority {
                format!(
                    "preempting lower-priority master {n} (priority {} < {}), epoch {epoch}",
                    p.priority, self.cfg.priority
                )
            } else {
                format!(
                    "preempting lower-ranked master {n} (equal priority {}, {} sorts before {n}), epoch {epoch}",
                    p.priority, self.cfg.name
                )
            };
            (Cause::Preempt, reason)
        } else if p.state == State::Master {
            (
                Cause::MasterDown,
                format!(
                    "no advert from {n} for {} (master-down {}): taking over, epoch {epoch}",
                    ms(silent),
                    ms(md)
                ),
            )
        } else {
            (
                Cause::MasterDown,
                format!(
                    "{n} stopped advertising as master {} ago (master-down {}): taking over, epoch {epoch}",
                    ms(silent),
                    ms(md)
                ),
            )
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
        };
        match self.peers.get_mut(&a.name) {
            Some(p) => *p = peer,
            None => {
                self.peers.insert(a.name.clone(), peer);
            }
        }
        let leaving = a.priority == 0 || a.state == State::Fault;
        if self.state == State::Backup
            && a.state == State::Master
            && a.handover_to.as_deref() == Some(self.cfg.name.as_str())
        {
            self.take_over_planned(now, &a.name, out);
            return;
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
                self.master_down_at = Some(self.master_down_at.map_or(t, |d| d.min(t)));
            }
            State::Backup if a.state == State::Master && !leaving => {
                let theirs = Rank {
                    priority: a.priority,
                    name: &a.name,
                };
                if theirs >= self.rank()
                    || !self.may_preempt(now)
                    || !self.settled_with(now, &a.name)
                {
                    self.master_down_at = Some(after(now, self.master_down_interval()));
                    // We hear a master again: an outstanding probe no longer matters.
                    self.probing = false;
                    self.claim_block = None;
                    self.deferred = false;
                    self.quorum_notice = false;
                }
            }
            State::Master if a.state == State::Master && !leaving => {
                self.master_on_master_advert(now, &a, out)
            }
            _ => {}
        }
        self.reevaluate(now, out);
    }

    fn master_on_master_advert(&mut self, now: Instant, a: &Advert, out: &mut Vec<Action>) {
        let theirs = Rank {
            priority: a.priority,
            name: &a.name,
        };
        let ours = self.rank();
        if (a.epoch, theirs) < (self.master_epoch, ours) {
            self.send(now, out);
            out.push(Action::Announce);
            return;
        }
        let planned = self.handing_over.take().is_some_and(|(to, _)| to == a.name);
        let (cause, reason) = if planned {
            (
                Cause::Handover,
                format!(
                    "handed over to {} (planned), its epoch {}: releasing the VIPs",
                    a.name, a.epoch
                ),
            )
        } else if a.epoch > self.master_epoch {
            (
                Cause::StaleEpoch,
                format!(
                    "{} is master with epoch {} > our {} (stale after partition): stepping down",
                    a.name, a.epoch, self.master_epoch
                ),
            )
        } else if a.priority > self.cfg.priority {
            (
                Cause::Outranked,
                format!(
                    "{} is master with equal epoch {}, higher rank (priority {} > {}): stepping down",
                    a.name, a.epoch, a.priority, self.cfg.priority
                ),
            )
        } else {
            (
                Cause::Outranked,
                format!(
                    "{} is master with equal epoch {}, higher rank (equal priority {}, {} sorts before {}): stepping down",
                    a.name, a.epoch, a.priority, a.name, self.cfg.name
                ),
            )
        };
        self.followed = Some(Followed {
            name: a.name.clone(),
            interval: interval_of(a),
            last_master_advert: now,
        });
        self.step_down(now, cause, reason, out);
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        let was = self.state;
        let bye = self.started_at.map(|_| self.advert(was, 0));
        if was != State::Init {
            self.transition(
                now,
                State::Init,
                Cause::Shutdown,
                "shutting down".into(),
                out,
            );
        }
        if was == State::Master {
            out.push(Action::ReleaseVips);
        }
        out.extend(bye.map(Action::Send));
        self.stopped = true;
        self.next_send = None;
        self.master_down_at = None;
        self.stop_by = None;
        self.vip_retry_at = None;
        self.conflict_grace = None;
        self.handing_over = None;
    }

    fn on_fault(&mut self, now: Instant, cause: FaultCause, reason: String, out: &mut Vec<Action>) {
        if cause == FaultCause::VipInstall {
            self.vip_retry_at = Some(after(now, VIP_INSTALL_RETRY));
        }
        self.faults.insert(cause, reason.clone());
        self.enter_fault(now, Cause::Fault(cause), reason, out);
    }

    fn enter_fault(&mut self, now: Instant, cause: Cause, reason: String, out: &mut Vec<Action>) {
        let was = self.state;
        if was == State::Fault {
            return;
        }
        self.probing = false;
        self.transition(now, State::Fault, cause, reason, out);
        if was == State::Master {
            out.push(Action::ReleaseVips);
        }
        if self.started_at.is_some() {
            self.send(now, out);
        }
    }

    fn on_fault_cleared(&mut self, now: Instant, cause: FaultCause, out: &mut Vec<Action>) {
        if self.faults.remove(&cause).is_none() {
            return;
        }
        if cause == FaultCause::VipInstall {
            self.vip_retry_at = None;
        }
        self.leave_fault_if_clear(now, Cause::FaultCleared, "fault cleared".into(), out);
    }

    /// Why we must stay in Fault, if we must: a fault kind that holds, isolation or
    /// maintenance. The one rule for leaving Fault.
    fn held_in_fault(&self) -> bool {
        !self.faults.is_empty() || self.isolated || self.maintenance
    }

    /// Leaves Fault for Backup (fresh master-down timer) if nothing holds us there any more;
    /// `why` starts the transition's reason.
    fn leave_fault_if_clear(
        &mut self,
        now: Instant,
        cause: Cause,
        why: String,
        out: &mut Vec<Action>,
    ) {
        if self.state != State::Fault || self.held_in_fault() {
            return;
        }
        if self.started_at.is_some() {
            let reason = format!(
                "{why}: backup, master-down {}",
                ms(self.master_down_interval())
            );
            self.enter_backup(now, cause, reason, out);
            self.send(now, out);
        } else {
            let reason = format!("{why} before start");
            self.transition(now, State::Init, cause, reason, out);
        }
    }

    /// Peers heard recently enough to count as alive (and not leaving).
    fn live_peers(&self, now: Instant) -> impl Iterator<Item = (&String, &Peer)> {
        self.peers
            .iter()
            .filter(move |(_, p)| self.peer_is_live(now, p))
    }

    fn peer_is_live(&self, now: Instant, p: &Peer) -> bool {
        p.priority != 0 && now < after(p.last_heard, self.master_down_for(p.interval))
    }

    fn quorum_applies(&self) -> bool {
        self.cfg.quorum && self.cfg.cluster_size >= 2
    }

    /// Whether we hear a majority of the cluster, ourselves included (always true without
    /// quorum). Returns (heard, needed) for the reasons.
    fn quorum(&self, now: Instant) -> (bool, usize, usize) {
        let heard = 1 + self.live_peers(now).count();
        let needed = self.cfg.cluster_size / 2 + 1;
        (!self.quorum_applies() || heard >= needed, heard, needed)
    }

    /// No live peer and the gateway does not answer.
    fn is_isolated(&self, now: Instant) -> bool {
        matches!(self.gateway, Some((false, _))) && self.live_peers(now).next().is_none()
    }

    /// Re-checks isolation and quorum, which change with time, adverts and the witness.
    fn reevaluate(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.started_at.is_none() {
            return;
        }
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

    /// The master-down timer ran out while backup: take over, or first make sure nobody
    /// else holds the VIPs, or wait for quorum.
    fn master_down_expired(&mut self, now: Instant, out: &mut Vec<Action>) {
        let (ok, heard, needed) = self.quorum(now);
        if !ok {
            if !self.quorum_notice {
                self.quorum_notice = true;
                out.push(Action::Notice {
                    cause: NoticeCause::NoQuorum,
                    reason: format!(
                        "not taking over: hear {heard} of {} nodes, need {needed} (quorum)",
                        self.cfg.cluster_size
                    ),
                });
            }
            self.master_down_at = Some(after(now, self.master_down_interval()));
            return;
        }
        if self.cfg.probe && !self.handover_is_coordinated(now) {
            if !self.probing {
                self.probing = true;
                out.push(Action::Probe);
            }
            // The probe result decides; until then no timer.
            self.master_down_at = None;
            return;
        }
        self.take_over(now, out);
    }

    /// Whether a live peer in state backup ranks higher than us.
    fn outranked_by_live_backup(&self, now: Instant) -> bool {
        self.live_peers(now).any(|(name, p)| {
            p.state == State::Backup
                && Rank {
                    priority: p.priority,
                    name,
                } > self.rank()
        })
    }

    /// A takeover the old master agreed to by message (it left with priority 0 or reported a
    /// fault) or one we do while hearing it (preemption): no ARP probe needed.
    fn handover_is_coordinated(&self, now: Instant) -> bool {
        let followed_left = self.followed.as_ref().is_some_and(|f| {
            self.peers
                .get(&f.name)
                .is_some_and(|p| p.priority == 0 || p.state == State::Fault)
        });
        let hear_a_master = self.live_peers(now).any(|(_, p)| p.state == State::Master);
        followed_left || hear_a_master
    }

    fn peer_with_mac(&self, mac: [u8; 6]) -> Option<(&String, &Peer)> {
        self.peers.iter().find(|(_, p)| p.mac == mac)
    }

    /// `mac` in words: whose it is by the adverts, and whether we hear that peer.
    fn describe_mac(&self, now: Instant, mac: [u8; 6]) -> String {
        match self.peer_with_mac(mac) {
            Some((name, p)) if self.peer_is_live(now, p) => format!(
                "{} ({name}, heard, its adverts say {})",
                format_mac(&mac),
                p.state
            ),
            Some((name, _)) => format!("{} ({name}, not heard)", format_mac(&mac)),
            None => format!("{} (not a cluster member)", format_mac(&mac)),
        }
    }

    fn on_probe_result(
        &mut self,
        now: Instant,
        answered_by: Option<[u8; 6]>,
        out: &mut Vec<Action>,
    ) {
        if !std::mem::take(&mut self.probing) || self.state != State::Backup {
            return;
        }
        match answered_by.filter(|m| *m != self.cfg.mac) {
            Some(mac) => {
                let member = self.peer_with_mac(mac).map(|(name, _)| name.clone());
                let previous = self
                    .claim_block
                    .as_ref()
                    .map(|(b, said)| (b.clone(), *said));
                let first = previous.as_ref().is_none_or(|(b, _)| b.mac != mac);
                let since = match &previous {
                    Some((b, _)) if !first => b.since,
                    _ => now,
                };
                // When only non-members have answered since: kept across a change of the
                // answering non-member MAC (two proxy-ARP routers, a fabric answering with
                // varying MACs), reset by a member's answer.
                let foreign_since = match (&member, &previous) {
                    (Some(_), _) => None,
                    (None, Some((b, _))) => Some(b.foreign_since.unwrap_or(now)),
                    (None, None) => Some(now),
                };
                let blocked_for = now.saturating_duration_since(since);
                // RFC 5227 2.1.1 says a conflict means "do not use the address". A member's
                // answer is the split-brain layer itself; a non-member's may be a duplicate
                // address, a proxy-ARP router or a cloud fabric answering for everyone, so
                // the operator can bound the wait (docs/election.md).
                let foreign_for = foreign_since.map(|t| now.saturating_duration_since(t));
                let (quorum_ok, _, _) = self.quorum(now);
                if let (Some(limit), Some(waited)) = (self.cfg.foreign_holder_timeout, foreign_for)
                {
                    if waited >= limit && quorum_ok && !self.is_isolated(now) {
                        let reason = format!(
                            "only hosts that are not cluster members (last {}) have answered \
                             for the VIPs, for {}, past foreign_holder_timeout_ms: claiming them anyway",
                            format_mac(&mac),
                            ms(waited)
                        );
                        self.claim_block = None;
                        self.take_over_with(now, Cause::ClaimedOverForeign, reason, out);
                        return;
                    }
                }
                let remind = !first
                    && previous
                        .as_ref()
                        .is_some_and(|(_, said)| now >= after(*said, CLAIM_BLOCKED_REMINDER));
                if first {
                    out.push(Action::Notice {
                        cause: NoticeCause::ClaimBlocked,
                        reason: format!(
                            "not claiming the VIPs: answered by {}; probing again every {}",
                            self.describe_mac(now, mac),
                            ms(self.cfg.advert_interval)
                        ),
                    });
                } else if remind {
                    out.push(Action::Notice {
                        cause: NoticeCause::ClaimStillBlocked,
                        reason: format!(
                            "still not claiming the VIPs: answered by {} for {}",
                            self.describe_mac(now, mac),
                            ms(blocked_for)
                        ),
                    });
                }
                let said = match &previous {
                    Some((_, said)) if !first && !remind => *said,
                    _ => now,
                };
                let block = ClaimBlock {
                    mac,
                    member,
                    since,
                    foreign_since,
                };
                self.claim_block = Some((block, said));
                self.master_down_at = Some(after(now, self.cfg.advert_interval));
            }
            None => {
                self.claim_block = None;
                // The skew orders the backups' master-down expiries by a few milliseconds
                // only (priority 150 vs 100 at 50 ms adverts: 10 ms), less than the probe
                // window that follows each, and after a blocked claim clears each backup
                // finds out at its own next re-probe, up to an advert interval apart. So a
                // probe that comes back clear does not settle it alone: a live backup that
                // outranks us gets one turn to claim first; we follow its adverts, or we
                // probe again and claim.
                if !self.deferred && self.outranked_by_live_backup(now) {
                    self.deferred = true;
                    let wait = self.cfg.advert_interval * DEFER_TO_BETTER_BACKUP;
                    self.master_down_at = Some(after(now, wait));
                    return;
                }
                let (ok, _, _) = self.quorum(now);
                if ok && !self.is_isolated(now) {
                    self.take_over(now, out);
                } else {
                    self.master_down_at = Some(after(now, self.master_down_interval()));
                }
            }
        }
    }

    /// Another host answered for one of our VIPs on the wire (an ARP reply or
    /// announcement from a MAC that is not ours). The frame is not authenticated: what the
    /// peers say in their adverts outweighs it.
    /// - A live peer whose adverts say it is not master never makes us release: its
    ///   takeover advert is probably trailing its gratuitous ARP, so we wait up to a
    ///   master-down for that advert, then re-assert ([`Self::on_timeout`]). Anyone on the
    ///   segment can forge a frame carrying a member's MAC.
    /// - A member we cannot hear (it may have taken over on the other side of a partition),
    ///   or one whose adverts say master, is judged by `(epoch, rank)` from its last
    ///   advert: the lower releases. Forging that takes silencing the member too.
    /// - An unknown MAC is answered with a re-announcement.
    ///
    /// Re-assertion is RFC 5227 §2.4 (b) defence, at most once per advert interval, so a
    /// flood of forged claims costs a bounded number of announcements.
    fn on_conflict(&mut self, now: Instant, mac: [u8; 6], out: &mut Vec<Action>) {
        if self.state != State::Master || mac == self.cfg.mac {
            return;
        }
        self.conflicts_unreported = self.conflicts_unreported.saturating_add(1);
        let member = self
            .peer_with_mac(mac)
            .map(|(name, p)| (name.clone(), p.clone()));
        match member {
            Some((_, p)) if self.peer_is_live(now, &p) && p.state != State::Master => {
                if self.conflict_grace.is_some_and(|(m, _)| m == mac) {
                    return; // already waiting for this peer's advert
                }
                self.conflict_grace = Some((mac, after(now, self.master_down_interval())));
                let reason = format!(
                    "VIP conflict: {} also answers for the VIPs; waiting for its advert",
                    self.describe_mac(now, mac)
                );
                self.conflict_notice(now, NoticeCause::ConflictPending, reason, out);
                self.send(now, out);
            }
            Some((name, p))
                if (
                    self.epoch_of_claimant(now, mac, &p),
                    Rank {
                        priority: p.priority,
                        name: &name,
                    },
                ) > (self.master_epoch, self.rank()) =>
            {
                let reason = format!(
                    "VIP conflict: {} also answers for the VIPs and outranks us \
                     (epoch {} priority {} vs our epoch {} priority {}): releasing",
                    self.describe_mac(now, mac),
                    self.epoch_of_claimant(now, mac, &p),
                    p.priority,
                    self.master_epoch,
                    self.cfg.priority
                );
                self.step_down(now, Cause::Conflict, reason, out);
                self.send(now, out);
            }
            Some((_, p)) => {
                if !self.peer_is_live(now, &p) {
                    match &mut self.contested {
                        Some(c) if c.mac == mac => c.answered |= now > c.since,
                        _ => {
                            self.contested = Some(Contest {
                                mac,
                                since: now,
                                answered: false,
                                rechecked: false,
                            })
                        }
                    }
                }
                self.defend(now, mac, out);
            }
            None => self.defend(now, mac, out),
        }
    }

    /// The epoch a member that answers for our VIPs holds them with, as far as we can tell.
    /// A live peer has the epoch it last advertised. A member we cannot hear whose last
    /// advert said master is taken at that epoch (a master's epoch does not change while it
    /// stays master: a frozen master resuming still has it, and loses to our newer one).
    /// One whose last advert said backup must have taken over since, with at least its last
    /// epoch + 1; we count it as at least ours, so that rank breaks the tie, and both
    /// sides, each judging the other this way, reach the same verdict.
    ///
    /// The master case can still be wrong: a member we cannot hear may have stepped down and
    /// taken over again since its last advert, with an epoch above ours; then each side
    /// thinks it won and both keep the VIPs (seen in the simulation with peer traffic
    /// blocked: 3.7 s on one L2). So once we have re-announced against it and it still
    /// answers an advert interval later ([`Self::contested`]), its epoch counts as at least
    /// ours too, and rank decides on both sides.
    fn epoch_of_claimant(&self, now: Instant, mac: [u8; 6], p: &Peer) -> u64 {
        if self.peer_is_live(now, p) {
            return p.epoch;
        }
        let still_contested = self
            .contested
            .is_some_and(|c| c.mac == mac && now >= after(c.since, self.cfg.advert_interval));
        if p.state == State::Master && p.priority != 0 && !still_contested {
            p.epoch
        } else {
            p.epoch.saturating_add(1).max(self.master_epoch)
        }
    }

    /// An advert interval after we re-announced against a member we cannot hear
    /// ([`Contest`]): if it answered again since, rank alone decides now; either way, if we
    /// keep the VIPs we re-announce once more, so that a contender that is still holding
    /// them sees it and applies the same rule.
    fn recheck_contest(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(c) = self.contested else {
            return;
        };
        if c.rechecked || now < after(c.since, self.cfg.advert_interval) {
            return;
        }
        self.contested = Some(Contest {
            rechecked: true,
            ..c
        });
        if self.state != State::Master {
            return;
        }
        let live = self
            .peer_with_mac(c.mac)
            .is_none_or(|(_, p)| self.peer_is_live(now, p));
        if live {
            return; // its adverts flow again: the advert rules settle it
        }
        if c.answered {
            // Releases if it outranks us, else re-announces.
            self.on_conflict(now, c.mac, out);
        } else {
            self.last_defence = Some(now);
            out.push(Action::Announce);
        }
    }

    /// Re-announces the VIPs after a conflict with `mac`, at most once per advert interval,
    /// and says so at most once per [`CONFLICT_NOTICE_INTERVAL`].
    fn defend(&mut self, now: Instant, mac: [u8; 6], out: &mut Vec<Action>) {
        if self
            .last_defence
            .is_some_and(|t| now < after(t, self.cfg.advert_interval))
        {
            return;
        }
        self.last_defence = Some(now);
        let reason = format!(
            "VIP conflict: {} also answers for the VIPs; we are the elected master: re-announcing",
            self.describe_mac(now, mac)
        );
        self.conflict_notice(now, NoticeCause::ConflictWon, reason, out);
        out.push(Action::Announce);
        self.send(now, out);
    }

    /// A conflict notice, rate-limited: one per [`CONFLICT_NOTICE_INTERVAL`], carrying the
    /// number of conflicts since the last one.
    fn conflict_notice(
        &mut self,
        now: Instant,
        cause: NoticeCause,
        reason: String,
        out: &mut Vec<Action>,
    ) {
        if self
            .last_conflict_notice
            .is_some_and(|t| now < after(t, CONFLICT_NOTICE_INTERVAL))
        {
            return;
        }
        self.last_conflict_notice = Some(now);
        let n = std::mem::take(&mut self.conflicts_unreported);
        let reason = if n > 1 {
            format!("{reason} ({n} conflicting frames since the last notice)")
        } else {
            reason
        };
        out.push(Action::Notice { cause, reason });
    }

    fn take_over_planned(&mut self, now: Instant, from: &str, out: &mut Vec<Action>) {
        let epoch = self.max_seen.saturating_add(1);
        self.master_epoch = epoch;
        self.max_seen = epoch;
        self.followed = None;
        self.yielded = false;
        self.probing = false;
        let reason = format!("planned handover from {from}: taking over, epoch {epoch}");
        self.transition(now, State::Master, Cause::Handover, reason, out);
        out.push(Action::InstallVips);
        out.push(Action::Announce);
        self.send(now, out);
    }

    /// The best live backup by [`Rank`], to hand over to.
    fn best_live_backup(&self, now: Instant) -> Option<&str> {
        self.live_peers(now)
            .filter(|(_, p)| p.state == State::Backup)
            .max_by_key(|(name, p)| Rank {
                priority: p.priority,
                name,
            })
            .map(|(name, _)| name.as_str())
    }

    fn on_handover(&mut self, now: Instant, to: Option<String>, out: &mut Vec<Action>) {
        let refuse = |reason: String, out: &mut Vec<Action>| {
            out.push(Action::Notice {
                cause: NoticeCause::HandoverRefused,
                reason,
            });
        };
        if self.state != State::Master {
            let master = self.master().unwrap_or("none known").to_string();
            return refuse(
                format!(
                    "this node is {}, not master: run handover on the master ({master})",
                    self.state
                ),
                out,
            );
        }
        let live: Vec<&str> = self
            .live_peers(now)
            .filter(|(_, p)| p.state == State::Backup)
            .map(|(name, _)| name.as_str())
            .collect();
        let target = match to {
            Some(name) if live.contains(&name.as_str()) => name,
            Some(name) => {
                let live = if live.is_empty() {
                    "none".to_string()
                } else {
                    live.join(", ")
                };
                return refuse(
                    format!("{name} is not a live backup (live backups: {live})"),
                    out,
                );
            }
            None => match self.best_live_backup(now) {
                Some(best) => best.to_string(),
                None => return refuse("no live backup to hand over to".into(), out),
            },
        };
        self.start_handover(now, target, out);
    }

    fn start_handover(&mut self, now: Instant, to: String, out: &mut Vec<Action>) {
        out.push(Action::Notice {
            cause: NoticeCause::HandoverStarted,
            reason: format!("handing over to {to} (planned, make-before-break)"),
        });
        // Give the target a master-down to act; the handover advert goes out every interval.
        self.handing_over = Some((to, after(now, self.master_down_interval())));
        self.yielded = true;
        self.send(now, out);
    }

    fn on_stop(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.stop_by.is_some() {
            return;
        }
        let successor = (self.state == State::Master)
            .then(|| self.best_live_backup(now).map(str::to_string))
            .flatten();
        match successor {
            Some(to) => {
                let wait = self
                    .master_down_interval()
                    .saturating_mul(STOP_HANDOVER_MASTER_DOWNS);
                self.stop_by = Some(after(now, wait));
                self.start_handover(now, to, out);
            }
            None => self.on_shutdown(now, out),
        }
    }

    /// Completes a graceful stop once the successor has taken over, or at its deadline.
    fn finish_stop(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(deadline) = self.stop_by else {
            return;
        };
        if self.stopped {
            return;
        }
        if self.state == State::Master && now < deadline {
            return;
        }
        if self.state == State::Master {
            out.push(Action::Notice {
                cause: NoticeCause::HandoverTimedOut,
                reason: "the successor did not take over in time: stopping anyway".into(),
            });
        }
        self.on_shutdown(now, out);
    }

    fn on_maintenance(&mut self, now: Instant, on: bool, out: &mut Vec<Action>) {
        if on == self.maintenance {
            return;
        }
        self.maintenance = on;
        if on {
            let reason = "maintenance mode on: giving up the VIPs".into();
            self.enter_fault(now, Cause::MaintenanceOn, reason, out);
        } else {
            let why = "maintenance mode off".to_string();
            self.leave_fault_if_clear(now, Cause::MaintenanceOff, why, out);
        }
    }

    /// Whether maintenance mode is on.
    pub fn maintenance(&self) -> bool {
        self.maintenance
    }

    /// The live peers (heard within their master-down), for status and quorum display:
    /// (heard including us, needed for quorum, whether quorum applies).
    pub fn quorum_view(&self, now: Instant) -> (usize, usize, bool) {
        let (_, heard, needed) = self.quorum(now);
        (heard, needed, self.quorum_applies())
    }
}
