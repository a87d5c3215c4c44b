//! Routed mode end to end (issue 15): the real binary in n1 and n2, two different subnets
//! behind one router, BIRD 2 (Debian's) on the router and on each node, iBGP with BFD; a
//! client in a third subnet behind the router probes http://203.0.113.200/ (a /32 on no
//! segment) every 10 ms. haagent's `mode = "routed"` group puts the VIP on `lo` with the
//! lease as its lifetime and a `proto 98` host route whose metric is the epoch; each node's
//! BIRD exports it with LOCAL_PREF = metric (configs/bird-node.conf). Proves, printing the
//! outage each time and what bounded it:
//! - steady state: the router's best route for the VIP is via n1, nothing else exported;
//! - SIGKILL of n1's agent: the router's best moves to n2 (epoch preference) long before
//!   n1's route expires with its lease;
//! - n1's uplink silently cut (BFD): n2 takes over, the router drops n1's route;
//! - `haagent handover` to n2 and back: no failed request the move does not explain.
//!
//! Needs root and bird2 (CI installs it). docs/routed.md has the design.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use haagent_lab::probe::HttpProbe;
use support::groups::{outage, settled, summary, wait_served_by};
use support::routed::*;
use support::{median, require_root};

/// Bound for the router to follow a move: master-down, the install, the kernel → BIRD →
/// BGP → router path; generous for a loaded 2-core machine.
const FOLLOW: Duration = Duration::from_secs(5);
/// The lease (`[vip] lease_ms`, default 2 s) plus the kernel's rounding and load.
const LEASE_AND_MARGIN: Duration = Duration::from_millis(2000 + 1500);

#[test]
fn routed_mode_moves_the_route_at_the_router_on_kill_cut_and_handover() {
    if !require_root("routed_mode_moves_the_route_at_the_router_on_kill_cut_and_handover") {
        return;
    }
    let mut lab = RoutedLab::new();
    lab.wait_established(ESTABLISH);
    let (c1, _) = lab.start_pair(&[format!("{VIP}/32")]);
    let (_, best) = lab.wait_router_best(VIP_PREFIX, FOLLOW, RoutedLab::via4("n1"));
    let epoch1 = lab.haagent_status("n1").unwrap()["groups"][0]["epoch"]
        .as_u64()
        .unwrap();
    assert_eq!(
        best.and_then(|r| r.local_pref),
        Some(epoch1 as u32),
        "LOCAL_PREF = epoch"
    );
    assert_eq!(
        lab.bird("router").prefixes(),
        [VIP_PREFIX.to_string()],
        "the router learnt nothing but the VIP"
    );
    let client = lab.ns("client").name().to_string();
    let p = HttpProbe::start(&client, SocketAddr::from((VIP, 80))).unwrap();
    wait_served_by(&p, "the routed VIP", "n1", FOLLOW);

    // SIGKILL of n1's agent, twice (restart in between: it preempts back).
    let mut kills = Vec::new();
    for round in 0..2 {
        let t0 = Instant::now();
        lab.kill_haagent("n1");
        let (moved, best) = lab.wait_router_best(VIP_PREFIX, FOLLOW, RoutedLab::via4("n2"));
        wait_served_by(&p, "the routed VIP", "n2", FOLLOW);
        let samples = settled(&p, t0, Instant::now());
        let lp = best.and_then(|r| r.local_pref);
        // n1's address and route are still there: the epoch preference moved the traffic.
        let n1_still = haagent_lab::all_addresses(lab.ns("n1"), "lo")
            .unwrap()
            .contains(&VIP.into());
        eprintln!(
            "ROUTED SIGKILL round {round}: router via n2 (LOCAL_PREF {lp:?}) after {} ms, n1's \
             route still in its kernel then: {n1_still}; requests: {}",
            moved.as_millis(),
            summary(&samples)
        );
        kills.push(outage(&samples));
        let start = Instant::now();
        while haagent_lab::all_addresses(lab.ns("n1"), "lo")
            .unwrap()
            .contains(&VIP.into())
        {
            assert!(
                start.elapsed() < LEASE_AND_MARGIN,
                "n1's VIP outlived its lease"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        lab.start_haagent("n1", &c1);
        lab.wait_router_best(VIP_PREFIX, ESTABLISH, RoutedLab::via4("n1"));
        wait_served_by(&p, "the routed VIP", "n1", FOLLOW);
    }

    // n1's uplink cut silently (nftables drop, links up): BFD and n2's master-down.
    let t0 = Instant::now();
    lab.cut_uplink("n1", true);
    let (moved, _) = lab.wait_router_best(VIP_PREFIX, FOLLOW, RoutedLab::via4("n2"));
    wait_served_by(&p, "the routed VIP", "n2", FOLLOW);
    let samples = settled(&p, t0, Instant::now());
    eprintln!(
        "ROUTED uplink cut on n1: router via n2 after {} ms; requests: {}",
        moved.as_millis(),
        summary(&samples)
    );
    let cut = outage(&samples);
    lab.cut_uplink("n1", false);
    lab.wait_router_best(VIP_PREFIX, ESTABLISH, RoutedLab::via4("n1"));
    wait_served_by(&p, "the routed VIP", "n1", ESTABLISH);

    // Planned moves: n1 → n2, then back.
    for (from, to) in [("n1", "n2"), ("n2", "n1")] {
        lab.wait_haagent(to, FOLLOW, |s| s["groups"][0]["state"] == "backup");
        let t0 = Instant::now();
        let out = lab.haagent_ctl(from, &["handover", "--group", "edge"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (moved, _) = lab.wait_router_best(VIP_PREFIX, FOLLOW, RoutedLab::via4(to));
        let alone = Instant::now();
        wait_served_by(&p, "the routed VIP", to, FOLLOW);
        let samples = settled(&p, t0, Instant::now());
        let (straddled, failed) = haagent_lab::probe::unexplained_failures(&samples, t0, alone);
        eprintln!(
            "ROUTED handover {from} → {to}: router via {to} after {} ms; requests: {} \
             ({straddled} straddled the move)",
            moved.as_millis(),
            summary(&samples)
        );
        assert!(
            failed.is_empty(),
            "handover {from} → {to} lost requests: {failed:?}\n{}",
            lab.logs()
        );
    }
    assert_eq!(lab.bird("router").prefixes(), [VIP_PREFIX.to_string()]);
    eprintln!(
        "ROUTED outage: SIGKILL median {} ms over 2 rounds, uplink cut {} ms",
        median(kills).as_millis(),
        cut.as_millis()
    );
}
