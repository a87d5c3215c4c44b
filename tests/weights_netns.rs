//! Issue 14, part 2 in namespaces: a POSITIVE check weight has keepalived's meaning, it is
//! added to the priority while the check succeeds. Two nodes of equal priority 100, each
//! with an http check of its own nginx at `weight = 20`: the node whose nginx answers
//! (120) holds the VIP; when nginx moves to the other node, so does the VIP.
//!
//! Asserted from the kernel (which namespace carries the VIP) and from `haagent status
//! --json` (state and effective priority of the group). Needs root; see
//! `support::require_root`.

mod support;

use std::time::Duration;

use support::groups::*;
use support::*;

/// `me`'s group `web` at priority 100, tracking an http check of its own nginx, +20.
fn tail(g: &GroupLab, me: &str) -> String {
    let addr = g.c.lab.host(me).unwrap().addr;
    format!(
        "[[check]]\nname = \"nginx\"\nkind = \"http\"\nurl = \"http://{addr}/\"\n\
         interval_ms = 200\ntimeout_ms = 200\nfall = 1\nrise = 1\nweight = 20\n\n\
         [[group]]\nname = \"web\"\nvips = [\"{VIP}/24\"]\npriority = 100\ntrack = [\"nginx\"]\n"
    )
}

/// Waits until `name`'s group `web` is in `state` at effective priority `priority`.
fn wait_web(g: &GroupLab, name: &str, state: &'static str, priority: u64) {
    g.wait_group(name, "web", GROUP_CONVERGE, |e| {
        e["state"] == state && e["priority"] == priority
    });
}

#[test]
fn a_positive_weight_makes_the_node_whose_check_succeeds_win() {
    if !require_root("a_positive_weight_makes_the_node_whose_check_succeeds_win") {
        return;
    }
    let mut g = GroupLab::new(&["n1", "n2"]);
    for n in ["n1", "n2"] {
        g.write_config(n, &tail(&g, n));
    }
    // nginx on n1 only: n1 at 100 + 20, n2's check fails and counts for nothing (100).
    let mut web1 = g.c.start_nginx("n1");
    // n2 first: if it wins alone, it is n1's passing check that takes the VIP from it.
    g.start("n2");
    g.wait_holders(VIP, "eth0", &["n2"], GROUP_CONVERGE);
    g.start("n1");
    let took = g.wait_holders(VIP, "eth0", &["n1"], GROUP_CONVERGE);
    wait_web(&g, "n1", "master", 120);
    wait_web(&g, "n2", "backup", 100);
    let probe = g.probe(VIP);
    wait_served_by(&probe, "the VIP", "n1", GROUP_CONVERGE);
    eprintln!(
        "WEIGHTS +20: n1 (check passing) took the VIP from n2 {} ms after it started",
        took.as_millis()
    );

    // nginx moves to n2: n2's check passes (120), n1's fails (100): the VIP follows.
    let _web2 = g.c.start_nginx("n2");
    haagent_lab::web::stop(&mut web1);
    let took = g.wait_holders(VIP, "eth0", &["n2"], GROUP_CONVERGE);
    wait_web(&g, "n2", "master", 120);
    wait_web(&g, "n1", "backup", 100);
    wait_served_by(&probe, "the VIP", "n2", GROUP_CONVERGE);
    g.assert_holders_stay(&[(VIP, "eth0")], &["n2"], Duration::from_millis(500));
    eprintln!(
        "WEIGHTS +20: nginx moved to n2, the VIP followed in {} ms",
        took.as_millis()
    );
}
