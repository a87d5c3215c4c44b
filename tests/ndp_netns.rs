//! The IPv6 Neighbor Discovery frames of `src/vip/ndp.rs` and the VIP drivers that send and
//! read them (`GarpSender`, `ArpProbe`, `ArpWatch`) against a real kernel (issue 13):
//! namespaces A and B joined by a veth pair (2001:db8::11/64 ↔ 2001:db8::12/64, no DAD for
//! them). A sends through an AF_PACKET socket; B's kernel is the neighbour that must learn
//! from our unsolicited NA, or the holder of 2001:db8::100 that must answer our DAD NS, or B
//! forges the NAs our watch must (or must not) report.
//!
//! Needs root (namespaces, CAP_NET_RAW). Without it every test prints `SKIPPED …` and
//! returns; with `HAAGENT_REQUIRE_NETNS` set (as CI does) a skip is a failure.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use haagent::vip::{ArpConflict, ArpProbe, ArpWatch, GarpSender};

use support::arp::parse_mac;
use support::require_root;
use support::veth::{ip, run_in, send_frames, Netns, VethLab, IF_A, IF_B};

const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
/// The MAC B's neighbour entry for the VIP starts with (documentation range, RFC 7042).
const OLD_MAC: &str = "00:00:5e:00:53:aa";
/// A third host's MAC, probing for the VIP with a DAD NS (documentation range, RFC 7042).
const PROBER_MAC: &str = "00:00:5e:00:53:bb";

/// Namespaces A (veth0, 2001:db8::11/64) and B (veth1, 2001:db8::12/64), IPv6 on, both
/// ends up and operational.
fn new_lab() -> VethLab {
    let lab = VethLab::pair("ndp");
    for (ns, dev, addr) in [
        (&lab.a, IF_A, "2001:db8::11/64"),
        (&lab.b, IF_B, "2001:db8::12/64"),
    ] {
        enable_ipv6(ns, dev);
        ip(&["-n", ns.name(), "addr", "add", addr, "dev", dev, "nodad"]);
        ip(&["-n", ns.name(), "link", "set", dev, "up"]);
    }
    for (ns, dev) in [(&lab.a, IF_A), (&lab.b, IF_B)] {
        wait_operational(ns, dev);
    }
    lab
}

/// Waits until `dev` in `ns` is operationally up. Until then the kernel's link watch has
/// not attached the device's queueing discipline (it may take up to a second after the
/// carrier comes on), and a frame sent meanwhile is dropped without an error: a single NA
/// would be lost.
fn wait_operational(ns: &Netns, dev: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ip(&["-n", ns.name(), "-j", "link", "show", "dev", dev]);
        let links: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let state = links[0]["operstate"].as_str().unwrap_or("").to_string();
        if state == "UP" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{dev} in {} is {state}, not UP",
            ns.name()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn enable_ipv6(ns: &Netns, dev: &str) {
    let out = ns
        .command("sysctl")
        .args([
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=0",
            "net.ipv6.conf.default.disable_ipv6=0",
            &format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sysctl in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The link-layer address of `ns`'s neighbour entry for the VIP on `dev`, if any.
fn neighbour_mac(ns: &Netns, dev: &str) -> Option<String> {
    neighbour_entry(ns, dev).and_then(|e| e["lladdr"].as_str().map(str::to_string))
}

/// `ns`'s neighbour entry for the VIP on `dev` (`ip -j -6 neigh show`), if any.
fn neighbour_entry(ns: &Netns, dev: &str) -> Option<serde_json::Value> {
    let out = ip(&[
        "-n",
        ns.name(),
        "-j",
        "-6",
        "neigh",
        "show",
        &VIP.to_string(),
        "dev",
        dev,
    ]);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    entries.into_iter().next()
}

#[test]
fn unsolicited_na_overrides_a_neighbours_cached_mac() {
    if !require_root("unsolicited_na_overrides_a_neighbours_cached_mac") {
        return;
    }
    let lab = new_lab();
    let mac_a = support::veth::mac(&lab.a, IF_A);
    // B has the VIP cached at another MAC, as a client of the old holder has.
    ip(&[
        "-n",
        lab.b.name(),
        "-6",
        "neigh",
        "replace",
        &VIP.to_string(),
        "lladdr",
        OLD_MAC,
        "dev",
        IF_B,
        "nud",
        "stale",
    ]);
    assert_eq!(neighbour_mac(&lab.b, IF_B).as_deref(), Some(OLD_MAC));

    // One GarpSender::send of an IPv6 VIP: one unsolicited NA with Override.
    let sent = Instant::now();
    let (frames, from) = run_in(lab.a.name(), || {
        let mut garp = GarpSender::open(IF_A).unwrap();
        (garp.send(VIP.into()).unwrap(), garp.mac())
    });
    assert_eq!(frames, 1, "one NA per send for an IPv6 VIP");
    assert_eq!(from, parse_mac(&mac_a));
    let deadline = sent + Duration::from_secs(5);
    loop {
        let seen = neighbour_mac(&lab.b, IF_B);
        if seen.as_deref() == Some(mac_a.as_str()) {
            eprintln!("B learned {mac_a} {:?} after the NA", sent.elapsed());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's neighbour entry for {VIP} is {seen:?}, expected {mac_a} from our NA"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether B's neighbour entry for the VIP has the `router` flag (`ip -j neigh` lists it as
/// a `router` key).
fn neighbour_is_router(ns: &Netns, dev: &str) -> bool {
    neighbour_entry(ns, dev)
        .is_some_and(|e| e.as_object().is_some_and(|o| o.contains_key("router")))
}

/// A master whose interface forwards IPv6 (a router pair whose IPv6 VIP is the gateway)
/// sets the Router flag in its NAs, as Linux does in its own: a neighbour that sees R go
/// from 1 to 0 drops the sender from its default routers (RFC 4861 §7.2.5). With
/// forwarding off the flag is clear again (the sysctl is read at each send).
#[test]
fn unsolicited_nas_carry_the_router_flag_while_the_interface_forwards() {
    if !require_root("unsolicited_nas_carry_the_router_flag_while_the_interface_forwards") {
        return;
    }
    let lab = new_lab();
    let send = |forwarding: u8| {
        ip(&[
            "netns",
            "exec",
            lab.a.name(),
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{IF_A}.forwarding={forwarding}"),
        ]);
        run_in(lab.a.name(), || {
            let mut garp = GarpSender::open(IF_A).unwrap();
            garp.send(VIP.into()).unwrap()
        });
    };
    let mac_a = support::veth::mac(&lab.a, IF_A);
    for (forwarding, router) in [(1, true), (0, false)] {
        ip(&[
            "-n",
            lab.b.name(),
            "-6",
            "neigh",
            "replace",
            &VIP.to_string(),
            "lladdr",
            OLD_MAC,
            "dev",
            IF_B,
            "nud",
            "stale",
        ]);
        send(forwarding);
        let deadline = Instant::now() + Duration::from_secs(5);
        while neighbour_mac(&lab.b, IF_B).as_deref() != Some(mac_a.as_str()) {
            assert!(Instant::now() < deadline, "B never learned the NA");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            neighbour_is_router(&lab.b, IF_B),
            router,
            "forwarding={forwarding}: B's entry's router flag"
        );
    }
}

/// Sends a DAD NS for `target` from A every 200 ms for `window` and returns the first
/// advertisement for `target` read on A's socket: (NA flags, sender MAC).
fn probe(lab: &VethLab, target: Ipv6Addr, window: Duration) -> Option<([bool; 3], [u8; 6])> {
    let mac_a = parse_mac(&support::veth::mac(&lab.a, IF_A));
    run_in(lab.a.name(), move || {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == IF_A)
            .expect("veth0 in A");
        let config = pnet_datalink::Config {
            promiscuous: false,
            read_timeout: Some(Duration::from_millis(20)),
            ..Default::default()
        };
        let Ok(pnet_datalink::Channel::Ethernet(mut tx, mut rx)) =
            pnet_datalink::channel(&iface, config)
        else {
            panic!("no ethernet channel on veth0");
        };
        let [_, dad] = haagent::vip::fuzz_nd_frames(mac_a, target);
        let started = Instant::now();
        let mut next_probe = started;
        while started.elapsed() < window {
            if Instant::now() >= next_probe {
                tx.send_to(&dad, None).expect("one frame").expect("sent");
                next_probe += Duration::from_millis(200);
            }
            let Ok(frame) = rx.next() else { continue };
            // An AF_PACKET socket sees every frame on the interface, the NA to ff02::1
            // included; anything that is not an NA for the target is passed over.
            if let Some((Some(flags), t, mac, _)) = haagent::vip::fuzz_parse_nd(frame) {
                if t == target {
                    eprintln!("advert for {t} after {:?}", started.elapsed());
                    return Some((flags, mac));
                }
            }
        }
        None
    })
}

/// B's kernel answers a DAD NS for an address it holds (frame level, with the NA's flags),
/// and `ArpProbe` finds it there: alone, next to an IPv4 VIP nobody holds in one window,
/// and not when B's MAC is ignored; nobody answers for an address nobody holds.
#[test]
fn dad_ns_is_answered_by_the_holder_and_the_probe_finds_it() {
    if !require_root("dad_ns_is_answered_by_the_holder_and_the_probe_finds_it") {
        return;
    }
    let lab = new_lab();
    let mac_b = parse_mac(&support::veth::mac(&lab.b, IF_B));
    let v6 = IpAddr::V6(VIP);
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));

    // Nobody holds the VIP yet: no answer, after about the window.
    let window = Duration::from_millis(300);
    let (none, took) = run_in(lab.a.name(), move || {
        let mut probe = ArpProbe::open(IF_A).unwrap();
        let started = Instant::now();
        (probe.probe(&[v6], 3, window).unwrap(), started.elapsed())
    });
    assert_eq!(none, None);
    assert!(
        took >= window && took < window + Duration::from_millis(100),
        "{took:?}"
    );

    // B takes it; its kernel answers the DAD NS with an NA to ff02::1 (RFC 4861 §7.2.4):
    // Override set, Solicited clear (a multicast answer), Router clear (no forwarding).
    ip(&[
        "-n",
        lab.b.name(),
        "addr",
        "add",
        &format!("{VIP}/64"),
        "dev",
        IF_B,
        "nodad",
    ]);
    let answer = probe(&lab, VIP, Duration::from_secs(5));
    assert_eq!(
        answer,
        Some(([true, false, false], mac_b)),
        "expected B's NA with its MAC {mac_b:02x?}"
    );

    let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x101));
    run_in(lab.a.name(), move || {
        let mut probe = ArpProbe::open(IF_A).unwrap();
        let window = Duration::from_millis(300);
        let started = Instant::now();
        let found = probe.probe(&[v6], 3, window).unwrap();
        eprintln!(
            "probe for {v6} found {found:02x?} after {:?}",
            started.elapsed()
        );
        assert_eq!(found, Some((v6, mac_b)));

        // Both families in one window: the IPv4 VIP is unheld, the IPv6 one is B's.
        let started = Instant::now();
        let found = probe.probe(&[v4, v6], 3, window).unwrap();
        assert_eq!(found, Some((v6, mac_b)));
        assert!(started.elapsed() < window, "{:?}", started.elapsed());

        // B's NA is no answer when its MAC is ignored: counted, and the window runs out.
        let mut ignored = 0;
        let found = probe
            .probe_ignoring(&[v6], 3, window, &[mac_b], &mut ignored)
            .unwrap();
        assert_eq!(found, None);
        assert!(ignored >= 1, "{ignored}");

        // An address B does not hold is still unanswered.
        assert_eq!(
            probe
                .probe(&[other], 2, Duration::from_millis(200))
                .unwrap(),
            None
        );
    });
}

/// `ArpWatch` on an IPv6 VIP: an NA for it from B's MAC is a conflict; our own NA (sent by
/// A, or forged by B with A's MAC), a DAD NS for it (someone probing) and an NA for another
/// address are not.
#[test]
fn watch_reports_a_foreign_na_for_an_ipv6_vip() {
    if !require_root("watch_reports_a_foreign_na_for_an_ipv6_vip") {
        return;
    }
    let lab = new_lab();
    let mac_a = parse_mac(&support::veth::mac(&lab.a, IF_A));
    let mac_b = parse_mac(&support::veth::mac(&lab.b, IF_B));
    let b_name = lab.b.name().to_string();
    let v6 = IpAddr::V6(VIP);
    lab.run_in_a(move || async move {
        let vips = vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)), v6];
        let (watch, mut conflicts) = ArpWatch::spawn(IF_A, mac_a, vips).unwrap();

        // First everything that must not be reported, then B's claim: a wrong report would
        // arrive before the right one.
        GarpSender::open(IF_A).unwrap().send(v6).unwrap();
        let [own_forged, _] = haagent::vip::fuzz_nd_frames(mac_a, VIP);
        // From a third MAC, so that a wrong report of it cannot pass for B's.
        let [_, probing] = haagent::vip::fuzz_nd_frames(parse_mac(PROBER_MAC), VIP);
        let unwatched = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x101);
        let [b_other, _] = haagent::vip::fuzz_nd_frames(mac_b, unwatched);
        let [b_claim, _] = haagent::vip::fuzz_nd_frames(mac_b, VIP);
        let sent = Instant::now();
        send_frames(
            &b_name,
            IF_B,
            vec![own_forged, probing, b_other, b_claim],
            Duration::from_millis(5),
        );

        let conflict = tokio::time::timeout(Duration::from_secs(5), conflicts.recv())
            .await
            .expect("no ArpConflict within 5 s")
            .expect("watch thread ended");
        eprintln!(
            "conflict reported {:?} after the first frame",
            sent.elapsed()
        );
        assert_eq!(
            conflict,
            ArpConflict {
                vip: v6,
                mac: mac_b
            }
        );
        let more = tokio::time::timeout(Duration::from_millis(300), conflicts.recv()).await;
        assert!(more.is_err(), "only B's NA is a conflict, got {more:?}");
        drop(watch);
    });
}
