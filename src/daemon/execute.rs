//! Carrying out: the drivers that act on the election's [`Action`]s and on the kernel facts
//! the loop reports (a VIP removed, the interface moved, a stranger's ARP frame), grouped by
//! what they act on. Nothing here feeds the election: a method whose outcome the election
//! must hear returns the [`Input`], and the loop steps it.
//!
//! - [`Node`]: what every group shares: [`PeerLinks`] (the QUIC transport and the peer
//!   list; redials and ARP-solicits a peer whose path works again, see `solicit.rs`), the
//!   metrics and the counters.
//! - [`GroupExec`]: one VIP group's drivers, one [`Side`] per interface its VIPs use, and
//!   its [`Record`] (transition history, notify hooks).
//! - [`Side`]: on one interface, [`Vips`] (the VIP manager and its lease: install, release,
//!   renew, repair) and [`Arp`] (the gratuitous ARP announcer, the ARP watch, the ARP
//!   probe), and the watches that report for that interface.
//!
//! The VIP lease: while master, the loop re-checks every quarter lease that the kernel still
//! has the VIPs and renews their lifetime. If it finds them gone (we were frozen longer than
//! the lease), it tells the election, which steps down instead of re-adding them: another
//! node may hold them by now. A VIP removed by someone else while the lease still runs is
//! installed again (see [`Executor::vip_removed`] and docs/election.md); the lease check
//! applies the same rule as a backstop.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::Sender;

use crate::bird::{ExportWatch, WatchSpec};
use crate::certs;
use crate::config::GroupConfig;
use crate::control::TransitionRecord;
use crate::election::{Action, Cause, Election, FaultCause, Input, NoticeCause};
use crate::health::CheckStatus;
use crate::metrics::{Metrics, RejectReason};
use crate::mover::{Mover, MoverAction, MoverView, Outcome};
use crate::net::VipSpec;
use crate::net::{format_mac, IpCidr, RouteSpec};
use crate::notify::{ConflictWon, Notifier, TransitionEvent};
use crate::transport::{PeerSpec, Transport};
use crate::vip::{
    AddressEvent, AddressWatch, Announcer, ArpConflict, ArpProbe, ArpWatch, CarrierWatch,
    LinkState, RouteManager, VipError, VipManager,
};
use crate::wire::State;

use super::admission::Drift;
use super::solicit;

/// How many transitions `status` shows.
pub(super) const TRANSITIONS_KEPT: usize = 20;
/// How long `status` reuses its last netlink read of the installed VIPs. The read is the one
/// part of a status that leaves the process; a storm of clients (issue 9, fault 6) then costs
/// the loop at most one netlink round trip per this period. The cache is forgotten whenever
/// the VIPs are installed or released, so a status right after a transition is exact.
const HELD_FRESH: Duration = Duration::from_millis(100);

/// What every group shares: the peers, the metrics and the counters.
pub(super) struct Node {
    pub(super) peers: PeerLinks,
    pub(super) metrics: Arc<Metrics>,
    pub(super) counters: Counters,
}

/// One VIP group's drivers: one [`Side`] per interface its VIPs use, in config order (the
/// first is the group's primary interface: its MAC is the one the group's election knows).
pub(super) struct GroupExec {
    /// The group's name, as in logs and status.
    pub(super) name: String,
    /// The group's index in the config (and in the daemon's group list).
    pub(super) index: usize,
    pub(super) sides: Vec<Side>,
    /// Probes per VIP and their window (`[vip] probe_*`).
    pub(super) probe_count: u32,
    pub(super) probe_window: Duration,
    /// Where probe answers go (the loop's probe-result input), tagged with the group index.
    pub(super) probe_results: Sender<(usize, Option<[u8; 6]>)>,
    pub(super) record: Record,
    /// The group's routes (`[[group.route]]`), installed after its VIPs and removed
    /// before them; `None` when it has none.
    pub(super) routes: Option<Routes>,
    /// A routed group's host routes (one per VIP, metric = the claim's epoch): part of the
    /// claim, unlike `routes` — installed right after the VIPs, and a claim whose host
    /// routes fail is a failed install (the group faults), since without them nothing
    /// announces the VIPs. `None` for an l2 group.
    pub(super) host_routes: Option<Routes>,
    /// `[vip] ignore_arp_from`: probe answers from these MACs are no answers.
    pub(super) ignore_arp_from: Arc<[[u8; 6]]>,
    /// `[vip] foreign_holder_timeout_ms` (`None` = 0: never claim over a non-member), for
    /// the policy words of a blocked claim ([`claim_policy`]).
    pub(super) foreign_holder_timeout: Option<Duration>,
    /// The group's cloud mover and where its claim is.
    pub(super) cloud: Cloud,
    /// A routed group with `bird_socket`: the watch of what its BIRD exports (status and
    /// metrics only; nothing here reads it for the election).
    pub(super) export: Option<ExportWatch>,
}

/// A group's cloud mover ([`crate::mover`], docs/cloud.md) and the claim it serves.
///
/// A claim is a transition to master ([`Action::Transition`]) followed by the VIP install
/// ([`Action::InstallVips`]): the claim run is queued once the install succeeded. A release
/// run is queued after [`Action::ReleaseVips`], if this mastership queued a claim.
#[derive(Default)]
pub(super) struct Cloud {
    pub(super) mover: Option<Mover>,
    /// A transition to master was carried out; its install comes next.
    claim_due: bool,
    /// This mastership queued a claim run: its release queues a release run.
    claimed: bool,
    /// `wait = true`: the master transition held back until the claim run succeeds.
    pub(super) waiting: Option<Waiting>,
    /// The group's master before us, by name, as last heard (`HAAGENT_OLD_HOLDER`).
    pub(super) old_holder: Option<String>,
}

/// A master transition whose record (log, history, hooks, metrics) waits for the claim
/// run `id` (`wait = true`).
pub(super) struct Waiting {
    /// The claim run's id (0 until the VIPs are installed and the run is queued).
    pub(super) id: u64,
    /// The state the group reports meanwhile.
    pub(super) from: State,
    to: State,
    epoch: u64,
    cause: Cause,
    reason: String,
    priority: u8,
}

impl Cloud {
    /// A group's cloud state with its mover, if it has one; no claim yet.
    pub(super) fn new(mover: Option<Mover>) -> Self {
        Self {
            mover,
            ..Self::default()
        }
    }

    /// The mover's status view, with the claim it holds back.
    pub(super) fn view(&self) -> Option<MoverView> {
        let mut view = self.mover.as_ref()?.view()?;
        view.claim_waiting = self.waiting.is_some();
        Some(view)
    }
}

/// A group's routes and what became of the last attempt to install them.
pub(super) struct Routes {
    pub(super) manager: RouteManager,
    /// The last install failure, in words (status); `None` after a success.
    pub(super) error: Option<String>,
    /// While master with routes missing: when the lease check may try again.
    pub(super) retry_at: Option<Instant>,
    /// A routed group's host routes (`GroupExec::host_routes`): one per VIP (`VIP/32 dev IF
    /// src VIP`) whose metric is set to the election epoch at each claim
    /// ([`Routes::for_epoch`]); `None` for `[[group.route]]`s.
    pub(super) routed: Option<RoutedRoutes>,
}

/// The host routes a routed group installs with its VIPs (docs/routed.md).
pub(super) struct RoutedRoutes {
    /// The group's VIPs, each a host route (`/32` or `/128`) with `src` = the VIP: the
    /// kernel drops an IPv4 one with the address (its lease), and an IPv6 one loses its
    /// `src`, which the shipped BIRD config requires (docs/routed.md).
    pub(super) vips: Vec<IpAddr>,
    /// The interface of each VIP (`lo` unless the VIP names another).
    pub(super) devs: Vec<String>,
    /// The epoch of the last claim: the host routes' metric.
    pub(super) epoch: u64,
    /// The transition being carried out steps down for a live master (hand-over,
    /// preemption): its [`Action::ReleaseVips`] waits [`ROUTED_RELEASE_DELAY`]
    /// ([`GroupExec::execute`]).
    pub(super) defer_release: bool,
    /// A planned hand-over's release that waits until then (the loop's lease timer runs
    /// it, [`GroupExec::check_lease`]); `None` when none is pending.
    pub(super) release_at: Option<Instant>,
}

impl RoutedRoutes {
    /// The host route of every VIP at `epoch` (metric = the epoch, 1..=`u32::MAX`: the
    /// newest master's route wins at a router that prefers it, e.g. BIRD's LOCAL_PREF =
    /// krt_metric). Never metric 0, which IPv6 turns into 1024 (`IP6_RT_PRIO_USER`).
    pub(super) fn at(&self, epoch: u64) -> Vec<RouteSpec> {
        let metric = u32::try_from(epoch).unwrap_or(u32::MAX).max(1);
        self.vips
            .iter()
            .zip(&self.devs)
            .map(|(vip, dev)| RouteSpec {
                to: IpCidr {
                    addr: *vip,
                    prefix: if vip.is_ipv4() { 32 } else { 128 },
                },
                via: None,
                src: Some(*vip),
                dev: dev.clone(),
                metric: Some(metric),
                table: None,
            })
            .collect()
    }
}

impl Routes {
    /// Whether the kernel lacks one of these routes now (a listing failure is logged and
    /// counts as nothing missing: the next lease check asks again).
    async fn missing(&self, group: &str) -> bool {
        match self.manager.present().await {
            Ok(present) => present.len() < self.manager.routes().len(),
            Err(e) => {
                tracing::error!(%group, error = %e, "could not list the group's routes");
                false
            }
        }
    }

    /// A routed group about to claim at `epoch`: its route list becomes the host routes
    /// at that metric (nothing changes in the kernel: the routes are not installed between
    /// a release and the next install).
    pub(super) async fn for_epoch(&mut self, epoch: u64) {
        let Some(routed) = &mut self.routed else {
            return;
        };
        routed.epoch = epoch;
        let list = routed.at(epoch);
        if let Err(e) = self.manager.set_routes(list).await {
            tracing::error!(error = %e, "could not set the host routes' metric");
        }
    }
}

/// How often a master retries routes that failed to install (the VIPs stay: a route is
/// not worth a failover, and the other node would most likely fail the same way).
pub(super) const ROUTE_RETRY: Duration = Duration::from_secs(5);

/// How long a routed group's old master keeps its VIPs and host routes after stepping down
/// for a live master with a higher epoch (a planned hand-over, a preemption, a partition
/// healed; at most half the lease; renewals stop at once): make-before-break at L3. The successor installs
/// its routes before we release, but its BGP update still has to reach the router, and our
/// withdrawal would race it (seen: one failed IPv6 request in four hand-overs without the
/// wait). Meanwhile the router already prefers the successor's
/// route (higher epoch), so the wait costs nothing; measured propagation is 1–5 ms on one
/// router hop, so 1 s also covers route reflectors and slower engines.
pub(super) const ROUTED_RELEASE_DELAY: Duration = Duration::from_secs(1);

/// One interface of a group: its VIPs, their ARP drivers and the watches reporting on it.
pub(super) struct Side {
    pub(super) vips: Vips,
    /// The ARP / Neighbor Discovery drivers; `None` for a routed group (no L2 segment to
    /// announce or probe on, docs/routed.md).
    pub(super) arp: Option<Arp>,
    /// Also told of new VIPs by a reload.
    pub(super) address_watch: AddressWatch,
    /// Kept alive here; reports through the loop.
    pub(super) _carrier: CarrierWatch,
    /// The link as last reported: `None` = usable, `Some(detail)` = down.
    pub(super) link_down: Option<String>,
}

impl Side {
    /// Whether an ARP watch report is about this side as it is now: one of its current VIPs,
    /// claimed by a MAC that is not its interface's current one. A watch that is being
    /// replaced (a reload changed the VIPs, the interface changed its MAC) may still deliver
    /// a frame it read before; judged against the old VIPs or the old MAC it would make our
    /// own announcement a conflict.
    pub(super) fn is_current_conflict(&self, conflict: &ArpConflict) -> bool {
        conflict.mac != self.vips.manager.mac()
            && self
                .arp
                .as_ref()
                .is_some_and(|a| a.vip_addrs.contains(&conflict.vip))
    }
}

/// The QUIC transport and the peers it dials.
pub(super) struct PeerLinks {
    pub(super) transport: Transport,
    /// The configured peers, indexed like the transport's peer indices.
    pub(super) specs: Vec<PeerSpec>,
    /// Our configured own address, the sender of ARP solicitations (none when unspecified).
    pub(super) own_ip: Option<Ipv4Addr>,
    /// When peers were last redialled on evidence that their path works again.
    pub(super) redial_kicked: Option<Instant>,
    /// The node interface's index and MAC, for ARP solicitations (followed by the link
    /// watch of a group side on that interface; `None` when no group uses it).
    pub(super) solicit_link: Option<(u32, [u8; 6])>,
}

/// The VIPs on one interface and their kernel lease.
pub(super) struct Vips {
    pub(super) manager: VipManager,
    /// Kernel lifetime of the installed VIPs, if any.
    pub(super) lease: Option<Duration>,
    /// While master with a lease: when to verify and renew it next (the loop's lease timer).
    pub(super) check_at: Option<Instant>,
    /// When a VIP conflict last triggered a lease check.
    pub(super) conflict_check: Option<Instant>,
    /// The last netlink read of the installed VIPs, and when it was made (for `status`).
    pub(super) held: Option<(Instant, Vec<IpCidr>)>,
}

/// The ARP drivers on one interface.
pub(super) struct Arp {
    pub(super) announcer: Announcer,
    pub(super) watch: ArpWatch,
    /// `None` when probing is off (`[probe] count = 0`).
    pub(super) prober: Option<Arc<Mutex<ArpProbe>>>,
    /// The VIP addresses probed.
    pub(super) vip_addrs: Vec<IpAddr>,
}

/// What happened in one group, told to the operator: transitions, metrics and hooks.
pub(super) struct Record {
    pub(super) metrics: Arc<Metrics>,
    /// The last [`TRANSITIONS_KEPT`] transitions, oldest first.
    pub(super) transitions: VecDeque<TransitionRecord>,
    pub(super) notifier: Notifier,
    /// The start's wait for the first check results (init → fault, `checks_pending`) is
    /// not told to the hooks, as keepalived runs no FAULT script while its scripts have
    /// not reported: kept here (epoch, priority) until the checks settle. If the group is
    /// still in fault then (a check fails), the hooks hear that fault with its reason.
    held_start_fault: Option<(u64, u8)>,
}

/// Counts of events that are logged once but must not be lost.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) adverts_sent: u64,
    pub(super) adverts_received: u64,
    /// By [`RejectReason::label`].
    pub(super) rejected: HashMap<&'static str, u64>,
    pub(super) vip_conflicts: u64,
    /// ARP frames from a MAC in `[vip] ignore_arp_from` (probe answers and conflicts),
    /// counted by the probes on the blocking pool too.
    pub(super) arp_ignored: Arc<std::sync::atomic::AtomicU64>,
}

impl GroupExec {
    /// Carries out one action of this group's election (`election`, read only), except
    /// [`Action::Send`], which the loop coalesces with the other groups' adverts.
    pub(super) async fn execute(
        &mut self,
        action: Action,
        election: &Election,
        node: &mut Node,
    ) -> Option<Input> {
        match action {
            Action::Send(_) => None,
            Action::InstallVips => match self.install_at(election.epoch()).await {
                Ok(()) => {
                    self.claim_moved();
                    None
                }
                Err(e) => {
                    self.cloud.claim_due = false;
                    tracing::error!(group = %self.name, error = %e, "could not install the VIPs");
                    Some(Input::Fault {
                        cause: FaultCause::VipInstall,
                        reason: format!("VIP install failed: {e}"),
                    })
                }
            },
            Action::Announce => {
                for arp in self.sides.iter().filter_map(|s| s.arp.as_ref()) {
                    arp.announcer.announce();
                }
                None
            }
            Action::Probe => {
                self.start_probe(node);
                None
            }
            Action::Notice { cause, reason } => {
                let policy = matches!(
                    cause,
                    NoticeCause::ClaimBlocked | NoticeCause::ClaimStillBlocked
                )
                .then(|| election.claim_blocked())
                .flatten()
                .map(|b| claim_policy(b.member.is_some(), self.foreign_holder_timeout));
                match &policy {
                    Some(policy) => tracing::warn!(group = %self.name, cause = cause.label(),
                        %policy, "{reason}"),
                    None => tracing::warn!(group = %self.name, cause = cause.label(), "{reason}"),
                }
                node.metrics.notice(cause);
                if cause == NoticeCause::ClaimBlocked {
                    if let Some(block) = election.claim_blocked() {
                        self.record
                            .notifier
                            .fire_claim_blocked(&self.name, block, &reason);
                    }
                }
                if cause == NoticeCause::ConflictWon {
                    if let Some((mac, member)) = election.conflict_won_against() {
                        let won = ConflictWon {
                            mac,
                            member: member.map(str::to_owned),
                        };
                        self.record
                            .notifier
                            .fire_conflict_won(&self.name, &won, &reason);
                    }
                }
                None
            }
            Action::ReleaseVips => {
                if !self.defer_routed_release() {
                    self.release_now().await;
                }
                None
            }
            Action::Transition {
                from,
                to,
                epoch,
                cause,
                reason,
            } => {
                if let Some(routed) = self.host_routes.as_mut().and_then(|r| r.routed.as_mut()) {
                    // Stepping down for a live master that announces with a newer epoch
                    // (a hand-over, a preemption): its route is coming, and the router
                    // prefers it. Not for an equal epoch (`Outranked`): the two routes
                    // would carry the same preference, and the router's tie-break could
                    // keep sending to us for the whole wait.
                    routed.defer_release = from == State::Master
                        && to == State::Backup
                        && matches!(cause, Cause::Handover | Cause::StaleEpoch);
                }
                let priority = election.priority();
                if to == State::Master && from != State::Master {
                    if let Some(mover) = &self.cloud.mover {
                        self.cloud.claim_due = true;
                        if mover.waits() {
                            tracing::info!(group = %self.name, epoch, cause = cause.label(),
                                "claiming: the claim counts once the cloud mover succeeded (wait = true)");
                            self.cloud.waiting = Some(Waiting {
                                id: 0,
                                from,
                                to,
                                epoch,
                                cause,
                                reason,
                                priority,
                            });
                            return None;
                        }
                    }
                }
                if from == State::Master {
                    self.cloud.claim_due = false;
                    if let Some(w) = self.cloud.waiting.take() {
                        tracing::warn!(group = %self.name, epoch = w.epoch,
                            "the claim ends before the cloud mover succeeded: it never counted as master");
                    }
                }
                self.record.transition(
                    &self.name,
                    (self.index, priority),
                    from,
                    to,
                    epoch,
                    cause,
                    &reason,
                );
                None
            }
        }
    }

    /// The VIPs of a claim are installed: queue the claim run (with `wait = true`, the
    /// claim waits for its outcome).
    fn claim_moved(&mut self) {
        if !std::mem::take(&mut self.cloud.claim_due) {
            return;
        }
        let Some(mover) = &self.cloud.mover else {
            return;
        };
        let id = mover.run(MoverAction::Claim, self.cloud.old_holder.as_deref());
        self.cloud.claimed = true;
        if let Some(w) = &mut self.cloud.waiting {
            w.id = id;
        }
    }

    /// A mover run of this group ended. With `wait = true`, the claim it served now counts
    /// (its transition is recorded: log, history, `master` hook, metrics), or, when every
    /// attempt failed, the returned fault makes the group give up the addresses it could
    /// not move (`vip_install`, cleared by the election after its hold-down).
    pub(super) fn mover_done(&mut self, outcome: &Outcome) -> Option<Input> {
        let serves = |w: &Waiting| w.id == outcome.id && outcome.action == MoverAction::Claim;
        if !self.cloud.waiting.as_ref().is_some_and(serves) {
            return None;
        }
        let w = self.cloud.waiting.take()?;
        if outcome.ok {
            self.record.transition(
                &self.name,
                (self.index, w.priority),
                w.from,
                w.to,
                w.epoch,
                w.cause,
                &format!("{} (cloud mover succeeded)", w.reason),
            );
            return None;
        }
        let reason = format!(
            "cloud mover failed after {} attempt(s): {}; releasing the addresses it could not move",
            outcome.attempts,
            outcome.error.as_deref().unwrap_or("unknown error")
        );
        tracing::error!(group = %self.name, "{reason}");
        Some(Input::Fault {
            cause: FaultCause::VipInstall,
            reason,
        })
    }

    /// [`GroupExec::install`] for a claim at `epoch`: a routed group's host routes get the
    /// epoch as their metric first. Cancels a deferred release (master again).
    async fn install_at(&mut self, epoch: u64) -> Result<(), VipError> {
        if let Some(routed) = self.host_routes.as_mut().and_then(|r| r.routed.as_mut()) {
            routed.release_at = None;
        }
        if let Some(routes) = &mut self.host_routes {
            routes.for_epoch(epoch).await;
        }
        self.install().await
    }

    /// Removes the VIPs from every side after a claim failed half way.
    async fn undo_install(&mut self, sides: usize) {
        for side in &mut self.sides[..sides] {
            if let Err(undo) = side.vips.release().await {
                tracing::error!(group = %self.name, error = %undo,
                    "could not remove the VIPs after a failed install");
            }
        }
    }

    /// Installs the VIPs on every interface of the group; on a failure, removes what this
    /// call installed (no half state) and returns the error.
    async fn install(&mut self) -> Result<(), VipError> {
        for i in 0..self.sides.len() {
            if let Err(e) = self.sides[i].vips.install().await {
                self.undo_install(i).await;
                return Err(e);
            }
        }
        if let Some(host) = &mut self.host_routes {
            let result = host.manager.install().await;
            if let Err(e) = result {
                let routes = host
                    .manager
                    .routes()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                host.error = Some(e.to_string());
                self.undo_install(self.sides.len()).await;
                self.publish_routes_installed();
                return Err(VipError::HostRoutes {
                    routes,
                    reason: e.to_string(),
                });
            }
            host.error = None;
        }
        self.install_routes().await;
        Ok(())
    }

    /// Installs the group's routes (all or nothing, see [`RouteManager::install`]). A
    /// failure is logged, shown in status and metrics, and retried by the lease check every
    /// [`ROUTE_RETRY`] while master; the VIPs stay.
    async fn install_routes(&mut self) {
        let Some(routes) = &mut self.routes else {
            self.publish_routes_installed();
            return;
        };
        match routes.manager.install().await {
            Ok(()) => {
                if routes.error.take().is_some() {
                    tracing::info!(group = %self.name, "routes installed after an earlier failure");
                }
                routes.retry_at = None;
            }
            Err(e) => {
                tracing::error!(group = %self.name, error = %e,
                    "could not install the group's routes (none of them is installed); retrying every {} s while master",
                    ROUTE_RETRY.as_secs());
                self.record.metrics.route_failure(self.index);
                routes.error = Some(e.to_string());
                routes.retry_at = Some(Instant::now() + ROUTE_RETRY);
            }
        }
        self.publish_routes_installed();
    }

    /// `haagent_route_installed{group}`: 1 while every route of the group is in, the
    /// routed group's host routes and its `[[group.route]]`s alike; 0 without routes.
    fn publish_routes_installed(&self) {
        let managers: Vec<&RouteManager> = [&self.host_routes, &self.routes]
            .into_iter()
            .flatten()
            .map(|r| &r.manager)
            .collect();
        let installed = !managers.is_empty() && managers.iter().all(|m| m.installed());
        self.record
            .metrics
            .set_routes_installed(self.index, installed);
    }

    /// While master: routes someone deleted (or the kernel dropped with a VIP) are
    /// installed again; a failed install is retried once [`ROUTE_RETRY`] has passed.
    async fn repair_routes(&mut self) {
        if let Some(host) = &mut self.host_routes {
            if host.missing(&self.name).await {
                tracing::warn!(group = %self.name, "a host route of the VIPs is missing: installing it again");
                if let Err(e) = host.manager.install().await {
                    tracing::error!(group = %self.name, error = %e, "could not install the host routes again; retrying at the next lease check");
                    host.error = Some(e.to_string());
                } else {
                    host.error = None;
                }
                self.publish_routes_installed();
            }
        }
        let Some(routes) = &self.routes else {
            return;
        };
        if routes.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        if routes.missing(&self.name).await || !routes.manager.installed() {
            if routes.error.is_none() {
                tracing::warn!(group = %self.name, "a route of the group is missing: installing the routes again");
            }
            self.install_routes().await;
        }
    }

    /// [`GroupExec::release`] and, if this mastership queued a cloud claim, the mover's
    /// release run.
    async fn release_now(&mut self) {
        self.release().await;
        if std::mem::take(&mut self.cloud.claimed) {
            if let Some(mover) = &self.cloud.mover {
                mover.run(MoverAction::Release, None);
            }
        }
    }

    /// A routed group's release after stepping down for a live master waits
    /// [`ROUTED_RELEASE_DELAY`] (at most half the lease) with the lease renewals stopped;
    /// returns whether it was deferred. Any other release (a fault, a lost lease or quorum,
    /// a stop), and every l2 group's, happens at once.
    fn defer_routed_release(&mut self) -> bool {
        let lease = self.sides.iter().filter_map(|s| s.vips.lease).min();
        let Some(routed) = self.host_routes.as_mut().and_then(|r| r.routed.as_mut()) else {
            return false;
        };
        if !std::mem::take(&mut routed.defer_release) {
            return false;
        }
        let delay = lease.map_or(ROUTED_RELEASE_DELAY, |l| ROUTED_RELEASE_DELAY.min(l / 2));
        routed.release_at = Some(Instant::now() + delay);
        for side in &mut self.sides {
            side.vips.check_at = None;
        }
        tracing::info!(group = %self.name, delay_ms = delay.as_millis() as u64,
            "stepped down for a live master: keeping the VIPs and host routes this long, so that its announcement reaches the router before our withdrawal");
        true
    }

    /// When a deferred release ([`GroupExec::defer_routed_release`]) is due, if one waits.
    fn release_due(&self) -> Option<Instant> {
        self.host_routes
            .as_ref()
            .and_then(|r| r.routed.as_ref())
            .and_then(|r| r.release_at)
    }

    /// Stops announcing and removes the routes, then the VIPs from every interface of the
    /// group. Cancels a deferred release.
    async fn release(&mut self) {
        if let Some(routed) = self.host_routes.as_mut().and_then(|r| r.routed.as_mut()) {
            routed.release_at = None;
        }
        if let Some(host) = &mut self.host_routes {
            if let Err(e) = host.manager.remove().await {
                tracing::error!(group = %self.name, error = %e, "could not remove the host routes");
            }
        }
        if let Some(routes) = &mut self.routes {
            routes.retry_at = None;
            if let Err(e) = routes.manager.remove().await {
                tracing::error!(group = %self.name, error = %e, "could not remove the group's routes");
            }
        }
        self.publish_routes_installed();
        for side in &mut self.sides {
            if let Some(arp) = &side.arp {
                arp.announcer.stop();
            }
            if let Err(e) = side.vips.release().await {
                tracing::error!(group = %self.name, interface = %side.vips.manager.interface(),
                    error = %e, "could not remove the VIPs");
            }
        }
    }

    /// Watches what the node's BIRD exports of the group's VIPs while `group` (this
    /// group's configuration, at start or after a reload) asks for it (routed, with
    /// `bird_socket`): starts the watch, restarts it when the socket or the VIPs changed,
    /// stops it when the key went away. Never blocks: the watch is a task of its own.
    pub(super) fn follow_export(&mut self, group: &GroupConfig, metrics: &Arc<Metrics>) {
        let want = WatchSpec::of(group, self.index);
        if self.export.as_ref().map(ExportWatch::spec) == want.as_ref() {
            return;
        }
        // The old watch goes first: its drop removes the group's export series, which the
        // new one then sets again.
        self.export = None;
        self.export = want.map(|spec| ExportWatch::start(spec, Some(Arc::clone(metrics))));
    }

    /// When the loop's lease timer must next run for this group (the earliest side, or a
    /// deferred release).
    pub(super) fn check_at(&self) -> Option<Instant> {
        self.sides
            .iter()
            .filter_map(|s| s.vips.check_at)
            .chain(self.release_due())
            .min()
    }

    /// While master: are the VIPs still there? Renew their lease if so; if not, handle it
    /// as a removal ([`GroupExec::vip_removed`]: a lease that ran out steps down, a foreign
    /// removal is repaired). Checks every side whose timer is due at `now` (all when
    /// `all`).
    pub(super) async fn check_lease(&mut self, state: State, all: bool) -> Option<Input> {
        let now = Instant::now();
        if self.release_due().is_some_and(|at| at <= now) {
            if state == State::Master {
                // Master again before the wait ended (its install cancels it; belt and braces).
                if let Some(routed) = self.host_routes.as_mut().and_then(|r| r.routed.as_mut()) {
                    routed.release_at = None;
                }
            } else {
                tracing::info!(group = %self.name, "releasing the VIPs after the hand-over's wait");
                self.release_now().await;
            }
        }
        for i in 0..self.sides.len() {
            let due = self.sides[i].vips.check_at.is_some_and(|t| t <= now);
            if !(due || all) {
                continue;
            }
            if let Some(input) = self.check_side_lease(i, state).await {
                return Some(input);
            }
        }
        if state == State::Master && self.sides.iter().all(|s| s.vips.manager.held()) {
            self.repair_routes().await;
        }
        None
    }

    async fn check_side_lease(&mut self, i: usize, state: State) -> Option<Input> {
        let vips = &mut self.sides[i].vips;
        let Some(lease) = vips.lease else {
            vips.check_at = None;
            return None;
        };
        match vips.manager.installed().await {
            Ok(present) if present.len() < vips.manager.vips().len() => {
                // A backstop for a lost RTM_DELADDR: the same rule as the address watch.
                let missing = vips.manager.missing(&present);
                // Checked again in a quarter lease unless the handler decides otherwise.
                vips.check_at = Some(Instant::now() + lease / 4);
                self.vip_removed(i, missing, state).await
            }
            Ok(_) => {
                if let Err(e) = vips.manager.refresh().await {
                    tracing::error!(group = %self.name, error = %e, "could not renew the VIP lease");
                }
                vips.check_at = Some(Instant::now() + lease / 4);
                None
            }
            Err(e) => {
                tracing::error!(group = %self.name, error = %e, "could not list the VIPs to renew their lease");
                vips.check_at = Some(Instant::now() + lease / 4);
                None
            }
        }
    }

    /// An address notification on side `i`: a VIP that left the interface is handled as a
    /// removal; lost notifications make the VIPs be read again.
    pub(super) async fn address_event(
        &mut self,
        i: usize,
        event: AddressEvent,
        state: State,
    ) -> Option<Input> {
        let side = self.sides.get(i)?;
        match event {
            AddressEvent::Removed { ifindex, cidr } => {
                let ours = ifindex == side.vips.manager.ifindex()
                    && side.vips.manager.vips().contains(&cidr);
                if !ours {
                    return None;
                }
                self.vip_removed(i, vec![cidr], state).await
            }
            AddressEvent::Added { .. } => None,
            AddressEvent::Resync => {
                if state != State::Master || !side.vips.manager.held() {
                    return None;
                }
                match side.vips.manager.installed().await {
                    Ok(present) => {
                        let missing = side.vips.manager.missing(&present);
                        if missing.is_empty() {
                            return None;
                        }
                        self.vip_removed(i, missing, state).await
                    }
                    Err(e) => {
                        tracing::error!(group = %self.name, error = %e, "could not list the VIPs after lost notifications");
                        None
                    }
                }
            }
        }
    }

    /// `missing` VIPs left side `i`'s interface while we hold them. The rule
    /// (docs/election.md):
    /// - our own release is not a removal (we no longer hold them: [`VipManager::held`]);
    /// - the lease had run out (we stalled and did not renew it): the kernel deleted them
    ///   and another node may hold them by now, so step down as [`Input::LeaseLost`];
    /// - otherwise someone else removed them (`ip addr del`, a network manager):
    ///   [`Input::VipsRemoved`]; the election, still master, installs and announces them
    ///   again (a failed install is a VIP-install fault, so a backup takes over).
    async fn vip_removed(&mut self, i: usize, missing: Vec<IpCidr>, state: State) -> Option<Input> {
        let vips = &mut self.sides.get_mut(i)?.vips;
        if state != State::Master || !vips.manager.held() {
            return None;
        }
        let now = Instant::now();
        let list = missing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let interface = vips.manager.interface().to_string();
        if vips.manager.lease_expired(now) {
            vips.check_at = None;
            let lease = vips.lease.map_or(0, |l| l.as_millis());
            let detail = format!(
                "{list} no longer on {interface}: the {lease} ms lease ran out while we were not running"
            );
            return Some(Input::LeaseLost { detail });
        }
        let lease_left = vips.manager.lease_left(now).map_or_else(String::new, |d| {
            format!(", {} ms of lease left", d.as_millis())
        });
        Some(Input::VipsRemoved {
            detail: format!("{list} removed from {interface} (not by haagent){lease_left}"),
        })
    }

    /// Side `i`'s interface was re-created (new index), changed its MAC or came back up:
    /// move everything that holds its index or MAC to what the kernel says now. Packet
    /// sockets are reopened in every case, since one that lived through a down/up flap
    /// hands its next send a stale `ENETDOWN`. Returns the new MAC for the election if the
    /// primary interface's MAC changed.
    pub(super) fn follow_interface(&mut self, i: usize, link: &LinkState) -> Option<Input> {
        let side = self.sides.get_mut(i)?;
        let manager = &mut side.vips.manager;
        let interface = manager.interface().to_string();
        let (Some(ifindex), Some(mac)) = (link.ifindex, link.mac) else {
            tracing::warn!(group = %self.name, %interface, "the interface has no Ethernet MAC: gratuitous ARP cannot announce the VIPs");
            return None;
        };
        let (old_index, old_mac) = (manager.ifindex(), manager.mac());
        if (ifindex, mac) != (old_index, old_mac) {
            tracing::warn!(group = %self.name, %interface, ifindex, mac = %format_mac(&mac), old_ifindex = old_index,
                old_mac = %format_mac(&old_mac), "the interface changed: following it");
            manager.set_link(ifindex, mac);
        }
        if let Some(arp) = &mut side.arp {
            arp.reopen(&interface, mac);
        }
        (i == 0 && mac != old_mac).then_some(Input::MacChanged { mac })
    }

    /// A reload changed the group's VIPs (on the same interfaces): every driver watches,
    /// probes and announces the new list; while master (`holding`), the dropped VIPs leave
    /// their interface, the new ones are installed and everything is announced again. The
    /// election is not involved: who holds the VIPs does not change. A failure is logged
    /// and answered like a failed install (the fault it returns goes to the election).
    pub(super) async fn set_vips(&mut self, vips: &[VipSpec], holding: bool) -> Option<Input> {
        if let Some(mover) = &self.cloud.mover {
            mover.set_vips(vips);
        }
        let mut failed = None;
        for side in &mut self.sides {
            let interface = side.vips.manager.interface().to_string();
            let mine: Vec<&VipSpec> = vips.iter().filter(|v| v.interface == interface).collect();
            let cidrs: Vec<IpCidr> = mine.iter().map(|v| v.cidr).collect();
            let ips: Vec<IpAddr> = cidrs.iter().map(|v| v.addr).collect();
            // The address watch first, so deleting a dropped VIP is not taken for a
            // removal by someone else.
            side.address_watch.set_vips(ips.clone());
            let mac = side.vips.manager.mac();
            if let Some(arp) = &mut side.arp {
                if let Err(e) = arp.watch.set_vips(ips.clone(), mac) {
                    tracing::warn!(group = %self.name, error = %e, "reload: the ARP conflict watch keeps the old VIPs");
                }
                arp.announcer.set_vips(ips.clone());
                arp.vip_addrs = ips;
            }
            side.vips.held = None;
            side.vips
                .manager
                .set_attributes(&mine.iter().map(|v| (*v).clone()).collect::<Vec<_>>());
            let result = side.vips.manager.set_vips(cidrs).await;
            if let (true, Some(arp)) = (holding, &side.arp) {
                arp.announcer.announce();
            }
            if let Err(e) = result {
                tracing::error!(group = %self.name, error = %e, "reload: could not apply the new VIPs");
                failed.get_or_insert(Input::Fault {
                    cause: FaultCause::VipInstall,
                    reason: format!("could not install the VIPs after a reload: {e}"),
                });
            }
        }
        // A routed group's host routes follow its VIPs, after them (a route's `src` must be
        // on the host): installed ones are replaced at once.
        if let Some(routes) = &mut self.host_routes {
            if let Some(routed) = &mut routes.routed {
                (routed.vips, routed.devs) = vips
                    .iter()
                    .map(|v| (v.cidr.addr, v.interface.clone()))
                    .unzip();
                let list = routed.at(routed.epoch);
                if let Err(e) = routes.manager.set_routes(list).await {
                    tracing::error!(group = %self.name, error = %e, "reload: could not apply the new host routes");
                }
            }
        }
        failed
    }

    /// Probes every VIP of every side on the blocking pool; the first answer (or none)
    /// comes back through the loop, tagged with this group's index.
    fn start_probe(&self, node: &Node) {
        let index = self.index;
        let ignore = Arc::clone(&self.ignore_arp_from);
        let metrics = Arc::clone(&node.metrics);
        let counted = Arc::clone(&node.counters.arp_ignored);
        let rounds: Vec<(Arc<Mutex<ArpProbe>>, Vec<IpAddr>)> = self
            .sides
            .iter()
            .filter_map(|s| s.arp.as_ref())
            .filter_map(|a| a.prober.clone().map(|p| (p, a.vip_addrs.clone())))
            .collect();
        if rounds.is_empty() {
            // Without a prober the election is configured not to ask; answer "nobody".
            let _ = self.probe_results.try_send((index, None));
            return;
        }
        let (count, window) = (self.probe_count, self.probe_window);
        let results = self.probe_results.clone();
        tokio::task::spawn_blocking(move || {
            let mut answer = None;
            let mut ignored = 0u64;
            'sides: for (prober, vips) in rounds {
                let mut prober = match prober.lock() {
                    Ok(p) => p,
                    Err(poisoned) => poisoned.into_inner(),
                };
                match prober.probe_ignoring(&vips, count, window, &ignore, &mut ignored) {
                    Ok(Some((_vip, mac))) => {
                        answer = Some(mac);
                        break 'sides;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(interface = prober.interface(), error = %e, "probe failed")
                    }
                }
            }
            if ignored > 0 {
                tracing::debug!(
                    ignored,
                    "ARP probe: answers from ignore_arp_from MACs ignored"
                );
                counted.fetch_add(ignored, std::sync::atomic::Ordering::Relaxed);
                metrics.arp_ignored(false, ignored);
            }
            let _ = results.blocking_send((index, answer));
        });
    }

    /// The interfaces whose link is down, with the watch's words; empty when all are up.
    pub(super) fn links_down(&self) -> Vec<&str> {
        self.sides
            .iter()
            .filter_map(|s| s.link_down.as_deref())
            .collect()
    }

    /// The group's VIPs as `a/p a/p`, for logs and hooks.
    pub(super) fn vip_list(&self) -> String {
        self.sides
            .iter()
            .flat_map(|s| s.vips.manager.vips().iter().map(ToString::to_string))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The MAC of each interface of the group, with its name, in side order.
    pub(super) fn macs(&self) -> impl Iterator<Item = (&str, [u8; 6])> {
        self.sides
            .iter()
            .map(|s| (s.vips.manager.interface(), s.vips.manager.mac()))
    }

    /// After the last step: stop announcing and make sure the VIPs are gone even if we
    /// were not master by the election's account (e.g. an install that half-failed), then
    /// wait for the queued hooks (each ends by itself at its own timeout).
    pub(super) async fn stop(&mut self) {
        // A graceful stop hands over first: its deferred release still gets its wait.
        if let Some(at) = self.release_due() {
            tokio::time::sleep_until(at.into()).await;
        }
        self.release().await;
        self.record.notifier.drained().await;
        if let Some(mover) = &self.cloud.mover {
            mover.drained().await;
        }
    }
}

impl Node {
    /// A frame from the MAC of a member we cannot hear (by `election`'s peers) proves the
    /// path to it is back (after a partition heals, both sides are master and claim the
    /// VIP): reach it now.
    pub(super) fn redial_if_unheard(&mut self, mac: [u8; 6], election: &Election) {
        let now = Instant::now();
        let interval = election.config().advert_interval;
        if self.peers.reached_recently(now, interval) {
            // Cheap under a flood of frames: no peer list built.
            return;
        }
        let views = election.peers();
        let Some(view) = views.iter().find(|v| v.has_mac(mac) && !v.is_alive(now)) else {
            return;
        };
        match self
            .peers
            .specs
            .iter()
            .position(|p| p.name.as_deref() == Some(view.name.as_str()))
        {
            Some(i) => self.reach(&[i], interval),
            // Quick mode (peers known by address): the transport ignores peers it hears.
            None => self.reach(&(0..self.peers.specs.len()).collect::<Vec<_>>(), interval),
        }
    }

    /// The path to these peers works again: the transport redials them now, and an ARP
    /// request for each refreshes both kernels' neighbour entries, which after a partition
    /// wait up to a second for their next retry (see `solicit.rs`). At most once per advert
    /// `interval`, so a flood of frames stays a trickle.
    pub(super) fn reach(&mut self, targets: &[usize], interval: Duration) {
        let now = Instant::now();
        if self.peers.reached_recently(now, interval) {
            return;
        }
        self.peers.redial_kicked = Some(now);
        for &i in targets {
            if let (Some(ours), Some(IpAddr::V4(peer)), Some((ifindex, mac))) = (
                self.peers.own_ip,
                self.peers.specs.get(i).map(|p| p.addr.ip()),
                self.peers.solicit_link,
            ) {
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = solicit::send_request(ifindex, mac, ours, peer) {
                        tracing::debug!(%peer, error = %e, "could not send an ARP request");
                    }
                });
            }
            self.peers.transport.redial_now(i);
        }
    }

    /// Brings the per-second metrics up to date: peer links (as `election`, the first
    /// group's, hears them), checks, GARPs, claim block.
    pub(super) fn refresh_metrics(
        &self,
        election: &Election,
        group: &GroupExec,
        checks: Vec<CheckStatus>,
    ) {
        let now = Instant::now();
        let metrics = &self.metrics;
        let stats = self.peers.transport.stats();
        let views = election.peers();
        for (i, spec) in self.peers.specs.iter().enumerate() {
            let name = spec.name.clone().unwrap_or_else(|| spec.addr.to_string());
            let link = stats.get(i);
            let view = views.iter().find(|v| v.name == name);
            metrics.peer(
                &name,
                link.and_then(|l| l.rtt),
                view.map(|v| now.saturating_duration_since(v.last_heard)),
                link.is_some_and(|l| l.connected),
            );
            if let Some(t) = link.and_then(|l| l.cert_not_after) {
                metrics.set_cert_expiry(&format!("peer:{name}"), unix_secs(t));
            }
        }
        metrics.refresh_cert_days(SystemTime::now());
        for c in checks {
            metrics.check(
                &c.name,
                c.healthy,
                c.latency_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0)),
            );
        }
        metrics.set_garps_sent(
            group
                .sides
                .iter()
                .filter_map(|s| s.arp.as_ref())
                .map(|a| a.announcer.sent())
                .sum(),
        );
        metrics.set_claim_blocked(
            election
                .claim_blocked()
                .map(|b| now.saturating_duration_since(b.since)),
        );
    }

    /// An admitted advert: counted, and its fingerprint comparison in the drift gauges.
    pub(super) fn advert_received(&mut self, peer: &str, drift: &Drift) {
        self.counters.adverts_received += 1;
        self.metrics.advert_received(peer);
        for (setting, differs) in &drift.settings {
            self.metrics.config_drift(peer, setting, *differs);
        }
    }

    /// A datagram or connection refused.
    pub(super) fn rejected(&mut self, reason: RejectReason) {
        *self.counters.rejected.entry(reason.label()).or_default() += 1;
        self.metrics.advert_rejected(reason);
    }

    /// A frame claiming a VIP we hold. Every frame is counted, none logged here: the
    /// election says what it does about them, rate-limited (a forger can send thousands
    /// of frames a second).
    /// Counts an ARP frame from an `ignore_arp_from` MAC the conflict watch saw while
    /// master (`conflict`) or a probe saw.
    pub(super) fn arp_ignored(&mut self, conflict: bool) {
        self.counters
            .arp_ignored
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics.arp_ignored(conflict, 1);
    }

    pub(super) fn vip_conflict(&mut self) {
        self.counters.vip_conflicts += 1;
        self.metrics.vip_conflict();
    }
}

impl PeerLinks {
    fn reached_recently(&self, now: Instant, interval: Duration) -> bool {
        self.redial_kicked.is_some_and(|t| now < t + interval)
    }

    /// The peer's name, or its address for a peer configured by address.
    pub(super) fn label(&self, peer: usize) -> String {
        match self.specs.get(peer) {
            Some(PeerSpec {
                name: Some(name), ..
            }) => name.clone(),
            Some(PeerSpec { addr, .. }) => addr.to_string(),
            None => format!("#{peer}"),
        }
    }
}

impl Vips {
    /// Installs the VIPs and starts the lease timer.
    async fn install(&mut self) -> Result<(), VipError> {
        self.held = None;
        self.install_again().await
    }

    /// Installs the VIPs (again) and restarts the lease timer, keeping the status cache.
    async fn install_again(&mut self) -> Result<(), VipError> {
        self.manager.install().await?;
        self.check_at = self.lease.map(|l| Instant::now() + l / 4);
        Ok(())
    }

    /// Removes the VIPs and stops the lease timer.
    async fn release(&mut self) -> Result<(), VipError> {
        self.check_at = None;
        self.held = None;
        self.manager.release().await
    }

    /// The VIPs on the interface, read at most every [`HELD_FRESH`].
    pub(super) async fn installed_recently(
        &mut self,
        now: Instant,
    ) -> Result<Vec<IpCidr>, VipError> {
        if let Some((at, held)) = &self.held {
            if now.saturating_duration_since(*at) < HELD_FRESH {
                return Ok(held.clone());
            }
        }
        let held = self.manager.installed().await?;
        self.held = Some((now, held.clone()));
        Ok(held)
    }

    /// Whether a VIP conflict at `now` should check the lease first: with a lease, at
    /// most once per advert `interval`, so a flood of frames does not become a flood of
    /// netlink requests.
    pub(super) fn conflict_check_due(&mut self, now: Instant, interval: Duration) -> bool {
        let due = self.lease.is_some() && self.conflict_check.is_none_or(|t| now >= t + interval);
        if due {
            self.conflict_check = Some(now);
        }
        due
    }
}

impl Arp {
    /// Reopens every packet socket on `interface`, whose MAC is now `mac`.
    fn reopen(&mut self, interface: &str, mac: [u8; 6]) {
        if let Err(e) = self.announcer.reopen() {
            tracing::error!(%interface, error = %e, "cannot reopen the gratuitous ARP socket");
        }
        if let Err(e) = self.watch.reopen(mac) {
            tracing::error!(%interface, error = %e, "cannot restart the ARP watch");
        }
        if self.prober.is_some() {
            match ArpProbe::open(interface) {
                // A probe running on the old socket finishes there; the next one uses this.
                Ok(p) => self.prober = Some(Arc::new(Mutex::new(p))),
                Err(e) => {
                    tracing::error!(%interface, error = %e, "cannot reopen the ARP probe socket")
                }
            }
        }
    }
}

impl Record {
    /// The checks have reported for the first time: if the start's fault was held back from
    /// the hooks and `election` is still in fault for another reason (a check fails), the
    /// hooks hear it now (init → fault, with that reason).
    pub(super) fn checks_settled(&mut self, group: &str, election: &Election) {
        let Some((epoch, priority)) = self.held_start_fault else {
            return;
        };
        let faults = election.faults();
        if election.state() != State::Fault || faults.contains_key(&FaultCause::ChecksPending) {
            return;
        }
        self.held_start_fault = None;
        let (cause, reason) = match faults.iter().next() {
            Some((c, r)) => (Cause::Fault(*c), r.clone()),
            None => (Cause::Fault(FaultCause::HealthCheck), String::new()),
        };
        self.notifier.fire(&TransitionEvent {
            from: State::Init,
            to: State::Fault,
            epoch,
            priority,
            cause,
            reason: &reason,
            stopping: false,
            group: group.to_string(),
        });
    }

    /// Starts with nothing recorded.
    pub(super) fn new(metrics: Arc<Metrics>, notifier: Notifier) -> Self {
        Self {
            metrics,
            transitions: VecDeque::new(),
            notifier,
            held_start_fault: None,
        }
    }

    /// A transition of group `group` (`(index, priority after)`): logged, kept for
    /// `status`, in the metrics (the node-level series follow the first group), and told to
    /// the hooks.
    #[allow(clippy::too_many_arguments)]
    fn transition(
        &mut self,
        group: &str,
        (index, priority): (usize, u8),
        from: State,
        to: State,
        epoch: u64,
        cause: Cause,
        reason: &str,
    ) {
        let label = cause.label();
        let stopping = cause == Cause::Shutdown;
        if to == State::Master || from == State::Master || to == State::Fault {
            tracing::warn!(%group, from = %from, to = %to, epoch, cause = label, "{reason}");
        } else {
            tracing::info!(%group, from = %from, to = %to, epoch, cause = label, "{reason}");
        }
        if from == State::Init
            && to == State::Fault
            && cause == Cause::Fault(FaultCause::ChecksPending)
        {
            self.held_start_fault = Some((epoch, priority));
        } else {
            self.held_start_fault = None;
            self.notifier.fire(&TransitionEvent {
                from,
                to,
                epoch,
                priority,
                cause,
                reason,
                stopping,
                group: group.to_string(),
            });
        }
        if self.transitions.len() == TRANSITIONS_KEPT {
            self.transitions.pop_front();
        }
        self.transitions.push_back(TransitionRecord {
            at: certs::rfc3339(SystemTime::now()),
            group: Some(group.to_string()),
            from,
            to,
            epoch,
            cause: label.to_string(),
            reason: reason.to_string(),
        });
        self.metrics.set_group_state(index, to);
        self.metrics.set_group_epoch(index, epoch);
        self.metrics.group_transition(index);
        if index == 0 {
            self.metrics.set_state(to);
            self.metrics.set_epoch(epoch);
            self.metrics.transition(to, cause);
        }
    }
}

/// The rule that keeps a claim blocked by an ARP probe answer, in words (log and status):
/// `member` = the answering MAC belongs to a cluster member; `foreign_holder_timeout` =
/// `[vip] foreign_holder_timeout_ms` (`None` = 0).
pub(super) fn claim_policy(member: bool, foreign_holder_timeout: Option<Duration>) -> String {
    if member {
        return "an answer from a cluster member always blocks the claim (split-brain \
                protection)"
            .to_string();
    }
    match foreign_holder_timeout {
        None => "foreign_holder_timeout_ms = 0 (the default): never claim while a host that \
                 is not a member answers; if it is the network's own ARP responder (a cloud \
                 fabric, the gateway), list its MAC in [vip] ignore_arp_from (docs/cloud.md)"
            .to_string(),
        Some(limit) => format!(
            "foreign_holder_timeout_ms = {}: claiming anyway once only non-members have \
             answered for that long",
            limit.as_millis()
        ),
    }
}

/// Seconds since the Unix epoch (0 before it), for the certificate-expiry gauges.
pub(super) fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
