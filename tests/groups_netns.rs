//! VIP groups (issue 11), proved with the real binary in network namespaces:
//!
//! - `active_active`: two groups on one segment, each preferring another node; a link loss
//!   moves both, its return moves back only the one that prefers the returning node, and
//!   planned moves (`haagent handover --group`) lose no request of either VIP;
//! - `router_pair`: one group with a VIP on each of two segments and routes that follow
//!   the master (a client on the second segment reaches a host behind the first through
//!   them); SIGKILL of the master: its VIPs expire by lease and take their `src` routes
//!   with them, and the restarted agent removes the route it left behind;
//! - `second_interface_link_loss`: a link loss on `eth1` faults the group on `eth1` only.
//!
//! Each test prints its numbers (`GROUPS …` lines). Needs root; see `support::require_root`.
//! What is asserted comes from the kernel (`ip addr`, `ip route show proto 98`), from the
//! client's requests, and from `haagent status --json` (`groups[]`).

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use support::groups::*;
use support::*;

/// Group `web-a`'s VIP, and the router pair's outside VIP (first segment).
const VIP_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// Group `web-b`'s VIP.
const VIP_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 101);
/// The router pair's inside VIP, and group `g2`'s (second segment).
const VIP_IN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
/// The host behind the first segment, on the `gw` host's loopback (RFC 5737 TEST-NET-3).
const CUSTOMER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// Bound for a takeover after a link loss: master-down (~150 ms at the defaults), the ARP
/// probe and the install, with room for a loaded 2-core machine.
const LINK_TAKEOVER: Duration = Duration::from_secs(5);
/// The router pair's `[vip] lease_ms`.
const LEASE: Duration = Duration::from_millis(2000);
/// Kernel address lifetimes are whole seconds, checked by a timer rounded up to the next
/// second: an unrefreshed address goes up to ~1 s after its lease; the rest is for load.
const LEASE_MARGIN: Duration = Duration::from_millis(1500);

/// The `[[group]]` tables of the active-active pair: this node's priorities in `web-a`
/// and `web-b`.
fn active_active_groups(prio_a: u8, prio_b: u8) -> String {
    format!(
        "[[group]]\nname = \"web-a\"\nvips = [\"{VIP_A}/24\"]\npriority = {prio_a}\n\n\
         [[group]]\nname = \"web-b\"\nvips = [\"{VIP_B}/24\"]\npriority = {prio_b}\n"
    )
}

fn assert_zero_failed(
    g: &GroupLab,
    what: &str,
    (from, to): (Instant, Instant),
    a: &[haagent_lab::probe::ProbeSample],
    b: &[haagent_lab::probe::ProbeSample],
) {
    // Only a connection open at the instant of the gratuitous ARP may fail
    // (`unexplained_failures`); the VIP that does not move loses nothing at all.
    let (straddled, failed_a) = haagent_lab::probe::unexplained_failures(a, from, to);
    assert!(
        failed_a.is_empty() && failed(b) == 0,
        "{what}: requests failed (web-a: {}, {straddled} straddled the move; web-b: {})\n\
         unexplained web-a failures, from the command: {}\n{}",
        summary(a),
        summary(b),
        failures_from(&failed_a, from),
        g.c.logs()
    );
}

/// `"+12 ms Timeout, +40 ms Reset"`: each failed request's start relative to `from`.
fn failures_from(failed: &[&haagent_lab::probe::ProbeSample], from: Instant) -> String {
    let at = |s: &haagent_lab::probe::ProbeSample| match s.at.checked_duration_since(from) {
        Some(d) => format!("+{} ms", d.as_millis()),
        None => format!("-{} ms", (from - s.at).as_millis()),
    };
    let all: Vec<String> = failed
        .iter()
        .map(|s| format!("{} {:?}", at(s), s.failure))
        .collect();
    all.join(", ")
}

/// Active-active: web-a prefers n1, web-b prefers n2. n1's link down moves both to n2;
/// its return moves web-a back and leaves web-b; planned moves of web-a there and back
/// lose no request of either VIP.
#[test]
fn active_active() {
    if !require_root("active_active") {
        return;
    }
    let mut g = GroupLab::new(&["n1", "n2"]);
    g.write_config("n1", &active_active_groups(150, 100));
    g.write_config("n2", &active_active_groups(100, 150));
    let _web = [g.c.start_nginx("n1"), g.c.start_nginx("n2")];
    g.start("n1");
    g.start("n2");

    // Steady state: A on n1, B on n2, in the kernel and in both nodes' status.
    g.wait_holders(VIP_A, "eth0", &["n1"], GROUP_CONVERGE);
    g.wait_holders(VIP_B, "eth0", &["n2"], GROUP_CONVERGE);
    let a1 = g.wait_group("n1", "web-a", GROUP_CONVERGE, in_state("master"));
    let b1 = g.wait_group("n1", "web-b", GROUP_CONVERGE, |e| {
        e["state"] == "backup" && e["master"] == "n2"
    });
    g.wait_group("n2", "web-a", GROUP_CONVERGE, |e| {
        e["state"] == "backup" && e["master"] == "n1"
    });
    g.wait_group("n2", "web-b", GROUP_CONVERGE, in_state("master"));
    assert_eq!(a1["priority"], 150, "{a1:#}");
    assert_eq!(a1["master"], "n1", "{a1:#}");
    assert_eq!(a1["vips"][0]["address"], "192.0.2.100/24", "{a1:#}");
    assert_eq!(a1["vips"][0]["interface"], "eth0", "{a1:#}");
    assert_eq!(a1["vips"][0]["installed"], true, "{a1:#}");
    assert_eq!(b1["priority"], 100, "{b1:#}");
    assert_eq!(b1["vips"][0]["installed"], false, "{b1:#}");
    assert_ne!(a1["id"], b1["id"], "two groups, two wire ids");

    let pa = g.probe(VIP_A);
    let pb = g.probe(VIP_B);
    let everything_start = Instant::now();
    wait_served_by(&pa, "web-a", "n1", GROUP_CONVERGE);
    wait_served_by(&pb, "web-b", "n2", GROUP_CONVERGE);

    // n1's link down: both groups on n2; web-b, already there, loses nothing.
    let t0 = Instant::now();
    ip_ns(g.ns("n1"), &["link", "set", "eth0", "down"]);
    let took_a = g.wait_holders(VIP_A, "eth0", &["n2"], LINK_TAKEOVER);
    g.wait_holders(VIP_B, "eth0", &["n2"], LINK_TAKEOVER);
    wait_served_by(&pa, "web-a", "n2", LINK_TAKEOVER);
    wait_served_by(&pb, "web-b", "n2", LINK_TAKEOVER);
    let end = Instant::now();
    let (sa, sb) = (settled(&pa, t0, end), settled(&pb, t0, end));
    eprintln!(
        "GROUPS active-active link down on n1: web-a on n2 alone after {} ms; web-a: {}; web-b: {}",
        took_a.as_millis(),
        summary(&sa),
        summary(&sb)
    );
    assert_eq!(
        failed(&sb),
        0,
        "web-b stayed on n2, its clients must not notice n1's link: {}\n{}",
        summary(&sb),
        g.c.logs()
    );
    for group in ["web-a", "web-b"] {
        let e = g.wait_group("n1", group, LINK_TAKEOVER, |e| {
            e["state"] == "fault" && faults_name(e, "link")
        });
        assert_eq!(e["vips"][0]["installed"], false, "{e:#}");
    }

    // n1's link back: web-a returns to n1 (it prefers n1, preempt is on), web-b stays.
    let t1 = Instant::now();
    ip_ns(g.ns("n1"), &["link", "set", "eth0", "up"]);
    let back_a = g.wait_holders(VIP_A, "eth0", &["n1"], GROUP_CONVERGE);
    wait_served_by(&pa, "web-a", "n1", LINK_TAKEOVER);
    g.assert_holders_stay(&[(VIP_B, "eth0")], &["n2"], Duration::from_secs(1));
    let end = Instant::now();
    let (sa, sb) = (settled(&pa, t1, end), settled(&pb, t1, end));
    eprintln!(
        "GROUPS active-active link back on n1: web-a on n1 alone after {} ms; web-a: {}; web-b: {}",
        back_a.as_millis(),
        summary(&sa),
        summary(&sb)
    );
    assert_eq!(failed(&sb), 0, "web-b: {}\n{}", summary(&sb), g.c.logs());
    assert!(
        sb.iter()
            .all(|s| !s.ok || s.server.as_deref() == Some("n2")),
        "web-b was served by another node than n2: {}",
        summary(&sb)
    );

    // Planned move of web-a to n2 (the one peer: no --to), then back with --to.
    g.wait_group("n2", "web-a", GROUP_CONVERGE, |e| {
        e["state"] == "backup" && e["master"] == "n1"
    });
    let t2 = Instant::now();
    let said = g.ctl_ok("n1", &["handover", "--group", "web-a"]);
    eprintln!("{}", said.trim());
    let moved = g.wait_holders(VIP_A, "eth0", &["n2"], TAKEOVER);
    let alone = Instant::now();
    wait_served_by(&pa, "web-a", "n2", LINK_TAKEOVER);
    let end = Instant::now();
    let (sa, sb) = (settled(&pa, t2, end), settled(&pb, t2, end));
    eprintln!(
        "GROUPS active-active handover web-a n1 → n2: n2 alone after {} ms; web-a: {}; web-b: {}",
        moved.as_millis(),
        summary(&sa),
        summary(&sb)
    );
    assert_zero_failed(&g, "handover of web-a to n2", (t2, alone), &sa, &sb);
    // n1 outranks n2 in web-a but handed it over on purpose: it does not take it back.
    g.assert_holders_stay(
        &[(VIP_A, "eth0"), (VIP_B, "eth0")],
        &["n2"],
        Duration::from_secs(1),
    );
    let a2 = g.wait_group("n2", "web-a", TAKEOVER, in_state("master"));
    assert_eq!(a2["vips"][0]["installed"], true, "{a2:#}");
    g.wait_group("n1", "web-a", GROUP_CONVERGE, |e| {
        e["state"] == "backup" && e["master"] == "n2"
    });

    let t3 = Instant::now();
    let said = g.ctl_ok("n2", &["handover", "--group", "web-a", "--to", "n1"]);
    eprintln!("{}", said.trim());
    let moved = g.wait_holders(VIP_A, "eth0", &["n1"], TAKEOVER);
    let alone = Instant::now();
    wait_served_by(&pa, "web-a", "n1", LINK_TAKEOVER);
    let end = Instant::now();
    let (sa, sb) = (settled(&pa, t3, end), settled(&pb, t3, end));
    eprintln!(
        "GROUPS active-active handover web-a n2 → n1: n1 alone after {} ms; web-a: {}; web-b: {}",
        moved.as_millis(),
        summary(&sa),
        summary(&sb)
    );
    assert_zero_failed(&g, "handover of web-a back to n1", (t3, alone), &sa, &sb);
    let sb = settled(&pb, t2, Instant::now());
    assert!(
        sb.iter().all(|s| s.ok && s.server.as_deref() == Some("n2")),
        "web-b failed or left n2 while web-a moved: {}",
        summary(&sb)
    );
    g.wait_holders(VIP_B, "eth0", &["n2"], Duration::ZERO);
    let now = Instant::now();
    eprintln!(
        "GROUPS active-active whole run: web-a: {}; web-b: {}",
        summary(&settled(&pa, everything_start, now)),
        summary(&settled(&pb, everything_start, now))
    );
}

/// The router pair's group `edge` as this node sees it: the outside VIP on eth0, the
/// inside one on eth1; a route to the customer network with the outside VIP as source, a
/// more specific one without a source (what a killed agent leaves behind), and a default
/// route out of the inside segment with the inside VIP as source. No preemption, so that
/// the restarted node stays backup and what it cleans up can be seen.
fn router_pair_group(priority: u8) -> String {
    format!(
        "[vip]\nlease_ms = {}\n\n\
         [[group]]\nname = \"edge\"\n\
         vips = [\"{VIP_A}/24\", {{ address = \"{VIP_IN}/24\", interface = \"eth1\" }}]\n\
         priority = {priority}\npreempt = false\n\n\
         [[group.route]]\nto = \"203.0.113.0/24\"\nvia = \"192.0.2.1\"\nsrc = \"{VIP_A}\"\n\n\
         [[group.route]]\nto = \"203.0.113.128/25\"\nvia = \"192.0.2.1\"\n\n\
         [[group.route]]\nto = \"default\"\nvia = \"198.51.100.1\"\nsrc = \"{VIP_IN}\"\ndev = \"eth1\"\n",
        LEASE.as_millis()
    )
}

/// The routes of group `edge` in the kernel of its master (as [`KernelRoute`] prints them).
const EDGE_ROUTES: [&str; 3] = [
    "203.0.113.0/24 via 192.0.2.1 dev eth0 src 192.0.2.100",
    "203.0.113.128/25 via 192.0.2.1 dev eth0",
    "default via 198.51.100.1 dev eth1 src 198.51.100.100",
];
/// The one of them without a `src`: the kernel keeps it when the VIPs expire.
const EDGE_ROUTE_WITHOUT_SRC: &str = "203.0.113.128/25 via 192.0.2.1 dev eth0";

/// Waits until `name` alone carries both of `edge`'s VIPs, and all its routes; returns
/// the time until the outside VIP was in place.
fn wait_edge_on(g: &GroupLab, name: &str, timeout: Duration) -> Duration {
    let took = g.wait_holders(VIP_A, "eth0", &[name], timeout);
    g.wait_holders(VIP_IN, "eth1", &[name], timeout);
    g.wait_routes(name, &EDGE_ROUTES, timeout);
    took
}

/// Router pair: both VIPs and the routes follow the master; a client on the inside segment
/// reaches the customer host behind the outside one through them, before and after
/// failover; SIGKILL of the master leaves neither VIPs nor `src`-VIP routes once the lease
/// is over, and the restarted agent removes the route without `src` it left.
#[test]
fn router_pair() {
    if !require_root("router_pair") {
        return;
    }
    let mut g = GroupLab::new(&["n1", "n2"]).with_second_segment();
    g.add_outside_host("client2", seg2(50));
    // The inside client's way out is the inside VIP.
    ip_ns(
        &g.outside("client2").ns,
        &["route", "add", "default", "via", &VIP_IN.to_string()],
    );
    // The harness's `gw` (192.0.2.1) is the customer router: 203.0.113.1 behind it, and
    // its way back to the inside segment through the outside VIP.
    ip_ns(
        g.ns("gw"),
        &["addr", "add", &format!("{CUSTOMER}/32"), "dev", "lo"],
    );
    ip_ns(
        g.ns("gw"),
        &["route", "add", "198.51.100.0/24", "via", &VIP_A.to_string()],
    );
    for n in ["n1", "n2"] {
        sysctl(g.ns(n), "net.ipv4.ip_forward=1");
    }
    g.write_config("n1", &router_pair_group(150));
    g.write_config("n2", &router_pair_group(100));

    // n1 first (no preemption: the first master stays), then n2 as its backup.
    g.start("n1");
    wait_edge_on(&g, "n1", GROUP_CONVERGE);
    g.start("n2");
    g.wait_group("n2", "edge", GROUP_CONVERGE, |e| {
        e["state"] == "backup" && e["master"] == "n1"
    });
    let e1 = g.wait_group("n1", "edge", GROUP_CONVERGE, in_state("master"));
    let vips = e1["vips"].as_array().cloned().unwrap_or_default();
    assert_eq!(vips.len(), 2, "{e1:#}");
    assert!(vips.iter().all(|v| v["installed"] == true), "{e1:#}");
    assert_eq!(vips[1]["address"], "198.51.100.100/24", "{e1:#}");
    assert_eq!(vips[1]["interface"], "eth1", "{e1:#}");
    let routes = e1["routes"].as_array().cloned().unwrap_or_default();
    assert_eq!(routes.len(), 3, "{e1:#}");
    assert!(
        routes
            .iter()
            .all(|r| r["installed"] == true && r["error"].is_null()),
        "{e1:#}"
    );
    assert_eq!(g.haagent_routes("n2"), Vec::<String>::new());
    // The master's own traffic to the customer network leaves from the outside VIP.
    let out = g
        .ns("n1")
        .ip(&["route", "get", &CUSTOMER.to_string()])
        .unwrap();
    let get = String::from_utf8_lossy(&out.stdout);
    assert!(get.contains("src 192.0.2.100"), "{get}");

    let first = wait_ping(&g.outside("client2").ns, CUSTOMER, Duration::from_secs(5));
    eprintln!(
        "GROUPS router-pair: client2 reached {CUSTOMER} through n1 after {} ms",
        first.as_millis()
    );

    // SIGKILL of the master's agent: nothing is released on the way out; the kernel
    // expires the VIPs at the end of their lease, and with them the routes whose source
    // they are. The route without a source stays.
    let killed = Instant::now();
    g.kill("n1");
    let bound = LEASE + LEASE_MARGIN;
    let expired = loop {
        let left: Vec<Ipv4Addr> = [(VIP_A, "eth0"), (VIP_IN, "eth1")]
            .into_iter()
            .filter(|(vip, dev)| {
                haagent_lab::addresses(g.ns("n1"), dev)
                    .map(|a| a.contains(vip))
                    .unwrap_or(false)
            })
            .map(|(vip, _)| vip)
            .collect();
        if left.is_empty() {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < bound,
            "{left:?} still on the killed n1 {:?} after the kill (lease {LEASE:?})\n{}",
            killed.elapsed(),
            g.c.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // The kernel removes a route together with the address it names as `src`, in the same
    // operation: nothing to wait for.
    assert_eq!(
        g.haagent_routes("n1"),
        vec![EDGE_ROUTE_WITHOUT_SRC.to_string()],
        "after the VIPs expired on the killed n1"
    );
    g.wait_holders(VIP_A, "eth0", &["n2"], bound + LINK_TAKEOVER);
    let took = killed.elapsed();
    wait_edge_on(&g, "n2", LINK_TAKEOVER);
    let via_n2 = wait_ping(&g.outside("client2").ns, CUSTOMER, Duration::from_secs(5));
    eprintln!(
        "GROUPS router-pair SIGKILL of n1: VIPs and src routes gone from n1 {} ms after the kill \
         (lease {} ms); n2 holds both VIPs and all 3 routes {} ms after the kill; \
         client2 reached {CUSTOMER} through n2 {} ms later",
        expired.as_millis(),
        LEASE.as_millis(),
        took.as_millis(),
        via_n2.as_millis()
    );
    let e2 = g.wait_group("n2", "edge", TAKEOVER, in_state("master"));
    assert!(
        e2["routes"]
            .as_array()
            .is_some_and(|r| r.len() == 3 && r.iter().all(|r| r["installed"] == true)),
        "{e2:#}"
    );

    // The restarted agent finds the route it left and removes it before joining; with no
    // preemption it stays backup, so nothing installs the routes again on n1.
    g.start("n1");
    let cleaned = g.wait_routes("n1", &[], GROUP_CONVERGE);
    g.wait_group("n1", "edge", GROUP_CONVERGE, |e| {
        e["state"] == "backup" && e["master"] == "n2"
    });
    assert_eq!(g.haagent_routes("n1"), Vec::<String>::new());
    assert_eq!(g.holders(VIP_A, "eth0"), ["n2"]);
    assert_eq!(g.holders(VIP_IN, "eth1"), ["n2"]);
    g.wait_routes("n2", &EDGE_ROUTES, Duration::ZERO);
    eprintln!(
        "GROUPS router-pair restart of n1: the route left behind was removed {} ms after the start",
        cleaned.as_millis()
    );

    // A planned move back: the routes go with the VIPs, and n2 removes its own. n1 hears
    // n2 already; the handover needs n2 to hear n1 too (a live backup).
    g.c.wait_status("n2", GROUP_CONVERGE, |s| s["peers"][0]["alive"] == true);
    let said = g.ctl_ok("n2", &["handover", "--group", "edge"]);
    eprintln!("{}", said.trim());
    let moved = wait_edge_on(&g, "n1", TAKEOVER);
    // The routes are removed before the VIPs go (the order): with its VIPs gone,
    // no route is left on n2.
    g.wait_routes("n2", &[], Duration::ZERO);
    let back = wait_ping(&g.outside("client2").ns, CUSTOMER, Duration::from_secs(5));
    eprintln!(
        "GROUPS router-pair handover back to n1: VIPs on n1 after {} ms, client2 reached {CUSTOMER} {} ms later",
        moved.as_millis(),
        back.as_millis()
    );
}

/// The link-loss test's groups: `g1` on eth0 only, `g2` on eth1 only.
fn one_group_per_interface(priority: u8) -> String {
    format!(
        "[[group]]\nname = \"g1\"\nvips = [\"{VIP_A}/24\"]\npriority = {priority}\n\n\
         [[group]]\nname = \"g2\"\nvips = [{{ address = \"{VIP_IN}/24\", interface = \"eth1\" }}]\n\
         priority = {priority}\n"
    )
}

/// A link loss on the second interface faults only the group that uses it: g2 (eth1)
/// moves to n2 with fault cause `link` on n1; g1 (eth0) stays on n1 without a transition.
#[test]
fn second_interface_link_loss() {
    if !require_root("second_interface_link_loss") {
        return;
    }
    let mut g = GroupLab::new(&["n1", "n2"]).with_second_segment();
    g.write_config("n1", &one_group_per_interface(150));
    g.write_config("n2", &one_group_per_interface(100));
    g.start("n1");
    g.start("n2");
    g.wait_holders(VIP_A, "eth0", &["n1"], GROUP_CONVERGE);
    g.wait_holders(VIP_IN, "eth1", &["n1"], GROUP_CONVERGE);
    for group in ["g1", "g2"] {
        g.wait_group("n2", group, GROUP_CONVERGE, |e| {
            e["state"] == "backup" && e["master"] == "n1"
        });
    }
    let g1 = g.wait_group("n1", "g1", GROUP_CONVERGE, in_state("master"));
    let g1_epoch = g1["epoch"].clone();
    assert!(g1_epoch.is_u64(), "{g1:#}");

    let namespaces = [g.ns("n1").name().to_string(), g.ns("n2").name().to_string()];
    let sampler = haagent_lab::probe::HolderSampler::start(&namespaces, VIP_A).unwrap();
    let sampling = Instant::now();

    let t0 = Instant::now();
    ip_ns(g.ns("n1"), &["link", "set", "eth1", "down"]);
    let moved = g.wait_holders(VIP_IN, "eth1", &["n2"], LINK_TAKEOVER);
    let g2 = g.wait_group("n1", "g2", LINK_TAKEOVER, |e| {
        e["state"] == "fault" && faults_name(e, "link")
    });
    assert_eq!(g2["vips"][0]["installed"], false, "{g2:#}");
    g.wait_group("n2", "g2", LINK_TAKEOVER, in_state("master"));
    g.assert_holders_stay(&[(VIP_A, "eth0")], &["n1"], Duration::from_secs(1));
    let g1 = g.c.status("n1");
    let g1 = group_of(&g1, "g1");
    assert_eq!(g1["state"], "master", "{g1:#}");
    assert_eq!(g1["epoch"], g1_epoch, "g1 changed hands: {g1:#}");
    assert!(!faults_name(g1, "link"), "{g1:#}");
    let n2_g1 = g.c.status("n2");
    let n2_g1 = group_of(&n2_g1, "g1");
    assert!(
        n2_g1["state"] == "backup" && n2_g1["master"] == "n1",
        "{n2_g1:#}"
    );
    eprintln!(
        "GROUPS link loss on n1's eth1: g2 on n2 alone after {} ms, g1 untouched on n1",
        moved.as_millis()
    );

    // The link returns: g2 goes back to n1 (it prefers n1), g1 still untouched.
    ip_ns(g.ns("n1"), &["link", "set", "eth1", "up"]);
    let back = g.wait_holders(VIP_IN, "eth1", &["n1"], GROUP_CONVERGE);
    let g2 = g.wait_group("n1", "g2", GROUP_CONVERGE, in_state("master"));
    assert!(!faults_name(&g2, "link"), "{g2:#}");
    let samples = sampler.between(sampling, Instant::now());
    drop(sampler);
    assert!(
        !samples.is_empty() && samples.iter().all(|s| s.mask == 0b01),
        "g1's VIP was not on n1 alone throughout: {:?}\n{}",
        samples
            .iter()
            .find(|s| s.mask != 0b01)
            .map(|s| (s.at - sampling, s.mask)),
        g.c.logs()
    );
    let g1 = g.c.status("n1");
    assert_eq!(group_of(&g1, "g1")["epoch"], g1_epoch, "{g1:#}");
    eprintln!(
        "GROUPS link back on n1's eth1: g2 on n1 alone after {} ms; g1 on n1 in all {} samples over {} ms",
        back.as_millis(),
        samples.len(),
        (Instant::now() - t0).as_millis()
    );
}

/// The agent CPU time (user + system) of `pid` so far, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    // Fields 14 and 15 of proc(5), counted from the state (field 3) here.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf only reads a constant of the running system.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    Duration::from_micros(ticks * 1_000_000 / hz.max(1))
}

/// Benchmark (ignored; `cargo nextest run --test groups_netns --run-ignored only`): two
/// nodes with 1, 2 and 4 groups (n1 first in every group, default timers), per node the
/// idle CPU over 20 s after convergence, then n1's link down with a client probing every
/// group's VIP: the outage per group. Prints one line per group count.
#[test]
#[ignore = "benchmark: prints idle CPU and link-down outage per group count"]
fn bench_idle_cpu_and_link_down_outage_by_group_count() {
    if !require_root("bench_idle_cpu_and_link_down_outage_by_group_count") {
        return;
    }
    const IDLE: Duration = Duration::from_secs(20);
    for count in [1u8, 2, 4] {
        let mut g = GroupLab::new(&["n1", "n2"]);
        let vips: Vec<Ipv4Addr> = (0..count)
            .map(|i| Ipv4Addr::new(192, 0, 2, 100 + i))
            .collect();
        let groups = |prio: u8| {
            vips.iter()
                .enumerate()
                .map(|(i, v)| {
                    format!(
                        "[[group]]\nname = \"g{i}\"\nvips = [\"{v}/24\"]\npriority = {prio}\n\n"
                    )
                })
                .collect::<String>()
        };
        g.write_config("n1", &groups(150));
        g.write_config("n2", &groups(100));
        let _web = [g.c.start_nginx("n1"), g.c.start_nginx("n2")];
        g.start("n1");
        g.start("n2");
        for v in &vips {
            g.wait_holders(*v, "eth0", &["n1"], GROUP_CONVERGE);
        }
        let probes: Vec<_> = vips.iter().map(|v| g.probe(*v)).collect();
        for (i, p) in probes.iter().enumerate() {
            wait_served_by(p, &format!("g{i}"), "n1", GROUP_CONVERGE);
        }
        let pids: Vec<(String, u32)> = ["n1", "n2"]
            .iter()
            .filter_map(|n| {
                g.c.lab
                    .agents
                    .iter()
                    .rev()
                    .find(|a| a.host == *n)
                    .map(|a| (n.to_string(), a.pid()))
            })
            .collect();
        let before: Vec<Duration> = pids.iter().map(|(_, p)| cpu_time(*p)).collect();
        let t = Instant::now();
        std::thread::sleep(IDLE);
        let wall = t.elapsed();
        let cpu: Vec<String> = pids
            .iter()
            .zip(&before)
            .map(|((n, p), b)| {
                let used = cpu_time(*p).saturating_sub(*b);
                format!(
                    "{n} {:.2} %",
                    used.as_secs_f64() * 100.0 / wall.as_secs_f64()
                )
            })
            .collect();
        let t0 = Instant::now();
        ip_ns(g.ns("n1"), &["link", "set", "eth0", "down"]);
        for (i, p) in probes.iter().enumerate() {
            wait_served_by(p, &format!("g{i}"), "n2", LINK_TAKEOVER);
        }
        let end = Instant::now();
        let outages: Vec<String> = probes
            .iter()
            .map(|p| format!("{} ms", outage(&settled(p, t0, end)).as_millis()))
            .collect();
        eprintln!(
            "BENCH groups={count}: idle CPU over {} s: {}; link down on n1, outage per group: {}",
            IDLE.as_secs(),
            cpu.join(", "),
            outages.join(", ")
        );
    }
}
