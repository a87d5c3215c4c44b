//! A three-node VIP cluster on the lab segment, run by haagent or by keepalived, with an
//! HTTP server on every node, a gateway host and a client host, plus the probe and the
//! holder sampler. The demo and every benchmark scenario drive one of these.
//!
//! ```text
//!   n1 192.0.2.11   n2 .12   n3 .13   gw .1   client .50      VIP 192.0.2.100/24
//!        └────────────┴────────┴────────┴────────┘  bridge br0 (switch namespace)
//! ```
//!
//! Everything lives in a work directory under /run (root-owned, not world-writable, as
//! keepalived's `enable_script_security` requires for its check script) that is removed on
//! drop, after the processes and namespaces.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::probe::{HolderSampler, HttpProbe};
use super::proc::{self, Proc};
use super::web::{self, ServerKind};
use super::{interrupt, run, Lab, LabError, Netns};

/// The virtual IP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// The gateway host (it only answers ping).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The client host that runs the HTTP probe.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
/// Node names; node `i` has address 192.0.2.(11 + i).
pub const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// Priorities, with wide gaps (keepalived needs them at fast timers).
pub const PRIORITIES: [u8; 3] = [200, 150, 100];
/// The environment variable that makes `haagent-lab` run as the `haagent` agent.
pub const AS_AGENT_ENV: &str = "HAAGENT_LAB_AS";

/// Which failover agent runs the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Implementation {
    /// This project.
    Haagent,
    /// keepalived (Debian's package), VRRP in unicast mode.
    Keepalived,
}

impl Implementation {
    /// Name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Haagent => "haagent",
            Self::Keepalived => "keepalived",
        }
    }
}

/// The timer setting both agents run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Timers {
    /// Each agent's defaults: haagent 50 ms adverts, keepalived `advert_int 1` (VRRPv2).
    Default,
    /// Matched fast: haagent 10 ms adverts, keepalived VRRPv3 `advert_int 0.01`.
    Fast,
}

impl Timers {
    /// Name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Fast => "fast",
        }
    }
}

/// Which service checks the agents run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checks {
    /// None: the election alone (for the idle-cost matrix).
    None,
    /// The production check: an HTTP GET to the node's own server (haagent every 100 ms,
    /// fall 2; keepalived's script every 1 s).
    Http,
    /// The HTTP check plus haagent's event-driven `process` check on the server's pidfile
    /// (pidfd: the server's exit is a fault at once). keepalived runs the HTTP script only:
    /// its `track_process` matches by name, and the three nodes share one PID namespace.
    HttpAndProcess,
}

impl Checks {
    /// Name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "election only",
            Self::Http => "with checks",
            Self::HttpAndProcess => "with checks + process",
        }
    }
}

/// How to run the `haagent` agent.
#[derive(Debug, Clone)]
pub struct AgentBin {
    /// The program.
    pub program: PathBuf,
    /// Environment to set (the multi-call switch when `program` is `haagent-lab` itself).
    pub env: Vec<(String, String)>,
}

impl AgentBin {
    /// A separate `haagent` binary.
    pub fn path(program: PathBuf) -> Self {
        Self {
            program,
            env: Vec::new(),
        }
    }

    /// `haagent-lab` itself, which runs the agent's own code when [`AS_AGENT_ENV`] is set
    /// (so `cargo run --bin haagent-lab` never runs a stale agent).
    pub fn this_exe(lab_exe: &Path) -> Self {
        Self {
            program: lab_exe.to_path_buf(),
            env: vec![(AS_AGENT_ENV.into(), "haagent".into())],
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// What a testbed runs.
#[derive(Debug, Clone)]
pub struct TestbedOptions {
    /// The agent.
    pub implementation: Implementation,
    /// Its timers.
    pub timers: Timers,
    /// The HTTP server on the nodes.
    pub server: ServerKind,
    /// How to start haagent.
    pub agent_bin: AgentBin,
    /// `haagent-lab` itself (for the built-in responder).
    pub lab_exe: PathBuf,
    /// Advert interval override, ms (`None`: what `timers` says). keepalived then runs
    /// VRRPv3 with `advert_int` = this / 1000 s.
    pub advert_ms: Option<u32>,
    /// The service checks.
    pub checks: Checks,
}

/// A directory under /run, removed when dropped.
#[derive(Debug)]
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::env::var_os("HAAGENT_LAB_KEEP").is_some() {
            eprintln!("lab: kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running cluster. Field order is drop order: measurement threads, agents, servers,
/// then the namespaces, then the work directory.
pub struct Testbed {
    /// The client's HTTP probe against the VIP.
    pub probe: HttpProbe,
    /// The VIP-holder sampler over n1..n3.
    pub sampler: HolderSampler,
    agents: Vec<Option<Proc>>,
    servers: Vec<Option<Proc>>,
    stress: Option<Proc>,
    /// The namespaces.
    pub lab: Lab,
    dir: WorkDir,
    /// What it runs.
    pub opts: TestbedOptions,
}

impl std::fmt::Debug for Testbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Testbed")
            .field("dir", &self.dir.0)
            .field("opts", &self.opts)
            .finish()
    }
}

/// Checks the prerequisites: root, `ip`, and keepalived when it is to run. Each failure
/// is one line saying what to do.
pub fn check_prerequisites(with_keepalived: bool, with_nft: bool) -> Result<(), String> {
    if !super::is_root() {
        return Err(
            "haagent-lab needs root (it builds network namespaces): run it with sudo, \
             e.g. `cargo build --release && sudo target/release/haagent-lab demo`"
                .into(),
        );
    }
    if web::find_program("ip").is_none() {
        return Err("`ip` not found: install iproute2 (`apt-get install iproute2`)".into());
    }
    if with_keepalived && web::find_program("keepalived").is_none() {
        return Err(
            "keepalived not found: install it (`apt-get install keepalived`) or pass \
             `--impl haagent`"
                .into(),
        );
    }
    if with_nft && web::find_program("nft").is_none() {
        return Err(
            "`nft` not found: install nftables (`apt-get install nftables`) or leave out \
             the scenarios peer-block and isolate"
                .into(),
        );
    }
    Ok(())
}

/// Runs `f` in a fresh thread inside namespace `ns`.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LabError> {
    let ns = ns.to_string();
    std::thread::spawn(move || super::probe::enter_netns(&ns).map(|()| f()))
        .join()
        .map_err(|_| LabError::Setup("namespace helper thread panicked".into()))?
}

impl Testbed {
    /// Builds the lab, bootstraps certificates (haagent) or writes keepalived's configs,
    /// starts the HTTP servers and the probes. Agents are not started yet.
    pub fn new(opts: TestbedOptions) -> Result<Self, LabError> {
        let mut lab = Lab::new(&NODES)?;
        lab.add_host("gw", GATEWAY)?;
        lab.add_host("client", CLIENT)?;
        let path = PathBuf::from(format!("/run/{}", super::unique_tag("-lab")));
        std::fs::create_dir(&path).map_err(|source| LabError::File {
            path: path.clone(),
            source,
        })?;
        let dir = WorkDir(path);
        for name in NODES {
            let d = dir.0.join(name);
            std::fs::create_dir(&d).map_err(|source| LabError::File { path: d, source })?;
        }
        let node_ns: Vec<String> = NODES
            .iter()
            .map(|n| lab.host(n).map(|h| h.ns.name().to_string()))
            .collect::<Result<_, _>>()?;
        let client_ns = lab.host("client")?.ns.name().to_string();
        let sampler = HolderSampler::start(&node_ns, VIP)?;
        let probe = HttpProbe::start(&client_ns, SocketAddr::from((VIP, 80)))?;
        let mut tb = Self {
            probe,
            sampler,
            agents: NODES.iter().map(|_| None).collect(),
            servers: NODES.iter().map(|_| None).collect(),
            stress: None,
            lab,
            dir,
            opts,
        };
        tb.write_agent_configs()?;
        for i in 0..NODES.len() {
            tb.start_server(i)?;
        }
        Ok(tb)
    }

    /// The work directory.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.0.join(NODES[i])
    }

    /// Namespace of node `i`.
    pub fn node_ns(&self, i: usize) -> Result<&Netns, LabError> {
        Ok(&self.lab.host(NODES[i])?.ns)
    }

    /// Address of node `i`.
    pub fn node_addr(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 11 + i as u8)
    }

    fn run_agent_cli(&self, args: &[&str]) -> Result<(), LabError> {
        let mut cmd = self.opts.agent_bin.command();
        cmd.args(args);
        run(&mut cmd).map(|_| ())
    }

    fn write_file(path: &Path, text: &str) -> Result<(), LabError> {
        std::fs::write(path, text).map_err(|source| LabError::File {
            path: path.to_path_buf(),
            source,
        })
    }

    fn write_agent_configs(&self) -> Result<(), LabError> {
        match self.opts.implementation {
            Implementation::Haagent => {
                let certs = self.dir.0.join("certs");
                let c = certs.display().to_string();
                self.run_agent_cli(&["certs", "init", "--dir", &c, "--cluster", "lab"])?;
                for (i, name) in NODES.iter().enumerate() {
                    let ip = Self::node_addr(i).to_string();
                    self.run_agent_cli(&[
                        "certs", "issue", "--dir", &c, "--name", name, "--ip", &ip,
                    ])?;
                }
                for i in 0..NODES.len() {
                    let path = self.node_dir(i).join("haagent.toml");
                    Self::write_file(&path, &self.haagent_config(i, &certs))?;
                }
            }
            Implementation::Keepalived => {
                for i in 0..NODES.len() {
                    let check = self.node_dir(i).join("check-http.sh");
                    Self::write_file(&check, &keepalived_check_script(Self::node_addr(i)))?;
                    let mut perms = std::fs::metadata(&check)
                        .map_err(|source| LabError::File {
                            path: check.clone(),
                            source,
                        })?
                        .permissions();
                    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
                    std::fs::set_permissions(&check, perms).map_err(|source| LabError::File {
                        path: check.clone(),
                        source,
                    })?;
                    let path = self.node_dir(i).join("keepalived.conf");
                    Self::write_file(
                        &path,
                        &keepalived_config(
                            i,
                            &self.opts,
                            (self.opts.checks != Checks::None).then_some(&check),
                        ),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Node `i`'s haagent config: the cluster, the timers, and the health-check hook.
    fn haagent_config(&self, i: usize, certs: &Path) -> String {
        let addr = Self::node_addr(i);
        let mut text = format!(
            "[node]\nname = \"{}\"\npriority = {}\ninterface = \"eth0\"\nlisten = \"{addr}\"\n\n\
             [vip]\naddresses = [\"{VIP}/24\"]\n\n[tls]\ndir = \"{}\"\n\n",
            NODES[i],
            PRIORITIES[i],
            certs.display()
        );
        for (j, peer) in NODES.iter().enumerate().filter(|(j, _)| *j != i) {
            let _ = write!(
                text,
                "[[peer]]\nname = \"{peer}\"\naddress = \"{}\"\n\n",
                Self::node_addr(j)
            );
        }
        match (self.opts.advert_ms, self.opts.timers) {
            (Some(ms), _) => {
                let _ = write!(text, "[election]\nadvert_interval_ms = {ms}\n\n");
            }
            (None, Timers::Fast) => text.push_str("[election]\nadvert_interval_ms = 10\n\n"),
            (None, Timers::Default) => {}
        }
        // Every agent of the lab needs its own control socket; the gateway host is the
        // witness that tells an isolated node from a partitioned one.
        let _ = write!(
            text,
            "[control]\nsocket = \"{}\"\n\n[state]\ndir = \"{}\"\n\n\
             [witness]\ngateway = \"{GATEWAY}\"\n\n",
            self.node_dir(i).join("haagent.sock").display(),
            self.node_dir(i).join("state").display()
        );
        if self.opts.checks != Checks::None {
            text.push_str(&haagent_health_check(addr));
        }
        if self.opts.checks == Checks::HttpAndProcess {
            let _ = write!(
                text,
                "[[check]]\nname = \"server-process\"\nkind = \"process\"\npidfile = \"{}\"\n\n",
                self.server_pidfile(i).display()
            );
        }
        text
    }

    /// The pidfile of node `i`'s HTTP server: Nginx's own, or the one the lab writes for
    /// the built-in responder.
    pub fn server_pidfile(&self, i: usize) -> PathBuf {
        match self.opts.server {
            ServerKind::Nginx => self.node_dir(i).join("nginx.pid"),
            ServerKind::Builtin => self.node_dir(i).join("server.pid"),
        }
    }

    /// Saturates every core: `stress-ng --cpu <ncpu>`, started as a child of the lab, so
    /// at the lab's nice level, which is also the agents' own. Errors when stress-ng is
    /// not installed ([`stress_available`] tells first).
    pub fn start_stress(&mut self) -> Result<(), LabError> {
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let log = self.dir.0.join("stress-ng.log");
        let ns = &self.lab.host("client")?.ns;
        let p = Proc::spawn(
            "stress-ng",
            ns,
            "stress-ng",
            &["--cpu".into(), ncpu.to_string(), "--quiet".into()],
            &[],
            &log,
        )?;
        self.stress = Some(p);
        Ok(())
    }

    /// Ends the stress-ng started by [`Testbed::start_stress`] (SIGKILL to it and its
    /// workers).
    pub fn stop_stress(&mut self) {
        self.stress = None;
    }

    /// Node `i`'s current agent log (the latest start's).
    pub fn agent_log(&self, i: usize) -> String {
        self.agents[i]
            .as_ref()
            .map(|p| p.log_text())
            .unwrap_or_default()
    }

    /// Stops every agent gracefully (they release the VIP).
    pub fn stop_all(&mut self) -> Result<(), LabError> {
        for i in 0..NODES.len() {
            self.stop_agent(i)?;
        }
        Ok(())
    }

    /// Starts the agent on node `i` (again, after a stop).
    pub fn start_agent(&mut self, i: usize) -> Result<(), LabError> {
        let dir = self.node_dir(i);
        let runs = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("agent-{runs}.log"));
        let ns = &self.lab.host(NODES[i])?.ns;
        let proc = match self.opts.implementation {
            Implementation::Haagent => {
                let env: Vec<(&str, &str)> = self
                    .opts
                    .agent_bin
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .chain([("RUST_LOG", "haagent=info")])
                    .collect();
                let conf = dir.join("haagent.toml").display().to_string();
                Proc::spawn(
                    &format!("haagent on {}", NODES[i]),
                    ns,
                    &self.opts.agent_bin.program,
                    &["--config".into(), conf],
                    &env,
                    &log,
                )?
            }
            Implementation::Keepalived => {
                let d = dir.display();
                let args: Vec<String> = ["-n", "-l", "-D", "-P", "-f"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain([
                        format!("{d}/keepalived.conf"),
                        "-p".into(),
                        format!("{d}/keepalived.pid"),
                        "-r".into(),
                        format!("{d}/vrrp.pid"),
                        "-c".into(),
                        format!("{d}/checkers.pid"),
                        "-b".into(),
                        format!("{d}/bfd.pid"),
                    ])
                    .collect();
                Proc::spawn(
                    &format!("keepalived on {}", NODES[i]),
                    ns,
                    "keepalived",
                    &args,
                    &[],
                    &log,
                )?
            }
        };
        self.agents[i] = Some(proc);
        Ok(())
    }

    /// Starts every agent.
    pub fn start_all(&mut self) -> Result<(), LabError> {
        for i in 0..NODES.len() {
            self.start_agent(i)?;
        }
        Ok(())
    }

    /// Graceful stop (SIGTERM to the agent's main process; both hand over with priority 0).
    pub fn stop_agent(&mut self, i: usize) -> Result<(), LabError> {
        if let Some(mut p) = self.agents[i].take() {
            p.signal(libc::SIGTERM)?;
            if !p.wait_exit(Duration::from_secs(5)) {
                eprintln!(
                    "lab: {} did not stop within 5 s of SIGTERM; killing it",
                    p.label
                );
            }
        }
        Ok(())
    }

    /// Crash: SIGKILL to the agent and all its processes at once. Whatever it had
    /// installed (the VIP) stays on the interface.
    pub fn kill_agent(&mut self, i: usize) -> Result<(), LabError> {
        if let Some(mut p) = self.agents[i].take() {
            p.signal_tree(libc::SIGKILL)?;
            p.wait_exit(Duration::from_secs(2));
        }
        Ok(())
    }

    /// Whether node `i`'s agent process is still running.
    pub fn agent_running(&mut self, i: usize) -> bool {
        self.agents[i].as_mut().is_some_and(|p| p.running())
    }

    /// Logs of all agents (for error reports).
    pub fn agent_logs(&self) -> String {
        self.agents
            .iter()
            .flatten()
            .map(|p| format!("----- {} -----\n{}", p.label, p.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The PIDs of node `i`'s agent (all of keepalived's processes).
    pub fn agent_pids(&mut self, i: usize) -> Vec<u32> {
        self.agents[i]
            .as_mut()
            .map(|p| p.tree())
            .unwrap_or_default()
    }

    /// Starts node `i`'s HTTP server and waits until it answers.
    pub fn start_server(&mut self, i: usize) -> Result<(), LabError> {
        let ns = &self.lab.host(NODES[i])?.ns;
        let p = web::start(
            self.opts.server,
            ns,
            NODES[i],
            &self.node_dir(i),
            &self.opts.lab_exe,
        )?;
        if self.opts.server == ServerKind::Builtin {
            Self::write_file(&self.server_pidfile(i), &format!("{}\n", p.pid()))?;
        }
        self.servers[i] = Some(p);
        let ns_name = ns.name().to_string();
        let addr = Self::node_addr(i);
        let start = Instant::now();
        while !in_netns(&ns_name, move || web::answers(addr))? {
            interrupt::check()?;
            if start.elapsed() > Duration::from_secs(5) {
                let log = self.servers[i]
                    .as_ref()
                    .map(|p| p.log_text())
                    .unwrap_or_default();
                return Err(LabError::Setup(format!(
                    "the HTTP server on {} does not answer on {addr}:80 after 5 s: {log}",
                    NODES[i]
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops node `i`'s HTTP server.
    pub fn stop_server(&mut self, i: usize) {
        if let Some(mut p) = self.servers[i].take() {
            web::stop(&mut p);
        }
    }

    /// Loads an nftables ruleset (`nft -f`) inside `ns`.
    pub fn nft(&self, ns: &Netns, rules: &str) -> Result<(), LabError> {
        let file = self.dir.0.join(format!("{}.nft", ns.name()));
        Self::write_file(&file, rules)?;
        run(ns.command("nft").arg("-f").arg(&file)).map(|_| ())
    }

    /// Deletes an nftables table inside `ns`.
    pub fn nft_delete(&self, ns: &Netns, family: &str, table: &str) -> Result<(), LabError> {
        run(ns.command("nft").args(["delete", "table", family, table])).map(|_| ())
    }

    /// Who holds the VIP now (bit `i` = node `i`), from the sampler.
    pub fn holders_mask(&self) -> u32 {
        self.sampler.latest().map(|s| s.mask).unwrap_or(0)
    }

    /// Waits until n1 alone has held the VIP for the last second (no flapping back) and the
    /// client's last 300 ms of requests all succeeded; returns how long that took.
    pub fn wait_converged(&self, timeout: Duration) -> Result<Duration, LabError> {
        self.wait_converged_after(Instant::now(), timeout)
    }

    /// As [`Testbed::wait_converged`], with that second of n1 alone entirely after `since`
    /// (so a run that undid its fault cannot count the time before as settled).
    pub fn wait_converged_after(
        &self,
        since: Instant,
        timeout: Duration,
    ) -> Result<Duration, LabError> {
        let start = Instant::now();
        loop {
            interrupt::check()?;
            let recent = self.probe.recent(Duration::from_millis(300));
            let now = Instant::now();
            let from = now
                .checked_sub(Duration::from_secs(1))
                .unwrap_or(now)
                .max(since);
            let held = self.sampler.between(from, now);
            if held.len() >= 80
                && held.iter().all(|h| h.mask == 1)
                && recent.len() >= 20
                && recent.iter().all(|s| s.ok)
            {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                return Err(LabError::Setup(format!(
                    "the cluster did not converge on n1 within {timeout:?} (holders mask {:#b}, \
                     client {}/{} ok)\n{}",
                    self.holders_mask(),
                    recent.iter().filter(|s| s.ok).count(),
                    recent.len(),
                    self.agent_logs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Idle resource use of each running agent over `window`: (node, RSS KiB, CPU % of one
    /// core, context switches per second), summed over all of the agent's processes and
    /// threads. CPU time comes from /proc/PID/task/*/schedstat (ns), else from utime +
    /// stime in /proc/PID/stat (10 ms ticks).
    pub fn idle_usage(&mut self, window: Duration) -> Result<Vec<IdleUsage>, LabError> {
        // CPU time in ns from schedstat where there is one (a thread that exits during
        // the window takes its time with it either way), else in clock ticks.
        let cpu_ns = |pids: &[u32]| -> u64 {
            pids.iter()
                .filter_map(|p| {
                    proc::cpu_ns(*p).or_else(|| {
                        proc::cpu_ticks(*p)
                            .map(|t| t.saturating_mul(1_000_000_000) / proc::ticks_per_second())
                    })
                })
                .sum()
        };
        let before: Vec<(Vec<u32>, u64, u64)> = (0..NODES.len())
            .map(|i| {
                let pids = self.agent_pids(i);
                let ns = cpu_ns(&pids);
                let switches = pids.iter().filter_map(|p| proc::ctxt_switches(*p)).sum();
                (pids, ns, switches)
            })
            .collect();
        let start = Instant::now();
        interrupt::sleep(window)?;
        let secs = start.elapsed().as_secs_f64();
        Ok(before
            .into_iter()
            .enumerate()
            .map(|(i, (pids, t0, s0))| {
                let t1 = cpu_ns(&pids);
                let s1: u64 = pids.iter().filter_map(|p| proc::ctxt_switches(*p)).sum();
                IdleUsage {
                    node: NODES[i].to_string(),
                    processes: pids.len(),
                    rss_kib: pids.iter().filter_map(|p| proc::rss_kib(*p)).sum(),
                    cpu_percent: t1.saturating_sub(t0) as f64 / 1e9 / secs * 100.0,
                    wakeups_per_s: s1.saturating_sub(s0) as f64 / secs,
                }
            })
            .collect())
    }
}

/// Idle resource use of one node's agent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleUsage {
    /// The node.
    pub node: String,
    /// How many processes the agent runs (keepalived: parent + VRRP child).
    pub processes: usize,
    /// Resident memory, summed over its processes, KiB.
    pub rss_kib: u64,
    /// CPU time over the window as a percentage of one core.
    pub cpu_percent: f64,
    /// Context switches (voluntary + involuntary, all threads of all its processes) per
    /// second over the window: a proxy for wake-ups.
    pub wakeups_per_s: f64,
}

/// Whether `stress-ng` is installed (the saturated-host scenario needs it).
pub fn stress_available() -> bool {
    web::find_program("stress-ng").is_some()
}

/// The health-check part of haagent's config for the node at `addr`: an HTTP GET to its
/// own web server with the quick-mode defaults (every 100 ms, 100 ms timeout, fault after
/// 2 failures), the counterpart of keepalived's check script.
pub fn haagent_health_check(addr: Ipv4Addr) -> String {
    format!(
        "[[check]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://{addr}/\"\n\
         interval_ms = 100\ntimeout_ms = 100\nfall = 2\nrise = 2\n\n"
    )
}

/// keepalived's health check: an HTTP GET to the node's own address (bash /dev/tcp, so no
/// curl is needed), exit 0 on `200`.
fn keepalived_check_script(addr: Ipv4Addr) -> String {
    format!(
        "#!/bin/bash\n\
         exec 3<>/dev/tcp/{addr}/80 || exit 1\n\
         printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3\n\
         read -t 1 -r line <&3 || exit 1\n\
         case \"$line\" in *' 200 '*) exit 0;; esac\n\
         exit 1\n"
    )
}

/// keepalived's config for node `i`: unicast VRRP to the two others, its health check,
/// `script_user root` + `enable_script_security`, no `vrrp_strict` (it breaks unicast).
fn keepalived_config(i: usize, opts: &TestbedOptions, check: Option<&Path>) -> String {
    let (version, advert) = match (opts.advert_ms, opts.timers) {
        (Some(ms), _) => (
            "    vrrp_version 3\n",
            format!("{}", f64::from(ms) / 1000.0),
        ),
        (None, Timers::Default) => ("", "1".to_string()),
        (None, Timers::Fast) => ("    vrrp_version 3\n", "0.01".to_string()),
    };
    let (script, track) = match check {
        Some(check) => (
            format!(
                "vrrp_script chk_http {{\n    script \"{}\"\n    interval 1\n    timeout 1\n}}\n\n",
                check.display()
            ),
            "    track_script {\n        chk_http\n    }\n",
        ),
        None => (String::new(), ""),
    };
    let peers: String = (0..NODES.len())
        .filter(|j| *j != i)
        .map(|j| format!("        {}\n", Testbed::node_addr(j)))
        .collect();
    format!(
        "global_defs {{\n    router_id {name}\n    script_user root\n    enable_script_security\n{version}}}\n\n\
         {script}vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    \
         priority {prio}\n    advert_int {advert}\n    unicast_src_ip {addr}\n    \
         unicast_peer {{\n{peers}    }}\n    virtual_ipaddress {{\n        {VIP}/24 dev eth0\n    }}\n{track}}}\n",
        name = NODES[i],
        prio = PRIORITIES[i],
        addr = Testbed::node_addr(i),
    )
}
