//! ARP probe and ARP watch against a real kernel: namespaces A and B joined by a
//! veth pair (192.0.2.11/24 ↔ 192.0.2.12/24). The code under test runs in A; B
//! plays the other owner of the VIP 192.0.2.100 (its kernel answering probes, or
//! the crate's own GarpSender announcing it).
//!
//! Needs root (namespaces, CAP_NET_RAW). Without it every test prints
//! `SKIPPED …` and returns; with `HAAGENT_REQUIRE_NETNS` set (as CI does) a skip
//! is a failure.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use haagent::net::format_mac;
use haagent::vip::{ArpConflict, ArpProbe, ArpWatch, GarpSender};

const IF_A: &str = "veth0";
const IF_B: &str = "veth1";
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

/// Returns false (after saying so loudly) when the test cannot run; with
/// `HAAGENT_REQUIRE_NETNS` set a skip is a failure instead.
fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("HAAGENT_REQUIRE_NETNS").is_some() {
        panic!("arp_netns::{test}: needs root for network namespaces, and HAAGENT_REQUIRE_NETNS is set");
    }
    eprintln!("SKIPPED arp_netns::{test}: needs root (network namespaces, CAP_NET_RAW)");
    false
}

/// Runs `ip ARGS`, panics with its stderr on failure, returns stdout.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2 needed): {e}"));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A network namespace that is deleted when dropped (also when a test panics).
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Netns {
        ip(&["netns", "add", &name]);
        Netns { name }
    }

    /// Runs `f` in a dedicated thread that has joined this namespace.
    fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        in_netns(&self.name, f)
    }

    /// The MAC of `dev` in this namespace, parsed from `ip -j link show`.
    fn mac(&self, dev: &str) -> [u8; 6] {
        let out = ip(&["-n", &self.name, "-j", "link", "show", "dev", dev]);
        let links: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let text = links[0]["address"].as_str().unwrap();
        let bytes: Vec<u8> = text
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }
}

/// Runs `f` in a dedicated thread that has joined namespace `name` (setns is per
/// thread, and the sockets `f` opens stay in that namespace).
fn in_netns<R: Send + 'static>(name: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let path = format!("/var/run/netns/{name}");
    let thread = std::thread::spawn(move || {
        let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: valid namespace fd; only this thread switches.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    });
    match thread.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Namespaces A (veth0, 192.0.2.11/24) and B (veth1, 192.0.2.12/24).
struct Lab {
    a: Netns,
    b: Netns,
}

impl Lab {
    fn new() -> Lab {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let a = Netns::create(format!("haarp-a-{id}"));
        let b = Netns::create(format!("haarp-b-{id}"));
        let (na, nb) = (a.name.as_str(), b.name.as_str());
        ip(&[
            "-n", na, "link", "add", IF_A, "type", "veth", "peer", "name", IF_B, "netns", nb,
        ]);
        ip(&["-n", na, "addr", "add", "192.0.2.11/24", "dev", IF_A]);
        ip(&["-n", nb, "addr", "add", "192.0.2.12/24", "dev", IF_B]);
        for (ns, dev) in [(na, IF_A), (nb, IF_B), (na, "lo"), (nb, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        Lab { a, b }
    }
}

#[test]
fn probe_finds_the_other_owner_of_the_vip() {
    if !root_or_skip("probe_finds_the_other_owner_of_the_vip") {
        return;
    }
    let lab = Lab::new();
    let mac_a = lab.a.mac(IF_A);
    let mac_b = lab.b.mac(IF_B);
    let b_name = lab.b.name.clone();
    lab.a.run(move || {
        let mut probe = ArpProbe::open(IF_A).unwrap();
        assert_eq!(probe.mac(), mac_a);

        // Nobody has the VIP: the probe hears nothing and takes about its window.
        let window = Duration::from_millis(300);
        let started = Instant::now();
        assert_eq!(probe.probe(VIP, 3, window).unwrap(), None);
        let took = started.elapsed();
        assert!(
            took >= window && took < window + Duration::from_millis(100),
            "{took:?}"
        );

        let window = Duration::from_millis(30);
        let started = Instant::now();
        assert_eq!(probe.probe(VIP, 3, window).unwrap(), None);
        let took = started.elapsed();
        eprintln!("probe with count 3, window {window:?} took {took:?}");
        assert!(
            took >= window && took < window + Duration::from_millis(50),
            "{took:?}"
        );

        // B takes the VIP; its kernel answers the RFC 5227 probe.
        ip(&["-n", &b_name, "addr", "add", "192.0.2.100/24", "dev", IF_B]);
        let started = Instant::now();
        let found = probe.probe(VIP, 3, Duration::from_millis(300)).unwrap();
        eprintln!(
            "probe found {:?} after {:?}",
            found.map(|m| format_mac(&m)),
            started.elapsed()
        );
        assert_eq!(
            found,
            Some(mac_b),
            "expected B's MAC {}",
            format_mac(&mac_b)
        );

        // Probing another address still finds nobody (B's answer is about .100 only).
        let other = Ipv4Addr::new(192, 0, 2, 101);
        assert_eq!(
            probe.probe(other, 2, Duration::from_millis(100)).unwrap(),
            None
        );
    });
}

#[test]
fn watch_reports_another_mac_announcing_the_vip() {
    if !root_or_skip("watch_reports_another_mac_announcing_the_vip") {
        return;
    }
    let lab = Lab::new();
    let mac_a = lab.a.mac(IF_A);
    let mac_b = lab.b.mac(IF_B);
    let b_name = lab.b.name.clone();
    lab.a.run(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (watch, mut conflicts) = ArpWatch::spawn(IF_A, mac_a, vec![VIP]).unwrap();

            // Our own announcement of the VIP is not a conflict.
            GarpSender::open(IF_A).unwrap().send(VIP).unwrap();
            // An announcement of an address we do not watch is not either.
            in_netns(&b_name, || {
                let mut garp = GarpSender::open(IF_B).unwrap();
                garp.send(Ipv4Addr::new(192, 0, 2, 12)).unwrap();
            });
            // B announces the VIP: one send puts two frames on the wire.
            let sent = Instant::now();
            in_netns(&b_name, || {
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
    });
}
