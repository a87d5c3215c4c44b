//! The gateway witness against a real kernel: a "gateway" namespace and a "node"
//! namespace joined by a veth pair (192.0.2.1 ↔ 192.0.2.11, the node's default
//! route via 192.0.2.1 exists only inside its namespace; nothing leaves the
//! machine). The witness runs inside the node namespace; the gateway disappears
//! by setting its end of the veth down.
//!
//! A last pair of tests puts a rogue on the segment that forges echo replies.
//!
//! The IPv6 tests (`witness6_…`) use the same pair with IPv6 only: the gateway has
//! `2001:db8::1` and its own link-local address, the node `2001:db8::11` and its own, and
//! the node's default route is via the gateway's link-local address, as a router
//! advertisement would install it.
//!
//! Needs root (namespaces, raw ICMP sockets). Without it every test prints
//! `SKIPPED …` and returns; with `HAAGENT_REQUIRE_NETNS` set (as CI does) a skip
//! is a failure.

mod support;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use haagent::witness::{
    resolve_gateway, EchoSource, Gateway, Witness, WitnessConfig, WitnessError, WitnessEvent,
};
use support::require_root;
use support::veth::{ip, run_in, Netns, VethLab, IF_A, IF_B};
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

/// Auto resolves the gateway (`expected`), the first verdict is Reachable, losing the
/// gateway's link gives Unreachable within fall × interval (plus slack), and
/// bringing it back gives Reachable again.
fn follows_gateway_link(lab: VethLab, expected: IpAddr) {
    let gw_ns = lab.gw().name().to_string();
    lab.run_in_a(move || async move {
        assert_eq!(resolve_gateway(IF_NODE).await.unwrap(), expected);

        let cfg = WitnessConfig::new(IF_NODE, Gateway::Auto);
        let (interval, fall, rise) = (cfg.interval, cfg.fall, cfg.rise);
        assert_eq!(interval, Duration::from_millis(200));
        assert_eq!(cfg.timeout, interval);
        assert_eq!((fall, rise), (3, 2));
        let (witness, mut events) = Witness::spawn(cfg).await.unwrap();
        assert_eq!(witness.gateway(), expected);
        assert_eq!(
            witness.reachable(),
            None,
            "no verdict before the first echoes"
        );

        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Reachable { gateway, rtt } => {
                assert_eq!(gateway, expected);
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
                assert_eq!(*gateway, expected);
                let words = format!("3 echoes to {expected} unanswered (fall 3 × 200 ms)");
                assert!(reason.starts_with(&words), "{reason}");
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
            matches!(event, WitnessEvent::Reachable { gateway, .. } if gateway == expected),
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
    follows_gateway_link(new_lab(), GATEWAY.into());
}

#[test]
fn witness_follows_gateway_link_with_datagram_socket() {
    if !require_root("witness_follows_gateway_link_with_datagram_socket") {
        return;
    }
    let lab = new_lab();
    lab.allow_ping_sockets();
    follows_gateway_link(lab, GATEWAY.into());
}

/// `gateway = "auto"` follows the kernel, not its start-up read: the node's default route
/// moves from 192.0.2.1 to 192.0.2.2 (a second router address on the gateway side), the
/// witness pings the new gateway within moments of the notification, and the old address
/// going away then costs no verdict. (Before: the gateway was resolved once; the witness
/// kept pinging 192.0.2.1 and called the node isolated 600 ms after it went.)
#[test]
fn witness_auto_follows_a_changed_default_route() {
    if !require_root("witness_auto_follows_a_changed_default_route") {
        return;
    }
    let lab = new_lab();
    let (node_ns, gw_ns) = (lab.node().name().to_string(), lab.gw().name().to_string());
    // The second address must outlive the first (a secondary goes with the primary
    // unless promoted).
    sysctl_in(
        lab.gw(),
        &format!("net.ipv4.conf.{IF_GW}.promote_secondaries=1"),
    );
    ip(&["-n", &gw_ns, "addr", "add", "192.0.2.2/24", "dev", IF_GW]);
    let second: IpAddr = Ipv4Addr::new(192, 0, 2, 2).into();
    lab.run_in_a(move || async move {
        let cfg = WitnessConfig::new(IF_NODE, Gateway::Auto);
        let (fall, interval) = (cfg.fall, cfg.interval);
        let (witness, mut events) = Witness::spawn(cfg).await.unwrap();
        assert_eq!(witness.gateway(), IpAddr::from(GATEWAY));
        assert!(matches!(
            next_event(&mut events, Duration::from_secs(5)).await,
            WitnessEvent::Reachable { .. }
        ));

        let moved = Instant::now();
        ip(&[
            "-n",
            &node_ns,
            "route",
            "replace",
            "default",
            "via",
            "192.0.2.2",
            "dev",
            IF_NODE,
        ]);
        while witness.gateway() != second {
            assert!(
                moved.elapsed() < Duration::from_secs(5),
                "the witness still pings {} after the default route moved",
                witness.gateway()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        eprintln!(
            "witness follows the default route to {second} {} ms after the change",
            moved.elapsed().as_millis()
        );

        // The old router address goes: nothing to report (it is no longer pinged). Three
        // times the time a fall takes.
        ip(&["-n", &gw_ns, "addr", "del", "192.0.2.1/24", "dev", IF_GW]);
        let quiet = tokio::time::timeout(interval * fall * 3, events.recv()).await;
        assert!(
            quiet.is_err(),
            "a verdict after the old gateway went: {quiet:?}"
        );
        assert_eq!(witness.reachable(), Some(true));
        assert_eq!(witness.gateway(), second);
    });
}

#[test]
fn witness_first_verdict_is_unreachable_when_gateway_is_down() {
    if !require_root("witness_first_verdict_is_unreachable_when_gateway_is_down") {
        return;
    }
    let lab = new_lab();
    lab.set_gateway_link(false);
    lab.run_in_a(|| async {
        let mut cfg = WitnessConfig::new(IF_NODE, Gateway::Addr(GATEWAY.into()));
        cfg.interval = Duration::from_millis(50);
        cfg.timeout = Duration::from_millis(50);
        let (witness, mut events) = Witness::spawn(cfg).await.unwrap();
        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Unreachable { gateway, reason } => {
                assert_eq!(gateway, IpAddr::from(GATEWAY));
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

/// A loop run over and over in its own thread until dropped (then stopped and joined).
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    fn start(mut step: impl FnMut() + Send + 'static) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                step();
            }
        });
        Background {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Turns `reply` (the request with the reply type) into the forgery `mode` asks for;
/// `fix` writes a valid checksum.
fn forge(mode: u8, reply: &mut [u8], fix: impl Fn(&mut [u8])) {
    match mode {
        0 => {
            fix(reply);
            reply[2] ^= 0x5a;
        }
        1 => {
            if let Some(last) = reply.last_mut() {
                *last ^= 0xff;
            }
            fix(reply);
        }
        _ => fix(reply),
    }
}

/// A rogue host's raw socket in the gateway's namespace: it reads each echo request the
/// node sends to the gateway and answers it itself, forged as `mode` says, with the
/// gateway's address as source. Stopped and joined on drop.
struct Rogue {
    mode: Arc<AtomicU8>,
    forged: Arc<AtomicU32>,
    _loop: Background,
}

impl Rogue {
    /// Around `answer`, which reads one request and sends its forged reply (true if sent).
    fn around(mode: Forgery, mut answer: impl FnMut(u8) -> bool + Send + 'static) -> Rogue {
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let forged = Arc::new(AtomicU32::new(0));
        let (m, f) = (Arc::clone(&mode), Arc::clone(&forged));
        let _loop = Background::start(move || {
            if answer(m.load(Ordering::SeqCst)) {
                f.fetch_add(1, Ordering::SeqCst);
            }
        });
        Rogue {
            mode,
            forged,
            _loop,
        }
    }

    /// The IPv4 rogue: reads and answers through one raw ICMP socket.
    fn start(ns: &str, mode: Forgery) -> Rogue {
        let mut socket = raw_icmp_socket_in(ns);
        let to = SockAddr::from(SocketAddrV4::new(NODE, 0));
        let mut buf = [0u8; 1500];
        Rogue::around(mode, move |mode| {
            let Ok(len) = socket.read(&mut buf) else {
                return false; // read timeout
            };
            let Some((src, dst, icmp)) = split_icmp(&buf[..len]) else {
                return false;
            };
            if src != NODE || dst != GATEWAY || icmp[0] != 8 {
                return false;
            }
            let mut reply = icmp.to_vec();
            reply[0] = 0;
            forge(mode, &mut reply, |r| set_checksum(r, &[]));
            socket.send_to(&reply, &to).is_ok()
        })
    }

    /// The IPv6 rogue: reads requests to [`GATEWAY6`] on a raw ICMPv6 socket and answers
    /// through an `IPPROTO_RAW` socket (it writes the IPv6 header itself), because a raw
    /// ICMPv6 socket always computes the checksum and could not send a bad one.
    fn start_v6(ns: &str, mode: Forgery) -> Rogue {
        let (listen, send) = run_in(ns, || {
            let listen = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).unwrap();
            listen
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let send = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(255))).unwrap();
            (listen, send)
        });
        let mut buf = [0u8; 1500];
        Rogue::around(mode, move |mode| {
            let Ok((len, from)) = recv_from(&listen, &mut buf) else {
                return false;
            };
            let icmp = &buf[..len];
            let from_node = from.as_socket_ipv6().map(|a| *a.ip()) == Some(NODE6);
            if !from_node || icmp.first() != Some(&128) {
                return false;
            }
            let mut reply = icmp.to_vec();
            reply[0] = 129;
            let pseudo = pseudo_header_v6(GATEWAY6, NODE6, reply.len());
            forge(mode, &mut reply, |r| set_checksum(r, &pseudo));
            let mut packet = vec![0x60, 0, 0, 0];
            packet.extend((reply.len() as u16).to_be_bytes());
            packet.extend([58, 64]);
            packet.extend(GATEWAY6.octets());
            packet.extend(NODE6.octets());
            packet.extend(&reply);
            let to = SockAddr::from(SocketAddrV6::new(NODE6, 0, 0, 0));
            send.send_to(&packet, &to).is_ok()
        })
    }

    fn set(&self, mode: Forgery) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }
}

/// Writes the checksum of `icmp` preceded by `pseudo_header` (empty for IPv4).
fn set_checksum(icmp: &mut [u8], pseudo_header: &[u8]) {
    icmp[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(&[pseudo_header, icmp].concat());
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// The IPv6 pseudo-header (RFC 8200 §8.1) of an ICMPv6 message of `len` bytes.
fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(40);
    h.extend(src.octets());
    h.extend(dst.octets());
    h.extend((len as u32).to_be_bytes());
    h.extend([0, 0, 0, 58]);
    h
}

/// `recv_from` into a plain buffer.
fn recv_from(socket: &Socket, buf: &mut [u8]) -> std::io::Result<(usize, SockAddr)> {
    // SAFETY: recv only writes initialised bytes; `MaybeUninit<u8>` has `u8`'s layout.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    socket.recv_from(uninit)
}

/// A raw socket in the node's namespace that counts the echo replies "from the gateway"
/// that reach the node, by whether their checksum verifies — i.e. what the witness's own
/// socket is offered. Stopped and joined on drop.
struct Observer {
    bad_checksum: Arc<AtomicU32>,
    good_checksum: Arc<AtomicU32>,
    _loop: Background,
}

impl Observer {
    /// Around `read`, which reads one packet and says whether it was an echo reply from
    /// the gateway and whether its checksum verified.
    fn around(mut read: impl FnMut() -> Option<bool> + Send + 'static) -> Observer {
        let bad_checksum = Arc::new(AtomicU32::new(0));
        let good_checksum = Arc::new(AtomicU32::new(0));
        let (b, g) = (Arc::clone(&bad_checksum), Arc::clone(&good_checksum));
        let _loop = Background::start(move || match read() {
            Some(true) => _ = g.fetch_add(1, Ordering::SeqCst),
            Some(false) => _ = b.fetch_add(1, Ordering::SeqCst),
            None => {}
        });
        Observer {
            bad_checksum,
            good_checksum,
            _loop,
        }
    }

    fn start(ns: &str) -> Observer {
        let mut socket = raw_icmp_socket_in(ns);
        let mut buf = [0u8; 1500];
        Observer::around(move || {
            let len = socket.read(&mut buf).ok()?;
            match split_icmp(&buf[..len]) {
                Some((GATEWAY, NODE, icmp)) if icmp[0] == 0 => Some(checksum(icmp) == 0),
                _ => None,
            }
        })
    }

    /// The same on a raw ICMPv6 socket (which gets no IPv6 header: the pseudo-header is
    /// built from the addresses the test knows).
    fn start_v6(ns: &str) -> Observer {
        let socket = run_in(ns, || {
            let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            s
        });
        let mut buf = [0u8; 1500];
        Observer::around(move || {
            let (len, from) = recv_from(&socket, &mut buf).ok()?;
            let icmp = &buf[..len];
            if from.as_socket_ipv6().map(|a| *a.ip()) != Some(GATEWAY6)
                || icmp.first() != Some(&129)
            {
                return None;
            }
            let pseudo = pseudo_header_v6(GATEWAY6, NODE6, icmp.len());
            Some(checksum(&[&pseudo[..], icmp].concat()) == 0)
        })
    }

    fn counts(&self) -> (u32, u32) {
        (
            self.bad_checksum.load(Ordering::SeqCst),
            self.good_checksum.load(Ordering::SeqCst),
        )
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
    let rogue = Arc::new(Rogue::start(lab.gw().name(), Forgery::BadChecksum));
    let observer = Arc::new(Observer::start(lab.node().name()));
    let o = Arc::clone(&observer);
    believe_only_exact_replies(&lab, GATEWAY.into(), &rogue, &observer, move || {
        o.counts().0
    });
}

/// The phases of [`forged_replies_do_not_make_the_gateway_reachable`] against `gateway`;
/// `bad_arrived` counts the bad-checksum forgeries that demonstrably reached the node.
fn believe_only_exact_replies(
    lab: &VethLab,
    gateway: IpAddr,
    rogue: &Arc<Rogue>,
    observer: &Arc<Observer>,
    bad_arrived: impl Fn() -> u32 + Send + 'static,
) {
    let (r, o) = (Arc::clone(rogue), Arc::clone(observer));
    let expected = gateway;
    lab.run_in_a(move || async move {
        let mut cfg = WitnessConfig::new(IF_NODE, Gateway::Addr(expected));
        cfg.interval = Duration::from_millis(50);
        cfg.timeout = Duration::from_millis(50);
        let interval = cfg.interval;
        let (witness, mut events) = Witness::spawn(cfg).await.unwrap();

        // Phase 1: bad checksums.
        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Unreachable { gateway, .. } => assert_eq!(gateway, expected),
            other => panic!("bad-checksum forgeries were believed: {other:?}"),
        }
        let bad = bad_arrived();
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
            WitnessEvent::Reachable { gateway, .. } => assert_eq!(gateway, expected),
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

/// The sources of the echo requests the gateway namespace sees during `window`, on a raw
/// socket of the gateway's family (ICMP: type 8 to [`GATEWAY`]; ICMPv6: type 128, which
/// only the node sends in this lab).
fn echo_request_sources(gw_ns: &str, gateway: IpAddr, window: Duration) -> Vec<IpAddr> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1500];
    let end = Instant::now() + window;
    match gateway {
        IpAddr::V4(_) => {
            let mut socket = raw_icmp_socket_in(gw_ns);
            while Instant::now() < end {
                let Ok(len) = socket.read(&mut buf) else {
                    continue;
                };
                if let Some((src, GATEWAY, icmp)) = split_icmp(&buf[..len]) {
                    if icmp.first() == Some(&8) {
                        seen.push(IpAddr::V4(src));
                    }
                }
            }
        }
        IpAddr::V6(_) => {
            let socket = run_in(gw_ns, || {
                let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                s
            });
            while Instant::now() < end {
                let Ok((len, from)) = recv_from(&socket, &mut buf) else {
                    continue;
                };
                if buf[..len].first() == Some(&128) {
                    if let Some(a) = from.as_socket_ipv6() {
                        seen.push(IpAddr::V6(*a.ip()));
                    }
                }
            }
        }
    }
    seen
}

/// The sources of the witness's echoes to `gateway` during ~1 s, with `source` as its
/// [`EchoSource`].
fn witness_echo_sources(lab: &VethLab, gateway: IpAddr, source: EchoSource) -> Vec<IpAddr> {
    let gw = lab.gw().name().to_string();
    let watcher =
        std::thread::spawn(move || echo_request_sources(&gw, gateway, Duration::from_millis(900)));
    lab.run_in_a(move || async move {
        let cfg = WitnessConfig {
            source,
            ..WitnessConfig::new(IF_NODE, Gateway::Addr(gateway))
        };
        let (_witness, _events) = Witness::spawn(cfg).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
    });
    watcher.join().expect("watcher thread")
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
    node_addr(&node_ns, "del", "192.0.2.11/24", false);
    node_addr(&node_ns, "add", "192.0.2.11/24", false);
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
    let vip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));
    let kernel_picks = witness_echo_sources(&lab, GATEWAY.into(), EchoSource::default());
    assert!(
        !kernel_picks.is_empty() && kernel_picks.iter().all(|s| *s == vip),
        "precondition: unbound, the echoes leave from the promoted VIP: {kernel_picks:?}"
    );
    let source = EchoSource {
        v4: Some(NODE),
        ..EchoSource::default()
    };
    let bound = witness_echo_sources(&lab, GATEWAY.into(), source);
    assert!(
        !bound.is_empty() && bound.iter().all(|s| *s == IpAddr::V4(NODE)),
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

/// The IPv6 gateway's global address.
const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The node's global address.
const NODE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11);

/// `ip -n NS addr VERB CIDR dev veth0` (plus `nodad` when asked) in the node namespace.
fn node_addr(ns: &str, verb: &str, cidr: &str, nodad: bool) {
    let mut args = vec!["-n", ns, "addr", verb, cidr, "dev", IF_NODE];
    if nodad {
        args.push("nodad");
    }
    ip(&args);
}

/// `sysctl -w SETTING` inside `ns`.
fn sysctl_in(ns: &Netns, setting: &str) {
    ip(&["netns", "exec", ns.name(), "sysctl", "-q", "-w", setting]);
}

/// The IPv6-only lab: IPv6 on and DAD off in both namespaces before the links come up
/// (so no address is ever tentative), the gateway with `2001:db8::1` (kept while its link
/// is down, which would otherwise flush it) and its own link-local address (flushed with
/// the link and made again, the same, when it comes back: the kernel keeps no link-local
/// address over a link down), the node with `2001:db8::11`, default route via the
/// gateway's link-local address, which is returned with the lab.
fn new_lab_v6() -> (VethLab, Ipv6Addr) {
    let lab = VethLab::pair("wit6");
    for (ns, dev) in [(&lab.a, IF_NODE), (&lab.b, IF_GW)] {
        for scope in ["all", "default", dev] {
            sysctl_in(ns, &format!("net.ipv6.conf.{scope}.disable_ipv6=0"));
            sysctl_in(ns, &format!("net.ipv6.conf.{scope}.accept_dad=0"));
        }
    }
    sysctl_in(
        &lab.b,
        &format!("net.ipv6.conf.{IF_GW}.keep_addr_on_down=1"),
    );
    let (node, gw) = (lab.a.name(), lab.b.name());
    for (ns, dev, addr) in [
        (gw, IF_GW, "2001:db8::1/64"),
        (node, IF_NODE, "2001:db8::11/64"),
    ] {
        ip(&["-n", ns, "addr", "add", addr, "dev", dev, "nodad"]);
    }
    lab.set_up();
    // Never a fixed sleep: poll until both ends have carrier (a neighbour solicitation
    // sent before is lost, and the next one only goes 1 s later, RFC 4861 RetransTimer)
    // and no address is tentative (at once with DAD off).
    let deadline = Instant::now() + Duration::from_secs(10);
    for (ns, dev) in [(node, IF_NODE), (gw, IF_GW)] {
        let ready = || {
            let link: serde_json::Value =
                serde_json::from_str(&ip(&["-n", ns, "-j", "link", "show", "dev", dev])).unwrap();
            link[0]["operstate"] == "UP"
                && ip(&["-n", ns, "-6", "addr", "show", "tentative"])
                    .trim()
                    .is_empty()
        };
        while !ready() {
            assert!(Instant::now() < deadline, "{dev} in {ns} does not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The kernel makes it when the link comes up; poll for it all the same.
    let router = loop {
        let shown = ip(&[
            "-n", gw, "-j", "-6", "addr", "show", "dev", IF_GW, "scope", "link",
        ]);
        let links: serde_json::Value = serde_json::from_str(&shown).unwrap();
        let found = links[0]["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|a| a["local"].as_str()?.parse::<Ipv6Addr>().ok());
        if let Some(router) = found {
            break router;
        }
        assert!(
            Instant::now() < deadline,
            "no link-local address on the gateway: {shown}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let via = router.to_string();
    ip(&[
        "-n", node, "-6", "route", "add", "default", "via", &via, "dev", IF_NODE,
    ]);
    (lab, router)
}

#[test]
fn witness6_auto_finds_the_link_local_router_and_follows_its_link_with_raw_socket() {
    if !require_root(
        "witness6_auto_finds_the_link_local_router_and_follows_its_link_with_raw_socket",
    ) {
        return;
    }
    let (lab, router) = new_lab_v6();
    follows_gateway_link(lab, router.into());
}

#[test]
fn witness6_auto_finds_the_link_local_router_and_follows_its_link_with_datagram_socket() {
    if !require_root(
        "witness6_auto_finds_the_link_local_router_and_follows_its_link_with_datagram_socket",
    ) {
        return;
    }
    let (lab, router) = new_lab_v6();
    lab.allow_ping_sockets();
    follows_gateway_link(lab, router.into());
}

/// A global IPv6 gateway: answered, then `fall` echoes unanswered once its address is
/// removed, answered again once it is back.
fn follows_gateway_address(lab: VethLab) {
    let gw_ns = lab.gw().name().to_string();
    lab.run_in_a(move || async move {
        let mut cfg = WitnessConfig::new(IF_NODE, Gateway::Addr(GATEWAY6.into()));
        cfg.interval = Duration::from_millis(50);
        cfg.timeout = Duration::from_millis(50);
        let (witness, mut events) = Witness::spawn(cfg).await.unwrap();
        assert_eq!(witness.gateway(), IpAddr::from(GATEWAY6));
        let address = |verb: &str| {
            let mut args = vec!["-n", &gw_ns, "addr", verb, "2001:db8::1/64", "dev", IF_GW];
            if verb == "add" {
                args.push("nodad");
            }
            ip(&args);
        };
        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Reachable { gateway, .. } => assert_eq!(gateway, IpAddr::from(GATEWAY6)),
            other => panic!("first event should be Reachable, got {other:?}"),
        }
        address("del");
        match next_event(&mut events, Duration::from_secs(5)).await {
            WitnessEvent::Unreachable { gateway, reason } => {
                assert_eq!(gateway, IpAddr::from(GATEWAY6));
                assert!(
                    reason.starts_with("3 echoes to 2001:db8::1 unanswered (fall 3 × 50 ms)"),
                    "{reason}"
                );
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        address("add");
        match next_event(&mut events, Duration::from_secs(10)).await {
            WitnessEvent::Reachable { gateway, .. } => assert_eq!(gateway, IpAddr::from(GATEWAY6)),
            other => panic!("expected Reachable again, got {other:?}"),
        }
    });
}

#[test]
fn witness6_follows_a_global_gateway_address_with_raw_socket() {
    if !require_root("witness6_follows_a_global_gateway_address_with_raw_socket") {
        return;
    }
    follows_gateway_address(new_lab_v6().0);
}

#[test]
fn witness6_follows_a_global_gateway_address_with_datagram_socket() {
    if !require_root("witness6_follows_a_global_gateway_address_with_datagram_socket") {
        return;
    }
    let (lab, _) = new_lab_v6();
    lab.allow_ping_sockets();
    follows_gateway_address(lab);
}

/// The IPv6 sibling of [`echoes_never_leave_from_a_promoted_vip`]: an IPv6 VIP on the
/// gateway's prefix, added after the node's own address (`2001:db8::2` next to `::11`,
/// gateway `::1`), is the kernel's source for the echoes (RFC 6724 §5 ties them, Linux
/// caps rule 8 at the /64 and takes the newest), and the gateway would answer whoever
/// holds the VIP. With the own address as the IPv6 [`EchoSource`], every echo
/// leaves from it.
fn echoes6_never_leave_from_a_vip(lab: VethLab) {
    let node_ns = lab.node().name().to_string();
    node_addr(&node_ns, "add", "2001:db8::2/64", true);
    let vip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
    let kernel_picks = witness_echo_sources(&lab, GATEWAY6.into(), EchoSource::default());
    assert!(
        !kernel_picks.is_empty() && kernel_picks.iter().all(|s| *s == vip),
        "precondition: unbound, the echoes leave from the VIP: {kernel_picks:?}"
    );
    let source = EchoSource {
        v6: Some(NODE6),
        ..EchoSource::default()
    };
    let bound = witness_echo_sources(&lab, GATEWAY6.into(), source);
    assert!(
        !bound.is_empty() && bound.iter().all(|s| *s == IpAddr::V6(NODE6)),
        "echoes from {bound:?}, expected all from {NODE6}"
    );
}

#[test]
fn witness6_echoes_never_leave_from_a_vip_with_raw_socket() {
    if !require_root("witness6_echoes_never_leave_from_a_vip_with_raw_socket") {
        return;
    }
    echoes6_never_leave_from_a_vip(new_lab_v6().0);
}

#[test]
fn witness6_echoes_never_leave_from_a_vip_with_datagram_socket() {
    if !require_root("witness6_echoes_never_leave_from_a_vip_with_datagram_socket") {
        return;
    }
    let (lab, _) = new_lab_v6();
    lab.allow_ping_sockets();
    echoes6_never_leave_from_a_vip(lab);
}

/// The node's own IPv6 address is still tentative (DAD running) when the witness starts:
/// binding it fails (`EADDRNOTAVAIL`). The witness starts all the same, with the kernel's
/// pick, and binds the own address once DAD is done. (It used to fail, and the daemon with
/// it, at every boot where the agent started before DAD ended.)
#[test]
fn witness6_starts_while_its_own_address_is_tentative_and_binds_it_after_dad() {
    if !require_root("witness6_starts_while_its_own_address_is_tentative_and_binds_it_after_dad") {
        return;
    }
    let (lab, _) = new_lab_v6();
    let node_ns = lab.node().name().to_string();
    sysctl_in(lab.node(), &format!("net.ipv6.conf.{IF_NODE}.accept_dad=1"));
    sysctl_in(
        lab.node(),
        &format!("net.ipv6.conf.{IF_NODE}.dad_transmits=1"),
    );
    node_addr(&node_ns, "add", "2001:db8::21/64", false);
    // Added last, so the kernel's own pick is this one (Linux prefers the newest address
    // on a tie), never the fresh address: only binding it makes echoes leave from it.
    node_addr(&node_ns, "add", "2001:db8::2/64", true);
    let fresh = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x21);
    assert!(
        !ip(&["-n", &node_ns, "-6", "addr", "show", "tentative"])
            .trim()
            .is_empty(),
        "precondition: the new address is tentative"
    );
    let gw = lab.gw().name().to_string();
    let seen_fresh = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&seen_fresh);
    let watcher = std::thread::spawn(move || {
        // Until the first echo from the fresh address (DAD ~1 s, then the next retry ≤ 5 s).
        let end = Instant::now() + Duration::from_secs(12);
        while Instant::now() < end {
            let seen = echo_request_sources(&gw, GATEWAY6.into(), Duration::from_millis(200));
            if seen.contains(&IpAddr::V6(fresh)) {
                flag.store(true, Ordering::SeqCst);
                return;
            }
        }
    });
    let flag = Arc::clone(&seen_fresh);
    let started = lab.run_in_a(move || async move {
        let cfg = WitnessConfig {
            source: EchoSource {
                v6: Some(fresh),
                ..EchoSource::default()
            },
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(100),
            ..WitnessConfig::new(IF_NODE, Gateway::Addr(GATEWAY6.into()))
        };
        let Ok((_witness, _events)) = Witness::spawn(cfg).await else {
            return false;
        };
        let end = Instant::now() + Duration::from_secs(12);
        while !flag.load(Ordering::SeqCst) && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    });
    assert!(
        started,
        "the witness did not start while its address was tentative"
    );
    watcher.join().expect("watcher thread");
    assert!(
        seen_fresh.load(Ordering::SeqCst),
        "echoes never left from the own address after DAD"
    );
}

/// The own address the witness is bound to is deleted while it runs: sends from it still
/// succeed, but no reply can come back. The unreachable verdict makes it bind again, which
/// finds the address gone and lets the kernel pick: the gateway is reachable again. (Before,
/// it stayed unreachable for good: the node could never be master again.)
#[test]
fn witness6_recovers_when_its_own_address_is_deleted() {
    if !require_root("witness6_recovers_when_its_own_address_is_deleted") {
        return;
    }
    let (lab, _) = new_lab_v6();
    let node_ns = lab.node().name().to_string();
    node_addr(&node_ns, "add", "2001:db8::21/64", true);
    let fresh = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x21);
    lab.run_in_a(move || async move {
        let cfg = WitnessConfig {
            source: EchoSource {
                v6: Some(fresh),
                ..EchoSource::default()
            },
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(50),
            ..WitnessConfig::new(IF_NODE, Gateway::Addr(GATEWAY6.into()))
        };
        let (_witness, mut events) = Witness::spawn(cfg).await.unwrap();
        let first = next_event(&mut events, Duration::from_secs(5)).await;
        assert!(matches!(first, WitnessEvent::Reachable { .. }), "{first:?}");
        node_addr(&node_ns, "del", "2001:db8::21/64", false);
        let lost = next_event(&mut events, Duration::from_secs(5)).await;
        assert!(matches!(lost, WitnessEvent::Unreachable { .. }), "{lost:?}");
        let back = next_event(&mut events, Duration::from_secs(5)).await;
        assert!(
            matches!(back, WitnessEvent::Reachable { .. }),
            "the witness stayed unreachable after its own address went: {back:?}"
        );
    });
}

/// `Icmp6InCsumErrors` of namespace `ns`: ICMPv6 messages its kernel dropped for a bad
/// checksum.
fn icmp6_checksum_errors(ns: &str) -> u32 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp6"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Icmp6InCsumErrors"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Icmp6InCsumErrors in {ns}'s /proc/net/snmp6"))
}

/// The forgeries of [`forged_replies_do_not_make_the_gateway_reachable`] over ICMPv6,
/// against the global gateway.
///
/// This also checks the kernel fact icmp.rs relies on: the bad-checksum forgeries reach
/// the node (its `Icmp6InCsumErrors` grows by at least 3) but a raw ICMPv6 socket there
/// never receives one (the observer counts none), while it does receive the
/// valid-checksum forgeries of phase 2.
fn forged_v6_replies_do_not_make_the_gateway_reachable(lab: VethLab) {
    sysctl_in(lab.gw(), "net.ipv6.icmp.echo_ignore_all=1");
    let node = lab.node().name().to_string();
    let before = icmp6_checksum_errors(&node);
    let rogue = Arc::new(Rogue::start_v6(lab.gw().name(), Forgery::BadChecksum));
    let observer = Arc::new(Observer::start_v6(&node));
    let arrived = move || icmp6_checksum_errors(&node) - before;
    believe_only_exact_replies(&lab, GATEWAY6.into(), &rogue, &observer, arrived);
    let (bad, good) = observer.counts();
    assert_eq!(
        bad, 0,
        "a raw ICMPv6 socket received a reply with a bad checksum"
    );
    assert!(good >= 10, "{good}");
}

#[test]
fn witness6_forged_replies_do_not_fool_the_raw_socket_witness() {
    if !require_root("witness6_forged_replies_do_not_fool_the_raw_socket_witness") {
        return;
    }
    forged_v6_replies_do_not_make_the_gateway_reachable(new_lab_v6().0);
}

#[test]
fn witness6_forged_replies_do_not_fool_the_datagram_socket_witness() {
    if !require_root("witness6_forged_replies_do_not_fool_the_datagram_socket_witness") {
        return;
    }
    let (lab, _) = new_lab_v6();
    lab.allow_ping_sockets();
    forged_v6_replies_do_not_make_the_gateway_reachable(lab);
}
