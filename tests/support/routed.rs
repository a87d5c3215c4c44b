//! The routed-mode lab (issue 15): a router namespace with one point-to-point segment per
//! node and one to a client, BIRD 2 in the router and in each node, iBGP from each node to
//! the router (with BFD), and the VIP on no segment at all: it is reachable only through
//! the host route the current master announces.
//!
//! ```text
//!   n1 eth0 192.0.2.11/24 ──── to-n1 192.0.2.1 ┐
//!   n2 eth0 198.51.100.12/24 ─ to-n2 198.51.100.1 ├ router (forwards)
//!   client eth0 203.0.113.50/25 ─ to-client 203.0.113.1 ┘
//!   VIP 203.0.113.200/32: on `lo` of the master only
//! ```
//!
//! Every address is from the RFC 5737 documentation ranges and nothing routes out of the
//! lab (the nodes' and the client's default routes point at the router, which has no
//! default route). The BIRD configs are the shipped ones (configs/bird-node.conf,
//! configs/bird-router.conf) with their `define` lines set by [`bird::render`].
//!
//! Everything is owned by guards, dropped in order: processes started with
//! [`RoutedLab::spawn`] (killed by PID), then the BIRDs (killed by PID), then the
//! namespaces (which delete every veth with them). Names carry the PID and a counter
//! ([`haagent_lab::unique_tag`]).
#![allow(dead_code)] // each test file uses a different part

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use haagent_lab::proc::Proc;
use haagent_lab::{unique_tag, Netns};

use super::bird::{self, Bird, Route};

/// The VIP: a /32 that is on no segment.
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 200);
/// `VIP/32`, as BIRD prints it.
pub const VIP_PREFIX: &str = "203.0.113.200/32";
/// haagent's routing protocol number (`proto 98`).
pub const PROTO: u8 = 98;
/// The client, behind the router.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 50);
/// The router's address on the client's segment.
pub const ROUTER_CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The router's id (its address towards n1).
pub const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The AS of the iBGP sessions.
pub const AS: u32 = 65000;
/// Bound for both sessions (and BFD) to come up after start: BIRD's connect delay (1 s)
/// plus a retry, generously for a loaded 2-core machine.
pub const ESTABLISH: Duration = Duration::from_secs(20);

/// One node of the lab: the values the lab was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpec {
    /// `n1` or `n2`.
    pub name: &'static str,
    /// Its uplink (`eth0`) address, /24; also its BIRD router id.
    pub addr: Ipv4Addr,
    /// The router's address on that segment (the node's default gateway, BGP neighbor).
    pub gateway: Ipv4Addr,
    /// The router's interface towards it.
    pub router_if: &'static str,
    /// Its `net.ipv4.ip_default_ttl`: different per node, so that the client can tell
    /// who answered a ping from the reply's TTL (this minus one for the router's hop).
    pub ttl: u8,
}

/// The two nodes.
pub const NODES: [NodeSpec; 2] = [
    NodeSpec {
        name: "n1",
        addr: Ipv4Addr::new(192, 0, 2, 11),
        gateway: Ipv4Addr::new(192, 0, 2, 1),
        router_if: "to-n1",
        ttl: 64,
    },
    NodeSpec {
        name: "n2",
        addr: Ipv4Addr::new(198, 51, 100, 12),
        gateway: Ipv4Addr::new(198, 51, 100, 1),
        router_if: "to-n2",
        ttl: 100,
    },
];

/// The spec of node `name`; panics for another name.
pub fn spec(name: &str) -> NodeSpec {
    NODES
        .iter()
        .copied()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name} in the routed lab"))
}

/// Runs `ip ARGS` in `ns`; panics with the error (a harness failure).
pub fn ip_in(ns: &Netns, args: &[&str]) -> String {
    match ns.ip(args) {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => panic!("ip {} in {}: {e}", args.join(" "), ns.name()),
    }
}

/// The routed lab; see the module comment.
///
/// Field order matters for Drop: processes, then BIRDs, then namespaces.
pub struct RoutedLab {
    /// Processes started with [`RoutedLab::spawn`] (e.g. haagent agents), killed first.
    pub procs: Vec<Proc>,
    /// BIRD in the router.
    pub router_bird: Bird,
    /// BIRD in n1 and n2, in [`NODES`] order.
    pub node_birds: Vec<Bird>,
    /// The router namespace.
    pub router: Netns,
    /// n1 and n2, in [`NODES`] order.
    pub nodes: Vec<Netns>,
    /// The client namespace.
    pub client: Netns,
    /// Work directory for logs of spawned processes (and anything a test wants to write).
    pub dir: tempfile::TempDir,
}

impl RoutedLab {
    /// Builds the namespaces and links, starts BIRD in the router and both nodes (not
    /// waiting for the sessions: see [`RoutedLab::wait_established`]).
    pub fn new() -> Self {
        let tag = unique_tag("bgp");
        let router = Netns::create(&format!("{tag}-router")).unwrap();
        sysctl(&router, "net.ipv4.ip_forward=1");
        let mut nodes = Vec::new();
        for n in NODES {
            let ns = Netns::create(&format!("{tag}-{}", n.name)).unwrap();
            wire(&router, n.router_if, n.gateway, &ns, n.addr, 24);
            sysctl(&ns, &format!("net.ipv4.ip_default_ttl={}", n.ttl));
            nodes.push(ns);
        }
        let client = Netns::create(&format!("{tag}-client")).unwrap();
        wire(
            &router,
            "to-client",
            ROUTER_CLIENT,
            &client,
            CLIENT_ADDR,
            25,
        );

        let router_conf = bird::render(
            &bird::shipped("bird-router.conf"),
            &[
                ("ROUTER_ID", ROUTER_ID.to_string()),
                ("N1_ADDR", NODES[0].addr.to_string()),
                ("N2_ADDR", NODES[1].addr.to_string()),
                ("LOCAL_AS", AS.to_string()),
            ],
        );
        let router_bird = Bird::start("bird in router", &router, &router_conf).unwrap();
        let mut node_birds = Vec::new();
        for (n, ns) in NODES.iter().zip(&nodes) {
            let conf = bird::render(
                &bird::shipped("bird-node.conf"),
                &[
                    ("NODE_ADDR", n.addr.to_string()),
                    ("ROUTER_ADDR", n.gateway.to_string()),
                    ("LOCAL_AS", AS.to_string()),
                ],
            );
            node_birds.push(Bird::start(&format!("bird in {}", n.name), ns, &conf).unwrap());
        }
        Self {
            procs: Vec::new(),
            router_bird,
            node_birds,
            router,
            nodes,
            client,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The namespace of `name`: `router`, `client`, `n1` or `n2`.
    pub fn ns(&self, name: &str) -> &Netns {
        match name {
            "router" => &self.router,
            "client" => &self.client,
            _ => &self.nodes[index(name)],
        }
    }

    /// The BIRD of `name`: `router`, `n1` or `n2`.
    pub fn bird(&self, name: &str) -> &Bird {
        match name {
            "router" => &self.router_bird,
            _ => &self.node_birds[index(name)],
        }
    }

    /// The BIRD of `name` (`router`, `n1` or `n2`), to stop it ([`Bird::kill`]).
    pub fn bird_mut(&mut self, name: &str) -> &mut Bird {
        match name {
            "router" => &mut self.router_bird,
            _ => &mut self.node_birds[index(name)],
        }
    }

    /// Every BIRD's log, for failure messages.
    pub fn logs(&self) -> String {
        std::iter::once(&self.router_bird)
            .chain(&self.node_birds)
            .map(|b| format!("----- {} -----\n{}", b.label, b.log()))
            .chain(
                self.procs
                    .iter()
                    .map(|p| format!("----- {} -----\n{}", p.label, p.log_text())),
            )
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until the router has both sessions Established with BFD Up, and each node
    /// its `uplink` (BFD Up there too); returns how long that took; panics after `timeout` with the state.
    pub fn wait_established(&self, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let r = &self.router_bird;
            let up = NODES.iter().all(|n| {
                r.established(n.name)
                    && r.bfd_state(n.addr).as_deref() == Some("Up")
                    && self.bird(n.name).established("uplink")
                    && self.bird(n.name).bfd_state(n.gateway).as_deref() == Some("Up")
            });
            if up {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "sessions not up within {timeout:?}:\n{}{}\n{}",
                r.birdc(&["show", "protocols"]),
                r.birdc(&["show", "bfd", "sessions"]),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The router's best route for `prefix` (e.g. [`VIP_PREFIX`]).
    pub fn router_best(&self, prefix: &str) -> Option<Route> {
        self.router_bird.best_route(prefix)
    }

    /// Polls the router's best route for `prefix` every 5 ms until `pred` holds; returns
    /// the time and the route; panics after `timeout` with BIRD's view.
    pub fn wait_router_best(
        &self,
        prefix: &str,
        timeout: Duration,
        pred: impl Fn(Option<&Route>) -> bool,
    ) -> (Duration, Option<Route>) {
        let start = Instant::now();
        loop {
            let best = self.router_best(prefix);
            if pred(best.as_ref()) {
                return (start.elapsed(), best);
            }
            assert!(
                start.elapsed() < timeout,
                "router's best route for {prefix} is {best:?} after {timeout:?}:\n{}",
                self.router_bird.birdc(&["show", "route", "all"])
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The next hop of the router's kernel route to `dst` (`ip route get`), if forwarded
    /// through a gateway.
    pub fn router_kernel_via(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        let out = self
            .router
            .ip(&["-o", "route", "get", &dst.to_string()])
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace();
        words.find(|w| *w == "via")?;
        words.next()?.parse().ok()
    }

    /// One `ping -c1 -W1 dst` from the client: the node that answered (told by the reply's
    /// TTL, see [`NodeSpec::ttl`]), `Some("?")` for an answer with another TTL, None when
    /// unanswered.
    pub fn client_ping(&self, dst: Ipv4Addr) -> Option<&'static str> {
        let out = self
            .client
            .command("ping")
            .args(["-n", "-c", "1", "-W", "1", &dst.to_string()])
            .output()
            .expect("ping (iputils-ping) must be installed");
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let ttl: Option<u8> = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ttl=")?.parse().ok());
        Some(
            NODES
                .iter()
                .find(|n| Some(n.ttl - 1) == ttl)
                .map_or("?", |n| n.name),
        )
    }

    /// Pings `dst` from the client until `who` answers; returns the time; panics after
    /// `timeout` with the last answer.
    pub fn wait_client_answered_by(&self, dst: Ipv4Addr, who: &str, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let got = self.client_ping(dst);
            if got == Some(who) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "client's ping to {dst} answered by {got:?}, expected {who}, after {timeout:?}:\n{}",
                self.router_bird.birdc(&["show", "route", "all"])
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets the router's side of `node`'s link down or up (the node then sees no carrier).
    pub fn set_uplink(&self, node: &str, up: bool) {
        let dev = spec(node).router_if;
        ip_in(
            &self.router,
            &["link", "set", dev, if up { "up" } else { "down" }],
        );
    }

    /// Drops (or, with `cut = false`, passes again) every packet the router sends or
    /// receives on `node`'s link, links staying up: only BFD (or the BGP hold time) can
    /// notice. nftables table `inet hacut_<node>` in the router.
    pub fn cut_uplink(&self, node: &str, cut: bool) {
        let dev = spec(node).router_if;
        let table = format!("hacut_{node}");
        let script = if cut {
            format!(
                "table inet {table} {{\n\
                   chain cut_in {{ type filter hook input priority -10; iifname \"{dev}\" drop; }}\n\
                   chain cut_fwd {{ type filter hook forward priority -10; iifname \"{dev}\" drop; oifname \"{dev}\" drop; }}\n\
                   chain cut_out {{ type filter hook output priority -10; oifname \"{dev}\" drop; }}\n\
                 }}\n"
            )
        } else {
            format!("delete table inet {table}\n")
        };
        super::nft_in(&self.router, &script);
    }

    /// Starts `program args…` inside `host`'s namespace (e.g. a haagent agent in `n1`),
    /// logging to `<dir>/<label>.log`; kept in [`RoutedLab::procs`] and killed (by PID,
    /// with its descendants) when the lab is dropped, before BIRD and the namespaces.
    pub fn spawn(
        &mut self,
        host: &str,
        label: &str,
        program: &std::path::Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> &mut Proc {
        let log = self.log_path(label);
        let p = Proc::spawn(label, self.ns(host), program, args, env, &log).unwrap();
        self.procs.push(p);
        self.procs.last_mut().unwrap()
    }

    /// Issues haagent certificates for n1 and n2 (one CA, cluster `test`, each node's
    /// uplink address as its IP SAN) into `<dir>/certs`, once; returns that directory.
    pub fn haagent_certs(&self) -> PathBuf {
        let certs = self.dir.path().join("certs");
        if certs.exists() {
            return certs;
        }
        let dir = certs.to_string_lossy().into_owned();
        super::run_ok(&["certs", "init", "--dir", &dir, "--cluster", "test"]);
        for n in NODES {
            let addr = n.addr.to_string();
            super::run_ok(&[
                "certs", "issue", "--dir", &dir, "--name", n.name, "--ip", &addr,
            ]);
        }
        certs
    }

    /// The node-wide part of `node`'s haagent config: `[node]` (on `eth0`, listening on
    /// its uplink address), `[tls]` (certificates from [`RoutedLab::haagent_certs`]), the
    /// other node as `[[peer]]` (reached through the router: the two nodes share no
    /// segment), `[control]` and `[state]` in the lab's directory. No VIP and no group:
    /// append a `[[group]]` with `mode = "routed"` (or a `[vip]` table) yourself.
    pub fn haagent_config(&self, node: &str, priority: u8) -> String {
        let me = spec(node);
        let certs = self.haagent_certs();
        let mut text = format!(
            "[node]\nname = \"{}\"\npriority = {priority}\ninterface = \"eth0\"\n\
             listen = \"{}\"\n\n[tls]\ndir = \"{}\"\n\n",
            me.name,
            me.addr,
            certs.display()
        );
        for peer in NODES.iter().filter(|p| p.name != node) {
            text.push_str(&format!(
                "[[peer]]\nname = \"{}\"\naddress = \"{}\"\n\n",
                peer.name, peer.addr
            ));
        }
        text.push_str(&format!(
            "[control]\nsocket = \"{}\"\n\n[state]\ndir = \"{}\"\n\n",
            self.haagent_socket(node).display(),
            self.dir.path().join(format!("{node}-state")).display()
        ));
        text
    }

    /// The control socket of `node`'s agent (as [`RoutedLab::haagent_config`] writes it).
    pub fn haagent_socket(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("{node}.sock"))
    }

    /// Writes `config` to `<dir>/<node>.toml` and starts the real `haagent --config` in
    /// `node`'s namespace (`RUST_LOG=haagent=debug,info`, log `<dir>/haagent-<node>-N.log`);
    /// killed by PID when the lab is dropped (before BIRD). Restart: drop or kill the
    /// returned [`Proc`] (`signal(libc::SIGKILL)`, `wait_exit`) and call this again.
    pub fn start_haagent(&mut self, node: &str, config: &str) -> &mut Proc {
        let path = self.dir.path().join(format!("{node}.toml"));
        std::fs::write(&path, config).unwrap();
        let n = self
            .procs
            .iter()
            .filter(|p| p.label.starts_with(&format!("haagent {node} ")))
            .count();
        let label = format!("haagent {node} {n}");
        let args = vec!["--config".to_string(), path.display().to_string()];
        self.spawn(
            node,
            &label,
            super::haagent(),
            &args,
            &[("RUST_LOG", "haagent=debug,info")],
        )
    }

    /// `haagent ARGS --socket <node's socket>` (the CLI against the running agent).
    pub fn haagent_ctl(&self, node: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new(super::haagent())
            .args(args)
            .arg("--socket")
            .arg(self.haagent_socket(node))
            .output()
            .unwrap()
    }

    /// `haagent status --json` of `node`, parsed; Err while the agent does not answer.
    pub fn haagent_status(&self, node: &str) -> Result<serde_json::Value, String> {
        let out = self.haagent_ctl(node, &["status", "--json"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("status JSON: {e}"))
    }

    /// Polls `node`'s status every 20 ms until `ready(status)`; returns the time; panics
    /// after `timeout` with the last status and every log.
    pub fn wait_haagent(
        &self,
        node: &str,
        timeout: Duration,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let last = match self.haagent_status(node) {
                Ok(s) if ready(&s) => return start.elapsed(),
                Ok(s) => format!("{s:#}"),
                Err(e) => e,
            };
            assert!(
                start.elapsed() < timeout,
                "{node}'s agent never got there within {timeout:?}; last status: {last}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `<dir>/<label>.log`.
    pub fn log_path(&self, label: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", label.replace([' ', '/'], "_")))
    }
}

impl Drop for RoutedLab {
    fn drop(&mut self) {
        if std::env::var_os("HAAGENT_TEST_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
    }
}

fn index(name: &str) -> usize {
    NODES
        .iter()
        .position(|n| n.name == name)
        .unwrap_or_else(|| panic!("no host {name} in the routed lab"))
}

/// `sysctl -qw SETTING` inside `ns`.
fn sysctl(ns: &Netns, setting: &str) {
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

/// A veth from `router_if` in the router (`gw`/`len`) to `eth0` in `host` (`addr`/`len`),
/// both up, the host's default route via `gw`.
fn wire(router: &Netns, router_if: &str, gw: Ipv4Addr, host: &Netns, addr: Ipv4Addr, len: u8) {
    ip_in(
        router,
        &[
            "link",
            "add",
            router_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.name(),
        ],
    );
    ip_in(
        router,
        &["addr", "add", &format!("{gw}/{len}"), "dev", router_if],
    );
    ip_in(router, &["link", "set", router_if, "up"]);
    ip_in(
        host,
        &["addr", "add", &format!("{addr}/{len}"), "dev", "eth0"],
    );
    ip_in(host, &["link", "set", "eth0", "up"]);
    ip_in(host, &["route", "add", "default", "via", &gw.to_string()]);
}
