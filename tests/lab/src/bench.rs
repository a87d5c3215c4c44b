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

use std::time::{Duration, Instant};

use super::interrupt;
use super::probe::{HolderSample, ProbeSample, SAMPLE_INTERVAL};
use super::testbed::{IdleUsage, Implementation, Testbed, TestbedOptions, Timers, NODES};
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
}

impl Scenario {
    /// Every scenario, in table order.
    pub const ALL: [Scenario; 6] = [
        Self::LinkDown,
        Self::AgentKill,
        Self::ServerStop,
        Self::GracefulStop,
        Self::PeerBlock,
        Self::Isolate,
    ];

    /// Short name (command line, JSON).
    pub fn name(self) -> &'static str {
        match self {
            Self::LinkDown => "link-down",
            Self::AgentKill => "agent-kill",
            Self::ServerStop => "server-stop",
            Self::GracefulStop => "graceful-stop",
            Self::PeerBlock => "peer-block",
            Self::Isolate => "isolate",
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
            Self::ServerStop => {
                tb.stop_server(0);
                Ok(())
            }
            Self::GracefulStop => tb.stop_agent(0),
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
            Self::AgentKill | Self::GracefulStop => tb.start_agent(0),
            Self::ServerStop => tb.start_server(0),
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
}

fn window_for(opts: &BenchOptions, timers: Timers) -> Duration {
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
            .map(|t| (*t, ms(window_for(opts, *t))))
            .collect(),
        idle: Vec::new(),
        summary: Vec::new(),
        results: Vec::new(),
        errors: Vec::new(),
    };
    for &timers in &opts.timers {
        for &implementation in &opts.implementations {
            let mut tb_opts = opts.testbed.clone();
            tb_opts.implementation = implementation;
            tb_opts.timers = timers;
            let tag = format!("{} {}", implementation.name(), timers.name());
            let mut tb = start_testbed(&tb_opts)?;
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
            for &scenario in &opts.scenarios {
                for run in 1..=opts.runs {
                    interrupt::check()?;
                    match run_once(&mut tb, scenario, window_for(opts, timers)) {
                        Ok(mut r) => {
                            r.run = run;
                            eprintln!(
                                "[{tag}] {} run {run}/{}: outage {} ms{}, takeover {}, failback {} ms, failed {} of {}, two holders {} ms",
                                scenario.name(),
                                opts.runs,
                                r.outage_ms,
                                if r.failed_over { "" } else { " (no failover)" },
                                r.takeover_ms
                                    .map(|t| format!("{t} ms"))
                                    .unwrap_or_else(|| "none".into()),
                                r.failback_outage_ms,
                                r.failed_requests,
                                r.requests,
                                r.two_holders_ms
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
        }
    }
    report.summary = summarize(&report.results);
    Ok(report)
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
    tb.wait_converged(Duration::from_secs(30))?;
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
    })
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
    if !report.errors.is_empty() {
        out.push_str("\nRuns that could not be completed:\n");
        for e in &report.errors {
            out.push_str(&format!("- {}\n", e.lines().next().unwrap_or("")));
        }
    }
    out
}
