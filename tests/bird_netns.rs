//! The BIRD side of routed mode (issue 15), proven with the real BIRD 2 and the shipped
//! configs (configs/bird-node.conf, configs/bird-router.conf) in the routed lab
//! (tests/support/routed.rs). Plain `ip addr` / `ip route` commands play haagent's part:
//! the master's VIP on `lo` with a lifetime, and `VIP/32 dev lo src VIP proto 98 metric
//! EPOCH`.
//!
//! Needs root (namespaces) and bird2 (`bird`, `birdc`). Without root the test prints
//! `SKIPPED …` and returns; with `HAAGENT_REQUIRE_NETNS=1` (as CI sets) a skip is a failure.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use support::bird;
use support::require_root;
use support::routed::{ip_in, spec, RoutedLab, ESTABLISH, VIP, VIP_PREFIX};

/// Bound for a change on a node to reach the router's table: the kernel scan (1 s) plus
/// BGP's propagation, generously for a loaded machine.
const PROPAGATE: Duration = Duration::from_secs(5);

/// What haagent does on the master: the VIP on `lo` with a lifetime, then the host route
/// with the epoch as metric.
fn announce(lab: &RoutedLab, node: &str, epoch: u32, lifetime_s: u32) {
    let ns = lab.ns(node);
    let lft = lifetime_s.to_string();
    ip_in(
        ns,
        &[
            "addr",
            "add",
            &format!("{VIP}/32"),
            "dev",
            "lo",
            "valid_lft",
            &lft,
            "preferred_lft",
            &lft,
        ],
    );
    ip_in(
        ns,
        &[
            "route",
            "add",
            VIP_PREFIX,
            "dev",
            "lo",
            "src",
            &VIP.to_string(),
            "proto",
            "98",
            "metric",
            &epoch.to_string(),
        ],
    );
}

fn via(node: &str) -> IpAddr {
    spec(node).addr.into()
}

#[test]
fn bird_announces_the_newest_master_and_nothing_else() {
    if !require_root("bird_announces_the_newest_master_and_nothing_else") {
        return;
    }
    let lab = RoutedLab::new();

    // Sessions and BFD.
    let took = lab.wait_established(ESTABLISH);
    println!(
        "sessions router-n1 and router-n2 Established, BFD Up, after {} ms",
        took.as_millis()
    );
    assert_eq!(
        lab.router_best(VIP_PREFIX),
        None,
        "no VIP route before any master"
    );
    assert_eq!(
        lab.client_ping(VIP),
        None,
        "the VIP answers before any master"
    );

    // n1 becomes master with epoch 5.
    let start = Instant::now();
    announce(&lab, "n1", 5, 60);
    let (_, best) = lab.wait_router_best(VIP_PREFIX, PROPAGATE, |r| r.is_some());
    let best = best.unwrap();
    println!(
        "n1 (epoch 5) at the router {} ms after `ip route add`: {best:?}",
        start.elapsed().as_millis()
    );
    assert_eq!(best.via, via("n1"));
    assert_eq!(best.local_pref, Some(5));
    assert_eq!(lab.router_kernel_via(VIP), Some(via("n1")));
    lab.wait_client_answered_by(VIP, "n1", PROPAGATE);
    assert_eq!(lab.bird("n1").exported("uplink"), [VIP_PREFIX]);

    // n2 becomes master with epoch 7 while n1 still announces 5.
    let start = Instant::now();
    announce(&lab, "n2", 7, 60);
    let (_, best) = lab.wait_router_best(VIP_PREFIX, PROPAGATE, |r| {
        r.is_some_and(|r| r.via == via("n2"))
    });
    let best = best.unwrap();
    println!(
        "n2 (epoch 7) preferred at the router {} ms after `ip route add`: {best:?}",
        start.elapsed().as_millis()
    );
    assert_eq!(best.local_pref, Some(7));
    let all = lab.router_bird.routes(VIP_PREFIX);
    assert_eq!(all.len(), 2, "both announcements kept: {all:?}");
    assert!(
        all.iter()
            .any(|r| r.via == via("n1") && r.local_pref == Some(5)),
        "{all:?}"
    );
    assert_eq!(lab.router_kernel_via(VIP), Some(via("n2")));
    lab.wait_client_answered_by(VIP, "n2", PROPAGATE);

    // n2 loses the address (its lease ran out, or haagent deleted it): the kernel drops
    // the route whose src is gone, BIRD withdraws it, n1's is best again.
    let start = Instant::now();
    ip_in(
        lab.ns("n2"),
        &["addr", "del", &format!("{VIP}/32"), "dev", "lo"],
    );
    let left = ip_in(lab.ns("n2"), &["route", "show", "proto", "98"]);
    assert!(
        left.trim().is_empty(),
        "n2's route outlived its address: {left}"
    );
    let (_, best) = lab.wait_router_best(VIP_PREFIX, PROPAGATE, |r| {
        r.is_some_and(|r| r.via == via("n1"))
    });
    println!(
        "n2's address deleted: router back to n1 after {} ms: {best:?}",
        start.elapsed().as_millis()
    );
    assert_eq!(best.unwrap().local_pref, Some(5));
    assert_eq!(lab.router_bird.routes(VIP_PREFIX).len(), 1);
    lab.wait_client_answered_by(VIP, "n1", PROPAGATE);

    // The same by the kernel alone: n2 master again (epoch 9) with a 2 s lease that is
    // never renewed. The address expires, its route goes with it, BIRD withdraws.
    let start = Instant::now();
    announce(&lab, "n2", 9, 2);
    lab.wait_router_best(VIP_PREFIX, PROPAGATE, |r| {
        r.is_some_and(|r| r.via == via("n2"))
    });
    lab.wait_client_answered_by(VIP, "n2", PROPAGATE);
    let (_, best) = lab.wait_router_best(VIP_PREFIX, PROPAGATE, |r| {
        r.is_some_and(|r| r.via == via("n1"))
    });
    println!(
        "n2's 2 s lease not renewed: router back to n1 {} ms after the address was added",
        start.elapsed().as_millis()
    );
    assert_eq!(best.unwrap().local_pref, Some(5));
    lab.wait_client_answered_by(VIP, "n1", PROPAGATE);

    // Nothing but haagent's /32s: a proto-98 /25 and a /32 of another protocol on n1.
    ip_in(
        lab.ns("n1"),
        &[
            "route",
            "add",
            "198.51.100.128/25",
            "dev",
            "lo",
            "proto",
            "98",
        ],
    );
    ip_in(
        lab.ns("n1"),
        &[
            "route",
            "add",
            "203.0.113.201/32",
            "dev",
            "lo",
            "proto",
            "static",
        ],
    );
    // Two kernel scans and a BGP update's worth of time for them to (wrongly) show up.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(lab.bird("n1").exported("uplink"), [VIP_PREFIX]);
    assert_eq!(
        lab.bird("n1").prefixes(),
        [VIP_PREFIX],
        "n1's BIRD learned more than the VIP"
    );
    assert_eq!(
        lab.router_bird.prefixes(),
        [VIP_PREFIX],
        "the router got more than the VIP"
    );
    let kernel = ip_in(lab.ns("router"), &["route", "show", "proto", "bird"]);
    assert_eq!(
        kernel.lines().count(),
        1,
        "router's kernel routes from BIRD: {kernel}"
    );

    // n1's link silently dead (packets dropped, links up): only BFD can tell.
    let start = Instant::now();
    lab.cut_uplink("n1", true);
    let (_, best) = lab.wait_router_best(VIP_PREFIX, PROPAGATE, |r| r.is_none());
    let took = start.elapsed();
    println!(
        "n1's link cut (nft drop, links up): router dropped n1's route after {} ms (BFD: 3 x 100 ms)",
        took.as_millis()
    );
    assert_eq!(best, None);
    assert!(
        took < Duration::from_millis(2500),
        "took {took:?}: the BGP hold time (3 s), not BFD, noticed"
    );
    let state = lab.router_bird.protocol_state("n1");
    println!("router's session n1 after the cut: {state:?}");
    assert_eq!(lab.client_ping(VIP), None);

    // Back: the session comes up again and n1's route returns.
    lab.cut_uplink("n1", false);
    let (took, _) = lab.wait_router_best(VIP_PREFIX, ESTABLISH, |r| {
        r.is_some_and(|r| r.via == via("n1"))
    });
    println!(
        "n1's link restored: route back after {} ms",
        took.as_millis()
    );

    // n1's uplink down (router side of the veth): the router notices.
    let start = Instant::now();
    lab.set_uplink("n1", false);
    lab.wait_router_best(VIP_PREFIX, PROPAGATE, |r| r.is_none());
    println!(
        "router-side veth to n1 down: route dropped after {} ms",
        start.elapsed().as_millis()
    );
    println!(
        "router's session n1 after link down: {:?}",
        lab.router_bird.protocol_state("n1")
    );
    lab.set_uplink("n1", true);
}

/// `birdc show route 203.0.113.200/32 all` on the router while n1 (epoch 5) and n2 (epoch 7)
/// both announce, as BIRD 2.0.12 printed it.
const TWO: &str = "BIRD 2.0.12 ready.
Table master4:
203.0.113.200/32     unicast [n2 12:40:01.123] * (100) [i]
\tvia 198.51.100.12 on to-n2
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 
\tBGP.next_hop: 198.51.100.12
\tBGP.local_pref: 7
                 unicast [n1 12:39:58.001] (100) [i]
\tvia 192.0.2.11 on to-n1
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 
\tBGP.next_hop: 192.0.2.11
\tBGP.local_pref: 5
";

/// The parser on BIRD 2.0.12's `show route … all` for two routes of one prefix.
#[test]
fn parses_two_routes_best_first() {
    let r = bird::parse_routes(TWO, "203.0.113.200/32");
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].via, IpAddr::from(Ipv4Addr::new(198, 51, 100, 12)));
    assert_eq!(r[0].local_pref, Some(7));
    assert_eq!(r[0].protocol, "n2");
    assert_eq!(r[1].via, IpAddr::from(Ipv4Addr::new(192, 0, 2, 11)));
    assert_eq!(r[1].local_pref, Some(5));
    assert_eq!(bird::parse_prefixes(TWO), ["203.0.113.200/32"]);
    assert!(bird::parse_routes(TWO, "203.0.113.201/32").is_empty());
}

/// The shipped configs' `define` lines are set, `log syslog` becomes `log stderr`.
#[test]
fn renders_defines() {
    let t = "define NODE_ADDR = 192.0.2.11;    # comment\nlog syslog all;\nrouter id NODE_ADDR;\n";
    let r = bird::render(t, &[("NODE_ADDR", "198.51.100.12".into())]);
    assert_eq!(
        r,
        "define NODE_ADDR = 198.51.100.12;\nlog stderr all;\nrouter id NODE_ADDR;\n"
    );
}

/// The shipped BIRD configs, and the lab's renderings of them (n2's values in the node
/// config), pass `bird -p` (parse only; no root needed).
#[test]
fn shipped_bird_configs_parse() {
    if std::process::Command::new("bird")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("HAAGENT_REQUIRE_NETNS").is_none(),
            "bird (bird2) is not installed and HAAGENT_REQUIRE_NETNS is set"
        );
        eprintln!("SKIPPED shipped_bird_configs_parse: bird (bird2) is not installed");
        return;
    }
    let n2 = spec("n2");
    let cases = [
        ("bird-node.conf", bird::shipped("bird-node.conf")),
        ("bird-router.conf", bird::shipped("bird-router.conf")),
        (
            "bird-node.conf for n2",
            bird::render(
                &bird::shipped("bird-node.conf"),
                &[
                    ("NODE_ADDR", n2.addr.to_string()),
                    ("ROUTER_ADDR", n2.gateway.to_string()),
                ],
            ),
        ),
        // The IPv6 parts, appended as docs/routed.md says.
        (
            "bird-node.conf + bird-node6.conf",
            format!(
                "{}\n{}",
                bird::shipped("bird-node.conf"),
                bird::shipped("bird-node6.conf")
            ),
        ),
        (
            "bird-router.conf + bird-router6.conf",
            format!(
                "{}\n{}",
                bird::shipped("bird-router.conf"),
                bird::shipped("bird-router6.conf")
            ),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, text) in cases {
        let path = dir.path().join("bird.conf");
        std::fs::write(&path, &text).unwrap();
        let out = std::process::Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what} does not parse: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The harness runs real haagent agents in n1 and n2, which elect one master across the
/// router (the nodes share no segment). A plain `[vip]` (L2 mode, on `eth0`) here: the
/// routed-mode end-to-end test appends a `[[group]]` with `mode = "routed"` instead.
#[test]
fn haagent_agents_elect_across_the_router() {
    if !require_root("haagent_agents_elect_across_the_router") {
        return;
    }
    let mut lab = RoutedLab::new();
    for (node, priority) in [("n1", 200), ("n2", 100)] {
        let mut config = lab.haagent_config(node, priority);
        config.push_str(&format!("[vip]\naddresses = [\"{VIP}/32\"]\n"));
        lab.start_haagent(node, &config);
    }
    let took = lab.wait_haagent("n1", Duration::from_secs(20), |s| s["state"] == "master");
    lab.wait_haagent("n2", Duration::from_secs(5), |s| s["state"] == "backup");
    println!(
        "haagent: n1 master, n2 backup across the router after {} ms",
        took.as_millis()
    );
}
