//! The gateway witness against a real kernel: a "gateway" namespace and a "node"
//! namespace joined by a veth pair (192.0.2.1 ↔ 192.0.2.11, the node's default
//! route via 192.0.2.1 exists only inside its namespace; nothing leaves the
//! machine). The witness runs inside the node namespace; the gateway disappears
//! by setting its end of the veth down.
//!
//! Needs root (namespaces, raw ICMP sockets). Without it every test prints
//! `SKIPPED …` and returns; with `HAAGENT_REQUIRE_NETNS` set (as CI does) a skip
//! is a failure.

use std::fs::File;
use std::future::Future;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use haagent::witness::{
    resolve_gateway, Gateway, Witness, WitnessConfig, WitnessError, WitnessEvent,
};
use tokio::sync::mpsc::Receiver;

/// The node's interface (names are per namespace, so fixed).
const IF_NODE: &str = "veth0";
/// The gateway's interface.
const IF_GW: &str = "veth1";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Returns false (after saying so loudly) when the test cannot run; with
/// `HAAGENT_REQUIRE_NETNS` set a skip is a failure instead.
fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("HAAGENT_REQUIRE_NETNS").is_some() {
        panic!("witness_netns::{test}: needs root for network namespaces, and HAAGENT_REQUIRE_NETNS is set");
    }
    eprintln!("SKIPPED witness_netns::{test}: needs root (network namespaces, CAP_NET_RAW)");
    false
}

/// Runs `ip ARGS`, panics with its stderr on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2 needed): {e}"));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace that is deleted when dropped (also when a test panics).
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Netns {
        ip(&["netns", "add", &name]);
        Netns { name }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The gateway and node namespaces.
struct Lab {
    gw: Netns,
    node: Netns,
}

impl Lab {
    fn new() -> Lab {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let gw = Netns::create(format!("hawit-gw-{id}"));
        let node = Netns::create(format!("hawit-node-{id}"));
        let (ng, nn) = (gw.name.as_str(), node.name.as_str());
        ip(&[
            "-n", nn, "link", "add", IF_NODE, "type", "veth", "peer", "name", IF_GW, "netns", ng,
        ]);
        ip(&["-n", ng, "addr", "add", "192.0.2.1/24", "dev", IF_GW]);
        ip(&["-n", nn, "addr", "add", "192.0.2.11/24", "dev", IF_NODE]);
        for (ns, dev) in [(ng, IF_GW), (nn, IF_NODE), (ng, "lo"), (nn, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        ip(&[
            "-n",
            nn,
            "route",
            "add",
            "default",
            "via",
            "192.0.2.1",
            "dev",
            IF_NODE,
        ]);
        Lab { gw, node }
    }

    fn set_gateway_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.gw.name, "link", "set", IF_GW, state]);
    }

    /// Allows ICMP datagram ("ping") sockets for every group in the node namespace,
    /// so the witness uses one instead of a raw socket.
    fn allow_ping_sockets(&self) {
        ip(&[
            "netns",
            "exec",
            &self.node.name,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ping_group_range=0 2147483647",
        ]);
    }

    /// Runs `make()`'s future on a current-thread runtime in a dedicated thread
    /// that has joined the node namespace (setns is per thread; sockets stay in
    /// the namespace they were created in).
    fn run_in_node<F, Fut>(&self, make: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future,
        Fut::Output: Send + 'static,
    {
        let path = format!("/var/run/netns/{}", self.node.name);
        let thread = std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: valid namespace fd; only this thread switches.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(make())
        });
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Waits (generously) for the next witness event.
async fn next_event(events: &mut Receiver<WitnessEvent>, within: Duration) -> WitnessEvent {
    tokio::time::timeout(within, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no witness event within {within:?}"))
        .expect("witness task ended")
}

/// Auto resolves the gateway, the first verdict is Reachable, losing the
/// gateway's link gives Unreachable within fall × interval (plus slack), and
/// bringing it back gives Reachable again.
fn follows_gateway_link(lab: Lab) {
    let gw_ns = lab.gw.name.clone();
    lab.run_in_node(move || async move {
        assert_eq!(resolve_gateway(IF_NODE).await.unwrap(), GATEWAY);

        let cfg = WitnessConfig::new(IF_NODE, Gateway::Auto);
        let (interval, fall, rise) = (cfg.interval, cfg.fall, cfg.rise);
        assert_eq!(interval, Duration::from_millis(200));
        assert_eq!(cfg.timeout, interval);
        assert_eq!((fall, rise), (3, 2));
        let (witness, mut events) = Witness::spawn(cfg).await.unwrap();
        assert_eq!(witness.gateway(), GATEWAY);
        assert_eq!(
            witness.reachable(),
            None,
            "no verdict before the first echoes"
        );

        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Reachable { gateway, rtt } => {
                assert_eq!(gateway, GATEWAY);
                assert!(rtt < interval, "rtt {rtt:?}");
            }
            other => panic!("first event should be Reachable, got {other:?}"),
        }
        assert_eq!(witness.reachable(), Some(true));
        assert!(witness.last_rtt().is_some());

        let set_link = |up: bool| {
            let state = if up { "up" } else { "down" };
            ip(&["-n", &gw_ns, "link", "set", IF_GW, state]);
        };

        set_link(false);
        let cut = Instant::now();
        let event = next_event(&mut events, Duration::from_secs(10)).await;
        let took = cut.elapsed();
        eprintln!("Unreachable after {took:?}: {event:?}");
        match &event {
            WitnessEvent::Unreachable { gateway, reason } => {
                assert_eq!(*gateway, GATEWAY);
                assert!(
                    reason.starts_with("3 echoes to 192.0.2.1 unanswered (fall 3 × 200 ms)"),
                    "{reason}"
                );
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        // fall echoes, plus the one in flight at the cut, plus scheduling slack.
        let bound = interval * (fall + 1) + Duration::from_millis(500);
        assert!(took <= bound, "Unreachable after {took:?}, bound {bound:?}");
        assert_eq!(witness.reachable(), Some(false));

        set_link(true);
        let restored = Instant::now();
        let event = next_event(&mut events, Duration::from_secs(10)).await;
        eprintln!("Reachable again after {:?}: {event:?}", restored.elapsed());
        assert!(
            matches!(event, WitnessEvent::Reachable { gateway, .. } if gateway == GATEWAY),
            "expected Reachable, got {event:?}"
        );
        assert_eq!(witness.reachable(), Some(true));

        // Only flips are reported: a steady gateway says nothing more.
        let quiet = tokio::time::timeout(interval * 5, events.recv()).await;
        assert!(quiet.is_err(), "unexpected event while steady: {quiet:?}");
    });
}

#[test]
fn witness_follows_gateway_link_with_raw_socket() {
    if !root_or_skip("witness_follows_gateway_link_with_raw_socket") {
        return;
    }
    // New namespaces have ping_group_range "1 0": the witness falls back to raw.
    follows_gateway_link(Lab::new());
}

#[test]
fn witness_follows_gateway_link_with_datagram_socket() {
    if !root_or_skip("witness_follows_gateway_link_with_datagram_socket") {
        return;
    }
    let lab = Lab::new();
    lab.allow_ping_sockets();
    follows_gateway_link(lab);
}

#[test]
fn witness_first_verdict_is_unreachable_when_gateway_is_down() {
    if !root_or_skip("witness_first_verdict_is_unreachable_when_gateway_is_down") {
        return;
    }
    let lab = Lab::new();
    lab.set_gateway_link(false);
    lab.run_in_node(|| async {
        let mut cfg = WitnessConfig::new(IF_NODE, Gateway::Addr(GATEWAY));
        cfg.interval = Duration::from_millis(50);
        cfg.timeout = Duration::from_millis(50);
        let (witness, mut events) = Witness::spawn(cfg).await.unwrap();
        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Unreachable { gateway, reason } => {
                assert_eq!(gateway, GATEWAY);
                assert!(reason.contains("unanswered (fall 3 × 50 ms)"), "{reason}");
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert_eq!(witness.reachable(), Some(false));
        assert_eq!(witness.last_rtt(), None);
    });
}

#[test]
fn witness_without_default_route_names_the_config_key() {
    if !root_or_skip("witness_without_default_route_names_the_config_key") {
        return;
    }
    let lab = Lab::new();
    ip(&["-n", &lab.node.name, "route", "del", "default"]);
    lab.run_in_node(|| async {
        let expected = "no default route via veth0 (set [witness] gateway = \"<ip>\")";
        let e = resolve_gateway(IF_NODE).await.unwrap_err();
        assert!(matches!(e, WitnessError::NoDefaultRoute { .. }), "{e:?}");
        assert_eq!(e.to_string(), expected);
        let e = Witness::spawn(WitnessConfig::new(IF_NODE, Gateway::Auto))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), expected);
        // The loopback has no default route either, while veth0 exists: the
        // message names the interface asked about.
        let e = resolve_gateway("lo").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "no default route via lo (set [witness] gateway = \"<ip>\")"
        );
    });
}
