//! The health monitor: the VIP must follow a working service (Nginx first), not just a
//! running host.
//!
//! Every configured check runs in its own tokio task (once at start, then every
//! `interval`), each run bounded by the check's `timeout` — a hung check counts as failed
//! at its timeout and never stalls the election loop. Results go to one aggregator task
//! that applies the fall/rise hysteresis (module `state`), keeps the per-check status for
//! `haagent status`, and sends a [`Verdict`] to the daemon whenever the verdict's effect
//! (fault, priority adjustment) changes.
//!
//! Rules, in short:
//! - A check's first result decides at once (a fresh agent does not wait for `rise`);
//!   after that `fall` failures in a row make it failing and `rise` successes in a row
//!   healthy again.
//! - A failing check with [`Weight::Fault`] puts the node in fault; with
//!   [`Weight::Adjust`] its number is added to the priority.
//! - `file` checks (keepalived's `track_file`) skip the hysteresis: the latest value read,
//!   times the weight, is added to the priority (with `Weight::Fault`, any nonzero value is
//!   a fault). Like keepalived, a missing, unreadable or non-integer file counts as the
//!   value 0; the check then shows as unhealthy and its `last_result` says so.

mod http;
pub(crate) mod runner;
mod spec;
mod state;

pub use spec::{CheckKind, CheckSpec, Weight};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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
    /// Sum of the weights of failing [`Weight::Adjust`] checks and of `file` check
    /// values × weight (the latter may be positive).
    pub priority_delta: i32,
    /// One line per check that currently changes anything
    /// (`check nginx failing: ... (weight -20)`).
    pub reasons: Vec<String>,
    /// Every check has reported at least one result. Before that, checks without a result
    /// count for nothing.
    pub settled: bool,
}

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
    /// The receiver gets a [`Verdict`] whenever its `fault` or `priority_delta` changes and
    /// once when it first becomes `settled` (at once when `specs` is empty).
    pub fn spawn(specs: Vec<CheckSpec>) -> (HealthMonitor, mpsc::Receiver<Verdict>) {
        let (out_tx, out_rx) = mpsc::channel(VERDICT_CHANNEL);
        let (res_tx, res_rx) = mpsc::unbounded_channel();
        let mut shared = Shared {
            entries: specs.iter().cloned().map(Entry::new).collect(),
            verdict: Verdict::default(),
        };
        shared.verdict = shared.compute();
        if shared.verdict.settled {
            // No checks: settled from the start. The channel is empty, so this cannot fail.
            let _ = out_tx.try_send(shared.verdict.clone());
        }
        let announced = Announced::of(&shared.verdict);
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
        )));
        (HealthMonitor { shared, tasks }, out_rx)
    }

    /// The current verdict (also sent on the channel whenever it changes).
    pub fn verdict(&self) -> Verdict {
        lock(&self.shared).verdict.clone()
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
}

/// Runs one check forever: immediately, then every interval, each run under the timeout.
async fn check_task(index: usize, spec: CheckSpec, results: mpsc::UnboundedSender<RunResult>) {
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
}

/// Applies results to the shared state and sends verdicts. While the daemon is not
/// reading, results keep being applied and only the newest verdict waits to be sent.
async fn aggregate(
    shared: Arc<Mutex<Shared>>,
    mut results: mpsc::UnboundedReceiver<RunResult>,
    out: mpsc::Sender<Verdict>,
    mut announced: Announced,
) {
    let mut pending: Option<Verdict> = None;
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
                let verdict = {
                    let mut shared = lock(&shared);
                    shared.apply(result);
                    shared.verdict.clone()
                };
                let now = Announced::of(&verdict);
                if now != announced && out_open {
                    announced = now;
                    pending = Some(verdict);
                }
            }
        }
    }
}

/// The monitor's state: one entry per check and the verdict they make.
#[derive(Debug)]
struct Shared {
    entries: Vec<Entry>,
    verdict: Verdict,
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
        }
    }

    fn is_file(&self) -> bool {
        matches!(self.spec.kind, CheckKind::File { .. })
    }

    /// Records one run and logs a change of health (or of a file's value).
    fn record(&mut self, outcome: Result<runner::Passed, CheckError>, latency: Duration) {
        let name = &self.spec.name;
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
        let changed = self.hysteresis.record(ok);
        if changed == Some(Health::Failing) {
            self.fault_reason = format!(
                "check {name} failed {}×: {}",
                self.hysteresis.consecutive_fail(),
                self.last_failure
            );
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
                tracing::warn!(check = %name, reason = %self.last_failure, "check {name} failing")
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
        }
    }
}

impl Shared {
    fn apply(&mut self, result: RunResult) {
        if let Some(entry) = self.entries.get_mut(result.index) {
            entry.record(result.outcome, result.latency);
        }
        self.verdict = self.compute();
    }

    /// The verdict the entries make now.
    fn compute(&self) -> Verdict {
        let mut faults = Vec::new();
        let mut delta: i64 = 0;
        let mut reasons = Vec::new();
        for e in &self.entries {
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
                match e.spec.weight {
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
            if e.hysteresis.health() != Health::Failing {
                continue;
            }
            match e.spec.weight {
                Weight::Fault => {
                    faults.push(e.fault_reason.clone());
                    reasons.push(format!("check {name} failing: {} (fault)", e.last_failure));
                }
                Weight::Adjust(0) => {}
                Weight::Adjust(w) => {
                    delta = delta.saturating_add(i64::from(w));
                    reasons.push(format!(
                        "check {name} failing: {} (weight {w})",
                        e.last_failure
                    ));
                }
            }
        }
        Verdict {
            fault: (!faults.is_empty()).then(|| faults.join("; ")),
            priority_delta: delta.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            reasons,
            settled: self.entries.iter().all(|e| e.runs > 0),
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

    fn shared(specs: Vec<CheckSpec>) -> Shared {
        let mut s = Shared {
            entries: specs.into_iter().map(Entry::new).collect(),
            verdict: Verdict::default(),
        };
        s.verdict = s.compute();
        s
    }

    fn pass(index: usize) -> RunResult {
        RunResult {
            index,
            outcome: Ok(runner::Passed {
                detail: "ok".into(),
                file_value: None,
            }),
            latency: Duration::from_millis(1),
        }
    }

    fn fail(index: usize, why: &str) -> RunResult {
        RunResult {
            index,
            outcome: Err(CheckError::Process(why.into())),
            latency: Duration::from_millis(1),
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
        }
    }

    #[test]
    fn unsettled_until_every_check_reported() {
        let mut s = shared(vec![
            spec("a", tcp(), Weight::Fault, 2, 2),
            spec("b", tcp(), Weight::Fault, 2, 2),
        ]);
        assert!(!s.verdict.settled);
        s.apply(pass(0));
        assert!(!s.verdict.settled);
        s.apply(pass(1));
        assert_eq!(
            s.verdict,
            Verdict {
                settled: true,
                ..Verdict::default()
            }
        );
        assert!(shared(vec![]).verdict.settled);
    }

    #[test]
    fn fault_reason_is_fixed_at_the_transition() {
        let mut s = shared(vec![spec("nginx", tcp(), Weight::Fault, 2, 1)]);
        s.apply(pass(0));
        s.apply(fail(0, "connection refused"));
        assert_eq!(s.verdict.fault, None);
        s.apply(fail(0, "connection refused"));
        let fault = s.verdict.fault.clone().unwrap();
        assert_eq!(fault, "check nginx failed 2×: connection refused");
        s.apply(fail(0, "something else"));
        assert_eq!(s.verdict.fault.as_deref(), Some(fault.as_str()));
        assert_eq!(
            s.verdict.reasons,
            ["check nginx failing: something else (fault)"]
        );
        s.apply(pass(0));
        assert_eq!(s.verdict.fault, None);
        assert!(s.verdict.reasons.is_empty());
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
        assert_eq!(s.verdict.priority_delta, -25);
        assert_eq!(
            s.verdict.fault.as_deref(),
            Some("check c failed 1×: down; check d failed 1×: down")
        );
        assert_eq!(s.verdict.reasons.len(), 4);
        assert_eq!(s.verdict.reasons[0], "check a failing: down (weight -20)");
    }

    #[test]
    fn file_values_apply_at_once_and_unreadable_counts_as_zero() {
        let mut s = shared(vec![
            spec("prio", file(), Weight::Adjust(-10), 3, 3),
            spec("stop", file(), Weight::Fault, 3, 3),
        ]);
        s.apply(value(0, 5));
        s.apply(value(1, 0));
        assert_eq!(s.verdict.priority_delta, -50);
        assert_eq!(s.verdict.fault, None);
        assert_eq!(
            s.verdict.reasons,
            ["check prio: file /run/prio holds 5 (weight -10 → -50)"]
        );
        s.apply(value(0, -2));
        assert_eq!(s.verdict.priority_delta, 20);
        s.apply(value(1, 1));
        assert!(s.verdict.fault.as_deref().unwrap().contains("holds 1"));
        s.apply(RunResult {
            index: 0,
            outcome: Err(CheckError::File {
                path: "/run/prio".into(),
                reason: "not found".into(),
            }),
            latency: Duration::ZERO,
        });
        assert_eq!(s.verdict.priority_delta, 0);
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
        assert_eq!(s.verdict.priority_delta, i32::MIN);
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
}
