//! `haagent_lab`: a throwaway lab of "hosts" in network namespaces on one L2 segment, for
//! haagent's end-to-end tests (and the demo): a switch namespace holding a Linux bridge, one
//! namespace per host with `eth0` on the bridge, no route out.
//!
//! Not part of the agent: this crate (`tests/lab`, package `haagent-lab`) is a workspace
//! member and a dev-dependency of `haagent`. Its library uses nothing of `haagent`; only the
//! `haagent-lab` binary links it, to run as the agent (see [`testbed::AgentBin`]).
//!
//! Everything it makes is owned by a guard: dropping the [`Lab`] kills the agent processes
//! it started (by PID) and deletes its namespaces, which deletes every veth and the bridge
//! with them. Names carry the process id and a counter so that parallel runs cannot collide.
//! Addresses come from the documentation range 192.0.2.0/24.
//!
//! On top of that sit the pieces of `haagent-lab` (the demo and the benchmark):
//! [`proc`] (processes killed by PID on drop), [`probe`] (the client's HTTP probe and the
//! VIP-holder sampler, both in threads that enter a namespace), [`web`] (Nginx or a built-in
//! HTTP responder per node), [`testbed`] (a three-node cluster of haagent or keepalived),
//! [`bench`](mod@bench) (fault scenarios and their measurements), [`timeline`] (an SVG picture
//! of each run), [`demo`] and [`interrupt`] (Ctrl-C
//! sets a flag; loops return so that every Drop guard runs).

pub mod bench;
pub mod demo;
pub mod interrupt;
pub mod probe;
pub mod proc;
pub mod testbed;
pub mod timeline;
pub mod web;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What went wrong while building or driving the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command could not be started at all.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A command's output could not be understood.
    #[error("unexpected output from `{command}`: {detail}")]
    Output {
        /// The command line.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// The lab has no host of that name.
    #[error("no host named {0} in this lab")]
    NoSuchHost(String),
    /// A file in the lab's work directory could not be written or read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The run was interrupted (Ctrl-C); everything is being cleaned up.
    #[error("interrupted")]
    Interrupted,
    /// Something the lab needs is missing or did not happen in time.
    #[error("{0}")]
    Setup(String),
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A prefix unique to this process and call, for namespace names.
pub fn unique_tag(kind: &str) -> String {
    format!(
        "ha{kind}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether this process may build labs (network namespaces need root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// For a test that needs namespaces: whether it can run. Without root it prints
/// `SKIPPED <test>` and returns false, so the test passes doing nothing.
///
/// # Panics
///
/// Without root when `HAAGENT_REQUIRE_NETNS` is set (as CI sets it): there a skipped
/// namespace test is a failure.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var_os("HAAGENT_REQUIRE_NETNS").is_some() {
        panic!("{test}: needs root for network namespaces, and HAAGENT_REQUIRE_NETNS is set");
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces); run as root to test for real");
    false
}

pub(crate) fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: shown.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Failed {
            command: shown,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

fn ip(args: &[&str]) -> Result<Output, LabError> {
    run(Command::new("ip").args(args))
}

/// A network namespace that is deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace with loopback up.
    pub fn create(name: &str) -> Result<Self, LabError> {
        ip(&["netns", "add", name])?;
        let ns = Self {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<Output, LabError> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// A command that runs inside the namespace (`ip netns exec NAME PROGRAM`); `ip netns
    /// exec` execs the program, so the child's PID is the program's own.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("lab cleanup: {e}");
        }
    }
}

/// One host of the lab: a namespace with `eth0` on the segment.
#[derive(Debug)]
pub struct Host {
    /// Host name, e.g. `n1`.
    pub name: String,
    /// Its address on the segment.
    pub addr: Ipv4Addr,
    /// The MAC of its `eth0`, as `ip` prints it.
    pub mac: String,
    /// The bridge port (in the switch namespace) its cable plugs into.
    pub port: String,
    /// Its namespace.
    pub ns: Netns,
}

/// A started agent; killed (SIGKILL, by PID) and reaped when dropped.
#[derive(Debug)]
pub struct AgentProcess {
    /// The host it runs on.
    pub host: String,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
    child: Child,
}

impl AgentProcess {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to this process (only to this PID).
    pub fn signal(&self, signal: libc::c_int) -> Result<(), LabError> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(|_| LabError::Output {
            command: "kill".into(),
            detail: "pid out of range".into(),
        })?;
        // SAFETY: plain syscall on a PID we spawned and have not reaped yet.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(LabError::Spawn {
                command: format!("kill -{signal} {pid}"),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return None,
            }
        }
    }

    /// The log written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// How [`Lab::start_agent_with`] starts an agent; the default is plainly.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// A command the agent is started through, which must exec its arguments (e.g.
    /// `["setpriv", "--reuid=nobody", ...]`); empty: none. Its PID is then the agent's.
    pub wrapper: Vec<String>,
    /// Extra environment variables (e.g. `NOTIFY_SOCKET`).
    pub env: Vec<(String, String)>,
}

/// The lab: a bridge in a switch namespace and hosts plugged into it.
///
/// Field order matters for Drop: agents die first, then hosts, then the switch.
pub struct Lab {
    /// Agents started with [`Lab::start_agent`], killed on drop.
    pub agents: Vec<AgentProcess>,
    /// The hosts, in the order given.
    pub hosts: Vec<Host>,
    switch: Netns,
    tag: String,
}

impl fmt::Debug for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lab").field("tag", &self.tag).finish()
    }
}

impl Lab {
    /// Builds a segment 192.0.2.0/24 with the given hosts; host `i` gets 192.0.2.(11 + i).
    pub fn new(host_names: &[&str]) -> Result<Self, LabError> {
        let tag = unique_tag("");
        let switch = Netns::create(&format!("{tag}-sw"))?;
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        let mut lab = Self {
            agents: Vec::new(),
            hosts: Vec::new(),
            switch,
            tag,
        };
        for (i, name) in host_names.iter().enumerate() {
            let octet = u8::try_from(11 + i).map_err(|_| LabError::Output {
                command: "lab".into(),
                detail: "too many hosts".into(),
            })?;
            lab.add_host(name, Ipv4Addr::new(192, 0, 2, octet))?;
        }
        Ok(lab)
    }

    /// Adds a host with `eth0` at `addr`/24 plugged into the bridge.
    pub fn add_host(&mut self, name: &str, addr: Ipv4Addr) -> Result<&Host, LabError> {
        let ns = Netns::create(&format!("{}-{name}", self.tag))?;
        let port = format!("p{}", self.hosts.len());
        self.switch.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ])?;
        self.switch
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        let mac = link_mac(&ns, "eth0")?;
        self.hosts.push(Host {
            name: name.to_string(),
            addr,
            mac,
            port,
            ns,
        });
        self.hosts
            .last()
            .ok_or_else(|| LabError::NoSuchHost(name.into()))
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&Host, LabError> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| LabError::NoSuchHost(name.to_string()))
    }

    /// Starts `binary args...` inside host `name`, logging to `log`.
    pub fn start_agent(
        &mut self,
        name: &str,
        binary: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<&mut AgentProcess, LabError> {
        self.start_agent_with(name, binary, args, log, &Launch::default())
    }

    /// Like [`Lab::start_agent`], started as `launch` says: through a wrapper command
    /// (e.g. `setpriv ...`, which then execs the agent) and with extra environment.
    pub fn start_agent_with(
        &mut self,
        name: &str,
        binary: &Path,
        args: &[String],
        log: &Path,
        launch: &Launch,
    ) -> Result<&mut AgentProcess, LabError> {
        let host = self.host(name)?;
        let file = std::fs::File::create(log).map_err(|source| LabError::Spawn {
            command: format!("create {}", log.display()),
            source,
        })?;
        let mut cmd = match launch.wrapper.split_first() {
            None => host.ns.command(binary),
            Some((program, rest)) => {
                let mut cmd = host.ns.command(program);
                cmd.args(rest).arg(binary);
                cmd
            }
        };
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(args)
            .env("RUST_LOG", "haagent=debug,info")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        let shown = format!("{cmd:?}");
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            command: shown,
            source,
        })?;
        self.agents.push(AgentProcess {
            host: name.to_string(),
            log: log.to_path_buf(),
            child,
        });
        let last = self.agents.len() - 1;
        Ok(&mut self.agents[last])
    }

    /// The agent running on host `name` (the latest one started there).
    pub fn agent(&mut self, name: &str) -> Result<&mut AgentProcess, LabError> {
        self.agents
            .iter_mut()
            .rev()
            .find(|a| a.host == name)
            .ok_or_else(|| LabError::NoSuchHost(name.to_string()))
    }

    /// Hosts whose `eth0` carries `vip` right now.
    pub fn holders(&self, vip: impl Into<IpAddr>) -> Result<Vec<String>, LabError> {
        let vip = vip.into();
        let mut holders = Vec::new();
        for host in &self.hosts {
            if all_addresses(&host.ns, "eth0")?.contains(&vip) {
                holders.push(host.name.clone());
            }
        }
        Ok(holders)
    }

    /// Polls every 5 ms until `pred(holders)` holds or `timeout` passes; returns the time it
    /// took and the last holders seen.
    pub fn wait_holders(
        &self,
        vip: impl Into<IpAddr>,
        timeout: Duration,
        pred: impl Fn(&[String]) -> bool,
    ) -> Result<(Option<Duration>, Vec<String>), LabError> {
        let vip = vip.into();
        let start = Instant::now();
        loop {
            let holders = self.holders(vip)?;
            if pred(&holders) {
                return Ok((Some(start.elapsed()), holders));
            }
            if start.elapsed() >= timeout {
                return Ok((None, holders));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The switch namespace that holds the bridge `br0` (for bridge-level firewall rules).
    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// Unplugs (or plugs back) host `name`'s cable at the switch.
    pub fn set_link(&self, name: &str, up: bool) -> Result<(), LabError> {
        let host = self.host(name)?;
        self.switch
            .ip(&["link", "set", &host.port, if up { "up" } else { "down" }])?;
        Ok(())
    }

    /// The MAC host `name` has cached for `addr` (ARP or IPv6 neighbour entry), if any.
    pub fn neighbour_mac(
        &self,
        name: &str,
        addr: impl Into<IpAddr>,
    ) -> Result<Option<String>, LabError> {
        let addr = addr.into();
        let host = self.host(name)?;
        let out = host
            .ns
            .ip(&["-j", "neigh", "show", &addr.to_string(), "dev", "eth0"])?;
        let json: serde_json::Value = parse_json(&out, "ip neigh show")?;
        Ok(json
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|n| n.get("lladdr").and_then(|m| m.as_str()).map(str::to_string)))
    }
}

fn parse_json(out: &Output, what: &str) -> Result<serde_json::Value, LabError> {
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_str(&text).map_err(|e| LabError::Output {
        command: what.to_string(),
        detail: e.to_string(),
    })
}

fn link_mac(ns: &Netns, dev: &str) -> Result<String, LabError> {
    let out = ns.ip(&["-j", "link", "show", dev])?;
    let json = parse_json(&out, "ip link show")?;
    json.get(0)
        .and_then(|l| l.get("address"))
        .and_then(|a| a.as_str())
        .map(str::to_string)
        .ok_or_else(|| LabError::Output {
            command: format!("ip -n {} link show {dev}", ns.name()),
            detail: "no address".into(),
        })
}

/// The IPv4 addresses on `dev` inside `ns`.
pub fn addresses(ns: &Netns, dev: &str) -> Result<Vec<Ipv4Addr>, LabError> {
    Ok(all_addresses(ns, dev)?
        .into_iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect())
}

/// The addresses of both families on `dev` in `ns` (`ip -j addr show`), IPv6 link-local
/// ones included.
pub fn all_addresses(ns: &Netns, dev: &str) -> Result<Vec<IpAddr>, LabError> {
    let out = ns.ip(&["-j", "addr", "show", "dev", dev])?;
    let json = parse_json(&out, "ip addr show")?;
    Ok(json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("addr_info").and_then(|a| a.as_array()))
        .flatten()
        .filter_map(|a| a.get("local").and_then(|l| l.as_str()))
        .filter_map(|l| l.parse().ok())
        .collect())
}
