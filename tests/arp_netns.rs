//! ARP probe and ARP watch against a real kernel: namespaces A and B joined by a
//! veth pair (192.0.2.11/24 ↔ 192.0.2.12/24). The code under test runs in A; B
//! plays the other owner of the VIP 192.0.2.100 (its kernel answering probes, or
//! the crate's own GarpSender announcing it).
//!
//! Needs root (namespaces, CAP_NET_RAW). Without it every test prints
//! `SKIPPED …` and returns; with `HAAGENT_REQUIRE_NETNS` set (as CI does) a skip
//! is a failure.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use haagent::net::format_mac;
use haagent::vip::{ArpConflict, ArpProbe, ArpWatch, GarpSender};
use support::require_root;
use support::veth::{ip, run_in, Netns, VethLab, IF_A, IF_B};

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));

/// Namespaces A (veth0, 192.0.2.11/24) and B (veth1, 192.0.2.12/24).
fn new_lab() -> VethLab {
    VethLab::new("arp", "192.0.2.11/24", "192.0.2.12/24")
}

/// The MAC of `dev` in `ns` as bytes.
fn mac(ns: &Netns, dev: &str) -> [u8; 6] {
    let bytes: Vec<u8> = support::veth::mac(ns, dev)
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

#[test]
fn probe_finds_the_other_owner_of_the_vip() {
    if !require_root("probe_finds_the_other_owner_of_the_vip") {
        return;
    }
    let lab = new_lab();
    let mac_a = mac(&lab.a, IF_A);
    let mac_b = mac(&lab.b, IF_B);
    let b_name = lab.b.name().to_string();
    run_in(lab.a.name(), move || {
        let mut probe = ArpProbe::open(IF_A).unwrap();
        assert_eq!(probe.mac(), mac_a);

        // Nobody has the VIP: the probe hears nothing and takes about its window.
        let window = Duration::from_millis(300);
        let started = Instant::now();
        assert_eq!(probe.probe(&[VIP], 3, window).unwrap(), None);
        let took = started.elapsed();
        assert!(
            took >= window && took < window + Duration::from_millis(100),
            "{took:?}"
        );

        let window = Duration::from_millis(30);
        let started = Instant::now();
        assert_eq!(probe.probe(&[VIP], 3, window).unwrap(), None);
        let took = started.elapsed();
        eprintln!("probe with count 3, window {window:?} took {took:?}");
        assert!(
            took >= window && took < window + Duration::from_millis(50),
            "{took:?}"
        );

        // B takes the VIP; its kernel answers the RFC 5227 probe.
        ip(&["-n", &b_name, "addr", "add", "192.0.2.100/24", "dev", IF_B]);
        let started = Instant::now();
        let found = probe.probe(&[VIP], 3, Duration::from_millis(300)).unwrap();
        eprintln!(
            "probe found {:?} after {:?}",
            found.map(|(_, m)| format_mac(&m)),
            started.elapsed()
        );
        assert_eq!(
            found,
            Some((VIP, mac_b)),
            "expected B's MAC {}",
            format_mac(&mac_b)
        );

        // Probing another address still finds nobody (B's answer is about .100 only).
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 101));
        assert_eq!(
            probe
                .probe(&[other], 2, Duration::from_millis(100))
                .unwrap(),
            None
        );
    });
}

#[test]
fn watch_reports_another_mac_announcing_the_vip() {
    if !require_root("watch_reports_another_mac_announcing_the_vip") {
        return;
    }
    let lab = new_lab();
    let mac_a = mac(&lab.a, IF_A);
    let mac_b = mac(&lab.b, IF_B);
    let b_name = lab.b.name().to_string();
    lab.run_in_a(move || async move {
        let (watch, mut conflicts) = ArpWatch::spawn(IF_A, mac_a, vec![VIP]).unwrap();

        // Our own announcement of the VIP is not a conflict.
        GarpSender::open(IF_A).unwrap().send(VIP).unwrap();
        // An announcement of an address we do not watch is not either.
        run_in(&b_name, || {
            let mut garp = GarpSender::open(IF_B).unwrap();
            garp.send(Ipv4Addr::new(192, 0, 2, 12).into()).unwrap();
        });
        // B announces the VIP: one send puts two frames on the wire.
        let sent = Instant::now();
        run_in(&b_name, || {
            GarpSender::open(IF_B).unwrap().send(VIP).unwrap()
        });

        let conflict = tokio::time::timeout(Duration::from_secs(5), conflicts.recv())
            .await
            .expect("no ArpConflict within 5 s")
            .expect("watch thread ended");
        eprintln!(
            "conflict reported after {:?}: {} at {}",
            sent.elapsed(),
            conflict.vip,
            format_mac(&conflict.mac)
        );
        assert_eq!(
            conflict,
            ArpConflict {
                vip: VIP,
                mac: mac_b
            }
        );

        // The second frame of the same send is rate-limited away.
        let more = tokio::time::timeout(Duration::from_millis(300), conflicts.recv()).await;
        assert!(
            more.is_err(),
            "expected one report per 500 ms, got {more:?}"
        );

        // Dropping the watch stops its thread, which closes the channel.
        drop(watch);
        let end = tokio::time::timeout(Duration::from_secs(2), conflicts.recv()).await;
        assert!(
            matches!(end, Ok(None)),
            "watch thread still running: {end:?}"
        );
    });
}

/// Waits for `expected`, then makes sure nothing else is reported for longer than a replaced
/// watch's thread can linger (its read timeout, 1 s).
async fn expect_only_conflict(
    conflicts: &mut tokio::sync::mpsc::Receiver<ArpConflict>,
    expected: ArpConflict,
) {
    let conflict = tokio::time::timeout(Duration::from_secs(5), conflicts.recv())
        .await
        .expect("no ArpConflict within 5 s")
        .expect("watch thread ended");
    assert_eq!(conflict, expected);
    let more = tokio::time::timeout(Duration::from_millis(1500), conflicts.recv()).await;
    assert!(more.is_err(), "a replaced watch reported: {more:?}");
}

/// A watch replaced by [`ArpWatch::set_vips`] (or `reopen`) lingers until its read times
/// out, but reports nothing once replaced: a claim of a VIP that is no longer watched is no
/// conflict, a claim of the new one is.
#[test]
fn a_replaced_watch_reports_only_the_current_vips() {
    if !require_root("a_replaced_watch_reports_only_the_current_vips") {
        return;
    }
    const NEW_VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 101));
    let lab = new_lab();
    let mac_a = mac(&lab.a, IF_A);
    let mac_b = mac(&lab.b, IF_B);
    let b_name = lab.b.name().to_string();
    lab.run_in_a(move || async move {
        let (mut watch, mut conflicts) = ArpWatch::spawn(IF_A, mac_a, vec![VIP]).unwrap();
        watch.set_vips(vec![NEW_VIP], mac_a).unwrap();
        // The old VIP first, then the new one: the old thread, still reading, sees both.
        run_in(&b_name, || {
            let mut garp = GarpSender::open(IF_B).unwrap();
            garp.send(VIP).unwrap();
            garp.send(NEW_VIP).unwrap();
        });
        expect_only_conflict(
            &mut conflicts,
            ArpConflict {
                vip: NEW_VIP,
                mac: mac_b,
            },
        )
        .await;
        drop(watch);
    });
}

/// The same for a watch reopened with a new MAC (the interface changed its address): the
/// old watch, which still takes the old MAC for ours, does not report our own announcement
/// from the new one.
#[test]
fn a_reopened_watch_does_not_take_our_new_mac_for_another_holder() {
    if !require_root("a_reopened_watch_does_not_take_our_new_mac_for_another_holder") {
        return;
    }
    let lab = new_lab();
    let mac_a = mac(&lab.a, IF_A);
    let mac_b = mac(&lab.b, IF_B);
    let b_name = lab.b.name().to_string();
    lab.run_in_a(move || async move {
        // Started while the interface had another MAC.
        let old_mac = [0x02, 0, 0x5e, 0, 0x53, 0x01];
        let (mut watch, mut conflicts) = ArpWatch::spawn(IF_A, old_mac, vec![VIP]).unwrap();
        watch.reopen(mac_a).unwrap();
        // Our own announcement from the new MAC, then B's: only B's is a conflict.
        GarpSender::open(IF_A).unwrap().send(VIP).unwrap();
        run_in(&b_name, || {
            GarpSender::open(IF_B).unwrap().send(VIP).unwrap()
        });
        expect_only_conflict(
            &mut conflicts,
            ArpConflict {
                vip: VIP,
                mac: mac_b,
            },
        )
        .await;
        drop(watch);
    });
}
