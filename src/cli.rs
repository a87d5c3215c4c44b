//! Command line: the agent itself (`haagent [flags]`), `check-config`, `certs`, `import`
//! and the control commands.
//!
//! Flags are only another source of configuration: they are mapped onto
//! [`config::Overrides`] and validated by the same code as the file.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, Overrides};
use crate::control::{self, Request, Response};
use crate::{certs, daemon};

mod generate;

/// The exit codes of every command (in `--help` and the man pages).
pub const EXIT_STATUS: &str = "\
Exit status:
  0  success (the agent: stopped cleanly; a control command: the agent said yes)
  1  failure: invalid configuration or certificates, the agent could not start, a control
     command refused or its socket unreachable, `doctor` found a problem
  2  usage error (unknown flag or subcommand, bad argument)";

/// Default lifetime of a cluster CA, in days.
const DEFAULT_CA_DAYS: u32 = 3650;
/// Default lifetime of a node certificate, in days.
const DEFAULT_NODE_DAYS: u32 = 825;

/// haagent: unicast-only, split-brain-resistant failover for a virtual IP.
#[derive(Debug, Parser)]
#[command(
    name = "haagent",
    version,
    args_conflicts_with_subcommands = true,
    after_long_help = EXIT_STATUS
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    agent: AgentArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the resolved configuration, or every error in it (exit 1).
    CheckConfig(Box<AgentArgs>),
    /// Create the cluster CA and node certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Show the running agent's state, peers, checks and recent transitions.
    Status {
        /// Print the documented JSON form (docs/status.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Planned switchover: the target takes the VIPs before this master lets them go.
    ///
    /// Without --group, every group this node is master of is handed over.
    Handover {
        /// The node to hand over to [default: the best live backup].
        #[arg(long)]
        to: Option<String>,
        /// Hand over only this VIP group (`[[group]] name`) [default: every group this node
        /// is master of].
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Maintenance mode: give up the VIPs and do not take them while on.
    ///
    /// Without --group, node-wide: every group.
    Maintenance {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        mode: String,
        /// Only this VIP group (`[[group]] name`) [default: node-wide, every group].
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Re-read the configuration and certificates (like SIGHUP).
    Reload {
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Preflight: check the config, interface, capabilities, port, certificates, peers,
    /// gateway, sysctls and health check targets; one line each, ✔ or ✘ with a fix.
    #[command(after_long_help = crate::doctor::EXIT_STATUS)]
    Doctor {
        #[command(flatten)]
        args: Box<AgentArgs>,
        /// One JSON object: `ok` and every check with `name`, `ok`, `detail`, `fix`.
        #[arg(long)]
        json: bool,
    },
    /// Translate another tool's configuration into a haagent config.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Write the man pages and shell completions into OUT (used to build the package).
    #[command(hide = true)]
    Generate {
        /// Output directory: OUT/man/*.1 and OUT/completions/{haagent.bash,_haagent,haagent.fish}.
        #[arg(long, value_name = "OUT")]
        out: PathBuf,
    },
}

/// Where the running agent listens: `--socket`, else the config file's `[control] socket`.
#[derive(Debug, Args, Clone)]
struct SocketArg {
    /// The agent's control socket [default: `[control] socket` of the config file, else
    /// /run/haagent/haagent.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Read the socket path from this config file [default: /etc/haagent/haagent.toml if
    /// it exists].
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

impl SocketArg {
    /// The socket to talk to; an unreadable or invalid config file is an error (exit 1).
    fn path(&self) -> Result<PathBuf, String> {
        if let Some(socket) = &self.socket {
            return Ok(socket.clone());
        }
        let file = match &self.config {
            Some(file) => file.clone(),
            None if std::path::Path::new(config::DEFAULT_CONFIG_PATH).exists() => {
                PathBuf::from(config::DEFAULT_CONFIG_PATH)
            }
            None => return Ok(PathBuf::from(config::DEFAULT_CONTROL_SOCKET)),
        };
        config::load(Some(&file), &Overrides::default())
            .map(|c| c.control_socket)
            .map_err(|errors| {
                format!(
                    "cannot read the control socket from {} (or give --socket):\n{errors}",
                    file.display()
                )
            })
    }
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Translate a keepalived.conf: the haagent config on stdout (or --out), and on stderr
    /// (or --report) one line per keepalived keyword: mapped, approximated or not supported.
    ///
    /// Exit status with --check: 1 when anything could not be mapped or the peers are
    /// unknown (a multicast-only config without --peer); without --check: 0 once the file
    /// was read. The keyword table: docs/keepalived.md.
    Keepalived {
        /// The keepalived config [default: /etc/keepalived/keepalived.conf].
        file: Option<PathBuf>,
        /// A peer's address, ADDR[:PORT] (repeatable; replaces the `unicast_peer`s).
        /// Required for a multicast-only config.
        #[arg(long = "peer", value_name = "ADDR")]
        peers: Vec<String>,
        /// This node's name [default: `router_id`, else the host name].
        #[arg(long)]
        name: Option<String>,
        /// Write the config to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write the report to FILE instead of stderr.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Exit 1 when anything could not be mapped (or the peers are missing).
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Create DIR/ca.pem and DIR/ca-key.pem.
    Init {
        /// Directory for the CA files (created 0700 if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Cluster name, written into the CA's subject.
        #[arg(long, default_value = "haagent")]
        cluster: String,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_CA_DAYS)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Create DIR/NAME.pem and DIR/NAME-key.pem, signed by the CA in DIR.
    Issue {
        /// Directory holding ca.pem and ca-key.pem.
        #[arg(long)]
        dir: PathBuf,
        /// Node name (also a DNS SAN).
        #[arg(long)]
        name: String,
        /// The node's IP address(es), written as IP SANs.
        #[arg(long = "ip", required = true)]
        ips: Vec<IpAddr>,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_NODE_DAYS)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Replace DIR/NAME.pem and DIR/NAME-key.pem with a new key and certificate from the CA
    /// in DIR, keeping the IP addresses; `haagent reload` then uses it without a restart.
    Renew {
        /// Directory holding ca.pem, ca-key.pem and NAME.pem.
        #[arg(long)]
        dir: PathBuf,
        /// Node name of the certificate to renew.
        #[arg(long)]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_NODE_DAYS)]
        days: u32,
    },
    /// Print a certificate's subject, SANs, serial, issuer and expiry.
    Show {
        /// The PEM file.
        file: PathBuf,
    },
}

/// Flags of the agent and of `check-config`.
#[derive(Debug, Args, Clone, Default)]
struct AgentArgs {
    /// Config file [default: /etc/haagent/haagent.toml if it exists, else quick mode from flags].
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Interface that carries the VIP.
    #[arg(long, value_name = "IFACE")]
    interface: Option<String>,
    /// Virtual IP as address/prefix, IPv4 or IPv6 (repeatable; replaces the file's list).
    #[arg(long = "vip", value_name = "CIDR")]
    vips: Vec<String>,
    /// Peer as ADDR[:PORT] (repeatable; replaces the file's list).
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<String>,
    /// Priority 1-254 (higher wins).
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i64>,
    /// Node name [default: the host name].
    #[arg(long)]
    name: Option<String>,
    /// Directory with ca.pem, NAME.pem and NAME-key.pem.
    #[arg(long, value_name = "DIR")]
    certs: Option<PathBuf>,
    /// Listen address[:port] for peer traffic (UDP, QUIC); default 0.0.0.0:5798, or [::]:5798
    /// when the peers are IPv6.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Advert interval in milliseconds (min 10).
    #[arg(long, value_name = "MS")]
    advert_interval_ms: Option<u64>,
    /// Cluster name (must match on every node).
    #[arg(long)]
    cluster: Option<String>,
    /// Do not take the VIP from a working lower-priority master.
    #[arg(long)]
    nopreempt: bool,
    /// Gateway witness: `auto` (the default route's gateway) or an IPv4 or IPv6 address.
    #[arg(long, value_name = "auto|IP")]
    gateway: Option<String>,
    /// Quorum: `majority` (default with 3 or more nodes) or `off`.
    #[arg(long, value_name = "majority|off")]
    quorum: Option<String>,
    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// HTTP health check (repeatable): failing puts this node in fault.
    #[arg(long = "check-http", value_name = "URL")]
    check_http: Vec<String>,
    /// Serve Prometheus metrics on ADDR[:PORT].
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Control socket path [default: /run/haagent/haagent.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace (RUST_LOG, when set, takes precedence).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

impl AgentArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            cluster: self.cluster.clone(),
            name: self.name.clone(),
            priority: self.priority,
            interface: self.interface.clone(),
            vips: self.vips.clone(),
            peers: self.peers.clone(),
            certs_dir: self.certs.clone(),
            listen: self.listen.clone(),
            advert_interval_ms: self.advert_interval_ms,
            nopreempt: self.nopreempt,
            gateway: self.gateway.clone(),
            quorum: self.quorum.clone(),
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            check_http: self.check_http.clone(),
            metrics_listen: self.metrics_listen.clone(),
            socket: self.socket.clone(),
        }
    }

    fn load(&self) -> Result<Config, config::ConfigErrors> {
        config::load(self.config.as_deref(), &self.overrides())
    }
}

/// Parses the command line and runs what it asks for.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig(args)) => check_config(&args),
        Some(Command::Certs(cmd)) => run_certs(cmd),
        Some(Command::Status { json, socket }) => with_socket(&socket, |s| status(s, json)),
        Some(Command::Handover { to, group, socket }) => {
            with_socket(&socket, |s| handover(s, to, group))
        }
        Some(Command::Maintenance {
            mode,
            group,
            socket,
        }) => with_socket(&socket, |s| {
            ask(
                s,
                &Request::Maintenance {
                    on: mode == "on",
                    group,
                },
            )
        }),
        Some(Command::Reload { socket }) => with_socket(&socket, |s| ask(s, &Request::Reload {})),
        Some(Command::Doctor { args, json }) => doctor(&args, json),
        Some(Command::Import(cmd)) => run_import(cmd),
        Some(Command::Generate { out }) => generate::write_all(&out),
        None => run_agent(&cli.agent),
    }
}

/// Runs a control command against the socket `arg` names; exit 1 when it cannot be found.
fn with_socket(arg: &SocketArg, run: impl FnOnce(&std::path::Path) -> ExitCode) -> ExitCode {
    match arg.path() {
        Ok(path) => run(&path),
        Err(e) => {
            eprintln!("haagent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(args: &AgentArgs) -> ExitCode {
    match args.load() {
        Ok(config) => {
            for note in &config.notes {
                eprintln!("{note}");
            }
            println!("# resolved from {}", config.source);
            print!("{}", config.to_toml_string());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn run_certs(cmd: CertsCommand) -> ExitCode {
    let result = match cmd {
        CertsCommand::Init {
            dir,
            cluster,
            days,
            force,
        } => certs::init_ca(&dir, &cluster, days, force).map(|w| {
            println!("wrote {} and {}", w.cert.display(), w.key.display());
        }),
        CertsCommand::Issue {
            dir,
            name,
            ips,
            days,
            force,
        } => certs::issue(&dir, &name, &ips, days, force).map(|w| {
            println!("wrote {} and {}", w.cert.display(), w.key.display());
        }),
        CertsCommand::Renew { dir, name, days } => certs::renew(&dir, &name, days).map(|w| {
            println!(
                "wrote {} and {}; `haagent reload` puts them to use",
                w.cert.display(),
                w.key.display()
            );
        }),
        CertsCommand::Show { file } => certs::show(&file).map(|text| print!("{text}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("haagent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_import(cmd: ImportCommand) -> ExitCode {
    let ImportCommand::Keepalived {
        file,
        peers,
        name,
        out,
        report,
        check,
    } = cmd;
    let file = file.unwrap_or_else(|| PathBuf::from(crate::import::DEFAULT_KEEPALIVED_CONF));
    let opts = crate::import::Options { peers, name };
    if let Err(e) = opts.validate() {
        eprintln!("haagent: {e}");
        return ExitCode::from(2);
    }
    let import = match crate::import::keepalived_file(&file, &opts) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("haagent: cannot read the keepalived config: {e}");
            return ExitCode::FAILURE;
        }
    };
    let write = |target: &Option<PathBuf>, text: &str, stdout: bool| -> Result<(), String> {
        match target {
            Some(path) => {
                std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
            }
            None if stdout => {
                print!("{text}");
                Ok(())
            }
            None => {
                eprint!("{text}");
                Ok(())
            }
        }
    };
    let mut summary = import.report.to_string();
    let unsupported = import.report.unsupported();
    summary.push_str(&if unsupported == 0 {
        "import: complete: every keyword mapped or approximated\n".to_string()
    } else {
        format!("import: {unsupported} line(s) not supported: the config lacks them\n")
    });
    if let Err(e) = write(&out, &import.toml, true).and_then(|()| write(&report, &summary, false)) {
        eprintln!("haagent: {e}");
        return ExitCode::FAILURE;
    }
    if check && !import.complete() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run_agent(args: &AgentArgs) -> ExitCode {
    let config = match args.load() {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let set_log_level = match crate::logging::init(config.log.format, &config.log.level) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("haagent: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = daemon::RunOptions {
        config_file: args.config.clone(),
        overrides: args.overrides(),
        set_log_level: Some(set_log_level),
    };
    // One thread is plenty for a handful of peers and keeps the idle footprint small.
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(daemon::run(config, options, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Logging is set up by now: one line, in the configured format.
            tracing::error!("cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends one request and prints the answer; exit 1 when refused or unreachable.
fn ask(socket: &std::path::Path, request: &Request) -> ExitCode {
    match control::request(socket, request) {
        Ok(Response {
            ok: true, message, ..
        }) => {
            if let Some(m) = message {
                println!("{m}");
            }
            ExitCode::SUCCESS
        }
        Ok(Response { message, .. }) => {
            eprintln!("haagent: {}", message.unwrap_or_else(|| "refused".into()));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("haagent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(socket: &std::path::Path, json: bool) -> ExitCode {
    let status = match control::request(socket, &Request::Status {}) {
        Ok(Response {
            ok: true,
            status: Some(s),
            ..
        }) => s,
        Ok(Response { message, .. }) => {
            eprintln!("haagent: {}", message.unwrap_or_else(|| "no status".into()));
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("haagent: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        if let Err(code) = print_json(&status) {
            return code;
        }
    } else {
        print!("{}", crate::control::render_status(&status));
    }
    ExitCode::SUCCESS
}

/// `haagent doctor`: every check, printed as lines or `--json`; exit 0 only when all pass.
fn doctor(args: &AgentArgs, json: bool) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let report = runtime.block_on(crate::doctor::run(&args.load()));
    if json {
        if let Err(code) = print_json(&report) {
            return code;
        }
    } else {
        print!("{}", report.lines());
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A single-threaded tokio runtime, or exit 1 with the reason.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("haagent: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Prints `value` as pretty JSON, or exit 1 with the reason.
fn print_json(value: &impl serde::Serialize) -> Result<(), ExitCode> {
    let text = serde_json::to_string_pretty(value).map_err(|e| {
        eprintln!("haagent: {e}");
        ExitCode::FAILURE
    })?;
    println!("{text}");
    Ok(())
}

/// How long `haagent handover` follows the status before it gives up (exit 1).
const HANDOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Asks for the handover, then follows the status until every target is master of its
/// group.
fn handover(socket: &std::path::Path, to: Option<String>, group: Option<String>) -> ExitCode {
    let started = std::time::Instant::now();
    let answer = control::request(
        socket,
        &Request::Handover {
            to,
            group: group.clone(),
        },
    );
    let answer = match answer {
        Ok(r) => r,
        Err(e) => {
            eprintln!("haagent: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut pending = handover_targets(&answer, group.as_deref());
    let message = answer.message.unwrap_or_default();
    if !answer.ok || pending.is_empty() {
        let why = if message.is_empty() {
            "refused"
        } else {
            &message
        };
        eprintln!("haagent: {why}");
        return ExitCode::FAILURE;
    }
    println!("{message}");
    while started.elapsed() < HANDOVER_WAIT {
        if let Ok(Response {
            status: Some(s), ..
        }) = control::request(socket, &Request::Status {})
        {
            pending.retain(
                |(group, target)| match handed_over(&s, group.as_deref(), target) {
                    Some(epoch) => {
                        let of = group
                            .as_deref()
                            .filter(|_| s.groups.len() > 1)
                            .map(|g| format!(" of {g}"))
                            .unwrap_or_default();
                        println!(
                            "{target} is master{of} (epoch {epoch}), after {} ms",
                            started.elapsed().as_millis()
                        );
                        false
                    }
                    None => true,
                },
            );
            if pending.is_empty() {
                return ExitCode::SUCCESS;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for (group, target) in pending {
        let of = group.map(|g| format!(" {g}")).unwrap_or_default();
        eprintln!("haagent: {target} did not take over{of} within 5 s; see `haagent status`");
    }
    ExitCode::FAILURE
}

/// The (group, target) pairs a handover answer started: its `handovers`, else (an agent
/// older than groups) its `handover_to` for the group asked for, or none named.
fn handover_targets(r: &Response, group: Option<&str>) -> Vec<(Option<String>, String)> {
    if r.handovers.is_empty() {
        r.handover_to
            .iter()
            .map(|t| (group.map(str::to_owned), t.clone()))
            .collect()
    } else {
        r.handovers
            .iter()
            .map(|h| (Some(h.group.clone()), h.to.clone()))
            .collect()
    }
}

/// The epoch at which `target` is master of `group` and this node is not, or `None` while
/// it is not (yet). A group the status does not list (an agent older than groups), or no
/// group, is judged by the top-level fields.
fn handed_over(s: &control::Status, group: Option<&str>, target: &str) -> Option<u64> {
    use crate::wire::State;
    let (state, master, epoch) = match group.and_then(|g| s.groups.iter().find(|x| x.name == g)) {
        Some(g) => (g.state, g.master.as_deref(), g.epoch),
        None => (s.state, s.master.as_deref(), s.epoch),
    };
    (state != State::Master && master == Some(target)).then_some(epoch)
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot install signal handlers; stop with SIGKILL only");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: handing over and stopping"),
        _ = int.recv() => tracing::info!("SIGINT: handing over and stopping"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command that an error message or hint tells the operator to run exists, with
    /// the arguments it needs (the hints once said `haagent cert issue`, which does not).
    #[test]
    fn commands_named_in_hints_parse() {
        let hinted = [
            (crate::certs::INIT_COMMAND, &["--dir", "certs"][..]),
            (
                crate::certs::ISSUE_COMMAND,
                &["--dir", "certs", "--name", "n1", "--ip", "192.0.2.1"][..],
            ),
            (crate::certs::SHOW_COMMAND, &["certs/n1.pem"][..]),
            ("haagent reload", &[][..]),
            ("haagent status", &[][..]),
        ];
        for (command, args) in hinted {
            let argv: Vec<&str> = command.split(' ').chain(args.iter().copied()).collect();
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("`{}` does not parse: {e}", argv.join(" "));
            }
        }
        // And the old spelling really was wrong.
        assert!(Cli::try_parse_from(["haagent", "cert", "issue"]).is_err());
    }

    #[test]
    fn handover_and_maintenance_take_a_group() {
        let cli =
            Cli::try_parse_from(["haagent", "handover", "--group", "web-a", "--to", "n2"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Handover { to: Some(ref t), group: Some(ref g), .. })
                if t == "n2" && g == "web-a"
        ));
        let cli = Cli::try_parse_from(["haagent", "handover"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Handover {
                to: None,
                group: None,
                ..
            })
        ));
        let cli =
            Cli::try_parse_from(["haagent", "maintenance", "on", "--group", "web-b"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Maintenance { ref mode, group: Some(ref g), .. })
                if mode == "on" && g == "web-b"
        ));
        assert!(Cli::try_parse_from(["haagent", "maintenance", "on", "--group"]).is_err());
    }

    #[test]
    fn a_handover_answer_names_what_to_follow() {
        let old_agent = Response {
            handover_to: Some("n2".into()),
            ..Response::done("handing over")
        };
        assert_eq!(
            handover_targets(&old_agent, Some("web-a")),
            [(Some("web-a".to_string()), "n2".to_string())]
        );
        assert_eq!(
            handover_targets(&old_agent, None),
            [(None, "n2".to_string())]
        );
        let new_agent = Response {
            handovers: vec![
                control::GroupHandover {
                    group: "web-a".into(),
                    to: "n2".into(),
                },
                control::GroupHandover {
                    group: "web-c".into(),
                    to: "n3".into(),
                },
            ],
            ..old_agent
        };
        assert_eq!(
            handover_targets(&new_agent, None),
            [
                (Some("web-a".to_string()), "n2".to_string()),
                (Some("web-c".to_string()), "n3".to_string())
            ]
        );
        assert!(handover_targets(&Response::done("nothing"), None).is_empty());
    }

    /// A handover is done when the target is master of the group and this node is not.
    #[test]
    fn a_handover_is_judged_by_its_group() {
        // n1: master of web-a, backup of web-b under n2.
        let s = control::documented_example();
        assert_eq!(handed_over(&s, Some("web-b"), "n2"), Some(2));
        assert_eq!(handed_over(&s, Some("web-a"), "n2"), None);
        assert_eq!(handed_over(&s, Some("web-b"), "n3"), None);
        // No group, or one the status does not list: the top level (web-a here).
        assert_eq!(handed_over(&s, None, "n2"), None);
        let mut moved = s.clone();
        moved.state = crate::wire::State::Backup;
        moved.master = Some("n2".into());
        moved.epoch = 4;
        assert_eq!(handed_over(&moved, None, "n2"), Some(4));
        assert_eq!(handed_over(&moved, Some("web-z"), "n2"), Some(4));
    }
}
