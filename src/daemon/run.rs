//! The one event loop: it owns the clock and every input channel, turns each event into an
//! election [`Input`], steps the election ([`Daemon::step`], the only caller of
//! [`Election::handle`]) and hands the actions to the [`Executor`].

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Receiver;

use crate::config::Config;
use crate::control::{ControlRequest, Request, Response};
use crate::election::{Action, Election, FaultCause, Input, NoticeCause};
use crate::health::Verdict;
use crate::metrics::RejectReason;
use crate::transport::TransportEvent;
use crate::vip::{AddressWatch, ArpConflict, CarrierWatch, LinkState};
use crate::wire::State;
use crate::witness::{Witness, WitnessEvent};

use super::admission::{Intake, Received};
use super::execute::Executor;
use super::operator::{self, Operator, RunOptions};
use super::setup::{self, DaemonError, Inputs};
use super::state::{self, Persisted};
use super::supervisor::{self, Supervisor};

/// The daemon's state, by job: the election, the drivers that carry out its actions, the
/// intake of peer adverts, the operator interface, and the watches that only report.
struct Daemon {
    election: Election,
    exec: Executor,
    intake: Intake,
    ops: Operator,
    watches: Watches,
    /// The verdict channel of health checks restarted by a reload, picked up by the loop.
    pending_verdicts: Option<Receiver<Verdict>>,
    /// systemd's notify socket: ready, status, watchdog.
    supervisor: Supervisor,
}

/// Drivers that only report (through the loop's inputs); kept alive here.
struct Watches {
    _carrier: CarrierWatch,
    /// Also told of new VIPs by a reload.
    address_watch: AddressWatch,
    /// Also read by `status`.
    witness: Option<Witness>,
}

/// Runs the agent until `shutdown` completes, then hands over gracefully: a master to its
/// best live backup first, make-before-break, and every node with a priority-0 advert.
pub(super) async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (started, inputs) = setup::start(&config).await?;
    let mut daemon = Daemon {
        election: started.election,
        exec: started.exec,
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
        watches: Watches {
            _carrier: started.carrier,
            address_watch: started.address_watch,
            witness: started.witness,
        },
        pending_verdicts: None,
        supervisor: Supervisor::from_env(),
    };
    daemon.run_loop(inputs, started.link, shutdown).await;
    Ok(())
}

impl Daemon {
    async fn run_loop(
        &mut self,
        mut inputs: Inputs,
        link: LinkState,
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
        self.on_link(link).await;
        self.step(Input::Start).await;
        // Joined: the transport listens and the election has its first state.
        self.supervisor.ready(self.status_line());
        // The watchdog is pinged from this loop only, so a stuck loop is restarted.
        let mut watchdog = self.supervisor.ping_every().map(|every| {
            let mut ping = tokio::time::interval(every);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            ping
        });
        let stall_at = supervisor::stall_after().map(|after| Instant::now() + after);
        // Set once a shutdown signal has asked the election to stop: a master hands over
        // first, and the election says when it is done (`stopped()`).
        let mut stopping = false;
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            let deadline = self.election.next_deadline();
            let sleep = sleep_until(deadline);
            let lease_check = sleep_until(self.exec.vips.check_at);
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
                    self.step(Input::Stop).await;
                }
                // Test-only fault injection (debug builds): the loop stops here for good
                // while every other task runs (`supervisor::STALL_ENV`).
                () = sleep_until(stall_at) => {
                    tracing::warn!("test fault injection: the election loop stalls now");
                    std::future::pending::<()>().await;
                }
                // First after a stall (SIGSTOP, a long pause): find out whether the kernel
                // dropped our VIPs before acting on anything else.
                () = lease_check => self.check_lease().await,
                // Before the inputs that can keep the loop busy: a busy loop is alive.
                () = watchdog_due => self.supervisor.ping(),
                event = inputs.transport.recv() => match event {
                    Some(event) => self.on_transport_event(event).await,
                    None => {
                        tracing::error!("transport stopped unexpectedly; shutting down");
                        break;
                    }
                },
                Some(answer) = inputs.probes.recv() => {
                    self.step(Input::ProbeResult { answered_by: answer }).await;
                }
                // The election's timer before every other input (issue 9, fault 6): it used
                // to come after the control socket, so a storm of `status` clients kept the
                // control arm always ready and the master's adverts gapped up to 436 ms
                // against a 171 ms master-down. Peer adverts (above) still come first, so a
                // backup never times out a master whose advert is already queued.
                () = sleep => {
                    self.step(Input::Timeout).await;
                }
                Some(conflict) = inputs.conflicts.recv() => self.on_conflict(conflict).await,
                Some(event) = witness => self.on_witness(event).await,
                Some(link) = inputs.carrier.recv() => self.on_link(link).await,
                Some(event) = inputs.addresses.recv() => {
                    let state = self.election.state();
                    if let Some(input) = self.exec.address_event(event, state).await {
                        self.step(input).await;
                    }
                }
                Some(verdict) = inputs.verdicts.recv() => self.on_verdict(verdict).await,
                Some(()) = hup => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let answer = self.reload().await;
                    tracing::info!(ok = answer.ok, "{}", answer.message.unwrap_or_default());
                }
                _ = tick.tick() => {
                    self.exec.refresh_metrics(&self.election, self.ops.health().statuses());
                }
                // Last, and one request per iteration: operators are served with what the
                // election leaves (the control server also caps its clients at 16).
                Some(req) = inputs.control.recv() => self.on_control(req).await,
            }
            if let Some(verdicts) = self.pending_verdicts.take() {
                inputs.verdicts = verdicts;
            }
            if !stopping {
                self.supervisor.status(self.status_line());
            }
            if self.election.stopped() {
                break;
            }
        }
        self.step(Input::Shutdown).await;
        self.exec.stop().await;
        let counters = &self.exec.record.counters;
        tracing::info!(
            adverts_sent = counters.adverts_sent,
            adverts_received = counters.adverts_received,
            rejected = ?counters.rejected,
            "haagent stopped"
        );
    }

    /// Feeds one input to the election and carries out every action, including the inputs
    /// that carrying them out produces (a failed VIP install becomes a Fault). Returns the
    /// notices, for a caller that answers an operator with them.
    async fn step(&mut self, input: Input) -> Vec<(NoticeCause, String)> {
        let mut notices = Vec::new();
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let actions = self.election.handle(Instant::now(), input);
            for action in actions {
                if let Action::Notice { cause, reason } = &action {
                    notices.push((*cause, reason.clone()));
                }
                if let Some(follow_up) = self.exec.execute(action, &self.election).await {
                    inputs.push_back(follow_up);
                }
            }
        }
        notices
    }

    async fn check_lease(&mut self) {
        if let Some(input) = self.exec.check_lease(self.election.state()).await {
            self.step(input).await;
        }
    }

    /// One transport event. A datagram passes the intake (admission, loss, drift) once and
    /// reaches the election as an advert, or is counted as refused.
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
                } => {
                    // Heard again after silence: the peer may not hear us yet (our neighbour
                    // entry for it can still be failed), so reach it too.
                    let now = Instant::now();
                    let was_silent = self
                        .election
                        .peers()
                        .iter()
                        .any(|v| v.name == node && !v.is_alive(now));
                    if was_silent {
                        let interval = self.election.config().advert_interval;
                        self.exec.reach(&[peer], interval);
                    }
                    self.exec.record.advert_received(&node, &drift);
                    for setting in &drift.new {
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
                            "CONFIG DRIFT: {} has a different `{setting}` than this node{values}; every node must use the same value",
                            node);
                    }
                    for d in &group_drift {
                        tracing::warn!(peer = %node, group = %d.group_words(), drift = d.kind.label(),
                            "GROUP DRIFT: {d}");
                    }
                    // One election (one group) until the daemon runs one per group.
                    for (group, advert) in adverts {
                        if group == 0 {
                            self.step(Input::Advert(advert)).await;
                        }
                    }
                }
                Received::Refused { error, first } => {
                    let kind = error.kind();
                    self.exec.record.rejected(RejectReason::Admission(kind));
                    if first {
                        tracing::warn!(peer = %self.exec.peers.label(peer), reason = kind.label(),
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
                self.exec.record.rejected(RejectReason::Connection(kind));
                tracing::debug!(%source, reason = kind.label(), %reason, "connection rejected");
            }
            TransportEvent::Up { peer, remote } => {
                tracing::info!(peer = %self.exec.peers.label(peer), %remote, "peer connected");
            }
            TransportEvent::Down { peer, reason } => {
                tracing::info!(peer = %self.exec.peers.label(peer), %reason, "peer connection closed");
            }
        }
    }

    async fn on_conflict(&mut self, conflict: ArpConflict) {
        self.exec.redial_if_unheard(conflict.mac, &self.election);
        if self.election.state() != State::Master {
            return;
        }
        self.exec.record.vip_conflict();
        // If the kernel already dropped the VIP (lease ran out) the conflict is not ours to
        // win: the lease check steps us down.
        let interval = self.election.config().advert_interval;
        if self.exec.vips.conflict_check_due(Instant::now(), interval) {
            self.check_lease().await;
            if self.election.state() != State::Master {
                return;
            }
        }
        self.step(Input::Conflict { mac: conflict.mac }).await;
    }

    async fn on_link(&mut self, link: LinkState) {
        let vips = &self.exec.vips.manager;
        let moved = link.ifindex.is_some_and(|i| i != vips.ifindex())
            || link.mac.is_some_and(|m| m != vips.mac());
        let came_back = link.usable && self.election.faults().contains_key(&FaultCause::Link);
        if link.usable && (moved || came_back) {
            if let Some(input) = self.exec.follow_interface(&link) {
                self.step(input).await;
            }
        }
        if link.usable {
            if self.election.faults().contains_key(&FaultCause::Link) {
                tracing::info!("{}", link.detail);
                self.step(Input::FaultCleared {
                    cause: FaultCause::Link,
                })
                .await;
            }
        } else {
            tracing::warn!("{}", link.detail);
            self.step(Input::Fault {
                cause: FaultCause::Link,
                reason: link.detail,
            })
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
        self.step(Input::Witness { reachable, detail }).await;
    }

    /// Maintenance mode persisted by an earlier run (`[state] dir`) applies before the
    /// election starts, so the node never claims the VIPs in between.
    async fn restore_maintenance(&mut self) {
        let dir = &self.ops.config.state_dir;
        match state::load_maintenance(dir) {
            Persisted::Off => return,
            Persisted::On => {
                tracing::warn!(state_dir = %dir.display(),
                    "maintenance mode persisted by an earlier run: staying out of the election (`haagent maintenance off` to rejoin)");
            }
            Persisted::Unreadable(why) => {
                tracing::error!(state_dir = %dir.display(),
                    "maintenance flag unreadable ({why}): starting in maintenance to be safe; `haagent maintenance off` rewrites it");
            }
        }
        self.step(Input::Maintenance { on: true }).await;
    }

    /// With checks configured, a starting node is not eligible until every check has
    /// given its first result (a node whose Nginx is down must never take the VIP).
    async fn hold_until_checks_settle(&mut self) {
        if self.ops.config.checks.is_empty() {
            return;
        }
        self.step(Input::Fault {
            cause: FaultCause::ChecksPending,
            reason: "waiting for the first health check results".into(),
        })
        .await;
    }

    /// Feeds the checks' verdict to the election: the priority adjustment, and whether a
    /// check holds the node in fault. The election decides what that means (one rule for
    /// all faults); inputs that change nothing produce no action.
    async fn on_verdict(&mut self, verdict: Verdict) {
        self.ops.verdict = verdict.clone();
        if !verdict.settled {
            return;
        }
        self.step(Input::FaultCleared {
            cause: FaultCause::ChecksPending,
        })
        .await;
        let before = self.election.priority();
        self.step(Input::PriorityDelta {
            delta: verdict.priority_delta,
        })
        .await;
        let effective = self.election.priority();
        if effective != before {
            tracing::warn!(
                base = self.election.base_priority(),
                effective,
                reasons = ?verdict.reasons,
                "effective priority changed by health checks"
            );
        }
        self.exec
            .record
            .metrics
            .set_priority(self.election.base_priority(), effective);
        let input = match verdict.fault {
            Some(reason) => Input::Fault {
                cause: FaultCause::HealthCheck,
                reason,
            },
            None => Input::FaultCleared {
                cause: FaultCause::HealthCheck,
            },
        };
        self.step(input).await;
    }

    async fn on_control(&mut self, req: ControlRequest) {
        let answer = match req.request {
            Request::Status {} => {
                let status = self
                    .ops
                    .status(
                        &self.election,
                        &mut self.exec,
                        &self.intake,
                        self.watches.witness.as_ref(),
                    )
                    .await;
                operator::status_answer(status)
            }
            Request::Maintenance { on } => {
                self.step(Input::Maintenance { on }).await;
                let dir = self.ops.config.state_dir.clone();
                let saved = state::save_maintenance(dir, on).await;
                if let Err(e) = &saved {
                    tracing::error!(
                        "maintenance {}: not persisted, a restart forgets it: {e}",
                        if on { "on" } else { "off" }
                    );
                }
                operator::maintenance_answer(on, saved)
            }
            Request::Handover { to } => {
                let notices = self.step(Input::Handover { to }).await;
                operator::handover_answer(notices, self.election.handover_target())
            }
            Request::Reload {} => self.reload().await,
        };
        let _ = req.reply.send(answer);
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
    /// election.
    async fn apply_reload(&mut self) -> Response {
        let reloaded = match self
            .ops
            .reload(&self.exec.peers.transport, &self.exec.peers.specs)
            .await
        {
            Ok(r) => r,
            Err(refused) => return refused,
        };
        if let Some(notifier) = reloaded.notifier {
            self.exec.record.notifier = notifier;
        }
        if let Some(verdicts) = reloaded.verdicts {
            self.pending_verdicts = Some(verdicts);
        }
        if let Some(specs) = reloaded.peers {
            if let Err(e) = self.exec.peers.transport.set_peers(specs.clone()) {
                tracing::error!(error = %e, "reload: the transport refused the new peers");
            }
            self.intake.set_peers(specs.clone());
            self.exec.peers.specs = specs;
        }
        if let Some(vips) = reloaded.vips {
            let holding = self.election.state() == State::Master;
            let watch = &self.watches.address_watch;
            if let Some(fault) = self.exec.set_vips(vips, watch, holding).await {
                self.step(fault).await;
            }
        }
        if let Some(r) = reloaded.election {
            self.intake.set_fingerprint(r.fingerprint);
            // Fast contact follows the advert interval, as at start (setup::transport).
            self.exec
                .peers
                .transport
                .set_redial_interval(r.advert_interval * 2);
            self.step(Input::Reconfigure(r)).await;
        }
        if reloaded.base_priority != self.election.base_priority() {
            self.step(Input::BasePriority {
                priority: reloaded.base_priority,
            })
            .await;
            self.exec
                .record
                .metrics
                .set_priority(self.election.base_priority(), self.election.priority());
        }
        reloaded.response
    }
}

impl Daemon {
    /// The one-line state for systemd's `STATUS=`.
    fn status_line(&self) -> String {
        let now = Instant::now();
        let alive = self
            .election
            .peers()
            .iter()
            .filter(|p| p.is_alive(now))
            .count();
        let vips = self
            .exec
            .vips
            .manager
            .vips()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        supervisor::status_line(
            self.election.state(),
            self.election.master(),
            &vips,
            alive,
            self.exec.peers.specs.len(),
            self.election.maintenance(),
        )
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
