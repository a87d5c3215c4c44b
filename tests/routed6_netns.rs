//! Routed mode with an IPv6 VIP (issue 15, `/128` now that IPv6 VIPs exist, issue 13): the
//! real binary in n1 and n2 behind one router, each node's BIRD 2 with the shipped IPv4 and
//! IPv6 parts (configs/bird-node.conf + bird-node6.conf), one group with `203.0.113.200/32`
//! and `2001:db8:ffff::200/128` on `lo`; a client behind the router probes both VIPs over
//! HTTP every 10 ms. Proves, printing the figures:
//! - steady state: the router's best IPv6 route is n1's, with LOCAL_PREF = the epoch, and
//!   the router learnt nothing but the two VIP prefixes;
//! - SIGKILL of n1's agent: the router moves both families to n2 (epoch preference), and
//!   n1's IPv6 announcement ends after its lease even though Linux keeps the route (it only
//!   loses its `src`): BIRD's filter requires the `src`, its scan notices within 1 s;
//! - a restarted n1 removes the route its killed run left and takes the VIPs back;
//! - `haagent handover`: no failed IPv6 request the move does not explain.
//!
//! Needs root and bird2 (CI installs it). docs/routed.md has the design.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use haagent_lab::probe::HttpProbe;
use support::bird::Route;
use support::groups::{outage, settled, summary, wait_served_by};
use support::require_root;
use support::routed::*;

/// Bound for the router to follow a move (as tests/routed_netns.rs).
const FOLLOW: Duration = Duration::from_secs(5);
/// The lease (default 2 s), BIRD's kernel scan (1 s), the kernel's rounding and load.
const LEASE_SCAN_AND_MARGIN: Duration = Duration::from_millis(2000 + 1000 + 2000);

/// The router's IPv6 route came from `node`'s IPv6 session (`n1_6`).
fn from6(node: &str) -> impl Fn(Option<&Route>) -> bool + '_ {
    move |r| r.is_some_and(|r| r.protocol == format!("{node}_6"))
}

/// `node`'s kernel's proto-98 IPv6 routes to the VIP, in `ip -6 route` words.
fn kernel_routes6(lab: &RoutedLab, node: &str) -> Vec<String> {
    ip_in(
        lab.ns(node),
        &["-6", "route", "show", "proto", &PROTO.to_string()],
    )
    .lines()
    .filter(|l| l.starts_with(&format!("{VIP6} ")))
    .map(str::to_string)
    .collect()
}

/// The first of [`kernel_routes6`].
fn kernel_route6(lab: &RoutedLab, node: &str) -> Option<String> {
    kernel_routes6(lab, node).into_iter().next()
}

#[test]
fn routed_mode_moves_an_ipv6_vip_and_a_dead_agents_ipv6_route_ends_after_its_lease() {
    if !require_root(
        "routed_mode_moves_an_ipv6_vip_and_a_dead_agents_ipv6_route_ends_after_its_lease",
    ) {
        return;
    }
    let mut lab = RoutedLab::dual_stack();
    lab.wait_established(ESTABLISH);
    let (c1, _) = lab.start_pair(&[format!("{VIP}/32"), format!("{VIP6}/128")], true);
    let (_, best) = lab.wait_router_best(VIP6_PREFIX, FOLLOW, from6("n1"));
    lab.wait_router_best(VIP_PREFIX, FOLLOW, RoutedLab::via4("n1"));
    let epoch1 = lab.haagent_status("n1").unwrap()["groups"][0]["epoch"]
        .as_u64()
        .unwrap();
    assert_eq!(
        best.as_ref().and_then(|r| r.local_pref),
        Some(epoch1 as u32),
        "LOCAL_PREF = epoch: {best:?}"
    );
    let route = kernel_route6(&lab, "n1").expect("n1 has the IPv6 host route");
    assert!(
        route.contains(&format!("src {VIP6}")) && route.contains(&format!("metric {epoch1}")),
        "n1's IPv6 host route: {route}"
    );
    // Status sees both host routes in the kernel (the IPv6 one read back over netlink).
    let doc = lab.haagent_status("n1").unwrap();
    let routes = doc["groups"][0]["routes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        routes.len() == 2 && routes.iter().all(|r| r["installed"] == true),
        "both host routes installed: {doc:#}"
    );
    // What BIRD exports, per session and family (`bird_socket`): the IPv4 VIP to `uplink`,
    // the IPv6 one to `uplink6`, each session reporting only its own family.
    let exports = |s: &serde_json::Value| -> Vec<(String, Vec<String>)> {
        s["groups"][0]["export"]["protocols"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["exported"] == true)
            .map(|p| {
                let vips = p["vips"].as_array().into_iter().flatten();
                (
                    p["name"].as_str().unwrap_or("").to_string(),
                    vips.filter_map(|v| Some(v["address"].as_str()?.to_string()))
                        .collect(),
                )
            })
            .collect()
    };
    let want = vec![
        ("uplink".to_string(), vec![VIP_PREFIX.to_string()]),
        ("uplink6".to_string(), vec![VIP6_PREFIX.to_string()]),
    ];
    lab.wait_haagent("n1", FOLLOW, |s| exports(s) == want);
    let mut learnt = lab.bird("router").prefixes();
    learnt.sort();
    assert_eq!(
        learnt,
        [VIP6_PREFIX.to_string(), VIP_PREFIX.to_string()],
        "the router learnt nothing but the VIPs"
    );
    let client = lab.ns("client").name().to_string();
    let p6 = HttpProbe::start(&client, SocketAddr::from((VIP6, 80))).unwrap();
    let p4 = HttpProbe::start(&client, SocketAddr::from((VIP, 80))).unwrap();
    wait_served_by(&p6, "the routed IPv6 VIP", "n1", FOLLOW);
    wait_served_by(&p4, "the routed IPv4 VIP", "n1", FOLLOW);

    // SIGKILL of n1's agent: n2 takes both; n1's IPv6 announcement ends after the lease.
    let t0 = Instant::now();
    lab.kill_haagent("n1");
    let (moved6, _) = lab.wait_router_best(VIP6_PREFIX, FOLLOW, from6("n2"));
    let (moved4, _) = lab.wait_router_best(VIP_PREFIX, FOLLOW, RoutedLab::via4("n2"));
    wait_served_by(&p6, "the routed IPv6 VIP", "n2", FOLLOW);
    wait_served_by(&p4, "the routed IPv4 VIP", "n2", FOLLOW);
    let (s6, s4) = (
        settled(&p6, t0, Instant::now()),
        settled(&p4, t0, Instant::now()),
    );
    let withdrawn = loop {
        let n1_routes = lab
            .bird("router")
            .routes(VIP6_PREFIX)
            .into_iter()
            .filter(|r| r.protocol == "n1_6")
            .count();
        if n1_routes == 0 {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < LEASE_SCAN_AND_MARGIN,
            "n1's IPv6 announcement outlived its lease and BIRD's scan: {}\n{}",
            lab.bird("router").birdc(&["show", "route", "all"]),
            lab.bird("n1").birdc(&["show", "route", "all"])
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // The kernel fact the BIRD filter answers: the route is still there, without `src`.
    let left = kernel_route6(&lab, "n1");
    assert!(
        left.as_deref().is_some_and(|r| !r.contains("src")),
        "expected n1's IPv6 route kept without its src after the lease: {left:?}"
    );
    eprintln!(
        "ROUTED6 SIGKILL: router's IPv6 best via n2 after {} ms (IPv4 {} ms); IPv6 requests: \
         {}; IPv4 requests: {}; n1's IPv6 route withdrawn at the router {} ms after the kill \
         (lease 2 s + BIRD scan ≤ 1 s), left in n1's kernel as `{}`",
        moved6.as_millis(),
        moved4.as_millis(),
        summary(&s6),
        summary(&s4),
        withdrawn.as_millis(),
        left.unwrap_or_default()
    );
    let (out6, out4) = (outage(&s6), outage(&s4));

    // A restarted n1 removes what its killed run left, then preempts back.
    lab.start_haagent("n1", &c1);
    lab.wait_router_best(VIP6_PREFIX, ESTABLISH, from6("n1"));
    wait_served_by(&p6, "the routed IPv6 VIP", "n1", FOLLOW);
    let routes = kernel_routes6(&lab, "n1");
    assert!(
        routes.len() == 1 && routes[0].contains(&format!("src {VIP6}")),
        "n1's one IPv6 host route again, with its src (the stale one removed at start): \
         {routes:?}"
    );

    // Planned move n1 → n2.
    lab.wait_haagent("n2", FOLLOW, |s| s["groups"][0]["state"] == "backup");
    let t0 = Instant::now();
    let out = lab.haagent_ctl("n1", &["handover", "--group", "edge"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (moved, _) = lab.wait_router_best(VIP6_PREFIX, FOLLOW, from6("n2"));
    // The old master keeps announcing through the release wait (1 s), so its withdrawal
    // cannot overtake the successor's update on the way to the router.
    assert!(
        kernel_route6(&lab, "n1").is_some_and(|r| r.contains("src")),
        "n1 withdrew before the router had n2's route"
    );
    let released = loop {
        if kernel_route6(&lab, "n1").is_none() {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "n1 never released after the hand-over\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let alone = Instant::now();
    wait_served_by(&p6, "the routed IPv6 VIP", "n2", FOLLOW);
    let samples = settled(&p6, t0, Instant::now());
    let (straddled, failed) = haagent_lab::probe::unexplained_failures(&samples, t0, alone);
    eprintln!(
        "ROUTED6 handover n1 → n2: router's IPv6 best via n2 after {} ms, n1 released after \
         {} ms; requests: {} ({straddled} straddled the move)",
        moved.as_millis(),
        released.as_millis(),
        summary(&samples)
    );
    assert!(
        failed.is_empty(),
        "handover lost IPv6 requests: {failed:?}\n{}",
        lab.logs()
    );
    eprintln!(
        "ROUTED6 outage on SIGKILL: IPv6 {} ms, IPv4 {} ms",
        out6.as_millis(),
        out4.as_millis()
    );
}
