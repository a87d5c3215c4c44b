//! The cloud mover: an operator's command that moves a group's addresses through a cloud
//! provider's API (AWS, GCP, Hetzner: docs/cloud.md), where gratuitous ARP moves nothing.
//!
//! # When it runs
//! On every claim of the group, once its VIPs are installed (action `claim`), and on every
//! release, once they are removed (action `release`): [`Mover::run`], called by the daemon
//! loop, which only enqueues. A release runs only after a claim of the same mastership was
//! queued (a claim whose VIP install failed queued nothing, so nothing is released).
//!
//! # Order
//! One run at a time per group, in the order the daemon asked (claim → release → claim runs
//! in that order, each after the previous one ended, retries included). One exception,
//! because it is safe: a `release` asked while its own `claim` is still waiting (not
//! started) cancels both. That claim never ran, so the provider still points where the
//! previous release left it, which is what the release would have made sure of. A claim
//! that already started is never cancelled: its release follows it.
//!
//! # Attempts
//! Each attempt runs in its own process group with [`ENV_ATTEMPT`] set (1-based); an attempt
//! still running after `timeout_ms` is killed with its whole process group (SIGTERM, then
//! SIGKILL, `notify::kill_group`). A failed attempt (exit status not 0, not
//! startable, timed out) is retried after `retry_delay_ms`, at most `retries` times. The
//! outcome goes to the log (INFO on success, WARN per failed attempt, ERROR when every
//! attempt failed), to [`Mover::view`] (`haagent status`), to the metrics
//! (`haagent_mover_runs_total{group,action,outcome}`, `haagent_mover_duration_seconds`)
//! and, as an [`Outcome`], to the daemon loop (which acts on it with `wait = true`).

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::config::{GroupConfig, MoverSettings};
use crate::metrics::Metrics;

/// `claim` or `release`.
pub const ENV_ACTION: &str = "HAAGENT_MOVER_ACTION";
/// The group (`[[group]] name`; `default` without groups).
pub const ENV_GROUP: &str = "HAAGENT_GROUP";
/// This node's name.
pub const ENV_NODE: &str = "HAAGENT_NODE";
/// The group's VIPs, space separated, `address/prefix`.
pub const ENV_VIPS: &str = "HAAGENT_VIPS";
/// The interfaces the group's VIPs use, space separated, in config order.
pub const ENV_INTERFACES: &str = "HAAGENT_INTERFACES";
/// The node that was master of the group before this claim, if known; else empty.
pub const ENV_OLD_HOLDER: &str = "HAAGENT_OLD_HOLDER";
/// The attempt, 1-based (1 = first try, 2 = first retry, …).
pub const ENV_ATTEMPT: &str = "HAAGENT_ATTEMPT";

/// Most runs waiting in one group's queue; when one more comes the oldest waiting one is
/// dropped with a WARN (the newest always runs).
pub const MAX_PENDING: usize = 16;

/// Most bytes of a failed attempt's stderr kept for the log and status.
const STDERR_KEPT: usize = 1024;

/// What the mover is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoverAction {
    /// Point the provider's address(es) at this node: after a claim installed the VIPs.
    Claim,
    /// This node let the addresses go: after a release removed the VIPs.
    Release,
}

impl MoverAction {
    /// `claim` or `release`: [`ENV_ACTION`], the metrics' `action` label, status.
    pub const fn label(self) -> &'static str {
        match self {
            MoverAction::Claim => "claim",
            MoverAction::Release => "release",
        }
    }
}

/// Where the group's latest mover run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoverState {
    /// Nothing ran yet.
    Idle,
    /// An attempt runs, or waits for its retry delay.
    Running,
    /// The latest run succeeded.
    Ok,
    /// Every attempt of the latest run failed.
    Failed,
}

/// A group's mover as `haagent status` shows it (`groups[].mover`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoverView {
    /// The action of the latest run (running or finished); `None` before the first.
    pub action: Option<MoverAction>,
    /// Its state.
    pub state: MoverState,
    /// Attempts made by the latest run so far (1..=retries+1).
    pub attempts: u32,
    /// Why the latest failed attempt failed (exit status and stderr, timeout, or the error
    /// starting it); cleared when a run succeeds.
    pub last_error: Option<String>,
    /// How long the latest finished run took, retries included, in ms.
    pub last_duration_ms: Option<u64>,
    /// Runs waiting behind the current one.
    pub queued: usize,
    /// With `wait = true`: the group's claim waits for this claim run to succeed before it
    /// counts (the daemon sets this; the group shows its previous state until then).
    #[serde(default)]
    pub claim_waiting: bool,
}

/// A finished run, for the daemon loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The group's index in the configuration.
    pub group: usize,
    /// The id [`Mover::run`] returned for it.
    pub id: u64,
    /// What it did.
    pub action: MoverAction,
    /// Whether an attempt succeeded. A run cancelled by its release (module docs) is not
    /// reported at all.
    pub ok: bool,
    /// The last attempt's error, when none succeeded.
    pub error: Option<String>,
    /// Attempts made.
    pub attempts: u32,
}

/// One group's mover: cheap to call from the daemon loop (it only enqueues). Clones share
/// the queue and the view.
#[derive(Debug, Clone)]
pub struct Mover {
    settings: MoverSettings,
    group: String,
    index: usize,
    node: String,
    metrics: Option<Arc<Metrics>>,
    done: Option<UnboundedSender<Outcome>>,
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug)]
struct Shared {
    /// `HAAGENT_VIPS` and `HAAGENT_INTERFACES` (a reload may change the VIPs).
    vips: String,
    interfaces: String,
    pending: VecDeque<Job>,
    running: bool,
    worker: Option<JoinHandle<()>>,
    view: MoverView,
    next_id: u64,
}

#[derive(Debug, Clone)]
struct Job {
    id: u64,
    action: MoverAction,
    old_holder: String,
}

impl Mover {
    /// The mover of group `group` (index `index` in the configuration) on node `node`, if
    /// the group has one (`[group.mover]`, or the node's `[mover]`). Outcomes go to `done`
    /// and counts to `metrics` when given.
    pub fn for_group(
        group: &GroupConfig,
        index: usize,
        node: &str,
        metrics: Option<Arc<Metrics>>,
        done: Option<UnboundedSender<Outcome>>,
    ) -> Option<Self> {
        let settings = group.mover.clone()?;
        let (vips, interfaces) = vips_words(&group.vips);
        Some(Self {
            settings,
            group: group.name.clone(),
            index,
            node: node.to_owned(),
            metrics,
            done,
            shared: Arc::new(Mutex::new(Shared {
                vips,
                interfaces,
                pending: VecDeque::new(),
                running: false,
                worker: None,
                view: MoverView {
                    action: None,
                    state: MoverState::Idle,
                    attempts: 0,
                    last_error: None,
                    last_duration_ms: None,
                    queued: 0,
                    claim_waiting: false,
                },
                next_id: 1,
            })),
        })
    }

    /// The group's VIPs changed (a reload): runs that start from now on get them.
    pub fn set_vips(&self, vips: &[crate::net::VipSpec]) {
        if let Ok(mut s) = self.shared.lock() {
            (s.vips, s.interfaces) = vips_words(vips);
        }
    }

    /// `wait = true`: a claim counts only once its mover run succeeded.
    pub fn waits(&self) -> bool {
        self.settings.wait
    }

    /// Queues a run of `action` (`old_holder`: the previous master, for a claim) and returns
    /// at once with its id. Needs a tokio runtime.
    pub fn run(&self, action: MoverAction, old_holder: Option<&str>) -> u64 {
        let Ok(mut s) = self.shared.lock() else {
            tracing::error!(group = %self.group, "mover queue unusable; mover not run");
            return 0;
        };
        let id = s.next_id;
        s.next_id += 1;
        if action == MoverAction::Release
            && s.pending
                .back()
                .is_some_and(|j| j.action == MoverAction::Claim)
        {
            // Its claim never started: nothing to release (module docs).
            if let Some(claim) = s.pending.pop_back() {
                tracing::info!(group = %self.group, claim = claim.id,
                    "mover: the claim was released before it started; neither runs");
            }
            s.view.queued = s.pending.len();
            return id;
        }
        if s.pending.len() >= MAX_PENDING {
            if let Some(dropped) = s.pending.pop_front() {
                tracing::warn!(group = %self.group, action = dropped.action.label(),
                    pending = MAX_PENDING, "mover queue full: dropping the oldest waiting run");
            }
        }
        s.pending.push_back(Job {
            id,
            action,
            old_holder: old_holder.unwrap_or_default().to_owned(),
        });
        s.view.queued = s.pending.len();
        if !s.running {
            s.running = true;
            let me = self.clone();
            s.worker = Some(tokio::spawn(async move { me.work().await }));
        }
        id
    }

    /// What `haagent status` shows.
    pub fn view(&self) -> Option<MoverView> {
        self.shared.lock().ok().map(|s| s.view.clone())
    }

    /// Waits until every queued run has finished (each ends by its attempts' timeouts).
    pub async fn drained(&self) {
        loop {
            let worker = match self.shared.lock() {
                Ok(mut s) => s.worker.take(),
                Err(_) => return,
            };
            match worker {
                Some(task) => {
                    let _ = task.await;
                }
                None => return,
            }
        }
    }

    async fn work(self) {
        loop {
            let job = {
                let Ok(mut s) = self.shared.lock() else {
                    return;
                };
                match s.pending.pop_front() {
                    Some(job) => {
                        s.view.queued = s.pending.len();
                        s.view.action = Some(job.action);
                        s.view.state = MoverState::Running;
                        s.view.attempts = 0;
                        job
                    }
                    None => {
                        s.running = false;
                        return;
                    }
                }
            };
            self.run_job(job).await;
        }
    }

    async fn run_job(&self, job: Job) {
        let started = Instant::now();
        let max = self.settings.retries.saturating_add(1);
        let mut error = None;
        let mut attempts = 0;
        for attempt in 1..=max {
            attempts = attempt;
            if let Ok(mut s) = self.shared.lock() {
                s.view.attempts = attempt;
            }
            match self.attempt(&job, attempt).await {
                Ok(()) => {
                    error = None;
                    break;
                }
                Err(e) => {
                    tracing::warn!(group = %self.group, action = job.action.label(), attempt,
                        of = max, error = %e, "mover attempt failed");
                    if let Ok(mut s) = self.shared.lock() {
                        s.view.last_error = Some(e.clone());
                    }
                    error = Some(e);
                    if attempt < max {
                        tokio::time::sleep(self.settings.retry_delay).await;
                    }
                }
            }
        }
        let took = started.elapsed();
        let ok = error.is_none();
        if ok {
            tracing::info!(group = %self.group, action = job.action.label(), attempts,
                duration_ms = ms(took), "mover succeeded");
        } else {
            tracing::error!(group = %self.group, action = job.action.label(), attempts,
                duration_ms = ms(took), error = %error.as_deref().unwrap_or_default(),
                "mover failed: every attempt failed");
        }
        if let Ok(mut s) = self.shared.lock() {
            s.view.state = if ok {
                MoverState::Ok
            } else {
                MoverState::Failed
            };
            s.view.last_duration_ms = Some(ms(took));
            if ok {
                s.view.last_error = None;
            }
        }
        if let Some(m) = &self.metrics {
            m.mover_run(self.index, job.action, ok, took);
        }
        if let Some(done) = &self.done {
            let _ = done.send(Outcome {
                group: self.index,
                id: job.id,
                action: job.action,
                ok,
                error,
                attempts,
            });
        }
    }

    /// One attempt: `Err` with the reason when it did not exit 0 within the timeout.
    async fn attempt(&self, job: &Job, attempt: u32) -> Result<(), String> {
        let Some((program, args)) = self.settings.command.split_first() else {
            return Err("no command".to_string());
        };
        let (vips, interfaces) = match self.shared.lock() {
            Ok(s) => (s.vips.clone(), s.interfaces.clone()),
            Err(_) => return Err("mover state unusable".to_string()),
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env(ENV_ACTION, job.action.label())
            .env(ENV_GROUP, &self.group)
            .env(ENV_NODE, &self.node)
            .env(ENV_VIPS, vips)
            .env(ENV_INTERFACES, interfaces)
            .env(ENV_OLD_HOLDER, &job.old_holder)
            .env(ENV_ATTEMPT, attempt.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        use crate::notify::{wait_bounded, Bounded};
        match wait_bounded(&mut child, self.settings.timeout, STDERR_KEPT).await {
            Bounded::Exited(st, _) if st.success() => Ok(()),
            Bounded::Exited(st, text) if text.is_empty() => Err(format!("{program} {st}")),
            Bounded::Exited(st, text) => Err(format!("{program} {st}: {text}")),
            Bounded::WaitFailed(e) => Err(format!("cannot wait for {program}: {e}")),
            Bounded::TimedOut(_) => Err(format!(
                "{program} timed out after {} ms; it and its process group were killed",
                ms(self.settings.timeout)
            )),
        }
    }
}

/// `HAAGENT_VIPS` and `HAAGENT_INTERFACES` of `vips`: `address/prefix` space separated, and
/// their interfaces in the order they first appear.
fn vips_words(vips: &[crate::net::VipSpec]) -> (String, String) {
    let mut interfaces: Vec<&str> = Vec::new();
    for v in vips {
        if !interfaces.contains(&v.interface.as_str()) {
            interfaces.push(&v.interface);
        }
    }
    let addrs = vips
        .iter()
        .map(|v| v.cidr.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    (addrs, interfaces.join(" "))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn group(mover: MoverSettings) -> GroupConfig {
        GroupConfig {
            name: "web-a".into(),
            id: 7,
            mode: crate::config::GroupMode::L2,
            bird_socket: None,
            vips: ["192.0.2.100/24", "198.51.100.100/24"]
                .iter()
                .zip(["eth0", "eth1"])
                .map(|(c, i)| crate::net::VipSpec {
                    cidr: c.parse().unwrap(),
                    interface: i.into(),
                    label: None,
                    scope: crate::net::VipScope::Global,
                })
                .collect(),
            priority: 100,
            preempt: true,
            preempt_delay: Duration::ZERO,
            track: Vec::new(),
            notify: crate::config::NotifySettings {
                command: None,
                master: None,
                backup: None,
                fault: None,
                stop: None,
                claim_blocked: None,
                conflict_won: None,
                timeout: Duration::from_secs(1),
            },
            routes: Vec::new(),
            mover: Some(mover),
        }
    }

    fn settings(script: String, timeout_ms: u64, retries: u32) -> MoverSettings {
        MoverSettings {
            command: vec!["/bin/sh".into(), "-c".into(), script],
            timeout: Duration::from_millis(timeout_ms),
            retries,
            retry_delay: Duration::from_millis(20),
            wait: false,
        }
    }

    fn mover(s: MoverSettings) -> (Mover, mpsc::UnboundedReceiver<Outcome>, Arc<Metrics>) {
        let metrics = Metrics::with_groups("n2", &["web-a".to_string()]);
        let (tx, rx) = mpsc::unbounded_channel();
        let m = Mover::for_group(&group(s), 0, "n2", Some(Arc::clone(&metrics)), Some(tx)).unwrap();
        (m, rx, metrics)
    }

    /// Waits (up to 5 s) until `m`'s latest run has started.
    async fn running(m: &Mover) {
        let until = Instant::now() + Duration::from_secs(5);
        while m.view().unwrap().state != MoverState::Running {
            assert!(Instant::now() < until, "the mover never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// One line per run, with every variable, in the order asked.
    #[tokio::test]
    async fn a_recording_mover_runs_once_per_claim_and_release_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = format!(
            "echo \"$HAAGENT_MOVER_ACTION|$HAAGENT_GROUP|$HAAGENT_NODE|$HAAGENT_VIPS|\
             $HAAGENT_INTERFACES|$HAAGENT_OLD_HOLDER|$HAAGENT_ATTEMPT\" >> {}; sleep 0.1",
            log.display()
        );
        let (m, mut rx, metrics) = mover(settings(script, 5000, 2));
        let started = Instant::now();
        let first = m.run(MoverAction::Claim, Some("n1"));
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "only enqueues"
        );
        // Once the claim runs, its release is not a cancellation but the next run.
        running(&m).await;
        let ids = [
            first,
            m.run(MoverAction::Release, None),
            m.run(MoverAction::Claim, None),
        ];
        m.drained().await;
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text,
            "claim|web-a|n2|192.0.2.100/24 198.51.100.100/24|eth0 eth1|n1|1\n\
             release|web-a|n2|192.0.2.100/24 198.51.100.100/24|eth0 eth1||1\n\
             claim|web-a|n2|192.0.2.100/24 198.51.100.100/24|eth0 eth1||1\n"
        );
        for (id, action) in
            ids.iter()
                .zip([MoverAction::Claim, MoverAction::Release, MoverAction::Claim])
        {
            let o = rx.recv().await.unwrap();
            assert_eq!((o.id, o.action, o.ok, o.attempts), (*id, action, true, 1));
        }
        let view = m.view().unwrap();
        assert_eq!(view.state, MoverState::Ok);
        assert_eq!(view.action, Some(MoverAction::Claim));
        assert!(view.last_duration_ms.is_some_and(|d| d >= 100));
        let text = metrics.encode();
        assert!(
            text.contains(
                "haagent_mover_runs_total{group=\"web-a\",action=\"claim\",outcome=\"ok\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "haagent_mover_runs_total{group=\"web-a\",action=\"release\",outcome=\"ok\"} 1"
        ));
    }

    /// A release asked while its claim still waits cancels both (module docs).
    #[tokio::test]
    async fn a_release_cancels_its_claim_that_never_started() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = format!("echo $HAAGENT_MOVER_ACTION >> {}; sleep 0.2", log.display());
        let (m, _rx, _) = mover(settings(script, 5000, 0));
        m.run(MoverAction::Release, None);
        m.run(MoverAction::Claim, None);
        m.run(MoverAction::Release, None);
        m.drained().await;
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "release\n");
    }

    /// Exit 1 every time: 1 + `retries` attempts, then failed in the view, the outcome and
    /// the metrics, with the stderr.
    #[tokio::test]
    async fn a_failing_mover_is_retried_then_reported_failed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = format!(
            "echo $HAAGENT_ATTEMPT >> {}; echo 'quota exceeded' >&2; exit 1",
            log.display()
        );
        let (m, mut rx, metrics) = mover(settings(script, 5000, 2));
        m.run(MoverAction::Claim, None);
        let o = rx.recv().await.unwrap();
        assert_eq!((o.ok, o.attempts), (false, 3));
        assert_eq!(
            o.error.as_deref(),
            Some("/bin/sh exit status: 1: quota exceeded")
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "1\n2\n3\n");
        let view = m.view().unwrap();
        assert_eq!(
            (view.state, view.attempts, view.last_error.as_deref()),
            (
                MoverState::Failed,
                3,
                Some("/bin/sh exit status: 1: quota exceeded")
            )
        );
        assert!(metrics.encode().contains(
            "haagent_mover_runs_total{group=\"web-a\",action=\"claim\",outcome=\"failed\"} 1"
        ));
    }

    /// A mover past its timeout is killed with its children; a later attempt that works
    /// makes the run a success.
    #[tokio::test]
    async fn a_timed_out_mover_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!(
            "if [ $HAAGENT_ATTEMPT = 1 ]; then sleep 30 & echo $! > {}; sleep 30; fi",
            pidfile.display()
        );
        let (m, mut rx, _) = mover(settings(script, 300, 1));
        let started = Instant::now();
        m.run(MoverAction::Claim, None);
        let o = rx.recv().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "killed at its timeout"
        );
        assert_eq!((o.ok, o.attempts), (true, 2));
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let pid = pid.trim();
        assert!(!pid.is_empty());
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        assert!(
            stat.is_empty() || state == Some('Z'),
            "grandchild {pid} still runs: {stat}"
        );
    }

    /// A reload's new VIPs reach the runs that start after it.
    #[tokio::test]
    async fn runs_after_a_reload_get_the_new_vips() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = format!(
            "echo \"$HAAGENT_VIPS|$HAAGENT_INTERFACES\" >> {}",
            log.display()
        );
        let (m, _rx, _) = mover(settings(script, 5000, 0));
        m.set_vips(&[crate::net::VipSpec {
            cidr: "203.0.113.9/32".parse().unwrap(),
            interface: "eth2".into(),
            label: None,
            scope: crate::net::VipScope::Global,
        }]);
        m.run(MoverAction::Claim, None);
        m.drained().await;
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "203.0.113.9/32|eth2\n"
        );
    }

    /// docs/cloud.md lists every variable a mover receives.
    #[test]
    fn every_mover_variable_is_documented() {
        let doc = include_str!("../docs/cloud.md");
        let names = [
            ENV_ACTION,
            ENV_GROUP,
            ENV_NODE,
            ENV_VIPS,
            ENV_INTERFACES,
            ENV_OLD_HOLDER,
            ENV_ATTEMPT,
        ];
        for name in names {
            assert!(doc.contains(&format!("| `{name}` |")), "{name} missing");
        }
        let defined = include_str!("mover.rs")
            .lines()
            .filter(|l| l.starts_with("pub const ENV_"))
            .count();
        assert_eq!(
            defined,
            names.len(),
            "a new ENV_ constant: list and document it"
        );
    }
}
