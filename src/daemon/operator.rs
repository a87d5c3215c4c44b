//! The operator's side of the daemon: the control-socket requests (status, handover,
//! maintenance, reload) and the status document. The loop hands each request here between
//! two election steps; what the election must hear (a handover, maintenance, a new base
//! priority) goes back to the loop, which steps it. Nothing here blocks the loop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::Receiver;

use crate::certs;
use crate::config::Setting;
use crate::config::{self, Config, Overrides};
use crate::control::{
    CheckView, ClaimBlockedView, ControlServer, Counters as CounterView, FaultView, GroupHandover,
    GroupStatus, GroupVipStatus, PeerStatus, PriorityView, QuorumView, Response, RouteStatus,
    Status, TransitionRecord, VipStatus, WitnessView, STATUS_VERSION,
};
use crate::election::{Election, NoticeCause, Reconfig};
use crate::health::{GroupVerdicts, HealthMonitor, Verdict};
use crate::metrics::{Metrics, MetricsServer};
use crate::net::{format_mac, VipSpec};
use crate::notify::Notifier;
use crate::transport::{PeerSpec, Transport};
use crate::witness::Witness;

use super::admission::Intake;
use super::execute::{claim_policy, unix_secs, GroupExec, Node};
use super::setup;

/// Changes the log level of the running agent (a filter such as `info` or `debug`).
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How the agent was started, for reloads and run-time log changes.
#[derive(Default)]
pub struct RunOptions {
    /// The config file given with `--config`, if any (else the default path or quick mode).
    pub config_file: Option<std::path::PathBuf>,
    /// The command-line flags, re-applied on every reload.
    pub overrides: Overrides,
    /// Changes the log level while running (a reload with a new `[log] level`).
    pub set_log_level: Option<SetLogLevel>,
}

/// What the operator interface keeps: the running configuration and how to load it again,
/// and the drivers a reload replaces (health checks, metrics endpoint, certificates).
pub(super) struct Operator {
    pub(super) config: Config,
    options: RunOptions,
    _control: ControlServer,
    health: HealthMonitor,
    /// The checks' last verdict per group, for `status`.
    pub(super) verdicts: Vec<Verdict>,
    metrics: Arc<Metrics>,
    metrics_server: Option<MetricsServer>,
    cert: OwnCert,
    /// Changes in the file the last reload did not apply (they need a restart).
    pending: Vec<String>,
    started: Instant,
}

/// What the status and the warnings need of this node's certificate.
pub(super) struct OwnCert {
    /// When it expires.
    pub(super) not_after: SystemTime,
    /// Its serial number (lowercase hex).
    pub(super) serial: Option<String>,
}

impl OwnCert {
    /// The facts of `identity`'s certificate.
    pub(super) fn of(identity: &certs::NodeIdentity) -> Self {
        Self {
            not_after: identity.not_after,
            serial: certs::serial_of(identity),
        }
    }
}

/// What a reload changed that the loop must apply.
pub(super) struct Reloaded {
    /// The answer to the operator.
    pub(super) response: Response,
    /// New notify hooks, one per group.
    pub(super) notifiers: Option<Vec<Notifier>>,
    /// The verdicts of restarted health checks.
    pub(super) verdicts: Option<Receiver<GroupVerdicts>>,
    /// Each group's configured base priority (its election decides whether it changed).
    pub(super) base_priorities: Vec<u8>,
    /// New timers, preemption, cluster size or fingerprint for each group's election (and
    /// the intake's fingerprint, the transport's redial interval).
    pub(super) election: Option<Vec<Reconfig>>,
    /// The new peer list, in the transport's index order (see `setup::arrange_peers`).
    pub(super) peers: Option<Vec<PeerSpec>>,
    /// Each group's new VIPs.
    pub(super) vips: Option<Vec<Vec<VipSpec>>>,
}

impl Operator {
    /// `config` as started, with the drivers a reload may replace.
    pub(super) fn new(
        config: Config,
        options: RunOptions,
        control: ControlServer,
        health: HealthMonitor,
        metrics: Arc<Metrics>,
        metrics_server: Option<MetricsServer>,
        cert: OwnCert,
    ) -> Self {
        warn_if_expiring("this node's", cert.not_after);
        Self {
            config,
            options,
            _control: control,
            health,
            verdicts: Vec::new(),
            metrics,
            metrics_server,
            cert,
            pending: Vec::new(),
            started: Instant::now(),
        }
    }

    /// The health checks (their statuses for the metrics).
    pub(super) fn health(&self) -> &HealthMonitor {
        &self.health
    }

    /// Re-reads the configuration and the certificates. Settings that do not touch the
    /// election apply at once without any transition; an invalid file changes nothing
    /// (`Err` is the refusal).
    pub(super) async fn reload(
        &mut self,
        transport: &Transport,
        running_peers: &[PeerSpec],
    ) -> Result<Reloaded, Response> {
        let new = match config::load(self.options.config_file.as_deref(), &self.options.overrides) {
            Ok(c) => c,
            Err(errors) => {
                for e in errors.iter() {
                    tracing::error!("reload rejected: {e}");
                }
                return Err(Response::refused(format!(
                    "configuration rejected, the running one stays:\n{errors}"
                )));
            }
        };
        let identity =
            match certs::load_identity(&new.tls.ca, &new.tls.cert, &new.tls.key, SystemTime::now())
            {
                Ok(id) => id,
                Err(e) => {
                    return Err(Response::refused(format!(
                        "certificates rejected, the running ones stay: {e}"
                    )))
                }
            };
        let mut applied = Vec::new();
        let tls = match transport.reload_identity(&identity) {
            Ok(t) => t,
            Err(e) => return Err(Response::refused(format!("certificates rejected: {e}"))),
        };
        self.cert = OwnCert::of(&identity);
        if tls.certificate_changed {
            applied.push(format!(
                "certificate (serial {}, expires {})",
                self.cert.serial.as_deref().unwrap_or("?"),
                certs::rfc3339(identity.not_after)
            ));
        }
        if !tls.closed_untrusted.is_empty() {
            applied.push(format!(
                "trust (closed the connections of {}: their certificates no longer verify)",
                tls.closed_untrusted.join(", ")
            ));
        }
        warn_if_expiring("this node's", identity.not_after);
        self.metrics
            .set_cert_expiry("node", unix_secs(identity.not_after));

        let applied_config = new.applied_over(&self.config);
        let old = &self.config;
        let live = old.election_changes(&applied_config);
        let restart: Vec<_> = old
            .election_changes(&new)
            .into_iter()
            .filter(|c| !c.setting.applies_live())
            .collect();
        applied.extend(live.iter().map(ToString::to_string));
        let mut pending: Vec<String> = restart.iter().map(ToString::to_string).collect();
        let mut new = applied_config;
        // The group set (names, ids, interfaces) is fixed until a restart: the running
        // elections and drivers stay as they are, and the settings say what waits.
        // A group whose interfaces changed keeps its running VIPs and routes (the rest of
        // its settings apply).
        let same_groups = old.groups.len() == new.groups.len()
            && old
                .groups
                .iter()
                .zip(&new.groups)
                .all(|(a, b)| a.name == b.name && a.id == b.id);
        if same_groups {
            for (running, fresh) in old.groups.iter().zip(new.groups.iter_mut()) {
                if running.interfaces() != fresh.interfaces() {
                    fresh.vips = running.vips.clone();
                    fresh.routes = running.routes.clone();
                }
            }
        } else {
            new.groups = old.groups.clone();
        }
        new.vips = new.groups.iter().flat_map(|g| g.cidrs()).collect();
        let peers = live
            .iter()
            .any(|c| c.setting == Setting::Peers)
            .then(|| setup::arrange_peers(running_peers, &new));
        let vips_changed = old
            .groups
            .iter()
            .zip(&new.groups)
            .any(|(a, b)| a.vips != b.vips);
        let vips = vips_changed.then(|| new.groups.iter().map(|g| g.vips.clone()).collect());
        let election = (live.iter().any(|c| c.setting != Setting::Priority)
            || old
                .groups
                .iter()
                .zip(&new.groups)
                .any(|(a, b)| (a.preempt, a.preempt_delay) != (b.preempt, b.preempt_delay)))
        .then(|| {
            new.groups
                .iter()
                .map(|g| setup::reconfig(&new, g))
                .collect()
        });
        if old.log != new.log {
            if let Some(set) = &self.options.set_log_level {
                match set(&new.log.level) {
                    Ok(()) => applied.push(format!("log level {}", new.log.level)),
                    Err(e) => pending.push(format!("log level: {e}")),
                }
            }
        }
        let mut notifiers = None;
        // The hooks are told the VIPs too.
        let hooks_changed = old
            .groups
            .iter()
            .zip(&new.groups)
            .any(|(a, b)| a.notify != b.notify);
        if hooks_changed || vips.is_some() {
            notifiers = Some(
                new.groups
                    .iter()
                    .map(|g| setup::notifier(&new, g))
                    .collect(),
            );
            applied.push("notify hooks".into());
        }
        // Information only, never an election change: the loop restarts the group's watch.
        for (a, b) in old.groups.iter().zip(&new.groups) {
            if a.bird_socket != b.bird_socket {
                applied.push(format!("group {} bird_socket", b.name));
            }
        }
        let mut verdicts = None;
        let tracks_changed = old
            .groups
            .iter()
            .zip(&new.groups)
            .any(|(a, b)| a.track != b.track);
        if old.checks != new.checks || tracks_changed {
            let (health, rx) = setup::health(&new);
            self.health = health;
            verdicts = Some(rx);
            applied.push("health checks".into());
        }
        if old.metrics_listen != new.metrics_listen {
            self.metrics_server = None;
            match setup::metrics_server(&new, &self.metrics).await {
                Ok(server) => self.metrics_server = server,
                Err(e) => pending.push(e.to_string()),
            }
            applied.push("metrics endpoint".into());
        }
        let base_priorities = new.groups.iter().map(|g| g.priority).collect();
        self.config = new;
        let mut message = if applied.is_empty() {
            "configuration reloaded: nothing that matters at run time changed".to_string()
        } else {
            format!("configuration reloaded: applied {}", applied.join(", "))
        };
        if !pending.is_empty() {
            message.push_str(&format!(
                "; NOT applied, restart the agent to apply: {}",
                pending.join(", ")
            ));
            tracing::warn!("reload: {message}");
        }
        self.pending = pending;
        let response = if self.pending.is_empty() {
            Response::done(message)
        } else {
            // Applied what it could, but the running agent does not match the file.
            Response::refused(message)
        };
        Ok(Reloaded {
            response,
            notifiers,
            verdicts,
            base_priorities,
            election,
            peers,
            vips,
        })
    }

    /// The status document (`haagent status`, schema [`STATUS_VERSION`]).
    pub(super) async fn status(
        &self,
        groups: &mut [(&Election, &mut GroupExec)],
        node: &Node,
        intake: &Intake,
        witness: Option<&Witness>,
    ) -> Result<Status, String> {
        let now = Instant::now();
        let mut vips = Vec::new();
        let mut group_views = Vec::with_capacity(groups.len());
        for (g, (election, exec)) in groups.iter_mut().enumerate() {
            let master = election.master().map(str::to_string);
            let mut held = Vec::new();
            for side in &mut exec.sides {
                let here = side
                    .vips
                    .installed_recently(now)
                    .await
                    .map_err(|e| format!("cannot read the VIPs: {e}"))?;
                vips.extend(side.vips.manager.vips().iter().map(|v| VipStatus {
                    address: v.to_string(),
                    held_here: here.contains(v),
                    holder: master.clone(),
                }));
                held.extend(here);
            }
            let routes = group_routes(exec).await;
            let Some(config) = self.config.groups.get(g) else {
                continue;
            };
            // `wait = true`: a claim counts once its mover succeeded; until then the group
            // shows the state it claims from (docs/cloud.md).
            let state = exec
                .cloud
                .waiting
                .as_ref()
                .map_or(election.state(), |w| w.from);
            group_views.push(GroupStatus {
                name: config.name.clone(),
                id: config.id,
                mode: config.mode.as_str().to_string(),
                state,
                state_age_ms: age_ms(now, election.state_since()),
                priority: election.priority(),
                base_priority: election.base_priority(),
                priority_reasons: self
                    .verdicts
                    .get(g)
                    .map(|v| v.reasons.clone())
                    .unwrap_or_default(),
                epoch: election.epoch(),
                master,
                vips: config
                    .vips
                    .iter()
                    .map(|v| GroupVipStatus {
                        address: v.cidr.to_string(),
                        interface: v.interface.clone(),
                        label: v.label.clone(),
                        installed: held.contains(&v.cidr),
                    })
                    .collect(),
                routes,
                faults: FaultView::list(election.faults()),
                maintenance: election.maintenance(),
                claim_blocked: election.claim_blocked().map(|b| ClaimBlockedView {
                    mac: format_mac(&b.mac),
                    member: b.member.clone(),
                    for_ms: age_ms(now, b.since),
                    policy: Some(claim_policy(
                        b.member.is_some(),
                        exec.foreign_holder_timeout,
                    )),
                }),
                handover_target: election.handover_target().map(str::to_string),
                mover: exec.cloud.view(),
                export: exec.export.as_ref().map(|w| w.status(now)),
            });
        }
        // The node-level fields describe the first group (docs/status.md).
        let Some(election) = groups.first().map(|(e, _)| *e) else {
            return Err("no VIP group".into());
        };
        let master = election.master().map(str::to_string);
        let stats = node.peers.transport.stats();
        let views = election.peers();
        let peers = node
            .peers
            .specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let link = stats.get(i).cloned().unwrap_or_default();
                // A peer given by address is known by name once its first advert arrives.
                let known = spec.name.as_deref().or_else(|| intake.name_of(i));
                let view = known.and_then(|n| views.iter().find(|v| v.name == n));
                let name = spec
                    .name
                    .clone()
                    .unwrap_or_else(|| spec.addr.ip().to_string());
                let peer_cert = link.cert_not_after;
                PeerStatus {
                    address: spec.addr.to_string(),
                    connected: link.connected,
                    alive: view.is_some_and(|v| v.is_alive(now)),
                    state: view.map(|v| v.state),
                    priority: view.map(|v| v.priority),
                    epoch: view.map(|v| v.epoch),
                    last_advert_age_ms: view
                        .map(|v| ms_f(now.saturating_duration_since(v.last_heard))),
                    rtt_ms: link.rtt.map(ms_f),
                    loss_percent: view.and_then(|v| intake.loss_percent(&v.name)),
                    cert_not_after: peer_cert.map(certs::rfc3339),
                    cert_serial: link.cert_serial.clone(),
                    cert_days_left: peer_cert.map(|t| certs::days_left(t, SystemTime::now())),
                    config_drift: intake.drift_of(&name),
                    name,
                }
            })
            .collect::<Vec<PeerStatus>>();
        let mut warnings = Vec::new();
        warnings.extend(expiry_warning("this node's", self.cert.not_after));
        // `peers` is in the order of the specs, as are the link stats.
        for (p, link) in peers.iter().zip(&stats) {
            if let Some(t) = link.cert_not_after {
                warnings.extend(expiry_warning(&format!("peer {}'s", p.name), t));
            }
        }
        let checks = self
            .health
            .statuses()
            .into_iter()
            .map(|c| CheckView {
                name: c.name,
                kind: c.kind.to_string(),
                healthy: c.healthy,
                last_result: c.last_result,
                latency_ms: c.latency_ms,
                exit_events: c.exit_events,
            })
            .collect();
        let witness = witness.map(|w| WitnessView {
            gateway: w.gateway().to_string(),
            reachable: w.reachable(),
            rtt_ms: w.last_rtt().map(ms_f),
        });
        let (heard, needed, enabled) = election.quorum_view(now);
        let counters = &node.counters;
        let mut rejected: BTreeMap<String, u64> = counters
            .rejected
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        rejected.retain(|_, v| *v > 0);
        Ok(Status {
            version: STATUS_VERSION,
            node: election.config().name.clone(),
            cluster: self.config.cluster.clone(),
            state: group_views.first().map_or(election.state(), |g| g.state),
            state_age_ms: u64::try_from(
                now.saturating_duration_since(election.state_since())
                    .as_millis(),
            )
            .unwrap_or(u64::MAX),
            epoch: election.epoch(),
            priority: PriorityView {
                base: election.base_priority(),
                effective: election.priority(),
                reasons: self
                    .verdicts
                    .first()
                    .map(|v| v.reasons.clone())
                    .unwrap_or_default(),
            },
            maintenance: election.maintenance(),
            master,
            vips,
            peers,
            checks,
            witness,
            quorum: QuorumView {
                enabled,
                heard,
                needed,
                cluster_size: node.peers.specs.len() + 1,
            },
            claim_blocked: election.claim_blocked().map(|b| ClaimBlockedView {
                mac: format_mac(&b.mac),
                member: b.member.clone(),
                for_ms: u64::try_from(now.saturating_duration_since(b.since).as_millis())
                    .unwrap_or(u64::MAX),
                policy: Some(claim_policy(
                    b.member.is_some(),
                    self.config.probe.foreign_holder_timeout,
                )),
            }),
            faults: FaultView::list(election.faults()),
            transitions: merged_transitions(groups),
            counters: CounterView {
                adverts_sent: counters.adverts_sent,
                adverts_received: counters.adverts_received,
                rejected,
                garps_sent: groups
                    .iter()
                    .flat_map(|(_, g)| &g.sides)
                    .filter_map(|s| s.arp.as_ref())
                    .map(|a| a.announcer.sent())
                    .sum(),
                vip_conflicts: counters.vip_conflicts,
                arp_ignored: counters
                    .arp_ignored
                    .load(std::sync::atomic::Ordering::Relaxed),
            },
            cert_not_after: Some(certs::rfc3339(self.cert.not_after)),
            cert_serial: self.cert.serial.clone(),
            cert_days_left: Some(certs::days_left(self.cert.not_after, SystemTime::now())),
            warnings,
            pending_restart: self.pending.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            groups: group_views,
        })
    }
}

/// A group's routes as the kernel has them now (each configured route, installed or not,
/// with the last install error).
async fn group_routes(exec: &GroupExec) -> Vec<RouteStatus> {
    let mut out = Vec::new();
    for routes in [&exec.host_routes, &exec.routes].into_iter().flatten() {
        out.extend(routes_status(routes).await);
    }
    out
}

/// One route manager's routes as the kernel has them now.
async fn routes_status(routes: &super::execute::Routes) -> Vec<RouteStatus> {
    let (present, read_error) = match routes.manager.present().await {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(format!("cannot read the routes: {e}"))),
    };
    routes
        .manager
        .routes()
        .iter()
        .map(|r| RouteStatus {
            route: r.to_string(),
            installed: present.contains(r),
            error: routes.error.clone().or_else(|| read_error.clone()),
        })
        .collect()
}

/// Every group's recent transitions, oldest first, at most as many as one group keeps.
fn merged_transitions(groups: &[(&Election, &mut GroupExec)]) -> Vec<TransitionRecord> {
    let mut all: Vec<TransitionRecord> = groups
        .iter()
        .flat_map(|(_, exec)| exec.record.transitions.iter().cloned())
        .collect();
    // RFC 3339 in UTC, whole seconds: the text sorts by time. Stable: within one second
    // the groups' transitions come in group order, each group's in its own order.
    all.sort_by(|a, b| a.at.cmp(&b.at));
    let keep = super::execute::TRANSITIONS_KEPT;
    all.split_off(all.len().saturating_sub(keep))
}

/// Milliseconds from `since` to `now` (0 if `since` is later).
fn age_ms(now: Instant, since: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(since).as_millis()).unwrap_or(u64::MAX)
}

/// The answer to `status`.
pub(super) fn status_answer(status: Result<Status, String>) -> Response {
    match status {
        Ok(status) => Response {
            ok: true,
            message: None,
            status: Some(Box::new(status)),
            handover_to: None,
            handovers: Vec::new(),
        },
        Err(e) => Response::refused(e),
    }
}

/// The answer to `maintenance on|off`, once the election has it and `saved` says whether
/// it was persisted for the next start.
pub(super) fn maintenance_answer(on: bool, saved: Result<(), String>) -> Response {
    let mut message = if on {
        "maintenance on: this node gave up the VIPs and will not take them".to_string()
    } else {
        "maintenance off: this node is eligible again".to_string()
    };
    if let Err(e) = saved {
        message.push_str(&format!(" (not persisted, a restart forgets it: {e})"));
    }
    Response::done(message)
}

/// The answer to `maintenance on|off --group G`, once the group's election has it and
/// `saved` says whether it was persisted (`maintenance.group.G` in `[state] dir`).
pub(super) fn group_maintenance_answer(
    group: &str,
    on: bool,
    saved: Result<(), String>,
) -> Response {
    let mut message = if on {
        format!(
            "maintenance on for group {group}: this node gave up its VIPs and will not take them"
        )
    } else {
        format!("maintenance off for group {group}: this node is eligible again")
    };
    if let Err(e) = saved {
        message.push_str(&format!(" (not persisted, a restart forgets it: {e})"));
    }
    Response::done(message)
}

/// One answer for the handovers of several groups (`answers`: group name and its own
/// answer, in group order): done when any started, with every group's words; the started
/// ones in [`Response::handovers`], the first target also in `handover_to`.
/// With `named` (the node has several groups), every answer says which group it is about.
pub(super) fn handovers_answer(answers: Vec<(String, Response)>, named: bool) -> Response {
    if answers.len() == 1 && !named {
        if let Some((group, mut answer)) = answers.into_iter().next() {
            if let Some(to) = &answer.handover_to {
                answer.handovers = vec![GroupHandover {
                    group,
                    to: to.clone(),
                }];
            }
            return answer;
        }
        return Response::refused("no group to hand over");
    }
    let mut handovers = Vec::new();
    let mut words = Vec::new();
    for (group, answer) in answers {
        if let Some(to) = &answer.handover_to {
            handovers.push(GroupHandover {
                group: group.clone(),
                to: to.clone(),
            });
        }
        words.push(format!("{group}: {}", answer.message.unwrap_or_default()));
    }
    let message = words.join("; ");
    match handovers.first() {
        Some(first) => Response {
            handover_to: Some(first.to.clone()),
            handovers,
            ..Response::done(message)
        },
        None => Response::refused(message),
    }
}

/// The answer to a planned handover: the election picks (or checks) the target and answers
/// with a notice, which becomes the operator's answer; `target` is the one it picked.
pub(super) fn handover_answer(
    notices: Vec<(NoticeCause, String)>,
    target: Option<&str>,
) -> Response {
    match notices.into_iter().find(|(c, _)| {
        matches!(
            c,
            NoticeCause::HandoverStarted | NoticeCause::HandoverRefused
        )
    }) {
        Some((NoticeCause::HandoverStarted, reason)) => Response {
            handover_to: target.map(str::to_string),
            ..Response::done(reason)
        },
        Some((_, reason)) => Response::refused(reason),
        None => Response::refused("the election did not answer the handover request"),
    }
}

/// "this node's certificate expires in 12 days (…): renew it …" when `not_after` is within
/// [`certs::EXPIRY_WARNING_DAYS`]; `whose` is `"this node's"` or `"peer n2's"`.
fn expiry_warning(whose: &str, not_after: SystemTime) -> Option<String> {
    let now = SystemTime::now();
    let days = certs::days_left(not_after, now);
    (days < certs::EXPIRY_WARNING_DAYS).then(|| {
        format!(
            "{whose} certificate {} ({}): renew it with `{}` and `haagent reload`",
            certs::expiry_words(not_after, now),
            certs::rfc3339(not_after),
            certs::RENEW_COMMAND
        )
    })
}

/// Logs [`expiry_warning`] at WARN, if any.
fn warn_if_expiring(whose: &str, not_after: SystemTime) {
    if let Some(w) = expiry_warning(whose, not_after) {
        tracing::warn!("{w}");
    }
}

fn ms_f(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
