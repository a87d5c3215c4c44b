//! The one event loop: it owns the clock and every input channel, turns each event into an
//! election [`Input`] for the group it concerns (or for every group, for node-wide facts),
//! steps that group's election ([`Daemon::step`], the only caller of [`Election::handle`])
//! and hands the actions to the group's [`GroupExec`]. The adverts of every group leave in
//! one datagram per peer ([`Daemon::broadcast`]).

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Receiver;

use crate::config::Config;
use crate::control::{ControlRequest, Request, Response};
use crate::election::{Action, Election, FaultCause, Input, NoticeCause};
use crate::health::{GroupVerdicts, Verdict};
use crate::metrics::RejectReason;
use crate::transport::TransportEvent;
use crate::vip::{ArpConflict, LinkState};
use crate::wire::{self, Advert, State};
use crate::witness::{Witness, WitnessEvent};

use super::admission::{GroupKey, Intake, Received};
use super::execute::{GroupExec, Node};
use super::operator::{self, Operator, RunOptions};
use super::setup::{self, DaemonError, Inputs, SideKey};
use super::state::{self, Persisted};
use super::supervisor::{self, Supervisor};

/// One VIP group: its election, its drivers, and the advert it last sent (what the next
/// datagram carries for it).
struct Group {
    election: Election,
    exec: GroupExec,
    last_advert: Option<Advert>,
    /// The group's wire id (`[[group]] id`).
    id: u16,
    /// The hash of its VIPs, carried in its datagram entry (drift per group).
    vips_fingerprint: u32,
}

/// The daemon's state, by job: one election and its drivers per group, what the groups
/// share (peers, metrics), the intake of peer adverts, the operator interface, and the
/// watches that only report.
struct Daemon {
    groups: Vec<Group>,
    node: Node,
    intake: Intake,
    ops: Operator,
    /// The gateway witness (reports through the loop; also read by `status`).
    witness: Option<Witness>,
    /// The verdict channel of health checks restarted by a reload, picked up by the loop.
    pending_verdicts: Option<Receiver<GroupVerdicts>>,
    /// systemd's notify socket: ready, status, watchdog.
    supervisor: Supervisor,
    /// The datagram counter (the wire's `seq`), +1 per datagram.
    seq: u64,
    /// The v2 header's fingerprint ([`Config::fingerprint_v2`]).
    fingerprint_v2: [u32; 4],
    /// Two-way contact: what we sent when, and what we last heard from each peer.
    contact: ContactLog,
}

/// How many of our latest datagrams [`ContactLog`] remembers: a peer's `heard` report
/// older than that proves nothing (at 10 ms adverts, 640 ms; at 1 s, a minute).
const SENT_LOG: usize = 64;

/// The daemon's half of proving two-way contact (wire v2 `heard`, docs/election.md
/// "Preemption"): the seq and time of our latest datagrams, and per peer (transport index)
/// the seq of its latest datagram, which our next datagram to it reports back. Bounded:
/// [`SENT_LOG`] entries, one per configured peer.
#[derive(Debug, Default)]
struct ContactLog {
    sent: std::collections::VecDeque<(u64, Instant)>,
    heard_from: Vec<Option<u64>>,
}

impl ContactLog {
    /// We sent datagram `seq` at `at`.
    fn sent(&mut self, seq: u64, at: Instant) {
        if self.sent.len() == SENT_LOG {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, at));
    }

    /// Peer number `peer` sent us datagram `seq`.
    fn heard(&mut self, peer: usize, seq: u64) {
        if peer >= self.heard_from.len() {
            // Transport indexes are the configured peers (at most the config's limit).
            self.heard_from.resize(peer + 1, None);
        }
        self.heard_from[peer] = Some(seq);
    }

    /// When we sent `seq`, if it is still in the log.
    fn sent_at(&self, seq: u64) -> Option<Instant> {
        self.sent
            .iter()
            .rev()
            .find(|(s, _)| *s == seq)
            .map(|(_, t)| *t)
    }

    /// The peers changed (a reload): indexes mean other peers now.
    fn forget_peers(&mut self) {
        self.heard_from.clear();
    }
}

/// Runs the agent until `shutdown` completes, then hands over gracefully: a master to its
/// best live backup first, make-before-break, and every node with a priority-0 advert.
pub(super) async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (started, inputs) = setup::start(&config).await?;
    let fingerprint_v2 = config.fingerprint_v2().words;
    let mut daemon = Daemon {
        groups: started
            .groups
            .into_iter()
            .zip(&config.groups)
            .map(|((election, exec), group)| Group {
                election,
                exec,
                last_advert: None,
                id: group.id,
                vips_fingerprint: group.vips_fingerprint(),
            })
            .collect(),
        fingerprint_v2,
        node: started.node,
        intake: started.intake,
        ops: Operator::new(
            config,
            options,
            started.control,
            started.health,
            started.metrics,
            started.metrics_server,
            started.cert,
        ),
        witness: started.witness,
        pending_verdicts: None,
        supervisor: Supervisor::from_env(),
        seq: 0,
        contact: ContactLog::default(),
    };
    daemon.run_loop(inputs, started.links, shutdown).await;
    Ok(())
}

impl Daemon {
    async fn run_loop(
        &mut self,
        mut inputs: Inputs,
        links: Vec<(SideKey, LinkState)>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: reload with `haagent reload`");
                None
            }
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        self.restore_maintenance().await;
        self.hold_until_checks_settle().await;
        for (key, link) in links {
            self.on_link(key, link).await;
        }
        for g in 0..self.groups.len() {
            self.step(g, Input::Start).await;
        }
        // Joined: the transport listens and the elections have their first state.
        self.supervisor.ready(self.status_line());
        // The watchdog is pinged from this loop only, so a stuck loop is restarted.
        let mut watchdog = self.supervisor.ping_every().map(|every| {
            let mut ping = tokio::time::interval(every);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            ping
        });
        let stall_at = supervisor::stall_after().map(|after| Instant::now() + after);
        // Set once a shutdown signal has asked the elections to stop: a master hands over
        // first, and each election says when it is done (`stopped()`).
        let mut stopping = false;
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            let (next_group, deadline) = self.next_deadline();
            let sleep = sleep_until(deadline);
            let lease_check =
                sleep_until(self.groups.iter().filter_map(|g| g.exec.check_at()).min());
            let witness = async {
                match inputs.witness.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let watchdog_due = async {
                match watchdog.as_mut() {
                    Some(ping) => {
                        ping.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    self.supervisor.stopping();
                    self.step_all(Input::Stop).await;
                }
                // Test-only fault injection (debug builds): the loop stops here for good
                // while every other task runs (`supervisor::STALL_ENV`).
                () = sleep_until(stall_at) => {
                    tracing::warn!("test fault injection: the election loop stalls now");
                    std::future::pending::<()>().await;
                }
                // First after a stall (SIGSTOP, a long pause): find out whether the kernel
                // dropped our VIPs before acting on anything else.
                () = lease_check => self.check_leases(false).await,
                // Before the inputs that can keep the loop busy: a busy loop is alive.
                () = watchdog_due => self.supervisor.ping(),
                event = inputs.transport.recv() => match event {
                    Some(event) => self.on_transport_event(event).await,
                    None => {
                        tracing::error!("transport stopped unexpectedly; shutting down");
                        break;
                    }
                },
                Some((g, answer)) = inputs.probes.recv() => {
                    self.step(g, Input::ProbeResult { answered_by: answer }).await;
                }
                // The elections' timers before every other input (issue 9, fault 6): it
                // used to come after the control socket, so a storm of `status` clients
                // kept the control arm always ready and the master's adverts gapped up to
                // 436 ms against a 171 ms master-down. Peer adverts (above) still come
                // first, so a backup never times out a master whose advert is queued.
                () = sleep => {
                    if let Some(g) = next_group {
                        self.step(g, Input::Timeout).await;
                    }
                }
                Some((key, conflict)) = inputs.conflicts.recv() => self.on_conflict(key, conflict).await,
                Some(event) = witness => self.on_witness(event).await,
                Some((key, link)) = inputs.carrier.recv() => self.on_link(key, link).await,
                Some(((g, s), event)) = inputs.addresses.recv() => {
                    if let Some(group) = self.groups.get_mut(g) {
                        let state = group.election.state();
                        if let Some(input) = group.exec.address_event(s, event, state).await {
                            self.step(g, input).await;
                        }
                    }
                }
                Some(verdict) = inputs.verdicts.recv() => self.on_verdict(verdict).await,
                Some(outcome) = inputs.movers.recv() => {
                    let g = outcome.group;
                    let follow_up = self.groups.get_mut(g).and_then(|group| group.exec.mover_done(&outcome));
                    if let Some(input) = follow_up {
                        self.step(g, input).await;
                    }
                }
                Some(()) = hup => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let answer = self.reload().await;
                    tracing::info!(ok = answer.ok, "{}", answer.message.unwrap_or_default());
                }
                _ = tick.tick() => {
                    if let Some(first) = self.groups.first() {
                        self.node.refresh_metrics(&first.election, &first.exec, self.ops.health().statuses());
                    }
                }
                // Last, and one request per iteration: operators are served with what the
                // elections leave (the control server also caps its clients at 16).
                Some(req) = inputs.control.recv() => self.on_control(req).await,
            }
            if let Some(verdicts) = self.pending_verdicts.take() {
                inputs.verdicts = verdicts;
            }
            if !stopping {
                self.supervisor.status(self.status_line());
            }
            if self.groups.iter().all(|g| g.election.stopped()) {
                break;
            }
        }
        self.step_all(Input::Shutdown).await;
        for group in &mut self.groups {
            group.exec.stop().await;
        }
        self.node.peers.transport.close().await;
        let counters = &self.node.counters;
        tracing::info!(
            adverts_sent = counters.adverts_sent,
            adverts_received = counters.adverts_received,
            rejected = ?counters.rejected,
            "haagent stopped"
        );
    }

    /// The earliest deadline of any group's election, and that group.
    fn next_deadline(&self) -> (Option<usize>, Option<Instant>) {
        self.groups
            .iter()
            .enumerate()
            .filter_map(|(g, group)| group.election.next_deadline().map(|at| (g, at)))
            .min_by_key(|(_, at)| *at)
            .map_or((None, None), |(g, at)| (Some(g), Some(at)))
    }

    /// Feeds one input to every group's election, in group order.
    async fn step_all(&mut self, input: Input) {
        for g in 0..self.groups.len() {
            self.step(g, input.clone()).await;
        }
    }

    /// Feeds one input to group `g`'s election and carries out every action, including
    /// the inputs that carrying them out produces (a failed VIP install becomes a Fault).
    /// An advert goes out at once, with every other group's (see [`Daemon::broadcast`]).
    /// Returns the notices, for a caller that answers an operator with them.
    async fn step(&mut self, g: usize, input: Input) -> Vec<(NoticeCause, String)> {
        let mut notices = Vec::new();
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let Some(group) = self.groups.get_mut(g) else {
                break;
            };
            // The master before this input, for a claim's mover (`HAAGENT_OLD_HOLDER`).
            if let Some(m) = group.election.master() {
                if m != group.election.name() {
                    group.exec.cloud.old_holder = Some(m.to_owned());
                }
            }
            let actions = group.election.handle(Instant::now(), input);
            for action in actions {
                if let Action::Notice { cause, reason } = &action {
                    notices.push((*cause, reason.clone()));
                }
                if let Action::Send(advert) = action {
                    self.groups[g].last_advert = Some(advert);
                    self.broadcast(g).await;
                    continue;
                }
                let group = &mut self.groups[g];
                if let Some(follow_up) = group
                    .exec
                    .execute(action, &group.election, &mut self.node)
                    .await
                {
                    inputs.push_back(follow_up);
                }
            }
        }
        notices
    }

    /// Group `origin` has a new advert: every other group's election adds its current one
    /// ([`Input::AdvertDue`], which also realigns its advert timer), and one datagram with
    /// all of them goes to each peer.
    async fn broadcast(&mut self, origin: usize) {
        let now = Instant::now();
        for h in 0..self.groups.len() {
            if h == origin {
                continue;
            }
            let actions = self.groups[h].election.handle(now, Input::AdvertDue);
            for action in actions {
                if let Action::Send(advert) = action {
                    self.groups[h].last_advert = Some(advert);
                }
            }
        }
        self.seq = self.seq.wrapping_add(1);
        let config = &self.ops.config;
        let entries: Vec<(u16, u32, &Advert)> = self
            .groups
            .iter()
            .filter_map(|g| {
                g.last_advert
                    .as_ref()
                    .map(|a| (g.id, g.vips_fingerprint, a))
            })
            .collect();
        let Some(first) = self.groups.first().and_then(|g| g.last_advert.as_ref()) else {
            return;
        };
        let macs = self.node_macs();
        let interval_ms = u16::try_from(config.election.advert_interval.as_millis())
            .unwrap_or(wire::MAX_ADVERT_INTERVAL_MS);
        let datagram = wire::node_advert(
            &config.node.name,
            interval_ms,
            self.seq,
            self.fingerprint_v2,
            &macs,
            &entries,
        );
        let mut v1 = first.clone();
        v1.seq = self.seq;
        let v1 = wire::encode(&v1);
        // Validated by the config (≤ 64 groups, ≤ 8 interfaces, names by the wire rule);
        // should it ever fail, the v1 peers still get theirs and the error is logged.
        let v2 = match datagram.validate() {
            Ok(()) => wire::encode_v2(&datagram),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the advert datagram (wire v2)");
                Vec::new()
            }
        };
        self.node.counters.adverts_sent += 1;
        self.node.metrics.advert_sent();
        self.contact.sent(self.seq, now);
        self.node.peers.transport.broadcast_heard(
            v2.into(),
            Some(v1.into()),
            &self.contact.heard_from,
        );
    }

    /// This node's MACs for the datagram: the node interface's first, then each other
    /// interface a group uses, once each, at most [`wire::MAX_MACS`].
    fn node_macs(&self) -> Vec<[u8; 6]> {
        let node_if = &self.ops.config.node.interface;
        let mut seen: Vec<(&str, [u8; 6])> = Vec::new();
        if let Some((_, mac)) = self.node.peers.solicit_link {
            seen.push((node_if.as_str(), mac));
        }
        for (interface, mac) in self.groups.iter().flat_map(|g| g.exec.macs()) {
            if seen.len() < wire::MAX_MACS && !seen.iter().any(|(i, _)| *i == interface) {
                seen.push((interface, mac));
            }
        }
        seen.into_iter().map(|(_, mac)| mac).collect()
    }

    /// Every group's lease check (the ones due, or all).
    async fn check_leases(&mut self, all: bool) {
        for g in 0..self.groups.len() {
            self.check_lease(g, all).await;
        }
    }

    async fn check_lease(&mut self, g: usize, all: bool) {
        let group = &mut self.groups[g];
        let state = group.election.state();
        if let Some(input) = group.exec.check_lease(state, all).await {
            self.step(g, input).await;
        }
    }

    /// One transport event. A datagram passes the intake (admission, loss, drift) once and
    /// reaches each group's election as that group's advert, or is counted as refused.
    async fn on_transport_event(&mut self, event: TransportEvent) {
        match event {
            TransportEvent::Datagram {
                peer,
                names,
                payload,
            } => match self.intake.receive(peer, &names, &payload) {
                Received::Adverts {
                    node,
                    advert_interval_ms,
                    adverts,
                    drift,
                    group_drift,
                    seq,
                    heard,
                } => {
                    self.contact.heard(peer, seq);
                    let heard_us_at = heard.and_then(|s| self.contact.sent_at(s));
                    // Heard again after silence: the peer may not hear us yet (our neighbour
                    // entry for it can still be failed), so reach it too.
                    let now = Instant::now();
                    let was_silent = self.groups.iter().any(|g| {
                        g.election
                            .peers()
                            .iter()
                            .any(|v| v.name == node && !v.is_alive(now))
                    });
                    if was_silent {
                        let interval = self.ops.config.election.advert_interval;
                        self.node.reach(&[peer], interval);
                    }
                    self.node.advert_received(&node, &drift);
                    self.log_drift(&node, advert_interval_ms, &drift.new);
                    for d in &group_drift {
                        tracing::warn!(peer = %node, group = %d.group_words(), drift = d.kind.label(),
                            "GROUP DRIFT: {d}");
                    }
                    for (group, mut advert) in adverts {
                        advert.heard_us_at = heard_us_at;
                        self.step(group, Input::Advert(advert)).await;
                    }
                }
                Received::Refused { error, first } => {
                    let kind = error.kind();
                    self.node.rejected(RejectReason::Admission(kind));
                    if first {
                        tracing::warn!(peer = %self.node.peers.label(peer), reason = kind.label(),
                            problem = %error, "ignoring advert (logged once per peer and kind)");
                    }
                }
            },
            TransportEvent::Rejected {
                source,
                kind,
                reason,
            } => {
                // The transport logs each source and kind once (bounded); here it is only
                // counted.
                self.node.rejected(RejectReason::Connection(kind));
                tracing::debug!(%source, reason = kind.label(), %reason, "connection rejected");
            }
            TransportEvent::Up { peer, remote } => {
                tracing::info!(peer = %self.node.peers.label(peer), %remote, "peer connected");
            }
            TransportEvent::Down { peer, reason } => {
                tracing::info!(peer = %self.node.peers.label(peer), %reason, "peer connection closed");
            }
        }
    }

    /// The first time a peer's settings differ from ours: one warning per setting.
    fn log_drift(&self, node: &str, advert_interval_ms: u16, new: &[&'static str]) {
        for setting in new {
            // The advert carries its interval, so that one difference can be shown.
            let values = if *setting == "advert_interval_ms" {
                format!(
                    " ({} ms there, {} ms here)",
                    advert_interval_ms,
                    self.ops.config.election.advert_interval.as_millis()
                )
            } else {
                String::new()
            };
            tracing::warn!(peer = %node, %setting,
                "CONFIG DRIFT: {node} has a different `{setting}` than this node{values}; every node must use the same value");
        }
    }

    async fn on_conflict(&mut self, (g, s): SideKey, conflict: ArpConflict) {
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        if !group
            .exec
            .sides
            .get(s)
            .is_some_and(|side| side.is_current_conflict(&conflict))
        {
            // Read by a watch that was being replaced (reload, new MAC): not about what
            // this side holds now.
            return;
        }
        if self
            .ops
            .config
            .probe
            .ignore_arp_from
            .contains(&conflict.mac)
        {
            // `[vip] ignore_arp_from`: the network's own ARP answers are no holder.
            if group.election.state() == State::Master {
                self.node.arp_ignored(true);
            }
            return;
        }
        self.node.redial_if_unheard(conflict.mac, &group.election);
        if group.election.state() != State::Master {
            return;
        }
        self.node.vip_conflict();
        // If the kernel already dropped the VIP (lease ran out) the conflict is not ours to
        // win: the lease check steps us down.
        let interval = self.ops.config.election.advert_interval;
        let due = group
            .exec
            .sides
            .get_mut(s)
            .is_some_and(|side| side.vips.conflict_check_due(Instant::now(), interval));
        if due {
            self.check_lease(g, true).await;
            if self.groups[g].election.state() != State::Master {
                return;
            }
        }
        self.step(g, Input::Conflict { mac: conflict.mac }).await;
    }

    /// A link report for one side of a group: the side follows the interface (index, MAC,
    /// sockets); the group is in a link fault while any of its interfaces is down, and
    /// only that group (issue 11: a link loss faults the groups that use the interface).
    async fn on_link(&mut self, (g, s): SideKey, link: LinkState) {
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        let Some(side) = group.exec.sides.get_mut(s) else {
            return;
        };
        let vips = &side.vips.manager;
        let moved = link.ifindex.is_some_and(|i| i != vips.ifindex())
            || link.mac.is_some_and(|m| m != vips.mac());
        let came_back = link.usable && side.link_down.is_some();
        let on_node_interface = vips.interface() == self.ops.config.node.interface;
        side.link_down = (!link.usable).then(|| link.detail.clone());
        if link.usable && (moved || came_back) {
            let follow = group.exec.follow_interface(s, &link);
            if on_node_interface {
                if let (Some(i), Some(m)) = (link.ifindex, link.mac) {
                    self.node.peers.solicit_link = Some((i, m));
                }
            }
            if let Some(input) = follow {
                self.step(g, input).await;
            }
        }
        let group = &self.groups[g];
        let down = group.exec.links_down();
        let faulted = group.election.faults().contains_key(&FaultCause::Link);
        if down.is_empty() {
            if faulted {
                tracing::info!(group = %group.exec.name, "{}", link.detail);
                self.step(
                    g,
                    Input::FaultCleared {
                        cause: FaultCause::Link,
                    },
                )
                .await;
            }
        } else {
            let reason = down.join("; ");
            tracing::warn!(group = %group.exec.name, "{}", link.detail);
            self.step(
                g,
                Input::Fault {
                    cause: FaultCause::Link,
                    reason,
                },
            )
            .await;
        }
    }

    async fn on_witness(&mut self, event: WitnessEvent) {
        let (reachable, detail) = match event {
            WitnessEvent::Reachable { gateway, rtt } => (
                true,
                format!("gateway {gateway} answers ({} µs)", rtt.as_micros()),
            ),
            WitnessEvent::Unreachable { gateway, reason } => (
                false,
                format!("gateway {gateway} does not answer: {reason}"),
            ),
        };
        if reachable {
            tracing::info!("{detail}");
        } else {
            tracing::warn!("{detail}");
        }
        self.step_all(Input::Witness { reachable, detail }).await;
    }

    /// Maintenance mode persisted by an earlier run (`[state] dir`: the node's flag, or a
    /// group's own) applies before the elections start, so the node never claims the VIPs in
    /// between.
    async fn restore_maintenance(&mut self) {
        let dir = self.ops.config.state_dir.clone();
        for g in 0..self.groups.len() {
            let name = self.groups[g].exec.name.clone();
            match state::load_group_maintenance(&dir, &name) {
                Persisted::Off => continue,
                Persisted::On => {
                    tracing::warn!(group = %name, state_dir = %dir.display(),
                        "maintenance mode persisted by an earlier run: staying out of the election (`haagent maintenance off` to rejoin)");
                }
                Persisted::Unreadable(why) => {
                    tracing::error!(group = %name, state_dir = %dir.display(),
                        "maintenance flag unreadable ({why}): starting in maintenance to be safe; `haagent maintenance off` rewrites it");
                }
            }
            self.step(g, Input::Maintenance { on: true }).await;
        }
    }

    /// With checks configured, a starting group that tracks any is not eligible until
    /// every check has given its first result (a node whose Nginx is down must never take
    /// the VIP).
    async fn hold_until_checks_settle(&mut self) {
        for (g, group) in self.ops.config.groups.clone().iter().enumerate() {
            if group.track.is_empty() {
                continue;
            }
            self.step(
                g,
                Input::Fault {
                    cause: FaultCause::ChecksPending,
                    reason: "waiting for the first health check results".into(),
                },
            )
            .await;
        }
    }

    /// Feeds each group's verdict (from the checks it tracks, with its weights) to that
    /// group's election: the priority adjustment, and whether a check holds the group in
    /// fault. The election decides what that means (one rule for all faults); inputs that
    /// change nothing produce no action.
    async fn on_verdict(&mut self, verdicts: GroupVerdicts) {
        self.ops.verdicts = verdicts.0.clone();
        for (g, verdict) in verdicts.0.iter().enumerate().take(self.groups.len()) {
            if verdict.settled {
                self.apply_verdict(g, verdict).await;
            }
        }
    }

    /// The priority first, then the checks' fault, and only then the end of the start's
    /// wait for the checks: a first verdict that fails goes straight from that wait to the
    /// check's fault, without a transition to backup and back in between.
    async fn apply_verdict(&mut self, g: usize, verdict: &Verdict) {
        let before = self.groups[g].election.priority();
        self.step(
            g,
            Input::PriorityDelta {
                delta: verdict.priority_delta,
            },
        )
        .await;
        let election = &self.groups[g].election;
        let effective = election.priority();
        if effective != before {
            tracing::warn!(
                group = %self.groups[g].exec.name,
                base = election.base_priority(),
                effective,
                reasons = ?verdict.reasons,
                "effective priority changed by health checks"
            );
        }
        self.node
            .metrics
            .set_group_priority(g, election.base_priority(), effective);
        if g == 0 {
            self.node
                .metrics
                .set_priority(election.base_priority(), effective);
        }
        let input = match &verdict.fault {
            Some(reason) => Input::Fault {
                cause: FaultCause::HealthCheck,
                reason: reason.clone(),
            },
            None => Input::FaultCleared {
                cause: FaultCause::HealthCheck,
            },
        };
        self.step(g, input).await;
        self.step(
            g,
            Input::FaultCleared {
                cause: FaultCause::ChecksPending,
            },
        )
        .await;
        let group = &mut self.groups[g];
        group
            .exec
            .record
            .checks_settled(&group.exec.name, &group.election);
    }

    async fn on_control(&mut self, req: ControlRequest) {
        let answer = match req.request {
            Request::Status {} => {
                let mut pairs: Vec<(&Election, &mut GroupExec)> = self
                    .groups
                    .iter_mut()
                    .map(|g| (&g.election, &mut g.exec))
                    .collect();
                let status = self
                    .ops
                    .status(&mut pairs, &self.node, &self.intake, self.witness.as_ref())
                    .await;
                operator::status_answer(status)
            }
            Request::Maintenance { on, group: None } => {
                self.step_all(Input::Maintenance { on }).await;
                let dir = self.ops.config.state_dir.clone();
                let names = self.groups.iter().map(|g| g.exec.name.clone()).collect();
                let saved = state::save_maintenance(dir, on, names).await;
                if let Err(e) = &saved {
                    tracing::error!(
                        "maintenance {}: not persisted, a restart forgets it: {e}",
                        if on { "on" } else { "off" }
                    );
                }
                operator::maintenance_answer(on, saved)
            }
            Request::Maintenance {
                on,
                group: Some(name),
            } => match self.group_index(&name) {
                Ok(g) => {
                    self.step(g, Input::Maintenance { on }).await;
                    let dir = self.ops.config.state_dir.clone();
                    let saved = state::save_group_maintenance(dir, &name, on).await;
                    if let Err(e) = &saved {
                        tracing::error!(group = %name, "maintenance: not persisted, a restart forgets it: {e}");
                    }
                    operator::group_maintenance_answer(&name, on, saved)
                }
                Err(refused) => refused,
            },
            Request::Handover { to, group } => self.handover(to, group).await,
            Request::Reload {} => self.reload().await,
        };
        let _ = req.reply.send(answer);
    }

    /// The group called `name`, or the refusal that lists the groups there are.
    fn group_index(&self, name: &str) -> Result<usize, Response> {
        self.groups
            .iter()
            .position(|g| g.exec.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.groups.iter().map(|g| g.exec.name.as_str()).collect();
                Response::refused(format!(
                    "no group named {name:?} on this node (groups: {})",
                    names.join(", ")
                ))
            })
    }

    /// `haagent handover [--group G] [--to NODE]`: that group, or every group this node is
    /// master of (with one group: that one, which answers for itself when it is not
    /// master).
    async fn handover(&mut self, to: Option<String>, group: Option<String>) -> Response {
        let targets: Vec<usize> = match group {
            Some(name) => match self.group_index(&name) {
                Ok(g) => vec![g],
                Err(refused) => return refused,
            },
            None if self.groups.len() == 1 => vec![0],
            None => {
                let masters: Vec<usize> = (0..self.groups.len())
                    .filter(|&g| self.groups[g].election.state() == State::Master)
                    .collect();
                if masters.is_empty() {
                    return Response::refused(
                        "this node is master of no group: nothing to hand over",
                    );
                }
                masters
            }
        };
        let mut answers = Vec::new();
        for g in targets {
            let notices = self.step(g, Input::Handover { to: to.clone() }).await;
            let group = &self.groups[g];
            answers.push((
                group.exec.name.clone(),
                operator::handover_answer(notices, group.election.handover_target()),
            ));
        }
        operator::handovers_answer(answers, self.groups.len() > 1)
    }

    /// A reload (control request or SIGHUP), told to systemd (`RELOADING=1`, then
    /// `READY=1`).
    async fn reload(&mut self) -> Response {
        self.supervisor.reloading();
        let answer = self.apply_reload().await;
        self.supervisor.reloaded();
        answer
    }

    /// The operator side reloads, the loop applies what concerns its drivers and the
    /// elections.
    async fn apply_reload(&mut self) -> Response {
        let reloaded = match self
            .ops
            .reload(&self.node.peers.transport, &self.node.peers.specs)
            .await
        {
            Ok(r) => r,
            Err(refused) => return refused,
        };
        if let Some(notifiers) = reloaded.notifiers {
            for (group, notifier) in self.groups.iter_mut().zip(notifiers) {
                group.exec.record.notifier.reconfigure(notifier);
            }
        }
        if let Some(verdicts) = reloaded.verdicts {
            self.pending_verdicts = Some(verdicts);
        }
        if let Some(specs) = reloaded.peers {
            if let Err(e) = self.node.peers.transport.set_peers(specs.clone()) {
                tracing::error!(error = %e, "reload: the transport refused the new peers");
            }
            self.intake.set_peers(specs.clone());
            self.contact.forget_peers();
            self.node.peers.specs = specs;
        }
        if let Some(vips) = reloaded.vips {
            for (g, group_vips) in vips.iter().enumerate() {
                let Some(group) = self.groups.get_mut(g) else {
                    break;
                };
                let holding = group.election.state() == State::Master;
                if let Some(fault) = group.exec.set_vips(group_vips, holding).await {
                    self.step(g, fault).await;
                }
            }
        }
        // What BIRD exports is asked of the new socket, for the new VIPs.
        for (group, config) in self.groups.iter_mut().zip(&self.ops.config.groups) {
            group.exec.follow_export(config, &self.node.metrics);
        }
        // The datagram's header and entries carry what the reload changed.
        let config = &self.ops.config;
        let fingerprint_v2 = config.fingerprint_v2();
        if fingerprint_v2.words != self.fingerprint_v2 {
            self.fingerprint_v2 = fingerprint_v2.words;
            self.intake.set_fingerprint_v2(fingerprint_v2);
        }
        let keys: Vec<GroupKey> = config.groups.iter().map(GroupKey::of).collect();
        let mut entries_changed = false;
        for (group, key) in self.groups.iter_mut().zip(&keys) {
            if group.vips_fingerprint != key.vips_fingerprint {
                group.vips_fingerprint = key.vips_fingerprint;
                entries_changed = true;
            }
        }
        if entries_changed {
            self.intake.set_groups(keys);
        }
        if let Some(reconfigs) = reloaded.election {
            if let Some(first) = reconfigs.first() {
                self.intake.set_fingerprint(first.fingerprint);
                // Fast contact follows the advert interval, as at start
                // (setup::transport).
                self.node
                    .peers
                    .transport
                    .set_redial_interval(first.advert_interval * 2);
            }
            for (g, r) in reconfigs.into_iter().enumerate() {
                if g < self.groups.len() {
                    self.step(g, Input::Reconfigure(r)).await;
                }
            }
        }
        for (g, priority) in reloaded.base_priorities.into_iter().enumerate() {
            let Some(group) = self.groups.get(g) else {
                break;
            };
            if priority != group.election.base_priority() {
                self.step(g, Input::BasePriority { priority }).await;
                let e = &self.groups[g].election;
                self.node
                    .metrics
                    .set_group_priority(g, e.base_priority(), e.priority());
                if g == 0 {
                    let e = &self.groups[0].election;
                    self.node
                        .metrics
                        .set_priority(e.base_priority(), e.priority());
                }
            }
        }
        reloaded.response
    }
}

impl Daemon {
    /// The one-line state for systemd's `STATUS=`: the first group's view, and with
    /// several groups each group's state.
    fn status_line(&self) -> String {
        let now = Instant::now();
        let Some(first) = self.groups.first() else {
            return String::new();
        };
        let alive = first
            .election
            .peers()
            .iter()
            .filter(|p| p.is_alive(now))
            .count();
        let vips = if self.groups.len() == 1 {
            first.exec.vip_list()
        } else {
            self.groups
                .iter()
                .map(|g| format!("{}={}", g.exec.name, g.election.state()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        supervisor::status_line(
            first.election.state(),
            first.election.master(),
            &vips,
            alive,
            self.node.peers.specs.len(),
            first.election.maintenance(),
        )
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
