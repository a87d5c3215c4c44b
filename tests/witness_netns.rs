//! The gateway witness against a real kernel: a "gateway" namespace and a "node"
//! namespace joined by a veth pair (192.0.2.1 ↔ 192.0.2.11, the node's default
//! route via 192.0.2.1 exists only inside its namespace; nothing leaves the
//! machine). The witness runs inside the node namespace; the gateway disappears
//! by setting its end of the veth down.
//!
//! Needs root (namespaces, raw ICMP sockets). Without it every test prints
//! `SKIPPED …` and returns; with `HAAGENT_REQUIRE_NETNS` set (as CI does) a skip
//! is a failure.

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use haagent::witness::{
    resolve_gateway, Gateway, Witness, WitnessConfig, WitnessError, WitnessEvent,
};
use support::require_root;
use support::veth::{ip, Netns, VethLab, IF_A, IF_B};
use tokio::sync::mpsc::Receiver;

/// The node's interface (in namespace A of the veth lab).
const IF_NODE: &str = IF_A;
/// The gateway's interface (in namespace B).
const IF_GW: &str = IF_B;
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// The node (A: veth0, 192.0.2.11/24, default route via 192.0.2.1) and the gateway
/// (B: veth1, 192.0.2.1/24).
fn new_lab() -> VethLab {
    let lab = VethLab::new("wit", "192.0.2.11/24", "192.0.2.1/24");
    ip(&[
        "-n",
        lab.a.name(),
        "route",
        "add",
        "default",
        "via",
        "192.0.2.1",
        "dev",
        IF_NODE,
    ]);
    lab
}

/// The witness tests' view of the veth lab.
trait GatewayLab {
    /// The node's namespace.
    fn node(&self) -> &Netns;
    /// The gateway's namespace.
    fn gw(&self) -> &Netns;
    /// Sets the gateway's end of the veth up or down.
    fn set_gateway_link(&self, up: bool);
    /// Allows ICMP datagram ("ping") sockets for every group in the node namespace,
    /// so the witness uses one instead of a raw socket.
    fn allow_ping_sockets(&self);
}

impl GatewayLab for VethLab {
    fn node(&self) -> &Netns {
        &self.a
    }

    fn gw(&self) -> &Netns {
        &self.b
    }

    fn set_gateway_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", self.gw().name(), "link", "set", IF_GW, state]);
    }

    fn allow_ping_sockets(&self) {
        ip(&[
            "netns",
            "exec",
            self.node().name(),
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ping_group_range=0 2147483647",
        ]);
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
fn follows_gateway_link(lab: VethLab) {
    let gw_ns = lab.gw().name().to_string();
    lab.run_in_a(move || async move {
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
    if !require_root("witness_follows_gateway_link_with_raw_socket") {
        return;
    }
    // New namespaces have ping_group_range "1 0": the witness falls back to raw.
    follows_gateway_link(new_lab());
}

#[test]
fn witness_follows_gateway_link_with_datagram_socket() {
    if !require_root("witness_follows_gateway_link_with_datagram_socket") {
        return;
    }
    let lab = new_lab();
    lab.allow_ping_sockets();
    follows_gateway_link(lab);
}

#[test]
fn witness_first_verdict_is_unreachable_when_gateway_is_down() {
    if !require_root("witness_first_verdict_is_unreachable_when_gateway_is_down") {
        return;
    }
    let lab = new_lab();
    lab.set_gateway_link(false);
    lab.run_in_a(|| async {
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
    if !require_root("witness_without_default_route_names_the_config_key") {
        return;
    }
    let lab = new_lab();
    ip(&["-n", lab.node().name(), "route", "del", "default"]);
    lab.run_in_a(|| async {
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
