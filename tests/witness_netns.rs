//! The gateway witness against a real kernel: a "gateway" namespace and a "node"
//! namespace joined by a veth pair (192.0.2.1 ↔ 192.0.2.11, the node's default
//! route via 192.0.2.1 exists only inside its namespace; nothing leaves the
//! machine). The witness runs inside the node namespace; the gateway disappears
//! by setting its end of the veth down.
//!
//! A last pair of tests puts a rogue on the segment that forges echo replies.
//!
//! Needs root (namespaces, raw ICMP sockets). Without it every test prints
//! `SKIPPED …` and returns; with `HAAGENT_REQUIRE_NETNS` set (as CI does) a skip
//! is a failure.

mod support;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use haagent::witness::{
    resolve_gateway, Gateway, Witness, WitnessConfig, WitnessError, WitnessEvent,
};
use support::require_root;
use support::veth::{ip, Netns, VethLab, IF_A, IF_B};
use tokio::sync::mpsc::Receiver;

/// The node's interface (in namespace A of the veth lab).
const IF_NODE: &str = IF_A;
/// The gateway's interface (in namespace B).
const IF_GW: &str = IF_B;
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

/// The node (A: veth0, 192.0.2.11/24, default route via 192.0.2.1) and the gateway
/// (B: veth1, 192.0.2.1/24).
fn new_lab() -> VethLab {
    let lab = VethLab::new("wit", "192.0.2.11/24", "192.0.2.1/24");
    ip(&[
        "-n",
        lab.a.name(),
        "route",
        "add",
        "default",
        "via",
        "192.0.2.1",
        "dev",
        IF_NODE,
    ]);
    lab
}

/// The witness tests' view of the veth lab.
trait GatewayLab {
    /// The node's namespace.
    fn node(&self) -> &Netns;
    /// The gateway's namespace.
    fn gw(&self) -> &Netns;
    /// Sets the gateway's end of the veth up or down.
    fn set_gateway_link(&self, up: bool);
    /// Allows ICMP datagram ("ping") sockets for every group in the node namespace,
    /// so the witness uses one instead of a raw socket.
    fn allow_ping_sockets(&self);
}

impl GatewayLab for VethLab {
    fn node(&self) -> &Netns {
        &self.a
    }

    fn gw(&self) -> &Netns {
        &self.b
    }

    fn set_gateway_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", self.gw().name(), "link", "set", IF_GW, state]);
    }

    fn allow_ping_sockets(&self) {
        ip(&[
            "netns",
            "exec",
            self.node().name(),
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ping_group_range=0 2147483647",
        ]);
    }
}

/// Waits (generously) for the next witness event.
async fn next_event(events: &mut Receiver<WitnessEvent>, within: Duration) -> WitnessEvent {
    tokio::time::timeout(within, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no witness event within {within:?}"))
        .expect("witness task ended")
}

/// Auto resolves the gateway, the first verdict is Reachable, losing the
/// gateway's link gives Unreachable within fall × interval (plus slack), and
/// bringing it back gives Reachable again.
fn follows_gateway_link(lab: VethLab) {
    let gw_ns = lab.gw().name().to_string();
    lab.run_in_a(move || async move {
        assert_eq!(resolve_gateway(IF_NODE).await.unwrap(), GATEWAY);

        let cfg = WitnessConfig::new(IF_NODE, Gateway::Auto);
        let (interval, fall, rise) = (cfg.interval, cfg.fall, cfg.rise);
        assert_eq!(interval, Duration::from_millis(200));
        assert_eq!(cfg.timeout, interval);
        assert_eq!((fall, rise), (3, 2));
        let (witness, mut events) = Witness::spawn(cfg).await.unwrap();
        assert_eq!(witness.gateway(), GATEWAY);
        assert_eq!(
            witness.reachable(),
            None,
            "no verdict before the first echoes"
        );

        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Reachable { gateway, rtt } => {
                assert_eq!(gateway, GATEWAY);
                assert!(rtt < interval, "rtt {rtt:?}");
            }
            other => panic!("first event should be Reachable, got {other:?}"),
        }
        assert_eq!(witness.reachable(), Some(true));
        assert!(witness.last_rtt().is_some());

        let set_link = |up: bool| {
            let state = if up { "up" } else { "down" };
            ip(&["-n", &gw_ns, "link", "set", IF_GW, state]);
        };

        set_link(false);
        let cut = Instant::now();
        let event = next_event(&mut events, Duration::from_secs(10)).await;
        let took = cut.elapsed();
        eprintln!("Unreachable after {took:?}: {event:?}");
        match &event {
            WitnessEvent::Unreachable { gateway, reason } => {
                assert_eq!(*gateway, GATEWAY);
                assert!(
                    reason.starts_with("3 echoes to 192.0.2.1 unanswered (fall 3 × 200 ms)"),
                    "{reason}"
                );
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        // fall echoes, plus the one in flight at the cut, plus scheduling slack.
        let bound = interval * (fall + 1) + Duration::from_millis(500);
        assert!(took <= bound, "Unreachable after {took:?}, bound {bound:?}");
        assert_eq!(witness.reachable(), Some(false));

        set_link(true);
        let restored = Instant::now();
        let event = next_event(&mut events, Duration::from_secs(10)).await;
        eprintln!("Reachable again after {:?}: {event:?}", restored.elapsed());
        assert!(
            matches!(event, WitnessEvent::Reachable { gateway, .. } if gateway == GATEWAY),
            "expected Reachable, got {event:?}"
        );
        assert_eq!(witness.reachable(), Some(true));

        // Only flips are reported: a steady gateway says nothing more.
        let quiet = tokio::time::timeout(interval * 5, events.recv()).await;
        assert!(quiet.is_err(), "unexpected event while steady: {quiet:?}");
    });
}

#[test]
fn witness_follows_gateway_link_with_raw_socket() {
    if !require_root("witness_follows_gateway_link_with_raw_socket") {
        return;
    }
    // New namespaces have ping_group_range "1 0": the witness falls back to raw.
    follows_gateway_link(new_lab());
}

#[test]
fn witness_follows_gateway_link_with_datagram_socket() {
    if !require_root("witness_follows_gateway_link_with_datagram_socket") {
        return;
    }
    let lab = new_lab();
    lab.allow_ping_sockets();
    follows_gateway_link(lab);
}

#[test]
fn witness_first_verdict_is_unreachable_when_gateway_is_down() {
    if !require_root("witness_first_verdict_is_unreachable_when_gateway_is_down") {
        return;
    }
    let lab = new_lab();
    lab.set_gateway_link(false);
    lab.run_in_a(|| async {
        let mut cfg = WitnessConfig::new(IF_NODE, Gateway::Addr(GATEWAY));
        cfg.interval = Duration::from_millis(50);
        cfg.timeout = Duration::from_millis(50);
        let (witness, mut events) = Witness::spawn(cfg).await.unwrap();
        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Unreachable { gateway, reason } => {
                assert_eq!(gateway, GATEWAY);
                assert!(reason.contains("unanswered (fall 3 × 50 ms)"), "{reason}");
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert_eq!(witness.reachable(), Some(false));
        assert_eq!(witness.last_rtt(), None);
    });
}

#[test]
fn witness_without_default_route_names_the_config_key() {
    if !require_root("witness_without_default_route_names_the_config_key") {
        return;
    }
    let lab = new_lab();
    ip(&["-n", lab.node().name(), "route", "del", "default"]);
    lab.run_in_a(|| async {
        let expected = "no default route via veth0 (set [witness] gateway = \"<ip>\")";
        let e = resolve_gateway(IF_NODE).await.unwrap_err();
        assert!(matches!(e, WitnessError::NoDefaultRoute { .. }), "{e:?}");
        assert_eq!(e.to_string(), expected);
        let e = Witness::spawn(WitnessConfig::new(IF_NODE, Gateway::Auto))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), expected);
        // The loopback has no default route either, while veth0 exists: the
        // message names the interface asked about.
        let e = resolve_gateway("lo").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "no default route via lo (set [witness] gateway = \"<ip>\")"
        );
    });
}

/// The Internet checksum (RFC 1071), written out again so the test does not trust the
/// code under test.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `(source, destination, ICMP message)` of a received IPv4/ICMP packet.
fn split_icmp(packet: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, &[u8])> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    if packet.len() < header_len.max(20) + 8 || packet[9] != 1 {
        return None;
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    Some((src, dst, &packet[header_len..]))
}

/// A raw ICMP socket opened inside namespace `ns` (by a short-lived thread that joined it;
/// the socket stays in that namespace), reading with a short timeout.
fn raw_icmp_socket_in(ns: &str) -> Socket {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: valid namespace fd; only this thread switches.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        socket
    })
    .join()
    .expect("socket thread panicked")
}

/// How the rogue answers the node's echo requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Forgery {
    /// The request turned into a reply (same id, seq, payload), checksum wrong.
    BadChecksum = 0,
    /// Checksum right, id and seq right, one byte of the token changed.
    WrongToken = 1,
    /// A perfect reply (what a rogue that sees the request can always send).
    Exact = 2,
}

/// A rogue host's raw socket in the gateway's namespace: it reads each echo request the
/// node sends to the gateway and answers it itself, forged as `mode` says, with the
/// gateway's address as source. Stopped and joined on drop.
struct Rogue {
    mode: Arc<AtomicU8>,
    forged: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Rogue {
    fn start(ns: &str, mode: Forgery) -> Rogue {
        let socket = raw_icmp_socket_in(ns);
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let forged = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, f, st) = (Arc::clone(&mode), Arc::clone(&forged), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut socket = socket;
            let mut buf = [0u8; 1500];
            let to = SockAddr::from(SocketAddrV4::new(NODE, 0));
            while !st.load(Ordering::SeqCst) {
                let Ok(len) = socket.read(&mut buf) else {
                    continue; // read timeout
                };
                let Some((src, dst, icmp)) = split_icmp(&buf[..len]) else {
                    continue;
                };
                if src != NODE || dst != GATEWAY || icmp[0] != 8 {
                    continue;
                }
                let mut reply = icmp.to_vec();
                reply[0] = 0;
                let fix = |r: &mut Vec<u8>| {
                    r[2..4].copy_from_slice(&[0, 0]);
                    let sum = checksum(r);
                    r[2..4].copy_from_slice(&sum.to_be_bytes());
                };
                match m.load(Ordering::SeqCst) {
                    0 => {
                        fix(&mut reply);
                        reply[2] ^= 0x5a;
                    }
                    1 => {
                        if let Some(last) = reply.last_mut() {
                            *last ^= 0xff;
                        }
                        fix(&mut reply);
                    }
                    _ => fix(&mut reply),
                }
                if socket.send_to(&reply, &to).is_ok() {
                    f.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Rogue {
            mode,
            forged,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, mode: Forgery) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A raw socket in the node's namespace that counts the echo replies "from the gateway"
/// that reach the node, by whether their checksum verifies — i.e. what the witness's own
/// socket is offered. Stopped and joined on drop.
struct Observer {
    bad_checksum: Arc<AtomicU32>,
    good_checksum: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Observer {
    fn start(ns: &str) -> Observer {
        let socket = raw_icmp_socket_in(ns);
        let bad_checksum = Arc::new(AtomicU32::new(0));
        let good_checksum = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, g, st) = (
            Arc::clone(&bad_checksum),
            Arc::clone(&good_checksum),
            Arc::clone(&stop),
        );
        let thread = std::thread::spawn(move || {
            let mut socket = socket;
            let mut buf = [0u8; 1500];
            while !st.load(Ordering::SeqCst) {
                let Ok(len) = socket.read(&mut buf) else {
                    continue;
                };
                match split_icmp(&buf[..len]) {
                    Some((GATEWAY, NODE, icmp)) if icmp[0] == 0 => {
                        let counter = if checksum(icmp) == 0 { &g } else { &b };
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
        });
        Observer {
            bad_checksum,
            good_checksum,
            stop,
            thread: Some(thread),
        }
    }

    fn counts(&self) -> (u32, u32) {
        (
            self.bad_checksum.load(Ordering::SeqCst),
            self.good_checksum.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The gateway stops answering (its kernel ignores echo requests; it still answers ARP,
/// so the node's echoes keep reaching the segment), and a rogue on the segment answers in
/// its place with forged replies.
///
/// What this proves: every forged reply carries the id and sequence number of the echo it
/// answers (copied from the node's own request) and the gateway's source address — exactly
/// what the old matcher checked — and the observer shows such replies do reach the node's
/// raw sockets. The old witness counted them as answers and declared the gateway reachable;
/// now a bad checksum, and then a wrong token with a valid checksum, keep it unreachable.
/// The last phase is the control: the same rogue sending the exact reply is believed,
/// so the forged packets were delivered and differed only in the defect under test. (A
/// rogue that sees the requests can always answer them exactly; the witness cannot tell
/// that from the gateway. Random ids and tokens stop blind guessing, not a sniffer.)
///
/// Checked by mutation: without the checksum check, the raw-socket test fails in phase 1;
/// without the payload check, both fail in phase 2. A datagram socket never sees a bad
/// checksum (the kernel's ICMP input drops it before ping sockets), a raw socket does.
fn forged_replies_do_not_make_the_gateway_reachable(lab: VethLab) {
    ip(&[
        "netns",
        "exec",
        lab.gw().name(),
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.icmp_echo_ignore_all=1",
    ]);
    let rogue = Rogue::start(lab.gw().name(), Forgery::BadChecksum);
    let observer = Observer::start(lab.node().name());
    let (rogue, observer) = (Arc::new(rogue), Arc::new(observer));
    let (r, o) = (Arc::clone(&rogue), Arc::clone(&observer));
    lab.run_in_a(move || async move {
        let mut cfg = WitnessConfig::new(IF_NODE, Gateway::Addr(GATEWAY));
        cfg.interval = Duration::from_millis(50);
        cfg.timeout = Duration::from_millis(50);
        let interval = cfg.interval;
        let (witness, mut events) = Witness::spawn(cfg).await.unwrap();

        // Phase 1: bad checksums.
        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Unreachable { gateway, .. } => assert_eq!(gateway, GATEWAY),
            other => panic!("bad-checksum forgeries were believed: {other:?}"),
        }
        let (bad, _) = o.counts();
        assert!(
            bad >= 3,
            "only {bad} forged replies reached the node: the test proves nothing"
        );

        // Phase 2: valid checksum, right id and seq, wrong token. Wait until enough of
        // them have demonstrably arrived (each would have been an answer before).
        r.set(Forgery::WrongToken);
        let (_, good_before) = o.counts();
        let deadline = Instant::now() + Duration::from_secs(5);
        while o.counts().1 < good_before + 10 {
            assert!(
                Instant::now() < deadline,
                "wrong-token forgeries never arrived"
            );
            match tokio::time::timeout(interval, events.recv()).await {
                Err(_) => {}
                Ok(ev) => panic!("wrong-token forgeries were believed: {ev:?}"),
            }
        }
        assert_eq!(witness.reachable(), Some(false));

        // Phase 3, the control: exact replies from the same rogue are believed.
        r.set(Forgery::Exact);
        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Reachable { gateway, .. } => assert_eq!(gateway, GATEWAY),
            other => panic!("expected Reachable from exact replies, got {other:?}"),
        }
    });
    eprintln!(
        "rogue forged {} replies; the node received (bad checksum, good checksum) = {:?}",
        rogue.forged.load(Ordering::SeqCst),
        observer.counts()
    );
}

#[test]
fn forged_replies_do_not_fool_the_raw_socket_witness() {
    if !require_root("forged_replies_do_not_fool_the_raw_socket_witness") {
        return;
    }
    forged_replies_do_not_make_the_gateway_reachable(new_lab());
}

#[test]
fn forged_replies_do_not_fool_the_datagram_socket_witness() {
    if !require_root("forged_replies_do_not_fool_the_datagram_socket_witness") {
        return;
    }
    let lab = new_lab();
    lab.allow_ping_sockets();
    forged_replies_do_not_make_the_gateway_reachable(lab);
}

/// The sources of the echo requests the gateway namespace sees during `window`.
fn echo_request_sources(gw_ns: &str, window: Duration) -> Vec<Ipv4Addr> {
    let mut socket = raw_icmp_socket_in(gw_ns);
    let mut seen = Vec::new();
    let mut buf = [0u8; 1500];
    let end = Instant::now() + window;
    while Instant::now() < end {
        let Ok(len) = socket.read(&mut buf) else {
            continue;
        };
        if let Some((src, GATEWAY, icmp)) = split_icmp(&buf[..len]) {
            if icmp.first() == Some(&8) {
                seen.push(src);
            }
        }
    }
    seen
}

/// Issue 9, kind 3 (sibling of the peer-traffic case): with `promote_secondaries` and the
/// node's own address deleted and added again, a VIP is the interface's primary address
/// and the kernel would send the echoes from it — the gateway then answers whoever holds
/// the VIP. The witness binds its socket to the node's own address.
fn echoes_never_leave_from_a_promoted_vip(lab: VethLab) {
    const VIP: &str = "192.0.2.100/24";
    let node_ns = lab.node().name().to_string();
    ip(&[
        "netns",
        "exec",
        &node_ns,
        "sysctl",
        "-qw",
        "net.ipv4.conf.all.promote_secondaries=1",
    ]);
    ip(&[
        "netns",
        "exec",
        &node_ns,
        "sysctl",
        "-qw",
        "net.ipv4.conf.veth0.promote_secondaries=1",
    ]);
    ip(&["-n", &node_ns, "addr", "add", VIP, "dev", IF_NODE]);
    ip(&[
        "-n",
        &node_ns,
        "addr",
        "del",
        "192.0.2.11/24",
        "dev",
        IF_NODE,
    ]);
    ip(&[
        "-n",
        &node_ns,
        "addr",
        "add",
        "192.0.2.11/24",
        "dev",
        IF_NODE,
    ]);
    ip(&[
        "-n",
        &node_ns,
        "route",
        "replace",
        "default",
        "via",
        "192.0.2.1",
        "dev",
        IF_NODE,
    ]);
    let gw_ns = lab.gw().name().to_string();
    let sources = |source: Option<Ipv4Addr>| {
        let gw = gw_ns.clone();
        let watcher =
            std::thread::spawn(move || echo_request_sources(&gw, Duration::from_millis(900)));
        lab.run_in_a(move || async move {
            let cfg = WitnessConfig {
                source,
                ..WitnessConfig::new(IF_NODE, Gateway::Addr(GATEWAY))
            };
            let (_witness, _events) = Witness::spawn(cfg).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1000)).await;
        });
        watcher.join().expect("watcher thread")
    };
    let vip = Ipv4Addr::new(192, 0, 2, 100);
    let kernel_picks = sources(None);
    assert!(
        !kernel_picks.is_empty() && kernel_picks.iter().all(|s| *s == vip),
        "precondition: unbound, the echoes leave from the promoted VIP: {kernel_picks:?}"
    );
    let bound = sources(Some(NODE));
    assert!(
        !bound.is_empty() && bound.iter().all(|s| *s == NODE),
        "echoes from {bound:?}, expected all from {NODE}"
    );
}

#[test]
fn witness_echoes_never_leave_from_a_promoted_vip_with_raw_socket() {
    if !require_root("witness_echoes_never_leave_from_a_promoted_vip_with_raw_socket") {
        return;
    }
    echoes_never_leave_from_a_promoted_vip(new_lab());
}

#[test]
fn witness_echoes_never_leave_from_a_promoted_vip_with_datagram_socket() {
    if !require_root("witness_echoes_never_leave_from_a_promoted_vip_with_datagram_socket") {
        return;
    }
    let lab = new_lab();
    lab.allow_ping_sockets();
    echoes_never_leave_from_a_promoted_vip(lab);
}
