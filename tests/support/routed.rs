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
//! [`RoutedLab::dual_stack`] adds IPv6 to every segment (n1 `2001:db8:1::11/64`, router
//! `::1`; n2 `2001:db8:2::12/64`; client `2001:db8:3::50/64`, RFC 3849), an IPv6 BGP
//! session per node (configs/bird-node6.conf, configs/bird-router6.conf appended to the
//! IPv4 ones) and the IPv6 VIP [`VIP6`], `/128` on no segment.
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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use haagent_lab::proc::Proc;
use haagent_lab::{unique_tag, Netns};

use super::bird::{self, Bird, Route};

/// The VIP: a /32 that is on no segment.
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 200);
/// `VIP/32`, as BIRD prints it.
pub const VIP_PREFIX: &str = "203.0.113.200/32";
/// The IPv6 VIP of [`RoutedLab::dual_stack`]: a /128 on no segment.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x200);
/// `VIP6/128`, as BIRD prints it.
pub const VIP6_PREFIX: &str = "2001:db8:ffff::200/128";
/// The client's IPv6 address ([`RoutedLab::dual_stack`]).
pub const CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x50);
/// The router's IPv6 address on the client's segment.
pub const ROUTER_CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
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
    /// Its IPv6 uplink address, /64 ([`RoutedLab::dual_stack`]).
    pub addr6: Ipv6Addr,
    /// The router's IPv6 address on that segment.
    pub gateway6: Ipv6Addr,
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
        addr6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11),
        gateway6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
        router_if: "to-n1",
        ttl: 64,
    },
    NodeSpec {
        name: "n2",
        addr: Ipv4Addr::new(198, 51, 100, 12),
        gateway: Ipv4Addr::new(198, 51, 100, 1),
        addr6: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x12),
        gateway6: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1),
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
    /// Built by [`RoutedLab::dual_stack`]: IPv6 on every segment, IPv6 BGP sessions.
    pub ipv6: bool,
}

impl RoutedLab {
    /// Builds the namespaces and links, starts BIRD in the router and both nodes (not
    /// waiting for the sessions: see [`RoutedLab::wait_established`]).
    pub fn new() -> Self {
        Self::build(false)
    }

    /// [`RoutedLab::new`] with IPv6 as well: addresses on every segment, IPv6 default
    /// routes via the router, which forwards IPv6, and the shipped IPv6 BIRD parts
    /// (`uplink6` on the nodes, `n1_6`/`n2_6` on the router).
    pub fn dual_stack() -> Self {
        Self::build(true)
    }

    fn build(ipv6: bool) -> Self {
        let tag = unique_tag("bgp");
        let router = Netns::create(&format!("{tag}-router")).unwrap();
        sysctl(&router, "net.ipv4.ip_forward=1");
        if ipv6 {
            enable_ipv6(&router);
            sysctl(&router, "net.ipv6.conf.all.forwarding=1");
        }
        let mut nodes = Vec::new();
        for n in NODES {
            let ns = Netns::create(&format!("{tag}-{}", n.name)).unwrap();
            if ipv6 {
                enable_ipv6(&ns);
            }
            wire(&router, n.router_if, n.gateway, &ns, n.addr, 24);
            if ipv6 {
                wire6(&router, n.router_if, n.gateway6, &ns, n.addr6);
            }
            sysctl(&ns, &format!("net.ipv4.ip_default_ttl={}", n.ttl));
            nodes.push(ns);
        }
        let client = Netns::create(&format!("{tag}-client")).unwrap();
        if ipv6 {
            enable_ipv6(&client);
        }
        wire(
            &router,
            "to-client",
            ROUTER_CLIENT,
            &client,
            CLIENT_ADDR,
            25,
        );
        if ipv6 {
            wire6(&router, "to-client", ROUTER_CLIENT6, &client, CLIENT_ADDR6);
        }

        let with_ipv6 = |v4: &str, v6: &str| {
            if ipv6 {
                format!("{}\n{}", bird::shipped(v4), bird::shipped(v6))
            } else {
                bird::shipped(v4)
            }
        };
        let router_conf = bird::render(
            &with_ipv6("bird-router.conf", "bird-router6.conf"),
            &[
                ("ROUTER_ID", ROUTER_ID.to_string()),
                ("N1_ADDR", NODES[0].addr.to_string()),
                ("N2_ADDR", NODES[1].addr.to_string()),
                ("N1_ADDR6", NODES[0].addr6.to_string()),
                ("N2_ADDR6", NODES[1].addr6.to_string()),
                ("LOCAL_AS", AS.to_string()),
            ],
        );
        let router_bird = Bird::start("bird in router", &router, &router_conf).unwrap();
        let mut node_birds = Vec::new();
        for (n, ns) in NODES.iter().zip(&nodes) {
            let conf = bird::render(
                &with_ipv6("bird-node.conf", "bird-node6.conf"),
                &[
                    ("NODE_ADDR", n.addr.to_string()),
                    ("ROUTER_ADDR", n.gateway.to_string()),
                    ("NODE_ADDR6", n.addr6.to_string()),
                    ("ROUTER_ADDR6", n.gateway6.to_string()),
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
            ipv6,
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
                    && (!self.ipv6
                        || (r.established(&format!("{}_6", n.name))
                            && r.bfd_state(n.addr6).as_deref() == Some("Up")
                            && self.bird(n.name).established("uplink6")
                            && self.bird(n.name).bfd_state(n.gateway6).as_deref() == Some("Up")))
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

    /// The next hop of the router's kernel route to `dst` (`ip route get`, either family),
    /// if forwarded through a gateway.
    pub fn router_kernel_via(&self, dst: impl Into<IpAddr>) -> Option<IpAddr> {
        let out = self
            .router
            .ip(&["-o", "route", "get", &dst.into().to_string()])
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

    /// `node`'s whole config: [`RoutedLab::haagent_config`], the router as the witness's
    /// gateway, and one routed group `edge` with `vips` (e.g. `"203.0.113.200/32"`), with
    /// `bird_socket` naming `node`'s BIRD when `bird`.
    pub fn routed_config(&self, node: &str, priority: u8, vips: &[String], bird: bool) -> String {
        let list = vips
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let socket = if bird {
            format!("bird_socket = \"{}\"\n", self.bird(node).socket.display())
        } else {
            String::new()
        };
        format!(
            "{}[witness]\ngateway = \"{}\"\n\n[[group]]\nname = \"edge\"\nmode = \"routed\"\n\
             vips = [{list}]\n{socket}",
            self.haagent_config(node, priority),
            spec(node).gateway
        )
    }

    /// nginx in both nodes, then the agents with one routed group `edge` of `vips` (n1 at
    /// priority 150, n2 at 100; `bird`: with `bird_socket`), until n1 is its master; returns the two configs (to start
    /// an agent again with [`RoutedLab::start_haagent`]).
    pub fn start_pair(&mut self, vips: &[String], bird: bool) -> (String, String) {
        self.start_nginx();
        let c1 = self.routed_config("n1", 150, vips, bird);
        let c2 = self.routed_config("n2", 100, vips, bird);
        self.start_haagent("n1", &c1);
        self.start_haagent("n2", &c2);
        self.wait_haagent("n1", ESTABLISH, |s| s["groups"][0]["state"] == "master");
        (c1, c2)
    }

    /// The router's route came from `node`'s IPv4 session (its next hop is `node`).
    pub fn via4(node: &str) -> impl Fn(Option<&Route>) -> bool + '_ {
        move |r| r.is_some_and(|r| r.via == IpAddr::from(spec(node).addr))
    }

    /// Starts nginx (the lab's config: it answers with the node's name) in n1 and n2,
    /// kept in [`RoutedLab::procs`].
    pub fn start_nginx(&mut self) {
        for n in NODES {
            let dir = self.dir.path().join(format!("nginx-{}", n.name));
            std::fs::create_dir_all(&dir).unwrap();
            let p = haagent_lab::web::start(
                haagent_lab::web::ServerKind::Nginx,
                self.ns(n.name),
                n.name,
                &dir,
                super::haagent(),
            )
            .expect("nginx");
            self.procs.push(p);
        }
    }

    /// SIGKILLs the latest agent started in `node` (by its PID) and waits for its exit.
    pub fn kill_haagent(&mut self, node: &str) {
        let prefix = format!("haagent {node} ");
        let p = self
            .procs
            .iter_mut()
            .rev()
            .find(|p| p.label.starts_with(&prefix))
            .expect("an agent of that node");
        p.signal(libc::SIGKILL).unwrap();
        assert!(
            p.wait_exit(Duration::from_secs(5)),
            "{node}'s agent did not exit"
        );
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

/// IPv6 on, and DAD off (no address is ever tentative), for every interface `ns` has now
/// (`all`, `lo`) and gets later (`default`).
fn enable_ipv6(ns: &Netns) {
    for scope in ["all", "default", "lo"] {
        sysctl(ns, &format!("net.ipv6.conf.{scope}.disable_ipv6=0"));
        sysctl(ns, &format!("net.ipv6.conf.{scope}.accept_dad=0"));
    }
}

/// The IPv6 addresses of a segment [`wire`] made (`/64`, `nodad`) and the host's IPv6
/// default route via the router.
fn wire6(router: &Netns, router_if: &str, gw: Ipv6Addr, host: &Netns, addr: Ipv6Addr) {
    ip_in(
        router,
        &[
            "addr",
            "add",
            &format!("{gw}/64"),
            "dev",
            router_if,
            "nodad",
        ],
    );
    ip_in(
        host,
        &["addr", "add", &format!("{addr}/64"), "dev", "eth0", "nodad"],
    );
    ip_in(
        host,
        &["-6", "route", "add", "default", "via", &gw.to_string()],
    );
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
