//! Routed mode (issue 15), the agent's side, with the real binary in namespaces and no
//! routing daemon: what a BGP daemon on the node would pick up from the kernel. The master
//! of a `mode = "routed"` group carries the VIP on `lo` with the lease as its lifetime and a
//! host route `VIP/32 dev lo src VIP proto 98 metric EPOCH`; it sends no gratuitous ARP.
//! A killed master's address and route expire by lease while the successor's route already
//! has the higher metric; a restarted higher-priority node preempts make-before-break (its
//! route is in the kernel before the old master's goes).
//!
//! The end-to-end test through BIRD 2 and a router is `tests/routed_netns.rs`. Needs root.

mod support;

use std::time::{Duration, Instant};

use support::groups::*;
use support::*;

const VIP_R: &str = "203.0.113.200";

fn routed_group(priority: u8) -> String {
    format!(
        "[[group]]\nname = \"edge\"\nmode = \"routed\"\nvips = [\"{VIP_R}/32\"]\npriority = {priority}\n"
    )
}

/// `(metric, src, dev)` of the proto-98 host route for the VIP in `ns`, if there is one.
fn host_route(g: &GroupLab, name: &str) -> Option<(u64, String, String)> {
    let out = g
        .ns(name)
        .ip(&["-j", "route", "show", &format!("{VIP_R}/32"), "proto", "98"])
        .ok()?;
    let routes: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let r = routes.as_array()?.first()?;
    Some((
        r["metric"].as_u64().unwrap_or(0),
        r["prefsrc"].as_str().unwrap_or_default().to_string(),
        r["dev"].as_str().unwrap_or_default().to_string(),
    ))
}

fn on_lo(g: &GroupLab, name: &str) -> bool {
    haagent_lab::all_addresses(g.ns(name), "lo")
        .map(|a| a.iter().any(|ip| ip.to_string() == VIP_R))
        .unwrap_or(false)
}

/// Polls until `pred(n1 has it, n2 has it)` over (address on lo, host route); panics after
/// `timeout`; returns how long it took.
fn wait_kernel(
    g: &GroupLab,
    what: &str,
    timeout: Duration,
    pred: impl Fn([bool; 2]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let seen = [
            on_lo(g, "n1") && host_route(g, "n1").is_some(),
            on_lo(g, "n2") && host_route(g, "n2").is_some(),
        ];
        if pred(seen) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not within {timeout:?}; (n1, n2) = {seen:?}\n{}",
            g.c.logs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_routed_master_carries_the_vip_on_lo_with_an_epoch_metric_host_route() {
    if !require_root("a_routed_master_carries_the_vip_on_lo_with_an_epoch_metric_host_route") {
        return;
    }
    let mut g = GroupLab::new(&["n1", "n2"]);
    let metrics = "[metrics]\nlisten = \"127.0.0.1:9798\"\n";
    g.write_config("n1", &(routed_group(150) + metrics));
    g.write_config("n2", &(routed_group(100) + metrics));
    g.start("n1");
    g.start("n2");
    wait_kernel(&g, "n1 alone announces", GROUP_CONVERGE, |s| {
        s == [true, false]
    });
    // The host route counts as the group's route in the metric (it was left at what the
    // configured routes said, and stayed 1 after a release).
    let installed = "haagent_route_installed{group=\"edge\"}";
    scrape_until(&g.c, "n1", installed, 1.0, GROUP_CONVERGE);
    let e = g.wait_group("n1", "edge", GROUP_CONVERGE, in_state("master"));
    assert_eq!(e["mode"], "routed", "{e:#}");
    assert_eq!(e["vips"][0]["interface"], "lo", "{e:#}");
    let epoch1 = e["epoch"].as_u64().unwrap();
    let (metric, src, dev) = host_route(&g, "n1").unwrap();
    assert_eq!((metric, src.as_str(), dev.as_str()), (epoch1, VIP_R, "lo"));
    assert_eq!(e["routes"][0]["installed"], true, "{e:#}");
    let doc = g.c.status("n1");
    assert_eq!(
        doc["counters"]["garps_sent"], 0,
        "a routed group sends no ARP: {doc:#}"
    );
    let text = String::from_utf8(g.c.ctl("n1", &["status"]).stdout).unwrap();
    assert!(text.contains("mode: routed"), "{text}");
    // The doctor does not ask a routed VIP's `lo` for an own address in its "subnet".
    let out = g
        .ns("n1")
        .command(haagent())
        .args(["doctor", "--config"])
        .arg(g.c.config_path("n1"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("✔ interface lo"), "{report}");
    assert!(
        text.contains(&format!(
            "route {VIP_R}/32 dev lo src {VIP_R} metric {epoch1}: installed"
        )),
        "{text}"
    );

    // SIGKILL: n2 announces at once with a higher epoch; n1's leftover goes with its lease.
    let t0 = Instant::now();
    g.kill("n1");
    let took = wait_kernel(&g, "n2 announces", TAKEOVER, |s| s[1]);
    let e2 = g.wait_group("n2", "edge", TAKEOVER, in_state("master"));
    let epoch2 = e2["epoch"].as_u64().unwrap();
    assert!(epoch2 > epoch1, "{e2:#}");
    assert_eq!(host_route(&g, "n2").map(|r| r.0), Some(epoch2));
    let gone = wait_kernel(
        &g,
        "n1's leftover expires",
        Duration::from_millis(2000 + 1500),
        |s| s == [false, true],
    );
    eprintln!(
        "ROUTED agent: SIGKILL of n1 → n2's host route (metric {epoch2} > {epoch1}) after {} ms; \
         n1's address and route expired by lease {} ms after the kill",
        took.as_millis(),
        (t0.elapsed()).as_millis().max(gone.as_millis())
    );

    // n1 back: it preempts; its route is there before n2's goes (never neither), and n2
    // keeps its own for the hand-over's release wait (1 s): make-before-break at the router.
    scrape_until(&g.c, "n2", installed, 1.0, GROUP_CONVERGE);
    g.start("n1");
    let start = Instant::now();
    let mut both_seen: Option<Instant> = None;
    loop {
        // The old holder first: n2 releases only after n1's advert, which n1 sends after
        // its install, so once n2 is seen without the VIP, n1 must be seen with it (the
        // other order would race two `ip` calls against the move).
        let old = on_lo(&g, "n2") && host_route(&g, "n2").is_some();
        let new = on_lo(&g, "n1") && host_route(&g, "n1").is_some();
        let s = [new, old];
        assert!(
            s != [false, false],
            "nobody announced the VIP during the preemption\n{}",
            g.c.logs()
        );
        if s == [true, true] {
            both_seen.get_or_insert_with(Instant::now);
        }
        if s == [true, false] {
            break;
        }
        assert!(
            start.elapsed() < GROUP_CONVERGE,
            "n1 never took the VIP back\n{}",
            g.c.logs()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let overlap = both_seen.map(|t| t.elapsed());
    let e3 = g.wait_group("n1", "edge", TAKEOVER, in_state("master"));
    assert!(e3["epoch"].as_u64().unwrap() > epoch2, "{e3:#}");
    eprintln!(
        "ROUTED agent: preemption back to n1, make-before-break, both announced for {overlap:?}"
    );
    assert!(
        overlap.is_some_and(|o| o >= Duration::from_millis(800)),
        "the old master kept its route only {overlap:?} after the hand-over, not the 1 s wait\n{}",
        g.c.logs()
    );
    scrape_until(&g.c, "n2", installed, 0.0, GROUP_CONVERGE);
}

/// A routed group's own `[[group.route]]` failing to install (its gateway unreachable)
/// costs only that route: the VIP's host route, which is what the routing daemon
/// announces, is installed with the VIP, and status tells the two apart. (Before, one
/// route manager held both, all or nothing: the host route was never installed while the
/// node stayed master.)
#[test]
fn a_failing_group_route_leaves_the_host_route_of_a_routed_group_in_place() {
    if !require_root("a_failing_group_route_leaves_the_host_route_of_a_routed_group_in_place") {
        return;
    }
    let mut g = GroupLab::new(&["n1", "n2"]);
    let unreachable = "[[group.route]]\nto = \"198.51.100.0/24\"\nvia = \"203.0.113.99\"\n";
    g.write_config("n1", &(routed_group(150) + unreachable));
    g.write_config("n2", &(routed_group(100) + unreachable));
    g.start("n1");
    g.start("n2");
    wait_kernel(&g, "n1 announces", GROUP_CONVERGE, |s| s == [true, false]);
    let e = g.wait_group("n1", "edge", GROUP_CONVERGE, |e| {
        e["state"] == "master" && e["routes"][1]["error"].is_string()
    });
    assert_eq!(e["routes"][0]["installed"], true, "the host route: {e:#}");
    assert!(e["routes"][0]["error"].is_null(), "{e:#}");
    assert_eq!(
        e["routes"][1]["installed"], false,
        "the unreachable one: {e:#}"
    );
}
