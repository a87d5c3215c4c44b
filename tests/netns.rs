//! End-to-end tests: the real `haagent` binary in network namespaces on one L2 segment,
//! with real QUIC, real netlink and real ARP. They need root; without it they say loudly
//! that they were skipped, and with HAAGENT_REQUIRE_NETNS=1 (as CI sets) a skip is a failure.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use haagent::lab::{is_root, Lab};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
/// Generous bound for a cluster to converge after start (TLS handshakes + master-down).
const CONVERGE: Duration = Duration::from_secs(10);
/// Generous bound for a takeover at default timers (the expected value is ~200 ms).
const TAKEOVER: Duration = Duration::from_secs(3);

fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var_os("HAAGENT_REQUIRE_NETNS").is_some() {
        panic!("{test}: needs root for network namespaces, and HAAGENT_REQUIRE_NETNS is set");
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces); run as root to test for real");
    false
}

fn haagent() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_haagent"))
}

fn run_ok(args: &[&str]) {
    let out = Command::new(haagent()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "haagent {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One node of a test cluster.
struct Node {
    name: &'static str,
    priority: u8,
    extra: &'static str,
}

fn node(name: &'static str, priority: u8) -> Node {
    Node {
        name,
        priority,
        extra: "",
    }
}

/// A lab with the given nodes plus a client, certificates from one CA, a config per node.
struct Cluster {
    lab: Lab,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new(nodes: &[Node]) -> Self {
        let names: Vec<&str> = nodes.iter().map(|n| n.name).collect();
        let mut lab = Lab::new(&names).unwrap();
        lab.add_host("client", CLIENT_ADDR).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let certs_s = certs.to_str().unwrap();
        run_ok(&["certs", "init", "--dir", certs_s, "--cluster", "test"]);
        for n in nodes {
            let addr = lab.host(n.name).unwrap().addr.to_string();
            run_ok(&["certs", "issue", "--dir", certs_s, "--name", n.name, "--ip", &addr]);
        }
        let cluster = Self { lab, dir };
        for n in nodes {
            cluster.write_config(n, nodes, &certs);
        }
        cluster
    }

    fn write_config(&self, me: &Node, all: &[Node], certs: &Path) {
        let addr = self.lab.host(me.name).unwrap().addr;
        let mut text = format!(
            "[node]\nname = \"{}\"\npriority = {}\ninterface = \"eth0\"\nlisten = \"{addr}\"\n\n\
             [vip]\naddresses = [\"{VIP}/24\"]\n\n[tls]\ndir = \"{}\"\n\n",
            me.name,
            me.priority,
            certs.display()
        );
        for peer in all.iter().filter(|p| p.name != me.name) {
            let paddr = self.lab.host(peer.name).unwrap().addr;
            text.push_str(&format!(
                "[[peer]]\nname = \"{}\"\naddress = \"{paddr}\"\n\n",
                peer.name
            ));
        }
        text.push_str(me.extra);
        std::fs::write(self.config_path(me.name), text).unwrap();
    }

    fn config_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.toml"))
    }

    fn start(&mut self, name: &str) {
        let config = self.config_path(name);
        let log = self.dir.path().join(format!(
            "{name}-{}.log",
            self.lab.agents.iter().filter(|a| a.host == name).count()
        ));
        let args = vec!["--config".to_string(), config.display().to_string()];
        self.lab.start_agent(name, haagent(), &args, &log).unwrap();
    }

    fn holders(&self) -> Vec<String> {
        self.lab.holders(VIP).unwrap()
    }

    /// Waits until exactly `name` holds the VIP; returns how long that took.
    fn wait_sole_holder(&self, name: &str, timeout: Duration) -> Duration {
        let (took, last) = self
            .lab
            .wait_holders(VIP, timeout, |h| h.len() == 1 && h[0] == name)
            .unwrap();
        match took {
            Some(t) => t,
            None => panic!(
                "expected {name} alone to hold {VIP} within {timeout:?}, holders are {last:?}\n{}",
                self.logs()
            ),
        }
    }

    /// Waits until `name` holds the VIP (others may still hold it too); returns the time.
    fn wait_holder(&self, name: &str, timeout: Duration) -> Duration {
        let (took, last) = self
            .lab
            .wait_holders(VIP, timeout, |h| h.iter().any(|x| x == name))
            .unwrap();
        match took {
            Some(t) => t,
            None => panic!(
                "expected {name} to hold {VIP} within {timeout:?}, holders are {last:?}\n{}",
                self.logs()
            ),
        }
    }

    fn logs(&self) -> String {
        self.lab
            .agents
            .iter()
            .map(|a| format!("----- {} ({}) -----\n{}", a.host, a.log.display(), a.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Makes the client talk to the VIP so it resolves the VIP's MAC (a real ARP exchange).
    fn client_contacts_vip(&self) {
        let client = self.lab.host("client").unwrap();
        let out = client
            .ns
            .command("bash")
            .args(["-c", &format!("echo ping > /dev/udp/{VIP}/9")])
            .output()
            .unwrap();
        assert!(out.status.success(), "client could not send to the VIP");
    }

    /// Polls the client's neighbour entry for the VIP until it shows `mac`.
    fn wait_client_sees_mac(&self, mac: &str, timeout: Duration) -> Duration {
        let start = std::time::Instant::now();
        loop {
            let seen = self.lab.neighbour_mac("client", VIP).unwrap();
            if seen.as_deref() == Some(mac) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "client's neighbour entry for {VIP} is {seen:?}, expected {mac}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `name`'s current log contains `text`.
    fn wait_log(&mut self, name: &str, text: &str, timeout: Duration) {
        let start = std::time::Instant::now();
        loop {
            if self.lab.agent(name).unwrap().log_text().contains(text) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{name}'s log never said {text:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Samples holders every 5 ms for `window` and asserts each sample equals `expected`.
    fn assert_holders_stay(&self, expected: &[&str], window: Duration) {
        let start = std::time::Instant::now();
        let mut samples = 0;
        while start.elapsed() < window {
            let h = self.holders();
            assert_eq!(h, expected, "holders changed after {samples} samples\n{}", self.logs());
            samples += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(samples > 10, "too few samples taken");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::env::var_os("HAAGENT_TEST_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn highest_priority_holds_vip_and_link_down_moves_it_with_the_mac() {
    if !require_root("highest_priority_holds_vip_and_link_down_moves_it_with_the_mac") {
        return;
    }
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    c.start("n2");
    c.start("n1");
    c.wait_sole_holder("n1", CONVERGE);
    let n1_mac = c.lab.host("n1").unwrap().mac.clone();
    let n2_mac = c.lab.host("n2").unwrap().mac.clone();

    let mut takeovers = Vec::new();
    for round in 0..3 {
        c.client_contacts_vip();
        c.wait_client_sees_mac(&n1_mac, Duration::from_secs(2));

        c.lab.set_link("n1", false).unwrap();
        let took = c.wait_holder("n2", TAKEOVER);
        let mac_after = c.wait_client_sees_mac(&n2_mac, Duration::from_secs(2));
        eprintln!(
            "round {round}: link down → n2 holds the VIP after {} ms, client sees n2's MAC {} ms later",
            took.as_millis(),
            mac_after.as_millis()
        );
        takeovers.push(took);

        // Cable back: n1's epoch is stale, it steps down; then, having the higher priority
        // and preempt on, it takes the VIP back. Exactly one holder in the end.
        c.lab.set_link("n1", true).unwrap();
        c.wait_sole_holder("n1", CONVERGE);
        c.wait_client_sees_mac(&n1_mac, Duration::from_secs(2));
    }
    eprintln!(
        "link down takeover at default timers: median {} ms over {} rounds",
        median(takeovers).as_millis(),
        3
    );
}

#[test]
fn sigterm_hands_over_through_priority_zero() {
    if !require_root("sigterm_hands_over_through_priority_zero") {
        return;
    }
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100), node("n3", 50)]);
    c.start("n1");
    c.start("n2");
    c.start("n3");
    c.wait_sole_holder("n1", CONVERGE);

    c.lab.agent("n1").unwrap().signal(libc::SIGTERM).unwrap();
    let took = c.wait_sole_holder("n2", TAKEOVER);
    eprintln!("SIGTERM handover to n2: {} ms", took.as_millis());
    let status = c.lab.agent("n1").unwrap().wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "n1 must exit cleanly after SIGTERM: {status:?}\n{}",
        c.logs()
    );
    // The highest remaining priority took over, and only it.
    c.assert_holders_stay(&["n2"], Duration::from_millis(500));
}

#[test]
fn restarted_higher_priority_node_takes_the_vip_back() {
    if !require_root("restarted_higher_priority_node_takes_the_vip_back") {
        return;
    }
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    c.lab.agent("n1").unwrap().signal(libc::SIGTERM).unwrap();
    c.wait_sole_holder("n2", TAKEOVER);
    assert!(c.lab.agent("n1").unwrap().wait_exit(Duration::from_secs(5)).is_some());

    c.start("n1");
    let took = c.wait_sole_holder("n1", CONVERGE);
    eprintln!("restarted n1 preempted n2 after {} ms", took.as_millis());
}

#[test]
fn restarted_nopreempt_node_leaves_the_vip_where_it_is() {
    if !require_root("restarted_nopreempt_node_leaves_the_vip_where_it_is") {
        return;
    }
    let mut c = Cluster::new(&[
        Node {
            name: "n1",
            priority: 200,
            extra: "[election]\npreempt = false\n",
        },
        node("n2", 100),
    ]);
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    c.lab.agent("n1").unwrap().signal(libc::SIGTERM).unwrap();
    c.wait_sole_holder("n2", TAKEOVER);
    assert!(c.lab.agent("n1").unwrap().wait_exit(Duration::from_secs(5)).is_some());

    c.start("n1");
    // Once n1 is up and follows n2, many master-down intervals (~200 ms each) pass with
    // n2 as the only holder: a preempting node would have taken over in the first one.
    c.wait_log("n1", "peer connected", CONVERGE);
    c.assert_holders_stay(&["n2"], Duration::from_secs(2));
}

#[test]
fn killed_master_is_replaced_and_its_stale_vip_removed_on_restart() {
    if !require_root("killed_master_is_replaced_and_its_stale_vip_removed_on_restart") {
        return;
    }
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 150), node("n3", 100)]);
    c.start("n1");
    c.start("n2");
    c.start("n3");
    c.wait_sole_holder("n1", CONVERGE);

    c.lab.agent("n1").unwrap().signal(libc::SIGKILL).unwrap();
    let took = c.wait_holder("n2", TAKEOVER);
    eprintln!("SIGKILL of the master: n2 holds the VIP after {} ms", took.as_millis());
    // SIGKILL leaves n1's address behind (the kernel lease of the split-brain work removes
    // it); the election itself must pick exactly n2 among the living.
    assert!(!c.holders().contains(&"n3".to_string()), "{}", c.logs());

    c.start("n1");
    c.wait_log("n1", "stale", CONVERGE);
    c.wait_sole_holder("n1", CONVERGE);
}

#[test]
fn node_with_a_foreign_ca_cannot_join_or_disturb() {
    if !require_root("node_with_a_foreign_ca_cannot_join_or_disturb") {
        return;
    }
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100), node("n3", 254)]);
    // n3 is configured everywhere, but its certificate comes from another CA; it has the
    // highest priority, so if it were admitted it would take over.
    let rogue = c.dir.path().join("rogue");
    let rogue_s = rogue.to_str().unwrap();
    run_ok(&["certs", "init", "--dir", rogue_s, "--cluster", "rogue"]);
    let n3_addr = c.lab.host("n3").unwrap().addr.to_string();
    run_ok(&["certs", "issue", "--dir", rogue_s, "--name", "n3", "--ip", &n3_addr]);
    // Its own VIP differs so that what it does alone on its host does not show up as ours.
    let cfg = std::fs::read_to_string(c.config_path("n3"))
        .unwrap()
        .replace(&format!("{VIP}/24"), "192.0.2.101/24")
        .replace(
            &c.dir.path().join("certs").display().to_string(),
            rogue_s,
        );
    std::fs::write(c.config_path("n3"), cfg).unwrap();

    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    c.start("n3");
    c.wait_log("n1", "rejected", CONVERGE);
    c.assert_holders_stay(&["n1"], Duration::from_secs(2));
    let n1_log = c.lab.agent("n1").unwrap().log_text();
    assert_eq!(
        n1_log.matches("taking over").count(),
        1,
        "n1 must have taken over exactly once\n{}",
        c.logs()
    );
}
