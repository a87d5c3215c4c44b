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
//! - `haagent handover` to n2 and back: no failed request the move does not explain;
//! - with `bird_socket`, status shows what each node's BIRD exports: the master's VIP to
//!   its `uplink`, nothing from the backup; the master's BIRD killed: the error, and the
//!   master stays master (what BIRD says never reaches the election).
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

/// `node`'s config ([`RoutedLab::routed_config`] with the VIP) and `bird_socket` naming
/// `node`'s BIRD.
fn config_with_bird(lab: &RoutedLab, node: &str, priority: u8) -> String {
    lab.routed_config(node, priority, &[format!("{VIP}/32")], true)
}

/// The first group's `export.protocols[]` entry named `protocol`, if the status has one.
fn export_of<'a>(s: &'a serde_json::Value, protocol: &str) -> Option<&'a serde_json::Value> {
    s["groups"][0]["export"]["protocols"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == protocol)
}

#[test]
fn routed_mode_moves_the_route_at_the_router_on_kill_cut_and_handover() {
    if !require_root("routed_mode_moves_the_route_at_the_router_on_kill_cut_and_handover") {
        return;
    }
    let mut lab = RoutedLab::new();
    lab.wait_established(ESTABLISH);
    let (c1, _) = lab.start_pair(&[format!("{VIP}/32")], false);
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

#[test]
fn status_shows_what_bird_exports_and_when_bird_cannot_be_asked() {
    if !require_root("status_shows_what_bird_exports_and_when_bird_cannot_be_asked") {
        return;
    }
    let mut lab = RoutedLab::new();
    lab.wait_established(ESTABLISH);
    let (c1, c2) = (
        config_with_bird(&lab, "n1", 150),
        config_with_bird(&lab, "n2", 100),
    );
    lab.start_haagent("n1", &c1);
    lab.start_haagent("n2", &c2);
    lab.wait_haagent("n1", ESTABLISH, |s| s["groups"][0]["state"] == "master");
    lab.wait_haagent("n2", ESTABLISH, |s| s["groups"][0]["state"] == "backup");

    // The master: its VIP exported to `uplink`, the session Established.
    let exported = |s: &serde_json::Value, want: bool| {
        export_of(s, "uplink").is_some_and(|p| {
            p["established"] == true
                && p["exported"] == want
                && p["vips"][0]["address"] == VIP_PREFIX
                && p["vips"][0]["exported"] == want
        }) && s["groups"][0]["export"]["error"].is_null()
    };
    lab.wait_haagent("n1", FOLLOW, |s| exported(s, true));
    // The backup: its BIRD has nothing to export.
    lab.wait_haagent("n2", FOLLOW, |s| exported(s, false));
    let s1 = lab.haagent_status("n1").unwrap();
    let export = &s1["groups"][0]["export"];
    assert_eq!(
        export["socket"],
        lab.bird("n1").socket.display().to_string()
    );
    assert!(export["checked_at"].is_string(), "{export:#}");
    assert!(
        export["checked_age_ms"]
            .as_u64()
            .is_some_and(|ms| ms < 5000),
        "{export:#}"
    );
    // And in words.
    let out = lab.haagent_ctl("n1", &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "bird uplink (Established): {VIP_PREFIX} exported, checked "
        ))),
        "{text}"
    );
    let out = lab.haagent_ctl("n2", &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "bird uplink (Established): {VIP_PREFIX} not exported"
        )),
        "{text}"
    );

    // BIRD on the master dies: status says why it cannot be asked; the election is not
    // told (n1 stays master, no transition), because BIRD's word is no cluster state.
    let before = lab.haagent_status("n1").unwrap();
    let epoch = before["groups"][0]["epoch"].as_u64().unwrap();
    let transitions = before["transitions"].as_array().map_or(0, Vec::len);
    lab.bird_mut("n1").kill();
    let socket = lab.bird("n1").socket.display().to_string();
    lab.wait_haagent("n1", FOLLOW, |s| {
        let e = &s["groups"][0]["export"];
        e["error"]
            .as_str()
            .is_some_and(|err| err.contains(&socket) && err.contains("Connection refused"))
            && e["protocols"].as_array().is_some_and(Vec::is_empty)
    });
    let after = lab.haagent_status("n1").unwrap();
    assert_eq!(after["groups"][0]["state"], "master", "{after:#}");
    assert_eq!(after["groups"][0]["epoch"].as_u64(), Some(epoch));
    assert_eq!(
        after["transitions"].as_array().map_or(0, Vec::len),
        transitions,
        "{after:#}"
    );
    let out = lab.haagent_ctl("n1", &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "bird {socket}: ERROR: birdc `show protocols` failed"
        ))),
        "{text}"
    );
    // n2's BIRD is fine: still no error there.
    let s2 = lab.haagent_status("n2").unwrap();
    assert!(exported(&s2, false), "{s2:#}");
    eprintln!(
        "ROUTED export: n1 {}",
        after["groups"][0]["export"]["error"]
    );
}
