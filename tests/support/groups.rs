//! VIP groups (issue 11) in namespaces: a second segment beside the lab's, nodes with
//! `eth0` on the first and `eth1` on the second, configs written with `[[group]]` tables,
//! one HTTP probe per VIP, and the kernel facts the tests assert on (which node carries a
//! VIP on which interface, the routes haagent installed, `ip route show proto 98`).
//!
//! Everything created here is owned by a guard: the second bridge lives in the lab's switch
//! namespace and the `eth1` cables in the node namespaces (both deleted with the lab); a
//! host only on the second segment is an [`OutsideHost`], whose namespace is deleted when
//! it is dropped. Names carry the PID and a counter ([`haagent_lab::unique_tag`]).
#![allow(dead_code)] // each test file uses a different part

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use haagent_lab::probe::{HttpProbe, ProbeSample};
use haagent_lab::{unique_tag, Netns};

use super::{node, Cluster};

/// Bound for a cluster of groups to converge after start: TLS handshakes, master-down,
/// then a preemption, which waits for `PREEMPT_SETTLE` (1 s) of contact. Generous: the
/// CI machine has 2 cores shared with other jobs.
pub const GROUP_CONVERGE: Duration = Duration::from_secs(20);

/// The second segment's /24 (RFC 5737 TEST-NET-2), `198.51.100.0/24`.
pub const SEG2: [u8; 3] = [198, 51, 100];
/// The bridge of the second segment, in the lab's switch namespace (the first is `br0`).
pub const SEG2_BRIDGE: &str = "br1";

/// An address on the second segment.
pub fn seg2(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(SEG2[0], SEG2[1], SEG2[2], host)
}

/// Runs `ip ARGS` inside `ns`; panics with the error (a harness failure, not the agent's).
pub fn ip_ns(ns: &Netns, args: &[&str]) {
    if let Err(e) = ns.ip(args) {
        panic!("ip {args:?} in {}: {e}", ns.name());
    }
}

/// Runs `sysctl -qw KEY=VALUE` inside `ns`.
pub fn sysctl(ns: &Netns, setting: &str) {
    let out = ns
        .command("sysctl")
        .args(["-qw", setting])
        .output()
        .unwrap_or_else(|e| panic!("cannot run sysctl in {}: {e}", ns.name()));
    assert!(
        out.status.success(),
        "sysctl {setting} in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A host that is only on the second segment (its namespace is deleted on drop).
pub struct OutsideHost {
    /// Its name in the test (`client2`).
    pub name: String,
    /// Its address on the second segment.
    pub addr: Ipv4Addr,
    /// Its namespace; `eth0` is its cable to the second bridge.
    pub ns: Netns,
}

/// A cluster whose nodes have `eth0` on the lab's segment (192.0.2.0/24, with the
/// harness's `client` .50 and `gw` .1) and, with [`GroupLab::with_second_segment`],
/// `eth1` on a second one (198.51.100.0/24, node `i` at .11 + i).
///
/// Field order matters for Drop: the cluster (agents, then the lab's namespaces) goes
/// first, then the outside hosts.
pub struct GroupLab {
    /// The cluster of the harness: lab, certificates, control sockets, logs.
    pub c: Cluster,
    /// Hosts only on the second segment.
    pub outside: Vec<OutsideHost>,
    /// The node names, in order.
    pub nodes: Vec<&'static str>,
    ports: usize,
    /// Nodes whose agent was killed on purpose and not started again.
    killed: Vec<String>,
}

impl GroupLab {
    /// A lab with the given nodes (192.0.2.11, .12, …), certificates issued, no config yet
    /// (write one per node with [`GroupLab::write_config`]).
    pub fn new(nodes: &[&'static str]) -> Self {
        let specs: Vec<super::Node> = nodes.iter().map(|n| node(n, 100)).collect();
        Self {
            c: Cluster::new(&specs),
            outside: Vec::new(),
            nodes: nodes.to_vec(),
            ports: 0,
            killed: Vec::new(),
        }
    }

    /// Adds the second segment: bridge [`SEG2_BRIDGE`] in the switch namespace, and an
    /// `eth1` at 198.51.100.(11 + i)/24 in node `i`, up.
    pub fn with_second_segment(mut self) -> Self {
        let sw = self.c.lab.switch();
        ip_ns(sw, &["link", "add", SEG2_BRIDGE, "type", "bridge"]);
        ip_ns(sw, &["link", "set", SEG2_BRIDGE, "up"]);
        let nodes = self.nodes.clone();
        for (i, name) in nodes.iter().enumerate() {
            let addr = seg2(11 + u8::try_from(i).unwrap_or(0));
            let ns_name = self.c.lab.host(name).unwrap().ns.name().to_string();
            self.plug(&ns_name, "eth1", addr);
        }
        self
    }

    /// Adds a host only on the second segment, `eth0` at `addr`/24.
    pub fn add_outside_host(&mut self, name: &str, addr: Ipv4Addr) -> &OutsideHost {
        let ns = Netns::create(&format!("{}-{name}", unique_tag("g2"))).unwrap();
        self.plug(ns.name(), "eth0", addr);
        self.outside.push(OutsideHost {
            name: name.to_string(),
            addr,
            ns,
        });
        self.outside.last().unwrap()
    }

    /// The outside host called `name`.
    pub fn outside(&self, name: &str) -> &OutsideHost {
        self.outside
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no outside host {name}"))
    }

    /// A veth from the second bridge (port `q<N>`) to `dev` in namespace `ns_name`, with
    /// `addr`/24 on it, both ends up.
    fn plug(&mut self, ns_name: &str, dev: &str, addr: Ipv4Addr) {
        let port = format!("q{}", self.ports);
        self.ports += 1;
        let sw = self.c.lab.switch();
        ip_ns(
            sw,
            &[
                "link", "add", &port, "type", "veth", "peer", "name", dev, "netns", ns_name,
            ],
        );
        ip_ns(sw, &["link", "set", &port, "master", SEG2_BRIDGE, "up"]);
        let out = std::process::Command::new("ip")
            .args([
                "-n",
                ns_name,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                dev,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = std::process::Command::new("ip")
            .args(["-n", ns_name, "link", "set", dev, "up"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `name`'s agent (again); see [`GroupLab::kill`].
    pub fn start(&mut self, name: &str) {
        self.killed.retain(|k| k != name);
        self.c.start(name);
    }

    /// SIGKILLs `name`'s agent (by PID) and waits for it to exit. Until it is started
    /// again its death is expected: the waits below fail at once when any other agent
    /// (or this one after a restart) has died, with its log, instead of at their deadline.
    pub fn kill(&mut self, name: &str) {
        let agent = self.c.lab.agent(name).unwrap();
        agent.signal(libc::SIGKILL).unwrap();
        assert!(
            agent.wait_exit(GROUP_CONVERGE).is_some(),
            "{name}'s agent did not exit after SIGKILL"
        );
        self.killed.push(name.to_string());
    }

    /// Panics with the logs if the latest agent of a node that was not [`GroupLab::kill`]ed
    /// has exited (a zombie or gone: /proc/PID/stat).
    pub fn assert_agents_alive(&self) {
        for name in self
            .nodes
            .iter()
            .filter(|n| !self.killed.iter().any(|k| k == *n))
        {
            let Some(agent) = self.c.lab.agents.iter().rev().find(|a| a.host == *name) else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", agent.pid()));
            let state = stat
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()));
            assert!(
                !matches!(state, None | Some(Some('Z' | 'X')) | Some(None)),
                "{name}'s agent (pid {}) has exited\n{}",
                agent.pid(),
                self.c.logs()
            );
        }
    }

    /// The namespace of node (or harness host) `name`.
    pub fn ns(&self, name: &str) -> &Netns {
        &self.c.lab.host(name).unwrap().ns
    }

    /// Writes `me`'s config: the node-wide tables the harness always writes (node with
    /// `interface = "eth0"` and `priority = 100`, listen, TLS, peers, control socket,
    /// state dir), no `[vip] addresses`, then `tail` (the `[[group]]` tables, `[vip]
    /// lease_ms`, checks, …) as given.
    pub fn write_config(&self, me: &str, tail: &str) {
        let addr = self.c.lab.host(me).unwrap().addr;
        let certs = self.c.dir.path().join("certs");
        let mut text = format!(
            "[node]\nname = \"{me}\"\ninterface = \"eth0\"\npriority = 100\nlisten = \"{addr}\"\n\n\
             [tls]\ndir = \"{}\"\n\n",
            certs.display()
        );
        for peer in self.nodes.iter().filter(|p| **p != me) {
            let paddr = self.c.lab.host(peer).unwrap().addr;
            text.push_str(&format!(
                "[[peer]]\nname = \"{peer}\"\naddress = \"{paddr}\"\n\n"
            ));
        }
        text.push_str(&format!(
            "[control]\nsocket = \"{}\"\n\n[state]\ndir = \"{}\"\n\n",
            self.c.socket_path(me).display(),
            self.c.state_dir(me).display()
        ));
        text.push_str(tail);
        std::fs::write(self.c.config_path(me), text).unwrap();
    }

    /// Nodes (of [`GroupLab::nodes`]) whose `dev` carries `vip` right now.
    pub fn holders(&self, vip: Ipv4Addr, dev: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| {
                // A missing interface (never here) would count as not holding.
                haagent_lab::addresses(self.ns(n), dev)
                    .map(|a| a.contains(&vip))
                    .unwrap_or(false)
            })
            .map(|n| n.to_string())
            .collect()
    }

    /// Polls every 5 ms until exactly the nodes `expected` carry `vip` on `dev`; returns
    /// how long that took, or panics after `timeout` with the last holders and the logs.
    pub fn wait_holders(
        &self,
        vip: Ipv4Addr,
        dev: &str,
        expected: &[&str],
        timeout: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let h = self.holders(vip, dev);
            if h == expected {
                return start.elapsed();
            }
            self.assert_agents_alive();
            assert!(
                start.elapsed() < timeout,
                "expected {expected:?} to hold {vip} on {dev} within {timeout:?}, holders are {h:?}\n{}",
                self.c.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Samples the holders of each `(vip, dev)` for `window` (and at least 10 rounds) and
    /// asserts every sample equals `expected`.
    pub fn assert_holders_stay(
        &self,
        vips: &[(Ipv4Addr, &str)],
        expected: &[&str],
        window: Duration,
    ) {
        let start = Instant::now();
        let mut rounds = 0;
        while start.elapsed() < window || rounds < 10 {
            for (vip, dev) in vips {
                let h = self.holders(*vip, dev);
                assert_eq!(
                    h,
                    expected,
                    "holders of {vip} on {dev} changed after {rounds} rounds ({:?})\n{}",
                    start.elapsed(),
                    self.c.logs()
                );
            }
            rounds += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The IPv4 routes of protocol 98 (haagent's, `RTPROT_HAAGENT`) in every table of
    /// `name`'s namespace, each in `ip route` words, sorted (see [`KernelRoute`]).
    pub fn haagent_routes(&self, name: &str) -> Vec<String> {
        let mut routes: Vec<String> = kernel_routes(self.ns(name))
            .iter()
            .map(ToString::to_string)
            .collect();
        routes.sort();
        routes
    }

    /// Polls `name`'s protocol-98 routes until they equal `expected` (sorted `ip route`
    /// words as [`KernelRoute`] prints them); returns the time it took.
    pub fn wait_routes(&self, name: &str, expected: &[&str], timeout: Duration) -> Duration {
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        let start = Instant::now();
        loop {
            let have = self.haagent_routes(name);
            if have == want {
                return start.elapsed();
            }
            self.assert_agents_alive();
            assert!(
                start.elapsed() < timeout,
                "{name}'s proto 98 routes never became {want:#?} within {timeout:?}; they are {have:#?}\n{}",
                self.c.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `haagent status --json` of `name`, parsed; `Err` with what went wrong while the
    /// agent cannot answer yet (just started: its control socket is not bound).
    pub fn try_status(&self, name: &str) -> Result<serde_json::Value, String> {
        let out = self.c.ctl(name, &["status", "--json"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("status JSON: {e}"))
    }

    /// Polls `name`'s status every 10 ms until its group `group` satisfies `ready`;
    /// returns that group's entry. A status request that fails counts as "not yet" while
    /// the agent runs (it may have just started); panics after `timeout`, or as soon as an
    /// agent died, with the last status (or error) and the logs.
    pub fn wait_group(
        &self,
        name: &str,
        group: &str,
        timeout: Duration,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let last = match self.try_status(name) {
                Ok(status) => {
                    let entry = group_of(&status, group);
                    if ready(entry) {
                        return entry.clone();
                    }
                    format!("{status:#}")
                }
                Err(e) => e,
            };
            self.assert_agents_alive();
            assert!(
                start.elapsed() < timeout,
                "{name}'s group {group} never got there within {timeout:?}; last status: {last}\n{}",
                self.c.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts an HTTP probe from the harness's `client` (192.0.2.50) to `vip`:80.
    pub fn probe(&self, vip: Ipv4Addr) -> HttpProbe {
        let client = self.ns("client").name().to_string();
        HttpProbe::start(&client, SocketAddr::from((vip, 80))).unwrap()
    }

    /// Runs `haagent ARGS --socket <name's socket>`, asserts it succeeded, returns stdout.
    pub fn ctl_ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.c.ctl(name, args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "haagent {args:?} on {name} failed: {stdout}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.c.logs()
        );
        stdout
    }
}

/// The entry of group `name` in a status document's `groups` (JSON null when absent, so
/// that indexing on it reads as null and assertions print the whole status).
pub fn group_of<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    static NULL: serde_json::Value = serde_json::Value::Null;
    status["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|e| e["name"] == name))
        .unwrap_or(&NULL)
}

/// A predicate on a group entry: its `state` is `state`.
pub fn in_state(state: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |g| g["state"] == state
}

/// Whether a group's `faults` name `cause` (e.g. `link`). Accepts the plausible shapes of
/// that field: a list of words (`["link"]`), a list of objects carrying the word in any
/// string field (`[{"cause": "link", "reason": "…"}]`), or an object keyed by it.
pub fn faults_name(group: &serde_json::Value, cause: &str) -> bool {
    let f = &group["faults"];
    match f {
        serde_json::Value::Array(items) => items.iter().any(|i| match i {
            serde_json::Value::String(s) => s == cause,
            serde_json::Value::Object(o) => o.values().any(|v| v == cause),
            _ => false,
        }),
        serde_json::Value::Object(o) => o.contains_key(cause),
        serde_json::Value::String(s) => s == cause,
        _ => false,
    }
}

/// One kernel route, from `ip -j route show`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelRoute {
    /// Destination: `default` or `a.b.c.d/len`.
    pub dst: String,
    /// `via`, if any.
    pub gateway: Option<String>,
    /// Output interface.
    pub dev: String,
    /// Preferred source (`src`), if any.
    pub prefsrc: Option<String>,
    /// Table, when not `main`.
    pub table: Option<String>,
}

impl std::fmt::Display for KernelRoute {
    /// `ip route` words: `DST [via GW] dev DEV [src SRC] [table T]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.dst)?;
        if let Some(g) = &self.gateway {
            write!(f, " via {g}")?;
        }
        write!(f, " dev {}", self.dev)?;
        if let Some(s) = &self.prefsrc {
            write!(f, " src {s}")?;
        }
        if let Some(t) = &self.table {
            write!(f, " table {t}")?;
        }
        Ok(())
    }
}

/// The IPv4 routes of protocol 98 in every table of `ns` (`ip -j -4 route show table all
/// proto 98`), sorted.
pub fn kernel_routes(ns: &Netns) -> Vec<KernelRoute> {
    let out = ns
        .ip(&["-j", "-4", "route", "show", "table", "all", "proto", "98"])
        .unwrap_or_else(|e| panic!("ip route show in {}: {e}", ns.name()));
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Vec::new();
    }
    let json: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("ip -j route show printed {text:?}: {e}"));
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().map(str::to_string);
    let mut routes: Vec<KernelRoute> = json
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| KernelRoute {
            dst: field(r, "dst").unwrap_or_default(),
            gateway: field(r, "gateway"),
            dev: field(r, "dev").unwrap_or_default(),
            prefsrc: field(r, "prefsrc"),
            table: field(r, "table").filter(|t| t != "main"),
        })
        .collect();
    routes.sort();
    routes
}

/// The requests of `p` that started in `[from, to)`, once every one of them has had the
/// time to finish: a request records its result only when it ends, at most the probe's
/// connect plus answer timeouts after it started (150 ms more for a loaded machine).
pub fn settled(p: &HttpProbe, from: Instant, to: Instant) -> Vec<ProbeSample> {
    use haagent_lab::probe::{ANSWER_TIMEOUT, CONNECT_TIMEOUT};
    let done = to + CONNECT_TIMEOUT + ANSWER_TIMEOUT + Duration::from_millis(150);
    if let Some(wait) = done.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    p.between(from, to)
}

/// Failed requests among `samples`.
pub fn failed(samples: &[ProbeSample]) -> usize {
    samples.iter().filter(|s| !s.ok).count()
}

/// The longest run of failed requests, from the first failure to the next success (zero
/// when none failed; up to the last sample when the run never ended).
pub fn outage(samples: &[ProbeSample]) -> Duration {
    let mut worst = Duration::ZERO;
    let mut since: Option<Instant> = None;
    for s in samples {
        match (s.ok, since) {
            (false, None) => since = Some(s.at),
            (true, Some(t)) => {
                worst = worst.max(s.at - t);
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(t), Some(last)) = (since, samples.last()) {
        worst = worst.max(last.at - t);
    }
    worst
}

/// `"F failed of N, outage X ms, served by {n1: a, n2: b}"` for a report line.
pub fn summary(samples: &[ProbeSample]) -> String {
    let mut by: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for s in samples.iter().filter(|s| s.ok) {
        *by.entry(s.server.as_deref().unwrap_or("?")).or_default() += 1;
    }
    format!(
        "{} failed of {}, outage {} ms, served by {by:?}",
        failed(samples),
        samples.len(),
        outage(samples).as_millis()
    )
}

/// Waits until the last 200 ms of `p`'s settled requests are more than 5 and all answered
/// by `server`; panics after `timeout`.
pub fn wait_served_by(p: &HttpProbe, what: &str, server: &str, timeout: Duration) {
    if let Err(recent) = p.wait_steady_from(server, timeout) {
        panic!(
            "the client never got steady answers from {server} for {what} within {timeout:?}; last: {}",
            summary(&recent)
        );
    }
}

/// One `ping -c 1 -W 1 target` from `ns`, repeated until it is answered; returns how long
/// that took, or panics after `timeout`.
pub fn wait_ping(ns: &Netns, target: Ipv4Addr, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let out = ns
            .command("ping")
            .args(["-n", "-c", "1", "-W", "1", &target.to_string()])
            .output()
            .expect("ping (iputils-ping) must be installed");
        if out.status.success() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "{} never reached {target} within {timeout:?}: {}",
            ns.name(),
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
