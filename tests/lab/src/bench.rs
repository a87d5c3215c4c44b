//! The failover benchmark: the same fault scenarios against haagent and keepalived on the
//! same topology, several runs each, measured from the client's side (an HTTP GET to the
//! VIP every 10 ms) and from the nodes' side (who holds the VIP, every 10 ms).
//!
//! One run: 200 ms of baseline, inject the fault on the master (n1), hold it for the fault
//! window, undo it, wait until n1 alone holds the VIP again and the client is served, then
//! measure. Definitions (also in docs/benchmarks.md):
//!
//! - **outage**: within the fault window, the longest run of consecutive failed requests,
//!   from the start of its first request to the start of the next successful request. If
//!   the client is never served again before the fault is undone, the outage is "no
//!   failover": from the first failure to the end of the window.
//! - **failback outage**: the same, from undoing the fault until the cluster is settled.
//! - **failed requests**: all failed requests of the run (fault and failback).
//! - **two holders**: time during the run in which two or more nodes had the VIP.
//! - **regain**: from undoing the fault (failback: restarting the agent) until n1 alone holds
//!   the VIP.
//! - **VIP moves**: holder samples in the fault window in which a node holds the VIP that did
//!   not in the sample before (on the saturated host, every one is spurious).
//!
//! Besides the fault runs: cold starts of the whole cluster ([`startup_once`]: transitions to
//! master from the agents' logs, first holder, whether only n1 ever held the VIP) and the
//! idle-cost matrix (each agent at matched advert intervals, election only and with checks).
//! Every scenario's first run, and the first cold start, can be drawn as an SVG timeline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::interrupt;
use super::probe::{HolderSample, ProbeSample, SAMPLE_INTERVAL};
use super::testbed::{
    stress_available, Checks, IdleUsage, Implementation, Testbed, TestbedOptions, Timers, NODES,
};
use super::timeline::{self, Timeline};
use super::web::ServerKind;
use super::LabError;

/// A fault injected on the master (n1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The master's cable is pulled at the switch (carrier down on both ends).
    LinkDown,
    /// The agent is SIGKILLed (keepalived: all its processes at once).
    AgentKill,
    /// The HTTP server (Nginx) on the master is stopped.
    ServerStop,
    /// The agent is stopped gracefully (SIGTERM): it hands over with priority 0.
    GracefulStop,
    /// nftables on the master drops all IP traffic to and from the other nodes; L2, the
    /// gateway and the client still reach it.
    PeerBlock,
    /// nftables on the bridge drops every frame to and from the master's port: the master
    /// is cut off from everything while its link stays up.
    Isolate,
    /// As `server-stop`, with haagent's event-driven `process` check (pidfd on the
    /// server's pidfile) beside the HTTP check. haagent only (keepalived's `track_process`
    /// matches by name, and the lab's nodes share one PID namespace).
    ServerStopProcess,
    /// Failback: the master's agent is stopped (SIGTERM), then restarted; measured from
    /// the restart until it holds the VIP again.
    Failback,
    /// Every core busy (`stress-ng --cpu <ncpu>` at the agents' nice level) for the
    /// saturation window; nothing is wrong, so any VIP move is spurious.
    Saturated,
}

impl Scenario {
    /// Every scenario, in table order.
    pub const ALL: [Scenario; 9] = [
        Self::LinkDown,
        Self::AgentKill,
        Self::ServerStop,
        Self::ServerStopProcess,
        Self::GracefulStop,
        Self::PeerBlock,
        Self::Isolate,
        Self::Failback,
        Self::Saturated,
    ];

    /// The checks the testbed must run for this scenario.
    pub fn checks(self) -> Checks {
        match self {
            Self::ServerStopProcess => Checks::HttpAndProcess,
            _ => Checks::Http,
        }
    }

    /// Short name (command line, JSON).
    pub fn name(self) -> &'static str {
        match self {
            Self::LinkDown => "link-down",
            Self::AgentKill => "agent-kill",
            Self::ServerStop => "server-stop",
            Self::GracefulStop => "graceful-stop",
            Self::PeerBlock => "peer-block",
            Self::Isolate => "isolate",
            Self::ServerStopProcess => "server-stop-process",
            Self::Failback => "failback",
            Self::Saturated => "saturated",
        }
    }

    /// What happens, for the table.
    pub fn describe(self) -> &'static str {
        match self {
            Self::LinkDown => "master's link down",
            Self::AgentKill => "agent SIGKILLed",
            Self::ServerStop => "HTTP server stopped on master",
            Self::GracefulStop => "graceful stop (SIGTERM)",
            Self::PeerBlock => "peer traffic blocked (nft)",
            Self::Isolate => "master isolated (bridge nft)",
            Self::ServerStopProcess => "HTTP server stopped on master, process check",
            Self::Failback => "master's agent stopped, restarted (failback)",
            Self::Saturated => "saturated host (stress-ng, all cores)",
        }
    }

    /// Whether it needs `nft`.
    pub fn needs_nft(self) -> bool {
        matches!(self, Self::PeerBlock | Self::Isolate)
    }

    /// Injects the fault on node 0.
    pub fn inject(self, tb: &mut Testbed) -> Result<(), LabError> {
        match self {
            Self::LinkDown => tb.lab.set_link(NODES[0], false),
            Self::AgentKill => tb.kill_agent(0),
            Self::ServerStop | Self::ServerStopProcess => {
                tb.stop_server(0);
                Ok(())
            }
            Self::GracefulStop | Self::Failback => tb.stop_agent(0),
            Self::Saturated => tb.start_stress(),
            Self::PeerBlock => {
                let peers = format!("{}, {}", Testbed::node_addr(1), Testbed::node_addr(2));
                let rules = format!(
                    "table inet halab_peer {{\n  chain in {{ type filter hook input priority 0; policy accept; ip saddr {{ {peers} }} drop; }}\n  \
                     chain out {{ type filter hook output priority 0; policy accept; ip daddr {{ {peers} }} drop; }}\n}}\n"
                );
                tb.nft(tb.node_ns(0)?, &rules)
            }
            Self::Isolate => {
                let port = tb.lab.host(NODES[0])?.port.clone();
                let rules = format!(
                    "table bridge halab_iso {{\n  chain isolate {{ type filter hook forward priority 0; policy accept; \
                     iifname \"{port}\" drop; oifname \"{port}\" drop; }}\n}}\n"
                );
                tb.nft(tb.lab.switch(), &rules)
            }
        }
    }

    /// Undoes the fault.
    pub fn restore(self, tb: &mut Testbed) -> Result<(), LabError> {
        match self {
            Self::LinkDown => tb.lab.set_link(NODES[0], true),
            Self::AgentKill | Self::GracefulStop | Self::Failback => tb.start_agent(0),
            Self::ServerStop | Self::ServerStopProcess => tb.start_server(0),
            Self::Saturated => {
                tb.stop_stress();
                Ok(())
            }
            Self::PeerBlock => tb.nft_delete(tb.node_ns(0)?, "inet", "halab_peer"),
            Self::Isolate => tb.nft_delete(tb.lab.switch(), "bridge", "halab_iso"),
        }
    }
}

/// The longest run of failed requests among `samples` (in start order); `end` closes a run
/// still open at the end. Returns the outage and whether the client was served again.
pub fn longest_outage(samples: &[ProbeSample], end: Instant) -> (Duration, bool) {
    let mut worst = Duration::ZERO;
    let mut recovered = true;
    let mut run_start: Option<Instant> = None;
    for s in samples {
        match (s.ok, run_start) {
            (false, None) => run_start = Some(s.at),
            (true, Some(start)) => {
                let d = s.at.saturating_duration_since(start);
                if d > worst {
                    worst = d;
                    recovered = true;
                }
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = run_start {
        let d = end.saturating_duration_since(start);
        if d >= worst {
            worst = d;
            recovered = false;
        }
    }
    (worst, recovered)
}

/// Time covered by samples with at least `min` holders (each sample stands for the time
/// until the next one), and with none.
pub fn holder_times(samples: &[HolderSample]) -> (Duration, Duration) {
    let mut two = Duration::ZERO;
    let mut none = Duration::ZERO;
    for (i, s) in samples.iter().enumerate() {
        let dt = samples
            .get(i + 1)
            .map(|n| n.at.saturating_duration_since(s.at))
            .unwrap_or(SAMPLE_INTERVAL);
        match s.count() {
            0 => none += dt,
            1 => {}
            _ => two += dt,
        }
    }
    (two, none)
}

/// The measurements of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunResult {
    /// The agent.
    pub implementation: Implementation,
    /// Its timers.
    pub timers: Timers,
    /// The fault.
    pub scenario: Scenario,
    /// Run number, from 1.
    pub run: usize,
    /// Client-observed outage during the fault window, ms.
    pub outage_ms: f64,
    /// Whether the client was served again before the fault was undone.
    pub failed_over: bool,
    /// From the fault until another node held the VIP (holder samples), ms; `None` if none
    /// did within the window.
    pub takeover_ms: Option<f64>,
    /// Client-observed outage after undoing the fault, ms.
    pub failback_outage_ms: f64,
    /// Failed requests in the whole run.
    pub failed_requests: usize,
    /// All requests in the whole run.
    pub requests: usize,
    /// Time with two or more VIP holders, ms.
    pub two_holders_ms: f64,
    /// Time with no VIP holder, ms.
    pub no_holder_ms: f64,
    /// Nodes that served the client during the fault window.
    pub served_by: Vec<String>,
    /// From undoing the fault until n1 alone held the VIP (failback: from the restart of
    /// its agent), ms; `None` if it did not before the cluster settled.
    pub regain_ms: Option<f64>,
    /// Failed requests from undoing the fault until the cluster settled.
    pub failed_after_restore: usize,
    /// VIP moves during the fault window: holder samples in which a node held the VIP
    /// that had not held it in the sample before.
    pub vip_moves: usize,
    /// The picture of the run (not in the JSON).
    #[serde(skip)]
    pub timeline: Timeline,
}

/// One cold start of the whole cluster: every agent started at once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartupRun {
    /// The agent.
    pub implementation: Implementation,
    /// Its timers.
    pub timers: Timers,
    /// Run number, from 1.
    pub run: usize,
    /// Transitions to master over all nodes, from their logs (haagent: `to=master`;
    /// keepalived: `Entering MASTER STATE`). 1 is a clean start.
    pub master_transitions: usize,
    /// From the start until the first node held the VIP (holder samples), ms.
    pub first_holder_ms: Option<f64>,
    /// Whether n1 (the top-ranked node) was the only node ever seen holding the VIP.
    pub only_top_held: bool,
    /// Every node seen holding the VIP.
    pub holders_seen: Vec<String>,
    /// The picture of the start (not in the JSON).
    #[serde(skip)]
    pub timeline: Timeline,
}

/// One cell of the idle-cost matrix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleMatrixRow {
    /// The agent.
    pub implementation: Implementation,
    /// Advert interval, ms.
    pub advert_ms: u32,
    /// Checks run.
    pub checks: Checks,
    /// How long it was measured, s.
    pub seconds: f64,
    /// Per node.
    pub nodes: Vec<IdleUsage>,
}

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Agents to compare.
    pub implementations: Vec<Implementation>,
    /// Timer settings.
    pub timers: Vec<Timers>,
    /// Scenarios.
    pub scenarios: Vec<Scenario>,
    /// Runs per scenario.
    pub runs: usize,
    /// Fault window override (default: 5 s at default timers, 2 s at fast).
    pub window: Option<Duration>,
    /// Idle measurement window (0: skip).
    pub idle: Duration,
    /// Everything else a testbed needs (implementation and timers are overwritten).
    pub testbed: TestbedOptions,
    /// How long the saturated-host scenario keeps every core busy.
    pub saturate: Duration,
    /// Cold starts per agent and timer setting (0: no start-up scenario).
    pub startup_runs: usize,
    /// Idle window of each cell of the idle-cost matrix (0: no matrix).
    pub idle_matrix: Duration,
    /// Advert intervals of the idle-cost matrix, ms.
    pub idle_matrix_intervals: Vec<u32>,
    /// Where to write the timeline pictures (`None`: nowhere).
    pub svg_dir: Option<PathBuf>,
}

/// Idle resource use of one agent at one timer setting.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleRow {
    /// The agent.
    pub implementation: Implementation,
    /// Its timers.
    pub timers: Timers,
    /// How long it was measured, s.
    pub seconds: f64,
    /// Per node.
    pub nodes: Vec<IdleUsage>,
}

/// One line of the summary: an agent, a timer setting, a scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SummaryRow {
    /// The agent.
    pub implementation: Implementation,
    /// Its timers.
    pub timers: Timers,
    /// The fault.
    pub scenario: Scenario,
    /// Runs measured.
    pub runs: usize,
    /// Median outage, ms.
    pub outage_median_ms: f64,
    /// 95th percentile outage (nearest rank), ms.
    pub outage_p95_ms: f64,
    /// Runs in which the client was not served again within the window.
    pub runs_without_failover: usize,
    /// Median time until another node held the VIP, over the runs where one did, ms.
    pub takeover_median_ms: f64,
    /// Median failback outage, ms.
    pub failback_median_ms: f64,
    /// Median failed requests per run.
    pub failed_requests_median: f64,
    /// Median time with two holders per run, ms.
    pub two_holders_median_ms: f64,
    /// Longest time with two holders in any run, ms.
    pub two_holders_max_ms: f64,
}

/// Everything one `bench` invocation measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// HTTP server used on the nodes.
    pub server: ServerKind,
    /// Runs per scenario.
    pub runs: usize,
    /// Fault window per timer setting, ms.
    pub windows_ms: Vec<(Timers, f64)>,
    /// Idle resource use.
    pub idle: Vec<IdleRow>,
    /// Per-scenario summary.
    pub summary: Vec<SummaryRow>,
    /// Every run.
    pub results: Vec<RunResult>,
    /// Runs that could not be completed, with the reason.
    pub errors: Vec<String>,
    /// Scenarios that were not run, with the reason (e.g. stress-ng not installed).
    pub skipped: Vec<String>,
    /// Cold starts.
    pub startup: Vec<StartupRun>,
    /// The idle-cost matrix.
    pub idle_matrix: Vec<IdleMatrixRow>,
    /// Timeline pictures written.
    pub svgs: Vec<PathBuf>,
}

fn window_for(opts: &BenchOptions, timers: Timers, scenario: Scenario) -> Duration {
    if scenario == Scenario::Saturated {
        return opts.saturate;
    }
    opts.window.unwrap_or(match timers {
        Timers::Default => Duration::from_secs(5),
        Timers::Fast => Duration::from_secs(2),
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Runs the benchmark; progress goes to stderr.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, LabError> {
    let mut report = BenchReport {
        server: opts.testbed.server,
        runs: opts.runs,
        windows_ms: opts
            .timers
            .iter()
            .map(|t| (*t, ms(window_for(opts, *t, Scenario::LinkDown))))
            .collect(),
        idle: Vec::new(),
        summary: Vec::new(),
        results: Vec::new(),
        errors: Vec::new(),
        skipped: Vec::new(),
        startup: Vec::new(),
        idle_matrix: Vec::new(),
        svgs: Vec::new(),
    };
    if let Some(dir) = &opts.svg_dir {
        std::fs::create_dir_all(dir).map_err(|source| LabError::File {
            path: dir.clone(),
            source,
        })?;
    }
    for &timers in &opts.timers {
        for &implementation in &opts.implementations {
            let mut tb_opts = opts.testbed.clone();
            tb_opts.implementation = implementation;
            tb_opts.timers = timers;
            let tag = format!("{} {}", implementation.name(), timers.name());
            if opts.scenarios.is_empty() && opts.idle.is_zero() {
                if opts.startup_runs > 0 {
                    startup_runs(opts, &tb_opts, &mut report)?;
                }
                continue;
            }
            let mut tb = start_testbed(&tb_opts)?;
            let mut tb_checks = Checks::Http;
            if !opts.idle.is_zero() {
                eprintln!("[{tag}] idle: measuring RSS and CPU for {:?}", opts.idle);
                let start = Instant::now();
                let nodes = tb.idle_usage(opts.idle)?;
                report.idle.push(IdleRow {
                    implementation,
                    timers,
                    seconds: start.elapsed().as_secs_f64(),
                    nodes,
                });
            }
            // Scenarios on the production checks first, then those that need others.
            let mut scenarios = opts.scenarios.clone();
            scenarios.sort_by_key(|s| s.checks() != Checks::Http);
            for scenario in scenarios {
                if scenario == Scenario::ServerStopProcess
                    && implementation == Implementation::Keepalived
                {
                    report.skipped.push(format!(
                        "[{tag}] {}: haagent only (keepalived's track_process matches by name; the lab's nodes share one PID namespace)",
                        scenario.name()
                    ));
                    continue;
                }
                if scenario == Scenario::Saturated && !stress_available() {
                    let msg = format!(
                        "[{tag}] {}: skipped, stress-ng is not installed (`apt-get install stress-ng`)",
                        scenario.name()
                    );
                    eprintln!("{msg}");
                    report.skipped.push(msg);
                    continue;
                }
                if scenario.checks() != tb_checks {
                    drop(tb);
                    tb_opts.checks = scenario.checks();
                    tb_checks = scenario.checks();
                    tb = start_testbed(&tb_opts)?;
                }
                let runs = if scenario == Scenario::Saturated {
                    1
                } else {
                    opts.runs
                };
                for run in 1..=runs {
                    interrupt::check()?;
                    match run_once(&mut tb, scenario, window_for(opts, timers, scenario)) {
                        Ok(mut r) => {
                            r.run = run;
                            if run == 1 {
                                let name = format!(
                                    "{}-{}-{}.svg",
                                    implementation.name(),
                                    timers.name(),
                                    scenario.name()
                                );
                                write_picture(opts, &mut report, &r.timeline, &name);
                            }
                            eprintln!(
                                "[{tag}] {} run {run}/{}: outage {} ms{}, takeover {}, failback {} ms, failed {} of {}, two holders {} ms, regain {}, VIP moves {}",
                                scenario.name(),
                                runs,
                                r.outage_ms,
                                if r.failed_over { "" } else { " (no failover)" },
                                r.takeover_ms
                                    .map(|t| format!("{t} ms"))
                                    .unwrap_or_else(|| "none".into()),
                                r.failback_outage_ms,
                                r.failed_requests,
                                r.requests,
                                r.two_holders_ms,
                                r.regain_ms
                                    .map(|t| format!("{t} ms"))
                                    .unwrap_or_else(|| "none".into()),
                                r.vip_moves
                            );
                            report.results.push(r);
                        }
                        Err(LabError::Interrupted) => return Err(LabError::Interrupted),
                        Err(e) => {
                            let msg = format!("[{tag}] {} run {run}: {e}", scenario.name());
                            eprintln!("{msg}\n  rebuilding the testbed");
                            report.errors.push(msg);
                            drop(tb);
                            tb = start_testbed(&tb_opts)?;
                        }
                    }
                }
            }
            drop(tb);
            if opts.startup_runs > 0 {
                tb_opts.checks = Checks::Http;
                startup_runs(opts, &tb_opts, &mut report)?;
            }
        }
    }
    if !opts.idle_matrix.is_zero() {
        idle_matrix(opts, &mut report)?;
    }
    report.summary = summarize(&report.results);
    Ok(report)
}

fn write_picture(opts: &BenchOptions, report: &mut BenchReport, t: &Timeline, name: &str) {
    let Some(dir) = &opts.svg_dir else { return };
    let path = dir.join(name);
    match timeline::write_svg(t, &path) {
        Ok(()) => report.svgs.push(path),
        Err(e) => report.errors.push(format!("timeline {name}: {e}")),
    }
}

/// The start-up scenario: `opts.startup_runs` cold starts of the whole cluster.
fn startup_runs(
    opts: &BenchOptions,
    tb_opts: &TestbedOptions,
    report: &mut BenchReport,
) -> Result<(), LabError> {
    let tag = format!(
        "{} {}",
        tb_opts.implementation.name(),
        tb_opts.timers.name()
    );
    let mut tb = Testbed::new(tb_opts.clone())?;
    for run in 1..=opts.startup_runs {
        interrupt::check()?;
        match startup_once(&mut tb) {
            Ok(mut r) => {
                r.run = run;
                eprintln!(
                    "[{tag}] start-up run {run}/{}: {} transition(s) to master, first holder after {}, holders seen {:?}",
                    opts.startup_runs,
                    r.master_transitions,
                    r.first_holder_ms
                        .map(|t| format!("{t} ms"))
                        .unwrap_or_else(|| "none".into()),
                    r.holders_seen
                );
                if run == 1 {
                    let name = format!(
                        "{}-{}-startup.svg",
                        tb_opts.implementation.name(),
                        tb_opts.timers.name()
                    );
                    write_picture(opts, report, &r.timeline, &name);
                }
                report.startup.push(r);
            }
            Err(LabError::Interrupted) => return Err(LabError::Interrupted),
            Err(e) => {
                let msg = format!("[{tag}] start-up run {run}: {e}");
                eprintln!("{msg}\n  rebuilding the testbed");
                report.errors.push(msg);
                drop(tb);
                tb = Testbed::new(tb_opts.clone())?;
            }
        }
    }
    Ok(())
}

/// Transitions to master in one agent log.
pub fn master_transitions(log: &str, implementation: Implementation) -> usize {
    log.lines()
        .map(strip_ansi)
        .filter(|l| match implementation {
            Implementation::Haagent => l.contains("to=master"),
            Implementation::Keepalived => l.contains("Entering MASTER STATE"),
        })
        .count()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One cold start: stop every agent (they release the VIP), wait until nobody holds it,
/// start them all at once, wait until n1 alone has held it for a second.
pub fn startup_once(tb: &mut Testbed) -> Result<StartupRun, LabError> {
    tb.stop_all()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        interrupt::check()?;
        let now = Instant::now();
        let recent = tb.sampler.between(
            now.checked_sub(Duration::from_millis(100)).unwrap_or(now),
            now,
        );
        if recent.len() >= 5 && recent.iter().all(|h| h.mask == 0) {
            break;
        }
        if now > deadline {
            return Err(LabError::Setup(format!(
                "the VIP is still held 10 s after stopping every agent (mask {:#b})",
                tb.holders_mask()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    tb.start_all()?;
    tb.wait_converged(Duration::from_secs(30))?;
    let end = Instant::now();
    let samples = tb.sampler.between(start, end);
    let seen = samples.iter().fold(0u32, |m, s| m | s.mask);
    let implementation = tb.opts.implementation;
    let master_transitions = (0..NODES.len())
        .map(|i| master_transitions(&tb.agent_log(i), implementation))
        .sum();
    let probes = tb.probe.between(start, end);
    Ok(StartupRun {
        implementation,
        timers: tb.opts.timers,
        run: 0,
        master_transitions,
        first_holder_ms: samples
            .iter()
            .find(|s| s.mask != 0)
            .map(|s| ms(s.at.saturating_duration_since(start))),
        only_top_held: seen & !1 == 0,
        holders_seen: (0..NODES.len())
            .filter(|i| seen & (1 << i) != 0)
            .map(|i| NODES[i].to_string())
            .collect(),
        timeline: Timeline {
            title: format!(
                "{} {}: cold start of all nodes, {} transition(s) to master",
                implementation.name(),
                tb.opts.timers.name(),
                master_transitions
            ),
            probes: probes
                .iter()
                .map(|p| (ms(p.at.saturating_duration_since(start)), p.ok))
                .collect(),
            holders: samples
                .iter()
                .map(|h| (ms(h.at.saturating_duration_since(start)), h.mask))
                .collect(),
            marks: vec![(0.0, "all started".into())],
            end_ms: ms(end.saturating_duration_since(start)),
        },
    })
}

/// The idle-cost matrix: each agent at each advert interval, election only and with the
/// production checks, measured over `opts.idle_matrix` after convergence.
fn idle_matrix(opts: &BenchOptions, report: &mut BenchReport) -> Result<(), LabError> {
    for &implementation in &opts.implementations {
        for &advert_ms in &opts.idle_matrix_intervals {
            for checks in [Checks::None, Checks::Http] {
                interrupt::check()?;
                let mut tb_opts = opts.testbed.clone();
                tb_opts.implementation = implementation;
                tb_opts.timers = Timers::Default;
                tb_opts.advert_ms = Some(advert_ms);
                tb_opts.checks = checks;
                let tag = format!("{} {advert_ms} ms {}", implementation.name(), checks.name());
                let mut tb = match start_testbed(&tb_opts) {
                    Ok(tb) => tb,
                    Err(LabError::Interrupted) => return Err(LabError::Interrupted),
                    Err(e) => {
                        report.errors.push(format!("[{tag}] idle: {e}"));
                        continue;
                    }
                };
                eprintln!("[{tag}] idle: measuring for {:?}", opts.idle_matrix);
                let start = Instant::now();
                let nodes = tb.idle_usage(opts.idle_matrix)?;
                let row = IdleMatrixRow {
                    implementation,
                    advert_ms,
                    checks,
                    seconds: start.elapsed().as_secs_f64(),
                    nodes,
                };
                eprintln!(
                    "[{tag}] idle: CPU % per node {:?}, wake-ups/s {:?}",
                    row.nodes
                        .iter()
                        .map(|n| (n.cpu_percent * 1000.0).round() / 1000.0)
                        .collect::<Vec<_>>(),
                    row.nodes
                        .iter()
                        .map(|n| n.wakeups_per_s.round())
                        .collect::<Vec<_>>()
                );
                report.idle_matrix.push(row);
            }
        }
    }
    Ok(())
}

fn start_testbed(opts: &TestbedOptions) -> Result<Testbed, LabError> {
    let mut tb = Testbed::new(opts.clone())?;
    tb.start_all()?;
    let took = tb.wait_converged(Duration::from_secs(30))?;
    eprintln!(
        "[{} {}] cluster up: n1 holds the VIP after {} ms",
        opts.implementation.name(),
        opts.timers.name(),
        took.as_millis()
    );
    Ok(tb)
}

/// One run of `scenario` on a converged testbed.
pub fn run_once(
    tb: &mut Testbed,
    scenario: Scenario,
    window: Duration,
) -> Result<RunResult, LabError> {
    let begin = Instant::now();
    interrupt::sleep(Duration::from_millis(200))?;
    let fault = Instant::now();
    scenario.inject(tb)?;
    interrupt::sleep(window.saturating_sub(fault.elapsed()))?;
    let restore = Instant::now();
    scenario.restore(tb)?;
    tb.wait_converged_after(restore, Duration::from_secs(30))?;
    let end = Instant::now();
    // Let requests that started before `end` finish.
    interrupt::sleep(Duration::from_millis(150))?;
    let during = tb.probe.between(fault, restore);
    let (outage, failed_over) = longest_outage(&during, restore);
    let (failback, _) = longest_outage(&tb.probe.between(restore, end), end);
    let all = tb.probe.between(begin, end);
    let (two, none) = holder_times(&tb.sampler.between(begin, end));
    let takeover = tb
        .sampler
        .between(fault, restore)
        .iter()
        .find(|h| h.mask & !1 != 0)
        .map(|h| ms(h.at.saturating_duration_since(fault)));
    let mut served_by: Vec<String> = during.iter().filter_map(|s| s.server.clone()).collect();
    served_by.sort();
    served_by.dedup();
    let regain = tb
        .sampler
        .between(restore, end)
        .iter()
        .find(|h| h.mask == 1)
        .map(|h| ms(h.at.saturating_duration_since(restore)));
    let failed_after_restore = tb
        .probe
        .between(restore, end)
        .iter()
        .filter(|s| !s.ok)
        .count();
    let vip_moves = vip_moves(&tb.sampler.between(fault, restore));
    let rel = |at: Instant| ms(at.saturating_duration_since(begin));
    let timeline = Timeline {
        title: format!(
            "{} {}: {} — outage {} ms",
            tb.opts.implementation.name(),
            tb.opts.timers.name(),
            scenario.describe(),
            ms(outage)
        ),
        probes: all.iter().map(|p| (rel(p.at), p.ok)).collect(),
        holders: tb
            .sampler
            .between(begin, end)
            .iter()
            .map(|h| (rel(h.at), h.mask))
            .collect(),
        marks: vec![
            (rel(fault), "fault".into()),
            (rel(restore), "undone".into()),
        ],
        end_ms: rel(end),
    };
    Ok(RunResult {
        implementation: tb.opts.implementation,
        timers: tb.opts.timers,
        scenario,
        run: 0,
        outage_ms: ms(outage),
        failed_over,
        takeover_ms: takeover,
        failback_outage_ms: ms(failback),
        failed_requests: all.iter().filter(|s| !s.ok).count(),
        requests: all.len(),
        two_holders_ms: ms(two),
        no_holder_ms: ms(none),
        served_by,
        regain_ms: regain,
        failed_after_restore,
        vip_moves,
        timeline,
    })
}

/// Holder samples in which some node holds the VIP that did not in the sample before.
pub fn vip_moves(samples: &[HolderSample]) -> usize {
    samples
        .windows(2)
        .filter(|w| w[1].mask & !w[0].mask != 0)
        .count()
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile.
fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// Groups runs by (agent, timers, scenario).
pub fn summarize(results: &[RunResult]) -> Vec<SummaryRow> {
    let mut rows: Vec<SummaryRow> = Vec::new();
    let mut keys: Vec<(Implementation, Timers, Scenario)> = Vec::new();
    for r in results {
        let k = (r.implementation, r.timers, r.scenario);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (implementation, timers, scenario) in keys {
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| {
                (r.implementation, r.timers, r.scenario) == (implementation, timers, scenario)
            })
            .collect();
        let f = |g: fn(&RunResult) -> f64| runs.iter().map(|r| g(r)).collect::<Vec<f64>>();
        let outages = f(|r| r.outage_ms);
        let two = f(|r| r.two_holders_ms);
        rows.push(SummaryRow {
            implementation,
            timers,
            scenario,
            runs: runs.len(),
            outage_median_ms: median(&outages),
            outage_p95_ms: percentile(&outages, 95.0),
            runs_without_failover: runs.iter().filter(|r| !r.failed_over).count(),
            takeover_median_ms: median(
                &runs
                    .iter()
                    .filter_map(|r| r.takeover_ms)
                    .collect::<Vec<f64>>(),
            ),
            failback_median_ms: median(&f(|r| r.failback_outage_ms)),
            failed_requests_median: median(&f(|r| r.failed_requests as f64)),
            two_holders_median_ms: median(&two),
            two_holders_max_ms: two.iter().copied().fold(0.0, f64::max),
        });
    }
    rows
}

fn fmt_ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.0}")
    }
}

/// The results as Markdown tables: outages per scenario (haagent beside keepalived, with
/// the ratio of the medians), then idle resource use.
pub fn render_table(report: &BenchReport) -> String {
    let mut out = String::new();
    let find = |i: Implementation, t: Timers, s: Scenario| {
        report
            .summary
            .iter()
            .find(|r| r.implementation == i && r.timers == t && r.scenario == s)
    };
    if !report.summary.is_empty() {
        out.push_str(
        "| timers | scenario | haagent outage ms median / p95 | keepalived outage ms median / p95 | ratio h/k | takeover ms h / k | failed requests h / k | two holders ms h / k | failback outage ms h / k |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
        for &(timers, _) in &report.windows_ms {
            for scenario in Scenario::ALL {
                let h = find(Implementation::Haagent, timers, scenario);
                let k = find(Implementation::Keepalived, timers, scenario);
                if h.is_none() && k.is_none() {
                    continue;
                }
                let outage = |r: Option<&SummaryRow>| match r {
                    None => "–".to_string(),
                    Some(r) => {
                        let mut s = format!(
                            "{} / {}",
                            fmt_ms(r.outage_median_ms),
                            fmt_ms(r.outage_p95_ms)
                        );
                        if r.runs_without_failover > 0 {
                            s.push_str(&format!(
                                " (no failover in {}/{} runs)",
                                r.runs_without_failover, r.runs
                            ));
                        }
                        s
                    }
                };
                let ratio = match (h, k) {
                    (Some(h), Some(k)) if k.outage_median_ms > 0.0 => {
                        let r = h.outage_median_ms / k.outage_median_ms;
                        if r > 0.0 && r < 0.1 {
                            format!("{r:.2} ({:.0}× faster)", 1.0 / r)
                        } else if r > 0.0 && r < 1.0 {
                            format!("{r:.2} ({:.1}× faster)", 1.0 / r)
                        } else {
                            format!("{r:.2}")
                        }
                    }
                    _ => "–".into(),
                };
                let pair = |g: fn(&SummaryRow) -> f64| {
                    format!(
                        "{} / {}",
                        h.map(|r| fmt_ms(g(r))).unwrap_or("–".into()),
                        k.map(|r| fmt_ms(g(r))).unwrap_or("–".into())
                    )
                };
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    timers.name(),
                    scenario.describe(),
                    outage(h),
                    outage(k),
                    ratio,
                    pair(|r| r.takeover_median_ms),
                    pair(|r| r.failed_requests_median),
                    pair(|r| r.two_holders_median_ms),
                    pair(|r| r.failback_median_ms),
                ));
            }
        }
    }
    if !report.idle.is_empty() {
        out.push_str(
            "\n| agent | timers | idle window s | processes per node | RSS MiB (max node) | CPU % of a core (max node) | CPU % per node |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for row in &report.idle {
            let rss = row.nodes.iter().map(|n| n.rss_kib).max().unwrap_or(0);
            let cpu = row.nodes.iter().map(|n| n.cpu_percent).fold(0.0, f64::max);
            let per: Vec<String> = row
                .nodes
                .iter()
                .map(|n| format!("{} {:.2}", n.node, n.cpu_percent))
                .collect();
            out.push_str(&format!(
                "| {} | {} | {:.0} | {} | {:.1} | {:.2} | {} |\n",
                row.implementation.name(),
                row.timers.name(),
                row.seconds,
                row.nodes.first().map(|n| n.processes).unwrap_or(0),
                rss as f64 / 1024.0,
                cpu,
                per.join(", ")
            ));
        }
    }
    out.push_str(&render_issue12(report));
    if !report.skipped.is_empty() {
        out.push_str("\nNot run:\n");
        for e in &report.skipped {
            out.push_str(&format!("- {e}\n"));
        }
    }
    if !report.errors.is_empty() {
        out.push_str("\nRuns that could not be completed:\n");
        for e in &report.errors {
            out.push_str(&format!("- {}\n", e.lines().next().unwrap_or("")));
        }
    }
    out
}

fn max_node(nodes: &[IdleUsage], g: fn(&IdleUsage) -> f64) -> f64 {
    nodes.iter().map(g).fold(0.0, f64::max)
}

/// The tables of issue 12: idle cost at matched intervals, cold starts, failback and the
/// saturated host (each only when it was measured).
pub fn render_issue12(report: &BenchReport) -> String {
    let mut out = String::new();
    if !report.idle_matrix.is_empty() {
        out.push_str(
            "\n| advert interval | checks | haagent CPU % (max node) | keepalived CPU % (max node) | ratio h/k | wake-ups/s h / k (max node) | RSS MiB h / k (max node) |\n\
             |---|---|---|---|---|---|---|\n",
        );
        let mut keys: Vec<(u32, Checks)> = Vec::new();
        for r in &report.idle_matrix {
            if !keys.contains(&(r.advert_ms, r.checks)) {
                keys.push((r.advert_ms, r.checks));
            }
        }
        for (advert_ms, checks) in keys {
            let find = |i: Implementation| {
                report.idle_matrix.iter().find(|r| {
                    r.implementation == i && r.advert_ms == advert_ms && r.checks == checks
                })
            };
            let (h, k) = (
                find(Implementation::Haagent),
                find(Implementation::Keepalived),
            );
            let cpu = |r: Option<&IdleMatrixRow>| r.map(|r| max_node(&r.nodes, |n| n.cpu_percent));
            let cell = |v: Option<f64>, digits: usize| {
                v.map(|v| format!("{v:.digits$}"))
                    .unwrap_or_else(|| "–".into())
            };
            let ratio = match (cpu(h), cpu(k)) {
                (Some(h), Some(k)) if k > 0.0 => format!("{:.1}×", h / k),
                _ => "–".into(),
            };
            let wake =
                |r: Option<&IdleMatrixRow>| r.map(|r| max_node(&r.nodes, |n| n.wakeups_per_s));
            let rss = |r: Option<&IdleMatrixRow>| {
                r.map(|r| max_node(&r.nodes, |n| n.rss_kib as f64) / 1024.0)
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} / {} | {} / {} |\n",
                if advert_ms >= 1000 {
                    format!("{} s", f64::from(advert_ms) / 1000.0)
                } else {
                    format!("{advert_ms} ms")
                },
                checks.name(),
                cell(cpu(h), 3),
                cell(cpu(k), 3),
                ratio,
                cell(wake(h), 0),
                cell(wake(k), 0),
                cell(rss(h), 1),
                cell(rss(k), 1),
            ));
        }
    }
    if !report.startup.is_empty() {
        out.push_str(
            "\n| agent | timers | cold starts | exactly one transition to master | only n1 ever held the VIP | transitions to master min / median / max | first holder ms median / max |\n\
             |---|---|---|---|---|---|---|\n",
        );
        let mut keys: Vec<(Implementation, Timers)> = Vec::new();
        for r in &report.startup {
            if !keys.contains(&(r.implementation, r.timers)) {
                keys.push((r.implementation, r.timers));
            }
        }
        for (i, t) in keys {
            let runs: Vec<&StartupRun> = report
                .startup
                .iter()
                .filter(|r| r.implementation == i && r.timers == t)
                .collect();
            let tr: Vec<f64> = runs.iter().map(|r| r.master_transitions as f64).collect();
            let first: Vec<f64> = runs.iter().filter_map(|r| r.first_holder_ms).collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} of {} | {} of {} | {} / {} / {} | {} / {} |\n",
                i.name(),
                t.name(),
                runs.len(),
                runs.iter().filter(|r| r.master_transitions == 1).count(),
                runs.len(),
                runs.iter().filter(|r| r.only_top_held).count(),
                runs.len(),
                fmt_ms(tr.iter().copied().fold(f64::INFINITY, f64::min)),
                fmt_ms(median(&tr)),
                fmt_ms(tr.iter().copied().fold(0.0, f64::max)),
                fmt_ms(median(&first)),
                fmt_ms(first.iter().copied().fold(f64::NAN, f64::max)),
            ));
        }
    }
    let rows_of = |scenario: Scenario| -> Vec<(Implementation, Timers, Vec<&RunResult>)> {
        let mut keys: Vec<(Implementation, Timers)> = Vec::new();
        for r in report.results.iter().filter(|r| r.scenario == scenario) {
            if !keys.contains(&(r.implementation, r.timers)) {
                keys.push((r.implementation, r.timers));
            }
        }
        keys.into_iter()
            .map(|(i, t)| {
                let runs = report
                    .results
                    .iter()
                    .filter(|r| r.scenario == scenario && r.implementation == i && r.timers == t)
                    .collect();
                (i, t, runs)
            })
            .collect()
    };
    let failback = rows_of(Scenario::Failback);
    if !failback.is_empty() {
        out.push_str(
            "\n| agent | timers | runs | restart → n1 holds the VIP again, ms median / p95 | failed requests after the restart, median / max | two holders ms, median / max |\n\
             |---|---|---|---|---|---|\n",
        );
        for (i, t, runs) in failback {
            let regain: Vec<f64> = runs.iter().filter_map(|r| r.regain_ms).collect();
            let failed: Vec<f64> = runs.iter().map(|r| r.failed_after_restore as f64).collect();
            let two: Vec<f64> = runs.iter().map(|r| r.two_holders_ms).collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} / {} | {} / {} | {} / {} |\n",
                i.name(),
                t.name(),
                runs.len(),
                fmt_ms(median(&regain)),
                fmt_ms(percentile(&regain, 95.0)),
                fmt_ms(median(&failed)),
                fmt_ms(failed.iter().copied().fold(0.0, f64::max)),
                fmt_ms(median(&two)),
                fmt_ms(two.iter().copied().fold(0.0, f64::max)),
            ));
        }
    }
    let saturated = rows_of(Scenario::Saturated);
    if !saturated.is_empty() {
        out.push_str(
            "\n| agent | timers | window s | spurious VIP moves | two holders ms | failed requests | longest outage ms |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for (i, t, runs) in saturated {
            for r in runs {
                let window = r
                    .timeline
                    .marks
                    .first()
                    .zip(r.timeline.marks.get(1))
                    .map(|(a, b)| (b.0 - a.0) / 1000.0)
                    .unwrap_or(f64::NAN);
                out.push_str(&format!(
                    "| {} | {} | {:.0} | {} | {} | {} | {} |\n",
                    i.name(),
                    t.name(),
                    window,
                    r.vip_moves,
                    fmt_ms(r.two_holders_ms),
                    r.failed_requests,
                    fmt_ms(r.outage_ms),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_transitions_are_counted_from_either_agents_log() {
        let haagent = "2026-12-03T00:00:00Z  INFO haagent: \u{1b}[3mgroup\u{1b}[0m=vip \u{1b}[3mfrom\u{1b}[0m=backup \u{1b}[3mto\u{1b}[0m=master claimed\n\
                       x from=master to=backup preempted\nx to=master again\n";
        assert_eq!(master_transitions(haagent, Implementation::Haagent), 2);
        let keepalived =
            "Thu Dec  3 (VI_1) Entering BACKUP STATE (init)\n(VI_1) Entering MASTER STATE\n";
        assert_eq!(
            master_transitions(keepalived, Implementation::Keepalived),
            1
        );
    }

    #[test]
    fn a_node_that_starts_holding_is_one_vip_move() {
        let t = Instant::now();
        let s = |ms: u64, mask: u32| HolderSample {
            at: t + Duration::from_millis(ms),
            mask,
        };
        // n1 alone, n1+n2 (a move), n2 alone (no new holder), n1 back (a move).
        let samples = [s(0, 1), s(10, 1), s(20, 3), s(30, 2), s(40, 1)];
        assert_eq!(vip_moves(&samples), 2);
        assert_eq!(vip_moves(&samples[..2]), 0);
    }
}
