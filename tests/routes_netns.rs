//! The route manager against a real kernel: two network namespaces joined by a veth pair,
//! the code under test running inside namespace A, its effect observed with `ip route`
//! there, as an operator would see it.
//!
//! Needs root (creating namespaces, CAP_NET_ADMIN). Without it every test prints
//! `SKIPPED …` and returns; with `HAAGENT_REQUIRE_NETNS=1` (as CI sets) a skip is a failure.

mod support;

use std::time::{Duration, Instant};

use haagent::net::RouteSpec;
use haagent::vip::{remove_stale_routes, RouteManager};
use support::require_root;
use support::veth::{ip, VethLab, IF_A};

/// Namespaces A and B joined by veth0 (A, 192.0.2.1/24) – veth1 (B, 192.0.2.2/24).
fn new_lab() -> VethLab {
    VethLab::new("rt", "192.0.2.1/24", "192.0.2.2/24")
}

const VIP: &str = "192.0.2.100";
const GATEWAY: &str = "192.0.2.2";

fn route(to: &str, via: Option<&str>, src: Option<&str>) -> RouteSpec {
    RouteSpec {
        to: to.parse().unwrap(),
        via: via.map(|v| v.parse().unwrap()),
        src: src.map(|s| s.parse().unwrap()),
        dev: IF_A.to_string(),
        metric: None,
        table: None,
    }
}

/// `default dev veth0 src 192.0.2.100 metric 10` (main table).
fn default_from_vip() -> RouteSpec {
    RouteSpec {
        metric: Some(10),
        ..route("0.0.0.0/0", None, Some(VIP))
    }
}

/// `203.0.113.0/24 via 192.0.2.2 dev veth0 metric 5 table 1000` (a table above 255 needs
/// RTA_TABLE).
fn via_gateway_in_table() -> RouteSpec {
    RouteSpec {
        metric: Some(5),
        table: Some(1000),
        ..route("203.0.113.0/24", Some(GATEWAY), None)
    }
}

/// `ip -n A route show ARGS…` as lines.
fn routes(lab: &VethLab, args: &[&str]) -> Vec<String> {
    let mut full = vec!["-n", lab.a.name(), "route", "show"];
    full.extend_from_slice(args);
    ip(&full)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn add_vip(lab: &VethLab, extra: &[&str]) {
    let cidr = format!("{VIP}/24");
    let mut args = vec!["-n", lab.a.name(), "addr", "add", &cidr, "dev", IF_A];
    args.extend_from_slice(extra);
    ip(&args);
}

#[test]
fn install_and_remove_show_in_ip_route() {
    if !require_root("install_and_remove_show_in_ip_route") {
        return;
    }
    let lab = new_lab();
    add_vip(&lab, &[]);
    let ns = lab.a.name().to_string();
    // A route of someone else's that must survive everything below.
    ip(&[
        "-n",
        &ns,
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        GATEWAY,
        "proto",
        "static",
    ]);
    let specs = vec![default_from_vip(), via_gateway_in_table()];

    let (installed, present) = lab.run_in_a({
        let specs = specs.clone();
        move || async move {
            let mut rm = RouteManager::open(specs).await.unwrap();
            assert!(!rm.installed());
            assert!(rm.present().await.unwrap().is_empty());
            rm.install().await.unwrap();
            rm.install().await.expect("install is idempotent");
            (rm.installed(), rm.present().await.unwrap())
        }
    });
    assert!(installed);
    assert_eq!(present, specs, "present() reads both back from the kernel");
    // `ip route show proto 98` leaves out the protocol it filters on; plain `show` has it.
    assert_eq!(
        routes(&lab, &["proto", "98"]),
        ["default dev veth0 scope link src 192.0.2.100 metric 10"]
    );
    assert!(
        routes(&lab, &[]).contains(
            &"default dev veth0 proto 98 scope link src 192.0.2.100 metric 10".to_string()
        ),
        "{:?}",
        routes(&lab, &[])
    );
    assert_eq!(
        routes(&lab, &["table", "1000"]),
        ["203.0.113.0/24 via 192.0.2.2 dev veth0 proto 98 metric 5"]
    );
    // The kernel really routes by them: 203.0.113.9 takes the default route from the VIP,
    // and goes to the gateway once a rule sends it to table 1000.
    let get = ip(&["-n", &ns, "route", "get", "203.0.113.9"]);
    assert!(get.contains("dev veth0 src 192.0.2.100"), "{get}");
    ip(&[
        "-n",
        &ns,
        "rule",
        "add",
        "to",
        "203.0.113.0/24",
        "lookup",
        "1000",
        "priority",
        "100",
    ]);
    let get = ip(&["-n", &ns, "route", "get", "203.0.113.9"]);
    assert!(get.contains("via 192.0.2.2 dev veth0 table 1000"), "{get}");

    let (installed, present) = lab.run_in_a(move || async move {
        // A fresh manager (as after a restart) removes what an earlier one installed.
        let mut rm = RouteManager::open(specs).await.unwrap();
        rm.remove().await.unwrap();
        rm.remove().await.expect("removing absent routes is fine");
        (rm.installed(), rm.present().await.unwrap())
    });
    assert!(!installed && present.is_empty());
    assert!(routes(&lab, &["proto", "98"]).is_empty());
    assert!(routes(&lab, &["table", "1000"]).is_empty());
    assert_eq!(
        routes(&lab, &["proto", "static"]),
        ["198.51.100.0/24 via 192.0.2.2 dev veth0"],
        "a foreign route stays"
    );
}

#[test]
fn a_failing_route_takes_back_the_ones_before_it() {
    if !require_root("a_failing_route_takes_back_the_ones_before_it") {
        return;
    }
    let lab = new_lab();
    add_vip(&lab, &[]);
    let ns = lab.a.name().to_string();
    // A foreign route in the slot of our third case (same table, destination, metric 0).
    ip(&[
        "-n",
        &ns,
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        GATEWAY,
        "table",
        "100",
        "proto",
        "static",
    ]);

    let errors = lab.run_in_a(|| async {
        // Not `default dev veth0`: that would put every gateway on the link.
        let first = route("198.51.100.128/25", None, Some(VIP));
        let good = via_gateway_in_table();
        // Its gateway is on no connected subnet: the kernel says ENETUNREACH.
        let unreachable = route("198.51.100.0/24", Some("203.0.113.99"), None);
        let missing_dev = RouteSpec {
            dev: "veth9".into(),
            ..route("198.51.100.0/24", Some(GATEWAY), None)
        };
        let foreign = RouteSpec {
            table: Some(100),
            ..route("198.51.100.0/24", Some(GATEWAY), Some(VIP))
        };
        let mut errors = Vec::new();
        for bad in [unreachable, missing_dev, foreign] {
            let mut rm = RouteManager::open(vec![first.clone(), good.clone(), bad])
                .await
                .unwrap();
            let e = rm.install().await.unwrap_err();
            assert!(!rm.installed());
            assert!(rm.present().await.unwrap().is_empty(), "after {e}");
            errors.push(e.to_string());
        }
        errors
    });
    assert_eq!(
        errors[0],
        "add route 198.51.100.0/24 via 203.0.113.99 dev veth0: Network is unreachable (os error 101)"
    );
    assert_eq!(
        errors[1],
        "add route 198.51.100.0/24 via 192.0.2.2 dev veth9: interface veth9 not found"
    );
    assert!(
        errors[2].starts_with("add route 198.51.100.0/24 via 192.0.2.2 dev veth0 src 192.0.2.100 table 100: the kernel already has `198.51.100.0/24 via 192.0.2.2 dev veth0 table 100` (proto static)"),
        "{}",
        errors[2]
    );
    assert!(routes(&lab, &["proto", "98"]).is_empty());
    assert!(routes(&lab, &["table", "1000"]).is_empty());
    assert_eq!(
        routes(&lab, &["table", "100"]),
        ["198.51.100.0/24 via 192.0.2.2 dev veth0 proto static"],
        "the foreign route is untouched"
    );
}

#[test]
fn stale_clean_up_removes_only_our_protocol_in_the_given_tables() {
    if !require_root("stale_clean_up_removes_only_our_protocol_in_the_given_tables") {
        return;
    }
    let lab = new_lab();
    let ns = lab.a.name().to_string();
    let add = |args: &[&str]| {
        let mut full = vec!["-n", ns.as_str(), "route", "add"];
        full.extend_from_slice(args);
        ip(&full);
    };
    // Left by a killed run (proto 98) in main and table 100, and in table 200 (not given).
    add(&["203.0.113.0/24", "via", GATEWAY, "proto", "98"]);
    add(&[
        "198.51.100.0/24",
        "via",
        GATEWAY,
        "table",
        "100",
        "proto",
        "98",
        "metric",
        "7",
    ]);
    add(&[
        "198.51.100.0/24",
        "via",
        GATEWAY,
        "table",
        "200",
        "proto",
        "98",
    ]);
    // Someone else's, in the same tables.
    add(&["192.0.2.128/25", "via", GATEWAY, "proto", "static"]);
    add(&[
        "203.0.113.0/24",
        "via",
        GATEWAY,
        "table",
        "100",
        "proto",
        "static",
    ]);

    let (mut removed, again) = lab.run_in_a(|| async {
        let removed = remove_stale_routes(&[100]).await.unwrap();
        (removed, remove_stale_routes(&[100]).await.unwrap())
    });
    removed.sort();
    assert_eq!(
        removed,
        [
            "198.51.100.0/24 via 192.0.2.2 dev veth0 metric 7 table 100",
            "203.0.113.0/24 via 192.0.2.2 dev veth0",
        ]
    );
    assert!(again.is_empty(), "nothing left: {again:?}");
    assert_eq!(
        routes(&lab, &["proto", "98", "table", "all"]),
        ["198.51.100.0/24 via 192.0.2.2 dev veth0 table 200"]
    );
    assert_eq!(
        routes(&lab, &["proto", "static"]),
        ["192.0.2.128/25 via 192.0.2.2 dev veth0"]
    );
    assert_eq!(
        routes(&lab, &["table", "100"]),
        ["203.0.113.0/24 via 192.0.2.2 dev veth0 proto static"]
    );
}

/// A route with `src` = VIP needs the VIP: refused before it is there, and deleted by the
/// kernel itself when the VIP's lifetime runs out (while a route without `src` stays).
#[test]
fn a_src_route_goes_with_its_vip_when_the_lease_runs_out() {
    if !require_root("a_src_route_goes_with_its_vip_when_the_lease_runs_out") {
        return;
    }
    let lab = new_lab();
    let specs = vec![
        default_from_vip(),
        route("203.0.113.0/24", Some(GATEWAY), None),
    ];

    let before_vip = lab.run_in_a({
        let specs = specs.clone();
        move || async move {
            let mut rm = RouteManager::open(specs).await.unwrap();
            rm.install().await.unwrap_err().to_string()
        }
    });
    assert_eq!(
        before_vip,
        "add route 0.0.0.0/0 dev veth0 src 192.0.2.100 metric 10: Invalid argument (os error 22)",
        "no VIP yet: the kernel refuses the src route"
    );
    assert!(routes(&lab, &["proto", "98"]).is_empty());

    add_vip(&lab, &["valid_lft", "1", "preferred_lft", "1"]);
    let (rm_installed, present) = lab.run_in_a({
        let specs = specs.clone();
        move || async move {
            let mut rm = RouteManager::open(specs).await.unwrap();
            rm.install().await.unwrap();
            (rm.installed(), rm.present().await.unwrap())
        }
    });
    assert!(rm_installed);
    assert_eq!(present, specs);
    assert_eq!(routes(&lab, &["proto", "98"]).len(), 2);

    let installed = Instant::now();
    let deadline = installed + Duration::from_secs(5);
    loop {
        let now = routes(&lab, &["proto", "98"]);
        if now == ["203.0.113.0/24 via 192.0.2.2 dev veth0"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the src route is still there 5 s after its VIP's 1 s lease: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "the kernel dropped the src route {} ms after install",
        installed.elapsed().as_millis()
    );
    let addrs = ip(&["-n", lab.a.name(), "-4", "addr", "show", "dev", IF_A]);
    assert!(!addrs.contains(VIP), "the VIP expired with it: {addrs}");

    let present = lab.run_in_a(move || async move {
        let rm = RouteManager::open(specs).await.unwrap();
        rm.present().await.unwrap()
    });
    assert_eq!(present, [route("203.0.113.0/24", Some(GATEWAY), None)]);
}

/// A reload while installed: dropped routes go, new ones come; while not installed, nothing
/// changes in the kernel.
#[test]
fn set_routes_follows_a_reload() {
    if !require_root("set_routes_follows_a_reload") {
        return;
    }
    let lab = new_lab();
    add_vip(&lab, &[]);
    let shown = |lab: &VethLab| {
        let mut all = routes(lab, &["proto", "98", "table", "all"]);
        all.sort();
        all
    };
    let (idle, swapped) = lab.run_in_a(|| async {
        let mut rm = RouteManager::open(vec![default_from_vip()]).await.unwrap();
        rm.set_routes(vec![via_gateway_in_table()]).await.unwrap();
        let idle = rm.present().await.unwrap();
        rm.set_routes(vec![default_from_vip()]).await.unwrap();
        rm.install().await.unwrap();
        rm.set_routes(vec![via_gateway_in_table()]).await.unwrap();
        (idle, (rm.routes().to_vec(), rm.present().await.unwrap()))
    });
    assert!(idle.is_empty(), "not installed: nothing added");
    assert_eq!(swapped.0, [via_gateway_in_table()]);
    assert_eq!(swapped.1, [via_gateway_in_table()]);
    assert_eq!(
        shown(&lab),
        ["203.0.113.0/24 via 192.0.2.2 dev veth0 table 1000 metric 5"]
    );
}
