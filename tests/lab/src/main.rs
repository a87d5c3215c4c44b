//! `haagent-lab`: the one-command demo, the failover benchmark against keepalived, and the
//! built-in HTTP responder the lab runs when Nginx is not installed. The work is done in
//! the `haagent_lab` library beside it; this file only parses arguments and prints.
//!
//! With `HAAGENT_LAB_AS=haagent` in its environment it runs as the `haagent` agent itself,
//! so `cargo run --bin haagent-lab` never drives a stale agent binary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use haagent_lab::bench::{self, BenchOptions, Scenario};
use haagent_lab::testbed::{self, AgentBin, Implementation, TestbedOptions, Timers};
use haagent_lab::web::{self, ServerKind};
use haagent_lab::{interrupt, LabError};

/// Demo and benchmark lab for haagent (needs root: it builds network namespaces).
#[derive(Debug, Parser)]
#[command(name = "haagent-lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ServerArg {
    /// Nginx if installed, else the built-in responder.
    Auto,
    /// Nginx.
    Nginx,
    /// The built-in responder.
    Builtin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ImplArg {
    Haagent,
    Keepalived,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TimersArg {
    Default,
    Fast,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// HTTP server on the nodes.
    #[arg(long, value_enum, default_value = "auto")]
    server: ServerArg,
    /// The haagent binary to run [default: this program, which contains the agent].
    #[arg(long, value_name = "PATH")]
    agent_bin: Option<PathBuf>,
}

// Parsed once per run; boxing the bench options would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build a lab, run three agents, kill the master, show the outage, clean up.
    Demo {
        #[command(flatten)]
        common: Common,
    },
    /// Compare failover of haagent and keepalived under faults; prints a table.
    Bench {
        #[command(flatten)]
        common: Common,
        /// Agents to compare.
        #[arg(
            long = "impl",
            value_enum,
            value_delimiter = ',',
            default_value = "haagent,keepalived"
        )]
        implementations: Vec<ImplArg>,
        /// Timer settings: each agent's defaults, and/or matched fast timers (10 ms).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "default,fast"
        )]
        timers: Vec<TimersArg>,
        /// Scenarios to run [default: all].
        #[arg(long, value_enum, value_delimiter = ',')]
        scenarios: Vec<Scenario>,
        /// Runs per scenario (0: no fault scenarios, e.g. for the idle matrix alone).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// How long each fault is held, ms [default: 5000 at default timers, 2000 at fast].
        #[arg(long, value_name = "MS")]
        window_ms: Option<u64>,
        /// Idle RSS/CPU measurement per agent, seconds (0 to skip).
        #[arg(long, default_value_t = 30)]
        idle_secs: u64,
        /// How long the saturated-host scenario keeps every core busy, seconds.
        #[arg(long, default_value_t = 60)]
        saturate_secs: u64,
        /// Cold starts of the whole cluster per agent and timer setting (0: none).
        #[arg(long, default_value_t = 20)]
        startup_runs: usize,
        /// Idle window of each cell of the idle-cost matrix, seconds (0: no matrix).
        #[arg(long, default_value_t = 30)]
        idle_matrix_secs: u64,
        /// Advert intervals of the idle-cost matrix, ms.
        #[arg(long, value_delimiter = ',', default_value = "1000,50,10")]
        idle_matrix_intervals: Vec<u32>,
        /// Write a timeline picture (SVG) of the first run of every scenario into DIR.
        #[arg(long, value_name = "DIR")]
        svg_dir: Option<PathBuf>,
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Quick check: haagent only, default timers, one run per scenario, 1.5 s windows,
        /// 1 s idle, 3 s saturation, 2 cold starts, an idle matrix of 1 s at 50 ms only
        /// (overrides the options above).
        #[arg(long)]
        smoke: bool,
    },
    /// The built-in HTTP responder (the lab runs it inside a node's namespace).
    Serve {
        /// TCP port.
        #[arg(long, default_value_t = 80)]
        port: u16,
        /// Name to answer with.
        #[arg(long)]
        name: String,
    },
}

fn main() -> ExitCode {
    if std::env::var(testbed::AS_AGENT_ENV).as_deref() == Ok("haagent") {
        // SAFETY (edition 2021: safe fn): single-threaded at this point.
        std::env::remove_var(testbed::AS_AGENT_ENV);
        return haagent::cli::main();
    }
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve { port, name } => match web::serve(port, &name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("haagent-lab serve: port {port}: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Demo { common } => {
            if let Err(e) = testbed::check_prerequisites(false, false) {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
            let opts = match testbed_options(&common) {
                Ok(o) => o,
                Err(e) => return fail(e),
            };
            interrupt::install();
            let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
            match haagent_lab::demo::run(opts, interactive) {
                Ok(s) => {
                    println!(
                        "summary: master n1 killed -> {} took over; failover outage {} ms, failback outage {} ms; \
                         {} of {} client requests failed; two VIP holders for {} ms (the killed master's stale address)",
                        s.new_master,
                        s.failover.as_millis(),
                        s.failback.as_millis(),
                        s.failed_requests,
                        s.requests,
                        s.two_holders.as_millis()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Bench {
            common,
            implementations,
            timers,
            scenarios,
            runs,
            window_ms,
            idle_secs,
            json,
            smoke,
            saturate_secs,
            startup_runs,
            idle_matrix_secs,
            idle_matrix_intervals,
            svg_dir,
        } => {
            let testbed = match testbed_options(&common) {
                Ok(o) => o,
                Err(e) => return fail(e),
            };
            let mut opts = BenchOptions {
                implementations: implementations
                    .iter()
                    .map(|i| match i {
                        ImplArg::Haagent => Implementation::Haagent,
                        ImplArg::Keepalived => Implementation::Keepalived,
                    })
                    .collect(),
                timers: timers
                    .iter()
                    .map(|t| match t {
                        TimersArg::Default => Timers::Default,
                        TimersArg::Fast => Timers::Fast,
                    })
                    .collect(),
                scenarios: if runs == 0 {
                    Vec::new()
                } else if scenarios.is_empty() {
                    Scenario::ALL.to_vec()
                } else {
                    scenarios
                },
                runs,
                window: window_ms.map(Duration::from_millis),
                idle: Duration::from_secs(idle_secs),
                testbed,
                saturate: Duration::from_secs(saturate_secs),
                startup_runs,
                idle_matrix: Duration::from_secs(idle_matrix_secs),
                idle_matrix_intervals,
                svg_dir,
            };
            if smoke {
                opts.implementations = vec![Implementation::Haagent];
                opts.timers = vec![Timers::Default];
                opts.runs = 1;
                opts.window = Some(Duration::from_millis(1500));
                opts.idle = Duration::from_secs(1);
                opts.saturate = Duration::from_secs(3);
                opts.startup_runs = 2;
                opts.idle_matrix = Duration::from_secs(1);
                opts.idle_matrix_intervals = vec![50];
            }
            let with_keepalived = opts.implementations.contains(&Implementation::Keepalived);
            let with_nft = opts.scenarios.iter().any(|s| s.needs_nft());
            if let Err(e) = testbed::check_prerequisites(with_keepalived, with_nft) {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
            interrupt::install();
            let report = match bench::run(&opts) {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            println!("{}", bench::render_table(&report));
            if let Some(path) = json {
                let text = match serde_json::to_string_pretty(&report) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("haagent-lab: cannot encode the results: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                if let Err(e) = std::fs::write(&path, text + "\n") {
                    eprintln!("haagent-lab: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("results written to {}", path.display());
            }
            ExitCode::SUCCESS
        }
    }
}

fn fail(e: LabError) -> ExitCode {
    match e {
        LabError::Interrupted => {
            eprintln!("\ninterrupted: the lab has been cleaned up");
            ExitCode::from(130)
        }
        e => {
            eprintln!("haagent-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn testbed_options(common: &Common) -> Result<TestbedOptions, LabError> {
    let lab_exe = std::env::current_exe()
        .map_err(|e| LabError::Setup(format!("cannot find this program's own path: {e}")))?;
    let agent_bin = match &common.agent_bin {
        Some(p) => AgentBin::path(p.clone()),
        None => AgentBin::this_exe(&lab_exe),
    };
    let server = match common.server {
        ServerArg::Auto => ServerKind::detect(),
        ServerArg::Nginx => ServerKind::Nginx,
        ServerArg::Builtin => ServerKind::Builtin,
    };
    Ok(TestbedOptions {
        implementation: Implementation::Haagent,
        timers: Timers::Default,
        server,
        agent_bin,
        lab_exe,
        advert_ms: None,
        checks: testbed::Checks::Http,
    })
}
