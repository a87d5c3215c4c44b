//! The health monitor: the VIP must follow a working service (Nginx first), not just a
//! running host.
//!
//! Every configured check runs in its own tokio task (once at start, then every
//! `interval`), each run bounded by the check's `timeout` — a hung check counts as failed
//! at its timeout and never stalls the election loop. Results go to one aggregator task
//! that applies the fall/rise hysteresis (module `state`), keeps the per-check status for
//! `haagent status`, and sends a [`Verdict`] to the daemon whenever the verdict's effect
//! (fault, priority adjustment) changes. With [`HealthMonitor::spawn_groups`] it makes one
//! verdict per VIP group instead, each from the checks that group tracks
//! (`[[group]] track`) with the group's weights, and sends them together as
//! [`GroupVerdicts`].
//!
//! Rules, in short:
//! - A check's first result decides at once (a fresh agent does not wait for `rise`);
//!   after that `fall` failures in a row make it failing and `rise` successes in a row
//!   healthy again.
//! - Weights mean what keepalived's `weight` means (`track_script`, `track_interface`): a
//!   check with a positive [`Weight::Adjust`] adds its number to the priority while it
//!   succeeds, one with a negative number adds it (lowers the priority) while it fails, and
//!   a failing check with [`Weight::Fault`] puts the node in fault. Before its first
//!   result a check counts for nothing, whatever its weight (so a positive weight is not
//!   added until the check has passed once).
//! - `file` checks (keepalived's `track_file`) skip the hysteresis: the latest value read,
//!   times the weight, is added to the priority (with `Weight::Fault`, any nonzero value is
//!   a fault). Like keepalived, a missing, unreadable or non-integer file counts as the
//!   value 0; the check then shows as unhealthy and its `last_result` says so.
//! - `process` checks are event-driven (module `follow`): the found process is followed
//!   with a pidfd, and its exit makes the check failing at once, whatever `fall` (a dead
//!   main process is certain, not a flaky answer); the PID is still looked up again every
//!   interval (a pidfile that names a new PID is followed), and recovery takes `rise` good
//!   runs as usual. Without pidfds (old kernel, seccomp) the check polls as the others do.

mod follow;
mod http;
mod pidfd;
mod process;
pub(crate) mod runner;
mod spec;
mod state;

pub use spec::{CheckKind, CheckSpec, Weight};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::TrackCheck;
use runner::CheckError;
use state::{Health, Hysteresis};

/// Capacity of the verdict channel. When the daemon falls behind, pending verdicts are
/// coalesced into the newest one rather than blocking the monitor.
const VERDICT_CHANNEL: usize = 16;

/// Fuzzing hook, not part of the API: the HTTP check's response-head parser
/// (`http::parse_head`, fed with a remote server's bytes), for `tests/fuzz` and
/// `tests/fuzz_stable.rs`. Ok: `(status, reason, content_length, chunked)`.
#[doc(hidden)]
pub fn fuzz_parse_head(head: &[u8]) -> Result<(u16, String, Option<usize>, bool), String> {
    http::parse_head(head).map(|h| (h.status, h.reason, h.content_length, h.chunked))
}

/// Fuzzing hook, not part of the API: where the HTTP check finds the end of a response head
/// (`http::head_end`).
#[doc(hidden)]
pub fn fuzz_head_end(buf: &[u8]) -> Option<usize> {
    http::head_end(buf)
}

/// What the checks together say about this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// `Some(reason)` while a check with [`Weight::Fault`] is failing; the reason names
    /// the check and why (`check nginx failed 2×: GET http://127.0.0.1/health: connection
    /// refused`); several are joined with `; `. It is fixed when the check turns failing,
    /// so it does not change with every further failed run.
    pub fault: Option<String>,
    /// Sum of the positive [`Weight::Adjust`] weights of passing checks, the negative ones
    /// of failing checks, and of `file` check values × weight (keepalived's meaning).
    pub priority_delta: i32,
    /// One line per check that currently changes anything (`check nginx passing (weight
    /// +20)`, `check nginx failing: connection refused (weight -20)`).
    pub reasons: Vec<String>,
    /// Every check has reported at least one result. Before that, checks without a result
    /// count for nothing.
    pub settled: bool,
}

/// The verdict of every group, in group order: `0[i]` is the verdict of the `i`-th group
/// given to [`HealthMonitor::spawn_groups`], made from the checks that group tracks, each
/// with the weight the group gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupVerdicts(pub Vec<Verdict>);

/// The state of one check, for `haagent status` and metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckStatus {
    /// The check's name.
    pub name: String,
    /// `http`, `tcp`, `exec`, `process`, `interface` or `file`.
    pub kind: &'static str,
    /// Currently healthy (after hysteresis; false before the first result). For `file`
    /// checks: the file was read as an integer.
    pub healthy: bool,
    /// The last run's result: `200 OK in 1.2 ms`, or the error; empty before the first run.
    pub last_result: String,
    /// Duration of the last run, in milliseconds (None before the first run).
    pub latency_ms: Option<f64>,
    /// Successes in a row.
    pub consecutive_ok: u32,
    /// Failures in a row.
    pub consecutive_fail: u32,
    /// Runs so far.
    pub runs: u64,
    /// Failed runs so far.
    pub failures: u64,
    /// For `file` checks: the value last read (None when unreadable; it then counts as 0).
    pub file_value: Option<i64>,
    /// For `process` checks: the PID followed with a pidfd now (None while nothing is
    /// found, and always when pidfds are unavailable and the check polls).
    pub following: Option<u32>,
    /// For `process` checks: exits of a followed process seen on its pidfd, each of which
    /// made the check failing at once (failures found by a run are in `failures` only).
    pub exit_events: u64,
}

/// Runs the configured checks; dropping it stops them all (a running `exec` check's child
/// is killed).
#[derive(Debug)]
pub struct HealthMonitor {
    shared: Arc<Mutex<Shared>>,
    tasks: Vec<JoinHandle<()>>,
}

impl HealthMonitor {
    /// Starts one tokio task per check; every check runs once immediately, then every
    /// interval. Must be called from within a tokio runtime.
    ///
    /// The receiver gets a [`Verdict`] over every check with its own weight whenever its
    /// `fault` or `priority_delta` changes and once when it first becomes `settled` (at
    /// once when `specs` is empty). Same as [`HealthMonitor::spawn_groups`] with one group
    /// that tracks every check with its own weight.
    pub fn spawn(specs: Vec<CheckSpec>) -> (HealthMonitor, mpsc::Receiver<Verdict>) {
        let everything = all_tracks(&specs);
        start(specs, vec![everything], |verdicts| {
            verdicts.first().cloned().unwrap_or_default()
        })
    }

    /// Like [`HealthMonitor::spawn`], with one verdict per group: group `i` follows the
    /// checks named in `groups[i]` (`[[group]] track`), each with the weight its
    /// [`TrackCheck`] gives it; fault, adjust and `file` semantics are those of the module
    /// documentation. Every check in `specs` runs and shows in
    /// [`HealthMonitor::statuses`], tracked by a group or not. A `TrackCheck` naming no
    /// check in `specs` is ignored with a warning (the config rejects such a name).
    ///
    /// Every verdict is `settled` once every check in `specs` (not only the tracked ones)
    /// has reported. The receiver gets the [`GroupVerdicts`] whenever any group's `fault`
    /// or `priority_delta` changes, and once when they become settled (at once when
    /// `specs` is empty). When the daemon falls behind, pending updates are coalesced into
    /// the newest. Must be called from within a tokio runtime.
    pub fn spawn_groups(
        specs: Vec<CheckSpec>,
        groups: Vec<Vec<TrackCheck>>,
    ) -> (HealthMonitor, mpsc::Receiver<GroupVerdicts>) {
        let groups = groups
            .iter()
            .map(|tracked| resolve_tracks(&specs, tracked))
            .collect();
        start(specs, groups, |verdicts| GroupVerdicts(verdicts.to_vec()))
    }

    /// The current verdict over every check with its own weight (what
    /// [`HealthMonitor::spawn`] sends; with [`HealthMonitor::spawn_groups`], the node-wide
    /// view regardless of the groups).
    pub fn verdict(&self) -> Verdict {
        let shared = lock(&self.shared);
        let everything = all_tracks_of(&shared.entries);
        shared.compute(&everything)
    }

    /// The current verdict of every group, in group order (one element with
    /// [`HealthMonitor::spawn`]).
    pub fn verdicts(&self) -> Vec<Verdict> {
        lock(&self.shared).verdicts.clone()
    }

    /// Per-check status for `haagent status` and metrics, in configuration order.
    pub fn statuses(&self) -> Vec<CheckStatus> {
        lock(&self.shared)
            .entries
            .iter()
            .map(Entry::status)
            .collect()
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the check tasks and the aggregator; `project` turns the groups' verdicts into
/// what the receiver gets.
fn start<T: Send + 'static>(
    specs: Vec<CheckSpec>,
    groups: Vec<Vec<Track>>,
    project: fn(&[Verdict]) -> T,
) -> (HealthMonitor, mpsc::Receiver<T>) {
    let (out_tx, out_rx) = mpsc::channel(VERDICT_CHANNEL);
    let (res_tx, res_rx) = mpsc::unbounded_channel();
    let shared = Shared::new(specs.clone(), groups);
    if shared.settled() {
        // No checks: settled from the start. The channel is empty, so this cannot fail.
        let _ = out_tx.try_send(project(&shared.verdicts));
    }
    let announced = Announced::of_all(&shared.verdicts);
    let shared = Arc::new(Mutex::new(shared));
    let mut tasks: Vec<JoinHandle<()>> = specs
        .into_iter()
        .enumerate()
        .map(|(index, spec)| tokio::spawn(check_task(index, spec, res_tx.clone())))
        .collect();
    drop(res_tx);
    tasks.push(tokio::spawn(aggregate(
        shared.clone(),
        res_rx,
        out_tx,
        announced,
        project,
    )));
    (HealthMonitor { shared, tasks }, out_rx)
}

/// One check a group follows: its index in the specs and its weight in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Track {
    index: usize,
    weight: Weight,
}

/// Every check with its own weight.
fn all_tracks(specs: &[CheckSpec]) -> Vec<Track> {
    specs
        .iter()
        .enumerate()
        .map(|(index, s)| Track {
            index,
            weight: s.weight,
        })
        .collect()
}

/// Every entry with its check's own weight.
fn all_tracks_of(entries: &[Entry]) -> Vec<Track> {
    entries
        .iter()
        .enumerate()
        .map(|(index, e)| Track {
            index,
            weight: e.spec.weight,
        })
        .collect()
}

/// A group's `track` list as indices into `specs`; unknown names are skipped.
fn resolve_tracks(specs: &[CheckSpec], tracked: &[TrackCheck]) -> Vec<Track> {
    tracked
        .iter()
        .filter_map(|t| match specs.iter().position(|s| s.name == t.check) {
            Some(index) => Some(Track {
                index,
                weight: t.weight,
            }),
            None => {
                tracing::warn!(check = %t.check, "tracked check {} is not configured; ignored", t.check);
                None
            }
        })
        .collect()
}

/// Locks the shared state; a poisoned lock (a panic elsewhere) still yields the data.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// One finished run, from a check task to the aggregator.
#[derive(Debug)]
struct RunResult {
    index: usize,
    outcome: Result<runner::Passed, CheckError>,
    latency: Duration,
    /// A run's result, or the followed process's exit.
    cause: Cause,
    /// For process checks: the PID followed with a pidfd after this result.
    following: Option<u32>,
}

/// What produced a [`RunResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// A run (at start, then every interval).
    Run,
    /// The pidfd of the followed process said it exited: a certain failure, not subject
    /// to `fall`.
    Exit,
}

/// Runs one check forever: immediately, then every interval, each run under the timeout.
/// Process checks follow their process between runs (`follow::task`).
async fn check_task(index: usize, spec: CheckSpec, results: mpsc::UnboundedSender<RunResult>) {
    if matches!(spec.kind, CheckKind::Process { .. }) {
        return follow::task(index, spec, results, pidfd::open).await;
    }
    let mut ticker = tokio::time::interval(spec.interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let start = Instant::now();
        let outcome = match tokio::time::timeout(spec.timeout, runner::run(&spec.kind)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(CheckError::Timeout {
                target: runner::target(&spec.kind),
                ms: spec.timeout.as_millis(),
            }),
        };
        let result = RunResult {
            index,
            outcome,
            latency: start.elapsed(),
            cause: Cause::Run,
            following: None,
        };
        if results.send(result).is_err() {
            return;
        }
    }
}

/// The part of a verdict whose change is announced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Announced {
    fault: Option<String>,
    priority_delta: i32,
    settled: bool,
}

impl Announced {
    fn of(v: &Verdict) -> Self {
        Announced {
            fault: v.fault.clone(),
            priority_delta: v.priority_delta,
            settled: v.settled,
        }
    }

    fn of_all(verdicts: &[Verdict]) -> Vec<Self> {
        verdicts.iter().map(Announced::of).collect()
    }
}

/// Applies results to the shared state and sends verdicts. While the daemon is not
/// reading, results keep being applied and only the newest verdict waits to be sent.
async fn aggregate<T>(
    shared: Arc<Mutex<Shared>>,
    mut results: mpsc::UnboundedReceiver<RunResult>,
    out: mpsc::Sender<T>,
    mut announced: Vec<Announced>,
    project: fn(&[Verdict]) -> T,
) {
    let mut pending: Option<T> = None;
    let mut out_open = true;
    loop {
        tokio::select! {
            biased;
            permit = out.reserve(), if pending.is_some() && out_open => match permit {
                Ok(permit) => {
                    if let Some(v) = pending.take() {
                        permit.send(v);
                    }
                }
                Err(_) => {
                    // The daemon dropped the receiver; keep tracking for verdict()/statuses().
                    out_open = false;
                    pending = None;
                }
            },
            result = results.recv() => {
                let Some(result) = result else { return };
                let (now, update) = {
                    let mut shared = lock(&shared);
                    shared.apply(result);
                    (Announced::of_all(&shared.verdicts), project(&shared.verdicts))
                };
                if now != announced && out_open {
                    announced = now;
                    pending = Some(update);
                }
            }
        }
    }
}

/// The monitor's state: one entry per check, what each group tracks and the verdicts
/// they make.
#[derive(Debug)]
struct Shared {
    entries: Vec<Entry>,
    groups: Vec<Vec<Track>>,
    /// One per group, in group order.
    verdicts: Vec<Verdict>,
}

/// Everything known about one check.
#[derive(Debug)]
struct Entry {
    spec: CheckSpec,
    hysteresis: Hysteresis,
    last_result: String,
    /// The last failed run's message (for the reason lines).
    last_failure: String,
    /// Set when the check turns failing: the fault reason it causes.
    fault_reason: String,
    latency_ms: Option<f64>,
    runs: u64,
    failures: u64,
    file_value: Option<i64>,
    following: Option<u32>,
    exit_events: u64,
}

impl Entry {
    fn new(spec: CheckSpec) -> Self {
        Entry {
            hysteresis: Hysteresis::new(spec.fall, spec.rise),
            spec,
            last_result: String::new(),
            last_failure: String::new(),
            fault_reason: String::new(),
            latency_ms: None,
            runs: 0,
            failures: 0,
            file_value: None,
            following: None,
            exit_events: 0,
        }
    }

    fn is_file(&self) -> bool {
        matches!(self.spec.kind, CheckKind::File { .. })
    }

    /// Records one run (or exit) and logs a change of health (or of a file's value).
    fn record(&mut self, result: RunResult) {
        let RunResult {
            outcome,
            latency,
            cause,
            following,
            ..
        } = result;
        let name = &self.spec.name;
        self.following = following;
        let latency_ms = latency.as_secs_f64() * 1000.0;
        self.runs = self.runs.saturating_add(1);
        self.latency_ms = Some(latency_ms);
        let ok = outcome.is_ok();
        let old_value = self.file_value;
        match outcome {
            Ok(passed) => {
                self.last_result = format!("{} in {latency_ms:.1} ms", passed.detail);
                self.file_value = passed.file_value;
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                self.last_result = e.to_string();
                self.last_failure = self.last_result.clone();
                self.file_value = None;
                tracing::debug!(check = %name, result = %self.last_result, "check run failed");
            }
        }
        let changed = if cause == Cause::Exit {
            self.exit_events = self.exit_events.saturating_add(1);
            self.hysteresis.fail_now()
        } else {
            self.hysteresis.record(ok)
        };
        if changed == Some(Health::Failing) {
            self.fault_reason = match cause {
                Cause::Exit => format!("check {name} failed: {}", self.last_failure),
                Cause::Run => format!(
                    "check {name} failed {}×: {}",
                    self.hysteresis.consecutive_fail(),
                    self.last_failure
                ),
            };
        }
        if self.is_file() {
            if changed.is_some() || old_value != self.file_value || self.runs == 1 {
                let value = self.file_value.unwrap_or(0);
                if ok {
                    tracing::info!(check = %name, value, "track file value {value}");
                } else {
                    tracing::warn!(check = %name, reason = %self.last_result, "track file unreadable");
                }
            }
            return;
        }
        match changed {
            Some(Health::Healthy) => {
                tracing::info!(check = %name, result = %self.last_result, "check {name} healthy")
            }
            Some(Health::Failing) => {
                let cause = match cause {
                    Cause::Exit => "exit",
                    Cause::Run => "run",
                };
                tracing::warn!(check = %name, cause, reason = %self.last_failure, "check {name} failing")
            }
            _ => {}
        }
    }

    fn status(&self) -> CheckStatus {
        CheckStatus {
            name: self.spec.name.clone(),
            kind: runner::kind_name(&self.spec.kind),
            healthy: if self.is_file() {
                self.file_value.is_some()
            } else {
                self.hysteresis.health() == Health::Healthy
            },
            last_result: self.last_result.clone(),
            latency_ms: self.latency_ms,
            consecutive_ok: self.hysteresis.consecutive_ok(),
            consecutive_fail: self.hysteresis.consecutive_fail(),
            runs: self.runs,
            failures: self.failures,
            file_value: self.file_value,
            following: self.following,
            exit_events: self.exit_events,
        }
    }
}

impl Shared {
    fn new(specs: Vec<CheckSpec>, groups: Vec<Vec<Track>>) -> Self {
        let mut s = Shared {
            entries: specs.into_iter().map(Entry::new).collect(),
            groups,
            verdicts: Vec::new(),
        };
        s.recompute();
        s
    }

    fn apply(&mut self, result: RunResult) {
        if let Some(entry) = self.entries.get_mut(result.index) {
            entry.record(result);
        }
        self.recompute();
    }

    fn recompute(&mut self) {
        self.verdicts = self.groups.iter().map(|g| self.compute(g)).collect();
    }

    /// Every check has reported at least once.
    fn settled(&self) -> bool {
        self.entries.iter().all(|e| e.runs > 0)
    }

    /// The verdict the `tracked` entries make now, each with its weight there.
    fn compute(&self, tracked: &[Track]) -> Verdict {
        let mut faults = Vec::new();
        let mut delta: i64 = 0;
        let mut reasons = Vec::new();
        for track in tracked {
            let Some(e) = self.entries.get(track.index) else {
                continue;
            };
            let weight = track.weight;
            let name = &e.spec.name;
            if e.runs == 0 {
                continue;
            }
            if let CheckKind::File { path } = &e.spec.kind {
                let value = e.file_value.unwrap_or(0);
                if value == 0 {
                    continue;
                }
                let path = path.display();
                match weight {
                    Weight::Fault => {
                        let r = format!(
                            "check {name}: file {path} holds {value} (nonzero means fault)"
                        );
                        faults.push(r.clone());
                        reasons.push(r);
                    }
                    Weight::Adjust(w) => {
                        let d = value.saturating_mul(i64::from(w));
                        if d != 0 {
                            delta = delta.saturating_add(d);
                            reasons.push(format!(
                                "check {name}: file {path} holds {value} (weight {w} → {d:+})"
                            ));
                        }
                    }
                }
                continue;
            }
            // keepalived's meaning: a positive weight counts while the check succeeds, a
            // negative one while it fails, a fault weight is a fault while failing.
            match (weight, e.hysteresis.health()) {
                (Weight::Fault, Health::Failing) => {
                    faults.push(e.fault_reason.clone());
                    reasons.push(format!("check {name} failing: {} (fault)", e.last_failure));
                }
                (Weight::Adjust(w), Health::Healthy) if w > 0 => {
                    delta = delta.saturating_add(i64::from(w));
                    reasons.push(format!("check {name} passing (weight {w:+})"));
                }
                (Weight::Adjust(w), Health::Failing) if w < 0 => {
                    delta = delta.saturating_add(i64::from(w));
                    reasons.push(format!(
                        "check {name} failing: {} (weight {w:+})",
                        e.last_failure
                    ));
                }
                _ => {}
            }
        }
        Verdict {
            fault: (!faults.is_empty()).then(|| faults.join("; ")),
            priority_delta: delta.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            reasons,
            settled: self.settled(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn spec(name: &str, kind: CheckKind, weight: Weight, fall: u32, rise: u32) -> CheckSpec {
        CheckSpec {
            name: name.into(),
            kind,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            fall,
            rise,
            weight,
        }
    }

    fn tcp() -> CheckKind {
        CheckKind::Tcp {
            addr: "127.0.0.1:1".parse().unwrap(),
        }
    }

    fn file() -> CheckKind {
        CheckKind::File {
            path: PathBuf::from("/run/prio"),
        }
    }

    /// One group tracking every check with its own weight (what `spawn` builds).
    fn shared(specs: Vec<CheckSpec>) -> Shared {
        let everything = all_tracks(&specs);
        Shared::new(specs, vec![everything])
    }

    fn pass(index: usize) -> RunResult {
        RunResult {
            index,
            outcome: Ok(runner::Passed {
                detail: "ok".into(),
                file_value: None,
            }),
            latency: Duration::from_millis(1),
            cause: Cause::Run,
            following: None,
        }
    }

    fn fail(index: usize, why: &str) -> RunResult {
        RunResult {
            index,
            outcome: Err(CheckError::Process(why.into())),
            latency: Duration::from_millis(1),
            cause: Cause::Run,
            following: None,
        }
    }

    fn value(index: usize, v: i64) -> RunResult {
        RunResult {
            index,
            outcome: Ok(runner::Passed {
                detail: format!("value {v}"),
                file_value: Some(v),
            }),
            latency: Duration::from_millis(1),
            cause: Cause::Run,
            following: None,
        }
    }

    #[test]
    fn unsettled_until_every_check_reported() {
        let mut s = shared(vec![
            spec("a", tcp(), Weight::Fault, 2, 2),
            spec("b", tcp(), Weight::Fault, 2, 2),
        ]);
        assert!(!s.verdicts[0].settled);
        s.apply(pass(0));
        assert!(!s.verdicts[0].settled);
        s.apply(pass(1));
        assert_eq!(
            s.verdicts[0],
            Verdict {
                settled: true,
                ..Verdict::default()
            }
        );
        assert!(shared(vec![]).verdicts[0].settled);
    }

    #[test]
    fn fault_reason_is_fixed_at_the_transition() {
        let mut s = shared(vec![spec("nginx", tcp(), Weight::Fault, 2, 1)]);
        s.apply(pass(0));
        s.apply(fail(0, "connection refused"));
        assert_eq!(s.verdicts[0].fault, None);
        s.apply(fail(0, "connection refused"));
        let fault = s.verdicts[0].fault.clone().unwrap();
        assert_eq!(fault, "check nginx failed 2×: connection refused");
        s.apply(fail(0, "something else"));
        assert_eq!(s.verdicts[0].fault.as_deref(), Some(fault.as_str()));
        assert_eq!(
            s.verdicts[0].reasons,
            ["check nginx failing: something else (fault)"]
        );
        s.apply(pass(0));
        assert_eq!(s.verdicts[0].fault, None);
        assert!(s.verdicts[0].reasons.is_empty());
    }

    #[test]
    fn an_exit_fails_at_once_whatever_fall_and_recovery_takes_rise() {
        let process = CheckKind::Process {
            pidfile: Some("/run/nginx.pid".into()),
            name: None,
        };
        let mut s = shared(vec![spec("nginx", process, Weight::Fault, 3, 2)]);
        s.apply(pass(0));
        s.apply(RunResult {
            cause: Cause::Exit,
            ..fail(0, "nginx (pid 7, from /run/nginx.pid) exited")
        });
        assert_eq!(
            s.verdicts[0].fault.as_deref(),
            Some("check nginx failed: nginx (pid 7, from /run/nginx.pid) exited")
        );
        let st = s.entries[0].status();
        assert_eq!((st.exit_events, st.failures, st.healthy), (1, 1, false));
        s.apply(pass(0));
        assert!(s.verdicts[0].fault.is_some(), "rise 2 needs two good runs");
        s.apply(pass(0));
        assert_eq!(s.verdicts[0].fault, None);
    }

    #[test]
    fn adjust_weights_add_up_and_faults_join() {
        let mut s = shared(vec![
            spec("a", tcp(), Weight::Adjust(-20), 1, 1),
            spec("b", tcp(), Weight::Adjust(-5), 1, 1),
            spec("c", tcp(), Weight::Fault, 1, 1),
            spec("d", tcp(), Weight::Fault, 1, 1),
            spec("e", tcp(), Weight::Adjust(0), 1, 1),
        ]);
        for i in 0..5 {
            s.apply(fail(i, "down"));
        }
        assert_eq!(s.verdicts[0].priority_delta, -25);
        assert_eq!(
            s.verdicts[0].fault.as_deref(),
            Some("check c failed 1×: down; check d failed 1×: down")
        );
        assert_eq!(s.verdicts[0].reasons.len(), 4);
        assert_eq!(
            s.verdicts[0].reasons[0],
            "check a failing: down (weight -20)"
        );
    }

    #[test]
    fn positive_weights_count_while_passing_negative_while_failing() {
        let mut s = shared(vec![
            spec("nginx", tcp(), Weight::Adjust(20), 1, 1),
            spec("disk", tcp(), Weight::Adjust(-5), 1, 1),
        ]);
        // Before the first result a positive weight counts for nothing.
        assert_eq!(s.verdicts[0].priority_delta, 0);
        s.apply(pass(0));
        assert_eq!(
            s.verdicts[0].priority_delta, 20,
            "not settled yet, but +20 counts"
        );
        s.apply(pass(1));
        assert_eq!(s.verdicts[0].priority_delta, 20);
        assert_eq!(s.verdicts[0].reasons, ["check nginx passing (weight +20)"]);
        s.apply(fail(0, "connection refused"));
        s.apply(fail(1, "disk full"));
        assert_eq!(s.verdicts[0].priority_delta, -5);
        assert_eq!(
            s.verdicts[0].reasons,
            ["check disk failing: disk full (weight -5)"]
        );
        assert_eq!(s.verdicts[0].fault, None);
    }

    #[test]
    fn file_values_apply_at_once_and_unreadable_counts_as_zero() {
        let mut s = shared(vec![
            spec("prio", file(), Weight::Adjust(-10), 3, 3),
            spec("stop", file(), Weight::Fault, 3, 3),
        ]);
        s.apply(value(0, 5));
        s.apply(value(1, 0));
        assert_eq!(s.verdicts[0].priority_delta, -50);
        assert_eq!(s.verdicts[0].fault, None);
        assert_eq!(
            s.verdicts[0].reasons,
            ["check prio: file /run/prio holds 5 (weight -10 → -50)"]
        );
        s.apply(value(0, -2));
        assert_eq!(s.verdicts[0].priority_delta, 20);
        s.apply(value(1, 1));
        assert!(s.verdicts[0].fault.as_deref().unwrap().contains("holds 1"));
        s.apply(RunResult {
            index: 0,
            outcome: Err(CheckError::File {
                path: "/run/prio".into(),
                reason: "not found".into(),
            }),
            latency: Duration::ZERO,
            cause: Cause::Run,
            following: None,
        });
        assert_eq!(s.verdicts[0].priority_delta, 0);
        let st = s.entries[0].status();
        assert_eq!(st.file_value, None);
        assert!(!st.healthy);
        assert!(
            st.last_result.contains("counted as 0"),
            "{}",
            st.last_result
        );
    }

    #[test]
    fn huge_file_values_saturate() {
        let mut s = shared(vec![
            spec("a", file(), Weight::Adjust(-1000), 1, 1),
            spec("b", file(), Weight::Adjust(-1000), 1, 1),
        ]);
        s.apply(value(0, i64::MAX));
        s.apply(value(1, i64::MAX));
        assert_eq!(s.verdicts[0].priority_delta, i32::MIN);
    }

    #[test]
    fn statuses_count_runs_and_failures() {
        let mut s = shared(vec![spec("x", tcp(), Weight::Fault, 3, 3)]);
        let st = s.entries[0].status();
        assert!(!st.healthy && st.runs == 0 && st.latency_ms.is_none());
        s.apply(pass(0));
        s.apply(fail(0, "no"));
        s.apply(fail(0, "no"));
        let st = s.entries[0].status();
        assert_eq!((st.runs, st.failures, st.consecutive_fail), (3, 2, 2));
        assert!(st.healthy);
        assert_eq!(st.kind, "tcp");
        assert_eq!(st.last_result, "no");
        s.apply(pass(7)); // an unknown index is ignored
    }

    fn track(check: &str, weight: Weight) -> TrackCheck {
        TrackCheck {
            check: check.into(),
            weight,
        }
    }

    /// The groups `spawn_groups` builds from `tracks` over `specs`.
    fn grouped(specs: Vec<CheckSpec>, tracks: &[Vec<TrackCheck>]) -> Shared {
        let groups = tracks.iter().map(|t| resolve_tracks(&specs, t)).collect();
        Shared::new(specs, groups)
    }

    #[test]
    fn groups_follow_their_own_checks_with_their_own_weights() {
        let mut s = grouped(
            vec![
                spec("nginx", tcp(), Weight::Fault, 1, 1),
                spec("disk", tcp(), Weight::Adjust(-5), 1, 1),
                spec("db", tcp(), Weight::Fault, 1, 1),
            ],
            &[
                // web-a: nginx at its own weight (fault), disk at -20.
                vec![
                    track("nginx", Weight::Fault),
                    track("disk", Weight::Adjust(-20)),
                ],
                // web-b: disk at -30 only; db's fault weight turned into -7.
                vec![
                    track("disk", Weight::Adjust(-30)),
                    track("db", Weight::Adjust(-7)),
                ],
            ],
        );
        assert_eq!(s.verdicts.len(), 2);
        s.apply(pass(0));
        s.apply(fail(1, "disk full"));
        assert!(!s.verdicts[0].settled && !s.verdicts[1].settled);
        s.apply(pass(2));
        let [a, b] = [&s.verdicts[0], &s.verdicts[1]];
        assert!(a.settled && b.settled);
        assert_eq!((a.fault.as_deref(), a.priority_delta), (None, -20));
        assert_eq!(a.reasons, ["check disk failing: disk full (weight -20)"]);
        assert_eq!((b.fault.as_deref(), b.priority_delta), (None, -30));

        s.apply(fail(0, "connection refused"));
        s.apply(fail(2, "down"));
        let [a, b] = [&s.verdicts[0], &s.verdicts[1]];
        assert_eq!(
            a.fault.as_deref(),
            Some("check nginx failed 1×: connection refused")
        );
        assert_eq!(a.priority_delta, -20);
        assert_eq!(b.fault, None, "web-b does not track nginx and weighs db -7");
        assert_eq!(b.priority_delta, -37);
        assert_eq!(
            b.reasons,
            [
                "check disk failing: disk full (weight -30)",
                "check db failing: down (weight -7)"
            ]
        );
    }

    #[test]
    fn file_values_use_the_group_weight() {
        let mut s = grouped(
            vec![spec("prio", file(), Weight::Adjust(-10), 3, 3)],
            &[
                vec![track("prio", Weight::Adjust(-1))],
                vec![track("prio", Weight::Fault)],
                vec![],
            ],
        );
        s.apply(value(0, 4));
        assert_eq!(s.verdicts[0].priority_delta, -4);
        assert_eq!(s.verdicts[0].fault, None);
        assert!(s.verdicts[1].fault.as_deref().unwrap().contains("holds 4"));
        assert_eq!(
            s.verdicts[2],
            Verdict {
                settled: true,
                ..Verdict::default()
            },
            "a group tracking nothing is never hurt"
        );
    }

    #[test]
    fn unknown_tracked_names_are_ignored() {
        let s = grouped(
            vec![spec("a", tcp(), Weight::Fault, 1, 1)],
            &[vec![
                track("nope", Weight::Fault),
                track("a", Weight::Adjust(-3)),
            ]],
        );
        assert_eq!(
            s.groups,
            vec![vec![Track {
                index: 0,
                weight: Weight::Adjust(-3)
            }]]
        );
    }

    /// Real check tasks: two file checks, one tracked by no group. Both run and show in
    /// the statuses; the untracked one changes no group's verdict but counts for `settled`.
    #[tokio::test]
    async fn spawn_groups_runs_untracked_checks_and_sends_group_verdicts() {
        let dir = tempfile::tempdir().unwrap();
        let (tracked, untracked) = (dir.path().join("tracked"), dir.path().join("untracked"));
        std::fs::write(&tracked, "2\n").unwrap();
        std::fs::write(&untracked, "9\n").unwrap();
        let file_spec = |name: &str, path: &std::path::Path| CheckSpec {
            interval: Duration::from_millis(20),
            ..spec(
                name,
                CheckKind::File {
                    path: path.to_path_buf(),
                },
                Weight::Fault,
                1,
                1,
            )
        };
        let (monitor, mut rx) = HealthMonitor::spawn_groups(
            vec![
                file_spec("tracked", &tracked),
                file_spec("untracked", &untracked),
            ],
            vec![
                vec![track("tracked", Weight::Adjust(-5))],
                vec![track("tracked", Weight::Adjust(3))],
            ],
        );
        // Updates before every check reported are unsettled; wait for the settled one.
        async fn next_where(
            rx: &mut mpsc::Receiver<GroupVerdicts>,
            want: fn(&GroupVerdicts) -> bool,
        ) -> Result<GroupVerdicts, tokio::time::error::Elapsed> {
            let wait = async {
                loop {
                    let update = rx.recv().await.expect("channel open");
                    if want(&update) {
                        return update;
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(5), wait).await
        }
        let first = next_where(&mut rx, |u| u.0.iter().all(|v| v.settled))
            .await
            .expect("a settled update within 5 s");
        assert_eq!(first.0.len(), 2);
        assert!(first.0.iter().all(|v| v.settled));
        assert_eq!(first.0[0].priority_delta, -10);
        assert_eq!(first.0[1].priority_delta, 6);
        assert!(first.0.iter().all(|v| v.fault.is_none()), "{first:?}");
        assert_eq!(monitor.verdicts(), first.0);

        let statuses = monitor.statuses();
        let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["tracked", "untracked"]);
        assert!(statuses[1].runs >= 1);
        assert_eq!(statuses[1].file_value, Some(9));
        // The node-wide view weighs every check by its own weight: both files are faults.
        assert!(monitor.verdict().fault.is_some());

        // A change of the tracked file is sent for both groups.
        std::fs::write(&tracked, "0\n").unwrap();
        let next = next_where(&mut rx, |u| u.0.iter().all(|v| v.priority_delta == 0))
            .await
            .expect("the change of the tracked file is sent within 5 s");
        assert!(next.0.iter().all(|v| v.settled && v.fault.is_none()));
    }

    #[tokio::test]
    async fn spawn_without_checks_is_settled_at_once() {
        let (_m, mut rx) = HealthMonitor::spawn(Vec::new());
        assert!(rx.recv().await.unwrap().settled);
        let (m, mut rx) = HealthMonitor::spawn_groups(Vec::new(), vec![vec![], vec![]]);
        assert_eq!(rx.recv().await.unwrap().0.len(), 2);
        assert_eq!(m.verdicts().len(), 2);
    }

    /// Two nodes' elections on a virtual clock, adverts delivered at once, probes
    /// unanswered; node `i` has base priority `priorities[i]` and gets the priority delta
    /// of `verdicts[i]` (its checks' verdict). Returns the nodes that are master after 5 s.
    fn masters_after(priorities: [u8; 2], verdicts: [&Verdict; 2]) -> Vec<usize> {
        use crate::election::{Action, Election, ElectionConfig, Input, DEFAULT_DOWN_MULTIPLIER};
        use crate::wire::State;
        let t0 = std::time::Instant::now();
        let mut nodes: Vec<Election> = (0..2)
            .map(|i| {
                let cfg = ElectionConfig {
                    name: format!("n{}", i + 1),
                    priority: priorities[i],
                    advert_interval: Duration::from_millis(50),
                    down_multiplier: DEFAULT_DOWN_MULTIPLIER,
                    preempt: true,
                    preempt_delay: Duration::ZERO,
                    mac: [2, 0, 0, 0, 0, 0x11 + i as u8],
                    probe: true,
                    cluster_size: 2,
                    quorum: false,
                    fingerprint: [0; 4],
                    foreign_holder_timeout: None,
                    probe_window: Duration::from_millis(30),
                };
                Election::new(cfg, t0)
            })
            .collect();
        let mut inbox: Vec<(usize, Input)> = Vec::new();
        for (i, v) in verdicts.iter().enumerate() {
            inbox.push((i, Input::Start));
            inbox.push((
                i,
                Input::PriorityDelta {
                    delta: v.priority_delta,
                },
            ));
        }
        let mut now = t0;
        while now < t0 + Duration::from_secs(5) {
            while !inbox.is_empty() {
                for (i, input) in std::mem::take(&mut inbox) {
                    for action in nodes[i].handle(now, input) {
                        match action {
                            Action::Send(advert) => inbox.push((1 - i, Input::Advert(advert))),
                            Action::Probe => {
                                inbox.push((i, Input::ProbeResult { answered_by: None }))
                            }
                            _ => {}
                        }
                    }
                }
            }
            now = nodes
                .iter()
                .filter_map(Election::next_deadline)
                .min()
                .unwrap_or(now + Duration::from_millis(50))
                .max(now + Duration::from_millis(1));
            inbox = vec![(0, Input::Timeout), (1, Input::Timeout)];
        }
        (0..2)
            .filter(|i| nodes[*i].state() == State::Master)
            .collect()
    }

    /// Issue 14's proof, from check results to the election: with a positive weight the
    /// node whose check succeeds wins; with a negative weight the node whose check fails
    /// loses (keepalived's `weight`), whichever node would win without the checks.
    #[test]
    fn the_check_weight_decides_which_node_wins() {
        let verdict = |weight: i32, passes: bool| {
            let mut s = shared(vec![spec("nginx", tcp(), Weight::Adjust(weight), 1, 1)]);
            s.apply(if passes { pass(0) } else { fail(0, "refused") });
            s.verdicts[0].clone()
        };
        let (up20, down20) = (verdict(20, true), verdict(20, false));
        assert_eq!((up20.priority_delta, down20.priority_delta), (20, 0));
        // Equal priorities: without checks n1 wins (the name breaks the tie).
        assert_eq!(masters_after([100, 100], [&down20, &down20]), [0]);
        // +20: the node whose check succeeds wins, either one.
        assert_eq!(masters_after([100, 100], [&down20, &up20]), [1]);
        assert_eq!(masters_after([100, 100], [&up20, &down20]), [0]);
        // Both succeed: both +20, the tie is broken as without checks.
        assert_eq!(masters_after([100, 100], [&up20, &up20]), [0]);

        let (up60, down60) = (verdict(-60, true), verdict(-60, false));
        assert_eq!((up60.priority_delta, down60.priority_delta), (0, -60));
        // -60: the preferred node (150) loses when its check fails (90 < 100) ...
        assert_eq!(masters_after([150, 100], [&up60, &up60]), [0]);
        assert_eq!(masters_after([150, 100], [&down60, &up60]), [1]);
        // ... and a failing check on the other node changes nothing (40 < 150).
        assert_eq!(masters_after([150, 100], [&up60, &down60]), [0]);
        // A weight too small to cross the gap loses nothing: 150 - 40 = 110 > 100.
        let down40 = verdict(-40, false);
        assert_eq!(masters_after([150, 100], [&down40, &up60]), [0]);
    }
}
