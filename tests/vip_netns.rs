//! The VIP manager and gratuitous ARP against a real kernel: two network
//! namespaces joined by a veth pair, the code under test running inside
//! namespace A, its effect observed with `ip` (in A) and from namespace B.
//!
//! Needs root (creating namespaces, CAP_NET_ADMIN, CAP_NET_RAW). Without it every
//! test prints `SKIPPED …` and returns; with `HAAGENT_REQUIRE_NETNS=1` (as CI sets)
//! a skip is a failure.

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use haagent::net::IpCidr;
use haagent::vip::{Announcer, GarpSender, VipManager};
use serde_json::Value;
use support::require_root;
use support::veth::{ip, VethLab, IF_A, IF_B};

fn cidr(s: &str) -> IpCidr {
    s.parse().unwrap()
}

/// Namespaces A and B joined by veth0 (A, 192.0.2.1/24) – veth1 (B, 192.0.2.2/24).
fn new_lab() -> VethLab {
    VethLab::new("vip", "192.0.2.1/24", "192.0.2.2/24")
}

/// What the VIP tests observe in the lab with `ip`.
trait Observe {
    /// IPv4 `addr_info` entries of veth0 in A, from `ip -j addr show`.
    fn addrs_a(&self) -> Vec<Value>;
    /// The `addr_info` entry for `c` on veth0 in A, if present.
    fn addr_a(&self, c: &str) -> Option<Value>;
    /// veth0's MAC as `ip` prints it.
    fn mac_a(&self) -> String;
    /// B's neighbour entry for `addr`: its MAC, if any.
    fn neighbour_mac_b(&self, addr: &str) -> Option<String>;
    /// Plants a wrong MAC for `addr` in B's neighbour table (a stale entry, as
    /// after a failover from another node).
    fn poison_neighbour_b(&self, addr: &str);
    /// Polls every 20 ms, up to 2 s, until B's entry for `addr` is `mac`.
    fn wait_neighbour_b(&self, addr: &str, mac: &str);
}

impl Observe for VethLab {
    fn addrs_a(&self) -> Vec<Value> {
        let out = ip(&["-n", self.a.name(), "-j", "addr", "show", "dev", IF_A]);
        let links: Vec<Value> = serde_json::from_str(&out).unwrap();
        links[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["family"] == "inet")
            .cloned()
            .collect()
    }

    fn addr_a(&self, c: &str) -> Option<Value> {
        let c = cidr(c);
        self.addrs_a().into_iter().find(|a| {
            a["local"].as_str() == Some(&c.addr.to_string())
                && a["prefixlen"].as_u64() == Some(u64::from(c.prefix))
        })
    }

    fn mac_a(&self) -> String {
        support::veth::mac(&self.a, IF_A)
    }

    fn neighbour_mac_b(&self, addr: &str) -> Option<String> {
        let out = ip(&[
            "-n",
            self.b.name(),
            "-j",
            "neigh",
            "show",
            addr,
            "dev",
            IF_B,
        ]);
        let entries: Vec<Value> = serde_json::from_str(&out).unwrap_or_default();
        entries.first()?["lladdr"].as_str().map(str::to_string)
    }

    fn poison_neighbour_b(&self, addr: &str) {
        ip(&[
            "-n",
            self.b.name(),
            "neigh",
            "replace",
            addr,
            "lladdr",
            BOGUS_MAC,
            "dev",
            IF_B,
            "nud",
            "stale",
        ]);
        assert_eq!(self.neighbour_mac_b(addr).as_deref(), Some(BOGUS_MAC));
    }

    fn wait_neighbour_b(&self, addr: &str, mac: &str) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let seen = self.neighbour_mac_b(addr);
            if seen.as_deref() == Some(mac) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "B still maps {addr} to {seen:?}, expected {mac} after the gratuitous ARP"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

const BOGUS_MAC: &str = "02:00:00:00:00:99";

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn install_release_and_installed_follow_the_kernel() {
    if !require_root("install_release_and_installed_follow_the_kernel") {
        return;
    }
    let lab = new_lab();
    let vip = cidr("192.0.2.100/24");

    let vm = lab.run_in_a(move || async move {
        let mut vm = VipManager::open(IF_A, vec![vip], None).await.unwrap();
        vm.install().await.unwrap();
        vm.install().await.expect("install is idempotent");
        let installed = vm.installed().await.unwrap();
        (vm.interface().to_string(), fmt_mac(vm.mac()), installed)
    });
    assert_eq!(vm.0, IF_A);
    assert_eq!(vm.1, lab.mac_a(), "mac() is the interface's MAC");
    assert_eq!(vm.2, vec![vip]);
    let entry = lab
        .addr_a("192.0.2.100/24")
        .expect("VIP on veth0 after install");
    assert_eq!(
        entry["valid_life_time"].as_u64(),
        Some(u64::from(u32::MAX)),
        "no lifetime: forever"
    );
    assert_eq!(
        lab.addrs_a().len(),
        2,
        "only 192.0.2.1 and the VIP: {:?}",
        lab.addrs_a()
    );

    let after = lab.run_in_a(move || async move {
        let mut vm = VipManager::open(IF_A, vec![vip], None).await.unwrap();
        vm.release().await.unwrap();
        let installed = vm.installed().await.unwrap();
        vm.release().await.expect("releasing an absent VIP is fine");
        installed
    });
    assert!(after.is_empty(), "installed() after release: {after:?}");
    assert!(lab.addr_a("192.0.2.100/24").is_none());
    assert!(
        lab.addr_a("192.0.2.1/24").is_some(),
        "the node's own address stays"
    );
}

#[test]
fn remove_stale_deletes_leftovers_with_any_prefix() {
    if !require_root("remove_stale_deletes_leftovers_with_any_prefix") {
        return;
    }
    let lab = new_lab();
    for c in ["192.0.2.100/24", "192.0.2.100/32", "192.0.2.50/24"] {
        ip(&["-n", lab.a.name(), "addr", "add", c, "dev", IF_A]);
    }
    let (mut removed, installed) = lab.run_in_a(|| async {
        let vm = VipManager::open(IF_A, vec![cidr("192.0.2.100/24")], None)
            .await
            .unwrap();
        let removed = vm.remove_stale().await.unwrap();
        (removed, vm.installed().await.unwrap())
    });
    removed.sort();
    assert_eq!(
        removed,
        vec![cidr("192.0.2.100/24"), cidr("192.0.2.100/32")]
    );
    assert!(installed.is_empty());
    let left: Vec<String> = lab
        .addrs_a()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect();
    assert_eq!(
        left,
        vec!["192.0.2.1/24", "192.0.2.50/24"],
        "unrelated addresses stay"
    );

    let again = lab.run_in_a(|| async {
        let vm = VipManager::open(IF_A, vec![cidr("192.0.2.100/24")], None)
            .await
            .unwrap();
        vm.remove_stale().await.unwrap()
    });
    assert!(again.is_empty(), "nothing left to remove: {again:?}");
}

#[test]
fn lifetime_is_finite_and_refresh_keeps_the_vip() {
    if !require_root("lifetime_is_finite_and_refresh_keeps_the_vip") {
        return;
    }
    let lab = new_lab();
    let vip = cidr("192.0.2.100/24");
    let lifetime = Some(Duration::from_secs(2));

    lab.run_in_a(move || async move {
        let mut vm = VipManager::open(IF_A, vec![vip], lifetime).await.unwrap();
        vm.install().await.unwrap();
    });
    let entry = lab.addr_a("192.0.2.100/24").expect("VIP installed");
    let valid = entry["valid_life_time"].as_u64().unwrap();
    let preferred = entry["preferred_life_time"].as_u64().unwrap();
    assert!(valid <= 2, "valid_life_time {valid} should be at most 2 s");
    assert!(
        preferred <= 2,
        "preferred_life_time {preferred} should be at most 2 s"
    );

    let installed = lab.run_in_a(move || async move {
        let mut vm = VipManager::open(IF_A, vec![vip], lifetime).await.unwrap();
        vm.refresh().await.unwrap();
        vm.installed().await.unwrap()
    });
    assert_eq!(installed, vec![vip]);
    let entry = lab
        .addr_a("192.0.2.100/24")
        .expect("VIP still there after refresh");
    assert!(entry["valid_life_time"].as_u64().unwrap() <= 2);

    // Without a lifetime, install turns a lifetime address into a permanent one.
    lab.run_in_a(move || async move {
        let mut vm = VipManager::open(IF_A, vec![vip], None).await.unwrap();
        vm.refresh().await.unwrap(); // no-op without lifetime
        vm.install().await.unwrap();
    });
    let entry = lab.addr_a("192.0.2.100/24").unwrap();
    assert_eq!(entry["valid_life_time"].as_u64(), Some(u64::from(u32::MAX)));
}

#[test]
fn gratuitous_arp_updates_the_neighbour_on_the_lan() {
    if !require_root("gratuitous_arp_updates_the_neighbour_on_the_lan") {
        return;
    }
    let lab = new_lab();
    let vip = cidr("192.0.2.100/24");
    let mac_a = lab.mac_a();
    assert_ne!(mac_a, BOGUS_MAC);

    // One send() from GarpSender.
    lab.poison_neighbour_b("192.0.2.100");
    let sender_mac = lab.run_in_a(move || async move {
        let mut vm = VipManager::open(IF_A, vec![vip], None).await.unwrap();
        vm.install().await.unwrap();
        let mut garp = GarpSender::open(IF_A).unwrap();
        garp.send(vip.addr).unwrap();
        fmt_mac(garp.mac())
    });
    assert_eq!(sender_mac, mac_a);
    lab.wait_neighbour_b("192.0.2.100", &mac_a);

    // The Announcer's burst does the same; sent() counts two frames per round.
    lab.poison_neighbour_b("192.0.2.100");
    let sent = lab.run_in_a(move || async move {
        let garp = GarpSender::open(IF_A).unwrap();
        let announcer = Announcer::spawn(
            garp,
            vec![vip.addr],
            2,
            Duration::from_millis(40),
            Duration::ZERO,
        );
        assert_eq!(announcer.sent(), 0, "nothing before announce()");
        announcer.announce();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while announcer.sent() < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "burst not sent: {}",
                announcer.sent()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(announcer.failures(), 0);
        announcer.sent()
    });
    assert_eq!(sent, 4, "2 rounds × (request + reply) for one VIP");
    lab.wait_neighbour_b("192.0.2.100", &mac_a);
}

#[test]
fn missing_interface_is_named_in_the_error() {
    if !require_root("missing_interface_is_named_in_the_error") {
        return;
    }
    let lab = new_lab();
    let (vm_err, garp_err) = lab.run_in_a(|| async {
        let vm = VipManager::open("eth9", vec![cidr("192.0.2.100/24")], None).await;
        let garp = GarpSender::open("eth9");
        (
            vm.err().map(|e| e.to_string()),
            garp.err().map(|e| e.to_string()),
        )
    });
    assert_eq!(vm_err.as_deref(), Some("interface eth9 not found"));
    assert_eq!(garp_err.as_deref(), Some("interface eth9 not found"));
}

#[test]
fn a_vip_on_a_downed_interface_reports_it() {
    if !require_root("a_vip_on_a_downed_interface_reports_it") {
        return;
    }
    let lab = new_lab();
    ip(&["-n", lab.a.name(), "link", "set", IF_A, "down"]);
    let err = lab.run_in_a(|| async {
        let mut garp = GarpSender::open(IF_A).unwrap();
        garp.send(Ipv4Addr::new(192, 0, 2, 100).into())
            .unwrap_err()
            .to_string()
    });
    assert!(err.contains(IF_A) && err.contains("down"), "{err}");
}

/// Drops every effective capability of the calling thread only (Linux
/// credentials are per thread), so the next syscalls run as an unprivileged user
/// would.
fn drop_thread_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data are valid for capget/capset's version 3 layout.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
            0
        );
        for d in &mut data {
            d.effective = 0;
        }
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            0
        );
    }
}

#[test]
fn missing_capabilities_are_named() {
    if !require_root("missing_capabilities_are_named") {
        return;
    }
    let lab = new_lab();
    let (install_err, garp_err) = lab.run_in_a(|| async {
        drop_thread_capabilities();
        let mut vm = VipManager::open(IF_A, vec![cidr("192.0.2.100/24")], None)
            .await
            .expect("looking up the interface needs no capability");
        (
            vm.install().await.unwrap_err().to_string(),
            GarpSender::open(IF_A).unwrap_err().to_string(),
        )
    });
    assert!(
        install_err.contains("CAP_NET_ADMIN") && install_err.contains(IF_A),
        "{install_err}"
    );
    assert!(
        garp_err.contains("CAP_NET_RAW") && garp_err.contains(IF_A),
        "{garp_err}"
    );
    assert!(lab.addr_a("192.0.2.100/24").is_none());
}

/// The address watch reports every removal of the VIP at once, and the lease deadline
/// tells who removed it: `ip addr del` while the lease still runs, the kernel when the
/// lifetime ran out. After our own release the manager no longer holds the VIP, so the
/// daemon ignores the removal that follows.
#[test]
fn address_watch_and_lease_deadline_tell_a_foreign_removal_from_an_expiry() {
    use haagent::vip::{AddressEvent, AddressWatch};
    if !require_root("address_watch_and_lease_deadline_tell_a_foreign_removal_from_an_expiry") {
        return;
    }
    let lab = new_lab();
    let ns = lab.a.name().to_string();
    let vip = cidr("192.0.2.100/24");
    lab.run_in_a(move || async move {
        let (_watch, mut events) = AddressWatch::spawn(IF_A, vec![vip.addr]).unwrap();
        let mut vm = VipManager::open(IF_A, vec![vip], Some(Duration::from_secs(1)))
            .await
            .unwrap();
        let ifindex = vm.ifindex();
        let removed = |e: &AddressEvent| {
            matches!(e, AddressEvent::Removed { ifindex: i, cidr } if *i == ifindex && *cidr == vip)
        };
        async fn next_removal(
            events: &mut tokio::sync::mpsc::Receiver<AddressEvent>,
            removed: impl Fn(&AddressEvent) -> bool,
        ) -> Instant {
            let wait = async {
                while let Some(e) = events.recv().await {
                    if removed(&e) {
                        return Instant::now();
                    }
                }
                panic!("the address watch stopped");
            };
            tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .expect("a removal of the VIP is reported within 5 s")
        }

        vm.install().await.unwrap();
        assert!(vm.held());
        ip(&["-n", &ns, "addr", "del", "192.0.2.100/24", "dev", IF_A]);
        let at = next_removal(&mut events, removed).await;
        assert!(
            !vm.lease_expired(at),
            "removed with {:?} of lease left: not an expiry",
            vm.lease_left(at)
        );

        vm.install().await.unwrap();
        let installed = Instant::now();
        let at = next_removal(&mut events, removed).await;
        eprintln!(
            "kernel expired the 1 s VIP {} ms after install",
            at.duration_since(installed).as_millis()
        );
        assert!(vm.lease_expired(at), "the kernel deleted it: the lease ran out");

        vm.install().await.unwrap();
        vm.release().await.unwrap();
        assert!(!vm.held(), "after our own release the VIP is not ours to miss");
    });
}

/// `set_attributes` gives each VIP its label and scope, as `ip addr show` prints them; a
/// VIP without a spec keeps the defaults; a renewal keeps what the address was created with.
#[test]
fn vips_carry_their_label_and_scope() {
    use haagent::net::{VipScope, VipSpec};
    if !require_root("vips_carry_their_label_and_scope") {
        return;
    }
    let lab = new_lab();
    // Linux gives a second address in a subnet the scope of the first (EINVAL "Invalid scope
    // value" otherwise): the link-scope VIP gets a subnet of its own.
    let (labelled, plain) = (cidr("198.51.100.100/24"), cidr("192.0.2.101/24"));
    lab.run_in_a(move || async move {
        let mut vm = VipManager::open(IF_A, vec![labelled, plain], Some(Duration::from_secs(30)))
            .await
            .unwrap();
        vm.set_attributes(&[VipSpec {
            cidr: labelled,
            interface: IF_A.to_string(),
            label: Some("veth0:vip".to_string()),
            scope: VipScope::Link,
        }]);
        vm.install().await.unwrap();
        vm.refresh().await.unwrap();
    });
    let entry = lab
        .addr_a("198.51.100.100/24")
        .unwrap_or_else(|| panic!("labelled VIP installed: {:?}", lab.addrs_a()));
    assert_eq!(entry["label"], "veth0:vip", "{entry}");
    assert_eq!(entry["scope"], "link", "{entry}");
    let entry = lab.addr_a("192.0.2.101/24").expect("plain VIP installed");
    assert_eq!(entry["label"], IF_A, "{entry}");
    assert_eq!(entry["scope"], "global", "{entry}");

    let text = ip(&["-n", lab.a.name(), "addr", "show", "dev", IF_A]);
    assert!(
        text.lines().any(|l| l.contains("inet 198.51.100.100/24")
            && l.contains("scope link")
            && l.ends_with("veth0:vip")),
        "{text}"
    );
}

/// Turns IPv6 on for `dev` in `ns` (a fresh namespace may have it off) and gives it `addr`
/// without DAD, so the test does not wait for the kernel's own detection.
fn ipv6_on(ns: &support::veth::Netns, dev: &str, addr: &str) {
    let out = ns
        .command("sysctl")
        .args([
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=0",
            &format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "sysctl: {out:?}");
    ip(&["-n", ns.name(), "addr", "add", addr, "dev", dev, "nodad"]);
}

/// The IPv6 `addr_info` entry for `c` on veth0 in A, if present.
fn addr6_a(lab: &VethLab, c: &IpCidr) -> Option<Value> {
    let out = ip(&["-n", lab.a.name(), "-j", "-6", "addr", "show", "dev", IF_A]);
    let links: Vec<Value> = serde_json::from_str(&out).unwrap();
    links[0]["addr_info"]
        .as_array()?
        .iter()
        .find(|a| {
            a["local"].as_str() == Some(&c.addr.to_string())
                && a["prefixlen"].as_u64() == Some(u64::from(c.prefix))
        })
        .cloned()
}

/// Issue 13, item 1: an IPv6 VIP next to an IPv4 one. Installed without DAD (never
/// `tentative`, answering at once: B pings it right after the install), with the lease as
/// its valid and preferred lifetime; a foreign `ip addr del` and the kernel's expiry both
/// reach the address watch, told apart by the lease deadline as for IPv4; a leftover /128
/// of the VIP is stale at start; release takes both families off.
#[test]
fn ipv6_vips_are_installed_without_dad_with_the_lease_as_lifetime() {
    use haagent::vip::{AddressEvent, AddressWatch};
    if !require_root("ipv6_vips_are_installed_without_dad_with_the_lease_as_lifetime") {
        return;
    }
    let lab = new_lab();
    ipv6_on(&lab.a, IF_A, "2001:db8::1/64");
    ipv6_on(&lab.b, IF_B, "2001:db8::2/64");
    let (v6, v4) = (cidr("2001:db8::100/64"), cidr("192.0.2.100/24"));
    let ns = lab.a.name().to_string();
    ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        "2001:db8::100/128",
        "dev",
        IF_A,
        "nodad",
    ]);

    let stale = lab.run_in_a(move || async move {
        let vm = VipManager::open(IF_A, vec![v6, v4], Some(Duration::from_secs(3)))
            .await
            .unwrap();
        vm.remove_stale().await.unwrap()
    });
    assert_eq!(
        stale,
        [cidr("2001:db8::100/128")],
        "the leftover /128 is stale"
    );

    let installed = lab.run_in_a(move || async move {
        let mut vm = VipManager::open(IF_A, vec![v6, v4], Some(Duration::from_secs(3)))
            .await
            .unwrap();
        vm.install().await.unwrap();
        vm.installed().await.unwrap()
    });
    assert_eq!(installed, [v6, v4]);
    let entry = addr6_a(&lab, &v6).expect("the IPv6 VIP is on veth0");
    assert_eq!(
        entry["tentative"],
        Value::Null,
        "no DAD: never tentative: {entry}"
    );
    assert_eq!(entry["nodad"], true, "{entry}");
    for key in ["valid_life_time", "preferred_life_time"] {
        let secs = entry[key].as_u64().unwrap();
        assert!((1..=3).contains(&secs), "{key} is the 3 s lease: {entry}");
    }
    let ping = lab
        .b
        .command("ping")
        .args(["-6", "-n", "-c", "1", "-W", "1", "2001:db8::100"])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "B reaches the fresh IPv6 VIP at once: {ping:?}"
    );

    lab.run_in_a(move || async move {
        let (_watch, mut events) = AddressWatch::spawn(IF_A, vec![v6.addr, v4.addr]).unwrap();
        let mut vm = VipManager::open(IF_A, vec![v6], Some(Duration::from_secs(1)))
            .await
            .unwrap();
        let ifindex = vm.ifindex();
        async fn next_removal(
            events: &mut tokio::sync::mpsc::Receiver<AddressEvent>,
            ifindex: u32,
            vip: IpCidr,
        ) -> Instant {
            let wait = async {
                while let Some(e) = events.recv().await {
                    if matches!(e, AddressEvent::Removed { ifindex: i, cidr } if i == ifindex && cidr == vip)
                    {
                        return Instant::now();
                    }
                }
                panic!("the address watch stopped");
            };
            tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .expect("a removal of the IPv6 VIP is reported within 5 s")
        }
        vm.install().await.unwrap();
        ip(&["-n", &ns, "addr", "del", "2001:db8::100/64", "dev", IF_A]);
        let at = next_removal(&mut events, ifindex, v6).await;
        assert!(!vm.lease_expired(at), "removed with lease left: not an expiry");

        vm.install().await.unwrap();
        let since = Instant::now();
        let at = next_removal(&mut events, ifindex, v6).await;
        eprintln!(
            "kernel expired the 1 s IPv6 VIP {} ms after install",
            at.duration_since(since).as_millis()
        );
        assert!(vm.lease_expired(at), "the kernel deleted it: the lease ran out");
    });

    lab.run_in_a(move || async move {
        let mut vm = VipManager::open(IF_A, vec![v6, v4], None).await.unwrap();
        vm.install().await.unwrap();
        vm.release().await.unwrap();
        assert!(vm.installed().await.unwrap().is_empty());
    });
    assert!(addr6_a(&lab, &v6).is_none());
    assert!(lab.addr_a("192.0.2.100/24").is_none());
}
