//! The operator's side of the daemon: status, control requests (handover, maintenance,
//! reload), health verdicts, metrics and configuration drift. Everything here runs on the
//! daemon loop, between two election steps; nothing blocks it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::certs;
use crate::config::{self, Config};
use crate::control::{
    CheckView, ClaimBlockedView, ControlRequest, ControlServer, Counters as CounterView,
    PeerStatus, PriorityView, QuorumView, Request, Response, Status, TransitionRecord, VipStatus,
    WitnessView, STATUS_VERSION,
};
use crate::election::{Cause, FaultCause, Input, NoticeCause};
use crate::health::{HealthMonitor, Verdict};
use crate::metrics::{Metrics, MetricsServer};
use crate::net::format_mac;
use crate::notify::{Hooks, Notifier};
use crate::wire::{Advert, State};

use super::{fingerprint, unix_secs, Daemon, RunOptions};

/// How many transitions `status` shows.
const TRANSITIONS_KEPT: usize = 20;
/// How long `status` reuses its last netlink read of the installed VIPs. The read is the one
/// part of a status that leaves the process; a storm of clients (issue 9, fault 6) then costs
/// the loop at most one netlink round trip per this period. The loop forgets the read
/// whenever it installs or releases the VIPs, so a status right after a transition is exact.
const HELD_FRESH: Duration = Duration::from_millis(100);

/// How many of a peer's most recent adverts its loss figure covers (12.8 s at 50 ms).
const LOSS_WINDOW: usize = 256;

/// Loss accounting of one peer's advert sequence numbers, over its last [`LOSS_WINDOW`]
/// adverts received. A lifetime average (what this was) kept showing 46–75 % loss long
/// after a gap (an address change, a reconnect) while every advert was arriving again.
#[derive(Debug, Clone, Default)]
struct SeqTrack {
    /// Sequence numbers received, ascending, at most `LOSS_WINDOW`.
    window: VecDeque<u64>,
}

impl SeqTrack {
    fn record(&mut self, seq: u64) {
        if self.window.back().is_some_and(|&last| seq <= last) {
            // The peer restarted (its counter begins again): start counting afresh.
            self.window.clear();
        }
        self.window.push_back(seq);
        if self.window.len() > LOSS_WINDOW {
            self.window.pop_front();
        }
    }

    /// Percent of the adverts between the oldest and newest in the window that did not
    /// arrive.
    fn loss_percent(&self) -> f64 {
        let (Some(&first), Some(&last)) = (self.window.front(), self.window.back()) else {
            return 0.0;
        };
        let expected = last.saturating_sub(first).saturating_add(1);
        100.0 * (1.0 - self.window.len() as f64 / expected as f64).max(0.0)
    }
}

/// State the operator interface keeps besides the election.
pub(super) struct Operator {
    pub(super) config: Config,
    options: RunOptions,
    _control: ControlServer,
    health: HealthMonitor,
    verdict: Verdict,
    pub(super) metrics: Arc<Metrics>,
    metrics_server: Option<MetricsServer>,
    cert_not_after: SystemTime,
    transitions: VecDeque<TransitionRecord>,
    seqs: HashMap<String, SeqTrack>,
    fingerprint: [u32; 4],
    fingerprint_names: Vec<&'static str>,
    /// Settings each peer disagrees on.
    drift: BTreeMap<String, Vec<String>>,
    /// (peer, setting) drift already logged.
    drift_logged: HashSet<(String, String)>,
    started: Instant,
    /// The last netlink read of the installed VIPs, and when it was made.
    held: Option<(Instant, Vec<crate::net::Ipv4Cidr>)>,
}

impl Operator {
    pub(super) fn new(
        config: Config,
        options: RunOptions,
        control: ControlServer,
        health: HealthMonitor,
        metrics: Arc<Metrics>,
        metrics_server: Option<MetricsServer>,
        cert_not_after: SystemTime,
    ) -> Self {
        let (fp, names) = fingerprint(&config);
        metrics.set_priority(config.node.priority, config.node.priority);
        Self {
            config,
            options,
            _control: control,
            health,
            verdict: Verdict::default(),
            metrics,
            metrics_server,
            cert_not_after,
            transitions: VecDeque::new(),
            seqs: HashMap::new(),
            fingerprint: fp,
            fingerprint_names: names,
            drift: BTreeMap::new(),
            drift_logged: HashSet::new(),
            started: Instant::now(),
            held: None,
        }
    }

    pub(super) fn record_transition(
        &mut self,
        from: State,
        to: State,
        epoch: u64,
        cause: Cause,
        reason: &str,
    ) {
        if self.transitions.len() == TRANSITIONS_KEPT {
            self.transitions.pop_front();
        }
        self.transitions.push_back(TransitionRecord {
            at: certs::rfc3339(SystemTime::now()),
            from,
            to,
            epoch,
            cause: cause.label().to_string(),
            reason: reason.to_string(),
        });
        self.metrics.set_state(to);
        self.metrics.set_epoch(epoch);
        self.metrics.transition(to, cause);
    }

    /// Forgets the cached VIP read (the loop changed the VIPs).
    pub(super) fn vips_changed(&mut self) {
        self.held = None;
    }

    pub(super) fn track_peer_advert(&mut self, advert: &Advert) {
        self.seqs
            .entry(advert.name.clone())
            .or_default()
            .record(advert.seq);
    }

    /// Compares a peer's settings fingerprint with ours (admission has already refused
    /// another cluster) and logs every difference once per peer and setting.
    pub(super) fn check_drift(&mut self, advert: &Advert) {
        let differs: Vec<String> = self
            .fingerprint_names
            .iter()
            .zip(self.fingerprint.iter().zip(advert.fingerprint.iter()))
            .filter(|(_, (ours, theirs))| ours != theirs)
            .map(|(name, _)| name.to_string())
            .collect();
        for name in &self.fingerprint_names {
            self.metrics
                .config_drift(&advert.name, name, differs.iter().any(|d| d == name));
        }
        for setting in &differs {
            if self
                .drift_logged
                .insert((advert.name.clone(), setting.clone()))
            {
                // The advert carries its interval, so that one difference can be shown.
                let values = if setting == "advert_interval_ms" {
                    format!(
                        " ({} ms there, {} ms here)",
                        advert.advert_interval_ms,
                        self.config.election.advert_interval.as_millis()
                    )
                } else {
                    String::new()
                };
                tracing::warn!(peer = %advert.name, %setting,
                    "CONFIG DRIFT: {} has a different `{setting}` than this node{values}; every node must use the same value",
                    advert.name);
            }
        }
        if differs.is_empty() {
            self.drift.remove(&advert.name);
        } else {
            self.drift.insert(advert.name.clone(), differs);
        }
    }
}

fn ms_f(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Daemon {
    /// With checks configured, a starting node is not eligible until every check has
    /// given its first result (a node whose Nginx is down must never take the VIP).
    pub(super) async fn hold_until_checks_settle(&mut self) {
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
    pub(super) async fn on_verdict(&mut self, verdict: Verdict) {
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
        self.ops
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

    pub(super) async fn on_control(&mut self, req: ControlRequest) {
        let answer = match req.request {
            Request::Status {} => match self.status().await {
                Ok(status) => Response {
                    ok: true,
                    message: None,
                    status: Some(Box::new(status)),
                    handover_to: None,
                },
                Err(e) => Response::refused(e),
            },
            Request::Maintenance { on } => {
                self.step(Input::Maintenance { on }).await;
                Response::done(if on {
                    "maintenance on: this node gave up the VIPs and will not take them"
                } else {
                    "maintenance off: this node is eligible again"
                })
            }
            Request::Handover { to } => self.handover(to).await,
            Request::Reload {} => self.reload().await,
        };
        let _ = req.reply.send(answer);
    }

    /// A planned handover: the election picks (or checks) the target and answers with a
    /// notice, which becomes the operator's answer.
    pub(super) async fn handover(&mut self, to: Option<String>) -> Response {
        let notices = self.step(Input::Handover { to }).await;
        match notices.into_iter().find(|(c, _)| {
            matches!(
                c,
                NoticeCause::HandoverStarted | NoticeCause::HandoverRefused
            )
        }) {
            Some((NoticeCause::HandoverStarted, reason)) => Response {
                handover_to: self.election.handover_target().map(str::to_string),
                ..Response::done(reason)
            },
            Some((_, reason)) => Response::refused(reason),
            None => Response::refused("the election did not answer the handover request"),
        }
    }

    /// Re-reads the configuration and the certificates. Settings that do not touch the
    /// election apply at once without any transition; an invalid file changes nothing.
    pub(super) async fn reload(&mut self) -> Response {
        let new = match config::load(
            self.ops.options.config_file.as_deref(),
            &self.ops.options.overrides,
        ) {
            Ok(c) => c,
            Err(errors) => {
                for e in errors.iter() {
                    tracing::error!("reload rejected: {e}");
                }
                return Response::refused(format!(
                    "configuration rejected, the running one stays:\n{errors}"
                ));
            }
        };
        let identity =
            match certs::load_identity(&new.tls.ca, &new.tls.cert, &new.tls.key, SystemTime::now())
            {
                Ok(id) => id,
                Err(e) => {
                    return Response::refused(format!(
                        "certificates rejected, the running ones stay: {e}"
                    ))
                }
            };
        let mut applied = Vec::new();
        if let Err(e) = self.transport.reload_identity(&identity) {
            return Response::refused(format!("certificates rejected: {e}"));
        }
        if identity.not_after != self.ops.cert_not_after {
            applied.push("certificate".to_string());
        }
        self.ops.cert_not_after = identity.not_after;
        self.ops
            .metrics
            .set_cert_expiry("node", unix_secs(identity.not_after));

        let old = &self.ops.config;
        let (live, restart): (Vec<_>, Vec<_>) = old
            .election_changes(&new)
            .into_iter()
            .partition(|c| c.setting.applies_live());
        applied.extend(live.iter().map(ToString::to_string));
        let mut pending: Vec<String> = restart.iter().map(ToString::to_string).collect();
        if old.log != new.log {
            if let Some(set) = &self.ops.options.set_log_level {
                match set(&new.log.level) {
                    Ok(()) => applied.push(format!("log level {}", new.log.level)),
                    Err(e) => pending.push(format!("log level: {e}")),
                }
            }
        }
        if old.notify != new.notify {
            self.notifier = Notifier::new(
                Hooks::from(&new.notify),
                new.node.name.clone(),
                super::vip_list(&new),
            );
            applied.push("notify hooks".into());
        }
        if old.checks != new.checks {
            let (health, verdicts) = HealthMonitor::spawn(new.checks.clone());
            self.ops.health = health;
            self.pending_verdicts = Some(verdicts);
            applied.push("health checks".into());
        }
        if old.metrics_listen != new.metrics_listen {
            self.ops.metrics_server = None;
            if let Some(listen) = new.metrics_listen {
                match crate::metrics::serve(listen, Arc::clone(&self.ops.metrics)).await {
                    Ok(server) => self.ops.metrics_server = Some(server),
                    Err(e) => pending.push(e.to_string()),
                }
            }
            applied.push("metrics endpoint".into());
        }
        let base = new.node.priority;
        self.ops.config = new;
        if base != self.election.base_priority() {
            self.step(Input::BasePriority { priority: base }).await;
            self.ops
                .metrics
                .set_priority(self.election.base_priority(), self.election.priority());
        }
        let mut message = if applied.is_empty() {
            "configuration reloaded: nothing that matters at run time changed".to_string()
        } else {
            format!("configuration reloaded: applied {}", applied.join(", "))
        };
        if !pending.is_empty() {
            message.push_str(&format!(
                "; restart the agent to apply: {}",
                pending.join(", ")
            ));
        }
        Response::done(message)
    }

    pub(super) fn refresh_metrics(&mut self) {
        let now = Instant::now();
        let stats = self.transport.stats();
        let views = self.election.peers();
        for (i, spec) in self.peers.iter().enumerate() {
            let name = spec.name.clone().unwrap_or_else(|| spec.addr.to_string());
            let link = stats.get(i);
            let view = views.iter().find(|v| v.name == name);
            self.ops.metrics.peer(
                &name,
                link.and_then(|l| l.rtt),
                view.map(|v| now.saturating_duration_since(v.last_heard)),
                link.is_some_and(|l| l.connected),
            );
            if let Some(t) = link.and_then(|l| l.cert_not_after) {
                self.ops
                    .metrics
                    .set_cert_expiry(&format!("peer:{name}"), unix_secs(t));
            }
        }
        for c in self.ops.health.statuses() {
            self.ops.metrics.check(
                &c.name,
                c.healthy,
                c.latency_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0)),
            );
        }
        self.ops.metrics.set_garps_sent(self.announcer.sent());
        self.ops.metrics.set_claim_blocked(
            self.election
                .claim_blocked()
                .map(|b| now.saturating_duration_since(b.since)),
        );
    }

    pub(super) async fn status(&mut self) -> Result<Status, String> {
        let now = Instant::now();
        let held = match &self.ops.held {
            Some((at, held)) if now.saturating_duration_since(*at) < HELD_FRESH => held.clone(),
            _ => {
                let held = self
                    .vips
                    .installed()
                    .await
                    .map_err(|e| format!("cannot read the VIPs: {e}"))?;
                self.ops.held = Some((now, held.clone()));
                held
            }
        };
        let master = self.election.master().map(str::to_string);
        let vips = self
            .vips
            .vips()
            .iter()
            .map(|v| VipStatus {
                address: v.to_string(),
                held_here: held.contains(v),
                holder: master.clone(),
            })
            .collect();
        let stats = self.transport.stats();
        let views = self.election.peers();
        let peers = self
            .peers
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let link = stats.get(i).cloned().unwrap_or_default();
                // A peer given by address is known by name once its first advert arrives.
                let view = match &spec.name {
                    Some(n) => views.iter().find(|v| &v.name == n),
                    None => None,
                };
                let name = spec
                    .name
                    .clone()
                    .unwrap_or_else(|| spec.addr.ip().to_string());
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
                    loss_percent: view
                        .and_then(|v| self.ops.seqs.get(&v.name))
                        .map(SeqTrack::loss_percent),
                    cert_not_after: link.cert_not_after.map(certs::rfc3339),
                    config_drift: self.ops.drift.get(&name).cloned().unwrap_or_default(),
                    name,
                }
            })
            .collect();
        let checks = self
            .ops
            .health
            .statuses()
            .into_iter()
            .map(|c| CheckView {
                name: c.name,
                kind: c.kind.to_string(),
                healthy: c.healthy,
                last_result: c.last_result,
                latency_ms: c.latency_ms,
            })
            .collect();
        let witness = self._witness.as_ref().map(|w| WitnessView {
            gateway: w.gateway().to_string(),
            reachable: w.reachable(),
            rtt_ms: w.last_rtt().map(ms_f),
        });
        let (heard, needed, enabled) = self.election.quorum_view(now);
        let mut rejected: BTreeMap<String, u64> = self
            .counters
            .rejected
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        rejected.retain(|_, v| *v > 0);
        Ok(Status {
            version: STATUS_VERSION,
            node: self.name.clone(),
            cluster: self.ops.config.cluster.clone(),
            state: self.election.state(),
            state_age_ms: u64::try_from(
                now.saturating_duration_since(self.election.state_since())
                    .as_millis(),
            )
            .unwrap_or(u64::MAX),
            epoch: self.election.epoch(),
            priority: PriorityView {
                base: self.election.base_priority(),
                effective: self.election.priority(),
                reasons: self.ops.verdict.reasons.clone(),
            },
            maintenance: self.election.maintenance(),
            master,
            vips,
            peers,
            checks,
            witness,
            quorum: QuorumView {
                enabled,
                heard,
                needed,
                cluster_size: self.peers.len() + 1,
            },
            claim_blocked: self.election.claim_blocked().map(|b| ClaimBlockedView {
                mac: format_mac(&b.mac),
                member: b.member.clone(),
                for_ms: u64::try_from(now.saturating_duration_since(b.since).as_millis())
                    .unwrap_or(u64::MAX),
            }),
            transitions: self.ops.transitions.iter().cloned().collect(),
            counters: CounterView {
                adverts_sent: self.counters.adverts_sent,
                adverts_received: self.counters.adverts_received,
                rejected,
                garps_sent: self.announcer.sent(),
                vip_conflicts: self.counters.vip_conflicts,
            },
            cert_not_after: Some(certs::rfc3339(self.ops.cert_not_after)),
            uptime_s: self.ops.started.elapsed().as_secs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_counted_from_sequence_gaps() {
        let mut t = SeqTrack::default();
        for seq in (10..20).filter(|s| *s != 15) {
            t.record(seq);
        }
        assert!((t.loss_percent() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn loss_forgets_an_old_gap_once_every_advert_arrives_again() {
        let mut t = SeqTrack::default();
        (1..=100).for_each(|s| t.record(s));
        // 100 adverts lost (an address change), then all arrive again.
        (201..=500).for_each(|s| t.record(s));
        assert_eq!(t.loss_percent(), 0.0, "was 20 % for good");
        // A restart starts afresh.
        t.record(3);
        assert_eq!(t.loss_percent(), 0.0);
    }
}
