//! Peer traffic never leaves from a VIP (issue 9, kind 3), with the real binary in
//! namespaces.
//!
//! Needs root. Without it every test prints `SKIPPED …`; with `HAAGENT_REQUIRE_NETNS` set
//! (as CI does) a skip is a failure.

mod support;

use std::time::Duration;

use support::*;

/// Default `listen` (0.0.0.0), `promote_secondaries=1` (systemd's sysctl default) on the
/// master, and its own address deleted and added again (a DHCP renew): the VIP becomes
/// the primary address. Before: QUIC datagrams then left from the VIP; after a handover the
/// two nodes could not hear each other, both re-announced for ~10 s and the CLI reported
/// the handover failed. Now the agent binds peer traffic to its own address.
#[test]
fn a_promoted_vip_is_not_the_source_of_peer_traffic() {
    if !require_root("a_promoted_vip_is_not_the_source_of_peer_traffic") {
        return;
    }
    let mut c = Cluster::new(&[node("n1", 200), node("n2", 100)]);
    for name in ["n1", "n2"] {
        let path = c.config_path(name);
        let addr = c.lab.host(name).unwrap().addr;
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace(&format!("listen = \"{addr}\""), "listen = \"0.0.0.0\"");
        std::fs::write(&path, text).unwrap();
    }
    let n1_addr = c.lab.host("n1").unwrap().addr;
    set_promote_secondaries(&c, "n1", true);
    c.start("n1");
    c.start("n2");
    c.wait_sole_holder("n1", CONVERGE);
    c.wait_status("n1", CONVERGE, |s| s["peers"][0]["alive"] == true);
    // The DHCP renew: the VIP is promoted to primary while the own address is away.
    let own = format!("{n1_addr}/24");
    let n1 = c.lab.host("n1").unwrap();
    n1.ns.ip(&["addr", "del", &own, "dev", "eth0"]).unwrap();
    n1.ns.ip(&["addr", "add", &own, "dev", "eth0"]).unwrap();
    let shown = String::from_utf8(
        n1.ns
            .ip(&["-4", "addr", "show", "dev", "eth0"])
            .unwrap()
            .stdout,
    )
    .unwrap();
    let first = shown
        .lines()
        .find(|l| l.trim_start().starts_with("inet "))
        .unwrap_or_default()
        .to_string();
    assert!(
        first.contains(&VIP.to_string()),
        "precondition: the VIP is the primary address now:\n{shown}"
    );
    // Peer traffic still flows both ways, and a planned handover works.
    c.wait_status("n2", CONVERGE, |s| s["peers"][0]["alive"] == true);
    let out = c.ctl("n1", &["handover", "--to", "n2"]);
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        c.logs()
    );
    c.wait_sole_holder("n2", TAKEOVER);
    c.assert_holders_stay(&["n2"], Duration::from_secs(1));
    let status = c.wait_status("n1", CONVERGE, |s| s["peers"][0]["alive"] == true);
    assert_eq!(status["state"], "backup");
}
